/*
 * kernels/tune.c: the per-machine tuning run (tai_kernels_tune, kernels.h)
 * (layer: kernels).
 *
 * Each candidate setting is applied in turn and the streaming product of
 * each measured type is timed over copies of one packed matrix that
 * together exceed the last-level cache, so every call reads its weights
 * from memory, as decoding does. Rounds rotate the candidates' order so that
 * a slow phase of a shared machine does not fall on one of them, and each
 * figure is the median of its rounds.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "kernels/kernels_internal.h"

/* prefetch into L1, into L2 (the K slice stays the kernels' default) */
static const tai_kernel_tuning CANDIDATES[] = {
    {0, 0, 0},       /* hardware prefetch alone: the reference */
    {1024, 0, 0},    {0, 4096, 0},    {512, 2048, 0}, {512, 4096, 0},
    {1024, 4096, 0}, {1024, 8192, 0}, {2048, 8192, 0},
};
#define N_CAND ((int)(sizeof CANDIDATES / sizeof CANDIDATES[0]))
#define MAX_ROUNDS 15

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* One type: sec[c][r], seconds per byte of candidate c in round r. */
static int measure_type(const tai_kernels *k, tai_type t, size_t buffer_bytes, int rounds,
                        double sec[N_CAND][MAX_ROUNDS]) {
    enum { K = 4096, M = 4096 };
    const size_t rb = tai_type_row_bytes(t, K), pb = tai_pack_bytes(t, M, K);
    size_t ncopies = buffer_bytes / pb + 1;
    float *w = malloc((size_t)K * sizeof *w * 16);
    float *x = malloc((size_t)K * sizeof *x), *y = malloc((size_t)M * sizeof *y);
    uint8_t *q = malloc(rb * M);
    void *scratch = aligned_alloc(64, (tai_matmul_scratch_bytes(t, K, 1) + 63) / 64 * 64);
    /* in huge pages, as the runtime keeps weights (its arena and cache) */
    const size_t huge = (size_t)2 << 20, cb = (pb * ncopies + huge - 1) / huge * huge;
    uint8_t *copies = aligned_alloc(huge, cb);
    int rc = 0;
    if (!w || !x || !y || !q || !scratch || !copies) {
        rc = -ENOMEM;
        goto done;
    }
    uint32_t s = 12345u;
    for (int i = 0; i < K; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    }
    for (int r0 = 0; r0 < M; r0 += 16) { /* 16 rows of random floats at a time */
        for (int i = 0; i < 16 * K; i++) {
            s = s * 1664525u + 1013904223u;
            w[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
        }
        for (int r = 0; r < 16; r++) tai_quantize_row(t, w + (size_t)r * K, q + (size_t)(r0 + r) * rb, K);
    }
#ifdef MADV_HUGEPAGE
    (void)madvise(copies, cb, MADV_HUGEPAGE);
#endif
    tai_pack_matrix(NULL, t, q, M, K, copies);
    for (size_t c = 1; c < ncopies; c++) memcpy(copies + c * pb, copies, pb);
    for (int r = -1; r < rounds; r++) { /* round -1: untimed warm-up */
        for (int i = 0; i < N_CAND; i++) {
            const int c = (i + (r < 0 ? 0 : r)) % N_CAND;
            tai_kernels_set_tuning(&CANDIDATES[c]);
            const double t0 = now_s();
            for (size_t j = 0; j < ncopies; j++)
                tai_matmul(k, NULL, t, copies + j * pb, M, K, x, y, 1, scratch);
            const double dt = now_s() - t0;
            if (r >= 0) sec[c][r] = dt / ((double)pb * (double)ncopies);
        }
    }
done:
    free(w);
    free(x);
    free(y);
    free(q);
    free(scratch);
    free(copies);
    return rc;
}

int tai_kernels_tune(tai_isa isa, size_t buffer_bytes, int rounds, tai_kernel_tuning *out,
                     double *gain) {
    if (buffer_bytes == 0) buffer_bytes = (size_t)768 << 20;
    if (rounds <= 0) rounds = 3;
    if (rounds > MAX_ROUNDS) rounds = MAX_ROUNDS;
    const tai_kernels *k = tai_kernels_get(isa);
    const tai_kernel_tuning before = tai_kernels_tuning();
    static const tai_type types[] = {TAI_TYPE_F16, TAI_TYPE_Q8_0, TAI_TYPE_Q4_0};
    double score[N_CAND];
    for (int c = 0; c < N_CAND; c++) score[c] = 0.0;
    int rc = 0;
    for (size_t ti = 0; rc == 0 && ti < sizeof types / sizeof types[0]; ti++) {
        double sec[N_CAND][MAX_ROUNDS];
        rc = measure_type(k, types[ti], buffer_bytes, rounds, sec);
        if (rc != 0) break;
        const double ref = median(sec[0], rounds);
        for (int c = 0; c < N_CAND; c++) score[c] += log(ref / median(sec[c], rounds));
    }
    tai_kernels_set_tuning(&before);
    if (rc != 0) return rc;
    int best = 0;
    for (int c = 1; c < N_CAND; c++)
        if (score[c] > score[best]) best = c;
    if (out) *out = CANDIDATES[best];
    if (gain) *gain = exp(score[best] / 3.0);
    return 0;
}
