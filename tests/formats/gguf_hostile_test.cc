// Hostile GGUF files (reliability.md §1.2 and test matrix rows A1-A3): a corpus of malformed files
// built byte by byte, each of which must be rejected with a message naming the problem, plus a
// truncation sweep and a byte-mutation sweep that must never crash or hand out bad pointers.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "formats/ggml_types.h"
#include "formats/gguf_reader.h"

namespace ge::gguf {
namespace {

using Bytes = std::vector<uint8_t>;

constexpr uint32_t kU8 = 0, kI32 = 5, kU32 = 4, kF32v = 6, kBool = 7, kStr = 8, kArr = 9, kU64 = 10;
constexpr uint32_t kF32 = 0, kQ8_0 = 8, kQ4_K = 12, kI8 = 24;
constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();
constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();

template <typename T>
void put(Bytes* b, T v) {
  uint8_t raw[sizeof(T)];
  std::memcpy(raw, &v, sizeof(T));
  b->insert(b->end(), raw, raw + sizeof(T));
}
void put_str(Bytes* b, std::string_view s) {
  put<uint64_t>(b, s.size());
  b->insert(b->end(), s.begin(), s.end());
}

// Value payloads (the bytes after the type tag).
Bytes p_u32(uint32_t v) {
  Bytes b;
  put(&b, v);
  return b;
}
Bytes p_str(std::string_view s) {
  Bytes b;
  put_str(&b, s);
  return b;
}
Bytes p_arr(uint32_t elem_type, uint64_t count, const Bytes& elems) {
  Bytes b;
  put(&b, elem_type);
  put(&b, count);
  b.insert(b.end(), elems.begin(), elems.end());
  return b;
}

struct Kv {
  std::string key;
  uint32_t type;
  Bytes payload;
};
struct Ti {
  std::string name;
  std::vector<int64_t> ne;
  uint32_t type;
  uint64_t size;                      // bytes reserved in the data section
  std::optional<uint32_t> n_dims;     // default ne.size()
  std::optional<uint64_t> offset;     // default: running padded offset
};
Ti ti(std::string name, std::vector<int64_t> ne, uint32_t type, uint64_t size) {
  return Ti{std::move(name), std::move(ne), type, size, std::nullopt, std::nullopt};
}

// A small valid GGUF described field by field; each hostile case breaks one field.
struct Spec {
  std::string magic = "GGUF";
  uint32_t version = 3;
  std::optional<uint64_t> n_tensors, n_kv;
  std::vector<Kv> kvs;
  std::vector<Ti> tensors;
  uint64_t align = 32;
  bool pad_before_data = true;
  std::optional<uint64_t> data_size;

  Bytes encode() const {
    Bytes b(magic.begin(), magic.end());
    put(&b, version);
    put<uint64_t>(&b, n_tensors.value_or(tensors.size()));
    put<uint64_t>(&b, n_kv.value_or(kvs.size()));
    for (const Kv& kv : kvs) {
      put_str(&b, kv.key);
      put(&b, kv.type);
      b.insert(b.end(), kv.payload.begin(), kv.payload.end());
    }
    uint64_t running = 0;
    for (const Ti& t : tensors) {
      put_str(&b, t.name);
      put<uint32_t>(&b, t.n_dims.value_or(static_cast<uint32_t>(t.ne.size())));
      for (int64_t d : t.ne) put(&b, d);
      put(&b, t.type);
      put<uint64_t>(&b, t.offset.value_or(running));
      running += (t.size + align - 1) / align * align;
    }
    if (pad_before_data) b.resize((b.size() + align - 1) / align * align, 0);
    const uint64_t data = data_size.value_or(running);
    for (uint64_t i = 0; i < data; ++i) b.push_back(static_cast<uint8_t>(i * 7));
    return b;
  }
};

Spec valid_spec() {
  Spec s;
  Bytes scores;
  for (float v : {-1000.0f, -3.5f, 0.0f}) put(&scores, v);
  Bytes tokens;
  for (const char* t : {"<pad>", "a", "<0x0A>"}) put_str(&tokens, t);
  Bytes nested = p_arr(kI32, 2, {1, 0, 0, 0, 2, 0, 0, 0});
  s.kvs = {
      {"general.architecture", kStr, p_str("gemma3")},
      {"gemma3.block_count", kU32, p_u32(18)},
      {"general.alignment", kU32, p_u32(32)},
      {"tokenizer.ggml.tokens", kArr, p_arr(kStr, 3, tokens)},
      {"tokenizer.ggml.scores", kArr, p_arr(kF32v, 3, scores)},
      {"x.flag", kBool, {1}},
      {"x.nested", kArr, p_arr(kArr, 1, nested)},
  };
  s.tensors = {
      ti("token_embd.weight", {8, 4}, kF32, 128),
      ti("blk.0.attn_q.weight", {32, 2}, kQ8_0, 68),
      ti("blk.0.ffn_down.weight", {256, 1}, kQ4_K, 144),
  };
  return s;
}

// Parses from an exact-size heap copy, so a read one byte past the end trips ASan.
Result<GgufFile> parse_exact(const Bytes& bytes, std::unique_ptr<uint8_t[]>* keep) {
  keep->reset(new uint8_t[std::max<size_t>(bytes.size(), 1)]);
  if (!bytes.empty()) std::memcpy(keep->get(), bytes.data(), bytes.size());
  return GgufFile::parse(bytes.empty() ? nullptr : keep->get(), bytes.size());
}

// Reads every key through the getter for its type and checks every tensor lies in the file.
void touch_everything(const GgufFile& f, const uint8_t* base, uint64_t size) {
  for (const std::string& k : f.keys()) {
    const ValueType t = f.type_of(k).value();
    switch (t) {
      case ValueType::kString: (void)f.get_string(k); break;
      case ValueType::kBool: (void)f.get_bool(k); break;
      case ValueType::kFloat32:
      case ValueType::kFloat64: (void)f.get_float(k); break;
      case ValueType::kArray: {
        const ValueType e = f.array_type_of(k).value();
        if (e == ValueType::kString) (void)f.get_string_array(k);
        else if (e == ValueType::kBool) (void)f.get_bool_array(k);
        else if (e == ValueType::kFloat32 || e == ValueType::kFloat64) (void)f.get_f32_array(k);
        else if (e != ValueType::kArray) (void)f.get_int_array(k);
        (void)f.array_size(k);
        break;
      }
      default:
        (void)f.get_int(k);
        (void)f.get_uint(k);
        (void)f.get_float(k);
    }
    const auto raw = f.raw_value(k);
    ASSERT_TRUE(raw.has_value());
    ASSERT_GE(raw->data, base);
    ASSERT_LE(raw->data + raw->size, base + size);
  }
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const TensorInfo& t : f.tensors()) {
    ASSERT_GE(t.ne.size(), 1u);
    ASSERT_LE(t.ne.size(), 4u);
    for (int64_t d : t.ne) ASSERT_GT(d, 0);
    auto nbytes = ggml_tensor_nbytes(t.ggml_type, t.ne.data(), static_cast<int>(t.ne.size()));
    ASSERT_TRUE(nbytes.is_ok());
    ASSERT_EQ(nbytes.value(), t.nbytes);
    ASSERT_EQ(t.offset % f.alignment(), 0u);
    ASSERT_GE(t.data, base + f.data_offset());
    ASSERT_LE(t.data + t.nbytes, base + size) << t.name;
    ASSERT_EQ(f.find_tensor(t.name), &t);
    if (t.nbytes > 0) {
      volatile uint8_t sink = t.data[0] ^ t.data[t.nbytes - 1];  // ASan checks both ends
      (void)sink;
    }
    ranges.push_back({t.offset, t.offset + t.nbytes});
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) ASSERT_LE(ranges[i - 1].second, ranges[i].first);
}

TEST(GgufHostile, ValidSpecParses) {
  const Bytes bytes = valid_spec().encode();
  std::unique_ptr<uint8_t[]> keep;
  auto r = parse_exact(bytes, &keep);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->tensors().size(), 3u);
  EXPECT_EQ(r->keys().size(), 7u);
  EXPECT_EQ(r->get_string_array("tokenizer.ggml.tokens").value(), (std::vector<std::string>{"<pad>", "a", "<0x0A>"}));
  touch_everything(r.value(), keep.get(), bytes.size());
}

TEST(GgufHostile, MetadataOnlyFileWithoutPaddingParses) {
  Spec s = valid_spec();
  s.tensors.clear();
  std::unique_ptr<uint8_t[]> keep;
  auto padded = parse_exact(s.encode(), &keep);
  ASSERT_TRUE(padded.is_ok()) << padded.status().to_string();
  s.pad_before_data = false;
  const Bytes bytes = s.encode();
  ASSERT_NE(bytes.size() % 32, 0u);  // the data section would start past the end
  auto unpadded = parse_exact(bytes, &keep);
  ASSERT_TRUE(unpadded.is_ok()) << unpadded.status().to_string();
  EXPECT_TRUE(unpadded->tensors().empty());
}

struct Case {
  std::string name;
  std::function<Bytes()> make;
  std::string needle;  // the message must mention this
};

Bytes with(const std::function<void(Spec&)>& edit) {
  Spec s = valid_spec();
  edit(s);
  return s.encode();
}
Bytes patched(size_t at, const Bytes& bytes_at) {
  Bytes b = valid_spec().encode();
  std::copy(bytes_at.begin(), bytes_at.end(), b.begin() + static_cast<std::ptrdiff_t>(at));
  return b;
}
Bytes u64_bytes(uint64_t v) {
  Bytes b;
  put(&b, v);
  return b;
}
Kv& kv(Spec& s, const std::string& key) {
  for (Kv& k : s.kvs) {
    if (k.key == key) return k;
  }
  throw std::runtime_error("no key " + key);
}
// Bytes of the valid file up to the end of the key/values (header + KVs).
size_t kv_end() {
  Spec s = valid_spec();
  s.tensors.clear();
  s.align = 1;
  return s.encode().size();
}

std::vector<Case> hostile_cases() {
  std::vector<Case> c;
  auto add = [&c](std::string name, std::function<Bytes()> make, std::string needle) {
    c.push_back({std::move(name), std::move(make), std::move(needle)});
  };
  // Header.
  add("empty file", [] { return Bytes{}; }, "bad magic");
  add("3 bytes", [] { return Bytes{'G', 'G', 'U'}; }, "bad magic");
  add("bad magic", [] { return with([](Spec& s) { s.magic = "GGUG"; }); }, "bad magic");
  add("safetensors-like header", [] { return patched(0, u64_bytes(1234)); }, "bad magic");
  add("version 0", [] { return with([](Spec& s) { s.version = 0; }); }, "version 0");
  add("version 1", [] { return with([](Spec& s) { s.version = 1; }); }, "version 1");
  add("version 4", [] { return with([](Spec& s) { s.version = 4; }); }, "version 4");
  add("big-endian version", [] { return with([](Spec& s) { s.version = 0x03000000; }); }, "big-endian");
  add("truncated in version", [] { return Bytes{'G', 'G', 'U', 'F', 3, 0}; }, "header version");
  add("truncated in counts", [] { Bytes b = valid_spec().encode(); b.resize(20); return b; }, "key/value count");
  add("n_kv wraps (2^64-1)", [] { return with([](Spec& s) { s.n_kv = kU64Max; }); }, "key/value count");
  add("n_kv negative as int64", [] { return with([](Spec& s) { s.n_kv = uint64_t{1} << 63; }); }, "key/value count");
  add("n_tensors wraps (2^64-1)", [] { return with([](Spec& s) { s.n_tensors = kU64Max; }); }, "tensor count");
  add("n_kv beyond file", [] { return with([](Spec& s) { s.n_kv = 60000; }); }, "cannot fit");
  add("n_tensors beyond file", [] { return with([](Spec& s) { s.n_tensors = 65000; }); }, "cannot fit");
  add("n_kv one too many",
      [] {
        return with([](Spec& s) {
          s.n_kv = s.kvs.size() + 1;
          s.tensors.clear();
          s.align = 1;  // no padding, so the missing key/value runs into the end of the file
        });
      },
      "truncated");
  // Keys and values.
  add("key length 2^64-1", [] { return patched(24, u64_bytes(kU64Max)); }, "exceeds the limit");
  add("key length beyond file", [] { return patched(24, u64_bytes(100000)); }, "truncated");
  add("empty key", [] { return with([](Spec& s) { s.kvs[1].key = ""; }); }, "empty key");
  add("duplicate key", [] { return with([](Spec& s) { s.kvs[1].key = "general.architecture"; }); }, "duplicate key");
  add("value type 13", [] { return with([](Spec& s) { s.kvs[1].type = 13; }); }, "unknown value type 13");
  add("value type -1", [] { return with([](Spec& s) { s.kvs[1].type = 0xffffffffu; }); }, "unknown value type");
  add("string length 2^64", [] { return with([](Spec& s) { s.kvs[0].payload = u64_bytes(kU64Max); }); },
      "exceeds the limit");
  add("string length beyond file", [] { return with([](Spec& s) { s.kvs[0].payload = u64_bytes(1u << 20); }); },
      "truncated");
  add("bool byte 2", [] { return with([](Spec& s) { kv(s, "x.flag").payload = {2}; }); }, "bool byte 2");
  add("array count 2^62",
      [] {
        return with([](Spec& s) { kv(s, "tokenizer.ggml.scores").payload = p_arr(kF32v, uint64_t{1} << 62, {}); });
      },
      "exceeds the limit");
  add("array count 2^64-1 of arrays",
      [] { return with([](Spec& s) { kv(s, "x.nested").payload = p_arr(kArr, kU64Max, {}); }); }, "exceeds the limit");
  add("array of 10^8 u32 beyond file",
      [] { return with([](Spec& s) { kv(s, "tokenizer.ggml.scores").payload = p_arr(kU32, 100000000, {}); }); },
      "cannot fit");
  add("array of 10^6 strings beyond file",
      [] { return with([](Spec& s) { kv(s, "tokenizer.ggml.tokens").payload = p_arr(kStr, 1000000, {}); }); },
      "cannot fit");
  add("array element type 99",
      [] { return with([](Spec& s) { kv(s, "tokenizer.ggml.scores").payload = p_arr(99, 1, {0, 0, 0, 0}); }); },
      "unknown array element type 99");
  add("string element length beyond file",
      [] {
        return with([](Spec& s) {
          Bytes els = u64_bytes(kU64Max / 2);
          kv(s, "tokenizer.ggml.tokens").payload = p_arr(kStr, 1, els);
        });
      },
      "exceeds the limit");
  add("bool element 7",
      [] { return with([](Spec& s) { kv(s, "x.flag") = {"x.flag", kArr, p_arr(kBool, 2, {1, 7})}; }); }, "bool byte 7");
  add("arrays nested 5 deep",
      [] {
        return with([](Spec& s) {
          Bytes v = p_arr(kU8, 1, {1});
          for (int i = 0; i < 4; ++i) v = p_arr(kArr, 1, v);
          kv(s, "x.nested").payload = v;
        });
      },
      "deeper than 4");
  add("array count says more than present",
      [] {
        return with([](Spec& s) {
          kv(s, "x.nested").payload = p_arr(kArr, 3, p_arr(kI32, 1, {1, 0, 0, 0}));
          s.tensors.clear();
          s.align = 1;
        });
      },
      "cannot fit");
  add("truncated in the middle of a key/value",
      [] {
        Bytes b = valid_spec().encode();
        b.resize(kv_end() - 3);
        return b;
      },
      "cannot fit");
  // general.alignment.
  add("alignment 0", [] { return with([](Spec& s) { kv(s, "general.alignment").payload = p_u32(0); }); },
      "general.alignment 0");
  add("alignment 13", [] { return with([](Spec& s) { kv(s, "general.alignment").payload = p_u32(13); }); },
      "power of two");
  add("alignment 2^31", [] { return with([](Spec& s) { kv(s, "general.alignment").payload = p_u32(1u << 31); }); },
      "general.alignment 2147483648");
  add("alignment as i32",
      [] { return with([](Spec& s) { kv(s, "general.alignment").type = kI32; }); }, "general.alignment has type i32");
  add("alignment as string",
      [] { return with([](Spec& s) { kv(s, "general.alignment") = {"general.alignment", kStr, p_str("32")}; }); },
      "expected u32");
  add("alignment as u64",
      [] { return with([](Spec& s) { kv(s, "general.alignment") = {"general.alignment", kU64, u64_bytes(32)}; }); },
      "has type u64");
  // Tensor infos.
  add("empty tensor name", [] { return with([](Spec& s) { s.tensors[1].name = ""; }); }, "empty name");
  add("duplicate tensor name",
      [] { return with([](Spec& s) { s.tensors[1].name = s.tensors[0].name; }); }, "duplicate tensor name");
  add("tensor name 64 bytes", [] { return with([](Spec& s) { s.tensors[0].name = std::string(64, 'w'); }); },
      "64 bytes long");
  add("n_dims 0", [] { return with([](Spec& s) { s.tensors[0].n_dims = 0; }); }, "n_dims 0");
  add("n_dims 5", [] { return with([](Spec& s) { s.tensors[0].ne = {8, 4, 1, 1, 1}; }); }, "n_dims 5");
  add("n_dims 2^32-1", [] { return with([](Spec& s) { s.tensors[0].n_dims = 0xffffffffu; }); }, "n_dims 4294967295");
  add("ne negative", [] { return with([](Spec& s) { s.tensors[0].ne = {8, -4}; }); }, "ne[1] = -4 must be positive");
  add("ne zero", [] { return with([](Spec& s) { s.tensors[0].ne = {0, 4}; }); }, "ne[0] = 0 must be positive");
  add("ne (INT64_MAX,2,1,1)",
      [] { return with([](Spec& s) { s.tensors[0] = ti("t", {kI64Max, 2, 1, 1}, kI8, 128); }); },
      "element count overflows");
  add("ne (2^32,2^32) elements wrap",
      [] { return with([](Spec& s) { s.tensors[0].ne = {int64_t{1} << 32, int64_t{1} << 32}; }); }, "overflows");
  add("F32 bytes wrap (2^62 elements)",
      [] { return with([](Spec& s) { s.tensors[0].ne = {int64_t{1} << 62}; }); }, "overflows the F32 byte count");
  add("Q8_1 bytes overflow",
      [] { return with([](Spec& s) { s.tensors[0] = ti("q", {kI64Max - 31}, 9, 128); }); }, "Q8_1 byte count");
  add("Q4_K bytes wrap over dims",
      [] { return with([](Spec& s) { s.tensors[2].ne = {int64_t{256} << 50, int64_t{1} << 12}; }); }, "overflows");
  add("largest I8 tensor (pad would wrap)",
      [] { return with([](Spec& s) { s.tensors[0] = ti("t", {kI64Max}, kI8, 128); }); }, "extends past end of file");
  add("ne[0] not a multiple of the block",
      [] { return with([](Spec& s) { s.tensors[1].ne = {33, 2}; }); }, "not a multiple of the Q8_0 block size 32");
  add("type -1", [] { return with([](Spec& s) { s.tensors[0].type = 0xffffffffu; }); }, "ggml type id 4294967295");
  add("type 4 (removed Q4_2)", [] { return with([](Spec& s) { s.tensors[0].type = 4; }); }, "unknown or removed");
  add("type 31 (removed repack)", [] { return with([](Spec& s) { s.tensors[0].type = 31; }); }, "unknown or removed");
  add("type 42 (unknown)", [] { return with([](Spec& s) { s.tensors[0].type = 42; }); },
      "unknown or removed ggml type id 42");
  add("truncated in tensor infos",
      [] { Bytes b = valid_spec().encode(); b.resize(kv_end() + 8 + 17 + 4 + 4); return b; }, "dims of tensor");
  // Data section.
  add("offset misaligned (gap of 4)",
      [] { return with([](Spec& s) { s.tensors[1].offset = 132; }); }, "not a multiple of the alignment 32");
  add("offset overlap", [] { return with([](Spec& s) { s.tensors[1].offset = 96; }); }, "overlaps");
  add("offset overlap at same start", [] { return with([](Spec& s) { s.tensors[2].offset = 0; }); }, "overlaps");
  add("offset beyond EOF", [] { return with([](Spec& s) { s.tensors[2].offset = 1 << 20; }); },
      "extends past end of file");
  add("offset 2^64-32 wraps", [] { return with([](Spec& s) { s.tensors[2].offset = kU64Max - 31; }); }, "overflows");
  add("region too small for its shape",
      [] { return with([](Spec& s) { s.tensors[2].ne = {256, 9}; }); }, "extends past end of file");
  add("data truncated in last tensor",
      [] { Bytes b = valid_spec().encode(); b.resize(b.size() - 40); return b; }, "extends past end of file");
  add("no data section at all",
      [] { return with([](Spec& s) { s.data_size = 0; }); }, "past end of file");
  add("file ends right after tensor infos",
      [] {
        Spec s = valid_spec();
        s.pad_before_data = false;
        s.data_size = 0;
        return s.encode();
      },
      "past end of file");
  return c;
}

TEST(GgufHostile, CorpusIsRejectedWithClearMessages) {
  const std::vector<Case> cases = hostile_cases();
  ASSERT_GE(cases.size(), 40u);
  size_t rejected = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const Bytes bytes = c.make();
    std::unique_ptr<uint8_t[]> keep;
    const auto start = std::chrono::steady_clock::now();
    auto r = parse_exact(bytes, &keep);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(secs, 1.0);
    if (r.is_ok()) {
      ADD_FAILURE() << "accepted a malformed file";
      continue;
    }
    const Status& s = r.status();
    EXPECT_TRUE(s.code() == StatusCode::kFormatError || s.code() == StatusCode::kUnsupported) << s.to_string();
    EXPECT_EQ(s.message().rfind("gguf: ", 0), 0u) << s.message();
    if (s.message().find(c.needle) == std::string::npos) {
      ADD_FAILURE() << "message '" << s.message() << "' does not mention '" << c.needle << "'";
      continue;
    }
    ++rejected;
  }
  EXPECT_EQ(rejected, cases.size());
}

TEST(GgufHostile, ExpectedMessageShape) {
  Spec s = valid_spec();
  s.tensors[2].name = "blk.0.attn_q.weight2";
  s.data_size = 200;  // the third tensor needs [224, 368) of the data section
  const Bytes bytes = s.encode();
  std::unique_ptr<uint8_t[]> keep;
  auto r = parse_exact(bytes, &keep);
  ASSERT_FALSE(r.is_ok());
  const uint64_t data_start = bytes.size() - 200;
  EXPECT_EQ(r.status().message(), "gguf: tensor 'blk.0.attn_q.weight2': data [" + std::to_string(data_start + 224) +
                                      ", " + std::to_string(data_start + 368) +
                                      ") extends past end of file (size " + std::to_string(bytes.size()) + ")");
}

TEST(GgufHostile, NamesAreEscapedInMessages) {
  Spec s = valid_spec();
  s.kvs[1].key = std::string("evil\n\x1b[2J", 9);
  s.kvs[1].type = 77;
  std::unique_ptr<uint8_t[]> keep;
  auto r = parse_exact(s.encode(), &keep);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("'evil\\x0a\\x1b[2J'"), std::string::npos) << r.status().message();
}

// Row A2: every prefix through the tensor infos, then every 4 KiB of data.
TEST(GgufHostile, TruncationSweep) {
  Spec s = valid_spec();
  s.tensors.push_back(ti("big.weight", {4096, 5}, kF32, 4096 * 5 * 4));
  const Bytes full = s.encode();
  std::unique_ptr<uint8_t[]> keep;
  auto whole = parse_exact(full, &keep);
  ASSERT_TRUE(whole.is_ok()) << whole.status().to_string();
  uint64_t needed = 0;  // the file is complete once the last tensor's bytes are present
  for (const TensorInfo& t : whole->tensors()) needed = std::max(needed, whole->data_offset() + t.offset + t.nbytes);

  std::vector<uint64_t> lengths;
  for (uint64_t n = 0; n <= whole->data_offset(); ++n) lengths.push_back(n);
  for (uint64_t n = whole->data_offset(); n < full.size(); n += 4096) lengths.push_back(n);
  for (const TensorInfo& t : whole->tensors()) {
    const uint64_t end = whole->data_offset() + t.offset + t.nbytes;
    lengths.insert(lengths.end(), {end - 1, end, end + 1});
  }
  size_t ok = 0, rejected = 0;
  for (uint64_t n : lengths) {
    if (n > full.size()) continue;
    const Bytes prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    auto r = parse_exact(prefix, &keep);
    if (n < needed) {
      EXPECT_FALSE(r.is_ok()) << "prefix of " << n << " bytes accepted";
    } else {
      EXPECT_TRUE(r.is_ok()) << "prefix of " << n << " bytes: " << r.status().to_string();
    }
    if (r.is_ok()) {
      ++ok;
      touch_everything(r.value(), keep.get(), n);
    } else {
      ++rejected;
      EXPECT_FALSE(r.status().message().empty());
    }
  }
  EXPECT_GT(rejected, whole->data_offset());
  EXPECT_GE(ok, 1u);
}

// Row A3: single-byte mutations of every header/metadata byte, then random multi-byte and
// structure-aware (64-bit "interesting value") mutations. Nothing may crash; whatever parses
// must describe tensors inside the file.
TEST(GgufHostile, MutationSweep) {
  const Bytes base = valid_spec().encode();
  std::unique_ptr<uint8_t[]> keep;
  const uint64_t meta_end = parse_exact(base, &keep).value().data_offset();
  size_t parsed = 0, rejected = 0;
  auto check = [&](const Bytes& m) {
    auto r = parse_exact(m, &keep);
    if (r.is_ok()) {
      ++parsed;
      touch_everything(r.value(), keep.get(), m.size());
    } else {
      ++rejected;
      EXPECT_FALSE(r.status().message().empty());
    }
  };
  for (uint64_t pos = 0; pos < meta_end; ++pos) {
    for (int op = 0; op < 6; ++op) {
      Bytes m = base;
      uint8_t& b = m[pos];
      switch (op) {
        case 0: b ^= 0x01; break;
        case 1: b ^= 0x80; break;
        case 2: b = 0x00; break;
        case 3: b = 0xff; break;
        case 4: b = static_cast<uint8_t>(b + 1); break;
        case 5: b = static_cast<uint8_t>(b - 1); break;
      }
      check(m);
    }
  }
  std::mt19937_64 rng(20261127);
  const uint64_t interesting[] = {0, 1, 0x7f, 0xff, 0xffff, 0xffffffffull, 1ull << 31, 1ull << 32, 1ull << 62,
                                  1ull << 63, kU64Max, kU64Max - 31, static_cast<uint64_t>(kI64Max)};
  for (int iter = 0; iter < 6000; ++iter) {
    Bytes m = base;
    if (iter % 2 == 0) {
      const int n = 1 + static_cast<int>(rng() % 8);
      for (int k = 0; k < n; ++k) m[rng() % meta_end] = static_cast<uint8_t>(rng());
    } else {
      const uint64_t v = interesting[rng() % std::size(interesting)];
      const uint64_t pos = rng() % (meta_end - 8);
      const int width = (rng() % 2 == 0) ? 4 : 8;
      std::memcpy(m.data() + pos, &v, static_cast<size_t>(width));
    }
    if (rng() % 8 == 0) m.resize(rng() % m.size());
    check(m);
  }
  EXPECT_GT(parsed, 0u);
  EXPECT_GT(rejected, 0u);
}

}  // namespace
}  // namespace ge::gguf
