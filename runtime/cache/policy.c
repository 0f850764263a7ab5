/*
 * runtime/cache: the schedule index (for every entry, the sorted positions
 * where it occurs, so that a next use is one binary search) and the victim
 * order. Pure functions; see policy.h.
 */
#include "runtime/cache/policy.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

TinyAIStatus tai_sched_build(tai_sched *s, int n, const int *order, int len, bool cyclic) {
    memset(s, 0, sizeof *s);
    s->n = n;
    if (n < 0 || len < 0) return tai_error(TINYAI_ERR_INVALID_ARG, "negative schedule size");
    if (len == 0) return TINYAI_OK;
    if (!order) return tai_error(TINYAI_ERR_INVALID_ARG, "schedule of %d positions is NULL", len);
    for (int p = 0; p < len; p++) {
        if (order[p] < 0 || order[p] >= n)
            return tai_error(TINYAI_ERR_INVALID_ARG,
                             "schedule position %d names entry %d; entries are 0..%d", p,
                             order[p], n - 1);
    }
    s->order = malloc((size_t)len * sizeof *s->order);
    s->start = calloc((size_t)n + 1, sizeof *s->start);
    s->pos = malloc((size_t)len * sizeof *s->pos);
    if (!s->order || !s->start || !s->pos) {
        tai_sched_free(s);
        return tai_error(TINYAI_ERR_NOMEM, "no memory for a schedule of %d positions", len);
    }
    memcpy(s->order, order, (size_t)len * sizeof *order);
    /* Counting sort by entry; walking positions in ascending order leaves
     * each entry's positions sorted. start[e + 1] counts first, then turns
     * into the running offsets; `fill` walks them forward and ends equal
     * to start[e + 1]. */
    for (int p = 0; p < len; p++) s->start[order[p] + 1]++;
    for (int e = 0; e < n; e++) s->start[e + 1] += s->start[e];
    int *fill = malloc(((size_t)n + 1) * sizeof *fill);
    if (!fill) {
        tai_sched_free(s);
        return tai_error(TINYAI_ERR_NOMEM, "no memory for a schedule of %d positions", len);
    }
    memcpy(fill, s->start, ((size_t)n + 1) * sizeof *fill);
    for (int p = 0; p < len; p++) s->pos[fill[order[p]]++] = p;
    free(fill);
    s->len = len;
    s->cyclic = cyclic;
    return TINYAI_OK;
}

void tai_sched_free(tai_sched *s) {
    free(s->order);
    free(s->start);
    free(s->pos);
    int n = s->n;
    memset(s, 0, sizeof *s);
    s->n = n;
}

int64_t tai_sched_next(const tai_sched *s, int e, int64_t after) {
    if (s->len == 0 || e < 0 || e >= s->n || after == TAI_SCHED_NEVER) return TAI_SCHED_NEVER;
    int lo = s->start[e], hi = s->start[e + 1];
    if (lo == hi) return TAI_SCHED_NEVER;
    if (after < 0) return s->pos[lo];
    int64_t len = s->len, base, r;
    if (s->cyclic) {
        /* The next cycle's first use must still be representable. */
        if (after > INT64_MAX - 3 * len) return TAI_SCHED_NEVER;
        base = after / len * len;
        r = after - base;
    } else {
        if (after >= len) return TAI_SCHED_NEVER;
        base = 0;
        r = after;
    }
    /* First k in [lo, hi) with pos[k] > r. */
    int a = lo, b = hi;
    while (a < b) {
        int m = a + (b - a) / 2;
        if (s->pos[m] > r)
            b = m;
        else
            a = m + 1;
    }
    if (a < hi) return base + s->pos[a];
    return s->cyclic ? base + len + s->pos[lo] : TAI_SCHED_NEVER;
}

bool tai_victim_before(tai_cache_policy policy, const tai_victim_key *a,
                       const tai_victim_key *b) {
    if (a->priority != b->priority) return a->priority < b->priority;
    if (policy == TAI_CACHE_BELADY) {
        if (a->next != b->next) return a->next > b->next;
        /* Neither is needed sooner: freeing more bytes at once is better. */
        if (a->size != b->size) return a->size > b->size;
    } else if (a->tick != b->tick) {
        return a->tick < b->tick;
    }
    return a->index < b->index;
}
