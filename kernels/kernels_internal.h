/*
 * kernels/kernels_internal.h: declarations shared by the files of kernels/
 * only (layer: kernels). Never included from outside this folder; other
 * folders use kernels.h.
 *
 * Every row-range product kernel has the signature of tai_rows_fn and is
 * named tai_k_rows_<type>_<isa>. registry.c is the one table that lists them.
 * They keep default visibility: each ISA file is its own Bazel library
 * (its own copts), and Bazel may link those as separate shared objects.
 */
#ifndef TAI_KERNELS_KERNELS_INTERNAL_H
#define TAI_KERNELS_KERNELS_INTERNAL_H

#include "kernels/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TAI_ROWS_DECL(name)                                                  \
    void name(const void *restrict w, size_t w_row_bytes,                    \
              const void *restrict x, size_t x_col_bytes, float *restrict y, \
              int64_t y_stride, int64_t n, int64_t r0, int64_t r1,           \
              int64_t ncols)

/* Scalar reference (matmul_ref.c): the oracle every variant is tested
 * against. */
TAI_ROWS_DECL(tai_k_rows_f32_ref);
TAI_ROWS_DECL(tai_k_rows_f16_ref);
TAI_ROWS_DECL(tai_k_rows_q4_0_ref);
TAI_ROWS_DECL(tai_k_rows_q4_1_ref);
TAI_ROWS_DECL(tai_k_rows_q8_0_ref);

#if defined(__x86_64__)
/* AVX2 + FMA + F16C (matmul_avx2.c). */
TAI_ROWS_DECL(tai_k_rows_f32_avx2);
TAI_ROWS_DECL(tai_k_rows_f16_avx2);
TAI_ROWS_DECL(tai_k_rows_q4_0_avx2);
TAI_ROWS_DECL(tai_k_rows_q4_1_avx2);
TAI_ROWS_DECL(tai_k_rows_q8_0_avx2);

/* AVX-512 F/BW/VL/DQ + VNNI (matmul_avx512.c). */
TAI_ROWS_DECL(tai_k_rows_f32_avx512);
TAI_ROWS_DECL(tai_k_rows_f16_avx512);
TAI_ROWS_DECL(tai_k_rows_q4_0_avx512);
TAI_ROWS_DECL(tai_k_rows_q4_1_avx512);
TAI_ROWS_DECL(tai_k_rows_q8_0_avx512);
#endif

/* ---- Row drivers of the SIMD variants: rows outer, columns inner (four
 * at a time, then one). */

/* One driver per type, stamped from this template so that the hot loops
 * call the type's dot functions directly (no function pointers inside). */
#define ROWS_DRIVER(NAME, WT, XT, NELEM, DOT1, DOT4)                            \
    void NAME(const void *restrict w, size_t w_row_bytes, const void *restrict x, \
              size_t x_col_bytes, float *restrict y, int64_t y_stride, int64_t n, \
              int64_t r0, int64_t r1, int64_t ncols) {                          \
        const char *xb = (const char *)x;                                      \
        for (int64_t r = r0; r < r1; r++) {                                    \
            const WT *wr = (const WT *)((const char *)w + (size_t)r * w_row_bytes); \
            int64_t c = 0;                                                     \
            for (; c + 4 <= ncols; c += 4) {                                   \
                const XT *xc[4];                                               \
                float o[4];                                                    \
                for (int j = 0; j < 4; j++)                                    \
                    xc[j] = (const XT *)(xb + (size_t)(c + j) * x_col_bytes);  \
                DOT4(wr, xc, NELEM, o);                                        \
                for (int j = 0; j < 4; j++) y[(c + j) * y_stride + r] = o[j];  \
            }                                                                  \
            for (; c < ncols; c++)                                             \
                y[c * y_stride + r] =                                          \
                    DOT1(wr, (const XT *)(xb + (size_t)c * x_col_bytes), NELEM); \
        }                                                                      \
    }


#ifdef __cplusplus
}
#endif

#endif /* TAI_KERNELS_KERNELS_INTERNAL_H */
