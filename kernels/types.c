/*
 * kernels/types.c: the quantization of activations for the integer products
 * (layer: kernels). The weight types themselves are core/types.c's.
 */
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels.h"

static_assert(sizeof(tai_block_q8a) == 48, "q8a block is 48 bytes");

static int trunc_clamp(float v, int lo, int hi) {
    if (!(v > (float)lo)) return lo; /* also nan */
    if (v >= (float)hi) return hi;
    return (int)v;
}

/* v to the nearest integer, ties to even, whatever the rounding mode (the
 * vector quantizers' conversion); NaN stays NaN. */
static float round_even(float v) {
    const float r = roundf(v); /* ties away from zero */
    /* a tie (r - v exact): v / 2 is then never one, and 2 round(v / 2) is
     * the even neighbour */
    return fabsf(r - v) == 0.5f ? 2.0f * roundf(0.5f * v) : r;
}

/* q8a: d = amax / 127 kept as a float (never stored), q = x * (1 / d)
 * rounded to the nearest integer, ties to even (one reciprocal a block and
 * a multiply and a conversion an element in the vector quantizers, as
 * llama.cpp's q8 activations take x * (1 / d); x / d where 1 / d overflows,
 * for blocks below ~2^-121), clamped to +-127 with NaN going to -127;
 * s = d * sum(q) so that a Q4_1 minimum m contributes m * s per block;
 * n8 and n128 cancel the bias of packed Q4_0 / Q8_0 codes (kernels.h). */
void tai_quantize_row_q8a(const float *src, tai_block_q8a *dst, int64_t n) {
    if (n <= 0 || n % TAI_QK != 0) return;
    for (int64_t i = 0; i < n / TAI_QK; i++) {
        const float *xb = src + i * TAI_QK;
        float amax = 0.0f;
        for (int j = 0; j < TAI_QK; j++)
            if (amax < fabsf(xb[j])) amax = fabsf(xb[j]);
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int j = 0; j < TAI_QK; j++) {
            const float v = isinf(id) ? xb[j] / d : xb[j] * id;
            const int q = d != 0.0f ? trunc_clamp(round_even(v), -127, 127) : 0;
            dst[i].qs[j] = (int8_t)q;
            sum += q;
        }
        dst[i].d = d;
        dst[i].s = d * (float)sum;
        dst[i].n8 = -8 * sum;
        dst[i].n128 = -128 * sum;
    }
}

/* q8k: d = amax / 127 over 256 elements, q = roundf(x / d) (a true
 * division, ties away from zero), clamped as q8a's; the sums of each 16
 * codes. */
void tai_quantize_row_q8k(const float *src, tai_block_q8_k *dst, int64_t n) {
    if (n <= 0 || n % TAI_QK_K != 0) return;
    for (int64_t i = 0; i < n / TAI_QK_K; i++) {
        const float *xb = src + i * TAI_QK_K;
        float amax = 0.0f;
        for (int j = 0; j < TAI_QK_K; j++)
            if (amax < fabsf(xb[j])) amax = fabsf(xb[j]);
        const float d = amax / 127.0f;
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int j = 16 * g; j < 16 * g + 16; j++) {
                const int q = d != 0.0f ? trunc_clamp(roundf(xb[j] / d), -127, 127) : 0;
                dst[i].qs[j] = (int8_t)q;
                sum += q;
            }
            dst[i].bsums[g] = (int16_t)sum;
        }
        dst[i].d = d;
    }
}
