/*
 * kernels/matmul_unit_avx2.c: AVX2 products of the unit-packed types (Q5_0,
 * Q5_1, IQ4_NL, the K-quants; core/types.h "Unit-packed weights") and of
 * BF16 (layer: kernels). Compiled alone with the AVX2 flags; the integer
 * sums are matmul_unit.c's, the float steps its order.
 *
 * A panel's 16 rows are two 256-bit halves (rows 0-7, 8-15) of every
 * 64-byte vector of the unit layout. A sub-block's codes become eight such
 * pairs of unsigned bytes (pair g: elements 4g..4g+3 of each row), as in
 * the AVX-512 file; AVX2 has no vpdpbusd, so vpmaddubsw multiplies them by
 * the column's four activation bytes (broadcast) into 16-bit pairs and
 * vpmaddwd by ones adds the pairs into each row's 32-bit lane. That is
 * exact while a code is below 128 (two products of at most 127 x 128 fit
 * in 16 bits); the types whose codes use the whole byte (Q8_K, and
 * IQ4_NL's table + 128) widen codes and activations to 16 bits instead
 * (vpmaddwd directly, then a horizontal add per row).
 *
 * The loop: panels one after the other, each panel's units front to back
 * with the tuned software prefetch, columns four at a time; whole K per
 * panel (a column's result is one chain of float steps over K in order,
 * whatever the number of columns).
 */
#include "kernels/kernels_internal.h"
#include "kernels/unit_traits.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))

/* codes up to 255: the 16-bit products */
INLINE int u_wide(int T) { return T == TAI_TYPE_Q8_K || T == TAI_TYPE_IQ4_NL; }

INLINE __m256i ld(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)(const void *)p); }

/* Bit `from` of every byte moved to bit `to`, the rest cleared. */
INLINE __m256i bit_to(__m256i v, int from, int to) {
    const __m256i s = from < to ? _mm256_slli_epi16(v, to - from)
                    : from > to ? _mm256_srli_epi16(v, from - to)
                                : v;
    return _mm256_and_si256(s, _mm256_set1_epi8((char)(1 << to)));
}

/* The eight code pairs of sub-block s of unit u (half h: rows 8h..8h+7). */
INLINE void sub_codes(const uint8_t *u, const tai_unit_layout *L, int s, int T, __m256i wv[8][2]) {
    const int C = u_codes(T), H = u_high(T);
    const uint8_t *c = u + tai_unit_codes_at(L, s);
    if (C == TAI_UNIT_BYTE) {
        for (int g = 0; g < 8; g++)
            for (int h = 0; h < 2; h++) wv[g][h] = ld(c + 64 * g + 32 * h);
        return;
    }
    for (int h = 0; h < 2; h++) {
        __m256i h0 = _mm256_setzero_si256(), h1 = h0;
        if (H >= 1) h0 = ld(u + tai_unit_high_at(L, s, 0) + 32 * h);
        if (H == 2) h1 = ld(u + tai_unit_high_at(L, s, 1) + 32 * h);
        if (C == TAI_UNIT_TWO) {
            const __m256i a = ld(c + 32 * h), b = ld(c + 64 + 32 * h);
            const __m256i m3 = _mm256_set1_epi8(3);
            for (int j = 0; j < 4; j++) {
                wv[2 * j][h] = _mm256_and_si256(_mm256_srli_epi16(a, 2 * j), m3);
                wv[2 * j + 1][h] = _mm256_and_si256(_mm256_srli_epi16(b, 2 * j), m3);
                if (H) {
                    wv[2 * j][h] = _mm256_or_si256(wv[2 * j][h], bit_to(h0, 2 * j, 2));
                    wv[2 * j + 1][h] = _mm256_or_si256(wv[2 * j + 1][h], bit_to(h0, 2 * j + 1, 2));
                }
            }
            continue;
        }
        const __m256i m15 = _mm256_set1_epi8(15);
        for (int j = 0; j < 4; j++) {
            const __m256i v = ld(c + 64 * j + 32 * h);
            __m256i lo = _mm256_and_si256(v, m15), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m15);
            if (H >= 1) {
                lo = _mm256_or_si256(lo, bit_to(h0, 2 * j, 4));
                hi = _mm256_or_si256(hi, bit_to(h0, 2 * j + 1, 4));
            }
            if (H == 2) {
                lo = _mm256_or_si256(lo, bit_to(h1, 2 * j, 5));
                hi = _mm256_or_si256(hi, bit_to(h1, 2 * j + 1, 5));
            }
            if (T == TAI_TYPE_IQ4_NL) { /* the table's values + 128 */
                const __m256i lut = _mm256_broadcastsi128_si256(_mm_setr_epi8(
                    1, 24, 45, 63, 79, 93, 106, 118, (char)129, (char)141, (char)153, (char)166,
                    (char)181, (char)197, (char)217, (char)241));
                lo = _mm256_shuffle_epi8(lut, lo);
                hi = _mm256_shuffle_epi8(lut, hi);
            }
            wv[2 * j][h] = lo;
            wv[2 * j + 1][h] = hi;
        }
    }
}

/* The integer scales (and minimums) of the halves of sub-block s, per row
 * (index h: rows 8h..8h+7). */
typedef struct {
    __m256i s0[2], s1[2], m0[2], m1[2];
} sub_scales;

INLINE __m256i u8x8(const uint8_t *p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p)); }
INLINE __m256i i8x8(const uint8_t *p) { return _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p)); }

INLINE sub_scales sub_sc(const uint8_t *u, const tai_unit_layout *L, int s, int T) {
    sub_scales r;
    const int S = u_scales(T);
    const uint8_t *sc = u + L->scales_at;
    for (int h = 0; h < 2; h++) {
        if (S == TAI_UNIT_SC_K4) { /* bytes: [j][r] scales, then [j][r] minimums */
            r.s0[h] = r.s1[h] = u8x8(sc + 16 * s + 8 * h);
            r.m0[h] = r.m1[h] = u8x8(sc + 128 + 16 * s + 8 * h);
        } else if (S == TAI_UNIT_SC_U8) {
            const __m256i v0 = u8x8(sc + 32 * s + 8 * h), v1 = u8x8(sc + 32 * s + 16 + 8 * h);
            const __m256i m15 = _mm256_set1_epi32(15);
            r.s0[h] = _mm256_and_si256(v0, m15);
            r.s1[h] = _mm256_and_si256(v1, m15);
            r.m0[h] = _mm256_srli_epi32(v0, 4);
            r.m1[h] = _mm256_srli_epi32(v1, 4);
        } else if (S == TAI_UNIT_SC_I8) {
            r.s0[h] = i8x8(sc + 32 * s + 8 * h);
            r.s1[h] = i8x8(sc + 32 * s + 16 + 8 * h);
            r.m0[h] = r.m1[h] = _mm256_setzero_si256();
        } else {
            r.s0[h] = r.s1[h] = _mm256_set1_epi32(1);
            r.m0[h] = r.m1[h] = _mm256_setzero_si256();
        }
    }
    return r;
}

/* Each row's sum of its four codes times the column's four bytes a4
 * (8 rows, one 32-bit lane each). */
INLINE __m256i dot4(__m256i w, int32_t a4, int T) {
    if (!u_wide(T))
        return _mm256_madd_epi16(_mm256_maddubs_epi16(w, _mm256_set1_epi32(a4)), _mm256_set1_epi16(1));
    /* 16-bit codes and activations: vpunpck*bw takes each lane's rows
     * 0-1 (lo) and 2-3 (hi), vpmaddwd their pairs, vphaddd the rows */
    const __m256i z = _mm256_setzero_si256();
    const int8_t *b = (const int8_t *)&a4;
    const uint64_t x4 = (uint64_t)(uint16_t)b[0] | (uint64_t)(uint16_t)b[1] << 16 |
                        (uint64_t)(uint16_t)b[2] << 32 | (uint64_t)(uint16_t)b[3] << 48;
    const __m256i x16 = _mm256_set1_epi64x((int64_t)x4);
    const __m256i lo = _mm256_madd_epi16(_mm256_unpacklo_epi8(w, z), x16);
    const __m256i hi = _mm256_madd_epi16(_mm256_unpackhi_epi8(w, z), x16);
    return _mm256_hadd_epi32(lo, hi);
}

/* T = S_0 (isum_0 - B xs_0) + S_1 (isum_1 - B xs_1) of one half h of the
 * rows, the column's 32 bytes aq and half sums x0, x1. */
INLINE __m256i sub_T(__m256i wv[8][2], int h, const int32_t *aq, int x0, int x1,
                     const sub_scales *sc, int T) {
    __m256i c0 = _mm256_add_epi32(dot4(wv[0][h], aq[0], T), dot4(wv[1][h], aq[1], T));
    __m256i c1 = _mm256_add_epi32(dot4(wv[2][h], aq[2], T), dot4(wv[3][h], aq[3], T));
    __m256i c2 = _mm256_add_epi32(dot4(wv[4][h], aq[4], T), dot4(wv[5][h], aq[5], T));
    __m256i c3 = _mm256_add_epi32(dot4(wv[6][h], aq[6], T), dot4(wv[7][h], aq[7], T));
    __m256i i0 = _mm256_add_epi32(c0, c1), i1 = _mm256_add_epi32(c2, c3);
    const int B = u_bias(T), S = u_scales(T);
    if (S == TAI_UNIT_SC_K4 || S == TAI_UNIT_SC_NONE) {
        __m256i t = _mm256_add_epi32(i0, i1);
        if (B) t = _mm256_sub_epi32(t, _mm256_set1_epi32(B * (x0 + x1)));
        return S == TAI_UNIT_SC_K4 ? _mm256_mullo_epi32(t, sc->s0[h]) : t;
    }
    if (B) {
        i0 = _mm256_sub_epi32(i0, _mm256_set1_epi32(B * x0));
        i1 = _mm256_sub_epi32(i1, _mm256_set1_epi32(B * x1));
    }
    return _mm256_add_epi32(_mm256_mullo_epi32(i0, sc->s0[h]), _mm256_mullo_epi32(i1, sc->s1[h]));
}

INLINE __m256 ld_h8(const uint8_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p)); }

/* The half sums of a q8a block (elements 0-15, 16-31). */
INLINE void q8a_halves(const tai_block_q8a *a, int *x0, int *x1) {
    const __m256i q = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)a->qs),
                                       _mm256_set1_epi8((char)0x80));
    const __m256i s = _mm256_sad_epu8(q, _mm256_setzero_si256()); /* four sums of 8 */
    *x0 = (int)(_mm256_extract_epi64(s, 0) + _mm256_extract_epi64(s, 1) - 2048);
    *x1 = (int)(_mm256_extract_epi64(s, 2) + _mm256_extract_epi64(s, 3) - 2048);
}

INLINE void prefetch_unit(const uint8_t *un, size_t ub, size_t pf1, size_t pf2) {
    if (pf1)
        for (size_t l = 0; l < ub; l += 64) _mm_prefetch((const char *)un + pf1 + l, _MM_HINT_T0);
    if (pf2)
        for (size_t l = 0; l < ub; l += 64) _mm_prefetch((const char *)un + pf2 + l, _MM_HINT_T1);
}

/* Stores a panel's 16 results of one column (the last panel may have
 * fewer rows). */
INLINE void store_rows(float *y, const __m256 acc[2], int64_t nrows) {
    if (nrows >= 16) {
        _mm256_storeu_ps(y, acc[0]);
        _mm256_storeu_ps(y + 8, acc[1]);
        return;
    }
    float t[16];
    _mm256_storeu_ps(t, acc[0]);
    _mm256_storeu_ps(t + 8, acc[1]);
    for (int64_t r = 0; r < nrows; r++) y[r] = t[r];
}

/* ---- Blocks of 32 with q8a activations (Q5_0, Q5_1, IQ4_NL) ------------- */

INLINE void unit32_panel(const uint8_t *q, const tai_unit_layout *L, int64_t nb,
                         const tai_block_q8a *xg, int64_t gw, __m256 acc[4][2], int W, int T,
                         size_t pf1, size_t pf2) {
    const size_t ub = L->bytes;
    const int64_t nu = (nb + 1) / 2;
    for (int64_t u = 0; u < nu; u++) {
        const uint8_t *un = q + (size_t)u * ub;
        prefetch_unit(un, ub, pf1, pf2);
        const int nsub = nb - 2 * u < 2 ? (int)(nb - 2 * u) : 2;
        for (int s = 0; s < nsub; s++) {
            const int64_t b = 2 * u + s;
            __m256i wv[8][2];
            sub_codes(un, L, s, T, wv);
            const sub_scales sc = sub_sc(un, L, s, T);
            const __m256 D[2] = {ld_h8(un + L->d_at + (size_t)s * 32), ld_h8(un + L->d_at + (size_t)s * 32 + 16)};
            for (int j = 0; j < W; j++) {
                const tai_block_q8a *a = &xg[b * gw + j];
                int x0, x1;
                q8a_halves(a, &x0, &x1);
                const __m256 dx = _mm256_set1_ps(a->d);
                for (int h = 0; h < 2; h++) {
                    const __m256 f = _mm256_cvtepi32_ps(sub_T(wv, h, (const int32_t *)(const void *)a->qs, x0, x1, &sc, T));
                    acc[j][h] = _mm256_fmadd_ps(_mm256_mul_ps(f, dx), D[h], acc[j][h]);
                    if (u_min(T))
                        acc[j][h] = _mm256_fmadd_ps(ld_h8(un + L->m_at + (size_t)s * 32 + 16 * h),
                                                    _mm256_set1_ps(a->s), acc[j][h]);
                }
            }
        }
    }
}

/* ---- The K-quants (super-blocks of 256, q8k activations) ----------------- */

INLINE void k_panel(const uint8_t *q, const tai_unit_layout *L, int64_t nu, const tai_block_q8_k *xg,
                    int64_t gw, __m256 acc[4][2], int W, int T, size_t pf1, size_t pf2) {
    const size_t ub = L->bytes;
    for (int64_t u = 0; u < nu; u++) {
        const uint8_t *un = q + (size_t)u * ub;
        prefetch_unit(un, ub, pf1, pf2);
        __m256i Ti[4][2];
        __m256 Mf[4][2];
        for (int j = 0; j < W; j++)
            for (int h = 0; h < 2; h++) {
                Ti[j][h] = _mm256_setzero_si256();
                Mf[j][h] = _mm256_setzero_ps();
            }
        for (int s = 0; s < 8; s++) {
            __m256i wv[8][2];
            sub_codes(un, L, s, T, wv);
            const sub_scales sc = sub_sc(un, L, s, T);
            for (int j = 0; j < W; j++) {
                const tai_block_q8_k *a = &xg[u * gw + j];
                const int x0 = a->bsums[2 * s], x1 = a->bsums[2 * s + 1];
                const int32_t *aq = (const int32_t *)(const void *)(a->qs + 32 * s);
                for (int h = 0; h < 2; h++) {
                    Ti[j][h] = _mm256_add_epi32(Ti[j][h], sub_T(wv, h, aq, x0, x1, &sc, T));
                    if (u_min(T)) {
                        if (u_scales(T) == TAI_UNIT_SC_K4) {
                            Mf[j][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sc.m0[h]),
                                                       _mm256_set1_ps((float)(x0 + x1)), Mf[j][h]);
                        } else {
                            Mf[j][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sc.m0[h]), _mm256_set1_ps((float)x0), Mf[j][h]);
                            Mf[j][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sc.m1[h]), _mm256_set1_ps((float)x1), Mf[j][h]);
                        }
                    }
                }
            }
        }
        for (int h = 0; h < 2; h++) {
            const __m256 D = T == TAI_TYPE_Q8_K ? _mm256_loadu_ps((const float *)(const void *)(un + L->d_at) + 8 * h)
                                                 : ld_h8(un + L->d_at + 16 * h);
            for (int j = 0; j < W; j++) {
                const __m256 dx = _mm256_set1_ps(xg[u * gw + j].d);
                acc[j][h] = _mm256_fmadd_ps(D, _mm256_mul_ps(_mm256_cvtepi32_ps(Ti[j][h]), dx), acc[j][h]);
                if (u_min(T))
                    acc[j][h] = _mm256_fnmadd_ps(ld_h8(un + L->m_at + 16 * h), _mm256_mul_ps(Mf[j][h], dx), acc[j][h]);
            }
        }
    }
}

/* Panels in turn, columns four at a time (inside one group of TAI_NR). */
INLINE void unit_gemm(const void *restrict wp, size_t pb, const void *restrict xp,
                      float *restrict y, int64_t ys, int64_t n, int64_t rows, int64_t p0,
                      int64_t p1, int64_t ncols, int T) {
    const tai_unit_layout *L = tai_unit_layout_of((tai_type)T);
    const int k = u_k(T);
    const int64_t nblk = k ? n / TAI_QK_K : n / TAI_QK; /* activation blocks per column */
    const tai_kernel_tuning tu = tai_k_tuning();
    const size_t pf1 = (size_t)tu.prefetch_l1, pf2 = (size_t)tu.prefetch_l2;
    for (int64_t p = p0; p < p1; p++) {
        const uint8_t *q = (const uint8_t *)wp + (size_t)p * pb;
        const int64_t nrows = rows - p * TAI_PANEL;
        for (int64_t c0 = 0; c0 < ncols; c0 += 4) {
            const int64_t g0 = c0 / TAI_NR * TAI_NR;
            const int64_t gw = ncols - g0 < TAI_NR ? ncols - g0 : TAI_NR;
            const int w = ncols - c0 < 4 ? (int)(ncols - c0) : 4;
            __m256 acc[4][2];
            for (int j = 0; j < 4; j++) acc[j][0] = acc[j][1] = _mm256_setzero_ps();
#define RUN(W)                                                                                    \
    do {                                                                                          \
        if (k)                                                                                    \
            k_panel(q, L, nblk, (const tai_block_q8_k *)xp + g0 * nblk + (c0 - g0), gw, acc, W, T, \
                    pf1, pf2);                                                                    \
        else                                                                                      \
            unit32_panel(q, L, nblk, (const tai_block_q8a *)xp + g0 * nblk + (c0 - g0), gw, acc, \
                         W, T, pf1, pf2);                                                         \
    } while (0)
            switch (w) {
            case 1: RUN(1); break;
            case 2: RUN(2); break;
            case 3: RUN(3); break;
            default: RUN(4); break;
            }
#undef RUN
            for (int j = 0; j < w; j++) store_rows(y + (c0 + j) * ys + p * TAI_PANEL, acc[j], nrows);
        }
    }
}

TAI_GEMM_ENTRY(tai_k_gemm_q5_0_avx2, unit_gemm, TAI_TYPE_Q5_0)
TAI_GEMM_ENTRY(tai_k_gemm_q5_1_avx2, unit_gemm, TAI_TYPE_Q5_1)
TAI_GEMM_ENTRY(tai_k_gemm_iq4_nl_avx2, unit_gemm, TAI_TYPE_IQ4_NL)
TAI_GEMM_ENTRY(tai_k_gemm_q2_k_avx2, unit_gemm, TAI_TYPE_Q2_K)
TAI_GEMM_ENTRY(tai_k_gemm_q3_k_avx2, unit_gemm, TAI_TYPE_Q3_K)
TAI_GEMM_ENTRY(tai_k_gemm_q4_k_avx2, unit_gemm, TAI_TYPE_Q4_K)
TAI_GEMM_ENTRY(tai_k_gemm_q5_k_avx2, unit_gemm, TAI_TYPE_Q5_K)
TAI_GEMM_ENTRY(tai_k_gemm_q6_k_avx2, unit_gemm, TAI_TYPE_Q6_K)
TAI_GEMM_ENTRY(tai_k_gemm_q8_k_avx2, unit_gemm, TAI_TYPE_Q8_K)

/* ---- BF16 ------------------------------------------------------------------ */

/* 8 rows' weights at step k (half h) widened to floats (bf16: the top half). */
INLINE __m256 ld_bf16(const uint16_t *w, int64_t k, int h) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(w + k * 16 + 8 * h))), 16));
}

static void bf16_gemm(const void *restrict wp, size_t pb, const void *restrict xp,
                      float *restrict y, int64_t ys, int64_t n, int64_t rows, int64_t p0,
                      int64_t p1, int64_t ncols, int unused) {
    (void)unused;
    const float *x = xp;
    for (int64_t p = p0; p < p1; p++) {
        const uint16_t *w = (const uint16_t *)(const void *)((const uint8_t *)wp + (size_t)p * pb);
        const int64_t nrows = rows - p * TAI_PANEL;
        for (int64_t c0 = 0; c0 < ncols; c0 += 4) {
            const int64_t g0 = c0 / TAI_NR * TAI_NR;
            const int64_t gw = ncols - g0 < TAI_NR ? ncols - g0 : TAI_NR;
            const int64_t nc = ncols - c0 < 4 ? ncols - c0 : 4;
            const float *xg = x + g0 * n + (c0 - g0);
            __m256 acc[4][2];
            for (int j = 0; j < 4; j++) acc[j][0] = acc[j][1] = _mm256_setzero_ps();
            for (int64_t k = 0; k < n; k++) {
                const __m256 w0 = ld_bf16(w, k, 0), w1 = ld_bf16(w, k, 1);
                for (int j = 0; j < nc; j++) {
                    const __m256 xv = _mm256_set1_ps(xg[k * gw + j]);
                    acc[j][0] = _mm256_fmadd_ps(w0, xv, acc[j][0]);
                    acc[j][1] = _mm256_fmadd_ps(w1, xv, acc[j][1]);
                }
            }
            for (int j = 0; j < nc; j++) store_rows(y + (c0 + j) * ys + p * TAI_PANEL, acc[j], nrows);
        }
    }
}

TAI_GEMM_ENTRY(tai_k_gemm_bf16_avx2, bf16_gemm, 0)

#endif
