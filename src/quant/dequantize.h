// Reference (scalar, obviously correct) decoders and dot products for every QuantType.
// Backends test their packed kernels against these.
#pragma once

#include <cstdint>

#include "quant/quant_type.h"

namespace ge {

// Decodes `n` consecutive elements of a row-blocked encoding (n a multiple of the block).
void dequantize_blocks(QuantType type, const void* src, int64_t n, float* dst);

// Decodes row `row` of w into dst[0..cols). Group types evaluate (float(q) − zero) · scale in fp32.
// w must have passed validate_weight; a row out of range is a CHECK failure.
void dequantize_row(const QuantWeight& w, int64_t row, float* dst);

// Σ_k w[row, k] · x[k], computed from the fp32 dequantized row (products and sum in double,
// rounded once to float, so the oracle is tighter than the kernels compared with it).
float dot_row(const QuantWeight& w, int64_t row, const float* x);

}  // namespace ge
