// response_format json_object / json_schema: a compiled subset of JSON Schema and a byte-level
// JSON prefix matcher that follows it, applied at sampling as a TokenConstraint (tokens whose text
// would make the reply invalid, or leave too little of the token budget to close it, are masked).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "runtime/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace ge::server {

// The supported subset: type object (properties, required, additionalProperties false or absent),
// array (items), string, number, integer, boolean, null; enum and const of any JSON values; nested
// freely. Annotations (title, description, default, examples, $schema) are ignored; any other
// keyword is refused by name. The root must be an object.
struct JsonSchema {
  enum class Kind : uint8_t { kAny, kObject, kArray, kString, kNumber, kInteger, kBoolean, kNull, kLiterals };
  struct Node {
    Kind kind = Kind::kAny;
    std::vector<std::string> keys;     // kObject: property names (plain, no escapes needed)
    std::vector<int32_t> values;       // kObject: node of each property
    std::vector<bool> required;        // kObject: per property
    bool additional = true;            // kObject: other keys allowed (with any value)
    int32_t items = -1;                // kArray: node of the items, -1 = any
    std::vector<std::string> literals;  // kLiterals: serialized values (enum, const, true/false, null)
    int64_t min_bytes = 1;              // shortest valid serialization
  };
  std::vector<Node> nodes;
  int32_t root = 0;
};

// {"type": "json_object"}: any one JSON object.
JsonSchema any_json_object_schema();
// A schema in the subset, or invalid_argument naming the unsupported keyword / bad value.
Result<JsonSchema> compile_json_schema(const nlohmann::json& schema);

// Incremental JSON prefix matcher for one schema. feed() returns false (and leaves the state
// unusable) on a byte that no valid document continues with; whitespace runs are capped so that
// the output cannot stall in blanks.
class JsonMatcher {
 public:
  explicit JsonMatcher(std::shared_ptr<const JsonSchema> schema);
  bool feed(uint8_t byte);
  bool feed(std::string_view bytes);
  bool complete() const { return done_; }
  // Fewest bytes that complete the document from here (0 once complete).
  int64_t bytes_to_close() const;

 private:
  enum class FrameKind : uint8_t { kValue, kObject, kArray, kString, kNumber, kLiteral };
  struct Frame {
    FrameKind kind = FrameKind::kValue;
    uint8_t state = 0;
    bool is_key = false;   // kString: an object key (plain bytes, kept in text)
    bool integer = false;  // kNumber
    int32_t node = -1;
    int32_t current = -1;  // kObject: property index of the key being read / whose value follows
    uint64_t seen = 0;     // kObject: properties already written (≤ 64 properties)
    int32_t length = 0;    // kNumber / kString byte count
    std::string text;      // key bytes (kString is_key) or literal prefix (kLiteral)
  };
  bool step(uint8_t c);
  bool start_value(int32_t node, uint8_t c);
  bool key_prefix_ok(const Frame& obj, const std::string& key) const;
  int64_t rest_of_object(const Frame& f) const;
  int64_t frame_cost(const Frame& f) const;
  const JsonSchema::Node& node(int32_t i) const;

  std::shared_ptr<const JsonSchema> schema_;
  std::vector<Frame> stack_;
  int32_t blanks_ = 0;
  bool done_ = false;
  bool dead_ = false;
};

// TokenConstraint over a matcher: `token_bytes[id]` is the text id decodes to (empty for special
// tokens, which are never allowed).
class JsonTokenConstraint : public TokenConstraint {
 public:
  JsonTokenConstraint(std::shared_ptr<const JsonSchema> schema,
                      std::shared_ptr<const std::vector<std::string>> token_bytes);
  bool allows(int32_t id, int32_t tokens_left) override;
  void accept(int32_t id) override;
  bool complete() const override { return matcher_.complete(); }

 private:
  JsonMatcher matcher_;
  std::shared_ptr<const std::vector<std::string>> token_bytes_;
};

// The bytes of every token as the reply text shows them; empty (never allowed) for special and
// user-defined tokens.
std::shared_ptr<const std::vector<std::string>> token_byte_table(const Tokenizer& tokenizer);

}  // namespace ge::server
