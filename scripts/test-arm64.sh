#!/usr/bin/env bash
# Builds kernels/ and its tests (tests/kernels/*.cc) for ARM64 (aarch64) with
# Debian's cross compiler and runs them under qemu-user: proof that the
# portable scalar path builds and passes there. The x86 files compile to
# nothing on aarch64 and the AVX2 / AVX-512 cases skip themselves.
#
# Not Bazel: plain compiler calls into a build folder outside the tree,
# ${TAI_ARM64_BUILD:-${TMPDIR:-/tmp}/tinyai-arm64}. GoogleTest is built from
# Debian's source tree /usr/src/googletest (package googletest) once and
# reused. Installs what is missing (as root, Debian 12). Ends with
# "arm64: N passed, M failed, K skipped"; exit status non-zero if anything
# fails to build or any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

PKGS=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user googletest)

. "$root/scripts/lib/apt.sh"
apt_ensure arm64 "${PKGS[@]}"

CC=aarch64-linux-gnu-gcc
CXX=aarch64-linux-gnu-g++
SYSROOT=/usr/aarch64-linux-gnu
GTEST_SRC=/usr/src/googletest/googletest
for f in "$GTEST_SRC/src/gtest-all.cc" "$GTEST_SRC/src/gtest_main.cc"; do
  [ -f "$f" ] || { echo "arm64: $f missing (package googletest)" >&2; exit 1; }
done

WARN=(-O2 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread)
CFLAGS=("${WARN[@]}" -std=c11 -I "$root")
CXXFLAGS=("${WARN[@]}" -std=c++17 -I "$root" -isystem "$GTEST_SRC/include")

build="${TAI_ARM64_BUILD:-${TMPDIR:-/tmp}/tinyai-arm64}"
case "$build" in
  "$root"|"$root"/*) echo "arm64: build folder $build is inside the repository" >&2; exit 1 ;;
esac
mkdir -p "$build/gtest" "$build/kernels" "$build/tests" "$build/out"
t0=$(date +%s)

# GoogleTest, once per build folder (rebuilt if the installed sources change).
gtest_lib="$build/gtest/libgtest.a"
if [ ! -f "$gtest_lib" ] || [ "$GTEST_SRC/src/gtest.cc" -nt "$gtest_lib" ]; then
  echo "arm64: building GoogleTest from $GTEST_SRC"
  "$CXX" "${WARN[@]}" -std=c++17 -isystem "$GTEST_SRC/include" -I "$GTEST_SRC" \
    -c "$GTEST_SRC/src/gtest-all.cc" -o "$build/gtest/gtest-all.o"
  "$CXX" "${WARN[@]}" -std=c++17 -isystem "$GTEST_SRC/include" -I "$GTEST_SRC" \
    -c "$GTEST_SRC/src/gtest_main.cc" -o "$build/gtest/gtest_main.o"
  rm -f "$gtest_lib" "$build/gtest/libgtest_main.a"
  aarch64-linux-gnu-ar rcs "$build/gtest/libgtest_main.a" "$build/gtest/gtest_main.o"
  aarch64-linux-gnu-ar rcs "$gtest_lib" "$build/gtest/gtest-all.o"
fi

# kernels/: every .c file, always rebuilt (a few seconds).
echo "arm64: building kernels/"
rm -f "$build/kernels/"*.o "$build/kernels/libkernels.a"
for src in kernels/*.c; do
  "$CC" "${CFLAGS[@]}" -c "$src" -o "$build/kernels/$(basename "$src" .c).o"
done
aarch64-linux-gnu-ar rcs "$build/kernels/libkernels.a" "$build/kernels/"*.o

# tests/kernels/: one binary per test file.
tests=()
for src in tests/kernels/*.cc; do
  name=$(basename "$src" .cc)
  echo "arm64: building $name"
  "$CXX" "${CXXFLAGS[@]}" "$src" -o "$build/tests/$name" \
    "$build/kernels/libkernels.a" "$build/gtest/libgtest_main.a" "$gtest_lib" -lm
  tests+=("$name")
done
t1=$(date +%s)
echo "arm64: built in $((t1 - t0)) s; running ${#tests[@]} test binaries under qemu-aarch64"

# Each binary's cases are counted from its own result lines ("[       OK ]",
# "[  FAILED  ]", "[  SKIPPED ]" followed by a time); a binary that exits
# non-zero with no failed case (a crash, a timeout) counts as one failure.
passed=0 failed=0 skipped=0 bad=()
for name in "${tests[@]}"; do
  log="$build/out/$name.log"
  s=$(date +%s)
  rc=0
  timeout "${TAI_ARM64_TIMEOUT:-3600}" qemu-aarch64 -L "$SYSROOT" "$build/tests/$name" \
    --gtest_output="xml:$build/out/$name.xml" >"$log" 2>&1 || rc=$?
  p=$(grep -cE '^\[       OK \] .* \([0-9]+ ms\)$' "$log" || true)
  f=$(grep -cE '^\[  FAILED  \] .* \([0-9]+ ms\)$' "$log" || true)
  k=$(grep -cE '^\[  SKIPPED \] .* \([0-9]+ ms\)$' "$log" || true)
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + k))
  if [ "$rc" -ne 0 ]; then
    bad+=("$name")
    echo "arm64: $name FAILED (exit $rc, $(($(date +%s) - s)) s): $p passed, $f failed, $k skipped; log $log"
    grep -E '^\[  FAILED  \] .* \([0-9]+ ms\)$' "$log" | head -20 || true
    tail -5 "$log"
  else
    echo "arm64: $name ok ($(($(date +%s) - s)) s): $p passed, $k skipped"
  fi
done

echo "arm64: ran in $(($(date +%s) - t1)) s; logs and XML in $build/out"
[ ${#bad[@]} -eq 0 ] || echo "arm64: failing binaries: ${bad[*]}"
echo "arm64: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ ${#bad[@]} -eq 0 ]
