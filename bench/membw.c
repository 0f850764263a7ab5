/*
 * bench/: streaming read bandwidth, the ceiling memory-bound kernels are
 * compared with.
 *
 * Each thread sums its slice of a large buffer into eight vector
 * accumulators held in named registers, so the adds never wait on each other
 * and the loop waits on memory only; the sums are consumed so the compiler
 * cannot drop the reads. Which load pattern reaches the most bandwidth
 * depends on the core (on Zen 4, 256-bit loads over several streams beat
 * 512-bit ones over one), so several are measured and the best counts:
 * 512-bit (AVX-512) and 256-bit (AVX2) loads, each reading the slice as 1,
 * 2, 4 or 8 independent streams (equal parts of every 4 MiB block, read side
 * by side). Each loop is
 * compiled for its ISA through a per-function target attribute and only run
 * after a CPUID check, so this file builds for the baseline; without either
 * ISA a scalar loop is used.
 *
 * The threads are started once per measurement and meet at a barrier before
 * and after every pass; a pass is timed from the release of the first
 * barrier to the last thread's arrival at the second, so thread start-up is
 * never timed. One untimed round of every loop comes first, and the loops
 * take turns within each repetition, so slow phases of a shared machine hit
 * them alike.
 */
#include "bench/membw.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

typedef void (*read_fn)(const uint8_t *p, size_t n, uint64_t *sink);

#define BLOCK ((size_t)4 << 20) /* the multi-stream loops' unit, see RD_LOOP */

/* Portable loop: four 64-bit accumulators. */
static void read_scalar(const uint8_t *p, size_t n, uint64_t *sink) {
    const uint64_t *v = (const uint64_t *)p;
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (size_t i = 0; i + 4 <= n / 8; i += 4) {
        a0 += v[i];
        a1 += v[i + 1];
        a2 += v[i + 2];
        a3 += v[i + 3];
    }
    *sink += a0 + a1 + a2 + a3;
}

#if defined(__x86_64__)
/*
 * A loop over S streams: the slice is read block by block (BLOCK bytes, n a
 * multiple of it), each block as S equal parts read side by side, q vectors
 * each; per iteration 8 / S consecutive vectors of every part, accumulator
 * j taking vector j % (8 / S) of part j / (8 / S). The parts are kept within
 * a block because streams far apart cost more than their bytes on some
 * machines (page walks: in a VM, 8 streams 128 MiB apart read at two thirds
 * of the speed of 8 streams 512 KiB apart).
 */
#define RD_STEP(J, S) a##J = ADD(a##J, LOAD(u + q * ((J) / (8 / (S))) + i + (J) % (8 / (S))))
#define RD_LOOP(NAME, TARGET, S)                                                     \
    __attribute__((target(TARGET))) static void NAME(const uint8_t *p, size_t n,     \
                                                     uint64_t *sink) {               \
        const size_t block = n < BLOCK ? n : BLOCK;                                  \
        const size_t q = block / (S) / sizeof(VEC);                                  \
        VEC a0 = ZERO(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0; \
        for (size_t off = 0; off < n; off += block) {                                \
            const VEC *u = (const VEC *)(p + off);                                   \
            for (size_t i = 0; i < q; i += 8 / (S)) {                                \
                RD_STEP(0, S);                                                       \
                RD_STEP(1, S);                                                       \
                RD_STEP(2, S);                                                       \
                RD_STEP(3, S);                                                       \
                RD_STEP(4, S);                                                       \
                RD_STEP(5, S);                                                       \
                RD_STEP(6, S);                                                       \
                RD_STEP(7, S);                                                       \
            }                                                                        \
        }                                                                            \
        a0 = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));      \
        *sink += REDUCE(a0);                                                         \
    }

#define VEC __m512i
#define ZERO _mm512_setzero_si512
#define ADD _mm512_add_epi64
#define LOAD _mm512_load_si512
/* the lanes summed as unsigned: the sums wrap by design (signed overflow
 * would be undefined, and UBSan says so) */
__attribute__((target("avx512f"))) static inline uint64_t reduce_zmm(__m512i a) {
    uint64_t l[8];
    _mm512_storeu_si512(l, a);
    return l[0] + l[1] + l[2] + l[3] + l[4] + l[5] + l[6] + l[7];
}
#define REDUCE(a) reduce_zmm(a)
RD_LOOP(read_zmm1, "avx512f", 1)
RD_LOOP(read_zmm2, "avx512f", 2)
RD_LOOP(read_zmm4, "avx512f", 4)
RD_LOOP(read_zmm8, "avx512f", 8)
#undef VEC
#undef ZERO
#undef ADD
#undef LOAD
#undef REDUCE

__attribute__((target("avx2"))) static inline uint64_t reduce_ymm(__m256i a) {
    return (uint64_t)_mm256_extract_epi64(a, 0) + (uint64_t)_mm256_extract_epi64(a, 1) +
           (uint64_t)_mm256_extract_epi64(a, 2) + (uint64_t)_mm256_extract_epi64(a, 3);
}
#define VEC __m256i
#define ZERO _mm256_setzero_si256
#define ADD _mm256_add_epi64
#define LOAD _mm256_load_si256
#define REDUCE reduce_ymm
RD_LOOP(read_ymm1, "avx2", 1)
RD_LOOP(read_ymm2, "avx2", 2)
RD_LOOP(read_ymm4, "avx2", 4)
RD_LOOP(read_ymm8, "avx2", 8)
#undef VEC
#undef ZERO
#undef ADD
#undef LOAD
#undef REDUCE
#endif

/* The loops this CPU can run; returns how many. */
static int loops(read_fn *fn, const char **name) {
    int n = 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        const read_fn f[4] = {read_zmm1, read_zmm2, read_zmm4, read_zmm8};
        const char *nm[4] = {"zmm x1", "zmm x2", "zmm x4", "zmm x8"};
        for (int i = 0; i < 4; i++) fn[n] = f[i], name[n++] = nm[i];
    }
    if (__builtin_cpu_supports("avx2")) {
        const read_fn f[4] = {read_ymm1, read_ymm2, read_ymm4, read_ymm8};
        const char *nm[4] = {"ymm x1", "ymm x2", "ymm x4", "ymm x8"};
        for (int i = 0; i < 4; i++) fn[n] = f[i], name[n++] = nm[i];
    }
#endif
    if (n == 0) fn[n] = read_scalar, name[n++] = "scalar";
    return n;
}

typedef struct {
    pthread_barrier_t start, end;
    pthread_mutex_t mu;
    pthread_cond_t go_cv;
    int go, abort_run; /* under mu */
    int reps, n_fn;    /* timed repetitions, plus one untimed */
    read_fn fn[TAI_BENCH_READ_LOOPS_MAX];
} shared;

typedef struct {
    shared *sh;
    const uint8_t *p;
    size_t n;
    uint64_t sink;
} slice;

static void *worker(void *arg) {
    slice *s = arg;
    shared *sh = s->sh;
    pthread_mutex_lock(&sh->mu);
    while (!sh->go) pthread_cond_wait(&sh->go_cv, &sh->mu);
    int abort_run = sh->abort_run;
    pthread_mutex_unlock(&sh->mu);
    if (abort_run) return NULL;
    for (int r = 0; r <= sh->reps; r++)
        for (int f = 0; f < sh->n_fn; f++) {
            pthread_barrier_wait(&sh->start);
            sh->fn[f](s->p, s->n, &s->sink);
            pthread_barrier_wait(&sh->end);
        }
    return NULL;
}

volatile uint64_t tai_bench_sink;

static double read_bandwidth(size_t bytes, int threads, int reps, int only,
                             tai_bench_read_loops *out);

double tai_bench_read_bandwidth_loops(size_t bytes, int threads, int reps,
                                      tai_bench_read_loops *out) {
    return read_bandwidth(bytes, threads, reps, -1, out);
}

double tai_bench_read_bandwidth_loop(size_t bytes, int threads, int reps, int loop) {
    return loop < 0 ? 0.0 : read_bandwidth(bytes, threads, reps, loop, NULL);
}

/* only >= 0: measure that loop alone */
static double read_bandwidth(size_t bytes, int threads, int reps, int only,
                             tai_bench_read_loops *out) {
    if (out) memset(out, 0, sizeof *out);
    if (threads < 1 || threads > 1024 || reps < 1 || reps > 1000) return 0.0;
    /* per thread: whole blocks (or, below one block, whole 4 KiB pages: a
     * multiple of every loop's unit) */
    size_t per = bytes / (size_t)threads;
    per &= per >= BLOCK ? ~(BLOCK - 1) : ~(size_t)4095;
    if (per == 0) return 0.0;
    const size_t total = per * (size_t)threads;
    shared sh;
    const char *names[TAI_BENCH_READ_LOOPS_MAX];
    sh.n_fn = loops(sh.fn, names);
    if (only >= sh.n_fn) return 0.0;
    if (only >= 0) {
        sh.fn[0] = sh.fn[only];
        names[0] = names[only];
        sh.n_fn = 1;
    }
    uint8_t *buf = tai_bench_huge_alloc(total); /* every page faulted in */
    double *t = malloc((size_t)reps * (size_t)sh.n_fn * sizeof *t);
    slice *sl = calloc((size_t)threads, sizeof *sl);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    double best = 0.0;
    if (!buf || !t || !sl || !th) goto out;
    sh.reps = reps;
    sh.go = 0;
    sh.abort_run = 0;
    pthread_mutex_init(&sh.mu, NULL);
    pthread_cond_init(&sh.go_cv, NULL);
    pthread_barrier_init(&sh.start, NULL, (unsigned)threads);
    pthread_barrier_init(&sh.end, NULL, (unsigned)threads);
    int started = 1;
    for (int i = 0; i < threads; i++) {
        sl[i] = (slice){&sh, buf + (size_t)i * per, per, 0};
        if (i > 0) {
            if (pthread_create(&th[i], NULL, worker, &sl[i]) != 0) break;
            started++;
        }
    }
    /* the barriers count every thread: run only if all of them started */
    pthread_mutex_lock(&sh.mu);
    sh.go = 1;
    sh.abort_run = started != threads;
    pthread_cond_broadcast(&sh.go_cv);
    pthread_mutex_unlock(&sh.mu);
    if (started == threads) {
        for (int r = 0; r <= reps; r++)
            for (int f = 0; f < sh.n_fn; f++) {
                pthread_barrier_wait(&sh.start);
                double t0 = tai_bench_now();
                sh.fn[f](sl[0].p, sl[0].n, &sl[0].sink);
                pthread_barrier_wait(&sh.end);
                if (r > 0) t[(size_t)f * (size_t)reps + (size_t)(r - 1)] = tai_bench_now() - t0;
            }
    }
    for (int i = 1; i < started; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < threads; i++) tai_bench_sink += sl[i].sink;
    pthread_barrier_destroy(&sh.start);
    pthread_barrier_destroy(&sh.end);
    pthread_cond_destroy(&sh.go_cv);
    pthread_mutex_destroy(&sh.mu);
    if (started == threads) {
        for (int f = 0; f < sh.n_fn; f++) {
            double bw = (double)total / tai_bench_median(t + (size_t)f * (size_t)reps, reps);
            if (out) {
                out->name[f] = names[f];
                out->bytes_per_s[f] = bw;
                if (bw > best) out->best = f;
            }
            if (bw > best) best = bw;
        }
        if (out) out->n = sh.n_fn;
    }
out:
    free(th);
    free(sl);
    free(t);
    free(buf);
    return best;
}

double tai_bench_read_bandwidth(size_t bytes, int threads, int reps) {
    return tai_bench_read_bandwidth_loops(bytes, threads, reps, NULL);
}

int tai_bench_drop_caches(void) {
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int ok = write(fd, "3", 1) == 1;
    close(fd);
    return ok ? 0 : -1;
}

#define HUGE_PAGE ((size_t)2 << 20)

void *tai_bench_huge_alloc(size_t bytes) {
    if (bytes == 0 || bytes > SIZE_MAX - HUGE_PAGE) return NULL;
    bytes = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    void *p = NULL;
    if (posix_memalign(&p, HUGE_PAGE, bytes) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
    memset(p, 0, bytes); /* faulted in before any timing */
    return p;
}
