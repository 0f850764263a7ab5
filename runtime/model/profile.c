/*
 * runtime/model: a model's profile (<tinyai/profile.h>, profile.h).
 */
#include "runtime/model/profile.h"

#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "offload/cpu/cpu.h"
#include "offload/offload.h"
#include "runtime/model/model.h"

/* Enough for a few thousand tokens of a small model's layers and ops. */
#define TRACE_EVENTS (1u << 21)

static const char *const op_names[TAI_PROF_COUNT] = {
    "embedding", "attn_norm", "q",     "k",      "v",    "rope",     "kv_store", "attention", "o",
    "residual",  "ffn_norm",  "gate",  "up",     "swiglu", "down",   "out_norm", "head",     "transfer",
};

const char *tai_op_name(int op) { return op >= 0 && op < TAI_PROF_COUNT ? op_names[op] : "?"; }

int tinyaiOpProfileCount(void) { return TAI_PROF_COUNT; }

/* ---- counters on every pool thread ------------------------------------------ */

static void open_on_thread(void *ctx, int i, int n) {
    (void)n;
    tai_thread_counters *c = ctx;
    if (i >= TAI_PROF_MAX_THREADS) return;
    /* only thread 0 says why: every thread meets the same machine */
    tai_perfctr_open(&c->thr[i], i == 0 ? c->note : NULL, sizeof c->note);
}

void tai_thread_counters_open(tai_thread_counters *c, tai_device *cpu) {
    memset(c, 0, sizeof *c);
    const int n = tai_cpu_device_threads(cpu);
    c->n_thr = n < TAI_PROF_MAX_THREADS ? n : TAI_PROF_MAX_THREADS;
    for (int t = 0; t < TAI_PROF_MAX_THREADS; t++) c->thr[t].leader = -1;
    tai_cpu_device_each_thread(cpu, open_on_thread, c);
    for (int t = 0; t < c->n_thr; t++)
        for (int k = 0; k < TAI_PERFCTR_COUNT; k++) c->opened |= (c->thr[t].fd[k] >= 0) << k;
}

void tai_thread_counters_read(const tai_thread_counters *c, uint64_t out[TAI_PERFCTR_COUNT]) {
    memset(out, 0, sizeof(uint64_t) * TAI_PERFCTR_COUNT);
    for (int t = 0; t < c->n_thr; t++) {
        uint64_t v[TAI_PERFCTR_COUNT];
        tai_perfctr_read(&c->thr[t], v);
        for (int k = 0; k < TAI_PERFCTR_COUNT; k++) out[k] += v[k];
    }
}

void tai_thread_counters_close(tai_thread_counters *c) {
    for (int t = 0; t < c->n_thr; t++) tai_perfctr_close(&c->thr[t]);
    c->n_thr = 0;
}

static void profile_free(tai_profile *p) {
    if (!p) return;
    tai_thread_counters_close(&p->ctr);
    tai_trace_destroy(p->trace);
    free(p->layers);
    free(p);
}

/* ---- what the forward pass reports --------------------------------------------- */

static bool reads_weights(int op) {
    switch (op) {
    case TAI_PROF_EMBEDDING: case TAI_PROF_Q: case TAI_PROF_K: case TAI_PROF_V: case TAI_PROF_O:
    case TAI_PROF_GATE: case TAI_PROF_UP: case TAI_PROF_DOWN: case TAI_PROF_HEAD:
        return true;
    default:
        return false;
    }
}

void tai_prof_layer_begin(tai_profile *p) {
    p->layer_flops = 0;
    p->layer_bytes = 0;
    if (p->ctr.n_thr) tai_thread_counters_read(&p->ctr, p->ctr_at);
}

void tai_prof_layer_end(tai_profile *p, int layer, int device, uint64_t t0, uint64_t t1,
                        uint64_t stall_ns) {
    const double bytes = p->layer_bytes;
    if (layer < 0 || layer >= p->n_layers) return;
    tai_layer_prof *l = &p->layers[layer];
    l->passes++;
    l->ns += t1 - t0;
    l->stall_ns += stall_ns;
    l->bytes += bytes;
    l->flops += p->layer_flops;
    l->device = device;
    if (p->ctr.n_thr) {
        uint64_t now[TAI_PERFCTR_COUNT];
        tai_thread_counters_read(&p->ctr, now);
        for (int k = 0; k < TAI_PERFCTR_COUNT; k++) l->ctr[k] += now[k] - p->ctr_at[k];
    }
    tai_trace_span(p->trace, "layer", "compute", layer, t0, t1, (uint64_t)bytes);
}

TinyAIStatus tai_prof_op(tai_profile *p, tai_device *dev, int op, uint64_t t0, double bytes,
                         double flops) {
    const TinyAIStatus st = tai_dev_sync(dev);
    const uint64_t t1 = tai_now_ns();
    if (op < 0 || op >= TAI_PROF_COUNT) return st;
    tai_op_prof *o = &p->ops[op];
    o->calls++;
    o->ns += t1 - t0;
    o->bytes += bytes;
    o->flops += flops;
    p->layer_flops += flops;
    if (reads_weights(op)) p->layer_bytes += bytes;
    tai_trace_span(p->trace, op_names[op], "op", -1, t0, t1, 0);
    return st;
}

/* ---- the public API -------------------------------------------------------------- */

TinyAIStatus tinyaiStartProfile(TinyAIModel *m, unsigned flags) {
    if (!m) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiStartProfile: NULL model");
    if (flags & ~(unsigned)(TINYAI_PROFILE_COUNTERS | TINYAI_PROFILE_TRACE))
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiStartProfile: unknown flags 0x%x", flags);
    tai_profile *p = calloc(1, sizeof *p);
    if (p) p->layers = calloc((size_t)m->file->n_layers, sizeof *p->layers);
    if (!p || !p->layers) {
        profile_free(p);
        return tai_error(TINYAI_ERR_NOMEM, "tinyaiStartProfile: out of memory");
    }
    p->flags = flags;
    p->n_layers = m->file->n_layers;
    if (flags & TINYAI_PROFILE_TRACE) {
        p->trace = tai_trace_create(TRACE_EVENTS);
        if (!p->trace) {
            profile_free(p);
            return TINYAI_ERR_NOMEM;
        }
    }
    if (flags & TINYAI_PROFILE_COUNTERS) tai_thread_counters_open(&p->ctr, m->dev);
    tinyaiStopProfile(m);
    profile_free(m->prof_data);
    m->prof_data = p;
    m->prof = p;
    tai_mapped_set_trace(m->mm, p->trace);
    return TINYAI_OK;
}

void tinyaiStopProfile(TinyAIModel *m) {
    if (!m || !m->prof) return;
    tai_mapped_set_trace(m->mm, NULL);
    m->prof = NULL; /* the data stays in prof_data */
}

void tai_profile_free(TinyAIModel *m) {
    tinyaiStopProfile(m);
    profile_free(m->prof_data);
    m->prof_data = NULL;
}

static TinyAIStatus need(const TinyAIModel *m, const void *out, const char *fn) {
    if (!m || !out) return tai_error(TINYAI_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (!m->prof_data)
        return tai_error(TINYAI_ERR_INVALID_ARG, "%s: no profile was started (tinyaiStartProfile)", fn);
    return TINYAI_OK;
}

TinyAIStatus tinyaiGetProfileCounters(const TinyAIModel *m, TinyAIProfileCounters *out) {
    TinyAIStatus st = need(m, out, "tinyaiGetProfileCounters");
    if (st != TINYAI_OK) return st;
    const tai_profile *p = m->prof_data;
    if (!(p->flags & TINYAI_PROFILE_COUNTERS))
        return tai_error(TINYAI_ERR_INVALID_ARG,
                         "tinyaiGetProfileCounters: the profile was started without counters");
    memset(out, 0, sizeof *out);
    out->n = TAI_PERFCTR_COUNT;
    for (int k = 0; k < TAI_PERFCTR_COUNT; k++) {
        out->names[k] = tai_perfctr_name(k);
        out->available[k] = (p->ctr.opened >> k) & 1;
        out->hardware[k] = tai_perfctr_is_hardware(k);
    }
    out->threads = p->ctr.n_thr;
    memcpy(out->note, p->ctr.note, sizeof out->note);
    return TINYAI_OK;
}

TinyAIStatus tinyaiGetLayerProfile(const TinyAIModel *m, int layer, TinyAILayerProfile *out) {
    TinyAIStatus st = need(m, out, "tinyaiGetLayerProfile");
    if (st != TINYAI_OK) return st;
    const tai_profile *p = m->prof_data;
    if (layer < 0 || layer >= p->n_layers)
        return tai_error(TINYAI_ERR_RANGE, "tinyaiGetLayerProfile: layer %d outside 0..%d", layer,
                         p->n_layers - 1);
    const tai_layer_prof *l = &p->layers[layer];
    memset(out, 0, sizeof *out);
    out->layer = layer;
    out->device = m->devs[l->device]->info.name;
    out->passes = l->passes;
    out->seconds = (double)l->ns * 1e-9;
    out->stallSeconds = (double)l->stall_ns * 1e-9;
    out->bytes = l->bytes;
    out->flops = l->flops;
    for (int k = 0; k < TAI_PERFCTR_COUNT && k < TINYAI_PROFILE_MAX_COUNTERS; k++)
        out->counters[k] = l->ctr[k];
    return TINYAI_OK;
}

TinyAIStatus tinyaiGetOpProfile(const TinyAIModel *m, int op, TinyAIOpProfile *out) {
    TinyAIStatus st = need(m, out, "tinyaiGetOpProfile");
    if (st != TINYAI_OK) return st;
    if (op < 0 || op >= TAI_PROF_COUNT)
        return tai_error(TINYAI_ERR_RANGE, "tinyaiGetOpProfile: op %d outside 0..%d", op,
                         TAI_PROF_COUNT - 1);
    const tai_op_prof *o = &m->prof_data->ops[op];
    out->name = op_names[op];
    out->calls = o->calls;
    out->seconds = (double)o->ns * 1e-9;
    out->bytes = o->bytes;
    out->flops = o->flops;
    return TINYAI_OK;
}

TinyAIStatus tinyaiWriteTrace(const TinyAIModel *m, const char *path) {
    if (!m || !path) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiWriteTrace: NULL argument");
    if (!m->prof_data || !m->prof_data->trace)
        return tai_error(TINYAI_ERR_INVALID_ARG,
                         "tinyaiWriteTrace: no profile with TINYAI_PROFILE_TRACE was started");
    return tai_trace_write(m->prof_data->trace, path, m->name[0] ? m->name : "tinyai");
}
