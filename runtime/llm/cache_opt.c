/*
 * runtime/llm: <tinyai/utils/cache_optimization.h>. The settings are the
 * model's CPU device's own kernel tuning (offload/cpu: prefetch distances
 * and the blocked products' K slice, kernels.h tai_kernel_tuning); the
 * statistics are deltas of the weight cache's figures and of counters on
 * the device's threads (runtime/model/profile.h); the layout is a rewrite
 * to a packed .tmai (runtime/llm/rewrite.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tinyai/utils/cache_optimization.h>

#include "core/clock.h"
#include "core/error.h"
#include "offload/cpu/cpu.h"
#include "runtime/format/image.h"
#include "runtime/format/model_file.h"
#include "runtime/llm/llm_internal.h"
#include "runtime/model/profile.h"

/* L2 prefetch runs this many times as far ahead as L1 (the ratio the
 * tuning runs find best on the Xeons measured: 1024 and 4096 bytes). */
#define L2_AHEAD 4
#define MAX_DISTANCE 256 /* lines: 4 x 256 x 64 = the kernels' 64 KiB limit */

static int line_size(void) {
    const long l = sysconf(_SC_LEVEL1_DCACHE_LINESIZE);
    return l > 0 ? (int)l : 64;
}

TinyAICacheConfig tinyaiGetCacheConfig(const TinyAIModel *m) {
    TinyAICacheConfig c = {0, line_size(), false, 0};
    if (!m) return c;
    int l1 = 0, l2 = 0, ks = 0;
    tai_cpu_device_tuning(m->dev, NULL, &l1, &l2, &ks);
    c.block_size = ks;
    c.enable_prefetch = l1 > 0 || l2 > 0;
    c.prefetch_distance = l1 > 0 ? l1 / c.cache_line_size : l2 / (L2_AHEAD * c.cache_line_size);
    return c;
}

bool tinyaiConfigureCacheOptimization(TinyAIModel *m, const TinyAICacheConfig *cfg) {
    if (!m || !cfg) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiConfigureCacheOptimization: NULL argument");
        return false;
    }
    const int line = line_size();
    if (cfg->cache_line_size != 0 && cfg->cache_line_size != line) {
        tai_error(TINYAI_ERR_INVALID_ARG,
                  "cache_line_size %d: this CPU's lines are %d bytes, which the kernels are "
                  "laid out for (0 = this CPU's)", cfg->cache_line_size, line);
        return false;
    }
    if (cfg->block_size < 0 || cfg->block_size > 1024 || cfg->block_size % 32) {
        tai_error(TINYAI_ERR_INVALID_ARG,
                  "block_size %d: 0 (the kernels' defaults) or a multiple of 32 up to 1024",
                  cfg->block_size);
        return false;
    }
    if (cfg->enable_prefetch && (cfg->prefetch_distance < 1 || cfg->prefetch_distance > MAX_DISTANCE)) {
        tai_error(TINYAI_ERR_INVALID_ARG,
                  "prefetch_distance %d: 1..%d cache lines when prefetching is enabled",
                  cfg->prefetch_distance, MAX_DISTANCE);
        return false;
    }
    const int l1 = cfg->enable_prefetch ? cfg->prefetch_distance * line : 0;
    int l2 = cfg->enable_prefetch ? L2_AHEAD * cfg->prefetch_distance * line : 0;
    if (l2 > 65536) l2 = 65536;
    return tai_cpu_device_set_tuning(m->dev, true, l1, l2, cfg->block_size) == TINYAI_OK;
}

/* ---- statistics ----------------------------------------------------------- */

struct tai_cache_stats_state {
    tai_thread_counters ctr;
    uint64_t ctr_last[TAI_PERFCTR_COUNT];
    uint64_t t_last;
    TinyAIMemoryInfo mi_last;
};

void tai_cache_stats_free(TinyAIModel *m) {
    if (!m || !m->cstats) return;
    tai_thread_counters_close(&m->cstats->ctr);
    free(m->cstats);
    m->cstats = NULL;
}

/* now - before, or now when the figures were reset in between */
static uint64_t delta(uint64_t now, uint64_t before) { return now >= before ? now - before : now; }

TinyAICacheStats tinyaiGetCacheStats(const TinyAIModel *cm) {
    TinyAICacheStats s;
    memset(&s, 0, sizeof s);
    s.llcMissRate = -1;
    if (!cm) {
        snprintf(s.note, sizeof s.note, "tinyaiGetCacheStats: NULL model");
        tai_error(TINYAI_ERR_INVALID_ARG, "%s", s.note);
        return s;
    }
    /* the statistics' own state changes: the model's figures do not */
    TinyAIModel *m = (TinyAIModel *)cm;
    const uint64_t now = tai_now_ns();
    TinyAIMemoryInfo mi;
    if (tinyaiGetMemoryInfo(m, &mi) != TINYAI_OK) return s;
    struct tai_cache_stats_state *st = m->cstats;
    const bool first = st == NULL;
    if (first) {
        st = calloc(1, sizeof *st);
        if (!st) {
            snprintf(s.note, sizeof s.note, "tinyaiGetCacheStats: out of memory");
            return s;
        }
        tai_thread_counters_open(&st->ctr, m->dev);
        tai_thread_counters_read(&st->ctr, st->ctr_last);
        st->t_last = m->loaded_ns;
        m->cstats = st;
    }
    const TinyAIMemoryInfo *b = &st->mi_last;
    s.seconds = (double)(now - st->t_last) * 1e-9;
    s.hits = delta(mi.hits, b->hits);
    s.misses = delta(mi.misses, b->misses);
    s.hitRate = s.hits + s.misses ? (double)s.hits / (double)(s.hits + s.misses) : 1.0;
    s.bytesRead = delta(mi.bytesRead, b->bytesRead);
    s.evictions = delta(mi.evictions, b->evictions);
    s.prefetches = delta(mi.prefetches, b->prefetches);
    s.stallSeconds = mi.stallSeconds >= b->stallSeconds ? mi.stallSeconds - b->stallSeconds : mi.stallSeconds;
    uint64_t c[TAI_PERFCTR_COUNT];
    tai_thread_counters_read(&st->ctr, c);
    s.nCounters = TAI_PERFCTR_COUNT;
    int refs = -1, misses = -1;
    for (int k = 0; k < TAI_PERFCTR_COUNT; k++) {
        s.counterNames[k] = tai_perfctr_name(k);
        s.counterAvailable[k] = (st->ctr.opened >> k) & 1;
        s.counters[k] = first ? 0 : delta(c[k], st->ctr_last[k]);
        if (!strcmp(s.counterNames[k], "llc-references") && s.counterAvailable[k]) refs = k;
        if (!strcmp(s.counterNames[k], "llc-misses") && s.counterAvailable[k]) misses = k;
    }
    if (refs >= 0 && misses >= 0 && s.counters[refs])
        s.llcMissRate = (double)s.counters[misses] / (double)s.counters[refs];
    snprintf(s.note, sizeof s.note, "%s", st->ctr.note);
    memcpy(st->ctr_last, c, sizeof c);
    st->mi_last = mi;
    st->t_last = now;
    return s;
}

/* ---- layout ------------------------------------------------------------------ */

static TinyAIStatus write_packed(const tai_model_file *mf, const char *path, const void *ctx) {
    (void)ctx;
    return tai_tmai_write(mf, path);
}

bool tinyaiOptimizeMemoryLayout(TinyAIModel *m) {
    if (!m) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiOptimizeMemoryLayout: NULL model");
        return false;
    }
    bool packed = true;
    for (int l = 0; packed && l < m->file->n_layers; l++) packed = tai_layer_image_in_file(m->file, l);
    if (packed) return true;
    return tai_model_rewrite(m, NULL, "tinyaiOptimizeMemoryLayout", write_packed, NULL) == TINYAI_OK;
}
