// UTF-8 helpers for the tokenizer: strict decoding of one code point (no overlongs, surrogates or
// values past U+10FFFF) and replacement of invalid sequences with U+FFFD.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ge::utf8 {

inline constexpr char32_t kReplacement = 0xFFFD;
inline constexpr std::string_view kReplacementUtf8 = "\xEF\xBF\xBD";

// Result of looking at the bytes at one position.
struct Decoded {
  enum class Kind {
    kValid,       // `len` bytes form the code point `cp`
    kInvalid,     // `len` bytes (>= 1) are the maximal ill-formed subpart; they can never be valid
    kIncomplete,  // the `len` bytes left are a valid but truncated prefix of a sequence
  };
  Kind kind;
  size_t len;
  char32_t cp;
};

// Decodes the sequence starting at s[0] (s must be non-empty). Ill-formed input is split the way
// the Unicode standard recommends ("maximal subpart"), the same as Python's errors="replace".
Decoded decode(std::string_view s);

// Appends the UTF-8 encoding of `cp` (a scalar value) to `out`.
void append(char32_t cp, std::string* out);

// Appends `in` to `out` with every ill-formed subpart replaced by U+FFFD. With `final` false, a
// truncated sequence at the end is left unconsumed; returns the number of bytes consumed.
size_t append_sanitized(std::string_view in, bool final, std::string* out);

// True when `s` is entirely well-formed UTF-8.
bool is_valid(std::string_view s);

// Number of code points in well-formed `s` (ill-formed bytes count one each).
size_t count_code_points(std::string_view s);

}  // namespace ge::utf8
