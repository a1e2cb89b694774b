// CUDA elementwise, norm, RoPE and embedding ops against the CPU reference backend over odd sizes,
// with fresh random inputs and NaN-poisoned outputs.
//
// Tolerances (relative L2 over the output unless stated):
//   add, scale, embed: bit-exact (the same single fp32 rounding on both sides)
//   softcap, gelu_tanh_mul: 1e-6 (tanhf differs by an ulp or two; the GPU may fuse a multiply-add)
//   rms_norm, add_rms_norm: 1e-6 (fp32 tree sum vs the reference's double sum of squares)
//   rope: 1e-6 (sincosf vs libm; angles up to 2.6e5 rad stay accurate without fast math)
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "gpu_test_util.h"

namespace ge {
namespace {

using gputest::GpuTest;
using gputest::rel_l2;

class CudaOps : public GpuTest {};

TEST_F(CudaOps, ElementwiseOps) {
  SCOPED_TRACE(trace());
  for (int64_t n : {1, 7, 32, 1000, 4099, 100003}) {
    SCOPED_TRACE("n = " + std::to_string(n));
    const std::vector<float> a = normal(n, 3.0f), b = normal(n);
    DeviceBuffer ga = to_gpu(a), gb = to_gpu(b), gout = poisoned(n);
    DeviceBuffer ca = to_cpu(a), cb = to_cpu(b), cout = to_cpu(std::vector<float>(n));

    gpu_->add(ga.f32(), gb.f32(), n, gout.f32());
    cpu_->add(ca.f32(), cb.f32(), n, cout.f32());
    EXPECT_EQ(rel_l2(from_gpu(gout, n), from_cpu(cout, n)), 0.0) << "add";

    gpu_->gelu_tanh_mul(ga.f32(), gb.f32(), n, gout.f32());
    cpu_->gelu_tanh_mul(ca.f32(), cb.f32(), n, cout.f32());
    EXPECT_LE(rel_l2(from_gpu(gout, n), from_cpu(cout, n)), 1e-6) << "gelu_tanh_mul";

    gpu_->scale(ga.f32(), n, 0.37f);
    cpu_->scale(ca.f32(), n, 0.37f);
    EXPECT_EQ(rel_l2(from_gpu(ga, n), from_cpu(ca, n)), 0.0) << "scale";

    gpu_->softcap(ga.f32(), n, 1.5f);
    cpu_->softcap(ca.f32(), n, 1.5f);
    EXPECT_LE(rel_l2(from_gpu(ga, n), from_cpu(ca, n)), 1e-6) << "softcap";
    ASSERT_TRUE(gpu_->synchronize().is_ok());
  }
}

TEST_F(CudaOps, RmsNormAndFusedResidual) {
  SCOPED_TRACE(trace());
  for (auto [rows, n] : std::vector<std::pair<int64_t, int64_t>>{
           {1, 1}, {1, 5376}, {3, 640}, {7, 1023}, {2, 4097}, {5, 21504}, {33, 256}}) {
    SCOPED_TRACE(std::to_string(rows) + " x " + std::to_string(n));
    const std::vector<float> x = normal(rows * n, 2.0f), a = normal(rows * n), w = normal(n);
    for (bool weighted : {true, false}) {
      DeviceBuffer gx = to_gpu(x), gw = to_gpu(w), gy = poisoned(rows * n);
      DeviceBuffer cx = to_cpu(x), cw = to_cpu(w), cy = to_cpu(std::vector<float>(rows * n));
      gpu_->rms_norm(gx.f32(), weighted ? gw.f32() : nullptr, rows, n, 1e-6f, gy.f32());
      cpu_->rms_norm(cx.f32(), weighted ? cw.f32() : nullptr, rows, n, 1e-6f, cy.f32());
      EXPECT_LE(rel_l2(from_gpu(gy, rows * n), from_cpu(cy, rows * n)), 1e-6) << "rms_norm";
      // In place (y aliases x).
      gpu_->rms_norm(gx.f32(), weighted ? gw.f32() : nullptr, rows, n, 1e-6f, gx.f32());
      EXPECT_LE(rel_l2(from_gpu(gx, rows * n), from_cpu(cy, rows * n)), 1e-6) << "rms_norm in place";
    }
    DeviceBuffer gx = to_gpu(x), ga = to_gpu(a), gw = to_gpu(w);
    DeviceBuffer cx = to_cpu(x), ca = to_cpu(a), cw = to_cpu(w);
    gpu_->add_rms_norm(gx.f32(), ga.f32(), gw.f32(), rows, n, 1e-6f);
    cpu_->add_rms_norm(cx.f32(), ca.f32(), cw.f32(), rows, n, 1e-6f);
    EXPECT_LE(rel_l2(from_gpu(gx, rows * n), from_cpu(cx, rows * n)), 1e-6) << "add_rms_norm";
    ASSERT_TRUE(gpu_->synchronize().is_ok());
  }
}

TEST_F(CudaOps, RopeDefaultAndProportional) {
  SCOPED_TRACE(trace());
  struct Shape {
    int64_t tokens, heads, d;
    bool proportional;
  };
  for (const Shape& s : std::vector<Shape>{{1, 1, 2, false}, {5, 3, 256, false}, {2, 4, 512, true},
                                           {7, 2, 64, false}, {3, 32, 512, true}, {1, 16, 256, false}}) {
    SCOPED_TRACE(std::to_string(s.tokens) + "x" + std::to_string(s.heads) + "x" + std::to_string(s.d));
    const int64_t half = s.d / 2;
    std::vector<float> inv(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i) {
      const bool rot = !s.proportional || i < s.d / 8;  // proportional: 1/4 of the pairs rotate
      inv[i] = rot ? std::pow(s.proportional ? 1e6f : 1e4f, -2.0f * i / s.d) : 0.0f;
    }
    std::vector<int32_t> pos(static_cast<size_t>(s.tokens));
    std::uniform_int_distribution<int32_t> p(0, 262143);
    for (auto& v : pos) v = p(rng_);
    pos[0] = 0;
    const int64_t n = s.tokens * s.heads * s.d;
    const std::vector<float> x = normal(n);
    DeviceBuffer gx = to_gpu(x), gp = to_gpu(pos), gi = to_gpu(inv);
    DeviceBuffer cx = to_cpu(x), cp = to_cpu(pos), ci = to_cpu(inv);
    gpu_->rope(gx.f32(), s.tokens, s.heads, s.d, gp.i32(), gi.f32());
    cpu_->rope(cx.f32(), s.tokens, s.heads, s.d, cp.i32(), ci.f32());
    const std::vector<float> got = from_gpu(gx, n), want = from_cpu(cx, n);
    EXPECT_LE(rel_l2(got, want), 1e-6);
    if (s.proportional) {  // non-rotating pairs pass through bit for bit
      for (int64_t i = 0; i < n; ++i) {
        const int64_t j = (i % s.d) % half;
        if (inv[j] == 0.0f) {
          ASSERT_EQ(got[i], x[i]) << "element " << i;
        }
      }
    }
    ASSERT_TRUE(gpu_->synchronize().is_ok());
  }
}

TEST_F(CudaOps, EmbedEveryTableType) {
  SCOPED_TRACE(trace());
  struct Case {
    QuantType type;
    int64_t group;
    int zero;
    int64_t cols;
  };
  for (const Case& c : std::vector<Case>{{QuantType::kF32, 0, 0, 77},  {QuantType::kF16, 0, 0, 640},
                                         {QuantType::kBF16, 0, 0, 96}, {QuantType::kQ4_0, 0, 0, 640},
                                         {QuantType::kQ8_0, 0, 0, 96}, {QuantType::kQ4_K, 0, 0, 512},
                                         {QuantType::kQ6_K, 0, 0, 768}, {QuantType::kQ5_K, 0, 0, 256},
                                         {QuantType::kQ5_0, 0, 0, 64}, {QuantType::kInt4Group, 32, 1, 640},
                                         {QuantType::kInt4Group, 128, 0, 256}, {QuantType::kInt8Group, 64, 1, 320},
                                         // The 31B's hidden size (5,376) in every layout family, and odd widths.
                                         {QuantType::kQ4_0, 0, 0, 5376},  {QuantType::kQ8_0, 0, 0, 5376},
                                         {QuantType::kInt4Group, 128, 1, 5376}, {QuantType::kQ6_K, 0, 0, 5376},
                                         {QuantType::kBF16, 0, 0, 5377}, {QuantType::kF32, 0, 0, 33},
                                         {QuantType::kF16, 0, 0, 5382}, {QuantType::kInt4Group, 32, 0, 5376 + 32}}) {
    SCOPED_TRACE(std::string(quant_type_name(c.type)) + " cols " + std::to_string(c.cols));
    const int64_t rows = 300;
    gputest::HostWeight hw = gputest::random_weight(c.type, rows, c.cols, rng_, c.group, c.zero);
    Result<std::unique_ptr<PackedWeight>> gt = gpu_->pack_weight(hw.view);
    Result<std::unique_ptr<PackedWeight>> ct = cpu_->pack_weight(hw.view);
    ASSERT_TRUE(gt.is_ok() && ct.is_ok()) << gt.status().to_string();
    std::vector<int32_t> tokens = {0, rows - 1, 17, 255, 17, 16, 15};
    // A prefill-sized batch as well (the grid-stride path): 64 more ids.
    std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(rows - 1));
    if (c.cols >= 5376)
      for (int i = 0; i < 64; ++i) tokens.push_back(pick(rng_));
    const int64_t n = static_cast<int64_t>(tokens.size());
    DeviceBuffer gtok = to_gpu(tokens), gout = poisoned(n * c.cols);
    DeviceBuffer ctok = to_cpu(tokens), cout = to_cpu(std::vector<float>(n * c.cols));
    gpu_->embed(gtok.i32(), n, **gt, 73.5f, gout.f32());
    cpu_->embed(ctok.i32(), n, **ct, 73.5f, cout.f32());
    ASSERT_TRUE(gpu_->synchronize().is_ok());
    const std::vector<float> got = from_gpu(gout, n * c.cols), want = from_cpu(cout, n * c.cols);
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(gputest::float_bits(got[i]), gputest::float_bits(want[i])) << "element " << i;
    }
  }
}

TEST_F(CudaOps, BadTokenIdsAndPositionsAreReported) {
  gputest::HostWeight hw = gputest::random_weight(QuantType::kF16, 10, 64, rng_);
  Result<std::unique_ptr<PackedWeight>> t = gpu_->pack_weight(hw.view);
  ASSERT_TRUE(t.is_ok());
  DeviceBuffer tok = to_gpu(std::vector<int32_t>{3, 10}), out = poisoned(2 * 64);
  gpu_->embed(tok.i32(), 2, **t, 1.0f, out.f32());
  Status st = gpu_->synchronize();
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("token id"), std::string::npos) << st.to_string();
  const std::vector<float> got = from_gpu(out, 128);
  for (int i = 64; i < 128; ++i) EXPECT_EQ(got[i], 0.0f);
  EXPECT_TRUE(gpu_->synchronize().is_ok()) << "the error is reported once";

  DeviceBuffer x = to_gpu(normal(2 * 8)), pos = to_gpu(std::vector<int32_t>{1, -4});
  DeviceBuffer inv = to_gpu(std::vector<float>{1.0f, 0.5f, 0.25f, 0.125f});
  gpu_->rope(x.f32(), 2, 1, 8, pos.i32(), inv.f32());
  st = gpu_->synchronize();
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("position"), std::string::npos) << st.to_string();
}

}  // namespace
}  // namespace ge
