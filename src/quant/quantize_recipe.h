// Which encoding each tensor of a Gemma checkpoint gets when `gemma quantize` writes it: ExecuTorch's
// `default` and `sensitive` recipes (reference-system.md §1.9), stated on tensor roles, not names.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/status.h"

namespace ge {

enum class QuantMethod : uint8_t {
  kMinMax,  // torchao choose_qparams_affine: scale = (max − min)/15, zero = −min/scale
  kHqq,     // min-max start, then HQQ's proximal zero-point optimisation (quant/hqq.h)
};

enum class RecipeKind : uint8_t {
  kDefault,    // embedding INT8 per row, norms unquantized, every other matrix INT4
  kSensitive,  // as default, but v_proj / down_proj of the edge layers INT8 (groups of 32)
};

// What a tensor becomes. The torchao writer stores kInt4 as Int4Tensor and kInt8 / kInt8PerRow as
// IntxUnpackedToInt8Tensor; the GGUF writer maps kInt4 to the requested ggml type and both INT8
// encodings to Q8_0; kKeep is bf16 (torchao) or f32 (GGUF).
enum class WeightEncoding : uint8_t {
  kKeep,        // unquantized: norms, layer_scalar
  kInt4,        // asymmetric INT4 groups along K (QuantRecipe::group_size)
  kInt8,        // symmetric INT8 groups of QuantRecipe::int8_group_size
  kInt8PerRow,  // symmetric INT8, one group per row (the embedding: a row is one token)
};

// The part a tensor plays in the model; all the recipe looks at besides the layer index.
enum class TensorRole : uint8_t {
  kEmbedding,
  kLmHead,
  kNorm,         // any RMSNorm weight (layer norms, q/k norms, the final norm)
  kLayerScalar,  // Gemma 4 per-layer output scale
  kAttnQ,
  kAttnK,
  kAttnV,
  kAttnO,
  kMlpGate,
  kMlpUp,
  kMlpDown,
};

struct QuantRecipe {
  RecipeKind kind = RecipeKind::kDefault;
  QuantMethod method = QuantMethod::kMinMax;  // INT4 only; INT8 is always min-max symmetric
  int64_t group_size = 32;                    // INT4 group along K: 32, 64 or 128
  int64_t int8_group_size = 32;               // the sensitive recipe's INT8 linears
  // ExecuTorch unties lm_head (a copy of the embedding) and stores it INT4 next to the INT8
  // embedding. Off: the head stays tied to the INT8 embedding and is not written.
  bool int4_lm_head = false;
};

Result<RecipeKind> parse_recipe_kind(std::string_view name);  // "default" | "sensitive"
Result<QuantMethod> parse_quant_method(std::string_view name);  // "minmax" | "hqq"
const char* recipe_kind_name(RecipeKind kind);
const char* quant_method_name(QuantMethod method);

// The recipe's group sizes are ones the INT4 / INT8 layouts and the CPU packing accept.
Status validate_recipe(const QuantRecipe& recipe);

// ExecuTorch's edge layers: the first and the last quarter of the stack ({0..14} ∪ {45..59} of 60).
bool is_edge_layer(int32_t layer, int32_t num_layers);

// The encoding of one tensor. `layer` is ignored for tensors outside the layer stack.
WeightEncoding encoding_for(const QuantRecipe& recipe, TensorRole role, int32_t layer, int32_t num_layers);

const char* weight_encoding_name(WeightEncoding encoding);

}  // namespace ge
