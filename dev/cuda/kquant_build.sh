#!/bin/sh
# Builds dev/cuda/kquant_bench against the static libraries of a -DGE_CUDA=ON build directory
# (default build-cuda): dev/cuda/kquant_build.sh [build-dir]. The binary lands in that directory.
set -e
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build-cuda}
nvcc -O3 -std=c++20 -gencode=arch=compute_90a,code=sm_90a -I"$ROOT/src" "$ROOT/dev/cuda/kquant_bench.cu" \
  "$BUILD/libge_backend_cuda.a" "$BUILD/libge_quant.a" "$BUILD/libge_core.a" -lcublasLt -o "$BUILD/kquant_bench"
echo "built $BUILD/kquant_bench"
