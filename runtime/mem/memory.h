/*
 * runtime/mem/memory.h: TinyAI's own buffers, by kind, through the process's
 * allocation strategy (<tinyai/utils/memory.h> is the public face: the
 * strategies, the caller's pools, tracking and the report).
 */
#ifndef TAI_RUNTIME_MEM_MEMORY_H
#define TAI_RUNTIME_MEM_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tinyai/utils/memory.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TAI_MEM_WEIGHTS = TINYAI_MEMORY_KIND_WEIGHTS,
    TAI_MEM_KV = TINYAI_MEMORY_KIND_KV,
    TAI_MEM_ACT = TINYAI_MEMORY_KIND_ACTIVATIONS,
    TAI_MEM_IO = TINYAI_MEMORY_KIND_IO,
    TAI_MEM_TABLES = TINYAI_MEMORY_KIND_TABLES,
    TAI_MEM_POOLS = TINYAI_MEMORY_KIND_POOLS,
} tai_mem_kind;

/* A buffer of `size` bytes aligned to `align` (a power of two; at least
 * 16), zeroed if asked, under the strategy in force, counted as kind k.
 * NULL with the error set (TINYAI_ERR_NOMEM, naming a static arena that is
 * full) on failure. Freed with tai_mem_free. Thread-safe. */
void *tai_mem_alloc(tai_mem_kind k, size_t size, size_t align, bool zero);
/* Accepts NULL. */
void tai_mem_free(void *p);
/* Memory of kind k allocated elsewhere and not a region (the tables: heap
 * allocations of their own): delta bytes more (or fewer). */
void tai_mem_note(tai_mem_kind k, int64_t delta);
/* A region of kind k another part allocated and frees (the weight cache's
 * arenas, the caller's pools): counted, and its resident pages measured,
 * until untracked with the same arguments. */
void tai_mem_track(tai_mem_kind k, void *p, size_t size);
void tai_mem_untrack(tai_mem_kind k, void *p, size_t size);
/* Resident bytes of the buffers and regions of each kind now (mincore). */
void tai_mem_resident(size_t out[TINYAI_MEMORY_KIND_COUNT]);

#ifdef __cplusplus
}
#endif

#endif
