/*
 * kernels/matmul.c: the matrix product driver and parallel packing (layer:
 * kernels).
 *
 * Y[c][r] = sum_k W[r][k] * X[c][k] over packed W. Two phases on the pool:
 *   1. the columns of X are prepared (copied into column groups for F32/F16
 *      weights, quantized to q8a for block types) into the caller's scratch,
 *      column groups split across the threads;
 *   2. the panels of W are split across the threads, and each thread runs
 *      the type's packed kernel on its panels for all columns: for
 *      matrix-matrix products in even contiguous ranges; for matrix-vector
 *      ones (memory bound) in chunks dealt round-robin, so that the threads
 *      stream neighbouring memory.
 * Every output element is computed by one call of the same kernel whatever
 * the split, so the result does not depend on the number of threads.
 */
#include "kernels/kernels.h"

size_t tai_matmul_scratch_bytes(tai_type t, int64_t n, int64_t ncols) {
    if (!tai_type_valid((int)t)) return 0;
    return tai_prep_bytes(tai_prep_for(t), n, ncols);
}

typedef struct {
    tai_gemm_fn fn;
    tai_quantize_q8a_fn quantize;
    tai_quantize_q8k_fn quantize_k;
    tai_prep prep;
    const void *wp;
    size_t panel_bytes;
    const float *x;
    void *xp;
    float *y;
    int64_t rows, n, ncols, panels, groups;
    int64_t chunk; /* > 0: panels dealt in chunks of this many */
    const tai_kernel_tuning *tuning; /* the table's own, or NULL */
} job;

/* even split of [0, total) into nth parts: part i */
static inline void split(int64_t total, int i, int nth, int64_t *a, int64_t *b) {
    *a = total * i / nth;
    *b = total * (i + 1) / nth;
}

static void run_prep(void *ctx, int i, int nth) {
    const job *j = ctx;
    int64_t g0, g1;
    split(j->groups, i, nth, &g0, &g1);
    if (g1 > g0) tai_prep_groups_with(j->prep, j->x, j->n, j->ncols, j->xp, g0, g1, j->quantize, j->quantize_k);
}

static void run_gemm_part(const job *j, int i, int nth);

static void run_gemm(void *ctx, int i, int nth) {
    const job *j = ctx;
    if (j->tuning) tai_kernels_tuning_scope(j->tuning);
    run_gemm_part(j, i, nth);
    if (j->tuning) tai_kernels_tuning_scope(NULL);
}

static void run_gemm_part(const job *j, int i, int nth) {
    if (j->chunk > 0) {
        /* chunks dealt round-robin: the threads stream neighbouring memory */
        for (int64_t c0 = (int64_t)i * j->chunk; c0 < j->panels; c0 += (int64_t)nth * j->chunk) {
            int64_t c1 = c0 + j->chunk < j->panels ? c0 + j->chunk : j->panels;
            j->fn(j->wp, j->panel_bytes, j->xp, j->y, j->rows, j->n, j->rows, c0, c1, j->ncols);
        }
        return;
    }
    int64_t p0, p1;
    split(j->panels, i, nth, &p0, &p1);
    if (p1 > p0)
        j->fn(j->wp, j->panel_bytes, j->xp, j->y, j->rows, j->n, j->rows, p0, p1, j->ncols);
}

/* The job of one product (0: a bad argument; nothing to do). */
static int make_job(const tai_kernels *k, int nth, tai_type t, const void *wp, int64_t rows,
                    int64_t n, const float *x, float *y, int64_t ncols, void *scratch, job *j) {
    if (k == NULL || !tai_type_valid((int)t) || rows <= 0 || n <= 0 || ncols <= 0) return 0;
    size_t pb = tai_pack_panel_bytes(t, n);
    if (pb == 0 || k->gemm[t] == NULL) return 0;
    *j = (job){
        .fn = k->gemm[t],
        .quantize = k->quantize_q8a ? k->quantize_q8a : tai_quantize_row_q8a,
        .quantize_k = k->quantize_q8k ? k->quantize_q8k : tai_quantize_row_q8k,
        .prep = tai_prep_for(t),
        .tuning = k->tuning,
        .wp = wp,
        .panel_bytes = pb,
        .x = x,
        .xp = scratch,
        .y = y,
        .rows = rows,
        .n = n,
        .ncols = ncols,
        .panels = (rows + TAI_PANEL - 1) / TAI_PANEL,
        .groups = (ncols + TAI_NR - 1) / TAI_NR,
    };
    if (ncols < TAI_NR && nth > 1) {
        /* Streaming products are memory bound, and on the machines measured
         * threads streaming far-apart halves of a matrix read up to a
         * quarter slower than threads reading neighbouring memory (as the
         * bandwidth benchmark's loops do). So the panels are dealt in
         * rounds of chunks of about CHUNK_BYTES, one chunk per thread per
         * round, sized so every thread gets the same number of panels to
         * within one per round. */
        const int64_t CHUNK_BYTES = 256 * 1024;
        int64_t total = (int64_t)pb * j->panels;
        int64_t rounds = (total + (int64_t)nth * CHUNK_BYTES - 1) / ((int64_t)nth * CHUNK_BYTES);
        if (rounds < 1) rounds = 1;
        j->chunk = (j->panels + (int64_t)nth * rounds - 1) / ((int64_t)nth * rounds);
    }
    return 1;
}

/* X's columns prepared once for the jobs (their prep, x and scratch are
 * the same): on the pool when there is more than one column group. */
static void prep_once(tai_pool *pool, job *j) {
    if (tai_pool_size(pool) > 1 && j->groups > 1)
        tai_pool_run(pool, run_prep, j);
    else
        run_prep(j, 0, 1);
}

void tai_matmul(const tai_kernels *k, tai_pool *pool, tai_type t, const void *wp,
                int64_t rows, int64_t n, const float *x, float *y, int64_t ncols,
                void *scratch) {
    job j;
    const int nth = tai_pool_size(pool);
    if (!make_job(k, nth, t, wp, rows, n, x, y, ncols, scratch, &j)) return;
    /* a single column group is not worth a second dispatch */
    prep_once(pool, &j);
    if (nth > 1 && j.panels > 1)
        tai_pool_run(pool, run_gemm, &j);
    else
        run_gemm(&j, 0, 1);
}

typedef struct {
    job *jobs;
    int n;
} many_job;

static void run_many(void *ctx, int i, int nth) {
    const many_job *mj = ctx;
    for (int m = 0; m < mj->n; m++) run_gemm(&mj->jobs[m], i, nth);
}

int tai_matmul_many(const tai_kernels *k, tai_pool *pool, int n_mats, const tai_type *t,
                    const void *const *wp, const int64_t *rows, int64_t n, const float *x,
                    float *const *y, int64_t ncols, void *scratch) {
    job j[TAI_MATMUL_MANY];
    const int nth = tai_pool_size(pool);
    if (n_mats < 1 || n_mats > TAI_MATMUL_MANY) return 0;
    for (int m = 0; m < n_mats; m++) {
        if (!make_job(k, nth, t[m], wp[m], rows[m], n, x, y[m], ncols, scratch, &j[m])) return 0;
        if (j[m].prep != j[0].prep) return 0;
    }
    prep_once(pool, &j[0]);
    many_job mj = {j, n_mats};
    if (nth > 1)
        tai_pool_run(pool, run_many, &mj);
    else
        run_many(&mj, 0, 1);
    return 1;
}

typedef struct {
    tai_type t;
    const void *w;
    int64_t rows, n, panels;
    void *dst;
} pack_job;

static void run_pack(void *ctx, int i, int nth) {
    const pack_job *j = ctx;
    int64_t p0, p1;
    split(j->panels, i, nth, &p0, &p1);
    tai_pack_panels(j->t, j->w, j->rows, j->n, j->dst, p0, p1);
}

void tai_pack_matrix(tai_pool *pool, tai_type t, const void *w, int64_t rows, int64_t n,
                     void *dst) {
    if (tai_pack_bytes(t, rows, n) == 0 || w == NULL || dst == NULL) return;
    pack_job j = {t, w, rows, n, (rows + TAI_PANEL - 1) / TAI_PANEL, dst};
    tai_pool_run(pool, run_pack, &j);
}
