/*
 * examples/: the Memory Optimization Guide's "Example with residual
 * connections" (four layers: 1 after 0, 2 using 0's output, 3 after both
 * 1 and 2), given a real model.
 *
 * On a Llama model the four calls mean: the embedding (0), block 0 (1),
 * block 1 (2), which reads the residual stream that starts at the
 * embedding, and layer 3 after both. The scheduler runs a model file's
 * layers as the model defines them: all of them, in their own order, each
 * once per pass, whatever subset the schedule declares (the declared
 * outputs count in the memory limit while a later layer reads them). On a
 * model of two blocks the four layers are the whole model; on a larger one
 * the rest run after them. With --complete-schedule the program also
 * declares the remaining layers, each after the one before. A schedule the
 * model cannot run (a dependency on a later layer) makes
 * tinyaiPrepareForwardPass fail: the program then prints why and exits
 * with status 2.
 *
 * The five calls are the guide's, verbatim; sizes are the hidden state
 * (576 floats per token, SmolLM2-135M's). Everything else is glue: open the
 * model (EXAMPLE_MODEL_PATH, example_model.h), create the scheduler as the
 * guide's Basic Usage does, run it, print what ran.
 */
#include "examples/example_model.h"

#include <stdio.h>
#include <string.h>

#include <tinyai/status.h>
#include <tinyai/utils/forward_scheduler.h>
#include <tinyai/utils/mmap_loader.h>

int main(int argc, char **argv) {
    const int complete = argc > 1 && strcmp(argv[1], "--complete-schedule") == 0;
    TinyAIMmapConfig config = tinyaiCreateDefaultMmapConfig();
    TinyAIMappedModel *model = tinyaiOpenMappedModel(EXAMPLE_MODEL_PATH("path/to/model.tmai"), &config);
    if (!model) {
        printf("Failed to open model: %s\n", tinyaiLastErrorMessage());
        return 1;
    }
    TinyAIForwardScheduler *scheduler =
        tinyaiCreateForwardScheduler(model, TINYAI_EXEC_MEMORY_OPT, 100 * 1024 * 1024);
    if (!scheduler) {
        printf("Failed to create the scheduler: %s\n", tinyaiLastErrorMessage());
        tinyaiCloseMappedModel(model);
        return 1;
    }
    const size_t size0 = 576 * sizeof(float), size1 = size0, size2 = size0, size3 = size0;

// Main branch, layer 0
tinyaiAddLayerToSchedule(scheduler, 0, -1, TINYAI_DEP_NONE, size0);

// Main branch, layer 1
tinyaiAddLayerToSchedule(scheduler, 1, 0, TINYAI_DEP_SEQUENTIAL, size1);

// Residual connection layer, depends on layer 0
tinyaiAddLayerToSchedule(scheduler, 2, 0, TINYAI_DEP_RESIDUAL, size2);

// Output layer, after both main branch and residual
tinyaiAddLayerToSchedule(scheduler, 3, 1, TINYAI_DEP_SEQUENTIAL, size3);
tinyaiAddLayerToSchedule(scheduler, 3, 2, TINYAI_DEP_SEQUENTIAL, size3);

    const int layerCount = tinyaiGetMappedLayerCount(model);
    if (complete)
        for (int i = 4; i < layerCount; i++)
            tinyaiAddLayerToSchedule(scheduler, i, i - 1, TINYAI_DEP_SEQUENTIAL, size0);

    int status = 0;
    if (!tinyaiPrepareForwardPass(scheduler)) {
        printf("tinyaiPrepareForwardPass failed: %s\n", tinyaiLastErrorMessage());
        status = 2;
    } else {
        char output[1024] = "";
        int layerIndex, executed = 0, order_ok = 1;
        while (tinyaiExecuteNextLayer(scheduler, "TinyAI is", output, &layerIndex)) {
            /* each pass runs the layers 0, 1, 2, ... in turn */
            if (layerIndex != executed % layerCount) order_ok = 0;
            executed++;
        }
        if (*tinyaiLastErrorMessage()) {
            printf("execution failed: %s\n", tinyaiLastErrorMessage());
            status = 1;
        }
        printf("layers executed: %d (%d per pass), in order: %s\n", executed, layerCount,
               order_ok ? "yes" : "no");
        printf("output: %s\n", output);
    }
    tinyaiDestroyForwardScheduler(scheduler);
    tinyaiCloseMappedModel(model);
    return status;
}
