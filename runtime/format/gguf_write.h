/*
 * runtime/format: a small streaming GGUF v3 writer (used by the synthetic
 * model writer, synth.h, and by tests).
 *
 * Usage: open; add every kv and every tensor's info (name, type, shape);
 * begin_data writes the header, kvs and tensor infos; then write each
 * tensor's bytes in the order the tensors were added (any number of write
 * calls per tensor; padding to the alignment is inserted between tensors);
 * finish checks that every tensor got exactly its size, fsyncs and renames
 * "<path>.tmp" to `path`. Any failure leaves no file at `path` once the
 * writer is finished or aborted. Tensor data is never held in memory, so
 * models larger than RAM can be written.
 *
 * Errors: each call returns a status with the message set; after a failure
 * the only valid call is tai_gguf_writer_abort. Not thread-safe.
 */
#ifndef TAI_RUNTIME_FORMAT_GGUF_WRITE_H
#define TAI_RUNTIME_FORMAT_GGUF_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tinyai/status.h>

#include "runtime/format/model_file.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tai_gguf_writer tai_gguf_writer;

/* Creates "<path>.tmp". alignment: a power of two (GGUF's default is 32);
 * unless it is 32, a general.alignment kv is written for it. The caller ends
 * the writer with tai_gguf_writer_finish or tai_gguf_writer_abort. */
TinyAIStatus tai_gguf_writer_open(const char *path, uint32_t alignment,
                                  tai_gguf_writer **out);

/* Metadata; the key and values are copied. Keys must be unique. */
TinyAIStatus tai_gguf_writer_add_kv(tai_gguf_writer *w, const tai_kv *kv);
TinyAIStatus tai_gguf_writer_add_u32(tai_gguf_writer *w, const char *key, uint32_t v);
TinyAIStatus tai_gguf_writer_add_f32(tai_gguf_writer *w, const char *key, float v);
TinyAIStatus tai_gguf_writer_add_bool(tai_gguf_writer *w, const char *key, bool v);
TinyAIStatus tai_gguf_writer_add_str(tai_gguf_writer *w, const char *key, const char *v);
/* An array of n scalars of elem_type (raw little-endian values). */
TinyAIStatus tai_gguf_writer_add_arr(tai_gguf_writer *w, const char *key,
                                     tai_kv_type elem_type, const void *data, uint64_t n);
/* An array of n NUL-terminated strings. */
TinyAIStatus tai_gguf_writer_add_arr_str(tai_gguf_writer *w, const char *key,
                                         const char *const *strs, uint64_t n);

/* A tensor: n_dims 1..4 dims ne[0] (row length) first. */
TinyAIStatus tai_gguf_writer_add_tensor(tai_gguf_writer *w, const char *name,
                                        tai_type type, int n_dims, const int64_t *ne);

TinyAIStatus tai_gguf_writer_begin_data(tai_gguf_writer *w);
/* Appends n bytes to the current tensor; must not run past its end. */
TinyAIStatus tai_gguf_writer_write(tai_gguf_writer *w, const void *data, size_t n);
/* Completes the file and frees the writer (also on failure). */
TinyAIStatus tai_gguf_writer_finish(tai_gguf_writer *w);
/* Removes the temporary file and frees the writer. Accepts NULL. */
void tai_gguf_writer_abort(tai_gguf_writer *w);

#ifdef __cplusplus
}
#endif

#endif /* TAI_RUNTIME_FORMAT_GGUF_WRITE_H */
