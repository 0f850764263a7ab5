/*
 * runtime/tokenizer: SentencePiece-style BPE ("llama" tokenizer model: Llama 2,
 * TinyLlama, Mistral v0.1), as llama.cpp's llm_tokenizer_spm does it.
 *
 *  1. Spaces become U+2581 ("▁"); with add_space_prefix, one more goes first
 *     (at the start of the text and after each special token).
 *  2. Each UTF-8 character is a symbol (an invalid byte is one on its own).
 *  3. Repeatedly, the adjacent pair whose concatenation is the vocabulary
 *     token with the highest score is merged (the leftmost on ties). Pairs
 *     wait in a binary heap over a linked list of symbols; an entry whose
 *     symbols changed since it was pushed is skipped when popped.
 *  4. A final symbol that is a token is emitted; one that is not (a character
 *     missing from the vocabulary) falls back to its bytes, as <0xXX> tokens.
 *
 * Only normal, user-defined and untyped tokens take part: control, byte and
 * unused tokens are never formed from text (as in SentencePiece itself).
 */
#include "runtime/tokenizer/tokenizer_internal.h"

#include <string.h>

#include "core/error.h"

typedef struct {
    float score;
    int32_t left, right, size;
} spm_pair;

/* Max-heap: the higher score first, then the lower position. */
static bool pair_before(const spm_pair *a, const spm_pair *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(tai_tok_work *w, spm_pair p) {
    spm_pair *h = w->heap;
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!pair_before(&p, &h[up])) break;
        h[i] = h[up];
        i = up;
    }
    h[i] = p;
}

static spm_pair heap_pop(tai_tok_work *w) {
    spm_pair *h = w->heap;
    spm_pair top = h[0];
    spm_pair last = h[--w->heap_n];
    size_t n = w->heap_n, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && pair_before(&h[c + 1], &h[c])) c++;
        if (!pair_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (n > 0) h[i] = last;
    return top;
}

static bool mergeable(const tai_tokenizer *tok, int32_t id) {
    int t = tok->type[id];
    return t == TAI_TT_NORMAL || t == TAI_TT_USER_DEFINED || t == TAI_TT_UNDEFINED;
}

/* The token spelled by buf[start .. start + n), if it may be formed. */
static int32_t find_piece(const tai_tokenizer *tok, const char *buf, int32_t start, int32_t n) {
    int32_t id = tai_tok_lookup(tok, buf + start, (size_t)n);
    return id >= 0 && mergeable(tok, id) ? id : -1;
}

static void try_pair(const tai_tokenizer *tok, tai_tok_work *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    int32_t size = w->len[l] + w->len[r];
    int32_t id = find_piece(tok, w->buf, w->start[l], size);
    if (id < 0) return;
    spm_pair p = {tok->score[id], l, r, size};
    heap_push(w, p);
}

TinyAIStatus tai_spm_encode(const tai_tokenizer *tok, tai_tok_work *w, const char *text, size_t len,
                            bool add_prefix, tai_tok_out *out) {
    if (len > INT32_MAX / 8) return tai_error(TINYAI_ERR_RANGE, "tokenizer: text too long");
    TinyAIStatus st;
    /* 1. Escape: each space (and the prefix) is 3 bytes of U+2581. */
    if ((st = tai_tok_work_buf(w, 3 * len + 3))) return st;
    char *b = w->buf;
    size_t m = 0;
    if (add_prefix) {
        memcpy(b, "\xe2\x96\x81", 3);
        m = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(b + m, "\xe2\x96\x81", 3);
            m += 3;
        } else {
            b[m++] = text[i];
        }
    }
    if (m == 0) return TINYAI_OK;

    /* 2. One symbol per character. */
    if ((st = tai_tok_work_reserve(w, m, 3 * m, sizeof(spm_pair)))) return st;
    int32_t k = 0;
    for (size_t i = 0; i < m;) {
        uint32_t cp;
        int n = tai_utf8_decode((const unsigned char *)b + i, m - i, &cp);
        w->start[k] = (int32_t)i;
        w->len[k] = n;
        w->prev[k] = k - 1;
        w->next[k] = k + 1;
        k++;
        i += (size_t)n;
    }
    w->next[k - 1] = -1;

    /* 3. Merge the best-scoring pair first. */
    w->heap_n = 0;
    for (int32_t i = 0; i + 1 < k; i++) try_pair(tok, w, i, i + 1);
    while (w->heap_n > 0) {
        spm_pair p = heap_pop(w);
        int32_t l = p.left, r = p.right;
        /* Stale: either side was merged into another symbol since. */
        if (w->len[l] == 0 || w->len[r] == 0 || w->next[l] != r ||
            w->len[l] + w->len[r] != p.size) {
            continue;
        }
        w->len[l] += w->len[r];
        w->len[r] = 0;
        w->next[l] = w->next[r];
        if (w->next[r] >= 0) w->prev[w->next[r]] = l;
        try_pair(tok, w, w->prev[l], l);
        try_pair(tok, w, l, w->next[l]);
    }

    /* 4. Emit; characters without a token fall back to byte tokens. */
    for (int32_t i = 0; i >= 0; i = w->next[i]) {
        int32_t id = find_piece(tok, b, w->start[i], w->len[i]);
        if (id >= 0) {
            tai_tok_emit(out, id);
            continue;
        }
        for (int32_t j = 0; j < w->len[i]; j++) {
            uint8_t byte = (uint8_t)b[w->start[i] + j];
            if (tok->byte_tok[byte] < 0) {
                return tai_error(
                    TINYAI_ERR_UNSUPPORTED,
                    "tokenizer: byte 0x%02x has no token (no <0x%02X> and no unknown token)",
                    (unsigned)byte, (unsigned)byte);
            }
            tai_tok_emit(out, tok->byte_tok[byte]);
        }
    }
    return TINYAI_OK;
}
