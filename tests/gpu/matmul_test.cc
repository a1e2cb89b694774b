// CUDA matmul and packing against the reference: every QuantType (and the torchao group variants)
// packed from the same QuantWeight on both backends, GPU vs CPU products with per-element error
// bounds, bit-exact dequantization of the packed form, and weights synthesized on the device.
//
// Tolerances, per output element y = Σ_k w_k x_k, with A = Σ_k |w_k x_k| (double, host):
//   raw layouts, fp32 GEMV:            |gpu − cpu| ≤ 1e-5 · A   (fp32 sums only)
//   tiled layouts, tensor-core GEMV:   |gpu − cpu| ≤ 5e-5 · A   (x split into bf16 hi + lo keeps 16
//                                      significant bits: 2^-17 ≈ 7.6e-6 per product, plus fp32 sums
//                                      and the zero-point term (8 − z)·s·Σx of torchao int4. 4-bit
//                                      weights at K >= 4096 (M <= 16) round x, scaled by a power of
//                                      two per K-slice, to fp16 (11 bits): those errors average out
//                                      over K, typically 2^-11·sqrt(3/K)·A <= 5e-6·A, worst case
//                                      2^-11·A (gemv_slice_test.cc checks that bound))
//   M > 16, bf16 cuBLASLt GEMM:        |gpu − cpu| ≤ 1.2e-2 · A (x and w rounded to bf16, ≤ 2^-9 each,
//                                      give 3.9e-3; up to 6.5e-3 was seen on H100, so cuBLASLt's own
//                                      accumulation adds error of the same order)
// A wrong scale, zero, nibble or layout gives errors of order A.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "quant/dequantize.h"

namespace ge {
namespace {

using gputest::GpuTest;
using gputest::HostWeight;

struct TypeCase {
  QuantType type;
  int64_t group = 0;  // Int4Group / Int8Group
  int zero_kind = 0;
  std::string name() const {
    std::string n = quant_type_name(type);
    if (group > 0) n += "_g" + std::to_string(group) + (zero_kind ? "_zero" : "");
    return n;
  }
  int64_t unit() const {  // cols must be a multiple of this
    if (type == QuantType::kInt4Group || type == QuantType::kInt8Group) return group;
    return block_layout(type).block_elems;
  }
};

const std::vector<TypeCase>& all_cases() {
  static const std::vector<TypeCase> cases = {
      {QuantType::kF32},       {QuantType::kF16},       {QuantType::kBF16},      {QuantType::kQ4_0},
      {QuantType::kQ5_0},      {QuantType::kQ8_0},      {QuantType::kQ4_K},      {QuantType::kQ5_K},
      {QuantType::kQ6_K},      {QuantType::kInt4Group, 32, 1},  {QuantType::kInt4Group, 32, 0},
      {QuantType::kInt4Group, 64, 1},   {QuantType::kInt4Group, 128, 1}, {QuantType::kInt4Group, 128, 0},
      {QuantType::kInt4Group, 16, 1},   {QuantType::kInt8Group, 32, 1},  {QuantType::kInt8Group, 32, 0},
      {QuantType::kInt8Group, 64, 1},   {QuantType::kInt8Group, 128, 0}, {QuantType::kInt8Group, 48, 1},
      {QuantType::kInt4Group, 256, 1},  {QuantType::kInt8Group, 256, 0},
  };
  return cases;
}

bool expect_tiled(const TypeCase& c) {
  if (c.type == QuantType::kQ4_0 || c.type == QuantType::kQ8_0) return true;
  if (c.type == QuantType::kInt4Group || c.type == QuantType::kInt8Group) {
    return c.group >= 32 && (c.group & (c.group - 1)) == 0;
  }
  return false;
}

// Σ|w·x| per output [m, rows], from the reference decoder.
std::vector<double> abs_sums(const QuantWeight& w, const std::vector<float>& x, int64_t m) {
  std::vector<double> out(static_cast<size_t>(m * w.rows));
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    dequantize_row(w, r, row.data());
    for (int64_t i = 0; i < m; ++i) {
      double s = 0.0;
      for (int64_t k = 0; k < w.cols; ++k) s += std::fabs(static_cast<double>(row[k]) * x[i * w.cols + k]);
      out[i * w.rows + r] = s;
    }
  }
  return out;
}

class CudaMatmul : public GpuTest {
 protected:
  // Runs one shape for every m; returns the worst error / A seen.
  double check_shape(const TypeCase& c, int64_t rows, int64_t cols, const std::vector<int64_t>& ms) {
    SCOPED_TRACE(c.name() + " [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
    HostWeight hw = gputest::random_weight(c.type, rows, cols, rng_, c.group, c.zero_kind);
    Result<std::unique_ptr<PackedWeight>> gw = gpu_->pack_weight(hw.view);
    Result<std::unique_ptr<PackedWeight>> cw = cpu_->pack_weight(hw.view);
    EXPECT_TRUE(gw.is_ok()) << gw.status().to_string();
    EXPECT_TRUE(cw.is_ok()) << cw.status().to_string();
    if (!gw.is_ok() || !cw.is_ok()) return 1e30;
    const std::string layout = cuda_->layout_name(**gw);
    EXPECT_EQ(expect_tiled(c), layout == "tiled4" || layout == "tiled8") << layout;
    double worst = 0.0;
    for (int64_t m : ms) {
      SCOPED_TRACE("m = " + std::to_string(m));
      const std::vector<float> x = normal(m * cols);
      DeviceBuffer gx = to_gpu(x);
      DeviceBuffer gy = poisoned(m * rows);
      DeviceBuffer cx = to_cpu(x);
      DeviceBuffer cy = to_cpu(std::vector<float>(static_cast<size_t>(m * rows)));
      gpu_->matmul(gx.f32(), m, **gw, gy.f32());
      cpu_->matmul(cx.f32(), m, **cw, cy.f32());
      Status st = gpu_->synchronize();
      EXPECT_TRUE(st.is_ok()) << st.to_string();
      const std::vector<float> got = from_gpu(gy, m * rows);
      const std::vector<float> want = from_cpu(cy, m * rows);
      const std::vector<double> a = abs_sums(hw.view, x, m);
      const double tol = m > 16 ? 1.2e-2 : (expect_tiled(c) ? 5e-5 : 1e-5);
      int bad = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
        const double ratio = a[i] > 0 ? err / a[i] : err;
        if (!(ratio <= tol)) {  // also catches NaN (unwritten output)
          if (++bad <= 3) {
            ADD_FAILURE() << "output " << i << " (token " << i / rows << ", row " << i % rows << "): gpu "
                          << got[i] << " cpu " << want[i] << " |err|/A " << ratio << " > " << tol;
          }
        } else {
          worst = std::max(worst, ratio);
          double& w = m > 16 ? worst_gemm_ : worst_gemv_;
          w = std::max(w, ratio);
        }
      }
      EXPECT_EQ(bad, 0);
    }
    return worst;
  }
  double worst_gemv_ = 0.0, worst_gemm_ = 0.0;
};

TEST_F(CudaMatmul, EveryTypeMatchesReferenceOverShapeGrid) {
  SCOPED_TRACE(trace());
  const std::vector<int64_t> ms = {1, 2, 5, 8, 9, 16, 17, 40};
  for (const TypeCase& c : all_cases()) {
    const int64_t u = c.unit();
    double worst = 0.0;
    // Odd row counts around the 16-row tile, K from one block/group to several chunks.
    const std::vector<std::pair<int64_t, int64_t>> shapes = {
        {1, u}, {15, 3 * u}, {16, 2 * u}, {17, 7 * u}, {33, std::max<int64_t>(u, 1024 / u * u)}};
    for (const auto& [rows, cols] : shapes) worst = std::max(worst, check_shape(c, rows, cols, ms));
    std::printf("[ matmul ] %-20s worst |err|/A: gemv %.3g, gemm %.3g\n", c.name().c_str(), worst_gemv_, worst_gemm_);
    worst_gemv_ = worst_gemm_ = 0.0;
  }
}

TEST_F(CudaMatmul, GemmaSizedRows) {
  SCOPED_TRACE(trace());
  // K of Gemma 4 31B (5376) and the 270M model (640); M = 16 exceeds the shared-memory staging
  // of x and takes the global-fragment path.
  for (const TypeCase& c : {TypeCase{QuantType::kQ4_0}, TypeCase{QuantType::kInt4Group, 128, 1},
                            TypeCase{QuantType::kInt4Group, 32, 1}, TypeCase{QuantType::kQ8_0},
                            TypeCase{QuantType::kQ6_K}, TypeCase{QuantType::kQ4_K}}) {
    check_shape(c, 80, 5376, {1, 3, 16});
    if (c.unit() <= 128) check_shape(c, 48, 640, {1, 16, 24});
  }
}

TEST_F(CudaMatmul, GridAndLaunchModesKeepResults) {
  SCOPED_TRACE(trace());
  // One CTA per SM makes every CTA loop over many tiles; programmatic launch on and off.
  for (int ctas : {1, 2, 0}) {
    SCOPED_TRACE("ctas_per_sm = " + std::to_string(ctas));
    CudaMatmulTuning t;
    t.gemv_ctas_per_sm = ctas;
    t.programmatic_launch = ctas != 2;
    cuda_->set_matmul_tuning(t);
    check_shape(TypeCase{QuantType::kInt4Group, 64, 1}, 3000, 448, {1, 4, 12});
    check_shape(TypeCase{QuantType::kInt8Group, 32, 1}, 2500, 320, {1, 9});
    check_shape(TypeCase{QuantType::kQ4_0}, 4100, 64, {1, 2});
  }
}

TEST_F(CudaMatmul, GemvRandomShapesEveryM) {
  SCOPED_TRACE(trace());
  // Rows off the 16-row tile and the 32-row pair, K an odd number of blocks/groups, every M of the
  // GEMV (1..16): the stream-K shares then start and end anywhere inside a pair.
  std::uniform_int_distribution<int64_t> rows_d(1, 300), blocks_d(1, 41);
  std::vector<int64_t> ms;
  for (int64_t m = 1; m <= 16; ++m) ms.push_back(m);
  for (const TypeCase& c : {TypeCase{QuantType::kQ4_0}, TypeCase{QuantType::kInt4Group, 32, 1},
                            TypeCase{QuantType::kInt4Group, 128, 1}, TypeCase{QuantType::kQ8_0},
                            TypeCase{QuantType::kInt8Group, 64, 1}, TypeCase{QuantType::kInt8Group, 32, 0}}) {
    for (int i = 0; i < 2; ++i) {
      const int64_t rows = rows_d(rng_);
      const int64_t cols = (blocks_d(rng_) | 1) * c.unit();
      check_shape(c, rows, cols, ms);
    }
  }
}

TEST_F(CudaMatmul, GemvPairsSplitAcrossManyWarps) {
  SCOPED_TRACE(trace());
  // Few rows and a long K (the down projection's K = 21504): every pair is shared by many warps of
  // several CTAs and summed by the last to arrive.
  check_shape(TypeCase{QuantType::kQ4_0}, 70, 21504, {1, 4, 16});
  check_shape(TypeCase{QuantType::kInt4Group, 128, 1}, 40, 16384, {1, 9});
  check_shape(TypeCase{QuantType::kQ8_0}, 33, 8192, {1, 2});
}

TEST_F(CudaMatmul, GemvEveryScheduleLongK) {
  SCOPED_TRACE(trace());
  // Each GEMV schedule forced (1 items, 2 stream-K, 3 K-slice) on long K: the K-slice schedule then
  // cuts K into many slices of x whose partial sums the last slice adds.
  for (int sched : {1, 2, 3}) {
    SCOPED_TRACE("schedule " + std::to_string(sched));
    CudaMatmulTuning t;
    t.gemv_schedule = sched;
    cuda_->set_matmul_tuning(t);
    check_shape(TypeCase{QuantType::kQ4_0}, 70, 21504, {1, 4, 16});
    check_shape(TypeCase{QuantType::kInt4Group, 128, 1}, 40, 16384, {1, 9});
    check_shape(TypeCase{QuantType::kQ8_0}, 33, 8192, {2, 16});
  }
  cuda_->set_matmul_tuning(CudaMatmulTuning{});
}

TEST_F(CudaMatmul, GemvTallMatricesAtMOne) {
  SCOPED_TRACE(trace());
  // M = 1 products with >= 21504 rows (gate/up, the LM head) take the stream-K schedule; a short K
  // leaves a few units per warp, so most pairs are split and summed by their last warp.
  check_shape(TypeCase{QuantType::kQ4_0}, 21504, 256, {1});
  check_shape(TypeCase{QuantType::kInt4Group, 32, 1}, 21520, 128, {1, 2});
  check_shape(TypeCase{QuantType::kQ8_0}, 22000, 96, {1});
}

TEST_F(CudaMatmul, GemvIsDeterministic) {
  SCOPED_TRACE(trace());
  // Same inputs, same bits: the partial sums of shared pairs are added in a fixed order.
  for (const TypeCase& c : {TypeCase{QuantType::kQ4_0}, TypeCase{QuantType::kInt4Group, 32, 1}}) {
    SCOPED_TRACE(c.name());
    const int64_t rows = 21504 + 40, cols = 512;  // M = 1 runs stream-K, M > 1 the item schedule
    HostWeight hw = gputest::random_weight(c.type, rows, cols, rng_, c.group, c.zero_kind);
    Result<std::unique_ptr<PackedWeight>> gw = gpu_->pack_weight(hw.view);
    ASSERT_TRUE(gw.is_ok()) << gw.status().to_string();
    for (int64_t m : {1, 7, 16}) {
      DeviceBuffer gx = to_gpu(normal(m * cols));
      std::vector<float> first;
      for (int rep = 0; rep < 4; ++rep) {
        DeviceBuffer gy = poisoned(m * rows);
        gpu_->matmul(gx.f32(), m, **gw, gy.f32());
        ASSERT_TRUE(gpu_->synchronize().is_ok());
        const std::vector<float> got = from_gpu(gy, m * rows);
        if (rep == 0) {
          first = got;
          continue;
        }
        int64_t diff = 0;
        for (size_t i = 0; i < got.size(); ++i) diff += gputest::float_bits(got[i]) != gputest::float_bits(first[i]);
        EXPECT_EQ(diff, 0) << "m = " << m << ", repetition " << rep;
      }
    }
  }
}

TEST_F(CudaMatmul, PackingIsLossless) {
  SCOPED_TRACE(trace());
  for (const TypeCase& c : all_cases()) {
    SCOPED_TRACE(c.name());
    const int64_t u = c.unit();
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{19, 3 * u}, {40, std::max<int64_t>(u, 768 / u * u)}}) {
      HostWeight hw = gputest::random_weight(c.type, rows, cols, rng_, c.group, c.zero_kind);
      Result<std::unique_ptr<PackedWeight>> gw = gpu_->pack_weight(hw.view);
      ASSERT_TRUE(gw.is_ok()) << gw.status().to_string();
      EXPECT_EQ((*gw)->rows(), rows);
      EXPECT_EQ((*gw)->cols(), cols);
      EXPECT_GT((*gw)->bytes(), 0u);
      DeviceBuffer out = poisoned(rows * cols);
      Status st = cuda_->dequantize(**gw, out.f32());
      ASSERT_TRUE(st.is_ok()) << st.to_string();
      const std::vector<float> got = from_gpu(out, rows * cols);
      std::vector<float> want(static_cast<size_t>(cols));
      int64_t mismatches = 0;
      for (int64_t r = 0; r < rows; ++r) {
        dequantize_row(hw.view, r, want.data());
        for (int64_t k = 0; k < cols; ++k) {
          if (gputest::float_bits(got[r * cols + k]) != gputest::float_bits(want[k]) && ++mismatches <= 3) {
            ADD_FAILURE() << "row " << r << " col " << k << ": gpu " << got[r * cols + k] << " ref " << want[k];
          }
        }
      }
      EXPECT_EQ(mismatches, 0);
    }
  }
}

TEST_F(CudaMatmul, SynthesizedWeightsAreValidAndDeterministic) {
  SCOPED_TRACE(trace());
  const int64_t rows = 37, cols = 512;
  for (const TypeCase& c : all_cases()) {
    if (c.type == QuantType::kInt8Group && c.group == 48) continue;  // 512 is not a multiple of 48
    SCOPED_TRACE(c.name());
    static const uint8_t kAskForZeros = 0;
    QuantWeight like;  // shape and encoding only; a non-null zero asks for zero points
    like.type = c.type;
    like.rows = rows;
    like.cols = cols;
    like.group_size = c.group;
    like.zero = c.zero_kind == 1 ? &kAskForZeros : nullptr;
    auto make = [&](uint64_t seed) { return gpu_->synthesize_weight(like, seed); };
    Result<std::unique_ptr<PackedWeight>> a = make(7), b = make(7), other = make(8);
    ASSERT_TRUE(a.is_ok()) << a.status().to_string();
    ASSERT_TRUE(b.is_ok() && other.is_ok());
    std::vector<std::vector<float>> dense;
    for (auto* w : {&a, &b, &other}) {
      DeviceBuffer out = poisoned(rows * cols);
      ASSERT_TRUE(cuda_->dequantize(***w, out.f32()).is_ok());
      dense.push_back(from_gpu(out, rows * cols));
    }
    int64_t same = 0, differ = 0;
    for (size_t i = 0; i < dense[0].size(); ++i) {
      ASSERT_TRUE(std::isfinite(dense[0][i])) << "element " << i;
      same += gputest::float_bits(dense[0][i]) == gputest::float_bits(dense[1][i]);
      differ += dense[0][i] != dense[2][i];
    }
    EXPECT_EQ(same, rows * cols) << "same seed must give the same weight";
    EXPECT_GT(differ, rows * cols / 2) << "another seed must give another weight";
    // The synthesized weight multiplies like its own dequantized form.
    const std::vector<float> x = normal(2 * cols);
    DeviceBuffer gx = to_gpu(x), gy = poisoned(2 * rows);
    gpu_->matmul(gx.f32(), 2, **a, gy.f32());
    ASSERT_TRUE(gpu_->synchronize().is_ok());
    const std::vector<float> got = from_gpu(gy, 2 * rows);
    for (int64_t i = 0; i < 2; ++i) {
      for (int64_t r = 0; r < rows; ++r) {
        double exact = 0.0, absum = 0.0;
        for (int64_t k = 0; k < cols; ++k) {
          const double p = static_cast<double>(dense[0][r * cols + k]) * x[i * cols + k];
          exact += p;
          absum += std::fabs(p);
        }
        EXPECT_LE(std::fabs(got[i * rows + r] - exact), 5e-5 * absum) << "token " << i << " row " << r;
      }
    }
  }
}

TEST_F(CudaMatmul, InvalidWeightsAreRejected) {
  QuantWeight w;
  w.type = QuantType::kQ4_0;
  w.rows = 4;
  w.cols = 48;  // not a multiple of the 32-element block
  std::vector<uint8_t> data(4 * 2 * 18);
  w.data = data.data();
  EXPECT_FALSE(gpu_->pack_weight(w).is_ok());
  w.cols = 64;
  w.data = nullptr;
  EXPECT_FALSE(gpu_->pack_weight(w).is_ok());
  QuantWeight g;
  g.type = QuantType::kInt4Group;
  g.rows = 2;
  g.cols = 64;
  g.group_size = 48;  // does not divide the row
  std::vector<uint16_t> scale(8);
  g.data = data.data();
  g.scale = scale.data();
  EXPECT_FALSE(gpu_->pack_weight(g).is_ok());
  QuantWeight like;
  like.type = QuantType::kQ4_K;
  like.rows = 3;
  like.cols = 100;  // not a multiple of 256
  EXPECT_FALSE(gpu_->synthesize_weight(like, 1).is_ok());
  EXPECT_TRUE(gpu_->synchronize().is_ok());
}

}  // namespace
}  // namespace ge
