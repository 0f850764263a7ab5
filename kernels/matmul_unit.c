/*
 * kernels/matmul_unit.c: the products of the unit-packed types (Q5_0,
 * Q5_1, IQ4_NL and the K-quants; core/types.h "Unit-packed weights") and
 * of BF16: the row-major reference (the oracle) and the portable packed
 * variant (layer: kernels).
 *
 * Blocks of 32 (64-element units) with q8a activations, per block s and
 * its activation block a: the integer sums of each half h (16 elements)
 * isum_h = sum c(q) * a.q (c(q) = q, or IQ4_NL's value + 128) and xs_h =
 * sum a.q, then with the code bias B (and the scale S = 1)
 *   T = S_0 * (isum_0 - B * xs_0) + S_1 * (isum_1 - B * xs_1)
 *   y += D_s * (T * a.d) [+ m_s * a.s for Q5_1]
 * K-quants with q8k activations (one scale per 256): the same T of each
 * sub-block with its halves' integer scales S (xs_h from a.bsums), and
 * the minimums' Mi = Mn_0 * xs_0 + Mn_1 * xs_1, summed over the unit in
 * 32-bit integers (exact), then
 *   y += D * (sum T * a.d) - M * (sum Mi * a.d)
 * The SIMD variants (matmul_unit_avx2.c, matmul_unit_avx512.c) compute the
 * same integers and the same float steps.
 */
#include <stdbool.h>
#include <string.h>

#include "kernels/kernels_internal.h"

static inline int code_value(tai_type t, int q) {
    return t == TAI_TYPE_IQ4_NL ? tai_iq4nl_values[q & 15] + 128 : q;
}

/* A unit of 64 elements (R) against its q8a blocks a[0 .. nsub). */
static float unit_acc(tai_type t, const tai_unit_layout *L, const tai_unit_row *R,
                      const tai_block_q8a *const *a, int nsub, float sum) {
    const int B = t == TAI_TYPE_IQ4_NL ? 128 : L->bias;
    for (int s = 0; s < nsub; s++) {
        int32_t is[2] = {0, 0}, xs[2] = {0, 0};
        for (int k = 0; k < 32; k++) {
            is[k / 16] += code_value(t, R->code[32 * s + k]) * a[s]->qs[k];
            xs[k / 16] += a[s]->qs[k];
        }
        const int32_t T = R->sc[2 * s] * (is[0] - B * xs[0]) + R->sc[2 * s + 1] * (is[1] - B * xs[1]);
        sum += tai_fp16_to_fp32(R->d[s]) * ((float)T * a[s]->d);
        if (L->has_min) sum += tai_fp16_to_fp32(R->m[s]) * a[s]->s;
    }
    return sum;
}

/* A K-quant super-block (R) against its q8k block a: the integer sums of
 * every sub-block added up first, then two float steps. */
static float unit_acc_k(tai_type t, const tai_unit_layout *L, const tai_unit_row *R,
                        const tai_block_q8_k *a, float sum) {
    const int B = L->bias;
    int32_t Ts = 0, Mi = 0;
    for (int s = 0; s < 8; s++) {
        int32_t is[2] = {0, 0};
        const int32_t xs[2] = {a->bsums[2 * s], a->bsums[2 * s + 1]};
        for (int k = 0; k < 32; k++) is[k / 16] += R->code[32 * s + k] * a->qs[32 * s + k];
        Ts += R->sc[2 * s] * (is[0] - B * xs[0]) + R->sc[2 * s + 1] * (is[1] - B * xs[1]);
        if (L->has_min) Mi += R->mn[2 * s] * xs[0] + R->mn[2 * s + 1] * xs[1];
    }
    const float D = t == TAI_TYPE_Q8_K ? R->d32 : tai_fp16_to_fp32(R->d[0]);
    sum += D * ((float)Ts * a->d);
    if (L->has_min) sum -= tai_fp16_to_fp32(R->m[0]) * ((float)Mi * a->d);
    return sum;
}

/* ---- Row-major reference ------------------------------------------------- */

static void rows_unit(tai_type t, const void *restrict w, size_t w_row_bytes,
                      const void *restrict x, size_t x_col_bytes, float *restrict y,
                      int64_t y_stride, int64_t n, int64_t r0, int64_t r1, int64_t ncols) {
    const tai_unit_layout *L = tai_unit_layout_of(t);
    const int64_t nb = n / tai_type_block_elems(t), per = L->elems / tai_type_block_elems(t);
    const size_t bb = tai_type_block_bytes(t);
    for (int64_t r = r0; r < r1; r++)
        for (int64_t c = 0; c < ncols; c++) {
            const void *xc = (const char *)x + (size_t)c * x_col_bytes;
            const uint8_t *row = (const uint8_t *)w + (size_t)r * w_row_bytes;
            float sum = 0.0f;
            for (int64_t u = 0; u * per < nb; u++) {
                const int k = nb - u * per < per ? (int)(nb - u * per) : (int)per;
                tai_unit_row R;
                tai_unit_from_gguf(t, row + (size_t)(u * per) * bb, k, &R);
                if (L->elems == TAI_QK_K) {
                    sum = unit_acc_k(t, L, &R, (const tai_block_q8_k *)xc + u, sum);
                } else {
                    const tai_block_q8a *a[2];
                    for (int s = 0; s < k; s++) a[s] = (const tai_block_q8a *)xc + u * 2 + s;
                    sum = unit_acc(t, L, &R, a, k, sum);
                }
            }
            y[c * y_stride + r] = sum;
        }
}

static void rows_bf16(const void *restrict w, size_t w_row_bytes, const void *restrict x,
                      size_t x_col_bytes, float *restrict y, int64_t y_stride, int64_t n,
                      int64_t r0, int64_t r1, int64_t ncols) {
    for (int64_t r = r0; r < r1; r++)
        for (int64_t c = 0; c < ncols; c++) {
            const uint16_t *wr = (const uint16_t *)((const char *)w + (size_t)r * w_row_bytes);
            const float *xc = (const float *)((const char *)x + (size_t)c * x_col_bytes);
            float sum = 0.0f;
            for (int64_t k = 0; k < n; k++) sum += tai_bf16_to_fp32(wr[k]) * xc[k];
            y[c * y_stride + r] = sum;
        }
}

#define REF_UNIT(NAME, T)                                                                   \
    TAI_ROWS_DECL(NAME) { rows_unit(T, w, w_row_bytes, x, x_col_bytes, y, y_stride, n, r0, r1, ncols); }
REF_UNIT(tai_k_rows_q5_0_ref, TAI_TYPE_Q5_0)
REF_UNIT(tai_k_rows_q5_1_ref, TAI_TYPE_Q5_1)
REF_UNIT(tai_k_rows_iq4_nl_ref, TAI_TYPE_IQ4_NL)
REF_UNIT(tai_k_rows_q2_k_ref, TAI_TYPE_Q2_K)
REF_UNIT(tai_k_rows_q3_k_ref, TAI_TYPE_Q3_K)
REF_UNIT(tai_k_rows_q4_k_ref, TAI_TYPE_Q4_K)
REF_UNIT(tai_k_rows_q5_k_ref, TAI_TYPE_Q5_K)
REF_UNIT(tai_k_rows_q6_k_ref, TAI_TYPE_Q6_K)
REF_UNIT(tai_k_rows_q8_k_ref, TAI_TYPE_Q8_K)
TAI_ROWS_DECL(tai_k_rows_bf16_ref) {
    rows_bf16(w, w_row_bytes, x, x_col_bytes, y, y_stride, n, r0, r1, ncols);
}

/* ---- Portable packed variant ---------------------------------------------- */

/* Unit u of column c of the prepared activations (column groups,
 * kernels.h), units of `unit` bytes, nu per column. */
static const void *x_unit(const void *xp, size_t unit, int64_t nu, int64_t ncols, int64_t c,
                          int64_t u) {
    const int64_t g0 = c / TAI_NR * TAI_NR;
    const int64_t w = ncols - g0 < TAI_NR ? ncols - g0 : TAI_NR;
    return (const char *)xp + ((size_t)g0 * nu + (size_t)u * w + (c - g0)) * unit;
}

static void gemm_unit(const void *restrict wp, size_t pb, const void *restrict xp,
                      float *restrict y, int64_t ys, int64_t n, int64_t rows, int64_t p0,
                      int64_t p1, int64_t ncols, tai_type t) {
    const tai_unit_layout *L = tai_unit_layout_of(t);
    const int64_t nb = n / TAI_QK, nu = (n + L->elems - 1) / L->elems;
    const bool k = L->elems == TAI_QK_K;
    for (int64_t p = p0; p < p1; p++) {
        const uint8_t *panel = (const uint8_t *)wp + (size_t)p * pb;
        for (int r = 0; r < TAI_PANEL && p * TAI_PANEL + r < rows; r++)
            for (int64_t c = 0; c < ncols; c++) {
                float sum = 0.0f;
                for (int64_t u = 0; u < nu; u++) {
                    tai_unit_row R;
                    tai_unit_get(t, panel + (size_t)u * L->bytes, r, &R);
                    if (k) {
                        sum = unit_acc_k(t, L, &R, x_unit(xp, sizeof(tai_block_q8_k), nu, ncols, c, u), sum);
                    } else {
                        const int nsub = (int)(nb - u * 2 < 2 ? nb - u * 2 : 2);
                        const tai_block_q8a *a[2];
                        for (int s = 0; s < nsub; s++)
                            a[s] = x_unit(xp, sizeof(tai_block_q8a), nb, ncols, c, u * 2 + s);
                        sum = unit_acc(t, L, &R, a, nsub, sum);
                    }
                }
                y[c * ys + p * TAI_PANEL + r] = sum;
            }
    }
}

static void gemm_bf16(const void *restrict wp, size_t pb, const void *restrict xp,
                      float *restrict y, int64_t ys, int64_t n, int64_t rows, int64_t p0,
                      int64_t p1, int64_t ncols, int unused) {
    (void)unused;
    for (int64_t p = p0; p < p1; p++) {
        const uint16_t *panel = (const uint16_t *)((const uint8_t *)wp + (size_t)p * pb);
        for (int r = 0; r < TAI_PANEL && p * TAI_PANEL + r < rows; r++)
            for (int64_t c = 0; c < ncols; c++) {
                const int64_t g0 = c / TAI_NR * TAI_NR;
                const int64_t w = ncols - g0 < TAI_NR ? ncols - g0 : TAI_NR;
                const float *xg = (const float *)xp + (size_t)g0 * n;
                float sum = 0.0f;
                for (int64_t k = 0; k < n; k++)
                    sum += tai_bf16_to_fp32(panel[k * TAI_PANEL + r]) * xg[k * w + (c - g0)];
                y[c * ys + p * TAI_PANEL + r] = sum;
            }
    }
}

TAI_GEMM_ENTRY(tai_k_gemm_q5_0_scalar, gemm_unit, TAI_TYPE_Q5_0)
TAI_GEMM_ENTRY(tai_k_gemm_q5_1_scalar, gemm_unit, TAI_TYPE_Q5_1)
TAI_GEMM_ENTRY(tai_k_gemm_iq4_nl_scalar, gemm_unit, TAI_TYPE_IQ4_NL)
TAI_GEMM_ENTRY(tai_k_gemm_q2_k_scalar, gemm_unit, TAI_TYPE_Q2_K)
TAI_GEMM_ENTRY(tai_k_gemm_q3_k_scalar, gemm_unit, TAI_TYPE_Q3_K)
TAI_GEMM_ENTRY(tai_k_gemm_q4_k_scalar, gemm_unit, TAI_TYPE_Q4_K)
TAI_GEMM_ENTRY(tai_k_gemm_q5_k_scalar, gemm_unit, TAI_TYPE_Q5_K)
TAI_GEMM_ENTRY(tai_k_gemm_q6_k_scalar, gemm_unit, TAI_TYPE_Q6_K)
TAI_GEMM_ENTRY(tai_k_gemm_q8_k_scalar, gemm_unit, TAI_TYPE_Q8_K)
TAI_GEMM_ENTRY(tai_k_gemm_bf16_scalar, gemm_bf16, 0)
