// Overflow-safe size arithmetic for parsers: every count, size and offset read from a file goes
// through these before it is used to index memory.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ge {

[[nodiscard]] inline bool add_ok(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_add_overflow(a, b, out);
}
[[nodiscard]] inline bool mul_ok(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}
// Rounds `a` up to a multiple of `align` (align > 0).
[[nodiscard]] inline bool pad_ok(uint64_t a, uint64_t align, uint64_t* out) {
  if (align == 0) return false;
  uint64_t rem = a % align;
  if (rem == 0) {
    *out = a;
    return true;
  }
  return add_ok(a, align - rem, out);
}
// True when [offset, offset + len) lies inside [0, total).
[[nodiscard]] inline bool range_ok(uint64_t offset, uint64_t len, uint64_t total) {
  uint64_t end;
  return add_ok(offset, len, &end) && end <= total;
}

}  // namespace ge
