/*
 * kernels/kernels_internal.h: declarations shared by the files of kernels/
 * only (layer: kernels). Never included from outside this folder; other
 * folders use kernels.h.
 *
 * The packed product kernels have the signature of tai_gemm_fn; the
 * row-major reference ones that of tai_rows_fn. registry.c is the one table
 * that lists them. They keep default visibility: each ISA file is its own Bazel library
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

#define TAI_GEMM_DECL(name)                                                     \
    void name(const void *restrict wp, size_t panel_bytes, const void *restrict xp, \
              float *restrict y, int64_t y_stride, int64_t n, int64_t rows,        \
              int64_t p0, int64_t p1, int64_t ncols)

/* Row-major scalar reference (matmul_ref.c): the oracle every packed
 * variant is tested against. */
TAI_ROWS_DECL(tai_k_rows_f32_ref);
TAI_ROWS_DECL(tai_k_rows_f16_ref);
TAI_ROWS_DECL(tai_k_rows_q4_0_ref);
TAI_ROWS_DECL(tai_k_rows_q4_1_ref);
TAI_ROWS_DECL(tai_k_rows_q8_0_ref);

/* Packed kernels, named tai_k_gemm_<type>_<isa>; registry.c lists them. */
#define TAI_GEMM_DECL_ALL(isa)              \
    TAI_GEMM_DECL(tai_k_gemm_f32_##isa);    \
    TAI_GEMM_DECL(tai_k_gemm_f16_##isa);    \
    TAI_GEMM_DECL(tai_k_gemm_q4_0_##isa);   \
    TAI_GEMM_DECL(tai_k_gemm_q4_1_##isa);   \
    TAI_GEMM_DECL(tai_k_gemm_q8_0_##isa)

TAI_GEMM_DECL_ALL(scalar); /* portable C (matmul_scalar.c) */
#if defined(__x86_64__)
TAI_GEMM_DECL_ALL(avx2);   /* AVX2 + FMA + F16C (matmul_avx2.c) */
TAI_GEMM_DECL_ALL(avx512); /* AVX-512 F/BW/VL/DQ + VNNI (matmul_avx512.c) */

/* Attention and SwiGLU of the AVX2 and AVX-512 files (contracts of
 * tai_attention and tai_silu_mul). */
void tai_k_attention_avx2(float *out, const float *q, const float *k_cache,
                          const float *v_cache, int64_t n_pos, int64_t kv_stride, int n_head,
                          int n_kv_head, int head_dim, float *att);
void tai_k_silu_mul_avx2(float *gate, const float *up, int64_t n);
void tai_k_attention_avx512(float *out, const float *q, const float *k_cache,
                            const float *v_cache, int64_t n_pos, int64_t kv_stride, int n_head,
                            int n_kv_head, int head_dim, float *att);
void tai_k_silu_mul_avx512(float *gate, const float *up, int64_t n);
#endif

#ifdef __cplusplus
}
#endif

#endif /* TAI_KERNELS_KERNELS_INTERNAL_H */
