// K-quant (Q4_K, Q5_K, Q6_K) raw blocks to row-major bf16 for the prefill GEMM: one warp per
// 256-element block, lane l decodes elements [8l, 8l + 8) with the reference's roundings and writes
// them as one 16-byte store, so a warp writes the block's 512 output bytes contiguously.
#include "backend/cuda/dequantize_kquant.cuh"

#include <algorithm>

#include "backend/cuda/gemv_kquant.h"

namespace ge::cuda {
namespace {

constexpr int kWarps = 8;

int block_bytes(QuantType t) {
  switch (t) {
    case QuantType::kQ4_K: return 144;
    case QuantType::kQ5_K: return 176;
    case QuantType::kQ6_K: return 210;
    default: return 0;
  }
}

// 8 bytes at p, p 2-byte aligned; the alignment is the same for every lane of the warp (one block
// per warp, offsets multiples of 8), so the branch does not diverge.
__device__ __forceinline__ uint2 load8_aligned2(const uint8_t* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if ((a & 7u) == 0) return __ldg(reinterpret_cast<const uint2*>(p));
  if ((a & 3u) == 0) {
    const uint32_t* q = reinterpret_cast<const uint32_t*>(p);
    return make_uint2(__ldg(q), __ldg(q + 1));
  }
  const uint16_t* q = reinterpret_cast<const uint16_t*>(p);
  return make_uint2(static_cast<uint32_t>(__ldg(q)) | (static_cast<uint32_t>(__ldg(q + 1)) << 16),
                    static_cast<uint32_t>(__ldg(q + 2)) | (static_cast<uint32_t>(__ldg(q + 3)) << 16));
}

__device__ __forceinline__ int byte_of(uint2 v, int e) { return static_cast<int>(((e < 4 ? v.x : v.y) >> (8 * (e & 3))) & 0xffu); }

// ggml's 6-bit scale and min of sub-block jj from the 12 scale bytes (words Y, Z, W of the header).
__device__ __forceinline__ void scale_min(const uint4& hdr, int jj, int* sc, int* mn) {
  const int sh = 8 * (jj & 3);
  const uint32_t y = (hdr.y >> sh) & 0xffu, z = (hdr.z >> sh) & 0xffu, w = (hdr.w >> sh) & 0xffu;
  if (jj < 4) {
    *sc = static_cast<int>(y & 63u);
    *mn = static_cast<int>(z & 63u);
  } else {
    *sc = static_cast<int>((w & 15u) | ((y >> 6) << 4));
    *mn = static_cast<int>((w >> 4) | ((z >> 6) << 4));
  }
}

// Elements [8l, 8l + 8) of one block, as the reference decoders compute them.
template <QuantType T>
__device__ __forceinline__ void decode8(const uint8_t* blk, int l, float (&v)[8]) {
  if constexpr (T == QuantType::kQ4_K || T == QuantType::kQ5_K) {
    constexpr bool kFive = T == QuantType::kQ5_K;
    const int jj = l >> 2, t0 = 8 * (l & 3);  // sub-block, first element in it
    const uint4 hdr = __ldg(reinterpret_cast<const uint4*>(blk));
    const uint2 q = __ldg(reinterpret_cast<const uint2*>(blk + (kFive ? 48 : 16) + 32 * (jj >> 1) + t0));
    uint2 qh = make_uint2(0u, 0u);
    if constexpr (kFive) qh = __ldg(reinterpret_cast<const uint2*>(blk + 16 + t0));
    int sc, mn;
    scale_min(hdr, jj, &sc, &mn);
    const float dl = __fmul_rn(fp16_bits_to_f32(hdr.x & 0xffffu), static_cast<float>(sc));
    const float ml = __fmul_rn(fp16_bits_to_f32(hdr.x >> 16), static_cast<float>(mn));
    const int shift = 4 * (jj & 1);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      int c = (byte_of(q, e) >> shift) & 0x0f;
      if constexpr (kFive) c |= ((byte_of(qh, e) >> jj) & 1) << 4;
      v[e] = __fsub_rn(__fmul_rn(dl, static_cast<float>(c)), ml);
    }
  } else {
    const int h = l >> 4, r = 8 * (l & 15);  // half, first element in it
    const uint2 ql = load8_aligned2(blk + 64 * h + (r & 63));
    const uint2 qh = load8_aligned2(blk + 128 + 32 * h + (r & 31));
    const int8_t sc = static_cast<int8_t>(__ldg(blk + 192 + (l >> 1)));
    const float d = fp16_bits_to_f32(__ldg(reinterpret_cast<const uint16_t*>(blk + 208)));
    const float dl = __fmul_rn(d, static_cast<float>(sc));
    const int ls = 4 * (r >> 6), hs = 2 * (r >> 5);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int c = ((byte_of(ql, e) >> ls) & 0x0f) | (((byte_of(qh, e) >> hs) & 0x03) << 4);
      v[e] = __fmul_rn(dl, static_cast<float>(c - 32));
    }
  }
}

// Blocks [block0, block0 + n_blocks) of the flat block array: rows are contiguous, so block g of the
// range is output elements [256g, 256g + 256) of the row-major bf16 rows.
template <QuantType T>
static __global__ void __launch_bounds__(kWarps * 32)
    dequantize_kquant_kernel(const uint8_t* raw, int64_t block0, int64_t n_blocks, __nv_bfloat16* out) {
  constexpr int kBytes = T == QuantType::kQ4_K ? 144 : (T == QuantType::kQ5_K ? 176 : 210);
  const int lane = threadIdx.x & 31;
  const int64_t stride = int64_t{gridDim.x} * kWarps;
  for (int64_t g = int64_t{blockIdx.x} * kWarps + (threadIdx.x >> 5); g < n_blocks; g += stride) {
    float v[8];
    decode8<T>(raw + (block0 + g) * kBytes, lane, v);
    const uint4 o = make_uint4(pack_bf16x2(v[0], v[1]), pack_bf16x2(v[2], v[3]), pack_bf16x2(v[4], v[5]),
                               pack_bf16x2(v[6], v[7]));
    *reinterpret_cast<uint4*>(out + g * 256 + 8 * lane) = o;
  }
}

cudaError_t launch_typed(QuantType type, const uint8_t* raw, int64_t block0, int64_t n_blocks, __nv_bfloat16* out,
                         int num_sms, cudaStream_t stream) {
  if (n_blocks <= 0) return cudaSuccess;
  const int64_t ctas = std::min<int64_t>((n_blocks + kWarps - 1) / kWarps, int64_t{std::max(num_sms, 1)} * 16);
  const unsigned grid = static_cast<unsigned>(ctas);
  switch (type) {
    case QuantType::kQ4_K:
      dequantize_kquant_kernel<QuantType::kQ4_K><<<grid, kWarps * 32, 0, stream>>>(raw, block0, n_blocks, out);
      break;
    case QuantType::kQ5_K:
      dequantize_kquant_kernel<QuantType::kQ5_K><<<grid, kWarps * 32, 0, stream>>>(raw, block0, n_blocks, out);
      break;
    case QuantType::kQ6_K:
      dequantize_kquant_kernel<QuantType::kQ6_K><<<grid, kWarps * 32, 0, stream>>>(raw, block0, n_blocks, out);
      break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace

bool dequantize_kquant_supported(const WeightView& w, const void* out) {
  const int bb = block_bytes(w.type);
  return bb > 0 && kquant_kernels_enabled() && w.layout == WeightLayout::kRawBlocks && w.cols > 0 &&
         w.cols % 256 == 0 && w.row_bytes == w.cols / 256 * bb && reinterpret_cast<uintptr_t>(w.raw) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(out) % 16 == 0;
}

cudaError_t launch_dequantize_kquant_bf16(const WeightView& w, int64_t row0, int64_t n_rows, __nv_bfloat16* out,
                                          const LaunchContext& ctx) {
  if (n_rows <= 0) return cudaSuccess;
  if (row0 < 0 || row0 + n_rows > w.rows) return cudaErrorInvalidValue;
  const int64_t nb = w.cols / 256;
  return launch_typed(w.type, w.raw, row0 * nb, n_rows * nb, out, ctx.num_sms, ctx.stream);
}

cudaError_t dequantize_kquant_bf16_lab(QuantType type, const uint8_t* raw, int64_t rows, int64_t cols, int64_t row0,
                                       int64_t n_rows, uint16_t* out, int num_sms, cudaStream_t stream) {
  const int bb = block_bytes(type);
  if (bb == 0 || rows <= 0 || cols <= 0 || cols % 256 != 0 || row0 < 0 || n_rows < 0 || row0 + n_rows > rows ||
      reinterpret_cast<uintptr_t>(raw) % 16 != 0 || reinterpret_cast<uintptr_t>(out) % 16 != 0) {
    return cudaErrorInvalidValue;
  }
  const int64_t nb = cols / 256;
  return launch_typed(type, raw, row0 * nb, n_rows * nb, reinterpret_cast<__nv_bfloat16*>(out), num_sms, stream);
}

}  // namespace ge::cuda
