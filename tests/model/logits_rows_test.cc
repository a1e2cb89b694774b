// The bounded logits buffer of GemmaModel: LogitsMode::kAll over more rows than one LM-head pass
// holds (set_logits_rows) gives the same logits as one pass, alone and mixed with kLast / kNone chunks
// in forward_batch; chunked prefill equals one pass; the default chunk on a host backend; the buffer
// size rule and its argument checks. CPU backends on the tiny golden models.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/checkpoint.h"
#include "model/gemma_model.h"

namespace ge {
namespace {

const std::string kGolden = std::string(GE_TEST_DATA_DIR) + "/golden/";

struct Param {
  std::string model;
  std::string backend;
};

struct Loaded {
  std::unique_ptr<Checkpoint> checkpoint;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<GemmaModel> model;
};

Loaded load(const Param& p, int32_t max_chunk) {
  Loaded l;
  auto cp = Checkpoint::open(kGolden + p.model);
  EXPECT_TRUE(cp.is_ok()) << cp.status().to_string();
  if (!cp.is_ok()) return l;
  l.checkpoint = std::move(cp).value();
  auto b = create_backend(p.backend, 2);
  EXPECT_TRUE(b.is_ok()) << b.status().to_string();
  if (!b.is_ok()) return l;
  l.backend = std::move(b).value();
  auto m = GemmaModel::create(l.checkpoint->config(), l.checkpoint->weights(), *l.backend, max_chunk);
  EXPECT_TRUE(m.is_ok()) << m.status().to_string();
  if (m.is_ok()) l.model = std::move(m).value();
  return l;
}

std::vector<int32_t> prompt(int n, int32_t vocab, int salt) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[static_cast<size_t>(i)] = (5 + 11 * salt + 37 * i) % vocab;
  return t;
}

// Relative L2 distance of two logits blocks.
double rel_l2(const float* a, const float* b, size_t n) {
  double e2 = 0, r2 = 0;
  for (size_t i = 0; i < n; ++i) {
    e2 += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    r2 += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(e2 / std::max(r2, 1e-30));
}

// cpu-ref computes every row on its own, so a different row blocking gives the same bits; the
// optimised cpu backend may block rows differently (1e-5 relative, far below a wrong-row error).
void expect_same(const std::vector<float>& got, const std::vector<float>& want, const std::string& backend) {
  ASSERT_EQ(got.size(), want.size());
  if (backend == "cpu-ref") {
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)));
  } else {
    EXPECT_LE(rel_l2(got.data(), want.data(), got.size()), 1e-5);
  }
}

class LogitsRows : public ::testing::TestWithParam<Param> {};

TEST_P(LogitsRows, AllRowsInSeveralHeadPassesEqualOnePass) {
  Loaded one = load(GetParam(), 64), split = load(GetParam(), 64);
  ASSERT_TRUE(one.model && split.model);
  ASSERT_EQ(one.model->logits_rows(), 64);  // a 512-token vocabulary: every row fits
  ASSERT_TRUE(split.model->set_logits_rows(5).is_ok());
  ASSERT_EQ(split.model->logits_rows(), 5);
  const int32_t V = one.checkpoint->config().vocab_size;
  const std::vector<int32_t> toks = prompt(23, V, 1);  // 23 rows: passes of 5, 5, 5, 5, 3
  std::vector<float> want(toks.size() * static_cast<size_t>(V)), got(want.size(), -1.0f);
  auto c1 = one.model->create_kv_cache(64);
  auto c2 = split.model->create_kv_cache(64);
  ASSERT_TRUE(c1.is_ok() && c2.is_ok());
  ASSERT_TRUE(one.model->forward(**c1, toks.data(), 23, 0, LogitsMode::kAll, want.data()).is_ok());
  ASSERT_TRUE(split.model->forward(**c2, toks.data(), 23, 0, LogitsMode::kAll, got.data()).is_ok());
  expect_same(got, want, GetParam().backend);
  // The rows must differ from one another (a pass writing the wrong block would go unnoticed otherwise).
  EXPECT_GT(rel_l2(want.data(), want.data() + static_cast<size_t>(V) * 22, static_cast<size_t>(V)), 1e-3);
}

TEST_P(LogitsRows, MixedModesInOneBatchSplitAcrossPasses) {
  Loaded one = load(GetParam(), 64), split = load(GetParam(), 64);
  ASSERT_TRUE(one.model && split.model);
  ASSERT_TRUE(split.model->set_logits_rows(3).is_ok());
  const int32_t V = one.checkpoint->config().vocab_size;
  // Rows wanted: 4 (kAll) + 0 (kNone) + 1 (kLast) + 2 (kAll) + 1 (kLast) = 8, in passes of 3, 3, 2.
  const int n[5] = {4, 6, 5, 2, 7};
  const LogitsMode mode[5] = {LogitsMode::kAll, LogitsMode::kNone, LogitsMode::kLast, LogitsMode::kAll, LogitsMode::kLast};
  std::vector<std::vector<int32_t>> toks;
  for (int s = 0; s < 5; ++s) toks.push_back(prompt(n[s], V, s + 2));
  auto run = [&](GemmaModel& m, std::vector<float>& out) {
    std::vector<std::unique_ptr<KvCache>> caches;
    std::vector<SequenceChunk> chunks;
    for (int s = 0; s < 5; ++s) {
      auto c = m.create_kv_cache(32);
      ASSERT_TRUE(c.is_ok());
      caches.push_back(std::move(c).value());
      chunks.push_back({caches.back().get(), toks[static_cast<size_t>(s)].data(), n[s], 0, mode[s]});
    }
    out.assign(static_cast<size_t>(8) * V, -1.0f);
    Status st = m.forward_batch(chunks, out.data());
    ASSERT_TRUE(st.is_ok()) << st.to_string();
  };
  std::vector<float> want, got;
  run(*one.model, want);
  run(*split.model, got);
  expect_same(got, want, GetParam().backend);
}

TEST_P(LogitsRows, ChunkedPrefillEqualsOnePass) {
  // 40 tokens in one pass vs passes of at most 6 (the sliding window of these models is 8, so the
  // ring wraps several times); last-token logits and then one decode step.
  Loaded whole = load(GetParam(), 64), chunked = load(GetParam(), 6);
  ASSERT_TRUE(whole.model && chunked.model);
  const int32_t V = whole.checkpoint->config().vocab_size;
  const std::vector<int32_t> toks = prompt(40, V, 9);
  auto cw = whole.model->create_kv_cache(64);
  auto cc = chunked.model->create_kv_cache(64);
  ASSERT_TRUE(cw.is_ok() && cc.is_ok());
  std::vector<float> want(static_cast<size_t>(V)), got(static_cast<size_t>(V));
  ASSERT_TRUE(whole.model->forward(**cw, toks.data(), 40, 0, LogitsMode::kLast, want.data()).is_ok());
  for (int32_t p = 0; p < 40; p += 6) {
    const int32_t m = std::min(6, 40 - p);
    ASSERT_TRUE(chunked.model
                    ->forward(**cc, toks.data() + p, m, p, p + m == 40 ? LogitsMode::kLast : LogitsMode::kNone,
                              got.data())
                    .is_ok());
  }
  EXPECT_LE(rel_l2(got.data(), want.data(), want.size()), 1e-5);
  const int32_t next = static_cast<int32_t>(std::max_element(want.begin(), want.end()) - want.begin());
  ASSERT_TRUE(whole.model->forward(**cw, &next, 1, 40, LogitsMode::kLast, want.data()).is_ok());
  ASSERT_TRUE(chunked.model->forward(**cc, &next, 1, 40, LogitsMode::kLast, got.data()).is_ok());
  EXPECT_LE(rel_l2(got.data(), want.data(), want.size()), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Models, LogitsRows,
                         ::testing::Values(Param{"gemma3_tiny", "cpu-ref"}, Param{"gemma4_tiny", "cpu-ref"},
                                           Param{"gemma4_tiny_nokeqv", "cpu-ref"}, Param{"gemma4_tiny", "cpu"}));

TEST(LogitsRowsRule, BufferRowsFollowTheByteBoundAndChecksArguments) {
  Loaded l = load(Param{"gemma4_tiny", "cpu-ref"}, 16);
  ASSERT_TRUE(l.model);
  const size_t V = static_cast<size_t>(l.checkpoint->config().vocab_size);
  const size_t fit = std::max<size_t>(1, GemmaModel::kLogitsBufferBytes / (V * sizeof(float)));
  EXPECT_EQ(static_cast<size_t>(l.model->logits_rows()), std::min<size_t>(fit, 16));
  // For the 262,144-token vocabulary of Gemma 3 / 4 the buffer holds 128 rows whatever the chunk.
  EXPECT_EQ(GemmaModel::kLogitsBufferBytes / (size_t{262144} * sizeof(float)), 128u);
  const size_t before = l.model->workspace_bytes();
  ASSERT_TRUE(l.model->set_logits_rows(1).is_ok());
  EXPECT_EQ(before - l.model->workspace_bytes(), 15 * V * sizeof(float));
  for (int32_t bad : {0, -1, 17}) {
    Status s = l.model->set_logits_rows(bad);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("set_logits_rows"), std::string::npos) << s.message();
  }
  EXPECT_EQ(l.model->logits_rows(), 1);  // a rejected call leaves the buffer alone
}

TEST(LogitsRowsRule, ZeroChunkChoosesTheHostDefault) {
  Loaded l = load(Param{"gemma3_tiny", "cpu-ref"}, 0);
  ASSERT_TRUE(l.model);
  EXPECT_EQ(l.model->max_chunk(), GemmaModel::kHostDefaultChunk);
  auto cp = Checkpoint::open(kGolden + "gemma3_tiny");
  ASSERT_TRUE(cp.is_ok());
  auto b = create_backend("cpu-ref", 1);
  ASSERT_TRUE(b.is_ok());
  auto m = GemmaModel::create((*cp)->config(), (*cp)->weights(), **b, -1);
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ge
