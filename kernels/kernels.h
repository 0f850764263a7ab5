/*
 * kernels/: the internal interface of TinyAI's CPU compute layer.
 *
 * Plain functions on pointers and sizes: nothing here knows about models,
 * files or devices. Every op has a scalar reference (`_ref`); the matrix
 * products also have AVX2 and AVX-512 variants, each compiled in its own file
 * with its own ISA flags. One table (kernels/registry.c) lists the variants;
 * the best one the CPU supports is chosen once, from CPUID and a caller-given
 * cap (so tests can run every variant the host has). Weight types, block
 * layouts and the packed panel layout are core/types.h's.
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

#include "core/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Activations for the integer products ------------------------------ */

/* Activations quantized for the integer dot products (internal only, never
 * stored in a file): x = d * q; s = d * sum(q), which Q4_1's minimum needs;
 * n8 = -8 * sum(q) and n128 = -128 * sum(q), the starting values of the
 * integer sums against packed Q4_0 and Q8_0 weights, whose codes are stored
 * unsigned with a bias of 8 and 128 (see "Packed weights"). 48 bytes. */
typedef struct {
    float d;
    float s;
    int32_t n8;
    int32_t n128;
    int8_t qs[TAI_QK];
} tai_block_q8a;

/* Quantizes n activations (n % 32 == 0) to q8a blocks. */
void tai_quantize_row_q8a(const float *src, tai_block_q8a *dst, int64_t n);

/* Activations for the K-quants' products: one scale per 256 elements, as
 * ggml pairs them (its Q8_K, core/types.h's tai_block_q8_k): d = amax /
 * 127, q = roundf(x / d), bsums the sums of each 16 q, which the weights'
 * minimums and code biases need. A super-block's integer sums then add up
 * across its sub-blocks before any float step. n % 256 == 0. */
void tai_quantize_row_q8k(const float *src, tai_block_q8_k *dst, int64_t n);

/* ---- Reference kernels and activation preparation --------------------- */

/*
 * Row-range product kernel over row-major weights (the scalar reference
 * only: the oracle the packed kernels are tested against). For rows r in
 * [r0, r1) and columns c in [0, ncols):  y[c * y_stride + r] = dot(W row r,
 * x column c). W rows are `w_row_bytes` apart; x columns are prepared one by
 * one (tai_prep_col), `x_col_bytes` apart, each n elements long.
 */
typedef void (*tai_rows_fn)(const void *restrict w, size_t w_row_bytes,
                            const void *restrict x, size_t x_col_bytes,
                            float *restrict y, int64_t y_stride, int64_t n,
                            int64_t r0, int64_t r1, int64_t ncols);

/* Activation preparation for a weight type: quantize or copy. */
typedef enum {
    TAI_PREP_F32 = 0, /* x stays float (F32, F16 weights) */
    TAI_PREP_Q8A = 1, /* x quantized to tai_block_q8a (Q4_0, Q4_1, Q8_0, Q5_0, Q5_1,
                         IQ4_NL) */
    TAI_PREP_Q8K = 2, /* x quantized to tai_block_q8_k (the K-quants) */
} tai_prep;

/* The reference row-major kernel for type t (NULL for an invalid type). */
tai_rows_fn tai_rows_ref(tai_type t);
/* How activations must be prepared for weights of type t. */
tai_prep tai_prep_for(tai_type t);
/* Bytes one prepared column of n elements takes (0 if n is invalid). */
size_t tai_prep_col_bytes(tai_prep p, int64_t n);
/* Prepares one column of n floats into `dst` (tai_prep_col_bytes bytes). */
void tai_prep_col(tai_prep p, const float *src, void *dst, int64_t n);

/* ---- Packing (the layout is core/types.h "Packed weights") ------------- */

/* Packs panels [p0, p1) of row-major W (rows x n of type t, rows
 * tai_type_row_bytes apart) into dst, which holds the whole packed matrix
 * (panel p at dst + p * tai_pack_panel_bytes). Panels are independent, so
 * callers may pack ranges in parallel. */
void tai_pack_panels(tai_type t, const void *w, int64_t rows, int64_t n, void *dst,
                     int64_t p0, int64_t p1);

/* One block-sparse panel (core/types.h "Block-sparse packed weights") from
 * `nrows` (1..16) row-major rows of W (rows tai_type_row_bytes(t, n)
 * apart) keeping the `keep` column blocks idx[0..keep) (strictly
 * increasing, < n / 32): tai_sparse_panel_bytes(t, n, keep) bytes into dst
 * (64-byte aligned). tmp: scratch of 16 * tai_type_row_bytes(t, 32 * keep)
 * bytes. Copies the kept blocks' bytes: no value changes. */
void tai_pack_sparse_panel(tai_type t, const void *w, int64_t nrows, int64_t n, int64_t keep,
                           const uint16_t *idx, void *dst, void *tmp);

/* Row r (0 <= r < rows) of a packed rows x n matrix of type t, dequantized
 * to n floats in out: the inverse view of tai_pack_matrix for one row, equal
 * bit for bit to tai_dequantize_row of the row-major row. For looking up a
 * token embedding in a table stored packed. Does nothing on invalid
 * arguments (r out of range, n not whole blocks). */
void tai_packed_row(tai_type t, const void *packed, int64_t rows, int64_t n, int64_t r,
                    float *out);

/* ---- Prepared activations for the packed kernels --------------------------
 *
 * The columns of X are prepared in groups of TAI_NR: group g holds columns
 * [8g, min(8g + 8, ncols)), w of them, and starts at byte
 * g * TAI_NR * tai_prep_col_bytes(p, n). Inside a group the unit (one float
 * for TAI_PREP_F32, one tai_block_q8a for TAI_PREP_Q8A, one tai_block_q8_k
 * for TAI_PREP_Q8K) u of column j is at
 * index u * w + j, so the kernels read the columns of a group together. A
 * single column is thus stored exactly as tai_prep_col stores it.
 */
#define TAI_NR 8

/* Bytes the prepared activations of ncols columns take. */
size_t tai_prep_bytes(tai_prep p, int64_t n, int64_t ncols);
/* Prepares column groups [g0, g1) of X (ncols columns of n floats, column c
 * at x + c * n) into dst, laid out as above. tai_prep_groups_with quantizes
 * with the given function (a kernel table's quantize_q8a; the result is the
 * same bit for bit). */
void tai_prep_groups(tai_prep p, const float *x, int64_t n, int64_t ncols, void *dst,
                     int64_t g0, int64_t g1);

/* ---- ISA variants and the kernel table ---------------------------------- */

typedef enum {
    TAI_ISA_SCALAR = 0,
    TAI_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C */
    TAI_ISA_AVX512 = 2, /* AVX-512 F/BW/VL/DQ + VNNI */
    TAI_ISA_COUNT = 3,
} tai_isa;

const char *tai_isa_name(tai_isa isa); /* "scalar", "avx2", "avx512" */
/* Parses "scalar"/"avx2"/"avx512"; returns -1 for anything else. */
int tai_isa_parse(const char *name);
/* Whether this CPU (and OS, for the register state) can run `isa`. */
int tai_isa_supported(tai_isa isa);
/* The best supported ISA not above `cap`. */
tai_isa tai_isa_best(tai_isa cap);
/* AMX: whether the AVX-512 kernels run the block types' blocked loop on
 * AMX tiles (the CPU has AMX-INT8 and Linux granted the tile state; asked
 * once), and switching that off or on again (it is on where available).
 * Either way every output is the same bits. */
int tai_amx_active(void);
void tai_amx_set_enabled(int enabled);
/* The CPU's name from CPUID ("" where there is none) and the features the
 * kernels look at that it has and the OS enables ("avx2 fma ..."); static. */
const char *tai_cpu_brand(void);
const char *tai_cpu_features(void);
/* "GenuineIntel-6-143-8": vendor, family, model and stepping (CPUID leaf 1,
 * display values), which tell CPU generations apart where the brand string
 * does not (virtual machines often say only "Intel(R) Xeon(R) Processor");
 * "unknown" where there is no CPUID. Static. */
const char *tai_cpu_signature(void);

/*
 * Packed product kernel: for the rows of panels [p0, p1) (rows below
 * `rows` only) and columns c in [0, ncols):
 *     y[c * y_stride + r] = dot(W row r, x column c).
 * wp: the packed matrix (panel p at wp + p * panel_bytes); xp: the prepared
 * activations of all ncols columns (tai_prep_groups); n elements per row.
 */
typedef void (*tai_gemm_fn)(const void *restrict wp, size_t panel_bytes,
                            const void *restrict xp, float *restrict y, int64_t y_stride,
                            int64_t n, int64_t rows, int64_t p0, int64_t p1, int64_t ncols);

/* The per-ISA versions of the other ops that take real time: the same
 * contracts as tai_attention and tai_silu_mul below (which are the scalar
 * entries). */
typedef void (*tai_attention_fn)(float *out, const float *q, const float *k_cache,
                                 const float *v_cache, int64_t n_pos, int64_t kv_stride,
                                 int n_head, int n_kv_head, int head_dim, float *att);
typedef void (*tai_silu_mul_fn)(float *gate, const float *up, int64_t n);
/* tai_add's contract. */
typedef void (*tai_add_fn)(float *x, const float *d, int64_t n);
/* tai_argmax's contract. */
typedef int64_t (*tai_argmax_fn)(const float *x, int64_t n);
/* tai_attention over binary16 caches (tai_attention_f16's contract). */
typedef void (*tai_attention_f16_fn)(float *out, const float *q, const uint16_t *k_cache,
                                     const uint16_t *v_cache, int64_t n_pos, int64_t kv_stride,
                                     int n_head, int n_kv_head, int head_dim, float *att);
/* tai_attention over 8-bit caches (tai_attention_q8's contract). */
typedef void (*tai_attention_q8_fn)(float *out, const float *q, const int8_t *k_cache,
                                    const float *k_scale, const int8_t *v_cache,
                                    const float *v_scale, int64_t n_pos, int64_t kv_stride,
                                    int n_head, int n_kv_head, int head_dim, float *att);
/* The table's attention_all (kind 0: float caches) or attention_f16_all
 * (kind 1: binary16 ones) for nq (at most TAI_ATT_MULTI_MAX) queries of one
 * sequence at consecutive positions: query i, at q + i * qd (its result at
 * out + i * qd), sees positions [0, n_pos0 + i); each query's result is
 * that function's for it alone, bit for bit, the cache's rows read once
 * for all of them. att: query i's scratch at att + i * att_per_q (at least
 * tai_attention_all_scratch(n_pos0 + nq - 1, ...) floats, a multiple of
 * 16). NULL in a table: call attention_all per query. */
#define TAI_ATT_MULTI_MAX 8
typedef void (*tai_attention_multi_fn)(float *out, const float *q, int64_t qd, const void *k_cache,
                                       const void *v_cache, int kind, int64_t n_pos0, int nq,
                                       int64_t kv_stride, int n_head, int n_kv_head, int head_dim,
                                       float *att, int64_t att_per_q);
/* dst[i] = src[i] as binary16, rounded to nearest even (tai_f32_to_f16_row). */
typedef void (*tai_f32_to_f16_fn)(const float *src, uint16_t *dst, int64_t n);
/* Same contract as tai_quantize_row_q8a (q8k: tai_quantize_row_q8k), bit
 * for bit. */
typedef void (*tai_quantize_q8a_fn)(const float *src, tai_block_q8a *dst, int64_t n);
typedef void (*tai_quantize_q8k_fn)(const float *src, tai_block_q8_k *dst, int64_t n);

typedef struct {
    tai_isa isa;
    tai_gemm_fn gemm[TAI_TYPE_COUNT]; /* NULL for unused ids */
    tai_attention_fn attention;
    tai_attention_f16_fn attention_f16;
    /* tai_attention_all's and tai_attention_f16_all's contracts (att:
     * tai_attention_all_scratch floats) */
    tai_attention_fn attention_all;
    tai_attention_f16_fn attention_f16_all;
    tai_attention_multi_fn attention_multi; /* NULL: none */
    /* tai_attention_q8 and tai_attention_q8_all */
    tai_attention_q8_fn attention_q8;
    tai_attention_q8_fn attention_q8_all;
    tai_f32_to_f16_fn f32_to_f16;
    tai_silu_mul_fn silu_mul;
    tai_silu_mul_fn gelu_mul; /* tai_gelu_mul's contract */
    tai_add_fn add;
    tai_argmax_fn argmax;
    tai_quantize_q8a_fn quantize_q8a;
    tai_quantize_q8k_fn quantize_q8k;
    /* the products' tuning (see "Per-machine tuning"); NULL: the
     * process-wide one. A copy of a table may point it at its own. */
    const struct tai_kernel_tuning_s *tuning;
} tai_kernels;

/* The table for `isa` (must be supported; falls back to scalar otherwise).
 * Borrowed, static. */
const tai_kernels *tai_kernels_get(tai_isa isa);

/* tai_prep_groups with the given quantizer (see above). */
void tai_prep_groups_with(tai_prep p, const float *x, int64_t n, int64_t ncols, void *dst,
                          int64_t g0, int64_t g1, tai_quantize_q8a_fn quantize,
                          tai_quantize_q8k_fn quantize_k);

/* ---- Per-machine tuning --------------------------------------------------
 *
 * Parameters of the kernels that depend on the micro-architecture, not on
 * the data: a single core reads memory fastest with a different amount of
 * software prefetch on different CPUs (none on a Cascade Lake-class Xeon,
 * two levels of it on newer ones, whose streaming products otherwise read at
 * 60-75% of the core's bandwidth). Process-wide, since they belong to the
 * machine; read by the kernels once per call, so they may be changed at any
 * time. They never change a result, only its speed.
 */
typedef struct tai_kernel_tuning_s {
    /* Streaming (matrix-vector) products: bytes ahead of the read position
     * prefetched into L1 and into L2, each 0 (none) or a multiple of 64 up
     * to TAI_TUNE_MAX_PREFETCH. */
    int prefetch_l1;
    int prefetch_l2;
    /* Blocked (matrix-matrix) products: K elements per slice of the panel
     * and activations kept in the caches at once; 0 = each kernel's
     * default (256 for float weights, 512 for block types), else a
     * multiple of 32 up to TAI_TUNE_MAX_K_SLICE. Partial sums are stored
     * and reloaded between slices exactly, so it never changes a result. */
    int k_slice;
} tai_kernel_tuning;

#define TAI_TUNE_MAX_PREFETCH 65536
#define TAI_TUNE_MAX_K_SLICE 1024

/* What the kernels use now (initially the CPU's default below). */
tai_kernel_tuning tai_kernels_tuning(void);
/* Sets it; returns 0, or -1 (nothing changed) if a value is out of range. */
int tai_kernels_set_tuning(const tai_kernel_tuning *t);
/* Whether every value of t is in range. */
int tai_kernels_tuning_valid(const tai_kernel_tuning *t);
/* A tuning of the calling thread's own that tai_kernels_tuning returns
 * instead of the process-wide one until it is reset (NULL): the matrix
 * driver sets a kernel table's tuning (tai_kernels.tuning) on each thread
 * for the duration of one product, so that one model's settings do not
 * change another's. t must stay valid while set. */
void tai_kernels_tuning_scope(const tai_kernel_tuning *t);
/* The default for this CPU without a tuning run: no software prefetch (the
 * hardware prefetcher alone, as measured best on older cores). */
tai_kernel_tuning tai_kernel_tuning_default(void);

/* Measures which tuning makes the streaming products of `isa` fastest on
 * this machine: matrix-vector products of F16, Q8_0 and Q4_0 weights read
 * from buffers larger than the last-level cache (`buffer_bytes`, 0: 768
 * MiB), on one thread, for each candidate setting in turn, `rounds` times
 * (0: 3). The candidate with the highest geometric mean of speed over the
 * three types wins; *out gets it, *gain its speed relative to no prefetch
 * (may be NULL). Takes a few seconds. Does not change the current tuning.
 * Returns 0, or -ENOMEM. */
int tai_kernels_tune(tai_isa isa, size_t buffer_bytes, int rounds, tai_kernel_tuning *out,
                     double *gain);

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
 * wp: W (rows x n of type t) packed whole by tai_pack_panels or
 * tai_pack_matrix, 64-byte aligned. X: ncols x n floats, column c at x + c * n.
 * Y: ncols x rows floats. `scratch` (64-byte aligned, at least
 * tai_matmul_scratch_bytes(t, n, ncols) bytes) receives the prepared
 * activations. pool may be NULL (single thread). Preparation is split across
 * the pool by column groups, the product by panels; each output element is
 * computed by one thread with the same arithmetic whatever the thread count,
 * so results do not depend on it.
 */
size_t tai_matmul_scratch_bytes(tai_type t, int64_t n, int64_t ncols);
void tai_matmul(const tai_kernels *k, tai_pool *pool, tai_type t, const void *wp,
                int64_t rows, int64_t n, const float *x, float *y, int64_t ncols,
                void *scratch);
/* Several products of one X (a block's q, k and v, or its gate and up):
 * Y_m = W_m X for m < n_mats (at most TAI_MATMUL_MANY), every W_m with n
 * inputs and a type whose activations are prepared alike (tai_prep_for),
 * each Y_m its own output. X is prepared once into scratch
 * (tai_matmul_scratch_bytes of the first type) and one dispatch on the
 * pool runs every product's panels, each split as tai_matmul splits it:
 * every output the bits tai_matmul gives it. Returns 0, having done
 * nothing, when an argument is bad or the types prepare X differently
 * (then call tai_matmul for each). */
#define TAI_MATMUL_MANY 4
int tai_matmul_many(const tai_kernels *k, tai_pool *pool, int n_mats, const tai_type *t,
                    const void *const *wp, const int64_t *rows, int64_t n, const float *x,
                    float *const *y, int64_t ncols, void *scratch);
/* Y = W X as tai_matmul, on AMX-BF16 tiles (kernels/matmul_bf16.c), for
 * W of type Q4_0, Q4_1 or Q8_0: every weight d * q (+ m) computed in one
 * fmaf and rounded to bfloat16 (nearest even), every activation rounded
 * likewise, each output the tile unit's float sum of the products over
 * the whole row, block of 32 after block. A column's result depends on its
 * own inputs alone (not on ncols, the other columns or the thread count),
 * but it is not tai_matmul's (int8 with per-block scales): within ~1% of
 * it. Faster than tai_matmul from a few dozen columns on (bench_kernels).
 * scratch: 64-byte aligned, tai_matmul_bf16_scratch_bytes(n, ncols, T)
 * bytes for a pool of T threads (NULL pool: 1). Returns 1, or 0 having
 * done nothing where the CPU has no AMX-BF16 (tai_bf16_ready), the type
 * is another or an argument is bad. */
int tai_bf16_ready(void);
size_t tai_matmul_bf16_scratch_bytes(int64_t n, int64_t ncols, int threads);
int tai_matmul_bf16(tai_pool *pool, tai_type t, const void *wp, int64_t rows, int64_t n,
                    const float *x, float *y, int64_t ncols, void *scratch);
/* The same product with W stored block-sparse (core/types.h "Block-sparse
 * packed weights", `keep` blocks per panel; kernels/sparse.c): equal bit
 * for bit to tai_matmul of W with its pruned blocks zero. scratch: 64-byte
 * aligned, tai_matmul_sparse_scratch_bytes(t, n, keep, ncols, threads)
 * bytes, where threads is at least the pool's size. */
size_t tai_matmul_sparse_scratch_bytes(tai_type t, int64_t n, int64_t keep, int64_t ncols,
                                       int threads);
void tai_matmul_sparse(const tai_kernels *k, tai_pool *pool, tai_type t, const void *wp,
                       int64_t rows, int64_t n, int64_t keep, const float *x, float *y,
                       int64_t ncols, void *scratch);
/* Packs the whole of row-major W into dst (tai_pack_bytes bytes, 64-byte
 * aligned), panels split across the pool (NULL: the calling thread). */
void tai_pack_matrix(tai_pool *pool, tai_type t, const void *w, int64_t rows, int64_t n,
                     void *dst);

/* ---- Other ops (scalar; float32 activations) ---------------------------- */

/* out = x / sqrt(mean(x^2) + eps) * w. out may alias x. */
void tai_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps);
/* In-place softmax over n values. */
void tai_softmax(float *x, int64_t n);
/* gate[i] = silu(gate[i]) * up[i]. */
void tai_silu_mul(float *gate, const float *up, int64_t n);
/* x[i] += d[i] (the residual stream's additions); x and d do not overlap
 * unless they are the same array. */
void tai_add(float *x, const float *d, int64_t n);
/* The first index of the largest of x[0..n), n >= 1, as the scan
 * `if (x[i] > x[best]) best = i` from best = 0 decides it: ties go to the
 * lowest index, a NaN is never chosen except at index 0 (nothing beats it). */
int64_t tai_argmax(const float *x, int64_t n);
/* gate[i] = gelu(gate[i]) * up[i] with GELU's tanh form (GeGLU):
 * gelu(g) = g / 2 * (1 + tanh(sqrt(2 / pi) * (g + 0.044715 g^3))), computed
 * as g / (1 + e^(-2 sqrt(2 / pi) (g + 0.044715 g^3))) (the same value,
 * without the cancellation of 1 + tanh for negative g). */
void tai_gelu_mul(float *gate, const float *up, int64_t n);
/*
 * Rotary position embedding, in place, on n_heads heads of head_dim floats
 * (contiguous): pairs (2i, 2i+1) within each head are rotated by
 * pos * theta_base^(-2i/rot_dim) for 2i < rot_dim ("normal" llama layout
 * as stored in GGUF, whose q/k weights the converter permuted for it).
 */
void tai_rope(float *x, int n_heads, int head_dim, int rot_dim, int64_t pos,
              float theta_base);
/* The same rotation in two steps, so that the angles of a position are
 * computed once for every head and layer: tai_rope_angles fills cs with
 * rot_dim / 2 (cos, sin) pairs for `pos`; tai_rope_apply rotates with them.
 * tai_rope(x, ...) == tai_rope_angles + tai_rope_apply, bit for bit. */
void tai_rope_angles(float *cs, int rot_dim, int64_t pos, float theta_base);
void tai_rope_apply(float *x, int n_heads, int head_dim, int rot_dim, const float *cs);
/* The "NeoX" layout (Qwen, Gemma and other architectures whose converter
 * does not permute q/k): pair i is (x[i], x[i + rot_dim / 2]), rotated by
 * the same angle as pair i above (cs as tai_rope_angles fills it). */
void tai_rope_apply_neox(float *x, int n_heads, int head_dim, int rot_dim, const float *cs);
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
/* tai_attention over caches of IEEE binary16 values (an F16 KV cache):
 * each is widened to float exactly and the sums are tai_attention's. */
void tai_attention_f16(float *out, const float *q, const uint16_t *k_cache,
                       const uint16_t *v_cache, int64_t n_pos, int64_t kv_stride,
                       int n_head, int n_kv_head, int head_dim, float *att);
/* tai_attention and tai_attention_f16 with the whole scratch of
 * tai_attention_all_scratch floats: the same result bit for bit, by
 * versions free to read the cache in another order (the AVX-512 ones sweep
 * every head over each row once; these are tai_attention and
 * tai_attention_f16). */
void tai_attention_all(float *out, const float *q, const float *k_cache, const float *v_cache,
                       int64_t n_pos, int64_t kv_stride, int n_head, int n_kv_head, int head_dim,
                       float *att);
void tai_attention_f16_all(float *out, const float *q, const uint16_t *k_cache,
                           const uint16_t *v_cache, int64_t n_pos, int64_t kv_stride,
                           int n_head, int n_kv_head, int head_dim, float *att);
/* tai_attention over 8-bit caches (an 8-bit KV cache, TINYAI_KV_Q8_0):
 * element i of a cache is code[i] * scale[i / 32] (the codes of 32
 * consecutive elements share a scale; tai_f32_to_q8_row makes them). The
 * scores are computed on integers, as the matrix products are: each query
 * head is quantized per 32 as their activations are (tai_quantize_row_q8a:
 * codes qc, scales dq), and
 *   score[p] = (sum over the head's blocks b, in order, from 0, of
 *               fmaf((float)(qc_b . code_b[p]), dq_b * scale_b[p], sum))
 *              * (1.0f / sqrtf(head_dim))
 * with the dot product of the 32 codes exact; then e[p] = exp(score[p] -
 * max) and V's sums on integers too: per chunk of TAI_ATT_Q8_VCHUNK
 * positions (from the first) and block b of 32 values,
 *   w[p] = e[p] * scale_b[p], M = max(0, w), w16[p] = rint(w[p] * (32767 / M)),
 *   acc[i] = fmaf((float)(sum over the chunk of w16[p] * code_i[p]), M / 32767, acc[i])
 * (the weights to 16 bits against the chunk's largest, the sums exact in
 * 32 bits; M = 0: nothing added), and out = acc * (1 / sum of e).
 * head_dim and kv_stride must be multiples of
 * 32 (a head's vectors never straddle two scales) and head_dim at most
 * TAI_ATT_Q8_MAX_HEAD; nothing is computed otherwise. k_scale and v_scale
 * are the scales of the elements k_cache and v_cache point at: a caller
 * that offsets k_cache by e elements (a multiple of 32) offsets k_scale by
 * e / 32. */
#define TAI_ATT_Q8_MAX_HEAD 1024
#define TAI_ATT_Q8_VCHUNK 128 /* positions sharing their weights' 16-bit scale */
void tai_attention_q8(float *out, const float *q, const int8_t *k_cache, const float *k_scale,
                      const int8_t *v_cache, const float *v_scale, int64_t n_pos,
                      int64_t kv_stride, int n_head, int n_kv_head, int head_dim, float *att);
/* tai_attention_q8 with tai_attention_all_scratch floats of scratch (the
 * same result bit for bit; see tai_attention_all). */
void tai_attention_q8_all(float *out, const float *q, const int8_t *k_cache,
                          const float *k_scale, const int8_t *v_cache, const float *v_scale,
                          int64_t n_pos, int64_t kv_stride, int n_head, int n_kv_head,
                          int head_dim, float *att);
/* n floats (a multiple of 32) to an 8-bit cache's codes and scales: per 32,
 * scale = max |x| / 127 and code = x * (1 / scale) rounded to the nearest,
 * ties to even, as tai_quantize_row_q8a's d and qs (so through any table's quantize_q8a,
 * `quantize`, the same bits; NULL: the portable one). */
void tai_f32_to_q8_row(tai_quantize_q8a_fn quantize, const float *src, int8_t *codes,
                       float *scales, int64_t n);
/* Floats of scratch tai_attention_f16_all and tai_attention_q8_all need
 * (and any table's versions): the scores, the V sums, an 8-bit cache's
 * query codes (12 floats a block of 32). */
static inline int64_t tai_attention_all_scratch(int64_t n_pos, int n_head, int head_dim) {
    return (int64_t)n_head * n_pos + (int64_t)n_head * 32 * ((head_dim + 15) / 16) + 16 +
           (int64_t)n_head * 12 * ((head_dim + 31) / 32);
}
/* n floats to binary16, rounded to nearest even (inf and NaN kept, values
 * past the range to inf): how K and V enter an F16 cache. */
void tai_f32_to_f16_row(const float *src, uint16_t *dst, int64_t n);
/* out[i] = dequantized row `row` of an embedding table (rows of n elems). */
void tai_embedding_row(tai_type t, const void *table, int64_t row, int64_t n,
                       float *out);

#ifdef __cplusplus
}
#endif

#endif /* TAI_KERNELS_KERNELS_H */
