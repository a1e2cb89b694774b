#!/bin/bash
# One device run: GPU facts, the gpu test suite, the decode benchmark, compute-sanitizer memcheck
# over the suite and the SASS of the GEMV kernels, logs under $OUT. Run from the repository root with
# a GE_CUDA build in build-cuda (tests) and build-cuda/bench_decode (dev/cuda/build_bench.sh).
#   dev/cuda/run_device.sh [tests] [bench] [memcheck] [sass]   (default: all four)
set -u
OUT=${OUT:-/tmp/ge-cuda-out}
mkdir -p "$OUT"
B=build-cuda
export PATH=$PATH:/usr/local/cuda/bin
steps=${*:-tests bench memcheck sass}
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv
  echo "compute-sanitizer: $(command -v compute-sanitizer || echo missing)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null) date: $(date -u +%F)"
} > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
for step in $steps; do
  case $step in
    tests)
      timeout 240 "$B/tests/ge_gpu_tests" > "$OUT/tests.log" 2>&1
      echo "tests rc=$?"
      grep -E "^\[  (PASSED|FAILED) |^\[  FAILED  \]|tests ran|worst|Failure|error" "$OUT/tests.log" | head -60 ;;
    bench)
      timeout 200 "$B/bench_decode" --out "$OUT/bench.txt" > "$OUT/bench.log" 2>&1
      echo "bench rc=$?"
      cat "$OUT/bench.log" | head -120 ;;
    memcheck)
      timeout 260 compute-sanitizer --tool memcheck --leak-check full --error-exitcode 99 \
        "$B/tests/ge_gpu_tests" ${MEMCHECK_FILTER:+--gtest_filter=$MEMCHECK_FILTER} > "$OUT/memcheck.log" 2>&1
      echo "memcheck rc=$?"
      grep -E "ERROR SUMMARY|LEAK SUMMARY|^\[  (PASSED|FAILED) |tests ran|Invalid|========= [A-Z]" "$OUT/memcheck.log" | head -30 ;;
    sass)
      cuobjdump -sass "$B/bench_decode" > "$OUT/sass_all.txt" 2>&1
      awk '/Function : .*gemv_tiled_kernelILi4ELi0ELi1ELb1/,/\.L_x_[0-9]+:$/' "$OUT/sass_all.txt" | head -2000 > "$OUT/sass_gemv_q4.txt"
      grep -oE "HMMA[.A-Z0-9]*|LDG[.A-Z0-9]*|LDS[.A-Z0-9]*|LOP3[.A-Z]*|HADD2[.A-Z0-9]*|HFMA2[.A-Z0-9]*|STL|LDL" "$OUT/sass_gemv_q4.txt" | sort | uniq -c
      rm -f "$OUT/sass_all.txt" ;;
  esac
done
