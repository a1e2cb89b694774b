// Synthetic GGUF writer: the preset's config becomes llama.cpp keys (gguf_model_keys), every matrix
// random quant blocks whose scales keep each output's variance near its input's (w ~ 1/sqrt(cols)),
// norms ≈ 1. Rows are seeded individually, so the bytes do not depend on the thread count.
#include "model/synthetic_gguf.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <span>
#include <thread>

#include "core/checked_math.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "formats/gguf_reader.h"
#include "formats/torchao_writer.h"
#include "model/gguf_model_keys.h"
#include "model/model_presets.h"

namespace ge {
namespace {

namespace fs = std::filesystem;

// Rows generated per parallel chunk are sized to about this many bytes per thread.
constexpr uint64_t kChunkBytesPerThread = 4 << 20;

uint64_t splitmix64(uint64_t* s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// As llama.cpp's quantizer: K-quants need rows that are a multiple of 256.
QuantType matrix_type(QuantType q, int64_t cols) {
  if (cols % 256 == 0) return q;
  if (q == QuantType::kQ4_K) return QuantType::kQ5_0;
  if (q == QuantType::kQ6_K) return QuantType::kQ8_0;
  return q;
}

// Standard deviation of the integer factor multiplying d in a random block of each type (uniform
// bytes): Q4_0 (q − 8), Q5_0 (q − 16), Q8_0 q, Q4_K sc·q − (d_min/d)·m, Q6_K sc·(q − 32) with
// sc in −32..31. d = 1 / (that · sqrt(cols)) makes Σ_k w·x have the variance of x.
double integer_std(QuantType t) {
  switch (t) {
    case QuantType::kQ4_0: return 4.61;
    case QuantType::kQ5_0: return 9.23;
    case QuantType::kQ8_0: return 73.9;
    case QuantType::kQ4_K: return 250.0;
    case QuantType::kQ6_K: return 18.5 * 18.5;
    default: return 1.0;
  }
}

// Fills `rows` rows of random blocks of type t, row r seeded from (seed, r0 + r).
void fill_rows(QuantType t, int64_t cols, uint64_t seed, int64_t r0, int64_t rows, uint64_t row_bytes, uint8_t* out) {
  const BlockLayout bl = block_layout(t);
  const int64_t blocks = cols / bl.block_elems;
  const double d0 = 1.0 / (integer_std(t) * std::sqrt(static_cast<double>(cols)));
  for (int64_t r = 0; r < rows; ++r) {
    uint64_t s = seed ^ (static_cast<uint64_t>(r0 + r) * 0xD1B54A32D192ED03ull);
    uint8_t* row = out + static_cast<uint64_t>(r) * row_bytes;
    for (uint64_t i = 0; i < row_bytes; i += 8) {
      const uint64_t v = splitmix64(&s);
      std::memcpy(row + i, &v, std::min<uint64_t>(8, row_bytes - i));
    }
    for (int64_t b = 0; b < blocks; ++b) {
      uint8_t* blk = row + b * bl.block_bytes;
      // Scales vary ±25% around d0 so blocks differ.
      const double jitter = 0.75 + 0.5 * static_cast<double>(blk[bl.block_bytes - 1]) / 255.0;
      const uint16_t d = f32_to_fp16(static_cast<float>(d0 * jitter));
      switch (t) {
        case QuantType::kQ4_0:
        case QuantType::kQ5_0:
        case QuantType::kQ8_0: std::memcpy(blk, &d, 2); break;
        case QuantType::kQ4_K: {
          // w = d·sc·q − dmin·m: dmin = 7.5·d centres the mean (E[sc] = E[m], E[q] = 7.5).
          const uint16_t dmin = f32_to_fp16(static_cast<float>(7.5 * d0 * jitter));
          std::memcpy(blk, &d, 2);
          std::memcpy(blk + 2, &dmin, 2);
          break;
        }
        case QuantType::kQ6_K: {
          for (int j = 0; j < 16; ++j) blk[192 + j] = static_cast<uint8_t>(static_cast<int8_t>((blk[192 + j] & 63) - 32));
          std::memcpy(blk + 208, &d, 2);
          break;
        }
        default: break;
      }
    }
  }
}

struct SynthTensor {
  GgufTensorSlot slot;
  int64_t rows = 0, cols = 0;
  std::vector<float> values;  // F32 tensors (norms, scalars, rope_freqs), written from memory
};

// llama.cpp's tensor list for `c` in its order; norms 1 ± 0.01 (gemma3 files store the (1 + w)
// multiplier, gemma4 files the multiplier itself: ≈ 1 either way).
std::vector<SynthTensor> tensor_list(const GemmaConfig& c, QuantType q, uint64_t seed) {
  std::vector<SynthTensor> out;
  uint64_t s = seed ^ 0x5EEDull;
  auto matrix = [&](const std::string& name, int64_t rows, int64_t cols) {
    SynthTensor t;
    t.slot = {name, {cols, rows}, matrix_type(q, cols)};
    t.rows = rows;
    t.cols = cols;
    out.push_back(std::move(t));
  };
  auto vec = [&](const std::string& name, int64_t n) {
    SynthTensor t;
    t.slot = {name, {n}, QuantType::kF32};
    t.rows = 1;
    t.cols = n;
    t.values.resize(static_cast<size_t>(n));
    for (float& v : t.values) v = 1.0f + 0.02f * (static_cast<float>(splitmix64(&s) >> 40) / 16777216.0f - 0.5f);
    out.push_back(std::move(t));
  };
  const int64_t h = c.hidden_size;
  matrix("token_embd.weight", c.vocab_size, h);
  for (int32_t i = 0; i < c.num_hidden_layers; ++i) {
    const LayerConfig& l = c.layers[static_cast<size_t>(i)];
    const std::string b = "blk." + std::to_string(i) + ".";
    const int64_t qd = static_cast<int64_t>(c.num_attention_heads) * l.head_dim;
    const int64_t kvd = static_cast<int64_t>(l.num_key_value_heads) * l.head_dim;
    vec(b + "attn_norm.weight", h);
    matrix(b + "attn_q.weight", qd, h);
    matrix(b + "attn_k.weight", kvd, h);
    if (!l.k_eq_v) matrix(b + "attn_v.weight", kvd, h);
    matrix(b + "attn_output.weight", h, qd);
    vec(b + "attn_q_norm.weight", l.head_dim);
    vec(b + "attn_k_norm.weight", l.head_dim);
    vec(b + "post_attention_norm.weight", h);
    vec(b + "ffn_norm.weight", h);
    matrix(b + "ffn_gate.weight", c.intermediate_size, h);
    matrix(b + "ffn_up.weight", c.intermediate_size, h);
    matrix(b + "ffn_down.weight", h, c.intermediate_size);
    vec(b + "post_ffw_norm.weight", h);
    if (c.has_layer_scalar) vec(b + "layer_output_scale.weight", 1);
  }
  vec("output_norm.weight", h);
  if (c.family == ModelFamily::kGemma4) {
    for (const LayerConfig& l : c.layers) {
      if (l.sliding) continue;
      SynthTensor t;
      t.values = gguf_rope_freqs(l);
      t.rows = 1;
      t.cols = static_cast<int64_t>(t.values.size());
      t.slot = {"rope_freqs.weight", {t.cols}, QuantType::kF32};
      out.push_back(std::move(t));
      break;
    }
  }
  return out;
}

// A SentencePiece ("llama") vocabulary of exactly `n` tokens that the engine and llama.cpp load:
// <pad> <eos> <bos> <unk>, the 256 byte tokens, printable ASCII (space as ▁), the turn markers,
// then unused fillers. Text encodes through characters and byte fallback.
Status minimal_vocab(int64_t n, GgufKeyValues* kv, int64_t* n_tokens) {
  std::vector<std::string> tokens = {"<pad>", "<eos>", "<bos>", "<unk>"};
  std::vector<int32_t> types = {3, 3, 3, 2};
  std::vector<float> scores = {-1000.0f, -1000.0f, -1000.0f, -1000.0f};
  char buf[16];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    tokens.emplace_back(buf);
    types.push_back(6);
    scores.push_back(0.0f);
  }
  float rank = 0.0f;
  for (int ch = 32; ch < 127; ++ch) {
    tokens.push_back(ch == ' ' ? std::string("\xE2\x96\x81") : std::string(1, static_cast<char>(ch)));
    types.push_back(1);
    scores.push_back(-(rank++));
  }
  for (const char* t : {"<start_of_turn>", "<end_of_turn>"}) {
    tokens.emplace_back(t);
    types.push_back(3);
    scores.push_back(-1000.0f);
  }
  if (static_cast<int64_t>(tokens.size()) > n) {
    return invalid_argument("synth: the minimal vocabulary needs " + std::to_string(tokens.size()) +
                            " tokens; the model has " + std::to_string(n));
  }
  for (int64_t i = static_cast<int64_t>(tokens.size()); i < n; ++i) {
    tokens.push_back("<unused" + std::to_string(i) + ">");
    types.push_back(5);
    scores.push_back(-1000.0f);
  }
  kv->emplace_back("tokenizer.ggml.model", gguf::Value::string("llama"));
  kv->emplace_back("tokenizer.ggml.pre", gguf::Value::string("default"));
  kv->emplace_back("tokenizer.ggml.tokens", gguf::Value::string_array(tokens));
  kv->emplace_back("tokenizer.ggml.scores", gguf::Value::array(std::span<const float>(scores)));
  kv->emplace_back("tokenizer.ggml.token_type", gguf::Value::array(std::span<const int32_t>(types)));
  kv->emplace_back("tokenizer.ggml.bos_token_id", gguf::Value::uint32(2));
  kv->emplace_back("tokenizer.ggml.eos_token_id", gguf::Value::uint32(1));
  kv->emplace_back("tokenizer.ggml.unknown_token_id", gguf::Value::uint32(3));
  kv->emplace_back("tokenizer.ggml.padding_token_id", gguf::Value::uint32(0));
  kv->emplace_back("tokenizer.ggml.add_bos_token", gguf::Value::boolean(true));
  kv->emplace_back("tokenizer.ggml.add_space_prefix", gguf::Value::boolean(false));
  *n_tokens = n;
  return Status::ok();
}

Status copied_vocab(const std::string& path, int64_t vocab_size, GgufKeyValues* kv, int64_t* n_tokens) {
  Result<gguf::GgufFile> f = gguf::GgufFile::open(path);
  if (!f.is_ok()) return Status(f.status().code(), "synth: --tokenizer '" + path + "': " + f.status().message());
  if (!f->has("tokenizer.ggml.tokens")) return not_found("synth: --tokenizer '" + path + "' has no tokenizer.ggml.tokens");
  GE_ASSIGN_OR_RETURN(std::vector<std::string> toks, f->get_string_array("tokenizer.ggml.tokens"));
  if (static_cast<int64_t>(toks.size()) > vocab_size) {
    return invalid_argument("synth: --tokenizer '" + path + "' has " + std::to_string(toks.size()) +
                            " tokens, more than the model's vocabulary of " + std::to_string(vocab_size));
  }
  for (const std::string& key : f->keys()) {
    if (key.rfind("tokenizer.", 0) != 0) continue;
    if (std::optional<gguf::RawValue> raw = f->raw_value(key)) kv->emplace_back(key, gguf::Value::raw(*raw));
  }
  *n_tokens = static_cast<int64_t>(toks.size());
  return Status::ok();
}

}  // namespace

Result<SynthReport> write_synthetic_gguf(const std::string& path, const SynthOptions& o,
                                         const std::function<void(uint64_t, uint64_t)>& on_progress) {
  if (path.empty()) return invalid_argument("synth: no output path (-o FILE.gguf)");
  if (o.quant != QuantType::kQ4_0 && o.quant != QuantType::kQ8_0 && o.quant != QuantType::kQ4_K &&
      o.quant != QuantType::kQ6_K) {
    return invalid_argument(std::string("synth: --quant must be q4_0, q8_0, q4_k or q6_k, got ") +
                            quant_type_name(o.quant));
  }
  GE_ASSIGN_OR_RETURN(GemmaConfig c, preset_config(o.preset));
  if (o.layers < 0 || o.layers > c.num_hidden_layers) {
    return invalid_argument("synth: --layers must be in 1.." + std::to_string(c.num_hidden_layers) + " for " +
                            o.preset + ", got " + std::to_string(o.layers));
  }
  if (o.layers > 0) {
    c.num_hidden_layers = o.layers;
    c.layers.resize(static_cast<size_t>(o.layers));
    GE_RETURN_IF_ERROR(validate_config(c));
  }
  std::error_code ec;
  if (!o.force && fs::exists(path, ec)) return invalid_argument("synth: '" + path + "' exists (use --force to replace it)");

  SynthReport report;
  GgufKeyValues kvs;
  GE_RETURN_IF_ERROR(gguf_model_keys(c, o.quant, "synthetic " + o.preset, &kvs));
  if (o.tokenizer_gguf.empty()) {
    GE_RETURN_IF_ERROR(minimal_vocab(c.vocab_size, &kvs, &report.vocab_tokens));
    report.tokenizer_note = "minimal vocabulary (" + std::to_string(report.vocab_tokens) + " tokens)";
  } else {
    GE_RETURN_IF_ERROR(copied_vocab(o.tokenizer_gguf, c.vocab_size, &kvs, &report.vocab_tokens));
    report.tokenizer_note = "tokenizer copied from " + o.tokenizer_gguf;
  }

  std::vector<SynthTensor> tensors;
  if (!o.vocab_only) tensors = tensor_list(c, o.quant, o.seed);
  std::vector<GgufTensorSlot> slots;
  for (const SynthTensor& t : tensors) slots.push_back(t.slot);
  uint64_t data_start = 0, data_bytes = 0, total = 0;
  GE_ASSIGN_OR_RETURN(std::vector<uint8_t> header, gguf_header(kvs, &slots, &data_start, &data_bytes));
  if (!add_ok(data_start, data_bytes, &total)) return invalid_argument("synth: GGUF size overflows");

  safetensors::PendingFile file;
  GE_RETURN_IF_ERROR(file.create(path, total));
  GE_RETURN_IF_ERROR(file.write_at(0, header.data(), header.size()));
  const int threads = o.n_threads > 0 ? o.n_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  ThreadPool pool(threads);
  std::vector<uint8_t> buf;
  uint64_t done = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const SynthTensor& t = tensors[i];
    const uint64_t base = data_start + slots[i].offset;
    if (t.slot.type == QuantType::kF32) {
      GE_RETURN_IF_ERROR(file.write_at(base, t.values.data(), t.values.size() * sizeof(float)));
    } else {
      GE_ASSIGN_OR_RETURN(const uint64_t rb, row_bytes(t.slot.type, t.cols));
      const int64_t chunk_rows =
          std::max<int64_t>(1, static_cast<int64_t>(kChunkBytesPerThread * static_cast<uint64_t>(threads) / rb));
      buf.resize(static_cast<size_t>(std::min<int64_t>(chunk_rows, t.rows)) * rb);
      const uint64_t tensor_seed = o.seed * 0x9E3779B97F4A7C15ull + (static_cast<uint64_t>(i) << 32);
      for (int64_t r0 = 0; r0 < t.rows; r0 += chunk_rows) {
        const int64_t n = std::min(chunk_rows, t.rows - r0);
        pool.parallel_for(n, 1, [&](int64_t b, int64_t e) {
          fill_rows(t.slot.type, t.cols, tensor_seed, r0 + b, e - b, rb, buf.data() + static_cast<uint64_t>(b) * rb);
        });
        GE_RETURN_IF_ERROR(file.write_at(base + static_cast<uint64_t>(r0) * rb, buf.data(), static_cast<uint64_t>(n) * rb));
        if (on_progress) on_progress(done + static_cast<uint64_t>(r0 + n) * rb, data_bytes);
      }
    }
    done += slots[i].nbytes;
  }
  GE_RETURN_IF_ERROR(file.commit());
  report.output_file = path;
  report.output_bytes = total;
  report.n_tensors = static_cast<int64_t>(tensors.size());
  return report;
}

}  // namespace ge
