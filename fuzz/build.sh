#!/usr/bin/env bash
# Builds TinyAI's libFuzzer targets with Debian's clang (outside Bazel: the
# sanitizer-and-fuzzer build of the readers and the tokenizer, and the
# kernels they call, in fuzz/out/). Usage: bash fuzz/build.sh
#   fuzz/out/fuzz_gguf, fuzz_tmai  the model-file readers (and tokenizer metadata)
#   fuzz/out/fuzz_tokenizer        encode/decode of arbitrary bytes, a real vocabulary
#   fuzz/out/fuzz_chat             the chat-template formatter
#   fuzz/out/fuzz_request          the server's request reader (JSON bodies)
set -euo pipefail
cd "$(dirname "$0")/.."
CC=${CC:-clang}
out=fuzz/out
mkdir -p "$out/obj"
flags=(-g -O1 -fno-omit-frame-pointer -std=c11 -D_GNU_SOURCE -I. -Iinclude
       -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined)
avx512=(-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mfma -mf16c)
srcs=(core/*.c kernels/*.c offload/host.c
      runtime/format/gguf.c runtime/format/gguf_write.c runtime/format/image.c
      runtime/format/kv.c runtime/format/model_file.c runtime/format/tmai.c
      runtime/format/tmai_write.c runtime/tokenizer/*.c)
objs=()
pids=()
# an object is rebuilt when its source, this script or any header changed
# (a header's struct seen two ways by two objects reads garbage)
newest_h=$(ls -t $(find core kernels runtime offload include -name '*.h') | head -1)
for s in "${srcs[@]}"; do
  o="$out/obj/$(echo "$s" | tr / _).o"
  objs+=("$o")
  extra=()
  case "$s" in
    kernels/matmul_avx2.c|kernels/matmul_unit_avx2.c) extra=(-mavx2 -mfma -mf16c) ;;
    kernels/matmul_avx512.c|kernels/matmul_unit_avx512.c) extra=("${avx512[@]}") ;;
    kernels/matmul_amx.c) extra=("${avx512[@]}" -mamx-tile -mamx-int8) ;;
    kernels/matmul_bf16.c) extra=("${avx512[@]}" -mavx512bf16 -mamx-tile -mamx-bf16) ;;
  esac
  if [ ! -e "$o" ] || [ "$s" -nt "$o" ] || [ fuzz/build.sh -nt "$o" ] || [ "$newest_h" -nt "$o" ]; then
    "$CC" "${flags[@]}" "${extra[@]}" -c "$s" -o "$o" &
    pids+=($!)
    if [ "${#pids[@]}" -ge "$(nproc)" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
  fi
done
for p in "${pids[@]}"; do wait "$p"; done
libs=(-lxxhash -lpcre2-8 -lm -lpthread)
link() {  # target, source, extra flags
  "$CC" "${flags[@]}" "${@:3}" -fsanitize=fuzzer "$2" "${objs[@]}" "${libs[@]}" -o "$out/$1"
}
link fuzz_gguf fuzz/fuzz_model_file.c -DFUZZ_VERIFY=0
link fuzz_tmai fuzz/fuzz_model_file.c -DFUZZ_VERIFY=1
link fuzz_tokenizer fuzz/fuzz_tokenizer.c
link fuzz_chat fuzz/fuzz_chat.c
# the request reader needs none of the above: its source and cJSON (Debian's)
"$CC" "${flags[@]}" -fsanitize=fuzzer fuzz/fuzz_request.c server/request.c -lcjson -lm -o "$out/fuzz_request"
echo "fuzz: built fuzz_gguf fuzz_tmai fuzz_tokenizer fuzz_chat fuzz_request in $out/"
