// HF export of a GGUF: the config.json text of a GemmaConfig and the dequantized model.safetensors
// (`gemma quantize --dequantize`), both written under temporary names and renamed when complete.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "formats/torchao_writer.h"
#include "model/checkpoint.h"
#include "model/checkpoint_writer.h"
#include "model/export_output.h"
#include "quant/dequantize.h"
#include "quant/tensor_quantizer.h"

namespace ge {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---------------------------------------------------------------- config.json

namespace {

json base_config_json(const GemmaConfig& c) {
  const bool g4 = c.family == ModelFamily::kGemma4;
  const LayerConfig* full = nullptr;
  const LayerConfig* swa = nullptr;
  std::vector<std::string> types;
  for (const LayerConfig& l : c.layers) {
    if (l.sliding && swa == nullptr) swa = &l;
    if (!l.sliding && full == nullptr) full = &l;
    types.push_back(l.sliding ? "sliding_attention" : "full_attention");
  }
  const LayerConfig& first_swa = swa != nullptr ? *swa : *full;
  json j;
  j["architectures"] = {g4 ? "Gemma4ForCausalLM" : "Gemma3ForCausalLM"};
  j["model_type"] = g4 ? "gemma4_text" : "gemma3_text";
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = first_swa.num_key_value_heads;
  j["head_dim"] = first_swa.head_dim;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["sliding_window"] = c.sliding_window;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["final_logit_softcapping"] = c.final_logit_softcapping > 0 ? json(c.final_logit_softcapping) : json(nullptr);
  j["attn_logit_softcapping"] = c.attn_logit_softcapping > 0 ? json(c.attn_logit_softcapping) : json(nullptr);
  j["hidden_activation"] = "gelu_pytorch_tanh";
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["bos_token_id"] = c.bos_token_id;
  j["eos_token_id"] = c.eos_token_ids.size() == 1 ? json(c.eos_token_ids[0]) : json(c.eos_token_ids);
  j["pad_token_id"] = 0;
  j["layer_types"] = types;
  if (!g4) {
    // query_scale = query_pre_attn_scalar^-0.5; an integer scalar is written as one.
    double qpas = 1.0 / (static_cast<double>(c.query_scale) * c.query_scale);
    if (std::fabs(qpas - std::round(qpas)) < 1e-3 * qpas) qpas = std::round(qpas);
    j["query_pre_attn_scalar"] = qpas;
    j["rope_theta"] = full != nullptr ? full->rope_theta : 1e6f;
    j["rope_local_base_freq"] = swa != nullptr ? swa->rope_theta : 1e4f;
    j["rope_scaling"] = full != nullptr && full->rope_factor != 1.0f
                            ? json{{"rope_type", "linear"}, {"factor", full->rope_factor}}
                            : json(nullptr);
    return j;
  }
  j["hidden_size_per_layer_input"] = 0;
  j["num_kv_shared_layers"] = 0;
  j["enable_moe_block"] = false;
  j["use_double_wide_mlp"] = false;
  json rope = json::object();
  if (swa != nullptr) rope["sliding_attention"] = {{"rope_type", "default"}, {"rope_theta", swa->rope_theta}};
  if (full != nullptr) {
    // A GGUF states partial rotation as rope_freqs (1 for rotating pairs, 1e30 for frozen ones).
    float prf = full->partial_rotary_factor;
    if (!c.rope_freq_factors.empty()) {
      int32_t n_rot = 0;
      while (n_rot < static_cast<int32_t>(c.rope_freq_factors.size()) &&
             c.rope_freq_factors[static_cast<size_t>(n_rot)] == 1.0f)
        ++n_rot;
      prf = static_cast<float>(2 * n_rot) / static_cast<float>(full->head_dim);
    }
    rope["full_attention"] = {{"rope_type", "proportional"},
                              {"partial_rotary_factor", prf},
                              {"rope_theta", full->rope_theta},
                              {"factor", full->rope_factor}};
    j["global_head_dim"] = full->head_dim;
    j["attention_k_eq_v"] = full->k_eq_v;
    if (full->k_eq_v) j["num_global_key_value_heads"] = full->num_key_value_heads;
  }
  j["rope_parameters"] = rope;
  return j;
}

bool same_layer(const LayerConfig& a, const LayerConfig& b) {
  return a.sliding == b.sliding && a.head_dim == b.head_dim && a.num_key_value_heads == b.num_key_value_heads &&
         a.k_eq_v == b.k_eq_v && a.rope_theta == b.rope_theta && a.rope_factor == b.rope_factor;
}

}  // namespace

Result<std::string> hf_config_json(const GemmaConfig& c) {
  GE_RETURN_IF_ERROR(validate_config(c));
  if (c.family == ModelFamily::kGemma4 && !c.rope_freq_factors.empty()) {
    for (size_t i = 0; i < c.rope_freq_factors.size(); ++i) {
      const float f = c.rope_freq_factors[i];
      const bool ok = f == 1.0f || f >= 1e20f;
      const bool ordered = i == 0 || !(f == 1.0f && c.rope_freq_factors[i - 1] != 1.0f);
      if (!ok || !ordered) return unsupported("config.json: rope_freqs other than a rotating prefix are not expressible");
    }
  }
  json j = base_config_json(c);
  // Layers the shared fields do not describe (e.g. Gemma 4 full layers without K=V) get entries in
  // per_layer_config, which transformers 5.x and config_from_hf_json read.
  GE_ASSIGN_OR_RETURN(GemmaConfig parsed, config_from_hf_json(j.dump()));
  json per_layer = json::object();
  for (size_t i = 0; i < c.layers.size(); ++i) {
    const LayerConfig& want = c.layers[i];
    const LayerConfig& got = parsed.layers[i];
    if (want.head_dim != got.head_dim || want.num_key_value_heads != got.num_key_value_heads) {
      per_layer[std::to_string(i)] = {{"head_dim", want.head_dim}, {"num_key_value_heads", want.num_key_value_heads}};
    }
  }
  if (!per_layer.empty()) {
    j["per_layer_config"] = per_layer;
    GE_ASSIGN_OR_RETURN(parsed, config_from_hf_json(j.dump()));
  }
  for (size_t i = 0; i < c.layers.size(); ++i) {
    if (!same_layer(c.layers[i], parsed.layers[i])) {
      return unsupported("config.json: layer " + std::to_string(i) + " of this model cannot be described in HF fields");
    }
  }
  return j.dump(2) + "\n";
}

// ---------------------------------------------------------------- GGUF → HF

Status dequantize_gguf_to_hf(const std::string& gguf_path, const std::string& out_dir, bool bf16, bool force,
                             int n_threads) {
  GE_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> cp, Checkpoint::open(gguf_path));
  if (cp->format() != CheckpointFormat::kGguf) {
    return invalid_argument("dequantize: '" + gguf_path + "' is not a GGUF file");
  }
  const GemmaConfig& c = cp->config();
  const ModelWeights& w = cp->weights();
  GE_ASSIGN_OR_RETURN(std::string config_text, hf_config_json(c));
  std::error_code ec;
  if (fs::exists(out_dir, ec) && !fs::is_directory(out_dir, ec)) {
    return invalid_argument("dequantize: output '" + out_dir + "' exists and is not a directory");
  }
  const std::string model_path = out_dir + "/model.safetensors";
  GE_RETURN_IF_ERROR(check_output_free("dequantize", model_path, force));
  GE_RETURN_IF_ERROR(check_output_free("dequantize", out_dir + "/config.json", force));
  fs::create_directories(out_dir, ec);
  if (ec) return io_error("dequantize: cannot create '" + out_dir + "': " + ec.message());

  struct Item {
    std::string name;
    const QuantWeight* matrix = nullptr;
    std::vector<float> values;  // 1-D tensors
  };
  std::vector<Item> items;
  // HF Gemma 3 stores w and applies (1 + w); the GGUF (and the loader) hold the multiplier.
  const float shift = c.family == ModelFamily::kGemma3 ? -1.0f : 0.0f;
  auto norm = [&](const std::string& name, std::vector<float> v) {
    for (float& x : v) x += shift;
    items.push_back({name, nullptr, std::move(v)});
  };
  items.push_back({"model.embed_tokens.weight", &w.embed_tokens, {}});
  for (int32_t i = 0; i < c.num_hidden_layers; ++i) {
    const LayerWeights& l = w.layers[static_cast<size_t>(i)];
    const std::string p = "model.layers." + std::to_string(i) + ".";
    norm(p + "input_layernorm.weight", l.input_layernorm);
    items.push_back({p + "self_attn.q_proj.weight", &l.q_proj, {}});
    items.push_back({p + "self_attn.k_proj.weight", &l.k_proj, {}});
    if (l.v_proj.data != nullptr) items.push_back({p + "self_attn.v_proj.weight", &l.v_proj, {}});
    items.push_back({p + "self_attn.o_proj.weight", &l.o_proj, {}});
    norm(p + "self_attn.q_norm.weight", l.q_norm);
    norm(p + "self_attn.k_norm.weight", l.k_norm);
    norm(p + "post_attention_layernorm.weight", l.post_attention_layernorm);
    norm(p + "pre_feedforward_layernorm.weight", l.pre_feedforward_layernorm);
    items.push_back({p + "mlp.gate_proj.weight", &l.gate_proj, {}});
    items.push_back({p + "mlp.up_proj.weight", &l.up_proj, {}});
    items.push_back({p + "mlp.down_proj.weight", &l.down_proj, {}});
    norm(p + "post_feedforward_layernorm.weight", l.post_feedforward_layernorm);
    if (c.has_layer_scalar) items.push_back({p + "layer_scalar", nullptr, {l.layer_scalar}});
  }
  norm("model.norm.weight", w.norm);
  if (w.lm_head.data != nullptr) items.push_back({"lm_head.weight", &w.lm_head, {}});

  const safetensors::DType dtype = bf16 ? safetensors::DType::kBF16 : safetensors::DType::kF32;
  const uint64_t esize = bf16 ? 2 : 4;
  safetensors::TorchaoWriter writer(/*torchao_metadata=*/false);
  writer.set_metadata("format", "pt");
  for (const Item& it : items) {
    const std::vector<int64_t> shape = it.matrix != nullptr ? std::vector<int64_t>{it.matrix->rows, it.matrix->cols}
                                                            : std::vector<int64_t>{static_cast<int64_t>(it.values.size())};
    GE_RETURN_IF_ERROR(writer.add_plain(it.name, dtype, shape));
  }
  GE_RETURN_IF_ERROR(writer.open(model_path));
  ThreadPool pool(resolve_threads(n_threads));
  for (const Item& it : items) {
    const safetensors::TensorSlot& slot = *writer.slot(it.name);
    auto encode = [&](const float* v, int64_t n, uint64_t offset) -> Status {
      if (!bf16) return writer.write(slot, offset, v, static_cast<uint64_t>(n) * 4);
      std::vector<uint16_t> h(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) h[static_cast<size_t>(i)] = f32_to_bf16(v[i]);
      return writer.write(slot, offset, h.data(), static_cast<uint64_t>(n) * 2);
    };
    if (it.matrix == nullptr) {
      GE_RETURN_IF_ERROR(encode(it.values.data(), static_cast<int64_t>(it.values.size()), 0));
      continue;
    }
    const QuantWeight& m = *it.matrix;
    const int64_t chunk = std::max<int64_t>(1, kDefaultChunkElems / m.cols);
    std::mutex mu;
    Status first;
    pool.parallel_for((m.rows + chunk - 1) / chunk, 1, [&](int64_t b, int64_t e) {
      std::vector<float> rows;
      for (int64_t ci = b; ci < e; ++ci) {
        const int64_t r0 = ci * chunk, n = std::min(chunk, m.rows - r0);
        rows.resize(static_cast<size_t>(n * m.cols));
        for (int64_t r = 0; r < n; ++r) dequantize_row(m, r0 + r, rows.data() + r * m.cols);
        Status s = encode(rows.data(), n * m.cols, static_cast<uint64_t>(r0 * m.cols) * esize);
        if (!s.is_ok()) {
          std::lock_guard<std::mutex> lock(mu);
          if (first.is_ok()) first = s;
        }
      }
    });
    GE_RETURN_IF_ERROR(first);
  }
  GE_RETURN_IF_ERROR(writer.commit());
  const std::string cfg_tmp = out_dir + "/config.json.tmp";
  {
    std::FILE* f = std::fopen(cfg_tmp.c_str(), "wb");
    if (f == nullptr) return io_error("dequantize: cannot write '" + cfg_tmp + "'");
    const bool ok = std::fwrite(config_text.data(), 1, config_text.size(), f) == config_text.size();
    if (std::fclose(f) != 0 || !ok) return io_error("dequantize: cannot write '" + cfg_tmp + "'");
  }
  fs::rename(cfg_tmp, out_dir + "/config.json", ec);
  if (ec) return io_error("dequantize: cannot rename '" + cfg_tmp + "': " + ec.message());
  return Status::ok();
}

}  // namespace ge
