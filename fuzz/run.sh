#!/usr/bin/env bash
# Runs TinyAI's libFuzzer targets (fuzz/build.sh builds them) for SECONDS
# each on their seed corpora (fuzz/corpus/<target>/, kept as they are; what
# the fuzzer finds accumulates in fuzz/out/corpus-<target>/), and prints
# per target the executions and whether it crashed. A crash leaves its
# input as fuzz/out/crash-<target>-* and makes the exit status 1.
#   bash fuzz/run.sh SECONDS [gguf tmai tokenizer chat request]
# FUZZ_SEED: libFuzzer's seed (default 0: a new one each run; CI fixes it,
# so that a run finds what the same run found before).
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
targets=("$@")
[ "${#targets[@]}" -eq 0 ] && targets=(gguf tmai tokenizer chat request)
rc=0
for t in "${targets[@]}"; do
  bin=fuzz/out/fuzz_$t
  [ -x "$bin" ] || { echo "fuzz: $bin is missing (bash fuzz/build.sh)"; rc=1; continue; }
  work=fuzz/out/corpus-$t
  mkdir -p "$work"
  log=fuzz/out/$t.log
  "$bin" -max_total_time="$secs" -seed="${FUZZ_SEED:-0}" -timeout=10 -rss_limit_mb=2560 -max_len=400000 \
    -print_final_stats=1 -artifact_prefix="fuzz/out/crash-$t-" "$work" "fuzz/corpus/$t" \
    > "$log" 2>&1
  st=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  if [ "$st" -eq 0 ]; then
    echo "fuzz: $t: ${runs:-?} executions in ${secs}s, no crash"
  else
    echo "fuzz: $t: CRASH after ${runs:-?} executions (exit $st): $(ls fuzz/out/crash-$t-* 2>/dev/null | head -1)"
    grep -m3 -E "ERROR|runtime error|SUMMARY" "$log" | sed 's/^/fuzz:   /'
    rc=1
  fi
done
exit $rc
