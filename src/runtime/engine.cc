// Engine loading: checkpoint → backend → packed model → tokenizer → stop tokens and defaults.
#include "runtime/engine.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "backend/cpu/cpu_backend.h"
#include "core/mapped_file.h"
#include "formats/gguf_reader.h"
#include "model/model_presets.h"
#include "model/synthetic_gguf.h"
#include "sampling/generation_config.h"

namespace ge {

Result<std::unique_ptr<Engine>> Engine::load(const std::string& path, const EngineOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<Engine> e(new Engine());
  GE_ASSIGN_OR_RETURN(e->checkpoint_, Checkpoint::open(path));
  if (opt.mlock) GE_RETURN_IF_ERROR(e->checkpoint_->lock_memory());
  const int threads = opt.n_threads > 0 ? opt.n_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  GE_ASSIGN_OR_RETURN(e->backend_, create_backend(opt.backend, threads));
  const std::string placement = cpu::apply_weight_policy(*e->backend_, e->checkpoint_->weight_bytes(), opt.no_repack);
  if (!placement.empty()) std::fprintf(stderr, "%s\n", placement.c_str());
  if (opt.on_progress) opt.on_progress(0.0f);
  const ModelWeights* weights = &e->checkpoint_->weights();
  if (!opt.quantize.empty()) {
    QuantRecipe recipe;
    if (opt.quantize == "int4-g32") recipe.group_size = 32;
    else if (opt.quantize == "int4-g64") recipe.group_size = 64;
    else if (opt.quantize == "int4-g128") recipe.group_size = 128;
    else return invalid_argument("--quantize must be int4-g32, int4-g64 or int4-g128");
    GE_ASSIGN_OR_RETURN(e->quantized_, quantize_model_weights(e->checkpoint_->config(), *weights, recipe, threads));
    weights = &e->quantized_->weights();
  }
  GE_ASSIGN_OR_RETURN(e->model_, GemmaModel::create(e->checkpoint_->config(), *weights, *e->backend_, opt.max_chunk));
  if (opt.on_progress) opt.on_progress(1.0f);

  // Tokenizer: from the GGUF vocabulary, or tokenizer.json beside an HF checkpoint.
  if (const gguf::GgufFile* g = e->checkpoint_->gguf()) {
    GE_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::from_gguf(*g));
    e->tokenizer_.emplace(std::move(tok));
    if (Result<std::string> t = g->get_string("tokenizer.chat_template"); t.is_ok()) e->chat_template_ = *t;
  } else {
    Result<Tokenizer> tok = Tokenizer::from_hf_json(e->checkpoint_->hf_dir() + "/tokenizer.json");
    if (!tok.is_ok())
      return Status(tok.status().code(), "loading tokenizer.json beside the checkpoint: " + tok.status().message());
    e->tokenizer_.emplace(std::move(tok).value());
    const std::string dir = e->checkpoint_->hf_dir();
    if (Result<std::string> t = read_text_file(dir + "/chat_template.jinja"); t.is_ok()) {
      e->chat_template_ = *t;
    } else if (Result<std::string> cfg = read_text_file(dir + "/tokenizer_config.json"); cfg.is_ok()) {
      nlohmann::json j = nlohmann::json::parse(*cfg, nullptr, /*allow_exceptions=*/false);
      if (j.is_object() && j.contains("chat_template") && j["chat_template"].is_string())
        e->chat_template_ = j["chat_template"].get<std::string>();
    }
  }

  e->set_stop_tokens();

  // Sampling defaults: generation_config.json beside an HF checkpoint, else the documented defaults.
  if (!e->checkpoint_->hf_dir().empty()) {
    if (Result<std::string> text = read_text_file(e->checkpoint_->hf_dir() + "/generation_config.json"); text.is_ok()) {
      nlohmann::json j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
      if (!j.is_discarded()) {
        Result<SamplingParams> p = sampling_from_generation_config(j);
        if (p.is_ok()) e->default_sampling_ = *p;
      }
    }
  }
  GE_RETURN_IF_ERROR(e->backend_->synchronize());
  e->load_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return e;
}

Result<std::unique_ptr<Engine>> Engine::create_synthetic(const std::string& preset, QuantType type,
                                                         int64_t group_size, const std::string& tokenizer_gguf,
                                                         const EngineOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  GE_ASSIGN_OR_RETURN(GemmaConfig config, preset_config(preset));
  std::unique_ptr<Engine> e(new Engine());
  // The tokenizer first: a vocabulary mismatch is found before minutes of weight synthesis.
  Result<gguf::GgufFile> g = gguf::GgufFile::open(tokenizer_gguf);
  if (!g.is_ok()) return Status(g.status().code(), "synthetic model: tokenizer file: " + g.status().message());
  Result<Tokenizer> tok = Tokenizer::from_gguf(*g);
  if (!tok.is_ok())
    return Status(tok.status().code(), "synthetic model: tokenizer of " + tokenizer_gguf + ": " + tok.status().message());
  if (tok->n_vocab() != config.vocab_size)
    return invalid_argument("synthetic model: the tokenizer of " + tokenizer_gguf + " has " +
                            std::to_string(tok->n_vocab()) + " tokens but " + preset + "'s vocabulary has " +
                            std::to_string(config.vocab_size));
  e->tokenizer_.emplace(std::move(tok).value());
  if (Result<std::string> t = g->get_string("tokenizer.chat_template"); t.is_ok()) e->chat_template_ = *t;
  const int threads = opt.n_threads > 0 ? opt.n_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  GE_ASSIGN_OR_RETURN(e->backend_, create_backend(opt.backend, threads));
  if (opt.on_progress) opt.on_progress(0.0f);
  Result<std::unique_ptr<GemmaModel>> model =
      GemmaModel::create_synthetic(config, type, group_size, *e->backend_, opt.max_chunk, 1234);
  if (!model.is_ok() && model.status().code() == StatusCode::kUnsupported) {
    if (type != QuantType::kQ4_0 && type != QuantType::kQ8_0)
      return unsupported("synthetic model: backend '" + opt.backend + "' synthesizes through a GGUF: q4_0 or q8_0 only");
    // Through a temporary file: the checkpoint maps it, so it may be unlinked right after.
    std::string path = (std::filesystem::temp_directory_path() / "gemma-synthetic-XXXXXX").string();
    const int fd = mkstemp(path.data());
    if (fd < 0) return internal_error("synthetic model: cannot create a temporary file in " + path);
    close(fd);
    SynthOptions so;
    so.preset = preset;
    so.quant = type;
    so.tokenizer_gguf = tokenizer_gguf;
    so.seed = 1234;
    so.force = true;
    so.n_threads = threads;
    Result<SynthReport> r = write_synthetic_gguf(path, so);
    Result<std::unique_ptr<Checkpoint>> cp = r.is_ok() ? Checkpoint::open(path) : Result<std::unique_ptr<Checkpoint>>(r.status());
    std::remove(path.c_str());
    if (!cp.is_ok()) return Status(cp.status().code(), "synthetic model: " + cp.status().message());
    e->checkpoint_ = std::move(cp).value();
    model = GemmaModel::create(e->checkpoint_->config(), e->checkpoint_->weights(), *e->backend_, opt.max_chunk);
  }
  if (!model.is_ok()) return model.status();
  e->model_ = std::move(model).value();
  if (opt.on_progress) opt.on_progress(1.0f);
  e->set_stop_tokens();
  GE_RETURN_IF_ERROR(e->backend_->synchronize());
  e->load_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return e;
}

void Engine::set_stop_tokens() {
  // Stop tokens: the config's EOS ids plus the end-of-turn markers of the family's chat format.
  const Tokenizer& tok = *tokenizer_;
  auto add_stop = [&](int32_t id) {
    if (id >= 0 && id < tok.n_vocab() && std::find(stop_ids_.begin(), stop_ids_.end(), id) == stop_ids_.end())
      stop_ids_.push_back(id);
  };
  for (int32_t id : config().eos_token_ids) add_stop(id);
  add_stop(tok.eos_id());
  const bool g4 = config().family == ModelFamily::kGemma4;
  static const std::vector<std::string> kGemma4Stops = {"<eos>", "<turn|>", "<|tool_response>"};
  static const std::vector<std::string> kGemma3Stops = {"<eos>", "<end_of_turn>"};
  for (const std::string& piece : g4 ? kGemma4Stops : kGemma3Stops)
    if (auto id = tok.find_token(piece)) add_stop(*id);
}

Result<std::unique_ptr<Session>> Engine::create_session(int32_t context_len) {
  const int64_t max_pos = config().max_position_embeddings;
  if (context_len <= 0) return invalid_argument("context length must be positive");
  if (max_pos > 0 && context_len > max_pos)
    return invalid_argument("context length " + std::to_string(context_len) + " exceeds the model's maximum of " +
                            std::to_string(max_pos));
  GE_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache, model_->create_kv_cache(context_len));
  return std::make_unique<Session>(*model_, std::move(cache), context_len);
}

}  // namespace ge
