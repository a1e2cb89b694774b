// JSON Schema subset compiler, JSON prefix matcher (a pushdown automaton over bytes: one frame per
// open value) and the token constraint built on them.
#include "server/json_constraint.h"

#include <algorithm>
#include <limits>

namespace ge::server {

using nlohmann::json;

namespace {

constexpr int32_t kMaxSchemaDepth = 32;
constexpr size_t kMaxProperties = 64;  // JsonMatcher keeps the written ones in a 64-bit mask
constexpr size_t kMaxLiterals = 256;
constexpr size_t kMaxLiteralBytes = 1024;
constexpr int32_t kMaxBlanks = 16;       // consecutive whitespace bytes outside strings
constexpr int32_t kMaxNumberBytes = 32;  // one number's bytes
constexpr size_t kMaxDepth = 64;         // open containers

// Nodes for values the schema leaves open (negative ids in matcher frames).
constexpr int32_t kAnyValue = -1;
constexpr int32_t kAnyObject = -2;
constexpr int32_t kAnyArray = -3;
constexpr int32_t kAnyLiteral = -4;

const JsonSchema::Node& builtin(int32_t id) {
  static const std::vector<JsonSchema::Node> table = [] {
    std::vector<JsonSchema::Node> t(4);
    t[0].kind = JsonSchema::Kind::kAny;
    t[0].min_bytes = 1;  // "0"
    t[1].kind = JsonSchema::Kind::kObject;
    t[1].min_bytes = 2;
    t[2].kind = JsonSchema::Kind::kArray;
    t[2].items = kAnyValue;
    t[2].min_bytes = 2;
    t[3].kind = JsonSchema::Kind::kLiterals;
    t[3].literals = {"true", "false", "null"};
    t[3].min_bytes = 4;
    return t;
  }();
  return table[static_cast<size_t>(-id - 1)];
}

bool is_blank(uint8_t c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
bool is_hex(uint8_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// A property name the matcher can follow byte by byte: nothing that JSON would escape.
bool plain_key(const std::string& k) {
  for (unsigned char c : k)
    if (c < 0x20 || c == '"' || c == '\\') return false;
  return true;
}

class SchemaCompiler {
 public:
  Result<int32_t> compile(const json& s, const std::string& path, int32_t depth) {
    if (depth > kMaxSchemaDepth) return bad(path, "nests deeper than " + std::to_string(kMaxSchemaDepth) + " levels");
    if (s.is_boolean() && s.get<bool>()) return add(any_node());
    if (!s.is_object()) return bad(path, "must be a schema object");
    static const char* kIgnored[] = {"title", "description", "default", "examples", "$schema", "$id", "$comment"};
    static const char* kKnown[] = {"type", "properties", "required", "additionalProperties", "items", "enum", "const"};
    for (auto it = s.begin(); it != s.end(); ++it) {
      const std::string& k = it.key();
      const bool ok = std::find(std::begin(kIgnored), std::end(kIgnored), k) != std::end(kIgnored) ||
                      std::find(std::begin(kKnown), std::end(kKnown), k) != std::end(kKnown);
      if (!ok) return bad(path, "uses '" + k.substr(0, 64) + "', which is not supported");
    }
    if (s.contains("enum") || s.contains("const")) {
      JsonSchema::Node n;
      n.kind = JsonSchema::Kind::kLiterals;
      std::vector<json> values;
      if (s.contains("const")) values.push_back(s["const"]);
      if (s.contains("enum")) {
        const json& e = s["enum"];
        if (!e.is_array() || e.empty() || e.size() > kMaxLiterals)
          return bad(path + ".enum", "must be an array of 1 to " + std::to_string(kMaxLiterals) + " values");
        for (const json& v : e) values.push_back(v);
      }
      for (const json& v : values) {
        std::string lit = v.dump(-1, ' ', false, json::error_handler_t::replace);
        if (lit.size() > kMaxLiteralBytes) return bad(path, "has an enum/const value longer than 1024 bytes");
        n.literals.push_back(std::move(lit));
      }
      if (s.contains("const") && s.contains("enum")) {
        // Both: the const value must be one of the enum values.
        const std::string c = n.literals[0];
        if (std::find(n.literals.begin() + 1, n.literals.end(), c) == n.literals.end())
          return bad(path, "has a const value outside its enum");
        n.literals = {c};
      }
      n.min_bytes = std::numeric_limits<int64_t>::max();
      for (const std::string& l : n.literals) n.min_bytes = std::min<int64_t>(n.min_bytes, static_cast<int64_t>(l.size()));
      return add(std::move(n));
    }
    std::string type;
    if (s.contains("type")) {
      if (!s["type"].is_string()) return bad(path + ".type", "must be a string (type lists are not supported)");
      type = s["type"].get<std::string>();
    } else if (s.contains("properties") || s.contains("required") || s.contains("additionalProperties")) {
      type = "object";
    } else if (s.contains("items")) {
      type = "array";
    }
    JsonSchema::Node n;
    if (type.empty()) return add(any_node());
    if (type == "string") {
      n.kind = JsonSchema::Kind::kString;
      n.min_bytes = 2;
    } else if (type == "number" || type == "integer") {
      n.kind = type == "number" ? JsonSchema::Kind::kNumber : JsonSchema::Kind::kInteger;
      n.min_bytes = 1;
    } else if (type == "boolean") {
      n.kind = JsonSchema::Kind::kLiterals;
      n.literals = {"true", "false"};
      n.min_bytes = 4;
    } else if (type == "null") {
      n.kind = JsonSchema::Kind::kLiterals;
      n.literals = {"null"};
      n.min_bytes = 4;
    } else if (type == "array") {
      n.kind = JsonSchema::Kind::kArray;
      n.min_bytes = 2;
      n.items = kAnyValue;
      if (s.contains("items")) {
        GE_ASSIGN_OR_RETURN(n.items, compile(s["items"], path + ".items", depth + 1));
      }
    } else if (type == "object") {
      n.kind = JsonSchema::Kind::kObject;
      if (s.contains("properties")) {
        const json& p = s["properties"];
        if (!p.is_object()) return bad(path + ".properties", "must be an object");
        if (p.size() > kMaxProperties)
          return bad(path + ".properties", "has more than " + std::to_string(kMaxProperties) + " properties");
        for (auto it = p.begin(); it != p.end(); ++it) {
          if (!plain_key(it.key()) || it.key().size() > 256)
            return bad(path + ".properties", "has a name with quotes, backslashes or control characters, or too long");
          GE_ASSIGN_OR_RETURN(int32_t v, compile(it.value(), path + ".properties." + it.key(), depth + 1));
          n.keys.push_back(it.key());
          n.values.push_back(v);
          n.required.push_back(false);
        }
      }
      if (s.contains("required")) {
        const json& r = s["required"];
        if (!r.is_array()) return bad(path + ".required", "must be an array of property names");
        for (const json& k : r) {
          auto at = k.is_string() ? std::find(n.keys.begin(), n.keys.end(), k.get<std::string>()) : n.keys.end();
          if (at == n.keys.end()) return bad(path + ".required", "names something that is not in 'properties'");
          n.required[static_cast<size_t>(at - n.keys.begin())] = true;
        }
      }
      if (s.contains("additionalProperties")) {
        const json& a = s["additionalProperties"];
        if (a.is_boolean())
          n.additional = a.get<bool>();
        else if (!(a.is_object() && a.empty()))
          return bad(path + ".additionalProperties", "must be false, true or {} (schemas are not supported)");
      }
      int64_t required = 0;
      n.min_bytes = 2;
      for (size_t i = 0; i < n.keys.size(); ++i) {
        if (!n.required[i]) continue;
        n.min_bytes += static_cast<int64_t>(n.keys[i].size()) + 3 + out_.nodes[static_cast<size_t>(n.values[i])].min_bytes;
        ++required;
      }
      n.min_bytes += std::max<int64_t>(0, required - 1);
    } else {
      return bad(path + ".type", "'" + type.substr(0, 64) + "' is not a supported type");
    }
    return add(std::move(n));
  }

  JsonSchema take() { return std::move(out_); }

 private:
  static JsonSchema::Node any_node() {
    JsonSchema::Node n;
    n.kind = JsonSchema::Kind::kAny;
    n.min_bytes = 1;
    return n;
  }
  int32_t add(JsonSchema::Node n) {
    out_.nodes.push_back(std::move(n));
    return static_cast<int32_t>(out_.nodes.size() - 1);
  }
  static Status bad(const std::string& path, const std::string& what) {
    return invalid_argument("json_schema: " + path + " " + what);
  }
  JsonSchema out_;
};

}  // namespace

JsonSchema any_json_object_schema() {
  JsonSchema s;
  s.nodes.push_back(builtin(kAnyObject));
  s.root = 0;
  return s;
}

Result<JsonSchema> compile_json_schema(const json& schema) {
  SchemaCompiler c;
  GE_ASSIGN_OR_RETURN(int32_t root, c.compile(schema, "schema", 0));
  JsonSchema s = c.take();
  s.root = root;
  if (s.nodes[static_cast<size_t>(root)].kind != JsonSchema::Kind::kObject)
    return invalid_argument("json_schema: the root schema must be of type object");
  return s;
}

// ---- matcher ----

namespace {
// Object frame states.
enum : uint8_t { kObjOpen, kObjKey, kObjColon, kObjAfterValue, kObjComma };
// Array frame states.
enum : uint8_t { kArrOpen, kArrAfterValue, kArrComma };
// Number frame states; kNumZero, kNumInt, kNumFrac and kNumExp accept.
enum : uint8_t { kNumStart, kNumMinus, kNumZero, kNumInt, kNumDot, kNumFrac, kNumE, kNumESign, kNumExp };
bool number_accepts(uint8_t s) { return s == kNumZero || s == kNumInt || s == kNumFrac || s == kNumExp; }
}  // namespace

JsonMatcher::JsonMatcher(std::shared_ptr<const JsonSchema> schema) : schema_(std::move(schema)) {
  Frame f;
  f.kind = FrameKind::kValue;
  f.node = schema_->root;
  stack_.push_back(f);
}

const JsonSchema::Node& JsonMatcher::node(int32_t i) const {
  return i < 0 ? builtin(i) : schema_->nodes[static_cast<size_t>(i)];
}

bool JsonMatcher::feed(uint8_t byte) {
  if (dead_ || done_) return false;
  if (!step(byte)) {
    dead_ = true;
    return false;
  }
  return true;
}

bool JsonMatcher::feed(std::string_view bytes) {
  for (char c : bytes)
    if (!feed(static_cast<uint8_t>(c))) return false;
  return true;
}

bool JsonMatcher::key_prefix_ok(const Frame& obj, const std::string& key) const {
  const JsonSchema::Node& n = node(obj.node);
  if (n.additional) return true;
  for (size_t i = 0; i < n.keys.size(); ++i)
    if (!(obj.seen >> i & 1) && n.keys[i].compare(0, key.size(), key) == 0 && n.keys[i].size() >= key.size())
      return true;
  return false;
}

bool JsonMatcher::start_value(int32_t id, uint8_t c) {
  if (stack_.size() >= kMaxDepth) return false;
  const JsonSchema::Node& n = node(id);
  Frame f;
  f.node = id;
  switch (n.kind) {
    case JsonSchema::Kind::kAny:
      if (c == '{') return start_value(kAnyObject, c);
      if (c == '[') return start_value(kAnyArray, c);
      if (c == '"') {
        f.kind = FrameKind::kString;
        stack_.push_back(f);
        return true;
      }
      if (c == '-' || is_digit(c)) {
        f.kind = FrameKind::kNumber;
        stack_.push_back(f);
        return step(c);
      }
      return start_value(kAnyLiteral, c);
    case JsonSchema::Kind::kObject:
      if (c != '{') return false;
      f.kind = FrameKind::kObject;
      f.state = kObjOpen;
      stack_.push_back(f);
      return true;
    case JsonSchema::Kind::kArray:
      if (c != '[') return false;
      f.kind = FrameKind::kArray;
      f.state = kArrOpen;
      stack_.push_back(f);
      return true;
    case JsonSchema::Kind::kString:
      if (c != '"') return false;
      f.kind = FrameKind::kString;
      stack_.push_back(f);
      return true;
    case JsonSchema::Kind::kNumber:
    case JsonSchema::Kind::kInteger:
      if (c != '-' && !is_digit(c)) return false;
      f.kind = FrameKind::kNumber;
      f.integer = n.kind == JsonSchema::Kind::kInteger;
      stack_.push_back(f);
      return step(c);
    case JsonSchema::Kind::kBoolean:
    case JsonSchema::Kind::kNull:
    case JsonSchema::Kind::kLiterals:
      f.kind = FrameKind::kLiteral;
      stack_.push_back(f);
      return step(c);
  }
  return false;
}

bool JsonMatcher::step(uint8_t c) {
  if (stack_.empty()) return false;
  const bool blank = is_blank(c);
  Frame& f = stack_.back();
  // Whitespace between tokens: allowed where the grammar has a gap, capped per run.
  const bool gap = f.kind == FrameKind::kValue || (f.kind == FrameKind::kObject && f.state != kObjKey) ||
                   f.kind == FrameKind::kArray;
  if (blank && gap) return ++blanks_ <= kMaxBlanks;
  if (f.kind != FrameKind::kString) blanks_ = 0;
  auto pop_value = [&] {
    stack_.pop_back();
    if (stack_.empty()) done_ = true;
  };
  switch (f.kind) {
    case FrameKind::kValue: {
      const int32_t id = f.node;
      stack_.pop_back();
      return start_value(id, c);
    }
    case FrameKind::kString:
      blanks_ = 0;
      if (f.state == 0) {
        if (c == '"') {
          pop_value();
          return true;
        }
        if (c == '\\') {
          f.state = 1;
          return true;
        }
        return c >= 0x20;
      }
      if (f.state == 1) {
        if (c == 'u') {
          f.state = 2;
          return true;
        }
        if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't') {
          f.state = 0;
          return true;
        }
        return false;
      }
      if (!is_hex(c)) return false;
      f.state = f.state == 5 ? 0 : static_cast<uint8_t>(f.state + 1);  // states 2..5: hex digits of \uXXXX
      return true;
    case FrameKind::kNumber: {
      uint8_t next = 255;
      if (is_digit(c)) {
        switch (f.state) {
          case kNumStart:
          case kNumMinus:
            next = c == '0' ? kNumZero : kNumInt;
            break;
          case kNumInt:
            next = kNumInt;
            break;
          case kNumDot:
          case kNumFrac:
            next = kNumFrac;
            break;
          case kNumE:
          case kNumESign:
          case kNumExp:
            next = kNumExp;
            break;
          default:
            break;  // a digit after a leading zero ends nothing: refused below
        }
      } else if (c == '-' && f.state == kNumStart) {
        next = kNumMinus;
      } else if ((c == '-' || c == '+') && f.state == kNumE) {
        next = kNumESign;
      } else if (c == '.' && !f.integer && (f.state == kNumZero || f.state == kNumInt)) {
        next = kNumDot;
      } else if ((c == 'e' || c == 'E') && !f.integer &&
                 (f.state == kNumZero || f.state == kNumInt || f.state == kNumFrac)) {
        next = kNumE;
      }
      if (next != 255) {
        if (++f.length > kMaxNumberBytes) return false;
        f.state = next;
        return true;
      }
      if (!number_accepts(f.state) || is_digit(c)) return false;
      pop_value();
      return step(c);
    }
    case FrameKind::kLiteral: {
      const JsonSchema::Node& n = node(f.node);
      std::string longer = f.text;
      longer.push_back(static_cast<char>(c));
      for (const std::string& l : n.literals)
        if (l.size() >= longer.size() && l.compare(0, longer.size(), longer) == 0) {
          f.text = std::move(longer);
          return true;
        }
      if (std::find(n.literals.begin(), n.literals.end(), f.text) == n.literals.end()) return false;
      pop_value();
      return step(c);
    }
    case FrameKind::kObject: {
      const JsonSchema::Node& n = node(f.node);
      auto can_add_key = [&] {
        if (n.additional) return true;
        for (size_t i = 0; i < n.keys.size(); ++i)
          if (!(f.seen >> i & 1)) return true;
        return false;
      };
      auto required_done = [&] {
        for (size_t i = 0; i < n.keys.size(); ++i)
          if (n.required[i] && !(f.seen >> i & 1)) return false;
        return true;
      };
      switch (f.state) {
        case kObjOpen:
        case kObjAfterValue:
          if (c == '}') {
            if (!required_done()) return false;
            pop_value();
            return true;
          }
          if (f.state == kObjAfterValue) {
            if (c != ',' || !can_add_key()) return false;
            f.state = kObjComma;
            return true;
          }
          [[fallthrough]];
        case kObjComma:
          if (c != '"' || !can_add_key()) return false;
          f.state = kObjKey;
          f.text.clear();
          return true;
        case kObjKey: {
          if (c == '"') {
            int32_t prop = -1;
            for (size_t i = 0; i < n.keys.size(); ++i)
              if (n.keys[i] == f.text) prop = static_cast<int32_t>(i);
            if (prop >= 0 && (f.seen >> prop & 1)) return false;  // no duplicate keys
            if (prop < 0 && !n.additional) return false;
            if (prop >= 0) f.seen |= uint64_t{1} << prop;
            f.current = prop;
            f.state = kObjColon;
            return true;
          }
          if (c < 0x20 || c == '\\' || f.text.size() >= 256) return false;
          f.text.push_back(static_cast<char>(c));
          return key_prefix_ok(f, f.text);
        }
        case kObjColon: {
          if (c != ':') return false;
          f.state = kObjAfterValue;
          Frame v;
          v.kind = FrameKind::kValue;
          v.node = f.current >= 0 ? n.values[static_cast<size_t>(f.current)] : kAnyValue;
          stack_.push_back(v);  // invalidates f
          return true;
        }
        default:
          return false;
      }
    }
    case FrameKind::kArray: {
      const int32_t items = node(f.node).items;
      if (f.state == kArrAfterValue) {
        if (c == ',') {
          f.state = kArrComma;
          return true;
        }
        if (c != ']') return false;
        pop_value();
        return true;
      }
      if (f.state == kArrOpen && c == ']') {
        pop_value();
        return true;
      }
      f.state = kArrAfterValue;
      Frame v;
      v.kind = FrameKind::kValue;
      v.node = items;
      stack_.push_back(v);  // invalidates f
      return step(c);
    }
  }
  return false;
}

int64_t JsonMatcher::rest_of_object(const Frame& f) const {
  // Every required property not yet written, each after a comma, then the closing brace.
  const JsonSchema::Node& n = node(f.node);
  int64_t cost = 1;
  for (size_t i = 0; i < n.keys.size(); ++i)
    if (n.required[i] && !(f.seen >> i & 1))
      cost += 1 + static_cast<int64_t>(n.keys[i].size()) + 3 + node(n.values[i]).min_bytes;
  return cost;
}

int64_t JsonMatcher::frame_cost(const Frame& f) const {
  switch (f.kind) {
    case FrameKind::kValue:
      return node(f.node).min_bytes;
    case FrameKind::kString:
      if (f.state == 0) return 1;
      if (f.state == 1) return 2;
      return (4 - (f.state - 2)) + 1;
    case FrameKind::kNumber:
      return number_accepts(f.state) ? 0 : 1;
    case FrameKind::kLiteral: {
      int64_t best = std::numeric_limits<int64_t>::max();
      for (const std::string& l : node(f.node).literals)
        if (l.size() >= f.text.size() && l.compare(0, f.text.size(), f.text) == 0)
          best = std::min<int64_t>(best, static_cast<int64_t>(l.size() - f.text.size()));
      return best;
    }
    case FrameKind::kObject: {
      const JsonSchema::Node& n = node(f.node);
      const int64_t rest = rest_of_object(f);
      bool any_required = false;
      for (size_t i = 0; i < n.keys.size(); ++i) any_required |= n.required[i] && !(f.seen >> i & 1);
      switch (f.state) {
        case kObjOpen:
          return any_required ? rest - 1 : 1;
        case kObjAfterValue:
          return rest;
        case kObjColon:
          return 1 + node(f.current >= 0 ? n.values[static_cast<size_t>(f.current)] : kAnyValue).min_bytes + rest;
        case kObjComma: {
          if (any_required) return rest - 1;
          int64_t best = n.additional ? 2 + 1 + 1 + rest : std::numeric_limits<int64_t>::max();
          for (size_t i = 0; i < n.keys.size(); ++i)
            if (!(f.seen >> i & 1))
              best = std::min(best, static_cast<int64_t>(n.keys[i].size()) + 3 + node(n.values[i]).min_bytes + rest);
          return best;
        }
        case kObjKey: {
          // Finish this key (a declared one it starts, or any name when others are allowed).
          int64_t best = n.additional ? 1 + 1 + 1 + rest : std::numeric_limits<int64_t>::max();
          for (size_t i = 0; i < n.keys.size(); ++i) {
            if ((f.seen >> i & 1) || n.keys[i].size() < f.text.size() || n.keys[i].compare(0, f.text.size(), f.text) != 0)
              continue;
            int64_t r = rest;
            if (n.required[i]) r -= 1 + static_cast<int64_t>(n.keys[i].size()) + 3 + node(n.values[i]).min_bytes;
            best = std::min(best, static_cast<int64_t>(n.keys[i].size() - f.text.size()) + 2 +
                                      node(n.values[i]).min_bytes + r);
          }
          return best;
        }
        default:
          return 1;
      }
    }
    case FrameKind::kArray:
      return f.state == kArrComma ? node(node(f.node).items).min_bytes + 1 : 1;
  }
  return 0;
}

int64_t JsonMatcher::bytes_to_close() const {
  if (done_) return 0;
  if (dead_) return std::numeric_limits<int64_t>::max();
  int64_t total = 0;
  for (const Frame& f : stack_) {
    const int64_t c = frame_cost(f);
    if (c == std::numeric_limits<int64_t>::max()) return c;
    total += c;
  }
  return total;
}

// ---- token constraint ----

JsonTokenConstraint::JsonTokenConstraint(std::shared_ptr<const JsonSchema> schema,
                                         std::shared_ptr<const std::vector<std::string>> token_bytes)
    : matcher_(std::move(schema)), token_bytes_(std::move(token_bytes)) {}

bool JsonTokenConstraint::allows(int32_t id, int32_t tokens_left) {
  if (id < 0 || static_cast<size_t>(id) >= token_bytes_->size()) return false;
  const std::string& bytes = (*token_bytes_)[static_cast<size_t>(id)];
  if (bytes.empty() || tokens_left < 1) return false;
  JsonMatcher m = matcher_;
  for (char c : bytes)
    if (m.complete() || !m.feed(static_cast<uint8_t>(c))) return false;
  // Each later token can close at least one byte (single-byte tokens exist), so the document must
  // be closable within what is left of the budget.
  return m.bytes_to_close() <= static_cast<int64_t>(tokens_left) - 1;
}

void JsonTokenConstraint::accept(int32_t id) {
  if (id < 0 || static_cast<size_t>(id) >= token_bytes_->size()) return;
  matcher_.feed((*token_bytes_)[static_cast<size_t>(id)]);
}

std::shared_ptr<const std::vector<std::string>> token_byte_table(const Tokenizer& tokenizer) {
  auto table = std::make_shared<std::vector<std::string>>(static_cast<size_t>(std::max(0, tokenizer.n_vocab())));
  for (int32_t id = 0; id < tokenizer.n_vocab(); ++id) {
    // Only ordinary and byte tokens: user-defined ones include markup the reply parser acts on
    // (Gemma 4's "<|channel>"), and everything they spell is reachable through other tokens.
    const TokenType type = tokenizer.token_type(id);
    if (tokenizer.is_special(id) || (type != TokenType::kNormal && type != TokenType::kByte)) continue;
    std::string& s = (*table)[static_cast<size_t>(id)];
    if (!tokenizer.append_piece(id, /*skip_special=*/true, /*first=*/false, &s)) s.clear();
  }
  return table;
}

}  // namespace ge::server
