// Run-time instruction-set selection: the build targets baseline x86-64 and picks kernels by
// what the processor reports (GE_CPU_ISA=portable|avx2|avx512vnni caps it, for tests and A/B runs);
// and the default activation precision (GE_CPU_ACTIVATIONS=int8|int16).
#include <cstdlib>
#include <cstring>

#include "backend/cpu/cpu_kernels.h"

namespace ge::cpu {

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kPortable: return "portable";
    case CpuIsa::kAvx2: return "avx2";
    case CpuIsa::kAvx512Vnni: return "avx512vnni";
  }
  return "?";
}

bool cpu_isa_supported(CpuIsa isa) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  switch (isa) {
    case CpuIsa::kPortable: return true;
    case CpuIsa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case CpuIsa::kAvx512Vnni:
      return cpu_isa_supported(CpuIsa::kAvx2) && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
  }
  return false;
#else
  return isa == CpuIsa::kPortable;
#endif
}

CpuIsa detect_cpu_isa() {
  CpuIsa best = CpuIsa::kPortable;
  if (cpu_isa_supported(CpuIsa::kAvx512Vnni)) {
    best = CpuIsa::kAvx512Vnni;
  } else if (cpu_isa_supported(CpuIsa::kAvx2)) {
    best = CpuIsa::kAvx2;
  }
  if (const char* cap = std::getenv("GE_CPU_ISA")) {
    for (CpuIsa isa : {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512Vnni}) {
      if (std::strcmp(cap, cpu_isa_name(isa)) == 0 && static_cast<int>(isa) < static_cast<int>(best)) {
        best = isa;
      }
    }
  }
  return best;
}

const char* cpu_activations_name(CpuActivations acts) {
  return acts == CpuActivations::kInt8 ? "int8" : "int16";
}

CpuActivations default_cpu_activations() {
  if (const char* v = std::getenv("GE_CPU_ACTIVATIONS")) {
    if (std::strcmp(v, "int8") == 0) return CpuActivations::kInt8;
    if (std::strcmp(v, "int16") == 0) return CpuActivations::kInt16;
  }
  return CpuActivations::kInt16;
}

const CpuKernels& kernels_for(CpuIsa isa) {
  GE_CHECK_MSG(cpu_isa_supported(isa), std::string("cpu: this processor cannot run ") + cpu_isa_name(isa));
  switch (isa) {
    case CpuIsa::kAvx512Vnni: return avx512_vnni_kernels();
    case CpuIsa::kAvx2: return avx2_kernels();
    default: return portable_kernels();
  }
}

}  // namespace ge::cpu
