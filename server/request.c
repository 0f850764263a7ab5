/*
 * server/request.c: a completion request's body checked and read (see
 * request.h).
 */
#include "server/request.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *why;
    size_t cap;
} bad;

/* Says why (printf-style): false. */
static bool no(bad *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->why, b->cap, fmt, ap);
    va_end(ap);
    return false;
}

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

bool tai_valid_utf8(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    while (n > 0) {
        const int len = tai_utf8_seq(p, n);
        if (len <= 0) return false;
        p += len;
        n -= (size_t)len;
    }
    return true;
}

/* A number field in [lo, hi] (absent or null: dflt). */
static bool num_field(const cJSON *o, const char *name, double lo, double hi, double dflt,
                      double *out, bad *b) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    *out = dflt;
    if (!v || cJSON_IsNull(v)) return true;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi)
        return no(b, "'%s' must be a number between %g and %g", name, lo, hi);
    *out = v->valuedouble;
    return true;
}

/* Message k of a chat request into *out: a role (system, user, assistant;
 * "developer", OpenAI's newer name for system, is system) and a text. The
 * content is a string, or a list of text parts ({"type": "text", "text":
 * ...}, joined with "\n" into *own, as llama-server joins them), or, for
 * an assistant turn only, null or absent (empty). Images, audio, files
 * and tool calls are refused by name: the model reads text and TinyAI
 * does not call tools. */
static bool message_of(const cJSON *it, int k, TinyAIChatMessage *out, char **own, bad *b) {
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(it, "role"),
                *content = cJSON_GetObjectItemCaseSensitive(it, "content");
    const char *r = cJSON_IsString(role) ? role->valuestring : NULL;
    if (r && (!strcmp(r, "tool") || !strcmp(r, "function")))
        return no(b, "message %d: role '%s' is not supported: TinyAI does not call tools", k, r);
    if (r && !strcmp(r, "developer")) r = "system";
    if (!cJSON_IsObject(it)) return no(b, "message %d must be an object with a 'role' and a 'content'", k);
    if (!r)
        return no(b, "message %d needs a 'role' (system, user, assistant, developer) as a string", k);
    if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant"))
        return no(b, "message %d: role '%.40s' is not one of system, user, assistant, developer", k, r);
    const bool assistant = !strcmp(r, "assistant");
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(it, "tool_calls");
    if (assistant && ((cJSON_IsArray(calls) && cJSON_GetArraySize(calls) > 0) ||
                      cJSON_GetObjectItemCaseSensitive(it, "function_call")))
        return no(b, "message %d: 'tool_calls' are not supported: TinyAI does not call tools", k);
    out->role = r;
    if (cJSON_IsString(content)) {
        out->content = content->valuestring;
    } else if (assistant && (!content || cJSON_IsNull(content))) {
        out->content = "";
    } else if (cJSON_IsArray(content)) {
        size_t len = 0;
        const cJSON *part;
        cJSON_ArrayForEach(part, content) {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type"),
                        *t = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (!cJSON_IsString(type) || strcmp(type->valuestring, "text"))
                return no(b,
                          "message %d: content part type '%.40s' is not supported: the model reads "
                          "text ({\"type\": \"text\", \"text\": ...})",
                          k, cJSON_IsString(type) ? type->valuestring : "(none)");
            if (!cJSON_IsString(t)) return no(b, "message %d: a text part needs a string 'text'", k);
            len += strlen(t->valuestring) + 1;
        }
        char *j = malloc(len + 1), *o = j;
        if (!j) return no(b, "out of memory");
        cJSON_ArrayForEach(part, content) {
            const char *t = cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring;
            if (o != j) *o++ = '\n';
            const size_t n = strlen(t);
            memcpy(o, t, n);
            o += n;
        }
        *o = 0;
        out->content = *own = j;
    } else {
        return no(b, "message %d needs a 'content': a string or a list of text parts%s", k,
                  assistant ? " (or null)" : "");
    }
    if (!tai_valid_utf8(out->content)) return no(b, "message %d is not valid UTF-8", k);
    return true;
}

/* Tools (and the older functions) are refused unless the request also
 * says not to use them: the answer would be text where the client waits
 * for a call. An empty list is no tools. */
static bool tools_absent(const cJSON *root, bad *b) {
    static const char *const pairs[][2] = {{"tools", "tool_choice"}, {"functions", "function_call"}};
    for (int i = 0; i < 2; i++) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, pairs[i][0]),
                    *choice = cJSON_GetObjectItemCaseSensitive(root, pairs[i][1]);
        const bool none = cJSON_IsString(choice) && !strcmp(choice->valuestring, "none");
        const bool some = t && !cJSON_IsNull(t) && !(cJSON_IsArray(t) && cJSON_GetArraySize(t) == 0);
        const bool wants = choice && !cJSON_IsNull(choice) && !none &&
                           !(cJSON_IsString(choice) && !strcmp(choice->valuestring, "auto"));
        if ((some && !none) || wants)
            return no(b,
                      "'%s' is not supported: TinyAI does not call tools (send none, or '%s': "
                      "\"none\")",
                      pairs[i][0], pairs[i][1]);
    }
    return true;
}

/* response_format: absent, null or {"type": "text"}; JSON modes are
 * refused rather than answered with text that may not parse. */
static bool response_format_ok(const cJSON *root, bad *b) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "response_format");
    if (!f || cJSON_IsNull(f)) return true;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(f, "type");
    if (cJSON_IsObject(f) && cJSON_IsString(t) && !strcmp(t->valuestring, "text")) return true;
    return no(b, "'response_format' %s%.40s%s is not supported (only {\"type\": \"text\"})",
              cJSON_IsString(t) ? "of type '" : "", cJSON_IsString(t) ? t->valuestring : "",
              cJSON_IsString(t) ? "'" : "");
}

/* The completion options TinyAI does not offer, refused rather than
 * ignored: best_of above 1, a suffix to fill in. echo is read here. */
static bool completion_extras_of(const cJSON *root, tai_request *q, bad *b) {
    const cJSON *echo = cJSON_GetObjectItemCaseSensitive(root, "echo"),
                *best = cJSON_GetObjectItemCaseSensitive(root, "best_of"),
                *suffix = cJSON_GetObjectItemCaseSensitive(root, "suffix");
    if (echo && !cJSON_IsBool(echo) && !cJSON_IsNull(echo)) return no(b, "'echo' must be true or false");
    q->echo = cJSON_IsTrue(echo);
    const char *what = best && !cJSON_IsNull(best) && !(cJSON_IsNumber(best) && best->valuedouble == 1)
                           ? "'best_of' other than 1"
                       : suffix && !cJSON_IsNull(suffix) &&
                               !(cJSON_IsString(suffix) && !*suffix->valuestring)
                           ? "'suffix'"
                           : NULL;
    return what ? no(b, "%s is not supported", what) : true;
}

/* A completion prompt given as token ids (a list of integers, each a token
 * of the model's vocabulary), taken as it is: no BOS is added. */
static bool token_prompt(const cJSON *p, int n_vocab, tai_request *q, bad *b) {
    const int n = cJSON_GetArraySize(p);
    if (n == 0) return no(b, "the prompt is empty");
    if (!(q->ids = malloc((size_t)n * sizeof *q->ids))) return no(b, "out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, p) {
        const double v = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (!(v >= 0 && v < n_vocab && v == (double)(int32_t)v))
            return no(b, "'prompt' token %zu must be a token id between 0 and %d", q->n_ids, n_vocab - 1);
        q->ids[q->n_ids++] = (int32_t)v;
    }
    return true;
}

/* logit_bias: {"token id": bias in [-100, 100], ...}, at most
 * TAI_MAX_BIASES. */
static bool logit_bias_of(const cJSON *root, int n_vocab, tai_request *q, bad *b) {
    const cJSON *lb = cJSON_GetObjectItemCaseSensitive(root, "logit_bias");
    if (!lb || cJSON_IsNull(lb)) return true;
    const int n = cJSON_IsObject(lb) ? cJSON_GetArraySize(lb) : -1;
    if (n < 0 || n > TAI_MAX_BIASES)
        return no(b, "'logit_bias' must be an object of at most %d token ids and biases", TAI_MAX_BIASES);
    if (n == 0) return true;
    if (!(q->bias = malloc((size_t)n * sizeof *q->bias))) return no(b, "out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, lb) {
        char *end = NULL;
        errno = 0;
        const long tok = it->string ? strtol(it->string, &end, 10) : -1;
        if (!it->string || !*it->string || *end || errno || tok < 0 || tok >= n_vocab)
            return no(b, "'logit_bias' keys must be token ids between 0 and %d, got '%.40s'", n_vocab - 1,
                      it->string ? it->string : "");
        if (!cJSON_IsNumber(it) || !(it->valuedouble >= -100 && it->valuedouble <= 100))
            return no(b, "'logit_bias' values must be numbers between -100 and 100");
        q->bias[q->n_bias++] = (tai_bias){(int32_t)tok, (float)it->valuedouble};
    }
    return true;
}

/* The prompt: a conversation (chat) or a text or token ids. */
static bool prompt_of(const cJSON *root, int n_vocab, tai_request *q, bad *b) {
    if (q->chat) {
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
        const int n = cJSON_IsArray(msgs) ? cJSON_GetArraySize(msgs) : -1;
        if (n <= 0 || n > 4096) return no(b, "'messages' must be a non-empty array (at most 4096)");
        q->msgs = calloc((size_t)n, sizeof *q->msgs);
        q->own = calloc((size_t)n, sizeof *q->own);
        if (!q->msgs || !q->own) return no(b, "out of memory");
        q->n_msgs = n;
        int k = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, msgs) {
            if (!message_of(it, k, &q->msgs[k], &q->own[k], b)) return false;
            k++;
        }
        return tools_absent(root, b);
    }
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && !cJSON_IsNumber(cJSON_GetArrayItem(p, 0)))
        p = cJSON_GetArrayItem(p, 0);
    if (cJSON_IsArray(p)) {
        if (!token_prompt(p, n_vocab, q, b)) return false;
    } else if (!cJSON_IsString(p)) {
        return no(b, "'prompt' must be a string or token ids (or a list of one of them)");
    } else if (!tai_valid_utf8(p->valuestring)) {
        return no(b, "'prompt' is not valid UTF-8");
    } else if (strlen(p->valuestring) > TAI_MAX_PROMPT_BYTES) {
        return no(b, "'prompt' is longer than %u bytes", TAI_MAX_PROMPT_BYTES);
    } else {
        q->text = p->valuestring;
    }
    return completion_extras_of(root, q, b);
}

/* The sampling and output parameters. */
static bool params_of(const cJSON *root, int n_vocab, tai_request *q, bad *b) {
    double v = 0;
    /* 0 tokens only where the prompt comes back (echo: scoring a text) */
    const double least = q->echo ? 0 : 1;
    if (!num_field(root, "max_tokens", least, 1e9, -1, &q->max_tokens, b) ||
        !num_field(root, "max_completion_tokens", least, 1e9, q->max_tokens, &q->max_tokens, b))
        return false;
    if (!num_field(root, "temperature", 0, 2, 1.0, &v, b)) return false;
    q->temperature = (float)v;
    if (!num_field(root, "top_p", 1e-9, 1, 1.0, &v, b)) return false;
    q->top_p = (float)v;
    if (!num_field(root, "top_k", 0, 1e6, 0, &v, b)) return false;
    q->top_k = (int)v;
    if (!num_field(root, "repeat_penalty", 0.01, 100, 1.0, &v, b)) return false;
    q->repeat_penalty = (float)v;
    if (!num_field(root, "seed", 0, 9007199254740991.0, 0, &v, b)) return false;
    q->seeded = cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(root, "seed"));
    q->seed = (uint64_t)v;
    if (!num_field(root, "presence_penalty", -2, 2, 0, &v, b)) return false;
    q->presence = (float)v;
    if (!num_field(root, "frequency_penalty", -2, 2, 0, &v, b)) return false;
    q->frequency = (float)v;
    if (!logit_bias_of(root, n_vocab, q, b)) return false;
    if (!num_field(root, "n", 1, TAI_MAX_CHOICES, 1, &v, b) || v != (int)v)
        return no(b, "'n' must be a whole number of choices from 1 to %d", TAI_MAX_CHOICES);
    q->n = (int)v;
    /* log-probabilities: chat {"logprobs": true, "top_logprobs": N};
     * completions {"logprobs": N} */
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(root, "logprobs");
    if (q->chat) {
        if (lp && !cJSON_IsBool(lp) && !cJSON_IsNull(lp)) return no(b, "'logprobs' must be true or false");
        if (!num_field(root, "top_logprobs", 0, TAI_MAX_TOP_LOGPROBS, 0, &v, b)) return false;
        if (cJSON_IsTrue(lp)) q->logprobs = (int)v;
        else if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(root, "top_logprobs")))
            return no(b, "'top_logprobs' needs 'logprobs': true");
    } else if (lp && !cJSON_IsNull(lp)) {
        if (!num_field(root, "logprobs", 0, TAI_MAX_TOP_LOGPROBS, 0, &v, b)) return false;
        q->logprobs = (int)v;
    }
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (cJSON_IsString(stop)) {
        if (*stop->valuestring && !(q->stops[q->n_stops++] = strdup(stop->valuestring)))
            return no(b, "out of memory");
    } else if (cJSON_IsArray(stop)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, stop) {
            if (!cJSON_IsString(it) || q->n_stops == TAI_MAX_STOPS)
                return no(b, "'stop' must be a string or up to %d strings", TAI_MAX_STOPS);
            if (*it->valuestring && !(q->stops[q->n_stops++] = strdup(it->valuestring)))
                return no(b, "out of memory");
        }
    } else if (stop && !cJSON_IsNull(stop)) {
        return no(b, "'stop' must be a string or a list of strings");
    }
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "stream");
    if (st && !cJSON_IsBool(st) && !cJSON_IsNull(st)) return no(b, "'stream' must be true or false");
    q->stream = cJSON_IsTrue(st);
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    q->usage_in_stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
    return true;
}

bool tai_request_parse(const cJSON *root, bool chat, int n_vocab, tai_request *q, char *why,
                       size_t cap) {
    bad b = {why, cap};
    memset(q, 0, sizeof *q);
    q->chat = chat;
    q->logprobs = -1;
    q->n = 1;
    if (!cJSON_IsObject(root)) return no(&b, "the body must be a JSON object");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    bool ok = true;
    if (model && !cJSON_IsString(model) && !cJSON_IsNull(model)) ok = no(&b, "'model' must be a string");
    ok = ok && prompt_of(root, n_vocab, q, &b) && response_format_ok(root, &b) &&
         params_of(root, n_vocab, q, &b);
    if (!ok) tai_request_free(q);
    return ok;
}

void tai_request_free(tai_request *q) {
    for (int k = 0; q->own && k < q->n_msgs; k++) free(q->own[k]);
    free(q->own);
    free(q->msgs);
    free(q->ids);
    free(q->bias);
    for (int i = 0; i < q->n_stops; i++) free(q->stops[i]);
    memset(q, 0, sizeof *q);
}
