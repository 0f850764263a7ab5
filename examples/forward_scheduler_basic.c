/*
 * examples/: the Memory Optimization Guide's forward scheduler "Basic
 * Usage": every layer of a mapped model added in order, each depending on
 * the previous one, run layer by layer in MEMORY_OPT mode under 100 MB.
 *
 * Changed from the guide: the snippet's `...` placeholders are filled (the
 * output size is a layer's hidden state, SmolLM2-135M's 576 floats per
 * token; the input is a prompt and the output a text buffer, which is what a
 * Llama model's layers take and give, see forward_scheduler.h); lines marked
 * "glue" open the model the snippet's `model` and `layerCount` come from (as
 * the guide's memory-mapped snippets do, path EXAMPLE_MODEL_PATH(...)),
 * report what ran and close the model.
 */
#include "examples/example_model.h"

#include <stdio.h> /* glue */

#include <tinyai/status.h>        /* glue: tinyaiLastErrorMessage */
#include <tinyai/utils/mmap_loader.h> /* glue */

#include <tinyai/utils/forward_scheduler.h>

int main(void) {
    /* glue: the model and layer count the snippet uses */
    TinyAIMmapConfig config = tinyaiCreateDefaultMmapConfig();
    TinyAIMappedModel *model = tinyaiOpenMappedModel(EXAMPLE_MODEL_PATH("path/to/model.tmai"), &config);
    if (!model) {
        printf("Failed to open model: %s\n", tinyaiLastErrorMessage());
        return 1;
    }
    int layerCount = tinyaiGetMappedLayerCount(model);
    char outputBuffer[1024] = ""; /* glue: what `output` points to */
    int executed = 0;             /* glue */

// Create a scheduler with memory limit
TinyAIForwardScheduler* scheduler = tinyaiCreateForwardScheduler(
    model,                  // Mapped model
    TINYAI_EXEC_MEMORY_OPT, // Memory optimization mode
    100 * 1024 * 1024       // 100MB memory limit
);

// Add layers to the schedule (in execution order)
for (int i = 0; i < layerCount; i++) {
    // For sequential network (each layer depends on previous)
    int dependsOn = (i > 0) ? i - 1 : -1;
    TinyAIDependencyType depType = (i > 0) ? TINYAI_DEP_SEQUENTIAL : TINYAI_DEP_NONE;
    
    // Each layer produces output activations of this size
    size_t outputSize = 576 * sizeof(float); // Size in bytes
    
    tinyaiAddLayerToSchedule(scheduler, i, dependsOn, depType, outputSize);
}

// Prepare for execution
tinyaiPrepareForwardPass(scheduler);

// Execute the forward pass layer by layer
const void* input = "TinyAI is"; // Input data
void* output = outputBuffer; // Output buffer
int layerIndex;

while (tinyaiExecuteNextLayer(scheduler, input, output, &layerIndex)) {
    // Layer layerIndex has been executed
    // Memory is automatically managed
    executed++; /* glue */
}

    /* glue: what ran */
    printf("layers executed: %d\n", executed);
    printf("last error: %s\n", tinyaiLastErrorMessage());
    printf("peak memory usage: %zu bytes\n", tinyaiGetSchedulerPeakMemoryUsage(scheduler));
    printf("output: %s\n", outputBuffer);

// Clean up
tinyaiDestroyForwardScheduler(scheduler);
    tinyaiCloseMappedModel(model); /* glue */
    return 0;                      /* glue */
}
