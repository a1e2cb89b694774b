// Matmul for many rows of x (prefill, M > 16): weight rows are dequantized chunk by chunk into a
// bf16 scratch and multiplied with x rounded to bf16 by cuBLASLt on the tensor cores (fp32 out).
#pragma once

#include <cublasLt.h>

#include <map>
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

  Status init();
  // y[m, w.rows] = x[m, w.cols] · wᵀ, every operand in device memory.
  Status run(const WeightView& w, const float* x, int64_t m, float* y, const LaunchContext& ctx);
  // Bytes of bf16 weight rows dequantized per GEMM call (the scratch size); default 64 MiB.
  void set_weight_chunk_bytes(size_t bytes) { weight_chunk_bytes_ = bytes; }

 private:
  struct Plan {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  Status get_plan(int64_t nc, int64_t m, int64_t k, int64_t ldd, Plan** out);

  cublasLtHandle_t handle_ = nullptr;
  size_t weight_chunk_bytes_ = size_t{64} << 20;
  cudaStream_t side_ = nullptr;  // dequantizes the next chunk while the GEMM runs
  cudaEvent_t start_ = nullptr, dq_done_[2] = {nullptr, nullptr}, gemm_done_[2] = {nullptr, nullptr};
  DeviceMemory x_bf16_, w_bf16_, workspace_;
  std::map<std::tuple<int64_t, int64_t, int64_t, int64_t>, Plan> plans_;
};

}  // namespace ge::cuda
