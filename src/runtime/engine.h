// Engine: the immutable part of a loaded model — checkpoint (mapped weights), backend, packed
// model, tokenizer and generation defaults. It creates Sessions, each with its own KV cache.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "backend/backend.h"
#include "core/status.h"
#include "model/checkpoint.h"
#include "model/checkpoint_writer.h"
#include "model/gemma_model.h"
#include "runtime/session.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

namespace ge {

struct EngineOptions {
  std::string backend = "cpu";
  int n_threads = 0;           // 0 = hardware concurrency
  int32_t max_chunk = 0;       // prefill tokens per forward call; 0 = the model's default (GemmaModel::create)
  bool mlock = false;
  // cpu backend: use GGUF Q4_0/Q8_0 weights in place from the mapping instead of repacking them
  // (which happens anyway when a packed copy would not fit in available memory).
  bool no_repack = false;
  // Quantize float weights at load: "" (keep the checkpoint's encoding), "int4-g32", "int4-g64",
  // "int4-g128" (min-max INT4 linears, per-row INT8 embedding: the default recipe).
  std::string quantize;
  // Called with a fraction in [0, 1] while weights are packed (progress bar).
  std::function<void(float)> on_progress;
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> load(const std::string& model_path, const EngineOptions& options);
  // Random weights of a preset's shape (preset_config names) built by the backend (no checkpoint:
  // benchmarks of models whose weights are out of reach), with the tokenizer and chat template of
  // `tokenizer_gguf`, any GGUF whose vocabulary has exactly the preset's vocab_size tokens (`gemma
  // synth --vocab-only` writes one). A backend that cannot synthesize weights (cpu) loads a
  // temporary `gemma synth` GGUF instead (Q4_0 / Q8_0 only; the file is unlinked once mapped).
  static Result<std::unique_ptr<Engine>> create_synthetic(const std::string& preset, QuantType type,
                                                          int64_t group_size, const std::string& tokenizer_gguf,
                                                          const EngineOptions& options);

  Result<std::unique_ptr<Session>> create_session(int32_t context_len);

  const GemmaConfig& config() const { return model_->config(); }
  // Null for a synthetic engine.
  const Checkpoint* checkpoint() const { return checkpoint_.get(); }
  GemmaModel& model() { return *model_; }
  Backend& backend() { return *backend_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  // Sampling defaults from generation_config.json when present, else the documented defaults.
  const SamplingParams& default_sampling() const { return default_sampling_; }
  // Token ids that end generation (the model's end-of-turn / end-of-sequence tokens).
  const std::vector<int32_t>& stop_token_ids() const { return stop_ids_; }
  // The chat template shipped with the model (GGUF tokenizer.chat_template, or chat_template.jinja /
  // tokenizer_config.json beside an HF checkpoint). Base (pre-trained) models usually ship none.
  const std::optional<std::string>& embedded_chat_template() const { return chat_template_; }
  double load_ms() const { return load_ms_; }

 private:
  Engine() = default;
  // Stop tokens from config.eos_token_ids, the tokenizer's EOS and the family's end-of-turn markers.
  void set_stop_tokens();
  std::unique_ptr<Checkpoint> checkpoint_;
  std::unique_ptr<QuantizedModelWeights> quantized_;  // set when EngineOptions::quantize asked for it
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<GemmaModel> model_;
  std::optional<Tokenizer> tokenizer_;
  SamplingParams default_sampling_;
  std::vector<int32_t> stop_ids_;
  std::optional<std::string> chat_template_;
  double load_ms_ = 0;
};

}  // namespace ge
