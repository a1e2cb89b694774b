// ggml type table and checked tensor byte sizes (ids and block sizes as gguf-py 0.19 lists them).
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

#include "formats/ggml_types.h"

namespace ge {
namespace {

struct Expected {
  uint32_t id;
  const char* name;
  uint32_t block_elems;
  uint32_t block_bytes;
};

// From `python3 -c "import gguf; print(gguf.GGML_QUANT_SIZES)"` (gguf 0.19.0).
constexpr Expected kExpected[] = {
    {0, "F32", 1, 4},         {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},      {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},      {7, "Q5_1", 32, 24},      {8, "Q8_0", 32, 34},      {9, "Q8_1", 32, 40},
    {10, "Q2_K", 256, 84},    {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},   {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74},
    {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},   {20, "IQ4_NL", 32, 18},   {21, "IQ3_S", 256, 110},
    {22, "IQ2_S", 256, 82},   {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},         {25, "I16", 1, 2},
    {26, "I32", 1, 4},        {27, "I64", 1, 8},        {28, "F64", 1, 8},        {29, "IQ1_M", 256, 56},
    {30, "BF16", 1, 2},       {34, "TQ1_0", 256, 54},   {35, "TQ2_0", 256, 66},   {39, "MXFP4", 32, 17},
    {40, "NVFP4", 64, 36},    {41, "Q1_0", 128, 18},
};

TEST(GgmlTypes, TableMatchesGgufPy) {
  for (const Expected& e : kExpected) {
    const GgmlTypeInfo* info = ggml_type_info(e.id);
    ASSERT_NE(info, nullptr) << e.name;
    EXPECT_STREQ(info->name, e.name);
    EXPECT_EQ(info->block_elems, e.block_elems) << e.name;
    EXPECT_EQ(info->block_bytes, e.block_bytes) << e.name;
    EXPECT_STREQ(ggml_type_name(e.id), e.name);
  }
  EXPECT_EQ(ggml_id(GgmlType::kQ4_K), 12u);
  EXPECT_EQ(ggml_id(GgmlType::kBF16), 30u);
  EXPECT_EQ(ggml_id(GgmlType::kMXFP4), 39u);
}

TEST(GgmlTypes, RemovedAndUnknownIdsHaveNoInfo) {
  for (uint32_t id : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 42u, 1000u, 0xffffffffu}) {
    EXPECT_EQ(ggml_type_info(id), nullptr) << id;
    EXPECT_STREQ(ggml_type_name(id), "unknown");
    const int64_t ne[1] = {32};
    auto r = ggml_tensor_nbytes(id, ne, 1);
    ASSERT_FALSE(r.is_ok()) << id;
    EXPECT_NE(r.status().message().find("unknown or removed"), std::string::npos);
  }
}

TEST(GgmlTypes, NbytesOfRealShapes) {
  const int64_t norm[1] = {640};
  const int64_t embd[2] = {640, 262144};
  const int64_t attn_o[2] = {1024, 640};
  const int64_t four[4] = {64, 3, 5, 7};
  EXPECT_EQ(ggml_tensor_nbytes(ggml_id(GgmlType::kF32), norm, 1).value(), 2560u);
  EXPECT_EQ(ggml_tensor_nbytes(ggml_id(GgmlType::kQ8_0), embd, 2).value(), 178257920u);
  EXPECT_EQ(ggml_tensor_nbytes(ggml_id(GgmlType::kQ4_K), attn_o, 2).value(), 368640u);
  EXPECT_EQ(ggml_tensor_nbytes(ggml_id(GgmlType::kQ5_0), four, 4).value(), 2u * 22u * 3 * 5 * 7);
  EXPECT_EQ(ggml_tensor_nbytes(ggml_id(GgmlType::kBF16), four, 4).value(), 64u * 2 * 3 * 5 * 7);
  EXPECT_EQ(ggml_row_bytes(ggml_id(GgmlType::kQ6_K), 512).value(), 420u);
  EXPECT_EQ(ggml_row_bytes(ggml_id(GgmlType::kMXFP4), 64).value(), 34u);
}

TEST(GgmlTypes, NbytesZeroDimIsEmpty) {
  const int64_t ne[3] = {256, 0, 1000};
  EXPECT_EQ(ggml_tensor_nbytes(ggml_id(GgmlType::kQ4_K), ne, 3).value(), 0u);
}

void expect_error(Result<uint64_t> r, const std::string& needle) {
  ASSERT_FALSE(r.is_ok()) << "expected an error mentioning '" << needle << "', got " << r.value();
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
}

TEST(GgmlTypes, NbytesRejectsBadShapes) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  const uint32_t f32 = ggml_id(GgmlType::kF32), i8 = ggml_id(GgmlType::kI8), q4k = ggml_id(GgmlType::kQ4_K);
  const int64_t ok[4] = {256, 1, 1, 1};
  expect_error(ggml_tensor_nbytes(f32, ok, 0), "n_dims 0");
  expect_error(ggml_tensor_nbytes(f32, ok, 5), "n_dims 5");
  expect_error(ggml_tensor_nbytes(f32, nullptr, 1), "n_dims");
  const int64_t neg[2] = {4, -1};
  expect_error(ggml_tensor_nbytes(f32, neg, 2), "negative");
  const int64_t not_block[1] = {100};
  expect_error(ggml_tensor_nbytes(q4k, not_block, 1), "not a multiple");
  expect_error(ggml_row_bytes(q4k, 100), "not a multiple");
  expect_error(ggml_row_bytes(q4k, 0), "positive");
  // (INT64_MAX, 2, 1, 1): the element count wraps negative in naive int64 code.
  const int64_t wrap_elems[4] = {kMax, 2, 1, 1};
  expect_error(ggml_tensor_nbytes(i8, wrap_elems, 4), "overflows int64");
  // Element count fits, byte count does not (4 bytes per F32 element).
  const int64_t wrap_bytes[1] = {kMax / 2};
  expect_error(ggml_tensor_nbytes(f32, wrap_bytes, 1), "overflow");
  // Quantized: the element count fits in int64 but 40 bytes per 32 elements (Q8_1) does not.
  const int64_t q_bytes[1] = {kMax - 31};
  expect_error(ggml_tensor_nbytes(ggml_id(GgmlType::kQ8_1), q_bytes, 1), "byte count");
  // Quantized over two dims: 2^50 Q4_K blocks per row times 2^10 rows.
  const int64_t q_wrap[2] = {int64_t{256} << 50, int64_t{1} << 10};
  expect_error(ggml_tensor_nbytes(q4k, q_wrap, 2), "overflows int64");
  // Every partial product checked: large dims whose wrapped product would look small.
  const int64_t sneaky[4] = {int64_t{1} << 32, int64_t{1} << 32, 1, 1};
  expect_error(ggml_tensor_nbytes(i8, sneaky, 4), "overflows int64");
  // The largest representable byte count is accepted.
  const int64_t edge[1] = {kMax};
  EXPECT_EQ(ggml_tensor_nbytes(i8, edge, 1).value(), static_cast<uint64_t>(kMax));
}

}  // namespace
}  // namespace ge
