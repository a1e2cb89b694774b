// K-quant (Q4_K, Q5_K, Q6_K) raw blocks to bf16 rows for the prefill GEMM: a host-only entry point
// for tests and the kernel lab (the backend calls the WeightView form in dequantize_kquant.cuh).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "quant/quant_type.h"

namespace ge::cuda {

// Rows [row0, row0 + n_rows) of `rows` contiguous rows of Q4_K / Q5_K / Q6_K blocks (cols a multiple
// of 256) decoded and rounded to bf16 (round to nearest even), row-major [n_rows, cols], as raw bf16
// bits. raw and out must be 16-byte aligned. cudaErrorInvalidValue for other types, shapes or
// alignments.
cudaError_t dequantize_kquant_bf16_lab(QuantType type, const uint8_t* raw, int64_t rows, int64_t cols, int64_t row0,
                                       int64_t n_rows, uint16_t* out, int num_sms, cudaStream_t stream);

}  // namespace ge::cuda
