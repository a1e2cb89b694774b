// Tensor-core flash attention for prefill. Grid (query tile of 64, query head); each warp owns 16
// query rows and kDo output columns: S = Q·Kᵀ and O += P·V by mma.sync m16n8k16 (bf16 in, fp32
// accumulate), online softmax in fp32 on the S fragments, P re-packed to bf16 A fragments in registers.
// head_dim 512: O (16 x 512 fp32 per warp) does not fit in registers, so two groups of 4 warps split
// its columns; each group computes the same S for its rows (the QK half of the work runs twice).
#include "backend/cuda/attention_prefill.cuh"

#include <climits>
#include <cstdlib>
#include <cstring>

namespace ge::cuda {
namespace {

constexpr int kRows = 64;  // queries per CTA: 16 per warp of a column group (the M of one mma)

__device__ __forceinline__ void mma_bf16(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all_but_one() { asm volatile("cp.async.wait_group 1;\n" ::); }

// Four 8x8 bf16 matrices: a 16x16 A fragment of Q, or the B fragments of two 8-key blocks of K.
__device__ __forceinline__ void ldmatrix_x4(const void* smem, uint32_t* r) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}

// Four 8x8 bf16 matrices, transposed: the B fragments of two 8-column blocks of V.
__device__ __forceinline__ void ldmatrix_x4_trans(const void* smem, uint32_t* r) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}

__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// Copies keys [kb, kb + 64) (ring slots from kb % cap on), columns [c0, c0 + kCols), of one KV head into
// a padded smem tile; keys past kmax become zero rows so masked products stay finite.
template <int kCols, int kLd, int kKeys, int kThreads>
__device__ __forceinline__ void load_tile(__nv_bfloat16* dst, const __nv_bfloat16* src, const PrefillAttentionArgs& p,
                                          int kvh, int64_t kb, int64_t kmax) {
  constexpr int kChunks = kCols / 8;  // 16-byte pieces per row
  const int base = static_cast<int>(kb % p.cap);
  for (int idx = threadIdx.x; idx < kKeys * kChunks; idx += kThreads) {
    const int jj = idx / kChunks, c = (idx % kChunks) * 8;
    __nv_bfloat16* s = dst + jj * kLd + c;
    if (kb + jj <= kmax) {
      int slot = base + jj;
      if (slot >= p.cap) slot -= p.cap;
      cp_async16(s, src + (int64_t{slot} * p.n_kv + kvh) * p.d + c);
    } else {
      *reinterpret_cast<uint4*>(s) = make_uint4(0, 0, 0, 0);
    }
  }
}

// kDo: O columns per warp (kD / kDo column groups of 4 warps); kKeys: keys per tile.
template <int kD, int kDo, int kKeys>
__global__ void __launch_bounds__(128 * (kD / kDo), 1) flash_prefill_kernel(PrefillAttentionArgs p) {
  constexpr int kThreads = 128 * (kD / kDo);
  constexpr int kLdq = kD + 8;  // 16-byte row pad: fragment loads and ldmatrix rows hit distinct banks
  constexpr int kLdv = kD + 8;
  constexpr int kNb = kKeys / 8;  // S column blocks
  constexpr int kOb = kDo / 8;    // O column blocks
  extern __shared__ __align__(16) uint8_t smem_raw[];
  __nv_bfloat16* Qs = reinterpret_cast<__nv_bfloat16*>(smem_raw);  // [64][kLdq]
  __nv_bfloat16* Ks = Qs + kRows * kLdq;                            // [64][kLdq]
  __nv_bfloat16* Vs = Ks + kKeys * kLdq;                            // [kKeys][kLdv]
  __shared__ int32_t pos_s[kRows];
  __shared__ int64_t range_s[2];

  const int qt = static_cast<int>(gridDim.x - 1 - blockIdx.x);  // latest (heaviest) query tiles first
  const int h = blockIdx.y, kvh = h / p.group;
  const int64_t t0 = int64_t{qt} * kRows;
  const int tid = threadIdx.x, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  const int warp = (tid >> 5) & 3, c0 = (tid >> 7) * kDo;  // row group, first O column

  if (tid < kRows) pos_s[tid] = t0 + tid < p.n_tokens ? p.positions[t0 + tid] : -1;
  for (int i = tid; i < kRows * (kD / 4); i += kThreads) {
    const int r = i / (kD / 4), c = (i % (kD / 4)) * 4;
    float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (t0 + r < p.n_tokens) v = *reinterpret_cast<const float4*>(p.q + ((t0 + r) * p.n_heads + h) * kD + c);
    uint2 w;
    w.x = pack_bf16x2(v.x, v.y);
    w.y = pack_bf16x2(v.z, v.w);
    *reinterpret_cast<uint2*>(Qs + r * kLdq + c) = w;
  }
  __syncthreads();

  // Visible key range [lo, pos] of each row; a bad position or a range wider than the ring is reported.
  auto row_range = [&](int r, int64_t* lo, int64_t* hi, bool report) {
    const int32_t pos = pos_s[r];
    *lo = INT64_MAX;
    *hi = -1;
    if (t0 + r >= p.n_tokens) return;
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
  if (tid == 0) {
    int64_t kmin = INT64_MAX, kmax = -1;
    for (int r = 0; r < kRows; ++r) {
      int64_t lo, hi;
      row_range(r, &lo, &hi, true);
      if (hi < 0) continue;
      kmin = min(kmin, lo);
      kmax = max(kmax, hi);
    }
    if (kmax >= 0 && kmax - kmin + 1 > p.cap) {  // rows span more keys than the ring holds
      raise_device_error(p.error_word, kErrKvWindow);
      kmin = kmax - p.cap + 1;
    }
    range_s[0] = kmin;
    range_s[1] = kmax;
  }
  __syncthreads();
  const int64_t kmin = range_s[0], kmax = range_s[1];

  // This thread's rows (g and g + 8 of the warp's 16) and the warp's union of their ranges.
  int64_t lo[2], hi[2];
  row_range(warp * 16 + g, &lo[0], &hi[0], false);
  row_range(warp * 16 + g + 8, &lo[1], &hi[1], false);
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

  if (kmax >= 0) {
    const int64_t n_tiles = (kmax - kmin) / kKeys + 1;
    load_tile<kD, kLdq, kKeys, kThreads>(Ks, p.k, p, kvh, kmin, kmax);
    cp_async_commit();
    // ldmatrix row addresses. Q: lanes 0-15 rows 0-15 of the warp's 16 at column 0, lanes 16-31 the same
    // rows at column 8 (a[0..3] as mma expects). K: lanes 0-7 / 8-15 keys 0-7 at columns 0 / 8, lanes
    // 16-23 / 24-31 keys 8-15 at columns 0 / 8 (the b0, b1 of two 8-key blocks).
    const __nv_bfloat16* qfrag = Qs + (warp * 16 + (lane & 15)) * kLdq + (lane >> 4) * 8;
    const __nv_bfloat16* kfrag = Ks + ((lane & 7) + ((lane >> 4) << 3)) * kLdq + ((lane >> 3) & 1) * 8;
    for (int64_t j = 0; j < n_tiles; ++j) {
      const int64_t kb = kmin + j * kKeys;
      load_tile<kD, kLdv, kKeys, kThreads>(Vs, p.v, p, kvh, kb, kmax);
      cp_async_commit();
      cp_async_wait_all_but_one();  // K tile j has landed
      __syncthreads();
      const bool active = whi >= 0 && kb <= whi && kb + kKeys - 1 >= wlo;  // warp-uniform
      const bool inside = kb >= in_lo && kb + kKeys - 1 <= in_hi;        // warp-uniform
      float s[kNb][4];
      if (active) {
#pragma unroll
        for (int nb = 0; nb < kNb; ++nb) s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.0f;
#pragma unroll 4
        for (int kk = 0; kk < kD; kk += 16) {
          uint32_t a[4];
          ldmatrix_x4(qfrag + kk, a);
#pragma unroll
          for (int nb = 0; nb < kNb; nb += 2) {
            uint32_t b[4];
            ldmatrix_x4(kfrag + nb * 8 * kLdq + kk, b);
            mma_bf16(s[nb], a, b[0], b[1]);
            mma_bf16(s[nb + 1], a, b[2], b[3]);
          }
        }
        // Mask, scale, softcap; online softmax per row (a row's 64 scores live in one lane quad).
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          float mx = -INFINITY;
#pragma unroll
          for (int nb = 0; nb < kNb; ++nb) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              float v = s[nb][2 * i + e] * p.scale;
              if (p.softcap > 0.0f) v = p.softcap * tanhf(v / p.softcap);
              if (!inside) {
                const int64_t kp = kb + nb * 8 + 2 * t4 + e;
                v = (kp <= kmax && kp >= lo[i] && kp <= hi[i]) ? v : -INFINITY;
              }
              s[nb][2 * i + e] = v;
              mx = fmaxf(mx, v);
            }
          }
          mx = quad_max(mx);
          const float m_new = fmaxf(m_run[i], mx);
          const bool none = m_new == -INFINITY;
          const float corr = none ? 1.0f : __expf(m_run[i] - m_new);
          float sum = 0.0f;
#pragma unroll
          for (int nb = 0; nb < kNb; ++nb) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const float pr = none ? 0.0f : __expf(s[nb][2 * i + e] - m_new);
              s[nb][2 * i + e] = pr;
              sum += pr;
            }
          }
          l_run[i] = l_run[i] * corr + quad_sum(sum);
          m_run[i] = m_new;
          if (__any_sync(0xffffffffu, corr != 1.0f)) {  // the running max of some row moved
#pragma unroll
            for (int ob = 0; ob < kOb; ++ob) {
              o_acc[ob][2 * i] *= corr;
              o_acc[ob][2 * i + 1] *= corr;
            }
          }
        }
      }
      __syncthreads();  // every warp is done with the K tile
      if (j + 1 < n_tiles) load_tile<kD, kLdq, kKeys, kThreads>(Ks, p.k, p, kvh, kb + kKeys, kmax);
      cp_async_commit();
      cp_async_wait_all_but_one();  // V tile j has landed (K tile j + 1 may still be in flight)
      __syncthreads();
      if (active) {
#pragma unroll
        for (int kc = 0; kc < kKeys / 16; ++kc) {
          uint32_t a[4];
          a[0] = pack_bf16x2(s[2 * kc][0], s[2 * kc][1]);
          a[1] = pack_bf16x2(s[2 * kc][2], s[2 * kc][3]);
          a[2] = pack_bf16x2(s[2 * kc + 1][0], s[2 * kc + 1][1]);
          a[3] = pack_bf16x2(s[2 * kc + 1][2], s[2 * kc + 1][3]);
          // Lanes 0-15 address keys kc*16 + 0..15 at column block ob, lanes 16-31 the same keys at ob + 1.
          const __nv_bfloat16* vrow = Vs + (kc * 16 + (lane & 15)) * kLdv + c0 + (lane >> 4) * 8;
#pragma unroll
          for (int ob = 0; ob < kOb; ob += 2) {
            uint32_t b[4];
            ldmatrix_x4_trans(vrow + ob * 8, b);
            mma_bf16(o_acc[ob], a, b[0], b[1]);
            mma_bf16(o_acc[ob + 1], a, b[2], b[3]);
          }
        }
      }
      __syncthreads();  // every warp is done with the V tile
    }
  }

#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int64_t t = t0 + warp * 16 + g + 8 * i;
    if (t >= p.n_tokens) continue;
    const float inv = l_run[i] > 0.0f ? 1.0f / l_run[i] : 0.0f;
    float* dst = p.out + (t * p.n_heads + h) * kD + c0 + 2 * t4;
#pragma unroll
    for (int ob = 0; ob < kOb; ++ob) {
      *reinterpret_cast<float2*>(dst + ob * 8) = make_float2(o_acc[ob][2 * i] * inv, o_acc[ob][2 * i + 1] * inv);
    }
  }
}

template <int kD, int kKeys>
constexpr size_t smem_bytes() {
  return static_cast<size_t>(kRows + 2 * kKeys) * (kD + 8) * 2;  // Q, K and V tiles
}

template <int kD, int kDo, int kKeys>
cudaError_t configure_one() {
  return cudaFuncSetAttribute(flash_prefill_kernel<kD, kDo, kKeys>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(smem_bytes<kD, kKeys>()));
}

template <int kD, int kDo, int kKeys>
cudaError_t launch_one(const PrefillAttentionArgs& p, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((p.n_tokens + kRows - 1) / kRows), static_cast<unsigned>(p.n_heads));
  flash_prefill_kernel<kD, kDo, kKeys><<<grid, 128 * (kD / kDo), smem_bytes<kD, kKeys>(), stream>>>(p);
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

bool prefill_attention_mma_supported(int head_dim) {
  return head_dim == 32 || head_dim == 64 || head_dim == 128 || head_dim == 256 || head_dim == 512;
}

cudaError_t configure_prefill_attention_mma() {
  for (cudaError_t e : {configure_one<32, 32, 64>(), configure_one<64, 64, 64>(), configure_one<128, 128, 64>(),
                        configure_one<256, 256, 64>(), configure_one<512, 256, 32>()}) {
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

cudaError_t launch_prefill_attention_mma(const PrefillAttentionArgs& p, cudaStream_t stream) {
  if (p.n_tokens <= 0) return cudaSuccess;
  switch (p.d) {
    case 32: return launch_one<32, 32, 64>(p, stream);
    case 64: return launch_one<64, 64, 64>(p, stream);
    case 128: return launch_one<128, 128, 64>(p, stream);
    case 256: return launch_one<256, 256, 64>(p, stream);
    case 512: return launch_one<512, 256, 32>(p, stream);  // two column groups of 4 warps
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace ge::cuda
