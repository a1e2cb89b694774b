// The decode-batch ops on the CUDA backend (kv_store_batch, attention_prologue_batch, attention_batch:
// token t of the batch belongs to the sequence whose cache is caches[t]) against the CPU reference
// running the single-sequence ops per sequence. Sequences sit at different positions (different
// amounts of history, sliding-window rings that have wrapped), the batch order changes between
// steps and sequences drop out, so the device table of caches is rebuilt and reused.
// Bounds as attention_test.cc's decode steps (K/V rounded to bf16 on both sides, fp32 arithmetic):
//   relative L2 ≤ 2e-6 and max error ≤ 1e-4 · rms(reference)
// The prologue path (norms + RoPE + store of every token, then attention) is compared with the GPU's
// own per-sequence path (the same prologue arithmetic per row: q bit-identical; attention split
// differently: relative L2 ≤ 1e-4); and with the CPU, whose cache keeps the unrounded fp32 K/V:
// attention_test.cc's cache-precision bounds (relative L2 ≤ 1e-2, max ≤ 5e-2 · rms) at scale 1/sqrt(d).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "gpu_test_util.h"

namespace ge {
namespace {

using gputest::GpuTest;

struct BatchCase {
  int d, n_kv, group, window;
  float scale;
  std::string name() const {
    return "d" + std::to_string(d) + "_kv" + std::to_string(n_kv) + "_g" + std::to_string(group) + "_w" +
           std::to_string(window);
  }
};

class CudaBatchAttention : public GpuTest {
 protected:
  struct Seq {
    std::unique_ptr<KvCache> g, c, g1;  // g1: the GPU cache of the per-sequence path (prologue runs)
    int32_t pos = 0;
  };

  // `capacities[s]` sets sequence s's ring size (0: the default); unequal sizes make the GPU loop
  // per sequence instead of one launch, with the same results.
  void run_case(const BatchCase& bc, int n_seqs, bool prologue, const std::vector<int>& capacities = {}) {
    SCOPED_TRACE(bc.name() + (prologue ? " prologue" : " kv_store") + " seqs " + std::to_string(n_seqs));
    const int max_prefill = 40;
    KvLayerSpec spec;
    spec.n_kv_heads = bc.n_kv;
    spec.head_dim = bc.d;
    spec.sliding_window = bc.window;
    spec.capacity = bc.window > 0 ? bc.window + max_prefill : 256;
    AttentionParams p;
    p.n_kv_heads = bc.n_kv;
    p.n_heads = bc.n_kv * bc.group;
    p.head_dim = bc.d;
    p.sliding_window = bc.window;
    p.scale = bc.scale;
    const int64_t kv_row = int64_t{bc.n_kv} * bc.d, q_row = int64_t{p.n_heads} * bc.d;

    // Per sequence: its own caches (layer 0 a decoy) and a prefill of a different length.
    std::vector<Seq> seqs(static_cast<size_t>(n_seqs));
    std::uniform_int_distribution<int> len(1, max_prefill);
    for (int s = 0; s < n_seqs; ++s) {
      KvLayerSpec sp = spec;
      if (static_cast<size_t>(s) < capacities.size() && capacities[static_cast<size_t>(s)] > 0)
        sp.capacity = capacities[static_cast<size_t>(s)];
      Seq& q = seqs[static_cast<size_t>(s)];
      auto g = gpu_->create_kv_cache({sp, sp});
      auto g1 = gpu_->create_kv_cache({sp, sp});
      auto c = cpu_->create_kv_cache({sp, sp});
      ASSERT_TRUE(g.is_ok() && g1.is_ok() && c.is_ok()) << g.status().to_string();
      q.g = std::move(g).value();
      q.g1 = std::move(g1).value();
      q.c = std::move(c).value();
      const int n = len(rng_);
      std::vector<int32_t> pos(static_cast<size_t>(n));
      std::iota(pos.begin(), pos.end(), 0);
      std::vector<float> k = bf16(normal(n * kv_row)), v = bf16(normal(n * kv_row));
      DeviceBuffer gp = to_gpu(pos), gk = to_gpu(k), gv = to_gpu(v);
      DeviceBuffer cp = to_cpu(pos), ck = to_cpu(k), cv = to_cpu(v);
      gpu_->kv_store(*q.g, 1, gk.f32(), gv.f32(), n, gp.i32());
      gpu_->kv_store(*q.g1, 1, gk.f32(), gv.f32(), n, gp.i32());
      cpu_->kv_store(*q.c, 1, ck.f32(), cv.f32(), n, cp.i32());
      q.pos = n;
    }
    ASSERT_TRUE(gpu_->synchronize().is_ok());

    // Decode steps over changing batches: all in order, reversed, shuffled, a subset, all again.
    std::vector<int> order(static_cast<size_t>(n_seqs));
    std::iota(order.begin(), order.end(), 0);
    for (int step = 0; step < 7; ++step) {
      std::vector<int> batch = order;
      if (step == 1) std::reverse(batch.begin(), batch.end());
      if (step == 2 || step == 5) std::shuffle(batch.begin(), batch.end(), rng_);
      if (step == 3) batch.resize(std::max<size_t>(2, batch.size() / 2));
      SCOPED_TRACE("step " + std::to_string(step) + " of " + std::to_string(batch.size()) + " sequences");
      const int64_t T = static_cast<int64_t>(batch.size());
      std::vector<int32_t> pos;
      std::vector<KvCache*> gcaches;
      for (int s : batch) {
        pos.push_back(seqs[static_cast<size_t>(s)].pos);
        gcaches.push_back(seqs[static_cast<size_t>(s)].g.get());
      }
      std::vector<float> k = normal(T * kv_row), v = normal(T * kv_row), q = normal(T * q_row, 0.5f);
      if (!prologue) {
        k = bf16(k);
        v = bf16(v);
      }
      const std::vector<float> qn = normal(bc.d), kn = normal(bc.d);
      std::vector<float> inv_freq(static_cast<size_t>(bc.d / 2));
      for (size_t j = 0; j < inv_freq.size(); ++j) inv_freq[j] = std::pow(10000.0f, -2.0f * static_cast<float>(j) / static_cast<float>(bc.d));
      DeviceBuffer gp = to_gpu(pos), gk = to_gpu(k), gv = to_gpu(v), gq = to_gpu(q), go = poisoned(T * q_row);
      DeviceBuffer gqn = to_gpu(qn), gkn = to_gpu(kn), gf = to_gpu(inv_freq);
      DeviceBuffer cp = to_cpu(pos), ck = to_cpu(k), cv = to_cpu(v), cq = to_cpu(q);
      DeviceBuffer cqn = to_cpu(qn), ckn = to_cpu(kn), cf = to_cpu(inv_freq);
      DeviceBuffer co = to_cpu(std::vector<float>(static_cast<size_t>(T * q_row)));
      // The per-sequence GPU path works on its own copies (the prologue rewrites q/k/v in place).
      DeviceBuffer g1k = to_gpu(k), g1v = to_gpu(v), g1q = to_gpu(q), g1o = poisoned(T * q_row);
      auto pro = [&](float* qp, float* kp, float* vp, const float* qnp, const float* knp, const float* fp,
                     const int32_t* pp, int64_t n) {
        AttentionPrologue a;
        a.q = qp;
        a.k = kp;
        a.v = vp;
        a.q_norm = qnp;
        a.k_norm = knp;
        a.v_norm = true;
        a.inv_freq = fp;
        a.positions = pp;
        a.n_tokens = n;
        a.n_heads = p.n_heads;
        a.n_kv = bc.n_kv;
        a.head_dim = bc.d;
        return a;
      };
      if (prologue) {
        gpu_->attention_prologue_batch(gcaches, 1, pro(gq.f32(), gk.f32(), gv.f32(), gqn.f32(), gkn.f32(), gf.f32(), gp.i32(), T));
      } else {
        gpu_->kv_store_batch(gcaches, 1, gk.f32(), gv.f32(), bc.n_kv, bc.d, gp.i32());
      }
      gpu_->attention_batch(gcaches, 1, gq.f32(), gp.i32(), p, go.f32());
      for (int64_t t = 0; t < T; ++t) {
        KvCache& cc = *seqs[static_cast<size_t>(batch[static_cast<size_t>(t)])].c;
        if (prologue) {
          KvCache& g1 = *seqs[static_cast<size_t>(batch[static_cast<size_t>(t)])].g1;
          gpu_->attention_prologue(g1, 1, pro(g1q.f32() + t * q_row, g1k.f32() + t * kv_row, g1v.f32() + t * kv_row,
                                              gqn.f32(), gkn.f32(), gf.f32(), gp.i32() + t, 1));
          gpu_->attention(g1, 1, g1q.f32() + t * q_row, 1, gp.i32() + t, p, g1o.f32() + t * q_row);
        }
        float* qt = cq.f32() + t * q_row;
        if (prologue) {
          cpu_->attention_prologue(cc, 1, pro(qt, ck.f32() + t * kv_row, cv.f32() + t * kv_row, cqn.f32(), ckn.f32(),
                                              cf.f32(), cp.i32() + t, 1));
        } else {
          cpu_->kv_store(cc, 1, ck.f32() + t * kv_row, cv.f32() + t * kv_row, 1, cp.i32() + t);
        }
        cpu_->attention(cc, 1, qt, 1, cp.i32() + t, p, co.f32() + t * q_row);
      }
      Status st = gpu_->synchronize();
      ASSERT_TRUE(st.is_ok()) << st.to_string();
      const std::vector<float> got = from_gpu(go, T * q_row), want = from_cpu(co, T * q_row);
      // The prologue stores K/V computed on each side (bf16 on the GPU): the cache-precision bound.
      EXPECT_LE(gputest::rel_l2(got, want), prologue ? 1e-2 : 2e-6);
      EXPECT_LE(gputest::max_err_over_rms(got, want), prologue ? 5e-2 : 1e-4);
      if (prologue) {
        // The normalised, rotated q comes back in place: a few ulp from the CPU's.
        const std::vector<float> gq_out = from_gpu(gq, T * q_row), cq_out = from_cpu(cq, T * q_row);
        EXPECT_LE(gputest::rel_l2(gq_out, cq_out), 1e-5);
        const std::vector<float> alone = from_gpu(g1o, T * q_row);
        EXPECT_LE(gputest::rel_l2(got, alone), 1e-4);
        // The batch prologue runs the per-sequence arithmetic row by row (one fused launch, or the
        // separate kernels under GE_CUDA_UNFUSED): its q is bit-identical to the per-sequence q.
        const std::vector<float> q_alone = from_gpu(g1q, T * q_row);
        size_t differ = 0;
        for (size_t i = 0; i < gq_out.size(); ++i) differ += gputest::float_bits(gq_out[i]) != gputest::float_bits(q_alone[i]);
        EXPECT_EQ(differ, 0u);
      }
      for (int s : batch) ++seqs[static_cast<size_t>(s)].pos;
    }
  }

  static std::vector<float> bf16(std::vector<float> v) {
    for (float& f : v) f = round_bf16(f);
    return v;
  }
};

TEST_F(CudaBatchAttention, DecodeBatchMatchesPerSequenceReference) {
  SCOPED_TRACE(trace());
  // Gemma 4 31B's sliding (d 256, 16 KV heads, GQA 2) and full (d 512, 4 KV heads, GQA 8) layers,
  // a small ring that wraps, GQA 1 at d 64, the tiny models' d 32 with window 8, d 96 (not a power of 2).
  const std::vector<BatchCase> cases = {
      {256, 16, 2, 24, 1.0f}, {512, 4, 8, 0, 1.0f}, {64, 2, 2, 5, 0.125f}, {64, 3, 1, 0, 0.125f},
      {32, 2, 2, 8, 0.2f}, {96, 1, 8, 0, 0.1f}};
  for (const BatchCase& bc : cases) {
    for (int n : {2, 5, 17}) run_case(bc, n, false);
  }
  // Many sequences: the kernel grid's token dimension and the split heuristic at batch 64.
  run_case({256, 16, 2, 24, 1.0f}, 64, false);
}

TEST_F(CudaBatchAttention, PrologueBatchMatchesPerSequenceReference) {
  SCOPED_TRACE(trace());
  run_case({256, 16, 2, 24, 0.0625f}, 6, true);
  run_case({512, 4, 8, 0, 0.044f}, 3, true);
}

TEST_F(CudaBatchAttention, CachesOfDifferentSizesStillMatch) {
  SCOPED_TRACE(trace());
  // Full layers of different context lengths: no common layout, so the backend loops.
  run_case({128, 2, 2, 0, 0.09f}, 4, false, {0, 300, 0, 128});
}

TEST_F(CudaBatchAttention, BadLayerIsAnError) {
  KvLayerSpec spec{2, 64, 32, 0};
  auto a = gpu_->create_kv_cache({spec});
  auto b = gpu_->create_kv_cache({spec});
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  std::vector<KvCache*> caches = {a->get(), b->get()};
  std::vector<int32_t> pos = {0, 0};
  DeviceBuffer gp = to_gpu(pos), gk = to_gpu(normal(256)), gq = to_gpu(normal(256)), go = poisoned(256);
  gpu_->kv_store_batch(caches, 1, gk.f32(), gk.f32(), 2, 64, gp.i32());
  EXPECT_FALSE(gpu_->synchronize().is_ok());
  AttentionParams p;
  p.n_heads = 2;
  p.n_kv_heads = 2;
  p.head_dim = 64;
  gpu_->attention_batch(caches, -1, gq.f32(), gp.i32(), p, go.f32());
  EXPECT_FALSE(gpu_->synchronize().is_ok());
  p.head_dim = 32;  // does not match the cache
  gpu_->attention_batch(caches, 0, gq.f32(), gp.i32(), p, go.f32());
  EXPECT_FALSE(gpu_->synchronize().is_ok());
  // A valid call afterwards works (the error was reported once and cleared).
  p.head_dim = 64;
  gpu_->kv_store_batch(caches, 0, gk.f32(), gk.f32(), 2, 64, gp.i32());
  gpu_->attention_batch(caches, 0, gq.f32(), gp.i32(), p, go.f32());
  EXPECT_TRUE(gpu_->synchronize().is_ok());
}

}  // namespace
}  // namespace ge
