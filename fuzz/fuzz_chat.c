/*
 * fuzz/fuzz_chat.c: libFuzzer target for the chat-template formatter. An
 * input is NUL-separated pieces: the template's text (empty: none), then
 * role and content pairs; a first byte's low bit says whether to open the
 * assistant's turn. The tokenizer is the default model's (as
 * fuzz_tokenizer), so the template-less and Zephyr paths see a real EOS.
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
        fprintf(stderr, "fuzz_chat: cannot load the vocabulary of %s: %s\n", path,
                tinyaiLastErrorMessage());
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const int add_assistant = data[0] & 1;
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = 0;
    /* split at NULs: template, then role, content, role, content ... */
    const char *piece[65];
    size_t np = 0;
    for (size_t i = 0, start = 0; i <= size - 1 && np < 65; i++)
        if (i == size - 1 || buf[i] == 0) {
            piece[np++] = buf + start;
            start = i + 1;
        }
    tai_chat_message msgs[32];
    size_t nm = 0;
    for (size_t k = 1; k + 1 < np && nm < 32; k += 2) msgs[nm++] = (tai_chat_message){piece[k], piece[k + 1]};
    char *out = NULL;
    const char *tmpl = np > 0 && piece[0][0] ? piece[0] : NULL;
    if (tai_chat_apply_template(tmpl, g_tok, msgs, nm, add_assistant, &out) == TINYAI_OK) free(out);
    tinyaiClearError();
    free(buf);
    return 0;
}
