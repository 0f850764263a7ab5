/*
 * runtime/mapped: the mapped model (see mapped.h) and the public API of
 * <tinyai/utils/mmap_loader.h> on top of it.
 */
#include "runtime/mapped/mapped.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/pages.h"
#include "core/thread.h"
#include "runtime/cache/cache.h"
#include "runtime/format/image.h"
#include "runtime/mem/memory.h"
#include "runtime/mem/numa.h"

#define DEFAULT_CACHE (256u << 20)
#define MAX_LOADERS 16
#define MAX_WINDOW 64

/* A thread's copy of the descriptors (see TinyAIMappedModel.views). */
struct desc_view {
    pthread_t owner;
    TinyAILayerDescriptor *desc; /* n_layers */
    struct desc_view *next;
};

struct TinyAIMappedModel {
    tai_model_file *file;
    TinyAIMmapConfig cfg;
    tai_mapped_options opt;
    size_t granule;

    int n_layers;
    TinyAILayerDescriptor *desc; /* the current state (under mu) */
    /* what tinyaiGetLayerDescriptor hands out: one copy of desc per calling
     * thread, refreshed by that thread's calls only, so no thread writes
     * what another reads (under mu; freed at close) */
    struct desc_view *views;
    /* per layer, holds through tinyaiGetLayerWeights (under mu): how many,
     * the thread that made them (-1 in multi: more than one thread), when
     * (a counter), and holds reclaimed for room that a later release then
     * finds gone */
    int *api_holds, *api_reclaimed;
    pthread_t *api_owner;
    unsigned char *api_multi;
    uint64_t *api_when, api_clock;
    size_t *image_bytes;   /* per layer */
    size_t *tensor_off;    /* per tensor (file tensor index): offset in its image */
    unsigned char *direct; /* per layer: the file's bytes are the image */
    unsigned char *ringed; /* per layer: built through a loader's ring */
    uint64_t ring_part;    /* the largest part a ringed build needs whole */
    unsigned char *verified; /* per layer: checksum checked once (under io_mu) */
    tai_cache_entry_info *snap; /* per layer: scratch of refresh_all (under mu) */
    size_t total_images, largest_image;

    tai_numa *numa;
    tai_numa_placement place;
    bool place_ok;

    /* One I/O engine per loader thread; a load takes a free one. */
    int n_io;
    tai_io *io[MAX_LOADERS];
    tai_io_file *iof[MAX_LOADERS];
    void *staging[MAX_LOADERS];
    int io_busy[MAX_LOADERS];
    size_t staging_bytes; /* per engine */
    size_t piece;         /* bytes of one read of a staged layer */
    int ring_slots;       /* pieces a staging ring holds (read_and_build_ring) */
    uint64_t direct_read; /* bytes tai_mapped_read and _verify read (io_mu) */
    size_t align;         /* O_DIRECT alignment of the file (max over engines) */
    pthread_mutex_t io_mu;
    pthread_cond_t io_cv;

    pthread_mutex_t mu; /* descriptors, cache pointer swaps */
    tai_cache *cache;
    size_t cache_budget;
    tai_cache_policy policy;
    char engine_name[16];
    char fallback[160];

    struct tai_trace *trace; /* handed to each cache it makes */
    /* resident arenas: base pages first, huge pages after the load */
    bool resident;
    atomic_bool collapse_done;
    pthread_t collapser;
    bool collapsing;        /* the thread was started (joined by stop_collapse) */
    atomic_bool stop_collapse_flag;
    /* tai_mapped_pin_all_start: the same thread first pins every layer as
     * its load lands; the outcome under mu, pin_cv signalled when known */
    bool pin_bg;
    bool pin_done;
    TinyAIStatus pin_status;
    char pin_msg[256];
    double pin_t0, pin_seconds;
    pthread_cond_t pin_cv;
    int *load_order; /* n_layers: the order of a whole load (set_load_order) */
    int load_last;   /* its final layer, read once the others landed (-1: none) */
    atomic_bool last_go; /* ... and a first pass is over (tai_mapped_load_last; set under mu) */
};

/* ---- Helpers ------------------------------------------------------------ */

/* The order of a whole load: `first`, the others in the file's order,
 * `last` (each -1 for none). */
static void set_load_order(TinyAIMappedModel *mm, int first, int last) {
    const int n = mm->n_layers;
    if (first < 0 || first >= n) first = -1;
    if (last < 0 || last >= n || last == first) last = -1;
    int k = 0;
    if (first >= 0) mm->load_order[k++] = first;
    for (int l = 0; l < n; l++)
        if (l != first && l != last) mm->load_order[k++] = l;
    if (last >= 0) mm->load_order[k++] = last;
    mm->load_last = last;
}

static size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

static const char *layer_name(const TinyAIMappedModel *mm, int l, char *buf, size_t n) {
    if (l == 0)
        snprintf(buf, n, "token embedding");
    else if (l == mm->n_layers - 1)
        snprintf(buf, n, "output head");
    else
        snprintf(buf, n, "block %d", l - 1);
    return buf;
}

/* Takes a free engine slot (waits if every loader's engine is busy). */
static int io_take(TinyAIMappedModel *mm) {
    pthread_mutex_lock(&mm->io_mu);
    for (;;) {
        for (int i = 0; i < mm->n_io; i++)
            if (!mm->io_busy[i]) {
                mm->io_busy[i] = 1;
                pthread_mutex_unlock(&mm->io_mu);
                return i;
            }
        pthread_cond_wait(&mm->io_cv, &mm->io_mu);
    }
}

static void io_give(TinyAIMappedModel *mm, int i) {
    pthread_mutex_lock(&mm->io_mu);
    mm->io_busy[i] = 0;
    pthread_cond_signal(&mm->io_cv);
    pthread_mutex_unlock(&mm->io_mu);
}

static TinyAIStatus read_range(TinyAIMappedModel *mm, int slot, int layer, uint64_t off,
                               size_t len, void *dst) {
    /* the mmap engine copies from a mapping, which faults past the end of
     * a file that became shorter: not touched once the file changed */
    if (tai_io_engine(mm->io[slot]) == TAI_IO_MMAP) {
        const TinyAIStatus st = tai_model_file_unchanged(mm->file);
        if (st != TINYAI_OK) return st;
    }
    uint64_t fail = off;
    int rc = tai_io_read(mm->io[slot], mm->iof[slot], off, len, dst, &fail);
    if (rc == 0) return TINYAI_OK;
    char nm[32];
    return tai_error(TINYAI_ERR_IO, "%s: layer %d (%s): read of %zu bytes at offset %llu failed at offset %llu: %s",
                     mm->file->path, layer, layer_name(mm, layer, nm, sizeof nm), len,
                     (unsigned long long)off, (unsigned long long)fail, strerror(-rc));
}

/* A read's outcome in the light of whether the file changed since it was
 * opened: bytes read after a change are not the model's, and a read that
 * failed (a shorter file) or a checksum that did not match because of one
 * says so. */
static TinyAIStatus unless_changed(const TinyAIMappedModel *mm, TinyAIStatus st) {
    if (st != TINYAI_OK && st != TINYAI_ERR_IO && st != TINYAI_ERR_CHECKSUM) return st;
    const TinyAIStatus ch = tai_model_file_unchanged(mm->file);
    return ch != TINYAI_OK ? ch : st;
}

/* Compares a layer's hash with its stored checksum; marks it verified if
 * they match. */
static TinyAIStatus checksum_verdict(TinyAIMappedModel *mm, int layer, uint64_t h) {
    const tai_layer_entry *e = &mm->file->layers[layer];
    if (h != e->checksum) {
        char nm[32];
        return tai_error(TINYAI_ERR_CHECKSUM,
                         "%s: layer %d (%s) at offset %llu: checksum mismatch (stored %016llx, "
                         "read %016llx): the file is corrupt",
                         mm->file->path, layer, layer_name(mm, layer, nm, sizeof nm),
                         (unsigned long long)e->offset, (unsigned long long)e->checksum,
                         (unsigned long long)h);
    }
    pthread_mutex_lock(&mm->io_mu);
    mm->verified[layer] = 1;
    pthread_mutex_unlock(&mm->io_mu);
    return TINYAI_OK;
}

/* The layer's checksum, on its first load (or every load if asked). */
static TinyAIStatus check_layer(TinyAIMappedModel *mm, int layer, const void *bytes) {
    const tai_layer_entry *e = &mm->file->layers[layer];
    if (mm->file->kind != TAI_FILE_TMAI || e->size == 0) return TINYAI_OK;
    pthread_mutex_lock(&mm->io_mu);
    bool done = mm->verified[layer] && !mm->cfg.verifyEveryLoad;
    pthread_mutex_unlock(&mm->io_mu);
    if (done) return TINYAI_OK;
    return checksum_verdict(mm, layer, XXH64(bytes, (size_t)e->size, 0));
}

/* Reads [a0, a1) of the file into `stage` as pieces in flight together and
 * builds the layer's image into dst as they land: each time the bytes from
 * the layer's start onwards are complete up to a further point, every part
 * of the image whose source lies before it is built, so repacking runs
 * while the rest is read (the time of a load is about the longer of the two,
 * not their sum). The checksum (.tmai) is checked on the whole layer at the
 * end. Every request is waited for before returning, on error too. */
/* 2 MiB pieces, 8 in flight (16 MiB per loader): of the shapes measured
 * (cold first token of a 0.6 GB model, virtio disk, 2 loaders), 1 MiB
 * pieces were 5-8% slower, and 32 MiB in flight (4 MiB x 8, 2 MiB x 16)
 * 20% slower. */
#define PIECE ((size_t)2 << 20)
#define MAX_PIECES 16384
/* Pieces in flight at once: enough to keep the device streaming while one
 * is repacked, few enough that they land one after another (all of a
 * layer's pieces at once are served side by side and land together at the
 * end, leaving nothing to repack until then). */
#define WINDOW 8
#define MAX_RING 64 /* slots of a staging ring at most (a panel of up to 54 pieces) */
/* Submits pieces next.. of [a0, a0 + total) until WINDOW are in flight; a
 * refused submission is recorded in *fail_res / *fail_off. Piece j goes to
 * stage + j * piece, or with a ring of nr pieces (read_and_build_ring) to
 * its slot, j % nr, once the build is past the piece a lap before (every
 * piece before `consumed`). */
static void fill_window(TinyAIMappedModel *mm, int slot, uint64_t a0, size_t total,
                        size_t piece, int64_t n, unsigned char *stage, int nr, int64_t consumed,
                        int64_t *next, int *outstanding, int *fail_res, uint64_t *fail_off) {
    while (*fail_res == 0 && *next < n && *outstanding < WINDOW &&
           (nr == 0 || *next - consumed < nr)) {
        const size_t off = (size_t)*next * piece;
        unsigned char *to = stage + (nr ? (size_t)(*next % nr) * piece : off);
        tai_io_req rq = {mm->iof[slot], a0 + off, total - off < piece ? total - off : piece, to,
                         (uint64_t)*next};
        int rc = tai_io_submit(mm->io[slot], &rq);
        if (rc == -EBUSY) return;
        if (rc != 0) {
            *fail_res = rc;
            *fail_off = a0 + off;
            return;
        }
        (*next)++;
        (*outstanding)++;
    }
}

/* Waits for pieces in flight: the tags of those that landed whole go to
 * `tags` (TAI_IO_MAX_REQS at most), the first failure to *fail_res /
 * *fail_off. Returns how many landed; -1 when the kernel interface failed
 * (no completion can come). */
static int wait_pieces(TinyAIMappedModel *mm, int slot, uint64_t a0, int *outstanding,
                       int *fail_res, uint64_t *fail_off, uint64_t *tags) {
    tai_io_done d[TAI_IO_MAX_REQS];
    const int got = tai_io_wait(mm->io[slot], d, TAI_IO_MAX_REQS, 1);
    if (got < 0) {
        if (*fail_res == 0) *fail_res = got, *fail_off = a0;
        return -1;
    }
    int landed = 0;
    for (int i = 0; i < got; i++) {
        (*outstanding)--;
        if (d[i].res < 0 && *fail_res == 0) {
            *fail_res = d[i].res;
            *fail_off = d[i].fail_offset;
        }
        if (d[i].res == 0) tags[landed++] = d[i].tag;
    }
    return landed;
}

static TinyAIStatus pieces_failed(const TinyAIMappedModel *mm, int layer, uint64_t a0,
                                  size_t total, uint64_t fail_off, int fail_res) {
    char nm[32];
    return tai_error(TINYAI_ERR_IO,
                     "%s: layer %d (%s): read of %zu bytes at offset %llu failed at offset "
                     "%llu: %s",
                     mm->file->path, layer, layer_name(mm, layer, nm, sizeof nm), total,
                     (unsigned long long)a0, (unsigned long long)fail_off, strerror(-fail_res));
}

static TinyAIStatus read_and_build(TinyAIMappedModel *mm, int slot, int layer, uint64_t a0,
                                   uint64_t a1, unsigned char *stage, void *dst) {
    const tai_layer_entry *e = &mm->file->layers[layer];
    const size_t total = (size_t)(a1 - a0), skip = (size_t)(e->offset - a0);
    const size_t piece = PIECE / mm->align * mm->align;
    const int n = (int)((total + piece - 1) / piece);
    if (n > MAX_PIECES || piece == 0) { /* a layer over 32 GiB: one read, then the build */
        TinyAIStatus st = read_range(mm, slot, layer, a0, total, stage);
        if (st == TINYAI_OK) st = check_layer(mm, layer, stage + skip);
        if (st == TINYAI_OK)
            st = tai_layer_image_build(mm->file, layer, stage + skip, dst, mm->image_bytes[layer], NULL);
        return st;
    }
    unsigned char landed[MAX_PIECES];
    memset(landed, 0, (size_t)n);
    tai_image_progress prog = {0, 0, 0};
    TinyAIStatus st = TINYAI_OK;
    int64_t next = 0;
    int outstanding = 0, done_upto = 0;
    uint64_t fail_off = 0;
    int fail_res = 0;
    if (mm->resident) {
        /* The first reads are under way: the destination's pages are
         * faulted in now, while the loader would only wait, in one call
         * (several times cheaper per page than a fault each), instead of
         * one at a time as the repacking first writes them. */
        fill_window(mm, slot, a0, total, piece, n, stage, 0, 0, &next, &outstanding, &fail_res,
                    &fail_off);
        (void)tai_populate_write(dst, mm->image_bytes[layer]);
    }
    while (done_upto < n) {
        /* the window is kept full before repacking (here and after each
         * wait), so the device never waits on the repacking of pieces that
         * landed together */
        if (st == TINYAI_OK && fail_res == 0)
            fill_window(mm, slot, a0, total, piece, n, stage, 0, 0, &next, &outstanding, &fail_res,
                        &fail_off);
        if (outstanding == 0) break; /* nothing more will land */
        uint64_t tags[TAI_IO_MAX_REQS];
        const int got = wait_pieces(mm, slot, a0, &outstanding, &fail_res, &fail_off, tags);
        if (got < 0) break;
        for (int i = 0; i < got; i++) landed[tags[i]] = 1;
        if (fail_res != 0) continue; /* drain what is in flight */
        if (st == TINYAI_OK)
            fill_window(mm, slot, a0, total, piece, n, stage, 0, 0, &next, &outstanding, &fail_res,
                        &fail_off);
        const int before = done_upto;
        while (done_upto < n && landed[done_upto]) done_upto++;
        if (done_upto > before && st == TINYAI_OK) {
            const size_t have = (size_t)done_upto * piece < total ? (size_t)done_upto * piece : total;
            const uint64_t avail = have > skip ? (uint64_t)(have - skip) : 0;
            if (mm->file->kind != TAI_FILE_TMAI || done_upto == n)
                st = tai_layer_image_build_part(mm->file, layer, stage + skip,
                                                avail < e->size ? avail : e->size, dst,
                                                mm->image_bytes[layer], &prog);
        }
    }
    if (fail_res != 0) return pieces_failed(mm, layer, a0, total, fail_off, fail_res);
    if (st != TINYAI_OK) return st;
    /* a .tmai layer is built only once whole, after its checksum */
    if (mm->file->kind == TAI_FILE_TMAI) {
        st = check_layer(mm, layer, stage + skip);
        if (st == TINYAI_OK && !tai_layer_image_done(mm->file, layer, &prog))
            st = tai_layer_image_build(mm->file, layer, stage + skip, dst, mm->image_bytes[layer], NULL);
    }
    return st;
}

/* Builds what it can of the image from the pieces landed so far, in a ring
 * of mm->ring_slots pieces (piece j of the span in slot j % slots), the
 * spill area after the last slot standing in for the start of the next
 * lap, so that a panel that runs over the end of the ring is contiguous.
 * *consumed gets the piece that holds the first byte still needed (every
 * piece before it may be read over). */
static TinyAIStatus ring_build(TinyAIMappedModel *mm, int layer, unsigned char *stage,
                               size_t skip, size_t total, int64_t landed, void *dst,
                               tai_image_progress *prog, int64_t *consumed) {
    const tai_layer_entry *e = &mm->file->layers[layer];
    const size_t piece = mm->piece, spill = round_up((size_t)mm->ring_part, 64);
    const int nr = mm->ring_slots;
    for (;;) {
        const uint64_t nb = skip + tai_layer_image_next_byte(mm->file, layer, prog);
        if (nb >= skip + e->size) {
            *consumed = INT64_MAX;
            return TINYAI_OK;
        }
        const int64_t c = (int64_t)(nb / piece);
        *consumed = c;
        if (c >= landed) return TINYAI_OK;
        const int64_t lap_end = c - c % nr + nr; /* the next lap's first piece */
        uint64_t hi = (uint64_t)(landed < lap_end ? landed : lap_end) * piece;
        if (landed > lap_end && spill > 0) {
            /* the next lap's first pieces lie from slot 0 on */
            uint64_t end = (uint64_t)landed * piece;
            if (end > hi + spill) end = hi + spill;
            if (end > total) end = total;
            memcpy(stage + (size_t)nr * piece, stage, (size_t)(end - hi));
            hi = end;
        }
        if (hi > total) hi = total;
        const unsigned char *w = stage + (size_t)(c % nr) * piece;
        uint64_t lo = (uint64_t)c * piece;
        if (lo < skip) { /* the alignment before the layer's first byte */
            w += skip - lo;
            lo = skip;
        }
        TinyAIStatus st = tai_layer_image_build_window(mm->file, layer, w, lo - skip,
                                                       hi > skip ? hi - skip : 0, dst,
                                                       mm->image_bytes[layer], prog);
        if (st != TINYAI_OK) return st;
        if (skip + tai_layer_image_next_byte(mm->file, layer, prog) == nb) return TINYAI_OK;
    }
}

/* As read_and_build for a layer of a GGUF file, through the staging ring
 * (ring_build): piece j goes into its slot once every byte the build needs
 * from the piece a lap before has been used, WINDOW pieces in flight. */
static TinyAIStatus read_and_build_ring(TinyAIMappedModel *mm, int slot, int layer, uint64_t a0,
                                        uint64_t a1, unsigned char *stage, void *dst) {
    const tai_layer_entry *e = &mm->file->layers[layer];
    const size_t total = (size_t)(a1 - a0), skip = (size_t)(e->offset - a0);
    const size_t piece = mm->piece;
    const int64_t n = (int64_t)((total + piece - 1) / piece);
    const int nr = mm->ring_slots;
    int64_t in_slot[MAX_RING]; /* the piece landed in each slot (-1: none) */
    for (int i = 0; i < nr; i++) in_slot[i] = -1;
    tai_image_progress prog = {0, 0, 0};
    TinyAIStatus st = TINYAI_OK;
    int64_t next = 0, landed = 0, consumed = 0;
    int outstanding = 0, fail_res = 0;
    uint64_t fail_off = 0;
    bool populated = !mm->resident;
    for (;;) {
        if (st == TINYAI_OK)
            fill_window(mm, slot, a0, total, piece, n, stage, nr, consumed, &next, &outstanding,
                        &fail_res, &fail_off);
        if (!populated) { /* as in read_and_build, while the first reads are under way */
            (void)tai_populate_write(dst, mm->image_bytes[layer]);
            populated = true;
        }
        if (outstanding == 0) break; /* nothing more will land */
        uint64_t tags[TAI_IO_MAX_REQS];
        const int got = wait_pieces(mm, slot, a0, &outstanding, &fail_res, &fail_off, tags);
        if (got < 0) break;
        for (int i = 0; i < got; i++) in_slot[tags[i] % (uint64_t)nr] = (int64_t)tags[i];
        if (fail_res != 0 || st != TINYAI_OK) continue; /* drain what is in flight */
        while (landed < n && in_slot[landed % nr] == landed) landed++;
        /* the window refilled before repacking, so the device never waits
         * on the repacking of pieces that landed together */
        fill_window(mm, slot, a0, total, piece, n, stage, nr, consumed, &next, &outstanding,
                    &fail_res, &fail_off);
        st = ring_build(mm, layer, stage, skip, total, landed, dst, &prog, &consumed);
    }
    if (fail_res != 0) return pieces_failed(mm, layer, a0, total, fail_off, fail_res);
    if (st == TINYAI_OK && !tai_layer_image_done(mm->file, layer, &prog))
        st = tai_error(TINYAI_ERR_INTERNAL, "%s: layer %d: the image was left incomplete",
                       mm->file->path, layer);
    return st;
}

/* The index of every block-sparse tensor of a loaded image: a kept block
 * beyond the row or out of order would send a product to read past its
 * activations, so a file that says so is refused when the layer loads. */
static TinyAIStatus check_sparse(const TinyAIMappedModel *mm, int layer, const void *image) {
    const tai_layer_entry *e = &mm->file->layers[layer];
    for (int j = 0; j < e->n_tensors; j++) {
        const int ti = mm->file->layer_tensors[e->first_tensor + j];
        const tai_tensor *t = &mm->file->tensors[ti];
        int64_t bad = 0;
        if (t->layout == TAI_LAYOUT_SPARSE &&
            !tai_sparse_check(t->type, (const uint8_t *)image + mm->tensor_off[ti], t->ne[1],
                              t->ne[0], t->keep, &bad))
            return tai_error(TINYAI_ERR_FORMAT, "%s: block-sparse tensor '%s': panel %lld has "
                             "a bad kept-block index (count other than %lld, out of range or "
                             "not increasing)", mm->file->path, t->name, (long long)bad,
                             (long long)t->keep);
    }
    return TINYAI_OK;
}

/* The cache's load function: fills dst with layer `layer`'s image. */
static TinyAIStatus load_layer(void *ctx, int layer, void *dst, size_t size) {
    TinyAIMappedModel *mm = ctx;
    const tai_layer_entry *e = &mm->file->layers[layer];
    (void)size; /* the image size; the buffer holds it rounded to the granule */
    if (e->size == 0) return TINYAI_OK;
    const int slot = io_take(mm);
    TinyAIStatus st;
    const size_t a = mm->align;
    if (mm->direct[layer]) {
        /* the layer starts aligned and the file is padded after it */
        size_t len = round_up((size_t)e->size, a);
        if (e->offset + len > mm->file->file_size) len = (size_t)(mm->file->file_size - e->offset);
        st = read_range(mm, slot, layer, e->offset, len, dst);
        if (st == TINYAI_OK) st = check_layer(mm, layer, dst);
    } else if (tai_io_engine(mm->io[slot]) == TAI_IO_MMAP && mm->file->map && !mm->opt.faults &&
               tai_model_file_hold(mm->file)) {
        /* the mmap engine would copy the page cache's bytes into staging:
         * the image is built from the file's own mapping instead, while
         * the file cannot be truncated (held: a shorter file would fault
         * mid-build), and not at all where it changed before */
        const unsigned char *raw = mm->file->map + e->offset;
        st = tai_model_file_unchanged(mm->file);
        /* both ranges mapped in one call each, not a fault per page */
        if (st == TINYAI_OK) (void)tai_populate_read(raw, (size_t)e->size);
        if (st == TINYAI_OK && mm->resident) (void)tai_populate_write(dst, mm->image_bytes[layer]);
        if (st == TINYAI_OK) st = check_layer(mm, layer, raw);
        if (st == TINYAI_OK)
            st = tai_layer_image_build(mm->file, layer, raw, dst, mm->image_bytes[layer], NULL);
        /* the file's pages stay in the page cache, not in this process's
         * resident set beside their packed copy (a page shared with a
         * neighbour being read faults back in from the cache) */
        const uintptr_t pg = 4096, lo = ((uintptr_t)raw) & ~(pg - 1);
        const uintptr_t hi = ((uintptr_t)raw + (uintptr_t)e->size + pg - 1) & ~(pg - 1);
        (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
        tai_model_file_unhold(mm->file);
    } else {
        const uint64_t a0 = e->offset / a * a;
        uint64_t a1 = round_up((size_t)(e->offset + e->size), a);
        if (a1 > mm->file->file_size) a1 = mm->file->file_size;
        st = mm->ringed[layer]
                 ? read_and_build_ring(mm, slot, layer, a0, a1, mm->staging[slot], dst)
                 : read_and_build(mm, slot, layer, a0, a1, mm->staging[slot], dst);
    }
    io_give(mm, slot);
    st = unless_changed(mm, st);
    if (st == TINYAI_OK) st = check_sparse(mm, layer, dst);
    return st;
}

static void *arena_alloc(void *ctx, size_t size) {
    TinyAIMappedModel *mm = ctx;
    if (!mm->numa || !mm->place_ok) return NULL;
    return tai_numa_alloc(mm->numa, size, &mm->place, 0);
}

static void arena_free(void *ctx, void *p, size_t size) {
    TinyAIMappedModel *mm = ctx;
    tai_numa_free(mm->numa, p, size);
}

static void on_arena(void *ctx, void *base, size_t size) {
    TinyAIMappedModel *mm = ctx;
#ifdef MADV_NOHUGEPAGE
    /* Before registration, which faults the pages in (see
     * tai_mapped_pin_all): base pages now, huge pages after the load. */
    if (mm->resident) (void)madvise(base, size, MADV_NOHUGEPAGE);
#endif
    /* Registration pins the arena; a refusal (locked-memory limit) only
     * means unregistered reads, which work the same. A resident arena is
     * read into once: registering it would fault all of it in, serially,
     * before the first read (140 ms for 0.6 GB), where unregistered reads
     * fault each piece in as it is read, on every loader at once. */
    if (mm->resident) return;
    for (int i = 0; i < mm->n_io; i++) (void)tai_io_register(mm->io[i], base, size);
}

/* ---- Huge pages after a resident load --------------------------------------- */

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1 */
#endif

/* Once no more reads come (every layer resident and pinned): the pinned
 * pages do not move, so the engines drop their registrations, and the
 * staging buffers' memory goes back (a later load, after a re-plan, faults
 * it in again). */
static void drop_load_buffers(TinyAIMappedModel *mm) {
    for (int i = 0; i < mm->n_io; i++) {
        tai_io_unregister(mm->io[i]);
        if (mm->staging[i]) (void)madvise(mm->staging[i], mm->staging_bytes, MADV_DONTNEED);
    }
}

static void refresh_locked(TinyAIMappedModel *mm);

/* The background pins of tai_mapped_pin_all_start: each layer in order, as
 * its load lands (a failed load is tried once more by the pin, as by an
 * acquire). The outcome is published for tai_mapped_pin_wait. */
static bool pin_in_background(TinyAIMappedModel *mm) {
    TinyAIStatus st = TINYAI_OK;
    for (int k = 0; k < mm->n_layers && st == TINYAI_OK; k++) {
        const int l = mm->load_order[k];
        if (l == mm->load_last) {
            /* not beside the first pass's final layers either: its reads
             * and repacking would take a core from them */
            pthread_mutex_lock(&mm->mu);
            while (!atomic_load(&mm->last_go) && !atomic_load(&mm->stop_collapse_flag))
                pthread_cond_wait(&mm->pin_cv, &mm->mu);
            pthread_mutex_unlock(&mm->mu);
            (void)tai_cache_prefetch(mm->cache, l); /* see pin_all */
        }
        if (atomic_load(&mm->stop_collapse_flag))
            st = tai_error(TINYAI_ERR_INTERNAL, "%s: the load was stopped before layer %d",
                           mm->file->path, l);
        else
            st = tai_cache_pin(mm->cache, l, true);
    }
    if (st == TINYAI_OK) refresh_locked(mm);
    pthread_mutex_lock(&mm->mu);
    mm->pin_status = st;
    snprintf(mm->pin_msg, sizeof mm->pin_msg, "%s", st ? tinyaiLastErrorMessage() : "");
    mm->pin_seconds = tai_now_s() - mm->pin_t0;
    mm->pin_done = true;
    pthread_cond_broadcast(&mm->pin_cv);
    pthread_mutex_unlock(&mm->mu);
    if (st == TINYAI_OK && mm->resident) drop_load_buffers(mm);
    return st == TINYAI_OK;
}

static void *collapse_main(void *arg) {
    TinyAIMappedModel *mm = arg;
    if ((mm->pin_bg && !pin_in_background(mm)) || !mm->resident) {
        atomic_store(&mm->collapse_done, true);
        return NULL;
    }
    /* the lowest priority: never ahead of decoding */
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
    void *base = NULL;
    size_t size = 0;
    tai_cache_arena(mm->cache, &base, &size);
    const size_t huge = (size_t)2 << 20;
    uintptr_t p = ((uintptr_t)base + huge - 1) & ~(uintptr_t)(huge - 1);
    const uintptr_t end = ((uintptr_t)base + size) & ~(uintptr_t)(huge - 1);
#ifdef MADV_HUGEPAGE
    if (base) (void)madvise(base, size, MADV_HUGEPAGE);
#endif
    for (; base && p < end && !atomic_load(&mm->stop_collapse_flag); p += huge)
        if (madvise((void *)p, huge, MADV_COLLAPSE) != 0 && errno == EINVAL) break; /* no kernel support: khugepaged */
    atomic_store(&mm->collapse_done, true);
    return NULL;
}

void tai_mapped_set_trace(TinyAIMappedModel *mm, struct tai_trace *t) {
    if (!mm) return;
    pthread_mutex_lock(&mm->mu);
    mm->trace = t;
    if (mm->cache) tai_cache_set_trace(mm->cache, t);
    pthread_mutex_unlock(&mm->mu);
}

bool tai_mapped_collapse_pending(const TinyAIMappedModel *mm) {
    return mm && mm->collapsing && !atomic_load(&((TinyAIMappedModel *)mm)->collapse_done);
}

/* Starts the thread that (with pin_bg) pins every layer and then (for a
 * resident arena) collapses it; false if it could not be started. */
static bool start_collapse(TinyAIMappedModel *mm) {
    if (mm->collapsing || !mm->cache) return false;
    if (!mm->pin_bg) {
        if (!mm->resident) return false;
        drop_load_buffers(mm);
    }
    atomic_store(&mm->stop_collapse_flag, false);
    atomic_store(&mm->collapse_done, false);
    mm->collapsing = tai_thread_create(&mm->collapser, collapse_main, mm) == 0;
    return mm->collapsing;
}

/* Before the arena goes (re-plan, close). */
static void stop_collapse(TinyAIMappedModel *mm) {
    if (!mm->collapsing) return;
    pthread_mutex_lock(&mm->mu); /* a pin thread waiting for last_go wakes */
    atomic_store(&mm->stop_collapse_flag, true);
    pthread_cond_broadcast(&mm->pin_cv);
    pthread_mutex_unlock(&mm->mu);
    pthread_join(mm->collapser, NULL);
    mm->collapsing = false;
    pthread_mutex_lock(&mm->mu);
    mm->pin_bg = false;
    pthread_mutex_unlock(&mm->mu);
}

/* ---- Open / close -------------------------------------------------------- */

static TinyAIStatus check_config(const TinyAIMmapConfig *c) {
    if (c->maxCacheSize == 0)
        return tai_error(TINYAI_ERR_INVALID_ARG, "maxCacheSize must be > 0");
    if (c->prefetchThreads < 1 || c->prefetchThreads > MAX_LOADERS)
        return tai_error(TINYAI_ERR_INVALID_ARG, "prefetchThreads must be 1..%d, got %d",
                         MAX_LOADERS, c->prefetchThreads);
    if (c->minLayerCacheSize > ((size_t)1 << 30))
        return tai_error(TINYAI_ERR_INVALID_ARG, "minLayerCacheSize %zu is above 1 GiB",
                         c->minLayerCacheSize);
    if ((unsigned)c->ioEngine > TINYAI_IO_MMAP)
        return tai_error(TINYAI_ERR_INVALID_ARG, "unknown ioEngine %d", (int)c->ioEngine);
    if ((unsigned)c->cachePolicy > TINYAI_CACHE_LRU)
        return tai_error(TINYAI_ERR_INVALID_ARG, "unknown cachePolicy %d", (int)c->cachePolicy);
    if ((unsigned)c->numaPolicy > TINYAI_NUMA_REPLICATE)
        return tai_error(TINYAI_ERR_INVALID_ARG, "unknown numaPolicy %d", (int)c->numaPolicy);
    if (c->prefetchWindow < 0 || c->prefetchWindow > MAX_WINDOW)
        return tai_error(TINYAI_ERR_INVALID_ARG, "prefetchWindow must be 0..%d, got %d", MAX_WINDOW,
                         c->prefetchWindow);
    return TINYAI_OK;
}

static TinyAIStatus layout_images(TinyAIMappedModel *mm) {
    const tai_model_file *mf = mm->file;
    mm->n_layers = mf->n_layers;
    mm->desc = calloc((size_t)mf->n_layers, sizeof *mm->desc);
    mm->api_holds = calloc((size_t)mf->n_layers, sizeof *mm->api_holds);
    mm->api_reclaimed = calloc((size_t)mf->n_layers, sizeof *mm->api_reclaimed);
    mm->api_owner = calloc((size_t)mf->n_layers, sizeof *mm->api_owner);
    mm->api_multi = calloc((size_t)mf->n_layers, sizeof *mm->api_multi);
    mm->api_when = calloc((size_t)mf->n_layers, sizeof *mm->api_when);
    mm->image_bytes = calloc((size_t)mf->n_layers, sizeof *mm->image_bytes);
    mm->direct = calloc((size_t)mf->n_layers, 1);
    mm->verified = calloc((size_t)mf->n_layers, 1);
    mm->ringed = calloc((size_t)mf->n_layers, 1);
    mm->load_order = calloc((size_t)mf->n_layers, sizeof *mm->load_order);
    mm->tensor_off = calloc((size_t)(mf->n_tensors ? mf->n_tensors : 1), sizeof *mm->tensor_off);
    mm->snap = calloc((size_t)mf->n_layers, sizeof *mm->snap);
    if (!mm->desc || !mm->image_bytes || !mm->direct || !mm->verified || !mm->load_order ||
        !mm->ringed ||
        !mm->tensor_off ||
        !mm->snap || !mm->api_holds || !mm->api_reclaimed || !mm->api_owner || !mm->api_multi ||
        !mm->api_when)
        return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    tai_image_tensor *it = NULL;
    for (int l = 0; l < mf->n_layers; l++) {
        const tai_layer_entry *e = &mf->layers[l];
        uint64_t total = 0;
        tai_image_tensor *nit = realloc(it, (size_t)(e->n_tensors ? e->n_tensors : 1) * sizeof *it);
        if (!nit) {
            free(it);
            return tai_error(TINYAI_ERR_NOMEM, "out of memory");
        }
        it = nit;
        TinyAIStatus st = tai_layer_image_plan(mf, l, it, &total);
        if (st != TINYAI_OK) {
            free(it);
            return st;
        }
        for (int k = 0; k < e->n_tensors; k++)
            mm->tensor_off[mf->layer_tensors[e->first_tensor + k]] = (size_t)it[k].offset;
        mm->image_bytes[l] = (size_t)total;
        /* read straight into the cache: the file holds the image, at an
         * offset any O_DIRECT alignment up to the cache's unit accepts */
        mm->direct[l] = e->size > 0 && e->offset % mm->granule == 0 &&
                        tai_layer_image_in_file(mf, l);
        /* the rest of a GGUF file is built as it is read, through a ring
         * of pieces (a .tmai layer is checked whole before it is built) */
        uint64_t part = 0;
        mm->ringed[l] = !mm->direct[l] && e->size > 0 && mf->kind != TAI_FILE_TMAI &&
                        tai_layer_image_in_order(mf, l, &part);
        if (mm->ringed[l] && part > mm->ring_part) mm->ring_part = part;
        size_t r = round_up(total, mm->granule);
        mm->total_images += r;
        if (r > mm->largest_image) mm->largest_image = r;
        TinyAILayerDescriptor *d = &mm->desc[l];
        d->offset = (size_t)e->offset;
        d->size = (size_t)e->size;
        d->layerIndex = l;
        d->precision = e->precision;
        d->priority = 1.0f;
    }
    free(it);
    return TINYAI_OK;
}

static TinyAIStatus open_engines(TinyAIMappedModel *mm) {
    tai_io_config ic = tai_io_default_config();
    ic.kind = (tai_io_kind)mm->cfg.ioEngine;
    ic.faults = mm->opt.faults;
    mm->n_io = mm->cfg.prefetchThreads;
    mm->align = 1;
    for (int i = 0; i < mm->n_io; i++) {
        int rc = tai_io_create(&ic, &mm->io[i]);
        if (rc != 0)
            return tai_error(TINYAI_ERR_IO, "cannot start the %s I/O engine: %s",
                             tai_io_kind_name(ic.kind), strerror(-rc));
        rc = tai_io_open(mm->io[i], mm->file->path, &mm->iof[i]);
        if (rc != 0)
            return tai_error(TINYAI_ERR_IO, "%s: cannot open for reading: %s", mm->file->path,
                             strerror(-rc));
        size_t a = tai_io_file_alignment(mm->iof[i]);
        if (a > mm->align) mm->align = a;
    }
    if (mm->align > mm->granule)
        return tai_error(TINYAI_ERR_UNSUPPORTED,
                         "%s: the device needs %zu-byte aligned reads, more than the cache's "
                         "%zu-byte unit",
                         mm->file->path, mm->align, mm->granule);
    /* Staging: a whole layer for one built only once read (a .tmai layer
     * not stored as its image); a ring of pieces for the others, which is
     * as much as the reads in flight and the repacking behind them need,
     * whatever the size of the layer (a few MiB against hundreds for the
     * layers of a large model: less memory to fault in at a start, less of
     * a limit). */
    mm->piece = (mm->opt.piece_bytes ? mm->opt.piece_bytes : PIECE) / mm->align * mm->align;
    if (mm->piece == 0) mm->piece = mm->align;
    const uint64_t part = round_up((size_t)mm->ring_part, 64);
    const uint64_t ring_pieces = WINDOW + 2 + (part + mm->piece - 1) / mm->piece;
    if (ring_pieces > MAX_RING) /* panels of tens of MiB: staged whole */
        for (int l = 0; l < mm->n_layers; l++) mm->ringed[l] = 0;
    mm->ring_slots = ring_pieces > MAX_RING ? 0 : (int)ring_pieces;
    const size_t ring = (size_t)mm->ring_slots * mm->piece + (size_t)part;
    size_t stage = 0;
    for (int l = 0; l < mm->n_layers; l++) {
        if (mm->direct[l]) continue;
        size_t need = (size_t)mm->file->layers[l].size + 2 * mm->align; /* widened at both ends */
        if (mm->ringed[l] && need > ring) need = ring;
        if (need > stage) stage = need;
    }
    if (stage > 0) {
        /* in huge pages, as the cache's arena: on some devices (virtio
         * seen here) O_DIRECT into 4 KiB pages reads at half the speed.
         * Small staging (small models) stays in 4 KiB pages: rounding it
         * to 2 MiB would cost more of a limit than its reads gain. */
        const size_t huge = (size_t)2 << 20;
        const size_t unit = stage >= 8 * huge ? huge : 4096;
        mm->staging_bytes = round_up(stage, unit);
        for (int i = 0; i < mm->n_io; i++) {
            mm->staging[i] = tai_mem_alloc(TAI_MEM_IO, mm->staging_bytes, unit, false);
#ifdef MADV_HUGEPAGE
            if (mm->staging[i]) (void)madvise(mm->staging[i], mm->staging_bytes, MADV_HUGEPAGE);
#endif
            if (!mm->staging[i])
                return tai_error(TINYAI_ERR_NOMEM, "cannot allocate %zu bytes of staging",
                                 mm->staging_bytes);
        }
    }
    snprintf(mm->engine_name, sizeof mm->engine_name, "%s",
             tai_io_kind_name(tai_io_engine(mm->io[0])));
    const char *why = tai_io_fallback_reason(mm->io[0]);
    if (why) snprintf(mm->fallback, sizeof mm->fallback, "%s", why);
    return TINYAI_OK;
}

static void place_arena(TinyAIMappedModel *mm) {
    if (tai_numa_open(NULL, &mm->numa) != TINYAI_OK) {
        mm->numa = NULL; /* no topology: plain allocation */
        return;
    }
    int n = mm->opt.threads_hint > 0 ? mm->opt.threads_hint : 1;
    int *cores = calloc((size_t)n, sizeof *cores);
    if (!cores) return;
    if (tai_numa_thread_cores(mm->numa, n, cores) == TINYAI_OK &&
        tai_numa_place(mm->numa, (tai_numa_policy)mm->cfg.numaPolicy, cores, n,
                       mm->largest_image, false, 0, &mm->place) == TINYAI_OK)
        mm->place_ok = true;
    free(cores);
}

TinyAIStatus tai_mapped_open(const char *path, const TinyAIMmapConfig *config,
                             const tai_mapped_options *opt, TinyAIMappedModel **out) {
    if (!out) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiOpenMappedModel: out is NULL");
    *out = NULL;
    if (!path || !*path) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiOpenMappedModel: no path");
    TinyAIMmapConfig cfg = config ? *config : tinyaiCreateDefaultMmapConfig();
    TinyAIStatus st = check_config(&cfg);
    if (st != TINYAI_OK) return st;
    TinyAIMappedModel *mm = calloc(1, sizeof *mm);
    if (!mm) return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    mm->cfg = cfg;
    if (opt) mm->opt = *opt;
    mm->granule = 4096;
    while (mm->granule < cfg.minLayerCacheSize) mm->granule <<= 1;
    pthread_mutex_init(&mm->io_mu, NULL);
    pthread_cond_init(&mm->io_cv, NULL);
    pthread_mutex_init(&mm->mu, NULL);
    pthread_cond_init(&mm->pin_cv, NULL);
    mm->policy = cfg.adaptiveCaching ? (tai_cache_policy)cfg.cachePolicy : TAI_CACHE_LRU;

    st = tai_model_file_open(path, false, &mm->file);
    if (st == TINYAI_OK) st = layout_images(mm);
    if (st == TINYAI_OK) st = open_engines(mm);
    if (st == TINYAI_OK) place_arena(mm);
    if (st == TINYAI_OK && !mm->opt.defer_cache) {
        tai_mapped_plan_t p = {cfg.maxCacheSize, (TinyAICachePolicy)mm->policy,
                               cfg.prefetchEnabled ? (cfg.prefetchWindow ? cfg.prefetchWindow : 1) : 0,
                               false, false};
        st = tai_mapped_plan(mm, &p);
    }
    if (st != TINYAI_OK) {
        tai_mapped_close(mm);
        return st;
    }
    *out = mm;
    return TINYAI_OK;
}

void tai_mapped_close(TinyAIMappedModel *mm) {
    if (!mm) return;
    stop_collapse(mm);
    tai_cache_destroy(mm->cache); /* waits for loads, which use the engines */
    for (int i = 0; i < mm->n_io; i++) {
        tai_io_destroy(mm->io[i]); /* closes its files */
        tai_mem_free(mm->staging[i]);
    }
    tai_numa_close(mm->numa);
    tai_model_file_close(mm->file);
    free(mm->desc);
    free(mm->api_holds);
    free(mm->api_reclaimed);
    free(mm->api_owner);
    free(mm->api_multi);
    free(mm->api_when);
    for (struct desc_view *v = mm->views, *next; v; v = next) {
        next = v->next;
        free(v->desc);
        free(v);
    }
    free(mm->image_bytes);
    free(mm->tensor_off);
    free(mm->direct);
    free(mm->verified);
    free(mm->ringed);
    free(mm->load_order);
    free(mm->snap);
    pthread_mutex_destroy(&mm->io_mu);
    pthread_cond_destroy(&mm->io_cv);
    pthread_mutex_destroy(&mm->mu);
    pthread_cond_destroy(&mm->pin_cv);
    free(mm);
}

/* ---- Internal interface --------------------------------------------------- */

const tai_model_file *tai_mapped_file(const TinyAIMappedModel *mm) { return mm->file; }
int tai_mapped_layers(const TinyAIMappedModel *mm) { return mm->n_layers; }
size_t tai_mapped_image_bytes(const TinyAIMappedModel *mm, int l) { return mm->image_bytes[l]; }
size_t tai_mapped_tensor_offset(const TinyAIMappedModel *mm, int ti) { return mm->tensor_off[ti]; }
size_t tai_mapped_total_image_bytes(const TinyAIMappedModel *mm) { return mm->total_images; }
size_t tai_mapped_largest_image_bytes(const TinyAIMappedModel *mm) { return mm->largest_image; }
size_t tai_mapped_layer_room(const TinyAIMappedModel *mm, int l) {
    return round_up(mm->image_bytes[l], mm->granule);
}
size_t tai_mapped_staging_bytes(const TinyAIMappedModel *mm) {
    return mm->staging_bytes * (size_t)mm->n_io;
}
bool tai_mapped_has_cache(const TinyAIMappedModel *mm) { return mm->cache != NULL; }
tai_numa *tai_mapped_numa(const TinyAIMappedModel *mm) { return mm->numa; }

/* A re-plan's precondition (under mu): no layer held. */
static TinyAIStatus check_unheld(TinyAIMappedModel *mm) {
    for (int l = 0; l < mm->n_layers && mm->cache; l++) {
        tai_cache_entry_info info;
        /* (pins are a resident plan's own: they go with the cache) */
        if (tai_cache_entry(mm->cache, l, &info) == TINYAI_OK && info.in_use)
            return tai_error(TINYAI_ERR_INVALID_ARG,
                             "layer %d is held; release every layer before re-planning the cache",
                             l);
    }
    return TINYAI_OK;
}

TinyAIStatus tai_mapped_plan(TinyAIMappedModel *mm, const tai_mapped_plan_t *plan) {
    size_t *sizes = calloc((size_t)mm->n_layers, sizeof *sizes);
    if (!sizes) return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    for (int l = 0; l < mm->n_layers; l++) sizes[l] = mm->image_bytes[l];
    tai_cache_config cc = {0};
    cc.budget = plan->budget;
    cc.granule = mm->granule;
    cc.policy = (tai_cache_policy)plan->policy;
    cc.loader_threads = mm->n_io;
    cc.prefetch_window = plan->prefetch_window;
    cc.aggressive_prefetch = plan->aggressive;
    cc.load = load_layer;
    cc.load_ctx = mm;
    if (mm->numa && mm->place_ok) {
        cc.allocator.alloc = arena_alloc;
        cc.allocator.free = arena_free;
        cc.allocator.ctx = mm;
    }
    cc.on_arena = on_arena;
    cc.on_arena_ctx = mm;
    const size_t need = tai_cache_min_budget(sizes, mm->n_layers, mm->granule);
    TinyAIStatus st = TINYAI_OK;
    if (plan->budget < need) {
        st = tai_error(TINYAI_ERR_INVALID_ARG,
                       "%s: a weight cache of %zu bytes cannot hold the largest layer; at "
                       "least %zu bytes are needed",
                       mm->file->path, plan->budget, need);
    } else {
        /* the background thread takes mu: it is stopped (joined) without */
        pthread_mutex_lock(&mm->mu);
        st = check_unheld(mm);
        pthread_mutex_unlock(&mm->mu);
        if (st == TINYAI_OK) stop_collapse(mm);
        pthread_mutex_lock(&mm->mu);
        if (st == TINYAI_OK) st = check_unheld(mm);
        if (st == TINYAI_OK) {
            tai_cache_destroy(mm->cache);
            mm->cache = NULL;
            /* after the loads are done (destroy waits for them) the old
             * arena's pages must not stay pinned by the engines */
            for (int i = 0; i < mm->n_io; i++) tai_io_unregister(mm->io[i]);
            for (int l = 0; l < mm->n_layers; l++) {
                mm->desc[l].cachedWeights = NULL;
                mm->desc[l].isActive = false;
            }
            /* on_arena registers the new arena with every engine */
            mm->resident = plan->resident;
            st = tai_cache_create(&cc, mm->n_layers, sizes, &mm->cache);
            if (st == TINYAI_OK) {
                tai_cache_set_trace(mm->cache, mm->trace);
                mm->cache_budget = plan->budget;
                mm->policy = (tai_cache_policy)plan->policy;
            }
        }
        pthread_mutex_unlock(&mm->mu);
    }
    free(sizes);
    return st;
}

TinyAIStatus tai_mapped_set_schedule(TinyAIMappedModel *mm, const int *order, int n, bool cyclic) {
    if (!mm->cache) return tai_error(TINYAI_ERR_INVALID_ARG, "the model has no weight cache yet");
    return tai_cache_set_schedule(mm->cache, order, n, cyclic);
}

static void describe(TinyAILayerDescriptor *d, const tai_cache_entry_info *info) {
    d->cachedWeights = info->state == TAI_ENTRY_RESIDENT ? info->ptr : NULL;
    d->isActive = info->state == TAI_ENTRY_RESIDENT;
    d->priority = info->priority;
    d->lastAccessed = info->last_access;
    d->accessCount = info->access_count;
}

/* The calling thread's copy of the descriptors (under mu), made on its
 * first call; NULL out of memory. A thread that has exited leaves its copy
 * to the next thread given its id. */
static struct desc_view *my_view(TinyAIMappedModel *mm) {
    const pthread_t self = pthread_self();
    for (struct desc_view *v = mm->views; v; v = v->next)
        if (pthread_equal(v->owner, self)) return v;
    struct desc_view *v = calloc(1, sizeof *v);
    if (v) v->desc = malloc((size_t)mm->n_layers * sizeof *v->desc);
    if (!v || !v->desc) {
        free(v);
        return NULL;
    }
    memcpy(v->desc, mm->desc, (size_t)mm->n_layers * sizeof *v->desc);
    v->owner = self;
    v->next = mm->views;
    mm->views = v;
    return v;
}

/* Brings every descriptor up to date, from one snapshot of the cache, and
 * the calling thread's copy of them. All of them, not only the layer of
 * the call: loading one layer may evict others, and a caller holding
 * another layer's descriptor must see it go (its cachedWeights would
 * otherwise point into memory reused by the newcomer). Called with mu
 * held. */
static void refresh_all(TinyAIMappedModel *mm) {
    if (mm->cache) {
        tai_cache_snapshot(mm->cache, mm->snap, NULL);
        for (int l = 0; l < mm->n_layers; l++) describe(&mm->desc[l], &mm->snap[l]);
    }
    const pthread_t self = pthread_self();
    for (struct desc_view *v = mm->views; v; v = v->next)
        if (pthread_equal(v->owner, self)) {
            memcpy(v->desc, mm->desc, (size_t)mm->n_layers * sizeof *v->desc);
            break;
        }
}

static void refresh_locked(TinyAIMappedModel *mm) {
    pthread_mutex_lock(&mm->mu);
    refresh_all(mm);
    pthread_mutex_unlock(&mm->mu);
}

TinyAIStatus tai_mapped_pin_all(TinyAIMappedModel *mm, int first, int last) {
    if (!mm->cache) return tai_error(TINYAI_ERR_INVALID_ARG, "the model has no weight cache yet");
    set_load_order(mm, first, last);
    /* Every loader thread at once: the layers are read, repacked and their
     * memory faulted in in parallel, then the pins wait for each. A refused
     * prefetch (no room now) only leaves that layer to its pin. `last` is
     * read once every other layer has landed, not beside the final ones:
     * storage is shared, and it would take half the bandwidth of the
     * layers a first pass still waits for. */
    for (int k = 0; k < mm->n_layers; k++)
        if (mm->load_order[k] != mm->load_last) (void)tai_cache_prefetch(mm->cache, mm->load_order[k]);
    for (int k = 0; k < mm->n_layers; k++) {
        const int l = mm->load_order[k];
        if (l == mm->load_last) (void)tai_cache_prefetch(mm->cache, l);
        TinyAIStatus st = tai_cache_pin(mm->cache, l, true);
        if (st != TINYAI_OK) return st;
    }
    refresh_locked(mm);
    (void)start_collapse(mm);
    return TINYAI_OK;
}

TinyAIStatus tai_mapped_pin_all_start(TinyAIMappedModel *mm, int first, int last) {
    if (!mm->cache) return tai_error(TINYAI_ERR_INVALID_ARG, "the model has no weight cache yet");
    /* pinned before: nothing to start */
    if (mm->collapsing) return tai_mapped_pin_all(mm, first, last);
    set_load_order(mm, first, last); /* before the thread that reads it */
    for (int k = 0; k < mm->n_layers; k++)
        if (mm->load_order[k] != mm->load_last) (void)tai_cache_prefetch(mm->cache, mm->load_order[k]);
    pthread_mutex_lock(&mm->mu);
    mm->pin_bg = true;
    mm->pin_done = false;
    atomic_store(&mm->last_go, false);
    mm->pin_status = TINYAI_OK;
    mm->pin_t0 = tai_now_s();
    pthread_mutex_unlock(&mm->mu);
    if (start_collapse(mm)) return TINYAI_OK;
    pthread_mutex_lock(&mm->mu); /* no thread: pinned here, waiting for each */
    mm->pin_bg = false;
    pthread_mutex_unlock(&mm->mu);
    return tai_mapped_pin_all(mm, first, last);
}

void tai_mapped_load_last(TinyAIMappedModel *mm) {
    /* at the end of every pass: the lock only the first time */
    if (atomic_load_explicit(&mm->last_go, memory_order_acquire)) return;
    pthread_mutex_lock(&mm->mu);
    atomic_store(&mm->last_go, true);
    pthread_cond_broadcast(&mm->pin_cv);
    pthread_mutex_unlock(&mm->mu);
}

TinyAIStatus tai_mapped_pin_wait(TinyAIMappedModel *mm, double *seconds) {
    tai_mapped_load_last(mm); /* waiting for it all: nothing to wait for first */
    pthread_mutex_lock(&mm->mu);
    while (mm->pin_bg && !mm->pin_done) pthread_cond_wait(&mm->pin_cv, &mm->mu);
    const TinyAIStatus st = mm->pin_bg ? mm->pin_status : TINYAI_OK;
    if (seconds) *seconds = mm->pin_bg ? mm->pin_seconds : 0;
    char msg[sizeof mm->pin_msg];
    memcpy(msg, mm->pin_msg, sizeof msg);
    pthread_mutex_unlock(&mm->mu);
    return st ? tai_error(st, "%s", msg) : TINYAI_OK;
}

bool tai_mapped_pin_pending(TinyAIMappedModel *mm, double *seconds) {
    pthread_mutex_lock(&mm->mu);
    const bool pending = mm->pin_bg && !mm->pin_done;
    if (seconds) *seconds = mm->pin_bg && mm->pin_done ? mm->pin_seconds : 0;
    pthread_mutex_unlock(&mm->mu);
    return pending;
}

TinyAIStatus tai_mapped_acquire(TinyAIMappedModel *mm, int layer, void **image) {
    if (layer < 0 || layer >= mm->n_layers)
        return tai_error(TINYAI_ERR_INVALID_ARG, "layer %d out of range (0..%d)", layer,
                         mm->n_layers - 1);
    if (!mm->cache) return tai_error(TINYAI_ERR_INVALID_ARG, "the model has no weight cache yet");
    return tai_cache_acquire(mm->cache, layer, image);
}

TinyAIStatus tai_mapped_release(TinyAIMappedModel *mm, int layer) {
    if (layer < 0 || layer >= mm->n_layers)
        return tai_error(TINYAI_ERR_INVALID_ARG, "layer %d out of range (0..%d)", layer,
                         mm->n_layers - 1);
    if (!mm->cache) return tai_error(TINYAI_ERR_INVALID_ARG, "the model has no weight cache yet");
    return tai_cache_release(mm->cache, layer);
}

tai_entry_state tai_mapped_layer_state(const TinyAIMappedModel *mm, int layer) {
    tai_cache_entry_info info;
    if (!mm->cache || tai_cache_entry(mm->cache, layer, &info) != TINYAI_OK) return TAI_ENTRY_ABSENT;
    return info.state;
}

double tai_mapped_probe_bandwidth(TinyAIMappedModel *mm, size_t n) {
    const size_t huge = (size_t)2 << 20;
    const size_t a = mm->align, q = n / 4 / a * a;
    const uint64_t fs = mm->file->file_size;
    if (q == 0 || fs < 4 * (uint64_t)q) return 0;
    /* the arena's allocator where it has one, else what the cache does
     * without one: aligned memory with huge pages advised */
    const bool placed = mm->numa && mm->place_ok;
    const size_t bytes = (4 * q + huge - 1) / huge * huge;
    unsigned char *buf = placed ? arena_alloc(mm, bytes) : aligned_alloc(huge, bytes);
    if (!buf) return 0;
#ifdef MADV_HUGEPAGE
    if (!placed) (void)madvise(buf, bytes, MADV_HUGEPAGE);
#endif
    memset(buf, 0, bytes);
    size_t got = 0;
    const int slot = io_take(mm);
    const double t0 = tai_now_s();
    for (int i = 0; i < 4; i++) {
        uint64_t off = (fs - q) / 4 * (uint64_t)i / a * a;
        if (tai_io_read(mm->io[slot], mm->iof[slot], off, q, buf + (size_t)i * q, NULL) == 0)
            got += q;
    }
    const double t = tai_now_s() - t0;
    io_give(mm, slot);
    if (placed)
        arena_free(mm, buf, bytes);
    else
        free(buf);
    return got > 0 && t > 0 ? (double)got / t : 0;
}

size_t tai_mapped_read_align(const TinyAIMappedModel *mm) { return mm->align; }

bool tai_mapped_layer_checked(const TinyAIMappedModel *mm, int layer) {
    if (layer < 0 || layer >= mm->n_layers) return false;
    if (mm->file->kind != TAI_FILE_TMAI || mm->file->layers[layer].size == 0) return true;
    pthread_mutex_lock((pthread_mutex_t *)&mm->io_mu);
    const bool done = mm->verified[layer];
    pthread_mutex_unlock((pthread_mutex_t *)&mm->io_mu);
    return done;
}

/* Reads the aligned span around [off, off + len) into buf (aligned, cap
 * bytes, which must hold it); *at points at the first byte asked for. */
static TinyAIStatus read_span(TinyAIMappedModel *mm, int slot, int layer, uint64_t off,
                              size_t len, unsigned char *buf, const unsigned char **at) {
    const size_t a = mm->align;
    const uint64_t a0 = off / a * a;
    uint64_t a1 = round_up((size_t)(off + len), a);
    if (a1 > mm->file->file_size) a1 = mm->file->file_size;
    TinyAIStatus st = unless_changed(mm, read_range(mm, slot, layer, a0, (size_t)(a1 - a0), buf));
    if (st != TINYAI_OK) return st;
    pthread_mutex_lock(&mm->io_mu);
    mm->direct_read += a1 - a0;
    pthread_mutex_unlock(&mm->io_mu);
    *at = buf + (off - a0);
    return TINYAI_OK;
}

static TinyAIStatus check_buffer(const TinyAIMappedModel *mm, const void *buf, size_t cap,
                                 size_t len, const char *fn) {
    if (!buf || (uintptr_t)buf % mm->align != 0 || cap < len + 2 * mm->align)
        return tai_error(TINYAI_ERR_INVALID_ARG,
                         "%s: the buffer must be %zu-byte aligned and hold %zu bytes (%zu plus "
                         "the alignment at both ends), not %zu",
                         fn, mm->align, len + 2 * mm->align, len, cap);
    return TINYAI_OK;
}

static TinyAIStatus check_span(const TinyAIMappedModel *mm, int layer, uint64_t off, size_t len,
                               const char *fn) {
    if (layer < 0 || layer >= mm->n_layers)
        return tai_error(TINYAI_ERR_INVALID_ARG, "%s: layer %d out of range (0..%d)", fn, layer,
                         mm->n_layers - 1);
    const tai_layer_entry *e = &mm->file->layers[layer];
    if (off < e->offset || len > e->size || off - e->offset > e->size - len)
        return tai_error(TINYAI_ERR_INVALID_ARG,
                         "%s: bytes [%llu, +%zu) are outside layer %d [%llu, +%llu)", fn,
                         (unsigned long long)off, len, layer, (unsigned long long)e->offset,
                         (unsigned long long)e->size);
    return TINYAI_OK;
}

TinyAIStatus tai_mapped_read(TinyAIMappedModel *mm, int layer, uint64_t off, size_t len,
                             void *buf, size_t cap, const unsigned char **at) {
    TinyAIStatus st = check_span(mm, layer, off, len, "tai_mapped_read");
    if (st == TINYAI_OK) st = check_buffer(mm, buf, cap, len, "tai_mapped_read");
    if (st == TINYAI_OK && !at) st = tai_error(TINYAI_ERR_INVALID_ARG, "tai_mapped_read: at is NULL");
    if (st != TINYAI_OK) return st;
    const int slot = io_take(mm);
    st = read_span(mm, slot, layer, off, len, buf, at);
    io_give(mm, slot);
    return st;
}

TinyAIStatus tai_mapped_verify(TinyAIMappedModel *mm, int layer, void *buf, size_t cap) {
    if (layer < 0 || layer >= mm->n_layers)
        return tai_error(TINYAI_ERR_INVALID_ARG, "tai_mapped_verify: layer %d out of range (0..%d)",
                         layer, mm->n_layers - 1);
    TinyAIStatus st = TINYAI_OK;
    const tai_layer_entry *e = &mm->file->layers[layer];
    if (mm->file->kind != TAI_FILE_TMAI || e->size == 0) return TINYAI_OK;
    pthread_mutex_lock(&mm->io_mu);
    const bool done = mm->verified[layer];
    pthread_mutex_unlock(&mm->io_mu);
    if (done) return TINYAI_OK;
    st = check_buffer(mm, buf, cap, mm->align, "tai_mapped_verify");
    if (st != TINYAI_OK) return st;
    const size_t chunk = (cap - 2 * mm->align) / mm->align * mm->align;
    XXH64_state_t *h = XXH64_createState();
    if (!h) return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    XXH64_reset(h, 0);
    const int slot = io_take(mm);
    for (uint64_t off = e->offset, left = e->size; st == TINYAI_OK && left > 0;) {
        const size_t n = left < chunk ? (size_t)left : chunk;
        const unsigned char *at = NULL;
        st = read_span(mm, slot, layer, off, n, buf, &at);
        if (st == TINYAI_OK) XXH64_update(h, at, n);
        off += n;
        left -= n;
    }
    io_give(mm, slot);
    const uint64_t got = XXH64_digest(h);
    XXH64_freeState(h);
    return st != TINYAI_OK ? st : checksum_verdict(mm, layer, got);
}

size_t tai_mapped_memory_bytes(const TinyAIMappedModel *mm) {
    return (mm->cache ? mm->cache_budget : 0) + tai_mapped_staging_bytes(mm);
}

/* ---- Public API (<tinyai/utils/mmap_loader.h>) ----------------------------- */

TinyAIMmapConfig tinyaiCreateDefaultMmapConfig(void) {
    TinyAIMmapConfig c;
    memset(&c, 0, sizeof c);
    c.maxCacheSize = DEFAULT_CACHE;
    c.prefetchEnabled = true;
    c.prefetchThreads = 1;
    c.adaptiveCaching = true;
    c.minLayerCacheSize = 4096;
    c.ioEngine = TINYAI_IO_AUTO;
    c.cachePolicy = TINYAI_CACHE_BELADY;
    c.numaPolicy = TINYAI_NUMA_LOCAL;
    c.verifyEveryLoad = false;
    c.prefetchWindow = 1;
    return c;
}

TinyAIMappedModel *tinyaiOpenMappedModel(const char *filepath, const TinyAIMmapConfig *config) {
    TinyAIMappedModel *mm = NULL;
    if (tai_mapped_open(filepath, config, NULL, &mm) != TINYAI_OK) return NULL;
    /* without a scheduler the order of use is unknown until layers are
     * used: the natural order, cyclic, is the best guess for a model */
    int *order = malloc((size_t)mm->n_layers * sizeof *order);
    if (order) {
        for (int l = 0; l < mm->n_layers; l++) order[l] = l;
        (void)tai_mapped_set_schedule(mm, order, mm->n_layers, true);
        free(order);
    }
    return mm;
}

void tinyaiCloseMappedModel(TinyAIMappedModel *model) { tai_mapped_close(model); }

int tinyaiGetMappedLayerCount(const TinyAIMappedModel *model) {
    if (!model) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiGetMappedLayerCount: model is NULL");
        return -1;
    }
    return model->n_layers;
}

static bool bad_layer(const TinyAIMappedModel *mm, int l, const char *fn) {
    if (!mm) {
        tai_error(TINYAI_ERR_INVALID_ARG, "%s: model is NULL", fn);
        return true;
    }
    if (l < 0 || l >= mm->n_layers) {
        tai_error(TINYAI_ERR_INVALID_ARG, "%s: layer %d out of range (0..%d)", fn, l,
                  mm->n_layers - 1);
        return true;
    }
    return false;
}

const TinyAILayerDescriptor *tinyaiGetLayerDescriptor(const TinyAIMappedModel *model,
                                                      int layerIndex) {
    if (bad_layer(model, layerIndex, "tinyaiGetLayerDescriptor")) return NULL;
    TinyAIMappedModel *mm = (TinyAIMappedModel *)model; /* descriptors are refreshed */
    pthread_mutex_lock(&mm->mu);
    struct desc_view *v = my_view(mm);
    if (v) refresh_all(mm);
    pthread_mutex_unlock(&mm->mu);
    if (!v) {
        tai_error(TINYAI_ERR_NOMEM, "tinyaiGetLayerDescriptor: out of memory");
        return NULL;
    }
    return &v->desc[layerIndex];
}

/* Gives up the calling thread's oldest hold (through tinyaiGetLayerWeights)
 * of a layer that no other thread holds, other than `except`, so that the
 * cache may evict it: true if there was one. Under mu. */
static bool reclaim_one(TinyAIMappedModel *mm, int except) {
    const pthread_t self = pthread_self();
    int oldest = -1;
    for (int l = 0; l < mm->n_layers; l++)
        if (l != except && mm->api_holds[l] > 0 && !mm->api_multi[l] &&
            pthread_equal(mm->api_owner[l], self) &&
            (oldest < 0 || mm->api_when[l] < mm->api_when[oldest]))
            oldest = l;
    if (oldest < 0) return false;
    while (mm->api_holds[oldest] > 0) {
        (void)tai_mapped_release(mm, oldest);
        mm->api_holds[oldest]--;
        mm->api_reclaimed[oldest]++;
    }
    return true;
}

void *tinyaiGetLayerWeights(TinyAIMappedModel *model, int layerIndex) {
    if (bad_layer(model, layerIndex, "tinyaiGetLayerWeights")) return NULL;
    void *p = NULL;
    TinyAIStatus st = tai_mapped_acquire(model, layerIndex, &p);
    /* no room next to the layers held: this thread's oldest unreleased
     * layers give theirs, one at a time (a loop that releases only some
     * layers still runs through a model of any size) */
    while (st == TINYAI_ERR_NOMEM) {
        pthread_mutex_lock(&model->mu);
        const bool freed = reclaim_one(model, layerIndex);
        pthread_mutex_unlock(&model->mu);
        if (!freed) break;
        st = tai_mapped_acquire(model, layerIndex, &p);
    }
    if (st == TINYAI_OK) {
        pthread_mutex_lock(&model->mu);
        const pthread_t self = pthread_self();
        if (model->api_holds[layerIndex] == 0) {
            model->api_owner[layerIndex] = self;
            model->api_multi[layerIndex] = 0;
        } else if (!pthread_equal(model->api_owner[layerIndex], self)) {
            model->api_multi[layerIndex] = 1;
        }
        model->api_holds[layerIndex]++;
        model->api_when[layerIndex] = ++model->api_clock;
        pthread_mutex_unlock(&model->mu);
    } else if (st == TINYAI_ERR_NOMEM) {
        char nm[32];
        tai_error_prefix("tinyaiGetLayerWeights: layer %d (%s) does not fit next to the layers "
                         "held now",
                         layerIndex, layer_name(model, layerIndex, nm, sizeof nm));
    }
    refresh_locked(model);
    return st == TINYAI_OK ? p : NULL;
}

bool tinyaiPrefetchLayerWeights(TinyAIMappedModel *model, int layerIndex) {
    if (bad_layer(model, layerIndex, "tinyaiPrefetchLayerWeights")) return false;
    if (!model->cfg.prefetchEnabled) {
        tai_error(TINYAI_ERR_INVALID_ARG, "prefetching is disabled (prefetchEnabled is false)");
        return false;
    }
    const bool ok = tai_cache_prefetch(model->cache, layerIndex) == TINYAI_OK;
    refresh_locked(model); /* a prefetch may evict */
    return ok;
}

void tinyaiReleaseLayerWeights(TinyAIMappedModel *model, int layerIndex) {
    if (bad_layer(model, layerIndex, "tinyaiReleaseLayerWeights")) return;
    pthread_mutex_lock(&model->mu);
    bool held = model->api_holds[layerIndex] > 0, reclaimed = false;
    if (held) model->api_holds[layerIndex]--;
    else if (model->api_reclaimed[layerIndex] > 0) {
        model->api_reclaimed[layerIndex]--; /* given up for room already */
        reclaimed = true;
    }
    pthread_mutex_unlock(&model->mu);
    if (reclaimed) {
        refresh_locked(model);
        return;
    }
    if ((!held || tai_mapped_release(model, layerIndex) == TINYAI_ERR_INVALID_ARG) && model->cache)
        tai_error(TINYAI_ERR_INVALID_ARG,
                  "tinyaiReleaseLayerWeights: layer %d is not held (released more often than "
                  "tinyaiGetLayerWeights got it); nothing was changed",
                  layerIndex);
    refresh_locked(model);
}

size_t tinyaiGetMappedModelMemoryUsage(const TinyAIMappedModel *model) {
    if (!model || !model->cache) return 0;
    tai_cache_stats s;
    tai_cache_get_stats(model->cache, &s);
    return s.used;
}

#undef tinyaiSetLayerPriority
void tinyaiSetLayerPriority(TinyAIMappedModel *model, int layerIndex, float priority) {
    if (bad_layer(model, layerIndex, "tinyaiSetLayerPriority")) return;
    if (tai_cache_set_priority(model->cache, layerIndex, priority) != TINYAI_OK) {
        tai_error_prefix("tinyaiSetLayerPriority: layer %d", layerIndex);
        return;
    }
    refresh_locked(model);
}

void tinyaiResetLayerPriorities(TinyAIMappedModel *model) {
    if (!model || !model->cache) return;
    tai_cache_reset_priorities(model->cache);
    refresh_locked(model);
}

bool tinyaiGetMappedModelStats(const TinyAIMappedModel *model, TinyAIMappedModelStats *out) {
    if (!model || !out) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiGetMappedModelStats: NULL argument");
        return false;
    }
    memset(out, 0, sizeof *out);
    if (model->cache) {
        tai_cache_stats s;
        tai_cache_get_stats(model->cache, &s);
        out->hits = s.hits;
        out->misses = s.misses;
        out->loads = s.loads;
        out->evictions = s.evictions;
        out->prefetches = s.prefetches;
        out->loadErrors = s.load_errors;
        out->bytesRead = s.bytes_read;
        out->stallSeconds = s.stall_seconds;
        out->loadSeconds = s.load_seconds;
        out->cacheBytes = s.budget;
        out->usedBytes = s.used;
        out->peakUsedBytes = s.peak_used;
    }
    pthread_mutex_lock((pthread_mutex_t *)&model->io_mu);
    out->bytesRead += model->direct_read;
    pthread_mutex_unlock((pthread_mutex_t *)&model->io_mu);
    out->ioEngine = model->engine_name;
    out->ioFallback = model->fallback[0] ? model->fallback : NULL;
    out->policy = tai_cache_policy_name(model->policy);
    return true;
}

void tinyaiResetMappedModelStats(TinyAIMappedModel *model) {
    if (!model) return;
    if (model->cache) tai_cache_reset_stats(model->cache);
    pthread_mutex_lock(&model->io_mu);
    model->direct_read = 0;
    pthread_mutex_unlock(&model->io_mu);
}

size_t tinyaiGetLayerImageSize(const TinyAIMappedModel *model, int layerIndex) {
    if (bad_layer(model, layerIndex, "tinyaiGetLayerImageSize")) return 0;
    return model->image_bytes[layerIndex];
}
