// The add-norm chain at prefill row counts (rows > 16: the register-resident row kernel where the shape
// allows, the general kernel otherwise) against the separate ops (add_rms_norm, scale, rms_norm).
// The row kernel sums squares in another order, so x and y agree to a few ulp (max error ≤ 1e-5 of
// the row's rms), not bit for bit; a wrong row, column block or weight differs by O(1).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "gpu_test_util.h"

namespace ge {
namespace {

using gputest::GpuTest;

class PrefillNorm : public GpuTest {};

TEST_F(PrefillNorm, AddNormChainMatchesTheSeparateOps) {
  SCOPED_TRACE(trace());
  // 5376 and 640: the row kernel (n % 4 == 0, n <= 8192); 8196 and 1002: the general kernel.
  for (int64_t n : {5376, 640, 8196, 1002}) {
    for (int64_t rows : {17, 300}) {
      for (float s : {1.0f, 0.37f}) {
        for (bool next : {true, false}) {
          SCOPED_TRACE("n " + std::to_string(n) + " rows " + std::to_string(rows) + " scale " + std::to_string(s) +
                       (next ? " with" : " without") + " next norm");
          const std::vector<float> x = normal(rows * n, 4.0f), a = normal(rows * n, 20.0f);
          const std::vector<float> w1 = normal(n), w2 = normal(n);
          DeviceBuffer d_w1 = to_gpu(w1), d_w2 = to_gpu(w2), d_a = to_gpu(a);
          std::vector<float> got_x[2], got_y[2];
          for (int fused = 0; fused < 2; ++fused) {
            DeviceBuffer d_x = to_gpu(x), d_y = poisoned(rows * n);
            const float* wn = next ? d_w2.f32() : nullptr;
            if (fused) {
              gpu_->add_rms_norm_then_norm(d_x.f32(), d_a.f32(), d_w1.f32(), s, wn, rows, n, 1e-6f, d_y.f32());
            } else {
              gpu_->Backend::add_rms_norm_then_norm(d_x.f32(), d_a.f32(), d_w1.f32(), s, wn, rows, n, 1e-6f, d_y.f32());
            }
            got_x[fused] = from_gpu(d_x, rows * n);
            got_y[fused] = from_gpu(d_y, rows * n);
            Status st = gpu_->synchronize();
            ASSERT_TRUE(st.is_ok()) << st.to_string();
          }
          for (int64_t r = 0; r < rows; ++r) {
            double rx = 0, ry = 0;
            for (int64_t i = r * n; i < (r + 1) * n; ++i) {
              rx += static_cast<double>(got_x[0][i]) * got_x[0][i];
              ry += static_cast<double>(got_y[0][i]) * got_y[0][i];
            }
            const double tx = 1e-5 * std::sqrt(rx / n), ty = 1e-5 * std::sqrt(ry / n);
            int64_t bad_x = 0, bad_y = 0;  // written as !(d <= t) so that NaN (unwritten output) counts
            for (int64_t i = r * n; i < (r + 1) * n; ++i) {
              bad_x += !(std::fabs(static_cast<double>(got_x[1][i]) - got_x[0][i]) <= tx);
              if (next) bad_y += !(std::fabs(static_cast<double>(got_y[1][i]) - got_y[0][i]) <= ty);
            }
            ASSERT_EQ(bad_x, 0) << "x row " << r;
            ASSERT_EQ(bad_y, 0) << "y row " << r;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace ge
