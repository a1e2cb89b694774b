// Config parsing: HF config.json spellings (nested text_config, per_layer_config, old rope keys),
// refusal of unbuilt Gemma 4 variants, and validation of hostile values.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/gemma_config.h"
#include "model/model_presets.h"

namespace ge {
namespace {

nlohmann::json gemma4_text() {
  return {{"model_type", "gemma4_text"}, {"vocab_size", 512}, {"hidden_size", 64}, {"intermediate_size", 128},
          {"num_hidden_layers", 6}, {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"head_dim", 32},
          {"global_head_dim", 64}, {"num_global_key_value_heads", 1}, {"attention_k_eq_v", true},
          {"hidden_size_per_layer_input", 0}, {"sliding_window", 8}, {"final_logit_softcapping", 30.0}};
}

TEST(GemmaConfig, Gemma4NestedTextConfigWithGlobalHeads) {
  nlohmann::json outer = {{"model_type", "gemma4"}, {"text_config", gemma4_text()}, {"eos_token_id", {1, 106}}};
  outer["text_config"].erase("model_type");
  auto c = config_from_hf_json(outer.dump());
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->family, ModelFamily::kGemma4);
  ASSERT_EQ(c->layers.size(), 6u);
  EXPECT_TRUE(c->layers[0].sliding);
  EXPECT_FALSE(c->layers[5].sliding);  // default 5:1 pattern
  EXPECT_EQ(c->layers[5].head_dim, 64);
  EXPECT_EQ(c->layers[5].num_key_value_heads, 1);
  EXPECT_TRUE(c->layers[5].k_eq_v);
  EXPECT_FLOAT_EQ(c->layers[5].partial_rotary_factor, 0.25f);  // Gemma 4 default proportional RoPE
  EXPECT_FLOAT_EQ(c->query_scale, 1.0f);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int32_t>{1, 106}));
  // Proportional RoPE: 64·0.25/2 = 8 rotating pairs with denominator 64, the rest frozen.
  const std::vector<float> inv = c->rope_inv_freq(5);
  ASSERT_EQ(inv.size(), 32u);
  EXPECT_FLOAT_EQ(inv[1], 1.0f / std::pow(1e6f, 2.0f / 64.0f));
  EXPECT_EQ(inv[7] > 0.0f, true);
  EXPECT_EQ(inv[8], 0.0f);
}

TEST(GemmaConfig, PerLayerConfigOverridesHeads) {
  nlohmann::json t = gemma4_text();
  t.erase("global_head_dim");
  t.erase("num_global_key_value_heads");
  t["per_layer_config"] = {{"5", {{"head_dim", 128}, {"num_key_value_heads", 2}}}};
  auto c = config_from_hf_json(t.dump());
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->layers[5].head_dim, 128);
  EXPECT_EQ(c->layers[5].num_key_value_heads, 2);
}

TEST(GemmaConfig, RefusesUnbuiltGemma4Variants) {
  for (auto [key, value] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"hidden_size_per_layer_input", 256}, {"num_kv_shared_layers", 4}, {"enable_moe_block", true}}) {
    nlohmann::json t = gemma4_text();
    t[key] = value;
    auto c = config_from_hf_json(t.dump());
    ASSERT_FALSE(c.is_ok()) << key;
    EXPECT_EQ(c.status().code(), StatusCode::kUnsupported) << key;
    EXPECT_NE(c.status().message().find("not supported"), std::string::npos);
  }
}

TEST(GemmaConfig, Gemma3OldRopeSpellingAndQueryScale) {
  nlohmann::json t = {{"model_type", "gemma3_text"}, {"vocab_size", 512}, {"hidden_size", 64},
                      {"intermediate_size", 128}, {"num_hidden_layers", 6}, {"num_attention_heads", 4},
                      {"num_key_value_heads", 1}, {"head_dim", 32}, {"query_pre_attn_scalar", 24},
                      {"sliding_window", 8}, {"rope_theta", 1e6}, {"rope_local_base_freq", 1e4},
                      {"rope_scaling", {{"rope_type", "linear"}, {"factor", 8.0}}}};
  auto c = config_from_hf_json(t.dump());
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_FLOAT_EQ(c->query_scale, 1.0f / std::sqrt(24.0f));
  EXPECT_FLOAT_EQ(c->layers[0].rope_theta, 1e4f);
  EXPECT_FLOAT_EQ(c->layers[0].rope_factor, 1.0f);  // scaling only on global layers
  EXPECT_FLOAT_EQ(c->layers[5].rope_theta, 1e6f);
  EXPECT_FLOAT_EQ(c->layers[5].rope_factor, 8.0f);
}

TEST(GemmaConfig, RejectsHostileValues) {
  const std::vector<std::pair<std::string, nlohmann::json>> bad = {
      {"num_hidden_layers", -1}, {"num_hidden_layers", 100000}, {"num_attention_heads", 3},
      {"head_dim", 31},          {"hidden_size", "big"},        {"model_type", "llama"},
      {"sliding_window", 0},     {"layer_types", {"sliding_attention"}}};
  for (const auto& [k, v] : bad) {
    nlohmann::json t = gemma4_text();
    t[k] = v;
    EXPECT_FALSE(config_from_hf_json(t.dump()).is_ok()) << k << "=" << v.dump();
  }
  EXPECT_FALSE(config_from_hf_json("{not json").is_ok());
  EXPECT_FALSE(config_from_hf_json("[1,2]").is_ok());
}

TEST(ModelPresets, Gemma4_31bHasThePublishedShape) {
  auto c = preset_config("gemma-4-31b");
  ASSERT_TRUE(c.is_ok());
  int full = 0;
  for (const auto& l : c->layers) full += !l.sliding;
  EXPECT_EQ(full, 10);
  EXPECT_EQ(c->layers[59].head_dim, 512);
  EXPECT_EQ(c->layers[59].num_key_value_heads, 4);
  EXPECT_EQ(c->layers[0].num_key_value_heads, 16);
  EXPECT_FALSE(preset_config("gemma-9-1t").is_ok());
}

}  // namespace
}  // namespace ge
