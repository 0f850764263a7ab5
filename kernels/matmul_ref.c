/*
 * kernels/matmul_ref.c: scalar reference row-range product kernels, one per
 * weight type (layer: kernels). The oracle that every SIMD variant is tested
 * against; written for clarity, not speed.
 *
 * Layout (see tai_rows_fn in kernels.h): weight row r starts at
 * w + r * w_row_bytes and holds n elements of the weight type; activation
 * column c starts at x + c * x_col_bytes and holds n prepared elements
 * (floats for F32/F16 weights, n / 32 tai_block_q8a for block types).
 * Output: y[c * y_stride + r] for r in [r0, r1), c in [0, ncols).
 *
 * Block types, per block b of 32 elements (w: weight block, a: q8a block):
 *   Q8_0: w.d * a.d * sum_j w.q[j] * a.q[j]
 *   Q4_0: w.d * a.d * sum_j (w.q[j] - 8) * a.q[j]
 *   Q4_1: w.d * a.d * sum_j w.q[j] * a.q[j] + w.m * a.s   (a.s = a.d * sum a.q)
 * The integer sums are exact; only the float accumulation over blocks rounds.
 */
#include "kernels/kernels_internal.h"

static const void *row_at(const void *w, size_t w_row_bytes, int64_t r) {
    return (const char *)w + (size_t)r * w_row_bytes;
}

static const void *col_at(const void *x, size_t x_col_bytes, int64_t c) {
    return (const char *)x + (size_t)c * x_col_bytes;
}

static float dot_f32(const float *w, const float *x, int64_t n) {
    float sum = 0.0f;
    for (int64_t k = 0; k < n; k++) sum += w[k] * x[k];
    return sum;
}

static float dot_f16(const uint16_t *w, const float *x, int64_t n) {
    float sum = 0.0f;
    for (int64_t k = 0; k < n; k++) sum += tai_fp16_to_fp32(w[k]) * x[k];
    return sum;
}

static float dot_q8_0(const tai_block_q8_0 *w, const tai_block_q8a *x, int64_t nb) {
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        int32_t s = 0;
        for (int j = 0; j < TAI_QK; j++) s += (int32_t)w[b].qs[j] * x[b].qs[j];
        sum += (float)s * (tai_fp16_to_fp32(w[b].d) * x[b].d);
    }
    return sum;
}

static float dot_q4_0(const tai_block_q4_0 *w, const tai_block_q8a *x, int64_t nb) {
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        int32_t s = 0;
        for (int j = 0; j < TAI_QK / 2; j++) {
            int lo = (w[b].qs[j] & 0x0f) - 8; /* element j */
            int hi = (w[b].qs[j] >> 4) - 8;   /* element j + 16 */
            s += lo * x[b].qs[j] + hi * x[b].qs[j + TAI_QK / 2];
        }
        sum += (float)s * (tai_fp16_to_fp32(w[b].d) * x[b].d);
    }
    return sum;
}

static float dot_q4_1(const tai_block_q4_1 *w, const tai_block_q8a *x, int64_t nb) {
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        int32_t s = 0;
        for (int j = 0; j < TAI_QK / 2; j++) {
            s += (w[b].qs[j] & 0x0f) * x[b].qs[j] +
                 (w[b].qs[j] >> 4) * x[b].qs[j + TAI_QK / 2];
        }
        sum += (float)s * (tai_fp16_to_fp32(w[b].d) * x[b].d) +
               tai_fp16_to_fp32(w[b].m) * x[b].s;
    }
    return sum;
}

/* The reference row drivers: every (row, column) pair, one dot product
 * each, stamped per type so each calls its dot function directly. */
#define REF_ROWS(NAME, DOT, NELEM)                                                \
    void NAME(const void *restrict w, size_t w_row_bytes, const void *restrict x, \
              size_t x_col_bytes, float *restrict y, int64_t y_stride, int64_t n,  \
              int64_t r0, int64_t r1, int64_t ncols) {                            \
        for (int64_t r = r0; r < r1; r++)                                         \
            for (int64_t c = 0; c < ncols; c++)                                   \
                y[c * y_stride + r] =                                             \
                    DOT(row_at(w, w_row_bytes, r), col_at(x, x_col_bytes, c), NELEM); \
    }

REF_ROWS(tai_k_rows_f32_ref, dot_f32, n)
REF_ROWS(tai_k_rows_f16_ref, dot_f16, n)
REF_ROWS(tai_k_rows_q8_0_ref, dot_q8_0, n / TAI_QK)
REF_ROWS(tai_k_rows_q4_0_ref, dot_q4_0, n / TAI_QK)
REF_ROWS(tai_k_rows_q4_1_ref, dot_q4_1, n / TAI_QK)
