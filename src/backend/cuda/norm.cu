// RMSNorm kernels: one CTA per row (1024 threads for long rows so a single decode row still spreads
// over a whole SM), sum of squares in fp32 per thread, then a two-level block reduction.
#include "backend/cuda/norm.cuh"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

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

struct AddNormRowsParams {
  float* x;
  const float* a;
  const float* w_post;  // or null
  const float* w_next;  // or null: x only
  float* y;            // or null: no fp32 y
  __nv_bfloat16* y16;  // or null: y rounded to bf16 (a GEMM's input)
  int64_t n;
  float eps, scale;
};

constexpr int kRowVecs = 2;  // float4s per thread: rows up to 8 * 1024 values

// Weights are not produced by the previous kernel, so they are read before grid_dependency_wait
// (under programmatic dependent launch their latency overlaps the previous kernel's tail); a and x are
// then read together, leaving one memory round trip and two block sums on the decode critical path.
static __global__ void add_rms_norm_then_norm_rows_kernel(AddNormRowsParams p) {
  __shared__ float shared[32];
  const int64_t n4 = p.n / 4;
  const float4 one = make_float4(1.0f, 1.0f, 1.0f, 1.0f);
  float4 wp[kRowVecs], wn[kRowVecs];
#pragma unroll
  for (int v = 0; v < kRowVecs; ++v) {
    const int64_t i = threadIdx.x + int64_t{v} * blockDim.x;
    wp[v] = p.w_post && i < n4 ? reinterpret_cast<const float4*>(p.w_post)[i] : one;
    wn[v] = p.w_next && i < n4 ? reinterpret_cast<const float4*>(p.w_next)[i] : one;
  }
  grid_dependency_release();
  grid_dependency_wait();
  const float4* a = reinterpret_cast<const float4*>(p.a + blockIdx.x * p.n);
  float4* x = reinterpret_cast<float4*>(p.x + blockIdx.x * p.n);
  float4 av[kRowVecs], xv[kRowVecs];
  float ss = 0.0f;
#pragma unroll
  for (int v = 0; v < kRowVecs; ++v) {
    const int64_t i = threadIdx.x + int64_t{v} * blockDim.x;
    const bool in = i < n4;
    av[v] = in ? a[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    xv[v] = in ? x[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }
#pragma unroll
  for (int v = 0; v < kRowVecs; ++v) {
    ss = fmaf(av[v].x, av[v].x, ss);
    ss = fmaf(av[v].y, av[v].y, ss);
    ss = fmaf(av[v].z, av[v].z, ss);
    ss = fmaf(av[v].w, av[v].w, ss);
  }
  const float inv = 1.0f / sqrtf(block_sum(ss, shared) / static_cast<float>(p.n) + p.eps);
  float ss2 = 0.0f;
#pragma unroll
  for (int v = 0; v < kRowVecs; ++v) {
    const int64_t i = threadIdx.x + int64_t{v} * blockDim.x;
    if (i >= n4) continue;
    const float4 w = wp[v];
    float4 r = xv[v];
    r.x += av[v].x * inv * w.x;
    r.y += av[v].y * inv * w.y;
    r.z += av[v].z * inv * w.z;
    r.w += av[v].w * inv * w.w;
    if (p.scale != 1.0f) {
      r.x *= p.scale;
      r.y *= p.scale;
      r.z *= p.scale;
      r.w *= p.scale;
    }
    x[i] = r;
    xv[v] = r;
    ss2 = fmaf(r.x, r.x, ss2);
    ss2 = fmaf(r.y, r.y, ss2);
    ss2 = fmaf(r.z, r.z, ss2);
    ss2 = fmaf(r.w, r.w, ss2);
  }
  if (p.w_next == nullptr) return;
  __syncthreads();  // shared[] is reused by the second sum
  const float inv2 = 1.0f / sqrtf(block_sum(ss2, shared) / static_cast<float>(p.n) + p.eps);
#pragma unroll
  for (int v = 0; v < kRowVecs; ++v) {
    const int64_t i = threadIdx.x + int64_t{v} * blockDim.x;
    if (i >= n4) continue;
    const float4 w = wn[v];
    const float4 yv = make_float4(xv[v].x * inv2 * w.x, xv[v].y * inv2 * w.y, xv[v].z * inv2 * w.z, xv[v].w * inv2 * w.w);
    if (p.y) reinterpret_cast<float4*>(p.y + blockIdx.x * p.n)[i] = yv;
    if (p.y16) {
      reinterpret_cast<uint2*>(p.y16 + blockIdx.x * p.n)[i] = make_uint2(pack_bf16x2(yv.x, yv.y), pack_bf16x2(yv.z, yv.w));
    }
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

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

cudaError_t launch_add_rms_norm_then_norm_rows(float* x, const float* a, const float* w_post, float scale,
                                               const float* w_next, int64_t rows, int64_t n, float eps, float* y,
                                               const LaunchContext& ctx, __nv_bfloat16* y_bf16) {
  // GE_CUDA_ROW_NORM=0: always decline (comparisons with the general kernel).
  static const bool enabled = [] {
    const char* e = std::getenv("GE_CUDA_ROW_NORM");
    return e == nullptr || std::strcmp(e, "0") != 0;
  }();
  if (rows <= 0 || n <= 0) return cudaSuccess;
  if (!enabled || rows > 0x7fffffff || n % 4 != 0 || n > int64_t{4} * kRowVecs * 1024 ||
      (w_next != nullptr && y == nullptr && y_bf16 == nullptr) || (y_bf16 != nullptr && w_next == nullptr) ||
      reinterpret_cast<uintptr_t>(y_bf16) % 8 != 0)
    return cudaErrorNotSupported;
  for (const void* ptr : {static_cast<const void*>(x), static_cast<const void*>(a), static_cast<const void*>(w_post),
                          static_cast<const void*>(w_next), static_cast<const void*>(y)}) {
    if (!aligned16(ptr)) return cudaErrorNotSupported;
  }
  const int64_t per_thread = int64_t{4} * kRowVecs;
  const int threads = static_cast<int>(std::max<int64_t>(32, (n + per_thread - 1) / per_thread + 31) / 32 * 32);
  return launch_pdl(add_rms_norm_then_norm_rows_kernel, dim3(static_cast<unsigned>(rows)), threads, 0,
                    AddNormRowsParams{x, a, w_post, w_next, y, y_bf16, n, eps, scale}, ctx);
}

}  // namespace ge::cuda
