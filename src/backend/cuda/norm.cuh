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

// Add-norm chain for decode and prefill (rows of n % 4 == 0, n <= 8192, 16-byte aligned operands):
// x += rms_norm(a) * w_post; x *= scale; y = rms_norm(x) * w_next (w_next null: no y). Each thread keeps
// its 8 values of a row in registers, so a and x are read once and x, y written once; launched with
// programmatic dependent launch when ctx allows (the weights are read before the wait). Returns
// cudaErrorNotSupported for shapes outside that range (the caller keeps its general kernel).
// y_bf16 (with w_next; 8-byte aligned): y also as bf16 [rows, n], rounded as the GEMM rounds its input;
// y may then be null (no fp32 y).
cudaError_t launch_add_rms_norm_then_norm_rows(float* x, const float* a, const float* w_post, float scale,
                                               const float* w_next, int64_t rows, int64_t n, float eps, float* y,
                                               const LaunchContext& ctx, __nv_bfloat16* y_bf16 = nullptr);

}  // namespace ge::cuda
