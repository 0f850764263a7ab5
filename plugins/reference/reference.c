/*
 * plugins/reference: the portable reference plugin (layer: plugins). Plain
 * C11, scalar code, device memory taken from the host through the host
 * table; written only against <tinyai/plugin.h> and docs/PLUGINS.md, to
 * show that they are enough to implement a device. It runs every op of
 * the ABI synchronously (a stream is a name; every op is done when it
 * returns), checks every tensor against its buffer's bounds, and multiplies
 * block-type weights the way TinyAI's CPU does (activations quantized to
 * 8-bit codes per 32 values), so its results match the CPU's to the order
 * of float sums.
 *
 * Options ("key=value;..."), for testing TinyAI against a device that is
 * small, partial or failing:
 *   devices=N      how many devices it reports (default 1, at most 8)
 *   memory=BYTES   each device's memory (default 1 GiB); allocations past
 *                  it fail with -ENOMEM
 *   ops=LIST       the ops it claims, comma-separated names (default all):
 *                  matmul, rmsnorm, add, rope, attention, swiglu, embed, copy
 *   fail_after=N   the N+1-th op of each device fails with -EIO (default never)
 *   stall_after=N  the N+1-th op of each device never returns: a device that
 *                  stopped answering (default never)
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tinyai/plugin.h>

#include "plugins/common/panels.h"

#define MAX_DEVICES 8
#ifndef REFERENCE_NAME /* the tests build it under other names too */
#define REFERENCE_NAME "reference"
#endif

struct TinyAIPluginBuffer {
    uint64_t bytes;
    unsigned char *data;
    TinyAIPluginBuffer *prev, *next; /* the device's list: close frees what is left */
};
struct TinyAIPluginStream {
    int unused;
};
struct TinyAIPluginEvent {
    int recorded;
};

typedef struct {
    TinyAIPluginHost host;
    int n_devices;
    uint64_t memory;
    uint32_t ops;
    long fail_after, stall_after;
    char err[256];
} plugin;

typedef struct {
    plugin *p;
    int index;
    TinyAIPluginBuffer *buffers;
    uint64_t used;
    long ops_run;
    char err[512];
} device;

/* ---- errors ------------------------------------------------------------ */

static int32_t fail(device *d, int32_t rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err, sizeof d->err, fmt, ap);
    va_end(ap);
    return rc;
}

/* Counts an op; the injected failure of fail_after. */
static int32_t op_start(device *d, const char *op) {
    const long n = d->ops_run++;
    if (d->p->stall_after >= 0 && n >= d->p->stall_after)
        for (;;) sleep(3600); /* the injected stall: never returns */
    if (d->p->fail_after >= 0 && n >= d->p->fail_after)
        return fail(d, -EIO, "injected failure (fail_after=%ld, at %s)", d->p->fail_after, op);
    return 0;
}

/* The bytes at r, checked against its buffer. */
static unsigned char *at(device *d, TinyAIPluginRef r, uint64_t bytes, const char *what,
                         int32_t *rc) {
    if (!r.buffer) {
        *rc = fail(d, -EINVAL, "%s: not a buffer of this device", what);
        return NULL;
    }
    if (r.offset > r.buffer->bytes || bytes > r.buffer->bytes - r.offset) {
        *rc = fail(d, -EINVAL, "%s: %llu bytes at offset %llu overrun a buffer of %llu", what,
                   (unsigned long long)bytes, (unsigned long long)r.offset,
                   (unsigned long long)r.buffer->bytes);
        return NULL;
    }
    return r.buffer->data + r.offset;
}

#define AT(var, type, ref, bytes, what)                                \
    type *var = (type *)(void *)at(d, ref, (uint64_t)(bytes), what, &rc); \
    if (!var) return rc

/* ---- the packed weight layout (docs/PLUGINS.md, "Weights") -------------- */

static float half_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023;
    uint32_t bits;
    if (e == 0) {
        if (m == 0) {
            bits = sign;
        } else { /* subnormal: m * 2^-24 */
            float f = (float)m * (1.0f / 16777216.0f);
            return sign ? -f : f;
        }
    } else if (e == 31) {
        bits = sign | 0x7f800000u | (m << 13);
    } else {
        bits = sign | ((e + 112) << 23) | (m << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* Block b of row r (within its panel at pw): the 32 integer codes with the
 * bias removed (Q8_0 q - 128, Q4_0 q - 8, Q4_1 q), the scale and the
 * minimum (Q4_1). */
static void block_codes(int32_t t, const unsigned char *pw, int64_t b, int r, int *q, float *dd,
                        float *mm) {
    const unsigned char *pair = pw + (uint64_t)(b >> 1) * pair_bytes(t);
    const unsigned char *codes = pair + (uint64_t)(b & 1) * code_bytes(t);
    const unsigned char *scales = pair + 2 * code_bytes(t) + (uint64_t)(b & 1) * 32;
    *dd = half_to_float(rd16(scales + 2 * r));
    *mm = t == TINYAI_PLUGIN_Q4_1 ? half_to_float(rd16(scales + 64 + 2 * r)) : 0.0f;
    if (t == TINYAI_PLUGIN_Q8_0) {
        for (int g = 0; g < 8; g++)
            for (int k = 0; k < 4; k++) q[4 * g + k] = (int)codes[g * 64 + r * 4 + k] - 128;
        return;
    }
    const int bias = t == TINYAI_PLUGIN_Q4_0 ? 8 : 0;
    for (int j = 0; j < 4; j++)
        for (int k = 0; k < 4; k++) {
            const int c = codes[j * 64 + r * 4 + k];
            q[8 * j + k] = (c & 15) - bias;
            q[8 * j + 4 + k] = (c >> 4) - bias;
        }
}

/* Element k of row r of a float panel. */
static float float_at(int32_t t, const unsigned char *pw, int64_t k, int r) {
    const uint64_t i = (uint64_t)k * PANEL + (uint64_t)r;
    if (t == TINYAI_PLUGIN_F16) return half_to_float(rd16(pw + 2 * i));
    float f;
    memcpy(&f, pw + 4 * i, sizeof f);
    return f;
}

/* ---- identity, memory ---------------------------------------------------- */

static const char *const op_names[] = {"matmul", "rmsnorm", "add",   "rope",
                                       "attention", "swiglu", "embed", "copy"};

static void buffer_free(void *dev, TinyAIPluginBuffer *b);

static void dev_close(void *dev) {
    device *d = dev;
    while (d->buffers) buffer_free(d, d->buffers);
    free(d);
}

static int32_t dev_info(void *dev, TinyAIPluginDeviceInfo *out) {
    device *d = dev;
    if (!out || out->struct_size < offsetof(TinyAIPluginDeviceInfo, memory_free) + 8)
        return fail(d, -EINVAL, "info: a struct of %u bytes", out ? out->struct_size : 0);
    const uint32_t size = out->struct_size;
    TinyAIPluginDeviceInfo i;
    memset(&i, 0, sizeof i);
    i.struct_size = size;
    i.kind = TINYAI_PLUGIN_DEVICE_OTHER;
    snprintf(i.name, sizeof i.name, "ref%d", d->index);
    snprintf(i.vendor, sizeof i.vendor, "TinyAI");
    snprintf(i.version, sizeof i.version, "reference plugin, ABI %d.%d", TINYAI_PLUGIN_ABI_MAJOR,
             TINYAI_PLUGIN_ABI_MINOR);
    snprintf(i.model, sizeof i.model, "scalar C on the host");
    i.unified = 0;
    i.ops = d->p->ops;
    i.types = 1u << TINYAI_PLUGIN_F32 | 1u << TINYAI_PLUGIN_F16 | 1u << TINYAI_PLUGIN_Q4_0 |
              1u << TINYAI_PLUGIN_Q4_1 | 1u << TINYAI_PLUGIN_Q8_0;
    i.memory_total = d->p->memory;
    i.memory_free = d->p->memory - d->used;
    memcpy(out, &i, size < sizeof i ? size : sizeof i);
    return 0;
}

static const char *dev_last_error(void *dev) { return ((device *)dev)->err; }

static int32_t buffer_alloc(void *dev, uint64_t bytes, TinyAIPluginBuffer **out) {
    device *d = dev;
    if (!out) return fail(d, -EINVAL, "buffer_alloc: NULL output");
    *out = NULL;
    if (bytes > d->p->memory - d->used)
        return fail(d, -ENOMEM, "buffer_alloc: %llu bytes, %llu of %llu free",
                    (unsigned long long)bytes, (unsigned long long)(d->p->memory - d->used),
                    (unsigned long long)d->p->memory);
    TinyAIPluginBuffer *b = d->p->host.host_alloc(d->p->host.host, sizeof *b);
    unsigned char *data = d->p->host.host_alloc(d->p->host.host, bytes ? bytes : 1);
    if (!b || !data) {
        d->p->host.host_free(d->p->host.host, b);
        d->p->host.host_free(d->p->host.host, data);
        return fail(d, -ENOMEM, "buffer_alloc: %llu bytes: out of host memory",
                    (unsigned long long)bytes);
    }
    b->bytes = bytes;
    b->data = data;
    b->prev = NULL;
    b->next = d->buffers;
    if (d->buffers) d->buffers->prev = b;
    d->buffers = b;
    d->used += bytes;
    *out = b;
    return 0;
}

static void buffer_free(void *dev, TinyAIPluginBuffer *b) {
    device *d = dev;
    if (!b) return;
    if (b->prev) b->prev->next = b->next;
    else d->buffers = b->next;
    if (b->next) b->next->prev = b->prev;
    d->used -= b->bytes;
    d->p->host.host_free(d->p->host.host, b->data);
    d->p->host.host_free(d->p->host.host, b);
}

static int32_t upload(void *dev, TinyAIPluginStream *s, TinyAIPluginRef dst, const void *src,
                      uint64_t bytes) {
    device *d = dev;
    (void)s;
    int32_t rc = op_start(d, "upload");
    if (rc) return rc;
    AT(p, unsigned char, dst, bytes, "upload destination");
    if (bytes && !src) return fail(d, -EINVAL, "upload: NULL source");
    if (bytes) memcpy(p, src, bytes);
    return 0;
}

static int32_t download(void *dev, TinyAIPluginStream *s, void *dst, TinyAIPluginRef src,
                        uint64_t bytes) {
    device *d = dev;
    (void)s;
    int32_t rc = op_start(d, "download");
    if (rc) return rc;
    AT(p, const unsigned char, src, bytes, "download source");
    if (bytes && !dst) return fail(d, -EINVAL, "download: NULL destination");
    if (bytes) memcpy(dst, p, bytes);
    return 0;
}

static int32_t synchronize(void *dev, TinyAIPluginStream *s) {
    (void)dev, (void)s;
    return 0; /* every op is done when it returns */
}

/* ---- ops ------------------------------------------------------------------ */

static bool claims(device *d, uint32_t op) { return (d->p->ops & op) != 0; }

#define CLAIM(op, name)                                                     \
    do {                                                                    \
        if (!claims(d, op)) return fail(d, -ENOTSUP, "%s: not claimed", name); \
        int32_t rc_ = op_start(d, name);                                    \
        if (rc_) return rc_;                                                \
    } while (0)

static uint64_t matmul_scratch(void *dev, int32_t type, int64_t n, int64_t ncols) {
    (void)dev;
    if (!block_type(type) || n <= 0 || ncols <= 0) return 0;
    return (uint64_t)(n / QK) * (uint64_t)ncols * (8 + QK); /* (d, d * sum), codes */
}

/* TinyAI's activation quantizer: per 32 values d = amax / 127, q = x * (1 /
 * d) (x / d where 1 / d overflows) to the nearest integer, ties to even, in
 * [-127, 127]. */
static void quantize(const float *x, int64_t n, float *ds, int8_t *qs) {
    for (int64_t b = 0; b < n / QK; b++) {
        float amax = 0.0f;
        for (int i = 0; i < QK; i++)
            if (fabsf(x[b * QK + i]) > amax) amax = fabsf(x[b * QK + i]);
        const float dd = amax / 127.0f, id = dd != 0.0f ? 1.0f / dd : 0.0f;
        int sum = 0;
        for (int i = 0; i < QK; i++) {
            const float xi = isinf(id) ? x[b * QK + i] / dd : x[b * QK + i] * id;
            float v = dd != 0.0f ? roundf(xi) : 0.0f;
            if (fabsf(v - xi) == 0.5f) v = 2.0f * roundf(0.5f * xi); /* a tie: to even */
            int q = v > 127.0f ? 127 : v < -127.0f ? -127 : (int)v;
            qs[b * QK + i] = (int8_t)q;
            sum += q;
        }
        ds[2 * b] = dd;
        ds[2 * b + 1] = dd * (float)sum;
    }
}

static int32_t matmul(void *dev, TinyAIPluginStream *s, int32_t type, TinyAIPluginRef w,
                      int64_t rows, int64_t n, TinyAIPluginRef x, TinyAIPluginRef y,
                      int64_t ncols, TinyAIPluginRef scratch) {
    device *d = dev;
    (void)s;
    CLAIM(TINYAI_PLUGIN_OP_MATMUL, "matmul");
    const uint64_t pb = panel_bytes(type, n);
    if (pb == 0 || rows <= 0 || ncols <= 0 || rows > (1 << 30) || ncols > (1 << 30))
        return fail(d, -EINVAL, "matmul: type %d, %lld x %lld, %lld columns", (int)type,
                    (long long)rows, (long long)n, (long long)ncols);
    int32_t rc = 0;
    AT(pw, const unsigned char, w, matrix_bytes(type, rows, n), "matmul weights");
    AT(px, const float, x, (uint64_t)n * (uint64_t)ncols * 4, "matmul input");
    AT(py, float, y, (uint64_t)rows * (uint64_t)ncols * 4, "matmul output");
    if (!block_type(type)) {
        for (int64_t c = 0; c < ncols; c++)
            for (int64_t r = 0; r < rows; r++) {
                const unsigned char *panel = pw + (uint64_t)(r / PANEL) * pb;
                float acc = 0.0f;
                for (int64_t k = 0; k < n; k++)
                    acc += float_at(type, panel, k, (int)(r % PANEL)) * px[c * n + k];
                py[c * rows + r] = acc;
            }
        return 0;
    }
    const int64_t nb = n / QK;
    AT(ds, float, scratch, (uint64_t)nb * (uint64_t)ncols * 8, "matmul scratch");
    int8_t *qs = (int8_t *)(ds + 2 * nb * ncols);
    if (!at(d, scratch, matmul_scratch(dev, type, n, ncols), "matmul scratch", &rc)) return rc;
    for (int64_t c = 0; c < ncols; c++) quantize(px + c * n, n, ds + 2 * nb * c, qs + nb * QK * c);
    for (int64_t c = 0; c < ncols; c++)
        for (int64_t r = 0; r < rows; r++) {
            const unsigned char *panel = pw + (uint64_t)(r / PANEL) * pb;
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                int q[QK];
                float dd, mm;
                block_codes(type, panel, b, (int)(r % PANEL), q, &dd, &mm);
                const int8_t *xq = qs + (nb * c + b) * QK;
                int isum = 0;
                for (int i = 0; i < QK; i++) isum += q[i] * xq[i];
                const float *xd = ds + 2 * (nb * c + b);
                acc += dd * xd[0] * (float)isum + mm * xd[1];
            }
            py[c * rows + r] = acc;
        }
    return 0;
}

static int32_t rmsnorm(void *dev, TinyAIPluginStream *s, TinyAIPluginRef out, TinyAIPluginRef x,
                       TinyAIPluginRef w, int64_t n, int64_t ncols, float eps) {
    device *d = dev;
    (void)s;
    CLAIM(TINYAI_PLUGIN_OP_RMSNORM, "rmsnorm");
    if (n <= 0 || ncols <= 0) return fail(d, -EINVAL, "rmsnorm: %lld x %lld", (long long)n, (long long)ncols);
    int32_t rc = 0;
    AT(po, float, out, (uint64_t)n * (uint64_t)ncols * 4, "rmsnorm output");
    AT(px, const float, x, (uint64_t)n * (uint64_t)ncols * 4, "rmsnorm input");
    AT(pw, const float, w, (uint64_t)n * 4, "rmsnorm weights");
    for (int64_t c = 0; c < ncols; c++) {
        double ss = 0.0;
        for (int64_t i = 0; i < n; i++) ss += (double)px[c * n + i] * px[c * n + i];
        const float scale = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
        for (int64_t i = 0; i < n; i++) po[c * n + i] = px[c * n + i] * scale * pw[i];
    }
    return 0;
}

static int32_t add(void *dev, TinyAIPluginStream *s, TinyAIPluginRef x, TinyAIPluginRef dd,
                   int64_t n) {
    device *d = dev;
    (void)s;
    CLAIM(TINYAI_PLUGIN_OP_ADD, "add");
    if (n < 0) return fail(d, -EINVAL, "add: n = %lld", (long long)n);
    int32_t rc = 0;
    AT(px, float, x, (uint64_t)n * 4, "add x");
    AT(pd, const float, dd, (uint64_t)n * 4, "add operand");
    for (int64_t i = 0; i < n; i++) px[i] += pd[i];
    return 0;
}

static int32_t rope(void *dev, TinyAIPluginStream *s, TinyAIPluginRef x, int64_t ncols,
                    int64_t col_stride, int32_t n_heads, int32_t head_dim, int32_t rot_dim,
                    TinyAIPluginRef cs) {
    device *d = dev;
    (void)s;
    CLAIM(TINYAI_PLUGIN_OP_ROPE, "rope");
    if (ncols <= 0 || n_heads <= 0 || head_dim <= 0 || rot_dim < 0 ||
        col_stride < (int64_t)n_heads * head_dim)
        return fail(d, -EINVAL, "rope: bad shape");
    const int rd = rot_dim > head_dim ? head_dim : rot_dim;
    int32_t rc = 0;
    AT(px, float, x, ((uint64_t)(ncols - 1) * (uint64_t)col_stride + (uint64_t)n_heads * head_dim) * 4,
       "rope x");
    AT(pc, const float, cs, (uint64_t)ncols * (uint64_t)rot_dim * 4, "rope angles");
    for (int64_t c = 0; c < ncols; c++)
        for (int h = 0; h < n_heads; h++) {
            float *p = px + c * col_stride + (int64_t)h * head_dim;
            const float *a = pc + c * rot_dim;
            for (int i = 0; 2 * i + 1 < rd; i++) {
                const float co = a[2 * i], si = a[2 * i + 1], x0 = p[2 * i], x1 = p[2 * i + 1];
                p[2 * i] = x0 * co - x1 * si;
                p[2 * i + 1] = x0 * si + x1 * co;
            }
        }
    return 0;
}

static int32_t swiglu(void *dev, TinyAIPluginStream *s, TinyAIPluginRef gate, TinyAIPluginRef up,
                      int64_t n) {
    device *d = dev;
    (void)s;
    CLAIM(TINYAI_PLUGIN_OP_SWIGLU, "swiglu");
    if (n < 0) return fail(d, -EINVAL, "swiglu: n = %lld", (long long)n);
    int32_t rc = 0;
    AT(pg, float, gate, (uint64_t)n * 4, "swiglu gate");
    AT(pu, const float, up, (uint64_t)n * 4, "swiglu up");
    for (int64_t i = 0; i < n; i++) pg[i] = pg[i] / (1.0f + expf(-pg[i])) * pu[i];
    return 0;
}

static uint64_t attention_scratch(void *dev, int64_t max_pos, int32_t n_head) {
    (void)dev, (void)n_head;
    return max_pos > 0 ? (uint64_t)max_pos * 4 : 4;
}

static int32_t attention(void *dev, TinyAIPluginStream *s, TinyAIPluginRef out, TinyAIPluginRef q,
                         int64_t ncols, const TinyAIPluginRef *k, const TinyAIPluginRef *v,
                         const int32_t *pos, int32_t n_head, int32_t n_kv_head, int32_t head_dim,
                         TinyAIPluginRef scratch, uint64_t scratch_bytes) {
    device *d = dev;
    (void)s;
    CLAIM(TINYAI_PLUGIN_OP_ATTENTION, "attention");
    if (ncols <= 0 || n_head <= 0 || n_kv_head <= 0 || head_dim <= 0 || n_head % n_kv_head ||
        !k || !v || !pos)
        return fail(d, -EINVAL, "attention: bad shape or NULL arrays");
    const int64_t width = (int64_t)n_head * head_dim, kvw = (int64_t)n_kv_head * head_dim;
    int32_t rc = 0;
    AT(po, float, out, (uint64_t)ncols * (uint64_t)width * 4, "attention output");
    AT(pq, const float, q, (uint64_t)ncols * (uint64_t)width * 4, "attention query");
    const int group = n_head / n_kv_head;
    const double scale = 1.0 / sqrt((double)head_dim);
    for (int64_t c = 0; c < ncols; c++) {
        if (pos[c] < 0) return fail(d, -EINVAL, "attention: position %d", (int)pos[c]);
        const int64_t np = (int64_t)pos[c] + 1;
        if ((uint64_t)np * 4 > scratch_bytes)
            return fail(d, -EINVAL, "attention: %lld positions, scratch of %llu bytes",
                        (long long)np, (unsigned long long)scratch_bytes);
        AT(att, float, scratch, (uint64_t)np * 4, "attention scratch");
        AT(kc, const float, k[c], (uint64_t)np * (uint64_t)kvw * 4, "attention keys");
        AT(vc, const float, v[c], (uint64_t)np * (uint64_t)kvw * 4, "attention values");
        for (int h = 0; h < n_head; h++) {
            const float *qh = pq + c * width + (int64_t)h * head_dim;
            const int64_t kv = (int64_t)(h / group) * head_dim;
            float *oh = po + c * width + (int64_t)h * head_dim;
            float mx = -INFINITY;
            for (int64_t p = 0; p < np; p++) {
                double dot = 0.0;
                for (int i = 0; i < head_dim; i++) dot += (double)qh[i] * kc[p * kvw + kv + i];
                att[p] = (float)(dot * scale);
                if (att[p] > mx) mx = att[p];
            }
            double sum = 0.0;
            for (int64_t p = 0; p < np; p++) {
                att[p] = expf(att[p] - mx);
                sum += att[p];
            }
            const float inv = (float)(1.0 / sum);
            for (int i = 0; i < head_dim; i++) oh[i] = 0.0f;
            for (int64_t p = 0; p < np; p++) {
                const float a = att[p] * inv;
                for (int i = 0; i < head_dim; i++) oh[i] += a * vc[p * kvw + kv + i];
            }
        }
    }
    return 0;
}

static int32_t embed(void *dev, TinyAIPluginStream *s, int32_t type, TinyAIPluginRef table,
                     int64_t rows, int64_t n, const int32_t *tokens, int64_t ncols,
                     TinyAIPluginRef out) {
    device *d = dev;
    (void)s;
    CLAIM(TINYAI_PLUGIN_OP_EMBED, "embed");
    const uint64_t pb = panel_bytes(type, n);
    if (pb == 0 || rows <= 0 || ncols <= 0 || !tokens)
        return fail(d, -EINVAL, "embed: bad shape");
    int32_t rc = 0;
    AT(pt, const unsigned char, table, matrix_bytes(type, rows, n), "embed table");
    AT(po, float, out, (uint64_t)n * (uint64_t)ncols * 4, "embed output");
    for (int64_t c = 0; c < ncols; c++) {
        const int64_t row = tokens[c];
        if (row < 0 || row >= rows)
            return fail(d, -EINVAL, "embed: token %lld of %lld rows", (long long)row, (long long)rows);
        const unsigned char *panel = pt + (uint64_t)(row / PANEL) * pb;
        const int r = (int)(row % PANEL);
        if (!block_type(type)) {
            for (int64_t k = 0; k < n; k++) po[c * n + k] = float_at(type, panel, k, r);
            continue;
        }
        for (int64_t b = 0; b < n / QK; b++) {
            int q[QK];
            float dd, mm;
            block_codes(type, panel, b, r, q, &dd, &mm);
            for (int i = 0; i < QK; i++)
                po[c * n + b * QK + i] =
                    type == TINYAI_PLUGIN_Q4_1 ? dd * (float)q[i] + mm : dd * (float)q[i];
        }
    }
    return 0;
}

static int32_t copy(void *dev, TinyAIPluginStream *s, TinyAIPluginRef dst, TinyAIPluginRef src,
                    uint64_t bytes) {
    device *d = dev;
    (void)s;
    CLAIM(TINYAI_PLUGIN_OP_COPY, "copy");
    int32_t rc = 0;
    AT(pd, unsigned char, dst, bytes, "copy destination");
    AT(ps, const unsigned char, src, bytes, "copy source");
    if (bytes) memmove(pd, ps, bytes);
    return 0;
}

/* ---- streams and events (ABI minor 1): every op is done when it returns -- */
#if TINYAI_PLUGIN_ABI_MINOR >= 1

static int32_t stream_create(void *dev, TinyAIPluginStream **out) {
    device *d = dev;
    if (!out) return fail(d, -EINVAL, "stream_create: NULL output");
    *out = calloc(1, sizeof **out);
    return *out ? 0 : fail(d, -ENOMEM, "stream_create: out of memory");
}
static void stream_destroy(void *dev, TinyAIPluginStream *st) { (void)dev, free(st); }
static int32_t event_create(void *dev, TinyAIPluginEvent **out) {
    device *d = dev;
    if (!out) return fail(d, -EINVAL, "event_create: NULL output");
    *out = calloc(1, sizeof **out);
    return *out ? 0 : fail(d, -ENOMEM, "event_create: out of memory");
}
static void event_destroy(void *dev, TinyAIPluginEvent *e) { (void)dev, free(e); }
static int32_t event_record(void *dev, TinyAIPluginStream *st, TinyAIPluginEvent *e) {
    (void)st;
    if (!e) return fail(dev, -EINVAL, "event_record: NULL event");
    e->recorded = 1;
    return 0;
}
static int32_t stream_wait(void *dev, TinyAIPluginStream *st, TinyAIPluginEvent *e) {
    (void)st;
    return e ? 0 : fail(dev, -EINVAL, "stream_wait: NULL event");
}
static int32_t event_synchronize(void *dev, TinyAIPluginEvent *e) {
    return e ? 0 : fail(dev, -EINVAL, "event_synchronize: NULL event");
}
#endif

static const TinyAIPluginDeviceOps kOps = {
    .struct_size = sizeof(TinyAIPluginDeviceOps),
    .close = dev_close,
    .info = dev_info,
    .last_error = dev_last_error,
    .buffer_alloc = buffer_alloc,
    .buffer_free = buffer_free,
    .upload = upload,
    .download = download,
    .synchronize = synchronize,
    .matmul_scratch = matmul_scratch,
    .matmul = matmul,
    .rmsnorm = rmsnorm,
    .add = add,
    .rope = rope,
    .swiglu = swiglu,
    .attention = attention,
    .attention_scratch = attention_scratch,
    .embed = embed,
    .copy = copy,
#if TINYAI_PLUGIN_ABI_MINOR >= 1
    .stream_create = stream_create,
    .stream_destroy = stream_destroy,
    .event_create = event_create,
    .event_destroy = event_destroy,
    .event_record = event_record,
    .stream_wait = stream_wait,
    .event_synchronize = event_synchronize,
#endif
};

/* ---- the plugin ------------------------------------------------------------ */

static int32_t device_count(void *pl) { return ((plugin *)pl)->n_devices; }

static int32_t device_open(void *pl, int32_t index, const TinyAIPluginDeviceOps **ops,
                           void **dev) {
    plugin *p = pl;
    if (!ops || !dev) {
        snprintf(p->err, sizeof p->err, "device_open: NULL output");
        return -EINVAL;
    }
    if (index < 0 || index >= p->n_devices) {
        snprintf(p->err, sizeof p->err, "device_open: no device %d (%d here)", (int)index,
                 p->n_devices);
        return -ENODEV;
    }
    device *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(p->err, sizeof p->err, "device_open: out of memory");
        return -ENOMEM;
    }
    d->p = p;
    d->index = index;
    *ops = &kOps;
    *dev = d;
    return 0;
}

static const char *plugin_last_error(void *pl) { return ((plugin *)pl)->err; }

static void shutdown_plugin(void *pl) { free(pl); }

static void say(const TinyAIPluginHost *h, int32_t level, const char *fmt, ...) {
    char line[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (h->log) h->log(h->host, level, line);
}

/* Parses the options; 0 or -EINVAL (said through the log). */
static int32_t parse_options(plugin *p, const char *opts) {
    while (opts && *opts) {
        const char *end = strchr(opts, ';');
        const size_t len = end ? (size_t)(end - opts) : strlen(opts);
        char kv[256];
        if (len >= sizeof kv) goto bad;
        memcpy(kv, opts, len);
        kv[len] = 0;
        opts = end ? end + 1 : NULL;
        if (!*kv) continue;
        char *eq = strchr(kv, '=');
        if (!eq) goto bad;
        *eq = 0;
        const char *key = kv, *val = eq + 1;
        char *stop = NULL;
        if (!strcmp(key, "devices")) {
            const long v = strtol(val, &stop, 10);
            if (*stop || v < 0 || v > MAX_DEVICES) goto bad;
            p->n_devices = (int)v;
        } else if (!strcmp(key, "memory")) {
            const unsigned long long v = strtoull(val, &stop, 10);
            if (*stop || !*val || *val == '-') goto bad;
            p->memory = v;
        } else if (!strcmp(key, "fail_after")) {
            const long v = strtol(val, &stop, 10);
            if (*stop || v < 0) goto bad;
            p->fail_after = v;
        } else if (!strcmp(key, "stall_after")) {
            const long v = strtol(val, &stop, 10);
            if (*stop || v < 0) goto bad;
            p->stall_after = v;
        } else if (!strcmp(key, "ops")) {
            p->ops = 0;
            char list[256];
            snprintf(list, sizeof list, "%s", val);
            for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                size_t i = 0;
                while (i < sizeof op_names / sizeof *op_names && strcmp(t, op_names[i])) i++;
                if (i == sizeof op_names / sizeof *op_names) goto bad;
                p->ops |= 1u << i;
            }
        } else {
            goto bad;
        }
        continue;
    bad:
        snprintf(p->err, sizeof p->err, "bad option near '%.100s' (devices=N, memory=BYTES, "
                                        "ops=LIST, fail_after=N, stall_after=N)", kv);
        return -EINVAL;
    }
    return 0;
}

__attribute__((visibility("default"))) int32_t tinyai_plugin_entry(const TinyAIPluginHost *host,
                                                                   TinyAIPlugin *out) {
    if (!host || !out || host->struct_size < offsetof(TinyAIPluginHost, options) + 8 ||
        out->struct_size < offsetof(TinyAIPlugin, shutdown) + 8 || !host->host_alloc ||
        !host->host_free)
        return -EINVAL;
    if (host->abi_major != TINYAI_PLUGIN_ABI_MAJOR) {
        say(host, TINYAI_PLUGIN_LOG_ERROR, "reference plugin: built for ABI %d.%d, TinyAI speaks %u.%u",
            TINYAI_PLUGIN_ABI_MAJOR, TINYAI_PLUGIN_ABI_MINOR, host->abi_major, host->abi_minor);
        return -ENOTSUP;
    }
    plugin *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    p->host = *host;
    p->n_devices = 1;
    p->memory = 1ull << 30;
    p->ops = (1u << (sizeof op_names / sizeof *op_names)) - 1;
    p->fail_after = -1;
    p->stall_after = -1;
    if (parse_options(p, host->options) != 0) {
        say(host, TINYAI_PLUGIN_LOG_ERROR, "reference plugin: %s", p->err);
        free(p);
        return -EINVAL;
    }
    const uint32_t size = out->struct_size;
    TinyAIPlugin t;
    memset(&t, 0, sizeof t);
    t.struct_size = sizeof t;
    t.abi_major = TINYAI_PLUGIN_ABI_MAJOR;
    t.abi_minor = TINYAI_PLUGIN_ABI_MINOR;
    t.name = REFERENCE_NAME;
    t.version = TINYAI_PLUGIN_ABI_MINOR >= 1 ? "1.1" : "1.0";
    t.plugin = p;
    t.device_count = device_count;
    t.device_open = device_open;
    t.last_error = plugin_last_error;
    t.shutdown = shutdown_plugin;
    memcpy(out, &t, size < sizeof t ? size : sizeof t);
    return 0;
}
