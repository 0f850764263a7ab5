/*
 * runtime/format/model_file.c: opening a model file (map it, detect GGUF or
 * .tmai from the magic, hand over to the parser), closing it, the name
 * indexes behind the lookups, tensor shape validation, and the layer table
 * derived from the llama tensor names.
 *
 * Layers from tensor names (both formats; .tmai files store the result and
 * the reader checks it against the names):
 *   token_embd*             -> layer 0 (token_embd.weight, token_embd_norm.*)
 *   blk.<N>.*               -> layer 1 + N; N must cover 0..n_block-1
 *   anything else           -> layer n_block + 1, the head (output_norm.*,
 *                              output.*, rope_freqs.*, ...)
 * Putting unknown tensors into the head layer keeps every tensor loadable
 * (the model decides whether it understands them) without inventing layers.
 * A GGUF layer's offset/size is the span of its tensors, which llama.cpp's
 * writers keep contiguous; an empty layer has offset 0, size 0, precision 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "core/error.h"
#include "runtime/format/format_internal.h"

/* ---- Name index ---------------------------------------------------------- */

static const char *name_at(const void *base, size_t stride, size_t off, int64_t i) {
    const char *const *p = (const char *const *)((const uint8_t *)base + (size_t)i * stride + off);
    return *p;
}

TinyAIStatus tai_fmt_build_index(const char *path, const void *base, size_t stride,
                                 size_t name_off, int64_t n, const char *what,
                                 uint32_t **idx_out, uint64_t *cap_out) {
    uint64_t cap = 16;
    while (cap < 2 * (uint64_t)n) cap *= 2;
    uint32_t *idx = calloc(cap, sizeof *idx);
    if (!idx) return tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", path);
    for (int64_t i = 0; i < n; i++) {
        const char *name = name_at(base, stride, name_off, i);
        uint64_t h = XXH64(name, strlen(name), 0) & (cap - 1);
        while (idx[h]) {
            int64_t j = (int64_t)idx[h] - 1;
            if (strcmp(name_at(base, stride, name_off, j), name) == 0) {
                free(idx);
                return tai_error(TINYAI_ERR_FORMAT, "%s: duplicate %s '%s' (%ss %lld and %lld)",
                                 path, what, name, what, (long long)j, (long long)i);
            }
            h = (h + 1) & (cap - 1);
        }
        idx[h] = (uint32_t)(i + 1);
    }
    *idx_out = idx;
    *cap_out = cap;
    return TINYAI_OK;
}

int64_t tai_fmt_index_find(const uint32_t *idx, uint64_t cap, const void *base,
                           size_t stride, size_t name_off, const char *name) {
    if (!idx || !name) return -1;
    uint64_t h = XXH64(name, strlen(name), 0) & (cap - 1);
    while (idx[h]) {
        int64_t j = (int64_t)idx[h] - 1;
        if (strcmp(name_at(base, stride, name_off, j), name) == 0) return j;
        h = (h + 1) & (cap - 1);
    }
    return -1;
}

TinyAIStatus tai_fmt_index_tensors(tai_mf_impl *m) {
    return tai_fmt_build_index(m->pub.path, m->pub.tensors, sizeof(tai_tensor),
                               offsetof(tai_tensor, name), m->pub.n_tensors, "tensor name",
                               &m->tensor_index, &m->tensor_index_cap);
}

const tai_kv *tai_model_file_find_kv(const tai_model_file *mf, const char *key) {
    if (!mf) return NULL;
    const tai_mf_impl *m = (const tai_mf_impl *)mf;
    int64_t i = tai_fmt_index_find(m->kv_index, m->kv_index_cap, mf->kvs, sizeof(tai_kv),
                                   offsetof(tai_kv, key), key);
    return i < 0 ? NULL : &mf->kvs[i];
}

const tai_tensor *tai_model_file_find_tensor(const tai_model_file *mf, const char *name) {
    if (!mf) return NULL;
    const tai_mf_impl *m = (const tai_mf_impl *)mf;
    int64_t i = tai_fmt_index_find(m->tensor_index, m->tensor_index_cap, mf->tensors,
                                   sizeof(tai_tensor), offsetof(tai_tensor, name), name);
    return i < 0 ? NULL : &mf->tensors[i];
}

/* ---- Tensor shapes ------------------------------------------------------ */

const char *tai_fmt_ggml_type_name(uint32_t id) {
    /* ggml's type ids (ggml.h); 4, 5 and 31..33 were removed there. */
    static const char *const names[] = {
        "F32",  "F16",  "Q4_0",    "Q4_1",    NULL,    NULL,    "Q5_0",   "Q5_1",
        "Q8_0", "Q8_1", "Q2_K",    "Q3_K",    "Q4_K",  "Q5_K",  "Q6_K",   "Q8_K",
        "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS",
        "I8",   "I16",  "I32",     "I64",     "F64",   "IQ1_M", "BF16",   NULL,
        NULL,   NULL,   "TQ1_0",   "TQ2_0",   NULL,    NULL,    NULL,     "MXFP4",
    };
    return id < sizeof names / sizeof names[0] ? names[id] : NULL;
}

int64_t tai_fmt_tensor_elems(const tai_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= t->ne[d];
    return n;
}

TinyAIStatus tai_fmt_tensor_size(const char *path, const char *name, tai_type type,
                                 int n_dims, const int64_t *ne, uint64_t *size) {
    int64_t elems = 1;
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] <= 0)
            return tai_error(TINYAI_ERR_FORMAT, "%s: tensor '%s' has dimension %d = %lld "
                             "(must be positive)", path, name, d, (long long)ne[d]);
        if (elems > INT64_MAX / ne[d])
            return tai_error(TINYAI_ERR_FORMAT, "%s: tensor '%s': the product of its "
                             "dimensions overflows 64 bits", path, name);
        elems *= ne[d];
    }
    int64_t blk = tai_type_block_elems(type);
    if (blk <= 0 || ne[0] % blk != 0)
        return tai_error(TINYAI_ERR_FORMAT, "%s: tensor '%s' of type %s has row length "
                         "%lld, not a multiple of its block size %lld", path, name,
                         tai_type_name(type), (long long)ne[0], (long long)blk);
    uint64_t row = tai_type_row_bytes(type, ne[0]);
    uint64_t rows = (uint64_t)(elems / ne[0]);
    if (row == 0 || rows > UINT64_MAX / row || row * rows > (uint64_t)INT64_MAX)
        return tai_error(TINYAI_ERR_FORMAT, "%s: tensor '%s': its byte size overflows "
                         "64 bits", path, name);
    *size = row * rows;
    return TINYAI_OK;
}

/* ---- Layers ------------------------------------------------------------- */

/* Block number of a "blk.<N>." name, or -1. At most 9 digits. */
static long block_number(const char *name) {
    if (strncmp(name, "blk.", 4) != 0) return -1;
    const char *p = name + 4;
    long n = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
        if (++digits > 9) return -1;
        n = n * 10 + (*p++ - '0');
    }
    return digits > 0 && *p == '.' ? n : -1;
}

TinyAIStatus tai_fmt_assign_layers(const tai_model_file *mf, int *layer_of, int *n_layers) {
    int64_t n = mf->n_tensors;
    long max_blk = -1;
    for (int64_t i = 0; i < n; i++) {
        long b = block_number(mf->tensors[i].name);
        if (b > max_blk) max_blk = b;
    }
    /* Every block needs at least one tensor, so max_blk < n_tensors; checking
     * that first bounds the allocation below. */
    if (max_blk >= (long)n)
        return tai_error(TINYAI_ERR_FORMAT, "%s: tensor block numbers are not contiguous: "
                         "highest is blk.%ld but there are only %lld tensors",
                         mf->path, max_blk, (long long)n);
    int n_block = (int)(max_blk + 1);
    char *seen = calloc((size_t)n_block + 1, 1);
    if (!seen) return tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", mf->path);
    for (int64_t i = 0; i < n; i++) {
        const char *name = mf->tensors[i].name;
        long b = block_number(name);
        if (b >= 0) {
            layer_of[i] = 1 + (int)b;
            seen[b] = 1;
        } else if (strncmp(name, "token_embd", 10) == 0) {
            layer_of[i] = 0;
        } else {
            layer_of[i] = n_block + 1;
        }
    }
    for (int b = 0; b < n_block; b++) {
        if (!seen[b]) {
            free(seen);
            return tai_error(TINYAI_ERR_FORMAT, "%s: tensor block numbers are not contiguous: "
                             "no tensor for blk.%d (blocks 0..%d expected)",
                             mf->path, b, n_block - 1);
        }
    }
    free(seen);
    *n_layers = n_block + 2;
    return TINYAI_OK;
}

int tai_fmt_layer_precision(const tai_model_file *mf, const int *idx, int n) {
    int best = -1;
    int64_t best_elems = -1;
    for (int j = 0; j < n; j++) {
        int64_t e = tai_fmt_tensor_elems(&mf->tensors[idx[j]]);
        if (e > best_elems) {
            best_elems = e;
            best = idx[j];
        }
    }
    return best < 0 ? 0 : tai_type_bits(mf->tensors[best].type);
}

typedef struct {
    const tai_tensor *tensors;
    const int *layer_of;
} sort_ctx;

/* Orders tensor indices by (layer, offset, index). */
static int cmp_layer_offset(const void *a, const void *b, void *arg) {
    const sort_ctx *c = arg;
    int i = *(const int *)a, j = *(const int *)b;
    if (c->layer_of[i] != c->layer_of[j]) return c->layer_of[i] < c->layer_of[j] ? -1 : 1;
    if (c->tensors[i].offset != c->tensors[j].offset)
        return c->tensors[i].offset < c->tensors[j].offset ? -1 : 1;
    return i < j ? -1 : i > j;
}

TinyAIStatus tai_fmt_build_layers_from_names(tai_mf_impl *m) {
    tai_model_file *mf = &m->pub;
    int64_t n = mf->n_tensors;
    int *layer_of = malloc(sizeof(int) * (size_t)(n ? n : 1));
    mf->layer_tensors = malloc(sizeof(int) * (size_t)(n ? n : 1));
    if (!layer_of || !mf->layer_tensors) {
        free(layer_of);
        return tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", mf->path);
    }
    int n_layers;
    TinyAIStatus st = tai_fmt_assign_layers(mf, layer_of, &n_layers);
    if (st) {
        free(layer_of);
        return st;
    }
    mf->layers = calloc((size_t)n_layers, sizeof(tai_layer_entry));
    if (!mf->layers) {
        free(layer_of);
        return tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", mf->path);
    }
    mf->n_layers = n_layers;
    for (int64_t i = 0; i < n; i++) {
        mf->layer_tensors[i] = (int)i;
        mf->tensors[i].layer = layer_of[i];
    }
    sort_ctx ctx = {mf->tensors, layer_of};
    qsort_r(mf->layer_tensors, (size_t)n, sizeof(int), cmp_layer_offset, &ctx);
    int64_t j = 0;
    for (int l = 0; l < n_layers; l++) {
        tai_layer_entry *e = &mf->layers[l];
        e->index = l;
        e->first_tensor = (int)j;
        uint64_t lo = UINT64_MAX, hi = 0;
        while (j < n && layer_of[mf->layer_tensors[j]] == l) {
            const tai_tensor *t = &mf->tensors[mf->layer_tensors[j]];
            if (t->offset < lo) lo = t->offset;
            if (t->offset + t->size > hi) hi = t->offset + t->size;
            j++;
        }
        e->n_tensors = (int)(j - e->first_tensor);
        e->offset = e->n_tensors ? lo : 0;
        e->size = e->n_tensors ? hi - lo : 0;
        e->precision = tai_fmt_layer_precision(mf, mf->layer_tensors + e->first_tensor,
                                               e->n_tensors);
        e->checksum = 0;
    }
    free(layer_of);
    return TINYAI_OK;
}

/* ---- Open / close ------------------------------------------------------- */

TinyAIStatus tai_model_file_open(const char *path, bool verify_checksums,
                                 tai_model_file **out) {
    if (!out) return tai_error(TINYAI_ERR_INVALID_ARG, "tai_model_file_open: NULL out");
    *out = NULL;
    if (!path) return tai_error(TINYAI_ERR_INVALID_ARG, "tai_model_file_open: NULL path");

    TinyAIStatus st;
    tai_mf_impl *m = calloc(1, sizeof *m);
    if (!m) return tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", path);
    tai_model_file *mf = &m->pub;
    m->fd = -1;
    pthread_mutex_init(&m->hold_mu, NULL);
    mf->path = strdup(path);
    if (!mf->path) {
        free(m);
        return tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", path);
    }

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st = tai_error(TINYAI_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = tai_error(TINYAI_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = tai_error(TINYAI_ERR_IO, "%s: not a regular file", path);
        close(fd);
        goto fail;
    }
    mf->file_size = (uint64_t)sb.st_size;
    if (mf->file_size < 8) {
        st = tai_error(TINYAI_ERR_FORMAT, "%s: truncated file: only %llu bytes, too small "
                       "for a GGUF or .tmai header", path, (unsigned long long)mf->file_size);
        close(fd);
        goto fail;
    }
    if (mf->file_size > SIZE_MAX) {
        st = tai_error(TINYAI_ERR_UNSUPPORTED, "%s: file too large to map", path);
        close(fd);
        goto fail;
    }
    void *map = mmap(NULL, (size_t)mf->file_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    /* kept open: what it refers to is the file these tables describe, even
     * if the path is given to another file later */
    m->fd = fd;
    m->opened_size = mf->file_size;
    m->opened_mtime_s = (int64_t)sb.st_mtim.tv_sec;
    m->opened_mtime_ns = (int64_t)sb.st_mtim.tv_nsec;
    if (map == MAP_FAILED) {
        st = tai_error(TINYAI_ERR_IO, "%s: cannot map: %s", path, strerror(map_errno));
        goto fail;
    }
    mf->map = map;
    m->map_len = (size_t)mf->file_size;

    if (memcmp(mf->map, "GGUF", 4) == 0) {
        st = tai_gguf_parse(m);
    } else if (memcmp(mf->map, "TMAI", 4) == 0) {
        st = tai_tmai_parse(m, verify_checksums);
    } else {
        st = tai_error(TINYAI_ERR_FORMAT, "%s: not a GGUF or .tmai file (magic bytes "
                       "%02x %02x %02x %02x)", path, mf->map[0], mf->map[1], mf->map[2],
                       mf->map[3]);
    }
    if (st) goto fail;
    *out = mf;
    return TINYAI_OK;
fail:
    tai_model_file_close(mf);
    return st;
}

void tai_model_file_close(tai_model_file *mf) {
    if (!mf) return;
    tai_mf_impl *m = (tai_mf_impl *)mf;
    if (mf->kvs)
        for (int64_t i = 0; i < mf->n_kvs; i++) tai_fmt_kv_free(&mf->kvs[i]);
    free(mf->kvs);
    if (mf->tensors)
        for (int64_t i = 0; i < mf->n_tensors; i++) free(mf->tensors[i].name);
    free(mf->tensors);
    free(mf->layers);
    free(mf->layer_tensors);
    free(m->tensor_index);
    free(m->kv_index);
    if (mf->map) munmap((void *)mf->map, m->map_len);
    if (m->fd >= 0) close(m->fd);
    pthread_mutex_destroy(&m->hold_mu);
    free(mf->path);
    free(m);
}

bool tai_model_file_hold(const tai_model_file *mf) {
    tai_mf_impl *m = (tai_mf_impl *)mf;
    if (!mf || m->fd < 0) return false;
    pthread_mutex_lock(&m->hold_mu);
    bool held = m->holders > 0;
    if (!held && fcntl(m->fd, F_SETSIG, SIGURG) == 0 && fcntl(m->fd, F_SETLEASE, F_RDLCK) == 0)
        held = true;
    if (held) m->holders++;
    pthread_mutex_unlock(&m->hold_mu);
    return held;
}

void tai_model_file_unhold(const tai_model_file *mf) {
    tai_mf_impl *m = (tai_mf_impl *)mf;
    if (!mf) return;
    pthread_mutex_lock(&m->hold_mu);
    if (m->holders > 0 && --m->holders == 0) (void)fcntl(m->fd, F_SETLEASE, F_UNLCK);
    pthread_mutex_unlock(&m->hold_mu);
}

TinyAIStatus tai_model_file_unchanged(const tai_model_file *mf) {
    if (!mf) return tai_error(TINYAI_ERR_INVALID_ARG, "tai_model_file_unchanged: NULL file");
    const tai_mf_impl *m = (const tai_mf_impl *)mf;
    if (m->fd < 0) return TINYAI_OK;
    struct stat sb;
    if (fstat(m->fd, &sb) != 0)
        return tai_error(TINYAI_ERR_IO, "%s: cannot stat: %s", mf->path, strerror(errno));
    const uint64_t size = (uint64_t)sb.st_size;
    if (size == m->opened_size && (int64_t)sb.st_mtim.tv_sec == m->opened_mtime_s &&
        (int64_t)sb.st_mtim.tv_nsec == m->opened_mtime_ns)
        return TINYAI_OK;
    return tai_error(TINYAI_ERR_IO,
                     "%s: the file changed on disk after it was opened (size %llu -> %llu "
                     "bytes, modified %+.3f s after the time it had): its bytes are no longer "
                     "the model that was loaded; load it again",
                     mf->path, (unsigned long long)m->opened_size, (unsigned long long)size,
                     (double)((int64_t)sb.st_mtim.tv_sec - m->opened_mtime_s) +
                         (double)((int64_t)sb.st_mtim.tv_nsec - m->opened_mtime_ns) * 1e-9);
}

size_t tai_model_file_memory_bytes(const tai_model_file *mf) {
    if (!mf) return 0;
    const tai_mf_impl *m = (const tai_mf_impl *)mf;
    size_t b = sizeof *m + (mf->path ? strlen(mf->path) + 1 : 0);
    b += (size_t)mf->n_kvs * sizeof(tai_kv);
    for (int64_t i = 0; i < mf->n_kvs; i++) {
        const tai_kv *kv = &mf->kvs[i];
        if (kv->key) b += strlen(kv->key) + 1;
        if (kv->type == TAI_KV_STRING) {
            b += (size_t)kv->v.str.len + 1;
        } else if (kv->type == TAI_KV_ARRAY && kv->v.arr.data) {
            if (kv->v.arr.type == TAI_KV_STRING) {
                const tai_str *s = (const tai_str *)kv->v.arr.data;
                b += (size_t)kv->v.arr.n * sizeof(tai_str) + 1;
                for (uint64_t j = 0; j < kv->v.arr.n; j++) b += (size_t)s[j].len + 1;
            } else {
                b += (size_t)kv->v.arr.n * tai_kv_type_size((int)kv->v.arr.type);
            }
        }
    }
    b += (size_t)mf->n_tensors * (sizeof(tai_tensor) + sizeof(int));
    for (int64_t i = 0; i < mf->n_tensors; i++)
        if (mf->tensors[i].name) b += strlen(mf->tensors[i].name) + 1;
    b += (size_t)mf->n_layers * sizeof(tai_layer_entry);
    b += sizeof(uint32_t) * (size_t)(m->tensor_index_cap + m->kv_index_cap);
    return b;
}

void tai_model_file_release_header(const tai_model_file *mf) {
    if (!mf || !mf->map) return;
    uint64_t first = mf->file_size;
    for (int64_t i = 0; i < mf->n_tensors; i++)
        if (mf->tensors[i].offset < first) first = mf->tensors[i].offset;
    const long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) return;
    const size_t len = (size_t)first / (size_t)page * (size_t)page;
    if (len > 0) (void)madvise((void *)mf->map, len, MADV_DONTNEED);
}

void tai_model_file_release(const tai_model_file *mf, const void *p, uint64_t n) {
    const long page = sysconf(_SC_PAGESIZE);
    if (!mf || !mf->map || !p || page <= 0) return;
    const uintptr_t lo = (uintptr_t)mf->map, hi = lo + (uintptr_t)mf->file_size;
    uintptr_t a = (uintptr_t)p, b = a + (uintptr_t)n;
    if (a < lo || b > hi || b <= a) return;
    a = (a + (uintptr_t)page - 1) / (uintptr_t)page * (uintptr_t)page;
    b = b / (uintptr_t)page * (uintptr_t)page;
    if (b > a) (void)madvise((void *)a, b - a, MADV_DONTNEED);
}

TinyAIStatus tai_model_file_verify_layer(const tai_model_file *mf, int layer) {
    if (!mf) return tai_error(TINYAI_ERR_INVALID_ARG, "verify_layer: NULL model file");
    if (layer < 0 || layer >= mf->n_layers)
        return tai_error(TINYAI_ERR_INVALID_ARG, "%s: layer %d out of range (0..%d)",
                         mf->path, layer, mf->n_layers - 1);
    if (mf->kind != TAI_FILE_TMAI) return TINYAI_OK;
    const tai_layer_entry *e = &mf->layers[layer];
    uint64_t h = XXH64(mf->map + e->offset, (size_t)e->size, 0);
    tai_model_file_release(mf, mf->map + e->offset, e->size);
    if (h != e->checksum)
        return tai_error(TINYAI_ERR_CHECKSUM, "%s: checksum mismatch in layer %d (bytes "
                         "%llu..%llu): stored %016llx, computed %016llx", mf->path, layer,
                         (unsigned long long)e->offset,
                         (unsigned long long)(e->offset + e->size),
                         (unsigned long long)e->checksum, (unsigned long long)h);
    return TINYAI_OK;
}
