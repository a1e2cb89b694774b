// K-slice schedule of the tensor-core GEMV for small M (and grouped products that share x): every CTA
// owns one K-slice of one weight, stages x of that slice once in shared memory as B fragments (fp16
// for 4-bit weights at K >= 4096, gemv_slice_f16.cuh; bf16 hi/lo otherwise), and its warps stream whole
// units of tiles over the slice; split units are added by the last slice to arrive (the same bits on
// every run). A grouped launch plans each output for its share of the GPU (see slice_dispatch).
#include <algorithm>
#include <iterator>

#include "backend/cuda/gemv_slice.cuh"
#include "backend/cuda/gemv_slice_f16.cuh"
#include "backend/cuda/gemv_tiled.cuh"

namespace ge::cuda {
namespace {

constexpr int kSliceWarps = 8;     // warps per CTA
constexpr int kSliceMinB = 2;      // CTAs per SM the register budget is sized for
// Slots (two 16-byte loads per lane each) in flight per warp: 4 measured best at M <= 2, 2 above
// (dev/cuda/NOTES.md, K-slice round 3).
constexpr int kSlicePrefetch = 2;
constexpr int kSliceShortPrefetch = 4;
// Shared memory per CTA for the staged fragments: two CTAs per SM must fit in 227 KB.
constexpr size_t kSliceSmemCap = 110 * 1024;
// 4-bit weights up to this M (every M of the GEMV) and from this K on run gemv_slice_f16_kernel: x
// rounded to fp16 (11 significant bits, one mma per k-step; measured 16% faster than the bf16 hi/lo
// kernel for the Q4_0 token at M = 1, dev/cuda/NOTES.md). The rounding errors of x average out over long rows: at K >= 4096 their
// typical sum is ~2^-11 · sqrt(3 / K) · Σ|w·x|, far inside the tiled GEMV's 5e-5 · Σ|w·x|; shorter
// rows (small models, where the GEMV is launch-bound anyway) keep the 16-bit split of x.
constexpr int kSliceF16MaxM = 16;
constexpr int64_t kSliceF16MinK = 4096;
// The fp16 kernel streams its weights through a shared-memory ring of this many 1 KB slots per warp
// (cp.async): 64 KB in flight per SM without registers. Measured against the 3-slot register
// prefetch on an H200: Q4_0 token of linear layers 6.45 -> 6.10 ms at M = 1, 8.18 -> 7.61 at M = 8;
// deeper rings leave less shared memory for x (more slices) and measured slower (dev/cuda/NOTES.md).
constexpr int kSliceRing = 4;

// One prefetch slot of a warp's unit of kT tiles: chunk c of every tile with its group metadata.
template <int kT>
struct UnitSlot {
  uint4 q[kT];
  uint32_t s[kT][2];  // [tile][group of the chunk]
  uint32_t z[kT][2];
};

// Loads chunk c of tiles unit·kT .. unit·kT + kT - 1; tiles past the weight (the packer pads to an
// even count only) read as zero codes and scales.
template <int kFmt, int kG, int kT>
__device__ __forceinline__ void load_unit(const WeightView& w, int unit, int c, int lane, int g, UnitSlot<kT>& sl) {
  using F = FormatTraits<kFmt>;
  constexpr int kChunkK = F::kBits == 4 ? 64 : 32;
  constexpr int kGpc = kChunkK > kG ? kChunkK / kG : 1;
  const int64_t tile0 = int64_t{unit} * kT;
  const int grp = c * kChunkK / kG;
#pragma unroll
  for (int tt = 0; tt < kT; ++tt) {
    const bool in = kT == 2 || tile0 + tt < w.n_tiles;
    const int64_t tile = in ? tile0 + tt : 0;
    sl.q[tt] = in ? load_stream(w.codes + (tile * w.n_chunks + c) * 32 + lane) : make_uint4(0u, 0u, 0u, 0u);
    const int64_t mi = (tile * w.n_groups + grp) * 8 + g;
#pragma unroll
    for (int j = 0; j < kGpc; ++j) {
      sl.s[tt][j] = in ? load_nc_u32(w.scales + mi + 8 * j) : 0u;
      if constexpr (F::kZero != kZeroNone) sl.z[tt][j] = in ? load_nc_u32(w.zeros + mi + 8 * j) : 0u;
    }
  }
}

// CTA b of an output works on slice b % S (neighbouring CTAs read different slices of x and
// different pairs); warp lw of the slice's R·W warps takes pairs lw, lw + R·W, ... over the whole
// slice, so a warp's chunks form one sequence that streams kP slots ahead across pair boundaries.
// Partial sums of a pair (S > 1) go to global scratch; the slice that arrives last adds them in
// slice order, so the result has the same bits on every run.
template <int kFmt, int kG, int kNT, int kP, int kW, int kMinB, int kT>
static __global__ void __launch_bounds__(kW * 32, kMinB) gemv_slice_kernel(const __grid_constant__ SliceParams p) {
  using F = FormatTraits<kFmt>;
  constexpr int kBits = F::kBits;
  constexpr int kSteps = kBits == 4 ? 4 : 2;  // k-steps per chunk
  constexpr int kChunkK = kSteps * 16;
  constexpr int kKsg = kG / 16;  // k-steps per group
  constexpr int kGpc = kChunkK > kG ? kChunkK / kG : 1;
  constexpr int kCpg = kG > kChunkK ? kG / kChunkK : 1;
  extern __shared__ __align__(16) unsigned char smem[];
  const SliceOutput& out = p.out[output_of(p, static_cast<int>(blockIdx.x))];
  const WeightView& w = out.w;
  const int m = p.m, S = out.slices;
  const int b = static_cast<int>(blockIdx.x) - out.first_cta;
  const int slice = b % S, r = b / S;
  const int g0 = slice * p.n_gu / S, g1 = (slice + 1) * p.n_gu / S;
  const int c_begin = g0 * kCpg, c_end = g1 * kCpg, len = c_end - c_begin;
  const int64_t ksteps_s = int64_t{len} * kSteps;
  uint4* xf_s = reinterpret_cast<uint4*>(smem);
  float* xsum_s = reinterpret_cast<float*>(xf_s + ksteps_s * m * 4);

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int nw = out.ctas_per_slice * kW, lw = r * kW + warp;
  const int my_units = lw < out.units ? (out.units - 1 - lw) / nw + 1 : 0;
  const int total = my_units * len;  // chunks of this warp

  // Loader cursor and prologue (weights do not depend on the previous kernel).
  int ld_gp = lw, ld_c = c_begin;
  UnitSlot<kT> slot[kP];
#pragma unroll
  for (int i = 0; i < kP; ++i) {
    if (i < total) {
      load_unit<kFmt, kG, kT>(w, ld_gp, ld_c, lane, g, slot[i]);
      if (++ld_c == c_end) {
        ld_c = c_begin;
        ld_gp += nw;
      }
    }
  }

  if (p.early_release) grid_dependency_release();
  grid_dependency_wait();
  // Eight items in flight per thread: at M = 16 a slice is ~20 items per thread, and the warps wait
  // for the whole slice at the barrier below.
  build_fragments<8>(p.x, p.cols, int64_t{c_begin} * kChunkK, m, ksteps_s, int64_t{len} * kChunkK / kG, kG,
                     F::kZero == kZeroFloat, xf_s, xsum_s, threadIdx.x, blockDim.x);
  __syncthreads();
  if (!p.early_release) grid_dependency_release();

  // B fragments of this lane: token n = g (+ 8 for the second n-tile); 16-byte reads of 32
  // consecutive uint4 per warp, free of bank conflicts.
  const bool has_n0 = g < m, has_n1 = g + 8 < m;
  const uint4* xlane = xf_s + g * 4 + t;
  const int xstride = m * 4;  // uint4 per k-step

  float acc[kT][kNT][4], d[kT][kNT][4];
#pragma unroll
  for (int tt = 0; tt < kT; ++tt) {
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[tt][nt][j] = d[tt][nt][j] = 0.0f;
    }
  }
  int gp = lw, c = c_begin;

  for (int ub = 0; ub < total; ub += kP) {
#pragma unroll
    for (int i = 0; i < kP; ++i) {
      if (ub + i < total) {
        UnitSlot<kT>& sl = slot[i];
        uint32_t bias[kT][2];
#pragma unroll
        for (int tt = 0; tt < kT; ++tt) bias[tt][0] = bias[tt][1] = kBf2_128;
        if constexpr (F::kZero == kZeroInt) {
#pragma unroll
          for (int tt = 0; tt < kT; ++tt) {
            const float zl = static_cast<float>(static_cast<int8_t>(sl.z[tt][0] & 0xffu));
            const float zh = static_cast<float>(static_cast<int8_t>((sl.z[tt][0] >> 16) & 0xffu));
            bias[tt][0] = pack_bf16x2(128.0f + zl, 128.0f + zl);
            bias[tt][1] = pack_bf16x2(128.0f + zh, 128.0f + zh);
          }
        }
        const uint4* xk = xlane + (c - c_begin) * kSteps * xstride;
#pragma unroll
        for (int s = 0; s < kSteps; ++s) {
          uint4 b[kNT];
          b[0] = has_n0 ? xk[s * xstride] : make_uint4(0u, 0u, 0u, 0u);
          if constexpr (kNT == 2) b[1] = has_n1 ? xk[s * xstride + 32] : make_uint4(0u, 0u, 0u, 0u);
#pragma unroll
          for (int tt = 0; tt < kT; ++tt) {
            uint32_t a[4];
            const uint32_t* qw = reinterpret_cast<const uint32_t*>(&sl.q[tt]);
            if constexpr (kBits == 4) {
              decode_a4(qw[s], a);
            } else {
              const uint32_t X = qw[2 * s], Y = qw[2 * s + 1];
              a[0] = decode_a8(X, 0, bias[tt][0]);
              a[1] = decode_a8(X, 8, bias[tt][1]);
              a[2] = decode_a8(Y, 0, bias[tt][0]);
              a[3] = decode_a8(Y, 8, bias[tt][1]);
            }
#pragma unroll
            for (int nt = 0; nt < kNT; ++nt) {
              mma_bf16(d[tt][nt], a, b[nt].x, b[nt].y);
              mma_bf16(d[tt][nt], a, b[nt].z, b[nt].w);
            }
          }
          // Group end: fold the group's sums into the fp32 accumulators with its scale (and the
          // zero-point term through the staged Σx of the group).
          bool flush;
          if constexpr (kKsg <= kSteps) {
            flush = (s + 1) % kKsg == 0;
          } else {
            flush = s == kSteps - 1 && (c + 1) % kCpg == 0;
          }
          if (flush) {
            const int j = kGpc == 2 ? s / kKsg : 0;  // which group of the chunk
            const int grp = ((c - c_begin) * kSteps + s) / kKsg;  // group within the slice
#pragma unroll
            for (int tt = 0; tt < kT; ++tt) {
              const GroupScale gs = group_scale<kFmt>(sl.s[tt][j], F::kZero == kZeroFloat ? sl.z[tt][j] : 0u);
              flush_group<kFmt, kNT>(gs, xsum_s + grp * 16, t, acc[tt], d[tt]);
            }
          }
        }
        // Refill the slot kP chunks ahead (possibly of the warp's next pair).
        if (ub + i + kP < total) {
          load_unit<kFmt, kG, kT>(w, ld_gp, ld_c, lane, g, sl);
          if (++ld_c == c_end) {
            ld_c = c_begin;
            ld_gp += nw;
          }
        }
        if (++c == c_end) {  // end of the pair's slice
          slice_unit_finish<kT, kNT>(out, m, gp, slice, acc, lane, g, t);
          c = c_begin;
          gp += nw;
        }
      }
    }
  }
}

template <int kFmt, int kG, int kNT, int kP = kSlicePrefetch, int kW = kSliceWarps, int kMinB = kSliceMinB,
          int kT = 2>
cudaError_t slice_launch(const SliceParams& p, int grid, size_t smem, const LaunchContext& ctx) {
  auto kernel = gemv_slice_kernel<kFmt, kG, kNT, kP, kW, kMinB, kT>;
  static bool configured = false;
  if (!configured) {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemLimit);
    if (e != cudaSuccess) return e;
    configured = true;
  }
  return launch_pdl(kernel, dim3(static_cast<unsigned>(grid)), kW * 32, smem, p, ctx);
}

template <int kFmt, int kG>
cudaError_t slice_nt(const SliceParams& p, int grid, size_t smem, const LaunchContext& ctx) {
  if (p.m <= 2) return slice_launch<kFmt, kG, 1, kSliceShortPrefetch>(p, grid, smem, ctx);
  return p.m <= 8 ? slice_launch<kFmt, kG, 1>(p, grid, smem, ctx) : slice_launch<kFmt, kG, 2>(p, grid, smem, ctx);
}

template <int kFmt>
cudaError_t slice_group(const SliceParams& p, int group, int grid, size_t smem, const LaunchContext& ctx) {
  if constexpr (kFmt == kFmtQ4_0 || kFmt == kFmtQ8_0) {
    return slice_nt<kFmt, 32>(p, grid, smem, ctx);
  } else {
    switch (group) {
      case 32: return slice_nt<kFmt, 32>(p, grid, smem, ctx);
      case 64: return slice_nt<kFmt, 64>(p, grid, smem, ctx);
      case 128: return slice_nt<kFmt, 128>(p, grid, smem, ctx);
      default: return cudaErrorInvalidValue;
    }
  }
}

// Kernel-lab configurations (Q4_0 only): prefetch depth kP up to M = 8, 2 above (deeper spills).
template <int kP>
cudaError_t slice_lab(const SliceParams& p, int grid, size_t smem, const LaunchContext& ctx) {
  return p.m <= 8 ? slice_launch<kFmtQ4_0, 32, 1, kP>(p, grid, smem, ctx)
                  : slice_launch<kFmtQ4_0, 32, 2, 2>(p, grid, smem, ctx);
}

template <int kFmt, int kG, int kP, int kMinB, bool kLo, bool kOne = false, bool kSplit = false, int kRing = 0,
          int kW = kSliceWarps, int kNT = 1, bool kBias = false, bool kI8 = false, bool kNoMath = false>
cudaError_t slice_f16_launch(const SliceParams& p, int grid, size_t smem, const LaunchContext& ctx) {
  auto kernel = gemv_slice_f16_kernel<kFmt, kG, kP, kW, kMinB, kLo, kOne, kSplit, kRing, kNT, kBias, kI8, kNoMath>;
  static bool configured = false;
  if (!configured) {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemLimit);
    if (e != cudaSuccess) return e;
    configured = true;
  }
  return launch_pdl(kernel, dim3(static_cast<unsigned>(grid)), kW * 32, smem, p, ctx);
}

// Kernel-lab configurations of the fp16 kernel (Q4_0, M <= 8): prefetch depth at M <= 2 and above,
// CTAs per SM the registers are sized for.
template <int kPShort, int kP, int kMinB, bool kLo = false, bool kOne = false, bool kSplit = false>
cudaError_t slice_f16_lab(const SliceParams& p, int grid, size_t smem, const LaunchContext& ctx) {
  if constexpr (kOne) {
    if (p.m == 1) return slice_f16_launch<kFmtQ4_0, 32, kPShort, kMinB, kLo, true, kSplit>(p, grid, smem, ctx);
  }
  return p.m <= 2 ? slice_f16_launch<kFmtQ4_0, 32, kPShort, kMinB, kLo, false, kSplit>(p, grid, smem, ctx)
                  : slice_f16_launch<kFmtQ4_0, 32, kP, kMinB, kLo, false, kSplit>(p, grid, smem, ctx);
}

// Kernel-lab configurations of the fp16 kernel with the weights streamed through a shared-memory
// ring of kRing slots per warp (Q4_0, M <= 8; token-1 sums left out at M = 1).
// kBias (variant 17): codes decoded with their offset, Σx times the offset taken off by one more mma
// per k-step (32 fp16 subtractions per 1 KB chunk fewer, 4 mma more): measured slower on an H200 (Q4_0
// token of linear layers 5.71 -> 5.96 ms at M = 1; dev/cuda/NOTES.md), so production does not use it.
template <int kRing, int kMinB, bool kBias = false, bool kI8 = false>
cudaError_t slice_f16_ring_lab(const SliceParams& p, int grid, size_t smem, const LaunchContext& ctx) {
  constexpr int kW = kSliceWarps;
  if constexpr (kI8) {
    if (p.m == 1) return slice_f16_launch<kFmtQ4_0, 32, 1, kMinB, false, true, false, kRing, kW, 1, false, true>(p, grid, smem, ctx);
  }
  if (p.m == 1) return slice_f16_launch<kFmtQ4_0, 32, 1, kMinB, false, true, false, kRing, kW, 1, kBias>(p, grid, smem, ctx);
  if (p.m <= 8) return slice_f16_launch<kFmtQ4_0, 32, 1, kMinB, false, false, false, kRing, kW, 1, kBias>(p, grid, smem, ctx);
  return slice_f16_launch<kFmtQ4_0, 32, 1, kMinB, false, false, false, kRing, kW, 2, kBias>(p, grid, smem, ctx);
}
template <int kRing>
cudaError_t slice_f16_ring16_lab(const SliceParams& p, int grid, size_t smem, const LaunchContext& ctx) {
  if (p.m == 1) return slice_f16_launch<kFmtQ4_0, 32, 1, 1, false, true, false, kRing, 16>(p, grid, smem, ctx);
  return slice_f16_launch<kFmtQ4_0, 32, 1, 1, false, false, false, kRing, 16>(p, grid, smem, ctx);
}

template <int kFmt, int kG>
cudaError_t slice_f16_nt(const SliceParams& p, int grid, size_t smem, const LaunchContext& ctx, bool i8) {
  // Two B n-tiles (tokens 8-15) above M = 8.
  constexpr int kR = kSliceRing, kW = kSliceWarps;
  if constexpr (FormatTraits<kFmt>::kZero == kZeroNone) {
    if (i8 && p.m == 1) {
      return slice_f16_launch<kFmt, kG, 1, kSliceMinB, false, true, false, kR, kW, 1, false, true>(p, grid, smem, ctx);
    }
  }
  if (p.m == 1) return slice_f16_launch<kFmt, kG, 1, kSliceMinB, false, true, false, kR>(p, grid, smem, ctx);
  if (p.m <= 8) return slice_f16_launch<kFmt, kG, 1, kSliceMinB, false, false, false, kR>(p, grid, smem, ctx);
  return slice_f16_launch<kFmt, kG, 1, kSliceMinB, false, false, false, kR, kW, 2>(p, grid, smem, ctx);
}

template <int kFmt>
cudaError_t slice_f16_group(const SliceParams& p, int group, int grid, size_t smem, const LaunchContext& ctx,
                            bool i8) {
  if constexpr (kFmt == kFmtQ4_0) {
    return slice_f16_nt<kFmt, 32>(p, grid, smem, ctx, i8);
  } else {
    switch (group) {
      case 32: return slice_f16_nt<kFmt, 32>(p, grid, smem, ctx, i8);
      case 64: return slice_f16_nt<kFmt, 64>(p, grid, smem, ctx, i8);
      case 128: return slice_f16_nt<kFmt, 128>(p, grid, smem, ctx, i8);
      default: return cudaErrorInvalidValue;
    }
  }
}

struct SliceConfig {
  int warps = kSliceWarps;
  int min_blocks = kSliceMinB;
  size_t smem_cap = kSliceSmemCap;
  // Slice count: the fewest whose x fits and keep >= `busy` of the warps busy (else the best filling);
  // 0 < busy.
  double busy = 0.9;
  int tiles = 2;  // tiles per warp unit
  bool f16 = false;  // gemv_slice_f16_kernel: one fp16 B fragment (4-bit codes)
  bool f16_lo = false;  // ... plus the fp16 remainder of x (two mma per k-step, 22 bits of x)
  int ring = 0;         // ... with the weights through a shared-memory ring of this many slots per warp
  bool i8 = false;      // ... with x as int8 codes per 32-block (M = 1, no zero points)
  // Grouped launch: each output plans its slices for its share of the resident CTAs (by units), so
  // the group fills about one wave with fewer, longer K-slices; otherwise (kernel lab) every output
  // plans for the whole GPU as a separate launch would.
  bool share = true;
  // Kernel lab: only the CTAs per slice follow the share (the slices stay those of a separate launch).
  bool share_ctas = false;
};

// Shared memory of a slice of `len` chunks: fragments (64 bytes per k-step and token) and the
// per-group x sums of float zero points.
size_t slice_smem(const WeightView& w, int len, int m) {
  const bool four = w.layout == WeightLayout::kTiled4;
  const int steps = four ? 4 : 2;
  const size_t frag = static_cast<size_t>(len) * steps * m * 64;
  const size_t groups = static_cast<size_t>(len) * tiled_chunk_k(w.layout) / w.group_size;
  return frag + (four && w.zeros != nullptr ? groups * 16 * 4 : 0);
}

}  // namespace

bool gemv_slice_compatible(const WeightView& a, const WeightView& b) {
  return a.layout == b.layout && a.cols == b.cols && a.n_chunks == b.n_chunks && a.n_groups == b.n_groups &&
         a.group_size == b.group_size && a.scale_fp16 == b.scale_fp16 && (a.zeros == nullptr) == (b.zeros == nullptr);
}

namespace {

// variant < 0: production; otherwise a kernel-lab configuration (Q4_0 only). x_up: x stands for
// gelu_tanh(x) · x_up (production fp16 kernel only; cudaErrorNotSupported where another kernel would run).
// int8_x: production at M = 1 takes x as int8 where the weight has no zero points (gemv_slice_i8.cuh).
cudaError_t slice_dispatch(std::span<const GemvTarget> outs, const float* x, int m, const GemvScratch& scratch,
                           int force_slices, int variant, const LaunchContext& ctx, const float* x_up = nullptr,
                           bool int8_x = false) {
  if (outs.empty() || outs.size() > static_cast<size_t>(kGemvMaxOutputs) || m < 1 || m > kGemvMaxM) {
    return cudaErrorInvalidValue;
  }
  const WeightView& w = *outs[0].w;
  if (w.layout != WeightLayout::kTiled4 && w.layout != WeightLayout::kTiled8) return cudaErrorInvalidValue;
  SliceConfig cfg;
  if (variant > 0) {  // variant 0 (the bf16 kernel) runs every format
    if (w.layout != WeightLayout::kTiled4 || !w.scale_fp16) return cudaErrorInvalidValue;
    // fp16 lab variants 4.. at M <= 8 (above: the bf16 kernel).
    // Variants 14 and 17-19 (the production plan) run the fp16 kernel at every M, as production does.
    const bool every_m = variant == 14 || variant == 17 || variant == 18 || variant == 19;
    if (variant >= 4 && (m <= 8 || every_m)) {
      cfg.f16 = true;
      cfg.f16_lo = variant == 8 || variant == 9;
    }
    // Ring variants 10..: slots per warp and CTAs per SM (one CTA: 16 warps); the x fragments get
    // the shared memory the ring leaves.
    static constexpr int kRingSlots[] = {4, 3, 4, 6, 4, 3, 4, 4, 4, 4};
    static constexpr int kRingBlocks[] = {2, 2, 1, 1, 2, 2, 2, 2, 2, 2};
    static_assert(std::size(kRingSlots) == std::size(kRingBlocks));
    if (variant >= 10 && variant < 10 + static_cast<int>(std::size(kRingSlots)) && (m <= 8 || every_m)) {
      cfg.ring = kRingSlots[variant - 10];
      cfg.min_blocks = kRingBlocks[variant - 10];
      if (cfg.min_blocks == 1) cfg.warps = 16;
    }
    cfg.share = variant == 14 || variant == 15 || variant == 17 || variant == 18 || variant == 19;  // the production plan
    cfg.i8 = variant == 18 && m == 1;
    cfg.share_ctas = variant == 16;
  }
  const bool four = w.layout == WeightLayout::kTiled4;
  if (variant < 0 && four && m <= kSliceF16MaxM && w.cols >= kSliceF16MinK) {
    cfg.f16 = true;
    cfg.ring = kSliceRing;
    cfg.i8 = int8_x && m == 1 && w.zeros == nullptr;
  }
  if (x_up != nullptr && (variant >= 0 || !cfg.f16)) return cudaErrorNotSupported;
  size_t ring_bytes = 0;
  if (cfg.ring > 0) {
    ring_bytes = static_cast<size_t>(cfg.warps) * cfg.ring * slice_ring_slot_bytes(w.group_size, w.zeros != nullptr);
    // What one CTA may take when min_blocks of them share an SM's 227 KB (1 KB reserved per CTA).
    const size_t per_cta = 227 * 1024 / static_cast<size_t>(cfg.min_blocks) - 1024;
    if (per_cta <= ring_bytes) return cudaErrorInvalidValue;
    cfg.smem_cap = std::min(per_cta, size_t{kSmemLimit});
  }
  SliceParams p = {};
  const int chunk_k = four ? 64 : 32;
  const int cpg = w.group_size > chunk_k ? w.group_size / chunk_k : 1;
  const int n_gu = w.n_chunks / cpg;
  const int sms = std::max(ctx.num_sms, 1);
  const int capacity = cfg.min_blocks * sms;  // resident CTAs
  int grid = 0;
  size_t smem = 0, part_floats = 0, counts = 0;
  int max_s = 1;
  int64_t total_units = 0;
  for (const GemvTarget& t : outs) total_units += (t.w->n_tiles + cfg.tiles - 1) / cfg.tiles;
  for (size_t i = 0; i < outs.size(); ++i) {
    if (!gemv_slice_compatible(w, *outs[i].w)) return cudaErrorInvalidValue;
    SliceOutput& o = p.out[i];
    o.w = *outs[i].w;
    o.y = outs[i].y;
    o.units = (o.w.n_tiles + cfg.tiles - 1) / cfg.tiles;
    // Slices of this output, chosen from its own shape and its share of the resident CTAs
    // (proportional to its units): fragments of a slice must fit the shared-memory cap; among
    // those, the fewest slices whose warps are >= 90% busy (units over R·W warps per slice), else
    // the best filling. In a grouped launch a small output thus gets fewer, longer slices than it
    // would alone (q|k|v of the 31B: 1.45 -> 1.04 ms per token, dev/cuda/NOTES.md), so its bits
    // differ from a separate launch's by the order of the K-slice sums.
    const int share = static_cast<int>(std::max<int64_t>(1, capacity * int64_t{o.units} / total_units));
    const int cap = cfg.share ? share : capacity;
    int best_s = 0;
    double best_eff = -1.0;
    for (int s = 1; s <= std::min(n_gu, 64); ++s) {
      if (force_slices > 0 && s != force_slices) continue;
      const int len = (n_gu + s - 1) / s * cpg;
      if ((cfg.f16 ? slice_f16_smem(w, len, m, cfg.f16_lo, ring_bytes, cfg.i8) : slice_smem(w, len, m)) >
          cfg.smem_cap) {
        continue;
      }
      const int r = std::max(1, cap / s);
      const int64_t nw = int64_t{r} * cfg.warps;
      const int64_t rounds = (o.units + nw - 1) / nw;
      const double eff = static_cast<double>(o.units) / static_cast<double>(rounds * nw);
      if (eff > best_eff + 0.02) {
        best_eff = eff;
        best_s = s;
      }
      if (eff >= cfg.busy) break;
    }
    if (best_s == 0) return cudaErrorInvalidValue;  // x of one group unit does not fit: caller falls back
    o.slices = best_s;
    // CTAs per slice: enough warps for every pair, at most the resident capacity.
    o.ctas_per_slice = std::max(1, std::min((cfg.share_ctas ? share : cap) / best_s, (o.units + cfg.warps - 1) / cfg.warps));
    o.first_cta = grid;
    grid += o.slices * o.ctas_per_slice;
    const int len_max = (n_gu + best_s - 1) / best_s * cpg;
    smem = std::max(smem, cfg.f16 ? slice_f16_smem(w, len_max, m, cfg.f16_lo, ring_bytes, cfg.i8)
                                  : slice_smem(w, len_max, m));
    if (best_s > 1) {
      part_floats += static_cast<size_t>(o.units) * best_s * m * 16 * cfg.tiles;
      counts += static_cast<size_t>(o.units);
    }
    max_s = std::max(max_s, best_s);
  }
  p.n_out = static_cast<int>(outs.size());
  p.x = x;
  p.x_up = x_up;
  p.cols = w.cols;
  p.m = m;
  p.n_gu = n_gu;
  p.early_release = variant == 3 ? 1 : 0;
  if (max_s > 1) {
    if (scratch.split_partial == nullptr || scratch.split_count == nullptr) return cudaErrorInvalidValue;
    if (!scratch.split_partial->ensure(part_floats * 4, "gemv split partials").is_ok()) {
      return cudaErrorMemoryAllocation;
    }
    if (scratch.split_count->bytes() < counts * 4) {
      if (!scratch.split_count->allocate(counts * 4, "gemv split counters").is_ok()) return cudaErrorMemoryAllocation;
      cudaError_t e = cudaMemsetAsync(scratch.split_count->get(), 0, counts * 4, ctx.stream);
      if (e != cudaSuccess) return e;
    }
    float* part = scratch.split_partial->as<float>();
    int* count = scratch.split_count->as<int>();
    for (int i = 0; i < p.n_out; ++i) {
      SliceOutput& o = p.out[i];
      if (o.slices == 1) continue;
      o.partial = part;
      o.count = count;
      part += static_cast<size_t>(o.units) * o.slices * m * 16 * cfg.tiles;
      count += o.units;
    }
  }
  switch (variant) {
    case 1: return slice_lab<2>(p, grid, smem, ctx);
    case 2: return slice_lab<4>(p, grid, smem, ctx);
    case 4: return m <= 8 ? slice_f16_lab<2, 2, 2>(p, grid, smem, ctx) : slice_nt<kFmtQ4_0, 32>(p, grid, smem, ctx);
    case 5:
      return m <= 8 ? slice_f16_lab<3, 2, 2, false, true>(p, grid, smem, ctx) : slice_nt<kFmtQ4_0, 32>(p, grid, smem, ctx);
    case 6:
      return m <= 8 ? slice_f16_lab<3, 2, 2, false, true, true>(p, grid, smem, ctx)
                    : slice_nt<kFmtQ4_0, 32>(p, grid, smem, ctx);
    case 7:
      return m <= 8 ? slice_f16_lab<2, 2, 2, false, true, true>(p, grid, smem, ctx)
                    : slice_nt<kFmtQ4_0, 32>(p, grid, smem, ctx);
    case 8:
      return m <= 8 ? slice_f16_lab<3, 2, 2, true, true, true>(p, grid, smem, ctx)
                    : slice_nt<kFmtQ4_0, 32>(p, grid, smem, ctx);
    case 9:
      return m <= 8 ? slice_f16_lab<2, 2, 2, true, true, true>(p, grid, smem, ctx)
                    : slice_nt<kFmtQ4_0, 32>(p, grid, smem, ctx);
    case 14: return slice_f16_ring_lab<4, 2>(p, grid, smem, ctx);
    case 17: return slice_f16_ring_lab<4, 2, true>(p, grid, smem, ctx);
    case 18: return slice_f16_ring_lab<4, 2, false, true>(p, grid, smem, ctx);
    case 19:
      if (m == 1) {
        return slice_f16_launch<kFmtQ4_0, 32, 1, 2, false, true, false, 4, kSliceWarps, 1, false, false, true>(p, grid, smem,
                                                                                                         ctx);
      }
      return slice_f16_ring_lab<4, 2>(p, grid, smem, ctx);
    case 10:
    case 16: return m <= 8 ? slice_f16_ring_lab<4, 2>(p, grid, smem, ctx) : slice_nt<kFmtQ4_0, 32>(p, grid, smem, ctx);
    case 11:
    case 15: return m <= 8 ? slice_f16_ring_lab<3, 2>(p, grid, smem, ctx) : slice_nt<kFmtQ4_0, 32>(p, grid, smem, ctx);
    case 12: return m <= 8 ? slice_f16_ring16_lab<4>(p, grid, smem, ctx) : slice_nt<kFmtQ4_0, 32>(p, grid, smem, ctx);
    case 13: return m <= 8 ? slice_f16_ring16_lab<6>(p, grid, smem, ctx) : slice_nt<kFmtQ4_0, 32>(p, grid, smem, ctx);
    default: break;
  }
  const int group = w.group_size;
  if (cfg.f16 && variant < 0) {
    if (w.scale_fp16) return slice_f16_group<kFmtQ4_0>(p, group, grid, smem, ctx, cfg.i8);
    return w.zeros != nullptr ? slice_f16_group<kFmtI4Z>(p, group, grid, smem, ctx, cfg.i8)
                              : slice_f16_group<kFmtI4>(p, group, grid, smem, ctx, cfg.i8);
  }
  if (four) {
    if (w.scale_fp16) return slice_group<kFmtQ4_0>(p, group, grid, smem, ctx);
    return w.zeros != nullptr ? slice_group<kFmtI4Z>(p, group, grid, smem, ctx)
                              : slice_group<kFmtI4>(p, group, grid, smem, ctx);
  }
  if (w.scale_fp16) return slice_group<kFmtQ8_0>(p, group, grid, smem, ctx);
  return w.zeros != nullptr ? slice_group<kFmtI8Z>(p, group, grid, smem, ctx)
                            : slice_group<kFmtI8>(p, group, grid, smem, ctx);
}

}  // namespace

cudaError_t launch_gemv_slice(std::span<const GemvTarget> outs, const float* x, int m, const GemvScratch& scratch,
                              int force_slices, const LaunchContext& ctx, bool int8_x) {
  return slice_dispatch(outs, x, m, scratch, force_slices, -1, ctx, nullptr, int8_x);
}

cudaError_t launch_gemv_slice_gelu(const GemvTarget& out, const float* gate, const float* up, int m,
                                   const GemvScratch& scratch, const LaunchContext& ctx, bool int8_x) {
  if (gate == nullptr || up == nullptr) return cudaErrorInvalidValue;
  const cudaError_t e =
      slice_dispatch(std::span<const GemvTarget>(&out, 1), gate, m, scratch, 0, -1, ctx, up, int8_x);
  return e == cudaErrorInvalidValue ? cudaErrorNotSupported : e;  // x of one group unit too large: two ops
}

int gemv_slice_lab_variants() { return 20; }

const char* gemv_slice_lab_variant_name(int v) {
  static const char* kNames[] = {"bf16 hi+lo B (production before the fp16 kernel)",
                                 "bf16, P2 at every M",
                                 "bf16, P4 to M = 8, P2 above",
                                 "bf16, next grid released at kernel start",
                                 "f16 B, P2 to M = 8",
                                 "f16 B, P3 to M = 2, P2 to 8, M = 1 without token-1 sums (production before the ring)",
                                 "f16 B, as 5 with two mma chains per group",
                                 "f16 B, P2 to M = 8, M = 1 without token-1 sums, two chains",
                                 "f16 hi+lo B, P3 to M = 2, P2 to 8, M = 1 without token-1 sums, two chains",
                                 "f16 hi+lo B, P2 to M = 8, M = 1 without token-1 sums, two chains",
                                 "f16 B, shared-memory ring of 4 slots per warp, 2 CTAs/SM, every output planned for the whole GPU",
                                 "f16 B, ring of 3 slots, 2 CTAs/SM",
                                 "f16 B, ring of 4 slots, one CTA of 16 warps per SM",
                                 "f16 B, ring of 6 slots, one CTA of 16 warps per SM",
                                 "f16 B, ring of 4, grouped outputs planned for their share of the CTAs (production)",
                                 "f16 B, ring of 3, grouped outputs planned for their share of the CTAs",
                                 "f16 B, ring of 4, grouped outputs: slices as separate, CTAs per slice from the share",
                                 "f16 B, ring of 4, share plan, codes with their offset, offset x Σx by an mma",
                                 "ring of 4, share plan, M = 1: x as int8 per 32-block, one IMMA m16n8k32 per block and tile",
                                 "production at M = 1 without the decode and mma (skeleton: loads, staging, epilogue; wrong results)"};
  return v >= 0 && v < gemv_slice_lab_variants() ? kNames[v] : "unknown";
}

cudaError_t launch_gemv_slice_lab(std::span<const GemvTarget> outs, const float* x, int m, int variant,
                                  const GemvScratch& scratch, const LaunchContext& ctx) {
  if (variant < 0 || variant >= gemv_slice_lab_variants()) return cudaErrorInvalidValue;
  return slice_dispatch(outs, x, m, scratch, 0, variant, ctx);
}

}  // namespace ge::cuda
