/*
 * kernels/matmul_avx2.c: AVX2 + FMA + F16C row-range product kernels (layer:
 * kernels). Compiled alone with those flags (see BUILD); only called when
 * tai_isa_supported(TAI_ISA_AVX2). The math is exactly matmul_ref.c's; only
 * the float summation order differs.
 *
 * Shape of every kernel: for each row r in [r0, r1), the columns are taken
 * four at a time (one decode of each weight block serves four columns, and
 * the weight row stays in L1 while the columns go by), then one at a time.
 *
 * Block types handle one 32-element block per 256-bit vector. Integer dot
 * products use vpmaddubsw (unsigned x signed bytes -> int16 pair sums) then
 * vpmaddwd with ones (-> int32 sums of four). Pair sums cannot saturate:
 * |u| <= 128 and |s| <= 127 give at most 2 * 128 * 127 = 32512 < 32767.
 */
#include "kernels/kernels_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

static inline float fp16(uint16_t h) { return _cvtsh_ss(h); }

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __m256i bytes1(const int8_t *p) {
    return _mm256_loadu_si256((const __m256i *)p);
}

/* The 32 nibbles of a 4-bit block as bytes in element order: element j is
 * the low nibble of qs[j], element j + 16 the high nibble. */
static inline __m256i nibbles1(const uint8_t *qs) {
    __m128i v = _mm_loadu_si128((const __m128i *)qs);
    __m256i both = _mm256_set_m128i(_mm_srli_epi16(v, 4), v);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

/* Unsigned x signed bytes, summed in groups of four into 8 int32 lanes. */
static inline __m256i dot_us(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* ---- F32: y = sum_k w[k] * x[k] ----------------------------------------- */

static float f32_dot1(const float *w, const float *x, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (int64_t k = 0; k < n; k += 32) { /* n % 32 == 0 */
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(x + k), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 8), _mm256_loadu_ps(x + k + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 16), _mm256_loadu_ps(x + k + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 24), _mm256_loadu_ps(x + k + 24), a3);
    }
    return hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

static void f32_dot4(const float *w, const float *const x[4], int64_t n, float out[4]) {
    __m256 a[4][2];
    for (int c = 0; c < 4; c++) a[c][0] = a[c][1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < n; k += 16) {
        __m256 w0 = _mm256_loadu_ps(w + k), w1 = _mm256_loadu_ps(w + k + 8);
        #pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            a[c][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[c] + k), a[c][0]);
            a[c][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[c] + k + 8), a[c][1]);
        }
    }
    for (int c = 0; c < 4; c++) out[c] = hsum(_mm256_add_ps(a[c][0], a[c][1]));
}

/* ---- F16: as F32 with the weights widened by vcvtph2ps ------------------ */

static inline __m256 ld_f16(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static float f16_dot1(const uint16_t *w, const float *x, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (int64_t k = 0; k < n; k += 32) {
        a0 = _mm256_fmadd_ps(ld_f16(w + k), _mm256_loadu_ps(x + k), a0);
        a1 = _mm256_fmadd_ps(ld_f16(w + k + 8), _mm256_loadu_ps(x + k + 8), a1);
        a2 = _mm256_fmadd_ps(ld_f16(w + k + 16), _mm256_loadu_ps(x + k + 16), a2);
        a3 = _mm256_fmadd_ps(ld_f16(w + k + 24), _mm256_loadu_ps(x + k + 24), a3);
    }
    return hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

static void f16_dot4(const uint16_t *w, const float *const x[4], int64_t n, float out[4]) {
    __m256 a[4][2];
    for (int c = 0; c < 4; c++) a[c][0] = a[c][1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < n; k += 16) {
        __m256 w0 = ld_f16(w + k), w1 = ld_f16(w + k + 8);
        #pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            a[c][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[c] + k), a[c][0]);
            a[c][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[c] + k + 8), a[c][1]);
        }
    }
    for (int c = 0; c < 4; c++) out[c] = hsum(_mm256_add_ps(a[c][0], a[c][1]));
}

/* ---- Integer block products, one block -> 8 int32 partial sums ----------- */

/* Q8_0: signed x signed as |qw| * (qx with qw's sign). |-128| reads as
 * unsigned 128, so every int8 weight works. */
static inline __m256i q8_0_prod(__m256i wq, __m256i xq) {
    return dot_us(_mm256_abs_epi8(wq), _mm256_sign_epi8(xq, wq));
}

/* Q4_0: sum((q - 8) * qx) = sum(q * qx) - sum(8 * qx), subtracted on the
 * int16 pair sums (each at most 2 * 15 * 127), widened once. */
static inline __m256i q4_0_prod(__m256i wq, __m256i xq) {
    __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(wq, xq),
                                 _mm256_maddubs_epi16(_mm256_set1_epi8(8), xq));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* Q4_1: q is already unsigned. */
static inline __m256i q4_1_prod(__m256i wq, __m256i xq) { return dot_us(wq, xq); }

static inline __m256 fma_block(__m256i p, float scale, __m256 acc) {
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(scale), acc);
}

/* ---- Q8_0 / Q4_0 / Q4_1 dot products ------------------------------------- */

static float q8_0_dot1(const tai_block_q8_0 *w, const tai_block_q8a *x, int64_t nb) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        a0 = fma_block(q8_0_prod(bytes1(w[b].qs), bytes1(x[b].qs)),
                       fp16(w[b].d) * x[b].d, a0);
        a1 = fma_block(q8_0_prod(bytes1(w[b + 1].qs), bytes1(x[b + 1].qs)),
                       fp16(w[b + 1].d) * x[b + 1].d, a1);
    }
    if (b < nb)
        a0 = fma_block(q8_0_prod(bytes1(w[b].qs), bytes1(x[b].qs)), fp16(w[b].d) * x[b].d, a0);
    return hsum(_mm256_add_ps(a0, a1));
}

static void q8_0_dot4(const tai_block_q8_0 *w, const tai_block_q8a *const x[4],
                      int64_t nb, float out[4]) {
    __m256 a[4];
    for (int c = 0; c < 4; c++) a[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i wq = bytes1(w[b].qs); /* decoded once for four columns */
        __m256i wabs = _mm256_abs_epi8(wq);
        float d = fp16(w[b].d);
        #pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            __m256i p = dot_us(wabs, _mm256_sign_epi8(bytes1(x[c][b].qs), wq));
            a[c] = fma_block(p, d * x[c][b].d, a[c]);
        }
    }
    for (int c = 0; c < 4; c++) out[c] = hsum(a[c]);
}

static float q4_0_dot1(const tai_block_q4_0 *w, const tai_block_q8a *x, int64_t nb) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        a0 = fma_block(q4_0_prod(nibbles1(w[b].qs), bytes1(x[b].qs)),
                       fp16(w[b].d) * x[b].d, a0);
        a1 = fma_block(q4_0_prod(nibbles1(w[b + 1].qs), bytes1(x[b + 1].qs)),
                       fp16(w[b + 1].d) * x[b + 1].d, a1);
    }
    if (b < nb)
        a0 = fma_block(q4_0_prod(nibbles1(w[b].qs), bytes1(x[b].qs)), fp16(w[b].d) * x[b].d, a0);
    return hsum(_mm256_add_ps(a0, a1));
}

static void q4_0_dot4(const tai_block_q4_0 *w, const tai_block_q8a *const x[4],
                      int64_t nb, float out[4]) {
    __m256 a[4];
    for (int c = 0; c < 4; c++) a[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i wq = nibbles1(w[b].qs);
        float d = fp16(w[b].d);
        #pragma GCC unroll 4
        for (int c = 0; c < 4; c++)
            a[c] = fma_block(q4_0_prod(wq, bytes1(x[c][b].qs)), d * x[c][b].d, a[c]);
    }
    for (int c = 0; c < 4; c++) out[c] = hsum(a[c]);
}

static float q4_1_dot1(const tai_block_q4_1 *w, const tai_block_q8a *x, int64_t nb) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    float m0 = 0.0f, m1 = 0.0f;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        a0 = fma_block(q4_1_prod(nibbles1(w[b].qs), bytes1(x[b].qs)),
                       fp16(w[b].d) * x[b].d, a0);
        a1 = fma_block(q4_1_prod(nibbles1(w[b + 1].qs), bytes1(x[b + 1].qs)),
                       fp16(w[b + 1].d) * x[b + 1].d, a1);
        m0 += fp16(w[b].m) * x[b].s;
        m1 += fp16(w[b + 1].m) * x[b + 1].s;
    }
    if (b < nb) {
        a0 = fma_block(q4_1_prod(nibbles1(w[b].qs), bytes1(x[b].qs)), fp16(w[b].d) * x[b].d, a0);
        m0 += fp16(w[b].m) * x[b].s;
    }
    return hsum(_mm256_add_ps(a0, a1)) + (m0 + m1);
}

static void q4_1_dot4(const tai_block_q4_1 *w, const tai_block_q8a *const x[4],
                      int64_t nb, float out[4]) {
    __m256 a[4];
    float m[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int c = 0; c < 4; c++) a[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i wq = nibbles1(w[b].qs);
        float d = fp16(w[b].d), mw = fp16(w[b].m);
        #pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            a[c] = fma_block(q4_1_prod(wq, bytes1(x[c][b].qs)), d * x[c][b].d, a[c]);
            m[c] += mw * x[c][b].s;
        }
    }
    for (int c = 0; c < 4; c++) out[c] = hsum(a[c]) + m[c];
}

/* ---- Row drivers: rows outer, columns inner (four, then one at a time) -- */

ROWS_DRIVER(tai_k_rows_f32_avx2, float, float, n, f32_dot1, f32_dot4)
ROWS_DRIVER(tai_k_rows_f16_avx2, uint16_t, float, n, f16_dot1, f16_dot4)
ROWS_DRIVER(tai_k_rows_q8_0_avx2, tai_block_q8_0, tai_block_q8a, n / TAI_QK, q8_0_dot1, q8_0_dot4)
ROWS_DRIVER(tai_k_rows_q4_0_avx2, tai_block_q4_0, tai_block_q8a, n / TAI_QK, q4_0_dot1, q4_0_dot4)
ROWS_DRIVER(tai_k_rows_q4_1_avx2, tai_block_q4_1, tai_block_q8a, n / TAI_QK, q4_1_dot1, q4_1_dot4)

#else
/* Not x86-64: nothing to compile; registry.c leaves these slots unsupported. */
typedef int tai_no_x86_kernels;
#endif /* __x86_64__ */
