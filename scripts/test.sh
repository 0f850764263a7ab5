#!/usr/bin/env bash
# The whole TinyAI test suite: installs what is missing, then every GoogleTest
# target through Bazel, after the concurrent parts (weight cache, I/O engines,
# the mapped model's descriptors read across threads, a load in the background,
# the server's connection and engine threads) under ThreadSanitizer. With
# --asan, the whole suite under ASan + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${1:-}" = "--asan" ]; then
  exec bazel test --config=asan //...
fi
# TSan first: the normal run last leaves bazel-testlogs pointing at it.
tsan_rc=0
bazel test --config=tsan //tests/cache/... //tests/io/... //tests/mapped:descriptor_threads_test //tests/mem:memory_test //tests/model:background_load_test //tests/server:server_threads_test || tsan_rc=$?
rc=0
bazel test //... || rc=$?
[ "$rc" -ne 0 ] && exit "$rc"
exit "$tsan_rc"
