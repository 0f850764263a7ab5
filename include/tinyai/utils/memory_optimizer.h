/*
 * <tinyai/utils/memory_optimizer.h>: the Optimization API's memory
 * optimizer.
 *
 * What it does in TinyAI:
 *   - Activation planning. A model's forward pass keeps its activations
 *     (hidden states, attention and feed-forward intermediates, the
 *     products' scratch) in one arena where buffers whose lifetimes do not
 *     overlap share bytes (a greedy planner in the manner of TensorFlow Lite
 *     Micro's). This is on for every model; an optimizer with
 *     enable_tensor_reuse off turns it off for the models it optimizes
 *     (one buffer each), which is what "before" means in the figures.
 *   - In-place operations. In the forward pass RoPE, SwiGLU, the norms'
 *     outputs and the residual additions always run in place (the planned
 *     peak is then set by the feed-forward pair, which no in-place step
 *     shrinks). For the caller's functions, tinyaiOptimizerAcquireInPlace
 *     gives an operation's output the bytes of its input when
 *     enable_in_place_ops is on (the input is consumed), a new tensor when
 *     it is off.
 *   - Fitting a budget. tinyaiOptimizeMemoryUsage chooses, for a loaded
 *     model with no sessions, the execution mode, the weight cache's share,
 *     the number of sessions and their context so that the model runs
 *     within the budget, and plans it (tinyaiGetMemoryOptimizerChoice says
 *     what it chose and why). memory_speed_tradeoff moves the choice: below
 *     0.5 the least memory (streaming the weights; one session), from 0.5
 *     the most speed the budget allows (every layer resident if it fits,
 *     else as many cached as fit; up to 4 sessions at 1.0).
 *   - Tensor reuse for the caller. tinyaiExecuteWithTensorReuse runs a
 *     function of the caller's that takes tensors from the optimizer's arena
 *     (max_memory_budget bytes, reserved when the optimizer is created) with
 *     tinyaiOptimizerAcquire / tinyaiOptimizerRelease: with reuse on, a
 *     released tensor's bytes serve the next acquire (first fit); off, every
 *     acquire takes new bytes. Everything the function took is released when
 *     it returns. The stats show requested bytes against the arena's peak.
 *
 * Thread safety: one thread at a time per optimizer; tinyaiOptimizeMemoryUsage
 * needs the model to itself (no sessions, no other calls).
 */
#ifndef TINYAI_UTILS_MEMORY_OPTIMIZER_H
#define TINYAI_UTILS_MEMORY_OPTIMIZER_H

#include <stdbool.h>
#include <stddef.h>

#include <tinyai/llm.h>
#include <tinyai/utils/memory_stats.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    bool enable_tensor_reuse;    /* share bytes between tensors whose
                                    lifetimes do not overlap (default on) */
    bool enable_in_place_ops;    /* see above */
    float memory_speed_tradeoff; /* 0.0 (least memory) .. 1.0 (most speed) */
    size_t max_memory_budget;    /* the optimizer's arena, and the budget
                                    tinyaiOptimizeMemoryUsage uses when given
                                    0 */
} TinyAIMemoryOptimizerConfig;

typedef struct TinyAIMemoryOptimizer TinyAIMemoryOptimizer;

/* A function run with tensor reuse: it takes and gives back tensors with
 * tinyaiOptimizerAcquire / tinyaiOptimizerRelease; false reports a failure
 * (tinyaiExecuteWithTensorReuse then returns false). */
typedef bool (*TinyAITensorReuseFunction)(TinyAIMemoryOptimizer *optimizer, void *user_data);

/* NULL (message set) for a NULL config, a tradeoff outside [0, 1] or an
 * arena that cannot be reserved. max_memory_budget 0: no arena (tensor
 * reuse then has nothing to give). */
TinyAIMemoryOptimizer *tinyaiCreateMemoryOptimizer(const TinyAIMemoryOptimizerConfig *config);
void tinyaiFreeMemoryOptimizer(TinyAIMemoryOptimizer *optimizer); /* accepts NULL */

/* The arena's figures: current_usage and peak_usage its bytes in use now and
 * at most, budget its size, total_allocated and allocation_count what was
 * acquired (before reuse), fragmentation_ratio the free bytes outside the
 * largest free range over all free bytes. Zero for NULL. */
TinyAIMemoryStats tinyaiGetMemoryOptimizerStats(const TinyAIMemoryOptimizer *optimizer);

/* Clamped to [0, 1]; applies to the next tinyaiOptimizeMemoryUsage. */
void tinyaiSetMemorySpeedTradeoff(TinyAIMemoryOptimizer *optimizer, float tradeoff);
void tinyaiEnableInPlaceOperations(TinyAIMemoryOptimizer *optimizer, bool enable);

/* Runs func(optimizer, user_data) as above; false if func does or on a
 * NULL argument. */
bool tinyaiExecuteWithTensorReuse(TinyAIMemoryOptimizer *optimizer, TinyAITensorReuseFunction func,
                                  void *user_data);
/* Within such a function: a 64-byte aligned tensor of `bytes` from the
 * arena, NULL (message set) if it does not fit or outside a function. */
void *tinyaiOptimizerAcquire(TinyAIMemoryOptimizer *optimizer, size_t bytes);
/* Gives a tensor back (its bytes may serve the next acquire if reuse is
 * on). false for a pointer the arena did not hand out or already released. */
bool tinyaiOptimizerRelease(TinyAIMemoryOptimizer *optimizer, void *tensor);
/* The output tensor of an operation on `input` (a tensor in use, which the
 * operation consumes): with enable_in_place_ops and bytes <= the input's
 * size, the input itself (no new bytes); otherwise a new tensor as
 * tinyaiOptimizerAcquire gives, the input staying in use (TinyAI
 * extension). NULL (message set) for an input not in use. */
void *tinyaiOptimizerAcquireInPlace(TinyAIMemoryOptimizer *optimizer, void *input, size_t bytes);

/* Plans `model` (loaded, no live sessions) to run within memory_budget bytes
 * (0: the config's max_memory_budget) as described above: the model's
 * memory limit becomes the budget, and its tracked peak
 * (tinyaiGetMemoryInfo) restarts from the new plan. false (message
 * set, naming the least budget that would do) if nothing fits; the model
 * then keeps its previous plan where it had one. */
bool tinyaiOptimizeMemoryUsage(TinyAIMemoryOptimizer *optimizer, TinyAIModel *model,
                               size_t memory_budget);

/* What the last tinyaiOptimizeMemoryUsage chose (TinyAI extension). */
typedef struct {
    TinyAIExecutionMode mode;
    size_t budget;            /* the budget it fitted */
    size_t cacheBytes;        /* the weight cache's share */
    int sessions;             /* sessions planned */
    int contextSize;          /* tokens per session */
    size_t activationBytes;   /* the activation arena as planned */
    size_t activationBytesUnplanned; /* one buffer each */
    char reason[320];         /* why, in words */
} TinyAIMemoryOptimizerChoice;
bool tinyaiGetMemoryOptimizerChoice(const TinyAIMemoryOptimizer *optimizer,
                                    TinyAIMemoryOptimizerChoice *out);

#ifdef __cplusplus
}
#endif

#endif
