/*
 * kernels/pack.c: weight repacking into row panels and activation
 * preparation in column groups (layer: kernels). Both layouts are specified
 * in kernels.h; this file is their one writer. Packing is exact: it moves
 * and re-biases integer codes and copies fp16 scales bit for bit.
 */
#include <string.h>

#include "kernels/kernels_internal.h"

/* Blocks packed per row before the next row: a few, so that the part of the
 * panel being written stays in L1 while each source row is read in runs of
 * several cache lines (measured best at 4 on a Xeon with 2 MiB L2). */
#define CHUNK 4

static inline uint32_t load32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline void store32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

/* ---- Unit-packed types (core/types.h "Unit-packed weights") ----------------
 *
 * Word operations per row, as for Q4_0 below: the nibble plane of a
 * sub-block from 32 source bytes whose low (or high) nibbles are its
 * elements in order, a high-bit plane from 32 bytes holding each element's
 * bit at one position. Q2_K and Q3_K (rare in files) go through the plain
 * per-element form. */

/* Sub-block plane (256 bytes) row r from src[0..32): element e in the low
 * nibble of src[e] (hi = 0) or in its high nibble (hi = 1). */
static inline void put_nibbles(uint8_t *plane, int r, const uint8_t *src, int hi) {
    const uint32_t lo = 0x0f0f0f0fu, hm = 0xf0f0f0f0u;
    for (int j = 0; j < 4; j++) {
        const uint32_t wa = load32(src + 8 * j), wb = load32(src + 8 * j + 4);
        store32(plane + (j * TAI_PANEL + r) * 4,
                hi ? ((wa >> 4) & lo) | (wb & hm) : (wa & lo) | (wb & lo) << 4);
    }
}

/* Bit plane (64 bytes) row r: element e's bit is bit `bit` of src[e]. */
static inline void put_bits(uint8_t *plane, int r, const uint8_t *src, int bit) {
    uint32_t out = 0;
    for (int j = 0; j < 4; j++)
        for (int h = 0; h < 2; h++)
            out |= ((load32(src + 8 * j + 4 * h) >> bit) & 0x01010101u) << (2 * j + h);
    store32(plane + r * 4, out);
}

/* Q4_0-style block codes (element j low nibble of qs[j], j + 16 high) into
 * a sub-block plane, as pack_panel does for Q4_0. */
static inline void put_q4_0_codes(uint8_t *plane, int r, const uint8_t *qs) {
    const uint32_t lo = 0x0f0f0f0fu, hi = 0xf0f0f0f0u;
    const uint32_t w0 = load32(qs), w1 = load32(qs + 4), w2 = load32(qs + 8), w3 = load32(qs + 12);
    store32(plane + (0 * TAI_PANEL + r) * 4, (w0 & lo) | (w1 & lo) << 4);
    store32(plane + (1 * TAI_PANEL + r) * 4, (w2 & lo) | (w3 & lo) << 4);
    store32(plane + (2 * TAI_PANEL + r) * 4, (w0 & hi) >> 4 | (w1 & hi));
    store32(plane + (3 * TAI_PANEL + r) * 4, (w2 & hi) >> 4 | (w3 & hi));
}

/* One row's unit from its GGUF blocks (k of them: a 64-element unit may
 * hold one). */
static void put_unit_row(tai_type t, const tai_unit_layout *L, const uint8_t *b, int k, int r,
                         uint8_t *u) {
    switch (t) {
    case TAI_TYPE_Q4_K:
    case TAI_TYPE_Q5_K: {
        const uint8_t *qs = b + (t == TAI_TYPE_Q4_K ? 16 : 48), *qh = b + 16;
        for (int s = 0; s < 8; s++) {
            put_nibbles(u + tai_unit_codes_at(L, s), r, qs + 32 * (s / 2), s & 1);
            if (t == TAI_TYPE_Q5_K) put_bits(u + tai_unit_high_at(L, s, 0), r, qh, s);
        }
        const uint8_t *k = b + 4; /* the 6-bit scales and minimums, as bytes */
        uint8_t *sc = u + L->scales_at;
        for (int j = 0; j < 4; j++) {
            sc[j * TAI_PANEL + r] = k[j] & 63;
            sc[(8 + j) * TAI_PANEL + r] = k[j + 4] & 63;
            sc[(4 + j) * TAI_PANEL + r] = (uint8_t)((k[j + 8] & 15) | (k[j] >> 6) << 4);
            sc[(12 + j) * TAI_PANEL + r] = (uint8_t)((k[j + 8] >> 4) | (k[j + 4] >> 6) << 4);
        }
        memcpy(u + L->d_at + 2 * r, b, 2);
        memcpy(u + L->m_at + 2 * r, b + 2, 2);
        return;
    }
    case TAI_TYPE_Q6_K: {
        const tai_block_q6_k *x = (const tai_block_q6_k *)(const void *)b;
        for (int s = 0; s < 8; s++) {
            const int h = s / 4, q = s % 4;
            put_nibbles(u + tai_unit_codes_at(L, s), r, x->ql + 64 * h + 32 * (q & 1), q >= 2);
            put_bits(u + tai_unit_high_at(L, s, 0), r, x->qh + 32 * h, 2 * q);
            put_bits(u + tai_unit_high_at(L, s, 1), r, x->qh + 32 * h, 2 * q + 1);
        }
        for (int i = 0; i < 16; i++) u[L->scales_at + i * TAI_PANEL + r] = (uint8_t)x->scales[i];
        memcpy(u + L->d_at + 2 * r, &x->d, 2);
        return;
    }
    case TAI_TYPE_Q8_K: {
        const tai_block_q8_k *x = (const tai_block_q8_k *)(const void *)b;
        for (int s = 0; s < 8; s++)
            for (int g = 0; g < 8; g++)
                store32(u + tai_unit_codes_at(L, s) + (g * TAI_PANEL + r) * 4,
                        load32((const uint8_t *)x->qs + 32 * s + 4 * g) ^ 0x80808080u);
        memcpy(u + L->d_at + 4 * r, &x->d, 4);
        return;
    }
    case TAI_TYPE_Q5_0:
    case TAI_TYPE_Q5_1:
    case TAI_TYPE_IQ4_NL: {
        const size_t bb = tai_type_block_bytes(t);
        for (int s = 0; s < k; s++) {
            const uint8_t *x = b + (size_t)s * bb;
            const int qoff = t == TAI_TYPE_Q5_1 ? 8 : t == TAI_TYPE_Q5_0 ? 6 : 2;
            put_q4_0_codes(u + tai_unit_codes_at(L, s), r, x + qoff);
            if (t != TAI_TYPE_IQ4_NL) {
                const uint32_t qh = load32(x + (t == TAI_TYPE_Q5_1 ? 4 : 2));
                uint8_t bits[32];
                for (int e = 0; e < 32; e++) bits[e] = (uint8_t)((qh >> e) & 1);
                put_bits(u + tai_unit_high_at(L, s, 0), r, bits, 0);
            }
            memcpy(u + L->d_at + 2 * (s * TAI_PANEL + r), x, 2);
            if (t == TAI_TYPE_Q5_1) memcpy(u + L->m_at + 2 * (s * TAI_PANEL + r), x + 2, 2);
        }
        return;
    }
    default: {
        tai_unit_row R;
        tai_unit_from_gguf(t, b, k, &R);
        tai_unit_put(t, &R, r, u);
        return;
    }
    }
}

/* The units of one panel: each row's blocks put in place. The missing
 * rows and the padding are zero. */
static void pack_units(tai_type t, const uint8_t *const *src, int nr, int64_t n, uint8_t *dst,
                       size_t pb) {
    const tai_unit_layout *L = tai_unit_layout_of(t);
    const size_t bb = tai_type_block_bytes(t);
    const int64_t nb = n / tai_type_block_elems(t), per = L->elems / tai_type_block_elems(t);
    memset(dst, 0, pb);
    for (int64_t u = 0; u * per < nb; u++) {
        const int k = nb - u * per < per ? (int)(nb - u * per) : (int)per;
        uint8_t *unit = dst + (size_t)u * L->bytes;
        for (int r = 0; r < nr; r++) put_unit_row(t, L, src[r] + (size_t)(u * per) * bb, k, r, unit);
    }
}

/*
 * One panel. Written a 32-bit word at a time, CHUNK blocks of a row at a
 * time, so that the loop body is a handful of integer
 * operations per 4 bytes and packing runs at memory speed (it is on the
 * load path of every streamed GGUF layer): the byte-by-byte transcription of
 * the layout, kept in the tests as the oracle, ran at a tenth of that.
 *
 * Q4 nibbles: with w0..w3 the block's 16 code bytes as four little-endian
 * words (byte k holds element k low, element k + 16 high), the packed word
 * j (bytes t = 0..3: element 8j + t low, 8j + 4 + t high) is
 *   j = 0: low nibbles of w0 | low nibbles of w1 << 4
 *   j = 1: low nibbles of w2 | low nibbles of w3 << 4
 *   j = 2: high nibbles of w0 >> 4 | high nibbles of w1
 *   j = 3: high nibbles of w2 >> 4 | high nibbles of w3
 * Q8_0 codes are re-biased by 128, which is a flip of each byte's top bit.
 */
static void pack_panel(tai_type t, const void *w, int64_t rows, int64_t n, uint8_t *dst,
                       int64_t p) {
    const size_t row_bytes = tai_type_row_bytes(t, n);
    const size_t pb = tai_pack_panel_bytes(t, n);
    const int64_t nb = n / TAI_QK;
    const int64_t r0 = p * TAI_PANEL;
    const int nr = rows - r0 < TAI_PANEL ? (int)(rows - r0) : TAI_PANEL;
    const uint8_t *src[TAI_PANEL];
    for (int r = 0; r < nr; r++) src[r] = (const uint8_t *)w + (size_t)(r0 + r) * row_bytes;
#if defined(__x86_64__)
    /* whole panels of block types: 16 rows at a time with AVX-512 gathers */
    if (nr == TAI_PANEL && (t == TAI_TYPE_Q8_0 || t == TAI_TYPE_Q4_0 || t == TAI_TYPE_Q4_1) &&
        row_bytes < ((size_t)1 << 31) / 16 && tai_isa_supported(TAI_ISA_AVX512)) {
        const size_t used = (size_t)(nb / 2) * tai_qpair_bytes(t);
        memset(dst + used, 0, pb - used); /* an odd count's zero block, the padding */
        tai_k_pack_panel_q_avx512(t, src[0], row_bytes, nb, dst);
        return;
    }
#endif
    if (nr < TAI_PANEL || t == TAI_TYPE_Q8_0 || t == TAI_TYPE_Q4_0 || t == TAI_TYPE_Q4_1) {
        /* missing rows, the zero block of an odd count and the padding */
        if (nr < TAI_PANEL) {
            memset(dst, 0, pb);
        } else {
            const size_t used = (size_t)(nb / 2) * tai_qpair_bytes(t);
            memset(dst + used, 0, pb - used);
        }
    }
    switch (t) {
    case TAI_TYPE_F32: {
        float *o = (float *)dst;
        for (int64_t k = 0; k < n; k++)
            for (int r = 0; r < nr; r++) memcpy(&o[k * TAI_PANEL + r], src[r] + 4 * k, 4);
        if (nr == TAI_PANEL) memset(dst + (size_t)n * TAI_PANEL * 4, 0, pb - (size_t)n * TAI_PANEL * 4);
        break;
    }
    case TAI_TYPE_F16:
    case TAI_TYPE_BF16: {
        uint16_t *o = (uint16_t *)dst;
        for (int64_t k = 0; k < n; k++)
            for (int r = 0; r < nr; r++) memcpy(&o[k * TAI_PANEL + r], src[r] + 2 * k, 2);
        if (nr == TAI_PANEL) memset(dst + (size_t)n * TAI_PANEL * 2, 0, pb - (size_t)n * TAI_PANEL * 2);
        break;
    }
    case TAI_TYPE_Q8_0:
        for (int64_t i0 = 0; i0 < nb; i0 += CHUNK) {
            const int64_t i1 = i0 + CHUNK < nb ? i0 + CHUNK : nb;
            for (int r = 0; r < nr; r++) {
                for (int64_t i = i0; i < i1; i++) {
                    uint8_t *q = dst + tai_qcodes_at(t, i);
                    const uint8_t *b = src[r] + (size_t)i * sizeof(tai_block_q8_0);
                    memcpy(dst + tai_qscales_at(t, i) + 2 * r, b, 2);
                    for (int g = 0; g < 8; g++)
                        store32(q + (g * TAI_PANEL + r) * 4, load32(b + 2 + 4 * g) ^ 0x80808080u);
                }
            }
        }
        break;
    case TAI_TYPE_Q4_0:
    case TAI_TYPE_Q4_1: {
        const size_t bb = tai_type_block_bytes(t);
        const size_t qoff = t == TAI_TYPE_Q4_1 ? 4 : 2;
        const uint32_t lo = 0x0f0f0f0fu, hi = 0xf0f0f0f0u;
        for (int64_t i0 = 0; i0 < nb; i0 += CHUNK) {
            const int64_t i1 = i0 + CHUNK < nb ? i0 + CHUNK : nb;
            for (int r = 0; r < nr; r++) {
                for (int64_t i = i0; i < i1; i++) {
                    uint8_t *q = dst + tai_qcodes_at(t, i);
                    const uint8_t *b = src[r] + (size_t)i * bb;
                    memcpy(dst + tai_qscales_at(t, i) + 2 * r, b, 2);
                    if (t == TAI_TYPE_Q4_1) memcpy(dst + tai_qmins_at(t, i) + 2 * r, b + 2, 2);
                    const uint8_t *qs = b + qoff;
                    const uint32_t w0 = load32(qs), w1 = load32(qs + 4);
                    const uint32_t w2 = load32(qs + 8), w3 = load32(qs + 12);
                    store32(q + (0 * TAI_PANEL + r) * 4, (w0 & lo) | (w1 & lo) << 4);
                    store32(q + (1 * TAI_PANEL + r) * 4, (w2 & lo) | (w3 & lo) << 4);
                    store32(q + (2 * TAI_PANEL + r) * 4, (w0 & hi) >> 4 | (w1 & hi));
                    store32(q + (3 * TAI_PANEL + r) * 4, (w2 & hi) >> 4 | (w3 & hi));
                }
            }
        }
        break;
    }
    default:
        if (tai_type_is_unit(t)) pack_units(t, src, nr, n, dst, pb);
        break;
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

void tai_pack_sparse_panel(tai_type t, const void *w, int64_t nrows, int64_t n, int64_t keep,
                           const uint16_t *idx, void *dst, void *tmp) {
    const size_t pb = tai_sparse_panel_bytes(t, n, keep);
    if (pb == 0 || nrows < 1 || nrows > TAI_PANEL || !w || !idx || !dst || !tmp) return;
    const size_t row = tai_type_row_bytes(t, n), krow = tai_type_row_bytes(t, keep * TAI_QK);
    const size_t bb = krow / (size_t)keep; /* bytes of 32 elements of a row */
    for (int64_t r = 0; r < nrows; r++)
        for (int64_t k = 0; k < keep; k++)
            memcpy((uint8_t *)tmp + (size_t)r * krow + (size_t)k * bb,
                   (const uint8_t *)w + (size_t)r * row + (size_t)idx[k] * bb, bb);
    const size_t head = tai_sparse_index_bytes(keep);
    memset(dst, 0, head);
    const uint16_t k16 = (uint16_t)keep;
    memcpy(dst, &k16, 2);
    memcpy((uint8_t *)dst + 2, idx, (size_t)keep * 2);
    tai_pack_panels(t, tmp, nrows, keep * TAI_QK, (uint8_t *)dst + head, 0, 1);
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
    case TAI_TYPE_BF16:
        for (int64_t k = 0; k < n; k++) {
            uint16_t h;
            memcpy(&h, panel + (k * TAI_PANEL + rr) * 2, 2);
            out[k] = t == TAI_TYPE_F16 ? tai_fp16_to_fp32(h) : tai_bf16_to_fp32(h);
        }
        break;
    case TAI_TYPE_Q8_0:
    case TAI_TYPE_Q4_0:
    case TAI_TYPE_Q4_1:
        for (int64_t i = 0; i < nb; i++) {
            union {
                tai_block_q8_0 q8;
                tai_block_q4_0 q40;
                tai_block_q4_1 q41;
            } b;
            tai_unpack_block(t, panel, rr, i, &b);
            tai_dequantize_row(t, &b, out + i * TAI_QK, TAI_QK);
        }
        break;
    default:
        if (tai_type_is_unit(t)) {
            /* each unit's GGUF blocks back, then dequantized as they are */
            const tai_unit_layout *L = tai_unit_layout_of(t);
            const int64_t be = tai_type_block_elems(t), per = L->elems / be, nbk = n / be;
            uint8_t buf[2 * sizeof(tai_block_q8_k)];
            for (int64_t u = 0; u * per < nbk; u++) {
                const int k = nbk - u * per < per ? (int)(nbk - u * per) : (int)per;
                tai_unit_row R;
                tai_unit_get(t, panel + (size_t)u * L->bytes, rr, &R);
                tai_unit_to_gguf(t, &R, k, buf);
                tai_dequantize_row(t, buf, out + u * L->elems, k * be);
            }
        }
        break;
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
    tai_prep_groups_with(p, x, n, ncols, dst, g0, g1, tai_quantize_row_q8a, tai_quantize_row_q8k);
}

void tai_prep_groups_with(tai_prep p, const float *x, int64_t n, int64_t ncols, void *dst,
                          int64_t g0, int64_t g1, tai_quantize_q8a_fn quantize,
                          tai_quantize_q8k_fn quantize_k) {
    if (!quantize_k) quantize_k = tai_quantize_row_q8k;
    const size_t col = tai_prep_col_bytes(p, n);
    if (col == 0 || ncols <= 0) return;
    for (int64_t g = g0; g < g1 && g * TAI_NR < ncols; g++) {
        const int64_t c0 = g * TAI_NR;
        const int64_t w = ncols - c0 < TAI_NR ? ncols - c0 : TAI_NR;
        char *gd = (char *)dst + (size_t)c0 * col;
        if (p == TAI_PREP_Q8K) { /* units of 256 interleaved as the q8a blocks */
            tai_block_q8_k *o = (tai_block_q8_k *)gd;
            const int64_t nb = n / TAI_QK_K;
            for (int64_t j = 0; j < w; j++)
                for (int64_t b = 0; b < nb; b++)
                    quantize_k(x + (c0 + j) * n + b * TAI_QK_K, &o[b * w + j], TAI_QK_K);
            continue;
        }
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
