/*
 * kernels/q_float.h: the float steps of the block types' products on
 * AVX-512 (layer: kernels, internal), shared by the VNNI loops
 * (matmul_avx512.c) and the AMX loop (matmul_amx.c). Both compute a
 * block's exact integer sum their own way, then these same instructions
 * take it into the column's accumulator, so a column's result is the same
 * bits whichever loop ran (batch invariance). T: 0 Q8_0, 1 Q4_0, 2 Q4_1.
 */
#ifndef TAI_KERNELS_Q_FLOAT_H
#define TAI_KERNELS_Q_FLOAT_H

#include <immintrin.h>

#include "kernels/kernels.h"

/* acc += d_w * (d_x * isum) [+ m_w * s_x for Q4_1]: one block of one
 * column, 16 rows. */
static inline __attribute__((always_inline)) __m512 tai_q_scale16(__m512i isum, const tai_block_q8a *a,
                                                                  __m512 dw, __m512 mw, __m512 acc,
                                                                  int T) {
    const __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(a->d));
    acc = _mm512_fmadd_ps(f, dw, acc);
    if (T == 2) acc = _mm512_fmadd_ps(mw, _mm512_set1_ps(a->s), acc);
    return acc;
}

/* The 8 columns' accumulators of a panel: zero (the first slice of K) or
 * the partial sums stored in y; and stored back. */
static inline __attribute__((always_inline)) void tai_q_acc_load(__m512 acc[8], const float *y, int64_t ys,
                                                                 int64_t row0, __mmask16 mk, int first) {
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++)
        acc[j] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mk, y + j * ys + row0);
}

static inline __attribute__((always_inline)) void tai_q_acc_store(const __m512 acc[8], float *y, int64_t ys,
                                                                  int64_t row0, __mmask16 mk) {
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) _mm512_mask_storeu_ps(y + j * ys + row0, mk, acc[j]);
}

#endif
