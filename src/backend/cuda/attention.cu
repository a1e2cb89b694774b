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

  int64_t lo = 0, n_vis = 0;
  const SplitLayout layout = decode_split_layout(p, t, kvh, split, &lo, &n_vis);
  const int n_active = layout.active;
  if (split >= n_active) return;
  const int64_t n_mine = decode_split_keys(p, n_vis, layout, split);
  const __nv_bfloat16* kc;
  const __nv_bfloat16* vc;
  decode_kv_caches(p, t, &kc, &vc);

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

  int64_t lo = 0, n_vis = 0;
  const SplitLayout layout = decode_split_layout(p, t, kvh, split, &lo, &n_vis);
  const int n_active = layout.active;
  if (split >= n_active) return;
  const int64_t n_mine = decode_split_keys(p, n_vis, layout, split);
  const __nv_bfloat16* kc;
  const __nv_bfloat16* vc;
  decode_kv_caches(p, t, &kc, &vc);
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
      async_copy::copy16(ks + j * d + c8, kc + off);
      async_copy::copy16(vs + j * d + c8, vc + off);
    }
  };
  if (n_mine > 0) issue(0, 0);
  async_copy::commit();

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
    async_copy::commit();
    async_copy::wait<1>();  // this tile has landed (the next one may be in flight)
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
  async_copy::wait<0>();
  __syncthreads();
  decode_finish<kG, kDpt>(p, o, red, m_run, l_run, t, kvh, split, n_active);
}

// Tensor-core variant for head_dim 64..512 (a power of two): S = Q·Kᵀ and O += P·V by mma.sync
// m16n8k16 (bf16 in, fp32 accumulate), the group's query heads as the rows (at most 8 of 16). Q and the
// softmax weights P enter as three bf16 parts each (24 significant bits, split_bf16x3) and K/V are bf16
// already, so the sums are the fp32 kernels' up to rounding, for a few dozen mma per tile instead of
// ~d·G·keys / 32 FMAs per thread. Warp w owns dims [w·d/4, (w+1)·d/4): its partial S over them meets
// the other warps' in shared memory, summed in warp order (the same in every warp, so each warp runs
// the same online softmax on the same values), and it accumulates O for its dims. K/V tiles of kKT
// keys (16 KiB of K per tile) stream through kStages cp.async stages, kStages - 1 tiles in flight
// during the math.
template <int kD, int kStages>
struct MmaDecode {
  static constexpr int kKT = 8192 / kD;          // keys per tile
  static constexpr int kLd = kD + 8;             // row pitch (bf16): the 8 rows of an ldmatrix hit distinct banks
  static constexpr int kDw = kD / kDecodeWarps;  // dims per warp
  static constexpr int kKs = kDw / 16;           // S k-steps per warp
  static constexpr int kNb = kKT / 8;            // S column (key) blocks
  static constexpr int kOb = kDw / 8;            // O column (dim) blocks per warp
  static constexpr size_t kSmem = size_t{kStages} * 2 * kKT * kLd * sizeof(__nv_bfloat16);
  static_assert(kKs >= 1 && kNb % 2 == 0 && kOb % 2 == 0 && kStages >= 2, "head_dim 64..512");
};

template <int kD, int kStages>
static __global__ void __launch_bounds__(kDecodeThreads) attention_decode_mma_kernel(AttnParams p) {
  using C = MmaDecode<kD, kStages>;
  constexpr int kKT = C::kKT, kLd = C::kLd, kDw = C::kDw, kKs = C::kKs, kNb = C::kNb, kOb = C::kOb;
  constexpr int kChunks = kD / 8;
  constexpr int kStage = 2 * kKT * kLd;
  extern __shared__ __align__(16) uint8_t smem_raw[];
  __nv_bfloat16* stages = reinterpret_cast<__nv_bfloat16*>(smem_raw);  // [kStages][K, V][kKT][kLd]
  __shared__ __align__(16) float Sp[kDecodeWarps][8][kKT];           // each warp's partial scores
  grid_dependency_release();
  grid_dependency_wait();
  const int kvh = blockIdx.x, split = blockIdx.y, t = blockIdx.z;
  const int G = p.group, tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, tig = lane & 3;

  int64_t lo = 0, n_vis = 0;
  const SplitLayout layout = decode_split_layout(p, t, kvh, split, &lo, &n_vis);
  const int n_active = layout.active;
  if (split >= n_active) return;
  const int64_t n_mine = decode_split_keys(p, n_vis, layout, split);
  const __nv_bfloat16* kc;
  const __nv_bfloat16* vc;
  decode_kv_caches(p, t, &kc, &vc);
  // Copies the split's keys [tb, tb + kKT) into stage `st`; rows past the split's keys are zeroed, so
  // their zero weights never meet stale (possibly NaN) bits in the P·V mma.
  auto issue = [&](int64_t tb, int st) {
    const int len = static_cast<int>(min(int64_t{kKT}, n_mine - tb));
    __nv_bfloat16* ks = stages + st * kStage;
    __nv_bfloat16* vs = ks + kKT * kLd;
    for (int i = tid; i < kKT * kChunks; i += kDecodeThreads) {
      const int j = i / kChunks, c8 = (i - j * kChunks) * 8;
      if (j < len) {
        const int slot = decode_slot(p, lo, layout, split, tb + j);
        const int64_t off = (int64_t{slot} * p.n_kv + kvh) * kD + c8;
        async_copy::copy16(ks + j * kLd + c8, kc + off);
        async_copy::copy16(vs + j * kLd + c8, vc + off);
      } else {
        *reinterpret_cast<uint4*>(ks + j * kLd + c8) = make_uint4(0, 0, 0, 0);
        *reinterpret_cast<uint4*>(vs + j * kLd + c8) = make_uint4(0, 0, 0, 0);
      }
    }
  };
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (int64_t{s} * kKT < n_mine) issue(int64_t{s} * kKT, s);
    async_copy::commit();
  }

  // A fragments of Q for the warp's dims: head g (zero past the group), dims tig*2 (+8) of each k-step.
  uint32_t qa[kKs][2][3];
  {
    const bool in = g < G;
    const float* qrow = p.q + (int64_t{t} * p.n_heads + int64_t{kvh} * G + (in ? g : 0)) * kD + warp * kDw + tig * 2;
#pragma unroll
    for (int ks = 0; ks < kKs; ++ks) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float2 v = in ? *reinterpret_cast<const float2*>(qrow + ks * 16 + h * 8) : make_float2(0.0f, 0.0f);
        split_bf16x3(v.x, v.y, qa[ks][h]);
      }
    }
  }
  float m_run = -INFINITY, l_run = 0.0f;  // head g's running max and sum (alike in its quad and every warp)
  float o[kOb][4];
#pragma unroll
  for (int ob = 0; ob < kOb; ++ob) o[ob][0] = o[ob][1] = o[ob][2] = o[ob][3] = 0.0f;

  int st = 0;
  for (int64_t tb = 0; tb < n_mine; tb += kKT, st = st + 1 == kStages ? 0 : st + 1) {
    const int tile_len = static_cast<int>(min(int64_t{kKT}, n_mine - tb));
    async_copy::wait<kStages - 2>();  // this tile's group is done (later ones may be in flight)
    __syncthreads();  // the tile landed for every thread; every warp is past the previous tile
    // The previous tile's stage is free: it takes the tile kStages - 1 ahead.
    const int64_t next = tb + int64_t{kStages - 1} * kKT;
    if (next < n_mine) issue(next, st == 0 ? kStages - 1 : st - 1);
    async_copy::commit();
    const __nv_bfloat16* ks = stages + st * kStage;
    const __nv_bfloat16* vs = ks + kKT * kLd;

    // Partial S over the warp's dims: the hi part in one accumulator, mid + lo in another.
    float s_hi[kNb][4], s_lo[kNb][4];
#pragma unroll
    for (int nb = 0; nb < kNb; ++nb) {
#pragma unroll
      for (int i = 0; i < 4; ++i) s_hi[nb][i] = s_lo[nb][i] = 0.0f;
    }
#pragma unroll
    for (int nb = 0; nb < kNb; nb += 2) {
#pragma unroll
      for (int kst = 0; kst < kKs; ++kst) {
        // Matrices: keys nb*8.. dims +0 / +8, keys (nb+1)*8.. dims +0 / +8: b0, b1 of both key blocks.
        uint32_t b[4];
        ldmatrix_x4(ks + (nb * 8 + (lane & 7) + ((lane >> 4) << 3)) * kLd + warp * kDw + kst * 16 + (((lane >> 3) & 1) << 3),
                b);
        mma_rows8(s_hi[nb], qa[kst][0][0], qa[kst][1][0], b[0], b[1]);
        mma_rows8(s_hi[nb + 1], qa[kst][0][0], qa[kst][1][0], b[2], b[3]);
        mma_rows8(s_lo[nb], qa[kst][0][1], qa[kst][1][1], b[0], b[1]);
        mma_rows8(s_lo[nb + 1], qa[kst][0][1], qa[kst][1][1], b[2], b[3]);
        mma_rows8(s_lo[nb], qa[kst][0][2], qa[kst][1][2], b[0], b[1]);
        mma_rows8(s_lo[nb + 1], qa[kst][0][2], qa[kst][1][2], b[2], b[3]);
      }
    }
#pragma unroll
    for (int nb = 0; nb < kNb; ++nb) {
      *reinterpret_cast<float2*>(&Sp[warp][g][nb * 8 + tig * 2]) =
          make_float2(s_hi[nb][0] + s_lo[nb][0], s_hi[nb][1] + s_lo[nb][1]);
    }
    __syncthreads();

    // Scores of head g at keys nb*8 + tig*2 (+1), summed over the warps in order; online softmax.
    float pr[kNb][2];
    float tmax = -INFINITY;
#pragma unroll
    for (int nb = 0; nb < kNb; ++nb) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int j = nb * 8 + tig * 2 + e;
        float v = Sp[0][g][j];
#pragma unroll
        for (int w = 1; w < kDecodeWarps; ++w) v += Sp[w][g][j];
        v = j < tile_len ? cap_score(v * p.scale, p.softcap) : -INFINITY;
        pr[nb][e] = v;
        tmax = fmaxf(tmax, v);
      }
    }
    tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 1));
    tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 2));
    const float m_new = fmaxf(m_run, tmax);
    const bool none = m_new == -INFINITY;
    const float corr = none ? 1.0f : expf(m_run - m_new);
    float psum = 0.0f;
#pragma unroll
    for (int nb = 0; nb < kNb; ++nb) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        pr[nb][e] = none ? 0.0f : expf(pr[nb][e] - m_new);
        psum += pr[nb][e];
      }
    }
    psum += __shfl_xor_sync(0xffffffffu, psum, 1);
    psum += __shfl_xor_sync(0xffffffffu, psum, 2);
    l_run = l_run * corr + psum;
    m_run = m_new;
#pragma unroll
    for (int ob = 0; ob < kOb; ++ob) {
      o[ob][0] *= corr;
      o[ob][1] *= corr;
    }

    // O += P·V over the warp's dims: P (head g, keys kb*16 + tig*2 (+8)) as the A fragment.
#pragma unroll
    for (int kb = 0; kb < kNb / 2; ++kb) {
      uint32_t pa[3], pb[3];
      split_bf16x3(pr[2 * kb][0], pr[2 * kb][1], pa);
      split_bf16x3(pr[2 * kb + 1][0], pr[2 * kb + 1][1], pb);
#pragma unroll
      for (int ob = 0; ob < kOb; ob += 2) {
        // Transposed matrices: keys kb*16.. / +8 at dims ob*8.., then the same at (ob+1)*8..
        uint32_t b[4];
        ldmatrix_x4_trans(vs + (kb * 16 + (lane & 7) + (((lane >> 3) & 1) << 3)) * kLd + warp * kDw + ob * 8 +
                          ((lane >> 4) << 3),
                      b);
#pragma unroll
        for (int sp = 0; sp < 3; ++sp) {
          mma_rows8(o[ob], pa[sp], pb[sp], b[0], b[1]);
          mma_rows8(o[ob + 1], pa[sp], pb[sp], b[2], b[3]);
        }
      }
    }
  }
  async_copy::wait<0>();

  // Head g's output at dims warp*kDw + ob*8 + tig*2 (+1): final, or the split's partial and (m, l).
  if (g < G) {
    const int64_t th = int64_t{t} * p.n_heads + int64_t{kvh} * G + g;
    const int c0 = warp * kDw + tig * 2;
    if (n_active == 1) {
      const float inv = l_run > 0.0f ? 1.0f / l_run : 0.0f;
#pragma unroll
      for (int ob = 0; ob < kOb; ++ob)
        *reinterpret_cast<float2*>(p.out + th * kD + c0 + ob * 8) = make_float2(o[ob][0] * inv, o[ob][1] * inv);
    } else {
      const int64_t ps = th * p.n_splits + split;
#pragma unroll
      for (int ob = 0; ob < kOb; ++ob)
        *reinterpret_cast<float2*>(p.part_o + ps * kD + c0 + ob * 8) = make_float2(o[ob][0], o[ob][1]);
      if (warp == 0 && tig == 0) {
        p.part_ml[ps * 2] = m_run;
        p.part_ml[ps * 2 + 1] = l_run;
      }
    }
  }
  if (n_active == 1 || p.split_count == nullptr) return;  // uniform over the CTA
  decode_merge_last<kAttentionMaxGroup>(p, t, kvh, n_active);
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

// Which decode kernel: the tensor-core one for one sequence's decode step when head_dim is 64..512 (a
// power of two) and q / out are aligned, else the staged one (K/V tiles through shared memory); the
// register one for batches of sequences (faster there at short contexts, measured on H100:
// dev/cuda/batch_notes.md). GE_CUDA_ATTN_KERNEL=mma|staged|registers forces one for measurements (mma
// where it applies).
enum class DecodeKernel { kMma, kStaged, kRegisters };

DecodeKernel decode_kernel(int64_t n_tokens, bool mma_ok) {
  static const int forced = [] {
    const char* e = std::getenv("GE_CUDA_ATTN_KERNEL");
    if (e == nullptr) return 0;
    if (std::strcmp(e, "staged") == 0) return 1;
    if (std::strcmp(e, "registers") == 0) return 2;
    return std::strcmp(e, "mma") == 0 ? 3 : 0;
  }();
  if (forced == 1) return DecodeKernel::kStaged;
  if (forced == 2) return DecodeKernel::kRegisters;
  if (forced == 3 && mma_ok) return DecodeKernel::kMma;
  if (n_tokens != 1) return DecodeKernel::kRegisters;
  return mma_ok ? DecodeKernel::kMma : DecodeKernel::kStaged;
}

bool decode_mma_supported(int d) { return d == 64 || d == 128 || d == 256 || d == 512; }

// cp.async stages of the tensor-core kernel (GE_CUDA_ATTN_STAGES=2|3, for measurements): 3 keeps two
// tiles in flight per CTA (100 KiB of shared memory, 2 CTAs per SM), 2 one (3 CTAs per SM).
int decode_mma_stages() {
  static const int v = [] {
    const char* e = std::getenv("GE_CUDA_ATTN_STAGES");
    return e != nullptr && std::strcmp(e, "2") == 0 ? 2 : 3;
  }();
  return v;
}

template <int kStages>
cudaError_t launch_decode_mma_stages(const AttnParams& p, dim3 grid, const LaunchContext& ctx) {
  switch (p.d) {
    case 64:
      return launch_pdl(attention_decode_mma_kernel<64, kStages>, grid, kDecodeThreads, MmaDecode<64, kStages>::kSmem,
                        p, ctx);
    case 128:
      return launch_pdl(attention_decode_mma_kernel<128, kStages>, grid, kDecodeThreads,
                        MmaDecode<128, kStages>::kSmem, p, ctx);
    case 256:
      return launch_pdl(attention_decode_mma_kernel<256, kStages>, grid, kDecodeThreads,
                        MmaDecode<256, kStages>::kSmem, p, ctx);
    case 512:
      return launch_pdl(attention_decode_mma_kernel<512, kStages>, grid, kDecodeThreads,
                        MmaDecode<512, kStages>::kSmem, p, ctx);
    default:
      return cudaErrorInvalidValue;
  }
}

cudaError_t launch_decode_mma(const AttnParams& p, dim3 grid, const LaunchContext& ctx) {
  return decode_mma_stages() == 2 ? launch_decode_mma_stages<2>(p, grid, ctx) : launch_decode_mma_stages<3>(p, grid, ctx);
}

template <int kD>
cudaError_t configure_decode_mma() {
  cudaError_t e = cudaFuncSetAttribute(attention_decode_mma_kernel<kD, 2>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(MmaDecode<kD, 2>::kSmem));
  if (e != cudaSuccess) return e;
  return cudaFuncSetAttribute(attention_decode_mma_kernel<kD, 3>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(MmaDecode<kD, 3>::kSmem));
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
  if ((e = configure_decode_mma<64>()) != cudaSuccess) return e;
  if ((e = configure_decode_mma<128>()) != cudaSuccess) return e;
  if ((e = configure_decode_mma<256>()) != cudaSuccess) return e;
  if ((e = configure_decode_mma<512>()) != cudaSuccess) return e;
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
  // keys, so fewer, smaller splits run at short contexts. The tensor-core kernel (2 CTAs per SM at
  // head_dim 256 / 512) rounds down, so a full ring is one wave (the sliding layers' 16 KV heads: 16
  // splits, 256 CTAs, rather than 17 and a second wave of 8).
  const bool mma_ok = decode_mma_supported(p.d) && reinterpret_cast<uintptr_t>(q) % 16 == 0 &&
                      reinterpret_cast<uintptr_t>(out) % 8 == 0;
  const DecodeKernel kernel = decode_kernel(n_tokens, mma_ok);
  const int64_t max_keys = p.window > 0 ? std::min<int64_t>(p.window, p.cap) : p.cap;
  const int64_t per_split_ctas = std::max<int64_t>(1, int64_t{p.n_kv} * n_tokens);
  const int64_t slots = decode_waves() * std::max(ctx.num_sms, 1);
  const int64_t want = kernel == DecodeKernel::kMma ? slots / per_split_ctas
                                                     : (slots + per_split_ctas - 1) / per_split_ctas;
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
  const bool staged = kernel == DecodeKernel::kStaged;
  if (kernel == DecodeKernel::kMma) {
    e = launch_decode_mma(p, grid, ctx);
  } else if (p.group <= 2) {
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
