/*
 * runtime/cache: the pure part of eviction, internal to the cache. Where each
 * entry occurs in the schedule, when it is next used after a given position,
 * and which of two entries is the better victim. No locks and no state beyond
 * the index that tai_sched_build allocates; cache.c calls it under its mutex
 * and the tests call it directly.
 *
 * Positions are "unwrapped": position p of cycle k of a cyclic schedule of
 * length L is k * L + p, so that distances never wrap. -1 is the position
 * before the first one (a fresh cursor).
 */
#ifndef TAI_RUNTIME_CACHE_POLICY_H
#define TAI_RUNTIME_CACHE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tinyai/status.h>

#include "runtime/cache/cache.h"

#ifdef __cplusplus
extern "C" {
#endif

/* "Never used again": further than every real position. */
#define TAI_SCHED_NEVER INT64_MAX

typedef struct {
    int n;          /* entries */
    int len;        /* schedule length; 0 = no schedule */
    bool cyclic;
    int *order;     /* len entries, a copy of the caller's order */
    int *start;     /* n + 1: entry e occurs at pos[start[e] .. start[e + 1]) */
    int *pos;       /* len positions, ascending within each entry */
} tai_sched;

/* Builds the index of `order` (len entries, each 0..n-1; len 0 = no
 * schedule, order may then be NULL) into *s, which the caller frees with
 * tai_sched_free. INVALID_ARG names the first bad position; NOMEM. *s is
 * left empty (and freeable) on failure. */
TinyAIStatus tai_sched_build(tai_sched *s, int n, const int *order, int len, bool cyclic);
void tai_sched_free(tai_sched *s);

/* The unwrapped position of the first use of entry e strictly after the
 * unwrapped position `after` (>= -1, or TAI_SCHED_NEVER), or TAI_SCHED_NEVER
 * if there is none: e absent from the schedule, or past the end of a
 * non-cyclic one. O(log occurrences of e). */
int64_t tai_sched_next(const tai_sched *s, int e, int64_t after);

/* What victim order looks at for one entry. */
typedef struct {
    float priority;
    int64_t next;  /* distance to the next use (TAI_SCHED_NEVER: none) */
    uint64_t tick; /* logical time of the last acquire (or load start) */
    size_t size;
    int index;
} tai_victim_key;

/* True when `a` is to be evicted before `b`: lower priority first; then, for
 * TAI_CACHE_BELADY, the further next use, the larger size, the lower index;
 * for TAI_CACHE_LRU, the older tick, the lower index. A strict total order
 * over distinct indices. */
bool tai_victim_before(tai_cache_policy policy, const tai_victim_key *a,
                       const tai_victim_key *b);

#ifdef __cplusplus
}
#endif

#endif /* TAI_RUNTIME_CACHE_POLICY_H */
