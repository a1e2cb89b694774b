// Device helpers of the sampler (sampling.cu): the float order key, Philox, block reductions and
// scans, and the exact single-CTA chain over a whole row (bisection cuts, shared-memory finish), which
// the pooled multi-CTA passes fall back to. Internal to the CUDA backend; included by sampling.cu only.
#pragma once

#include <climits>
#include <cstdint>

#include "backend/backend.h"
#include "backend/cuda/cuda_common.cuh"

namespace ge::cuda::sampler_detail {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kSmallSet = 1024;          // kept sets up to this size are finished in shared memory
constexpr uint32_t kMinCandidateKey = 0x00800000u;  // order_key of the smallest finite float is above this

// Order-preserving map of a non-NaN float to uint32 (-0 and +0 map to the same key, as they compare equal).
__device__ __forceinline__ uint32_t order_key(float v) {
  const uint32_t u = __float_as_uint(v == 0.0f ? 0.0f : v);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ float key_to_float(uint32_t k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

__host__ __device__ inline void philox_round(uint32_t* c, const uint32_t* k) {
  const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c[0];
  const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c[2];
  const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
  const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
  const uint32_t n0 = hi1 ^ c[1] ^ k[0], n2 = hi0 ^ c[3] ^ k[1];
  c[0] = n0;
  c[1] = lo1;
  c[2] = n2;
  c[3] = lo0;
}

// Philox4x32-10 of counter (step, row, 0) under key seed; 53 bits of the output as a double in [0, 1).
__host__ __device__ inline double philox_uniform(uint64_t seed, uint64_t step, uint32_t row) {
  uint32_t c[4] = {static_cast<uint32_t>(step), static_cast<uint32_t>(step >> 32), row, 0x5A3C9E1Bu};
  uint32_t k[2] = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  for (int r = 0; r < 10; ++r) {
    philox_round(c, k);
    k[0] += 0x9E3779B9u;
    k[1] += 0xBB67AE85u;
  }
  const uint64_t bits = (static_cast<uint64_t>(c[0]) << 21) ^ (c[1] >> 11);
  return static_cast<double>(bits & ((uint64_t{1} << 53) - 1)) * 0x1.0p-53;
}

struct Best {
  float v;
  int32_t i;  // INT_MAX: none
};

__device__ __forceinline__ Best better_of(Best a, Best b) {
  if (a.i == INT_MAX) return b;
  if (b.i == INT_MAX) return a;
  if (a.v > b.v) return a;
  if (b.v > a.v) return b;
  return a.i < b.i ? a : b;
}

// Shared scratch of the reductions.
struct Scratch {
  double d[kWarps];
  unsigned long long u[kWarps];
  float f[kWarps];
  int32_t i[kWarps];
};

// Reduction over the CTA by op in a fixed order (an xor-shuffle tree in each warp, then the warp
// results in warp order, starting from init), so every run gives the same bits; every thread gets the
// result. sh: kWarps entries of Scratch.
template <typename T, typename Op>
__device__ __forceinline__ T block_reduce(T v, T init, T* sh, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  T t = init;
  for (int w = 0; w < kWarps; ++w) t = op(t, sh[w]);
  return t;
}

__device__ inline double block_sum(double v, Scratch& s) {
  return block_reduce(v, 0.0, s.d, [](double x, double y) { return x + y; });
}

__device__ inline unsigned long long block_sum_u64(unsigned long long v, Scratch& s) {
  return block_reduce(v, 0ull, s.u, [](unsigned long long x, unsigned long long y) { return x + y; });
}

__device__ inline int32_t block_min_i32(int32_t v, Scratch& s) {
  return block_reduce(v, INT_MAX, s.i, [](int32_t x, int32_t y) { return min(x, y); });
}

__device__ inline int32_t block_max_i32(int32_t v, Scratch& s) {
  return block_reduce(v, INT_MIN, s.i, [](int32_t x, int32_t y) { return max(x, y); });
}

// Exclusive prefix sum over threads in thread order (thread t gets the sum of threads < t): a
// shuffle scan within each warp, then one over the 32 warp totals; the same additions in the same
// order on every run. sh needs kWarps + 1 entries.
template <typename T>
__device__ inline T block_exclusive_scan(T v, T* total, T* sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  T incl = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const T y = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += y;
  }
  T excl = __shfl_up_sync(0xffffffffu, incl, 1);
  if (lane == 0) excl = T(0);
  __syncthreads();  // sh may still be read by the previous call
  if (lane == 31) sh[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    const T w = sh[lane];
    T wi = w;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const T y = __shfl_up_sync(0xffffffffu, wi, o);
      if (lane >= o) wi += y;
    }
    T we = __shfl_up_sync(0xffffffffu, wi, 1);
    if (lane == 0) we = T(0);
    __syncwarp();
    sh[lane] = we;
    if (lane == 31) sh[kWarps] = wi;
  }
  __syncthreads();
  const T ex = sh[warp] + excl;
  *total = sh[kWarps];
  __syncthreads();
  return ex;
}

// The row being sampled and the cuts found so far. An entry i is a candidate when its logit is
// neither NaN nor -inf; it passes a cut (K, cut) when key > K, or key == K and i <= cut.
struct Row {
  const float* L;
  int32_t V;
  float max_logit;
  float inv_t;
  uint32_t k_key;
  int32_t k_cut;
  uint32_t p_key;
  int32_t p_cut;
  float min_p_threshold;  // p below this is dropped (0 = min-p off)
};

__device__ __forceinline__ bool passes(uint32_t key, int32_t i, uint32_t K, int32_t cut) {
  return key > K || (key == K && i <= cut);
}

__device__ __forceinline__ float prob(const Row& r, float v) { return expf(__fmul_rn(v - r.max_logit, r.inv_t)); }

// Whether entry i (logit v) survives top-k and top-p, and its unnormalised probability.
__device__ __forceinline__ bool kept_kp(const Row& r, int32_t i, float v, uint32_t* key_out) {
  if (!(v > -INFINITY)) return false;
  const uint32_t key = order_key(v);
  *key_out = key;
  return passes(key, i, r.k_key, r.k_cut) && passes(key, i, r.p_key, r.p_cut);
}

// The id of the n-th (1-based) entry in id order satisfying pred(i, v); the row is walked in
// contiguous per-thread ranges so thread order is id order.
template <typename Pred>
__device__ inline int32_t find_nth(const Row& r, int64_t n, Pred pred, unsigned long long* scan_sh, Scratch& s,
                            int32_t* result_sh) {
  const int32_t chunk = (r.V + kThreads - 1) / kThreads;
  const int32_t b = min(r.V, static_cast<int32_t>(threadIdx.x) * chunk), e = min(r.V, b + chunk);
  unsigned long long cnt = 0;
  for (int32_t i = b; i < e; ++i) cnt += pred(i, r.L[i]) ? 1 : 0;
  unsigned long long total = 0;
  const unsigned long long ex = block_exclusive_scan<unsigned long long>(cnt, &total, scan_sh);
  if (threadIdx.x == 0) *result_sh = r.V - 1;
  __syncthreads();
  const unsigned long long want = static_cast<unsigned long long>(n - 1);
  if (cnt > 0 && want >= ex && want < ex + cnt) {
    unsigned long long c = ex;
    for (int32_t i = b; i < e; ++i) {
      if (pred(i, r.L[i])) {
        if (c == want) {
          *result_sh = i;
          break;
        }
        ++c;
      }
    }
  }
  __syncthreads();
  const int32_t id = *result_sh;
  (void)s;
  __syncthreads();
  return id;
}

// Shared buffers of the exact chain (carved from the finishing kernel's buffer).
struct ExactShared {
  Scratch* s;
  unsigned long long* scan_u;  // [kThreads]
  double* scan_d;              // [kThreads]
  float* small_p;              // [kSmallSet]
  unsigned long long* small_key;  // [kSmallSet]
  int32_t* small_n;
  int32_t* result_sh;
};

// The exact single-CTA chain over the whole row (the sampler before the pooled paths; kept for the
// rare rows they cannot finish: a top-k cut or top-p / min-p kept set beyond the pool). Called by
// one whole CTA; best / inf_id / n_cand are the row's pass-0 results.
__device__ inline int32_t sample_row_exact(const float* L, int32_t V, const DeviceSamplerState& P, uint32_t row_index,
                                    Best best, int32_t inf_id, unsigned long long n_cand, ExactShared sh) {
  Scratch& s = *sh.s;
  unsigned long long* scan_u = sh.scan_u;
  double* scan_d = sh.scan_d;
  float* small_p = sh.small_p;
  unsigned long long* small_key = sh.small_key;
  int32_t& small_n = *sh.small_n;
  int32_t& result_sh = *sh.result_sh;
  const int tid = threadIdx.x;
  Row r{};
  r.L = L;
  r.V = V;
  const int32_t argmax_id = best.i == INT_MAX ? 0 : best.i;
  const float inv_t = 1.0f / P.temperature;
  int32_t result = argmax_id;
  const bool greedy = P.temperature == 0.0f || !isfinite(inv_t);
  if (!greedy && inf_id != INT_MAX) result = inf_id;
  if (!greedy && inf_id == INT_MAX && n_cand > 0) {
    r.max_logit = best.v;
    r.inv_t = inv_t;
    r.k_key = 0;
    r.k_cut = r.V - 1;
    r.p_key = 0;
    r.p_cut = r.V - 1;
    unsigned long long n_kept = n_cand;

    // ---- top-k: the largest key t with count(key >= t) >= k, ties at t to the lowest ids ----
    const bool use_top_k = P.top_k > 0 && P.top_k < r.V && n_cand > static_cast<unsigned long long>(P.top_k);
    if (use_top_k) {
      const unsigned long long k = static_cast<unsigned long long>(P.top_k);
      uint32_t lo = kMinCandidateKey, hi = order_key(best.v);
      unsigned long long cnt_lo = n_cand, cnt_above_hi = 0;
      // Once the entries with key in [lo, hi] fit in shared memory they are gathered there (the
      // small-set buffer doubles as this pool) and the remaining steps no longer read the row.
      bool pooled = false;
      while (lo < hi) {
        if (!pooled && cnt_lo - cnt_above_hi <= static_cast<unsigned long long>(kSmallSet)) {
          if (tid == 0) small_n = 0;
          __syncthreads();
          for (int32_t i = tid; i < r.V; i += kThreads) {
            const float v = r.L[i];
            if (!(v > -INFINITY)) continue;
            const uint32_t key = order_key(v);
            if (key >= lo && key <= hi) {
              const int slot = atomicAdd(&small_n, 1);
              if (slot < kSmallSet) small_key[slot] = (static_cast<unsigned long long>(key) << 32) | static_cast<uint32_t>(i);
            }
          }
          __syncthreads();
          pooled = true;
        }
        const uint32_t mid = lo + (hi - lo + 1) / 2;
        unsigned long long c = 0;
        if (pooled) {
          for (int j = tid; j < small_n; j += kThreads) {
            const uint32_t key = static_cast<uint32_t>(small_key[j] >> 32);
            c += (key >= mid && key <= hi) ? 1 : 0;
          }
          c = cnt_above_hi + block_sum_u64(c, s);
        } else {
          for (int32_t i = tid; i < r.V; i += kThreads) {
            const float v = r.L[i];
            c += (v > -INFINITY && order_key(v) >= mid) ? 1 : 0;
          }
          c = block_sum_u64(c, s);
        }
        if (c >= k) {
          lo = mid;
          cnt_lo = c;
        } else {
          hi = mid - 1;
          cnt_above_hi = c;
        }
      }
      const uint32_t K = lo;
      const unsigned long long need = k - cnt_above_hi, eq = cnt_lo - cnt_above_hi;
      r.k_key = K;
      r.k_cut = r.V - 1;
      if (need < eq && pooled) {
        // The need-th lowest id among the pooled entries at K (ranks by counting).
        if (tid == 0) result_sh = r.V - 1;
        __syncthreads();
        for (int j = tid; j < small_n; j += kThreads) {
          const unsigned long long e = small_key[j];
          if (static_cast<uint32_t>(e >> 32) != K) continue;
          const uint32_t id = static_cast<uint32_t>(e);
          unsigned long long rank = 0;
          for (int q = 0; q < small_n; ++q) {
            const unsigned long long f = small_key[q];
            rank += (static_cast<uint32_t>(f >> 32) == K && static_cast<uint32_t>(f) < id) ? 1 : 0;
          }
          if (rank == need - 1) result_sh = static_cast<int32_t>(id);
        }
        __syncthreads();
        r.k_cut = result_sh;
        __syncthreads();
      } else if (need < eq) {
        r.k_cut = find_nth(r, static_cast<int64_t>(need),
                           [K](int32_t, float v) { return v > -INFINITY && order_key(v) == K; }, scan_u, s,
                           &result_sh);
      }
      n_kept = k;
    }

    if (n_kept <= kSmallSet) {
      // ---- small kept set: gather, sort in the host chain's order, finish exactly as it does ----
      if (tid == 0) small_n = 0;
      small_key[tid] = 0;
      __syncthreads();
      for (int32_t i = tid; i < r.V; i += kThreads) {
        const float v = r.L[i];
        uint32_t key = 0;
        if (kept_kp(r, i, v, &key)) {
          const int slot = atomicAdd(&small_n, 1);
          if (slot < kSmallSet) small_key[slot] = (static_cast<unsigned long long>(key) << 32) | (~static_cast<uint32_t>(i));
        }
      }
      __syncthreads();
      // Bitonic sort of 1024 composite keys, descending (padding zeros sink to the end).
      for (int size = 2; size <= kSmallSet; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
          const int j = tid ^ stride;
          if (j > tid) {
            const unsigned long long a = small_key[tid], b = small_key[j];
            const bool desc = (tid & size) == 0;
            if (desc ? a < b : a > b) {
              small_key[tid] = b;
              small_key[j] = a;
            }
          }
          __syncthreads();
        }
      }
      const int n = min(small_n, kSmallSet);
      if (tid < n) small_p[tid] = prob(r, key_to_float(static_cast<uint32_t>(small_key[tid] >> 32)));
      __syncthreads();
      if (tid == 0) {
        double total = 0.0;
        for (int j = 0; j < n; ++j) total += small_p[j];
        int m = n;
        if (P.top_p < 1.0f) {
          const double target = static_cast<double>(P.top_p) * total;
          double before = 0.0;
          int keep = 0;
          while (keep < n && before < target) before += small_p[keep++];
          m = max(keep, 1);
        }
        // min-p compacts in place, keeping order (the host's remove_if).
        if (P.min_p > 0.0f) {
          float p_max = 0.0f;
          for (int j = 0; j < m; ++j) p_max = fmaxf(p_max, small_p[j]);
          const float thr = P.min_p * p_max;
          int w = 0;
          for (int j = 0; j < m; ++j) {
            if (!(small_p[j] < thr)) {
              small_p[w] = small_p[j];
              small_key[w] = small_key[j];
              ++w;
            }
          }
          m = w;
        }
        total = 0.0;
        for (int j = 0; j < m; ++j) total += small_p[j];
        const double u = philox_uniform(P.seed, P.step, row_index) * total;
        double cum = 0.0;
        int pick = m - 1;
        for (int j = 0; j < m; ++j) {
          cum += small_p[j];
          if (u < cum) {
            pick = j;
            break;
          }
        }
        result_sh = m > 0 ? static_cast<int32_t>(~static_cast<uint32_t>(small_key[pick])) : argmax_id;
      }
      __syncthreads();
      result = result_sh;
    } else {
      // ---- large kept set (no top-k, or k > 1024): mass cut by bisection, draw in id order ----
      if (P.top_p < 1.0f) {
        // mass(t) = Σ p over top-k survivors with key >= t; the crossing key is the largest t with
        // mass(t) >= target.
        auto mass_from = [&](uint32_t t, unsigned long long* count) {
          double m = 0.0;
          unsigned long long c = 0;
          for (int32_t i = tid; i < r.V; i += kThreads) {
            const float v = r.L[i];
            uint32_t key = 0;
            if (kept_kp(r, i, v, &key) && key >= t) {
              m += prob(r, v);
              ++c;
            }
          }
          *count = block_sum_u64(c, s);
          return block_sum(m, s);
        };
        uint32_t lo = kMinCandidateKey, hi = order_key(best.v);
        unsigned long long cnt_lo = 0, cnt_above_hi = 0;
        const double total = mass_from(lo, &cnt_lo);
        const double target = static_cast<double>(P.top_p) * total;
        double mass_above_hi = 0.0;
        while (lo < hi) {
          const uint32_t mid = lo + (hi - lo + 1) / 2;
          unsigned long long c = 0;
          const double m = mass_from(mid, &c);
          if (m >= target) {
            lo = mid;
            cnt_lo = c;
          } else {
            hi = mid - 1;
            cnt_above_hi = c;
            mass_above_hi = m;
          }
        }
        // Entries above the crossing key are kept; of those at it (equal p), the host keeps adding
        // while the mass before them is still short of the target.
        const uint32_t Kp = lo;
        const unsigned long long eq = cnt_lo - cnt_above_hi;
        const double p_eq = static_cast<double>(prob(r, key_to_float(Kp)));
        unsigned long long keep = eq;
        if (p_eq > 0.0) {
          const double need = ceil((target - mass_above_hi) / p_eq);
          keep = need < 1.0 ? 1ull : (need < static_cast<double>(eq) ? static_cast<unsigned long long>(need) : eq);
        }
        const Row rk = r;  // cut on the top-k survivors only
        r.p_cut = keep < eq ? find_nth(rk, static_cast<int64_t>(keep),
                                       [rk, Kp](int32_t i, float v) {
                                         uint32_t key = 0;
                                         return kept_kp(rk, i, v, &key) && key == Kp;
                                       },
                                       scan_u, s, &result_sh)
                            : r.V - 1;
        r.p_key = Kp;
      }
      // min-p: p_max is the top entry's p = exp(0) = 1.
      const float thr = P.min_p > 0.0f ? P.min_p * 1.0f : 0.0f;
      const int32_t chunk = (r.V + kThreads - 1) / kThreads;
      const int32_t b = min(r.V, tid * chunk), e = min(r.V, b + chunk);
      double part = 0.0;
      int32_t last = -1;
      for (int32_t i = b; i < e; ++i) {
        const float v = r.L[i];
        uint32_t key = 0;
        if (kept_kp(r, i, v, &key)) {
          const float p = prob(r, v);
          if (!(p < thr)) {
            part += p;
            last = i;
          }
        }
      }
      double total = 0.0;
      const double ex = block_exclusive_scan<double>(part, &total, scan_d);
      const int32_t last_kept = block_max_i32(last, s);
      if (tid == 0) result_sh = last_kept >= 0 ? last_kept : argmax_id;
      __syncthreads();
      const double u = philox_uniform(P.seed, P.step, row_index) * total;
      if (part > 0.0 && u >= ex && u < ex + part) {
        double cum = ex;
        for (int32_t i = b; i < e; ++i) {
          const float v = r.L[i];
          uint32_t key = 0;
          if (kept_kp(r, i, v, &key)) {
            const float p = prob(r, v);
            if (!(p < thr)) {
              cum += p;
              if (u < cum) {
                result_sh = i;
                break;
              }
            }
          }
        }
      }
      __syncthreads();
      result = result_sh;
    }
  }
  return result;
}

}  // namespace ge::cuda::sampler_detail
