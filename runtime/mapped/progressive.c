/*
 * runtime/mapped: the progressive loader of the specification's Optimization
 * API (<tinyai/utils/progressive_loader.h>): a thin layer over a mapped
 * model's weight cache. "Loaded" layers are held in that cache; the loader
 * keeps their bytes under max_memory_usage by unloading lowest-priority,
 * then longest-loaded layers first (also when the cache itself has no room
 * left next to the held layers: it may be smaller than the limit), and
 * prefetches the layers after the one just loaded. No memory of its own
 * beyond its bookkeeping.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tinyai/utils/progressive_loader.h>

#include "core/clock.h"
#include "core/error.h"
#include "runtime/cache/cache.h"
#include "runtime/mapped/mapped.h"

#define MAX_WINDOW 64
#define ADAPTIVE_MAX 8

struct TinyAIProgressiveLoader {
    TinyAIProgressiveLoaderConfig cfg;
    int n_layers;
    unsigned char *held;
    int *priority;
    uint64_t *loaded_at; /* load sequence number of each held layer */
    uint64_t seq;
    size_t held_bytes, peak_bytes, budget;
    int window;
    uint64_t hits, misses;
    double stall_seconds;
    bool no_unload; /* tinyai_create_progressive_loader with enable_unload off */
};

TinyAIProgressiveLoader *tinyaiCreateProgressiveLoader(const TinyAIProgressiveLoaderConfig *config) {
    if (!config) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiCreateProgressiveLoader: config is NULL");
        return NULL;
    }
    if (config->enable_prefetch && (config->prefetch_window < 1 || config->prefetch_window > MAX_WINDOW)) {
        tai_error(TINYAI_ERR_INVALID_ARG, "prefetch_window must be 1..%d with prefetching, got %d",
                  MAX_WINDOW, config->prefetch_window);
        return NULL;
    }
    TinyAIProgressiveLoader *pl = calloc(1, sizeof *pl);
    if (!pl) {
        tai_error(TINYAI_ERR_NOMEM, "out of memory");
        return NULL;
    }
    pl->cfg = *config;
    pl->window = config->enable_prefetch ? config->prefetch_window : 0;
    if (config->model) {
        pl->n_layers = tai_mapped_layers(config->model);
        pl->held = calloc((size_t)pl->n_layers, 1);
        pl->priority = calloc((size_t)pl->n_layers, sizeof *pl->priority);
        pl->loaded_at = calloc((size_t)pl->n_layers, sizeof *pl->loaded_at);
        if (!pl->held || !pl->priority || !pl->loaded_at) {
            tinyaiFreeProgressiveLoader(pl);
            tai_error(TINYAI_ERR_NOMEM, "out of memory");
            return NULL;
        }
        TinyAIMappedModelStats ms;
        tinyaiGetMappedModelStats(config->model, &ms);
        pl->budget = config->max_memory_usage ? config->max_memory_usage : ms.cacheBytes;
    } else {
        pl->budget = config->max_memory_usage;
    }
    return pl;
}

void tinyaiFreeProgressiveLoader(TinyAIProgressiveLoader *pl) {
    if (!pl) return;
    for (int l = 0; pl->held && l < pl->n_layers; l++)
        if (pl->held[l]) (void)tai_mapped_release(pl->cfg.model, l);
    free(pl->held);
    free(pl->priority);
    free(pl->loaded_at);
    free(pl);
}

static bool check(const TinyAIProgressiveLoader *pl, int l, const char *fn) {
    if (!pl) {
        tai_error(TINYAI_ERR_INVALID_ARG, "%s: loader is NULL", fn);
        return false;
    }
    if (!pl->cfg.model) {
        tai_error(TINYAI_ERR_INVALID_ARG,
                  "%s: the loader has no model (set TinyAIProgressiveLoaderConfig.model)", fn);
        return false;
    }
    if (l < 0 || l >= pl->n_layers) {
        tai_error(TINYAI_ERR_INVALID_ARG, "%s: layer %d out of range (0..%d)", fn, l,
                  pl->n_layers - 1);
        return false;
    }
    return true;
}

static void unload(TinyAIProgressiveLoader *pl, int l) {
    (void)tai_mapped_release(pl->cfg.model, l);
    pl->held[l] = 0;
    pl->held_bytes -= tai_mapped_image_bytes(pl->cfg.model, l);
}

/* The held layer to unload first: lowest priority, then loaded longest ago. */
static int victim(const TinyAIProgressiveLoader *pl, int keep) {
    int best = -1;
    for (int l = 0; l < pl->n_layers; l++) {
        if (!pl->held[l] || l == keep) continue;
        if (best < 0 || pl->priority[l] < pl->priority[best] ||
            (pl->priority[l] == pl->priority[best] && pl->loaded_at[l] < pl->loaded_at[best]))
            best = l;
    }
    return best;
}

bool tinyaiLoadLayer(TinyAIProgressiveLoader *pl, int l) {
    if (!check(pl, l, "tinyaiLoadLayer")) return false;
    if (pl->held[l]) return true;
    TinyAIMappedModel *mm = pl->cfg.model;
    const size_t bytes = tai_mapped_image_bytes(mm, l);
    if (bytes > pl->budget) {
        tai_error(TINYAI_ERR_NOMEM, "layer %d needs %zu bytes, more than max_memory_usage (%zu)",
                  l, bytes, pl->budget);
        return false;
    }
    if (pl->no_unload && pl->held_bytes + bytes > pl->budget) {
        tai_error(TINYAI_ERR_NOMEM, "layer %d needs %zu bytes; %zu of the %zu allowed are held "
                  "and enable_unload is off (unload a layer first)", l, bytes, pl->held_bytes,
                  pl->budget);
        return false;
    }
    while (pl->held_bytes + bytes > pl->budget) {
        int v = victim(pl, l);
        if (v < 0) break;
        unload(pl, v);
    }
    const bool was_cached = tai_mapped_layer_state(mm, l) == TAI_ENTRY_RESIDENT;
    const double t0 = tai_now_s();
    void *p = NULL;
    for (;;) {
        const TinyAIStatus st = tai_mapped_acquire(mm, l, &p);
        if (st == TINYAI_OK) break;
        /* The cache may be smaller than max_memory_usage (or fragmented by
         * the held layers): make room the same way, lowest priority first,
         * rather than fail while under the limit. */
        const int v = st == TINYAI_ERR_NOMEM && !pl->no_unload ? victim(pl, l) : -1;
        if (v < 0) {
            tai_error_prefix("tinyaiLoadLayer: layer %d", l);
            return false;
        }
        unload(pl, v);
    }
    const double waited = tai_now_s() - t0;
    pl->held[l] = 1;
    pl->loaded_at[l] = ++pl->seq;
    pl->held_bytes += bytes;
    if (pl->held_bytes > pl->peak_bytes) pl->peak_bytes = pl->held_bytes;
    if (was_cached) {
        pl->hits++;
    } else {
        pl->misses++;
        pl->stall_seconds += waited;
    }
    if (pl->cfg.enable_prefetch) {
        /* adaptive: a load that had to wait means the window was too short
         * to hide storage; a hit means it was long enough */
        if (pl->cfg.enable_adaptive_window) {
            if (!was_cached && pl->window < ADAPTIVE_MAX) pl->window++;
            else if (was_cached && pl->window > 1) pl->window--;
        }
        for (int k = 1; k <= pl->window && l + k < pl->n_layers; k++)
            (void)tinyaiPrefetchLayerWeights(mm, l + k);
    }
    return true;
}

bool tinyaiUnloadLayer(TinyAIProgressiveLoader *pl, int l) {
    if (!check(pl, l, "tinyaiUnloadLayer")) return false;
    if (!pl->held[l]) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiUnloadLayer: layer %d is not loaded", l);
        return false;
    }
    unload(pl, l);
    return true;
}

TinyAILayerStatus tinyaiGetLayerStatus(const TinyAIProgressiveLoader *pl, int l) {
    if (!check(pl, l, "tinyaiGetLayerStatus")) return TINYAI_LAYER_INVALID;
    if (pl->held[l]) return TINYAI_LAYER_LOADED;
    switch (tai_mapped_layer_state(pl->cfg.model, l)) {
    case TAI_ENTRY_RESIDENT: return TINYAI_LAYER_CACHED;
    case TAI_ENTRY_LOADING: return TINYAI_LAYER_LOADING;
    case TAI_ENTRY_ABSENT: break;
    }
    return TINYAI_LAYER_UNLOADED;
}

void tinyaiSetProgressiveLayerPriority(TinyAIProgressiveLoader *pl, int l, int priority) {
    if (!check(pl, l, "tinyaiSetLayerPriority")) return;
    pl->priority[l] = priority;
}

TinyAIMemoryStats tinyaiGetProgressiveLoaderStats(const TinyAIProgressiveLoader *pl) {
    TinyAIMemoryStats s;
    memset(&s, 0, sizeof s);
    if (!pl) return s;
    s.current_usage = pl->held_bytes;
    s.peak_usage = pl->peak_bytes;
    s.budget = pl->budget;
    s.hits = pl->hits;
    s.misses = pl->misses;
    s.stall_seconds = pl->stall_seconds;
    if (pl->cfg.model) {
        TinyAIMappedModelStats ms;
        if (tinyaiGetMappedModelStats(pl->cfg.model, &ms)) {
            s.loads = ms.loads;
            s.evictions = ms.evictions;
            s.bytes_read = ms.bytesRead;
        }
    }
    return s;
}

int tinyaiGetProgressiveLoaderWindow(const TinyAIProgressiveLoader *pl) {
    return pl ? pl->window : 0;
}

/* ---- the memory guide's snake_case forms ---- */

TinyAIProgressiveLoader *tinyai_create_progressive_loader(const TinyAIProgressiveConfig *config) {
    if (!config) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyai_create_progressive_loader: config is NULL");
        return NULL;
    }
    const TinyAIProgressiveLoaderConfig c = {config->enable_prefetch, config->prefetch_window,
                                             false, config->memory_threshold, config->model};
    TinyAIProgressiveLoader *pl = tinyaiCreateProgressiveLoader(&c);
    if (pl) pl->no_unload = !config->enable_unload;
    return pl;
}

bool tinyai_load_layer(TinyAIProgressiveLoader *loader, int layer_index) {
    return tinyaiLoadLayer(loader, layer_index);
}

bool tinyai_unload_layer(TinyAIProgressiveLoader *loader, int layer_index) {
    return tinyaiUnloadLayer(loader, layer_index);
}

void tinyai_free_progressive_loader(TinyAIProgressiveLoader *loader) {
    tinyaiFreeProgressiveLoader(loader);
}
