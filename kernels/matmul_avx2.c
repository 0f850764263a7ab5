/*
 * kernels/matmul_avx2.c: AVX2 + FMA + F16C packed product kernels (layer:
 * kernels). Compiled alone with those flags (see BUILD); only called when
 * tai_isa_supported(TAI_ISA_AVX2). No AVX-512 or VNNI instruction may appear
 * here. Layouts are those of kernels.h: weights in panels of 16 rows, so a
 * pair of ymm registers (rows 0..7 and 8..15) holds one value of each row
 * of a panel and no horizontal sums are ever needed; activations in groups
 * of 8 columns.
 *
 * Two loop shapes per type, as in the AVX-512 file:
 *  - streaming (matrix-vector; the last group of fewer than 8 columns): each
 *    panel is read once, front to back, and multiplied into every column of
 *    the group while it is in registers. Memory bound by design. A panel
 *    is one stream (the codes and scales of a pair of blocks sit together)
 *    and panels follow each other, which the hardware prefetcher follows;
 *    software prefetch only at the machine's tuned distances
 *    (tai_kernels_set_tuning; none by default: it measured worse at 2
 *    threads on the machine these loops were written on).
 *  - blocked (matrix-matrix; every full group of 8 columns): K is cut into
 *    slices that keep the activations of all groups in L2 and the current
 *    slice of one panel in L1. With only 16 ymm registers the register tile
 *    is 16 rows x 4 columns and a group of 8 columns is two such tiles over
 *    the same L1-resident slice. Floats: 8 accumulators (enough independent
 *    FMAs to cover their latency on two FMA pipes), two weight vectors and a
 *    broadcast; F16 slices are widened to floats once per panel and slice,
 *    so the tiles never convert. Block types: the slice is decoded once per
 *    panel (nibbles split, Q8_0 signs recovered, scales widened) into an L1
 *    buffer that every group's tiles then read.
 *
 * Block types: without VNNI the integer products are vpmaddubsw (unsigned
 * byte x signed byte, adjacent pairs summed into SATURATING int16) followed
 * by vpmaddwd with ones (adjacent int16 pairs summed into int32). A 32-bit
 * lane of the packed layout holds four consecutive elements of one row, so
 * the two steps give exactly the per-lane sums of four products of that
 * row, like vpdpbusd. Exactness depends on the int16 step never saturating:
 *  - Q4 codes are 0..15 and activations -127..127, so a pair is at most
 *    2 * 15 * 127 = 3810 in magnitude and even the int16 sum of all eight
 *    pairs of a lane over a block (30480) fits: a block costs one vpmaddwd
 *    per row half, not one per product. The sum starts from the
 *    activation's n8 (Q4_0) or 0 (Q4_1), as the scalar variant's does.
 *  - Q8_0 codes are q + 128, up to 255: 2 * 255 * 127 overflows int16, so
 *    the biased codes cannot be used directly. The signed weight q = code ^
 *    0x80 is recovered instead and the sign is moved onto the activation:
 *    |q| * (a * sign q) = q * a, with |q| <= 128 read unsigned (|-128| is
 *    0x80, i.e. 128) and |a| <= 127, so a pair is at most 32512 and fits;
 *    each pair is widened by vpmaddwd at once (two would not fit). This is
 *    the plain signed sum of q * a, so n128 is NOT added.
 * The exact block sum is then converted to float and scaled as everywhere
 * else: y += d_w * (d_x * isum) [+ m_w * s_x for Q4_1].
 *
 * Register pressure is the constraint throughout: 16 ymm registers against
 * 32 on AVX-512. Two compiler-facing details follow from it (see UNROLL and
 * KEEP below); without them GCC spilled accumulators to the stack in the
 * inner loops and ran the block types at about half their speed.
 *
 * Rows of a panel beyond `rows` are never written: a partial last panel is
 * loaded and stored with vmaskmovps (slow on some cores, so only there).
 *
 * Batch invariance: every output is one chain of float operations over K in
 * order, the same in the streaming and the blocked loops (the blocked loop
 * stores and reloads its partial sums between slices of K, which is exact),
 * so a column's result does not depend on how many columns share the call
 * or where it falls among them. Latency is hidden by reading several
 * panels at once, never by splitting a sum into partial chains.
 */
#include "kernels/kernels_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))
/* Loops over registers (columns, row halves, 4-byte groups) must be fully
 * unrolled so that their small arrays become registers. */
#define UNROLL _Pragma("GCC unroll 16")
/* An empty asm that claims to modify v: the integer sums are then built as
 * the chains written (s += p0; s += p1; ...), not rebalanced into trees by
 * the compiler's reassociation, whose many live partial products do not fit
 * in 16 registers. Costs no instruction. */
#define KEEP(v) __asm__("" : "+x"(v))

/* ======================= Output rows ====================================== */

/* The first v (0..8) lanes, as a vmaskmovps mask. */
INLINE __m256i lane_mask(int64_t v) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)v),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Rows of panel p that exist: 1..16. */
INLINE int64_t panel_rows(int64_t rows, int64_t p) {
    int64_t v = rows - p * TAI_PANEL;
    return v > TAI_PANEL ? TAI_PANEL : v;
}

/* Stores rows 0..7 (lo) and 8..15 (hi) of a panel at y, only the first nr. */
INLINE void store16(float *y, int64_t nr, __m256 lo, __m256 hi) {
    if (nr == TAI_PANEL) {
        _mm256_storeu_ps(y, lo);
        _mm256_storeu_ps(y + 8, hi);
        return;
    }
    _mm256_maskstore_ps(y, lane_mask(nr < 8 ? nr : 8), lo);
    if (nr > 8) _mm256_maskstore_ps(y + 8, lane_mask(nr - 8), hi);
}

/* Loads what store16 stores (zeros in the rows that do not exist). */
INLINE void load16(const float *y, int64_t nr, __m256 *lo, __m256 *hi) {
    if (nr == TAI_PANEL) {
        *lo = _mm256_loadu_ps(y);
        *hi = _mm256_loadu_ps(y + 8);
        return;
    }
    *lo = _mm256_maskload_ps(y, lane_mask(nr < 8 ? nr : 8));
    *hi = nr > 8 ? _mm256_maskload_ps(y + 8, lane_mask(nr - 8)) : _mm256_setzero_ps();
}

/* ======================= F32 and F16 ====================================== */

/* Rows 8h..8h+7 of panel `w` at step k: F32 as stored, F16 widened. */
INLINE __m256 ldw(const void *w, int64_t k, int h, int f16) {
    if (f16)
        return _mm256_cvtph_ps(
            _mm_load_si128((const __m128i *)((const uint16_t *)w + k * 16 + 8 * h)));
    return _mm256_load_ps((const float *)w + k * 16 + 8 * h);
}

/* Streaming: NS panels side by side (pb bytes apart) times W (1..7)
 * columns laid out x[k * W + j]. Every output is one chain of FMAs over k
 * in order, as in the blocked loop, so a column's result does not depend on
 * how many columns share the product (batch invariance); narrow groups read
 * several panels at once instead, whose independent chains hide the FMA
 * latency. */
INLINE void f_stream(const char *w, size_t pb, const float *x, int64_t n, int W, int NS,
                     int f16, __m256 lo[4][7], __m256 hi[4][7], size_t pf1, size_t pf2) {
    UNROLL
    for (int s = 0; s < NS; s++)
        UNROLL
        for (int j = 0; j < W; j++) lo[s][j] = hi[s][j] = _mm256_setzero_ps();
    for (int64_t k = 0; k < n; k++) {
        UNROLL
        for (int s = 0; s < NS; s++) {
            const char *ws = w + (size_t)s * pb;
            /* one 64-byte line holds 16 F32 or 32 F16 weights */
            if ((k & (f16 ? 1 : 0)) == 0) {
                const char *line = ws + k * (f16 ? 32 : 64);
                if (pf1) _mm_prefetch(line + pf1, _MM_HINT_T0);
                if (pf2) _mm_prefetch(line + pf2, _MM_HINT_T1);
            }
            __m256 w0 = ldw(ws, k, 0, f16), w1 = ldw(ws, k, 1, f16);
            UNROLL
            for (int j = 0; j < W; j++) {
                __m256 bc = _mm256_broadcast_ss(x + k * W + j);
                lo[s][j] = _mm256_fmadd_ps(w0, bc, lo[s][j]);
                hi[s][j] = _mm256_fmadd_ps(w1, bc, hi[s][j]);
            }
        }
    }
}

/* S panels from p through f_stream, stored. */
INLINE void f_stream_panels(const char *wp, size_t pb, const float *x, float *y, int64_t ys,
                            int64_t n, int64_t rows, int64_t p, int W, int S, int f16,
                            size_t pf1, size_t pf2) {
    __m256 lo[4][7], hi[4][7];
    f_stream(wp + (size_t)p * pb, pb, x, n, W, S, f16, lo, hi, pf1, pf2);
    UNROLL
    for (int s = 0; s < S; s++)
        UNROLL
        for (int j = 0; j < W; j++)
            store16(y + j * ys + (p + s) * TAI_PANEL, panel_rows(rows, p + s), lo[s][j], hi[s][j]);
}

INLINE void f_stream_group(const char *wp, size_t pb, const float *x, float *y, int64_t ys,
                           int64_t n, int64_t rows, int64_t p0, int64_t p1, int W, int f16) {
    const tai_kernel_tuning tu = tai_k_tuning();
    const size_t pf1 = (size_t)tu.prefetch_l1, pf2 = (size_t)tu.prefetch_l2;
    /* a single column reads two panels at once: four chains (two per row half) */
    int64_t p = p0;
    for (; W == 1 && p + 2 <= p1; p += 2) f_stream_panels(wp, pb, x, y, ys, n, rows, p, W, 2, f16, pf1, pf2);
    for (; p < p1; p++) f_stream_panels(wp, pb, x, y, ys, n, rows, p, W, 1, f16, pf1, pf2);
}

/* Blocked: one panel slice (floats w[k * 16 + r]) times 4 columns of a group
 * (x[k * 8 + j], j < 4) over k in [0, kl), added to (or, when `first`,
 * stored into) the panel's rows of those columns of y. */
INLINE void f_tile(const float *w, const float *x, int64_t kl, float *y, int64_t ys,
                   int64_t nr, int first) {
    enum { J = 4 };
    __m256 a0[J], a1[J];
    UNROLL
    for (int j = 0; j < J; j++) {
        if (first)
            a0[j] = a1[j] = _mm256_setzero_ps();
        else
            load16(y + j * ys, nr, &a0[j], &a1[j]);
    }
    for (int64_t k = 0; k < kl; k++) {
        __m256 w0 = _mm256_load_ps(w + k * 16), w1 = _mm256_load_ps(w + k * 16 + 8);
        UNROLL
        for (int j = 0; j < J; j++) {
            __m256 b = _mm256_broadcast_ss(x + k * 8 + j);
            a0[j] = _mm256_fmadd_ps(w0, b, a0[j]);
            a1[j] = _mm256_fmadd_ps(w1, b, a1[j]);
        }
    }
    UNROLL
    for (int j = 0; j < J; j++) store16(y + j * ys, nr, a0[j], a1[j]);
}

#define F_KC 256 /* k per slice: 512 columns x 256 x 4 B = 512 KiB of x in L2,
                  * 16 KiB of panel slice (as floats) in L1 */

INLINE void f_gemm(const void *restrict wp, size_t pb, const void *restrict xp,
                   float *restrict y, int64_t ys, int64_t n, int64_t rows, int64_t p0,
                   int64_t p1, int64_t ncols, int f16) {
    const char *w = wp;
    const float *x = xp;
    const int64_t full = ncols / TAI_NR, tail = ncols % TAI_NR;
    const size_t esz = f16 ? 2 : 4;
    /* an F16 panel slice widened once, then used by every group */
    _Alignas(64) float wide[TAI_TUNE_MAX_K_SLICE * 16];
    const int64_t kc = tai_k_slice(F_KC);
    for (int64_t k0 = 0; full > 0 && k0 < n; k0 += kc) {
        const int64_t kl = n - k0 < kc ? n - k0 : kc;
        for (int64_t p = p0; p < p1; p++) {
            const void *ws = w + (size_t)p * pb + (size_t)k0 * 16 * esz;
            const float *wf = ws;
            if (f16) {
                for (int64_t k = 0; k < kl; k++) {
                    _mm256_store_ps(wide + k * 16, ldw(ws, k, 0, 1));
                    _mm256_store_ps(wide + k * 16 + 8, ldw(ws, k, 1, 1));
                }
                wf = wide;
            }
            const int64_t nr = panel_rows(rows, p);
            for (int64_t g = 0; g < full; g++) {
                const float *xg = x + g * TAI_NR * n + k0 * TAI_NR;
                float *yg = y + g * TAI_NR * ys + p * TAI_PANEL;
                f_tile(wf, xg, kl, yg, ys, nr, k0 == 0);
                f_tile(wf, xg + 4, kl, yg + 4 * ys, ys, nr, k0 == 0);
            }
        }
    }
    if (tail > 0) {
        const float *xt = x + full * TAI_NR * n;
        float *yt = y + full * TAI_NR * ys;
#define TAIL(W) f_stream_group(w, pb, xt, yt, ys, n, rows, p0, p1, W, f16)
        TAI_TAIL_SWITCH(tail, TAIL)
#undef TAIL
    }
}

TAI_GEMM_ENTRY(tai_k_gemm_f32_avx2, f_gemm, 0)

TAI_GEMM_ENTRY(tai_k_gemm_f16_avx2, f_gemm, 1)

/* ======================= Q8_0, Q4_0, Q4_1 ================================= */

enum { T_Q8_0, T_Q4_0, T_Q4_1 };

/* The tai_type of a block-type selector (for the panel offsets of
 * kernels_internal.h). */
#define TT(T) ((T) == T_Q8_0 ? TAI_TYPE_Q8_0 : (T) == T_Q4_0 ? TAI_TYPE_Q4_0 : TAI_TYPE_Q4_1)

/* Activation bytes 4g..4g+3 of a q8a block in every 32-bit lane. */
INLINE __m256i bcast4(const tai_block_q8a *a, int g) {
    int32_t v;
    memcpy(&v, a->qs + 4 * g, 4);
    return _mm256_set1_epi32(v);
}

/* One step of a block's integer sum for 8 rows: s += w . a per 32-bit lane
 * (four products of one row). Q4: w the codes 0..15, s 16-bit (widened once
 * per block by q_finish). Q8_0: w the signed weights, wa their magnitudes,
 * s 32-bit. KEEP pins each partial sum, so the add chains stay chains. */
INLINE __m256i q_step(__m256i s, __m256i w, __m256i wa, __m256i a, int T) {
    if (T == T_Q8_0)
        s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(wa, _mm256_sign_epi8(a, w)),
                                                  _mm256_set1_epi16(1)));
    else
        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(w, a));
    KEEP(s);
    return s;
}

/* The exact integer sum of a block from the q_step sums: widened, and
 * started from n8 for Q4_0 (the code bias; Q8_0's sign trick has none). */
INLINE __m256i q_finish(__m256i s, const tai_block_q8a *a, int T) {
    if (T == T_Q8_0) return s;
    s = _mm256_madd_epi16(s, _mm256_set1_epi16(1));
    if (T == T_Q4_0) s = _mm256_add_epi32(s, _mm256_set1_epi32(a->n8));
    return s;
}

/* acc += d_w * (d_x * isum) [+ m_w * s_x]: one block of one column, 8 rows. */
INLINE __m256 q_scale(__m256i isum, const tai_block_q8a *a, __m256 dw, __m256 mw, __m256 acc,
                      int T) {
    __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(a->d));
    acc = _mm256_fmadd_ps(f, dw, acc);
    if (T == T_Q4_1) acc = _mm256_fmadd_ps(mw, _mm256_set1_ps(a->s), acc);
    return acc;
}

/* 8 fp16 scales widened. */
INLINE __m256 ld_scales(const uint16_t *s) {
    return _mm256_cvtph_ps(_mm_load_si128((const __m128i *)s));
}

/* Code vector (g, h) of a block (elements 4g..4g+3 of rows 8h..8h+7) as
 * q_step operands. Q4: vector g pairs with the low (even g) or high (odd g)
 * nibbles of stored vector g / 2. Q8_0: q = code ^ 0x80 and |q|. */
INLINE void q_code(const uint8_t *q, int g, int h, int T, __m256i *w, __m256i *wa) {
    if (T == T_Q8_0) {
        *w = _mm256_xor_si256(_mm256_load_si256((const __m256i *)(q + 64 * g + 32 * h)),
                              _mm256_set1_epi8((char)0x80));
        *wa = _mm256_abs_epi8(*w);
        return;
    }
    __m256i c = _mm256_load_si256((const __m256i *)(q + 64 * (g / 2) + 32 * h));
    if (g % 2) c = _mm256_srli_epi16(c, 4);
    *w = *wa = _mm256_and_si256(c, _mm256_set1_epi8(0x0f));
}

/* Streaming: one panel at a time times W (1..7) columns (x blocks [b][W]).
 * The codes are decoded a vector at a time and used at once by every
 * column, so only the W pairs of integer sums and accumulators stay live. */
INLINE void q_stream_group(const char *wp, size_t pb, const tai_block_q8a *x, float *y,
                           int64_t ys, int64_t nb, int64_t rows, int64_t p0, int64_t p1,
                           int W, int T) {
    const tai_kernel_tuning tu = tai_k_tuning();
    const size_t pf1 = (size_t)tu.prefetch_l1, pf2 = (size_t)tu.prefetch_l2;
    /* a block's codes, plus its scales (and minimums) every other block */
    const size_t cb = tai_qcode_bytes(TT(T));
    for (int64_t p = p0; p < p1; p++) {
        const uint8_t *q = (const uint8_t *)wp + (size_t)p * pb;
        __m256 acc[7][2];
        UNROLL
        for (int j = 0; j < W; j++) acc[j][0] = acc[j][1] = _mm256_setzero_ps();
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *qb = q + tai_qcodes_at(TT(T), b);
            if (pf1 | pf2) {
                const size_t len = cb + ((b & 1) ? tai_qpair_bytes(TT(T)) - 2 * cb : 0);
                for (size_t l = 0; l < len; l += 64) {
                    if (pf1) _mm_prefetch((const char *)qb + pf1 + l, _MM_HINT_T0);
                    if (pf2) _mm_prefetch((const char *)qb + pf2 + l, _MM_HINT_T1);
                }
            }
            const uint16_t *d = (const uint16_t *)(q + tai_qscales_at(TT(T), b));
            const uint16_t *m = (const uint16_t *)(q + tai_qmins_at(TT(T), b));
            const tai_block_q8a *xb = x + b * W;
            __m256i s[7][2];
            UNROLL
            for (int j = 0; j < W; j++) s[j][0] = s[j][1] = _mm256_setzero_si256();
            UNROLL
            for (int g = 0; g < 8; g++) {
                __m256i w[2], wa[2];
                UNROLL
                for (int h = 0; h < 2; h++) q_code(qb, g, h, T, &w[h], &wa[h]);
                UNROLL
                for (int j = 0; j < W; j++) {
                    __m256i a = bcast4(&xb[j], g);
                    UNROLL
                    for (int h = 0; h < 2; h++) s[j][h] = q_step(s[j][h], w[h], wa[h], a, T);
                }
            }
            UNROLL
            for (int h = 0; h < 2; h++) {
                __m256 dw = ld_scales(d + 8 * h);
                __m256 mw = T == T_Q4_1 ? ld_scales(m + 8 * h) : dw;
                UNROLL
                for (int j = 0; j < W; j++)
                    acc[j][h] = q_scale(q_finish(s[j][h], &xb[j], T), &xb[j], dw, mw, acc[j][h], T);
            }
        }
        const int64_t nr = panel_rows(rows, p);
        UNROLL
        for (int j = 0; j < W; j++) store16(y + j * ys + p * TAI_PANEL, nr, acc[j][0], acc[j][1]);
    }
}

#define Q_KB 16 /* blocks per slice: 512 columns x 16 x 48 B = 384 KiB of x in L2 */

/* Bytes of one decoded block in the slice buffer: the 16 operand vectors
 * (g, h) at (2g + h) * 32, and for Q8_0 the 16 magnitude vectors after them. */
#define UBYTES(T) ((T) == T_Q8_0 ? 1024 : 512)

/* Blocked: blocks [0, bl) of a decoded panel slice (u; float scales dw / mw
 * [b][16]) times 4 columns of one group (x blocks [b][8], j < 4), added to
 * (or, when `first`, stored into) y. Per block and row half: 4 integer sums,
 * 4 activation broadcasts, one weight vector (two for Q8_0); the 8 float
 * accumulators are only touched once per block, so they are what spills. */
INLINE void q_tile(const uint8_t *u, const float *dw, const float *mw,
                   const tai_block_q8a *x, int64_t bl, float *y, int64_t ys, int64_t nr,
                   int first, int T) {
    enum { J = 4 };
    __m256 acc[J][2];
    UNROLL
    for (int j = 0; j < J; j++) {
        if (first)
            acc[j][0] = acc[j][1] = _mm256_setzero_ps();
        else
            load16(y + j * ys, nr, &acc[j][0], &acc[j][1]);
    }
    for (int64_t b = 0; b < bl; b++) {
        const tai_block_q8a *xb = x + b * TAI_NR;
        const uint8_t *ub = u + (size_t)b * UBYTES(T);
        __m256i s[J][2];
        UNROLL
        for (int j = 0; j < J; j++) s[j][0] = s[j][1] = _mm256_setzero_si256();
        UNROLL
        for (int g = 0; g < 8; g++) {
            __m256i a[J];
            UNROLL
            for (int j = 0; j < J; j++) a[j] = bcast4(&xb[j], g);
            UNROLL
            for (int h = 0; h < 2; h++) {
                __m256i w = _mm256_load_si256((const __m256i *)(ub + (2 * g + h) * 32));
                __m256i wa = T == T_Q8_0 ? _mm256_load_si256(
                                               (const __m256i *)(ub + 512 + (2 * g + h) * 32))
                                         : w;
                UNROLL
                for (int j = 0; j < J; j++) s[j][h] = q_step(s[j][h], w, wa, a[j], T);
            }
        }
        UNROLL
        for (int h = 0; h < 2; h++) {
            __m256 d = _mm256_load_ps(dw + b * 16 + 8 * h);
            __m256 m = T == T_Q4_1 ? _mm256_load_ps(mw + b * 16 + 8 * h) : d;
            UNROLL
            for (int j = 0; j < J; j++)
                acc[j][h] = q_scale(q_finish(s[j][h], &xb[j], T), &xb[j], d, m, acc[j][h], T);
        }
    }
    UNROLL
    for (int j = 0; j < J; j++) store16(y + j * ys, nr, acc[j][0], acc[j][1]);
}

INLINE void q_gemm(const void *restrict wp, size_t pb, const void *restrict xp,
                   float *restrict y, int64_t ys, int64_t n, int64_t rows, int64_t p0,
                   int64_t p1, int64_t ncols, int T) {
    const char *w = wp;
    const tai_block_q8a *x = xp;
    const int64_t nb = n / TAI_QK;
    const int64_t full = ncols / TAI_NR, tail = ncols % TAI_NR;
    /* one panel slice decoded (nibbles split, Q8_0 signs recovered, scales
     * widened) once, then used by every group */
    _Alignas(64) uint8_t u[TAI_TUNE_MAX_K_SLICE / TAI_QK * UBYTES(T_Q8_0)];
    _Alignas(64) float dw[TAI_TUNE_MAX_K_SLICE / TAI_QK * TAI_PANEL],
        mw[TAI_TUNE_MAX_K_SLICE / TAI_QK * TAI_PANEL];
    const int64_t kb = tai_k_slice(Q_KB * TAI_QK) / TAI_QK;
    for (int64_t b0 = 0; full > 0 && b0 < nb; b0 += kb) {
        const int64_t bl = nb - b0 < kb ? nb - b0 : kb;
        for (int64_t p = p0; p < p1; p++) {
            const uint8_t *q = (const uint8_t *)w + (size_t)p * pb;
            for (int64_t b = 0; b < bl; b++) {
                const uint8_t *codes = q + tai_qcodes_at(TT(T), b0 + b);
                const uint16_t *d = (const uint16_t *)(q + tai_qscales_at(TT(T), b0 + b));
                const uint16_t *m = (const uint16_t *)(q + tai_qmins_at(TT(T), b0 + b));
                uint8_t *ub = u + (size_t)b * UBYTES(T);
                UNROLL
                for (int g = 0; g < 8; g++)
                    UNROLL
                    for (int h = 0; h < 2; h++) {
                        __m256i cw, ca;
                        q_code(codes, g, h, T, &cw, &ca);
                        _mm256_store_si256((__m256i *)(ub + (2 * g + h) * 32), cw);
                        if (T == T_Q8_0)
                            _mm256_store_si256((__m256i *)(ub + 512 + (2 * g + h) * 32), ca);
                    }
                UNROLL
                for (int h = 0; h < 2; h++) {
                    _mm256_store_ps(dw + b * 16 + 8 * h, ld_scales(d + 8 * h));
                    if (T == T_Q4_1) _mm256_store_ps(mw + b * 16 + 8 * h, ld_scales(m + 8 * h));
                }
            }
            const int64_t nr = panel_rows(rows, p);
            for (int64_t g = 0; g < full; g++) {
                const tai_block_q8a *xg = x + g * TAI_NR * nb + b0 * TAI_NR;
                float *yg = y + g * TAI_NR * ys + p * TAI_PANEL;
                q_tile(u, dw, mw, xg, bl, yg, ys, nr, b0 == 0, T);
                q_tile(u, dw, mw, xg + 4, bl, yg + 4 * ys, ys, nr, b0 == 0, T);
            }
        }
    }
    if (tail > 0) {
        const tai_block_q8a *xt = x + full * TAI_NR * nb;
        float *yt = y + full * TAI_NR * ys;
#define TAIL(W) q_stream_group(w, pb, xt, yt, ys, nb, rows, p0, p1, W, T)
        TAI_TAIL_SWITCH(tail, TAIL)
#undef TAIL
    }
}

TAI_GEMM_ENTRY(tai_k_gemm_q8_0_avx2, q_gemm, T_Q8_0)

TAI_GEMM_ENTRY(tai_k_gemm_q4_0_avx2, q_gemm, T_Q4_0)

TAI_GEMM_ENTRY(tai_k_gemm_q4_1_avx2, q_gemm, T_Q4_1)

/* ======================= Attention and SwiGLU ============================= */

/* e^x for 8 floats: x = n ln2 + r with |r| <= ln2 / 2, e^r by a degree-6
 * Taylor polynomial, times 2^n built in the exponent field. x is clamped to
 * [-87, 88] so 2^n stays a normal float; below that e^x is under 1.7e-38
 * and is flushed to 0 (what softmax and silu want), above it overflows to
 * inf as it should. */
INLINE __m256 exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.0f), hi = _mm256_set1_ps(88.0f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    __m256 over = _mm256_cmp_ps(x, hi, _CMP_GT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    /* 2^n for n in [-126, 127]: (n + 127) << 23 */
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 v = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    v = _mm256_andnot_ps(under, v);
    return _mm256_blendv_ps(v, _mm256_set1_ps(INFINITY), over);
}

/* Lanes [0, left) of 8 as a vmaskmov mask. */
INLINE __m256i lanes(int64_t left) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(left > 8 ? 8 : left)), idx);
}

INLINE float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Cache elements [i, i + 8) (lanes m: the first `left`) of a float cache
 * or a binary16 one (f16), widened exactly. */
INLINE __m256 kv_load8(const void *cache, int64_t i, __m256i m, int64_t left, int f16) {
    if (!f16) return _mm256_maskload_ps((const float *)cache + i, m);
    const uint16_t *h = (const uint16_t *)cache + i;
    if (left >= 8) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
    uint16_t t[8] = {0};
    memcpy(t, h, (size_t)left * sizeof *t);
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)t));
}

/* As tai_attention, 8 lanes at a time (see the AVX-512 version), over a
 * float cache or a binary16 one (f16). */
INLINE void attention_avx2(float *out, const float *q, const void *k_cache, const void *v_cache,
                           int64_t n_pos, int64_t kv_stride, int n_head, int n_kv_head,
                           int head_dim, float *att, int f16) {
    if (n_head <= 0 || n_kv_head <= 0 || head_dim <= 0 || n_head % n_kv_head != 0) return;
    const int group = n_head / n_kv_head;
    const float scale = 1.0f / sqrtf((float)head_dim);
    const int nv = (head_dim + 7) / 8;
    for (int h = 0; h < n_head; h++) {
        const float *qh = q + (int64_t)h * head_dim;
        const int64_t kv_off = (int64_t)(h / group) * head_dim;
        float *oh = out + (int64_t)h * head_dim;
        if (n_pos <= 0) {
            for (int d = 0; d < head_dim; d++) oh[d] = 0.0f;
            continue;
        }
        float mx = -INFINITY;
        for (int64_t p = 0; p < n_pos; p++) {
            const int64_t kp = p * kv_stride + kv_off;
            __m256 acc = _mm256_setzero_ps();
            for (int i = 0; i < nv; i++) {
                __m256i m = lanes(head_dim - 8 * i);
                acc = _mm256_fmadd_ps(_mm256_maskload_ps(qh + 8 * i, m),
                                      kv_load8(k_cache, kp + 8 * i, m, head_dim - 8 * i, f16), acc);
            }
            att[p] = hsum8(acc) * scale;
            if (att[p] > mx) mx = att[p];
        }
        __m256 vsum = _mm256_setzero_ps();
        for (int64_t p = 0; p < n_pos; p += 8) {
            __m256i m = lanes(n_pos - p);
            __m256 e = exp8(_mm256_sub_ps(_mm256_maskload_ps(att + p, m), _mm256_set1_ps(mx)));
            e = _mm256_and_ps(e, _mm256_castsi256_ps(m));
            _mm256_maskstore_ps(att + p, m, e);
            vsum = _mm256_add_ps(vsum, e);
        }
        const __m256 inv = _mm256_set1_ps(1.0f / hsum8(vsum));
        for (int i = 0; i < nv; i++) {
            const __m256i m = lanes(head_dim - 8 * i);
            __m256 o0 = _mm256_setzero_ps(), o1 = _mm256_setzero_ps();
            int64_t p = 0;
            for (; p + 2 <= n_pos; p += 2) {
                const int64_t v0 = p * kv_stride + kv_off + 8 * i;
                o0 = _mm256_fmadd_ps(_mm256_set1_ps(att[p]),
                                     kv_load8(v_cache, v0, m, head_dim - 8 * i, f16), o0);
                o1 = _mm256_fmadd_ps(_mm256_set1_ps(att[p + 1]),
                                     kv_load8(v_cache, v0 + kv_stride, m, head_dim - 8 * i, f16),
                                     o1);
            }
            if (p < n_pos)
                o0 = _mm256_fmadd_ps(_mm256_set1_ps(att[p]),
                                     kv_load8(v_cache, p * kv_stride + kv_off + 8 * i, m,
                                              head_dim - 8 * i, f16),
                                     o0);
            _mm256_maskstore_ps(oh + 8 * i, m, _mm256_mul_ps(_mm256_add_ps(o0, o1), inv));
        }
    }
}

void tai_k_attention_avx2(float *out, const float *q, const float *k_cache,
                          const float *v_cache, int64_t n_pos, int64_t kv_stride, int n_head,
                          int n_kv_head, int head_dim, float *att) {
    attention_avx2(out, q, k_cache, v_cache, n_pos, kv_stride, n_head, n_kv_head, head_dim, att, 0);
}

void tai_k_attention_f16_avx2(float *out, const float *q, const uint16_t *k_cache,
                              const uint16_t *v_cache, int64_t n_pos, int64_t kv_stride,
                              int n_head, int n_kv_head, int head_dim, float *att) {
    attention_avx2(out, q, k_cache, v_cache, n_pos, kv_stride, n_head, n_kv_head, head_dim, att, 1);
}

/* As tai_f32_to_f16_row (F16C rounds to nearest even and keeps NaNs quiet
 * with their top payload bits, as the portable conversion does). */
void tai_k_f32_to_f16_avx2(const float *src, uint16_t *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) dst[i] = tai_fp32_to_fp16(src[i]);
}

/* gate = gate / (1 + e^arg) * up, 8 at a time: arg = -gate (SwiGLU's
 * SiLU) or, with `gelu`, -2z, z = sqrt(2 / pi) (g + 0.044715 g^3)
 * (tai_gelu_mul's form of GeGLU's tanh GELU). */
static inline __attribute__((always_inline)) void glu_mul_avx2(float *gate, const float *up,
                                                               int64_t n, int gelu) {
    const __m256 k2 = _mm256_set1_ps(-2.0f * 0.7978845608028654f), c = _mm256_set1_ps(0.044715f);
    for (int64_t i = 0; i < n; i += 8) {
        __m256i m = lanes(n - i);
        __m256 g = _mm256_maskload_ps(gate + i, m);
        __m256 arg = gelu ? _mm256_mul_ps(k2, _mm256_add_ps(g, _mm256_mul_ps(_mm256_mul_ps(c, g), _mm256_mul_ps(g, g))))
                          : _mm256_sub_ps(_mm256_setzero_ps(), g);
        __m256 r = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(arg)));
        _mm256_maskstore_ps(gate + i, m, _mm256_mul_ps(r, _mm256_maskload_ps(up + i, m)));
    }
}

void tai_k_silu_mul_avx2(float *gate, const float *up, int64_t n) { glu_mul_avx2(gate, up, n, 0); }

void tai_k_gelu_mul_avx2(float *gate, const float *up, int64_t n) { glu_mul_avx2(gate, up, n, 1); }

/* x += d, 8 at a time. */
void tai_k_add_avx2(float *x, const float *d, int64_t n) {
    for (int64_t i = 0; i < n; i += 8) {
        __m256i m = lanes(n - i);
        _mm256_maskstore_ps(x + i, m, _mm256_add_ps(_mm256_maskload_ps(x + i, m), _mm256_maskload_ps(d + i, m)));
    }
}

/* ======================= Activation quantization ========================== */

/* As tai_quantize_row_q8a, bit for bit (see the AVX-512 version). */
void tai_k_quantize_q8a_avx2(const float *src, tai_block_q8a *dst, int64_t n) {
    if (n <= 0 || n % TAI_QK != 0) return;
    const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
    for (int64_t i = 0; i < n / TAI_QK; i++) {
        const float *xb = src + i * TAI_QK;
        __m256 x[4];
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < 4; j++) {
            x[j] = _mm256_loadu_ps(xb + 8 * j);
            m = _mm256_max_ps(_mm256_andnot_ps(sign, x[j]), m); /* NaN -> m */
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float d = _mm_cvtss_f32(m4) / 127.0f;
        __m256i q[4];
        for (int j = 0; j < 4; j++) q[j] = _mm256_setzero_si256();
        if (d != 0.0f) {
            const float iv = 1.0f / d;
            const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
            for (int j = 0; j < 4; j++) {
                /* x * (1 / d), or x / d where 1 / d overflows; clamped (NaN
                 * -> -127), to the nearest integer, ties to even */
                const __m256 v = isinf(iv) ? _mm256_div_ps(x[j], _mm256_set1_ps(d))
                                           : _mm256_mul_ps(x[j], _mm256_set1_ps(iv));
                q[j] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_min_ps(_mm256_max_ps(v, lo), hi),
                                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
            }
        }
        __m256i s32 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        const int sum = _mm_cvtsi128_si32(s4);
        /* int32 -> int8 with saturation (values are within +-127): packs
         * work per 128-bit lane, so put the dwords back in order after */
        __m256i w01 = _mm256_packs_epi32(q[0], q[1]), w23 = _mm256_packs_epi32(q[2], q[3]);
        __m256i b = _mm256_packs_epi16(w01, w23);
        b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)dst[i].qs, b);
        dst[i].d = d;
        dst[i].s = d * (float)sum;
        dst[i].n8 = -8 * sum;
        dst[i].n128 = -128 * sum;
    }
}

#endif /* __x86_64__ */
