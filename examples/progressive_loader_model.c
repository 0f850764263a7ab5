/*
 * examples/: the Optimization API's "Progressive Loading" example with a
 * model: the specification's configuration plus TinyAI's extension field
 * `.model` (a mapped model opened from EXAMPLE_MODEL_PATH, example_model.h).
 * The calls are the example's; lines marked "glue" open and close the model
 * and print each call's result, the layers' status and the loader's
 * statistics.
 */
#include "examples/example_model.h"

#include <stdio.h>

#include <tinyai/status.h>
#include <tinyai/utils/mmap_loader.h>
#include <tinyai/utils/progressive_loader.h>

static const char *status_name(TinyAILayerStatus s) {
    switch (s) {
    case TINYAI_LAYER_UNLOADED: return "unloaded";
    case TINYAI_LAYER_LOADING: return "loading";
    case TINYAI_LAYER_LOADED: return "loaded";
    case TINYAI_LAYER_CACHED: return "cached";
    case TINYAI_LAYER_INVALID: return "invalid";
    }
    return "?";
}

int main(void) {
    TinyAIMappedModel *model = tinyaiOpenMappedModel(EXAMPLE_MODEL_PATH("model.tmai"), NULL);
    if (!model) {
        printf("Failed to open model: %s\n", tinyaiLastErrorMessage());
        return 1;
    }

// Create progressive loader
TinyAIProgressiveLoaderConfig loader_config = {
    .enable_prefetch = true,
    .prefetch_window = 3,
    .enable_adaptive_window = true,
    .max_memory_usage = 256 * 1024 * 1024,  // 256MB
    .model = model  // TinyAI extension
};
TinyAIProgressiveLoader* loader = tinyaiCreateProgressiveLoader(&loader_config);
    if (!loader) {
        printf("Failed to create the loader: %s\n", tinyaiLastErrorMessage());
        tinyaiCloseMappedModel(model);
        return 1;
    }

// Load and unload layers as needed
    printf("load 0: %d\n", tinyaiLoadLayer(loader, 0));
    printf("load 1: %d\n", tinyaiLoadLayer(loader, 1));
    printf("unload 0: %d\n", tinyaiUnloadLayer(loader, 0));

    for (int l = 0; l < 2; l++) printf("layer %d: %s\n", l, status_name(tinyaiGetLayerStatus(loader, l)));
    TinyAIMemoryStats st = tinyaiGetProgressiveLoaderStats(loader);
    printf("held bytes: %zu, peak %zu, budget %zu, loads %llu\n", st.current_usage,
           st.peak_usage, st.budget, (unsigned long long)st.loads);

// Free loader
tinyaiFreeProgressiveLoader(loader);
    tinyaiCloseMappedModel(model);
    return 0;
}
