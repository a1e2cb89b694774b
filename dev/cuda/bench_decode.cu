// Decode weight-traffic benchmark: every linear layer of Gemma 4 31B (60 layers + the 262144-row LM
// head) as M = 1 GEMVs on synthetic weights made on the GPU, captured in one CUDA graph and timed
// with events (median of replays after warm-up), next to a streaming-read kernel on the same card.
// Build: dev/cuda/build_bench.sh; run: bench_decode [--quick | --focus [--all-formats] | --lab | --profile V]
// [--out FILE].
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

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/gemv.cuh"
#include "backend/cuda/packed_weight.cuh"

namespace {

#define CHECK_CUDA(expr)                                                                     \
  do {                                                                                      \
    cudaError_t e_ = (expr);                                                                \
    if (e_ != cudaSuccess) {                                                                \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_)); \
      std::exit(1);                                                                         \
    }                                                                                       \
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

// ---- streaming-read ceiling: 16-byte loads, 4 in flight per thread, grid-stride ----
__device__ __forceinline__ void stream_read_body(const uint4* p, int64_t n, uint32_t* sink) {
  uint32_t acc = 0;
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  for (; i + 3 * stride < n; i += 4 * stride) {
    uint4 a = __ldcs(p + i), b = __ldcs(p + i + stride), c = __ldcs(p + i + 2 * stride), d = __ldcs(p + i + 3 * stride);
    acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
  }
  for (; i < n; i += stride) {
    uint4 a = __ldcs(p + i);
    acc ^= a.x ^ a.y ^ a.z ^ a.w;
  }
  if (acc == 0x9e3779b9u) *sink = acc;  // keeps the loads alive
}
__global__ void stream_read_kernel(const uint4* p, int64_t n, uint32_t* sink) { stream_read_body(p, n, sink); }

// Same streaming read over [begin, begin + n) of p (launch-count experiment: one launch per matrix
// vs per group of matrices vs one for the token, same bytes).
__global__ void stream_range_kernel(const uint4* p, int64_t begin, int64_t n, uint32_t* sink) {
  stream_read_body(p + begin, n, sink);
}

__global__ void fill_kernel(uint4* p, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    p[i] = make_uint4(static_cast<uint32_t>(i), static_cast<uint32_t>(i * 3), 7u, static_cast<uint32_t>(i >> 7));
  }
}

#include "pattern_kernel.cuh"

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

struct Shape {
  const char* name;
  int64_t rows, cols;
  int count;  // how many such matrices one token streams
};

// Gemma 4 31B: 50 sliding layers (q 8192, k/v 4096, o, gate/up 21504, down), 10 full layers
// (q 16384, k 2048, no v: K = V), and the tied 262144 x 5376 LM head.
std::vector<Shape> gemma4_31b_shapes() {
  return {{"q_sliding", 8192, 5376, 50},   {"k_sliding", 4096, 5376, 50}, {"v_sliding", 4096, 5376, 50},
          {"o_sliding", 5376, 8192, 50},   {"q_full", 16384, 5376, 10},   {"k_full", 2048, 5376, 10},
          {"o_full", 5376, 16384, 10},     {"gate", 21504, 5376, 60},     {"up", 21504, 5376, 60},
          {"down", 5376, 21504, 60},       {"lm_head", 262144, 5376, 1}};
}

struct Format {
  const char* name;
  ge::QuantType type;
  int64_t group;
  bool zero;
};

struct Weights {
  std::vector<std::unique_ptr<ge::PackedWeight>> mats;  // in token order
  std::vector<int> shape_of;                           // index into shapes
  double bytes = 0;
};

Weights make_weights(ge::CudaBackend* be, const Format& f, const std::vector<Shape>& shapes) {
  Weights w;
  uint64_t seed = 1;
  for (size_t s = 0; s < shapes.size(); ++s) {
    for (int i = 0; i < shapes[s].count; ++i) {
      static const uint8_t kAskForZeros = 0;
      ge::QuantWeight like;  // encoding and shape only; a non-null zero asks for zero points
      like.type = f.type;
      like.rows = shapes[s].rows;
      like.cols = shapes[s].cols;
      like.group_size = f.group;
      like.zero = f.zero ? &kAskForZeros : nullptr;
      auto r = be->synthesize_weight(like, seed++);
      if (!r.is_ok()) {
        std::fprintf(stderr, "synthesize %s %s: %s\n", f.name, shapes[s].name, r.status().to_string().c_str());
        std::exit(1);
      }
      w.bytes += static_cast<double>(r.value()->bytes());
      w.mats.push_back(std::move(r).value());
      w.shape_of.push_back(static_cast<int>(s));
    }
  }
  return w;
}

// Captures `fn` (queueing work on `s`) into a graph and returns the executable.
template <typename F>
cudaGraphExec_t capture(cudaStream_t s, F&& fn) {
  cudaGraph_t g;
  CHECK_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  fn();
  CHECK_CUDA(cudaStreamEndCapture(s, &g));
  cudaGraphExec_t e;
  CHECK_CUDA(cudaGraphInstantiate(&e, g, 0));
  CHECK_CUDA(cudaGraphDestroy(g));
  return e;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, focus = false, all_formats = false, lab = false, pattern = false;
  int profile = -1;
  int profile_m = 1;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    // --focus: Q4_0 only, every M with each schedule forced, the launch-count experiment, per-shape
    // rows at M = 1 and 16; no kernel-lab variants.
    if (!std::strcmp(argv[i], "--focus")) focus = true;
    // --all-formats (with --focus): every format's whole-token lines, per-shape rows for Q4_0 only.
    if (!std::strcmp(argv[i], "--all-formats")) all_formats = true;
    // --lab: Q4_0 only (with --all-formats also int4 g32/g128 and Q8_0, against lab variant 0 only);
    // production and grouped whole tokens, then every K-slice lab variant (checked against the
    // production kernel, then timed); no forced schedules, no per-shape rows.
    if (!std::strcmp(argv[i], "--lab")) lab = focus = true;
    // --pattern: the weight access pattern of the K-slice GEMV without math, two layouts (see
    // pattern_kernel), then exit.
    // --profile V: Q4_0, K-slice lab variant V at M = 1 on the grouped q|k|v, o, gate|up and down of
    // layer 0, twice, outside any graph (for ncu: --launch-skip 4 --launch-count 4).
    if (!std::strcmp(argv[i], "--profile") && i + 1 < argc) profile = std::atoi(argv[++i]);
    if (!std::strcmp(argv[i], "--profile-m") && i + 1 < argc) profile_m = std::atoi(argv[++i]);  // M of --profile
    if (!std::strcmp(argv[i], "--out") && i + 1 < argc) g_out = std::fopen(argv[++i], "w");
    if (!std::strcmp(argv[i], "--pattern")) pattern = true;  // the access-pattern experiment, then exit
  }
  auto created = ge::create_cuda_backend();
  if (!created.is_ok()) {
    std::fprintf(stderr, "%s\n", created.status().to_string().c_str());
    return 1;
  }
  std::unique_ptr<ge::Backend> backend = std::move(created).value();
  auto* be = dynamic_cast<ge::CudaBackend*>(backend.get());
  cudaStream_t s = static_cast<cudaStream_t>(be->stream());
  report("device: %s\n", be->device_name().c_str());
  const int reps = quick ? 5 : 11;

  // Ceiling: one streaming-read kernel over 4 GiB.
  double ceiling_gbs = 0;
  if (profile >= 0) {
    lab = focus = true;
  } else {
    const int64_t n = (int64_t{4} << 30) / 16;
    uint4* buf = nullptr;
    uint32_t* sink = nullptr;
    CHECK_CUDA(cudaMalloc(&buf, n * 16));
    CHECK_CUDA(cudaMalloc(&sink, 4));
    fill_kernel<<<4096, 256, 0, s>>>(buf, n);
    int sms = 0;
    CHECK_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    for (int blocks_per_sm : {4, 8, 16}) {
      const float ms = median_ms(s, 3, reps, [&] { stream_read_kernel<<<sms * blocks_per_sm, 512, 0, s>>>(buf, n, sink); });
      const double gbs = n * 16.0 / (ms * 1e-3) / 1e9;
      ceiling_gbs = std::max(ceiling_gbs, gbs);
      report("stream read 4 GiB, %d x 512 threads/SM: %.3f ms, %.0f GB/s\n", blocks_per_sm, ms, gbs);
    }
    const float ms = median_ms(s, 2, reps, [&] { CHECK_CUDA(cudaMemcpyAsync(buf + n / 2, buf, n * 8, cudaMemcpyDeviceToDevice, s)); });
    report("device-to-device copy 2 GiB: %.3f ms, %.0f GB/s (read + write)\n", ms, 2.0 * n * 8 / (ms * 1e-3) / 1e9);
    CHECK_CUDA(cudaFree(buf));
    CHECK_CUDA(cudaFree(sink));
  }
  report("streaming-read ceiling used below: %.0f GB/s (reference H100 figure: 3090 GB/s)\n\n", ceiling_gbs);
  if (pattern) {
    // gate|up of one layer (2 x 21504 rows x 5376: 1344 pairs of tiles, 84 chunks) and o (5376 x 8192:
    // 168 pairs, 128 chunks), over 60 copies (a token's worth, past the L2), each layout, ring depth
    // and slice count; GB/s of code bytes.
    int sms = 0;
    CHECK_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    uint32_t* sink = nullptr;
    CHECK_CUDA(cudaMalloc(&sink, 4));
    struct PShape { const char* name; int pairs, chunks; };
    for (const PShape& sh : {PShape{"gate|up", 1344, 84}, PShape{"o", 168, 128}}) {
      const int64_t per = int64_t{sh.pairs} * sh.chunks * 72;  // uint4 per copy (codes + room for scales)
      const int64_t per_s = int64_t{sh.pairs} * 2 * sh.chunks * 16;  // scale words per copy (separate)
      const int copies = 60;
      uint4* buf = nullptr;
      uint32_t* sc = nullptr;
      CHECK_CUDA(cudaMalloc(&buf, per * copies * 16));
      CHECK_CUDA(cudaMalloc(&sc, per_s * copies * 4));
      fill_kernel<<<4096, 256, 0, s>>>(buf, per * copies);
      CHECK_CUDA(cudaMemsetAsync(sc, 1, per_s * copies * 4, s));
      const int64_t code_bytes = int64_t{sh.pairs} * sh.chunks * 1024;
      for (int slices : {1, 3, 8}) {
        // 0 separate codes, 1 interleaved codes, 2 separate + separate scales, 3 codes and scales in one run
        for (int variant = 0; variant < 4; ++variant) {
          const int grid = 2 * sms / slices * slices;
          const size_t smem = static_cast<size_t>(8) * 4 * 72 * 16;
          auto launch = [&](int i) {
            const uint4* b = buf + per * i;
            const uint32_t* sb = sc + per_s * i;
            switch (variant) {
              case 0: pattern_kernel<4, false><<<grid, 256, smem, s>>>(b, sh.pairs, sh.chunks, slices, sink); break;
              case 1: pattern_kernel<4, true><<<grid, 256, smem, s>>>(b, sh.pairs, sh.chunks, slices, sink); break;
              case 2: pattern_kernel<4, false, 1><<<grid, 256, smem, s>>>(b, sh.pairs, sh.chunks, slices, sink, sb); break;
              default: pattern_kernel<4, false, 2><<<grid, 256, smem, s>>>(b, sh.pairs, sh.chunks, slices, sink); break;
            }
          };
          const float ms = median_ms(s, 1, 5, [&] { for (int i = 0; i < copies; ++i) launch(i); });
          CHECK_CUDA(cudaGetLastError());
          const int64_t bytes = code_bytes * (variant >= 2 ? 9 : 8) / 8;  // + 128 B of scales per KB of codes
          const double gbs = bytes * copies / (ms * 1e-3) / 1e9;
          static const char* kNames[] = {"codes, tile-major", "codes, pair-interleaved", "codes + separate scales",
                                         "codes + scales in one run"};
          report("pattern %-7s %-26s %d slices, %d CTAs: %.3f ms per %d launches, %.0f GB/s (%.0f%% of the ceiling)\n",
                 sh.name, kNames[variant], slices, grid, ms, copies, gbs, 100.0 * gbs / ceiling_gbs);
        }
      }
      CHECK_CUDA(cudaFree(buf));
      CHECK_CUDA(cudaFree(sc));
    }
    CHECK_CUDA(cudaFree(sink));
    return 0;
  }

  const std::vector<Shape> shapes = gemma4_31b_shapes();
  if (!quick && !lab) {
    // Launch-count experiment: the token's Q4_0 matrix sizes (18 bytes per 32 weights) laid out in
    // layer order in one buffer, streamed as one launch per matrix (411), per group of matrices that
    // share x (q|k|v, gate|up: 241), or one launch; same bytes, one graph each.
    std::vector<std::vector<int64_t>> groups;  // uint4 counts per launch of the grouped token
    auto bytes16 = [](int64_t rows, int64_t cols) { return (rows * cols / 32 * 18 + 15) / 16; };
    for (int layer = 0; layer < 60; ++layer) {
      const bool full = layer % 6 == 5;
      if (full) {
        groups.push_back({bytes16(16384, 5376), bytes16(2048, 5376)});
        groups.push_back({bytes16(5376, 16384)});
      } else {
        groups.push_back({bytes16(8192, 5376), bytes16(4096, 5376), bytes16(4096, 5376)});
        groups.push_back({bytes16(5376, 8192)});
      }
      groups.push_back({bytes16(21504, 5376), bytes16(21504, 5376)});
      groups.push_back({bytes16(5376, 21504)});
    }
    groups.push_back({bytes16(262144, 5376)});
    int64_t total = 0;
    size_t n_single = 0;
    for (auto& gr : groups) {
      for (int64_t b : gr) total += b;
      n_single += gr.size();
    }
    uint4* buf = nullptr;
    uint32_t* sink = nullptr;
    CHECK_CUDA(cudaMalloc(&buf, total * 16));
    CHECK_CUDA(cudaMalloc(&sink, 4));
    fill_kernel<<<4096, 256, 0, s>>>(buf, total);
    int sms = 0;
    CHECK_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    auto launch = [&](int64_t begin, int64_t n) {
      const int64_t blocks = std::min<int64_t>(int64_t{sms} * 8, (n + 511) / 512);
      stream_range_kernel<<<static_cast<unsigned>(blocks), 512, 0, s>>>(buf, begin, n, sink);
    };
    std::string line = "launch-count experiment (stream read, Q4_0 token bytes " + std::to_string(total * 16 / 1000000) + " MB):";
    for (int mode = 0; mode < 3; ++mode) {
      size_t launches = 0;
      cudaGraphExec_t g = capture(s, [&] {
        int64_t off = 0;
        launches = 0;
        if (mode == 2) {
          launch(0, total);
          launches = 1;
          return;
        }
        for (auto& gr : groups) {
          int64_t sum = 0;
          for (int64_t b : gr) {
            if (mode == 0) {
              launch(off + sum, b);
              ++launches;
            }
            sum += b;
          }
          if (mode == 1) {
            launch(off, sum);
            ++launches;
          }
          off += sum;
        }
      });
      const float ms = median_ms(s, 3, reps, [&] { CHECK_CUDA(cudaGraphLaunch(g, s)); });
      CHECK_CUDA(cudaGraphExecDestroy(g));
      char b[96];
      std::snprintf(b, sizeof(b), "  %zu launches %.3f ms (%.0f GB/s)", launches, ms, total * 16.0 / (ms * 1e-3) / 1e9);
      line += b;
    }
    report("%s  [%zu matrices]\n\n", line.c_str(), n_single);
    CHECK_CUDA(cudaFree(buf));
    CHECK_CUDA(cudaFree(sink));
  }
  std::vector<Format> formats = {{"Q4_0", ge::QuantType::kQ4_0, 0, false},
                                 {"int4-g32 (bf16 scale+zero)", ge::QuantType::kInt4Group, 32, true},
                                 {"int4-g128 (bf16 scale+zero)", ge::QuantType::kInt4Group, 128, true}};
  if (focus && !all_formats) formats.resize(1);
  if (!quick && (!focus || all_formats)) {
    formats.push_back({"Q8_0", ge::QuantType::kQ8_0, 0, false});
    formats.push_back({"Q4_K (raw blocks)", ge::QuantType::kQ4_K, 0, false});
  }

  // x (largest K) and one output per shape; inputs are identical random data for every layer.
  float* x = nullptr;
  float* y = nullptr;
  const int64_t max_k = 21504, max_m = 16;
  CHECK_CUDA(cudaMalloc(&x, max_k * max_m * 4));
  CHECK_CUDA(cudaMalloc(&y, int64_t{262144} * max_m * 4));
  {
    std::vector<float> hx(max_k * max_m);
    uint32_t r = 12345;
    for (auto& v : hx) {
      r = r * 1664525u + 1013904223u;
      v = static_cast<float>(static_cast<int32_t>(r >> 8) - (1 << 23)) / static_cast<float>(1 << 23);
    }
    CHECK_CUDA(cudaMemcpy(x, hx.data(), hx.size() * 4, cudaMemcpyHostToDevice));
  }

  for (const Format& f : formats) {
    Weights w = make_weights(be, f, shapes);
    if (!be->synchronize().is_ok()) return 1;
    report("== %s: %zu matrices, %.3f GB per token ==\n", f.name, w.mats.size(), w.bytes / 1e9);
    auto token = [&](int m) {
      for (auto& mat : w.mats) be->matmul(x, m, *mat, y);
    };
    const bool raw = f.type == ge::QuantType::kQ4_K;
    // The token's launches when products that share x are grouped: q|k|v (q|k in full layers),
    // gate|up; indices into w.mats (ordered by shape, then layer).
    std::vector<std::vector<size_t>> token_groups;
    {
      std::vector<size_t> first(shapes.size(), 0);
      for (size_t i = w.shape_of.size(); i-- > 0;) first[w.shape_of[i]] = i;
      for (int l = 0; l < 50; ++l) {
        token_groups.push_back({first[0] + l, first[1] + l, first[2] + l});
        token_groups.push_back({first[3] + l});
      }
      for (int l = 0; l < 10; ++l) {
        token_groups.push_back({first[4] + l, first[5] + l});
        token_groups.push_back({first[6] + l});
      }
      for (int l = 0; l < 60; ++l) {
        token_groups.push_back({first[7] + l, first[8] + l});
        token_groups.push_back({first[9] + l});
      }
      token_groups.push_back({first[10]});
    }
    // Launches lab variant v on the token group gr at M = m (outputs one after another in y).
    ge::cuda::DeviceMemory lab_frag, lab_part, lab_count;
    const ge::cuda::GemvScratch lab_scratch{&lab_frag, &lab_part, &lab_count};
    ge::cuda::LaunchContext lab_ctx;
    lab_ctx.stream = s;
    CHECK_CUDA(cudaDeviceGetAttribute(&lab_ctx.num_sms, cudaDevAttrMultiProcessorCount, 0));
    auto lab_group = [&](const std::vector<size_t>& gr, int m, int v) {
      std::vector<ge::cuda::GemvTarget> t;
      float* yo = y;
      for (size_t i : gr) {
        const auto& vw = static_cast<const ge::cuda::CudaPackedWeight&>(*w.mats[i]).view();
        t.push_back({&vw, yo});
        yo += vw.rows * m;
      }
      return v < 0 ? ge::cuda::launch_gemv_slice(t, x, m, lab_scratch, 0, lab_ctx)
                   : ge::cuda::launch_gemv_slice_lab(t, x, m, v, lab_scratch, lab_ctx);
    };
    if (profile >= 0) {
      for (int rep = 0; rep < 2; ++rep) {
        for (size_t gi : {size_t{0}, size_t{1}, size_t{120}, size_t{121}}) CHECK_CUDA(lab_group(token_groups[gi], profile_m, profile));
      }
      CHECK_CUDA(cudaStreamSynchronize(s));
      report("profile: variant %d (%s) done\n", profile, ge::cuda::gemv_slice_lab_variant_name(profile));
      return 0;
    }
    if (!raw && !quick) {
      // Schedules agree: the first matrix of every shape, each M, items vs K-slice (relative L2
      // difference and max |difference| / max |y|; limit 1e-5, 5e-4 where the fp16 kernel runs).
      double worst_l2 = 0, worst_max = 0;
      std::vector<float> a, b;
      for (int m : {1, 2, 3, 4, 8, 9, 16}) {
        for (size_t si = 0; si < shapes.size(); ++si) {
          size_t i = 0;
          while (w.shape_of[i] != static_cast<int>(si)) ++i;
          const size_t n = static_cast<size_t>(shapes[si].rows) * m;
          a.resize(n);
          b.resize(n);
          for (int sched : {1, 3}) {
            ge::cuda::set_gemv_schedule_override(sched);
            CHECK_CUDA(cudaMemset(y, 0xff, n * 4));
            CHECK_CUDA(cudaDeviceSynchronize());
            be->matmul(x, m, *w.mats[i], y);
            if (!be->synchronize().is_ok()) return 1;
            CHECK_CUDA(cudaMemcpy(sched == 1 ? a.data() : b.data(), y, n * 4, cudaMemcpyDeviceToHost));
          }
          double num = 0, den = 0, dmax = 0, ymax = 0;
          for (size_t k = 0; k < n; ++k) {
            const double d = static_cast<double>(a[k]) - b[k];
            num += d * d;
            den += static_cast<double>(a[k]) * a[k];
            dmax = std::max(dmax, std::abs(d));
            ymax = std::max(ymax, std::abs(static_cast<double>(a[k])));
          }
          const double l2 = std::sqrt(num / std::max(den, 1e-30)), mx = dmax / std::max(ymax, 1e-30);
          // The fp16 K-slice kernel (4-bit weights, K >= 4096) rounds x to 11 bits: relative
          // differences of ~2e-4 to the items schedule's 16-bit split are expected there.
          const bool f16 = (f.type == ge::QuantType::kQ4_0 || f.type == ge::QuantType::kInt4Group) && m <= 16 &&
                           shapes[si].cols >= 4096;
          const double lim = f16 ? 5e-4 : 1e-5;
          if (!(l2 <= lim) || !(mx <= lim)) {
            report("MISMATCH %s M=%d %s: rel L2 %.3g, max %.3g\n", f.name, m, shapes[si].name, l2, mx);
          }
          worst_l2 = std::max(worst_l2, std::isnan(l2) ? 1e30 : l2);
          worst_max = std::max(worst_max, std::isnan(mx) ? 1e30 : mx);
        }
      }
      ge::cuda::set_gemv_schedule_override(0);
      {
        // Grouped K-slice launches give the same bits as separate ones (q|k|v and gate|up of layer 0).
        ge::cuda::DeviceMemory frag, part, count;
        const ge::cuda::GemvScratch scratch{&frag, &part, &count};
        ge::cuda::LaunchContext lctx;
        lctx.stream = s;
        CHECK_CUDA(cudaDeviceGetAttribute(&lctx.num_sms, cudaDevAttrMultiProcessorCount, 0));
        int64_t differ = 0;
        double worst_group = 0;
        for (int m : {1, 5, 16}) {
          for (const auto& gr : {token_groups[0], token_groups[120]}) {
            std::vector<ge::cuda::GemvTarget> t;
            int64_t total = 0;
            for (size_t i : gr) {
              const auto& v = static_cast<const ge::cuda::CudaPackedWeight&>(*w.mats[i]).view();
              t.push_back({&v, y + total * m});
              total += v.rows;
            }
            std::vector<float> sep(total * m), grp(total * m);
            // The backend's stream does not synchronise with the legacy default stream.
            CHECK_CUDA(cudaStreamSynchronize(s));
            for (auto& tg : t) CHECK_CUDA(ge::cuda::launch_gemv_slice({&tg, 1}, x, m, scratch, 0, lctx));
            CHECK_CUDA(cudaStreamSynchronize(s));
            CHECK_CUDA(cudaMemcpy(sep.data(), y, total * m * 4, cudaMemcpyDeviceToHost));
            CHECK_CUDA(cudaMemset(y, 0xff, total * m * 4));
            CHECK_CUDA(cudaDeviceSynchronize());
            CHECK_CUDA(ge::cuda::launch_gemv_slice(t, x, m, scratch, 0, lctx));
            CHECK_CUDA(cudaStreamSynchronize(s));
            CHECK_CUDA(cudaMemcpy(grp.data(), y, total * m * 4, cudaMemcpyDeviceToHost));
            differ += std::memcmp(sep.data(), grp.data(), sep.size() * 4) != 0;
            double num = 0, den = 0;
            for (size_t k = 0; k < sep.size(); ++k) {
              num += (static_cast<double>(sep[k]) - grp[k]) * (static_cast<double>(sep[k]) - grp[k]);
              den += static_cast<double>(sep[k]) * sep[k];
            }
            worst_group = std::max(worst_group, std::sqrt(num / std::max(den, 1e-30)));
          }
        }
        // A grouped launch plans each output for its share of the GPU: its K-slice sums may be
        // ordered differently from separate launches'.
        report("check %s: grouped vs separate K-slice launches, M = 1,5,16: %lld of 6 differ, worst rel L2 %.3g\n",
               f.name, static_cast<long long>(differ), worst_group);
      }
      report("check %s: K-slice vs items over every shape, M = 1,2,3,4,8,9,16: worst rel L2 %.3g, max %.3g\n", f.name,
             worst_l2, worst_max);
    }
    // Whole token per M: the production choice, then each schedule forced (items = the per-CTA
    // item schedule of v4, or the generic raw kernel for Q4_K; stream = stream-K).
    for (int m : quick ? std::vector<int>{1} : (raw ? std::vector<int>{1, 4} : std::vector<int>{1, 2, 4, 8, 16})) {
      token(m);  // warm-up outside the graph (allocates any scratch)
      ge::Status st = be->synchronize();
      if (!st.is_ok()) {
        std::fprintf(stderr, "%s\n", st.to_string().c_str());
        return 1;
      }
      cudaGraphExec_t g = capture(s, [&] { token(m); });
      const float ms = median_ms(s, 3, reps, [&] { CHECK_CUDA(cudaGraphLaunch(g, s)); });
      const double gbs = w.bytes / (ms * 1e-3) / 1e9;
      CHECK_CUDA(cudaGraphExecDestroy(g));
      std::string forced;
      for (int sched : quick || lab ? std::vector<int>{} : std::vector<int>{1, 2, 3}) {
        if (raw && sched >= 2) continue;
        ge::cuda::set_gemv_schedule_override(sched);
        token(m);
        if (!be->synchronize().is_ok()) return 1;
        cudaGraphExec_t gf = capture(s, [&] { token(m); });
        const float fms = median_ms(s, 3, reps, [&] { CHECK_CUDA(cudaGraphLaunch(gf, s)); });
        CHECK_CUDA(cudaGraphExecDestroy(gf));
        char buf[64];
        std::snprintf(buf, sizeof(buf), "  [%s %.3f ms]", sched == 1 ? (raw ? "generic" : "items") : (sched == 2 ? "stream" : "slice"), fms);
        forced += buf;
      }
      ge::cuda::set_gemv_schedule_override(0);
      if (focus && !raw) {
        // K-slice schedule with the products that share x in one launch (q|k|v, gate|up): 241
        // launches instead of 411.
        ge::cuda::DeviceMemory frag, part, count;
        const ge::cuda::GemvScratch scratch{&frag, &part, &count};
        ge::cuda::LaunchContext lctx;
        lctx.stream = s;
        CHECK_CUDA(cudaDeviceGetAttribute(&lctx.num_sms, cudaDevAttrMultiProcessorCount, 0));
        auto grouped = [&] {
          for (const auto& gr : token_groups) {
            std::vector<ge::cuda::GemvTarget> t;
            float* yo = y;
            for (size_t i : gr) {
              const auto& v = static_cast<const ge::cuda::CudaPackedWeight&>(*w.mats[i]).view();
              t.push_back({&v, yo});
              yo += v.rows * m;
            }
            CHECK_CUDA(ge::cuda::launch_gemv_slice(t, x, m, scratch, 0, lctx));
          }
        };
        grouped();
        CHECK_CUDA(cudaStreamSynchronize(s));
        cudaGraphExec_t gg = capture(s, grouped);
        const float gms = median_ms(s, 3, reps, [&] { CHECK_CUDA(cudaGraphLaunch(gg, s)); });
        CHECK_CUDA(cudaGraphExecDestroy(gg));
        char buf[64];
        std::snprintf(buf, sizeof(buf), "  [slice grouped (%zu launches) %.3f ms]", token_groups.size(), gms);
        forced += buf;
      }
      report("M=%-2d whole token (%zu GEMVs, one graph): %.3f ms  %.0f GB/s  %.1f%% of stream ceiling"
             "  -> %.1f tok/s (linear layers only)%s%s\n",
             m, w.mats.size(), ms, gbs, 100.0 * gbs / ceiling_gbs, 1000.0 / ms, m > 1 ? " per stream" : "",
             forced.c_str());
    }
    if (focus && (f.type == ge::QuantType::kQ4_0 || (lab && !raw))) {
      // Kernel lab of the K-slice schedule: each configuration over the grouped token (241
      // launches), every M.
      // Each variant against the production kernel on the q|k|v, o, gate|up, down groups of layer 0
      // and the LM head: relative L2 difference and max |difference| / max |y| over M = 1..8, 16.
      // --lab leaves out variants 1-13 and 16 (measured in earlier rounds, dev/cuda/NOTES.md).
      auto skip = [&](int v) { return lab && ((v >= 1 && v <= 13) || v == 16); };
      for (int v = 0; v < ge::cuda::gemv_slice_lab_variants(); ++v) {
        if (skip(v) || (v > 0 && f.type != ge::QuantType::kQ4_0)) continue;
        double worst_l2 = 0, worst_max = 0;
        std::vector<float> a, b;
        for (int m : {1, 2, 3, 5, 8, 16}) {
          for (size_t gi : {size_t{0}, size_t{1}, size_t{120}, size_t{121}, token_groups.size() - 1}) {
            size_t n = 0;
            for (size_t i : token_groups[gi]) n += static_cast<size_t>(w.mats[i]->rows()) * m;
            a.resize(n);
            b.resize(n);
            for (int pass = 0; pass < 2; ++pass) {
              CHECK_CUDA(cudaMemsetAsync(y, 0xff, n * 4, s));
              CHECK_CUDA(lab_group(token_groups[gi], m, pass == 0 ? -1 : v));
              CHECK_CUDA(cudaStreamSynchronize(s));
              CHECK_CUDA(cudaMemcpy(pass == 0 ? a.data() : b.data(), y, n * 4, cudaMemcpyDeviceToHost));
            }
            double num = 0, den = 0, dmax = 0, ymax = 0;
            for (size_t k = 0; k < n; ++k) {
              const double d = static_cast<double>(a[k]) - b[k];
              num += d * d;
              den += static_cast<double>(a[k]) * a[k];
              dmax = std::max(dmax, std::abs(d));
              ymax = std::max(ymax, std::abs(static_cast<double>(a[k])));
            }
            const double l2 = std::sqrt(num / std::max(den, 1e-30)), mx = dmax / std::max(ymax, 1e-30);
            worst_l2 = std::max(worst_l2, std::isnan(l2) ? 1e30 : l2);
            worst_max = std::max(worst_max, std::isnan(mx) ? 1e30 : mx);
          }
        }
        report("check lab %d (%s) vs production, M = 1,2,3,5,8,16: worst rel L2 %.3g, max %.3g\n", v,
               ge::cuda::gemv_slice_lab_variant_name(v), worst_l2, worst_max);
      }
      // v = -1: the production dispatch (launch_gemv_slice), for the per-kind line.
      for (int v = -1; v < ge::cuda::gemv_slice_lab_variants(); ++v) {
        if (skip(v) || (v > 0 && f.type != ge::QuantType::kQ4_0) || (v < 0 && !lab)) continue;
        std::string line = std::string("   lab ") +
                           (v < 0 ? "production (launch_gemv_slice)" : ge::cuda::gemv_slice_lab_variant_name(v)) +
                           ", grouped token:";
        for (int m : {1, 2, 4, 8, 16}) {
          bool ok = true;
          auto grouped = [&] {
            for (const auto& gr : token_groups) ok = ok && lab_group(gr, m, v) == cudaSuccess;
          };
          grouped();
          (void)cudaGetLastError();
          CHECK_CUDA(cudaStreamSynchronize(s));
          if (!ok) {
            line += "  M=" + std::to_string(m) + " n/a";
            continue;
          }
          cudaGraphExec_t gg = capture(s, grouped);
          const float ms = median_ms(s, 2, reps, [&] { CHECK_CUDA(cudaGraphLaunch(gg, s)); });
          CHECK_CUDA(cudaGraphExecDestroy(gg));
          char buf[48];
          std::snprintf(buf, sizeof(buf), "  M=%d %.3f", m, ms);
          line += buf;
        }
        report("%s ms\n", line.c_str());
        if (lab) {
          // M = 1 per kind of launch (all layers of it in one graph): where the variant gains or loses.
          // Group order: 50 x (q|k|v, o), 10 x (q|k, o), 60 x (gate|up, down), LM head.
          const char* kinds[] = {"qkv", "o", "gate|up", "down", "lm_head"};
          std::string kl = "      M=1 per kind (ms, GB/s):";
          for (int kind = 0; kind < 5; ++kind) {
            std::vector<size_t> sel;
            for (size_t gi = 0; gi < token_groups.size(); ++gi) {
              const bool attn = gi < 120, last = gi + 1 == token_groups.size();
              const int k = last ? 4 : (attn ? static_cast<int>(gi % 2) : 2 + static_cast<int>(gi % 2));
              if (k == kind) sel.push_back(gi);
            }
            double bytes = 0;
            for (size_t gi : sel) {
              for (size_t i : token_groups[gi]) bytes += static_cast<double>(w.mats[i]->bytes());
            }
            cudaGraphExec_t gk = capture(s, [&] {
              for (size_t gi : sel) CHECK_CUDA(lab_group(token_groups[gi], 1, v));
            });
            const float ms = median_ms(s, 2, reps, [&] { CHECK_CUDA(cudaGraphLaunch(gk, s)); });
            CHECK_CUDA(cudaGraphExecDestroy(gk));
            char buf[64];
            std::snprintf(buf, sizeof(buf), "  %s %.3f %.0f", kinds[kind], ms, bytes / (ms * 1e-3) / 1e9);
            kl += buf;
          }
          report("%s\n", kl.c_str());
        }
      }
    }
    if (!quick && !focus && f.type == ge::QuantType::kQ4_0) {
      // Kernel lab: configurations of the tiled GEMV (registers vs prefetch depth vs CTAs per SM),
      // and a skeleton that only streams the weights through the same schedule.
      ge::cuda::DeviceMemory frag, part, count;
      const ge::cuda::GemvScratch scratch{&frag, &part, &count};
      ge::cuda::LaunchContext lctx;
      lctx.stream = s;
      CHECK_CUDA(cudaDeviceGetAttribute(&lctx.num_sms, cudaDevAttrMultiProcessorCount, 0));
      auto view = [](const std::unique_ptr<ge::PackedWeight>& m) -> const ge::cuda::WeightView& {
        return static_cast<const ge::cuda::CudaPackedWeight&>(*m).view();
      };
      for (int m : {1, 16}) {
        for (int v = 0; v < ge::cuda::gemv_lab_variants(); ++v) {
          // A variant that cannot run some matrix at this M (not offered, or too much shared
          // memory) is skipped whole.
          bool ok = true;
          for (size_t i = 0; i < w.mats.size() && ok; ++i) {
            ok = ge::cuda::launch_gemv_tiled_lab(view(w.mats[i]), x, m, y, v, scratch, lctx) == cudaSuccess;
          }
          (void)cudaGetLastError();
          CHECK_CUDA(cudaStreamSynchronize(s));
          if (!ok) continue;
          auto run = [&](int shape) {
            for (size_t i = 0; i < w.mats.size(); ++i) {
              if (shape < 0 || w.shape_of[i] == shape) {
                CHECK_CUDA(ge::cuda::launch_gemv_tiled_lab(view(w.mats[i]), x, m, y, v, scratch, lctx));
              }
            }
          };
          std::string line = "   lab M=" + std::to_string(m) + " " + ge::cuda::gemv_lab_variant_name(v) + ":";
          for (int shape : m == 1 ? std::vector<int>{-1, 0, 7, 9, 10} : std::vector<int>{-1}) {
            double bytes = 0;
            for (size_t i = 0; i < w.mats.size(); ++i) {
              if (shape < 0 || w.shape_of[i] == shape) bytes += static_cast<double>(w.mats[i]->bytes());
            }
            cudaGraphExec_t g = capture(s, [&] { run(shape); });
            const float ms = median_ms(s, 2, reps, [&] { CHECK_CUDA(cudaGraphLaunch(g, s)); });
            CHECK_CUDA(cudaGraphExecDestroy(g));
            char buf[96];
            std::snprintf(buf, sizeof(buf), "  %s %.3f ms %.0f GB/s", shape < 0 ? "token" : shapes[shape].name, ms,
                          bytes / (ms * 1e-3) / 1e9);
            line += buf;
          }
          report("%s\n", line.c_str());
        }
      }
    }
    // Per shape: all matrices of one shape back to back in a graph.
    if (lab || (focus && f.type != ge::QuantType::kQ4_0)) {
      report("\n");
      continue;
    }
    for (int pm : focus ? std::vector<int>{1, 16} : std::vector<int>{1}) {
    if (pm > 1) report("   per shape at M = %d:\n", pm);
    for (size_t si = 0; si < shapes.size(); ++si) {
      double bytes = 0;
      std::vector<ge::PackedWeight*> mats;
      for (size_t i = 0; i < w.mats.size(); ++i) {
        if (w.shape_of[i] == static_cast<int>(si)) {
          mats.push_back(w.mats[i].get());
          bytes += static_cast<double>(w.mats[i]->bytes());
        }
      }
      std::string line;
      for (int sched : raw ? std::vector<int>{0, 1} : std::vector<int>{0, 1, 2, 3}) {
        ge::cuda::set_gemv_schedule_override(sched);
        for (auto* mat : mats) be->matmul(x, pm, *mat, y);
        if (!be->synchronize().is_ok()) return 1;
        cudaGraphExec_t g = capture(s, [&] {
          for (auto* mat : mats) be->matmul(x, pm, *mat, y);
        });
        const float ms = median_ms(s, 2, reps, [&] { CHECK_CUDA(cudaGraphLaunch(g, s)); });
        CHECK_CUDA(cudaGraphExecDestroy(g));
        char buf[128];
        if (sched == 0) {
          std::snprintf(buf, sizeof(buf), "%8.3f ms  %5.0f GB/s  %5.1f%% of ceiling", ms, bytes / (ms * 1e-3) / 1e9,
                        100.0 * bytes / (ms * 1e-3) / 1e9 / ceiling_gbs);
        } else {
          std::snprintf(buf, sizeof(buf), "  [%s %.3f ms]", sched == 1 ? (raw ? "generic" : "items") : (sched == 2 ? "stream" : "slice"), ms);
        }
        line += buf;
      }
      ge::cuda::set_gemv_schedule_override(0);
      report("   %-10s %6lld x %-6lld x%-3d %s\n", shapes[si].name, static_cast<long long>(shapes[si].rows),
             static_cast<long long>(shapes[si].cols), shapes[si].count, line.c_str());
    }
    }
    report("\n");
  }
  CHECK_CUDA(cudaFree(x));
  CHECK_CUDA(cudaFree(y));
  if (g_out) std::fclose(g_out);
  return 0;
}
