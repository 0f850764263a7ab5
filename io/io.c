/*
 * io/io.c: the engine-independent part of io/ (io layer): configuration,
 * engine choice and the io_uring -> pread fallback, opening files (O_DIRECT,
 * alignment and chunk size from the block device's sysfs queue), request
 * validation, the request table and queues, and the per-read rules that all
 * three engines share (short reads, retries, end of file, failures).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "io/io_internal.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define DEFAULT_QUEUE_DEPTH 32
#define DEFAULT_MAX_THREADS 8
#define MIN_DEVICE_CHUNK (128 * KiB)
#define FALLBACK_CHUNK MiB

/* ---- Names and configuration --------------------------------------------- */

const char *tai_io_kind_name(tai_io_kind kind) {
    switch (kind) {
    case TAI_IO_AUTO: return "auto";
    case TAI_IO_URING: return "uring";
    case TAI_IO_PREAD: return "pread";
    case TAI_IO_MMAP: return "mmap";
    }
    return NULL;
}

int tai_io_kind_parse(const char *name) {
    if (!name) return -1;
    for (int k = TAI_IO_AUTO; k <= TAI_IO_MMAP; k++)
        if (strcmp(name, tai_io_kind_name((tai_io_kind)k)) == 0) return k;
    if (strcmp(name, "io_uring") == 0) return TAI_IO_URING;
    return -1;
}

tai_io_config tai_io_default_config(void) {
    tai_io_config c;
    memset(&c, 0, sizeof c);
    c.kind = TAI_IO_AUTO;
    return c;
}

void tai_io_set_reason(tai_io *io, const char *what, int err) {
    char buf[96];
    /* GNU strerror_r: returns the message, which may or may not be buf. */
    const char *msg = strerror_r(err < 0 ? -err : err, buf, sizeof buf);
    snprintf(io->reason, sizeof io->reason, "%s: %s", what, msg);
}

static const tai_io_ops *ops_for(tai_io_kind kind) {
    switch (kind) {
    case TAI_IO_URING: return &tai_io_uring_ops;
    case TAI_IO_PREAD: return &tai_io_pread_ops;
    case TAI_IO_MMAP: return &tai_io_mmap_ops;
    default: return NULL;
    }
}

/* ---- Engines --------------------------------------------------------------- */

int tai_io_create(const tai_io_config *cfg, tai_io **out) {
    if (!out) return -EINVAL;
    *out = NULL;
    tai_io_config c = cfg ? *cfg : tai_io_default_config();
    if (!tai_io_kind_name(c.kind) || c.queue_depth < 0 ||
        c.queue_depth > TAI_IO_MAX_QUEUE_DEPTH || c.threads < 0 ||
        c.threads > TAI_IO_MAX_QUEUE_DEPTH || c.chunk_bytes > TAI_IO_MAX_CHUNK)
        return -EINVAL;
    if (c.queue_depth == 0) c.queue_depth = DEFAULT_QUEUE_DEPTH;
    if (c.threads == 0)
        c.threads = c.queue_depth < DEFAULT_MAX_THREADS ? c.queue_depth : DEFAULT_MAX_THREADS;

    tai_io *io = calloc(1, sizeof *io);
    if (!io) return -ENOMEM;
    if (c.faults) io->faults = *c.faults;
    c.faults = NULL; /* copied: the caller's struct need not outlive create */
    io->cfg = c;
    atomic_init(&io->calls, 0);

    tai_io_kind kind = c.kind == TAI_IO_AUTO ? TAI_IO_URING : c.kind;
    io->kind = kind;
    io->ops = ops_for(kind);
    int rc = io->ops->start(io);
    if (rc < 0 && c.kind == TAI_IO_AUTO && rc != -ENOMEM) {
        /* The reason the io_uring engine left in io->reason stays. */
        if (!io->reason[0]) tai_io_set_reason(io, "io_uring", rc);
        io->kind = TAI_IO_PREAD;
        io->ops = &tai_io_pread_ops;
        rc = io->ops->start(io);
    }
    if (rc < 0) {
        free(io);
        return rc;
    }
    *out = io;
    return 0;
}

static void free_file(tai_io *io, tai_io_file *f) {
    if (f->prev) f->prev->next = f->next;
    else io->files = f->next;
    if (f->next) f->next->prev = f->prev;
    io->ops->close_file(io, f);
    close(f->fd);
    free(f);
}

void tai_io_destroy(tai_io *io) {
    if (!io) return;
    io->ops->stop(io);
    for (int i = 0; i < TAI_IO_MAX_REQS; i++) free(io->reqs[i].bounce);
    while (io->files) free_file(io, io->files);
    free(io);
}

tai_io_kind tai_io_engine(const tai_io *io) { return io->kind; }

const char *tai_io_fallback_reason(const tai_io *io) {
    return io->reason[0] ? io->reason : NULL;
}

/* ---- Files ----------------------------------------------------------------- */

/* A value from the block device's request queue in sysfs, or 0. A partition
 * has no queue of its own: its sysfs directory sits inside the whole disk's,
 * so "../queue" finds the disk's. */
static uint64_t queue_value(dev_t dev, const char *name) {
    for (int up = 0; up < 2; up++) {
        char path[128];
        snprintf(path, sizeof path, "/sys/dev/block/%u:%u/%squeue/%s", major(dev), minor(dev),
                 up ? "../" : "", name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        char buf[32];
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0) continue;
        buf[n] = 0;
        char *end;
        unsigned long long v = strtoull(buf, &end, 10);
        if (end != buf) return v;
    }
    return 0;
}

int tai_io_open(tai_io *io, const char *path, tai_io_file **out) {
    if (!io || !path || !out) return -EINVAL;
    *out = NULL;
    /* The mmap engine reads through the page cache whatever is asked. */
    bool want_direct = !io->cfg.buffered && io->kind != TAI_IO_MMAP;
    /* O_NONBLOCK keeps open(2) from blocking on a FIFO; it is cleared below
     * once the file is known to be a regular file or block device, since
     * io_uring would otherwise return EAGAIN instead of waiting for the disk. */
    int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK;
    int fd = open(path, flags | (want_direct ? O_DIRECT : 0));
    bool direct = want_direct && fd >= 0;
    if (fd < 0 && want_direct && errno == EINVAL) fd = open(path, flags);
    if (fd < 0) return -errno;

    int rc;
    struct stat st;
    uint64_t size;
    dev_t dev;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto fail;
    }
    if (S_ISREG(st.st_mode)) {
        size = (uint64_t)st.st_size;
        dev = st.st_dev;
    } else if (S_ISBLK(st.st_mode)) {
        if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
            rc = -errno;
            goto fail;
        }
        dev = st.st_rdev;
    } else {
        rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
        goto fail;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        rc = -errno;
        goto fail;
    }

    tai_io_file *f = calloc(1, sizeof *f);
    if (!f) {
        rc = -ENOMEM;
        goto fail;
    }
    f->fd = fd;
    f->direct = direct;
    f->size = size;
    f->align = 1;
    if (direct) {
        uint64_t lbs = queue_value(dev, "logical_block_size");
        /* A power of two of at least 512, or 512 when sysfs says otherwise. */
        f->align = lbs >= 512 && lbs <= (1u << 20) && (lbs & (lbs - 1)) == 0 ? (size_t)lbs : 512;
    }
    size_t chunk = io->cfg.chunk_bytes;
    if (chunk == 0) {
        uint64_t kb = queue_value(dev, "max_sectors_kb");
        chunk = kb ? (size_t)(kb * KiB) : FALLBACK_CHUNK;
        if (chunk < MIN_DEVICE_CHUNK) chunk = MIN_DEVICE_CHUNK;
        if (chunk > TAI_IO_MAX_CHUNK) chunk = TAI_IO_MAX_CHUNK;
    }
    chunk -= chunk % f->align;
    f->chunk = chunk ? chunk : f->align;
    f->refs = 1;
    rc = io->ops->open_file(io, f);
    if (rc < 0) {
        free(f);
        goto fail;
    }
    f->next = io->files;
    if (io->files) io->files->prev = f;
    io->files = f;
    *out = f;
    return 0;
fail:
    close(fd);
    return rc;
}

static void unref_file(tai_io *io, tai_io_file *f) {
    if (--f->refs == 0) free_file(io, f);
}

void tai_io_close(tai_io *io, tai_io_file *f) {
    if (!io || !f || f->closed) return;
    f->closed = true;
    unref_file(io, f);
}

uint64_t tai_io_file_size(const tai_io_file *f) { return f->size; }
bool tai_io_file_direct(const tai_io_file *f) { return f->direct; }
size_t tai_io_file_alignment(const tai_io_file *f) { return f->align; }

int tai_io_register(tai_io *io, void *base, size_t len) {
    if (!io || !base || len == 0) return -EINVAL;
    int rc = io->ops->register_region ? io->ops->register_region(io, base, len) : 0;
    if (rc == 0) io->registered = true;
    return rc;
}

void tai_io_unregister(tai_io *io) {
    if (!io) return;
    if (io->ops->unregister_all) io->ops->unregister_all(io);
    io->registered = false;
}

bool tai_io_registered(const tai_io *io) { return io->registered; }

/* ---- Requests -------------------------------------------------------------- */

int tai_io_submit(tai_io *io, const tai_io_req *req) {
    if (!io || !req || !req->file || (!req->dst && req->len)) return -EINVAL;
    tai_io_file *f = req->file;
    if (f->closed) return -EBADF;
    uint64_t end = req->offset + req->len;
    if (end < req->offset || end > f->size) return -EINVAL;
    size_t a = f->align;
    /* An empty request does no I/O, so alignment does not matter for it. */
    if (req->len && (req->offset % a || (uintptr_t)req->dst % a || (req->len % a && end != f->size)))
        return -EINVAL;
    if (io->outstanding >= TAI_IO_MAX_REQS) return -EBUSY;

    int idx = 0;
    while (io->reqs[idx].used) idx++; /* outstanding < MAX: one is free */
    tai_io_request *r = &io->reqs[idx];
    uint8_t *bounce = r->bounce;
    size_t bounce_size = r->bounce_size;
    size_t tail = f->direct ? (size_t)(end % a) : 0;
    if (tail && bounce_size < a) { /* a file of larger alignment than before */
        free(bounce);
        bounce = r->bounce = NULL;
        bounce_size = r->bounce_size = 0;
        if (posix_memalign((void **)&bounce, a, a) != 0) return -ENOMEM;
        bounce_size = a;
    }
    /* The worker threads of the pread engine only touch requests that were
     * queued by ops->submit, which takes its lock after these stores. */
    memset(r, 0, sizeof *r);
    r->bounce = bounce;
    r->bounce_size = bounce_size;
    r->used = true;
    r->file = f;
    r->offset = req->offset;
    r->len = req->len;
    r->dst = req->dst;
    r->tag = req->tag;
    int rc = io->ops->submit(io, idx);
    if (rc < 0) {
        r->used = false;
        return rc;
    }
    f->refs++;
    io->outstanding++;
    return 0;
}

int tai_io_wait(tai_io *io, tai_io_done *out, int max, int min) {
    if (!io || !out || max <= 0 || min < 0 || min > max || min > io->outstanding)
        return -EINVAL;
    int idx[TAI_IO_MAX_REQS];
    if (max > TAI_IO_MAX_REQS) max = TAI_IO_MAX_REQS;
    int n = io->ops->wait(io, idx, max, min);
    if (n < 0) return n;
    for (int i = 0; i < n; i++) {
        tai_io_request *r = &io->reqs[idx[i]];
        out[i].tag = r->tag;
        out[i].res = r->res;
        out[i].bytes = (size_t)r->bytes;
        out[i].fail_offset = r->res < 0 ? r->fail_offset : 0;
        r->used = false;
        io->outstanding--;
        unref_file(io, r->file);
    }
    return n;
}

int tai_io_read(tai_io *io, tai_io_file *f, uint64_t offset, size_t len, void *dst,
                uint64_t *fail_offset) {
    if (fail_offset) *fail_offset = 0;
    if (!io) return -EINVAL;
    if (io->outstanding) return -EBUSY;
    tai_io_req req = {.file = f, .offset = offset, .len = len, .dst = dst, .tag = 0};
    int rc = tai_io_submit(io, &req);
    if (rc < 0) return rc;
    tai_io_done d;
    rc = tai_io_wait(io, &d, 1, 1);
    if (rc < 0) return rc;
    if (fail_offset) *fail_offset = d.fail_offset;
    return d.res;
}

/* ---- Queues and chunks (engine lock held) ----------------------------------- */

void tai_io_push_pending(tai_io *io, int req) {
    tai_io_request *r = &io->reqs[req];
    if (r->len == 0) { /* nothing to read: finished already */
        tai_io_push_done(io, req);
        return;
    }
    r->queued = true;
    io->pending[(io->pending_head + io->pending_n++) % TAI_IO_MAX_REQS] = req;
}

void tai_io_push_done(tai_io *io, int req) {
    io->done[(io->done_head + io->done_n++) % TAI_IO_MAX_REQS] = req;
}

int tai_io_pop_done(tai_io *io, int *idx, int max) {
    int n = 0;
    while (n < max && io->done_n > 0) {
        idx[n++] = io->done[io->done_head];
        io->done_head = (io->done_head + 1) % TAI_IO_MAX_REQS;
        io->done_n--;
    }
    return n;
}

static void pop_pending(tai_io *io) {
    io->reqs[io->pending[io->pending_head]].queued = false;
    io->pending_head = (io->pending_head + 1) % TAI_IO_MAX_REQS;
    io->pending_n--;
}

bool tai_io_next_chunk(tai_io *io, tai_io_chunk *c) {
    while (io->pending_n > 0) {
        int idx = io->pending[io->pending_head];
        tai_io_request *r = &io->reqs[idx];
        if (r->failed || r->next == r->len) {
            pop_pending(io);
            if (r->inflight == 0) tai_io_push_done(io, idx);
            continue;
        }
        tai_io_file *f = r->file;
        /* With O_DIRECT, a request that ends at an unaligned end of file
         * splits into its aligned part and a tail shorter than one block. */
        uint64_t aligned = r->len;
        if (f->direct) aligned -= (r->offset + r->len) % f->align;
        memset(c, 0, sizeof *c);
        c->req = idx;
        c->off = r->offset + r->next;
        c->dst = r->dst + r->next;
        if (r->next < aligned) {
            uint64_t left = aligned - r->next;
            c->len = left < f->chunk ? (size_t)left : f->chunk;
        } else {
            c->len = (size_t)(r->len - r->next);
            c->tail = true;
        }
        r->next += c->len;
        r->inflight++;
        if (r->next == r->len) pop_pending(io);
        return true;
    }
    return false;
}

tai_io_raw tai_io_chunk_raw(const tai_io *io, const tai_io_chunk *c) {
    const tai_io_request *r = &io->reqs[c->req];
    size_t a = r->file->align;
    if (c->tail) /* shorter than a block: always the whole block again */
        return (tai_io_raw){.buf = r->bounce, .ask = a, .pos = c->off};
    size_t base = c->done - c->done % a;
    return (tai_io_raw){.buf = c->dst + base, .ask = c->len - base, .pos = c->off + base};
}

long tai_io_fault(tai_io *io, uint64_t pos, size_t len, long res) {
    if (!io->faults.fn) return res;
    uint64_t call = atomic_fetch_add_explicit(&io->calls, 1, memory_order_relaxed);
    return io->faults.fn(io->faults.ctx, call, pos, len, res);
}

tai_io_step tai_io_chunk_result(const tai_io *io, tai_io_chunk *c, long res, int *err) {
    if (res < 0) {
        if ((res == -EINTR || res == -EAGAIN) && c->retries < TAI_IO_MAX_RETRIES) {
            c->retries++;
            return TAI_IO_CHUNK_AGAIN;
        }
        *err = res >= -4095 ? (int)res : -EIO;
        return TAI_IO_CHUNK_FAIL;
    }
    if (res == 0) { /* end of file before the end of the chunk */
        *err = -ENODATA;
        return TAI_IO_CHUNK_FAIL;
    }
    tai_io_raw raw = tai_io_chunk_raw(io, c);
    if ((size_t)res > raw.ask) res = (long)raw.ask;
    size_t now = (size_t)(raw.pos - c->off) + (size_t)res;
    if (now > c->len) now = c->len;
    if (now <= c->done) {
        /* A short read that ends inside the block already done: nothing new
         * arrived. If the file has shrunk below this chunk it never will. */
        const tai_io_file *f = io->reqs[c->req].file;
        struct stat st;
        if (fstat(f->fd, &st) == 0 && S_ISREG(st.st_mode) &&
            (uint64_t)st.st_size < c->off + c->len) {
            *err = -ENODATA;
            return TAI_IO_CHUNK_FAIL;
        }
        if (c->retries++ >= TAI_IO_MAX_RETRIES) {
            *err = -EIO;
            return TAI_IO_CHUNK_FAIL;
        }
        return TAI_IO_CHUNK_AGAIN;
    }
    if (c->tail) memcpy(c->dst + c->done, raw.buf + c->done, now - c->done);
    c->done = now;
    c->retries = 0;
    return now == c->len ? TAI_IO_CHUNK_DONE : TAI_IO_CHUNK_AGAIN;
}

void tai_io_chunk_finish(tai_io *io, const tai_io_chunk *c, int err) {
    tai_io_request *r = &io->reqs[c->req];
    r->inflight--;
    r->bytes += c->done;
    if (err < 0) {
        /* Of several failing chunks, the lowest offset is reported: the
         * same answer whatever order the chunks completed in. */
        uint64_t pos = tai_io_chunk_raw(io, c).pos;
        if (!r->failed || pos < r->fail_offset) {
            r->res = err;
            r->fail_offset = pos;
        }
        r->failed = true;
    }
    if (r->inflight == 0 && !r->queued) tai_io_push_done(io, c->req);
}
