/* bench/: the machine's own memory read bandwidth, measured in the same run
 * as the figures it is compared with. */
#ifndef TAI_BENCH_MEMBW_H
#define TAI_BENCH_MEMBW_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Median of `reps` timed streaming reads of a `bytes` buffer (much larger than
 * the last-level cache), split across `threads` threads; bytes per second.
 * Returns 0 on allocation failure. */
double tai_bench_read_bandwidth(size_t bytes, int threads, int reps);

#ifdef __cplusplus
}
#endif

#endif
