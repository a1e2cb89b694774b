// cuBLASLt-backed prefill matmul: x -> bf16 once, then per chunk of weight rows a dequantize kernel
// into bf16 scratch (64 MiB) and one bf16 x bf16 -> fp32 GEMM. Column-major view used with cuBLAS:
// W chunk is K x nc (ld K, transposed), x is K x m (ld K), y chunk is nc x m (ld = w.rows).
#include "backend/cuda/gemm.cuh"

#include <algorithm>
#include <string>

namespace ge::cuda {
namespace {

constexpr size_t kWeightScratchBytes = size_t{64} << 20;
constexpr size_t kWorkspaceBytes = size_t{32} << 20;

Status cublas_status(cublasStatus_t s, const std::string& what) {
  if (s == CUBLAS_STATUS_SUCCESS) return Status::ok();
  return internal_error("cublasLt: " + what + " failed with status " + std::to_string(static_cast<int>(s)));
}

static __global__ void to_bf16_kernel(const float* x, int64_t n, __nv_bfloat16* out) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    out[i] = __float2bfloat16_rn(x[i]);
  }
}

}  // namespace

GemmRunner::~GemmRunner() {
  for (auto& [key, plan] : plans_) {
    if (plan.a) cublasLtMatrixLayoutDestroy(plan.a);
    if (plan.b) cublasLtMatrixLayoutDestroy(plan.b);
    if (plan.d) cublasLtMatrixLayoutDestroy(plan.d);
    if (plan.op) cublasLtMatmulDescDestroy(plan.op);
  }
  if (handle_ != nullptr) cublasLtDestroy(handle_);
}

Status GemmRunner::init() { return cublas_status(cublasLtCreate(&handle_), "create handle"); }

Status GemmRunner::get_plan(int64_t nc, int64_t m, int64_t k, int64_t ldd, Plan** out) {
  const auto key = std::make_tuple(nc, m, k, ldd);
  auto it = plans_.find(key);
  if (it != plans_.end()) {
    *out = &it->second;
    return Status::ok();
  }
  Plan plan;
  GE_RETURN_IF_ERROR(cublas_status(cublasLtMatmulDescCreate(&plan.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "desc"));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  GE_RETURN_IF_ERROR(cublas_status(
      cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)), "transa"));
  GE_RETURN_IF_ERROR(cublas_status(
      cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)), "transb"));
  GE_RETURN_IF_ERROR(cublas_status(cublasLtMatrixLayoutCreate(&plan.a, CUDA_R_16BF, k, nc, k), "layout a"));
  GE_RETURN_IF_ERROR(cublas_status(cublasLtMatrixLayoutCreate(&plan.b, CUDA_R_16BF, k, m, k), "layout b"));
  GE_RETURN_IF_ERROR(cublas_status(cublasLtMatrixLayoutCreate(&plan.d, CUDA_R_32F, nc, m, ldd), "layout d"));
  cublasLtMatmulPreference_t pref = nullptr;
  GE_RETURN_IF_ERROR(cublas_status(cublasLtMatmulPreferenceCreate(&pref), "preference"));
  size_t ws = kWorkspaceBytes;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  cublasStatus_t s =
      cublasLtMatmulAlgoGetHeuristic(handle_, plan.op, plan.a, plan.b, plan.d, plan.d, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (s != CUBLAS_STATUS_SUCCESS || found == 0) {
    cublasLtMatrixLayoutDestroy(plan.a);
    cublasLtMatrixLayoutDestroy(plan.b);
    cublasLtMatrixLayoutDestroy(plan.d);
    cublasLtMatmulDescDestroy(plan.op);
    return unsupported("cublasLt: no GEMM algorithm for bf16 [" + std::to_string(m) + " x " + std::to_string(k) +
                       "] x [" + std::to_string(k) + " x " + std::to_string(nc) + "]");
  }
  plan.algo = result.algo;
  auto [pos, inserted] = plans_.emplace(key, plan);
  (void)inserted;
  *out = &pos->second;
  return Status::ok();
}

Status GemmRunner::run(const WeightView& w, const float* x, int64_t m, float* y, const LaunchContext& ctx) {
  const int64_t K = w.cols, N = w.rows;
  GE_RETURN_IF_ERROR(x_bf16_.ensure(static_cast<size_t>(m * K) * 2, "gemm x scratch"));
  GE_RETURN_IF_ERROR(workspace_.ensure(kWorkspaceBytes, "gemm workspace"));
  int64_t chunk = static_cast<int64_t>(kWeightScratchBytes / static_cast<size_t>(K * 2)) / 128 * 128;
  chunk = std::max<int64_t>(chunk, 128);
  chunk = std::min<int64_t>(chunk, N);
  GE_RETURN_IF_ERROR(w_bf16_.ensure(static_cast<size_t>(chunk * K) * 2, "gemm weight scratch"));

  to_bf16_kernel<<<blocks_for(m * K, 256, 8192), 256, 0, ctx.stream>>>(x, m * K, x_bf16_.as<__nv_bfloat16>());
  GE_RETURN_IF_ERROR(cuda_status(cudaGetLastError(), "gemm x to bf16"));
  const float alpha = 1.0f, beta = 0.0f;
  for (int64_t n0 = 0; n0 < N; n0 += chunk) {
    const int64_t nc = std::min(chunk, N - n0);
    GE_RETURN_IF_ERROR(cuda_status(launch_dequantize_bf16(w, n0, nc, w_bf16_.as<__nv_bfloat16>(), ctx),
                                   "gemm dequantize"));
    Plan* plan = nullptr;
    GE_RETURN_IF_ERROR(get_plan(nc, m, K, N, &plan));
    GE_RETURN_IF_ERROR(cublas_status(
        cublasLtMatmul(handle_, plan->op, &alpha, w_bf16_.get(), plan->a, x_bf16_.get(), plan->b, &beta, y + n0,
                       plan->d, y + n0, plan->d, &plan->algo, workspace_.get(), kWorkspaceBytes, ctx.stream),
        "matmul"));
  }
  return Status::ok();
}

}  // namespace ge::cuda
