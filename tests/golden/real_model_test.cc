// The real default model (Gemma 3 270M Q4_K_M GGUF) against a transformers reference built from the
// same GGUF (tests/data/real/gemma3_270m_reference.json, scripts/gen_real_model_reference.py):
// teacher-forced top-1 agreement over a 600+ token text, and greedy completions.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "model/checkpoint.h"
#include "model/gemma_model.h"
#include "tokenizer/tokenizer.h"

namespace ge {
namespace {

std::string model_path() {
  const char* p = std::getenv("GE_TEST_MODEL");
  return p ? p : "";
}

class RealModel : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (model_path().empty()) GTEST_SKIP() << "GE_TEST_MODEL is not set (CI sets it to the default model)";
    auto cp = Checkpoint::open(model_path());
    ASSERT_TRUE(cp.is_ok()) << "GE_TEST_MODEL=" << model_path() << ": " << cp.status().to_string();
    cp_ = std::move(cp).value();
    auto b = create_backend(GetParam(), 2);
    ASSERT_TRUE(b.is_ok());
    backend_ = std::move(b).value();
    auto m = GemmaModel::create(cp_->config(), cp_->weights(), *backend_, 64);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    model_ = std::move(m).value();
    std::ifstream in(std::string(GE_TEST_DATA_DIR) + "/real/gemma3_270m_reference.json");
    ASSERT_TRUE(in.good());
    ref_ = nlohmann::json::parse(in);
  }

  std::unique_ptr<Checkpoint> cp_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<GemmaModel> model_;
  nlohmann::json ref_;
};

TEST_P(RealModel, TeacherForcedTop1AgreesWithTransformers) {
  const auto tokens = ref_.at("tokens").get<std::vector<int32_t>>();
  const auto top1 = ref_.at("top1").get<std::vector<int32_t>>();
  ASSERT_GE(tokens.size(), 500u);
  ASSERT_EQ(tokens.size(), top1.size());
  const int64_t V = cp_->config().vocab_size;
  auto cache = model_->create_kv_cache(static_cast<int32_t>(tokens.size()));
  ASSERT_TRUE(cache.is_ok());
  std::vector<float> logits(64 * static_cast<size_t>(V));
  size_t agree = 0;
  for (int32_t p = 0; p < static_cast<int32_t>(tokens.size()); p += 64) {
    const int32_t n = std::min<int32_t>(64, static_cast<int32_t>(tokens.size()) - p);
    ASSERT_TRUE(model_->forward(**cache, tokens.data() + p, n, p, LogitsMode::kAll, logits.data()).is_ok());
    for (int32_t t = 0; t < n; ++t) {
      const float* row = logits.data() + static_cast<size_t>(t) * static_cast<size_t>(V);
      const int32_t best = static_cast<int32_t>(std::max_element(row, row + V) - row);
      agree += best == top1[static_cast<size_t>(p + t)];
    }
  }
  const double rate = static_cast<double>(agree) / static_cast<double>(tokens.size());
  RecordProperty("top1_agreement", std::to_string(rate));
  std::printf("teacher-forced top-1 agreement: %zu / %zu = %.4f\n", agree, tokens.size(), rate);
  EXPECT_GE(rate, 0.98);
}

TEST_P(RealModel, GreedyCompletionsMatchAndReadAsEnglish) {
  auto tok = Tokenizer::from_gguf(*cp_->gguf());
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  const int64_t V = cp_->config().vocab_size;
  for (const auto& c : ref_.at("completions")) {
    const auto prompt = c.at("prompt_tokens").get<std::vector<int32_t>>();
    const auto want = c.at("greedy_tokens").get<std::vector<int32_t>>();
    // Our tokenizer must produce the same prompt ids as the reference tokenizer.
    EXPECT_EQ(tok->encode(c.at("prompt").get<std::string>(), true, false), prompt);
    auto cache = model_->create_kv_cache(256);
    ASSERT_TRUE(cache.is_ok());
    std::vector<float> logits(static_cast<size_t>(V));
    ASSERT_TRUE(model_->forward(**cache, prompt.data(), static_cast<int32_t>(prompt.size()), 0, LogitsMode::kLast,
                                logits.data()).is_ok());
    std::vector<int32_t> got;
    int32_t pos = static_cast<int32_t>(prompt.size());
    for (size_t i = 0; i < want.size(); ++i) {
      const int32_t best = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      got.push_back(best);
      ASSERT_TRUE(model_->forward(**cache, &best, 1, pos++, LogitsMode::kLast, logits.data()).is_ok());
    }
    size_t same_prefix = 0;
    while (same_prefix < got.size() && got[same_prefix] == want[same_prefix]) ++same_prefix;
    const std::string text = tok->decode(got, true);
    std::printf("%s|%s\n", c.at("prompt").get<std::string>().c_str(), text.c_str());
    // Greedy decoding amplifies any tiny difference only after a near-tie; require a long match.
    EXPECT_GE(same_prefix, std::min<size_t>(16, want.size())) << text;
  }
}

// The reference backend (the oracle) and the packed SIMD backend users run by default.
INSTANTIATE_TEST_SUITE_P(Backends, RealModel, ::testing::Values("cpu-ref", "cpu"));

}  // namespace
}  // namespace ge
