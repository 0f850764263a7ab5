/*
 * examples/: the Memory Optimization Guide's memory-mapped loading snippets
 * ("Basic Usage", "Configuration Options", "Layer Access") assembled into
 * one program, in that order.
 *
 * What was changed to make one program of three snippets (everything else is
 * the guide's text): the model path is EXAMPLE_MODEL_PATH("path/to/model.
 * tmai") (example_model.h); the configuration snippet's first line (the
 * same declaration as Basic Usage's) appears once; the Layer Access snippet
 * stands where Basic Usage says "Use the model"; lines marked "glue" declare
 * the layerIndex the snippet uses and print what it did, so that a test can
 * check it.
 */
#include "examples/example_model.h"

#include <stdio.h> /* glue: the snippets call printf */

#include <tinyai/utils/mmap_loader.h>

int main(void) {
    int layerIndex = 1; /* glue: the layer the Layer Access snippet uses */

// Create a default configuration
TinyAIMmapConfig config = tinyaiCreateDefaultMmapConfig();

// Set maximum cache size (default is 256MB)
config.maxCacheSize = 100 * 1024 * 1024; // 100MB

// Enable/disable prefetching (default is enabled)
config.prefetchEnabled = true;

// Set number of prefetch threads (default is 1)
config.prefetchThreads = 2;

// Enable/disable adaptive caching (default is enabled)
config.adaptiveCaching = true;

// Set minimum layer cache size (default is 4KB)
config.minLayerCacheSize = 8 * 1024; // 8KB

// Open the model with memory mapping
TinyAIMappedModel* model = tinyaiOpenMappedModel(EXAMPLE_MODEL_PATH("path/to/model.tmai"), &config);
if (!model) {
    printf("Failed to open model\n");
    return 1;
}

// Use the model
// Get layer count
int layerCount = tinyaiGetMappedLayerCount(model);

// Get layer descriptor
const TinyAILayerDescriptor* desc = tinyaiGetLayerDescriptor(model, layerIndex);

// Load layer weights (will be cached based on configuration)
void* weights = tinyaiGetLayerWeights(model, layerIndex);

// Prefetch layer weights in anticipation of use
tinyaiPrefetchLayerWeights(model, layerIndex);

// Release layer weights when no longer needed
tinyaiReleaseLayerWeights(model, layerIndex);

// Get current memory usage
size_t memUsage = tinyaiGetMappedModelMemoryUsage(model);

// Set layer priority (higher values = more likely to keep in cache)
tinyaiSetLayerPriority(model, layerIndex, 2.0f);

    /* glue: what the snippets did */
    printf("layers: %d\n", layerCount);
    printf("layer %d: offset %zu size %zu precision %d bits\n", desc->layerIndex, desc->offset,
           desc->size, desc->precision);
    printf("weights loaded: %s\n", weights ? "yes" : "no");
    printf("cached after release: %s, accesses %llu, priority %.1f\n",
           desc->isActive ? "yes" : "no", (unsigned long long)desc->accessCount,
           desc->priority);
    printf("memory usage: %zu bytes\n", memUsage);

// Close the model when done
tinyaiCloseMappedModel(model);
    return 0; /* glue */
}
