/*
 * runtime/tokenizer: loading the tokenizer from a model file's metadata,
 * token lookups, decoding, special-token splitting and the encode driver.
 * The two tokenizer models live in bpe.c (byte-level BPE) and spm.c
 * (SentencePiece-style BPE); chat templates in chat.c.
 *
 * Load reads, in order: tokenizer.ggml.model, .tokens, .token_type, .scores,
 * .pre and .merges (BPE), the special token ids and flags. Then it builds the
 * text -> id hash, the byte -> token table, each token's decoded bytes, the
 * list of tokens matched verbatim in text, and the end-of-generation set.
 */
#include "runtime/tokenizer/tokenizer_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* ---- Small helpers ------------------------------------------------------ */

uint64_t tai_tok_hash(const char *s, size_t n) {
    /* FNV-1a, then a final mix so that the low bits used for the table
     * index depend on every byte. */
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 31;
    h *= 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
    return h;
}

int32_t tai_tok_lookup(const tai_tokenizer *tok, const char *s, size_t n) {
    if (n > tok->max_text_len) return -1;
    uint64_t i = tai_tok_hash(s, n) & tok->tok_mask;
    for (;;) {
        int32_t id = tok->tok_tab[i];
        if (id < 0) return -1;
        if (tok->text_len[id] == n && memcmp(tok->text + tok->text_off[id], s, n) == 0) {
            return id;
        }
        i = (i + 1) & tok->tok_mask;
    }
}

int tai_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned char c = s[0];
    int len;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2;
        v = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3;
        v = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4;
        v = c & 0x07;
    } else {
        *cp = UINT32_MAX;
        return 1;
    }
    if ((size_t)len > n) {
        *cp = UINT32_MAX;
        return 1;
    }
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = UINT32_MAX;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are invalid. */
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min_cp[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        *cp = UINT32_MAX;
        return 1;
    }
    *cp = v;
    return len;
}

int tai_utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- Scratch memory ----------------------------------------------------- */

static bool grow(void **p, size_t n, size_t elem) {
    if (n > SIZE_MAX / elem) return false;
    void *q = realloc(*p, n * elem);
    if (!q) return false;
    *p = q;
    return true;
}

TinyAIStatus tai_tok_work_reserve(tai_tok_work *w, size_t n, size_t heap_n, size_t elem) {
    if (n > w->n_sym_cap) {
        size_t c = n < 64 ? 64 : n + n / 2;
        if (!grow((void **)&w->id, c, sizeof(int32_t)) ||
            !grow((void **)&w->start, c, sizeof(int32_t)) ||
            !grow((void **)&w->len, c, sizeof(int32_t)) ||
            !grow((void **)&w->prev, c, sizeof(int32_t)) ||
            !grow((void **)&w->next, c, sizeof(int32_t))) {
            return tai_error(TINYAI_ERR_NOMEM, "tokenizer: out of memory for %zu symbols", n);
        }
        w->n_sym_cap = c;
    }
    if (heap_n > w->heap_cap || elem != w->heap_elem) {
        size_t c = heap_n < 64 ? 64 : heap_n + heap_n / 2;
        if (!grow(&w->heap, c, elem)) {
            return tai_error(TINYAI_ERR_NOMEM, "tokenizer: out of memory for the merge queue");
        }
        w->heap_cap = c;
        w->heap_elem = elem;
    }
    return TINYAI_OK;
}

TinyAIStatus tai_tok_work_buf(tai_tok_work *w, size_t n) {
    if (n <= w->buf_cap) return TINYAI_OK;
    size_t c = n < 256 ? 256 : n + n / 2;
    if (!grow((void **)&w->buf, c, 1)) {
        return tai_error(TINYAI_ERR_NOMEM, "tokenizer: out of memory (%zu bytes)", n);
    }
    w->buf_cap = c;
    return TINYAI_OK;
}

void tai_tok_work_free(tai_tok_work *w) {
    tai_bpe_work_free_md(w);
    free(w->id);
    free(w->start);
    free(w->len);
    free(w->prev);
    free(w->next);
    free(w->heap);
    free(w->buf);
    memset(w, 0, sizeof(*w));
}

/* ---- Reading metadata --------------------------------------------------- */

static bool is_int_type(tai_kv_type t) {
    return t == TAI_KV_U8 || t == TAI_KV_I8 || t == TAI_KV_U16 || t == TAI_KV_I16 ||
           t == TAI_KV_U32 || t == TAI_KV_I32 || t == TAI_KV_U64 || t == TAI_KV_I64;
}

static bool is_signed_type(tai_kv_type t) {
    return t == TAI_KV_I8 || t == TAI_KV_I16 || t == TAI_KV_I32 || t == TAI_KV_I64;
}

/* A token id key: absent leaves *out as it is; a negative value means none;
 * a value past the vocabulary is an error. */
static TinyAIStatus get_token_id(const tai_model_file *mf, const char *key, int32_t n_vocab,
                                 int32_t *out) {
    const tai_kv *kv = tai_model_file_find_kv(mf, key);
    if (!kv) return TINYAI_OK;
    if (!is_int_type(kv->type)) {
        return tai_error(TINYAI_ERR_FORMAT, "tokenizer: %s is not an integer", key);
    }
    if (is_signed_type(kv->type) && kv->v.i64 < 0) {
        *out = -1;
        return TINYAI_OK;
    }
    if (kv->v.u64 >= (uint64_t)n_vocab) {
        return tai_error(TINYAI_ERR_FORMAT,
                         "tokenizer: %s = %llu is outside the vocabulary (%d tokens)", key,
                         (unsigned long long)kv->v.u64, n_vocab);
    }
    *out = (int32_t)kv->v.u64;
    return TINYAI_OK;
}

static TinyAIStatus get_flag(const tai_model_file *mf, const char *key, bool *out) {
    const tai_kv *kv = tai_model_file_find_kv(mf, key);
    if (!kv) return TINYAI_OK;
    if (kv->type != TAI_KV_BOOL && !is_int_type(kv->type)) {
        return tai_error(TINYAI_ERR_FORMAT, "tokenizer: %s is not a bool", key);
    }
    *out = kv->v.u64 != 0;
    return TINYAI_OK;
}

/* An array key; absent gives *n = 0 (an error if required). */
static TinyAIStatus get_array(const tai_model_file *mf, const char *key, bool required,
                              const tai_kv **out) {
    const tai_kv *kv = tai_model_file_find_kv(mf, key);
    *out = NULL;
    if (!kv) {
        if (required) return tai_error(TINYAI_ERR_FORMAT, "tokenizer: missing %s", key);
        return TINYAI_OK;
    }
    if (kv->type != TAI_KV_ARRAY) {
        return tai_error(TINYAI_ERR_FORMAT, "tokenizer: %s is not an array", key);
    }
    *out = kv;
    return TINYAI_OK;
}

/* Element i of an integer array (raw little-endian values, maybe unaligned). */
static int64_t arr_int(const tai_kv *kv, uint64_t i) {
    const unsigned char *p = (const unsigned char *)kv->v.arr.data + i * tai_kv_type_size((int)kv->v.arr.type);
    switch (kv->v.arr.type) {
    case TAI_KV_U8: return p[0];
    case TAI_KV_I8: return (int8_t)p[0];
    case TAI_KV_U16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case TAI_KV_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case TAI_KV_U32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case TAI_KV_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case TAI_KV_U64: { uint64_t v; memcpy(&v, p, 8); return v > INT64_MAX ? -1 : (int64_t)v; }
    case TAI_KV_I64: { int64_t v; memcpy(&v, p, 8); return v; }
    default: return -1;
    }
}

/* ---- Load --------------------------------------------------------------- */

static TinyAIStatus load_texts(tai_tokenizer *tok, const tai_kv *kv) {
    if (kv->v.arr.type != TAI_KV_STRING) {
        return tai_error(TINYAI_ERR_FORMAT,
                         "tokenizer: tokenizer.ggml.tokens is not an array of strings");
    }
    if (kv->v.arr.n == 0 || kv->v.arr.n > INT32_MAX / 2) {
        return tai_error(TINYAI_ERR_FORMAT, "tokenizer: tokenizer.ggml.tokens has %llu entries",
                         (unsigned long long)kv->v.arr.n);
    }
    const tai_str *s = (const tai_str *)kv->v.arr.data;
    int32_t n = (int32_t)kv->v.arr.n;
    uint64_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        if (!s[i].str || s[i].len >= UINT32_MAX / 2) {
            return tai_error(TINYAI_ERR_FORMAT, "tokenizer: token %d has a bad text", i);
        }
        total += s[i].len + 1;
    }
    if (total > SIZE_MAX / 2) return tai_error(TINYAI_ERR_NOMEM, "tokenizer: vocabulary too large");
    tok->n_vocab = n;
    tok->text_bytes = (size_t)total;
    tok->text = malloc((size_t)total);
    tok->dec = malloc((size_t)total);
    tok->text_off = malloc(sizeof(uint64_t) * (size_t)n);
    tok->text_len = malloc(sizeof(uint32_t) * (size_t)n);
    tok->dec_len = calloc((size_t)n, sizeof(uint32_t));
    tok->type = malloc((size_t)n);
    tok->score = calloc((size_t)n, sizeof(float));
    if (!tok->text || !tok->dec || !tok->text_off || !tok->text_len || !tok->dec_len ||
        !tok->type || !tok->score) {
        return tai_error(TINYAI_ERR_NOMEM, "tokenizer: out of memory for %d tokens", n);
    }
    uint64_t off = 0;
    for (int32_t i = 0; i < n; i++) {
        memcpy(tok->text + off, s[i].str, (size_t)s[i].len);
        tok->text[off + s[i].len] = '\0';
        tok->dec[off] = '\0';
        tok->text_off[i] = off;
        tok->text_len[i] = (uint32_t)s[i].len;
        if (tok->text_len[i] > tok->max_text_len) tok->max_text_len = tok->text_len[i];
        tok->type[i] = TAI_TT_NORMAL;
        off += s[i].len + 1;
    }
    return TINYAI_OK;
}

static TinyAIStatus load_types_scores(tai_tokenizer *tok, const tai_model_file *mf) {
    const tai_kv *kv;
    TinyAIStatus st = get_array(mf, "tokenizer.ggml.token_type", false, &kv);
    if (st) return st;
    if (kv) {
        if (!is_int_type(kv->v.arr.type)) {
            return tai_error(TINYAI_ERR_FORMAT,
                             "tokenizer: tokenizer.ggml.token_type is not an integer array");
        }
        if (kv->v.arr.n != (uint64_t)tok->n_vocab) {
            return tai_error(TINYAI_ERR_FORMAT,
                             "tokenizer: tokenizer.ggml.token_type has %llu entries for %d tokens",
                             (unsigned long long)kv->v.arr.n, tok->n_vocab);
        }
        for (int32_t i = 0; i < tok->n_vocab; i++) {
            int64_t t = arr_int(kv, (uint64_t)i);
            if (t < TAI_TT_UNDEFINED || t > TAI_TT_BYTE) {
                return tai_error(TINYAI_ERR_FORMAT, "tokenizer: token %d has unknown type %lld", i,
                                 (long long)t);
            }
            tok->type[i] = (uint8_t)t;
        }
    }
    st = get_array(mf, "tokenizer.ggml.scores", false, &kv);
    if (st) return st;
    if (kv) {
        if (kv->v.arr.type != TAI_KV_F32) {
            return tai_error(TINYAI_ERR_FORMAT,
                             "tokenizer: tokenizer.ggml.scores is not a float32 array");
        }
        if (kv->v.arr.n != (uint64_t)tok->n_vocab) {
            return tai_error(TINYAI_ERR_FORMAT,
                             "tokenizer: tokenizer.ggml.scores has %llu entries for %d tokens",
                             (unsigned long long)kv->v.arr.n, tok->n_vocab);
        }
        memcpy(tok->score, kv->v.arr.data, sizeof(float) * (size_t)tok->n_vocab);
    }
    return TINYAI_OK;
}

static TinyAIStatus build_hash(tai_tokenizer *tok) {
    uint64_t size = 64;
    while (size < 2 * (uint64_t)tok->n_vocab) size <<= 1;
    tok->tok_tab = malloc(sizeof(int32_t) * size);
    if (!tok->tok_tab)
        return tai_error(TINYAI_ERR_NOMEM, "tokenizer: out of memory for the token index");
    memset(tok->tok_tab, 0xff, sizeof(int32_t) * size);
    tok->tok_mask = size - 1;
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        const char *s = tok->text + tok->text_off[id];
        uint32_t n = tok->text_len[id];
        /* A duplicate text keeps its first id. */
        if (tai_tok_lookup(tok, s, n) >= 0) continue;
        uint64_t i = tai_tok_hash(s, n) & tok->tok_mask;
        while (tok->tok_tab[i] >= 0) i = (i + 1) & tok->tok_mask;
        tok->tok_tab[i] = id;
    }
    return TINYAI_OK;
}

static void build_byte_tokens(tai_tokenizer *tok) {
    for (int b = 0; b < 256; b++) {
        char s[8];
        int32_t id = -1;
        if (tok->kind == TAI_TOK_BPE) {
            int n = tai_utf8_encode(tai_bpe_byte_to_cp((uint8_t)b), s);
            id = tai_tok_lookup(tok, s, (size_t)n);
        }
        if (id < 0) {
            static const char hex[] = "0123456789ABCDEF";
            memcpy(s, "<0x", 3);
            s[3] = hex[b >> 4];
            s[4] = hex[b & 15];
            s[5] = '>';
            id = tai_tok_lookup(tok, s, 6);
        }
        if (id < 0 && tok->kind == TAI_TOK_SPM) id = tok->unk;
        tok->byte_tok[b] = id;
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* The bytes token id decodes to (written to tok->dec at its offset; never
 * longer than the text). Control, unknown and unused tokens decode to "". */
static void build_decoded(tai_tokenizer *tok, int32_t id) {
    const char *s = tok->text + tok->text_off[id];
    size_t n = tok->text_len[id];
    char *d = tok->dec + tok->text_off[id];
    size_t m = 0;
    int t = tok->type[id];
    if (t == TAI_TT_CONTROL || t == TAI_TT_UNKNOWN || t == TAI_TT_UNUSED) {
        /* nothing */
    } else if (t == TAI_TT_BYTE && n == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' &&
               hexval(s[3]) >= 0 && hexval(s[4]) >= 0) {
        d[m++] = (char)(hexval(s[3]) * 16 + hexval(s[4]));
    } else if (tok->kind == TAI_TOK_BPE && t != TAI_TT_USER_DEFINED) {
        /* Byte-level symbols back to bytes; any other character as is. */
        for (size_t i = 0; i < n;) {
            uint32_t cp;
            int k = tai_utf8_decode((const unsigned char *)s + i, n - i, &cp);
            int b = cp == UINT32_MAX ? -1 : tai_bpe_cp_to_byte(cp);
            if (b >= 0) {
                d[m++] = (char)b;
            } else {
                memcpy(d + m, s + i, (size_t)k);
                m += (size_t)k;
            }
            i += (size_t)k;
        }
    } else if (tok->kind == TAI_TOK_SPM) {
        /* U+2581 (e2 96 81) back to a space. */
        for (size_t i = 0; i < n;) {
            if (i + 3 <= n && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                d[m++] = ' ';
                i += 3;
            } else {
                d[m++] = s[i++];
            }
        }
    } else {
        memcpy(d, s, n);
        m = n;
    }
    d[m] = '\0';
    tok->dec_len[id] = (uint32_t)m;
}

static bool is_verbatim_type(int t) {
    return t == TAI_TT_CONTROL || t == TAI_TT_UNKNOWN || t == TAI_TT_USER_DEFINED;
}

/* Verbatim tokens grouped by first byte, longest first, then by id. */
static int cmp_special(const void *a, const void *b, void *ctx) {
    const tai_tokenizer *tok = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    unsigned char fx = (unsigned char)tok->text[tok->text_off[x]];
    unsigned char fy = (unsigned char)tok->text[tok->text_off[y]];
    if (fx != fy) return fx < fy ? -1 : 1;
    if (tok->text_len[x] != tok->text_len[y]) return tok->text_len[x] > tok->text_len[y] ? -1 : 1;
    return x < y ? -1 : (x > y);
}

static TinyAIStatus build_specials(tai_tokenizer *tok) {
    size_t n = 0;
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        if (is_verbatim_type(tok->type[i]) && tok->text_len[i] > 0) n++;
    }
    tok->special = malloc(sizeof(int32_t) * (n ? n : 1));
    if (!tok->special) return tai_error(TINYAI_ERR_NOMEM, "tokenizer: out of memory");
    n = 0;
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        if (is_verbatim_type(tok->type[i]) && tok->text_len[i] > 0) tok->special[n++] = i;
    }
    qsort_r(tok->special, n, sizeof(int32_t), cmp_special, tok);
    size_t j = 0;
    for (int b = 0; b < 256; b++) {
        tok->special_start[b] = (uint32_t)j;
        while (j < n && (unsigned char)tok->text[tok->text_off[tok->special[j]]] == b) j++;
    }
    tok->special_start[256] = (uint32_t)n;
    return TINYAI_OK;
}

static void add_eog(tai_tokenizer *tok, int32_t id) {
    if (id < 0 || tok->n_eog >= TAI_TOK_MAX_EOG) return;
    for (int i = 0; i < tok->n_eog; i++) {
        if (tok->eog[i] == id) return;
    }
    tok->eog[tok->n_eog++] = id;
}

TinyAIStatus tai_tokenizer_load(const tai_model_file *mf, tai_tokenizer **out) {
    if (!out) return tai_error(TINYAI_ERR_INVALID_ARG, "tai_tokenizer_load: out is NULL");
    *out = NULL;
    if (!mf) return tai_error(TINYAI_ERR_INVALID_ARG, "tai_tokenizer_load: model file is NULL");

    TinyAIStatus st;
    tai_tokenizer *tok = calloc(1, sizeof(*tok));
    if (!tok) return tai_error(TINYAI_ERR_NOMEM, "tokenizer: out of memory");
    tok->bos = tok->eos = tok->unk = tok->eot = -1;

    const tai_kv *kv = tai_model_file_find_kv(mf, "tokenizer.ggml.model");
    if (!kv) {
        st = tai_error(TINYAI_ERR_FORMAT, "tokenizer: missing tokenizer.ggml.model");
        goto fail;
    }
    if (kv->type != TAI_KV_STRING) {
        st = tai_error(TINYAI_ERR_FORMAT, "tokenizer: tokenizer.ggml.model is not a string");
        goto fail;
    }
    const char *model = kv->v.str.str;
    if (strcmp(model, "gpt2") == 0) {
        tok->kind = TAI_TOK_BPE;
    } else if (strcmp(model, "llama") == 0) {
        tok->kind = TAI_TOK_SPM;
    } else {
        st = tai_error(TINYAI_ERR_UNSUPPORTED, "tokenizer: unsupported tokenizer model \"%s\"",
                       model);
        goto fail;
    }

    if ((st = get_array(mf, "tokenizer.ggml.tokens", true, &kv)) != TINYAI_OK) goto fail;
    if ((st = load_texts(tok, kv)) != TINYAI_OK) goto fail;
    if ((st = load_types_scores(tok, mf)) != TINYAI_OK) goto fail;
    if ((st = build_hash(tok)) != TINYAI_OK) goto fail;

    if (tok->kind == TAI_TOK_BPE) {
        tok->pre = TAI_PRE_GPT2;
        kv = tai_model_file_find_kv(mf, "tokenizer.ggml.pre");
        if (kv) {
            if (kv->type != TAI_KV_STRING) {
                st = tai_error(TINYAI_ERR_FORMAT, "tokenizer: tokenizer.ggml.pre is not a string");
                goto fail;
            }
            const char *pre = kv->v.str.str;
            if (strcmp(pre, "gpt-2") == 0 || strcmp(pre, "gpt2") == 0 ||
                strcmp(pre, "phi-2") == 0 || strcmp(pre, "default") == 0) {
                /* "gpt-2" is what llama.cpp's converter writes (and all
                 * llama.cpp accepts); "gpt2" is what TinyAI wrote before */
                tok->pre = TAI_PRE_GPT2;
            } else if (strcmp(pre, "smollm") == 0) {
                tok->pre = TAI_PRE_SMOLLM;
            } else if (strcmp(pre, "qwen2") == 0 || strcmp(pre, "deepseek-r1-qwen") == 0) {
                tok->pre = TAI_PRE_QWEN2; /* Qwen 2, 2.5 and 3 */
            } else if (strcmp(pre, "llama-bpe") == 0 || strcmp(pre, "llama3") == 0) {
                tok->pre = TAI_PRE_LLAMA3;
                tok->ignore_merges = true;
                tok->add_bos = true;
            } else {
                st = tai_error(TINYAI_ERR_UNSUPPORTED,
                               "tokenizer: unsupported pre-tokenizer \"%s\"", pre);
                goto fail;
            }
        }
        if ((st = tai_bpe_load_merges(tok, mf)) != TINYAI_OK) goto fail;
        if ((st = tai_bpe_init_regex(tok)) != TINYAI_OK) goto fail;
    } else {
        /* SentencePiece defaults (llama.cpp's): <unk> 0, <s> 1, </s> 2. */
        tok->add_bos = true;
        tok->add_space_prefix = true;
        if (tok->n_vocab > 2) {
            tok->unk = 0;
            tok->bos = 1;
            tok->eos = 2;
        }
    }

    if ((st = get_token_id(mf, "tokenizer.ggml.bos_token_id", tok->n_vocab, &tok->bos)) ||
        (st = get_token_id(mf, "tokenizer.ggml.eos_token_id", tok->n_vocab, &tok->eos)) ||
        (st = get_token_id(mf, "tokenizer.ggml.unknown_token_id", tok->n_vocab, &tok->unk)) ||
        (st = get_token_id(mf, "tokenizer.ggml.eot_token_id", tok->n_vocab, &tok->eot)) ||
        (st = get_flag(mf, "tokenizer.ggml.add_bos_token", &tok->add_bos))) {
        goto fail;
    }
    if (tok->kind == TAI_TOK_SPM &&
        (st = get_flag(mf, "tokenizer.ggml.add_space_prefix", &tok->add_space_prefix))) {
        goto fail;
    }

    build_byte_tokens(tok);
    if (tok->kind == TAI_TOK_BPE && (st = tai_bpe_init_replacement(tok))) goto fail;
    for (int32_t i = 0; i < tok->n_vocab; i++) build_decoded(tok, i);
    if ((st = build_specials(tok)) != TINYAI_OK) goto fail;

    add_eog(tok, tok->eos);
    add_eog(tok, tok->eot);
    int32_t eom = -1;
    if ((st = get_token_id(mf, "tokenizer.ggml.eom_token_id", tok->n_vocab, &eom))) goto fail;
    add_eog(tok, eom);
    static const char *const eog_names[] = {"<|im_end|>", "<|eot_id|>",  "<|end_of_text|>",
                                            "<|endoftext|>", "</s>",  "<|eom_id|>",
                                            "<end_of_turn>"};
    for (size_t i = 0; i < sizeof(eog_names) / sizeof(eog_names[0]); i++) {
        add_eog(tok, tai_tok_lookup(tok, eog_names[i], strlen(eog_names[i])));
    }

    *out = tok;
    return TINYAI_OK;
fail:
    tai_tokenizer_free(tok);
    return st;
}

void tai_tokenizer_free(tai_tokenizer *tok) {
    if (!tok) return;
    tai_bpe_free_regex(tok);
    free(tok->text);
    free(tok->text_off);
    free(tok->text_len);
    free(tok->type);
    free(tok->score);
    free(tok->dec);
    free(tok->dec_len);
    free(tok->tok_tab);
    free(tok->mkey);
    free(tok->mrank);
    free(tok->mres);
    free(tok->special);
    free(tok);
}

/* ---- Accessors ---------------------------------------------------------- */

size_t tai_tokenizer_memory_bytes(const tai_tokenizer *tok) {
    if (!tok) return 0;
    const size_t n = (size_t)tok->n_vocab;
    size_t b = sizeof *tok + 2 * tok->text_bytes;
    b += n * (sizeof(uint64_t) + 2 * sizeof(uint32_t) + 1 + sizeof(float));
    if (tok->tok_tab) b += sizeof(int32_t) * (size_t)(tok->tok_mask + 1);
    if (tok->mkey) b += (sizeof(uint64_t) + 2 * sizeof(int32_t)) * (size_t)(tok->mmask + 1);
    if (tok->special) b += sizeof(int32_t) * tok->special_start[256];
    return b;
}

int32_t tai_tokenizer_n_vocab(const tai_tokenizer *tok) { return tok ? tok->n_vocab : 0; }
int32_t tai_tokenizer_bos(const tai_tokenizer *tok) { return tok ? tok->bos : -1; }
int32_t tai_tokenizer_eos(const tai_tokenizer *tok) { return tok ? tok->eos : -1; }
bool tai_tokenizer_add_bos(const tai_tokenizer *tok) { return tok && tok->add_bos; }

bool tai_tokenizer_is_eog(const tai_tokenizer *tok, int32_t id) {
    if (!tok || id < 0) return false;
    for (int i = 0; i < tok->n_eog; i++) {
        if (tok->eog[i] == id) return true;
    }
    return false;
}

int32_t tai_tokenizer_find(const tai_tokenizer *tok, const char *text) {
    if (!tok || !text) return -1;
    return tai_tok_lookup(tok, text, strlen(text));
}

/* ---- Encoding ----------------------------------------------------------- */

/* The longest verbatim token starting at s, or -1. */
static int32_t match_special(const tai_tokenizer *tok, const char *s, size_t n, bool parse_special,
                             size_t *mlen) {
    unsigned char b = (unsigned char)s[0];
    for (uint32_t j = tok->special_start[b]; j < tok->special_start[b + 1]; j++) {
        int32_t id = tok->special[j];
        if (!parse_special && tok->type[id] != TAI_TT_USER_DEFINED) continue;
        size_t k = tok->text_len[id];
        if (k <= n && memcmp(s, tok->text + tok->text_off[id], k) == 0) {
            *mlen = k;
            return id;
        }
    }
    return -1;
}

static TinyAIStatus encode_fragment(const tai_tokenizer *tok, tai_tok_work *w, const char *s,
                                    size_t n, bool after_special, tai_tok_out *out) {
    if (tok->kind == TAI_TOK_BPE) return tai_bpe_encode(tok, w, s, n, out);
    return tai_spm_encode(tok, w, s, n, tok->add_space_prefix && after_special, out);
}

/* The verbatim token at text[i] (see match_special): control tokens only
 * where parse_special and, with literal spans, where the match does not
 * reach into one (*span: the first span not ending at or before i,
 * advanced here). */
static int32_t match_at(const tai_tokenizer *tok, const char *text, size_t len, size_t i,
                        bool parse_special, const tai_text_span *lit, size_t n_lit, size_t *span,
                        size_t *k) {
    if (tok->special_start[(unsigned char)text[i]] == tok->special_start[(unsigned char)text[i] + 1])
        return -1;
    if (!parse_special || !n_lit) return match_special(tok, text + i, len - i, parse_special, k);
    while (*span < n_lit && lit[*span].off + lit[*span].len <= i) (*span)++;
    /* the room before the next span (none where i is inside one) */
    const size_t room = *span == n_lit ? len - i : lit[*span].off > i ? lit[*span].off - i : 0;
    /* the longest of: any verbatim token ending before the span, and a
     * user-defined one (matched everywhere) */
    size_t kc = 0, ku = 0;
    const int32_t c = room ? match_special(tok, text + i, room, true, &kc) : -1;
    const int32_t u = match_special(tok, text + i, len - i, false, &ku);
    if (c >= 0 && (u < 0 || kc >= ku)) {
        *k = kc;
        return c;
    }
    *k = ku;
    return u;
}

static TinyAIStatus encode(const tai_tokenizer *tok, const char *text, size_t len,
                           bool parse_special, const tai_text_span *lit, size_t n_lit,
                           int32_t *ids, size_t cap, size_t *n_out) {
    if (n_out) *n_out = 0;
    if (!tok || !n_out || (!text && len) || (!ids && cap) || (!lit && n_lit)) {
        return tai_error(TINYAI_ERR_INVALID_ARG, "tai_tokenize: NULL argument");
    }
    tai_tok_work w;
    memset(&w, 0, sizeof(w));
    tai_tok_out out = {ids, cap, 0};
    TinyAIStatus st = TINYAI_OK;
    bool after_special = true; /* SPM: the text start counts as after one */
    size_t frag = 0, i = 0, span = 0;
    while (i < len) {
        size_t k = 0;
        int32_t id = match_at(tok, text, len, i, parse_special, lit, n_lit, &span, &k);
        if (id < 0) {
            i++;
            continue;
        }
        if (i > frag) {
            if ((st = encode_fragment(tok, &w, text + frag, i - frag, after_special, &out)))
                goto done;
        }
        tai_tok_emit(&out, id);
        after_special = true;
        i += k;
        frag = i;
    }
    if (frag < len) st = encode_fragment(tok, &w, text + frag, len - frag, after_special, &out);
done:
    tai_tok_work_free(&w);
    if (st) return st;
    *n_out = out.n;
    if (out.n > cap) {
        return tai_error(TINYAI_ERR_RANGE, "tai_tokenize: the text needs %zu ids, room for %zu",
                         out.n, cap);
    }
    return TINYAI_OK;
}

TinyAIStatus tai_tokenize(const tai_tokenizer *tok, const char *text, size_t len,
                          bool parse_special, int32_t *ids, size_t cap, size_t *n_out) {
    return encode(tok, text, len, parse_special, NULL, 0, ids, cap, n_out);
}

TinyAIStatus tai_tokenize_spans(const tai_tokenizer *tok, const char *text, size_t len,
                                const tai_text_span *lit, size_t n_lit, int32_t *ids,
                                size_t cap, size_t *n_out) {
    for (size_t j = 0; j < n_lit && lit; j++)
        if (lit[j].off > len || lit[j].len > len - lit[j].off ||
            (j > 0 && lit[j].off < lit[j - 1].off + lit[j - 1].len)) {
            if (n_out) *n_out = 0;
            return tai_error(TINYAI_ERR_INVALID_ARG,
                             "tai_tokenize_spans: span %zu is outside the text or out of order", j);
        }
    return encode(tok, text, len, true, lit, n_lit, ids, cap, n_out);
}

/* ---- Decoding ----------------------------------------------------------- */

const char *tai_token_piece(const tai_tokenizer *tok, int32_t id, bool special, size_t *len) {
    if (len) *len = 0;
    if (!tok || id < 0 || id >= tok->n_vocab) return NULL;
    int t = tok->type[id];
    if (t == TAI_TT_CONTROL || t == TAI_TT_UNKNOWN) {
        if (!special) return "";
        if (len) *len = tok->text_len[id];
        return tok->text + tok->text_off[id];
    }
    if (len) *len = tok->dec_len[id];
    return tok->dec + tok->text_off[id];
}

TinyAIStatus tai_detokenize(const tai_tokenizer *tok, const int32_t *ids, size_t n, bool special,
                            char *buf, size_t cap, size_t *len_out) {
    if (len_out) *len_out = 0;
    if (buf && cap > 0) buf[0] = '\0';
    if (!tok || !len_out || (!ids && n) || (!buf && cap)) {
        return tai_error(TINYAI_ERR_INVALID_ARG, "tai_detokenize: NULL argument");
    }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok->n_vocab) {
            return tai_error(
                TINYAI_ERR_INVALID_ARG,
                "tai_detokenize: id %d at position %zu is outside the vocabulary (%d tokens)",
                ids[i], i, tok->n_vocab);
        }
    }
    /* SentencePiece put a space before the text: the first piece's leading
     * space is that one, not the text's. */
    bool strip = tok->kind == TAI_TOK_SPM && tok->add_space_prefix;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k;
        const char *p = tai_token_piece(tok, ids[i], special, &k);
        if (k == 0) continue;
        if (strip && tok->type[ids[i]] != TAI_TT_CONTROL && tok->type[ids[i]] != TAI_TT_UNKNOWN &&
            p[0] == ' ') {
            p++;
            k--;
        }
        strip = false;
        if (cap > 0 && total < cap - 1) {
            size_t room = cap - 1 - total;
            memcpy(buf + total, p, k < room ? k : room);
        }
        total += k;
    }
    if (cap > 0) buf[total < cap ? total : cap - 1] = '\0';
    *len_out = total;
    if (total >= cap) {
        return tai_error(TINYAI_ERR_RANGE,
                         "tai_detokenize: %zu bytes needed (plus NUL), room for %zu", total, cap);
    }
    return TINYAI_OK;
}
