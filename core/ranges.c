/* core/ranges.c: first-fit byte ranges (ranges.h). */
#include "core/ranges.h"

#include <stdlib.h>
#include <string.h>

static size_t round_to(size_t v, size_t a) { return (v + a - 1) / a * a; }

int tai_ranges_init(tai_ranges *r, size_t size, size_t unit) {
    memset(r, 0, sizeof *r);
    r->unit = unit ? unit : 1;
    r->size = size / r->unit * r->unit;
    /* free ranges are separated by taken ones: at most half the units + 1 */
    r->cap = r->size / r->unit / 2 + 2;
    r->free = malloc(r->cap * sizeof *r->free);
    if (!r->free) return -1;
    if (r->size) r->free[r->n++] = (tai_range){0, r->size};
    return 0;
}

void tai_ranges_free(tai_ranges *r) {
    free(r->free);
    memset(r, 0, sizeof *r);
}

size_t tai_ranges_take(tai_ranges *r, uintptr_t base, size_t size, size_t align) {
    if (align < 1) align = 1;
    size = round_to(size ? size : 1, r->unit);
    for (size_t i = 0; i < r->n; i++) {
        tai_range *f = &r->free[i];
        const size_t start = round_to((size_t)(base + f->off), align) - (size_t)base;
        const size_t s = round_to(start, r->unit);
        if (s + size > f->off + f->len) continue;
        const size_t end = f->off + f->len, head = s - f->off;
        if (head == 0) {
            f->off += size;
            f->len -= size;
            if (f->len == 0) {
                memmove(f, f + 1, (r->n - i - 1) * sizeof *f);
                r->n--;
            }
        } else {
            f->len = head;
            if (s + size < end) {
                if (r->n == r->cap) continue; /* cannot happen: cap bounds the ranges */
                memmove(f + 2, f + 1, (r->n - i - 1) * sizeof *f);
                r->free[i + 1] = (tai_range){s + size, end - s - size};
                r->n++;
            }
        }
        return s;
    }
    return SIZE_MAX;
}

void tai_ranges_give(tai_ranges *r, size_t off, size_t size) {
    size = round_to(size ? size : 1, r->unit);
    size_t i = 0;
    while (i < r->n && r->free[i].off < off) i++;
    const int prev = i > 0 && r->free[i - 1].off + r->free[i - 1].len == off;
    const int next = i < r->n && off + size == r->free[i].off;
    if (prev && next) {
        r->free[i - 1].len += size + r->free[i].len;
        memmove(&r->free[i], &r->free[i + 1], (r->n - i - 1) * sizeof *r->free);
        r->n--;
    } else if (prev) {
        r->free[i - 1].len += size;
    } else if (next) {
        r->free[i].off = off;
        r->free[i].len += size;
    } else if (r->n < r->cap) {
        memmove(&r->free[i + 1], &r->free[i], (r->n - i) * sizeof *r->free);
        r->free[i] = (tai_range){off, size};
        r->n++;
    }
}

size_t tai_ranges_free_bytes(const tai_ranges *r) {
    size_t t = 0;
    for (size_t i = 0; i < r->n; i++) t += r->free[i].len;
    return t;
}

size_t tai_ranges_largest(const tai_ranges *r) {
    size_t m = 0;
    for (size_t i = 0; i < r->n; i++)
        if (r->free[i].len > m) m = r->free[i].len;
    return m;
}
