/*
 * TinyAI public API: the progressive loader (the specification's Optimization
 * API): load and unload a model's layers one by one within a memory limit,
 * loading the next ones ahead.
 *
 * A thin layer over a mapped model's weight cache (<tinyai/utils/
 * mmap_loader.h>), not a second cache: "loaded" means held in that cache
 * (never evicted until unloaded). Loading a layer when the held layers would
 * exceed max_memory_usage first unloads held layers, lowest priority first
 * (then those loaded longest ago). With enable_prefetch the next
 * prefetch_window layers are prefetched into the cache after each load;
 * enable_adaptive_window widens the window (up to 8) while loads keep
 * waiting for storage and narrows it (down to 1) when they do not.
 *
 * The loader needs a model: TinyAIProgressiveLoaderConfig.model (a TinyAI
 * extension; the specification's configuration has no model). Without one,
 * every load fails with a message saying so.
 *
 * Thread safety: one thread at a time per loader.
 */
#ifndef TINYAI_UTILS_PROGRESSIVE_LOADER_H
#define TINYAI_UTILS_PROGRESSIVE_LOADER_H

#include <stdbool.h>
#include <stddef.h>

#include <tinyai/utils/layer_priority.h>
#include <tinyai/utils/memory_stats.h>
#include <tinyai/utils/mmap_loader.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    bool enable_prefetch;        /* prefetch the next layers */
    int prefetch_window;         /* how many (1..64) */
    bool enable_adaptive_window; /* adapt the window to storage stalls */
    size_t max_memory_usage;     /* bytes of held layers; 0 = the cache size */
    TinyAIMappedModel *model;    /* TinyAI extension: the model (borrowed) */
} TinyAIProgressiveLoaderConfig;

typedef enum {
    TINYAI_LAYER_UNLOADED = 0,
    TINYAI_LAYER_LOADING = 1, /* being read (prefetch) */
    TINYAI_LAYER_LOADED = 2,  /* held by this loader */
    TINYAI_LAYER_CACHED = 3,  /* in the cache but not held (may be evicted) */
    TINYAI_LAYER_INVALID = -1 /* bad loader or index */
} TinyAILayerStatus;

/* NULL on a bad config (window < 1 with prefetch, ...). Freed by
 * tinyaiFreeProgressiveLoader, which unloads what it holds. */
TinyAIProgressiveLoader *tinyaiCreateProgressiveLoader(const TinyAIProgressiveLoaderConfig *config);
void tinyaiFreeProgressiveLoader(TinyAIProgressiveLoader *loader); /* accepts NULL */

/* Loads (and holds) a layer; true if held afterwards (also if it already
 * was). */
bool tinyaiLoadLayer(TinyAIProgressiveLoader *loader, int layer_index);
/* Stops holding a layer; false if it was not loaded by this loader. */
bool tinyaiUnloadLayer(TinyAIProgressiveLoader *loader, int layer_index);

TinyAILayerStatus tinyaiGetLayerStatus(const TinyAIProgressiveLoader *loader, int layer_index);

/* void tinyaiSetLayerPriority(TinyAIProgressiveLoader *, int, int): see
 * <tinyai/utils/layer_priority.h>. */

/* Held bytes (current, peak, budget = max_memory_usage) and the cache's
 * counters. All zero for NULL. */
TinyAIMemoryStats tinyaiGetProgressiveLoaderStats(const TinyAIProgressiveLoader *loader);

/* TinyAI extension: the prefetch window now (adaptive). */
int tinyaiGetProgressiveLoaderWindow(const TinyAIProgressiveLoader *loader);

/* ---- The memory guide's forms (snake_case) -------------------------------
 * The same loader. enable_unload: a load past memory_threshold unloads held
 * layers (lowest priority, then oldest) as above; off, such a load fails
 * (TINYAI_ERR_NOMEM, false) and the caller unloads, as the guide's loop
 * does under memory pressure. memory_threshold is max_memory_usage; there
 * is no adaptive window. */
typedef struct {
    bool enable_prefetch;
    int prefetch_window;
    bool enable_unload;
    size_t memory_threshold;
    TinyAIMappedModel *model; /* TinyAI extension, as above */
} TinyAIProgressiveConfig;

TinyAIProgressiveLoader *tinyai_create_progressive_loader(const TinyAIProgressiveConfig *config);
bool tinyai_load_layer(TinyAIProgressiveLoader *loader, int layer_index);
bool tinyai_unload_layer(TinyAIProgressiveLoader *loader, int layer_index);
void tinyai_free_progressive_loader(TinyAIProgressiveLoader *loader); /* accepts NULL */

#ifdef __cplusplus
}
#endif

#endif
