// Elementwise ops (add, scale, softcap, gelu_tanh * up) and the embedding gather, all on fp32
// activations in device memory.
#pragma once

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/packed_weight.cuh"

namespace ge::cuda {

cudaError_t launch_add(const float* a, const float* b, int64_t n, float* out, const LaunchContext& ctx);
cudaError_t launch_scale(float* x, int64_t n, float s, const LaunchContext& ctx);
cudaError_t launch_softcap(float* x, int64_t n, float cap, const LaunchContext& ctx);
cudaError_t launch_gelu_tanh_mul(const float* gate, const float* up, int64_t n, float* out,
                                 const LaunchContext& ctx);
// out[t, :] = table[tokens[t], :] * scale; bad ids raise kErrTokenRange and give a zero row.
cudaError_t launch_embed(const int32_t* tokens, int64_t n_tokens, const WeightView& table, float scale, float* out,
                         const LaunchContext& ctx);

}  // namespace ge::cuda
