/*
 * <tinyai/utils/prune.h>: block pruning, stored and executed sparsely.
 *
 * Pruning removes whole tiles of the blocks' weight matrices (attn_q, attn_k,
 * attn_v, attn_output, ffn_gate, ffn_up, ffn_down; never the token
 * embedding, the output head or the norms). A tile is 16 rows (one packed
 * panel) by blockSize columns; in every 16-row panel of a matrix the same
 * share of tiles is removed, the ones that matter least by the method's
 * score. The kept tiles are stored block-sparse (docs/FORMAT.md, layout 2:
 * the kept weights bit for bit, their column-block indices beside them) and
 * the products read only them, so a matrix at 70% sparsity takes about 30%
 * of its bytes in the file, the weight cache and every pass over it (a
 * decoding step, which is bound by those bytes, about a third of the time).
 * Any weight type can be pruned, the quantized ones included.
 *
 * Pruning without retraining costs accuracy: measure it (`tinyai
 * perplexity`); bench/README.md quotes the default model at 30/50/70%.
 *
 * Block-sparse layers run on the CPU (the one device with that product);
 * pruned models are .tmai files (GGUF has no such layout), and mixed
 * precision (<tinyai/utils/quantize_mixed.h>) applies before pruning, not
 * after.
 *
 * Thread safety: tinyaiPruneModel changes the model, so nothing else may
 * use it meanwhile; it refuses a model with live sessions. The other
 * functions are reentrant (tinyaiCalculatePruningSavings only reads).
 */
#ifndef TINYAI_UTILS_PRUNE_H
#define TINYAI_UTILS_PRUNE_H

#include <stddef.h>
#include <stdint.h>

#include <tinyai/llm.h>
#include <tinyai/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TINYAI_PRUNE_MAGNITUDE = 0, /* a tile's score: the sum of |w| (its L1 norm) */
    TINYAI_PRUNE_BLOCK_L2 = 1,  /* a tile's score: its L2 norm (favours tiles
                                   with a few large weights) */
    TINYAI_PRUNE_NORM_WEIGHTED = 2, /* the sum of |w_ij| * |g_j|, g the RMSNorm
                                   weight that scales the matrix's input
                                   column j (attn_norm for attn_q/k/v,
                                   ffn_norm for ffn_gate/up; 1 for the others):
                                   a weight's share of the output for inputs
                                   of unit size, so the input channels a norm
                                   amplifies keep their weights (TinyAI's
                                   data-free stand-in for activation-aware
                                   scores) */
} TinyAIPruneMethod;

/* Entries of layerSparsity: one per transformer block. */
#define TINYAI_PRUNE_MAX_LAYERS 1024

typedef struct {
    TinyAIPruneMethod method; /* default TINYAI_PRUNE_MAGNITUDE */
    /* Share of each pruned matrix's tiles removed, 0 (none: left dense) to
     * 0.97; per panel the kept count is round((1 - sparsity) * tiles), at
     * least one. Default 0.5. */
    float sparsity;
    /* Columns of a tile. The kernels skip 32-column blocks of a 16-row
     * panel, so this is rounded up to a multiple of 32 (the specification's
     * example value 4 therefore means the finest tile, 16 x 32); a
     * multiple of 32 prunes that many columns together (a row's length in
     * blocks must divide by it, else the largest divisor below is used).
     * 0 means 32. Default 32. */
    int blockSize;
    /* Per transformer block (0 = the first): its matrices' sparsity; a
     * negative entry (the default) means `sparsity`. */
    float layerSparsity[TINYAI_PRUNE_MAX_LAYERS];
    /* Folder for tinyaiPruneModel's pruned weights (NULL: the model file's
     * folder), as for mixed precision. */
    const char *tempDir;
} TinyAIPruneConfig;

/* Defaults as above. Does nothing given NULL. */
void tinyaiInitPruneConfig(TinyAIPruneConfig *config);

/* Prunes a loaded model in place: the pruned weights go to an unlinked
 * temporary .tmai (in tempDir, else beside the model's file) that the model
 * then reads its layers from, so its cache, memory plan and reported sizes
 * are the pruned ones. On failure the model is unchanged. Errors:
 * TINYAI_ERR_INVALID_ARG (NULL arguments, an unknown method, a sparsity
 * outside [0, 0.97], a negative blockSize, live sessions, a model opened on
 * a TinyAIMappedModel the caller owns), TINYAI_ERR_IO (the temporary file),
 * TINYAI_ERR_NOMEM, and those of loading a model. */
TinyAIStatus tinyaiPruneModel(TinyAIModel *model, const TinyAIPruneConfig *config);

/* Bytes the model's pruned matrices save: for each block-sparse matrix,
 * its dense packed size less its stored size: the difference in the
 * tensor data of the file, and in the layer images the weight cache holds
 * to within its 4 KiB allocation unit per layer, between this model and
 * the same model unpruned; 0 for an unpruned model or NULL. */
size_t tinyaiCalculatePruningSavings(const TinyAIModel *model);

/* Progress of a file conversion: source tensor bytes done of all. */
typedef void (*TinyAIPruneProgress)(void *user, uint64_t doneBytes, uint64_t totalBytes);

/* Prunes the model file `in` (GGUF or .tmai) into `out`, a .tmai (its name
 * must end in ".tmai"), in memory bounded by the largest matrix. `out`
 * appears only when complete. Errors: as tinyaiPruneModel's argument
 * checks, TINYAI_ERR_INVALID_ARG for an output not named .tmai or the input
 * itself, TINYAI_ERR_IO naming `out`. */
TinyAIStatus tinyaiPruneModelFile(const char *in, const char *out, const TinyAIPruneConfig *config,
                                  TinyAIPruneProgress progress, void *user);

#ifdef __cplusplus
}
#endif

#endif
