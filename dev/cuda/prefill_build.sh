#!/bin/sh
# Builds dev/cuda/prefill_bench (GEMM / dequantize / attention lab) and dev/cuda/prefill_profile (per-op
# time of one whole-model prefill pass) against the static libraries of a -DGE_CUDA=ON build directory
# (default build-cuda-prefill): dev/cuda/prefill_build.sh [build-dir]. The binaries land in that directory.
set -e
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build-cuda-prefill}
cmake --build "$BUILD" -j2 --target ge_model ge_backend ge_backend_cuda ge_backend_cpu ge_sampling ge_formats ge_quant ge_core
nvcc -O3 -std=c++20 -gencode=arch=compute_90a,code=sm_90a -I"$ROOT/src" "$ROOT/dev/cuda/prefill_bench.cu" \
  "$BUILD/libge_backend_cuda.a" "$BUILD/libge_quant.a" "$BUILD/libge_core.a" -lcublasLt -o "$BUILD/prefill_bench"
echo "built $BUILD/prefill_bench"
nvcc -O3 -std=c++20 -gencode=arch=compute_90a,code=sm_90a -I"$ROOT/src" "$ROOT/dev/cuda/prefill_profile.cc" \
  -Xlinker --start-group "$BUILD/libge_model.a" "$BUILD/libge_backend.a" "$BUILD/libge_backend_cuda.a" \
  "$BUILD/libge_backend_cpu.a" "$BUILD/libge_sampling.a" "$BUILD/libge_formats.a" "$BUILD/libge_quant.a" \
  "$BUILD/libge_core.a" -Xlinker --end-group -lcublasLt -lpthread -o "$BUILD/prefill_profile"
echo "built $BUILD/prefill_profile"
