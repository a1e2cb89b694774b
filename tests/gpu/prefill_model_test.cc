// Prefill settings of GemmaModel on the CUDA backend: max_chunk 0 picks the device default (2,048
// tokens when memory allows) with a logits buffer bounded by bytes, not by chunk x vocab; LogitsMode::kAll
// over more rows than one LM-head pass holds equals one pass (each row on its own: a block written to
// the wrong rows differs by O(1)). The LM head of a short pass runs on the GEMV path (M <= 16) and of
// a long one on the bf16 GEMM, so rows agree to bf16 rounding (relative L2 <= 1e-2), not bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/checkpoint.h"
#include "model/gemma_model.h"

namespace ge {
namespace {

const std::string kGolden = std::string(GE_TEST_DATA_DIR) + "/golden/";

double rel_l2(const float* a, const float* b, size_t n) {
  double e2 = 0, r2 = 0;
  for (size_t i = 0; i < n; ++i) {
    e2 += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    r2 += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(e2 / std::max(r2, 1e-30));
}

TEST(CudaPrefillModel, DefaultChunkAndSplitLogitsHead) {
  auto cp = Checkpoint::open(kGolden + "gemma4_tiny");
  ASSERT_TRUE(cp.is_ok()) << cp.status().to_string();
  auto b = create_backend("cuda", 1);
  ASSERT_TRUE(b.is_ok()) << "the gpu tests need a CUDA device: " << b.status().to_string();
  auto one = GemmaModel::create((*cp)->config(), (*cp)->weights(), **b, 0);
  ASSERT_TRUE(one.is_ok()) << one.status().to_string();
  EXPECT_EQ((*one)->max_chunk(), GemmaModel::kDeviceDefaultChunk);
  const size_t V = static_cast<size_t>((*cp)->config().vocab_size);
  const size_t fit = GemmaModel::kLogitsBufferBytes / (V * sizeof(float));
  EXPECT_EQ(static_cast<size_t>((*one)->logits_rows()), std::min<size_t>(fit, GemmaModel::kDeviceDefaultChunk));

  auto split = GemmaModel::create((*cp)->config(), (*cp)->weights(), **b, 64);
  ASSERT_TRUE(split.is_ok()) << split.status().to_string();
  ASSERT_TRUE((*split)->set_logits_rows(20).is_ok());  // 50 rows: passes of 20 (GEMM), 20, 10 (GEMV)
  const int n = 50;
  std::vector<int32_t> toks(n);
  for (int i = 0; i < n; ++i) toks[static_cast<size_t>(i)] = static_cast<int32_t>((3 + 29 * i) % V);
  std::vector<float> want(n * V), got(n * V, -1.0f);
  auto c1 = (*one)->create_kv_cache(64);
  auto c2 = (*split)->create_kv_cache(64);
  ASSERT_TRUE(c1.is_ok() && c2.is_ok());
  Status s1 = (*one)->forward(**c1, toks.data(), n, 0, LogitsMode::kAll, want.data());
  Status s2 = (*split)->forward(**c2, toks.data(), n, 0, LogitsMode::kAll, got.data());
  ASSERT_TRUE(s1.is_ok()) << s1.to_string();
  ASSERT_TRUE(s2.is_ok()) << s2.to_string();
  for (int t = 0; t < n; ++t) {
    const size_t o = static_cast<size_t>(t) * V;
    EXPECT_LE(rel_l2(got.data() + o, want.data() + o, V), 1e-2) << "row " << t;
  }
  // Neighbouring rows differ by far more than the tolerance, so a shifted block cannot pass.
  EXPECT_GT(rel_l2(want.data(), want.data() + V, V), 0.05);
}

}  // namespace
}  // namespace ge
