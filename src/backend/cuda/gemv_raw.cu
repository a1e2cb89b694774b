// Decode-in-kernel GEMV for the raw layouts (row-blocked ggml encodings, floats, torchao groups
// with group sizes the tiled layout does not take): one warp per weight row, each lane decodes
// 32-element slices with the reference-exact decoder and accumulates in fp32.
#include <algorithm>

#include "backend/cuda/gemv.cuh"

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

cudaError_t launch_gemv_raw(const WeightView& w, const float* x, int64_t m, float* y, const LaunchContext& ctx) {
  switch (w.type) {
    case QuantType::kF32: return launch_raw_typed<QuantType::kF32>(w, x, m, y, ctx);
    case QuantType::kF16: return launch_raw_typed<QuantType::kF16>(w, x, m, y, ctx);
    case QuantType::kBF16: return launch_raw_typed<QuantType::kBF16>(w, x, m, y, ctx);
    case QuantType::kQ4_0: return launch_raw_typed<QuantType::kQ4_0>(w, x, m, y, ctx);
    case QuantType::kQ5_0: return launch_raw_typed<QuantType::kQ5_0>(w, x, m, y, ctx);
    case QuantType::kQ8_0: return launch_raw_typed<QuantType::kQ8_0>(w, x, m, y, ctx);
    case QuantType::kQ4_K: return launch_raw_typed<QuantType::kQ4_K>(w, x, m, y, ctx);
    case QuantType::kQ5_K: return launch_raw_typed<QuantType::kQ5_K>(w, x, m, y, ctx);
    case QuantType::kQ6_K: return launch_raw_typed<QuantType::kQ6_K>(w, x, m, y, ctx);
    case QuantType::kInt4Group: return launch_raw_typed<QuantType::kInt4Group>(w, x, m, y, ctx);
    case QuantType::kInt8Group: return launch_raw_typed<QuantType::kInt8Group>(w, x, m, y, ctx);
  }
  return cudaErrorInvalidValue;
}

}  // namespace ge::cuda
