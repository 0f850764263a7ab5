/*
 * runtime/mem/memory.c: TinyAI's own memory by kind, the allocation
 * strategies its buffers go through, the caller's pools and the memory
 * report (<tinyai/utils/memory.h>; internal entry points in memory.h).
 *
 * Every buffer tai_mem_alloc hands out is recorded in a table (pointer ->
 * size, kind, where it came from) under one mutex: allocations are coarse
 * (a session's KV cache, a workspace, a staging buffer), so the table is
 * small and the lock is never hot. The table is what lets a free know the
 * buffer's size and origin, what refuses a pointer freed twice, and what
 * the report lists.
 *
 * The static arena is one anonymous mapping cut first-fit into block-size
 * units; its free ranges are a sorted array, merged with their neighbours
 * on free. The pooled strategy keeps freed buffers in a list and hands one
 * of the same size and alignment out again.
 */
#include "runtime/mem/memory.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/error.h"
#include "core/ranges.h"

static const char *const kind_names[TINYAI_MEMORY_KIND_COUNT] = {
    "weights (cache arenas)", "KV caches and logits", "activations (workspaces)",
    "I/O staging", "tables (tokenizer, file)", "caller's pools"};

enum {
    FROM_SYSTEM = 0,   /* aligned_alloc */
    FROM_ARENA = 1,    /* the static arena */
    FROM_MAP = 2,      /* an anonymous mapping of its own (large buffers) */
    FROM_ELSEWHERE = 3 /* a region another part tracks (tai_mem_track) */
};

/* Buffers from this size on get a mapping of their own: their pages stay
 * untouched (not resident) until used, as calloc's would. */
#define MAP_MIN ((size_t)1 << 20)

typedef struct {
    void *p; /* NULL: empty slot; (void *)1: deleted */
    size_t size, align;
    unsigned char kind, from;
} rec;

typedef struct {
    void *p;
    size_t size, align;
    unsigned char from;
} kept;

static struct {
    pthread_mutex_t mu;
    TinyAIMemoryConfig cfg;
    /* the table of live buffers: open addressing, power-of-two capacity */
    rec *tab;
    size_t cap, used, live;
    /* the static arena */
    uint8_t *arena;
    size_t arena_size;
    tai_ranges ranges;
    /* the pooled strategy's kept buffers */
    kept *keep;
    size_t n_keep, cap_keep, kept_bytes;
    size_t live_bytes; /* bytes of live tai_mem buffers */
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cfg = {TINYAI_MEMORY_STRATEGY_DYNAMIC, 0, 0, false, false}};

static _Atomic size_t cur[TINYAI_MEMORY_KIND_COUNT], peak[TINYAI_MEMORY_KIND_COUNT];
static _Atomic size_t cur_total, peak_total;
static _Atomic bool tracking;
static _Atomic uint64_t n_allocs;
static _Atomic size_t total_allocated;

static void raise_peak(_Atomic size_t *pk, size_t v) {
    size_t p = atomic_load(pk);
    while (v > p && !atomic_compare_exchange_weak(pk, &p, v)) {}
}

void tai_mem_note(tai_mem_kind k, int64_t delta) {
    if ((unsigned)k >= TINYAI_MEMORY_KIND_COUNT || delta == 0) return;
    if (delta > 0) {
        const size_t d = (size_t)delta;
        raise_peak(&peak[k], atomic_fetch_add(&cur[k], d) + d);
        raise_peak(&peak_total, atomic_fetch_add(&cur_total, d) + d);
        if (atomic_load(&tracking)) {
            atomic_fetch_add(&n_allocs, 1);
            atomic_fetch_add(&total_allocated, d);
        }
    } else {
        const size_t d = (size_t)-delta;
        atomic_fetch_sub(&cur[k], d);
        atomic_fetch_sub(&cur_total, d);
    }
}

/* ---- the table of live buffers ---- */

static size_t slot_of(const void *p, size_t cap) {
    uintptr_t h = (uintptr_t)p >> 4;
    h ^= h >> 17;
    h *= 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 7) & (cap - 1);
}

static int tab_put(rec r); /* forward: grows */

static int tab_grow(void) {
    size_t ncap = g.cap ? g.cap * 2 : 256;
    rec *old = g.tab;
    const size_t ocap = g.cap;
    rec *t = calloc(ncap, sizeof *t);
    if (!t) return -1;
    g.tab = t;
    g.cap = ncap;
    g.used = g.live = 0;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].p && old[i].p != (void *)1) tab_put(old[i]);
    free(old);
    return 0;
}

static int tab_put(rec r) {
    if ((g.used + 1) * 4 > g.cap * 3 && tab_grow() != 0) return -1;
    size_t i = slot_of(r.p, g.cap);
    while (g.tab[i].p && g.tab[i].p != (void *)1) i = (i + 1) & (g.cap - 1);
    if (!g.tab[i].p) g.used++;
    g.tab[i] = r;
    g.live++;
    return 0;
}

static rec *tab_find(const void *p) {
    if (!g.cap) return NULL;
    size_t i = slot_of(p, g.cap);
    while (g.tab[i].p) {
        if (g.tab[i].p == p) return &g.tab[i];
        i = (i + 1) & (g.cap - 1);
    }
    return NULL;
}

/* ---- the static arena (core/ranges.h) ---- */

static size_t round_to(size_t v, size_t a) { return (v + a - 1) / a * a; }

static void *arena_take(size_t size, size_t align) {
    const size_t off = tai_ranges_take(&g.ranges, (uintptr_t)g.arena, size, align);
    return off == SIZE_MAX ? NULL : g.arena + off;
}

static void arena_give(void *p, size_t size) {
    tai_ranges_give(&g.ranges, (size_t)((uint8_t *)p - g.arena), size);
    /* its pages go back to the system until used again */
    (void)madvise(p, round_to(size, g.cfg.block_size), MADV_DONTNEED);
}

/* ---- allocation ---- */

static bool uses_arena(void) {
    return g.cfg.strategy == TINYAI_MEMORY_STRATEGY_STATIC ||
           g.cfg.strategy == TINYAI_MEMORY_STRATEGY_HYBRID;
}

void *tai_mem_alloc(tai_mem_kind k, size_t size, size_t align, bool zero) {
    if (align < 16) align = 16;
    if (size == 0) size = 1;
    pthread_mutex_lock(&g.mu);
    void *p = NULL;
    unsigned char from = FROM_SYSTEM;
    bool fresh = true; /* its bytes are zero already */
    if (uses_arena() && g.arena) {
        p = arena_take(size, align);
        if (p) from = FROM_ARENA; /* pages returned with DONTNEED read as zero */
    }
    if (!p && g.cfg.strategy == TINYAI_MEMORY_STRATEGY_POOLED) {
        for (size_t i = g.n_keep; i-- > 0;)
            if (g.keep[i].size == size && g.keep[i].align >= align) {
                p = g.keep[i].p;
                from = g.keep[i].from;
                g.kept_bytes -= size;
                g.keep[i] = g.keep[--g.n_keep];
                fresh = false; /* (partly) its old bytes */
                break;
            }
    }
    if (!p && g.cfg.strategy != TINYAI_MEMORY_STRATEGY_STATIC) {
        if (size >= MAP_MIN && align <= 4096) {
            void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m != MAP_FAILED) {
                p = m;
                from = FROM_MAP; /* zero pages */
            }
        } else {
            p = aligned_alloc(align, round_to(size, align));
            fresh = false;
        }
    }
    if (p && tab_put((rec){p, size, align, (unsigned char)k, from}) != 0) {
        if (from == FROM_ARENA) arena_give(p, size);
        else if (from == FROM_MAP) munmap(p, size);
        else free(p);
        p = NULL;
    }
    if (p) g.live_bytes += size;
    const size_t largest = !p && g.arena ? tai_ranges_largest(&g.ranges) : 0;
    pthread_mutex_unlock(&g.mu);
    if (!p) {
        if (g.cfg.strategy == TINYAI_MEMORY_STRATEGY_STATIC)
            tai_error(TINYAI_ERR_NOMEM,
                      "the static memory arena (%zu bytes) has no room for %zu bytes of %s "
                      "(largest free range %zu bytes)",
                      g.arena_size, size, kind_names[k], largest);
        else
            tai_error(TINYAI_ERR_NOMEM, "out of memory: %zu bytes of %s", size, kind_names[k]);
        return NULL;
    }
    if (zero && !fresh) memset(p, 0, size);
    tai_mem_note(k, (int64_t)size);
    return p;
}

/* Room for one more kept buffer (under g.mu). */
static bool keep_room(void) {
    if (g.n_keep < g.cap_keep) return true;
    const size_t ncap = g.cap_keep * 2 + 8;
    kept *k = realloc(g.keep, ncap * sizeof *k);
    if (!k) return false;
    g.keep = k;
    g.cap_keep = ncap;
    return true;
}

void tai_mem_track(tai_mem_kind k, void *p, size_t size) {
    if (!p || !size) return;
    pthread_mutex_lock(&g.mu);
    const int rc = tab_put((rec){p, size, 4096, (unsigned char)k, FROM_ELSEWHERE});
    pthread_mutex_unlock(&g.mu);
    (void)rc; /* untracked if the table cannot grow: the counts still hold */
    tai_mem_note(k, (int64_t)size);
}

void tai_mem_untrack(tai_mem_kind k, void *p, size_t size) {
    if (!p || !size) return;
    pthread_mutex_lock(&g.mu);
    rec *r = tab_find(p);
    if (r && r->from == FROM_ELSEWHERE) {
        r->p = (void *)1;
        g.live--;
    }
    pthread_mutex_unlock(&g.mu);
    tai_mem_note(k, -(int64_t)size);
}

void tai_mem_free(void *p) {
    if (!p) return;
    pthread_mutex_lock(&g.mu);
    rec *r = tab_find(p);
    if (!r) {
        pthread_mutex_unlock(&g.mu);
        return; /* not ours: internal callers only pass their own */
    }
    const rec x = *r;
    if (x.from == FROM_ELSEWHERE) { /* not ours to free */
        pthread_mutex_unlock(&g.mu);
        return;
    }
    r->p = (void *)1;
    g.live--;
    g.live_bytes -= x.size;
    if (x.from == FROM_ARENA) {
        arena_give(p, x.size);
    } else if (g.cfg.strategy == TINYAI_MEMORY_STRATEGY_POOLED &&
               g.kept_bytes + x.size <= g.cfg.initial_pool_size && keep_room()) {
        /* whole pages inside the buffer go back to the system while it waits */
        if (g.cfg.enable_optimization) {
            const uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
            const uintptr_t b = ((uintptr_t)p + x.size) & ~(uintptr_t)4095;
            if (b > a) (void)madvise((void *)a, b - a, MADV_DONTNEED);
        }
        g.keep[g.n_keep++] = (kept){p, x.size, x.align, x.from};
        g.kept_bytes += x.size;
    } else if (x.from == FROM_MAP) {
        munmap(p, x.size);
    } else {
        free(p);
    }
    pthread_mutex_unlock(&g.mu);
    tai_mem_note((tai_mem_kind)x.kind, -(int64_t)x.size);
}

static void drop_kept(void) {
    for (size_t i = 0; i < g.n_keep; i++) {
        if (g.keep[i].from == FROM_MAP) munmap(g.keep[i].p, g.keep[i].size);
        else free(g.keep[i].p);
    }
    free(g.keep);
    g.keep = NULL;
    g.n_keep = g.cap_keep = g.kept_bytes = 0;
}

TinyAIStatus tinyai_configure_memory(const TinyAIMemoryConfig *c) {
    if (!c) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyai_configure_memory: NULL config");
    if ((unsigned)c->strategy > TINYAI_MEMORY_STRATEGY_HYBRID)
        return tai_error(TINYAI_ERR_INVALID_ARG, "memory strategy %d is unknown", (int)c->strategy);
    TinyAIMemoryConfig n = *c;
    if (n.block_size == 0) n.block_size = 4096;
    if (n.block_size < 64 || n.block_size > (1u << 20) || (n.block_size & (n.block_size - 1)))
        return tai_error(TINYAI_ERR_INVALID_ARG, "memory block size %zu: a power of two from 64 "
                         "to 1 MiB", c->block_size);
    const bool arena = n.strategy == TINYAI_MEMORY_STRATEGY_STATIC ||
                       n.strategy == TINYAI_MEMORY_STRATEGY_HYBRID;
    if (arena && n.initial_pool_size < n.block_size)
        return tai_error(TINYAI_ERR_INVALID_ARG, "a %s arena of %zu bytes is smaller than one "
                         "block (%zu)", n.strategy == TINYAI_MEMORY_STRATEGY_STATIC ? "static"
                                                                                    : "hybrid",
                         n.initial_pool_size, n.block_size);
    pthread_mutex_lock(&g.mu);
    if (g.live_bytes > 0) {
        const size_t live = g.live_bytes;
        pthread_mutex_unlock(&g.mu);
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyai_configure_memory: %zu bytes of TinyAI's "
                         "buffers are in use (free the models and sessions first)", live);
    }
    uint8_t *a = NULL;
    tai_ranges nr = {0};
    size_t asize = 0;
    if (arena) {
        asize = round_to(n.initial_pool_size, n.block_size);
        void *m = mmap(NULL, asize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
        if (m == MAP_FAILED || tai_ranges_init(&nr, asize, n.block_size) != 0) {
            if (m != MAP_FAILED) munmap(m, asize);
            pthread_mutex_unlock(&g.mu);
            return tai_error(TINYAI_ERR_NOMEM, "cannot reserve a memory arena of %zu bytes", asize);
        }
        a = m;
    }
    if (g.arena) munmap(g.arena, g.arena_size);
    tai_ranges_free(&g.ranges);
    drop_kept();
    g.arena = a;
    g.arena_size = asize;
    g.ranges = nr;
    g.cfg = n;
    pthread_mutex_unlock(&g.mu);
    if (n.track_allocations) tinyai_enable_memory_tracking(true);
    return TINYAI_OK;
}

TinyAIMemoryConfig tinyai_get_memory_config(void) {
    pthread_mutex_lock(&g.mu);
    TinyAIMemoryConfig c = g.cfg;
    pthread_mutex_unlock(&g.mu);
    return c;
}

/* ---- tracking ---- */

void tinyai_enable_memory_tracking(bool enable) {
    if (enable && !atomic_load(&tracking)) {
        atomic_store(&n_allocs, 0);
        atomic_store(&total_allocated, 0);
    }
    atomic_store(&tracking, enable);
}

bool tinyai_memory_tracking_enabled(void) { return atomic_load(&tracking); }

TinyAIMemoryStats tinyai_get_memory_stats(void) {
    TinyAIMemoryStats s;
    memset(&s, 0, sizeof s);
    s.current_usage = atomic_load(&cur_total);
    s.peak_usage = atomic_load(&peak_total);
    for (int k = 0; k < TINYAI_MEMORY_KIND_COUNT; k++) {
        s.kind_usage[k] = atomic_load(&cur[k]);
        s.kind_peak[k] = atomic_load(&peak[k]);
    }
    if (atomic_load(&tracking)) {
        s.allocation_count = atomic_load(&n_allocs);
        s.total_allocated = atomic_load(&total_allocated);
    }
    tai_mem_resident(s.kind_resident);
    s.kind_resident[TAI_MEM_TABLES] = s.kind_usage[TAI_MEM_TABLES]; /* heap: all touched */
    for (int k = 0; k < TINYAI_MEMORY_KIND_COUNT; k++) s.resident_usage += s.kind_resident[k];
    pthread_mutex_lock(&g.mu);
    if (g.arena) {
        const size_t free_b = tai_ranges_free_bytes(&g.ranges), largest = tai_ranges_largest(&g.ranges);
        s.budget = g.arena_size;
        s.fragmentation_ratio = free_b ? 1.0 - (double)largest / (double)free_b : 0.0;
    } else if (g.cfg.strategy == TINYAI_MEMORY_STRATEGY_POOLED && g.kept_bytes + g.live_bytes) {
        s.fragmentation_ratio = (double)g.kept_bytes / (double)(g.kept_bytes + g.live_bytes);
    }
    pthread_mutex_unlock(&g.mu);
    return s;
}

/* Resident bytes of [p, p + n) (whole pages; mincore). */
static size_t resident_bytes(const void *p, size_t n) {
    const size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    const uintptr_t a = (uintptr_t)p / pg * pg, b = ((uintptr_t)p + n + pg - 1) / pg * pg;
    const size_t pages = (b - a) / pg;
    unsigned char vec[4096];
    size_t res = 0;
    for (size_t i = 0; i < pages; i += sizeof vec) {
        const size_t k = pages - i < sizeof vec ? pages - i : sizeof vec;
        if (mincore((void *)(a + i * pg), k * pg, vec) != 0) return 0;
        for (size_t j = 0; j < k; j++) res += vec[j] & 1;
    }
    return res * pg;
}

void tai_mem_resident(size_t out[TINYAI_MEMORY_KIND_COUNT]) {
    memset(out, 0, sizeof(size_t) * TINYAI_MEMORY_KIND_COUNT);
    pthread_mutex_lock(&g.mu);
    for (size_t i = 0; i < g.cap; i++)
        if (g.tab[i].p && g.tab[i].p != (void *)1)
            out[g.tab[i].kind] += resident_bytes(g.tab[i].p, g.tab[i].size);
    pthread_mutex_unlock(&g.mu);
}

/* VmRSS and VmHWM of this process, bytes (0 where /proc does not say). */
static void process_rss(size_t *rss, size_t *hwm) {
    *rss = *hwm = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "VmRSS: %llu kB", &kb) == 1) *rss = (size_t)kb * 1024;
        if (sscanf(line, "VmHWM: %llu kB", &kb) == 1) *hwm = (size_t)kb * 1024;
    }
    fclose(f);
}

static int by_size_desc(const void *a, const void *b) {
    const rec *x = a, *y = b;
    return (x->size < y->size) - (x->size > y->size);
}

TinyAIStatus tinyai_generate_memory_report(const char *path) {
    if (!path || !*path)
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyai_generate_memory_report: no path");
    FILE *f = fopen(path, "w");
    if (!f) return tai_error(TINYAI_ERR_IO, "%s: cannot write the memory report: %s", path,
                             strerror(errno));
    static const char *const strat[] = {"static", "pooled", "dynamic", "hybrid"};
    const TinyAIMemoryStats s = tinyai_get_memory_stats();
    const TinyAIMemoryConfig c = tinyai_get_memory_config();
    size_t rss, hwm;
    process_rss(&rss, &hwm);
    const double M = 1048576.0;
    fprintf(f, "TinyAI memory report\n\nstrategy: %s", strat[c.strategy]);
    if (c.strategy != TINYAI_MEMORY_STRATEGY_DYNAMIC)
        fprintf(f, " (pool %.1f MiB, block %zu bytes)", c.initial_pool_size / M, c.block_size);
    fprintf(f, "\ntracking: %s\n\n%-28s %12s %12s %12s\n",
            tinyai_memory_tracking_enabled() ? "on" : "off", "kind", "held MiB", "peak MiB",
            "resident MiB");
    for (int k = 0; k < TINYAI_MEMORY_KIND_COUNT; k++)
        fprintf(f, "%-28s %12.2f %12.2f %12.2f\n", kind_names[k], s.kind_usage[k] / M,
                s.kind_peak[k] / M, s.kind_resident[k] / M);
    fprintf(f, "%-28s %12.2f %12.2f %12.2f\n\n", "TinyAI in all", s.current_usage / M,
            s.peak_usage / M, s.resident_usage / M);
    fprintf(f, "(held: allocated; resident: of that, the pages in memory now: a KV cache\n"
               "for a long context is held whole but resident only as far as it is used)\n\n");
    fprintf(f, "process resident now (VmRSS)  %10.2f MiB\n", rss / M);
    fprintf(f, "process resident peak (VmHWM) %10.2f MiB\n", hwm / M);
    fprintf(f, "TinyAI's share of VmRSS       %10.1f %%\n",
            rss ? 100.0 * (double)s.resident_usage / (double)rss : 0.0);
    fprintf(f, "resident beyond TinyAI's      %10.2f MiB (code, libraries, the C heap, stacks)\n",
            rss > s.resident_usage ? (rss - s.resident_usage) / M : 0.0);
    fprintf(f, "fragmentation ratio           %10.3f\n", s.fragmentation_ratio);
    if (tinyai_memory_tracking_enabled()) {
        fprintf(f, "allocations since tracking    %10llu (%.2f MiB)\n",
                (unsigned long long)s.allocation_count, s.total_allocated / M);
        pthread_mutex_lock(&g.mu);
        rec *live = g.live ? malloc(g.live * sizeof *live) : NULL;
        size_t n = 0;
        for (size_t i = 0; live && i < g.cap; i++)
            if (g.tab[i].p && g.tab[i].p != (void *)1) live[n++] = g.tab[i];
        pthread_mutex_unlock(&g.mu);
        if (n > 1) qsort(live, n, sizeof *live, by_size_desc);
        fprintf(f, "\nlargest live buffers (%zu in all):\n", n);
        for (size_t i = 0; i < n && i < 16; i++)
            fprintf(f, "  %12.2f MiB  %s%s\n", live[i].size / M, kind_names[live[i].kind],
                    live[i].from == FROM_ARENA ? " (static arena)" : "");
        free(live);
    }
    if (fclose(f) != 0) return tai_error(TINYAI_ERR_IO, "%s: write failed", path);
    return TINYAI_OK;
}

/* ---- the caller's pools ---- */

struct TinyAIMemoryPool {
    pthread_mutex_t mu;
    uint8_t *base;
    size_t bytes, block, n_blocks;
    uint32_t *next;     /* free list links (block indexes) */
    uint32_t head;      /* first free block, n_blocks if none */
    uint8_t *used;      /* per block: 1 while handed out */
    size_t *asked;      /* per block: the size asked for */
    size_t n_used, requested;
};

TinyAIMemoryPool *tinyai_create_pool(size_t total, size_t block) {
    if (block == 0 || block > total) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyai_create_pool: block size %zu for a pool of %zu "
                  "bytes", block, total);
        return NULL;
    }
    block = round_to(block, 16);
    const size_t n = total / block;
    if (n == 0 || n > UINT32_MAX - 1) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyai_create_pool: %zu bytes hold no %zu-byte blocks "
                  "(or too many)", total, block);
        return NULL;
    }
    TinyAIMemoryPool *p = calloc(1, sizeof *p);
    void *m = MAP_FAILED;
    if (p) m = mmap(NULL, n * block, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p && m != MAP_FAILED) {
        p->next = malloc(n * sizeof *p->next);
        p->used = calloc(n, 1);
        p->asked = calloc(n, sizeof *p->asked);
    }
    if (!p || m == MAP_FAILED || !p->next || !p->used || !p->asked) {
        if (m != MAP_FAILED) munmap(m, n * block);
        if (p) free(p->next), free(p->used), free(p->asked);
        free(p);
        tai_error(TINYAI_ERR_NOMEM, "tinyai_create_pool: cannot reserve %zu bytes", n * block);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    p->base = m;
    p->block = block;
    p->n_blocks = n;
    p->bytes = n * block;
    for (size_t i = 0; i < n; i++) p->next[i] = (uint32_t)(i + 1);
    p->head = 0;
    tai_mem_track(TAI_MEM_POOLS, p->base, p->bytes);
    return p;
}

void *tinyai_pool_alloc(TinyAIMemoryPool *p, size_t size) {
    if (!p) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyai_pool_alloc: NULL pool");
        return NULL;
    }
    if (size == 0 || size > p->block) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyai_pool_alloc: %zu bytes from a pool of %zu-byte "
                  "blocks", size, p->block);
        return NULL;
    }
    pthread_mutex_lock(&p->mu);
    if (p->head >= p->n_blocks) {
        const size_t n = p->n_blocks;
        pthread_mutex_unlock(&p->mu);
        tai_error(TINYAI_ERR_NOMEM, "tinyai_pool_alloc: all %zu blocks are in use", n);
        return NULL;
    }
    const uint32_t b = p->head;
    p->head = p->next[b];
    p->used[b] = 1;
    p->asked[b] = size;
    p->n_used++;
    p->requested += size;
    pthread_mutex_unlock(&p->mu);
    return p->base + (size_t)b * p->block;
}

TinyAIStatus tinyai_pool_free(TinyAIMemoryPool *p, void *ptr) {
    if (!ptr) return TINYAI_OK;
    if (!p) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyai_pool_free: NULL pool");
    const uintptr_t a = (uintptr_t)ptr, lo = (uintptr_t)p->base;
    if (a < lo || a >= lo + p->bytes || (a - lo) % p->block != 0)
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyai_pool_free: %p is not a block of this pool",
                         ptr);
    const uint32_t b = (uint32_t)((a - lo) / p->block);
    pthread_mutex_lock(&p->mu);
    if (!p->used[b]) {
        pthread_mutex_unlock(&p->mu);
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyai_pool_free: block %u (%p) is already free "
                         "(freed twice?)", b, ptr);
    }
    p->used[b] = 0;
    p->requested -= p->asked[b];
    p->n_used--;
    p->next[b] = p->head;
    p->head = b;
    pthread_mutex_unlock(&p->mu);
    return TINYAI_OK;
}

void tinyai_destroy_pool(TinyAIMemoryPool *p) {
    if (!p) return;
    tai_mem_untrack(TAI_MEM_POOLS, p->base, p->bytes);
    munmap(p->base, p->bytes);
    pthread_mutex_destroy(&p->mu);
    free(p->next);
    free(p->used);
    free(p->asked);
    free(p);
}

TinyAIPoolStats tinyai_get_pool_stats(const TinyAIMemoryPool *p) {
    TinyAIPoolStats s = {0, 0, 0, 0};
    if (!p) return s;
    pthread_mutex_lock((pthread_mutex_t *)&p->mu);
    s.blocks_used = p->n_used;
    s.blocks_total = p->n_blocks;
    s.block_size = p->block;
    s.bytes_requested = p->requested;
    pthread_mutex_unlock((pthread_mutex_t *)&p->mu);
    return s;
}
