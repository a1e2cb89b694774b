// Tokenizer::from_gguf on small GGUF files written in memory: which keys are read, Gemma's
// dummy-prefix rule, and rejection of missing, mistyped or inconsistent tokenizer metadata.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "formats/gguf_reader.h"
#include "tokenizer/tokenizer.h"

namespace ge {
namespace {

using gguf::ValueType;

// Minimal GGUF v3 writer: metadata only, no tensors.
class GgufBuilder {
 public:
  void str(const std::string& key, const std::string& v) {
    begin(key, ValueType::kString);
    put_str(v);
  }
  void u32(const std::string& key, uint32_t v) {
    begin(key, ValueType::kUint32);
    put(v);
  }
  void boolean(const std::string& key, bool v) {
    begin(key, ValueType::kBool);
    kv_.push_back(v ? 1 : 0);
  }
  void str_array(const std::string& key, const std::vector<std::string>& v) {
    begin_array(key, ValueType::kString, v.size());
    for (const auto& s : v) put_str(s);
  }
  void f32_array(const std::string& key, const std::vector<float>& v) {
    begin_array(key, ValueType::kFloat32, v.size());
    for (float f : v) put(f);
  }
  void i32_array(const std::string& key, const std::vector<int32_t>& v) {
    begin_array(key, ValueType::kInt32, v.size());
    for (int32_t x : v) put(x);
  }
  void u8_array(const std::string& key, const std::vector<uint8_t>& v) {
    begin_array(key, ValueType::kUint8, v.size());
    kv_.insert(kv_.end(), v.begin(), v.end());
  }
  std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> out = {'G', 'G', 'U', 'F'};
    append(&out, uint32_t{3});
    append(&out, uint64_t{0});
    append(&out, n_kv_);
    out.insert(out.end(), kv_.begin(), kv_.end());
    return out;
  }

 private:
  template <typename T>
  static void append(std::vector<uint8_t>* out, T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out->insert(out->end(), b, b + sizeof(T));
  }
  template <typename T>
  void put(T v) {
    append(&kv_, v);
  }
  void put_str(const std::string& s) {
    put(static_cast<uint64_t>(s.size()));
    kv_.insert(kv_.end(), s.begin(), s.end());
  }
  void begin(const std::string& key, ValueType t) {
    ++n_kv_;
    put_str(key);
    put(static_cast<uint32_t>(t));
  }
  void begin_array(const std::string& key, ValueType elem, size_t n) {
    begin(key, ValueType::kArray);
    put(static_cast<uint32_t>(elem));
    put(static_cast<uint64_t>(n));
  }
  std::vector<uint8_t> kv_;
  uint64_t n_kv_ = 0;
};

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
};

// Gemma 3 shaped: specials, "\n" literal, 256 byte tokens, then pieces in merge order.
Vocab small_vocab() {
  Vocab v;
  auto add = [&](const std::string& t, int32_t type) {
    v.tokens.push_back(t);
    v.types.push_back(type);
    v.scores.push_back(type == 1 ? -static_cast<float>(v.tokens.size()) : (type == 6 ? 0.0f : -1000.0f));
  };
  for (const char* s : {"<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"}) add(s, 3);
  add("\n", 4);
  static const char* kHex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) add(std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">", 6);
  for (const char* s : {"\u2581", "h", "i", "\u2581h", "hi", "\u2581hi"}) add(s, 1);
  return v;
}

GgufBuilder gemma3_file(const Vocab& v, const std::string& arch = "gemma3") {
  GgufBuilder b;
  b.str("general.architecture", arch);
  b.str("tokenizer.ggml.model", "llama");
  b.str("tokenizer.ggml.pre", "default");
  b.str_array("tokenizer.ggml.tokens", v.tokens);
  b.f32_array("tokenizer.ggml.scores", v.scores);
  b.i32_array("tokenizer.ggml.token_type", v.types);
  b.u32("tokenizer.ggml.bos_token_id", 2);
  b.u32("tokenizer.ggml.eos_token_id", 1);
  b.u32("tokenizer.ggml.unknown_token_id", 3);
  b.u32("tokenizer.ggml.padding_token_id", 0);
  b.boolean("tokenizer.ggml.add_bos_token", true);
  b.boolean("tokenizer.ggml.add_space_prefix", true);
  return b;
}

Result<Tokenizer> load(const GgufBuilder& b, std::vector<uint8_t>* storage) {
  *storage = b.bytes();
  auto file = gguf::GgufFile::parse(storage->data(), storage->size());
  if (!file.is_ok()) return file.status();
  return Tokenizer::from_gguf(file.value());
}

void expect_error(const GgufBuilder& b, StatusCode code, const std::string& needle) {
  std::vector<uint8_t> storage;
  auto tok = load(b, &storage);
  ASSERT_FALSE(tok.is_ok()) << "accepted; expected " << needle;
  EXPECT_EQ(tok.status().code(), code) << tok.status().to_string();
  EXPECT_NE(tok.status().message().find(needle), std::string::npos) << tok.status().message();
}

TEST(TokenizerGguf, ReadsGemma3Metadata) {
  std::vector<uint8_t> storage;
  auto tok = load(gemma3_file(small_vocab()), &storage);
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  EXPECT_EQ(tok->kind(), VocabData::Kind::kSentencePiece);
  EXPECT_EQ(tok->n_vocab(), 6 + 1 + 256 + 6);
  EXPECT_EQ(tok->bos_id(), 2);
  EXPECT_EQ(tok->eos_id(), 1);
  EXPECT_EQ(tok->unk_id(), 3);
  EXPECT_EQ(tok->pad_id(), 0);
  EXPECT_TRUE(tok->add_bos());
  // A Gemma file saying add_space_prefix = true still gets no dummy prefix (HF adds none).
  EXPECT_FALSE(tok->add_space_prefix());
  const int32_t hi = *tok->find_token("hi");
  const int32_t space_hi = *tok->find_token("\u2581hi");
  EXPECT_EQ(tok->encode("hi hi", true, true), (std::vector<int32_t>{2, hi, space_hi}));
  EXPECT_EQ(tok->encode("<start_of_turn>hi\n", false, true), (std::vector<int32_t>{4, hi, 6}));
  EXPECT_EQ(tok->decode(tok->encode("hi hi\n", true, true), true), "hi hi\n");
}

TEST(TokenizerGguf, OtherArchitecturesKeepTheDummyPrefix) {
  std::vector<uint8_t> storage;
  auto tok = load(gemma3_file(small_vocab(), "llama"), &storage);
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  EXPECT_TRUE(tok->add_space_prefix());
  EXPECT_EQ(tok->encode("hi", false, true), (std::vector<int32_t>{*tok->find_token("\u2581hi")}));
  EXPECT_EQ(tok->decode(tok->encode("hi", false, true), true), "hi");
}

TEST(TokenizerGguf, ReadsGemma4BpeWithMerges) {
  Vocab v = small_vocab();
  GgufBuilder b;
  b.str("general.architecture", "gemma4");
  b.str("tokenizer.ggml.model", "gemma4");
  b.str_array("tokenizer.ggml.tokens", v.tokens);
  b.i32_array("tokenizer.ggml.token_type", v.types);
  b.str_array("tokenizer.ggml.merges", {"h i", "\u2581 hi"});
  b.u32("tokenizer.ggml.bos_token_id", 2);
  b.boolean("tokenizer.ggml.add_bos_token", true);
  std::vector<uint8_t> storage;
  auto tok = load(b, &storage);
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  EXPECT_EQ(tok->kind(), VocabData::Kind::kBpe);
  EXPECT_FALSE(tok->add_bos());  // Gemma 4's chat template writes <bos> itself
  // Only the listed merges apply: "▁h" is a piece but ("▁", "h") is not a merge.
  EXPECT_EQ(tok->encode("hi hi", false, true),
            (std::vector<int32_t>{*tok->find_token("hi"), *tok->find_token("\u2581hi")}));
  EXPECT_EQ(tok->eos_id(), -1);

  GgufBuilder no_merges;
  no_merges.str("tokenizer.ggml.model", "gemma4");
  no_merges.str_array("tokenizer.ggml.tokens", v.tokens);
  expect_error(no_merges, StatusCode::kFormatError, "tokenizer.ggml.merges");

  GgufBuilder bad_merge = no_merges;
  bad_merge.str_array("tokenizer.ggml.merges", {"h q"});
  expect_error(bad_merge, StatusCode::kFormatError, "unknown token 'q'");
}

TEST(TokenizerGguf, RejectsBrokenMetadata) {
  const Vocab v = small_vocab();
  {
    GgufBuilder b;
    b.str("general.architecture", "gemma3");
    expect_error(b, StatusCode::kNotFound, "tokenizer.ggml.model");
  }
  {
    GgufBuilder b;
    b.str("tokenizer.ggml.model", "bert");
    b.str_array("tokenizer.ggml.tokens", v.tokens);
    expect_error(b, StatusCode::kUnsupported, "bert");
  }
  {
    GgufBuilder b;
    b.str("tokenizer.ggml.model", "llama");
    expect_error(b, StatusCode::kNotFound, "tokenizer.ggml.tokens");
  }
  {
    GgufBuilder b;  // tokens stored as numbers
    b.str("tokenizer.ggml.model", "llama");
    b.i32_array("tokenizer.ggml.tokens", {1, 2, 3});
    expect_error(b, StatusCode::kFormatError, "tokenizer.ggml.tokens");
  }
  {
    GgufBuilder b;  // scores stored as u8: must not be reinterpreted as floats
    b.str("tokenizer.ggml.model", "llama");
    b.str_array("tokenizer.ggml.tokens", v.tokens);
    b.u8_array("tokenizer.ggml.scores", std::vector<uint8_t>(v.tokens.size(), 1));
    expect_error(b, StatusCode::kFormatError, "tokenizer.ggml.scores");
  }
  {
    GgufBuilder b;
    b.str("tokenizer.ggml.model", "llama");
    b.str_array("tokenizer.ggml.tokens", v.tokens);
    b.f32_array("tokenizer.ggml.scores", std::vector<float>(v.tokens.size() - 1, 0.0f));
    expect_error(b, StatusCode::kFormatError, "scores");
  }
  {
    GgufBuilder b;
    b.str("tokenizer.ggml.model", "llama");
    b.str_array("tokenizer.ggml.tokens", v.tokens);
    std::vector<float> scores = v.scores;
    scores[10] = std::nanf("");
    b.f32_array("tokenizer.ggml.scores", scores);
    expect_error(b, StatusCode::kFormatError, "not finite");
  }
  {
    GgufBuilder b;
    b.str("tokenizer.ggml.model", "llama");
    b.str_array("tokenizer.ggml.tokens", v.tokens);
    b.i32_array("tokenizer.ggml.token_type", std::vector<int32_t>(v.tokens.size() + 3, 1));
    expect_error(b, StatusCode::kFormatError, "token types");
  }
  {
    GgufBuilder b;
    b.str("tokenizer.ggml.model", "llama");
    b.str_array("tokenizer.ggml.tokens", v.tokens);
    std::vector<int32_t> types = v.types;
    types[0] = 42;
    b.i32_array("tokenizer.ggml.token_type", types);
    expect_error(b, StatusCode::kFormatError, "unknown type 42");
  }
  {
    Vocab bad = v;
    bad.tokens[7 + 0x41] = "<0xZZ>";
    expect_error(gemma3_file(bad), StatusCode::kFormatError, "<0xZZ>");
  }
  {
    GgufBuilder b;
    b.str("tokenizer.ggml.model", "llama");
    b.str_array("tokenizer.ggml.tokens", v.tokens);
    b.u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(v.tokens.size()));
    expect_error(b, StatusCode::kFormatError, "out of range");
  }
  {
    GgufBuilder b;
    b.str("tokenizer.ggml.model", "llama");
    b.str_array("tokenizer.ggml.tokens", {});
    expect_error(b, StatusCode::kFormatError, "empty");
  }
  {
    GgufBuilder b;
    b.str("tokenizer.ggml.model", "llama");
    b.str_array("tokenizer.ggml.tokens", v.tokens);
    b.str("tokenizer.ggml.add_bos_token", "yes");
    expect_error(b, StatusCode::kFormatError, "add_bos_token");
  }
}

TEST(TokenizerGguf, ModelFileWhenAvailable) {
  const char* path = std::getenv("GE_TEST_MODEL");
  if (path == nullptr || *path == '\0') GTEST_SKIP() << "GE_TEST_MODEL is not set";
  auto file = gguf::GgufFile::open(path);
  ASSERT_TRUE(file.is_ok()) << "GE_TEST_MODEL=" << path << ": " << file.status().to_string();
  // The real file states add_space_prefix = false; from_gguf agrees.
  ASSERT_TRUE(file->has("tokenizer.ggml.add_space_prefix"));
  auto flag = file->get_bool("tokenizer.ggml.add_space_prefix");
  ASSERT_TRUE(flag.is_ok());
  EXPECT_FALSE(flag.value());
}

}  // namespace
}  // namespace ge
