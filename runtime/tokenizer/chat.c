/*
 * runtime/tokenizer: chat templates without a Jinja engine.
 *
 * The model's tokenizer.chat_template is only inspected to recognise its
 * family, then the family's format is written directly:
 *  - ChatML ("<|im_start|>" in the template, or no template and the token in
 *    the vocabulary): <|im_start|>role\ncontent<|im_end|>\n per message, and
 *    "<|im_start|>assistant\n" to open the assistant's turn. When the template
 *    carries a default system message (SmolLM2, Qwen 2) it is added before
 *    the conversation if the first message is not a system message.
 *  - Llama 2 ("[INST]"): [INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST]
 *    answer</s><s>[INST] ..., with the variants llama.cpp recognises.
 *  - Zephyr ("<|user|>"): <|role|>\ncontent EOS\n, "<|assistant|>\n" to open.
 *  - Gemma ("<start_of_turn>" in the template, or no template and the token
 *    in the vocabulary): <start_of_turn>role\ncontent<end_of_turn>\n with the
 *    assistant's role named "model", contents trimmed; Gemma has no system
 *    role, so a system message's text opens the next user message
 *    (followed by a blank line), as Gemma's own template and llama.cpp do.
 *    "<start_of_turn>model\n" opens the answer. BOS is the tokenizer's.
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "runtime/tokenizer/tokenizer_internal.h"

typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
    bool want_spans;      /* record where the messages' contents went */
    tai_text_span *spans; /* in order, none overlapping */
    size_t n_spans, cap_spans;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n + 1) c *= 2;
        char *q = realloc(b->p, c);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

/* A message's content: appended as sb_add does, its place recorded (when
 * the caller asked) so that the encoder reads it as text, control-token
 * spellings included. */
static void sb_content(sbuf *b, const char *s, size_t n) {
    if (b->oom || n == 0) return;
    if (b->want_spans) {
        if (b->n_spans == b->cap_spans) {
            size_t c = b->cap_spans ? 2 * b->cap_spans : 8;
            tai_text_span *q = realloc(b->spans, c * sizeof *q);
            if (!q) {
                b->oom = true;
                return;
            }
            b->spans = q;
            b->cap_spans = c;
        }
        b->spans[b->n_spans++] = (tai_text_span){b->n, n};
    }
    sb_add(b, s, n);
}

typedef enum { FAM_CHATML, FAM_LLAMA2, FAM_ZEPHYR, FAM_GEMMA } chat_family;

/* The default system message of a ChatML template: the text between
 * "<|im_start|>system\n" (a newline, or the two characters \n inside a Jinja
 * string) and "<|im_end|>", if it is plain text (no quotes, braces or
 * backslashes, which would mean the text is built by the template). */
static bool default_system(const char *tmpl, const char **text, size_t *len) {
    static const char *const heads[] = {"<|im_start|>system\n", "<|im_start|>system\\n"};
    for (size_t h = 0; h < 2; h++) {
        size_t hl = strlen(heads[h]);
        for (const char *p = strstr(tmpl, heads[h]); p; p = strstr(p + 1, heads[h])) {
            const char *s = p + hl;
            const char *e = strstr(s, "<|im_end|>");
            if (!e || e == s || (size_t)(e - s) > 4096) continue;
            if (memchr(s, '\'', (size_t)(e - s)) || memchr(s, '"', (size_t)(e - s)) ||
                memchr(s, '{', (size_t)(e - s)) || memchr(s, '}', (size_t)(e - s)) ||
                memchr(s, '\\', (size_t)(e - s))) {
                continue;
            }
            *text = s;
            *len = (size_t)(e - s);
            return true;
        }
    }
    return false;
}

static void chatml(sbuf *b, const char *tmpl, const tai_chat_message *msgs, size_t n,
                   bool add_assistant) {
    const char *sys;
    size_t sys_len;
    if (tmpl && n > 0 && strcmp(msgs[0].role, "system") != 0 &&
        default_system(tmpl, &sys, &sys_len)) {
        sb_str(b, "<|im_start|>system\n");
        sb_add(b, sys, sys_len);
        sb_str(b, "<|im_end|>\n");
    }
    for (size_t i = 0; i < n; i++) {
        sb_str(b, "<|im_start|>");
        sb_str(b, msgs[i].role);
        sb_str(b, "\n");
        sb_content(b, msgs[i].content, strlen(msgs[i].content));
        sb_str(b, "<|im_end|>\n");
    }
    if (add_assistant) sb_str(b, "<|im_start|>assistant\n");
}

/* Appends content s without trailing (and, if `left`, leading)
 * whitespace. */
static void add_trimmed(sbuf *b, const char *s, bool left) {
    const char *e = s + strlen(s);
    while (left && s < e && strchr(" \t\n\r\v\f", *s)) s++;
    while (e > s && strchr(" \t\n\r\v\f", e[-1])) e--;
    sb_content(b, s, (size_t)(e - s));
}

/* Llama 2's template strips `content` after joining the system block to the
 * first user message, so the system text and the start of that message keep
 * their whitespace; other messages are stripped on both sides. */
static void llama2(sbuf *b, const char *tmpl, const tai_chat_message *msgs, size_t n) {
    bool sys_tags = strstr(tmpl, "<<SYS>>") != NULL;
    bool space_around = strstr(tmpl, "' ' + eos_token") != NULL;
    bool bos_inside = strstr(tmpl, "bos_token + '[INST]") != NULL;
    bool strip = strstr(tmpl, "content.strip()") != NULL;
    bool in_turn = true; /* the first [INST] comes without BOS: callers add it */
    bool after_sys = false;
    sb_str(b, "[INST] ");
    for (size_t i = 0; i < n; i++) {
        const char *role = msgs[i].role;
        const char *content = msgs[i].content;
        if (!in_turn) {
            in_turn = true;
            sb_str(b, bos_inside ? "<s>[INST] " : "[INST] ");
        }
        if (strcmp(role, "system") == 0) {
            if (sys_tags) sb_str(b, "<<SYS>>\n");
            sb_content(b, content, strlen(content));
            sb_str(b, sys_tags ? "\n<</SYS>>\n\n" : "\n");
            after_sys = true;
        } else if (strcmp(role, "user") == 0) {
            strip ? add_trimmed(b, content, !after_sys) : sb_content(b, content, strlen(content));
            sb_str(b, " [/INST]");
            after_sys = false;
        } else {
            if (space_around) sb_str(b, " ");
            strip ? add_trimmed(b, content, true) : sb_content(b, content, strlen(content));
            if (space_around) sb_str(b, " ");
            sb_str(b, "</s>");
            in_turn = false;
            after_sys = false;
        }
    }
}

static void zephyr(sbuf *b, const tai_tokenizer *tok, const tai_chat_message *msgs, size_t n,
                   bool add_assistant) {
    const char *eos = "</s>";
    size_t eos_len = 4;
    if (tok && tai_tokenizer_eos(tok) >= 0) {
        size_t k;
        const char *p = tai_token_piece(tok, tai_tokenizer_eos(tok), true, &k);
        if (p && k > 0) {
            eos = p;
            eos_len = k;
        }
    }
    for (size_t i = 0; i < n; i++) {
        sb_str(b, "<|");
        sb_str(b, msgs[i].role);
        sb_str(b, "|>\n");
        sb_content(b, msgs[i].content, strlen(msgs[i].content));
        sb_add(b, eos, eos_len);
        sb_str(b, "\n");
    }
    if (add_assistant) sb_str(b, "<|assistant|>\n");
}

/* Gemma's turns (see the top). */
static void gemma(sbuf *b, const tai_chat_message *msgs, size_t n, bool add_assistant) {
    const char *sys = NULL; /* a system message waiting for the next user turn */
    for (size_t i = 0; i < n; i++) {
        const char *role = msgs[i].role;
        if (strcmp(role, "system") == 0) {
            sys = msgs[i].content;
            continue;
        }
        const bool model = strcmp(role, "assistant") == 0 || strcmp(role, "model") == 0;
        sb_str(b, "<start_of_turn>");
        sb_str(b, model ? "model" : role);
        sb_str(b, "\n");
        if (sys && !model) {
            add_trimmed(b, sys, true);
            sb_str(b, "\n\n");
            sys = NULL;
        }
        add_trimmed(b, msgs[i].content, true);
        sb_str(b, "<end_of_turn>\n");
    }
    if (add_assistant) sb_str(b, "<start_of_turn>model\n");
}

static TinyAIStatus apply(const char *tmpl, const tai_tokenizer *tok, const tai_chat_message *msgs,
                          size_t n, bool add_assistant, char **out, tai_text_span **spans,
                          size_t *n_spans);

static const char *file_template(const tai_model_file *mf) {
    if (!mf) return NULL;
    const tai_kv *kv = tai_model_file_find_kv(mf, "tokenizer.chat_template");
    return kv && kv->type == TAI_KV_STRING ? kv->v.str.str : NULL;
}

TinyAIStatus tai_chat_apply(const tai_model_file *mf, const tai_tokenizer *tok,
                            const tai_chat_message *msgs, size_t n, bool add_assistant,
                            char **out) {
    return apply(file_template(mf), tok, msgs, n, add_assistant, out, NULL, NULL);
}

TinyAIStatus tai_chat_apply_spans(const tai_model_file *mf, const tai_tokenizer *tok,
                                  const tai_chat_message *msgs, size_t n, bool add_assistant,
                                  char **out, tai_text_span **spans, size_t *n_spans) {
    return tai_chat_apply_template_spans(file_template(mf), tok, msgs, n, add_assistant, out, spans,
                                         n_spans);
}

TinyAIStatus tai_chat_apply_template_spans(const char *tmpl, const tai_tokenizer *tok,
                                           const tai_chat_message *msgs, size_t n,
                                           bool add_assistant, char **out, tai_text_span **spans,
                                           size_t *n_spans) {
    if (spans) *spans = NULL;
    if (n_spans) *n_spans = 0;
    if (!spans || !n_spans) {
        if (out) *out = NULL;
        return tai_error(TINYAI_ERR_INVALID_ARG, "tai_chat_apply: NULL argument");
    }
    return apply(tmpl, tok, msgs, n, add_assistant, out, spans, n_spans);
}

TinyAIStatus tai_chat_apply_template(const char *tmpl, const tai_tokenizer *tok,
                                     const tai_chat_message *msgs, size_t n, bool add_assistant,
                                     char **out) {
    return apply(tmpl, tok, msgs, n, add_assistant, out, NULL, NULL);
}

static TinyAIStatus apply(const char *tmpl, const tai_tokenizer *tok, const tai_chat_message *msgs,
                          size_t n, bool add_assistant, char **out, tai_text_span **spans,
                          size_t *n_spans) {
    if (out) *out = NULL;
    if (!out || (!msgs && n > 0))
        return tai_error(TINYAI_ERR_INVALID_ARG, "tai_chat_apply: NULL argument");
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].role || !msgs[i].content) {
            return tai_error(TINYAI_ERR_INVALID_ARG, "tai_chat_apply: message %zu has no %s", i,
                             msgs[i].role ? "content" : "role");
        }
    }
    chat_family fam;
    if (tmpl) {
        if (strstr(tmpl, "<|im_start|>")) {
            fam = FAM_CHATML;
        } else if (strstr(tmpl, "[INST]")) {
            fam = FAM_LLAMA2;
        } else if (strstr(tmpl, "<|user|>")) {
            fam = FAM_ZEPHYR;
        } else if (strstr(tmpl, "<start_of_turn>")) {
            fam = FAM_GEMMA;
        } else {
            return tai_error(TINYAI_ERR_UNSUPPORTED,
                             "tai_chat_apply: unrecognised chat template (not ChatML, Llama 2 "
                             "[INST], Zephyr or Gemma): \"%.60s...\"",
                             tmpl);
        }
    } else if (tok && tai_tokenizer_find(tok, "<|im_start|>") >= 0) {
        fam = FAM_CHATML;
    } else if (tok && tai_tokenizer_find(tok, "<start_of_turn>") >= 0) {
        fam = FAM_GEMMA;
    } else {
        return tai_error(TINYAI_ERR_UNSUPPORTED,
                         "tai_chat_apply: the model has no chat template and no <|im_start|> "
                         "or <start_of_turn> token");
    }

    sbuf b = {0};
    b.want_spans = spans != NULL;
    sb_add(&b, "", 0); /* an empty conversation still gives "" */
    switch (fam) {
    case FAM_CHATML: chatml(&b, tmpl, msgs, n, add_assistant); break;
    case FAM_LLAMA2: llama2(&b, tmpl, msgs, n); break;
    case FAM_ZEPHYR: zephyr(&b, tok, msgs, n, add_assistant); break;
    case FAM_GEMMA: gemma(&b, msgs, n, add_assistant); break;
    }
    if (b.oom) {
        free(b.p);
        free(b.spans);
        return tai_error(TINYAI_ERR_NOMEM, "tai_chat_apply: out of memory");
    }
    *out = b.p;
    if (spans) {
        *spans = b.spans;
        *n_spans = b.n_spans;
    }
    return TINYAI_OK;
}
