/*
 * fuzz/fuzz_tokenizer.c: libFuzzer target for the tokenizer on arbitrary
 * bytes with a real vocabulary (the default model's, SmolLM2's byte-level
 * BPE; $TINYAI_MODEL or the cache folder's). Each input is encoded with and
 * without special-token parsing, the ids decoded back, and the same bytes
 * read as token ids (in range or not) and decoded: a clean error or a
 * result, never a crash, a hang or a read out of bounds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_vocab.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_load_vocab("fuzz_tokenizer");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int32_t ids[1 << 16];
    static char text[1 << 18];
    for (int special = 0; special < 2; special++) {
        size_t n = 0;
        const TinyAIStatus st = tai_tokenize(g_tok, (const char *)data, size, special, ids,
                                             sizeof ids / sizeof *ids, &n);
        if (st == TINYAI_OK) {
            size_t len = 0;
            (void)tai_detokenize(g_tok, ids, n, special, text, sizeof text, &len);
        }
    }
    /* the bytes as ids */
    const size_t n = size / 4 < sizeof ids / sizeof *ids ? size / 4 : sizeof ids / sizeof *ids;
    memcpy(ids, data, n * 4);
    size_t len = 0;
    (void)tai_detokenize(g_tok, ids, n, true, text, sizeof text, &len);
    for (size_t i = 0; i < n; i++) {
        size_t pl = 0;
        (void)tai_token_piece(g_tok, ids[i], i & 1, &pl);
    }
    tinyaiClearError();
    return 0;
}
