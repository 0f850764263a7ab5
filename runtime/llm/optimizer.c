/*
 * runtime/llm/optimizer.c: the memory optimizer
 * (<tinyai/utils/memory_optimizer.h>): its tensor arena for the caller's
 * functions (core/ranges.h, first fit), the activation planning switch of
 * the models it optimizes, and fitting a model into a budget through the
 * model's memory plan (runtime/sched/memplan.c), trying the choices the
 * tradeoff prefers first.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <tinyai/utils/memory_optimizer.h>

#include "core/error.h"
#include "core/ranges.h"
#include "runtime/llm/llm_internal.h"
#include "runtime/model/model.h"
#include "runtime/sched/sched.h"

#define MAX_TENSORS 4096

struct TinyAIMemoryOptimizer {
    TinyAIMemoryOptimizerConfig cfg;
    uint8_t *arena;
    size_t arena_size;
    tai_ranges ranges;
    size_t bump;         /* reuse off: the next fresh byte */
    int in_function;
    struct {
        size_t off, size;
    } live[MAX_TENSORS];
    int n_live;
    size_t used, peak, requested;
    uint64_t count;
    TinyAIMemoryOptimizerChoice choice;
    int have_choice;
};

TinyAIMemoryOptimizer *tinyaiCreateMemoryOptimizer(const TinyAIMemoryOptimizerConfig *c) {
    if (!c) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiCreateMemoryOptimizer: NULL config");
        return NULL;
    }
    if (!(c->memory_speed_tradeoff >= 0.0f && c->memory_speed_tradeoff <= 1.0f)) {
        tai_error(TINYAI_ERR_INVALID_ARG, "memory_speed_tradeoff %g is outside [0, 1]",
                  (double)c->memory_speed_tradeoff);
        return NULL;
    }
    TinyAIMemoryOptimizer *o = calloc(1, sizeof *o);
    if (!o) {
        tai_error(TINYAI_ERR_NOMEM, "out of memory");
        return NULL;
    }
    o->cfg = *c;
    if (c->max_memory_budget > 0) {
        void *m = mmap(NULL, c->max_memory_budget, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED || tai_ranges_init(&o->ranges, c->max_memory_budget, 64) != 0) {
            if (m != MAP_FAILED) munmap(m, c->max_memory_budget);
            free(o);
            tai_error(TINYAI_ERR_NOMEM, "cannot reserve an optimizer arena of %zu bytes",
                      c->max_memory_budget);
            return NULL;
        }
        o->arena = m;
        o->arena_size = c->max_memory_budget;
    }
    return o;
}

void tinyaiFreeMemoryOptimizer(TinyAIMemoryOptimizer *o) {
    if (!o) return;
    if (o->arena) munmap(o->arena, o->arena_size);
    tai_ranges_free(&o->ranges);
    free(o);
}

TinyAIMemoryStats tinyaiGetMemoryOptimizerStats(const TinyAIMemoryOptimizer *o) {
    TinyAIMemoryStats s;
    memset(&s, 0, sizeof s);
    if (!o) return s;
    s.current_usage = o->used;
    s.peak_usage = o->peak;
    s.budget = o->arena_size;
    s.total_allocated = o->requested;
    s.allocation_count = o->count;
    if (o->arena) {
        const size_t fb = tai_ranges_free_bytes(&o->ranges);
        s.fragmentation_ratio = fb ? 1.0 - (double)tai_ranges_largest(&o->ranges) / (double)fb : 0.0;
    }
    return s;
}

void tinyaiSetMemorySpeedTradeoff(TinyAIMemoryOptimizer *o, float t) {
    if (!o) return;
    o->cfg.memory_speed_tradeoff = !(t >= 0.0f) ? 0.0f : t > 1.0f ? 1.0f : t;
}

void tinyaiEnableInPlaceOperations(TinyAIMemoryOptimizer *o, bool enable) {
    if (o) o->cfg.enable_in_place_ops = enable;
}

/* ---- tensors for the caller's functions ---- */

void *tinyaiOptimizerAcquire(TinyAIMemoryOptimizer *o, size_t bytes) {
    if (!o || !o->in_function) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiOptimizerAcquire: only inside a function run by "
                  "tinyaiExecuteWithTensorReuse");
        return NULL;
    }
    if (!o->arena) {
        tai_error(TINYAI_ERR_NOMEM, "tinyaiOptimizerAcquire: the optimizer has no arena "
                  "(max_memory_budget is 0)");
        return NULL;
    }
    if (bytes == 0 || o->n_live == MAX_TENSORS) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiOptimizerAcquire: %s",
                  bytes ? "too many tensors at once" : "0 bytes");
        return NULL;
    }
    const size_t size = (bytes + 63) & ~(size_t)63;
    size_t off = SIZE_MAX;
    if (o->cfg.enable_tensor_reuse) {
        off = tai_ranges_take(&o->ranges, (uintptr_t)o->arena, size, 64);
    } else if (o->arena && o->bump + size <= o->arena_size) { /* fresh bytes only */
        off = o->bump;
        o->bump += size;
    }
    if (off == SIZE_MAX) {
        tai_error(TINYAI_ERR_NOMEM, "tinyaiOptimizerAcquire: %zu bytes do not fit in the %zu-byte "
                  "arena (%zu in use%s)", bytes, o->arena_size, o->used,
                  o->cfg.enable_tensor_reuse ? "" : "; tensor reuse is off");
        return NULL;
    }
    o->live[o->n_live].off = off;
    o->live[o->n_live].size = size;
    o->n_live++;
    o->used += size;
    if (o->used > o->peak) o->peak = o->used;
    o->requested += size;
    o->count++;
    return o->arena + off;
}

bool tinyaiOptimizerRelease(TinyAIMemoryOptimizer *o, void *t) {
    if (!o || !t || !o->arena) return false;
    const uintptr_t a = (uintptr_t)t, lo = (uintptr_t)o->arena;
    for (int i = 0; a >= lo && i < o->n_live; i++)
        if (o->live[i].off == a - lo) {
            if (o->cfg.enable_tensor_reuse) tai_ranges_give(&o->ranges, o->live[i].off, o->live[i].size);
            o->used -= o->live[i].size;
            o->live[i] = o->live[--o->n_live];
            return true;
        }
    tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiOptimizerRelease: %p is not a tensor in use", t);
    return false;
}

void *tinyaiOptimizerAcquireInPlace(TinyAIMemoryOptimizer *o, void *input, size_t bytes) {
    if (!o || !input || !o->arena) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiOptimizerAcquireInPlace: NULL argument or no arena");
        return NULL;
    }
    const uintptr_t a = (uintptr_t)input, lo = (uintptr_t)o->arena;
    for (int i = 0; a >= lo && i < o->n_live; i++)
        if (o->live[i].off == a - lo) {
            if (o->cfg.enable_in_place_ops && bytes > 0 && bytes <= o->live[i].size) {
                o->requested += (bytes + 63) & ~(size_t)63;
                o->count++;
                return input;
            }
            return tinyaiOptimizerAcquire(o, bytes);
        }
    tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiOptimizerAcquireInPlace: %p is not a tensor in use",
              input);
    return NULL;
}

bool tinyaiExecuteWithTensorReuse(TinyAIMemoryOptimizer *o, TinyAITensorReuseFunction func,
                                  void *user) {
    if (!o || !func) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiExecuteWithTensorReuse: NULL argument");
        return false;
    }
    if (o->in_function) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiExecuteWithTensorReuse: already running one");
        return false;
    }
    o->in_function = 1;
    const bool ok = func(o, user);
    /* what the function kept is released now */
    while (o->n_live > 0) tinyaiOptimizerRelease(o, o->arena + o->live[o->n_live - 1].off);
    o->bump = 0;
    o->in_function = 0;
    return ok;
}

/* ---- fitting a model into a budget ---- */

bool tinyaiOptimizeMemoryUsage(TinyAIMemoryOptimizer *o, TinyAIModel *m, size_t budget) {
    if (!o || !m) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiOptimizeMemoryUsage: NULL argument");
        return false;
    }
    if (budget == 0) budget = o->cfg.max_memory_budget;
    if (budget == 0) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiOptimizeMemoryUsage: no budget (0, and the "
                  "config's max_memory_budget is 0)");
        return false;
    }
    if (m->n_sessions > 0) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiOptimizeMemoryUsage: the model has %d live "
                  "session(s); free them first", m->n_sessions);
        return false;
    }
    const float t = o->cfg.memory_speed_tradeoff;
    const TinyAIModelConfig saved = m->cfg;
    const int saved_sep = m->act_separate, was_planned = m->planned;
    const int saved_ctx = m->plan_ctx, saved_seqs = m->plan_seqs;
    m->act_separate = !o->cfg.enable_tensor_reuse;
    /* modes in the order the tradeoff prefers them */
    TinyAIExecutionMode modes[3];
    int nm = 0;
    if (t >= 0.5f) {
        modes[nm++] = TINYAI_EXEC_NORMAL;
        modes[nm++] = TINYAI_EXEC_MEMORY_OPT;
        modes[nm++] = TINYAI_EXEC_STREAMING;
    } else {
        modes[nm++] = TINYAI_EXEC_STREAMING;
        modes[nm++] = TINYAI_EXEC_MEMORY_OPT;
    }
    const int ctx0 = m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096;
    const int seqs0 = t >= 0.5f ? 1 + (int)((t - 0.5f) * 6.0f + 0.5f) : 1; /* 1..4 */
    TinyAIStatus st = TINYAI_ERR_RANGE;
    int ctx = ctx0, seqs = seqs0, mi = 0;
    char first_err[320] = "";
    for (;;) {
        for (mi = 0; mi < nm; mi++) {
            m->cfg.memoryLimit = budget;
            m->cfg.mode = modes[mi];
            m->cfg.contextSize = ctx;
            m->cfg.maxSessions = seqs;
            st = tai_model_plan(m, ctx, seqs);
            if (st == TINYAI_OK) break;
            if (!first_err[0]) snprintf(first_err, sizeof first_err, "%s", tinyaiLastErrorMessage());
        }
        if (st == TINYAI_OK) break;
        if (seqs > 1) { /* fewer sessions first, then shorter contexts */
            seqs--;
        } else if (ctx > 256) {
            ctx /= 2;
            seqs = seqs0;
        } else {
            break;
        }
    }
    if (st != TINYAI_OK) {
        m->cfg = saved;
        m->act_separate = saved_sep;
        /* the tries re-planned it: back to the plan it had */
        char why[320];
        snprintf(why, sizeof why, "%s", first_err);
        if (was_planned) (void)tai_model_plan(m, saved_ctx, saved_seqs);
        snprintf(first_err, sizeof first_err, "%s", why);
        tai_error(TINYAI_ERR_RANGE, "tinyaiOptimizeMemoryUsage: nothing fits in %zu bytes, even "
                  "streaming one session of 256 tokens (%s)", budget, first_err);
        return false;
    }
    /* the tracked peak restarts from the new plan */
    m->peak_bytes = 0;
    (void)tai_model_current_bytes(m);
    TinyAIMemoryInfo info;
    tinyaiGetMemoryInfo(m, &info);
    TinyAIMemoryOptimizerChoice *c = &o->choice;
    memset(c, 0, sizeof *c);
    c->mode = info.mode;
    c->budget = budget;
    c->cacheBytes = info.cacheBytes;
    c->sessions = seqs;
    c->contextSize = ctx;
    c->activationBytes = m->ws.bytes;
    c->activationBytesUnplanned = m->ws.unplanned_bytes;
    snprintf(c->reason, sizeof c->reason,
             "tradeoff %.2f: %s first; %s with %d session(s) of %d tokens fits in %zu bytes%s",
             (double)t, t >= 0.5f ? "speed (resident, then cached, then streamed)"
                                  : "memory (streamed weights, one session)",
             tinyaiExecutionModeName(c->mode), seqs, ctx, budget,
             ctx < ctx0 || seqs < seqs0 ? " (smaller than preferred: the preferred did not)" : "");
    o->have_choice = 1;
    return true;
}

bool tinyaiGetMemoryOptimizerChoice(const TinyAIMemoryOptimizer *o, TinyAIMemoryOptimizerChoice *out) {
    if (!o || !out || !o->have_choice) return false;
    *out = o->choice;
    return true;
}
