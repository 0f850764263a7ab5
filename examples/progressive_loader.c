/*
 * examples/: the Optimization API's "Progressive Loading" example, verbatim:
 * a loader with a 3-layer prefetch window and a 256 MB limit loads layers 0
 * and 1 and unloads 0.
 *
 * The specification's configuration names no model, and this example gives
 * none, so every load fails (TinyAI's loader needs a model: the extension
 * field TinyAIProgressiveLoaderConfig.model); the example ignores the
 * results. The lines marked "glue" print what the calls returned and the
 * last error, so that the test can check that the failures are clean and
 * say why. progressive_loader_model.c is the same example with a model.
 */
#include <stdio.h> /* glue */

#include <tinyai/status.h> /* glue */
#include <tinyai/utils/progressive_loader.h>

int main(void) {
// Create progressive loader
TinyAIProgressiveLoaderConfig loader_config = {
    .enable_prefetch = true,
    .prefetch_window = 3,
    .enable_adaptive_window = true,
    .max_memory_usage = 256 * 1024 * 1024  // 256MB
};
TinyAIProgressiveLoader* loader = tinyaiCreateProgressiveLoader(&loader_config);

    printf("loader created: %s\n", loader ? "yes" : "no"); /* glue */

// Load and unload layers as needed
tinyaiLoadLayer(loader, 0);
tinyaiLoadLayer(loader, 1);
tinyaiUnloadLayer(loader, 0);

    printf("last error: %s\n", tinyaiLastErrorMessage()); /* glue */

// Free loader
tinyaiFreeProgressiveLoader(loader);
    return 0; /* glue */
}
