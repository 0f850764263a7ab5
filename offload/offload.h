/*
 * offload/offload.h: the runtime's view of a device (layer: offload).
 *
 * A tai_device is a device's vtable (offload/device.h) with its context and
 * identity. The runtime calls ops through the tai_dev_* wrappers below,
 * which turn a device's failure into a TinyAIStatus whose message names the
 * device and the op ("device opencl:0 (NVIDIA H200): matmul: ..."). Ops are
 * enqueued in order; tai_dev_sync waits for them (see device.h).
 *
 * Not thread-safe: one thread drives a device at a time (the forward pass
 * of one model); a device's ops may use threads of their own.
 */
#ifndef TAI_OFFLOAD_OFFLOAD_H
#define TAI_OFFLOAD_OFFLOAD_H

#include <errno.h>
#include <stddef.h>

#include <tinyai/status.h>

#include "core/types.h"
#include "offload/device.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tai_device {
    const tai_device_ops *ops;
    void *ctx;
    tai_device_info info;
    /* Fault injection for tests: when >= 0, the op wrappers count it down
     * and the op that finds it at 0 fails as a device error (-1: off). */
    int fail_after;
} tai_device;

/* The failure fail_after injects. */
TinyAIStatus tai_dev_injected(tai_device *d, const char *op);

/* Takes ownership of ctx (destroyed through ops->destroy, also on failure):
 * checks the table's ABI version and size and that every slot the runtime
 * needs is present, and reads the device's info. *out is freed with
 * tai_device_close. */
TinyAIStatus tai_device_wrap(const tai_device_ops *ops, void *ctx, tai_device **out);
void tai_device_close(tai_device *d); /* accepts NULL */

/* A failed op: TINYAI_ERR_NOMEM for -ENOMEM, TINYAI_ERR_UNSUPPORTED for
 * -ENOTSUP, TINYAI_ERR_INVALID_ARG for -EINVAL, TINYAI_ERR_DEVICE otherwise,
 * with a message naming the device, the op and the device's own text. */
TinyAIStatus tai_dev_fail(const tai_device *d, const char *op, int rc);

#define TAI_DEV_CALL_(d, name, ...)                                      \
    do {                                                                 \
        if ((d)->fail_after >= 0 && (d)->fail_after-- == 0)              \
            return tai_dev_injected((d), #name);                         \
        const int rc_ = (d)->ops->name((d)->ctx, __VA_ARGS__);           \
        return rc_ == 0 ? TINYAI_OK : tai_dev_fail((d), #name, rc_);     \
    } while (0)

static inline TinyAIStatus tai_dev_sync(tai_device *d) {
    const int rc = d->ops->sync(d->ctx);
    return rc == 0 ? TINYAI_OK : tai_dev_fail(d, "sync", rc);
}
static inline TinyAIStatus tai_dev_upload(tai_device *d, tai_dref dst, const void *src,
                                          size_t bytes) {
    TAI_DEV_CALL_(d, upload, dst, src, bytes);
}
static inline TinyAIStatus tai_dev_download(tai_device *d, void *dst, tai_dref src,
                                            size_t bytes) {
    TAI_DEV_CALL_(d, download, dst, src, bytes);
}
static inline size_t tai_dev_matmul_scratch(tai_device *d, tai_type t, int64_t n, int64_t ncols) {
    return d->ops->matmul_scratch(d->ctx, (int)t, n, ncols);
}
static inline TinyAIStatus tai_dev_matmul(tai_device *d, tai_type t, tai_dref w, int64_t rows,
                                          int64_t n, tai_dref x, tai_dref y, int64_t ncols,
                                          tai_dref scratch) {
    TAI_DEV_CALL_(d, matmul, (int)t, w, rows, n, x, y, ncols, scratch);
}
/* Whether the device multiplies block-sparse matrices (device.h's optional
 * slots). */
static inline int tai_dev_has_sparse(const tai_device *d) {
    return d->ops->size >= offsetof(tai_device_ops, matmul_sparse) + sizeof d->ops->matmul_sparse &&
           d->ops->matmul_sparse && d->ops->matmul_sparse_scratch;
}
/* Scratch for a product of `w`'s kind (dense or block-sparse) on d; 0 if
 * d cannot run it. */
static inline size_t tai_dev_matmul_sparse_scratch(tai_device *d, tai_type t, int64_t n,
                                                   int64_t keep, int64_t ncols) {
    return tai_dev_has_sparse(d) ? d->ops->matmul_sparse_scratch(d->ctx, (int)t, n, keep, ncols)
                                 : 0;
}
static inline TinyAIStatus tai_dev_matmul_sparse(tai_device *d, tai_type t, tai_dref w,
                                                 int64_t rows, int64_t n, int64_t keep,
                                                 tai_dref x, tai_dref y, int64_t ncols,
                                                 tai_dref scratch) {
    if (!tai_dev_has_sparse(d)) return tai_dev_fail(d, "matmul_sparse", -ENOTSUP);
    TAI_DEV_CALL_(d, matmul_sparse, (int)t, w, rows, n, keep, x, y, ncols, scratch);
}
static inline TinyAIStatus tai_dev_rmsnorm(tai_device *d, tai_dref out, tai_dref x, tai_dref w,
                                           int64_t n, int64_t ncols, float eps) {
    TAI_DEV_CALL_(d, rmsnorm, out, x, w, n, ncols, eps);
}
static inline TinyAIStatus tai_dev_add(tai_device *d, tai_dref x, tai_dref dx, int64_t n) {
    TAI_DEV_CALL_(d, add, x, dx, n);
}
static inline TinyAIStatus tai_dev_rope(tai_device *d, tai_dref x, int64_t ncols,
                                        int64_t col_stride, int n_heads, int head_dim,
                                        int rot_dim, tai_dref cs) {
    TAI_DEV_CALL_(d, rope, x, ncols, col_stride, n_heads, head_dim, rot_dim, cs);
}
static inline TinyAIStatus tai_dev_swiglu(tai_device *d, tai_dref gate, tai_dref up, int64_t n) {
    TAI_DEV_CALL_(d, swiglu, gate, up, n);
}
static inline size_t tai_dev_attention_scratch(tai_device *d, int64_t max_pos, int n_head) {
    return d->ops->attention_scratch(d->ctx, max_pos, n_head);
}
static inline TinyAIStatus tai_dev_attention(tai_device *d, tai_dref out, tai_dref q,
                                             int64_t ncols, const tai_dref *k,
                                             const tai_dref *v, const int32_t *pos, int n_head,
                                             int n_kv_head, int head_dim, tai_dref scratch,
                                             size_t scratch_bytes) {
    TAI_DEV_CALL_(d, attention, out, q, ncols, k, v, pos, n_head, n_kv_head, head_dim, scratch,
                  scratch_bytes);
}
/* The optional ops of other architectures (device.h): a device without
 * the slot fails with TINYAI_ERR_UNSUPPORTED. */
#define TAI_DEV_HAS_(d, slot)                                                            \
    ((d)->ops->size >= offsetof(tai_device_ops, slot) + sizeof(d)->ops->slot &&          \
     (d)->ops->slot)
#define TAI_DEV_OPT_(d, name, ...)                                                       \
    do {                                                                                 \
        if (!TAI_DEV_HAS_(d, name)) return tai_dev_fail((d), #name, -ENOTSUP);           \
        TAI_DEV_CALL_(d, name, __VA_ARGS__);                                             \
    } while (0)
/* Products of prompt columns (device.h's matmul_prompt): in the device's
 * arithmetic for prompts where it has one, else as matmul. */
static inline int tai_dev_has_prompt(tai_device *d) {
    return TAI_DEV_HAS_(d, matmul_prompt) && TAI_DEV_HAS_(d, matmul_prompt_scratch);
}
static inline size_t tai_dev_matmul_prompt_scratch(tai_device *d, tai_type t, int64_t n, int64_t ncols) {
    return tai_dev_has_prompt(d) ? d->ops->matmul_prompt_scratch(d->ctx, (int)t, n, ncols)
                                 : tai_dev_matmul_scratch(d, t, n, ncols);
}
/* For calls of up to ncols columns (attention_scratch_cols where the
 * device has it). */
static inline size_t tai_dev_attention_scratch_cols(tai_device *d, int64_t max_pos, int n_head,
                                                    int64_t ncols) {
    return TAI_DEV_HAS_(d, attention_scratch_cols)
               ? d->ops->attention_scratch_cols(d->ctx, max_pos, n_head, ncols)
               : tai_dev_attention_scratch(d, max_pos, n_head);
}
static inline TinyAIStatus tai_dev_matmul_prompt(tai_device *d, tai_type t, tai_dref w, int64_t rows,
                                                 int64_t n, tai_dref x, tai_dref y, int64_t ncols,
                                                 tai_dref scratch) {
    if (!tai_dev_has_prompt(d)) return tai_dev_matmul(d, t, w, rows, n, x, y, ncols, scratch);
    TAI_DEV_CALL_(d, matmul_prompt, (int)t, w, rows, n, x, y, ncols, scratch);
}
/* Products of one x (device.h's matmul_many): together where the device
 * can, else one matmul each. */
static inline TinyAIStatus tai_dev_matmul_many(tai_device *d, int n_mats, const tai_type *t,
                                               const tai_dref *w, const int64_t *rows, int64_t n,
                                               tai_dref x, const tai_dref *y, int64_t ncols,
                                               tai_dref scratch) {
    if (TAI_DEV_HAS_(d, matmul_many) && n_mats <= TAI_DEV_MATMUL_MANY) {
        int types[TAI_DEV_MATMUL_MANY];
        for (int i = 0; i < n_mats; i++) types[i] = (int)t[i];
        TAI_DEV_CALL_(d, matmul_many, n_mats, types, w, rows, n, x, y, ncols, scratch);
    }
    for (int i = 0; i < n_mats; i++) {
        const TinyAIStatus st = tai_dev_matmul(d, t[i], w[i], rows[i], n, x, y[i], ncols, scratch);
        if (st != TINYAI_OK) return st;
    }
    return TINYAI_OK;
}
static inline TinyAIStatus tai_dev_rope_neox(tai_device *d, tai_dref x, int64_t ncols,
                                             int64_t col_stride, int n_heads, int head_dim,
                                             int rot_dim, tai_dref cs) {
    TAI_DEV_OPT_(d, rope_neox, x, ncols, col_stride, n_heads, head_dim, rot_dim, cs);
}
static inline TinyAIStatus tai_dev_geglu(tai_device *d, tai_dref gate, tai_dref up, int64_t n) {
    TAI_DEV_OPT_(d, geglu, gate, up, n);
}
static inline TinyAIStatus tai_dev_add_bias(tai_device *d, tai_dref x, tai_dref b, int64_t n,
                                            int64_t ncols) {
    TAI_DEV_OPT_(d, add_bias, x, b, n, ncols);
}
static inline TinyAIStatus tai_dev_attention_window(tai_device *d, tai_dref out, tai_dref q,
                                                    int64_t ncols, const tai_dref *k,
                                                    const tai_dref *v, const int32_t *pos,
                                                    int n_head, int n_kv_head, int head_dim,
                                                    int window, tai_dref scratch,
                                                    size_t scratch_bytes) {
    TAI_DEV_OPT_(d, attention_window, out, q, ncols, k, v, pos, n_head, n_kv_head, head_dim,
                 window, scratch, scratch_bytes);
}
static inline TinyAIStatus tai_dev_attention_f16(tai_device *d, tai_dref out, tai_dref q,
                                                 int64_t ncols, const tai_dref *k,
                                                 const tai_dref *v, const int32_t *pos,
                                                 int n_head, int n_kv_head, int head_dim,
                                                 int window, tai_dref scratch,
                                                 size_t scratch_bytes) {
    TAI_DEV_OPT_(d, attention_f16, out, q, ncols, k, v, pos, n_head, n_kv_head, head_dim, window,
                 scratch, scratch_bytes);
}
static inline TinyAIStatus tai_dev_to_f16(tai_device *d, tai_dref dst, tai_dref src, int64_t n) {
    TAI_DEV_OPT_(d, to_f16, dst, src, n);
}
static inline TinyAIStatus tai_dev_attention_q8(tai_device *d, tai_dref out, tai_dref q,
                                                int64_t ncols, const tai_dref *k,
                                                const tai_dref *v, const tai_dref *ks,
                                                const tai_dref *vs, const int32_t *pos,
                                                int n_head, int n_kv_head, int head_dim,
                                                int window, tai_dref scratch,
                                                size_t scratch_bytes) {
    TAI_DEV_OPT_(d, attention_q8, out, q, ncols, k, v, ks, vs, pos, n_head, n_kv_head, head_dim,
                 window, scratch, scratch_bytes);
}
static inline TinyAIStatus tai_dev_to_q8(tai_device *d, tai_dref dst, tai_dref dst_scale,
                                         tai_dref src, int64_t n) {
    TAI_DEV_OPT_(d, to_q8, dst, dst_scale, src, n);
}
/* Conversions into a binary16 (kind 1) or 8-bit (kind 2) cache
 * (device.h's to_cache_many): together where the device can, else one
 * to_f16 / to_q8 each. */
static inline TinyAIStatus tai_dev_to_cache_many(tai_device *d, int kind, int n_runs,
                                                 const tai_dref *dst, const tai_dref *dst_scale,
                                                 const tai_dref *src, const int64_t *count) {
    if (TAI_DEV_HAS_(d, to_cache_many)) {
        TAI_DEV_CALL_(d, to_cache_many, kind, n_runs, dst, dst_scale, src, count);
    }
    for (int r = 0; r < n_runs; r++) {
        const TinyAIStatus st = kind == 2 ? tai_dev_to_q8(d, dst[r], dst_scale[r], src[r], count[r])
                                          : tai_dev_to_f16(d, dst[r], src[r], count[r]);
        if (st != TINYAI_OK) return st;
    }
    return TINYAI_OK;
}
static inline TinyAIStatus tai_dev_embed(tai_device *d, tai_type t, tai_dref table, int64_t rows,
                                         int64_t n, const int32_t *tokens, int64_t ncols,
                                         tai_dref out) {
    TAI_DEV_CALL_(d, embed, (int)t, table, rows, n, tokens, ncols, out);
}
static inline TinyAIStatus tai_dev_copy(tai_device *d, tai_dref dst, tai_dref src, size_t bytes) {
    TAI_DEV_CALL_(d, copy, dst, src, bytes);
}

#ifdef __cplusplus
}
#endif

#endif
