/*
 * fuzz/fuzz_vocab.h: the real vocabulary the text targets run with: the
 * default model's ($TINYAI_MODEL, else the cache folder's SmolLM2),
 * loaded once from LLVMFuzzerInitialize.
 */
#ifndef TAI_FUZZ_FUZZ_VOCAB_H
#define TAI_FUZZ_FUZZ_VOCAB_H

#include <stdio.h>
#include <stdlib.h>

#include "core/error.h"
#include "runtime/format/model_file.h"
#include "runtime/tokenizer/tokenizer.h"

static tai_model_file *g_mf;
static tai_tokenizer *g_tok;

static void fuzz_load_vocab(const char *target) {
    char path[4096];
    const char *m = getenv("TINYAI_MODEL");
    const char *home = getenv("HOME");
    if (m && *m) snprintf(path, sizeof path, "%s", m);
    else snprintf(path, sizeof path, "%s/.cache/tinyai/SmolLM2-135M-Instruct.Q4_1.gguf", home ? home : "");
    if (tai_model_file_open(path, false, &g_mf) != TINYAI_OK ||
        tai_tokenizer_load(g_mf, &g_tok) != TINYAI_OK) {
        fprintf(stderr, "%s: cannot load the vocabulary of %s: %s\n", target, path,
                tinyaiLastErrorMessage());
        exit(1);
    }
}

#endif
