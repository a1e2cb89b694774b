// CPU kernel bench: (a) streaming-read memory bandwidth, (b) matmul throughput of the "cpu" backend
// for the Gemma 3 270M shapes and weight types (decode M=1 and prefill M=512), 1 and 2 threads.
// Prints medians of repeated runs; build and run with dev/cpu/run_bench.sh.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_packed_weight.h"
#include "core/dtype.h"
#include "quant/quant_type.h"

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Sum of a buffer with wide independent accumulators: the loop is load-bound, not add-bound.
__attribute__((target("avx2"))) double read_sum(const float* p, size_t n) {
  float acc[32] = {};
  for (size_t i = 0; i + 32 <= n; i += 32)
    for (int j = 0; j < 32; ++j) acc[j] += p[i + j];
  double s = 0;
  for (float a : acc) s += a;
  return s;
}

// Streaming-read bandwidth (GB/s) of `threads` threads each reading its own slice of a buffer much
// larger than the last-level cache.
double read_bandwidth(int threads, size_t bytes, int reps) {
  const size_t n = bytes / sizeof(float);
  std::vector<float> buf(n, 1.0f);
  std::vector<double> times;
  volatile double sink = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    std::vector<std::thread> ts;
    std::vector<double> sums(static_cast<size_t>(threads));
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&, t] {
        const size_t b = n / threads * t, e = t + 1 == threads ? n : n / threads * (t + 1);
        sums[static_cast<size_t>(t)] = read_sum(buf.data() + b, e - b);
      });
    }
    for (auto& t : ts) t.join();
    times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    for (double s : sums) sink = sink + s;
  }
  return static_cast<double>(bytes) / median(times) / 1e9;
}

struct RandomQuant {
  ge::QuantWeight view;
  std::vector<uint8_t> data;
};

// Random bytes with sane fp16 scales: timing does not depend on the values.
RandomQuant make_weight(ge::QuantType type, int64_t rows, int64_t cols, std::mt19937& rng) {
  RandomQuant w;
  const ge::BlockLayout bl = ge::block_layout(type);
  const int64_t blocks = rows * (cols / bl.block_elems);
  w.data.resize(static_cast<size_t>(blocks * bl.block_bytes));
  for (auto& b : w.data) b = static_cast<uint8_t>(rng());
  const uint16_t d = ge::f32_to_fp16(0.01f);
  for (int64_t i = 0; i < blocks; ++i) {
    uint8_t* p = w.data.data() + i * bl.block_bytes;
    if (type == ge::QuantType::kQ6_K) {
      std::memcpy(p + 208, &d, 2);
    } else {
      std::memcpy(p, &d, 2);
      if (type == ge::QuantType::kQ4_K) std::memcpy(p + 2, &d, 2);
    }
  }
  w.view.type = type;
  w.view.rows = rows;
  w.view.cols = cols;
  w.view.data = w.data.data();
  return w;
}

struct Shape {
  const char* name;
  ge::QuantType type;  // as in gemma-3-270m Q4_K_M
  int64_t rows, cols;  // [out, in]
};

}  // namespace

int main(int argc, char** argv) {
  int reps = 9;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
    if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = std::atoi(argv[++i]);
  }
  std::mt19937 rng(1234);
  const ge::cpu::CpuIsa isa = ge::cpu::detect_cpu_isa();
  std::printf("isa: %s, prefill activations: %s, reps: %d (median)\n\n", ge::cpu::cpu_isa_name(isa),
              ge::cpu::cpu_activations_name(ge::cpu::default_cpu_activations()), reps);

  std::printf("## streaming read bandwidth (1 GiB buffer)\n");
  for (int threads : {1, 2}) {
    std::printf("threads %d: %.1f GB/s\n", threads, read_bandwidth(threads, quick ? (256u << 20) : (1u << 30), reps));
  }

  const Shape shapes[] = {
      {"attn_q   1024x640", ge::QuantType::kQ5_0, 1024, 640},
      {"attn_k    256x640", ge::QuantType::kQ5_0, 256, 640},
      {"attn_v    256x640", ge::QuantType::kQ8_0, 256, 640},
      {"attn_out 640x1024", ge::QuantType::kQ4_K, 640, 1024},
      {"ffn_gate 2048x640", ge::QuantType::kQ5_0, 2048, 640},
      {"ffn_up   2048x640", ge::QuantType::kQ5_0, 2048, 640},
      {"ffn_down 640x2048", ge::QuantType::kQ6_K, 640, 2048},
      {"lm_head 262144x640", ge::QuantType::kQ8_0, 262144, 640},
  };
  const int64_t ms[] = {1, 512};
  std::printf("\n## matmul y[M,N] = x[M,K]·W[N,K]ᵀ (%s), median ms; GB/s = packed weight bytes / time; "
              "GMAC/s = M·N·K / time\n",
              ge::cpu::cpu_isa_name(isa));
  std::printf("%-20s %-5s %5s %3s %10s %9s %9s\n", "weight", "type", "M", "thr", "ms", "GB/s", "GMAC/s");
  for (int threads : {1, 2}) {
    std::unique_ptr<ge::Backend> be(ge::create_cpu_backend_isa(threads, isa));
    double layer_ms[2] = {0, 0};
    for (const Shape& s : shapes) {
      RandomQuant w = make_weight(s.type, s.rows, s.cols, rng);
      auto packed = be->pack_weight(w.view);
      if (!packed.is_ok()) {
        std::fprintf(stderr, "pack failed: %s\n", packed.status().to_string().c_str());
        return 1;
      }
      const double wbytes = static_cast<double>((*packed)->bytes());
      for (size_t mi = 0; mi < 2; ++mi) {
        const int64_t m = ms[mi];
        if (quick && m > 1 && s.rows > 4096) continue;
        std::vector<float> x(static_cast<size_t>(m * s.cols));
        for (auto& v : x) v = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) / 1000.0f;
        std::vector<float> y(static_cast<size_t>(m * s.rows));
        be->matmul(x.data(), m, **packed, y.data());  // warm-up
        std::vector<double> times;
        for (int r = 0; r < reps; ++r) {
          const auto t0 = Clock::now();
          be->matmul(x.data(), m, **packed, y.data());
          times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
        }
        const double t = median(times);
        if (s.rows != 262144) layer_ms[mi] += t * 1e3;
        std::printf("%-20s %-5s %5lld %3d %10.3f %9.1f %9.1f\n", s.name, ge::quant_type_name(s.type),
                    static_cast<long long>(m), threads, t * 1e3, wbytes / t / 1e9,
                    static_cast<double>(m) * s.rows * s.cols / t / 1e9);
      }
    }
    std::printf("one layer's matmuls, %d thread(s): M=1 %.3f ms, M=512 %.3f ms (%.1f µs/token)\n\n", threads,
                layer_ms[0], layer_ms[1], layer_ms[1] * 1e3 / 512);
  }
  return 0;
}
