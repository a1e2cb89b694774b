// Tensor-core GEMV for the tiled layouts, per-CTA work-item schedule (v4: tile pair x K-split items,
// weights in flight in registers or a cp.async ring, one CTA barrier per item), and the dispatch
// between it, the stream-K (gemv_stream.cu) and the K-slice (gemv_slice.cu) schedules by measured
// speed. Decode and mma helpers are shared through gemv_tiled.cuh.
#include "backend/cuda/gemv_tiled.cuh"

#include <algorithm>

namespace ge::cuda {
namespace {

constexpr int kMaxWarps = 8;
// Production configuration of the tiled kernel (kernel-lab variants in launch_gemv_tiled_lab).
constexpr int kPrefetch = 3;   // slots (two 16-byte loads per lane each) in flight per warp
constexpr int kMinBlocks = 2;  // CTAs per SM the register budget is sized for

struct TiledParams {
  WeightView w;
  const float* x;        // [m, cols]
  float* y;              // [m, rows]
  const uint4* xfrag;    // fragments in global memory, or null: the kernel stages them in shared memory
  const float* xsum;     // per-group sums of x in global memory (with xfrag)
  float* split_partial;  // [n_pairs][splits][32][m] when splits > 1
  int* split_count;      // [n_pairs], zero between launches
  int m;
  int warps;   // warps per CTA; each owns a K-slice of every work item
  int splits;  // K-splits per tile pair (load balance across CTAs)
  int items;   // n_pairs * splits
};

// cp.async path (async_copy, cuda_common.cuh): weights go straight from L2 into a per-warp shared-memory
// ring, so the bytes in flight no longer cost registers (more CTAs per SM, deeper prefetch).

// One ring stage: each lane's 16 bytes of both tiles, and the 8 scale (zero) words per tile and
// group that lanes (g, t) share (copied once by lane t = 0).
struct AsyncStage {
  uint4 q[2][32];
  uint32_t s[2][2][8];
  uint32_t z[2][2][8];
};

template <int kFmt, int kG>
__device__ __forceinline__ void issue_stage(const WeightView& w, int pair, int c, int lane, int g, int t,
                                            AsyncStage& st) {
  using F = FormatTraits<kFmt>;
  constexpr int kChunkK = F::kBits == 4 ? 64 : 32;
  constexpr int kGpc = kChunkK > kG ? kChunkK / kG : 1;
  const int64_t tile0 = 2 * int64_t{pair};
  const uint4* qa = w.codes + (tile0 * w.n_chunks + c) * 32 + lane;
  async_copy::copy16_stream(&st.q[0][lane], qa);
  async_copy::copy16_stream(&st.q[1][lane], qa + int64_t{w.n_chunks} * 32);
  if (t == 0) {
    const int grp = c * kChunkK / kG;
    const int64_t mi = (tile0 * w.n_groups + grp) * 8 + g;
    const int64_t tile_stride = int64_t{w.n_groups} * 8;
#pragma unroll
    for (int tt = 0; tt < 2; ++tt) {
#pragma unroll
      for (int j = 0; j < kGpc; ++j) {
        async_copy::copy4(&st.s[tt][j][g], w.scales + mi + tt * tile_stride + 8 * j);
        if constexpr (F::kZero != kZeroNone) async_copy::copy4(&st.z[tt][j][g], w.zeros + mi + tt * tile_stride + 8 * j);
      }
    }
  }
}

// K-slice [lo, hi) (chunks) of warp `warp` within split `s`: whole groups, split evenly.
__device__ __forceinline__ void warp_slice(int n_gu, int cpg, int splits, int s, int warps, int warp, int* lo,
                                           int* hi) {
  const int s0 = s * n_gu / splits, s1 = (s + 1) * n_gu / splits;
  const int len = s1 - s0;
  *lo = (s0 + warp * len / warps) * cpg;
  *hi = (s0 + (warp + 1) * len / warps) * cpg;
}

// Persistent CTAs over work items (tile pair, K-split). Warp w owns a fixed K-slice of each item and
// runs both 16-row tiles of the pair through the tensor cores with the same x fragments (two
// independent mma chains). Weights stream kPrefetch slots ahead across item boundaries. At an
// item's end the warps park partial sums in shared memory and meet at one barrier; a rotating
// warp sums them and writes y, or, for a K-split, a partial that the last split to finish adds up
// (fixed order: deterministic).
template <int kFmt, int kG, int kNT, int kP = kPrefetch, int kMinB = kMinBlocks, bool kSkeleton = false,
          bool kAsync = false>
static __global__ void __launch_bounds__(kMaxWarps * 32, kMinB) gemv_tiled_kernel(TiledParams p) {
  using F = FormatTraits<kFmt>;
  constexpr int kBits = F::kBits;
  constexpr int kSteps = kBits == 4 ? 4 : 2;  // k-steps per chunk
  constexpr int kChunkK = kSteps * 16;
  constexpr int kKsg = kG / 16;  // k-steps per group
  constexpr int kGpc = kChunkK > kG ? kChunkK / kG : 1;
  constexpr int kCpg = kG > kChunkK ? kG / kChunkK : 1;
  extern __shared__ __align__(16) unsigned char smem[];
  const WeightView& w = p.w;
  const int m = p.m, W = p.warps, S = p.splits;
  const int n_chunks = w.n_chunks;
  const int64_t ksteps = int64_t{n_chunks} * kSteps;
  const bool staged = p.xfrag == nullptr;

  uint4* xf_s = reinterpret_cast<uint4*>(smem);
  float* xsum_s = reinterpret_cast<float*>(xf_s + (staged ? ksteps * m * 4 : 0));
  float4* part = reinterpret_cast<float4*>(
      xsum_s + ((staged && F::kZero == kZeroFloat) ? int64_t{w.n_groups} * 16 : 0));
  const uint4* xf = staged ? xf_s : p.xfrag;
  const float* xs = staged ? xsum_s : p.xsum;

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int n_gu = n_chunks / kCpg;
  AsyncStage* ring = reinterpret_cast<AsyncStage*>(part + 2 * W * 2 * kNT * 32) + warp * kP;

  // Units (chunks) this warp processes over all its items.
  int total = 0;
  for (int it = blockIdx.x; it < p.items; it += gridDim.x) {
    int lo, hi;
    warp_slice(n_gu, kCpg, S, it % S, W, warp, &lo, &hi);
    total += hi - lo;
  }

  // Loader cursor and prologue (weights do not depend on the previous kernel).
  int ld_item = blockIdx.x, ld_c = 0, ld_hi = 0;
  if (ld_item < p.items) warp_slice(n_gu, kCpg, S, ld_item % S, W, warp, &ld_c, &ld_hi);
  Slot slot[kAsync ? 1 : kP];
#pragma unroll
  for (int i = 0; i < kP; ++i) {
    if (i < total) {
      if constexpr (kAsync) {
        issue_stage<kFmt, kG>(w, ld_item / S, ld_c, lane, g, t, ring[i]);
      } else {
        load_slot<kFmt, kG>(w, ld_item / S, ld_c, lane, g, slot[i]);
      }
      if (++ld_c == ld_hi) {
        ld_item += gridDim.x;
        if (ld_item < p.items) warp_slice(n_gu, kCpg, S, ld_item % S, W, warp, &ld_c, &ld_hi);
      }
    }
    if constexpr (kAsync) async_copy::commit();
  }

  grid_dependency_wait();
  if (staged) {
    build_fragments(p.x, w.cols, 0, m, ksteps, w.n_groups, kG, F::kZero == kZeroFloat, xf_s, xsum_s, threadIdx.x,
                    blockDim.x);
  }
  __syncthreads();
  grid_dependency_release();

  // B fragment pointers of this lane: token n = g (+ 8 for the second n-tile).
  const bool has_n0 = g < m, has_n1 = g + 8 < m;
  const uint4* xlane = xf + g * 4 + t;
  const int64_t xstride = int64_t{m} * 4;  // uint4 per k-step

  float acc[2][kNT][4], d[2][kNT][4];
#pragma unroll
  for (int tt = 0; tt < 2; ++tt) {
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[tt][nt][j] = d[tt][nt][j] = 0.0f;
    }
  }
  int item = blockIdx.x, c = 0, c_hi = 0, iter = 0;
  if (item < p.items) warp_slice(n_gu, kCpg, S, item % S, W, warp, &c, &c_hi);

  for (int ub = 0; ub < total; ub += kP) {
#pragma unroll
    for (int i = 0; i < kP; ++i) {
      if (ub + i < total) {
        if constexpr (kAsync) {  // this slot's copies are the oldest group in flight
          async_copy::wait<kP - 1>();
          __syncwarp();
          AsyncStage& st = ring[i];
#pragma unroll
          for (int tt = 0; tt < 2; ++tt) {
            slot[0].q[tt] = st.q[tt][lane];
#pragma unroll
            for (int j = 0; j < kGpc; ++j) {
              slot[0].s[tt][j] = st.s[tt][j][g];
              if constexpr (F::kZero != kZeroNone) slot[0].z[tt][j] = st.z[tt][j][g];
            }
          }
        }
        Slot& sl = slot[kAsync ? 0 : i];
        uint32_t bias[2][2] = {{kBf2_128, kBf2_128}, {kBf2_128, kBf2_128}};
        if constexpr (F::kZero == kZeroInt) {
#pragma unroll
          for (int tt = 0; tt < 2; ++tt) {
            const float zl = static_cast<float>(static_cast<int8_t>(sl.z[tt][0] & 0xffu));
            const float zh = static_cast<float>(static_cast<int8_t>((sl.z[tt][0] >> 16) & 0xffu));
            bias[tt][0] = pack_bf16x2(128.0f + zl, 128.0f + zl);
            bias[tt][1] = pack_bf16x2(128.0f + zh, 128.0f + zh);
          }
        }
        const uint4* xk = xlane + int64_t{c} * kSteps * xstride;
        if constexpr (kSkeleton) {  // kernel lab: memory traffic and control only
          acc[0][0][0] += __uint_as_float((sl.q[0].x ^ sl.q[0].y ^ sl.q[0].z ^ sl.q[0].w ^ sl.q[1].x ^ sl.q[1].w ^
                                         sl.s[0][0] ^ sl.s[1][0]) & 0x3fffffffu);
        }
        if constexpr (!kSkeleton) {
#pragma unroll
        for (int s = 0; s < kSteps; ++s) {
          uint4 b[kNT];
          b[0] = has_n0 ? xk[s * xstride] : make_uint4(0u, 0u, 0u, 0u);
          if constexpr (kNT == 2) b[1] = has_n1 ? xk[s * xstride + 32] : make_uint4(0u, 0u, 0u, 0u);
#pragma unroll
          for (int tt = 0; tt < 2; ++tt) {
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
          // Group end: fold this group's sums into the fp32 accumulators with its scale (and
          // the zero-point term). Compile-time when groups fit in a chunk, per chunk otherwise.
          bool flush;
          if constexpr (kKsg <= kSteps) {
            flush = (s + 1) % kKsg == 0;
          } else {
            flush = s == kSteps - 1 && (c + 1) % kCpg == 0;
          }
          if (flush) {
            const int j = kGpc == 2 ? s / kKsg : 0;  // which group of the chunk
            const int grp = (c * kSteps + s) / kKsg;
#pragma unroll
            for (int tt = 0; tt < 2; ++tt) {
              const GroupScale gs = group_scale<kFmt>(sl.s[tt][j], F::kZero == kZeroFloat ? sl.z[tt][j] : 0u);
              flush_group<kFmt, kNT>(gs, xs + int64_t{grp} * 16, t, acc[tt], d[tt]);
            }
          }
        }
        }  // !kSkeleton
        // Refill the slot kP units ahead (possibly from the next item).
        if (ub + i + kP < total) {
          if constexpr (kAsync) {
            __syncwarp();  // every lane has read the stage before it is refilled
            issue_stage<kFmt, kG>(w, ld_item / S, ld_c, lane, g, t, ring[i]);
          } else {
            load_slot<kFmt, kG>(w, ld_item / S, ld_c, lane, g, sl);
          }
          if (++ld_c == ld_hi) {
            ld_item += gridDim.x;
            if (ld_item < p.items) warp_slice(n_gu, kCpg, S, ld_item % S, W, warp, &ld_c, &ld_hi);
          }
        }
        if constexpr (kAsync) async_copy::commit();
        if (++c == c_hi) {  // end of this warp's slice of the item
          const int ps = iter & 1;
#pragma unroll
          for (int tt = 0; tt < 2; ++tt) {
#pragma unroll
            for (int nt = 0; nt < kNT; ++nt) {
              part[(((ps * W + warp) * 2 + tt) * kNT + nt) * 32 + lane] =
                  make_float4(acc[tt][nt][0], acc[tt][nt][1], acc[tt][nt][2], acc[tt][nt][3]);
#pragma unroll
              for (int jj = 0; jj < 4; ++jj) acc[tt][nt][jj] = 0.0f;
            }
          }
          __syncthreads();
          if (warp == iter % W) {
            // Output (row r of the pair, token n): tile r/16, lane (r%8)·4 + (n%8)/2, component
            // ((r%16)/8)·2 + n%2 of n-tile n/8.
            const int pair = item / S, split = item % S;
            const float* pf = reinterpret_cast<const float*>(part);
            for (int o = lane; o < 32 * m; o += 32) {
              const int n = o % m, r = o / m;
              const int tt = r >> 4, rr = r & 15;
              const int ln = (rr & 7) * 4 + ((n & 7) >> 1);
              const int comp = (rr >> 3) * 2 + (n & 1);
              float sum = 0.0f;
              for (int wi = 0; wi < W; ++wi) {
                sum += pf[((((ps * W + wi) * 2 + tt) * kNT + (n >> 3)) * 32 + ln) * 4 + comp];
              }
              if (S == 1) {
                const int64_t row = int64_t{pair} * 32 + r;
                if (row < w.rows) p.y[int64_t{n} * w.rows + row] = sum;
              } else {
                p.split_partial[((int64_t{pair} * S + split) * 32 + r) * m + n] = sum;
              }
            }
            if (S > 1) {
              __threadfence();
              __syncwarp();
              int old = 0;
              if (lane == 0) old = atomicAdd(p.split_count + pair, 1);
              old = __shfl_sync(0xffffffffu, old, 0);
              if (old == S - 1) {  // last split of this pair: add the partials in split order
                __threadfence();
                for (int o = lane; o < 32 * m; o += 32) {
                  const int n = o % m, r = o / m;
                  const int64_t row = int64_t{pair} * 32 + r;
                  float sum = 0.0f;
                  for (int sp = 0; sp < S; ++sp) sum += __ldcg(p.split_partial + ((int64_t{pair} * S + sp) * 32 + r) * m + n);
                  if (row < w.rows) p.y[int64_t{n} * w.rows + row] = sum;
                }
                if (lane == 0) atomicExch(p.split_count + pair, 0);
              }
            }
          }
          ++iter;
          item += gridDim.x;
          if (item < p.items) warp_slice(n_gu, kCpg, S, item % S, W, warp, &c, &c_hi);
        }
      }
    }
  }
}

template <int kFmt, int kG, int kNT, int kP = kPrefetch, int kMinB = kMinBlocks, bool kSkeleton = false,
          bool kAsync = false>
cudaError_t launch_one(const TiledParams& p, int ctas_per_sm, size_t smem, const LaunchContext& ctx) {
  auto kernel = gemv_tiled_kernel<kFmt, kG, kNT, kP, kMinB, kSkeleton, kAsync>;
  if (kAsync) smem += static_cast<size_t>(p.warps) * kP * sizeof(AsyncStage);
  static bool configured = false;  // lab variants raise their shared-memory limit on first use
  if (!configured) {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024);
    if (e != cudaSuccess) return e;
    configured = true;
  }
  const int threads = p.warps * 32;
  int occ = ctas_per_sm;
  if (occ <= 0) {
    cudaError_t e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, kernel, threads, smem);
    if (e != cudaSuccess) return e;
    occ = occ < 1 ? 1 : occ;
  }
  const int64_t max_ctas = int64_t{occ} * (ctx.num_sms > 0 ? ctx.num_sms : 1);
  const int grid = static_cast<int>(p.items < max_ctas ? p.items : max_ctas);
  return launch_pdl(kernel, dim3(static_cast<unsigned>(grid)), threads, smem, p, ctx);
}

// Item schedule (v4) instantiations: M <= 8 with x staged in shared memory takes the cp.async ring
// (3 CTAs per SM); everything else the register-prefetch kernel (2 CTAs per SM).
constexpr int kAsyncPrefetch = 3;
constexpr int kAsyncMinBlocks = 3;

template <int kFmt, int kG>
cudaError_t items_nt(const TiledParams& p, int nt, bool async, int occ, size_t smem, const LaunchContext& ctx) {
  if (nt == 1 && async) return launch_one<kFmt, kG, 1, kAsyncPrefetch, kAsyncMinBlocks, false, true>(p, occ, smem, ctx);
  return nt == 1 ? launch_one<kFmt, kG, 1>(p, occ, smem, ctx) : launch_one<kFmt, kG, 2>(p, occ, smem, ctx);
}

template <int kFmt>
cudaError_t items_group(const TiledParams& p, int nt, bool async, int occ, size_t smem, const LaunchContext& ctx) {
  if constexpr (kFmt == kFmtQ4_0 || kFmt == kFmtQ8_0) {
    return items_nt<kFmt, 32>(p, nt, async, occ, smem, ctx);
  } else {
    switch (p.w.group_size) {
      case 32: return items_nt<kFmt, 32>(p, nt, async, occ, smem, ctx);
      case 64: return items_nt<kFmt, 64>(p, nt, async, occ, smem, ctx);
      case 128: return items_nt<kFmt, 128>(p, nt, async, occ, smem, ctx);
      default: return cudaErrorInvalidValue;
    }
  }
}

// Fraction of the resident-CTA slots that `items` work items keep busy over their rounds.
double fill_efficiency(int64_t items, int capacity) {
  const int64_t rounds = (items + capacity - 1) / capacity;
  return static_cast<double>(items) / static_cast<double>(rounds * capacity);
}

// K-splits per tile pair: the fewest (1..8) whose items fill the resident CTAs to >= 90%, else the
// best filling; every warp must keep at least one whole group of each split. Splits cost an extra
// partial-sum pass, so fewer is better at equal balance.
int choose_splits(int n_pairs, int n_gu, int capacity) {
  int best = 1;
  double best_eff = 0.0;
  for (int s = 1; s <= 8; ++s) {
    if (n_gu / s < std::min(kMaxWarps, n_gu)) break;
    const double eff = fill_efficiency(int64_t{n_pairs} * s, capacity);
    if (eff >= 0.9) return s;
    if (eff > best_eff + 0.02) {
      best_eff = eff;
      best = s;
    }
  }
  return best;
}

}  // namespace

namespace {

struct TiledLaunch {
  TiledParams p;
  size_t smem = 0;
  int nt = 1;
  int fmt = kFmtQ4_0;
  bool staged = true;
};

// Work split, scratch and shared-memory size of one tiled GEMV (also builds global x fragments
// when they do not fit in shared memory).
cudaError_t prepare_tiled(const WeightView& w, const float* x, int m, float* y, const GemvScratch& scratch,
                          int ctas_per_sm, int force_splits, const LaunchContext& ctx, TiledLaunch* out) {
  const bool four = w.layout == WeightLayout::kTiled4;
  const int steps_per_chunk = four ? 4 : 2;
  const int chunk_k = steps_per_chunk * 16;
  const int nt = m <= 8 ? 1 : 2;
  const int64_t ksteps = int64_t{w.n_chunks} * steps_per_chunk;
  const bool float_zero = four && w.zeros != nullptr;
  if (four) {
    out->fmt = w.scale_fp16 ? kFmtQ4_0 : (w.zeros != nullptr ? kFmtI4Z : kFmtI4);
  } else {
    out->fmt = w.scale_fp16 ? kFmtQ8_0 : (w.zeros != nullptr ? kFmtI8Z : kFmtI8);
  }
  const int cpg = w.group_size > chunk_k ? w.group_size / chunk_k : 1;
  const int n_gu = w.n_chunks / cpg;  // whole-group units along K
  const int n_pairs = w.n_tiles / 2;  // the packer pads the tile count to even

  const size_t frag_bytes = static_cast<size_t>(ksteps) * m * 64;
  const size_t sum_bytes = float_zero ? static_cast<size_t>(w.n_groups) * 16 * 4 : 0;
  const bool staged = frag_bytes + sum_bytes <= kMaxStagedFragBytes;

  // Work split: the resident CTAs share tile pairs x K-splits evenly.
  const int capacity = ctas_per_sm * std::max(ctx.num_sms, 1);
  const int splits = force_splits > 0 ? force_splits : choose_splits(n_pairs, n_gu, capacity);
  const int warps = std::max(1, std::min(kMaxWarps, n_gu / splits));
  const size_t part_bytes = static_cast<size_t>(2) * warps * 2 * nt * 32 * 16;

  TiledParams& p = out->p;
  p.w = w;
  p.x = x;
  p.y = y;
  p.m = m;
  p.warps = warps;
  p.splits = splits;
  p.items = n_pairs * splits;
  p.xfrag = nullptr;
  p.xsum = nullptr;
  p.split_partial = nullptr;
  p.split_count = nullptr;
  if (splits > 1) {
    if (scratch.split_partial == nullptr || scratch.split_count == nullptr) return cudaErrorInvalidValue;
    const size_t need = static_cast<size_t>(p.items) * 32 * m * 4;
    if (!scratch.split_partial->ensure(need, "gemv split partials").is_ok()) return cudaErrorMemoryAllocation;
    const size_t counts = static_cast<size_t>(n_pairs) * 4;
    if (scratch.split_count->bytes() < counts) {
      if (!scratch.split_count->allocate(counts, "gemv split counters").is_ok()) return cudaErrorMemoryAllocation;
      cudaError_t e = cudaMemsetAsync(scratch.split_count->get(), 0, counts, ctx.stream);
      if (e != cudaSuccess) return e;
    }
    p.split_partial = scratch.split_partial->as<float>();
    p.split_count = scratch.split_count->as<int>();
  }
  if (!staged) {
    // Fragments built once into global memory; the GEMV reads them through L1/L2.
    if (scratch.fragments == nullptr) return cudaErrorInvalidValue;
    const size_t need = frag_bytes + sum_bytes + 16;
    if (!scratch.fragments->ensure(need, "gemv fragments").is_ok()) return cudaErrorMemoryAllocation;
    uint4* frag = scratch.fragments->as<uint4>();
    float* xsum = reinterpret_cast<float*>(frag + ksteps * m * 4);
    const int64_t items = std::max<int64_t>(ksteps * m * 4, int64_t{w.n_groups} * 16);
    build_fragments_kernel<<<blocks_for(items, 256, 4096), 256, 0, ctx.stream>>>(
        x, w.cols, m, ksteps, w.n_groups, w.group_size, float_zero, frag, xsum);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    p.xfrag = frag;
    p.xsum = xsum;
  }
  out->smem = (staged ? frag_bytes + sum_bytes : 0) + part_bytes;
  out->nt = nt;
  out->staged = staged;
  return cudaSuccess;
}

// Whether the cp.async ring fits kAsyncMinBlocks CTAs per SM for this weight and m.
bool async_fits(const WeightView& w, int m) {
  if (m > 8) return false;
  const bool four = w.layout == WeightLayout::kTiled4;
  const int64_t ksteps = int64_t{w.n_chunks} * (four ? 4 : 2);
  const size_t frag = static_cast<size_t>(ksteps) * m * 64 +
                      (four && w.zeros != nullptr ? static_cast<size_t>(w.n_groups) * 64 : 0);
  if (frag > kMaxStagedFragBytes) return false;
  const size_t part = static_cast<size_t>(2) * kMaxWarps * 2 * 32 * 16;
  const size_t ring = static_cast<size_t>(kMaxWarps) * kAsyncPrefetch * sizeof(AsyncStage);
  return (frag + part + ring) * kAsyncMinBlocks <= 227 * 1024;
}

}  // namespace

namespace {

// The item schedule (v4): persistent CTAs over (tile pair, K-split) items, warps meeting at a CTA
// barrier per item. Variant (kernel lab, Q4_0 M = 1): 0 registers, 1 cp.async ring, 9 skeleton,
// anything else the production choice.
cudaError_t launch_items(const WeightView& w, const float* x, int m, float* y, const GemvScratch& scratch,
                         const GemvTuning& tune, const LaunchContext& ctx, int variant = -1) {
  const int sms = std::max(ctx.num_sms, 1);
  bool async = tune.ctas_per_sm == 0 && async_fits(w, m) &&
               fill_efficiency(w.n_tiles / 2, kAsyncMinBlocks * sms) >= 0.8;
  if (variant == 0 || variant == 9) async = false;
  if (variant == 1) async = true;
  const int ctas = tune.ctas_per_sm > 0 ? tune.ctas_per_sm : (async ? kAsyncMinBlocks : kMinBlocks);
  TiledLaunch L;
  cudaError_t e = prepare_tiled(w, x, m, y, scratch, ctas, async ? 1 : 0, ctx, &L);
  if (e != cudaSuccess) return e;
  const int occ = tune.ctas_per_sm;
  if (variant == 9) return launch_one<kFmtQ4_0, 32, 1, kPrefetch, kMinBlocks, true, false>(L.p, 0, L.smem, ctx);
  switch (L.fmt) {
    case kFmtQ4_0: return items_group<kFmtQ4_0>(L.p, L.nt, async, occ, L.smem, ctx);
    case kFmtI4: return items_group<kFmtI4>(L.p, L.nt, async, occ, L.smem, ctx);
    case kFmtI4Z: return items_group<kFmtI4Z>(L.p, L.nt, async, occ, L.smem, ctx);
    case kFmtQ8_0: return items_group<kFmtQ8_0>(L.p, L.nt, async, occ, L.smem, ctx);
    case kFmtI8: return items_group<kFmtI8>(L.p, L.nt, async, occ, L.smem, ctx);
    default: return items_group<kFmtI8Z>(L.p, L.nt, async, occ, L.smem, ctx);
  }
}

int g_schedule_override = 0;  // kernel lab: 0 measured choice, 1 items, 2 stream-K

// Which schedule runs a weight at m (dev/cuda/NOTES.md, v5): stream-K only where it measured
// faster than the item schedule on both H100 and H200, the tall M = 1 products (gate/up 21504 rows,
// the LM head); items everywhere else, every M > 1 included.
int schedule_of(const GemvTuning& tune) { return tune.schedule != 0 ? tune.schedule : g_schedule_override; }

bool use_stream(const WeightView& w, int m, int sched) {
  if (sched != 0) return sched == 2;
  return m == 1 && w.rows >= 21504;
}

// The K-slice schedule (x staged per slice in shared memory) everywhere: measured faster than the
// item and stream-K schedules at every M on the Gemma 4 31B token (dev/cuda/NOTES.md, K-slice).
bool use_slice(const WeightView& w, int m, int sched) {
  (void)w, (void)m;
  if (sched != 0) return sched == 3;
  return true;
}

}  // namespace

cudaError_t configure_gemv_kernels() { return configure_gemv_stream_kernels(); }

cudaError_t launch_gemv_tiled(const WeightView& w, const float* x, int m, float* y, const GemvScratch& scratch,
                              const GemvTuning& tune, const LaunchContext& ctx) {
  const int sched = schedule_of(tune);
  if (use_slice(w, m, sched)) {
    const GemvTarget target{&w, y};
    const cudaError_t e =
        launch_gemv_slice(std::span<const GemvTarget>(&target, 1), x, m, scratch, 0, ctx, tune.int8_x);
    if (e != cudaErrorInvalidValue) return e;  // otherwise x of one group unit is too large: items
  }
  if (use_stream(w, m, sched)) return launch_gemv_stream(w, x, m, y, scratch, tune.ctas_per_sm, ctx);
  return launch_items(w, x, m, y, scratch, tune, ctx);
}

cudaError_t launch_gemv_tiled_group(std::span<const GemvTarget> outs, const float* x, int m,
                                    const GemvScratch& scratch, const GemvTuning& tune, const LaunchContext& ctx) {
  if (outs.empty() || outs.size() > static_cast<size_t>(kGemvMaxOutputs) || m < 1 || m > kGemvMaxM) {
    return cudaErrorNotSupported;
  }
  const int sched = schedule_of(tune);
  for (const GemvTarget& t : outs) {
    const WeightView& w = *t.w;
    if (w.layout != WeightLayout::kTiled4 && w.layout != WeightLayout::kTiled8) return cudaErrorNotSupported;
    if (!gemv_slice_compatible(*outs[0].w, w) || !use_slice(w, m, sched)) return cudaErrorNotSupported;
  }
  const cudaError_t e = launch_gemv_slice(outs, x, m, scratch, 0, ctx, tune.int8_x);
  return e == cudaErrorInvalidValue ? cudaErrorNotSupported : e;
}

cudaError_t launch_gemv_tiled_gelu(const WeightView& w, const float* gate, const float* up, int m, float* y,
                                   const GemvScratch& scratch, const GemvTuning& tune, const LaunchContext& ctx) {
  if (m < 1 || m > kGemvMaxM || !use_slice(w, m, schedule_of(tune))) return cudaErrorNotSupported;
  return launch_gemv_slice_gelu(GemvTarget{&w, y}, gate, up, m, scratch, ctx, tune.int8_x);
}

void set_gemv_schedule_override(int schedule) { g_schedule_override = schedule; }
int gemv_schedule_override() { return g_schedule_override; }

int gemv_lab_variants() { return 12; }

const char* gemv_lab_variant_name(int v) {
  static const char* kNames[] = {"items: registers, prefetch 3, 2 CTAs/SM",
                                 "items: cp.async ring 3, 3 CTAs/SM, no K-split",
                                 "items: v4 production choice",
                                 "stream-K P4 W8 2/SM (production config)",
                                 "stream-K P4 W8 2/SM L2+16",
                                 "stream-K P4 W8 2/SM L2+32",
                                 "stream-K P4 W8 1/SM L2+16",
                                 "stream-K P4 W16 1/SM L2+16",
                                 "skeleton stream-K P4 W8 2/SM L2+16",
                                 "skeleton items: registers, prefetch 3",
                                 "stream-K global x fragments",
                                 "stream-K 4 K-slices"};
  return v >= 0 && v < 12 ? kNames[v] : "unknown";
}

cudaError_t launch_gemv_tiled_lab(const WeightView& w, const float* x, int m, float* y, int variant,
                                  const GemvScratch& scratch, const LaunchContext& ctx) {
  if (w.layout != WeightLayout::kTiled4 || !w.scale_fp16) return cudaErrorInvalidValue;  // Q4_0 only
  if (variant < 0 || variant >= 12 || m < 1 || m > kGemvMaxM) return cudaErrorInvalidValue;
  if (variant == 2) return launch_items(w, x, m, y, scratch, GemvTuning{}, ctx);
  if (variant <= 1 || variant == 9) {
    return m == 1 ? launch_items(w, x, 1, y, scratch, GemvTuning{}, ctx, variant) : cudaErrorNotSupported;
  }
  static const int kStreamVariant[] = {0, 0, 0, 0, 1, 2, 3, 4, 5, 0, 6, 7};
  return launch_gemv_stream_lab(w, x, m, y, kStreamVariant[variant], scratch, ctx);
}

}  // namespace ge::cuda
