#!/usr/bin/env bash
# Configures and builds the engine (CPU; pass -DGE_CUDA=ON in CMAKE_ARGS for the CUDA backend).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${BUILD_DIR:-build}"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
