/*
 * bench/bench_io: how fast each io/ engine reads a file from storage,
 * as a ratio to the ceiling measured in the same run.
 *
 *   bench_io FILE [--reps N] [--no-drop] [--qd N] [--chunk-kb N]
 *
 * The ceiling is a plain loop of O_DIRECT pread(2) calls of large blocks
 * reading the whole file sequentially (the block size is chosen first,
 * the best of a few). Each engine (uring, pread, mmap) then reads the whole
 * file sequentially through io/ into a ring of a few large aligned buffers
 * that are reused, so a file larger than memory works. Runs are interleaved
 * (ceiling, uring, pread, mmap, ceiling, ...) so drift in the device's speed
 * affects all of them alike; as root the page cache is dropped before every
 * run (otherwise mmap, which reads through it, would be measured from
 * memory). Prints GB/s per run, the median per engine, each median as a
 * ratio to the ceiling's, and whether io_uring reaches 95% of the ceiling
 * and beats pread and mmap. See bench/README.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/membw.h"
#include "bench/storage.h"
#include "io/io.h"

#define MiB ((size_t)1 << 20)
#define RING_BUFFERS 4
#define RING_BUFFER_BYTES (64 * MiB)
#define MAX_REPS 100

static const size_t kCeilingBlocks[] = {2 * MiB, 8 * MiB, 32 * MiB};
#define N_CEILING_BLOCKS (sizeof kCeilingBlocks / sizeof kCeilingBlocks[0])

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_io: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* The destination memory is allocated as the runtime's weight cache is
 * (storage.h): on a virtual disk that decides the speed. */
static void *xalloc_aligned(size_t bytes) {
    void *p = tai_bench_huge_alloc(bytes);
    if (!p) die("out of memory (%zu MiB)", bytes / MiB);
    return p;
}

/* ---- Page cache ------------------------------------------------------------ */

static bool g_drop = true;

/* CPU seconds (user + system) of this process so far, all its threads and
 * io_uring's kernel workers included. */
static double cpu_now(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

/* CPU seconds the last run took, per GB read. */
static double g_cpu_per_gb;

/* Drops clean pages, dentries and inodes (needs root); false if it cannot. */
static bool drop_caches(void) { return g_drop && tai_bench_drop_caches() == 0; }

/* ---- Ceiling: O_DIRECT pread loop ------------------------------------------- */

/* GB/s of reading the whole file with `block`-byte O_DIRECT preads into
 * successive blocks of the same ring of buffers the engines read into (the
 * speed of a virtual disk can depend on where in memory it writes, so the
 * ceiling and the engines write to the same memory). */
static double ceiling_run(const char *path, uint64_t size, size_t block, uint8_t *ring,
                          size_t ring_bytes) {
    char err[512];
    double c0 = cpu_now();
    double bps = tai_bench_direct_read(path, block, ring, ring_bytes, err, sizeof err);
    if (bps <= 0) die("%s", err);
    g_cpu_per_gb = (cpu_now() - c0) / ((double)size / 1e9);
    return bps / 1e9;
}

/* ---- Engines ------------------------------------------------------------- */

typedef struct {
    tai_io_kind kind;
    int qd;       /* 0: the default */
    size_t chunk; /* 0: the default */
    char label[24];
    tai_io *io;
    tai_io_file *f;
    const char *note; /* registration */
} engine;

static void engine_open(engine *e, const char *path, uint8_t *ring, size_t ring_bytes) {
    tai_io_config cfg = tai_io_default_config();
    cfg.kind = e->kind;
    cfg.queue_depth = e->qd;
    cfg.chunk_bytes = e->chunk;
    int rc = tai_io_create(&cfg, &e->io);
    if (rc < 0) die("%s engine: %s", tai_io_kind_name(e->kind), strerror(-rc));
    rc = tai_io_open(e->io, path, &e->f);
    if (rc < 0) die("%s: %s", path, strerror(-rc));
    if (e->kind == TAI_IO_URING) {
        rc = tai_io_register(e->io, ring, ring_bytes);
        e->note = rc == 0 ? "registered buffers" : "buffers not registered (locked-memory limit)";
    }
}

/* GB/s of reading the whole file through the engine into the ring: up to
 * RING_BUFFERS requests of one buffer each in flight, each buffer reused as
 * soon as its request completes. */
static double engine_run(engine *e, uint64_t size, uint8_t *ring, size_t buf_bytes) {
    uint64_t next = 0;
    int inflight = 0;
    bool busy[RING_BUFFERS] = {false};
    double c0 = cpu_now(), t0 = tai_bench_now();
    while (next < size || inflight > 0) {
        for (int b = 0; b < RING_BUFFERS && next < size; b++) {
            if (busy[b]) continue;
            uint64_t len = size - next < buf_bytes ? size - next : buf_bytes;
            tai_io_req req = {e->f, next, (size_t)len, ring + (size_t)b * buf_bytes, (uint64_t)b};
            int rc = tai_io_submit(e->io, &req);
            if (rc < 0) die("%s: submit at %llu: %s", tai_io_kind_name(e->kind),
                            (unsigned long long)next, strerror(-rc));
            busy[b] = true;
            inflight++;
            next += len;
        }
        tai_io_done d[RING_BUFFERS];
        int n = tai_io_wait(e->io, d, RING_BUFFERS, 1);
        if (n < 0) die("%s: wait: %s", tai_io_kind_name(e->kind), strerror(-n));
        for (int i = 0; i < n; i++) {
            if (d[i].res < 0)
                die("%s: read failed at %llu: %s", tai_io_kind_name(e->kind),
                    (unsigned long long)d[i].fail_offset, strerror(-d[i].res));
            busy[d[i].tag] = false;
            inflight--;
        }
    }
    double t = tai_bench_now() - t0;
    g_cpu_per_gb = (cpu_now() - c0) / ((double)size / 1e9);
    return (double)size / t / 1e9;
}

/* ---- Main --------------------------------------------------------------------- */

static void usage(void) {
    fprintf(stderr,
            "usage: bench_io FILE [--reps N] [--no-drop] [--qd N] [--chunk-kb N] [--sweep]\n");
    exit(2);
}

/* --sweep: io_uring at these queue depths x chunk sizes instead of the
 * three engines, to choose the defaults. */
static const int kSweepDepths[] = {4, 8, 16, 32, 64};
static const size_t kSweepChunks[] = {MiB, 4 * MiB};
#define MAX_COLUMNS 16

int main(int argc, char **argv) {
    const char *path = NULL;
    int reps = 3, qd = 0;
    size_t chunk = 0;
    bool sweep = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-drop") == 0) g_drop = false;
        else if (strcmp(argv[i], "--qd") == 0 && i + 1 < argc) qd = atoi(argv[++i]);
        else if (strcmp(argv[i], "--chunk-kb") == 0 && i + 1 < argc)
            chunk = (size_t)atol(argv[++i]) * 1024;
        else if (strcmp(argv[i], "--sweep") == 0) sweep = true;
        else if (argv[i][0] == '-' || path) usage();
        else path = argv[i];
    }
    if (!path || reps < 1 || reps > MAX_REPS || qd < 0) usage();

    struct stat st;
    if (stat(path, &st) < 0) die("%s: %s", path, strerror(errno));
    uint64_t size = (uint64_t)st.st_size;
    if (size == 0) die("%s: empty file", path);

    if (!g_drop) {
        printf("page cache: not dropped (--no-drop): mmap may be served from memory\n");
    } else if (geteuid() != 0 || !drop_caches()) {
        printf("page cache: cannot drop it (needs root and a writable "
               "/proc/sys/vm/drop_caches): mmap may be served from memory\n");
        g_drop = false;
    } else {
        printf("page cache: dropped before every run\n");
    }

    size_t buf_bytes = size < RING_BUFFER_BYTES ? (size_t)(size + 4095) / 4096 * 4096
                                                : RING_BUFFER_BYTES;
    size_t ring_bytes = RING_BUFFERS * buf_bytes;
    /* Room for the ceiling's largest block even when the file is small. */
    size_t max_block = kCeilingBlocks[N_CEILING_BLOCKS - 1];
    if (ring_bytes < max_block) ring_bytes = max_block;
    uint8_t *ring = xalloc_aligned(ring_bytes);

    printf("file: %s, %.1f MiB\n", path, (double)size / (double)MiB);

    /* Block size of the ceiling: the best of a few, each read once. */
    size_t block = kCeilingBlocks[0];
    double best = 0;
    printf("ceiling block size:");
    for (size_t i = 0; i < N_CEILING_BLOCKS; i++) {
        drop_caches();
        double gbs = ceiling_run(path, size, kCeilingBlocks[i], ring, ring_bytes);
        printf("  %zu MiB %.3f GB/s", kCeilingBlocks[i] / MiB, gbs);
        if (gbs > best) {
            best = gbs;
            block = kCeilingBlocks[i];
        }
    }
    printf("  -> %zu MiB\n", block / MiB);

    engine engines[MAX_COLUMNS];
    int n_eng = 0;
    memset(engines, 0, sizeof engines);
    if (sweep) {
        for (size_t c = 0; c < sizeof kSweepChunks / sizeof kSweepChunks[0]; c++)
            for (size_t d = 0; d < sizeof kSweepDepths / sizeof kSweepDepths[0]; d++) {
                engine *e = &engines[n_eng++];
                e->kind = TAI_IO_URING;
                e->qd = kSweepDepths[d];
                e->chunk = kSweepChunks[c];
                snprintf(e->label, sizeof e->label, "u%d/%zuM", e->qd, e->chunk / MiB);
            }
    } else {
        const tai_io_kind kinds[3] = {TAI_IO_URING, TAI_IO_PREAD, TAI_IO_MMAP};
        for (int k = 0; k < 3; k++) {
            engine *e = &engines[n_eng++];
            e->kind = kinds[k];
            e->qd = qd;
            e->chunk = chunk;
            snprintf(e->label, sizeof e->label, "%s", tai_io_kind_name(kinds[k]));
        }
    }
    for (int k = 0; k < n_eng; k++) {
        engine *e = &engines[k];
        engine_open(e, path, ring, ring_bytes);
        if (k > 0 && sweep) continue;
        printf("%-8s O_DIRECT %-3s alignment %zu%s%s\n", e->label,
               tai_io_file_direct(e->f) ? "yes" : "no", tai_io_file_alignment(e->f),
               e->note ? ", " : "", e->note ? e->note : "");
    }
    if (!sweep)
        printf("queue depth %d, chunk %s, %d x %zu MiB destination buffers\n", qd ? qd : 32,
               chunk ? "set by --chunk-kb" : "from the device (max_sectors_kb)", RING_BUFFERS,
               buf_bytes / MiB);
    else
        printf("sweep: io_uring as u<queue depth>/<chunk MiB>; %d x %zu MiB destination "
               "buffers\n", RING_BUFFERS, buf_bytes / MiB);
    putchar('\n');

    static double gbs[MAX_COLUMNS + 1][MAX_REPS], cpu[MAX_COLUMNS + 1][MAX_REPS];
    int cols = n_eng + 1;
    printf("%-6s %9s", "run", "ceiling");
    for (int k = 0; k < n_eng; k++) printf(" %9s", engines[k].label);
    printf("   (GB/s)\n");
    for (int r = 0; r < reps; r++) {
        drop_caches();
        gbs[0][r] = ceiling_run(path, size, block, ring, ring_bytes);
        cpu[0][r] = g_cpu_per_gb;
        for (int k = 0; k < n_eng; k++) {
            drop_caches();
            gbs[k + 1][r] = engine_run(&engines[k], size, ring, buf_bytes);
            cpu[k + 1][r] = g_cpu_per_gb;
        }
        printf("%-6d", r + 1);
        for (int k = 0; k < cols; k++) printf(" %9.3f", gbs[k][r]);
        putchar('\n');
        fflush(stdout);
    }
    double med[MAX_COLUMNS + 1];
    for (int k = 0; k < cols; k++) med[k] = tai_bench_median(gbs[k], reps);
    printf("%-6s", "median");
    for (int k = 0; k < cols; k++) printf(" %9.3f", med[k]);
    printf("\n%-6s", "ratio");
    for (int k = 0; k < cols; k++) printf(" %9.3f", med[k] / med[0]);
    printf("   (median / ceiling median)\n");
    printf("%-6s", "cpu");
    for (int k = 0; k < cols; k++) printf(" %9.3f", tai_bench_median(cpu[k], reps));
    printf("   (CPU seconds per GB read, median)\n");
    if (!sweep) {
        bool at_ceiling = med[1] >= 0.95 * med[0];
        printf("\nio_uring >= 95%% of the ceiling: %s (%.1f%%)\n", at_ceiling ? "yes" : "NO",
               100 * med[1] / med[0]);
        printf("io_uring above pread: %s (%.2fx)\n", med[1] > med[2] ? "yes" : "NO",
               med[1] / med[2]);
        printf("io_uring above mmap:  %s (%.2fx)\n", med[1] > med[3] ? "yes" : "NO",
               med[1] / med[3]);
    }

    for (int k = 0; k < n_eng; k++) tai_io_destroy(engines[k].io);
    free(ring);
    return 0;
}
