/*
 * io/: moving byte ranges of files into memory buffers. Knows nothing of
 * models: a request is (file, offset, length, destination), nothing more.
 *
 * One asynchronous interface, three engines:
 *   - io_uring (liburing): files opened with O_DIRECT where the filesystem
 *     allows it, requests split into chunks of the device's preferred size
 *     and kept `queue_depth` chunks in flight; destinations inside a region
 *     given to tai_io_register are read with READ_FIXED (registered buffers),
 *     others with plain READ.
 *   - pread: a pool of threads, each issuing pread(2) on one chunk at a time
 *     (O_DIRECT as above).
 *   - mmap: the file mapped read-only; a chunk is copied out of the mapping
 *     with MADV_SEQUENTIAL / MADV_WILLNEED ahead of it, and the pages it
 *     copied from are dropped afterwards (MADV_DONTNEED), so the mapping never
 *     holds more than a few chunks of resident memory.
 *
 * TAI_IO_AUTO picks io_uring and falls back to pread by itself where io_uring
 * is unavailable (ENOSYS: no kernel support; EPERM: forbidden by seccomp, as
 * in default container profiles; or any other setup failure); the reason is
 * kept (tai_io_fallback_reason) so that the caller can say it once.
 *
 * Errors: every function returns 0 or a negative errno, as liburing does;
 * nothing prints. Per request, failures of the underlying reads are handled
 * as follows (the same in every engine):
 *   - a short read (fewer bytes than asked, not at end of file): the rest is
 *     read again from where it stopped;
 *   - EINTR and EAGAIN: the same read is retried (at most TAI_IO_MAX_RETRIES
 *     times in a row for one chunk, then the request fails with that errno);
 *   - end of file before the requested range ends: the request fails with
 *     -ENODATA;
 *   - any other error (EIO, ...): the request fails with that errno.
 * A failed request reports the absolute file offset of the chunk that failed
 * (tai_io_done.fail_offset), so the caller can name file, offset and what it
 * was reading.
 *
 * Thread safety: one engine instance is used by one thread at a time (the
 * caller gives each loader thread its own engine). Engines share nothing.
 */
#ifndef TAI_IO_IO_H
#define TAI_IO_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TAI_IO_MAX_RETRIES 16

typedef enum {
    TAI_IO_AUTO = 0, /* io_uring, falling back to pread */
    TAI_IO_URING = 1,
    TAI_IO_PREAD = 2,
    TAI_IO_MMAP = 3,
} tai_io_kind;

/* "auto", "uring", "pread", "mmap"; NULL for an invalid kind. */
const char *tai_io_kind_name(tai_io_kind kind);
/* The kind named by `name` (the names above; "io_uring" also accepted), or
 * -1 if unknown. */
int tai_io_kind_parse(const char *name);

/* Fault injection, for tests: each raw read result (a pread return value or
 * an io_uring completion's res, or for mmap the number of bytes the copy
 * would give) passes through `fn` before the engine acts on it. `fn` may
 * replace it: a smaller non-negative value simulates a short read (the engine
 * then retries the rest), -EINTR / -EAGAIN / -EIO simulate those errors.
 * `call` counts raw reads from 0 on this engine. Called on the engine's
 * threads (the pread engine: several at once; keep fn thread-safe). */
typedef struct {
    long (*fn)(void *ctx, uint64_t call, uint64_t offset, size_t len, long res);
    void *ctx;
} tai_io_faults;

typedef struct {
    tai_io_kind kind;
    int queue_depth;     /* chunks in flight; 0 = 32 */
    size_t chunk_bytes;  /* split size; 0 = the device's max_sectors_kb from
                            sysfs (at least 128 KiB), else 1 MiB; rounded to
                            the O_DIRECT alignment */
    int threads;         /* pread engine threads; 0 = min(queue_depth, 8) */
    bool buffered;       /* true: never O_DIRECT (page cache reads) */
    const tai_io_faults *faults; /* NULL in production */
} tai_io_config;

/* kind AUTO, everything else 0 / false / NULL: the defaults above. */
tai_io_config tai_io_default_config(void);

typedef struct tai_io tai_io;
typedef struct tai_io_file tai_io_file;

/* Creates an engine. With TAI_IO_AUTO, an io_uring setup failure is not an
 * error: the pread engine is created instead and tai_io_fallback_reason says
 * why. Returns 0, -EINVAL (bad config), -ENOMEM, or the setup errno when an
 * explicitly requested engine cannot start. The caller frees it with
 * tai_io_destroy (which waits for requests still in flight). */
int tai_io_create(const tai_io_config *cfg, tai_io **out);
void tai_io_destroy(tai_io *io); /* accepts NULL */

/* The engine actually running (never AUTO). */
tai_io_kind tai_io_engine(const tai_io *io);
/* Why AUTO did not get io_uring ("io_uring_queue_init: Operation not
 * permitted"), or NULL. Borrowed: valid until tai_io_destroy. */
const char *tai_io_fallback_reason(const tai_io *io);

/* Opens `path` read-only for this engine. Returns 0, or -errno from open(2)
 * (O_DIRECT is dropped silently where the filesystem refuses it: EINVAL).
 * The file belongs to the engine: closed by tai_io_close or tai_io_destroy. */
int tai_io_open(tai_io *io, const char *path, tai_io_file **out);
void tai_io_close(tai_io *io, tai_io_file *f); /* accepts NULL */
uint64_t tai_io_file_size(const tai_io_file *f);
/* Whether reads of this file bypass the page cache (O_DIRECT). */
bool tai_io_file_direct(const tai_io_file *f);
/* The alignment that offsets, lengths and destinations of requests on this
 * file must have: the device's logical block size (at least 512) with
 * O_DIRECT, 1 without. A request that is not aligned fails with -EINVAL at
 * submission (except that the length may end exactly at end of file). */
size_t tai_io_file_alignment(const tai_io_file *f);

/* Declares [base, base + len) as a destination region for the lifetime of
 * the engine (io_uring: registered as fixed buffers, in pieces of at most
 * 1 GiB). Other engines accept and ignore it. Returns 0 or -errno (e.g.
 * -ENOMEM when the locked-memory limit refuses it: the engine then keeps
 * working with unregistered reads, and the caller may say so). */
int tai_io_register(tai_io *io, void *base, size_t len);
/* Whether tai_io_register succeeded for at least one region. */
bool tai_io_registered(const tai_io *io);

typedef struct {
    tai_io_file *file;
    uint64_t offset;
    size_t len;
    void *dst;
    uint64_t tag; /* returned in the completion */
} tai_io_req;

typedef struct {
    uint64_t tag;
    int res;              /* 0, or -errno (see the header comment) */
    size_t bytes;         /* bytes delivered into dst */
    uint64_t fail_offset; /* absolute offset of the failing chunk (res < 0) */
} tai_io_done;

/* Queues a request; it runs in the background. Returns 0, -EINVAL (bad
 * alignment, range past end of file) or -EBUSY when TAI_IO_MAX_REQS requests
 * are already outstanding. dst must stay valid until the completion is
 * returned by tai_io_wait. */
#define TAI_IO_MAX_REQS 64
int tai_io_submit(tai_io *io, const tai_io_req *req);

/* Returns completed requests (up to max) into out, waiting until at least
 * `min` have completed (min <= requests outstanding; min = 0 polls). Returns
 * the number stored, or -errno. */
int tai_io_wait(tai_io *io, tai_io_done *out, int max, int min);

/* Convenience: one request, waited for. Returns 0 or the request's -errno;
 * *fail_offset (may be NULL) receives the failing offset. */
int tai_io_read(tai_io *io, tai_io_file *f, uint64_t offset, size_t len, void *dst,
                uint64_t *fail_offset);

#ifdef __cplusplus
}
#endif

#endif /* TAI_IO_IO_H */
