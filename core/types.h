/*
 * core/types.h: weight types, their block layouts and the packed panel
 * layout every device reads (layer: core, which depends on nothing else in
 * the tree). Format readers and writers, the CPU kernels and the devices of
 * offload/ all take their types and layouts from here.
 *
 * Weight types and their block layouts are exactly GGUF's (ggml type ids).
 */
#ifndef TAI_CORE_TYPES_H
#define TAI_CORE_TYPES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Types -------------------------------------------------------------- */

/* Tensor element types; values are the ggml/GGUF type ids. */
typedef enum {
    TAI_TYPE_F32 = 0,
    TAI_TYPE_F16 = 1,
    TAI_TYPE_Q4_0 = 2,
    TAI_TYPE_Q4_1 = 3,
    TAI_TYPE_Q5_0 = 6,
    TAI_TYPE_Q5_1 = 7,
    TAI_TYPE_Q8_0 = 8,
    TAI_TYPE_Q2_K = 10,
    TAI_TYPE_Q3_K = 11,
    TAI_TYPE_Q4_K = 12,
    TAI_TYPE_Q5_K = 13,
    TAI_TYPE_Q6_K = 14,
    TAI_TYPE_Q8_K = 15,
    TAI_TYPE_IQ4_NL = 20,
    TAI_TYPE_BF16 = 30,
    TAI_TYPE_COUNT = 31, /* one past the largest id; the ids between are not read */
} tai_type;

#define TAI_QK 32    /* elements per block of Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL */
#define TAI_QK_K 256 /* elements per super-block of the K-quants */

/* Q4_0: x = d * (q - 8), q in 0..15. qs[j] holds element j in its low
 * nibble and element j+16 in its high nibble. 18 bytes. */
typedef struct {
    uint16_t d; /* fp16 scale */
    uint8_t qs[TAI_QK / 2];
} tai_block_q4_0;

/* Q4_1: x = d * q + m, q in 0..15, nibble order as Q4_0. 20 bytes. */
typedef struct {
    uint16_t d; /* fp16 scale */
    uint16_t m; /* fp16 minimum */
    uint8_t qs[TAI_QK / 2];
} tai_block_q4_1;

/* Q5_0: x = d * (q - 16), q in 0..31: the low four bits as Q4_0's
 * nibbles, bit 4 of element j in bit j of qh (little-endian). 22 bytes. */
typedef struct {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[TAI_QK / 2];
} tai_block_q5_0;

/* Q5_1: x = d * q + m, q in 0..31, bits as Q5_0. 24 bytes. */
typedef struct {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[TAI_QK / 2];
} tai_block_q5_1;

/* Q8_0: x = d * q, q in -127..127. 34 bytes. */
typedef struct {
    uint16_t d; /* fp16 scale */
    int8_t qs[TAI_QK];
} tai_block_q8_0;

/* IQ4_NL: x = d * tai_iq4nl_values[q], q in 0..15, nibbles as Q4_0. 18
 * bytes. */
typedef struct {
    uint16_t d;
    uint8_t qs[TAI_QK / 2];
} tai_block_iq4_nl;
extern const int8_t tai_iq4nl_values[16];

/*
 * The K-quants: super-blocks of 256 elements, sub-blocks of 32 (Q4_K,
 * Q5_K) or 16 (Q2_K, Q3_K, Q6_K) elements with small integer scales of
 * their own (ggml's layouts, k-quants.h):
 *
 * Q2_K: x = d * (sc & 15) * q - dmin * (sc >> 4), q in 0..3, one byte sc
 *       per 16 elements. qs: 2 bits each; element 128h + 32s + l (h 0..1,
 *       s 0..3, l 0..31) in bits 2s of qs[32h + l]. 84 bytes.
 * Q3_K: x = d * (sc - 32) * (q - 4), q in 0..7, sc 6 bits per 16 elements
 *       in 12 bytes s: the low four bits of sc[i] in s[i] & 15 (i < 8) or
 *       s[i - 8] >> 4, the top two in bits 2 * (i / 4) of s[8 + i % 4]. The
 *       low two bits of q as Q2_K's; bit 2 of element 32m + l's q in bit m
 *       of hmask[l]. 110 bytes.
 * Q4_K: x = d * sc[j] * q - dmin * m[j], q in 0..15, sub-block j (0..7) of
 *       32; sc, m 6 bits in 12 bytes (j < 4: sc = s[j] & 63, m = s[j + 4] &
 *       63; j >= 4: sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4, m =
 *       (s[j + 4] >> 4) | (s[j] >> 6) << 4). qs: element 64g + l (l < 32)
 *       in the low nibble of qs[32g + l], element 64g + 32 + l in its high
 *       nibble. 144 bytes.
 * Q5_K: as Q4_K with q in 0..31, bit 4 of element 32j + l in bit j of
 *       qh[l]. 176 bytes.
 * Q6_K: x = d * sc[i] * (q - 32), q in 0..63, sc int8 per 16 elements. For
 *       element 128h + 32s + l (s 0..3, l 0..31): low four bits in ql[64h +
 *       l + 32 * (s & 1)], low nibble for s < 2, high for s >= 2; top two
 *       bits at bits 2s of qh[32h + l]. 210 bytes.
 * Q8_K: x = d * q, d a float32, q int8; bsums: the sums of each 16 q. 292
 *       bytes.
 */
typedef struct {
    uint8_t scales[TAI_QK_K / 16];
    uint8_t qs[TAI_QK_K / 4];
    uint16_t d;
    uint16_t dmin;
} tai_block_q2_k;

typedef struct {
    uint8_t hmask[TAI_QK_K / 8];
    uint8_t qs[TAI_QK_K / 4];
    uint8_t scales[12];
    uint16_t d;
} tai_block_q3_k;

typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qs[TAI_QK_K / 2];
} tai_block_q4_k;

typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qh[TAI_QK_K / 8];
    uint8_t qs[TAI_QK_K / 2];
} tai_block_q5_k;

typedef struct {
    uint8_t ql[TAI_QK_K / 2];
    uint8_t qh[TAI_QK_K / 4];
    int8_t scales[TAI_QK_K / 16];
    uint16_t d;
} tai_block_q6_k;

typedef struct {
    float d;
    int8_t qs[TAI_QK_K];
    int16_t bsums[TAI_QK_K / 16];
} tai_block_q8_k;

/* Whether `t` is one of the supported ids above. */
int tai_type_valid(int t);
/* "F32", "F16", "Q4_0", ...; "?" for an unknown id. */
const char *tai_type_name(int t);
/* Elements per block: 1 for F32/F16/BF16, 32 for the block types, 256
 * for the K-quants. */
int64_t tai_type_block_elems(tai_type t);
/* Bytes per block. */
size_t tai_type_block_bytes(tai_type t);
/* Bits per weight including scales (F32 32, F16 16, Q8_0 8.5, ...),
 * rounded down to an integer: 32, 16, 8, 4, 5. */
int tai_type_bits(tai_type t);
/* Bytes of a row of n elements; 0 if n is not a multiple of the block size
 * or the size would overflow. */
size_t tai_type_row_bytes(tai_type t, int64_t n);

/* Whether t is one of the types with 32-element blocks and one scale each
 * that the original packed layout below holds (Q4_0, Q4_1, Q8_0). */
static inline int tai_type_is_q32(tai_type t) {
    return t == TAI_TYPE_Q4_0 || t == TAI_TYPE_Q4_1 || t == TAI_TYPE_Q8_0;
}
/* Whether t is a K-quant or one of the other unit-packed block types
 * (see "Unit-packed weights" below). */
int tai_type_is_unit(tai_type t);

/* ---- fp16, bf16 ---------------------------------------------------------- */

float tai_fp16_to_fp32(uint16_t h);
uint16_t tai_fp32_to_fp16(float f); /* round to nearest even */
static inline float tai_bf16_to_fp32(uint16_t h) {
    union {
        uint32_t u;
        float f;
    } v = {(uint32_t)h << 16};
    return v.f;
}
uint16_t tai_fp32_to_bf16(float f); /* round to nearest even; NaN stays NaN */

/* ---- Quantization (reference, used to write files and in tests) --------- */

/* Converts n floats to type t (n a multiple of the block size). */
void tai_quantize_row(tai_type t, const float *src, void *dst, int64_t n);
/* Converts n elements of type t to floats. */
void tai_dequantize_row(tai_type t, const void *src, float *dst, int64_t n);

/* ---- Packed weights ------------------------------------------------------
 *
 * The fast kernels (of every device) read weights repacked once, at load time, into panels of
 * TAI_PANEL consecutive rows, so that one SIMD register holds one value for
 * each of 16 rows and the loops read memory linearly. Panel p holds rows
 * [16p, 16p + 16) (rows past the matrix's end are zero) and takes
 * tai_pack_panel_bytes(t, n) bytes (a multiple of 64). Within a panel, with
 * nb = n / 32 blocks and r the row within the panel:
 *
 *   F32   float  [n][16]              element (r, k) at k * 16 + r
 *   F16   fp16   [n][16]              likewise
 *   block types: blocks in pairs, each pair
 *         [codes of block b][codes of block b + 1][d of b][d of b + 1]
 *         [m of b][m of b + 1]  (m: Q4_1 only; an odd last block is
 *         paired with a zero block), so a panel is read as one stream:
 *   Q8_0  codes  uint8 [8][16][4]     (g, r, t): q(r, 32b + 4g + t) + 128
 *   Q4_0  codes  uint8 [4][16][4]     (j, r, t): low nibble q(r, 32b + 8j + t),
 *                                     high nibble q(r, 32b + 8j + 4 + t), q in 0..15
 *   Q4_1  codes  as Q4_0
 *         d, m   fp16 [16]            the 16 rows' scale (and minimum) of block b
 *
 * so one 64-byte load gives four consecutive elements of every row, the
 * operand layout of a dot-product instruction that sums groups of four bytes
 * into 32-bit lanes (VNNI vpdpbusd). The values are exactly the GGUF ones:
 * packing never rounds.
 */
#define TAI_PANEL 16

/* Bytes of one packed panel of n elements per row (0 if n is invalid). */
size_t tai_pack_panel_bytes(tai_type t, int64_t n);
/* Bytes of a packed rows x n matrix (whole panels); 0 on invalid arguments
 * or overflow. */
size_t tai_pack_bytes(tai_type t, int64_t rows, int64_t n);
/* Packed block-type panels (see "Packed weights" above): blocks go in pairs,
 * each pair [codes of b][codes of b + 1][d of b, b + 1][m of b, b + 1 (Q4_1)],
 * so a panel is one front-to-back stream. Byte offsets inside a panel: */
/* Row r (0 <= r < rows) of a packed rows x n matrix of type t, written to
 * dst in GGUF's row-major layout of the same type (tai_type_row_bytes(t, n)
 * bytes): the exact inverse of packing, so a packed file's tensor can be
 * written out row-major without rounding anything. Does nothing on invalid
 * arguments. */
void tai_unpack_row(tai_type t, const void *packed, int64_t rows, int64_t n, int64_t r,
                    void *dst);
/* Block i of row rr (0..15) of one packed panel of a block type, as its
 * GGUF block (tai_type_block_bytes bytes) into dst. */
void tai_unpack_block(tai_type t, const void *panel, int rr, int64_t i, void *dst);

static inline size_t tai_qcode_bytes(tai_type t) { /* codes of one block */
    return t == TAI_TYPE_Q8_0 ? 512 : 256;
}
static inline size_t tai_qpair_bytes(tai_type t) {
    return 2 * tai_qcode_bytes(t) + (t == TAI_TYPE_Q4_1 ? 128 : 64);
}
static inline size_t tai_qcodes_at(tai_type t, int64_t b) {
    return (size_t)(b >> 1) * tai_qpair_bytes(t) + (size_t)(b & 1) * tai_qcode_bytes(t);
}
static inline size_t tai_qscales_at(tai_type t, int64_t b) { /* 16 fp16 d */
    return (size_t)(b >> 1) * tai_qpair_bytes(t) + 2 * tai_qcode_bytes(t) + (size_t)(b & 1) * 32;
}
static inline size_t tai_qmins_at(tai_type t, int64_t b) { /* 16 fp16 m, Q4_1 */
    return tai_qscales_at(t, b) + 64;
}

/* ---- Unit-packed weights ---------------------------------------------------
 *
 * Q5_0, Q5_1, IQ4_NL and the K-quants are packed in units: a panel (16
 * rows, as above) is a sequence of units of `elems` elements of every row
 * (64: two blocks, the second a zero block after an odd count; 256: one
 * super-block), each `bytes` bytes (a multiple of 64). A unit holds first
 * its scales, d and m (below; zero-padded to 64 bytes), then its `subs`
 * sub-blocks of 32 elements s one after the other, each its codes and
 * then its high planes, so that a unit is read front to back:
 *
 *   codes     the unsigned code of every element (below):
 *     NIB     256 bytes [j 0..3][r][t 0..3]: low nibble element 8j + t,
 *             high nibble element 8j + 4 + t (bits 0..3 of the code), as
 *             Q4_0's packed codes
 *     TWO     128 bytes: [r][t] bits 2j..2j+1 the low two bits of element
 *             8j + t, then [r][t] those of element 8j + 4 + t
 *     BYTE    512 bytes [g 0..7][r][t]: element 4g + t's code, as Q8_0's
 *   high      `high` planes of 64 bytes after the codes: [r][t] bit 2j + h
 *             the next bit (4 + i for NIB, 2 for TWO) of element 8j + 4h + t
 *   scales    the sub-blocks' integer scales, as the `scales` kind says:
 *     SC_K4   Q4_K/Q5_K's 6-bit scales and minimums decoded to bytes:
 *             [j 0..7][r] the sub-blocks' scales, then [j][r] their
 *             minimums (the 12 GGUF bytes hold exactly these bits)
 *     SC_U8   [i 0..15][r] one byte per 16 elements (Q2_K's bytes)
 *     SC_I8   [i 0..15][r] int8 per 16 elements (Q6_K's; Q3_K's sc - 32)
 *   d, m      fp16 [16] (K-quants: d, dmin; 64-element units: [2][16],
 *             one per block; Q8_K: float32 [16])
 *
 * Codes: Q5_0 q (0..31, bias 16), Q5_1 q, IQ4_NL the index into its
 * values, Q2_K q, Q3_K q (0..7: low bits | bit 2, bias 4), Q4_K, Q5_K q,
 * Q6_K q (0..63, bias 32), Q8_K q + 128. The bytes are exactly those of the
 * GGUF blocks, rearranged (Q8_K's bsums are recomputed from q, Q3_K's
 * scales decoded to int8): tai_unpack_row gives the GGUF row back bit for
 * bit. A unit is within 2% of the GGUF bytes it holds (Q6_K 1%, Q3_K 5%,
 * the padding to 64 bytes).
 */
typedef enum { TAI_UNIT_NIB = 0, TAI_UNIT_TWO = 1, TAI_UNIT_BYTE = 2 } tai_unit_codes;
typedef enum {
    TAI_UNIT_SC_NONE = 0,
    TAI_UNIT_SC_K4 = 1,
    TAI_UNIT_SC_U8 = 2,
    TAI_UNIT_SC_I8 = 3,
} tai_unit_scales;

typedef struct {
    int elems;          /* 64 or 256 */
    int subs;           /* 32-element sub-blocks: elems / 32 */
    tai_unit_codes codes;
    int high;           /* high-bit planes per sub-block: 0, 1 or 2 */
    tai_unit_scales scales;
    int bias;           /* the code of zero where there is one: x = d * s * (q - bias) */
    int has_min;        /* Q5_1, Q2_K, Q4_K, Q5_K */
    size_t code_bytes;  /* per sub-block: 256, 128 or 512 */
    size_t sub_at;      /* the first sub-block (after the scales, d and m) */
    size_t sub_bytes;   /* per sub-block: its codes, then its high planes */
    size_t scales_at, d_at, m_at, bytes;
} tai_unit_layout;

/* Sub-block s's code plane and its high plane i, bytes into a unit. */
static inline size_t tai_unit_codes_at(const tai_unit_layout *L, int s) {
    return L->sub_at + (size_t)s * L->sub_bytes;
}
static inline size_t tai_unit_high_at(const tai_unit_layout *L, int s, int i) {
    return tai_unit_codes_at(L, s) + L->code_bytes + (size_t)i * 64;
}

/* The layout of type t's units, or NULL where t is not unit-packed. */
const tai_unit_layout *tai_unit_layout_of(tai_type t);

/* A unit's contents for one row, in plain arrays: the codes of its
 * elements (as above), its sub-blocks' scales per 16 elements (sc; the
 * minimums' in mn: Q4_K/Q5_K's sc and m, the same for both halves of a
 * sub-block; Q2_K's low and high nibbles; Q3_K's sc - 32; Q6_K's; 1
 * elsewhere), d and m per 32-element block for 64-element units, else
 * in d[0], m[0] (fp16 bits; Q8_K: d32). Q3_K/Q4_K/Q5_K's raw 12 scale
 * bytes in raw12 (the packed form keeps Q4_K/Q5_K's as they are). */
typedef struct {
    uint8_t code[TAI_QK_K];
    int8_t sc[16];
    uint8_t mn[16];
    uint8_t raw12[12];
    uint16_t d[2], m[2];
    float d32;
} tai_unit_row;

/* GGUF blocks of one unit of one row (tai_unit_layout_of(t)->elems
 * elements; for 64-element units `nblocks` 1 or 2 blocks, the missing
 * one zero) to its plain form, and back (exactly: to_gguf(from_gguf(b))
 * == b, except Q8_K's bsums, which are recomputed). */
void tai_unit_from_gguf(tai_type t, const void *blocks, int nblocks, tai_unit_row *out);
void tai_unit_to_gguf(tai_type t, const tai_unit_row *in, int nblocks, void *blocks);
/* Row rr (0..15) of a unit of a panel, into the panel / out of it. */
void tai_unit_put(tai_type t, const tai_unit_row *in, int rr, uint8_t *unit);
void tai_unit_get(tai_type t, const uint8_t *unit, int rr, tai_unit_row *out);

/* ---- Block-sparse packed weights ------------------------------------------
 *
 * A pruned matrix (runtime/llm/prune.c) keeps, in every 16-row panel, the
 * same number `keep` (1..n/32) of its n/32 column blocks of 32 elements
 * (a tile of 16 rows x 32 columns is the unit pruned: the kernels skip
 * whole tiles). Panel p is stored as
 *
 *   uint16 keep        the same in every panel
 *   uint16 idx[keep]   the kept blocks' column-block indices, strictly
 *                      increasing; the header zero-padded to a multiple of
 *                      64 bytes
 *   packed panel       the kept blocks as one packed panel ("Packed weights"
 *                      above) of 32 * keep elements per row, kept block j
 *                      standing for column block idx[j]
 *
 * so a product is the dense product of that small panel with the matching
 * blocks of the activations, and every panel takes the same bytes. The
 * stored values are the source's bit for bit. Any type, the quantized ones
 * included.
 */
/* Bytes of one block-sparse panel (0 if n or keep is invalid). */
size_t tai_sparse_panel_bytes(tai_type t, int64_t n, int64_t keep);
/* Bytes of a panel's header (keep and the index): 2 * (keep + 1) rounded up
 * to 64. The indices start 2 bytes in. */
static inline size_t tai_sparse_index_bytes(int64_t keep) {
    return ((size_t)(keep + 1) * 2 + 63) & ~(size_t)63;
}
/* Bytes of a rows x n block-sparse matrix; 0 on invalid arguments. */
size_t tai_sparse_bytes(tai_type t, int64_t rows, int64_t n, int64_t keep);
/* The keep a block-sparse matrix says it has (its first panel's), or 0 if
 * that is not one a rows x n matrix of type t stored in `size` bytes can
 * have. */
int64_t tai_sparse_keep(tai_type t, const void *w, int64_t rows, int64_t n, uint64_t size);
/* Row r of a block-sparse rows x n matrix of type t (`keep` blocks a panel)
 * in GGUF's row-major layout (tai_type_row_bytes(t, n) bytes into dst), the
 * pruned blocks zero: the kept values bit for bit. Does nothing on invalid
 * arguments. The index is trusted (tai_sparse_check it first). */
void tai_sparse_unpack_row(tai_type t, const void *w, int64_t rows, int64_t n, int64_t keep,
                           int64_t r, void *dst);
/* Whether every panel says `keep` and its index is strictly increasing and
 * below n / 32: 1, or 0 and *bad_panel gets the first bad one. */
int tai_sparse_check(tai_type t, const void *w, int64_t rows, int64_t n, int64_t keep,
                     int64_t *bad_panel);

#ifdef __cplusplus
}
#endif

#endif
