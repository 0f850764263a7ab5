/*
 * runtime/format/synth.c: the synthetic Llama model writer (synth.h).
 *
 * Randomness: splitmix64 turns (seed, tensor name, row) into the state of a
 * xoshiro256** generator for that row, so rows are independent of the order
 * they are generated in and a test can regenerate any row (tai_synth_row).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "core/error.h"
#include "core/rng.h"
#include "runtime/format/arch_flags.h"
#include "runtime/format/gguf_write.h"
#include "runtime/format/synth.h"

tai_synth_config tai_synth_default_config(void) {
    tai_synth_config c = {
        .name = NULL,
        .n_vocab = 512,
        .n_embd = 128,
        .n_ff = 384,
        .n_head = 4,
        .n_head_kv = 2,
        .n_layer = 2,
        .n_ctx = 256,
        .rope_freq_base = 10000.0f,
        .rms_eps = 1e-5f,
        .matrix_type = TAI_TYPE_Q4_1,
        .embd_type = TAI_TYPE_Q8_0,
        .tied_output = true,
        .seed = 1234,
    };
    return c;
}

TinyAIStatus tai_synth_validate(const tai_synth_config *c) {
    if (!c) return tai_error(TINYAI_ERR_INVALID_ARG, "synth: NULL config");
#define BAD(...) return tai_error(TINYAI_ERR_INVALID_ARG, "synth config: " __VA_ARGS__)
    if (c->n_vocab < 260 || c->n_vocab > TAI_SYNTH_MAX_VOCAB)
        BAD("n_vocab %d out of range 260..%d", c->n_vocab, TAI_SYNTH_MAX_VOCAB);
    if (c->n_embd < 32 || c->n_embd > 65536 || c->n_embd % 32)
        BAD("n_embd %d must be a multiple of 32 in 32..65536", c->n_embd);
    if (c->n_ff < 32 || c->n_ff > 262144 || c->n_ff % 32)
        BAD("n_ff %d must be a multiple of 32 in 32..262144", c->n_ff);
    if (c->head_dim < 0 || c->head_dim % 2 || c->head_dim > 1024)
        BAD("head_dim %d must be even, 0..1024", c->head_dim);
    if (c->n_head < 1 ||
        (c->head_dim == 0 && (c->n_embd % c->n_head || (c->n_embd / c->n_head) % 2)))
        BAD("n_head %d must divide n_embd %d into an even head size", c->n_head, c->n_embd);
    if (c->arch && (!*c->arch || strlen(c->arch) > 32 || strchr(c->arch, '.')))
        BAD("architecture name '%s'", c->arch);
    if ((c->arch_flags & TAI_ARCH_SWA) && c->swa_window < 1)
        BAD("sliding window %d must be positive", c->swa_window);
    if (!(c->logit_softcap >= 0.0f && c->logit_softcap < 1e6f))
        BAD("logit soft-cap %g must be 0 (none) or positive", (double)c->logit_softcap);
    if (c->logit_softcap > 0.0f && !(c->arch_flags & TAI_ARCH_SWA))
        BAD("logit soft-capping is written for gemma3 only (architecture %s)",
            c->arch ? c->arch : "llama");
    if (c->n_head_kv < 1 || c->n_head % c->n_head_kv)
        BAD("n_head_kv %d must divide n_head %d", c->n_head_kv, c->n_head);
    if (c->n_layer < 1 || c->n_layer > 4096) BAD("n_layer %d out of range 1..4096", c->n_layer);
    if (c->n_ctx < 1) BAD("n_ctx %d must be positive", c->n_ctx);
    if (!(c->rope_freq_base > 0) || !isfinite(c->rope_freq_base))
        BAD("rope_freq_base %g must be positive", (double)c->rope_freq_base);
    if (!(c->rms_eps > 0) || !isfinite(c->rms_eps))
        BAD("rms_eps %g must be positive", (double)c->rms_eps);
    if (!tai_type_valid((int)c->matrix_type))
        BAD("matrix_type %d is not a supported type", (int)c->matrix_type);
    if (!tai_type_valid((int)c->embd_type))
        BAD("embd_type %d is not a supported type", (int)c->embd_type);
    /* every row a whole number of blocks (the K-quants': 256 elements) */
    const int64_t bm = tai_type_block_elems(c->matrix_type), be = tai_type_block_elems(c->embd_type);
    const int64_t nq = (int64_t)c->n_head * (c->head_dim ? c->head_dim : c->n_embd / c->n_head);
    if (c->n_embd % bm || c->n_ff % bm || nq % bm)
        BAD("matrix_type %s needs n_embd %d, n_ff %d and n_head x head_dim %lld to be multiples "
            "of %lld",
            tai_type_name(c->matrix_type), c->n_embd, c->n_ff, (long long)nq, (long long)bm);
    if (c->n_embd % be)
        BAD("embd_type %s needs n_embd %d to be a multiple of %lld", tai_type_name(c->embd_type),
            c->n_embd, (long long)be);
#undef BAD
    return TINYAI_OK;
}

/* ---- Random values ------------------------------------------------------ */

/* Standard deviation of the target values for a tensor; *norm set for the
 * norm weights (1 + noise). */
static float tensor_std(const tai_synth_config *c, const char *name, int64_t ne0, bool *norm) {
    *norm = strstr(name, "_norm.") != NULL;
    if (*norm) return 0.05f;
    if (strncmp(name, "token_embd", 10) == 0) return 0.25f;
    float s = 1.0f / sqrtf((float)ne0);
    if (strstr(name, "attn_output") || strstr(name, "ffn_down"))
        s /= sqrtf(2.0f * (float)c->n_layer);
    return s;
}

void tai_synth_row(const tai_synth_config *c, const char *tensor, int64_t row, int64_t ne0,
                   float *out) {
    bool norm;
    float std = tensor_std(c, tensor, ne0, &norm);
    /* u1 + u2 with u uniform in [-1, 1) has variance 2/3. */
    float scale = std / sqrtf(2.0f / 3.0f);
    uint64_t sm = c->seed ^ XXH64(tensor, strlen(tensor), 0x5EED);
    sm ^= (uint64_t)row * 0xD1B54A32D192ED03ull;
    tai_rng r;
    tai_rng_seed(&r, sm);
    for (int64_t i = 0; i < ne0; i++) {
        uint64_t x = tai_rng_next(&r);
        float u1 = (float)(int32_t)(uint32_t)x * (1.0f / 2147483648.0f);
        float u2 = (float)(int32_t)(uint32_t)(x >> 32) * (1.0f / 2147483648.0f);
        float v = (u1 + u2) * scale;
        out[i] = norm ? 1.0f + v : v;
    }
}

/* ---- Tokenizer ---------------------------------------------------------- */

/* Appends the UTF-8 encoding of cp (< 0x800) to s. */
static char *put_utf8(char *s, unsigned cp) {
    if (cp < 0x80) {
        *s++ = (char)cp;
    } else {
        *s++ = (char)(0xC0 | (cp >> 6));
        *s++ = (char)(0x80 | (cp & 0x3F));
    }
    *s = '\0';
    return s;
}

/* GPT-2's bytes_to_unicode, in its order: syms[i] is the symbol of token i. */
static void byte_symbols(char syms[256][3]) {
    int bs[256], n = 0;
    bool printable[256] = {0};
    for (int b = '!'; b <= '~'; b++) printable[b] = true;
    for (int b = 0xA1; b <= 0xAC; b++) printable[b] = true;
    for (int b = 0xAE; b <= 0xFF; b++) printable[b] = true;
    for (int b = 0; b < 256; b++)
        if (printable[b]) bs[n++] = b;
    int extra = 0;
    for (int b = 0; b < 256; b++)
        if (!printable[b]) bs[n++] = 256 + extra++;
    /* Printable bytes map to themselves; the others to 256 + k in order. */
    for (int i = 0; i < 256; i++) put_utf8(syms[i], (unsigned)bs[i]);
}

typedef struct {
    char **tokens;
    char **merges;
    int32_t *types;
    int64_t n_tokens, n_merges;
    char *arena;
} vocab;

static void vocab_free(vocab *v) {
    free(v->tokens);
    free(v->merges);
    free(v->types);
    free(v->arena);
}

static TinyAIStatus vocab_build(int32_t n_vocab, vocab *v) {
    static const char letters[] = "etaoinshrdlcumwfgypbvkjxqz";
    memset(v, 0, sizeof *v);
    int64_t n_merge = n_vocab - 259;
    v->tokens = malloc(sizeof(char *) * (size_t)n_vocab);
    v->merges = malloc(sizeof(char *) * (size_t)(n_merge ? n_merge : 1));
    v->types = malloc(sizeof(int32_t) * (size_t)n_vocab);
    /* Bytes: tokens <= 8 symbols of <= 2 bytes + NUL; merges twice that. */
    v->arena = malloc((size_t)n_vocab * 8 + (size_t)n_merge * 24 + 4096);
    if (!v->tokens || !v->merges || !v->types || !v->arena) {
        vocab_free(v);
        return tai_error(TINYAI_ERR_NOMEM, "synth: out of memory for the vocabulary");
    }
    char *a = v->arena;
    char syms[256][3];
    byte_symbols(syms);
    for (int i = 0; i < 256; i++) {
        v->tokens[i] = a;
        a = stpcpy(a, syms[i]) + 1;
        v->types[i] = 1;
    }
    const char *specials[3] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    for (int i = 0; i < 3; i++) {
        v->tokens[256 + i] = a;
        a = stpcpy(a, specials[i]) + 1;
        v->types[256 + i] = 3;
    }
    /* The 27 base symbols: "Ġ" (byte 0x20's symbol) and the letters. */
    const char *base[27];
    char space_sym[3];
    put_utf8(space_sym, 0x120);
    base[0] = space_sym;
    int byte_id[128];
    for (int i = 0; i < 256; i++)
        if ((unsigned char)syms[i][0] < 0x80 && syms[i][1] == '\0') byte_id[(int)syms[i][0]] = i;
    for (int i = 0; i < 26; i++) base[1 + i] = v->tokens[byte_id[(int)letters[i]]];
    for (int64_t k = 0; k < n_merge; k++) {
        const char *l, *r;
        if (k < 729) {
            l = base[k / 27];
            r = base[k % 27];
        } else {
            l = v->tokens[259 + (k - 729) / 729];
            r = v->tokens[259 + (k - 729) % 729];
        }
        v->tokens[259 + k] = a;
        a = stpcpy(stpcpy(a, l), r) + 1;
        v->types[259 + k] = 1;
        v->merges[k] = a;
        a = stpcpy(stpcpy(stpcpy(a, l), " "), r) + 1;
    }
    v->n_tokens = n_vocab;
    v->n_merges = n_merge;
    return TINYAI_OK;
}

/* ---- Writing ------------------------------------------------------------ */

typedef struct {
    char name[64];
    tai_type type;
    int n_dims;
    int64_t ne[2];
} tensor_desc;

static void add(tensor_desc *d, int64_t *n, tai_type type, int n_dims, int64_t ne0,
                int64_t ne1, const char *fmt, int layer) {
    if (d) {
        snprintf(d[*n].name, sizeof d[*n].name, fmt, layer);
        d[*n].type = type;
        d[*n].n_dims = n_dims;
        d[*n].ne[0] = ne0;
        d[*n].ne[1] = ne1;
    }
    (*n)++;
}

/* The tensors in file order (synth.h); returns their count (d may be NULL). */
static int64_t list_tensors(const tai_synth_config *c, tensor_desc *d) {
    int64_t n = 0;
    const int64_t hd = c->head_dim ? c->head_dim : c->n_embd / c->n_head;
    int64_t e = c->n_embd, kv = (int64_t)c->n_head_kv * hd, nq = (int64_t)c->n_head * hd;
    tai_type m = c->matrix_type;
    const tai_type f = TAI_TYPE_F32;
    const uint32_t fl = c->arch_flags;
    add(d, &n, c->embd_type, 2, e, c->n_vocab, "token_embd.weight", 0);
    for (int i = 0; i < c->n_layer; i++) {
        add(d, &n, f, 1, e, 1, "blk.%d.attn_norm.weight", i);
        add(d, &n, m, 2, e, nq, "blk.%d.attn_q.weight", i);
        add(d, &n, m, 2, e, kv, "blk.%d.attn_k.weight", i);
        add(d, &n, m, 2, e, kv, "blk.%d.attn_v.weight", i);
        if (fl & TAI_ARCH_QKV_BIAS) {
            add(d, &n, f, 1, nq, 1, "blk.%d.attn_q.bias", i);
            add(d, &n, f, 1, kv, 1, "blk.%d.attn_k.bias", i);
            add(d, &n, f, 1, kv, 1, "blk.%d.attn_v.bias", i);
        }
        if (fl & TAI_ARCH_QK_NORM) {
            add(d, &n, f, 1, hd, 1, "blk.%d.attn_q_norm.weight", i);
            add(d, &n, f, 1, hd, 1, "blk.%d.attn_k_norm.weight", i);
        }
        add(d, &n, m, 2, nq, e, "blk.%d.attn_output.weight", i);
        if (fl & TAI_ARCH_POST_NORMS) add(d, &n, f, 1, e, 1, "blk.%d.post_attention_norm.weight", i);
        add(d, &n, f, 1, e, 1, "blk.%d.ffn_norm.weight", i);
        add(d, &n, m, 2, e, c->n_ff, "blk.%d.ffn_gate.weight", i);
        add(d, &n, m, 2, e, c->n_ff, "blk.%d.ffn_up.weight", i);
        add(d, &n, m, 2, c->n_ff, e, "blk.%d.ffn_down.weight", i);
        if (fl & TAI_ARCH_POST_NORMS) add(d, &n, f, 1, e, 1, "blk.%d.post_ffw_norm.weight", i);
    }
    add(d, &n, TAI_TYPE_F32, 1, e, 1, "output_norm.weight", 0);
    if (!c->tied_output) add(d, &n, m, 2, e, c->n_vocab, "output.weight", 0);
    return n;
}

static TinyAIStatus write_metadata(tai_gguf_writer *w, const tai_synth_config *c,
                                   const vocab *v) {
    TinyAIStatus st = TINYAI_OK;
#define TRY(call) do { if (!st) st = (call); } while (0)
    const char *a = c->arch ? c->arch : "llama";
    char k[96];
#define KEY(s) (snprintf(k, sizeof k, "%s." s, a), k)
    const int32_t hd = c->head_dim ? c->head_dim : c->n_embd / c->n_head;
    TRY(tai_gguf_writer_add_str(w, "general.architecture", a));
    TRY(tai_gguf_writer_add_str(w, "general.name", c->name ? c->name : "synthetic"));
    TRY(tai_gguf_writer_add_u32(w, "general.alignment", 32));
    TRY(tai_gguf_writer_add_u32(w, KEY("vocab_size"), (uint32_t)c->n_vocab));
    TRY(tai_gguf_writer_add_u32(w, KEY("context_length"), (uint32_t)c->n_ctx));
    TRY(tai_gguf_writer_add_u32(w, KEY("embedding_length"), (uint32_t)c->n_embd));
    TRY(tai_gguf_writer_add_u32(w, KEY("feed_forward_length"), (uint32_t)c->n_ff));
    TRY(tai_gguf_writer_add_u32(w, KEY("block_count"), (uint32_t)c->n_layer));
    TRY(tai_gguf_writer_add_u32(w, KEY("attention.head_count"), (uint32_t)c->n_head));
    TRY(tai_gguf_writer_add_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->n_head_kv));
    TRY(tai_gguf_writer_add_f32(w, KEY("rope.freq_base"), c->rope_freq_base));
    TRY(tai_gguf_writer_add_f32(w, KEY("attention.layer_norm_rms_epsilon"), c->rms_eps));
    TRY(tai_gguf_writer_add_u32(w, KEY("rope.dimension_count"), (uint32_t)hd));
    if (c->head_dim) {
        TRY(tai_gguf_writer_add_u32(w, KEY("attention.key_length"), (uint32_t)hd));
        TRY(tai_gguf_writer_add_u32(w, KEY("attention.value_length"), (uint32_t)hd));
    }
    if (c->arch_flags & TAI_ARCH_SWA)
        TRY(tai_gguf_writer_add_u32(w, KEY("attention.sliding_window"), (uint32_t)c->swa_window));
    if (c->logit_softcap > 0.0f)
        TRY(tai_gguf_writer_add_f32(w, KEY("final_logit_softcapping"), c->logit_softcap));
#undef KEY
    TRY(tai_gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2"));
    TRY(tai_gguf_writer_add_str(w, "tokenizer.ggml.pre", "gpt-2")); /* llama.cpp's spelling */
    TRY(tai_gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens,
                                    (uint64_t)v->n_tokens));
    TRY(tai_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", TAI_KV_I32, v->types,
                                (uint64_t)v->n_tokens));
    TRY(tai_gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges,
                                    (uint64_t)v->n_merges));
    TRY(tai_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 256));
    TRY(tai_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 256));
    TRY(tai_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", false));
#undef TRY
    return st;
}

TinyAIStatus tai_synth_write(const tai_synth_config *c, const char *path) {
    TinyAIStatus st = tai_synth_validate(c);
    if (st) return st;
    if (!path) return tai_error(TINYAI_ERR_INVALID_ARG, "synth: NULL path");
    vocab v;
    st = vocab_build(c->n_vocab, &v);
    if (st) return st;
    int64_t n = list_tensors(c, NULL);
    tensor_desc *d = malloc(sizeof *d * (size_t)n);
    int64_t max_ne0 = c->n_embd > c->n_ff ? c->n_embd : c->n_ff;
    const int64_t nq = (int64_t)c->n_head * (c->head_dim ? c->head_dim : c->n_embd / c->n_head);
    if (nq > max_ne0) max_ne0 = nq;
    float *row = malloc(sizeof(float) * (size_t)max_ne0);
    void *qrow = malloc(sizeof(float) * (size_t)max_ne0);
    tai_gguf_writer *w = NULL;
    if (!d || !row || !qrow) {
        st = tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    list_tensors(c, d);
    st = tai_gguf_writer_open(path, 32, &w);
    if (!st) st = write_metadata(w, c, &v);
    for (int64_t i = 0; i < n && !st; i++)
        st = tai_gguf_writer_add_tensor(w, d[i].name, d[i].type, d[i].n_dims, d[i].ne);
    if (!st) st = tai_gguf_writer_begin_data(w);
    for (int64_t i = 0; i < n && !st; i++) {
        const tensor_desc *t = &d[i];
        size_t rb = tai_type_row_bytes(t->type, t->ne[0]);
        for (int64_t r = 0; r < t->ne[1] && !st; r++) {
            tai_synth_row(c, t->name, r, t->ne[0], row);
            if (t->type == TAI_TYPE_F32) {
                st = tai_gguf_writer_write(w, row, rb);
                continue;
            }
            if (t->type == TAI_TYPE_F16) {
                uint16_t *h = qrow;
                for (int64_t k = 0; k < t->ne[0]; k++) h[k] = tai_fp32_to_fp16(row[k]);
            } else {
                tai_quantize_row(t->type, row, qrow, t->ne[0]);
            }
            st = tai_gguf_writer_write(w, qrow, rb);
        }
    }
    if (!st) {
        st = tai_gguf_writer_finish(w);
        w = NULL;
    }
done:
    tai_gguf_writer_abort(w);
    vocab_free(&v);
    free(d);
    free(row);
    free(qrow);
    return st;
}
