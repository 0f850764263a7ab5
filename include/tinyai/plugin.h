/*
 * <tinyai/plugin.h>: the binary interface between TinyAI and a device
 * plugin, a shared object that runs TinyAI's layers on a vendor's hardware.
 * docs/PLUGINS.md explains it at length; this header is the contract.
 *
 * A plugin exports one function, TINYAI_PLUGIN_ENTRY_NAME, of type
 * TinyAIPluginEntry. TinyAI calls it once per load with a host table
 * (TinyAIPluginHost: the ABI version TinyAI speaks, a log sink, host memory
 * counted against the user's limit, the plugin's options); the plugin fills
 * a TinyAIPlugin table (its own ABI version, its devices). A device is
 * opened into a TinyAIPluginDeviceOps table of slots that mirror the ops
 * of a Llama block.
 *
 * Versions. major.minor. A different major is refused by both sides with
 * an error naming both versions. Within a major every table only grows at
 * its end: a side built with an older minor sees a shorter table and uses
 * the common part (each table starts with its size in bytes, and a slot
 * past the size, or NULL, is absent). Every slot's offset and every struct's
 * size is fixed below by a static assertion, so a field inserted in the
 * middle fails the build instead of silently shifting the slots after it.
 *
 * Status. Every function that can fail returns int32_t: 0 on success or a
 * negative errno value (-EINVAL a bad argument, -ENOMEM out of memory,
 * -ENOTSUP not supported, -EIO a device failure, -ENODEV no such device).
 * The text of the last failure on the calling thread is `last_error`.
 * A plugin never calls exit() or abort() on bad input, and never lets a
 * C++ exception or a longjmp cross this interface.
 *
 * Ownership is written at every pointer: "borrowed" pointers stay the
 * caller's and are valid for the call only (or until the op completes, for
 * host memory an op reads asynchronously: see `synchronize`); "owned by
 * the plugin" pointers stay valid until the object they belong to is
 * closed.
 *
 * Threads. TinyAI calls a device from one thread at a time; distinct
 * devices may be called concurrently. `entry`, `device_count` and
 * `shutdown` are called from one thread.
 *
 * Only C types of fixed width cross the interface (LP64 Linux: pointers
 * and size_t are 64-bit); no C++ or compiler-specific types.
 */
#ifndef TINYAI_PLUGIN_H
#define TINYAI_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TINYAI_PLUGIN_ABI_MAJOR 1
#define TINYAI_PLUGIN_ABI_MINOR 1
/* The symbol a plugin exports. */
#define TINYAI_PLUGIN_ENTRY_NAME "tinyai_plugin_entry"

/* ---- Values ------------------------------------------------------------ */

/* Weight types (GGUF's numbering) a matrix product may take. */
enum {
    TINYAI_PLUGIN_F32 = 0,
    TINYAI_PLUGIN_F16 = 1,
    TINYAI_PLUGIN_Q4_0 = 2,
    TINYAI_PLUGIN_Q4_1 = 3,
    TINYAI_PLUGIN_Q8_0 = 8,
};

/* Ops a device runs (TinyAIPluginDeviceInfo.ops). A device may run any
 * subset: TinyAI's placement gives a device only the layers whose ops it
 * has, and the conformance suite tests only what a device claims. */
enum {
    TINYAI_PLUGIN_OP_MATMUL = 1u << 0,
    TINYAI_PLUGIN_OP_RMSNORM = 1u << 1,
    TINYAI_PLUGIN_OP_ADD = 1u << 2,
    TINYAI_PLUGIN_OP_ROPE = 1u << 3,
    TINYAI_PLUGIN_OP_ATTENTION = 1u << 4,
    TINYAI_PLUGIN_OP_SWIGLU = 1u << 5,
    TINYAI_PLUGIN_OP_EMBED = 1u << 6,
    TINYAI_PLUGIN_OP_COPY = 1u << 7,
};

enum {
    TINYAI_PLUGIN_DEVICE_CPU = 0,
    TINYAI_PLUGIN_DEVICE_GPU = 1,
    TINYAI_PLUGIN_DEVICE_ACCELERATOR = 2,
    TINYAI_PLUGIN_DEVICE_OTHER = 3,
};

enum { /* log levels */
    TINYAI_PLUGIN_LOG_ERROR = 0,
    TINYAI_PLUGIN_LOG_WARNING = 1,
    TINYAI_PLUGIN_LOG_INFO = 2,
    TINYAI_PLUGIN_LOG_DEBUG = 3,
};

/* A buffer in the device's memory. Opaque, owned by the plugin. */
typedef struct TinyAIPluginBuffer TinyAIPluginBuffer;
/* A queue of ops that run in order (a CUDA stream, an OpenCL queue).
 * Opaque, owned by the plugin. NULL names the device's default stream. */
typedef struct TinyAIPluginStream TinyAIPluginStream;
/* A point in a stream that another stream or the host can wait for.
 * Opaque, owned by the plugin. */
typedef struct TinyAIPluginEvent TinyAIPluginEvent;

/* A tensor: a buffer and a byte offset into it. On a device whose memory
 * is the host's (TinyAIPluginDeviceInfo.unified), `buffer` is NULL and
 * `offset` is the host address. */
typedef struct {
    TinyAIPluginBuffer *buffer;
    uint64_t offset;
} TinyAIPluginRef;

/* ---- TinyAI's side: the host table ------------------------------------ */

typedef struct {
    uint32_t struct_size; /* sizeof(TinyAIPluginHost) TinyAI was built with */
    uint16_t abi_major;   /* the ABI TinyAI speaks */
    uint16_t abi_minor;
    void *host;           /* TinyAI's context for the calls below */
    /* One line of text for the user (borrowed; any thread). */
    void (*log)(void *host, int32_t level, const char *message);
    /* Host memory counted against the user's memory limit, 64-byte aligned
     * (NULL when the limit would be exceeded); freed with host_free. For
     * staging and pinned buffers the plugin keeps on the host. */
    void *(*host_alloc)(void *host, uint64_t bytes);
    void (*host_free)(void *host, void *p); /* accepts NULL */
    /* The plugin's options, "key=value" pairs separated by ';' as the user
     * gave them (borrowed; valid until shutdown), or NULL. */
    const char *options;
} TinyAIPluginHost;

/* ---- The plugin's side ------------------------------------------------- */

typedef struct {
    uint32_t struct_size; /* sizeof(TinyAIPluginDeviceInfo) TinyAI passes */
    int32_t kind;         /* TINYAI_PLUGIN_DEVICE_* */
    char name[64];        /* short, unique within the plugin: "gpu0" */
    char vendor[64];
    char version[96];     /* driver / runtime version */
    char model[128];      /* the hardware, as it names itself */
    int32_t unified;      /* 1: its memory is the host's (refs are addresses) */
    uint32_t ops;         /* TINYAI_PLUGIN_OP_* it runs */
    uint32_t types;       /* 1u << type for each weight type matmul takes */
    uint32_t reserved;    /* 0 */
    uint64_t memory_total, memory_free; /* bytes of device memory */
} TinyAIPluginDeviceInfo;

/* The ops of one device. `dev` is the plugin's device handle from
 * device_open. Ops are enqueued on `stream` (NULL: the default stream) in
 * order and may run asynchronously: a failure may be reported by the op
 * or by a later synchronisation, and host memory an op or an upload reads
 * must stay valid until the stream is synchronised. Activations are float32,
 * column-major (column c of an [n] x ncols tensor starts at element c * n).
 * Weights are in TinyAI's packed panel layout (docs/PLUGINS.md, "Weights"):
 * the bytes TinyAI uploads are the layer image as its CPU reads it. */
typedef struct {
    uint32_t struct_size; /* sizeof(TinyAIPluginDeviceOps) the plugin was built with */
    uint32_t reserved;    /* 0 */

    /* ---- identity and lifetime (minor 0) ---- */
    /* Frees the device and everything it owns (buffers, streams, events). */
    void (*close)(void *dev);
    /* Fills *out (whose struct_size TinyAI sets first: write no further). */
    int32_t (*info)(void *dev, TinyAIPluginDeviceInfo *out);
    /* The last failure's text on this thread; owned by the plugin, valid
     * until the next call on this device from this thread. */
    const char *(*last_error)(void *dev);

    /* ---- memory ---- */
    /* A buffer of `bytes` (0 is valid: a buffer of no bytes). -ENOMEM when
     * the device has no room; the device stays usable. */
    int32_t (*buffer_alloc)(void *dev, uint64_t bytes, TinyAIPluginBuffer **out);
    void (*buffer_free)(void *dev, TinyAIPluginBuffer *buffer); /* accepts NULL */
    /* Host to device; src borrowed until the stream is synchronised. */
    int32_t (*upload)(void *dev, TinyAIPluginStream *stream, TinyAIPluginRef dst, const void *src,
                      uint64_t bytes);
    /* Device to host; returns when dst holds the bytes. */
    int32_t (*download)(void *dev, TinyAIPluginStream *stream, void *dst, TinyAIPluginRef src,
                        uint64_t bytes);
    /* Returns when every op enqueued on the stream is done, with the first
     * failure since the stream's last synchronisation. */
    int32_t (*synchronize)(void *dev, TinyAIPluginStream *stream);

    /* ---- ops of a Llama block ---- */
    /* Scratch bytes matmul needs for a weight type, n inputs, ncols columns. */
    uint64_t (*matmul_scratch)(void *dev, int32_t type, int64_t n, int64_t ncols);
    /* y[c][r] = sum_k W[r][k] x[c][k]: W rows x n of `type`, packed; x ncols
     * columns of n floats; y ncols columns of `rows` floats. */
    int32_t (*matmul)(void *dev, TinyAIPluginStream *stream, int32_t type, TinyAIPluginRef w,
                      int64_t rows, int64_t n, TinyAIPluginRef x, TinyAIPluginRef y,
                      int64_t ncols, TinyAIPluginRef scratch);
    /* out = x / sqrt(mean(x^2) + eps) * w per column of n floats (out may be x). */
    int32_t (*rmsnorm)(void *dev, TinyAIPluginStream *stream, TinyAIPluginRef out,
                       TinyAIPluginRef x, TinyAIPluginRef w, int64_t n, int64_t ncols, float eps);
    /* x += d, n floats. */
    int32_t (*add)(void *dev, TinyAIPluginStream *stream, TinyAIPluginRef x, TinyAIPluginRef d,
                   int64_t n);
    /* Rotary embedding in place: column c of x holds n_heads heads of
     * head_dim floats, columns col_stride floats apart; its pairs (2i, 2i+1),
     * 2i < rot_dim, rotate by cs column c's (cos, sin) pairs (rot_dim floats
     * per column). */
    int32_t (*rope)(void *dev, TinyAIPluginStream *stream, TinyAIPluginRef x, int64_t ncols,
                    int64_t col_stride, int32_t n_heads, int32_t head_dim, int32_t rot_dim,
                    TinyAIPluginRef cs);
    /* gate = silu(gate) * up, n floats. */
    int32_t (*swiglu)(void *dev, TinyAIPluginStream *stream, TinyAIPluginRef gate,
                      TinyAIPluginRef up, int64_t n);
    /* Causal attention: column c's query (n_head x head_dim floats; columns
     * n_head * head_dim apart in q and out) over positions [0, pos[c]] of
     * its own K and V caches k[c], v[c] (n_kv_head * head_dim floats per
     * position), softmax scaled by 1 / sqrt(head_dim); query head h reads
     * KV head h / (n_head / n_kv_head). k, v, pos: host arrays of ncols
     * entries, borrowed for the call. */
    int32_t (*attention)(void *dev, TinyAIPluginStream *stream, TinyAIPluginRef out,
                         TinyAIPluginRef q, int64_t ncols, const TinyAIPluginRef *k,
                         const TinyAIPluginRef *v, const int32_t *pos, int32_t n_head,
                         int32_t n_kv_head, int32_t head_dim, TinyAIPluginRef scratch,
                         uint64_t scratch_bytes);
    /* Scratch bytes attention needs for positions below max_pos and
     * n_head query heads. */
    uint64_t (*attention_scratch)(void *dev, int64_t max_pos, int32_t n_head);
    /* out column c = row tokens[c] of a packed rows x n table of `type`
     * (tokens: a host array of ncols ids in [0, rows), borrowed for the call). */
    int32_t (*embed)(void *dev, TinyAIPluginStream *stream, int32_t type, TinyAIPluginRef table,
                     int64_t rows, int64_t n, const int32_t *tokens, int64_t ncols,
                     TinyAIPluginRef out);
    /* bytes from src to dst, both on this device. */
    int32_t (*copy)(void *dev, TinyAIPluginStream *stream, TinyAIPluginRef dst,
                    TinyAIPluginRef src, uint64_t bytes);

    /* ---- streams and events (minor 1; optional: NULL where a device has
     * one queue, on which every op is then enqueued) ---- */
    int32_t (*stream_create)(void *dev, TinyAIPluginStream **out);
    void (*stream_destroy)(void *dev, TinyAIPluginStream *stream); /* accepts NULL */
    int32_t (*event_create)(void *dev, TinyAIPluginEvent **out);
    void (*event_destroy)(void *dev, TinyAIPluginEvent *event); /* accepts NULL */
    /* The event completes when the ops enqueued on the stream so far are done. */
    int32_t (*event_record)(void *dev, TinyAIPluginStream *stream, TinyAIPluginEvent *event);
    /* Ops enqueued on the stream after this wait for the event. */
    int32_t (*stream_wait)(void *dev, TinyAIPluginStream *stream, TinyAIPluginEvent *event);
    /* Returns when the event has completed, with the failure of any op it
     * waited for. */
    int32_t (*event_synchronize)(void *dev, TinyAIPluginEvent *event);
} TinyAIPluginDeviceOps;

/* What the entry point fills in. */
typedef struct {
    uint32_t struct_size; /* sizeof(TinyAIPlugin) the plugin was built with */
    uint16_t abi_major;   /* the ABI the plugin was built for */
    uint16_t abi_minor;
    const char *name;     /* "reference", "cuda": lower case, [a-z0-9_-],
                             owned by the plugin, valid until shutdown */
    const char *version;  /* the plugin's own version (owned, as name) */
    void *plugin;         /* the plugin's context for the calls below */
    /* Devices it can open now (0 is valid: no hardware here). */
    int32_t (*device_count)(void *plugin);
    /* Opens device `index`: *ops (owned by the plugin, valid until shutdown)
     * and *dev, the handle passed to every slot of *ops and freed by its
     * close. A device may be opened more than once (each handle is its own). */
    int32_t (*device_open)(void *plugin, int32_t index, const TinyAIPluginDeviceOps **ops,
                           void **dev);
    /* The last failure of device_count or device_open on this thread. */
    const char *(*last_error)(void *plugin);
    /* Called once, after every device is closed; the plugin frees
     * everything. The library may then be unloaded. */
    void (*shutdown)(void *plugin);
} TinyAIPlugin;

/* The entry point. TinyAI sets out->struct_size to its sizeof(TinyAIPlugin)
 * and zeroes the rest; the plugin writes no further than that size, sets
 * every field it has, and returns 0, or an error (-ENOTSUP for an ABI major
 * it does not speak, with host->log saying why). `host` is borrowed, but
 * host->host and the functions it points to stay valid until shutdown. */
typedef int32_t (*TinyAIPluginEntry)(const TinyAIPluginHost *host, TinyAIPlugin *out);

/* ---- The layout, fixed (LP64) ------------------------------------------ */

#ifdef __cplusplus
#define TINYAI_PLUGIN_ASSERT(c, m) static_assert(c, m)
#else
#define TINYAI_PLUGIN_ASSERT(c, m) _Static_assert(c, m)
#endif

TINYAI_PLUGIN_ASSERT(sizeof(void *) == 8 && sizeof(size_t) == 8, "the plugin ABI is LP64");
TINYAI_PLUGIN_ASSERT(sizeof(TinyAIPluginRef) == 16, "TinyAIPluginRef");
TINYAI_PLUGIN_ASSERT(offsetof(TinyAIPluginHost, host) == 8, "host");
TINYAI_PLUGIN_ASSERT(offsetof(TinyAIPluginHost, log) == 16, "log");
TINYAI_PLUGIN_ASSERT(offsetof(TinyAIPluginHost, host_alloc) == 24, "host_alloc");
TINYAI_PLUGIN_ASSERT(offsetof(TinyAIPluginHost, host_free) == 32, "host_free");
TINYAI_PLUGIN_ASSERT(offsetof(TinyAIPluginHost, options) == 40, "options");
TINYAI_PLUGIN_ASSERT(sizeof(TinyAIPluginHost) == 48, "TinyAIPluginHost: append only");
TINYAI_PLUGIN_ASSERT(offsetof(TinyAIPluginDeviceInfo, name) == 8, "name");
TINYAI_PLUGIN_ASSERT(offsetof(TinyAIPluginDeviceInfo, vendor) == 72, "vendor");
TINYAI_PLUGIN_ASSERT(offsetof(TinyAIPluginDeviceInfo, version) == 136, "version");
TINYAI_PLUGIN_ASSERT(offsetof(TinyAIPluginDeviceInfo, model) == 232, "model");
TINYAI_PLUGIN_ASSERT(offsetof(TinyAIPluginDeviceInfo, unified) == 360, "unified");
TINYAI_PLUGIN_ASSERT(offsetof(TinyAIPluginDeviceInfo, ops) == 364, "ops");
TINYAI_PLUGIN_ASSERT(offsetof(TinyAIPluginDeviceInfo, types) == 368, "types");
TINYAI_PLUGIN_ASSERT(offsetof(TinyAIPluginDeviceInfo, memory_total) == 376, "memory_total");
TINYAI_PLUGIN_ASSERT(offsetof(TinyAIPluginDeviceInfo, memory_free) == 384, "memory_free");
TINYAI_PLUGIN_ASSERT(sizeof(TinyAIPluginDeviceInfo) == 392, "TinyAIPluginDeviceInfo: append only");
#define TINYAI_PLUGIN_SLOT(name, k)                                                   \
    TINYAI_PLUGIN_ASSERT(offsetof(TinyAIPluginDeviceOps, name) == 8 + 8 * (k), #name)
TINYAI_PLUGIN_SLOT(close, 0);
TINYAI_PLUGIN_SLOT(info, 1);
TINYAI_PLUGIN_SLOT(last_error, 2);
TINYAI_PLUGIN_SLOT(buffer_alloc, 3);
TINYAI_PLUGIN_SLOT(buffer_free, 4);
TINYAI_PLUGIN_SLOT(upload, 5);
TINYAI_PLUGIN_SLOT(download, 6);
TINYAI_PLUGIN_SLOT(synchronize, 7);
TINYAI_PLUGIN_SLOT(matmul_scratch, 8);
TINYAI_PLUGIN_SLOT(matmul, 9);
TINYAI_PLUGIN_SLOT(rmsnorm, 10);
TINYAI_PLUGIN_SLOT(add, 11);
TINYAI_PLUGIN_SLOT(rope, 12);
TINYAI_PLUGIN_SLOT(swiglu, 13);
TINYAI_PLUGIN_SLOT(attention, 14);
TINYAI_PLUGIN_SLOT(attention_scratch, 15);
TINYAI_PLUGIN_SLOT(embed, 16);
TINYAI_PLUGIN_SLOT(copy, 17);
TINYAI_PLUGIN_SLOT(stream_create, 18);
TINYAI_PLUGIN_SLOT(stream_destroy, 19);
TINYAI_PLUGIN_SLOT(event_create, 20);
TINYAI_PLUGIN_SLOT(event_destroy, 21);
TINYAI_PLUGIN_SLOT(event_record, 22);
TINYAI_PLUGIN_SLOT(stream_wait, 23);
TINYAI_PLUGIN_SLOT(event_synchronize, 24);
TINYAI_PLUGIN_ASSERT(sizeof(TinyAIPluginDeviceOps) == 8 + 8 * 25,
                     "TinyAIPluginDeviceOps: append only");
/* minor 0 ended after `copy` */
#define TINYAI_PLUGIN_DEVICE_OPS_SIZE_1_0 (8 + 8 * 18)
TINYAI_PLUGIN_ASSERT(offsetof(TinyAIPlugin, name) == 8, "name");
TINYAI_PLUGIN_ASSERT(offsetof(TinyAIPlugin, version) == 16, "version");
TINYAI_PLUGIN_ASSERT(offsetof(TinyAIPlugin, plugin) == 24, "plugin");
TINYAI_PLUGIN_ASSERT(offsetof(TinyAIPlugin, device_count) == 32, "device_count");
TINYAI_PLUGIN_ASSERT(offsetof(TinyAIPlugin, device_open) == 40, "device_open");
TINYAI_PLUGIN_ASSERT(offsetof(TinyAIPlugin, last_error) == 48, "last_error");
TINYAI_PLUGIN_ASSERT(offsetof(TinyAIPlugin, shutdown) == 56, "shutdown");
TINYAI_PLUGIN_ASSERT(sizeof(TinyAIPlugin) == 64, "TinyAIPlugin: append only");

#ifdef __cplusplus
}
#endif

#endif
