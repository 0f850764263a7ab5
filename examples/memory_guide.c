/*
 * examples/: the memory guide's allocation strategies, memory pools, usage
 * tracking and progressive loading, under the TinyAI prefix (the guide
 * writes them for "Hyperion"): the guide's code with hyperion_/HYPERION_
 * spelled tinyai_/TINYAI_. Lines marked "glue" give the guide's free
 * variables values (size, num_objects, process_layer, memory_pressure),
 * apply each strategy and print what happened; the model is
 * EXAMPLE_MODEL_PATH (example_model.h), its layer count num_layers.
 */
#include "examples/example_model.h"

#include <stdio.h>

#include <tinyai/llm.h>
#include <tinyai/utils/memory.h>
#include <tinyai/utils/progressive_loader.h>

static int processed; /* glue */
static void process_layer(int i) { (void)i; processed++; } /* glue */

/* glue: the strategy, a model loaded and a session run under it */
static int run_under(const char *name, const TinyAIMemoryConfig *config) {
    if (tinyai_configure_memory(config) != TINYAI_OK) {
        printf("%s: %s\n", name, tinyaiLastErrorMessage());
        return 1;
    }
    TinyAIModel *m = NULL;
    TinyAISession *s = NULL;
    int32_t tok = 1;
    TinyAIStatus st = tinyaiLoadModel(EXAMPLE_MODEL_PATH("model.tmai"), NULL, &m);
    if (st == TINYAI_OK) st = tinyaiCreateSession(m, 256, &s);
    if (st == TINYAI_OK) st = tinyaiEval(s, &tok, 1);
    printf("%s: %s\n", name, st == TINYAI_OK ? "ran" : tinyaiLastErrorMessage());
    tinyaiFreeSession(s);
    tinyaiFreeModel(m);
    return 0;
}

int main(void) {
    /* ---- Memory Allocation Strategies ---- */
    {
   TinyAIMemoryConfig config = {
       .strategy = TINYAI_MEMORY_STRATEGY_STATIC,
       .initial_pool_size = 1024 * 1024  // 1MB
   };
        run_under("static 1 MB", &config); /* glue: too small for a model's buffers */
    }
    {
   TinyAIMemoryConfig config = {
       .strategy = TINYAI_MEMORY_STRATEGY_POOLED,
       .initial_pool_size = 2 * 1024 * 1024,  // 2MB
       .block_size = 4096  // 4KB blocks
   };
        run_under("pooled", &config); /* glue */
    }
    {
   TinyAIMemoryConfig config = {
       .strategy = TINYAI_MEMORY_STRATEGY_HYBRID,
       .initial_pool_size = 1024 * 1024,
       .enable_optimization = true
   };
        run_under("hybrid", &config); /* glue */
    }
    {
   TinyAIMemoryConfig config = {
       .strategy = TINYAI_MEMORY_STRATEGY_DYNAMIC,
       .track_allocations = true
   };
        run_under("dynamic", &config); /* glue */
    }

    /* ---- Memory Pools ---- */
    size_t size = 1000; /* glue */
   // Create a memory pool
   TinyAIMemoryPool* pool = tinyai_create_pool(
       1024 * 1024,  // 1MB total size
       4096          // 4KB block size
   );

   // Allocate from pool
   void* data = tinyai_pool_alloc(pool, size);

   // Free pool memory
   tinyai_pool_free(pool, data);
    printf("pool: block %s, %zu of %zu blocks in use\n", data ? "allocated" : "refused",
           tinyai_get_pool_stats(pool).blocks_used, tinyai_get_pool_stats(pool).blocks_total);
    tinyai_destroy_pool(pool); /* glue */

    size_t pool_size = 64 * 1024, object_size = 256; /* glue */
    int num_objects = 1000;                          /* glue */
   TinyAIMemoryPool* pool2 = tinyai_create_pool(pool_size, object_size); /* glue: 2nd pool */
   for (int i = 0; i < num_objects; i++) {
       void* obj = tinyai_pool_alloc(pool2, object_size);
       // Use object
       tinyai_pool_free(pool2, obj);
   }
    printf("pattern: %zu blocks in use after %d objects\n", tinyai_get_pool_stats(pool2).blocks_used,
           num_objects);
    tinyai_destroy_pool(pool2); /* glue */

    /* ---- Progressive Loading ---- */
    TinyAIMappedModel *model = tinyaiOpenMappedModel(EXAMPLE_MODEL_PATH("model.tmai"), NULL); /* glue */
    if (!model) {
        printf("Failed to open model: %s\n", tinyaiLastErrorMessage());
        return 1;
    }
    const int num_layers = tinyaiGetMappedLayerCount(model); /* glue */
   TinyAIProgressiveConfig config = {
       .enable_prefetch = true,
       .prefetch_window = 2,
       .enable_unload = true,
       .memory_threshold = 768 * 1024 * 1024,  // 768MB
       .model = model  // TinyAI extension
   };
   TinyAIProgressiveLoader* loader = tinyai_create_progressive_loader(&config);

   for (int i = 0; i < num_layers; i++) {
       if (!tinyai_load_layer(loader, i)) {
           break;
       }
       process_layer(i);
       const int memory_pressure = i >= 2; /* glue: keep two layers held */
       if (memory_pressure) {
           tinyai_unload_layer(loader, i - 2);
       }
   }
    printf("progressive: %d of %d layers processed, %zu bytes held at most\n", processed,
           num_layers, tinyaiGetProgressiveLoaderStats(loader).peak_usage);
    tinyai_free_progressive_loader(loader); /* glue */
    tinyaiCloseMappedModel(model);         /* glue */

    /* ---- Usage Tracking ---- */
   // Enable memory tracking
   tinyai_enable_memory_tracking(true);

   // Get memory statistics
   TinyAIMemoryStats stats = tinyai_get_memory_stats();
   printf("Current usage: %zu bytes\n", stats.current_usage);
   printf("Peak usage: %zu bytes\n", stats.peak_usage);

   // Generate memory report
   tinyai_generate_memory_report("memory_report.txt");
    return 0;
}
