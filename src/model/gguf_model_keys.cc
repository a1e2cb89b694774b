// GGUF model keys and header layout for Gemma checkpoints (see gguf_model_keys.h); the key set is
// the one llama.cpp's converter writes for gemma3 / gemma4 (gemma-spec.md §3.3).
#include "model/gguf_model_keys.h"

#include <cmath>
#include <cstring>
#include <span>

#include "core/checked_math.h"
#include "formats/ggml_types.h"

namespace ge {
namespace {

void put_kv(GgufKeyValues* kv, const std::string& key, gguf::Value v) { kv->emplace_back(key, std::move(v)); }

}  // namespace

uint32_t ggml_type_of(QuantType t) {
  switch (t) {
    case QuantType::kF32: return ggml_id(GgmlType::kF32);
    case QuantType::kF16: return ggml_id(GgmlType::kF16);
    case QuantType::kBF16: return ggml_id(GgmlType::kBF16);
    case QuantType::kQ4_0: return ggml_id(GgmlType::kQ4_0);
    case QuantType::kQ5_0: return ggml_id(GgmlType::kQ5_0);
    case QuantType::kQ8_0: return ggml_id(GgmlType::kQ8_0);
    case QuantType::kQ4_K: return ggml_id(GgmlType::kQ4_K);
    case QuantType::kQ5_K: return ggml_id(GgmlType::kQ5_K);
    case QuantType::kQ6_K: return ggml_id(GgmlType::kQ6_K);
    default: break;
  }
  return ggml_id(GgmlType::kF32);
}

std::vector<float> gguf_rope_freqs(const LayerConfig& full) {
  const int32_t half = full.head_dim / 2;
  const int32_t n_rot = static_cast<int32_t>(full.partial_rotary_factor * static_cast<float>(full.head_dim)) / 2;
  std::vector<float> f(static_cast<size_t>(half), 1e30f);
  for (int32_t i = 0; i < n_rot && i < half; ++i) f[static_cast<size_t>(i)] = 1.0f;
  return f;
}

Status gguf_model_keys(const GemmaConfig& c, QuantType gguf_type, const std::string& name, GgufKeyValues* kv) {
  const bool g4 = c.family == ModelFamily::kGemma4;
  const std::string a = g4 ? "gemma4" : "gemma3";
  const std::string p = a + ".";
  put_kv(kv, "general.architecture", gguf::Value::string(a));
  put_kv(kv, "general.type", gguf::Value::string("model"));
  put_kv(kv, "general.name", gguf::Value::string(name));
  const uint32_t file_type = gguf_type == QuantType::kQ4_0   ? 2
                             : gguf_type == QuantType::kQ8_0 ? 7
                             : gguf_type == QuantType::kQ4_K ? 14
                                                               : 18;  // MOSTLY_Q6_K
  put_kv(kv, "general.file_type", gguf::Value::uint32(file_type));
  put_kv(kv, "general.quantization_version", gguf::Value::uint32(2));
  put_kv(kv, p + "context_length", gguf::Value::uint32(static_cast<uint32_t>(c.max_position_embeddings)));
  put_kv(kv, p + "embedding_length", gguf::Value::uint32(static_cast<uint32_t>(c.hidden_size)));
  put_kv(kv, p + "block_count", gguf::Value::uint32(static_cast<uint32_t>(c.num_hidden_layers)));
  put_kv(kv, p + "feed_forward_length", gguf::Value::uint32(static_cast<uint32_t>(c.intermediate_size)));
  put_kv(kv, p + "attention.head_count", gguf::Value::uint32(static_cast<uint32_t>(c.num_attention_heads)));
  put_kv(kv, p + "attention.layer_norm_rms_epsilon", gguf::Value::float32(c.rms_norm_eps));
  put_kv(kv, p + "attention.sliding_window", gguf::Value::uint32(static_cast<uint32_t>(c.sliding_window)));
  if (c.final_logit_softcapping > 0.0f) {
    put_kv(kv, p + "final_logit_softcapping", gguf::Value::float32(c.final_logit_softcapping));
  }
  if (c.attn_logit_softcapping > 0.0f) {
    put_kv(kv, p + "attn_logit_softcapping", gguf::Value::float32(c.attn_logit_softcapping));
  }
  const LayerConfig* full = nullptr;
  const LayerConfig* swa = nullptr;
  for (const LayerConfig& l : c.layers) {
    const LayerConfig*& first = l.sliding ? swa : full;
    if (first == nullptr) first = &l;
    if (l.head_dim != first->head_dim || l.rope_theta != first->rope_theta || l.rope_factor != first->rope_factor ||
        l.partial_rotary_factor != first->partial_rotary_factor) {
      return unsupported("quantize: GGUF needs one head_dim and RoPE per layer type; this config varies them");
    }
  }
  const LayerConfig& any = full != nullptr ? *full : *swa;
  put_kv(kv, p + "rope.freq_base", gguf::Value::float32(full != nullptr ? full->rope_theta : 1e6f));
  if (!g4) {
    for (size_t i = 0; i < c.layers.size(); ++i) {
      if (c.layers[i].sliding != ((i % 6) != 5) || c.layers[i].head_dim != any.head_dim ||
          c.layers[i].num_key_value_heads != any.num_key_value_heads) {
        return unsupported("quantize: a gemma3 GGUF implies llama.cpp's fixed 5:1 layer pattern and uniform heads; "
                           "this config differs");
      }
    }
    if (swa != nullptr && (swa->rope_theta != 10000.0f || swa->rope_factor != 1.0f)) {
      return unsupported("quantize: gemma3 GGUF fixes sliding-layer RoPE at theta 10000 without scaling");
    }
    put_kv(kv, p + "attention.head_count_kv", gguf::Value::uint32(static_cast<uint32_t>(any.num_key_value_heads)));
    put_kv(kv, p + "attention.key_length", gguf::Value::uint32(static_cast<uint32_t>(any.head_dim)));
    put_kv(kv, p + "attention.value_length", gguf::Value::uint32(static_cast<uint32_t>(any.head_dim)));
    // llama.cpp's built-in rule is 1/sqrt(head_dim) (27B: 1/sqrt(H/heads)); other scales are written.
    const double rule = c.num_hidden_layers == 62 ? static_cast<double>(c.hidden_size) / c.num_attention_heads
                                                  : static_cast<double>(any.head_dim);
    if (static_cast<float>(1.0 / std::sqrt(rule)) != c.query_scale) {
      put_kv(kv, p + "attention.scale", gguf::Value::float32(c.query_scale));
    }
    if (full != nullptr && full->rope_factor != 1.0f) {
      put_kv(kv, p + "rope.scaling.type", gguf::Value::string("linear"));
      put_kv(kv, p + "rope.scaling.factor", gguf::Value::float32(full->rope_factor));
    }
    return Status::ok();
  }
  std::vector<bool> pattern;
  std::vector<int32_t> kv_heads;
  for (const LayerConfig& l : c.layers) {
    pattern.push_back(l.sliding);
    kv_heads.push_back(l.num_key_value_heads);
  }
  const int32_t hd_full = full != nullptr ? full->head_dim : swa->head_dim;
  const int32_t hd_swa = swa != nullptr ? swa->head_dim : full->head_dim;
  put_kv(kv, p + "attention.sliding_window_pattern", gguf::Value::bool_array(pattern));
  put_kv(kv, p + "attention.head_count_kv", gguf::Value::array(std::span<const int32_t>(kv_heads)));
  put_kv(kv, p + "attention.key_length", gguf::Value::uint32(static_cast<uint32_t>(hd_full)));
  put_kv(kv, p + "attention.value_length", gguf::Value::uint32(static_cast<uint32_t>(hd_full)));
  put_kv(kv, p + "attention.key_length_swa", gguf::Value::uint32(static_cast<uint32_t>(hd_swa)));
  put_kv(kv, p + "attention.value_length_swa", gguf::Value::uint32(static_cast<uint32_t>(hd_swa)));
  put_kv(kv, p + "rope.freq_base_swa", gguf::Value::float32(swa != nullptr ? swa->rope_theta : 1e4f));
  put_kv(kv, p + "rope.dimension_count", gguf::Value::uint32(static_cast<uint32_t>(hd_full)));
  put_kv(kv, p + "rope.dimension_count_swa", gguf::Value::uint32(static_cast<uint32_t>(hd_swa)));
  put_kv(kv, p + "attention.shared_kv_layers", gguf::Value::uint32(0));
  put_kv(kv, p + "embedding_length_per_layer_input", gguf::Value::uint32(0));
  return Status::ok();
}

Result<std::vector<uint8_t>> gguf_header(const GgufKeyValues& kvs, std::vector<GgufTensorSlot>* tensors, uint64_t* data_start,
                                         uint64_t* data_bytes) {
  std::vector<uint8_t> out = {'G', 'G', 'U', 'F'};
  auto put = [&](auto v) {
    uint8_t b[sizeof(v)];
    std::memcpy(b, &v, sizeof(v));
    out.insert(out.end(), b, b + sizeof(v));
  };
  auto put_string = [&](const std::string& s) {
    put(static_cast<uint64_t>(s.size()));
    out.insert(out.end(), s.begin(), s.end());
  };
  put(static_cast<uint32_t>(3));
  put(static_cast<uint64_t>(tensors->size()));
  put(static_cast<uint64_t>(kvs.size()));
  for (const auto& [key, value] : kvs) {
    put_string(key);
    put(static_cast<uint32_t>(value.type()));
    out.insert(out.end(), value.bytes().begin(), value.bytes().end());
  }
  uint64_t offset = 0;
  for (GgufTensorSlot& t : *tensors) {
    GE_ASSIGN_OR_RETURN(t.nbytes, ggml_tensor_nbytes(ggml_type_of(t.type), t.ne.data(), static_cast<int>(t.ne.size())));
    put_string(t.name);
    put(static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) put(d);
    put(ggml_type_of(t.type));
    put(offset);
    t.offset = offset;
    uint64_t padded;
    if (!pad_ok(t.nbytes, kGgufAlignment, &padded) || !add_ok(offset, padded, &offset)) {
      return invalid_argument("quantize: GGUF data size overflows");
    }
  }
  if (!pad_ok(out.size(), kGgufAlignment, data_start)) return invalid_argument("quantize: GGUF header overflows");
  out.resize(*data_start, 0);
  *data_bytes = offset;
  return out;
}

}  // namespace ge
