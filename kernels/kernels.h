/*
 * kernels/: the internal interface of TinyAI's CPU compute layer.
 *
 * Plain functions on pointers and sizes: nothing here knows about models,
 * files or devices. Every op has a scalar reference (`_ref`); the matrix
 * products also have AVX2 and AVX-512 variants, each compiled in its own file
 * with its own ISA flags. One table (kernels/registry.c) lists the variants;
 * the best one the CPU supports is chosen once, from CPUID and a caller-given
 * cap (so tests can run every variant the host has).
 *
 * Weight types and their block layouts are exactly GGUF's (ggml type ids).
 */
#ifndef TAI_KERNELS_KERNELS_H
#define TAI_KERNELS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* C++ has no `restrict`; compilers spell it __restrict. Guarded so that a
 * file which already made the same definition keeps working. */
#if defined(__cplusplus) && !defined(restrict)
#define restrict __restrict
#endif

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

/* Activations quantized for the integer dot products (internal only, never
 * stored in a file): x = d * q; s = d * sum(q), which Q4_1's minimum needs. */
typedef struct {
    float d;
    float s;
    int8_t qs[TAI_QK];
} tai_block_q8a;

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
/* Quantizes n activations (n % 32 == 0) to q8a blocks. */
void tai_quantize_row_q8a(const float *src, tai_block_q8a *dst, int64_t n);

/* ---- ISA variants and the kernel table ---------------------------------- */

typedef enum {
    TAI_ISA_SCALAR = 0,
    TAI_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C */
    TAI_ISA_AVX512 = 2, /* AVX-512 F/BW/VL (+ VNNI used where present) */
    TAI_ISA_COUNT = 3,
} tai_isa;

const char *tai_isa_name(tai_isa isa); /* "scalar", "avx2", "avx512" */
/* Parses "scalar"/"avx2"/"avx512"; returns -1 for anything else. */
int tai_isa_parse(const char *name);
/* Whether this CPU (and OS, for the register state) can run `isa`. */
int tai_isa_supported(tai_isa isa);
/* The best supported ISA not above `cap`. */
tai_isa tai_isa_best(tai_isa cap);

/*
 * Row-range product kernel: for rows r in [r0, r1) and columns c in
 * [0, ncols):  y[c * y_stride + r] = dot(W row r, x column c).
 * W rows are `w_row_bytes` apart. x columns are prepared activations (see
 * tai_kernels.prep_type), `x_col_bytes` apart, each n elements long.
 * n is a multiple of the weight type's block size.
 */
typedef void (*tai_rows_fn)(const void *restrict w, size_t w_row_bytes,
                            const void *restrict x, size_t x_col_bytes,
                            float *restrict y, int64_t y_stride, int64_t n,
                            int64_t r0, int64_t r1, int64_t ncols);

/* Activation preparation for a weight type: quantize or copy one column. */
typedef enum {
    TAI_PREP_F32 = 0, /* x stays float (F32, F16 weights) */
    TAI_PREP_Q8A = 1, /* x quantized to tai_block_q8a (Q4_0, Q4_1, Q8_0) */
} tai_prep;

typedef struct {
    tai_isa isa;
    tai_rows_fn rows[TAI_TYPE_COUNT]; /* NULL for unused ids */
} tai_kernels;

/* The table for `isa` (must be supported; falls back to scalar otherwise).
 * Borrowed, static. */
const tai_kernels *tai_kernels_get(tai_isa isa);
/* How activations must be prepared for weights of type t. */
tai_prep tai_prep_for(tai_type t);
/* Bytes one prepared column of n elements takes. */
size_t tai_prep_col_bytes(tai_prep p, int64_t n);
/* Prepares one column of n floats into `dst` (tai_prep_col_bytes bytes). */
void tai_prep_col(tai_prep p, const float *src, void *dst, int64_t n);

/* ---- Thread pool -------------------------------------------------------- */

typedef struct tai_pool tai_pool;

/* Creates a pool of n_threads workers in total (the calling thread counts as
 * one, so n_threads - 1 threads are started). Returns 0 or -errno. The caller
 * frees it with tai_pool_destroy. */
int tai_pool_create(int n_threads, tai_pool **out);
void tai_pool_destroy(tai_pool *pool); /* accepts NULL */
int tai_pool_size(const tai_pool *pool);
/* Runs fn(ctx, i, n) for i in [0, n) on the pool's threads (n = pool size),
 * the caller running i = 0, and returns when all are done. Not reentrant. */
void tai_pool_run(tai_pool *pool, void (*fn)(void *ctx, int i, int n), void *ctx);

/* ---- Matrix product driver ---------------------------------------------- */

/*
 * Y[c][r] = sum_k W[r][k] * X[c][k] for r < rows, c < ncols, k < n.
 * W: rows x n of type t (row-major, rows contiguous). X: ncols x n floats.
 * Y: ncols x rows floats. `scratch` holds the prepared activations; it must
 * be at least tai_matmul_scratch_bytes(t, n, ncols) bytes. pool may be NULL
 * (single thread). Rows are split evenly across the pool.
 */
size_t tai_matmul_scratch_bytes(tai_type t, int64_t n, int64_t ncols);
void tai_matmul(const tai_kernels *k, tai_pool *pool, tai_type t, const void *w,
                int64_t rows, int64_t n, const float *x, float *y, int64_t ncols,
                void *scratch);

/* ---- Other ops (scalar; float32 activations) ---------------------------- */

/* out = x / sqrt(mean(x^2) + eps) * w. out may alias x. */
void tai_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps);
/* In-place softmax over n values. */
void tai_softmax(float *x, int64_t n);
/* gate[i] = silu(gate[i]) * up[i]. */
void tai_silu_mul(float *gate, const float *up, int64_t n);
/*
 * Rotary position embedding, in place, on n_heads heads of head_dim floats
 * (contiguous): pairs (2i, 2i+1) within each head are rotated by
 * pos * theta_base^(-2i/rot_dim) for 2i < rot_dim ("normal" llama layout
 * as stored in GGUF, whose q/k weights the converter permuted for it).
 */
void tai_rope(float *x, int n_heads, int head_dim, int rot_dim, int64_t pos,
              float theta_base);
/*
 * Causal attention of one query position over a KV cache.
 * q: n_head x head_dim. k_cache/v_cache: positions [0, n_pos) each
 * n_kv_head x head_dim floats, `kv_stride` floats apart between positions.
 * Grouped-query: query head h uses kv head h / (n_head / n_kv_head).
 * out: n_head x head_dim. att: scratch of n_pos floats.
 */
void tai_attention(float *out, const float *q, const float *k_cache,
                   const float *v_cache, int64_t n_pos, int64_t kv_stride,
                   int n_head, int n_kv_head, int head_dim, float *att);
/* out[i] = dequantized row `row` of an embedding table (rows of n elems). */
void tai_embedding_row(tai_type t, const void *table, int64_t row, int64_t n,
                       float *out);

#ifdef __cplusplus
}
#endif

#endif /* TAI_KERNELS_KERNELS_H */
