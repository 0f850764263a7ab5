/*
 * kernels/sparse.c: products with block-sparse packed weights (core/types.h
 * "Block-sparse packed weights").
 *
 * A panel keeps `keep` of its n/32 column blocks, stored as one dense
 * packed panel of 32 * keep elements. Its product is therefore the ISA's
 * dense kernel (the same AVX-512, AVX2 or scalar code every dense product
 * runs) over that panel and the matching blocks of the prepared
 * activations, gathered per panel into a small per-thread buffer: block b
 * of a column group is one contiguous run of the prepared layout (w units
 * of 32 elements' worth), so the gather is `keep` copies per group. The
 * weights are read once, front to back, and only the kept ones: a product
 * at 70% sparsity reads 30% of the dense bytes (plus a 64-byte header per
 * panel). Each output is the dense kernel's chain over the kept blocks in
 * order, which equals, bit for bit, the dense product of the matrix with
 * the pruned blocks zero (a zero weight block adds exactly zero), for any
 * thread count and any batch.
 */
#include <string.h>

#include "kernels/kernels.h"

#define ALIGN64(x) (((x) + (size_t)63) & ~(size_t)63)

static size_t gather_bytes(tai_prep p, int64_t keep, int64_t ncols) {
    return ALIGN64(tai_prep_bytes(p, keep * TAI_QK, ncols));
}

size_t tai_matmul_sparse_scratch_bytes(tai_type t, int64_t n, int64_t keep, int64_t ncols,
                                       int nthreads) {
    if (!tai_type_valid((int)t) || keep < 1 || n <= 0 || keep * TAI_QK > n || ncols <= 0)
        return 0;
    const tai_prep p = tai_prep_for(t);
    return ALIGN64(tai_prep_bytes(p, n, ncols)) +
           (size_t)(nthreads < 1 ? 1 : nthreads) * gather_bytes(p, keep, ncols);
}

typedef struct {
    tai_gemm_fn fn;
    tai_quantize_q8a_fn quantize;
    tai_quantize_q8k_fn quantize_k;
    tai_prep prep;
    const uint8_t *wp;
    size_t panel_bytes, head_bytes, dense_pb;
    const float *x;
    uint8_t *xp, *gather;
    size_t gather_stride;
    float *y;
    int64_t rows, n, keep, ncols, panels, groups;
} sjob;

static void run_prep(void *ctx, int i, int nth) {
    const sjob *j = ctx;
    const int64_t g0 = j->groups * i / nth, g1 = j->groups * (i + 1) / nth;
    if (g1 > g0) tai_prep_groups_with(j->prep, j->x, j->n, j->ncols, j->xp, g0, g1, j->quantize, j->quantize_k);
}

/* The prepared activations of the kept blocks of one panel (its index at
 * `ix`), in the layout of a product with 32 * keep elements. */
static void gather(const sjob *j, const uint8_t *ix, uint8_t *dst) {
    const size_t unit = tai_prep_col_bytes(j->prep, TAI_QK); /* one block of one column */
    const size_t src_group = TAI_NR * tai_prep_col_bytes(j->prep, j->n);
    const size_t dst_group = TAI_NR * tai_prep_col_bytes(j->prep, j->keep * TAI_QK);
    for (int64_t g = 0; g < j->groups; g++) {
        const int64_t w = j->ncols - g * TAI_NR < TAI_NR ? j->ncols - g * TAI_NR : TAI_NR;
        const size_t run = (size_t)w * unit;
        const uint8_t *s = j->xp + (size_t)g * src_group;
        uint8_t *d = dst + (size_t)g * dst_group;
        for (int64_t k = 0; k < j->keep; k++) {
            uint16_t b;
            memcpy(&b, ix + 2 * k, 2);
            memcpy(d + (size_t)k * run, s + (size_t)b * run, run);
        }
    }
}

static void run_panels(void *ctx, int i, int nth) {
    const sjob *j = ctx;
    const int64_t p0 = j->panels * i / nth, p1 = j->panels * (i + 1) / nth;
    uint8_t *buf = j->gather + (size_t)i * j->gather_stride;
    for (int64_t p = p0; p < p1; p++) {
        const uint8_t *panel = j->wp + (size_t)p * j->panel_bytes;
        gather(j, panel + 2, buf);
        j->fn(panel + j->head_bytes, j->dense_pb, buf, j->y + p * TAI_PANEL, j->rows,
              j->keep * TAI_QK, j->rows - p * TAI_PANEL, 0, 1, j->ncols);
    }
}

void tai_matmul_sparse(const tai_kernels *k, tai_pool *pool, tai_type t, const void *wp,
                       int64_t rows, int64_t n, int64_t keep, const float *x, float *y,
                       int64_t ncols, void *scratch) {
    if (k == NULL || !tai_type_valid((int)t) || rows <= 0 || n <= 0 || ncols <= 0) return;
    const size_t pb = tai_sparse_panel_bytes(t, n, keep);
    if (pb == 0 || k->gemm[t] == NULL) return;
    const tai_prep prep = tai_prep_for(t);
    sjob j = {
        .fn = k->gemm[t],
        .quantize = k->quantize_q8a ? k->quantize_q8a : tai_quantize_row_q8a,
        .quantize_k = k->quantize_q8k ? k->quantize_q8k : tai_quantize_row_q8k,
        .prep = prep,
        .wp = wp,
        .panel_bytes = pb,
        .head_bytes = tai_sparse_index_bytes(keep),
        .dense_pb = tai_pack_panel_bytes(t, keep * TAI_QK),
        .x = x,
        .xp = scratch,
        .gather = (uint8_t *)scratch + ALIGN64(tai_prep_bytes(prep, n, ncols)),
        .gather_stride = gather_bytes(prep, keep, ncols),
        .y = y,
        .rows = rows,
        .n = n,
        .keep = keep,
        .ncols = ncols,
        .panels = (rows + TAI_PANEL - 1) / TAI_PANEL,
        .groups = (ncols + TAI_NR - 1) / TAI_NR,
    };
    const int nth = tai_pool_size(pool);
    if (nth > 1 && j.groups > 1)
        tai_pool_run(pool, run_prep, &j);
    else
        run_prep(&j, 0, 1);
    if (nth > 1 && j.panels > 1)
        tai_pool_run(pool, run_panels, &j);
    else
        run_panels(&j, 0, 1);
}
