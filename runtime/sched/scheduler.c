/*
 * runtime/sched: the forward scheduler of <tinyai/utils/forward_scheduler.h>.
 * The caller's layers and dependencies go to the planner (plan.h), which
 * fixes the order and the lifetimes of the declared outputs; the layers run
 * through the pass of sched.h (pass.c) one per tinyaiExecuteNextLayer, with the
 * weights coming from the mapped model's cache, sized by the memory plan of
 * memplan.c for the mode and limit given at creation.
 *
 * Generation: the first passes run the prompt (in batches of the planned
 * width), each later pass one generated token; after a pass's last layer the
 * next token is chosen and its text appended to the output.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tinyai/utils/forward_scheduler.h>

#include "core/clock.h"
#include "core/error.h"
#include "offload/cost.h"
#include "runtime/llm/llm_internal.h"
#include "runtime/mem/memory.h"
#include "runtime/model/model.h"
#include "runtime/sched/sched.h"
#include "runtime/sched/plan.h"

#define SCHED_CTX 512 /* context planned for generation (tokens) */

struct TinyAIForwardScheduler {
    TinyAIMappedModel *mm;
    TinyAIExecutionMode mode;
    size_t limit;
    tai_plan *plan;
    TinyAIModel *model;
    TinyAISession *sess;
    TinyAISampler *sampler;
    TinyAISchedulerGeneration gen;

    int *order; /* the model's pass: 0 .. n_layer + 1 */
    int n_order;
    int step;   /* next step of the current pass */
    int ready;  /* tinyaiPrepareForwardPass succeeded */
    int started, done;
    size_t reserved; /* of the limit, kept for the declared outputs */

    int32_t *prompt;
    size_t n_prompt, prompt_done;
    int32_t tok;      /* the token of a generation pass */
    int pass_n;       /* columns of the current pass */
    TinyAISession **seq;
    int *pos;
    size_t out_len;
    int generated, passes;
    size_t cur_bytes, peak_bytes;

    /* the declared outputs held at each step of the model's pass */
    size_t *step_held;
    /* a graph of the caller's own (every declared layer has a function) */
    TinyAILayerFunction *fn;
    void **fn_user;
    TinyAICheckpointStrategy *ckpt;
    int custom;
    int n_steps;
    int *last_use;    /* per layer: the last step that reads its output */
    void **held;      /* per layer: its output while held */
    size_t held_now, held_peak, est_peak;
    int recomputed;
};

const char *tinyaiExecutionModeName(TinyAIExecutionMode mode) {
    switch (mode) {
    case TINYAI_EXEC_NORMAL: return "normal";
    case TINYAI_EXEC_MEMORY_OPT: return "memory-opt";
    case TINYAI_EXEC_STREAMING: return "streaming";
    case TINYAI_EXEC_ADAPTIVE: return "adaptive";
    }
    return NULL;
}

TinyAISchedulerGeneration tinyaiCreateDefaultSchedulerGeneration(void) {
    TinyAISchedulerGeneration g;
    memset(&g, 0, sizeof g);
    g.maxNewTokens = TINYAI_SCHEDULER_DEFAULT_NEW_TOKENS;
    g.outputCapacity = TINYAI_SCHEDULER_DEFAULT_OUTPUT;
    g.temperature = 0.0f;
    g.seed = 42;
    return g;
}

static void track(TinyAIForwardScheduler *s) {
    size_t b = tai_model_current_bytes(s->model);
    if (s->custom)
        b += s->held_now;
    else if (s->step_held && s->started && s->step > 0)
        b += s->step_held[s->step - 1];
    s->cur_bytes = b;
    if (b > s->peak_bytes) s->peak_bytes = b;
}

TinyAIForwardScheduler *tinyaiCreateForwardScheduler(TinyAIMappedModel *model,
                                                     TinyAIExecutionMode mode,
                                                     size_t memoryLimit) {
    if (!model) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiCreateForwardScheduler: model is NULL");
        return NULL;
    }
    if ((unsigned)mode > TINYAI_EXEC_ADAPTIVE) {
        tai_error(TINYAI_ERR_INVALID_ARG, "unknown execution mode %d", (int)mode);
        return NULL;
    }
    TinyAIForwardScheduler *s = calloc(1, sizeof *s);
    if (!s) {
        tai_error(TINYAI_ERR_NOMEM, "out of memory");
        return NULL;
    }
    s->mm = model;
    s->mode = mode;
    s->limit = memoryLimit;
    s->gen = tinyaiCreateDefaultSchedulerGeneration();
    TinyAIModelConfig cfg = tinyaiCreateDefaultModelConfig();
    cfg.memoryLimit = memoryLimit;
    cfg.mode = mode;
    TinyAIStatus st = tai_plan_create(&s->plan);
    if (st == TINYAI_OK) st = tai_model_create(model, 0, &cfg, false, &s->model);
    if (st == TINYAI_OK) {
        int ctx = s->model->hp.n_ctx_train < SCHED_CTX ? s->model->hp.n_ctx_train : SCHED_CTX;
        /* the plan now, so that a limit too small fails at creation */
        st = tai_model_plan(s->model, ctx, 1);
    }
    if (st == TINYAI_OK) {
        s->n_order = s->model->hp.n_layer + 2;
        const size_t nl = (size_t)s->n_order;
        s->order = malloc(nl * sizeof *s->order);
        s->fn = calloc(nl, sizeof *s->fn);
        s->fn_user = calloc(nl, sizeof *s->fn_user);
        s->ckpt = calloc(nl, sizeof *s->ckpt);
        s->last_use = calloc(nl, sizeof *s->last_use);
        s->held = calloc(nl, sizeof *s->held);
        s->step_held = calloc(nl, sizeof *s->step_held);
        if (!s->order || !s->fn || !s->fn_user || !s->ckpt || !s->last_use || !s->held ||
            !s->step_held)
            st = tai_error(TINYAI_ERR_NOMEM, "out of memory");
    }
    if (st != TINYAI_OK) {
        tinyaiDestroyForwardScheduler(s);
        return NULL;
    }
    track(s);
    return s;
}

void tinyaiDestroyForwardScheduler(TinyAIForwardScheduler *s) {
    if (!s) return;
    tinyaiFreeSampler(s->sampler);
    tinyaiFreeSession(s->sess);
    tinyaiFreeModel(s->model); /* the mapped model is the caller's */
    for (int l = 0; s->held && l < s->n_order; l++) tai_mem_free(s->held[l]);
    free(s->held);
    free(s->fn);
    free(s->fn_user);
    free(s->ckpt);
    free(s->last_use);
    free(s->step_held);
    tai_plan_destroy(s->plan);
    free(s->order);
    free(s->prompt);
    free(s->seq);
    free(s->pos);
    free(s);
}

bool tinyaiAddLayerToSchedule(TinyAIForwardScheduler *s, int layerIndex, int dependsOn,
                              TinyAIDependencyType depType, size_t outputSize) {
    if (!s) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiAddLayerToSchedule: scheduler is NULL");
        return false;
    }
    if (s->started) {
        tai_error(TINYAI_ERR_INVALID_ARG, "layers cannot be added once execution has started");
        return false;
    }
    return tai_plan_add(s->plan, layerIndex, dependsOn, (int)depType, outputSize) == TINYAI_OK;
}

/* ---- A graph of the caller's own --------------------------------------
 *
 * Layer l's output is made when a step needs it: its inputs first (made
 * again if they were dropped), then its function into a new buffer. After
 * each step the outputs no later step reads go (the pass's outputs, read by
 * no layer, stay to the end), and so do the RECOMPUTE ones the step read:
 * a later reader makes them again. `dry` walks the same steps counting
 * bytes only: the estimate of the peak. */
typedef struct {
    int dry;
    unsigned char *have;
    size_t now, peak;
    int recomputed;
    const void *pass_input;
} graph_run;

static size_t out_size(const TinyAIForwardScheduler *s, int l) {
    return tai_plan_output_size(s->plan, l);
}

static bool has(const TinyAIForwardScheduler *s, const graph_run *r, int l) {
    return r->dry ? r->have[l] != 0 : s->held[l] != NULL;
}

static void let_go(TinyAIForwardScheduler *s, graph_run *r, int l) {
    if (!has(s, r, l)) return;
    if (r->dry) {
        r->have[l] = 0;
    } else {
        tai_mem_free(s->held[l]);
        s->held[l] = NULL;
    }
    r->now -= out_size(s, l);
}

static bool make(TinyAIForwardScheduler *s, graph_run *r, int l, int again) {
    const int nd = tai_plan_dep_count(s->plan, l);
    for (int k = 0; k < nd; k++) {
        const int d = tai_plan_dep(s->plan, l, k, NULL);
        if (d >= 0 && !has(s, r, d) && !make(s, r, d, 1)) return false;
    }
    const size_t size = out_size(s, l);
    r->now += size;
    if (r->now > r->peak) r->peak = r->now;
    if (again) r->recomputed++;
    if (r->dry) {
        r->have[l] = 1;
        return true;
    }
    void *buf = tai_mem_alloc(TAI_MEM_ACT, size ? size : 1, 64, true);
    const void *in[64];
    size_t in_size[64];
    int in_layer[64];
    if (!buf || nd > 64) {
        tai_mem_free(buf);
        r->now -= size;
        if (buf) tai_error(TINYAI_ERR_INVALID_ARG, "layer %d reads %d outputs (at most 64)", l, nd);
        return false;
    }
    int n = 0;
    for (int k = 0; k < nd; k++) {
        const int d = tai_plan_dep(s->plan, l, k, NULL);
        if (d < 0) continue;
        in[n] = s->held[d];
        in_size[n] = out_size(s, d);
        in_layer[n++] = d;
    }
    const TinyAILayerCall call = {l, in, in_size, in_layer, n, buf, size, r->pass_input};
    if (!s->fn[l](&call, s->fn_user[l])) {
        tai_mem_free(buf);
        r->now -= size;
        if (!tinyaiLastErrorMessage()[0])
            tai_error(TINYAI_ERR_INVALID_ARG, "layer %d's function failed", l);
        return false;
    }
    s->held[l] = buf;
    return true;
}

static void after_step(TinyAIForwardScheduler *s, graph_run *r, int step) {
    const int l = tai_plan_step_layer(s->plan, step);
    for (int k = 0; k < tai_plan_dep_count(s->plan, l); k++) {
        const int d = tai_plan_dep(s->plan, l, k, NULL);
        if (d >= 0 && s->ckpt[d] == TINYAI_CHECKPOINT_RECOMPUTE) let_go(s, r, d);
    }
    for (int x = 0; x < s->n_order; x++)
        if (s->last_use[x] <= step && s->last_use[x] < s->n_steps - 1) let_go(s, r, x);
}

static size_t simulate_peak(TinyAIForwardScheduler *s) {
    graph_run r = {1, calloc((size_t)s->n_order, 1), 0, 0, 0, NULL};
    if (!r.have) return 0;
    for (int i = 0; i < s->n_steps; i++) {
        const int l = tai_plan_step_layer(s->plan, i);
        if (!has(s, &r, l)) make(s, &r, l, 0);
        after_step(s, &r, i);
    }
    free(r.have);
    return r.peak;
}

bool tinyaiSetLayerFunction(TinyAIForwardScheduler *s, int layerIndex, TinyAILayerFunction fn,
                            void *user) {
    if (!s || layerIndex < 0 || layerIndex >= s->n_order) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiSetLayerFunction: layer %d (the model has %d)",
                  layerIndex, s ? s->n_order : 0);
        return false;
    }
    if (s->started) {
        tai_error(TINYAI_ERR_INVALID_ARG, "functions cannot change once execution has started");
        return false;
    }
    s->fn[layerIndex] = fn;
    s->fn_user[layerIndex] = user;
    s->ready = 0;
    return true;
}

bool tinyaiSetScheduleCheckpointing(TinyAIForwardScheduler *s, int layerIndex,
                                    TinyAICheckpointStrategy strategy) {
    if (!s || layerIndex < 0 || layerIndex >= s->n_order ||
        (unsigned)strategy > TINYAI_CHECKPOINT_RECOMPUTE) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiSetScheduleCheckpointing: layer %d, strategy %d",
                  layerIndex, (int)strategy);
        return false;
    }
    if (s->started) {
        tai_error(TINYAI_ERR_INVALID_ARG, "checkpoints cannot change once execution has started");
        return false;
    }
    s->ckpt[layerIndex] = strategy;
    s->ready = 0;
    return true;
}

size_t tinyaiEstimateScheduleMemory(const TinyAIForwardScheduler *s) {
    return s && s->ready ? s->est_peak : 0;
}

int tinyaiGetScheduleRecomputations(const TinyAIForwardScheduler *s) {
    return s ? s->recomputed : 0;
}

size_t tinyaiGetScheduleOutputsPeak(const TinyAIForwardScheduler *s) {
    return s ? s->held_peak : 0;
}

static bool execute_graph(TinyAIForwardScheduler *s, const void *input, void *output,
                          int *layerIndex) {
    if (s->step >= s->n_steps) {
        s->done = 1;
        tinyaiClearError();
        return false;
    }
    s->started = 1;
    graph_run r = {0, NULL, s->held_now, s->held_peak, s->recomputed, input};
    const int l = tai_plan_step_layer(s->plan, s->step);
    bool ok = has(s, &r, l) || make(s, &r, l, 0);
    if (ok) {
        if (out_size(s, l)) memcpy(output, s->held[l], out_size(s, l));
        after_step(s, &r, s->step);
        if (layerIndex) *layerIndex = l;
        s->step++;
    } else {
        s->done = 1;
    }
    s->held_now = r.now;
    s->held_peak = r.peak;
    s->recomputed = r.recomputed;
    track(s);
    return ok;
}

bool tinyaiPrepareForwardPass(TinyAIForwardScheduler *s) {
    if (!s) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiPrepareForwardPass: scheduler is NULL");
        return false;
    }
    if (s->started) {
        tai_error(TINYAI_ERR_INVALID_ARG, "the schedule cannot change once execution has started");
        return false;
    }
    s->ready = 0;
    const int nl = s->n_order;
    if (tai_plan_prepare(s->plan, nl) != TINYAI_OK) return false;
    const int steps = tai_plan_step_count(s->plan);
    if (steps == 0) {
        tai_error(TINYAI_ERR_INVALID_ARG, "the schedule is empty: add the layers to run "
                  "(tinyaiAddLayerToSchedule)");
        return false;
    }
    int with_fn = 0;
    for (int i = 0; i < steps; i++) with_fn += s->fn[tai_plan_step_layer(s->plan, i)] != NULL;
    if (with_fn > 0 && with_fn < steps) {
        tai_error(TINYAI_ERR_INVALID_ARG, "%d of the schedule's %d layers have a function: a "
                  "graph of your own needs one for every layer (or none, to run the model's)",
                  with_fn, steps);
        return false;
    }
    s->custom = with_fn > 0;
    s->n_steps = s->custom ? steps : nl;
    /* Steps and lifetimes. A model file's layers run in the model's own
     * order, 0 .. n + 1, each once, whatever subset the schedule declares:
     * a declared dependency must point back in that order. A graph of the
     * caller's runs in the planner's order. An output is held from its
     * step to the last step that reads it (to the end if none does). */
    int *step_of = malloc((size_t)nl * sizeof *step_of);
    if (!step_of) return tai_error(TINYAI_ERR_NOMEM, "out of memory") == TINYAI_OK;
    for (int l = 0; l < nl; l++) step_of[l] = -1;
    for (int i = 0; i < steps; i++) {
        const int l = tai_plan_step_layer(s->plan, i);
        step_of[l] = s->custom ? i : l;
    }
    bool ok = true;
    for (int i = 0; i < steps && ok; i++) {
        const int l = tai_plan_step_layer(s->plan, i);
        s->last_use[l] = -1;
        for (int k = 0; k < tai_plan_dep_count(s->plan, l); k++) {
            const int d = tai_plan_dep(s->plan, l, k, NULL);
            if (d < 0) continue;
            if (!s->custom && d >= l) {
                tai_error(TINYAI_ERR_INVALID_ARG, "layer %d depends on layer %d, which runs after it "
                          "in this model's pass (its layers run in order 0..%d)", l, d, nl - 1);
                ok = false;
                break;
            }
        }
    }
    for (int i = 0; i < steps && ok; i++) {
        const int l = tai_plan_step_layer(s->plan, i);
        for (int k = 0; k < tai_plan_dep_count(s->plan, l); k++) {
            const int d = tai_plan_dep(s->plan, l, k, NULL);
            if (d >= 0 && step_of[l] > s->last_use[d]) s->last_use[d] = step_of[l];
        }
    }
    if (ok) {
        memset(s->step_held, 0, (size_t)nl * sizeof *s->step_held);
        for (int i = 0; i < steps; i++) {
            const int l = tai_plan_step_layer(s->plan, i);
            if (s->last_use[l] < 0) s->last_use[l] = s->n_steps - 1; /* a pass output */
            for (int t = step_of[l]; t <= s->last_use[l]; t++)
                s->step_held[t] += tai_plan_output_size(s->plan, l);
        }
    }
    free(step_of);
    if (!ok) return false;
    size_t outputs = 0;
    for (int t = 0; t < s->n_steps; t++)
        if (s->step_held[t] > outputs) outputs = s->step_held[t];
    s->est_peak = s->custom ? simulate_peak(s) : outputs;
    /* The declared outputs live beside the weights and the runtime's
     * buffers (see track), so under a limit the model is planned in what
     * they leave of it. */
    if (s->custom) outputs = s->est_peak;
    if (s->limit > 0 && outputs != s->reserved) {
        TinyAIModel *m = s->model;
        if (outputs >= s->limit) {
            tai_error(TINYAI_ERR_RANGE,
                      "the schedule's outputs need %zu bytes at once, more than the memory limit "
                      "of %zu bytes",
                      outputs, s->limit);
            return false;
        }
        m->cfg.memoryLimit = s->limit - outputs;
        TinyAIStatus st = tai_model_plan(m, m->plan_ctx, 1);
        if (st != TINYAI_OK) {
            tai_error_prefix("with %zu bytes of the limit for the schedule's outputs", outputs);
            return false;
        }
        s->reserved = outputs;
        track(s);
    }
    for (int i = 0; i < nl; i++) s->order[i] = i;
    s->ready = 1;
    return true;
}

bool tinyaiSetSchedulerGeneration(TinyAIForwardScheduler *s, const TinyAISchedulerGeneration *g) {
    if (!s || !g) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiSetSchedulerGeneration: NULL argument");
        return false;
    }
    if (s->started) {
        tai_error(TINYAI_ERR_INVALID_ARG, "generation settings cannot change once execution started");
        return false;
    }
    if (g->maxNewTokens < 0 || g->outputCapacity < 1 || !(g->temperature >= 0.0f) ||
        !isfinite(g->temperature)) {
        tai_error(TINYAI_ERR_INVALID_ARG,
                  "generation: maxNewTokens must be >= 0, outputCapacity >= 1, temperature a "
                  "finite number >= 0");
        return false;
    }
    s->gen = *g;
    return true;
}

/* First call: tokenizes the prompt, creates the session and sampler. */
static bool start(TinyAIForwardScheduler *s, const char *text, char *out) {
    TinyAIModel *m = s->model;
    TinyAIModelInfo info;
    tinyaiGetModelInfo(m, &info);
    size_t n = 0;
    TinyAIStatus st = tinyaiTokenize(m, text, info.addBosToken, false, NULL, 0, &n);
    if (st != TINYAI_OK && st != TINYAI_ERR_RANGE) return false;
    if (n == 0) {
        tai_error(TINYAI_ERR_INVALID_ARG, "the input text gives no tokens");
        return false;
    }
    s->prompt = malloc(n * sizeof *s->prompt);
    if (!s->prompt) {
        tai_error(TINYAI_ERR_NOMEM, "out of memory");
        return false;
    }
    if (tinyaiTokenize(m, text, info.addBosToken, false, s->prompt, n, &n) != TINYAI_OK) return false;
    s->n_prompt = n;
    if (tinyaiCreateSession(m, m->plan_ctx, &s->sess) != TINYAI_OK) return false;
    if (n >= (size_t)m->plan_ctx) {
        tai_error(TINYAI_ERR_RANGE, "the input is %zu tokens; the scheduler's context holds %d", n,
                  m->plan_ctx);
        return false;
    }
    TinyAISamplerConfig sc = tinyaiCreateDefaultSamplerConfig();
    sc.temperature = s->gen.temperature;
    sc.seed = s->gen.seed;
    sc.repeatPenalty = 1.0f;
    if (tinyaiCreateSampler(&sc, &s->sampler) != TINYAI_OK) return false;
    const int ub = m->ws.n_ubatch;
    s->seq = malloc((size_t)ub * sizeof *s->seq);
    s->pos = malloc((size_t)ub * sizeof *s->pos);
    if (!s->seq || !s->pos) {
        tai_error(TINYAI_ERR_NOMEM, "out of memory");
        return false;
    }
    for (int i = 0; i < ub; i++) s->seq[i] = s->sess;
    out[0] = 0;
    s->out_len = 0;
    if (s->gen.includePrompt) {
        size_t l = strlen(text), cap = s->gen.outputCapacity - 1;
        if (l > cap) l = cap;
        memcpy(out, text, l);
        out[l] = 0;
        s->out_len = l;
    }
    s->started = 1;
    return true;
}

static void begin_pass(TinyAIForwardScheduler *s) {
    const int ub = s->model->ws.n_ubatch;
    if (s->prompt_done < s->n_prompt) {
        size_t left = s->n_prompt - s->prompt_done;
        s->pass_n = (int)(left < (size_t)ub ? left : (size_t)ub);
    } else {
        s->pass_n = 1;
    }
    for (int t = 0; t < s->pass_n; t++) s->pos[t] = s->sess->pos + t;
}

static void append(TinyAIForwardScheduler *s, char *out, int32_t id) {
    size_t len = 0;
    const char *piece = tinyaiTokenPiece(s->model, id, &len);
    if (!piece) return;
    size_t cap = s->gen.outputCapacity - 1;
    if (s->out_len + len > cap) len = cap - s->out_len;
    memcpy(out + s->out_len, piece, len);
    s->out_len += len;
    out[s->out_len] = 0;
}

bool tinyaiExecuteNextLayer(TinyAIForwardScheduler *s, const void *input, void *output,
                            int *layerIndex) {
    if (!s || !input || !output) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiExecuteNextLayer: NULL argument");
        return false;
    }
    if (!s->ready || !tai_plan_is_prepared(s->plan)) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiPrepareForwardPass has not succeeded");
        return false;
    }
    if (s->done) {
        tinyaiClearError();
        return false;
    }
    if (s->custom) return execute_graph(s, input, output, layerIndex);
    char *out = output;
    if (!s->started) {
        if (!start(s, input, out)) {
            s->done = 1;
            return false;
        }
        begin_pass(s);
    }
    const int layer = s->order[s->step];
    const int32_t *toks = s->prompt_done < s->n_prompt ? s->prompt + s->prompt_done : &s->tok;
    /* a prompt of two tokens or more through the prompt products (as
     * tinyaiEval), generated tokens not */
    const int prompt = s->prompt_done < s->n_prompt && s->n_prompt >= 2;
    tai_batch b = {s->model, s->pass_n, toks, s->seq, s->pos, prompt ? 0 : s->pass_n};
    if (tai_sched_layer(&b, layer) != TINYAI_OK) {
        s->done = 1;
        return false;
    }
    if (layerIndex) *layerIndex = layer;
    s->step++;
    track(s);
    if (s->step < s->n_order) return true;

    /* end of a pass */
    tai_llama_finish(&b);
    s->step = 0;
    s->passes++;
    if (s->prompt_done < s->n_prompt) s->prompt_done += (size_t)s->pass_n;
    if (s->prompt_done < s->n_prompt) {
        begin_pass(s);
        return true;
    }
    if (s->generated >= s->gen.maxNewTokens) {
        s->done = 1;
        return true;
    }
    const int32_t id = tinyaiSample(s->sampler, tinyaiGetLogits(s->sess), s->model->hp.n_vocab);
    if (id < 0 || tinyaiTokenIsEndOfGeneration(s->model, id)) {
        s->done = 1;
        return true;
    }
    append(s, out, id);
    s->generated++;
    if (s->generated >= s->gen.maxNewTokens || s->sess->pos >= s->sess->n_ctx ||
        s->out_len >= s->gen.outputCapacity - 1) {
        s->done = 1;
        return true;
    }
    s->tok = id;
    begin_pass(s);
    return true;
}

/* ---- Batch size ----------------------------------------------------------- */

/* Multiply-adds per second of the kernels on a product with `cols` columns
 * and up to 2048 rows of a block's matrix (a few MB: large enough that the
 * threads' start is noise, small enough to stay in the last-level cache:
 * compute speed, not memory). */
static double gemm_rate(TinyAIModel *m, int cols) {
    const tai_wref *w = &m->blocks[0].w_up;
    const int64_t rows = w->rows < 2048 ? w->rows : 2048, n = w->n;
    size_t pb = tai_pack_bytes(w->type, rows, n);
    void *packed = aligned_alloc(64, (pb + 63) & ~(size_t)63);
    float *x = calloc((size_t)(n * cols), sizeof *x), *y = calloc((size_t)(rows * cols), sizeof *y);
    size_t sb = tai_dev_matmul_scratch(m->dev, w->type, n, cols);
    void *scratch = aligned_alloc(64, (sb + 63) & ~(size_t)63);
    double rate = 0;
    if (packed && x && y && scratch) {
        memset(packed, 0, pb);
        for (int64_t i = 0; i < n * cols; i++) x[i] = (float)(i % 7) * 0.1f;
        double best = 1e30;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = tai_now_s();
            if (tai_dev_matmul(m->dev, w->type, tai_dref_host(packed), rows, n, tai_dref_host(x),
                               tai_dref_host(y), cols, tai_dref_host(scratch)) != TINYAI_OK ||
                tai_dev_sync(m->dev) != TINYAI_OK)
                break;
            double t = tai_now_s() - t0;
            if (t < best) best = t;
        }
        rate = (double)rows * (double)n * cols / best;
    }
    free(packed);
    free(x);
    free(y);
    free(scratch);
    return rate;
}

/* The CPU device's calibration (the cost model's figures), measured once
 * per process and calibration key (the key holds the thread count), so a
 * scheduler without a cache folder of calibrations measures nothing per
 * call. */
static pthread_mutex_t cal_mu = PTHREAD_MUTEX_INITIALIZER;
static tai_calib cal_kept[8];
static int n_cal_kept;

static TinyAIStatus cpu_calibration(tai_device *d, tai_calib *out) {
    char key[384];
    tai_calib_key(d, key, sizeof key);
    pthread_mutex_lock(&cal_mu);
    TinyAIStatus st = TINYAI_OK;
    int i = 0;
    while (i < n_cal_kept && strcmp(cal_kept[i].key, key)) i++;
    if (i < n_cal_kept) {
        *out = cal_kept[i];
    } else {
        st = tai_calibrate(d, out);
        if (st == TINYAI_OK && n_cal_kept < (int)(sizeof cal_kept / sizeof cal_kept[0]))
            cal_kept[n_cal_kept++] = *out;
    }
    pthread_mutex_unlock(&cal_mu);
    return st;
}

int tinyaiCalculateOptimalBatchSize(TinyAIForwardScheduler *s, size_t inputSize, size_t outputSize,
                                    int maxBatchSize) {
    if (!s || maxBatchSize < 1) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiCalculateOptimalBatchSize: %s",
                  !s ? "scheduler is NULL" : "maxBatchSize must be >= 1");
        return 0;
    }
    TinyAIModel *m = s->model;
    const size_t total = tai_mapped_total_image_bytes(m->mm);
    const size_t rows_emb =
        m->tied || m->cfg.verifyChecksums ? 0 : tai_mapped_layer_room(m->mm, 0);
    TinyAIMemoryInfo mi;
    tinyaiGetMemoryInfo(m, &mi);
    /* storage: what the cache's loads measured, else a probe read (once
     * per model) */
    double sbw = mi.loadSeconds > 0 && mi.bytesRead > (32u << 20)
                     ? (double)mi.bytesRead / mi.loadSeconds
                     : 0;
    if (sbw <= 0 && (s->limit > 0 || total > (size_t)mi.cacheBytes)) {
        if (m->probe_sbw <= 0) m->probe_sbw = tai_mapped_probe_bandwidth(m->mm, 32u << 20);
        sbw = m->probe_sbw;
    }
    uint64_t params = 0;
    for (int64_t i = 0; i < m->file->n_tensors; i++) {
        const tai_tensor *t = &m->file->tensors[i];
        if (t->n_dims == 2 && t->layer > 0) params += (uint64_t)(t->ne[0] * t->ne[1]);
    }
    /* compute: the cost model's prediction from the devices' calibration;
     * without one, two products measured once per model */
    bool calibrated = tai_sched_predict_pass(m, 1, 1) > 0;
    if (!calibrated && m->n_devs == 1) {
        /* every layer on the CPU: its calibration, measured once */
        if (!m->dev_cal) m->dev_cal = calloc(TAI_MAX_DEVICES, sizeof *m->dev_cal);
        if (m->dev_cal && cpu_calibration(m->dev, &m->dev_cal[0]) == TINYAI_OK) {
            m->have_cal = 1;
            calibrated = tai_sched_predict_pass(m, 1, 1) > 0;
        }
        tinyaiClearError();
    }
    if (!calibrated && m->probe_r1 <= 0) {
        m->probe_r1 = gemm_rate(m, 1);
        m->probe_r64 = gemm_rate(m, 64);
    }
    const double r1 = m->probe_r1, r64 = m->probe_r64;
    /* a sequence's context: its prompt and output as token ids */
    const size_t io = inputSize > SIZE_MAX - outputSize ? SIZE_MAX : inputSize + outputSize;
    const size_t toks = io / sizeof(int32_t);
    const int ctx = toks > 0 ? (toks < (size_t)INT32_MAX ? (int)toks : INT32_MAX) : m->plan_ctx;
    const size_t per_seq = tai_session_bytes(m, ctx);
    int best = 1;
    double best_tps = 0;
    for (int b = 1; b <= maxBatchSize; b++) {
        if (per_seq > SIZE_MAX / 4 / (size_t)b) break; /* absurd: nothing fits */
        size_t runtime = tai_workspace_bytes(m, b > 16 ? b : 16, ctx, b) +
                         (size_t)b * per_seq + mi.stagingBytes;
        double cache = (double)mi.cacheBytes;
        if (s->limit > 0) {
            if (runtime + mi.largestLayerBytes > s->limit) break; /* does not fit */
            double avail = (double)(s->limit - runtime);
            if (m->mode != TINYAI_EXEC_NORMAL) cache = avail < (double)total ? avail : (double)total;
        }
        /* below the whole model an untied embedding is looked up by rows,
         * not read with the layers (memplan.c) */
        double io_bytes = (double)total - cache;
        if (cache < (double)total) io_bytes -= (double)rows_emb;
        if (io_bytes < 0) io_bytes = 0;
        double t_io = sbw > 0 ? io_bytes / sbw : 0;
        double t_c;
        if (calibrated) {
            t_c = tai_sched_predict_pass(m, b, ctx);
        } else {
            /* one column streams the weights (matrix-vector speed), more
             * columns approach the matrix-matrix rate */
            const double rate = b == 1 ? r1 : r64;
            t_c = rate > 0 ? (double)params * b / rate : 0;
            if (b > 1 && r1 > 0 && t_c < (double)params / r1) t_c = (double)params / r1;
        }
        double t = t_io > t_c ? t_io : t_c;
        double tps = t > 0 ? b / t : (double)b;
        /* a larger batch must gain at least 2% to be worth its memory */
        if (tps > best_tps * 1.02) {
            best_tps = tps;
            best = b;
        }
    }
    return best;
}

size_t tinyaiGetSchedulerMemoryUsage(const TinyAIForwardScheduler *s) {
    return s ? s->cur_bytes : 0;
}

size_t tinyaiGetSchedulerPeakMemoryUsage(const TinyAIForwardScheduler *s) {
    return s ? s->peak_bytes : 0;
}

bool tinyaiGetSchedulerInfo(const TinyAIForwardScheduler *s, TinyAISchedulerInfo *out) {
    if (!s || !out) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiGetSchedulerInfo: NULL argument");
        return false;
    }
    memset(out, 0, sizeof *out);
    const TinyAIModel *m = s->model;
    out->mode = m->mode;
    snprintf(out->reason, sizeof out->reason, "%s", m->mode_reason);
    out->memoryLimit = s->limit;
    out->cacheBytes = m->cache_budget;
    out->runtimeBytes = m->ws.bytes + m->sessions_bytes + tai_mapped_staging_bytes(m->mm);
    out->minimumBytes = m->min_bytes;
    out->tokensGenerated = s->generated;
    out->passesCompleted = s->passes;
    return true;
}
