// Helpers for the CUDA backend tests: a CUDA backend next to the CPU reference backend ("cpu-ref"),
// host <-> backend copies, poisoned outputs, random weights of every QuantType and error metrics.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/dtype.h"
#include "quant/quant_type.h"

namespace ge::gputest {

// Seed from GE_TEST_SEED to replay a failure, else fresh for every run.
inline uint32_t test_seed() {
  if (const char* s = std::getenv("GE_TEST_SEED")) return static_cast<uint32_t>(std::stoul(s));
  return std::random_device{}();
}

// Both backends, created once per test.
class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = test_seed();
    rng_.seed(seed_);
    Result<std::unique_ptr<Backend>> gpu = create_backend("cuda", 1);
    ASSERT_TRUE(gpu.is_ok()) << "the gpu tests need a CUDA device: " << gpu.status().to_string();
    gpu_ = std::move(gpu).value();
    cuda_ = dynamic_cast<CudaBackend*>(gpu_.get());
    ASSERT_NE(cuda_, nullptr);
    Result<std::unique_ptr<Backend>> cpu = create_backend("cpu-ref", 8);
    ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
    cpu_ = std::move(cpu).value();
  }

  std::string trace() const { return "GE_TEST_SEED=" + std::to_string(seed_); }

  // Device copy of host data.
  DeviceBuffer to_gpu(const void* data, size_t bytes) {
    Result<DeviceBuffer> b = gpu_->alloc(bytes);
    EXPECT_TRUE(b.is_ok()) << b.status().to_string();
    if (!b.is_ok()) return DeviceBuffer();
    gpu_->upload(b->data(), data, bytes);
    return std::move(b).value();
  }
  template <typename T>
  DeviceBuffer to_gpu(const std::vector<T>& v) {
    return to_gpu(v.data(), v.size() * sizeof(T));
  }
  // Device buffer of n floats filled with NaN, so unwritten outputs cannot pass.
  DeviceBuffer poisoned(int64_t n) {
    std::vector<float> nan(static_cast<size_t>(n), std::numeric_limits<float>::quiet_NaN());
    return to_gpu(nan);
  }
  std::vector<float> from_gpu(const DeviceBuffer& b, int64_t n) {
    std::vector<float> out(static_cast<size_t>(n));
    gpu_->download(out.data(), b.data(), static_cast<size_t>(n) * sizeof(float));
    return out;
  }
  // Host "device" buffer for the CPU backend.
  template <typename T>
  DeviceBuffer to_cpu(const std::vector<T>& v) {
    Result<DeviceBuffer> b = cpu_->alloc(v.size() * sizeof(T));
    EXPECT_TRUE(b.is_ok());
    if (!b.is_ok()) return DeviceBuffer();
    cpu_->upload(b->data(), v.data(), v.size() * sizeof(T));
    return std::move(b).value();
  }
  std::vector<float> from_cpu(const DeviceBuffer& b, int64_t n) {
    std::vector<float> out(static_cast<size_t>(n));
    std::memcpy(out.data(), b.data(), static_cast<size_t>(n) * sizeof(float));
    return out;
  }

  std::vector<float> normal(int64_t n, float sigma = 1.0f) {
    std::normal_distribution<float> d(0.0f, sigma);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = d(rng_);
    return v;
  }

  uint32_t seed_ = 0;
  std::mt19937 rng_;
  std::unique_ptr<Backend> gpu_;
  CudaBackend* cuda_ = nullptr;
  std::unique_ptr<Backend> cpu_;
};

// ‖got − want‖ / ‖want‖ (absolute when want is all zero); NaN anywhere gives +inf.
inline double rel_l2(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i]) || !std::isfinite(want[i])) return std::numeric_limits<double>::infinity();
    const double e = static_cast<double>(got[i]) - want[i];
    num += e * e;
    den += static_cast<double>(want[i]) * want[i];
  }
  return den > 0.0 ? std::sqrt(num / den) : std::sqrt(num);
}

// max |got − want| / max(1e-30, rms(want)): catches a few bad elements hidden in an L2 average.
inline double max_err_over_rms(const std::vector<float>& got, const std::vector<float>& want) {
  double mx = 0.0, ss = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i]) || !std::isfinite(want[i])) return std::numeric_limits<double>::infinity();
    mx = std::max(mx, std::fabs(static_cast<double>(got[i]) - want[i]));
    ss += static_cast<double>(want[i]) * want[i];
  }
  const double rms = want.empty() ? 0.0 : std::sqrt(ss / static_cast<double>(want.size()));
  return mx / std::max(1e-30, rms);
}

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Owns the arrays a QuantWeight views.
struct HostWeight {
  QuantWeight view;
  std::vector<uint8_t> data;
  std::vector<uint16_t> scale;
  std::vector<uint8_t> zero;
};

// A packed encoding under test: the QuantType, its group (0: the type's own block) and zero kind
// (0 none, 1 random zero points: random_weight's zero_kind).
struct Encoding {
  QuantType type;
  int64_t group = 0;
  int zero_kind = 0;
  int64_t unit() const { return group > 0 ? group : 32; }
  std::string name() const {
    return std::string(quant_type_name(type)) + (group > 0 ? "_g" + std::to_string(group) : "") +
           (zero_kind ? "_zero" : "");
  }
};

// Random weight: random bytes for every quant field (every code and 6-bit scale pattern occurs),
// finite moderate fp16/bf16 scales written over them. zero_kind for group types: 0 none, 1 random.
inline HostWeight random_weight(QuantType type, int64_t rows, int64_t cols, std::mt19937& rng,
                                int64_t group_size = 32, int zero_kind = 1) {
  HostWeight w;
  w.view.type = type;
  w.view.rows = rows;
  w.view.cols = cols;
  std::uniform_int_distribution<int> byte(0, 255);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> mag(0.5f, 1.5f);
  std::bernoulli_distribution neg(0.5);
  auto put16 = [&](size_t off, uint16_t v) { std::memcpy(w.data.data() + off, &v, 2); };
  auto fp16 = [&](float scale, bool sign) { return f32_to_fp16((sign && neg(rng) ? -1.0f : 1.0f) * mag(rng) * scale); };
  if (is_row_blocked(type)) {
    const BlockLayout bl = block_layout(type);
    const int64_t blocks = rows * (cols / bl.block_elems);
    w.data.resize(static_cast<size_t>(blocks * bl.block_bytes));
    for (auto& b : w.data) b = static_cast<uint8_t>(byte(rng));
    for (int64_t i = 0; i < blocks; ++i) {
      const size_t b = static_cast<size_t>(i * bl.block_bytes);
      switch (type) {
        case QuantType::kF32: {
          const float v = normal(rng);
          std::memcpy(w.data.data() + b, &v, 4);
          break;
        }
        case QuantType::kF16: put16(b, f32_to_fp16(normal(rng))); break;
        case QuantType::kBF16: put16(b, f32_to_bf16(normal(rng))); break;
        case QuantType::kQ4_0:
        case QuantType::kQ5_0:
        case QuantType::kQ8_0: put16(b, fp16(0.02f, true)); break;
        case QuantType::kQ4_K:
        case QuantType::kQ5_K:
          put16(b, fp16(0.001f, false));
          put16(b + 2, fp16(0.001f, false));
          break;
        case QuantType::kQ6_K: put16(b + 208, fp16(0.001f, true)); break;
        default: break;
      }
    }
  } else {
    w.view.group_size = group_size;
    const int64_t groups = cols / group_size;
    w.data.resize(static_cast<size_t>(type == QuantType::kInt4Group ? rows * cols / 2 : rows * cols));
    for (auto& b : w.data) b = static_cast<uint8_t>(byte(rng));
    std::uniform_real_distribution<float> sc(0.005f, 0.05f);
    w.scale.resize(static_cast<size_t>(rows * groups));
    for (auto& s : w.scale) s = f32_to_bf16(sc(rng));
    if (zero_kind == 1) {
      if (type == QuantType::kInt4Group) {
        w.zero.resize(static_cast<size_t>(rows * groups) * 2);
        std::uniform_real_distribution<float> z(0.0f, 15.0f);
        for (int64_t i = 0; i < rows * groups; ++i) {
          const uint16_t v = f32_to_bf16(z(rng));
          std::memcpy(w.zero.data() + 2 * i, &v, 2);
        }
      } else {
        w.zero.resize(static_cast<size_t>(rows * groups));
        std::uniform_int_distribution<int> z(-20, 20);
        for (auto& v : w.zero) v = static_cast<uint8_t>(static_cast<int8_t>(z(rng)));
      }
    }
  }
  w.view.data = w.data.data();
  w.view.scale = w.scale.empty() ? nullptr : w.scale.data();
  w.view.zero = w.zero.empty() ? nullptr : w.zero.data();
  return w;
}

// A host weight with its packings for the GPU and the CPU backends (null where packing failed, which
// is also reported as a test failure).
struct PackedPair {
  HostWeight host;
  std::unique_ptr<PackedWeight> gpu, cpu;
};
inline PackedPair pack_pair(Backend& gpu, Backend& cpu, HostWeight host) {
  PackedPair p{std::move(host), nullptr, nullptr};
  Result<std::unique_ptr<PackedWeight>> g = gpu.pack_weight(p.host.view);
  Result<std::unique_ptr<PackedWeight>> c = cpu.pack_weight(p.host.view);
  EXPECT_TRUE(g.is_ok()) << g.status().to_string();
  EXPECT_TRUE(c.is_ok()) << c.status().to_string();
  if (g.is_ok()) p.gpu = std::move(g).value();
  if (c.is_ok()) p.cpu = std::move(c).value();
  return p;
}

}  // namespace ge::gputest
