/*
 * kernels/pack.c: weight repacking into row panels and activation
 * preparation in column groups (layer: kernels). Both layouts are specified
 * in kernels.h; this file is their one writer. Packing is exact: it moves
 * and re-biases integer codes and copies fp16 scales bit for bit.
 */
#include <string.h>

#include "kernels/kernels_internal.h"

#define ALIGN64(x) (((x) + 63u) & ~(size_t)63u)

/* Unrounded bytes of one panel, or 0. Sizes are bounded by the caller's
 * overflow check in tai_pack_panel_bytes. */
static size_t panel_bytes_raw(tai_type t, int64_t n) {
    const size_t P = TAI_PANEL;
    const size_t pairs = (size_t)(n / TAI_QK + 1) / 2;
    switch (t) {
    case TAI_TYPE_F32: return (size_t)n * P * 4;
    case TAI_TYPE_F16: return (size_t)n * P * 2;
    case TAI_TYPE_Q8_0:
    case TAI_TYPE_Q4_0:
    case TAI_TYPE_Q4_1: return pairs * tai_qpair_bytes(t);
    default: return 0;
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

/* Code of element j (0..31) of a block, unsigned as packed: Q4 nibbles as
 * stored (0..15), Q8_0 values + 128 (0..255). */
static inline uint8_t q4_code(const uint8_t *qs, int j) {
    return j < 16 ? (qs[j] & 0x0f) : (qs[j - 16] >> 4);
}

static void pack_panel(tai_type t, const void *w, int64_t rows, int64_t n, uint8_t *dst,
                       int64_t p) {
    const size_t row_bytes = tai_type_row_bytes(t, n);
    const int64_t nb = n / TAI_QK;
    const int64_t r0 = p * TAI_PANEL;
    memset(dst, 0, tai_pack_panel_bytes(t, n)); /* missing rows and padding */
    for (int r = 0; r < TAI_PANEL && r0 + r < rows; r++) {
        const uint8_t *src = (const uint8_t *)w + (size_t)(r0 + r) * row_bytes;
        switch (t) {
        case TAI_TYPE_F32: {
            float *o = (float *)dst;
            for (int64_t k = 0; k < n; k++) memcpy(&o[k * TAI_PANEL + r], src + 4 * k, 4);
            break;
        }
        case TAI_TYPE_F16: {
            uint16_t *o = (uint16_t *)dst;
            for (int64_t k = 0; k < n; k++) memcpy(&o[k * TAI_PANEL + r], src + 2 * k, 2);
            break;
        }
        case TAI_TYPE_Q8_0: {
            const tai_block_q8_0 *b = (const tai_block_q8_0 *)src;
            for (int64_t i = 0; i < nb; i++) {
                uint8_t *q = dst + tai_qcodes_at(t, i);
                uint16_t *d = (uint16_t *)(dst + tai_qscales_at(t, i));
                for (int g = 0; g < 8; g++)
                    for (int k = 0; k < 4; k++)
                        q[(g * TAI_PANEL + r) * 4 + k] = (uint8_t)(b[i].qs[4 * g + k] + 128);
                d[r] = b[i].d;
            }
            break;
        }
        case TAI_TYPE_Q4_0:
        case TAI_TYPE_Q4_1: {
            const size_t bb = tai_type_block_bytes(t);
            for (int64_t i = 0; i < nb; i++) {
                uint16_t *d = (uint16_t *)(dst + tai_qscales_at(t, i));
                uint16_t *m = (uint16_t *)(dst + tai_qmins_at(t, i)); /* Q4_1 only */
                const uint8_t *blk = src + (size_t)i * bb;
                uint16_t dh, mh = 0;
                memcpy(&dh, blk, 2);
                if (t == TAI_TYPE_Q4_1) memcpy(&mh, blk + 2, 2);
                const uint8_t *qs = blk + (t == TAI_TYPE_Q4_1 ? 4 : 2);
                uint8_t *q = dst + tai_qcodes_at(t, i);
                for (int j = 0; j < 4; j++)
                    for (int k = 0; k < 4; k++)
                        q[(j * TAI_PANEL + r) * 4 + k] =
                            (uint8_t)(q4_code(qs, 8 * j + k) | q4_code(qs, 8 * j + 4 + k) << 4);
                d[r] = dh;
                if (t == TAI_TYPE_Q4_1) m[r] = mh;
            }
            break;
        }
        default: break;
        }
    }
}

void tai_pack_panels(tai_type t, const void *w, int64_t rows, int64_t n, void *dst,
                     int64_t p0, int64_t p1) {
    const size_t pb = tai_pack_panel_bytes(t, n);
    if (pb == 0 || rows <= 0 || w == NULL || dst == NULL) return;
    const int64_t np = (rows + TAI_PANEL - 1) / TAI_PANEL;
    if (p0 < 0) p0 = 0;
    if (p1 > np) p1 = np;
    for (int64_t p = p0; p < p1; p++) pack_panel(t, w, rows, n, (uint8_t *)dst + (size_t)p * pb, p);
}

/* ---- One row back out of a packed matrix ------------------------------------ */

/* Each block is rebuilt exactly as GGUF stores it and dequantized by
 * tai_dequantize_row, so the floats are those of the row-major row bit for
 * bit (same scale conversion, same arithmetic). */
void tai_packed_row(tai_type t, const void *packed, int64_t rows, int64_t n, int64_t r,
                    float *out) {
    const size_t pb = tai_pack_panel_bytes(t, n);
    if (pb == 0 || packed == NULL || out == NULL || r < 0 || r >= rows) return;
    const uint8_t *panel = (const uint8_t *)packed + (size_t)(r / TAI_PANEL) * pb;
    const int rr = (int)(r % TAI_PANEL);
    const int64_t nb = n / TAI_QK;
    switch (t) {
    case TAI_TYPE_F32:
        for (int64_t k = 0; k < n; k++) memcpy(&out[k], panel + (k * TAI_PANEL + rr) * 4, 4);
        break;
    case TAI_TYPE_F16:
        for (int64_t k = 0; k < n; k++) {
            uint16_t h;
            memcpy(&h, panel + (k * TAI_PANEL + rr) * 2, 2);
            out[k] = tai_fp16_to_fp32(h);
        }
        break;
    case TAI_TYPE_Q8_0:
        for (int64_t i = 0; i < nb; i++) {
            const uint8_t *q = panel + tai_qcodes_at(t, i);
            tai_block_q8_0 b;
            memcpy(&b.d, panel + tai_qscales_at(t, i) + 2 * rr, 2);
            for (int g = 0; g < 8; g++)
                for (int k = 0; k < 4; k++)
                    b.qs[4 * g + k] = (int8_t)(q[(g * TAI_PANEL + rr) * 4 + k] - 128);
            tai_dequantize_row(t, &b, out + i * TAI_QK, TAI_QK);
        }
        break;
    case TAI_TYPE_Q4_0:
    case TAI_TYPE_Q4_1:
        for (int64_t i = 0; i < nb; i++) {
            const uint8_t *q = panel + tai_qcodes_at(t, i);
            uint8_t code[TAI_QK]; /* element j's code, 0..15 */
            for (int j = 0; j < 4; j++)
                for (int k = 0; k < 4; k++) {
                    const uint8_t c = q[(j * TAI_PANEL + rr) * 4 + k];
                    code[8 * j + k] = c & 0x0f;
                    code[8 * j + 4 + k] = c >> 4;
                }
            uint8_t qs[TAI_QK / 2];
            for (int j = 0; j < TAI_QK / 2; j++)
                qs[j] = (uint8_t)(code[j] | code[j + TAI_QK / 2] << 4);
            if (t == TAI_TYPE_Q4_0) {
                tai_block_q4_0 b;
                memcpy(&b.d, panel + tai_qscales_at(t, i) + 2 * rr, 2);
                memcpy(b.qs, qs, sizeof qs);
                tai_dequantize_row(t, &b, out + i * TAI_QK, TAI_QK);
            } else {
                tai_block_q4_1 b;
                memcpy(&b.d, panel + tai_qscales_at(t, i) + 2 * rr, 2);
                memcpy(&b.m, panel + tai_qmins_at(t, i) + 2 * rr, 2);
                memcpy(b.qs, qs, sizeof qs);
                tai_dequantize_row(t, &b, out + i * TAI_QK, TAI_QK);
            }
        }
        break;
    default: break;
    }
}

/* ---- Activations ---------------------------------------------------------- */

size_t tai_prep_bytes(tai_prep p, int64_t n, int64_t ncols) {
    size_t col = tai_prep_col_bytes(p, n);
    if (col == 0 || ncols <= 0 || (uint64_t)ncols > SIZE_MAX / col) return 0;
    return col * (size_t)ncols;
}

void tai_prep_groups(tai_prep p, const float *x, int64_t n, int64_t ncols, void *dst,
                     int64_t g0, int64_t g1) {
    tai_prep_groups_with(p, x, n, ncols, dst, g0, g1, tai_quantize_row_q8a);
}

void tai_prep_groups_with(tai_prep p, const float *x, int64_t n, int64_t ncols, void *dst,
                          int64_t g0, int64_t g1, tai_quantize_q8a_fn quantize) {
    const size_t col = tai_prep_col_bytes(p, n);
    if (col == 0 || ncols <= 0) return;
    for (int64_t g = g0; g < g1 && g * TAI_NR < ncols; g++) {
        const int64_t c0 = g * TAI_NR;
        const int64_t w = ncols - c0 < TAI_NR ? ncols - c0 : TAI_NR;
        char *gd = (char *)dst + (size_t)c0 * col;
        if (w == 1) { /* a lone column is stored as tai_prep_col stores it */
            if (p == TAI_PREP_F32)
                tai_prep_col(p, x + c0 * n, gd, n);
            else
                quantize(x + c0 * n, (tai_block_q8a *)gd, n);
            continue;
        }
        if (p == TAI_PREP_F32) {
            float *o = (float *)gd;
            for (int64_t k = 0; k < n; k++)
                for (int64_t j = 0; j < w; j++) o[k * w + j] = x[(c0 + j) * n + k];
        } else {
            tai_block_q8a *o = (tai_block_q8a *)gd;
            const int64_t nb = n / TAI_QK;
            for (int64_t j = 0; j < w; j++)
                for (int64_t b = 0; b < nb; b++)
                    quantize(x + (c0 + j) * n + b * TAI_QK, &o[b * w + j], TAI_QK);
        }
    }
}
