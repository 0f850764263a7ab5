/*
 * offload/device.h: a compute device behind one versioned C vtable (layer:
 * offload). The CPU (kernels/), OpenCL and vendor plugins implement the same
 * table; the runtime runs a whole layer on one device by calling these ops
 * and never looks behind them.
 *
 * Conventions.
 *  - Every slot takes the device's own context first (`dev`, from its
 *    create function). Slots return 0 or a negative errno-style code
 *    (-ENOMEM, -EINVAL, -EIO, -ENOTSUP); `last_error` gives the device's
 *    text for the last failure on this thread.
 *  - Tensors are named by tai_dref: a device buffer and a byte offset. A
 *    device whose memory is the host's (`info.unified`) takes plain host
 *    pointers instead: buf NULL and off = the address.
 *  - Ops are enqueued in order; a device may run them asynchronously, and
 *    an op's failure may be reported by a later op or by `sync`. `sync`
 *    returns once every op enqueued before it is done, with the first
 *    failure since the last sync. A host pointer passed to an op or an
 *    upload must stay valid until then.
 *  - Activations are float32, column-major: column c of an [n] x ncols
 *    tensor starts at element c * n.
 *  - Weights are in the packed panel layout (core/types.h "Packed weights")
 *    on every device: its 16-row panels read as 64-byte rows serve SIMD
 *    lanes and coalesced GPU loads alike, so a layer image built once on the
 *    host is uploaded as is.
 *  - Optional slots may be NULL; `size` says which slots the device knows
 *    (a table from an older device is shorter).
 */
#ifndef TAI_OFFLOAD_DEVICE_H
#define TAI_OFFLOAD_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TAI_DEVICE_ABI 1

typedef enum {
    TAI_DEVICE_CPU = 0,
    TAI_DEVICE_GPU = 1,
    TAI_DEVICE_ACCELERATOR = 2,
    TAI_DEVICE_OTHER = 3,
} tai_device_kind;

/* Ops a device runs (tai_device_info.ops). */
enum {
    TAI_OP_MATMUL = 1u << 0,
    TAI_OP_RMSNORM = 1u << 1,
    TAI_OP_ADD = 1u << 2,
    TAI_OP_ROPE = 1u << 3,
    TAI_OP_ATTENTION = 1u << 4,
    TAI_OP_SWIGLU = 1u << 5,
    TAI_OP_EMBED = 1u << 6,
    TAI_OP_COPY = 1u << 7,
    TAI_OP_ALL = (1u << 8) - 1, /* a Llama block's */
    /* the optional slots of other architectures' blocks (set from the
     * table: a device has the bit when it has the slot) */
    TAI_OP_ROPE_NEOX = 1u << 8,
    TAI_OP_GEGLU = 1u << 9,
    TAI_OP_ADD_BIAS = 1u << 10,
    TAI_OP_ATTENTION_WINDOW = 1u << 11,
    TAI_OP_EXT_ALL = 0xFu << 8,
};

typedef struct {
    char name[64];    /* "cpu", "opencl:0", ... */
    char vendor[64];
    char version[96]; /* driver / runtime version */
    char model[128];  /* the hardware, as the device names it */
    int kind;         /* tai_device_kind */
    int unified;      /* its memory is the host's: drefs are host pointers */
    uint64_t mem_total, mem_free; /* bytes */
    uint32_t ops;     /* TAI_OP_* it runs */
    uint32_t types;   /* 1u << tai_type for each weight type matmul takes */
} tai_device_info;

typedef struct tai_dbuf tai_dbuf; /* the device's own */

typedef struct {
    tai_dbuf *buf; /* NULL on a unified device: off is a host address */
    size_t off;
} tai_dref;

static inline tai_dref tai_dref_host(const void *p) {
    tai_dref r = {NULL, (size_t)(uintptr_t)p};
    return r;
}
/* The host address a dref names on a unified device; NULL for a dref into
 * a device's own buffer. */
static inline void *tai_dref_host_ptr(tai_dref r) {
    return r.buf ? NULL : (void *)(uintptr_t)r.off;
}
static inline tai_dref tai_dref_at(tai_dref r, size_t bytes) {
    r.off += bytes;
    return r;
}

/* The most products of one input matmul_many takes. */
#define TAI_DEV_MATMUL_MANY 4

typedef struct tai_device_ops {
    uint32_t abi;  /* TAI_DEVICE_ABI it was built for */
    uint32_t size; /* sizeof(tai_device_ops) it was built with */

    /* ---- identity and lifetime ---- */
    void (*destroy)(void *dev);
    int (*info)(void *dev, tai_device_info *out);
    const char *(*last_error)(void *dev);

    /* ---- memory ---- */
    int (*buf_alloc)(void *dev, size_t bytes, tai_dbuf **out);
    void (*buf_free)(void *dev, tai_dbuf *b); /* accepts NULL */
    int (*upload)(void *dev, tai_dref dst, const void *src, size_t bytes);
    int (*download)(void *dev, void *dst, tai_dref src, size_t bytes); /* blocking */
    int (*sync)(void *dev);

    /* ---- ops of a Llama block ---- */

    /* Scratch bytes matmul needs for a weight type, n inputs, ncols columns. */
    size_t (*matmul_scratch)(void *dev, int type, int64_t n, int64_t ncols);
    /* y[c][r] = sum_k W[r][k] x[c][k]: W rows x n of `type`, packed; x ncols
     * columns of n floats, y ncols columns of `rows` floats. */
    int (*matmul)(void *dev, int type, tai_dref w, int64_t rows, int64_t n, tai_dref x,
                  tai_dref y, int64_t ncols, tai_dref scratch);
    /* out = x / sqrt(mean(x^2) + eps) * w, per column of n floats (out may
     * be x). */
    int (*rmsnorm)(void *dev, tai_dref out, tai_dref x, tai_dref w, int64_t n, int64_t ncols,
                   float eps);
    /* x += d, n floats. */
    int (*add)(void *dev, tai_dref x, tai_dref d, int64_t n);
    /* Rotary embedding in place: column c of x has n_heads heads of
     * head_dim floats, columns col_stride floats apart; its pairs (2i,
     * 2i+1), 2i < rot_dim, rotate by the (cos, sin) pairs of cs column c
     * (rot_dim floats per column). */
    int (*rope)(void *dev, tai_dref x, int64_t ncols, int64_t col_stride, int n_heads,
                int head_dim, int rot_dim, tai_dref cs);
    /* gate = silu(gate) * up, n floats. */
    int (*swiglu)(void *dev, tai_dref gate, tai_dref up, int64_t n);
    /* Causal attention: column c's query (n_head x head_dim floats, columns
     * n_head * head_dim apart in q and out) over positions [0, pos[c]] of
     * its own K and V caches k[c], v[c] (n_kv_head * head_dim floats per
     * position). Grouped-query: query head h reads kv head h / (n_head /
     * n_kv_head). k, v and pos are host arrays of ncols entries. */
    int (*attention)(void *dev, tai_dref out, tai_dref q, int64_t ncols, const tai_dref *k,
                     const tai_dref *v, const int32_t *pos, int n_head, int n_kv_head,
                     int head_dim, tai_dref scratch, size_t scratch_bytes);
    /* Scratch bytes attention needs for positions up to max_pos (exclusive)
     * and n_head query heads. */
    size_t (*attention_scratch)(void *dev, int64_t max_pos, int n_head);
    /* out column c = row tokens[c] of a packed rows x n table of `type`
     * (tokens: a host array, each in [0, rows)). */
    int (*embed)(void *dev, int type, tai_dref table, int64_t rows, int64_t n,
                 const int32_t *tokens, int64_t ncols, tai_dref out);
    /* bytes from src to dst, both on this device. */
    int (*copy)(void *dev, tai_dref dst, tai_dref src, size_t bytes);

    /* ---- optional (NULL, or past the table's size: the device has none) ---- */

    /* The matmul above with W block-sparse (core/types.h "Block-sparse
     * packed weights", `keep` blocks per panel); a layer holding such a
     * matrix runs only on a device that has these. */
    size_t (*matmul_sparse_scratch)(void *dev, int type, int64_t n, int64_t keep, int64_t ncols);
    int (*matmul_sparse)(void *dev, int type, tai_dref w, int64_t rows, int64_t n, int64_t keep,
                         tai_dref x, tai_dref y, int64_t ncols, tai_dref scratch);

    /* Ops of other architectures' blocks (runtime/model/arch.h); a layer
     * that needs one runs only on a device that has it. */

    /* rope with the "NeoX" pairs (i, i + rot_dim / 2), i < rot_dim / 2,
     * rotated by cs pair i (Qwen, Gemma). */
    int (*rope_neox)(void *dev, tai_dref x, int64_t ncols, int64_t col_stride, int n_heads,
                     int head_dim, int rot_dim, tai_dref cs);
    /* gate = gelu(gate) * up, n floats, GELU's tanh form (Gemma's GeGLU). */
    int (*geglu)(void *dev, tai_dref gate, tai_dref up, int64_t n);
    /* x[c][i] += b[i]: ncols columns of n floats (a product's bias). */
    int (*add_bias)(void *dev, tai_dref x, tai_dref b, int64_t n, int64_t ncols);
    /* attention with a sliding window: column c attends over positions
     * [max(0, pos[c] - window + 1), pos[c]] only (window >= 1). */
    int (*attention_window)(void *dev, tai_dref out, tai_dref q, int64_t ncols,
                            const tai_dref *k, const tai_dref *v, const int32_t *pos,
                            int n_head, int n_kv_head, int head_dim, int window,
                            tai_dref scratch, size_t scratch_bytes);

    /* An F16 KV cache (TINYAI_KV_F16): attention as above (window 0: every
     * position; else as attention_window) over caches of IEEE binary16
     * values, n_kv_head * head_dim of them per position; and n floats of
     * src written to dst as binary16, rounded to nearest even. */
    int (*attention_f16)(void *dev, tai_dref out, tai_dref q, int64_t ncols, const tai_dref *k,
                         const tai_dref *v, const int32_t *pos, int n_head, int n_kv_head,
                         int head_dim, int window, tai_dref scratch, size_t scratch_bytes);
    int (*to_f16)(void *dev, tai_dref dst, tai_dref src, int64_t n);

    /* An 8-bit KV cache (TINYAI_KV_Q8_0): attention as attention_f16 over
     * caches of codes (k, v) with a float scale per 32 of them (ks, vs: the
     * scales of the codes k and v point at; tai_attention_q8's elements);
     * and n floats of src (a multiple of 32) written as codes to dst and
     * their scales to dst_scale (tai_f32_to_q8_row). */
    int (*attention_q8)(void *dev, tai_dref out, tai_dref q, int64_t ncols, const tai_dref *k,
                        const tai_dref *v, const tai_dref *ks, const tai_dref *vs,
                        const int32_t *pos, int n_head, int n_kv_head, int head_dim, int window,
                        tai_dref scratch, size_t scratch_bytes);
    int (*to_q8)(void *dev, tai_dref dst, tai_dref dst_scale, tai_dref src, int64_t n);

    /* n_mats (1..TAI_DEV_MATMUL_MANY) products of one x, as matmul each:
     * y[m] = W[m] x, W[m] rows[m] x n of types[m], with one scratch of
     * matmul_scratch bytes for the largest; the same results as matmul for
     * each, in any order (a device may prepare x once and run them
     * together). */
    int (*matmul_many)(void *dev, int n_mats, const int *types, const tai_dref *w,
                       const int64_t *rows, int64_t n, tai_dref x, const tai_dref *y,
                       int64_t ncols, tai_dref scratch);

    /* n_runs conversions at once, as to_f16 (kind 1) or to_q8 (kind 2)
     * each: run r writes count[r] floats of src[r] to dst[r] (and, kind 2,
     * their scales to dst_scale[r]); the runs do not overlap. The same
     * values as one call each, in any order (a decoding step's new K and V
     * of every sequence, converted together rather than one by one). */
    int (*to_cache_many)(void *dev, int kind, int n_runs, const tai_dref *dst,
                         const tai_dref *dst_scale, const tai_dref *src, const int64_t *count);

    /* y = W x as matmul, in the device's arithmetic for prompts: the
     * runtime gives it the columns of sequences that bring two tokens or
     * more to a pass (a prompt's), and matmul those that bring one (a
     * generated token's), so that a token's arithmetic follows from its own
     * request, never from what shares its step. Scratch:
     * matmul_prompt_scratch bytes. NULL (either): matmul for every column. */
    int (*matmul_prompt)(void *dev, int type, tai_dref w, int64_t rows, int64_t n, tai_dref x,
                         tai_dref y, int64_t ncols, tai_dref scratch);
    size_t (*matmul_prompt_scratch)(void *dev, int type, int64_t n, int64_t ncols);

    /* attention_scratch for calls of up to ncols columns (a prompt's
     * columns may share reads of their cache, with room for several). NULL:
     * attention_scratch, whatever the columns. */
    size_t (*attention_scratch_cols)(void *dev, int64_t max_pos, int n_head, int64_t ncols);
} tai_device_ops;

#ifdef __cplusplus
}
#endif

#endif
