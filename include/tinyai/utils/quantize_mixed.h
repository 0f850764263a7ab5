/*
 * <tinyai/utils/quantize_mixed.h>: mixed-precision quantization. Each group
 * of a Llama model's matrices (the token embedding, the attention
 * projections, the feed-forward matrices, the output head) gets its own
 * weight type:
 *
 *   TINYAI_PREC_FP32  F32        TINYAI_PREC_INT8  Q8_0 (8.5 bits a weight)
 *   TINYAI_PREC_FP16  F16        TINYAI_PREC_INT4  Q4_0 (4.5 bits), Q4_1 (5
 *                                                  bits) or Q4_K (4.5 bits), as
 *                                                  int4Format says
 *   TINYAI_PREC_INT6  Q6_K (6.56 bits)   TINYAI_PREC_INT5  Q5_K (5.5 bits)
 *
 * The K-quants (Q4_K, Q5_K, Q6_K) take rows of whole super-blocks of 256
 * weights; a matrix whose rows are not is written as llama.cpp does:
 * Q4_K as Q5_0, Q5_K as Q5_1, Q6_K as Q8_0. With useMoreBits, attn_v and
 * ffn_down of llama.cpp's "more bits" blocks (the first and last eighth,
 * and every third block between) get Q6_K where their group asks for
 * INT4 or INT5: int4Format Q4_K with the groups at INT4 and the output at
 * INT6 is llama.cpp's Q4_K_M mix, INT5 everywhere but the output its
 * Q5_K_M (`tinyai quantize --mix q4_k_m`).
 *
 * Norm vectors stay F32 whatever the configuration (they are a few KiB).
 *
 * Two ways to use it:
 *   - tinyaiApplyMixedPrecision(model, &cfg) converts a loaded model. The
 *     converted weights are written layer by layer to an unlinked temporary
 *     file (in cfg.tempDir, else beside the model's file), and the model then
 *     reads its layers from there: its weight cache, memory plan, placement
 *     and every figure it reports (tinyaiGetMemoryInfo, tinyaiGetModelInfo)
 *     see the new sizes, under the same memory limit as before. Memory used
 *     while converting: one layer's rows at a time, never the whole model.
 *   - tinyaiQuantizeModelFile(in, out, &cfg, ...) (the `tinyai quantize`
 *     command) writes the converted model as a file: GGUF, or .tmai when
 *     `out` ends in ".tmai".
 *
 * Precision only goes down. Converting a tensor to a type with more bits
 * per weight than it has (Q8_0 to F16, Q4_1 to Q8_0, Q4_0 to Q4_1) would
 * only spend memory on rounding error already made, so it is refused with
 * TINYAI_ERR_INVALID_ARG naming the tensor; TINYAI_PREC_SOURCE (the
 * default of every group) keeps a group's tensors as they are. A tensor
 * converted to its own type is copied unchanged.
 *
 * A model whose output head is tied to its token embedding (one matrix for
 * both) keeps it tied when the two groups ask for the same type; otherwise
 * the head gets its own copy of the matrix at outputPrecision, which costs
 * that copy's bytes (reported in the new sizes).
 *
 * Thread safety: tinyaiApplyMixedPrecision changes the model, so nothing
 * else may use the model meanwhile, and it refuses a model with live
 * sessions (free them first; create new ones afterwards). The other
 * functions are reentrant.
 */
#ifndef TINYAI_UTILS_QUANTIZE_MIXED_H
#define TINYAI_UTILS_QUANTIZE_MIXED_H

#include <stddef.h>
#include <stdint.h>

#include <tinyai/llm.h>
#include <tinyai/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TINYAI_PREC_FP32 = 0,
    TINYAI_PREC_FP16 = 1,
    TINYAI_PREC_INT8 = 2,
    TINYAI_PREC_INT4 = 3,
    TINYAI_PREC_SOURCE = 4, /* keep the source's types (TinyAI's addition) */
    TINYAI_PREC_INT6 = 5,   /* Q6_K (TinyAI's addition) */
    TINYAI_PREC_INT5 = 6,   /* Q5_K (TinyAI's addition) */
} TinyAIPrecision;

/* The 4-bit layout TINYAI_PREC_INT4 means. */
typedef enum {
    TINYAI_INT4_Q4_0 = 0, /* symmetric, one fp16 scale per 32 weights */
    TINYAI_INT4_Q4_1 = 1, /* scale and minimum per 32 weights: more accurate,
                             0.5 bit a weight more */
    TINYAI_INT4_Q4_K = 2, /* super-blocks of 256 with 6-bit scales and
                             minimums per 32: Q4_1's accuracy at 4.5 bits */
} TinyAIInt4Format;

typedef struct {
    TinyAIPrecision embeddingPrecision; /* token_embd */
    TinyAIPrecision attentionPrecision; /* attn_q, attn_k, attn_v, attn_output */
    TinyAIPrecision ffnPrecision;       /* ffn_gate, ffn_up, ffn_down */
    TinyAIPrecision outputPrecision;    /* the output head */
    TinyAIInt4Format int4Format;        /* default TINYAI_INT4_Q4_0 */
    /* Folder for tinyaiApplyMixedPrecision's converted weights (NULL: the
     * folder of the model's file). Needs room for the converted model. */
    const char *tempDir;
    /* Threads converting rows (0: one per core, at most 8). */
    int threads;
    /* Nonzero: attn_v and ffn_down of llama.cpp's "more bits" blocks in
     * Q6_K where their group is INT4 or INT5 (see above). */
    int useMoreBits;
} TinyAIMixedPrecisionConfig;

/* Every group TINYAI_PREC_SOURCE, int4Format Q4_0, tempDir NULL, threads 0,
 * useMoreBits 0.
 * Does nothing given NULL. */
void tinyaiInitMixedPrecisionConfig(TinyAIMixedPrecisionConfig *config);

/* Converts `model` in place as described above. On failure the model is
 * unchanged and still usable. Errors: TINYAI_ERR_INVALID_ARG (NULL
 * arguments, an unknown precision, a precision raised above its source, a
 * model with live sessions or one opened from a TinyAIMappedModel the
 * caller owns), TINYAI_ERR_IO (the temporary file could not be written:
 * the message names the folder), TINYAI_ERR_NOMEM, and the errors of
 * loading a model. */
TinyAIStatus tinyaiApplyMixedPrecision(TinyAIModel *model,
                                       const TinyAIMixedPrecisionConfig *config);

/* Progress of a conversion: bytes of the source's tensors done of all. */
typedef void (*TinyAIQuantizeProgress)(void *user, uint64_t doneBytes, uint64_t totalBytes);

/* Converts the model file `in` (GGUF or .tmai, checked as tinyaiLoadModel
 * checks it) to `out` (.tmai if its name ends in ".tmai", else GGUF), in
 * memory bounded by a few MiB per thread whatever the model's size.
 * `out` appears only once complete (written under a temporary name, then
 * renamed); on failure nothing is left at `out`. progress may be NULL.
 * Errors: those of tinyaiApplyMixedPrecision (but sessions), and
 * TINYAI_ERR_IO naming `out` when it cannot be written. */
TinyAIStatus tinyaiQuantizeModelFile(const char *in, const char *out,
                                     const TinyAIMixedPrecisionConfig *config,
                                     TinyAIQuantizeProgress progress, void *user);

#ifdef __cplusplus
}
#endif

#endif
