// JSON constraint: schema subset compilation, the prefix matcher (accepts valid documents, refuses
// the first invalid byte), bytes_to_close (a greedy closing path always ends in a valid document of
// the schema) and the token constraint's budget rule.
#include "server/json_constraint.h"

#include <gtest/gtest.h>

#include <memory>
#include <random>

namespace ge::server {
namespace {

using nlohmann::json;

std::shared_ptr<const JsonSchema> schema_of(const json& s) {
  Result<JsonSchema> r = compile_json_schema(s);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return std::make_shared<const JsonSchema>(r.is_ok() ? std::move(r).value() : any_json_object_schema());
}

std::shared_ptr<const JsonSchema> any_object() { return std::make_shared<const JsonSchema>(any_json_object_schema()); }

// Whether the whole text is accepted and completes the document.
bool accepts(const std::shared_ptr<const JsonSchema>& s, const std::string& text) {
  JsonMatcher m(s);
  return m.feed(text) && m.complete();
}

// Bytes accepted before the first refusal.
size_t accepted_prefix(const std::shared_ptr<const JsonSchema>& s, const std::string& text) {
  JsonMatcher m(s);
  for (size_t i = 0; i < text.size(); ++i)
    if (!m.feed(static_cast<uint8_t>(text[i]))) return i;
  return text.size();
}

// Appends, byte by byte, any byte that lowers bytes_to_close by one, until complete.
bool close_greedily(JsonMatcher m, std::string* text) {
  for (int guard = 0; guard < 10000 && !m.complete(); ++guard) {
    const int64_t need = m.bytes_to_close();
    bool moved = false;
    for (int b = 0x20; b < 0x7f && !moved; ++b) {
      JsonMatcher t = m;
      if (t.feed(static_cast<uint8_t>(b)) && t.bytes_to_close() == need - 1) {
        m = t;
        text->push_back(static_cast<char>(b));
        moved = true;
      }
    }
    if (!moved) return false;
  }
  return m.complete();
}

// The test's own check of a document against the subset (independent of the matcher).
bool conforms(const json& v, const json& s) {
  if (s.contains("enum")) {
    for (const json& e : s["enum"])
      if (e == v) return true;
    return false;
  }
  const std::string type = s.value("type", "");
  if (type == "string") return v.is_string();
  if (type == "integer") return v.is_number_integer();
  if (type == "number") return v.is_number();
  if (type == "boolean") return v.is_boolean();
  if (type == "null") return v.is_null();
  if (type == "array") {
    if (!v.is_array()) return false;
    for (const json& x : v)
      if (s.contains("items") && !conforms(x, s["items"])) return false;
    return true;
  }
  if (type == "object") {
    if (!v.is_object()) return false;
    for (const json& r : s.value("required", json::array()))
      if (!v.contains(r.get<std::string>())) return false;
    const json props = s.value("properties", json::object());
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (props.contains(it.key())) {
        if (!conforms(it.value(), props[it.key()])) return false;
      } else if (s.contains("additionalProperties") && s["additionalProperties"] == false) {
        return false;
      }
    }
    return true;
  }
  return true;
}

const json kPersonSchema = json::parse(R"({
  "type": "object",
  "properties": {
    "name": {"type": "string"},
    "age": {"type": "integer"},
    "score": {"type": "number"},
    "admin": {"type": "boolean"},
    "nick": {"type": "null"},
    "color": {"enum": ["red", "green", 7, null]},
    "tags": {"type": "array", "items": {"type": "string"}},
    "home": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "integer"}},
             "required": ["city"], "additionalProperties": false}
  },
  "required": ["name", "age", "home"],
  "additionalProperties": false
})");

TEST(JsonMatcher, AnyObjectAcceptsValidDocuments) {
  const auto s = any_object();
  for (const char* doc : {"{}", " {\"a\":1}", "{\"a\": [1, 2.5e-3, -0, true, false, null, \"x\\u00e9\\n\"]}",
                          "{\"nested\": {\"deep\": [[], {}, [{\"k\": \"v\"}]]}, \"n\": -12.75E+2}",
                          "{\"\xc3\xa9t\xc3\xa9\": \"caf\xc3\xa9\"}"}) {
    EXPECT_TRUE(accepts(s, doc)) << doc;
    EXPECT_NO_THROW(json::parse(doc)) << doc;
  }
}

TEST(JsonMatcher, RefusesTheFirstInvalidByte) {
  const auto s = any_object();
  struct Case {
    const char* text;
    size_t good;  // bytes accepted before the refusal
  };
  for (const Case& c : {Case{"[1]", 0}, Case{"\"a\"", 0}, Case{"{\"a\":}", 5}, Case{"{\"a\" 1}", 5},
                        Case{"{\"a\":1,}", 7}, Case{"{\"a\":01}", 6}, Case{"{\"a\":1.}", 7}, Case{"{\"a\":tru}", 8},
                        Case{"{\"a\":\"\\x\"}", 7}, Case{"{\"a\":\"\x01\"}", 6}, Case{"{} ", 2}, Case{"{,}", 1},
                        Case{"{\"a\":[1 2]}", 8}, Case{"{\"a\":-}", 6}})
    EXPECT_EQ(accepted_prefix(s, c.text), c.good) << c.text;
}

TEST(JsonMatcher, WhitespaceRunsAreCapped) {
  const auto s = any_object();
  EXPECT_TRUE(accepts(s, "{\n            \"a\": 1\n}"));
  EXPECT_FALSE(accepts(s, "{" + std::string(40, ' ') + "}"));
}

TEST(JsonMatcher, SchemaRequiredAndAdditionalProperties) {
  const auto s = schema_of(kPersonSchema);
  EXPECT_TRUE(accepts(s, R"({"name": "Ann", "age": 31, "home": {"city": "Oslo"}})"));
  EXPECT_TRUE(accepts(s, R"({"home": {"zip": 123, "city": "Rome"}, "age": -4, "name": "", "tags": ["a", "b"],)"
                         R"( "color": 7, "admin": false, "nick": null, "score": 1.5e3})"));
  // Missing required keys: the closing brace is refused.
  EXPECT_EQ(accepted_prefix(s, R"({"name": "Ann"})"), 14u);
  // Unknown key: refused at its first byte that no declared key starts with.
  EXPECT_EQ(accepted_prefix(s, R"({"nam": 1})"), 5u);
  EXPECT_EQ(accepted_prefix(s, R"({"x": 1})"), 2u);
  // Duplicate key.
  EXPECT_FALSE(accepts(s, R"({"name": "a", "name": "b", "age": 1, "home": {"city": ""}})"));
  // Types.
  EXPECT_FALSE(accepts(s, R"({"name": 1, "age": 1, "home": {"city": ""}})"));
  EXPECT_FALSE(accepts(s, R"({"name": "a", "age": 1.5, "home": {"city": ""}})"));
  EXPECT_FALSE(accepts(s, R"({"name": "a", "age": 1, "home": {"city": ""}, "color": "blue"})"));
  EXPECT_FALSE(accepts(s, R"({"name": "a", "age": 1, "home": {"city": ""}, "tags": [1]})"));
  EXPECT_FALSE(accepts(s, R"({"name": "a", "age": 1, "home": {"city": "", "street": ""}})"));
  EXPECT_FALSE(accepts(s, R"({"name": "a", "age": 1, "home": {"city": ""}, "admin": null})"));
}

TEST(JsonMatcher, EnumLiteralsThatPrefixEachOther) {
  const auto s = schema_of(json::parse(R"({"type": "object", "properties": {"v": {"enum": [1, 12, "a", "ab"]}},
                                           "required": ["v"]})"));
  for (const char* doc : {R"({"v": 1})", R"({"v":12})", R"({"v": "a"})", R"({"v": "ab" })"}) EXPECT_TRUE(accepts(s, doc)) << doc;
  for (const char* doc : {R"({"v": 123})", R"({"v": 2})", R"({"v": "abc"})", R"({"v": "b"})"})
    EXPECT_FALSE(accepts(s, doc)) << doc;
}

TEST(JsonMatcher, GreedyClosingAlwaysGivesAConformingDocument) {
  // From every prefix of valid documents (and of random walks), closing along bytes_to_close must
  // give a document that parses and conforms, in exactly bytes_to_close bytes.
  const auto s = schema_of(kPersonSchema);
  const std::string docs[] = {
      R"({"name": "Ann \"Bee\" \u00e9", "age": 31, "tags": ["x", "y"], "home": {"city": "Oslo", "zip": 1}, "color": "green"})",
      R"({ "score": -0.5e-2, "admin": true, "nick": null, "home": {"zip": 12, "city": "A"}, "name": "", "age": 0 })"};
  for (const std::string& doc : docs) {
    ASSERT_TRUE(accepts(s, doc)) << doc;
    for (size_t cut = 0; cut <= doc.size(); ++cut) {
      JsonMatcher m(s);
      ASSERT_TRUE(m.feed(std::string_view(doc).substr(0, cut)));
      const int64_t need = m.bytes_to_close();
      std::string text = doc.substr(0, cut);
      ASSERT_TRUE(close_greedily(m, &text)) << text;
      EXPECT_EQ(static_cast<int64_t>(text.size() - cut), need) << text;
      const json v = json::parse(text, nullptr, false);
      ASSERT_FALSE(v.is_discarded()) << text;
      EXPECT_TRUE(conforms(v, kPersonSchema)) << text;
    }
  }
  // Random walks over printable bytes, closed at every step.
  std::mt19937 rng(7);
  for (int walk = 0; walk < 40; ++walk) {
    JsonMatcher m(walk % 2 ? s : any_object());
    std::string text;
    for (int step = 0; step < 60; ++step) {
      JsonMatcher t = m;
      const uint8_t b = static_cast<uint8_t>(0x20 + rng() % 0x5f);
      if (!t.feed(b) || t.complete()) continue;
      m = t;
      text.push_back(static_cast<char>(b));
      std::string closed = text;
      ASSERT_TRUE(close_greedily(m, &closed)) << closed;
      const json v = json::parse(closed, nullptr, false);
      ASSERT_FALSE(v.is_discarded()) << closed;
      ASSERT_TRUE(v.is_object()) << closed;
      if (walk % 2) {
        EXPECT_TRUE(conforms(v, kPersonSchema)) << closed;
      }
    }
  }
}

TEST(JsonSchemaCompile, RefusesWhatIsNotSupportedByName) {
  struct Case {
    const char* schema;
    const char* says;
  };
  for (const Case& c : {Case{R"({"type": "object", "properties": {"a": {"type": "string", "pattern": "x"}}})", "pattern"},
                        Case{R"({"type": "object", "anyOf": []})", "anyOf"},
                        Case{R"({"type": ["object", "null"]})", "type lists"},
                        Case{R"({"type": "string"})", "root"},
                        Case{R"({"type": "object", "properties": {"a": {"type": "date"}}})", "'date'"},
                        Case{R"({"type": "object", "required": ["zz"], "properties": {}})", "required"},
                        Case{R"({"type": "object", "additionalProperties": {"type": "string"}})", "additionalProperties"},
                        Case{R"({"type": "object", "properties": {"a\"b": {}}})", "quotes"}}) {
    Result<JsonSchema> r = compile_json_schema(json::parse(c.schema));
    ASSERT_FALSE(r.is_ok()) << c.schema;
    EXPECT_NE(r.status().message().find(c.says), std::string::npos) << r.status().message();
  }
  // Annotations are ignored.
  EXPECT_TRUE(compile_json_schema(json::parse(R"({"type": "object", "title": "t", "description": "d",
                                                  "properties": {"a": {"type": "string", "description": "x"}}})"))
                  .is_ok());
}

TEST(JsonTokenConstraint, BudgetForcesClosingAndSpecialTokensAreRefused) {
  // Tokens: 0 special (empty), then single bytes and a few multi-byte pieces.
  auto table = std::make_shared<std::vector<std::string>>();
  table->push_back("");
  for (int b = 0x20; b < 0x7f; ++b) table->push_back(std::string(1, static_cast<char>(b)));
  const int32_t kOpenKey = static_cast<int32_t>(table->size());
  table->push_back("{\"");
  const int32_t kLongText = static_cast<int32_t>(table->size());
  table->push_back("hello world");
  auto id_of = [](char c) { return static_cast<int32_t>(c - 0x20 + 1); };
  JsonTokenConstraint c(any_object(), table);
  EXPECT_FALSE(c.allows(0, 100));
  EXPECT_FALSE(c.allows(id_of('['), 100));
  EXPECT_TRUE(c.allows(kOpenKey, 100));
  // '{"' needs at least '":0}' (4 more bytes): with 4 tokens left after it, it fits; with 3, not.
  EXPECT_TRUE(c.allows(kOpenKey, 5));
  EXPECT_FALSE(c.allows(kOpenKey, 4));
  c.accept(kOpenKey);
  EXPECT_TRUE(c.allows(kLongText, 10));
  c.accept(kLongText);
  // Now "{"hello world: closing takes '":0}' = 4 bytes; only tokens on a closing path fit a budget of 4.
  EXPECT_TRUE(c.allows(id_of('"'), 4));
  EXPECT_FALSE(c.allows(id_of('x'), 4));
  EXPECT_TRUE(c.allows(id_of('x'), 5));
  for (char ch : std::string("\":0}")) {
    ASSERT_FALSE(c.complete());
    ASSERT_TRUE(c.allows(id_of(ch), 4)) << ch;
    c.accept(id_of(ch));
  }
  EXPECT_TRUE(c.complete());
  EXPECT_FALSE(c.allows(id_of(' '), 10));
}

}  // namespace
}  // namespace ge::server
