/*
 * server/engine: continuous batching (layer: server). One thread owns the
 * model and its sessions (the slots). Each step it samples the next token
 * of every generating slot, then evaluates, in one pass (tinyaiEvalStep),
 * one token for each of them and a chunk of the prompt of each slot still
 * prefilling, so that every layer is read once per step for all of them
 * and a new request's prompt does not stall the streams already running.
 * Requests beyond the slots wait in a bounded queue; a finished or
 * cancelled request leaves its slot at once. A slot keeps the tokens its
 * session holds after its request ends: a new request goes to the free
 * slot whose tokens share the longest prefix with its prompt, and only the
 * rest of the prompt is evaluated (a system prompt, a conversation resent
 * whole); when another slot, busy or not, holds a longer prefix of it, that
 * slot's cache of the prefix is copied (tinyaiSessionCopyPrefix), so
 * concurrent requests with one system prompt compute it once.
 *
 * A request (tai_req) is shared by the engine and the connection that made
 * it: the engine appends text and sets the outcome under its lock and
 * signals; the connection reads, or cancels. Each side drops its reference
 * with tai_req_release; the last one frees it.
 */
#ifndef TAI_SERVER_ENGINE_H
#define TAI_SERVER_ENGINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tinyai/llm.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TAI_MAX_STOPS 4

typedef enum { TAI_FINISH_NONE = 0, TAI_FINISH_STOP, TAI_FINISH_LENGTH, TAI_FINISH_ERROR } tai_finish;

/* Alternatives reported per token at most (OpenAI's top_logprobs limit). */
#define TAI_MAX_TOP_LOGPROBS 20

/* One generated token's log-probability under the model's distribution
 * (the log-softmax of its logits, before temperature, penalties and
 * truncation), with the most likely alternatives, most likely first. */
typedef struct {
    int32_t token;
    float logprob;
    int n_top;
    int32_t top[TAI_MAX_TOP_LOGPROBS];
    float top_logprob[TAI_MAX_TOP_LOGPROBS];
} tai_logprob;

/* A logit bias (OpenAI's logit_bias): `value` is added to the token's
 * logit before sampling; -100 bans it, +100 all but forces it. */
typedef struct {
    int32_t token;
    float value;
} tai_bias;

/* Biases a request may carry at most. */
#define TAI_MAX_BIASES 1024

typedef struct tai_req {
    /* ---- set before submitting; the engine owns them after ---- */
    int32_t *prompt;  /* malloc'ed token ids */
    size_t n_prompt;
    int max_tokens;
    TinyAISamplerConfig sampling;
    char *stops[TAI_MAX_STOPS]; /* malloc'ed, NUL-terminated */
    int n_stops;
    int logprobs; /* -1: none; 0..TAI_MAX_TOP_LOGPROBS: each token's
                     log-probability and that many alternatives */
    int echo;     /* the prompt's text is published before the generated
                     text once the prompt is evaluated; with logprobs, lp
                     begins with an entry per prompt token (the first with
                     a NAN log-probability: nothing comes before it), for
                     which the prompt's chunks keep the logits of every
                     token (as many as a step has rows of logits for) and
                     it reuses no cached prefix. max_tokens may be 0. */
    tai_bias *bias; /* malloc'ed; added to the logits the sampler sees (the
                       log-probabilities reported are the model's own) */
    int n_bias;
    /* OpenAI's penalties, subtracted from the logits the sampler sees:
     * presence once from each token generated so far, frequency once per
     * time it was generated */
    float presence, frequency;
    int32_t *gen; /* the tokens generated so far, where a penalty is set */
    int n_gen;

    /* ---- the outcome, under mu ---- */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *text; /* generated text that is final (complete UTF-8, no stop
                   string prefix held back), NUL-terminated */
    size_t len, cap;
    int n_generated;
    tai_logprob *lp; /* one per generated token that is not end-of-generation
                        (after the prompt's, with echo) */
    size_t n_lp, lp_cap;
    size_t n_cached; /* prompt tokens whose KV cache a slot already held */
    tai_finish finish;
    char error[256];
    int cancelled; /* set by the connection: the engine drops the request */
    int refs;
    double t_submit, t_first; /* seconds: when queued, when the first token came */
} tai_req;


/* A request with the given prompt (taken over, freed with the request). */
tai_req *tai_req_new(int32_t *prompt, size_t n_prompt);
/* Another choice of the request r (OpenAI's n): its prompt, parameters,
 * stop strings and biases, with the seed moved on by `k`; nothing of r's
 * outcome. NULL out of memory. */
tai_req *tai_req_choice(const tai_req *r, int k);
void tai_req_release(tai_req *r);
/* Waits until the text is longer than `have` bytes or the request ended;
 * returns the text length then (under the lock: copy what you need with
 * tai_req_copy). Wakes at least every `timeout_s` seconds. */
size_t tai_req_wait(tai_req *r, size_t have, double timeout_s);
/* Copies text[from, to) into buf (NUL-terminated); returns the bytes. */
size_t tai_req_copy(tai_req *r, size_t from, size_t to, char *buf, size_t cap);
void tai_req_cancel(tai_req *r);

typedef struct {
    int slots;        /* sequences decoded together */
    int ctx;          /* tokens per slot */
    int max_queue;    /* requests waiting for a slot */
    double step_timeout_s; /* a step running longer is a stall (a device or
                              the storage not answering; tai_engine_stalled);
                              0: never */
} tai_engine_config;

typedef struct tai_engine tai_engine;

/* Creates the slots' sessions on the model (borrowed; it must be loaded
 * with maxSessions >= slots) and starts the engine's thread. */
TinyAIStatus tai_engine_start(TinyAIModel *model, const tai_engine_config *c, tai_engine **out);
/* Queues a request (the engine takes a reference): 0; -EAGAIN when the
 * queue is full; -ESHUTDOWN once stopping; -E2BIG when its prompt plus
 * max_tokens exceed a slot's context. */
int tai_engine_submit(tai_engine *e, tai_req *r);
/* How long the step now running has run, where that is past the config's
 * step_timeout_s (the engine's thread is stuck in a device or a read that
 * does not return: requests cannot be served until it does); 0 otherwise.
 * A stall ends by itself if the step returns. */
double tai_engine_stalled(tai_engine *e);
/* Refuses new requests, finishes or cuts the running ones (those still
 * running after `grace_s` seconds end with finish "length") and ends its
 * thread: 0. -ETIMEDOUT where the engine is stalled (or stalls while
 * stopping): its thread cannot be joined (it may still use the engine)
 * and the process should exit. Queries (tai_engine_stalled, stats) still
 * answer after a stop, and submissions are refused: the server's
 * connections may still ask until tai_server_stop has closed them. */
int tai_engine_stop(tai_engine *e, double grace_s);
/* Frees a stopped engine (tai_engine_stop returned 0), after the server
 * using it was stopped. Accepts NULL. */
void tai_engine_free(tai_engine *e);

/* Histogram buckets (seconds, upper bounds; the last is +Inf). */
#define TAI_HIST_BUCKETS 14
extern const double tai_hist_bounds[TAI_HIST_BUCKETS - 1];
typedef struct {
    uint64_t counts[TAI_HIST_BUCKETS]; /* per bucket (not cumulative) */
    double sum;
    uint64_t n;
} tai_hist;

typedef struct {
    int slots, busy, queued;
    uint64_t prompt_tokens, generated_tokens, steps, requests_done;
    uint64_t prefix_tokens_reused; /* prompt tokens not evaluated: a slot held them */
    double eval_seconds;   /* in tinyaiEvalStep */
    double sample_seconds; /* sampling and releasing text */
    uint64_t kv_tokens, kv_capacity; /* positions in use in the busy slots, and all */
    tai_hist ttft;     /* time to first token */
    tai_hist tpot;     /* time per output token after the first */
    tai_hist duration; /* from queued to done */
    TinyAIMemoryInfo mem; /* the model's, after the last step */
} tai_engine_stats;
void tai_engine_stats_get(tai_engine *e, tai_engine_stats *out);

#ifdef __cplusplus
}
#endif

#endif
