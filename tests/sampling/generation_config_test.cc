// sampling_from_generation_config: Gemma 4's published defaults, greedy via do_sample, and errors.
#include "sampling/generation_config.h"

#include <gtest/gtest.h>

namespace ge {
namespace {

TEST(GenerationConfig, Gemma4Defaults) {
  const char* text = R"({"bos_token_id": 2, "do_sample": true, "eos_token_id": [1, 106, 50],
                         "pad_token_id": 0, "temperature": 1.0, "top_k": 64, "top_p": 0.95,
                         "transformers_version": "5.0.0"})";
  auto r = sampling_from_generation_config_text(text);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->temperature, 1.0f);
  EXPECT_EQ(r->top_k, 64);
  EXPECT_EQ(r->top_p, 0.95f);
}

TEST(GenerationConfig, ReadsFieldsAndKeepsDefaultsForMissingOnes) {
  auto r = sampling_from_generation_config(
      nlohmann::json{{"temperature", 0.7}, {"top_k", 20}, {"min_p", 0.05},
                     {"repetition_penalty", 1.1}, {"top_p", nullptr}});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_FLOAT_EQ(r->temperature, 0.7f);
  EXPECT_EQ(r->top_k, 20);
  EXPECT_FLOAT_EQ(r->min_p, 0.05f);
  EXPECT_FLOAT_EQ(r->repetition_penalty, 1.1f);
  EXPECT_EQ(r->top_p, SamplingParams{}.top_p);
}

TEST(GenerationConfig, DoSampleFalseIsGreedy) {
  auto r = sampling_from_generation_config(nlohmann::json{{"do_sample", false}, {"temperature", 0.8}});
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->temperature, 0.0f);
}

TEST(GenerationConfig, Errors) {
  const char* bad[] = {
      R"({"temperature": "hot"})",  R"({"top_k": 2.5})",       R"({"top_k": 1e12})",
      R"({"top_p": 0})",            R"({"temperature": -1})",  R"({"do_sample": "yes"})",
      R"({"top_k": -3})",           R"({"temperature": 1e300})", R"([1, 2])",
      R"({"top_k": 99999999999999999999})", "not json", "",
  };
  for (const char* text : bad) {
    auto r = sampling_from_generation_config_text(text);
    EXPECT_FALSE(r.is_ok()) << text;
    if (!r.is_ok()) {
      EXPECT_NE(r.status().message().find("generation_config"), std::string::npos) << text;
    }
  }
}

}  // namespace
}  // namespace ge
