/*
 * io/mmap.c: the mmap engine (io layer). Each file is mapped read-only once
 * (MAP_SHARED, MADV_SEQUENTIAL); a request is copied out of the mapping
 * chunk by chunk, synchronously, inside tai_io_submit, so its completion is
 * ready when submit returns. Before each chunk the next queue_depth chunks
 * are announced with MADV_WILLNEED, so the kernel reads ahead while this one
 * is copied; after it, the pages copied from are unmapped again
 * (MADV_DONTNEED: they stay in the page cache but leave this process's
 * resident set), so a mapping of a file larger than memory costs no more
 * resident memory than the chunks being copied.
 *
 * The fault hook sees, for every copy, the number of bytes the copy would
 * give; a smaller value copies only that much (a short read) and the rest
 * follows, errors follow the same rules as the other engines.
 *
 * The copy goes through process_vm_readv on this process rather than
 * memcpy: a page past the end of a file truncated after it was mapped is a
 * fault that would raise SIGBUS in a plain copy; the system call instead
 * stops short there (or fails with EFAULT), and the engine reports
 * -ENODATA for the missing bytes, as the other engines do. Where the
 * system call is refused (ENOSYS, or EPERM under a seccomp policy) the copy
 * falls back to memcpy, and such a truncation raises SIGBUS as with any
 * mapping.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "io/io_internal.h"

static uint64_t page_size(void) {
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (uint64_t)p : 4096;
}

/* Announces [c->off, c->off + (queue_depth + 1) chunks) unless already
 * announced by the previous chunk of a sequential run. */
static void advise_ahead(tai_io *io, tai_io_file *f, const tai_io_chunk *c) {
    uint64_t ahead = (uint64_t)io->cfg.queue_depth * f->chunk;
    uint64_t hi = c->off + c->len + ahead;
    if (hi > f->size) hi = f->size;
    uint64_t lo = c->off;
    if (f->adv_lo <= lo && lo <= f->adv_hi) lo = f->adv_hi; /* continues the run */
    else f->adv_lo = c->off;
    if (lo >= hi) return;
    uint64_t pg = page_size();
    uint64_t start = lo - lo % pg;
    /* Advice only: a failure changes speed, never the bytes read. */
    (void)madvise((uint8_t *)f->map + start, (size_t)(hi - start), MADV_WILLNEED);
    f->adv_hi = hi;
}

/* Unmaps the pages wholly read by c. A page shared with the next chunk is
 * kept (dropping it would cost that chunk a page fault); the chunk that
 * finishes it drops it. */
static void drop_copied(tai_io_file *f, const tai_io_chunk *c) {
    uint64_t pg = page_size();
    uint64_t end = c->off + c->done;
    uint64_t start = c->off - c->off % pg;
    end = end == f->size ? (end + pg - 1) / pg * pg : end - end % pg;
    if (end > start) (void)madvise((uint8_t *)f->map + start, (size_t)(end - start), MADV_DONTNEED);
}

/* Copies n bytes of f from pos (mapped at src) to dst without faulting on
 * pages past the end of a file that shrank under the mapping: the bytes
 * copied that the file still holds (fewer where it now ends early; 0 where
 * it ends before pos), or -errno. A shrunk file's last page reads as zeros
 * past its end, without a fault, so the size is looked at after the copy:
 * bytes copied before a later truncation were the file's. */
static long copy_mapped(const tai_io_file *f, uint64_t pos, uint8_t *dst, const uint8_t *src, size_t n) {
    struct iovec local = {.iov_base = dst, .iov_len = n};
    struct iovec remote = {.iov_base = (void *)src, .iov_len = n};
    ssize_t r = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    if (r < 0 && (errno == ENOSYS || errno == EPERM)) { /* not allowed here: a plain copy */
        memcpy(dst, src, n);
        r = (ssize_t)n;
    } else if (r < 0 && errno != EFAULT) {
        return -errno;
    }
    struct stat st;
    if (fstat(f->fd, &st) != 0) return -errno;
    uint64_t held = (uint64_t)st.st_size > pos ? (uint64_t)st.st_size - pos : 0;
    if (r < 0) /* a fault: past the end of the file, or a bad destination */
        return held < n ? 0 : -EFAULT;
    return (uint64_t)r > held ? (long)held : (long)r;
}

/* Copies chunk c; 0 or the -errno it failed with. */
static int copy_chunk(tai_io *io, tai_io_chunk *c) {
    tai_io_file *f = io->reqs[c->req].file;
    const uint8_t *src = f->map;
    advise_ahead(io, f, c);
    int err = 0;
    for (;;) {
        tai_io_raw raw = tai_io_chunk_raw(io, c);
        long n = tai_io_fault(io, raw.pos, raw.ask, (long)raw.ask);
        if (n > (long)raw.ask) n = (long)raw.ask;
        if (n > 0) n = copy_mapped(f, raw.pos, raw.buf, src + raw.pos, (size_t)n);
        tai_io_step s = tai_io_chunk_result(io, c, n, &err);
        if (s == TAI_IO_CHUNK_DONE) break;
        if (s == TAI_IO_CHUNK_FAIL) break;
    }
    drop_copied(f, c);
    return err;
}

static int mmap_start(tai_io *io) {
    io->engine = NULL; /* no state beyond the files' mappings */
    return 0;
}

static void mmap_stop(tai_io *io) { (void)io; }

static int mmap_open_file(tai_io *io, tai_io_file *f) {
    (void)io;
    if (f->size == 0) return 0; /* mmap refuses length 0; nothing to read */
    if (f->size > SIZE_MAX) return -EFBIG;
    void *p = mmap(NULL, (size_t)f->size, PROT_READ, MAP_SHARED, f->fd, 0);
    if (p == MAP_FAILED) return -errno;
    (void)madvise(p, (size_t)f->size, MADV_SEQUENTIAL);
    f->map = p;
    return 0;
}

static void mmap_close_file(tai_io *io, tai_io_file *f) {
    (void)io;
    if (f->map) munmap(f->map, (size_t)f->size);
    f->map = NULL;
}

static int mmap_submit(tai_io *io, int req) {
    tai_io_push_pending(io, req);
    tai_io_chunk c;
    while (tai_io_next_chunk(io, &c)) tai_io_chunk_finish(io, &c, copy_chunk(io, &c));
    return 0;
}

static int mmap_wait(tai_io *io, int *idx, int max, int min) {
    (void)min; /* every submitted request finished inside submit */
    return tai_io_pop_done(io, idx, max);
}

const tai_io_ops tai_io_mmap_ops = {
    .start = mmap_start,
    .stop = mmap_stop,
    .open_file = mmap_open_file,
    .close_file = mmap_close_file,
    .submit = mmap_submit,
    .wait = mmap_wait,
};
