/*
 * runtime/format/tmai_write.c: writing a model file (GGUF or .tmai) as .tmai
 * (docs/FORMAT.md).
 *
 * Plan: lay out the data first (each layer at a 4096 multiple, its tensors
 * 64-byte aligned inside it, in the order of mf->layer_tensors; for version
 * 2 exactly as the layer image plan places them, every 2-D tensor packed),
 * so that the header and tables, whose size does not depend on the data, can
 * be encoded up front with the final offsets. The data is then written layer
 * by layer from the source mapping while its XXH64 is computed (row-major
 * matrices packed a few MiB of panels at a time, so memory stays small
 * whatever the layer size); the checksums are patched into the layer table,
 * the header checksum is computed, and the header and tables are written
 * last at offset 0. Everything goes to "<path>.tmp", which is fsync'ed and
 * renamed over `path`; on any failure the temporary file is removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "core/error.h"
#include "runtime/format/format_internal.h"
#include "runtime/format/image.h"
#include "runtime/format/tmai_internal.h"

/* Version 2 stores each layer as its image, so the two alignments are one. */
_Static_assert(TMAI_TENSOR_ALIGNMENT == TAI_IMAGE_ALIGN, "tensor alignment is the image's");

static const uint8_t zeros[TMAI_ALIGNMENT];

typedef struct {
    int fd;
    const char *tmp;
    XXH64_state_t *xs; /* hashing the current layer, or NULL */
} out_file;

/* Writes n bytes at offset `at`, retrying short writes and EINTR. */
static TinyAIStatus put(out_file *o, const void *p, uint64_t n, uint64_t at) {
    const uint8_t *b = p;
    if (o->xs) XXH64_update(o->xs, p, (size_t)n);
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t w = pwrite(o->fd, b, chunk, (off_t)at);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            return tai_error(TINYAI_ERR_IO, "%s: write failed at byte %llu: %s", o->tmp,
                             (unsigned long long)at, w < 0 ? strerror(errno) : "no progress");
        b += w;
        at += (uint64_t)w;
        n -= (uint64_t)w;
    }
    return TINYAI_OK;
}

static TinyAIStatus put_zeros(out_file *o, uint64_t n, uint64_t at) {
    while (n > 0) {
        uint64_t k = n < sizeof zeros ? n : sizeof zeros;
        TinyAIStatus st = put(o, zeros, k, at);
        if (st) return st;
        n -= k;
        at += k;
    }
    return TINYAI_OK;
}

static void put_u32_at(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64_at(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* Packing buffer: about this many bytes of whole panels at a time. */
#define PACK_CHUNK (4u << 20)

/* Writes row-major matrix t packed at `at`, panels packed a chunk at a time
 * into *buf (64-byte aligned, grown as needed, freed by the caller). A chunk
 * of panels [p0, p1) is the packing of rows [16 p0, 16 p1) alone, since
 * panels do not depend on each other. */
static TinyAIStatus put_packed(out_file *o, const tai_tensor *t, tai_pool *pool, uint64_t at,
                               void **buf, size_t *cap) {
    const int64_t rows = t->ne[1], n = t->ne[0];
    const size_t pb = tai_pack_panel_bytes(t->type, n);
    const size_t row_bytes = tai_type_row_bytes(t->type, n);
    const int64_t np = (rows + TAI_PANEL - 1) / TAI_PANEL;
    int64_t per = (int64_t)(PACK_CHUNK / pb);
    if (per < 1) per = 1;
    if (per > np) per = np;
    if (*cap < (size_t)per * pb) {
        free(*buf);
        *cap = 0;
        if (posix_memalign(buf, 64, (size_t)per * pb) != 0) {
            *buf = NULL;
            return tai_error(TINYAI_ERR_NOMEM, "%s: out of memory packing '%s'", o->tmp,
                             t->name);
        }
        *cap = (size_t)per * pb;
    }
    for (int64_t p0 = 0; p0 < np; p0 += per) {
        const int64_t p1 = p0 + per < np ? p0 + per : np;
        const int64_t r0 = p0 * TAI_PANEL;
        const int64_t r1 = p1 * TAI_PANEL < rows ? p1 * TAI_PANEL : rows;
        tai_host_pack_matrix(pool, t->type, (const uint8_t *)t->data + (size_t)r0 * row_bytes,
                        r1 - r0, n, *buf);
        TinyAIStatus st = put(o, *buf, (uint64_t)(p1 - p0) * pb, at + (uint64_t)p0 * pb);
        if (st) return st;
    }
    return TINYAI_OK;
}

/* Writes a tensor the caller makes (options.produce) at `at`. */
static TinyAIStatus put_produced(out_file *o, int64_t ti, const tai_tensor *t,
                                 const tai_tmai_write_options *opts, uint64_t at, void **buf,
                                 size_t *cap) {
    if (!opts->produce)
        return tai_error(TINYAI_ERR_INVALID_ARG, "%s: tensor '%s' has no data", o->tmp, t->name);
    if (*cap < t->size) {
        free(*buf);
        *cap = 0;
        if (posix_memalign(buf, 64, (size_t)t->size) != 0) {
            *buf = NULL;
            return tai_error(TINYAI_ERR_NOMEM, "%s: out of memory for '%s'", o->tmp, t->name);
        }
        *cap = (size_t)t->size;
    }
    TinyAIStatus st = opts->produce(opts->produce_ctx, ti, *buf, t->size);
    return st ? st : put(o, *buf, t->size, at);
}

/* fsyncs the directory holding `path` so the rename is durable. */
static void sync_dir(const char *path) {
    char *copy = strdup(path);
    if (!copy) return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd >= 0) {
        (void)fsync(fd); /* best effort: some file systems refuse it */
        close(fd);
    }
}

tai_tmai_write_options tai_tmai_default_write_options(void) {
    tai_tmai_write_options o = {TMAI_VERSION, NULL, NULL, NULL};
    return o;
}

TinyAIStatus tai_tmai_write(const tai_model_file *mf, const char *path) {
    tai_tmai_write_options o = tai_tmai_default_write_options();
    return tai_tmai_write_with(mf, path, &o);
}

TinyAIStatus tai_tmai_write_with(const tai_model_file *mf, const char *path,
                                 const tai_tmai_write_options *opts) {
    if (!mf || !path || !opts)
        return tai_error(TINYAI_ERR_INVALID_ARG, "tai_tmai_write: NULL argument");
    const uint32_t version = opts->version;
    if (version < TMAI_VERSION_MIN || version > TMAI_VERSION)
        return tai_error(TINYAI_ERR_INVALID_ARG, "%s: cannot write .tmai version %u "
                         "(versions %d to %d)", path, version, TMAI_VERSION_MIN, TMAI_VERSION);
    for (int64_t i = 0; version == 1 && i < mf->n_tensors; i++)
        if (mf->tensors[i].layout != TAI_LAYOUT_ROWS)
            return tai_error(TINYAI_ERR_UNSUPPORTED, "%s: tensor '%s' is stored packed; "
                             ".tmai version 1 holds row-major tensors only", path,
                             mf->tensors[i].name);
    TinyAIStatus st = TINYAI_OK;
    int64_t n = mf->n_tensors;
    int nl = mf->n_layers;
    tai_buf meta = {0};
    /* Where each tensor goes, indexed like mf->tensors. */
    tai_image_tensor *place = malloc(sizeof *place * (size_t)(n ? n : 1));
    tai_image_tensor *plan = malloc(sizeof *plan * (size_t)(n ? n : 1));
    uint64_t *layer_off = malloc(sizeof(uint64_t) * (size_t)(nl ? nl : 1));
    uint64_t *layer_size = malloc(sizeof(uint64_t) * (size_t)(nl ? nl : 1));
    char *tmp = malloc(strlen(path) + 5);
    out_file o = {-1, tmp, NULL};
    void *pack_buf = NULL;
    size_t pack_cap = 0;
    bool created = false;
    if (!place || !plan || !layer_off || !layer_size || !tmp) {
        st = tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    sprintf(tmp, "%s.tmp", path);

    /* Sizes of the sections. */
    tai_buf kvbuf = {0};
    for (int64_t i = 0; i < mf->n_kvs; i++) {
        if (!tai_fmt_kv_encode(&kvbuf, &mf->kvs[i]) && !kvbuf.failed) {
            tai_buf_free(&kvbuf);
            st = tai_error(TINYAI_ERR_INVALID_ARG, "%s: kv '%s' cannot be encoded", path,
                           mf->kvs[i].key);
            goto done;
        }
    }
    if (kvbuf.failed) {
        tai_buf_free(&kvbuf);
        st = tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    uint64_t tt_size = 0;
    for (int64_t i = 0; i < n; i++)
        tt_size += TMAI_TENSOR_ENTRY_FIXED + strlen(mf->tensors[i].name);
    uint64_t kv_off = TMAI_HEADER_SIZE, kv_size = kvbuf.len;
    uint64_t tt_off = kv_off + kv_size;
    uint64_t lt_off = tt_off + tt_size, lt_size = (uint64_t)nl * TMAI_LAYER_ENTRY_SIZE;
    uint64_t meta_end = lt_off + lt_size;
    uint64_t data_off = tai_align_up(meta_end, TMAI_ALIGNMENT);

    /* Data layout, in layer order. Version 2: each layer is its image
     * (image.h) placed at the layer's offset; version 1: the tensors as they
     * are, at the same 64-byte alignment. */
    uint64_t pos = data_off;
    for (int l = 0; l < nl; l++) {
        const tai_layer_entry *e = &mf->layers[l];
        pos = tai_align_up(pos, TMAI_ALIGNMENT);
        layer_off[l] = pos;
        uint64_t image_size; /* the layer's size but for the padding to 64 */
        if (version == 2) {
            st = tai_layer_image_plan(mf, l, plan, &image_size);
            if (st) {
                tai_buf_free(&kvbuf);
                goto done;
            }
        }
        uint64_t end = 0; /* from the layer's start */
        for (int j = 0; j < e->n_tensors; j++) {
            int ti = mf->layer_tensors[e->first_tensor + j];
            if (version == 2) {
                place[ti] = plan[j];
            } else {
                place[ti].offset = tai_align_up(end, TMAI_TENSOR_ALIGNMENT);
                place[ti].size = mf->tensors[ti].size;
                place[ti].layout = TAI_LAYOUT_ROWS;
            }
            place[ti].offset += layer_off[l];
            end = place[ti].offset + place[ti].size - layer_off[l];
        }
        layer_size[l] = end;
        pos = layer_off[l] + end;
    }
    uint64_t file_size = tai_align_up(pos, TMAI_ALIGNMENT);

    /* Header and tables (layer checksums patched in later). */
    uint8_t hdr[TMAI_HEADER_SIZE] = {0};
    memcpy(hdr, "TMAI", 4);
    put_u32_at(hdr + TMAI_H_VERSION, version);
    put_u32_at(hdr + TMAI_H_HEADER_SIZE, TMAI_HEADER_SIZE);
    put_u64_at(hdr + TMAI_H_FILE_SIZE, file_size);
    put_u64_at(hdr + TMAI_H_ALIGNMENT, TMAI_ALIGNMENT);
    put_u64_at(hdr + TMAI_H_TENSOR_ALIGNMENT, TMAI_TENSOR_ALIGNMENT);
    put_u64_at(hdr + TMAI_H_N_KV, (uint64_t)mf->n_kvs);
    put_u64_at(hdr + TMAI_H_N_TENSORS, (uint64_t)n);
    put_u64_at(hdr + TMAI_H_N_LAYERS, (uint64_t)nl);
    put_u64_at(hdr + TMAI_H_KV_OFFSET, kv_off);
    put_u64_at(hdr + TMAI_H_KV_SIZE, kv_size);
    put_u64_at(hdr + TMAI_H_TENSORS_OFFSET, tt_off);
    put_u64_at(hdr + TMAI_H_TENSORS_SIZE, tt_size);
    put_u64_at(hdr + TMAI_H_LAYERS_OFFSET, lt_off);
    put_u64_at(hdr + TMAI_H_LAYERS_SIZE, lt_size);
    put_u64_at(hdr + TMAI_H_DATA_OFFSET, data_off);
    tai_buf_append(&meta, hdr, sizeof hdr);
    tai_buf_append(&meta, kvbuf.data, kvbuf.len);
    tai_buf_free(&kvbuf);
    for (int l = 0; l < nl; l++) {
        const tai_layer_entry *e = &mf->layers[l];
        for (int j = 0; j < e->n_tensors; j++) {
            int ti = mf->layer_tensors[e->first_tensor + j];
            const tai_tensor *t = &mf->tensors[ti];
            tai_buf_str(&meta, t->name, strlen(t->name));
            tai_buf_u32(&meta, (uint32_t)t->type);
            tai_buf_u32(&meta, (uint32_t)t->n_dims);
            for (int d = 0; d < TAI_MAX_DIMS; d++)
                tai_buf_u64(&meta, d < t->n_dims ? (uint64_t)t->ne[d] : 1);
            tai_buf_u64(&meta, place[ti].offset);
            tai_buf_u64(&meta, place[ti].size);
            tai_buf_u32(&meta, (uint32_t)l);
            tai_buf_u32(&meta, (uint32_t)place[ti].layout); /* version 1: reserved 0 */
        }
    }
    uint64_t first = 0;
    for (int l = 0; l < nl; l++) {
        uint8_t le[TMAI_LAYER_ENTRY_SIZE] = {0};
        put_u32_at(le + TMAI_L_INDEX, (uint32_t)l);
        put_u32_at(le + TMAI_L_PRECISION, (uint32_t)mf->layers[l].precision);
        put_u64_at(le + TMAI_L_OFFSET, layer_off[l]);
        put_u64_at(le + TMAI_L_SIZE, layer_size[l]);
        put_u64_at(le + TMAI_L_FIRST_TENSOR, first);
        put_u64_at(le + TMAI_L_N_TENSORS, (uint64_t)mf->layers[l].n_tensors);
        first += (uint64_t)mf->layers[l].n_tensors;
        tai_buf_append(&meta, le, sizeof le);
    }
    if (meta.failed) {
        st = tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }

    o.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (o.fd < 0) {
        st = tai_error(TINYAI_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        goto done;
    }
    created = true;
    o.xs = NULL;
    XXH64_state_t *xs = XXH64_createState();
    if (!xs) {
        st = tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    /* Data, layer by layer, hashing each layer's bytes as they are written. */
    pos = meta_end;
    for (int l = 0; l < nl && !st; l++) {
        const tai_layer_entry *e = &mf->layers[l];
        o.xs = NULL;
        st = put_zeros(&o, layer_off[l] - pos, pos);
        pos = layer_off[l];
        XXH64_reset(xs, 0);
        o.xs = xs;
        for (int j = 0; j < e->n_tensors && !st; j++) {
            int ti = mf->layer_tensors[e->first_tensor + j];
            const tai_tensor *t = &mf->tensors[ti];
            const tai_image_tensor *pl = &place[ti];
            st = put_zeros(&o, pl->offset - pos, pos);
            if (st) break;
            if (!t->data) {
                st = put_produced(&o, ti, t, opts, pl->offset, &pack_buf, &pack_cap);
            } else if (pl->layout == TAI_LAYOUT_PACKED && t->layout == TAI_LAYOUT_ROWS)
                st = put_packed(&o, t, opts->pool, pl->offset, &pack_buf, &pack_cap);
            else /* as stored: raw vectors, packed matrices, version 1 */
                st = put(&o, t->data, t->size, pl->offset);
            pos = pl->offset + pl->size;
            tai_model_file_release(mf, t->data, t->size);
        }
        put_u64_at(meta.data + lt_off + (uint64_t)l * TMAI_LAYER_ENTRY_SIZE + TMAI_L_CHECKSUM,
                   XXH64_digest(xs));
    }
    o.xs = NULL;
    if (!st) st = put_zeros(&o, file_size - pos, pos);
    if (!st) {
        XXH64_reset(xs, 0);
        XXH64_update(xs, meta.data, TMAI_H_CHECKSUM);
        XXH64_update(xs, meta.data + TMAI_HEADER_SIZE, (size_t)(meta_end - TMAI_HEADER_SIZE));
        put_u64_at(meta.data + TMAI_H_CHECKSUM, XXH64_digest(xs));
        st = put(&o, meta.data, meta.len, 0);
    }
    XXH64_freeState(xs);
    if (!st && fsync(o.fd) != 0)
        st = tai_error(TINYAI_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    if (close(o.fd) != 0 && !st)
        st = tai_error(TINYAI_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    o.fd = -1;
    if (!st && rename(tmp, path) != 0)
        st = tai_error(TINYAI_ERR_IO, "%s: cannot rename %s to it: %s", path, tmp,
                       strerror(errno));
    if (!st) sync_dir(path);
done:
    if (o.fd >= 0) close(o.fd);
    if (st && created) unlink(tmp);
    tai_buf_free(&meta);
    free(place);
    free(plan);
    free(pack_buf);
    free(layer_off);
    free(layer_size);
    free(tmp);
    return st;
}
