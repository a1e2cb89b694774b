// Published Gemma text-stack shapes.
#include "model/model_presets.h"

#include <cmath>

namespace ge {

namespace {

GemmaConfig gemma4_31b() {
  GemmaConfig c;
  c.family = ModelFamily::kGemma4;
  c.model_type = "gemma4_text";
  c.vocab_size = 262144;
  c.hidden_size = 5376;
  c.intermediate_size = 21504;
  c.num_hidden_layers = 60;
  c.num_attention_heads = 32;
  c.sliding_window = 1024;
  c.max_position_embeddings = 262144;
  c.query_scale = 1.0f;
  c.final_logit_softcapping = 30.0f;
  c.has_layer_scalar = true;
  c.has_v_norm = true;
  c.eos_token_ids = {1, 106, 50};
  for (int i = 0; i < 60; ++i) {
    LayerConfig l;
    l.sliding = (i + 1) % 6 != 0;
    l.head_dim = l.sliding ? 256 : 512;
    l.num_key_value_heads = l.sliding ? 16 : 4;
    l.k_eq_v = !l.sliding;
    l.rope_theta = l.sliding ? 10000.0f : 1000000.0f;
    l.partial_rotary_factor = l.sliding ? 1.0f : 0.25f;
    c.layers.push_back(l);
  }
  return c;
}

GemmaConfig gemma3(int64_t hidden, int64_t ffn, int32_t layers, int32_t heads, int32_t kv, int32_t window) {
  GemmaConfig c;
  c.family = ModelFamily::kGemma3;
  c.model_type = "gemma3_text";
  c.vocab_size = 262144;
  c.hidden_size = hidden;
  c.intermediate_size = ffn;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.sliding_window = window;
  c.max_position_embeddings = 32768;
  c.query_scale = 1.0f / 16.0f;  // query_pre_attn_scalar 256
  c.eos_token_ids = {1, 106};
  for (int i = 0; i < layers; ++i) {
    LayerConfig l;
    l.sliding = (i + 1) % 6 != 0;
    l.head_dim = 256;
    l.num_key_value_heads = kv;
    l.rope_theta = l.sliding ? 10000.0f : 1000000.0f;
    c.layers.push_back(l);
  }
  return c;
}

}  // namespace

std::vector<std::string> preset_names() { return {"gemma-4-31b", "gemma-3-270m", "gemma-3-1b"}; }

Result<GemmaConfig> preset_config(const std::string& name) {
  GemmaConfig c;
  if (name == "gemma-4-31b") c = gemma4_31b();
  else if (name == "gemma-3-270m") c = gemma3(640, 2048, 18, 4, 1, 512);
  else if (name == "gemma-3-1b") c = gemma3(1152, 6912, 26, 4, 1, 512);
  else return invalid_argument("unknown model preset '" + name + "' (known: gemma-4-31b, gemma-3-270m, gemma-3-1b)");
  GE_RETURN_IF_ERROR(validate_config(c));
  return c;
}

}  // namespace ge
