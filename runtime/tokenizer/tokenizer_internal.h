/*
 * runtime/tokenizer: the tokenizer's private state, shared by its files
 * (tokenizer.c: loading, lookups, decoding, special tokens and the encode
 * driver; bpe.c: byte-level BPE; spm.c: SentencePiece-style BPE; chat.c: chat
 * templates). Not to be included from outside runtime/tokenizer.
 *
 * Everything here is built once by tai_tokenizer_load and only read after
 * that, so one tokenizer may encode and decode from several threads at once;
 * each call keeps its scratch memory in a tai_tok_work of its own.
 */
#ifndef TAI_RUNTIME_TOKENIZER_TOKENIZER_INTERNAL_H
#define TAI_RUNTIME_TOKENIZER_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/tokenizer/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* GGUF token types (tokenizer.ggml.token_type), as llama.cpp writes them. */
enum {
    TAI_TT_UNDEFINED = 0,
    TAI_TT_NORMAL = 1,
    TAI_TT_UNKNOWN = 2,
    TAI_TT_CONTROL = 3,
    TAI_TT_USER_DEFINED = 4,
    TAI_TT_UNUSED = 5,
    TAI_TT_BYTE = 6,
};

typedef enum { TAI_TOK_BPE = 1, TAI_TOK_SPM = 2 } tai_tok_kind;

/* Pre-tokenizer families of the byte-level BPE (tokenizer.ggml.pre). */
typedef enum {
    TAI_PRE_GPT2 = 1,   /* "gpt-2", "gpt2", "phi-2", "default": GPT-2's regex */
    TAI_PRE_SMOLLM = 2, /* "smollm": each \p{N} alone, then GPT-2's regex */
    TAI_PRE_LLAMA3 = 3, /* "llama-bpe", "llama3": Llama 3's regex */
    TAI_PRE_QWEN2 = 4,  /* "qwen2", "deepseek-r1-qwen": Llama 3's with single digits */
} tai_tok_pre;

#define TAI_TOK_MAX_REGEX 2
#define TAI_TOK_MAX_EOG 16

struct tai_tokenizer {
    tai_tok_kind kind;
    tai_tok_pre pre;
    int32_t n_vocab;

    /* Token texts as stored in the file, each NUL-terminated, in one arena:
     * token i is text + text_off[i], text_len[i] bytes. */
    char *text;
    size_t text_bytes; /* of the arena (dec's is the same size) */
    uint64_t *text_off;
    uint32_t *text_len;
    uint32_t max_text_len;
    uint8_t *type;  /* TAI_TT_*, per token */
    float *score;   /* per token (0 where the file has none) */

    /* Bytes each token decodes to (byte-level symbols or U+2581 mapped
     * back), NUL-terminated, same layout as text. Control tokens have "". */
    char *dec;
    uint64_t *dec_off;
    uint32_t *dec_len;

    /* Open-addressing hash: token text -> id; -1 marks an empty slot. */
    int32_t *tok_tab;
    uint64_t tok_mask;

    /* BPE merges: (left id << 32 | right id) -> rank and merged id.
     * UINT64_MAX marks an empty slot. */
    uint64_t *mkey;
    int32_t *mrank;
    int32_t *mres;
    uint64_t mmask;
    int32_t n_merges;
    bool ignore_merges; /* Llama 3: a piece that is a token is used whole */

    /* The token for each byte: its byte-level symbol (BPE) or <0xXX> (SPM,
     * else unk); -1 if none. */
    int32_t byte_tok[256];
    /* BPE: the ids of U+FFFD, which stands in for a byte the vocabulary has
     * no symbol for (SmolLM2 lacks 0xC0, 0xC1, 0xF5..0xFF and a few control
     * characters: bytes its training text never had). */
    int32_t repl_ids[4];
    int n_repl;

    /* Tokens matched verbatim in the text: user-defined always, control and
     * unknown ones only when parse_special is set. Grouped by first byte
     * (special_start[b] .. special_start[b + 1]), longest first. */
    int32_t *special;
    uint32_t special_start[257];

    int32_t bos, eos, unk, eot;
    bool add_bos;
    bool add_space_prefix; /* SPM: a space before the text */
    int32_t eog[TAI_TOK_MAX_EOG];
    int n_eog;

    /* Pre-tokenizer: each regex splits every piece of the one before it;
     * unmatched stretches stay pieces of their own. */
    void *re[TAI_TOK_MAX_REGEX]; /* pcre2_code_8 * */
    int n_re;
};

/* Per-call scratch memory, grown on demand, freed by tai_tok_work_free. */
typedef struct {
    void *md[TAI_TOK_MAX_REGEX]; /* pcre2_match_data_8 * */
    int32_t *id;                 /* symbol id (BPE) */
    int32_t *start;              /* symbol byte offset (SPM) */
    int32_t *len;                /* symbol byte length; 0 = merged away */
    int32_t *prev, *next;
    size_t n_sym_cap;
    void *heap;
    size_t heap_n, heap_cap, heap_elem;
    char *buf; /* escaped text (SPM) or mapped piece (BPE) */
    size_t buf_cap;
} tai_tok_work;

/* Where encoded ids go: writes up to cap, counts all. */
typedef struct {
    int32_t *ids;
    size_t cap;
    size_t n;
} tai_tok_out;

static inline void tai_tok_emit(tai_tok_out *o, int32_t id) {
    if (o->n < o->cap) o->ids[o->n] = id;
    o->n++;
}

uint64_t tai_tok_hash(const char *s, size_t n);
/* Id of the token whose text is s[0..n), or -1. */
int32_t tai_tok_lookup(const tai_tokenizer *tok, const char *s, size_t n);

/* Grows w's symbol arrays to n entries and its heap to heap_n entries of
 * elem bytes. TINYAI_ERR_NOMEM on failure. */
TinyAIStatus tai_tok_work_reserve(tai_tok_work *w, size_t n, size_t heap_n, size_t elem);
TinyAIStatus tai_tok_work_buf(tai_tok_work *w, size_t n);
void tai_tok_work_free(tai_tok_work *w);

/* bpe.c: byte-level BPE. */
/* GPT-2's bytes_to_unicode: the code point standing for byte b. */
uint32_t tai_bpe_byte_to_cp(uint8_t b);
/* Inverse: the byte for code point cp, or -1 if cp stands for no byte. */
int tai_bpe_cp_to_byte(uint32_t cp);
/* Compiles the regexes of tok->pre into tok->re; frees them. */
TinyAIStatus tai_bpe_init_regex(tai_tokenizer *tok);
void tai_bpe_free_regex(tai_tokenizer *tok);
/* Frees the regex match data in w. */
void tai_bpe_work_free_md(tai_tok_work *w);
/* Encodes U+FFFD into tok->repl_ids (none if the vocabulary cannot). */
TinyAIStatus tai_bpe_init_replacement(tai_tokenizer *tok);
/* Reads and indexes the merges (tokenizer.ggml.merges). */
TinyAIStatus tai_bpe_load_merges(tai_tokenizer *tok, const tai_model_file *mf);
/* Encodes one fragment of raw text (no special tokens in it). */
TinyAIStatus tai_bpe_encode(const tai_tokenizer *tok, tai_tok_work *w, const char *text,
                            size_t len, tai_tok_out *out);

/* spm.c: SentencePiece-style BPE. add_prefix: put U+2581 first. */
TinyAIStatus tai_spm_encode(const tai_tokenizer *tok, tai_tok_work *w, const char *text,
                            size_t len, bool add_prefix, tai_tok_out *out);

/* Decodes a UTF-8 sequence at s (n bytes left): returns its length (1..4)
 * and the code point, or length 1 and UINT32_MAX for an invalid byte. */
int tai_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* Writes cp as UTF-8 into out (4 bytes room); returns the length. */
int tai_utf8_encode(uint32_t cp, char *out);

#ifdef __cplusplus
}
#endif

#endif /* TAI_RUNTIME_TOKENIZER_TOKENIZER_INTERNAL_H */
