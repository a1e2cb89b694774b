// The non-matmul ops of the "cpu" backend (norms, RoPE, GELU, elementwise, softcap, embedding,
// attention) on every instruction set this processor runs, against the reference backend.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>

#include "backend/cpu/cpu_backend.h"
#include "random_weights.h"

namespace ge {
namespace {

// Tolerances: SIMD sums round in a different order (norms: fp32 vs the reference's double sum of
// squares), and exp/tanh are polynomial approximations with relative error < 1e-6: 1e-5 relative,
// with an absolute floor for values near zero.
constexpr float kRel = 1e-5f;
constexpr float kAbs = 1e-6f;

void expect_near_all(const std::vector<float>& got, const std::vector<float>& want, float rel, float abs,
                     const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], abs + rel * std::fabs(want[i])) << what << " at " << i;
  }
}

class CpuOpsTest : public ::testing::TestWithParam<cpu::CpuIsa> {
 protected:
  void SetUp() override {
    seed_ = test::test_seed();
    rng_.seed(seed_);
    fast_.reset(create_cpu_backend_isa(2, GetParam()));
    ref_.reset(create_cpu_reference_backend(2));
  }
  uint32_t seed_ = 0;
  std::mt19937 rng_;
  std::unique_ptr<Backend> fast_, ref_;
};

TEST_P(CpuOpsTest, NormsMatchReference) {
  SCOPED_TRACE("GE_TEST_SEED=" + std::to_string(seed_));
  for (int64_t n : {1, 7, 640, 1153}) {
    for (int64_t rows : {1, 3, 64}) {
      std::vector<float> x = test::random_floats(rows * n, rng_, 3.0f), w = test::random_floats(n, rng_);
      std::vector<float> a(x.size()), b(x.size());
      fast_->rms_norm(x.data(), w.data(), rows, n, 1e-6f, a.data());
      ref_->rms_norm(x.data(), w.data(), rows, n, 1e-6f, b.data());
      expect_near_all(a, b, kRel, kAbs, "rms_norm n=" + std::to_string(n));
      fast_->rms_norm(x.data(), nullptr, rows, n, 1e-6f, a.data());
      ref_->rms_norm(x.data(), nullptr, rows, n, 1e-6f, b.data());
      expect_near_all(a, b, kRel, kAbs, "rms_norm (no weight)");
      std::vector<float> res = test::random_floats(rows * n, rng_), res2 = res;
      fast_->add_rms_norm(res.data(), x.data(), w.data(), rows, n, 1e-6f);
      ref_->add_rms_norm(res2.data(), x.data(), w.data(), rows, n, 1e-6f);
      expect_near_all(res, res2, kRel, 1e-5f, "add_rms_norm");
      // In place (y aliases x).
      std::vector<float> xa = x, xb = x;
      fast_->rms_norm(xa.data(), w.data(), rows, n, 1e-6f, xa.data());
      ref_->rms_norm(xb.data(), w.data(), rows, n, 1e-6f, xb.data());
      expect_near_all(xa, xb, kRel, kAbs, "rms_norm in place");
    }
  }
}

TEST_P(CpuOpsTest, RopeMatchesReferenceExactly) {
  SCOPED_TRACE("GE_TEST_SEED=" + std::to_string(seed_));
  for (int64_t d : {8, 256}) {
    const int64_t tokens = 5, heads = 3, half = d / 2;
    std::vector<float> inv(static_cast<size_t>(half));
    for (int64_t j = 0; j < half; ++j) inv[j] = std::pow(10000.0f, -2.0f * j / d);
    inv[half - 1] = 0.0f;  // proportional RoPE leaves this pair alone
    std::vector<int32_t> pos = {0, 1, 17, 4095, 32767};
    std::vector<float> a = test::random_floats(tokens * heads * d, rng_), b = a;
    fast_->rope(a.data(), tokens, heads, d, pos.data(), inv.data());
    ref_->rope(b.data(), tokens, heads, d, pos.data(), inv.data());
    // Same fp32 angles and libm calls, mul/sub without contraction: bit-identical.
    expect_near_all(a, b, 0.0f, 0.0f, "rope d=" + std::to_string(d));
  }
}

TEST_P(CpuOpsTest, ElementwiseMatchReference) {
  SCOPED_TRACE("GE_TEST_SEED=" + std::to_string(seed_));
  for (int64_t n : {1, 9, 1000, 70001}) {
    std::vector<float> g = test::random_floats(n, rng_, 3.0f), u = test::random_floats(n, rng_);
    g[0] = n > 1 ? 40.0f : g[0];  // saturated tanh
    std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
    fast_->gelu_tanh_mul(g.data(), u.data(), n, a.data());
    ref_->gelu_tanh_mul(g.data(), u.data(), n, b.data());
    expect_near_all(a, b, kRel, kAbs, "gelu_tanh_mul");
    fast_->add(g.data(), u.data(), n, a.data());
    ref_->add(g.data(), u.data(), n, b.data());
    expect_near_all(a, b, 0.0f, 0.0f, "add");
    a = g;
    b = g;
    fast_->scale(a.data(), n, 0.37f);
    ref_->scale(b.data(), n, 0.37f);
    expect_near_all(a, b, 0.0f, 0.0f, "scale");
    std::vector<float> big = test::random_floats(n, rng_, 40.0f);
    a = big;
    b = big;
    fast_->softcap(a.data(), n, 30.0f);
    ref_->softcap(b.data(), n, 30.0f);
    // tanh as 1 − 2/(e^{2x}+1): absolute error ~1e-7 of the cap.
    expect_near_all(a, b, kRel, 30.0f * 2e-7f, "softcap");
  }
}

TEST_P(CpuOpsTest, EmbedMatchesReference) {
  SCOPED_TRACE("GE_TEST_SEED=" + std::to_string(seed_));
  for (QuantType type : {QuantType::kQ8_0, QuantType::kQ4_K, QuantType::kBF16}) {
    test::RandomWeight w = test::make_random_weight(type, 37, 256, rng_);
    auto pf = fast_->pack_weight(w.view);
    auto pr = ref_->pack_weight(w.view);
    ASSERT_TRUE(pf.is_ok() && pr.is_ok());
    std::vector<int32_t> tokens = {0, 36, 5, 5};
    std::vector<float> a(4 * 256), b(4 * 256);
    fast_->embed(tokens.data(), 4, **pf, 25.3f, a.data());
    ref_->embed(tokens.data(), 4, **pr, 25.3f, b.data());
    expect_near_all(a, b, 0.0f, 0.0f, quant_type_name(type));
  }
}

TEST_P(CpuOpsTest, AttentionMatchesReference) {
  SCOPED_TRACE("GE_TEST_SEED=" + std::to_string(seed_));
  struct Case {
    int32_t n_heads, n_kv, d, window, capacity;
    float softcap;
  };
  // GQA, MQA, MHA; full and sliding (ring smaller than the sequence: slots wrap); softcap; groups of
  // 3 and 6 heads and head_dim 36/40 (register blocks of 4 and 32 with tails).
  for (const Case& c : {Case{4, 1, 256, 0, 64, 0.0f}, Case{8, 2, 64, 16, 24, 0.0f}, Case{2, 2, 32, 0, 40, 50.0f},
                        Case{4, 1, 256, 7, 12, 0.0f}, Case{3, 1, 40, 0, 64, 0.0f}, Case{6, 1, 36, 9, 40, 0.0f}}) {
    const int64_t total = 37;  // positions 0..36, stored and attended in three chunks
    std::vector<KvLayerSpec> specs = {{c.n_kv, c.d, c.window > 0 ? c.capacity : 64, c.window}};
    auto cf = fast_->create_kv_cache(specs);
    auto cr = ref_->create_kv_cache(specs);
    ASSERT_TRUE(cf.is_ok() && cr.is_ok());
    AttentionParams p{c.n_heads, c.n_kv, c.d, c.window, 1.0f / std::sqrt(static_cast<float>(c.d)), c.softcap};
    const int64_t chunks[] = {20, 1, 16};
    int32_t start = 0;
    for (int64_t chunk : chunks) {
      std::vector<int32_t> pos(static_cast<size_t>(chunk));
      for (int64_t i = 0; i < chunk; ++i) pos[i] = start + static_cast<int32_t>(i);
      std::vector<float> k = test::random_floats(chunk * c.n_kv * c.d, rng_);
      std::vector<float> v = test::random_floats(chunk * c.n_kv * c.d, rng_);
      std::vector<float> q = test::random_floats(chunk * c.n_heads * c.d, rng_, 2.0f);
      fast_->kv_store(**cf, 0, k.data(), v.data(), chunk, pos.data());
      ref_->kv_store(**cr, 0, k.data(), v.data(), chunk, pos.data());
      std::vector<float> a(q.size(), std::nanf("")), b(q.size());
      fast_->attention(**cf, 0, q.data(), chunk, pos.data(), p, a.data());
      ref_->attention(**cr, 0, q.data(), chunk, pos.data(), p, b.data());
      expect_near_all(a, b, 1e-4f, 1e-5f, "attention heads " + std::to_string(c.n_heads) + " window " +
                                              std::to_string(c.window) + " start " + std::to_string(start));
      start += static_cast<int32_t>(chunk);
    }
    ASSERT_EQ(start, total);
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, CpuOpsTest, ::testing::ValuesIn(test::supported_isas()),
                         [](const auto& info) { return std::string(cpu::cpu_isa_name(info.param)); });

}  // namespace
}  // namespace ge
