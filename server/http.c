/*
 * server/http.c: the HTTP side of the server (see server.h): routing,
 * request validation into tai_req, responses and server-sent events.
 */
#include "server/server.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/thread.h"
#include "server/mhd.h"
#include "server/request.h"


struct tai_server {
    tai_server_config c;
    struct MHD_Daemon *d;
    int port;
    _Atomic(TinyAIModel *) model;
    _Atomic(tai_engine *) engine;
    int ctx;
    atomic_int quiesced;
    atomic_ulong next_id;
    time_t started;
    /* requests by endpoint and status class, for /metrics */
    pthread_mutex_t mu;
    unsigned long count[4][6]; /* [endpoint][2xx,4xx(400),401,404/405,413,5xx] */
};

/* ---- responses ------------------------------------------------------------------ */

typedef struct {
    char *body;
    size_t len, cap;
    int too_big;
    int endpoint; /* for /metrics: 0 other, 1 completions, 2 chat, 3 models */
} conn;

/* A response with one extra header (name NULL: none). */
static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type,
                                 const char *body, const char *hname, const char *hvalue) {
    const tai_mhd *mhd = tai_mhd_table();
    struct MHD_Response *r =
        mhd->create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    mhd->add_response_header(r, "Content-Type", type);
    if (hname) mhd->add_response_header(r, hname, hvalue);
    const enum MHD_Result ret = mhd->queue_response(c, status, r);
    mhd->destroy_response(r);
    return ret;
}

static void count(tai_server *s, int endpoint, unsigned status) {
    const int k = status < 300 ? 0 : status == 401 ? 2 : status == 404 || status == 405 ? 3
                : status == 413 ? 4 : status >= 500 ? 5 : 1;
    pthread_mutex_lock(&s->mu);
    s->count[endpoint & 3][k]++;
    pthread_mutex_unlock(&s->mu);
}

/* An OpenAI-shaped error. */
/* An OpenAI-shaped error, with one extra header (name NULL: none). */
static enum MHD_Result error_reply(tai_server *s, struct MHD_Connection *c, int endpoint,
                                   unsigned status, const char *type, const char *hname,
                                   const char *hvalue, const char *msg) {
    cJSON *root = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddNullToObject(e, "param");
    char code[16];
    snprintf(code, sizeof code, "%u", status);
    cJSON_AddStringToObject(e, "code", code);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    count(s, endpoint, status);
    const enum MHD_Result r = send_text(c, status, "application/json", text ? text : "{}", hname, hvalue);
    free(text);
    return r;
}

/* An error; a busy server's (503, 429) says when to come back. */
static enum MHD_Result send_error(tai_server *s, struct MHD_Connection *c, int endpoint,
                                  unsigned status, const char *type, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const bool busy = status == 503 || status == 429;
    return error_reply(s, c, endpoint, status, type, busy ? "Retry-After" : NULL, busy ? "1" : NULL, msg);
}

/* 405, with the methods the path takes (Allow, as HTTP asks). */
static enum MHD_Result wrong_method(tai_server *s, struct MHD_Connection *c, int endpoint, bool get) {
    return error_reply(s, c, endpoint, 405, "invalid_request_error", "Allow", get ? "GET, HEAD" : "POST",
                       get ? "use GET" : "use POST");
}

/* The engine stuck in one step (tai_engine_stalled): its message into
 * msg and true; false while it runs normally. */
static bool stalled(tai_server *s, char *msg, size_t cap) {
    const double t = tai_engine_stalled(atomic_load(&s->engine));
    if (t <= 0) return false;
    snprintf(msg, cap,
             "the engine has been inside one step for %.0f s: a device or the storage is not "
             "answering",
             t);
    return true;
}

static enum MHD_Result send_json(tai_server *s, struct MHD_Connection *c, int endpoint,
                                 cJSON *root) {
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text) return send_error(s, c, endpoint, 500, "server_error", "out of memory");
    count(s, endpoint, 200);
    const enum MHD_Result r = send_text(c, 200, "application/json", text, NULL, NULL);
    free(text);
    return r;
}

/* ---- requests ------------------------------------------------------------------------ */

typedef struct {
    char why[300];
} bad;

/* Builds the request for a completion body: its prompt (tokenized) and
 * parameters, checked against the model and the context. NULL with b->why
 * set when invalid. */
static tai_req *parse_request(tai_server *s, const cJSON *root, bool chat, bool *stream,
                              bool *usage_in_stream, int *n_choices, bad *b) {
    TinyAIModel *m = atomic_load(&s->model);
    TinyAIModelInfo info;
    tinyaiGetModelInfo(m, &info);
    tai_request q;
    if (!tai_request_parse(root, chat, info.nVocab, &q, b->why, sizeof b->why)) return NULL;
    /* the prompt: token ids as given (no BOS added), or a conversation
     * through the chat template (its markers control tokens, the contents
     * text), or a text, encoded once into room for the context (the count
     * is the whole encoding's even where it does not fit) */
    size_t n_ids = 0;
    int32_t *ids = NULL;
    TinyAIStatus st = TINYAI_ERR_NOMEM;
    if (q.ids) {
        ids = q.ids;
        n_ids = q.n_ids;
        q.ids = NULL;
        st = TINYAI_OK;
    } else if ((ids = malloc((size_t)s->ctx * sizeof *ids))) {
        st = chat ? tinyaiTokenizeChat(m, q.msgs, (size_t)q.n_msgs, true, info.addBosToken, ids,
                                       (size_t)s->ctx, &n_ids)
                  : tinyaiTokenize(m, q.text, info.addBosToken, false, ids, (size_t)s->ctx, &n_ids);
        if (st == TINYAI_OK && n_ids > 0) {
            int32_t *fit = realloc(ids, n_ids * sizeof *ids);
            if (fit) ids = fit;
        }
    }
    tai_req *r = NULL;
    if (st != TINYAI_OK && st != TINYAI_ERR_RANGE) { /* the template's, or memory */
        snprintf(b->why, sizeof b->why, "%s",
                 st == TINYAI_ERR_NOMEM ? "out of memory" : tinyaiLastErrorMessage());
    } else if (n_ids == 0 || n_ids > (size_t)s->ctx - 1 || st != TINYAI_OK) {
        if (n_ids == 0) snprintf(b->why, sizeof b->why, "the prompt is empty");
        else snprintf(b->why, sizeof b->why,
                      "the prompt is %zu tokens; the context holds %d (with one to generate)",
                      n_ids, s->ctx);
    } else if (!(r = tai_req_new(ids, n_ids))) {
        snprintf(b->why, sizeof b->why, "out of memory");
    }
    if (!r) {
        free(ids);
        tai_request_free(&q);
        return NULL;
    }
    /* max_tokens within the context left */
    const double room = (double)s->ctx - (double)n_ids;
    double mt = q.max_tokens;
    if (mt < 0) mt = s->c.default_max_tokens < room ? s->c.default_max_tokens : room;
    if (mt > room) {
        snprintf(b->why, sizeof b->why,
                 "max_tokens %.0f does not fit: the prompt takes %zu of the %d tokens of context",
                 mt, n_ids, s->ctx);
        tai_req_release(r);
        tai_request_free(&q);
        return NULL;
    }
    r->max_tokens = (int)mt;
    r->sampling.temperature = q.temperature;
    r->sampling.topP = q.top_p;
    r->sampling.topK = q.top_k;
    r->sampling.repeatPenalty = q.repeat_penalty;
    r->sampling.seed = q.seeded ? q.seed : (uint64_t)atomic_load(&s->next_id);
    r->presence = q.presence;
    r->frequency = q.frequency;
    r->logprobs = q.logprobs;
    r->echo = q.echo;
    /* what the request owns moves over */
    r->bias = q.bias;
    r->n_bias = q.n_bias;
    q.bias = NULL;
    q.n_bias = 0;
    memcpy(r->stops, q.stops, sizeof r->stops);
    r->n_stops = q.n_stops;
    q.n_stops = 0;
    *stream = q.stream;
    *usage_in_stream = q.usage_in_stream;
    *n_choices = q.n;
    tai_request_free(&q);
    return r;
}

static const char *finish_name(tai_finish f) {
    return f == TAI_FINISH_STOP ? "stop" : f == TAI_FINISH_LENGTH ? "length" : "error";
}

/* The usage of a request's n choices: the prompt once, the generated
 * tokens of all of them; cached, the prompt tokens the first choice found
 * held (prefix reuse; the others copy the prompt from it). */
static cJSON *usage_json(tai_req *const *r, int n) {
    int gen = 0;
    for (int i = 0; i < n; i++) gen += r[i]->n_generated;
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)r[0]->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", gen);
    cJSON_AddNumberToObject(u, "total_tokens", (double)r[0]->n_prompt + gen);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", (double)r[0]->n_cached);
    return u;
}

/* The frame of a response or a chunk: id, object, created, model. */
static cJSON *frame(tai_server *s, unsigned long id, bool chat, bool chunk) {
    cJSON *o = cJSON_CreateObject();
    char sid[48];
    snprintf(sid, sizeof sid, "%s-%lu", chat ? "chatcmpl" : "cmpl", id);
    cJSON_AddStringToObject(o, "id", sid);
    cJSON_AddStringToObject(o, "object", chat ? (chunk ? "chat.completion.chunk" : "chat.completion")
                                              : "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)time(NULL));
    cJSON_AddStringToObject(o, "model", s->c.model_name);
    return o;
}

/* A token's text as a JSON string: its bytes where they are valid UTF-8,
 * U+FFFD for each byte that is not (a token may hold part of a character);
 * NULL out of memory. */
static char *token_text(const char *p, size_t n) {
    char *t = malloc(3 * n + 1);
    if (!t) return NULL;
    size_t o = 0;
    for (size_t k = 0; k < n;) {
        const int len = tai_utf8_seq((const unsigned char *)p + k, n - k);
        if (len > 0) {
            memcpy(t + o, p + k, (size_t)len);
            o += (size_t)len;
            k += (size_t)len;
        } else { /* invalid, or a character the token holds only part of */
            memcpy(t + o, "\xef\xbf\xbd", 3);
            o += 3;
            k++;
        }
    }
    t[o] = 0;
    return t;
}

/* {"token", "logprob", "bytes"} of one token, or for completions the token
 * string alone (into `tokens`). */
static cJSON *token_json(TinyAIModel *m, int32_t tok, float lp, bool with_bytes) {
    size_t n = 0;
    const char *piece = tinyaiTokenPiece(m, tok, &n);
    if (!piece) n = 0;
    char *t = token_text(piece ? piece : "", n);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "token", t ? t : "");
    free(t);
    /* JSON has no -inf: a probability that underflows reads as -9999 */
    cJSON_AddNumberToObject(o, "logprob", isfinite(lp) ? lp : -9999.0);
    if (with_bytes) {
        cJSON *bytes = cJSON_AddArrayToObject(o, "bytes");
        for (size_t i = 0; i < n; i++)
            cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)piece[i]));
    }
    return o;
}

/* The logprobs object of entries [from, to) of r (under r->mu): chat
 * {"content": [...]}, completions {"tokens", "token_logprobs",
 * "top_logprobs", "text_offset"} with offsets from *off (advanced). */
static cJSON *logprobs_json(tai_server *s, const tai_req *r, size_t from, size_t to, bool chat,
                            size_t *off) {
    TinyAIModel *m = atomic_load(&s->model);
    cJSON *o = cJSON_CreateObject();
    if (chat) {
        cJSON *content = cJSON_AddArrayToObject(o, "content");
        for (size_t i = from; i < to; i++) {
            const tai_logprob *e = &r->lp[i];
            cJSON *t = token_json(m, e->token, e->logprob, true);
            cJSON *top = cJSON_AddArrayToObject(t, "top_logprobs");
            for (int k = 0; k < e->n_top; k++)
                cJSON_AddItemToArray(top, token_json(m, e->top[k], e->top_logprob[k], true));
            cJSON_AddItemToArray(content, t);
        }
        return o;
    }
    cJSON *tokens = cJSON_AddArrayToObject(o, "tokens");
    cJSON *lps = cJSON_AddArrayToObject(o, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(o, "top_logprobs");
    cJSON *offs = cJSON_AddArrayToObject(o, "text_offset");
    for (size_t i = from; i < to; i++) {
        const tai_logprob *e = &r->lp[i];
        /* an echoed prompt's first token has no log-probability (NAN):
         * null, and null alternatives */
        const bool none = isnan(e->logprob);
        cJSON *t = token_json(m, e->token, e->logprob, false);
        cJSON_AddItemToArray(tokens, cJSON_DetachItemFromObject(t, "token"));
        cJSON_AddItemToArray(lps, none ? cJSON_CreateNull() : cJSON_DetachItemFromObject(t, "logprob"));
        cJSON_Delete(t);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)*off));
        size_t n = 0;
        if (tinyaiTokenPiece(m, e->token, &n)) *off += n;
        if (none) {
            cJSON_AddItemToArray(tops, cJSON_CreateNull());
            continue;
        }
        cJSON *top = cJSON_CreateObject();
        for (int k = 0; k < e->n_top; k++) {
            cJSON *a = token_json(m, e->top[k], e->top_logprob[k], false);
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(a, "token");
            if (!cJSON_GetObjectItemCaseSensitive(top, name->valuestring))
                cJSON_AddItemToObject(top, name->valuestring, cJSON_DetachItemFromObject(a, "logprob"));
            cJSON_Delete(a);
        }
        cJSON_AddItemToArray(tops, top);
    }
    return o;
}

/* A choice with `text` (the whole answer, or a chunk's delta) and the
 * logprobs object `lp` (taken; NULL: null). */
static void add_choice(cJSON *o, int index, bool chat, bool chunk, const char *text,
                       const char *finish, cJSON *lp) {
    cJSON *choices = cJSON_GetObjectItemCaseSensitive(o, "choices");
    if (!choices) choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", index);
    if (chat) {
        cJSON *msg = cJSON_AddObjectToObject(ch, chunk ? "delta" : "message");
        if (!chunk || text) {
            if (!chunk || (text && *text)) cJSON_AddStringToObject(msg, "role", "assistant");
            if (text) cJSON_AddStringToObject(msg, "content", text);
        }
    } else {
        cJSON_AddStringToObject(ch, "text", text ? text : "");
    }
    if (finish) cJSON_AddStringToObject(ch, "finish_reason", finish);
    else cJSON_AddNullToObject(ch, "finish_reason");
    if (lp) cJSON_AddItemToObject(ch, "logprobs", lp);
    else cJSON_AddNullToObject(ch, "logprobs");
    cJSON_AddItemToArray(choices, ch);
}

/* The entries of r not sent yet (from *sent), as a logprobs object; NULL
 * when the request did not ask for them. */
static cJSON *pending_logprobs(tai_server *s, tai_req *r, bool chat, size_t *sent, size_t *off) {
    if (r->logprobs < 0) return NULL;
    pthread_mutex_lock(&r->mu);
    const size_t to = r->n_lp;
    cJSON *o = logprobs_json(s, r, *sent, to, chat, off);
    pthread_mutex_unlock(&r->mu);
    *sent = to;
    return o;
}

/* ---- streaming --------------------------------------------------------------------- */

/* One choice of a stream: its request and what of it was sent. */
typedef struct {
    tai_req *r;
    size_t sent;    /* text bytes sent */
    size_t lp_sent; /* logprob entries sent */
    size_t lp_off;  /* completions: the text offset of the next entry */
    int done;       /* its finish was sent */
} sse_choice;

typedef struct {
    tai_server *s;
    unsigned long id;
    bool chat, usage;
    int n;          /* choices */
    sse_choice ch[TAI_MAX_CHOICES];
    int next;       /* the choice looked at first for news (round robin) */
    int phase;      /* 0 roles, 1 text, 2 usage, 3 done marker, 4 end */
    int roles_sent; /* phase 0: choices whose role chunk went */
    double quiet_since; /* when the stream last sent something */
    char *out;      /* an SSE frame being sent */
    size_t olen, opos;
} sse;

static int sse_frame(sse *st, cJSON *o) {
    char *j = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    free(st->out);
    st->out = NULL;
    st->olen = st->opos = 0;
    const char *body = j ? j : "[DONE]";
    const size_t n = strlen(body) + 8;
    st->out = malloc(n + 1);
    if (!st->out) {
        free(j);
        return -1;
    }
    st->olen = (size_t)snprintf(st->out, n + 1, "data: %s\n\n", body);
    free(j);
    return 0;
}

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static tai_finish finish_of(tai_req *r) {
    pthread_mutex_lock(&r->mu);
    const tai_finish f = r->finish;
    pthread_mutex_unlock(&r->mu);
    return f;
}

/* An error event in a stream, then the end. */
static int sse_error(sse *st, const char *msg) {
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", "server_error");
    st->phase = 3;
    return sse_frame(st, o);
}

/* The next frame of choice k if it has news (text, its finish, an error):
 * 1 framed, 0 nothing new, -1 out of memory. */
static int sse_news(sse *st, int k) {
    sse_choice *c = &st->ch[k];
    /* the finish first: text published before it is then all there */
    const tai_finish f = finish_of(c->r);
    const size_t len = tai_req_wait(c->r, c->sent, 0);
    if (len > c->sent) {
        char *piece = malloc(len - c->sent + 1);
        if (!piece) return -1;
        c->sent += tai_req_copy(c->r, c->sent, len, piece, len - c->sent + 1);
        cJSON *o = frame(st->s, st->id, st->chat, true);
        add_choice(o, k, st->chat, true, piece, NULL,
                   pending_logprobs(st->s, c->r, st->chat, &c->lp_sent, &c->lp_off));
        free(piece);
        return sse_frame(st, o) ? -1 : 1;
    }
    if (f == TAI_FINISH_NONE) return 0;
    if (f == TAI_FINISH_ERROR) {
        char msg[256];
        pthread_mutex_lock(&c->r->mu);
        snprintf(msg, sizeof msg, "%s", c->r->error);
        pthread_mutex_unlock(&c->r->mu);
        return sse_error(st, msg) ? -1 : 1;
    }
    cJSON *o = frame(st->s, st->id, st->chat, true);
    add_choice(o, k, st->chat, true, NULL, finish_name(f),
               pending_logprobs(st->s, c->r, st->chat, &c->lp_sent, &c->lp_off));
    c->done = 1;
    return sse_frame(st, o) ? -1 : 1;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    sse *st = cls;
    (void)pos;
    while (st->opos == st->olen) {
        if (st->phase == 4) return MHD_CONTENT_READER_END_OF_STREAM;
        if (st->phase == 0) { /* each choice's role first, as OpenAI's streams do */
            cJSON *o = frame(st->s, st->id, st->chat, true);
            add_choice(o, st->roles_sent, st->chat, true, "", NULL, NULL);
            if (sse_frame(st, o)) return MHD_CONTENT_READER_END_WITH_ERROR;
            if (++st->roles_sent == st->n) st->phase = 1;
            continue;
        }
        if (st->phase == 1) {
            /* news from any choice, from the one after the last that had some */
            int got = 0, open = -1;
            for (int t = 0; t < st->n && !got; t++) {
                const int k = (st->next + t) % st->n;
                if (st->ch[k].done) continue;
                if (open < 0) open = k;
                got = sse_news(st, k);
                if (got < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
                if (got) st->next = (k + 1) % st->n;
            }
            if (got) {
                st->quiet_since = mono_s();
                continue;
            }
            if (open < 0) { /* every choice finished */
                st->phase = st->usage ? 2 : 3;
                continue;
            }
            char why[200];
            if (stalled(st->s, why, sizeof why)) {
                for (int k = 0; k < st->n; k++) tai_req_cancel(st->ch[k].r); /* should the step return */
                if (sse_error(st, why)) return MHD_CONTENT_READER_END_WITH_ERROR;
                continue;
            }
            /* a comment line after keepalive_s of waiting (a long queue, a
             * slow step): the connection is not idle, and proxies and the
             * idle timeout leave it open */
            const double ka = st->s->c.keepalive_s;
            if (mono_s() - st->quiet_since >= ka) {
                st->quiet_since = mono_s();
                free(st->out);
                st->out = strdup(": keep-alive\n\n");
                if (!st->out) return MHD_CONTENT_READER_END_WITH_ERROR;
                st->olen = strlen(st->out);
                st->opos = 0;
                continue;
            }
            /* the choices advance in the same steps: waiting on one that
             * is still open wakes when the step has given them tokens */
            tai_req_wait(st->ch[open].r, st->ch[open].sent, ka < 1.0 ? ka : 1.0);
            continue;
        }
        if (st->phase == 2) {
            tai_req *rs[TAI_MAX_CHOICES];
            for (int k = 0; k < st->n; k++) rs[k] = st->ch[k].r;
            cJSON *o = frame(st->s, st->id, st->chat, true);
            cJSON_AddArrayToObject(o, "choices");
            cJSON_AddItemToObject(o, "usage", usage_json(rs, st->n));
            if (sse_frame(st, o)) return MHD_CONTENT_READER_END_WITH_ERROR;
            st->phase = 3;
            continue;
        }
        if (sse_frame(st, NULL)) return MHD_CONTENT_READER_END_WITH_ERROR;
        st->phase = 4;
    }
    const size_t n = st->olen - st->opos < max ? st->olen - st->opos : max;
    memcpy(buf, st->out + st->opos, n);
    st->opos += n;
    return (ssize_t)n;
}

static void sse_free(void *cls) {
    sse *st = cls;
    for (int k = 0; k < st->n; k++) { /* a client gone mid-stream frees its slots */
        tai_req_cancel(st->ch[k].r);
        tai_req_release(st->ch[k].r);
    }
    free(st->out);
    free(st);
}

/* ---- endpoints --------------------------------------------------------------------- */

static enum MHD_Result completion(tai_server *s, struct MHD_Connection *c, conn *cn, bool chat) {
    const tai_mhd *mhd = tai_mhd_table();
    const int ep = chat ? 2 : 1;
    cJSON *root = cJSON_ParseWithLength(cn->body ? cn->body : "", cn->len);
    if (!root)
        return send_error(s, c, ep, 400, "invalid_request_error",
                          "the body is not valid JSON (or nests deeper than %d)", CJSON_NESTING_LIMIT);
    const cJSON *mname = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (cJSON_IsString(mname) && *mname->valuestring && strcmp(mname->valuestring, s->c.model_name)) {
        char want[200];
        snprintf(want, sizeof want, "%.190s", mname->valuestring);
        cJSON_Delete(root);
        return send_error(s, c, ep, 404, "invalid_request_error",
                          "model '%s' does not exist here (this server has '%s')", want,
                          s->c.model_name);
    }
    bool stream = false, usage = false;
    int n = 1;
    bad b = {""};
    tai_req *r = parse_request(s, root, chat, &stream, &usage, &n, &b);
    cJSON_Delete(root);
    if (!r) return send_error(s, c, ep, 400, "invalid_request_error", "%s", b.why);
    /* the choices, each a request of its own (the engine evaluates their
     * common prompt once and copies it) */
    tai_req *rs[TAI_MAX_CHOICES] = {r};
    for (int k = 1; k < n; k++)
        if (!(rs[k] = tai_req_choice(r, k))) {
            for (int i = 0; i < k; i++) tai_req_release(rs[i]);
            return send_error(s, c, ep, 500, "server_error", "out of memory");
        }
    for (int k = 0; k < n; k++) {
        const int rc = tai_engine_submit(atomic_load(&s->engine), rs[k]);
        if (rc == 0) continue;
        for (int i = 0; i < n; i++) {
            if (i < k) tai_req_cancel(rs[i]);
            tai_req_release(rs[i]);
        }
        if (rc == -EAGAIN)
            return send_error(s, c, ep, 429, "rate_limit_error", "the queue is full; try again");
        if (rc == -E2BIG)
            return send_error(s, c, ep, 400, "invalid_request_error",
                              "the prompt and max_tokens do not fit in the context");
        return send_error(s, c, ep, 503, "server_error", "the server is stopping");
    }
    const unsigned long id = atomic_fetch_add(&s->next_id, 1);
    if (stream) {
        sse *st = calloc(1, sizeof *st);
        if (!st) {
            for (int k = 0; k < n; k++) {
                tai_req_cancel(rs[k]);
                tai_req_release(rs[k]);
            }
            return send_error(s, c, ep, 500, "server_error", "out of memory");
        }
        st->s = s;
        st->id = id;
        st->chat = chat;
        st->usage = usage;
        st->n = n;
        for (int k = 0; k < n; k++) st->ch[k].r = rs[k];
        st->quiet_since = mono_s();
        struct MHD_Response *resp =
            mhd->create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, st, sse_free);
        if (!resp) {
            sse_free(st);
            return MHD_NO;
        }
        mhd->add_response_header(resp, "Content-Type", "text/event-stream");
        mhd->add_response_header(resp, "Cache-Control", "no-cache");
        count(s, ep, 200);
        const enum MHD_Result ret = mhd->queue_response(c, 200, resp);
        mhd->destroy_response(resp);
        return ret;
    }
    /* not streaming: wait for the end of every choice, or the engine stuck */
    for (int k = 0; k < n; k++)
        while (finish_of(rs[k]) == TAI_FINISH_NONE) {
            tai_req_wait(rs[k], (size_t)-1, 1.0);
            char why[200];
            if (finish_of(rs[k]) == TAI_FINISH_NONE && stalled(s, why, sizeof why)) {
                for (int i = 0; i < n; i++) {
                    tai_req_cancel(rs[i]);
                    tai_req_release(rs[i]);
                }
                return send_error(s, c, ep, 503, "server_error", "%s", why);
            }
        }
    for (int k = 0; k < n; k++)
        if (rs[k]->finish == TAI_FINISH_ERROR) {
            char msg[300];
            snprintf(msg, sizeof msg, "%s", rs[k]->error);
            for (int i = 0; i < n; i++) tai_req_release(rs[i]);
            return send_error(s, c, ep, 500, "server_error", "%s", msg);
        }
    cJSON *o = frame(s, id, chat, false);
    for (int k = 0; k < n; k++) {
        size_t lp_sent = 0, lp_off = 0;
        add_choice(o, k, chat, false, rs[k]->text, finish_name(rs[k]->finish),
                   pending_logprobs(s, rs[k], chat, &lp_sent, &lp_off));
    }
    cJSON_AddItemToObject(o, "usage", usage_json(rs, n));
    for (int k = 0; k < n; k++) tai_req_release(rs[k]);
    return send_json(s, c, ep, o);
}

/* GET /v1/models (id NULL): the list of the one model; GET
 * /v1/models/ID: that model, or 404. "created" is when the server
 * started. */
static enum MHD_Result models(tai_server *s, struct MHD_Connection *c, const char *id) {
    if (id && strcmp(id, s->c.model_name))
        return send_error(s, c, 3, 404, "invalid_request_error",
                          "model '%.190s' does not exist here (this server has '%s')", id,
                          s->c.model_name);
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", s->c.model_name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)s->started);
    cJSON_AddStringToObject(m, "owned_by", "tinyai");
    if (id) return send_json(s, c, 3, m);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "data"), m);
    return send_json(s, c, 3, o);
}

#define METRICS_BYTES 65536

static size_t hist_out(char *buf, size_t n, const char *name, const char *help, const tai_hist *h) {
    size_t k = (size_t)snprintf(buf + n, METRICS_BYTES - n, "# HELP %s %s\n# TYPE %s histogram\n",
                                name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < TAI_HIST_BUCKETS; i++) {
        cum += h->counts[i];
        char le[32];
        if (i < TAI_HIST_BUCKETS - 1) snprintf(le, sizeof le, "%g", tai_hist_bounds[i]);
        else snprintf(le, sizeof le, "+Inf");
        k += (size_t)snprintf(buf + n + k, METRICS_BYTES - n - k, "%s_bucket{le=\"%s\"} %llu\n", name,
                              le, (unsigned long long)cum);
    }
    k += (size_t)snprintf(buf + n + k, METRICS_BYTES - n - k, "%s_sum %g\n%s_count %llu\n", name,
                          h->sum, name, (unsigned long long)h->n);
    return k;
}

static enum MHD_Result metrics(tai_server *s, struct MHD_Connection *c) {
    char *buf = malloc(METRICS_BYTES);
    if (!buf) return MHD_NO;
    size_t n = 0;
#define OUT(...) n += (size_t)snprintf(buf + n, METRICS_BYTES - n, __VA_ARGS__)
    static const char *const eps[4] = {"other", "completions", "chat_completions", "models"};
    static const char *const codes[6] = {"2xx", "400", "401", "404", "413", "5xx"};
    OUT("# HELP tinyai_requests_total HTTP requests by endpoint and status.\n"
        "# TYPE tinyai_requests_total counter\n");
    pthread_mutex_lock(&s->mu);
    for (int e = 0; e < 4; e++)
        for (int k = 0; k < 6; k++)
            if (s->count[e][k])
                OUT("tinyai_requests_total{endpoint=\"%s\",status=\"%s\"} %lu\n", eps[e], codes[k],
                    s->count[e][k]);
    pthread_mutex_unlock(&s->mu);
    tai_engine *e = atomic_load(&s->engine);
    if (e) {
        tai_engine_stats st;
        tai_engine_stats_get(e, &st);
        OUT("# TYPE tinyai_prompt_tokens_total counter\ntinyai_prompt_tokens_total %llu\n",
            (unsigned long long)st.prompt_tokens);
        OUT("# TYPE tinyai_generated_tokens_total counter\ntinyai_generated_tokens_total %llu\n",
            (unsigned long long)st.generated_tokens);
        OUT("# TYPE tinyai_steps_total counter\ntinyai_steps_total %llu\n",
            (unsigned long long)st.steps);
        OUT("# HELP tinyai_eval_seconds_total Time the engine spent evaluating steps.\n"
            "# TYPE tinyai_eval_seconds_total counter\ntinyai_eval_seconds_total %g\n",
            st.eval_seconds);
        OUT("# HELP tinyai_engine_stalled_seconds How long the step now running has run past "
            "the step timeout (0: none).\n"
            "# TYPE tinyai_engine_stalled_seconds gauge\ntinyai_engine_stalled_seconds %g\n",
            tai_engine_stalled(e));
        OUT("# HELP tinyai_sample_seconds_total Time the engine spent sampling and releasing text.\n"
            "# TYPE tinyai_sample_seconds_total counter\ntinyai_sample_seconds_total %g\n",
            st.sample_seconds);
        OUT("# HELP tinyai_prefix_tokens_reused_total Prompt tokens whose KV cache a slot held.\n"
            "# TYPE tinyai_prefix_tokens_reused_total counter\ntinyai_prefix_tokens_reused_total %llu\n",
            (unsigned long long)st.prefix_tokens_reused);
        OUT("# TYPE tinyai_slots gauge\ntinyai_slots %d\n", st.slots);
        OUT("# TYPE tinyai_slots_busy gauge\ntinyai_slots_busy %d\n", st.busy);
        OUT("# TYPE tinyai_queue_depth gauge\ntinyai_queue_depth %d\n", st.queued);
        OUT("# TYPE tinyai_kv_tokens gauge\ntinyai_kv_tokens %llu\n", (unsigned long long)st.kv_tokens);
        OUT("# TYPE tinyai_kv_capacity_tokens gauge\ntinyai_kv_capacity_tokens %llu\n",
            (unsigned long long)st.kv_capacity);
        n += hist_out(buf, n, "tinyai_time_to_first_token_seconds",
                      "From the request queued to its first token.", &st.ttft);
        n += hist_out(buf, n, "tinyai_time_per_output_token_seconds",
                      "Per generated token after the first.", &st.tpot);
        n += hist_out(buf, n, "tinyai_request_duration_seconds", "From queued to done.",
                      &st.duration);
        const TinyAIMemoryInfo *mi = &st.mem; /* the engine's snapshot after its last step */
        OUT("# HELP tinyai_memory_bytes Memory in use by kind, and the limit (0: none).\n"
            "# TYPE tinyai_memory_bytes gauge\n");
        OUT("tinyai_memory_bytes{kind=\"total\"} %llu\n", (unsigned long long)mi->currentBytes);
        OUT("tinyai_memory_bytes{kind=\"weight_cache\"} %llu\n", (unsigned long long)mi->cacheBytes);
        OUT("tinyai_memory_bytes{kind=\"sessions\"} %llu\n", (unsigned long long)mi->sessionBytes);
        OUT("tinyai_memory_bytes{kind=\"staging\"} %llu\n", (unsigned long long)mi->stagingBytes);
        OUT("tinyai_memory_bytes{kind=\"fixed\"} %llu\n", (unsigned long long)mi->fixedBytes);
        OUT("tinyai_memory_bytes{kind=\"limit\"} %llu\n", (unsigned long long)mi->memoryLimit);
        const double hm = (double)mi->hits + (double)mi->misses;
        OUT("# TYPE tinyai_weight_cache_hit_ratio gauge\ntinyai_weight_cache_hit_ratio %g\n",
            hm > 0 ? (double)mi->hits / hm : 1.0);
        OUT("# TYPE tinyai_storage_read_bytes_total counter\ntinyai_storage_read_bytes_total %llu\n",
            (unsigned long long)mi->bytesRead);
        OUT("# TYPE tinyai_io_stall_seconds_total counter\ntinyai_io_stall_seconds_total %g\n",
            mi->stallSeconds);
        TinyAIModelInfo info;
        TinyAIModel *m = atomic_load(&s->model);
        if (tinyaiGetModelInfo(m, &info) == TINYAI_OK) {
            OUT("# HELP tinyai_layer_device The device each layer runs on at batch 1.\n"
                "# TYPE tinyai_layer_device gauge\n");
            for (int l = 0; l < info.nFileLayers && n < METRICS_BYTES - 256; l++)
                OUT("tinyai_layer_device{layer=\"%d\",device=\"%s\"} 1\n", l, tinyaiLayerDevice(m, l));
        }
    }
#undef OUT
    const enum MHD_Result r = send_text(c, 200, "text/plain; version=0.0.4", buf, NULL, NULL);
    free(buf);
    return r;
}

/* Constant-time comparison of the Bearer key. */
static bool key_ok(tai_server *s, struct MHD_Connection *c) {
    const tai_mhd *mhd = tai_mhd_table();
    if (!s->c.api_key) return true;
    const char *h = mhd->lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0) return false;
    const char *k = h + 7, *want = s->c.api_key;
    const size_t kn = strlen(k), wn = strlen(want);
    unsigned char diff = kn != wn;
    for (size_t i = 0; i < wn; i++) diff |= (unsigned char)(want[i] ^ (i < kn ? k[i] : 0));
    return diff == 0;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls) {
    const tai_mhd *mhd = tai_mhd_table();
    tai_server *s = cls;
    (void)version;
    conn *cn = *con_cls;
    /* HEAD is GET without the body (which the daemon leaves out) */
    const bool post = !strcmp(method, "POST"), get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    const char *model_id = !strncmp(url, "/v1/models/", 11) && url[11] ? url + 11 : NULL;
    const int ep = !strcmp(url, "/v1/completions") ? 1 : !strcmp(url, "/v1/chat/completions") ? 2
                 : !strcmp(url, "/v1/models") || model_id ? 3 : 0;
    if (!cn) { /* the headers: check what can be checked before the body */
        cn = calloc(1, sizeof *cn);
        if (!cn) return MHD_NO;
        cn->endpoint = ep;
        *con_cls = cn;
        const char *cl = mhd->lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->c.max_body) cn->too_big = 1;
        return MHD_YES;
    }
    if (*upload_size) { /* body bytes */
        if (!cn->too_big && cn->len + *upload_size > s->c.max_body) cn->too_big = 1;
        if (!cn->too_big) {
            if (cn->len + *upload_size + 1 > cn->cap) {
                size_t cap = cn->cap ? cn->cap : 4096;
                while (cap < cn->len + *upload_size + 1) cap *= 2;
                char *b = realloc(cn->body, cap);
                if (!b) return MHD_NO;
                cn->body = b;
                cn->cap = cap;
            }
            memcpy(cn->body + cn->len, upload, *upload_size);
            cn->len += *upload_size;
            cn->body[cn->len] = 0;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    /* the whole request is in */
    if (!strcmp(url, "/health")) {
        if (!get) return wrong_method(s, c, 0, true);
        if (!atomic_load(&s->engine))
            return send_error(s, c, 0, 503, "server_error", "the model is loading");
        if (atomic_load(&s->quiesced))
            return send_error(s, c, 0, 503, "server_error", "the server is stopping");
        char why[200];
        if (stalled(s, why, sizeof why)) return send_error(s, c, 0, 503, "server_error", "%s", why);
        count(s, 0, 200);
        return send_text(c, 200, "application/json", "{\"status\":\"ok\"}", NULL, NULL);
    }
    if (cn->too_big)
        return send_error(s, c, ep, 413, "invalid_request_error", "the body is larger than %zu bytes",
                          s->c.max_body);
    if (!key_ok(s, c))
        return send_error(s, c, ep, 401, "authentication_error", "a valid API key is needed");
    if (!strcmp(url, "/metrics")) {
        if (!get) return wrong_method(s, c, 0, true);
        return metrics(s, c);
    }
    if (ep == 0) return send_error(s, c, 0, 404, "invalid_request_error", "no such path: %.200s", url);
    if (ep == 3 ? !get : !post)
        return wrong_method(s, c, ep, ep == 3);
    if (!atomic_load(&s->engine))
        return send_error(s, c, ep, 503, "server_error", "the model is loading");
    if (atomic_load(&s->quiesced))
        return send_error(s, c, ep, 503, "server_error", "the server is stopping");
    char why[200];
    if (ep != 3 && stalled(s, why, sizeof why)) return send_error(s, c, ep, 503, "server_error", "%s", why);
    if (ep == 3) return models(s, c, model_id);
    return completion(s, c, cn, ep == 2);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)c, (void)toe;
    conn *cn = *con_cls;
    if (!cn) return;
    free(cn->body);
    free(cn);
    *con_cls = NULL;
}

typedef struct {
    const tai_mhd *mhd;
    tai_server *s;
    const struct sockaddr_in *addr;
    struct MHD_Daemon *d;
} daemon_start;

static void *start_daemon_main(void *arg) {
    daemon_start *j = arg;
    tai_server *s = j->s;
    j->d = j->mhd->start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC,
        (uint16_t)s->c.port, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR, j->addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->c.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->c.timeout_s, MHD_OPTION_NOTIFY_COMPLETED,
        completed, s, MHD_OPTION_END);
    return NULL;
}

TinyAIStatus tai_server_start(const tai_server_config *c, tai_server **out) {
    *out = NULL;
    if (!c || c->port < 0 || c->port > 65535 || !c->model_name) return TINYAI_ERR_INVALID_ARG;
    tai_server *s = calloc(1, sizeof *s);
    if (!s) return TINYAI_ERR_NOMEM;
    s->c = *c;
    if (!s->c.host) s->c.host = "127.0.0.1";
    if (!s->c.max_body) s->c.max_body = 1u << 20;
    if (!s->c.max_connections) s->c.max_connections = 256;
    if (!s->c.timeout_s) s->c.timeout_s = 30;
    if (!s->c.default_max_tokens) s->c.default_max_tokens = 256;
    if (!(s->c.keepalive_s > 0)) s->c.keepalive_s = 5;
    pthread_mutex_init(&s->mu, NULL);
    atomic_store(&s->next_id, 1);
    s->started = time(NULL);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)c->port);
    if (inet_pton(AF_INET, s->c.host, &addr.sin_addr) != 1) {
        free(s);
        return TINYAI_ERR_INVALID_ARG;
    }
    const tai_mhd *mhd = NULL;
    if (tai_mhd_get(&mhd) != TINYAI_OK) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        return TINYAI_ERR_UNSUPPORTED;
    }
    /* started from a helper thread: the daemon's threads inherit its
     * CPUs, every one the process may use, not the core the caller's
     * thread may be bound to as one of the CPU device's threads */
    daemon_start ds = {mhd, s, &addr, NULL};
    pthread_t th;
    if (tai_thread_create(&th, start_daemon_main, &ds) == 0)
        pthread_join(th, NULL);
    else
        start_daemon_main(&ds);
    s->d = ds.d;
    if (!s->d) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        return TINYAI_ERR_IO;
    }
    const union MHD_DaemonInfo *info = mhd->get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : c->port;
    *out = s;
    return TINYAI_OK;
}

int tai_server_port(const tai_server *s) { return s->port; }

void tai_server_attach(tai_server *s, TinyAIModel *model, tai_engine *engine, int ctx) {
    s->ctx = ctx;
    atomic_store(&s->model, model);
    atomic_store(&s->engine, engine);
}

void tai_server_quiesce(tai_server *s) { atomic_store(&s->quiesced, 1); }

void tai_server_stop(tai_server *s) {
    const tai_mhd *mhd = tai_mhd_table();
    if (!s) return;
    mhd->stop_daemon(s->d);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
