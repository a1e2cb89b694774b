// Matrix-vector products for decode (M = 1) and small batches (M <= 16): y[m, n] = x[m, :] · w[n, :].
// Tiled weights (Q4_0, Q8_0, Int4Group, Int8Group) run on the tensor cores (mma with x split into
// high + low parts, fp32 accumulate: fp16 parts of x scaled per K-slice for 4-bit weights at K >= 4096,
// bf16 parts otherwise) under the K-slice schedule (gemv_slice.cu; the item and stream-K schedules
// stay for comparison); raw layouts run a decode-in-kernel fp32 GEMV (Q4_K with its own kernel).
#pragma once

#include <span>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/packed_weight.cuh"

namespace ge::cuda {

constexpr int kGemvMaxM = 16;
constexpr int kGemvMaxOutputs = 4;  // weights one grouped launch covers (q/k/v, gate/up)

struct GemvTuning {
  int ctas_per_sm = 0;  // persistent CTAs per SM; 0 = as many as fit (occupancy calculator)
  int schedule = 0;     // 0 the measured choice, 1 items, 2 stream-K, 3 K-slice (tests, benchmarks)
  // M = 1 products of 4-bit weights without zero points take x as int8 codes per 32-block (IMMA;
  // |error of an element of x| <= max|x of its block| / 254) instead of fp16 (gemv_slice_i8.cuh).
  bool int8_x = false;
};

// Backend-owned scratch: x fragments too large for shared memory, and the K-split partial sums
// with their per-pair arrival counters (zeroed once, reset by the last split of each pair).
struct GemvScratch {
  DeviceMemory* fragments = nullptr;
  DeviceMemory* split_partial = nullptr;
  DeviceMemory* split_count = nullptr;
};

// w tiled, 1 <= m <= kGemvMaxM.
cudaError_t launch_gemv_tiled(const WeightView& w, const float* x, int m, float* y, const GemvScratch& scratch,
                              const GemvTuning& tune, const LaunchContext& ctx);

// One product of a grouped launch: y [m, w->rows] = x · wᵀ.
struct GemvTarget {
  const WeightView* w = nullptr;
  float* y = nullptr;
};

// K-slice schedule (gemv_slice.cu): 1..kGemvMaxOutputs tiled weights that share x and
// gemv_slice_compatible layouts, in one launch. force_slices > 0 fixes the K-slice count (kernel
// lab). Answers cudaErrorInvalidValue when the outputs do not fit it (the caller falls back).
// int8_x: as GemvTuning::int8_x.
cudaError_t launch_gemv_slice(std::span<const GemvTarget> outs, const float* x, int m, const GemvScratch& scratch,
                              int force_slices, const LaunchContext& ctx, bool int8_x = false);
// y [m, w.rows] = (gelu_tanh(gate) · up) · wᵀ (the MLP's down projection) with the product formed while
// x is staged (gelu_tanh_times: the same fp32 values as gelu_tanh_mul, so the same bits as that kernel
// followed by launch_gemv_slice); only where the fp16 kernel serves the weight (4-bit, K >= 4096),
// else cudaErrorNotSupported (the caller runs the two ops).
cudaError_t launch_gemv_slice_gelu(const GemvTarget& out, const float* gate, const float* up, int m,
                                   const GemvScratch& scratch, const LaunchContext& ctx, bool int8_x = false);
// Same encoding, group size and K: the weights can share one slice launch.
bool gemv_slice_compatible(const WeightView& a, const WeightView& b);
// Kernel lab (Q4_0): configurations of the K-slice schedule; variant 0 is the bf16 hi/lo kernel
// (production before the fp16 kernel of gemv_slice_f16.cuh).
int gemv_slice_lab_variants();
const char* gemv_slice_lab_variant_name(int variant);
cudaError_t launch_gemv_slice_lab(std::span<const GemvTarget> outs, const float* x, int m, int variant,
                                  const GemvScratch& scratch, const LaunchContext& ctx);

// launch_gemv_slice_gelu where the schedule of launch_gemv_tiled would be the K-slice one; else
// cudaErrorNotSupported.
cudaError_t launch_gemv_tiled_gelu(const WeightView& w, const float* gate, const float* up, int m, float* y,
                                   const GemvScratch& scratch, const GemvTuning& tune, const LaunchContext& ctx);

// Products of one x by several tiled weights (q/k/v, gate/up) as one K-slice launch where the
// schedule of launch_gemv_tiled for each of them would be the K-slice one (each output planned for its
// share of the GPU: its K-slice sums may be ordered differently from a separate call's, within the
// GEMV's bound); cudaErrorNotSupported when they cannot share a launch (the caller runs them one by one).
cudaError_t launch_gemv_tiled_group(std::span<const GemvTarget> outs, const float* x, int m,
                                    const GemvScratch& scratch, const GemvTuning& tune, const LaunchContext& ctx);

// w raw (any encoding), any m >= 1 (processed 16 rows of x at a time).
cudaError_t launch_gemv_raw(const WeightView& w, const float* x, int64_t m, float* y, const LaunchContext& ctx);

// Kernel lab (dev/cuda/bench_decode): schedule variants of the tiled GEMV on a Q4_0 weight (the
// per-CTA item schedule of earlier versions runs M = 1 only and answers cudaErrorNotSupported
// otherwise). Variant 3 is the production configuration.
int gemv_lab_variants();
const char* gemv_lab_variant_name(int variant);
cudaError_t launch_gemv_tiled_lab(const WeightView& w, const float* x, int m, float* y, int variant,
                                  const GemvScratch& scratch, const LaunchContext& ctx);

// Kernel lab: forces the schedule of launch_gemv_tiled (0 the measured choice, 1 the per-CTA item
// schedule, 2 stream-K, 3 K-slice); 1 also sends Q4_K to the generic raw kernel. Not thread-safe; benchmarks only.
void set_gemv_schedule_override(int schedule);
int gemv_schedule_override();

// Raises the dynamic shared-memory limit of every GEMV kernel (once per device).
cudaError_t configure_gemv_kernels();

}  // namespace ge::cuda
