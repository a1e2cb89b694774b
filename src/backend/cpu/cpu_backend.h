// The CPU backends. "cpu" repacks weights into SIMD tiles and runs int8-activation matmuls with
// kernels chosen at run time (AVX-512 VNNI, AVX2, portable); "cpu-ref" is the plain reference.
#pragma once

#include <cstdint>
#include <string>

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

namespace cpu {

// Where the "cpu" backend keeps GGUF Q4_0 / Q8_0 weights: repacked into SIMD tiles (a copy, the
// faster layout) or read in place from the file mapping (no copy; other types are always repacked).
enum class WeightPlacement : uint8_t { kRepack, kInPlace };

// MemAvailable from /proc/meminfo in bytes; 0 when unknown.
uint64_t mem_available_bytes();
// In place when asked; else in place when a packed copy of `packed_bytes` and the source pages it
// is read from would not both fit in `available` less 1 GiB; else repack (faster). Unknown
// availability (0) repacks.
WeightPlacement choose_weight_placement(uint64_t packed_bytes, uint64_t available, bool force_in_place);
// Sets the placement for weights packed from now on; false (and nothing set) unless `b` is "cpu".
bool set_weight_placement(Backend& b, WeightPlacement p);
// Chooses from MemAvailable and sets it on a "cpu" backend. Returns the one-line note to print
// when weights go in place (why, and that it is the slower layout); "" when they are repacked (the
// default, silent so that command output stays as it was) and for other backends.
std::string apply_weight_policy(Backend& b, uint64_t weight_bytes, bool force_in_place);

}  // namespace cpu
}  // namespace ge
