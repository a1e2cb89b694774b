// Writing checkpoints: an HF Gemma 3 / Gemma 4 safetensors checkpoint (bf16/f16/f32, sharded or not)
// quantized tensor by tensor into the torchao layout ExecuTorch loads or into a llama.cpp GGUF, and a
// GGUF dequantized back into an HF-layout directory (the unquantized reference for quality numbers).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/checkpoint.h"
#include "model/gemma_config.h"
#include "quant/quant_type.h"
#include "quant/quantize.h"
#include "quant/quantize_recipe.h"
#include "quant/tensor_quantizer.h"

namespace ge {

enum class ExportFormat : uint8_t {
  kTorchao,  // OUT/model.safetensors (Int4Tensor / IntxUnpackedToInt8Tensor / bf16) + config.json, tokenizer
  kGguf,     // one .gguf file, llama.cpp names and keys (gemma-spec.md §3.2, §3.3)
};

struct QuantizeOptions {
  ExportFormat format = ExportFormat::kTorchao;
  QuantRecipe recipe;
  // GGUF: the type of the INT4 slots (Q4_0, Q8_0, Q4_K or Q6_K). INT8 slots are Q8_0. As llama.cpp
  // does, K-quants fall back for rows that are not a multiple of 256: Q4_K → Q5_0, Q6_K → Q8_0.
  QuantType gguf_type = QuantType::kQ4_K;
  int n_threads = 0;   // 0 = hardware concurrency
  bool force = false;  // replace an existing output
  // GGUF: copy every tokenizer.* key from this GGUF file. Empty: convert INPUT/tokenizer.json when
  // present, else write no tokenizer (the engine then needs a tokenizer from elsewhere).
  std::string tokenizer_gguf;
  // Drop each tensor's source pages from the resident set once read (bounded RSS on huge inputs).
  bool release_source_pages = true;
};

struct TensorReport {
  std::string name;      // the name written (torchao FQN or GGUF tensor name)
  std::string encoding;  // "int4-g32-minmax", "int8-g5376", "Q4_K", "bf16", ...
  int64_t rows = 0, cols = 0;
  bool quantized = false;
  QuantStats stats;
};

struct QuantizeReport {
  std::vector<TensorReport> tensors;
  std::vector<std::string> notes;  // fallbacks, tokenizer handling, files copied
  std::string output_file;         // the model file written
  uint64_t output_bytes = 0;
  // Mean and minimum SNR (dB) over the quantized matrices.
  double mean_snr_db() const;
  double min_snr_db() const;
};

// Reads the checkpoint at `input` (directory with config.json, or a .safetensors file beside one)
// one tensor at a time and writes `output`: a directory for kTorchao, a file for kGguf. The output
// file is written under a temporary name beside its final path and renamed when complete.
// `on_tensor` (optional) is called after each tensor (progress).
Result<QuantizeReport> quantize_checkpoint(const std::string& input, const std::string& output,
                                           const QuantizeOptions& options,
                                           const std::function<void(const TensorReport&)>& on_tensor = {});

// The HF config.json text that config_from_hf_json reads back as `config` (same layer table).
Result<std::string> hf_config_json(const GemmaConfig& config);

// Dequantizes a Gemma GGUF into `out_dir` (config.json + model.safetensors in F32 or BF16, HF names,
// Gemma 3 norms shifted back by −1). `dtype_bf16` chooses BF16 over F32.
Status dequantize_gguf_to_hf(const std::string& gguf_path, const std::string& out_dir, bool dtype_bf16, bool force,
                             int n_threads = 0);

// Quantization at load time (`--quantize int4-g32`): the encodings the torchao writer would store
// for `source` (F32/F16/BF16 matrices), held in memory; weights() views them and can be handed to
// GemmaModel::create like a checkpoint's weights. Norms and scalars are copied unchanged.
class QuantizedModelWeights {
 public:
  const ModelWeights& weights() const { return weights_; }
  uint64_t bytes() const;  // quantized data, scales and zeros held

 private:
  friend Result<std::unique_ptr<QuantizedModelWeights>> quantize_model_weights(const GemmaConfig&,
                                                                               const ModelWeights&,
                                                                               const QuantRecipe&, int);
  ModelWeights weights_;
  std::vector<std::unique_ptr<Int4GroupData>> int4_;
  std::vector<std::unique_ptr<Int8GroupData>> int8_;
};

Result<std::unique_ptr<QuantizedModelWeights>> quantize_model_weights(const GemmaConfig& config,
                                                                      const ModelWeights& source,
                                                                      const QuantRecipe& recipe, int n_threads = 0);

}  // namespace ge
