// RoPE kernel: one thread per (token, head, pair j < d/2). The angle is positions[t] * inv_freq[j]
// in fp32 like the reference; sincosf (not the fast intrinsic) keeps large angles accurate.
#include "backend/cuda/rope.cuh"

namespace ge::cuda {
namespace {

struct RopeParams {
  float* x;
  const int32_t* positions;
  const float* inv_freq;
  int64_t n_tokens, n_heads, half;
  uint32_t* error_word;
};

static __global__ void rope_kernel(RopeParams p) {
  const int64_t total = p.n_tokens * p.n_heads * p.half;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t j = i % p.half;
    const int64_t th = i / p.half;  // token * n_heads + head
    const int64_t t = th / p.n_heads;
    const float f = p.inv_freq[j];
    if (f == 0.0f) continue;  // proportional RoPE: this pair does not rotate
    const int32_t pos = p.positions[t];
    if (pos < 0) {
      raise_device_error(p.error_word, kErrPosition);
      continue;
    }
    const float angle = static_cast<float>(pos) * f;
    float s, c;
    sincosf(angle, &s, &c);
    float* v = p.x + th * 2 * p.half;
    const float a = v[j], b = v[j + p.half];
    v[j] = a * c - b * s;
    v[j + p.half] = b * c + a * s;
  }
}

}  // namespace

cudaError_t launch_rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, const int32_t* positions,
                        const float* inv_freq, const LaunchContext& ctx) {
  const int64_t half = head_dim / 2;
  const int64_t total = n_tokens * n_heads * half;
  if (total <= 0) return cudaSuccess;
  rope_kernel<<<blocks_for(total, 256, 8192), 256, 0, ctx.stream>>>(
      RopeParams{x, positions, inv_freq, n_tokens, n_heads, half, ctx.error_word});
  return cudaGetLastError();
}

}  // namespace ge::cuda
