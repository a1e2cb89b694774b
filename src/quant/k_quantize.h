// Block quantizers for the ggml k-quants (256-element super-blocks), used by quantize_rows.
// Internal to src/quant: callers go through quantize_rows, which checks shapes and finiteness.
#pragma once

#include <cstdint>

namespace ge {

// x[256] → one 144-byte Q4_K block (eight 32-element sub-blocks, 6-bit scales and mins).
void quantize_block_q4_k(const float* x, uint8_t* out);

// x[256] → one 210-byte Q6_K block (sixteen 16-element sub-blocks, int8 scales).
void quantize_block_q6_k(const float* x, uint8_t* out);

}  // namespace ge
