// A loaded checkpoint: the config plus one logical weight set (name → QuantWeight views into the
// mapped file(s)), whatever the source format — GGUF, HF safetensors (bf16/f16/f32, single or
// sharded) or the torchao INT4/INT8 layout ExecuTorch writes.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/gemma_config.h"
#include "quant/quant_type.h"

namespace ge {

namespace gguf {
class GgufFile;
}

struct LayerWeights {
  QuantWeight q_proj, k_proj, v_proj, o_proj;  // v_proj.data == nullptr on K=V layers
  QuantWeight gate_proj, up_proj, down_proj;
  // Norm multipliers as the forward pass applies them (HF Gemma 3's (1 + w) already added).
  std::vector<float> input_layernorm, q_norm, k_norm, post_attention_layernorm;
  std::vector<float> pre_feedforward_layernorm, post_feedforward_layernorm;
  float layer_scalar = 1.0f;
};

struct ModelWeights {
  QuantWeight embed_tokens;  // [vocab, hidden]
  QuantWeight lm_head;       // data == nullptr when tied to embed_tokens
  std::vector<float> norm;   // final norm [hidden]
  std::vector<LayerWeights> layers;
  float embed_scale = 1.0f;  // sqrt(hidden), rounded to the embedding's dtype as HF does
};

enum class CheckpointFormat { kGguf, kSafetensors, kTorchao };

class Checkpoint {
 public:
  ~Checkpoint();
  // `path`: a .gguf file, a .safetensors file, or a directory (config.json + safetensors shards).
  static Result<std::unique_ptr<Checkpoint>> open(const std::string& path);

  const GemmaConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  CheckpointFormat format() const { return format_; }
  const std::string& path() const { return path_; }
  // The GGUF file (for its tokenizer and chat template) or null for safetensors checkpoints.
  const gguf::GgufFile* gguf() const;
  // Directory holding tokenizer.json etc. for HF checkpoints (empty for GGUF).
  const std::string& hf_dir() const { return hf_dir_; }
  // Bytes of weight data referenced (for memory reports).
  uint64_t weight_bytes() const { return weight_bytes_; }
  // Pins the mapped weights in RAM.
  Status lock_memory();

 private:
  Checkpoint() = default;
  struct Files;
  Status load_gguf(const std::string& path);
  Status load_safetensors(const std::string& path);

  GemmaConfig config_;
  ModelWeights weights_;
  CheckpointFormat format_ = CheckpointFormat::kGguf;
  std::string path_;
  std::string hf_dir_;
  uint64_t weight_bytes_ = 0;
  std::unique_ptr<Files> files_;
};

// Maps a ggml tensor type id to the engine's QuantType (unsupported types → error naming the type).
Result<QuantType> quant_type_from_ggml(uint32_t ggml_type);

}  // namespace ge
