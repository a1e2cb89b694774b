// K-slice GEMV of 4-bit tiled weights (Q4_0, int4 groups) with x as ONE fp16 B fragment per k-step
// (half the mma of the bf16 hi/lo kernel), codes decoded in place to exact fp16 integers, and a
// pointer cursor over the warp's chunks. M <= 16. Internal to gemv_slice.cu.
#pragma once

#include <cuda_fp16.h>

#include "backend/cuda/elementwise.cuh"
#include "backend/cuda/gemv_slice.cuh"
#include "backend/cuda/gemv_slice_i8.cuh"

namespace ge::cuda {
namespace {

// fp16x2 constants (both halves equal).
constexpr uint32_t kH2Magic = 0x64006400u;  // 1024: OR-ing a code n into the mantissa gives 1024 + n
constexpr uint32_t kH2_1032 = 0x64086408u;  // 1024 + 8
constexpr uint32_t kH2_1152 = 0x64806480u;  // 1024 + 16·8

__device__ __forceinline__ uint32_t h2_sub(uint32_t a, uint32_t b) {
  uint32_t r;
  asm("sub.rn.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  return r;
}

__device__ __forceinline__ void mma_f16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// A fragments of one k-step from a 4-bit word (nibble order as decode_a4): rows g (a0, a2) get
// q - 8; rows g + 8 (a1, a3) keep their nibble in place (bits 4-7) and get 16·(q - 8), so one shift
// serves the word. Every value is an exact fp16 integer; the caller divides rows g + 8 by 16.
__device__ __forceinline__ void decode_a4_f16(uint32_t word, uint32_t (&a)[4]) {
  const uint32_t w8 = word >> 8;
  a[0] = h2_sub(lop_and_or(word, 0x000F000Fu, kH2Magic), kH2_1032);
  a[1] = h2_sub(lop_and_or(word, 0x00F000F0u, kH2Magic), kH2_1152);
  a[2] = h2_sub(lop_and_or(w8, 0x000F000Fu, kH2Magic), kH2_1032);
  a[3] = h2_sub(lop_and_or(w8, 0x00F000F0u, kH2Magic), kH2_1152);
}

// The same fragments without the offset: rows g hold 1024 + q, rows g + 8 1024 + 16·q (one lop3 per
// half2). The offsets (1032, and 1152 = 1024 + 16·8 for rows g + 8) times Σx come back through one more
// mma per k-step with the constant A of kBiasA, shared by both tiles of a pair: 32 fp16 subtractions
// per chunk become 4 mma.
__device__ __forceinline__ void decode_a4_f16_biased(uint32_t word, uint32_t (&a)[4]) {
  const uint32_t w8 = word >> 8;
  a[0] = lop_and_or(word, 0x000F000Fu, kH2Magic);
  a[1] = lop_and_or(word, 0x00F000F0u, kH2Magic);
  a[2] = lop_and_or(w8, 0x000F000Fu, kH2Magic);
  a[3] = lop_and_or(w8, 0x00F000F0u, kH2Magic);
}
constexpr uint32_t kH2Neg1032 = 0xE408E408u;  // -(1024 + 8)
constexpr uint32_t kH2Neg1152 = 0xE480E480u;  // -(1024 + 16·8)

// Power of two 2^e that maps max|x| of a slice into [2^14, 2^15): fp16 then keeps 11 bits of every
// element without overflow (65504); 1 when the maximum is zero, subnormal or not finite.
__device__ __forceinline__ int slice_exponent(float mx) {
  const int biased = static_cast<int>((__float_as_uint(mx) >> 23) & 0xffu);
  if (biased == 0 || biased == 255) return 0;
  return max(-120, min(120, 141 - biased));  // mx = f·2^(biased - 126), f in [0.5, 1)
}
__device__ __forceinline__ float exp2_int(int e) { return __uint_as_float(static_cast<uint32_t>(e + 127) << 23); }

// x -> fp16 B fragments of `kpairs` pairs of k-steps from element kofs on, every element times 2^e
// (returned): item (kp, n, t) holds {b0, b1} of k-step 2kp and of 2kp + 1 for token n, lane t, at
// index (kp·m + n)·4 + t. kLo: the fp16 rounding remainders (2^e·x − hi, rounded again: 22
// significant bits in all) follow as a second array of the same items. With `sums`, also 2^e·Σx of
// group kofs/G + grp at grp·16 + n. With `up`, x stands for gelu_tanh(x) · up (gelu_tanh_times, the values
// gelu_tanh_mul writes).
// wmax: kW floats of shared memory. Ends with the CTA barrier.
template <int kB, bool kLo>
__device__ __forceinline__ int build_fragments_f16(const float* x, int64_t K, int64_t kofs, int m, int64_t kpairs,
                                                   int64_t n_groups, int G, bool sums, uint4* frag, float* xsum,
                                                   float* wmax, int tid, int nthreads, const float* up = nullptr) {
  // K and kofs are multiples of 16: 16-byte aligned bases make every row and slice aligned.
  const bool vec = ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(up)) & 15u) == 0;
  const int items = static_cast<int>(kpairs) * m * 4;
  // Elements of item i (k-steps are 16 elements: each is wholly inside x or padding).
  auto load_item = [&](int i, float2 (&v)[4]) {
#pragma unroll
    for (int j = 0; j < 4; ++j) v[j] = make_float2(0.0f, 0.0f);
    if (i < items) {
      const int tt = i & 3;
      const int rest = i >> 2;
      const int kp = rest / m, n = rest - kp * m;
      const int64_t k0 = kofs + kp * 32 + 2 * tt;
      const float* xr = x + n * K + k0;
      const float* ur = up != nullptr ? up + n * K + k0 : nullptr;
#pragma unroll
      for (int j = 0; j < 4; ++j) {  // elements k0 + {0, 8, 16, 24} (+1)
        if (k0 + 16 * (j >> 1) < K) {
          v[j] = vec ? *reinterpret_cast<const float2*>(xr + 8 * j) : make_float2(xr[8 * j], xr[8 * j + 1]);
          if (ur != nullptr) {
            const float2 u = vec ? *reinterpret_cast<const float2*>(ur + 8 * j) : make_float2(ur[8 * j], ur[8 * j + 1]);
            v[j] = make_float2(gelu_tanh_times(v[j].x, u.x), gelu_tanh_times(v[j].y, u.y));
          }
        }
      }
    }
  };
  auto abs_max = [](float mx, const float2 (&v)[4]) {
#pragma unroll
    for (int j = 0; j < 4; ++j) mx = fmaxf(mx, fmaxf(fabsf(v[j].x), fabsf(v[j].y)));
    return mx;
  };
  // The first kB items of this thread stay in registers over the scale reduction (at M = 1 that
  // is the whole slice); later ones are read once for the maximum and again for the conversion.
  float2 first[kB][4];
  float mx = 0.0f;
#pragma unroll
  for (int u = 0; u < kB; ++u) load_item(tid + u * nthreads, first[u]);
#pragma unroll
  for (int u = 0; u < kB; ++u) mx = abs_max(mx, first[u]);
  for (int base = tid + kB * nthreads; base < items; base += kB * nthreads) {
    float2 v[kB][4];
#pragma unroll
    for (int u = 0; u < kB; ++u) load_item(base + u * nthreads, v[u]);
#pragma unroll
    for (int u = 0; u < kB; ++u) mx = abs_max(mx, v[u]);
  }
  // One scale per slice for every token keeps their partial sums comparable (a token 2^29 below
  // another would lose precision, not range). |x| bits order like the floats; fmaxf drops NaN,
  // which then still reaches the output through its own fp16 conversion.
  const uint32_t wm = __reduce_max_sync(0xffffffffu, __float_as_uint(mx));
  if ((tid & 31) == 0) wmax[tid >> 5] = __uint_as_float(wm);
  __syncthreads();
  for (int i = 0; i < nthreads / 32; ++i) mx = fmaxf(mx, wmax[i]);
  const int e = slice_exponent(mx);
  const float scale = exp2_int(e);

  auto store_item = [&](int i, const float2 (&v)[4]) {
    if (i >= items) return;
    uint32_t h[4], l[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float a = v[j].x * scale, b = v[j].y * scale;
      const __half2 hv = __floats2half2_rn(a, b);
      h[j] = *reinterpret_cast<const uint32_t*>(&hv);
      if constexpr (kLo) {
        const float2 hf = __half22float2(hv);
        const __half2 lv = __floats2half2_rn(a - hf.x, b - hf.y);
        l[j] = *reinterpret_cast<const uint32_t*>(&lv);
      }
    }
    frag[i] = make_uint4(h[0], h[1], h[2], h[3]);
    if constexpr (kLo) frag[items + i] = make_uint4(l[0], l[1], l[2], l[3]);
  };
#pragma unroll
  for (int u = 0; u < kB; ++u) store_item(tid + u * nthreads, first[u]);
  for (int base = tid + kB * nthreads; base < items; base += kB * nthreads) {
    float2 v[kB][4];
#pragma unroll
    for (int u = 0; u < kB; ++u) load_item(base + u * nthreads, v[u]);
#pragma unroll
    for (int u = 0; u < kB; ++u) store_item(base + u * nthreads, v[u]);
  }
  if (sums) {  // G is a multiple of 32
    const int64_t g0 = kofs / G;
    for (int64_t i = tid; i < n_groups * 16; i += nthreads) {
      const int n = static_cast<int>(i % 16);
      const int64_t grp = g0 + i / 16;
      float s = 0.0f;
      if (n < m && grp * G < K) {
        const float* xr = x + n * K + grp * G;
        const float* ur = up != nullptr ? up + n * K + grp * G : nullptr;
        // The same additions in the same order with or without `up`.
        if (vec) {
#pragma unroll 8
          for (int k = 0; k < G / 4; ++k) {
            float4 v = reinterpret_cast<const float4*>(xr)[k];
            if (ur != nullptr) {
              const float4 u = reinterpret_cast<const float4*>(ur)[k];
              v = make_float4(gelu_tanh_times(v.x, u.x), gelu_tanh_times(v.y, u.y), gelu_tanh_times(v.z, u.z),
                              gelu_tanh_times(v.w, u.w));
            }
            s += (v.x + v.y) + (v.z + v.w);
          }
        } else {
          for (int k = 0; k < G; ++k) s += ur != nullptr ? gelu_tanh_times(xr[k], ur[k]) : xr[k];
        }
      }
      xsum[i] = s * scale;
    }
  }
  __syncthreads();
  return e;
}

// Bytes of one slot of a warp's shared-memory ring (kRing > 0): the chunk's codes of both tiles
// (2 x 32 lanes x 16 B), then the pair's scales [tile][group of the chunk][row g] (and zeros alike).
__host__ __device__ constexpr int slice_ring_meta_words(int group) { return 2 * (64 > group ? 64 / group : 1) * 8; }
__host__ __device__ constexpr int slice_ring_slot_bytes(int group, bool zeros) {
  return 1024 + slice_ring_meta_words(group) * 4 * (zeros ? 2 : 1);
}

// Shared memory of a slice of `len` chunks: the warps' weight rings (ring_bytes), fragments (32 bytes
// per k-step and token), the per-group x sums of float zero points, and the warps' maxima.
inline size_t slice_f16_smem(const WeightView& w, int len, int m, bool lo, size_t ring_bytes = 0, bool i8 = false) {
  const size_t frag = i8 ? slice_i8_x_bytes(len, m) : static_cast<size_t>(len) * 4 * m * 32 * (lo ? 2 : 1);
  const size_t groups = static_cast<size_t>(len) * 64 / w.group_size;
  return ring_bytes + frag + (w.zeros != nullptr ? groups * 16 * 4 : 0) + 32 * 4;
}

// One prefetch slot: chunk c of both tiles of the warp's pair with the metadata of its group(s).
struct F16Slot {
  uint4 q[2];
  uint32_t s[2][2];  // [tile][group of the chunk]
  uint32_t z[2][2];
};

// Same schedule as gemv_slice_kernel with kT = 2, kNT = 1 (M <= 8): CTA b of an output works on
// slice b % S; warp lw of the slice's R·W warps streams pairs lw, lw + R·W, ... over the slice,
// kP chunks ahead across pair boundaries. Rows g + 8 of a pair accumulate 16x (decode_a4_f16) and
// all of them 2^e x (the slice's x scale): both powers of two come off exactly before the store.
// kOne (M = 1): the accumulators of token 1 (j = 1, 3) are left out of the group flushes. kSplit:
// odd k-steps accumulate into a second register set, so the mma of a group form two chains of half
// the length (added at the flush).
// kRing > 0: the weights stream through a ring of kRing slots per warp in shared memory (cp.async)
// instead of kP register slots: bytes in flight per warp no longer cost registers (kP is unused).
// kNT: B n-tiles (tokens 0-7 and 8-15), 2 for M > 8.
// kBias: codes decoded with their offset (decode_a4_f16_biased); per group, zb[nt] = −1032·Σx (rows g)
// and −1152·Σx (rows g + 8) from an mma of the constant A, added to each tile's sums at the flush. The
// fp32 sums then carry ~1032·|Σx| before the cancellation: ~2^-24 of that, far inside the 2^-11 of x.
// kI8 (M = 1, no zero points): x as int8 codes per 32-block and one IMMA per block and tile
// (gemv_slice_i8.cuh) instead of the fp16 fragments. kNoMath (kernel lab, wrong results): the same
// kernel without the chunks' decode and mma (loads, x staging and the split epilogue only).
template <int kFmt, int kG, int kP, int kW, int kMinB, bool kLo, bool kOne, bool kSplit = false, int kRing = 0,
          int kNT = 1, bool kBias = false, bool kI8 = false, bool kNoMath = false>
static __global__ void __launch_bounds__(kW * 32, kMinB) gemv_slice_f16_kernel(const __grid_constant__ SliceParams p) {
  using F = FormatTraits<kFmt>;
  static_assert(F::kBits == 4, "4-bit codes only");
  constexpr int kT = 2;
  constexpr int kChunkK = 64;
  constexpr int kKsg = kG / 16;  // k-steps per group
  constexpr int kGpc = kChunkK > kG ? kChunkK / kG : 1;
  constexpr int kCpg = kG > kChunkK ? kG / kChunkK : 1;
  static_assert(!kI8 || (kOne && kNT == 1 && !kLo && !kBias && !kSplit && F::kZero == kZeroNone),
                "the int8 path serves M = 1 without zero points");
  extern __shared__ __align__(16) unsigned char smem[];
  const SliceOutput& out = p.out[output_of(p, static_cast<int>(blockIdx.x))];
  const WeightView& w = out.w;
  const int m = p.m, S = out.slices;
  const int b = static_cast<int>(blockIdx.x) - out.first_cta;
  const int slice = b % S, r = b / S;
  const int g0 = slice * p.n_gu / S, g1 = (slice + 1) * p.n_gu / S;
  const int c_begin = g0 * kCpg, c_end = g1 * kCpg, len = c_end - c_begin;
  constexpr bool kZeros = F::kZero != kZeroNone;
  constexpr int kMetaWords = slice_ring_meta_words(kG);
  constexpr int kSlotBytes = slice_ring_slot_bytes(kG, kZeros);
  unsigned char* ring = smem + (threadIdx.x >> 5) * kRing * kSlotBytes;  // this warp's slots
  uint4* xf_s = reinterpret_cast<uint4*>(smem + kW * kRing * kSlotBytes);
  const int items = len * 2 * m * 4;  // uint4 of the hi (and of the lo) fragments
  float* xsum_s = reinterpret_cast<float*>(xf_s + (kLo ? 2 : 1) * items);
  const int n_sum = F::kZero == kZeroFloat ? len * kChunkK / kG * 16 : 0;
  float* wmax_s = xsum_s + n_sum;

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int nw = out.ctas_per_slice * kW, lw = r * kW + warp;
  const int my_units = lw < out.units ? (out.units - 1 - lw) / nw + 1 : 0;
  const int total = my_units * len;  // chunks of this warp

  // Loader cursor: codes of tile 0 of the pair at qp (tile 1 one tile stride on), scales at sp;
  // moved by whole chunks, recomputed only when the warp passes to its next pair.
  const int64_t q_tile = int64_t{w.n_chunks} * 32, s_tile = int64_t{w.n_groups} * 8;
  int ld_gp = lw, ld_c = c_begin;
  const uint4* qp = w.codes + 2 * int64_t{ld_gp} * q_tile + int64_t{c_begin} * 32 + lane;
  const int64_t s_pair0 = 2 * int64_t{ld_gp} * s_tile + g;
  const uint32_t* sp = w.scales + s_pair0;
  const uint32_t* zp = F::kZero != kZeroNone ? w.zeros + s_pair0 : nullptr;
  auto advance = [&] {
    qp += 32;
    if (++ld_c == c_end) {
      ld_c = c_begin;
      ld_gp += nw;
      qp += 2 * int64_t{nw} * q_tile - int64_t{len} * 32;
      sp += 2 * int64_t{nw} * s_tile;
      if constexpr (kZeros) zp += 2 * int64_t{nw} * s_tile;
    }
  };
  auto load = [&](F16Slot& sl) {
    sl.q[0] = load_stream(qp);
    sl.q[1] = load_stream(qp + q_tile);
    const int grp8 = ld_c * kChunkK / kG * 8;
#pragma unroll
    for (int tt = 0; tt < 2; ++tt) {
#pragma unroll
      for (int j = 0; j < kGpc; ++j) {
        sl.s[tt][j] = load_nc_u32(sp + tt * s_tile + grp8 + 8 * j);
        if constexpr (kZeros) sl.z[tt][j] = load_nc_u32(zp + tt * s_tile + grp8 + 8 * j);
      }
    }
    advance();
  };
  // Ring: lane L copies its own 16 B of both tiles' codes and (L < kMetaWords) metadata word L =
  // [tile][group][row]; the cursors point at row g, so word L sits meta_off past them.
  const int64_t meta_off = int64_t{lane / (kGpc * 8)} * s_tile + ((lane / 8) % kGpc) * 8 + (lane % 8) - g;
  auto issue = [&](int si) {
    unsigned char* sb = ring + si * kSlotBytes;
    async_copy::copy16_stream(sb + lane * 16, qp);
    async_copy::copy16_stream(sb + 512 + lane * 16, qp + q_tile);
    if (lane < kMetaWords) {
      const int grp8 = ld_c * kChunkK / kG * 8;
      async_copy::copy4(sb + 1024 + lane * 4, sp + grp8 + meta_off);
      if constexpr (kZeros) async_copy::copy4(sb + 1024 + (kMetaWords + lane) * 4, zp + grp8 + meta_off);
    }
    advance();
  };
  F16Slot slot[kRing > 0 ? 1 : kP];
  if constexpr (kRing > 0) {
#pragma unroll
    for (int i = 0; i < kRing; ++i) {
      if (i < total) issue(i);
      async_copy::commit();  // empty groups too: the wait below counts groups
    }
  } else {
#pragma unroll
    for (int i = 0; i < kP; ++i) {
      if (i < total) load(slot[i]);
    }
  }

  // kI8: the int8 fragments, then the blocks' scales and code sums, where the fp16 fragments would be.
  uint2* xq_s = reinterpret_cast<uint2*>(xf_s);
  float* dx_s = reinterpret_cast<float*>(xq_s + len * 2 * m * 4);
  int* sx_s = reinterpret_cast<int*>(dx_s + len * 2 * 16);
  grid_dependency_wait();
  int e = 0;
  if constexpr (kI8) {
    build_fragments_i8(p.x, p.cols, int64_t{c_begin} * kChunkK, m, len * 2, xq_s, dx_s, sx_s, threadIdx.x, blockDim.x,
                       p.x_up);
  } else {
    e = build_fragments_f16<4, kLo>(p.x, p.cols, int64_t{c_begin} * kChunkK, m, int64_t{len} * 2,
                                    int64_t{len} * kChunkK / kG, kG, F::kZero == kZeroFloat, xf_s, xsum_s, wmax_s,
                                    threadIdx.x, blockDim.x, p.x_up);
  }
  grid_dependency_release();
  const float inv_lo = exp2_int(-e), inv_hi = exp2_int(-e - 4);  // rows g, rows g + 8 (16x codes)

  // B fragments of this lane (token g, and g + 8 with kNT = 2): one uint4 per pair of k-steps, 32
  // consecutive per warp and n-tile.
  static_assert(!kOne || kNT == 1, "kOne is the M = 1 kernel");
  const bool has_n[2] = {g < m, g + 8 < m};
  const uint4* xlane = xf_s + g * 4 + t;
  const int xstride = m * 4;  // uint4 per pair of k-steps

  float acc[kT][kNT][4], d[kT][kNT][4], d2[kT][kNT][4], zb[kNT][4];
#pragma unroll
  for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
    for (int j = 0; j < 4; ++j) zb[nt][j] = 0.0f;
  }
  constexpr uint32_t kBiasA[4] = {kH2Neg1032, kH2Neg1152, kH2Neg1032, kH2Neg1152};  // rows g, g + 8, g, g + 8
#pragma unroll
  for (int tt = 0; tt < kT; ++tt) {
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[tt][nt][j] = d[tt][nt][j] = d2[tt][nt][j] = 0.0f;
    }
  }
  int gp = lw, c = c_begin;

  // One chunk of the warp's sequence: both tiles' mma over the chunk's four k-steps, group flushes.
  auto compute = [&](const F16Slot& sl) {
    const uint4* xk = xlane + (c - c_begin) * 2 * xstride;
    uint4 bx[kNT][2], bl[kNT][2];
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        bx[nt][h] = has_n[nt] ? xk[h * xstride + nt * 32] : make_uint4(0u, 0u, 0u, 0u);
        if constexpr (kLo) bl[nt][h] = has_n[nt] ? xk[items + h * xstride + nt * 32] : make_uint4(0u, 0u, 0u, 0u);
      }
    }
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      if constexpr (kBias) {
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
          const uint4& bh = bx[nt][s >> 1];
          mma_f16(zb[nt], kBiasA, (s & 1) ? bh.z : bh.x, (s & 1) ? bh.w : bh.y);
          if constexpr (kLo) {
            const uint4& bo = bl[nt][s >> 1];
            mma_f16(zb[nt], kBiasA, (s & 1) ? bo.z : bo.x, (s & 1) ? bo.w : bo.y);
          }
        }
      }
#pragma unroll
      for (int tt = 0; tt < kT; ++tt) {
        uint32_t a[4];
        if constexpr (kBias) {
          decode_a4_f16_biased(reinterpret_cast<const uint32_t*>(&sl.q[tt])[s], a);
        } else {
          decode_a4_f16(reinterpret_cast<const uint32_t*>(&sl.q[tt])[s], a);
        }
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
          float(&dd)[4] = kSplit && (s & 1) ? d2[tt][nt] : d[tt][nt];
          const uint4& bh = bx[nt][s >> 1];
          mma_f16(dd, a, (s & 1) ? bh.z : bh.x, (s & 1) ? bh.w : bh.y);
          if constexpr (kLo) {
            const uint4& bo = bl[nt][s >> 1];
            mma_f16(dd, a, (s & 1) ? bo.z : bo.x, (s & 1) ? bo.w : bo.y);
          }
        }
      }
      bool flush;
      if constexpr (kKsg <= 4) {
        flush = (s + 1) % kKsg == 0;
      } else {
        flush = s == 3 && (c + 1) % kCpg == 0;
      }
      if (flush) {
        const int j = kGpc == 2 ? s / kKsg : 0;
        const int grp = ((c - c_begin) * 4 + s) / kKsg;  // group within the slice
#pragma unroll
        for (int tt = 0; tt < kT; ++tt) {
          const GroupScale gs = group_scale<kFmt>(sl.s[tt][j], F::kZero == kZeroFloat ? sl.z[tt][j] : 0u);
          const float sl_ = gs.lo, sh_ = gs.hi;
          const float cl = gs.zlo, ch = gs.zhi * 16.0f;  // rows g + 8 carry 16x: their zero term too
#pragma unroll
          for (int nt = 0; nt < kNT; ++nt) {
            float(&dn)[4] = d[tt][nt];
            float(&an)[4] = acc[tt][nt];
            if constexpr (kSplit) {
#pragma unroll
              for (int jj = 0; jj < 4; ++jj) {
                if (!kOne || jj % 2 == 0) dn[jj] += d2[tt][nt][jj];
                d2[tt][nt][jj] = 0.0f;
              }
            }
            if constexpr (kBias) {
#pragma unroll
              for (int jj = 0; jj < 4; ++jj) {
                if (!kOne || jj % 2 == 0) dn[jj] += zb[nt][jj];
              }
            }
            an[0] = fmaf(sl_, dn[0], an[0]);
            an[2] = fmaf(sh_, dn[2], an[2]);
            if constexpr (!kOne) {
              an[1] = fmaf(sl_, dn[1], an[1]);
              an[3] = fmaf(sh_, dn[3], an[3]);
            }
            if constexpr (F::kZero == kZeroFloat) {
              const float2 xv = *reinterpret_cast<const float2*>(xsum_s + grp * 16 + 8 * nt + 2 * t);
              an[0] = fmaf(cl, xv.x, an[0]);
              an[2] = fmaf(ch, xv.x, an[2]);
              if constexpr (!kOne) {
                an[1] = fmaf(cl, xv.y, an[1]);
                an[3] = fmaf(ch, xv.y, an[3]);
              }
            }
#pragma unroll
            for (int jj = 0; jj < 4; ++jj) dn[jj] = 0.0f;
          }
        }
        if constexpr (kBias) {
#pragma unroll
          for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
            for (int jj = 0; jj < 4; ++jj) zb[nt][jj] = 0.0f;
          }
        }
      }
    }
  };
  // kI8: both 32-blocks of the chunk; block b of the slice: x fragments of lane (g, t), and the
  // scale and code sum of tokens 2t, 2t + 1. A tile's IMMA sum of codes 0..15 times x codes, minus 8·Σq,
  // times the group's weight scale and the block's x scale goes straight into the accumulators.
  auto compute_i8 = [&](const F16Slot& sl) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int b = (c - c_begin) * 2 + h;
      const uint2 bq = has_n[0] ? xq_s[(b * m + g) * 4 + t] : make_uint2(0u, 0u);
      const float d0 = dx_s[b * 16 + 2 * t];
      const int s0 = sx_s[b * 16 + 2 * t];
      const int j = kGpc == 2 ? h : 0;
#pragma unroll
      for (int tt = 0; tt < kT; ++tt) {
        const uint32_t* wq = reinterpret_cast<const uint32_t*>(&sl.q[tt]);
        uint32_t a[4];
        decode_a4_u8(wq[2 * h], wq[2 * h + 1], a);
        int di[4];
        imma_u8s8(di, a, bq.x, bq.y);
        const GroupScale gs = group_scale<kFmt>(sl.s[tt][j], 0u);
        acc[tt][0][0] = fmaf(gs.lo * d0, static_cast<float>(di[0] - 8 * s0), acc[tt][0][0]);
        acc[tt][0][2] = fmaf(gs.hi * d0, static_cast<float>(di[2] - 8 * s0), acc[tt][0][2]);
      }
    }
  };
  auto end_of_chunk = [&] {
    if (++c == c_end) {  // end of the pair's slice
      if constexpr (!kI8) {  // the int8 sums are in x's units already (no 2^e, rows g + 8 not 16x)
#pragma unroll
        for (int tt = 0; tt < kT; ++tt) {
#pragma unroll
          for (int nt = 0; nt < kNT; ++nt) {
            acc[tt][nt][0] *= inv_lo;
            acc[tt][nt][1] *= inv_lo;
            acc[tt][nt][2] *= inv_hi;
            acc[tt][nt][3] *= inv_hi;
          }
        }
      }
      slice_unit_finish<kT, kNT>(out, m, gp, slice, acc, lane, g, t);
      c = c_begin;
      gp += nw;
    }
  };

  if constexpr (kRing > 0) {
    int si = 0;
    for (int u = 0; u < total; ++u) {
      async_copy::wait<kRing - 1>();  // chunk u has landed (this lane's copies)
      __syncwarp();                   // ... and every lane's: the metadata words come from others
      F16Slot sl;
      const unsigned char* sb = ring + si * kSlotBytes;
      sl.q[0] = *reinterpret_cast<const uint4*>(sb + lane * 16);
      sl.q[1] = *reinterpret_cast<const uint4*>(sb + 512 + lane * 16);
      const uint32_t* meta = reinterpret_cast<const uint32_t*>(sb + 1024);
#pragma unroll
      for (int tt = 0; tt < 2; ++tt) {
#pragma unroll
        for (int j = 0; j < kGpc; ++j) {
          sl.s[tt][j] = meta[(tt * kGpc + j) * 8 + g];
          if constexpr (kZeros) sl.z[tt][j] = meta[kMetaWords + (tt * kGpc + j) * 8 + g];
        }
      }
      __syncwarp();  // every lane has read slot si before it is refilled
      if (u + kRing < total) issue(si);
      async_copy::commit();
      si = si + 1 == kRing ? 0 : si + 1;
      if constexpr (kNoMath) {
        acc[0][0][0] += static_cast<float>(sl.q[0].x & 1u);  // keeps the slot's loads
      } else if constexpr (kI8) {
        compute_i8(sl);
      } else {
        compute(sl);
      }
      end_of_chunk();
    }
  } else {
    for (int ub = 0; ub < total; ub += kP) {
#pragma unroll
      for (int i = 0; i < kP; ++i) {
        if (ub + i < total) {
          if constexpr (kI8) {
            compute_i8(slot[i]);
          } else {
            compute(slot[i]);
          }
          if (ub + i + kP < total) load(slot[i]);
          end_of_chunk();
        }
      }
    }
  }
}

}  // namespace
}  // namespace ge::cuda
