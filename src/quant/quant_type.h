// The weight encodings the engine understands, and the logical quantized weight every loader
// produces and every backend packs (one checkpoint, every backend).
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace ge {

enum class QuantType : uint8_t {
  kF32,
  kF16,
  kBF16,
  kQ4_0,  // ggml: 32 weights, fp16 d, 16 B nibbles; w = (q - 8) * d
  kQ5_0,  // ggml: 32 weights, fp16 d, 4 B high bits, 16 B nibbles; w = (q - 16) * d
  kQ8_0,  // ggml: 32 weights, fp16 d, 32 int8; w = q * d
  kQ4_K,  // ggml k-quant: 256 weights, 144 B
  kQ5_K,  // ggml k-quant: 256 weights, 176 B
  kQ6_K,  // ggml k-quant: 256 weights, 210 B
  kInt4Group,  // torchao Int4Tensor: asymmetric, group along K, bf16 scale and zero
  kInt8Group,  // torchao IntxUnpackedToInt8Tensor: int8 values, bf16 scale, int8 zero
};

const char* quant_type_name(QuantType type);

// For the row-blocked encodings (floats and ggml blocks): elements and bytes per block.
// Int4Group / Int8Group return {1, 0}: their rows are not self-contained blocks.
struct BlockLayout {
  int64_t block_elems;
  int64_t block_bytes;
};
BlockLayout block_layout(QuantType type);
bool is_row_blocked(QuantType type);  // true for F32..Q6_K

// Bytes of one row of `cols` elements for a row-blocked type; error if cols is not a multiple of
// the block or the size overflows.
Result<uint64_t> row_bytes(QuantType type, int64_t cols);

// A 2-D weight [rows, cols] = HF [out_features, in_features], y = x · Wᵀ. Views memory owned by
// someone else (usually a mapped model file). 1-D tensors are rows = 1.
struct QuantWeight {
  QuantType type = QuantType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  // Row-blocked types: rows × row_bytes(type, cols), row-major.
  // kInt4Group: qdata [rows, cols/2] uint8, even k in the low nibble, values 0..15.
  // kInt8Group: qdata [rows, cols] int8.
  const uint8_t* data = nullptr;
  // kInt4Group / kInt8Group only.
  int64_t group_size = 0;
  // bf16. kInt4Group: [cols/group, rows] (groups first, as torchao stores it).
  //       kInt8Group: [rows, cols/group].
  const uint16_t* scale = nullptr;
  // kInt4Group: bf16 [cols/group, rows], w = (q - zero) * scale. Null means zero = 8.
  // kInt8Group: int8 [rows, cols/group], w = (q - zero) * scale. Null means zero = 0.
  const void* zero = nullptr;

  int64_t num_groups() const { return group_size > 0 ? cols / group_size : 0; }
};

// Validates shape/group invariants of a weight view (does not read the data).
Status validate_weight(const QuantWeight& w);

// Bytes each buffer of a weight view must hold: data, scale and zero (0 where the type has none
// or the pointer is null). Loaders compare these with the bytes present before building the view.
struct WeightBytes {
  uint64_t data = 0;
  uint64_t scale = 0;
  uint64_t zero = 0;
};
// Checked like validate_weight (shape, group invariants, overflow); pointers are not required.
Result<WeightBytes> weight_bytes(const QuantWeight& w);

}  // namespace ge
