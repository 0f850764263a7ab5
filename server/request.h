/*
 * server/request: a completion request's JSON body checked and read
 * (layer: server), apart from the model: the prompt is not tokenized here
 * (http.c does that, and checks what depends on the context), so the
 * checks run, and are fuzzed, on any body alone. Every field OpenAI's
 * clients send is either read, ignored where it changes nothing, or
 * refused by name where TinyAI cannot do what it asks.
 */
#ifndef TAI_SERVER_REQUEST_H
#define TAI_SERVER_REQUEST_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tinyai/llm.h>

#include "server/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The longest prompt text, in bytes. */
#define TAI_MAX_PROMPT_BYTES (1u << 20)
/* Choices a request may ask for (n): each is a sequence of its own, in a
 * slot of its own, the prompt evaluated once and copied. */
#define TAI_MAX_CHOICES 16

typedef struct {
    bool chat;
    /* chat: the conversation (contents borrowed from the JSON, or joined
     * from text parts into `own`) */
    TinyAIChatMessage *msgs;
    char **own;
    int n_msgs;
    /* completions: a text (borrowed from the JSON) or token ids */
    const char *text;
    int32_t *ids;
    size_t n_ids;
    double max_tokens; /* -1: the server's default; 0 only with echo (the
                          prompt scored, nothing generated) */
    float temperature, top_p, repeat_penalty, presence, frequency;
    int top_k;
    bool seeded;
    uint64_t seed;
    tai_bias *bias;
    int n_bias;
    int logprobs; /* -1: none; else the alternatives per token */
    bool echo;    /* completions: the prompt's text (and, with logprobs,
                     its tokens' log-probabilities) before the answer */
    int n;        /* choices */
    char *stops[TAI_MAX_STOPS];
    int n_stops;
    bool stream, usage_in_stream;
} tai_request;

/* Reads `root` (a chat completion's body with `chat`, else a completion's)
 * into *q, the token ids of a given prompt checked against `n_vocab`:
 * true; false with why (cap bytes) saying what is wrong, *q holding
 * nothing. A request read is freed with tai_request_free; its borrowed
 * strings live as long as root. */
bool tai_request_parse(const cJSON *root, bool chat, int n_vocab, tai_request *q, char *why,
                       size_t cap);
void tai_request_free(tai_request *q);

/* Length of the valid UTF-8 sequence at p (n bytes available): 1-4; 0 if
 * it is incomplete (more bytes may complete it); -1 if invalid (an
 * overlong form, a surrogate, a code point past U+10FFFF). */
int tai_utf8_seq(const unsigned char *p, size_t n);
/* Whether s is valid UTF-8 throughout (tai_utf8_seq at every step). */
bool tai_valid_utf8(const char *s);

#ifdef __cplusplus
}
#endif

#endif
