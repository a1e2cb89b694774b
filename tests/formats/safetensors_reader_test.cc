// safetensors reader: round trips through a small writer, a hostile corpus built in code (one
// case per class of reliability row A5), and truncation / byte-mutation sweeps that must never
// crash or hand out a view outside the buffer.
#include "formats/safetensors_reader.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "safetensors_test_util.h"

namespace ge::safetensors {
namespace {

using testing::Bytes;
using testing::pattern_bytes;
using testing::raw_image;
using testing::TensorSpec;
using testing::write_image;

Result<SafetensorsFile> parse_bytes(const Bytes& b) { return SafetensorsFile::parse(b.data(), b.size()); }

// Everything an accepted file promises: views inside the data region, sizes consistent, names
// resolvable, offsets tiling the region in order.
void expect_views_consistent(const SafetensorsFile& f, const uint8_t* base, uint64_t size) {
  const uint8_t* region = base + 8 + f.header_bytes();
  const uint8_t* cursor = region;
  for (const TensorInfo& t : f.tensors()) {
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      ASSERT_GE(d, 0);
      numel *= static_cast<uint64_t>(d);
    }
    EXPECT_EQ(numel * dtype_size(t.dtype), t.nbytes) << t.name;
    EXPECT_EQ(t.data, cursor) << t.name;
    ASSERT_GE(t.data, region);
    ASSERT_LE(t.nbytes, static_cast<uint64_t>(base + size - t.data)) << t.name;
    EXPECT_EQ(f.find(t.name), &t);
    cursor = t.data + t.nbytes;
  }
  EXPECT_EQ(cursor, base + size);
}

TEST(SafetensorsReader, RoundTripsEveryDType) {
  const std::vector<std::pair<std::string, size_t>> dtypes = {
      {"F64", 8}, {"F32", 4},  {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4},     {"I16", 2},    {"I8", 1},
      {"U8", 1},  {"BOOL", 1}, {"U16", 2}, {"U32", 4},  {"U64", 8}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  std::vector<TensorSpec> specs;
  for (size_t i = 0; i < dtypes.size(); ++i) {
    const std::vector<int64_t> shape = {2, static_cast<int64_t>(i + 1)};
    specs.push_back({"layer." + dtypes[i].first, dtypes[i].first, shape,
                     pattern_bytes(2 * (i + 1) * dtypes[i].second, static_cast<uint8_t>(i))});
  }
  const Bytes image = write_image(specs, {{"format", "pt"}, {"note", "round trip"}});
  Result<SafetensorsFile> r = parse_bytes(image);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const SafetensorsFile& f = r.value();
  ASSERT_EQ(f.tensors().size(), specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorInfo* t = f.find(specs[i].name);
    ASSERT_NE(t, nullptr) << specs[i].name;
    EXPECT_STREQ(dtype_name(t->dtype), dtypes[i].first.c_str());
    EXPECT_EQ(dtype_size(t->dtype), dtypes[i].second);
    EXPECT_EQ(t->shape, specs[i].shape);
    ASSERT_EQ(t->nbytes, specs[i].bytes.size());
    EXPECT_EQ(std::memcmp(t->data, specs[i].bytes.data(), t->nbytes), 0) << specs[i].name;
    // The writer tiled them in spec order, which is offset order.
    EXPECT_EQ(f.tensors()[i].name, specs[i].name);
  }
  EXPECT_EQ(f.metadata().size(), 2u);
  EXPECT_EQ(f.metadata().at("note"), "round trip");
  EXPECT_EQ(f.find("layer.F33"), nullptr);
  EXPECT_EQ(f.find(""), nullptr);
  expect_views_consistent(f, image.data(), image.size());
}

TEST(SafetensorsReader, OrdersTensorsByOffsetNotByJsonOrder) {
  // "a" sits after "b" in the data region.
  const Bytes image = raw_image(
      R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[3,5]},"b":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}})",
      {'b', 'b', 'b', 'a', 'a'});
  Result<SafetensorsFile> r = parse_bytes(image);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->tensors().size(), 2u);
  EXPECT_EQ(r->tensors()[0].name, "b");
  EXPECT_EQ(r->tensors()[1].name, "a");
  EXPECT_EQ(r->find("a")->data[0], 'a');
  EXPECT_EQ(r->find("b")->data[2], 'b');
}

TEST(SafetensorsReader, AcceptsScalarsZeroSizeTensorsAndEmptyFiles) {
  const Bytes image = write_image({{"scalar", "F32", {}, pattern_bytes(4, 1)},
                                   {"empty", "BF16", {0, 7}, {}},
                                   {"empty2", "I8", {3, 0}, {}},
                                   {"tail", "U8", {1}, {9}}});
  Result<SafetensorsFile> r = parse_bytes(image);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(r->find("scalar")->shape.empty());
  EXPECT_EQ(r->find("scalar")->nbytes, 4u);
  EXPECT_EQ(r->find("empty")->nbytes, 0u);
  EXPECT_EQ(r->find("empty2")->nbytes, 0u);
  EXPECT_EQ(r->find("tail")->data[0], 9);
  expect_views_consistent(r.value(), image.data(), image.size());

  Result<SafetensorsFile> empty = parse_bytes(raw_image("{}"));
  ASSERT_TRUE(empty.is_ok()) << empty.status().to_string();
  EXPECT_TRUE(empty->tensors().empty());
  EXPECT_TRUE(empty->metadata().empty());
}

TEST(SafetensorsReader, OpensFromDiskAndNamesThePathInErrors) {
  const auto dir = testing::scratch_dir("open");
  const Bytes image = write_image({{"w", "BF16", {2, 2}, pattern_bytes(8, 3)}});
  testing::write_file(dir / "ok.safetensors", image);
  Result<SafetensorsFile> ok = SafetensorsFile::open((dir / "ok.safetensors").string());
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ(ok->path(), (dir / "ok.safetensors").string());
  ASSERT_NE(ok->find("w"), nullptr);
  EXPECT_EQ(std::memcmp(ok->find("w")->data, pattern_bytes(8, 3).data(), 8), 0);
  // Moving the file object keeps the mapping and the views valid.
  SafetensorsFile moved = std::move(ok).value();
  EXPECT_EQ(moved.find("w")->data[1], pattern_bytes(8, 3)[1]);

  Bytes truncated(image.begin(), image.end() - 1);
  testing::write_file(dir / "bad.safetensors", truncated);
  Result<SafetensorsFile> bad = SafetensorsFile::open((dir / "bad.safetensors").string());
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kFormatError);
  EXPECT_NE(bad.status().message().find("bad.safetensors"), std::string::npos) << bad.status().message();

  Result<SafetensorsFile> missing = SafetensorsFile::open((dir / "nope.safetensors").string());
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST(SafetensorsReader, ReadsAFileWrittenByTheReferenceWriter) {
  // Written by safetensors.torch.save_file (scripts/gen_torchao_fixture.py).
  Result<SafetensorsFile> r =
      SafetensorsFile::open(std::string(GE_TEST_DATA_DIR) + "/safetensors/torchao_expected.safetensors");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const TensorInfo* t = r->find("model.layers.0.mlp.down_proj.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, DType::kF32);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{4, 96}));
  EXPECT_EQ(r->tensors().size(), 4u);
}

TEST(SafetensorsReader, RejectsNullBufferWithSize) {
  EXPECT_EQ(SafetensorsFile::parse(nullptr, 16).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SafetensorsFile::parse(nullptr, 0).status().code(), StatusCode::kFormatError);
}

struct HostileCase {
  const char* name;
  Bytes image;
  StatusCode code;
  const char* message;  // substring the error must contain
};

std::string rank_shape(int rank) {
  std::string s = "[";
  for (int i = 0; i < rank; ++i) s += i ? ",1" : "1";
  return s + "]";
}

std::vector<HostileCase> hostile_corpus() {
  const StatusCode kFmt = StatusCode::kFormatError;
  const std::string t4 = R"("t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
  const Bytes z4(4, 0);
  auto one = [](const std::string& entry) { return R"({"t":)" + entry + "}"; };
  std::vector<HostileCase> c = {
      {"empty file", {}, kFmt, "too small"},
      {"seven bytes", Bytes(7, 0), kFmt, "too small"},
      {"N over 100 MB", raw_image("{}", {}, 100'000'001), kFmt, "exceeds the limit"},
      {"N = 2^64-1", raw_image("{}", {}, UINT64_MAX), kFmt, "exceeds the limit"},
      {"N + 8 past the end", raw_image("{}", {}, 3), kFmt, "runs past the end"},
      {"N = 0", raw_image(""), kFmt, "does not start with '{'"},
      {"non-UTF-8 header", raw_image("{\"t\xff\":{}}"), kFmt, "invalid UTF-8"},
      {"overlong UTF-8", raw_image("{\"t\xc0\xaf\":{}}"), kFmt, "invalid UTF-8"},
      {"UTF-16 surrogate in UTF-8", raw_image("{\"t\xed\xa0\x80\":{}}"), kFmt, "invalid UTF-8"},
      {"byte-order mark", raw_image("\xef\xbb\xbf{" + t4 + "}", z4), kFmt, "does not start with '{'"},
      {"not an object", raw_image("[" + t4 + "]", z4), kFmt, "does not start with '{'"},
      {"invalid JSON", raw_image("{" + t4, z4), kFmt, "invalid JSON"},
      {"trailing garbage", raw_image("{" + t4 + "}x", z4), kFmt, "invalid JSON"},
      {"NUL then garbage", raw_image("{" + t4 + std::string("}\0 garbage", 10), z4), kFmt, "NUL byte"},
      {"NUL inside a key", raw_image(std::string("{\"t\0\":{}}", 9)), kFmt, "NUL byte"},
      {"comment", raw_image("{/**/" + t4 + "}", z4), kFmt, "invalid JSON"},
      {"duplicate tensor key", raw_image("{" + t4 + "," + t4 + "}", z4), kFmt, "duplicate key 't'"},
      {"duplicate field", raw_image(one(R"({"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]})"), z4), kFmt,
       "duplicate key 'dtype'"},
      {"deep nesting",
       raw_image(R"({"t":{"dtype":"U8","shape":[0],"data_offsets":[0,0],"x":)" + std::string(100, '[') +
                 std::string(100, ']') + "}}"),
       kFmt, "nesting deeper"},
      {"tensor not an object", raw_image(R"({"t":["F32",[1],[0,4]]})", z4), kFmt, "expected an object"},
      {"unknown dtype", raw_image(one(R"({"dtype":"F33","shape":[1],"data_offsets":[0,4]})"), z4), kFmt,
       "unknown dtype 'F33'"},
      {"dtype not a string", raw_image(one(R"({"dtype":7,"shape":[1],"data_offsets":[0,4]})"), z4), kFmt,
       "dtype is an unsigned integer"},
      {"sub-byte dtype", raw_image(one(R"({"dtype":"F4","shape":[2],"data_offsets":[0,1]})"), {0}),
       StatusCode::kUnsupported, "F4"},
      {"missing dtype", raw_image(one(R"({"shape":[1],"data_offsets":[0,4]})"), z4), kFmt, "no \"dtype\""},
      {"missing shape", raw_image(one(R"({"dtype":"F32","data_offsets":[0,4]})"), z4), kFmt, "no \"shape\""},
      {"missing offsets", raw_image(one(R"({"dtype":"F32","shape":[1]})"), z4), kFmt, "no \"data_offsets\""},
      {"negative shape", raw_image(one(R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})"), z4), kFmt,
       "negative integer"},
      {"-0 shape", raw_image(one(R"({"dtype":"F32","shape":[-0],"data_offsets":[0,0]})")), kFmt, "negative integer"},
      {"float shape", raw_image(one(R"({"dtype":"F32","shape":[1.0],"data_offsets":[0,4]})"), z4), kFmt, "non-integer"},
      {"string shape", raw_image(one(R"({"dtype":"F32","shape":["1"],"data_offsets":[0,4]})"), z4), kFmt,
       "shape entry is a string"},
      {"rank 64", raw_image(one(R"({"dtype":"F32","shape":)" + rank_shape(64) + R"(,"data_offsets":[0,4]})"), z4), kFmt,
       "rank 64"},
      {"shape product overflow",
       raw_image(one(R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]})"), z4), kFmt,
       "element count overflows"},
      {"byte size overflow",
       raw_image(one(R"({"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]})"), Bytes(8, 0)), kFmt,
       "byte size overflows"},
      {"negative offset", raw_image(one(R"({"dtype":"F32","shape":[1],"data_offsets":[-4,0]})"), z4), kFmt,
       "non-negative integers"},
      {"float offset", raw_image(one(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4.0]})"), z4), kFmt,
       "non-negative integers"},
      {"three offsets", raw_image(one(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4,4]})"), z4), kFmt,
       "[begin, end]"},
      {"end before begin", raw_image(one(R"({"dtype":"F32","shape":[0],"data_offsets":[4,0]})"), z4), kFmt,
       "before begin"},
      {"span != dtype x shape", raw_image(one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,4]})"), z4), kFmt,
       "need 8"},
      {"gap",
       raw_image(
           R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[3,5]}})",
           Bytes(5, 1)),
       kFmt, "(gap)"},
      {"gap at start", raw_image(one(R"({"dtype":"U8","shape":[2],"data_offsets":[1,3]})"), Bytes(3, 1)), kFmt,
       "(gap)"},
      {"overlap",
       raw_image(
           R"({"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"b":{"dtype":"U8","shape":[3],"data_offsets":[2,5]}})",
           Bytes(5, 1)),
       kFmt, "(overlap)"},
      {"two names for one range",
       raw_image(
           R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})",
           Bytes(2, 1)),
       kFmt, "(overlap)"},
      {"zero-size tensor inside another",
       raw_image(
           R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[0],"data_offsets":[2,2]}})",
           Bytes(4, 1)),
       kFmt, "(overlap)"},
      {"trailing bytes", raw_image("{" + t4 + "}", Bytes(5, 0)), kFmt, "trailing bytes"},
      {"missing bytes", raw_image("{" + t4 + "}", Bytes(3, 0)), kFmt, "truncated"},
      {"data but no tensors", raw_image("{}", Bytes(3, 0)), kFmt, "trailing bytes"},
      {"offsets past the file", raw_image(one(R"({"dtype":"U8","shape":[16],"data_offsets":[0,16]})"), Bytes(1, 0)),
       kFmt, "truncated"},
      {"offsets near 2^64",
       raw_image(one(R"({"dtype":"U8","shape":[1],"data_offsets":[18446744073709551614,18446744073709551615]})"),
                 Bytes(1, 0)),
       kFmt, "(gap)"},
      {"__metadata__ value not a string", raw_image(R"({"__metadata__":{"a":1}})"), kFmt, "__metadata__ entry 'a'"},
      {"__metadata__ nested object", raw_image(R"({"__metadata__":{"a":{"b":"c"}}})"), kFmt, "__metadata__ entry"},
      {"__metadata__ not an object", raw_image(R"({"__metadata__":["a"]})"), kFmt, "__metadata__ is an array"},
      {"duplicate __metadata__ key", raw_image(R"({"__metadata__":{"a":"1","a":"2"}})"), kFmt, "duplicate key 'a'"},
  };
  return c;
}

TEST(SafetensorsReader, RejectsEveryHostileCaseWithAClearStatus) {
  const std::vector<HostileCase> corpus = hostile_corpus();
  ASSERT_GE(corpus.size(), 20u);
  for (const HostileCase& c : corpus) {
    SCOPED_TRACE(c.name);
    // An exactly sized heap copy, so any read past the end trips ASan.
    Bytes copy = c.image;
    Result<SafetensorsFile> r = SafetensorsFile::parse(copy.empty() ? nullptr : copy.data(), copy.size());
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), c.code) << r.status().to_string();
    EXPECT_NE(r.status().message().find(c.message), std::string::npos) << r.status().message();
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos) << "one-line messages";
  }
}

Bytes sweep_seed() {
  return write_image({{"model.embed.weight", "BF16", {3, 2}, pattern_bytes(12, 5)},
                      {"model.norm.weight", "F32", {2}, pattern_bytes(8, 7)},
                      {"scale", "F16", {}, pattern_bytes(2, 9)},
                      {"zero", "I8", {0}, {}},
                      {"ids", "I64", {1, 1}, pattern_bytes(8, 11)}},
                     {{"format", "pt"}});
}

TEST(SafetensorsReader, EveryTruncationIsRejected) {
  const Bytes full = sweep_seed();
  ASSERT_TRUE(parse_bytes(full).is_ok());
  for (size_t len = 0; len < full.size(); ++len) {
    Bytes cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len));
    Result<SafetensorsFile> r = SafetensorsFile::parse(cut.empty() ? nullptr : cut.data(), cut.size());
    ASSERT_FALSE(r.is_ok()) << "accepted a file cut to " << len << " of " << full.size() << " bytes";
    EXPECT_EQ(r.status().code(), StatusCode::kFormatError) << r.status().to_string();
  }
}

TEST(SafetensorsReader, ByteMutationsNeverYieldAViewOutsideTheBuffer) {
  const Bytes full = sweep_seed();
  const uint8_t kValues[] = {0x00, 0xff, 0x80, '0', '9', '"', '{', '}', '[', ']', ',', '-', '.', ' '};
  size_t accepted = 0, rejected = 0;
  for (size_t pos = 0; pos < full.size(); ++pos) {
    for (uint8_t v : kValues) {
      if (full[pos] == v) continue;
      Bytes m = full;
      m[pos] = v;
      Result<SafetensorsFile> r = parse_bytes(m);
      if (!r.is_ok()) {
        ++rejected;
        ASSERT_FALSE(r.status().message().empty());
        continue;
      }
      ++accepted;
      SCOPED_TRACE("byte " + std::to_string(pos) + " -> " + std::to_string(v));
      expect_views_consistent(r.value(), m.data(), m.size());
      // Touch every byte of every view (ASan checks the bounds).
      unsigned sum = 0;
      for (const TensorInfo& t : r->tensors()) {
        for (uint64_t i = 0; i < t.nbytes; ++i) sum += t.data[i];
      }
      (void)sum;
    }
  }
  // Data-region mutations stay valid and most header mutations break it: both paths ran.
  EXPECT_GT(accepted, 0u);
  EXPECT_GT(rejected, accepted);
}

}  // namespace
}  // namespace ge::safetensors
