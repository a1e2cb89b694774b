// Matmul for many rows of x (prefill, M > 16): weight rows are dequantized chunk by chunk into a
// bf16 scratch and multiplied with x rounded to bf16 by cuBLASLt on the tensor cores (fp32 out).
#pragma once

#include <cublasLt.h>

#include <map>
#include <span>
#include <tuple>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/packed_weight.cuh"

namespace ge::cuda {

// Rows [row0, row0 + n_rows) of w to row-major bf16 [n_rows, w.cols]: a coalesced kernel for tiled4,
// packed_weight's generic dequantizer otherwise. Values equal launch_dequantize_bf16's bit for bit.
cudaError_t launch_dequantize_weight_bf16(const WeightView& w, int64_t row0, int64_t n_rows, __nv_bfloat16* out,
                                          const LaunchContext& ctx);

class GemmRunner {
 public:
  GemmRunner() = default;
  ~GemmRunner();
  GemmRunner(const GemmRunner&) = delete;
  GemmRunner& operator=(const GemmRunner&) = delete;

  struct Output {
    const WeightView* w = nullptr;
    float* y = nullptr;  // [m, w->rows]
  };

  // Reads GE_CUDA_GEMM_TUNE (0 turns the algorithm timing off).
  Status init();
  // y[m, w.rows] = x[m, w.cols] · wᵀ, every operand in device memory.
  Status run(const WeightView& w, const float* x, int64_t m, float* y, const LaunchContext& ctx);
  // Several weights of the same cols applied to one x (q/k/v, gate/up): x is rounded to bf16 once.
  Status run_shared(const float* x, int64_t m, std::span<const Output> outs, const LaunchContext& ctx);
  // y[m, w.rows] = (gelu_tanh(gate) * up) · wᵀ (the MLP's down projection): the product is rounded to
  // the GEMM's bf16 input as it is computed, never stored in fp32.
  Status run_gelu_input(const WeightView& w, const float* gate, const float* up, int64_t m, float* y,
                        const LaunchContext& ctx);
  // GE_CUDA_GEMM_GELU=0: callers keep the separate gelu_tanh_mul (comparisons).
  static bool gelu_input_enabled();
  // For a producer that writes the bf16 input itself: the [m, cols] scratch to fill, then
  // run_prepared(m, outs) (every weight with those cols) on the same stream.
  Result<__nv_bfloat16*> input_bf16(int64_t m, int64_t cols);
  Status run_prepared(int64_t m, std::span<const Output> outs, const LaunchContext& ctx);
  // GE_CUDA_GEMM_NORM=0: callers keep the add-norm's fp32 output and the conversion (comparisons).
  static bool norm_input_enabled();
  // Bytes of bf16 weight rows dequantized per GEMM call (the scratch size); default 64 MiB.
  void set_weight_chunk_bytes(size_t bytes) { weight_chunk_bytes_ = bytes; }
  // Whether a new GEMM shape with at least kTuneMinRows rows times cuBLASLt's top heuristic candidates
  // on its first call and keeps the fastest (on by default); off: the first candidate, as before.
  // The winner also serves later shapes of the same weight chunk whose M falls in the same power-of-two
  // range (where cuBLASLt accepts it), so a server meeting many prompt lengths times each range once.
  // Either way a shape's algorithm never changes once chosen (same bits on every later call).
  void set_tuning(bool on) { tune_ = on; }
  // Shapes timed so far and how many of them chose an algorithm other than the heuristic's first.
  int tuned_shapes() const { return tuned_shapes_; }
  int tuned_changed() const { return tuned_changed_; }

  static constexpr int64_t kTuneMinRows = 128;

 private:
  struct Plan {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  // The operands of the call that creates a plan: timing candidates runs them (y is overwritten later).
  struct Operands {
    const __nv_bfloat16* w = nullptr;
    const __nv_bfloat16* x = nullptr;
    float* y = nullptr;
  };
  Status get_plan(int64_t nc, int64_t m, int64_t k, int64_t ldd, const Operands& ops, cudaStream_t stream,
                  Plan** out);
  Status choose_algo(Plan& plan, int64_t nc, int64_t m, int64_t k, int64_t ldd, const Operands& ops,
                     cudaStream_t stream);
  // y = x_bf16_ · wᵀ with x_bf16_ already holding x [m, w.cols].
  Status run_converted(const WeightView& w, int64_t m, float* y, const LaunchContext& ctx);

  cublasLtHandle_t handle_ = nullptr;
  size_t weight_chunk_bytes_ = size_t{64} << 20;
  cudaStream_t side_ = nullptr;  // dequantizes the next chunk while the GEMM runs
  cudaEvent_t start_ = nullptr, dq_done_[2] = {nullptr, nullptr}, gemm_done_[2] = {nullptr, nullptr};
  cudaEvent_t time_a_ = nullptr, time_b_ = nullptr;  // timing events (candidate algorithms)
  DeviceMemory x_bf16_, w_bf16_, workspace_;
  std::map<std::tuple<int64_t, int64_t, int64_t, int64_t>, Plan> plans_;
  // Timed winners by (nc, k, ldd, M range: floor(log2 M)).
  std::map<std::tuple<int64_t, int64_t, int64_t, int>, cublasLtMatmulAlgo_t> tuned_;
  int64_t prepared_m_ = 0, prepared_cols_ = 0;  // shape of the last input_bf16
  bool tune_ = true;
  int tuned_shapes_ = 0, tuned_changed_ = 0;
};

}  // namespace ge::cuda
