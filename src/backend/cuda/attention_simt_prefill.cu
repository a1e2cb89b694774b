// SIMT prefill attention: grid (ceil(T / 16), n_heads), fp32 online softmax; kept for head dims the
// tensor-core kernel (attention_prefill.cu) does not take.
#include "backend/cuda/attention_kernels.cuh"

namespace ge::cuda::attention_detail {
namespace {

// ---- prefill: grid (ceil(T / 16), n_heads); warp w owns query rows 4w..4w+3 ----
template <int kDj>  // head_dim / 32 upper bound: columns lane + 32 j per lane
static __global__ void __launch_bounds__(kPrefillThreads) attention_prefill_kernel(AttnParams p) {
  extern __shared__ __align__(16) float sm[];
  __shared__ int32_t pos_s[kPrefillRows];
  const int d = p.d, ldk = d + 4, dj = d / 32;
  float* Qs = sm;                          // [16][d]
  float* Ks = Qs + kPrefillRows * d;       // [32][d + 4]: 4-word pad keeps lane-per-key float4 reads conflict-free
  float* Vs = Ks + kPrefillKeys * ldk;     // [32][d]
  const int h = blockIdx.y, kvh = h / p.group;
  const int64_t t0 = int64_t{blockIdx.x} * kPrefillRows;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;

  if (tid < kPrefillRows) pos_s[tid] = t0 + tid < p.n_tokens ? p.positions[t0 + tid] : -1;
  for (int i = tid; i < kPrefillRows * d; i += kPrefillThreads) {
    const int64_t t = t0 + i / d;
    Qs[i] = t < p.n_tokens ? p.q[(t * p.n_heads + h) * d + i % d] : 0.0f;
  }
  __syncthreads();

  // Key range any row of this CTA can see; blocks outside it are never loaded.
  int64_t kmin = INT64_MAX, kmax = -1;
  for (int r = 0; r < kPrefillRows; ++r) {
    if (t0 + r >= p.n_tokens) break;
    int64_t lo, n_vis;
    if (!visible_range(p, pos_s[r], &lo, &n_vis, tid == 0)) continue;
    kmin = min(kmin, lo);
    kmax = max(kmax, int64_t{pos_s[r]});
  }
  if (kmax >= 0 && kmax - kmin + 1 > p.cap) {  // rows span more keys than the ring holds
    if (tid == 0) raise_device_error(p.error_word, kErrKvWindow);
    kmin = kmax - p.cap + 1;
  }

  int64_t row_lo[4], row_pos[4];
  bool row_ok[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = warp * 4 + i;
    int64_t lo = 0, n_vis = 0;
    row_ok[i] = t0 + r < p.n_tokens && visible_range(p, pos_s[r], &lo, &n_vis, false);
    row_lo[i] = lo;
    row_pos[i] = row_ok[i] ? pos_s[r] : -1;
  }
  float m[4], l[4], O[4][kDj];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int j = 0; j < kDj; ++j) O[i][j] = 0.0f;
  }

  for (int64_t kb = kmin; kb <= kmax; kb += kPrefillKeys) {
    const int d8 = d / 8;
    for (int idx = tid; idx < kPrefillKeys * d8; idx += kPrefillThreads) {
      const int jj = idx / d8, c8 = (idx % d8) * 8;
      const int64_t kp = kb + jj;
      float kf[8], vf[8];
      if (kp <= kmax) {
        const int64_t off = ((kp % p.cap) * p.n_kv + kvh) * d + c8;
        bf16x8_to_f32(*reinterpret_cast<const uint4*>(p.k + off), kf);
        bf16x8_to_f32(*reinterpret_cast<const uint4*>(p.v + off), vf);
      } else {
#pragma unroll
        for (int i = 0; i < 8; ++i) kf[i] = vf[i] = 0.0f;
      }
      *reinterpret_cast<float4*>(Ks + jj * ldk + c8) = make_float4(kf[0], kf[1], kf[2], kf[3]);
      *reinterpret_cast<float4*>(Ks + jj * ldk + c8 + 4) = make_float4(kf[4], kf[5], kf[6], kf[7]);
      *reinterpret_cast<float4*>(Vs + jj * d + c8) = make_float4(vf[0], vf[1], vf[2], vf[3]);
      *reinterpret_cast<float4*>(Vs + jj * d + c8 + 4) = make_float4(vf[4], vf[5], vf[6], vf[7]);
    }
    __syncthreads();
    bool any = false;
#pragma unroll
    for (int i = 0; i < 4; ++i) any |= row_ok[i] && kb <= row_pos[i] && kb + kPrefillKeys - 1 >= row_lo[i];
    if (any) {  // warp-uniform: skip blocks fully masked for this warp's rows
      float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      for (int c = 0; c < d; c += 4) {
        const float4 kv = *reinterpret_cast<const float4*>(Ks + lane * ldk + c);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const float4 qv = *reinterpret_cast<const float4*>(Qs + (warp * 4 + i) * d + c);
          s[i] += qv.x * kv.x + qv.y * kv.y + qv.z * kv.z + qv.w * kv.w;
        }
      }
      const int64_t kp = kb + lane;
      float pr[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const bool valid = row_ok[i] && kp <= kmax && kp >= row_lo[i] && kp <= row_pos[i];
        const float sc = valid ? cap_score(s[i] * p.scale, p.softcap) : -INFINITY;
        const float m_new = fmaxf(m[i], warp_max(sc));
        const bool none = m_new == -INFINITY;
        const float corr = none ? 1.0f : expf(m[i] - m_new);
        pr[i] = none ? 0.0f : expf(sc - m_new);
        l[i] = l[i] * corr + warp_sum(pr[i]);
        m[i] = m_new;
#pragma unroll
        for (int j = 0; j < kDj; ++j) O[i][j] *= corr;
      }
      for (int jj = 0; jj < kPrefillKeys; ++jj) {
        float pj[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) pj[i] = __shfl_sync(0xffffffffu, pr[i], jj);
#pragma unroll
        for (int j = 0; j < kDj; ++j) {
          if (j < dj) {
            const float vv = Vs[jj * d + lane + 32 * j];
#pragma unroll
            for (int i = 0; i < 4; ++i) O[i][j] = fmaf(pj[i], vv, O[i][j]);
          }
        }
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t t = t0 + warp * 4 + i;
    if (t >= p.n_tokens) continue;
    const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
#pragma unroll
    for (int j = 0; j < kDj; ++j) {
      if (j < dj) p.out[(t * p.n_heads + h) * d + lane + 32 * j] = O[i][j] * inv;
    }
  }
}

size_t prefill_smem(int d) {
  return (static_cast<size_t>(kPrefillRows) * d + static_cast<size_t>(kPrefillKeys) * (d + 4) +
          static_cast<size_t>(kPrefillKeys) * d) *
         4;
}

}  // namespace

cudaError_t configure_prefill_simt() {
  const int limit = static_cast<int>(prefill_smem(kAttentionMaxHeadDim));
  cudaError_t e = cudaFuncSetAttribute(attention_prefill_kernel<16>, cudaFuncAttributeMaxDynamicSharedMemorySize, limit);
  if (e != cudaSuccess) return e;
  e = cudaFuncSetAttribute(attention_prefill_kernel<8>, cudaFuncAttributeMaxDynamicSharedMemorySize, limit);
  if (e != cudaSuccess) return e;
  return cudaFuncSetAttribute(attention_prefill_kernel<4>, cudaFuncAttributeMaxDynamicSharedMemorySize, limit);
}

cudaError_t launch_prefill_simt(const AttnParams& p, const LaunchContext& ctx) {
  const size_t smem = prefill_smem(p.d);
  const dim3 grid(static_cast<unsigned>((p.n_tokens + kPrefillRows - 1) / kPrefillRows), static_cast<unsigned>(p.n_heads));
  if (p.d <= 128) {
    attention_prefill_kernel<4><<<grid, kPrefillThreads, smem, ctx.stream>>>(p);
  } else if (p.d <= 256) {
    attention_prefill_kernel<8><<<grid, kPrefillThreads, smem, ctx.stream>>>(p);
  } else {
    attention_prefill_kernel<16><<<grid, kPrefillThreads, smem, ctx.stream>>>(p);
  }
  return cudaGetLastError();
}

}  // namespace ge::cuda::attention_detail
