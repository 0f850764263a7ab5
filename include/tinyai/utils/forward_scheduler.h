/*
 * TinyAI public API: the forward-pass scheduler (the specification's
 * <tinyai/utils/forward_scheduler.h>).
 *
 * A scheduler runs a mapped model (<tinyai/utils/mmap_loader.h>) layer by
 * layer under a memory limit. The caller declares the layers and their
 * dependencies; tinyaiPrepareForwardPass checks them (unknown layers,
 * cycles) and fixes the execution order; tinyaiExecuteNextLayer runs one
 * layer per call.
 *
 * What running a layer means for a Llama model: the input is the prompt text
 * (a NUL-terminated string) and the output the generated text (NUL-terminated,
 * at most TinyAISchedulerGeneration.outputCapacity bytes with the NUL; the
 * default is TINYAI_SCHEDULER_DEFAULT_OUTPUT). The first pass runs the prompt
 * through every layer; each further pass runs one generated token. After the
 * output layer of each pass the next token is chosen (greedy by default) and
 * its text appended to the output. tinyaiExecuteNextLayer returns false once
 * generation has ended (maxNewTokens generated, an end-of-generation token,
 * the context full) or on an error (tinyaiLastErrorMessage() says which; an
 * end of generation leaves the message empty).
 *
 * Schedules. Any acyclic schedule is accepted. For a model file the layers
 * run as the model defines them: all of its layers, in its order 0 .. n + 1,
 * whatever subset the schedule declares; the declared dependencies must
 * point back in that order (a residual: layer 2 reading layer 0's output),
 * and the declared outputs count in the memory limit for as long as a later
 * layer reads them. A graph of the caller's own: give every declared layer
 * a function (tinyaiSetLayerFunction); the layers then run in the schedule's
 * order (dependencies first, then the order of addition), each function
 * reading its dependencies' outputs and writing its own (outputSize bytes,
 * held by the scheduler), one pass; `input` goes to every function, and
 * each call's `output` receives the layer's output. An output is held until
 * the last layer that reads it has run; with TINYAI_CHECKPOINT_RECOMPUTE
 * (tinyaiSetScheduleCheckpointing) it is dropped after each reader and
 * recomputed, with whatever it reads, when a later one needs it: memory for
 * compute. tinyaiEstimateScheduleMemory predicts the held outputs' peak.
 *
 * Memory: the limit covers the weight cache, the activations, the KV cache
 * and scratch. Creating the scheduler plans it: a limit below what the
 * largest layer plus the activations need fails at once with the minimum in
 * the message. Usage and peak are tracked: the weight cache's bytes plus the
 * runtime's buffers plus the declared outputs live at each step.
 *
 * Modes:
 *   TINYAI_EXEC_NORMAL      every layer resident (the limit must hold the
 *                           whole model);
 *   TINYAI_EXEC_MEMORY_OPT  as many layers cached as the limit allows, the
 *                           others read when needed, eviction by next use;
 *   TINYAI_EXEC_STREAMING   the fewest layers resident (the one computing and
 *                           the ones loading ahead), reads overlapping compute;
 *   TINYAI_EXEC_ADAPTIVE    NORMAL if the model fits, otherwise STREAMING if
 *                           the measured storage bandwidth keeps streaming
 *                           compute-bound, otherwise MEMORY_OPT; the choice
 *                           and its reason are reported
 *                           (tinyaiGetSchedulerInfo).
 *
 * Thread safety: a scheduler is used by one thread at a time.
 */
#ifndef TINYAI_UTILS_FORWARD_SCHEDULER_H
#define TINYAI_UTILS_FORWARD_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tinyai/utils/checkpoint.h>
#include <tinyai/utils/mmap_loader.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TINYAI_DEP_NONE = 0,       /* no dependency (dependsOn must be -1) */
    TINYAI_DEP_SEQUENTIAL = 1, /* after the layer it depends on */
    TINYAI_DEP_RESIDUAL = 2,   /* uses an earlier layer's output (residual) */
    TINYAI_DEP_ATTENTION = 3,  /* uses an earlier layer's output (attention) */
} TinyAIDependencyType;

typedef enum {
    TINYAI_EXEC_NORMAL = 0,
    TINYAI_EXEC_MEMORY_OPT = 1,
    TINYAI_EXEC_STREAMING = 2,
    TINYAI_EXEC_ADAPTIVE = 3,
} TinyAIExecutionMode;

typedef struct TinyAIForwardScheduler TinyAIForwardScheduler;

/* Creates a scheduler for `model` (borrowed: close the model after destroying
 * the scheduler). memoryLimit in bytes, 0 = no limit. NULL on a bad mode, a
 * NULL model, or a limit the model cannot run in (message states the
 * minimum). The scheduler takes over the model's cache for its duration:
 * its size follows from the mode and the limit. */
TinyAIForwardScheduler *tinyaiCreateForwardScheduler(TinyAIMappedModel *model,
                                                     TinyAIExecutionMode mode,
                                                     size_t memoryLimit);

/* Adds a layer, or one more dependency of a layer already added (the same
 * layer added again with another dependsOn; outputSize must then be the
 * same). false on a bad argument. */
bool tinyaiAddLayerToSchedule(TinyAIForwardScheduler *scheduler, int layerIndex, int dependsOn,
                              TinyAIDependencyType depType, size_t outputSize);

/* Checks the schedule and fixes the order (among layers whose dependencies
 * are done, the one added first runs first). false, with the reason, on a
 * dependency on a layer not in the schedule, a cycle (named), a layer index
 * outside the model, or an order the model cannot run. */
bool tinyaiPrepareForwardPass(TinyAIForwardScheduler *scheduler);

/* Runs the next layer; *layerIndex (may be NULL) receives its index. Returns
 * true if a layer ran, false when the forward pass (generation) is over or
 * on an error. */
bool tinyaiExecuteNextLayer(TinyAIForwardScheduler *scheduler, const void *input, void *output,
                            int *layerIndex);

/* The batch size (1..maxBatchSize) with the best expected throughput that
 * fits in the memory limit, from the cost model's prediction of a step of
 * that many sequences (the CPU device's calibration: measured once per
 * process, about a second, on the first call that needs it, then kept),
 * the storage bandwidth the cache's loads measured (or one probe read,
 * kept) and the bytes each step reads (the model less what the cache keeps
 * of it beside the batch's sessions). Nothing is measured on later calls,
 * so the same arguments give the same pick. A batch element is one sequence: inputSize and outputSize are
 * the bytes of its prompt and of its generated tokens as token ids
 * (int32_t), so its context is (inputSize + outputSize) / 4 tokens and its
 * KV cache is sized for that; both 0: the scheduler's planned context (512
 * tokens, or the model's if smaller). 1 if nothing larger fits. Returns 0
 * (message set) on bad arguments. */
int tinyaiCalculateOptimalBatchSize(TinyAIForwardScheduler *scheduler, size_t inputSize,
                                    size_t outputSize, int maxBatchSize);

/* Bytes in use now / at most since creation (see Memory above). */
size_t tinyaiGetSchedulerMemoryUsage(const TinyAIForwardScheduler *scheduler);
size_t tinyaiGetSchedulerPeakMemoryUsage(const TinyAIForwardScheduler *scheduler);

/* Accepts NULL. */
void tinyaiDestroyForwardScheduler(TinyAIForwardScheduler *scheduler);

/* ---- TinyAI extensions ---------------------------------------------- */

#define TINYAI_SCHEDULER_DEFAULT_OUTPUT 1024
#define TINYAI_SCHEDULER_DEFAULT_NEW_TOKENS 32

typedef struct {
    int maxNewTokens;      /* tokens generated after the prompt (default 32) */
    size_t outputCapacity; /* bytes the output buffer holds (default 1024) */
    float temperature;     /* 0 = greedy (default) */
    uint64_t seed;         /* for temperature > 0 (default 42) */
    bool includePrompt;    /* output starts with the prompt text (default
                              false) */
} TinyAISchedulerGeneration;

TinyAISchedulerGeneration tinyaiCreateDefaultSchedulerGeneration(void);
/* Before the first tinyaiExecuteNextLayer. false on bad values. */
bool tinyaiSetSchedulerGeneration(TinyAIForwardScheduler *scheduler,
                                  const TinyAISchedulerGeneration *generation);

typedef struct {
    TinyAIExecutionMode mode; /* the mode running (ADAPTIVE resolved) */
    char reason[320];         /* why ADAPTIVE chose it ("" otherwise) */
    size_t memoryLimit;       /* 0 = none */
    size_t cacheBytes;        /* the weight cache's budget */
    size_t runtimeBytes;      /* activations, KV cache, scratch */
    size_t minimumBytes;      /* the least limit this model runs in */
    int tokensGenerated;
    int passesCompleted;
} TinyAISchedulerInfo;

bool tinyaiGetSchedulerInfo(const TinyAIForwardScheduler *scheduler, TinyAISchedulerInfo *out);

/* ---- Graphs of the caller's own (TinyAI extension) ------------------- */

/* One call of a layer's function: the outputs of the layers it depends on
 * (in the order they were added), its output buffer (outputSize bytes,
 * zeroed, held by the scheduler), and the input given to
 * tinyaiExecuteNextLayer. */
typedef struct {
    int layerIndex;
    const void *const *inputs;
    const size_t *inputSizes;
    const int *inputLayers;
    int nInputs;
    void *output;
    size_t outputSize;
    const void *passInput;
} TinyAILayerCall;
/* false fails the step (tinyaiExecuteNextLayer returns false; set a message
 * with nothing, and it says the function failed). */
typedef bool (*TinyAILayerFunction)(const TinyAILayerCall *call, void *user);

/* Before tinyaiPrepareForwardPass; false for a layer outside the model or
 * once execution started. */
bool tinyaiSetLayerFunction(TinyAIForwardScheduler *scheduler, int layerIndex,
                            TinyAILayerFunction fn, void *user);
/* TINYAI_CHECKPOINT_RECOMPUTE drops the layer's output after each reader;
 * STORE and NONE keep it until its last reader (the default). */
bool tinyaiSetScheduleCheckpointing(TinyAIForwardScheduler *scheduler, int layerIndex,
                                    TinyAICheckpointStrategy strategy);
/* After a successful prepare: the predicted peak bytes of the outputs held
 * at once (0 before). */
size_t tinyaiEstimateScheduleMemory(const TinyAIForwardScheduler *scheduler);
/* Measured: the held outputs' peak, and the layers recomputed. */
size_t tinyaiGetScheduleOutputsPeak(const TinyAIForwardScheduler *scheduler);
int tinyaiGetScheduleRecomputations(const TinyAIForwardScheduler *scheduler);

/* "normal", "memory-opt", "streaming", "adaptive"; NULL for a bad mode. */
const char *tinyaiExecutionModeName(TinyAIExecutionMode mode);

#ifdef __cplusplus
}
#endif

#endif
