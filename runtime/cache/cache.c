/*
 * runtime/cache: the weight cache (cache.h). Entry states, the arena's free
 * list, demand loads, prefetch and the loader threads; the schedule index and
 * the victim order live in policy.c.
 *
 * Concurrency. One mutex `mu` guards all mutable state; the configuration,
 * the sizes and the arena's address are fixed at creation. Loads run outside
 * the mutex and write only into their entry's buffer, which nobody else
 * touches while the entry is LOADING: it cannot be evicted, and acquire hands
 * it out only once RESIDENT. Three condition variables:
 *   - `work`: a job was queued or the cache is stopping (loaders wait on it);
 *   - `done`: a load finished (success, failure or cancellation). Everyone
 *     else waits on it: acquire or pin for its entry, acquire for room, evict
 *     for a load in flight;
 *   - `taken`: a loader took a job (hand_off waits on it, only while a
 *     loader is idle and a prefetch queued, so it ends).
 * Every wait loops on a counter that only moves forward (an entry's `gen`,
 * the cache's `completions`), not on a state that may flip back, so a waiter
 * that wakes late cannot miss the completion it waited for, and a spurious
 * wake-up only waits again.
 *
 * Memory ordering: a loader's writes into the buffer precede its taking `mu`
 * to mark the entry RESIDENT; an acquirer reads the state under `mu` and the
 * buffer afterwards, so the mutex orders the two. A range of the arena is
 * reused for another entry only after an eviction, which requires in_use == 0,
 * i.e. every user released the old buffer under `mu` before.
 *
 * Units: the free list and entries' offsets count granules; `used` and the
 * stats count bytes, each entry as its size rounded up to the granule (the
 * room it takes in the arena).
 */
#include "runtime/mem/memory.h"
#include "runtime/cache/cache.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <stdatomic.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/thread.h"
#include "core/trace.h"
#include "runtime/cache/policy.h"

/* Which job queue an entry waits in. Demand jobs are taken first. */
enum { Q_NONE = 0, Q_DEMAND = 1, Q_PREFETCH = 2, Q_COUNT = 3 };

typedef struct {
    size_t off, len; /* granules */
} range;

typedef struct {
    size_t size; /* bytes */
    size_t gran; /* granules it occupies unless ABSENT; 0 for an empty entry */
    size_t off;  /* its first granule unless ABSENT */
    tai_entry_state state;
    int in_use;
    /* Acquires and pins blocked until it is RESIDENT. Like in_use, it keeps
     * the entry from being evicted, so that between its load completing and
     * the waiter waking up nobody takes it away. */
    int waiters;
    bool pinned;
    bool planned; /* make_room's scratch mark */
    int queue;    /* Q_* */
    int qnext, qprev;
    float priority;
    uint64_t tick; /* LRU: logical time of the last acquire or load start */
    uint64_t last_access, access_count, loads;
    uint64_t gen;             /* loads of this entry finished, any outcome */
    TinyAIStatus last_status; /* outcome of the last one */
    char *errmsg;             /* its message if it failed (owned; may be NULL) */
} entry;

struct tai_cache {
    /* where loads, prefetches and evictions are recorded (NULL: nowhere) */
    _Atomic(tai_trace *) trace;
    /* Fixed at creation. */
    tai_cache_config cfg;
    int n;
    size_t granule, ngran, bytes; /* bytes == ngran * granule */
    unsigned char *base;          /* granule-aligned, inside raw */
    void *raw;
    size_t raw_size;
    int nthreads; /* started */
    pthread_t *threads;

    pthread_mutex_t mu;
    pthread_cond_t work, done, taken;
    int idle; /* loader threads waiting for work */
    entry *e;
    /* Free ranges, sorted by offset and coalesced. Never more than the
     * allocated blocks + 1, so n + 1; scratch is make_room's copy. */
    range *fr, *scratch;
    int nfr;
    int *plan;     /* make_room's victims, n */
    int64_t *dist; /* next-use distance from the cursor, per entry, n */
    tai_sched sched;
    int64_t cur; /* schedule position of the last acquire; -1: before 0 */
    int qhead[Q_COUNT], qtail[Q_COUNT];
    int loading;          /* entries LOADING */
    uint64_t completions; /* loads finished, any entry, any outcome */
    uint64_t clock;       /* logical time for LRU */
    bool stop;
    tai_cache_stats st; /* st.used and st.peak_used kept live */
};

/* ---- Free list ---------------------------------------------------------- */

/* Adds [off, off + len) to the sorted, coalesced list `a` (room for one more
 * range) and returns the length of the free range that now contains it. */
static size_t range_insert(range *a, int *na, size_t off, size_t len) {
    int k = 0;
    while (k < *na && a[k].off < off) k++;
    bool left = k > 0 && a[k - 1].off + a[k - 1].len == off;
    bool right = k < *na && off + len == a[k].off;
    if (left && right) {
        a[k - 1].len += len + a[k].len;
        memmove(&a[k], &a[k + 1], (size_t)(*na - k - 1) * sizeof *a);
        (*na)--;
        return a[k - 1].len;
    }
    if (left) return a[k - 1].len += len;
    if (right) {
        a[k].off = off;
        return a[k].len += len;
    }
    memmove(&a[k + 1], &a[k], (size_t)(*na - k) * sizeof *a);
    a[k].off = off;
    a[k].len = len;
    (*na)++;
    return len;
}

/* First fit: takes `need` granules from the lowest free range that has them. */
static bool range_take(range *a, int *na, size_t need, size_t *off) {
    for (int k = 0; k < *na; k++) {
        if (a[k].len < need) continue;
        *off = a[k].off;
        a[k].off += need;
        a[k].len -= need;
        if (a[k].len == 0) {
            memmove(&a[k], &a[k + 1], (size_t)(*na - k - 1) * sizeof *a);
            (*na)--;
        }
        return true;
    }
    return false;
}

/* ---- Job queues ----------------------------------------------------------- */

static void q_push(tai_cache *c, int q, int i) {
    entry *e = &c->e[i];
    e->queue = q;
    e->qnext = -1;
    e->qprev = c->qtail[q];
    if (c->qtail[q] >= 0)
        c->e[c->qtail[q]].qnext = i;
    else
        c->qhead[q] = i;
    c->qtail[q] = i;
}

static void q_remove(tai_cache *c, int i) {
    entry *e = &c->e[i];
    int q = e->queue;
    if (e->qprev >= 0)
        c->e[e->qprev].qnext = e->qnext;
    else
        c->qhead[q] = e->qnext;
    if (e->qnext >= 0)
        c->e[e->qnext].qprev = e->qprev;
    else
        c->qtail[q] = e->qprev;
    e->queue = Q_NONE;
    e->qnext = e->qprev = -1;
}

static int q_pop(tai_cache *c) {
    for (int q = Q_DEMAND; q < Q_COUNT; q++) {
        int i = c->qhead[q];
        if (i >= 0) {
            q_remove(c, i);
            return i;
        }
    }
    return -1;
}

/* ---- State changes (all with mu held) ----------------------------------- */

static void *buffer(const tai_cache *c, const entry *e) { return c->base + e->off * c->granule; }

static void evict_locked(tai_cache *c, int i) {
    entry *e = &c->e[i];
    range_insert(c->fr, &c->nfr, e->off, e->gran);
    c->st.used -= e->gran * c->granule;
    e->state = TAI_ENTRY_ABSENT;
    c->st.evictions++;
    tai_trace_instant(atomic_load_explicit(&c->trace, memory_order_relaxed), "evict", "cache", i,
                      tai_now_ns(), e->size);
}

void tai_cache_set_trace(tai_cache *c, tai_trace *t) {
    if (c) atomic_store(&c->trace, t);
}

static void start_load(tai_cache *c, int i, size_t off, int q) {
    entry *e = &c->e[i];
    e->off = off;
    e->state = TAI_ENTRY_LOADING;
    e->tick = ++c->clock;
    c->loading++;
    c->st.used += e->gran * c->granule;
    if (c->st.used > c->st.peak_used) c->st.peak_used = c->st.used;
    q_push(c, q, i);
    pthread_cond_signal(&c->work);
}

/* Ends a load: RESIDENT on success; otherwise ABSENT with its room given
 * back and `msg` (owned, may be NULL) kept for the acquire that waits. */
static void finish_load(tai_cache *c, int i, TinyAIStatus st, char *msg, double secs,
                        bool cancelled) {
    entry *e = &c->e[i];
    e->gen++;
    e->last_status = st;
    c->completions++;
    c->loading--;
    c->st.load_seconds += secs;
    if (st == TINYAI_OK) {
        e->state = TAI_ENTRY_RESIDENT;
        e->loads++;
        c->st.loads++;
        c->st.bytes_read += e->size;
    } else {
        range_insert(c->fr, &c->nfr, e->off, e->gran);
        c->st.used -= e->gran * c->granule;
        e->state = TAI_ENTRY_ABSENT;
        free(e->errmsg);
        e->errmsg = msg;
        msg = NULL;
        if (!cancelled) c->st.load_errors++;
    }
    free(msg);
    pthread_cond_broadcast(&c->done);
}

/* ---- Victims ------------------------------------------------------------ */

static tai_cache_policy order_policy(const tai_cache *c) {
    /* Without a schedule every next use is unknown: Belady has nothing to
     * go on and degrades to LRU. */
    return c->cfg.policy == TAI_CACHE_BELADY && c->sched.len > 0 ? TAI_CACHE_BELADY
                                                                 : TAI_CACHE_LRU;
}

static bool evictable(const entry *e) {
    return e->gran > 0 && e->state == TAI_ENTRY_RESIDENT && e->in_use == 0 && e->waiters == 0 &&
           !e->pinned;
}

static int64_t distance(const tai_cache *c, int i, int64_t after) {
    int64_t q = tai_sched_next(&c->sched, i, after);
    return q == TAI_SCHED_NEVER ? TAI_SCHED_NEVER : q - c->cur;
}

static tai_victim_key key_of(const tai_cache *c, int i) {
    const entry *e = &c->e[i];
    tai_victim_key k = {
        .priority = e->priority, .next = c->dist[i], .tick = e->tick, .size = e->gran, .index = i};
    return k;
}

/* The prefetch rules for one entry: f, next used at distance df. */
typedef struct {
    int f;
    int64_t df;
} prefetch_rule;

/* Conservative prefetch: would a demand load of r->f at its next use pick v
 * as its victim too? Its candidates then are the entries resident or loading
 * now (bar the pinned ones, and those this plan already evicts) and the
 * entries used before r->f, which will be resident by then; the ones in use
 * now will have been released. An entry used before r->f is compared by its
 * next use after r->f; the others keep the next use they have now, v
 * included (rule 1 put its next use after r->f's). Under LRU every entry used
 * meanwhile becomes younger than v, so only a lower priority can take v's
 * place. */
static bool demand_would_pick(const tai_cache *c, int v, const prefetch_rule *r,
                              tai_cache_policy pol) {
    int64_t pf = r->df == TAI_SCHED_NEVER ? TAI_SCHED_NEVER : c->cur + r->df;
    float pv = c->e[v].priority;
    for (int x = 0; x < c->n; x++) {
        const entry *e = &c->e[x];
        if (x == v || x == r->f || e->gran == 0 || e->pinned || e->planned) continue;
        bool before = c->dist[x] < r->df;
        if (!before && e->state == TAI_ENTRY_ABSENT) continue;
        if (e->priority > pv) continue;
        if (e->priority < pv) return false;
        if (pol != TAI_CACHE_BELADY) continue;
        int64_t later = before ? distance(c, x, pf) : c->dist[x];
        if (later > c->dist[v]) return false;
    }
    return true;
}

/* Finds `need` contiguous free granules, evicting victims in policy order
 * (with the prefetch rules when r is not NULL) until a free range is large
 * enough. The victims are chosen on a copy of the free list first and evicted
 * only if together they make room, so a failure changes nothing. */
static bool make_room(tai_cache *c, size_t need, const prefetch_rule *r, size_t *off) {
    if (range_take(c->fr, &c->nfr, need, off)) return true;
    for (int i = 0; i < c->n; i++) c->dist[i] = distance(c, i, c->cur);
    tai_cache_policy pol = order_policy(c);
    int ns = c->nfr, np = 0;
    memcpy(c->scratch, c->fr, (size_t)ns * sizeof *c->fr);
    bool fits = false;
    while (!fits) {
        int best = -1;
        tai_victim_key kb = {0};
        for (int i = 0; i < c->n; i++) {
            if (!evictable(&c->e[i]) || c->e[i].planned) continue;
            /* Rule 1: never evict an entry needed before the prefetched one,
             * nor one of a higher priority than its own. */
            if (r && (c->dist[i] < r->df || c->e[i].priority > c->e[r->f].priority)) continue;
            tai_victim_key k = key_of(c, i);
            if (best < 0 || tai_victim_before(pol, &k, &kb)) {
                best = i;
                kb = k;
            }
        }
        if (best < 0) break;
        /* Rule 2: only what demand would evict. Any other candidate comes
         * after `best` in the same order, so if best fails, all do. */
        if (r && !c->cfg.aggressive_prefetch && !demand_would_pick(c, best, r, pol)) break;
        c->e[best].planned = true;
        c->plan[np++] = best;
        fits = range_insert(c->scratch, &ns, c->e[best].off, c->e[best].gran) >= need;
    }
    for (int k = 0; k < np; k++) {
        c->e[c->plan[k]].planned = false;
        if (fits) evict_locked(c, c->plan[k]);
    }
    /* The free list is now what the scratch copy was: the range is there. */
    return fits && range_take(c->fr, &c->nfr, need, off);
}

/* ---- Loading ------------------------------------------------------------ */

static TinyAIStatus load_error(const tai_cache *c, int i) {
    const entry *e = &c->e[i];
    if (e->errmsg && e->errmsg[0]) return tai_error(e->last_status, "%s", e->errmsg);
    return tai_error(e->last_status, "loading cache entry %d (%zu bytes) failed: %s", i, e->size,
                     tinyaiStatusString(e->last_status));
}

static TinyAIStatus no_room_error(const tai_cache *c, int i) {
    size_t held = 0, largest = 0;
    int nheld = 0;
    for (int x = 0; x < c->n; x++) {
        const entry *e = &c->e[x];
        if (x == i || e->state == TAI_ENTRY_ABSENT) continue;
        if (e->in_use > 0 || e->pinned || e->waiters > 0) {
            held += e->gran * c->granule;
            nheld++;
        }
    }
    for (int k = 0; k < c->nfr; k++)
        if (c->fr[k].len > largest) largest = c->fr[k].len;
    return tai_error(TINYAI_ERR_NOMEM,
                     "cache entry %d needs %zu bytes, but %zu of the %zu-byte budget are held "
                     "by %d entries in use or pinned (largest free range: %zu bytes)",
                     i, c->e[i].gran * c->granule, held, c->bytes, nheld, largest * c->granule);
}

/* Makes entry i RESIDENT, loading it on demand and waiting as needed; the
 * time spent waiting is added to *stall. Called and returns with mu held. */
static TinyAIStatus ensure_resident(tai_cache *c, int i, double *stall) {
    entry *e = &c->e[i];
    TinyAIStatus st = TINYAI_OK;
    e->waiters++;
    while (e->state != TAI_ENTRY_RESIDENT) {
        if (e->state == TAI_ENTRY_LOADING) {
            /* Someone waits for it now: a queued prefetch becomes demand. */
            if (e->queue == Q_PREFETCH) {
                q_remove(c, i);
                q_push(c, Q_DEMAND, i);
            }
            uint64_t gen = e->gen;
            double t0 = tai_now_s();
            while (e->gen == gen) pthread_cond_wait(&c->done, &c->mu);
            *stall += tai_now_s() - t0;
            /* Success leaves it RESIDENT: our `waiters` kept it from being
             * evicted while we slept. */
            if (e->last_status != TINYAI_OK) {
                st = load_error(c, i);
                break;
            }
            continue;
        }
        size_t off;
        if (make_room(c, e->gran, NULL, &off)) {
            start_load(c, i, off, Q_DEMAND);
            continue;
        }
        if (c->loading > 0) {
            /* Loads in flight cannot be evicted but become evictable once
             * they complete (unless someone waits for them): try again
             * after the next completion. Each completion lowers `loading`
             * for good unless new loads start, so this ends. */
            uint64_t k = c->completions;
            double t0 = tai_now_s();
            while (c->completions == k) pthread_cond_wait(&c->done, &c->mu);
            *stall += tai_now_s() - t0;
            continue;
        }
        st = no_room_error(c, i);
        break;
    }
    e->waiters--;
    return st;
}

static bool try_prefetch(tai_cache *c, int x, int64_t df) {
    prefetch_rule r = {.f = x, .df = df};
    size_t off;
    if (!make_room(c, c->e[x].gran, &r, &off)) return false;
    start_load(c, x, off, Q_PREFETCH);
    c->st.prefetches++;
    tai_trace_instant(atomic_load_explicit(&c->trace, memory_order_relaxed), "prefetch", "cache", x,
                      tai_now_ns(), c->e[x].size);
    return true;
}

/* Walks the schedule from the cursor and starts loads for up to
 * prefetch_window entries that are not resident (loads already in flight
 * count toward the window). Stops at the first entry for which the rules
 * allow no room: a later entry would need room under stricter rules. */
static void prefetch_ahead(tai_cache *c) {
    const tai_sched *s = &c->sched;
    int window = c->cfg.prefetch_window;
    if (window <= 0 || s->len == 0 || c->stop) return;
    int found = 0;
    for (int64_t step = 1; step <= s->len; step++) {
        int64_t q = c->cur + step;
        if (!s->cyclic && q >= s->len) break;
        int x = s->order[q % s->len];
        const entry *e = &c->e[x];
        if (e->state == TAI_ENTRY_RESIDENT) continue;
        /* x is not resident here, so this is its first use after the
         * cursor: its distance is `step`. */
        if (e->state == TAI_ENTRY_ABSENT && !try_prefetch(c, x, step)) break;
        if (++found >= window) break;
    }
}

/* Hands queued prefetches to idle loaders before the caller goes back to
 * computing: the caller waits (briefly, without the CPU) until every idle
 * loader has taken a job. Without it, on a machine whose cores the compute
 * threads keep busy, a woken loader may only run, and issue its reads,
 * once the computation of the current layer ends, leaving storage idle for
 * that long on every layer. A loader busy with a load takes the next job
 * when it is done; nobody waits for that. */
static void hand_off(tai_cache *c) {
    while (!c->stop && c->idle > 0 && c->qhead[Q_PREFETCH] >= 0)
        pthread_cond_wait(&c->taken, &c->mu);
}

static void *loader_main(void *arg) {
    tai_cache *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        int i = q_pop(c);
        if (i < 0) {
            if (c->stop) break;
            c->idle++;
            pthread_cond_wait(&c->work, &c->mu);
            c->idle--;
            continue;
        }
        pthread_cond_broadcast(&c->taken);
        if (c->stop) {
            /* Destroying: jobs not started yet are dropped. */
            finish_load(c, i, TINYAI_ERR_INTERNAL, NULL, 0, true);
            continue;
        }
        void *dst = buffer(c, &c->e[i]);
        size_t size = c->e[i].size;
        /* While LOADING the entry is neither evicted nor handed out, so its
         * buffer is this thread's alone until finish_load. */
        pthread_mutex_unlock(&c->mu);
        tinyaiClearError();
        const uint64_t t0 = tai_now_ns();
        TinyAIStatus st = c->cfg.load(c->cfg.load_ctx, i, dst, size);
        const uint64_t t1 = tai_now_ns();
        const double secs = (double)(t1 - t0) * 1e-9;
        tai_trace_span(atomic_load_explicit(&c->trace, memory_order_relaxed), "read", "io", i, t0,
                       t1, size);
        /* Messages are thread-local: copy it for the acquiring thread. */
        char *msg = st == TINYAI_OK ? NULL : strdup(tinyaiLastErrorMessage());
        pthread_mutex_lock(&c->mu);
        finish_load(c, i, st, msg, secs, false);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ---- Creation ----------------------------------------------------------- */

const char *tai_cache_policy_name(tai_cache_policy p) {
    switch (p) {
    case TAI_CACHE_BELADY: return "belady";
    case TAI_CACHE_LRU: return "lru";
    }
    return "unknown";
}

int tai_cache_policy_parse(const char *name) {
    if (!name) return -1;
    if (strcmp(name, "belady") == 0) return TAI_CACHE_BELADY;
    if (strcmp(name, "lru") == 0) return TAI_CACHE_LRU;
    return -1;
}

static bool granule_ok(size_t g) { return g >= 4096 && (g & (g - 1)) == 0; }

/* Whole granules holding `size` bytes. */
static size_t granules(size_t size, size_t granule) {
    return size / granule + (size % granule != 0);
}

size_t tai_cache_min_budget(const size_t *sizes, int n, size_t granule) {
    if (granule == 0) granule = 4096;
    if (!granule_ok(granule)) return SIZE_MAX;
    size_t most = 1;
    for (int i = 0; sizes && i < n; i++) {
        size_t g = granules(sizes[i], granule);
        if (g > SIZE_MAX / granule) return SIZE_MAX;
        if (g > most) most = g;
    }
    return most * granule;
}

static TinyAIStatus arena_alloc(tai_cache *c) {
    /* Both sources give 4096-aligned memory; a larger granule needs slack
     * to align the base up. */
    size_t slack = c->granule - 4096;
    if (c->bytes > SIZE_MAX - slack)
        return tai_error(TINYAI_ERR_NOMEM, "arena of %zu bytes is too large", c->bytes);
    c->raw_size = c->bytes + slack;
    if (c->cfg.allocator.alloc) {
        c->raw = c->cfg.allocator.alloc(c->cfg.allocator.ctx, c->raw_size);
        if (!c->raw)
            return tai_error(TINYAI_ERR_NOMEM, "the cache allocator gave no arena of %zu bytes",
                             c->raw_size);
        if ((uintptr_t)c->raw % 4096 != 0) {
            c->cfg.allocator.free(c->cfg.allocator.ctx, c->raw, c->raw_size);
            c->raw = NULL;
            return tai_error(TINYAI_ERR_INVALID_ARG,
                             "the cache allocator returned memory not aligned to 4096 bytes");
        }
    } else {
        void *p = mmap(NULL, c->raw_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
        if (p == MAP_FAILED)
            return tai_error(TINYAI_ERR_NOMEM, "cannot map a cache arena of %zu bytes: %s",
                             c->raw_size, strerror(errno));
        c->raw = p;
    }
    /* TinyAI's weights memory (runtime/mem/memory.h) */
    tai_mem_track(TAI_MEM_WEIGHTS, c->raw, c->raw_size);
    uintptr_t b = ((uintptr_t)c->raw + c->granule - 1) & ~(uintptr_t)(c->granule - 1);
    c->base = (unsigned char *)b;
#ifdef MADV_HUGEPAGE
    /* Fewer TLB misses when kernels stream through weights. Advice only:
     * without transparent huge pages it fails, and that is fine. */
    if (!c->cfg.allocator.alloc) (void)madvise(c->base, c->bytes, MADV_HUGEPAGE);
#endif
    return TINYAI_OK;
}

/* Frees everything of a cache whose loader threads are not running. */
static void cache_free(tai_cache *c) {
    if (c->raw) {
        tai_mem_untrack(TAI_MEM_WEIGHTS, c->raw, c->raw_size);
        if (c->cfg.allocator.alloc)
            c->cfg.allocator.free(c->cfg.allocator.ctx, c->raw, c->raw_size);
        else
            munmap(c->raw, c->raw_size);
    }
    for (int i = 0; c->e && i < c->n; i++) free(c->e[i].errmsg);
    tai_sched_free(&c->sched);
    free(c->e);
    free(c->fr);
    free(c->scratch);
    free(c->plan);
    free(c->dist);
    free(c->threads);
    pthread_cond_destroy(&c->work);
    pthread_cond_destroy(&c->done);
    pthread_cond_destroy(&c->taken);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static void stop_threads(tai_cache *c) {
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_broadcast(&c->work);
    pthread_mutex_unlock(&c->mu);
    for (int t = 0; t < c->nthreads; t++) pthread_join(c->threads[t], NULL);
    c->nthreads = 0;
}

TinyAIStatus tai_cache_create(const tai_cache_config *cfg, int n, const size_t *sizes,
                              tai_cache **out) {
    if (out) *out = NULL;
    if (!cfg || !out) return tai_error(TINYAI_ERR_INVALID_ARG, "cache config or output is NULL");
    if (!cfg->load) return tai_error(TINYAI_ERR_INVALID_ARG, "cache config has no load function");
    if (n < 0 || (n > 0 && !sizes))
        return tai_error(TINYAI_ERR_INVALID_ARG, "cache of %d entries without sizes", n);
    size_t granule = cfg->granule ? cfg->granule : 4096;
    if (!granule_ok(granule))
        return tai_error(TINYAI_ERR_INVALID_ARG,
                         "cache granule %zu is not a power of two of at least 4096 bytes",
                         cfg->granule);
    if (cfg->policy != TAI_CACHE_BELADY && cfg->policy != TAI_CACHE_LRU)
        return tai_error(TINYAI_ERR_INVALID_ARG, "unknown cache policy %d", (int)cfg->policy);
    int threads = cfg->loader_threads ? cfg->loader_threads : 1;
    if (threads < 1 || threads > 16)
        return tai_error(TINYAI_ERR_INVALID_ARG, "loader_threads is %d; it must be 1..16",
                         cfg->loader_threads);
    if (cfg->prefetch_window < 0)
        return tai_error(TINYAI_ERR_INVALID_ARG, "prefetch_window is %d; it must be >= 0",
                         cfg->prefetch_window);
    if (cfg->allocator.alloc && !cfg->allocator.free)
        return tai_error(TINYAI_ERR_INVALID_ARG, "cache allocator has alloc but no free");
    size_t budget = cfg->budget & ~(granule - 1);
    size_t min = tai_cache_min_budget(sizes, n, granule);
    if (budget < min)
        return tai_error(TINYAI_ERR_INVALID_ARG,
                         "cache budget of %zu bytes (%zu in whole %zu-byte granules) is below "
                         "the minimum of %zu bytes: the largest entry rounded up to the granule",
                         cfg->budget, budget, granule, min);

    tai_cache *c = calloc(1, sizeof *c);
    if (!c) return tai_error(TINYAI_ERR_NOMEM, "no memory for the cache");
    c->cfg = *cfg;
    c->n = n;
    c->granule = granule;
    c->ngran = budget / granule;
    c->bytes = budget;
    c->cur = -1;
    c->sched.n = n;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->work, NULL);
    pthread_cond_init(&c->done, NULL);
    pthread_cond_init(&c->taken, NULL);
    for (int q = 0; q < Q_COUNT; q++) c->qhead[q] = c->qtail[q] = -1;
    c->e = calloc((size_t)n + 1, sizeof *c->e);
    c->fr = calloc((size_t)n + 2, sizeof *c->fr);
    c->scratch = calloc((size_t)n + 2, sizeof *c->scratch);
    c->plan = calloc((size_t)n + 1, sizeof *c->plan);
    c->dist = calloc((size_t)n + 1, sizeof *c->dist);
    c->threads = calloc((size_t)threads, sizeof *c->threads);
    TinyAIStatus st;
    if (!c->e || !c->fr || !c->scratch || !c->plan || !c->dist || !c->threads) {
        st = tai_error(TINYAI_ERR_NOMEM, "no memory for a cache of %d entries", n);
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        entry *e = &c->e[i];
        e->size = sizes[i];
        e->gran = granules(sizes[i], granule);
        e->priority = 1.0f;
        e->qnext = e->qprev = -1;
        /* An empty entry needs no room and no load. */
        e->state = e->gran ? TAI_ENTRY_ABSENT : TAI_ENTRY_RESIDENT;
    }
    st = arena_alloc(c);
    if (st != TINYAI_OK) goto fail;
    c->fr[0].off = 0;
    c->fr[0].len = c->ngran;
    c->nfr = 1;
    c->st.budget = c->bytes;
    if (cfg->on_arena) cfg->on_arena(cfg->on_arena_ctx, c->base, c->bytes);
    for (int t = 0; t < threads; t++) {
        int err = tai_thread_create(&c->threads[t], loader_main, c);
        if (err) {
            st = tai_error(TINYAI_ERR_NOMEM, "cannot start cache loader thread %d: %s", t,
                           strerror(err));
            goto fail;
        }
        c->nthreads++;
    }
    *out = c;
    return TINYAI_OK;
fail:
    stop_threads(c);
    cache_free(c);
    return st;
}

void tai_cache_destroy(tai_cache *c) {
    if (!c) return;
    /* Loaders finish the loads they are running, drop queued ones, exit. */
    stop_threads(c);
    cache_free(c);
}

/* ---- Operations --------------------------------------------------------- */

static TinyAIStatus bad_entry(const tai_cache *c, int i) {
    if (!c) return tai_error(TINYAI_ERR_INVALID_ARG, "cache is NULL");
    return tai_error(TINYAI_ERR_INVALID_ARG, "cache entry %d out of range (0..%d)", i, c->n - 1);
}

#define CHECK_ENTRY(c, i) \
    if (!(c) || (i) < 0 || (i) >= (c)->n) return bad_entry((c), (i))

TinyAIStatus tai_cache_set_schedule(tai_cache *c, const int *order, int len, bool cyclic) {
    if (!c) return tai_error(TINYAI_ERR_INVALID_ARG, "cache is NULL");
    tai_sched s, old;
    TinyAIStatus st = tai_sched_build(&s, c->n, order, len, cyclic);
    if (st != TINYAI_OK) return st;
    pthread_mutex_lock(&c->mu);
    old = c->sched;
    c->sched = s;
    c->cur = -1;
    pthread_mutex_unlock(&c->mu);
    tai_sched_free(&old);
    return TINYAI_OK;
}

TinyAIStatus tai_cache_acquire(tai_cache *c, int i, void **ptr) {
    if (ptr) *ptr = NULL;
    CHECK_ENTRY(c, i);
    if (!ptr) return tai_error(TINYAI_ERR_INVALID_ARG, "acquire without an output pointer");
    uint64_t t = tai_now_ns();
    pthread_mutex_lock(&c->mu);
    entry *e = &c->e[i];
    e->access_count++;
    e->last_access = t;
    e->tick = ++c->clock;
    /* The cursor moves to this use of i, if the schedule has one ahead. */
    int64_t q = tai_sched_next(&c->sched, i, c->cur);
    if (q != TAI_SCHED_NEVER) c->cur = q % c->sched.len;
    if (e->state == TAI_ENTRY_RESIDENT)
        c->st.hits++;
    else
        c->st.misses++;
    double stall = 0;
    TinyAIStatus st = ensure_resident(c, i, &stall);
    c->st.stall_seconds += stall;
    if (st == TINYAI_OK) {
        e->in_use++;
        *ptr = buffer(c, e);
    }
    prefetch_ahead(c);
    hand_off(c);
    pthread_mutex_unlock(&c->mu);
    return st;
}

TinyAIStatus tai_cache_release(tai_cache *c, int i) {
    CHECK_ENTRY(c, i);
    TinyAIStatus st = TINYAI_OK;
    pthread_mutex_lock(&c->mu);
    entry *e = &c->e[i];
    if (e->in_use == 0) {
        st = tai_error(TINYAI_ERR_INVALID_ARG, "cache entry %d released but not acquired", i);
    } else if (--e->in_use == 0) {
        /* Prefetch blocked by this entry being in use may go ahead now. */
        prefetch_ahead(c);
        hand_off(c);
    }
    pthread_mutex_unlock(&c->mu);
    return st;
}

TinyAIStatus tai_cache_prefetch(tai_cache *c, int i) {
    CHECK_ENTRY(c, i);
    TinyAIStatus st = TINYAI_OK;
    pthread_mutex_lock(&c->mu);
    if (c->e[i].state == TAI_ENTRY_ABSENT && !c->stop) {
        if (!try_prefetch(c, i, distance(c, i, c->cur)))
            st = tai_error(TINYAI_ERR_NOMEM,
                           "no room for cache entry %d (%zu bytes) now without evicting an "
                           "entry needed sooner",
                           i, c->e[i].size);
    }
    pthread_mutex_unlock(&c->mu);
    return st;
}

TinyAIStatus tai_cache_evict(tai_cache *c, int i) {
    CHECK_ENTRY(c, i);
    TinyAIStatus st = TINYAI_OK;
    pthread_mutex_lock(&c->mu);
    entry *e = &c->e[i];
    while (e->state == TAI_ENTRY_LOADING) {
        uint64_t gen = e->gen;
        while (e->gen == gen) pthread_cond_wait(&c->done, &c->mu);
    }
    if (e->state == TAI_ENTRY_RESIDENT && e->gran > 0) {
        if (e->in_use > 0 || e->waiters > 0 || e->pinned)
            st = tai_error(TINYAI_ERR_RANGE, "cache entry %d is %s and cannot be evicted", i,
                           e->pinned ? "pinned" : "in use");
        else
            evict_locked(c, i);
    }
    pthread_mutex_unlock(&c->mu);
    return st;
}

TinyAIStatus tai_cache_pin(tai_cache *c, int i, bool pin) {
    CHECK_ENTRY(c, i);
    TinyAIStatus st = TINYAI_OK;
    pthread_mutex_lock(&c->mu);
    entry *e = &c->e[i];
    if (!pin) {
        e->pinned = false;
    } else if (!e->pinned) {
        double stall = 0; /* only acquires count as stalls */
        st = ensure_resident(c, i, &stall);
        if (st == TINYAI_OK) e->pinned = true;
    }
    pthread_mutex_unlock(&c->mu);
    return st;
}

TinyAIStatus tai_cache_set_priority(tai_cache *c, int i, float priority) {
    CHECK_ENTRY(c, i);
    if (!isfinite(priority))
        return tai_error(TINYAI_ERR_INVALID_ARG, "priority of cache entry %d is not finite", i);
    pthread_mutex_lock(&c->mu);
    c->e[i].priority = priority;
    pthread_mutex_unlock(&c->mu);
    return TINYAI_OK;
}

void tai_cache_reset_priorities(tai_cache *c) {
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->n; i++) c->e[i].priority = 1.0f;
    pthread_mutex_unlock(&c->mu);
}

/* ---- Inspection --------------------------------------------------------- */

/* The const functions lock too: the mutex is the one mutable part. */
static pthread_mutex_t *mutex_of(const tai_cache *c) { return &((tai_cache *)c)->mu; }

static void info_of(const tai_cache *c, int i, tai_cache_entry_info *out) {
    const entry *e = &c->e[i];
    out->state = e->state;
    out->in_use = e->in_use;
    out->pinned = e->pinned;
    out->priority = e->priority;
    out->ptr = e->state == TAI_ENTRY_RESIDENT ? buffer(c, e) : NULL;
    out->last_access = e->last_access;
    out->access_count = e->access_count;
    out->loads = e->loads;
}

TinyAIStatus tai_cache_entry(const tai_cache *c, int i, tai_cache_entry_info *out) {
    CHECK_ENTRY(c, i);
    if (!out) return tai_error(TINYAI_ERR_INVALID_ARG, "entry info output is NULL");
    pthread_mutex_lock(mutex_of(c));
    info_of(c, i, out);
    pthread_mutex_unlock(mutex_of(c));
    return TINYAI_OK;
}

void tai_cache_snapshot(const tai_cache *c, tai_cache_entry_info *entries,
                        tai_cache_stats *stats) {
    if (!c) return;
    pthread_mutex_lock(mutex_of(c));
    for (int i = 0; entries && i < c->n; i++) info_of(c, i, &entries[i]);
    if (stats) *stats = c->st;
    pthread_mutex_unlock(mutex_of(c));
}

void tai_cache_get_stats(const tai_cache *c, tai_cache_stats *out) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    tai_cache_snapshot(c, NULL, out);
}

void tai_cache_reset_stats(tai_cache *c) {
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    size_t used = c->st.used;
    memset(&c->st, 0, sizeof c->st);
    c->st.used = c->st.peak_used = used;
    c->st.budget = c->bytes;
    pthread_mutex_unlock(&c->mu);
}

void tai_cache_arena(const tai_cache *c, void **base, size_t *size) {
    if (base) *base = c ? c->base : NULL;
    if (size) *size = c ? c->bytes : 0;
}

typedef struct {
    size_t off, len;
    int owner; /* entry, or -1 for a free range */
} tile;

static int tile_cmp(const void *a, const void *b) {
    const tile *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

TinyAIStatus tai_cache_check(const tai_cache *c) {
    if (!c) return tai_error(TINYAI_ERR_INVALID_ARG, "cache is NULL");
    tile *t = malloc(((size_t)c->n + (size_t)c->n + 2) * sizeof *t);
    if (!t) return tai_error(TINYAI_ERR_NOMEM, "no memory to check the cache");
    TinyAIStatus st = TINYAI_OK;
    pthread_mutex_lock(mutex_of(c));
    int nt = 0, loading = 0;
    size_t held = 0;
    for (int i = 0; i < c->n; i++) {
        const entry *e = &c->e[i];
        if (e->in_use < 0 || e->waiters < 0) {
            st = tai_error(TINYAI_ERR_INTERNAL, "cache entry %d has negative use counts", i);
            goto out;
        }
        if (e->gran == 0) {
            if (e->state != TAI_ENTRY_RESIDENT) {
                st = tai_error(TINYAI_ERR_INTERNAL, "empty cache entry %d is not resident", i);
                goto out;
            }
            continue;
        }
        if (e->state == TAI_ENTRY_ABSENT) continue;
        if (e->state == TAI_ENTRY_LOADING) loading++;
        if (e->pinned && e->state != TAI_ENTRY_RESIDENT) {
            st = tai_error(TINYAI_ERR_INTERNAL, "pinned cache entry %d is not resident", i);
            goto out;
        }
        held += e->gran;
        t[nt++] = (tile){e->off, e->gran, i};
    }
    for (int i = 0; i < c->n; i++) {
        const entry *e = &c->e[i];
        if (e->state == TAI_ENTRY_ABSENT && (e->in_use > 0 || e->pinned)) {
            st = tai_error(TINYAI_ERR_INTERNAL, "cache entry %d is in use or pinned but absent", i);
            goto out;
        }
    }
    for (int k = 0; k < c->nfr; k++) t[nt++] = (tile){c->fr[k].off, c->fr[k].len, -1};
    qsort(t, (size_t)nt, sizeof *t, tile_cmp);
    /* Entries and free ranges must tile [0, ngran) exactly: a gap is lost
     * room, an overlap two owners of the same bytes. */
    size_t at = 0;
    for (int k = 0; k < nt; k++) {
        if (t[k].len == 0 || t[k].off != at || t[k].len > c->ngran - at) {
            st = tai_error(TINYAI_ERR_INTERNAL,
                           "cache arena granules [%zu, %zu) (%s %d) do not follow granule %zu "
                           "of %zu",
                           t[k].off, t[k].off + t[k].len, t[k].owner < 0 ? "free range" : "entry",
                           t[k].owner, at, c->ngran);
            goto out;
        }
        if (k > 0 && t[k].owner < 0 && t[k - 1].owner < 0) {
            st = tai_error(TINYAI_ERR_INTERNAL, "free ranges at granule %zu are not coalesced",
                           t[k].off);
            goto out;
        }
        at += t[k].len;
    }
    if (at != c->ngran) {
        st = tai_error(TINYAI_ERR_INTERNAL, "cache arena covered up to granule %zu of %zu", at,
                       c->ngran);
        goto out;
    }
    if (c->st.used != held * c->granule || c->st.used > c->bytes ||
        c->st.peak_used < c->st.used || loading != c->loading) {
        st = tai_error(TINYAI_ERR_INTERNAL,
                       "cache accounting: used %zu, held %zu, budget %zu, peak %zu, loading %d "
                       "counted %d",
                       c->st.used, held * c->granule, c->bytes, c->st.peak_used, c->loading,
                       loading);
        goto out;
    }
out:
    pthread_mutex_unlock(mutex_of(c));
    free(t);
    return st;
}
