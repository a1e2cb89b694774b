#!/usr/bin/env bash
# The main job: set up, build, fetch the default model and generate from a default prompt.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_deps.sh
scripts/build.sh
model="$(scripts/fetch_model.sh)"
prompt="${1:-Explain in three sentences why the sky is blue.}"
exec build/gemma run -m "$model" -p "$prompt" -n "${MAX_NEW_TOKENS:-128}" --temp 0
