// Prefill-sized norms against the separate ops. The add-norm chain at prefill row counts (rows > 16:
// the register-resident row kernel where the shape allows, the general kernel otherwise) against
// add_rms_norm, scale, rms_norm; the attention prologue of a prefill chunk (one warp per head row for
// head_dim 64..512, the general kernel for 32) against rms_norm, rope, kv_store. The row kernels sum
// squares in another order, so values agree to a few ulp (bounds relative to the row's rms or the
// head's peak), not bit for bit; a wrong row, column block, weight or cache slot differs by O(1).
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

TEST_F(PrefillNorm, AttentionPrologueOfAChunkMatchesTheSeparateOps) {
  SCOPED_TRACE(trace());
  struct Geo {
    int64_t tokens, heads, kv, d;
    bool k_eq_v, v_norm;
    int32_t window, cap;
  };
  for (const Geo& g : {Geo{40, 32, 16, 256, false, true, 1024, 1536}, Geo{40, 32, 4, 512, true, true, 0, 4096},
                       Geo{33, 4, 2, 64, false, false, 0, 2048}, Geo{20, 8, 1, 128, true, false, 16, 40},
                       Geo{24, 4, 2, 32, false, true, 0, 2048}}) {
    // Positions from 0: every key a query sees is one of the chunk's (from 1000, the empty slots before
    // would hold most of the softmax mass and magnify bf16 rounding of V in a relative comparison);
    // from 1000: large RoPE angles, checked on q only.
    for (int32_t pos0 : {0, 1000}) {
      SCOPED_TRACE("tokens " + std::to_string(g.tokens) + " heads " + std::to_string(g.heads) + " kv " +
                   std::to_string(g.kv) + " d " + std::to_string(g.d) + " from position " + std::to_string(pos0));
      const std::vector<float> q = normal(g.tokens * g.heads * g.d, 3.0f), k = normal(g.tokens * g.kv * g.d, 2.0f);
      const std::vector<float> v = normal(g.tokens * g.kv * g.d, 1.5f), qn = normal(g.d), kn = normal(g.d);
      std::vector<float> inv(static_cast<size_t>(g.d / 2));
      for (size_t j = 0; j < inv.size(); ++j) inv[j] = j % 5 == 4 ? 0.0f : std::pow(1e4f, -2.0f * j / g.d);
      std::vector<int32_t> pos(static_cast<size_t>(g.tokens));
      for (size_t t = 0; t < pos.size(); ++t) pos[t] = pos0 + static_cast<int32_t>(t);
      DeviceBuffer d_qn = to_gpu(qn), d_kn = to_gpu(kn), d_inv = to_gpu(inv), d_pos = to_gpu(pos);
      KvLayerSpec spec{static_cast<int32_t>(g.kv), static_cast<int32_t>(g.d), g.cap, g.window};
      AttentionParams ap;
      ap.n_heads = static_cast<int32_t>(g.heads);
      ap.n_kv_heads = static_cast<int32_t>(g.kv);
      ap.head_dim = static_cast<int32_t>(g.d);
      ap.sliding_window = g.window;
      ap.scale = 0.0625f;
      std::vector<float> out_q[2], out_att[2];
      for (int fused = 0; fused < 2; ++fused) {
        Result<std::unique_ptr<KvCache>> cache = gpu_->create_kv_cache({spec});
        ASSERT_TRUE(cache.is_ok());
        DeviceBuffer d_q = to_gpu(q), d_k = to_gpu(k), d_v = to_gpu(v), att = poisoned(g.tokens * g.heads * g.d);
        AttentionPrologue p;
        p.q = d_q.f32();
        p.k = d_k.f32();
        p.v = d_v.f32();
        p.q_norm = d_qn.f32();
        p.k_norm = d_kn.f32();
        p.k_eq_v = g.k_eq_v;
        p.v_norm = g.v_norm;
        p.inv_freq = d_inv.f32();
        p.positions = d_pos.i32();
        p.n_tokens = g.tokens;
        p.n_heads = g.heads;
        p.n_kv = g.kv;
        p.head_dim = g.d;
        p.eps = 1e-6f;
        if (fused) {
          gpu_->attention_prologue(**cache, 0, p);
        } else {
          gpu_->Backend::attention_prologue(**cache, 0, p);  // rms_norm, rope, kv_store
        }
        gpu_->attention(**cache, 0, d_q.f32(), g.tokens, d_pos.i32(), ap, att.f32());
        out_q[fused] = from_gpu(d_q, g.tokens * g.heads * g.d);
        out_att[fused] = from_gpu(att, g.tokens * g.heads * g.d);
        Status st = gpu_->synchronize();
        ASSERT_TRUE(st.is_ok()) << st.to_string();
      }
      // q within 1e-6 of each head's peak (a rotation near cancellation turns last-bit differences of
      // the norm into several ulp of a small result). Attention in relative L2: K/V go through bf16, and
      // a last-bit fp32 difference that crosses a bf16 rounding boundary (about 1 value in 2^16) moves
      // that value by 2^-8 relative; over a 40-token chunk that stays below 2e-4 (measured up to 2.5e-5
      // on an H100), while a wrong row, slot or weight is O(1).
      int64_t far = 0;
      for (size_t h = 0; h < out_q[0].size() / static_cast<size_t>(g.d); ++h) {
        float peak = 0;
        for (int64_t c = 0; c < g.d; ++c) peak = std::max(peak, std::fabs(out_q[0][h * g.d + c]));
        for (int64_t c = 0; c < g.d; ++c) {
          far += !(std::fabs(out_q[1][h * g.d + c] - out_q[0][h * g.d + c]) <= 1e-6f * peak);
        }
      }
      EXPECT_EQ(far, 0) << "q elements further than 1e-6 x the head's peak from the separate kernels";
      double e2 = 0, r2 = 0;
      for (size_t i = 0; i < out_att[0].size(); ++i) {
        e2 += (out_att[1][i] - out_att[0][i]) * (out_att[1][i] - out_att[0][i]);
        r2 += out_att[0][i] * out_att[0][i];
      }
      const double rel = std::sqrt(e2 / r2);
      if (pos0 == 0) {
        EXPECT_LE(rel, 2e-4) << "attention after the prologue";  // NaN (unwritten) fails too
      }
    }
  }
}

// The add-norm handing its rows to the GEMM as bf16 (prefill) must give what add_rms_norm_then_norm
// then matmul_shared_input give: the same fp32 rows rounded to bf16 the same way, so x and the
// products bit for bit; at decode row counts and for n the row kernel does not take, the composition.
TEST_F(PrefillNorm, AddNormThenMatmulEqualsTheTwoOps) {
  SCOPED_TRACE(trace());
  for (int64_t n : {1024, 1000}) {
    QuantWeight like;
    like.type = n % 32 == 0 ? QuantType::kQ4_0 : QuantType::kBF16;
    like.rows = 768;
    like.cols = n;
    Result<std::unique_ptr<PackedWeight>> w1 = gpu_->synthesize_weight(like, 51), w2 = gpu_->synthesize_weight(like, 52);
    ASSERT_TRUE(w1.is_ok() && w2.is_ok());
    for (int64_t rows : {int64_t{300}, int64_t{17}, int64_t{3}}) {
      SCOPED_TRACE("n " + std::to_string(n) + " rows " + std::to_string(rows));
      const std::vector<float> x = normal(rows * n, 4.0f), a = normal(rows * n, 20.0f);
      const std::vector<float> wp = normal(n), wn = normal(n);
      DeviceBuffer d_wp = to_gpu(wp), d_wn = to_gpu(wn), d_a = to_gpu(a);
      std::vector<float> got_x[2], got_y1[2], got_y2[2];
      for (int fused = 0; fused < 2; ++fused) {
        DeviceBuffer d_x = to_gpu(x), d_h = poisoned(rows * n), y1 = poisoned(rows * like.rows),
                     y2 = poisoned(rows * like.rows);
        const MatmulOutput outs[2] = {{w1->get(), y1.f32()}, {w2->get(), y2.f32()}};
        if (fused) {
          gpu_->add_rms_norm_then_matmul(d_x.f32(), d_a.f32(), d_wp.f32(), 0.75f, d_wn.f32(), rows, n, 1e-6f, d_h.f32(),
                                         outs);
        } else {
          gpu_->add_rms_norm_then_norm(d_x.f32(), d_a.f32(), d_wp.f32(), 0.75f, d_wn.f32(), rows, n, 1e-6f, d_h.f32());
          gpu_->matmul_shared_input(d_h.f32(), rows, outs);
        }
        got_x[fused] = from_gpu(d_x, rows * n);
        got_y1[fused] = from_gpu(y1, rows * like.rows);
        got_y2[fused] = from_gpu(y2, rows * like.rows);
        Status st = gpu_->synchronize();
        ASSERT_TRUE(st.is_ok()) << st.to_string();
      }
      int64_t differ = 0;
      for (size_t i = 0; i < got_x[0].size(); ++i) differ += got_x[0][i] != got_x[1][i] || std::isnan(got_x[1][i]);
      for (size_t i = 0; i < got_y1[0].size(); ++i) {
        differ += got_y1[0][i] != got_y1[1][i] || std::isnan(got_y1[1][i]);
        differ += got_y2[0][i] != got_y2[1][i] || std::isnan(got_y2[1][i]);
      }
      EXPECT_EQ(differ, 0);
      EXPECT_LE(gputest::rel_l2(got_y1[1], got_y1[0]), 1e-6);
      double ss = 0;
      for (float v : got_y2[1]) ss += static_cast<double>(v) * v;
      EXPECT_GT(ss, 0.0);
    }
  }
}

}  // namespace
}  // namespace ge
