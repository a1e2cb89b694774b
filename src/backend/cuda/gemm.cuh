// Matmul for many rows of x (prefill, M > 16): weight rows are dequantized chunk by chunk into a
// bf16 scratch and multiplied with x rounded to bf16 by cuBLASLt on the tensor cores (fp32 out).
#pragma once

#include <cublasLt.h>

#include <map>
#include <tuple>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/packed_weight.cuh"

namespace ge::cuda {

class GemmRunner {
 public:
  GemmRunner() = default;
  ~GemmRunner();
  GemmRunner(const GemmRunner&) = delete;
  GemmRunner& operator=(const GemmRunner&) = delete;

  Status init();
  // y[m, w.rows] = x[m, w.cols] · wᵀ, every operand in device memory.
  Status run(const WeightView& w, const float* x, int64_t m, float* y, const LaunchContext& ctx);

 private:
  struct Plan {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  Status get_plan(int64_t nc, int64_t m, int64_t k, int64_t ldd, Plan** out);

  cublasLtHandle_t handle_ = nullptr;
  DeviceMemory x_bf16_, w_bf16_, workspace_;
  std::map<std::tuple<int64_t, int64_t, int64_t, int64_t>, Plan> plans_;
};

}  // namespace ge::cuda
