/*
 * offload/plugin/plugin.c: loading device plugins and wrapping their
 * devices (layer: offload). Everything a plugin returns is checked before
 * it is used: table sizes against the ABI's, every slot TinyAI will call,
 * the strings of its info (terminated here), its counts. What cannot be
 * checked (a plugin runs in the process: a crash in it is a crash) is
 * written in docs/PLUGINS.md.
 */
#include "offload/plugin/plugin.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tinyai/plugin.h>

#include "core/error.h"

/* The adapter passes op bits, weight types and device kinds through: the
 * public ABI's numbering is the device layer's. */
_Static_assert((int)TINYAI_PLUGIN_OP_MATMUL == (int)TAI_OP_MATMUL && (int)TINYAI_PLUGIN_OP_RMSNORM == (int)TAI_OP_RMSNORM &&
                   (int)TINYAI_PLUGIN_OP_ADD == (int)TAI_OP_ADD && (int)TINYAI_PLUGIN_OP_ROPE == (int)TAI_OP_ROPE &&
                   (int)TINYAI_PLUGIN_OP_ATTENTION == (int)TAI_OP_ATTENTION &&
                   (int)TINYAI_PLUGIN_OP_SWIGLU == (int)TAI_OP_SWIGLU && (int)TINYAI_PLUGIN_OP_EMBED == (int)TAI_OP_EMBED &&
                   (int)TINYAI_PLUGIN_OP_COPY == (int)TAI_OP_COPY,
               "op bits");
_Static_assert((int)TINYAI_PLUGIN_F32 == (int)TAI_TYPE_F32 && (int)TINYAI_PLUGIN_F16 == (int)TAI_TYPE_F16 &&
                   (int)TINYAI_PLUGIN_Q4_0 == (int)TAI_TYPE_Q4_0 && (int)TINYAI_PLUGIN_Q4_1 == (int)TAI_TYPE_Q4_1 &&
                   (int)TINYAI_PLUGIN_Q8_0 == (int)TAI_TYPE_Q8_0,
               "weight types");
_Static_assert((int)TINYAI_PLUGIN_DEVICE_CPU == (int)TAI_DEVICE_CPU && (int)TINYAI_PLUGIN_DEVICE_GPU == (int)TAI_DEVICE_GPU &&
                   (int)TINYAI_PLUGIN_DEVICE_ACCELERATOR == (int)TAI_DEVICE_ACCELERATOR &&
                   (int)TINYAI_PLUGIN_DEVICE_OTHER == (int)TAI_DEVICE_OTHER,
               "device kinds");

/* The smallest tables ABI 1.0 allows: up to the last slot of minor 0. */
#define MIN_PLUGIN_SIZE (offsetof(TinyAIPlugin, shutdown) + sizeof(void *))
#define MIN_OPS_SIZE (offsetof(TinyAIPluginDeviceOps, copy) + sizeof(void *))
#define MAX_TABLE_SIZE (1u << 16) /* beyond it, a size is garbage */
#define MAX_DEVICES_PER_PLUGIN 64

struct tai_plugin {
    char path[1024];
    void *so;
    TinyAIPlugin t; /* the plugin's table, as much of it as this TinyAI knows */
    TinyAIPluginHost host;
    char *options;
    pthread_mutex_t log_mu;
    char last_log[512];
    _Atomic uint64_t host_bytes;
    int n_devices;
    _Atomic int open_devices;
};

static tai_plugin *reg[TAI_MAX_PLUGINS];
static int n_reg;

/* ---- the host table ------------------------------------------------------ */

static void host_log(void *h, int32_t level, const char *msg) {
    tai_plugin *p = h;
    (void)level;
    if (!msg) return;
    pthread_mutex_lock(&p->log_mu);
    snprintf(p->last_log, sizeof p->last_log, "%s", msg);
    pthread_mutex_unlock(&p->log_mu);
}

/* 64-byte aligned; the size is kept in the 64 bytes before the block. */
static void *host_alloc(void *h, uint64_t bytes) {
    tai_plugin *p = h;
    if (bytes > (1ull << 46)) return NULL;
    const size_t total = ((size_t)bytes + 63) / 64 * 64 + 64;
    unsigned char *b = aligned_alloc(64, total);
    if (!b) return NULL;
    memcpy(b, &total, sizeof total);
    atomic_fetch_add(&p->host_bytes, (uint64_t)total);
    return b + 64;
}

static void host_free(void *h, void *ptr) {
    tai_plugin *p = h;
    if (!ptr) return;
    unsigned char *b = (unsigned char *)ptr - 64;
    size_t total;
    memcpy(&total, b, sizeof total);
    atomic_fetch_sub(&p->host_bytes, (uint64_t)total);
    free(b);
}

/* ---- loading ---------------------------------------------------------------- */

static bool good_name(const char *s) {
    if (!s) return false;
    size_t n = strnlen(s, 32);
    if (n == 0 || n == 32) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              s[i] == '-'))
            return false;
    return strcmp(s, "cpu") && strcmp(s, "opencl") && strcmp(s, "auto") && strcmp(s, "plugin");
}

static void discard(tai_plugin *p) {
    if (!p) return;
    if (p->so) dlclose(p->so);
    pthread_mutex_destroy(&p->log_mu);
    free(p->options);
    free(p);
}

static TinyAIStatus refuse(tai_plugin *p, bool shut, TinyAIStatus st, const char *fmt,
                           const char *detail) {
    char msg[700];
    snprintf(msg, sizeof msg, fmt, detail ? detail : "");
    const TinyAIStatus r = tai_error(st, "plugin %s: %s", p->path, msg);
    if (shut) p->t.shutdown(p->t.plugin);
    discard(p);
    return r;
}

TinyAIStatus tai_plugin_load(const char *path, const char *options, tai_plugin **out) {
    if (out) *out = NULL;
    if (!path || !*path) return tai_error(TINYAI_ERR_INVALID_ARG, "plugin: no path");
    if (n_reg == TAI_MAX_PLUGINS)
        return tai_error(TINYAI_ERR_RANGE, "plugin %s: %d plugins are loaded already", path,
                         TAI_MAX_PLUGINS);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return tai_error(TINYAI_ERR_IO, "plugin %s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return tai_error(TINYAI_ERR_IO, "plugin %s: not a regular file", path);
    if (access(path, R_OK) != 0)
        return tai_error(TINYAI_ERR_IO, "plugin %s: %s", path, strerror(errno));
    tai_plugin *p = calloc(1, sizeof *p);
    if (!p) return tai_error(TINYAI_ERR_NOMEM, "plugin %s: out of memory", path);
    pthread_mutex_init(&p->log_mu, NULL);
    snprintf(p->path, sizeof p->path, "%s", path);
    if (options && !(p->options = strdup(options))) {
        discard(p);
        return tai_error(TINYAI_ERR_NOMEM, "plugin %s: out of memory", path);
    }
    /* a path without a slash would be searched for: make it explicit */
    char where[1100];
    snprintf(where, sizeof where, "%s%s", strchr(path, '/') ? "" : "./", path);
    dlerror();
    p->so = dlopen(where, RTLD_NOW | RTLD_LOCAL);
    if (!p->so) {
        const char *e = dlerror();
        return refuse(p, false, TINYAI_ERR_IO, "cannot load it: %s", e ? e : "?");
    }
    TinyAIPluginEntry entry = (TinyAIPluginEntry)dlsym(p->so, TINYAI_PLUGIN_ENTRY_NAME);
    if (!entry)
        return refuse(p, false, TINYAI_ERR_FORMAT,
                      "no entry point '%s' (not a TinyAI plugin)", TINYAI_PLUGIN_ENTRY_NAME);
    p->host.struct_size = sizeof p->host;
    p->host.abi_major = TINYAI_PLUGIN_ABI_MAJOR;
    p->host.abi_minor = TINYAI_PLUGIN_ABI_MINOR;
    p->host.host = p;
    p->host.log = host_log;
    p->host.host_alloc = host_alloc;
    p->host.host_free = host_free;
    p->host.options = p->options;
    TinyAIPlugin t;
    memset(&t, 0, sizeof t);
    t.struct_size = sizeof t;
    const int32_t rc = entry(&p->host, &t);
    if (rc != 0) {
        char why[600];
        snprintf(why, sizeof why, "its entry point failed (%s)%s%s", strerror(rc < 0 ? -rc : rc),
                 p->last_log[0] ? ": " : "", p->last_log);
        return refuse(p, false,
                      rc == -ENOTSUP  ? TINYAI_ERR_UNSUPPORTED
                      : rc == -EINVAL ? TINYAI_ERR_INVALID_ARG
                                      : TINYAI_ERR_DEVICE,
                      "%s", why);
    }
    /* from here on the plugin holds resources: a refusal shuts it down,
     * when its table allows */
    const bool can_shut = t.struct_size >= MIN_PLUGIN_SIZE && t.shutdown;
    char d[160];
    if (t.struct_size < MIN_PLUGIN_SIZE || t.struct_size > MAX_TABLE_SIZE) {
        snprintf(d, sizeof d, "%u", t.struct_size);
        p->t = t;
        return refuse(p, can_shut, TINYAI_ERR_FORMAT,
                      "its plugin table has an impossible size (%s bytes)", d);
    }
    p->t = t;
    if (t.abi_major != TINYAI_PLUGIN_ABI_MAJOR) {
        snprintf(d, sizeof d, "%u.%u, this TinyAI speaks %d.%d", t.abi_major, t.abi_minor,
                 TINYAI_PLUGIN_ABI_MAJOR, TINYAI_PLUGIN_ABI_MINOR);
        return refuse(p, true, TINYAI_ERR_UNSUPPORTED, "built for plugin ABI %s", d);
    }
    if (!t.device_count || !t.device_open || !t.shutdown)
        return refuse(p, can_shut, TINYAI_ERR_FORMAT,
                      "its plugin table lacks device_count, device_open or shutdown%s", NULL);
    if (!good_name(t.name))
        return refuse(p, true, TINYAI_ERR_FORMAT,
                      "its name is missing or not 1-31 characters of [a-z0-9_-] (nor cpu, "
                      "opencl, auto or plugin)%s",
                      NULL);
    for (int i = 0; i < n_reg; i++)
        if (!strcmp(reg[i]->t.name, t.name)) {
            snprintf(d, sizeof d, "%s (from %.100s)", t.name, reg[i]->path);
            return refuse(p, true, TINYAI_ERR_INVALID_ARG, "a plugin named %s is loaded already", d);
        }
    const int32_t n = t.device_count(t.plugin);
    if (n < 0 || n > MAX_DEVICES_PER_PLUGIN) {
        snprintf(d, sizeof d, "%d", (int)n);
        return refuse(p, true, TINYAI_ERR_FORMAT, "it reports %s devices", d);
    }
    p->n_devices = n;
    reg[n_reg++] = p;
    if (out) *out = p;
    return TINYAI_OK;
}

TinyAIStatus tai_plugin_unload(tai_plugin *p) {
    if (!p) return TINYAI_OK;
    if (atomic_load(&p->open_devices) > 0)
        return tai_error(TINYAI_ERR_INVALID_ARG, "plugin %s: %d of its devices are still open",
                         p->t.name, atomic_load(&p->open_devices));
    int i = 0;
    while (i < n_reg && reg[i] != p) i++;
    if (i == n_reg) return tai_error(TINYAI_ERR_INVALID_ARG, "plugin: not loaded");
    memmove(&reg[i], &reg[i + 1], (size_t)(n_reg - i - 1) * sizeof *reg);
    n_reg--;
    p->t.shutdown(p->t.plugin);
    discard(p);
    return TINYAI_OK;
}

void tai_plugin_unload_all(void) {
    for (int i = n_reg - 1; i >= 0; i--)
        if (atomic_load(&reg[i]->open_devices) == 0) (void)tai_plugin_unload(reg[i]);
}

int tai_plugin_count(void) { return n_reg; }
tai_plugin *tai_plugin_at(int i) { return i >= 0 && i < n_reg ? reg[i] : NULL; }
tai_plugin *tai_plugin_find(const char *name) {
    for (int i = 0; name && i < n_reg; i++)
        if (!strcmp(reg[i]->t.name, name)) return reg[i];
    return NULL;
}
const char *tai_plugin_name(const tai_plugin *p) { return p->t.name; }
const char *tai_plugin_path(const tai_plugin *p) { return p->path; }
void tai_plugin_abi(const tai_plugin *p, int *major, int *minor) {
    *major = p->t.abi_major;
    *minor = p->t.abi_minor;
}
int tai_plugin_device_count(const tai_plugin *p) { return p->n_devices; }
const char *tai_plugin_last_log(const tai_plugin *p) { return p->last_log; }
uint64_t tai_plugin_host_bytes(const tai_plugin *p) { return atomic_load(&p->host_bytes); }

int tai_plugin_devices(void) {
    int n = 0;
    for (int i = 0; i < n_reg; i++) n += reg[i]->n_devices;
    return n;
}

TinyAIStatus tai_plugin_device_at(int i, tai_plugin **p, int *index) {
    for (int k = 0; i >= 0 && k < n_reg; k++) {
        if (i < reg[k]->n_devices) {
            *p = reg[k];
            *index = i;
            return TINYAI_OK;
        }
        i -= reg[k]->n_devices;
    }
    return tai_error(TINYAI_ERR_RANGE, "no plugin device %d", i);
}

int tai_plugin_resolve(const char *device, tai_plugin **p, int *index) {
    if (!device) return -1;
    if (!strncmp(device, "plugin:", 7)) device += 7;
    char name[64];
    const char *colon = strchr(device, ':');
    const size_t len = colon ? (size_t)(colon - device) : strlen(device);
    if (len == 0 || len >= sizeof name) return -1;
    memcpy(name, device, len);
    name[len] = 0;
    tai_plugin *pl = tai_plugin_find(name);
    if (!pl) return -1;
    *p = pl;
    long v = 0;
    if (colon) {
        char *end = NULL;
        v = strtol(colon + 1, &end, 10);
        if (!colon[1] || *end || v < 0) return -2;
    }
    if (v >= pl->n_devices) return -2;
    *index = (int)v;
    return 0;
}

/* ---- a plugin's device as a tai_device ---------------------------------------- */

typedef struct {
    tai_plugin *pl;
    const TinyAIPluginDeviceOps *o;
    void *dev;
    int index;
    uint32_t claimed;
    char err[600];
} pdev;

/* Whether the plugin's table has `slot`, set. */
#define PHAS(o, slot) \
    ((o)->struct_size >= offsetof(TinyAIPluginDeviceOps, slot) + sizeof(void *) && (o)->slot)

static TinyAIPluginRef R(tai_dref r) {
    TinyAIPluginRef x = {(TinyAIPluginBuffer *)r.buf, (uint64_t)r.off};
    return x;
}

/* A plugin's status as the device vtable's: 0 or a negative errno; a
 * positive value (a broken plugin) is a device failure. */
static int st(int32_t rc) { return rc == 0 ? 0 : rc < 0 ? rc : -EIO; }

static const char *pd_last_error(void *ctx) {
    pdev *d = ctx;
    if (d->err[0]) return d->err;
    const char *e = PHAS(d->o, last_error) ? d->o->last_error(d->dev) : NULL;
    return e ? e : "";
}

static int unclaimed(pdev *d, const char *op) {
    snprintf(d->err, sizeof d->err, "%s is not among the ops the plugin claims", op);
    return -ENOTSUP;
}

#define ENTER(op_bit, name)                                           \
    pdev *d = ctx;                                                    \
    d->err[0] = 0;                                                    \
    if (!(d->claimed & (op_bit))) return unclaimed(d, name)

static void pd_destroy(void *ctx) {
    pdev *d = ctx;
    d->o->close(d->dev);
    atomic_fetch_sub(&d->pl->open_devices, 1);
    free(d);
}

static int pd_info(void *ctx, tai_device_info *out) {
    pdev *d = ctx;
    TinyAIPluginDeviceInfo pi;
    memset(&pi, 0, sizeof pi);
    pi.struct_size = sizeof pi;
    const int rc = st(d->o->info(d->dev, &pi));
    if (rc) return rc;
    pi.name[sizeof pi.name - 1] = pi.vendor[sizeof pi.vendor - 1] = 0;
    pi.version[sizeof pi.version - 1] = pi.model[sizeof pi.model - 1] = 0;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s:%d", d->pl->t.name, d->index);
    snprintf(out->vendor, sizeof out->vendor, "%s", pi.vendor);
    snprintf(out->version, sizeof out->version, "%s", pi.version);
    snprintf(out->model, sizeof out->model, "%s", pi.model[0] ? pi.model : pi.name);
    out->kind = pi.kind >= 0 && pi.kind <= TAI_DEVICE_OTHER ? pi.kind : TAI_DEVICE_OTHER;
    out->unified = pi.unified == 1;
    out->mem_total = pi.memory_total;
    out->mem_free = pi.memory_free <= pi.memory_total ? pi.memory_free : pi.memory_total;
    out->ops = pi.ops & d->claimed;
    out->types = pi.types & (1u << TAI_TYPE_F32 | 1u << TAI_TYPE_F16 | 1u << TAI_TYPE_Q4_0 |
                             1u << TAI_TYPE_Q4_1 | 1u << TAI_TYPE_Q8_0);
    return 0;
}

static int pd_buf_alloc(void *ctx, size_t bytes, tai_dbuf **out) {
    pdev *d = ctx;
    d->err[0] = 0;
    TinyAIPluginBuffer *b = NULL;
    const int rc = st(d->o->buffer_alloc(d->dev, bytes, &b));
    if (rc) return rc;
    if (!b) {
        snprintf(d->err, sizeof d->err, "buffer_alloc succeeded without a buffer");
        return -EIO;
    }
    *out = (tai_dbuf *)b;
    return 0;
}

static void pd_buf_free(void *ctx, tai_dbuf *b) {
    pdev *d = ctx;
    if (b) d->o->buffer_free(d->dev, (TinyAIPluginBuffer *)b);
}

static int pd_upload(void *ctx, tai_dref dst, const void *src, size_t bytes) {
    pdev *d = ctx;
    d->err[0] = 0;
    return st(d->o->upload(d->dev, NULL, R(dst), src, bytes));
}

static int pd_download(void *ctx, void *dst, tai_dref src, size_t bytes) {
    pdev *d = ctx;
    d->err[0] = 0;
    return st(d->o->download(d->dev, NULL, dst, R(src), bytes));
}

static int pd_sync(void *ctx) {
    pdev *d = ctx;
    d->err[0] = 0;
    return st(d->o->synchronize(d->dev, NULL));
}

static size_t pd_matmul_scratch(void *ctx, int type, int64_t n, int64_t ncols) {
    pdev *d = ctx;
    if (!(d->claimed & TAI_OP_MATMUL)) return 0;
    return (size_t)d->o->matmul_scratch(d->dev, type, n, ncols);
}

static int pd_matmul(void *ctx, int type, tai_dref w, int64_t rows, int64_t n, tai_dref x,
                     tai_dref y, int64_t ncols, tai_dref scratch) {
    ENTER(TAI_OP_MATMUL, "matmul");
    return st(d->o->matmul(d->dev, NULL, type, R(w), rows, n, R(x), R(y), ncols, R(scratch)));
}

static int pd_rmsnorm(void *ctx, tai_dref out, tai_dref x, tai_dref w, int64_t n, int64_t ncols,
                      float eps) {
    ENTER(TAI_OP_RMSNORM, "rmsnorm");
    return st(d->o->rmsnorm(d->dev, NULL, R(out), R(x), R(w), n, ncols, eps));
}

static int pd_add(void *ctx, tai_dref x, tai_dref dx, int64_t n) {
    ENTER(TAI_OP_ADD, "add");
    return st(d->o->add(d->dev, NULL, R(x), R(dx), n));
}

static int pd_rope(void *ctx, tai_dref x, int64_t ncols, int64_t col_stride, int n_heads,
                   int head_dim, int rot_dim, tai_dref cs) {
    ENTER(TAI_OP_ROPE, "rope");
    return st(d->o->rope(d->dev, NULL, R(x), ncols, col_stride, n_heads, head_dim, rot_dim, R(cs)));
}

static int pd_swiglu(void *ctx, tai_dref gate, tai_dref up, int64_t n) {
    ENTER(TAI_OP_SWIGLU, "swiglu");
    return st(d->o->swiglu(d->dev, NULL, R(gate), R(up), n));
}

static size_t pd_attention_scratch(void *ctx, int64_t max_pos, int n_head) {
    pdev *d = ctx;
    if (!(d->claimed & TAI_OP_ATTENTION)) return 0;
    return (size_t)d->o->attention_scratch(d->dev, max_pos, n_head);
}

/* The per-column K and V references, converted (at most this many at a
 * time: more is done in slices). */
#define ATT_SLICE 64

static int pd_attention(void *ctx, tai_dref out, tai_dref q, int64_t ncols, const tai_dref *k,
                        const tai_dref *v, const int32_t *pos, int n_head, int n_kv_head,
                        int head_dim, tai_dref scratch, size_t scratch_bytes) {
    ENTER(TAI_OP_ATTENTION, "attention");
    const size_t width = (size_t)n_head * (size_t)head_dim * sizeof(float);
    TinyAIPluginRef kk[ATT_SLICE], vv[ATT_SLICE];
    for (int64_t c0 = 0; c0 < ncols; c0 += ATT_SLICE) {
        const int64_t nc = ncols - c0 < ATT_SLICE ? ncols - c0 : ATT_SLICE;
        for (int64_t c = 0; c < nc; c++) {
            kk[c] = R(k[c0 + c]);
            vv[c] = R(v[c0 + c]);
        }
        const int rc = st(d->o->attention(d->dev, NULL, R(tai_dref_at(out, (size_t)c0 * width)),
                                          R(tai_dref_at(q, (size_t)c0 * width)), nc, kk, vv,
                                          pos + c0, n_head, n_kv_head, head_dim, R(scratch),
                                          scratch_bytes));
        if (rc) return rc;
    }
    return 0;
}

static int pd_embed(void *ctx, int type, tai_dref table, int64_t rows, int64_t n,
                    const int32_t *tokens, int64_t ncols, tai_dref out) {
    ENTER(TAI_OP_EMBED, "embed");
    return st(d->o->embed(d->dev, NULL, type, R(table), rows, n, tokens, ncols, R(out)));
}

static int pd_copy(void *ctx, tai_dref dst, tai_dref src, size_t bytes) {
    ENTER(TAI_OP_COPY, "copy");
    return st(d->o->copy(d->dev, NULL, R(dst), R(src), bytes));
}

static const tai_device_ops kAdapter = {
    .abi = TAI_DEVICE_ABI,
    .size = sizeof(tai_device_ops),
    .destroy = pd_destroy,
    .info = pd_info,
    .last_error = pd_last_error,
    .buf_alloc = pd_buf_alloc,
    .buf_free = pd_buf_free,
    .upload = pd_upload,
    .download = pd_download,
    .sync = pd_sync,
    .matmul_scratch = pd_matmul_scratch,
    .matmul = pd_matmul,
    .rmsnorm = pd_rmsnorm,
    .add = pd_add,
    .rope = pd_rope,
    .swiglu = pd_swiglu,
    .attention = pd_attention,
    .attention_scratch = pd_attention_scratch,
    .embed = pd_embed,
    .copy = pd_copy,
};

/* The slots of each op a device may claim. */
static const char *missing_slot(const TinyAIPluginDeviceOps *o, uint32_t ops) {
#define NEED(bit, slot) \
    if ((ops & (bit)) && !PHAS(o, slot)) return #slot
    NEED(TAI_OP_MATMUL, matmul);
    NEED(TAI_OP_MATMUL, matmul_scratch);
    NEED(TAI_OP_RMSNORM, rmsnorm);
    NEED(TAI_OP_ADD, add);
    NEED(TAI_OP_ROPE, rope);
    NEED(TAI_OP_ATTENTION, attention);
    NEED(TAI_OP_ATTENTION, attention_scratch);
    NEED(TAI_OP_SWIGLU, swiglu);
    NEED(TAI_OP_EMBED, embed);
    NEED(TAI_OP_COPY, copy);
#undef NEED
    return NULL;
}

TinyAIStatus tai_plugin_device_open(tai_plugin *p, int index, tai_device **out) {
    *out = NULL;
    if (!p || index < 0 || index >= p->n_devices)
        return tai_error(TINYAI_ERR_RANGE, "plugin %s: no device %d (%d)", p ? p->t.name : "?",
                         index, p ? p->n_devices : 0);
    const TinyAIPluginDeviceOps *o = NULL;
    void *dev = NULL;
    const int32_t rc = p->t.device_open(p->t.plugin, index, &o, &dev);
    if (rc != 0) {
        const char *e = p->t.last_error ? p->t.last_error(p->t.plugin) : NULL;
        return tai_error(rc == -ENOMEM ? TINYAI_ERR_NOMEM : TINYAI_ERR_DEVICE,
                         "device %s:%d: open: %s", p->t.name, index,
                         e && *e ? e : strerror(rc < 0 ? -rc : EIO));
    }
    const char *bad = NULL;
    char why[160];
    if (!o) {
        bad = "it returned no operation table";
    } else if (o->struct_size < MIN_OPS_SIZE || o->struct_size > MAX_TABLE_SIZE) {
        snprintf(why, sizeof why, "its operation table has an impossible size (%u bytes)",
                 o->struct_size);
        bad = why;
    } else if (!PHAS(o, close) || !PHAS(o, info) || !PHAS(o, buffer_alloc) ||
               !PHAS(o, buffer_free) || !PHAS(o, upload) || !PHAS(o, download) ||
               !PHAS(o, synchronize)) {
        bad = "its operation table lacks one of close, info, buffer_alloc, buffer_free, upload, "
              "download, synchronize";
    }
    if (bad) {
        if (o && o->struct_size >= offsetof(TinyAIPluginDeviceOps, close) + sizeof(void *) &&
            o->close)
            o->close(dev);
        return tai_error(TINYAI_ERR_FORMAT, "device %s:%d: %s", p->t.name, index, bad);
    }
    pdev *d = calloc(1, sizeof *d);
    if (!d) {
        o->close(dev);
        return tai_error(TINYAI_ERR_NOMEM, "device %s:%d: out of memory", p->t.name, index);
    }
    d->pl = p;
    d->o = o;
    d->dev = dev;
    d->index = index;
    atomic_fetch_add(&p->open_devices, 1);
    /* what it claims, then whether its table has the slots for it */
    TinyAIPluginDeviceInfo pi;
    memset(&pi, 0, sizeof pi);
    pi.struct_size = sizeof pi;
    const int32_t irc = o->info(dev, &pi);
    if (irc != 0) {
        const char *e = PHAS(o, last_error) ? o->last_error(dev) : NULL;
        snprintf(why, sizeof why, "info failed: %.120s", e && *e ? e : strerror(irc < 0 ? -irc : EIO));
        pd_destroy(d);
        return tai_error(TINYAI_ERR_DEVICE, "device %s:%d: %s", p->t.name, index, why);
    }
    d->claimed = pi.ops & TAI_OP_ALL;
    const char *slot = missing_slot(o, d->claimed);
    if (slot) {
        pd_destroy(d);
        return tai_error(TINYAI_ERR_FORMAT,
                         "device %s:%d: claims an op whose slot '%s' is missing from its table",
                         p->t.name, index, slot);
    }
    return tai_device_wrap(&kAdapter, d, out);
}

TinyAIStatus tai_plugin_device_raw(const tai_device *d, const TinyAIPluginDeviceOps **ops,
                                   void **dev) {
    if (!d || d->ops != &kAdapter)
        return tai_error(TINYAI_ERR_INVALID_ARG, "device %s is not a plugin's",
                         d ? d->info.name : "(null)");
    const pdev *p = d->ctx;
    *ops = p->o;
    *dev = p->dev;
    return TINYAI_OK;
}

tai_plugin *tai_plugin_of(const tai_device *d) {
    return d && d->ops == &kAdapter ? ((const pdev *)d->ctx)->pl : NULL;
}
