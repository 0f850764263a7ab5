/*
 * bench/: streaming read bandwidth. Each thread sums its slice of a large
 * buffer with 8 independent AVX2 accumulators (compiled for AVX2 in this file
 * only, with a scalar build elsewhere), so the loop is limited by memory, not
 * by the adds. The result is consumed so the compiler cannot drop the reads.
 */
#include "bench/membw.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

typedef struct {
    const uint8_t *p;
    size_t n;
    uint64_t sink;
} slice;

static void *read_slice(void *arg) {
    slice *s = arg;
#if defined(__AVX2__)
    __m256i a[8];
    for (int i = 0; i < 8; i++) a[i] = _mm256_setzero_si256();
    const __m256i *v = (const __m256i *)s->p;
    size_t nv = s->n / 32;
    for (size_t i = 0; i + 8 <= nv; i += 8)
        for (int j = 0; j < 8; j++) a[j] = _mm256_add_epi64(a[j], _mm256_load_si256(v + i + j));
    for (int j = 1; j < 8; j++) a[0] = _mm256_add_epi64(a[0], a[j]);
    uint64_t out[4];
    _mm256_storeu_si256((__m256i *)out, a[0]);
    s->sink = out[0] + out[1] + out[2] + out[3];
#else
    const uint64_t *v = (const uint64_t *)s->p;
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (size_t i = 0; i + 4 <= s->n / 8; i += 4) {
        a0 += v[i];
        a1 += v[i + 1];
        a2 += v[i + 2];
        a3 += v[i + 3];
    }
    s->sink = a0 + a1 + a2 + a3;
#endif
    return NULL;
}

volatile uint64_t tai_bench_sink;

double tai_bench_read_bandwidth(size_t bytes, int threads, int reps) {
    if (threads < 1 || threads > 64 || reps < 1 || reps > 100) return 0.0;
    bytes &= ~(size_t)4095;
    uint8_t *buf = aligned_alloc(4096, bytes);
    if (!buf) return 0.0;
    memset(buf, 1, bytes); /* fault every page in before timing */
    double *t = malloc((size_t)reps * sizeof *t);
    slice sl[64];
    pthread_t th[64];
    if (!t) {
        free(buf);
        return 0.0;
    }
    const size_t per = bytes / (size_t)threads & ~(size_t)255;
    for (int r = 0; r < reps; r++) {
        double t0 = tai_bench_now();
        for (int i = 0; i < threads; i++) {
            sl[i] = (slice){buf + (size_t)i * per, per, 0};
            if (i > 0 && pthread_create(&th[i], NULL, read_slice, &sl[i]) != 0) sl[i].n = 0;
        }
        read_slice(&sl[0]);
        for (int i = 1; i < threads; i++)
            if (sl[i].n) pthread_join(th[i], NULL);
        t[r] = tai_bench_now() - t0;
        for (int i = 0; i < threads; i++) tai_bench_sink += sl[i].sink;
    }
    double bw = (double)(per * (size_t)threads) / tai_bench_median(t, reps);
    free(t);
    free(buf);
    return bw;
}
