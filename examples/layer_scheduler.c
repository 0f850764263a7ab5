/*
 * examples/: the Optimization API's "Layer Scheduling" example. The
 * configuration, the plan and the loop are the specification's; lines
 * marked "glue" load the model (EXAMPLE_MODEL_PATH, example_model.h),
 * tokenize a prompt as `input`, give `output` and num_layers, and print the
 * plan, the estimate, the measured peak and the next token.
 */
#include "examples/example_model.h"

#include <stdio.h>

#include <tinyai/llm.h>
#include <tinyai/utils/layer_scheduler.h>

int main(void) {
    TinyAIModel *model = NULL; /* glue */
    if (tinyaiLoadModel(EXAMPLE_MODEL_PATH("model.tmai"), NULL, &model) != TINYAI_OK) {
        printf("Failed to load model: %s\n", tinyaiLastErrorMessage());
        return 1;
    }
    int32_t ids[512];                                             /* glue */
    size_t n_ids = 0;                                             /* glue */
    tinyaiTokenize(model, "The capital of France is", true, false, ids, 512, &n_ids); /* glue */
    TinyAITensor prompt = {TINYAI_TENSOR_I32, ids, (int64_t)n_ids, 1, sizeof ids};   /* glue */
    TinyAITensor result = {TINYAI_TENSOR_F32, NULL, 0, 0, 0};                        /* glue */
    TinyAITensor *input = &prompt, *output = &result;                                /* glue */
    TinyAIModelInfo info;                                                            /* glue */
    tinyaiGetModelInfo(model, &info);                                                /* glue */
    const int num_layers = info.nFileLayers;                                         /* glue */

// Create layer scheduler
TinyAILayerSchedulerConfig scheduler_config = {
    .enable_checkpointing = true,
    .memory_speed_tradeoff = 0.7f,
    .recompute_activations = false,
    .max_activation_memory = 128 * 1024 * 1024  // 128MB
};
TinyAILayerScheduler* scheduler = tinyaiCreateLayerScheduler(model, &scheduler_config);

// Create and execute plan
TinyAIExecutionPlan* plan = tinyaiCreateExecutionPlan(scheduler);
    int ran = 0; /* glue */
for (int i = 0; i < num_layers; i++) {
    ran +=  /* glue: count */
    tinyaiExecuteLayerWithMemoryOptimization(scheduler, i, input, output);
}

    /* glue: what happened */
    printf("Plan: %d layers, chunks of %d tokens, %.1f MiB of activations\n",
           plan ? plan->nLayers : 0, plan ? plan->chunkTokens : 0,
           plan ? plan->activationBytes / 1048576.0 : 0.0);
    printf("Ran: %d of %d layers\n", ran, num_layers);
    /* the estimate for a prompt of this length (the last one run) */
    const TinyAIMemoryEstimate e = tinyaiEstimateMemoryUsage(scheduler);
    const TinyAILayerSchedulerStats s = tinyaiGetLayerSchedulerStats(scheduler);
    printf("Estimate: %.1f MiB, measured peak %.1f MiB\n", e.totalBytes / 1048576.0,
           s.peakBytes / 1048576.0);
    if (result.data && result.width == info.nVocab) {
        const float *l = result.data;
        int32_t best = 0;
        for (int32_t v = 1; v < info.nVocab; v++)
            if (l[v] > l[best]) best = v;
        size_t len = 0;
        const char *piece = tinyaiTokenPiece(model, best, &len);
        printf("Next token: '%.*s'\n", (int)len, piece ? piece : "");
    }

// Free scheduler
tinyaiFreeLayerScheduler(scheduler);
    tinyaiFreeModel(model); /* glue */
    return ran == num_layers ? 0 : 1;
}
