// Kernel lab for the K-quant (Q4_K, Q5_K, Q6_K) kernels on Gemma 4 31B shapes: every decode GEMV
// configuration (and the kernels used before them) in us per call and weight GB/s next to a plain
// streaming read of the same bytes, and the bf16 prefill dequantizer vs the generic one.
// Usage: kquant_bench [reps (default 30)]. Build: dev/cuda/kquant_build.sh [build-dir].
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "backend/cuda/dequantize_kquant.h"
#include "backend/cuda/gemv_kquant.h"
#include "backend/cuda/packed_weight.cuh"

namespace {

#define CHECK(x)                                                                                 \
  do {                                                                                           \
    cudaError_t e_ = (x);                                                                        \
    if (e_ != cudaSuccess) {                                                                     \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));    \
      std::exit(1);                                                                              \
    }                                                                                            \
  } while (0)

// Random bytes with every block's fp16 fields set to small finite scales (d = dmin = 2^-10).
__global__ void fill_kernel(uint8_t* p, int64_t n, int block_bytes, int d_off, int dmin_off, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    const int o = static_cast<int>(i % block_bytes);
    uint8_t v = static_cast<uint8_t>(h >> 8);
    if (o == d_off || o == dmin_off) v = 0x00;
    if (o == d_off + 1 || o == dmin_off + 1) v = 0x14;  // fp16 0x1400 = 2^-10
    p[i] = v;
  }
}

__global__ void stream_read_kernel(const uint4* p, int64_t n16, uint32_t* sink) {
  uint32_t acc = 0;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n16; i += int64_t{gridDim.x} * blockDim.x) {
    const uint4 v = ge::cuda::load_stream(p + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x12345678u) *sink = acc;
}

template <typename F>
float time_us(F&& f, int reps) {
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  for (int i = 0; i < 3; ++i) f();
  CHECK(cudaEventRecord(a));
  for (int i = 0; i < reps; ++i) f();
  CHECK(cudaEventRecord(b));
  CHECK(cudaEventSynchronize(b));
  float ms = 0;
  CHECK(cudaEventElapsedTime(&ms, a, b));
  CHECK(cudaEventDestroy(a));
  CHECK(cudaEventDestroy(b));
  return ms * 1000.0f / reps;
}

struct Shape {
  const char* name;
  int64_t rows, cols;
  int per_token;  // products of this shape per decode token of the 60-layer model
};

}  // namespace

int main(int argc, char** argv) {
  using ge::QuantType;
  const int reps = argc > 1 ? std::atoi(argv[1]) : 30;
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));
  int sms = prop.multiProcessorCount;
  std::printf("device %s, %d SMs, reps %d\n", prop.name, sms, reps);
  // Gemma 4 31B: 50 sliding layers (q 8192, k 4096, v 4096), 10 full (q 16384, k 4096, o K 16384).
  const Shape shapes[] = {
      {"q sliding", 8192, 5376, 50},     {"k|v sliding", 4096, 5376, 100}, {"o sliding", 5376, 8192, 50},
      {"gate|up", 21504, 5376, 120},     {"down", 5376, 21504, 60},         {"q full", 16384, 5376, 10},
      {"o full", 5376, 16384, 10},
  };
  const QuantType types[] = {QuantType::kQ4_K, QuantType::kQ5_K, QuantType::kQ6_K};
  uint32_t* sink = nullptr;
  CHECK(cudaMalloc(&sink, 4));
  float* x = nullptr;
  float* y = nullptr;
  CHECK(cudaMalloc(&x, 16 * 21504 * 4));
  CHECK(cudaMalloc(&y, 16 * 21504 * 4));
  CHECK(cudaMemset(x, 0, 16 * 21504 * 4));
  const int nv = ge::cuda::gemv_kquant_lab_variants();
  for (QuantType t : types) {
    const int bb = t == QuantType::kQ4_K ? 144 : (t == QuantType::kQ5_K ? 176 : 210);
    const int d_off = t == QuantType::kQ6_K ? 208 : 0, dmin_off = t == QuantType::kQ6_K ? 208 : 2;
    std::printf("\n== %s ==\n", ge::quant_type_name(t));
    std::vector<double> token_us(static_cast<size_t>(nv) * 3, 0.0);
    double token_stream_us = 0.0;
    for (const Shape& s : shapes) {
      const int64_t bytes = s.rows * (s.cols / 256) * bb;
      uint8_t* w = nullptr;
      CHECK(cudaMalloc(&w, static_cast<size_t>(bytes)));
      fill_kernel<<<4096, 256>>>(w, bytes, bb, d_off, dmin_off, 1234u);
      CHECK(cudaGetLastError());
      const float st = time_us(
          [&] { stream_read_kernel<<<sms * 8, 512>>>(reinterpret_cast<const uint4*>(w), bytes / 16, sink); }, reps);
      token_stream_us += st * s.per_token;
      std::printf("%-12s [%6lld x %5lld] %6.1f MB  stream read %7.1f us %6.0f GB/s\n", s.name,
                  static_cast<long long>(s.rows), static_cast<long long>(s.cols), bytes / 1e6, st, bytes / st / 1e3);
      const int ms_list[] = {1, 4, 16};
      for (int mi = 0; mi < 3; ++mi) {
        const int m = ms_list[mi];
        std::printf("  M=%-2d", m);
        for (int v = 0; v < nv; ++v) {
          const float us = time_us(
              [&] { CHECK(ge::cuda::gemv_kquant_lab(t, w, s.rows, s.cols, x, m, y, v, sms, nullptr)); }, reps);
          token_us[static_cast<size_t>(v) * 3 + mi] += us * s.per_token;
          std::printf(" | v%d %7.1f us %5.0f GB/s", v, us, bytes / us / 1e3);
        }
        std::printf("\n");
      }
      CHECK(cudaFree(w));
    }
    std::printf("per decode token of 31B linear layers (all %s): stream read %.2f ms\n", ge::quant_type_name(t),
                token_stream_us / 1e3);
    for (int v = 0; v < nv; ++v) {
      std::printf("  v%d %-30s M=1 %7.2f ms  M=4 %7.2f ms  M=16 %7.2f ms\n", v, ge::cuda::gemv_kquant_lab_variant_name(v),
                  token_us[static_cast<size_t>(v) * 3] / 1e3, token_us[static_cast<size_t>(v) * 3 + 1] / 1e3,
                  token_us[static_cast<size_t>(v) * 3 + 2] / 1e3);
    }
    // Prefill dequantizer on one gate|up-sized chunk: 4096 rows x 5376 (read raw + write bf16).
    {
      const int64_t rows = 4096, cols = 5376, bytes = rows * (cols / 256) * bb;
      uint8_t* w = nullptr;
      uint16_t* out = nullptr;
      CHECK(cudaMalloc(&w, static_cast<size_t>(bytes)));
      CHECK(cudaMalloc(&out, static_cast<size_t>(rows * cols * 2)));
      fill_kernel<<<4096, 256>>>(w, bytes, bb, d_off, dmin_off, 99u);
      const double moved = static_cast<double>(bytes) + rows * cols * 2.0;
      const float us_k = time_us(
          [&] { CHECK(ge::cuda::dequantize_kquant_bf16_lab(t, w, rows, cols, 0, rows, out, sms, nullptr)); }, reps);
      ge::cuda::WeightView wv;
      wv.layout = ge::cuda::WeightLayout::kRawBlocks;
      wv.type = t;
      wv.rows = rows;
      wv.cols = cols;
      wv.raw = w;
      wv.row_bytes = cols / 256 * bb;
      ge::cuda::LaunchContext ctx;
      ctx.num_sms = sms;
      const float us_g = time_us(
          [&] { CHECK(ge::cuda::launch_dequantize_bf16(wv, 0, rows, reinterpret_cast<__nv_bfloat16*>(out), ctx)); },
          reps);
      std::printf("dequantize to bf16 [4096 x 5376]: k-quant %.1f us (%.0f GB/s moved), generic %.1f us (%.0f GB/s)\n",
                  us_k, moved / us_k / 1e3, us_g, moved / us_g / 1e3);
      CHECK(cudaFree(w));
      CHECK(cudaFree(out));
    }
  }
  CHECK(cudaDeviceSynchronize());
  return 0;
}
