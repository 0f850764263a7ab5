/* bench/: the storage ceiling (see storage.h). */
#include "bench/storage.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/membw.h"

double tai_bench_direct_read(const char *path, size_t block, void *buf, size_t buf_bytes,
                             char *err, size_t err_len) {
    if (err && err_len) err[0] = 0;
    if (!path || !buf || block == 0 || buf_bytes < block) {
        if (err) snprintf(err, err_len, "bad arguments");
        return 0;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
    if (fd < 0) {
        if (err) snprintf(err, err_len, "%s: open(O_DIRECT): %s", path, strerror(errno));
        return 0;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size <= 0) {
        if (err) snprintf(err, err_len, "%s: empty or unreadable", path);
        close(fd);
        return 0;
    }
    const uint64_t size = (uint64_t)st.st_size;
    uint8_t *ring = buf;
    uint64_t off = 0;
    size_t at = 0;
    double t0 = tai_bench_now();
    while (off < size) {
        /* The last read asks for a whole block; the kernel stops at EOF. */
        if (at + block > buf_bytes) at = 0;
        ssize_t n = pread(fd, ring + at, block, (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (err)
                snprintf(err, err_len, "%s: pread at %llu: %s", path, (unsigned long long)off,
                         n < 0 ? strerror(errno) : "unexpected end of file");
            close(fd);
            return 0;
        }
        off += (uint64_t)n;
        at += block;
    }
    double t = tai_bench_now() - t0;
    close(fd);
    return t > 0 ? (double)size / t : 0;
}

/* One reader of tai_bench_direct_read_parallel: blocks i, i + n, i + 2n ... */
typedef struct {
    int fd;
    uint64_t size;
    size_t block;
    int i, n;
    uint8_t *buf;
    int failed;
} reader;

static void *read_part(void *p) {
    reader *r = p;
    for (uint64_t off = (uint64_t)r->i * r->block; off < r->size; off += (uint64_t)r->n * r->block) {
        ssize_t got;
        do got = pread(r->fd, r->buf, r->block, (off_t)off);
        while (got < 0 && errno == EINTR);
        if (got <= 0) {
            r->failed = 1;
            return NULL;
        }
    }
    return NULL;
}

double tai_bench_direct_read_parallel(const char *path, size_t block, int readers, char *err,
                                      size_t err_len) {
    if (err && err_len) err[0] = 0;
    if (!path || block == 0 || block % 4096 || readers < 1 || readers > 64) {
        if (err) snprintf(err, err_len, "bad arguments");
        return 0;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0) {
        if (err) snprintf(err, err_len, "%s: cannot read it with O_DIRECT: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return 0;
    }
    reader r[64];
    pthread_t th[64];
    int started = 0, ok = 1, made = 0;
    for (int i = 0; i < readers && ok; i++, made++) {
        r[i] = (reader){fd, (uint64_t)st.st_size, block, i, readers, tai_bench_huge_alloc(block), 0};
        ok = r[i].buf != NULL;
    }
    const double t0 = tai_bench_now();
    for (int i = 0; ok && i < readers; i++) {
        if (pthread_create(&th[i], NULL, read_part, &r[i]) != 0) ok = 0;
        else started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        ok &= !r[i].failed;
    }
    const double t = tai_bench_now() - t0;
    for (int i = 0; i < made; i++) free(r[i].buf);
    close(fd);
    if (!ok) {
        if (err) snprintf(err, err_len, "%s: a parallel read failed", path);
        return 0;
    }
    return t > 0 ? (double)st.st_size / t : 0;
}
