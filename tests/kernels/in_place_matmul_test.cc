// GGUF Q4_0 / Q8_0 weights used in place (kInPlace: the matmul reads the file's row-major blocks)
// on every instruction set this processor runs: against the exact product with the int16
// activations the kernel saw, against the reference backend, and the placement policy.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_packed_weight.h"
#include "quant/dequantize.h"
#include "random_weights.h"

namespace ge {
namespace {

// fp32 sums of exact int32 block dots: |y − exact| ≤ 1e-4 · Σ|w·xq| (as matmul_test.cc).
constexpr double kExactTol = 1e-4;
// int16 activations: relative L2 error of an output row vs the fp32 reference (as matmul_test.cc).
constexpr double kRowRelTol = 2e-4;

class InPlaceMatmulTest : public ::testing::TestWithParam<cpu::CpuIsa> {};

TEST_P(InPlaceMatmulTest, MatchesReferenceOverShapeGrid) {
  const uint32_t seed = test::test_seed();
  SCOPED_TRACE("GE_TEST_SEED=" + std::to_string(seed));
  std::mt19937 rng(seed);
  const cpu::CpuIsa isa = GetParam();
  std::unique_ptr<Backend> ref(create_cpu_reference_backend(1));
  std::unique_ptr<Backend> fast(create_cpu_backend_isa(2, isa));
  ASSERT_TRUE(cpu::set_weight_placement(*fast, cpu::WeightPlacement::kInPlace));
  const cpu::CpuKernels& kern = cpu::kernels_for(isa);
  for (QuantType type : {QuantType::kQ4_0, QuantType::kQ8_0}) {
    for (int64_t k : {32, 96, 512}) {
      for (int64_t n : {1, 7, 8, 33, 300}) {
        test::RandomWeight w = test::make_random_weight(type, n, k, rng);
        auto pf = fast->pack_weight(w.view);
        auto pr = ref->pack_weight(w.view);
        ASSERT_TRUE(pf.is_ok() && pr.is_ok());
        const auto& packed = static_cast<const cpu::CpuPackedWeight&>(**pf);
        ASSERT_EQ(packed.kind(), cpu::PackedKind::kInPlace);
        EXPECT_EQ(packed.source_data(), w.data.data()) << "in-place weight must not copy";
        EXPECT_EQ(packed.bytes(), 0u);
        std::vector<float> wd(static_cast<size_t>(n * k));
        for (int64_t r = 0; r < n; ++r) dequantize_row(w.view, r, wd.data() + r * k);
        std::vector<float> row(static_cast<size_t>(k));
        packed.dequantize_row(n - 1, row.data());
        for (int64_t i = 0; i < k; ++i) ASSERT_EQ(row[i], wd[(n - 1) * k + i]);
        for (int64_t m : {1, 2, 3, 4, 5, 9, 17}) {
          SCOPED_TRACE(std::string(quant_type_name(type)) + " m=" + std::to_string(m) + " n=" + std::to_string(n) +
                       " k=" + std::to_string(k) + " isa=" + cpu::cpu_isa_name(isa));
          std::vector<float> x = test::random_floats(m * k, rng);
          std::vector<float> y(static_cast<size_t>(m * n), std::nanf(""));
          std::vector<float> yr(static_cast<size_t>(m * n));
          fast->matmul(x.data(), m, **pf, y.data());
          ref->matmul(x.data(), m, **pr, yr.data());
          const int64_t nb = k / 32;
          std::vector<int16_t> q16(static_cast<size_t>(m * k));
          std::vector<float> d(static_cast<size_t>(m * nb)), ds(static_cast<size_t>(m * nb));
          std::vector<int32_t> s16(static_cast<size_t>(m * nb * 2));
          kern.quantize_acts16(x.data(), m, nb, q16.data(), d.data(), ds.data(), s16.data());
          for (int64_t t = 0; t < m; ++t) {
            double num = 0.0, den = 0.0;
            for (int64_t r = 0; r < n; ++r) {
              double exact = 0.0, abs_sum = 0.0;
              for (int64_t i = 0; i < k; ++i) {
                const double xq = static_cast<double>(d[(t * k + i) / 32]) * q16[t * k + i];
                exact += wd[r * k + i] * xq;
                abs_sum += std::fabs(wd[r * k + i] * xq);
              }
              const float got = y[t * n + r];
              ASSERT_FALSE(std::isnan(got)) << "row " << r << " token " << t << " unwritten";
              EXPECT_LE(std::fabs(got - exact), kExactTol * abs_sum + 1e-30) << "row " << r << " token " << t;
              num += (got - yr[t * n + r]) * (got - yr[t * n + r]);
              den += static_cast<double>(yr[t * n + r]) * yr[t * n + r];
            }
            if (n >= 33) {
              EXPECT_LE(std::sqrt(num / den), kRowRelTol) << "token " << t;
            }
          }
        }
      }
    }
  }
}

// Embedding lookups decode the source rows exactly as the reference does.
TEST_P(InPlaceMatmulTest, EmbedMatchesReference) {
  std::mt19937 rng(test::test_seed());
  std::unique_ptr<Backend> ref(create_cpu_reference_backend(1));
  std::unique_ptr<Backend> fast(create_cpu_backend_isa(1, GetParam()));
  ASSERT_TRUE(cpu::set_weight_placement(*fast, cpu::WeightPlacement::kInPlace));
  for (QuantType type : {QuantType::kQ4_0, QuantType::kQ8_0}) {
    test::RandomWeight w = test::make_random_weight(type, 50, 64, rng);
    auto pf = fast->pack_weight(w.view);
    auto pr = ref->pack_weight(w.view);
    ASSERT_TRUE(pf.is_ok() && pr.is_ok());
    const int32_t tokens[] = {0, 49, 17};
    std::vector<float> a(3 * 64), b(3 * 64);
    fast->embed(tokens, 3, **pf, 2.5f, a.data());
    ref->embed(tokens, 3, **pr, 2.5f, b.data());
    EXPECT_EQ(a, b);
  }
}

// Zero activations give zero outputs (d = 0 blocks, no NaN).
TEST_P(InPlaceMatmulTest, ZeroActivations) {
  std::mt19937 rng(test::test_seed());
  std::unique_ptr<Backend> fast(create_cpu_backend_isa(1, GetParam()));
  ASSERT_TRUE(cpu::set_weight_placement(*fast, cpu::WeightPlacement::kInPlace));
  test::RandomWeight w = test::make_random_weight(QuantType::kQ4_0, 9, 64, rng);
  auto pf = fast->pack_weight(w.view);
  ASSERT_TRUE(pf.is_ok());
  std::vector<float> x(5 * 64, 0.0f), y(5 * 9, std::nanf(""));
  fast->matmul(x.data(), 5, **pf, y.data());
  for (float v : y) EXPECT_EQ(v, 0.0f);
}

INSTANTIATE_TEST_SUITE_P(Isa, InPlaceMatmulTest, ::testing::ValuesIn(test::supported_isas()),
                         [](const auto& info) { return std::string(cpu::cpu_isa_name(info.param)); });

TEST(WeightPlacement, OtherTypesAreRepackedAndOtherBackendsRefuse) {
  std::mt19937 rng(test::test_seed());
  std::unique_ptr<Backend> fast(create_cpu_backend(1));
  ASSERT_TRUE(cpu::set_weight_placement(*fast, cpu::WeightPlacement::kInPlace));
  test::RandomWeight w = test::make_random_weight(QuantType::kQ4_K, 8, 256, rng);
  auto p = fast->pack_weight(w.view);
  ASSERT_TRUE(p.is_ok());
  EXPECT_EQ(static_cast<const cpu::CpuPackedWeight&>(**p).kind(), cpu::PackedKind::kQuant);
  EXPECT_FALSE(cpu::view_cpu_weight_in_place(w.view).is_ok());
  std::unique_ptr<Backend> ref(create_cpu_reference_backend(1));
  EXPECT_FALSE(cpu::set_weight_placement(*ref, cpu::WeightPlacement::kInPlace));
  EXPECT_EQ(cpu::apply_weight_policy(*ref, 1, true), "");
  EXPECT_NE(cpu::apply_weight_policy(*fast, 1, true).find("in place"), std::string::npos);
  EXPECT_EQ(cpu::apply_weight_policy(*fast, 1, false), "");  // repacked: silent
}

TEST(WeightPlacement, Policy) {
  constexpr uint64_t kGiB = uint64_t{1} << 30;
  using cpu::WeightPlacement;
  EXPECT_EQ(cpu::choose_weight_placement(kGiB / 4, 20 * kGiB, false), WeightPlacement::kRepack);
  EXPECT_EQ(cpu::choose_weight_placement(kGiB / 4, 20 * kGiB, true), WeightPlacement::kInPlace);
  // A 31B Q4_0 model (17.5 GB) in 21 GiB available: copy and source need 35 GB.
  EXPECT_EQ(cpu::choose_weight_placement(17500000000ull, 21 * kGiB, false), WeightPlacement::kInPlace);
  EXPECT_EQ(cpu::choose_weight_placement(10 * kGiB, 21 * kGiB, false), WeightPlacement::kRepack);
  EXPECT_EQ(cpu::choose_weight_placement(10 * kGiB + 1, 21 * kGiB, false), WeightPlacement::kInPlace);
  EXPECT_EQ(cpu::choose_weight_placement(1, kGiB, false), WeightPlacement::kInPlace);  // nothing above the margin
  EXPECT_EQ(cpu::choose_weight_placement(kGiB, 0, false), WeightPlacement::kRepack);      // unknown
  EXPECT_GT(cpu::mem_available_bytes(), 0u);
}

}  // namespace
}  // namespace ge
