// from_hf_json on a small Gemma-shaped tokenizer.json (tests/data/tokenizer/tiny_tokenizer.json,
// made by scripts/gen_tokenizer_fixtures.py) against the ids HF tokenizers gave, plus malformed
// and unsupported tokenizer.json variants.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "tokenizer/tokenizer.h"

namespace ge {
namespace {

using nlohmann::json;

const std::string kDir = std::string(GE_TEST_DATA_DIR) + "/tokenizer/";

json load_json(const std::string& name) {
  auto text = read_text_file(kDir + name);
  EXPECT_TRUE(text.is_ok()) << text.status().to_string();
  return text.is_ok() ? json::parse(text.value()) : json();
}

std::vector<int32_t> ids_of(const json& j) { return j.get<std::vector<int32_t>>(); }

TEST(TokenizerHfJson, MatchesHfOnTinyFixture) {
  auto tok = Tokenizer::from_hf_json(kDir + "tiny_tokenizer.json");
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  EXPECT_EQ(tok->kind(), VocabData::Kind::kBpe);
  EXPECT_TRUE(tok->add_bos());
  EXPECT_FALSE(tok->add_space_prefix());
  EXPECT_EQ(tok->bos_id(), *tok->find_token("<bos>"));
  EXPECT_EQ(tok->unk_id(), *tok->find_token("<unk>"));
  EXPECT_TRUE(tok->is_byte_token(*tok->find_token("<0x41>")));
  EXPECT_EQ(tok->token_type(*tok->find_token("<start_of_turn>")), TokenType::kControl);
  EXPECT_EQ(tok->token_type(*tok->find_token("<table>")), TokenType::kUserDefined);

  const json expected = load_json("tiny_expected.json");
  ASSERT_GE(expected["cases"].size(), 5u);
  for (const json& c : expected["cases"]) {
    const std::string text = c["text"].get<std::string>();
    EXPECT_EQ(tok->encode(text, false, true), ids_of(c["ids"])) << text;
    EXPECT_EQ(tok->encode(text, true, true), ids_of(c["ids_with_bos"])) << text;
    EXPECT_EQ(tok->encode(text, false, false), ids_of(c["ids_no_special"])) << text;
    EXPECT_EQ(tok->decode(tok->encode(text, false, false), true), text);
  }
}

TEST(TokenizerHfJson, AcceptsStringMergesAndMetaspace) {
  json j = load_json("tiny_tokenizer.json");
  ASSERT_TRUE(j.is_object());
  auto reference = Tokenizer::from_hf_json_text(j.dump());
  ASSERT_TRUE(reference.is_ok()) << reference.status().to_string();
  // Older tokenizer.json files spell merges "a b".
  json legacy = j;
  for (json& m : legacy["model"]["merges"]) m = m[0].get<std::string>() + " " + m[1].get<std::string>();
  // Metaspace without splitting is the same escaping as the Replace normalizer.
  legacy["normalizer"] = nullptr;
  legacy["pre_tokenizer"] = {
      {"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "never"}, {"split", false}};
  auto tok = Tokenizer::from_hf_json_text(legacy.dump());
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  for (const char* text : {"hello world", "  indented\ttabs", "<start_of_turn>x"}) {
    EXPECT_EQ(tok->encode(text, false, true), reference->encode(text, false, true)) << text;
  }
  // prepend_scheme "first" turns on the dummy prefix.
  legacy["pre_tokenizer"]["prepend_scheme"] = "first";
  auto prefixed = Tokenizer::from_hf_json_text(legacy.dump());
  ASSERT_TRUE(prefixed.is_ok());
  EXPECT_TRUE(prefixed->add_space_prefix());
  EXPECT_EQ(prefixed->encode("hello", false, true), reference->encode(" hello", false, true));
}

struct BadCase {
  const char* what;
  void (*mutate)(json&);
  StatusCode code;
  const char* needle;
};

TEST(TokenizerHfJson, RejectsMalformedAndUnsupportedFiles) {
  const json base = load_json("tiny_tokenizer.json");
  ASSERT_TRUE(base.is_object());
  const BadCase cases[] = {
      {"no model", [](json& j) { j.erase("model"); }, StatusCode::kFormatError, "model"},
      {"unigram", [](json& j) { j["model"]["type"] = "Unigram"; }, StatusCode::kUnsupported, "Unigram"},
      {"vocab not object", [](json& j) { j["model"]["vocab"] = json::array(); }, StatusCode::kFormatError, "vocab"},
      {"string id", [](json& j) { j["model"]["vocab"]["hello"] = "7"; }, StatusCode::kFormatError, "non-integer"},
      {"hole", [](json& j) { j["model"]["vocab"]["zzz_far"] = 100000; }, StatusCode::kFormatError, "holes"},
      {"negative id", [](json& j) { j["model"]["vocab"]["zzz_neg"] = -4; }, StatusCode::kFormatError, "-4"},
      {"id clash", [](json& j) { j["added_tokens"][0]["content"] = "<something_else>"; }, StatusCode::kFormatError,
       "names both"},
      {"unknown merge piece",
       [](json& j) {
         j["model"]["merges"][0] = {"\u2581", "qqq"};
       },
       StatusCode::kFormatError, "unknown token"},
      {"merge not a pair", [](json& j) { j["model"]["merges"][0] = 5; }, StatusCode::kFormatError, "merges"},
      {"lowercase normalizer",
       [](json& j) {
         j["normalizer"] = {{"type", "Lowercase"}};
       },
       StatusCode::kUnsupported, "Lowercase"},
      {"no escaping",
       [](json& j) {
         j["normalizer"] = nullptr;
         j["pre_tokenizer"] = nullptr;
       },
       StatusCode::kUnsupported, "escaped"},
      {"byte level",
       [](json& j) {
         j["pre_tokenizer"] = {{"type", "ByteLevel"}};
       },
       StatusCode::kUnsupported, "ByteLevel"},
      {"dropout", [](json& j) { j["model"]["dropout"] = 0.1; }, StatusCode::kUnsupported, "dropout"},
      {"suffix", [](json& j) { j["model"]["end_of_word_suffix"] = "</w>"; }, StatusCode::kUnsupported, "suffix"},
      {"rstrip", [](json& j) { j["added_tokens"][0]["rstrip"] = true; }, StatusCode::kUnsupported, "rstrip"},
      {"dropout type", [](json& j) { j["model"]["dropout"] = "x"; }, StatusCode::kFormatError, "tokenizer.json"},
  };
  for (const BadCase& c : cases) {
    json j = base;
    c.mutate(j);
    auto tok = Tokenizer::from_hf_json_text(j.dump());
    ASSERT_FALSE(tok.is_ok()) << c.what << " was accepted";
    EXPECT_EQ(tok.status().code(), c.code) << c.what << ": " << tok.status().to_string();
    EXPECT_NE(tok.status().message().find(c.needle), std::string::npos) << c.what << ": " << tok.status().message();
  }
  for (const char* text : {"", "{", "[]", "{\"model\": 1}", "\xFF\xFE", "{\"model\": {\"type\": \"BPE\"}}"}) {
    auto tok = Tokenizer::from_hf_json_text(text);
    EXPECT_FALSE(tok.is_ok()) << "accepted '" << text << "'";
  }
  auto missing = Tokenizer::from_hf_json(kDir + "does_not_exist.json");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("does_not_exist.json"), std::string::npos);
}

}  // namespace
}  // namespace ge
