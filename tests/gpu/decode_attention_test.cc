// Decode attention (1..4 queries, and decode batches of one query per sequence) on the CUDA backend
// against the CPU reference over contexts 1, 7, 64, 1000, 5000 in rings much larger than the
// context (the split count is fixed by the capacity, the keys per split by the visible context),
// sliding windows whose rings have wrapped, GQA 2 and 8, head_dim 256 and 512.
// K/V are rounded to bf16 for both sides, so the caches hold the same values; fp32 arithmetic with
// different sum orders: relative L2 <= 2e-6 and max error <= 1e-4 * rms(reference), as attention_test.cc,
// up to 1000 visible keys. Past that the bounds grow as sqrt(keys / 1000): with near-uniform weights
// the output (a mean of n random V rows) shrinks as 1/sqrt(n) while the rounding of the sums does not.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "gpu_test_util.h"

namespace ge {
namespace {

using gputest::GpuTest;

struct DecodeCase {
  int d, n_kv, group, window, capacity;
  float softcap = 0.0f;
  std::string name() const {
    return "d" + std::to_string(d) + "_kv" + std::to_string(n_kv) + "_g" + std::to_string(group) + "_w" +
           std::to_string(window) + "_cap" + std::to_string(capacity) + (softcap > 0 ? "_softcap" : "");
  }
};

constexpr double kRelTol = 2e-6, kMaxTol = 1e-4;

double key_factor(const DecodeCase& dc, int ctx) {
  const int vis = dc.window > 0 ? std::min(ctx, dc.window) : ctx;
  return std::max(1.0, std::sqrt(vis / 1000.0));
}

class CudaDecodeAttention : public GpuTest {
 protected:
  struct Caches {
    std::unique_ptr<KvCache> g, c;
  };

  KvLayerSpec spec_of(const DecodeCase& dc) const {
    KvLayerSpec s;
    s.n_kv_heads = dc.n_kv;
    s.head_dim = dc.d;
    s.sliding_window = dc.window;
    s.capacity = dc.capacity;
    return s;
  }

  AttentionParams params_of(const DecodeCase& dc) const {
    AttentionParams p;
    p.n_kv_heads = dc.n_kv;
    p.n_heads = dc.n_kv * dc.group;
    p.head_dim = dc.d;
    p.sliding_window = dc.window;
    p.scale = 1.0f / std::sqrt(static_cast<float>(dc.d));
    p.logit_softcap = dc.softcap;
    return p;
  }

  // One GPU and one CPU cache holding positions 0..ctx-1 (bf16-rounded K/V), stored in chunks no
  // longer than the ring so a wrapped ring ends with the newest keys on both sides.
  Caches filled(const DecodeCase& dc, int ctx) {
    Caches out;
    auto g = gpu_->create_kv_cache({spec_of(dc)});
    auto c = cpu_->create_kv_cache({spec_of(dc)});
    EXPECT_TRUE(g.is_ok() && c.is_ok()) << g.status().to_string();
    if (!g.is_ok() || !c.is_ok()) return out;
    out.g = std::move(g).value();
    out.c = std::move(c).value();
    const int64_t kv_row = int64_t{dc.n_kv} * dc.d;
    const int chunk = std::min(dc.capacity, 512);
    for (int p0 = 0; p0 < ctx; p0 += chunk) {
      const int n = std::min(chunk, ctx - p0);
      std::vector<int32_t> pos(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) pos[static_cast<size_t>(i)] = p0 + i;
      std::vector<float> k = normal(n * kv_row), v = normal(n * kv_row);
      for (float& f : k) f = round_bf16(f);
      for (float& f : v) f = round_bf16(f);
      DeviceBuffer gp = to_gpu(pos), gk = to_gpu(k), gv = to_gpu(v);
      DeviceBuffer cp = to_cpu(pos), ck = to_cpu(k), cv = to_cpu(v);
      gpu_->kv_store(*out.g, 0, gk.f32(), gv.f32(), n, gp.i32());
      cpu_->kv_store(*out.c, 0, ck.f32(), cv.f32(), n, cp.i32());
      Status st = gpu_->synchronize();
      EXPECT_TRUE(st.is_ok()) << st.to_string();
    }
    return out;
  }

  // n_q queries at positions ctx-n_q..ctx-1 over a cache filled to ctx: GPU vs CPU, and the GPU run
  // twice must agree bit for bit (the split layout and the combine order depend on nothing else).
  void run_single(const DecodeCase& dc, int ctx, int n_q) {
    SCOPED_TRACE(dc.name() + " ctx " + std::to_string(ctx) + " queries " + std::to_string(n_q));
    Caches cs = filled(dc, ctx);
    ASSERT_TRUE(cs.g && cs.c);
    const AttentionParams p = params_of(dc);
    const int64_t q_row = int64_t{p.n_heads} * dc.d;
    std::vector<int32_t> pos(static_cast<size_t>(n_q));
    for (int i = 0; i < n_q; ++i) pos[static_cast<size_t>(i)] = ctx - n_q + i;
    const std::vector<float> q = normal(n_q * q_row, 0.5f);
    DeviceBuffer gp = to_gpu(pos), gq = to_gpu(q), go = poisoned(n_q * q_row), go2 = poisoned(n_q * q_row);
    DeviceBuffer cp = to_cpu(pos), cq = to_cpu(q), co = to_cpu(std::vector<float>(static_cast<size_t>(n_q * q_row)));
    gpu_->attention(*cs.g, 0, gq.f32(), n_q, gp.i32(), p, go.f32());
    gpu_->attention(*cs.g, 0, gq.f32(), n_q, gp.i32(), p, go2.f32());
    cpu_->attention(*cs.c, 0, cq.f32(), n_q, cp.i32(), p, co.f32());
    Status st = gpu_->synchronize();
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    const std::vector<float> got = from_gpu(go, n_q * q_row), again = from_gpu(go2, n_q * q_row);
    const std::vector<float> want = from_cpu(co, n_q * q_row);
    EXPECT_LE(gputest::rel_l2(got, want), kRelTol * key_factor(dc, ctx));
    EXPECT_LE(gputest::max_err_over_rms(got, want), kMaxTol * key_factor(dc, ctx));
    size_t differ = 0;
    for (size_t i = 0; i < got.size(); ++i) differ += gputest::float_bits(got[i]) != gputest::float_bits(again[i]);
    EXPECT_EQ(differ, 0u) << "repeated decode attention is not deterministic";
  }

  // One decode query per sequence, each sequence at its own context, in one attention_batch call
  // (same cache layout: one launch) against the CPU per sequence.
  void run_batch(const DecodeCase& dc, const std::vector<int>& contexts) {
    SCOPED_TRACE(dc.name() + " batch of " + std::to_string(contexts.size()));
    const AttentionParams p = params_of(dc);
    const int64_t q_row = int64_t{p.n_heads} * dc.d;
    const int64_t T = static_cast<int64_t>(contexts.size());
    std::vector<Caches> seqs;
    std::vector<KvCache*> gcaches;
    std::vector<int32_t> pos;
    for (int ctx : contexts) {
      seqs.push_back(filled(dc, ctx));
      ASSERT_TRUE(seqs.back().g && seqs.back().c);
      gcaches.push_back(seqs.back().g.get());
      pos.push_back(ctx - 1);
    }
    const std::vector<float> q = normal(T * q_row, 0.5f);
    DeviceBuffer gp = to_gpu(pos), gq = to_gpu(q), go = poisoned(T * q_row);
    DeviceBuffer cp = to_cpu(pos), cq = to_cpu(q), co = to_cpu(std::vector<float>(static_cast<size_t>(T * q_row)));
    gpu_->attention_batch(gcaches, 0, gq.f32(), gp.i32(), p, go.f32());
    for (int64_t t = 0; t < T; ++t) {
      cpu_->attention(*seqs[static_cast<size_t>(t)].c, 0, cq.f32() + t * q_row, 1, cp.i32() + t, p,
                      co.f32() + t * q_row);
    }
    Status st = gpu_->synchronize();
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    const std::vector<float> got = from_gpu(go, T * q_row), want = from_cpu(co, T * q_row);
    for (int64_t t = 0; t < T; ++t) {
      SCOPED_TRACE("sequence " + std::to_string(t) + " at context " + std::to_string(contexts[static_cast<size_t>(t)]));
      const std::vector<float> g(got.begin() + t * q_row, got.begin() + (t + 1) * q_row);
      const std::vector<float> w(want.begin() + t * q_row, want.begin() + (t + 1) * q_row);
      const double f = key_factor(dc, contexts[static_cast<size_t>(t)]);
      EXPECT_LE(gputest::rel_l2(g, w), kRelTol * f);
      EXPECT_LE(gputest::max_err_over_rms(g, w), kMaxTol * f);
    }
  }
};

const std::vector<int> kContexts = {1, 7, 64, 1000, 5000};

TEST_F(CudaDecodeAttention, FullLayersOverContexts) {
  SCOPED_TRACE(trace());
  // Rings of 8192 keys: the launch plans splits for 8192, the kernel sizes them from the context.
  for (const DecodeCase& dc : {DecodeCase{512, 4, 8, 0, 8192}, DecodeCase{256, 2, 2, 0, 8192},
                               DecodeCase{512, 1, 2, 0, 8192}, DecodeCase{256, 1, 8, 0, 8192, 30.0f}}) {
    for (int ctx : kContexts) run_single(dc, ctx, 1);
  }
}

TEST_F(CudaDecodeAttention, SlidingLayersWrapTheRing) {
  SCOPED_TRACE(trace());
  // Window 1024 in a ring of 1088 (Gemma 4 31B's sliding shape and a GQA 8 one); 5000 keys wrap it
  // four times. A ring equal to the window, and a window smaller than a key tile.
  for (const DecodeCase& dc : {DecodeCase{256, 16, 2, 1024, 1088}, DecodeCase{512, 2, 8, 1024, 1088},
                               DecodeCase{256, 2, 8, 1000, 1000}, DecodeCase{256, 2, 2, 40, 72}}) {
    for (int ctx : kContexts) run_single(dc, ctx, 1);
  }
}

TEST_F(CudaDecodeAttention, SeveralQueriesPerCall) {
  SCOPED_TRACE(trace());
  // 2..4 consecutive queries go through the decode kernel too (its token dimension).
  for (int ctx : {7, 64, 1000, 5000}) {
    run_single({512, 4, 8, 0, 8192}, ctx, 4);
    run_single({256, 2, 2, 1024, 1088}, ctx, 3);
  }
}

TEST_F(CudaDecodeAttention, HeadDimsAndGroups) {
  SCOPED_TRACE(trace());
  // Every geometry the kernel takes: 1 or 2 16-byte pieces per lane, lanes per key below 32.
  for (int d : {8, 32, 64, 96, 128, 200, 256, 384, 512}) {
    for (int group : {1, 2, 3, 4, 8}) {
      for (int ctx : {7, 300}) run_single({d, 2, group, 0, 2048}, ctx, 1);
    }
  }
}

TEST_F(CudaDecodeAttention, BatchOfSequencesAtDifferentContexts) {
  SCOPED_TRACE(trace());
  const std::vector<int> contexts = {1, 7, 64, 1000, 5000, 3, 4097};
  run_batch({512, 4, 8, 0, 8192}, contexts);
  run_batch({256, 16, 2, 1024, 1088}, contexts);
  run_batch({256, 2, 8, 100, 164}, contexts);
}

}  // namespace
}  // namespace ge
