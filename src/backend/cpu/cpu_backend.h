// The CPU backends. "cpu" repacks weights into SIMD tiles and runs int8-activation matmuls with
// kernels chosen at run time (AVX-512 VNNI, AVX2, portable); "cpu-ref" is the plain reference.
#pragma once

#include "backend/backend.h"
#include "backend/cpu/cpu_kernels.h"

namespace ge {

// The packed SIMD backend on the best instruction set of this processor (GE_CPU_ISA caps it).
Backend* create_cpu_backend(int n_threads);
// The same backend on a given instruction set (tests run every supported one; CHECKs support)
// and activation precision for prefill matmuls (decode always uses int16).
Backend* create_cpu_backend_isa(int n_threads, cpu::CpuIsa isa,
                                cpu::CpuActivations acts = cpu::default_cpu_activations());
// The reference backend (plain loops, weights decoded from the source view).
Backend* create_cpu_reference_backend(int n_threads);

}  // namespace ge
