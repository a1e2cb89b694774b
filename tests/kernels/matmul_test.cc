// The packed int8-activation matmul of the "cpu" backend on every instruction set this processor
// runs, against (a) the exact product of the packed weights with the quantized activations, which
// isolates kernel and layout bugs, and (b) the reference backend, which bounds the documented error
// of quantizing activations to int8 per block of 32.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_packed_weight.h"
#include "random_weights.h"

namespace ge {
namespace {

// Relative L2 error of one output row: ‖got − want‖ / ‖want‖.
double row_rel_error(const float* got, const double* want, int64_t n) {
  double num = 0.0, den = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return den > 0.0 ? std::sqrt(num / den) : std::sqrt(num);
}

struct TypeCase {
  QuantType type;
  int64_t group = 32;
  int zero_kind = 1;
  std::vector<int64_t> ks;
};

// Tolerances. Per output element, with w the dequantized row, x the fp32 activations and xq the
// int8 activations the kernel saw (xq = d·q per block of 32):
//  - vs the exact product Σ w·xq (double): fp32 rounding only, since block dots are exact int32:
//    |y − exact| ≤ 1e-4 · Σ|w·xq| (fp32 sums over ≤ 512 terms, plus the min/zero-point terms).
//  - vs the fp32 reference: Cauchy–Schwarz bounds the activation-rounding error,
//    |Σ w·(x − xq)| ≤ ‖w‖₂·‖x − xq‖₂, and each |x − xq| ≤ d/2 with d = max|x|/127 over its block.
//    Per output row (n = 33 outputs) the relative L2 error must also stay under 5%: for Gaussian
//    activations its mean is 0.4–0.7% by type; the tail (up to ~3% seen in 40 runs) comes from
//    random-byte Q4_K/Q5_K rows, whose large mins make every row share one common-mode component
//    (see docs/cpu-backend.md). A wrong scale, min or layout gives errors of order 100%. fp32
//    weights take no activation quantization.
//  - decode (M ≤ kInt16MaxTokens) quantizes activations to int16 (d = max|x|/32767): the same
//    bounds hold, and the relative row error must stay under 2e-4 (fp32 rounding dominates).
constexpr double kExactTol = 1e-4;
constexpr double kInt16RowRelTol = 2e-4;
constexpr double kRowRelTol = 0.05;
constexpr int64_t kRowRelMinOutputs = 33;

class MatmulTest : public ::testing::TestWithParam<cpu::CpuIsa> {};

TEST_P(MatmulTest, MatchesReferenceOverShapeGrid) {
  const uint32_t seed = test::test_seed();
  SCOPED_TRACE("GE_TEST_SEED=" + std::to_string(seed));
  std::mt19937 rng(seed);
  const cpu::CpuIsa isa = GetParam();
  std::unique_ptr<Backend> ref(create_cpu_reference_backend(1));
  const cpu::CpuKernels& kern = cpu::kernels_for(isa);
  const TypeCase cases[] = {
      {QuantType::kQ4_0, 32, 1, {32, 160}},         {QuantType::kQ5_0, 32, 1, {64, 96}},
      {QuantType::kQ8_0, 32, 1, {32, 224}},         {QuantType::kQ4_K, 32, 1, {256, 512}},
      {QuantType::kQ5_K, 32, 1, {256}},             {QuantType::kQ6_K, 32, 1, {256, 512}},
      {QuantType::kF32, 32, 1, {1, 37, 64}},        {QuantType::kF16, 32, 1, {64}},
      {QuantType::kBF16, 32, 1, {96}},              {QuantType::kInt4Group, 32, 1, {64}},
      {QuantType::kInt4Group, 64, 0, {128}},        {QuantType::kInt4Group, 128, 1, {256}},
      {QuantType::kInt8Group, 32, 1, {96}},         {QuantType::kInt8Group, 64, 0, {128}},
      {QuantType::kInt4Group, 16, 1, {48}},  // group not on a block: fp32 fallback
  };
  double max_row_rel = 0.0;
  for (cpu::CpuActivations acts : {cpu::CpuActivations::kInt8, cpu::CpuActivations::kInt16}) {
    std::unique_ptr<Backend> fast(create_cpu_backend_isa(2, isa, acts));
    for (const TypeCase& c : cases) {
      for (int64_t k : c.ks) {
        for (int64_t n : {1, 8, 13, 33}) {
          test::RandomWeight w = test::make_random_weight(c.type, n, k, rng, c.group, c.zero_kind);
          auto pf = fast->pack_weight(w.view);
          auto pr = ref->pack_weight(w.view);
          ASSERT_TRUE(pf.is_ok() && pr.is_ok());
          const auto& packed = static_cast<const cpu::CpuPackedWeight&>(**pf);
          const bool quant = packed.kind() != cpu::PackedKind::kF32;
          // Dequantized packed rows [n, k] for the exact oracle.
          std::vector<float> wd(static_cast<size_t>(n * k));
          for (int64_t r = 0; r < n; ++r) packed.dequantize_row(r, wd.data() + r * k);
          for (int64_t m : {1, 3, 4, 5, 9, 12}) {
            SCOPED_TRACE(std::string(quant_type_name(c.type)) + " group " + std::to_string(c.group) +
                         " m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) +
                         " isa=" + cpu::cpu_isa_name(isa) + " activations=" + cpu::cpu_activations_name(acts));
            std::vector<float> x = test::random_floats(m * k, rng);
            std::vector<float> y(static_cast<size_t>(m * n), std::nanf(""));  // poisoned
            std::vector<float> yr(static_cast<size_t>(m * n));
            fast->matmul(x.data(), m, **pf, y.data());
            ref->matmul(x.data(), m, **pr, yr.data());
            // The activations the kernel actually saw: d · q per block (fp32 weights see x itself).
            std::vector<float> xq = x;
            const bool int16_acts = quant && (m <= cpu::kInt16MaxTokens || acts == cpu::CpuActivations::kInt16);
            if (quant) {
              const int64_t nb = k / 32;
              std::vector<int8_t> q(static_cast<size_t>(m * k));
              std::vector<int16_t> q16(static_cast<size_t>(m * k));
              std::vector<float> d(static_cast<size_t>(m * nb)), ds(static_cast<size_t>(m * nb));
              std::vector<int32_t> s16(static_cast<size_t>(m * nb * 2));
              if (int16_acts) {
                kern.quantize_acts16(x.data(), m, nb, q16.data(), d.data(), ds.data(), s16.data());
              } else {
                kern.quantize_acts(x.data(), m, nb, q.data(), d.data(), ds.data(), s16.data());
              }
              for (int64_t i = 0; i < m * k; ++i) {
                xq[i] = d[i / 32] * static_cast<float>(int16_acts ? q16[i] : q[i]);
              }
            }
            for (int64_t t = 0; t < m; ++t) {
              double err_norm = 0.0;  // ‖x − xq‖₂ of this token
              for (int64_t i = 0; i < k; ++i) {
                const double e = static_cast<double>(x[t * k + i]) - xq[t * k + i];
                err_norm += e * e;
              }
              err_norm = std::sqrt(err_norm);
              std::vector<double> want(static_cast<size_t>(n));
              for (int64_t r = 0; r < n; ++r) {
                double exact = 0.0, abs_sum = 0.0, w_norm = 0.0;
                for (int64_t i = 0; i < k; ++i) {
                  const double wi = wd[r * k + i];
                  exact += wi * xq[t * k + i];
                  abs_sum += std::fabs(wi * xq[t * k + i]) + std::fabs(wi * x[t * k + i]);
                  w_norm += wi * wi;
                }
                const float got = y[t * n + r];
                want[r] = yr[t * n + r];
                ASSERT_FALSE(std::isnan(got)) << "row " << r << " token " << t << " unwritten";
                EXPECT_LE(std::fabs(got - exact), kExactTol * abs_sum) << "row " << r << " token " << t;
                const double act_bound = std::sqrt(w_norm) * err_norm;
                EXPECT_LE(std::fabs(got - want[r]), act_bound + kExactTol * abs_sum) << "row " << r << " token " << t;
              }
              if (n >= kRowRelMinOutputs) {
                const double rel = row_rel_error(y.data() + t * n, want.data(), n);
                EXPECT_LE(rel, !quant ? kExactTol : int16_acts ? kInt16RowRelTol : kRowRelTol) << "token " << t;
                if (quant && !int16_acts) max_row_rel = std::max(max_row_rel, rel);
              }
            }
          }
        }
      }
    }
  }
  RecordProperty("max_row_rel_error", std::to_string(max_row_rel));
  std::printf("max relative row error from int8 activations (n=%lld): %.4f\n",
              static_cast<long long>(kRowRelMinOutputs), max_row_rel);
}

// A block of zeros must quantize to q = 0 with d = 0 (no division by zero, no NaN).
TEST_P(MatmulTest, ZeroActivationBlocks) {
  std::mt19937 rng(test::test_seed());
  std::unique_ptr<Backend> fast(create_cpu_backend_isa(1, GetParam(), cpu::CpuActivations::kInt8));
  test::RandomWeight w = test::make_random_weight(QuantType::kQ4_K, 9, 256, rng);
  auto pf = fast->pack_weight(w.view);
  ASSERT_TRUE(pf.is_ok());
  std::vector<float> x(2 * 256, 0.0f), y(2 * 9, std::nanf(""));
  fast->matmul(x.data(), 2, **pf, y.data());
  for (float v : y) EXPECT_EQ(v, 0.0f);
}

INSTANTIATE_TEST_SUITE_P(Isa, MatmulTest, ::testing::ValuesIn(test::supported_isas()),
                         [](const auto& info) { return std::string(cpu::cpu_isa_name(info.param)); });

}  // namespace
}  // namespace ge
