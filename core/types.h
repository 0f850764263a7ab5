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
    TAI_TYPE_Q8_0 = 8,
    TAI_TYPE_COUNT = 9, /* one past the largest id; ids 4..7 are unused */
} tai_type;

#define TAI_QK 32 /* elements per quantization block, all block types */

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

/* Q8_0: x = d * q, q in -127..127. 34 bytes. */
typedef struct {
    uint16_t d; /* fp16 scale */
    int8_t qs[TAI_QK];
} tai_block_q8_0;

/* Whether `t` is one of the supported ids above. */
int tai_type_valid(int t);
/* "F32", "F16", "Q4_0", ...; "?" for an unknown id. */
const char *tai_type_name(int t);
/* Elements per block: 1 for F32/F16, 32 for the block types. */
int64_t tai_type_block_elems(tai_type t);
/* Bytes per block. */
size_t tai_type_block_bytes(tai_type t);
/* Bits per weight including scales (F32 32, F16 16, Q8_0 8.5, ...),
 * rounded down to an integer: 32, 16, 8, 4, 5. */
int tai_type_bits(tai_type t);
/* Bytes of a row of n elements; 0 if n is not a multiple of the block size
 * or the size would overflow. */
size_t tai_type_row_bytes(tai_type t, int64_t n);

/* ---- fp16 --------------------------------------------------------------- */

float tai_fp16_to_fp32(uint16_t h);
uint16_t tai_fp32_to_fp16(float f); /* round to nearest even */

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
