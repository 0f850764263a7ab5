/*
 * runtime/mapped: the mapped model, where the model file, the I/O engines,
 * NUMA placement and the weight cache meet. It is the TinyAIMappedModel of
 * <tinyai/utils/mmap_loader.h>; the Llama forward pass (runtime/model) and
 * the forward scheduler (runtime/sched) take their layers from it.
 *
 * A layer's cached form is its image (runtime/format: every matrix packed,
 * each tensor 64-byte aligned). Loading layer l:
 *   - .tmai version 2 whose layer is stored as its image: one read of the
 *     layer's bytes straight into the cache buffer (O_DIRECT: the layer
 *     starts 4096-aligned and is padded to 4096 in the file);
 *   - otherwise (GGUF, .tmai version 1): the layer's bytes are read into a
 *     staging buffer of the loader (widened to the O_DIRECT alignment) and
 *     repacked into the cache buffer.
 * A .tmai layer's XXH64 is checked on its first load (every load with
 * verifyEveryLoad); a mismatch is TINYAI_ERR_CHECKSUM, never used weights.
 *
 * The cache is created at open with maxCacheSize bytes, and may be re-planned
 * (tai_mapped_plan) by whoever runs the model, as long as no layer is held.
 */
#ifndef TAI_RUNTIME_MAPPED_MAPPED_H
#define TAI_RUNTIME_MAPPED_MAPPED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tinyai/status.h>
#include <tinyai/utils/mmap_loader.h>

#include "io/io.h"
#include "runtime/cache/cache.h"
#include "runtime/format/model_file.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Internal options beyond TinyAIMmapConfig. */
typedef struct {
    const tai_io_faults *faults; /* fault injection for tests (NULL) */
    bool defer_cache;            /* open without a cache (tai_mapped_plan
                                    creates it) */
    int threads_hint;            /* compute threads, for NUMA placement */
    size_t piece_bytes;          /* one read of a staged layer (0: 2 MiB;
                                    tests make it small so that layers
                                    wrap around the staging ring) */
} tai_mapped_options;

TinyAIStatus tai_mapped_open(const char *path, const TinyAIMmapConfig *cfg,
                             const tai_mapped_options *opt, TinyAIMappedModel **out);
void tai_mapped_close(TinyAIMappedModel *mm);

const tai_model_file *tai_mapped_file(const TinyAIMappedModel *mm);
int tai_mapped_layers(const TinyAIMappedModel *mm);
/* Image bytes of layer l, and the offset in it of the layer's k-th tensor
 * (k in 0..file->layers[l].n_tensors-1, in layer_tensors order). */
size_t tai_mapped_image_bytes(const TinyAIMappedModel *mm, int layer);
size_t tai_mapped_tensor_offset(const TinyAIMappedModel *mm, int tensor_index);
/* Sum of every layer's image bytes, and the largest one; both rounded to
 * the cache's allocation unit. */
size_t tai_mapped_total_image_bytes(const TinyAIMappedModel *mm);
size_t tai_mapped_largest_image_bytes(const TinyAIMappedModel *mm);
/* The room layer l takes in the cache: its image bytes rounded up to the
 * cache's allocation unit. */
size_t tai_mapped_layer_room(const TinyAIMappedModel *mm, int layer);
/* Bytes outside the cache that loading needs (staging for repacking). */
size_t tai_mapped_staging_bytes(const TinyAIMappedModel *mm);

typedef struct {
    size_t budget;
    TinyAICachePolicy policy;
    int prefetch_window;   /* 0: none */
    bool aggressive;       /* streaming: prefetch may evict anything later */
    bool resident;         /* every layer is loaded once and kept (NORMAL):
                              where fresh huge pages are slow to fault in,
                              the arena is faulted in base pages and
                              collapsed into huge pages afterwards, in the
                              background (see tai_mapped_pin_all) */
} tai_mapped_plan_t;

/* (Re)creates the cache. BUSY-like INVALID_ARG if a layer is held. */
TinyAIStatus tai_mapped_plan(TinyAIMappedModel *mm, const tai_mapped_plan_t *plan);
bool tai_mapped_has_cache(const TinyAIMappedModel *mm);
/* The machine's topology the arena was placed with (NULL: none); the
 * mapped model's, valid while it is open. */
struct tai_numa *tai_mapped_numa(const TinyAIMappedModel *mm);
TinyAIStatus tai_mapped_set_schedule(TinyAIMappedModel *mm, const int *order, int n,
                                     bool cyclic);
/* Loads every layer and pins it (NORMAL mode). With plan->resident, then
 * collapses the arena into huge pages on a background thread of the lowest
 * priority (MADV_COLLAPSE, 2 MiB at a time; where the kernel lacks it, the
 * advice for khugepaged). Faulting a fresh arena in huge pages is fast where
 * the memory is already backed, but on virtual machines that hand freed
 * memory back to the host (free page reporting works on whole huge pages)
 * each one costs a host fault, and a start took 2 s instead of 0.3 s one
 * time in three; base pages come from memory the guest still holds, so the
 * start is the same every time, and the collapse afterwards (a few seconds
 * for a GB, during which decoding is slower) gives decoding its TLB reach
 * back (12% on that machine). */
/* Whether that collapse is still running. */
bool tai_mapped_collapse_pending(const TinyAIMappedModel *mm);
/* Records the cache's loads, prefetches and evictions in t (core/trace.h;
 * NULL: stops), in this cache and any later one. */
struct tai_trace;
void tai_mapped_set_trace(TinyAIMappedModel *mm, struct tai_trace *t);
/* The order of the reads: `first`, the other layers in the file's order,
 * `last`, once every other layer has landed (each -1 for none): a large
 * layer first, so that the final reads are of layers one loader reads
 * quickly, and last one a first pass can do without (the embedding table,
 * whose rows are read from the file meanwhile, llama.c). */
TinyAIStatus tai_mapped_pin_all(TinyAIMappedModel *mm, int first, int last);
/* As tai_mapped_pin_all, without waiting: every layer's load starts now,
 * and a background thread pins each layer as it lands (then collapses the
 * arena as above). Acquiring a layer meanwhile waits for its load, as
 * under a limit, so a forward pass runs while the rest is still read. A
 * load that fails is tried again by the next acquire of its layer.
 * tai_mapped_pin_wait waits for every pin: the first failure (its
 * message), and the seconds from the start to the last pin;
 * tai_mapped_pin_pending says whether they are still going on (and the
 * seconds once not). Without a thread, the same as tai_mapped_pin_all. */
TinyAIStatus tai_mapped_pin_all_start(TinyAIMappedModel *mm, int first, int last);
TinyAIStatus tai_mapped_pin_wait(TinyAIMappedModel *mm, double *seconds);
/* In a background load, `last` is read only once this was called (at the
 * end of a forward pass, so that its reads and repacking do not take a
 * core from the first pass's final layers) or tai_mapped_pin_wait is. */
void tai_mapped_load_last(TinyAIMappedModel *mm);
bool tai_mapped_pin_pending(TinyAIMappedModel *mm, double *seconds);

/* Holds layer l and gives its image / ends the hold. */
TinyAIStatus tai_mapped_acquire(TinyAIMappedModel *mm, int layer, void **image);
TinyAIStatus tai_mapped_release(TinyAIMappedModel *mm, int layer);

/* Whether layer l is absent, being loaded or resident in the cache now
 * (TAI_ENTRY_ABSENT without a cache or for a bad index). */
tai_entry_state tai_mapped_layer_state(const TinyAIMappedModel *mm, int layer);
/* Whether layer's bytes need no check before use: a file without
 * checksums (GGUF), an empty layer, or one whose checksum was checked. */
bool tai_mapped_layer_checked(const TinyAIMappedModel *mm, int layer);

/* Storage read bandwidth in bytes per second, 0 if it cannot be measured:
 * n bytes (rounded down to the alignment) read from four places of the file
 * with a loader's engine into memory allocated as the cache's arena is (its
 * NUMA allocator, transparent huge pages advised: on a virtual disk that
 * can double the speed). The buffer is allocated and faulted in before the
 * timing and freed after. */
double tai_mapped_probe_bandwidth(TinyAIMappedModel *mm, size_t n);

/* Reads outside the cache, for looking up a few rows of a large table
 * without loading it whole. tai_mapped_read reads the bytes [off, off + len)
 * of the file, which must lie inside layer `layer`, with one aligned read
 * through a loader's engine into buf, which must be aligned to
 * tai_mapped_read_align and hold len plus that alignment at both ends
 * (cap bytes); *at is where the bytes asked for start in it. The bytes read
 * count in the stats' bytesRead. Nothing is verified: call
 * tai_mapped_verify for the layer first. INVALID_ARG for a span outside the
 * layer or a buffer too small; IO naming the file, layer and offset. */
size_t tai_mapped_read_align(const TinyAIMappedModel *mm);
TinyAIStatus tai_mapped_read(TinyAIMappedModel *mm, int layer, uint64_t off, size_t len,
                             void *buf, size_t cap, const unsigned char **at);
/* Checks a .tmai layer's checksum once, reading it through buf (as above,
 * at least three times the alignment; the larger, the fewer reads), with no
 * cache room needed; later calls, and any call for a GGUF file, return at
 * once. CHECKSUM naming the file and layer if it does not match. */
TinyAIStatus tai_mapped_verify(TinyAIMappedModel *mm, int layer, void *buf, size_t cap);

/* Bytes the cache takes now (its arena: registered memory is resident). */
size_t tai_mapped_memory_bytes(const TinyAIMappedModel *mm);

#ifdef __cplusplus
}
#endif

#endif
