// Grouped decode products (Backend::matmul_shared_input on the CUDA backend): weights of different
// row counts that share x match the CPU reference within the tiled GEMV's bound (5e-5 · Σ|w·x| per
// output, see matmul_test.cc) as separate matmuls do, for every M of the GEMV and every GEMV schedule,
// and give the same bits on every run. (A grouped launch plans each output's K-slices for its share of
// the GPU, so grouped and separate products may sum the slices in a different order; a group of one
// output is planned like a separate launch and must match it bit for bit.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "quant/dequantize.h"

namespace ge {
namespace {

using gputest::GpuTest;
using gputest::Encoding;
using gputest::HostWeight;

class CudaGemvGrouped : public GpuTest {
 protected:
  // Packs one random weight per row count (same cols) on both backends.
  void make_weights(const Encoding& e, const std::vector<int64_t>& rows, int64_t cols) {
    host_.clear();
    gpu_w_.clear();
    cpu_w_.clear();
    for (int64_t r : rows) {
      host_.push_back(gputest::random_weight(e.type, r, cols, rng_, e.group, e.zero_kind));
      Result<std::unique_ptr<PackedWeight>> g = gpu_->pack_weight(host_.back().view);
      Result<std::unique_ptr<PackedWeight>> c = cpu_->pack_weight(host_.back().view);
      ASSERT_TRUE(g.is_ok()) << g.status().to_string();
      ASSERT_TRUE(c.is_ok()) << c.status().to_string();
      const std::string layout = cuda_->layout_name(**g);
      ASSERT_TRUE(layout == "tiled4" || layout == "tiled8") << e.name() << " packed as " << layout;
      gpu_w_.push_back(std::move(g).value());
      cpu_w_.push_back(std::move(c).value());
    }
  }

  // Inputs of one M with the CPU reference products and Σ|w·x| per output element.
  struct Case {
    int64_t m = 0;
    std::vector<float> x;
    std::vector<std::vector<float>> want;
    std::vector<std::vector<double>> absum;
  };
  Case reference(int64_t m, int64_t cols) {
    Case c;
    c.m = m;
    c.x = normal(m * cols);
    DeviceBuffer cx = to_cpu(c.x);
    std::vector<float> wrow(static_cast<size_t>(cols));
    for (size_t i = 0; i < cpu_w_.size(); ++i) {
      const int64_t rows = cpu_w_[i]->rows(), n = m * rows;
      DeviceBuffer cy = to_cpu(std::vector<float>(static_cast<size_t>(n)));
      cpu_->matmul(cx.f32(), m, *cpu_w_[i], cy.f32());
      c.want.push_back(from_cpu(cy, n));
      std::vector<double> a(static_cast<size_t>(n));
      for (int64_t r = 0; r < rows; ++r) {
        dequantize_row(host_[i].view, r, wrow.data());
        for (int64_t t = 0; t < m; ++t) {
          double s = 0.0;
          for (int64_t k = 0; k < cols; ++k) s += std::fabs(static_cast<double>(wrow[k]) * c.x[t * cols + k]);
          a[t * rows + r] = s;
        }
      }
      c.absum.push_back(std::move(a));
    }
    return c;
  }

  // Grouped and separate products vs the CPU reference, grouped run twice (bit for bit), and grouped
  // vs separate bit for bit when the group has one output; under the current tuning.
  void check(const Case& c) {
    SCOPED_TRACE("m = " + std::to_string(c.m));
    const int64_t m = c.m;
    DeviceBuffer gx = to_gpu(c.x);
    std::vector<DeviceBuffer> sep, grp, again;
    std::vector<MatmulOutput> outs, outs_again;
    for (size_t i = 0; i < gpu_w_.size(); ++i) {
      const int64_t n = m * gpu_w_[i]->rows();
      sep.push_back(poisoned(n));
      grp.push_back(poisoned(n));
      again.push_back(poisoned(n));
      gpu_->matmul(gx.f32(), m, *gpu_w_[i], sep.back().f32());
      outs.push_back(MatmulOutput{gpu_w_[i].get(), grp.back().f32()});
      outs_again.push_back(MatmulOutput{gpu_w_[i].get(), again.back().f32()});
    }
    gpu_->matmul_shared_input(gx.f32(), m, outs);
    gpu_->matmul_shared_input(gx.f32(), m, outs_again);
    Status st = gpu_->synchronize();
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    for (size_t i = 0; i < gpu_w_.size(); ++i) {
      SCOPED_TRACE("output " + std::to_string(i) + " (" + std::to_string(gpu_w_[i]->rows()) + " rows)");
      const int64_t n = m * gpu_w_[i]->rows();
      const std::vector<float> a = from_gpu(sep[i], n), b = from_gpu(grp[i], n), b2 = from_gpu(again[i], n);
      int64_t differ = 0, rerun_differ = 0, bad = 0;
      for (int64_t k = 0; k < n; ++k) {
        differ += gputest::float_bits(a[k]) != gputest::float_bits(b[k]);
        rerun_differ += gputest::float_bits(b2[k]) != gputest::float_bits(b[k]);
        for (const float v : {a[k], b[k]}) {
          const double err = std::fabs(static_cast<double>(v) - c.want[i][k]);
          if (!(err <= 5e-5 * c.absum[i][k]) && ++bad <= 3) {  // NaN (unwritten) fails too
            ADD_FAILURE() << "element " << k << ": gpu " << v << (v == a[k] ? " (separate)" : " (grouped)")
                          << " cpu " << c.want[i][k] << " |err| " << err << " > 5e-5 * " << c.absum[i][k];
          }
        }
      }
      EXPECT_EQ(rerun_differ, 0) << "the grouped product changed between two runs";
      if (gpu_w_.size() == 1) {
        EXPECT_EQ(differ, 0) << "a group of one output differs from the separate product";
      }
    }
  }

  std::vector<HostWeight> host_;
  std::vector<std::unique_ptr<PackedWeight>> gpu_w_, cpu_w_;
};

TEST_F(CudaGemvGrouped, WithinBoundOfReferenceEveryMEverySchedule) {
  SCOPED_TRACE(trace());
  // Row counts off the 16-row tile and the 32-row pair, unequal (q/k/v-like), K an odd number of
  // blocks or groups; schedule 0 is the production choice, 1 items, 2 stream-K, 3 K-slice.
  std::uniform_int_distribution<int64_t> rows_d(1, 300), blocks_d(3, 31);
  for (const Encoding& e : {Encoding{QuantType::kQ4_0}, Encoding{QuantType::kQ8_0},
                            Encoding{QuantType::kInt4Group, 32, 1}, Encoding{QuantType::kInt4Group, 128, 1},
                            Encoding{QuantType::kInt8Group, 64, 1}, Encoding{QuantType::kInt8Group, 32, 0}}) {
    SCOPED_TRACE(e.name());
    const int64_t cols = (blocks_d(rng_) | 1) * e.unit();
    make_weights(e, {rows_d(rng_), rows_d(rng_) | 16, 2 * rows_d(rng_) + 1}, cols);
    std::vector<Case> cases;
    for (int64_t m = 1; m <= 16; ++m) cases.push_back(reference(m, cols));
    for (int sched : {0, 1, 2, 3}) {
      SCOPED_TRACE("schedule " + std::to_string(sched));
      CudaMatmulTuning t;
      t.gemv_schedule = sched;
      cuda_->set_matmul_tuning(t);
      for (const Case& c : cases) check(c);
    }
    cuda_->set_matmul_tuning(CudaMatmulTuning{});
  }
}

TEST_F(CudaGemvGrouped, LongKAndTallOutputs) {
  SCOPED_TRACE(trace());
  // Gemma-like shapes, production schedule: gate|up-like (K = 5376: many slices of x, rows off the
  // pair) and q|k|v-like with one tiny output.
  make_weights(Encoding{QuantType::kQ4_0}, {2000 + 48, 1500}, 5376);
  for (int64_t m : {1, 2, 8, 16}) check(reference(m, 5376));
  make_weights(Encoding{QuantType::kInt4Group, 64, 1}, {4096, 7, 1000}, 640);
  for (int64_t m : {1, 3, 16}) check(reference(m, 640));
  make_weights(Encoding{QuantType::kQ4_0}, {1000}, 5376);  // a group of one output
  for (int64_t m : {1, 8, 16}) check(reference(m, 5376));
}

TEST_F(CudaGemvGrouped, MixedEncodingsAndPrefillFallBack) {
  SCOPED_TRACE(trace());
  // Outputs that cannot share one launch (different encodings) and M > 16 (the GEMM) still give
  // each output its own product.
  HostWeight a = gputest::random_weight(QuantType::kQ4_0, 70, 256, rng_);
  HostWeight b = gputest::random_weight(QuantType::kQ8_0, 45, 256, rng_);
  auto ga = gpu_->pack_weight(a.view), gb = gpu_->pack_weight(b.view);
  ASSERT_TRUE(ga.is_ok() && gb.is_ok());
  for (int64_t m : {1, 5, 17}) {
    SCOPED_TRACE("m = " + std::to_string(m));
    DeviceBuffer gx = to_gpu(normal(m * 256));
    DeviceBuffer sa = poisoned(m * 70), sb = poisoned(m * 45), ya = poisoned(m * 70), yb = poisoned(m * 45);
    gpu_->matmul(gx.f32(), m, **ga, sa.f32());
    gpu_->matmul(gx.f32(), m, **gb, sb.f32());
    const MatmulOutput outs[] = {{ga->get(), ya.f32()}, {gb->get(), yb.f32()}};
    gpu_->matmul_shared_input(gx.f32(), m, outs);
    ASSERT_TRUE(gpu_->synchronize().is_ok());
    const double tol = m > 16 ? 1e-2 : 0.0;  // the GEMM may round x once for both
    EXPECT_LE(gputest::rel_l2(from_gpu(ya, m * 70), from_gpu(sa, m * 70)), tol);
    EXPECT_LE(gputest::rel_l2(from_gpu(yb, m * 45), from_gpu(sb, m * 45)), tol);
  }
}

}  // namespace
}  // namespace ge
