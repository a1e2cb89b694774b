// Quantizers: fp32 rows to the encodings of quant_type.h. They feed `gemma quantize`, GGUF export
// of test models and CPU activation quantization; each is the inverse of its reference decoder.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "quant/quant_type.h"

namespace ge {

// rows × cols fp32 (row-major) → rows × row_bytes(type, cols) bytes at dst.
//   F32, F16, BF16: plain conversion (round to nearest even; fp16 overflow becomes ±inf).
//   Q8_0, Q4_0, Q5_0: ggml's reference quantizers, bit for bit (gguf.quants produces the same).
//   Q4_K, Q6_K: ggml's reference (non-imatrix) search for sub-block scales and mins, bit for bit.
// Integer encodings reject non-finite input; Q5_K is not supported.
Status quantize_rows(QuantType type, const float* src, int64_t rows, int64_t cols, uint8_t* dst);

// torchao Int4Tensor min-max asymmetric quantization, in the kInt4Group layout of QuantWeight:
// qdata [rows, cols/2] (even k in the low nibble), scale and zero bf16 [cols/group, rows].
// Per group: scale = max(max − min, 1e-6) / 15 (torchao's choice), stored bf16;
// zero = −min / scale, NOT rounded to an integer, stored bf16, so that (q − zero)·scale = q·scale +
// min is torchao's dequantization; q = clamp(round_half_even(x / scale + zero), 0, 15) using the
// stored bf16 scale and zero, so every element decodes within scale/2 of its input unless bf16
// rounding of a large |zero| (a group far from 0 relative to its range) pushes it past the ends.
struct Int4GroupData {
  std::vector<uint8_t> qdata;
  std::vector<uint16_t> scale;
  std::vector<uint16_t> zero;
  int64_t group_size;
};
Result<Int4GroupData> quantize_int4_group_minmax(const float* src, int64_t rows, int64_t cols,
                                                 int64_t group_size);

// Symmetric int8 per group, in the kInt8Group layout: qdata int8 [rows, cols], scale bf16
// [rows, cols/group], zero int8 [rows, cols/group] (all 0, as torchao stores it).
// scale = max(max|x| / 127, FLT_MIN) stored bf16; q = clamp(round_half_even(x / scale), −127, 127).
// torchao divides by 127.5 and uses −128 as well; 127 keeps |x − q·scale| ≤ scale/2 for every
// element even after the scale is rounded to bf16.
struct Int8GroupData {
  std::vector<int8_t> qdata;
  std::vector<uint16_t> scale;
  std::vector<int8_t> zero;
  int64_t group_size;
};
Result<Int8GroupData> quantize_int8_group_symmetric(const float* src, int64_t rows, int64_t cols,
                                                    int64_t group_size);

// The weight view over quantized group data (pointers into `data`, which must outlive it).
QuantWeight int4_group_weight(const Int4GroupData& data, int64_t rows, int64_t cols);
QuantWeight int8_group_weight(const Int8GroupData& data, int64_t rows, int64_t cols);

}  // namespace ge
