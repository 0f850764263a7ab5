/*
 * runtime/tokenizer: byte-level BPE ("gpt2" tokenizer model: GPT-2, SmolLM2,
 * Llama 3), as Hugging Face `tokenizers` and llama.cpp do it.
 *
 *  1. Pre-tokenization: the text is cut into pieces by the regexes of the
 *     family named in tokenizer.ggml.pre (PCRE2, UTF + UCP, compiled once).
 *     Each regex splits every piece the one before it made; stretches no
 *     match covers (only invalid UTF-8 can be such) stay pieces of their own,
 *     so every byte of the text ends up in exactly one piece.
 *  2. Each byte of a piece is one symbol: the token of its GPT-2
 *     bytes_to_unicode character.
 *  3. Merges: the adjacent pair with the lowest merge rank is merged, the
 *     leftmost first on ties, until no adjacent pair has a merge. The pairs
 *     wait in a binary heap keyed by (rank, position) over a linked list of
 *     symbols; an entry whose symbols changed since it was pushed is skipped
 *     when popped. That is O(n log n) per piece instead of the O(n^2) of
 *     rescanning the word after every merge.
 */
#include "runtime/tokenizer/tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"

/* ---- GPT-2 bytes_to_unicode --------------------------------------------- */

/* Printable bytes stand for themselves ('!'..'~', '¡'..'¬', '®'..'ÿ'); the
 * others (0..32, 127..160, 173), in order, for U+0100 onwards. */
uint32_t tai_bpe_byte_to_cp(uint8_t b) {
    if (b <= 32) return 256u + b;
    if (b >= 127 && b <= 160) return 289u + (b - 127u);
    if (b == 173) return 323u;
    return b;
}

int tai_bpe_cp_to_byte(uint32_t cp) {
    if (cp < 256) {
        bool direct = (cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || cp >= 174;
        return direct ? (int)cp : -1;
    }
    if (cp <= 288) return (int)(cp - 256);
    if (cp <= 322) return (int)(cp - 289 + 127);
    if (cp == 323) return 173;
    return -1;
}

/* ---- Pre-tokenizer regexes ---------------------------------------------- */

/* GPT-2's pattern as Hugging Face's ByteLevel pre-tokenizer has it (with the
 * final \s+ that llama.cpp's hand-written splitter also implements). */
static const char k_gpt2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
/* SmolLM2 (like StarCoder): Digits(individual_digits) before ByteLevel, i.e.
 * every \p{N} character is a piece of its own. */
static const char k_digit[] = "\\p{N}";
/* Llama 3. */
static const char k_llama3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* Qwen 2 (and 2.5, 3): Llama 3's with every digit a piece of its own. */
static const char k_qwen2[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static TinyAIStatus compile(tai_tokenizer *tok, const char *pattern) {
    int err;
    PCRE2_SIZE at;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                      PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &at, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof(msg));
        return tai_error(TINYAI_ERR_INTERNAL, "tokenizer: pre-tokenizer regex: %s at %zu",
                         (char *)msg, (size_t)at);
    }
    /* JIT where PCRE2 has it; the interpreter otherwise. Either way the
     * compiled code is read-only and shared by all threads. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    tok->re[tok->n_re++] = re;
    return TINYAI_OK;
}

TinyAIStatus tai_bpe_init_regex(tai_tokenizer *tok) {
    TinyAIStatus st;
    switch (tok->pre) {
    case TAI_PRE_SMOLLM:
        if ((st = compile(tok, k_digit))) return st;
        return compile(tok, k_gpt2);
    case TAI_PRE_LLAMA3:
        return compile(tok, k_llama3);
    case TAI_PRE_QWEN2:
        return compile(tok, k_qwen2);
    case TAI_PRE_GPT2:
    default:
        return compile(tok, k_gpt2);
    }
}

void tai_bpe_free_regex(tai_tokenizer *tok) {
    for (int i = 0; i < tok->n_re; i++) pcre2_code_free(tok->re[i]);
    tok->n_re = 0;
}

void tai_bpe_work_free_md(tai_tok_work *w) {
    for (int i = 0; i < TAI_TOK_MAX_REGEX; i++) {
        pcre2_match_data_free(w->md[i]);
        w->md[i] = NULL;
    }
}

/* ---- Merges ------------------------------------------------------------- */

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static bool merge_find(const tai_tokenizer *tok, int32_t l, int32_t r, int32_t *rank,
                       int32_t *res) {
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    uint64_t i = mix64(key) & tok->mmask;
    for (;;) {
        uint64_t k = tok->mkey[i];
        if (k == UINT64_MAX) return false;
        if (k == key) {
            *rank = tok->mrank[i];
            *res = tok->mres[i];
            return true;
        }
        i = (i + 1) & tok->mmask;
    }
}

TinyAIStatus tai_bpe_load_merges(tai_tokenizer *tok, const tai_model_file *mf) {
    const tai_kv *kv = tai_model_file_find_kv(mf, "tokenizer.ggml.merges");
    if (!kv) return tai_error(TINYAI_ERR_FORMAT, "tokenizer: missing tokenizer.ggml.merges");
    if (kv->type != TAI_KV_ARRAY || kv->v.arr.type != TAI_KV_STRING) {
        return tai_error(TINYAI_ERR_FORMAT,
                         "tokenizer: tokenizer.ggml.merges is not an array of strings");
    }
    if (kv->v.arr.n > INT32_MAX / 4) {
        return tai_error(TINYAI_ERR_FORMAT, "tokenizer: tokenizer.ggml.merges has %llu entries",
                         (unsigned long long)kv->v.arr.n);
    }
    const tai_str *m = (const tai_str *)kv->v.arr.data;
    int32_t n = (int32_t)kv->v.arr.n;
    uint64_t size = 64;
    while (size < 2 * (uint64_t)n) size <<= 1;
    tok->mkey = malloc(sizeof(uint64_t) * size);
    tok->mrank = malloc(sizeof(int32_t) * size);
    tok->mres = malloc(sizeof(int32_t) * size);
    char *cat = malloc((size_t)tok->max_text_len + 1);
    if (!tok->mkey || !tok->mrank || !tok->mres || !cat) {
        free(cat);
        return tai_error(TINYAI_ERR_NOMEM, "tokenizer: out of memory for %d merges", n);
    }
    memset(tok->mkey, 0xff, sizeof(uint64_t) * size);
    tok->mmask = size - 1;
    tok->n_merges = n;

    TinyAIStatus st = TINYAI_OK;
    for (int32_t r = 0; r < n; r++) {
        const char *s = m[r].str;
        size_t len = s ? (size_t)m[r].len : 0;
        /* "left right": the first space after the first byte separates them
         * (byte-level tokens never hold a space; llama.cpp splits the same). */
        const char *sp = len >= 3 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp || sp == s + len - 1) {
            st = tai_error(TINYAI_ERR_FORMAT, "tokenizer: merge %d \"%.*s\" is not two tokens", r,
                           (int)(len > 64 ? 64 : len), s ? s : "");
            break;
        }
        size_t nl = (size_t)(sp - s), nr = len - nl - 1;
        int32_t l = tai_tok_lookup(tok, s, nl);
        int32_t rr = tai_tok_lookup(tok, sp + 1, nr);
        int32_t res = -1;
        if (l >= 0 && rr >= 0 && nl + nr <= tok->max_text_len) {
            memcpy(cat, s, nl);
            memcpy(cat + nl, sp + 1, nr);
            res = tai_tok_lookup(tok, cat, nl + nr);
        }
        if (l < 0 || rr < 0 || res < 0) {
            const char *which = l < 0 ? "left" : rr < 0 ? "right" : "merged";
            st = tai_error(TINYAI_ERR_FORMAT,
                           "tokenizer: merge %d \"%.*s\" references a token not in the "
                           "vocabulary (%s)",
                           r, (int)(len > 64 ? 64 : len), s, which);
            break;
        }
        uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)rr;
        uint64_t i = mix64(key) & tok->mmask;
        while (tok->mkey[i] != UINT64_MAX && tok->mkey[i] != key) i = (i + 1) & tok->mmask;
        if (tok->mkey[i] == key) continue; /* a repeated pair keeps its first rank */
        tok->mkey[i] = key;
        tok->mrank[i] = r;
        tok->mres[i] = res;
    }
    free(cat);
    return st;
}

/* ---- Merge loop --------------------------------------------------------- */

typedef struct {
    int32_t rank, left, right;
    int32_t lid, rid, res; /* the pair when pushed, and what it merges into */
} bpe_pair;

static bool pair_less(const bpe_pair *a, const bpe_pair *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void heap_push(tai_tok_work *w, bpe_pair p) {
    bpe_pair *h = w->heap;
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!pair_less(&p, &h[up])) break;
        h[i] = h[up];
        i = up;
    }
    h[i] = p;
}

static bpe_pair heap_pop(tai_tok_work *w) {
    bpe_pair *h = w->heap;
    bpe_pair top = h[0];
    bpe_pair last = h[--w->heap_n];
    size_t n = w->heap_n, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && pair_less(&h[c + 1], &h[c])) c++;
        if (!pair_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (n > 0) h[i] = last;
    return top;
}

static void try_pair(const tai_tokenizer *tok, tai_tok_work *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0 || w->id[l] < 0 || w->id[r] < 0) return;
    bpe_pair p;
    if (!merge_find(tok, w->id[l], w->id[r], &p.rank, &p.res)) return;
    p.left = l;
    p.right = r;
    p.lid = w->id[l];
    p.rid = w->id[r];
    heap_push(w, p);
}

/* Encodes one piece of the pre-tokenizer. */
static TinyAIStatus bpe_piece(const tai_tokenizer *tok, tai_tok_work *w, const char *s, size_t n,
                              tai_tok_out *out) {
    if (n == 0) return TINYAI_OK;
    if (n > INT32_MAX / 4) return tai_error(TINYAI_ERR_RANGE, "tokenizer: text piece too long");
    TinyAIStatus st;
    if (tok->ignore_merges && n <= tok->max_text_len) {
        /* Llama 3: a piece that is a token as a whole is that token. */
        if ((st = tai_tok_work_buf(w, 2 * n))) return st;
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            m += (size_t)tai_utf8_encode(tai_bpe_byte_to_cp((uint8_t)s[i]), w->buf + m);
        }
        int32_t id = tai_tok_lookup(tok, w->buf, m);
        if (id >= 0) {
            tai_tok_emit(out, id);
            return TINYAI_OK;
        }
    }
    /* At most n - 1 initial pairs and two more per merge. */
    if ((st = tai_tok_work_reserve(w, n, 3 * n, sizeof(bpe_pair)))) return st;
    int32_t k = (int32_t)n;
    for (int32_t i = 0; i < k; i++) {
        w->id[i] = tok->byte_tok[(uint8_t)s[i]];
        w->prev[i] = i - 1;
        w->next[i] = i + 1 < k ? i + 1 : -1;
    }
    w->heap_n = 0;
    for (int32_t i = 0; i + 1 < k; i++) try_pair(tok, w, i, i + 1);
    while (w->heap_n > 0) {
        bpe_pair p = heap_pop(w);
        int32_t l = p.left, r = p.right;
        /* Stale: one side merged into something else since the push. */
        if (w->next[l] != r || w->id[l] != p.lid || w->id[r] != p.rid) continue;
        w->id[l] = p.res;
        w->id[r] = -2; /* dead */
        w->next[l] = w->next[r];
        if (w->next[r] >= 0) w->prev[w->next[r]] = l;
        w->next[r] = -1;
        try_pair(tok, w, w->prev[l], l);
        try_pair(tok, w, l, w->next[l]);
    }
    for (int32_t i = 0; i >= 0; i = w->next[i]) {
        if (w->id[i] >= 0) {
            tai_tok_emit(out, w->id[i]);
            continue;
        }
        /* A byte the vocabulary cannot spell: U+FFFD instead. (Hugging Face
         * and llama.cpp drop such bytes without a trace.) */
        if (tok->n_repl == 0) {
            return tai_error(
                TINYAI_ERR_UNSUPPORTED,
                "tokenizer: byte 0x%02x has no token in this vocabulary (nor has U+FFFD)",
                (unsigned)(uint8_t)s[i]);
        }
        for (int j = 0; j < tok->n_repl; j++) tai_tok_emit(out, tok->repl_ids[j]);
    }
    return TINYAI_OK;
}

TinyAIStatus tai_bpe_init_replacement(tai_tokenizer *tok) {
    tai_tok_work w;
    memset(&w, 0, sizeof(w));
    int32_t ids[4];
    tai_tok_out out = {ids, 4, 0};
    tok->n_repl = 0;
    TinyAIStatus st = bpe_piece(tok, &w, "\xef\xbf\xbd", 3, &out);
    tai_tok_work_free(&w);
    if (st == TINYAI_ERR_NOMEM) return st;
    if (st == TINYAI_OK && out.n <= 4) {
        memcpy(tok->repl_ids, ids, sizeof(int32_t) * out.n);
        tok->n_repl = (int)out.n;
    }
    return TINYAI_OK;
}

/* Splits s[0..n) with regex `level` and hands every piece, matched or not,
 * to the next level; past the last regex, to the merge loop. */
static TinyAIStatus split(const tai_tokenizer *tok, tai_tok_work *w, int level, const char *s,
                          size_t n, tai_tok_out *out) {
    if (level == tok->n_re) return bpe_piece(tok, w, s, n, out);
    const pcre2_code *re = tok->re[level];
    if (!w->md[level]) {
        w->md[level] = pcre2_match_data_create_from_pattern(re, NULL);
        if (!w->md[level])
            return tai_error(TINYAI_ERR_NOMEM, "tokenizer: out of memory for regex match data");
    }
    pcre2_match_data *md = w->md[level];
    TinyAIStatus st;
    size_t gap = 0, off = 0;
    while (off < n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, off, 0, md, NULL);
        /* The JIT's stack is small and fixed; the interpreter's is on the heap. */
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
            rc = pcre2_match(re, (PCRE2_SPTR)s, n, off, PCRE2_NO_JIT, md, NULL);
        }
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof(msg));
            return tai_error(TINYAI_ERR_INTERNAL, "tokenizer: pre-tokenizer regex failed: %s",
                             (char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) { /* no pattern here matches empty; step on regardless */
            off = ms + 1;
            continue;
        }
        if (ms > gap && (st = split(tok, w, level + 1, s + gap, ms - gap, out))) return st;
        if ((st = split(tok, w, level + 1, s + ms, me - ms, out))) return st;
        gap = off = me;
    }
    if (gap < n) return split(tok, w, level + 1, s + gap, n - gap, out);
    return TINYAI_OK;
}

TinyAIStatus tai_bpe_encode(const tai_tokenizer *tok, tai_tok_work *w, const char *text, size_t len,
                            tai_tok_out *out) {
    return split(tok, w, 0, text, len, out);
}
