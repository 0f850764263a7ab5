/*
 * runtime/format: the layer image, the bytes of one layer exactly as the
 * kernels read them, which is what the weight cache holds for a layer.
 *
 * The image of layer l places the layer's tensors in their layer order
 * (mf->layer_tensors[first_tensor ..]) one after the other, each at the next
 * multiple of TAI_IMAGE_ALIGN (64) from the image start, zero bytes between:
 * every 2-D tensor in packed layout (core/types.h "Packed weights", size
 * tai_pack_bytes(type, ne[1], ne[0])), every other tensor (norm vectors,
 * ...) as its raw bytes. The image size is the end of the last tensor
 * rounded up to 64; 0 for an empty layer. A 64-byte aligned image thus gives
 * every packed matrix the alignment the product kernels need.
 *
 * A .tmai version 2 file written by tai_tmai_write stores each layer in this
 * arrangement, relative to the layer's (4096-aligned) first byte, so reading
 * [layer offset, + image size) from such a file yields the image with no
 * work; from any other file (GGUF, .tmai version 1) the image is built from
 * the layer's bytes with tai_layer_image_build, which packs the row-major
 * matrices.
 *
 * All functions only read the model file; they may be called from several
 * threads at once (the pool given to tai_layer_image_build is not
 * reentrant: one build per pool at a time).
 */
#ifndef TAI_RUNTIME_FORMAT_IMAGE_H
#define TAI_RUNTIME_FORMAT_IMAGE_H

#include <stdbool.h>
#include <stdint.h>

#include <tinyai/status.h>

#include "core/types.h"
#include "offload/host.h"
#include "runtime/format/model_file.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TAI_IMAGE_ALIGN 64

/* Where one tensor lies in a layer image. */
typedef struct {
    uint64_t offset; /* from the image start; a multiple of TAI_IMAGE_ALIGN */
    uint64_t size;   /* bytes it takes there */
    int layout;      /* TAI_LAYOUT_PACKED for 2-D tensors, else TAI_LAYOUT_ROWS */
} tai_image_tensor;

/* Plans the image of `layer`: tensors[j] (if tensors is not NULL; the caller
 * provides mf->layers[layer].n_tensors entries) for the layer's j-th tensor,
 * and *size, the image's size in bytes. Errors: TINYAI_ERR_INVALID_ARG (NULL
 * mf or size, layer out of range), TINYAI_ERR_FORMAT (a matrix whose packed
 * size overflows). */
TinyAIStatus tai_layer_image_plan(const tai_model_file *mf, int layer,
                                  tai_image_tensor *tensors, uint64_t *size);

/* Builds the image of `layer` into `image` (image_size bytes, exactly the
 * planned size, 64-byte aligned) from `layer_bytes`, the file's bytes
 * [layers[layer].offset, + layers[layer].size) wherever the caller has them
 * (the mapping, a buffer read with O_DIRECT, ...; NULL allowed for an empty
 * layer). Row-major matrices are packed (with tai_pack_matrix on `pool`,
 * NULL: the calling thread), packed ones and other tensors copied, the gaps
 * zeroed. The checksum is not verified here (tai_model_file_verify_layer).
 * Errors: TINYAI_ERR_INVALID_ARG (NULL pointers, layer out of range, a size
 * other than the plan's, a misaligned image), those of the plan. */
TinyAIStatus tai_layer_image_build(const tai_model_file *mf, int layer,
                                   const void *layer_bytes, void *image,
                                   uint64_t image_size, tai_pool *pool);

/* The same build in steps, as the layer's bytes arrive: each call builds
 * every part of the image whose source lies in the first `avail` bytes of
 * `layer_bytes` and was not built yet (the bytes of tensors that are
 * copied, runs of whole 16-row panels of those that are packed), so that a
 * loader can repack what has landed while the rest is still being read.
 * `progress` starts zeroed (the first call also zeroes the gaps of the
 * image); the image is complete when a call with avail = the layer's size
 * returns (or tai_layer_image_done says so). Same arguments and errors as
 * tai_layer_image_build, on the calling thread. */
typedef struct {
    int started;
    int tensor;    /* the first tensor not finished */
    int64_t panel; /* its panels packed so far (bytes, for one copied) */
} tai_image_progress;

TinyAIStatus tai_layer_image_build_part(const tai_model_file *mf, int layer,
                                        const void *layer_bytes, uint64_t avail, void *image,
                                        uint64_t image_size, tai_image_progress *progress);
/* As tai_layer_image_build_part with only bytes [lo, hi) of the layer at
 * hand, at `window` (a loader's ring of pieces): builds the parts whose
 * source lies inside. The build goes in the order of the layer's bytes, so
 * a caller may drop everything before tai_layer_image_next_byte; a window
 * starting after it is refused (TINYAI_ERR_INVALID_ARG). The layer's
 * tensors must lie in increasing order without overlapping (true of every
 * file the open accepts; tai_layer_image_in_order says so). */
TinyAIStatus tai_layer_image_build_window(const tai_model_file *mf, int layer,
                                          const void *window, uint64_t lo, uint64_t hi,
                                          void *image, uint64_t image_size,
                                          tai_image_progress *progress);
/* The layer-relative offset of the first source byte the build still
 * needs (the layer's size once it is done). */
uint64_t tai_layer_image_next_byte(const tai_model_file *mf, int layer,
                                   const tai_image_progress *progress);
/* Whether the layer's tensors lie in increasing order without overlapping,
 * and the largest part a windowed build needs whole (one 16-row panel of a
 * packed matrix; a copied tensor is copied in any pieces). */
bool tai_layer_image_in_order(const tai_model_file *mf, int layer, uint64_t *largest_part);
bool tai_layer_image_done(const tai_model_file *mf, int layer,
                          const tai_image_progress *progress);

/* Whether the file already stores `layer` as its image: every tensor of it
 * at the layer's offset + its image offset, in its image layout, and
 * [offset, offset + image size) inside the file. Then those bytes are the
 * image but for the padding between and after tensors, which no kernel
 * reads (and which tai_tmai_write writes as zeros, so for its files they
 * are the image byte for byte). True for every layer of a version 2 file
 * written by tai_tmai_write; false for a layer with a row-major matrix. */
bool tai_layer_image_in_file(const tai_model_file *mf, int layer);

#ifdef __cplusplus
}
#endif

#endif /* TAI_RUNTIME_FORMAT_IMAGE_H */
