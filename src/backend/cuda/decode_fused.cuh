// Fused kernels that cut the decode step's kernel count: the attention prologue (q/k/v head norms,
// RoPE, K/V into the bf16 cache) in one launch, and residual add-norm + layer scale + the next
// block's input norm in one launch. Arithmetic follows the separate kernels (see decode_fused.cu).
#pragma once

#include "backend/backend.h"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/kv_cache.cuh"

namespace ge::cuda {

// With batch.bases set, token t is one decode step of its own sequence: its K/V go to the cache
// batch.bases[t] (`layer` gives the geometry), so a decode batch's prologue is one launch.
cudaError_t launch_attention_prologue(const CudaKvCache::Layer& layer, const AttentionPrologue& p,
                                      const LaunchContext& ctx, const KvBatchView& batch = {});

// The general add-norm chain (any n, any alignment; one CTA per row, bit-identical to the separate
// ops). The backend uses norm.cuh's launch_add_rms_norm_then_norm_rows where it applies.
cudaError_t launch_add_rms_norm_then_norm(float* x, const float* a, const float* w_post, float scale,
                                          const float* w_next, int64_t rows, int64_t n, float eps, float* y,
                                          const LaunchContext& ctx);

}  // namespace ge::cuda
