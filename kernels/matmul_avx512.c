/*
 * kernels/matmul_avx512.c: AVX-512 (F/BW/VL/DQ + VNNI) row-range product
 * kernels (layer: kernels). Compiled alone with the AVX-512 flags (see BUILD);
 * only called when tai_isa_supported(TAI_ISA_AVX512). The math is exactly
 * matmul_ref.c's; only the float summation order differs.
 *
 * Shape of every kernel: for each row r in [r0, r1), the columns are taken
 * four at a time (one decode of each weight block serves four columns, and
 * the weight row stays in L1 while the columns go by), then one at a time.
 *
 * Block types handle two 32-element blocks per 512-bit vector: bytes 0..31
 * are block b, bytes 32..63 block b + 1. VNNI's vpdpbusd multiplies unsigned
 * by signed bytes and adds groups of four into int32 lanes, so lanes 0..7
 * hold partial sums of block b and lanes 8..15 those of block b + 1; they are
 * converted to float and multiplied by a vector holding each block's
 * d_w * d_x in its own half. An odd last block uses the same code with a
 * zeroed upper half.
 */
#include "kernels/kernels_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

static inline float fp16(uint16_t h) { return _cvtsh_ss(h); }

/* Two block scales, s0 in lanes 0..7 and s1 in lanes 8..15. */
static inline __m512 scale2(float s0, float s1) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(s0)),
                              _mm256_set1_ps(s1), 1);
}

/* 32 bytes of block a in the low half, of block b (or zero) in the high. */
static inline __m512i bytes2(const void *a, const void *b) {
    __m512i lo = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)a));
    if (b == NULL) return lo;
    return _mm512_inserti64x4(lo, _mm256_loadu_si256((const __m256i *)b), 1);
}

/* Nibbles of one or two 4-bit blocks as bytes 0..15 in element order:
 * element j of a block is the low nibble of qs[j], element j + 16 the high
 * nibble. Lanes (128-bit) become [a, a >> 4, b, b >> 4] & 0x0f. */
static inline __m512i nibbles2(const uint8_t *a, const uint8_t *b) {
    __m256i va = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)a));
    __m256i vb = b ? _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)b))
                   : _mm256_setzero_si256();
    __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(va), vb, 1);
    v = _mm512_mask_srli_epi64(v, 0xcc, v, 4); /* qwords 2,3,6,7: lanes 1, 3 */
    return _mm512_and_si512(v, _mm512_set1_epi8(0x0f));
}

/* ---- F32: y = sum_k w[k] * x[k] ----------------------------------------- */

static float f32_dot1(const float *w, const float *x, int64_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 64 <= n; k += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + k), _mm512_loadu_ps(x + k), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + k + 16), _mm512_loadu_ps(x + k + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + k + 32), _mm512_loadu_ps(x + k + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + k + 48), _mm512_loadu_ps(x + k + 48), a3);
    }
    for (; k < n; k += 16) /* n % 32 == 0, so whole vectors remain */
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + k), _mm512_loadu_ps(x + k), a0);
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

static void f32_dot4(const float *w, const float *const x[4], int64_t n, float out[4]) {
    __m512 a[4][2];
    for (int c = 0; c < 4; c++) a[c][0] = a[c][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < n; k += 32) {
        __m512 w0 = _mm512_loadu_ps(w + k), w1 = _mm512_loadu_ps(w + k + 16);
        #pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            a[c][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x[c] + k), a[c][0]);
            a[c][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x[c] + k + 16), a[c][1]);
        }
    }
    for (int c = 0; c < 4; c++) out[c] = _mm512_reduce_add_ps(_mm512_add_ps(a[c][0], a[c][1]));
}

/* ---- F16: as F32 with the weights widened by vcvtph2ps ------------------ */

static inline __m512 ld_f16(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

static float f16_dot1(const uint16_t *w, const float *x, int64_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 64 <= n; k += 64) {
        a0 = _mm512_fmadd_ps(ld_f16(w + k), _mm512_loadu_ps(x + k), a0);
        a1 = _mm512_fmadd_ps(ld_f16(w + k + 16), _mm512_loadu_ps(x + k + 16), a1);
        a2 = _mm512_fmadd_ps(ld_f16(w + k + 32), _mm512_loadu_ps(x + k + 32), a2);
        a3 = _mm512_fmadd_ps(ld_f16(w + k + 48), _mm512_loadu_ps(x + k + 48), a3);
    }
    for (; k < n; k += 16)
        a0 = _mm512_fmadd_ps(ld_f16(w + k), _mm512_loadu_ps(x + k), a0);
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

static void f16_dot4(const uint16_t *w, const float *const x[4], int64_t n, float out[4]) {
    __m512 a[4][2];
    for (int c = 0; c < 4; c++) a[c][0] = a[c][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < n; k += 32) {
        __m512 w0 = ld_f16(w + k), w1 = ld_f16(w + k + 16);
        #pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            a[c][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x[c] + k), a[c][0]);
            a[c][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x[c] + k + 16), a[c][1]);
        }
    }
    for (int c = 0; c < 4; c++) out[c] = _mm512_reduce_add_ps(_mm512_add_ps(a[c][0], a[c][1]));
}

/* ---- Q8_0: d_w * d_x * sum(qw * qx) ------------------------------------- */

/* Signed x signed with vpdpbusd (unsigned x signed): |qw| * (qx negated
 * where qw < 0). |-128| = 0x80 is 128 read unsigned, so every int8 weight
 * works; qx is never -128 (q8a is within +-127), so negating it is safe. */
static inline __m512i q8_0_prod(__m512i wabs, __mmask64 wneg, __m512i xq) {
    __m512i zero = _mm512_setzero_si512();
    return _mm512_dpbusd_epi32(zero, wabs, _mm512_mask_sub_epi8(xq, wneg, zero, xq));
}

/* Adds blocks [b, b + 1] (or just b when `two` is 0) of one column. */
static inline __m512 q8_0_step(const tai_block_q8_0 *w, const tai_block_q8a *x,
                               int64_t b, int two, __m512 acc) {
    __m512i wq = bytes2(w[b].qs, two ? w[b + 1].qs : NULL);
    __m512i xq = bytes2(x[b].qs, two ? x[b + 1].qs : NULL);
    __m512i p = q8_0_prod(_mm512_abs_epi8(wq), _mm512_movepi8_mask(wq), xq);
    float s0 = fp16(w[b].d) * x[b].d;
    float s1 = two ? fp16(w[b + 1].d) * x[b + 1].d : 0.0f;
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), scale2(s0, s1), acc);
}

static float q8_0_dot1(const tai_block_q8_0 *w, const tai_block_q8a *x, int64_t nb) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
        a0 = q8_0_step(w, x, b, 1, a0);
        a1 = q8_0_step(w, x, b + 2, 1, a1);
    }
    for (; b + 2 <= nb; b += 2) a0 = q8_0_step(w, x, b, 1, a0);
    if (b < nb) a1 = q8_0_step(w, x, b, 0, a1);
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

/* Blocks [b, b + 1] (or b alone) of four columns; each weight block is
 * decoded once for the four. */
static inline void q8_0_step4(const tai_block_q8_0 *w, const tai_block_q8a *const x[4],
                              int64_t b, int two, __m512 a[4]) {
    __m512i wq = bytes2(w[b].qs, two ? w[b + 1].qs : NULL);
    __m512i wabs = _mm512_abs_epi8(wq);
    __mmask64 wneg = _mm512_movepi8_mask(wq);
    float d0 = fp16(w[b].d), d1 = two ? fp16(w[b + 1].d) : 0.0f;
    #pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        const tai_block_q8a *xc = x[c];
        __m512i p = q8_0_prod(wabs, wneg, bytes2(xc[b].qs, two ? xc[b + 1].qs : NULL));
        __m512 s = scale2(d0 * xc[b].d, two ? d1 * xc[b + 1].d : 0.0f);
        a[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), s, a[c]);
    }
}

static void q8_0_dot4(const tai_block_q8_0 *w, const tai_block_q8a *const x[4],
                      int64_t nb, float out[4]) {
    __m512 a[4];
    for (int c = 0; c < 4; c++) a[c] = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) q8_0_step4(w, x, b, 1, a);
    if (b < nb) q8_0_step4(w, x, b, 0, a);
    for (int c = 0; c < 4; c++) out[c] = _mm512_reduce_add_ps(a[c]);
}

/* ---- Q4_0: d_w * d_x * sum((q - 8) * qx) = d_w * d_x * (sum(q * qx) - sum(8 * qx))
 * Both sums are exact int32 vpdpbusd results (q and 8 are unsigned bytes). */

static inline __m512i q4_0_prod(__m512i wq, __m512i xq) {
    __m512i zero = _mm512_setzero_si512();
    return _mm512_sub_epi32(_mm512_dpbusd_epi32(zero, wq, xq),
                            _mm512_dpbusd_epi32(zero, _mm512_set1_epi8(8), xq));
}

static inline __m512 q4_0_step(const tai_block_q4_0 *w, const tai_block_q8a *x,
                               int64_t b, int two, __m512 acc) {
    __m512i wq = nibbles2(w[b].qs, two ? w[b + 1].qs : NULL);
    __m512i xq = bytes2(x[b].qs, two ? x[b + 1].qs : NULL);
    float s0 = fp16(w[b].d) * x[b].d;
    float s1 = two ? fp16(w[b + 1].d) * x[b + 1].d : 0.0f;
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(q4_0_prod(wq, xq)), scale2(s0, s1), acc);
}

static float q4_0_dot1(const tai_block_q4_0 *w, const tai_block_q8a *x, int64_t nb) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
        a0 = q4_0_step(w, x, b, 1, a0);
        a1 = q4_0_step(w, x, b + 2, 1, a1);
    }
    for (; b + 2 <= nb; b += 2) a0 = q4_0_step(w, x, b, 1, a0);
    if (b < nb) a1 = q4_0_step(w, x, b, 0, a1);
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

static inline void q4_0_step4(const tai_block_q4_0 *w, const tai_block_q8a *const x[4],
                              int64_t b, int two, __m512 a[4]) {
    __m512i wq = nibbles2(w[b].qs, two ? w[b + 1].qs : NULL);
    float d0 = fp16(w[b].d), d1 = two ? fp16(w[b + 1].d) : 0.0f;
    #pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        const tai_block_q8a *xc = x[c];
        __m512i p = q4_0_prod(wq, bytes2(xc[b].qs, two ? xc[b + 1].qs : NULL));
        __m512 s = scale2(d0 * xc[b].d, two ? d1 * xc[b + 1].d : 0.0f);
        a[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), s, a[c]);
    }
}

static void q4_0_dot4(const tai_block_q4_0 *w, const tai_block_q8a *const x[4],
                      int64_t nb, float out[4]) {
    __m512 a[4];
    for (int c = 0; c < 4; c++) a[c] = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) q4_0_step4(w, x, b, 1, a);
    if (b < nb) q4_0_step4(w, x, b, 0, a);
    for (int c = 0; c < 4; c++) out[c] = _mm512_reduce_add_ps(a[c]);
}

/* ---- Q4_1: d_w * d_x * sum(q * qx) + m_w * s_x -------------------------- */

static inline __m512 q4_1_step(const tai_block_q4_1 *w, const tai_block_q8a *x,
                               int64_t b, int two, __m512 acc, float *msum) {
    __m512i wq = nibbles2(w[b].qs, two ? w[b + 1].qs : NULL);
    __m512i xq = bytes2(x[b].qs, two ? x[b + 1].qs : NULL);
    __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq, xq);
    float s0 = fp16(w[b].d) * x[b].d;
    float s1 = 0.0f;
    *msum += fp16(w[b].m) * x[b].s;
    if (two) {
        s1 = fp16(w[b + 1].d) * x[b + 1].d;
        *msum += fp16(w[b + 1].m) * x[b + 1].s;
    }
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), scale2(s0, s1), acc);
}

static float q4_1_dot1(const tai_block_q4_1 *w, const tai_block_q8a *x, int64_t nb) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    float m0 = 0.0f, m1 = 0.0f;
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
        a0 = q4_1_step(w, x, b, 1, a0, &m0);
        a1 = q4_1_step(w, x, b + 2, 1, a1, &m1);
    }
    for (; b + 2 <= nb; b += 2) a0 = q4_1_step(w, x, b, 1, a0, &m0);
    if (b < nb) a1 = q4_1_step(w, x, b, 0, a1, &m1);
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) + (m0 + m1);
}

static inline void q4_1_step4(const tai_block_q4_1 *w, const tai_block_q8a *const x[4],
                              int64_t b, int two, __m512 a[4], float m[4]) {
    __m512i wq = nibbles2(w[b].qs, two ? w[b + 1].qs : NULL);
    float d0 = fp16(w[b].d), d1 = two ? fp16(w[b + 1].d) : 0.0f;
    float m0 = fp16(w[b].m), m1 = two ? fp16(w[b + 1].m) : 0.0f;
    #pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        const tai_block_q8a *xc = x[c];
        __m512i xq = bytes2(xc[b].qs, two ? xc[b + 1].qs : NULL);
        __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq, xq);
        __m512 s = scale2(d0 * xc[b].d, two ? d1 * xc[b + 1].d : 0.0f);
        a[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), s, a[c]);
        m[c] += m0 * xc[b].s + (two ? m1 * xc[b + 1].s : 0.0f);
    }
}

static void q4_1_dot4(const tai_block_q4_1 *w, const tai_block_q8a *const x[4],
                      int64_t nb, float out[4]) {
    __m512 a[4];
    float m[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int c = 0; c < 4; c++) a[c] = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) q4_1_step4(w, x, b, 1, a, m);
    if (b < nb) q4_1_step4(w, x, b, 0, a, m);
    for (int c = 0; c < 4; c++) out[c] = _mm512_reduce_add_ps(a[c]) + m[c];
}

/* ---- Row drivers: rows outer, columns inner (four, then one at a time) -- */

ROWS_DRIVER(tai_k_rows_f32_avx512, float, float, n, f32_dot1, f32_dot4)
ROWS_DRIVER(tai_k_rows_f16_avx512, uint16_t, float, n, f16_dot1, f16_dot4)
ROWS_DRIVER(tai_k_rows_q8_0_avx512, tai_block_q8_0, tai_block_q8a, n / TAI_QK, q8_0_dot1, q8_0_dot4)
ROWS_DRIVER(tai_k_rows_q4_0_avx512, tai_block_q4_0, tai_block_q8a, n / TAI_QK, q4_0_dot1, q4_0_dot4)
ROWS_DRIVER(tai_k_rows_q4_1_avx512, tai_block_q4_1, tai_block_q8a, n / TAI_QK, q4_1_dot1, q4_1_dot4)

#else
/* Not x86-64: nothing to compile; registry.c leaves these slots unsupported. */
typedef int tai_no_x86_kernels;
#endif /* __x86_64__ */
