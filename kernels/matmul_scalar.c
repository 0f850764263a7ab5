/*
 * kernels/matmul_scalar.c: the portable variant of the packed product
 * kernels (layer: kernels), plain C over the layouts of kernels.h. It is the
 * variant of machines without a SIMD one (ARM64 until a NEON file exists)
 * and the readable statement of what the SIMD variants compute: per row and
 * column, the same sums in the same order as the row-major reference
 * (matmul_ref.c), so the two agree exactly.
 *
 * Block types: the packed codes are unsigned (Q4 0..15, Q8_0 q + 128); the
 * integer sum over a block starts from the activation's n8 / n128 (-bias *
 * sum of its codes), which cancels the bias exactly:
 *   sum (u - bias) * a = n_bias + sum u * a.
 */
#include "kernels/kernels_internal.h"

/* Unit j of column c of the prepared activations: column groups of TAI_NR,
 * units interleaved within a group (kernels.h). */
static const void *x_unit(const void *xp, size_t unit, int64_t units, int64_t ncols,
                          int64_t c, int64_t u) {
    const int64_t g0 = c / TAI_NR * TAI_NR;
    const int64_t w = ncols - g0 < TAI_NR ? ncols - g0 : TAI_NR;
    return (const char *)xp + ((size_t)g0 * units + (size_t)u * w + (c - g0)) * unit;
}

static float dot_f32(const float *wp, int r, const void *xp, int64_t n, int64_t ncols,
                     int64_t c) {
    float sum = 0.0f;
    for (int64_t k = 0; k < n; k++)
        sum += wp[k * TAI_PANEL + r] * *(const float *)x_unit(xp, 4, n, ncols, c, k);
    return sum;
}

static float dot_f16(const uint16_t *wp, int r, const void *xp, int64_t n, int64_t ncols,
                     int64_t c) {
    float sum = 0.0f;
    for (int64_t k = 0; k < n; k++)
        sum += tai_fp16_to_fp32(wp[k * TAI_PANEL + r]) *
               *(const float *)x_unit(xp, 4, n, ncols, c, k);
    return sum;
}

/* Q8_0, Q4_0, Q4_1 share one loop; `t` selects the code layout. */
static float dot_q(tai_type t, const uint8_t *wp, int r, const void *xp, int64_t n,
                   int64_t ncols, int64_t c) {
    const int64_t nb = n / TAI_QK;
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        const tai_block_q8a *a = x_unit(xp, sizeof(tai_block_q8a), nb, ncols, c, b);
        const uint8_t *q = wp + tai_qcodes_at(t, b);
        const uint16_t *d = (const uint16_t *)(wp + tai_qscales_at(t, b));
        const uint16_t *m = (const uint16_t *)(wp + tai_qmins_at(t, b));
        int32_t s;
        if (t == TAI_TYPE_Q8_0) {
            s = a->n128;
            for (int g = 0; g < 8; g++)
                for (int k = 0; k < 4; k++)
                    s += q[(g * TAI_PANEL + r) * 4 + k] * a->qs[4 * g + k];
        } else {
            s = t == TAI_TYPE_Q4_0 ? a->n8 : 0;
            for (int j = 0; j < 4; j++)
                for (int k = 0; k < 4; k++) {
                    uint8_t v = q[(j * TAI_PANEL + r) * 4 + k];
                    s += (v & 0x0f) * a->qs[8 * j + k] + (v >> 4) * a->qs[8 * j + 4 + k];
                }
        }
        float dw = tai_fp16_to_fp32(d[r]);
        if (t == TAI_TYPE_Q4_1)
            sum += (float)s * (dw * a->d) + tai_fp16_to_fp32(m[r]) * a->s;
        else
            sum += (float)s * (dw * a->d);
    }
    return sum;
}

static void gemm(const void *restrict wp, size_t panel_bytes, const void *restrict xp,
                 float *restrict y, int64_t y_stride, int64_t n, int64_t rows, int64_t p0,
                 int64_t p1, int64_t ncols, tai_type t) {
    for (int64_t p = p0; p < p1; p++) {
        const void *panel = (const char *)wp + (size_t)p * panel_bytes;
        for (int r = 0; r < TAI_PANEL && p * TAI_PANEL + r < rows; r++) {
            const int64_t row = p * TAI_PANEL + r;
            for (int64_t c = 0; c < ncols; c++) {
                float v;
                switch (t) {
                case TAI_TYPE_F32: v = dot_f32(panel, r, xp, n, ncols, c); break;
                case TAI_TYPE_F16: v = dot_f16(panel, r, xp, n, ncols, c); break;
                default: v = dot_q(t, panel, r, xp, n, ncols, c); break;
                }
                y[c * y_stride + row] = v;
            }
        }
    }
}

TAI_GEMM_ENTRY(tai_k_gemm_f32_scalar, gemm, TAI_TYPE_F32)
TAI_GEMM_ENTRY(tai_k_gemm_f16_scalar, gemm, TAI_TYPE_F16)
TAI_GEMM_ENTRY(tai_k_gemm_q8_0_scalar, gemm, TAI_TYPE_Q8_0)
TAI_GEMM_ENTRY(tai_k_gemm_q4_0_scalar, gemm, TAI_TYPE_Q4_0)
TAI_GEMM_ENTRY(tai_k_gemm_q4_1_scalar, gemm, TAI_TYPE_Q4_1)
