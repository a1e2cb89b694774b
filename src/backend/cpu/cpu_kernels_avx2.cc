// The AVX2 + FMA kernel table (int8 dots through vpmaddubsw/vpmaddwd). Compiled for a baseline
// x86-64 target with per-function target attributes, and used only when the processor has AVX2.
#include "backend/cpu/cpu_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define GE_SIMD __attribute__((target("avx2,fma,f16c")))
#define GE_SIMD_VNNI 0

namespace ge::cpu {
namespace avx2 {
#include "backend/cpu/cpu_kernels_x86.inc"
}  // namespace avx2

const CpuKernels& avx2_kernels() {
  using namespace avx2;
  static const CpuKernels k{CpuIsa::kAvx2, quantize_acts, quantize_acts16, gemm_q, gemm_q16, gemm_rows16, gemm_f32, dot, axpy, rms_norm_row,
                            gelu_tanh_mul, add, scale, softcap, exp_sum, attn_scores,
                            attn_accumulate};
  return k;
}

}  // namespace ge::cpu

#else  // not x86: the table falls back to portable code (never selected by detect_cpu_isa)

namespace ge::cpu {
const CpuKernels& avx2_kernels() { return portable_kernels(); }
}  // namespace ge::cpu

#endif
