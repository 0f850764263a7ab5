/* bench/: the storage ceiling, measured the way the runtime reads: O_DIRECT
 * into memory allocated as the weight cache's arena is (tai_bench_huge_alloc,
 * membw.h). On a virtual disk a read into huge pages
 * is a few large segments instead of one per 4 KiB page; here that more
 * than doubles the speed, so the ceiling and the runtime must use the same
 * kind of memory. */
#ifndef TAI_BENCH_STORAGE_H
#define TAI_BENCH_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Reads the whole file with a plain loop of O_DIRECT pread(2) calls of
 * `block` bytes, one at a time, into successive blocks of buf (buf_bytes >=
 * block; wraps around). Bytes per second; on failure 0 and *err (may be
 * NULL) gets a one-line reason. */
double tai_bench_direct_read(const char *path, size_t block, void *buf, size_t buf_bytes,
                             char *err, size_t err_len);

/* The same with `readers` threads each reading every readers-th block of
 * `block` bytes (a multiple of 4096) into its own huge-page buffer: several
 * reads in flight, as the runtime's io_uring engine keeps them, which on
 * devices with internal parallelism (NVMe, virtual disks) reads faster than
 * one at a time. Bytes per second, or 0 and *err. */
double tai_bench_direct_read_parallel(const char *path, size_t block, int readers, char *err,
                                      size_t err_len);

#ifdef __cplusplus
}
#endif

#endif
