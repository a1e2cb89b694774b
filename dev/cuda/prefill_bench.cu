// Prefill lab: where a Gemma 4 31B prefill spends its time. Times the prefill GEMM (dequantize + cuBLASLt)
// per weight shape at M = 512/2048/8192 (heuristic vs timed algorithm choice), the tiled4 -> bf16 dequantizer against the generic one (and
// checks they agree bit for bit), and prefill attention (tensor-core vs SIMT kernel) for the sliding and
// full layer shapes; then adds them up per forward pass. Events, median of repetitions after warm-up.
// Build: dev/cuda/prefill_build.sh [build-dir]; run: prefill_bench [--quick] [--attn-only] [--out FILE]
// (--attn-only: the attention section alone, one SIMT repetition).
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend/cuda/attention.cuh"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/gemm.cuh"
#include "backend/cuda/kv_cache.cuh"
#include "backend/cuda/packed_weight.cuh"

namespace {

#define CHECK_CUDA(expr)                                                                            \
  do {                                                                                             \
    cudaError_t e_ = (expr);                                                                       \
    if (e_ != cudaSuccess) {                                                                       \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_)); \
      std::exit(1);                                                                                \
    }                                                                                              \
  } while (0)
#define CHECK_OK(expr)                                                                        \
  do {                                                                                        \
    ge::Status s_ = (expr);                                                                   \
    if (!s_.is_ok()) {                                                                        \
      std::fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, s_.to_string().c_str());        \
      std::exit(1);                                                                           \
    }                                                                                         \
  } while (0)

FILE* g_out = nullptr;
void report(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void report(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vprintf(fmt, ap);
  va_end(ap);
  if (g_out) {
    va_start(ap, fmt);
    std::vfprintf(g_out, fmt, ap);
    va_end(ap);
  }
  std::fflush(stdout);
}

template <typename F>
float median_ms(cudaStream_t s, int warmup, int reps, F&& fn) {
  cudaEvent_t a, b;
  CHECK_CUDA(cudaEventCreate(&a));
  CHECK_CUDA(cudaEventCreate(&b));
  for (int i = 0; i < warmup; ++i) fn();
  CHECK_CUDA(cudaStreamSynchronize(s));
  std::vector<float> t;
  for (int i = 0; i < reps; ++i) {
    CHECK_CUDA(cudaEventRecord(a, s));
    fn();
    CHECK_CUDA(cudaEventRecord(b, s));
    CHECK_CUDA(cudaEventSynchronize(b));
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  CHECK_CUDA(cudaEventDestroy(a));
  CHECK_CUDA(cudaEventDestroy(b));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

__global__ void fill_normalish(float* p, int64_t n, uint32_t seed, float amp) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    h *= 3266489917u;
    h ^= h >> 16;
    p[i] = amp * ((static_cast<float>(h & 0xffffff) / 16777216.0f) * 2.0f - 1.0f) * 1.7f;
  }
}

__global__ void to_bf16(const float* x, int64_t n, __nv_bfloat16* y) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    y[i] = __float2bfloat16_rn(x[i]);
}

__global__ void iota_kernel(int32_t* p, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) p[i] = i;
}

float* dev_floats(int64_t n, uint32_t seed, float amp) {
  float* p = nullptr;
  CHECK_CUDA(cudaMalloc(&p, static_cast<size_t>(n) * 4));
  fill_normalish<<<4096, 256>>>(p, n, seed, amp);
  CHECK_CUDA(cudaDeviceSynchronize());
  return p;
}

struct Shape {
  const char* name;
  int64_t rows, cols;
  int count;  // per forward pass
};

// Gemma 4 31B linear layers (the LM head runs on one row per prompt and is left out).
std::vector<Shape> shapes_31b() {
  return {{"q_sliding", 8192, 5376, 50}, {"k_sliding", 4096, 5376, 50}, {"v_sliding", 4096, 5376, 50},
          {"o_sliding", 5376, 8192, 50}, {"q_full", 16384, 5376, 10},   {"k_full", 2048, 5376, 10},
          {"o_full", 5376, 16384, 10},   {"gate", 21504, 5376, 60},     {"up", 21504, 5376, 60},
          {"down", 5376, 21504, 60}};
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, attn_only = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    if (!std::strcmp(argv[i], "--attn-only")) attn_only = true;
    if (!std::strcmp(argv[i], "--out") && i + 1 < argc) g_out = std::fopen(argv[++i], "w");
  }
  auto created = ge::create_cuda_backend();
  if (!created.is_ok()) {
    std::fprintf(stderr, "%s\n", created.status().to_string().c_str());
    return 1;
  }
  std::unique_ptr<ge::Backend> backend = std::move(created).value();
  auto* be = dynamic_cast<ge::CudaBackend*>(backend.get());
  cudaStream_t s = static_cast<cudaStream_t>(be->stream());
  int sms = 0;
  CHECK_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  uint32_t* err_word = nullptr;
  CHECK_CUDA(cudaMalloc(&err_word, 4));
  CHECK_CUDA(cudaMemset(err_word, 0, 4));
  ge::cuda::LaunchContext ctx;
  ctx.stream = s;
  ctx.error_word = err_word;
  ctx.num_sms = sms;
  report("device: %s, %d SMs\n", be->device_name().c_str(), sms);
  const int reps = quick ? 3 : 7;
  const std::vector<int64_t> ms_list = quick ? std::vector<int64_t>{512, 2048} : std::vector<int64_t>{512, 2048, 8192};

  // ---- dequantizer: coalesced tiled4 kernel vs the generic one ----
  if (!attn_only) {
    for (bool zero : {false, true}) {
      auto w = ge::cuda::synthesize_packed_weight(zero ? ge::QuantType::kInt4Group : ge::QuantType::kQ4_0, 21504, 5376,
                                                  zero ? 32 : 0, zero, 77, ctx);
      CHECK_OK(w.status());
      const ge::cuda::WeightView& v = (*w)->view();
      const int64_t n = v.rows * v.cols;
      __nv_bfloat16 *a = nullptr, *b = nullptr;
      CHECK_CUDA(cudaMalloc(&a, n * 2));
      CHECK_CUDA(cudaMalloc(&b, n * 2));
      CHECK_CUDA(ge::cuda::launch_dequantize_bf16(v, 0, v.rows, a, ctx));
      CHECK_CUDA(ge::cuda::launch_dequantize_weight_bf16(v, 0, v.rows, b, ctx));
      // Partial chunk starting mid-weight, as GemmRunner issues them.
      CHECK_CUDA(ge::cuda::launch_dequantize_weight_bf16(v, 6144, 3200, b + 6144 * v.cols, ctx));
      CHECK_CUDA(cudaStreamSynchronize(s));
      std::vector<uint16_t> ha(n), hb(n);
      CHECK_CUDA(cudaMemcpy(ha.data(), a, n * 2, cudaMemcpyDeviceToHost));
      CHECK_CUDA(cudaMemcpy(hb.data(), b, n * 2, cudaMemcpyDeviceToHost));
      int64_t diff = 0;
      for (int64_t i = 0; i < n; ++i) diff += ha[i] != hb[i];
      const double bytes = static_cast<double>((*w)->bytes()) + n * 2.0;
      const float t_gen = median_ms(s, 1, reps, [&] { CHECK_CUDA(ge::cuda::launch_dequantize_bf16(v, 0, v.rows, a, ctx)); });
      const float t_fast = median_ms(s, 1, reps, [&] { CHECK_CUDA(ge::cuda::launch_dequantize_weight_bf16(v, 0, v.rows, b, ctx)); });
      report("dequant %s 21504x5376 -> bf16: generic %.3f ms (%.0f GB/s), tiled4 kernel %.3f ms (%.0f GB/s); "
             "mismatching values: %lld\n",
             zero ? "int4-g32+zero" : "q4_0", t_gen, bytes / (t_gen * 1e-3) / 1e9, t_fast, bytes / (t_fast * 1e-3) / 1e9,
             static_cast<long long>(diff));
      CHECK_CUDA(cudaFree(a));
      CHECK_CUDA(cudaFree(b));
    }
  }

  // ---- prefill GEMM per shape ----
  const std::vector<Shape> shapes = shapes_31b();
  std::vector<double> gemm_forward_ms(ms_list.size(), 0.0), dq_forward_ms(ms_list.size(), 0.0);
  if (!attn_only) {
    ge::cuda::GemmRunner runner, untuned;
    CHECK_OK(runner.init());
    CHECK_OK(untuned.init());
    runner.set_tuning(true);
    untuned.set_tuning(false);
    const int64_t max_m = ms_list.back();
    float* x = dev_floats(max_m * 21504, 11, 1.0f);
    float* y = nullptr;
    CHECK_CUDA(cudaMalloc(&y, static_cast<size_t>(max_m) * 21504 * 4));
    __nv_bfloat16* scratch = nullptr;
    CHECK_CUDA(cudaMalloc(&scratch, size_t{21504} * 5376 * 2));
    report("\nprefill GEMM (q4_0 weights, dequantize + cuBLASLt bf16, fp32 out); TFLOP/s = 2*M*N*K / time\n");
    report("(chunks of 64 MiB of bf16 weight rows; heuristic: cuBLASLt's first candidate, tuned: fastest of its top 8\n"
           " timed on the first call, as GemmRunner does by default; whole: the weight in one chunk, tuned)\n");
    report("%-10s %6s %6s %6s | %9s %8s | %9s %8s | %9s %8s | %8s\n", "shape", "N", "K", "M", "heur. ms", "TFLOP/s",
           "tuned ms", "TFLOP/s", "whole ms", "TFLOP/s", "dq ms");
    for (const Shape& sh : shapes) {
      auto w = ge::cuda::synthesize_packed_weight(ge::QuantType::kQ4_0, sh.rows, sh.cols, 0, false, 5, ctx);
      CHECK_OK(w.status());
      const ge::cuda::WeightView& v = (*w)->view();
      const float t_dq = median_ms(s, 1, reps, [&] { CHECK_CUDA(ge::cuda::launch_dequantize_weight_bf16(v, 0, v.rows, scratch, ctx)); });
      for (size_t mi = 0; mi < ms_list.size(); ++mi) {
        const int64_t m = ms_list[mi];
        const double flop = 2.0 * m * sh.rows * sh.cols;
        float t[3];
        t[0] = median_ms(s, 1, reps, [&] { CHECK_OK(untuned.run(v, x, m, y, ctx)); });
        runner.set_weight_chunk_bytes(size_t{64} << 20);
        t[1] = median_ms(s, 1, reps, [&] { CHECK_OK(runner.run(v, x, m, y, ctx)); });
        runner.set_weight_chunk_bytes(size_t{1} << 30);
        t[2] = median_ms(s, 1, reps, [&] { CHECK_OK(runner.run(v, x, m, y, ctx)); });
        const float best = t[1];
        gemm_forward_ms[mi] += best * sh.count;
        dq_forward_ms[mi] += t_dq * sh.count;
        report("%-10s %6lld %6lld %6lld | %9.3f %8.1f | %9.3f %8.1f | %9.3f %8.1f | %8.3f\n", sh.name,
               static_cast<long long>(sh.rows), static_cast<long long>(sh.cols), static_cast<long long>(m), t[0],
               flop / (t[0] * 1e-3) / 1e12, t[1], flop / (t[1] * 1e-3) / 1e12, t[2], flop / (t[2] * 1e-3) / 1e12, t_dq);
      }
    }
    runner.set_weight_chunk_bytes(size_t{64} << 20);
    report("tuned shapes: %d, of which %d chose other than the heuristic's first candidate\n", runner.tuned_shapes(),
           runner.tuned_changed());

    // cuBLASLt alone on the dequantized weight: its first heuristic choice vs the fastest of its top 8.
    report("\ncuBLASLt bf16 x bf16 -> fp32 alone (whole weight, no dequantize): heuristic #0 vs best of top 8\n");
    cublasLtHandle_t lt = nullptr;
    if (cublasLtCreate(&lt) != CUBLAS_STATUS_SUCCESS) std::exit(1);
    void* ws = nullptr;
    const size_t ws_bytes = size_t{32} << 20;
    CHECK_CUDA(cudaMalloc(&ws, ws_bytes));
    __nv_bfloat16* xb = nullptr;
    CHECK_CUDA(cudaMalloc(&xb, static_cast<size_t>(max_m) * 21504 * 2));
    for (const Shape& sh : shapes) {
      auto w = ge::cuda::synthesize_packed_weight(ge::QuantType::kQ4_0, sh.rows, sh.cols, 0, false, 5, ctx);
      CHECK_OK(w.status());
      CHECK_CUDA(ge::cuda::launch_dequantize_weight_bf16((*w)->view(), 0, sh.rows, scratch, ctx));
      for (int64_t m : ms_list) {
        if (m == 8192) continue;
        const int64_t K = sh.cols, N = sh.rows;
        to_bf16<<<4096, 256, 0, s>>>(x, m * K, xb);
        cublasLtMatmulDesc_t op;
        cublasLtMatrixLayout_t la, lb, ld;
        cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
        const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta));
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb));
        cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, K, N, K);
        cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, K, m, K);
        cublasLtMatrixLayoutCreate(&ld, CUDA_R_32F, N, m, N);
        cublasLtMatmulPreference_t pref;
        cublasLtMatmulPreferenceCreate(&pref);
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes, sizeof(ws_bytes));
        cublasLtMatmulHeuristicResult_t res[8];
        int found = 0;
        cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, ld, ld, pref, 8, res, &found);
        const float alpha = 1.0f, beta = 0.0f;
        float t0 = 0, best = 1e30f;
        int best_i = -1;
        for (int i = 0; i < found; ++i) {
          const float t = median_ms(s, 1, 5, [&] {
            cublasLtMatmul(lt, op, &alpha, scratch, la, xb, lb, &beta, y, ld, y, ld, &res[i].algo, ws, ws_bytes, s);
          });
          if (i == 0) t0 = t;
          if (t < best) {
            best = t;
            best_i = i;
          }
        }
        const double flop = 2.0 * m * N * K;
        report("%-10s M=%5lld: #0 %.3f ms (%.0f TFLOP/s), best #%d of %d %.3f ms (%.0f TFLOP/s)\n", sh.name,
               static_cast<long long>(m), t0, flop / (t0 * 1e-3) / 1e12, best_i, found, best,
               flop / (best * 1e-3) / 1e12);
        cublasLtMatmulPreferenceDestroy(pref);
        cublasLtMatrixLayoutDestroy(la);
        cublasLtMatrixLayoutDestroy(lb);
        cublasLtMatrixLayoutDestroy(ld);
        cublasLtMatmulDescDestroy(op);
      }
    }
    CHECK_CUDA(cudaFree(ws));
    CHECK_CUDA(cudaFree(xb));
    cublasLtDestroy(lt);
    CHECK_CUDA(cudaFree(x));
    CHECK_CUDA(cudaFree(y));
    CHECK_CUDA(cudaFree(scratch));
  }

  // ---- prefill attention: sliding (32 q / 16 kv heads, d 256, window 1024) and full (32 / 4, d 512) ----
  std::vector<double> attn_forward_ms(ms_list.size(), 0.0), attn_simt_forward_ms(ms_list.size(), 0.0);
  report("\nprefill attention, one chunk of T tokens at positions 0..T-1; TFLOP/s over visible (q, k) pairs x 4d\n");
  report("%-8s %6s | %9s %8s | %9s %8s | %8s | %s\n", "layer", "T", "mma ms", "TFLOP/s", "simt ms", "TFLOP/s", "speedup",
         "rel L2 mma vs simt");
  for (int full = 0; full < 2; ++full) {
    const int nq = 32, nkv = full ? 4 : 16, d = full ? 512 : 256, window = full ? 0 : 1024, count = full ? 10 : 50;
    for (size_t mi = 0; mi < ms_list.size(); ++mi) {
      const int T = static_cast<int>(ms_list[mi]);
      ge::KvLayerSpec spec;
      spec.n_kv_heads = nkv;
      spec.head_dim = d;
      spec.sliding_window = window;
      spec.capacity = window > 0 ? window + T : T;
      auto cache = ge::cuda::create_cuda_kv_cache({spec});
      CHECK_OK(cache.status());
      const ge::cuda::CudaKvCache::Layer& layer = (*cache)->layer(0);
      float* k = dev_floats(int64_t{T} * nkv * d, 21, 1.0f);
      float* vv = dev_floats(int64_t{T} * nkv * d, 22, 1.0f);
      float* q = dev_floats(int64_t{T} * nq * d, 23, 0.5f);
      float *o1 = nullptr, *o2 = nullptr;
      int32_t* pos = nullptr;
      CHECK_CUDA(cudaMalloc(&o1, int64_t{T} * nq * d * 4));
      CHECK_CUDA(cudaMalloc(&o2, int64_t{T} * nq * d * 4));
      CHECK_CUDA(cudaMalloc(&pos, T * 4));
      iota_kernel<<<64, 256, 0, s>>>(pos, T);
      CHECK_CUDA(ge::cuda::launch_kv_store(layer, k, vv, T, pos, ctx));
      ge::AttentionParams ap;
      ap.n_heads = nq;
      ap.n_kv_heads = nkv;
      ap.head_dim = d;
      ap.sliding_window = window;
      ap.scale = 1.0f / std::sqrt(static_cast<float>(d));
      ge::cuda::DeviceMemory partials;
      ge::cuda::AttentionScratch mma_scratch{&partials, false}, simt_scratch{&partials, true};
      const float t_mma = median_ms(s, 1, reps, [&] { CHECK_CUDA(ge::cuda::launch_attention(layer, q, T, pos, ap, o1, mma_scratch, ctx)); });
      const float t_simt = median_ms(s, 1, quick || attn_only ? 1 : 3, [&] { CHECK_CUDA(ge::cuda::launch_attention(layer, q, T, pos, ap, o2, simt_scratch, ctx)); });
      CHECK_CUDA(cudaStreamSynchronize(s));
      const int64_t n = int64_t{T} * nq * d;
      std::vector<float> h1(n), h2(n);
      CHECK_CUDA(cudaMemcpy(h1.data(), o1, n * 4, cudaMemcpyDeviceToHost));
      CHECK_CUDA(cudaMemcpy(h2.data(), o2, n * 4, cudaMemcpyDeviceToHost));
      double num = 0, den = 0;
      for (int64_t i = 0; i < n; ++i) {
        num += (double(h1[i]) - h2[i]) * (double(h1[i]) - h2[i]);
        den += double(h2[i]) * h2[i];
      }
      double pairs = 0;
      for (int t = 0; t < T; ++t) pairs += window > 0 ? std::min(t + 1, window) : t + 1;
      const double flop = pairs * nq * d * 4.0;
      attn_forward_ms[mi] += t_mma * count;
      attn_simt_forward_ms[mi] += t_simt * count;
      report("%-8s %6d | %9.3f %8.1f | %9.3f %8.1f | %7.1fx | %.2e\n", full ? "full" : "sliding", T, t_mma,
             flop / (t_mma * 1e-3) / 1e12, t_simt, flop / (t_simt * 1e-3) / 1e12, t_simt / t_mma, std::sqrt(num / den));
      CHECK_CUDA(cudaFree(k));
      CHECK_CUDA(cudaFree(vv));
      CHECK_CUDA(cudaFree(q));
      CHECK_CUDA(cudaFree(o1));
      CHECK_CUDA(cudaFree(o2));
      CHECK_CUDA(cudaFree(pos));
    }
  }
  uint32_t bits = 0;
  CHECK_CUDA(cudaMemcpy(&bits, err_word, 4, cudaMemcpyDeviceToHost));
  report("device error word: %u\n", bits);

  report("\nper forward pass (60 layers, one chunk of M tokens): sums of the medians above\n");
  for (size_t mi = 0; mi < ms_list.size(); ++mi) {
    const double m = static_cast<double>(ms_list[mi]);
    const double total = gemm_forward_ms[mi] + attn_forward_ms[mi];
    report("M=%5lld: GEMM %.1f ms (of which dequantize %.1f ms), attention %.1f ms (SIMT kernel: %.1f ms); "
           "GEMM+attention %.1f ms -> at most %.0f tok/s\n",
           static_cast<long long>(ms_list[mi]), gemm_forward_ms[mi], dq_forward_ms[mi], attn_forward_ms[mi],
           attn_simt_forward_ms[mi], total, m / (total * 1e-3));
  }
  if (g_out) std::fclose(g_out);
  return 0;
}
