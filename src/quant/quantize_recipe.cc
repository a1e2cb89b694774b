// Recipe rules, first match wins as in ExecuTorch's quantize_and_save.py: embedding → INT8 per row,
// norms and scalars → unquantized, (sensitive) edge v_proj/down_proj → INT8, everything else → INT4.
#include "quant/quantize_recipe.h"

#include <string>

namespace ge {

Result<RecipeKind> parse_recipe_kind(std::string_view name) {
  if (name == "default") return RecipeKind::kDefault;
  if (name == "sensitive") return RecipeKind::kSensitive;
  return invalid_argument("quantize recipe: '" + std::string(name) + "' is not 'default' or 'sensitive'");
}

Result<QuantMethod> parse_quant_method(std::string_view name) {
  if (name == "minmax" || name == "min_max") return QuantMethod::kMinMax;
  if (name == "hqq") return QuantMethod::kHqq;
  return invalid_argument("quantize method: '" + std::string(name) + "' is not 'minmax' or 'hqq'");
}

const char* recipe_kind_name(RecipeKind kind) { return kind == RecipeKind::kSensitive ? "sensitive" : "default"; }

const char* quant_method_name(QuantMethod method) { return method == QuantMethod::kHqq ? "hqq" : "minmax"; }

const char* weight_encoding_name(WeightEncoding encoding) {
  switch (encoding) {
    case WeightEncoding::kKeep: return "keep";
    case WeightEncoding::kInt4: return "int4";
    case WeightEncoding::kInt8: return "int8";
    case WeightEncoding::kInt8PerRow: return "int8-per-row";
  }
  return "unknown";
}

Status validate_recipe(const QuantRecipe& r) {
  // 32/64/128 are the INT4 group sizes torchao's Int4Tensor kernels and ExecuTorch accept; every one
  // is a multiple of the CPU backend's 32-column block, so packing stays an integer stream.
  if (r.group_size != 32 && r.group_size != 64 && r.group_size != 128) {
    return invalid_argument("quantize recipe: INT4 group size must be 32, 64 or 128, got " +
                            std::to_string(r.group_size));
  }
  if (r.int8_group_size <= 0 || r.int8_group_size % 32 != 0) {
    return invalid_argument("quantize recipe: INT8 group size must be a positive multiple of 32, got " +
                            std::to_string(r.int8_group_size));
  }
  return Status::ok();
}

bool is_edge_layer(int32_t layer, int32_t num_layers) {
  const int32_t quarter = num_layers / 4;
  return layer >= 0 && layer < num_layers && (layer < quarter || layer >= num_layers - quarter);
}

WeightEncoding encoding_for(const QuantRecipe& r, TensorRole role, int32_t layer, int32_t num_layers) {
  switch (role) {
    case TensorRole::kEmbedding: return WeightEncoding::kInt8PerRow;
    case TensorRole::kNorm:
    case TensorRole::kLayerScalar: return WeightEncoding::kKeep;
    case TensorRole::kAttnV:
    case TensorRole::kMlpDown:
      if (r.kind == RecipeKind::kSensitive && is_edge_layer(layer, num_layers)) return WeightEncoding::kInt8;
      return WeightEncoding::kInt4;
    case TensorRole::kLmHead:
    case TensorRole::kAttnQ:
    case TensorRole::kAttnK:
    case TensorRole::kAttnO:
    case TensorRole::kMlpGate:
    case TensorRole::kMlpUp: return WeightEncoding::kInt4;
  }
  return WeightEncoding::kInt4;
}

}  // namespace ge
