#!/bin/sh
# Builds dev/cuda/bench_decode against the static libraries of a -DGE_CUDA=ON build directory
# (default build-cuda): dev/cuda/build_bench.sh [build-dir]. The binary lands in that directory.
set -e
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build-cuda}
nvcc -O3 -std=c++20 -gencode=arch=compute_90a,code=sm_90a -I"$ROOT/src" "$ROOT/dev/cuda/bench_decode.cu" \
  "$BUILD/libge_backend_cuda.a" "$BUILD/libge_quant.a" "$BUILD/libge_core.a" -lcublasLt -o "$BUILD/bench_decode"
echo "built $BUILD/bench_decode"
