// Tensor-core flash attention for prefill. Grid (query tile, group of query heads sharing one KV head);
// a CTA holds 128 query rows (64 for head_dim 512), each warp 16 of them: S = Q·Kᵀ and O += P·V by
// mma.sync m16n8k16 (bf16 in, fp32 accumulate), online softmax in fp32 (log2 units) on the S fragments,
// P re-packed to bf16 A fragments in registers. K/V tiles stream through two cp.async stages, one
// __syncthreads per tile. head_dim 512: O (16 x 512 fp32) does not fit one warp's registers, so two
// warps split its columns; they split the tile's keys for S and trade row maxima and P through shared memory.
#include "backend/cuda/attention_prefill.cuh"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>

namespace ge::cuda {
namespace {

__device__ __forceinline__ void mma_bf16(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// 2^x on the SFU (ex2.approx(-inf) = +0): the softmax runs in the log2 domain, log2(e) folded into the scale.
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Barrier of the two warps (column groups) that share a row block; ids 1.. (0 is __syncthreads).
__device__ __forceinline__ void pair_barrier(int pair) {
  asm volatile("bar.sync %0, 64;\n" ::"r"(pair + 1) : "memory");
}

// kD: head dim; kDo: O columns per warp (kD / kDo column groups); kRowWarps: warps along the rows, 16 query
// rows each; kKeys: keys per K/V tile. A CTA holds kRows = 16 * kRowWarps rows: `heads` query heads of one
// GQA group (chosen at launch) times kRows / heads consecutive tokens, so every K/V tile loaded into shared
// memory serves all of them.
template <int kD, int kDo, int kRowWarps, int kKeys>
struct FlashConfig {
  static constexpr int kGroups = kD / kDo;
  static constexpr int kThreads = 32 * kRowWarps * kGroups;
  static constexpr int kRows = 16 * kRowWarps;
  static constexpr int kLd = kD + 8;  // 16-byte row pad: ldmatrix rows hit distinct banks
  // Q [kRows][kLd], then two stages of K [kKeys][kLd] and V [kKeys][kLd], all bf16.
  static constexpr size_t kSmem = static_cast<size_t>(kRows + 4 * kKeys) * kLd * 2;
};

template <int kD, int kDo, int kRowWarps, int kKeys>
__global__ void __launch_bounds__(FlashConfig<kD, kDo, kRowWarps, kKeys>::kThreads, 1)
    flash_prefill_kernel(PrefillAttentionArgs p, int heads) {
  using Cfg = FlashConfig<kD, kDo, kRowWarps, kKeys>;
  constexpr int kThreads = Cfg::kThreads, kRows = Cfg::kRows, kLd = Cfg::kLd;
  constexpr int kGroups = Cfg::kGroups;
  constexpr int kNs = kKeys / 8 / kGroups;  // S column blocks per warp: the column groups split the keys
  constexpr int kOb = kDo / 8;              // O column blocks
  static_assert(kGroups <= 2 && kNs % 2 == 0, "one or two column groups, S in pairs of 8-key blocks");
  constexpr float kLog2e = 1.4426950408889634f;
  extern __shared__ __align__(16) uint8_t smem_raw[];
  __nv_bfloat16* Qs = reinterpret_cast<__nv_bfloat16*>(smem_raw);
  __nv_bfloat16* KVs = Qs + kRows * kLd;  // stage s: K at KVs + s * 2 * kKeys * kLd, V kKeys * kLd further
  __shared__ int32_t pos_s[kRows];
  __shared__ int64_t range_s[2];
  // Two column groups: the warps of a row pair trade row maxima / sums and their halves of P.
  __shared__ float xchg_m[kGroups == 2 ? kRowWarps : 1][2][16];
  __shared__ uint4 xchg_p[kGroups == 2 ? kRowWarps : 1][2][kGroups == 2 ? kNs / 2 : 1][32];

  const int tokens = kRows / heads;                             // queries per CTA
  const int qt = static_cast<int>(gridDim.x - 1 - blockIdx.x);  // latest (heaviest) query tiles first
  const int h0 = static_cast<int>(blockIdx.y) * heads, kvh = h0 / p.group;
  const int64_t t0 = int64_t{qt} * tokens;
  const int tid = threadIdx.x, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  const int warp = tid >> 5, pair = warp % kRowWarps, cg = warp / kRowWarps;  // row block, column group
  const int row0 = pair * 16, c0 = cg * kDo, ks0 = cg * (kKeys / kGroups);      // first row, O column, key
  const int hl = row0 / tokens, tok0 = row0 % tokens;  // the warp's head (in the CTA) and first token

  if (tid < tokens) pos_s[tid] = t0 + tid < p.n_tokens ? p.positions[t0 + tid] : -1;
  for (int i = tid; i < kRows * (kD / 4); i += kThreads) {
    const int r = i / (kD / 4), c = (i % (kD / 4)) * 4;
    const int64_t t = t0 + r % tokens;
    float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (t < p.n_tokens) v = *reinterpret_cast<const float4*>(p.q + (t * p.n_heads + h0 + r / tokens) * kD + c);
    *reinterpret_cast<uint2*>(Qs + r * kLd + c) = make_uint2(pack_bf16x2(v.x, v.y), pack_bf16x2(v.z, v.w));
  }
  __syncthreads();

  // Visible key range [lo, pos] of a token; a bad position or a range wider than the ring is reported.
  auto row_range = [&](int tok, int64_t* lo, int64_t* hi, bool report) {
    *lo = INT64_MAX;
    *hi = -1;
    if (tok >= tokens || t0 + tok >= p.n_tokens) return;
    const int32_t pos = pos_s[tok];
    if (pos < 0) {
      if (report) raise_device_error(p.error_word, kErrPosition);
      return;
    }
    int64_t l = p.window > 0 ? max(int64_t{0}, int64_t{pos} - p.window + 1) : 0;
    if (int64_t{pos} - l + 1 > p.cap) {
      if (report) raise_device_error(p.error_word, kErrKvWindow);
      l = int64_t{pos} - p.cap + 1;
    }
    *lo = l;
    *hi = pos;
  };
  if (warp == 0) {  // the CTA's key range, one warp over its tokens
    int64_t kmin = INT64_MAX, kmax = -1;
    for (int tok = lane; tok < tokens; tok += 32) {
      int64_t lo, hi;
      row_range(tok, &lo, &hi, true);
      if (hi < 0) continue;
      kmin = min(kmin, lo);
      kmax = max(kmax, hi);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      kmin = min(kmin, __shfl_xor_sync(0xffffffffu, kmin, o));
      kmax = max(kmax, __shfl_xor_sync(0xffffffffu, kmax, o));
    }
    if (lane == 0) {
      if (kmax >= 0 && kmax - kmin + 1 > p.cap) {  // rows span more keys than the ring holds
        raise_device_error(p.error_word, kErrKvWindow);
        kmin = kmax - p.cap + 1;
      }
      range_s[0] = kmin;
      range_s[1] = kmax;
    }
  }
  __syncthreads();
  const int64_t kmin = range_s[0], kmax = range_s[1];

  // This thread's rows (g and g + 8 of the warp's 16) and the warp's union of their ranges.
  int64_t lo[2], hi[2];
  row_range(tok0 + g, &lo[0], &hi[0], false);
  row_range(tok0 + g + 8, &lo[1], &hi[1], false);
  // [wlo, whi]: keys some row sees; [in_lo, in_hi]: keys every row sees (tiles inside need no mask).
  int64_t wlo = min(lo[0], lo[1]), whi = max(hi[0], hi[1]);
  int64_t in_lo = max(lo[0], lo[1]), in_hi = min(min(hi[0], hi[1]), kmax);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    wlo = min(wlo, __shfl_xor_sync(0xffffffffu, wlo, o));
    whi = max(whi, __shfl_xor_sync(0xffffffffu, whi, o));
    in_lo = max(in_lo, __shfl_xor_sync(0xffffffffu, in_lo, o));
    in_hi = min(in_hi, __shfl_xor_sync(0xffffffffu, in_hi, o));
  }

  float o_acc[kOb][4];
#pragma unroll
  for (int i = 0; i < kOb; ++i) o_acc[i][0] = o_acc[i][1] = o_acc[i][2] = o_acc[i][3] = 0.0f;
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};
  const bool capped = p.softcap > 0.0f;
  const float scale2 = capped ? p.scale / p.softcap : p.scale * kLog2e;  // S to log2 units, or to tanh's argument
  const float cap2 = p.softcap * kLog2e;

  if (kmax >= 0) {
    const int64_t n_tiles = (kmax - kmin) / kKeys + 1;
    // Each thread copies fixed 16-byte columns of every kStep-th key row; K and V share the ring offsets.
    constexpr int kChunks = kD / 8, kStep = kThreads / kChunks;
    static_assert(kThreads % kChunks == 0 && kKeys % kStep == 0, "tile loader shape");
    const int lc = (tid % kChunks) * 8, lr = tid / kChunks;
    auto load_tiles = [&](int stage, int64_t kb) {
      __nv_bfloat16* ks = KVs + stage * (2 * kKeys * kLd);
      __nv_bfloat16* vs = ks + kKeys * kLd;
      const int base = static_cast<int>(kb % p.cap);
#pragma unroll
      for (int it = 0; it < kKeys / kStep; ++it) {
        const int jj = lr + it * kStep;
        const int off = jj * kLd + lc;
        if (kb + jj <= kmax) {  // keys past kmax become zero rows so masked products stay finite
          int slot = base + jj;
          if (slot >= p.cap) slot -= p.cap;
          const int64_t src = (int64_t{slot} * p.n_kv + kvh) * kD + lc;
          async_copy::copy16(ks + off, p.k + src);
          async_copy::copy16(vs + off, p.v + src);
        } else {
          *reinterpret_cast<uint4*>(ks + off) = make_uint4(0, 0, 0, 0);
          *reinterpret_cast<uint4*>(vs + off) = make_uint4(0, 0, 0, 0);
        }
      }
    };
    load_tiles(0, kmin);
    async_copy::commit();
    // ldmatrix row addresses. Q: lanes 0-15 rows 0-15 of the warp's 16 at column 0, lanes 16-31 the same
    // rows at column 8 (a[0..3] as mma expects). K: lanes 0-7 / 8-15 keys 0-7 at columns 0 / 8, lanes
    // 16-23 / 24-31 keys 8-15 at columns 0 / 8 (the b0, b1 of two 8-key blocks). V (transposed): lanes
    // 0-15 keys 0-15 at column block ob, lanes 16-31 the same keys at ob + 1.
    const __nv_bfloat16* qfrag = Qs + (row0 + (lane & 15)) * kLd + (lane >> 4) * 8;
    const int kfrag = (ks0 + (lane & 7) + ((lane >> 4) << 3)) * kLd + ((lane >> 3) & 1) * 8;
    const int vfrag = (lane & 15) * kLd + c0 + (lane >> 4) * 8;
    for (int64_t j = 0; j < n_tiles; ++j) {
      const int64_t kb = kmin + j * kKeys;
      async_copy::wait<0>();  // tile j has landed (this thread's copies)
      __syncthreads();      // ... and every thread's; every warp is done with tile j - 1
      if (j + 1 < n_tiles) load_tiles(static_cast<int>((j + 1) & 1), kb + kKeys);  // overlaps tile j's math
      async_copy::commit();
      const __nv_bfloat16* ks = KVs + static_cast<int>(j & 1) * (2 * kKeys * kLd);
      const __nv_bfloat16* vs = ks + kKeys * kLd;
      const bool active = whi >= 0 && kb <= whi && kb + kKeys - 1 >= wlo;  // warp-uniform
      if (!active) continue;
      const bool inside = kb >= in_lo && kb + kKeys - 1 <= in_hi;  // warp-uniform
      // S for this warp's keys [ks0, ks0 + 8 * kNs) of the tile (all of them with one column group).
      float s[kNs][4];
#pragma unroll
      for (int nb = 0; nb < kNs; ++nb) s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.0f;
#pragma unroll 4
      for (int kk = 0; kk < kD; kk += 16) {
        uint32_t a[4];
        ldmatrix_x4(qfrag + kk, a);
#pragma unroll
        for (int nb = 0; nb < kNs; nb += 2) {
          uint32_t b[4];
          ldmatrix_x4(ks + kfrag + nb * 8 * kLd + kk, b);
          mma_bf16(s[nb], a, b[0], b[1]);
          mma_bf16(s[nb + 1], a, b[2], b[3]);
        }
      }
      // Mask, scale, softcap; online softmax per row in log2 units (a row's scores live in one lane quad,
      // and with two column groups in the same quad of the partner warp too).
      float mx[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        // The row's visible keys relative to the warp's first key, clamped: [klo, khi].
        const int64_t kw = kb + ks0;
        const int klo = static_cast<int>(min(max(lo[i] - kw, int64_t{-1}), int64_t{kKeys}));
        const int khi = static_cast<int>(min(max(hi[i] - kw, int64_t{-1}), int64_t{kKeys}));
        mx[i] = -INFINITY;
#pragma unroll
        for (int nb = 0; nb < kNs; ++nb) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            float v = s[nb][2 * i + e] * scale2;
            if (capped) v = cap2 * tanhf(v);
            if (!inside) {
              const int kr = nb * 8 + 2 * t4 + e;
              v = (kr >= klo && kr <= khi) ? v : -INFINITY;
            }
            s[nb][2 * i + e] = v;
            mx[i] = fmaxf(mx[i], v);
          }
        }
        mx[i] = quad_max(mx[i]);
      }
      if constexpr (kGroups == 2) {  // row maxima over both halves of the tile
        if (t4 == 0) {
          xchg_m[pair][cg][g] = mx[0];
          xchg_m[pair][cg][g + 8] = mx[1];
        }
        pair_barrier(pair);
        mx[0] = fmaxf(mx[0], xchg_m[pair][cg ^ 1][g]);
        mx[1] = fmaxf(mx[1], xchg_m[pair][cg ^ 1][g + 8]);
      }
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const float m_new = fmaxf(m_run[i], mx[i]);
        const bool none = m_new == -INFINITY;
        const float corr = none ? 1.0f : exp2_approx(m_run[i] - m_new);
        float sum = 0.0f;
#pragma unroll
        for (int nb = 0; nb < kNs; ++nb) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float pr = none ? 0.0f : exp2_approx(s[nb][2 * i + e] - m_new);
            s[nb][2 * i + e] = pr;
            sum += pr;
          }
        }
        l_run[i] = l_run[i] * corr + quad_sum(sum);  // this warp's keys only; the halves add up at the end
        m_run[i] = m_new;
        if (__any_sync(0xffffffffu, corr != 1.0f)) {  // the running max of some row moved
#pragma unroll
          for (int ob = 0; ob < kOb; ++ob) {
            o_acc[ob][2 * i] *= corr;
            o_acc[ob][2 * i + 1] *= corr;
          }
        }
      }
      // P as bf16 A fragments (16 rows x 16 keys each); with two column groups each warp also takes its
      // partner's half from shared memory (the same lane's registers, so no layout change).
      uint32_t pa[kNs / 2][4];
#pragma unroll
      for (int kc = 0; kc < kNs / 2; ++kc) {
        pa[kc][0] = pack_bf16x2(s[2 * kc][0], s[2 * kc][1]);
        pa[kc][1] = pack_bf16x2(s[2 * kc][2], s[2 * kc][3]);
        pa[kc][2] = pack_bf16x2(s[2 * kc + 1][0], s[2 * kc + 1][1]);
        pa[kc][3] = pack_bf16x2(s[2 * kc + 1][2], s[2 * kc + 1][3]);
      }
      if constexpr (kGroups == 2) {
#pragma unroll
        for (int kc = 0; kc < kNs / 2; ++kc) {
          xchg_p[pair][cg][kc][lane] = make_uint4(pa[kc][0], pa[kc][1], pa[kc][2], pa[kc][3]);
        }
        pair_barrier(pair);
      }
#pragma unroll
      for (int kc = 0; kc < kKeys / 16; ++kc) {
        const int owner = kc / (kNs / 2), kcl = kc % (kNs / 2);  // the column group whose S holds these keys
        uint32_t a[4] = {pa[kcl][0], pa[kcl][1], pa[kcl][2], pa[kcl][3]};
        if (kGroups == 2 && owner != cg) {
          const uint4 w = xchg_p[pair][owner][kcl][lane];
          a[0] = w.x;
          a[1] = w.y;
          a[2] = w.z;
          a[3] = w.w;
        }
#pragma unroll
        for (int ob = 0; ob < kOb; ob += 2) {
          uint32_t b[4];
          ldmatrix_x4_trans(vs + vfrag + kc * 16 * kLd + ob * 8, b);
          mma_bf16(o_acc[ob], a, b[0], b[1]);
          mma_bf16(o_acc[ob + 1], a, b[2], b[3]);
        }
      }
    }
  }

  if constexpr (kGroups == 2) {  // row sums over both halves of every tile
    if (t4 == 0) {
      xchg_m[pair][cg][g] = l_run[0];
      xchg_m[pair][cg][g + 8] = l_run[1];
    }
    pair_barrier(pair);
    l_run[0] += xchg_m[pair][cg ^ 1][g];
    l_run[1] += xchg_m[pair][cg ^ 1][g + 8];
  }

#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int tok = tok0 + g + 8 * i;
    const int64_t t = t0 + tok;
    if (tok >= tokens || t >= p.n_tokens) continue;
    const float inv = l_run[i] > 0.0f ? 1.0f / l_run[i] : 0.0f;
    float* dst = p.out + (t * p.n_heads + h0 + hl) * kD + c0 + 2 * t4;
#pragma unroll
    for (int ob = 0; ob < kOb; ++ob) {
      *reinterpret_cast<float2*>(dst + ob * 8) = make_float2(o_acc[ob][2 * i] * inv, o_acc[ob][2 * i + 1] * inv);
    }
  }
}

template <int kD, int kDo, int kRowWarps, int kKeys>
cudaError_t configure_one() {
  return cudaFuncSetAttribute(flash_prefill_kernel<kD, kDo, kRowWarps, kKeys>,
                              cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(FlashConfig<kD, kDo, kRowWarps, kKeys>::kSmem));
}

// Query heads per CTA: the largest power of two up to kRowWarps dividing the GQA group (so the CTA's
// heads share one KV head). GE_CUDA_PREFILL_HEADS=n caps it (lab comparisons).
int pick_heads(const PrefillAttentionArgs& p, int max_heads) {
  static const int cap = [] {
    const char* e = std::getenv("GE_CUDA_PREFILL_HEADS");
    return e != nullptr ? std::atoi(e) : 0;
  }();
  if (cap > 0) max_heads = std::min(max_heads, cap);
  int heads = 1;
  while (heads * 2 <= max_heads && p.group % (heads * 2) == 0 && p.n_heads % (heads * 2) == 0) heads *= 2;
  return heads;
}

template <int kD, int kDo, int kRowWarps, int kKeys>
cudaError_t launch_one(const PrefillAttentionArgs& p, cudaStream_t stream) {
  using Cfg = FlashConfig<kD, kDo, kRowWarps, kKeys>;
  const int heads = pick_heads(p, kRowWarps);
  const int tokens = Cfg::kRows / heads;
  const dim3 grid(static_cast<unsigned>((p.n_tokens + tokens - 1) / tokens), static_cast<unsigned>(p.n_heads / heads));
  flash_prefill_kernel<kD, kDo, kRowWarps, kKeys><<<grid, Cfg::kThreads, Cfg::kSmem, stream>>>(p, heads);
  return cudaGetLastError();
}

struct RowPrologueArgs {
  AttentionPrologue p;
  __nv_bfloat16* k_cache;
  __nv_bfloat16* v_cache;
  int32_t capacity;
  uint32_t* error_word;
};

// kE2 values per lane in each half of the row (head_dim = 64 * kE2): lane l holds [l*kE2, (l+1)*kE2) of
// the first half and the same offsets of the second, so each RoPE pair (j, j + d/2) sits in one lane.
template <int kE2>
__device__ __forceinline__ void load_half(const float* src, float* dst) {
  if constexpr (kE2 % 4 == 0) {
#pragma unroll
    for (int e = 0; e < kE2; e += 4) {
      const float4 v = *reinterpret_cast<const float4*>(src + e);
      dst[e] = v.x;
      dst[e + 1] = v.y;
      dst[e + 2] = v.z;
      dst[e + 3] = v.w;
    }
  } else {
#pragma unroll
    for (int e = 0; e < kE2; ++e) dst[e] = src[e];
  }
}

template <int kE2>
__device__ __forceinline__ void store_half(float* dst, const float* v) {
  if constexpr (kE2 % 4 == 0) {
#pragma unroll
    for (int e = 0; e < kE2; e += 4) {
      *reinterpret_cast<float4*>(dst + e) = make_float4(v[e], v[e + 1], v[e + 2], v[e + 3]);
    }
  } else {
#pragma unroll
    for (int e = 0; e < kE2; ++e) dst[e] = v[e];
  }
}

template <int kE2>
__device__ __forceinline__ void store_half_bf16(__nv_bfloat16* dst, const float* v) {
  if constexpr (kE2 % 4 == 0) {
#pragma unroll
    for (int e = 0; e < kE2; e += 4) {
      *reinterpret_cast<uint2*>(dst + e) = make_uint2(pack_bf16x2(v[e], v[e + 1]), pack_bf16x2(v[e + 2], v[e + 3]));
    }
  } else {
#pragma unroll
    for (int e = 0; e < kE2; ++e) dst[e] = __float2bfloat16_rn(v[e]);
  }
}

template <int kE2>
__device__ __forceinline__ float row_inv_rms(const float* lo, const float* hi, int d, float eps) {
  float ss = 0.0f;
#pragma unroll
  for (int e = 0; e < kE2; ++e) ss = fmaf(lo[e], lo[e], ss);
#pragma unroll
  for (int e = 0; e < kE2; ++e) ss = fmaf(hi[e], hi[e], ss);
  ss = warp_sum(ss);
  return 1.0f / sqrtf(ss / static_cast<float>(d) + eps);
}

constexpr int kPrologueWarps = 8;

template <int kE2>
__global__ void __launch_bounds__(kPrologueWarps * 32) attention_prologue_rows_kernel(RowPrologueArgs a) {
  const AttentionPrologue& p = a.p;
  constexpr int d = 64 * kE2, half = 32 * kE2;
  const int lane = threadIdx.x & 31;
  const int64_t heads = p.n_heads + p.n_kv;
  const int64_t r = int64_t{blockIdx.x} * kPrologueWarps + (threadIdx.x >> 5);
  if (r >= p.n_tokens * heads) return;
  const int64_t t = r / heads, head = r % heads;
  const int32_t pos = p.positions[t];
  const bool is_q = head < p.n_heads;
  const int64_t kh = head - p.n_heads;
  float* row = is_q ? p.q + (t * p.n_heads + head) * d : p.k + (t * p.n_kv + kh) * d;
  const bool store = !is_q && pos >= 0;
  const int64_t dst = store ? static_cast<int64_t>(pos % a.capacity) * (p.n_kv * d) + kh * d : 0;
  const int c = lane * kE2;  // this lane's first column in each half
  float lo[kE2], hi[kE2];

  if (!is_q) {
    // V first: from the raw K row (k_eq_v) or the raw V row.
    const float* vsrc = p.k_eq_v ? row : p.v + (t * p.n_kv + kh) * d;
    load_half<kE2>(vsrc + c, lo);
    load_half<kE2>(vsrc + half + c, hi);
    const bool norm_v = p.k_eq_v || p.v_norm;
    const float inv = norm_v ? row_inv_rms<kE2>(lo, hi, d, p.eps) : 1.0f;
    if (store) {
      if (norm_v) {
#pragma unroll
        for (int e = 0; e < kE2; ++e) {
          lo[e] = lo[e] * inv * 1.0f;
          hi[e] = hi[e] * inv * 1.0f;
        }
      }
      store_half_bf16<kE2>(a.v_cache + dst + c, lo);
      store_half_bf16<kE2>(a.v_cache + dst + half + c, hi);
    }
  }
  load_half<kE2>(row + c, lo);
  load_half<kE2>(row + half + c, hi);
  const float inv = row_inv_rms<kE2>(lo, hi, d, p.eps);
  const float* w = is_q ? p.q_norm : p.k_norm;
  float wlo[kE2] = {}, whi[kE2] = {};
  if (w != nullptr) {
    load_half<kE2>(w + c, wlo);
    load_half<kE2>(w + half + c, whi);
  }
#pragma unroll
  for (int e = 0; e < kE2; ++e) {
    lo[e] = lo[e] * inv * (w ? wlo[e] : 1.0f);
    hi[e] = hi[e] * inv * (w ? whi[e] : 1.0f);
  }
  if (pos < 0) {
    if (lane == 0 && head == 0) raise_device_error(a.error_word, kErrPosition);
    if (is_q) {
      store_half<kE2>(row + c, lo);
      store_half<kE2>(row + half + c, hi);
    }
    return;
  }
  float freq[kE2];
  load_half<kE2>(p.inv_freq + c, freq);
#pragma unroll
  for (int e = 0; e < kE2; ++e) {
    float x0 = lo[e], x1 = hi[e];
    const float f = freq[e];
    if (f != 0.0f) {
      const float angle = static_cast<float>(pos) * f;
      float sn, cs;
      sincosf(angle, &sn, &cs);
      // As rope.cu's kernel compiles: a*c - b*s and b*c + a*s, the second product rounded, the first fused.
      const float r0 = __fmaf_rn(x0, cs, -__fmul_rn(x1, sn));
      const float r1 = __fmaf_rn(x1, cs, __fmul_rn(x0, sn));
      x0 = r0;
      x1 = r1;
    }
    lo[e] = x0;
    hi[e] = x1;
  }
  if (is_q) {
    store_half<kE2>(row + c, lo);
    store_half<kE2>(row + half + c, hi);
  } else {
    store_half_bf16<kE2>(a.k_cache + dst + c, lo);
    store_half_bf16<kE2>(a.k_cache + dst + half + c, hi);
  }
}

template <int kE2>
cudaError_t launch_rows(const RowPrologueArgs& a, const LaunchContext& ctx) {
  const int64_t rows = a.p.n_tokens * (a.p.n_heads + a.p.n_kv);
  const int64_t blocks = (rows + kPrologueWarps - 1) / kPrologueWarps;
  if (blocks > 0x7fffffff) return cudaErrorNotSupported;
  attention_prologue_rows_kernel<kE2><<<static_cast<unsigned>(blocks), kPrologueWarps * 32, 0, ctx.stream>>>(a);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_attention_prologue_rows(const CudaKvCache::Layer& layer, const AttentionPrologue& p,
                                           const LaunchContext& ctx) {
  static const bool enabled = [] {
    const char* e = std::getenv("GE_CUDA_ROW_PROLOGUE");
    return e == nullptr || std::strcmp(e, "0") != 0;
  }();
  if (p.n_tokens <= 0) return cudaSuccess;
  if (!enabled || p.q == nullptr || p.k == nullptr || p.v == nullptr || p.positions == nullptr ||
      p.inv_freq == nullptr || p.n_heads <= 0 || p.n_kv <= 0 || layer.spec.capacity <= 0)
    return cudaErrorNotSupported;
  // 16-byte vector loads and stores: q/k/v rows, norm weights and frequencies (halves of d >= 64 floats),
  // 8-byte bf16 stores into the ring.
  for (const void* ptr : {static_cast<const void*>(p.q), static_cast<const void*>(p.k), static_cast<const void*>(p.v),
                          static_cast<const void*>(p.q_norm), static_cast<const void*>(p.k_norm),
                          static_cast<const void*>(p.inv_freq), static_cast<const void*>(layer.k),
                          static_cast<const void*>(layer.v)}) {
    if (reinterpret_cast<uintptr_t>(ptr) % 16 != 0) return cudaErrorNotSupported;
  }
  const RowPrologueArgs a{p, layer.k, layer.v, layer.spec.capacity, ctx.error_word};
  switch (p.head_dim) {
    case 64: return launch_rows<1>(a, ctx);
    case 128: return launch_rows<2>(a, ctx);
    case 256: return launch_rows<4>(a, ctx);
    case 512: return launch_rows<8>(a, ctx);
    default: return cudaErrorNotSupported;
  }
}

// GE_CUDA_PREFILL_SPLIT_O=1: head_dim 256 as two column groups of 8 warps (lab comparison).
bool split_o_256() {
  static const bool on = [] {
    const char* e = std::getenv("GE_CUDA_PREFILL_SPLIT_O");
    return e != nullptr && std::strcmp(e, "1") == 0;
  }();
  return on;
}

bool prefill_attention_mma_supported(int head_dim) {
  return head_dim == 32 || head_dim == 64 || head_dim == 128 || head_dim == 256 || head_dim == 512;
}

cudaError_t configure_prefill_attention_mma() {
  for (cudaError_t e : {configure_one<32, 32, 8, 64>(), configure_one<64, 64, 8, 64>(),
                        configure_one<128, 128, 8, 64>(), configure_one<256, 256, 8, 64>(),
                        configure_one<256, 128, 8, 64>(), configure_one<512, 256, 4, 32>()}) {
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

cudaError_t launch_prefill_attention_mma(const PrefillAttentionArgs& p, cudaStream_t stream) {
  if (p.n_tokens <= 0) return cudaSuccess;
  if (p.group <= 0 || p.n_kv <= 0 || p.cap <= 0 || p.n_heads != p.group * p.n_kv) return cudaErrorInvalidValue;
  switch (p.d) {
    case 32: return launch_one<32, 32, 8, 64>(p, stream);
    case 64: return launch_one<64, 64, 8, 64>(p, stream);
    case 128: return launch_one<128, 128, 8, 64>(p, stream);
    case 256:
      return split_o_256() ? launch_one<256, 128, 8, 64>(p, stream) : launch_one<256, 256, 8, 64>(p, stream);
    case 512: return launch_one<512, 256, 4, 32>(p, stream);  // two column groups of 4 warps
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace ge::cuda
