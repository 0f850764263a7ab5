/*
 * runtime/cache: the weight cache. A fixed number of entries (the layers of a
 * model), each of a known size, loaded on demand into one memory arena of
 * `budget` bytes by loader threads, and evicted when space is needed. The
 * cache never holds more than its budget: the arena is allocated once at
 * creation and every buffer lies inside it.
 *
 * Eviction.
 *   - TAI_CACHE_BELADY (the default): the caller gives the schedule, the
 *     order in which entries will be needed (tai_cache_set_schedule), cyclic
 *     for token-by-token decoding. Each acquire moves a cursor along it. The
 *     victim is the unpinned entry whose next use is furthest in the future
 *     (an entry that never appears again is furthest of all): Belady's MIN,
 *     optimal for a known sequence. On the cyclic access of decoding, n
 *     equal entries with room for k < n, it keeps most of the cache across
 *     cycles and rotates the rest: between n - k and n - k + 1 misses per
 *     cycle (n (n - k) / (n - 1) on average), where LRU evicts exactly the
 *     entry needed next and so misses all n every time.
 *   - TAI_CACHE_LRU: the least recently acquired unpinned entry; kept for
 *     comparison.
 *   Priorities come first: the victim is taken from the entries with the
 *   lowest priority (default 1.0), and only among equal priorities does the
 *   policy decide. Pinned entries (tai_cache_pin) and entries in use (between
 *   acquire and release) are never evicted.
 *
 * Placement in the arena: first fit over an address-ordered free list with
 * coalescing, in units of `granule` bytes. When no free range fits, victims
 * are evicted in policy order until one does.
 *
 * Prefetch. After each acquire at schedule position p, the loader threads
 * are given the next entries of the schedule that are not resident, up to
 * `prefetch_window` of them (loads already in flight count toward the
 * window); the walk stops at the first entry for which no room can be made,
 * and is tried again when a release ends the last use of an entry (an entry
 * in use may be what blocked it). A prefetch never evicts an entry needed
 * before the entry being prefetched (it would be read again sooner than the
 * one it makes room for), nor one of a higher priority than the prefetched
 * entry's (a plan that marks what must stay, as the model's memory-opt plan
 * does, keeps it against every prefetch). With `aggressive_prefetch` false (the default) it
 * is also conservative: it only evicts what a demand load at the time the
 * entry is needed would evict too, so prefetching never adds reads (the
 * number of bytes read equals demand-only Belady); it only moves reads
 * earlier. The candidates of that demand load are the entries resident now,
 * those in use (released by then) and those used before the prefetched entry
 * (compared by their next use after it). On a cyclic schedule with a full
 * cache this means that the next entry is loaded when the one before it is
 * released: the victim demand would choose is the entry just used. With
 * `aggressive_prefetch` true it may evict any entry needed after the
 * prefetched one (of no higher priority), trading extra reads for overlap
 * with the use of the current entry: streaming with the fewest resident
 * entries, and memory-opt, whose plan raises the priority of the entries to
 * keep so that only the room left for streaming turns over.
 *
 * Loading: `load` is called on a loader thread with the destination buffer
 * and must fill it completely; it returns TINYAI_OK or an error status with
 * the thread's error message set (core/error.h). The cache copies
 * that message and returns it (prefixed by nothing) from the acquire that
 * needed the entry; the entry is then not resident, and a later acquire
 * tries again.
 *
 * Thread safety: every function may be called from any thread; one mutex
 * guards the state and loads run outside it. Acquire blocks until the entry
 * is loaded.
 */
#ifndef TAI_RUNTIME_CACHE_CACHE_H
#define TAI_RUNTIME_CACHE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tinyai/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { TAI_CACHE_BELADY = 0, TAI_CACHE_LRU = 1 } tai_cache_policy;

/* "belady" / "lru"; parse returns -1 for anything else. */
const char *tai_cache_policy_name(tai_cache_policy p);
int tai_cache_policy_parse(const char *name);

/* Fills dst (size bytes) with entry `entry`. Called on a loader thread. */
typedef TinyAIStatus (*tai_cache_load_fn)(void *ctx, int entry, void *dst, size_t size);

/* The arena's memory. alloc returns `size` bytes aligned to at least 4096
 * (or NULL); free gives it back. NULL alloc: an anonymous mmap. */
typedef struct {
    void *(*alloc)(void *ctx, size_t size);
    void (*free)(void *ctx, void *p, size_t size);
    void *ctx;
} tai_cache_allocator;

typedef struct {
    size_t budget;              /* arena bytes; rounded down to granule */
    size_t granule;             /* allocation unit, and the alignment of every
                                   buffer (for O_DIRECT); 0 = 4096; a power of
                                   two, at least 4096 */
    tai_cache_policy policy;
    int loader_threads;         /* 1..16; 0 = 1 */
    int prefetch_window;        /* entries loaded ahead; 0 = no prefetch */
    bool aggressive_prefetch;
    tai_cache_load_fn load;     /* required */
    void *load_ctx;
    tai_cache_allocator allocator;
    /* Called once with the arena right after it is allocated (e.g. to
     * register it with the I/O engines); may be NULL. */
    void (*on_arena)(void *ctx, void *base, size_t size);
    void *on_arena_ctx;
} tai_cache_config;

typedef struct tai_cache tai_cache;

/* The smallest budget with which every entry can be acquired when nothing
 * else is in use: the largest size rounded up to the granule, and at least
 * one granule (granule 0 = 4096; SIZE_MAX for a granule that is not a power
 * of two, or when the rounding overflows). Overlapping a load with the use
 * of another entry needs more (see the runtime's memory planning); with less
 * room than that, acquire waits for loads in flight to finish and evicts
 * them, and fails with NOMEM only if the entries in use or pinned leave no
 * free range large enough. */
size_t tai_cache_min_budget(const size_t *sizes, int n, size_t granule);

/* Creates the cache for n entries of the given sizes (bytes; 0 allowed: an
 * empty entry is always resident and acquires as a non-NULL pointer to a
 * zero-length buffer). Fails with TINYAI_ERR_INVALID_ARG if the budget is
 * below tai_cache_min_budget (the message states the minimum), or NOMEM.
 * Starts the loader threads. Freed by tai_cache_destroy. */
TinyAIStatus tai_cache_create(const tai_cache_config *cfg, int n, const size_t *sizes,
                              tai_cache **out);
/* Waits for loads in flight (queued loads not started yet are dropped),
 * stops the threads, frees the arena. Entries still acquired are a caller
 * bug: their pointers dangle afterwards. Accepts NULL. */
void tai_cache_destroy(tai_cache *c);

/* Records every load (a span on its loader thread), prefetch and eviction
 * in t from now on (NULL: stops). The trace must outlive its use. */
struct tai_trace;
void tai_cache_set_trace(tai_cache *c, struct tai_trace *t);

/* The order in which entries will be acquired (each 0..n-1, repeats
 * allowed); cyclic: after the last comes the first again. Resets the cursor
 * to before position 0. Without a schedule, Belady degrades to LRU. */
TinyAIStatus tai_cache_set_schedule(tai_cache *c, const int *order, int len, bool cyclic);

/* Loads the entry if needed (waiting for a prefetch in flight), marks it in
 * use and returns its buffer. Acquires nest: each must be matched by one
 * release. If the entry is the next one at the schedule cursor (or appears
 * later in the schedule), the cursor moves to that position and prefetch is
 * started. Errors: INVALID_ARG (index), the load's error, NOMEM if it cannot
 * fit because everything else is pinned or in use. */
TinyAIStatus tai_cache_acquire(tai_cache *c, int entry, void **ptr);
/* Ends one use. INVALID_ARG if the entry is not in use (double release). */
TinyAIStatus tai_cache_release(tai_cache *c, int entry);

/* Starts loading the entry in the background if it is not resident or
 * loading and room can be made (under the prefetch rules above with the
 * entry's next use). Returns OK (also when nothing was needed), INVALID_ARG,
 * or NOMEM when no room can be made now. */
TinyAIStatus tai_cache_prefetch(tai_cache *c, int entry);
/* Drops the entry now if it is resident and not in use or pinned. Returns
 * OK, INVALID_ARG (index), or RANGE if it is in use or pinned. A load in
 * flight is waited for first. */
TinyAIStatus tai_cache_evict(tai_cache *c, int entry);

/* Pinned entries are loaded now (like acquire, but neither counted as a hit
 * or miss nor moving the cursor) and never evicted until unpinned. Pinning
 * more than fits fails with NOMEM and leaves the entry unpinned and the
 * cache unchanged (nothing is evicted in vain); a failed load returns its
 * error. Unpinning an entry that is not pinned is OK. */
TinyAIStatus tai_cache_pin(tai_cache *c, int entry, bool pin);
/* INVALID_ARG for a priority that is not finite. */
TinyAIStatus tai_cache_set_priority(tai_cache *c, int entry, float priority);
/* Every priority back to 1.0 (pins are kept). */
void tai_cache_reset_priorities(tai_cache *c);

typedef enum {
    TAI_ENTRY_ABSENT = 0,
    TAI_ENTRY_LOADING = 1,
    TAI_ENTRY_RESIDENT = 2,
} tai_entry_state;

typedef struct {
    tai_entry_state state;
    int in_use;            /* outstanding acquires */
    bool pinned;
    float priority;
    void *ptr;             /* buffer while resident, else NULL */
    uint64_t last_access;  /* monotonic nanoseconds of the last acquire */
    uint64_t access_count; /* acquires */
    uint64_t loads;        /* times loaded */
} tai_cache_entry_info;

TinyAIStatus tai_cache_entry(const tai_cache *c, int entry, tai_cache_entry_info *out);

typedef struct {
    uint64_t hits;          /* acquires that found the entry resident */
    uint64_t misses;        /* acquires that had to load or wait for a load
                               (failed ones too) */
    uint64_t prefetches;    /* loads started by prefetch */
    uint64_t loads;         /* loads completed */
    uint64_t load_errors;
    uint64_t evictions;
    uint64_t bytes_read;    /* sum of the sizes of completed loads */
    double stall_seconds;   /* time acquire spent waiting for loads */
    double load_seconds;    /* time loader threads spent in load() */
    size_t used;            /* bytes of resident + loading entries now, each
                               rounded up to the granule (arena bytes held) */
    size_t peak_used;
    size_t budget;          /* arena bytes */
} tai_cache_stats;

void tai_cache_get_stats(const tai_cache *c, tai_cache_stats *out);
void tai_cache_reset_stats(tai_cache *c); /* counters and peak; not `used` */
/* The arena (for tests: every buffer lies inside it). */
void tai_cache_arena(const tai_cache *c, void **base, size_t *size);

/* Every entry's info (entries: n of them, or NULL) and the stats (or NULL)
 * taken at one instant, under one hold of the lock; for checks that compare
 * entries with each other while other threads use the cache. */
void tai_cache_snapshot(const tai_cache *c, tai_cache_entry_info *entries,
                        tai_cache_stats *stats);

/* Checks the cache's invariants (for tests, like TFLite Micro's planner's
 * overlap check): the buffers of resident and loading entries and the free
 * ranges tile the arena exactly (no overlap, nothing lost, free ranges
 * coalesced), `used` is the sum of those buffers and within the budget,
 * pinned entries are resident. OK, or INTERNAL naming the first violation;
 * NOMEM if it cannot allocate its scratch. */
TinyAIStatus tai_cache_check(const tai_cache *c);

#ifdef __cplusplus
}
#endif

#endif /* TAI_RUNTIME_CACHE_CACHE_H */
