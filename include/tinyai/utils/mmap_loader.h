/*
 * TinyAI public API: memory-mapped model loading (the specification's
 * <tinyai/utils/mmap_loader.h>).
 *
 * A mapped model is a model file (GGUF or .tmai) whose layers are loaded on
 * demand into a weight cache of at most maxCacheSize bytes and evicted when
 * room is needed. Layers are the unit: 0 is the token embedding, 1..n the
 * transformer blocks, n + 1 the final norm and output head.
 *
 * What "a layer's weights" are: the layer image, the layer's tensors in the
 * layout the kernels compute on (every matrix packed in 16-row panels, see
 * docs/FORMAT.md), each at a 64-byte aligned offset. For a .tmai file written
 * by `tinyai convert` (version 2) that is exactly the layer's bytes in the
 * file, read as they are; for GGUF and version 1 .tmai files the layer's bytes
 * are read and repacked on every load.
 *
 * Loading goes through the I/O engine (io_uring by default, with O_DIRECT:
 * the page cache is not used, so memory use is the cache and nothing else);
 * a .tmai layer's checksum is verified the first time it is loaded (every
 * time with verifyEveryLoad). The cache evicts the layer whose next use is
 * furthest away when it knows the order of use (a forward scheduler tells it),
 * else the least recently used; priorities and pins come first.
 *
 * Errors: functions returning a pointer return NULL, bool ones false, and
 * tinyaiLastErrorMessage() (<tinyai/status.h>) says why (naming the file, the
 * layer and the offset for a failed read). A file that changes on disk after
 * it was opened (written in place or truncated: another size or
 * modification time) fails every load after the change ("the file changed
 * on disk"); one renamed over it is not a change (the open file is read).
 *
 * Thread safety: every function may be called from several threads at once
 * on the same model, except tinyaiCloseMappedModel (no call may run
 * concurrently with it or follow it).
 */
#ifndef TINYAI_UTILS_MMAP_LOADER_H
#define TINYAI_UTILS_MMAP_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tinyai/utils/layer_priority.h>

#ifdef __cplusplus
extern "C" {
#endif

/* typedef struct TinyAIMappedModel TinyAIMappedModel; (layer_priority.h) */

/* A layer of a mapped model, as tinyaiGetLayerDescriptor returns it: the
 * calling thread's own copy, kept by the model until it is closed and
 * brought up to date by every call of that thread on the model (loading,
 * releasing, prefetching, running, describing); no other thread writes it,
 * so reading it races with nothing. cachedWeights, isActive, priority,
 * lastAccessed and accessCount change as the layer is loaded, used and
 * evicted: where other threads drive the same model, a layer may be
 * evicted after this thread's last call, so cachedWeights is safe to read
 * through only while the layer is held (tinyaiGetLayerWeights). */
typedef struct {
    size_t offset;         /* offset of the layer's bytes in the file */
    size_t size;           /* bytes of the layer in the file */
    int layerIndex;        /* index of the layer in the model */
    int precision;         /* bits per weight of its largest tensor (0: empty) */
    void *cachedWeights;   /* the layer image while cached, else NULL */
    bool isActive;         /* whether the layer is in the cache now */
    float priority;        /* cache retention priority (default 1.0) */
    uint64_t lastAccessed; /* monotonic nanoseconds of the last access (0: never) */
    uint64_t accessCount;  /* accesses (tinyaiGetLayerWeights, forward passes) */
} TinyAILayerDescriptor;

/* I/O engines (TinyAI extension; see the engine notes above). */
typedef enum {
    TINYAI_IO_AUTO = 0,  /* io_uring, falling back to pread by itself */
    TINYAI_IO_URING = 1,
    TINYAI_IO_PREAD = 2,
    TINYAI_IO_MMAP = 3,
} TinyAIIOEngine;

/* Cache eviction policies (TinyAI extension). */
typedef enum {
    TINYAI_CACHE_BELADY = 0, /* furthest next use, from the schedule */
    TINYAI_CACHE_LRU = 1,    /* least recently used */
} TinyAICachePolicy;

/* NUMA placement of the cache (TinyAI extension; one node: all the same). */
typedef enum {
    TINYAI_NUMA_LOCAL = 0,      /* on the node of the compute threads */
    TINYAI_NUMA_INTERLEAVE = 1, /* pages spread over the threads' nodes */
    TINYAI_NUMA_REPLICATE = 2,  /* small hot layers copied to every node */
} TinyAINumaPolicy;

typedef struct {
    size_t maxCacheSize;      /* bytes of the layer cache (default 256 MiB) */
    bool prefetchEnabled;     /* load the next layers ahead (default true) */
    int prefetchThreads;      /* loader threads, 1..16 (default 1) */
    bool adaptiveCaching;     /* schedule-aware eviction (furthest next use)
                                 when true (default), LRU when false */
    size_t minLayerCacheSize; /* allocation unit of the cache: every cached
                                 layer takes a multiple of it (default 4 KiB;
                                 rounded up to a power of two >= 4 KiB) */
    /* TinyAI extensions (zero-initialised: the defaults) */
    TinyAIIOEngine ioEngine;  /* default TINYAI_IO_AUTO */
    TinyAICachePolicy cachePolicy; /* used when adaptiveCaching is true:
                                      default TINYAI_CACHE_BELADY */
    TinyAINumaPolicy numaPolicy;   /* default TINYAI_NUMA_LOCAL */
    bool verifyEveryLoad;     /* verify .tmai checksums on every load, not
                                 only the first (default false) */
    int prefetchWindow;       /* layers loaded ahead, 0 = 1 (default) */
} TinyAIMmapConfig;

/* The documented defaults (see each field). */
TinyAIMmapConfig tinyaiCreateDefaultMmapConfig(void);

/* Opens a GGUF or .tmai model (recognised by content) and validates it
 * completely; no layer is loaded yet. config NULL: the defaults. Fails (NULL)
 * on a missing or malformed file, a bad config, or a cache smaller than the
 * largest layer image (the message states the minimum). The caller closes it
 * with tinyaiCloseMappedModel. */
TinyAIMappedModel *tinyaiOpenMappedModel(const char *filepath, const TinyAIMmapConfig *config);

/* Waits for loads in flight, frees the cache and closes the file. Pointers
 * from tinyaiGetLayerWeights become invalid. Accepts NULL. */
void tinyaiCloseMappedModel(TinyAIMappedModel *model);

/* Number of layers (blocks + 2), or -1 for NULL. */
int tinyaiGetMappedLayerCount(const TinyAIMappedModel *model);

/* The layer's descriptor, up to date now: the calling thread's copy (see
 * TinyAILayerDescriptor), valid until tinyaiCloseMappedModel. NULL for an
 * index out of range (or out of memory on a thread's first call). Safe to
 * call from any number of threads at once. */
const TinyAILayerDescriptor *tinyaiGetLayerDescriptor(const TinyAIMappedModel *model,
                                                      int layerIndex);

/* Loads the layer if needed (waiting for it) and returns its image, which
 * stays valid until the layer is released (tinyaiReleaseLayerWeights; calls
 * nest, each needs one release) or given up for room: when the cache cannot
 * hold the layer next to those held now, the calling thread's own
 * unreleased layers are given up, oldest first, one at a time, until it
 * fits (their images become invalid; a later release of one does nothing).
 * So a loop that releases only some layers (the specification's usage
 * example) still runs through a model of any size, and a pointer is safe
 * to use until this thread's next tinyaiGetLayerWeights if it is not
 * released before. A layer another thread also holds is never given up.
 * NULL on a bad index, a read or checksum error, or when no room can be
 * made that way (the message says why). */
void *tinyaiGetLayerWeights(TinyAIMappedModel *model, int layerIndex);

/* Starts loading the layer in the background (true), or does nothing if it
 * is already cached or loading (true). false on a bad index, when prefetching
 * is disabled, or when no room can be made without evicting a layer needed
 * sooner. */
bool tinyaiPrefetchLayerWeights(TinyAIMappedModel *model, int layerIndex);

/* Ends one tinyaiGetLayerWeights hold: the layer may now be evicted (it stays
 * cached until room is needed). Releasing a hold that was given up for room
 * does nothing; releasing a layer not held is an error (message set,
 * nothing else happens). */
void tinyaiReleaseLayerWeights(TinyAIMappedModel *model, int layerIndex);

/* Bytes of cache memory in use by cached and loading layers. */
size_t tinyaiGetMappedModelMemoryUsage(const TinyAIMappedModel *model);

/* void tinyaiSetLayerPriority(TinyAIMappedModel *, int, float):
 * declared in <tinyai/utils/layer_priority.h> (included above). */

/* Every layer's priority back to the default 1.0. */
void tinyaiResetLayerPriorities(TinyAIMappedModel *model);

/* ---- TinyAI extensions ---------------------------------------------- */

typedef struct {
    uint64_t hits, misses, loads, evictions, prefetches, loadErrors;
    uint64_t bytesRead;     /* bytes read from storage (layer loads) */
    double stallSeconds;    /* time callers waited for layers */
    double loadSeconds;     /* time spent reading (and repacking) layers */
    size_t cacheBytes;      /* the cache budget */
    size_t usedBytes, peakUsedBytes;
    const char *ioEngine;   /* the engine running: "uring", "pread", "mmap" */
    const char *ioFallback; /* why io_uring is not used, or NULL */
    const char *policy;     /* "belady" or "lru" */
} TinyAIMappedModelStats;

/* Statistics since open (or the last reset). false for NULL arguments. The
 * strings are borrowed from the model. */
bool tinyaiGetMappedModelStats(const TinyAIMappedModel *model, TinyAIMappedModelStats *out);
void tinyaiResetMappedModelStats(TinyAIMappedModel *model);

/* Size in bytes of a layer's image (what it takes in the cache). 0 for an
 * empty layer or a bad index. */
size_t tinyaiGetLayerImageSize(const TinyAIMappedModel *model, int layerIndex);

#ifdef __cplusplus
}
#endif

#endif
