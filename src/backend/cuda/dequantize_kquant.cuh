// The K-quant bf16 dequantizer (dequantize_kquant.cu) on the backend's WeightView.
#pragma once

#include "backend/cuda/dequantize_kquant.h"
#include "backend/cuda/packed_weight.cuh"

namespace ge::cuda {

// True for Q4_K / Q5_K / Q6_K raw blocks with contiguous rows and 16-byte aligned data and output
// (and the K-quant kernels enabled: GE_CUDA_KQUANT != 0).
bool dequantize_kquant_supported(const WeightView& w, const void* out);

// Rows [row0, row0 + n_rows) to row-major bf16 [n_rows, cols], bit-exact with the reference decoder
// rounded to bf16. w must be supported.
cudaError_t launch_dequantize_kquant_bf16(const WeightView& w, int64_t row0, int64_t n_rows, __nv_bfloat16* out,
                                          const LaunchContext& ctx);

}  // namespace ge::cuda
