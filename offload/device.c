/* offload/device.c: wrapping a device's vtable for the runtime (layer: offload). */
#include "offload/offload.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* The slots the runtime calls; a table without one of them is refused. */
#define REQUIRED(X)                                                                     \
    X(destroy) X(info) X(buf_alloc) X(buf_free) X(upload) X(download) X(sync)            \
        X(matmul_scratch) X(matmul) X(rmsnorm) X(add) X(rope) X(swiglu) X(attention)    \
            X(attention_scratch) X(embed) X(copy)

/* Whether the device's table (ops->size bytes) has `slot`, set. */
#define HAS(ops, slot) \
    ((ops)->size >= offsetof(tai_device_ops, slot) + sizeof(ops)->slot && (ops)->slot)

static void drop(const tai_device_ops *ops, void *ctx) {
    if (HAS(ops, destroy)) ops->destroy(ctx);
}

TinyAIStatus tai_device_wrap(const tai_device_ops *ops, void *ctx, tai_device **out) {
    *out = NULL;
    if (!ops) return tai_error(TINYAI_ERR_INVALID_ARG, "device: no operation table");
    if (ops->abi != TAI_DEVICE_ABI) {
        const unsigned abi = ops->abi;
        drop(ops, ctx);
        return tai_error(TINYAI_ERR_UNSUPPORTED,
                         "device: operation table of ABI version %u, this TinyAI speaks %d", abi,
                         TAI_DEVICE_ABI);
    }
#define CHECK(slot)                                                                        \
    if (!HAS(ops, slot)) {                                                                 \
        drop(ops, ctx);                                                                    \
        return tai_error(TINYAI_ERR_UNSUPPORTED, "device: operation table lacks '%s'", #slot); \
    }
    REQUIRED(CHECK)
#undef CHECK
    tai_device *d = calloc(1, sizeof *d);
    if (!d) {
        ops->destroy(ctx);
        return tai_error(TINYAI_ERR_NOMEM, "device: out of memory");
    }
    d->ops = ops;
    d->ctx = ctx;
    d->fail_after = -1;
    const int rc = ops->info(ctx, &d->info);
    if (rc != 0) {
        TinyAIStatus st = tai_dev_fail(d, "info", rc);
        tai_device_close(d);
        return st;
    }
    /* the optional ops are the slots the table has */
    d->info.ops &= TAI_OP_ALL;
    if (HAS(ops, rope_neox)) d->info.ops |= TAI_OP_ROPE_NEOX;
    if (HAS(ops, geglu)) d->info.ops |= TAI_OP_GEGLU;
    if (HAS(ops, add_bias)) d->info.ops |= TAI_OP_ADD_BIAS;
    if (HAS(ops, attention_window)) d->info.ops |= TAI_OP_ATTENTION_WINDOW;
    d->info.name[sizeof d->info.name - 1] = 0;
    d->info.vendor[sizeof d->info.vendor - 1] = 0;
    d->info.version[sizeof d->info.version - 1] = 0;
    d->info.model[sizeof d->info.model - 1] = 0;
    *out = d;
    return TINYAI_OK;
}

void tai_device_close(tai_device *d) {
    if (!d) return;
    d->ops->destroy(d->ctx);
    free(d);
}

TinyAIStatus tai_dev_fail(const tai_device *d, const char *op, int rc) {
    const TinyAIStatus st = rc == -ENOMEM    ? TINYAI_ERR_NOMEM
                            : rc == -ENOTSUP ? TINYAI_ERR_UNSUPPORTED
                            : rc == -EINVAL  ? TINYAI_ERR_INVALID_ARG
                                             : TINYAI_ERR_DEVICE;
    const char *text = HAS(d->ops, last_error) ? d->ops->last_error(d->ctx) : NULL;
    if (!text || !*text) text = strerror(rc < 0 ? -rc : rc);
    const char *name = d->info.name[0] ? d->info.name : "?";
    if (d->info.model[0])
        return tai_error(st, "device %s (%s): %s: %s", name, d->info.model, op, text);
    return tai_error(st, "device %s: %s: %s", name, op, text);
}

TinyAIStatus tai_dev_injected(tai_device *d, const char *op) {
    return tai_error(TINYAI_ERR_DEVICE, "device %s: %s: injected failure (test)", d->info.name, op);
}
