/*
 * kernels/matmul_unit_avx512.c: AVX-512 (VNNI) products of the unit-packed
 * types (Q5_0, Q5_1, IQ4_NL, the K-quants; core/types.h "Unit-packed
 * weights") and of BF16 (layer: kernels). Compiled alone with the AVX-512
 * flags; the arithmetic is matmul_unit.c's, step for step.
 *
 * A sub-block's codes become eight vectors of unsigned bytes (vector g:
 * elements 4g..4g+3 of the 16 rows) with a few shifts and masks per plane
 * (IQ4_NL's through a byte shuffle of its table); vpdpbusd multiplies them
 * by the column's q8a bytes, four per 32-bit lane, in two chains per half
 * of 16 elements. The halves' integer scales multiply the sums (vpmulld),
 * the code bias is taken off with the activations' half sums (computed
 * once per column and K slice, not per panel), and the float steps follow.
 *
 * The loop: K in slices whose activations stay in L2 (every column's half
 * sums on the stack), panels one after the other (two side by side for a
 * single column: two streams), columns four at a time, each panel's units
 * front to back with the tuned software prefetch. A column's result is one
 * chain of float operations over K in order whatever the number of
 * columns (the slices store and reload partial sums exactly).
 */
#include "kernels/kernels_internal.h"
#include "kernels/unit_traits.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))

INLINE __mmask16 row_mask(int64_t rows, int64_t p) {
    int64_t v = rows - p * TAI_PANEL;
    return v >= TAI_PANEL ? (__mmask16)0xffff : (__mmask16)((1u << v) - 1u);
}

/* Q4_K: the odd code vectors hold the high nibbles as 16 times their value
 * (one AND instead of a shift and an AND; their sums are divided by 16 at
 * the end, exactly), and the halves are summed together (one scale per
 * sub-block). */
INLINE int x16(int T) { return T == TAI_TYPE_Q4_K; }

/* Bit `from` of every byte of v moved to bit `to` (the rest of the byte
 * cleared). 16-bit shifts are exact here: no bit crosses into the
 * neighbouring byte's kept bit. */
INLINE __m512i bit_to(__m512i v, int from, int to) {
    const __m512i s = from < to ? _mm512_slli_epi16(v, (unsigned)(to - from))
                    : from > to ? _mm512_srli_epi16(v, (unsigned)(from - to))
                                : v;
    return _mm512_and_si512(s, _mm512_set1_epi8((char)(1 << to)));
}

/* The eight code vectors of sub-block s of unit u. */
INLINE void sub_codes(const uint8_t *u, const tai_unit_layout *L, int s, int T, __m512i wv[8]) {
    const int C = u_codes(T), H = u_high(T);
    if (C == TAI_UNIT_BYTE) {
        const uint8_t *c = u + tai_unit_codes_at(L, s);
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) wv[g] = _mm512_load_si512(c + 64 * g);
        return;
    }
    __m512i h0 = _mm512_setzero_si512(), h1 = h0;
    if (H >= 1) h0 = _mm512_load_si512(u + tai_unit_high_at(L, s, 0));
    if (H == 2) h1 = _mm512_load_si512(u + tai_unit_high_at(L, s, 1));
    if (C == TAI_UNIT_TWO) {
        const uint8_t *c = u + tai_unit_codes_at(L, s);
        const __m512i a = _mm512_load_si512(c), b = _mm512_load_si512(c + 64);
        const __m512i m3 = _mm512_set1_epi8(3);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            wv[2 * j] = _mm512_and_si512(_mm512_srli_epi16(a, (unsigned)(2 * j)), m3);
            wv[2 * j + 1] = _mm512_and_si512(_mm512_srli_epi16(b, (unsigned)(2 * j)), m3);
            if (H) {
                wv[2 * j] = _mm512_or_si512(wv[2 * j], bit_to(h0, 2 * j, 2));
                wv[2 * j + 1] = _mm512_or_si512(wv[2 * j + 1], bit_to(h0, 2 * j + 1, 2));
            }
        }
        return;
    }
    const uint8_t *c = u + tai_unit_codes_at(L, s);
    const __m512i m15 = _mm512_set1_epi8(15);
    if (x16(T)) { /* high nibbles left in place, as 16 times their value */
        const __m512i m240 = _mm512_set1_epi8((char)0xf0);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const __m512i v = _mm512_load_si512(c + 64 * j);
            wv[2 * j] = _mm512_and_si512(v, m15);
            wv[2 * j + 1] = _mm512_and_si512(v, m240);
        }
        return;
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        const __m512i v = _mm512_load_si512(c + 64 * j);
        __m512i lo = _mm512_and_si512(v, m15), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m15);
        if (H >= 1) {
            lo = _mm512_or_si512(lo, bit_to(h0, 2 * j, 4));
            hi = _mm512_or_si512(hi, bit_to(h0, 2 * j + 1, 4));
        }
        if (H == 2) {
            lo = _mm512_or_si512(lo, bit_to(h1, 2 * j, 5));
            hi = _mm512_or_si512(hi, bit_to(h1, 2 * j + 1, 5));
        }
        if (T == TAI_TYPE_IQ4_NL) {
            /* the table's values + 128 as unsigned bytes, in every lane */
            const __m512i lut = _mm512_broadcast_i32x4(_mm_setr_epi8(
                1, 24, 45, 63, 79, 93, 106, 118, (char)129, (char)141, (char)153, (char)166,
                (char)181, (char)197, (char)217, (char)241));
            lo = _mm512_shuffle_epi8(lut, lo);
            hi = _mm512_shuffle_epi8(lut, hi);
        }
        wv[2 * j] = lo;
        wv[2 * j + 1] = hi;
    }
}

/* The integer scales (and minimums) of the halves of sub-block s. */
typedef struct {
    __m512i s0, s1, m0, m1;
} sub_scales;

INLINE sub_scales sub_sc(const uint8_t *u, const tai_unit_layout *L, int s, int T,
                         const __m512i k4[3]) {
    sub_scales r;
    const int S = u_scales(T);
    const uint8_t *sc = u + L->scales_at;
    if (S == TAI_UNIT_SC_K4) { /* bytes: [j][r] scales, then [j][r] minimums */
        (void)k4;
        r.s0 = r.s1 = _mm512_cvtepu8_epi32(_mm_load_si128((const __m128i *)(sc + 16 * s)));
        r.m0 = r.m1 = _mm512_cvtepu8_epi32(_mm_load_si128((const __m128i *)(sc + 128 + 16 * s)));
    } else if (S == TAI_UNIT_SC_U8) {
        const __m512i v0 = _mm512_cvtepu8_epi32(_mm_load_si128((const __m128i *)(sc + 32 * s)));
        const __m512i v1 = _mm512_cvtepu8_epi32(_mm_load_si128((const __m128i *)(sc + 32 * s + 16)));
        const __m512i m15 = _mm512_set1_epi32(15);
        r.s0 = _mm512_and_si512(v0, m15);
        r.s1 = _mm512_and_si512(v1, m15);
        r.m0 = _mm512_srli_epi32(v0, 4);
        r.m1 = _mm512_srli_epi32(v1, 4);
    } else if (S == TAI_UNIT_SC_I8) {
        r.s0 = _mm512_cvtepi8_epi32(_mm_load_si128((const __m128i *)(sc + 32 * s)));
        r.s1 = _mm512_cvtepi8_epi32(_mm_load_si128((const __m128i *)(sc + 32 * s + 16)));
        r.m0 = r.m1 = _mm512_setzero_si512();
    } else {
        r.s0 = r.s1 = _mm512_set1_epi32(1);
        r.m0 = r.m1 = _mm512_setzero_si512();
    }
    return r;
}

/* T = S_0 * (isum_0 - B * xs_0) + S_1 * (isum_1 - B * xs_1) for one column. */
INLINE __m512i sub_T(const __m512i wv[8], const tai_block_q8a *a, const int16_t *xs,
                     const sub_scales *sc, int T) {
    const int32_t *aq = (const int32_t *)a->qs;
    if (x16(T)) {
        __m512i lo0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[0], _mm512_set1_epi32(aq[0]));
        __m512i hi0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[1], _mm512_set1_epi32(aq[1]));
        __m512i lo1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[4], _mm512_set1_epi32(aq[4]));
        __m512i hi1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[5], _mm512_set1_epi32(aq[5]));
        lo0 = _mm512_dpbusd_epi32(lo0, wv[2], _mm512_set1_epi32(aq[2]));
        hi0 = _mm512_dpbusd_epi32(hi0, wv[3], _mm512_set1_epi32(aq[3]));
        lo1 = _mm512_dpbusd_epi32(lo1, wv[6], _mm512_set1_epi32(aq[6]));
        hi1 = _mm512_dpbusd_epi32(hi1, wv[7], _mm512_set1_epi32(aq[7]));
        const __m512i t = _mm512_add_epi32(_mm512_add_epi32(lo0, lo1),
                                           _mm512_srai_epi32(_mm512_add_epi32(hi0, hi1), 4));
        (void)xs;
        return _mm512_mullo_epi32(t, sc->s0);
    }
    __m512i c[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) c[k] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int g = 0; g < 8; g++) c[g / 2] = _mm512_dpbusd_epi32(c[g / 2], wv[g], _mm512_set1_epi32(aq[g]));
    __m512i i0 = _mm512_add_epi32(c[0], c[1]), i1 = _mm512_add_epi32(c[2], c[3]);
    const int B = u_bias(T), S = u_scales(T);
    if (S == TAI_UNIT_SC_K4 || S == TAI_UNIT_SC_NONE) {
        __m512i t = _mm512_add_epi32(i0, i1);
        if (B) t = _mm512_sub_epi32(t, _mm512_set1_epi32(B * (xs[0] + xs[1])));
        return S == TAI_UNIT_SC_K4 ? _mm512_mullo_epi32(t, sc->s0) : t;
    }
    if (B) {
        i0 = _mm512_sub_epi32(i0, _mm512_set1_epi32(B * xs[0]));
        i1 = _mm512_sub_epi32(i1, _mm512_set1_epi32(B * xs[1]));
    }
    return _mm512_add_epi32(_mm512_mullo_epi32(i0, sc->s0), _mm512_mullo_epi32(i1, sc->s1));
}

INLINE __m512 ld_h16(const uint8_t *p) { return _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)p)); }

/* One block s of a 64-element unit (un) times W columns, into acc (the
 * K-quants have their own loop, k_run, below). */
INLINE void unit_sub(const uint8_t *un, const tai_unit_layout *L, int s, int64_t b,
                     const tai_block_q8a *x, int64_t gw, const int16_t *xs, int64_t kb,
                     int64_t b0, const __m512i k4[3], __m512 *acc, int W, int T) {
    __m512i wv[8];
    sub_codes(un, L, s, T, wv);
    const sub_scales sc = sub_sc(un, L, s, T, k4);
#pragma GCC unroll 4
    for (int j = 0; j < W; j++) {
        const tai_block_q8a *a = &x[b * gw + j];
        const int16_t *h = xs + (j * kb + (b - b0)) * 2;
        const __m512 f = _mm512_cvtepi32_ps(sub_T(wv, a, h, &sc, T));
        const __m512 dx = _mm512_set1_ps(a->d);
        const __m512 D = ld_h16(un + L->d_at + (size_t)s * 32);
        acc[j] = _mm512_fmadd_ps(_mm512_mul_ps(f, dx), D, acc[j]);
        if (u_min(T))
            acc[j] = _mm512_fmadd_ps(ld_h16(un + L->m_at + (size_t)s * 32), _mm512_set1_ps(a->s), acc[j]);
    }
}

/* Units [u0, u1) of NP panels (at q[0..NP)) times W columns (activation
 * blocks x[b * gw + j], half sums xs[(j * kb + b - b0) * 2]), into acc. */
INLINE void unit_run(const uint8_t *const *q, const tai_unit_layout *L, int64_t u0, int64_t u1,
                     int64_t nb, const tai_block_q8a *x, int64_t gw, const int16_t *xs,
                     const float *xf, int64_t kb, int64_t b0, __m512 acc[][4], int NP, int W, int T,
                     size_t pf1, size_t pf2) {
    (void)xf; /* the blocks of 32 need only the integer half sums */
    const int subs = u_k(T) ? 8 : 2;
    const size_t ub = L->bytes;
    for (int64_t u = u0; u < u1; u++) {
        const int nsub = (int)(nb - u * subs < subs ? nb - u * subs : subs);
#pragma GCC unroll 2
        for (int pi = 0; pi < NP; pi++) {
            const uint8_t *un = q[pi] + (size_t)u * ub;
            if (pf1)
                for (size_t l = 0; l < ub; l += 64) _mm_prefetch((const char *)un + pf1 + l, _MM_HINT_T0);
            if (pf2)
                for (size_t l = 0; l < ub; l += 64) _mm_prefetch((const char *)un + pf2 + l, _MM_HINT_T1);
            __m512i k4[3];
            if (u_scales(T) == TAI_UNIT_SC_K4)
#pragma GCC unroll 3
                for (int w = 0; w < 3; w++) k4[w] = _mm512_load_si512(un + L->scales_at + 64 * w);
            if (nsub == subs) { /* every sub-block: unrolled, its scales' shifts constant */
#pragma GCC unroll 8
                for (int s = 0; s < subs; s++)
                    unit_sub(un, L, s, u * subs + s, x, gw, xs, kb, b0, k4, acc[pi], W, T);
            } else {
                for (int s = 0; s < nsub; s++)
                    unit_sub(un, L, s, u * subs + s, x, gw, xs, kb, b0, k4, acc[pi], W, T);
            }
        }
    }
}

/* One column (decoding), one panel: the same steps as unit_run with W = 1,
 * NP = 1, written out so that the compiler keeps everything in registers
 * (the general loop's arrays spill). */
INLINE __m512 unit_panel_1(const uint8_t *q, const tai_unit_layout *L, int64_t u0, int64_t u1,
                           int64_t nb, const tai_block_q8a *x, const int16_t *xs, const float *xf,
                           int64_t b0, __m512 acc, int T, size_t pf1, size_t pf2) {
    const int subs = u_k(T) ? 8 : 2;
    const size_t ub = L->bytes;
    for (int64_t u = u0; u < u1; u++) {
        const uint8_t *un = q + (size_t)u * ub;
        if (pf1)
            for (size_t l = 0; l < ub; l += 64) _mm_prefetch((const char *)un + pf1 + l, _MM_HINT_T0);
        if (pf2)
            for (size_t l = 0; l < ub; l += 64) _mm_prefetch((const char *)un + pf2 + l, _MM_HINT_T1);
        __m512i k4[3];
        if (u_scales(T) == TAI_UNIT_SC_K4)
            for (int w = 0; w < 3; w++) k4[w] = _mm512_load_si512(un + L->scales_at + 64 * w);
        const int nsub = (int)(nb - u * subs < subs ? nb - u * subs : subs);
        __m512 tD = _mm512_setzero_ps(), tM = _mm512_setzero_ps();
#define SUB(S)                                                                                   \
    do {                                                                                         \
        const int64_t b = u * subs + (S);                                                        \
        __m512i wv[8];                                                                           \
        sub_codes(un, L, (S), T, wv);                                                            \
        const sub_scales sc = sub_sc(un, L, (S), T, k4);                                         \
        const tai_block_q8a *a = &x[b];                                                          \
        const int16_t *h = xs + (b - b0) * 2;                                                    \
        const __m512 f = _mm512_cvtepi32_ps(sub_T(wv, a, h, &sc, T));                           \
        const __m512 dx = _mm512_set1_ps(a->d);                                                  \
        if (u_k(T)) {                                                                            \
            tD = _mm512_fmadd_ps(f, dx, tD);                                                     \
            if (u_min(T)) {                                                                      \
                if (u_scales(T) == TAI_UNIT_SC_K4) {                                             \
                    tM = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sc.m0), _mm512_set1_ps(xf[(b - b0) * 2]), tM); \
                } else {                                                                         \
                    const __m512i mi = _mm512_add_epi32(                                         \
                        _mm512_mullo_epi32(sc.m0, _mm512_set1_epi32(h[0])),                      \
                        _mm512_mullo_epi32(sc.m1, _mm512_set1_epi32(h[1])));                     \
                    tM = _mm512_fmadd_ps(_mm512_cvtepi32_ps(mi), dx, tM);                        \
                }                                                                                \
            }                                                                                    \
        } else {                                                                                 \
            acc = _mm512_fmadd_ps(_mm512_mul_ps(f, dx), ld_h16(un + L->d_at + (size_t)(S) * 32), acc); \
            if (u_min(T))                                                                        \
                acc = _mm512_fmadd_ps(ld_h16(un + L->m_at + (size_t)(S) * 32), _mm512_set1_ps(a->s), acc); \
        }                                                                                        \
    } while (0)
        if (subs == 8) {
            SUB(0); SUB(1); SUB(2); SUB(3); SUB(4); SUB(5); SUB(6); SUB(7);
        } else {
            SUB(0);
            if (nsub > 1) SUB(1);
        }
#undef SUB
        if (u_k(T)) {
            const __m512 D = T == TAI_TYPE_Q8_K ? _mm512_load_ps((const float *)(const void *)(un + L->d_at))
                                                 : ld_h16(un + L->d_at);
            acc = _mm512_fmadd_ps(D, tD, acc);
            if (u_min(T)) acc = _mm512_fnmadd_ps(ld_h16(un + L->m_at), tM, acc);
        }
    }
    return acc;
}

/* The half sums of each column's activation blocks [b0, b0 + kb). */
static void half_sums(const tai_block_q8a *x, int64_t gw, int64_t j, int64_t b0, int64_t kb,
                      int16_t *out, float *outf) {
    for (int64_t b = b0; b < b0 + kb; b++) {
        const __m256i q = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)x[b * gw + j].qs),
                                           _mm256_set1_epi8((char)0x80));
        const __m256i s = _mm256_sad_epu8(q, _mm256_setzero_si256()); /* four sums of 8 */
        const int64_t s0 = _mm256_extract_epi64(s, 0) + _mm256_extract_epi64(s, 1) - 2048;
        const int64_t s1 = _mm256_extract_epi64(s, 2) + _mm256_extract_epi64(s, 3) - 2048;
        out[(b - b0) * 2] = (int16_t)s0;
        out[(b - b0) * 2 + 1] = (int16_t)s1;
        outf[(b - b0) * 2] = (float)(s0 + s1) * x[b * gw + j].d;
        outf[(b - b0) * 2 + 1] = 0.0f;
    }
}

#define XS_CAP 16384 /* half-sum pairs on the stack: 64 KiB */

INLINE void unit_gemm_cols(const void *restrict wp, size_t pb, const void *restrict xp,
                           float *restrict y, int64_t ys, int64_t n, int64_t rows, int64_t p0,
                           int64_t p1, int64_t ncols, int T) {
    const tai_unit_layout *L = tai_unit_layout_of((tai_type)T);
    const int subs = u_k(T) ? 8 : 2;
    const int64_t nb = n / TAI_QK, nu = (nb + subs - 1) / subs;
    const tai_kernel_tuning tu = tai_k_tuning();
    const size_t pf1 = (size_t)tu.prefetch_l1, pf2 = (size_t)tu.prefetch_l2;
    const tai_block_q8a *x = xp;
    /* K slice: whole units, every column's half sums on the stack */
    int64_t ku = XS_CAP / ncols / subs;
    if (ku < 1) ku = 1;
    if (ncols >= TAI_NR) {
        const int64_t kslice = tai_k_slice(1024) / subs / TAI_QK;
        if (ku > kslice && kslice > 0) ku = kslice;
    }
    static _Thread_local int16_t xs[2 * XS_CAP + 2 * 64];
    static _Thread_local float xf[2 * XS_CAP + 2 * 64];
    for (int64_t us = 0; us < nu; us += ku) {
        const int64_t ue = us + ku < nu ? us + ku : nu;
        const int64_t b0 = us * subs, b1 = ue * subs < nb ? ue * subs : nb, kb = b1 - b0;
        for (int64_t c = 0; c < ncols; c++) {
            const int64_t g0 = c / TAI_NR * TAI_NR;
            const int64_t gw = ncols - g0 < TAI_NR ? ncols - g0 : TAI_NR;
            half_sums(x + g0 * nb, gw, c - g0, b0, kb, xs + c * kb * 2, xf + c * kb * 2);
        }
        const int first = us == 0;
        int64_t p = p0;
        if (ncols == 1) {
            for (; p < p1; p++) {
                const __mmask16 mk = row_mask(rows, p);
                __m512 acc = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mk, y + p * TAI_PANEL);
                acc = unit_panel_1((const uint8_t *)wp + (size_t)p * pb, L, us, ue, nb, x, xs, xf, b0,
                                   acc, T, pf1, pf2);
                _mm512_mask_storeu_ps(y + p * TAI_PANEL, mk, acc);
            }
        }
        for (; p < p1; p++) {
            const uint8_t *q[1] = {(const uint8_t *)wp + (size_t)p * pb};
            const __mmask16 mk = row_mask(rows, p);
            for (int64_t c0 = 0; c0 < ncols; c0 += 4) {
                const int64_t g0 = c0 / TAI_NR * TAI_NR;
                const int64_t gw = ncols - g0 < TAI_NR ? ncols - g0 : TAI_NR;
                const int64_t w = ncols - c0 < 4 ? ncols - c0 : 4;
                const tai_block_q8a *xg = x + g0 * nb + (c0 - g0);
                __m512 acc[1][4];
                for (int j = 0; j < w; j++)
                    acc[0][j] = first ? _mm512_setzero_ps()
                                      : _mm512_maskz_loadu_ps(mk, y + (c0 + j) * ys + p * TAI_PANEL);
                const int16_t *xc = xs + c0 * kb * 2;
                const float *xcf = xf + c0 * kb * 2;
#define RUN(W) unit_run(q, L, us, ue, nb, xg, gw, xc, xcf, kb, b0, acc, 1, W, T, pf1, pf2)
                switch (w) {
                case 1: RUN(1); break;
                case 2: RUN(2); break;
                case 3: RUN(3); break;
                default: RUN(4); break;
                }
#undef RUN
                for (int j = 0; j < w; j++) _mm512_mask_storeu_ps(y + (c0 + j) * ys + p * TAI_PANEL, mk, acc[0][j]);
            }
        }
    }
}

/* ======================= The K-quants (q8k activations) =================== */

/* The column's activation bytes of sub-block s, each group of four
 * broadcast (the operand vpdpbusd multiplies every row's codes by). */
INLINE void k_bcast(const tai_block_q8_k *a, int s, __m512i ab[8]) {
    const int32_t *aq = (const int32_t *)(const void *)(a->qs + 32 * s);
#pragma GCC unroll 8
    for (int g = 0; g < 8; g++) ab[g] = _mm512_set1_epi32(aq[g]);
}

/* The integer sum of one sub-block against one column's q8k block:
 * S_0 (isum_0 - B xs_0) + S_1 (isum_1 - B xs_1), xs from its bsums. */
INLINE __m512i k_sub_T(const __m512i wv[8], const __m512i ab[8], const tai_block_q8_k *a, int s,
                       const sub_scales *sc, int T) {
    if (x16(T)) {
        __m512i lo0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[0], ab[0]);
        __m512i hi0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[1], ab[1]);
        __m512i lo1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[4], ab[4]);
        __m512i hi1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[5], ab[5]);
        lo0 = _mm512_dpbusd_epi32(lo0, wv[2], ab[2]);
        hi0 = _mm512_dpbusd_epi32(hi0, wv[3], ab[3]);
        lo1 = _mm512_dpbusd_epi32(lo1, wv[6], ab[6]);
        hi1 = _mm512_dpbusd_epi32(hi1, wv[7], ab[7]);
        const __m512i t = _mm512_add_epi32(_mm512_add_epi32(lo0, lo1),
                                           _mm512_srai_epi32(_mm512_add_epi32(hi0, hi1), 4));
        return _mm512_mullo_epi32(t, sc->s0);
    }
    __m512i c[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) c[k] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int g = 0; g < 8; g++) c[g / 2] = _mm512_dpbusd_epi32(c[g / 2], wv[g], ab[g]);
    __m512i i0 = _mm512_add_epi32(c[0], c[1]), i1 = _mm512_add_epi32(c[2], c[3]);
    const int B = u_bias(T), S = u_scales(T);
    const int x0 = a->bsums[2 * s], x1 = a->bsums[2 * s + 1];
    if (S == TAI_UNIT_SC_K4 || S == TAI_UNIT_SC_NONE) {
        __m512i t = _mm512_add_epi32(i0, i1);
        if (B) t = _mm512_sub_epi32(t, _mm512_set1_epi32(B * (x0 + x1)));
        return S == TAI_UNIT_SC_K4 ? _mm512_mullo_epi32(t, sc->s0) : t;
    }
    if (B) {
        i0 = _mm512_sub_epi32(i0, _mm512_set1_epi32(B * x0));
        i1 = _mm512_sub_epi32(i1, _mm512_set1_epi32(B * x1));
    }
    return _mm512_add_epi32(_mm512_mullo_epi32(i0, sc->s0), _mm512_mullo_epi32(i1, sc->s1));
}

/* Super-blocks [u0, u1) of one panel q times W columns (q8k blocks
 * x[u * gw + j]) into acc[0 .. W). The integer sums of a super-block add
 * up in 32 bits; its minimums' sum in float, exactly (integers below
 * 2^24), so both equal the portable kernel's before the float steps. */
INLINE void k_run(const uint8_t *q, const tai_unit_layout *L, int64_t u0, int64_t u1,
                  const tai_block_q8_k *x, int64_t gw, __m512 acc[4], int W, int T, size_t pf1,
                  size_t pf2) {
    const size_t ub = L->bytes;
    for (int64_t u = u0; u < u1; u++) {
        const uint8_t *un = q + (size_t)u * ub;
        const tai_block_q8_k *a[4];
        __m512i Ti[4];
        __m512 Mf[4];
#pragma GCC unroll 4
        for (int j = 0; j < W; j++) {
            a[j] = &x[u * gw + j];
            Ti[j] = _mm512_setzero_si512();
            Mf[j] = _mm512_setzero_ps();
        }
        const __m512i k4[3] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
#pragma GCC unroll 8
        for (int s = 0; s < 8; s++) {
            /* the prefetches spread over the sub-blocks, an eighth of the
             * unit's lines each: a burst of all of them at once fills the
             * line fill buffers */
            const size_t l0 = (ub * (size_t)s / 8) & ~(size_t)63, l1 = (ub * (size_t)(s + 1) / 8) & ~(size_t)63;
            if (pf1)
                for (size_t l = l0; l < l1; l += 64) _mm_prefetch((const char *)un + pf1 + l, _MM_HINT_T0);
            if (pf2)
                for (size_t l = l0; l < l1; l += 64) _mm_prefetch((const char *)un + pf2 + l, _MM_HINT_T1);
            __m512i wv[8];
            sub_codes(un, L, s, T, wv);
            const sub_scales sc = sub_sc(un, L, s, T, k4);
            __m512 mf0 = _mm512_setzero_ps(), mf1 = mf0;
            if (u_min(T)) {
                mf0 = _mm512_cvtepi32_ps(sc.m0);
                if (u_scales(T) != TAI_UNIT_SC_K4) mf1 = _mm512_cvtepi32_ps(sc.m1);
            }
#pragma GCC unroll 4
            for (int j = 0; j < W; j++) {
                __m512i ab[8];
                k_bcast(a[j], s, ab);
                Ti[j] = _mm512_add_epi32(Ti[j], k_sub_T(wv, ab, a[j], s, &sc, T));
                if (u_min(T)) {
                    const int x0 = a[j]->bsums[2 * s], x1 = a[j]->bsums[2 * s + 1];
                    if (u_scales(T) == TAI_UNIT_SC_K4) {
                        Mf[j] = _mm512_fmadd_ps(mf0, _mm512_set1_ps((float)(x0 + x1)), Mf[j]);
                    } else {
                        Mf[j] = _mm512_fmadd_ps(mf0, _mm512_set1_ps((float)x0), Mf[j]);
                        Mf[j] = _mm512_fmadd_ps(mf1, _mm512_set1_ps((float)x1), Mf[j]);
                    }
                }
            }
        }
        const __m512 D = T == TAI_TYPE_Q8_K ? _mm512_load_ps((const float *)(const void *)(un + L->d_at))
                                             : ld_h16(un + L->d_at);
#pragma GCC unroll 4
        for (int j = 0; j < W; j++) {
            const __m512 dx = _mm512_set1_ps(a[j]->d);
            acc[j] = _mm512_fmadd_ps(D, _mm512_mul_ps(_mm512_cvtepi32_ps(Ti[j]), dx), acc[j]);
            if (u_min(T)) acc[j] = _mm512_fnmadd_ps(ld_h16(un + L->m_at), _mm512_mul_ps(Mf[j], dx), acc[j]);
        }
    }
}

/* One column, two panels side by side (two streams, twice the
 * independent work per step), the same steps as k_run per panel. */
INLINE void k_run2(const uint8_t *qa, const uint8_t *qb, const tai_unit_layout *L, int64_t u0,
                   int64_t u1, const tai_block_q8_k *x, __m512 acc[2], int T, size_t pf1, size_t pf2) {
    const size_t ub = L->bytes;
    const __m512i k4[3] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
    for (int64_t u = u0; u < u1; u++) {
        const uint8_t *un[2] = {qa + (size_t)u * ub, qb + (size_t)u * ub};
        const tai_block_q8_k *a = &x[u];
        __m512i Ti[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
        __m512 Mf[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
#pragma GCC unroll 8
        for (int s = 0; s < 8; s++) {
            const size_t l0 = (ub * (size_t)s / 8) & ~(size_t)63, l1 = (ub * (size_t)(s + 1) / 8) & ~(size_t)63;
            __m512i ab[8]; /* the column's bytes, shared by both panels */
            k_bcast(a, s, ab);
#pragma GCC unroll 2
            for (int pi = 0; pi < 2; pi++) {
                if (pf1)
                    for (size_t l = l0; l < l1; l += 64) _mm_prefetch((const char *)un[pi] + pf1 + l, _MM_HINT_T0);
                if (pf2)
                    for (size_t l = l0; l < l1; l += 64) _mm_prefetch((const char *)un[pi] + pf2 + l, _MM_HINT_T1);
                __m512i wv[8];
                sub_codes(un[pi], L, s, T, wv);
                const sub_scales sc = sub_sc(un[pi], L, s, T, k4);
                Ti[pi] = _mm512_add_epi32(Ti[pi], k_sub_T(wv, ab, a, s, &sc, T));
                if (u_min(T)) {
                    const int x0 = a->bsums[2 * s], x1 = a->bsums[2 * s + 1];
                    if (u_scales(T) == TAI_UNIT_SC_K4) {
                        Mf[pi] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sc.m0), _mm512_set1_ps((float)(x0 + x1)), Mf[pi]);
                    } else {
                        Mf[pi] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sc.m0), _mm512_set1_ps((float)x0), Mf[pi]);
                        Mf[pi] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sc.m1), _mm512_set1_ps((float)x1), Mf[pi]);
                    }
                }
            }
        }
        const __m512 dx = _mm512_set1_ps(a->d);
#pragma GCC unroll 2
        for (int pi = 0; pi < 2; pi++) {
            const __m512 D = T == TAI_TYPE_Q8_K ? _mm512_load_ps((const float *)(const void *)(un[pi] + L->d_at))
                                                 : ld_h16(un[pi] + L->d_at);
            acc[pi] = _mm512_fmadd_ps(D, _mm512_mul_ps(_mm512_cvtepi32_ps(Ti[pi]), dx), acc[pi]);
            if (u_min(T)) acc[pi] = _mm512_fnmadd_ps(ld_h16(un[pi] + L->m_at), _mm512_mul_ps(Mf[pi], dx), acc[pi]);
        }
    }
}

/* One column reads two panels side by side (k_run2) only when they are at
 * least TAI_SIDE_MIN_PANEL long; shorter ones go one at a time, straight
 * on from one panel into the next (as Q8_0's in matmul_avx512.c). One
 * thread of a family 6 model 167 Xeon, weights from DRAM: Q4_K 1024-wide
 * (9.2 KB panels; Gemma 3's attention output) 12.9-13.3 -> 14.8 GB/s, two
 * threads 24.4-25.1 -> 28.4-29.2; Q6_K 768-wide 12.0-12.2 -> 13.5-14.1;
 * 1536-wide (13.8 KB) the same either way, 2048-wide (18.4 KB) 5-7% faster
 * side by side, 4096-wide unchanged. */
/* K in slices of whole super-blocks whose activations stay in L2 when
 * there are many columns; panels in turn; columns four at a time. */
INLINE void k_gemm(const void *restrict wp, size_t pb, const void *restrict xp, float *restrict y,
                   int64_t ys, int64_t n, int64_t rows, int64_t p0, int64_t p1, int64_t ncols,
                   int T) {
    const tai_unit_layout *L = tai_unit_layout_of((tai_type)T);
    const int64_t nu = n / TAI_QK_K;
    const tai_kernel_tuning tu = tai_k_tuning();
    const size_t pf1 = (size_t)tu.prefetch_l1, pf2 = (size_t)tu.prefetch_l2;
    /* twice the tuned distances: a step here reads a super-block (2-4 KiB
     * of each panel), and the streams need reads that much further ahead
     * (4096x14336 Q4_K/Q5_K/Q6_K on one thread of a family 6 model 167
     * Xeon: 82-84% -> 85-87% of the read bandwidth) */
    const size_t kpf1 = 2 * pf1, kpf2 = 2 * pf2;
    const tai_block_q8_k *x = xp;
    int64_t ku = nu;
    if (ncols >= TAI_NR) {
        ku = tai_k_slice(1024) / TAI_QK_K;
        if (ku < 1) ku = 1;
    }
    for (int64_t us = 0; us < nu; us += ku) {
        const int64_t ue = us + ku < nu ? us + ku : nu;
        const int first = us == 0;
        int64_t p = p0;
        if (ncols == 1 && pb >= TAI_SIDE_MIN_PANEL)
            for (; p + 2 <= p1; p += 2) {
                __m512 acc[2];
                for (int pi = 0; pi < 2; pi++)
                    acc[pi] = first ? _mm512_setzero_ps()
                                    : _mm512_maskz_loadu_ps(row_mask(rows, p + pi), y + (p + pi) * TAI_PANEL);
                k_run2((const uint8_t *)wp + (size_t)p * pb, (const uint8_t *)wp + (size_t)(p + 1) * pb, L,
                       us, ue, x, acc, T, kpf1, kpf2);
                for (int pi = 0; pi < 2; pi++)
                    _mm512_mask_storeu_ps(y + (p + pi) * TAI_PANEL, row_mask(rows, p + pi), acc[pi]);
            }
        for (; p < p1; p++) {
            const uint8_t *q = (const uint8_t *)wp + (size_t)p * pb;
            const __mmask16 mk = row_mask(rows, p);
            for (int64_t c0 = 0; c0 < ncols; c0 += 4) {
                const int64_t g0 = c0 / TAI_NR * TAI_NR;
                const int64_t gw = ncols - g0 < TAI_NR ? ncols - g0 : TAI_NR;
                const int64_t w = ncols - c0 < 4 ? ncols - c0 : 4;
                const tai_block_q8_k *xg = x + g0 * nu + (c0 - g0);
                __m512 acc[4];
                for (int j = 0; j < w; j++)
                    acc[j] = first ? _mm512_setzero_ps()
                                   : _mm512_maskz_loadu_ps(mk, y + (c0 + j) * ys + p * TAI_PANEL);
#define RUN(W) k_run(q, L, us, ue, xg, gw, acc, W, T, kpf1, kpf2)
                switch (w) {
                case 1: RUN(1); break;
                case 2: RUN(2); break;
                case 3: RUN(3); break;
                default: RUN(4); break;
                }
#undef RUN
                for (int j = 0; j < w; j++) _mm512_mask_storeu_ps(y + (c0 + j) * ys + p * TAI_PANEL, mk, acc[j]);
            }
        }
    }
}

#define COLS_MAX 1024 /* columns per pass: at least one unit's half sums each */

/* Columns in passes of at most COLS_MAX (whole groups of 8: each pass's
 * activations and outputs are contiguous). */
INLINE void unit_gemm(const void *restrict wp, size_t pb, const void *restrict xp,
                      float *restrict y, int64_t ys, int64_t n, int64_t rows, int64_t p0,
                      int64_t p1, int64_t ncols, int T) {
    const int64_t nb = n / TAI_QK;
    for (int64_t c0 = 0; c0 < ncols; c0 += COLS_MAX)
        unit_gemm_cols(wp, pb, (const tai_block_q8a *)xp + c0 * nb, y + c0 * ys, ys, n, rows, p0, p1,
                       ncols - c0 < COLS_MAX ? ncols - c0 : COLS_MAX, T);
}

TAI_GEMM_ENTRY(tai_k_gemm_q5_0_avx512, unit_gemm, TAI_TYPE_Q5_0)
TAI_GEMM_ENTRY(tai_k_gemm_q5_1_avx512, unit_gemm, TAI_TYPE_Q5_1)
TAI_GEMM_ENTRY(tai_k_gemm_iq4_nl_avx512, unit_gemm, TAI_TYPE_IQ4_NL)
TAI_GEMM_ENTRY(tai_k_gemm_q2_k_avx512, k_gemm, TAI_TYPE_Q2_K)
TAI_GEMM_ENTRY(tai_k_gemm_q3_k_avx512, k_gemm, TAI_TYPE_Q3_K)
TAI_GEMM_ENTRY(tai_k_gemm_q4_k_avx512, k_gemm, TAI_TYPE_Q4_K)
TAI_GEMM_ENTRY(tai_k_gemm_q5_k_avx512, k_gemm, TAI_TYPE_Q5_K)
TAI_GEMM_ENTRY(tai_k_gemm_q6_k_avx512, k_gemm, TAI_TYPE_Q6_K)
TAI_GEMM_ENTRY(tai_k_gemm_q8_k_avx512, k_gemm, TAI_TYPE_Q8_K)

/* ======================= BF16 ============================================= */

/* 16 rows' weights at step k widened to floats (bf16: the top half). */
INLINE __m512 ld_bf16(const uint16_t *w, int64_t k) {
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_load_si256((const __m256i *)(w + k * 16))), 16));
}

static void bf16_gemm(const void *restrict wp, size_t pb, const void *restrict xp,
                      float *restrict y, int64_t ys, int64_t n, int64_t rows, int64_t p0,
                      int64_t p1, int64_t ncols, int unused) {
    (void)unused;
    const float *x = xp;
    for (int64_t p = p0; p < p1; p++) {
        const uint16_t *w = (const uint16_t *)((const uint8_t *)wp + (size_t)p * pb);
        const __mmask16 mk = row_mask(rows, p);
        for (int64_t c0 = 0; c0 < ncols; c0 += 4) {
            const int64_t g0 = c0 / TAI_NR * TAI_NR;
            const int64_t gw = ncols - g0 < TAI_NR ? ncols - g0 : TAI_NR;
            const int64_t nc = ncols - c0 < 4 ? ncols - c0 : 4;
            const float *xg = x + g0 * n + (c0 - g0);
            __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                             _mm512_setzero_ps()};
            for (int64_t k = 0; k < n; k++) {
                const __m512 wk = ld_bf16(w, k);
                for (int j = 0; j < nc; j++)
                    acc[j] = _mm512_fmadd_ps(wk, _mm512_set1_ps(xg[k * gw + j]), acc[j]);
            }
            for (int j = 0; j < nc; j++) _mm512_mask_storeu_ps(y + (c0 + j) * ys + p * TAI_PANEL, mk, acc[j]);
        }
    }
}

TAI_GEMM_ENTRY(tai_k_gemm_bf16_avx512, bf16_gemm, 0)

#endif
