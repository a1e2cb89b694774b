// Pieces shared by the two tensor-core GEMV schedules (gemv.cu: per-CTA work items; gemv_stream.cu:
// stream-K): exact bf16x2 decode of 4-/8-bit codes, the mma, the weight formats, x -> B fragment
// staging and the per-chunk loads of a tile pair. Internal to the GEMV files.
#pragma once

#include <cstdint>

#include "backend/cuda/gemv.cuh"

namespace ge::cuda {
namespace {

// zero handling of the tiled kernel
constexpr int kZeroNone = 0;   // 4-bit: w = (q - 8)·s ; 8-bit: w = q·s
constexpr int kZeroFloat = 1;  // 4-bit with a bf16 zero: w = (q - 8)·s + (8 - z)·s, the second term via Σx
constexpr int kZeroInt = 2;    // 8-bit with an int8 zero folded into the codes: w = (q - z)·s

// bf16x2 constants (both halves equal).
constexpr uint32_t kBf2_128 = 0x43004300u;    // 128
constexpr uint32_t kBf2_136 = 0x43084308u;    // 136 = 128 + 8
constexpr uint32_t kBf2_16 = 0x41804180u;     // 16
constexpr uint32_t kBf2_m2176 = 0xC508C508u;  // -2176 = -(16·128 + 128)

__device__ __forceinline__ uint32_t lop_and_or(uint32_t a, uint32_t mask, uint32_t c) {
  uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(r) : "r"(a), "r"(mask), "r"(c));  // (a & mask) | c
  return r;
}
__device__ __forceinline__ uint32_t bf2_sub(uint32_t a, uint32_t b) {
  uint32_t r;
  asm("sub.rn.bf16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
__device__ __forceinline__ uint32_t bf2_add(uint32_t a, uint32_t b) {
  uint32_t r;
  asm("add.rn.bf16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
__device__ __forceinline__ uint32_t bf2_fma(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t r;
  asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  return r;
}

__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// A fragments of one k-step from a 4-bit word: nibbles e0..e7 (see pack_codes_kernel); 128 + q is
// exact in bf16, minus 136 gives q - 8.
__device__ __forceinline__ void decode_a4(uint32_t word, uint32_t (&a)[4]) {
  a[0] = bf2_sub(lop_and_or(word, 0x000F000Fu, kBf2_128), kBf2_136);
  a[1] = bf2_sub(lop_and_or(word >> 4, 0x000F000Fu, kBf2_128), kBf2_136);
  a[2] = bf2_sub(lop_and_or(word >> 8, 0x000F000Fu, kBf2_128), kBf2_136);
  a[3] = bf2_sub(lop_and_or(word >> 12, 0x000F000Fu, kBf2_128), kBf2_136);
}

// One row pair of an 8-bit word: u = q + 128 = 16·hi + lo; 16·(hi - 8) and lo - z are exact bf16
// integers and so is their sum q - z (|q - z| <= 255).
__device__ __forceinline__ uint32_t decode_a8(uint32_t word, int shift, uint32_t bias) {
  const uint32_t hi = bf2_fma(lop_and_or(word >> (shift + 4), 0x000F000Fu, kBf2_128), kBf2_16, kBf2_m2176);
  const uint32_t lo = bf2_sub(lop_and_or(word >> shift, 0x000F000Fu, kBf2_128), bias);
  return bf2_add(hi, lo);
}

// Weight encodings of the tiled kernel: code width, scale type and zero handling.
enum TiledFormat : int { kFmtQ4_0, kFmtI4, kFmtI4Z, kFmtQ8_0, kFmtI8, kFmtI8Z };

template <int kFmt>
struct FormatTraits {
  static constexpr int kBits = kFmt <= kFmtI4Z ? 4 : 8;
  static constexpr bool kScaleF16 = kFmt == kFmtQ4_0 || kFmt == kFmtQ8_0;
  static constexpr int kZero = kFmt == kFmtI4Z ? kZeroFloat : (kFmt == kFmtI8Z ? kZeroInt : kZeroNone);
};

// A group's scales for rows g (lo) and g + 8 (hi) of a tile (the two halves of its scale word) and,
// for float zero points, the factors (8 - z)·s of the term (8 - z)·s·Σx.
struct GroupScale {
  float lo, hi, zlo, zhi;
};
template <int kFmt>
__device__ __forceinline__ GroupScale group_scale(uint32_t sw, uint32_t zw) {
  using F = FormatTraits<kFmt>;
  GroupScale r;
  r.lo = F::kScaleF16 ? fp16_bits_to_f32(sw & 0xffffu) : bf16_bits_to_f32(sw & 0xffffu);
  r.hi = F::kScaleF16 ? fp16_bits_to_f32(sw >> 16) : bf16_bits_to_f32(sw >> 16);
  r.zlo = r.zhi = 0.0f;
  if constexpr (F::kZero == kZeroFloat) {
    r.zlo = (8.0f - bf16_bits_to_f32(zw & 0xffffu)) * r.lo;
    r.zhi = (8.0f - bf16_bits_to_f32(zw >> 16)) * r.hi;
  }
  return r;
}

// End of a group in the bf16 kernels: a tile's mma sums d (per n-tile) go into acc with the group's
// scales, plus the zero-point term from the group's Σx (xs_grp: 16 floats, token n at n); d is cleared.
template <int kFmt, int kNT>
__device__ __forceinline__ void flush_group(const GroupScale& gs, const float* xs_grp, int t, float (&acc)[kNT][4],
                                            float (&d)[kNT][4]) {
#pragma unroll
  for (int nt = 0; nt < kNT; ++nt) {
    acc[nt][0] = fmaf(gs.lo, d[nt][0], acc[nt][0]);
    acc[nt][1] = fmaf(gs.lo, d[nt][1], acc[nt][1]);
    acc[nt][2] = fmaf(gs.hi, d[nt][2], acc[nt][2]);
    acc[nt][3] = fmaf(gs.hi, d[nt][3], acc[nt][3]);
    if constexpr (FormatTraits<kFmt>::kZero == kZeroFloat) {
      const float2 xv = *reinterpret_cast<const float2*>(xs_grp + 8 * nt + 2 * t);
      acc[nt][0] = fmaf(gs.zlo, xv.x, acc[nt][0]);
      acc[nt][1] = fmaf(gs.zlo, xv.y, acc[nt][1]);
      acc[nt][2] = fmaf(gs.zhi, xv.x, acc[nt][2]);
      acc[nt][3] = fmaf(gs.zhi, xv.y, acc[nt][3]);
    }
#pragma unroll
    for (int jj = 0; jj < 4; ++jj) d[nt][jj] = 0.0f;
  }
}

// x -> mma B fragments of `ksteps` k-steps from element kofs on: item (ks, n, t) holds bf16 hi/lo of
// x[n][kofs + 16ks + 2t + {0,1,8,9}] as {hi01, hi89, lo01, lo89} at index (ks·m + n)·4 + t. With
// `sums`, also Σx of group kofs/G + grp at index grp·16 + n (kZeroFloat).
template <int kB = 4>
__device__ __forceinline__ void build_fragments(const float* x, int64_t K, int64_t kofs, int m, int64_t ksteps,
                                                int64_t n_groups, int G, bool sums, uint4* frag, float* xsum,
                                                int64_t tid, int64_t nthreads) {
  // K is a multiple of 16 for every tiled weight, so a k-step is either wholly inside x or padding.
  // Loads of kB items are issued before any is converted (one L2 round trip per kB items).
  const int64_t items = ksteps * m * 4;
  const bool vec = (reinterpret_cast<uintptr_t>(x) & 15u) == 0 && K % 4 == 0;  // float2 / float4 loads
  for (int64_t base = tid; base < items; base += kB * nthreads) {
    float2 lo[kB], hi[kB];
#pragma unroll
    for (int u = 0; u < kB; ++u) {
      const int64_t i = base + u * nthreads;
      lo[u] = hi[u] = make_float2(0.0f, 0.0f);
      if (i < items) {
        const int tt = static_cast<int>(i & 3);
        const int64_t rest = i >> 2;
        const int n = static_cast<int>(rest % m);
        const int64_t k0 = kofs + (rest / m) * 16 + 2 * tt;
        if (k0 < K) {
          const float* xr = x + n * K + k0;
          if (vec) {
            lo[u] = *reinterpret_cast<const float2*>(xr);
            hi[u] = *reinterpret_cast<const float2*>(xr + 8);
          } else {
            lo[u] = make_float2(xr[0], xr[1]);
            hi[u] = make_float2(xr[8], xr[9]);
          }
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kB; ++u) {
      const int64_t i = base + u * nthreads;
      if (i < items) {
        const uint32_t h0 = pack_bf16x2(lo[u].x, lo[u].y), h1 = pack_bf16x2(hi[u].x, hi[u].y);
        const uint32_t l0 =
            pack_bf16x2(lo[u].x - __uint_as_float(h0 << 16), lo[u].y - __uint_as_float(h0 & 0xffff0000u));
        const uint32_t l1 =
            pack_bf16x2(hi[u].x - __uint_as_float(h1 << 16), hi[u].y - __uint_as_float(h1 & 0xffff0000u));
        frag[i] = make_uint4(h0, h1, l0, l1);
      }
    }
  }
  if (sums) {  // G is a multiple of 32: float4 loads, eight in flight
    const int64_t g0 = kofs / G;
    for (int64_t i = tid; i < n_groups * 16; i += nthreads) {
      const int n = static_cast<int>(i % 16);
      const int64_t grp = g0 + i / 16;
      float s = 0.0f;
      if (n < m && grp * G < K) {
        const float* xr = x + n * K + grp * G;
        if (vec) {
#pragma unroll 8
          for (int k = 0; k < G / 4; ++k) {
            const float4 v = reinterpret_cast<const float4*>(xr)[k];
            s += (v.x + v.y) + (v.z + v.w);
          }
        } else {
          for (int k = 0; k < G; ++k) s += xr[k];
        }
      }
      xsum[i] = s;
    }
  }
}

// One prefetch slot: chunk c of both tiles of a pair, with the metadata of its group(s).
struct Slot {
  uint4 q[2];
  uint32_t s[2][2];  // [tile][group of the chunk]
  uint32_t z[2][2];
};

template <int kFmt, int kG>
__device__ __forceinline__ void load_slot(const WeightView& w, int pair, int c, int lane, int g, Slot& sl) {
  using F = FormatTraits<kFmt>;
  constexpr int kChunkK = F::kBits == 4 ? 64 : 32;
  constexpr int kGpc = kChunkK > kG ? kChunkK / kG : 1;
  const int64_t tile0 = 2 * int64_t{pair};
  const uint4* qa = w.codes + (tile0 * w.n_chunks + c) * 32 + lane;
  sl.q[0] = load_stream(qa);
  sl.q[1] = load_stream(qa + int64_t{w.n_chunks} * 32);
  const int grp = c * kChunkK / kG;
  const int64_t mi = (tile0 * w.n_groups + grp) * 8 + g;
  const int64_t tile_stride = int64_t{w.n_groups} * 8;
#pragma unroll
  for (int tt = 0; tt < 2; ++tt) {
#pragma unroll
    for (int j = 0; j < kGpc; ++j) {
      sl.s[tt][j] = load_nc_u32(w.scales + mi + tt * tile_stride + 8 * j);
      if constexpr (F::kZero != kZeroNone) sl.z[tt][j] = load_nc_u32(w.zeros + mi + tt * tile_stride + 8 * j);
    }
  }
}

constexpr size_t kMaxStagedFragBytes = 96 * 1024;  // x fragments staged per CTA up to this size
constexpr int kSmemLimit = 200 * 1024;             // dynamic shared-memory limit of every GEMV kernel

static __global__ void build_fragments_kernel(const float* x, int64_t K, int m, int64_t ksteps, int64_t n_groups,
                                              int G, bool sums, uint4* frag, float* xsum) {
  build_fragments(x, K, 0, m, ksteps, n_groups, G, sums, frag, xsum, blockIdx.x * int64_t{blockDim.x} + threadIdx.x,
                  int64_t{gridDim.x} * blockDim.x);
}

}  // namespace

// Stream-K schedule (gemv_stream.cu). launch: any tiled weight, 1 <= m <= kGemvMaxM.
cudaError_t launch_gemv_stream(const WeightView& w, const float* x, int m, float* y, const GemvScratch& scratch,
                               int ctas_per_sm, const LaunchContext& ctx);
cudaError_t configure_gemv_stream_kernels();
// Kernel lab (Q4_0): variant 0 production, 1 L2 prefetch 16 chunks ahead, 2 L2 prefetch 32 ahead, 3 one
// CTA of 8 warps per SM, 4 one CTA of 16 warps per SM, 5 skeleton (loads only), 6 global x
// fragments, 7 four K-slices.
cudaError_t launch_gemv_stream_lab(const WeightView& w, const float* x, int m, float* y, int variant,
                                   const GemvScratch& scratch, const LaunchContext& ctx);

}  // namespace ge::cuda
