/*
 * fuzz/fuzz_request.c: libFuzzer target for the server's request reader
 * (server/request.c). An input is a body: its first byte's low bit says
 * chat (/v1/chat/completions) or completions, the rest is JSON parsed by
 * cJSON as the server parses it. A body read must hold what the server
 * relies on (a conversation of known roles in valid UTF-8, or a prompt
 * text in valid UTF-8 or token ids in the vocabulary; parameters in their
 * ranges); a body refused must say why. Either is freed (ASan: no leak).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/request.h"

#define VOCAB 49152

static void check(int ok) {
    if (!ok) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    cJSON *root = cJSON_ParseWithLength((const char *)data + 1, size - 1);
    if (!root) return 0;
    const bool chat = data[0] & 1;
    tai_request q;
    char why[300] = "";
    if (tai_request_parse(root, chat, VOCAB, &q, why, sizeof why)) {
        if (chat) {
            check(q.n_msgs >= 1 && q.msgs && !q.text && !q.ids);
            for (int k = 0; k < q.n_msgs; k++) {
                const char *r = q.msgs[k].role;
                check(r && (!strcmp(r, "system") || !strcmp(r, "user") || !strcmp(r, "assistant")));
                check(q.msgs[k].content && tai_valid_utf8(q.msgs[k].content));
            }
        } else {
            check(!q.msgs && ((q.text != NULL) != (q.ids != NULL)));
            if (q.text) check(tai_valid_utf8(q.text) && strlen(q.text) <= TAI_MAX_PROMPT_BYTES);
            for (size_t i = 0; q.ids && i < q.n_ids; i++) check(q.ids[i] >= 0 && q.ids[i] < VOCAB);
            check(!q.ids || q.n_ids > 0);
        }
        check(!chat || !q.echo);
        check(q.n >= 1 && q.n <= TAI_MAX_CHOICES);
        check(q.logprobs >= -1 && q.logprobs <= TAI_MAX_TOP_LOGPROBS);
        check(q.n_stops >= 0 && q.n_stops <= TAI_MAX_STOPS);
        check(q.n_bias >= 0 && q.n_bias <= TAI_MAX_BIASES);
        for (int i = 0; i < q.n_bias; i++)
            check(q.bias[i].token >= 0 && q.bias[i].token < VOCAB && q.bias[i].value >= -100 &&
                  q.bias[i].value <= 100);
        check(q.temperature >= 0 && q.temperature <= 2 && q.top_p > 0 && q.top_p <= 1);
        check((q.max_tokens == -1 || q.max_tokens >= 1 || (q.echo && q.max_tokens == 0)) &&
              q.max_tokens <= 1e9);
        tai_request_free(&q);
    } else {
        check(why[0] != 0);
        check(!q.msgs && !q.own && !q.ids && !q.bias && q.n_stops == 0);
    }
    cJSON_Delete(root);
    return 0;
}
