#!/usr/bin/env bash
# The whole TinyAI test suite: installs what is missing, then every GoogleTest
# target through Bazel. With --asan, the same suite under ASan + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${1:-}" = "--asan" ]; then
  exec bazel test --config=asan //...
fi
exec bazel test //...
