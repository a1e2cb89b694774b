// Python/Jinja value semantics for the chat templates: str(), repr(), strip(), truthiness, dictsort.
#include "chat/python_text.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <system_error>

#include "tokenizer/utf8.h"

namespace ge::chat::py {
namespace {

// Decodes one UTF-8 code point at text[pos]; returns its byte length, 0 if the bytes are invalid.
size_t decode_utf8(std::string_view text, size_t pos, char32_t* cp) {
  const auto b0 = static_cast<unsigned char>(text[pos]);
  size_t len = 0;
  char32_t value = 0;
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  } else if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    value = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    value = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4;
    value = b0 & 0x07;
  } else {
    return 0;
  }
  if (text.size() - pos < len) return 0;
  for (size_t i = 1; i < len; ++i) {
    const auto b = static_cast<unsigned char>(text[pos + i]);
    if ((b & 0xC0) != 0x80) return 0;
    value = (value << 6) | (b & 0x3F);
  }
  static constexpr char32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (value < kMin[len] || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return 0;
  *cp = value;
  return len;
}

// Code points Python's str.isprintable() rejects that can plausibly appear in tool schemas.
bool is_non_printable(char32_t cp) {
  if (cp < 0x20 || cp == 0x7F) return true;
  if (cp >= 0x80 && cp <= 0xA0) return true;
  if (cp == 0xAD || cp == 0x1680 || cp == 0x180E || cp == 0x3000 || cp == 0xFEFF) return true;
  if (cp >= 0x2000 && cp <= 0x200F) return true;
  if (cp >= 0x2028 && cp <= 0x202F) return true;
  if (cp >= 0x205F && cp <= 0x206F) return true;
  if (cp >= 0xD800 && cp <= 0xF8FF) return true;  // surrogates, private use
  if (cp >= 0xFFF9 && cp <= 0xFFFB) return true;
  if (cp == 0xFFFE || cp == 0xFFFF) return true;
  if (cp >= 0xE0000 && cp <= 0xE007F) return true;  // tags
  if (cp >= 0xF0000) return true;                   // supplementary private use
  return false;
}

void append_escape(std::string* out, char32_t cp) {
  char buf[16];
  if (cp < 0x100) {
    std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(cp));
  } else if (cp < 0x10000) {
    std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(cp));
  } else {
    std::snprintf(buf, sizeof(buf), "\\U%08x", static_cast<unsigned>(cp));
  }
  out->append(buf);
}

std::string string_repr(std::string_view s) {
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back(quote);
  for (size_t pos = 0; pos < s.size();) {
    char32_t cp = 0;
    size_t len = decode_utf8(s, pos, &cp);
    if (len == 0) {  // not UTF-8: Python would hold a surrogate escape; show the byte
      append_escape(&out, static_cast<unsigned char>(s[pos]));
      ++pos;
      continue;
    }
    if (cp == '\\' || cp == static_cast<char32_t>(quote)) {
      out.push_back('\\');
      out.push_back(static_cast<char>(cp));
    } else if (cp == '\t') {
      out.append("\\t");
    } else if (cp == '\n') {
      out.append("\\n");
    } else if (cp == '\r') {
      out.append("\\r");
    } else if (is_non_printable(cp)) {
      append_escape(&out, cp);
    } else {
      out.append(s.substr(pos, len));
    }
    pos += len;
  }
  out.push_back(quote);
  return out;
}

std::string repr_at(const nlohmann::json& value, int depth);

std::string container_repr(const nlohmann::json& value, int depth) {
  if (depth > 256) return value.is_array() ? "[...]" : "{...}";
  std::string out;
  if (value.is_array()) {
    out.push_back('[');
    bool first = true;
    for (const auto& item : value) {
      if (!first) out.append(", ");
      first = false;
      out.append(repr_at(item, depth + 1));
    }
    out.push_back(']');
  } else {
    out.push_back('{');
    bool first = true;
    for (auto it = value.begin(); it != value.end(); ++it) {
      if (!first) out.append(", ");
      first = false;
      out.append(string_repr(it.key()));
      out.append(": ");
      out.append(repr_at(it.value(), depth + 1));
    }
    out.push_back('}');
  }
  return out;
}

std::string repr_at(const nlohmann::json& value, int depth) {
  if (value.is_string()) return string_repr(value.get_ref<const std::string&>());
  if (value.is_structured()) return container_repr(value, depth);
  return str(value);
}

}  // namespace

std::string float_repr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  // Shortest round-trip digits in scientific form: "-d.ddde+XX".
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
  if (res.ec != std::errc()) return "nan";
  std::string_view sci(buf, static_cast<size_t>(res.ptr - buf));
  const bool negative = !sci.empty() && sci[0] == '-';
  if (negative) sci.remove_prefix(1);
  const size_t e_pos = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e_pos)) {
    if (c != '.') digits.push_back(c);
  }
  const int exp10 = std::atoi(std::string(sci.substr(e_pos + 1)).c_str());
  std::string out = negative ? "-" : "";
  if (exp10 < -4 || exp10 >= 16) {
    out.push_back(digits[0]);
    if (digits.size() > 1) {
      out.push_back('.');
      out.append(digits, 1, std::string::npos);
    }
    char exp_buf[16];
    std::snprintf(exp_buf, sizeof(exp_buf), "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
    out.append(exp_buf);
  } else if (exp10 < 0) {
    out.append("0.");
    out.append(static_cast<size_t>(-exp10 - 1), '0');
    out.append(digits);
  } else {
    const size_t int_len = static_cast<size_t>(exp10) + 1;
    if (digits.size() <= int_len) {
      out.append(digits);
      out.append(int_len - digits.size(), '0');
      out.append(".0");
    } else {
      out.append(digits, 0, int_len);
      out.push_back('.');
      out.append(digits, int_len, std::string::npos);
    }
  }
  return out;
}

std::string str(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::string:
      return value.get_ref<const std::string&>();
    case nlohmann::json::value_t::boolean:
      return value.get<bool>() ? "True" : "False";
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded:
      return "None";
    case nlohmann::json::value_t::number_integer:
      return std::to_string(value.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned:
      return std::to_string(value.get<uint64_t>());
    case nlohmann::json::value_t::number_float:
      return float_repr(value.get<double>());
    case nlohmann::json::value_t::array:
    case nlohmann::json::value_t::object:
      return container_repr(value, 0);
    case nlohmann::json::value_t::binary:
      return "b''";
  }
  return "None";
}

std::string repr(const nlohmann::json& value) { return repr_at(value, 0); }

bool is_space(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

std::string_view strip(std::string_view text) {
  size_t begin = 0;
  while (begin < text.size()) {
    char32_t cp = 0;
    size_t len = decode_utf8(text, begin, &cp);
    if (len == 0 || !is_space(cp)) break;
    begin += len;
  }
  size_t end = text.size();
  while (end > begin) {
    // Step back over continuation bytes to the start of the last code point (at most 3).
    size_t start = end - 1;
    while (start > begin && end - start < 4 &&
           (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) {
      --start;
    }
    char32_t cp = 0;
    size_t len = decode_utf8(text, start, &cp);
    if (len != end - start || !is_space(cp)) break;
    end = start;
  }
  return text.substr(begin, end - begin);
}

bool truthy(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded:
      return false;
    case nlohmann::json::value_t::boolean:
      return value.get<bool>();
    case nlohmann::json::value_t::number_integer:
      return value.get<int64_t>() != 0;
    case nlohmann::json::value_t::number_unsigned:
      return value.get<uint64_t>() != 0;
    case nlohmann::json::value_t::number_float:
      return value.get<double>() != 0.0;  // NaN is truthy in Python too
    case nlohmann::json::value_t::string:  // json::empty() is false for every string
      return !value.get_ref<const std::string&>().empty();
    case nlohmann::json::value_t::array:
    case nlohmann::json::value_t::object:
    case nlohmann::json::value_t::binary:
      return !value.empty();
  }
  return false;
}

namespace {


// str.upper() for ASCII, Latin-1, Greek and basic Cyrillic (0 = no single-code-point mapping).
char32_t upper_cp(char32_t c) {
  if (c >= 'a' && c <= 'z') return c - 0x20;
  if (c < 0x80) return c;
  if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 0x20;
  if (c == 0xFF) return 0x178;
  if (c == 0xB5) return 0x39C;
  if ((c >= 0x3B1 && c <= 0x3C1) || (c >= 0x3C3 && c <= 0x3CB)) return c - 0x20;
  if (c == 0x3C2) return 0x3A3;
  if (c == 0x3AC) return 0x386;
  if (c >= 0x3AD && c <= 0x3AF) return c - 0x25;
  if (c == 0x3CC) return 0x38C;
  if (c == 0x3CD || c == 0x3CE) return c - 0x3F;
  if (c >= 0x430 && c <= 0x44F) return c - 0x20;
  if (c >= 0x450 && c <= 0x45F) return c - 0x50;
  return c;
}

char32_t lower_cp(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 0x20;
  if (c < 0x80) return c;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 0x20;
  if ((c >= 0x391 && c <= 0x3A1) || (c >= 0x3A3 && c <= 0x3AB)) return c + 0x20;
  if (c == 0x386) return 0x3AC;
  if (c >= 0x388 && c <= 0x38A) return c + 0x25;
  if (c == 0x38C) return 0x3CC;
  if (c == 0x38E || c == 0x38F) return c + 0x3F;
  if (c >= 0x410 && c <= 0x42F) return c + 0x20;
  if (c >= 0x400 && c <= 0x40F) return c + 0x50;
  return c;
}

template <typename Map>
std::string map_case(std::string_view text, Map map, bool upper) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    char32_t cp = 0;
    const size_t len = decode_utf8(text, pos, &cp);
    if (len == 0) {  // not UTF-8: copy the byte
      out.push_back(text[pos++]);
      continue;
    }
    if (upper && cp == 0xDF) {
      out.append("SS");  // the one expansion in these ranges
    } else {
      utf8::append(map(cp), &out);
    }
    pos += len;
  }
  return out;
}

}  // namespace

std::string upper(std::string_view text) { return map_case(text, upper_cp, true); }

std::string lower(std::string_view text) { return map_case(text, lower_cp, false); }

std::vector<Item> dictsort(const nlohmann::json& object) {
  std::vector<std::pair<std::string, Item>> keyed;
  if (object.is_object()) {
    keyed.reserve(object.size());
    for (auto it = object.begin(); it != object.end(); ++it) {
      keyed.emplace_back(lower(it.key()), Item{&it.key(), &it.value()});
    }
  }
  // Python compares str by code point; UTF-8 byte order is the same order.
  std::stable_sort(keyed.begin(), keyed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Item> items;
  items.reserve(keyed.size());
  for (auto& k : keyed) items.push_back(k.second);
  return items;
}

const nlohmann::json* get_item(const nlohmann::json& value, std::string_view key) {
  if (!value.is_object()) return nullptr;
  auto it = value.find(key);
  return it == value.end() ? nullptr : &*it;
}

bool iterate_as_strings(const nlohmann::json& value, std::vector<std::string>* out) {
  if (value.is_array()) {
    for (const auto& item : value) out->push_back(str(item));
    return true;
  }
  if (value.is_object()) {
    for (auto it = value.begin(); it != value.end(); ++it) out->push_back(it.key());
    return true;
  }
  if (value.is_string()) {
    const auto& s = value.get_ref<const std::string&>();
    for (size_t pos = 0; pos < s.size();) {
      char32_t cp = 0;
      size_t len = decode_utf8(s, pos, &cp);
      if (len == 0) len = 1;
      out->push_back(s.substr(pos, len));
      pos += len;
    }
    return true;
  }
  return false;
}

}  // namespace ge::chat::py
