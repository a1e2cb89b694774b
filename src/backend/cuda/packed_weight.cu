// Packing on the device: source arrays (uploaded from a QuantWeight, or random ones generated in
// place) are repacked by small gather kernels into the tiled tensor-core layout, or kept as they are
// for the raw layouts. Also the dequantize kernels used by tests and by the prefill GEMM.
#include "backend/cuda/packed_weight.cuh"

#include <string>

#include "core/checked_math.h"

namespace ge::cuda {
namespace {

constexpr int kThreads = 256;

bool is_pow2(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

// ---- reading the source layouts (device) ----

__device__ __forceinline__ uint32_t raw_code(const RawWeightDevice& s, int64_t row, int64_t k, bool four) {
  if (row >= s.rows || k >= s.cols) return four ? 8u : 0x80u;  // padding decodes to 0
  switch (s.type) {
    case QuantType::kQ4_0: {
      const uint8_t* b = s.data + row * s.row_bytes + (k / 32) * 18;
      const int j = static_cast<int>(k % 32);
      const uint8_t v = b[2 + (j % 16)];
      return j < 16 ? (v & 0x0fu) : (v >> 4);
    }
    case QuantType::kQ8_0: {
      const uint8_t* b = s.data + row * s.row_bytes + (k / 32) * 34;
      return static_cast<uint32_t>(b[2 + k % 32]) ^ 0x80u;  // int8 q -> q + 128
    }
    case QuantType::kInt4Group: {
      const uint8_t v = s.data[row * (s.cols / 2) + k / 2];
      return (k % 2 == 0) ? (v & 0x0fu) : (v >> 4);
    }
    case QuantType::kInt8Group:
      return static_cast<uint32_t>(s.data[row * s.cols + k]) ^ 0x80u;
    default:
      return four ? 8u : 0x80u;
  }
}

__device__ __forceinline__ uint32_t raw_scale_bits(const RawWeightDevice& s, int64_t row, int64_t grp) {
  const int64_t n_groups = s.cols / s.group_size;
  if (row >= s.rows || grp >= n_groups) return 0;  // padded groups contribute nothing
  switch (s.type) {
    case QuantType::kQ4_0: return load_u16_unaligned(s.data + row * s.row_bytes + grp * 18);
    case QuantType::kQ8_0: return load_u16_unaligned(s.data + row * s.row_bytes + grp * 34);
    case QuantType::kInt4Group: return s.scale[grp * s.rows + row];
    case QuantType::kInt8Group: return s.scale[row * n_groups + grp];
    default: return 0;
  }
}

__device__ __forceinline__ uint32_t raw_zero_bits(const RawWeightDevice& s, int64_t row, int64_t grp) {
  const int64_t n_groups = s.cols / s.group_size;
  if (row >= s.rows || grp >= n_groups || s.zero == nullptr) return 0;
  if (s.type == QuantType::kInt4Group) return static_cast<const uint16_t*>(s.zero)[grp * s.rows + row];
  if (s.type == QuantType::kInt8Group) {
    return static_cast<uint8_t>(static_cast<const int8_t*>(s.zero)[row * n_groups + grp]);
  }
  return 0;
}

// One 32-bit word of the tiled code array per thread. See tiled_element() for the inverse.
static __global__ void pack_codes_kernel(RawWeightDevice src, uint32_t* out, int64_t n_tiles, int64_t n_chunks,
                                         bool four) {
  const int64_t total = n_tiles * n_chunks * 128;
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < total;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const int wi = static_cast<int>(idx & 3);
    const int lane = static_cast<int>((idx >> 2) & 31);
    const int64_t rest = idx >> 7;
    const int64_t chunk = rest % n_chunks;
    const int64_t tile = rest / n_chunks;
    const int g = lane >> 2, t = lane & 3;
    const int64_t r0 = tile * kTileRows + g, r1 = r0 + 8;
    uint32_t word = 0;
    if (four) {
      // k-step wi of the chunk; nibble e: e0 (g, 2t) e1 (g+8, 2t) e2 (g, 2t+8) e3 (g+8, 2t+8)
      // e4..e7 the same at k + 1, so lop3 with 0x000F000F yields one a-register per shift of 4.
      const int64_t k = chunk * 64 + wi * 16 + 2 * t;
      const uint32_t e[8] = {raw_code(src, r0, k, true),     raw_code(src, r1, k, true),
                             raw_code(src, r0, k + 8, true), raw_code(src, r1, k + 8, true),
                             raw_code(src, r0, k + 1, true), raw_code(src, r1, k + 1, true),
                             raw_code(src, r0, k + 9, true), raw_code(src, r1, k + 9, true)};
#pragma unroll
      for (int i = 0; i < 8; ++i) word |= e[i] << (4 * i);
    } else {
      // words {X0, Y0, X1, Y1}: k-step wi/2, Y = columns + 8. Bytes: (g, 2t) (g+8, 2t) (g, 2t+1)
      // (g+8, 2t+1), so bytes 0/2 form row g's pair and bytes 1/3 row g+8's.
      const int64_t k = chunk * 32 + (wi / 2) * 16 + (wi % 2) * 8 + 2 * t;
      word = raw_code(src, r0, k, false) | (raw_code(src, r1, k, false) << 8) |
             (raw_code(src, r0, k + 1, false) << 16) | (raw_code(src, r1, k + 1, false) << 24);
    }
    out[idx] = word;
  }
}

// Group grp of the tiled layout maps to source group grp / repeat (groups larger than 128 are
// stored as repeated 128-element groups: same values, one kernel instantiation fewer per size).
static __global__ void pack_meta_kernel(RawWeightDevice src, uint32_t* scales, uint32_t* zeros, int64_t n_tiles,
                                        int64_t n_groups, int64_t repeat, bool four) {
  const int64_t total = n_tiles * n_groups * 8;
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < total;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const int g = static_cast<int>(idx & 7);
    const int64_t grp = ((idx >> 3) % n_groups) / repeat;
    const int64_t tile = (idx >> 3) / n_groups;
    const int64_t r0 = tile * kTileRows + g, r1 = r0 + 8;
    scales[idx] = raw_scale_bits(src, r0, grp) | (raw_scale_bits(src, r1, grp) << 16);
    if (zeros != nullptr) {
      const uint32_t z0 = raw_zero_bits(src, r0, grp), z1 = raw_zero_bits(src, r1, grp);
      zeros[idx] = four ? (z0 | (z1 << 16)) : ((z0 & 0xffu) | ((z1 & 0xffu) << 16));
    }
  }
}

// ---- random source data ----

__device__ __forceinline__ uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

__device__ __forceinline__ float uniform01(uint64_t seed, uint64_t i) {
  return static_cast<float>(mix64(seed ^ mix64(i)) >> 40) * (1.0f / 16777216.0f);
}

static __global__ void fill_bytes_kernel(uint8_t* p, int64_t n, uint64_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    p[i] = static_cast<uint8_t>(mix64(seed ^ mix64(static_cast<uint64_t>(i) >> 3)) >> (8 * (i & 7)));
  }
}

// Writes valid fp16 block scales (random sign, |d| in [1/128, 1/32)) over the random bytes of a
// row-blocked encoding: at `offset` (and offset + 2 for the k-quant dmin, kept positive).
static __global__ void fix_block_scales_kernel(uint8_t* p, int64_t n_blocks, int64_t block_bytes, int64_t offset,
                                               bool with_min, uint64_t seed) {
  for (int64_t b = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; b < n_blocks;
       b += int64_t{gridDim.x} * blockDim.x) {
    uint8_t* blk = p + b * block_bytes + offset;
    const float u = uniform01(seed, 2 * b);
    float d = (1.0f + 3.0f * u) / 128.0f;
    if (!with_min && (mix64(seed + b) & 1)) d = -d;
    const uint16_t h = __half_as_ushort(__float2half_rn(d));
    blk[0] = static_cast<uint8_t>(h);
    blk[1] = static_cast<uint8_t>(h >> 8);
    if (with_min) {
      const uint16_t m = __half_as_ushort(__float2half_rn((1.0f + 3.0f * uniform01(seed, 2 * b + 1)) / 256.0f));
      blk[2] = static_cast<uint8_t>(m);
      blk[3] = static_cast<uint8_t>(m >> 8);
    }
  }
}

// Float encodings: uniform in [-1, 1).
static __global__ void fill_float_kernel(uint8_t* p, int64_t n, QuantType type, uint64_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const float v = 2.0f * uniform01(seed, i) - 1.0f;
    if (type == QuantType::kF32) {
      reinterpret_cast<float*>(p)[i] = v;
    } else if (type == QuantType::kF16) {
      reinterpret_cast<uint16_t*>(p)[i] = __half_as_ushort(__float2half_rn(v));
    } else {
      reinterpret_cast<uint16_t*>(p)[i] = __bfloat16_as_ushort(__float2bfloat16_rn(v));
    }
  }
}

// torchao group metadata: bf16 scales in [1/256, 1/64), bf16 zeros in [4, 12) (int4) or int8
// zeros in [-4, 4] (int8).
static __global__ void fill_group_meta_kernel(uint16_t* scale, void* zero, int64_t n, bool int4, uint64_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    scale[i] = __bfloat16_as_ushort(__float2bfloat16_rn((1.0f + 3.0f * uniform01(seed, 3 * i)) / 256.0f));
    if (zero != nullptr) {
      const float u = uniform01(seed, 3 * i + 1);
      if (int4) {
        static_cast<uint16_t*>(zero)[i] = __bfloat16_as_ushort(__float2bfloat16_rn(4.0f + 8.0f * u));
      } else {
        static_cast<int8_t*>(zero)[i] = static_cast<int8_t>(static_cast<int>(u * 9.0f) - 4);
      }
    }
  }
}

// ---- dequantize ----

template <typename Out>
static __global__ void dequantize_kernel(WeightView w, int64_t row0, int64_t n_rows, Out* out) {
  const int64_t per_row = (w.cols + 31) / 32;
  const int64_t total = n_rows * per_row;
  const bool tiled = w.layout == WeightLayout::kTiled4 || w.layout == WeightLayout::kTiled8;
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < total;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = idx / per_row;
    const int64_t k0 = (idx % per_row) * 32;
    const int64_t row = row0 + r;
    float v[32];
    if (tiled) {
#pragma unroll 4
      for (int i = 0; i < 32; ++i) v[i] = (k0 + i < w.cols) ? tiled_element(w, row, k0 + i) : 0.0f;
    } else {
      raw_decode32(w, row, k0, v);
    }
    Out* dst = out + r * w.cols + k0;
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      if (k0 + i < w.cols) {
        if constexpr (sizeof(Out) == 4) {
          dst[i] = v[i];
        } else {
          dst[i] = __float2bfloat16_rn(v[i]);
        }
      }
    }
  }
}

// ---- host side ----

struct Geometry {
  WeightLayout layout;
  int64_t group_size = 0;  // of the tiled layout (<= 128)
  int64_t repeat = 1;      // source group = tiled group / repeat
  int64_t n_tiles = 0, n_chunks = 0, n_groups = 0;
  uint64_t code_bytes = 0, meta_bytes = 0;
};

// Picks the layout and computes every size with checked arithmetic.
Result<Geometry> plan_layout(QuantType type, int64_t rows, int64_t cols, int64_t group_size) {
  Geometry geo;
  const bool four = type == QuantType::kQ4_0 || type == QuantType::kInt4Group;
  const bool eight = type == QuantType::kQ8_0 || type == QuantType::kInt8Group;
  int64_t G = (type == QuantType::kQ4_0 || type == QuantType::kQ8_0) ? 32 : group_size;
  if (!(four || eight) || !is_pow2(G) || G < 32) {
    geo.layout = (type == QuantType::kInt4Group || type == QuantType::kInt8Group) ? WeightLayout::kRawGroup
                                                                                    : WeightLayout::kRawBlocks;
    return geo;
  }
  geo.layout = four ? WeightLayout::kTiled4 : WeightLayout::kTiled8;
  geo.group_size = G < 128 ? G : 128;
  geo.repeat = G / geo.group_size;
  const int64_t chunk_k = four ? 64 : 32;
  const int64_t unit = G > chunk_k ? G : chunk_k;  // padded K is whole groups and whole chunks
  const int64_t kp = (cols + unit - 1) / unit * unit;
  // An even tile count: the GEMV runs tiles in pairs (the padding tile decodes to zeros).
  geo.n_tiles = (rows + 2 * kTileRows - 1) / (2 * kTileRows) * 2;
  geo.n_chunks = kp / chunk_k;
  geo.n_groups = kp / geo.group_size;
  if (geo.n_tiles > (int64_t{1} << 30) || geo.n_chunks > (int64_t{1} << 30)) {
    return invalid_argument("cuda pack: weight [" + std::to_string(rows) + ", " + std::to_string(cols) +
                            "] is too large for the tiled layout");
  }
  uint64_t a = 0, b = 0;
  if (!mul_ok(static_cast<uint64_t>(geo.n_tiles), static_cast<uint64_t>(geo.n_chunks), &a) ||
      !mul_ok(a, 512, &geo.code_bytes) ||
      !mul_ok(static_cast<uint64_t>(geo.n_tiles), static_cast<uint64_t>(geo.n_groups), &b) ||
      !mul_ok(b, 32, &geo.meta_bytes)) {
    return invalid_argument("cuda pack: byte size of the tiled weight overflows");
  }
  return geo;
}

Status check_launch(const std::string& what) { return cuda_status(cudaGetLastError(), what); }

// Repacks device source arrays into `out` (tiled layouts) and waits for the kernels.
Status repack_tiled(const RawWeightDevice& src, const Geometry& geo, CudaPackedWeight* out, bool with_zero,
                    const LaunchContext& ctx) {
  const bool four = geo.layout == WeightLayout::kTiled4;
  GE_RETURN_IF_ERROR(out->a_.allocate(geo.code_bytes, "packed weight codes"));
  GE_RETURN_IF_ERROR(out->b_.allocate(geo.meta_bytes, "packed weight scales"));
  if (with_zero) GE_RETURN_IF_ERROR(out->c_.allocate(geo.meta_bytes, "packed weight zeros"));
  const int64_t words = static_cast<int64_t>(geo.code_bytes / 4);
  pack_codes_kernel<<<blocks_for(words, kThreads), kThreads, 0, ctx.stream>>>(
      src, out->a_.as<uint32_t>(), geo.n_tiles, geo.n_chunks, four);
  GE_RETURN_IF_ERROR(check_launch("pack codes"));
  const int64_t metas = static_cast<int64_t>(geo.meta_bytes / 4);
  pack_meta_kernel<<<blocks_for(metas, kThreads), kThreads, 0, ctx.stream>>>(
      src, out->b_.as<uint32_t>(), with_zero ? out->c_.as<uint32_t>() : nullptr, geo.n_tiles, geo.n_groups,
      geo.repeat, four);
  GE_RETURN_IF_ERROR(check_launch("pack scales"));
  GE_RETURN_IF_ERROR(cuda_status(cudaStreamSynchronize(ctx.stream), "pack weight"));

  WeightView& v = out->view_;
  v.layout = geo.layout;
  v.type = src.type;
  v.rows = src.rows;
  v.cols = src.cols;
  v.codes = out->a_.as<const uint4>();
  v.scales = out->b_.as<const uint32_t>();
  v.zeros = with_zero ? out->c_.as<const uint32_t>() : nullptr;
  v.n_tiles = static_cast<int32_t>(geo.n_tiles);
  v.n_chunks = static_cast<int32_t>(geo.n_chunks);
  v.n_groups = static_cast<int32_t>(geo.n_groups);
  v.group_size = static_cast<int32_t>(geo.group_size);
  v.scale_fp16 = src.type == QuantType::kQ4_0 || src.type == QuantType::kQ8_0;
  return Status::ok();
}

void set_raw_view(CudaPackedWeight* out, const RawWeightDevice& src, WeightLayout layout) {
  WeightView& v = out->view_;
  v.layout = layout;
  v.type = src.type;
  v.rows = src.rows;
  v.cols = src.cols;
  v.raw = out->a_.as<const uint8_t>();
  v.row_bytes = src.row_bytes;
  v.group_size = static_cast<int32_t>(src.group_size);
  v.g_scale = out->b_.as<const uint16_t>();
  v.g_zero = out->c_.get();
}

// Copies on ctx.stream, the stream the repack kernels and every later op run on. A plain cudaMemcpy
// would not do: it runs on the legacy default stream, which the backend's non-blocking stream does
// not wait for, and from pageable memory it returns once the bytes are staged, before the DMA has
// landed; the repack kernels then read the tail of the upload (the last rows) stale.
Status upload(DeviceMemory* dst, const void* src, uint64_t bytes, const std::string& what,
              const LaunchContext& ctx) {
  GE_RETURN_IF_ERROR(dst->allocate(bytes, what));
  if (bytes == 0) return Status::ok();
  return cuda_status(cudaMemcpyAsync(dst->get(), src, bytes, cudaMemcpyHostToDevice, ctx.stream), "upload " + what);
}

}  // namespace

Result<std::unique_ptr<CudaPackedWeight>> pack_quant_weight(const QuantWeight& w, const LaunchContext& ctx) {
  GE_RETURN_IF_ERROR(validate_weight(w));
  GE_ASSIGN_OR_RETURN(WeightBytes sizes, weight_bytes(w));
  GE_ASSIGN_OR_RETURN(Geometry geo, plan_layout(w.type, w.rows, w.cols, w.group_size));
  auto out = std::make_unique<CudaPackedWeight>(w.rows, w.cols, w.type);

  RawWeightDevice src;
  src.type = w.type;
  src.rows = w.rows;
  src.cols = w.cols;
  src.group_size = (w.type == QuantType::kQ4_0 || w.type == QuantType::kQ8_0) ? 32 : w.group_size;
  if (is_row_blocked(w.type)) {
    GE_ASSIGN_OR_RETURN(uint64_t rb, row_bytes(w.type, w.cols));
    src.row_bytes = static_cast<int64_t>(rb);
  }
  const bool with_zero = w.zero != nullptr;
  DeviceMemory data, scale, zero;
  GE_RETURN_IF_ERROR(upload(&data, w.data, sizes.data, "weight data", ctx));
  if (w.scale != nullptr && sizes.scale > 0) {
    GE_RETURN_IF_ERROR(upload(&scale, w.scale, sizes.scale, "weight scales", ctx));
  }
  if (with_zero && sizes.zero > 0) GE_RETURN_IF_ERROR(upload(&zero, w.zero, sizes.zero, "weight zeros", ctx));
  src.data = data.as<const uint8_t>();
  src.scale = scale.as<const uint16_t>();
  src.zero = zero.get();

  if (geo.layout == WeightLayout::kTiled4 || geo.layout == WeightLayout::kTiled8) {
    GE_RETURN_IF_ERROR(repack_tiled(src, geo, out.get(), with_zero, ctx));
    return std::move(out);
  }
  // Raw layouts keep the uploaded arrays: the weight is complete (and the host arrays no longer
  // needed) when this returns, as after a repack.
  GE_RETURN_IF_ERROR(cuda_status(cudaStreamSynchronize(ctx.stream), "upload weight"));
  out->a_ = std::move(data);
  out->b_ = std::move(scale);
  out->c_ = std::move(zero);
  set_raw_view(out.get(), src, geo.layout);
  return std::move(out);
}

Result<std::unique_ptr<CudaPackedWeight>> synthesize_packed_weight(QuantType type, int64_t rows, int64_t cols,
                                                                   int64_t group_size, bool with_zero,
                                                                   uint64_t seed, const LaunchContext& ctx) {
  const bool group = type == QuantType::kInt4Group || type == QuantType::kInt8Group;
  if (!group) with_zero = false;
  if (group && group_size == 0) group_size = 128;
  QuantWeight shape;  // only for the size checks
  shape.type = type;
  shape.rows = rows;
  shape.cols = cols;
  shape.group_size = group ? group_size : 0;
  GE_ASSIGN_OR_RETURN(WeightBytes sizes, weight_bytes(shape));
  if (rows <= 0 || cols <= 0) return invalid_argument("cuda synthesize: empty weight shape");
  if (group) {
    sizes.zero = with_zero ? (type == QuantType::kInt4Group ? sizes.scale : sizes.scale / 2) : 0;
  }
  GE_ASSIGN_OR_RETURN(Geometry geo, plan_layout(type, rows, cols, group_size));
  auto out = std::make_unique<CudaPackedWeight>(rows, cols, type);

  RawWeightDevice src;
  src.type = type;
  src.rows = rows;
  src.cols = cols;
  src.group_size = group ? group_size : ((type == QuantType::kQ4_0 || type == QuantType::kQ8_0) ? 32 : 0);
  DeviceMemory data, scale, zero;
  GE_RETURN_IF_ERROR(data.allocate(sizes.data, "synthetic weight data"));
  if (group) {
    GE_RETURN_IF_ERROR(scale.allocate(sizes.scale, "synthetic weight scales"));
    if (with_zero) GE_RETURN_IF_ERROR(zero.allocate(sizes.zero, "synthetic weight zeros"));
  }
  const int64_t n_bytes = static_cast<int64_t>(sizes.data);
  if (type == QuantType::kF32 || type == QuantType::kF16 || type == QuantType::kBF16) {
    fill_float_kernel<<<blocks_for(rows * cols, kThreads), kThreads, 0, ctx.stream>>>(data.as<uint8_t>(),
                                                                                     rows * cols, type, seed);
  } else {
    fill_bytes_kernel<<<blocks_for(n_bytes, kThreads), kThreads, 0, ctx.stream>>>(data.as<uint8_t>(), n_bytes,
                                                                                 seed);
  }
  GE_RETURN_IF_ERROR(check_launch("synthesize data"));
  if (is_row_blocked(type)) {
    GE_ASSIGN_OR_RETURN(uint64_t rb, row_bytes(type, cols));
    src.row_bytes = static_cast<int64_t>(rb);
    const BlockLayout bl = block_layout(type);
    const int64_t n_blocks = n_bytes / bl.block_bytes;
    int64_t offset = -1;
    bool with_min = false;
    switch (type) {
      case QuantType::kQ4_0:
      case QuantType::kQ5_0:
      case QuantType::kQ8_0: offset = 0; break;
      case QuantType::kQ4_K:
      case QuantType::kQ5_K: offset = 0; with_min = true; break;
      case QuantType::kQ6_K: offset = 208; break;
      default: break;
    }
    if (offset >= 0) {
      fix_block_scales_kernel<<<blocks_for(n_blocks, kThreads), kThreads, 0, ctx.stream>>>(
          data.as<uint8_t>(), n_blocks, bl.block_bytes, offset, with_min, seed ^ 0x5ca1e);
      GE_RETURN_IF_ERROR(check_launch("synthesize scales"));
    }
  } else {
    const int64_t n_meta = static_cast<int64_t>(sizes.scale / 2);
    fill_group_meta_kernel<<<blocks_for(n_meta, kThreads), kThreads, 0, ctx.stream>>>(
        scale.as<uint16_t>(), with_zero ? zero.get() : nullptr, n_meta, type == QuantType::kInt4Group,
        seed ^ 0x5ca1e);
    GE_RETURN_IF_ERROR(check_launch("synthesize group metadata"));
  }
  src.data = data.as<const uint8_t>();
  src.scale = scale.as<const uint16_t>();
  src.zero = zero.get();

  if (geo.layout == WeightLayout::kTiled4 || geo.layout == WeightLayout::kTiled8) {
    GE_RETURN_IF_ERROR(repack_tiled(src, geo, out.get(), with_zero, ctx));
    return std::move(out);
  }
  GE_RETURN_IF_ERROR(cuda_status(cudaStreamSynchronize(ctx.stream), "synthesize weight"));
  out->a_ = std::move(data);
  out->b_ = std::move(scale);
  out->c_ = std::move(zero);
  set_raw_view(out.get(), src, geo.layout);
  return std::move(out);
}

cudaError_t launch_dequantize_f32(const WeightView& w, float* out, const LaunchContext& ctx) {
  const int64_t items = w.rows * ((w.cols + 31) / 32);
  dequantize_kernel<float><<<blocks_for(items, kThreads), kThreads, 0, ctx.stream>>>(w, 0, w.rows, out);
  return cudaGetLastError();
}

cudaError_t launch_dequantize_bf16(const WeightView& w, int64_t row0, int64_t n_rows, __nv_bfloat16* out,
                                   const LaunchContext& ctx) {
  const int64_t items = n_rows * ((w.cols + 31) / 32);
  dequantize_kernel<__nv_bfloat16><<<blocks_for(items, kThreads), kThreads, 0, ctx.stream>>>(w, row0, n_rows, out);
  return cudaGetLastError();
}

}  // namespace ge::cuda
