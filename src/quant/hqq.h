// HQQ (half-quadratic quantization) for int4 groups: min-max start, then a few proximal steps
// that move each group's zero point to minimise an l_p (p < 1) reconstruction error, which
// discounts outliers. Output is the kInt4Group layout of quantize_int4_group_minmax.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "quant/quantize.h"

namespace ge {

// torchao's defaults (optimize_weights_proximal_legacy).
struct HqqOptions {
  float lp_norm = 0.7f;  // p of the l_p error the shrinkage step minimises
  float beta = 10.0f;    // initial penalty; the shrink threshold is 1/beta
  float kappa = 1.01f;   // beta grows by this factor each step
  int iters = 20;
  bool early_stop = true;  // stop once the tensor-wide mean |error| stops falling
};

// Per group (as torchao's _choose_qparams_and_quantize_affine_hqq, axis 1, 4 bits):
//   iscale = min(15 / (max − min), 2e4), zero = round(−min · iscale), then up to `iters` steps of
//     q = clamp(round(x·iscale + zero), 0, 15);  r = (q − zero) / iscale
//     e = shrink_p(x − r);  zero = mean(q − (x − e)·iscale)
//   early stop uses the mean |x − r| over the whole tensor (as torchao), keeping the last update.
// Stored: scale = bf16(1 / iscale), zero = bf16(zero); q is recomputed against the stored values so
// the bytes decode consistently with dequantize_row: w = (q − zero)·scale.
Result<Int4GroupData> quantize_int4_group_hqq(const float* src, int64_t rows, int64_t cols,
                                              int64_t group_size, const HqqOptions& options = {});

}  // namespace ge
