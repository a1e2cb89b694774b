// HQQ int4 quantization: valid kInt4Group output, lower reconstruction error than min-max on
// weight-like data, and the documented starting point when no iterations run.
#include "quant/hqq.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "quant/dequantize.h"

namespace ge {
namespace {

// Gaussian rows with sparse large outliers, the case HQQ's l_p (p < 1) objective is built for.
std::vector<float> weight_like(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::uniform_int_distribution<int> pick(0, 60);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (float& v : w) v = pick(rng) == 0 ? normal(rng) * 8.0f : normal(rng);
  return w;
}

struct Errors {
  double mean_abs = 0;
  double mean_sq = 0;
};

Errors reconstruction_error(const Int4GroupData& q, const std::vector<float>& src, int64_t rows,
                            int64_t cols) {
  const QuantWeight w = int4_group_weight(q, rows, cols);
  EXPECT_TRUE(validate_weight(w).is_ok());
  std::vector<float> row(cols);
  Errors e;
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(w, r, row.data());
    for (int64_t k = 0; k < cols; ++k) {
      const double d = static_cast<double>(row[k]) - src[r * cols + k];
      e.mean_abs += std::fabs(d);
      e.mean_sq += d * d;
    }
  }
  e.mean_abs /= static_cast<double>(rows * cols);
  e.mean_sq /= static_cast<double>(rows * cols);
  return e;
}

class HqqGroup : public ::testing::TestWithParam<int64_t> {};

TEST_P(HqqGroup, BeatsMinMaxOnWeightLikeData) {
  const int64_t group = GetParam(), rows = 32, cols = 512;
  const std::vector<float> src = weight_like(rows, cols, 9);
  Result<Int4GroupData> minmax = quantize_int4_group_minmax(src.data(), rows, cols, group);
  Result<Int4GroupData> hqq = quantize_int4_group_hqq(src.data(), rows, cols, group);
  ASSERT_TRUE(minmax.is_ok());
  ASSERT_TRUE(hqq.is_ok()) << hqq.status().to_string();
  ASSERT_EQ(hqq->qdata.size(), minmax->qdata.size());
  ASSERT_EQ(hqq->scale.size(), minmax->scale.size());
  ASSERT_EQ(hqq->zero.size(), minmax->zero.size());
  const Errors e_minmax = reconstruction_error(minmax.value(), src, rows, cols);
  const Errors e_hqq = reconstruction_error(hqq.value(), src, rows, cols);
  EXPECT_LT(e_hqq.mean_abs, e_minmax.mean_abs);
  // The optimised zero points are no longer the integer starting values.
  int fractional = 0;
  for (uint16_t z : hqq->zero) fractional += bf16_to_f32(z) != std::nearbyint(bf16_to_f32(z));
  EXPECT_GT(fractional, 0);
}

INSTANTIATE_TEST_SUITE_P(Groups, HqqGroup, ::testing::Values(32, 64, 128));

TEST(Hqq, NoIterationsIsRoundedZeroMinMax) {
  const int64_t rows = 4, cols = 128, group = 64, groups = cols / group;
  const std::vector<float> src = weight_like(rows, cols, 4);
  HqqOptions options;
  options.iters = 0;
  Result<Int4GroupData> q = quantize_int4_group_hqq(src.data(), rows, cols, group, options);
  ASSERT_TRUE(q.is_ok());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const float* x = src.data() + r * cols + g * group;
      float mn = x[0], mx = x[0];
      for (int64_t k = 0; k < group; ++k) {
        mn = std::fmin(mn, x[k]);
        mx = std::fmax(mx, x[k]);
      }
      const float iscale = 15.0f / (mx - mn);
      EXPECT_EQ(q->scale[g * rows + r], f32_to_bf16(1.0f / iscale));
      EXPECT_EQ(q->zero[g * rows + r], f32_to_bf16(std::nearbyint(-mn * iscale)));
    }
  }
}

TEST(Hqq, ZeroAndConstantGroups) {
  const int64_t rows = 2, cols = 64;
  std::vector<float> src(rows * cols, 0.0f);
  for (int64_t k = 0; k < cols; ++k) src[cols + k] = 0.75f;  // constant row
  Result<Int4GroupData> q = quantize_int4_group_hqq(src.data(), rows, cols, 32);
  ASSERT_TRUE(q.is_ok());
  const QuantWeight w = int4_group_weight(q.value(), rows, cols);
  std::vector<float> row(cols);
  dequantize_row(w, 0, row.data());
  for (float v : row) EXPECT_EQ(v, 0.0f);
  dequantize_row(w, 1, row.data());
  for (float v : row) EXPECT_NEAR(v, 0.75f, 0.75f / 128);  // bf16 precision of scale and zero
}

TEST(Hqq, RejectsBadArguments) {
  std::vector<float> src(256, 0.1f);
  HqqOptions bad;
  bad.beta = 0.0f;
  EXPECT_EQ(quantize_int4_group_hqq(src.data(), 2, 128, 32, bad).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(quantize_int4_group_hqq(src.data(), 2, 128, 48).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(quantize_int4_group_hqq(nullptr, 2, 128, 32).status().code(),
            StatusCode::kInvalidArgument);
  src[3] = std::nanf("");
  EXPECT_EQ(quantize_int4_group_hqq(src.data(), 2, 128, 32).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ge
