/*
 * runtime/sched: the memory plan. Splits the memory limit between the
 * weight cache and everything else (sessions' KV caches and logits, the
 * shared workspace of activations and scratch, the loaders' staging
 * buffers), chooses the execution mode, and sizes and creates the cache.
 *
 * The contract: cache budget + staging + workspace + sessions + the model's
 * tables (tokenizer, metadata) <= limit. The
 * least limit a model runs in is everything but the cache plus the largest
 * set of layers held at once (one layer; for a tied head, the head and the
 * embedding together). Below it, planning fails at once with that minimum.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "runtime/model/model.h"
#include "runtime/sched/sched.h"

#define MAX_UBATCH 512
#define MIN_UBATCH 16
#define PROBE_MAX (8u << 20) /* small: the probe is resident too */
#define KEEP_PRIORITY 2.0f   /* memory-opt's fixed set (above the default 1) */

static size_t add_sat(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

/* The layers held at once at most: one, or the tied head with the
 * embedding. The head is acquired second (llama.c), into what the embedding
 * leaves free of the arena; that may be split in two around it, so twice
 * the head's size guarantees one part holds it. */
static size_t min_cache(const TinyAIModel *m) {
    size_t largest = tai_mapped_largest_image_bytes(m->mm);
    if (!m->tied) return largest;
    const int nl = m->hp.n_layer;
    size_t both = tai_mapped_layer_room(m->mm, 0) + 2 * tai_mapped_layer_room(m->mm, nl + 1);
    return both > largest ? both : largest;
}

/* What streaming needs to overlap: the two largest layers. */
static size_t stream_cache(const TinyAIModel *m) {
    size_t a = 0, b = 0;
    for (int l = 0; l < m->hp.n_layer + 2; l++) {
        size_t s = tai_mapped_layer_room(m->mm, l);
        if (s > a) {
            b = a;
            a = s;
        } else if (s > b) {
            b = s;
        }
    }
    size_t need = a + b, mc = min_cache(m);
    return need > mc ? need : mc;
}

/* Measures storage read bandwidth (the engine's way: O_DIRECT into huge
 * pages) and memory read bandwidth (summing a buffer of the same size).
 * Bytes per second; 0 when a probe cannot run. */
static void probe(TinyAIModel *m, size_t cap, double *storage, double *memory) {
    *storage = *memory = 0;
    size_t n = cap < PROBE_MAX ? cap : PROBE_MAX;
    n &= ~(size_t)((1u << 20) - 1);
    if (n < (1u << 20)) return;
    *storage = tai_mapped_probe_bandwidth(m->mm, n);
    uint64_t *w = malloc(n);
    if (!w) return;
    memset(w, 1, n);
    volatile uint64_t sink = 0;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double a = tai_now_s();
        uint64_t sum = 0;
        for (size_t i = 0; i < n / 8; i++) sum += w[i];
        sink += sum;
        double b = tai_now_s();
        if (b > a && (double)n / (b - a) > best) best = (double)n / (b - a);
    }
    *memory = best;
    free(w);
}

static const char *human(double b, char *buf, size_t n) {
    if (b >= 1e9)
        snprintf(buf, n, "%.2f GB", b / 1e9);
    else
        snprintf(buf, n, "%.1f MB", b / 1e6);
    return buf;
}

/* Memory-opt under Belady, on the cyclic schedule of decoding. Belady on a
 * cycle keeps a fixed set of layers and turns the rest over in the room
 * left; with room for one layer only, the next one is read once the current
 * one is done, and storage idles while it computes. This chooses the fixed
 * set, `keep`, by the time a cycle takes: storage reads every layer outside
 * it once per cycle, and each step from one streamed layer to the next whose
 * two layers do not fit in the room together also waits for the first to
 * be computed, counted as an eighth of its bytes (a layer computes in a
 * small fraction of the time it takes to read). Candidates keep the k
 * largest layers, for each k, then fill the rest in schedule order up to a
 * room that holds the two largest layers left out, or the largest and the
 * smallest, or the largest alone. A candidate must read no more per cycle
 * than demand-only Belady may, the whole model minus the budget plus its
 * largest layer: overlap is bought with reads only within that. Returns
 * the bytes kept, 0 when no candidate qualifies (or everything fits). */
typedef struct {
    int n, len;
    const int *order;
    const size_t *sz;
    size_t budget, all;
    size_t max_read; /* bytes a cycle may read */
} keep_problem;

/* Bytes-equivalent time of one cycle with `in` kept; SIZE_MAX if the room
 * cannot hold some layer left out. */
static size_t keep_cost(const keep_problem *kp, const unsigned char *in, unsigned char *seen) {
    size_t kept = 0, largest = 0, cost = 0;
    memset(seen, 0, (size_t)kp->n);
    int first = -1, prev = -1;
    for (int k = 0; k < kp->len; k++) {
        const int l = kp->order[k];
        if (seen[l]) continue;
        seen[l] = 1;
        if (in[l]) {
            kept += kp->sz[l];
            continue;
        }
        if (kp->sz[l] > largest) largest = kp->sz[l];
        if (first < 0) first = l;
        prev = l;
    }
    if (kept > kp->budget || first < 0) return SIZE_MAX;
    const size_t room = kp->budget - kept;
    if (largest > room) return SIZE_MAX;
    cost = kp->all - kept;
    if (cost > kp->max_read) return SIZE_MAX;
    /* the steps between streamed layers, cyclically */
    memset(seen, 0, (size_t)kp->n);
    int a = prev;
    for (int k = 0; k < kp->len; k++) {
        const int l = kp->order[k];
        if (in[l] || seen[l]) continue;
        seen[l] = 1;
        if (kp->sz[a] + kp->sz[l] > room) cost += kp->sz[a] / 8;
        a = l;
    }
    return cost;
}

static size_t fixed_set(const TinyAIModel *m, const int *order, int len, size_t budget,
                        unsigned char *keep) {
    const int n = m->file->n_layers;
    size_t *sz = calloc((size_t)n, sizeof *sz);
    int *big = malloc((size_t)n * sizeof *big), nb = 0;
    unsigned char *in = calloc((size_t)n, 1), *try = calloc((size_t)n, 1),
                  *seen = calloc((size_t)n, 1);
    size_t best_cost = SIZE_MAX, best = 0, all = 0, smallest = SIZE_MAX;
    if (!sz || !big || !in || !try || !seen) goto out;
    for (int k = 0; k < len; k++) {
        const int l = order[k];
        if (in[l]) continue;
        in[l] = 1;
        sz[l] = tai_mapped_layer_room(m->mm, l);
        all += sz[l];
        if (sz[l] < smallest) smallest = sz[l];
        big[nb++] = l;
    }
    if (all <= budget || nb < 2) goto out;
    const size_t whole = tai_mapped_total_image_bytes(m->mm);
    const size_t over = whole > budget ? whole - budget : 0;
    const keep_problem kp = {n, len, order, sz, budget, all,
                             over + tai_mapped_largest_image_bytes(m->mm)};
    /* largest first, stable: schedule order among equal sizes */
    for (int i = 1; i < nb; i++)
        for (int j = i; j > 0 && sz[big[j]] > sz[big[j - 1]]; j--) {
            int t = big[j];
            big[j] = big[j - 1];
            big[j - 1] = t;
        }
    for (int forced = 0; forced < nb; forced++) {
        const size_t rooms[3] = {sz[big[forced]] + (forced + 1 < nb ? sz[big[forced + 1]] : 0),
                                 sz[big[forced]] + smallest, sz[big[forced]]};
        for (int r = 0; r < 3; r++) {
            if (rooms[r] > budget) continue;
            const size_t cap = budget - rooms[r];
            size_t kept = 0;
            memset(try, 0, (size_t)n);
            for (int i = 0; i < forced; i++) {
                try[big[i]] = 1;
                kept += sz[big[i]];
            }
            if (kept > cap) continue;
            for (int k = 0; k < len; k++) {
                const int l = order[k];
                if (try[l] || l == big[forced] || kept + sz[l] > cap) continue;
                try[l] = 1;
                kept += sz[l];
            }
            const size_t cost = kept > 0 ? keep_cost(&kp, try, seen) : SIZE_MAX;
            if (cost < best_cost) {
                best_cost = cost;
                best = kept;
                memcpy(keep, try, (size_t)n);
            }
        }
    }
out:
    free(sz);
    free(big);
    free(in);
    free(try);
    free(seen);
    return best;
}

TinyAIStatus tai_model_plan(TinyAIModel *m, int n_ctx, int n_seq) {
    const size_t limit = m->cfg.memoryLimit;
    const size_t total = tai_mapped_total_image_bytes(m->mm);
    const size_t staging = tai_mapped_staging_bytes(m->mm);
    /* columns per batch: the full 512 without a limit; under one, as many
     * as keep the activations within an eighth of it and the whole within
     * the limit. The minimum is reported at the narrowest batch, so that a
     * limit of exactly that minimum plans (narrow) instead of failing. */
    const size_t sess = tai_session_bytes(m, n_ctx) * (size_t)n_seq;
    const size_t fixed = add_sat(add_sat(add_sat(sess, staging), min_cache(m)), m->fixed_bytes);
    int ub = MAX_UBATCH < n_ctx ? MAX_UBATCH : n_ctx;
    if (limit > 0)
        while (ub > MIN_UBATCH && ub / 2 >= n_seq &&
               (tai_workspace_bytes(m, ub, n_ctx, n_seq) > limit / 8 ||
                add_sat(fixed, tai_workspace_bytes(m, ub, n_ctx, n_seq)) > limit))
            ub /= 2;
    if (ub < n_seq) ub = n_seq;
    const size_t ws = tai_workspace_bytes(m, ub, n_ctx, n_seq);
    const size_t runtime = add_sat(add_sat(add_sat(ws, sess), staging), m->fixed_bytes);
    const size_t minimum = add_sat(runtime, min_cache(m));
    char a[32], b[32], c[32], d[32], e[32];
    if (limit > 0 && limit < minimum)
        return tai_error(TINYAI_ERR_RANGE,
                         "memory limit %zu bytes is below the minimum of %zu bytes for this model "
                         "(%s of layers held at once, %s for %d session(s) of %d tokens, %s of "
                         "activations, %s of staging, %s of tokenizer and tables)",
                         limit, minimum, human((double)min_cache(m), a, sizeof a),
                         human((double)sess, b, sizeof b), n_seq, n_ctx,
                         human((double)ws, c, sizeof c), human((double)staging, d, sizeof d),
                         human((double)m->fixed_bytes, e, sizeof e));
    const size_t avail = limit > 0 ? limit - runtime : SIZE_MAX;

    TinyAIExecutionMode mode = m->cfg.mode;
    size_t budget = 0;
    m->mode_reason[0] = 0;
    if (mode == TINYAI_EXEC_ADAPTIVE) {
        if (total <= avail) {
            mode = TINYAI_EXEC_NORMAL;
            snprintf(m->mode_reason, sizeof m->mode_reason,
                     "the whole model (%s) fits in the limit", human((double)total, a, sizeof a));
        } else {
            double sbw = 0, mbw = 0;
            probe(m, limit / 16, &sbw, &mbw);
            if (avail <= stream_cache(m) + stream_cache(m) / 2 || (sbw > 0 && sbw >= 0.9 * mbw)) {
                mode = TINYAI_EXEC_STREAMING;
                snprintf(m->mode_reason, sizeof m->mode_reason,
                         avail <= stream_cache(m) + stream_cache(m) / 2
                             ? "the limit leaves room for little more than the layers in flight"
                             : "storage (%s/s) reads about as fast as memory (%s/s)",
                         human(sbw, a, sizeof a), human(mbw, b, sizeof b));
            } else {
                mode = TINYAI_EXEC_MEMORY_OPT;
                snprintf(m->mode_reason, sizeof m->mode_reason,
                         "the model (%s) does not fit in the %s left for weights; storage reads "
                         "%s/s against memory's %s/s, so caching what fits saves reads",
                         human((double)total, a, sizeof a), human((double)avail, b, sizeof b),
                         human(sbw, c, sizeof c), human(mbw, d, sizeof d));
            }
        }
    }
    tai_mapped_plan_t p = {0};
    p.policy = m->cfg.cachePolicy;
    p.prefetch_window = m->cfg.prefetchWindow < 0   ? 0
                        : m->cfg.prefetchWindow > 0 ? m->cfg.prefetchWindow
                                                    : 1;
    switch (mode) {
    case TINYAI_EXEC_NORMAL:
        if (total > avail)
            return tai_error(TINYAI_ERR_RANGE,
                             "normal mode keeps every layer resident: %zu bytes of weights plus "
                             "%zu for the sessions need a limit of at least %zu bytes, not %zu "
                             "(use memory-opt or streaming)",
                             total, runtime, add_sat(total, runtime), limit);
        budget = total;
        p.prefetch_window = 0;
        p.resident = m->owns_mm; /* pinned whole below (a borrowed model is only loaded) */
        break;
    case TINYAI_EXEC_MEMORY_OPT:
        budget = avail < total ? avail : total;
        break;
    case TINYAI_EXEC_STREAMING:
        budget = stream_cache(m);
        if (budget > avail) budget = avail;
        p.aggressive = true;
        break;
    default:
        return tai_error(TINYAI_ERR_INVALID_ARG, "unknown execution mode %d", (int)mode);
    }
    if (budget < min_cache(m)) budget = min_cache(m);
    p.budget = budget;
    /* the workspace first: sessions created after the plan are checked
     * against it */
    TinyAIStatus st = tai_workspace_alloc(m, ub, n_ctx, n_seq);
    if (st != TINYAI_OK) return st;
    /* Without every layer resident, an untied embedding is looked up by
     * reading the rows a step needs (llama.c), not by streaming the whole
     * table through the cache every token. Checking checksums on every load
     * keeps it a layer, loaded and checked whole. */
    m->emb_rows = mode != TINYAI_EXEC_NORMAL && budget < total && !m->tied &&
                  !m->cfg.verifyChecksums;
    int order[1024 + 3];
    const int len = tai_llama_schedule(m, order);
    unsigned char keep[1024 + 2] = {0};
    const bool keep_set = mode == TINYAI_EXEC_MEMORY_OPT && p.policy == TINYAI_CACHE_BELADY &&
                       fixed_set(m, order, len, budget, keep) > 0;
    if (keep_set) p.aggressive = true;
    st = tai_mapped_plan(m->mm, &p);
    if (st != TINYAI_OK) return st;
    st = tai_mapped_set_schedule(m->mm, order, len, true);
    if (st != TINYAI_OK) return st;
    for (int l = 0; keep_set && l < m->file->n_layers; l++)
        if (keep[l]) tinyaiSetLayerPriority(m->mm, l, KEEP_PRIORITY);
    /* The fixed set is read now, into the empty arena: first fit places it
     * at the start, in one piece, and leaves the room for streaming in one
     * piece after it. Loaded as decoding first uses them, kept and streamed
     * layers would interleave and split that room. */
    for (int k = 0; keep_set && k < len; k++) {
        const int l = order[k];
        if (!keep[l] || tai_mapped_layer_state(m->mm, l) != TAI_ENTRY_ABSENT) continue;
        void *img = NULL;
        st = tai_mapped_acquire(m->mm, l, &img);
        if (st == TINYAI_OK) st = tai_mapped_release(m->mm, l);
        if (st != TINYAI_OK) return st;
    }
    m->mode = mode;
    m->cache_budget = budget;
    m->min_bytes = minimum;
    m->plan_ctx = n_ctx;
    m->plan_seqs = n_seq;
    m->planned = 1;
    if (mode == TINYAI_EXEC_NORMAL) {
        const double t0 = tai_now_s();
        /* In a background load of an untied model, the head (as large as
         * the embedding table) is read first and the table last: a pass
         * that starts while the table loads reads the rows it needs from
         * the file (llama.c), so the first token waits for every other
         * layer only, and the final reads before it are blocks, which one
         * loader reads in less time than the head. */
        const bool untied = !m->tied && m->emb_tensor;
        const int first = untied ? m->hp.n_layer + 1 : -1, last = untied ? 0 : -1;
        if (m->owns_mm && m->cfg.loadInBackground) {
            st = tai_mapped_pin_all_start(m->mm, first, last);
        } else if (m->owns_mm) {
            /* no pass before every layer is in: the file's order, the
             * table beside the rest */
            st = tai_mapped_pin_all(m->mm, -1, -1);
        } else {
            /* A borrowed mapped model (the forward scheduler's) outlives
             * this model, and pins would outlive it too: they cannot be
             * undone, and a held layer blocks the next re-plan. Every layer
             * is loaded instead; the budget holds them all, so none is
             * evicted. */
            for (int l = 0; st == TINYAI_OK && l < m->file->n_layers; l++) {
                void *img = NULL;
                st = tai_mapped_acquire(m->mm, l, &img);
                if (st == TINYAI_OK) st = tai_mapped_release(m->mm, l);
            }
        }
        m->load_seconds = tai_now_s() - t0;
        if (st != TINYAI_OK) return st;
    }
    tai_model_current_bytes(m);
    return TINYAI_OK;
}
