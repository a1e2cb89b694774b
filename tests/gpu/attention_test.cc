// kv_store + attention on the CUDA backend against the CPU reference over sequences of prefill
// chunks and decode steps: head_dim 32..512, GQA 1/2/4/8, full and sliding-window layers, ring
// wrap-around, chunk sizes at the tile edges (64 queries x 64 keys, 16 x 32 for SIMT) and split-K decode.
//
// The GPU cache holds bf16, the CPU cache fp32. Inputs K/V are rounded to bf16 first, so both
// caches hold the same values and the comparison isolates the kernels. Decode steps (<= 4 queries)
// and the SIMT prefill kernel compute in fp32:
//   relative L2 ≤ 2e-6 and max error ≤ 1e-4 · rms(reference)   (different sum orders)
// The tensor-core prefill kernel rounds Q and the softmax weights P to bf16; the test rounds Q for
// both sides (as it does K/V), leaving P's rounding (relative 2^-9):
//   relative L2 ≤ 1e-2 and max error ≤ 5e-2 · rms(reference)
// With unrounded Q (Bf16CacheMatchesFp32ReferenceWithinCachePrecision) the same bounds hold at scale 1/16.
// One test feeds raw fp32 K/V to show the cache-precision effect: relative L2 ≤ 1e-2.
// Decode steps of one query at head_dim 64..512 (powers of two) run the tensor-core decode kernel: Q
// and P enter its mma as three bf16 parts each (24 bits), so it is held to the fp32 bounds as well.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "gpu_test_util.h"

namespace ge {
namespace {

using gputest::GpuTest;

struct AttnCase {
  int d;
  int n_kv;
  int group;
  int window;  // 0 = full
  float scale;
  float softcap;
  std::vector<int> chunks;  // tokens per call, positions run on from 0
  std::string name() const {
    return "d" + std::to_string(d) + "_kv" + std::to_string(n_kv) + "_g" + std::to_string(group) + "_w" +
           std::to_string(window) + (softcap > 0 ? "_cap" : "");
  }
};

constexpr double kMmaRelTol = 1e-2, kMmaMaxTol = 5e-2;

bool uses_mma_prefill(int d, int n) {
  return n > 4 && (d == 32 || d == 64 || d == 128 || d == 256 || d == 512);
}

class CudaAttention : public GpuTest {
 protected:
  void run_case(const AttnCase& c, bool round_kv, double rel_tol, double max_tol) {
    SCOPED_TRACE(c.name());
    int total = 0, max_chunk = 0;
    for (int n : c.chunks) {
      total += n;
      max_chunk = std::max(max_chunk, n);
    }
    KvLayerSpec spec;
    spec.n_kv_heads = c.n_kv;
    spec.head_dim = c.d;
    spec.sliding_window = c.window;
    spec.capacity = c.window > 0 ? c.window + max_chunk : total;
    // Layer 1 is the one under test; layer 0 is a decoy that must stay untouched.
    Result<std::unique_ptr<KvCache>> gcache = gpu_->create_kv_cache({spec, spec});
    Result<std::unique_ptr<KvCache>> ccache = cpu_->create_kv_cache({spec, spec});
    ASSERT_TRUE(gcache.is_ok() && ccache.is_ok()) << gcache.status().to_string();
    AttentionParams p;
    p.n_kv_heads = c.n_kv;
    p.n_heads = c.n_kv * c.group;
    p.head_dim = c.d;
    p.sliding_window = c.window;
    p.scale = c.scale;
    p.logit_softcap = c.softcap;
    const int64_t kv_row = int64_t{c.n_kv} * c.d, q_row = int64_t{p.n_heads} * c.d;
    int pos0 = 0;
    for (int n : c.chunks) {
      SCOPED_TRACE("chunk of " + std::to_string(n) + " at position " + std::to_string(pos0));
      std::vector<int32_t> pos(n);
      for (int i = 0; i < n; ++i) pos[i] = pos0 + i;
      std::vector<float> k = normal(n * kv_row), v = normal(n * kv_row), q = normal(n * q_row, 0.5f);
      if (round_kv) {
        for (float& f : k) f = round_bf16(f);
        for (float& f : v) f = round_bf16(f);
        // The tensor-core kernel multiplies bf16 Q: give both sides the same Q so the comparison sees
        // the kernel (masks, ring, softmax) rather than Gemma's scale-1.0 logits amplifying Q rounding.
        if (uses_mma_prefill(c.d, n)) {
          for (float& f : q) f = round_bf16(f);
        }
      }
      DeviceBuffer gp = to_gpu(pos), gk = to_gpu(k), gv = to_gpu(v), gq = to_gpu(q), go = poisoned(n * q_row);
      DeviceBuffer cp = to_cpu(pos), ck = to_cpu(k), cv = to_cpu(v), cq = to_cpu(q);
      DeviceBuffer co = to_cpu(std::vector<float>(static_cast<size_t>(n * q_row)));
      gpu_->kv_store(**gcache, 1, gk.f32(), gv.f32(), n, gp.i32());
      cpu_->kv_store(**ccache, 1, ck.f32(), cv.f32(), n, cp.i32());
      gpu_->attention(**gcache, 1, gq.f32(), n, gp.i32(), p, go.f32());
      cpu_->attention(**ccache, 1, cq.f32(), n, cp.i32(), p, co.f32());
      Status st = gpu_->synchronize();
      ASSERT_TRUE(st.is_ok()) << st.to_string();
      const std::vector<float> got = from_gpu(go, n * q_row), want = from_cpu(co, n * q_row);
      const bool mma = uses_mma_prefill(c.d, n);
      EXPECT_LE(gputest::rel_l2(got, want), mma ? std::max(rel_tol, kMmaRelTol) : rel_tol);
      EXPECT_LE(gputest::max_err_over_rms(got, want), mma ? std::max(max_tol, kMmaMaxTol) : max_tol);
      pos0 += n;
    }
    // The decoy layer was never written: attention over it sees zeros, so the output is zero.
    std::vector<int32_t> last = {pos0 - 1};
    DeviceBuffer gp = to_gpu(last), gq = to_gpu(normal(q_row)), go = poisoned(q_row);
    gpu_->attention(**gcache, 0, gq.f32(), 1, gp.i32(), p, go.f32());
    ASSERT_TRUE(gpu_->synchronize().is_ok());
    for (float f : from_gpu(go, q_row)) ASSERT_EQ(f, 0.0f);
  }
};

TEST_F(CudaAttention, DecodeAndPrefillOverHeadDimsAndGroups) {
  SCOPED_TRACE(trace());
  const std::vector<int> seq = {17, 1, 1, 3, 16, 1, 33, 4, 5, 1, 15, 2};
  for (int d : {32, 64, 96, 128, 256, 512}) {  // 96: the SIMT prefill kernel
    for (int group : {1, 2, 4, 8}) {
      if (d == 512 && group == 1) continue;
      for (int window : {0, 20}) {
        run_case({d, group == 8 ? 1 : 2, group, window, 1.0f / std::sqrt(static_cast<float>(d)), 0.0f, seq}, true,
                 2e-6, 1e-4);
      }
    }
  }
}

TEST_F(CudaAttention, SlidingWindowEdgesAndRingWrap) {
  SCOPED_TRACE(trace());
  // Window 1 (each query sees itself), a window equal to a chunk, and many wraps of a small ring.
  run_case({64, 2, 2, 1, 0.125f, 0.0f, {5, 1, 1, 7, 1}}, true, 2e-6, 1e-4);
  run_case({256, 4, 2, 16, 0.0625f, 0.0f, {16, 16, 1, 16, 17, 1, 1}}, true, 2e-6, 1e-4);
  run_case({128, 1, 4, 8, 0.1f, 0.0f, {9, 1, 1, 1, 1, 1, 1, 1, 1, 1, 9, 9, 2}}, true, 2e-6, 1e-4);
  // Gemma 4 31B shapes: sliding layer (d 256, 16 KV heads, GQA 2) and full layer (d 512, 4 KV, GQA 8).
  run_case({256, 16, 2, 64, 1.0f, 0.0f, {70, 1, 1, 33}}, true, 2e-6, 1e-4);
  run_case({512, 4, 8, 0, 1.0f, 0.0f, {40, 1, 2}}, true, 2e-6, 1e-4);
  // Multi-tile prefill chunks (64-query tiles, 64-key tiles) whose keys wrap the ring mid-tile.
  run_case({256, 2, 2, 100, 0.0625f, 0.0f, {150, 130, 1, 140, 65}}, true, 2e-6, 1e-4);
  run_case({512, 1, 8, 0, 0.044f, 0.0f, {130, 70, 1, 64}}, true, 2e-6, 1e-4);
  run_case({128, 2, 4, 63, 0.09f, 50.0f, {200, 129}}, true, 2e-6, 1e-4);
}

TEST_F(CudaAttention, SoftcapAndLongContextSplitK) {
  SCOPED_TRACE(trace());
  run_case({128, 2, 4, 0, 0.09f, 30.0f, {21, 1, 3}}, true, 2e-6, 1e-4);
  // 1.5k cached keys: the decode kernel splits the keys across CTAs and combines the partials.
  run_case({128, 2, 2, 0, 0.09f, 0.0f, {700, 800, 1, 1, 2, 3, 4}}, true, 2e-6, 1e-4);
  run_case({256, 2, 4, 1024, 0.0625f, 0.0f, {500, 600, 1, 4, 1}}, true, 2e-6, 1e-4);
}

TEST_F(CudaAttention, DecodeAtKeyTileAndSplitEdges) {
  SCOPED_TRACE(trace());
  // Decode queries (chunks of 1) after prefills that leave 1, 15..17, 31..33, 127, 128 and 1025
  // visible keys: the tensor-core kernel's key tiles (16 keys at head_dim 512, 32 at 256), the 16-key
  // split granules, one split and many; GQA 2 and 8; a sliding window whose ring wraps mid-tile.
  for (const AttnCase& c : {AttnCase{512, 4, 8, 0, 1.0f, 0.0f, {1, 13, 1, 1, 1, 13, 1, 1, 1, 93, 1, 1, 896, 1}},
                            AttnCase{256, 16, 2, 0, 1.0f, 0.0f, {1, 13, 1, 1, 1, 13, 1, 1, 1, 93, 1, 1, 896, 1}},
                            AttnCase{512, 1, 8, 0, 0.044f, 0.0f, {126, 1, 1, 1}},
                            AttnCase{256, 2, 2, 0, 0.0625f, 50.0f, {126, 1, 1, 1}}}) {
    run_case(c, true, 2e-6, 1e-4);
  }
  // Window 1024 in a ring of 1024 + 300: decode steps after the ring has wrapped (slot order no
  // longer position order), at window edges.
  run_case({256, 16, 2, 1024, 1.0f, 0.0f, {300, 300, 300, 300, 1, 1, 299, 1, 1}}, true, 2e-6, 1e-4);
  run_case({512, 2, 8, 1024, 0.044f, 0.0f, {300, 300, 300, 300, 1, 1, 299, 1, 1}}, true, 2e-6, 1e-4);
}

TEST_F(CudaAttention, Bf16CacheMatchesFp32ReferenceWithinCachePrecision) {
  SCOPED_TRACE(trace());
  run_case({256, 2, 2, 0, 0.0625f, 0.0f, {9, 1, 1, 20, 1}}, false, 1e-2, 5e-2);
}

TEST_F(CudaAttention, WindowLargerThanRingIsReported) {
  KvLayerSpec spec{2, 64, 8, 16};  // window 16 but only 8 slots
  Result<std::unique_ptr<KvCache>> cache = gpu_->create_kv_cache({spec});
  ASSERT_TRUE(cache.is_ok());
  AttentionParams p;
  p.n_heads = 2;
  p.n_kv_heads = 2;
  p.head_dim = 64;
  p.sliding_window = 16;
  std::vector<int32_t> pos = {12};
  DeviceBuffer gp = to_gpu(pos), gq = to_gpu(normal(128)), go = poisoned(128);
  gpu_->attention(**cache, 0, gq.f32(), 1, gp.i32(), p, go.f32());
  Status st = gpu_->synchronize();
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("KV ring"), std::string::npos) << st.to_string();
  // Mismatched geometry is rejected on the host.
  p.head_dim = 32;
  gpu_->attention(**cache, 0, gq.f32(), 1, gp.i32(), p, go.f32());
  EXPECT_FALSE(gpu_->synchronize().is_ok());
  EXPECT_FALSE(gpu_->create_kv_cache({KvLayerSpec{0, 64, 8, 0}}).is_ok());
}

}  // namespace
}  // namespace ge
