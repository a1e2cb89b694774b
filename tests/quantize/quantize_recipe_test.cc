// The recipes: ExecuTorch's edge layers and first-match rules, parsing and validation.
#include <gtest/gtest.h>

#include "quant/quantize_recipe.h"

namespace ge {
namespace {

TEST(QuantizeRecipe, EdgeLayersAreTheFirstAndLastQuarter) {
  // 31B: {0..14} ∪ {45..59} (reference-system.md §1.9).
  for (int32_t i = 0; i < 60; ++i) EXPECT_EQ(is_edge_layer(i, 60), i <= 14 || i >= 45) << i;
  // 270M (18 layers): quarter = 4 → {0..3} ∪ {14..17}.
  for (int32_t i = 0; i < 18; ++i) EXPECT_EQ(is_edge_layer(i, 18), i <= 3 || i >= 14) << i;
  EXPECT_FALSE(is_edge_layer(-1, 60));
  EXPECT_FALSE(is_edge_layer(60, 60));
  EXPECT_FALSE(is_edge_layer(0, 3));  // fewer than 4 layers: no edge quarter
}

TEST(QuantizeRecipe, DefaultRules) {
  QuantRecipe r;
  EXPECT_EQ(encoding_for(r, TensorRole::kEmbedding, -1, 60), WeightEncoding::kInt8PerRow);
  EXPECT_EQ(encoding_for(r, TensorRole::kNorm, 3, 60), WeightEncoding::kKeep);
  EXPECT_EQ(encoding_for(r, TensorRole::kLayerScalar, 3, 60), WeightEncoding::kKeep);
  for (TensorRole role : {TensorRole::kAttnQ, TensorRole::kAttnK, TensorRole::kAttnV, TensorRole::kAttnO,
                          TensorRole::kMlpGate, TensorRole::kMlpUp, TensorRole::kMlpDown, TensorRole::kLmHead}) {
    EXPECT_EQ(encoding_for(r, role, 0, 60), WeightEncoding::kInt4);
    EXPECT_EQ(encoding_for(r, role, 30, 60), WeightEncoding::kInt4);
  }
}

TEST(QuantizeRecipe, SensitiveKeepsEdgeValueAndDownProjectionsInInt8) {
  QuantRecipe r;
  r.kind = RecipeKind::kSensitive;
  for (int32_t i = 0; i < 60; ++i) {
    const WeightEncoding edge = (i <= 14 || i >= 45) ? WeightEncoding::kInt8 : WeightEncoding::kInt4;
    EXPECT_EQ(encoding_for(r, TensorRole::kAttnV, i, 60), edge) << i;
    EXPECT_EQ(encoding_for(r, TensorRole::kMlpDown, i, 60), edge) << i;
    EXPECT_EQ(encoding_for(r, TensorRole::kAttnQ, i, 60), WeightEncoding::kInt4) << i;
    EXPECT_EQ(encoding_for(r, TensorRole::kMlpUp, i, 60), WeightEncoding::kInt4) << i;
  }
  EXPECT_EQ(encoding_for(r, TensorRole::kEmbedding, -1, 60), WeightEncoding::kInt8PerRow);
  EXPECT_EQ(encoding_for(r, TensorRole::kNorm, 0, 60), WeightEncoding::kKeep);
}

TEST(QuantizeRecipe, ParsingAndValidation) {
  EXPECT_EQ(parse_recipe_kind("sensitive").value(), RecipeKind::kSensitive);
  EXPECT_EQ(parse_recipe_kind("default").value(), RecipeKind::kDefault);
  EXPECT_FALSE(parse_recipe_kind("fast").is_ok());
  EXPECT_EQ(parse_quant_method("hqq").value(), QuantMethod::kHqq);
  EXPECT_EQ(parse_quant_method("minmax").value(), QuantMethod::kMinMax);
  EXPECT_FALSE(parse_quant_method("gptq").is_ok());
  QuantRecipe r;
  for (int64_t g : {32, 64, 128}) {
    r.group_size = g;
    EXPECT_TRUE(validate_recipe(r).is_ok()) << g;
  }
  for (int64_t g : {0, 16, 48, 256, -32}) {
    r.group_size = g;
    EXPECT_FALSE(validate_recipe(r).is_ok()) << g;
  }
  r.group_size = 32;
  r.int8_group_size = 20;
  EXPECT_FALSE(validate_recipe(r).is_ok());
}

}  // namespace
}  // namespace ge
