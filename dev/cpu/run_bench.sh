#!/usr/bin/env bash
# Builds the CPU backend in BUILD (default build-bench, Release) and the kernel bench beside it, then
# runs it: dev/cpu/run_bench.sh [--quick] [--reps N]. The machine is shared: results are medians.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${BUILD:-$root/build-bench}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGE_BUILD_TESTS=OFF > /dev/null
cmake --build "$build" -j2 --target ge_backend > /dev/null
"${CXX:-c++}" -O2 -std=c++20 -Wall -Wextra -Werror -I "$root/src" "$root/dev/cpu/bench.cc" \
  "$build/libge_backend.a" "$build/libge_backend_cpu.a" "$build/libge_quant.a" "$build/libge_core.a" \
  -lpthread -o "$build/cpu_bench"
"$build/cpu_bench" "$@"
