#!/usr/bin/env bash
# TinyAI's main job: install what is missing, build, and generate text with
# the default model (SmolLM2-135M-Instruct), printing tokens per second and
# peak memory. Extra arguments go to `tinyai generate`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bazel build //tools:tinyai
model="${TINYAI_CACHE:-$HOME/.cache/tinyai}/SmolLM2-135M-Instruct.Q4_1.gguf"
exec bazel-bin/tools/tinyai generate -m "$model" --chat -p "Explain in two sentences why the sky is blue." -n 96 --temp 0 "$@"
