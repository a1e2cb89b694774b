// A decode step (embed, norm, GEMVs, RoPE, kv_store, split-K attention, MLP) captured once as a
// CUDA graph and replayed with new token/position values in device memory must reproduce the eager
// results bit for bit: nothing in a step may depend on host-side state that changes per token.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <vector>

#include "gpu_test_util.h"

namespace ge {
namespace {

using gputest::GpuTest;

class CudaGraph : public GpuTest {};

TEST_F(CudaGraph, CapturedDecodeStepReplaysLikeEager) {
  SCOPED_TRACE(trace());
  const int64_t hidden = 256, heads = 4, n_kv = 2, d = 64, vocab = 50, ffn = 512;
  auto pack = [&](QuantType type, int64_t rows, int64_t cols, int64_t group, int zero, gputest::HostWeight* keep) {
    *keep = gputest::random_weight(type, rows, cols, rng_, group, zero);
    Result<std::unique_ptr<PackedWeight>> w = gpu_->pack_weight(keep->view);
    EXPECT_TRUE(w.is_ok()) << w.status().to_string();
    return std::move(w).value();
  };
  gputest::HostWeight h_emb, h_q, h_k, h_v, h_o, h_gate, h_down;
  auto emb = pack(QuantType::kQ8_0, vocab, hidden, 0, 0, &h_emb);
  auto wq = pack(QuantType::kQ4_0, heads * d, hidden, 0, 0, &h_q);
  auto wk = pack(QuantType::kInt4Group, n_kv * d, hidden, 32, 1, &h_k);
  auto wv = pack(QuantType::kInt8Group, n_kv * d, hidden, 64, 1, &h_v);
  auto wo = pack(QuantType::kQ6_K, hidden, heads * d, 0, 0, &h_o);
  auto wgate = pack(QuantType::kInt4Group, ffn, hidden, 128, 0, &h_gate);
  auto wdown = pack(QuantType::kQ4_0, hidden, ffn, 0, 0, &h_down);
  std::vector<float> inv(d / 2);
  for (int64_t i = 0; i < d / 2; ++i) inv[i] = std::pow(1e4f, -2.0f * i / d);
  DeviceBuffer g_inv = to_gpu(inv), g_norm = to_gpu(normal(hidden));
  DeviceBuffer tok = to_gpu(std::vector<int32_t>{0}), pos = to_gpu(std::vector<int32_t>{0});
  DeviceBuffer x = poisoned(hidden), h = poisoned(hidden), q = poisoned(heads * d), k = poisoned(n_kv * d);
  DeviceBuffer v = poisoned(n_kv * d), att = poisoned(heads * d), o = poisoned(hidden);
  DeviceBuffer gate = poisoned(ffn), act = poisoned(ffn), down = poisoned(hidden);
  AttentionParams p;
  p.n_heads = heads;
  p.n_kv_heads = n_kv;
  p.head_dim = d;
  p.scale = 0.125f;
  const int steps = 40;
  // Full attention over a 1024-slot ring: the decode kernel runs several key splits.
  KvLayerSpec spec{static_cast<int32_t>(n_kv), static_cast<int32_t>(d), 1024, 0};

  auto step = [&](KvCache& cache) {
    gpu_->embed(tok.i32(), 1, *emb, 16.0f, x.f32());
    gpu_->rms_norm(x.f32(), g_norm.f32(), 1, hidden, 1e-6f, h.f32());
    gpu_->matmul(h.f32(), 1, *wq, q.f32());
    gpu_->matmul(h.f32(), 1, *wk, k.f32());
    gpu_->matmul(h.f32(), 1, *wv, v.f32());
    gpu_->rope(q.f32(), 1, heads, d, pos.i32(), g_inv.f32());
    gpu_->rope(k.f32(), 1, n_kv, d, pos.i32(), g_inv.f32());
    gpu_->kv_store(cache, 0, k.f32(), v.f32(), 1, pos.i32());
    gpu_->attention(cache, 0, q.f32(), 1, pos.i32(), p, att.f32());
    gpu_->matmul(att.f32(), 1, *wo, o.f32());
    gpu_->add_rms_norm(x.f32(), o.f32(), g_norm.f32(), 1, hidden, 1e-6f);
    gpu_->matmul(x.f32(), 1, *wgate, gate.f32());
    gpu_->gelu_tanh_mul(gate.f32(), gate.f32(), ffn, act.f32());
    gpu_->matmul(act.f32(), 1, *wdown, down.f32());
    gpu_->softcap(down.f32(), hidden, 30.0f);
  };
  std::vector<int32_t> tokens(steps);
  std::uniform_int_distribution<int32_t> tdist(0, vocab - 1);
  for (auto& t : tokens) t = tdist(rng_);

  // Eager.
  std::vector<std::vector<float>> eager;
  {
    Result<std::unique_ptr<KvCache>> cache = gpu_->create_kv_cache({spec});
    ASSERT_TRUE(cache.is_ok());
    for (int s = 0; s < steps; ++s) {
      gpu_->upload(tok.data(), &tokens[s], 4);
      gpu_->upload(pos.data(), &s, 4);
      step(**cache);
      eager.push_back(from_gpu(down, hidden));
    }
    ASSERT_TRUE(gpu_->synchronize().is_ok());
  }
  // Captured once, replayed per token.
  Result<std::unique_ptr<KvCache>> cache = gpu_->create_kv_cache({spec});
  ASSERT_TRUE(cache.is_ok());
  cudaStream_t stream = static_cast<cudaStream_t>(cuda_->stream());
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  step(**cache);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ASSERT_TRUE(gpu_->synchronize().is_ok());
  for (int s = 0; s < steps; ++s) {
    gpu_->upload(tok.data(), &tokens[s], 4);
    gpu_->upload(pos.data(), &s, 4);
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    const std::vector<float> got = from_gpu(down, hidden);
    for (int64_t i = 0; i < hidden; ++i) {
      ASSERT_EQ(gputest::float_bits(got[i]), gputest::float_bits(eager[s][i])) << "step " << s << " element " << i;
    }
  }
  ASSERT_TRUE(gpu_->synchronize().is_ok());
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

}  // namespace
}  // namespace ge
