/*
 * runtime/format/gguf.c: the GGUF reader (versions 2 and 3, little-endian).
 *
 * Layout (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md):
 *   "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv x (string key | u32 type | value)
 *   n_tensors x (string name | u32 n_dims | n_dims x u64 ne | u32 type | u64 offset)
 *   padding to general.alignment (default 32)
 *   data: tensor i at data_start + offset_i
 * Strings are u64 length + bytes, no NUL. Validation follows ggml's reader:
 * every read is bounds-checked, counts are checked against the bytes left
 * before anything is allocated, shapes and offsets are overflow-checked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "runtime/format/format_internal.h"

/* A tensor info takes at least: name length 8 + 1 byte, n_dims 4, one dim 8,
 * type 4, offset 8. */
#define MIN_TENSOR_INFO 33

static uint64_t sat_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

static TinyAIStatus check_version(const char *path, uint32_t v) {
    if (v == 2 || v == 3) return TINYAI_OK;
    if (v == 1)
        return tai_error(TINYAI_ERR_UNSUPPORTED, "%s: GGUF version 1 is not supported "
                         "(only versions 2 and 3); convert the model again with a current "
                         "llama.cpp", path);
    uint32_t swapped = __builtin_bswap32(v);
    if (swapped >= 1 && swapped <= 3)
        return tai_error(TINYAI_ERR_UNSUPPORTED, "%s: big-endian GGUF (version %u) is not "
                         "supported", path, swapped);
    return tai_error(TINYAI_ERR_UNSUPPORTED, "%s: GGUF version %u is not supported (only "
                     "versions 2 and 3)", path, v);
}

/* general.alignment: an unsigned integer, a nonzero power of two. */
static TinyAIStatus read_alignment(tai_model_file *mf) {
    mf->alignment = 32;
    const tai_kv *kv = tai_model_file_find_kv(mf, "general.alignment");
    if (!kv) return TINYAI_OK;
    uint64_t a;
    if (kv->type == TAI_KV_U8 || kv->type == TAI_KV_U16 || kv->type == TAI_KV_U32 ||
        kv->type == TAI_KV_U64) {
        a = kv->v.u64;
    } else if ((kv->type == TAI_KV_I8 || kv->type == TAI_KV_I16 || kv->type == TAI_KV_I32 ||
                kv->type == TAI_KV_I64) && kv->v.i64 > 0) {
        a = (uint64_t)kv->v.i64;
    } else {
        return tai_error(TINYAI_ERR_FORMAT, "%s: general.alignment has type %s, expected "
                         "an unsigned integer", mf->path, tai_kv_type_name(kv->type));
    }
    if (a == 0 || (a & (a - 1)) != 0 || a > (1u << 30))
        return tai_error(TINYAI_ERR_FORMAT, "%s: general.alignment %llu is not a power of "
                         "two in 1..2^30", mf->path, (unsigned long long)a);
    mf->alignment = a;
    return TINYAI_OK;
}

static TinyAIStatus read_tensor_info(tai_cur *c, tai_tensor *t, int64_t i) {
    char what[64];
    snprintf(what, sizeof what, "tensor info %lld name", (long long)i);
    TinyAIStatus st = tai_cur_string(c, &t->name, NULL, true, what);
    if (st) return st;
    if (!t->name[0])
        return tai_error(TINYAI_ERR_FORMAT, "%s: tensor info %lld has an empty name",
                         c->path, (long long)i);
    uint32_t n_dims;
    if (!tai_cur_u32(c, &n_dims))
        return tai_cur_trunc(c, c->pos + 4, "tensor info %lld ('%s')", (long long)i, t->name);
    if (n_dims < 1 || n_dims > TAI_MAX_DIMS)
        return tai_error(TINYAI_ERR_FORMAT, "%s: tensor '%s' has %u dimensions (1..%d "
                         "supported)", c->path, t->name, n_dims, TAI_MAX_DIMS);
    t->n_dims = (int)n_dims;
    for (int d = 0; d < TAI_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        uint64_t v;
        if (!tai_cur_u64(c, &v))
            return tai_cur_trunc(c, c->pos + 8, "tensor info %lld ('%s')", (long long)i,
                                 t->name);
        t->ne[d] = (int64_t)v;
    }
    uint32_t type;
    uint64_t off;
    if (!tai_cur_u32(c, &type) || !tai_cur_u64(c, &off))
        return tai_cur_trunc(c, c->pos + 12, "tensor info %lld ('%s')", (long long)i,
                             t->name);
    if (!tai_type_valid((int)type)) {
        const char *name = tai_fmt_ggml_type_name(type);
        if (name)
            return tai_error(TINYAI_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s (id %u), "
                             "which TinyAI does not read (it reads F32, F16, BF16, Q4_0, Q4_1, "
                             "Q5_0, Q5_1, Q8_0, IQ4_NL, Q2_K..Q6_K, Q8_K)",
                             c->path, t->name, name, type);
        return tai_error(TINYAI_ERR_FORMAT, "%s: tensor '%s' has invalid type id %u",
                         c->path, t->name, type);
    }
    t->type = (tai_type)type;
    t->offset = off; /* relative to the data section until made absolute */
    return tai_fmt_tensor_size(c->path, t->name, t->type, t->n_dims, t->ne, &t->size);
}

TinyAIStatus tai_gguf_parse(tai_mf_impl *m) {
    tai_model_file *mf = &m->pub;
    mf->kind = TAI_FILE_GGUF;
    tai_cur c = {mf->map, 4, mf->file_size, mf->path, "end of file", mf->file_size};
    uint32_t version;
    uint64_t n_tensors, n_kv;
    if (!tai_cur_u32(&c, &version)) return tai_cur_trunc(&c, 8, "header");
    TinyAIStatus st = check_version(mf->path, version);
    if (st) return st;
    mf->version = version;
    if (!tai_cur_u64(&c, &n_tensors) || !tai_cur_u64(&c, &n_kv))
        return tai_cur_trunc(&c, 24, "header");

    /* Reject absurd counts before allocating anything for them. */
    if (n_tensors > TAI_FMT_MAX_TENSORS)
        return tai_error(TINYAI_ERR_FORMAT, "%s: absurd tensor count %llu (at most %d "
                         "supported)", mf->path, (unsigned long long)n_tensors,
                         TAI_FMT_MAX_TENSORS);
    st = tai_fmt_read_kvs(&c, m, n_kv);
    if (st) return st;
    st = read_alignment(mf);
    if (st) return st;

    if (n_tensors > tai_cur_left(&c) / MIN_TENSOR_INFO)
        return tai_cur_trunc(&c, c.pos + n_tensors * MIN_TENSOR_INFO,
                             "tensor infos (%llu of them)", (unsigned long long)n_tensors);
    mf->tensors = calloc(n_tensors ? n_tensors : 1, sizeof(tai_tensor));
    if (!mf->tensors) return tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", mf->path);
    mf->n_tensors = 0;
    for (uint64_t i = 0; i < n_tensors; i++) {
        mf->n_tensors = (int64_t)i + 1; /* so close frees a partly read name */
        st = read_tensor_info(&c, &mf->tensors[i], (int64_t)i);
        if (st) return st;
    }
    st = tai_fmt_index_tensors(m);
    if (st) return st;

    uint64_t data_start = tai_align_up(c.pos, mf->alignment);
    for (int64_t i = 0; i < mf->n_tensors; i++) {
        tai_tensor *t = &mf->tensors[i];
        if (t->offset % mf->alignment != 0)
            return tai_error(TINYAI_ERR_FORMAT, "%s: tensor '%s' offset %llu is not a multiple "
                             "of the alignment %llu", mf->path, t->name,
                             (unsigned long long)t->offset, (unsigned long long)mf->alignment);
        if (data_start > mf->file_size || t->offset > mf->file_size - data_start ||
            t->size > mf->file_size - data_start - t->offset) {
            unsigned long long end = sat_add(sat_add(data_start, t->offset), t->size);
            return tai_error(TINYAI_ERR_FORMAT, "%s: truncated file: tensor '%s' data ends "
                             "at byte %llu past end of file (%llu bytes)", mf->path, t->name,
                             end, (unsigned long long)mf->file_size);
        }
        t->offset += data_start;
        t->data = mf->map + t->offset;
        t->layout = TAI_LAYOUT_ROWS; /* GGUF has no other layout */
    }
    return tai_fmt_build_layers_from_names(m);
}
