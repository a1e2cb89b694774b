// Shared CLI plumbing: engine loading with a progress line, sampling flags, chat encoding.
#include "cli_common.h"

#include <algorithm>
#include <cstdio>
#include <unistd.h>

namespace ge::cli {

void add_model_options(Args& a, const char* chunk_default) {
  a.option("model", "m", "PATH", "model: .gguf file, .safetensors file or HF checkpoint directory");
  a.option("backend", "", "NAME", "cpu or cuda", "cpu");
  a.option("threads", "t", "N", "CPU threads (0 = all cores)", "0");
  a.option("ctx", "c", "N", "context length in tokens (0 = min(4096, the model's maximum))", "0");
  a.option("chunk", "", "N", "prefill chunk (tokens per forward pass; 0 = 2,048 on a GPU while memory allows, 256 on the CPU)",
           chunk_default);
  a.flag("mlock", "pin the weights in RAM");
  a.flag("no-repack", "cpu: use Q4_0/Q8_0 weights in place from the file mapping (no packed copy)");
  a.option("quantize", "", "Q", "quantize float weights at load: int4-g32, int4-g64 or int4-g128");
}

void add_sampling_options(Args& a) {
  a.option("temp", "", "T", "temperature (0 = greedy)");
  a.option("top-k", "", "K", "top-k (0 = off)");
  a.option("top-p", "", "P", "top-p nucleus mass in (0, 1]");
  a.option("min-p", "", "P", "min-p relative threshold in [0, 1]");
  a.option("repeat-penalty", "", "X", "repetition penalty (1 = off)");
  a.option("presence-penalty", "", "X", "presence penalty (0 = off)");
  a.option("frequency-penalty", "", "X", "frequency penalty (0 = off)");
  a.option("seed", "s", "N", "random seed (reproducible output)");
}

Result<int32_t> context_length(const Args& a) {
  GE_ASSIGN_OR_RETURN(int64_t c, a.integer("ctx", 0, 1 << 22));
  return static_cast<int32_t>(c);
}

int32_t resolve_context(int32_t requested, const Engine& e) {
  if (requested > 0) return requested;
  const int64_t max_pos = e.config().max_position_embeddings;
  return static_cast<int32_t>(max_pos > 0 ? std::min<int64_t>(4096, max_pos) : 4096);
}

Result<std::unique_ptr<Engine>> load_engine(const Args& a, bool show_progress) {
  if (!a.has("model")) return invalid_argument("missing --model / -m (a .gguf file or an HF checkpoint directory)");
  EngineOptions o;
  o.backend = a.str("backend");
  GE_ASSIGN_OR_RETURN(int64_t threads, a.integer("threads", 0, 1024));
  GE_ASSIGN_OR_RETURN(int64_t chunk, a.integer("chunk", 0, 65536));
  o.n_threads = static_cast<int>(threads);
  o.max_chunk = static_cast<int32_t>(chunk);
  o.mlock = a.on("mlock");
  o.no_repack = a.on("no-repack");
  o.quantize = a.str("quantize");
  const bool tty = show_progress && isatty(STDERR_FILENO);
  if (tty) {
    o.on_progress = [](float f) {
      std::fprintf(stderr, "\rloading model [%-30s] %3d%%", std::string(static_cast<size_t>(f * 30), '#').c_str(),
                   static_cast<int>(f * 100));
      if (f >= 1.0f) std::fprintf(stderr, "\r%60s\r", "");
      std::fflush(stderr);
    };
  }
  return Engine::load(a.str("model"), o);
}

Result<SamplingParams> sampling_from_args(const Args& a, const SamplingParams& defaults) {
  SamplingParams p = defaults;
  if (a.has("temp")) { GE_ASSIGN_OR_RETURN(double v, a.number("temp", 0.0, 100.0)); p.temperature = static_cast<float>(v); }
  if (a.has("top-k")) { GE_ASSIGN_OR_RETURN(int64_t v, a.integer("top-k", 0, 1 << 24)); p.top_k = static_cast<int32_t>(v); }
  if (a.has("top-p")) { GE_ASSIGN_OR_RETURN(double v, a.number("top-p", 0.0, 1.0)); p.top_p = static_cast<float>(v); }
  if (a.has("min-p")) { GE_ASSIGN_OR_RETURN(double v, a.number("min-p", 0.0, 1.0)); p.min_p = static_cast<float>(v); }
  if (a.has("repeat-penalty")) { GE_ASSIGN_OR_RETURN(double v, a.number("repeat-penalty", 0.0, 10.0)); p.repetition_penalty = static_cast<float>(v); }
  if (a.has("presence-penalty")) { GE_ASSIGN_OR_RETURN(double v, a.number("presence-penalty", -2.0, 2.0)); p.presence_penalty = static_cast<float>(v); }
  if (a.has("frequency-penalty")) { GE_ASSIGN_OR_RETURN(double v, a.number("frequency-penalty", -2.0, 2.0)); p.frequency_penalty = static_cast<float>(v); }
  if (a.has("seed")) {
    GE_ASSIGN_OR_RETURN(int64_t v, a.integer("seed", 0, INT64_MAX));
    p.seed = static_cast<uint64_t>(v);
    p.has_seed = true;
  }
  GE_RETURN_IF_ERROR(validate(p));
  return p;
}

chat::ChatFormat chat_format_of(const Engine& e) {
  return e.config().family == ModelFamily::kGemma4 ? chat::ChatFormat::kGemma4 : chat::ChatFormat::kGemma3;
}

Result<std::vector<int32_t>> encode_chat(const Engine& e, const std::vector<chat::Message>& messages,
                                         const chat::ChatOptions& options) {
  GE_ASSIGN_OR_RETURN(std::string text, chat::render_chat(chat_format_of(e), messages, options));
  // The rendered text starts with the literal <bos>; encode without adding another.
  return e.tokenizer().encode(text, /*add_bos=*/false, /*parse_special=*/true);
}

int fail(const Status& s) {
  std::fprintf(stderr, "error: %s\n", s.to_string().c_str());
  return 1;
}

Result<std::pair<QuantType, int64_t>> synthetic_quant_arg(const std::string& q) {
  if (q == "q4_0") return std::make_pair(QuantType::kQ4_0, int64_t{0});
  if (q == "q8_0") return std::make_pair(QuantType::kQ8_0, int64_t{0});
  if (q == "int4-g32") return std::make_pair(QuantType::kInt4Group, int64_t{32});
  if (q == "int4-g64") return std::make_pair(QuantType::kInt4Group, int64_t{64});
  if (q == "int4-g128") return std::make_pair(QuantType::kInt4Group, int64_t{128});
  if (q == "int8") return std::make_pair(QuantType::kInt8Group, int64_t{0});
  return invalid_argument("--quant must be q4_0, q8_0, int4-g32, int4-g64, int4-g128 or int8");
}

}  // namespace ge::cli
