/*
 * fuzz/fuzz_model_file.c: libFuzzer target for the model-file readers (the
 * GGUF parser, the .tmai reader, the tokenizer metadata behind them). Each
 * input is a whole file, opened as tinyai opens a model: the reader picks
 * the format by its magic, validates everything it reads, and on success
 * the tokenizer is built from the metadata (vocabulary arrays, merges,
 * scores, token types) and a token encoded and decoded. Built twice, as
 * fuzz_gguf and fuzz_tmai (FUZZ_VERIFY=1: .tmai checksums verified), each
 * with its own seed corpus. The file lives in a memfd: no disk I/O.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/error.h"
#include "runtime/format/model_file.h"
#include "runtime/tokenizer/tokenizer.h"

#ifndef FUZZ_VERIFY
#define FUZZ_VERIFY 0
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const int fd = memfd_create("fuzz-model", 0);
    if (fd < 0) return 0;
    size_t done = 0;
    while (done < size) {
        const ssize_t w = write(fd, data + done, size - done);
        if (w <= 0) break;
        done += (size_t)w;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    tai_model_file *mf = NULL;
    if (tai_model_file_open(path, FUZZ_VERIFY, &mf) == TINYAI_OK) {
        tai_tokenizer *tok = NULL;
        if (tai_tokenizer_load(mf, &tok) == TINYAI_OK) {
            int32_t ids[64];
            size_t n = 0;
            if (tai_tokenize(tok, "Hello, world! <|im_start|>", 26, true, ids, 64, &n) == TINYAI_OK) {
                char buf[256];
                size_t len = 0;
                (void)tai_detokenize(tok, ids, n, true, buf, sizeof buf, &len);
            }
            tai_tokenizer_free(tok);
        }
        tai_model_file_close(mf);
    }
    tinyaiClearError();
    close(fd);
    return 0;
}
