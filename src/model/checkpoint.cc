// Checkpoint loading: maps GGUF (llama.cpp names) and HF / torchao safetensors names onto the one
// logical weight set of model/checkpoint.h. Weights are views into the mapped files, never copies.
#include "model/checkpoint.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <cmath>
#include <optional>

#include "core/checked_math.h"
#include "core/dtype.h"
#include "core/mapped_file.h"
#include "formats/gguf_reader.h"
#include "formats/safetensors_index.h"
#include "formats/safetensors_reader.h"
#include "quant/dequantize.h"

namespace ge {

struct Checkpoint::Files {
  std::optional<gguf::GgufFile> gguf;
  std::optional<safetensors::SafetensorsModel> st;
};

Checkpoint::~Checkpoint() = default;

const gguf::GgufFile* Checkpoint::gguf() const {
  return files_ && files_->gguf ? &*files_->gguf : nullptr;
}

Result<QuantType> quant_type_from_ggml(uint32_t t) {
  switch (t) {
    case 0: return QuantType::kF32;
    case 1: return QuantType::kF16;
    case 2: return QuantType::kQ4_0;
    case 6: return QuantType::kQ5_0;
    case 8: return QuantType::kQ8_0;
    case 12: return QuantType::kQ4_K;
    case 13: return QuantType::kQ5_K;
    case 14: return QuantType::kQ6_K;
    case 30: return QuantType::kBF16;
    default: break;
  }
  return unsupported("ggml tensor type " + std::to_string(t) +
                     " is not supported (supported: F32, F16, BF16, Q4_0, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K)");
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Decodes a 1-D weight (norm multipliers, scalars) to fp32.
std::vector<float> to_floats(const QuantWeight& w) {
  std::vector<float> out(static_cast<size_t>(w.rows * w.cols));
  for (int64_t r = 0; r < w.rows; ++r) dequantize_row(w, r, out.data() + r * w.cols);
  return out;
}

Status expect_shape(const std::string& name, const QuantWeight& w, int64_t rows, int64_t cols) {
  if (w.rows != rows || w.cols != cols)
    return format_error("tensor '" + name + "' has shape [" + std::to_string(w.rows) + ", " +
                        std::to_string(w.cols) + "], expected [" + std::to_string(rows) + ", " +
                        std::to_string(cols) + "]");
  return Status::ok();
}

Status expect_vector(const std::string& name, const std::vector<float>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) != n)
    return format_error("tensor '" + name + "' has " + std::to_string(v.size()) + " elements, expected " +
                        std::to_string(n));
  for (float x : v)
    if (!std::isfinite(x)) return format_error("tensor '" + name + "' contains NaN or Inf");
  return Status::ok();
}

// Checks every tensor of the logical set against the config.
Status check_shapes(const GemmaConfig& c, const ModelWeights& w) {
  GE_RETURN_IF_ERROR(expect_shape("embed_tokens", w.embed_tokens, c.vocab_size, c.hidden_size));
  if (w.lm_head.data != nullptr) GE_RETURN_IF_ERROR(expect_shape("lm_head", w.lm_head, c.vocab_size, c.hidden_size));
  GE_RETURN_IF_ERROR(expect_vector("norm", w.norm, c.hidden_size));
  for (int32_t i = 0; i < c.num_hidden_layers; ++i) {
    const LayerConfig& lc = c.layers[static_cast<size_t>(i)];
    const LayerWeights& l = w.layers[static_cast<size_t>(i)];
    const std::string p = "layer " + std::to_string(i) + " ";
    const int64_t q = static_cast<int64_t>(c.num_attention_heads) * lc.head_dim;
    const int64_t kv = static_cast<int64_t>(lc.num_key_value_heads) * lc.head_dim;
    GE_RETURN_IF_ERROR(expect_shape(p + "q_proj", l.q_proj, q, c.hidden_size));
    GE_RETURN_IF_ERROR(expect_shape(p + "k_proj", l.k_proj, kv, c.hidden_size));
    if (!lc.k_eq_v) GE_RETURN_IF_ERROR(expect_shape(p + "v_proj", l.v_proj, kv, c.hidden_size));
    GE_RETURN_IF_ERROR(expect_shape(p + "o_proj", l.o_proj, c.hidden_size, q));
    GE_RETURN_IF_ERROR(expect_shape(p + "gate_proj", l.gate_proj, c.intermediate_size, c.hidden_size));
    GE_RETURN_IF_ERROR(expect_shape(p + "up_proj", l.up_proj, c.intermediate_size, c.hidden_size));
    GE_RETURN_IF_ERROR(expect_shape(p + "down_proj", l.down_proj, c.hidden_size, c.intermediate_size));
    GE_RETURN_IF_ERROR(expect_vector(p + "input_layernorm", l.input_layernorm, c.hidden_size));
    GE_RETURN_IF_ERROR(expect_vector(p + "q_norm", l.q_norm, lc.head_dim));
    GE_RETURN_IF_ERROR(expect_vector(p + "k_norm", l.k_norm, lc.head_dim));
    GE_RETURN_IF_ERROR(expect_vector(p + "post_attention_layernorm", l.post_attention_layernorm, c.hidden_size));
    GE_RETURN_IF_ERROR(expect_vector(p + "pre_feedforward_layernorm", l.pre_feedforward_layernorm, c.hidden_size));
    GE_RETURN_IF_ERROR(expect_vector(p + "post_feedforward_layernorm", l.post_feedforward_layernorm, c.hidden_size));
    if (!std::isfinite(l.layer_scalar)) return format_error(p + "layer_scalar is not finite");
  }
  return Status::ok();
}

uint64_t weight_bytes_of(const QuantWeight& w) {
  if (w.data == nullptr) return 0;
  Result<WeightBytes> b = weight_bytes(w);
  return b.is_ok() ? b->data + b->scale + b->zero : 0;
}

// Every matrix of the logical set, for whole-set walks (sizes, mlock).
std::vector<const QuantWeight*> all_matrices(const ModelWeights& w) {
  std::vector<const QuantWeight*> out = {&w.embed_tokens, &w.lm_head};
  for (const auto& l : w.layers)
    for (const QuantWeight* q : {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj})
      out.push_back(q);
  return out;
}

uint64_t total_weight_bytes(const ModelWeights& w) {
  uint64_t n = 0;
  for (const QuantWeight* q : all_matrices(w)) n += weight_bytes_of(*q);
  return n;
}

// ---------------------------------------------------------------- GGUF

Result<QuantWeight> gguf_weight(const gguf::GgufFile& f, const std::string& name) {
  const gguf::TensorInfo* t = f.find_tensor(name);
  if (t == nullptr) return not_found("gguf: missing tensor '" + name + "'");
  GE_ASSIGN_OR_RETURN(QuantType type, quant_type_from_ggml(t->ggml_type));
  if (t->ne.empty() || t->ne.size() > 2) return format_error("gguf: tensor '" + name + "' must be 1-D or 2-D");
  QuantWeight w;
  w.type = type;
  w.cols = t->ne[0];
  w.rows = t->ne.size() == 2 ? t->ne[1] : 1;
  w.data = t->data;
  GE_ASSIGN_OR_RETURN(uint64_t rb, row_bytes(type, w.cols));
  uint64_t total;
  if (!mul_ok(rb, static_cast<uint64_t>(w.rows), &total) || total != t->nbytes)
    return format_error("gguf: tensor '" + name + "' size does not match its type and shape");
  return w;
}

Result<std::vector<float>> gguf_vector(const gguf::GgufFile& f, const std::string& name) {
  GE_ASSIGN_OR_RETURN(QuantWeight w, gguf_weight(f, name));
  if (w.rows != 1) return format_error("gguf: tensor '" + name + "' must be 1-D");
  return to_floats(w);
}

}  // namespace

Status Checkpoint::load_gguf(const std::string& path) {
  GE_ASSIGN_OR_RETURN(gguf::GgufFile file, gguf::GgufFile::open(path));
  files_->gguf.emplace(std::move(file));
  const gguf::GgufFile& f = *files_->gguf;
  GE_ASSIGN_OR_RETURN(config_, config_from_gguf(f));
  if (f.find_tensor("rope_freqs.weight") != nullptr) {
    GE_ASSIGN_OR_RETURN(config_.rope_freq_factors, gguf_vector(f, "rope_freqs.weight"));
  }
  ModelWeights& w = weights_;
  GE_ASSIGN_OR_RETURN(w.embed_tokens, gguf_weight(f, "token_embd.weight"));
  if (f.find_tensor("output.weight") != nullptr) {
    GE_ASSIGN_OR_RETURN(w.lm_head, gguf_weight(f, "output.weight"));
  }
  GE_ASSIGN_OR_RETURN(w.norm, gguf_vector(f, "output_norm.weight"));
  // Both Gemma 3 (+1 baked in by the converter) and Gemma 4 (raw) norms are final multipliers.
  for (int32_t i = 0; i < config_.num_hidden_layers; ++i) {
    LayerWeights l;
    const std::string b = "blk." + std::to_string(i) + ".";
    GE_ASSIGN_OR_RETURN(l.q_proj, gguf_weight(f, b + "attn_q.weight"));
    GE_ASSIGN_OR_RETURN(l.k_proj, gguf_weight(f, b + "attn_k.weight"));
    if (!config_.layers[static_cast<size_t>(i)].k_eq_v) {
      GE_ASSIGN_OR_RETURN(l.v_proj, gguf_weight(f, b + "attn_v.weight"));
    }
    GE_ASSIGN_OR_RETURN(l.o_proj, gguf_weight(f, b + "attn_output.weight"));
    GE_ASSIGN_OR_RETURN(l.gate_proj, gguf_weight(f, b + "ffn_gate.weight"));
    GE_ASSIGN_OR_RETURN(l.up_proj, gguf_weight(f, b + "ffn_up.weight"));
    GE_ASSIGN_OR_RETURN(l.down_proj, gguf_weight(f, b + "ffn_down.weight"));
    GE_ASSIGN_OR_RETURN(l.input_layernorm, gguf_vector(f, b + "attn_norm.weight"));
    GE_ASSIGN_OR_RETURN(l.q_norm, gguf_vector(f, b + "attn_q_norm.weight"));
    GE_ASSIGN_OR_RETURN(l.k_norm, gguf_vector(f, b + "attn_k_norm.weight"));
    GE_ASSIGN_OR_RETURN(l.post_attention_layernorm, gguf_vector(f, b + "post_attention_norm.weight"));
    GE_ASSIGN_OR_RETURN(l.pre_feedforward_layernorm, gguf_vector(f, b + "ffn_norm.weight"));
    GE_ASSIGN_OR_RETURN(l.post_feedforward_layernorm, gguf_vector(f, b + "post_ffw_norm.weight"));
    if (config_.has_layer_scalar) {
      GE_ASSIGN_OR_RETURN(std::vector<float> s, gguf_vector(f, b + "layer_output_scale.weight"));
      if (s.size() != 1) return format_error("gguf: " + b + "layer_output_scale.weight must have one element");
      l.layer_scalar = s[0];
    }
    w.layers.push_back(std::move(l));
  }
  // llama.cpp multiplies by sqrtf(n_embd) in fp32.
  w.embed_scale = std::sqrt(static_cast<float>(config_.hidden_size));
  return Status::ok();
}

// ---------------------------------------------------------------- safetensors / torchao

namespace {

Result<QuantType> quant_type_from_st(safetensors::DType d) {
  switch (d) {
    case safetensors::DType::kF32: return QuantType::kF32;
    case safetensors::DType::kF16: return QuantType::kF16;
    case safetensors::DType::kBF16: return QuantType::kBF16;
    default: break;
  }
  return unsupported(std::string("safetensors dtype ") + safetensors::dtype_name(d) +
                     " is not supported for weights (F32, F16, BF16, or the torchao INT4/INT8 layout)");
}

class StWeights {
 public:
  StWeights(const safetensors::SafetensorsModel& m, std::string prefix, CheckpointFormat* fmt)
      : m_(m), prefix_(std::move(prefix)), fmt_(fmt) {}

  bool has(const std::string& name) const {
    const std::string full = prefix_ + name;
    if (m_.find(full) != nullptr) return true;
    return m_.find(stem(full) + "._weight_qdata") != nullptr;
  }

  Result<QuantWeight> weight(const std::string& name) const {
    const std::string full = prefix_ + name;
    if (const safetensors::TensorInfo* t = m_.find(full)) {
      GE_ASSIGN_OR_RETURN(QuantType type, quant_type_from_st(t->dtype));
      if (t->shape.empty() || t->shape.size() > 2) return format_error("safetensors: tensor '" + full + "' must be 1-D or 2-D");
      QuantWeight w;
      w.type = type;
      w.rows = t->shape.size() == 2 ? t->shape[0] : 1;
      w.cols = t->shape.back();
      w.data = t->data;
      return w;
    }
    return torchao_weight(full);
  }

  Result<std::vector<float>> vector(const std::string& name, float add) const {
    GE_ASSIGN_OR_RETURN(QuantWeight w, weight(name));
    if (w.rows != 1 || !is_row_blocked(w.type)) return format_error("safetensors: '" + prefix_ + name + "' must be a 1-D float tensor");
    std::vector<float> v = to_floats(w);
    for (float& x : v) x += add;
    return v;
  }

 private:
  static std::string stem(const std::string& full) {
    return ends_with(full, ".weight") ? full.substr(0, full.size() - 7) : full;
  }

  // torchao: `<fqn minus .weight>._weight_qdata / _weight_scale / _weight_zero_point`.
  Result<QuantWeight> torchao_weight(const std::string& full) const {
    const std::string s = stem(full);
    const safetensors::TensorInfo* q = m_.find(s + "._weight_qdata");
    const safetensors::TensorInfo* sc = m_.find(s + "._weight_scale");
    const safetensors::TensorInfo* z = m_.find(s + "._weight_zero_point");
    if (q == nullptr) return not_found("safetensors: missing tensor '" + full + "'");
    if (sc == nullptr) return format_error("torchao: '" + s + "' has qdata but no _weight_scale");
    if (q->shape.size() != 2 || sc->shape.size() != 2 || sc->dtype != safetensors::DType::kBF16)
      return format_error("torchao: '" + s + "' qdata/scale must be 2-D with a bf16 scale");
    *fmt_ = CheckpointFormat::kTorchao;
    QuantWeight w;
    w.data = q->data;
    w.scale = reinterpret_cast<const uint16_t*>(sc->data);
    if (q->dtype == safetensors::DType::kU8) {
      // Int4Tensor: qdata [N, K/2], scale/zero [K/gs, N] bf16.
      w.type = QuantType::kInt4Group;
      w.rows = q->shape[0];
      w.cols = q->shape[1] * 2;
      if (sc->shape[1] != w.rows || sc->shape[0] <= 0 || w.cols % sc->shape[0] != 0)
        return format_error("torchao: Int4 '" + s + "' scale shape does not match qdata");
      w.group_size = w.cols / sc->shape[0];
      if (z != nullptr) {
        if (z->dtype != safetensors::DType::kBF16 || z->shape != sc->shape)
          return format_error("torchao: Int4 '" + s + "' zero_point must be bf16 shaped like scale");
        w.zero = z->data;
      }
    } else if (q->dtype == safetensors::DType::kI8) {
      // IntxUnpackedToInt8Tensor: qdata [N, K] int8, scale/zero [N, K/gs].
      w.type = QuantType::kInt8Group;
      w.rows = q->shape[0];
      w.cols = q->shape[1];
      if (sc->shape[0] != w.rows || sc->shape[1] <= 0 || w.cols % sc->shape[1] != 0)
        return format_error("torchao: Int8 '" + s + "' scale shape does not match qdata");
      w.group_size = w.cols / sc->shape[1];
      if (z != nullptr) {
        if (z->dtype != safetensors::DType::kI8 || z->shape != sc->shape)
          return format_error("torchao: Int8 '" + s + "' zero_point must be int8 shaped like scale");
        w.zero = z->data;
      }
    } else {
      return unsupported("torchao: '" + s + "' qdata dtype is neither uint8 (Int4) nor int8 (Int8)");
    }
    GE_RETURN_IF_ERROR(validate_weight(w));
    return w;
  }

  const safetensors::SafetensorsModel& m_;
  std::string prefix_;
  CheckpointFormat* fmt_;
};

}  // namespace

Status Checkpoint::load_safetensors(const std::string& path) {
  const std::string dir = is_directory(path) ? path : path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/'));
  hf_dir_ = dir.empty() ? "." : dir;
  Result<std::string> cfg_text = read_text_file(hf_dir_ + "/config.json");
  if (!cfg_text.is_ok())
    return not_found("safetensors checkpoint needs a config.json beside it (looked in '" + hf_dir_ + "')");
  GE_ASSIGN_OR_RETURN(config_, config_from_hf_json(*cfg_text));
  GE_ASSIGN_OR_RETURN(safetensors::SafetensorsModel st, safetensors::SafetensorsModel::open(path));
  files_->st.emplace(std::move(st));
  format_ = CheckpointFormat::kSafetensors;

  std::string prefix;
  bool found = false;
  for (const char* p : {"model.language_model.", "model.", "language_model.model.", ""}) {
    StWeights probe(*files_->st, p, &format_);
    if (probe.has("embed_tokens.weight")) {
      prefix = p;
      found = true;
      break;
    }
  }
  if (!found) return format_error("safetensors: no 'embed_tokens.weight' under any known prefix");
  StWeights st_w(*files_->st, prefix, &format_);
  // HF Gemma 3 stores norm weights w and applies (1 + w); Gemma 4 stores the multiplier itself.
  const float add = config_.family == ModelFamily::kGemma3 ? 1.0f : 0.0f;

  ModelWeights& w = weights_;
  GE_ASSIGN_OR_RETURN(w.embed_tokens, st_w.weight("embed_tokens.weight"));
  StWeights root(*files_->st, "", &format_);
  if (root.has("lm_head.weight")) {
    GE_ASSIGN_OR_RETURN(w.lm_head, root.weight("lm_head.weight"));
  } else if (!config_.tie_word_embeddings) {
    return format_error("safetensors: lm_head.weight missing and tie_word_embeddings is false");
  }
  GE_ASSIGN_OR_RETURN(w.norm, st_w.vector("norm.weight", add));
  for (int32_t i = 0; i < config_.num_hidden_layers; ++i) {
    LayerWeights l;
    const std::string b = "layers." + std::to_string(i) + ".";
    GE_ASSIGN_OR_RETURN(l.q_proj, st_w.weight(b + "self_attn.q_proj.weight"));
    GE_ASSIGN_OR_RETURN(l.k_proj, st_w.weight(b + "self_attn.k_proj.weight"));
    if (!config_.layers[static_cast<size_t>(i)].k_eq_v) {
      GE_ASSIGN_OR_RETURN(l.v_proj, st_w.weight(b + "self_attn.v_proj.weight"));
    }
    GE_ASSIGN_OR_RETURN(l.o_proj, st_w.weight(b + "self_attn.o_proj.weight"));
    GE_ASSIGN_OR_RETURN(l.gate_proj, st_w.weight(b + "mlp.gate_proj.weight"));
    GE_ASSIGN_OR_RETURN(l.up_proj, st_w.weight(b + "mlp.up_proj.weight"));
    GE_ASSIGN_OR_RETURN(l.down_proj, st_w.weight(b + "mlp.down_proj.weight"));
    GE_ASSIGN_OR_RETURN(l.input_layernorm, st_w.vector(b + "input_layernorm.weight", add));
    GE_ASSIGN_OR_RETURN(l.q_norm, st_w.vector(b + "self_attn.q_norm.weight", add));
    GE_ASSIGN_OR_RETURN(l.k_norm, st_w.vector(b + "self_attn.k_norm.weight", add));
    GE_ASSIGN_OR_RETURN(l.post_attention_layernorm, st_w.vector(b + "post_attention_layernorm.weight", add));
    GE_ASSIGN_OR_RETURN(l.pre_feedforward_layernorm, st_w.vector(b + "pre_feedforward_layernorm.weight", add));
    GE_ASSIGN_OR_RETURN(l.post_feedforward_layernorm, st_w.vector(b + "post_feedforward_layernorm.weight", add));
    if (config_.has_layer_scalar) {
      GE_ASSIGN_OR_RETURN(std::vector<float> s, st_w.vector(b + "layer_scalar", 0.0f));
      if (s.size() != 1) return format_error("safetensors: " + b + "layer_scalar must have one element");
      l.layer_scalar = s[0];
    }
    w.layers.push_back(std::move(l));
  }
  // HF: embed_scale = sqrt(hidden) cast to the embedding weight's dtype before the multiply.
  const float s = std::sqrt(static_cast<float>(config_.hidden_size));
  w.embed_scale = w.embed_tokens.type == QuantType::kBF16  ? round_bf16(s)
                  : w.embed_tokens.type == QuantType::kF16 ? fp16_to_f32(f32_to_fp16(s))
                                                            : s;
  return Status::ok();
}

Result<std::unique_ptr<Checkpoint>> Checkpoint::open(const std::string& path) {
  std::unique_ptr<Checkpoint> cp(new Checkpoint());
  cp->path_ = path;
  cp->files_ = std::make_unique<Files>();
  if (is_directory(path) || ends_with(path, ".safetensors") || ends_with(path, ".json")) {
    GE_RETURN_IF_ERROR(cp->load_safetensors(path));
  } else if (ends_with(path, ".bin") || ends_with(path, ".pt") || ends_with(path, ".pth")) {
    return unsupported("'" + path + "' is a pickle checkpoint, which is never loaded (it can run code); "
                       "convert it to safetensors or GGUF first");
  } else {
    GE_RETURN_IF_ERROR(cp->load_gguf(path));
    cp->format_ = CheckpointFormat::kGguf;
  }
  GE_RETURN_IF_ERROR(check_shapes(cp->config_, cp->weights_));
  cp->weight_bytes_ = total_weight_bytes(cp->weights_);
  return cp;
}

Status Checkpoint::lock_memory() {
  // Pins every weight buffer (data, scales, zeros) of the mapped files, page-aligned.
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  auto lock_range = [&](const void* p, uint64_t n) -> Status {
    if (p == nullptr || n == 0) return Status::ok();
    const uintptr_t begin = reinterpret_cast<uintptr_t>(p) & ~(page - 1);
    const uintptr_t end = reinterpret_cast<uintptr_t>(p) + n;
    if (mlock(reinterpret_cast<const void*>(begin), end - begin) != 0)
      return io_error(std::string("mlock of the model weights failed: ") + std::strerror(errno) +
                      "; raise the locked-memory limit (ulimit -l) or run without --mlock");
    return Status::ok();
  };
  for (const QuantWeight* q : all_matrices(weights_)) {
    if (q->data == nullptr) continue;
    GE_ASSIGN_OR_RETURN(WeightBytes b, ::ge::weight_bytes(*q));
    GE_RETURN_IF_ERROR(lock_range(q->data, b.data));
    GE_RETURN_IF_ERROR(lock_range(q->scale, b.scale));
    GE_RETURN_IF_ERROR(lock_range(q->zero, b.zero));
  }
  return Status::ok();
}

}  // namespace ge
