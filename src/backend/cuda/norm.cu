// RMSNorm kernels: one CTA per row (1024 threads for long rows so a single decode row still spreads
// over a whole SM), sum of squares in fp32 per thread, then a two-level block reduction.
#include "backend/cuda/norm.cuh"

namespace ge::cuda {
namespace {

struct NormParams {
  const float* x;  // [rows, n] input of the norm
  const float* w;  // [n] or null
  float* y;        // [rows, n] output (may alias x)
  float* residual;  // fused: [rows, n], receives residual += norm(x) * w; y unused
  int64_t n;
  float eps;
};

__device__ __forceinline__ float block_sum(float v, float* shared) {
  v = warp_sum(v);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int n_warps = blockDim.x >> 5;
  v = lane < n_warps ? shared[lane] : 0.0f;
  v = warp_sum(v);
  return v;
}

static __global__ void rms_norm_kernel(NormParams p) {
  __shared__ float shared[32];
  const int64_t row = blockIdx.x;
  const float* x = p.x + row * p.n;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < p.n; i += blockDim.x) ss = fmaf(x[i], x[i], ss);
  ss = block_sum(ss, shared);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(p.n) + p.eps);
  if (p.residual != nullptr) {
    float* r = p.residual + row * p.n;
    for (int64_t i = threadIdx.x; i < p.n; i += blockDim.x) r[i] += x[i] * inv * (p.w ? p.w[i] : 1.0f);
  } else {
    float* y = p.y + row * p.n;
    for (int64_t i = threadIdx.x; i < p.n; i += blockDim.x) y[i] = x[i] * inv * (p.w ? p.w[i] : 1.0f);
  }
}

int threads_for(int64_t n) { return n >= 4096 ? 1024 : (n >= 1024 ? 512 : 256); }

}  // namespace

cudaError_t launch_rms_norm(const float* x, const float* w, int64_t rows, int64_t n, float eps, float* y,
                            const LaunchContext& ctx) {
  if (rows <= 0 || n <= 0) return cudaSuccess;
  if (rows > 0x7fffffff) return cudaErrorInvalidValue;
  rms_norm_kernel<<<static_cast<unsigned>(rows), threads_for(n), 0, ctx.stream>>>(
      NormParams{x, w, y, nullptr, n, eps});
  return cudaGetLastError();
}

cudaError_t launch_add_rms_norm(float* x, const float* a, const float* w, int64_t rows, int64_t n, float eps,
                                const LaunchContext& ctx) {
  if (rows <= 0 || n <= 0) return cudaSuccess;
  if (rows > 0x7fffffff) return cudaErrorInvalidValue;
  rms_norm_kernel<<<static_cast<unsigned>(rows), threads_for(n), 0, ctx.stream>>>(
      NormParams{a, w, nullptr, x, n, eps});
  return cudaGetLastError();
}

}  // namespace ge::cuda
