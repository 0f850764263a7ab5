/*
 * io/io.h: moving byte ranges of files into memory buffers (io layer; used
 * by runtime/). Knows nothing of models: a request is (file, offset, length,
 * destination), nothing more.
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
 *     holds more than a few chunks of resident memory. The copy happens
 *     inside tai_io_submit (the completion is ready when it returns); files
 *     are never O_DIRECT. The copy is a process_vm_readv on this process, so
 *     a file truncated under the mapping fails the read with -ENODATA as
 *     with the other engines rather than raising SIGBUS (where that system
 *     call is refused, a plain copy, and SIGBUS as with any mapping).
 *
 * Chunks: a request is split into chunks of the file's chunk size (see
 * tai_io_config.chunk_bytes; it comes from the device the file is on), and
 * up to queue_depth chunks (pread: `threads`) are read at once, across all
 * outstanding requests, oldest request first.
 *
 * O_DIRECT: offsets, lengths and destinations must be multiples of the
 * file's alignment (tai_io_file_alignment). A request may end at an
 * unaligned end of file: its last partial block is read whole into a small
 * internal buffer (the kernel stops at end of file) and copied from there,
 * so dst needs room for `len` bytes only.
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
 *     read again from where it stopped (with O_DIRECT, from the block it
 *     stopped in); a read that brings nothing new TAI_IO_MAX_RETRIES + 1
 *     times in a row fails the request with -EIO;
 *   - EINTR and EAGAIN: the same read is retried (at most TAI_IO_MAX_RETRIES
 *     times in a row for one chunk, then the request fails with that errno);
 *   - end of file before the requested range ends: the request fails with
 *     -ENODATA;
 *   - any other error (EIO, ...): the request fails with that errno.
 * A failed request reports the absolute file offset of the read that failed
 * (tai_io_done.fail_offset: the failing chunk's offset plus what of it had
 * already arrived, at a block boundary with O_DIRECT; of several failing
 * chunks the lowest), so the caller can name file, offset and what it was
 * reading. Its other chunks are not started; those in flight are waited for.
 *
 * Thread safety: one engine instance is used by one thread at a time (the
 * caller gives each loader thread its own engine). Engines share nothing;
 * there is no global state. The fault hook is the only callback (on the
 * pread engine's worker threads, for that engine).
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
/* The kind named by `name` (the names above, exactly; "io_uring" also
 * accepted), or -1 if unknown or NULL. */
int tai_io_kind_parse(const char *name);

/* Fault injection, for tests: each raw read result (a pread return value or
 * an io_uring completion's res, or for mmap the number of bytes the copy
 * would give) passes through `fn` before the engine acts on it. `fn` may
 * replace it: a smaller non-negative value simulates a short read (the engine
 * then retries the rest), 0 end of file, -EINTR / -EAGAIN / -EIO those
 * errors. `offset` and `len` are what the read asked for; `call` counts raw
 * reads from 0 on this engine. Called on the engine's threads (the pread
 * engine: several at once; keep fn thread-safe). */
typedef struct {
    long (*fn)(void *ctx, uint64_t call, uint64_t offset, size_t len, long res);
    void *ctx;
} tai_io_faults;

typedef struct {
    tai_io_kind kind;
    int queue_depth;     /* chunks in flight, at most 4096; 0 = 32 */
    size_t chunk_bytes;  /* split size, at most 1 GiB; 0 = per file, the
                            max_sectors_kb of its block device from sysfs
                            (the whole disk's for a partition; at least
                            128 KiB), else 1 MiB; rounded down to the
                            file's O_DIRECT alignment */
    int threads;         /* pread engine threads, at most 4096;
                            0 = min(queue_depth, 8) */
    bool buffered;       /* true: never O_DIRECT (page cache reads) */
    const tai_io_faults *faults; /* NULL in production */
} tai_io_config;

/* kind AUTO, everything else 0 / false / NULL: the defaults above. */
tai_io_config tai_io_default_config(void);

typedef struct tai_io tai_io;
typedef struct tai_io_file tai_io_file;

/* Creates an engine; cfg NULL means tai_io_default_config(). The config and
 * the tai_io_faults it points to are copied. With TAI_IO_AUTO, an io_uring
 * setup failure is not an error: the pread engine is created instead and
 * tai_io_fallback_reason says why. Returns 0, -EINVAL (bad config), -ENOMEM,
 * or the setup errno when an explicitly requested engine cannot start (*out
 * is then NULL). The caller frees it with tai_io_destroy, which waits for
 * the reads in flight (chunks not yet started are dropped; destinations are
 * no longer written once it returns) and closes the engine's files. */
int tai_io_create(const tai_io_config *cfg, tai_io **out);
void tai_io_destroy(tai_io *io); /* accepts NULL */

/* The engine actually running (never AUTO). */
tai_io_kind tai_io_engine(const tai_io *io);
/* Why AUTO did not get io_uring ("io_uring_queue_init: Operation not
 * permitted"), or NULL. Borrowed: valid until tai_io_destroy. */
const char *tai_io_fallback_reason(const tai_io *io);

/* Opens `path` (a regular file or a block device) read-only for this
 * engine. Returns 0, -errno from open(2) (O_DIRECT is dropped silently where
 * the filesystem refuses it: EINVAL), -EISDIR for a directory, -EINVAL for
 * other kinds of file. The file belongs to the engine: closed by
 * tai_io_close or tai_io_destroy. Its size is taken at open. */
int tai_io_open(tai_io *io, const char *path, tai_io_file **out);
/* Accepts NULL. Requests already submitted on f still complete normally
 * (the file stays open until their completions are returned); f must not be
 * used by the caller after this. */
void tai_io_close(tai_io *io, tai_io_file *f);
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
 * 1 GiB; a chunk whose destination lies inside one piece is read with
 * READ_FIXED). The memory must stay mapped until tai_io_destroy. Other
 * engines accept and ignore it. Returns 0 or -errno: -EINVAL for NULL or
 * len 0, -ENOMEM when the locked-memory limit refuses it. After a failure
 * the regions registered before stay registered and reads into the refused
 * one use plain READ: the engine keeps working, and the caller may say so. */
int tai_io_register(tai_io *io, void *base, size_t len);
/* Drops every registration (the pages are no longer pinned). Call it before
 * freeing a registered region; no request may be in flight into one. */
void tai_io_unregister(tai_io *io);
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
    size_t bytes;         /* bytes delivered into dst: len on success; after
                             a failure, what did arrive (not necessarily a
                             prefix: chunks complete in any order) */
    uint64_t fail_offset; /* absolute offset of the failing read (res < 0),
                             else 0 */
} tai_io_done;

/* Queues a request; it runs in the background (mmap: it runs here). A
 * request is outstanding from here until tai_io_wait returns its
 * completion. Returns 0, -EINVAL (bad alignment, range past end of file,
 * NULL file or dst), -EBADF (file closed), -ENOMEM, or -EBUSY when
 * TAI_IO_MAX_REQS requests are already outstanding. A request of length 0
 * (at any offset up to the end of file, aligned or not) completes at once.
 * dst must stay valid until the completion is returned by tai_io_wait. */
#define TAI_IO_MAX_REQS 64
int tai_io_submit(tai_io *io, const tai_io_req *req);

/* Returns completed requests (up to max) into out, waiting until at least
 * `min` have completed (min <= requests outstanding; min = 0 polls; the
 * io_uring engine also issues queued chunks then). Completions come in the
 * order requests finished. Returns the number stored, -EINVAL (max < 1,
 * min < 0, min > max or min > outstanding), or another -errno if the
 * kernel interface fails. */
int tai_io_wait(tai_io *io, tai_io_done *out, int max, int min);

/* Convenience: one request, waited for. Only with no other request
 * outstanding (-EBUSY otherwise, so that no other completion is consumed).
 * Returns 0, a submission error, or the request's -errno; *fail_offset (may
 * be NULL) receives the failing offset (0 on success). */
int tai_io_read(tai_io *io, tai_io_file *f, uint64_t offset, size_t len, void *dst,
                uint64_t *fail_offset);

#ifdef __cplusplus
}
#endif

#endif /* TAI_IO_IO_H */
