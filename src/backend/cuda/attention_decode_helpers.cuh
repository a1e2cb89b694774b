// Device helpers of the split-K decode attention kernels (attention.cu): split layout and ring slots, q
// loads and scores, the online-softmax step, and the merge of split partials (by the last split CTA to
// finish or by the combine kernel). Internal to the CUDA backend; included by attention.cu only.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "backend/cuda/attention_kernels.cuh"

namespace ge::cuda::attention_detail {

// ---- decode: grid (n_kv, n_splits, n_tokens) ----
// The launch's split count comes from the ring capacity (one configuration serves every step, so a
// step can be recorded in a graph); how many splits take keys comes from the visible count read on
// the device, so a short context still spreads over several CTAs. Splits past them exit.
// The active splits take granules of kGranule consecutive keys round-robin (split s: granules s,
// s + A, s + 2A, ...), so the CTAs running at one time read neighbouring rows: a long context is
// streamed front to back by all of them together instead of each CTA walking its own far-apart
// region (which touches as many separate pages at once as there are CTAs).
constexpr int kGranule = 16;

// How the visible keys split: `active` splits take keys; per_gran granules each when contiguous.
struct SplitLayout {
  int active;
  int64_t per_gran;
};

__device__ __forceinline__ SplitLayout decode_layout(const AttnParams& p, int64_t n_vis) {
  if (n_vis <= 0) return {1, 1};
  const int64_t n_gran = (n_vis + kGranule - 1) / kGranule;
  int64_t a = min((n_vis + p.min_keys - 1) / p.min_keys, min(int64_t{p.n_splits}, n_gran));
  a = max(a, int64_t{1});
  const int64_t per = (n_gran + a - 1) / a;
  if (!p.interleave) a = (n_gran + per - 1) / per;  // contiguous: no split left empty
  return {static_cast<int>(a), per};
}

// Keys of split s: its granules' keys, the last granule of all cut at n_vis.
__device__ __forceinline__ int64_t decode_split_keys(const AttnParams& p, int64_t n_vis, SplitLayout L, int s) {
  const int64_t n_gran = (n_vis + kGranule - 1) / kGranule;
  if (s >= n_gran) return 0;
  int64_t first, count;
  if (p.interleave) {
    count = (n_gran - 1 - s) / L.active + 1;
    first = s + (count - 1) * L.active;  // the last one here
  } else {
    first = s * L.per_gran;
    count = min(L.per_gran, n_gran - first);
    first += count - 1;
  }
  int64_t keys = count * kGranule;
  if (first == n_gran - 1) keys -= n_gran * kGranule - n_vis;
  return keys;
}

// Ring slot of split s's i-th key. lo <= position < 2^31 and the key < capacity < 2^31, so the sum
// fits 32 unsigned bits.
__device__ __forceinline__ int decode_slot(const AttnParams& p, int64_t lo, SplitLayout L, int s, int64_t i) {
  const int64_t gran = p.interleave ? int64_t{s} + (i / kGranule) * L.active : int64_t{s} * L.per_gran + i / kGranule;
  const int64_t key = gran * kGranule + i % kGranule;
  return static_cast<int>((static_cast<uint32_t>(lo) + static_cast<uint32_t>(key)) % static_cast<uint32_t>(p.cap));
}

// Keys visible to token t (0 for a bad position, whose output is zero).
__device__ __forceinline__ int64_t decode_visible(const AttnParams& p, int t, int64_t* lo, bool report) {
  int64_t n_vis = 0;
  if (!visible_range(p, p.positions[t], lo, &n_vis, report)) {
    *lo = 0;
    return 0;
  }
  return n_vis;
}

// Token t's visible keys (*n_vis, from logical position *lo) and how they split over the decode CTAs
// (split, kvh) of its grid slice; only CTA (0, 0) reports a bad position. Splits at or past the
// layout's `active` take no keys and exit.
__device__ __forceinline__ SplitLayout decode_split_layout(const AttnParams& p, int t, int kvh, int split, int64_t* lo,
                                                           int64_t* n_vis) {
  *n_vis = decode_visible(p, t, lo, threadIdx.x == 0 && split == 0 && kvh == 0);
  return decode_layout(p, *n_vis);
}

// The K/V caches token t reads: its own under a batch view, else the layer's.
__device__ __forceinline__ void decode_kv_caches(const AttnParams& p, int t, const __nv_bfloat16** kc,
                                                 const __nv_bfloat16** vc) {
  *kc = p.k;
  *vc = p.v;
  if (p.batch.bases != nullptr) {
    *kc = reinterpret_cast<const __nv_bfloat16*>(p.batch.bases[t] + p.batch.k_offset);
    *vc = reinterpret_cast<const __nv_bfloat16*>(p.batch.bases[t] + p.batch.v_offset);
  }
}

// A lane's slice of the group's query rows: 16-byte chunks li + c * lpk of each row (zero past G / d).
template <int kG, int kCpl>
__device__ __forceinline__ void decode_load_q(const AttnParams& p, float (&qr)[kG][kCpl * 8], int t, int kvh, int li) {
  const int G = p.group, d = p.d, n_chunks = d / 8;
#pragma unroll
  for (int h = 0; h < kG; ++h) {
#pragma unroll
    for (int c = 0; c < kCpl; ++c) {
      const int chunk = li + c * p.lpk;
      const bool in = h < G && chunk < n_chunks;
      const float* qrow = p.q + (int64_t{t} * p.n_heads + kvh * G + h) * d + chunk * 8;
      if (p.q_aligned) {  // two 16-byte loads (rows are d * 4 bytes, d a multiple of 8)
        const float4 a = in ? *reinterpret_cast<const float4*>(qrow) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        const float4 b = in ? *reinterpret_cast<const float4*>(qrow + 4) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        qr[h][c * 8 + 0] = a.x;
        qr[h][c * 8 + 1] = a.y;
        qr[h][c * 8 + 2] = a.z;
        qr[h][c * 8 + 3] = a.w;
        qr[h][c * 8 + 4] = b.x;
        qr[h][c * 8 + 5] = b.y;
        qr[h][c * 8 + 6] = b.z;
        qr[h][c * 8 + 7] = b.w;
      } else {
#pragma unroll
        for (int i = 0; i < 8; ++i) qr[h][c * 8 + i] = in ? qrow[i] : 0.0f;
      }
    }
  }
}

// Scores of one key from a lane's K slice: the partial dots of all kG heads, summed over the key's
// lpk lanes by xor shuffles (every lane of the warp takes part).
template <int kG, int kCpl>
__device__ __forceinline__ void decode_score(const float (&qr)[kG][kCpl * 8], const uint4 (&kr)[kCpl], int lpk,
                                             float (&s)[kG]) {
#pragma unroll
  for (int h = 0; h < kG; ++h) s[h] = 0.0f;
#pragma unroll
  for (int c = 0; c < kCpl; ++c) {
    float kf[8];
    bf16x8_to_f32(kr[c], kf);
#pragma unroll
    for (int h = 0; h < kG; ++h) {
#pragma unroll
      for (int i = 0; i < 8; ++i) s[h] = fmaf(qr[h][c * 8 + i], kf[i], s[h]);
    }
  }
  for (int off = lpk / 2; off > 0; off >>= 1) {
#pragma unroll
    for (int h = 0; h < kG; ++h) s[h] += __shfl_xor_sync(0xffffffffu, s[h], off);
  }
}

// kDpt bf16 values of a row (global or shared memory) as fp32.
template <int kDpt>
__device__ __forceinline__ void load_row_piece(const __nv_bfloat16* src, float (&vf)[kDpt]) {
  if constexpr (kDpt == 4) {
    const uint2 r = *reinterpret_cast<const uint2*>(src);
    vf[0] = __uint_as_float(r.x << 16);
    vf[1] = __uint_as_float(r.x & 0xffff0000u);
    vf[2] = __uint_as_float(r.y << 16);
    vf[3] = __uint_as_float(r.y & 0xffff0000u);
  } else {
    bf16x8_to_f32(*reinterpret_cast<const uint4*>(src), vf);
  }
}

// Online softmax over one tile's scores S [G][kTile] (in place: scores -> weights), one warp per
// head; corr_s[h] is the factor that rescales the head's running output. Callers sync around it.
template <int kTile>
__device__ __forceinline__ void decode_softmax_step(float* S, int tile_len, int G, float* m_run, float* l_run,
                                                    float* corr_s) {
  constexpr int kPerLane = kTile >= 32 ? kTile / 32 : 1;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (int h = warp; h < G; h += kDecodeWarps) {
    float v[kPerLane];
    float tmax = -INFINITY;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int j = lane + 32 * i;
      v[i] = j < tile_len ? S[h * kTile + j] : -INFINITY;
      tmax = fmaxf(tmax, v[i]);
    }
    tmax = warp_max(tmax);
    const float m_old = m_run[h];
    const float m_new = fmaxf(m_old, tmax);
    const bool none = m_new == -INFINITY;
    const float corr = none ? 1.0f : expf(m_old - m_new);
    float psum = 0.0f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int j = lane + 32 * i;
      const float pr = none ? 0.0f : expf(v[i] - m_new);
      if (j < kTile) S[h * kTile + j] = pr;
      psum += pr;
    }
    psum = warp_sum(psum);
    __syncwarp();
    if (lane == 0) {
      m_run[h] = m_new;
      l_run[h] = l_run[h] * corr + psum;
      corr_s[h] = corr;
    }
  }
}

// The split weights of query head row th's partials, by one warp: w_s[h * n_active + s] = e^(m_s - M) (0
// for a split without keys, l_s = 0) for s < n_active, M the largest m_s (w_s holds a row of weights per
// head, h this row's head); returns L = Σ w_s l_s in every lane. The (m, l) pairs are read through L2
// (__ldcg: other CTAs wrote them).
__device__ __forceinline__ float split_weights(const AttnParams& p, int64_t th, int n_active, int lane, float* w_s,
                                              int h) {
  const float* ml = p.part_ml + th * p.n_splits * 2;
  float M = -INFINITY;
  for (int s = lane; s < n_active; s += 32) M = fmaxf(M, __ldcg(ml + 2 * s));
  M = warp_max(M);
  float L = 0.0f;
  for (int s = lane; s < n_active; s += 32) {
    const float l = __ldcg(ml + 2 * s + 1);
    const float w = l > 0.0f ? expf(__ldcg(ml + 2 * s) - M) : 0.0f;
    w_s[h * n_active + s] = w;
    L += w * l;
  }
  return warp_sum(L);
}

// Merges the active splits' partials of query head row th: out = Σ e^(m_s - M) o_s / Σ e^(m_s - M) l_s,
// in split order (deterministic). Shared by the combine kernel and the last split CTA to finish, so
// both give the same bits. Partials are read through L2 (__ldcg): other CTAs wrote them.
__device__ __forceinline__ void combine_head(const AttnParams& p, int64_t th, int n_active, float* w_s,
                                             float* inv_s) {
  if (threadIdx.x < 32) {
    const int lane = threadIdx.x;
    const float L = split_weights(p, th, n_active, lane, w_s, 0);
    if (lane == 0) *inv_s = L > 0.0f ? 1.0f / L : 0.0f;
  }
  __syncthreads();
  const float inv = *inv_s;
  // Four consecutive dims per thread (head_dim % 8 == 0), the split loop unrolled so that several
  // partial rows are in flight; each element still sums its splits in order.
  const int d4 = p.d / 4;
  const float4* po = reinterpret_cast<const float4*>(p.part_o + th * p.n_splits * p.d);
  for (int g = threadIdx.x; g < d4; g += blockDim.x) {
    float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 8
    for (int s = 0; s < n_active; ++s) {
      const float4 v = __ldcg(po + int64_t{s} * d4 + g);
      acc.x = fmaf(w_s[s], v.x, acc.x);
      acc.y = fmaf(w_s[s], v.y, acc.y);
      acc.z = fmaf(w_s[s], v.z, acc.z);
      acc.w = fmaf(w_s[s], v.w, acc.w);
    }
    float* out = p.out + th * p.d + 4 * g;
    out[0] = acc.x * inv;
    out[1] = acc.y * inv;
    out[2] = acc.z * inv;
    out[3] = acc.w * inv;
  }
  __syncthreads();  // w_s and inv_s are reused by the next head
}

// With p.split_count set, the last of the n_active split CTAs of (token, KV head) to arrive merges the
// group's partials (the GEMV's last-arriver pattern), so no combine kernel runs. Called by every
// thread of a split CTA after it wrote its partials (n_active > 1).
template <int kG>
__device__ __forceinline__ void decode_merge_last(const AttnParams& p, int t, int kvh, int n_active) {
  const int G = p.group, d = p.d, tid = threadIdx.x;
  __shared__ float w_s[kFusedCombineWeights];
  __shared__ float inv_s[kG];
  __shared__ bool last;
  __threadfence();  // this CTA's partials are visible device-wide before its arrival is counted
  __syncthreads();
  if (tid == 0) {
    uint32_t* count = p.split_count + int64_t{t} * p.n_kv + kvh;
    last = atomicAdd(count, 1u) == static_cast<uint32_t>(n_active - 1);
    if (last) atomicExch(count, 0u);  // every split has arrived: zero for the next launch
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  // The merge of combine_head for the group's G heads at once (same expressions and order, so the
  // same bits): warp w weighs heads w, w + 4, ...; then every thread merges 4 consecutive dims of a
  // head, the n_active partial loads unrolled so they are in flight together.
  const int64_t th0 = int64_t{t} * p.n_heads + int64_t{kvh} * G;
  const int warp = tid >> 5, lane = tid & 31;
  for (int h = warp; h < G; h += kDecodeWarps) {
    const float L = split_weights(p, th0 + h, n_active, lane, w_s, h);
    if (lane == 0) inv_s[h] = L > 0.0f ? 1.0f / L : 0.0f;
  }
  __syncthreads();
  const int d4 = d / 4;
  for (int gi = tid; gi < G * d4; gi += kDecodeThreads) {
    const int h = gi / d4, c = (gi - h * d4) * 4;
    const float4* po = reinterpret_cast<const float4*>(p.part_o + (th0 + h) * p.n_splits * d + c);
    const float* w = w_s + h * n_active;
    float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 8
    for (int s = 0; s < n_active; ++s) {
      const float4 v = __ldcg(po + int64_t{s} * d4);
      acc.x = fmaf(w[s], v.x, acc.x);
      acc.y = fmaf(w[s], v.y, acc.y);
      acc.z = fmaf(w[s], v.z, acc.z);
      acc.w = fmaf(w[s], v.w, acc.w);
    }
    float* out = p.out + (th0 + h) * d + c;
    const float inv = inv_s[h];
    out[0] = acc.x * inv;
    out[1] = acc.y * inv;
    out[2] = acc.z * inv;
    out[3] = acc.w * inv;
  }
}

// After the key loop: sums the key groups' P·V through `red` ([kg][G][d], free shared memory) and
// writes the split's output: final (one active split) or the partial and its (m, l), then takes part
// in decode_merge_last.
template <int kG, int kDpt>
__device__ __forceinline__ void decode_finish(const AttnParams& p, float (&o)[kG][kDpt], float* red, const float* m_run,
                                              const float* l_run, int t, int kvh, int split, int n_active) {
  const int G = p.group, d = p.d, tid = threadIdx.x;
  const int tpr = d / kDpt, kg_count = kDecodeThreads / tpr, kg = tid / tpr, c0 = (tid % tpr) * kDpt;
  const bool pv_active = kg < kg_count;
  if (kg_count > 1) {  // sum the key groups
    if (pv_active) {
#pragma unroll
      for (int h = 0; h < kG; ++h) {
        if (h < G) {
#pragma unroll
          for (int i = 0; i < kDpt; ++i) red[(kg * G + h) * d + c0 + i] = o[h][i];
        }
      }
    }
    __syncthreads();
    if (kg == 0) {
#pragma unroll
      for (int h = 0; h < kG; ++h) {
        if (h < G) {
#pragma unroll
          for (int i = 0; i < kDpt; ++i) {
            float sum = 0.0f;
            for (int k2 = 0; k2 < kg_count; ++k2) sum += red[(k2 * G + h) * d + c0 + i];
            o[h][i] = sum;
          }
        }
      }
    }
  }
  if (kg == 0) {
#pragma unroll
    for (int h = 0; h < kG; ++h) {
      if (h < G) {
        const int64_t th = int64_t{t} * p.n_heads + kvh * G + h;
        if (n_active == 1) {
          const float inv = l_run[h] > 0.0f ? 1.0f / l_run[h] : 0.0f;
#pragma unroll
          for (int i = 0; i < kDpt; ++i) p.out[th * d + c0 + i] = o[h][i] * inv;
        } else {
          const int64_t ps = th * p.n_splits + split;
#pragma unroll
          for (int i = 0; i < kDpt; ++i) p.part_o[ps * d + c0 + i] = o[h][i];
          if (c0 == 0) {
            p.part_ml[ps * 2] = m_run[h];
            p.part_ml[ps * 2 + 1] = l_run[h];
          }
        }
      }
    }
  }
  if (n_active == 1 || p.split_count == nullptr) return;  // uniform over the CTA
  decode_merge_last<kG>(p, t, kvh, n_active);
}

// ---- tensor-core decode (attention_decode_mma_kernel) ----

// mma.sync m16n8k16, bf16 in, fp32 accumulate, with rows 8..15 of A zero (a1 = a3 = 0): the rows are
// the GQA group's query heads, at most 8. a0 / a2: row lane / 4, columns (lane % 4) * 2 (+ 8).
__device__ __forceinline__ void mma_rows8(float (&c)[4], uint32_t a0, uint32_t a2, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(0u), "r"(a2), "r"(0u), "r"(b0), "r"(b1));
}

// Two fp32 values as three bf16x2 words (hi, mid, lo; `x0` in the low halves): each part is the
// rounding of what the previous parts left (x - hi and the next remainder are exact in fp32), so the
// parts carry 24 significant bits, and their products with bf16 K or V summed in fp32 give the fp32
// kernel's values up to rounding.
__device__ __forceinline__ void split_bf16x3(float x0, float x1, uint32_t (&w)[3]) {
#pragma unroll
  for (int i = 0; i < 3; ++i) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(x0, x1);
    w[i] = *reinterpret_cast<const uint32_t*>(&h);
    x0 -= __low2float(h);
    x1 -= __high2float(h);
  }
}

}  // namespace ge::cuda::attention_detail
