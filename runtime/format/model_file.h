/*
 * runtime/format: one validated, read-only view of a model file, whether it is
 * GGUF (as written by llama.cpp's tools, versions 2 and 3) or TinyAI's native
 * .tmai (docs/FORMAT.md). Both readers fill the same structure: metadata
 * key/values, tensor infos and the layer table.
 *
 * Every offset and size is validated against the file size at open time, with
 * overflow-checked arithmetic; after a successful open, every tensor's bytes
 * [offset, offset + size) lie inside the file and every string is
 * NUL-terminated. The file is memory-mapped read-only; tensor data pointers
 * borrow from that mapping.
 */
#ifndef TAI_RUNTIME_FORMAT_MODEL_FILE_H
#define TAI_RUNTIME_FORMAT_MODEL_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tinyai/status.h>

#include "core/types.h"
#include "offload/host.h"

#ifdef __cplusplus
extern "C" {
#endif

/* GGUF metadata value types (their GGUF ids). */
typedef enum {
    TAI_KV_U8 = 0, TAI_KV_I8 = 1, TAI_KV_U16 = 2, TAI_KV_I16 = 3,
    TAI_KV_U32 = 4, TAI_KV_I32 = 5, TAI_KV_F32 = 6, TAI_KV_BOOL = 7,
    TAI_KV_STRING = 8, TAI_KV_ARRAY = 9, TAI_KV_U64 = 10, TAI_KV_I64 = 11,
    TAI_KV_F64 = 12,
} tai_kv_type;

typedef struct {
    uint64_t len;
    const char *str; /* NUL-terminated copy (owned by the model file) */
} tai_str;

typedef struct {
    char *key;
    tai_kv_type type;
    union {
        uint64_t u64; /* all unsigned ints and bool */
        int64_t i64;  /* all signed ints */
        double f64;   /* F32 and F64 */
        tai_str str;
        struct {
            tai_kv_type type; /* element type (never ARRAY: nested arrays
                                 are rejected) */
            uint64_t n;
            /* Elements: for STRING, an array of n tai_str; otherwise the raw
             * little-endian values, n * element size bytes. */
            const void *data;
        } arr;
    } v;
} tai_kv;

#define TAI_MAX_DIMS 4

/* How a tensor's bytes are arranged in the file. */
enum {
    TAI_LAYOUT_ROWS = 0,   /* row-major, GGUF's layout: row r at r * row bytes */
    TAI_LAYOUT_PACKED = 1, /* 2-D only: core/types.h "Packed weights" (16-row
                              panels) of its type, ne[1] rows of ne[0];
                              size tai_pack_bytes(type, ne[1], ne[0]) */
    TAI_LAYOUT_SPARSE = 2, /* 2-D only, .tmai version 2: a pruned matrix,
                              core/types.h "Block-sparse packed weights";
                              size tai_sparse_bytes(type, ne[1], ne[0], keep)
                              with keep read from its first panel */
};

typedef struct {
    char *name;
    tai_type type;
    int n_dims;
    int64_t ne[TAI_MAX_DIMS]; /* ne[0] is the innermost (row length);
                                 unused dims are 1 */
    uint64_t offset;          /* absolute byte offset in the file */
    uint64_t size;            /* bytes, as stored (packed size if packed) */
    int layer;                /* index into the layer table */
    int64_t keep;             /* TAI_LAYOUT_SPARSE: column blocks kept per
                                 panel (checked against the size at open;
                                 each panel's index when its layer loads);
                                 0 otherwise */
    int layout;               /* TAI_LAYOUT_ROWS or TAI_LAYOUT_PACKED (.tmai
                                 version 2 only; a packed tensor's offset is a
                                 multiple of 64, so the kernels can read it in
                                 place) */
    const void *data;         /* borrowed from the mapping */
} tai_tensor;

/* A layer: the unit of loading, caching and scheduling. Index 0 is the token
 * embedding, 1..n_block are the transformer blocks, n_block + 1 the final
 * norm and output head. */
typedef struct {
    int index;
    uint64_t offset;   /* first byte of the layer's tensor data */
    uint64_t size;     /* bytes from offset to the end of its last tensor */
    int precision;     /* bits per weight of its main (largest) tensor */
    uint64_t checksum; /* XXH64 of [offset, offset + size) (.tmai; 0 GGUF) */
    int first_tensor;  /* its tensors are tensors[first .. first + n) in the */
    int n_tensors;     /* order given by tai_model_file.layer_tensors */
} tai_layer_entry;

typedef enum { TAI_FILE_GGUF = 1, TAI_FILE_TMAI = 2 } tai_file_kind;

typedef struct tai_model_file {
    tai_file_kind kind;
    char *path;
    uint32_t version;
    uint64_t file_size;
    const uint8_t *map; /* whole file, read-only */
    uint64_t alignment;

    tai_kv *kvs;
    int64_t n_kvs;
    tai_tensor *tensors;
    int64_t n_tensors;

    tai_layer_entry *layers;
    int n_layers;
    int *layer_tensors; /* tensor indices grouped by layer (n_tensors ints) */
} tai_model_file;

/* Opens a GGUF or .tmai file (detected from its magic), validates it and
 * builds the layer table from the llama tensor names (token_embd, blk.N.*,
 * output_norm, output). On failure returns the status, sets the error message
 * (naming the file and what is wrong) and leaves *out NULL.
 * If verify_checksums is true, every .tmai layer's checksum is checked now.
 * The caller frees the result with tai_model_file_close. */
TinyAIStatus tai_model_file_open(const char *path, bool verify_checksums,
                                 tai_model_file **out);
void tai_model_file_close(tai_model_file *mf); /* accepts NULL */

/* Whether the file is still the one tai_model_file_open read: the same
 * size and modification time, asked of the descriptor it keeps open (so a
 * file renamed or replaced by a new one under the same name is still the
 * one open, unchanged). TINYAI_OK, or TINYAI_ERR_IO with a message naming
 * the file and what changed. Bytes read from it after a change are not the
 * model's: whoever reads layers or rows checks this after each read. A
 * write that keeps both the size and the modification time (one that sets
 * the time back, or lands within the file system's clock step of the last)
 * is not seen. */
TinyAIStatus tai_model_file_unchanged(const tai_model_file *mf);

/* Holds off truncation of the file while its mapping is read (bytes the
 * file no longer has would fault, SIGBUS, where a read call returns short):
 * a read lease on the descriptor kept open, so that another open for
 * writing, or a truncation, waits until every holder has let go (or the
 * system's lease-break time has passed). Its break notice is SIGURG, whose
 * default is to be ignored, rather than SIGIO's, which ends the process.
 * True when held: call tai_model_file_unhold after the reads; false where
 * no lease can be had (not the file's owner without CAP_LEASE, the file
 * open for writing somewhere, a file system without leases): read through
 * a system call instead then. Thread-safe; holders share one lease. */
bool tai_model_file_hold(const tai_model_file *mf);
void tai_model_file_unhold(const tai_model_file *mf);

/* Heap bytes the parsed tables hold (metadata copies, tensor and layer
 * tables, indexes). */
size_t tai_model_file_memory_bytes(const tai_model_file *mf);

/* Drops the pages of the header (metadata and tensor table: everything
 * before the first tensor's data) from the process's resident set, once
 * what is kept of them has been copied out. They stay in the page cache and
 * are read back in if touched again. */
void tai_model_file_release_header(const tai_model_file *mf);

/* Drops the pages of [p, p + n) (inside the mapping; whole pages only)
 * from the process's resident set after a pass over them: a tool reading a
 * file larger than memory front to back keeps only what it is working on.
 * They stay in the page cache. Does nothing for ranges outside the map. */
void tai_model_file_release(const tai_model_file *mf, const void *p, uint64_t n);

/* Verifies one .tmai layer's checksum (TINYAI_ERR_CHECKSUM on mismatch).
 * For GGUF files (no checksums) returns TINYAI_OK. The layer's pages are
 * released afterwards (tai_model_file_release). */
TinyAIStatus tai_model_file_verify_layer(const tai_model_file *mf, int layer);

/* Lookups. find returns NULL if absent. The typed getters return
 * TINYAI_ERR_FORMAT (with a message naming the key) if the key is absent or
 * has an incompatible type; integer getters accept any integer type whose
 * value fits. */
const tai_kv *tai_model_file_find_kv(const tai_model_file *mf, const char *key);
TinyAIStatus tai_kv_get_u32(const tai_model_file *mf, const char *key, uint32_t *out);
TinyAIStatus tai_kv_get_f32(const tai_model_file *mf, const char *key, float *out);
TinyAIStatus tai_kv_get_str(const tai_model_file *mf, const char *key, const char **out);
TinyAIStatus tai_kv_get_bool(const tai_model_file *mf, const char *key, bool *out);
/* An array of the given element type; *n receives its length. */
TinyAIStatus tai_kv_get_arr(const tai_model_file *mf, const char *key,
                            tai_kv_type elem_type, const void **data, uint64_t *n);
/* Size in bytes of one element of a scalar kv type, 0 for STRING/ARRAY and
 * invalid ids. */
size_t tai_kv_type_size(int t);
const tai_tensor *tai_model_file_find_tensor(const tai_model_file *mf, const char *name);

/* Options of tai_tmai_write_with. */
typedef struct {
    /* 2 (the default): .tmai version 2 with every 2-D tensor packed and each
     * layer's bytes laid out exactly as its layer image (image.h), other
     * tensors as they are. 1: a version-1 file, every tensor row-major as in
     * the source (a source with packed tensors is refused: nothing here
     * unpacks). */
    uint32_t version;
    /* Pool to pack matrices on; NULL packs on the calling thread. */
    tai_pool *pool;
    /* Tensors whose `data` is NULL are made when their turn comes: produce
     * fills dst with the tensor's t->size bytes as they are to be stored
     * (its layout, e.g. block-sparse from a pruner), one tensor in memory at
     * a time; a non-OK status aborts the write. NULL: no such tensors. */
    TinyAIStatus (*produce)(void *ctx, int64_t tensor, void *dst, uint64_t size);
    void *produce_ctx;
} tai_tmai_write_options;

/* {version 2, no pool}. */
tai_tmai_write_options tai_tmai_default_write_options(void);

/* Writes `mf` as .tmai (docs/FORMAT.md): same metadata and tensors, each
 * layer's tensors contiguous and 4096-byte aligned, XXH64 per layer over the
 * bytes as stored. The output is written to a temporary name and renamed, so
 * a failure never leaves a partial file at `path`. tai_tmai_write uses the
 * default options. Errors: TINYAI_ERR_INVALID_ARG (NULL arguments, an
 * unknown version), TINYAI_ERR_UNSUPPORTED (version 1 from packed tensors),
 * TINYAI_ERR_IO, TINYAI_ERR_NOMEM. */
TinyAIStatus tai_tmai_write(const tai_model_file *mf, const char *path);
TinyAIStatus tai_tmai_write_with(const tai_model_file *mf, const char *path,
                                 const tai_tmai_write_options *opts);

#ifdef __cplusplus
}
#endif

#endif /* TAI_RUNTIME_FORMAT_MODEL_FILE_H */
