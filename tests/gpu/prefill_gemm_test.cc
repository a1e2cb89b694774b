// Prefill GEMM (M > 16) on weights larger than one 64 MiB bf16 scratch chunk: the chunks are
// dequantized on a side stream into two alternating buffers, so a wrong offset, a missed wait or a
// buffer reused too early shows up as whole bad row blocks. The reference is the same backend's
// tensor-core GEMV (M <= 16, x kept to 16 significant bits) over the same rows of x; the GEMM rounds
// x to bf16 (relative 2^-9 per element), so: relative L2 ≤ 1e-2, max error ≤ 5e-2 · rms.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <utility>
#include <cstring>
#include <string>
#include <vector>

#include "gpu_test_util.h"

namespace ge {
namespace {

using gputest::GpuTest;

class CudaPrefillGemm : public GpuTest {
 protected:
  // y = x · wᵀ for m rows by the GEMM, and in blocks of <= 16 rows by the GEMV; compared.
  void check(const PackedWeight& w, int64_t m) {
    SCOPED_TRACE("m = " + std::to_string(m));
    const int64_t K = w.cols(), N = w.rows();
    DeviceBuffer x = to_gpu(normal(m * K)), y_gemm = poisoned(m * N), y_gemv = poisoned(m * N);
    gpu_->matmul(x.f32(), m, w, y_gemm.f32());
    for (int64_t r = 0; r < m; r += 16) {
      const int64_t n = std::min<int64_t>(16, m - r);
      gpu_->matmul(x.f32() + r * K, n, w, y_gemv.f32() + r * N);
    }
    Status st = gpu_->synchronize();
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    const std::vector<float> got = from_gpu(y_gemm, m * N), want = from_gpu(y_gemv, m * N);
    EXPECT_LE(gputest::rel_l2(got, want), 1e-2);
    EXPECT_LE(gputest::max_err_over_rms(got, want), 5e-2);
    // Every chunk of rows must be right on its own (a wrong chunk would hide in a global average).
    const int64_t chunk = (int64_t{64} << 20) / (K * 2) / 128 * 128;
    for (int64_t n0 = 0; n0 < N; n0 += chunk) {
      std::vector<float> g, e;
      for (int64_t t = 0; t < m; ++t) {
        for (int64_t j = n0; j < std::min(N, n0 + chunk); ++j) {
          g.push_back(got[static_cast<size_t>(t * N + j)]);
          e.push_back(want[static_cast<size_t>(t * N + j)]);
        }
      }
      EXPECT_LE(gputest::rel_l2(g, e), 1e-2) << "rows from " << n0;
    }
  }
};

TEST_F(CudaPrefillGemm, MultiChunkWeightsMatchGemv) {
  SCOPED_TRACE(trace());
  static const uint8_t kAskForZeros = 0;
  // 18472 x 5376: four chunks of 6144 rows (the last one partial) through the two buffers.
  for (int zero = 0; zero < 2; ++zero) {
    QuantWeight like;
    like.type = zero ? QuantType::kInt4Group : QuantType::kQ4_0;
    like.rows = 6144 * 3 + 40;
    like.cols = 5376;
    like.group_size = zero ? 32 : 0;
    like.zero = zero ? &kAskForZeros : nullptr;
    Result<std::unique_ptr<PackedWeight>> w = gpu_->synthesize_weight(like, 11 + zero);
    ASSERT_TRUE(w.is_ok()) << w.status().to_string();
    check(**w, 40);
    check(**w, 17);  // a second call reuses both buffers
  }
}

// Row counts of one power-of-two range share the algorithm timed for the first of them (checked by
// cuBLASLt for the new shape): each must still match the GEMV reference, as must the next range.
TEST_F(CudaPrefillGemm, TimedAlgorithmServesOtherRowCountsOfItsRange) {
  SCOPED_TRACE(trace());
  QuantWeight like;
  like.type = QuantType::kQ4_0;
  like.rows = 3000;
  like.cols = 2048;
  Result<std::unique_ptr<PackedWeight>> w = gpu_->synthesize_weight(like, 31);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  for (int64_t m : {200, 130, 255, 256, 129}) check(**w, m);
}

// matmul_shared_input on the GEMM path rounds x to bf16 once for all outputs (of different row counts):
// the same bits as one matmul per output. A shape's algorithm, timed among cuBLASLt's candidates on
// its first call (M >= 128), stays fixed: repeated calls give the same bits.
TEST_F(CudaPrefillGemm, SharedInputEqualsSeparateProductsAndRepeatsBitForBit) {
  SCOPED_TRACE(trace());
  const int64_t K = 1024, m = 160;
  const int64_t rows[3] = {2048, 512, 264};  // q, k, v-like; 264: a partial 128-row block
  std::vector<std::unique_ptr<PackedWeight>> w;
  for (int i = 0; i < 3; ++i) {
    QuantWeight like;
    like.type = QuantType::kQ4_0;
    like.rows = rows[i];
    like.cols = K;
    Result<std::unique_ptr<PackedWeight>> r = gpu_->synthesize_weight(like, 21 + i);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    w.push_back(std::move(r).value());
  }
  DeviceBuffer x = to_gpu(normal(m * K));
  std::vector<DeviceBuffer> shared, separate, again;
  for (int i = 0; i < 3; ++i) {
    shared.push_back(poisoned(m * rows[i]));
    separate.push_back(poisoned(m * rows[i]));
    again.push_back(poisoned(m * rows[i]));
  }
  const MatmulOutput outs[3] = {{w[0].get(), shared[0].f32()}, {w[1].get(), shared[1].f32()}, {w[2].get(), shared[2].f32()}};
  gpu_->matmul_shared_input(x.f32(), m, outs);
  for (int i = 0; i < 3; ++i) gpu_->matmul(x.f32(), m, *w[i], separate[i].f32());
  for (int i = 0; i < 3; ++i) gpu_->matmul(x.f32(), m, *w[i], again[i].f32());
  Status st = gpu_->synchronize();
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE("output " + std::to_string(i));
    const std::vector<float> a = from_gpu(shared[i], m * rows[i]), b = from_gpu(separate[i], m * rows[i]),
                             c = from_gpu(again[i], m * rows[i]);
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(b.data(), c.data(), b.size() * sizeof(float)));
    double ss = 0;
    for (float v : a) ss += static_cast<double>(v) * v;
    EXPECT_GT(ss, 0.0);  // not all zeros (NaN poison would fail the comparisons above)
  }
}

// The MLP down projection with gelu_tanh(gate) * up fed straight into the GEMM's bf16 input must equal
// gelu_tanh_mul then matmul: the same fp32 product rounded to bf16 the same way, so the same GEMM
// operands; compared within 1e-6 relative L2 and counted bit for bit (printed). Also odd K (the
// scalar conversion path) and the decode row counts (M <= 16: the separate ops by design).
TEST_F(CudaPrefillGemm, GeluInputEqualsGeluThenMatmul) {
  SCOPED_TRACE(trace());
  for (const auto& [K, N] : {std::pair<int64_t, int64_t>{2048, 1536}, {1000, 640}}) {
    QuantWeight like;
    like.type = QuantType::kQ4_0;
    like.rows = N;
    like.cols = K;
    if (K % 32 != 0) like.type = QuantType::kBF16;
    Result<std::unique_ptr<PackedWeight>> r = gpu_->synthesize_weight(like, 41);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    const PackedWeight& w = **r;
    for (int64_t m : {int64_t{300}, int64_t{17}, int64_t{5}}) {
      SCOPED_TRACE("K " + std::to_string(K) + " m " + std::to_string(m));
      const std::vector<float> gate = normal(m * K, 2.0f), up = normal(m * K);
      DeviceBuffer g1 = to_gpu(gate), g2 = to_gpu(gate), u = to_gpu(up);
      DeviceBuffer y_fused = poisoned(m * N), y_sep = poisoned(m * N);
      gpu_->matmul_gelu_input(g1.f32(), u.f32(), m, w, y_fused.f32());
      gpu_->gelu_tanh_mul(g2.f32(), u.f32(), m * K, g2.f32());
      gpu_->matmul(g2.f32(), m, w, y_sep.f32());
      Status st = gpu_->synchronize();
      ASSERT_TRUE(st.is_ok()) << st.to_string();
      const std::vector<float> a = from_gpu(y_fused, m * N), b = from_gpu(y_sep, m * N);
      int64_t differ = 0;
      for (size_t i = 0; i < a.size(); ++i) differ += gputest::float_bits(a[i]) != gputest::float_bits(b[i]);
      EXPECT_LE(gputest::rel_l2(a, b), 1e-6);
      double ss = 0;
      for (float v : a) ss += static_cast<double>(v) * v;
      EXPECT_GT(ss, 0.0);
      std::printf("gelu input K %lld m %lld: %lld of %zu outputs differ in bits\n", static_cast<long long>(K),
                  static_cast<long long>(m), static_cast<long long>(differ), a.size());
    }
  }
}

}  // namespace
}  // namespace ge
