/*
 * <tinyai/utils/cache_optimization.h>: how a loaded model's matrix
 * products use the CPU's caches, what the caches and the weight cache did,
 * and its weights' layout in its file.
 *
 * The settings are the model's own (its CPU device's; other models keep
 * theirs, or the machine's kernel tuning, <tinyai/llm.h>
 * tinyaiSetKernelTuning), take effect on its next evaluation, and never
 * change a result, only speed: the matrix-vector products (decoding)
 * prefetch the weights ahead of where they read, and the matrix-matrix
 * products (prompts, batches) work on slices of K that keep a slice of
 * the weights in L1 and of the activations in L2, storing and reloading
 * their partial sums exactly between slices. `tinyai bench` shows what
 * each setting does to speed (bench/README.md).
 */
#ifndef TINYAI_UTILS_CACHE_OPTIMIZATION_H
#define TINYAI_UTILS_CACHE_OPTIMIZATION_H

#include <stdbool.h>
#include <stdint.h>

#include <tinyai/llm.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int block_size;         /* K elements per slice of the matrix-matrix
                               products: 0 = the kernels' defaults (256 for
                               float weights, 512 for block-quantized ones),
                               else a multiple of 32 up to 1024 */
    int cache_line_size;    /* bytes; 0 = this CPU's. The kernels are laid
                               out for it: another value is refused. */
    bool enable_prefetch;   /* software prefetch in the matrix-vector
                               products (false: the hardware's alone) */
    int prefetch_distance;  /* cache lines ahead prefetched into L1 (and
                               four times as far into L2), 1..256; 0 with
                               enable_prefetch is refused */
} TinyAICacheConfig;

/* The model's settings now: its own, or the machine's kernel tuning
 * (tinyaiSetKernelTuning) as this config would say it. */
TinyAICacheConfig tinyaiGetCacheConfig(const TinyAIModel *model);

/* Applies cfg to the model's products. false (nothing changed,
 * tinyaiLastErrorMessage says why) for a NULL argument or a value out of
 * range. */
bool tinyaiConfigureCacheOptimization(TinyAIModel *model, const TinyAICacheConfig *config);

#define TINYAI_CACHE_STATS_COUNTERS 9

/* What happened since the previous call (the first call: since the load
 * for the weight cache; the CPU counters start at the first call, which
 * returns them as zero). */
typedef struct {
    double seconds;          /* wall time covered */
    /* the weight cache */
    uint64_t hits, misses;   /* layer acquisitions found resident / not */
    double hitRate;          /* hits / (hits + misses); 1 when none */
    uint64_t bytesRead;      /* read from storage */
    uint64_t evictions, prefetches;
    double stallSeconds;     /* the forward pass waiting for layers */
    /* the CPU's counters over the model's CPU threads (perf_event_open):
     * "cycles", "instructions", "llc-references", "llc-misses" ... where
     * the kernel exposes them, the kernel's software counters everywhere */
    int nCounters;
    const char *counterNames[TINYAI_CACHE_STATS_COUNTERS];
    bool counterAvailable[TINYAI_CACHE_STATS_COUNTERS];
    uint64_t counters[TINYAI_CACHE_STATS_COUNTERS];
    double llcMissRate;      /* llc-misses / llc-references; -1 where the
                                CPU's counters are not exposed */
    char note[200];          /* "" or why counters are missing */
} TinyAICacheStats;

/* Zeroed, with the note saying why, for a NULL model. */
TinyAICacheStats tinyaiGetCacheStats(const TinyAIModel *model);

/* Puts every weight in the layout the kernels read in place: a model whose
 * file stores matrices row-major (GGUF, .tmai version 1) is rewritten to
 * a packed .tmai: an unlinked temporary file beside its file, which the
 * model then reads, so that layers load without repacking (under a memory
 * limit: no staging buffers, reads straight into the cache); the logits
 * stay the same bits. true
 * when done or when there was nothing to do; false (the model unchanged)
 * when it cannot be done: live sessions, a model on a caller's mapped
 * model, no room for the file. */
bool tinyaiOptimizeMemoryLayout(TinyAIModel *model);

#ifdef __cplusplus
}
#endif

#endif /* TINYAI_UTILS_CACHE_OPTIMIZATION_H */
