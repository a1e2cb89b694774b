// Parameters of the K-slice GEMV launch and the end of a unit shared by its kernels (gemv_slice.cu:
// bf16 hi/lo B fragments; gemv_slice_f16.cuh: one fp16 B fragment): the direct store of a whole-K
// unit, or the slice partials added in slice order by the last slice to arrive. Internal to gemv_slice.cu.
#pragma once

#include "backend/cuda/gemv_tiled.cuh"

namespace ge::cuda {
namespace {

struct SliceOutput {
  WeightView w;
  float* y = nullptr;   // [m, w.rows]
  float* partial = nullptr;  // [units][slices][m][16·kT] when slices > 1
  int* count = nullptr;      // [units], zero between launches
  int units = 0;            // units of kT tiles
  int slices = 1;          // S: K-slices of whole group units
  int ctas_per_slice = 1;  // R
  int first_cta = 0;       // this output's CTAs are [first_cta, first_cta + S·R)
};

struct SliceParams {
  SliceOutput out[kGemvMaxOutputs];
  int n_out;
  const float* x;  // [m, cols]
  const float* x_up;  // nullptr, or x is gelu_tanh(x) · x_up (fp16 kernel only)
  int64_t cols;
  int m;
  int n_gu;  // group units along K
  int early_release;  // kernel lab: let the next grid launch at kernel start instead of after staging
};

// Output of CTA b (outputs in CTA order; at most kGemvMaxOutputs).
__device__ __forceinline__ int output_of(const SliceParams& p, int b) {
  int o = 0;
#pragma unroll
  for (int i = 1; i < kGemvMaxOutputs; ++i) {
    if (i < p.n_out && b >= p.out[i].first_cta) o = i;
  }
  return o;
}

// End of unit gp's slice: accumulator (tt, nt, j) of lane (g, t) is row tt·16 + g + 8·(j / 2) of
// the unit, token nt·8 + 2t + j % 2. S == 1 stores y; otherwise the partial goes to scratch and the
// slice that arrives last adds the S partials in slice order (the same bits on every run).
template <int kT, int kNT>
__device__ __forceinline__ void slice_unit_store(const SliceOutput& out, int m, int gp, int slice,
                                                 const float (&acc)[kT][kNT][4], int lane, int g, int t) {
  const WeightView& w = out.w;
  const int S = out.slices;
  const int64_t rows = w.rows;
  const int64_t row0 = int64_t{gp} * kT * 16;
  float* y = out.y;
  if (S == 1) {
#pragma unroll
    for (int tt = 0; tt < kT; ++tt) {
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int n = nt * 8 + 2 * t + (j & 1);
          const int64_t row = row0 + tt * 16 + g + 8 * (j >> 1);
          if (n < m && row < rows) y[int64_t{n} * rows + row] = acc[tt][nt][j];
        }
      }
    }
  } else {
    float* part = out.partial + (int64_t{gp} * S + slice) * m * kT * 16;
#pragma unroll
    for (int tt = 0; tt < kT; ++tt) {
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int n = nt * 8 + 2 * t + (j & 1);
          if (n < m) part[n * kT * 16 + tt * 16 + g + 8 * (j >> 1)] = acc[tt][nt][j];
        }
      }
    }
    __threadfence();
    __syncwarp();
    int old = 0;
    if (lane == 0) old = atomicAdd(out.count + gp, 1);
    old = __shfl_sync(0xffffffffu, old, 0);
    if (old == S - 1) {  // last slice of this pair: add the partials in slice order
      __threadfence();
      // A partial is n4 = 4·kT·m float4. From M = 4 (n4 >= 32) lane owns float4 lane + 32q
      // of every slice; below, lane group j = lane / n4 takes slices j, j + G, ... and a
      // fixed butterfly adds the groups' sums. Either way every load of a slice (and of the
      // next slices, unrolled) is in flight at once and the order of the additions is fixed:
      // the serial one-load-per-round-trip loop cost tens of microseconds at M = 16.
      constexpr int kQ = 2 * kT;  // float4 per lane at M = 16
      constexpr int kRows = 16 * kT;
      const float4* base = reinterpret_cast<const float4*>(out.partial + int64_t{gp} * S * m * kRows);
      const int n4 = 4 * kT * m;
      const int G = n4 < 32 && 32 % n4 == 0 ? 32 / n4 : 1;
      const int f0 = lane % n4, sp0 = lane / n4;  // with G == 1: f0 = lane (n4 >= 32), sp0 = 0
      float4 sum[kQ];
#pragma unroll
      for (int q = 0; q < kQ; ++q) sum[q] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      auto add = [](float4& a, const float4& b) {
        a.x += b.x;
        a.y += b.y;
        a.z += b.z;
        a.w += b.w;
      };
      if (G > 1) {
#pragma unroll 4
        for (int sp = sp0; sp < S; sp += G) add(sum[0], __ldcg(base + int64_t{sp} * n4 + f0));
        for (int off = n4; off < 32; off <<= 1) {
          float4 o;
          o.x = __shfl_xor_sync(0xffffffffu, sum[0].x, off);
          o.y = __shfl_xor_sync(0xffffffffu, sum[0].y, off);
          o.z = __shfl_xor_sync(0xffffffffu, sum[0].z, off);
          o.w = __shfl_xor_sync(0xffffffffu, sum[0].w, off);
          // Both lanes of a pair add the lower group's sum first: the same bits in both.
          if (lane & off) {
            float4 lo = o;
            add(lo, sum[0]);
            sum[0] = lo;
          } else {
            add(sum[0], o);
          }
        }
      } else {
#pragma unroll 2
        for (int sp = 0; sp < S; ++sp) {
#pragma unroll
          for (int q = 0; q < kQ; ++q) {
            if (lane + 32 * q < n4) add(sum[q], __ldcg(base + int64_t{sp} * n4 + lane + 32 * q));
          }
        }
      }
#pragma unroll
      for (int q = 0; q < kQ; ++q) {
        const int e = 4 * (f0 + 32 * q);  // elements e..e+3: token e / kRows, unit rows e % kRows ..
        if (sp0 == 0 && e < kRows * m) {
          const int64_t row = row0 + e % kRows;
          float* yn = y + int64_t{e / kRows} * rows + row;
          const float v[4] = {sum[q].x, sum[q].y, sum[q].z, sum[q].w};
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            if (row + k < rows) yn[k] = v[k];
          }
        }
      }
      if (lane == 0) atomicExch(out.count + gp, 0);
    }
  }
}

// End of unit gp's slice for a warp that goes on to its next unit: store (as slice_unit_store), then
// clear the accumulators.
template <int kT, int kNT>
__device__ __forceinline__ void slice_unit_finish(const SliceOutput& out, int m, int gp, int slice,
                                                  float (&acc)[kT][kNT][4], int lane, int g, int t) {
  slice_unit_store<kT, kNT>(out, m, gp, slice, acc, lane, g, t);
#pragma unroll
  for (int tt = 0; tt < kT; ++tt) {
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[tt][nt][j] = 0.0f;
    }
  }
}

}  // namespace
}  // namespace ge::cuda
