// The tensor-core prefill attention kernel (chunks of more than 4 queries) against the CPU reference at
// its tile edges: a CTA holds 128 query rows (64 for head_dim 512) shared by up to 8 query heads of one
// GQA group, so chunks of 16 / 32 / 64 / 128 queries per CTA, 64-key tiles (32 for head_dim 512) in two
// cp.async stages; head_dim 512 splits each tile's keys between two warps that trade P.
//
// Inputs K/V and Q are rounded to bf16 for both sides (the GPU cache and the kernel's operands are bf16),
// leaving the kernel's bf16 rounding of the softmax weights P (relative 2^-9):
//   relative L2 <= 1e-2 and max error <= 5e-2 * rms(reference).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "gpu_test_util.h"

namespace ge {
namespace {

using gputest::GpuTest;

constexpr double kRelTol = 1e-2, kMaxTol = 5e-2;

struct PrefillCase {
  int d;
  int n_kv;
  int group;
  int window;  // 0 = full
  float softcap;
  std::vector<int> chunks;  // tokens per call, positions run on from 0; every chunk is > 4 tokens
  int capacity = 0;         // ring slots; 0 = window + largest chunk (sliding) or all tokens (full)
  std::string name() const {
    return "d" + std::to_string(d) + "_kv" + std::to_string(n_kv) + "_g" + std::to_string(group) + "_w" +
           std::to_string(window) + (softcap > 0 ? "_cap" : "");
  }
};

class CudaPrefillAttention : public GpuTest {
 protected:
  void run_case(const PrefillCase& c) {
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
    spec.capacity = c.capacity > 0 ? c.capacity : c.window > 0 ? c.window + max_chunk : total;
    Result<std::unique_ptr<KvCache>> gcache = gpu_->create_kv_cache({spec});
    Result<std::unique_ptr<KvCache>> ccache = cpu_->create_kv_cache({spec});
    ASSERT_TRUE(gcache.is_ok() && ccache.is_ok()) << gcache.status().to_string();
    AttentionParams p;
    p.n_kv_heads = c.n_kv;
    p.n_heads = c.n_kv * c.group;
    p.head_dim = c.d;
    p.sliding_window = c.window;
    p.scale = 1.0f / std::sqrt(static_cast<float>(c.d));
    p.logit_softcap = c.softcap;
    const int64_t kv_row = int64_t{c.n_kv} * c.d, q_row = int64_t{p.n_heads} * c.d;
    int pos0 = 0;
    for (int n : c.chunks) {
      SCOPED_TRACE("chunk of " + std::to_string(n) + " at position " + std::to_string(pos0));
      ASSERT_GT(n, 4) << "decode-sized chunks take another kernel";
      std::vector<int32_t> pos(n);
      for (int i = 0; i < n; ++i) pos[i] = pos0 + i;
      std::vector<float> k = normal(n * kv_row), v = normal(n * kv_row), q = normal(n * q_row, 2.0f);
      for (std::vector<float>* x : {&k, &v, &q}) {
        for (float& f : *x) f = round_bf16(f);
      }
      DeviceBuffer gp = to_gpu(pos), gk = to_gpu(k), gv = to_gpu(v), gq = to_gpu(q), go = poisoned(n * q_row);
      DeviceBuffer cp = to_cpu(pos), ck = to_cpu(k), cv = to_cpu(v), cq = to_cpu(q);
      DeviceBuffer co = to_cpu(std::vector<float>(static_cast<size_t>(n * q_row)));
      gpu_->kv_store(**gcache, 0, gk.f32(), gv.f32(), n, gp.i32());
      cpu_->kv_store(**ccache, 0, ck.f32(), cv.f32(), n, cp.i32());
      gpu_->attention(**gcache, 0, gq.f32(), n, gp.i32(), p, go.f32());
      cpu_->attention(**ccache, 0, cq.f32(), n, cp.i32(), p, co.f32());
      Status st = gpu_->synchronize();
      ASSERT_TRUE(st.is_ok()) << st.to_string();
      const std::vector<float> got = from_gpu(go, n * q_row), want = from_cpu(co, n * q_row);
      EXPECT_LE(gputest::rel_l2(got, want), kRelTol);
      EXPECT_LE(gputest::max_err_over_rms(got, want), kMaxTol);
      pos0 += n;
    }
  }
};

// One chunk whose length is no multiple of any tile (150 = 128 + 22 = 2 * 64 + 22 = 9 * 16 + 6), so
// the last CTA of every head grouping is partial; windows smaller and larger than the chunk.
TEST_F(CudaPrefillAttention, HeadDimsGroupsAndWindows) {
  SCOPED_TRACE(trace());
  for (int d : {64, 128, 256, 512}) {
    for (int group : {1, 2, 8}) {
      for (int window : {0, 37, 1000}) {
        run_case({d, group == 8 ? 1 : 2, group, window, 0.0f, {150}});
      }
    }
  }
}

// Key ranges that start and end inside tiles, chunks at and around the CTA sizes.
TEST_F(CudaPrefillAttention, ChunkSizesAroundTheTiles) {
  SCOPED_TRACE(trace());
  run_case({256, 16, 2, 1024, 0.0f, {63, 64, 65, 127, 129}});
  run_case({512, 4, 8, 0, 0.0f, {15, 16, 17, 33, 97}});
  run_case({128, 2, 4, 0, 0.0f, {31, 32, 5, 200}});
  run_case({64, 3, 1, 0, 0.0f, {255, 6}});
}

// Chunked prefill over a ring smaller than the sequence: keys wrap the ring mid-tile, many times.
TEST_F(CudaPrefillAttention, RingWrapAcrossChunks) {
  SCOPED_TRACE(trace());
  run_case({256, 2, 2, 40, 0.0f, {70, 33, 90, 17, 129}});
  run_case({512, 1, 8, 50, 0.0f, {64, 80, 31, 100}});
  run_case({128, 2, 1, 100, 0.0f, {150, 130, 140, 65}, 100 + 150});
  run_case({64, 2, 8, 1, 0.0f, {9, 70, 5}});  // window 1: each query sees itself only
}

TEST_F(CudaPrefillAttention, Softcap) {
  SCOPED_TRACE(trace());
  run_case({256, 2, 2, 0, 30.0f, {90}});
  run_case({512, 1, 8, 60, 50.0f, {100, 20}});
}

// A negative position in a prefill chunk is reported, and the other rows are still written.
TEST_F(CudaPrefillAttention, NegativePositionIsReported) {
  for (int d : {256, 512}) {
    SCOPED_TRACE("d" + std::to_string(d));
    KvLayerSpec spec{1, d, 64, 0};
    Result<std::unique_ptr<KvCache>> cache = gpu_->create_kv_cache({spec});
    ASSERT_TRUE(cache.is_ok());
    AttentionParams p;
    p.n_heads = 8;
    p.n_kv_heads = 1;
    p.head_dim = d;
    p.scale = 0.0625f;
    const int n = 40;
    std::vector<int32_t> pos(n);
    for (int i = 0; i < n; ++i) pos[i] = i;
    DeviceBuffer gp = to_gpu(pos), gk = to_gpu(normal(n * d)), gv = to_gpu(normal(n * d));
    gpu_->kv_store(**cache, 0, gk.f32(), gv.f32(), n, gp.i32());
    ASSERT_TRUE(gpu_->synchronize().is_ok());
    pos[17] = -3;
    DeviceBuffer bad = to_gpu(pos), gq = to_gpu(normal(n * 8 * d)), go = poisoned(n * 8 * d);
    gpu_->attention(**cache, 0, gq.f32(), n, bad.i32(), p, go.f32());
    Status st = gpu_->synchronize();
    EXPECT_FALSE(st.is_ok());
    EXPECT_NE(st.message().find("negative token position"), std::string::npos) << st.to_string();
    const std::vector<float> out = from_gpu(go, n * 8 * d);
    for (int t = 0; t < n; ++t) {
      for (int i = 0; i < 8 * d; ++i) {
        const float f = out[static_cast<size_t>(t) * 8 * d + i];
        ASSERT_TRUE(t == 17 ? f == 0.0f : std::isfinite(f)) << "token " << t << " element " << i;
      }
    }
  }
}

}  // namespace
}  // namespace ge
