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

#include "fuzz/fuzz_vocab.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_load_vocab("fuzz_chat");
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
    /* with the contents' places, encoded with them as text, and decoded */
    tai_text_span *spans = NULL;
    size_t n_spans = 0;
    if (tai_chat_apply_template_spans(tmpl, g_tok, msgs, nm, add_assistant, &out, &spans, &n_spans) ==
        TINYAI_OK) {
        const size_t len = strlen(out);
        size_t n = 0;
        TinyAIStatus st = tai_tokenize_spans(g_tok, out, len, spans, n_spans, NULL, 0, &n);
        int32_t *ids = (st == TINYAI_OK || st == TINYAI_ERR_RANGE) ? malloc((n ? n : 1) * sizeof *ids) : NULL;
        char *back = malloc(len + 1);
        size_t bl = 0;
        if (ids && back && tai_tokenize_spans(g_tok, out, len, spans, n_spans, ids, n, &n) == TINYAI_OK)
            (void)tai_detokenize(g_tok, ids, n, true, back, len + 1, &bl);
        free(ids);
        free(back);
        free(out);
        free(spans);
    }
    tinyaiClearError();
    free(buf);
    return 0;
}
