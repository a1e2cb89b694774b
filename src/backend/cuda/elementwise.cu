// Elementwise kernels: grid-stride loops, 64-bit indices, float math written as the CPU reference
// writes it (tanhf, no fast-math) so results agree to a few ulp.
#include "backend/cuda/elementwise.cuh"

#include <cstdlib>
#include <cstring>

namespace ge::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;

struct BinaryParams {
  const float* a;
  const float* b;
  float* out;
  int64_t n;
};

static __global__ void add_kernel(BinaryParams p) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < p.n; i += int64_t{gridDim.x} * blockDim.x) {
    p.out[i] = p.a[i] + p.b[i];
  }
}

static __global__ void gelu_tanh_mul_kernel(BinaryParams p) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < p.n; i += int64_t{gridDim.x} * blockDim.x) {
    p.out[i] = gelu_tanh_times(p.a[i], p.b[i]);
  }
}

// Same values, four per thread and step through 16-byte loads and stores (prefill: [T, F] with F a
// multiple of 4); needs n % 4 == 0 and 16-byte aligned operands.
static __global__ void gelu_tanh_mul4_kernel(BinaryParams p) {
  const float4* a = reinterpret_cast<const float4*>(p.a);
  const float4* b = reinterpret_cast<const float4*>(p.b);
  float4* out = reinterpret_cast<float4*>(p.out);
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < p.n / 4; i += int64_t{gridDim.x} * blockDim.x) {
    const float4 g = a[i], u = b[i];
    out[i] = make_float4(gelu_tanh_times(g.x, u.x), gelu_tanh_times(g.y, u.y), gelu_tanh_times(g.z, u.z),
                         gelu_tanh_times(g.w, u.w));
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

struct UnaryParams {
  float* x;
  int64_t n;
  float s;
};

static __global__ void scale_kernel(UnaryParams p) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < p.n; i += int64_t{gridDim.x} * blockDim.x) {
    p.x[i] *= p.s;
  }
}

static __global__ void softcap_kernel(UnaryParams p) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < p.n; i += int64_t{gridDim.x} * blockDim.x) {
    p.x[i] = p.s * tanhf(p.x[i] / p.s);
  }
}

struct EmbedParams {
  const int32_t* tokens;
  int64_t n_tokens;
  WeightView table;
  float scale;
  float* out;
  uint32_t* error_word;
};

// Piece idx of the raw-table paths (32 consecutive output elements of one token): the first element's
// column k0, the token id and where the piece goes.
struct EmbedPiece {
  int64_t k0;
  int32_t token;
  float* dst;
};

__device__ __forceinline__ EmbedPiece embed_piece(const EmbedParams& p, int64_t idx, int64_t per_token) {
  const int64_t t = idx / per_token;
  const int64_t k0 = (idx % per_token) * 32;
  return EmbedPiece{k0, p.tokens[t], p.out + t * p.table.cols + k0};
}

// Tiled tables (Q4_0, Q8_0, Int4Group / Int8Group): one thread per output element, so one decode
// token's row (e.g. 5,376 values) spreads over ~20 CTAs instead of one thread per 32 values in a
// single CTA; tiled_element is the exact decoder, so the values are the same bits.
static __global__ void embed_tiled_kernel(EmbedParams p) {
  const int64_t cols = p.table.cols;
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < p.n_tokens * cols;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const int64_t t = idx / cols, k = idx % cols;
    const int32_t token = p.tokens[t];
    if (token < 0 || token >= p.table.rows) {
      if (k == 0) raise_device_error(p.error_word, kErrTokenRange);
      p.out[idx] = 0.0f;
      continue;
    }
    p.out[idx] = tiled_element(p.table, token, k) * p.scale;
  }
}

// Raw tables (F32/F16/BF16, Q5_0, K-quants, torchao arrays): one thread per 32 consecutive output
// elements of one token (the decoders work in 32s), in small CTAs so a token's row spreads over
// several SMs; 16-byte stores when the row allows them.
static __global__ void embed_raw_kernel(EmbedParams p) {
  const int64_t cols = p.table.cols;
  const int64_t per_token = (cols + 31) / 32;
  const bool vec = cols % 4 == 0 && reinterpret_cast<uintptr_t>(p.out) % 16 == 0;
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < p.n_tokens * per_token;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const auto [k0, token, dst] = embed_piece(p, idx, per_token);
    float v[32];
    if (token < 0 || token >= p.table.rows) {
      if (k0 == 0) raise_device_error(p.error_word, kErrTokenRange);
#pragma unroll
      for (int i = 0; i < 32; ++i) v[i] = 0.0f;
    } else {
      raw_decode32(p.table, token, k0, v);
#pragma unroll
      for (int i = 0; i < 32; ++i) v[i] *= p.scale;
    }
    if (vec && k0 + 32 <= cols) {
      float4* d4 = reinterpret_cast<float4*>(dst);
#pragma unroll
      for (int i = 0; i < 8; ++i) d4[i] = make_float4(v[4 * i], v[4 * i + 1], v[4 * i + 2], v[4 * i + 3]);
    } else {
#pragma unroll
      for (int i = 0; i < 32; ++i) {
        if (k0 + i < cols) dst[i] = v[i];
      }
    }
  }
}

// The embedding as it was before (lab switch GE_CUDA_EMBED=thread32, for measurements): one
// thread per 32 values of every layout, 256-thread CTAs (a decode row in one CTA).
static __global__ void embed_thread32_kernel(EmbedParams p) {
  const int64_t cols = p.table.cols;
  const int64_t per_token = (cols + 31) / 32;
  const bool tiled = p.table.layout == WeightLayout::kTiled4 || p.table.layout == WeightLayout::kTiled8;
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < p.n_tokens * per_token;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const auto [k0, token, dst] = embed_piece(p, idx, per_token);
    if (token < 0 || token >= p.table.rows) {
      if (k0 == 0) raise_device_error(p.error_word, kErrTokenRange);
      for (int i = 0; i < 32 && k0 + i < cols; ++i) dst[i] = 0.0f;
      continue;
    }
    float v[32];
    if (tiled) {
#pragma unroll 4
      for (int i = 0; i < 32; ++i) v[i] = (k0 + i < cols) ? tiled_element(p.table, token, k0 + i) : 0.0f;
    } else {
      raw_decode32(p.table, token, k0, v);
    }
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      if (k0 + i < cols) dst[i] = v[i] * p.scale;
    }
  }
}

bool embed_thread32() {
  static const bool v = [] {
    const char* e = std::getenv("GE_CUDA_EMBED");
    return e != nullptr && std::strcmp(e, "thread32") == 0;
  }();
  return v;
}

}  // namespace

cudaError_t launch_add(const float* a, const float* b, int64_t n, float* out, const LaunchContext& ctx) {
  if (n <= 0) return cudaSuccess;
  add_kernel<<<blocks_for(n, kThreads, kMaxBlocks), kThreads, 0, ctx.stream>>>(BinaryParams{a, b, out, n});
  return cudaGetLastError();
}

cudaError_t launch_scale(float* x, int64_t n, float s, const LaunchContext& ctx) {
  if (n <= 0) return cudaSuccess;
  scale_kernel<<<blocks_for(n, kThreads, kMaxBlocks), kThreads, 0, ctx.stream>>>(UnaryParams{x, n, s});
  return cudaGetLastError();
}

cudaError_t launch_softcap(float* x, int64_t n, float cap, const LaunchContext& ctx) {
  if (n <= 0) return cudaSuccess;
  softcap_kernel<<<blocks_for(n, kThreads, kMaxBlocks), kThreads, 0, ctx.stream>>>(UnaryParams{x, n, cap});
  return cudaGetLastError();
}

cudaError_t launch_gelu_tanh_mul(const float* gate, const float* up, int64_t n, float* out,
                                 const LaunchContext& ctx) {
  if (n <= 0) return cudaSuccess;
  if (n % 4 == 0 && aligned16(gate) && aligned16(up) && aligned16(out)) {
    gelu_tanh_mul4_kernel<<<blocks_for(n / 4, kThreads, 2 * kMaxBlocks), kThreads, 0, ctx.stream>>>(
        BinaryParams{gate, up, out, n});
  } else {
    gelu_tanh_mul_kernel<<<blocks_for(n, kThreads, kMaxBlocks), kThreads, 0, ctx.stream>>>(
        BinaryParams{gate, up, out, n});
  }
  return cudaGetLastError();
}

cudaError_t launch_embed(const int32_t* tokens, int64_t n_tokens, const WeightView& table, float scale, float* out,
                         const LaunchContext& ctx) {
  if (n_tokens <= 0) return cudaSuccess;
  const EmbedParams p{tokens, n_tokens, table, scale, out, ctx.error_word};
  if (embed_thread32()) {
    embed_thread32_kernel<<<blocks_for(n_tokens * ((table.cols + 31) / 32), kThreads, kMaxBlocks), kThreads, 0,
                            ctx.stream>>>(p);
  } else if (table.layout == WeightLayout::kTiled4 || table.layout == WeightLayout::kTiled8) {
    embed_tiled_kernel<<<blocks_for(n_tokens * table.cols, kThreads, 8 * kMaxBlocks), kThreads, 0, ctx.stream>>>(p);
  } else {
    constexpr int kRawThreads = 64;
    embed_raw_kernel<<<blocks_for(n_tokens * ((table.cols + 31) / 32), kRawThreads, 8 * kMaxBlocks), kRawThreads, 0,
                       ctx.stream>>>(p);
  }
  return cudaGetLastError();
}

}  // namespace ge::cuda
