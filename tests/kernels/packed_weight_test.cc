// Packing is lossless: for every weight type and shape, each row of the packed CPU weight decodes
// bit for bit to what the reference decoder (dequantize_row) gives for the source view.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "backend/cpu/cpu_packed_weight.h"
#include "quant/dequantize.h"
#include "random_weights.h"

namespace ge {
namespace {

struct PackCase {
  QuantType type;
  int64_t cols;
  int64_t group = 32;
  int zero_kind = 1;
  int expect_bits;  // quant bits of the packed stream; 0 = fp32 tiles
};

void expect_lossless(const PackCase& c, int64_t rows, std::mt19937& rng) {
  test::RandomWeight w = test::make_random_weight(c.type, rows, c.cols, rng, c.group, c.zero_kind);
  Result<std::unique_ptr<cpu::CpuPackedWeight>> p = cpu::pack_cpu_weight(w.view);
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  if (c.expect_bits == 0) {
    EXPECT_EQ((*p)->kind(), cpu::PackedKind::kF32);
  } else {
    EXPECT_EQ((*p)->kind(), cpu::PackedKind::kQuant);
    EXPECT_EQ((*p)->layout().bits, c.expect_bits);
  }
  EXPECT_EQ((*p)->rows(), rows);
  EXPECT_EQ((*p)->cols(), c.cols);
  std::vector<float> want(static_cast<size_t>(c.cols)), got(static_cast<size_t>(c.cols));
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(w.view, r, want.data());
    std::fill(got.begin(), got.end(), std::nanf(""));
    (*p)->dequantize_row(r, got.data());
    // memcmp: bit-for-bit, so −0 vs +0 or a NaN payload would count as a difference.
    ASSERT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0)
        << quant_type_name(c.type) << " row " << r << " of " << rows << " cols " << c.cols;
  }
}

TEST(PackedWeight, EveryTypeDecodesBitForBit) {
  const uint32_t seed = test::test_seed();
  SCOPED_TRACE("GE_TEST_SEED=" + std::to_string(seed));
  std::mt19937 rng(seed);
  const PackCase cases[] = {
      {QuantType::kQ4_0, 96, 32, 1, 4},        {QuantType::kQ5_0, 64, 32, 1, 5},
      {QuantType::kQ8_0, 160, 32, 1, 8},       {QuantType::kQ4_K, 512, 32, 1, 4},
      {QuantType::kQ5_K, 256, 32, 1, 5},       {QuantType::kQ6_K, 512, 32, 1, 8},
      {QuantType::kF32, 37, 32, 1, 0},         {QuantType::kF16, 64, 32, 1, 0},
      {QuantType::kBF16, 33, 32, 1, 0},        {QuantType::kInt4Group, 128, 32, 1, 4},
      {QuantType::kInt4Group, 256, 128, 1, 4}, {QuantType::kInt4Group, 128, 64, 0, 4},
      {QuantType::kInt4Group, 96, 16, 1, 0},   {QuantType::kInt8Group, 128, 32, 1, 8},
      {QuantType::kInt8Group, 256, 256, 0, 8}, {QuantType::kInt8Group, 48, 16, 1, 0},
  };
  for (const PackCase& c : cases) {
    for (int64_t rows : {1, 7, 8, 9, 23}) expect_lossless(c, rows, rng);
  }
}

TEST(PackedWeight, RejectsInvalidViews) {
  QuantWeight w;
  w.type = QuantType::kQ4_0;
  w.rows = 4;
  w.cols = 33;  // not a multiple of the 32-element block
  std::vector<uint8_t> data(1024);
  w.data = data.data();
  EXPECT_FALSE(cpu::pack_cpu_weight(w).is_ok());
  w.cols = 32;
  w.data = nullptr;
  EXPECT_FALSE(cpu::pack_cpu_weight(w).is_ok());
  w.data = data.data();
  w.rows = 0;
  EXPECT_FALSE(cpu::pack_cpu_weight(w).is_ok());
}

}  // namespace
}  // namespace ge
