// Elementwise ops (add, scale, softcap, gelu_tanh * up) and the embedding gather, all on fp32
// activations in device memory.
#pragma once

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/packed_weight.cuh"

namespace ge::cuda {

// gelu_tanh(g) * u as the CPU reference writes it; shared by gelu_tanh_mul and the GEMM input
// conversion (gemm.cu) so both round the same fp32 product.
__device__ __forceinline__ float gelu_tanh_times(float g, float u) {
  const float k0 = 0.7978845608028654f;  // sqrt(2/pi)
  const float gelu = 0.5f * g * (1.0f + tanhf(k0 * (g + 0.044715f * g * g * g)));
  return gelu * u;
}

cudaError_t launch_add(const float* a, const float* b, int64_t n, float* out, const LaunchContext& ctx);
cudaError_t launch_scale(float* x, int64_t n, float s, const LaunchContext& ctx);
cudaError_t launch_softcap(float* x, int64_t n, float cap, const LaunchContext& ctx);
cudaError_t launch_gelu_tanh_mul(const float* gate, const float* up, int64_t n, float* out,
                                 const LaunchContext& ctx);
// out[t, :] = table[tokens[t], :] * scale; bad ids raise kErrTokenRange and give a zero row.
cudaError_t launch_embed(const int32_t* tokens, int64_t n_tokens, const WeightView& table, float scale, float* out,
                         const LaunchContext& ctx);

}  // namespace ge::cuda
