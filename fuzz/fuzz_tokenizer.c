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

#include "core/error.h"
#include "runtime/format/model_file.h"
#include "runtime/tokenizer/tokenizer.h"

static tai_model_file *g_mf;
static tai_tokenizer *g_tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char path[4096];
    const char *m = getenv("TINYAI_MODEL");
    const char *home = getenv("HOME");
    if (m && *m) snprintf(path, sizeof path, "%s", m);
    else snprintf(path, sizeof path, "%s/.cache/tinyai/SmolLM2-135M-Instruct.Q4_1.gguf", home ? home : "");
    if (tai_model_file_open(path, false, &g_mf) != TINYAI_OK ||
        tai_tokenizer_load(g_mf, &g_tok) != TINYAI_OK) {
        fprintf(stderr, "fuzz_tokenizer: cannot load the vocabulary of %s: %s\n", path,
                tinyaiLastErrorMessage());
        exit(1);
    }
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
