// The AVX-512 VNNI kernel table: the same 256-bit kernels with vpdpbusd int8 dots and 32 vector
// registers (Zen 4 and Ice Lake and later). Used only when the processor reports VNNI + BW + VL.
#include "backend/cpu/cpu_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define GE_SIMD __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#define GE_SIMD_VNNI 1

namespace ge::cpu {
namespace avx512 {
#include "backend/cpu/cpu_kernels_x86.inc"
}  // namespace avx512

const CpuKernels& avx512_vnni_kernels() {
  using namespace avx512;
  static const CpuKernels k{CpuIsa::kAvx512Vnni, quantize_acts, quantize_acts16, gemm_q, gemm_q16, gemm_rows16, gemm_f32, dot, axpy, rms_norm_row,
                            gelu_tanh_mul, add, scale, softcap, exp_sum, attn_scores,
                            attn_accumulate};
  return k;
}

}  // namespace ge::cpu

#else

namespace ge::cpu {
const CpuKernels& avx512_vnni_kernels() { return portable_kernels(); }
}  // namespace ge::cpu

#endif
