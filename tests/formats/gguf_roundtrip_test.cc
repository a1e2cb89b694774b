// Writer -> reader round trips for every value type and several tensor types, getter conversion
// rules, writer errors, and a file written by the reference gguf-py writer.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "formats/ggml_types.h"
#include "formats/gguf_reader.h"
#include "formats/gguf_writer.h"

namespace ge::gguf {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes serialize(const GgufWriter& w) {
  auto r = w.serialize();
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? r.value() : Bytes{};
}

// Parses from an exact-size heap copy so that any over-read is visible to ASan.
Result<GgufFile> parse_copy(const Bytes& bytes, std::unique_ptr<uint8_t[]>* keep) {
  keep->reset(new uint8_t[bytes.size() + 1]);
  if (!bytes.empty()) std::memcpy(keep->get(), bytes.data(), bytes.size());
  return GgufFile::parse(keep->get(), bytes.size());
}

// Unwraps a Result; a failure ends the test (GoogleTest reports the exception with the message).
template <typename T>
T must(Result<T> r) {
  if (!r.is_ok()) throw std::runtime_error("unexpected error: " + r.status().to_string());
  return std::move(r).value();
}

void expect_error(const Status& s, StatusCode code, const std::string& needle) {
  EXPECT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), code) << s.to_string();
  EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ge_gguf_test_XXXXXX").string();
    EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
    path_ = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(GgufRoundTrip, EveryScalarType) {
  const std::string str_with_nul("a\0b \xe2\x96\x81x", 8);
  GgufWriter w;
  w.set("u8", Value::uint8(255));
  w.set("i8", Value::int8(-128));
  w.set("u16", Value::uint16(65535));
  w.set("i16", Value::int16(-32768));
  w.set("u32", Value::uint32(4294967295u));
  w.set("i32", Value::int32(std::numeric_limits<int32_t>::min()));
  w.set("f32", Value::float32(-1.5e-7f));
  w.set("bool_t", Value::boolean(true));
  w.set("bool_f", Value::boolean(false));
  w.set("str", Value::string(str_with_nul));
  w.set("empty_str", Value::string(""));
  w.set("u64", Value::uint64(std::numeric_limits<uint64_t>::max()));
  w.set("i64", Value::int64(std::numeric_limits<int64_t>::min()));
  w.set("f64", Value::float64(1e300));
  std::unique_ptr<uint8_t[]> keep;
  GgufFile f = must(parse_copy(serialize(w), &keep));

  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.keys().size(), 14u);
  EXPECT_EQ(f.type_of("u8"), ValueType::kUint8);
  EXPECT_EQ(f.type_of("i8"), ValueType::kInt8);
  EXPECT_EQ(f.type_of("u16"), ValueType::kUint16);
  EXPECT_EQ(f.type_of("i16"), ValueType::kInt16);
  EXPECT_EQ(f.type_of("u32"), ValueType::kUint32);
  EXPECT_EQ(f.type_of("i32"), ValueType::kInt32);
  EXPECT_EQ(f.type_of("f32"), ValueType::kFloat32);
  EXPECT_EQ(f.type_of("bool_t"), ValueType::kBool);
  EXPECT_EQ(f.type_of("str"), ValueType::kString);
  EXPECT_EQ(f.type_of("u64"), ValueType::kUint64);
  EXPECT_EQ(f.type_of("i64"), ValueType::kInt64);
  EXPECT_EQ(f.type_of("f64"), ValueType::kFloat64);
  EXPECT_FALSE(f.type_of("missing").has_value());

  EXPECT_EQ(must(f.get_uint("u8")), 255u);
  EXPECT_EQ(must(f.get_int("i8")), -128);
  EXPECT_EQ(must(f.get_uint("u16")), 65535u);
  EXPECT_EQ(must(f.get_int("i16")), -32768);
  EXPECT_EQ(must(f.get_uint("u32")), 4294967295u);
  EXPECT_EQ(must(f.get_int("i32")), std::numeric_limits<int32_t>::min());
  EXPECT_EQ(must(f.get_float("f32")), static_cast<double>(-1.5e-7f));
  EXPECT_TRUE(must(f.get_bool("bool_t")));
  EXPECT_FALSE(must(f.get_bool("bool_f")));
  EXPECT_EQ(must(f.get_string("str")), str_with_nul);
  EXPECT_EQ(must(f.get_string("empty_str")), "");
  EXPECT_EQ(must(f.get_uint("u64")), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(must(f.get_int("i64")), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(must(f.get_float("f64")), 1e300);
  // Integers widen into the other getters where the value fits.
  EXPECT_EQ(must(f.get_int("u32")), 4294967295);
  EXPECT_EQ(must(f.get_float("i16")), -32768.0);
  EXPECT_EQ(must(f.get_uint("u8")), 255u);
}

TEST(GgufRoundTrip, GetterConversionErrors) {
  GgufWriter w;
  w.set("neg", Value::int32(-5));
  w.set("big", Value::uint64(uint64_t{1} << 63));
  w.set("s", Value::string("x"));
  w.set("f", Value::float32(1.0f));
  w.set("b", Value::boolean(true));
  const std::vector<uint32_t> arr = {1, 2};
  w.set("arr", Value::array(std::span<const uint32_t>(arr)));
  std::unique_ptr<uint8_t[]> keep;
  GgufFile f = must(parse_copy(serialize(w), &keep));

  expect_error(f.get_uint("neg").status(), StatusCode::kFormatError, "non-negative");
  EXPECT_EQ(must(f.get_int("neg")), -5);
  expect_error(f.get_int("big").status(), StatusCode::kFormatError, "does not fit in int64");
  EXPECT_EQ(must(f.get_uint("big")), uint64_t{1} << 63);
  expect_error(f.get_uint("s").status(), StatusCode::kFormatError, "has type string");
  expect_error(f.get_string("f").status(), StatusCode::kFormatError, "expected string");
  expect_error(f.get_int("f").status(), StatusCode::kFormatError, "has type f32");
  expect_error(f.get_bool("neg").status(), StatusCode::kFormatError, "expected bool");
  expect_error(f.get_float("b").status(), StatusCode::kFormatError, "expected a number");
  expect_error(f.get_float("s").status(), StatusCode::kFormatError, "expected a number");
  expect_error(f.get_uint("arr").status(), StatusCode::kFormatError, "is an array of u32");
  expect_error(f.get_string_array("arr").status(), StatusCode::kFormatError, "expected an array of string");
  expect_error(f.get_f32_array("arr").status(), StatusCode::kFormatError, "expected an array of f32");
  expect_error(f.get_bool_array("arr").status(), StatusCode::kFormatError, "expected an array of bool");
  expect_error(f.get_int_array("s").status(), StatusCode::kFormatError, "expected an array");
  expect_error(f.get_uint("nope").status(), StatusCode::kNotFound, "'nope' not found");
  expect_error(f.get_string_array("nope").status(), StatusCode::kNotFound, "not found");
  EXPECT_EQ(f.array_size("s"), 0u);
  EXPECT_EQ(f.array_size("nope"), 0u);
  EXPECT_FALSE(f.array_type_of("s").has_value());
  EXPECT_EQ(f.array_type_of("arr"), ValueType::kUint32);
}

TEST(GgufRoundTrip, EveryArrayType) {
  const std::vector<uint8_t> u8 = {0, 7, 255};
  const std::vector<int8_t> i8 = {-128, 0, 127};
  const std::vector<uint16_t> u16 = {0, 65535};
  const std::vector<int16_t> i16 = {-32768, 1};
  const std::vector<uint32_t> u32 = {4000000000u};
  const std::vector<int32_t> i32 = {-3, 3, 1 << 30};
  const std::vector<float> f32 = {1.5f, -0.0f, 3.25e-5f};
  const std::vector<uint64_t> u64 = {uint64_t{1} << 40, 9};
  const std::vector<uint64_t> u64_big = {uint64_t{1} << 63};
  const std::vector<int64_t> i64 = {std::numeric_limits<int64_t>::min(), -1};
  const std::vector<double> f64 = {0.1, -2.0};
  const std::vector<bool> bools = {true, false, false, true};
  const std::vector<std::string> strs = {"<pad>", "", "\xe2\x96\x81the", std::string(300, 'z')};
  const std::vector<int32_t> none;
  GgufWriter w;
  w.set("u8", Value::array(std::span<const uint8_t>(u8)));
  w.set("i8", Value::array(std::span<const int8_t>(i8)));
  w.set("u16", Value::array(std::span<const uint16_t>(u16)));
  w.set("i16", Value::array(std::span<const int16_t>(i16)));
  w.set("u32", Value::array(std::span<const uint32_t>(u32)));
  w.set("i32", Value::array(std::span<const int32_t>(i32)));
  w.set("f32", Value::array(std::span<const float>(f32)));
  w.set("u64", Value::array(std::span<const uint64_t>(u64)));
  w.set("u64_big", Value::array(std::span<const uint64_t>(u64_big)));
  w.set("i64", Value::array(std::span<const int64_t>(i64)));
  w.set("f64", Value::array(std::span<const double>(f64)));
  w.set("bool", Value::bool_array(bools));
  w.set("str", Value::string_array(strs));
  w.set("empty", Value::array(std::span<const int32_t>(none)));
  std::unique_ptr<uint8_t[]> keep;
  GgufFile f = must(parse_copy(serialize(w), &keep));

  EXPECT_EQ(must(f.get_int_array("u8")), (std::vector<int64_t>{0, 7, 255}));
  EXPECT_EQ(must(f.get_int_array("i8")), (std::vector<int64_t>{-128, 0, 127}));
  EXPECT_EQ(must(f.get_int_array("u16")), (std::vector<int64_t>{0, 65535}));
  EXPECT_EQ(must(f.get_int_array("i16")), (std::vector<int64_t>{-32768, 1}));
  EXPECT_EQ(must(f.get_int_array("u32")), (std::vector<int64_t>{4000000000}));
  EXPECT_EQ(must(f.get_int_array("i32")), (std::vector<int64_t>{-3, 3, 1 << 30}));
  EXPECT_EQ(must(f.get_f32_array("f32")), f32);
  EXPECT_TRUE(std::signbit(must(f.get_f32_array("f32"))[1]));
  EXPECT_EQ(must(f.get_int_array("u64")), (std::vector<int64_t>{int64_t{1} << 40, 9}));
  expect_error(f.get_int_array("u64_big").status(), StatusCode::kFormatError, "does not fit in int64");
  EXPECT_EQ(must(f.get_int_array("i64")), i64);
  EXPECT_EQ(must(f.get_f32_array("f64")), (std::vector<float>{0.1f, -2.0f}));
  EXPECT_EQ(must(f.get_bool_array("bool")), bools);
  EXPECT_EQ(must(f.get_string_array("str")), strs);
  EXPECT_TRUE(must(f.get_int_array("empty")).empty());

  const std::pair<const char*, ValueType> kinds[] = {
      {"u8", ValueType::kUint8},   {"i8", ValueType::kInt8},     {"u16", ValueType::kUint16},
      {"i16", ValueType::kInt16},  {"u32", ValueType::kUint32},  {"i32", ValueType::kInt32},
      {"f32", ValueType::kFloat32}, {"u64", ValueType::kUint64}, {"i64", ValueType::kInt64},
      {"f64", ValueType::kFloat64}, {"bool", ValueType::kBool},  {"str", ValueType::kString},
  };
  for (const auto& [key, type] : kinds) {
    EXPECT_EQ(f.type_of(key), ValueType::kArray) << key;
    EXPECT_EQ(f.array_type_of(key), type) << key;
  }
  EXPECT_EQ(f.array_size("str"), 4u);
  EXPECT_EQ(f.array_size("bool"), 4u);
  EXPECT_EQ(f.array_size("empty"), 0u);
}

TEST(GgufRoundTrip, NestedArraysAndRawValues) {
  const std::vector<int32_t> a = {1, 2}, b = {3};
  std::vector<Value> inner = {Value::array(std::span<const int32_t>(a)), Value::array(std::span<const int32_t>(b))};
  Value nested = must(Value::array_of(ValueType::kArray, inner));
  Value deeper = must(Value::array_of(ValueType::kArray, {nested, nested}));
  auto mixed = Value::array_of(ValueType::kInt32, {Value::int32(1), Value::uint8(2)});
  expect_error(mixed.status(), StatusCode::kInvalidArgument, "element 1 has type u8");

  GgufWriter w;
  w.set("nested", nested);
  w.set("deeper", deeper);
  w.set("pair", must(Value::array_of(ValueType::kString, {Value::string("x"), Value::string("yz")})));
  std::unique_ptr<uint8_t[]> keep;
  GgufFile f = must(parse_copy(serialize(w), &keep));
  EXPECT_EQ(f.array_type_of("nested"), ValueType::kArray);
  EXPECT_EQ(f.array_size("nested"), 2u);
  EXPECT_EQ(f.array_size("deeper"), 2u);
  expect_error(f.get_int_array("nested").status(), StatusCode::kFormatError, "is an array of array");
  EXPECT_EQ(must(f.get_string_array("pair")), (std::vector<std::string>{"x", "yz"}));

  // Raw bytes are exactly what the writer encoded: type tag excluded.
  auto raw = f.raw_value("nested");
  ASSERT_TRUE(raw.has_value());
  EXPECT_EQ(raw->type, ValueType::kArray);
  ASSERT_EQ(raw->size, nested.bytes().size());
  EXPECT_EQ(std::memcmp(raw->data, nested.bytes().data(), raw->size), 0);
  EXPECT_FALSE(f.raw_value("missing").has_value());
}

TEST(GgufRoundTrip, SetTwiceKeepsPositionAndLastValue) {
  GgufWriter w;
  w.set("a", Value::uint32(1));
  w.set("b", Value::uint32(2));
  w.set("a", Value::string("again"));
  EXPECT_TRUE(w.has("a"));
  EXPECT_FALSE(w.has("c"));
  std::unique_ptr<uint8_t[]> keep;
  GgufFile f = must(parse_copy(serialize(w), &keep));
  EXPECT_EQ(f.keys(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(must(f.get_string("a")), "again");
}

Bytes pattern(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i * 31);
  return b;
}

struct TensorCase {
  const char* name;
  GgmlType type;
  std::vector<int64_t> ne;
  size_t nbytes;
};

TEST(GgufRoundTrip, TensorsOfSeveralTypes) {
  const std::vector<TensorCase> cases = {
      {"token_embd.weight", GgmlType::kQ8_0, {64, 3}, 2 * 34 * 3},
      {"output_norm.weight", GgmlType::kF32, {5}, 20},
      {"blk.0.attn_q.weight", GgmlType::kQ4_K, {256, 2}, 288},
      {"blk.0.ffn_down.weight", GgmlType::kQ6_K, {512, 1, 1}, 420},
      {"blk.0.attn_k.weight", GgmlType::kQ5_0, {32, 2, 2, 2}, 22 * 8},
      {"half", GgmlType::kF16, {3, 3}, 18},
      {"brain", GgmlType::kBF16, {7}, 14},
      {"ids", GgmlType::kI32, {1, 1, 1, 1}, 4},
  };
  GgufWriter w;
  w.set("general.architecture", Value::string("gemma3"));
  for (size_t i = 0; i < cases.size(); ++i) {
    const TensorCase& c = cases[i];
    ASSERT_TRUE(w.add_tensor(c.name, ggml_id(c.type), c.ne, pattern(c.nbytes, static_cast<uint8_t>(i))).is_ok());
  }
  std::unique_ptr<uint8_t[]> keep;
  const Bytes bytes = serialize(w);
  GgufFile f = must(parse_copy(bytes, &keep));
  ASSERT_EQ(f.tensors().size(), cases.size());
  EXPECT_EQ(f.data_offset() % 32, 0u);
  EXPECT_EQ(bytes.size() % 32, 0u);
  uint64_t expected_offset = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const TensorCase& c = cases[i];
    const TensorInfo& t = f.tensors()[i];
    EXPECT_EQ(t.name, c.name);
    EXPECT_EQ(t.ggml_type, ggml_id(c.type));
    EXPECT_EQ(t.ne, c.ne);
    EXPECT_EQ(t.nbytes, c.nbytes);
    EXPECT_EQ(t.offset, expected_offset) << c.name;
    EXPECT_EQ(t.offset % f.alignment(), 0u);
    EXPECT_EQ(t.data, keep.get() + f.data_offset() + t.offset);
    const Bytes want = pattern(c.nbytes, static_cast<uint8_t>(i));
    EXPECT_EQ(std::memcmp(t.data, want.data(), want.size()), 0) << c.name;
    EXPECT_EQ(f.find_tensor(c.name), &t);
    expected_offset += (c.nbytes + 31) / 32 * 32;
  }
  EXPECT_EQ(f.find_tensor("missing"), nullptr);
}

TEST(GgufRoundTrip, CustomAlignment) {
  GgufWriter w;
  w.set("general.alignment", Value::uint32(64));
  ASSERT_TRUE(w.add_tensor("a", ggml_id(GgmlType::kF32), {3}, pattern(12, 1)).is_ok());
  ASSERT_TRUE(w.add_tensor("b", ggml_id(GgmlType::kF32), {5}, pattern(20, 2)).is_ok());
  std::unique_ptr<uint8_t[]> keep;
  GgufFile f = must(parse_copy(serialize(w), &keep));
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  EXPECT_EQ(f.find_tensor("b")->offset, 64u);
}

TEST(GgufRoundTrip, VersionTwoIsAccepted) {
  GgufWriter w;
  w.set("k", Value::uint8(1));
  ASSERT_TRUE(w.add_tensor("t", ggml_id(GgmlType::kF32), {2}, pattern(8, 3)).is_ok());
  Bytes bytes = serialize(w);
  bytes[4] = 2;  // v2 has the v3 layout (64-bit counts and lengths)
  std::unique_ptr<uint8_t[]> keep;
  GgufFile f = must(parse_copy(bytes, &keep));
  EXPECT_EQ(f.version(), 2u);
  EXPECT_EQ(f.tensors().size(), 1u);
}

TEST(GgufRoundTrip, WriterRejectsBadInput) {
  GgufWriter w;
  const uint32_t f32 = ggml_id(GgmlType::kF32);
  ASSERT_TRUE(w.add_tensor("a", f32, {2}, pattern(8, 0)).is_ok());
  expect_error(w.add_tensor("a", f32, {2}, pattern(8, 0)), StatusCode::kInvalidArgument, "duplicate tensor name");
  expect_error(w.add_tensor("", f32, {2}, pattern(8, 0)), StatusCode::kInvalidArgument, "tensor name");
  expect_error(w.add_tensor(std::string(64, 'n'), f32, {2}, pattern(8, 0)), StatusCode::kInvalidArgument,
               "tensor name");
  expect_error(w.add_tensor("b", f32, {2}, pattern(7, 0)), StatusCode::kInvalidArgument, "has 7 bytes");
  expect_error(w.add_tensor("b", 4, {2}, pattern(8, 0)), StatusCode::kInvalidArgument, "unknown or removed");
  expect_error(w.add_tensor("b", f32, {1, 1, 1, 1, 1}, pattern(4, 0)), StatusCode::kInvalidArgument, "n_dims 5");
  expect_error(w.add_tensor("b", f32, {0}, {}), StatusCode::kInvalidArgument, "non-positive");
  expect_error(w.add_tensor("b", ggml_id(GgmlType::kQ4_K), {100}, pattern(8, 0)), StatusCode::kInvalidArgument,
               "not a multiple");
  expect_error(w.add_tensor_view("b", f32, {2}, nullptr, 8), StatusCode::kInvalidArgument, "null data");

  GgufWriter bad_align;
  bad_align.set("general.alignment", Value::uint64(32));
  expect_error(bad_align.serialize().status(), StatusCode::kInvalidArgument, "must be u32");
  GgufWriter odd_align;
  odd_align.set("general.alignment", Value::uint32(48));
  expect_error(odd_align.serialize().status(), StatusCode::kInvalidArgument, "power of two");
  GgufWriter empty_key;
  empty_key.set("", Value::uint32(1));
  expect_error(empty_key.serialize().status(), StatusCode::kInvalidArgument, "empty key");
}

TEST(GgufRoundTrip, WriteToPathAndOpen) {
  TempDir dir;
  const std::string path = dir.path() + "/model.gguf";
  const Bytes big = pattern(5000, 9);  // borrowed by the writer until write() returns
  GgufWriter w;
  w.set("general.architecture", Value::string("gemma3"));
  w.set("general.alignment", Value::uint32(128));
  ASSERT_TRUE(w.add_tensor_view("big", ggml_id(GgmlType::kI8), {5000}, big.data(), big.size()).is_ok());
  ASSERT_TRUE(w.add_tensor("small", ggml_id(GgmlType::kF16), {2}, pattern(4, 1)).is_ok());
  ASSERT_TRUE(w.write(path).is_ok());
  // Overwrite in place: the rename replaces the first file.
  ASSERT_TRUE(w.write(path).is_ok());

  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().filename(), "model.gguf");  // no temporary file left behind
    ++entries;
  }
  EXPECT_EQ(entries, 1u);

  GgufFile f = must(GgufFile::open(path));
  EXPECT_EQ(f.alignment(), 128u);
  EXPECT_EQ(f.file_size(), std::filesystem::file_size(path));
  EXPECT_EQ(must(f.get_string("general.architecture")), "gemma3");
  const TensorInfo* t = f.find_tensor("big");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(std::memcmp(t->data, big.data(), big.size()), 0);
  EXPECT_EQ(f.find_tensor("small")->offset, 5120u);
  // The mapping belongs to the GgufFile and survives moves.
  GgufFile moved = std::move(f);
  EXPECT_EQ(std::memcmp(moved.find_tensor("big")->data, big.data(), big.size()), 0);

  expect_error(w.write(dir.path() + "/no/such/dir/x.gguf"), StatusCode::kIoError, "temporary file");
  auto missing = GgufFile::open(dir.path() + "/absent.gguf");
  expect_error(missing.status(), StatusCode::kNotFound, "absent.gguf");
}

TEST(GgufRoundTrip, CopyFromKeepsValuesVerbatim) {
  const std::vector<std::string> tokens = {"a", "bb", "ccc"};
  GgufWriter src;
  src.set("tokenizer.ggml.tokens", Value::string_array(tokens));
  src.set("x.f64", Value::float64(0.25));
  src.set("x.bool", Value::boolean(true));
  std::unique_ptr<uint8_t[]> keep_src;
  GgufFile in = must(parse_copy(serialize(src), &keep_src));

  GgufWriter dst;
  for (const std::string& k : in.keys()) ASSERT_TRUE(dst.copy_from(in, k).is_ok());
  expect_error(dst.copy_from(in, "nope"), StatusCode::kNotFound, "nope");
  std::unique_ptr<uint8_t[]> keep_dst;
  GgufFile out = must(parse_copy(serialize(dst), &keep_dst));
  EXPECT_EQ(out.keys(), in.keys());
  EXPECT_EQ(must(out.get_string_array("tokenizer.ggml.tokens")), tokens);
  EXPECT_EQ(must(out.get_float("x.f64")), 0.25);
  EXPECT_TRUE(must(out.get_bool("x.bool")));
}

// tests/data/gguf/pywriter_all_types.gguf comes from make_fixtures.py (the gguf-py writer).
TEST(GgufRoundTrip, ReadsFileWrittenByGgufPy) {
  const std::string path = std::string(GE_TEST_DATA_DIR) + "/gguf/pywriter_all_types.gguf";
  GgufFile f = must(GgufFile::open(path));
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.keys().size(), 19u);
  EXPECT_EQ(f.keys().front(), "general.architecture");
  EXPECT_EQ(must(f.get_string("general.architecture")), "gemma3");
  EXPECT_EQ(must(f.get_uint("t.u8")), 200u);
  EXPECT_EQ(must(f.get_int("t.i8")), -100);
  EXPECT_EQ(must(f.get_uint("t.u16")), 60000u);
  EXPECT_EQ(must(f.get_int("t.i16")), -30000);
  EXPECT_EQ(must(f.get_uint("t.u32")), 4000000000u);
  EXPECT_EQ(must(f.get_int("t.i32")), -2000000000);
  EXPECT_EQ(must(f.get_float("t.f32")), 0.15625);
  EXPECT_TRUE(must(f.get_bool("t.bool")));
  EXPECT_EQ(must(f.get_string("t.str")), "h\xc3\xa9llo \xe2\x96\x81world");
  EXPECT_EQ(must(f.get_uint("t.u64")), (uint64_t{1} << 63) + 5);
  EXPECT_EQ(must(f.get_int("t.i64")), -(int64_t{1} << 62));
  EXPECT_EQ(must(f.get_float("t.f64")), -2.5e-300);
  EXPECT_EQ(must(f.get_string_array("t.arr_str")),
            (std::vector<std::string>{"<pad>", "", "\xe2\x96\x81the", "\n"}));
  EXPECT_EQ(must(f.get_f32_array("t.arr_f32")), (std::vector<float>{1.5f, -0.25f, 3.0f}));
  EXPECT_EQ(must(f.get_int_array("t.arr_i32")), (std::vector<int64_t>{-1, 0, 7}));
  EXPECT_EQ(must(f.get_int_array("t.arr_u8")), (std::vector<int64_t>{0, 255}));
  EXPECT_EQ(must(f.get_bool_array("t.arr_bool")), (std::vector<bool>{true, false, true}));
  EXPECT_EQ(f.array_type_of("t.arr_nested"), ValueType::kArray);
  EXPECT_EQ(f.array_size("t.arr_nested"), 2u);

  ASSERT_EQ(f.tensors().size(), 4u);
  EXPECT_EQ(f.data_offset(), 832u);
  const TensorInfo* a = f.find_tensor("a.f32");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->ne, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(a->nbytes, 24u);
  float av[6];
  std::memcpy(av, a->data, sizeof av);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(av[i], static_cast<float>(i));
  const TensorInfo* b = f.find_tensor("b.q8_0");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->ggml_type, ggml_id(GgmlType::kQ8_0));
  EXPECT_EQ(b->ne, (std::vector<int64_t>{32, 2}));
  EXPECT_EQ(b->offset, 32u);
  EXPECT_EQ(b->data[67], 67);
  const TensorInfo* c = f.find_tensor("c.q4_k");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->ne, (std::vector<int64_t>{256, 1}));
  EXPECT_EQ(c->offset, 128u);
  EXPECT_EQ(c->nbytes, 144u);
  const TensorInfo* d = f.find_tensor("d.f16");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->offset, 288u);
  EXPECT_EQ(d->data[1], 0x3c);  // fp16 1.0 = 0x3c00, little-endian
}

}  // namespace
}  // namespace ge::gguf
