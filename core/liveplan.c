/* core/liveplan.c: greedy placement of buffers by lifetime (liveplan.h). */
#include "core/liveplan.h"

#include <stdint.h>
#include <stdlib.h>

/* Whether buffer x goes before buffer y: larger first, then earlier
 * first use, then the order given. */
static int before(const tai_live_buf *b, int x, int y) {
    if (b[x].size != b[y].size) return b[x].size > b[y].size;
    if (b[x].first != b[y].first) return b[x].first < b[y].first;
    return x < y;
}

static int live_together(const tai_live_buf *a, const tai_live_buf *b) {
    return a->first <= b->last && b->first <= a->last;
}

static int align_up(size_t v, size_t a, size_t *out) {
    if (a < 2) {
        *out = v;
        return 0;
    }
    if (v > SIZE_MAX - (a - 1)) return -1;
    *out = (v + (a - 1)) & ~(a - 1);
    return 0;
}

int tai_live_place(tai_live_buf *b, int n, size_t arena_align, size_t *arena, int *tmp) {
    int *order = tmp, *placed = tmp + n;
    /* insertion sort (n is small; qsort has no context argument) */
    for (int i = 0; i < n; i++) {
        const int v = i;
        int j = i;
        while (j > 0 && before(b, v, order[j - 1])) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = v;
    }
    int n_placed = 0; /* placed[]: indexes of nonempty buffers by offset */
    size_t top = 0;
    for (int k = 0; k < n; k++) {
        tai_live_buf *nd = &b[order[k]];
        if (nd->size == 0) {
            nd->offset = 0;
            continue;
        }
        size_t cand = 0;
        if (align_up(0, nd->align, &cand) != 0) return -1;
        for (int j = 0; j < n_placed; j++) {
            const tai_live_buf *o = &b[placed[j]];
            if (!live_together(nd, o)) continue;
            if (cand <= o->offset && nd->size <= o->offset - cand) break; /* fits below o */
            size_t end;
            if (o->offset > SIZE_MAX - o->size || align_up(o->offset + o->size, nd->align, &end))
                return -1;
            if (end > cand) cand = end;
        }
        if (nd->size > SIZE_MAX - cand) return -1;
        nd->offset = cand;
        if (cand + nd->size > top) top = cand + nd->size;
        int j = n_placed;
        while (j > 0 && b[placed[j - 1]].offset > cand) {
            placed[j] = placed[j - 1];
            j--;
        }
        placed[j] = order[k];
        n_placed++;
    }
    return align_up(top, arena_align, arena);
}

int tai_live_overlap(const tai_live_buf *b, int n, int *i, int *j) {
    for (int x = 0; x < n; x++) {
        if (b[x].size == 0) continue;
        for (int y = x + 1; y < n; y++) {
            if (b[y].size == 0 || !live_together(&b[x], &b[y])) continue;
            if (b[x].offset < b[y].offset + b[y].size && b[y].offset < b[x].offset + b[x].size) {
                if (i) *i = x;
                if (j) *j = y;
                return 1;
            }
        }
    }
    return 0;
}
