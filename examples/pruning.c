/*
 * examples/: the memory guide's "Model Pruning" example: 70% of the
 * blocks' weight tiles removed (block 0 at 50%), stored and run sparsely.
 * The configuration and the three calls are the specification's; lines
 * marked "glue" load the model (EXAMPLE_MODEL_PATH, example_model.h),
 * print the apply's result and the weight bytes before and after, and run
 * one token through the pruned model to show that it runs.
 */
#include "examples/example_model.h"

#include <stdio.h>

#include <tinyai/llm.h>
#include <tinyai/utils/prune.h>

int main(void) {
    /* glue: the model */
    TinyAIModel *model = NULL;
    if (tinyaiLoadModel(EXAMPLE_MODEL_PATH("model.tmai"), NULL, &model) != TINYAI_OK) {
        printf("Failed to load model: %s\n", tinyaiLastErrorMessage());
        return 1;
    }
    TinyAIModelInfo before, after;
    tinyaiGetModelInfo(model, &before);

// Create pruning configuration
TinyAIPruneConfig pruneConfig;
tinyaiInitPruneConfig(&pruneConfig);

// Set pruning parameters
pruneConfig.method = TINYAI_PRUNE_MAGNITUDE;   // Magnitude-based pruning
pruneConfig.sparsity = 0.7;                    // Target 70% sparsity
pruneConfig.blockSize = 4;                     // 4x4 block pruning
pruneConfig.layerSparsity[0] = 0.5;            // Custom sparsity for layer 0

// Apply pruning to the model
    TinyAIStatus st = /* glue: the result */
tinyaiPruneModel(model, &pruneConfig);
    if (st != TINYAI_OK) { /* glue */
        printf("Not pruned: %s\n", tinyaiLastErrorMessage());
        tinyaiFreeModel(model);
        return 2;
    }

// Calculate memory savings
size_t savedBytes = tinyaiCalculatePruningSavings(model);
printf("Memory saved: %.2f MB\n", savedBytes / (1024.0 * 1024.0));

    /* glue: the sizes, and one token through the pruned model */
    tinyaiGetModelInfo(model, &after);
    printf("Weights: %.1f MiB -> %.1f MiB\n", before.weightBytes / 1048576.0,
           after.weightBytes / 1048576.0);
    TinyAISession *s = NULL;
    int32_t tok = 1;
    if (tinyaiCreateSession(model, 0, &s) != TINYAI_OK || tinyaiEval(s, &tok, 1) != TINYAI_OK) {
        printf("Failed to run: %s\n", tinyaiLastErrorMessage());
        tinyaiFreeSession(s);
        tinyaiFreeModel(model);
        return 1;
    }
    printf("Ran one token: logits[0] = %g\n", (double)tinyaiGetLogits(s)[0]);
    tinyaiFreeSession(s);
    tinyaiFreeModel(model);
    return 0;
}
