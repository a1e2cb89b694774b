// Decode-in-kernel GEMV for the raw layouts (row-blocked ggml encodings, floats, torchao groups
// with group sizes the tiled layout does not take): one warp per weight row, each lane decodes
// 32-element slices with the reference-exact decoder and accumulates in fp32. K-quant rows go to
// gemv_kquant.cu; the generic and exact-decode Q4_K kernels stay for other shapes and comparison.
#include <algorithm>
#include <cstdint>

#include "backend/cuda/gemv.cuh"
#include "backend/cuda/gemv_kquant.cuh"

namespace ge::cuda {
namespace {

constexpr int kRowsPerCta = 8;  // one warp per row

template <QuantType kType>
static __global__ void __launch_bounds__(kRowsPerCta * 32) gemv_raw_kernel(WeightView w, const float* x, float* y,
                                                                          int m) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t row = int64_t{blockIdx.x} * kRowsPerCta + warp;
  if (row >= w.rows) return;
  const int64_t K = w.cols;
  float acc[kGemvMaxM];
#pragma unroll
  for (int n = 0; n < kGemvMaxM; ++n) acc[n] = 0.0f;
  const int64_t n32 = (K + 31) / 32;
  for (int64_t j = lane; j < n32; j += 32) {
    float v[32];
    raw_decode32_typed<kType>(w, row, j * 32, v);
    const int64_t k0 = j * 32;
    const int valid = K - k0 < 32 ? static_cast<int>(K - k0) : 32;
#pragma unroll
    for (int n = 0; n < kGemvMaxM; ++n) {
      if (n < m) {
        const float* xr = x + n * K + k0;
        float s = 0.0f;
#pragma unroll
        for (int i = 0; i < 32; ++i) {
          if (i < valid) s = fmaf(v[i], __ldg(xr + i), s);
        }
        acc[n] += s;
      }
    }
  }
#pragma unroll
  for (int n = 0; n < kGemvMaxM; ++n) {
    if (n < m) {
      const float s = warp_sum(acc[n]);
      if (lane == 0) y[int64_t{n} * w.rows + row] = s;
    }
  }
}

// Q4_K: one warp per two rows, so every x load serves both. Lanes 8b..8b+7 take block b of a step
// of four 256-element blocks; lane i of a block loads its 16-byte header (d, dmin, 12 scale bytes)
// and qs bytes [16i, 16i + 16), whose low nibbles are elements 64(i/2) + 16(i%2) + [0, 16)
// (sub-block 2(i/2)) and high nibbles the same + 32 (sub-block 2(i/2) + 1). Every weight is
// decoded as dl·q − ml with the reference's roundings, then multiplied by x in fp32.
constexpr int kQ4kRows = 2;

// 6-bit scale and min of sub-block jj (0..7) from scale words Y = s[0..3], Z = s[4..7], W = s[8..11].
__device__ __forceinline__ void q4k_scale_min(uint32_t Y, uint32_t Z, uint32_t W, int jj, float* sc, float* mn) {
  const int sh = 8 * (jj & 3);
  const uint32_t y = (Y >> sh) & 0xffu, z = (Z >> sh) & 0xffu, wv = (W >> sh) & 0xffu;
  if (jj < 4) {
    *sc = static_cast<float>(y & 63u);
    *mn = static_cast<float>(z & 63u);
  } else {
    *sc = static_cast<float>((wv & 15u) | ((y >> 6) << 4));
    *mn = static_cast<float>((wv >> 4) | ((z >> 6) << 4));
  }
}

// 16 nibbles (low or high halves of the 16 bytes of q) as exact floats: 2^23 + v minus 2^23.
__device__ __forceinline__ void q4k_nibbles(const uint4& q, int shift, float dl, float ml, float (&v)[16]) {
  const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
  for (int wi = 0; wi < 4; ++wi) {
    const uint32_t nib = (words[wi] >> shift) & 0x0f0f0f0fu;
#pragma unroll
    for (int b = 0; b < 4; ++b) {
      const float f = __uint_as_float(__byte_perm(nib, 0x4b000000u, 0x7650u + b)) - 8388608.0f;
      v[wi * 4 + b] = __fsub_rn(__fmul_rn(dl, f), ml);
    }
  }
}

static __global__ void __launch_bounds__(kRowsPerCta * 32) gemv_q4k_kernel(WeightView w, const float* x, float* y,
                                                                           int m) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t row0 = (int64_t{blockIdx.x} * kRowsPerCta + warp) * kQ4kRows;
  if (row0 >= w.rows) return;
  const int64_t K = w.cols, nb = K / 256;
  const int bi = lane >> 3, i = lane & 7, j = i >> 1;
  const int koff = 64 * j + 16 * (i & 1);
  float acc[kQ4kRows][kGemvMaxM];
#pragma unroll
  for (int r = 0; r < kQ4kRows; ++r) {
#pragma unroll
    for (int n = 0; n < kGemvMaxM; ++n) acc[r][n] = 0.0f;
  }
  // Blocks of the next step load while this one computes (one step of bytes in flight more).
  uint4 hdr_next[kQ4kRows], q_next[kQ4kRows];
  auto load = [&](int64_t b) {
#pragma unroll
    for (int r = 0; r < kQ4kRows; ++r) {
      const int64_t row = row0 + r < w.rows ? row0 + r : row0;
      const uint8_t* blk = w.raw + row * w.row_bytes + b * 144;
      hdr_next[r] = __ldg(reinterpret_cast<const uint4*>(blk));
      q_next[r] = load_stream(reinterpret_cast<const uint4*>(blk + 16 + 16 * i));
    }
  };
  if (bi < nb) load(bi);
  for (int64_t b = bi; b < nb; b += 4) {
    uint4 hdr[kQ4kRows], q[kQ4kRows];
#pragma unroll
    for (int r = 0; r < kQ4kRows; ++r) {
      hdr[r] = hdr_next[r];
      q[r] = q_next[r];
    }
    if (b + 4 < nb) load(b + 4);
#pragma unroll
    for (int half = 0; half < 2; ++half) {  // low nibbles: sub-block 2j; high: 2j + 1, 32 columns on
      float v[kQ4kRows][16];
#pragma unroll
      for (int r = 0; r < kQ4kRows; ++r) {
        const float d = fp16_bits_to_f32(hdr[r].x & 0xffffu), dmin = fp16_bits_to_f32(hdr[r].x >> 16);
        float sc, mn;
        q4k_scale_min(hdr[r].y, hdr[r].z, hdr[r].w, 2 * j + half, &sc, &mn);
        q4k_nibbles(q[r], 4 * half, __fmul_rn(d, sc), __fmul_rn(dmin, mn), v[r]);
      }
      const int64_t k0 = b * 256 + koff + 32 * half;
#pragma unroll
      for (int n = 0; n < kGemvMaxM; ++n) {
        if (n < m) {
          const float4* xr = reinterpret_cast<const float4*>(x + n * K + k0);
#pragma unroll
          for (int e4 = 0; e4 < 4; ++e4) {
            const float4 xv = __ldg(xr + e4);
#pragma unroll
            for (int r = 0; r < kQ4kRows; ++r) {
              acc[r][n] = fmaf(v[r][4 * e4 + 0], xv.x, acc[r][n]);
              acc[r][n] = fmaf(v[r][4 * e4 + 1], xv.y, acc[r][n]);
              acc[r][n] = fmaf(v[r][4 * e4 + 2], xv.z, acc[r][n]);
              acc[r][n] = fmaf(v[r][4 * e4 + 3], xv.w, acc[r][n]);
            }
          }
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kQ4kRows; ++r) {
#pragma unroll
    for (int n = 0; n < kGemvMaxM; ++n) {
      if (n < m) {
        const float s = warp_sum(acc[r][n]);
        if (lane == 0 && row0 + r < w.rows) y[int64_t{n} * w.rows + row0 + r] = s;
      }
    }
  }
}

}  // namespace

template <QuantType kType>
cudaError_t launch_raw_typed(const WeightView& w, const float* x, int64_t m, float* y, const LaunchContext& ctx) {
  const unsigned grid = static_cast<unsigned>((w.rows + kRowsPerCta - 1) / kRowsPerCta);
  for (int64_t m0 = 0; m0 < m; m0 += kGemvMaxM) {
    const int mc = static_cast<int>(std::min<int64_t>(kGemvMaxM, m - m0));
    gemv_raw_kernel<kType><<<grid, kRowsPerCta * 32, 0, ctx.stream>>>(w, x + m0 * w.cols, y + m0 * w.rows, mc);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

// Q4_K rows need 16-byte aligned blocks (row_bytes is a multiple of 144 and the upload is aligned).
cudaError_t launch_q4k(const WeightView& w, const float* x, int64_t m, float* y, const LaunchContext& ctx) {
  if (reinterpret_cast<uintptr_t>(w.raw) % 16 != 0 || reinterpret_cast<uintptr_t>(x) % 16 != 0 || w.cols % 256 != 0 ||
      gemv_schedule_override() == 1) {
    return launch_raw_typed<QuantType::kQ4_K>(w, x, m, y, ctx);
  }
  const int64_t rows_per_cta = int64_t{kRowsPerCta} * kQ4kRows;
  const unsigned grid = static_cast<unsigned>((w.rows + rows_per_cta - 1) / rows_per_cta);
  for (int64_t m0 = 0; m0 < m; m0 += kGemvMaxM) {
    const int mc = static_cast<int>(std::min<int64_t>(kGemvMaxM, m - m0));
    gemv_q4k_kernel<<<grid, kRowsPerCta * 32, 0, ctx.stream>>>(w, x + m0 * w.cols, y + m0 * w.rows, mc);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

cudaError_t launch_gemv_raw_generic(const WeightView& w, const float* x, int64_t m, float* y,
                                    const LaunchContext& ctx) {
  switch (w.type) {
    case QuantType::kF32: return launch_raw_typed<QuantType::kF32>(w, x, m, y, ctx);
    case QuantType::kF16: return launch_raw_typed<QuantType::kF16>(w, x, m, y, ctx);
    case QuantType::kBF16: return launch_raw_typed<QuantType::kBF16>(w, x, m, y, ctx);
    case QuantType::kQ4_0: return launch_raw_typed<QuantType::kQ4_0>(w, x, m, y, ctx);
    case QuantType::kQ5_0: return launch_raw_typed<QuantType::kQ5_0>(w, x, m, y, ctx);
    case QuantType::kQ8_0: return launch_raw_typed<QuantType::kQ8_0>(w, x, m, y, ctx);
    case QuantType::kQ4_K: return launch_q4k(w, x, m, y, ctx);
    case QuantType::kQ5_K: return launch_raw_typed<QuantType::kQ5_K>(w, x, m, y, ctx);
    case QuantType::kQ6_K: return launch_raw_typed<QuantType::kQ6_K>(w, x, m, y, ctx);
    case QuantType::kInt4Group: return launch_raw_typed<QuantType::kInt4Group>(w, x, m, y, ctx);
    case QuantType::kInt8Group: return launch_raw_typed<QuantType::kInt8Group>(w, x, m, y, ctx);
  }
  return cudaErrorInvalidValue;
}

cudaError_t launch_gemv_raw(const WeightView& w, const float* x, int64_t m, float* y, const LaunchContext& ctx) {
  if (gemv_kquant_supported(w, x) && gemv_schedule_override() != 1) return launch_gemv_kquant(w, x, m, y, ctx);
  return launch_gemv_raw_generic(w, x, m, y, ctx);
}

}  // namespace ge::cuda
