// Decode GEMV for the K-quant blocks (Q4_K, Q5_K, Q6_K; 256 elements per block): several weight
// rows per warp share every x load, 16-byte weight loads with the next step's blocks in flight,
// each lane decodes the block's scales once for its 32 elements, and the K dimension is split
// across the warps of a CTA when the rows alone do not fill the GPU.
#include "backend/cuda/gemv_kquant.cuh"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace ge::cuda {
namespace {

constexpr int kWarps = 8;          // per CTA
constexpr int kBlocksPerStep = 4;  // per warp: 8 lanes per block

// Lane i (0..7) of a block owns 32 of its elements, as two runs of 16 consecutive columns ("halves")
// with one scale (and min) each. Each type's Raw is what the lane loads for one block, decode()
// turns one half into four words of byte codes, the run's scale (dl) and min (ml) and its column.
//
// Q4_K (144 B: fp16 d, fp16 dmin, 12 scale bytes, 128 nibble bytes): lane i loads the 16-byte
// header and qs[16i, 16i + 16); low nibbles are columns 64(i/2) + 16(i%2) + [0, 16) (sub-block
// 2(i/2)), high nibbles the same + 32 (sub-block 2(i/2) + 1). w = dl·q − ml.
template <QuantType T>
struct KQuant;

// 6-bit scale and min of sub-block jj (0..7) from scale words Y = s[0..3], Z = s[4..7], W = s[8..11].
__device__ __forceinline__ void k_scale_min_words(uint32_t Y, uint32_t Z, uint32_t W, int jj, float* sc, float* mn) {
  const int sh = 8 * (jj & 3);
  const uint32_t y = (Y >> sh) & 0xffu, z = (Z >> sh) & 0xffu, wv = (W >> sh) & 0xffu;
  if (jj < 4) {
    *sc = static_cast<float>(y & 63u);
    *mn = static_cast<float>(z & 63u);
  } else {
    *sc = static_cast<float>((wv & 15u) | ((y >> 6) << 4));
    *mn = static_cast<float>((wv >> 4) | ((z >> 6) << 4));
  }
}

template <>
struct KQuant<QuantType::kQ4_K> {
  static constexpr int kBytes = 144;
  static constexpr bool kHasMin = true;
  static constexpr float kBias = 8388608.0f;  // code c as float: (2^23 + c) − 2^23
  struct Raw {
    uint4 hdr, q;
  };
  static __device__ __forceinline__ Raw load(const uint8_t* blk, int i) {
    Raw r;
    r.hdr = __ldg(reinterpret_cast<const uint4*>(blk));
    r.q = load_stream(reinterpret_cast<const uint4*>(blk + 16 + 16 * i));
    return r;
  }
  static __device__ __forceinline__ void decode(const Raw& r, int i, int half, uint32_t (&c)[4], float* dl, float* ml,
                                                int* col) {
    const int j = i >> 1, jj = 2 * j + half;
    const uint32_t q[4] = {r.q.x, r.q.y, r.q.z, r.q.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) c[k] = (q[k] >> (4 * half)) & 0x0f0f0f0fu;
    float sc, mn;
    k_scale_min_words(r.hdr.y, r.hdr.z, r.hdr.w, jj, &sc, &mn);
    *dl = __fmul_rn(fp16_bits_to_f32(r.hdr.x & 0xffffu), sc);
    *ml = __fmul_rn(fp16_bits_to_f32(r.hdr.x >> 16), mn);
    *col = 64 * j + 16 * (i & 1) + 32 * half;
  }
};

// Q5_K (176 B): the Q4_K header, 32 high-bit bytes qh, 128 nibble bytes. Lane i loads the header,
// qh[16(i%2), +16) and qs[16i, +16): bit jj of qh[l] is the fifth bit of element l of sub-block jj.
template <>
struct KQuant<QuantType::kQ5_K> {
  static constexpr int kBytes = 176;
  static constexpr bool kHasMin = true;
  static constexpr float kBias = 8388608.0f;
  struct Raw {
    uint4 hdr, qh, q;
  };
  static __device__ __forceinline__ Raw load(const uint8_t* blk, int i) {
    Raw r;
    r.hdr = __ldg(reinterpret_cast<const uint4*>(blk));
    r.qh = __ldg(reinterpret_cast<const uint4*>(blk + 16 + 16 * (i & 1)));
    r.q = load_stream(reinterpret_cast<const uint4*>(blk + 48 + 16 * i));
    return r;
  }
  static __device__ __forceinline__ void decode(const Raw& r, int i, int half, uint32_t (&c)[4], float* dl, float* ml,
                                                int* col) {
    const int j = i >> 1, jj = 2 * j + half;
    const uint32_t q[4] = {r.q.x, r.q.y, r.q.z, r.q.w};
    const uint32_t h[4] = {r.qh.x, r.qh.y, r.qh.z, r.qh.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) c[k] = ((q[k] >> (4 * half)) & 0x0f0f0f0fu) | (((h[k] >> jj) & 0x01010101u) << 4);
    float sc, mn;
    k_scale_min_words(r.hdr.y, r.hdr.z, r.hdr.w, jj, &sc, &mn);
    *dl = __fmul_rn(fp16_bits_to_f32(r.hdr.x & 0xffffu), sc);
    *ml = __fmul_rn(fp16_bits_to_f32(r.hdr.x >> 16), mn);
    *col = 64 * j + 16 * (i & 1) + 32 * half;
  }
};

// Bytes [a, a + 16) of the 32 bytes lo:hi (a even, 0..14) as four words: two word-select stages
// and a funnel shift, all on registers.
__device__ __forceinline__ void bytes_from(const uint4& lo, const uint4& hi, int a, uint32_t (&out)[4]) {
  uint32_t w[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
  uint32_t t[6], u[5];
#pragma unroll
  for (int k = 0; k < 6; ++k) t[k] = (a & 8) ? w[k + 2] : w[k];
#pragma unroll
  for (int k = 0; k < 5; ++k) u[k] = (a & 4) ? t[k + 1] : t[k];
#pragma unroll
  for (int k = 0; k < 4; ++k) out[k] = __funnelshift_r(u[k], u[k + 1], 8 * (a & 3));
}

// Q6_K (210 B: 128 B ql, 64 B qh, 16 int8 scales, fp16 d). Blocks are only 2-byte aligned, so a
// lane loads the two aligned 16-byte chunks around each of its 16-byte runs and shifts. Lane i
// (h = i/4, q0 = 16(i%4)) takes ql[64h + q0, +16) and qh[32h + q0%32, +16): low nibbles are
// columns 128h + q0 + [0, 16) (qh bit pair q0/32, scale 8h + q0/16), high nibbles the same + 64
// (bit pair q0/32 + 2, scale 8h + 4 + q0/16). w = (d·scale)·(q − 32). Every chunk loaded ends
// at most at byte 208 of the block.
template <>
struct KQuant<QuantType::kQ6_K> {
  static constexpr int kBytes = 210;
  static constexpr bool kHasMin = false;
  static constexpr float kBias = 8388640.0f;  // 2^23 + 32
  struct Raw {
    uint4 l0, l1, h0, h1;
    uint32_t sc_d;  // scale of the low half (byte 0), of the high half (byte 1), fp16 d (bits 16..31)
    int a;          // block address mod 16
  };
  static __device__ __forceinline__ Raw load(const uint8_t* blk, int i) {
    const int h = i >> 2, q0 = 16 * (i & 3);
    Raw r;
    r.a = static_cast<int>(reinterpret_cast<uintptr_t>(blk) & 15u);
    const uint4* pl = reinterpret_cast<const uint4*>(blk + 64 * h + q0 - r.a);
    const uint4* ph = reinterpret_cast<const uint4*>(blk + 128 + 32 * h + (q0 & 31) - r.a);
    r.l0 = load_stream(pl);
    r.l1 = load_stream(pl + 1);
    r.h0 = __ldg(ph);
    r.h1 = __ldg(ph + 1);
    const uint8_t* s = blk + 192 + 8 * h + (q0 >> 4);
    r.sc_d = static_cast<uint32_t>(__ldg(s)) | (static_cast<uint32_t>(__ldg(s + 4)) << 8) |
             (static_cast<uint32_t>(__ldg(reinterpret_cast<const uint16_t*>(blk + 208))) << 16);
    return r;
  }
  static __device__ __forceinline__ void decode(const Raw& r, int i, int half, uint32_t (&c)[4], float* dl, float* ml,
                                                int* col) {
    const int h = i >> 2, q0 = 16 * (i & 3);
    uint32_t lw[4], hw[4];
    bytes_from(r.l0, r.l1, r.a, lw);
    bytes_from(r.h0, r.h1, r.a, hw);
    const int hs = 2 * (q0 >> 5) + 4 * half;
#pragma unroll
    for (int k = 0; k < 4; ++k) c[k] = ((lw[k] >> (4 * half)) & 0x0f0f0f0fu) | (((hw[k] >> hs) & 0x03030303u) << 4);
    const int8_t sc = static_cast<int8_t>((r.sc_d >> (8 * half)) & 0xffu);
    *dl = __fmul_rn(fp16_bits_to_f32(r.sc_d >> 16), static_cast<float>(sc));
    *ml = 0.0f;
    *col = 128 * h + q0 + 64 * half;
  }
};

struct KqParams {
  const uint8_t* raw;
  int64_t rows, cols, row_bytes;
  const float* x;
  float* y;
  int m;
  int split;  // warps sharing one group of kRows rows (1, 2, 4 or 8), each taking every split-th step
};

// y[n, row] = Σ_blocks Σ_runs dl·Σ(q·x) − ml·Σx: the codes are exact floats, dl and ml are the
// reference's roundings; only the order of the fp32 sums differs from the per-element product.
template <QuantType T, int kRows, int kMaxM, int kMinCtas>
static __global__ void __launch_bounds__(kWarps * 32, kMinCtas) gemv_kquant_kernel(KqParams p) {
  using Q = KQuant<T>;
  __shared__ float red[kWarps][kRows][kMaxM];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int split = p.split;
  const int part = warp % split;
  const int64_t row0 = (int64_t{blockIdx.x} * (kWarps / split) + warp / split) * kRows;
  const int bi = lane >> 3, i = lane & 7;
  const int64_t nb = p.cols / 256, step = int64_t{kBlocksPerStep} * split;
  const int m = p.m;
  float acc[kRows][kMaxM];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int n = 0; n < kMaxM; ++n) acc[r][n] = 0.0f;
  }
  const bool active = row0 < p.rows;
  if (active) {
    const uint8_t* rowp[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) rowp[r] = p.raw + (row0 + r < p.rows ? row0 + r : row0) * p.row_bytes;
    typename Q::Raw next[kRows];
    const int64_t first = int64_t{part} * kBlocksPerStep + bi;
    if (first < nb) {
#pragma unroll
      for (int r = 0; r < kRows; ++r) next[r] = Q::load(rowp[r] + first * Q::kBytes, i);
    }
    for (int64_t b = first; b < nb; b += step) {
      typename Q::Raw cur[kRows];
#pragma unroll
      for (int r = 0; r < kRows; ++r) cur[r] = next[r];
      if (b + step < nb) {  // the next step's blocks load while this one computes
#pragma unroll
        for (int r = 0; r < kRows; ++r) next[r] = Q::load(rowp[r] + (b + step) * Q::kBytes, i);
      }
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        float f[kRows][16], dl[kRows], ml[kRows];
        int col = 0;
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          uint32_t c[4];
          Q::decode(cur[r], i, half, c, &dl[r], &ml[r], &col);
#pragma unroll
          for (int k = 0; k < 4; ++k) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              f[r][4 * k + e] = __uint_as_float(__byte_perm(c[k], 0x4b000000u, 0x7650u + e)) - Q::kBias;
            }
          }
        }
        const float4* xb = reinterpret_cast<const float4*>(p.x + b * 256 + col);
#pragma unroll
        for (int n = 0; n < kMaxM; ++n) {
          if (n < m) {
            const float4* xr = xb + int64_t{n} * (p.cols / 4);
            float xs[16];
#pragma unroll
            for (int e4 = 0; e4 < 4; ++e4) {
              const float4 v = __ldg(xr + e4);
              xs[4 * e4 + 0] = v.x;
              xs[4 * e4 + 1] = v.y;
              xs[4 * e4 + 2] = v.z;
              xs[4 * e4 + 3] = v.w;
            }
            // M > 1: two chains per sum (half the FMA latency); M = 1 keeps one, which needs fewer
            // registers (two CTAs per SM; two chains measured 34% slower on Q6_K at one CTA per SM).
            constexpr int kChains = kMaxM > 1 ? 2 : 1;
            float sx = 0.0f;
            if constexpr (Q::kHasMin) {
              float sx1 = 0.0f;
#pragma unroll
              for (int e = 0; e < 16; e += kChains) {
                sx += xs[e];
                if constexpr (kChains == 2) sx1 += xs[e + 1];
              }
              sx += sx1;
            }
#pragma unroll
            for (int r = 0; r < kRows; ++r) {
              float s0 = 0.0f, s1 = 0.0f;
#pragma unroll
              for (int e = 0; e < 16; e += kChains) {
                s0 = fmaf(f[r][e], xs[e], s0);
                if constexpr (kChains == 2) s1 = fmaf(f[r][e + 1], xs[e + 1], s1);
              }
              acc[r][n] = fmaf(dl[r], s0 + s1, acc[r][n]);
              if constexpr (Q::kHasMin) acc[r][n] = fmaf(-ml[r], sx, acc[r][n]);
            }
          }
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int n = 0; n < kMaxM; ++n) {
      if (n < m) {
        const float s = warp_sum(acc[r][n]);
        if (split == 1) {
          if (lane == 0 && active && row0 + r < p.rows) p.y[int64_t{n} * p.rows + row0 + r] = s;
        } else if (lane == 0) {
          red[warp][r][n] = s;
        }
      }
    }
  }
  if (split == 1) return;  // uniform over the CTA
  __syncthreads();
  if (part != 0 || !active) return;
  for (int idx = lane; idx < kRows * kMaxM; idx += 32) {
    const int r = idx / kMaxM, n = idx % kMaxM;
    if (n >= m || row0 + r >= p.rows) continue;
    float s = 0.0f;
    for (int q = 0; q < split; ++q) s += red[warp + q][r][n];
    p.y[int64_t{n} * p.rows + row0 + r] = s;
  }
}

// Warps that split K: enough warps for about 32 per SM, while every lane group keeps two or more
// steps of blocks.
int auto_split(int64_t rows, int64_t nb, int rows_per_warp, int num_sms) {
  const int64_t groups = (rows + rows_per_warp - 1) / rows_per_warp;
  const int64_t target = int64_t{std::max(num_sms, 1)} * 32;
  int split = 1;
  while (split < kWarps && groups * split < target && nb >= int64_t{2} * kBlocksPerStep * split * 2) split *= 2;
  return split;
}

struct Config {
  int rows_m1;     // rows per warp for M = 1 (2 or 4)
  int rows_small;  // rows per warp for M = 2..4 (2 or 4)
  int split;       // warps per row group; 0: auto_split
  int chunk;       // rows of x per launch: 4, or 16 (M > 4 then runs two rows per warp, 16 accumulators each)
  int min_ctas = 1;  // M = 1, two rows per warp: CTAs per SM the registers must allow (1 or 3)
};

template <QuantType T, int kRows, int kMaxM, int kMinCtas = 1>
cudaError_t launch_one(const KqParams& p, cudaStream_t stream) {
  const int64_t groups = (p.rows + kRows - 1) / kRows;
  const int64_t per_cta = kWarps / p.split;
  const unsigned grid = static_cast<unsigned>((groups + per_cta - 1) / per_cta);
  gemv_kquant_kernel<T, kRows, kMaxM, kMinCtas><<<grid, kWarps * 32, 0, stream>>>(p);
  return cudaGetLastError();
}

template <QuantType T>
cudaError_t launch_typed(const uint8_t* raw, int64_t rows, int64_t cols, int64_t row_bytes, const float* x, int64_t m,
                         float* y, Config cfg, int num_sms, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;  // nothing to write (and no empty grid)
  const int64_t nb = cols / 256;
  for (int64_t m0 = 0; m0 < m; m0 += cfg.chunk) {
    const int mc = static_cast<int>(std::min<int64_t>(cfg.chunk, m - m0));
    // Four rows per warp only where the accumulators stay small (M <= 4).
    const int rows_per_warp = mc == 1 ? cfg.rows_m1 : (mc <= 4 ? cfg.rows_small : 2);
    KqParams p{raw, rows, cols, row_bytes, x + m0 * cols, y + m0 * rows, mc, 1};
    p.split = cfg.split > 0 ? cfg.split : auto_split(rows, nb, rows_per_warp, num_sms);
    cudaError_t e;
    if (rows_per_warp == 4) {
      e = mc == 1 ? launch_one<T, 4, 1>(p, stream) : launch_one<T, 4, 4>(p, stream);
    } else {
      e = mc == 1 ? (cfg.min_ctas == 3 ? launch_one<T, 2, 1, 3>(p, stream) : launch_one<T, 2, 1>(p, stream))
                  : (mc <= 4 ? launch_one<T, 2, 4>(p, stream) : launch_one<T, 2, kGemvMaxM>(p, stream));
    }
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

cudaError_t launch_config(const WeightView& w, const float* x, int64_t m, float* y, Config cfg, int num_sms,
                          cudaStream_t stream) {
  switch (w.type) {
    case QuantType::kQ4_K:
      return launch_typed<QuantType::kQ4_K>(w.raw, w.rows, w.cols, w.row_bytes, x, m, y, cfg, num_sms, stream);
    case QuantType::kQ5_K:
      return launch_typed<QuantType::kQ5_K>(w.raw, w.rows, w.cols, w.row_bytes, x, m, y, cfg, num_sms, stream);
    case QuantType::kQ6_K:
      return launch_typed<QuantType::kQ6_K>(w.raw, w.rows, w.cols, w.row_bytes, x, m, y, cfg, num_sms, stream);
    default: return cudaErrorInvalidValue;
  }
}

// Production (H200, Gemma 4 31B shapes, dev/cuda/kquant_bench): two rows per warp at M = 1, four at
// M = 2..4, larger M as launches of four rows of x (faster than one launch with 16 accumulators per
// row: the fp32 FMAs of M = 16 are issue-bound either way, and four rows per warp halve the x loads).
constexpr Config kProduction{2, 4, 0, 4};

struct LabVariant {
  const char* name;
  Config cfg;
};
constexpr LabVariant kLab[] = {
    {"production", kProduction},
    {"rows2 split1 chunk16", {2, 2, 1, 16}},
    {"rows2 auto-split chunk16", {2, 2, 0, 16}},
    {"rows4 split1 chunk4", {4, 4, 1, 4}},
    {"rows4 auto-split chunk4", {4, 4, 0, 4}},
    {"rows2 auto-split chunk4", {2, 2, 0, 4}},
    {"production, M=1 at 3 CTAs/SM", {2, 4, 0, 4, 3}},
};
constexpr int kLabCount = static_cast<int>(sizeof(kLab) / sizeof(kLab[0]));

int block_bytes(QuantType t) {
  switch (t) {
    case QuantType::kQ4_K: return 144;
    case QuantType::kQ5_K: return 176;
    case QuantType::kQ6_K: return 210;
    default: return 0;
  }
}

}  // namespace

bool kquant_kernels_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("GE_CUDA_KQUANT");
    return e == nullptr || std::strcmp(e, "0") != 0;
  }();
  return on;
}

bool gemv_kquant_supported(const WeightView& w, const float* x) {
  const int bb = block_bytes(w.type);
  return bb > 0 && kquant_kernels_enabled() && w.layout == WeightLayout::kRawBlocks && w.cols > 0 &&
         w.cols % 256 == 0 && w.row_bytes == w.cols / 256 * bb && reinterpret_cast<uintptr_t>(w.raw) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(x) % 16 == 0;
}

cudaError_t launch_gemv_kquant(const WeightView& w, const float* x, int64_t m, float* y, const LaunchContext& ctx) {
  return launch_config(w, x, m, y, kProduction, ctx.num_sms, ctx.stream);
}

int gemv_kquant_lab_variants() { return kLabCount + 1; }

const char* gemv_kquant_lab_variant_name(int variant) {
  if (variant >= 0 && variant < kLabCount) return kLab[variant].name;
  return variant == kLabCount ? "before (generic / exact Q4_K)" : "?";
}

cudaError_t gemv_kquant_lab(QuantType type, const uint8_t* raw, int64_t rows, int64_t cols, const float* x, int64_t m,
                            float* y, int variant, int num_sms, cudaStream_t stream) {
  const int bb = block_bytes(type);
  if (bb == 0 || rows <= 0 || cols <= 0 || cols % 256 != 0 || m <= 0 || variant < 0 || variant > kLabCount) {
    return cudaErrorInvalidValue;
  }
  WeightView w;
  w.layout = WeightLayout::kRawBlocks;
  w.type = type;
  w.rows = rows;
  w.cols = cols;
  w.raw = raw;
  w.row_bytes = cols / 256 * bb;
  LaunchContext ctx;
  ctx.stream = stream;
  ctx.num_sms = num_sms;
  if (variant == kLabCount) return launch_gemv_raw_generic(w, x, m, y, ctx);
  if (reinterpret_cast<uintptr_t>(raw) % 16 != 0 || reinterpret_cast<uintptr_t>(x) % 16 != 0) {
    return launch_gemv_raw_generic(w, x, m, y, ctx);
  }
  return launch_config(w, x, m, y, kLab[variant].cfg, num_sms, stream);
}

}  // namespace ge::cuda
