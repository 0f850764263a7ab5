/*
 * runtime/model/arch.h: the architectures the forward pass runs, each a
 * small description of how its block differs from Llama's (layer: runtime).
 *
 * The forward pass (llama.c) is one: embedding, blocks of attention and a
 * gated feed-forward network around a residual stream, final norm, head.
 * An architecture says which of these variations its block has:
 *
 *   TAI_ARCH_QKV_BIAS   q, k, v get a bias after their products
 *                       (blk.N.attn_{q,k,v}.bias)                     qwen2
 *   TAI_ARCH_QK_NORM    q and k get an RMS norm per head before RoPE
 *                       (blk.N.attn_{q,k}_norm.weight, head_dim)      qwen3, gemma3
 *   TAI_ARCH_POST_NORMS each branch's output gets an RMS norm before it
 *                       is added (blk.N.post_attention_norm.weight,
 *                       blk.N.post_ffw_norm.weight)                   gemma3
 *   TAI_ARCH_GEGLU      the feed-forward gate is GELU (tanh form), not
 *                       SiLU                                           gemma3
 *   TAI_ARCH_NEOX       RoPE rotates the pairs (i, i + rot/2), not
 *                       (2i, 2i + 1): the converter kept q/k as trained
 *                                                                      qwen2, qwen3, gemma3
 *   TAI_ARCH_EMB_SCALE  embeddings are multiplied by sqrt(n_embd)     gemma3
 *   TAI_ARCH_SWA        sliding-window attention on some blocks, with
 *                       its own RoPE base (hparams hook)               gemma3
 *
 * plus, through the hparams hook, what its metadata says beyond the
 * common keys ("<arch>.block_count", ...): the window, final-logit
 * soft-capping. Adding an architecture is one file in arch/ (a tai_arch and,
 * if needed, its hook), a line in arch.c's table, and a test against the
 * NumPy reference; a variation no flag covers is a new flag here and its
 * few lines in llama.c.
 */
#ifndef TAI_RUNTIME_MODEL_ARCH_H
#define TAI_RUNTIME_MODEL_ARCH_H

#include <stdint.h>

#include <tinyai/status.h>

#include "runtime/format/arch_flags.h"
#include "runtime/format/model_file.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What an architecture's hook reads beyond the common hyperparameters. */
typedef struct {
    int swa_window;        /* sliding-window blocks attend this many positions */
    int swa_pattern;       /* block l slides unless (l + 1) % swa_pattern == 0 */
    float swa_rope_base;   /* the RoPE base of the sliding-window blocks */
    float logit_softcap;   /* > 0: logits = c * tanh(logits / c) */
} tai_arch_params;

typedef struct tai_arch {
    const char *name; /* general.architecture, and the metadata keys' prefix */
    uint32_t flags;   /* TAI_ARCH_* */
    /* NULL, or reads the architecture's own keys into *p (defaults set) */
    TinyAIStatus (*hparams)(const tai_model_file *mf, tai_arch_params *p);
} tai_arch;

/* The architecture named `name`, NULL if none. */
const tai_arch *tai_arch_find(const char *name);
/* "llama, qwen2, ..." (static). */
const char *tai_arch_names(void);

extern const tai_arch tai_arch_llama, tai_arch_qwen2, tai_arch_qwen3, tai_arch_gemma3;

#ifdef __cplusplus
}
#endif

#endif
