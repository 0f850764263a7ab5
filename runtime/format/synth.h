/*
 * runtime/format: synthetic Llama models. tai_synth_write writes a GGUF v3
 * file with random weights, deterministic from a seed, with the metadata
 * llama.cpp writes for a llama model and a working byte-level BPE tokenizer.
 * Used for tests and benchmarks at any size (it streams tensor by tensor and
 * row by row, so multi-GB models need only a few rows of memory).
 *
 * Tensors (llama.cpp names and order; shapes ne[0] first):
 *   token_embd.weight          [n_embd, n_vocab]       embd_type
 *   blk.i.attn_norm.weight     [n_embd]                F32
 *   blk.i.attn_q.weight        [n_embd, n_embd]        matrix_type
 *   blk.i.attn_k.weight        [n_embd, n_embd_kv]     matrix_type
 *   blk.i.attn_v.weight        [n_embd, n_embd_kv]     matrix_type
 *   blk.i.attn_output.weight   [n_embd, n_embd]        matrix_type
 *   blk.i.ffn_norm.weight      [n_embd]                F32
 *   blk.i.ffn_gate.weight      [n_embd, n_ff]          matrix_type
 *   blk.i.ffn_up.weight        [n_embd, n_ff]          matrix_type
 *   blk.i.ffn_down.weight      [n_ff, n_embd]          matrix_type
 *   output_norm.weight         [n_embd]                F32
 *   output.weight              [n_embd, n_vocab]       matrix_type (untied only)
 * with n_embd_kv = n_head_kv * (n_embd / n_head). Another architecture's
 * file (arch, arch_flags) adds per block, after attn_v:
 *   blk.i.attn_q.bias, attn_k.bias, attn_v.bias     [n_q], [n_embd_kv]   TAI_ARCH_QKV_BIAS
 *   blk.i.attn_q_norm.weight, attn_k_norm.weight    [head_dim]           TAI_ARCH_QK_NORM
 *   blk.i.post_attention_norm.weight, post_ffw_norm.weight [n_embd]      TAI_ARCH_POST_NORMS
 * (all F32), with heads of head_dim (n_q = n_head * head_dim rows of
 * attn_q, columns of attn_output).
 *
 * Values (before conversion to the tensor's type): each element is the sum
 * of two uniforms (a triangular, roughly normal distribution) scaled to a
 * standard deviation of 1/sqrt(row length) for the matrices, divided further
 * by sqrt(2 n_layer) for attn_output and ffn_down (as GPT-2 initialises the
 * projections into the residual stream, so that it stays O(1) over many
 * layers); token_embd has std 0.25; norms are 1 + 0.05 * that noise. Row r
 * of a tensor depends only on (seed, tensor name, r): see tai_synth_row.
 *
 * Tokenizer ("gpt2", pre "gpt-2", as llama.cpp spells it): ids 0..255 are GPT-2's byte-level symbols
 * in bytes_to_unicode order ("!" first), 256 "<|endoftext|>" (BOS and EOS),
 * 257 "<|im_start|>", 258 "<|im_end|>" (token_type 3, control; all others
 * 1, normal); then merge tokens up to n_vocab: first every pair a+b of the
 * 27 symbols "Ġ" (space) and "etaoinshrdlcumwfgypbvkjxqz" (a-major), then
 * every pair of those 729 two-symbol tokens. tokenizer.ggml.merges lists
 * each as "left right" in creation order.
 */
#ifndef TAI_RUNTIME_FORMAT_SYNTH_H
#define TAI_RUNTIME_FORMAT_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

#include <tinyai/status.h>

#include "core/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest n_vocab the merge scheme above can fill: 259 + 729 + 729^2. */
#define TAI_SYNTH_MAX_VOCAB (259 + 729 + 729 * 729)

typedef struct {
    const char *name;     /* general.name; NULL gives "synthetic" */
    int32_t n_vocab;      /* 260..TAI_SYNTH_MAX_VOCAB */
    int32_t n_embd;       /* multiple of 32 */
    int32_t n_ff;         /* multiple of 32 */
    int32_t n_head;       /* divides n_embd; head size even */
    int32_t n_head_kv;    /* divides n_head */
    int32_t n_layer;      /* >= 1 */
    int32_t n_ctx;        /* llama.context_length, >= 1 */
    float rope_freq_base; /* > 0 */
    float rms_eps;        /* > 0 */
    tai_type matrix_type; /* attention / FFN matrices and output.weight */
    tai_type embd_type;   /* token_embd.weight */
    bool tied_output;     /* true: no output.weight (the embedding is reused) */
    uint64_t seed;
    /* the architecture: general.architecture and the keys' prefix (NULL:
     * "llama"), with the block variations it has (arch_flags.h) */
    const char *arch;
    uint32_t arch_flags;
    int32_t head_dim;     /* 0: n_embd / n_head; else written as attention.key_length */
    int32_t swa_window;   /* TAI_ARCH_SWA: <arch>.attention.sliding_window */
    float logit_softcap;  /* > 0 (gemma3): <arch>.final_logit_softcapping */
} tai_synth_config;

/* A small, fast model: vocab 512, embd 128, ff 384, 4 heads (2 KV heads),
 * 2 layers, ctx 256, rope base 10000, eps 1e-5, Q4_1 matrices, Q8_0
 * embedding (like SmolLM2's file), tied output, seed 1234. */
tai_synth_config tai_synth_default_config(void);

/* TINYAI_OK, or TINYAI_ERR_INVALID_ARG with a message naming the field. */
TinyAIStatus tai_synth_validate(const tai_synth_config *cfg);

/* Writes the model to `path` (through "<path>.tmp" and a rename; no file at
 * `path` on failure). Errors: TINYAI_ERR_INVALID_ARG (config), _IO, _NOMEM. */
TinyAIStatus tai_synth_write(const tai_synth_config *cfg, const char *path);

/* The float values (before conversion to the tensor's type) of row `row` of
 * the named tensor, ne0 of them, exactly as tai_synth_write generates them.
 * For tests: quantizing them with tai_quantize_row gives the file's bytes. */
void tai_synth_row(const tai_synth_config *cfg, const char *tensor, int64_t row,
                   int64_t ne0, float *out);

#ifdef __cplusplus
}
#endif

#endif /* TAI_RUNTIME_FORMAT_SYNTH_H */
