/*
 * runtime/format/kv.c: the bounds-checked cursor, GGUF key/value decoding and
 * encoding (shared by the GGUF reader, the .tmai reader and both writers),
 * and the typed kv getters of model_file.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "runtime/format/format_internal.h"

/* ---- Cursor ------------------------------------------------------------- */

TinyAIStatus tai_cur_trunc(const tai_cur *c, uint64_t need_end, const char *fmt, ...) {
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (c->end == c->file_size) {
        return tai_error(TINYAI_ERR_FORMAT,
                         "%s: truncated file: %s ends at byte %llu past end of file "
                         "(%llu bytes)",
                         c->path, what, (unsigned long long)need_end,
                         (unsigned long long)c->file_size);
    }
    return tai_error(TINYAI_ERR_FORMAT, "%s: %s ends at byte %llu past the %s (byte %llu)",
                     c->path, what, (unsigned long long)need_end, c->limit,
                     (unsigned long long)c->end);
}

bool tai_cur_bytes(tai_cur *c, void *dst, uint64_t n) {
    if (n > tai_cur_left(c)) return false;
    memcpy(dst, c->base + c->pos, n);
    c->pos += n;
    return true;
}

bool tai_cur_u32(tai_cur *c, uint32_t *v) { return tai_cur_bytes(c, v, 4); }
bool tai_cur_u64(tai_cur *c, uint64_t *v) { return tai_cur_bytes(c, v, 8); }

/* The byte where a read of n bytes at the cursor would end, saturating. */
static uint64_t need_end(const tai_cur *c, uint64_t n) {
    return n > UINT64_MAX - c->pos ? UINT64_MAX : c->pos + n;
}

TinyAIStatus tai_cur_string(tai_cur *c, char **out, uint64_t *len_out, bool no_nul,
                            const char *what) {
    uint64_t len;
    *out = NULL;
    if (!tai_cur_u64(c, &len)) return tai_cur_trunc(c, need_end(c, 8), "%s length", what);
    if (len > tai_cur_left(c)) {
        /* A huge length is far more likely garbage than truncation. */
        if (len > TAI_FMT_ABSURD_LEN)
            return tai_error(TINYAI_ERR_FORMAT,
                             "%s: %s has absurd length %llu (file is %llu bytes)", c->path,
                             what, (unsigned long long)len,
                             (unsigned long long)c->file_size);
        return tai_cur_trunc(c, need_end(c, len), "%s", what);
    }
    const char *src = (const char *)c->base + c->pos;
    if (no_nul && memchr(src, 0, len))
        return tai_error(TINYAI_ERR_FORMAT, "%s: %s contains a NUL byte", c->path, what);
    char *s = malloc(len + 1);
    if (!s) return tai_error(TINYAI_ERR_NOMEM, "%s: out of memory reading %s", c->path, what);
    memcpy(s, src, len);
    s[len] = '\0';
    c->pos += len;
    *out = s;
    if (len_out) *len_out = len;
    return TINYAI_OK;
}

/* ---- Value types -------------------------------------------------------- */

size_t tai_kv_type_size(int t) {
    switch (t) {
    case TAI_KV_U8: case TAI_KV_I8: case TAI_KV_BOOL: return 1;
    case TAI_KV_U16: case TAI_KV_I16: return 2;
    case TAI_KV_U32: case TAI_KV_I32: case TAI_KV_F32: return 4;
    case TAI_KV_U64: case TAI_KV_I64: case TAI_KV_F64: return 8;
    default: return 0;
    }
}

const char *tai_kv_type_name(int t) {
    static const char *const names[] = {"u8",  "i8",     "u16",   "i16", "u32",
                                        "i32", "f32",    "bool",  "string",
                                        "array", "u64",  "i64",   "f64"};
    return t >= 0 && t <= TAI_KV_F64 ? names[t] : "?";
}

static bool type_is_uint(int t) {
    return t == TAI_KV_U8 || t == TAI_KV_U16 || t == TAI_KV_U32 || t == TAI_KV_U64;
}
static bool type_is_int(int t) {
    return t == TAI_KV_I8 || t == TAI_KV_I16 || t == TAI_KV_I32 || t == TAI_KV_I64;
}

/* Decodes one scalar of type t from 1..8 little-endian bytes into kv->v. */
static void decode_scalar(tai_kv *kv, int t, const uint8_t *p) {
    switch (t) {
    case TAI_KV_U8: kv->v.u64 = p[0]; break;
    case TAI_KV_BOOL: kv->v.u64 = p[0] != 0; break;
    case TAI_KV_I8: kv->v.i64 = (int8_t)p[0]; break;
    case TAI_KV_U16: { uint16_t x; memcpy(&x, p, 2); kv->v.u64 = x; break; }
    case TAI_KV_I16: { int16_t x; memcpy(&x, p, 2); kv->v.i64 = x; break; }
    case TAI_KV_U32: { uint32_t x; memcpy(&x, p, 4); kv->v.u64 = x; break; }
    case TAI_KV_I32: { int32_t x; memcpy(&x, p, 4); kv->v.i64 = x; break; }
    case TAI_KV_F32: { float x; memcpy(&x, p, 4); kv->v.f64 = x; break; }
    case TAI_KV_U64: memcpy(&kv->v.u64, p, 8); break;
    case TAI_KV_I64: memcpy(&kv->v.i64, p, 8); break;
    case TAI_KV_F64: memcpy(&kv->v.f64, p, 8); break;
    default: break;
    }
}

void tai_fmt_kv_free(tai_kv *kv) {
    if (!kv) return;
    free(kv->key);
    if (kv->type == TAI_KV_STRING) free((void *)kv->v.str.str);
    if (kv->type == TAI_KV_ARRAY) free((void *)kv->v.arr.data);
    memset(kv, 0, sizeof *kv);
}

/* Reads an array value: u32 element type, u64 count, elements. Strings go
 * into one block: n tai_str followed by their NUL-terminated bytes. */
static TinyAIStatus read_array(tai_cur *c, tai_kv *kv, int64_t i) {
    uint32_t et;
    uint64_t n;
    if (!tai_cur_u32(c, &et))
        return tai_cur_trunc(c, need_end(c, 4), "kv %lld ('%s') array type", (long long)i,
                             kv->key);
    if (et == TAI_KV_ARRAY)
        return tai_error(TINYAI_ERR_UNSUPPORTED,
                         "%s: kv %lld ('%s') is a nested array, which is not supported",
                         c->path, (long long)i, kv->key);
    if (et != TAI_KV_STRING && tai_kv_type_size((int)et) == 0)
        return tai_error(TINYAI_ERR_FORMAT,
                         "%s: kv %lld ('%s') is an array of invalid element type %u",
                         c->path, (long long)i, kv->key, et);
    if (!tai_cur_u64(c, &n))
        return tai_cur_trunc(c, need_end(c, 8), "kv %lld ('%s') array length",
                             (long long)i, kv->key);
    uint64_t esize = et == TAI_KV_STRING ? 8 : tai_kv_type_size((int)et);
    if (n > tai_cur_left(c) / esize) {
        if (n > TAI_FMT_ABSURD_LEN / esize)
            return tai_error(TINYAI_ERR_FORMAT,
                             "%s: kv %lld ('%s') has absurd array length %llu "
                             "(file is %llu bytes)",
                             c->path, (long long)i, kv->key, (unsigned long long)n,
                             (unsigned long long)c->file_size);
        return tai_cur_trunc(c, need_end(c, n * esize), "kv %lld ('%s') array data",
                             (long long)i, kv->key);
    }
    kv->v.arr.type = (tai_kv_type)et;
    kv->v.arr.n = n;
    if (et != TAI_KV_STRING) {
        void *d = malloc(n * esize > 0 ? n * esize : 1);
        if (!d) return tai_error(TINYAI_ERR_NOMEM, "%s: out of memory reading kv '%s'",
                                 c->path, kv->key);
        memcpy(d, c->base + c->pos, n * esize);
        c->pos += n * esize;
        kv->v.arr.data = d;
        return TINYAI_OK;
    }
    /* Pass 1: validate every length, sum the bytes (bounded by the file). */
    tai_cur scan = *c;
    uint64_t total = 0;
    for (uint64_t j = 0; j < n; j++) {
        uint64_t len;
        if (!tai_cur_u64(&scan, &len))
            return tai_cur_trunc(&scan, need_end(&scan, 8),
                                 "kv %lld ('%s') string %llu length", (long long)i,
                                 kv->key, (unsigned long long)j);
        if (len > tai_cur_left(&scan)) {
            if (len > TAI_FMT_ABSURD_LEN)
                return tai_error(TINYAI_ERR_FORMAT,
                                 "%s: kv %lld ('%s') string %llu has absurd length %llu "
                                 "(file is %llu bytes)",
                                 c->path, (long long)i, kv->key, (unsigned long long)j,
                                 (unsigned long long)len, (unsigned long long)c->file_size);
            return tai_cur_trunc(&scan, need_end(&scan, len), "kv %lld ('%s') string %llu",
                                 (long long)i, kv->key, (unsigned long long)j);
        }
        scan.pos += len;
        total += len + 1;
    }
    size_t head = (size_t)n * sizeof(tai_str);
    uint8_t *block = malloc(head + total + 1);
    if (!block) return tai_error(TINYAI_ERR_NOMEM, "%s: out of memory reading kv '%s'",
                                 c->path, kv->key);
    tai_str *strs = (tai_str *)block;
    char *chars = (char *)block + head;
    /* Pass 2: copy (lengths were checked above). */
    for (uint64_t j = 0; j < n; j++) {
        uint64_t len = 0;
        tai_cur_u64(c, &len);
        memcpy(chars, c->base + c->pos, len);
        chars[len] = '\0';
        strs[j].len = len;
        strs[j].str = chars;
        chars += len + 1;
        c->pos += len;
    }
    kv->v.arr.data = block;
    return TINYAI_OK;
}

static TinyAIStatus read_kv(tai_cur *c, tai_kv *kv, int64_t i) {
    char what[64];
    snprintf(what, sizeof what, "kv %lld key", (long long)i);
    TinyAIStatus st = tai_cur_string(c, &kv->key, NULL, true, what);
    if (st) return st;
    if (!kv->key[0])
        return tai_error(TINYAI_ERR_FORMAT, "%s: kv %lld has an empty key", c->path,
                         (long long)i);
    uint32_t t;
    if (!tai_cur_u32(c, &t))
        return tai_cur_trunc(c, need_end(c, 4), "kv %lld ('%s') type", (long long)i,
                             kv->key);
    if (t == TAI_KV_STRING) {
        char *s;
        uint64_t len;
        snprintf(what, sizeof what, "kv %lld value", (long long)i);
        st = tai_cur_string(c, &s, &len, false, what);
        if (st) return st;
        kv->type = TAI_KV_STRING;
        kv->v.str.str = s;
        kv->v.str.len = len;
        return TINYAI_OK;
    }
    if (t == TAI_KV_ARRAY) {
        kv->type = TAI_KV_ARRAY;
        kv->v.arr.data = NULL;
        return read_array(c, kv, i);
    }
    size_t size = tai_kv_type_size((int)t);
    if (size == 0)
        return tai_error(TINYAI_ERR_FORMAT, "%s: kv %lld ('%s') has invalid value type %u",
                         c->path, (long long)i, kv->key, t);
    uint8_t buf[8];
    if (!tai_cur_bytes(c, buf, size))
        return tai_cur_trunc(c, need_end(c, size), "kv %lld ('%s') value", (long long)i,
                             kv->key);
    kv->type = (tai_kv_type)t;
    decode_scalar(kv, (int)t, buf);
    return TINYAI_OK;
}

TinyAIStatus tai_fmt_read_kvs(tai_cur *c, tai_mf_impl *m, uint64_t n_kv) {
    tai_model_file *mf = &m->pub;
    /* The smallest kv (1-byte key, u8 value) takes 14 bytes. */
    if (n_kv > TAI_FMT_MAX_KVS)
        return tai_error(TINYAI_ERR_FORMAT, "%s: absurd key/value count %llu (at most %d "
                         "supported)", c->path, (unsigned long long)n_kv, TAI_FMT_MAX_KVS);
    if (n_kv > tai_cur_left(c) / 14)
        return tai_cur_trunc(c, need_end(c, n_kv * 14), "key/value pairs (%llu of them)",
                             (unsigned long long)n_kv);
    mf->kvs = calloc(n_kv ? n_kv : 1, sizeof(tai_kv));
    if (!mf->kvs) return tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", c->path);
    mf->n_kvs = 0;
    for (uint64_t i = 0; i < n_kv; i++) {
        /* Count it first so that close frees a partly read kv too. */
        mf->n_kvs = (int64_t)i + 1;
        TinyAIStatus st = read_kv(c, &mf->kvs[i], (int64_t)i);
        if (st) return st;
    }
    return tai_fmt_build_index(mf->path, mf->kvs, sizeof(tai_kv), offsetof(tai_kv, key),
                               mf->n_kvs, "key", &m->kv_index, &m->kv_index_cap);
}

/* ---- Encoding ----------------------------------------------------------- */

void tai_buf_append(tai_buf *b, const void *p, size_t n) {
    if (b->failed) return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) { b->failed = true; return; }
            cap *= 2;
        }
        uint8_t *d = realloc(b->data, cap);
        if (!d) { b->failed = true; return; }
        b->data = d;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
}

void tai_buf_u32(tai_buf *b, uint32_t v) { tai_buf_append(b, &v, 4); }
void tai_buf_u64(tai_buf *b, uint64_t v) { tai_buf_append(b, &v, 8); }

void tai_buf_str(tai_buf *b, const char *s, uint64_t len) {
    tai_buf_u64(b, len);
    tai_buf_append(b, s, (size_t)len);
}

void tai_buf_free(tai_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

bool tai_fmt_kv_encode(tai_buf *b, const tai_kv *kv) {
    tai_buf_str(b, kv->key, strlen(kv->key));
    tai_buf_u32(b, (uint32_t)kv->type);
    switch (kv->type) {
    case TAI_KV_U8:
    case TAI_KV_BOOL: { uint8_t x = (uint8_t)kv->v.u64; tai_buf_append(b, &x, 1); break; }
    case TAI_KV_I8: { int8_t x = (int8_t)kv->v.i64; tai_buf_append(b, &x, 1); break; }
    case TAI_KV_U16: { uint16_t x = (uint16_t)kv->v.u64; tai_buf_append(b, &x, 2); break; }
    case TAI_KV_I16: { int16_t x = (int16_t)kv->v.i64; tai_buf_append(b, &x, 2); break; }
    case TAI_KV_U32: tai_buf_u32(b, (uint32_t)kv->v.u64); break;
    case TAI_KV_I32: { int32_t x = (int32_t)kv->v.i64; tai_buf_append(b, &x, 4); break; }
    case TAI_KV_F32: { float x = (float)kv->v.f64; tai_buf_append(b, &x, 4); break; }
    case TAI_KV_U64: tai_buf_u64(b, kv->v.u64); break;
    case TAI_KV_I64: tai_buf_append(b, &kv->v.i64, 8); break;
    case TAI_KV_F64: tai_buf_append(b, &kv->v.f64, 8); break;
    case TAI_KV_STRING: tai_buf_str(b, kv->v.str.str, kv->v.str.len); break;
    case TAI_KV_ARRAY: {
        int et = kv->v.arr.type;
        tai_buf_u32(b, (uint32_t)et);
        tai_buf_u64(b, kv->v.arr.n);
        if (et == TAI_KV_STRING) {
            const tai_str *s = kv->v.arr.data;
            for (uint64_t j = 0; j < kv->v.arr.n; j++) tai_buf_str(b, s[j].str, s[j].len);
        } else {
            size_t es = tai_kv_type_size(et);
            if (es == 0 || kv->v.arr.n > SIZE_MAX / es) return false;
            tai_buf_append(b, kv->v.arr.data, (size_t)kv->v.arr.n * es);
        }
        break;
    }
    default: return false;
    }
    return !b->failed;
}

/* ---- Getters ------------------------------------------------------------ */

static TinyAIStatus find_typed(const tai_model_file *mf, const char *key,
                               const tai_kv **out) {
    if (!mf || !key) return tai_error(TINYAI_ERR_INVALID_ARG, "NULL model file or key");
    const tai_kv *kv = tai_model_file_find_kv(mf, key);
    if (!kv) return tai_error(TINYAI_ERR_FORMAT, "%s: key '%s' not found", mf->path, key);
    *out = kv;
    return TINYAI_OK;
}

static TinyAIStatus wrong_type(const tai_model_file *mf, const tai_kv *kv, const char *want) {
    if (kv->type == TAI_KV_ARRAY)
        return tai_error(TINYAI_ERR_FORMAT, "%s: key '%s' is an array of %s, expected %s",
                         mf->path, kv->key, tai_kv_type_name(kv->v.arr.type), want);
    return tai_error(TINYAI_ERR_FORMAT, "%s: key '%s' has type %s, expected %s", mf->path,
                     kv->key, tai_kv_type_name(kv->type), want);
}

TinyAIStatus tai_kv_get_u32(const tai_model_file *mf, const char *key, uint32_t *out) {
    const tai_kv *kv = NULL;
    TinyAIStatus st = find_typed(mf, key, &kv);
    if (st) return st;
    if (type_is_uint(kv->type)) {
        if (kv->v.u64 > UINT32_MAX) goto range;
        *out = (uint32_t)kv->v.u64;
        return TINYAI_OK;
    }
    if (type_is_int(kv->type)) {
        if (kv->v.i64 < 0 || kv->v.i64 > (int64_t)UINT32_MAX) goto range;
        *out = (uint32_t)kv->v.i64;
        return TINYAI_OK;
    }
    return wrong_type(mf, kv, "an integer");
range:
    return tai_error(TINYAI_ERR_FORMAT, "%s: key '%s' value %s%llu does not fit in u32",
                     mf->path, key, type_is_int(kv->type) && kv->v.i64 < 0 ? "-" : "",
                     type_is_int(kv->type) && kv->v.i64 < 0
                         ? (unsigned long long)(-(kv->v.i64 + 1)) + 1
                         : (unsigned long long)kv->v.u64);
}

TinyAIStatus tai_kv_get_f32(const tai_model_file *mf, const char *key, float *out) {
    const tai_kv *kv = NULL;
    TinyAIStatus st = find_typed(mf, key, &kv);
    if (st) return st;
    if (kv->type != TAI_KV_F32 && kv->type != TAI_KV_F64) return wrong_type(mf, kv, "f32");
    *out = (float)kv->v.f64;
    return TINYAI_OK;
}

TinyAIStatus tai_kv_get_str(const tai_model_file *mf, const char *key, const char **out) {
    const tai_kv *kv = NULL;
    TinyAIStatus st = find_typed(mf, key, &kv);
    if (st) return st;
    if (kv->type != TAI_KV_STRING) return wrong_type(mf, kv, "string");
    *out = kv->v.str.str;
    return TINYAI_OK;
}

TinyAIStatus tai_kv_get_bool(const tai_model_file *mf, const char *key, bool *out) {
    const tai_kv *kv = NULL;
    TinyAIStatus st = find_typed(mf, key, &kv);
    if (st) return st;
    if (kv->type != TAI_KV_BOOL) return wrong_type(mf, kv, "bool");
    *out = kv->v.u64 != 0;
    return TINYAI_OK;
}

TinyAIStatus tai_kv_get_arr(const tai_model_file *mf, const char *key,
                            tai_kv_type elem_type, const void **data, uint64_t *n) {
    const tai_kv *kv = NULL;
    TinyAIStatus st = find_typed(mf, key, &kv);
    if (st) return st;
    if (kv->type != TAI_KV_ARRAY || kv->v.arr.type != elem_type) {
        char want[32];
        snprintf(want, sizeof want, "an array of %s", tai_kv_type_name(elem_type));
        return wrong_type(mf, kv, want);
    }
    *data = kv->v.arr.data;
    *n = kv->v.arr.n;
    return TINYAI_OK;
}
