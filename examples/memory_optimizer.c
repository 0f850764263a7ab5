/*
 * examples/: the Optimization API's "Memory Optimization" example. The
 * optimizer's configuration and the four calls are the specification's;
 * lines marked "glue" load the model (EXAMPLE_MODEL_PATH, example_model.h),
 * give my_function and my_data (a function that takes tensors from the
 * optimizer's arena, with in-place steps), print what the optimizer chose
 * and its arena's figures, and run a few tokens with the plan it made.
 */
#include "examples/example_model.h"

#include <stdio.h>
#include <string.h>

#include <tinyai/llm.h>
#include <tinyai/utils/memory_optimizer.h>

/* glue: a caller's computation with four intermediate tensors of 1 MiB,
 * two of them produced in place */
typedef struct {
    int steps;
} my_state;

static bool my_function(TinyAIMemoryOptimizer *optimizer, void *user_data) {
    my_state *st = user_data;
    float *a = tinyaiOptimizerAcquire(optimizer, 1 << 20);
    float *b = tinyaiOptimizerAcquire(optimizer, 1 << 20);
    if (!a || !b) return false;
    memset(a, 0, 1 << 20);
    memset(b, 0, 1 << 20);
    float *c = tinyaiOptimizerAcquireInPlace(optimizer, a, 1 << 20); /* c = f(a) */
    tinyaiOptimizerRelease(optimizer, b);
    float *d = tinyaiOptimizerAcquire(optimizer, 1 << 20); /* b's bytes again */
    float *e = d ? tinyaiOptimizerAcquireInPlace(optimizer, d, 1 << 20) : NULL; /* e = g(d) */
    st->steps = 5;
    return c && e;
}

int main(void) {
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig(); /* glue */
    mc.memoryLimit = 1; /* glue: no plan yet; the optimizer makes it */
    TinyAIModel *model = NULL;
    if (tinyaiLoadModel(EXAMPLE_MODEL_PATH("model.tmai"), &mc, &model) != TINYAI_OK) {
        printf("Failed to load model: %s\n", tinyaiLastErrorMessage());
        return 1;
    }
    my_state state = {0}; /* glue */
    void *my_data = &state; /* glue */

// Create memory optimizer
TinyAIMemoryOptimizerConfig config = {
    .enable_tensor_reuse = true,
    .enable_in_place_ops = true,
    .memory_speed_tradeoff = 0.5f,
    .max_memory_budget = 1024 * 1024 * 1024  // 1GB
};
TinyAIMemoryOptimizer* optimizer = tinyaiCreateMemoryOptimizer(&config);

// Optimize model memory usage
    bool fitted = /* glue: the result */
tinyaiOptimizeMemoryUsage(optimizer, model, 512 * 1024 * 1024);  // 512MB budget

// Execute with tensor reuse
    bool ran = /* glue: the result */
tinyaiExecuteWithTensorReuse(optimizer, my_function, my_data);

    /* glue: what happened */
    TinyAIMemoryOptimizerChoice c;
    if (fitted && tinyaiGetMemoryOptimizerChoice(optimizer, &c))
        printf("Plan: %s, cache %.1f MiB, %d session(s) of %d tokens, activations %.1f MiB "
               "(%.1f MiB unplanned)\nWhy: %s\n",
               tinyaiExecutionModeName(c.mode), c.cacheBytes / 1048576.0, c.sessions,
               c.contextSize, c.activationBytes / 1048576.0,
               c.activationBytesUnplanned / 1048576.0, c.reason);
    else
        printf("Not fitted: %s\n", tinyaiLastErrorMessage());
    TinyAIMemoryStats s = tinyaiGetMemoryOptimizerStats(optimizer);
    printf("Tensors: %s, %llu taken, %.1f MiB requested, peak %.1f MiB\n", ran ? "ran" : "failed",
           (unsigned long long)s.allocation_count, s.total_allocated / 1048576.0,
           s.peak_usage / 1048576.0);
    TinyAISession *sess = NULL;
    int32_t tok = 1;
    int ok = tinyaiCreateSession(model, 0, &sess) == TINYAI_OK;
    for (int i = 0; ok && i < 8; i++) ok = tinyaiEval(sess, &tok, 1) == TINYAI_OK;
    TinyAIMemoryInfo mi;
    tinyaiGetMemoryInfo(model, &mi);
    printf("Ran 8 tokens: %s; peak %.1f MiB of the %.1f MiB budget\n", ok ? "yes" : "no",
           mi.peakBytes / 1048576.0, mi.memoryLimit / 1048576.0);
    tinyaiFreeSession(sess);

// Free optimizer
tinyaiFreeMemoryOptimizer(optimizer);
    tinyaiFreeModel(model); /* glue */
    return fitted && ran && ok ? 0 : 1;
}
