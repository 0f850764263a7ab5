/*
 * runtime/format/image.c: planning and building layer images (image.h).
 *
 * One function, place(), decides where a tensor goes and how big it is
 * there; the plan, the build, the in-file check (and, through the plan, the
 * .tmai writer) all walk the layer's tensors with it, so they cannot
 * disagree about the arrangement.
 */
#include "runtime/format/image.h"

#include <string.h>

#include "core/error.h"
#include "runtime/format/format_internal.h"

/* Places tensor t at the first multiple of 64 at or after `pos`; returns
 * false if its packed size overflows. */
static bool place(const tai_tensor *t, uint64_t pos, tai_image_tensor *out) {
    out->offset = tai_align_up(pos, TAI_IMAGE_ALIGN);
    if (t->layout == TAI_LAYOUT_SPARSE) { /* its image is as stored */
        out->layout = TAI_LAYOUT_SPARSE;
        out->size = t->size;
    } else if (t->n_dims == 2) {
        out->layout = TAI_LAYOUT_PACKED;
        out->size = tai_pack_bytes(t->type, t->ne[1], t->ne[0]);
        if (out->size == 0) return false;
    } else {
        out->layout = TAI_LAYOUT_ROWS;
        out->size = t->size;
    }
    return out->offset <= UINT64_MAX - TAI_IMAGE_ALIGN - out->size;
}

static const tai_tensor *layer_tensor(const tai_model_file *mf, const tai_layer_entry *e,
                                      int j) {
    return &mf->tensors[mf->layer_tensors[e->first_tensor + j]];
}

TinyAIStatus tai_layer_image_plan(const tai_model_file *mf, int layer,
                                  tai_image_tensor *tensors, uint64_t *size) {
    if (!mf || !size)
        return tai_error(TINYAI_ERR_INVALID_ARG, "tai_layer_image_plan: NULL argument");
    if (layer < 0 || layer >= mf->n_layers)
        return tai_error(TINYAI_ERR_INVALID_ARG, "%s: layer %d out of range (0..%d)",
                         mf->path, layer, mf->n_layers - 1);
    const tai_layer_entry *e = &mf->layers[layer];
    uint64_t pos = 0;
    for (int j = 0; j < e->n_tensors; j++) {
        const tai_tensor *t = layer_tensor(mf, e, j);
        tai_image_tensor it;
        if (!place(t, pos, &it))
            return tai_error(TINYAI_ERR_FORMAT, "%s: tensor '%s' (%s, %lld x %lld) is too "
                             "large to pack", mf->path, t->name, tai_type_name(t->type),
                             (long long)t->ne[1], (long long)t->ne[0]);
        if (tensors) tensors[j] = it;
        pos = it.offset + it.size;
    }
    *size = tai_align_up(pos, TAI_IMAGE_ALIGN);
    return TINYAI_OK;
}

/* The checks both builds make: the plan, the image's size and alignment, the
 * buffers. *want gets the image size (0: nothing to build). */
static TinyAIStatus check_build(const tai_model_file *mf, int layer, const void *layer_bytes,
                                const void *image, uint64_t image_size, const char *fn,
                                uint64_t *want) {
    TinyAIStatus st = tai_layer_image_plan(mf, layer, NULL, want);
    if (st) return st;
    if (image_size != *want)
        return tai_error(TINYAI_ERR_INVALID_ARG, "%s: layer %d's image takes %llu bytes, "
                         "not %llu", mf->path, layer, (unsigned long long)*want,
                         (unsigned long long)image_size);
    if (*want == 0) return TINYAI_OK;
    if (!image || (mf->layers[layer].size > 0 && !layer_bytes))
        return tai_error(TINYAI_ERR_INVALID_ARG, "%s: NULL buffer", fn);
    if ((uintptr_t)image % TAI_IMAGE_ALIGN != 0)
        return tai_error(TINYAI_ERR_INVALID_ARG, "%s: image at %p is not %d-byte aligned", fn,
                         image, TAI_IMAGE_ALIGN);
    return TINYAI_OK;
}

TinyAIStatus tai_layer_image_build(const tai_model_file *mf, int layer,
                                   const void *layer_bytes, void *image,
                                   uint64_t image_size, tai_pool *pool) {
    uint64_t want;
    TinyAIStatus st =
        check_build(mf, layer, layer_bytes, image, image_size, "tai_layer_image_build", &want);
    if (st || want == 0) return st;
    const tai_layer_entry *e = &mf->layers[layer];
    uint8_t *img = image;
    const uint8_t *src = layer_bytes;
    uint64_t pos = 0;
    for (int j = 0; j < e->n_tensors; j++) {
        const tai_tensor *t = layer_tensor(mf, e, j);
        tai_image_tensor it;
        place(t, pos, &it); /* cannot fail: the plan above succeeded */
        memset(img + pos, 0, (size_t)(it.offset - pos));
        /* The open validated that every tensor lies inside its layer. */
        const uint8_t *from = src + (t->offset - e->offset);
        if (it.layout == TAI_LAYOUT_PACKED && t->layout == TAI_LAYOUT_ROWS)
            tai_host_pack_matrix(pool, t->type, from, t->ne[1], t->ne[0], img + it.offset);
        else /* same layout: packed stays packed, vectors stay raw */
            memcpy(img + it.offset, from, (size_t)it.size);
        pos = it.offset + it.size;
    }
    memset(img + pos, 0, (size_t)(want - pos));
    return TINYAI_OK;
}

TinyAIStatus tai_layer_image_build_part(const tai_model_file *mf, int layer,
                                        const void *layer_bytes, uint64_t avail, void *image,
                                        uint64_t image_size, tai_image_progress *progress) {
    if (!progress) return tai_error(TINYAI_ERR_INVALID_ARG, "tai_layer_image_build_part: NULL progress");
    return tai_layer_image_build_window(mf, layer, layer_bytes, 0, avail, image, image_size,
                                        progress);
}

/* Whether tensor t of the image is packed from its rows here (panel by
 * panel) rather than copied. */
static bool packs(const tai_tensor *t, const tai_image_tensor *it) {
    return it->layout == TAI_LAYOUT_PACKED && t->layout == TAI_LAYOUT_ROWS;
}

uint64_t tai_layer_image_next_byte(const tai_model_file *mf, int layer,
                                   const tai_image_progress *progress) {
    if (!mf || !progress || layer < 0 || layer >= mf->n_layers) return 0;
    const tai_layer_entry *e = &mf->layers[layer];
    if (!progress->started) return 0;
    if (progress->tensor >= e->n_tensors) return e->size;
    const tai_tensor *t = layer_tensor(mf, e, progress->tensor);
    uint64_t pos = 0;
    tai_image_tensor it = {0, 0, 0};
    for (int j = 0; j <= progress->tensor; j++) {
        place(layer_tensor(mf, e, j), pos, &it);
        pos = it.offset + it.size;
    }
    const uint64_t rel = t->offset - e->offset;
    if (packs(t, &it))
        return rel + (uint64_t)progress->panel * TAI_PANEL * tai_type_row_bytes(t->type, t->ne[0]);
    return rel + (uint64_t)progress->panel;
}

bool tai_layer_image_in_order(const tai_model_file *mf, int layer, uint64_t *largest_part) {
    if (largest_part) *largest_part = 0;
    if (!mf || layer < 0 || layer >= mf->n_layers) return false;
    const tai_layer_entry *e = &mf->layers[layer];
    uint64_t end = e->offset, pos = 0, largest = 0;
    for (int j = 0; j < e->n_tensors; j++) {
        const tai_tensor *t = layer_tensor(mf, e, j);
        tai_image_tensor it;
        if (!place(t, pos, &it) || t->offset < end) return false;
        end = t->offset + t->size;
        pos = it.offset + it.size;
        if (packs(t, &it)) {
            uint64_t part = TAI_PANEL * tai_type_row_bytes(t->type, t->ne[0]);
            if (part > t->size) part = t->size;
            if (part > largest) largest = part;
        }
    }
    if (largest_part) *largest_part = largest;
    return true;
}

TinyAIStatus tai_layer_image_build_window(const tai_model_file *mf, int layer,
                                          const void *window, uint64_t lo, uint64_t hi,
                                          void *image, uint64_t image_size,
                                          tai_image_progress *progress) {
    if (!progress) return tai_error(TINYAI_ERR_INVALID_ARG, "tai_layer_image_build_window: NULL progress");
    uint64_t want;
    TinyAIStatus st = check_build(mf, layer, window, image, image_size,
                                  "tai_layer_image_build_window", &want);
    if (st || want == 0) return st;
    const tai_layer_entry *e = &mf->layers[layer];
    if (hi > e->size) hi = e->size;
    if (lo > hi) return TINYAI_OK; /* nothing of the layer at hand */
    const uint64_t next = tai_layer_image_next_byte(mf, layer, progress);
    if (next < lo && next < e->size)
        return tai_error(TINYAI_ERR_INVALID_ARG, "%s: layer %d: the build needs byte %llu, "
                         "before the bytes at hand [%llu, %llu)", mf->path, layer,
                         (unsigned long long)next, (unsigned long long)lo,
                         (unsigned long long)hi);
    uint8_t *img = image;
    const uint8_t *win = window;
    if (!progress->started) { /* the gaps between tensors and after the last */
        uint64_t pos = 0;
        for (int j = 0; j < e->n_tensors; j++) {
            tai_image_tensor it;
            place(layer_tensor(mf, e, j), pos, &it);
            memset(img + pos, 0, (size_t)(it.offset - pos));
            pos = it.offset + it.size;
        }
        memset(img + pos, 0, (size_t)(want - pos));
        progress->started = 1;
        progress->tensor = 0;
        progress->panel = 0;
    }
    /* placements up to the current tensor (cheap: a few tensors a layer) */
    uint64_t pos = 0;
    tai_image_tensor it = {0, 0, 0};
    for (int j = 0; j <= progress->tensor && j < e->n_tensors; j++) {
        place(layer_tensor(mf, e, j), pos, &it);
        pos = it.offset + it.size;
    }
    while (progress->tensor < e->n_tensors) {
        const tai_tensor *t = layer_tensor(mf, e, progress->tensor);
        const uint64_t rel = t->offset - e->offset; /* inside the layer (checked at open) */
        if (packs(t, &it)) {
            const int64_t rows = t->ne[1], panels = (rows + TAI_PANEL - 1) / TAI_PANEL;
            const uint64_t rb = tai_type_row_bytes(t->type, t->ne[0]), pb = rb * TAI_PANEL;
            const uint64_t from = rel + (uint64_t)progress->panel * pb; /* >= lo */
            int64_t ready = panels;
            if (hi < rel + t->size) ready = hi > rel ? (int64_t)((hi - rel) / pb) : 0;
            if (ready > progress->panel) {
                /* from the first panel not packed, as a matrix of its own */
                const int64_t p0 = progress->panel;
                tai_host_pack_panels(t->type, win + (from - lo), rows - p0 * TAI_PANEL, t->ne[0],
                                     img + it.offset + (size_t)p0 * tai_pack_panel_bytes(t->type, t->ne[0]),
                                     0, ready - p0);
                progress->panel = ready;
            }
            if (progress->panel < panels) break;
        } else {
            const uint64_t from = rel + (uint64_t)progress->panel; /* >= lo */
            const uint64_t to = hi < rel + it.size ? hi : rel + it.size;
            if (to > from) {
                memcpy(img + it.offset + progress->panel, win + (from - lo), (size_t)(to - from));
                progress->panel += (int64_t)(to - from);
            }
            if ((uint64_t)progress->panel < it.size) break;
        }
        progress->tensor++;
        progress->panel = 0;
        if (progress->tensor < e->n_tensors) {
            place(layer_tensor(mf, e, progress->tensor), pos, &it);
            pos = it.offset + it.size;
        }
    }
    return TINYAI_OK;
}

bool tai_layer_image_done(const tai_model_file *mf, int layer,
                          const tai_image_progress *progress) {
    if (!mf || !progress || layer < 0 || layer >= mf->n_layers) return false;
    return progress->started && progress->tensor >= mf->layers[layer].n_tensors;
}

bool tai_layer_image_in_file(const tai_model_file *mf, int layer) {
    if (!mf || layer < 0 || layer >= mf->n_layers) return false;
    const tai_layer_entry *e = &mf->layers[layer];
    uint64_t pos = 0;
    for (int j = 0; j < e->n_tensors; j++) {
        const tai_tensor *t = layer_tensor(mf, e, j);
        tai_image_tensor it;
        if (!place(t, pos, &it) || t->layout != it.layout || t->offset != e->offset + it.offset)
            return false;
        pos = it.offset + it.size;
    }
    uint64_t size = tai_align_up(pos, TAI_IMAGE_ALIGN);
    return e->offset <= mf->file_size && size <= mf->file_size - e->offset;
}
