// The model hyper-parameters the forward pass needs, read from an HF config.json (Gemma 3 / Gemma 4,
// nested text_config or not) or from GGUF metadata. Field names follow HF config.json.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace ge {

namespace gguf {
class GgufFile;
}

enum class ModelFamily { kGemma3, kGemma4 };

struct LayerConfig {
  bool sliding = false;       // "sliding_attention" vs "full_attention"
  int32_t head_dim = 0;
  int32_t num_key_value_heads = 0;
  bool k_eq_v = false;        // Gemma 4 full layers: V is the raw K projection (no v_proj)
  // RoPE: inv_freq[i] = 1 / theta^(2i / head_dim) for i < rotary pairs, 0 beyond (proportional), / factor.
  float rope_theta = 10000.0f;
  float partial_rotary_factor = 1.0f;
  float rope_factor = 1.0f;   // linear scaling (Gemma 3 global layers on 4B+)
};

struct GemmaConfig {
  ModelFamily family = ModelFamily::kGemma3;
  std::string model_type;      // e.g. "gemma3_text", "gemma4_text"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int32_t num_hidden_layers = 0;
  int32_t num_attention_heads = 0;
  float rms_norm_eps = 1e-6f;
  int32_t sliding_window = 0;
  int64_t max_position_embeddings = 0;
  float query_scale = 1.0f;            // Gemma 3: query_pre_attn_scalar^-0.5; Gemma 4: 1.0
  float final_logit_softcapping = 0.0f;  // 0 = none
  float attn_logit_softcapping = 0.0f;   // 0 = none
  bool has_layer_scalar = false;         // Gemma 4
  bool has_v_norm = false;               // Gemma 4: weightless RMSNorm on V
  bool tie_word_embeddings = true;
  int32_t bos_token_id = 2;
  std::vector<int32_t> eos_token_ids = {1};
  std::vector<LayerConfig> layers;
  // GGUF Gemma 4: per-pair divisors for full-layer RoPE (rope_freqs.weight: 1.0 where a pair rotates,
  // 1e30 where it does not). Empty when the partial_rotary_factor describes the rotation instead.
  std::vector<float> rope_freq_factors;

  int32_t max_head_dim() const;
  int32_t max_kv_heads() const;
  // Layer-by-layer inverse RoPE frequencies [head_dim / 2] (zeros where a pair does not rotate).
  std::vector<float> rope_inv_freq(int32_t layer) const;
  // One-line summary, e.g. for `gemma inspect`.
  std::string summary() const;
};

// Parses config.json text (accepts a top-level Gemma3/Gemma4 config with text_config, or a text config).
Result<GemmaConfig> config_from_hf_json(const std::string& json_text);
// Reads general.architecture = gemma3 | gemma4 and the arch-prefixed keys.
Result<GemmaConfig> config_from_gguf(const gguf::GgufFile& file);
// Invariants every later stage relies on (positive sizes, heads divide, head_dim even, ...).
Status validate_config(const GemmaConfig& c);

}  // namespace ge
