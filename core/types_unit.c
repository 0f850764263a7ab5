/*
 * core/types_unit.c: the block types beyond Q4_0/Q4_1/Q8_0 (layer: core):
 * Q5_0, Q5_1, IQ4_NL and the K-quants. Their GGUF blocks decoded into a
 * plain per-row form (codes and integer scales) and encoded back, the
 * unit-packed layout (core/types.h "Unit-packed weights") written and
 * read one row at a time, their dequantization and the reference
 * quantizers TinyAI writes files with. Not hot paths: the kernels read the
 * packed units directly.
 */
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/types.h"

static_assert(sizeof(tai_block_q5_0) == 22, "Q5_0 block is 22 bytes");
static_assert(sizeof(tai_block_q5_1) == 24, "Q5_1 block is 24 bytes");
static_assert(sizeof(tai_block_iq4_nl) == 18, "IQ4_NL block is 18 bytes");
static_assert(sizeof(tai_block_q2_k) == 84, "Q2_K block is 84 bytes");
static_assert(sizeof(tai_block_q3_k) == 110, "Q3_K block is 110 bytes");
static_assert(sizeof(tai_block_q4_k) == 144, "Q4_K block is 144 bytes");
static_assert(sizeof(tai_block_q5_k) == 176, "Q5_K block is 176 bytes");
static_assert(sizeof(tai_block_q6_k) == 210, "Q6_K block is 210 bytes");
static_assert(sizeof(tai_block_q8_k) == 292, "Q8_K block is 292 bytes");

const int8_t tai_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                     1,    13,   25,  38,  53,  69,  89,  113};

/* ---- Layouts --------------------------------------------------------------- */

#define P TAI_PANEL
/* {elems, subs, codes, high, scales, bias, has_min, code_bytes, sub_at,
 *  sub_bytes, scales_at, d_at, m_at, bytes} */
static const tai_unit_layout L_Q5_0 = {64, 2, TAI_UNIT_NIB, 1, TAI_UNIT_SC_NONE, 16, 0,
                                       256, 64, 320, 0, 0, 0, 704};
static const tai_unit_layout L_Q5_1 = {64, 2, TAI_UNIT_NIB, 1, TAI_UNIT_SC_NONE, 0, 1,
                                       256, 128, 320, 0, 0, 64, 768};
static const tai_unit_layout L_IQ4_NL = {64, 2, TAI_UNIT_NIB, 0, TAI_UNIT_SC_NONE, 0, 0,
                                         256, 64, 256, 0, 0, 0, 576};
static const tai_unit_layout L_Q2_K = {256, 8, TAI_UNIT_TWO, 0, TAI_UNIT_SC_U8, 0, 1,
                                       128, 320, 128, 0, 256, 288, 1344};
static const tai_unit_layout L_Q3_K = {256, 8, TAI_UNIT_TWO, 1, TAI_UNIT_SC_I8, 4, 0,
                                       128, 320, 192, 0, 256, 0, 1856};
static const tai_unit_layout L_Q4_K = {256, 8, TAI_UNIT_NIB, 0, TAI_UNIT_SC_K4, 0, 1,
                                       256, 320, 256, 0, 256, 288, 2368};
static const tai_unit_layout L_Q5_K = {256, 8, TAI_UNIT_NIB, 1, TAI_UNIT_SC_K4, 0, 1,
                                       256, 320, 320, 0, 256, 288, 2880};
static const tai_unit_layout L_Q6_K = {256, 8, TAI_UNIT_NIB, 2, TAI_UNIT_SC_I8, 32, 0,
                                       256, 320, 384, 0, 256, 0, 3392};
static const tai_unit_layout L_Q8_K = {256, 8, TAI_UNIT_BYTE, 0, TAI_UNIT_SC_NONE, 128, 0,
                                       512, 64, 512, 0, 0, 0, 4160};
#undef P

const tai_unit_layout *tai_unit_layout_of(tai_type t) {
    switch (t) {
    case TAI_TYPE_Q5_0: return &L_Q5_0;
    case TAI_TYPE_Q5_1: return &L_Q5_1;
    case TAI_TYPE_IQ4_NL: return &L_IQ4_NL;
    case TAI_TYPE_Q2_K: return &L_Q2_K;
    case TAI_TYPE_Q3_K: return &L_Q3_K;
    case TAI_TYPE_Q4_K: return &L_Q4_K;
    case TAI_TYPE_Q5_K: return &L_Q5_K;
    case TAI_TYPE_Q6_K: return &L_Q6_K;
    case TAI_TYPE_Q8_K: return &L_Q8_K;
    default: return NULL;
    }
}

int tai_type_is_unit(tai_type t) { return tai_unit_layout_of(t) != NULL; }

/* ---- GGUF blocks <-> plain rows ---------------------------------------------- */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static void wr16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* Q4_K/Q5_K: sub-block j's 6-bit scale and minimum from the 12 bytes. */
static void k4_scale(const uint8_t *s, int j, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 15) | (s[j - 4] >> 6) << 4);
        *m = (uint8_t)((s[j + 4] >> 4) | (s[j] >> 6) << 4);
    }
}

/* The 12 bytes from the eight 6-bit scales and minimums (every bit of the
 * 12 bytes is one of theirs: the exact inverse of k4_scale). */
static void k4_encode(const uint8_t *ls, const uint8_t *lm, uint8_t *s) {
    memset(s, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            s[j] |= ls[j] & 63;
            s[j + 4] |= lm[j] & 63;
        } else {
            s[j + 4] = (uint8_t)((ls[j] & 15) | (lm[j] & 15) << 4);
            s[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            s[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

/* Q3_K: scale i's 6 bits from the 12 bytes, and the 12 bytes from them. */
static int q3_scale(const uint8_t *s, int i) {
    const int lo = i < 8 ? s[i] & 15 : s[i - 8] >> 4;
    const int hi = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
    return lo | hi << 4;
}
static void q3_scales_encode(const int v[16], uint8_t *s) {
    memset(s, 0, 12);
    for (int i = 0; i < 16; i++) {
        if (i < 8) s[i] |= (uint8_t)(v[i] & 15);
        else s[i - 8] |= (uint8_t)((v[i] & 15) << 4);
        s[8 + i % 4] |= (uint8_t)(((v[i] >> 4) & 3) << (2 * (i / 4)));
    }
}

static void q5_block_from(const uint8_t *qh4, const uint8_t *qs, uint8_t *code) {
    const uint32_t qh = (uint32_t)qh4[0] | (uint32_t)qh4[1] << 8 | (uint32_t)qh4[2] << 16 |
                        (uint32_t)qh4[3] << 24;
    for (int j = 0; j < 16; j++) {
        code[j] = (uint8_t)((qs[j] & 15) | ((qh >> j) & 1) << 4);
        code[j + 16] = (uint8_t)((qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4);
    }
}
static void q5_block_to(const uint8_t *code, uint8_t *qh4, uint8_t *qs) {
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((code[j] & 15) | (code[j + 16] & 15) << 4);
        qh |= (uint32_t)((code[j] >> 4) & 1) << j;
        qh |= (uint32_t)((code[j + 16] >> 4) & 1) << (j + 16);
    }
    for (int k = 0; k < 4; k++) qh4[k] = (uint8_t)(qh >> (8 * k));
}

void tai_unit_from_gguf(tai_type t, const void *blocks, int nblocks, tai_unit_row *o) {
    const uint8_t *b = blocks;
    memset(o, 0, sizeof *o);
    for (int i = 0; i < 16; i++) o->sc[i] = 1;
    switch (t) {
    case TAI_TYPE_Q5_0:
    case TAI_TYPE_Q5_1:
    case TAI_TYPE_IQ4_NL: {
        const size_t bb = tai_type_block_bytes(t);
        for (int k = 0; k < nblocks && k < 2; k++) {
            const uint8_t *x = b + (size_t)k * bb;
            uint8_t *code = o->code + 32 * k;
            o->d[k] = rd16(x);
            if (t == TAI_TYPE_IQ4_NL) {
                for (int j = 0; j < 16; j++) {
                    code[j] = x[2 + j] & 15;
                    code[j + 16] = x[2 + j] >> 4;
                }
            } else if (t == TAI_TYPE_Q5_0) {
                q5_block_from(x + 2, x + 6, code);
            } else {
                o->m[k] = rd16(x + 2);
                q5_block_from(x + 4, x + 8, code);
            }
        }
        break;
    }
    case TAI_TYPE_Q2_K: {
        const tai_block_q2_k *x = blocks;
        for (int i = 0; i < 16; i++) {
            o->sc[i] = (int8_t)(x->scales[i] & 15);
            o->mn[i] = x->scales[i] >> 4;
        }
        for (int e = 0; e < TAI_QK_K; e++) {
            const int h = e / 128, s = (e / 32) % 4, l = e % 32;
            o->code[e] = (x->qs[32 * h + l] >> (2 * s)) & 3;
        }
        o->d[0] = x->d;
        o->m[0] = x->dmin;
        break;
    }
    case TAI_TYPE_Q3_K: {
        const tai_block_q3_k *x = blocks;
        memcpy(o->raw12, x->scales, 12);
        for (int i = 0; i < 16; i++) o->sc[i] = (int8_t)(q3_scale(x->scales, i) - 32);
        for (int e = 0; e < TAI_QK_K; e++) {
            const int h = e / 128, s = (e / 32) % 4, l = e % 32;
            const int lo = (x->qs[32 * h + l] >> (2 * s)) & 3;
            const int hb = (x->hmask[l] >> (e / 32)) & 1;
            o->code[e] = (uint8_t)(lo | hb << 2);
        }
        o->d[0] = x->d;
        break;
    }
    case TAI_TYPE_Q4_K:
    case TAI_TYPE_Q5_K: {
        const uint8_t *sc = b + 4, *qs = b + (t == TAI_TYPE_Q4_K ? 16 : 48);
        const uint8_t *qh = b + 16;
        memcpy(o->raw12, sc, 12);
        for (int j = 0; j < 8; j++) {
            uint8_t s, m;
            k4_scale(sc, j, &s, &m);
            o->sc[2 * j] = o->sc[2 * j + 1] = (int8_t)s;
            o->mn[2 * j] = o->mn[2 * j + 1] = m;
        }
        for (int e = 0; e < TAI_QK_K; e++) {
            const int g = e / 64, l = e % 32, hi = (e / 32) & 1;
            int q = hi ? qs[32 * g + l] >> 4 : qs[32 * g + l] & 15;
            if (t == TAI_TYPE_Q5_K) q |= ((qh[l] >> (e / 32)) & 1) << 4;
            o->code[e] = (uint8_t)q;
        }
        o->d[0] = rd16(b);
        o->m[0] = rd16(b + 2);
        break;
    }
    case TAI_TYPE_Q6_K: {
        const tai_block_q6_k *x = blocks;
        for (int i = 0; i < 16; i++) o->sc[i] = x->scales[i];
        for (int e = 0; e < TAI_QK_K; e++) {
            const int h = e / 128, s = (e / 32) % 4, l = e % 32;
            const uint8_t lb = x->ql[64 * h + l + 32 * (s & 1)];
            const int lo = s < 2 ? lb & 15 : lb >> 4;
            const int hb = (x->qh[32 * h + l] >> (2 * s)) & 3;
            o->code[e] = (uint8_t)(lo | hb << 4);
        }
        o->d[0] = x->d;
        break;
    }
    case TAI_TYPE_Q8_K: {
        const tai_block_q8_k *x = blocks;
        o->d32 = x->d;
        for (int e = 0; e < TAI_QK_K; e++) o->code[e] = (uint8_t)(x->qs[e] + 128);
        break;
    }
    default: break;
    }
}

void tai_unit_to_gguf(tai_type t, const tai_unit_row *in, int nblocks, void *blocks) {
    uint8_t *b = blocks;
    switch (t) {
    case TAI_TYPE_Q5_0:
    case TAI_TYPE_Q5_1:
    case TAI_TYPE_IQ4_NL: {
        const size_t bb = tai_type_block_bytes(t);
        for (int k = 0; k < nblocks && k < 2; k++) {
            uint8_t *x = b + (size_t)k * bb;
            const uint8_t *code = in->code + 32 * k;
            wr16(x, in->d[k]);
            if (t == TAI_TYPE_IQ4_NL) {
                for (int j = 0; j < 16; j++)
                    x[2 + j] = (uint8_t)((code[j] & 15) | (code[j + 16] & 15) << 4);
            } else if (t == TAI_TYPE_Q5_0) {
                q5_block_to(code, x + 2, x + 6);
            } else {
                wr16(x + 2, in->m[k]);
                q5_block_to(code, x + 4, x + 8);
            }
        }
        break;
    }
    case TAI_TYPE_Q2_K: {
        tai_block_q2_k x;
        memset(&x, 0, sizeof x);
        for (int i = 0; i < 16; i++) x.scales[i] = (uint8_t)((in->sc[i] & 15) | (in->mn[i] & 15) << 4);
        for (int e = 0; e < TAI_QK_K; e++) {
            const int h = e / 128, s = (e / 32) % 4, l = e % 32;
            x.qs[32 * h + l] |= (uint8_t)((in->code[e] & 3) << (2 * s));
        }
        x.d = in->d[0];
        x.dmin = in->m[0];
        memcpy(blocks, &x, sizeof x);
        break;
    }
    case TAI_TYPE_Q3_K: {
        tai_block_q3_k x;
        memset(&x, 0, sizeof x);
        int v[16];
        for (int i = 0; i < 16; i++) v[i] = in->sc[i] + 32;
        q3_scales_encode(v, x.scales);
        for (int e = 0; e < TAI_QK_K; e++) {
            const int h = e / 128, s = (e / 32) % 4, l = e % 32;
            x.qs[32 * h + l] |= (uint8_t)((in->code[e] & 3) << (2 * s));
            x.hmask[l] |= (uint8_t)(((in->code[e] >> 2) & 1) << (e / 32));
        }
        x.d = in->d[0];
        memcpy(blocks, &x, sizeof x);
        break;
    }
    case TAI_TYPE_Q4_K:
    case TAI_TYPE_Q5_K: {
        const size_t bb = tai_type_block_bytes(t);
        memset(b, 0, bb);
        wr16(b, in->d[0]);
        wr16(b + 2, in->m[0]);
        memcpy(b + 4, in->raw12, 12);
        uint8_t *qs = b + (t == TAI_TYPE_Q4_K ? 16 : 48), *qh = b + 16;
        for (int e = 0; e < TAI_QK_K; e++) {
            const int g = e / 64, l = e % 32, hi = (e / 32) & 1;
            qs[32 * g + l] |= (uint8_t)((in->code[e] & 15) << (hi ? 4 : 0));
            if (t == TAI_TYPE_Q5_K) qh[l] |= (uint8_t)(((in->code[e] >> 4) & 1) << (e / 32));
        }
        break;
    }
    case TAI_TYPE_Q6_K: {
        tai_block_q6_k x;
        memset(&x, 0, sizeof x);
        for (int i = 0; i < 16; i++) x.scales[i] = in->sc[i];
        for (int e = 0; e < TAI_QK_K; e++) {
            const int h = e / 128, s = (e / 32) % 4, l = e % 32;
            x.ql[64 * h + l + 32 * (s & 1)] |= (uint8_t)((in->code[e] & 15) << (s < 2 ? 0 : 4));
            x.qh[32 * h + l] |= (uint8_t)(((in->code[e] >> 4) & 3) << (2 * s));
        }
        x.d = in->d[0];
        memcpy(blocks, &x, sizeof x);
        break;
    }
    case TAI_TYPE_Q8_K: {
        tai_block_q8_k x;
        memset(&x, 0, sizeof x);
        x.d = in->d32;
        for (int e = 0; e < TAI_QK_K; e++) {
            x.qs[e] = (int8_t)(in->code[e] - 128);
            x.bsums[e / 16] = (int16_t)(x.bsums[e / 16] + x.qs[e]);
        }
        memcpy(blocks, &x, sizeof x);
        break;
    }
    default: break;
    }
}

/* ---- Plain rows <-> packed units ------------------------------------------ */

/* Where element e (0..31) of a sub-block lives in its planes: j, h, t as in
 * core/types.h (element 8j + 4h + t). */
#define EJ(e) ((e) / 8)
#define EH(e) (((e) / 4) & 1)
#define ET(e) ((e) % 4)

void tai_unit_put(tai_type t, const tai_unit_row *in, int rr, uint8_t *u) {
    const tai_unit_layout *L = tai_unit_layout_of(t);
    if (!L) return;
    for (int s = 0; s < L->subs; s++) {
        uint8_t *c = u + tai_unit_codes_at(L, s);
        const uint8_t *code = in->code + 32 * s;
        for (int e = 0; e < 32; e++) {
            const int j = EJ(e), h = EH(e), tt = ET(e);
            const int q = code[e];
            switch (L->codes) {
            case TAI_UNIT_NIB: {
                uint8_t *p = c + (j * TAI_PANEL + rr) * 4 + tt;
                *p = (uint8_t)(h ? (*p & 0x0f) | (q & 15) << 4 : (*p & 0xf0) | (q & 15));
                for (int i = 0; i < L->high; i++) {
                    uint8_t *hp = u + tai_unit_high_at(L, s, i) + rr * 4 + tt;
                    const int bit = 2 * j + h;
                    *hp = (uint8_t)((*hp & ~(1u << bit)) | ((q >> (4 + i)) & 1) << bit);
                }
                break;
            }
            case TAI_UNIT_TWO: {
                uint8_t *p = c + h * 64 + rr * 4 + tt;
                *p = (uint8_t)((*p & ~(3u << (2 * j))) | (q & 3) << (2 * j));
                if (L->high) {
                    uint8_t *hp = u + tai_unit_high_at(L, s, 0) + rr * 4 + tt;
                    const int bit = 2 * j + h;
                    *hp = (uint8_t)((*hp & ~(1u << bit)) | ((q >> 2) & 1) << bit);
                }
                break;
            }
            case TAI_UNIT_BYTE: c[((e / 4) * TAI_PANEL + rr) * 4 + tt] = (uint8_t)q; break;
            }
        }
    }
    uint8_t *sc = u + L->scales_at;
    switch (L->scales) {
    case TAI_UNIT_SC_K4:
        for (int j = 0; j < 8; j++) {
            uint8_t a, m;
            k4_scale(in->raw12, j, &a, &m);
            sc[j * TAI_PANEL + rr] = a;
            sc[(8 + j) * TAI_PANEL + rr] = m;
        }
        break;
    case TAI_UNIT_SC_U8:
        for (int i = 0; i < 16; i++) sc[i * TAI_PANEL + rr] = (uint8_t)((in->sc[i] & 15) | in->mn[i] << 4);
        break;
    case TAI_UNIT_SC_I8:
        for (int i = 0; i < 16; i++) sc[i * TAI_PANEL + rr] = (uint8_t)in->sc[i];
        break;
    default: break;
    }
    if (t == TAI_TYPE_Q8_K) {
        memcpy(u + L->d_at + 4 * rr, &in->d32, 4);
    } else if (L->elems == 64) {
        for (int k = 0; k < 2; k++) {
            wr16(u + L->d_at + 2 * (k * TAI_PANEL + rr), in->d[k]);
            if (L->has_min) wr16(u + L->m_at + 2 * (k * TAI_PANEL + rr), in->m[k]);
        }
    } else {
        wr16(u + L->d_at + 2 * rr, in->d[0]);
        if (L->has_min) wr16(u + L->m_at + 2 * rr, in->m[0]);
    }
}

void tai_unit_get(tai_type t, const uint8_t *u, int rr, tai_unit_row *o) {
    const tai_unit_layout *L = tai_unit_layout_of(t);
    memset(o, 0, sizeof *o);
    for (int i = 0; i < 16; i++) o->sc[i] = 1;
    if (!L) return;
    for (int s = 0; s < L->subs; s++) {
        const uint8_t *c = u + tai_unit_codes_at(L, s);
        uint8_t *code = o->code + 32 * s;
        for (int e = 0; e < 32; e++) {
            const int j = EJ(e), h = EH(e), tt = ET(e);
            int q = 0;
            switch (L->codes) {
            case TAI_UNIT_NIB: {
                const uint8_t v = c[(j * TAI_PANEL + rr) * 4 + tt];
                q = h ? v >> 4 : v & 15;
                for (int i = 0; i < L->high; i++)
                    q |= ((u[tai_unit_high_at(L, s, i) + rr * 4 + tt] >> (2 * j + h)) & 1)
                         << (4 + i);
                break;
            }
            case TAI_UNIT_TWO:
                q = (c[h * 64 + rr * 4 + tt] >> (2 * j)) & 3;
                if (L->high)
                    q |= ((u[tai_unit_high_at(L, s, 0) + rr * 4 + tt] >> (2 * j + h)) & 1) << 2;
                break;
            case TAI_UNIT_BYTE: q = c[((e / 4) * TAI_PANEL + rr) * 4 + tt]; break;
            }
            code[e] = (uint8_t)q;
        }
    }
    const uint8_t *sc = u + L->scales_at;
    switch (L->scales) {
    case TAI_UNIT_SC_K4: {
        uint8_t ls[8], lm[8];
        for (int j = 0; j < 8; j++) {
            ls[j] = sc[j * TAI_PANEL + rr] & 63;
            lm[j] = sc[(8 + j) * TAI_PANEL + rr] & 63;
            o->sc[2 * j] = o->sc[2 * j + 1] = (int8_t)ls[j];
            o->mn[2 * j] = o->mn[2 * j + 1] = lm[j];
        }
        k4_encode(ls, lm, o->raw12);
        break;
    }
    case TAI_UNIT_SC_U8:
        for (int i = 0; i < 16; i++) {
            o->sc[i] = (int8_t)(sc[i * TAI_PANEL + rr] & 15);
            o->mn[i] = sc[i * TAI_PANEL + rr] >> 4;
        }
        break;
    case TAI_UNIT_SC_I8:
        for (int i = 0; i < 16; i++) o->sc[i] = (int8_t)sc[i * TAI_PANEL + rr];
        break;
    default: break;
    }
    if (t == TAI_TYPE_Q8_K) {
        memcpy(&o->d32, u + L->d_at + 4 * rr, 4);
    } else if (L->elems == 64) {
        for (int k = 0; k < 2; k++) {
            o->d[k] = rd16(u + L->d_at + 2 * (k * TAI_PANEL + rr));
            if (L->has_min) o->m[k] = rd16(u + L->m_at + 2 * (k * TAI_PANEL + rr));
        }
    } else {
        o->d[0] = rd16(u + L->d_at + 2 * rr);
        if (L->has_min) o->m[0] = rd16(u + L->m_at + 2 * rr);
    }
}

/* ---- Dequantization ----------------------------------------------------------- */

/* Element e of a plain row as a float, exactly as ggml computes it. */
static void unit_dequant(tai_type t, const tai_unit_row *r, float *y, int nel) {
    const float d = tai_fp16_to_fp32(r->d[0]), dm = tai_fp16_to_fp32(r->m[0]);
    for (int e = 0; e < nel; e++) {
        const int q = r->code[e];
        switch (t) {
        case TAI_TYPE_Q5_0: y[e] = (float)(q - 16) * tai_fp16_to_fp32(r->d[e / 32]); break;
        case TAI_TYPE_Q5_1:
            y[e] = (float)q * tai_fp16_to_fp32(r->d[e / 32]) + tai_fp16_to_fp32(r->m[e / 32]);
            break;
        case TAI_TYPE_IQ4_NL: y[e] = tai_fp16_to_fp32(r->d[e / 32]) * (float)tai_iq4nl_values[q]; break;
        case TAI_TYPE_Q2_K:
            y[e] = d * (float)r->sc[e / 16] * (float)q - dm * (float)r->mn[e / 16];
            break;
        case TAI_TYPE_Q3_K: y[e] = d * (float)r->sc[e / 16] * (float)(q - 4); break;
        case TAI_TYPE_Q4_K:
        case TAI_TYPE_Q5_K:
            y[e] = d * (float)r->sc[e / 16] * (float)q - dm * (float)r->mn[e / 16];
            break;
        case TAI_TYPE_Q6_K: y[e] = d * (float)r->sc[e / 16] * (float)(q - 32); break;
        case TAI_TYPE_Q8_K: y[e] = r->d32 * (float)(q - 128); break;
        default: y[e] = 0.0f; break;
        }
    }
}

void tai_unit_dequantize_row(tai_type t, const void *src, float *dst, int64_t n);
void tai_unit_dequantize_row(tai_type t, const void *src, float *dst, int64_t n) {
    const int64_t be = tai_type_block_elems(t);
    const size_t bb = tai_type_block_bytes(t);
    if (be == 0 || n % be != 0) return;
    tai_unit_row r;
    for (int64_t i = 0; i < n / be; i++) {
        tai_unit_from_gguf(t, (const uint8_t *)src + (size_t)i * bb, 1, &r);
        unit_dequant(t, &r, dst + i * be, (int)be);
    }
}

/* ---- Reference quantizers ------------------------------------------------------ */

static int nearest_int(float v) { return (int)lrintf(v); }
static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

static void quantize_q5(tai_type t, const float *x, uint8_t *y) {
    /* ggml's reference: Q5_0 d = max / -16, q = min(31, trunc(x / d + 16.5));
     * Q5_1 d = (max - min) / 31, q = trunc((x - min) / d + 0.5) */
    uint8_t code[32];
    if (t == TAI_TYPE_Q5_0) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; j++)
            if (amax < fabsf(x[j])) amax = fabsf(x[j]), max = x[j];
        const float d = max / -16.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int j = 0; j < 32; j++) {
            const float v = x[j] * id + 16.5f;
            code[j] = (uint8_t)(!(v > 0.0f) ? 0 : v >= 31.0f ? 31 : (int)v);
        }
        wr16(y, tai_fp32_to_fp16(d));
        q5_block_to(code, y + 2, y + 6);
    } else {
        float min = INFINITY, max = -INFINITY;
        for (int j = 0; j < 32; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 31.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int j = 0; j < 32; j++) {
            const float v = (x[j] - min) * id + 0.5f;
            code[j] = (uint8_t)(!(v > 0.0f) ? 0 : v >= 31.0f ? 31 : (int)v);
        }
        wr16(y, tai_fp32_to_fp16(d));
        wr16(y + 2, tai_fp32_to_fp16(min));
        q5_block_to(code, y + 4, y + 8);
    }
}

/* IQ4_NL: the scale that maps the element of largest magnitude onto the
 * table's end of its sign, then the best of a few scales around it by
 * squared error, each element the nearest table value. */
static int iq4_nearest(float v) {
    int best = 0;
    float be = fabsf(v - tai_iq4nl_values[0]);
    for (int k = 1; k < 16; k++) {
        const float e = fabsf(v - tai_iq4nl_values[k]);
        if (e < be) be = e, best = k;
    }
    return best;
}
static void quantize_iq4_nl(const float *x, tai_block_iq4_nl *y) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++)
        if (amax < fabsf(x[j])) amax = fabsf(x[j]), max = x[j];
    memset(y, 0, sizeof *y);
    if (amax == 0.0f) return;
    float best_err = INFINITY, best_d = 0.0f;
    for (int s = -8; s <= 8; s++) {
        const float d = max / (max < 0 ? -127.0f : 113.0f) * (1.0f + 0.02f * (float)s);
        const float dh = tai_fp16_to_fp32(tai_fp32_to_fp16(d));
        if (dh == 0.0f) continue;
        float err = 0.0f;
        for (int j = 0; j < 32; j++) {
            const float r = x[j] - dh * (float)tai_iq4nl_values[iq4_nearest(x[j] / dh)];
            err += r * r;
        }
        if (err < best_err) best_err = err, best_d = dh;
    }
    y->d = tai_fp32_to_fp16(best_d);
    if (best_d == 0.0f) return;
    for (int j = 0; j < 16; j++)
        y->qs[j] = (uint8_t)(iq4_nearest(x[j] / best_d) | iq4_nearest(x[j + 16] / best_d) << 4);
}

/* Scale and minimum of n values for codes 0..nmax: x ~ s * q - m (m >= 0),
 * weighted least squares over a sweep of candidate ranges (the approach of
 * ggml's make_qkx2_quants). Returns s; *mout gets m, L the codes. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                           float *mout) {
    float min = x[0], max = x[0], sw = 0.0f, swx = 0.0f;
    for (int i = 0; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sw += w[i];
        swx += w[i] * x[i];
    }
    if (min > 0.0f) min = 0.0f;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *mout = -min;
        return 0.0f;
    }
    float iscale = (float)nmax / (max - min), scale = 1.0f / iscale, best = 0.0f;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
        const float diff = scale * L[i] + min - x[i];
        best += w[i] * diff * diff;
    }
    uint8_t Laux[32];
    for (int is = 0; is <= 20; is++) {
        iscale = (-1.0f + 0.1f * (float)is + (float)nmax) / (max - min);
        float sl = 0.0f, sl2 = 0.0f, sxl = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sl += w[i] * l;
            sl2 += w[i] * l * l;
            sxl += w[i] * l * x[i];
        }
        const float D = sw * sl2 - sl * sl;
        if (D > 0.0f) {
            float s = (sw * sxl - swx * sl) / D, m = (sl2 * swx - sl * sxl) / D;
            if (m > 0.0f) {
                m = 0.0f;
                s = sxl / sl2;
            }
            float err = 0.0f;
            for (int i = 0; i < n; i++) {
                const float diff = s * Laux[i] + m - x[i];
                err += w[i] * diff * diff;
            }
            if (err < best) {
                best = err;
                memcpy(L, Laux, (size_t)n);
                scale = s;
                min = m;
            }
        }
    }
    *mout = -min;
    return scale;
}

/* A signed scale of n values for codes -nmax..nmax-1 (x ~ s * q), weighted
 * by x^2, over a sweep of candidates (ggml's make_qx_quants approach). */
static float fit_scale_signed(int n, int nmax, const float *x) {
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++)
        if (amax < fabsf(x[i])) amax = fabsf(x[i]), max = x[i];
    if (amax < 1e-30f) return 0.0f;
    float best_scale = 0.0f, best = -1.0f;
    for (int is = -9; is <= 9; is++) {
        const float iscale = -((float)nmax + 0.1f * (float)is) / max;
        float sxl = 0.0f, sl2 = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sxl += w * x[i] * l;
            sl2 += w * l * l;
        }
        if (sl2 > 0.0f && (best < 0.0f || sxl * sxl > best * sl2)) {
            best_scale = sxl / sl2;
            best = best_scale * sxl;
        }
    }
    return best_scale;
}

/* Q4_K / Q5_K: each sub-block's scale and minimum, then both quantized to
 * 6 bits against the super-block's d and dmin, then the codes again with
 * the rounded scales. */
static void quantize_k45(tai_type t, const float *x, uint8_t *y) {
    const int nmax = t == TAI_TYPE_Q4_K ? 15 : 31;
    float scales[8], mins[8], w[32];
    uint8_t L[TAI_QK_K];
    float sum_x2 = 0.0f;
    for (int i = 0; i < TAI_QK_K; i++) sum_x2 += x[i] * x[i];
    const float av_x = sqrtf(sum_x2 / TAI_QK_K);
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 8; j++) {
        for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = fit_scale_min(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j]);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
    tai_unit_row r;
    memset(&r, 0, sizeof r);
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = (uint8_t)clampi(nearest_int(inv_scale * scales[j]), 0, 63);
        lm[j] = (uint8_t)clampi(nearest_int(inv_min * mins[j]), 0, 63);
    }
    k4_encode(ls, lm, r.raw12);
    r.d[0] = tai_fp32_to_fp16(max_scale / 63.0f);
    r.m[0] = tai_fp32_to_fp16(max_min / 63.0f);
    const float d = tai_fp16_to_fp32(r.d[0]), dmin = tai_fp16_to_fp32(r.m[0]);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        k4_scale(r.raw12, j, &sc, &m);
        const float dl = d * sc, ml = dmin * m;
        for (int l = 0; l < 32; l++)
            r.code[32 * j + l] =
                (uint8_t)(dl != 0.0f ? clampi(nearest_int((x[32 * j + l] + ml) / dl), 0, nmax) : 0);
    }
    tai_unit_to_gguf(t, &r, 1, y);
}

/* Q6_K: each 16's signed scale, those quantized to int8 against d, then
 * the codes with the rounded scales. */
static void quantize_q6_k(const float *x, tai_block_q6_k *y) {
    float scales[16], max_scale = 0.0f, amax = 0.0f;
    for (int i = 0; i < 16; i++) {
        scales[i] = fit_scale_signed(16, 32, x + 16 * i);
        if (fabsf(scales[i]) > amax) amax = fabsf(scales[i]), max_scale = scales[i];
    }
    tai_unit_row r;
    memset(&r, 0, sizeof r);
    if (amax < 1e-30f) {
        for (int e = 0; e < TAI_QK_K; e++) r.code[e] = 32;
        tai_unit_to_gguf(TAI_TYPE_Q6_K, &r, 1, y);
        return;
    }
    const float iscale = -128.0f / max_scale;
    r.d[0] = tai_fp32_to_fp16(1.0f / iscale);
    const float d = tai_fp16_to_fp32(r.d[0]);
    for (int i = 0; i < 16; i++) {
        r.sc[i] = (int8_t)clampi(nearest_int(iscale * scales[i]), -128, 127);
        const float dl = d * r.sc[i];
        for (int l = 0; l < 16; l++)
            r.code[16 * i + l] =
                (uint8_t)(dl != 0.0f ? clampi(nearest_int(x[16 * i + l] / dl), -32, 31) + 32 : 32);
    }
    tai_unit_to_gguf(TAI_TYPE_Q6_K, &r, 1, y);
}

/* Q8_K: ggml's reference, d = max / -127 as a float32. */
static void quantize_q8_k(const float *x, tai_block_q8_k *y) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < TAI_QK_K; j++)
        if (amax < fabsf(x[j])) amax = fabsf(x[j]), max = x[j];
    memset(y, 0, sizeof *y);
    if (amax == 0.0f) return;
    const float iscale = -127.0f / max;
    for (int j = 0; j < TAI_QK_K; j++) {
        const int v = nearest_int(iscale * x[j]);
        y->qs[j] = (int8_t)(v > 127 ? 127 : v < -128 ? -128 : v);
        y->bsums[j / 16] = (int16_t)(y->bsums[j / 16] + y->qs[j]);
    }
    y->d = 1.0f / iscale;
}

/* Q2_K: each 16's scale and minimum, both quantized to 4 bits against d
 * and dmin; Q3_K: each 16's signed scale quantized to 6 bits against d. */
static void quantize_q2_k(const float *x, tai_block_q2_k *y) {
    float scales[16], mins[16], w[16], max_scale = 0.0f, max_min = 0.0f;
    uint8_t L[16];
    for (int i = 0; i < 16; i++) {
        for (int l = 0; l < 16; l++) w[l] = fabsf(x[16 * i + l]);
        scales[i] = fit_scale_min(16, 3, x + 16 * i, w, L, &mins[i]);
        if (scales[i] > max_scale) max_scale = scales[i];
        if (mins[i] > max_min) max_min = mins[i];
    }
    tai_unit_row r;
    memset(&r, 0, sizeof r);
    r.d[0] = tai_fp32_to_fp16(max_scale / 15.0f);
    r.m[0] = tai_fp32_to_fp16(max_min / 15.0f);
    const float d = tai_fp16_to_fp32(r.d[0]), dmin = tai_fp16_to_fp32(r.m[0]);
    for (int i = 0; i < 16; i++) {
        r.sc[i] = (int8_t)(d > 0.0f ? clampi(nearest_int(scales[i] / d), 0, 15) : 0);
        r.mn[i] = (uint8_t)(dmin > 0.0f ? clampi(nearest_int(mins[i] / dmin), 0, 15) : 0);
        const float dl = d * r.sc[i], ml = dmin * r.mn[i];
        for (int l = 0; l < 16; l++)
            r.code[16 * i + l] =
                (uint8_t)(dl != 0.0f ? clampi(nearest_int((x[16 * i + l] + ml) / dl), 0, 3) : 0);
    }
    tai_unit_to_gguf(TAI_TYPE_Q2_K, &r, 1, y);
}

static void quantize_q3_k(const float *x, tai_block_q3_k *y) {
    float scales[16], max_scale = 0.0f, amax = 0.0f;
    for (int i = 0; i < 16; i++) {
        scales[i] = fit_scale_signed(16, 4, x + 16 * i);
        if (fabsf(scales[i]) > amax) amax = fabsf(scales[i]), max_scale = scales[i];
    }
    tai_unit_row r;
    memset(&r, 0, sizeof r);
    for (int e = 0; e < TAI_QK_K; e++) r.code[e] = 4;
    if (amax >= 1e-30f) {
        const float iscale = -32.0f / max_scale;
        r.d[0] = tai_fp32_to_fp16(1.0f / iscale);
        const float d = tai_fp16_to_fp32(r.d[0]);
        for (int i = 0; i < 16; i++) {
            r.sc[i] = (int8_t)clampi(nearest_int(iscale * scales[i]), -32, 31);
            const float dl = d * r.sc[i];
            for (int l = 0; l < 16; l++)
                r.code[16 * i + l] =
                    (uint8_t)(dl != 0.0f ? clampi(nearest_int(x[16 * i + l] / dl), -4, 3) + 4 : 4);
        }
    } else {
        for (int i = 0; i < 16; i++) r.sc[i] = 0;
    }
    tai_unit_to_gguf(TAI_TYPE_Q3_K, &r, 1, y);
}

/* Returns 1 when t is one of this file's types and the row was written. */
int tai_unit_quantize_row(tai_type t, const float *src, void *dst, int64_t n);
int tai_unit_quantize_row(tai_type t, const float *src, void *dst, int64_t n) {
    const int64_t be = tai_type_block_elems(t);
    const size_t bb = tai_type_block_bytes(t);
    uint8_t *o = dst;
    for (int64_t i = 0; i < n / be; i++, src += be, o += bb) {
        switch (t) {
        case TAI_TYPE_Q5_0:
        case TAI_TYPE_Q5_1: quantize_q5(t, src, o); break;
        case TAI_TYPE_IQ4_NL: quantize_iq4_nl(src, (tai_block_iq4_nl *)(void *)o); break;
        case TAI_TYPE_Q4_K:
        case TAI_TYPE_Q5_K: quantize_k45(t, src, o); break;
        case TAI_TYPE_Q6_K: quantize_q6_k(src, (tai_block_q6_k *)(void *)o); break;
        case TAI_TYPE_Q2_K: quantize_q2_k(src, (tai_block_q2_k *)(void *)o); break;
        case TAI_TYPE_Q3_K: quantize_q3_k(src, (tai_block_q3_k *)(void *)o); break;
        case TAI_TYPE_Q8_K: quantize_q8_k(src, (tai_block_q8_k *)(void *)o); break;
        default: return 0;
        }
    }
    return 1;
}
