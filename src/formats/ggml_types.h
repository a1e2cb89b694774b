// The ggml tensor types as GGUF stores them (on-disk ids), their block layouts, and the checked
// byte-size computation every GGUF tensor goes through before its data is touched.
#pragma once

#include <cstdint>

#include "core/status.h"

namespace ge {

// On-disk ids. Gaps are types ggml removed (4, 5: Q4_2/Q4_3; 31-33, 36-38: repacked layouts that
// are never written to files any more); those ids are rejected like unknown ones.
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  kMXFP4 = 39,
  kNVFP4 = 40,
  kQ1_0 = 41,
};

inline constexpr uint32_t ggml_id(GgmlType type) { return static_cast<uint32_t>(type); }

// ggml allows at most 4 dimensions (ne[0..3]).
inline constexpr int kGgmlMaxDims = 4;

struct GgmlTypeInfo {
  const char* name;      // as ggml spells it: "Q4_K", "BF16"
  uint32_t block_elems;  // elements per block (1 for plain scalars)
  uint32_t block_bytes;  // bytes per block
};

// Null for unknown or removed ids.
const GgmlTypeInfo* ggml_type_info(uint32_t type);
// "Q4_K"; "unknown" for unknown or removed ids.
const char* ggml_type_name(uint32_t type);

// Bytes of one row of `ne0` elements: ne0 must be positive and a multiple of the block.
Result<uint64_t> ggml_row_bytes(uint32_t type, int64_t ne0);

// Bytes of a tensor with dims ne[0..n_dims) in ggml order (ne[0] is the contiguous row length).
// Rejects unknown/removed types, n_dims outside [1, 4], negative dims, ne[0] not a multiple of
// the block, and any element count or byte size that does not fit in int64 (checked before each
// product, so wrapped intermediate values can never pass). A zero dim gives 0 bytes.
Result<uint64_t> ggml_tensor_nbytes(uint32_t type, const int64_t* ne, int n_dims);

}  // namespace ge
