// HQQ zero-point optimisation for int4 groups (see hqq.h for the iteration). Scalar fp32, written
// for clarity: it runs once per weight at quantization time, not at inference.
#include "quant/hqq.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace ge {
namespace {

// Generalised soft threshold for the l_p proximal step: sign(d)·max(|d| − |d|^(p−1)/beta, 0).
// d = 0 gives |d|^(p−1) = inf and a result of exactly 0.
float shrink_lp(float d, float beta, float p) {
  const float a = std::fabs(d);
  const float t = a - std::pow(a, p - 1.0f) / beta;
  if (!(t > 0.0f)) return 0.0f;
  return d < 0.0f ? -t : t;
}

// round(v) clamped to the int4 range; NaN (only from absurd, overflowing inputs) maps to 0.
float quantize_value(float v) {
  if (!(v > 0.0f)) return 0.0f;
  return std::min(std::nearbyint(v), 15.0f);
}

}  // namespace

Result<Int4GroupData> quantize_int4_group_hqq(const float* src, int64_t rows, int64_t cols,
                                              int64_t group_size, const HqqOptions& options) {
  if (!(options.beta > 0.0f) || !(options.kappa > 0.0f) || !(options.lp_norm > 0.0f) ||
      options.iters < 0) {
    return invalid_argument(
        "quantize_int4_group_hqq: beta, kappa and lp_norm must be positive and "
        "iters non-negative");
  }
  // Validates the arguments, allocates the output and gives the min-max start in one go.
  GE_ASSIGN_OR_RETURN(Int4GroupData out, quantize_int4_group_minmax(src, rows, cols, group_size));
  const int64_t groups = cols / group_size;
  const size_t n_groups = static_cast<size_t>(rows * groups);
  std::vector<float> iscale(n_groups), zero(n_groups);  // [rows, groups], fp32 while optimising
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const float* x = src + r * cols + g * group_size;
      const auto [mn, mx] = std::minmax_element(x, x + group_size);
      // 15 / 0 = inf for a constant group; the clamp makes it 2e4 as in torchao.
      const float s = std::min(15.0f / (*mx - *mn), 2e4f);
      iscale[r * groups + g] = s;
      zero[r * groups + g] = std::nearbyint(-*mn * s);
    }
  }

  float beta = options.beta;
  double best_error = 1e4;
  const double n_elems = static_cast<double>(rows) * static_cast<double>(cols);
  for (int it = 0; it < options.iters; ++it) {
    double abs_error = 0.0;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t g = 0; g < groups; ++g) {
        const float* x = src + r * cols + g * group_size;
        const float s = iscale[r * groups + g];
        const float z = zero[r * groups + g];
        double zero_sum = 0.0;
        for (int64_t k = 0; k < group_size; ++k) {
          const float q = quantize_value(x[k] * s + z);
          const float rec = (q - z) / s;
          const float e = shrink_lp(x[k] - rec, beta, options.lp_norm);
          zero_sum += q - (x[k] - e) * s;
          abs_error += std::fabs(x[k] - rec);
        }
        zero[r * groups + g] = static_cast<float>(zero_sum / static_cast<double>(group_size));
      }
    }
    beta *= options.kappa;
    const double error = abs_error / n_elems;
    if (options.early_stop) {
      if (error < best_error) {
        best_error = error;
      } else {
        break;
      }
    }
  }

  // Store bf16 parameters ([groups, rows]) and requantize against them.
  std::fill(out.qdata.begin(), out.qdata.end(), 0);
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = src + r * cols;
    uint8_t* q = out.qdata.data() + r * (cols / 2);
    for (int64_t g = 0; g < groups; ++g) {
      const uint16_t scale_bits = f32_to_bf16(1.0f / iscale[r * groups + g]);
      const uint16_t zero_bits = f32_to_bf16(zero[r * groups + g]);
      out.scale[g * rows + r] = scale_bits;
      out.zero[g * rows + r] = zero_bits;
      const float scale = bf16_to_f32(scale_bits);
      const float z = bf16_to_f32(zero_bits);
      for (int64_t k = g * group_size; k < (g + 1) * group_size; ++k) {
        const int v = static_cast<int>(quantize_value(x[k] / scale + z));
        q[k / 2] |= static_cast<uint8_t>(k % 2 == 0 ? v : v << 4);
      }
    }
  }
  return out;
}

}  // namespace ge
