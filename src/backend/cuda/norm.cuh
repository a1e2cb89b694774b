// RMSNorm over rows of fp32 activations, plain and fused with the residual add (Gemma's sandwich
// norm: x += rms_norm(a) * w).
#pragma once

#include "backend/cuda/cuda_common.cuh"

namespace ge::cuda {

// y = x / sqrt(mean(x²) + eps) * (w ? w : 1) per row of length n; y may alias x.
cudaError_t launch_rms_norm(const float* x, const float* w, int64_t rows, int64_t n, float eps, float* y,
                            const LaunchContext& ctx);
// x += rms_norm(a) * w per row.
cudaError_t launch_add_rms_norm(float* x, const float* a, const float* w, int64_t rows, int64_t n, float eps,
                                const LaunchContext& ctx);

}  // namespace ge::cuda
