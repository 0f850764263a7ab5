/* bench/: the machine's own memory read bandwidth, measured in the same run
 * as the figures it is compared with. */
#ifndef TAI_BENCH_MEMBW_H
#define TAI_BENCH_MEMBW_H

#include <stddef.h>
#include <stdlib.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Monotonic seconds. */
static inline double tai_bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int tai_bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v). */
static inline double tai_bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, tai_bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Drops the page cache's clean pages, dentries and inodes (writes 3 to
 * /proc/sys/vm/drop_caches after a sync; needs root). 0, or -1 if it cannot. */
int tai_bench_drop_caches(void);

/* Memory as the runtime keeps weights (its arena, its cache): bytes rounded
 * up to 2 MiB, 2 MiB aligned, MADV_HUGEPAGE advised, every page touched
 * before any timing. NULL if out of memory; free() it. */
void *tai_bench_huge_alloc(size_t bytes);

/* Streaming read bandwidth of a `bytes` buffer (much larger than the
 * last-level cache) split across `threads` threads, in bytes per second: for
 * each of several read loops (vector width x number of streams, see
 * membw.c) the median of `reps` timed passes after one untimed pass; the
 * best loop's figure is returned. 0 on allocation or thread start failure. */
double tai_bench_read_bandwidth(size_t bytes, int threads, int reps);

#define TAI_BENCH_READ_LOOPS_MAX 9

/* Every loop's figure. */
typedef struct {
    int n;                                        /* loops measured */
    const char *name[TAI_BENCH_READ_LOOPS_MAX];   /* "zmm x4": 512-bit loads, 4 streams */
    double bytes_per_s[TAI_BENCH_READ_LOOPS_MAX]; /* median per loop */
    int best;                                     /* index of the largest */
} tai_bench_read_loops;

/* tai_bench_read_bandwidth, also filling *out (may be NULL). */
double tai_bench_read_bandwidth_loops(size_t bytes, int threads, int reps,
                                      tai_bench_read_loops *out);
/* One loop only (its index in tai_bench_read_loops), so that a single
 * measurement is not the best of several noisy ones. 0 on failure. */
double tai_bench_read_bandwidth_loop(size_t bytes, int threads, int reps, int loop);

#ifdef __cplusplus
}
#endif

#endif
