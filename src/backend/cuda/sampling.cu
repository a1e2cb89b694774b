// Device sampler: ge::Sampler's temperature / top-k / top-p / min-p chain, spread over many CTAs
// per logits row. Pass 1 (stats kernel) finds the argmax and a key histogram; pass 2 (finish
// kernel) gathers the few entries the cuts can keep into a pool, and the last CTA of each row
// finishes the choice on the sorted pool, exactly in the host chain's order.
#include "backend/cuda/sampling.cuh"

#include <climits>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/sampling_exact.cuh"

namespace ge::cuda {
namespace {

using namespace sampler_detail;

// ---- the pooled multi-CTA sampler ----
//
// Pass 1 (grid [n_ctas, rows]): every CTA reduces its chunk of the row to the argmax (ties to the
// lowest id, NaN never wins), the lowest +inf id and the candidate count (neither NaN nor -inf),
// and, unless greedy, adds its candidates to a histogram of the top 12 bits of the order key. The
// last CTA to arrive (a counter) combines the partials and plans the row: done (greedy, +inf, no
// candidates: the token is written now), pool (the keys at or above a histogram bin edge hold the
// top-k set, or, without top-k, the largest top of the row that fits the pool), draw-all (no cut:
// the draw walks the row in id order chunk by chunk) or exact (sample_row_exact, sampling_exact.cuh).
// Pass 2 (same grid): every CTA gathers its pool entries and its chunk's probability mass; the last
// CTA of the row sorts the pool by (key desc, id asc), the host chain's order, and runs top-k,
// top-p, min-p and the draw on it. A pool that turns out not to hold the kept set falls back to
// the exact chain. Scratch counters, the histogram and the pool size are left zeroed.

constexpr int kBinShift = 20;                 // histogram bin = order key >> 20 (4096 bins)
constexpr int kBins = 1 << (32 - kBinShift);
constexpr int kPoolCap = 4096;                // entries the finishing CTA sorts in shared memory
constexpr int kMinChunk = 4096;               // logits per CTA (4 per thread) unless the row needs more
constexpr int kMaxCtas = 256;                 // CTAs per row
constexpr int kGroupRows = 128;               // rows per launch pair (the scratch holds this many: ~7 MiB)

// kPlanGreedy: token written and the step advanced by pass 1 (pass 2 returns at once).
// kPlanDone: token written by pass 1 (+inf, or no candidate); pass 2 only counts the row.
enum PlanMode : int32_t { kPlanGreedy, kPlanDone, kPlanTopK, kPlanOpen, kPlanDrawAll, kPlanExact };

struct Partial {
  float v;
  int32_t i;
  int32_t inf_id;
  uint32_t n_cand;
};

struct Plan {
  int32_t mode;
  uint32_t edge;  // pool: candidate keys >= edge
  float max_logit;
  int32_t argmax_i;  // INT_MAX: no non-NaN entry
  int32_t inf_id;
  int32_t pad;
  unsigned long long n_cand;
};

struct RowScratch {
  unsigned int arrived_stats;
  unsigned int arrived_finish;
  unsigned int pool_n;
  unsigned int pad;
  Plan plan;
  Partial part[kMaxCtas];
  double mass[kMaxCtas];
  uint32_t hist[kBins];
  unsigned long long pool[kPoolCap];  // key << 32 | ~id: descending = host order
};

struct SamplerScratch {
  unsigned int rows_done;
  unsigned int pad[3];
  RowScratch row[kGroupRows];
};

struct SampleArgs {
  const float* logits;
  int64_t vocab;
  int64_t chunk;  // logits per CTA, a multiple of kThreads
  int32_t n_ctas;
  int32_t group_rows;
  int64_t row0;   // global index of the group's first row (the RNG counter uses it)
  DeviceSamplerState* state;
  int32_t* out;
  SamplerScratch* scratch;
  bool bump_step;  // the last group advances state->step once all its rows are done
};

__device__ __forceinline__ bool is_greedy(const DeviceSamplerState& P) {
  const float inv_t = 1.0f / P.temperature;
  return P.temperature == 0.0f || !isfinite(inv_t);
}

__device__ __forceinline__ float prob_of_key(float max_logit, float inv_t, uint32_t key) {
  return expf(__fmul_rn(key_to_float(key) - max_logit, inv_t));
}

__device__ __forceinline__ float block_max_nonneg(float v, Scratch& s) {
  // Non-negative floats order as their bit patterns.
  return __int_as_float(block_max_i32(__float_as_int(v), s));
}

// Entries [0, m) in per-thread contiguous segments (thread order = entry order): the first j whose
// running sum of w(0..j) reaches target (ge) or exceeds it (!ge), -1 if none; *total = the sum.
template <typename W>
__device__ int32_t first_crossing(int32_t m, W w, double target, bool ge, double* total, double* scan_sh,
                                  Scratch& s) {
  const int32_t seg = (m + kThreads - 1) / kThreads;
  const int32_t b = min(m, static_cast<int32_t>(threadIdx.x) * seg), e = min(m, b + seg);
  double part = 0.0;
  for (int32_t j = b; j < e; ++j) part += w(j);
  double tot = 0.0;
  const double ex = block_exclusive_scan<double>(part, &tot, scan_sh);
  int32_t found = INT_MAX;
  double run = ex;
  for (int32_t j = b; j < e; ++j) {
    run += w(j);
    if (ge ? run >= target : run > target) {
      found = j;
      break;
    }
  }
  found = block_min_i32(found, s);
  *total = tot;
  return found == INT_MAX ? -1 : found;
}

// Probability mass of the candidates in [c0, c1) by contiguous per-thread segments of seg entries:
// the thread's own part, its exclusive prefix and (via *total) the chunk's sum, the same numbers in
// pass 2 and in the draw-all finish.
__device__ double chunk_mass(const float* L, int64_t c0, int64_t c1, int64_t seg, float max_logit, float inv_t,
                             double* ex, double* total, double* scan_sh) {
  const int64_t b = min(c1, c0 + static_cast<int64_t>(threadIdx.x) * seg), e = min(c1, b + seg);
  double part = 0.0;
  for (int64_t i = b; i < e; ++i) {
    const float v = L[i];
    if (v > -INFINITY) part += expf(__fmul_rn(v - max_logit, inv_t));
  }
  *ex = block_exclusive_scan<double>(part, total, scan_sh);
  return part;
}

// Arrival at a counter after this CTA's global writes (the barrier orders them before thread 0's
// fence, which is cumulative); true in the last CTA of `expected`, which then sees every other CTA's
// writes (read them with __ldcg: L1 is not coherent).
__device__ bool arrive_last(unsigned int* counter, unsigned int expected, bool* flag_sh) {
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    const bool last = atomicAdd(counter, 1u) == expected - 1;
    if (last) __threadfence();
    *flag_sh = last;
  }
  __syncthreads();
  return *flag_sh;
}

// Thread 0 of a row's last CTA, once the row is done: counts the row; the group's last row advances
// the RNG step when the group is the launch's last (every CTA of every row has read the state by now).
__device__ __forceinline__ void finish_group_row(const SampleArgs& a, uint64_t step) {
  if (a.group_rows == 1) {
    if (a.bump_step) a.state->step = step + 1;
  } else if (atomicAdd(&a.scratch->rows_done, 1u) == static_cast<unsigned>(a.group_rows) - 1) {
    a.scratch->rows_done = 0;
    if (a.bump_step) a.state->step = step + 1;
  }
}

// Shared scratch of block_stats.
struct StatsShared {
  float v[kWarps];
  int32_t i[kWarps];
  int32_t inf[kWarps];
  unsigned long long n[kWarps];
  Best best;
  int32_t inf_all;
  unsigned long long n_all;
};

// The three pass-1 reductions in one: argmax (ties to the lower id), lowest +inf id, count.
__device__ void block_stats(Best* b, int32_t* inf, unsigned long long* n, StatsShared& sh) {
  Best x = *b;
  int32_t f = *inf;
  unsigned long long c = *n;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    x = better_of(x, Best{__shfl_xor_sync(0xffffffffu, x.v, o), __shfl_xor_sync(0xffffffffu, x.i, o)});
    f = min(f, __shfl_xor_sync(0xffffffffu, f, o));
    c += __shfl_xor_sync(0xffffffffu, c, o);
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();
  if (lane == 0) {
    sh.v[warp] = x.v;
    sh.i[warp] = x.i;
    sh.inf[warp] = f;
    sh.n[warp] = c;
  }
  __syncthreads();
  if (warp == 0) {
    x = Best{sh.v[lane], sh.i[lane]};
    f = sh.inf[lane];
    c = sh.n[lane];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      x = better_of(x, Best{__shfl_xor_sync(0xffffffffu, x.v, o), __shfl_xor_sync(0xffffffffu, x.i, o)});
      f = min(f, __shfl_xor_sync(0xffffffffu, f, o));
      c += __shfl_xor_sync(0xffffffffu, c, o);
    }
    if (lane == 0) {
      sh.best = x;
      sh.inf_all = f;
      sh.n_all = c;
    }
  }
  __syncthreads();
  *b = sh.best;
  *inf = sh.inf_all;
  *n = sh.n_all;
}

__global__ void __launch_bounds__(kThreads) sample_stats_kernel(SampleArgs a) {
  __shared__ uint32_t hist[kBins];
  __shared__ unsigned long long scan_u[kThreads];
  __shared__ Scratch s;
  __shared__ StatsShared ss;
  __shared__ DeviceSamplerState st;
  __shared__ bool last_sh;
  __shared__ unsigned long long pool_count_sh;
  grid_dependency_wait();  // the logits come from the previous kernel
  grid_dependency_release();
  const int tid = threadIdx.x;
  const int slot = blockIdx.y;
  const int64_t row = a.row0 + slot;
  RowScratch& R = a.scratch->row[slot];
  const float* L = a.logits + row * a.vocab;
  const int32_t V = static_cast<int32_t>(a.vocab);
  // The state load and the chunk's loads are in flight together (block_stats' barriers publish st).
  if (tid == 0) st = *a.state;
  const int64_t c0 = static_cast<int64_t>(blockIdx.x) * a.chunk, c1 = min(a.vocab, c0 + a.chunk);
  Best best{0.0f, INT_MAX};
  int32_t inf_id = INT_MAX;
  unsigned long long n_cand = 0;
#pragma unroll 4
  for (int64_t i = c0 + tid; i < c1; i += kThreads) {
    const float v = L[i];
    if (!isnan(v) && (best.i == INT_MAX || v > best.v)) best = Best{v, static_cast<int32_t>(i)};
    if (v == INFINITY && inf_id == INT_MAX) inf_id = static_cast<int32_t>(i);
    if (v > -INFINITY) ++n_cand;
  }
  block_stats(&best, &inf_id, &n_cand, ss);
  const DeviceSamplerState P = st;
  const bool greedy = is_greedy(P);
  if (!greedy) {
    // Histogram of the candidates' keys (second read of the chunk, from L2).
    for (int j = tid; j < kBins; j += kThreads) hist[j] = 0;
    __syncthreads();
    for (int64_t i = c0 + tid; i < c1; i += kThreads) {
      const float v = L[i];
      if (v > -INFINITY) atomicAdd(&hist[order_key(v) >> kBinShift], 1u);
    }
    __syncthreads();
    for (int j = tid; j < kBins; j += kThreads)
      if (hist[j] != 0) atomicAdd(&R.hist[j], hist[j]);
  }
  if (tid == 0) R.part[blockIdx.x] = Partial{best.v, best.i, inf_id, static_cast<uint32_t>(n_cand)};
  if (!arrive_last(&R.arrived_stats, static_cast<unsigned>(a.n_ctas), &last_sh)) return;

  // ---- last CTA of the row: combine, then plan ----
  best = Best{0.0f, INT_MAX};
  inf_id = INT_MAX;
  n_cand = 0;
  for (int c = tid; c < a.n_ctas; c += kThreads) {
    const Partial* p = &R.part[c];
    best = better_of(best, Best{__ldcg(&p->v), __ldcg(&p->i)});
    inf_id = min(inf_id, __ldcg(&p->inf_id));
    n_cand += __ldcg(&p->n_cand);
  }
  block_stats(&best, &inf_id, &n_cand, ss);
  const int32_t argmax_id = best.i == INT_MAX ? 0 : best.i;

  // Thread t holds histogram bins kBins-1-4t .. kBins-4-4t (descending), so its exclusive prefix
  // is the count in the bins above them. Read, and left zeroed for the next call.
  constexpr int kPer = kBins / kThreads;
  uint32_t cnt[kPer];
  unsigned long long mine = 0;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    cnt[j] = 0;
    if (!greedy) {
      uint32_t* h = &R.hist[kBins - 1 - (tid * kPer + j)];
      cnt[j] = __ldcg(h);
      *h = 0;
    }
    mine += cnt[j];
  }
  int32_t mode = greedy ? kPlanGreedy : kPlanDone;
  int32_t result = argmax_id;
  uint32_t edge = 0;
  if (!greedy && inf_id != INT_MAX) result = inf_id;
  if (!greedy && inf_id == INT_MAX && n_cand > 0) {
    const bool use_top_k = P.top_k > 0 && P.top_k < V && n_cand > static_cast<unsigned long long>(P.top_k);
    const unsigned long long k = use_top_k ? static_cast<unsigned long long>(P.top_k) : 0;
    unsigned long long tot = 0;
    unsigned long long above = block_exclusive_scan<unsigned long long>(mine, &tot, scan_u);
    // top-k: the bin where the count from the top first reaches k. open: the lowest bin whose
    // count from the top (inclusive) still fits the pool.
    int32_t topk_bin = -1, open_bin = INT_MAX;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const int32_t bin = kBins - 1 - (tid * kPer + j);
      const unsigned long long incl = above + cnt[j];
      if (use_top_k && above < k && incl >= k) topk_bin = bin;
      if (incl <= static_cast<unsigned long long>(kPoolCap)) open_bin = min(open_bin, bin);
      above = incl;
    }
    topk_bin = block_max_i32(topk_bin, s);
    open_bin = block_min_i32(open_bin, s);
    const int32_t edge_bin = use_top_k ? topk_bin : open_bin;
    if (tid == 0) pool_count_sh = 0;
    __syncthreads();
    // The pool's size: the inclusive count at the edge bin, known to the thread holding it.
    above = block_exclusive_scan<unsigned long long>(mine, &tot, scan_u);
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const int32_t bin = kBins - 1 - (tid * kPer + j);
      above += cnt[j];
      if (bin == edge_bin) pool_count_sh = above;
    }
    __syncthreads();
    const unsigned long long pool_count = pool_count_sh;
    if (edge_bin >= 0 && edge_bin < kBins) edge = static_cast<uint32_t>(edge_bin) << kBinShift;
    if (use_top_k) {
      mode = (k <= static_cast<unsigned long long>(kPoolCap) && edge_bin >= 0 &&
              pool_count <= static_cast<unsigned long long>(kPoolCap))
                 ? kPlanTopK
                 : kPlanExact;
    } else if (P.top_p < 1.0f || P.min_p > 0.0f) {
      mode = (edge_bin < kBins && pool_count > 0) ? kPlanOpen : kPlanExact;
    } else {
      mode = kPlanDrawAll;
    }
  }
  if (tid == 0) {
    R.plan = Plan{mode, edge, best.v, best.i, inf_id, 0, n_cand};
    if (mode == kPlanGreedy || mode == kPlanDone) a.out[row] = result;
    R.arrived_stats = 0;
    // Greedy is the same for every row (one state): the row is done here and pass 2 has nothing to do.
    if (greedy) finish_group_row(a, P.step);
  }
}

__global__ void __launch_bounds__(kThreads) sample_finish_kernel(SampleArgs a) {
  // One buffer, two layouts: the pool finish (keys [kPoolCap] | scan [kThreads] doubles) and the
  // exact chain (scan_u | scan_d | small_p | small_key).
  constexpr int kPoolBytes = kPoolCap * 8;
  constexpr int kBufBytes = kPoolBytes + kThreads * 8;
  static_assert(kBufBytes >= kThreads * 8 * 2 + kSmallSet * 4 + kSmallSet * 8, "exact layout fits");
  __shared__ __align__(16) unsigned char buf[kBufBytes];
  __shared__ Scratch s;
  __shared__ DeviceSamplerState st;
  __shared__ bool last_sh;
  __shared__ int32_t small_n, result_sh;
  __shared__ double dsh[2];
  grid_dependency_wait();  // the plan comes from the stats kernel
  grid_dependency_release();
  const int tid = threadIdx.x;
  const int slot = blockIdx.y;
  const int64_t row = a.row0 + slot;
  RowScratch& R = a.scratch->row[slot];
  const int32_t mode = __ldcg(&R.plan.mode);
  if (mode == kPlanGreedy) return;
  const uint32_t edge = __ldcg(&R.plan.edge);
  const float max_logit = __ldcg(&R.plan.max_logit);
  const float* L = a.logits + row * a.vocab;
  const int32_t V = static_cast<int32_t>(a.vocab);
  if (tid == 0) st = *a.state;
  __syncthreads();
  const DeviceSamplerState P = st;
  const float inv_t = 1.0f / P.temperature;
  unsigned long long* keys = reinterpret_cast<unsigned long long*>(buf);
  double* scan_d = reinterpret_cast<double*>(buf + kPoolBytes);

  const int64_t c0 = static_cast<int64_t>(blockIdx.x) * a.chunk, c1 = min(a.vocab, c0 + a.chunk);
  if (mode == kPlanTopK || mode == kPlanOpen) {
    // Warp-aggregated slots: one atomic per warp and step.
    const int lane = tid & 31;
    for (int64_t base = c0; base < c1; base += kThreads) {
      const int64_t i = base + tid;
      const float v = i < c1 ? L[i] : -INFINITY;
      const uint32_t key = v > -INFINITY ? order_key(v) : 0u;
      const bool take = v > -INFINITY && key >= edge;
      const unsigned m = __ballot_sync(0xffffffffu, take);
      if (m == 0) continue;
      const int leader = __ffs(m) - 1;
      unsigned int first = 0;
      if (lane == leader) first = atomicAdd(&R.pool_n, static_cast<unsigned>(__popc(m)));
      first = __shfl_sync(0xffffffffu, first, leader);
      if (take) {
        const unsigned int at = first + static_cast<unsigned>(__popc(m & ((1u << lane) - 1u)));
        if (at < static_cast<unsigned>(kPoolCap))
          R.pool[at] = (static_cast<unsigned long long>(key) << 32) | (~static_cast<uint32_t>(i));
      }
    }
  }
  if (mode == kPlanOpen || mode == kPlanDrawAll) {
    double ex = 0.0, total = 0.0;
    chunk_mass(L, c0, c1, a.chunk / kThreads, max_logit, inv_t, &ex, &total, scan_d);
    if (tid == 0) R.mass[blockIdx.x] = total;
  }
  if (!arrive_last(&R.arrived_finish, static_cast<unsigned>(a.n_ctas), &last_sh)) return;

  // ---- last CTA of the row: finish ----
  const Best best{max_logit, __ldcg(&R.plan.argmax_i)};
  const int32_t argmax_id = best.i == INT_MAX ? 0 : best.i;
  const unsigned long long n_cand = __ldcg(&R.plan.n_cand);
  const uint32_t row_index = static_cast<uint32_t>(row);
  bool exact = mode == kPlanExact;
  int32_t result = argmax_id;

  if (mode == kPlanTopK || mode == kPlanOpen) {
    const int32_t n = static_cast<int32_t>(min(__ldcg(&R.pool_n), static_cast<unsigned>(kPoolCap)));
    int32_t npow = 2;
    while (npow < n) npow <<= 1;
    for (int j = tid; j < npow; j += kThreads) keys[j] = j < n ? __ldcg(&R.pool[j]) : 0ull;
    __syncthreads();
    // Bitonic sort, descending (padding zeros sink to the end).
    for (int size = 2; size <= npow; size <<= 1) {
      for (int stride = size >> 1; stride > 0; stride >>= 1) {
        for (int t = tid; t < npow; t += kThreads) {
          const int j = t ^ stride;
          if (j > t) {
            const unsigned long long x = keys[t], y = keys[j];
            const bool desc = (t & size) == 0;
            if (desc ? x < y : x > y) {
              keys[t] = y;
              keys[j] = x;
            }
          }
        }
        __syncthreads();
      }
    }
    auto p_at = [&](int32_t j) { return prob_of_key(max_logit, inv_t, static_cast<uint32_t>(keys[j] >> 32)); };
    const bool covers_row = static_cast<unsigned long long>(n) == n_cand;
    int32_t m = mode == kPlanTopK ? min(n, P.top_k) : n;  // the top-k set: the first k in host order
    double total = 0.0;
    (void)first_crossing(m, [&](int32_t j) { return static_cast<double>(p_at(j)); }, 0.0, false, &total, scan_d, s);
    if (mode == kPlanOpen && !covers_row) {
      // The row's total mass: every CTA's chunk mass, in CTA order.
      const double mc = tid < a.n_ctas ? __ldcg(&R.mass[tid]) : 0.0;
      block_exclusive_scan<double>(mc, &total, scan_d);
    }
    if (P.top_p < 1.0f) {
      // Host: keep adding while the mass before the entry is short of top_p * total (the crossing
      // entry stays); keep = 1 + the first j whose running sum reaches the target.
      const double target = static_cast<double>(P.top_p) * total;
      double pool_sum = 0.0;
      const int32_t j = first_crossing(m, [&](int32_t q) { return static_cast<double>(p_at(q)); }, target, true,
                                       &pool_sum, scan_d, s);
      if (target <= 0.0) {
        m = 1;
      } else if (j >= 0) {
        m = j + 1;
      } else if (mode == kPlanOpen && !covers_row) {
        exact = true;  // the cut lies below the pool
      }
    } else if (mode == kPlanOpen && !covers_row && P.min_p > 0.0f) {
      // min-p alone: every entry below the pool must fall under the threshold (p_max = 1).
      const float below = prob_of_key(max_logit, inv_t, edge - 1u);
      if (!(below < P.min_p * 0.99999f)) exact = true;
    }
    if (!exact) {
      float thr = 0.0f;
      if (P.min_p > 0.0f) {
        float pm = 0.0f;
        for (int32_t j = tid; j < m; j += kThreads) pm = fmaxf(pm, p_at(j));
        thr = P.min_p * block_max_nonneg(pm, s);
      }
      auto w = [&](int32_t j) {
        const float p = p_at(j);
        return p < thr ? 0.0 : static_cast<double>(p);
      };
      double kept_total = 0.0;
      (void)first_crossing(m, w, 0.0, false, &kept_total, scan_d, s);
      const double u = philox_uniform(P.seed, P.step, row_index) * kept_total;
      int32_t pick = first_crossing(m, w, u, false, &kept_total, scan_d, s);
      if (pick < 0) {  // rounding at the top end: the last kept entry
        int32_t last = -1;
        for (int32_t j = tid; j < m; j += kThreads)
          if (!(p_at(j) < thr)) last = j;
        pick = block_max_i32(last, s);
      }
      result = pick >= 0 ? static_cast<int32_t>(~static_cast<uint32_t>(keys[pick])) : argmax_id;
    }
  } else if (mode == kPlanDrawAll) {
    // No cut: the draw walks the row in id order; the chunk first, then the entry inside it.
    const double mc = tid < a.n_ctas ? __ldcg(&R.mass[tid]) : 0.0;
    double total = 0.0;
    const double ex = block_exclusive_scan<double>(mc, &total, scan_d);
    const double u = philox_uniform(P.seed, P.step, row_index) * total;
    int32_t c = (mc > 0.0 && u >= ex && u < ex + mc) ? tid : INT_MAX;
    c = block_min_i32(c, s);
    if (c == INT_MAX) c = block_max_i32(mc > 0.0 ? tid : -1, s);
    if (tid == 0) dsh[0] = 0.0;
    __syncthreads();
    if (tid == c) dsh[0] = u - ex;
    __syncthreads();
    const double u_in = dsh[0];
    if (c < 0) c = 0;  // no mass anywhere (not reachable: the top entry has p = 1)
    const int64_t seg = a.chunk / kThreads;
    const int64_t d0 = static_cast<int64_t>(c) * a.chunk, d1 = min(a.vocab, d0 + a.chunk);
    double part_ex = 0.0, chunk_total = 0.0;
    const double part = chunk_mass(L, d0, d1, seg, max_logit, inv_t, &part_ex, &chunk_total, scan_d);
    const int64_t b = min(d1, d0 + tid * seg), e = min(d1, b + seg);
    int32_t found = INT_MAX, last = -1;
    double cum = part_ex;
    for (int64_t i = b; i < e; ++i) {
      const float v = L[i];
      if (!(v > -INFINITY)) continue;
      last = static_cast<int32_t>(i);
      if (found == INT_MAX && part > 0.0) {
        cum += expf(__fmul_rn(v - max_logit, inv_t));
        if (u_in < cum) found = static_cast<int32_t>(i);
      }
    }
    found = block_min_i32(found, s);
    last = block_max_i32(last, s);
    result = found != INT_MAX ? found : (last >= 0 ? last : argmax_id);
  }
  if (exact) {
    ExactShared sh{&s,
                   reinterpret_cast<unsigned long long*>(buf),
                   reinterpret_cast<double*>(buf + kThreads * 8),
                   reinterpret_cast<float*>(buf + kThreads * 16),
                   reinterpret_cast<unsigned long long*>(buf + kThreads * 16 + kSmallSet * 4),
                   &small_n,
                   &result_sh};
    __syncthreads();
    result = sample_row_exact(L, V, P, row_index, best, __ldcg(&R.plan.inf_id), n_cand, sh);
  }
  if (tid == 0) {
    if (mode != kPlanDone) a.out[row] = result;
    R.pool_n = 0;
    R.arrived_finish = 0;
    finish_group_row(a, P.step);
  }
}

// The sampler as it was before the pooled passes (lab switch GE_CUDA_SAMPLER=single, for
// measurements): one CTA per row does pass 0 and the exact chain; same greedy ids, and seeded draws
// that follow the same distribution.
__global__ void __launch_bounds__(kThreads) sample_single_cta_kernel(SampleArgs a) {
  constexpr int kBufBytes = kThreads * 16 + kSmallSet * 12;
  __shared__ __align__(16) unsigned char buf[kBufBytes];
  __shared__ Scratch s;
  __shared__ StatsShared ss;
  __shared__ DeviceSamplerState st;
  __shared__ int32_t small_n, result_sh;
  const int tid = threadIdx.x;
  const int64_t row = a.row0 + blockIdx.x;
  const float* L = a.logits + row * a.vocab;
  if (tid == 0) st = *a.state;
  Best best{0.0f, INT_MAX};
  int32_t inf_id = INT_MAX;
  unsigned long long n_cand = 0;
  for (int64_t i = tid; i < a.vocab; i += kThreads) {
    const float v = L[i];
    if (!isnan(v) && (best.i == INT_MAX || v > best.v)) best = Best{v, static_cast<int32_t>(i)};
    if (v == INFINITY && inf_id == INT_MAX) inf_id = static_cast<int32_t>(i);
    if (v > -INFINITY) ++n_cand;
  }
  block_stats(&best, &inf_id, &n_cand, ss);
  const DeviceSamplerState P = st;
  const ExactShared sh{&s,
                       reinterpret_cast<unsigned long long*>(buf),
                       reinterpret_cast<double*>(buf + kThreads * 8),
                       reinterpret_cast<float*>(buf + kThreads * 16),
                       reinterpret_cast<unsigned long long*>(buf + kThreads * 16 + kSmallSet * 4),
                       &small_n,
                       &result_sh};
  const int32_t result =
      sample_row_exact(L, static_cast<int32_t>(a.vocab), P, static_cast<uint32_t>(row), best, inf_id, n_cand, sh);
  if (tid == 0) a.out[row] = result;
}

__global__ void bump_step_kernel(DeviceSamplerState* state) { state->step += 1; }

bool single_cta_sampler() {
  static const bool v = [] {
    const char* e = std::getenv("GE_CUDA_SAMPLER");
    return e != nullptr && std::strcmp(e, "single") == 0;
  }();
  return v;
}

__global__ void advance_positions_kernel(int32_t* positions, int64_t n, int32_t delta) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) positions[i] += delta;
}

}  // namespace

double sampler_uniform(uint64_t seed, uint64_t step, uint32_t row) { return philox_uniform(seed, step, row); }

size_t sampler_scratch_bytes() { return sizeof(SamplerScratch); }

cudaError_t launch_sample_tokens(const float* logits, int64_t rows, int64_t vocab, DeviceSamplerState* state,
                                 int32_t* out, void* scratch, const LaunchContext& ctx) {
  if (rows <= 0 || rows > 65535 || vocab <= 0 || vocab > INT_MAX - kThreads || logits == nullptr ||
      state == nullptr || out == nullptr || scratch == nullptr)
    return cudaErrorInvalidValue;
  // Chunk: at least kMinChunk logits per CTA, at most kMaxCtas CTAs per row; a multiple of kThreads
  // so the per-thread contiguous segments of the mass pass are whole.
  int64_t chunk = (vocab + kMaxCtas - 1) / kMaxCtas;
  if (chunk < kMinChunk) chunk = kMinChunk;
  chunk = (chunk + kThreads - 1) / kThreads * kThreads;
  const int64_t n_ctas = (vocab + chunk - 1) / chunk;
  if (single_cta_sampler()) {
    const SampleArgs a{logits, vocab, chunk, 1, 1, 0, state, out, static_cast<SamplerScratch*>(scratch), false};
    sample_single_cta_kernel<<<static_cast<unsigned>(rows), kThreads, 0, ctx.stream>>>(a);
    bump_step_kernel<<<1, 1, 0, ctx.stream>>>(state);
    return cudaGetLastError();
  }
  for (int64_t r0 = 0; r0 < rows; r0 += kGroupRows) {
    const int64_t g = rows - r0 < kGroupRows ? rows - r0 : kGroupRows;
    const SampleArgs a{logits, vocab, chunk, static_cast<int32_t>(n_ctas), static_cast<int32_t>(g), r0, state, out,
                       static_cast<SamplerScratch*>(scratch), r0 + g == rows};
    const dim3 grid(static_cast<unsigned>(n_ctas), static_cast<unsigned>(g));
    cudaError_t e = launch_pdl(sample_stats_kernel, grid, kThreads, 0, a, ctx);
    if (e != cudaSuccess) return e;
    e = launch_pdl(sample_finish_kernel, grid, kThreads, 0, a, ctx);
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

cudaError_t launch_advance_positions(int32_t* positions, int64_t n, int32_t delta, const LaunchContext& ctx) {
  if (n <= 0) return cudaSuccess;
  if (positions == nullptr) return cudaErrorInvalidValue;
  advance_positions_kernel<<<blocks_for(n, 128), 128, 0, ctx.stream>>>(positions, n, delta);
  return cudaGetLastError();
}

}  // namespace ge::cuda
