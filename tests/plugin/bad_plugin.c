/*
 * tests/plugin/bad_plugin.c: a plugin that misbehaves in one way, chosen
 * at build time (-DMODE_...), for the loader's tests. Otherwise a minimal
 * device: host memory, matrix products of F32 weights only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <tinyai/plugin.h>

#define EXPORT __attribute__((visibility("default")))
/* each mode leaves some of the pieces below unused */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-const-variable"

struct TinyAIPluginBuffer {
    uint64_t bytes;
    unsigned char *data;
};

static char err[128];

static void dev_close(void *dev) { (void)dev; }

static int32_t dev_info(void *dev, TinyAIPluginDeviceInfo *out) {
    (void)dev;
    const uint32_t size = out->struct_size;
    memset(out, 0, size);
    out->struct_size = size;
    strcpy(out->name, "bad0");
    strcpy(out->model, "a misbehaving test device");
    out->kind = TINYAI_PLUGIN_DEVICE_OTHER;
    out->ops = TINYAI_PLUGIN_OP_MATMUL;
    out->types = 1u << TINYAI_PLUGIN_F32;
    out->memory_total = out->memory_free = 1u << 20;
    return 0;
}

static const char *dev_last_error(void *dev) {
    (void)dev;
    return err;
}

static int32_t buffer_alloc(void *dev, uint64_t bytes, TinyAIPluginBuffer **out) {
    (void)dev;
    if (bytes > (1ull << 30)) { /* more than its memory */
        strcpy(err, "out of device memory");
        return -ENOMEM;
    }
    TinyAIPluginBuffer *b = calloc(1, sizeof *b);
    if (!b || !(b->data = calloc(1, bytes ? bytes : 1))) {
        free(b);
        return -ENOMEM;
    }
    b->bytes = bytes;
    *out = b;
    return 0;
}

static void buffer_free(void *dev, TinyAIPluginBuffer *b) {
    (void)dev;
    if (b) free(b->data);
    free(b);
}

static int32_t upload(void *dev, TinyAIPluginStream *s, TinyAIPluginRef dst, const void *src,
                      uint64_t bytes) {
    (void)dev, (void)s;
    if (!dst.buffer || dst.offset + bytes > dst.buffer->bytes) return -EINVAL;
    memcpy(dst.buffer->data + dst.offset, src, bytes);
    return 0;
}

static int32_t download(void *dev, TinyAIPluginStream *s, void *dst, TinyAIPluginRef src,
                        uint64_t bytes) {
    (void)dev, (void)s;
    if (!src.buffer || src.offset + bytes > src.buffer->bytes) return -EINVAL;
    memcpy(dst, src.buffer->data + src.offset, bytes);
    return 0;
}

static int32_t synchronize(void *dev, TinyAIPluginStream *s) {
    (void)dev, (void)s;
    return 0;
}

static uint64_t matmul_scratch(void *dev, int32_t type, int64_t n, int64_t ncols) {
    (void)dev, (void)type, (void)n, (void)ncols;
#if defined(MODE_HUGE_SCRATCH)
    return UINT64_MAX / 3; /* a garbage size */
#else
    return 0;
#endif
}

/* F32 packed panels: element (r, k) of panel p at k * 16 + r. */
static int32_t matmul(void *dev, TinyAIPluginStream *s, int32_t type, TinyAIPluginRef w,
                      int64_t rows, int64_t n, TinyAIPluginRef x, TinyAIPluginRef y,
                      int64_t ncols, TinyAIPluginRef scratch) {
    (void)dev, (void)s, (void)scratch;
#if defined(MODE_POSITIVE_STATUS)
    strcpy(err, "returned a positive status");
    return 5;
#endif
    if (type != TINYAI_PLUGIN_F32) return -ENOTSUP;
#if defined(MODE_UNFILLED_OUTPUT)
    (void)w, (void)rows, (void)n, (void)x, (void)y, (void)ncols;
    return 0; /* claims success, writes nothing */
#else
    const float *pw = (const float *)(void *)(w.buffer->data + w.offset);
    const float *px = (const float *)(void *)(x.buffer->data + x.offset);
    float *py = (float *)(void *)(y.buffer->data + y.offset);
    for (int64_t c = 0; c < ncols; c++)
        for (int64_t r = 0; r < rows; r++) {
            const float *panel = pw + (r / 16) * 16 * n;
            float acc = 0;
            for (int64_t k = 0; k < n; k++) acc += panel[k * 16 + r % 16] * px[c * n + k];
            py[c * rows + r] = acc;
        }
    return 0;
#endif
}

static const TinyAIPluginDeviceOps kOps = {
#if defined(MODE_SHORT_OPS)
    .struct_size = 16,
#else
    .struct_size = sizeof(TinyAIPluginDeviceOps),
#endif
    .close = dev_close,
    .info = dev_info,
    .last_error = dev_last_error,
    .buffer_alloc = buffer_alloc,
    .buffer_free = buffer_free,
    .upload = upload,
    .download = download,
    .synchronize = synchronize,
    .matmul_scratch = matmul_scratch,
#if !defined(MODE_MISSING_SLOT)
    .matmul = matmul,
#endif
};

static int32_t device_count(void *p) {
    (void)p;
#if defined(MODE_NEGATIVE_DEVICES)
    return -5;
#else
    return 1;
#endif
}

static int32_t device_open(void *p, int32_t index, const TinyAIPluginDeviceOps **ops, void **dev) {
    (void)p, (void)index;
#if defined(MODE_NULL_OPS)
    *ops = NULL;
#else
    *ops = &kOps;
#endif
    *dev = &err;
    return 0;
}

static void shutdown_plugin(void *p) { (void)p; }

#if defined(MODE_NO_ENTRY)
EXPORT int32_t not_the_entry_point(void) { return 0; }
#else
EXPORT int32_t tinyai_plugin_entry(const TinyAIPluginHost *host, TinyAIPlugin *out) {
#if defined(MODE_ENTRY_FAILS)
    host->log(host->host, TINYAI_PLUGIN_LOG_ERROR, "bad plugin: no hardware here");
    return -EIO;
#endif
    (void)host;
    out->abi_major = TINYAI_PLUGIN_ABI_MAJOR;
    out->abi_minor = TINYAI_PLUGIN_ABI_MINOR;
#if defined(MODE_MAJOR2)
    out->abi_major = 2;
#endif
#if defined(MODE_TINY_TABLE)
    out->struct_size = 8;
#else
    out->struct_size = sizeof *out;
#endif
#if defined(MODE_BAD_NAME)
    out->name = "Bad Name!";
#else
    out->name = "bad";
#endif
    out->version = "0";
    out->plugin = NULL;
#if !defined(MODE_NULL_SLOTS)
    out->device_count = device_count;
#endif
    out->device_open = device_open;
    out->shutdown = shutdown_plugin;
    return 0;
}
#endif
