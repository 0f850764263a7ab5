/*
 * core/pages.h: faulting a range of fresh anonymous memory in for writing
 * in one call (MADV_POPULATE_WRITE, Linux 5.14), several times cheaper per
 * page than a fault each as the range is first written; and a file
 * mapping's range for reading.
 */
#ifndef TAI_CORE_PAGES_H
#define TAI_CORE_PAGES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* Faults the whole pages within [p, p + len) in; 0, or -1 where the kernel
 * refuses the advice (older kernels: the pages then fault in as they are
 * written). */
static inline int tai_populate_write(void *p, size_t len) {
    const uintptr_t pg = 4096, lo = (uintptr_t)p & ~(pg - 1);
    const uintptr_t hi = ((uintptr_t)p + len + pg - 1) & ~(pg - 1);
    return hi > lo ? madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE) : 0;
}

/* The same for reading a file's mapping: the pages the page cache holds
 * are mapped in one call (any it does not are read). */
static inline int tai_populate_read(const void *p, size_t len) {
    const uintptr_t pg = 4096, lo = (uintptr_t)p & ~(pg - 1);
    const uintptr_t hi = ((uintptr_t)p + len + pg - 1) & ~(pg - 1);
    return hi > lo ? madvise((void *)lo, hi - lo, MADV_POPULATE_READ) : 0;
}

#endif
