// K-slice GEMV at small M (gemv_slice.cu; 4-bit weights at K >= 4096 run the fp16
// B-fragment kernel of gemv_slice_f16.cuh): x of any magnitude (each slice's power-of-two scale keeps
// fp16 in range), K cut into slices of very different magnitudes, odd K and rows off the 16-row tile,
// M = 1..16, against the CPU reference. Bounds per output, A = Σ|w·x|: the fp16 kernel rounds every
// element of x once (relative error <= 2^-11 = 4.9e-4) and sums in fp32: |err| <= 6e-4 · A; the bf16
// hi/lo kernel (elsewhere) keeps 16 bits of x: 5e-5 · A (matmul_test.cc). A wrong scale, zero,
// nibble or slice scale gives errors of order A.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "quant/dequantize.h"

namespace ge {
namespace {

using gputest::GpuTest;
using gputest::Encoding;
using gputest::HostWeight;

const std::vector<Encoding>& four_bit() {
  static const std::vector<Encoding> e = {{QuantType::kQ4_0},
                                          {QuantType::kInt4Group, 32, 1},
                                          {QuantType::kInt4Group, 64, 1},
                                          {QuantType::kInt4Group, 128, 0},
                                          {QuantType::kInt4Group, 128, 1}};
  return e;
}

class CudaGemvSlice : public GpuTest {
 protected:
  // Bound of the kernel production runs for this product (gemv_slice.cu: kSliceF16MaxM, kSliceF16MinK).
  static double bound(int64_t cols, int64_t m) { return m <= 16 && cols >= 4096 ? 6e-4 : 5e-5; }

  // GPU vs CPU for one weight and one x [m, cols]; returns the worst |err| / Σ|w·x|.
  double check(const HostWeight& hw, const PackedWeight& gw, const PackedWeight& cw, const std::vector<float>& x,
               int64_t m) {
    const double tol = bound(hw.view.cols, m);
    const int64_t rows = hw.view.rows, cols = hw.view.cols;
    DeviceBuffer gx = to_gpu(x), gy = poisoned(m * rows);
    DeviceBuffer cx = to_cpu(x), cy = to_cpu(std::vector<float>(static_cast<size_t>(m * rows)));
    gpu_->matmul(gx.f32(), m, gw, gy.f32());
    cpu_->matmul(cx.f32(), m, cw, cy.f32());
    const Status st = gpu_->synchronize();
    EXPECT_TRUE(st.is_ok()) << st.to_string();
    const std::vector<float> got = from_gpu(gy, m * rows), want = from_cpu(cy, m * rows);
    std::vector<float> row(static_cast<size_t>(cols));
    double worst = 0.0;
    int bad = 0;
    for (int64_t r = 0; r < rows; ++r) {
      dequantize_row(hw.view, r, row.data());
      for (int64_t i = 0; i < m; ++i) {
        double a = 0.0;
        for (int64_t k = 0; k < cols; ++k) a += std::fabs(static_cast<double>(row[k]) * x[i * cols + k]);
        const size_t o = static_cast<size_t>(i * rows + r);
        const double err = std::fabs(static_cast<double>(got[o]) - want[o]);
        const double ratio = a > 0 ? err / a : err;
        if (!(ratio <= tol)) {  // also catches NaN (unwritten or overflowed output)
          if (++bad <= 3) {
            ADD_FAILURE() << "token " << i << " row " << r << ": gpu " << got[o] << " cpu " << want[o]
                          << " |err|/A " << ratio << " > " << tol;
          }
        } else {
          worst = std::max(worst, ratio);
        }
      }
    }
    EXPECT_EQ(bad, 0);
    return worst;
  }

  using Packed = gputest::PackedPair;
  Packed pack(const Encoding& e, int64_t rows, int64_t cols) {
    Packed p = gputest::pack_pair(*gpu_, *cpu_, gputest::random_weight(e.type, rows, cols, rng_, e.group, e.zero_kind));
    if (p.gpu) {
      EXPECT_EQ(cuda_->layout_name(*p.gpu), "tiled4");
    }
    return p;
  }
};

TEST_F(CudaGemvSlice, AnyMagnitudeOfX) {
  SCOPED_TRACE(trace());
  // fp16 holds 6e-8 .. 65504: without the slice scale, 1e5 would overflow and 1e-9 vanish.
  for (const Encoding& e : four_bit()) {
    SCOPED_TRACE(e.name());
    Packed p = pack(e, 70, 5376);
    ASSERT_TRUE(p.gpu && p.cpu);
    double worst = 0.0;
    for (float sigma : {1e-30f, 1e-9f, 1.0f, 1e5f, 1e30f}) {
      SCOPED_TRACE("sigma " + std::to_string(sigma));
      for (int64_t m : {1, 3, 8, 16}) worst = std::max(worst, check(p.host, *p.gpu, *p.cpu, normal(m * 5376, sigma), m));
    }
    std::printf("[ slice ] %-16s K 5376, |x| 1e-30 .. 1e30: worst |err|/A %.3g\n", e.name().c_str(), worst);
  }
}

TEST_F(CudaGemvSlice, SlicesOfDifferentMagnitudes) {
  SCOPED_TRACE(trace());
  // Long K (many slices): x grows by 10x every 512 elements, tokens differ by 1e6, so the slices'
  // scales differ and their partial sums must come back to one scale before they are added.
  const int64_t cols = 21504;
  for (const Encoding& e : {four_bit()[0], four_bit()[4]}) {
    SCOPED_TRACE(e.name());
    Packed p = pack(e, 40, cols);
    ASSERT_TRUE(p.gpu && p.cpu);
    for (int64_t m : {1, 2, 5, 8}) {
      std::vector<float> x = normal(m * cols);
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t k = 0; k < cols; ++k) {
          x[i * cols + k] *= std::pow(10.0f, static_cast<float>(k / 512 % 12) - 6.0f + (i % 2 ? 6.0f : 0.0f));
        }
      }
      check(p.host, *p.gpu, *p.cpu, x, m);
    }
  }
}

TEST_F(CudaGemvSlice, OddShapesEveryM) {
  SCOPED_TRACE(trace());
  // Rows off the tile and the pair, K an odd number of groups (the last chunk half padding for g32).
  std::vector<int64_t> ms;
  for (int64_t m = 1; m <= 16; ++m) ms.push_back(m);
  for (const Encoding& e : four_bit()) {
    SCOPED_TRACE(e.name());
    for (const auto& [rows, groups] : std::vector<std::pair<int64_t, int64_t>>{{1, 33}, {17, 67}, {130, 169}}) {
      const int64_t cols = groups * e.unit();
      Packed p = pack(e, rows, cols);
      ASSERT_TRUE(p.gpu && p.cpu);
      double worst = 0.0;
      for (int64_t m : ms) worst = std::max(worst, check(p.host, *p.gpu, *p.cpu, normal(m * cols), m));
      std::printf("[ slice ] %-16s %4lld x %-6lld worst |err|/A %.3g\n", e.name().c_str(), static_cast<long long>(rows),
                  static_cast<long long>(cols), worst);
    }
  }
}

TEST_F(CudaGemvSlice, NonFiniteXGivesNonFiniteOutput) {
  SCOPED_TRACE(trace());
  // A NaN or infinity in token 0 must not be hidden by the slice scale; token 1 stays exact.
  Packed p = pack(four_bit()[0], 48, 1024);
  ASSERT_TRUE(p.gpu);
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    std::vector<float> x = normal(2 * 1024);
    x[100] = bad;
    DeviceBuffer gx = to_gpu(x), gy = poisoned(2 * 48);
    gpu_->matmul(gx.f32(), 2, *p.gpu, gy.f32());
    ASSERT_TRUE(gpu_->synchronize().is_ok());
    const std::vector<float> got = from_gpu(gy, 2 * 48);
    for (int64_t r = 0; r < 48; ++r) {
      EXPECT_FALSE(std::isfinite(got[r])) << "row " << r;
      EXPECT_TRUE(std::isfinite(got[48 + r])) << "row " << r;
    }
  }
}

TEST_F(CudaGemvSlice, GeluInputEqualsGeluThenMatmul) {
  SCOPED_TRACE(trace());
  // The decode down projection: gelu_tanh(gate) · up formed while x is staged (matmul_gelu_input) must
  // give the bits of gelu_tanh_mul followed by matmul, for every 4-bit encoding (Σx of the zero-point
  // term included), M = 1..16 (one and two B n-tiles), a long K split over many slices, and gate /
  // up rows that are not 16-byte aligned (the scalar loads).
  const int64_t rows = 200, cols = 21504;
  for (const Encoding& e : four_bit()) {
    SCOPED_TRACE(e.name());
    Packed p = pack(e, rows, cols);
    ASSERT_TRUE(p.gpu);
    for (int64_t m : {1, 3, 9, 16}) {
      for (const int64_t shift : {int64_t{0}, int64_t{1}}) {
        SCOPED_TRACE("m " + std::to_string(m) + " shift " + std::to_string(shift));
        const std::vector<float> gate = normal(m * cols + shift, 2.0f), up = normal(m * cols + shift);
        DeviceBuffer g1 = to_gpu(gate), g2 = to_gpu(gate), u = to_gpu(up);
        DeviceBuffer y_fused = poisoned(m * rows), y_sep = poisoned(m * rows);
        gpu_->matmul_gelu_input(g1.f32() + shift, u.f32() + shift, m, *p.gpu, y_fused.f32());
        gpu_->gelu_tanh_mul(g2.f32() + shift, u.f32() + shift, m * cols, g2.f32() + shift);
        gpu_->matmul(g2.f32() + shift, m, *p.gpu, y_sep.f32());
        ASSERT_TRUE(gpu_->synchronize().is_ok());
        const std::vector<float> a = from_gpu(y_fused, m * rows), b = from_gpu(y_sep, m * rows);
        int64_t differ = 0, finite = 0;
        for (size_t i = 0; i < a.size(); ++i) {
          differ += gputest::float_bits(a[i]) != gputest::float_bits(b[i]);
          finite += std::isfinite(a[i]) && a[i] != 0.0f;
        }
        EXPECT_EQ(differ, 0) << "fused and separate products differ";
        EXPECT_EQ(finite, static_cast<int64_t>(a.size()));  // written, not poison
      }
    }
  }
}

}  // namespace
}  // namespace ge
