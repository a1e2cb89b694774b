// Config parsing: HF config.json (transformers 4.5x–5.x spellings) and GGUF metadata.
#include "model/gemma_config.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "formats/gguf_reader.h"

namespace ge {

using nlohmann::json;

int32_t GemmaConfig::max_head_dim() const {
  int32_t m = 0;
  for (const auto& l : layers) m = std::max(m, l.head_dim);
  return m;
}

int32_t GemmaConfig::max_kv_heads() const {
  int32_t m = 0;
  for (const auto& l : layers) m = std::max(m, l.num_key_value_heads);
  return m;
}

std::vector<float> GemmaConfig::rope_inv_freq(int32_t layer) const {
  const LayerConfig& l = layers[static_cast<size_t>(layer)];
  const int32_t half = l.head_dim / 2;
  // ref: transformers _compute_proportional_rope_parameters / default rope: exponent denominator is
  // the full head_dim; only the first partial_rotary_factor·head_dim/2 pairs rotate.
  const int32_t rotary_pairs = static_cast<int32_t>(l.partial_rotary_factor * static_cast<float>(l.head_dim)) / 2;
  std::vector<float> inv(static_cast<size_t>(half), 0.0f);
  for (int32_t i = 0; i < rotary_pairs && i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(l.head_dim);
    inv[static_cast<size_t>(i)] = 1.0f / std::pow(l.rope_theta, exponent) / l.rope_factor;
  }
  if (!l.sliding && !rope_freq_factors.empty()) {
    for (int32_t i = 0; i < half && i < static_cast<int32_t>(rope_freq_factors.size()); ++i) {
      const float f = rope_freq_factors[static_cast<size_t>(i)];
      // llama.cpp's convention: a huge factor freezes the pair; make that exactly zero rotation.
      inv[static_cast<size_t>(i)] = f >= 1e20f ? 0.0f : inv[static_cast<size_t>(i)] / f;
    }
  }
  return inv;
}

std::string GemmaConfig::summary() const {
  int n_sliding = 0;
  for (const auto& l : layers) n_sliding += l.sliding ? 1 : 0;
  std::ostringstream os;
  os << (family == ModelFamily::kGemma4 ? "gemma4" : "gemma3") << " hidden=" << hidden_size
     << " layers=" << num_hidden_layers << " (" << n_sliding << " sliding, "
     << (num_hidden_layers - n_sliding) << " full) heads=" << num_attention_heads
     << " ffn=" << intermediate_size << " vocab=" << vocab_size << " window=" << sliding_window;
  return os.str();
}

Status validate_config(const GemmaConfig& c) {
  auto bad = [](const std::string& m) { return format_error("model config: " + m); };
  if (c.vocab_size <= 0 || c.vocab_size > (1 << 24)) return bad("vocab_size out of range");
  if (c.hidden_size <= 0 || c.hidden_size > (1 << 16)) return bad("hidden_size out of range");
  if (c.intermediate_size <= 0 || c.intermediate_size > (1 << 20)) return bad("intermediate_size out of range");
  if (c.num_hidden_layers <= 0 || c.num_hidden_layers > 1024) return bad("num_hidden_layers out of range");
  if (static_cast<int32_t>(c.layers.size()) != c.num_hidden_layers) return bad("layer table size mismatch");
  if (c.num_attention_heads <= 0 || c.num_attention_heads > 1024) return bad("num_attention_heads out of range");
  if (!(c.rms_norm_eps > 0.0f) || c.rms_norm_eps > 1.0f) return bad("rms_norm_eps out of range");
  if (!std::isfinite(c.query_scale) || c.query_scale <= 0.0f) return bad("attention scale out of range");
  if (!(c.final_logit_softcapping >= 0.0f)) return bad("final_logit_softcapping negative");
  bool any_sliding = false;
  for (size_t i = 0; i < c.layers.size(); ++i) {
    const LayerConfig& l = c.layers[i];
    const std::string at = "layer " + std::to_string(i) + ": ";
    if (l.head_dim <= 0 || l.head_dim > 1024 || l.head_dim % 2 != 0) return bad(at + "head_dim must be even, 2..1024");
    if (l.num_key_value_heads <= 0 || c.num_attention_heads % l.num_key_value_heads != 0)
      return bad(at + "num_attention_heads must be a multiple of the KV heads");
    if (!(l.rope_theta > 1.0f) || !std::isfinite(l.rope_theta)) return bad(at + "rope_theta out of range");
    if (!(l.partial_rotary_factor > 0.0f) || l.partial_rotary_factor > 1.0f) return bad(at + "partial_rotary_factor out of range");
    if (!(l.rope_factor > 0.0f) || !std::isfinite(l.rope_factor)) return bad(at + "rope factor out of range");
    any_sliding |= l.sliding;
  }
  if (any_sliding && c.sliding_window <= 0) return bad("sliding layers need sliding_window > 0");
  return Status::ok();
}

namespace {

template <typename T>
Status get_opt(const json& j, const char* key, T* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::ok();
  try {
    *out = it->get<T>();
  } catch (const json::exception&) {
    return format_error(std::string("config.json: field '") + key + "' has the wrong type");
  }
  return Status::ok();
}

// Reads the rope parameters of one layer type from `rope_parameters[type]`, falling back to the
// older top-level spellings (rope_theta / rope_local_base_freq / rope_scaling).
Status read_rope(const json& t, const char* type, float default_theta, LayerConfig* l) {
  l->rope_theta = default_theta;
  const bool sliding = std::string(type) == "sliding_attention";
  GE_RETURN_IF_ERROR(get_opt(t, sliding ? "rope_local_base_freq" : "rope_theta", &l->rope_theta));
  const json* rp = nullptr;
  auto it = t.find("rope_parameters");
  if (it != t.end() && it->is_object()) {
    auto sub = it->find(type);
    if (sub != it->end() && sub->is_object()) rp = &*sub;
    else if (it->contains("rope_type") && !sliding) rp = &*it;  // single dict applies to global
  }
  if (rp == nullptr && !sliding) {
    auto rs = t.find("rope_scaling");
    if (rs != t.end() && rs->is_object()) rp = &*rs;
  }
  if (rp == nullptr) return Status::ok();
  std::string rope_type = "default";
  GE_RETURN_IF_ERROR(get_opt(*rp, "rope_type", &rope_type));
  GE_RETURN_IF_ERROR(get_opt(*rp, "rope_theta", &l->rope_theta));
  if (rope_type == "default") {
  } else if (rope_type == "linear") {
    GE_RETURN_IF_ERROR(get_opt(*rp, "factor", &l->rope_factor));
  } else if (rope_type == "proportional") {
    GE_RETURN_IF_ERROR(get_opt(*rp, "partial_rotary_factor", &l->partial_rotary_factor));
    GE_RETURN_IF_ERROR(get_opt(*rp, "factor", &l->rope_factor));
  } else {
    return unsupported(std::string("config.json: rope_type '") + rope_type + "' for " + type);
  }
  return Status::ok();
}

Result<GemmaConfig> parse_text_config(const json& t, const json& outer) {
  GemmaConfig c;
  std::string mt;
  GE_RETURN_IF_ERROR(get_opt(t, "model_type", &mt));
  c.model_type = mt;
  if (mt == "gemma3_text" || mt == "gemma3") c.family = ModelFamily::kGemma3;
  else if (mt == "gemma4_text" || mt == "gemma4") c.family = ModelFamily::kGemma4;
  else return unsupported("config.json: model_type '" + mt + "' is not a Gemma 3 or Gemma 4 text model");
  const bool g4 = c.family == ModelFamily::kGemma4;

  int32_t head_dim = 256, n_kv = 0;
  int64_t n_layers = 0;
  GE_RETURN_IF_ERROR(get_opt(t, "vocab_size", &c.vocab_size));
  GE_RETURN_IF_ERROR(get_opt(t, "hidden_size", &c.hidden_size));
  GE_RETURN_IF_ERROR(get_opt(t, "intermediate_size", &c.intermediate_size));
  GE_RETURN_IF_ERROR(get_opt(t, "num_hidden_layers", &n_layers));
  GE_RETURN_IF_ERROR(get_opt(t, "num_attention_heads", &c.num_attention_heads));
  GE_RETURN_IF_ERROR(get_opt(t, "num_key_value_heads", &n_kv));
  GE_RETURN_IF_ERROR(get_opt(t, "head_dim", &head_dim));
  GE_RETURN_IF_ERROR(get_opt(t, "rms_norm_eps", &c.rms_norm_eps));
  GE_RETURN_IF_ERROR(get_opt(t, "sliding_window", &c.sliding_window));
  GE_RETURN_IF_ERROR(get_opt(t, "max_position_embeddings", &c.max_position_embeddings));
  GE_RETURN_IF_ERROR(get_opt(t, "final_logit_softcapping", &c.final_logit_softcapping));
  GE_RETURN_IF_ERROR(get_opt(t, "attn_logit_softcapping", &c.attn_logit_softcapping));
  GE_RETURN_IF_ERROR(get_opt(outer, "tie_word_embeddings", &c.tie_word_embeddings));
  GE_RETURN_IF_ERROR(get_opt(t, "tie_word_embeddings", &c.tie_word_embeddings));
  GE_RETURN_IF_ERROR(get_opt(t, "bos_token_id", &c.bos_token_id));
  if (n_layers <= 0 || n_layers > 1024) return format_error("config.json: num_hidden_layers out of range");
  c.num_hidden_layers = static_cast<int32_t>(n_layers);
  if (n_kv == 0) n_kv = c.num_attention_heads;

  for (const json* src : {&outer, &t}) {
    auto it = src->find("eos_token_id");
    if (it == src->end() || it->is_null()) continue;
    c.eos_token_ids.clear();
    if (it->is_number_integer()) c.eos_token_ids.push_back(it->get<int32_t>());
    else if (it->is_array())
      for (const auto& e : *it)
        if (e.is_number_integer()) c.eos_token_ids.push_back(e.get<int32_t>());
  }

  std::string act = "gelu_pytorch_tanh";
  GE_RETURN_IF_ERROR(get_opt(t, "hidden_activation", &act));
  if (act != "gelu_pytorch_tanh") return unsupported("config.json: hidden_activation '" + act + "'");

  // Layer types: explicit list, else the 5:1 pattern (sliding_window_pattern, default 6).
  std::vector<std::string> types;
  GE_RETURN_IF_ERROR(get_opt(t, "layer_types", &types));
  if (types.empty()) {
    int pattern = 6;
    GE_RETURN_IF_ERROR(get_opt(t, "sliding_window_pattern", &pattern));
    if (pattern <= 0) return format_error("config.json: sliding_window_pattern must be positive");
    for (int i = 0; i < c.num_hidden_layers; ++i)
      types.push_back((i + 1) % pattern ? "sliding_attention" : "full_attention");
  }
  if (static_cast<int32_t>(types.size()) != c.num_hidden_layers)
    return format_error("config.json: layer_types has " + std::to_string(types.size()) + " entries for " +
                        std::to_string(c.num_hidden_layers) + " layers");

  if (g4) {
    c.query_scale = 1.0f;
    c.has_layer_scalar = true;
    c.has_v_norm = true;
    int64_t ple = 0, shared = 0;
    bool moe = false, double_wide = false;
    GE_RETURN_IF_ERROR(get_opt(t, "hidden_size_per_layer_input", &ple));
    GE_RETURN_IF_ERROR(get_opt(t, "num_kv_shared_layers", &shared));
    GE_RETURN_IF_ERROR(get_opt(t, "enable_moe_block", &moe));
    GE_RETURN_IF_ERROR(get_opt(t, "use_double_wide_mlp", &double_wide));
    if (ple != 0) return unsupported("Gemma 4 per-layer embeddings (E2B/E4B) are not supported yet");
    if (shared != 0) return unsupported("Gemma 4 KV sharing (num_kv_shared_layers > 0) is not supported yet");
    if (moe) return unsupported("Gemma 4 mixture-of-experts (26B-A4B) is not supported yet");
    if (double_wide) return unsupported("Gemma 4 double-wide MLP is not supported yet");
  } else {
    float qpas = static_cast<float>(head_dim);
    GE_RETURN_IF_ERROR(get_opt(t, "query_pre_attn_scalar", &qpas));
    if (!(qpas > 0.0f)) return format_error("config.json: query_pre_attn_scalar must be positive");
    c.query_scale = 1.0f / std::sqrt(qpas);
  }

  bool k_eq_v = false;
  int32_t global_head_dim = 512, global_kv = 0;
  GE_RETURN_IF_ERROR(get_opt(t, "attention_k_eq_v", &k_eq_v));
  GE_RETURN_IF_ERROR(get_opt(t, "global_head_dim", &global_head_dim));
  GE_RETURN_IF_ERROR(get_opt(t, "num_global_key_value_heads", &global_kv));
  const json* per_layer = nullptr;
  if (auto it = t.find("per_layer_config"); it != t.end() && it->is_object()) per_layer = &*it;

  for (int32_t i = 0; i < c.num_hidden_layers; ++i) {
    LayerConfig l;
    const std::string& ty = types[static_cast<size_t>(i)];
    if (ty == "sliding_attention") l.sliding = true;
    else if (ty != "full_attention") return unsupported("config.json: layer type '" + ty + "'");
    l.head_dim = head_dim;
    l.num_key_value_heads = n_kv;
    if (g4 && !l.sliding) {
      // transformers 5.x: full layers get global_head_dim, and num_global_key_value_heads when K=V.
      l.head_dim = global_head_dim;
      if (k_eq_v && global_kv > 0) l.num_key_value_heads = global_kv;
      l.k_eq_v = k_eq_v;
    }
    if (per_layer != nullptr) {
      auto it = per_layer->find(std::to_string(i));
      if (it != per_layer->end() && it->is_object()) {
        GE_RETURN_IF_ERROR(get_opt(*it, "head_dim", &l.head_dim));
        GE_RETURN_IF_ERROR(get_opt(*it, "num_key_value_heads", &l.num_key_value_heads));
      }
    }
    const float default_theta = l.sliding ? 10000.0f : 1000000.0f;
    GE_RETURN_IF_ERROR(read_rope(t, l.sliding ? "sliding_attention" : "full_attention", default_theta, &l));
    if (g4 && !l.sliding && t.find("rope_parameters") == t.end()) l.partial_rotary_factor = 0.25f;
    c.layers.push_back(l);
  }
  GE_RETURN_IF_ERROR(validate_config(c));
  return c;
}

}  // namespace

Result<GemmaConfig> config_from_hf_json(const std::string& json_text) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    return format_error(std::string("config.json is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) return format_error("config.json: top level is not an object");
  try {
    auto tc = j.find("text_config");
    if (tc != j.end() && tc->is_object()) {
      json text = *tc;
      if (!text.contains("model_type")) {
        std::string outer = j.value("model_type", "");
        text["model_type"] = outer == "gemma4" ? "gemma4_text" : "gemma3_text";
      }
      return parse_text_config(text, j);
    }
    return parse_text_config(j, j);
  } catch (const json::exception& e) {
    return format_error(std::string("config.json: ") + e.what());
  }
}

Result<GemmaConfig> config_from_gguf(const gguf::GgufFile& f) {
  GemmaConfig c;
  GE_ASSIGN_OR_RETURN(std::string arch, f.get_string("general.architecture"));
  if (arch == "gemma3") c.family = ModelFamily::kGemma3;
  else if (arch == "gemma4") c.family = ModelFamily::kGemma4;
  else return unsupported("gguf: architecture '" + arch + "' is not gemma3 or gemma4");
  const bool g4 = c.family == ModelFamily::kGemma4;
  c.model_type = arch;
  const std::string p = arch + ".";
  auto need_uint = [&](const std::string& k) -> Result<uint64_t> {
    Result<uint64_t> v = f.get_uint(p + k);
    if (!v.is_ok()) return format_error("gguf: missing or invalid key '" + p + k + "'");
    return v;
  };
  GE_ASSIGN_OR_RETURN(uint64_t n_embd, need_uint("embedding_length"));
  GE_ASSIGN_OR_RETURN(uint64_t n_layer, need_uint("block_count"));
  GE_ASSIGN_OR_RETURN(uint64_t n_ff, need_uint("feed_forward_length"));
  GE_ASSIGN_OR_RETURN(uint64_t n_head, need_uint("attention.head_count"));
  if (n_layer == 0 || n_layer > 1024 || n_head == 0 || n_head > 1024 || n_embd > (1u << 16) || n_ff > (1u << 20))
    return format_error("gguf: model dimensions out of range");
  c.hidden_size = static_cast<int64_t>(n_embd);
  c.num_hidden_layers = static_cast<int32_t>(n_layer);
  c.intermediate_size = static_cast<int64_t>(n_ff);
  c.num_attention_heads = static_cast<int32_t>(n_head);
  if (Result<uint64_t> v = f.get_uint(p + "context_length"); v.is_ok()) c.max_position_embeddings = static_cast<int64_t>(*v);
  if (Result<double> v = f.get_float(p + "attention.layer_norm_rms_epsilon"); v.is_ok()) c.rms_norm_eps = static_cast<float>(*v);
  if (Result<uint64_t> v = f.get_uint(p + "attention.sliding_window"); v.is_ok()) c.sliding_window = static_cast<int32_t>(*v);
  if (Result<double> v = f.get_float(p + "final_logit_softcapping"); v.is_ok()) c.final_logit_softcapping = static_cast<float>(*v);
  if (Result<double> v = f.get_float(p + "attn_logit_softcapping"); v.is_ok()) c.attn_logit_softcapping = static_cast<float>(*v);

  // Vocabulary size: the embedding's row count (ggml ne[1]).
  const gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
  if (embd == nullptr || embd->ne.size() != 2) return format_error("gguf: missing 2-D tensor 'token_embd.weight'");
  c.vocab_size = embd->ne[1];
  if (Result<uint64_t> v = f.get_uint("tokenizer.ggml.bos_token_id"); v.is_ok()) c.bos_token_id = static_cast<int32_t>(*v);

  // KV heads: scalar or per-layer array.
  std::vector<int64_t> kv_heads(static_cast<size_t>(n_layer), static_cast<int64_t>(n_head));
  if (f.array_size(p + "attention.head_count_kv") > 0) {
    GE_ASSIGN_OR_RETURN(std::vector<int64_t> arr, f.get_int_array(p + "attention.head_count_kv"));
    if (arr.size() != n_layer) return format_error("gguf: attention.head_count_kv has the wrong length");
    kv_heads = arr;
  } else if (Result<uint64_t> v = f.get_uint(p + "attention.head_count_kv"); v.is_ok()) {
    std::fill(kv_heads.begin(), kv_heads.end(), static_cast<int64_t>(*v));
  }
  uint64_t key_len = n_embd / n_head, key_len_swa = 0;
  if (Result<uint64_t> v = f.get_uint(p + "attention.key_length"); v.is_ok()) key_len = *v;
  key_len_swa = key_len;
  if (Result<uint64_t> v = f.get_uint(p + "attention.key_length_swa"); v.is_ok()) key_len_swa = *v;
  if (Result<uint64_t> v = f.get_uint(p + "attention.value_length"); v.is_ok() && *v != key_len)
    return unsupported("gguf: value_length different from key_length");
  if (key_len == 0 || key_len > 1024 || key_len_swa == 0 || key_len_swa > 1024)
    return format_error("gguf: attention.key_length out of range");

  std::vector<bool> sliding(static_cast<size_t>(n_layer));
  if (g4 && f.array_size(p + "attention.sliding_window_pattern") > 0) {
    GE_ASSIGN_OR_RETURN(std::vector<bool> pat, f.get_bool_array(p + "attention.sliding_window_pattern"));
    if (pat.size() != n_layer) return format_error("gguf: sliding_window_pattern has the wrong length");
    sliding = pat;
  } else {
    for (uint64_t i = 0; i < n_layer; ++i) sliding[i] = (i % 6) != 5;  // llama.cpp's fixed 5:1 pattern
  }
  float theta = 1000000.0f, theta_swa = 10000.0f, factor = 1.0f;
  if (Result<double> v = f.get_float(p + "rope.freq_base"); v.is_ok()) theta = static_cast<float>(*v);
  if (Result<double> v = f.get_float(p + "rope.freq_base_swa"); v.is_ok()) theta_swa = static_cast<float>(*v);
  if (Result<std::string> v = f.get_string(p + "rope.scaling.type"); v.is_ok() && *v == "linear") {
    if (Result<double> fv = f.get_float(p + "rope.scaling.factor"); fv.is_ok() && *fv > 0) factor = static_cast<float>(*fv);
  }

  if (g4) {
    c.query_scale = 1.0f;
    c.has_layer_scalar = true;
    c.has_v_norm = true;
    if (Result<uint64_t> v = f.get_uint(p + "embedding_length_per_layer_input"); v.is_ok() && *v != 0)
      return unsupported("Gemma 4 per-layer embeddings (E2B/E4B) are not supported yet");
    if (Result<uint64_t> v = f.get_uint(p + "attention.shared_kv_layers"); v.is_ok() && *v != 0)
      return unsupported("Gemma 4 KV sharing is not supported yet");
    if (f.has(p + "expert_count")) return unsupported("Gemma 4 mixture-of-experts is not supported yet");
  } else if (Result<double> v = f.get_float(p + "attention.scale"); v.is_ok() && *v > 0) {
    c.query_scale = static_cast<float>(*v);
  } else {
    // llama.cpp: 1/sqrt(head_dim), except 27B (62 layers) which uses query_pre_attn_scalar = H / n_head.
    const double qpas = n_layer == 62 ? static_cast<double>(n_embd) / static_cast<double>(n_head)
                                      : static_cast<double>(key_len);
    c.query_scale = static_cast<float>(1.0 / std::sqrt(qpas));
  }

  for (uint64_t i = 0; i < n_layer; ++i) {
    LayerConfig l;
    l.sliding = sliding[i];
    l.head_dim = static_cast<int32_t>(l.sliding ? key_len_swa : key_len);
    if (kv_heads[i] <= 0 || kv_heads[i] > 1024) return format_error("gguf: head_count_kv out of range");
    l.num_key_value_heads = static_cast<int32_t>(kv_heads[i]);
    l.rope_theta = l.sliding ? theta_swa : theta;
    l.rope_factor = l.sliding ? 1.0f : factor;
    if (g4 && !l.sliding) {
      const std::string v_name = "blk." + std::to_string(i) + ".attn_v.weight";
      l.k_eq_v = f.find_tensor(v_name) == nullptr;
      // Partial rotation comes from the rope_freqs tensor (applied by the weight loader);
      // without it, Gemma 4's documented default of 25 % applies.
      if (f.find_tensor("rope_freqs.weight") == nullptr) l.partial_rotary_factor = 0.25f;
    }
    c.layers.push_back(l);
  }
  GE_RETURN_IF_ERROR(validate_config(c));
  return c;
}

}  // namespace ge
