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
} TinyAIMemoryStats;

#ifdef __cplusplus
}
#endif

#endif
