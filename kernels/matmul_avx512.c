/*
 * kernels/matmul_avx512.c: AVX-512 (F/BW/VL/DQ + VNNI) packed product
 * kernels (layer: kernels). Compiled alone with the AVX-512 flags (see
 * BUILD); only called when tai_isa_supported(TAI_ISA_AVX512). Layouts are
 * those of kernels.h: weights in panels of 16 rows, so one zmm register holds
 * one value of each of the 16 rows of a panel and no horizontal sums are
 * ever needed; activations in groups of 8 columns.
 *
 * Two loop shapes per type:
 *  - streaming (matrix-vector; the last group of fewer than 8 columns): each
 *    panel is read once, front to back, and multiplied into every column of
 *    the group while it is in registers. Memory bound by design: the work per
 *    byte is a few instructions, far below what a core can issue. Software
 *    prefetch into L1 and L2 at the machine's tuned distances
 *    (tai_kernels_set_tuning): on Sapphire Rapids-class cores the
 *    out-of-order window holds too few loads of these loops to cover memory
 *    latency on its own.
 *  - blocked (matrix-matrix; every full group of 8 columns): K is cut into
 *    slices that keep the activations of all groups in L2 and the current
 *    slice of one or two panels in L1; a register tile of 32 rows x 8
 *    columns (floats: 16 accumulators, two weight loads and eight broadcast
 *    activations per step of k) or 16 x 8 (block types) is accumulated, then
 *    added into y.
 *
 * Block types: vpdpbusd multiplies the unsigned packed codes by the signed
 * q8a activations, four bytes per 32-bit lane, so lane r of one instruction
 * adds four products of row r. The integer sum of a block starts at the
 * activation's n8 / n128, which cancels the code bias exactly; it is then
 * converted to float and scaled by d_x (a broadcast) and d_w (a vector of
 * the 16 rows' scales): y += d_w * (d_x * isum) [+ m_w * s_x for Q4_1].
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

#include "kernels/q_float.h"

#define INLINE static inline __attribute__((always_inline))

/* Rows of panel p that exist, as a store mask. */
INLINE __mmask16 row_mask(int64_t rows, int64_t p) {
    int64_t v = rows - p * TAI_PANEL;
    return v >= TAI_PANEL ? (__mmask16)0xffff : (__mmask16)((1u << v) - 1u);
}

/* ======================= F32 and F16 ====================================== */

/* 16 weights of row panel `w` at step k: F32 as stored, F16 widened. */
INLINE __m512 ldw(const void *w, int64_t k, int f16) {
    if (f16)
        return _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)((const uint16_t *)w + k * 16)));
    return _mm512_load_ps((const float *)w + k * 16);
}

/* Streaming: NS panels side by side (pb bytes apart) times W (1..7)
 * columns laid out x[k * W + j]. Every output is one chain of FMAs over k
 * in order, as in the blocked loop, so a column's result does not depend on
 * how many columns share the product (batch invariance); narrow groups read
 * several panels at once instead, whose independent chains hide the FMA
 * latency. */
INLINE void f_stream(const char *w, size_t pb, const float *x, int64_t n, int W, int NS,
                     int f16, __m512 out[4][7], size_t pf1, size_t pf2) {
    #pragma GCC unroll 4
    for (int s = 0; s < NS; s++)
        #pragma GCC unroll 8
        for (int j = 0; j < W; j++) out[s][j] = _mm512_setzero_ps();
    for (int64_t k = 0; k < n; k++) {
        #pragma GCC unroll 4
        for (int s = 0; s < NS; s++) {
            const char *ws = w + (size_t)s * pb;
            /* one 64-byte line holds 16 F32 or 32 F16 weights */
            if ((k & (f16 ? 1 : 0)) == 0) {
                const char *line = ws + k * (f16 ? 32 : 64);
                if (pf1) _mm_prefetch(line + pf1, _MM_HINT_T0);
                if (pf2) _mm_prefetch(line + pf2, _MM_HINT_T1);
            }
            __m512 wv = ldw(ws, k, f16);
            #pragma GCC unroll 8
            for (int j = 0; j < W; j++)
                out[s][j] = _mm512_fmadd_ps(wv, _mm512_set1_ps(x[k * W + j]), out[s][j]);
        }
    }
}

/* S panels from p through f_stream, stored. */
INLINE void f_stream_panels(const char *wp, size_t pb, const float *x, float *y, int64_t ys,
                            int64_t n, int64_t rows, int64_t p, int W, int S, int f16,
                            size_t pf1, size_t pf2) {
    __m512 o[4][7];
    f_stream(wp + (size_t)p * pb, pb, x, n, W, S, f16, o, pf1, pf2);
    #pragma GCC unroll 4
    for (int s = 0; s < S; s++)
        #pragma GCC unroll 8
        for (int j = 0; j < W; j++)
            _mm512_mask_storeu_ps(y + j * ys + (p + s) * TAI_PANEL, row_mask(rows, p + s), o[s][j]);
}

INLINE void f_stream_group(const char *wp, size_t pb, const float *x, float *y,
                           int64_t ys, int64_t n, int64_t rows, int64_t p0, int64_t p1,
                           int W, int f16) {
    const tai_kernel_tuning tu = tai_k_tuning();
    const size_t pf1 = (size_t)tu.prefetch_l1, pf2 = (size_t)tu.prefetch_l2;
    /* at least four independent chains where the group allows */
    const int NS = W == 1 ? 4 : (W < 4 ? 2 : 1);
    int64_t p = p0;
    for (; NS == 4 && p + 4 <= p1; p += 4) f_stream_panels(wp, pb, x, y, ys, n, rows, p, W, 4, f16, pf1, pf2);
    for (; NS >= 2 && p + 2 <= p1; p += 2) f_stream_panels(wp, pb, x, y, ys, n, rows, p, W, 2, f16, pf1, pf2);
    for (; p < p1; p++) f_stream_panels(wp, pb, x, y, ys, n, rows, p, W, 1, f16, pf1, pf2);
}

/* Blocked: the 8 columns of x (layout x[k * 8 + j]) times NP (1..3)
 * consecutive panels (w, pb bytes apart) over k in [0, kl), added to (or,
 * when `first`, stored into) y. 8 x NP accumulators. */
INLINE void f_tile(const char *w, size_t pb, const float *x, int64_t kl, float *y, int64_t ys,
                   int64_t row0, const __mmask16 mk[3], int first, int NP, int f16) {
    __m512 a[3][8];
#pragma GCC unroll 3
    for (int i = 0; i < NP; i++)
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            a[i][j] = first ? _mm512_setzero_ps()
                            : _mm512_maskz_loadu_ps(mk[i], y + j * ys + row0 + i * TAI_PANEL);
    for (int64_t k = 0; k < kl; k++) {
        __m512 v[3];
#pragma GCC unroll 3
        for (int i = 0; i < NP; i++) v[i] = ldw(w + i * pb, k, f16);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m512 xv = _mm512_set1_ps(x[k * 8 + j]);
#pragma GCC unroll 3
            for (int i = 0; i < NP; i++) a[i][j] = _mm512_fmadd_ps(v[i], xv, a[i][j]);
        }
    }
#pragma GCC unroll 3
    for (int i = 0; i < NP; i++)
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            _mm512_mask_storeu_ps(y + j * ys + row0 + i * TAI_PANEL, mk[i], a[i][j]);
}

#ifndef F_KC
#define F_KC 256 /* k per slice: 512 columns x 256 x 4 B = 512 KiB of x in L2 */
#endif
#ifndef F_NP
#define F_NP 3   /* panels per register tile: 48 rows x 8 columns */
#endif

INLINE void f_gemm(const void *restrict wp, size_t pb, const void *restrict xp,
                   float *restrict y, int64_t ys, int64_t n, int64_t rows, int64_t p0,
                   int64_t p1, int64_t ncols, int f16) {
    const char *w = wp;
    const float *x = xp;
    const int64_t full = ncols / TAI_NR, tail = ncols % TAI_NR;
    const size_t esz = f16 ? 2 : 4;
    const int64_t kc = tai_k_slice(F_KC);
    for (int64_t k0 = 0; full > 0 && k0 < n; k0 += kc) {
        const int64_t kl = n - k0 < kc ? n - k0 : kc;
        for (int64_t p = p0; p < p1; p += F_NP) {
            const int NP = p1 - p < F_NP ? (int)(p1 - p) : F_NP;
            const char *w0 = w + (size_t)p * pb + (size_t)k0 * 16 * esz;
            __mmask16 mk[3] = {0, 0, 0};
            for (int i = 0; i < NP; i++) mk[i] = row_mask(rows, p + i);
            for (int64_t g = 0; g < full; g++) {
                const float *xg = x + g * TAI_NR * n + k0 * TAI_NR;
                float *yg = y + g * TAI_NR * ys;
                const int first = k0 == 0;
                if (NP == 3) f_tile(w0, pb, xg, kl, yg, ys, p * TAI_PANEL, mk, first, 3, f16);
                else if (NP == 2) f_tile(w0, pb, xg, kl, yg, ys, p * TAI_PANEL, mk, first, 2, f16);
                else f_tile(w0, pb, xg, kl, yg, ys, p * TAI_PANEL, mk, first, 1, f16);
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

TAI_GEMM_ENTRY(tai_k_gemm_f32_avx512, f_gemm, 0)

TAI_GEMM_ENTRY(tai_k_gemm_f16_avx512, f_gemm, 1)

/* ======================= Q8_0, Q4_0, Q4_1 ================================= */

enum { T_Q8_0, T_Q4_0, T_Q4_1 };

/* The tai_type of a block-type selector. */
#define TT(T) ((T) == T_Q8_0 ? TAI_TYPE_Q8_0 : (T) == T_Q4_0 ? TAI_TYPE_Q4_0 : TAI_TYPE_Q4_1)

/* The 8 code vectors of block b (vector g: elements 4g..4g+3 of each row).
 * Q4 codes are not shifted down: a high nibble is used in place, as 16 times
 * its value (v & 0xf0), and the sums of those vectors are divided by 16 at
 * the end (exact: they are multiples of 16). One AND per vector instead of
 * shift + AND. */
INLINE void q_codes(const uint8_t *q, int T, __m512i wv[8]) {
    if (T == T_Q8_0) {
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) wv[g] = _mm512_load_si512(q + 64 * g);
        return;
    }
    const __m512i lo4 = _mm512_set1_epi8(0x0f), hi4 = _mm512_set1_epi8((char)0xf0);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        __m512i v = _mm512_load_si512(q + 64 * j);
        wv[2 * j] = _mm512_and_si512(v, lo4);
        wv[2 * j + 1] = _mm512_and_si512(v, hi4);
    }
}

/* A block's integer sum starts from the correction of the weights' bias
 * (Q8_0's 128, Q4_0's 8: packed unsigned) times the codes' sum, Q4_1's
 * from zero. */
INLINE __m512i q_sum_start(const tai_block_q8a *a, int T) {
    return T == T_Q8_0   ? _mm512_set1_epi32(a->n128)
           : T == T_Q4_0 ? _mm512_set1_epi32(a->n8)
                         : _mm512_setzero_si512();
}

/* One column's contribution of one block: acc += d_w * (d_x * isum)
 * (+ m_w * s_x for Q4_1). Four independent chains of two vpdpbusd each:
 * short dependency chains let consecutive blocks overlap. For Q4 the odd
 * vectors (high nibbles, x16) go to chains 2 and 3. */
INLINE __m512 q_col(const __m512i wv[8], const tai_block_q8a *a, __m512 dw, __m512 mw,
                    __m512 acc, int T) {
    const int32_t *aq = (const int32_t *)a->qs;
    __m512i s[4];
    s[0] = q_sum_start(a, T);
    s[1] = s[2] = s[3] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int g = 0; g < 8; g++) {
        const int c = T == T_Q8_0 ? (g & 3) : ((g & 1) << 1) | ((g >> 1) & 1);
        s[c] = _mm512_dpbusd_epi32(s[c], wv[g], _mm512_set1_epi32(aq[g]));
    }
    __m512i hi = _mm512_add_epi32(s[2], s[3]);
    if (T != T_Q8_0) hi = _mm512_srai_epi32(hi, 4);
    __m512i si = _mm512_add_epi32(_mm512_add_epi32(s[0], s[1]), hi);
    return tai_q_scale16(si, a, dw, mw, acc, T);
}

INLINE __m512 ld_scales(const uint16_t *s) {
    return _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)s));
}

/* Streaming: one panel times W (1..7) columns (x blocks [b][W]). Panels
 * are single streams (codes and scales of a pair of blocks together) that
 * follow each other in memory, which the hardware prefetcher follows well
 * on Cascade Lake (software prefetching measured no better there); newer
 * cores need it (the tuning's distances, applied per pair of blocks, may
 * run past the panel into the next one, which is what is read next). For
 * a single column (decoding) several panels are read side by side (Q_SIDE
 * below): more streams and more independent work per step keep more reads
 * in flight (on one thread of a family 6 model 167 Xeon, two panels: Q8_0
 * 87% -> 90-93% and Q4_0 84% -> 88-89% of the read bandwidth; the same at
 * two threads). */
/* Software prefetch of one pair of blocks at the tuned distances. */
INLINE void q_prefetch(const uint8_t *pair, size_t pf1, size_t pf2, size_t pair_bytes) {
    if (pf1)
        for (size_t l = 0; l < pair_bytes; l += 64)
            _mm_prefetch((const char *)pair + pf1 + l, _MM_HINT_T0);
    if (pf2)
        for (size_t l = 0; l < pair_bytes; l += 64)
            _mm_prefetch((const char *)pair + pf2 + l, _MM_HINT_T1);
}

/* Block b + h of panel q (its pair at `pair`): codes, scales, minimums. */
INLINE void q_block(const uint8_t *q, const uint8_t *pair, int64_t b, int h, int T,
                    __m512i wv[8], __m512 *dw, __m512 *mw) {
    q_codes(pair + (size_t)h * tai_qcode_bytes(TT(T)), T, wv);
    *dw = ld_scales((const uint16_t *)(q + tai_qscales_at(TT(T), b + h)));
    *mw = T == T_Q4_1 ? ld_scales((const uint16_t *)(q + tai_qmins_at(TT(T), b + h))) : *dw;
}

/* Panels read side by side by the single-column loop: the Q4 types do
 * twice the work per byte of Q8_0 and keep fewer reads in flight per
 * stream, so they take four streams (on one thread of a family 6 model 167
 * Xeon, Q4_0 85-86% -> 88-89% of the paired read bandwidth with weights in
 * base pages, 93-95% in huge pages as the runtime keeps them); Q8_0 does
 * best with two (88-89% with four, 90-91% with two). */
#define Q_SIDE(T) ((T) == T_Q8_0 ? 2 : 4)
/* Q8_0 panels shorter than TAI_SIDE_MIN_PANEL are read one at a time:
 * side by side, every group of short panels began with a stall that the
 * prefetch distances did not cover (they ran into the side panel, which
 * the other stream was already reading), once per ~11-22 KB; one stream
 * runs straight on into the next panel. One thread of a family 6 model 167
 * Xeon, 178 MB of weights from DRAM: Q8_0 640-wide (Gemma 3's head, 10.9 KB
 * panels) 14.1-14.3 -> 15.0-15.5 GB/s, two threads 26.3-26.7 -> 27.6-28.4;
 * 1280-wide and more, side by side was as fast or faster. The Q4 types
 * keep their four streams whatever the length: from DRAM one stream was
 * faster for short panels too (Q4_1 576-wide, SmolLM2's head: 13.1 -> 14.5
 * GB/s), but SmolLM2's whole decoding step, whose 85 MB of weights partly
 * stay in this machine's L3, lost 13-19% (357 -> 288-310 tok/s): from the
 * cache the four panels' independent work is what counts. */

INLINE void q_stream_group(const char *wp, size_t pb, const tai_block_q8a *x, float *y,
                           int64_t ys, int64_t nb, int64_t rows, int64_t p0, int64_t p1,
                           int W, int T) {
    const tai_kernel_tuning tu = tai_k_tuning();
    const size_t pf1 = (size_t)tu.prefetch_l1, pf2 = (size_t)tu.prefetch_l2;
    const size_t pair_bytes = tai_qpair_bytes(TT(T));
    int64_t p = p0;
    if (W == 1) {
        /* S panels side by side: S streams, S times the independent work */
        const int S = T == T_Q8_0 && pb < TAI_SIDE_MIN_PANEL ? 1 : Q_SIDE(T);
        for (; p + S <= p1; p += S) {
            const uint8_t *qa = (const uint8_t *)wp + (size_t)p * pb;
            __m512 acc[4];
#pragma GCC unroll 4
            for (int s = 0; s < S; s++) acc[s] = _mm512_setzero_ps();
            for (int64_t b = 0; b < nb; b += 2) {
#pragma GCC unroll 4
                for (int s = 0; s < S; s++) {
                    const uint8_t *q = qa + (size_t)s * pb;
                    const uint8_t *pair = q + tai_qcodes_at(TT(T), b);
                    q_prefetch(pair, pf1, pf2, pair_bytes);
#pragma GCC unroll 2
                    for (int h = 0; h < 2; h++) {
                        if (h == 1 && b + 1 >= nb) break;
                        __m512i wv[8];
                        __m512 dw, mw;
                        q_block(q, pair, b, h, T, wv, &dw, &mw);
                        acc[s] = q_col(wv, &x[b + h], dw, mw, acc[s], T);
                    }
                }
            }
#pragma GCC unroll 4
            for (int s = 0; s < S; s++)
                _mm512_mask_storeu_ps(y + (p + s) * TAI_PANEL, row_mask(rows, p + s), acc[s]);
        }
    }
    for (; p < p1; p++) {
        const uint8_t *q = (const uint8_t *)wp + (size_t)p * pb;
        __m512 acc[7];
#pragma GCC unroll 8
        for (int j = 0; j < W; j++) acc[j] = _mm512_setzero_ps();
        for (int64_t b = 0; b < nb; b += 2) {
            const uint8_t *pair = q + tai_qcodes_at(TT(T), b);
            q_prefetch(pair, pf1, pf2, pair_bytes);
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                if (h == 1 && b + 1 >= nb) break;
                __m512i wv[8];
                __m512 dw, mw;
                q_block(q, pair, b, h, T, wv, &dw, &mw);
#pragma GCC unroll 8
                for (int j = 0; j < W; j++)
                    acc[j] = q_col(wv, &x[(b + h) * W + j], dw, mw, acc[j], T);
            }
        }
        __mmask16 mk = row_mask(rows, p);
#pragma GCC unroll 8
        for (int j = 0; j < W; j++)
            _mm512_mask_storeu_ps(y + j * ys + p * TAI_PANEL, mk, acc[j]);
    }
}

#define Q_KB 16 /* blocks per slice: 512 columns x 16 x 48 B = 384 KiB of x in L2 */

/* Blocked: blocks [0, bl) of a slice of one panel, decoded (`codes`, 512
 * bytes per block, Q4 codes 0..15; scales `dw`, minimums `mw` widened to
 * floats, 16 per block), times the 8 columns of one group. */
INLINE void q_tile(const uint8_t *codes, const float *dwf, const float *mwf,
                   const tai_block_q8a *x, int64_t bl, float *y, int64_t ys, int64_t row0,
                   __mmask16 mk, int first, int T) {
    __m512 acc[8];
    tai_q_acc_load(acc, y, ys, row0, mk, first);
    for (int64_t b = 0; b < bl; b++) {
        __m512i wv[8];
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) wv[g] = _mm512_load_si512(codes + (size_t)b * 512 + 64 * g);
        __m512 dw = _mm512_load_ps(dwf + b * TAI_PANEL);
        __m512 mw = T == T_Q4_1 ? _mm512_load_ps(mwf + b * TAI_PANEL) : dw;
        /* the 8 columns' integer sums side by side, one chain each: a
         * vpdpbusd waits on the one 8 before it, not on its neighbour, so
         * the chains fill the ports instead of each column's latency
         * (q_col's order, a column at a time, left the ports idle). The
         * integer sums are exact, so the float steps and the bits are
         * q_col's. Family 6 model 207 Xeon without AMX, one thread, 16
         * columns of a 576 x 1536 Q4_1 product from L3: 96-110 -> 81-95 us;
         * SmolLM2's pp512 1.11x, pp128 1.15x (bench/README.md) */
        const tai_block_q8a *xb = &x[b * 8];
        __m512i si[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) si[j] = q_sum_start(&xb[j], T);
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++)
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++)
                si[j] = _mm512_dpbusd_epi32(si[j], wv[g],
                                            _mm512_set1_epi32(((const int32_t *)xb[j].qs)[g]));
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) acc[j] = tai_q_scale16(si[j], &xb[j], dw, mw, acc[j], T);
    }
    tai_q_acc_store(acc, y, ys, row0, mk);
}

INLINE void q_gemm(const void *restrict wp, size_t pb, const void *restrict xp,
                   float *restrict y, int64_t ys, int64_t n, int64_t rows, int64_t p0,
                   int64_t p1, int64_t ncols, int T) {
    const char *w = wp;
    const tai_block_q8a *x = xp;
    const int64_t nb = n / TAI_QK;
    const int64_t full = ncols / TAI_NR, tail = ncols % TAI_NR;
    /* one slice of a panel decoded once (Q4 nibbles split, scales widened)
     * and used by every column group */
    _Alignas(64) uint8_t codes[TAI_TUNE_MAX_K_SLICE / TAI_QK * 512];
    _Alignas(64) float dwf[TAI_TUNE_MAX_K_SLICE / TAI_QK * TAI_PANEL],
        mwf[TAI_TUNE_MAX_K_SLICE / TAI_QK * TAI_PANEL];
    /* AMX tiles where there are (the same sums, the same float steps) */
    const int amx = full > 0 && tai_k_amx_ready();
    if (amx) tai_k_amx_begin();
    /* slices of about the tuned size, as even as they can be; a row of up
     * to twice that (and the buffers' limit) in one: 18 blocks as 16 + 2
     * visited every panel twice, the second time mostly for overhead
     * (SmolLM2's 576-wide products at 16 columns: head 2.8 -> 2.5 ms a
     * step, gate 1.9 -> 1.8) */
    int64_t kb = tai_k_slice(Q_KB * TAI_QK) / TAI_QK;
    if (nb <= 2 * kb && nb <= TAI_TUNE_MAX_K_SLICE / TAI_QK) {
        kb = nb;
    } else {
        const int64_t nsl = (nb + kb - 1) / kb;
        kb = (nb + nsl - 1) / nsl;
    }
    const size_t pair_bytes = tai_qpair_bytes(TT(T));
    /* with AMX, column groups go in chunks of up to 8 (64 columns), their
     * codes packed for the tiles two groups side by side once per slice */
    enum { AMX_CHUNK = 8 };
    _Alignas(64) int8_t xq[AMX_CHUNK / 2][TAI_TUNE_MAX_K_SLICE / TAI_QK * 512];
    const int64_t gch = amx ? AMX_CHUNK : full;
#define XG(g) (x + (g) * TAI_NR * nb + b0 * TAI_NR)
    for (int64_t b0 = 0; full > 0 && b0 < nb; b0 += kb) {
        const int64_t bl = nb - b0 < kb ? nb - b0 : kb;
        for (int64_t g0 = 0; g0 < full; g0 += gch) {
            const int64_t g1 = full - g0 < gch ? full : g0 + gch;
            if (amx)
                for (int64_t g = g0; g < g1; g += 2)
                    tai_k_q_pack_amx(xq[(g - g0) / 2], XG(g), g + 1 < g1 ? XG(g + 1) : NULL, bl);
            /* one tile product per panel (16 columns or fewer): the next
             * panel's slice is prefetched a few lines a block while the
             * tiles work, where all at once while this one is decoded
             * waited on full fill buffers (SmolLM2, 16 columns: the head
             * 2.35-2.55 -> 2.18 ms a step, gate and up 5% less); wider
             * products (prefill) kept the prefetch at the decode, measured
             * 7-30% faster there */
            const int spread = amx && g1 - g0 <= 2;
            /* and Q8_0's codes, already the tiles' layout in the packed
             * panel, read there instead of copied to `codes` first (16
             * columns, two threads: Gemma 3's 640-wide head 11.6-12.1 ->
             * 10.3-10.7 ms, 576 x 1536 59 -> 53 us; at 32 and 64 columns
             * the slice is read by more tiles and the copy paid for itself:
             * 0.97-1.04x, so it stays there) */
            const int direct = spread && T == T_Q8_0;
            for (int64_t p = p0; p < p1; p++) {
                const uint8_t *q = (const uint8_t *)w + (size_t)p * pb;
                for (int64_t b = 0; b < bl; b++) {
                    /* the next panel's slice on its way while this one is
                     * decoded and multiplied: the panels are visited a
                     * slice at a time, a stride the hardware prefetchers
                     * do not follow (SmolLM2 at 16 columns: gate 2.3 ->
                     * 1.9 ms a step, the head 3.3 -> 2.9; two panels ahead
                     * is no better). With AMX, into L2 only: the L1 fill
                     * buffers stay free for the loop's own loads (512
                     * columns: products 3% faster, measured on the AMX
                     * machine; without AMX, unmeasured, as it was) */
                    if (!spread && p + 1 < p1 && ((b0 + b) & 1) == 0)
                        q_prefetch(q + tai_qcodes_at(TT(T), b0 + b), amx ? 0 : pb, amx ? pb : 0,
                                   pair_bytes);
                    if (!direct) {
                        __m512i wv[8];
                        q_codes(q + tai_qcodes_at(TT(T), b0 + b), T, wv);
                        if (T != T_Q8_0) /* the high nibbles as 0..15 (tiles, q_tile) */
#pragma GCC unroll 4
                            for (int g = 1; g < 8; g += 2) wv[g] = _mm512_srli_epi16(wv[g], 4);
#pragma GCC unroll 8
                        for (int g = 0; g < 8; g++) _mm512_store_si512(codes + b * 512 + 64 * g, wv[g]);
                    }
                    _mm512_store_ps(dwf + b * TAI_PANEL,
                                    ld_scales((const uint16_t *)(q + tai_qscales_at(TT(T), b0 + b))));
                    if (T == T_Q4_1)
                        _mm512_store_ps(mwf + b * TAI_PANEL,
                                        ld_scales((const uint16_t *)(q + tai_qmins_at(TT(T), b0 + b))));
                }
                __mmask16 mk = row_mask(rows, p);
                if (amx) {
                    const size_t s0 = (size_t)(b0 >> 1) * pair_bytes,
                                 s1 = (size_t)((b0 + bl + 1) >> 1) * pair_bytes;
                    for (int64_t g = g0; g < g1; g += 2)
                        tai_k_q_tile_amx(codes, direct ? q : NULL, b0, dwf, mwf, xq[(g - g0) / 2], XG(g),
                                         g + 1 < g1 ? XG(g + 1) : NULL, bl, y + g * TAI_NR * ys, ys,
                                         p * TAI_PANEL, mk, b0 == 0, T,
                                         spread && p + 1 < p1 ? (const char *)q + pb + s0 : NULL,
                                         s1 - s0);
                } else {
                    for (int64_t g = g0; g < g1; g++)
                        q_tile(codes, dwf, mwf, XG(g), bl, y + g * TAI_NR * ys, ys, p * TAI_PANEL, mk,
                               b0 == 0, T);
                }
            }
        }
    }
#undef XG
    if (amx) tai_k_amx_end();
    if (tail > 0) {
        const tai_block_q8a *xt = x + full * TAI_NR * nb;
        float *yt = y + full * TAI_NR * ys;
#define TAIL(W) q_stream_group(w, pb, xt, yt, ys, nb, rows, p0, p1, W, T)
        TAI_TAIL_SWITCH(tail, TAIL)
#undef TAIL
    }
}

TAI_GEMM_ENTRY(tai_k_gemm_q8_0_avx512, q_gemm, T_Q8_0)

TAI_GEMM_ENTRY(tai_k_gemm_q4_0_avx512, q_gemm, T_Q4_0)

TAI_GEMM_ENTRY(tai_k_gemm_q4_1_avx512, q_gemm, T_Q4_1)

/* ======================= Packing ========================================== */

/* Block i of the 16 rows, as pack.c's portable loop writes it (kernels.h
 * "Packed weights"): one gather per 64-byte vector of codes, each lane one
 * row's 32-bit word of the block (the rows are row_bytes apart), then the
 * same word operations as the portable loop on all 16 rows at once. */
void tai_k_pack_panel_q_avx512(tai_type t, const uint8_t *w, size_t row_bytes, int64_t nb,
                               uint8_t *dst) {
    const __m512i rowoff = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7,
                                                               6, 5, 4, 3, 2, 1, 0),
                                              _mm512_set1_epi32((int)row_bytes));
    const size_t bb = tai_type_block_bytes(t);
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *b = w + (size_t)i * bb;
        uint8_t *q = dst + tai_qcodes_at(t, i);
        /* scales (and Q4_1 minimums): the low 16 bits of a gathered word */
        const __m512i dm = _mm512_i32gather_epi32(rowoff, (const void *)b, 1);
        _mm256_store_si256((__m256i *)(dst + tai_qscales_at(t, i)), _mm512_cvtepi32_epi16(dm));
        if (t == TAI_TYPE_Q4_1)
            _mm256_store_si256((__m256i *)(dst + tai_qmins_at(t, i)),
                               _mm512_cvtepi32_epi16(_mm512_srli_epi32(dm, 16)));
        if (t == TAI_TYPE_Q8_0) {
            const __m512i flip = _mm512_set1_epi32((int)0x80808080u);
#pragma GCC unroll 8
            for (int g = 0; g < 8; g++)
                _mm512_store_si512(q + 64 * g, _mm512_xor_si512(_mm512_i32gather_epi32(
                                                                    rowoff, (const void *)(b + 2 + 4 * g), 1),
                                                                flip));
        } else {
            const uint8_t *qs = b + (t == TAI_TYPE_Q4_1 ? 4 : 2);
            const __m512i lo = _mm512_set1_epi32(0x0f0f0f0f), hi = _mm512_set1_epi32((int)0xf0f0f0f0u);
            const __m512i w0 = _mm512_i32gather_epi32(rowoff, (const void *)qs, 1);
            const __m512i w1 = _mm512_i32gather_epi32(rowoff, (const void *)(qs + 4), 1);
            const __m512i w2 = _mm512_i32gather_epi32(rowoff, (const void *)(qs + 8), 1);
            const __m512i w3 = _mm512_i32gather_epi32(rowoff, (const void *)(qs + 12), 1);
            _mm512_store_si512(q, _mm512_or_si512(_mm512_and_si512(w0, lo),
                                                  _mm512_slli_epi32(_mm512_and_si512(w1, lo), 4)));
            _mm512_store_si512(q + 64, _mm512_or_si512(_mm512_and_si512(w2, lo),
                                                       _mm512_slli_epi32(_mm512_and_si512(w3, lo), 4)));
            _mm512_store_si512(q + 128, _mm512_or_si512(_mm512_srli_epi32(_mm512_and_si512(w0, hi), 4),
                                                        _mm512_and_si512(w1, hi)));
            _mm512_store_si512(q + 192, _mm512_or_si512(_mm512_srli_epi32(_mm512_and_si512(w2, hi), 4),
                                                        _mm512_and_si512(w3, hi)));
        }
    }
}

/* ======================= Attention and SwiGLU ============================= */

/* e^x for 16 floats: x = n ln2 + r with |r| <= ln2 / 2, e^r by a degree-6
 * Taylor polynomial (error below 2e-7 relative on that range), then scaled
 * by 2^n with vscalefps, which also gives 0 for very negative x and inf for
 * large x without special cases. */
INLINE __m512 exp16(__m512 x) {
    const __m512 log2e = _mm512_set1_ps(1.44269504f);
    const __m512 ln2_hi = _mm512_set1_ps(0.693359375f), ln2_lo = _mm512_set1_ps(-2.12194440e-4f);
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    x = _mm512_min_ps(x, _mm512_set1_ps(89.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, ln2_hi, x);
    r = _mm512_fnmadd_ps(n, ln2_lo, r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

INLINE __mmask16 tail_mask(int64_t left) {
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

/* The steps of hsum16x16's tree: lane-wise sums of the 128-bit quarters
 * of a and b taken in two orders, and of their floats within quarters (macros:
 * the shuffles take immediates). */
#define SUM_QUARTERS(a, b, lo, hi) \
    _mm512_add_ps(_mm512_shuffle_f32x4(a, b, lo), _mm512_shuffle_f32x4(a, b, hi))
#define SUM_FLOATS(a, b, lo, hi) _mm512_add_ps(_mm512_shuffle_ps(a, b, lo), _mm512_shuffle_ps(a, b, hi))

/* The sums of 16 vectors: r[i] = the sum of v[i]'s 16 lanes. A tree of
 * 128-bit-lane and in-lane shuffles (46 instructions where 16 separate
 * horizontal sums take about 160); its order of additions is fixed. */
INLINE __m512 hsum16x16(const __m512 v[16]) {
    __m512 s[8], t[4], w[2];
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) s[j] = SUM_QUARTERS(v[2 * j], v[2 * j + 1], 0x44, 0xee);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) t[j] = SUM_QUARTERS(s[2 * j], s[2 * j + 1], 0x88, 0xdd);
#pragma GCC unroll 2
    for (int j = 0; j < 2; j++) w[j] = SUM_FLOATS(t[2 * j], t[2 * j + 1], 0x44, 0xee);
    const __m512 r = SUM_FLOATS(w[0], w[1], 0x88, 0xdd);
    /* lane 4L + m holds the sum of v[4m + L] */
    return _mm512_permutexvar_ps(
        _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), r);
}

/* Cache element i on (16 lanes, masked) of a float cache (kind 0), a
 * binary16 one (1), widened exactly, or an 8-bit one (2: codes times their
 * scale, scale[i / 32], as tai_attention_q8's elements). */
INLINE __m512 kv_load(const void *cache, const float *scale, int64_t i, __mmask16 m, int kind) {
    if (kind == 2) /* 8-bit codes, a scale per 32 (i is a multiple of 16) */
        return _mm512_mul_ps(
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, (const int8_t *)cache + i))),
            _mm512_set1_ps(scale[i >> 5]));
    return kind ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)cache + i))
                : _mm512_maskz_loadu_ps(m, (const float *)cache + i);
}

/* The scores of query head qh against positions [p, p + np) (np <= 16)
 * of a cache, their rows from element kb on, kv_stride apart: 16 dot
 * products along the head dimension (16 lanes at a time, masked tail),
 * summed across lanes together by one shuffle tree, times scale. */
INLINE __m512 scores16(const float *qh, const void *k_cache, const float *k_scale, int64_t kb,
                       int64_t kv_stride, int np, int head_dim, float scale, int kind) {
    const int nv = (head_dim + 15) / 16;
    __m512 acc[16];
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++) acc[j] = _mm512_setzero_ps();
    for (int i = 0; i < nv; i++) {
        const __mmask16 m = tail_mask(head_dim - 16 * i);
        const __m512 qq = _mm512_maskz_loadu_ps(m, qh + 16 * i);
        if (np == 16) {
#pragma GCC unroll 16
            for (int j = 0; j < 16; j++)
                acc[j] = _mm512_fmadd_ps(qq, kv_load(k_cache, k_scale, kb + j * kv_stride + 16 * i, m, kind), acc[j]);
        } else {
            for (int j = 0; j < np; j++)
                acc[j] = _mm512_fmadd_ps(qq, kv_load(k_cache, k_scale, kb + j * kv_stride + 16 * i, m, kind), acc[j]);
        }
    }
    return _mm512_mul_ps(hsum16x16(acc), _mm512_set1_ps(scale));
}

/* hsum16x16's sums of 8 vectors, each by hsum16x16's tree of lane
 * additions (so each sum is its sum bit for bit): lane j (j < 8) holds the
 * sum of v[j]; the upper 8 lanes are not defined. */
INLINE __m512 hsum8x16(const __m512 v[8]) {
    __m512 s[4], t[2];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) s[j] = SUM_QUARTERS(v[2 * j], v[2 * j + 1], 0x44, 0xee);
#pragma GCC unroll 2
    for (int j = 0; j < 2; j++) t[j] = SUM_QUARTERS(s[2 * j], s[2 * j + 1], 0x88, 0xdd);
    const __m512 w = SUM_FLOATS(t[0], t[1], 0x44, 0xee);
    const __m512 r = SUM_FLOATS(w, w, 0x88, 0xdd);
    /* lane 4m holds the sum of v[m], lane 4m + 1 that of v[4 + m] */
    return _mm512_permutexvar_ps(
        _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0), r);
}

/* scores16's scores for up to 3 query heads of one kv head (q0: the first
 * head's query, the others head_dim floats on) against positions
 * [p, p + np) (np <= 8): each row of K widened once for all of them (where
 * scores16 widens it once per head), each score's arithmetic scores16's,
 * so its result bit for bit. Head a's scores go to att + a * att_stride. */
INLINE void scores8_group(const float *q0, int nh, const void *k_cache, const float *k_scale,
                          int64_t kb, int64_t kv_stride, int np, int head_dim, float scale,
                          int kind, float *att, int64_t att_stride) {
    const int nv = (head_dim + 15) / 16;
    __m512 acc[3][8];
#pragma GCC unroll 3
    for (int a = 0; a < 3; a++)
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) acc[a][j] = _mm512_setzero_ps();
    for (int i = 0; i < nv; i++) {
        const __mmask16 m = tail_mask(head_dim - 16 * i);
        __m512 qq[3];
#pragma GCC unroll 3
        for (int a = 0; a < 3; a++)
            qq[a] = a < nh ? _mm512_maskz_loadu_ps(m, q0 + (int64_t)a * head_dim + 16 * i)
                           : _mm512_setzero_ps();
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            if (j >= np) break;
            const __m512 kk = kv_load(k_cache, k_scale, kb + j * kv_stride + 16 * i, m, kind);
#pragma GCC unroll 3
            for (int a = 0; a < 3; a++) acc[a][j] = _mm512_fmadd_ps(qq[a], kk, acc[a][j]);
        }
    }
    const __mmask16 pm = tail_mask(np);
#pragma GCC unroll 3
    for (int a = 0; a < 3; a++)
        if (a < nh)
            _mm512_mask_storeu_ps(att + a * att_stride, pm,
                                  _mm512_mul_ps(hsum8x16(acc[a]), _mm512_set1_ps(scale)));
}

/* The offsets of 16 consecutive rows' scales in an 8-bit cache whose rows
 * are kv_stride values apart (a scale per 32): the index of the gathers
 * that read one block's scale of 16 positions. */
INLINE __m512i row_scales_index(int64_t kv_stride) {
    return _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                              _mm512_set1_epi32((int)(kv_stride / 32)));
}

/* An 8-bit cache's scores (tai_attention_q8's): up to 3 query heads of one
 * kv head, quantized per 32 (head a's blocks at qb + a * head_dim / 32),
 * against positions [p, p + np) (np <= 16), their rows from element kb
 * on, kv_stride apart. The rows are read 64 codes at a time, made unsigned
 * (code + 128, the sum of the query's codes times 128 taken back after)
 * and transposed, so that one lane holds one position: each block's
 * integer dot product is 8 VNNI steps for all 16 positions, shared by the
 * heads; then per block, in order, sum += float(dot) * (query scale *
 * cache scale), and times `scale` at the end. Head a's scores go to
 * att + a * att_stride. */
INLINE void scores16_q8(const tai_block_q8a *qb, int nh, const int8_t *k_cache,
                        const float *k_scale, int64_t kb, int64_t kv_stride, int np, int head_dim,
                        float scale, float *att, int64_t att_stride) {
    const int nblk = head_dim / 32;
    const __mmask16 pm = tail_mask(np);
    const __m512i sidx = row_scales_index(kv_stride);
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    __m512 acc[3] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int c0 = 0; c0 < head_dim; c0 += 64) {
        const int two = head_dim - c0 >= 64;
        const __mmask64 bm = two ? ~(__mmask64)0 : (__mmask64)0xffffffffu;
        __m512i r[16], t[16];
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++)
            r[j] = j < np ? _mm512_xor_si512(_mm512_maskz_loadu_epi8(bm, k_cache + kb + j * kv_stride + c0), bias)
                          : _mm512_setzero_si512();
        /* 16 x 16 dwords transposed: t[c] lane j = row j's dword c */
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) {
            t[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
            t[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
        }
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            r[4 * k] = _mm512_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
            r[4 * k + 1] = _mm512_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
            r[4 * k + 2] = _mm512_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
            r[4 * k + 3] = _mm512_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
        }
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            t[k] = _mm512_shuffle_i32x4(r[k], r[4 + k], 0x88);
            t[4 + k] = _mm512_shuffle_i32x4(r[k], r[4 + k], 0xdd);
            t[8 + k] = _mm512_shuffle_i32x4(r[8 + k], r[12 + k], 0x88);
            t[12 + k] = _mm512_shuffle_i32x4(r[8 + k], r[12 + k], 0xdd);
        }
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) {
            r[k] = _mm512_shuffle_i32x4(t[k], t[8 + k], 0x88);
            r[8 + k] = _mm512_shuffle_i32x4(t[k], t[8 + k], 0xdd);
        }
        const float *ksb = k_scale + (kb + c0) / 32;
        const __m512 ks0 = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), pm, sidx, ksb, 4);
        const __m512 ks1 = two ? _mm512_mask_i32gather_ps(_mm512_setzero_ps(), pm, sidx, ksb + 1, 4)
                               : _mm512_setzero_ps();
#pragma GCC unroll 3
        for (int a = 0; a < 3; a++) {
            if (a >= nh) break;
            const tai_block_q8a *b0 = qb + (int64_t)a * nblk + c0 / 32;
            for (int h = 0; h < 1 + two; h++) {
                int32_t q4[8];
                memcpy(q4, b0[h].qs, sizeof q4);
                __m512i d0 = _mm512_setzero_si512(), d1 = _mm512_setzero_si512();
#pragma GCC unroll 4
                for (int c = 0; c < 4; c++) {
                    d0 = _mm512_dpbusd_epi32(d0, r[8 * h + 2 * c], _mm512_set1_epi32(q4[2 * c]));
                    d1 = _mm512_dpbusd_epi32(d1, r[8 * h + 2 * c + 1], _mm512_set1_epi32(q4[2 * c + 1]));
                }
                const __m512i dot = _mm512_add_epi32(_mm512_add_epi32(d0, d1), _mm512_set1_epi32(b0[h].n128));
                acc[a] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot),
                                         _mm512_mul_ps(h ? ks1 : ks0, _mm512_set1_ps(b0[h].d)), acc[a]);
            }
        }
    }
#pragma GCC unroll 3
    for (int a = 0; a < 3; a++)
        if (a < nh) _mm512_mask_storeu_ps(att + a * att_stride, pm, _mm512_mul_ps(acc[a], _mm512_set1_ps(scale)));
}

/* v_q8_chunk's integer sums over one span of 64 values (two blocks; one
 * where `two` is 0) from s0 on, and their scaling, for NH heads (a
 * constant: the sums stay in registers); qw and dq: the span's blocks'
 * weights and scales. */
INLINE void v_q8_sums(float *acc, int64_t acc_stride, const int16_t qw[3][2][TAI_ATT_Q8_VCHUNK + 32],
                      const float dq[3][2], const int8_t *v_cache, int64_t vb, int64_t kv_stride,
                      int64_t c0, int np, int s0, int two, const int NH) {
    /* lanes 4k + m of the low / high sums are values 8k + m / 8k + 4 + m */
    const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i hi = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
    const __mmask64 bm = two ? ~(__mmask64)0 : (__mmask64)0xffffffffu;
    __m512i sum[3][4];
#pragma GCC unroll 3
    for (int a = 0; a < NH; a++)
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) sum[a][i] = _mm512_setzero_si512();
    const int8_t *row = v_cache + c0 * kv_stride + vb + s0;
    for (int p = 0; p < np; p += 2) {
        const __m512i r0 = _mm512_maskz_loadu_epi8(bm, row + p * kv_stride);
        const __m512i r1 = p + 1 < np ? _mm512_maskz_loadu_epi8(bm, row + (p + 1) * kv_stride)
                                      : _mm512_setzero_si512();
        const __m512i x0 = _mm512_cvtepi8_epi16(_mm512_castsi512_si256(r0));
        const __m512i x1 = _mm512_cvtepi8_epi16(_mm512_castsi512_si256(r1));
        const __m512i y0 = _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(r0, 1));
        const __m512i y1 = _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(r1, 1));
        const __m512i x[4] = {_mm512_unpacklo_epi16(x0, x1), _mm512_unpackhi_epi16(x0, x1),
                              _mm512_unpacklo_epi16(y0, y1), _mm512_unpackhi_epi16(y0, y1)};
#pragma GCC unroll 3
        for (int a = 0; a < NH; a++) {
            int32_t w0, w1;
            memcpy(&w0, &qw[a][0][p], 4);
            memcpy(&w1, &qw[a][two][p], 4); /* one block: its sums unused */
            sum[a][0] = _mm512_dpwssd_epi32(sum[a][0], x[0], _mm512_set1_epi32(w0));
            sum[a][1] = _mm512_dpwssd_epi32(sum[a][1], x[1], _mm512_set1_epi32(w0));
            sum[a][2] = _mm512_dpwssd_epi32(sum[a][2], x[2], _mm512_set1_epi32(w1));
            sum[a][3] = _mm512_dpwssd_epi32(sum[a][3], x[3], _mm512_set1_epi32(w1));
        }
    }
#pragma GCC unroll 3
    for (int a = 0; a < NH; a++) {
        float *o = acc + a * acc_stride + s0;
        for (int h = 0; h < 1 + two; h++) {
            const __m512 f0 = _mm512_cvtepi32_ps(sum[a][2 * h]), f1 = _mm512_cvtepi32_ps(sum[a][2 * h + 1]);
            const __m512 d = _mm512_set1_ps(dq[a][h]);
            _mm512_storeu_ps(o + 32 * h, _mm512_fmadd_ps(_mm512_permutex2var_ps(f0, lo, f1), d, _mm512_loadu_ps(o + 32 * h)));
            _mm512_storeu_ps(o + 32 * h + 16,
                             _mm512_fmadd_ps(_mm512_permutex2var_ps(f0, hi, f1), d, _mm512_loadu_ps(o + 32 * h + 16)));
        }
    }
}

/* An 8-bit cache's weighted sum of V (tai_attention_q8's) for up to 3
 * query heads of one kv head over the positions [c0, c0 + np) of one
 * chunk (np <= TAI_ATT_Q8_VCHUNK): per head and block j of 32 values,
 * w[p] = e[p] * scale_j[p] (the head's exp times the row's V scale), M =
 * their maximum, each w to 16 bits, rint(w * (32767 / M)), and the codes'
 * integer sums of w16 * code (VNNI, two positions a step; exact in 32
 * bits for 128 positions), then acc[d] = fmaf(float(sum), M / 32767,
 * acc[d]). Head a's exps are at e[a][p], its sums at acc + a * acc_stride
 * (head_dim floats); vb: the kv head's first element in a row. Two blocks
 * at a time (a few KiB of stack, whatever the head size). */
INLINE void v_q8_chunk(float *acc, int64_t acc_stride, const float *const e[3], int nh,
                       const int8_t *v_cache, const float *v_scale, int64_t vb, int64_t kv_stride,
                       int64_t c0, int np, int head_dim) {
    _Alignas(64) int16_t qw[3][2][TAI_ATT_Q8_VCHUNK + 32];
    float dq[3][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}, {0.0f, 0.0f}};
    _Alignas(64) float scb[TAI_ATT_Q8_VCHUNK], wb[TAI_ATT_Q8_VCHUNK];
    const __m512i sidx = row_scales_index(kv_stride);
    for (int s0 = 0; s0 < head_dim; s0 += 64) {
        const int two = head_dim - s0 >= 64;
        for (int h = 0; h < 1 + two; h++) {
            const float *sb = v_scale + (c0 * kv_stride + vb) / 32 + s0 / 32 + h;
            for (int p = 0; p < np; p += 16)
                _mm512_store_ps(scb + p, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), tail_mask(np - p), sidx,
                                                                  sb + p * (kv_stride / 32), 4));
            for (int a = 0; a < nh; a++) {
                __m512 vmax = _mm512_setzero_ps();
                for (int p = 0; p < np; p += 16) {
                    const __m512 w = _mm512_mul_ps(_mm512_maskz_loadu_ps(tail_mask(np - p), e[a] + c0 + p),
                                                   _mm512_load_ps(scb + p));
                    _mm512_store_ps(wb + p, w);
                    vmax = _mm512_max_ps(vmax, w);
                }
                const float mx = _mm512_reduce_max_ps(vmax);
                const float inv = mx > 0.0f ? 32767.0f / mx : 0.0f;
                dq[a][h] = mx > 0.0f ? mx / 32767.0f : 0.0f;
                for (int p = 0; p < np + 1; p += 16) {
                    const __mmask16 m = tail_mask(np - p);
                    _mm256_store_si256((__m256i *)&qw[a][h][p],
                                       _mm512_cvtepi32_epi16(_mm512_maskz_cvtps_epi32(
                                           m, _mm512_mul_ps(_mm512_maskz_load_ps(m, wb + p), _mm512_set1_ps(inv)))));
                }
            }
        }
        if (nh == 3) v_q8_sums(acc, acc_stride, qw, dq, v_cache, vb, kv_stride, c0, np, s0, two, 3);
        else if (nh == 2) v_q8_sums(acc, acc_stride, qw, dq, v_cache, vb, kv_stride, c0, np, s0, two, 2);
        else v_q8_sums(acc, acc_stride, qw, dq, v_cache, vb, kv_stride, c0, np, s0, two, 1);
    }
}

/* att[p] = e^(att[p] - mx) for p < n_pos; returns 1 / their sum. */
INLINE float exp_scores(float *att, int64_t n_pos, float mx) {
    const __m512 mxv = _mm512_set1_ps(mx);
    __m512 vsum = _mm512_setzero_ps();
    for (int64_t p = 0; p < n_pos; p += 16) {
        __mmask16 m = tail_mask(n_pos - p);
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, att + p), mxv));
        e = _mm512_maskz_mov_ps(m, e);
        _mm512_mask_storeu_ps(att + p, m, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    return 1.0f / _mm512_reduce_add_ps(vsum);
}

/* As tai_attention: per query head, scores q.k / sqrt(d) over the cache,
 * softmax, weighted sum of v. Scores are computed 16 positions at a time:
 * 16 dot products along the head dimension (16 lanes at a time, masked
 * tail), summed across lanes together by one shuffle tree; the softmax
 * runs 16 scores at a time; the weighted sum accumulates into the head's
 * output vectors, normalized once at the end. The same code reads float
 * caches, binary16 ones and 8-bit ones (kind 0, 1, 2; kv_load). */
INLINE void attention_avx512(float *out, const float *q, const void *k_cache, const float *k_scale,
                             const void *v_cache, const float *v_scale, int64_t n_pos,
                             int64_t kv_stride, int n_head, int n_kv_head, int head_dim, float *att,
                             int kind) {
    if (n_head <= 0 || n_kv_head <= 0 || head_dim <= 0 || n_head % n_kv_head != 0) return;
    const int group = n_head / n_kv_head;
    const float scale = 1.0f / sqrtf((float)head_dim);
    const int nv = (head_dim + 15) / 16;
    for (int h = 0; h < n_head; h++) {
        const float *qh = q + (int64_t)h * head_dim;
        const int64_t kv_off = (int64_t)(h / group) * head_dim;
        float *oh = out + (int64_t)h * head_dim;
        if (n_pos <= 0) {
            for (int d = 0; d < head_dim; d++) oh[d] = 0.0f;
            continue;
        }
        /* an 8-bit cache: the query's codes, as the products' activations */
        tai_block_q8a qq[TAI_ATT_Q8_MAX_HEAD / 32];
        if (kind == 2) tai_k_quantize_q8a_avx512(qh, qq, head_dim);
        __m512 vmax = _mm512_set1_ps(-INFINITY);
        for (int64_t p0 = 0; p0 < n_pos; p0 += 16) {
            const int np = n_pos - p0 < 16 ? (int)(n_pos - p0) : 16;
            const int64_t kb = p0 * kv_stride + kv_off;
            if (kind) {
                /* binary16 and 8-bit caches are read past the LLC by batches of many
                 * sequences: K's rows 32 positions ahead into L1 and, for
                 * the first head of a group, V's rows of these positions
                 * into L2 for the pass after (in-place gain at 16
                 * sequences: attention 7.3 -> 6.1 ms per step) */
                const int64_t es = kind == 2 ? 1 : 2, rowb = (int64_t)head_dim * es;
                for (int j = 0; j < 16; j++) {
                    if (p0 + 32 + j < n_pos) {
                        const char *r =
                            (const char *)k_cache + ((p0 + 32 + j) * kv_stride + kv_off) * es;
                        for (int64_t l = 0; l < rowb; l += 64) _mm_prefetch(r + l, _MM_HINT_T0);
                    }
                    if (h % group == 0 && p0 + j < n_pos) {
                        const char *r = (const char *)v_cache + ((p0 + j) * kv_stride + kv_off) * es;
                        for (int64_t l = 0; l < rowb; l += 64) _mm_prefetch(r + l, _MM_HINT_T1);
                    }
                }
            }
            const __mmask16 pm = tail_mask(np);
            __m512 sc;
            if (kind == 2) {
                scores16_q8(qq, 1, k_cache, k_scale, kb, kv_stride, np, head_dim, scale, att + p0, 0);
                sc = _mm512_maskz_loadu_ps(pm, att + p0);
            } else {
                sc = scores16(qh, k_cache, k_scale, kb, kv_stride, np, head_dim, scale, kind);
                _mm512_mask_storeu_ps(att + p0, pm, sc);
            }
            vmax = _mm512_mask_max_ps(vmax, pm, vmax, sc);
        }
        const float inv = exp_scores(att, n_pos, _mm512_reduce_max_ps(vmax));
        if (kind == 2) { /* an 8-bit cache: V's sums on integers, per chunk */
            _Alignas(64) float acc[TAI_ATT_Q8_MAX_HEAD];
            memset(acc, 0, sizeof(float) * (size_t)head_dim);
            const float *e[3] = {att, att, att};
            for (int64_t c0 = 0; c0 < n_pos; c0 += TAI_ATT_Q8_VCHUNK)
                v_q8_chunk(acc, 0, e, 1, (const int8_t *)v_cache, v_scale, kv_off, kv_stride, c0,
                           n_pos - c0 < TAI_ATT_Q8_VCHUNK ? (int)(n_pos - c0) : TAI_ATT_Q8_VCHUNK, head_dim);
            for (int i = 0; i < nv; i++)
                _mm512_mask_storeu_ps(oh + 16 * i, tail_mask(head_dim - 16 * i),
                                      _mm512_mul_ps(_mm512_load_ps(acc + 16 * i), _mm512_set1_ps(inv)));
            continue;
        }
        /* the weighted sum, up to 8 vectors of the head at a time: each
         * position's row read front to back (one stream the prefetcher
         * follows), even and odd positions in two sums per vector */
        for (int i0 = 0; i0 < nv; i0 += 8) {
            const int ni = nv - i0 < 8 ? nv - i0 : 8;
            __m512 o0[8], o1[8];
            __mmask16 m[8];
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) {
                o0[i] = o1[i] = _mm512_setzero_ps();
                m[i] = i < ni ? tail_mask(head_dim - 16 * (i0 + i)) : 0;
            }
            const int64_t vb = kv_off + 16 * i0;
            int64_t p = 0;
            for (; p + 2 <= n_pos; p += 2) {
                const int64_t v0 = vb + p * kv_stride, v1 = v0 + kv_stride;
                const __m512 a0 = _mm512_set1_ps(att[p]), a1 = _mm512_set1_ps(att[p + 1]);
#pragma GCC unroll 8
                for (int i = 0; i < 8; i++)
                    if (i < ni) {
                        o0[i] = _mm512_fmadd_ps(a0, kv_load(v_cache, v_scale, v0 + 16 * i, m[i], kind), o0[i]);
                        o1[i] = _mm512_fmadd_ps(a1, kv_load(v_cache, v_scale, v1 + 16 * i, m[i], kind), o1[i]);
                    }
            }
            if (p < n_pos) {
                const int64_t v0 = vb + p * kv_stride;
                const __m512 a0 = _mm512_set1_ps(att[p]);
#pragma GCC unroll 8
                for (int i = 0; i < 8; i++)
                    if (i < ni) o0[i] = _mm512_fmadd_ps(a0, kv_load(v_cache, v_scale, v0 + 16 * i, m[i], kind), o0[i]);
            }
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++)
                if (i < ni)
                    _mm512_mask_storeu_ps(oh + 16 * (i0 + i), m[i],
                                          _mm512_mul_ps(_mm512_add_ps(o0[i], o1[i]), _mm512_set1_ps(inv)));
        }
    }
}

/* The rows of positions [p0 + 32, p0 + 48) of K into L1 and those of
 * [p0, p0 + 16) of V into L2, below n_pos (rows of rowb bytes): the next
 * blocks of an every-head sweep on their way. */
INLINE void prefetch_kv_rows(const void *k_cache, const void *v_cache, int64_t p0, int64_t n_pos,
                             int64_t rowb) {
    for (int j = 0; j < 16; j++) {
        if (p0 + 32 + j < n_pos)
            for (int64_t l = 0; l < rowb; l += 64)
                _mm_prefetch((const char *)k_cache + (p0 + 32 + j) * rowb + l, _MM_HINT_T0);
        if (p0 + j < n_pos)
            for (int64_t l = 0; l < rowb; l += 64)
                _mm_prefetch((const char *)v_cache + (p0 + j) * rowb + l, _MM_HINT_T1);
    }
}

/* One head's softmax over its n_pos scores ah (exps in place), its V sums
 * st (2 * nv vectors) zeroed: 1 / the sum of the exps. */
INLINE float softmax_head(float *ah, int64_t n_pos, float *st, int nv) {
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int64_t p = 0; p < n_pos; p += 16)
        vmax = _mm512_mask_max_ps(vmax, tail_mask(n_pos - p), vmax,
                                  _mm512_maskz_loadu_ps(tail_mask(n_pos - p), ah + p));
    for (int i = 0; i < 2 * nv; i++) _mm512_store_ps(st + 16 * i, _mm512_setzero_ps());
    return exp_scores(ah, n_pos, _mm512_reduce_max_ps(vmax));
}

/* out (n_head heads) = (even sum + odd sum) * 1 / the exps' sum, each
 * head's sums at st + h * nv * 32, its 1 / sum kept in its first value. */
INLINE void finish_heads(float *out, const float *st, int n_head, int nv, int head_dim) {
    for (int h = 0; h < n_head; h++) {
        const __m512 inv = _mm512_set1_ps(out[(int64_t)h * head_dim]);
        for (int i = 0; i < nv; i++) {
            const float *sp = st + (int64_t)h * nv * 32 + i * 32;
            _mm512_mask_storeu_ps(out + (int64_t)h * head_dim + 16 * i, tail_mask(head_dim - 16 * i),
                                  _mm512_mul_ps(_mm512_add_ps(_mm512_load_ps(sp), _mm512_load_ps(sp + 16)),
                                                inv));
        }
    }
}

/* tai_attention_f16_all's AVX-512 version: every head of one column in
 * one sweep over the cache's rows, so the rows are read front to back once
 * (K then V) rather than once per kv head at a stride: 14-17% less time
 * than attention_avx512 head by head, from one sequence to 64 of them.
 * Each head's arithmetic is attention_avx512's, in the same order (scores
 * 16 positions at a time, the same softmax, V's even and odd positions in
 * two sums), so the result is its result bit for bit. att: n_head * n_pos
 * scores, then the V sums (n_head * 2 * 16 * nv floats, 64-byte aligned). */
INLINE void attention_all_avx512(float *out, const float *q, const void *k_cache,
                                 const float *k_scale, const void *v_cache, const float *v_scale,
                                 int64_t n_pos, int64_t kv_stride, int n_head, int n_kv_head,
                                 int head_dim, float *att, int kind) {
    if (n_head <= 0 || n_kv_head <= 0 || head_dim <= 0 || n_head % n_kv_head != 0) return;
    const int group = n_head / n_kv_head;
    const float scale = 1.0f / sqrtf((float)head_dim);
    const int nv = (head_dim + 15) / 16;
    const int64_t es = kind == 2 ? 1 : kind ? 2 : 4; /* bytes a value */
    if (n_pos <= 0) {
        for (int64_t i = 0; i < (int64_t)n_head * head_dim; i++) out[i] = 0.0f;
        return;
    }
    float *st = (float *)(((uintptr_t)(att + (int64_t)n_head * n_pos) + 63) & ~(uintptr_t)63);
    /* an 8-bit cache: every head's query codes, after the V sums */
    tai_block_q8a *qq = (tai_block_q8a *)(st + (int64_t)n_head * nv * 32);
    if (kind == 2)
        for (int h = 0; h < n_head; h++)
            tai_k_quantize_q8a_avx512(q + (int64_t)h * head_dim, qq + (int64_t)h * (head_dim / 32), head_dim);
    /* scores: per 16 positions, every head (the rows stay in L1) */
    for (int64_t p0 = 0; p0 < n_pos; p0 += 16) {
        const int np = n_pos - p0 < 16 ? (int)(n_pos - p0) : 16;
        prefetch_kv_rows(k_cache, v_cache, p0, n_pos, kv_stride * es); /* K 32 ahead, V of these */
        /* per kv head, up to 3 of its query heads, 8 positions at a time */
        for (int g = 0; g < n_kv_head; g++)
            for (int hh = 0; hh < group; hh += 3) {
                const int nh = group - hh < 3 ? group - hh : 3, h0 = g * group + hh;
                if (kind == 2) {
                    scores16_q8(qq + (int64_t)h0 * (head_dim / 32), nh, k_cache, k_scale,
                                p0 * kv_stride + (int64_t)g * head_dim, kv_stride, np, head_dim, scale,
                                att + (int64_t)h0 * n_pos + p0, n_pos);
                    continue;
                }
                for (int e = 0; e < np; e += 8)
                    scores8_group(q + (int64_t)h0 * head_dim, nh, k_cache, k_scale,
                                  (p0 + e) * kv_stride + (int64_t)g * head_dim, kv_stride,
                                  np - e < 8 ? np - e : 8, head_dim, scale, kind,
                                  att + (int64_t)h0 * n_pos + p0 + e, n_pos);
            }
    }
    /* softmax per head, as attention_avx512's; 1 / the sum kept in the
     * head's output until the end, its V sums from 0 */
    for (int h = 0; h < n_head; h++)
        out[(int64_t)h * head_dim] = softmax_head(att + (int64_t)h * n_pos, n_pos, st + (int64_t)h * nv * 32, nv);
    if (kind == 2) { /* an 8-bit cache: V's sums on integers, per chunk */
        for (int64_t c0 = 0; c0 < n_pos; c0 += TAI_ATT_Q8_VCHUNK) {
            const int np = n_pos - c0 < TAI_ATT_Q8_VCHUNK ? (int)(n_pos - c0) : TAI_ATT_Q8_VCHUNK;
            for (int g = 0; g < n_kv_head; g++)
                for (int hh = 0; hh < group; hh += 3) {
                    const int nh = group - hh < 3 ? group - hh : 3, h0 = g * group + hh;
                    const float *e[3];
                    for (int a = 0; a < 3; a++) e[a] = att + (int64_t)(h0 + (a < nh ? a : 0)) * n_pos;
                    v_q8_chunk(st + (int64_t)h0 * nv * 32, (int64_t)nv * 32, e, nh, (const int8_t *)v_cache,
                               v_scale, (int64_t)g * head_dim, kv_stride, c0, np, head_dim);
                }
        }
        for (int h = 0; h < n_head; h++) {
            const __m512 inv = _mm512_set1_ps(out[(int64_t)h * head_dim]);
            for (int i = 0; i < nv; i++)
                _mm512_mask_storeu_ps(out + (int64_t)h * head_dim + 16 * i, tail_mask(head_dim - 16 * i),
                                      _mm512_mul_ps(_mm512_load_ps(st + (int64_t)h * nv * 32 + 16 * i), inv));
        }
        return;
    }
    /* V: 32 positions at a time; per kv head, up to 3 of its query heads x
     * 4 vectors of the head (even and odd positions apart), V's rows read
     * once for them */
    for (int64_t c0 = 0; c0 < n_pos; c0 += 32) {
        const int64_t c1 = n_pos - c0 < 32 ? n_pos : c0 + 32;
        for (int g = 0; g < n_kv_head; g++)
            for (int i0 = 0; i0 < nv; i0 += 4) {
                const int ni = nv - i0 < 4 ? nv - i0 : 4;
                __mmask16 m[4];
#pragma GCC unroll 4
                for (int i = 0; i < 4; i++) m[i] = i < ni ? tail_mask(head_dim - 16 * (i0 + i)) : 0;
                for (int hh = 0; hh < group; hh += 3) {
                    const int nh = group - hh < 3 ? group - hh : 3;
                    const int h0 = g * group + hh;
                    __m512 o0[3][4], o1[3][4];
#pragma GCC unroll 3
                    for (int a = 0; a < 3; a++)
#pragma GCC unroll 4
                        for (int i = 0; i < 4; i++) {
                            const float *sp = st + (int64_t)(h0 + (a < nh ? a : 0)) * nv * 32 + (i0 + i) * 32;
                            o0[a][i] = a < nh && i < ni ? _mm512_load_ps(sp) : _mm512_setzero_ps();
                            o1[a][i] = a < nh && i < ni ? _mm512_load_ps(sp + 16) : _mm512_setzero_ps();
                        }
                    const int64_t vb = (int64_t)g * head_dim + 16 * i0;
                    const float *ap[3];
#pragma GCC unroll 3
                    for (int a = 0; a < 3; a++) ap[a] = att + (int64_t)(h0 + (a < nh ? a : 0)) * n_pos;
                    int64_t p = c0;
                    for (; p + 2 <= c1; p += 2) {
                        const int64_t v0 = vb + p * kv_stride, v1 = v0 + kv_stride;
                        __m512 x0[4], x1[4];
#pragma GCC unroll 4
                        for (int i = 0; i < 4; i++) {
                            x0[i] = kv_load(v_cache, v_scale, v0 + 16 * i, m[i], kind);
                            x1[i] = kv_load(v_cache, v_scale, v1 + 16 * i, m[i], kind);
                        }
#pragma GCC unroll 3
                        for (int a = 0; a < 3; a++) {
                            if (a >= nh) break;
                            const __m512 a0 = _mm512_set1_ps(ap[a][p]), a1 = _mm512_set1_ps(ap[a][p + 1]);
#pragma GCC unroll 4
                            for (int i = 0; i < 4; i++) {
                                o0[a][i] = _mm512_fmadd_ps(a0, x0[i], o0[a][i]);
                                o1[a][i] = _mm512_fmadd_ps(a1, x1[i], o1[a][i]);
                            }
                        }
                    }
                    if (p < c1) {
                        const int64_t v0 = vb + p * kv_stride;
                        __m512 x0[4];
#pragma GCC unroll 4
                        for (int i = 0; i < 4; i++) x0[i] = kv_load(v_cache, v_scale, v0 + 16 * i, m[i], kind);
#pragma GCC unroll 3
                        for (int a = 0; a < 3; a++) {
                            if (a >= nh) break;
                            const __m512 a0 = _mm512_set1_ps(ap[a][p]);
#pragma GCC unroll 4
                            for (int i = 0; i < 4; i++) o0[a][i] = _mm512_fmadd_ps(a0, x0[i], o0[a][i]);
                        }
                    }
#pragma GCC unroll 3
                    for (int a = 0; a < 3; a++)
#pragma GCC unroll 4
                        for (int i = 0; i < 4; i++)
                            if (a < nh && i < ni) {
                                float *sp = st + (int64_t)(h0 + a) * nv * 32 + (i0 + i) * 32;
                                _mm512_store_ps(sp, o0[a][i]);
                                _mm512_store_ps(sp + 16, o1[a][i]);
                            }
                }
            }
    }
    finish_heads(out, st, n_head, nv, head_dim);
}

/* attention_all_avx512 (kinds 0 and 1) for nq queries of one sequence at
 * consecutive positions: query i (at q + i * qd, its result at out + i *
 * qd) sees positions [0, n_pos0 + i). Each query's arithmetic is
 * attention_all_avx512's for it alone, op for op (its scores by the same
 * scores8_group calls, the same softmax, V's even and odd positions in the
 * same two sums per 32-position chunk), so its result is that function's
 * bit for bit; only the order in which the queries' independent work is
 * interleaved differs: each block of 16 rows of K and each chunk of 32 rows
 * of V is read once for all of them (from L1) instead of once per query
 * (from L3 once a sequence's cache outgrows L2). att: query i's scratch at
 * att + i * att_per_q, laid out as attention_all_avx512's for its n_pos. */
#define ATT_MULTI_MAX TAI_ATT_MULTI_MAX
INLINE void attention_multi_avx512(float *out, const float *q, int64_t qd, const void *k_cache,
                                   const void *v_cache, int64_t n_pos0, int nq, int64_t kv_stride,
                                   int n_head, int n_kv_head, int head_dim, float *att,
                                   int64_t att_per_q, int kind) {
    if (n_head <= 0 || n_kv_head <= 0 || head_dim <= 0 || n_head % n_kv_head != 0 || nq <= 0) return;
    if (n_pos0 <= 0 || nq > ATT_MULTI_MAX) { /* nothing to share: one at a time */
        for (int i = 0; i < nq; i++)
            attention_all_avx512(out + i * qd, q + i * qd, k_cache, NULL, v_cache, NULL, n_pos0 + i,
                                 kv_stride, n_head, n_kv_head, head_dim, att, kind);
        return;
    }
    const int group = n_head / n_kv_head;
    const float scale = 1.0f / sqrtf((float)head_dim);
    const int nv = (head_dim + 15) / 16;
    const int64_t es = kind ? 2 : 4;
    const int64_t n_max = n_pos0 + nq - 1;
    float *A[ATT_MULTI_MAX], *ST[ATT_MULTI_MAX];
    int64_t NP[ATT_MULTI_MAX];
    for (int i = 0; i < nq; i++) {
        NP[i] = n_pos0 + i;
        A[i] = att + i * att_per_q;
        ST[i] = (float *)(((uintptr_t)(A[i] + (int64_t)n_head * NP[i]) + 63) & ~(uintptr_t)63);
    }
    /* scores: per 16 positions, every query and head */
    for (int64_t p0 = 0; p0 < n_max; p0 += 16) {
        prefetch_kv_rows(k_cache, v_cache, p0, n_max, kv_stride * es);
        for (int i = 0; i < nq; i++) {
            if (p0 >= NP[i]) continue;
            const int np = NP[i] - p0 < 16 ? (int)(NP[i] - p0) : 16;
            for (int g = 0; g < n_kv_head; g++)
                for (int hh = 0; hh < group; hh += 3) {
                    const int nh = group - hh < 3 ? group - hh : 3, h0 = g * group + hh;
                    for (int e = 0; e < np; e += 8)
                        scores8_group(q + i * qd + (int64_t)h0 * head_dim, nh, k_cache, NULL,
                                      (p0 + e) * kv_stride + (int64_t)g * head_dim, kv_stride,
                                      np - e < 8 ? np - e : 8, head_dim, scale, kind,
                                      A[i] + (int64_t)h0 * NP[i] + p0 + e, NP[i]);
                }
        }
    }
    /* softmax per query and head, as attention_all_avx512's */
    for (int i = 0; i < nq; i++)
        for (int h = 0; h < n_head; h++)
            out[i * qd + (int64_t)h * head_dim] =
                softmax_head(A[i] + (int64_t)h * NP[i], NP[i], ST[i] + (int64_t)h * nv * 32, nv);
    /* V: per 32 positions, kv head, vector of the head and query head, the
     * queries' two sums of that vector side by side (each query's pairs of
     * positions in attention_all_avx512's order, its odd last one into the
     * even sum), V's two rows loaded once for all of them */
    for (int64_t c0 = 0; c0 < n_max; c0 += 32) {
        /* the queries with positions in this chunk (NP rises with i), the
         * pairs all of them take, and where the last one's end */
        int i0 = 0;
        while (NP[i0] <= c0) i0++;
        const int64_t cmin = NP[i0] - c0 < 32 ? NP[i0] : c0 + 32;
        const int64_t cmax = NP[nq - 1] - c0 < 32 ? NP[nq - 1] : c0 + 32;
        const int64_t pairs_end = c0 + (cmin - c0) / 2 * 2;
        for (int g = 0; g < n_kv_head; g++)
            for (int iv = 0; iv < nv; iv++) {
                const __mmask16 m = tail_mask(head_dim - 16 * iv);
                const int64_t vb = (int64_t)g * head_dim + 16 * iv;
                for (int hq = g * group; hq < (g + 1) * group; hq++) {
                    __m512 o0[ATT_MULTI_MAX], o1[ATT_MULTI_MAX];
                    const float *ap[ATT_MULTI_MAX] = {NULL};
#pragma GCC unroll 8
                    for (int i = 0; i < ATT_MULTI_MAX; i++) {
                        o0[i] = o1[i] = _mm512_setzero_ps();
                        if (i0 + i >= nq) continue;
                        const float *sp = ST[i0 + i] + (int64_t)hq * nv * 32 + iv * 32;
                        o0[i] = _mm512_load_ps(sp);
                        o1[i] = _mm512_load_ps(sp + 16);
                        ap[i] = A[i0 + i] + (int64_t)hq * NP[i0 + i];
                    }
                    const int na = nq - i0;
                    int64_t p = c0;
                    for (; p < pairs_end; p += 2) { /* pairs every query takes */
                        const int64_t v0 = vb + p * kv_stride;
                        const __m512 x0 = kv_load(v_cache, NULL, v0, m, kind);
                        const __m512 x1 = kv_load(v_cache, NULL, v0 + kv_stride, m, kind);
#pragma GCC unroll 8
                        for (int i = 0; i < ATT_MULTI_MAX; i++) {
                            if (i >= na) break;
                            o0[i] = _mm512_fmadd_ps(_mm512_set1_ps(ap[i][p]), x0, o0[i]);
                            o1[i] = _mm512_fmadd_ps(_mm512_set1_ps(ap[i][p + 1]), x1, o1[i]);
                        }
                    }
                    for (; p < cmax; p += 2) { /* the chunk's last rows: each query to its end */
                        const int64_t v0 = vb + p * kv_stride;
                        const __m512 x0 = kv_load(v_cache, NULL, v0, m, kind);
                        const __m512 x1 = p + 1 < cmax ? kv_load(v_cache, NULL, v0 + kv_stride, m, kind)
                                                       : _mm512_setzero_ps();
#pragma GCC unroll 8
                        for (int i = 0; i < ATT_MULTI_MAX; i++) {
                            if (i >= na) break;
                            const int64_t c1 = NP[i0 + i] - c0 < 32 ? NP[i0 + i] : c0 + 32;
                            if (p + 2 <= c1) {
                                o0[i] = _mm512_fmadd_ps(_mm512_set1_ps(ap[i][p]), x0, o0[i]);
                                o1[i] = _mm512_fmadd_ps(_mm512_set1_ps(ap[i][p + 1]), x1, o1[i]);
                            } else if (p < c1) { /* its odd last position */
                                o0[i] = _mm512_fmadd_ps(_mm512_set1_ps(ap[i][p]), x0, o0[i]);
                            }
                        }
                    }
#pragma GCC unroll 8
                    for (int i = 0; i < ATT_MULTI_MAX; i++) {
                        if (i >= na) break;
                        float *sp = ST[i0 + i] + (int64_t)hq * nv * 32 + iv * 32;
                        _mm512_store_ps(sp, o0[i]);
                        _mm512_store_ps(sp + 16, o1[i]);
                    }
                }
            }
    }
    for (int i = 0; i < nq; i++) finish_heads(out + i * qd, ST[i], n_head, nv, head_dim);
}

/* gate = gate / (1 + e^arg) * up, 16 at a time: arg = -gate (SwiGLU's
 * SiLU) or, with `gelu`, -2z, z = sqrt(2 / pi) (g + 0.044715 g^3)
 * (tai_gelu_mul's form of GeGLU's tanh GELU). */
INLINE void glu_mul_avx512(float *gate, const float *up, int64_t n, int gelu) {
    const __m512 k2 = _mm512_set1_ps(-2.0f * 0.7978845608028654f), c = _mm512_set1_ps(0.044715f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
        __m512 arg = gelu ? _mm512_mul_ps(k2, _mm512_add_ps(g, _mm512_mul_ps(_mm512_mul_ps(c, g), _mm512_mul_ps(g, g))))
                          : _mm512_sub_ps(_mm512_setzero_ps(), g);
        __m512 r = _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), exp16(arg)));
        _mm512_mask_storeu_ps(gate + i, m, _mm512_mul_ps(r, _mm512_maskz_loadu_ps(m, up + i)));
    }
}

static void silu_mul_avx512(float *gate, const float *up, int64_t n) { glu_mul_avx512(gate, up, n, 0); }

static void gelu_mul_avx512(float *gate, const float *up, int64_t n) { glu_mul_avx512(gate, up, n, 1); }

void tai_k_attention_avx512(float *out, const float *q, const float *k_cache,
                            const float *v_cache, int64_t n_pos, int64_t kv_stride, int n_head,
                            int n_kv_head, int head_dim, float *att) {
    attention_avx512(out, q, k_cache, NULL, v_cache, NULL, n_pos, kv_stride, n_head, n_kv_head, head_dim, att,
                     0);
}

void tai_k_attention_f16_avx512(float *out, const float *q, const uint16_t *k_cache,
                                const uint16_t *v_cache, int64_t n_pos, int64_t kv_stride,
                                int n_head, int n_kv_head, int head_dim, float *att) {
    attention_avx512(out, q, k_cache, NULL, v_cache, NULL, n_pos, kv_stride, n_head, n_kv_head, head_dim, att,
                     1);
}

void tai_k_attention_all_avx512(float *out, const float *q, const float *k_cache,
                                const float *v_cache, int64_t n_pos, int64_t kv_stride, int n_head,
                                int n_kv_head, int head_dim, float *att) {
    attention_all_avx512(out, q, k_cache, NULL, v_cache, NULL, n_pos, kv_stride, n_head, n_kv_head, head_dim,
                         att, 0);
}

void tai_k_attention_f16_all_avx512(float *out, const float *q, const uint16_t *k_cache,
                                    const uint16_t *v_cache, int64_t n_pos, int64_t kv_stride,
                                    int n_head, int n_kv_head, int head_dim, float *att) {
    attention_all_avx512(out, q, k_cache, NULL, v_cache, NULL, n_pos, kv_stride, n_head, n_kv_head, head_dim,
                         att, 1);
}

void tai_k_attention_multi_avx512(float *out, const float *q, int64_t qd, const void *k_cache,
                                  const void *v_cache, int kind, int64_t n_pos0, int nq,
                                  int64_t kv_stride, int n_head, int n_kv_head, int head_dim,
                                  float *att, int64_t att_per_q) {
    if (kind != 0 && kind != 1) return;
    attention_multi_avx512(out, q, qd, k_cache, v_cache, n_pos0, nq, kv_stride, n_head, n_kv_head,
                           head_dim, att, att_per_q, kind);
}

void tai_k_attention_q8_avx512(float *out, const float *q, const int8_t *k_cache,
                               const float *k_scale, const int8_t *v_cache, const float *v_scale,
                               int64_t n_pos, int64_t kv_stride, int n_head, int n_kv_head,
                               int head_dim, float *att) {
    if (head_dim % 32 != 0 || kv_stride % 32 != 0 || head_dim > TAI_ATT_Q8_MAX_HEAD) return;
    attention_avx512(out, q, k_cache, k_scale, v_cache, v_scale, n_pos, kv_stride, n_head,
                     n_kv_head, head_dim, att, 2);
}

void tai_k_attention_q8_all_avx512(float *out, const float *q, const int8_t *k_cache,
                                   const float *k_scale, const int8_t *v_cache,
                                   const float *v_scale, int64_t n_pos, int64_t kv_stride,
                                   int n_head, int n_kv_head, int head_dim, float *att) {
    if (head_dim % 32 != 0 || kv_stride % 32 != 0 || head_dim > TAI_ATT_Q8_MAX_HEAD) return;
    attention_all_avx512(out, q, k_cache, k_scale, v_cache, v_scale, n_pos, kv_stride, n_head,
                         n_kv_head, head_dim, att, 2);
}

/* As tai_f32_to_f16_row (vcvtps2ph rounds to nearest even and keeps NaNs
 * quiet with their top payload bits, as the portable conversion does). */
void tai_k_f32_to_f16_avx512(const float *src, uint16_t *dst, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        _mm256_mask_storeu_epi16(dst + i, m,
                                 _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, src + i),
                                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
}

void tai_k_silu_mul_avx512(float *gate, const float *up, int64_t n) { silu_mul_avx512(gate, up, n); }
void tai_k_gelu_mul_avx512(float *gate, const float *up, int64_t n) { gelu_mul_avx512(gate, up, n); }

/* x += d, 64 at a time, then 16 (masked tail). */
void tai_k_add_avx512(float *x, const float *d, int64_t n) {
    int64_t i = 0;
    for (; i + 64 <= n; i += 64)
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++)
            _mm512_storeu_ps(x + i + 16 * k,
                             _mm512_add_ps(_mm512_loadu_ps(x + i + 16 * k), _mm512_loadu_ps(d + i + 16 * k)));
    for (; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, d + i)));
    }
}

/* As tai_argmax, 64 values a step: each of 4 x 16 lanes keeps its largest
 * value and the first index holding it (a strict > never takes a NaN); the
 * answer is the lowest index among the lanes holding the overall largest.
 * Greedy sampling over a 49152-token vocabulary, 16 sequences a step: the
 * scan was 5% of a server's CPU. */
int64_t tai_k_argmax_avx512(const float *x, int64_t n) {
    if (x[0] != x[0] || n < 64) return tai_argmax(x, n);
    __m512 m[4];
    __m512i at[4], iv[4];
    const __m512i step = _mm512_set1_epi32(64);
    for (int k = 0; k < 4; k++) {
        m[k] = _mm512_set1_ps(x[0]);
        at[k] = _mm512_setzero_si512();
        iv[k] = _mm512_add_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                 _mm512_set1_epi32(16 * k));
    }
    int64_t i = 0;
    for (; i + 64 <= n && i + 64 <= INT32_MAX; i += 64)
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            const __m512 v = _mm512_loadu_ps(x + i + 16 * k);
            const __mmask16 gt = _mm512_cmp_ps_mask(v, m[k], _CMP_GT_OQ);
            m[k] = _mm512_mask_mov_ps(m[k], gt, v);
            at[k] = _mm512_mask_mov_epi32(at[k], gt, iv[k]);
            iv[k] = _mm512_add_epi32(iv[k], step);
        }
    _Alignas(64) float mv[64];
    _Alignas(64) int32_t av[64];
    for (int k = 0; k < 4; k++) {
        _mm512_store_ps(mv + 16 * k, m[k]);
        _mm512_store_si512(av + 16 * k, at[k]);
    }
    int64_t best = av[0];
    float bv = mv[0];
    for (int j = 1; j < 64; j++)
        if (mv[j] > bv || (mv[j] == bv && av[j] < best)) bv = mv[j], best = av[j];
    for (; i < n; i++) /* the tail: every index here is later than the lanes' */
        if (x[i] > bv) bv = x[i], best = i;
    return best;
}

/* ======================= Activation quantization ========================== */

/* roundf (half away from zero), exactly: trunc, then one step away from
 * zero where the dropped fraction is at least one half. */
INLINE __m512 round_away16(__m512 v) {
    __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m512 frac = _mm512_abs_ps(_mm512_sub_ps(v, t));
    __mmask16 up = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    __m512 one = _mm512_or_ps(_mm512_set1_ps(1.0f),
                              _mm512_and_ps(v, _mm512_castsi512_ps(_mm512_set1_epi32((int)0x80000000u))));
    return _mm512_mask_add_ps(t, up, t, one);
}

/* The maxima (MAX_QUARTERS, MAX_FLOATS) and integer sums of 16 vectors,
 * as hsum16x16's tree: lane 4L + m of the tree's last vector holds vector
 * 4m + L's result, put in order by one permute. Maxima and integer sums
 * are exact in any order. */
#define MAX_QUARTERS(a, b, lo, hi) \
    _mm512_max_ps(_mm512_shuffle_f32x4(a, b, lo), _mm512_shuffle_f32x4(a, b, hi))
#define MAX_FLOATS(a, b, lo, hi) _mm512_max_ps(_mm512_shuffle_ps(a, b, lo), _mm512_shuffle_ps(a, b, hi))
#define ADDI_QUARTERS(a, b, lo, hi)                                           \
    _mm512_add_epi32(_mm512_castps_si512(_mm512_shuffle_f32x4(a, b, lo)), \
                     _mm512_castps_si512(_mm512_shuffle_f32x4(a, b, hi)))
#define ADDI_FLOATS(a, b, lo, hi)                                        \
    _mm512_add_epi32(_mm512_castps_si512(_mm512_shuffle_ps(a, b, lo)), \
                     _mm512_castps_si512(_mm512_shuffle_ps(a, b, hi)))
#define TREE16(OUT, V, Q, F)                                                                   \
    do {                                                                                       \
        __m512 s_[8], t_[4], w_[2];                                                            \
        for (int j_ = 0; j_ < 8; j_++) s_[j_] = CAST_PS(Q(V[2 * j_], V[2 * j_ + 1], 0x44, 0xee)); \
        for (int j_ = 0; j_ < 4; j_++) t_[j_] = CAST_PS(Q(s_[2 * j_], s_[2 * j_ + 1], 0x88, 0xdd)); \
        for (int j_ = 0; j_ < 2; j_++) w_[j_] = CAST_PS(F(t_[2 * j_], t_[2 * j_ + 1], 0x44, 0xee)); \
        OUT = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, \
                                                      11, 15),                                 \
                                    CAST_PS(F(w_[0], w_[1], 0x88, 0xdd)));                     \
    } while (0)

INLINE __m512 cast_ps(__m512 v) { return v; }
INLINE __m512 cast_ps_i(__m512i v) { return _mm512_castsi512_ps(v); }

/* The codes of one block (32 floats at x) from its 1 / d (iv, 0 where d is
 * 0) or, where 1 / d overflows, its d: x * (1 / d) (or x / d) clamped to
 * +-127 (max first: NaN -> -127), to the nearest integer, ties to even. */
INLINE void q8a_codes(const float *x, float d, float iv, __m512i *q0, __m512i *q1) {
    const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
    __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    if (d == 0.0f) {
        *q0 = *q1 = _mm512_setzero_si512();
        return;
    }
    if (__builtin_expect(isinf(iv), 0)) {
        v0 = _mm512_div_ps(v0, _mm512_set1_ps(d));
        v1 = _mm512_div_ps(v1, _mm512_set1_ps(d));
    } else {
        v0 = _mm512_mul_ps(v0, _mm512_set1_ps(iv));
        v1 = _mm512_mul_ps(v1, _mm512_set1_ps(iv));
    }
    *q0 = _mm512_cvt_roundps_epi32(_mm512_min_ps(_mm512_max_ps(v0, lo), hi),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    *q1 = _mm512_cvt_roundps_epi32(_mm512_min_ps(_mm512_max_ps(v1, lo), hi),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

INLINE void q8a_store(tai_block_q8a *b, __m512i q0, __m512i q1, float d, int sum) {
    _mm_storeu_si128((__m128i *)b->qs, _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128((__m128i *)(b->qs + 16), _mm512_cvtepi32_epi8(q1));
    b->d = d;
    b->s = d * (float)sum;
    b->n8 = -8 * sum;
    b->n128 = -128 * sum;
}

/* As tai_quantize_row_q8a, bit for bit: the same amax (NaN ignored), d =
 * amax / 127, 1 / d, the same conversion. 16 blocks at a time: their
 * maxima and code sums in one tree each, 16 scales' reciprocals in one
 * division (a block's own two reductions and two divisions took most of
 * its time: bench_kernels' activation quantization 0.47 -> 0.23 ns an
 * element on one thread of a family 6 model 167 Xeon). */
void tai_k_quantize_q8a_avx512(const float *src, tai_block_q8a *dst, int64_t n) {
    if (n <= 0 || n % TAI_QK != 0) return;
    const int64_t nb = n / TAI_QK;
    int64_t i = 0;
    for (; i + 16 <= nb; i += 16) {
        __m512 m[16];
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) { /* max(|x|, m) returns m where |x| is NaN */
            const float *xb = src + (i + j) * TAI_QK;
            m[j] = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(xb + 16)),
                                 _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(xb)), _mm512_setzero_ps()));
        }
        __m512 amax;
#define CAST_PS cast_ps
        TREE16(amax, m, MAX_QUARTERS, MAX_FLOATS);
#undef CAST_PS
        const __m512 d = _mm512_div_ps(amax, _mm512_set1_ps(127.0f));
        const __mmask16 nz = _mm512_cmp_ps_mask(d, _mm512_setzero_ps(), _CMP_NEQ_UQ);
        _Alignas(64) float dd[16], iv[16];
        _mm512_store_ps(dd, d);
        _mm512_store_ps(iv, _mm512_maskz_div_ps(nz, _mm512_set1_ps(1.0f), d));
        __m512 qs[16];
        __m512i q0[16], q1[16];
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) {
            q8a_codes(src + (i + j) * TAI_QK, dd[j], iv[j], &q0[j], &q1[j]);
            qs[j] = _mm512_castsi512_ps(_mm512_add_epi32(q0[j], q1[j]));
        }
        __m512 sums;
#define CAST_PS cast_ps_i
        TREE16(sums, qs, ADDI_QUARTERS, ADDI_FLOATS);
#undef CAST_PS
        _Alignas(64) int32_t ss[16];
        _mm512_store_si512(ss, _mm512_castps_si512(sums));
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) q8a_store(&dst[i + j], q0[j], q1[j], dd[j], ss[j]);
    }
    for (; i < nb; i++) { /* the last blocks, one at a time */
        const float *xb = src + i * TAI_QK;
        const __m512 mm = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(xb + 16)),
                                        _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(xb)), _mm512_setzero_ps()));
        const float d = _mm512_reduce_max_ps(mm) / 127.0f;
        __m512i q0, q1;
        q8a_codes(xb, d, d != 0.0f ? 1.0f / d : 0.0f, &q0, &q1);
        q8a_store(&dst[i], q0, q1, d, _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1)));
    }
}

/* As tai_quantize_row_q8k, bit for bit: the q8a steps over 256 elements,
 * and the sums of each 16 codes. */
void tai_k_quantize_q8k_avx512(const float *src, tai_block_q8_k *dst, int64_t n) {
    if (n <= 0 || n % TAI_QK_K != 0) return;
    for (int64_t i = 0; i < n / TAI_QK_K; i++) {
        const float *xb = src + i * TAI_QK_K;
        __m512 m = _mm512_setzero_ps();
        for (int g = 0; g < 16; g++) m = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(xb + 16 * g)), m);
        const float d = _mm512_reduce_max_ps(m) / 127.0f;
        const __m512 dv = _mm512_set1_ps(d), lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
        for (int g = 0; g < 16; g++) {
            __m512i q = _mm512_setzero_si512();
            if (d != 0.0f)
                q = _mm512_cvttps_epi32(_mm512_min_ps(
                    _mm512_max_ps(round_away16(_mm512_div_ps(_mm512_loadu_ps(xb + 16 * g), dv)), lo), hi));
            _mm_storeu_si128((__m128i *)(dst[i].qs + 16 * g), _mm512_cvtepi32_epi8(q));
            dst[i].bsums[g] = (int16_t)_mm512_reduce_add_epi32(q);
        }
        dst[i].d = d;
    }
}


#endif /* __x86_64__ */
