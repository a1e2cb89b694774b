// NeoX ("rotate half") RoPE in place on [n_tokens, n_heads, head_dim] with positions and the
// inverse-frequency table in device memory; zero frequencies leave their pair untouched
// (Gemma 4's proportional RoPE).
#pragma once

#include "backend/cuda/cuda_common.cuh"

namespace ge::cuda {

cudaError_t launch_rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, const int32_t* positions,
                        const float* inv_freq, const LaunchContext& ctx);

}  // namespace ge::cuda
