/*
 * runtime/format: declarations shared by the GGUF and .tmai readers and
 * writers (model_file.c, kv.c, gguf.c, tmai.c, tmai_write.c, gguf_write.c).
 * Private to runtime/format; nothing outside this folder includes it.
 *
 * Reading goes through a bounds-checked cursor over the mapped file: every
 * read first checks that the bytes it needs lie before the cursor's limit
 * (end of file, or end of a .tmai section), so a truncated or lying file
 * produces a "truncated file" error naming what was being read, never a read
 * past the mapping.
 */
#ifndef TAI_RUNTIME_FORMAT_FORMAT_INTERNAL_H
#define TAI_RUNTIME_FORMAT_FORMAT_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/format/model_file.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "runtime/format reads little-endian files by memcpy: little-endian hosts only"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Caps on counts, far above any real model (llama-405B has ~1,100 tensors and
 * ~40 keys) and checked before anything is allocated. */
#define TAI_FMT_MAX_TENSORS (1 << 20)
#define TAI_FMT_MAX_KVS (1 << 20)
/* A string or array length above this (1 TiB) is reported as absurd rather
 * than as a truncated file. */
#define TAI_FMT_ABSURD_LEN (1ull << 40)

/* The model file as allocated by tai_model_file_open: the public struct plus
 * the hash indexes behind the lookups. */
typedef struct {
    tai_model_file pub;
    size_t map_len;
    /* the file as opened, kept open to tell later whether it changed
     * (tai_model_file_unchanged): -1 when not open */
    int fd;
    uint64_t opened_size;
    int64_t opened_mtime_s, opened_mtime_ns;
    /* tai_model_file_hold: the readers holding the file's read lease */
    pthread_mutex_t hold_mu;
    int holders;
    uint32_t *tensor_index; /* open addressing: tensor index + 1, 0 = empty */
    uint64_t tensor_index_cap;
    uint32_t *kv_index;
    uint64_t kv_index_cap;
} tai_mf_impl;

/* ---- Bounds-checked reading --------------------------------------------- */

typedef struct {
    const uint8_t *base; /* start of the mapping */
    uint64_t pos;        /* absolute offset of the next byte to read */
    uint64_t end;        /* reads must end at or before this offset */
    const char *path;    /* for messages */
    const char *limit;   /* what `end` is, for messages: "end of file", ... */
    uint64_t file_size;
} tai_cur;

static inline uint64_t tai_cur_left(const tai_cur *c) { return c->end - c->pos; }

/* Reports that reading `what` (printf-style) would end at byte `need_end`,
 * past the cursor's limit: "<path>: truncated file: <what> ends at byte N
 * past end of file (M bytes)". Returns TINYAI_ERR_FORMAT. */
TinyAIStatus tai_cur_trunc(const tai_cur *c, uint64_t need_end, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fixed-size little-endian reads; false if fewer than the needed bytes are
 * left (the cursor does not move then). */
bool tai_cur_u32(tai_cur *c, uint32_t *v);
bool tai_cur_u64(tai_cur *c, uint64_t *v);
bool tai_cur_bytes(tai_cur *c, void *dst, uint64_t n);

/* Reads a GGUF string (u64 length + bytes) as a malloc'ed NUL-terminated
 * copy. `what` names it in messages ("tensor info 3 name"). Strings with an
 * embedded NUL are rejected when `no_nul` (keys and tensor names). */
TinyAIStatus tai_cur_string(tai_cur *c, char **out, uint64_t *len, bool no_nul,
                            const char *what);

/* Reads n_kv GGUF key/value pairs into mf->kvs (allocated here; mf->n_kvs
 * counts those fully read, so tai_model_file_close frees a partial list).
 * Builds the key index, rejecting duplicate keys. */
TinyAIStatus tai_fmt_read_kvs(tai_cur *c, tai_mf_impl *m, uint64_t n_kv);

/* Frees what one kv owns. */
void tai_fmt_kv_free(tai_kv *kv);

/* "u32", "string", ...; "?" for an invalid id. */
const char *tai_kv_type_name(int t);

/* ---- Encoding (writers) ------------------------------------------------- */

/* A growable byte buffer; `failed` latches an allocation failure so that a
 * sequence of appends can be checked once at the end. */
typedef struct {
    uint8_t *data;
    size_t len, cap;
    bool failed;
} tai_buf;

void tai_buf_append(tai_buf *b, const void *p, size_t n);
void tai_buf_u32(tai_buf *b, uint32_t v);
void tai_buf_u64(tai_buf *b, uint64_t v);
void tai_buf_str(tai_buf *b, const char *s, uint64_t len); /* GGUF string */
void tai_buf_free(tai_buf *b);

/* Appends one kv in GGUF encoding (key, u32 type, value). Returns false for
 * a kv that cannot be encoded (invalid type, nested array). */
bool tai_fmt_kv_encode(tai_buf *b, const tai_kv *kv);

/* ---- Shared model-file parts -------------------------------------------- */

/* Open-addressing index over the char* name at byte `name_off` of each of
 * the n records `stride` bytes apart from `base`. Rejects duplicate names
 * ("<path>: duplicate <what> 'x' (<what>s 3 and 7)"). The caller frees *idx. */
TinyAIStatus tai_fmt_build_index(const char *path, const void *base, size_t stride,
                                 size_t name_off, int64_t n, const char *what,
                                 uint32_t **idx, uint64_t *cap);
/* The record index of `name`, or -1. */
int64_t tai_fmt_index_find(const uint32_t *idx, uint64_t cap, const void *base,
                           size_t stride, size_t name_off, const char *name);

/* Builds the tensor name index; rejects duplicate names (TINYAI_ERR_FORMAT). */
TinyAIStatus tai_fmt_index_tensors(tai_mf_impl *m);

/* The layer each tensor belongs to by its llama name (see model_file.c):
 * layer_of[i] for every tensor, and *n_layers = n_block + 2. Rejects
 * non-contiguous block numbers. layer_of is caller-allocated (n_tensors). */
TinyAIStatus tai_fmt_assign_layers(const tai_model_file *mf, int *layer_of,
                                   int *n_layers);

/* GGUF: fills mf->layers / layer_tensors / tensors[].layer from the names,
 * each layer's offset and size being the span of its tensors. */
TinyAIStatus tai_fmt_build_layers_from_names(tai_mf_impl *m);

/* Bits per weight of a layer: that of its tensor with the most elements
 * (first such in `idx` order); 0 for an empty layer. */
int tai_fmt_layer_precision(const tai_model_file *mf, const int *idx, int n);

/* Element count of a tensor (validated at open: no overflow). */
int64_t tai_fmt_tensor_elems(const tai_tensor *t);

/* Size in bytes of a tensor of `type` with dims ne[0..n_dims); on a bad
 * shape returns a status with a message "<path>: tensor '<name>' ..." and
 * leaves *size untouched. Checks dims > 0, ne[0] a multiple of the block
 * size, and 64-bit overflow of the element count and byte size. */
TinyAIStatus tai_fmt_tensor_size(const char *path, const char *name, tai_type type,
                                 int n_dims, const int64_t *ne, uint64_t *size);

/* Name of a ggml type id, including the ones TinyAI does not support
 * ("Q4_K"), or NULL if the id is unknown to ggml as well. */
const char *tai_fmt_ggml_type_name(uint32_t id);

/* Parsers: fill m->pub from the mapping (kind, version, alignment, kvs,
 * tensors, layer table). */
TinyAIStatus tai_gguf_parse(tai_mf_impl *m);
TinyAIStatus tai_tmai_parse(tai_mf_impl *m, bool verify_checksums);

static inline uint64_t tai_align_up(uint64_t x, uint64_t a) {
    return (x + (a - 1)) & ~(a - 1);
}

#ifdef __cplusplus
}
#endif

#endif /* TAI_RUNTIME_FORMAT_FORMAT_INTERNAL_H */
