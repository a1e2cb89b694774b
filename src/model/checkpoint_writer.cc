// Checkpoint export: maps an HF Gemma checkpoint's tensors to roles, asks the recipe for each
// tensor's encoding, and streams every tensor through quantize_tensor into a torchao safetensors file
// or a GGUF whose header was laid out up front. Only one tensor's chunks are ever in memory.
#include "model/checkpoint_writer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>

#include "core/checked_math.h"
#include "core/dtype.h"
#include "core/mapped_file.h"
#include "formats/ggml_types.h"
#include "formats/gguf_reader.h"
#include "formats/gguf_writer.h"
#include "formats/safetensors_index.h"
#include "formats/torchao_writer.h"
#include "model/export_output.h"
#include "model/gguf_model_keys.h"
#include "quant/dequantize.h"

namespace ge {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// HF text-model prefixes, most specific first (the loader accepts the same set).
constexpr const char* kTextPrefixes[] = {"model.language_model.", "model.", "language_model.model.", ""};
// Towers of the multimodal checkpoints that a text export leaves out.
constexpr const char* kSkippedPrefixes[] = {"model.vision_tower.", "model.embed_vision.", "model.audio_tower.",
                                            "model.embed_audio.", "model.multi_modal_projector.",
                                            "multi_modal_projector.", "vision_tower.", "audio_tower."};
// Files ExecuTorch's quantize_and_save copies beside the weights (plus the other small HF files).
constexpr const char* kSideFiles[] = {"config.json",          "generation_config.json", "tokenizer.json",
                                      "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                                      "chat_template.jinja",  "chat_template.json"};

struct SourceTensor {
  std::string fqn;        // torchao / ExecuTorch FQN: "layers.0.self_attn.q_proj.weight"
  std::string gguf_name;  // "blk.0.attn_q.weight"
  TensorRole role = TensorRole::kNorm;
  int32_t layer = -1;
  QuantWeight view;            // F32 / F16 / BF16 [rows, cols]; 1-D tensors have rows = 1
  std::vector<int64_t> shape;  // as stored in the source
  WeightEncoding encoding = WeightEncoding::kKeep;
  QuantTarget target;          // for quantized tensors, in the chosen output format
};

struct SourceModel {
  GemmaConfig config;
  std::string dir;
  std::optional<safetensors::SafetensorsModel> st;
  std::vector<SourceTensor> tensors;
};

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

std::string shape_text(const std::vector<int64_t>& s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + "]";
}

// Drops fully covered pages of a read-only file mapping from the resident set; the page cache keeps
// them, so a later read refaults without I/O.
void release_pages(const uint8_t* p, uint64_t n) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n) & ~(page - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

Result<QuantType> float_type_of(const safetensors::TensorInfo& t) {
  switch (t.dtype) {
    case safetensors::DType::kF32: return QuantType::kF32;
    case safetensors::DType::kF16: return QuantType::kF16;
    case safetensors::DType::kBF16: return QuantType::kBF16;
    default: break;
  }
  return invalid_argument("quantize: tensor '" + t.name + "' is " + safetensors::dtype_name(t.dtype) +
                          "; the input must be an unquantized F32, F16 or BF16 checkpoint");
}

// ---------------------------------------------------------------- reading the source

class SourceBuilder {
 public:
  SourceBuilder(SourceModel* m, std::string prefix) : m_(m), prefix_(std::move(prefix)) {}

  // Adds `name` (relative to the text prefix, or absolute with `absolute`) with the expected shape.
  Status add(const std::string& name, const std::string& gguf_name, TensorRole role, int32_t layer,
             std::vector<int64_t> expected, bool absolute = false) {
    const std::string full = absolute ? name : prefix_ + name;
    const safetensors::TensorInfo* t = m_->st->find(full);
    if (t == nullptr) {
      if (m_->st->find(stem(full) + "._weight_qdata") != nullptr) {
        return invalid_argument("quantize: '" + full + "' is already quantized (torchao layout); the input must be "
                                "an unquantized checkpoint");
      }
      return not_found("quantize: the checkpoint has no tensor '" + full + "'");
    }
    GE_ASSIGN_OR_RETURN(QuantType type, float_type_of(*t));
    // layer_scalar is [1] in HF checkpoints; accept a scalar too.
    const bool scalar_ok = expected.size() == 1 && expected[0] == 1 && t->shape.empty();
    if (t->shape != expected && !scalar_ok) {
      return invalid_argument("quantize: tensor '" + full + "' has shape " + shape_text(t->shape) + ", expected " +
                              shape_text(expected) + " for this config.json");
    }
    SourceTensor s;
    s.fqn = name;
    s.gguf_name = gguf_name;
    s.role = role;
    s.layer = layer;
    s.shape = t->shape;
    s.view.type = type;
    s.view.rows = expected.size() == 2 ? expected[0] : 1;
    s.view.cols = expected.back();
    s.view.data = t->data;
    used_.insert(full);
    m_->tensors.push_back(std::move(s));
    return Status::ok();
  }

  const std::set<std::string>& used() const { return used_; }

 private:
  static std::string stem(const std::string& full) {
    return full.size() > 7 && full.compare(full.size() - 7, 7, ".weight") == 0 ? full.substr(0, full.size() - 7) : full;
  }
  SourceModel* m_;
  std::string prefix_;
  std::set<std::string> used_;
};

Status read_source(const std::string& input, const QuantizeOptions& o, SourceModel* m, QuantizeReport* report) {
  std::error_code ec;
  const bool is_dir = fs::is_directory(input, ec);
  if (!is_dir && !fs::is_regular_file(input, ec)) return not_found("quantize: input '" + input + "' does not exist");
  const std::string ext = fs::path(input).extension().string();
  if (!is_dir && ext != ".safetensors" && ext != ".json") {
    return invalid_argument("quantize: input '" + input + "' is not an HF safetensors checkpoint" +
                            (ext == ".gguf" ? " (a GGUF is already quantized; --dequantize-gguf turns it into one)" : ""));
  }
  m->dir = is_dir ? input : fs::path(input).parent_path().string();
  if (m->dir.empty()) m->dir = ".";
  Result<std::string> cfg = read_text_file(m->dir + "/config.json");
  if (!cfg.is_ok()) return not_found("quantize: no config.json in '" + m->dir + "' (the HF checkpoint's config is needed)");
  GE_ASSIGN_OR_RETURN(m->config, config_from_hf_json(*cfg));
  GE_ASSIGN_OR_RETURN(safetensors::SafetensorsModel st, safetensors::SafetensorsModel::open(input));
  m->st.emplace(std::move(st));
  const GemmaConfig& c = m->config;

  std::string prefix;
  bool found = false;
  for (const char* p : kTextPrefixes) {
    if (m->st->find(std::string(p) + "embed_tokens.weight") != nullptr ||
        m->st->find(std::string(p) + "embed_tokens._weight_qdata") != nullptr) {
      prefix = p;
      found = true;
      break;
    }
  }
  if (!found) return not_found("quantize: the checkpoint has no embed_tokens.weight under any known prefix");
  SourceBuilder b(m, prefix);
  const int64_t H = c.hidden_size, F = c.intermediate_size;
  GE_RETURN_IF_ERROR(b.add("embed_tokens.weight", "token_embd.weight", TensorRole::kEmbedding, -1, {c.vocab_size, H}));
  for (int32_t i = 0; i < c.num_hidden_layers; ++i) {
    const LayerConfig& lc = c.layers[static_cast<size_t>(i)];
    const std::string p = "layers." + std::to_string(i) + ".";
    const std::string g = "blk." + std::to_string(i) + ".";
    const int64_t q = static_cast<int64_t>(c.num_attention_heads) * lc.head_dim;
    const int64_t kv = static_cast<int64_t>(lc.num_key_value_heads) * lc.head_dim;
    GE_RETURN_IF_ERROR(b.add(p + "input_layernorm.weight", g + "attn_norm.weight", TensorRole::kNorm, i, {H}));
    GE_RETURN_IF_ERROR(b.add(p + "self_attn.q_proj.weight", g + "attn_q.weight", TensorRole::kAttnQ, i, {q, H}));
    GE_RETURN_IF_ERROR(b.add(p + "self_attn.k_proj.weight", g + "attn_k.weight", TensorRole::kAttnK, i, {kv, H}));
    if (!lc.k_eq_v) {
      GE_RETURN_IF_ERROR(b.add(p + "self_attn.v_proj.weight", g + "attn_v.weight", TensorRole::kAttnV, i, {kv, H}));
    }
    GE_RETURN_IF_ERROR(b.add(p + "self_attn.o_proj.weight", g + "attn_output.weight", TensorRole::kAttnO, i, {H, q}));
    GE_RETURN_IF_ERROR(
        b.add(p + "self_attn.q_norm.weight", g + "attn_q_norm.weight", TensorRole::kNorm, i, {lc.head_dim}));
    GE_RETURN_IF_ERROR(
        b.add(p + "self_attn.k_norm.weight", g + "attn_k_norm.weight", TensorRole::kNorm, i, {lc.head_dim}));
    GE_RETURN_IF_ERROR(
        b.add(p + "post_attention_layernorm.weight", g + "post_attention_norm.weight", TensorRole::kNorm, i, {H}));
    GE_RETURN_IF_ERROR(b.add(p + "pre_feedforward_layernorm.weight", g + "ffn_norm.weight", TensorRole::kNorm, i, {H}));
    GE_RETURN_IF_ERROR(b.add(p + "mlp.gate_proj.weight", g + "ffn_gate.weight", TensorRole::kMlpGate, i, {F, H}));
    GE_RETURN_IF_ERROR(b.add(p + "mlp.up_proj.weight", g + "ffn_up.weight", TensorRole::kMlpUp, i, {F, H}));
    GE_RETURN_IF_ERROR(b.add(p + "mlp.down_proj.weight", g + "ffn_down.weight", TensorRole::kMlpDown, i, {H, F}));
    GE_RETURN_IF_ERROR(
        b.add(p + "post_feedforward_layernorm.weight", g + "post_ffw_norm.weight", TensorRole::kNorm, i, {H}));
    if (c.has_layer_scalar) {
      GE_RETURN_IF_ERROR(b.add(p + "layer_scalar", g + "layer_output_scale.weight", TensorRole::kLayerScalar, i, {1}));
    }
  }
  GE_RETURN_IF_ERROR(b.add("norm.weight", "output_norm.weight", TensorRole::kNorm, -1, {H}));

  std::set<std::string> used = b.used();
  const bool has_head = m->st->find("lm_head.weight") != nullptr;
  if (has_head && !c.tie_word_embeddings) {
    SourceBuilder head(m, "");
    GE_RETURN_IF_ERROR(head.add("lm_head.weight", "output.weight", TensorRole::kLmHead, -1, {c.vocab_size, H}, true));
  } else if (!c.tie_word_embeddings) {
    return not_found("quantize: tie_word_embeddings is false but the checkpoint has no lm_head.weight");
  } else if (has_head) {
    report->notes.push_back("lm_head.weight is tied to the embedding (tie_word_embeddings); the stored copy is not written");
  }
  if (has_head) used.insert("lm_head.weight");
  if (o.recipe.int4_lm_head && (c.tie_word_embeddings || !has_head)) {
    // ExecuTorch's tie_map: the head becomes an INT4 copy of the embedding, written as lm_head.
    SourceTensor head = m->tensors.front();
    head.fqn = "lm_head.weight";
    head.gguf_name = "output.weight";
    head.role = TensorRole::kLmHead;
    m->tensors.push_back(std::move(head));
    report->notes.push_back("lm_head untied: an INT4 copy of the embedding is written as lm_head.weight");
  }
  for (const std::string& name : m->st->names()) {
    if (used.count(name) != 0) continue;
    bool skipped = false;
    for (const char* p : kSkippedPrefixes) skipped |= starts_with(name, p);
    if (skipped) continue;
    return unsupported("quantize: tensor '" + name + "' is not part of a Gemma 3 / Gemma 4 text model this tool " +
                       "knows (per-layer embeddings, MoE and KV sharing are not supported)");
  }
  return Status::ok();
}

// ---------------------------------------------------------------- encodings

std::string encoding_text(const QuantTarget& t) {
  if (t.type == QuantType::kInt4Group) {
    return "int4-g" + std::to_string(t.group_size) + "-" + quant_method_name(t.method);
  }
  if (t.type == QuantType::kInt8Group) return "int8-g" + std::to_string(t.group_size);
  return quant_type_name(t.type);
}

// Chooses every tensor's encoding and checks that its shape can hold it, before anything is written.
Status plan_encodings(const QuantizeOptions& o, SourceModel* m, QuantizeReport* report) {
  const int32_t L = m->config.num_hidden_layers;
  std::set<std::string> fallbacks;
  for (SourceTensor& s : m->tensors) {
    s.encoding = encoding_for(o.recipe, s.role, s.layer, L);
    if (s.encoding == WeightEncoding::kKeep) continue;
    QuantTarget& t = s.target;
    if (o.format == ExportFormat::kTorchao) {
      t.method = o.recipe.method;
      if (s.encoding == WeightEncoding::kInt4) {
        t.type = QuantType::kInt4Group;
        t.group_size = o.recipe.group_size;
      } else {
        t.type = QuantType::kInt8Group;
        t.group_size = s.encoding == WeightEncoding::kInt8PerRow ? s.view.cols : o.recipe.int8_group_size;
      }
    } else {
      t.type = s.encoding == WeightEncoding::kInt4 ? o.gguf_type : QuantType::kQ8_0;
      if (s.view.cols % 256 != 0 && (t.type == QuantType::kQ4_K || t.type == QuantType::kQ6_K)) {
        // llama.cpp's fallback for rows that do not fill 256-element super-blocks.
        const QuantType fb = t.type == QuantType::kQ4_K ? QuantType::kQ5_0 : QuantType::kQ8_0;
        fallbacks.insert(std::string(quant_type_name(t.type)) + " → " + quant_type_name(fb) + " for rows of " +
                         std::to_string(s.view.cols));
        t.type = fb;
      }
    }
    Status ok = check_quant_target(t, s.view.rows, s.view.cols);
    if (!ok.is_ok()) {
      return invalid_argument("quantize: tensor '" + s.fqn + "' " + shape_text(s.shape) + " cannot be stored as " +
                              encoding_text(t) + ": " + ok.message());
    }
  }
  for (const std::string& f : fallbacks) report->notes.push_back("GGUF fallback (as llama.cpp): " + f);
  return Status::ok();
}

// The float values of a 1-D tensor (norms, scalars).
std::vector<float> floats_of(const QuantWeight& w) {
  std::vector<float> v(static_cast<size_t>(w.rows * w.cols));
  for (int64_t r = 0; r < w.rows; ++r) dequantize_row(w, r, v.data() + r * w.cols);
  return v;
}

TensorQuantizeOptions chunk_options(const QuantizeOptions& o) {
  TensorQuantizeOptions t;
  if (o.release_source_pages) t.release_source = release_pages;
  return t;
}

// ---------------------------------------------------------------- torchao output

Status write_plain_bf16(const safetensors::TorchaoWriter& w, const safetensors::TensorSlot& slot, const SourceTensor& s) {
  std::vector<uint16_t> out(static_cast<size_t>(s.view.rows * s.view.cols));
  if (s.view.type == QuantType::kBF16) {
    std::memcpy(out.data(), s.view.data, out.size() * 2);  // bit-exact copy
  } else {
    const std::vector<float> v = floats_of(s.view);
    for (size_t i = 0; i < v.size(); ++i) out[i] = f32_to_bf16(v[i]);
  }
  return w.write(slot, 0, out.data(), out.size() * 2);
}

Status write_quantized_torchao(const safetensors::TorchaoWriter& w, const SourceTensor& s, ThreadPool& pool,
                               const QuantizeOptions& o, QuantStats* stats) {
  using safetensors::TorchaoWriter;
  const safetensors::TensorSlot* q = w.slot(TorchaoWriter::part_name(s.fqn, "qdata"));
  const safetensors::TensorSlot* sc = w.slot(TorchaoWriter::part_name(s.fqn, "scale"));
  const safetensors::TensorSlot* z = w.slot(TorchaoWriter::part_name(s.fqn, "zero_point"));
  if (q == nullptr || sc == nullptr || z == nullptr) return internal_error("quantize: parts of '" + s.fqn + "' missing");
  const int64_t n = s.view.rows, k = s.view.cols, groups = k / s.target.group_size;
  if (s.target.type == QuantType::kInt4Group) {
    // qdata rows stream straight to the file; scale and zero are [groups, n] (groups first), so the
    // chunks' columns are gathered here and written once (n · groups · 4 bytes).
    std::vector<uint16_t> scale(static_cast<size_t>(n * groups)), zero(static_cast<size_t>(n * groups));
    auto sink = [&](int64_t row0, const QuantWeight& c) -> Status {
      const auto* cz = static_cast<const uint16_t*>(c.zero);
      for (int64_t g = 0; g < groups; ++g) {
        for (int64_t r = 0; r < c.rows; ++r) {
          scale[static_cast<size_t>(g * n + row0 + r)] = c.scale[g * c.rows + r];
          zero[static_cast<size_t>(g * n + row0 + r)] = cz[g * c.rows + r];
        }
      }
      return w.write(*q, static_cast<uint64_t>(row0 * (k / 2)), c.data, static_cast<uint64_t>(c.rows * (k / 2)));
    };
    GE_RETURN_IF_ERROR(quantize_tensor(s.view, s.target, pool, sink, stats, chunk_options(o)));
    GE_RETURN_IF_ERROR(w.write(*sc, 0, scale.data(), scale.size() * 2));
    return w.write(*z, 0, zero.data(), zero.size() * 2);
  }
  auto sink = [&](int64_t row0, const QuantWeight& c) -> Status {
    GE_RETURN_IF_ERROR(w.write(*q, static_cast<uint64_t>(row0 * k), c.data, static_cast<uint64_t>(c.rows * k)));
    GE_RETURN_IF_ERROR(w.write(*sc, static_cast<uint64_t>(row0 * groups * 2), c.scale,
                               static_cast<uint64_t>(c.rows * groups * 2)));
    return w.write(*z, static_cast<uint64_t>(row0 * groups), c.zero, static_cast<uint64_t>(c.rows * groups));
  };
  return quantize_tensor(s.view, s.target, pool, sink, stats, chunk_options(o));
}

// Copies a small side file through a temporary name.
Status copy_side_file(const std::string& from, const std::string& to) {
  const std::string tmp = to + ".tmp";
  std::error_code ec;
  fs::copy_file(from, tmp, fs::copy_options::overwrite_existing, ec);
  if (!ec) fs::rename(tmp, to, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return io_error("quantize: cannot copy '" + from + "' to '" + to + "'");
  }
  return Status::ok();
}

Status write_torchao(const SourceModel& m, const std::string& out_dir, const QuantizeOptions& o, ThreadPool& pool,
                     QuantizeReport* report, const std::function<void(const TensorReport&)>& on_tensor) {
  std::error_code ec;
  if (fs::exists(out_dir, ec) && !fs::is_directory(out_dir, ec)) {
    return invalid_argument("quantize: torchao output '" + out_dir + "' exists and is not a directory");
  }
  if (fs::exists(out_dir, ec) && fs::equivalent(out_dir, m.dir, ec)) {
    return invalid_argument("quantize: the output directory must differ from the input directory");
  }
  const std::string model_path = out_dir + "/model.safetensors";
  GE_RETURN_IF_ERROR(check_output_free("quantize", model_path, o.force));
  std::vector<std::string> side;
  for (const char* f : kSideFiles) {
    if (!fs::exists(m.dir + "/" + f, ec)) continue;
    GE_RETURN_IF_ERROR(check_output_free("quantize", out_dir + "/" + f, o.force));
    side.push_back(f);
  }
  if (fs::exists(out_dir + "/" + safetensors::kIndexFileName, ec)) {
    return invalid_argument("quantize: '" + out_dir + "' holds a sharded checkpoint index; use an empty directory");
  }
  fs::create_directories(out_dir, ec);
  if (ec) return io_error("quantize: cannot create '" + out_dir + "': " + ec.message());

  safetensors::TorchaoWriter w;
  for (const SourceTensor& s : m.tensors) {
    switch (s.encoding) {
      case WeightEncoding::kKeep:
        GE_RETURN_IF_ERROR(w.add_plain(s.fqn, safetensors::DType::kBF16, s.shape));
        break;
      case WeightEncoding::kInt4:
        GE_RETURN_IF_ERROR(w.add_int4(s.fqn, s.view.rows, s.view.cols, s.target.group_size));
        break;
      case WeightEncoding::kInt8:
      case WeightEncoding::kInt8PerRow:
        GE_RETURN_IF_ERROR(w.add_intx(s.fqn, s.view.rows, s.view.cols, s.target.group_size, 8));
        break;
    }
  }
  GE_RETURN_IF_ERROR(w.open(model_path));
  for (const SourceTensor& s : m.tensors) {
    TensorReport r;
    r.name = s.fqn;
    r.rows = s.view.rows;
    r.cols = s.view.cols;
    if (s.encoding == WeightEncoding::kKeep) {
      r.encoding = "bf16";
      GE_RETURN_IF_ERROR(write_plain_bf16(w, *w.slot(s.fqn), s));
    } else {
      r.encoding = encoding_text(s.target);
      r.quantized = true;
      Status st = write_quantized_torchao(w, s, pool, o, &r.stats);
      if (!st.is_ok()) return Status(st.code(), "quantizing '" + s.fqn + "': " + st.message());
    }
    if (on_tensor) on_tensor(r);
    report->tensors.push_back(std::move(r));
  }
  GE_RETURN_IF_ERROR(w.commit());
  report->output_file = model_path;
  for (const std::string& f : side) GE_RETURN_IF_ERROR(copy_side_file(m.dir + "/" + f, out_dir + "/" + f));
  if (!side.empty()) {
    std::string list;
    for (const std::string& f : side) list += (list.empty() ? "" : ", ") + f;
    report->notes.push_back("copied " + list);
  }
  return Status::ok();
}

// ---------------------------------------------------------------- GGUF output

struct GgufTensor {
  std::string name;
  std::vector<int64_t> ne;  // ggml order
  QuantType type = QuantType::kF32;
  uint64_t nbytes = 0;
  uint64_t offset = 0;           // relative to the data section
  const SourceTensor* src = nullptr;
  std::vector<float> values;     // F32 tensors written from memory (norms, scalars, rope_freqs)
};

using KeyValues = GgufKeyValues;

void put_kv(KeyValues* kv, const std::string& key, gguf::Value v) { kv->emplace_back(key, std::move(v)); }

// GGUF tokenizer keys from an HF tokenizer.json (BPE with byte fallback, as Gemma ships it). Gemma 3
// becomes llama.cpp's "llama" (SentencePiece) vocabulary with SentencePiece-style scores (−rank of
// the normal pieces, 0 for bytes, −1000 for specials, as the converter writes them); Gemma 4 becomes
// "gemma4" with the merge list.
Status gguf_tokenizer_from_json(const std::string& path, const GemmaConfig& c, KeyValues* kv) {
  GE_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  try {
    const json j = json::parse(text);
    const json& model = j.at("model");
    if (model.value("type", "") != "BPE") return unsupported("tokenizer.json: model type is not BPE");
    const json& vocab = model.at("vocab");
    constexpr int64_t kMaxVocab = int64_t{1} << 24;
    int64_t n = 0;
    auto grow = [&](const json& id) -> Status {
      const int64_t i = id.get<int64_t>();
      if (i < 0 || i >= kMaxVocab) return format_error("tokenizer.json: token id " + std::to_string(i) + " out of range");
      n = std::max(n, i + 1);
      return Status::ok();
    };
    for (const auto& [tok, id] : vocab.items()) GE_RETURN_IF_ERROR(grow(id));
    const json empty = json::array();
    const json& added = j.contains("added_tokens") ? j.at("added_tokens") : empty;
    for (const json& a : added) GE_RETURN_IF_ERROR(grow(a.at("id")));
    if (n <= 0) return format_error("tokenizer.json: empty vocabulary");
    std::vector<std::string> tokens(static_cast<size_t>(n));
    std::vector<int32_t> types(static_cast<size_t>(n), 1);  // NORMAL
    std::vector<bool> seen(static_cast<size_t>(n), false);
    for (const auto& [tok, id] : vocab.items()) {
      const int64_t i = id.get<int64_t>();  // in [0, n): checked above
      tokens[static_cast<size_t>(i)] = tok;
      seen[static_cast<size_t>(i)] = true;
      if (tok.size() == 6 && tok.rfind("<0x", 0) == 0 && tok[5] == '>') types[static_cast<size_t>(i)] = 6;  // BYTE
    }
    for (const json& a : added) {
      const int64_t i = a.at("id").get<int64_t>();
      tokens[static_cast<size_t>(i)] = a.at("content").get<std::string>();
      seen[static_cast<size_t>(i)] = true;
      if (types[static_cast<size_t>(i)] != 6) types[static_cast<size_t>(i)] = a.value("special", false) ? 3 : 4;
    }
    for (int64_t i = 0; i < n; ++i) {
      if (!seen[static_cast<size_t>(i)]) return format_error("tokenizer.json: no token has id " + std::to_string(i));
    }
    std::vector<float> scores(static_cast<size_t>(n), -1000.0f);
    int64_t rank = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int32_t t = types[static_cast<size_t>(i)];
      if (t == 1) scores[static_cast<size_t>(i)] = -static_cast<float>(rank++);
      if (t == 6) scores[static_cast<size_t>(i)] = 0.0f;
    }
    const bool g4 = c.family == ModelFamily::kGemma4;
    put_kv(kv, "tokenizer.ggml.model", gguf::Value::string(g4 ? "gemma4" : "llama"));
    if (!g4) put_kv(kv, "tokenizer.ggml.pre", gguf::Value::string("default"));
    put_kv(kv, "tokenizer.ggml.tokens", gguf::Value::string_array(tokens));
    put_kv(kv, "tokenizer.ggml.scores", gguf::Value::array(std::span<const float>(scores)));
    put_kv(kv, "tokenizer.ggml.token_type", gguf::Value::array(std::span<const int32_t>(types)));
    if (g4) {
      std::vector<std::string> merges;
      for (const json& m : model.at("merges")) {
        merges.push_back(m.is_string() ? m.get<std::string>()
                                       : m.at(0).get<std::string>() + " " + m.at(1).get<std::string>());
      }
      put_kv(kv, "tokenizer.ggml.merges", gguf::Value::string_array(merges));
    }
    auto id_of = [&](const char* t) -> int64_t {
      for (int64_t i = 0; i < n; ++i)
        if (tokens[static_cast<size_t>(i)] == t) return i;
      return -1;
    };
    const std::pair<const char*, const char*> ids[] = {{"tokenizer.ggml.bos_token_id", "<bos>"},
                                                       {"tokenizer.ggml.eos_token_id", "<eos>"},
                                                       {"tokenizer.ggml.unknown_token_id", "<unk>"},
                                                       {"tokenizer.ggml.padding_token_id", "<pad>"}};
    for (const auto& [key, tok] : ids) {
      if (const int64_t i = id_of(tok); i >= 0) put_kv(kv, key, gguf::Value::uint32(static_cast<uint32_t>(i)));
    }
    put_kv(kv, "tokenizer.ggml.add_bos_token", gguf::Value::boolean(true));
    put_kv(kv, "tokenizer.ggml.add_space_prefix", gguf::Value::boolean(false));
  } catch (const json::exception& e) {
    return format_error(std::string("tokenizer.json: ") + e.what());
  }
  return Status::ok();
}

Status gguf_tokenizer_keys(const SourceModel& m, const QuantizeOptions& o, KeyValues* kv, QuantizeReport* report) {
  std::error_code ec;
  if (!o.tokenizer_gguf.empty()) {
    GE_ASSIGN_OR_RETURN(gguf::GgufFile f, gguf::GgufFile::open(o.tokenizer_gguf));
    int copied = 0;
    for (const std::string& key : f.keys()) {
      if (key.rfind("tokenizer.", 0) != 0) continue;
      std::optional<gguf::RawValue> raw = f.raw_value(key);
      if (raw) {
        put_kv(kv, key, gguf::Value::raw(*raw));
        ++copied;
      }
    }
    if (copied == 0) return not_found("quantize: '" + o.tokenizer_gguf + "' has no tokenizer.* keys");
    report->notes.push_back("tokenizer: " + std::to_string(copied) + " keys copied from " + o.tokenizer_gguf);
    return Status::ok();
  }
  const std::string tj = m.dir + "/tokenizer.json";
  if (fs::exists(tj, ec)) {
    GE_RETURN_IF_ERROR(gguf_tokenizer_from_json(tj, m.config, kv));
    if (Result<std::string> t = read_text_file(m.dir + "/chat_template.jinja"); t.is_ok()) {
      put_kv(kv, "tokenizer.chat_template", gguf::Value::string(*t));
    }
    report->notes.push_back("tokenizer: converted from tokenizer.json");
    return Status::ok();
  }
  report->notes.push_back("tokenizer: none written (no tokenizer.json beside the input and no --tokenizer-gguf)");
  return Status::ok();
}

Status write_gguf(const SourceModel& m, const std::string& path, const QuantizeOptions& o, ThreadPool& pool,
                  QuantizeReport* report, const std::function<void(const TensorReport&)>& on_tensor) {
  GE_RETURN_IF_ERROR(check_output_free("quantize", path, o.force));
  const GemmaConfig& c = m.config;
  KeyValues kvs;
  fs::path dir_name = fs::path(m.dir);
  if (dir_name.filename().empty()) dir_name = dir_name.parent_path();  // "model/" → "model"
  GE_RETURN_IF_ERROR(gguf_model_keys(c, o.gguf_type, dir_name.filename().string(), &kvs));
  GE_RETURN_IF_ERROR(gguf_tokenizer_keys(m, o, &kvs, report));

  std::vector<GgufTensor> tensors;
  const bool g3 = c.family == ModelFamily::kGemma3;
  for (const SourceTensor& s : m.tensors) {
    GgufTensor t;
    t.name = s.gguf_name;
    t.src = &s;
    if (s.encoding == WeightEncoding::kKeep) {
      t.ne = {s.view.cols};
      t.values = floats_of(s.view);
      // llama.cpp bakes Gemma 3's (1 + w) into every stored norm (computed in f32).
      if (g3 && s.role == TensorRole::kNorm)
        for (float& v : t.values) v += 1.0f;
    } else {
      t.type = s.target.type;
      t.ne = {s.view.cols, s.view.rows};
    }
    tensors.push_back(std::move(t));
  }
  if (!g3) {
    for (const LayerConfig& l : c.layers) {
      if (l.sliding) continue;
      GgufTensor t;
      t.name = "rope_freqs.weight";
      t.values = gguf_rope_freqs(l);
      t.ne = {static_cast<int64_t>(t.values.size())};
      tensors.push_back(std::move(t));
      break;
    }
  }
  uint64_t data_start = 0, data_bytes = 0;
  std::vector<GgufTensorSlot> slots;
  for (const GgufTensor& t : tensors) slots.push_back({t.name, t.ne, t.type});
  GE_ASSIGN_OR_RETURN(std::vector<uint8_t> header, gguf_header(kvs, &slots, &data_start, &data_bytes));
  for (size_t i = 0; i < tensors.size(); ++i) {
    tensors[i].nbytes = slots[i].nbytes;
    tensors[i].offset = slots[i].offset;
  }
  uint64_t total;
  if (!add_ok(data_start, data_bytes, &total)) return invalid_argument("quantize: GGUF size overflows");
  safetensors::PendingFile file;
  GE_RETURN_IF_ERROR(file.create(path, total));
  GE_RETURN_IF_ERROR(file.write_at(0, header.data(), header.size()));
  for (const GgufTensor& t : tensors) {
    TensorReport r;
    r.name = t.name;
    const uint64_t base = data_start + t.offset;
    if (!t.values.empty()) {
      r.encoding = "F32";
      r.rows = 1;
      r.cols = static_cast<int64_t>(t.values.size());
      GE_RETURN_IF_ERROR(file.write_at(base, t.values.data(), t.values.size() * 4));
    } else {
      const SourceTensor& s = *t.src;
      r.encoding = encoding_text(s.target);
      r.rows = s.view.rows;
      r.cols = s.view.cols;
      r.quantized = true;
      GE_ASSIGN_OR_RETURN(const uint64_t per_row, row_bytes(s.target.type, s.view.cols));
      auto sink = [&](int64_t row0, const QuantWeight& chunk) -> Status {
        return file.write_at(base + static_cast<uint64_t>(row0) * per_row, chunk.data,
                             static_cast<uint64_t>(chunk.rows) * per_row);
      };
      Status st = quantize_tensor(s.view, s.target, pool, sink, &r.stats, chunk_options(o));
      if (!st.is_ok()) return Status(st.code(), "quantizing '" + s.fqn + "': " + st.message());
    }
    if (on_tensor) on_tensor(r);
    report->tensors.push_back(std::move(r));
  }
  GE_RETURN_IF_ERROR(file.commit());
  report->output_file = path;
  return Status::ok();
}

}  // namespace

double QuantizeReport::mean_snr_db() const {
  double sum = 0.0;
  int n = 0;
  for (const TensorReport& t : tensors) {
    if (!t.quantized || !std::isfinite(t.stats.snr_db())) continue;
    sum += t.stats.snr_db();
    ++n;
  }
  return n > 0 ? sum / n : 0.0;
}

double QuantizeReport::min_snr_db() const {
  double m = INFINITY;
  for (const TensorReport& t : tensors)
    if (t.quantized) m = std::min(m, t.stats.snr_db());
  return m;
}

Result<QuantizeReport> quantize_checkpoint(const std::string& input, const std::string& output,
                                           const QuantizeOptions& o,
                                           const std::function<void(const TensorReport&)>& on_tensor) {
  GE_RETURN_IF_ERROR(validate_recipe(o.recipe));
  if (o.format == ExportFormat::kGguf && o.gguf_type != QuantType::kQ4_0 && o.gguf_type != QuantType::kQ8_0 &&
      o.gguf_type != QuantType::kQ4_K && o.gguf_type != QuantType::kQ6_K) {
    return invalid_argument(std::string("quantize: GGUF type must be Q4_0, Q8_0, Q4_K or Q6_K, got ") +
                            quant_type_name(o.gguf_type));
  }
  QuantizeReport report;
  SourceModel m;
  GE_RETURN_IF_ERROR(read_source(input, o, &m, &report));
  GE_RETURN_IF_ERROR(plan_encodings(o, &m, &report));
  ThreadPool pool(resolve_threads(o.n_threads));
  if (o.format == ExportFormat::kTorchao) {
    GE_RETURN_IF_ERROR(write_torchao(m, output, o, pool, &report, on_tensor));
  } else {
    GE_RETURN_IF_ERROR(write_gguf(m, output, o, pool, &report, on_tensor));
  }
  std::error_code ec;
  report.output_bytes = fs::file_size(report.output_file, ec);
  return report;
}

}  // namespace ge
