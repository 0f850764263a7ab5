/*
 * kernels/matmul.c: the matrix product driver (layer: kernels).
 *
 * Y[c][r] = sum_k W[r][k] * X[c][k]. Two phases:
 *   1. each column of X is prepared once (quantized to q8a for block weight
 *      types) into the caller's scratch, by the calling thread;
 *   2. the rows of W are split into even contiguous ranges, one per pool
 *      thread, and each thread runs the rows kernel on its range for all
 *      columns. Every output element is computed by exactly one call of the
 *      same kernel whatever the split, so the result does not depend on the
 *      number of threads.
 * F32 preparation is the identity, so for F32/F16 weights X is used in place
 * and the scratch is not touched (its size is still reported, so callers need
 * no special case).
 */
#include "kernels/kernels.h"

size_t tai_matmul_scratch_bytes(tai_type t, int64_t n, int64_t ncols) {
    if (ncols < 0) return 0;
    size_t col = tai_prep_col_bytes(tai_prep_for(t), n);
    if (ncols > 0 && col > SIZE_MAX / (uint64_t)ncols) return 0;
    return col * (size_t)ncols;
}

typedef struct {
    tai_rows_fn fn;
    const void *w;
    size_t w_row_bytes;
    const void *x;
    size_t x_col_bytes;
    float *y;
    int64_t rows, n, ncols;
} job;

static void run_range(void *ctx, int i, int nth) {
    const job *j = ctx;
    /* even split: thread i gets [rows * i / nth, rows * (i + 1) / nth) */
    int64_t r0 = j->rows * i / nth;
    int64_t r1 = j->rows * (i + 1) / nth;
    if (r1 > r0)
        j->fn(j->w, j->w_row_bytes, j->x, j->x_col_bytes, j->y, j->rows, j->n, r0, r1,
              j->ncols);
}

void tai_matmul(const tai_kernels *k, tai_pool *pool, tai_type t, const void *w,
                int64_t rows, int64_t n, const float *x, float *y, int64_t ncols,
                void *scratch) {
    if (k == NULL || !tai_type_valid((int)t) || rows <= 0 || n <= 0 || ncols <= 0) return;
    size_t w_row_bytes = tai_type_row_bytes(t, n);
    if (w_row_bytes == 0 || k->rows[t] == NULL) return;

    tai_prep p = tai_prep_for(t);
    job j = {
        .fn = k->rows[t],
        .w = w,
        .w_row_bytes = w_row_bytes,
        .y = y,
        .rows = rows,
        .n = n,
        .ncols = ncols,
    };
    if (p == TAI_PREP_F32) {
        j.x = x;
        j.x_col_bytes = (size_t)n * sizeof(float);
    } else {
        size_t cb = tai_prep_col_bytes(p, n);
        for (int64_t c = 0; c < ncols; c++)
            tai_prep_col(p, x + c * n, (char *)scratch + (size_t)c * cb, n);
        j.x = scratch;
        j.x_col_bytes = cb;
    }

    if (pool == NULL || tai_pool_size(pool) <= 1 || rows < 2)
        run_range(&j, 0, 1);
    else
        tai_pool_run(pool, run_range, &j);
}
