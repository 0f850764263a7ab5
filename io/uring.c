/*
 * io/uring.c: the io_uring engine (io layer, liburing). One ring per engine
 * with queue_depth slots; each slot holds one chunk in flight, identified in
 * its SQE's user_data by the slot number. Chunks whose destination lies
 * wholly inside a registered piece are read with IORING_OP_READ_FIXED (no
 * page pinning per read), others with IORING_OP_READ.
 *
 * Everything runs on the caller's thread: tai_io_submit queues the request
 * and fills free slots; tai_io_wait reaps completions, refills the slots it
 * freed and submits again in the same io_uring_enter that waits. Reads are
 * retried by resubmitting the slot's chunk from where it stopped.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "io/io_internal.h"

/* The kernel's limit for one registered buffer (io_uring's SZ_1G). */
#define MAX_PIECE ((size_t)1 << 30)

typedef struct {
    struct io_uring ring;
    int depth;
    tai_io_chunk *slots;
    int *free_slots, nfree;
    int unsubmitted;  /* SQEs prepared since the last submit */
    bool stopping;    /* destroy: issue nothing new, resubmit nothing */
    struct iovec *iov; /* registered pieces, in buf_index order */
    unsigned niov;
} uring_engine;

/* Prepares the SQE for the next raw read of slot s. */
static void prep(tai_io *io, uring_engine *e, int s) {
    tai_io_chunk *c = &e->slots[s];
    tai_io_raw raw = tai_io_chunk_raw(io, c);
    int fd = io->reqs[c->req].file->fd;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);
    if (!sqe) {
        /* Cannot happen while chunks in flight <= depth <= SQ entries, but
         * submitting frees every SQ entry if it ever does. */
        io_uring_submit(&e->ring);
        e->unsubmitted = 0;
        sqe = io_uring_get_sqe(&e->ring);
    }
    int buf_index = -1;
    uintptr_t b = (uintptr_t)raw.buf;
    for (unsigned i = 0; i < e->niov; i++) {
        uintptr_t base = (uintptr_t)e->iov[i].iov_base;
        if (b >= base && b + raw.ask <= base + e->iov[i].iov_len) {
            buf_index = (int)i;
            break;
        }
    }
    if (buf_index >= 0)
        io_uring_prep_read_fixed(sqe, fd, raw.buf, (unsigned)raw.ask, raw.pos, buf_index);
    else
        io_uring_prep_read(sqe, fd, raw.buf, (unsigned)raw.ask, raw.pos);
    io_uring_sqe_set_data64(sqe, (uint64_t)s);
    e->unsubmitted++;
}

/* Fills free slots with new chunks. */
static void pump(tai_io *io, uring_engine *e) {
    while (!e->stopping && e->nfree > 0) {
        int s = e->free_slots[e->nfree - 1];
        if (!tai_io_next_chunk(io, &e->slots[s])) break;
        e->nfree--;
        prep(io, e, s);
    }
}

static void release(uring_engine *e, int s) { e->free_slots[e->nfree++] = s; }

static void handle(tai_io *io, uring_engine *e, const struct io_uring_cqe *cqe) {
    int s = (int)io_uring_cqe_get_data64(cqe);
    tai_io_chunk *c = &e->slots[s];
    tai_io_raw raw = tai_io_chunk_raw(io, c);
    long res = tai_io_fault(io, raw.pos, raw.ask, cqe->res);
    int err = 0;
    switch (tai_io_chunk_result(io, c, res, &err)) {
    case TAI_IO_CHUNK_AGAIN:
        if (!e->stopping) {
            prep(io, e, s);
            return;
        }
        err = -ECANCELED;
        break;
    case TAI_IO_CHUNK_DONE: break;
    case TAI_IO_CHUNK_FAIL: break;
    }
    tai_io_chunk_finish(io, c, err);
    release(e, s);
}

/* Handles every completion already posted; returns how many. */
static int reap(tai_io *io, uring_engine *e) {
    int n = 0;
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&e->ring, &cqe) == 0) {
        handle(io, e, cqe);
        io_uring_cqe_seen(&e->ring, cqe);
        n++;
    }
    return n;
}

static bool transient(int rc) { return rc == -EINTR || rc == -EAGAIN || rc == -EBUSY; }

/* Submits prepared SQEs; 0, or a -errno that is not transient (a transient
 * failure leaves them in the SQ ring for the next submit). */
static int flush(uring_engine *e) {
    if (!e->unsubmitted) return 0;
    int rc = io_uring_submit(&e->ring);
    if (rc >= 0) {
        e->unsubmitted = 0;
        return 0;
    }
    return transient(rc) ? 0 : rc;
}

static void free_engine(uring_engine *e) {
    free(e->iov);
    free(e->free_slots);
    free(e->slots);
    free(e);
}

static int uring_start(tai_io *io) {
    uring_engine *e = calloc(1, sizeof *e);
    if (!e) return -ENOMEM;
    e->depth = io->cfg.queue_depth;
    e->slots = calloc((size_t)e->depth, sizeof *e->slots);
    e->free_slots = calloc((size_t)e->depth, sizeof *e->free_slots);
    if (!e->slots || !e->free_slots) {
        free_engine(e);
        return -ENOMEM;
    }
    for (int i = 0; i < e->depth; i++) e->free_slots[i] = e->depth - 1 - i;
    e->nfree = e->depth;
    /* CQ entries default to twice the SQ entries: with at most `depth`
     * chunks in flight the CQ can never overflow. */
    int rc = io_uring_queue_init((unsigned)e->depth, &e->ring, 0);
    if (rc < 0) {
        tai_io_set_reason(io, "io_uring_queue_init", rc);
        free_engine(e);
        return rc;
    }
    io->engine = e;
    return 0;
}

static void uring_stop(tai_io *io) {
    uring_engine *e = io->engine;
    if (!e) return;
    /* The kernel may still be writing into destinations and bounce buffers:
     * every read in flight is waited for before the ring and they go. */
    e->stopping = true;
    io->pending_n = 0;
    if (e->unsubmitted) {
        int rc;
        do rc = io_uring_submit(&e->ring);
        while (transient(rc));
        e->unsubmitted = 0;
    }
    while (e->nfree < e->depth) {
        struct io_uring_cqe *cqe;
        int rc = io_uring_wait_cqe(&e->ring, &cqe);
        if (rc == -EINTR) continue;
        if (rc < 0) break;
        handle(io, e, cqe);
        io_uring_cqe_seen(&e->ring, cqe);
    }
    io_uring_queue_exit(&e->ring);
    free_engine(e);
    io->engine = NULL;
}

static int uring_open_file(tai_io *io, tai_io_file *f) {
    (void)io;
    (void)f;
    return 0;
}

static void uring_close_file(tai_io *io, tai_io_file *f) {
    (void)io;
    (void)f;
}

static int uring_submit(tai_io *io, int req) {
    uring_engine *e = io->engine;
    tai_io_push_pending(io, req);
    pump(io, e);
    return flush(e);
}

static int uring_wait(tai_io *io, int *idx, int max, int min) {
    uring_engine *e = io->engine;
    for (;;) {
        reap(io, e);
        pump(io, e);
        if (io->done_n >= min) {
            int rc = flush(e);
            if (rc < 0) return rc;
            break;
        }
        /* One io_uring_enter both submits what pump prepared and waits. */
        int rc = io_uring_submit_and_wait(&e->ring, 1);
        if (rc >= 0) e->unsubmitted = 0;
        else if (!transient(rc)) return rc;
    }
    return tai_io_pop_done(io, idx, max);
}

static int uring_register(tai_io *io, void *base, size_t len) {
    uring_engine *e = io->engine;
    uintptr_t b = (uintptr_t)base;
    if (b + len < b) return -EINVAL;
    size_t pieces = (len + MAX_PIECE - 1) / MAX_PIECE;
    unsigned n = e->niov + (unsigned)pieces;
    struct iovec *iov = malloc(n * sizeof *iov);
    if (!iov) return -ENOMEM;
    if (e->niov) memcpy(iov, e->iov, e->niov * sizeof *iov);
    for (size_t i = 0; i < pieces; i++) {
        size_t off = i * MAX_PIECE;
        iov[e->niov + i].iov_base = (uint8_t *)base + off;
        iov[e->niov + i].iov_len = len - off < MAX_PIECE ? len - off : MAX_PIECE;
    }
    /* A ring has one buffer table: replace it with the old pieces plus the
     * new ones. Reads already submitted keep the table they were issued
     * with (the kernel holds a reference to it). */
    if (e->niov) io_uring_unregister_buffers(&e->ring);
    int rc = io_uring_register_buffers(&e->ring, iov, n);
    if (rc < 0) {
        /* Put the old table back; if even that fails, reads stay correct
         * through plain READ. */
        free(iov);
        if (e->niov && io_uring_register_buffers(&e->ring, e->iov, e->niov) < 0) {
            free(e->iov);
            e->iov = NULL;
            e->niov = 0;
        }
        return rc;
    }
    free(e->iov);
    e->iov = iov;
    e->niov = n;
    return 0;
}

/* Registered pages stay pinned until the table is dropped: a caller about
 * to free a registered region must unregister it first. */
static void uring_unregister(tai_io *io) {
    uring_engine *e = io->engine;
    if (e->niov) io_uring_unregister_buffers(&e->ring);
    free(e->iov);
    e->iov = NULL;
    e->niov = 0;
}

const tai_io_ops tai_io_uring_ops = {
    .start = uring_start,
    .stop = uring_stop,
    .open_file = uring_open_file,
    .close_file = uring_close_file,
    .submit = uring_submit,
    .wait = uring_wait,
    .register_region = uring_register,
    .unregister_all = uring_unregister,
};
