/*
 * core/ranges.h: first-fit allocation of byte ranges in an arena of fixed
 * size (layer: core). The free ranges are kept sorted and merged with their
 * neighbours when given back, so a fully returned arena is one range again.
 * Offsets only: the caller owns the memory. Not thread-safe (the caller
 * locks). Used by TinyAI's static memory arena and the memory optimizer's.
 */
#ifndef TAI_CORE_RANGES_H
#define TAI_CORE_RANGES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    size_t off, len;
} tai_range;

typedef struct {
    size_t size, unit; /* arena bytes; every range a multiple of unit */
    tai_range *free;   /* sorted by offset, never adjacent */
    size_t n, cap;
} tai_ranges;

/* An arena of `size` bytes (rounded down to `unit`, a power of two) all
 * free. 0, or -1 (out of memory). */
int tai_ranges_init(tai_ranges *r, size_t size, size_t unit);
void tai_ranges_free(tai_ranges *r);
/* The offset of `size` bytes (rounded up to the unit) whose address
 * base + offset is aligned to `align` (a power of two), first fit; SIZE_MAX
 * if none. */
size_t tai_ranges_take(tai_ranges *r, uintptr_t base, size_t size, size_t align);
/* Returns a range taken before (same size). */
void tai_ranges_give(tai_ranges *r, size_t off, size_t size);
/* Free bytes in all, and the largest free range. */
size_t tai_ranges_free_bytes(const tai_ranges *r);
size_t tai_ranges_largest(const tai_ranges *r);

#ifdef __cplusplus
}
#endif

#endif
