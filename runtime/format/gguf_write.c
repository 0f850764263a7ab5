/*
 * runtime/format/gguf_write.c: the streaming GGUF v3 writer (gguf_write.h).
 * Header, kvs and tensor infos are encoded in memory (they are small); the
 * tensor data goes straight to the file through stdio's buffer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "runtime/format/format_internal.h"
#include "runtime/format/gguf_write.h"

struct tai_gguf_writer {
    char *path, *tmp;
    FILE *f;
    uint32_t alignment;
    tai_buf kvs, infos;
    uint64_t n_kv;
    char **keys;          /* for the duplicate check */
    uint64_t *sizes;      /* per tensor */
    int64_t n_tensors, cap_tensors;
    uint64_t data_offset; /* relative offset of the next tensor */
    bool begun, failed;
    int64_t cur;          /* tensor being written */
    uint64_t cur_written, pos;
};

static TinyAIStatus fail(tai_gguf_writer *w, TinyAIStatus st) {
    w->failed = true;
    return st;
}

TinyAIStatus tai_gguf_writer_open(const char *path, uint32_t alignment,
                                  tai_gguf_writer **out) {
    if (!out) return tai_error(TINYAI_ERR_INVALID_ARG, "gguf writer: NULL out");
    *out = NULL;
    if (!path) return tai_error(TINYAI_ERR_INVALID_ARG, "gguf writer: NULL path");
    if (alignment == 0 || (alignment & (alignment - 1)))
        return tai_error(TINYAI_ERR_INVALID_ARG, "%s: alignment %u is not a power of two",
                         path, alignment);
    tai_gguf_writer *w = calloc(1, sizeof *w);
    if (!w) return tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", path);
    w->alignment = alignment;
    w->path = strdup(path);
    w->tmp = malloc(strlen(path) + 5);
    if (!w->path || !w->tmp) {
        free(w->path);
        free(w->tmp);
        free(w);
        return tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", path);
    }
    sprintf(w->tmp, "%s.tmp", path);
    w->f = fopen(w->tmp, "wbe");
    if (!w->f) {
        TinyAIStatus st = tai_error(TINYAI_ERR_IO, "%s: cannot create: %s", w->tmp,
                                    strerror(errno));
        free(w->path);
        free(w->tmp);
        free(w);
        return st;
    }
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);
    if (alignment != 32) {
        TinyAIStatus st = tai_gguf_writer_add_u32(w, "general.alignment", alignment);
        if (st) {
            tai_gguf_writer_abort(w);
            return st;
        }
    }
    *out = w;
    return TINYAI_OK;
}

TinyAIStatus tai_gguf_writer_add_kv(tai_gguf_writer *w, const tai_kv *kv) {
    if (!w || !kv || !kv->key || w->failed || w->begun)
        return tai_error(TINYAI_ERR_INVALID_ARG, "gguf writer: add_kv out of order or NULL");
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->keys[i], kv->key) == 0)
            return fail(w, tai_error(TINYAI_ERR_INVALID_ARG, "%s: duplicate key '%s'",
                                     w->path, kv->key));
    char **keys = realloc(w->keys, sizeof(char *) * (w->n_kv + 1));
    if (!keys) return fail(w, tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", w->path));
    w->keys = keys;
    if (!(w->keys[w->n_kv] = strdup(kv->key)))
        return fail(w, tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", w->path));
    w->n_kv++;
    if (!tai_fmt_kv_encode(&w->kvs, kv))
        return fail(w, w->kvs.failed
                           ? tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", w->path)
                           : tai_error(TINYAI_ERR_INVALID_ARG, "%s: kv '%s' has an invalid "
                                       "type", w->path, kv->key));
    return TINYAI_OK;
}

TinyAIStatus tai_gguf_writer_add_u32(tai_gguf_writer *w, const char *key, uint32_t v) {
    tai_kv kv = {.key = (char *)key, .type = TAI_KV_U32};
    kv.v.u64 = v;
    return tai_gguf_writer_add_kv(w, &kv);
}

TinyAIStatus tai_gguf_writer_add_f32(tai_gguf_writer *w, const char *key, float v) {
    tai_kv kv = {.key = (char *)key, .type = TAI_KV_F32};
    kv.v.f64 = v;
    return tai_gguf_writer_add_kv(w, &kv);
}

TinyAIStatus tai_gguf_writer_add_bool(tai_gguf_writer *w, const char *key, bool v) {
    tai_kv kv = {.key = (char *)key, .type = TAI_KV_BOOL};
    kv.v.u64 = v;
    return tai_gguf_writer_add_kv(w, &kv);
}

TinyAIStatus tai_gguf_writer_add_str(tai_gguf_writer *w, const char *key, const char *v) {
    tai_kv kv = {.key = (char *)key, .type = TAI_KV_STRING};
    kv.v.str.str = v;
    kv.v.str.len = strlen(v);
    return tai_gguf_writer_add_kv(w, &kv);
}

TinyAIStatus tai_gguf_writer_add_arr(tai_gguf_writer *w, const char *key,
                                     tai_kv_type elem_type, const void *data, uint64_t n) {
    if (elem_type == TAI_KV_STRING || elem_type == TAI_KV_ARRAY)
        return tai_error(TINYAI_ERR_INVALID_ARG, "gguf writer: add_arr takes scalars only");
    tai_kv kv = {.key = (char *)key, .type = TAI_KV_ARRAY};
    kv.v.arr.type = elem_type;
    kv.v.arr.n = n;
    kv.v.arr.data = data;
    return tai_gguf_writer_add_kv(w, &kv);
}

TinyAIStatus tai_gguf_writer_add_arr_str(tai_gguf_writer *w, const char *key,
                                         const char *const *strs, uint64_t n) {
    tai_str *s = malloc(sizeof(tai_str) * (n ? n : 1));
    if (!s) return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0; i < n; i++) {
        s[i].str = strs[i];
        s[i].len = strlen(strs[i]);
    }
    tai_kv kv = {.key = (char *)key, .type = TAI_KV_ARRAY};
    kv.v.arr.type = TAI_KV_STRING;
    kv.v.arr.n = n;
    kv.v.arr.data = s;
    TinyAIStatus st = tai_gguf_writer_add_kv(w, &kv);
    free(s);
    return st;
}

TinyAIStatus tai_gguf_writer_add_tensor(tai_gguf_writer *w, const char *name,
                                        tai_type type, int n_dims, const int64_t *ne) {
    if (!w || !name || !ne || w->failed || w->begun)
        return tai_error(TINYAI_ERR_INVALID_ARG, "gguf writer: add_tensor out of order or "
                         "NULL");
    if (!tai_type_valid((int)type) || n_dims < 1 || n_dims > TAI_MAX_DIMS)
        return fail(w, tai_error(TINYAI_ERR_INVALID_ARG, "%s: tensor '%s': bad type %d or "
                                 "n_dims %d", w->path, name, (int)type, n_dims));
    uint64_t size;
    TinyAIStatus st = tai_fmt_tensor_size(w->path, name, type, n_dims, ne, &size);
    if (st) return fail(w, TINYAI_ERR_INVALID_ARG);
    if (w->n_tensors == w->cap_tensors) {
        int64_t cap = w->cap_tensors ? 2 * w->cap_tensors : 64;
        uint64_t *s = realloc(w->sizes, sizeof(uint64_t) * (size_t)cap);
        if (!s) return fail(w, tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", w->path));
        w->sizes = s;
        w->cap_tensors = cap;
    }
    w->sizes[w->n_tensors++] = size;
    tai_buf_str(&w->infos, name, strlen(name));
    tai_buf_u32(&w->infos, (uint32_t)n_dims);
    for (int d = 0; d < n_dims; d++) tai_buf_u64(&w->infos, (uint64_t)ne[d]);
    tai_buf_u32(&w->infos, (uint32_t)type);
    tai_buf_u64(&w->infos, w->data_offset);
    w->data_offset = tai_align_up(w->data_offset + size, w->alignment);
    if (w->infos.failed) return fail(w, tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", w->path));
    return TINYAI_OK;
}

static TinyAIStatus put(tai_gguf_writer *w, const void *p, size_t n) {
    if (n && fwrite(p, 1, n, w->f) != n)
        return fail(w, tai_error(TINYAI_ERR_IO, "%s: write failed at byte %llu: %s", w->tmp,
                                 (unsigned long long)w->pos, strerror(errno)));
    w->pos += n;
    return TINYAI_OK;
}

static TinyAIStatus pad(tai_gguf_writer *w) {
    static const uint8_t zeros[256];
    uint64_t n = tai_align_up(w->pos, w->alignment) - w->pos;
    while (n > 0) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        TinyAIStatus st = put(w, zeros, k);
        if (st) return st;
        n -= k;
    }
    return TINYAI_OK;
}

TinyAIStatus tai_gguf_writer_begin_data(tai_gguf_writer *w) {
    if (!w || w->failed || w->begun)
        return tai_error(TINYAI_ERR_INVALID_ARG, "gguf writer: begin_data out of order");
    w->begun = true;
    if (w->kvs.failed) return fail(w, tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", w->path));
    uint8_t hdr[24];
    uint32_t version = 3;
    uint64_t nt = (uint64_t)w->n_tensors;
    memcpy(hdr, "GGUF", 4);
    memcpy(hdr + 4, &version, 4);
    memcpy(hdr + 8, &nt, 8);
    memcpy(hdr + 16, &w->n_kv, 8);
    TinyAIStatus st = put(w, hdr, sizeof hdr);
    if (!st) st = put(w, w->kvs.data, w->kvs.len);
    if (!st) st = put(w, w->infos.data, w->infos.len);
    if (!st) st = pad(w);
    w->cur = 0;
    w->cur_written = 0;
    return st;
}

TinyAIStatus tai_gguf_writer_write(tai_gguf_writer *w, const void *data, size_t n) {
    if (!w || w->failed || !w->begun)
        return tai_error(TINYAI_ERR_INVALID_ARG, "gguf writer: write out of order");
    while (w->cur < w->n_tensors && w->cur_written == w->sizes[w->cur] && n > 0) {
        w->cur++;
        w->cur_written = 0;
    }
    if (n == 0) return TINYAI_OK;
    if (w->cur >= w->n_tensors || n > w->sizes[w->cur] - w->cur_written)
        return fail(w, tai_error(TINYAI_ERR_INVALID_ARG, "%s: write of %zu bytes runs past "
                                 "the end of tensor %lld", w->path, n, (long long)w->cur));
    TinyAIStatus st = put(w, data, n);
    if (st) return st;
    w->cur_written += n;
    if (w->cur_written == w->sizes[w->cur]) return pad(w);
    return TINYAI_OK;
}

static void destroy(tai_gguf_writer *w, bool remove_tmp) {
    if (w->f) fclose(w->f);
    if (remove_tmp) unlink(w->tmp);
    for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    free(w->keys);
    free(w->sizes);
    tai_buf_free(&w->kvs);
    tai_buf_free(&w->infos);
    free(w->path);
    free(w->tmp);
    free(w);
}

void tai_gguf_writer_abort(tai_gguf_writer *w) {
    if (w) destroy(w, true);
}

TinyAIStatus tai_gguf_writer_finish(tai_gguf_writer *w) {
    if (!w) return tai_error(TINYAI_ERR_INVALID_ARG, "gguf writer: NULL");
    TinyAIStatus st = TINYAI_OK;
    if (w->failed) {
        st = tai_error(TINYAI_ERR_INVALID_ARG, "%s: finish after a failed call", w->path);
        goto out;
    }
    if (!w->begun) st = tai_gguf_writer_begin_data(w);
    if (st) goto out;
    /* Every tensor must be complete; a trailing empty run is fine. */
    while (w->cur < w->n_tensors && w->cur_written == w->sizes[w->cur]) {
        w->cur++;
        w->cur_written = 0;
    }
    if (w->cur < w->n_tensors) {
        st = tai_error(TINYAI_ERR_INVALID_ARG, "%s: tensor %lld of %lld is incomplete "
                       "(%llu of %llu bytes)", w->path, (long long)w->cur,
                       (long long)w->n_tensors, (unsigned long long)w->cur_written,
                       (unsigned long long)w->sizes[w->cur]);
        goto out;
    }
    if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0) {
        st = tai_error(TINYAI_ERR_IO, "%s: flush failed: %s", w->tmp, strerror(errno));
        goto out;
    }
    int rc = fclose(w->f);
    w->f = NULL;
    if (rc != 0) {
        st = tai_error(TINYAI_ERR_IO, "%s: close failed: %s", w->tmp, strerror(errno));
        goto out;
    }
    if (rename(w->tmp, w->path) != 0)
        st = tai_error(TINYAI_ERR_IO, "%s: cannot rename %s to it: %s", w->path, w->tmp,
                       strerror(errno));
out:
    destroy(w, st != TINYAI_OK);
    return st;
}
