// Tests for QuantType metadata: names, block layouts, checked row sizes and weight-view validation.
#include "quant/quant_type.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace ge {
namespace {

const QuantType kAllTypes[] = {
    QuantType::kF32,  QuantType::kF16,       QuantType::kBF16,      QuantType::kQ4_0,
    QuantType::kQ5_0, QuantType::kQ8_0,      QuantType::kQ4_K,      QuantType::kQ5_K,
    QuantType::kQ6_K, QuantType::kInt4Group, QuantType::kInt8Group,
};

TEST(QuantType, NamesAreDistinct) {
  std::vector<std::string> seen;
  for (QuantType t : kAllTypes) {
    const std::string name = quant_type_name(t);
    EXPECT_NE(name, "unknown");
    for (const std::string& s : seen) EXPECT_NE(s, name);
    seen.push_back(name);
  }
  EXPECT_STREQ(quant_type_name(QuantType::kQ4_K), "Q4_K");
  EXPECT_STREQ(quant_type_name(static_cast<QuantType>(200)), "unknown");
}

TEST(QuantType, BlockLayoutsMatchGgml) {
  // Sizes from the ggml block structs: header fields plus packed quants.
  struct Case {
    QuantType type;
    int64_t elems, bytes;
  };
  const Case cases[] = {
      {QuantType::kF32, 1, 4},      {QuantType::kF16, 1, 2},      {QuantType::kBF16, 1, 2},
      {QuantType::kQ4_0, 32, 18},   {QuantType::kQ5_0, 32, 22},   {QuantType::kQ8_0, 32, 34},
      {QuantType::kQ4_K, 256, 144}, {QuantType::kQ5_K, 256, 176}, {QuantType::kQ6_K, 256, 210},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(quant_type_name(c.type));
    EXPECT_TRUE(is_row_blocked(c.type));
    EXPECT_EQ(block_layout(c.type).block_elems, c.elems);
    EXPECT_EQ(block_layout(c.type).block_bytes, c.bytes);
    // Bits per weight from the layout, e.g. Q4_K = 4.5, Q6_K = 6.5625.
    Result<uint64_t> bytes = row_bytes(c.type, 2048);
    ASSERT_TRUE(bytes.is_ok()) << bytes.status().to_string();
    EXPECT_EQ(bytes.value(), static_cast<uint64_t>(2048 / c.elems * c.bytes));
  }
  EXPECT_FALSE(is_row_blocked(QuantType::kInt4Group));
  EXPECT_FALSE(is_row_blocked(QuantType::kInt8Group));
  EXPECT_FALSE(is_row_blocked(static_cast<QuantType>(99)));
  EXPECT_EQ(block_layout(QuantType::kInt4Group).block_bytes, 0);
}

TEST(QuantType, RowBytesRejectsBadColumns) {
  Result<uint64_t> partial = row_bytes(QuantType::kQ4_K, 100);
  ASSERT_FALSE(partial.is_ok());
  EXPECT_EQ(partial.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(partial.status().message().find("256"), std::string::npos)
      << partial.status().message();
  EXPECT_FALSE(row_bytes(QuantType::kQ8_0, 33).is_ok());
  EXPECT_FALSE(row_bytes(QuantType::kF16, -2).is_ok());
  EXPECT_FALSE(row_bytes(QuantType::kInt4Group, 64).is_ok());
  EXPECT_TRUE(row_bytes(QuantType::kQ4_0, 0).is_ok());
}

TEST(QuantType, RowBytesOverflowIsAnError) {
  const int64_t huge = std::numeric_limits<int64_t>::max();
  // F32: 4 · (2^63 − 1) does not fit in 64 bits.
  Result<uint64_t> f32 = row_bytes(QuantType::kF32, huge);
  ASSERT_FALSE(f32.is_ok());
  EXPECT_NE(f32.status().message().find("overflow"), std::string::npos);
  // Q6_K packs 256 elements into 210 bytes, so any int64 row fits; the whole tensor may not.
  const int64_t cols = huge / 256 * 256;
  ASSERT_TRUE(row_bytes(QuantType::kQ6_K, cols).is_ok());
  QuantWeight w;
  w.type = QuantType::kQ6_K;
  w.rows = 4;
  w.cols = cols;
  Result<WeightBytes> total = weight_bytes(w);
  ASSERT_FALSE(total.is_ok());
  EXPECT_NE(total.status().message().find("overflow"), std::string::npos);
  // Just below the limit still works.
  Result<uint64_t> ok = row_bytes(QuantType::kF32, int64_t{1} << 61);
  ASSERT_TRUE(ok.is_ok());
  EXPECT_EQ(ok.value(), uint64_t{1} << 63);
}

QuantWeight make_weight(QuantType type, int64_t rows, int64_t cols) {
  static const uint8_t kData[1] = {};
  static const uint16_t kScale[1] = {};
  QuantWeight w;
  w.type = type;
  w.rows = rows;
  w.cols = cols;
  w.data = kData;
  if (!is_row_blocked(type)) {
    w.group_size = 32;
    w.scale = kScale;
  }
  return w;
}

TEST(QuantType, ValidateWeightAcceptsWellFormedViews) {
  EXPECT_TRUE(validate_weight(make_weight(QuantType::kQ4_K, 4, 512)).is_ok());
  EXPECT_TRUE(validate_weight(make_weight(QuantType::kF32, 1, 7)).is_ok());
  EXPECT_TRUE(validate_weight(make_weight(QuantType::kInt4Group, 3, 128)).is_ok());
  EXPECT_TRUE(validate_weight(make_weight(QuantType::kInt8Group, 3, 96)).is_ok());
}

TEST(QuantType, ValidateWeightRejectsBadShapes) {
  auto expect_bad = [](const QuantWeight& w, const char* what) {
    Status s = validate_weight(w);
    EXPECT_FALSE(s.is_ok()) << what;
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << what;
    EXPECT_NE(s.message().find("validate_weight"), std::string::npos) << s.message();
  };
  expect_bad(make_weight(QuantType::kQ4_K, 0, 256), "zero rows");
  expect_bad(make_weight(QuantType::kQ4_K, 4, 0), "zero cols");
  expect_bad(make_weight(QuantType::kQ4_K, -1, 256), "negative rows");
  expect_bad(make_weight(QuantType::kQ4_K, 4, 300), "cols not a multiple of the block");
  expect_bad(make_weight(QuantType::kQ8_0, 4, 48), "cols not a multiple of 32");
  expect_bad(make_weight(static_cast<QuantType>(42), 4, 32), "unknown type");

  QuantWeight no_data = make_weight(QuantType::kQ8_0, 4, 64);
  no_data.data = nullptr;
  expect_bad(no_data, "null data");

  for (QuantType t : {QuantType::kInt4Group, QuantType::kInt8Group}) {
    SCOPED_TRACE(quant_type_name(t));
    QuantWeight w = make_weight(t, 4, 128);
    w.group_size = 48;
    expect_bad(w, "cols not a multiple of the group");
    w.group_size = 0;
    expect_bad(w, "zero group");
    w.group_size = -32;
    expect_bad(w, "negative group");
    w = make_weight(t, 4, 128);
    w.scale = nullptr;
    expect_bad(w, "null scale");
    w = make_weight(t, 4, 128);
    w.data = nullptr;
    expect_bad(w, "null qdata");
    w = make_weight(t, 0, 128);
    expect_bad(w, "zero rows");
  }
  QuantWeight odd = make_weight(QuantType::kInt4Group, 2, 3);
  odd.group_size = 1;
  expect_bad(odd, "odd int4 row cannot be packed in whole bytes");

  QuantWeight huge = make_weight(QuantType::kF32, std::numeric_limits<int64_t>::max(), 1 << 20);
  expect_bad(huge, "total byte size overflows");
  QuantWeight huge_groups = make_weight(QuantType::kInt8Group, int64_t{1} << 40, int64_t{1} << 30);
  huge_groups.group_size = 1;
  expect_bad(huge_groups, "group count overflows");
}

TEST(QuantType, WeightBytesCountsEveryBuffer) {
  QuantWeight q = make_weight(QuantType::kQ6_K, 3, 512);
  Result<WeightBytes> qb = weight_bytes(q);
  ASSERT_TRUE(qb.is_ok());
  EXPECT_EQ(qb->data, 3u * 2 * 210);
  EXPECT_EQ(qb->scale, 0u);

  uint16_t zero_storage = 0;
  QuantWeight i4 = make_weight(QuantType::kInt4Group, 5, 256);
  i4.group_size = 64;
  Result<WeightBytes> b4 = weight_bytes(i4);
  ASSERT_TRUE(b4.is_ok());
  EXPECT_EQ(b4->data, 5u * 128);
  EXPECT_EQ(b4->scale, 5u * 4 * 2);  // bf16 [groups, rows]
  EXPECT_EQ(b4->zero, 0u);           // null zero: implicit 8
  i4.zero = &zero_storage;
  EXPECT_EQ(weight_bytes(i4)->zero, 5u * 4 * 2);

  int8_t zero8 = 0;
  QuantWeight i8 = make_weight(QuantType::kInt8Group, 5, 256);
  i8.group_size = 128;
  i8.zero = &zero8;
  Result<WeightBytes> b8 = weight_bytes(i8);
  ASSERT_TRUE(b8.is_ok());
  EXPECT_EQ(b8->data, 5u * 256);
  EXPECT_EQ(b8->scale, 5u * 2 * 2);
  EXPECT_EQ(b8->zero, 5u * 2);  // int8 [rows, groups]
}

}  // namespace
}  // namespace ge
