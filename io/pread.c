/*
 * io/pread.c: the pread engine (io layer): a pool of worker threads, each
 * taking the next chunk from the pending requests and reading it with
 * pread(2) until it is complete or has failed. Completions are handed to
 * tai_io_wait through a condition variable.
 *
 * Locking: one mutex guards the request table's chunk state and both queues
 * (io_internal.h). A worker holds it only to take a chunk and to record its
 * end; the reads themselves run unlocked, writing into the chunk's own
 * destination range, which no other thread touches until the request is
 * popped from the done queue under the same mutex (that unlock/lock pair is
 * what makes the bytes visible to the caller).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/thread.h"
#include "io/io_internal.h"

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t work; /* a chunk may be available, or stop was set */
    pthread_cond_t done; /* a request moved to the done queue */
    bool stop;
    int nthreads;
    pthread_t *threads;
} pread_engine;

/* Reads one chunk to its end; returns 0 or the -errno it failed with. */
static int read_chunk(tai_io *io, tai_io_chunk *c) {
    int fd = io->reqs[c->req].file->fd;
    for (;;) {
        tai_io_raw raw = tai_io_chunk_raw(io, c);
        ssize_t n = pread(fd, raw.buf, raw.ask, (off_t)raw.pos);
        long res = tai_io_fault(io, raw.pos, raw.ask, n < 0 ? -(long)errno : (long)n);
        int err = 0;
        switch (tai_io_chunk_result(io, c, res, &err)) {
        case TAI_IO_CHUNK_DONE: return 0;
        case TAI_IO_CHUNK_FAIL: return err;
        case TAI_IO_CHUNK_AGAIN: break;
        }
    }
}

static void *worker(void *arg) {
    tai_io *io = arg;
    pread_engine *e = io->engine;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        tai_io_chunk c;
        int before = io->done_n;
        bool got = !e->stop && tai_io_next_chunk(io, &c);
        /* next_chunk moves a failed request with nothing in flight to done. */
        if (io->done_n != before) pthread_cond_broadcast(&e->done);
        if (!got) {
            if (e->stop) break;
            pthread_cond_wait(&e->work, &e->mu);
            continue;
        }
        pthread_mutex_unlock(&e->mu);
        int err = read_chunk(io, &c);
        pthread_mutex_lock(&e->mu);
        before = io->done_n;
        tai_io_chunk_finish(io, &c, err);
        if (io->done_n != before) pthread_cond_broadcast(&e->done);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

static void join_all(pread_engine *e, int n) {
    pthread_mutex_lock(&e->mu);
    e->stop = true;
    pthread_cond_broadcast(&e->work);
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < n; i++) pthread_join(e->threads[i], NULL);
}

static void free_engine(pread_engine *e) {
    pthread_cond_destroy(&e->done);
    pthread_cond_destroy(&e->work);
    pthread_mutex_destroy(&e->mu);
    free(e->threads);
    free(e);
}

static int pread_start(tai_io *io) {
    pread_engine *e = calloc(1, sizeof *e);
    if (!e) return -ENOMEM;
    e->threads = calloc((size_t)io->cfg.threads, sizeof *e->threads);
    if (!e->threads) {
        free(e);
        return -ENOMEM;
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->work, NULL);
    pthread_cond_init(&e->done, NULL);
    io->engine = e;
    for (int i = 0; i < io->cfg.threads; i++) {
        int rc = tai_thread_create(&e->threads[i], worker, io);
        if (rc != 0) {
            join_all(e, i);
            free_engine(e);
            io->engine = NULL;
            return -rc;
        }
    }
    e->nthreads = io->cfg.threads;
    return 0;
}

static void pread_stop(tai_io *io) {
    pread_engine *e = io->engine;
    if (!e) return;
    /* Chunks not yet taken are abandoned; workers finish the one they hold
     * (bounded: every read either progresses or counts towards the retry
     * limit) before they see stop. */
    pthread_mutex_lock(&e->mu);
    io->pending_n = 0;
    pthread_mutex_unlock(&e->mu);
    join_all(e, e->nthreads);
    free_engine(e);
    io->engine = NULL;
}

static int pread_open_file(tai_io *io, tai_io_file *f) {
    (void)io;
    (void)f;
    return 0;
}

static void pread_close_file(tai_io *io, tai_io_file *f) {
    (void)io;
    (void)f;
}

static int pread_submit(tai_io *io, int req) {
    pread_engine *e = io->engine;
    pthread_mutex_lock(&e->mu);
    tai_io_push_pending(io, req);
    pthread_cond_broadcast(&e->work); /* every idle worker can take a chunk */
    pthread_mutex_unlock(&e->mu);
    return 0;
}

static int pread_wait(tai_io *io, int *idx, int max, int min) {
    pread_engine *e = io->engine;
    pthread_mutex_lock(&e->mu);
    while (io->done_n < min) pthread_cond_wait(&e->done, &e->mu);
    int n = tai_io_pop_done(io, idx, max);
    pthread_mutex_unlock(&e->mu);
    return n;
}

const tai_io_ops tai_io_pread_ops = {
    .start = pread_start,
    .stop = pread_stop,
    .open_file = pread_open_file,
    .close_file = pread_close_file,
    .submit = pread_submit,
    .wait = pread_wait,
};
