// cuBLASLt-backed prefill matmul: x -> bf16 once, then per chunk of weight rows a dequantize kernel
// into bf16 scratch (weight_chunk_bytes; two buffers, dequantized on a side stream one chunk ahead)
// and one bf16 x bf16 -> fp32 GEMM on the caller's stream. Column-major view used with cuBLAS:
// W chunk is K x nc (ld K, transposed), x is K x m (ld K), y chunk is nc x m (ld = w.rows).
// Each shape's algorithm is chosen once: the fastest of cuBLASLt's top heuristic candidates, timed on
// the first call's own operands (the heuristic's first pick is up to ~20% slower on some shapes).
#include "backend/cuda/gemm.cuh"

#include "backend/cuda/dequantize_kquant.cuh"

#include "backend/cuda/elementwise.cuh"
#include "core/checked_math.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

namespace ge::cuda {
namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;
constexpr int kTuneCandidates = 8;
constexpr int kTuneReps = 3;

Status cublas_status(cublasStatus_t s, const std::string& what) {
  if (s == CUBLAS_STATUS_SUCCESS) return Status::ok();
  return internal_error("cublasLt: " + what + " failed with status " + std::to_string(static_cast<int>(s)));
}

// x fp32 -> bf16, four values per thread and step (16-byte loads) when n % 4 == 0 and x is 16-byte
// aligned; one at a time otherwise.
static __global__ void to_bf16_kernel(const float* x, int64_t n, __nv_bfloat16* out) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  const int64_t first = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (n % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0) {
    const float4* x4 = reinterpret_cast<const float4*>(x);
    uint2* out4 = reinterpret_cast<uint2*>(out);
    for (int64_t i = first; i < n / 4; i += stride) {
      const float4 v = x4[i];
      out4[i] = make_uint2(pack_bf16x2(v.x, v.y), pack_bf16x2(v.z, v.w));
    }
    return;
  }
  for (int64_t i = first; i < n; i += stride) out[i] = __float2bfloat16_rn(x[i]);
}

// gelu_tanh(gate) * up -> bf16: the down projection's input without the fp32 product going to memory
// (same fp32 values as gelu_tanh_mul, rounded as to_bf16_kernel rounds them).
static __global__ void gelu_mul_to_bf16_kernel(const float* gate, const float* up, int64_t n, __nv_bfloat16* out) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  const int64_t first = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (n % 4 == 0 && reinterpret_cast<uintptr_t>(gate) % 16 == 0 && reinterpret_cast<uintptr_t>(up) % 16 == 0) {
    const float4* g4 = reinterpret_cast<const float4*>(gate);
    const float4* u4 = reinterpret_cast<const float4*>(up);
    uint2* out4 = reinterpret_cast<uint2*>(out);
    for (int64_t i = first; i < n / 4; i += stride) {
      const float4 g = g4[i], u = u4[i];
      out4[i] = make_uint2(pack_bf16x2(gelu_tanh_times(g.x, u.x), gelu_tanh_times(g.y, u.y)),
                           pack_bf16x2(gelu_tanh_times(g.z, u.z), gelu_tanh_times(g.w, u.w)));
    }
    return;
  }
  for (int64_t i = first; i < n; i += stride) out[i] = __float2bfloat16_rn(gelu_tanh_times(gate[i], up[i]));
}

// Tiled4 (Q4_0, torchao int4) rows [row0, row0 + n_rows) to row-major bf16, one warp per 16-row x 64-k
// block: a lane's 16-byte code load holds 32 of the block's values (its mma fragments, see
// packed_weight.cuh), which are decoded exactly as tiled_element does, staged in shared memory and
// written out as whole 128-byte row segments. Needs row0 % 16 == 0 and cols % 8 == 0.
constexpr int kDqWarps = 8;

static __global__ void __launch_bounds__(kDqWarps * 32)
    dequantize_tiled4_bf16_kernel(WeightView w, int64_t row0, int64_t n_rows, __nv_bfloat16* out) {
  __shared__ __align__(16) uint32_t stage[kDqWarps][16][36];  // bf16 pairs; 36-word rows: conflict-free
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t tile0 = row0 / 16, n_tiles = (n_rows + 15) / 16;
  const int64_t total = n_tiles * w.n_chunks, row_end = min(row0 + n_rows, w.rows);
  for (int64_t b = int64_t{blockIdx.x} * kDqWarps + warp; b < total; b += int64_t{gridDim.x} * kDqWarps) {
    const int64_t tile = tile0 + b / w.n_chunks;
    const int chunk = static_cast<int>(b % w.n_chunks);
    const uint4 code = load_stream(w.codes + (tile * w.n_chunks + chunk) * 32 + lane);
    const uint32_t words[4] = {code.x, code.y, code.z, code.w};
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      const int64_t grp = (int64_t{chunk} * 64 + 16 * s) / w.group_size;
      const int64_t meta = (tile * w.n_groups + grp) * 8 + g;
      const uint32_t sw = w.scales[meta];
      const uint32_t zw = w.zeros != nullptr ? w.zeros[meta] : 0u;
#pragma unroll
      for (int hi = 0; hi < 2; ++hi) {
        const uint32_t sbits = hi ? (sw >> 16) : (sw & 0xffffu);
        const float scale = w.scale_fp16 ? fp16_bits_to_f32(sbits) : bf16_bits_to_f32(sbits);
        const float z = bf16_bits_to_f32(hi ? (zw >> 16) : (zw & 0xffffu));
        float v[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          // nibble e = hi + 2 * upper + 4 * odd; v = cols 2t, 2t + 1, 2t + 8, 2t + 9
          const int e = hi + (j & 1) * 4 + (j >> 1) * 2;
          const int q = static_cast<int>((words[s] >> (4 * e)) & 0xfu);
          v[j] = w.zeros == nullptr ? __fmul_rn(static_cast<float>(q - 8), scale)
                                    : __fmul_rn(__fsub_rn(static_cast<float>(q), z), scale);
        }
        stage[warp][g + 8 * hi][8 * s + t] = pack_bf16x2(v[0], v[1]);
        stage[warp][g + 8 * hi][8 * s + t + 4] = pack_bf16x2(v[2], v[3]);
      }
    }
    __syncwarp();
#pragma unroll
    for (int i = lane; i < 16 * 8; i += 32) {
      const int r = i / 8, c = (i % 8) * 8;
      const int64_t row = tile * 16 + r, k = int64_t{chunk} * 64 + c;
      if (row < row_end && k < w.cols) {
        *reinterpret_cast<uint4*>(out + (row - row0) * w.cols + k) = *reinterpret_cast<const uint4*>(&stage[warp][r][c / 2]);
      }
    }
    __syncwarp();
  }
}

}  // namespace

cudaError_t launch_dequantize_weight_bf16(const WeightView& w, int64_t row0, int64_t n_rows, __nv_bfloat16* out,
                                          const LaunchContext& ctx) {
  if (n_rows <= 0) return cudaSuccess;
  if (dequantize_kquant_supported(w, out)) return launch_dequantize_kquant_bf16(w, row0, n_rows, out, ctx);
  if (w.layout != WeightLayout::kTiled4 || row0 % 16 != 0 || w.cols % 8 != 0) {
    return launch_dequantize_bf16(w, row0, n_rows, out, ctx);
  }
  const int64_t blocks = (n_rows + 15) / 16 * w.n_chunks;
  const int64_t ctas = std::min<int64_t>((blocks + kDqWarps - 1) / kDqWarps, int64_t{std::max(ctx.num_sms, 1)} * 16);
  dequantize_tiled4_bf16_kernel<<<static_cast<unsigned>(ctas), kDqWarps * 32, 0, ctx.stream>>>(w, row0, n_rows, out);
  return cudaGetLastError();
}

GemmRunner::~GemmRunner() {
  for (auto& [key, plan] : plans_) {
    if (plan.a) cublasLtMatrixLayoutDestroy(plan.a);
    if (plan.b) cublasLtMatrixLayoutDestroy(plan.b);
    if (plan.d) cublasLtMatrixLayoutDestroy(plan.d);
    if (plan.op) cublasLtMatmulDescDestroy(plan.op);
  }
  if (handle_ != nullptr) cublasLtDestroy(handle_);
  for (cudaEvent_t e : {start_, dq_done_[0], dq_done_[1], gemm_done_[0], gemm_done_[1], time_a_, time_b_}) {
    if (e != nullptr) cudaEventDestroy(e);
  }
  if (side_ != nullptr) {
    cudaStreamSynchronize(side_);
    cudaStreamDestroy(side_);
  }
}

Status GemmRunner::init() {
  GE_RETURN_IF_ERROR(cublas_status(cublasLtCreate(&handle_), "create handle"));
  GE_RETURN_IF_ERROR(cuda_status(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking), "gemm: create side stream"));
  for (cudaEvent_t* e : {&start_, &dq_done_[0], &dq_done_[1], &gemm_done_[0], &gemm_done_[1]}) {
    GE_RETURN_IF_ERROR(cuda_status(cudaEventCreateWithFlags(e, cudaEventDisableTiming), "gemm: create event"));
  }
  for (cudaEvent_t* e : {&time_a_, &time_b_}) {
    GE_RETURN_IF_ERROR(cuda_status(cudaEventCreate(e), "gemm: create timing event"));
  }
  if (const char* env = std::getenv("GE_CUDA_GEMM_TUNE"); env != nullptr && std::strcmp(env, "0") == 0) tune_ = false;
  return Status::ok();
}

Status GemmRunner::get_plan(int64_t nc, int64_t m, int64_t k, int64_t ldd, const Operands& ops, cudaStream_t stream,
                            Plan** out) {
  const auto key = std::make_tuple(nc, m, k, ldd);
  auto it = plans_.find(key);
  if (it != plans_.end()) {
    *out = &it->second;
    return Status::ok();
  }
  Plan plan;
  auto destroy = [&plan] {
    if (plan.a) cublasLtMatrixLayoutDestroy(plan.a);
    if (plan.b) cublasLtMatrixLayoutDestroy(plan.b);
    if (plan.d) cublasLtMatrixLayoutDestroy(plan.d);
    if (plan.op) cublasLtMatmulDescDestroy(plan.op);
  };
  Status st = [&]() -> Status {
    GE_RETURN_IF_ERROR(cublas_status(cublasLtMatmulDescCreate(&plan.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "desc"));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    GE_RETURN_IF_ERROR(cublas_status(
        cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)), "transa"));
    GE_RETURN_IF_ERROR(cublas_status(
        cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)), "transb"));
    GE_RETURN_IF_ERROR(cublas_status(cublasLtMatrixLayoutCreate(&plan.a, CUDA_R_16BF, k, nc, k), "layout a"));
    GE_RETURN_IF_ERROR(cublas_status(cublasLtMatrixLayoutCreate(&plan.b, CUDA_R_16BF, k, m, k), "layout b"));
    GE_RETURN_IF_ERROR(cublas_status(cublasLtMatrixLayoutCreate(&plan.d, CUDA_R_32F, nc, m, ldd), "layout d"));
    return choose_algo(plan, nc, m, k, ldd, ops, stream);
  }();
  if (!st.is_ok()) {
    destroy();
    return st;
  }
  auto [pos, inserted] = plans_.emplace(key, plan);
  (void)inserted;
  *out = &pos->second;
  return Status::ok();
}

Status GemmRunner::choose_algo(Plan& plan, int64_t nc, int64_t m, int64_t k, int64_t ldd, const Operands& ops,
                               cudaStream_t stream) {
  cublasLtMatmulPreference_t pref = nullptr;
  GE_RETURN_IF_ERROR(cublas_status(cublasLtMatmulPreferenceCreate(&pref), "preference"));
  size_t ws = kWorkspaceBytes;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  cublasLtMatmulHeuristicResult_t results[kTuneCandidates] = {};
  int found = 0;
  const cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(handle_, plan.op, plan.a, plan.b, plan.d, plan.d, pref,
                                                          kTuneCandidates, results, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (s != CUBLAS_STATUS_SUCCESS || found == 0) {
    return unsupported("cublasLt: no GEMM algorithm for bf16 [" + std::to_string(m) + " x " + std::to_string(k) +
                       "] x [" + std::to_string(k) + " x " + std::to_string(nc) + "]");
  }
  plan.algo = results[0].algo;
  // Timing needs a synchronising stream: never while a graph is being recorded, and only for shapes
  // big enough for the choice to matter (prefill; small batched-decode products keep the heuristic's).
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  GE_RETURN_IF_ERROR(cuda_status(cudaStreamIsCapturing(stream, &capture), "gemm: capture status"));
  if (!tune_ || found < 2 || m < kTuneMinRows || capture != cudaStreamCaptureStatusNone) return Status::ok();
  int range = 0;
  while ((m >> (range + 1)) > 0) ++range;
  const auto tuned_key = std::make_tuple(nc, k, ldd, range);
  if (auto it = tuned_.find(tuned_key); it != tuned_.end()) {
    cublasLtMatmulHeuristicResult_t check{};
    if (cublasLtMatmulAlgoCheck(handle_, plan.op, plan.a, plan.b, plan.d, plan.d, &it->second, &check) ==
            CUBLAS_STATUS_SUCCESS &&
        check.workspaceSize <= kWorkspaceBytes) {
      plan.algo = it->second;
      return Status::ok();
    }
  }

  const float alpha = 1.0f, beta = 0.0f;
  float best_ms = 0.0f;
  int best = -1;
  for (int i = 0; i < found; ++i) {
    if (results[i].state != CUBLAS_STATUS_SUCCESS) continue;
    const cublasLtMatmulAlgo_t* algo = &results[i].algo;
    auto launch = [&] {
      return cublasLtMatmul(handle_, plan.op, &alpha, ops.w, plan.a, ops.x, plan.b, &beta, ops.y, plan.d, ops.y,
                            plan.d, algo, workspace_.get(), kWorkspaceBytes, stream);
    };
    if (launch() != CUBLAS_STATUS_SUCCESS) continue;  // warm-up; a candidate that fails to launch is skipped
    GE_RETURN_IF_ERROR(cuda_status(cudaEventRecord(time_a_, stream), "gemm tuning event"));
    bool ok = true;
    for (int r = 0; r < kTuneReps && ok; ++r) ok = launch() == CUBLAS_STATUS_SUCCESS;
    GE_RETURN_IF_ERROR(cuda_status(cudaEventRecord(time_b_, stream), "gemm tuning event"));
    GE_RETURN_IF_ERROR(cuda_status(cudaEventSynchronize(time_b_), "gemm tuning"));
    float ms = 0.0f;
    GE_RETURN_IF_ERROR(cuda_status(cudaEventElapsedTime(&ms, time_a_, time_b_), "gemm tuning time"));
    if (ok && (best < 0 || ms < best_ms)) {
      best = i;
      best_ms = ms;
    }
  }
  ++tuned_shapes_;
  if (best > 0) {
    plan.algo = results[best].algo;
    ++tuned_changed_;
  }
  tuned_[tuned_key] = plan.algo;
  return Status::ok();
}

Status GemmRunner::run(const WeightView& w, const float* x, int64_t m, float* y, const LaunchContext& ctx) {
  const Output out{&w, y};
  return run_shared(x, m, std::span<const Output>(&out, 1), ctx);
}

Status GemmRunner::run_shared(const float* x, int64_t m, std::span<const Output> outs, const LaunchContext& ctx) {
  if (outs.empty() || m <= 0) return Status::ok();
  const int64_t K = outs[0].w->cols;
  for (const Output& o : outs) {
    if (o.w->cols != K) {
      return invalid_argument("gemm: weights sharing one input need equal cols (" + std::to_string(o.w->cols) +
                              " vs " + std::to_string(K) + ")");
    }
  }
  GE_RETURN_IF_ERROR(x_bf16_.ensure(static_cast<size_t>(m * K) * 2, "gemm x scratch"));
  GE_RETURN_IF_ERROR(workspace_.ensure(kWorkspaceBytes, "gemm workspace"));
  to_bf16_kernel<<<blocks_for(m * K / 4 + 1, 256, 8192), 256, 0, ctx.stream>>>(x, m * K, x_bf16_.as<__nv_bfloat16>());
  GE_RETURN_IF_ERROR(cuda_status(cudaGetLastError(), "gemm x to bf16"));
  for (const Output& o : outs) GE_RETURN_IF_ERROR(run_converted(*o.w, m, o.y, ctx));
  return Status::ok();
}

bool GemmRunner::gelu_input_enabled() {
  static const bool v = [] {
    const char* e = std::getenv("GE_CUDA_GEMM_GELU");
    return e == nullptr || std::strcmp(e, "0") != 0;
  }();
  return v;
}

bool GemmRunner::norm_input_enabled() {
  static const bool v = [] {
    const char* e = std::getenv("GE_CUDA_GEMM_NORM");
    return e == nullptr || std::strcmp(e, "0") != 0;
  }();
  return v;
}

Result<__nv_bfloat16*> GemmRunner::input_bf16(int64_t m, int64_t cols) {
  uint64_t n = 0;
  if (m <= 0 || cols <= 0 || !mul_ok(static_cast<uint64_t>(m), static_cast<uint64_t>(cols), &n) || n > (uint64_t{1} << 62))
    return invalid_argument("gemm input: m " + std::to_string(m) + " x cols " + std::to_string(cols) + " out of range");
  GE_RETURN_IF_ERROR(x_bf16_.ensure(static_cast<size_t>(n) * 2, "gemm x scratch"));
  prepared_m_ = m;
  prepared_cols_ = cols;
  return x_bf16_.as<__nv_bfloat16>();
}

Status GemmRunner::run_prepared(int64_t m, std::span<const Output> outs, const LaunchContext& ctx) {
  if (m != prepared_m_) return invalid_argument("gemm: run_prepared rows differ from input_bf16's");
  for (const Output& o : outs) {
    if (o.w->cols != prepared_cols_) {
      return invalid_argument("gemm: run_prepared weight cols " + std::to_string(o.w->cols) + " vs input cols " +
                              std::to_string(prepared_cols_));
    }
  }
  GE_RETURN_IF_ERROR(workspace_.ensure(kWorkspaceBytes, "gemm workspace"));
  for (const Output& o : outs) GE_RETURN_IF_ERROR(run_converted(*o.w, m, o.y, ctx));
  return Status::ok();
}

Status GemmRunner::run_gelu_input(const WeightView& w, const float* gate, const float* up, int64_t m, float* y,
                                  const LaunchContext& ctx) {
  if (m <= 0) return Status::ok();
  const int64_t K = w.cols;
  uint64_t n64 = 0;
  if (K <= 0 || !mul_ok(static_cast<uint64_t>(m), static_cast<uint64_t>(K), &n64) || n64 > (uint64_t{1} << 62))
    return invalid_argument("gemm gelu input: m " + std::to_string(m) + " x cols " + std::to_string(K) + " out of range");
  const int64_t n = static_cast<int64_t>(n64);
  GE_RETURN_IF_ERROR(x_bf16_.ensure(static_cast<size_t>(n) * 2, "gemm x scratch"));
  GE_RETURN_IF_ERROR(workspace_.ensure(kWorkspaceBytes, "gemm workspace"));
  gelu_mul_to_bf16_kernel<<<blocks_for(n / 4 + 1, 256, 8192), 256, 0, ctx.stream>>>(gate, up, n,
                                                                                   x_bf16_.as<__nv_bfloat16>());
  GE_RETURN_IF_ERROR(cuda_status(cudaGetLastError(), "gemm gelu input to bf16"));
  return run_converted(w, m, y, ctx);
}

Status GemmRunner::run_converted(const WeightView& w, int64_t m, float* y, const LaunchContext& ctx) {
  const int64_t K = w.cols, N = w.rows;
  int64_t chunk = static_cast<int64_t>(weight_chunk_bytes_ / static_cast<size_t>(K * 2)) / 128 * 128;
  chunk = std::max<int64_t>(chunk, 128);
  chunk = std::min<int64_t>(chunk, N);
  const int64_t n_chunks = (N + chunk - 1) / chunk;
  const int n_buf = n_chunks > 1 ? 2 : 1;
  const size_t buf_elems = static_cast<size_t>(chunk * K);
  GE_RETURN_IF_ERROR(w_bf16_.ensure(buf_elems * 2 * n_buf, "gemm weight scratch"));

  // Two weight buffers: the side stream dequantizes chunk i + 1 while the GEMM of chunk i runs.
  LaunchContext dq_ctx = ctx;
  if (n_buf > 1) {
    dq_ctx.stream = side_;
    GE_RETURN_IF_ERROR(cuda_status(cudaEventRecord(start_, ctx.stream), "gemm fork"));
    GE_RETURN_IF_ERROR(cuda_status(cudaStreamWaitEvent(side_, start_, 0), "gemm fork"));
  }
  const float alpha = 1.0f, beta = 0.0f;
  for (int64_t i = 0; i < n_chunks; ++i) {
    const int64_t n0 = i * chunk, nc = std::min(chunk, N - n0);
    const int b = static_cast<int>(i % n_buf);
    __nv_bfloat16* wb = w_bf16_.as<__nv_bfloat16>() + buf_elems * b;
    if (n_buf > 1 && i >= 2) {
      GE_RETURN_IF_ERROR(cuda_status(cudaStreamWaitEvent(side_, gemm_done_[b], 0), "gemm buffer wait"));
    }
    GE_RETURN_IF_ERROR(cuda_status(launch_dequantize_weight_bf16(w, n0, nc, wb, dq_ctx), "gemm dequantize"));
    if (n_buf > 1) {
      GE_RETURN_IF_ERROR(cuda_status(cudaEventRecord(dq_done_[b], side_), "gemm dequantize event"));
      GE_RETURN_IF_ERROR(cuda_status(cudaStreamWaitEvent(ctx.stream, dq_done_[b], 0), "gemm dequantize wait"));
    }
    Plan* plan = nullptr;
    GE_RETURN_IF_ERROR(get_plan(nc, m, K, N, Operands{wb, x_bf16_.as<__nv_bfloat16>(), y + n0}, ctx.stream, &plan));
    GE_RETURN_IF_ERROR(cublas_status(
        cublasLtMatmul(handle_, plan->op, &alpha, wb, plan->a, x_bf16_.get(), plan->b, &beta, y + n0, plan->d, y + n0,
                       plan->d, &plan->algo, workspace_.get(), kWorkspaceBytes, ctx.stream),
        "matmul"));
    if (n_buf > 1) GE_RETURN_IF_ERROR(cuda_status(cudaEventRecord(gemm_done_[b], ctx.stream), "gemm event"));
  }
  return Status::ok();
}

}  // namespace ge::cuda
