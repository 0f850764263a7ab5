#!/usr/bin/env bash
# TinyAI's main job: install what is missing, build, and generate text with
# the default model (SmolLM2-135M-Instruct), printing tokens per second and
# peak memory. Extra arguments go to `tinyai generate`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "run: building tinyai (a few minutes the first time)"
# Only what goes wrong is shown: warnings, and on failure the whole log.
noise='^(Extracting Bazel installation|Starting local Bazel server|Loading:|Analyzing:|INFO:|\[[0-9,]+ / [0-9,]+\])'
if ! out=$(bazel build --noshow_progress --show_result=0 //tools:tinyai 2>&1); then
  printf '%s\n' "$out" >&2
  echo "run: the build failed" >&2
  exit 1
fi
printf '%s\n' "$out" | grep -Ev "$noise" || true
model="${TINYAI_CACHE:-$HOME/.cache/tinyai}/SmolLM2-135M-Instruct.Q4_1.gguf"
exec bazel-bin/tools/tinyai generate -m "$model" --chat -p "Explain in two sentences why the sky is blue." -n 96 --temp 0 "$@"
