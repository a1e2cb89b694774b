// Attention kernels. Positions are read on the device, so one launch configuration (grid sized from
// the ring capacity) serves every step and a decode step can be captured in a CUDA graph: the decode
// kernel spreads the visible keys over the splits and the splits past them exit at once.
#include "backend/cuda/attention.cuh"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/attention_decode_helpers.cuh"
#include "backend/cuda/attention_kernels.cuh"
#include "backend/cuda/attention_prefill.cuh"

namespace ge::cuda {
namespace {

using namespace attention_detail;

// kG: group size bound (registers hold kG query rows); kCpl: 16-byte chunks of a K row per lane;
// kDpt: output dims per thread in P·V.
// Scores: `lpk` lanes per key read the K row in 16-byte pieces (a warp reads whole rows, 512 B at
// d = 256), every lane holding its slice of the G query rows in registers, so each K byte is read
// once for the whole GQA group; the partial dots meet through xor shuffles.
// P·V: threads own kDpt consecutive dims of a V row (a row is one contiguous read), key groups split
// the tile when a row needs fewer than 128 threads, and are summed once at the end.
template <int kG, int kCpl, int kDpt>
static __global__ void __launch_bounds__(kDecodeThreads) attention_decode_kernel(AttnParams p) {
  extern __shared__ __align__(16) float sm[];
  __shared__ float m_run[kG], l_run[kG], corr_s[kG];
  __shared__ int slots[kDecodeTile];
  grid_dependency_release();
  grid_dependency_wait();
  const int kvh = blockIdx.x, split = blockIdx.y, t = blockIdx.z;
  const int G = p.group, d = p.d, tid = threadIdx.x;
  const int warp = tid >> 5, lane = tid & 31;
  float* S = sm;    // [kG][tile]: scores, then softmax weights
  float* red = sm;  // [kg][G][d]: key-group sums after the key loop (aliases S)

  int64_t lo = 0;
  const int64_t n_vis = decode_visible(p, t, &lo, tid == 0 && split == 0 && kvh == 0);
  const SplitLayout layout = decode_layout(p, n_vis);
  const int n_active = layout.active;
  if (split >= n_active) return;
  const int64_t n_mine = decode_split_keys(p, n_vis, layout, split);

  const __nv_bfloat16* kc = p.k;
  const __nv_bfloat16* vc = p.v;
  if (p.batch.bases != nullptr) {
    kc = reinterpret_cast<const __nv_bfloat16*>(p.batch.bases[t] + p.batch.k_offset);
    vc = reinterpret_cast<const __nv_bfloat16*>(p.batch.bases[t] + p.batch.v_offset);
  }

  const int lpk = p.lpk, kpw = 32 / lpk, sub = lane / lpk, li = lane % lpk, n_chunks = d / 8;
  float qr[kG][kCpl * 8];
  decode_load_q<kG, kCpl>(p, qr, t, kvh, li);
  if (tid < kG) {
    m_run[tid] = -INFINITY;
    l_run[tid] = 0.0f;
  }
  __syncthreads();

  const int tpr = d / kDpt;                   // threads per V row
  const int kg_count = kDecodeThreads / tpr;  // key groups in the P·V step
  const int kg = tid / tpr;
  const int c0 = (tid % tpr) * kDpt;
  const bool pv_active = kg < kg_count;
  float o[kG][kDpt];
#pragma unroll
  for (int h = 0; h < kG; ++h) {
#pragma unroll
    for (int i = 0; i < kDpt; ++i) o[h][i] = 0.0f;
  }

  constexpr int kUnroll = 4 / kCpl;  // K rows in flight per lane group
  const int step = kDecodeWarps * kpw;
  for (int64_t tb = 0; tb < n_mine; tb += kDecodeTile) {
    const int tile_len = static_cast<int>(min(int64_t{kDecodeTile}, n_mine - tb));
    for (int j0 = 0; j0 < tile_len; j0 += step * kUnroll) {
      uint4 kr[kUnroll][kCpl];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int j = j0 + u * step + warp * kpw + sub;
        const bool valid = j < tile_len;
        const int slot = valid ? decode_slot(p, lo, layout, split, tb + j) : 0;
        if (valid && li == 0) slots[j] = slot;
        const __nv_bfloat16* krow = kc + (int64_t{slot} * p.n_kv + kvh) * d;
#pragma unroll
        for (int c = 0; c < kCpl; ++c) {
          const int chunk = li + c * lpk;
          kr[u][c] = valid && chunk < n_chunks ? *reinterpret_cast<const uint4*>(krow + chunk * 8)
                                               : make_uint4(0, 0, 0, 0);
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        float s[kG];
        decode_score<kG, kCpl>(qr, kr[u], lpk, s);
        const int j = j0 + u * step + warp * kpw + sub;
        if (li == 0 && j < tile_len) {
#pragma unroll
          for (int h = 0; h < kG; ++h) {
            if (h < G) S[h * kDecodeTile + j] = cap_score(s[h] * p.scale, p.softcap);
          }
        }
      }
    }
    __syncthreads();
    decode_softmax_step<kDecodeTile>(S, tile_len, G, m_run, l_run, corr_s);
    __syncthreads();
    if (pv_active) {
#pragma unroll
      for (int h = 0; h < kG; ++h) {
        const float cr = h < G ? corr_s[h] : 1.0f;
#pragma unroll
        for (int i = 0; i < kDpt; ++i) o[h][i] *= cr;
      }
#pragma unroll 8
      for (int j = kg; j < tile_len; j += kg_count) {
        const __nv_bfloat16* vrow = vc + (int64_t{slots[j]} * p.n_kv + kvh) * d + c0;
        float vf[kDpt];
        load_row_piece<kDpt>(vrow, vf);
#pragma unroll
        for (int h = 0; h < kG; ++h) {
          const float pr = h < G ? S[h * kDecodeTile + j] : 0.0f;
#pragma unroll
          for (int i = 0; i < kDpt; ++i) o[h][i] = fmaf(pr, vf[i], o[h][i]);
        }
      }
    }
    __syncthreads();
  }

  // red aliases S: the loop ended on a barrier.
  decode_finish<kG, kDpt>(p, o, red, m_run, l_run, t, kvh, split, n_active);
}

// Staged variant: each split's K and V tiles are copied into shared memory with
// cp.async one tile ahead (a tile's loads are in flight while the previous one is scored and
// summed), so the bytes in flight do not cost registers; scoring and P·V then read shared memory
// in the same layouts as attention_decode_kernel. kKT keys per tile (32; 16 above d = 256): two
// stages of K and V tiles take at most 64 KiB.
template <int kG, int kCpl, int kDpt, int kKT>
static __global__ void __launch_bounds__(kDecodeThreads) attention_decode_staged_kernel(AttnParams p) {
  extern __shared__ __align__(16) float sm[];
  __shared__ float m_run[kG], l_run[kG], corr_s[kG];
  __shared__ float S[kG * kKT];
  grid_dependency_release();
  grid_dependency_wait();
  const int kvh = blockIdx.x, split = blockIdx.y, t = blockIdx.z;
  const int G = p.group, d = p.d, tid = threadIdx.x;
  const int warp = tid >> 5, lane = tid & 31;
  __nv_bfloat16* stages = reinterpret_cast<__nv_bfloat16*>(sm);  // [2][K, V][kKT][d]
  float* red = sm;  // [kg][G][d]: key-group sums after the key loop (aliases the stages)

  int64_t lo = 0;
  const int64_t n_vis = decode_visible(p, t, &lo, tid == 0 && split == 0 && kvh == 0);
  const SplitLayout layout = decode_layout(p, n_vis);
  const int n_active = layout.active;
  if (split >= n_active) return;
  const int64_t n_mine = decode_split_keys(p, n_vis, layout, split);

  const __nv_bfloat16* kc = p.k;
  const __nv_bfloat16* vc = p.v;
  if (p.batch.bases != nullptr) {
    kc = reinterpret_cast<const __nv_bfloat16*>(p.batch.bases[t] + p.batch.k_offset);
    vc = reinterpret_cast<const __nv_bfloat16*>(p.batch.bases[t] + p.batch.v_offset);
  }
  const int lpk = p.lpk, kpw = 32 / lpk, sub = lane / lpk, li = lane % lpk, n_chunks = d / 8;
  const int64_t stage_elems = int64_t{2} * kKT * d;

  // Copies the split's keys [tb, tb + kKT) into stage `st` (K rows then V rows).
  auto issue = [&](int64_t tb, int st) {
    const int len = static_cast<int>(min(int64_t{kKT}, n_mine - tb));
    __nv_bfloat16* ks = stages + st * stage_elems;
    __nv_bfloat16* vs = ks + kKT * d;
    for (int i = tid; i < len * n_chunks; i += kDecodeThreads) {
      const int j = i / n_chunks, c8 = (i - j * n_chunks) * 8;
      const int slot = decode_slot(p, lo, layout, split, tb + j);
      const int64_t off = (int64_t{slot} * p.n_kv + kvh) * d + c8;
      cp_async16(ks + j * d + c8, kc + off);
      cp_async16(vs + j * d + c8, vc + off);
    }
  };
  if (n_mine > 0) issue(0, 0);
  cp_async_commit();

  float qr[kG][kCpl * 8];
  decode_load_q<kG, kCpl>(p, qr, t, kvh, li);
  if (tid < kG) {
    m_run[tid] = -INFINITY;
    l_run[tid] = 0.0f;
  }

  const int tpr = d / kDpt, kg_count = kDecodeThreads / tpr, kg = tid / tpr, c0 = (tid % tpr) * kDpt;
  const bool pv_active = kg < kg_count;
  float o[kG][kDpt];
#pragma unroll
  for (int h = 0; h < kG; ++h) {
#pragma unroll
    for (int i = 0; i < kDpt; ++i) o[h][i] = 0.0f;
  }

  const int step = kDecodeWarps * kpw;
  int st = 0;
  for (int64_t tb = 0; tb < n_mine; tb += kKT, st ^= 1) {
    const int tile_len = static_cast<int>(min(int64_t{kKT}, n_mine - tb));
    // The other stage was last read before the previous iteration's final barrier.
    if (tb + kKT < n_mine) issue(tb + kKT, st ^ 1);
    cp_async_commit();
    cp_async_wait_all_but_one();  // this tile has landed (the next one may be in flight)
    __syncthreads();
    const __nv_bfloat16* ks = stages + st * stage_elems;
    const __nv_bfloat16* vs = ks + kKT * d;
    for (int j0 = 0; j0 < tile_len; j0 += step) {
      const int j = j0 + warp * kpw + sub;
      const bool valid = j < tile_len;
      uint4 kr[kCpl];
#pragma unroll
      for (int c = 0; c < kCpl; ++c) {
        const int chunk = li + c * lpk;
        kr[c] = valid && chunk < n_chunks ? *reinterpret_cast<const uint4*>(ks + j * d + chunk * 8)
                                          : make_uint4(0, 0, 0, 0);
      }
      float s[kG];
      decode_score<kG, kCpl>(qr, kr, lpk, s);
      if (li == 0 && valid) {
#pragma unroll
        for (int h = 0; h < kG; ++h) {
          if (h < G) S[h * kKT + j] = cap_score(s[h] * p.scale, p.softcap);
        }
      }
    }
    __syncthreads();
    decode_softmax_step<kKT>(S, tile_len, G, m_run, l_run, corr_s);
    __syncthreads();
    if (pv_active) {
#pragma unroll
      for (int h = 0; h < kG; ++h) {
        const float cr = h < G ? corr_s[h] : 1.0f;
#pragma unroll
        for (int i = 0; i < kDpt; ++i) o[h][i] *= cr;
      }
      for (int j = kg; j < tile_len; j += kg_count) {
        float vf[kDpt];
        load_row_piece<kDpt>(vs + j * d + c0, vf);
#pragma unroll
        for (int h = 0; h < kG; ++h) {
          const float pr = h < G ? S[h * kKT + j] : 0.0f;
#pragma unroll
          for (int i = 0; i < kDpt; ++i) o[h][i] = fmaf(pr, vf[i], o[h][i]);
        }
      }
    }
    __syncthreads();
  }
  cp_async_wait_all();
  __syncthreads();
  decode_finish<kG, kDpt>(p, o, red, m_run, l_run, t, kvh, split, n_active);
}

// The separate merge of the active splits' partials (combine_head), grid (n_heads, n_tokens), when
// the decode kernel does not merge them itself; a token whose keys fit one split was written already.
static __global__ void attention_combine_kernel(AttnParams p) {
  __shared__ float w_s[kMaxSplits];
  __shared__ float inv_s;
  grid_dependency_release();
  grid_dependency_wait();
  const int t = blockIdx.y;
  int64_t lo = 0;
  const int64_t n_vis = decode_visible(p, t, &lo, false);
  const int n_active = decode_layout(p, n_vis).active;
  if (n_active == 1) return;
  combine_head(p, int64_t{t} * p.n_heads + blockIdx.x, n_active, w_s, &inv_s);
}

// Fewest keys per decode split (GE_CUDA_ATTN_MIN_SPLIT, 16..4096, overrides it for measurements):
// small splits put more CTAs on a short context; each split costs a partial row in the combine.
int64_t min_keys_per_split() {
  static const int64_t v = [] {
    const char* e = std::getenv("GE_CUDA_ATTN_MIN_SPLIT");
    const long x = e != nullptr ? std::strtol(e, nullptr, 10) : 0;
    return x >= 16 && x <= 4096 ? static_cast<int64_t>(x) : int64_t{16};
  }();
  return v;
}

// Decode CTAs per SM the split count aims at when the context is long (GE_CUDA_ATTN_WAVES, 1..8).
int64_t decode_waves() {
  static const int64_t v = [] {
    const char* e = std::getenv("GE_CUDA_ATTN_WAVES");
    const long x = e != nullptr ? std::strtol(e, nullptr, 10) : 0;
    return x >= 1 && x <= 8 ? static_cast<int64_t>(x) : int64_t{2};
  }();
  return v;
}

// Whether decode splits take key granules round-robin (GE_CUDA_ATTN_INTERLEAVE=0: contiguous runs,
// for measurements).
bool decode_interleave() {
  static const bool v = [] {
    const char* e = std::getenv("GE_CUDA_ATTN_INTERLEAVE");
    return e == nullptr || std::strcmp(e, "0") != 0;
  }();
  return v;
}

// How the split partials are merged (GE_CUDA_ATTN_COMBINE, for measurements; same bits every way):
// 0 = by size (default), 1 = always the combine kernel ("kernel"), 2 = always the last split CTA
// ("fused", within the shared-memory bound).
int decode_combine_mode() {
  static const int v = [] {
    const char* e = std::getenv("GE_CUDA_ATTN_COMBINE");
    if (e == nullptr) return 0;
    return std::strcmp(e, "kernel") == 0 ? 1 : (std::strcmp(e, "fused") == 0 ? 2 : 0);
  }();
  return v;
}

// Fused merge bounds (GE_CUDA_ATTN_COMBINE=fused lifts the bytes bound): one CTA reads every partial
// of its group, n_splits * G * d floats, so long-context layers with many splits and a wide group keep
// the combine kernel, which spreads that over n_heads CTAs.
constexpr size_t kFusedCombineMaxBytes = size_t{64} << 10;

// Arrival counters at the head of the partials scratch: a fixed region, so no layer's partials
// overlap another layer's counters; zeroed when the scratch is (re)allocated, then kept zero by the
// kernels. Decode launches with more (token, KV head) pairs use the combine kernel.
constexpr size_t kSplitCountBytes = size_t{16} << 10;

// Dynamic shared memory of the decode kernel: the score tile, or the key-group sums after the loop.
size_t decode_smem(int kg_bound, int G, int d, int dpt) {
  const int kg_count = kDecodeThreads / (d / dpt);
  const size_t scores = static_cast<size_t>(kg_bound) * kDecodeTile * 4;
  const size_t sums = kg_count > 1 ? static_cast<size_t>(kg_count) * G * d * 4 : 0;
  return std::max(scores, sums);
}

// Which decode kernel: the staged one (K/V tiles through shared memory) for one sequence's decode
// step, the register one for batches of sequences (faster there at short contexts, measured on
// H100: dev/cuda/batch_notes.md). GE_CUDA_ATTN_KERNEL=staged|registers forces one for measurements.
bool decode_staged(int64_t n_tokens) {
  static const int forced = [] {
    const char* e = std::getenv("GE_CUDA_ATTN_KERNEL");
    if (e == nullptr) return 0;
    return std::strcmp(e, "staged") == 0 ? 1 : (std::strcmp(e, "registers") == 0 ? 2 : 0);
  }();
  return forced != 0 ? forced == 1 : n_tokens == 1;
}

constexpr size_t kStagedSmemLimit = size_t{64} << 10;

// Dynamic shared memory of the staged kernel: two stages of K and V tiles, or the key-group sums.
size_t decode_staged_smem(int G, int d, int dpt, int kt) {
  const int kg_count = kDecodeThreads / (d / dpt);
  const size_t stages = size_t{2} * 2 * kt * d * sizeof(__nv_bfloat16);
  const size_t sums = kg_count > 1 ? static_cast<size_t>(kg_count) * G * d * 4 : 0;
  return std::max(stages, sums);
}

template <int kG>
cudaError_t launch_decode_staged(const AttnParams& p, dim3 grid, int cpl, const LaunchContext& ctx) {
  if (p.d > 256) {
    return launch_pdl(attention_decode_staged_kernel<kG, 2, 4, 16>, grid, kDecodeThreads,
                      decode_staged_smem(p.group, p.d, 4, 16), p, ctx);
  } else if (cpl == 1) {
    return launch_pdl(attention_decode_staged_kernel<kG, 1, 8, 32>, grid, kDecodeThreads,
                      decode_staged_smem(p.group, p.d, 8, 32), p, ctx);
  }
  return launch_pdl(attention_decode_staged_kernel<kG, 2, 8, 32>, grid, kDecodeThreads,
                    decode_staged_smem(p.group, p.d, 8, 32), p, ctx);
}

template <int kG>
cudaError_t configure_decode_staged() {
  const int limit = static_cast<int>(kStagedSmemLimit);
  cudaError_t e = cudaFuncSetAttribute(attention_decode_staged_kernel<kG, 2, 4, 16>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, limit);
  if (e != cudaSuccess) return e;
  e = cudaFuncSetAttribute(attention_decode_staged_kernel<kG, 1, 8, 32>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           limit);
  if (e != cudaSuccess) return e;
  return cudaFuncSetAttribute(attention_decode_staged_kernel<kG, 2, 8, 32>,
                              cudaFuncAttributeMaxDynamicSharedMemorySize, limit);
}

template <int kG>
cudaError_t launch_decode(const AttnParams& p, dim3 grid, int cpl, const LaunchContext& ctx) {
  if (p.d > 256) {
    return launch_pdl(attention_decode_kernel<kG, 2, 4>, grid, kDecodeThreads, decode_smem(kG, p.group, p.d, 4), p, ctx);
  } else if (cpl == 1) {
    return launch_pdl(attention_decode_kernel<kG, 1, 8>, grid, kDecodeThreads, decode_smem(kG, p.group, p.d, 8), p, ctx);
  } else {
    return launch_pdl(attention_decode_kernel<kG, 2, 8>, grid, kDecodeThreads, decode_smem(kG, p.group, p.d, 8), p, ctx);
  }
}

}  // namespace

bool attention_supported(const AttentionParams& p) {
  if (p.n_heads <= 0 || p.n_kv_heads <= 0 || p.n_heads % p.n_kv_heads != 0) return false;
  const int group = p.n_heads / p.n_kv_heads;
  return group <= kAttentionMaxGroup && p.head_dim > 0 && p.head_dim % 8 == 0 &&
         p.head_dim <= kAttentionMaxHeadDim && p.sliding_window >= 0;
}

cudaError_t configure_attention_kernels() {
  cudaError_t e = attention_detail::configure_prefill_simt();
  if (e != cudaSuccess) return e;
  if ((e = configure_decode_staged<2>()) != cudaSuccess) return e;
  if ((e = configure_decode_staged<4>()) != cudaSuccess) return e;
  if ((e = configure_decode_staged<8>()) != cudaSuccess) return e;
  return configure_prefill_attention_mma();
}

cudaError_t launch_attention(const CudaKvCache::Layer& layer, const float* q, int64_t n_tokens,
                             const int32_t* positions, const AttentionParams& ap, float* out,
                             const AttentionScratch& scratch, const LaunchContext& ctx, const KvBatchView& batch) {
  if (n_tokens <= 0) return cudaSuccess;
  AttnParams p{};
  p.q = q;
  p.out = out;
  p.k = layer.k;
  p.v = layer.v;
  p.positions = positions;
  p.error_word = ctx.error_word;
  p.batch = batch;
  p.n_tokens = static_cast<int>(n_tokens);
  p.n_heads = ap.n_heads;
  p.n_kv = ap.n_kv_heads;
  p.d = ap.head_dim;
  p.group = ap.n_heads / ap.n_kv_heads;
  p.cap = layer.spec.capacity;
  p.window = ap.sliding_window;
  p.scale = ap.scale;
  p.softcap = ap.logit_softcap;

  const bool aligned = reinterpret_cast<uintptr_t>(q) % 16 == 0 && reinterpret_cast<uintptr_t>(out) % 8 == 0;
  const bool prefill = n_tokens > kDecodeMaxTokens && batch.bases == nullptr;
  if (prefill && !scratch.simt_prefill && aligned && prefill_attention_mma_supported(p.d)) {
    PrefillAttentionArgs a;
    a.q = q;
    a.out = out;
    a.k = p.k;
    a.v = p.v;
    a.positions = positions;
    a.error_word = p.error_word;
    a.n_tokens = p.n_tokens;
    a.n_heads = p.n_heads;
    a.n_kv = p.n_kv;
    a.d = p.d;
    a.group = p.group;
    a.cap = p.cap;
    a.window = p.window;
    a.scale = p.scale;
    a.softcap = p.softcap;
    return launch_prefill_attention_mma(a, ctx.stream);
  }
  if (prefill && p.d % 32 == 0) return attention_detail::launch_prefill_simt(p, ctx);

  // Split-K decode. The split count (fixed per layer, so a recorded graph serves every step) aims at
  // decode_waves() CTAs per SM when the ring is full; the kernel sizes the splits from the visible
  // keys, so fewer, smaller splits run at short contexts.
  const int64_t max_keys = p.window > 0 ? std::min<int64_t>(p.window, p.cap) : p.cap;
  const int64_t per_split_ctas = std::max<int64_t>(1, int64_t{p.n_kv} * n_tokens);
  const int64_t want = (decode_waves() * std::max(ctx.num_sms, 1) + per_split_ctas - 1) / per_split_ctas;
  const int64_t by_keys = (max_keys + min_keys_per_split() - 1) / min_keys_per_split();
  p.n_splits = static_cast<int>(std::clamp<int64_t>(std::min(want, by_keys), 1, kMaxSplits));
  p.min_keys = static_cast<int>(min_keys_per_split());
  p.q_aligned = reinterpret_cast<uintptr_t>(q) % 16 == 0;
  p.interleave = decode_interleave();
  const int chunks = p.d / 8;
  p.lpk = 1;
  while (p.lpk * 2 <= std::min(32, chunks)) p.lpk *= 2;
  const int cpl = (chunks + p.lpk - 1) / p.lpk;  // 1 or 2 (lpk is the largest power of two <= chunks, or 32)
  if (p.n_splits > 1) {
    if (scratch.partials == nullptr) return cudaErrorInvalidValue;
    const size_t per_split = static_cast<size_t>(n_tokens) * p.n_heads * p.n_splits;
    const size_t need = kSplitCountBytes + per_split * (static_cast<size_t>(p.d) + 2) * 4;
    const size_t had = scratch.partials->bytes();
    if (!scratch.partials->ensure(need, "attention partials").is_ok()) return cudaErrorMemoryAllocation;
    char* base = scratch.partials->as<char>();
    if (scratch.partials->bytes() != had) {
      const cudaError_t z = cudaMemsetAsync(base, 0, kSplitCountBytes, ctx.stream);
      if (z != cudaSuccess) return z;
    }
    p.part_o = reinterpret_cast<float*>(base + kSplitCountBytes);
    p.part_ml = p.part_o + per_split * p.d;
    const size_t pairs = static_cast<size_t>(n_tokens) * p.n_kv;
    const size_t weights = static_cast<size_t>(p.n_splits) * p.group;
    const size_t bytes = weights * p.d * sizeof(float);
    const int mode = decode_combine_mode();
    if (mode != 1 && pairs * sizeof(uint32_t) <= kSplitCountBytes && weights <= kFusedCombineWeights &&
        (mode == 2 || bytes <= kFusedCombineMaxBytes))
      p.split_count = reinterpret_cast<uint32_t*>(base);
  }
  const dim3 grid(static_cast<unsigned>(p.n_kv), static_cast<unsigned>(p.n_splits), static_cast<unsigned>(n_tokens));
  cudaError_t e;
  const bool staged = decode_staged(n_tokens);
  if (p.group <= 2) {
    e = staged ? launch_decode_staged<2>(p, grid, cpl, ctx) : launch_decode<2>(p, grid, cpl, ctx);
  } else if (p.group <= 4) {
    e = staged ? launch_decode_staged<4>(p, grid, cpl, ctx) : launch_decode<4>(p, grid, cpl, ctx);
  } else {
    e = staged ? launch_decode_staged<8>(p, grid, cpl, ctx) : launch_decode<8>(p, grid, cpl, ctx);
  }
  if (e != cudaSuccess || p.n_splits == 1 || p.split_count != nullptr) return e;
  return launch_pdl(attention_combine_kernel, dim3(static_cast<unsigned>(p.n_heads), static_cast<unsigned>(n_tokens)),
                    128, 0, p, ctx);
}

}  // namespace ge::cuda
