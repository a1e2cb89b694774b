// K-quant (Q4_K, Q5_K, Q6_K) kernels against the CPU reference decoder: every decode GEMV
// configuration over rows off the rows-per-warp and rows-per-CTA multiples, K from one block to
// the down projection's 84 and M = 1..19; the bf16 dequantizer of the prefill GEMM bit-exact; and
// the backend's matmul (GEMV and GEMM paths) on K-quant weights.
//
// GEMV bound per output y = Σ_k w_k x_k: |gpu − ref| ≤ 1e-5 · Σ_k |x_k| (|w_k| + ml_k), ref in
// double from the reference decoder. The kernels sum dl·Σ(q·x) − ml·Σx in fp32, so the bound
// counts the min term ml (Q4_K / Q5_K; 0 for Q6_K) that cancels inside w. A wrong scale, min,
// code bit or column gives errors of order the whole sum.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cuda/dequantize_kquant.h"
#include "backend/cuda/gemv_kquant.h"
#include "core/dtype.h"
#include "gpu_test_util.h"
#include "quant/dequantize.h"

namespace ge {
namespace {

using gputest::GpuTest;
using gputest::HostWeight;

constexpr QuantType kTypes[] = {QuantType::kQ4_K, QuantType::kQ5_K, QuantType::kQ6_K};

// Device memory owned by the test (cudaMalloc: 256-byte aligned).
class DeviceArray {
 public:
  explicit DeviceArray(size_t bytes) { ok_ = cudaMalloc(&p_, std::max<size_t>(bytes, 16)) == cudaSuccess; }
  ~DeviceArray() {
    if (ok_) cudaFree(p_);
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  bool ok() const { return ok_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  void* p_ = nullptr;
  bool ok_ = false;
};

int num_sms() {
  int dev = 0, n = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
    return 1;
  }
  return n;
}

// The weight decoded by the reference, and per element the magnitude of its min term ml (decoding
// the same blocks with every code bit cleared gives w = −ml for Q4_K / Q5_K, 0 for Q6_K).
struct Reference {
  std::vector<float> w, ml;
};

Reference reference(const HostWeight& hw) {
  const QuantWeight& v = hw.view;
  Reference ref;
  ref.w.resize(static_cast<size_t>(v.rows * v.cols));
  ref.ml.assign(ref.w.size(), 0.0f);
  for (int64_t r = 0; r < v.rows; ++r) dequantize_row(v, r, ref.w.data() + r * v.cols);
  if (v.type != QuantType::kQ6_K) {
    std::vector<uint8_t> zeroed = hw.data;
    const int bb = v.type == QuantType::kQ4_K ? 144 : 176;
    for (size_t b = 0; b < zeroed.size(); b += bb) std::memset(zeroed.data() + b + 16, 0, bb - 16);
    QuantWeight z = v;
    z.data = zeroed.data();
    for (int64_t r = 0; r < v.rows; ++r) dequantize_row(z, r, ref.ml.data() + r * v.cols);
    for (float& m : ref.ml) m = std::fabs(m);
  }
  return ref;
}

class KquantTest : public GpuTest {
 protected:
  // Every lab variant of the GEMV (production, fixed configurations, the kernels used before) on
  // one shape, for every m; counts outputs outside the bound.
  void check_gemv(QuantType type, int64_t rows, int64_t cols, const std::vector<int64_t>& ms) {
    SCOPED_TRACE(std::string(quant_type_name(type)) + " [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
    HostWeight hw = gputest::random_weight(type, rows, cols, rng_);
    const Reference ref = reference(hw);
    DeviceArray dw(hw.data.size());
    ASSERT_TRUE(dw.ok());
    ASSERT_EQ(cudaMemcpy(dw.as<uint8_t>(), hw.data.data(), hw.data.size(), cudaMemcpyHostToDevice), cudaSuccess);
    for (int64_t m : ms) {
      SCOPED_TRACE("m = " + std::to_string(m));
      const std::vector<float> x = normal(m * cols);
      std::vector<double> want(static_cast<size_t>(m * rows)), bound(want.size());
      for (int64_t n = 0; n < m; ++n) {
        for (int64_t r = 0; r < rows; ++r) {
          double s = 0.0, a = 0.0;
          for (int64_t k = 0; k < cols; ++k) {
            const double xv = x[n * cols + k], wv = ref.w[r * cols + k];
            s += wv * xv;
            a += std::fabs(xv) * (std::fabs(wv) + ref.ml[r * cols + k]);
          }
          want[n * rows + r] = s;
          bound[n * rows + r] = 1e-5 * a;
        }
      }
      DeviceArray dx(x.size() * 4), dy(want.size() * 4);
      ASSERT_TRUE(dx.ok() && dy.ok());
      ASSERT_EQ(cudaMemcpy(dx.as<float>(), x.data(), x.size() * 4, cudaMemcpyHostToDevice), cudaSuccess);
      for (int v = 0; v < cuda::gemv_kquant_lab_variants(); ++v) {
        SCOPED_TRACE(std::string("variant ") + cuda::gemv_kquant_lab_variant_name(v));
        ASSERT_EQ(cudaMemset(dy.as<float>(), 0xff, want.size() * 4), cudaSuccess);  // NaN: unwritten fails
        ASSERT_EQ(cuda::gemv_kquant_lab(type, dw.as<uint8_t>(), rows, cols, dx.as<float>(), m, dy.as<float>(), v,
                                        num_sms(), nullptr),
                  cudaSuccess);
        std::vector<float> got(want.size());
        ASSERT_EQ(cudaMemcpy(got.data(), dy.as<float>(), got.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);
        int bad = 0;
        for (size_t i = 0; i < got.size(); ++i) {
          const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
          if (!(err <= bound[i])) {  // also catches NaN
            if (++bad <= 3) {
              ADD_FAILURE() << "output " << i << " (token " << i / rows << ", row " << i % rows << "): gpu " << got[i]
                            << " ref " << want[i] << " |err| " << err << " > " << bound[i];
            }
          }
        }
        EXPECT_EQ(bad, 0);
      }
    }
  }

  // Rows [row0, row0 + n) through the bf16 dequantizer vs the reference rounded to bf16, bit for
  // bit; the 256 bf16 after the range must stay untouched.
  void check_dequantize(QuantType type, int64_t rows, int64_t cols, int64_t row0, int64_t n) {
    SCOPED_TRACE(std::string(quant_type_name(type)) + " [" + std::to_string(rows) + ", " + std::to_string(cols) +
                 "] rows " + std::to_string(row0) + " + " + std::to_string(n));
    HostWeight hw = gputest::random_weight(type, rows, cols, rng_);
    const Reference ref = reference(hw);
    DeviceArray dw(hw.data.size()), dout(static_cast<size_t>(n * cols + 256) * 2);
    ASSERT_TRUE(dw.ok() && dout.ok());
    ASSERT_EQ(cudaMemcpy(dw.as<uint8_t>(), hw.data.data(), hw.data.size(), cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaMemset(dout.as<uint16_t>(), 0xa5, static_cast<size_t>(n * cols + 256) * 2), cudaSuccess);
    ASSERT_EQ(cuda::dequantize_kquant_bf16_lab(type, dw.as<uint8_t>(), rows, cols, row0, n, dout.as<uint16_t>(),
                                               num_sms(), nullptr),
              cudaSuccess);
    std::vector<uint16_t> got(static_cast<size_t>(n * cols + 256));
    ASSERT_EQ(cudaMemcpy(got.data(), dout.as<uint16_t>(), got.size() * 2, cudaMemcpyDeviceToHost), cudaSuccess);
    int bad = 0;
    for (int64_t i = 0; i < n * cols; ++i) {
      const uint16_t want = f32_to_bf16(ref.w[row0 * cols + i]);
      if (got[i] != want && ++bad <= 3) {
        ADD_FAILURE() << "element " << i << " (row " << row0 + i / cols << ", col " << i % cols << "): gpu 0x"
                      << std::hex << got[i] << " ref 0x" << want << std::dec;
      }
    }
    EXPECT_EQ(bad, 0);
    for (int64_t i = n * cols; i < n * cols + 256; ++i) EXPECT_EQ(got[i], 0xa5a5) << "written past the range at " << i;
  }
};

TEST_F(KquantTest, GemvEveryVariantMatchesReference) {
  SCOPED_TRACE(trace());
  // Rows off the 2- and 4-row warps and the 16/32-row CTAs; K one block, an odd number of blocks
  // (Q6_K rows then start at every 2-byte alignment), Gemma 4 31B's 5376 and 21504 (the K split).
  const std::vector<int64_t> ms = {1, 2, 3, 4, 5, 8, 9, 16, 19};
  for (QuantType t : kTypes) {
    check_gemv(t, 1, 256, ms);
    check_gemv(t, 17, 768, ms);
    check_gemv(t, 35, 256 * 21, {1, 3, 16});
    check_gemv(t, 70, 256 * 84, {1, 4, 5});
    check_gemv(t, 259, 256 * 17, {1, 2, 6});
  }
}

TEST_F(KquantTest, GemvRandomShapes) {
  SCOPED_TRACE(trace());
  std::uniform_int_distribution<int64_t> rows_d(1, 200), blocks_d(1, 40), m_d(1, 16);
  for (QuantType t : kTypes) {
    for (int i = 0; i < 3; ++i) check_gemv(t, rows_d(rng_), blocks_d(rng_) * 256, {m_d(rng_), 1});
  }
}

TEST_F(KquantTest, DequantizeBf16BitExact) {
  SCOPED_TRACE(trace());
  for (QuantType t : kTypes) {
    check_dequantize(t, 1, 256, 0, 1);
    check_dequantize(t, 17, 256, 0, 17);  // consecutive Q6_K blocks: every 2-byte alignment
    check_dequantize(t, 17, 256, 3, 9);
    check_dequantize(t, 9, 768, 1, 7);
    check_dequantize(t, 40, 256 * 21, 5, 33);
    check_dequantize(t, 6, 256 * 84, 0, 6);
  }
}

TEST_F(KquantTest, LabEntryPointsRejectBadArguments) {
  DeviceArray buf(1 << 16);
  ASSERT_TRUE(buf.ok());
  const uint8_t* raw = buf.as<uint8_t>();
  uint16_t* out = buf.as<uint16_t>() + 8192;
  float* f = buf.as<float>();
  EXPECT_EQ(cuda::dequantize_kquant_bf16_lab(QuantType::kQ4_0, raw, 2, 256, 0, 2, out, 1, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cuda::dequantize_kquant_bf16_lab(QuantType::kQ4_K, raw, 2, 100, 0, 2, out, 1, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cuda::dequantize_kquant_bf16_lab(QuantType::kQ4_K, raw, 2, 256, 1, 2, out, 1, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cuda::dequantize_kquant_bf16_lab(QuantType::kQ6_K, raw, 2, 256, 0, 2, out + 1, 1, nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(cuda::gemv_kquant_lab(QuantType::kQ8_0, raw, 2, 256, f, 1, f + 1024, 0, 1, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cuda::gemv_kquant_lab(QuantType::kQ6_K, raw, 2, 300, f, 1, f + 1024, 0, 1, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cuda::gemv_kquant_lab(QuantType::kQ6_K, raw, 2, 256, f, 1, f + 1024, cuda::gemv_kquant_lab_variants(), 1,
                                  nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}

// The backend's matmul on K-quant weights: M <= 16 takes the K-quant GEMV, M > 16 the bf16 GEMM fed
// by the K-quant dequantizer (bound 1.2e-2 · Σ|w·x| as in matmul_test: x and w rounded to bf16).
TEST_F(KquantTest, BackendMatmulMatchesReference) {
  SCOPED_TRACE(trace());
  for (QuantType t : kTypes) {
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{37, 256 * 3}, {300, 256 * 21}}) {
      SCOPED_TRACE(std::string(quant_type_name(t)) + " [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
      HostWeight hw = gputest::random_weight(t, rows, cols, rng_);
      const Reference ref = reference(hw);
      Result<std::unique_ptr<PackedWeight>> gw = gpu_->pack_weight(hw.view);
      ASSERT_TRUE(gw.is_ok()) << gw.status().to_string();
      EXPECT_EQ(cuda_->layout_name(**gw), "raw");
      for (int64_t m : {1, 7, 16, 40}) {
        SCOPED_TRACE("m = " + std::to_string(m));
        const std::vector<float> x = normal(m * cols);
        DeviceBuffer gx = to_gpu(x);
        DeviceBuffer gy = poisoned(m * rows);
        gpu_->matmul(gx.f32(), m, **gw, gy.f32());
        Status st = gpu_->synchronize();
        ASSERT_TRUE(st.is_ok()) << st.to_string();
        const std::vector<float> got = from_gpu(gy, m * rows);
        int bad = 0;
        for (int64_t n = 0; n < m; ++n) {
          for (int64_t r = 0; r < rows; ++r) {
            double s = 0.0, a = 0.0, a_min = 0.0;
            for (int64_t k = 0; k < cols; ++k) {
              const double xv = x[n * cols + k], wv = ref.w[r * cols + k];
              s += wv * xv;
              a += std::fabs(xv * wv);
              a_min += std::fabs(xv) * ref.ml[r * cols + k];
            }
            const double tol = m > 16 ? 1.2e-2 * a : 1e-5 * (a + a_min);
            const double err = std::fabs(got[n * rows + r] - s);
            if (!(err <= tol) && ++bad <= 3) {
              ADD_FAILURE() << "token " << n << " row " << r << ": gpu " << got[n * rows + r] << " ref " << s;
            }
          }
        }
        EXPECT_EQ(bad, 0);
      }
    }
  }
}

}  // namespace
}  // namespace ge
