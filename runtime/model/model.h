/*
 * runtime/model: the Llama-family model (hyperparameters, weight tensors
 * bound to the model file) and the forward pass over a session's KV cache.
 * Internal; the public face is <tinyai/llm.h>.
 */
#ifndef TAI_RUNTIME_MODEL_MODEL_H
#define TAI_RUNTIME_MODEL_MODEL_H

#include <stdint.h>

#include <tinyai/llm.h>

#include "kernels/kernels.h"
#include "runtime/format/model_file.h"
#include "runtime/tokenizer/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int n_vocab, n_ctx_train, n_embd, n_ff, n_head, n_head_kv, n_layer;
    int head_dim, rot_dim;
    float rope_base, rms_eps;
} tai_hparams;

/* A weight matrix: rows x n elements of `type`, rows contiguous in the
 * file (`data`), and the same matrix repacked for the kernels (`packed`,
 * kernels.h "Packed weights"), which is what the forward pass reads. */
typedef struct {
    const void *data;
    const void *packed;
    tai_type type;
    int64_t rows, n;
} tai_mat;

typedef struct {
    const float *attn_norm; /* [n_embd] */
    tai_mat wq;             /* [n_embd rows][n_embd]: query projection */
    tai_mat wk;             /* [n_head_kv * head_dim][n_embd] */
    tai_mat wv;             /* [n_head_kv * head_dim][n_embd] */
    tai_mat wo;             /* [n_embd][n_embd]: attention output */
    const float *ffn_norm;  /* [n_embd] */
    tai_mat w_gate;         /* [n_ff][n_embd] */
    tai_mat w_up;           /* [n_ff][n_embd] */
    tai_mat w_down;         /* [n_embd][n_ff] */
} tai_block;

struct TinyAIModel {
    tai_model_file *file;
    tai_tokenizer *tok;
    tai_hparams hp;
    tai_mat tok_embd;       /* [n_vocab][n_embd] */
    const float *out_norm;  /* [n_embd] */
    tai_mat output;         /* [n_vocab][n_embd]; tok_embd when tied */
    int tied;
    tai_block *blocks;      /* n_layer */
    const tai_kernels *kern;
    tai_pool *pool;
    unsigned char *layer_ok; /* per file layer: checksum verified */
    void *arena;            /* every packed matrix (anonymous mapping) */
    size_t arena_bytes;
    double repack_seconds;
    char name[128];
};

struct TinyAISession {
    TinyAIModel *model;
    int n_ctx;
    int pos;
    int n_ubatch;      /* tokens per forward batch */
    float *k_cache;    /* [n_layer][n_ctx][kv_dim] */
    float *v_cache;    /* [n_layer][n_ctx][kv_dim] */
    /* activations for up to n_ubatch tokens */
    float *x, *xb, *q, *k, *v, *att_out, *gate, *up, *ffn_out;
    float *att_scratch; /* [n_threads][n_ctx] */
    float *rope_cs;     /* [n_ubatch][rot_dim]: (cos, sin) of each batch position */
    float *logits;      /* [n_vocab] */
    int have_logits;
    void *mm_scratch;   /* prepared activations for tai_matmul */
    uint64_t bytes;
};

/* Binds hyperparameters and tensors of an opened file (architecture llama).
 * Checks every tensor's presence, type and shape. */
TinyAIStatus tai_llama_bind(TinyAIModel *m);

/* Verifies every layer's checksum (.tmai) and repacks every weight matrix
 * into one arena, on the model's pool; then gives the file pages of the
 * repacked matrices back to the kernel, so only the packed copy stays
 * resident. */
TinyAIStatus tai_llama_pack(TinyAIModel *m);
/* Unmaps the arena (accepts a model without one). */
void tai_llama_unpack(TinyAIModel *m);

/* Runs n tokens (n <= s->n_ubatch) at positions s->pos .. s->pos + n - 1,
 * fills the KV cache and the last token's logits, advances s->pos. */
TinyAIStatus tai_llama_forward(TinyAISession *s, const int32_t *tokens, int n);

#ifdef __cplusplus
}
#endif

#endif
