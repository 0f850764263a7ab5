/*
 * <tinyai/utils/layer_scheduler.h>: the Optimization API's layer
 * scheduler: a loaded model run one layer at a time over a whole prompt
 * (layer-major), with the prompt split into chunks so that the activation
 * memory stays under a bound, and each layer's output kept, dropped or
 * recomputed as its checkpoint strategy says.
 *
 * Running a layer:
 *   layer 0 (the token embedding): input holds token ids (TINYAI_TENSOR_I32,
 *     `tokens` of them: a new prompt; the scheduler's sequence restarts);
 *     output: the hidden states, tokens x n_embd floats;
 *   layers 1..n (the blocks): input the previous layer's hidden states as
 *     an F32 tensor of the caller's; anything else (NULL, no data, the
 *     prompt's I32 ids as the specification's loop passes them, or the
 *     scheduler's own copy it lent) means the scheduler's own copy of the
 *     previous layer's output, recomputed if it was dropped; output the
 *     block's;
 *   layer n + 1 (the head): output the logits of the last token (1 x
 *     n_vocab floats).
 * Each layer runs over the prompt in chunks of the plan's chunkTokens
 * (tokens in order: the block's keys and values for earlier tokens are in
 * the scheduler's KV cache when later chunks attend to them), on the CPU,
 * its weights from the model's cache (one layer at a time suffices: a model
 * larger than its memory limit streams through once per prompt).
 *
 * Activation memory: the model's workspace for one chunk (the
 * intermediates of attention and the feed-forward network). The plan's
 * chunkTokens is the largest power of two (up to 512) whose workspace fits
 * max_activation_memory (0: no bound); a bound below one token's workspace
 * fails the plan.
 *
 * Checkpoints: a layer's output (tokens x n_embd floats) is
 *   TINYAI_CHECKPOINT_STORE      kept until the next prompt (a checkpoint);
 *   TINYAI_CHECKPOINT_NONE       kept until the next layer has used it; a
 *                                later layer that needs it again fails;
 *   TINYAI_CHECKPOINT_RECOMPUTE  likewise dropped, but recomputed when
 *                                needed again, from the last stored
 *                                checkpoint before it (or from the token
 *                                ids), trading compute for memory.
 * The plan's default: with enable_checkpointing, every k-th layer stored
 * (k = 1 at memory_speed_tradeoff 1.0, up to every 8th at 0.0), the others
 * RECOMPUTE if recompute_activations else NONE; without it, all NONE.
 *
 * Ownership: the scheduler borrows the model (one scheduler per model at a
 * time, no sessions of the model meanwhile: the scheduler sizes the model's
 * workspace and owns a sequence of its own). Plans and tensors the
 * scheduler hands out are its own, valid until the next plan or call.
 * Errors: NULL/false with tinyaiLastErrorMessage() set. Thread safety: one
 * thread at a time per scheduler.
 */
#ifndef TINYAI_UTILS_LAYER_SCHEDULER_H
#define TINYAI_UTILS_LAYER_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tinyai/llm.h>
#include <tinyai/utils/checkpoint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    bool enable_checkpointing;    /* store some layers' outputs (above) */
    float memory_speed_tradeoff;  /* 0.0 (memory) .. 1.0 (speed): how many */
    bool recompute_activations;   /* dropped outputs are recomputed when
                                     needed again (else needing one fails) */
    size_t max_activation_memory; /* bound on the workspace (0: none) */
} TinyAILayerSchedulerConfig;

/* TinyAICheckpointStrategy: <tinyai/utils/checkpoint.h> */

typedef enum {
    TINYAI_TENSOR_F32 = 0,
    TINYAI_TENSOR_I32 = 1,
} TinyAITensorType;

/* A tensor of `tokens` rows of `width` elements, row-major. For an output,
 * data may be NULL (or the copy the scheduler lent last time): it then
 * points at the scheduler's copy (valid until the next call); else the
 * result is copied into it (capacity bytes must hold it). */
typedef struct {
    TinyAITensorType type;
    void *data;
    int64_t tokens, width;
    size_t capacity; /* bytes at data */
} TinyAITensor;

typedef struct TinyAILayerScheduler TinyAILayerScheduler;

/* What tinyaiCreateExecutionPlan decided. */
typedef struct {
    int nLayers;                            /* file layers: blocks + 2 */
    int chunkTokens;                        /* tokens per chunk */
    size_t activationBytes;                 /* the workspace for a chunk */
    const TinyAICheckpointStrategy *strategy; /* per layer */
} TinyAIExecutionPlan;

/* The peak a prompt of `tokens` tokens will take (tinyaiEstimateMemoryUsage
 * uses the last prompt's length, or the model's context before any). */
typedef struct {
    size_t weightBytes;     /* the model's weight cache and its loaders'
                               staging buffers */
    size_t kvCacheBytes;    /* the scheduler's sequence */
    size_t activationBytes; /* the workspace for a chunk */
    size_t checkpointBytes; /* stored outputs plus the two in flight */
    size_t totalBytes;      /* their sum: the predicted peak */
    int tokens;
} TinyAIMemoryEstimate;

/* NULL for a NULL model or config, a tradeoff outside [0, 1], or a model
 * with live sessions. */
TinyAILayerScheduler *tinyaiCreateLayerScheduler(TinyAIModel *model,
                                                 const TinyAILayerSchedulerConfig *config);
void tinyaiFreeLayerScheduler(TinyAILayerScheduler *scheduler); /* accepts NULL */
/* Makes (or remakes) the plan; NULL when the bound cannot be met. */
TinyAIExecutionPlan *tinyaiCreateExecutionPlan(TinyAILayerScheduler *scheduler);
/* Runs one layer as described above (making the plan first if there is
 * none). false on bad arguments (a layer out of range, a block before the
 * embedding ran, a prompt longer than the model's context), a needed
 * output that was not kept, or a failure of the model. */
bool tinyaiExecuteLayerWithMemoryOptimization(TinyAILayerScheduler *scheduler, int layer_index,
                                              TinyAITensor *input, TinyAITensor *output);
/* Before the layer runs; false for a bad layer or strategy. */
bool tinyaiSetLayerCheckpointingStrategy(TinyAILayerScheduler *scheduler, int layer_index,
                                         TinyAICheckpointStrategy strategy);
/* The plan's predicted peak (the plan made first if needed); zero for
 * NULL. */
TinyAIMemoryEstimate tinyaiEstimateMemoryUsage(TinyAILayerScheduler *scheduler);

/* TinyAI extension: the measured peak of the same sum (weight cache in
 * use, sequence, workspace, outputs held) and how many layers were
 * recomputed. */
typedef struct {
    size_t peakBytes;
    int layersRecomputed;
} TinyAILayerSchedulerStats;
TinyAILayerSchedulerStats tinyaiGetLayerSchedulerStats(const TinyAILayerScheduler *scheduler);

#ifdef __cplusplus
}
#endif

#endif
