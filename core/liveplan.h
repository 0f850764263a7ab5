/*
 * core/liveplan.h: placing buffers with known lifetimes in one arena (layer:
 * core). Greedy by size, as TensorFlow Lite Micro's GreedyMemoryPlanner:
 * buffers are taken largest first (ties: earlier first use, then the order
 * given); each goes to the lowest offset, aligned to its own alignment, at
 * which it overlaps no already placed buffer whose lifetime overlaps its
 * own. Two buffers may share bytes exactly when their lifetimes [first,
 * last] (inclusive steps) are disjoint. The arena is at least the bytes
 * live at the busiest step and at most the sum of the sizes (each aligned).
 * Used by the forward scheduler's output plan and by the model's workspace.
 * Pure; O(n^2).
 */
#ifndef TAI_CORE_LIVEPLAN_H
#define TAI_CORE_LIVEPLAN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    size_t size;   /* bytes (0: takes no room) */
    size_t align;  /* a power of two (0: 1) */
    int first;     /* first step it is live */
    int last;      /* last step it is live (>= first) */
    size_t offset; /* out: where it goes */
} tai_live_buf;

/* Places b[0..n) and sets *arena to the highest end rounded up to
 * `arena_align` (a power of two). 0, or -1 if a size or offset overflows.
 * tmp: scratch of 2 * n ints. */
int tai_live_place(tai_live_buf *b, int n, size_t arena_align, size_t *arena, int *tmp);
/* Whether two buffers live at the same step share a byte: 1 and their
 * indexes (for tests), or 0. */
int tai_live_overlap(const tai_live_buf *b, int n, int *i, int *j);

#ifdef __cplusplus
}
#endif

#endif
