// Gemma 4 tool value syntax: serialisation as the chat template writes it, and the inverse parser
// for the model's <|tool_call>call:NAME{...}<tool_call|> output.
#include "chat/tool_call_syntax.h"

#include <charconv>
#include <cstdint>
#include <system_error>

#include "chat/python_text.h"

namespace ge::chat {
namespace {

constexpr int kMaxDepth = 128;

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

class ValueParser {
 public:
  explicit ValueParser(std::string_view text) : text_(text) {}

  Result<nlohmann::json> parse_value(int depth) {
    if (depth > kMaxDepth) return error("nesting deeper than 128 levels");
    skip_ws();
    if (pos_ >= text_.size()) return error("expected a value");
    if (starts_with(kToolQuote)) {
      GE_ASSIGN_OR_RETURN(std::string s, parse_quoted());
      return nlohmann::json(std::move(s));
    }
    const char c = text_[pos_];
    if (c == '{') return parse_object(depth);
    if (c == '[') return parse_array(depth);
    return parse_scalar();
  }

  void skip_ws() {
    while (pos_ < text_.size() && is_ws(text_[pos_])) ++pos_;
  }
  bool at_end() const { return pos_ >= text_.size(); }
  Status error_status(std::string_view what) const {
    return invalid_argument("parse tool call: " + std::string(what) + " at offset " +
                            std::to_string(pos_));
  }

 private:
  Status error(std::string_view what) const { return error_status(what); }

  bool starts_with(std::string_view s) const { return text_.substr(pos_).substr(0, s.size()) == s; }

  Result<std::string> parse_quoted() {
    pos_ += kToolQuote.size();
    const size_t end = text_.find(kToolQuote, pos_);
    if (end == std::string_view::npos) return error("unterminated <|\"|> string");
    std::string s(text_.substr(pos_, end - pos_));
    pos_ = end + kToolQuote.size();
    return s;
  }

  Result<std::string> parse_key() {
    skip_ws();
    if (starts_with(kToolQuote)) return parse_quoted();
    const size_t begin = pos_;
    while (pos_ < text_.size() && text_[pos_] != ':') {
      const char c = text_[pos_];
      if (c == '{' || c == '}' || c == '[' || c == ']' || c == ',') return error("expected key:");
      ++pos_;
    }
    if (pos_ >= text_.size()) return error("expected ':' after key");
    std::string_view key = text_.substr(begin, pos_ - begin);
    while (!key.empty() && is_ws(key.back())) key.remove_suffix(1);
    if (key.empty()) return error("empty key");
    return std::string(key);
  }

  Result<nlohmann::json> parse_object(int depth) {
    ++pos_;  // '{'
    nlohmann::json obj = nlohmann::json::object();
    skip_ws();
    if (pos_ < text_.size() && text_[pos_] == '}') {
      ++pos_;
      return obj;
    }
    while (true) {
      GE_ASSIGN_OR_RETURN(std::string key, parse_key());
      skip_ws();
      if (pos_ >= text_.size() || text_[pos_] != ':') return error("expected ':' after key");
      ++pos_;
      GE_ASSIGN_OR_RETURN(nlohmann::json value, parse_value(depth + 1));
      obj[key] = std::move(value);
      skip_ws();
      if (pos_ >= text_.size()) return error("unterminated object");
      if (text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (text_[pos_] == '}') {
        ++pos_;
        return obj;
      }
      return error("expected ',' or '}' in object");
    }
  }

  Result<nlohmann::json> parse_array(int depth) {
    ++pos_;  // '['
    nlohmann::json arr = nlohmann::json::array();
    skip_ws();
    if (pos_ < text_.size() && text_[pos_] == ']') {
      ++pos_;
      return arr;
    }
    while (true) {
      GE_ASSIGN_OR_RETURN(nlohmann::json value, parse_value(depth + 1));
      arr.push_back(std::move(value));
      skip_ws();
      if (pos_ >= text_.size()) return error("unterminated array");
      if (text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (text_[pos_] == ']') {
        ++pos_;
        return arr;
      }
      return error("expected ',' or ']' in array");
    }
  }

  Result<nlohmann::json> parse_scalar() {
    const size_t begin = pos_;
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c == ',' || c == '}' || c == ']' || c == '{' || c == '[' || c == '<' || is_ws(c)) break;
      ++pos_;
    }
    const std::string_view token = text_.substr(begin, pos_ - begin);
    if (token.empty()) return error("expected a value");
    if (token == "true") return nlohmann::json(true);
    if (token == "false") return nlohmann::json(false);
    if (token == "null" || token == "None") return nlohmann::json(nullptr);
    if (!is_json_number(token)) {
      pos_ = begin;
      return error("unquoted value '" + std::string(token.substr(0, 32)) + "'");
    }
    const char* first = token.data();
    const char* last = token.data() + token.size();
    if (token.find_first_of(".eE") == std::string_view::npos) {
      int64_t i = 0;
      auto r = std::from_chars(first, last, i);
      if (r.ec == std::errc() && r.ptr == last) return nlohmann::json(i);
      uint64_t u = 0;
      r = std::from_chars(first, last, u);
      if (r.ec == std::errc() && r.ptr == last) return nlohmann::json(u);
    }
    double d = 0;
    auto r = std::from_chars(first, last, d);
    if (r.ec != std::errc() || r.ptr != last) {
      pos_ = begin;
      return error("number out of range");
    }
    return nlohmann::json(d);
  }

  // JSON number grammar: -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)?
  static bool is_json_number(std::string_view t) {
    size_t i = 0;
    auto digits = [&]() {
      size_t start = i;
      while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
      return i > start;
    };
    if (i < t.size() && t[i] == '-') ++i;
    if (i < t.size() && t[i] == '0') {
      ++i;
    } else if (!digits()) {
      return false;
    }
    if (i < t.size() && t[i] == '.') {
      ++i;
      if (!digits()) return false;
    }
    if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
      ++i;
      if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
      if (!digits()) return false;
    }
    return i == t.size();
  }

  std::string_view text_;
  size_t pos_ = 0;
};

void format_value_into(const nlohmann::json& value, bool escape_keys, std::string* out, int depth) {
  // render_chat refuses JSON deeper than 128 levels before it gets here; this only keeps a
  // direct caller from recursing without bound.
  if (depth > 512) return;
  if (value.is_string()) {
    out->append(kToolQuote);
    out->append(value.get_ref<const std::string&>());
    out->append(kToolQuote);
  } else if (value.is_boolean()) {
    out->append(value.get<bool>() ? "true" : "false");
  } else if (value.is_object()) {
    out->push_back('{');
    bool first = true;
    for (const auto& [key, item] : py::dictsort(value)) {
      if (!first) out->push_back(',');
      first = false;
      if (escape_keys) {
        out->append(kToolQuote);
        out->append(*key);
        out->append(kToolQuote);
      } else {
        out->append(*key);
      }
      out->push_back(':');
      format_value_into(*item, escape_keys, out, depth + 1);
    }
    out->push_back('}');
  } else if (value.is_array()) {
    out->push_back('[');
    bool first = true;
    for (const auto& item : value) {
      if (!first) out->push_back(',');
      first = false;
      format_value_into(item, escape_keys, out, depth + 1);
    }
    out->push_back(']');
  } else {
    out->append(py::str(value));
  }
}

}  // namespace

std::string format_tool_value(const nlohmann::json& value, bool escape_keys) {
  std::string out;
  format_value_into(value, escape_keys, &out, 0);
  return out;
}

std::string format_tool_call_arguments(const nlohmann::json& arguments) {
  std::string out;
  if (arguments.is_object()) {
    bool first = true;
    for (const auto& [key, item] : py::dictsort(arguments)) {
      if (!first) out.push_back(',');
      first = false;
      out.append(*key);
      out.push_back(':');
      format_value_into(*item, /*escape_keys=*/false, &out, 1);
    }
  } else if (arguments.is_string()) {
    out = arguments.get<std::string>();
  }
  return out;
}

Result<nlohmann::json> parse_tool_value(std::string_view text) {
  ValueParser parser(text);
  GE_ASSIGN_OR_RETURN(nlohmann::json value, parser.parse_value(0));
  parser.skip_ws();
  if (!parser.at_end()) return parser.error_status("trailing text after value");
  return value;
}

Result<nlohmann::json> parse_tool_call_arguments(std::string_view text) {
  GE_ASSIGN_OR_RETURN(nlohmann::json value, parse_tool_value(text));
  if (!value.is_object()) return invalid_argument("parse tool call: arguments are not an object");
  return value;
}

}  // namespace ge::chat
