/*
 * runtime/format/tmai.c: the .tmai reader (docs/FORMAT.md), versions 1 and 2
 * (version 2 adds a layout per tensor: row-major or packed for the kernels).
 *
 * Order of checks: magic and version first (so an unknown version is
 * "unsupported", not "corrupt"), then just enough of the header to find the
 * end of the tables, then the header checksum over header + tables, and only
 * then the detailed validation of every field, the tensor table and the
 * layer table (which must agree with the layers the tensor names give).
 * Layer checksums are verified on request (tai_model_file_verify_layer) or
 * all at open with verify_checksums.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "core/error.h"
#include "runtime/format/format_internal.h"
#include "runtime/format/tmai_internal.h"

static uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static bool is_pow2(uint64_t x) { return x && (x & (x - 1)) == 0; }

/* Reads the tensor table entry i into t (shape and layout checks included). */
static TinyAIStatus read_tensor_entry(tai_cur *c, uint32_t version, tai_tensor *t,
                                      int64_t i, uint32_t *layer) {
    char what[64];
    snprintf(what, sizeof what, "tensor entry %lld name", (long long)i);
    TinyAIStatus st = tai_cur_string(c, &t->name, NULL, true, what);
    if (st) return st;
    if (!t->name[0])
        return tai_error(TINYAI_ERR_FORMAT, "%s: tensor entry %lld has an empty name",
                         c->path, (long long)i);
    uint8_t b[TMAI_TENSOR_ENTRY_FIXED - 8];
    if (!tai_cur_bytes(c, b, sizeof b))
        return tai_cur_trunc(c, c->pos + sizeof b, "tensor entry %lld ('%s')", (long long)i,
                             t->name);
    uint32_t type = rd32(b), n_dims = rd32(b + 4);
    if (!tai_type_valid((int)type))
        return tai_error(TINYAI_ERR_UNSUPPORTED, "%s: tensor '%s' has unsupported type id %u",
                         c->path, t->name, type);
    if (n_dims < 1 || n_dims > TAI_MAX_DIMS)
        return tai_error(TINYAI_ERR_FORMAT, "%s: tensor '%s' has %u dimensions (1..%d "
                         "supported)", c->path, t->name, n_dims, TAI_MAX_DIMS);
    t->type = (tai_type)type;
    t->n_dims = (int)n_dims;
    for (int d = 0; d < TAI_MAX_DIMS; d++) {
        t->ne[d] = (int64_t)rd64(b + 8 + 8 * d);
        if (d >= t->n_dims && t->ne[d] != 1)
            return tai_error(TINYAI_ERR_FORMAT, "%s: tensor '%s' has unused dimension %d = "
                             "%lld (must be 1)", c->path, t->name, d, (long long)t->ne[d]);
    }
    t->offset = rd64(b + 40);
    uint64_t size = rd64(b + 48);
    *layer = rd32(b + 56);
    /* Version 1 had reserved zeros here; version 2 the layout. */
    const uint32_t layout = rd32(b + 60);
    if (version == 1 && layout != 0)
        return tai_error(TINYAI_ERR_FORMAT, "%s: tensor '%s' has nonzero reserved bytes",
                         c->path, t->name);
    if (layout != TAI_LAYOUT_ROWS && layout != TAI_LAYOUT_PACKED && layout != TAI_LAYOUT_SPARSE)
        return tai_error(TINYAI_ERR_FORMAT, "%s: tensor '%s' has unknown layout %u",
                         c->path, t->name, layout);
    if (layout != TAI_LAYOUT_ROWS && t->n_dims != 2)
        return tai_error(TINYAI_ERR_FORMAT, "%s: tensor '%s' is stored %s but has %d "
                         "dimensions (only 2-D tensors are packed)", c->path, t->name,
                         layout == TAI_LAYOUT_SPARSE ? "block-sparse" : "packed", t->n_dims);
    t->layout = (int)layout;
    st = tai_fmt_tensor_size(c->path, t->name, t->type, t->n_dims, t->ne, &t->size);
    if (st) return st;
    if (layout == TAI_LAYOUT_SPARSE) {
        /* its keep is in its data: checked against the size once mapped */
        t->size = size;
        return TINYAI_OK;
    }
    if (layout == TAI_LAYOUT_PACKED) {
        t->size = tai_pack_bytes(t->type, t->ne[1], t->ne[0]);
        if (t->size == 0)
            return tai_error(TINYAI_ERR_FORMAT, "%s: tensor '%s' is too large to be stored "
                             "packed", c->path, t->name);
    }
    if (size != t->size)
        return tai_error(TINYAI_ERR_FORMAT, "%s: tensor '%s' has size %llu, its shape needs "
                         "%llu (%s)", c->path, t->name, (unsigned long long)size,
                         (unsigned long long)t->size,
                         layout == TAI_LAYOUT_PACKED ? "packed" : "row-major");
    return TINYAI_OK;
}

/* Checks the stored layer table against the tensors and the names. */
static TinyAIStatus read_layers(tai_mf_impl *m, const uint8_t *p, uint64_t n_layers,
                                const uint32_t *stored_layer, uint64_t data_offset,
                                uint64_t tensor_align) {
    tai_model_file *mf = &m->pub;
    const char *path = mf->path;
    int64_t n = mf->n_tensors;
    int *layer_of = malloc(sizeof(int) * (size_t)(n ? n : 1));
    if (!layer_of) return tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", path);
    int want_layers;
    TinyAIStatus st = tai_fmt_assign_layers(mf, layer_of, &want_layers);
    if (st) goto done;
    if (n_layers != (uint64_t)want_layers) {
        st = tai_error(TINYAI_ERR_FORMAT, "%s: layer table has %llu layers, the tensor names "
                       "give %d", path, (unsigned long long)n_layers, want_layers);
        goto done;
    }
    mf->layers = calloc((size_t)n_layers, sizeof(tai_layer_entry));
    mf->layer_tensors = malloc(sizeof(int) * (size_t)(n ? n : 1));
    if (!mf->layers || !mf->layer_tensors) {
        st = tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    mf->n_layers = (int)n_layers;
    for (int64_t i = 0; i < n; i++) {
        mf->layer_tensors[i] = (int)i;
        mf->tensors[i].layer = layer_of[i];
        if (stored_layer[i] != (uint32_t)layer_of[i]) {
            st = tai_error(TINYAI_ERR_FORMAT, "%s: tensor '%s' is stored in layer %u but its "
                           "name puts it in layer %d", path, mf->tensors[i].name,
                           stored_layer[i], layer_of[i]);
            goto done;
        }
    }
    uint64_t next_tensor = 0, prev_end = data_offset;
    for (uint64_t l = 0; l < n_layers; l++) {
        const uint8_t *b = p + l * TMAI_LAYER_ENTRY_SIZE;
        tai_layer_entry *e = &mf->layers[l];
        uint64_t first = rd64(b + TMAI_L_FIRST_TENSOR), cnt = rd64(b + TMAI_L_N_TENSORS);
        e->index = (int)l;
        e->precision = (int)rd32(b + TMAI_L_PRECISION);
        e->offset = rd64(b + TMAI_L_OFFSET);
        e->size = rd64(b + TMAI_L_SIZE);
        e->checksum = rd64(b + TMAI_L_CHECKSUM);
        if (rd32(b + TMAI_L_INDEX) != l || rd64(b + TMAI_L_RESERVED) != 0 ||
            rd64(b + TMAI_L_RESERVED + 8) != 0) {
            st = tai_error(TINYAI_ERR_FORMAT, "%s: layer table entry %llu has a wrong index "
                           "or nonzero reserved bytes", path, (unsigned long long)l);
            goto done;
        }
        /* Tensors are stored in layer order: layer l has the next cnt. */
        if (first != next_tensor || cnt > (uint64_t)n - first) {
            st = tai_error(TINYAI_ERR_FORMAT, "%s: layer %llu claims tensors %llu..+%llu, "
                           "expected to start at %llu of %lld", path, (unsigned long long)l,
                           (unsigned long long)first, (unsigned long long)cnt,
                           (unsigned long long)next_tensor, (long long)n);
            goto done;
        }
        e->first_tensor = (int)first;
        e->n_tensors = (int)cnt;
        next_tensor += cnt;
        if (e->offset % TMAI_ALIGNMENT != 0 || e->offset < prev_end ||
            e->offset > mf->file_size || e->size > mf->file_size - e->offset) {
            st = tai_error(TINYAI_ERR_FORMAT, "%s: layer %llu at bytes %llu..+%llu is "
                           "misaligned, overlaps the previous layer or lies past end of "
                           "file (%llu bytes)", path, (unsigned long long)l,
                           (unsigned long long)e->offset, (unsigned long long)e->size,
                           (unsigned long long)mf->file_size);
            goto done;
        }
        uint64_t pos = e->offset;
        for (uint64_t j = first; j < first + cnt; j++) {
            const tai_tensor *t = &mf->tensors[j];
            if ((uint64_t)t->layer != l) {
                st = tai_error(TINYAI_ERR_FORMAT, "%s: tensor '%s' (layer %d) is listed in "
                               "layer %llu", path, t->name, t->layer, (unsigned long long)l);
                goto done;
            }
            bool first_ok = j != first || t->offset == e->offset;
            if (!first_ok || t->offset < pos || t->offset % tensor_align != 0 ||
                t->offset - e->offset > e->size || t->size > e->size - (t->offset - e->offset)) {
                st = tai_error(TINYAI_ERR_FORMAT, "%s: tensor '%s' at bytes %llu..+%llu lies "
                               "outside its layer %llu (bytes %llu..+%llu), overlaps the "
                               "previous tensor or is misaligned", path, t->name,
                               (unsigned long long)t->offset, (unsigned long long)t->size,
                               (unsigned long long)l, (unsigned long long)e->offset,
                               (unsigned long long)e->size);
                goto done;
            }
            pos = t->offset + t->size;
        }
        if (pos - e->offset != e->size) {
            st = tai_error(TINYAI_ERR_FORMAT, "%s: layer %llu has size %llu, its tensors end "
                           "at +%llu", path, (unsigned long long)l, (unsigned long long)e->size,
                           (unsigned long long)(pos - e->offset));
            goto done;
        }
        int prec = tai_fmt_layer_precision(mf, mf->layer_tensors + first, (int)cnt);
        if (e->precision != prec) {
            st = tai_error(TINYAI_ERR_FORMAT, "%s: layer %llu has precision %d, its tensors "
                           "give %d", path, (unsigned long long)l, e->precision, prec);
            goto done;
        }
        prev_end = e->offset + e->size;
    }
    if (next_tensor != (uint64_t)n)
        st = tai_error(TINYAI_ERR_FORMAT, "%s: the layer table covers %llu of %lld tensors",
                       path, (unsigned long long)next_tensor, (long long)n);
done:
    free(layer_of);
    return st;
}

TinyAIStatus tai_tmai_parse(tai_mf_impl *m, bool verify_checksums) {
    tai_model_file *mf = &m->pub;
    const char *path = mf->path;
    const uint8_t *h = mf->map;
    uint64_t fsize = mf->file_size;
    mf->kind = TAI_FILE_TMAI;
    uint32_t *stored_layer = NULL;
    TinyAIStatus st;

    uint32_t version = rd32(h + TMAI_H_VERSION); /* file_size >= 8 at open */
    if (version < TMAI_VERSION_MIN || version > TMAI_VERSION)
        return tai_error(TINYAI_ERR_UNSUPPORTED, "%s: .tmai version %u is not supported "
                         "(versions %d to %d)", path, version, TMAI_VERSION_MIN, TMAI_VERSION);
    mf->version = version;
    if (fsize < TMAI_HEADER_SIZE)
        return tai_error(TINYAI_ERR_FORMAT, "%s: truncated file: header ends at byte %d past "
                         "end of file (%llu bytes)", path, TMAI_HEADER_SIZE,
                         (unsigned long long)fsize);
    uint64_t want_size = rd64(h + TMAI_H_FILE_SIZE);
    uint64_t lt_off = rd64(h + TMAI_H_LAYERS_OFFSET), lt_size = rd64(h + TMAI_H_LAYERS_SIZE);
    if (lt_off > UINT64_MAX - lt_size || lt_off + lt_size < TMAI_HEADER_SIZE ||
        lt_off + lt_size > fsize) {
        if (want_size > fsize)
            return tai_error(TINYAI_ERR_FORMAT, "%s: truncated file: %llu bytes, the header "
                             "says %llu", path, (unsigned long long)fsize,
                             (unsigned long long)want_size);
        return tai_error(TINYAI_ERR_FORMAT, "%s: corrupt header: its tables end at byte "
                         "%llu, past end of file (%llu bytes)", path,
                         (unsigned long long)(lt_off + lt_size), (unsigned long long)fsize);
    }
    uint64_t meta_end = lt_off + lt_size;

    /* Header checksum: bytes [0, 120) then [128, meta_end). */
    XXH64_state_t *xs = XXH64_createState();
    if (!xs) return tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", path);
    XXH64_reset(xs, 0);
    XXH64_update(xs, h, TMAI_H_CHECKSUM);
    XXH64_update(xs, h + TMAI_HEADER_SIZE, (size_t)(meta_end - TMAI_HEADER_SIZE));
    uint64_t sum = XXH64_digest(xs);
    XXH64_freeState(xs);
    if (sum != rd64(h + TMAI_H_CHECKSUM))
        return tai_error(TINYAI_ERR_CHECKSUM, "%s: header checksum mismatch (header and "
                         "tables, bytes 0..%llu): stored %016llx, computed %016llx", path,
                         (unsigned long long)meta_end,
                         (unsigned long long)rd64(h + TMAI_H_CHECKSUM),
                         (unsigned long long)sum);

    /* The header is what was written; now check that it is consistent. */
    if (want_size != fsize)
        return tai_error(TINYAI_ERR_FORMAT, "%s: %sfile: %llu bytes, the header says %llu",
                         path, fsize < want_size ? "truncated " : "wrong size of ",
                         (unsigned long long)fsize, (unsigned long long)want_size);
    uint64_t align = rd64(h + TMAI_H_ALIGNMENT), talign = rd64(h + TMAI_H_TENSOR_ALIGNMENT);
    uint64_t n_kv = rd64(h + TMAI_H_N_KV), n_tensors = rd64(h + TMAI_H_N_TENSORS);
    uint64_t n_layers = rd64(h + TMAI_H_N_LAYERS);
    uint64_t kv_off = rd64(h + TMAI_H_KV_OFFSET), kv_size = rd64(h + TMAI_H_KV_SIZE);
    uint64_t tt_off = rd64(h + TMAI_H_TENSORS_OFFSET), tt_size = rd64(h + TMAI_H_TENSORS_SIZE);
    uint64_t data_off = rd64(h + TMAI_H_DATA_OFFSET);
    if (rd32(h + TMAI_H_HEADER_SIZE) != TMAI_HEADER_SIZE || rd32(h + TMAI_H_FLAGS) != 0)
        return tai_error(TINYAI_ERR_FORMAT, "%s: header size %u or flags %u not as in "
                         "version %u", path, rd32(h + TMAI_H_HEADER_SIZE),
                         rd32(h + TMAI_H_FLAGS), version);
    if (align != TMAI_ALIGNMENT || !is_pow2(talign) || talign > align)
        return tai_error(TINYAI_ERR_FORMAT, "%s: alignment %llu / tensor alignment %llu not "
                         "as in version %u", path, (unsigned long long)align,
                         (unsigned long long)talign, version);
    if (kv_off != TMAI_HEADER_SIZE || kv_size > meta_end - kv_off ||
        tt_off != kv_off + kv_size || tt_size > meta_end - tt_off ||
        lt_off != tt_off + tt_size || data_off != tai_align_up(meta_end, align) ||
        data_off > fsize)
        return tai_error(TINYAI_ERR_FORMAT, "%s: the header's section offsets are not "
                         "contiguous", path);
    if (n_layers > TAI_FMT_MAX_TENSORS + 2 || n_layers * TMAI_LAYER_ENTRY_SIZE != lt_size ||
        n_layers < 2)
        return tai_error(TINYAI_ERR_FORMAT, "%s: layer count %llu does not match the layer "
                         "table size %llu", path, (unsigned long long)n_layers,
                         (unsigned long long)lt_size);
    if (n_tensors > TAI_FMT_MAX_TENSORS || n_tensors > tt_size / TMAI_TENSOR_ENTRY_FIXED)
        return tai_error(TINYAI_ERR_FORMAT, "%s: absurd tensor count %llu for a tensor table "
                         "of %llu bytes", path, (unsigned long long)n_tensors,
                         (unsigned long long)tt_size);
    mf->alignment = align;

    /* Metadata, exactly filling its section. */
    tai_cur c = {mf->map, kv_off, kv_off + kv_size, path, "end of the metadata section", fsize};
    st = tai_fmt_read_kvs(&c, m, n_kv);
    if (st) return st;
    if (c.pos != c.end)
        return tai_error(TINYAI_ERR_FORMAT, "%s: %llu stray bytes at the end of the metadata "
                         "section", path, (unsigned long long)(c.end - c.pos));

    /* Tensor table. */
    c = (tai_cur){mf->map, tt_off, tt_off + tt_size, path, "end of the tensor table", fsize};
    mf->tensors = calloc(n_tensors ? n_tensors : 1, sizeof(tai_tensor));
    stored_layer = malloc(sizeof(uint32_t) * (n_tensors ? n_tensors : 1));
    if (!mf->tensors || !stored_layer) {
        st = tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (uint64_t i = 0; i < n_tensors; i++) {
        mf->n_tensors = (int64_t)i + 1;
        st = read_tensor_entry(&c, version, &mf->tensors[i], (int64_t)i, &stored_layer[i]);
        if (st) goto done;
        tai_tensor *t = &mf->tensors[i];
        if (t->offset < data_off || t->offset > fsize || t->size > fsize - t->offset) {
            st = tai_error(TINYAI_ERR_FORMAT, "%s: tensor '%s' at bytes %llu..+%llu lies "
                           "outside the data section (bytes %llu..%llu)", path, t->name,
                           (unsigned long long)t->offset, (unsigned long long)t->size,
                           (unsigned long long)data_off, (unsigned long long)fsize);
            goto done;
        }
        /* The product kernels read packed tensors in place, 64-byte aligned
         * (the mapping is page-aligned), whatever tensor_alignment says. */
        if (t->layout != TAI_LAYOUT_ROWS && t->offset % 64 != 0) {
            st = tai_error(TINYAI_ERR_FORMAT, "%s: packed tensor '%s' at byte %llu is not "
                           "64-byte aligned", path, t->name, (unsigned long long)t->offset);
            goto done;
        }
        t->data = mf->map + t->offset;
        if (t->layout == TAI_LAYOUT_SPARSE &&
            (t->keep = tai_sparse_keep(t->type, t->data, t->ne[1], t->ne[0], t->size)) == 0) {
            st = tai_error(TINYAI_ERR_FORMAT, "%s: block-sparse tensor '%s' (%s, %lld x %lld): "
                           "%llu bytes is not the size its kept-block count gives", path,
                           t->name, tai_type_name(t->type), (long long)t->ne[1],
                           (long long)t->ne[0], (unsigned long long)t->size);
            goto done;
        }
    }
    if (c.pos != c.end) {
        st = tai_error(TINYAI_ERR_FORMAT, "%s: %llu stray bytes at the end of the tensor "
                       "table", path, (unsigned long long)(c.end - c.pos));
        goto done;
    }
    st = tai_fmt_index_tensors(m);
    if (st) goto done;

    st = read_layers(m, mf->map + lt_off, n_layers, stored_layer, data_off, talign);
    if (st) goto done;
    if (verify_checksums) {
        for (int l = 0; l < mf->n_layers && !st; l++) st = tai_model_file_verify_layer(mf, l);
    }
done:
    free(stored_layer);
    return st;
}
