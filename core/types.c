/*
 * core/types.c: element types, fp16 conversion, the reference
 * (de)quantization of rows and the sizes of the packed layout (layer: core).
 *
 * The quantization math is exactly ggml's reference (quantize_row_*_ref), so
 * files written by TinyAI match ggml's byte for byte and vice versa. These
 * functions are used to write files and in tests; they are not hot paths.
 */
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/types.h"

static_assert(sizeof(tai_block_q4_0) == 18, "Q4_0 block is 18 bytes");
static_assert(sizeof(tai_block_q4_1) == 20, "Q4_1 block is 20 bytes");
static_assert(sizeof(tai_block_q8_0) == 34, "Q8_0 block is 34 bytes");
static_assert(TAI_QK == 32, "block math below assumes 32 elements");

/* ---- Type information --------------------------------------------------- */

int tai_type_valid(int t) {
    return t == TAI_TYPE_F32 || t == TAI_TYPE_F16 || t == TAI_TYPE_BF16 || tai_type_is_q32((tai_type)t) ||
           (t >= 0 && t < TAI_TYPE_COUNT && tai_type_is_unit((tai_type)t));
}

const char *tai_type_name(int t) {
    switch (t) {
    case TAI_TYPE_F32: return "F32";
    case TAI_TYPE_F16: return "F16";
    case TAI_TYPE_Q4_0: return "Q4_0";
    case TAI_TYPE_Q4_1: return "Q4_1";
    case TAI_TYPE_Q8_0: return "Q8_0";
    case TAI_TYPE_Q5_0: return "Q5_0";
    case TAI_TYPE_Q5_1: return "Q5_1";
    case TAI_TYPE_Q2_K: return "Q2_K";
    case TAI_TYPE_Q3_K: return "Q3_K";
    case TAI_TYPE_Q4_K: return "Q4_K";
    case TAI_TYPE_Q5_K: return "Q5_K";
    case TAI_TYPE_Q6_K: return "Q6_K";
    case TAI_TYPE_Q8_K: return "Q8_K";
    case TAI_TYPE_IQ4_NL: return "IQ4_NL";
    case TAI_TYPE_BF16: return "BF16";
    default: return "?";
    }
}

int64_t tai_type_block_elems(tai_type t) {
    switch (t) {
    case TAI_TYPE_F32:
    case TAI_TYPE_F16:
    case TAI_TYPE_BF16: return 1;
    case TAI_TYPE_Q4_0:
    case TAI_TYPE_Q4_1:
    case TAI_TYPE_Q5_0:
    case TAI_TYPE_Q5_1:
    case TAI_TYPE_IQ4_NL:
    case TAI_TYPE_Q8_0: return TAI_QK;
    case TAI_TYPE_Q2_K:
    case TAI_TYPE_Q3_K:
    case TAI_TYPE_Q4_K:
    case TAI_TYPE_Q5_K:
    case TAI_TYPE_Q6_K:
    case TAI_TYPE_Q8_K: return TAI_QK_K;
    default: return 0;
    }
}

size_t tai_type_block_bytes(tai_type t) {
    switch (t) {
    case TAI_TYPE_F32: return sizeof(float);
    case TAI_TYPE_F16:
    case TAI_TYPE_BF16: return sizeof(uint16_t);
    case TAI_TYPE_Q5_0: return sizeof(tai_block_q5_0);
    case TAI_TYPE_Q5_1: return sizeof(tai_block_q5_1);
    case TAI_TYPE_IQ4_NL: return sizeof(tai_block_iq4_nl);
    case TAI_TYPE_Q2_K: return sizeof(tai_block_q2_k);
    case TAI_TYPE_Q3_K: return sizeof(tai_block_q3_k);
    case TAI_TYPE_Q4_K: return sizeof(tai_block_q4_k);
    case TAI_TYPE_Q5_K: return sizeof(tai_block_q5_k);
    case TAI_TYPE_Q6_K: return sizeof(tai_block_q6_k);
    case TAI_TYPE_Q8_K: return sizeof(tai_block_q8_k);
    case TAI_TYPE_Q4_0: return sizeof(tai_block_q4_0);
    case TAI_TYPE_Q4_1: return sizeof(tai_block_q4_1);
    case TAI_TYPE_Q8_0: return sizeof(tai_block_q8_0);
    default: return 0;
    }
}

int tai_type_bits(tai_type t) {
    if (!tai_type_valid((int)t)) return 0;
    /* bytes * 8 / elements, rounded down: Q4_0 4.5 -> 4, Q4_1 5, Q8_0 8.5 -> 8,
     * Q4_K 4.5 -> 4, Q6_K 6.56 -> 6 */
    return (int)(tai_type_block_bytes(t) * 8 / (size_t)tai_type_block_elems(t));
}

size_t tai_type_row_bytes(tai_type t, int64_t n) {
    int64_t be = tai_type_block_elems(t);
    if (be == 0 || n < 0 || n % be != 0) return 0;
    uint64_t blocks = (uint64_t)(n / be);
    size_t bb = tai_type_block_bytes(t);
    if (blocks > SIZE_MAX / bb) return 0;
    return (size_t)blocks * bb;
}

/* ---- fp16 --------------------------------------------------------------- */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* IEEE binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. Every half
 * is exactly representable as a float, so this conversion is exact. */
float tai_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in float */
        float v = (float)mant * 0x1p-24f;
        return sign ? -v : v;
    }
    if (exp == 31) /* inf, or nan with its payload kept */
        return f32_from_bits(sign | 0x7f800000u | (mant << 13));
    return f32_from_bits(sign | ((exp + 112) << 23) | (mant << 13));
}

/* Round to nearest, ties to even, in integer arithmetic so that the result
 * does not depend on the compiler's or the CPU's floating-point modes. */
uint16_t tai_fp32_to_fp16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;

    if (x > 0x7f800000u) /* nan: keep it quiet and keep the top payload bits */
        return (uint16_t)(sign | 0x7e00u | ((x >> 13) & 0x3ffu));
    /* 65520 = 0x477ff000 is the midpoint between 65504 (max half, odd
     * mantissa) and 65536; ties to even rounds it, and anything above, to inf. */
    if (x >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
    if (x >= 0x38800000u) { /* normal half: |f| >= 2^-14 */
        /* add just under half an ulp, plus one if the kept lsb is odd: ties
         * then round to even; a mantissa carry correctly bumps the exponent */
        x += 0x0fffu + ((x >> 13) & 1u);
        return (uint16_t)(sign | ((x - 0x38000000u) >> 13)); /* rebias 127 -> 15 */
    }
    if (x <= 0x33000000u) /* <= 2^-25: half of the smallest subnormal, ties to 0 */
        return sign;
    /* subnormal half: value = m * 2^(e - 150) = h * 2^-24 -> h = m >> (126 - e) */
    uint32_t e = x >> 23;
    uint32_t m = (x & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e; /* 14..24 */
    uint32_t h = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) h++; /* may reach 0x400: min normal */
    return (uint16_t)(sign | h);
}

/* bf16: the top half of the float, rounded to nearest even; NaN kept quiet
 * (ggml's conversion). */
uint16_t tai_fp32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

/* ---- Reference quantization (ggml's *_ref math) ------------------------- */

/* Truncates v toward zero and clamps it to [lo, hi]. For every input where
 * ggml's plain (int8_t) cast is defined and in range this is the same value;
 * it only differs where the cast would be undefined (nan, or a huge ratio
 * after a scale that underflowed to a subnormal). */
static int trunc_clamp(float v, int lo, int hi) {
    if (!(v > (float)lo)) return lo; /* also nan */
    if (v >= (float)hi) return hi;
    return (int)v;
}

/* Q4_0: d = (element of largest magnitude, with its sign) / -8, so that this
 * element maps to q = 0 exactly; q = min(15, trunc(x/d + 8.5)). */
static void quantize_q4_0(const float *x, tai_block_q4_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * TAI_QK;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < TAI_QK; j++) {
            float v = xb[j];
            if (amax < fabsf(v)) {
                amax = fabsf(v);
                max = v;
            }
        }
        float d = max / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = tai_fp32_to_fp16(d);
        for (int j = 0; j < TAI_QK / 2; j++) {
            float x0 = xb[j] * id;
            float x1 = xb[TAI_QK / 2 + j] * id;
            int q0 = trunc_clamp(x0 + 8.5f, 0, 15); /* min(15, (int8_t)(x0 + 8.5f)) */
            int q1 = trunc_clamp(x1 + 8.5f, 0, 15);
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* Q4_1: m = min, d = (max - min) / 15, q = min(15, trunc((x - m)/d + 0.5)). */
static void quantize_q4_1(const float *x, tai_block_q4_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * TAI_QK;
        float min = INFINITY, max = -INFINITY;
        for (int j = 0; j < TAI_QK; j++) {
            if (xb[j] < min) min = xb[j];
            if (xb[j] > max) max = xb[j];
        }
        float d = (max - min) / 15.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = tai_fp32_to_fp16(d);
        y[i].m = tai_fp32_to_fp16(min);
        for (int j = 0; j < TAI_QK / 2; j++) {
            float x0 = (xb[j] - min) * id;
            float x1 = (xb[TAI_QK / 2 + j] - min) * id;
            int q0 = trunc_clamp(x0 + 0.5f, 0, 15); /* min(15, (int8_t)(x0 + 0.5f)) */
            int q1 = trunc_clamp(x1 + 0.5f, 0, 15);
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* Q8_0: d = amax / 127, q = roundf(x / d) (half away from zero). */
static void quantize_q8_0(const float *x, tai_block_q8_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * TAI_QK;
        float amax = 0.0f;
        for (int j = 0; j < TAI_QK; j++)
            if (amax < fabsf(xb[j])) amax = fabsf(xb[j]);
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = tai_fp32_to_fp16(d);
        for (int j = 0; j < TAI_QK; j++)
            y[i].qs[j] = (int8_t)trunc_clamp(roundf(xb[j] * id), -127, 127);
    }
}

/* core/types_unit.c */
int tai_unit_quantize_row(tai_type t, const float *src, void *dst, int64_t n);
void tai_unit_dequantize_row(tai_type t, const void *src, float *dst, int64_t n);

void tai_quantize_row(tai_type t, const float *src, void *dst, int64_t n) {
    int64_t be = tai_type_block_elems(t);
    if (be == 0 || n <= 0 || n % be != 0) return;
    if (tai_type_is_unit(t)) {
        tai_unit_quantize_row(t, src, dst, n);
        return;
    }
    switch (t) {
    case TAI_TYPE_BF16: {
        uint16_t *h = dst;
        for (int64_t i = 0; i < n; i++) h[i] = tai_fp32_to_bf16(src[i]);
        break;
    }
    case TAI_TYPE_F32: memcpy(dst, src, (size_t)n * sizeof(float)); break;
    case TAI_TYPE_F16: {
        uint16_t *h = dst;
        for (int64_t i = 0; i < n; i++) h[i] = tai_fp32_to_fp16(src[i]);
        break;
    }
    case TAI_TYPE_Q4_0: quantize_q4_0(src, dst, n / TAI_QK); break;
    case TAI_TYPE_Q4_1: quantize_q4_1(src, dst, n / TAI_QK); break;
    case TAI_TYPE_Q8_0: quantize_q8_0(src, dst, n / TAI_QK); break;
    default: break;
    }
}

void tai_dequantize_row(tai_type t, const void *src, float *dst, int64_t n) {
    int64_t be = tai_type_block_elems(t);
    if (be == 0 || n <= 0 || n % be != 0) return;
    if (tai_type_is_unit(t)) {
        tai_unit_dequantize_row(t, src, dst, n);
        return;
    }
    switch (t) {
    case TAI_TYPE_BF16: {
        const uint16_t *h = src;
        for (int64_t i = 0; i < n; i++) dst[i] = tai_bf16_to_fp32(h[i]);
        break;
    }
    case TAI_TYPE_F32: memcpy(dst, src, (size_t)n * sizeof(float)); break;
    case TAI_TYPE_F16: {
        const uint16_t *h = src;
        for (int64_t i = 0; i < n; i++) dst[i] = tai_fp16_to_fp32(h[i]);
        break;
    }
    case TAI_TYPE_Q4_0: {
        const tai_block_q4_0 *b = src;
        for (int64_t i = 0; i < n / TAI_QK; i++) {
            float d = tai_fp16_to_fp32(b[i].d);
            float *o = dst + i * TAI_QK;
            for (int j = 0; j < TAI_QK / 2; j++) {
                o[j] = (float)((b[i].qs[j] & 0x0f) - 8) * d;
                o[j + TAI_QK / 2] = (float)((b[i].qs[j] >> 4) - 8) * d;
            }
        }
        break;
    }
    case TAI_TYPE_Q4_1: {
        const tai_block_q4_1 *b = src;
        for (int64_t i = 0; i < n / TAI_QK; i++) {
            float d = tai_fp16_to_fp32(b[i].d);
            float m = tai_fp16_to_fp32(b[i].m);
            float *o = dst + i * TAI_QK;
            for (int j = 0; j < TAI_QK / 2; j++) {
                o[j] = (float)(b[i].qs[j] & 0x0f) * d + m;
                o[j + TAI_QK / 2] = (float)(b[i].qs[j] >> 4) * d + m;
            }
        }
        break;
    }
    case TAI_TYPE_Q8_0: {
        const tai_block_q8_0 *b = src;
        for (int64_t i = 0; i < n / TAI_QK; i++) {
            float d = tai_fp16_to_fp32(b[i].d);
            for (int j = 0; j < TAI_QK; j++) dst[i * TAI_QK + j] = (float)b[i].qs[j] * d;
        }
        break;
    }
    default: break;
    }
}

/* ---- Packed layout sizes ------------------------------------------------ */

#define ALIGN64(x) (((x) + 63u) & ~(size_t)63u)

/* Unrounded bytes of one panel, or 0. Sizes are bounded by the caller's
 * overflow check in tai_pack_panel_bytes. */
static size_t panel_bytes_raw(tai_type t, int64_t n) {
    const size_t P = TAI_PANEL;
    const size_t pairs = (size_t)(n / TAI_QK + 1) / 2;
    switch (t) {
    case TAI_TYPE_F32: return (size_t)n * P * 4;
    case TAI_TYPE_F16:
    case TAI_TYPE_BF16: return (size_t)n * P * 2;
    case TAI_TYPE_Q8_0:
    case TAI_TYPE_Q4_0:
    case TAI_TYPE_Q4_1: return pairs * tai_qpair_bytes(t);
    default: {
        const tai_unit_layout *L = tai_unit_layout_of(t);
        if (!L) return 0;
        return (size_t)((n + L->elems - 1) / L->elems) * L->bytes;
    }
    }
}

size_t tai_pack_panel_bytes(tai_type t, int64_t n) {
    if (!tai_type_valid((int)t) || n <= 0 || n % tai_type_block_elems(t) != 0) return 0;
    if ((uint64_t)n > (SIZE_MAX >> 8)) return 0; /* n * 16 * 4 + 63 fits */
    return ALIGN64(panel_bytes_raw(t, n));
}

size_t tai_pack_bytes(tai_type t, int64_t rows, int64_t n) {
    size_t pb = tai_pack_panel_bytes(t, n);
    if (pb == 0 || rows <= 0) return 0;
    uint64_t panels = ((uint64_t)rows + TAI_PANEL - 1) / TAI_PANEL;
    if (panels > SIZE_MAX / pb) return 0;
    return (size_t)panels * pb;
}

void tai_unpack_block(tai_type t, const void *panel_, int rr, int64_t i, void *dst) {
    const uint8_t *panel = panel_;
    const uint8_t *q = panel + tai_qcodes_at(t, i);
    if (t == TAI_TYPE_Q8_0) {
        tai_block_q8_0 b;
        memcpy(&b.d, panel + tai_qscales_at(t, i) + 2 * rr, 2);
        for (int g = 0; g < 8; g++)
            for (int k = 0; k < 4; k++)
                b.qs[4 * g + k] = (int8_t)(q[(g * TAI_PANEL + rr) * 4 + k] - 128);
        memcpy(dst, &b, sizeof b);
        return;
    }
    uint8_t code[TAI_QK]; /* element j's code, 0..15 */
    for (int j = 0; j < 4; j++)
        for (int k = 0; k < 4; k++) {
            const uint8_t c = q[(j * TAI_PANEL + rr) * 4 + k];
            code[8 * j + k] = c & 0x0f;
            code[8 * j + 4 + k] = c >> 4;
        }
    uint8_t qs[TAI_QK / 2];
    for (int j = 0; j < TAI_QK / 2; j++) qs[j] = (uint8_t)(code[j] | code[j + TAI_QK / 2] << 4);
    if (t == TAI_TYPE_Q4_0) {
        tai_block_q4_0 b;
        memcpy(&b.d, panel + tai_qscales_at(t, i) + 2 * rr, 2);
        memcpy(b.qs, qs, sizeof qs);
        memcpy(dst, &b, sizeof b);
    } else {
        tai_block_q4_1 b;
        memcpy(&b.d, panel + tai_qscales_at(t, i) + 2 * rr, 2);
        memcpy(&b.m, panel + tai_qmins_at(t, i) + 2 * rr, 2);
        memcpy(b.qs, qs, sizeof qs);
        memcpy(dst, &b, sizeof b);
    }
}

void tai_unpack_row(tai_type t, const void *packed, int64_t rows, int64_t n, int64_t r,
                    void *dst) {
    const size_t pb = tai_pack_panel_bytes(t, n);
    if (pb == 0 || packed == NULL || dst == NULL || r < 0 || r >= rows) return;
    const uint8_t *panel = (const uint8_t *)packed + (size_t)(r / TAI_PANEL) * pb;
    const int rr = (int)(r % TAI_PANEL);
    uint8_t *out = dst;
    if (tai_type_is_unit(t)) {
        const tai_unit_layout *L = tai_unit_layout_of(t);
        const size_t bb = tai_type_block_bytes(t);
        const int64_t nb = n / tai_type_block_elems(t), per = L->elems / tai_type_block_elems(t);
        tai_unit_row row;
        for (int64_t u = 0; u * per < nb; u++) {
            const int k = nb - u * per < per ? (int)(nb - u * per) : (int)per;
            tai_unit_get(t, panel + (size_t)u * L->bytes, rr, &row);
            tai_unit_to_gguf(t, &row, k, out + (size_t)(u * per) * bb);
        }
        return;
    }
    if (t == TAI_TYPE_F32 || t == TAI_TYPE_F16 || t == TAI_TYPE_BF16) {
        const size_t es = t == TAI_TYPE_F32 ? 4 : 2;
        for (int64_t k = 0; k < n; k++)
            memcpy(out + (size_t)k * es, panel + ((size_t)k * TAI_PANEL + (size_t)rr) * es, es);
        return;
    }
    const size_t bb = tai_type_block_bytes(t);
    for (int64_t i = 0; i < n / TAI_QK; i++) tai_unpack_block(t, panel, rr, i, out + (size_t)i * bb);
}

size_t tai_sparse_panel_bytes(tai_type t, int64_t n, int64_t keep) {
    /* the 32-column tiles of a pruned matrix: the types with 32-element
     * blocks of one scale, and the float types */
    if (!(tai_type_is_q32(t) || t == TAI_TYPE_F32 || t == TAI_TYPE_F16) || n <= 0 || n % TAI_QK != 0 || keep < 1 || keep > n / TAI_QK)
        return 0;
    const size_t pb = tai_pack_panel_bytes(t, keep * TAI_QK);
    return pb ? tai_sparse_index_bytes(keep) + pb : 0;
}

size_t tai_sparse_bytes(tai_type t, int64_t rows, int64_t n, int64_t keep) {
    const size_t pb = tai_sparse_panel_bytes(t, n, keep);
    if (pb == 0 || rows <= 0) return 0;
    const uint64_t panels = ((uint64_t)rows + TAI_PANEL - 1) / TAI_PANEL;
    if (panels > SIZE_MAX / pb) return 0;
    return (size_t)panels * pb;
}

int64_t tai_sparse_keep(tai_type t, const void *w, int64_t rows, int64_t n, uint64_t size) {
    if (!w || size < 2) return 0;
    uint16_t k;
    memcpy(&k, w, 2);
    return k >= 1 && tai_sparse_bytes(t, rows, n, k) == size ? (int64_t)k : 0;
}

int tai_sparse_check(tai_type t, const void *w, int64_t rows, int64_t n, int64_t keep,
                     int64_t *bad_panel) {
    const size_t pb = tai_sparse_panel_bytes(t, n, keep);
    if (pb == 0 || rows <= 0 || !w) {
        if (bad_panel) *bad_panel = 0;
        return 0;
    }
    const int64_t panels = (rows + TAI_PANEL - 1) / TAI_PANEL, nb = n / TAI_QK;
    for (int64_t p = 0; p < panels; p++) {
        const uint8_t *ix = (const uint8_t *)w + (size_t)p * pb;
        uint16_t k;
        memcpy(&k, ix, 2);
        if ((int64_t)k != keep) {
            if (bad_panel) *bad_panel = p;
            return 0;
        }
        int64_t prev = -1;
        for (int64_t j = 0; j < keep; j++) {
            uint16_t v;
            memcpy(&v, ix + 2 + 2 * j, 2);
            if ((int64_t)v <= prev || (int64_t)v >= nb) {
                if (bad_panel) *bad_panel = p;
                return 0;
            }
            prev = v;
        }
    }
    return 1;
}

void tai_sparse_unpack_row(tai_type t, const void *w, int64_t rows, int64_t n, int64_t keep,
                           int64_t r, void *dst) {
    const size_t pb = tai_sparse_panel_bytes(t, n, keep);
    if (pb == 0 || !w || !dst || r < 0 || r >= rows) return;
    const uint8_t *panel = (const uint8_t *)w + (size_t)(r / TAI_PANEL) * pb;
    uint8_t *out = dst;
    const size_t rb = tai_type_row_bytes(t, n), bb = rb / (size_t)(n / TAI_QK);
    /* the kept blocks, packed together at the row's start... */
    tai_unpack_row(t, panel + tai_sparse_index_bytes(keep), TAI_PANEL, keep * TAI_QK,
                   r % TAI_PANEL, out);
    /* ...moved out to their columns from the last (idx[j] >= j, so nothing
     * is overwritten before it moves), the gaps zeroed */
    size_t end = rb;
    for (int64_t j = keep; j-- > 0;) {
        uint16_t b;
        memcpy(&b, panel + 2 + 2 * j, 2);
        const size_t at = (size_t)b * bb;
        memset(out + at + bb, 0, end - at - bb);
        memmove(out + at, out + (size_t)j * bb, bb);
        end = at;
    }
    memset(out, 0, end);
}
