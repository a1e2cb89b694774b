// Fused attention prologue and add-norm chain, following the separate kernels' reduction order and
// expressions (norm.cu, rope.cu, kv_cache.cu, elementwise.cu): the add-norm chain is bit-identical,
// the prologue's q/k differ in the last bits of some elements (attention within 2e-7 relative).
#include "backend/cuda/decode_fused.cuh"

namespace ge::cuda {
namespace {

// rms_norm's thread count for a row of n (norm.cu).
int threads_for(int64_t n) { return n >= 4096 ? 1024 : (n >= 1024 ? 512 : 256); }

// norm.cu's block reduction; callers sync before reusing `shared`.
__device__ __forceinline__ float block_sum(float v, float* shared) {
  v = warp_sum(v);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int n_warps = blockDim.x >> 5;
  v = lane < n_warps ? shared[lane] : 0.0f;
  v = warp_sum(v);
  return v;
}

__device__ __forceinline__ float inv_rms(const float* x, int64_t n, float eps, float* shared) {
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) ss = fmaf(x[i], x[i], ss);
  ss = block_sum(ss, shared);
  return 1.0f / sqrtf(ss / static_cast<float>(n) + eps);
}


struct PrologueParams {
  AttentionPrologue p;
  __nv_bfloat16* k_cache;
  __nv_bfloat16* v_cache;
  int32_t capacity;
  uint32_t* error_word;
  KvBatchView batch;  // bases set: token t stores into its own cache (a decode batch)
};

// grid (n_heads + n_kv, n_tokens): query heads first, then KV heads. Shared: [d] normalised row.
// With pp.batch set, token t is one decode step of its own sequence (cache bases[t]).
// The norm weights and inverse frequencies are not produced by earlier kernels: a thread's first kPre
// of each are read before grid_dependency_wait, so their latency overlaps the previous kernel's tail.
constexpr int kPre = 2;  // the selects below name elements 0 and 1 (registers, not a local array)

static __global__ void attention_prologue_kernel(PrologueParams pp) {
  extern __shared__ float buf[];
  __shared__ float red[32];
  const AttentionPrologue& p = pp.p;
  const int64_t d = p.head_dim, half = d / 2;
  const int64_t head = blockIdx.x, t = blockIdx.y;
  const bool is_q = head < p.n_heads;
  const int64_t kh = head - p.n_heads;
  const float* w = is_q ? p.q_norm : p.k_norm;
  float w_pre[kPre], f_pre[kPre];
#pragma unroll
  for (int k = 0; k < kPre; ++k) {
    const int64_t i = threadIdx.x + int64_t{k} * blockDim.x;
    w_pre[k] = w && i < d ? w[i] : 1.0f;
    f_pre[k] = i < half ? p.inv_freq[i] : 0.0f;
  }
  grid_dependency_release();
  grid_dependency_wait();
  const int32_t pos = p.positions[t];
  float* row = is_q ? p.q + (t * p.n_heads + head) * d : p.k + (t * p.n_kv + kh) * d;
  const int64_t cache_row = p.n_kv * d;
  const bool store = !is_q && pos >= 0;
  const int64_t dst = store ? static_cast<int64_t>(pos % pp.capacity) * cache_row + kh * d : 0;
  __nv_bfloat16* k_cache = pp.k_cache;
  __nv_bfloat16* v_cache = pp.v_cache;
  if (pp.batch.bases != nullptr) {
    k_cache = reinterpret_cast<__nv_bfloat16*>(pp.batch.bases[t] + pp.batch.k_offset);
    v_cache = reinterpret_cast<__nv_bfloat16*>(pp.batch.bases[t] + pp.batch.v_offset);
  }

  if (!is_q) {
    // V first: from the raw K row (k_eq_v) or the raw V row.
    const float* vsrc = p.k_eq_v ? row : p.v + (t * p.n_kv + kh) * d;
    float inv = 1.0f;
    const bool norm_v = p.k_eq_v || p.v_norm;
    if (norm_v) inv = inv_rms(vsrc, d, p.eps, red);
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
      const float v = norm_v ? vsrc[i] * inv * 1.0f : vsrc[i];
      if (store) v_cache[dst + i] = __float2bfloat16_rn(v);
    }
    __syncthreads();
  }
  const float inv = inv_rms(row, d, p.eps, red);
  for (int64_t i = threadIdx.x, k = 0; i < d; i += blockDim.x, ++k)
    buf[i] = row[i] * inv * (k == 0 ? w_pre[0] : (k == 1 ? w_pre[1] : (w ? w[i] : 1.0f)));
  __syncthreads();
  if (pos < 0) {
    if (threadIdx.x == 0 && head == 0) raise_device_error(pp.error_word, kErrPosition);
    if (is_q)
      for (int64_t i = threadIdx.x; i < d; i += blockDim.x) row[i] = buf[i];
    return;
  }
  for (int64_t j = threadIdx.x, k = 0; j < half; j += blockDim.x, ++k) {
    float a = buf[j], b = buf[j + half];
    const float f = k == 0 ? f_pre[0] : (k == 1 ? f_pre[1] : p.inv_freq[j]);
    if (f != 0.0f) {
      const float angle = static_cast<float>(pos) * f;
      float s, c;
      sincosf(angle, &s, &c);
      // Spelled out as rope.cu's kernel compiles (a*c - b*s and b*c + a*s, the second product
      // rounded, the first fused).
      const float ra = __fmaf_rn(a, c, -__fmul_rn(b, s));
      const float rb = __fmaf_rn(b, c, __fmul_rn(a, s));
      a = ra;
      b = rb;
    }
    if (is_q) {
      row[j] = a;
      row[j + half] = b;
    } else {
      k_cache[dst + j] = __float2bfloat16_rn(a);
      k_cache[dst + j + half] = __float2bfloat16_rn(b);
    }
  }
}

struct AddNormParams {
  float* x;
  const float* a;
  const float* w_post;
  const float* w_next;
  float* y;
  int64_t n;
  float eps, scale;
};

// One CTA per row: x += rms_norm(a) * w_post; x *= scale; y = rms_norm(x) * w_next.
static __global__ void add_rms_norm_then_norm_kernel(AddNormParams p) {
  __shared__ float red[32];
  grid_dependency_release();
  grid_dependency_wait();
  const int64_t row = blockIdx.x;
  const float* a = p.a + row * p.n;
  float* x = p.x + row * p.n;
  const float inv = inv_rms(a, p.n, p.eps, red);
  for (int64_t i = threadIdx.x; i < p.n; i += blockDim.x) {
    float r = x[i];
    r += a[i] * inv * (p.w_post ? p.w_post[i] : 1.0f);
    if (p.scale != 1.0f) r *= p.scale;
    x[i] = r;
  }
  if (p.w_next == nullptr) return;
  __syncthreads();  // red[] is reused; x is re-read by the thread that wrote each element
  const float inv2 = inv_rms(x, p.n, p.eps, red);
  float* y = p.y + row * p.n;
  for (int64_t i = threadIdx.x; i < p.n; i += blockDim.x) y[i] = x[i] * inv2 * p.w_next[i];
}

}  // namespace

cudaError_t launch_attention_prologue(const CudaKvCache::Layer& layer, const AttentionPrologue& p,
                                      const LaunchContext& ctx, const KvBatchView& batch) {
  if (p.n_tokens <= 0) return cudaSuccess;
  if (p.head_dim <= 0 || p.head_dim % 2 != 0 || p.head_dim > 4096 || p.n_heads <= 0 || p.n_kv <= 0 ||
      p.n_heads + p.n_kv > 65535 || p.n_tokens > 65535 || p.q == nullptr || p.k == nullptr || p.v == nullptr ||
      p.positions == nullptr || p.inv_freq == nullptr)
    return cudaErrorInvalidValue;
  PrologueParams pp{p, layer.k, layer.v, layer.spec.capacity, ctx.error_word, batch};
  const dim3 grid(static_cast<unsigned>(p.n_heads + p.n_kv), static_cast<unsigned>(p.n_tokens));
  return launch_pdl(attention_prologue_kernel, grid, threads_for(p.head_dim),
                    static_cast<size_t>(p.head_dim) * sizeof(float), pp, ctx);
}

cudaError_t launch_add_rms_norm_then_norm(float* x, const float* a, const float* w_post, float scale,
                                          const float* w_next, int64_t rows, int64_t n, float eps, float* y,
                                          const LaunchContext& ctx) {
  if (rows <= 0 || n <= 0) return cudaSuccess;
  if (rows > 0x7fffffff || (w_next != nullptr && y == nullptr)) return cudaErrorInvalidValue;
  return launch_pdl(add_rms_norm_then_norm_kernel, dim3(static_cast<unsigned>(rows)), threads_for(n), 0,
                    AddNormParams{x, a, w_post, w_next, y, n, eps, scale}, ctx);
}

}  // namespace ge::cuda
