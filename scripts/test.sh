#!/usr/bin/env bash
# The test command: set up, build (Release, an ASan+UBSan build of the input parsers, and the CUDA
# backend where nvcc exists), fetch the default model, run every test that needs no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_deps.sh
scripts/build.sh
export GE_TEST_MODEL="$(scripts/fetch_model.sh)"
export PATH="$PWD/.venv/bin:$PATH"

# Release build: everything except GPU tests.
ctest --test-dir build --output-on-failure -j"$(nproc)" -LE gpu

# The gemma command end to end (tiny models, the real model, bad flags and files).
.venv/bin/python -m pytest -q tests/cli
# gemma serve through the official OpenAI client (tiny models in tests/server/data; GE_TEST_MODEL).
GEMMA_BIN="$PWD/build/gemma" .venv/bin/python -m pytest -q tests/server

# Sanitizer build of the parts that read untrusted input (model files, tokenizer, chat, requests).
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGE_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$(nproc)" --target ge_core_tests ge_formats_tests ge_quant_tests ge_tokenizer_tests ge_chat_tests ge_server_tests
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$(nproc)" -L 'core|formats|quant|tokenizer|chat|server'

# The CUDA backend must compile and link wherever nvcc exists (its tests, label gpu, run on a GPU machine).
nvcc_bin="$(command -v nvcc || true)"
[ -n "$nvcc_bin" ] || { [ -x /usr/local/cuda/bin/nvcc ] && nvcc_bin=/usr/local/cuda/bin/nvcc; }
if [ -n "$nvcc_bin" ]; then
  cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DGE_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc_bin" \
    -DCMAKE_CUDA_ARCHITECTURES=90a >/dev/null
  cmake --build build-cuda -j"$(nproc)" --target ge_gpu_tests gemma
  echo "CUDA backend: compiled and linked (tests need a GPU: ctest --test-dir build-cuda -L gpu)"
else
  echo "CUDA backend: nvcc not found, not compiled"
fi
