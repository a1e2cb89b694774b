#!/usr/bin/env bash
# Builds the CPU backend in BUILD (default build-bench, Release) and the dev programs beside it.
#   dev/cpu/run_bench.sh [--quick] [--reps N]   kernel bench (bandwidth, 270M matmul shapes)
#   dev/cpu/run_bench.sh --check MODEL          real-checkpoint packing / activation-error check
# The machine is shared: the bench prints medians of repeated runs.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${BUILD:-$root/build-bench}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGE_BUILD_TESTS=OFF > /dev/null
cxx=("${CXX:-c++}" -O2 -std=c++20 -Wall -Wextra -Werror -Wno-maybe-uninitialized -Wno-restrict -I "$root/src")
if [[ "${1:-}" == "--check" ]]; then
  cmake --build "$build" -j2 --target ge_model ge_backend > /dev/null
  "${cxx[@]}" "$root/dev/cpu/check_model.cc" "$build/libge_model.a" "$build/libge_formats.a" \
    "$build/libge_backend.a" "$build/libge_backend_cpu.a" "$build/libge_quant.a" "$build/libge_core.a" \
    -lpthread -o "$build/cpu_check_model"
  exec "$build/cpu_check_model" "${2:?model path}"
fi
cmake --build "$build" -j2 --target ge_backend > /dev/null
"${cxx[@]}" "$root/dev/cpu/bench.cc" "$build/libge_backend.a" "$build/libge_backend_cpu.a" \
  "$build/libge_quant.a" "$build/libge_core.a" -lpthread -o "$build/cpu_bench"
exec "$build/cpu_bench" "$@"
