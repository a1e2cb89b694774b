// Reference decoders vs gguf.quants (fixtures from scripts/gen_quant_fixtures.py), the torchao
// group layouts built by hand, and dot_row vs the dequantized row.
#include "quant/dequantize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "quant_fixture.h"

namespace ge {
namespace {

using testing::BlockFixture;
using testing::float_bits;
using testing::load_block_fixture;

class BlockDecode : public ::testing::TestWithParam<const char*> {};

QuantWeight fixture_weight(const BlockFixture& fx) {
  QuantWeight w;
  w.type = fx.type;
  w.rows = fx.decode_rows;
  w.cols = fx.cols;
  w.data = fx.encoded.data();
  return w;
}

TEST_P(BlockDecode, BitExactWithGguf) {
  BlockFixture fx;
  const std::string err = load_block_fixture(GetParam(), &fx);
  ASSERT_EQ(err, "");
  ASSERT_GT(fx.decode_rows, 0u);
  Result<uint64_t> rb = row_bytes(fx.type, fx.cols);
  ASSERT_TRUE(rb.is_ok());
  ASSERT_EQ(rb.value(), fx.row_bytes);

  // Whole fixture as one run of blocks.
  const int64_t n = int64_t{fx.decode_rows} * fx.cols;
  std::vector<float> all(static_cast<size_t>(n), -1.0f);
  dequantize_blocks(fx.type, fx.encoded.data(), n, all.data());
  int64_t mismatches = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (float_bits(all[i]) != float_bits(fx.decoded[i])) {
      if (++mismatches <= 5) {
        ADD_FAILURE() << GetParam() << " element " << i << " (row " << i / fx.cols << ", col "
                      << i % fx.cols << "): got " << all[i] << ", gguf " << fx.decoded[i];
      }
    }
  }
  EXPECT_EQ(mismatches, 0);

  // Row by row through the weight view (exercises the row offset).
  const QuantWeight w = fixture_weight(fx);
  ASSERT_TRUE(validate_weight(w).is_ok());
  std::vector<float> row(fx.cols);
  for (int64_t r = 0; r < w.rows; ++r) {
    dequantize_row(w, r, row.data());
    EXPECT_EQ(std::memcmp(row.data(), fx.decoded.data() + r * fx.cols, fx.cols * sizeof(float)), 0)
        << GetParam() << " row " << r;
  }
}

TEST_P(BlockDecode, DotRowMatchesDequantizedRow) {
  BlockFixture fx;
  ASSERT_EQ(load_block_fixture(GetParam(), &fx), "");
  const QuantWeight w = fixture_weight(fx);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::vector<float> x(fx.cols);
  for (float& v : x) v = normal(rng);
  for (int64_t r = 0; r < w.rows; ++r) {
    const float* expected = fx.decoded.data() + r * fx.cols;
    double ref = 0, mag = 0;
    for (uint32_t k = 0; k < fx.cols; ++k) {
      ref += static_cast<double>(expected[k]) * x[k];
      mag += std::fabs(static_cast<double>(expected[k]) * x[k]);
    }
    const float got = dot_row(w, r, x.data());
    const float want = static_cast<float>(ref);  // random bf16/f16 rows may exceed float range
    if (std::isfinite(want)) {
      EXPECT_NEAR(got, ref, 1e-6 * mag + 1e-30) << GetParam() << " row " << r;
    } else {
      EXPECT_EQ(got, want) << GetParam() << " row " << r;
    }
  }
  // A one-hot x picks out single elements exactly.
  std::vector<float> one_hot(fx.cols, 0.0f);
  for (uint32_t k : {0u, 31u, 255u, fx.cols - 1}) {
    one_hot[k] = 1.0f;
    const float got = dot_row(w, 1, one_hot.data());
    EXPECT_EQ(float_bits(got), float_bits(fx.decoded[fx.cols + k] + 0.0f))
        << GetParam() << " k " << k;
    one_hot[k] = 0.0f;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, BlockDecode,
                         ::testing::Values("q4_0.bin", "q5_0.bin", "q8_0.bin", "q4_k.bin",
                                           "q5_k.bin", "q6_k.bin", "f16.bin", "bf16.bin",
                                           "q4_k_ggml.bin", "q6_k_ggml.bin"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           std::string name = info.param;
                           return name.substr(0, name.find('.'));
                         });

TEST(Dequantize, F32IsACopy) {
  const float src[4] = {1.5f, -0.0f, 3e38f, -1e-40f};
  float dst[4];
  dequantize_blocks(QuantType::kF32, src, 4, dst);
  EXPECT_EQ(std::memcmp(src, dst, sizeof(src)), 0);
  QuantWeight w;
  w.type = QuantType::kF32;
  w.rows = 2;
  w.cols = 2;
  w.data = reinterpret_cast<const uint8_t*>(src);
  float row[2];
  dequantize_row(w, 1, row);
  EXPECT_EQ(float_bits(row[0]), float_bits(3e38f));
  EXPECT_EQ(float_bits(row[1]), float_bits(-1e-40f));
}

TEST(Dequantize, Q8_0HandBuiltBlock) {
  // d = 0.5 (fp16 0x3800), q = j − 16 → w = (j − 16) / 2.
  uint8_t block[34];
  const uint16_t d = 0x3800;
  std::memcpy(block, &d, 2);
  for (int j = 0; j < 32; ++j) block[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 16));
  float out[32];
  dequantize_blocks(QuantType::kQ8_0, block, 32, out);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(out[j], (j - 16) * 0.5f) << j;
}

// kInt4Group: qdata [rows, cols/2] with even k in the low nibble; scale/zero bf16 [groups, rows].
TEST(Dequantize, Int4GroupLayout) {
  const int64_t rows = 2, cols = 8, group = 4, groups = 2;
  // q[r][k] = (3·r + k) mod 16.
  std::vector<uint8_t> qdata(rows * cols / 2);
  auto q_at = [](int64_t r, int64_t k) { return static_cast<int>((3 * r + k) % 16); };
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < cols; k += 2) {
      qdata[r * cols / 2 + k / 2] = static_cast<uint8_t>(q_at(r, k) | (q_at(r, k + 1) << 4));
    }
  }
  // Distinct per (group, row) so a transposed lookup is caught.
  const float scales[2][2] = {{0.5f, 0.25f}, {2.0f, -1.0f}};  // [group][row]
  const float zeros[2][2] = {{8.0f, 7.5f}, {3.0f, 0.0f}};
  std::vector<uint16_t> scale(groups * rows), zero(groups * rows);
  for (int g = 0; g < groups; ++g) {
    for (int r = 0; r < rows; ++r) {
      scale[g * rows + r] = f32_to_bf16(scales[g][r]);
      zero[g * rows + r] = f32_to_bf16(zeros[g][r]);
    }
  }
  QuantWeight w;
  w.type = QuantType::kInt4Group;
  w.rows = rows;
  w.cols = cols;
  w.data = qdata.data();
  w.group_size = group;
  w.scale = scale.data();
  w.zero = zero.data();
  ASSERT_TRUE(validate_weight(w).is_ok());
  float out[8];
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(w, r, out);
    for (int64_t k = 0; k < cols; ++k) {
      const int64_t g = k / group;
      EXPECT_EQ(out[k], (q_at(r, k) - zeros[g][r]) * scales[g][r]) << "r " << r << " k " << k;
    }
  }
  // Without zero the offset is 8 (symmetric int4).
  w.zero = nullptr;
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(w, r, out);
    for (int64_t k = 0; k < cols; ++k) {
      EXPECT_EQ(out[k], (q_at(r, k) - 8.0f) * scales[k / group][r]) << "r " << r << " k " << k;
    }
  }
}

// kInt8Group: qdata int8 [rows, cols]; scale bf16 and zero int8 [rows, groups].
TEST(Dequantize, Int8GroupLayout) {
  const int64_t rows = 3, cols = 6, group = 3, groups = 2;
  std::vector<int8_t> qdata(rows * cols);
  for (int64_t i = 0; i < rows * cols; ++i) qdata[i] = static_cast<int8_t>(i * 37 % 256 - 128);
  std::vector<uint16_t> scale(rows * groups);
  std::vector<int8_t> zero(rows * groups);
  for (int64_t i = 0; i < rows * groups; ++i) {
    scale[i] = f32_to_bf16(0.125f * static_cast<float>(i + 1));
    zero[i] = static_cast<int8_t>(i * 5 - 7);
  }
  QuantWeight w;
  w.type = QuantType::kInt8Group;
  w.rows = rows;
  w.cols = cols;
  w.data = reinterpret_cast<const uint8_t*>(qdata.data());
  w.group_size = group;
  w.scale = scale.data();
  w.zero = zero.data();
  ASSERT_TRUE(validate_weight(w).is_ok());
  float out[6];
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(w, r, out);
    for (int64_t k = 0; k < cols; ++k) {
      const int64_t gi = r * groups + k / group;
      const float expected =
          static_cast<float>(qdata[r * cols + k] - zero[gi]) * bf16_to_f32(scale[gi]);
      EXPECT_EQ(out[k], expected) << "r " << r << " k " << k;
    }
  }
  w.zero = nullptr;
  dequantize_row(w, 2, out);
  for (int64_t k = 0; k < cols; ++k) {
    EXPECT_EQ(out[k],
              static_cast<float>(qdata[2 * cols + k]) * bf16_to_f32(scale[2 * groups + k / group]));
  }
}

TEST(Dequantize, DotRowOnGroupWeights) {
  const int64_t rows = 2, cols = 64, group = 32;
  std::vector<int8_t> qdata(rows * cols);
  for (int64_t i = 0; i < rows * cols; ++i) qdata[i] = static_cast<int8_t>((i * 13) % 255 - 127);
  std::vector<uint16_t> scale(rows * 2, f32_to_bf16(0.01f));
  QuantWeight w;
  w.type = QuantType::kInt8Group;
  w.rows = rows;
  w.cols = cols;
  w.data = reinterpret_cast<const uint8_t*>(qdata.data());
  w.group_size = group;
  w.scale = scale.data();
  std::vector<float> x(cols), row(cols);
  for (int64_t k = 0; k < cols; ++k) x[k] = 0.5f - static_cast<float>(k % 7) * 0.125f;
  dequantize_row(w, 1, row.data());
  double ref = 0;
  for (int64_t k = 0; k < cols; ++k) ref += static_cast<double>(row[k]) * x[k];
  EXPECT_FLOAT_EQ(dot_row(w, 1, x.data()), static_cast<float>(ref));
}

}  // namespace
}  // namespace ge
