/*
 * examples/: the Memory Optimization Guide's "Running a Large Language Model
 * on Limited RAM": a model opened with a 100 MB weight cache, run layer by
 * layer by the forward scheduler under a 200 MB limit, generating text from
 * "TinyAI is".
 *
 * Changed from the guide: the model path is EXAMPLE_MODEL_PATH(
 * "large_language_model.tmai") (example_model.h); the line "// ... (add
 * embedding layer, attention layers, FFN layers, etc.)" is filled with a loop
 * adding every layer of the model in order, each after the one before it
 * (a Llama model's layers run in that order: embedding, blocks, output head);
 * the snippet is wrapped in main() with its #includes.
 */
#include "examples/example_model.h"

#include <stdio.h>

#include <tinyai/utils/forward_scheduler.h>
#include <tinyai/utils/mmap_loader.h>

int main(void) {
// Open model with memory mapping
TinyAIMmapConfig mmapConfig = tinyaiCreateDefaultMmapConfig();
mmapConfig.maxCacheSize = 100 * 1024 * 1024; // 100MB cache
TinyAIMappedModel* model = tinyaiOpenMappedModel(EXAMPLE_MODEL_PATH("large_language_model.tmai"), &mmapConfig);

// Create forward scheduler with 200MB limit
TinyAIForwardScheduler* scheduler = tinyaiCreateForwardScheduler(
    model, TINYAI_EXEC_MEMORY_OPT, 200 * 1024 * 1024);

// Add layers to schedule (transformer architecture)
    /* filled in: every layer, each depending on the previous one; a layer's
     * output is the hidden state (SmolLM2-135M: 576 floats per token) */
    int layerCount = tinyaiGetMappedLayerCount(model);
    for (int i = 0; i < layerCount; i++)
        tinyaiAddLayerToSchedule(scheduler, i, i > 0 ? i - 1 : -1,
                                 i > 0 ? TINYAI_DEP_SEQUENTIAL : TINYAI_DEP_NONE,
                                 576 * sizeof(float));

// Prepare for execution
tinyaiPrepareForwardPass(scheduler);

// Execute layer by layer
const char* input = "TinyAI is";
char output[1024];
int layerIndex;

while (tinyaiExecuteNextLayer(scheduler, input, output, &layerIndex)) {
    printf("Executed layer %d\n", layerIndex);
    printf("Current memory usage: %.2f MB\n", 
           tinyaiGetSchedulerMemoryUsage(scheduler) / (1024.0 * 1024.0));
}

printf("Generated text: %s\n", output);

// Clean up
tinyaiDestroyForwardScheduler(scheduler);
tinyaiCloseMappedModel(model);
    return 0;
}
