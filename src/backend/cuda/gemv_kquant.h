// K-quant (Q4_K, Q5_K, Q6_K) decode GEMV on raw ggml block rows: a host-only entry point for tests
// and the kernel lab, next to the WeightView launcher the CUDA backend uses (gemv_kquant.cuh).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "quant/quant_type.h"

namespace ge::cuda {

// Kernel configurations: variant 0 is the production choice (rows per warp and K split picked from
// the shape), the others fix them; gemv_kquant_lab_variants() - 1 is the kernel used before the
// K-quant kernels (generic per-element decode, or the exact-decode Q4_K kernel).
int gemv_kquant_lab_variants();
const char* gemv_kquant_lab_variant_name(int variant);

// y [m, rows] = x [m, cols] · wᵀ for w = `rows` rows of Q4_K / Q5_K / Q6_K blocks (cols a multiple
// of 256, rows contiguous) in device memory; x, y device fp32. Misaligned pointers take the
// generic kernel. cudaErrorInvalidValue for other types or shapes.
cudaError_t gemv_kquant_lab(QuantType type, const uint8_t* raw, int64_t rows, int64_t cols, const float* x,
                            int64_t m, float* y, int variant, int num_sms, cudaStream_t stream);

// false when GE_CUDA_KQUANT=0 (benchmarks of the kernels used before: generic decode paths).
bool kquant_kernels_enabled();

}  // namespace ge::cuda
