// Random weights of every QuantType for the kernel tests: raw random bytes (so every bit pattern
// of quants and 6-bit scales occurs) with finite, moderate fp16/bf16 scales written over them.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "core/dtype.h"
#include "quant/quant_type.h"

namespace ge::test {

// Owns the buffers a QuantWeight views.
struct RandomWeight {
  QuantWeight view;
  std::vector<uint8_t> data;
  std::vector<uint16_t> scale;
  std::vector<uint8_t> zero;
};

inline uint16_t random_fp16(std::mt19937& rng, float lo, float hi) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::bernoulli_distribution neg(0.5);
  const float v = u(rng);
  return f32_to_fp16(neg(rng) ? -v : v);
}

// cols must suit the type (multiple of its block; of the group for the group types).
// zero_kind for group types: 0 = no zero tensor, 1 = random zeros.
inline RandomWeight make_random_weight(QuantType type, int64_t rows, int64_t cols, std::mt19937& rng,
                                       int64_t group_size = 32, int zero_kind = 1) {
  RandomWeight w;
  w.view.type = type;
  w.view.rows = rows;
  w.view.cols = cols;
  std::uniform_int_distribution<int> byte(0, 255);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto fill_bytes = [&](size_t n) {
    w.data.resize(n);
    for (auto& b : w.data) b = static_cast<uint8_t>(byte(rng));
  };
  auto put16 = [&](size_t off, uint16_t v) { std::memcpy(w.data.data() + off, &v, 2); };
  if (is_row_blocked(type)) {
    const BlockLayout bl = block_layout(type);
    const int64_t blocks = rows * (cols / bl.block_elems);
    fill_bytes(static_cast<size_t>(blocks * bl.block_bytes));
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
        case QuantType::kQ4_0: case QuantType::kQ5_0: case QuantType::kQ8_0:
          put16(b, random_fp16(rng, 0.002f, 0.05f));
          break;
        case QuantType::kQ4_K: case QuantType::kQ5_K:
          put16(b, random_fp16(rng, 0.0005f, 0.002f));
          put16(b + 2, random_fp16(rng, 0.0005f, 0.002f));
          break;
        case QuantType::kQ6_K: put16(b + 208, random_fp16(rng, 0.0005f, 0.002f)); break;
        default: break;
      }
    }
  } else {
    w.view.group_size = group_size;
    const int64_t groups = cols / group_size;
    fill_bytes(static_cast<size_t>(type == QuantType::kInt4Group ? rows * cols / 2 : rows * cols));
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

inline std::vector<float> random_floats(int64_t n, std::mt19937& rng, float sigma = 1.0f) {
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = normal(rng);
  return v;
}

// Every instruction set this processor can run (the kernel tests cover each one).
inline std::vector<cpu::CpuIsa> supported_isas() {
  std::vector<cpu::CpuIsa> out;
  for (cpu::CpuIsa isa : {cpu::CpuIsa::kPortable, cpu::CpuIsa::kAvx2, cpu::CpuIsa::kAvx512Vnni}) {
    if (cpu::cpu_isa_supported(isa)) out.push_back(isa);
  }
  return out;
}

// Seed from the environment (GE_TEST_SEED) to replay a failure, else fresh.
inline uint32_t test_seed() {
  if (const char* s = std::getenv("GE_TEST_SEED")) return static_cast<uint32_t>(std::stoul(s));
  return std::random_device{}();
}

}  // namespace ge::test
