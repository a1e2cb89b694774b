// Launchers of the K-quant decode GEMV (gemv_kquant.cu) on the backend's WeightView.
#pragma once

#include "backend/cuda/gemv.cuh"
#include "backend/cuda/gemv_kquant.h"

namespace ge::cuda {

// True when launch_gemv_kquant takes w: Q4_K / Q5_K / Q6_K raw blocks, 16-byte aligned base,
// contiguous rows, and the kernels are enabled.
bool gemv_kquant_supported(const WeightView& w, const float* x);

// y [m, w.rows] = x [m, w.cols] · wᵀ, any m >= 1 (16 rows of x per launch). w must be supported.
cudaError_t launch_gemv_kquant(const WeightView& w, const float* x, int64_t m, float* y, const LaunchContext& ctx);

// The raw GEMV of every encoding without the K-quant kernels (gemv_raw.cu): the generic
// per-element kernel, and the exact-decode Q4_K kernel.
cudaError_t launch_gemv_raw_generic(const WeightView& w, const float* x, int64_t m, float* y,
                                    const LaunchContext& ctx);

}  // namespace ge::cuda
