// Stream-K schedule of the tensor-core GEMV (tiled layouts, M <= 16): every warp streams one
// contiguous, equal share of the weight with no CTA barrier, L2 prefetch runs ahead of the register
// slots, and split pairs are summed by the last warp to arrive in a fixed order (deterministic).
#include <algorithm>

#include "backend/cuda/gemv_tiled.cuh"

namespace ge::cuda {
namespace {

// ---- Stream-K schedule ----
// K is cut into S equal slices of whole groups (S = 1 unless the x fragments of the whole K would
// not fit in shared memory); each slice gets grid / S CTAs, which stage only that slice of x. In a
// slice, the units (tile pair, group) form one sequence in memory order and every warp owns one
// contiguous, equal share of it, so each warp streams a contiguous run of code bytes with kP
// chunks in flight and never waits for another warp. With S = 1 a pair that lies wholly inside one
// share is written straight from registers; otherwise each warp leaves its partial sums of the pair
// in global scratch, and the last warp to arrive (arrival counter) adds them in (slice, warp)
// order, so the result is the same bits on every run.
// L2 prefetch (no registers, no completion to wait for) of one chunk of a pair: both tiles' 512
// code bytes and, at a group start, the group's scale (zero) words. Lanes 0..5 issue one each.
__device__ __forceinline__ void prefetch_l2(const void* p, uint32_t bytes) {
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bytes) : "memory");
}

template <int kFmt, int kG>
__device__ __forceinline__ void prefetch_chunk(const WeightView& w, int pair, int c, int lane) {
  using F = FormatTraits<kFmt>;
  constexpr int kChunkK = F::kBits == 4 ? 64 : 32;
  constexpr int kGpc = kChunkK > kG ? kChunkK / kG : 1;
  constexpr int kCpg = kG > kChunkK ? kG / kChunkK : 1;
  const int64_t tile = 2 * int64_t{pair} + (lane & 1);
  if (lane < 2) {
    prefetch_l2(w.codes + (tile * w.n_chunks + c) * 32, 512);
  } else if (lane < 6 && c % kCpg == 0) {
    const uint32_t* meta = lane < 4 ? w.scales : w.zeros;
    if (lane < 4 || F::kZero != kZeroNone) {
      prefetch_l2(meta + (tile * w.n_groups + int64_t{c} * kChunkK / kG) * 8, 32 * kGpc);
    }
  }
}

struct StreamParams {
  WeightView w;
  const float* x;      // [m, cols]
  float* y;            // [m, rows]
  const uint4* xfrag;  // global fragments of the whole K, or null: each CTA stages its slice
  const float* xsum;
  float* partial;      // [slices][warps_per_slice][pairs_per_warp][32][m]
  int* count;          // [n_pairs], zero between launches
  int m;
  int slices;           // S
  int gps;              // groups (units) per pair and slice
  int64_t units;        // units per slice: n_pairs * gps
  int warps_per_slice;  // (grid / S) * warps per CTA, <= units
  int pairs_per_warp;   // partial slots per warp: the most pairs one share can touch
};

// First unit of warp lw's share (of a slice).
__device__ __forceinline__ int64_t share_begin(int64_t units, int nw, int64_t lw) { return units * lw / nw; }

// The warp whose share holds unit u.
__device__ __forceinline__ int share_owner(int64_t units, int nw, int64_t u) {
  int64_t lw = u * nw / units;
  while (lw + 1 < nw && share_begin(units, nw, lw + 1) <= u) ++lw;
  while (lw > 0 && share_begin(units, nw, lw) > u) --lw;
  return static_cast<int>(lw);
}

template <int kFmt, int kG, int kNT, int kP, int kW, int kMinB, bool kSkeleton, int kD>
static __global__ void __launch_bounds__(kW * 32, kMinB) gemv_stream_kernel(StreamParams p) {
  using F = FormatTraits<kFmt>;
  constexpr int kBits = F::kBits;
  constexpr int kSteps = kBits == 4 ? 4 : 2;  // k-steps per chunk
  constexpr int kChunkK = kSteps * 16;
  constexpr int kKsg = kG / 16;  // k-steps per group
  constexpr int kGpc = kChunkK > kG ? kChunkK / kG : 1;
  constexpr int kCpg = kG > kChunkK ? kG / kChunkK : 1;
  extern __shared__ __align__(16) unsigned char smem[];
  const WeightView& w = p.w;
  const int m = p.m;
  const int S = p.slices, gps = p.gps, nw = p.warps_per_slice;
  const int ctas_per_slice = static_cast<int>(gridDim.x) / S;
  const int slice = static_cast<int>(blockIdx.x) / ctas_per_slice;
  const int c_begin = slice * gps * kCpg, c_end = c_begin + gps * kCpg;  // this slice's chunks of a pair
  const bool staged = p.xfrag == nullptr;
  const int64_t ksteps_s = int64_t{gps} * kCpg * kSteps;
  uint4* xf_s = reinterpret_cast<uint4*>(smem);
  float* xsum_s = reinterpret_cast<float*>(xf_s + (staged ? ksteps_s * m * 4 : 0));
  // Chunk c's fragments: staged ones start at the slice, global ones at k = 0.
  const int c_base = staged ? c_begin : 0;
  const int grp_base = staged ? c_begin * kChunkK / kG : 0;
  const uint4* xf = staged ? xf_s : p.xfrag;
  const float* xs = staged ? xsum_s : p.xsum;

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int lw = (static_cast<int>(blockIdx.x) % ctas_per_slice) * kW + warp;
  const bool active = slice < S && lw < nw;  // the grid may hold more warps than units
  const int64_t u0 = active ? share_begin(p.units, nw, lw) : 0, u1 = active ? share_begin(p.units, nw, lw + 1) : 0;
  const int total = static_cast<int>((u1 - u0) * kCpg);  // chunks of this warp
  const int first_pair = static_cast<int>(u0 / gps);
  const int c_first = c_begin + static_cast<int>(u0 % gps) * kCpg;

  // Loader cursor and prologue (weights do not depend on the previous kernel).
  int ld_pair = first_pair, ld_c = c_first;
  Slot slot[kP];
#pragma unroll
  for (int i = 0; i < kP; ++i) {
    if (i < total) {
      load_slot<kFmt, kG>(w, ld_pair, ld_c, lane, g, slot[i]);
      if (++ld_c == c_end) {
        ld_c = c_begin;
        ++ld_pair;
      }
    }
  }

  // L2 prefetch kD chunks ahead of the compute cursor: bytes in flight beyond the register slots.
  int pf_pair = first_pair, pf_c = c_first;
  if constexpr (kD > 0) {
    for (int i = 0; i < kD && i < total; ++i) {
      prefetch_chunk<kFmt, kG>(w, pf_pair, pf_c, lane);
      if (++pf_c == c_end) {
        pf_c = c_begin;
        ++pf_pair;
      }
    }
  }
  // The next kernel may start its own prologue now: it waits for this grid to finish before it
  // reads anything this one writes (or the scratch both use).
  grid_dependency_release();
  grid_dependency_wait();
  if (staged && slice < S) {
    build_fragments(p.x, w.cols, int64_t{c_begin} * kChunkK, m, ksteps_s, int64_t{gps} * kCpg * kChunkK / kG, kG,
                    F::kZero == kZeroFloat, xf_s, xsum_s, threadIdx.x, blockDim.x);
    __syncthreads();
  }

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
  int pair = first_pair, c = c_first;

  for (int ub = 0; ub < total; ub += kP) {
#pragma unroll
    for (int i = 0; i < kP; ++i) {
      if (ub + i < total) {
        Slot& sl = slot[i];
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
        const uint4* xk = xlane + int64_t{c - c_base} * kSteps * xstride;
        if constexpr (kSkeleton) {  // kernel lab: memory traffic and control only
          acc[0][0][0] += __uint_as_float((sl.q[0].x ^ sl.q[0].y ^ sl.q[0].z ^ sl.q[0].w ^ sl.q[1].x ^ sl.q[1].w ^
                                           sl.s[0][0] ^ sl.s[1][0]) & 0x3fffffffu);
        } else {
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
            bool flush;
            if constexpr (kKsg <= kSteps) {
              flush = (s + 1) % kKsg == 0;
            } else {
              flush = s == kSteps - 1 && (c + 1) % kCpg == 0;
            }
            if (flush) {
              const int j = kGpc == 2 ? s / kKsg : 0;
              const int grp = (c * kSteps + s) / kKsg - grp_base;
#pragma unroll
              for (int tt = 0; tt < 2; ++tt) {
                const GroupScale gs = group_scale<kFmt>(sl.s[tt][j], F::kZero == kZeroFloat ? sl.z[tt][j] : 0u);
                flush_group<kFmt, kNT>(gs, xs + int64_t{grp} * 16, t, acc[tt], d[tt]);
              }
            }
          }
        }
        // Refill the slot kP chunks ahead (possibly in the next pair).
        if (ub + i + kP < total) {
          load_slot<kFmt, kG>(w, ld_pair, ld_c, lane, g, sl);
          if (++ld_c == c_end) {
            ld_c = c_begin;
            ++ld_pair;
          }
        }
        if constexpr (kD > 0) {
          if (ub + i + kD < total) {
            prefetch_chunk<kFmt, kG>(w, pf_pair, pf_c, lane);
            if (++pf_c == c_end) {
              pf_c = c_begin;
              ++pf_pair;
            }
          }
        }
        ++c;
        if (c == c_end || ub + i + 1 == total) {  // end of this warp's part of the pair
          const int64_t pu0 = int64_t{pair} * gps;
          const bool whole = S == 1 && pu0 >= u0 && pu0 + gps <= u1;
          // Accumulator (tile tt, n-tile nt, component j): row tt·16 + g + 8·(j/2), token 8·nt + 2t + j%2.
          if (whole) {
#pragma unroll
            for (int tt = 0; tt < 2; ++tt) {
#pragma unroll
              for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                  const int64_t row = int64_t{pair} * 32 + tt * 16 + g + 8 * (j >> 1);
                  const int n = nt * 8 + 2 * t + (j & 1);
                  if (n < m && row < w.rows) p.y[int64_t{n} * w.rows + row] = acc[tt][nt][j];
                }
              }
            }
          } else {
            const int64_t slot_of = (int64_t{slice} * nw + lw) * p.pairs_per_warp + (pair - first_pair);
            float* slot_out = p.partial + slot_of * 32 * m;
#pragma unroll
            for (int tt = 0; tt < 2; ++tt) {
#pragma unroll
              for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                  const int r = tt * 16 + g + 8 * (j >> 1);
                  const int n = nt * 8 + 2 * t + (j & 1);
                  if (n < m) __stcg(slot_out + r * m + n, acc[tt][nt][j]);
                }
              }
            }
            // Every slice has the same units and shares, so the same warps wa..wb hold this pair in
            // each slice.
            const int wa = share_owner(p.units, nw, pu0);
            const int wb = share_owner(p.units, nw, pu0 + gps - 1);
            __threadfence();
            __syncwarp();
            int old = 0;
            if (lane == 0) old = atomicAdd(p.count + pair, 1);
            old = __shfl_sync(0xffffffffu, old, 0);
            if (old == S * (wb - wa + 1) - 1) {  // last warp of this pair: add the partials in order
              __threadfence();
              for (int o = lane; o < 32 * m; o += 32) {
                const int n = o % m, r = o / m;
                float sum = 0.0f;
                for (int sv = 0; sv < S; ++sv) {
                  // Eight partials loaded before any is added (one L2 round trip, not eight);
                  // still added in warp order.
                  for (int v0 = wa; v0 <= wb; v0 += 8) {
                    float part[8];
#pragma unroll
                    for (int j = 0; j < 8; ++j) {
                      const int v = v0 + j;
                      part[j] = 0.0f;
                      if (v <= wb) {
                        const int vfirst = static_cast<int>(share_begin(p.units, nw, v) / gps);
                        const int64_t vslot = (int64_t{sv} * nw + v) * p.pairs_per_warp + (pair - vfirst);
                        part[j] = __ldcg(p.partial + (vslot * 32 + r) * m + n);
                      }
                    }
#pragma unroll
                    for (int j = 0; j < 8; ++j) {
                      if (v0 + j <= wb) sum += part[j];
                    }
                  }
                }
                const int64_t row = int64_t{pair} * 32 + r;
                if (row < w.rows) p.y[int64_t{n} * w.rows + row] = sum;
              }
              if (lane == 0) atomicExch(p.count + pair, 0);
            }
          }
#pragma unroll
          for (int tt = 0; tt < 2; ++tt) {
#pragma unroll
            for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
              for (int j = 0; j < 4; ++j) acc[tt][nt][j] = 0.0f;
            }
          }
          if (c == c_end) {
            c = c_begin;
            ++pair;
          }
        }
      }
    }
  }
}

// Production configuration of the stream-K kernel (kernel lab: dev/cuda/NOTES.md).
constexpr int kStreamPrefetch = 4;   // chunks (two 16-byte loads per lane each) in flight per warp
constexpr int kStreamWarps = 8;      // warps per CTA
constexpr int kStreamMinBlocks = 2;  // CTAs per SM the register budget is sized for
constexpr int kStreamL2Ahead = 0;    // chunks prefetched into L2 ahead (lab: 16-32 measured slower)

struct StreamLaunch {
  StreamParams p;
  size_t smem = 0;
  int nt = 1;
  int fmt = kFmtQ4_0;
  int n_pairs = 0;
};

// Format, K-slices and x fragments of one stream-K GEMV: the whole K staged per CTA when it fits in
// shared memory, else the fewest slices (dividing the groups of a pair) whose fragments fit, else
// fragments built once into global scratch. force_slices (kernel lab): > 0 that many slices, < 0 global
// fragments, 0 the automatic choice.
cudaError_t prepare_stream(const WeightView& w, const float* x, int m, float* y, const GemvScratch& scratch,
                           int force_slices, const LaunchContext& ctx, StreamLaunch* out) {
  const bool four = w.layout == WeightLayout::kTiled4;
  const int steps_per_chunk = four ? 4 : 2;
  const int chunk_k = steps_per_chunk * 16;
  const bool float_zero = four && w.zeros != nullptr;
  if (four) {
    out->fmt = w.scale_fp16 ? kFmtQ4_0 : (w.zeros != nullptr ? kFmtI4Z : kFmtI4);
  } else {
    out->fmt = w.scale_fp16 ? kFmtQ8_0 : (w.zeros != nullptr ? kFmtI8Z : kFmtI8);
  }
  const int cpg = w.group_size > chunk_k ? w.group_size / chunk_k : 1;
  const int n_gu = w.n_chunks / cpg;
  // Shared-memory bytes of the fragments (and group sums) of a slice of `gps` groups.
  auto slice_bytes = [&](int gps) {
    const size_t ksteps = static_cast<size_t>(gps) * cpg * steps_per_chunk;
    const size_t groups = static_cast<size_t>(gps) * cpg * chunk_k / w.group_size;
    return ksteps * m * 64 + (float_zero ? groups * 64 : 0);
  };
  int slices = 0;
  if (force_slices < 0) {
    slices = 0;  // global fragments
  } else if (force_slices > 0) {
    if (n_gu % force_slices != 0) return cudaErrorInvalidValue;
    slices = force_slices;
  } else {
    for (int sv = 1; sv <= std::min(n_gu, 32); ++sv) {
      if (n_gu % sv == 0 && slice_bytes(n_gu / sv) <= kMaxStagedFragBytes) {
        slices = sv;
        break;
      }
    }
  }
  const bool staged = slices > 0;
  if (!staged) slices = 1;
  StreamParams& p = out->p;
  p = StreamParams{};
  p.w = w;
  p.x = x;
  p.y = y;
  p.m = m;
  p.slices = slices;
  p.gps = n_gu / slices;
  out->n_pairs = w.n_tiles / 2;  // the packer pads the tile count to even
  p.units = int64_t{out->n_pairs} * p.gps;
  if (!staged) {
    if (scratch.fragments == nullptr) return cudaErrorInvalidValue;
    const int64_t ksteps = int64_t{w.n_chunks} * steps_per_chunk;
    const size_t frag_bytes = static_cast<size_t>(ksteps) * m * 64;
    const size_t need = frag_bytes + (float_zero ? static_cast<size_t>(w.n_groups) * 64 : 0) + 16;
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
  out->smem = staged ? slice_bytes(p.gps) : 0;
  out->nt = m <= 8 ? 1 : 2;
  return cudaSuccess;
}

template <int kFmt, int kG, int kNT, int kP, int kW, int kMinB, bool kSkel, int kD>
cudaError_t launch_stream_one(const StreamLaunch& L, int ctas_per_sm, const GemvScratch& scratch,
                              const LaunchContext& ctx) {
  StreamParams p = L.p;
  auto kernel = gemv_stream_kernel<kFmt, kG, kNT, kP, kW, kMinB, kSkel, kD>;
  static bool configured = false;  // raised once per instantiation (also by configure_gemv_kernels)
  if (!configured) {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemLimit);
    if (e != cudaSuccess) return e;
    configured = true;
  }
  int occ = 0;
  cudaError_t e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, kernel, kW * 32, L.smem);
  if (e != cudaSuccess) return e;
  occ = std::max(occ, 1);
  if (ctas_per_sm > 0) occ = std::min(occ, ctas_per_sm);
  // CTAs per slice; every warp gets at least one unit (an empty share would never arrive at its
  // pair's counter).
  const int64_t resident = int64_t{occ} * std::max(ctx.num_sms, 1);
  const int64_t per_slice =
      std::max<int64_t>(1, std::min<int64_t>(resident / p.slices, (p.units + kW - 1) / kW));
  p.warps_per_slice = static_cast<int>(std::min<int64_t>(per_slice * kW, p.units));
  const int64_t upw = (p.units + p.warps_per_slice - 1) / p.warps_per_slice;
  p.pairs_per_warp = static_cast<int>(upw / p.gps + 2);
  const int64_t grid = per_slice * p.slices;
  if (scratch.split_partial == nullptr || scratch.split_count == nullptr) return cudaErrorInvalidValue;
  const size_t need = static_cast<size_t>(p.slices) * p.warps_per_slice * p.pairs_per_warp * 32 * p.m * 4;
  if (!scratch.split_partial->ensure(need, "gemv partial sums").is_ok()) return cudaErrorMemoryAllocation;
  const size_t counts = static_cast<size_t>(L.n_pairs) * 4;
  if (scratch.split_count->bytes() < counts) {
    if (!scratch.split_count->allocate(counts, "gemv pair counters").is_ok()) return cudaErrorMemoryAllocation;
    e = cudaMemsetAsync(scratch.split_count->get(), 0, counts, ctx.stream);
    if (e != cudaSuccess) return e;
  }
  p.partial = scratch.split_partial->as<float>();
  p.count = scratch.split_count->as<int>();
  return launch_pdl(kernel, dim3(static_cast<unsigned>(grid)), kW * 32, L.smem, p, ctx);
}

template <int kFmt, int kG, int kP = kStreamPrefetch, int kW = kStreamWarps, int kMinB = kStreamMinBlocks,
          bool kSkel = false, int kD = kStreamL2Ahead>
cudaError_t stream_nt(const StreamLaunch& L, int occ, const GemvScratch& scratch, const LaunchContext& ctx) {
  if (L.nt == 1) return launch_stream_one<kFmt, kG, 1, kP, kW, kMinB, kSkel, kD>(L, occ, scratch, ctx);
  return launch_stream_one<kFmt, kG, 2, kP, kW, kMinB, kSkel, kD>(L, occ, scratch, ctx);
}

template <int kFmt>
cudaError_t stream_group(const StreamLaunch& L, int occ, const GemvScratch& scratch, const LaunchContext& ctx) {
  if constexpr (kFmt == kFmtQ4_0 || kFmt == kFmtQ8_0) {
    return stream_nt<kFmt, 32>(L, occ, scratch, ctx);
  } else {
    switch (L.p.w.group_size) {
      case 32: return stream_nt<kFmt, 32>(L, occ, scratch, ctx);
      case 64: return stream_nt<kFmt, 64>(L, occ, scratch, ctx);
      case 128: return stream_nt<kFmt, 128>(L, occ, scratch, ctx);
      default: return cudaErrorInvalidValue;
    }
  }
}

template <int kFmt, int kG>
cudaError_t set_limit_g(int bytes) {
  cudaError_t e = cudaFuncSetAttribute(
      gemv_stream_kernel<kFmt, kG, 1, kStreamPrefetch, kStreamWarps, kStreamMinBlocks, false, kStreamL2Ahead>,
      cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (e != cudaSuccess) return e;
  return cudaFuncSetAttribute(gemv_stream_kernel<kFmt, kG, 2, kStreamPrefetch, kStreamWarps, kStreamMinBlocks, false,
                                                 kStreamL2Ahead>,
                              cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
}

template <int kFmt>
cudaError_t set_limit_fmt(int bytes) {
  if constexpr (kFmt == kFmtQ4_0 || kFmt == kFmtQ8_0) {
    return set_limit_g<kFmt, 32>(bytes);
  } else {
    cudaError_t e = set_limit_g<kFmt, 32>(bytes);
    if (e == cudaSuccess) e = set_limit_g<kFmt, 64>(bytes);
    if (e == cudaSuccess) e = set_limit_g<kFmt, 128>(bytes);
    return e;
  }
}

cudaError_t launch_stream(const WeightView& w, const float* x, int m, float* y, const GemvScratch& scratch,
                          int ctas_per_sm, const LaunchContext& ctx) {
  StreamLaunch L;
  cudaError_t e = prepare_stream(w, x, m, y, scratch, 0, ctx, &L);
  if (e != cudaSuccess) return e;
  switch (L.fmt) {
    case kFmtQ4_0: return stream_group<kFmtQ4_0>(L, ctas_per_sm, scratch, ctx);
    case kFmtI4: return stream_group<kFmtI4>(L, ctas_per_sm, scratch, ctx);
    case kFmtI4Z: return stream_group<kFmtI4Z>(L, ctas_per_sm, scratch, ctx);
    case kFmtQ8_0: return stream_group<kFmtQ8_0>(L, ctas_per_sm, scratch, ctx);
    case kFmtI8: return stream_group<kFmtI8>(L, ctas_per_sm, scratch, ctx);
    default: return stream_group<kFmtI8Z>(L, ctas_per_sm, scratch, ctx);
  }
}

}  // namespace

cudaError_t launch_gemv_stream(const WeightView& w, const float* x, int m, float* y, const GemvScratch& scratch,
                               int ctas_per_sm, const LaunchContext& ctx) {
  return launch_stream(w, x, m, y, scratch, ctas_per_sm, ctx);
}

cudaError_t configure_gemv_stream_kernels() {
  cudaError_t e = set_limit_fmt<kFmtQ4_0>(kSmemLimit);
  if (e == cudaSuccess) e = set_limit_fmt<kFmtI4>(kSmemLimit);
  if (e == cudaSuccess) e = set_limit_fmt<kFmtI4Z>(kSmemLimit);
  if (e == cudaSuccess) e = set_limit_fmt<kFmtQ8_0>(kSmemLimit);
  if (e == cudaSuccess) e = set_limit_fmt<kFmtI8>(kSmemLimit);
  if (e == cudaSuccess) e = set_limit_fmt<kFmtI8Z>(kSmemLimit);
  return e;
}

cudaError_t launch_gemv_stream_lab(const WeightView& w, const float* x, int m, float* y, int variant,
                                   const GemvScratch& scratch, const LaunchContext& ctx) {
  StreamLaunch L;
  const int force = variant == 6 ? -1 : (variant == 7 ? 4 : 0);
  cudaError_t e = prepare_stream(w, x, m, y, scratch, force, ctx, &L);
  if (e != cudaSuccess) return e;
  switch (variant) {
    case 1: return stream_nt<kFmtQ4_0, 32, 4, 8, 2, false, 16>(L, 2, scratch, ctx);
    case 2: return stream_nt<kFmtQ4_0, 32, 4, 8, 2, false, 32>(L, 2, scratch, ctx);
    case 3: return stream_nt<kFmtQ4_0, 32, 4, 8, 2, false, 16>(L, 1, scratch, ctx);
    case 4: return stream_nt<kFmtQ4_0, 32, 4, 16, 1, false, 16>(L, 1, scratch, ctx);
    case 5: return stream_nt<kFmtQ4_0, 32, 4, 8, 2, true, 16>(L, 2, scratch, ctx);
    case 0:
    case 6:
    case 7: return stream_nt<kFmtQ4_0, 32>(L, 0, scratch, ctx);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace ge::cuda
