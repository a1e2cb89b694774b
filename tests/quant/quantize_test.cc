// Quantizers: bit-identical to gguf.quants (and, for Q4_K/Q6_K, to ggml's reference quantizers),
// round-trip bounds for the k-quants and the torchao int4/int8 group layouts, and argument errors.
#include "quant/quantize.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "quant/dequantize.h"
#include "quant_fixture.h"

namespace ge {
namespace {

using testing::BlockFixture;
using testing::load_block_fixture;

class QuantizeFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(QuantizeFixture, BitIdenticalToReference) {
  BlockFixture fx;
  ASSERT_EQ(load_block_fixture(GetParam(), &fx), "");
  ASSERT_GT(fx.quant_rows, 0u) << "fixture has no quantizer section";
  std::vector<uint8_t> out(fx.quantized.size(), 0xAA);
  Status s = quantize_rows(fx.type, fx.quant_input.data(), fx.quant_rows, fx.cols, out.data());
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  for (uint32_t r = 0; r < fx.quant_rows; ++r) {
    const uint8_t* got = out.data() + uint64_t{r} * fx.row_bytes;
    const uint8_t* want = fx.quantized.data() + uint64_t{r} * fx.row_bytes;
    for (uint32_t b = 0; b < fx.row_bytes; ++b) {
      if (got[b] != want[b]) {
        ADD_FAILURE() << GetParam() << " row " << r << " byte " << b << ": got " << int{got[b]}
                      << ", reference " << int{want[b]};
        break;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, QuantizeFixture,
    // *_ggml.bin: bytes from ggml's own reference k-quantizers (gguf.quants has none).
    ::testing::Values("q4_0.bin", "q5_0.bin", "q8_0.bin", "f16.bin", "bf16.bin", "q4_k_ggml.bin",
                      "q6_k_ggml.bin"),
    [](const ::testing::TestParamInfo<const char*>& info) {
      std::string name = info.param;
      return name.substr(0, name.find('.'));
    });

std::vector<float> normal_data(int64_t n, uint32_t seed, float sigma = 1.0f, float mean = 0.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(mean, sigma);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

TEST(QuantizeRows, F32IsACopy) {
  const std::vector<float> src = normal_data(64, 1);
  std::vector<uint8_t> out(64 * 4);
  ASSERT_TRUE(quantize_rows(QuantType::kF32, src.data(), 2, 32, out.data()).is_ok());
  EXPECT_EQ(std::memcmp(out.data(), src.data(), out.size()), 0);
}

// Normalised RMS error of quantize → dequantize over rows × cols.
double round_trip_nrmse(QuantType type, const std::vector<float>& src, int64_t rows, int64_t cols) {
  Result<uint64_t> rb = row_bytes(type, cols);
  EXPECT_TRUE(rb.is_ok());
  std::vector<uint8_t> q(rows * rb.value());
  Status s = quantize_rows(type, src.data(), rows, cols, q.data());
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  std::vector<float> back(src.size());
  dequantize_blocks(type, q.data(), rows * cols, back.data());
  double err = 0, ref = 0;
  for (size_t i = 0; i < src.size(); ++i) {
    err += (back[i] - src[i]) * static_cast<double>(back[i] - src[i]);
    ref += src[i] * static_cast<double>(src[i]);
  }
  return std::sqrt(err / ref);
}

TEST(QuantizeRows, KQuantsRoundTripBetterThanSameBitLegacyTypes) {
  const int64_t rows = 16, cols = 1024;
  std::vector<float> src = normal_data(rows * cols, 3);
  // A few outliers, as real weight rows have.
  for (int64_t i = 0; i < rows * cols; i += 997) src[i] *= 8.0f;
  const double q4_0 = round_trip_nrmse(QuantType::kQ4_0, src, rows, cols);
  const double q4_k = round_trip_nrmse(QuantType::kQ4_K, src, rows, cols);
  const double q5_0 = round_trip_nrmse(QuantType::kQ5_0, src, rows, cols);
  const double q6_k = round_trip_nrmse(QuantType::kQ6_K, src, rows, cols);
  const double q8_0 = round_trip_nrmse(QuantType::kQ8_0, src, rows, cols);
  // Each extra bit roughly halves the error; the k-quants' fitted scales beat plain absmax.
  EXPECT_LT(q4_k, q4_0);
  EXPECT_LT(q4_k, 0.12);
  EXPECT_LT(q6_k, 0.5 * q5_0);
  EXPECT_LT(q6_k, 0.03);
  EXPECT_LT(q8_0, q6_k);
}

TEST(QuantizeRows, KQuantsKeepZerosAndOffsets) {
  const int64_t cols = 512;
  for (QuantType type : {QuantType::kQ4_K, QuantType::kQ6_K}) {
    SCOPED_TRACE(quant_type_name(type));
    std::vector<uint8_t> q(row_bytes(type, cols).value());
    std::vector<float> back(cols);
    // All zeros decode to exact zeros.
    std::vector<float> zeros(cols, 0.0f);
    ASSERT_TRUE(quantize_rows(type, zeros.data(), 1, cols, q.data()).is_ok());
    dequantize_blocks(type, q.data(), cols, back.data());
    for (float v : back) EXPECT_EQ(v, 0.0f);
    // An all-positive row (Q4_K's min is 0 there) and a mixed row stay within a few percent.
    for (float mean : {0.0f, 2.5f}) {
      std::vector<float> src = normal_data(cols, 11, 0.25f, mean);
      ASSERT_TRUE(quantize_rows(type, src.data(), 1, cols, q.data()).is_ok());
      dequantize_blocks(type, q.data(), cols, back.data());
      float amax = 0;
      for (float v : src) amax = std::max(amax, std::fabs(v));
      const float tol = type == QuantType::kQ4_K ? amax / 15.0f : amax / 31.0f;
      for (int64_t k = 0; k < cols; ++k) EXPECT_NEAR(back[k], src[k], tol) << "k " << k;
    }
  }
}

TEST(QuantizeRows, RejectsBadArguments) {
  std::vector<float> src(512, 1.0f);
  std::vector<uint8_t> dst(4096);
  auto code = [&](QuantType t, const float* s, int64_t rows, int64_t cols, uint8_t* d) {
    return quantize_rows(t, s, rows, cols, d).code();
  };
  EXPECT_EQ(code(QuantType::kQ5_K, src.data(), 1, 256, dst.data()), StatusCode::kUnsupported);
  EXPECT_EQ(code(QuantType::kInt4Group, src.data(), 1, 256, dst.data()),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(QuantType::kQ8_0, src.data(), 1, 48, dst.data()), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(QuantType::kQ8_0, nullptr, 1, 32, dst.data()), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(QuantType::kQ8_0, src.data(), 1, 32, nullptr), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(QuantType::kQ8_0, src.data(), 0, 32, dst.data()), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(QuantType::kF32, src.data(), std::numeric_limits<int64_t>::max(), 256, dst.data()),
            StatusCode::kInvalidArgument);
  for (float bad :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    src[40] = bad;
    Status s = quantize_rows(QuantType::kQ4_0, src.data(), 1, 64, dst.data());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("column 40"), std::string::npos) << s.message();
    // Float encodings carry non-finite values through.
    EXPECT_TRUE(quantize_rows(QuantType::kBF16, src.data(), 1, 64, dst.data()).is_ok());
  }
}

// Every element of a group decodes within half a quantization step of its input.
void expect_within_half_step(const QuantWeight& w, const std::vector<float>& src,
                             const std::vector<float>& step /* [rows, groups] */) {
  std::vector<float> row(w.cols);
  const int64_t groups = w.num_groups();
  for (int64_t r = 0; r < w.rows; ++r) {
    dequantize_row(w, r, row.data());
    for (int64_t k = 0; k < w.cols; ++k) {
      const float x = src[r * w.cols + k];
      const float s = step[r * groups + k / w.group_size];
      // Half a step plus the fp32 rounding of (q − zero)·scale itself.
      ASSERT_LE(std::fabs(row[k] - x), 0.5f * s + 4e-7f * std::fabs(x) + 1e-30f)
          << "row " << r << " col " << k << " x " << x << " decoded " << row[k] << " step " << s;
    }
  }
}

// Rows with different spreads and offsets, a zero row and a constant-sign row.
std::vector<float> group_test_data(int64_t rows, int64_t cols, uint32_t seed) {
  std::vector<float> src = normal_data(rows * cols, seed);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < cols; ++k) {
      float& v = src[r * cols + k];
      if (r == 1) v = 0.0f;
      if (r == 2) v = std::fabs(v) * 0.01f + 0.02f;
      if (r == 3) v *= 100.0f;
      if (r == 4) v = v * 1e-3f - 2e-3f;
    }
  }
  return src;
}

class GroupSize : public ::testing::TestWithParam<int64_t> {};

TEST_P(GroupSize, Int4MinMaxRoundTripWithinHalfStep) {
  const int64_t group = GetParam(), rows = 6, cols = 512, groups = cols / group;
  const std::vector<float> src = group_test_data(rows, cols, 21);
  Result<Int4GroupData> q = quantize_int4_group_minmax(src.data(), rows, cols, group);
  ASSERT_TRUE(q.is_ok()) << q.status().to_string();
  ASSERT_EQ(q->qdata.size(), static_cast<size_t>(rows * cols / 2));
  ASSERT_EQ(q->scale.size(), static_cast<size_t>(rows * groups));
  ASSERT_EQ(q->zero.size(), static_cast<size_t>(rows * groups));
  const QuantWeight w = int4_group_weight(q.value(), rows, cols);
  ASSERT_TRUE(validate_weight(w).is_ok());
  std::vector<float> step(rows * groups);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      // Documented parameters: scale = (max − min)/15, zero = −min/scale (bf16, [groups, rows]).
      const float* x = src.data() + r * cols + g * group;
      const float mn = *std::min_element(x, x + group), mx = *std::max_element(x, x + group);
      const float scale = bf16_to_f32(q->scale[g * rows + r]);
      EXPECT_EQ(q->scale[g * rows + r], f32_to_bf16(std::max(mx - mn, 1e-6f) / 15.0f));
      EXPECT_EQ(q->zero[g * rows + r], f32_to_bf16(-mn / scale));
      step[r * groups + g] = scale;
    }
  }
  expect_within_half_step(w, src, step);
  // The zero row decodes to exact zeros.
  std::vector<float> row(cols);
  dequantize_row(w, 1, row.data());
  for (float v : row) EXPECT_EQ(v, 0.0f);
}

TEST_P(GroupSize, Int4WithoutZeroRoundTripWithinHalfStep) {
  // Symmetric int4 (zero pointer null, offset 8), quantized here: scale = max|x| / 7.
  const int64_t group = GetParam(), rows = 4, cols = 256, groups = cols / group;
  const std::vector<float> src = normal_data(rows * cols, 5);
  std::vector<uint8_t> qdata(rows * cols / 2, 0);
  std::vector<uint16_t> scale(groups * rows);
  std::vector<float> step(rows * groups);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const float* x = src.data() + r * cols + g * group;
      float amax = 0;
      for (int64_t k = 0; k < group; ++k) amax = std::max(amax, std::fabs(x[k]));
      const uint16_t bits = f32_to_bf16(amax / 7.0f);
      const float s = bf16_to_f32(bits);
      scale[g * rows + r] = bits;
      step[r * groups + g] = s;
      for (int64_t k = 0; k < group; ++k) {
        const int64_t col = g * group + k;
        const int v = std::clamp(static_cast<int>(std::nearbyint(x[k] / s)) + 8, 0, 15);
        qdata[r * cols / 2 + col / 2] |= static_cast<uint8_t>(col % 2 == 0 ? v : v << 4);
      }
    }
  }
  QuantWeight w;
  w.type = QuantType::kInt4Group;
  w.rows = rows;
  w.cols = cols;
  w.data = qdata.data();
  w.group_size = group;
  w.scale = scale.data();
  ASSERT_TRUE(validate_weight(w).is_ok());
  expect_within_half_step(w, src, step);
  // Same as an explicit zero of 8.
  std::vector<uint16_t> eights(groups * rows, f32_to_bf16(8.0f));
  QuantWeight explicit_zero = w;
  explicit_zero.zero = eights.data();
  std::vector<float> a(cols), b(cols);
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(w, r, a.data());
    dequantize_row(explicit_zero, r, b.data());
    EXPECT_EQ(a, b) << "row " << r;
  }
}

TEST_P(GroupSize, Int8SymmetricRoundTripWithinHalfStep) {
  const int64_t group = GetParam(), rows = 6, cols = 512, groups = cols / group;
  const std::vector<float> src = group_test_data(rows, cols, 33);
  Result<Int8GroupData> q = quantize_int8_group_symmetric(src.data(), rows, cols, group);
  ASSERT_TRUE(q.is_ok()) << q.status().to_string();
  ASSERT_EQ(q->qdata.size(), static_cast<size_t>(rows * cols));
  ASSERT_EQ(q->scale.size(), static_cast<size_t>(rows * groups));
  ASSERT_EQ(q->zero.size(), static_cast<size_t>(rows * groups));
  for (int8_t z : q->zero) EXPECT_EQ(z, 0);
  for (int8_t v : q->qdata) EXPECT_GE(v, -127);
  const QuantWeight w = int8_group_weight(q.value(), rows, cols);
  ASSERT_TRUE(validate_weight(w).is_ok());
  std::vector<float> step(rows * groups);
  for (int64_t i = 0; i < rows * groups; ++i) step[i] = bf16_to_f32(q->scale[i]);  // [rows, groups]
  expect_within_half_step(w, src, step);
  // A null zero pointer means the same symmetric decoding.
  QuantWeight no_zero = w;
  no_zero.zero = nullptr;
  std::vector<float> a(cols), b(cols);
  dequantize_row(w, 3, a.data());
  dequantize_row(no_zero, 3, b.data());
  EXPECT_EQ(a, b);
}

INSTANTIATE_TEST_SUITE_P(Groups, GroupSize, ::testing::Values(32, 64, 128));

TEST(GroupQuantize, RejectsBadArguments) {
  std::vector<float> src(256, 0.5f);
  EXPECT_EQ(quantize_int4_group_minmax(src.data(), 2, 128, 48).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(quantize_int4_group_minmax(src.data(), 2, 128, 0).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(quantize_int4_group_minmax(nullptr, 2, 128, 32).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(quantize_int4_group_minmax(src.data(), 0, 128, 32).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(quantize_int4_group_minmax(src.data(), 1, 3, 1).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(quantize_int8_group_symmetric(src.data(), 2, 128, 96).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(quantize_int8_group_symmetric(src.data(), std::numeric_limits<int64_t>::max(), 128, 32)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  src[7] = std::numeric_limits<float>::quiet_NaN();
  Result<Int8GroupData> nan = quantize_int8_group_symmetric(src.data(), 2, 128, 32);
  ASSERT_FALSE(nan.is_ok());
  EXPECT_NE(nan.status().message().find("non-finite"), std::string::npos);
  EXPECT_FALSE(quantize_int4_group_minmax(src.data(), 2, 128, 32).is_ok());
}

}  // namespace
}  // namespace ge
