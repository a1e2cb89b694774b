// GemmaModel::forward_batch on the CUDA backend with several decoding sequences (the batch ops: one
// kv_store / attention launch for all of them) against each sequence run alone through forward():
// the tiny golden models, sequences at different positions, a prefill chunk in the same batch.
// The paths differ only in rounding: the attention prologue (batched norms + RoPE vs the fused kernel,
// a few ulp apart, then bf16 K/V) and the matmul row count (M = 1 vs M = 6..15 kernels). Both are fed
// the same tokens (the single-sequence path's greedy choice); logits agree to 1e-3 relative, where a
// sequence reading another's cache or a wrong position differs by O(1). The same batches with the
// batch ops switched off (set_decode_batching(false): same matmuls, per-sequence attention) agree
// to 1e-3 as well; the test prints both worst differences.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/checkpoint.h"
#include "model/gemma_model.h"

namespace ge {
namespace {

const std::string kGolden = std::string(GE_TEST_DATA_DIR) + "/golden/";

class CudaBatchDecode : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaBatchDecode, BatchedStepsEqualEachSequenceAlone) {
  auto cp = Checkpoint::open(kGolden + GetParam());
  ASSERT_TRUE(cp.is_ok()) << cp.status().to_string();
  auto b = create_backend("cuda", 1);
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  auto m = GemmaModel::create((*cp)->config(), (*cp)->weights(), **b, 64);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  GemmaModel& model = **m;
  const int32_t V = (*cp)->config().vocab_size;
  const int n_seqs = 6;

  // Sequence s: a prompt of 3 + 5 s tokens, in a batched cache and in a cache of its own.
  std::vector<std::unique_ptr<KvCache>> batched, alone, unbatched;
  std::vector<std::vector<int32_t>> prompt(n_seqs);
  std::vector<int32_t> pos(n_seqs), next(n_seqs);
  std::vector<float> logits(static_cast<size_t>(V));
  for (int s = 0; s < n_seqs; ++s) {
    for (int t = 0; t < 3 + 5 * s; ++t) prompt[s].push_back((7 + 13 * s + 31 * t) % V);
    for (auto* v : {&batched, &alone, &unbatched}) {
      auto c = model.create_kv_cache(128);
      ASSERT_TRUE(c.is_ok()) << c.status().to_string();
      v->push_back(std::move(c).value());
    }
    const int32_t n = static_cast<int32_t>(prompt[s].size());
    ASSERT_TRUE(model.forward(*batched[s], prompt[s].data(), n, 0, LogitsMode::kNone, nullptr).is_ok());
    ASSERT_TRUE(model.forward(*unbatched[s], prompt[s].data(), n, 0, LogitsMode::kNone, nullptr).is_ok());
    ASSERT_TRUE(model.forward(*alone[s], prompt[s].data(), n, 0, LogitsMode::kLast, logits.data()).is_ok());
    next[s] = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    pos[s] = n;
  }
  // The last step also carries a 9-token prefill chunk of a seventh sequence after the decode rows.
  auto extra = model.create_kv_cache(128);
  auto extra_unbatched = model.create_kv_cache(128);
  ASSERT_TRUE(extra.is_ok() && extra_unbatched.is_ok());
  std::vector<int32_t> extra_prompt(9);
  for (int t = 0; t < 9; ++t) extra_prompt[t] = (3 + 17 * t) % V;

  auto rel_l2 = [V](const float* a, const float* b) {
    double e2 = 0, r2 = 0;
    for (int32_t i = 0; i < V; ++i) {
      e2 += (a[i] - b[i]) * (a[i] - b[i]);
      r2 += b[i] * b[i];
    }
    return std::sqrt(e2 / r2);
  };
  double worst = 0, worst_unbatched = 0;
  for (int step = 0; step < 5; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    const bool with_prefill = step == 4;
    std::vector<SequenceChunk> chunks;
    for (int s = 0; s < n_seqs; ++s) chunks.push_back({batched[s].get(), &next[s], 1, pos[s], LogitsMode::kLast});
    if (with_prefill) chunks.push_back({extra->get(), extra_prompt.data(), 9, 0, LogitsMode::kLast});
    const size_t rows = chunks.size();
    std::vector<float> got(rows * static_cast<size_t>(V)), got_unbatched(rows * static_cast<size_t>(V));
    Status st = model.forward_batch(chunks, got.data());
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    std::vector<SequenceChunk> chunks_unbatched = chunks;
    for (int s = 0; s < n_seqs; ++s) chunks_unbatched[s].cache = unbatched[s].get();
    if (with_prefill) chunks_unbatched[n_seqs].cache = extra_unbatched->get();
    model.set_decode_batching(false);
    st = model.forward_batch(chunks_unbatched, got_unbatched.data());
    model.set_decode_batching(true);
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    for (size_t r = 0; r < rows; ++r) {
      const double rel = rel_l2(got.data() + r * V, got_unbatched.data() + r * V);
      worst_unbatched = std::max(worst_unbatched, rel);
      EXPECT_LE(rel, 1e-3) << "row " << r << " against the per-sequence attention";
    }
    for (int s = 0; s < n_seqs; ++s) {
      ASSERT_TRUE(model.forward(*alone[s], &next[s], 1, pos[s], LogitsMode::kLast, logits.data()).is_ok());
      const float* g = got.data() + static_cast<size_t>(s) * V;
      double e2 = 0, r2 = 0;
      for (int32_t i = 0; i < V; ++i) {
        e2 += (g[i] - logits[i]) * (g[i] - logits[i]);
        r2 += logits[i] * logits[i];
      }
      const double rel = std::sqrt(e2 / r2);
      worst = std::max(worst, rel);
      EXPECT_LE(rel, 1e-3) << "sequence " << s;
      next[s] = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      ++pos[s];
    }
    if (with_prefill) {
      auto c = model.create_kv_cache(128);
      ASSERT_TRUE(c.is_ok());
      ASSERT_TRUE(model.forward(**c, extra_prompt.data(), 9, 0, LogitsMode::kLast, logits.data()).is_ok());
      const float* g = got.data() + static_cast<size_t>(n_seqs) * V;
      double e2 = 0, r2 = 0;
      for (int32_t i = 0; i < V; ++i) {
        e2 += (g[i] - logits[i]) * (g[i] - logits[i]);
        r2 += logits[i] * logits[i];
      }
      const double rel = std::sqrt(e2 / r2);
      worst = std::max(worst, rel);
      EXPECT_LE(rel, 1e-3) << "prefill chunk";
    }
  }
  std::printf("%s: worst relative L2 of the logits, batched vs alone %.3g, vs batch ops off %.3g\n",
              GetParam().c_str(), worst, worst_unbatched);
}

INSTANTIATE_TEST_SUITE_P(Models, CudaBatchDecode, ::testing::Values("gemma3_tiny", "gemma4_tiny", "gemma4_tiny_nokeqv"));

}  // namespace
}  // namespace ge
