/*
 * server/engine.c: continuous batching over the model's sessions (see
 * engine.h). The engine's thread is the only one that touches the model.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_timedjoin_np */
#endif
#include "server/engine.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- requests --------------------------------------------------------------- */

tai_req *tai_req_new(int32_t *prompt, size_t n_prompt) {
    tai_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->prompt = prompt;
    r->n_prompt = n_prompt;
    r->refs = 1;
    r->max_tokens = 16;
    r->logprobs = -1;
    r->sampling = tinyaiCreateDefaultSamplerConfig();
    r->text = calloc(1, 64);
    r->cap = r->text ? 64 : 0;
    if (!r->text) {
        free(r);
        return NULL;
    }
    return r;
}

tai_req *tai_req_choice(const tai_req *r, int k) {
    int32_t *prompt = malloc(r->n_prompt * sizeof *prompt);
    if (!prompt) return NULL;
    memcpy(prompt, r->prompt, r->n_prompt * sizeof *prompt);
    tai_req *c = tai_req_new(prompt, r->n_prompt);
    if (!c) {
        free(prompt);
        return NULL;
    }
    c->max_tokens = r->max_tokens;
    c->sampling = r->sampling;
    c->sampling.seed += (uint64_t)k;
    c->logprobs = r->logprobs;
    c->presence = r->presence;
    c->frequency = r->frequency;
    for (int i = 0; i < r->n_stops; i++)
        if (!(c->stops[c->n_stops++] = strdup(r->stops[i]))) goto oom;
    if (r->n_bias > 0) {
        if (!(c->bias = malloc((size_t)r->n_bias * sizeof *c->bias))) goto oom;
        memcpy(c->bias, r->bias, (size_t)r->n_bias * sizeof *c->bias);
        c->n_bias = r->n_bias;
    }
    return c;
oom:
    tai_req_release(c);
    return NULL;
}

void tai_req_release(tai_req *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    const int left = --r->refs;
    pthread_mutex_unlock(&r->mu);
    if (left > 0) return;
    free(r->prompt);
    for (int i = 0; i < r->n_stops; i++) free(r->stops[i]);
    free(r->bias);
    free(r->gen);
    free(r->text);
    free(r->lp);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

size_t tai_req_wait(tai_req *r, size_t have, double timeout_s) {
    pthread_mutex_lock(&r->mu);
    if (r->len <= have && r->finish == TAI_FINISH_NONE) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        const double t = (double)ts.tv_nsec * 1e-9 + timeout_s;
        ts.tv_sec += (time_t)t;
        ts.tv_nsec = (long)((t - (double)(time_t)t) * 1e9);
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    }
    const size_t len = r->len;
    pthread_mutex_unlock(&r->mu);
    return len;
}

size_t tai_req_copy(tai_req *r, size_t from, size_t to, char *buf, size_t cap) {
    pthread_mutex_lock(&r->mu);
    if (to > r->len) to = r->len;
    size_t n = to > from ? to - from : 0;
    if (n >= cap) n = cap ? cap - 1 : 0;
    if (n) memcpy(buf, r->text + from, n);
    if (cap) buf[n] = 0;
    pthread_mutex_unlock(&r->mu);
    return n;
}

void tai_req_cancel(tai_req *r) {
    pthread_mutex_lock(&r->mu);
    r->cancelled = 1;
    pthread_mutex_unlock(&r->mu);
}

/* Appends final text and/or ends the request; wakes its reader. */
static void publish(tai_req *r, const char *s, size_t n, tai_finish finish, const char *error) {
    pthread_mutex_lock(&r->mu);
    if (n && r->len + n + 1 > r->cap) {
        size_t cap = r->cap * 2;
        while (cap < r->len + n + 1) cap *= 2;
        char *t = realloc(r->text, cap);
        if (t) {
            r->text = t;
            r->cap = cap;
        } else {
            n = 0;
            finish = TAI_FINISH_ERROR;
            error = "out of memory";
        }
    }
    if (n) {
        memcpy(r->text + r->len, s, n);
        r->len += n;
        r->text[r->len] = 0;
    }
    if (finish != TAI_FINISH_NONE && r->finish == TAI_FINISH_NONE) {
        r->finish = finish;
        if (error) snprintf(r->error, sizeof r->error, "%s", error);
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* ---- text: UTF-8 and stop strings --------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (n bytes available): 1-4; 0 if
 * it is incomplete (more bytes may complete it); -1 if invalid. */
int tai_utf8_seq(const unsigned char *p, size_t n) {
    const unsigned c = p[0];
    int len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) len = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) len = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, min = 0x10000;
    else return -1;
    unsigned cp = c & (0x7f >> len);
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n) return 0;
        if ((p[i] & 0xc0) != 0x80) return -1;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
    return len;
}

typedef struct {
    TinyAISession *s;
    tai_req *r;
    TinyAISampler *smp;
    size_t prefilled;
    int32_t next;   /* fed this step; -1: none */
    int has_logits; /* the session's logits are new: sample */
    char *pend;     /* generated bytes not yet released */
    size_t plen, pcap;
    int32_t *hist;  /* the tokens the session holds, in order */
    size_t hlen, hcap;
    size_t hprompt; /* hist's first tokens that were evaluated as a prompt's */
    int hist_lost;  /* hist could not follow the session: reuse nothing */
    float *biased;  /* the logits with a request's logit_bias and penalties */
    unsigned char *seen; /* zeroes, a flag per token while penalties apply */
} slot;

/* n tokens the session evaluated in one entry of a step: two or more are a
 * prompt's (tai_batch: the prompt products), one a generated token's. */
static int hist_push(slot *sl, const int32_t *t, size_t n) {
    if (sl->hlen + n > sl->hcap) {
        size_t cap = sl->hcap ? sl->hcap * 2 : 256;
        while (cap < sl->hlen + n) cap *= 2;
        int32_t *h = realloc(sl->hist, cap * sizeof *h);
        if (!h) return -1;
        sl->hist = h;
        sl->hcap = cap;
    }
    memcpy(sl->hist + sl->hlen, t, n * sizeof *t);
    if (n >= 2 && sl->hprompt == sl->hlen) sl->hprompt += n;
    sl->hlen += n;
    return 0;
}

/* Tokens of the prompt a slot's session already holds and may reuse:
 * their common prefix, short of the whole prompt (its last token is
 * evaluated again for the logits). Where prompts are computed apart from
 * generated tokens (`roles`), only among the tokens it evaluated as a
 * prompt's (a token generated there was computed as a generated one, and
 * this request computes it as a prompt's), and leaving two of the prompt
 * to evaluate (one alone would count as a generated token). So a
 * request's text is the same whatever the slots held before it. */
static size_t common_prefix(const slot *sl, const tai_req *r, int roles) {
    const size_t held = roles ? sl->hprompt : sl->hlen, keep = roles ? 2 : 1;
    size_t k = 0;
    while (k < held && k + keep < r->n_prompt && sl->hist[k] == r->prompt[k]) k++;
    return k;
}

/* The prompt tokens r could reuse from a slot once it has evaluated its
 * own request's whole prompt (the same cap as common_prefix). */
static size_t prompt_prefix(const slot *sl, const tai_req *r, int roles) {
    const size_t keep = roles ? 2 : 1;
    size_t k = 0;
    while (k < sl->r->n_prompt && k + keep < r->n_prompt && sl->r->prompt[k] == r->prompt[k]) k++;
    return k;
}

/* Prompt tokens worth waiting for: a request whose prompt shares more than
 * this with a prompt another slot is still evaluating (beyond what any
 * slot holds already) waits for it and copies it, rather than computing
 * the same tokens beside it (a system prompt sent by many clients at once,
 * the choices of a request with n > 1). */
#define WAIT_FOR_PREFIX 16

/* Releases what of the slot's pending bytes is final: complete UTF-8
 * (invalid bytes become U+FFFD) and nothing that could begin a stop
 * string; at the end (`final`), everything. Returns 1 when a stop string
 * was found (the text is cut before it). */
static int release_text(slot *sl, int final) {
    tai_req *r = sl->r;
    /* a stop string: the text ends before its first occurrence */
    size_t cut = sl->plen;
    int stopped = 0;
    for (int i = 0; i < r->n_stops; i++) {
        const size_t sn = strlen(r->stops[i]);
        for (size_t k = 0; sn && k + sn <= sl->plen && k < cut; k++)
            if (!memcmp(sl->pend + k, r->stops[i], sn)) {
                cut = k;
                stopped = 1;
                break;
            }
    }
    size_t keep = cut; /* bytes that may be released */
    if (!stopped && !final) {
        /* hold back a tail that is a proper prefix of a stop string */
        for (int i = 0; i < r->n_stops; i++) {
            const size_t sn = strlen(r->stops[i]);
            for (size_t t = sn > 1 ? sn - 1 : 0; t > 0; t--)
                if (t <= sl->plen && !memcmp(sl->pend + sl->plen - t, r->stops[i], t)) {
                    if (sl->plen - t < keep) keep = sl->plen - t;
                    break;
                }
        }
    }
    char out[1024];
    size_t o = 0, k = 0;
    while (k < keep) {
        const int n = tai_utf8_seq((const unsigned char *)sl->pend + k, keep - k);
        if (n == 0 && !(final || stopped)) break; /* wait for the rest of it */
        if (o + 4 > sizeof out) {
            publish(r, out, o, TAI_FINISH_NONE, NULL);
            o = 0;
        }
        if (n <= 0) { /* invalid, or cut short for good */
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            k += 1;
        } else {
            memcpy(out + o, sl->pend + k, (size_t)n);
            o += (size_t)n;
            k += (size_t)n;
        }
    }
    if (o) publish(r, out, o, TAI_FINISH_NONE, NULL);
    memmove(sl->pend, sl->pend + k, sl->plen - k);
    sl->plen -= k;
    if (stopped) sl->plen = 0;
    return stopped;
}

static int pend_append(slot *sl, const char *s, size_t n) {
    if (sl->plen + n > sl->pcap) {
        size_t cap = sl->pcap ? sl->pcap * 2 : 256;
        while (cap < sl->plen + n) cap *= 2;
        char *p = realloc(sl->pend, cap);
        if (!p) return -1;
        sl->pend = p;
        sl->pcap = cap;
    }
    memcpy(sl->pend + sl->plen, s, n);
    sl->plen += n;
    return 0;
}

/* ---- the engine ------------------------------------------------------------------ */

struct tai_engine {
    TinyAIModel *m;
    tai_engine_config c;
    int nv, cap_tokens, cap_sessions;
    int roles; /* prompts computed apart from generated tokens (TinyAIModelInfo.bf16Prompts) */
    slot *slots;
    tai_req **queue;
    int qhead, qlen;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th;
    int started, stopping;
    double deadline;
    tai_engine_stats st;
    _Atomic double step_since; /* when the running step began; 0: none */
};

const double tai_hist_bounds[TAI_HIST_BUCKETS - 1] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                      1,     2.5,  5,     10,   30,  60};

static void observe(tai_hist *h, double v) {
    int k = 0;
    while (k < TAI_HIST_BUCKETS - 1 && v > tai_hist_bounds[k]) k++;
    h->counts[k]++;
    h->sum += v;
    h->n++;
}

/* Ends the slot's request and frees the slot. */
static void finish_slot(tai_engine *e, slot *sl, tai_finish f, const char *error) {
    if (f != TAI_FINISH_ERROR) release_text(sl, 1);
    sl->plen = 0;
    const double t = now_s();
    pthread_mutex_lock(&sl->r->mu);
    const double t0 = sl->r->t_submit, t1 = sl->r->t_first;
    const int gen = sl->r->n_generated;
    pthread_mutex_unlock(&sl->r->mu);
    pthread_mutex_lock(&e->mu);
    observe(&e->st.duration, t - t0);
    if (gen > 0) observe(&e->st.ttft, t1 - t0);
    if (gen > 1) observe(&e->st.tpot, (t - t1) / (gen - 1));
    pthread_mutex_unlock(&e->mu);
    publish(sl->r, NULL, 0, f, error);
    tai_req_release(sl->r);
    sl->r = NULL;
    tinyaiFreeSampler(sl->smp);
    sl->smp = NULL;
    pthread_mutex_lock(&e->mu);
    e->st.requests_done++;
    pthread_mutex_unlock(&e->mu);
}

/* Takes queued requests into free slots (under e->mu): each to the free
 * slot whose session shares the longest prefix with its prompt; when
 * another slot holds a longer one, its cache of it is copied over. */
static void admit(tai_engine *e) {
    while (e->qlen > 0) {
        tai_req *r = e->queue[e->qhead];
        slot *sl = NULL;
        size_t best = 0;
        for (int i = 0; i < e->c.slots; i++) {
            slot *c = &e->slots[i];
            if (c->r) continue;
            const size_t k = common_prefix(c, r, e->roles);
            if (!sl || k > best) sl = c, best = k;
        }
        if (!sl) break; /* no free slot */
        /* a longer prefix held by another slot, busy or not (what a busy
         * slot has evaluated does not change while it runs): copied */
        slot *src = NULL;
        size_t longest = best;
        for (int i = 0; i < e->c.slots; i++) {
            slot *c = &e->slots[i];
            if (c == sl || c->hist_lost) continue;
            const size_t k = common_prefix(c, r, e->roles);
            if (k > longest) src = c, longest = k;
        }
        /* a longer one still being evaluated: wait for it (the queue's
         * head waits, so requests keep their order; the slot evaluating it
         * goes on, or ends and frees its slot) */
        bool wait = false;
        for (int i = 0; i < e->c.slots && !wait; i++) {
            slot *c = &e->slots[i];
            wait = c->r && !c->hist_lost && c->prefilled < c->r->n_prompt &&
                   prompt_prefix(c, r, e->roles) > longest + WAIT_FOR_PREFIX;
        }
        if (wait) break;
        e->qhead = (e->qhead + 1) % e->c.max_queue;
        e->qlen--;
        sl->r = r;
        sl->next = -1;
        sl->has_logits = 0;
        sl->plen = 0;
        if (src && tinyaiSessionCopyPrefix(sl->s, src->s, (int)longest) == TINYAI_OK) {
            sl->hlen = sl->hprompt = 0;
            best = longest;
            if (hist_push(sl, src->hist, longest) != 0) { /* out of memory: start empty */
                best = 0;
                tinyaiResetSession(sl->s);
            }
            sl->hist_lost = 0;
        } else if (sl->hist_lost || tinyaiSessionRewind(sl->s, (int)best) != TINYAI_OK) {
            /* keep the KV cache of the shared prefix, or nothing */
            best = 0;
            tinyaiResetSession(sl->s);
            sl->hist_lost = 0;
        }
        sl->hlen = best;
        if (sl->hprompt > best) sl->hprompt = best;
        sl->prefilled = best;
        r->n_cached = best;
        e->st.prefix_tokens_reused += best;
        if (tinyaiCreateSampler(&r->sampling, &sl->smp) != TINYAI_OK) {
            pthread_mutex_unlock(&e->mu);
            finish_slot(e, sl, TAI_FINISH_ERROR, tinyaiLastErrorMessage());
            pthread_mutex_lock(&e->mu);
            continue;
        }
        tinyaiSamplerAccept(sl->smp, r->prompt, r->n_prompt);
    }
}

/* The log-probability of `tok` under softmax(l) and the n_top most likely
 * tokens (ties: the lower id first). Sums in double; -inf where the
 * probability underflows. */
static void logprob_of(const float *l, int nv, int32_t tok, int n_top, tai_logprob *out) {
    const double lse = tinyaiLogSumExp(l, nv);
    out->token = tok;
    out->logprob = (float)((double)l[tok] - lse);
    out->n_top = 0;
    for (int i = 0; i < nv && n_top > 0; i++) {
        int k = out->n_top;
        if (k == n_top && !(l[i] > l[out->top[k - 1]])) continue;
        if (k < n_top) out->n_top++;
        else k--;
        while (k > 0 && l[i] > l[out->top[k - 1]]) {
            out->top[k] = out->top[k - 1];
            k--;
        }
        out->top[k] = i;
    }
    for (int k = 0; k < out->n_top; k++) out->top_logprob[k] = (float)((double)l[out->top[k]] - lse);
}

/* Appends the token's entry to the request (under its lock): 0, or -1 out
 * of memory. */
static int add_logprob(tai_req *r, const float *l, int nv, int32_t tok) {
    tai_logprob e;
    logprob_of(l, nv, tok, r->logprobs, &e);
    pthread_mutex_lock(&r->mu);
    if (r->n_lp == r->lp_cap) {
        const size_t cap = r->lp_cap ? 2 * r->lp_cap : 16;
        tai_logprob *p = realloc(r->lp, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&r->mu);
            return -1;
        }
        r->lp = p;
        r->lp_cap = cap;
    }
    r->lp[r->n_lp++] = e;
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static bool penalized(const tai_req *r) { return r->presence != 0 || r->frequency != 0; }

/* The logits the sampler sees: the model's, or, where the request has a
 * logit_bias or penalties, a copy with them applied. NULL out of memory. */
static const float *adjusted(tai_engine *e, slot *sl, const float *logits) {
    const tai_req *r = sl->r;
    if (r->n_bias == 0 && !penalized(r)) return logits;
    if (!sl->biased && !(sl->biased = malloc((size_t)e->nv * sizeof *sl->biased))) return NULL;
    if (r->n_gen > 0 && !sl->seen && !(sl->seen = calloc((size_t)e->nv, 1))) return NULL;
    float *l = sl->biased;
    memcpy(l, logits, (size_t)e->nv * sizeof *l);
    for (int k = 0; k < r->n_bias; k++) l[r->bias[k].token] += r->bias[k].value;
    for (int k = 0; k < r->n_gen; k++) {
        const int32_t t = r->gen[k];
        l[t] -= r->frequency;
        if (!sl->seen[t]) l[t] -= r->presence;
        sl->seen[t] = 1;
    }
    for (int k = 0; k < r->n_gen; k++) sl->seen[r->gen[k]] = 0;
    return l;
}

/* The sampling half of a step: the next token of every slot with new
 * logits, its text released; ends those that are done. */
static void sample_all(tai_engine *e) {
    for (int i = 0; i < e->c.slots; i++) {
        slot *sl = &e->slots[i];
        if (!sl->r || !sl->has_logits) continue;
        sl->has_logits = 0;
        const float *logits = tinyaiGetLogits(sl->s);
        const float *view = adjusted(e, sl, logits);
        if (!view) {
            finish_slot(e, sl, TAI_FINISH_ERROR, "out of memory");
            continue;
        }
        const int32_t tok = tinyaiSample(sl->smp, view, e->nv);
        if (tok < 0) {
            finish_slot(e, sl, TAI_FINISH_ERROR, tinyaiLastErrorMessage());
            continue;
        }
        pthread_mutex_lock(&sl->r->mu);
        if (sl->r->n_generated == 0) sl->r->t_first = now_s();
        sl->r->n_generated++;
        const int gen = sl->r->n_generated;
        pthread_mutex_unlock(&sl->r->mu);
        pthread_mutex_lock(&e->mu);
        e->st.generated_tokens++;
        pthread_mutex_unlock(&e->mu);
        if (tinyaiTokenIsEndOfGeneration(e->m, tok)) {
            finish_slot(e, sl, TAI_FINISH_STOP, NULL);
            continue;
        }
        if (penalized(sl->r)) {
            if (!sl->r->gen && !(sl->r->gen = malloc((size_t)sl->r->max_tokens * sizeof *sl->r->gen))) {
                finish_slot(e, sl, TAI_FINISH_ERROR, "out of memory");
                continue;
            }
            if (sl->r->n_gen < sl->r->max_tokens) sl->r->gen[sl->r->n_gen++] = tok;
        }
        if (sl->r->logprobs >= 0 && add_logprob(sl->r, logits, e->nv, tok) != 0) {
            finish_slot(e, sl, TAI_FINISH_ERROR, "out of memory");
            continue;
        }
        size_t n = 0;
        const char *piece = tinyaiTokenPiece(e->m, tok, &n);
        if (piece && n && pend_append(sl, piece, n) != 0) {
            finish_slot(e, sl, TAI_FINISH_ERROR, "out of memory");
            continue;
        }
        if (release_text(sl, 0)) {
            finish_slot(e, sl, TAI_FINISH_STOP, NULL);
        } else if (gen >= sl->r->max_tokens || tinyaiSessionPosition(sl->s) >= e->c.ctx) {
            finish_slot(e, sl, TAI_FINISH_LENGTH, NULL);
        } else {
            sl->next = tok;
        }
    }
}

static void *run(void *arg) {
    tai_engine *e = arg;
    TinyAISession **ss = malloc((size_t)e->c.slots * sizeof *ss);
    const int32_t **tp = malloc((size_t)e->c.slots * sizeof *tp);
    size_t *cn = malloc((size_t)e->c.slots * sizeof *cn);
    int *who = malloc((size_t)e->c.slots * sizeof *who);
    for (;;) {
        pthread_mutex_lock(&e->mu);
        admit(e);
        int busy = 0;
        for (int i = 0; i < e->c.slots; i++) busy += e->slots[i].r != NULL;
        e->st.busy = busy;
        e->st.queued = e->qlen;
        if (busy == 0) {
            if (e->stopping) {
                pthread_mutex_unlock(&e->mu);
                break;
            }
            pthread_cond_wait(&e->cv, &e->mu);
            pthread_mutex_unlock(&e->mu);
            continue;
        }
        const int cut = e->stopping && now_s() > e->deadline;
        pthread_mutex_unlock(&e->mu);
        /* cancelled, or cut short by a stop past its grace */
        for (int i = 0; i < e->c.slots; i++) {
            slot *sl = &e->slots[i];
            if (!sl->r) continue;
            pthread_mutex_lock(&sl->r->mu);
            const int gone = sl->r->cancelled;
            pthread_mutex_unlock(&sl->r->mu);
            if (gone || cut) finish_slot(e, sl, TAI_FINISH_LENGTH, gone ? "cancelled" : NULL);
        }
        const double ts0 = now_s();
        sample_all(e);
        const double ts1 = now_s();
        /* the step: one token of each generating slot, then prompt chunks */
        int n = 0, budget = e->cap_tokens;
        for (int i = 0; i < e->c.slots && budget > 0; i++) {
            slot *sl = &e->slots[i];
            if (!sl->r || sl->next < 0) continue;
            ss[n] = sl->s;
            tp[n] = &sl->next;
            cn[n] = 1;
            who[n++] = i;
            budget--;
        }
        size_t prefill = 0;
        for (int i = 0; i < e->c.slots && budget > 0; i++) {
            slot *sl = &e->slots[i];
            if (!sl->r || sl->prefilled >= sl->r->n_prompt) continue;
            const size_t left = sl->r->n_prompt - sl->prefilled;
            size_t chunk = left < (size_t)budget ? left : (size_t)budget;
            /* where prompts are computed apart from generated tokens, a
             * prompt goes in chunks of two tokens or more, as it would
             * alone (a one-token chunk would be computed as a generated
             * token, tai_batch): none left with one token, none of one
             * unless the whole prompt is one (steps of fewer than 4 tokens
             * cannot keep to that: they take what fits) */
            if (e->roles && e->cap_tokens >= 4) {
                if (chunk < left && left - chunk < 2) chunk = left >= 4 ? left - 2 : 0;
                if (chunk < 2 && chunk < left) chunk = 0;
                if (chunk == 0) continue;
            }
            ss[n] = sl->s;
            tp[n] = sl->r->prompt + sl->prefilled;
            cn[n] = chunk;
            who[n++] = i;
            budget -= (int)chunk;
            prefill += chunk;
        }
        if (n == 0) continue;
        const double te0 = now_s();
        atomic_store_explicit(&e->step_since, te0, memory_order_relaxed);
        const TinyAIStatus st = tinyaiEvalStep(ss, tp, cn, (size_t)n);
        atomic_store_explicit(&e->step_since, 0.0, memory_order_relaxed);
        const double te1 = now_s();
        for (int k = 0; k < n; k++) {
            slot *sl = &e->slots[who[k]];
            if (st != TINYAI_OK) {
                sl->hlen = sl->hprompt = 0; /* what the session holds is unknown now */
                tinyaiResetSession(sl->s);
                finish_slot(e, sl, TAI_FINISH_ERROR, tinyaiLastErrorMessage());
                continue;
            }
            if (hist_push(sl, tp[k], cn[k]) != 0) sl->hist_lost = 1;
            if (sl->next >= 0 && tp[k] == &sl->next) {
                sl->next = -1;
                sl->has_logits = 1;
            } else {
                sl->prefilled += cn[k];
                if (sl->prefilled == sl->r->n_prompt) sl->has_logits = 1;
            }
        }
        TinyAIMemoryInfo mi;
        const int have_mi = tinyaiGetMemoryInfo(e->m, &mi) == TINYAI_OK;
        uint64_t kv = 0;
        for (int i = 0; i < e->c.slots; i++)
            if (e->slots[i].r) kv += (uint64_t)tinyaiSessionPosition(e->slots[i].s);
        pthread_mutex_lock(&e->mu);
        e->st.steps++;
        e->st.prompt_tokens += prefill;
        e->st.eval_seconds += te1 - te0;
        e->st.sample_seconds += ts1 - ts0;
        e->st.kv_tokens = kv;
        if (have_mi) e->st.mem = mi;
        pthread_mutex_unlock(&e->mu);
    }
    free(ss);
    free(tp);
    free(cn);
    free(who);
    return NULL;
}

TinyAIStatus tai_engine_start(TinyAIModel *model, const tai_engine_config *c, tai_engine **out) {
    *out = NULL;
    if (!model || !c || c->slots < 1 || c->slots > 1024 || c->ctx < 2 || c->max_queue < 1)
        return TINYAI_ERR_INVALID_ARG;
    tai_engine *e = calloc(1, sizeof *e);
    if (!e) return TINYAI_ERR_NOMEM;
    e->m = model;
    e->c = *c;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    e->slots = calloc((size_t)c->slots, sizeof *e->slots);
    e->queue = calloc((size_t)c->max_queue, sizeof *e->queue);
    TinyAIStatus st = e->slots && e->queue ? TINYAI_OK : TINYAI_ERR_NOMEM;
    for (int i = 0; st == TINYAI_OK && i < c->slots; i++)
        st = tinyaiCreateSession(model, c->ctx, &e->slots[i].s);
    TinyAIModelInfo info;
    if (st == TINYAI_OK) st = tinyaiGetModelInfo(model, &info);
    if (st == TINYAI_OK) st = tinyaiStepCapacity(model, &e->cap_tokens, &e->cap_sessions);
    if (st == TINYAI_OK && e->cap_sessions < c->slots)
        st = TINYAI_ERR_INVALID_ARG; /* the model was planned for fewer */
    if (st == TINYAI_OK) {
        e->nv = info.nVocab;
        e->roles = info.bf16Prompts;
        e->st.slots = c->slots;
        e->st.kv_capacity = (uint64_t)c->slots * (uint64_t)c->ctx;
        tinyaiGetMemoryInfo(model, &e->st.mem);
        /* a plain thread: it runs the model as the CPU device's thread 0,
         * so it keeps the core that thread was bound to, as the caller's */
        if (pthread_create(&e->th, NULL, run, e) != 0) st = TINYAI_ERR_NOMEM;
        else e->started = 1;
    }
    if (st != TINYAI_OK) {
        tai_engine_stop(e, 0);
        tai_engine_free(e);
        return st;
    }
    *out = e;
    return TINYAI_OK;
}

int tai_engine_submit(tai_engine *e, tai_req *r) {
    if ((size_t)r->max_tokens + r->n_prompt > (size_t)e->c.ctx) return -E2BIG;
    pthread_mutex_lock(&e->mu);
    int rc = 0;
    if (e->stopping) {
        rc = -ESHUTDOWN;
    } else if (e->qlen == e->c.max_queue) {
        rc = -EAGAIN;
    } else {
        pthread_mutex_lock(&r->mu);
        r->refs++;
        r->t_submit = now_s();
        pthread_mutex_unlock(&r->mu);
        e->queue[(e->qhead + e->qlen) % e->c.max_queue] = r;
        e->qlen++;
        e->st.queued = e->qlen;
        pthread_cond_signal(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

double tai_engine_stalled(tai_engine *e) {
    if (!e || e->c.step_timeout_s <= 0) return 0;
    const double t0 = atomic_load_explicit(&e->step_since, memory_order_relaxed);
    const double ran = t0 > 0 ? now_s() - t0 : 0;
    return ran > e->c.step_timeout_s ? ran : 0;
}

/* Joins the engine's thread: 0, or -ETIMEDOUT where it is stalled
 * (looked at every 100 ms while it runs). */
static int join_engine(tai_engine *e) {
    if (e->c.step_timeout_s <= 0) return pthread_join(e->th, NULL) == 0 ? 0 : -EINVAL;
    for (;;) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        const int rc = pthread_timedjoin_np(e->th, NULL, &ts);
        if (rc == 0) return 0;
        if (rc != ETIMEDOUT) return -rc;
        if (tai_engine_stalled(e) > 0) return -ETIMEDOUT;
    }
}

int tai_engine_stop(tai_engine *e, double grace_s) {
    if (!e) return 0;
    pthread_mutex_lock(&e->mu);
    e->stopping = 1;
    e->deadline = now_s() + grace_s;
    /* what still waits for a slot will not get one */
    while (e->qlen > 0) {
        tai_req *r = e->queue[e->qhead];
        e->qhead = (e->qhead + 1) % e->c.max_queue;
        e->qlen--;
        publish(r, NULL, 0, TAI_FINISH_ERROR, "the server is stopping");
        tai_req_release(r);
    }
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (e->started) {
        const int rc = join_engine(e);
        if (rc) return rc; /* stuck: its slots, sessions and lock stay */
        e->started = 0;
    }
    for (int i = 0; e->slots && i < e->c.slots; i++)
        if (e->slots[i].r) finish_slot(e, &e->slots[i], TAI_FINISH_ERROR, "the server stopped");
    return 0;
}

void tai_engine_free(tai_engine *e) {
    if (!e) return;
    for (int i = 0; e->slots && i < e->c.slots; i++) {
        tinyaiFreeSession(e->slots[i].s);
        free(e->slots[i].pend);
        free(e->slots[i].hist);
        free(e->slots[i].biased);
        free(e->slots[i].seen);
    }
    free(e->slots);
    free(e->queue);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}

void tai_engine_stats_get(tai_engine *e, tai_engine_stats *out) {
    pthread_mutex_lock(&e->mu);
    *out = e->st;
    pthread_mutex_unlock(&e->mu);
}
