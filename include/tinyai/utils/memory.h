/*
 * <tinyai/utils/memory.h>: how TinyAI allocates its own memory, memory
 * pools for the caller, and memory tracking and reports (the memory guide's
 * API under the TinyAI prefix).
 *
 * TinyAI's memory by kind:
 *   TINYAI_MEMORY_KIND_WEIGHTS      the weight cache's arenas (what a model's
 *                                   layers are read into)
 *   TINYAI_MEMORY_KIND_KV           sessions' KV caches and logits
 *   TINYAI_MEMORY_KIND_ACTIVATIONS  models' forward-pass workspaces
 *   TINYAI_MEMORY_KIND_IO           loaders' staging buffers
 *   TINYAI_MEMORY_KIND_TABLES       tokenizers and file tables (counted)
 *   TINYAI_MEMORY_KIND_POOLS        the caller's pools (tinyai_create_pool)
 *
 * The KV caches, workspaces and staging buffers are allocated under the
 * process's strategy (tinyai_configure_memory):
 *   TINYAI_MEMORY_STRATEGY_DYNAMIC  (the default) each buffer from the system
 *                                   allocator when asked, returned when freed
 *   TINYAI_MEMORY_STRATEGY_STATIC   every buffer carved from one arena of
 *                                   initial_pool_size bytes reserved when the
 *                                   strategy is set: TinyAI's memory for these
 *                                   kinds never exceeds it, and what does not
 *                                   fit fails cleanly (TINYAI_ERR_NOMEM naming
 *                                   the arena) instead of growing
 *   TINYAI_MEMORY_STRATEGY_POOLED   freed buffers are kept (up to
 *                                   initial_pool_size bytes of them) and handed
 *                                   out again for the next buffer of the same
 *                                   size: a server opening and closing
 *                                   sessions reuses their KV memory without
 *                                   faulting new pages in
 *   TINYAI_MEMORY_STRATEGY_HYBRID   the static arena first, the system
 *                                   allocator for what does not fit
 * The weight cache keeps its own arenas (sized by the memory plan, placed
 * on NUMA nodes); they are counted as WEIGHTS whatever the strategy.
 *
 * Tracking: the bytes of each kind held now and at the peak are always
 * kept (a few atomic additions per buffer); tinyai_enable_memory_tracking
 * adds the counts (allocations made, bytes allocated in total) and the
 * report's list of live buffers.
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef TINYAI_UTILS_MEMORY_H
#define TINYAI_UTILS_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tinyai/status.h>
#include <tinyai/utils/memory_stats.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TINYAI_MEMORY_STRATEGY_STATIC = 0,
    TINYAI_MEMORY_STRATEGY_POOLED = 1,
    TINYAI_MEMORY_STRATEGY_DYNAMIC = 2,
    TINYAI_MEMORY_STRATEGY_HYBRID = 3,
} TinyAIMemoryStrategy;

typedef struct {
    TinyAIMemoryStrategy strategy;
    size_t initial_pool_size; /* STATIC/HYBRID: the arena; POOLED: the most
                                 bytes of freed buffers kept for reuse */
    size_t block_size;        /* STATIC/HYBRID: the arena's allocation unit
                                 (a power of two, 64..1 MiB; 0: 4096) */
    bool track_allocations;   /* also tinyai_enable_memory_tracking(true) */
    bool enable_optimization; /* POOLED/HYBRID: return kept buffers' pages to
                                 the system (madvise) while they wait, so
                                 that kept memory costs address space, not
                                 resident memory */
} TinyAIMemoryConfig;

typedef enum {
    TINYAI_MEMORY_KIND_WEIGHTS = 0,
    TINYAI_MEMORY_KIND_KV = 1,
    TINYAI_MEMORY_KIND_ACTIVATIONS = 2,
    TINYAI_MEMORY_KIND_IO = 3,
    TINYAI_MEMORY_KIND_TABLES = 4,
    TINYAI_MEMORY_KIND_POOLS = 5,
    TINYAI_MEMORY_KINDS = 6,
} TinyAIMemoryKind;

/* Sets the strategy for the buffers TinyAI allocates from now on. Only
 * while none of them is allocated (before the first model, or after the
 * last is freed): TINYAI_ERR_INVALID_ARG otherwise, as for an unknown
 * strategy or block size; TINYAI_ERR_NOMEM if the static arena cannot be
 * reserved. The default is {DYNAMIC}. */
TinyAIStatus tinyai_configure_memory(const TinyAIMemoryConfig *config);
/* The configuration in force. */
TinyAIMemoryConfig tinyai_get_memory_config(void);

/* ---- Pools for the caller ---------------------------------------------- */

/* A pool of fixed-size blocks: totalSize bytes reserved at creation, cut
 * into blocks of blockSize (rounded up to 16 bytes); allocations are O(1)
 * and never touch the system allocator. */
typedef struct TinyAIMemoryPool TinyAIMemoryPool;

/* NULL (with the last error set) if blockSize is 0 or larger than
 * totalSize, or the memory cannot be reserved. */
TinyAIMemoryPool *tinyai_create_pool(size_t totalSize, size_t blockSize);
/* A block of at least `size` bytes (1..blockSize), 16-byte aligned, or NULL
 * with the last error set (size 0 or above the block size, pool exhausted,
 * NULL pool). */
void *tinyai_pool_alloc(TinyAIMemoryPool *pool, size_t size);
/* Returns a block. A pointer the pool did not hand out (or not at a block's
 * start) or one already returned is refused with TINYAI_ERR_INVALID_ARG
 * and changes nothing. Freeing NULL does nothing. */
TinyAIStatus tinyai_pool_free(TinyAIMemoryPool *pool, void *ptr);
/* Frees the pool and everything in it. Accepts NULL. */
void tinyai_destroy_pool(TinyAIMemoryPool *pool);

/* Blocks in use and in all; bytes asked for by the live allocations. */
typedef struct {
    size_t blocks_used, blocks_total, block_size, bytes_requested;
} TinyAIPoolStats;
TinyAIPoolStats tinyai_get_pool_stats(const TinyAIMemoryPool *pool);

/* ---- Tracking and reports ---------------------------------------------- */

void tinyai_enable_memory_tracking(bool enable);
bool tinyai_memory_tracking_enabled(void);

/* Process-wide figures: current_usage and peak_usage are TinyAI's bytes of
 * every kind held (allocated), now and at the most; kind_usage and
 * kind_peak per kind; kind_resident of each kind's held bytes those in
 * memory now (pages touched: mincore), resident_usage their sum, TinyAI's
 * part of the process's resident set (the tables count as resident);
 * total_allocated and allocation_count what was allocated since tracking
 * was enabled (0 while it is off); fragmentation_ratio: STATIC/HYBRID the
 * static arena's free bytes outside its largest free range over all its
 * free bytes, POOLED kept (idle) bytes over kept and live ones, DYNAMIC 0.
 * The loader fields (hits, loads, ...) are 0 here. */
TinyAIMemoryStats tinyai_get_memory_stats(void);

/* Writes a text report to `path`: the strategy, each kind's bytes now and
 * at the peak, the counts, the process's resident memory (VmRSS, VmHWM)
 * beside TinyAI's total and what that leaves to code, libraries and the
 * C library's own heap, and (with tracking on) the largest live buffers.
 * TINYAI_ERR_IO naming the path if it cannot be written. */
TinyAIStatus tinyai_generate_memory_report(const char *path);

#ifdef __cplusplus
}
#endif

#endif
