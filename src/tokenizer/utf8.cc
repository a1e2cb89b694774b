// Strict UTF-8 decoding (Unicode Table 3-7 well-formed byte sequences) and U+FFFD replacement.
#include "tokenizer/utf8.h"

namespace ge::utf8 {
namespace {

bool is_cont(uint8_t b) { return (b & 0xC0) == 0x80; }

}  // namespace

Decoded decode(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  const uint8_t b0 = p[0];
  if (b0 < 0x80) return {Decoded::Kind::kValid, 1, b0};
  size_t need;
  char32_t cp;
  // Allowed range of the second byte depends on the lead (excludes overlongs, surrogates and
  // code points above U+10FFFF); later bytes are plain continuation bytes.
  uint8_t lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {Decoded::Kind::kInvalid, 1, kReplacement};
  }
  for (size_t i = 1; i < need; ++i) {
    if (i >= n) return {Decoded::Kind::kIncomplete, i, kReplacement};
    const uint8_t b = p[i];
    const bool ok = (i == 1) ? (b >= lo && b <= hi) : is_cont(b);
    if (!ok) return {Decoded::Kind::kInvalid, i, kReplacement};
    cp = (cp << 6) | (b & 0x3F);
  }
  return {Decoded::Kind::kValid, need, cp};
}

void append(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t append_sanitized(std::string_view in, bool final, std::string* out) {
  size_t i = 0;
  size_t run_start = 0;  // start of the pending run of valid bytes, copied in one go
  while (i < in.size()) {
    const Decoded d = decode(in.substr(i));
    if (d.kind == Decoded::Kind::kValid) {
      i += d.len;
      continue;
    }
    out->append(in.substr(run_start, i - run_start));
    if (d.kind == Decoded::Kind::kIncomplete && !final) return i;
    out->append(kReplacementUtf8);
    i += d.len;
    run_start = i;
  }
  out->append(in.substr(run_start, i - run_start));
  return i;
}

bool is_valid(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const Decoded d = decode(s.substr(i));
    if (d.kind != Decoded::Kind::kValid) return false;
    i += d.len;
  }
  return true;
}

size_t count_code_points(std::string_view s) {
  size_t i = 0, n = 0;
  while (i < s.size()) {
    i += decode(s.substr(i)).len;
    ++n;
  }
  return n;
}

}  // namespace ge::utf8
