// The M = 1 GEMV with x as int8 codes per 32-block (gemv_slice_i8.cuh, CudaMatmulTuning::gemv_int8_x)
// against the CPU reference. Bound per output: every element of x is off by at most d/2 with d =
// max|x of its block| / 127, so |err| <= Σ_blocks d_b/2 · Σ_{k in b} |w_k| (+ 2e-5 · Σ|w·x| for the fp32
// sums); a wrong byte order, scale, offset or block gives errors of order Σ|w·x|. Also: the fused
// GELU·up input gives the bits of gelu_tanh_mul then matmul, and a NaN or infinity in x reaches the output.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "quant/dequantize.h"

namespace ge {
namespace {

using gputest::Encoding;
using gputest::GpuTest;
using gputest::HostWeight;

class CudaGemvInt8X : public GpuTest {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (HasFatalFailure()) return;  // no CUDA device: cuda_ is null
    CudaMatmulTuning t;
    t.gemv_int8_x = 1;
    cuda_->set_matmul_tuning(t);
  }
  void TearDown() override {
    if (cuda_ != nullptr) cuda_->set_matmul_tuning(CudaMatmulTuning{});
  }

  using Packed = gputest::PackedPair;
  Packed pack(const Encoding& e, int64_t rows, int64_t cols) {
    return gputest::pack_pair(*gpu_, *cpu_, gputest::random_weight(e.type, rows, cols, rng_, e.group, e.zero_kind));
  }

  // GPU (int8 x) vs CPU for x [1, cols]; returns the worst |err| / bound.
  double check(const Packed& p, const std::vector<float>& x) {
    const int64_t rows = p.host.view.rows, cols = p.host.view.cols;
    DeviceBuffer gx = to_gpu(x), gy = poisoned(rows);
    DeviceBuffer cx = to_cpu(x), cy = to_cpu(std::vector<float>(static_cast<size_t>(rows)));
    gpu_->matmul(gx.f32(), 1, *p.gpu, gy.f32());
    cpu_->matmul(cx.f32(), 1, *p.cpu, cy.f32());
    const Status st = gpu_->synchronize();
    EXPECT_TRUE(st.is_ok()) << st.to_string();
    const std::vector<float> got = from_gpu(gy, rows), want = from_cpu(cy, rows);
    std::vector<double> half_step((static_cast<size_t>(cols) + 31) / 32);
    for (size_t b = 0; b < half_step.size(); ++b) {
      double mx = 0.0;
      for (int64_t k = static_cast<int64_t>(b) * 32; k < std::min<int64_t>(cols, (b + 1) * 32); ++k) {
        mx = std::max(mx, std::fabs(static_cast<double>(x[k])));
      }
      half_step[b] = mx / 127.0 / 2.0;
    }
    std::vector<float> row(static_cast<size_t>(cols));
    double worst = 0.0;
    int bad = 0;
    for (int64_t r = 0; r < rows; ++r) {
      dequantize_row(p.host.view, r, row.data());
      double a = 0.0, q = 0.0;
      for (int64_t k = 0; k < cols; ++k) {
        a += std::fabs(static_cast<double>(row[k]) * x[k]);
        q += std::fabs(static_cast<double>(row[k])) * half_step[k / 32];
      }
      const double tol = q * 1.0001 + 2e-5 * a;
      const double err = std::fabs(static_cast<double>(got[r]) - want[r]);
      if (!(err <= tol)) {  // NaN too
        if (++bad <= 3) ADD_FAILURE() << "row " << r << ": gpu " << got[r] << " cpu " << want[r] << " bound " << tol;
      } else if (tol > 0) {
        worst = std::max(worst, err / tol);
      }
    }
    EXPECT_EQ(bad, 0);
    return worst;
  }
};

const std::vector<Encoding>& served() {  // 4-bit encodings without zero points
  static const std::vector<Encoding> e = {{QuantType::kQ4_0}, {QuantType::kInt4Group, 32, 0},
                                          {QuantType::kInt4Group, 64, 0}, {QuantType::kInt4Group, 128, 0}};
  return e;
}

TEST_F(CudaGemvInt8X, WithinTheQuantisationBound) {
  SCOPED_TRACE(trace());
  // The 31B's K (5376, 21504: many K-slices), an odd group count, rows off the tile and the pair; x of
  // any magnitude (the block scales are per block), and x whose blocks differ by 1e6.
  for (const Encoding& e : served()) {
    SCOPED_TRACE(e.name());
    for (const auto& [rows, cols] :
         std::vector<std::pair<int64_t, int64_t>>{{70, 5376}, {130, 21504}, {17, 169 * e.unit()}}) {
      SCOPED_TRACE(std::to_string(rows) + " x " + std::to_string(cols));
      Packed p = pack(e, rows, cols);
      ASSERT_TRUE(p.gpu && p.cpu);
      double worst = 0.0;
      for (float sigma : {1e-30f, 1.0f, 1e30f}) worst = std::max(worst, check(p, normal(cols, sigma)));
      std::vector<float> x = normal(cols);
      for (int64_t k = 0; k < cols; ++k) x[k] *= std::pow(10.0f, static_cast<float>(k / 32 % 7) - 3.0f);
      worst = std::max(worst, check(p, x));
      std::printf("[ int8x ] %-16s %4lld x %-6lld worst |err| / bound %.3g\n", e.name().c_str(),
                  static_cast<long long>(rows), static_cast<long long>(cols), worst);
    }
  }
}

TEST_F(CudaGemvInt8X, GeluInputEqualsGeluThenMatmul) {
  SCOPED_TRACE(trace());
  // gelu_tanh(gate) · up is formed in the int8 staging from the fp32 values gelu_tanh_mul writes: the
  // same codes, the same bits.
  for (const Encoding& e : {served()[0], served()[3]}) {
    SCOPED_TRACE(e.name());
    const int64_t rows = 200, cols = 21504;
    Packed p = pack(e, rows, cols);
    ASSERT_TRUE(p.gpu);
    const std::vector<float> gate = normal(cols, 2.0f), up = normal(cols);
    DeviceBuffer g1 = to_gpu(gate), g2 = to_gpu(gate), u = to_gpu(up);
    DeviceBuffer y_fused = poisoned(rows), y_sep = poisoned(rows);
    gpu_->matmul_gelu_input(g1.f32(), u.f32(), 1, *p.gpu, y_fused.f32());
    gpu_->gelu_tanh_mul(g2.f32(), u.f32(), cols, g2.f32());
    gpu_->matmul(g2.f32(), 1, *p.gpu, y_sep.f32());
    ASSERT_TRUE(gpu_->synchronize().is_ok());
    const std::vector<float> a = from_gpu(y_fused, rows), b = from_gpu(y_sep, rows);
    int64_t differ = 0, finite = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      differ += gputest::float_bits(a[i]) != gputest::float_bits(b[i]);
      finite += std::isfinite(a[i]) && a[i] != 0.0f;
    }
    EXPECT_EQ(differ, 0);
    EXPECT_EQ(finite, rows);
  }
}

TEST_F(CudaGemvInt8X, NonFiniteXGivesNonFiniteOutput) {
  SCOPED_TRACE(trace());
  Packed p = pack(served()[0], 48, 5376);
  ASSERT_TRUE(p.gpu);
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    std::vector<float> x = normal(5376);
    x[1000] = bad;
    DeviceBuffer gx = to_gpu(x), gy = poisoned(48);
    gpu_->matmul(gx.f32(), 1, *p.gpu, gy.f32());
    ASSERT_TRUE(gpu_->synchronize().is_ok());
    const std::vector<float> got = from_gpu(gy, 48);
    for (int64_t r = 0; r < 48; ++r) EXPECT_FALSE(std::isfinite(got[r])) << "row " << r;
  }
}

TEST_F(CudaGemvInt8X, TheSwitchChoosesTheKernel) {
  SCOPED_TRACE(trace());
  // Off: the fp16 kernel (x rounded to 11 bits); on: the int8 one (8 bits per block). The two round x
  // differently, so most outputs differ in their bits.
  Packed p = pack(served()[0], 256, 5376);
  ASSERT_TRUE(p.gpu);
  const std::vector<float> x = normal(5376);
  std::vector<float> y[2];
  for (int on = 0; on < 2; ++on) {
    CudaMatmulTuning t;
    t.gemv_int8_x = on;
    cuda_->set_matmul_tuning(t);
    DeviceBuffer gx = to_gpu(x), gy = poisoned(256);
    gpu_->matmul(gx.f32(), 1, *p.gpu, gy.f32());
    ASSERT_TRUE(gpu_->synchronize().is_ok());
    y[on] = from_gpu(gy, 256);
  }
  int64_t differ = 0;
  for (size_t i = 0; i < y[0].size(); ++i) differ += gputest::float_bits(y[0][i]) != gputest::float_bits(y[1][i]);
  EXPECT_GT(differ, 128);
}

}  // namespace
}  // namespace ge
