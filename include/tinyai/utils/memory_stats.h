/*
 * TinyAI public API: memory statistics shared by the loaders and optimizers
 * (<tinyai/utils/progressive_loader.h>, ...). Plain data, no functions.
 */
#ifndef TINYAI_UTILS_MEMORY_STATS_H
#define TINYAI_UTILS_MEMORY_STATS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Kinds of TinyAI's memory (<tinyai/utils/memory.h> names them). */
#define TINYAI_MEMORY_KIND_COUNT 6

typedef struct {
    size_t current_usage;  /* bytes held now */
    size_t peak_usage;     /* most bytes held at once since creation */
    size_t budget;         /* the limit these bytes are held under */
    uint64_t hits;         /* requests served from memory */
    uint64_t misses;       /* requests that had to read from storage */
    uint64_t loads;        /* reads from storage completed */
    uint64_t evictions;    /* buffers dropped to make room */
    uint64_t bytes_read;   /* bytes read from storage */
    double stall_seconds;  /* time callers waited for storage */
    /* tinyai_get_memory_stats only (0 elsewhere): */
    size_t total_allocated;      /* bytes allocated since tracking began */
    uint64_t allocation_count;   /* allocations since tracking began */
    double fragmentation_ratio;  /* see <tinyai/utils/memory.h> */
    size_t kind_usage[TINYAI_MEMORY_KIND_COUNT]; /* bytes held now, per kind */
    size_t kind_peak[TINYAI_MEMORY_KIND_COUNT];  /* most held at once, per kind */
    size_t kind_resident[TINYAI_MEMORY_KIND_COUNT]; /* of kind_usage, the bytes
                                                       in memory now */
    size_t resident_usage;       /* their sum: TinyAI's part of the RSS */
} TinyAIMemoryStats;

#ifdef __cplusplus
}
#endif

#endif
