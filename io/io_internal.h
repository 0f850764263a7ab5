/*
 * io/io_internal.h: what the three read engines of io/ share (io layer,
 * private to io/).
 *
 * io.c owns the engine object, the files, the request table and the two
 * request queues (pending: chunks still to issue; done: finished, not yet
 * returned by tai_io_wait), and the one piece of policy that must be the same
 * everywhere: how a chunk is carved from a request and what is done with the
 * result of each raw read (tai_io_chunk_result). An engine only decides how
 * raw reads are issued: io_uring.c (SQEs on a ring), pread.c (worker threads),
 * mmap.c (copies from a mapping).
 *
 * Locking: io.c takes no locks. The request table and queues may be touched
 * by an engine's own threads (pread), so every function below that reads or
 * writes them is called with the engine's lock held where the engine has one;
 * the one exception is the `used` flag of a request slot, which only the
 * caller's thread touches (tai_io_submit and tai_io_wait).
 */
#ifndef TAI_IO_IO_INTERNAL_H
#define TAI_IO_IO_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/io.h"

#define TAI_IO_MAX_QUEUE_DEPTH 4096
#define TAI_IO_MAX_CHUNK ((size_t)1 << 30)

struct tai_io_file {
    int fd;
    bool direct;
    size_t align; /* 1, or the logical block size with O_DIRECT */
    size_t chunk; /* split size for this file, a multiple of align */
    uint64_t size;
    void *map;    /* mmap engine: the whole file, read-only; NULL if size 0 */
    uint64_t adv_lo, adv_hi; /* mmap engine: range last given MADV_WILLNEED */
    /* References: 1 while open (dropped by tai_io_close) plus 1 per request
     * submitted on it and not yet returned by tai_io_wait. Only the caller's
     * thread changes it, so the file is freed on that thread. */
    int refs;
    bool closed;
    struct tai_io_file *prev, *next; /* the engine's open files */
};

/* One request of the table. */
typedef struct {
    bool used;   /* submitted and not yet returned by tai_io_wait */
    bool queued; /* in the pending queue */
    tai_io_file *file;
    uint64_t offset;
    uint64_t len;
    uint8_t *dst;
    uint64_t tag;
    uint64_t next;     /* bytes of the range already carved into chunks */
    int inflight;      /* chunks carved and not finished */
    bool failed;       /* no more chunks are carved once set */
    int res;
    uint64_t fail_offset;
    uint64_t bytes;    /* bytes delivered into dst */
    uint8_t *bounce;   /* one aligned block for the unaligned tail, or NULL;
                          kept with the slot and reused */
    size_t bounce_size; /* its size and alignment */
} tai_io_request;

/* One chunk: a piece of a request, read by one or more raw reads. */
typedef struct {
    int req;       /* index into the request table */
    uint64_t off;  /* absolute file offset of the chunk */
    size_t len;    /* bytes wanted */
    uint8_t *dst;  /* where they go (inside the request's dst) */
    size_t done;   /* bytes of [dst, dst + len) already valid */
    int retries;   /* consecutive reads without progress */
    bool tail;     /* O_DIRECT, ends at an unaligned end of file: read one
                      aligned block into the request's bounce buffer */
} tai_io_chunk;

/* The raw read a chunk needs next: `ask` bytes at file offset `pos` into
 * `buf`. With O_DIRECT all three are aligned: the read restarts at the
 * aligned point at or below what is already done (re-reading a few valid
 * bytes is harmless), and the tail block is read whole into the bounce
 * buffer, where the kernel stops at end of file. */
typedef struct {
    uint8_t *buf;
    size_t ask;
    uint64_t pos;
} tai_io_raw;

typedef enum {
    TAI_IO_CHUNK_DONE,  /* all bytes valid */
    TAI_IO_CHUNK_AGAIN, /* issue tai_io_chunk_raw again */
    TAI_IO_CHUNK_FAIL,  /* the request fails with *err */
} tai_io_step;

typedef struct tai_io_ops tai_io_ops;

struct tai_io {
    tai_io_config cfg;       /* defaults filled in */
    tai_io_faults faults;    /* copied; fn NULL when none */
    tai_io_kind kind;        /* never AUTO */
    char reason[160];        /* fallback reason, "" if none */
    bool registered;
    const tai_io_ops *ops;
    void *engine;            /* the engine's own state */
    atomic_uint_fast64_t calls; /* raw reads so far, for the fault hook */

    tai_io_file *files;      /* open files, and closed ones still referenced */
    tai_io_request reqs[TAI_IO_MAX_REQS];
    int outstanding;         /* requests used (caller's thread only) */

    /* FIFOs of request indices; head index and count. */
    int pending[TAI_IO_MAX_REQS], pending_head, pending_n;
    int done[TAI_IO_MAX_REQS], done_head, done_n;
};

/* An engine. Every slot is required. */
struct tai_io_ops {
    /* Sets up io->engine; 0 or -errno. On failure io->reason may say why and
     * nothing is left allocated. */
    int (*start)(tai_io *io);
    /* Abandons chunks not yet issued, waits for the issued ones, frees
     * io->engine. */
    void (*stop)(tai_io *io);
    /* Per-file setup (mmap: map it); 0 or -errno. */
    int (*open_file)(tai_io *io, tai_io_file *f);
    void (*close_file)(tai_io *io, tai_io_file *f);
    /* Request `req` has been filled in and is ready to run; 0 or -errno
     * (on error it has not been queued). */
    int (*submit)(tai_io *io, int req);
    /* Waits until at least `min` finished requests are queued as done, then
     * pops up to `max` of them into idx; returns how many or -errno. */
    int (*wait)(tai_io *io, int *idx, int max, int min);
    /* tai_io_register / tai_io_unregister; 0 or -errno. Optional (NULL:
     * the engine reads into any memory the same way). */
    int (*register_region)(tai_io *io, void *base, size_t len);
    void (*unregister_all)(tai_io *io);
};

extern const tai_io_ops tai_io_uring_ops;
extern const tai_io_ops tai_io_pread_ops;
extern const tai_io_ops tai_io_mmap_ops;

/* ---- Queues (engine lock held) ------------------------------------------ */

void tai_io_push_pending(tai_io *io, int req);
void tai_io_push_done(tai_io *io, int req);
/* Pops up to max finished requests into idx; returns how many. */
int tai_io_pop_done(tai_io *io, int *idx, int max);

/* Carves the next chunk from the oldest pending request that has one,
 * dropping requests from the pending queue once fully carved (or failed;
 * a failed request with no chunk in flight is moved to done here). Returns
 * false when nothing is left to issue. */
bool tai_io_next_chunk(tai_io *io, tai_io_chunk *c);

/* The raw read chunk c needs next. */
tai_io_raw tai_io_chunk_raw(const tai_io *io, const tai_io_chunk *c);

/* Passes a raw read result through the fault hook (if any). `len` is the
 * number of bytes asked for at file offset `pos`. Thread-safe. */
long tai_io_fault(tai_io *io, uint64_t pos, size_t len, long res);

/* Acts on the result of a raw read of chunk c (res from the read, already
 * through tai_io_fault): the rules of io.h (short reads continue, EINTR and
 * EAGAIN retried at most TAI_IO_MAX_RETRIES times in a row, 0 before the
 * end is -ENODATA, a read that makes no progress TAI_IO_MAX_RETRIES + 1
 * times in a row is -EIO, anything else fails with its errno). Copies the
 * tail out of the bounce buffer. Touches only c and its destination, so it
 * needs no lock. On FAIL *err is the -errno. */
tai_io_step tai_io_chunk_result(const tai_io *io, tai_io_chunk *c, long res, int *err);

/* Records the end of chunk c (err 0, or the -errno it failed with) in its
 * request and moves the request to done when it has nothing left in flight
 * or to carve. */
void tai_io_chunk_finish(tai_io *io, const tai_io_chunk *c, int err);

/* Sets the fallback reason: "<what>: <strerror(-err)>". */
void tai_io_set_reason(tai_io *io, const char *what, int err);

#endif /* TAI_IO_IO_INTERNAL_H */
