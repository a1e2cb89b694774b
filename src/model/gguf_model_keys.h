// The model half of a llama.cpp-compatible Gemma GGUF: architecture keys for a config, the
// rope_freqs tensor, ggml type ids, and the header with tensor infos laid out at 32-byte alignment.
// Shared by `gemma quantize` (checkpoint_writer.cc) and `gemma synth` (synthetic_gguf.cc).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "formats/gguf_writer.h"
#include "model/gemma_config.h"
#include "quant/quant_type.h"

namespace ge {

using GgufKeyValues = std::vector<std::pair<std::string, gguf::Value>>;

// Alignment of the tensors in the data section (general.alignment is never written: the default).
constexpr uint64_t kGgufAlignment = 32;

// The ggml type id of an engine encoding (F32 for the torchao group types, which GGUF lacks).
uint32_t ggml_type_of(QuantType t);

// llama.cpp's freq-factor tensor for Gemma 4 proportional RoPE: 1 for rotating pairs, 1e30 for frozen.
std::vector<float> gguf_rope_freqs(const LayerConfig& full);

// general.* and <arch>.* keys for `c` (arch "gemma3" or "gemma4"); file_type follows `gguf_type`
// (Q4_0, Q8_0, Q4_K, otherwise Q6_K). Errors when llama.cpp's fixed layout cannot express `c`.
Status gguf_model_keys(const GemmaConfig& c, QuantType gguf_type, const std::string& name, GgufKeyValues* kv);

// One tensor's entry in the header. nbytes and offset (relative to the data section) are filled in
// by gguf_header.
struct GgufTensorSlot {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] = row length
  QuantType type = QuantType::kF32;
  uint64_t nbytes = 0;
  uint64_t offset = 0;
};

// The GGUF v3 header (key/values, tensor infos) padded to the data section; fills every slot's
// nbytes and offset, the data section's start and its size (checked arithmetic throughout).
Result<std::vector<uint8_t>> gguf_header(const GgufKeyValues& kvs, std::vector<GgufTensorSlot>* tensors,
                                         uint64_t* data_start, uint64_t* data_bytes);

}  // namespace ge
