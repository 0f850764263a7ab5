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

/* The current tuning (tai_kernels_set_tuning), read by the kernels once
 * per call. */
static inline tai_kernel_tuning tai_k_tuning(void) { return tai_kernels_tuning(); }
/* K elements per slice of a blocked product: the tuning's, or the
 * kernel's default. */
static inline int64_t tai_k_slice(int64_t dflt) {
    const int k = tai_kernels_tuning().k_slice;
    return k > 0 ? k : dflt;
}

/* Packs the nb blocks of one whole panel (16 rows, `row_bytes` apart from
 * `w`, the panel's first row) of a block type into dst, exactly as pack.c's
 * portable loop does, 16 rows at a time with gathers (AVX-512 file). Only for
 * 15 * row_bytes + the block size below 2^31. The padding after the last
 * pair is not written. */
void tai_k_pack_panel_q_avx512(tai_type t, const uint8_t *w, size_t row_bytes, int64_t nb,
                               uint8_t *dst);

/* Row-major scalar reference (matmul_ref.c): the oracle every packed
 * variant is tested against. */
TAI_ROWS_DECL(tai_k_rows_f32_ref);
TAI_ROWS_DECL(tai_k_rows_f16_ref);
TAI_ROWS_DECL(tai_k_rows_q4_0_ref);
TAI_ROWS_DECL(tai_k_rows_q4_1_ref);
TAI_ROWS_DECL(tai_k_rows_q8_0_ref);
/* the unit-packed types and BF16 (matmul_unit.c) */
TAI_ROWS_DECL(tai_k_rows_q5_0_ref);
TAI_ROWS_DECL(tai_k_rows_q5_1_ref);
TAI_ROWS_DECL(tai_k_rows_iq4_nl_ref);
TAI_ROWS_DECL(tai_k_rows_q2_k_ref);
TAI_ROWS_DECL(tai_k_rows_q3_k_ref);
TAI_ROWS_DECL(tai_k_rows_q4_k_ref);
TAI_ROWS_DECL(tai_k_rows_q5_k_ref);
TAI_ROWS_DECL(tai_k_rows_q6_k_ref);
TAI_ROWS_DECL(tai_k_rows_q8_k_ref);
TAI_ROWS_DECL(tai_k_rows_bf16_ref);

/* A single column's product reads panels shorter than this one at a time
 * (straight on from one panel into the next) rather than several side by
 * side, whose groups of short panels each began with a stall the prefetch
 * distances did not cover: Q8_0 (matmul_avx512.c, Q_SIDE) and the
 * K-quants (matmul_unit_avx512.c, k_run2), measured there. */
#define TAI_SIDE_MIN_PANEL 16384

/* A packed kernel defined as a call of an ISA file's generic product
 * `impl` with a trailing type selector. */
#define TAI_GEMM_ENTRY(name, impl, sel)                                            \
    TAI_GEMM_DECL(name) {                                                          \
        impl(wp, panel_bytes, xp, y, y_stride, n, rows, p0, p1, ncols, sel);       \
    }

/* The last column group (1..7 columns wide), one inlined instance per width
 * so that the column loops unroll: CALL(W) for W = tail. */
#define TAI_TAIL_SWITCH(tail, CALL)                                                \
    switch (tail) {                                                                \
    case 1: CALL(1); break;                                                        \
    case 2: CALL(2); break;                                                        \
    case 3: CALL(3); break;                                                        \
    case 4: CALL(4); break;                                                        \
    case 5: CALL(5); break;                                                        \
    case 6: CALL(6); break;                                                        \
    case 7: CALL(7); break;                                                        \
    default: break;                                                                \
    }

/* Packed kernels, named tai_k_gemm_<type>_<isa>; registry.c lists them. */
#define TAI_GEMM_DECL_ALL(isa)              \
    TAI_GEMM_DECL(tai_k_gemm_f32_##isa);    \
    TAI_GEMM_DECL(tai_k_gemm_f16_##isa);    \
    TAI_GEMM_DECL(tai_k_gemm_q4_0_##isa);   \
    TAI_GEMM_DECL(tai_k_gemm_q4_1_##isa);   \
    TAI_GEMM_DECL(tai_k_gemm_q8_0_##isa);   \
    TAI_GEMM_DECL(tai_k_gemm_q5_0_##isa);   \
    TAI_GEMM_DECL(tai_k_gemm_q5_1_##isa);   \
    TAI_GEMM_DECL(tai_k_gemm_iq4_nl_##isa); \
    TAI_GEMM_DECL(tai_k_gemm_q2_k_##isa);   \
    TAI_GEMM_DECL(tai_k_gemm_q3_k_##isa);   \
    TAI_GEMM_DECL(tai_k_gemm_q4_k_##isa);   \
    TAI_GEMM_DECL(tai_k_gemm_q5_k_##isa);   \
    TAI_GEMM_DECL(tai_k_gemm_q6_k_##isa);   \
    TAI_GEMM_DECL(tai_k_gemm_q8_k_##isa);   \
    TAI_GEMM_DECL(tai_k_gemm_bf16_##isa)

TAI_GEMM_DECL_ALL(scalar); /* portable C (matmul_scalar.c, matmul_unit.c) */
#if defined(__x86_64__)
TAI_GEMM_DECL_ALL(avx2);   /* AVX2 + FMA + F16C (matmul_avx2.c) */
TAI_GEMM_DECL_ALL(avx512); /* AVX-512 F/BW/VL/DQ + VNNI (matmul_avx512.c) */

/* Attention, SwiGLU and GeGLU of the AVX2 and AVX-512 files (contracts of
 * tai_attention, tai_silu_mul and tai_gelu_mul). */
void tai_k_attention_avx2(float *out, const float *q, const float *k_cache,
                          const float *v_cache, int64_t n_pos, int64_t kv_stride, int n_head,
                          int n_kv_head, int head_dim, float *att);
void tai_k_silu_mul_avx2(float *gate, const float *up, int64_t n);
void tai_k_gelu_mul_avx2(float *gate, const float *up, int64_t n);
void tai_k_add_avx2(float *x, const float *d, int64_t n);
void tai_k_attention_avx512(float *out, const float *q, const float *k_cache,
                            const float *v_cache, int64_t n_pos, int64_t kv_stride, int n_head,
                            int n_kv_head, int head_dim, float *att);
void tai_k_silu_mul_avx512(float *gate, const float *up, int64_t n);
void tai_k_gelu_mul_avx512(float *gate, const float *up, int64_t n);
void tai_k_add_avx512(float *x, const float *d, int64_t n);
int64_t tai_k_argmax_avx512(const float *x, int64_t n);
/* Over binary16 caches (tai_attention_f16), and the conversion into them
 * (tai_f32_to_f16_row, bit for bit). */
void tai_k_attention_f16_avx2(float *out, const float *q, const uint16_t *k_cache,
                              const uint16_t *v_cache, int64_t n_pos, int64_t kv_stride,
                              int n_head, int n_kv_head, int head_dim, float *att);
void tai_k_attention_f16_avx512(float *out, const float *q, const uint16_t *k_cache,
                                const uint16_t *v_cache, int64_t n_pos, int64_t kv_stride,
                                int n_head, int n_kv_head, int head_dim, float *att);
void tai_k_attention_all_avx512(float *out, const float *q, const float *k_cache,
                                const float *v_cache, int64_t n_pos, int64_t kv_stride, int n_head,
                                int n_kv_head, int head_dim, float *att);
void tai_k_attention_f16_all_avx512(float *out, const float *q, const uint16_t *k_cache,
                                    const uint16_t *v_cache, int64_t n_pos, int64_t kv_stride,
                                    int n_head, int n_kv_head, int head_dim, float *att);
void tai_k_attention_multi_avx512(float *out, const float *q, int64_t qd, const void *k_cache,
                                  const void *v_cache, int kind, int64_t n_pos0, int nq,
                                  int64_t kv_stride, int n_head, int n_kv_head, int head_dim,
                                  float *att, int64_t att_per_q);
/* Over 8-bit caches (tai_attention_q8, tai_attention_q8_all). */
void tai_k_attention_q8_avx512(float *out, const float *q, const int8_t *k_cache,
                               const float *k_scale, const int8_t *v_cache, const float *v_scale,
                               int64_t n_pos, int64_t kv_stride, int n_head, int n_kv_head,
                               int head_dim, float *att);
void tai_k_attention_q8_all_avx512(float *out, const float *q, const int8_t *k_cache,
                                   const float *k_scale, const int8_t *v_cache,
                                   const float *v_scale, int64_t n_pos, int64_t kv_stride,
                                   int n_head, int n_kv_head, int head_dim, float *att);
void tai_k_f32_to_f16_avx2(const float *src, uint16_t *dst, int64_t n);
void tai_k_f32_to_f16_avx512(const float *src, uint16_t *dst, int64_t n);
/* Activation quantization (contract of tai_quantize_row_q8a, bit for bit). */
void tai_k_quantize_q8a_avx2(const float *src, tai_block_q8a *dst, int64_t n);
void tai_k_quantize_q8a_avx512(const float *src, tai_block_q8a *dst, int64_t n);
void tai_k_quantize_q8k_avx512(const float *src, tai_block_q8_k *dst, int64_t n);

/* AMX (matmul_amx.c): the block types' blocked loop on tiles, for the
 * AVX-512 kernels. tai_k_amx_ready: the CPU has AMX-INT8 and the process
 * was granted its tile state (asked once), and it is not switched off;
 * tai_k_amx_set_disabled switches it off or on again (benchmarks and tests
 * compare the two). A thread brackets its tile work with begin / end. */
int tai_k_amx_ready(void);
/* ldtilecfg's 64 bytes (palette 1: up to 8 tiles of `rows` x `colsb`). */
typedef struct {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((packed)) tai_tilecfg;
void tai_k_amx_set_disabled(int disabled);
void tai_k_amx_begin(void);
void tai_k_amx_end(void);
#if defined(__AVX512F__)
#include <immintrin.h>
/* The activations' codes of blocks [0, bl) of two groups of 8 columns
 * (x0, x1: [b][8] blocks; x1 NULL: zeros) side by side for the tiles:
 * xq[b][16][32], 64-byte aligned. */
void tai_k_q_pack_amx(int8_t *xq, const tai_block_q8a *x0, const tai_block_q8a *x1, int64_t bl);
/* codes: the decoded slice (512 bytes a block); for Q8_0 (T 0) `panel`,
 * when not NULL, is the packed panel, whose blocks pb0 + b are read in
 * place instead (their codes already are the tiles' layout). */
void tai_k_q_tile_amx(const uint8_t *codes, const uint8_t *panel, int64_t pb0, const float *dwf,
                      const float *mwf, const int8_t *xq, const tai_block_q8a *x0,
                      const tai_block_q8a *x1, int64_t bl, float *y, int64_t ys, int64_t row0,
                      __mmask16 mk, int first, int T, const char *pf, size_t pf_bytes);
#endif
#endif

#ifdef __cplusplus
}
#endif

#endif /* TAI_KERNELS_KERNELS_INTERNAL_H */
