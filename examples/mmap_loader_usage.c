/*
 * examples/: the usage example of the Memory-Mapped Model Loading API
 * reference (the specification's mmap_loader.md, "Usage Example"): open a
 * .tmai with a 100 MB cache, load every layer, release the even ones, print
 * the memory usage.
 *
 * Verbatim apart from the model path: "model.tmai" became
 * EXAMPLE_MODEL_PATH("model.tmai") (example_model.h), which needs the one
 * extra #include below.
 */
#include "examples/example_model.h"

#include <tinyai/utils/mmap_loader.h>
#include <stdio.h>

int main() {
    // Create a custom configuration
    TinyAIMmapConfig config = tinyaiCreateDefaultMmapConfig();
    config.maxCacheSize = 100 * 1024 * 1024; // 100MB cache
    
    // Open the model
    TinyAIMappedModel* model = tinyaiOpenMappedModel(EXAMPLE_MODEL_PATH("model.tmai"), &config);
    if (!model) {
        printf("Failed to open model\n");
        return 1;
    }
    
    // Get layer count
    int layerCount = tinyaiGetMappedLayerCount(model);
    printf("Model has %d layers\n", layerCount);
    
    // Load and use each layer
    for (int i = 0; i < layerCount; i++) {
        void* weights = tinyaiGetLayerWeights(model, i);
        if (weights) {
            // Use the weights...
            printf("Layer %d loaded successfully\n", i);
        }
        
        // Optionally release the layer to save memory
        if (i % 2 == 0) {
            tinyaiReleaseLayerWeights(model, i);
        }
    }
    
    // Print memory usage
    printf("Memory usage: %.2f MB\n", 
           tinyaiGetMappedModelMemoryUsage(model) / (1024.0 * 1024.0));
    
    // Close the model
    tinyaiCloseMappedModel(model);
    
    return 0;
}
