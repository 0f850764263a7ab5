/*
 * runtime/llm/layer_sched.c: the layer scheduler
 * (<tinyai/utils/layer_scheduler.h>): a prompt run through a model one
 * layer at a time, in chunks, with per-layer checkpoints.
 *
 * One layer over the prompt: for each chunk of chunkTokens tokens, the
 * chunk's input rows go into the model's workspace (ws.x), the layer runs
 * on the CPU through the scheduler's pass step (tai_sched_layer_cpu: the
 * layer's images acquired from the weight cache, the ops, the images
 * released), and the rows come back out. The blocks attend through the
 * scheduler's own session, whose KV cache the chunks fill in order.
 */
#include <stdlib.h>
#include <string.h>

#include <tinyai/utils/layer_scheduler.h>

#include "core/error.h"
#include "runtime/llm/llm_internal.h"
#include "runtime/mem/memory.h"
#include "runtime/model/model.h"
#include "runtime/sched/sched.h"

#define MAX_CHUNK 512

struct TinyAILayerScheduler {
    TinyAIModel *m;
    TinyAILayerSchedulerConfig cfg;
    TinyAISession *s;
    int n_layers, ctx;
    TinyAICheckpointStrategy *strategy;
    float **held;        /* per layer: its output, or NULL */
    int32_t *ids;        /* the prompt, for recomputing from the start */
    int64_t tokens;      /* its length (0: none yet) */
    int next;            /* the layer the sequence expects next */
    TinyAIExecutionPlan plan;
    int have_plan;
    size_t held_bytes, peak;
    int recomputed;
    const void *lent; /* the copy the last output tensor was pointed at */
};

static size_t row_bytes(const TinyAILayerScheduler *ls) {
    return (size_t)ls->m->hp.n_embd * sizeof(float);
}

static void drop(TinyAILayerScheduler *ls, int l) {
    if (!ls->held[l]) return;
    tai_mem_free(ls->held[l]);
    ls->held[l] = NULL;
    ls->held_bytes -= (size_t)ls->tokens * row_bytes(ls);
}

static void track(TinyAILayerScheduler *ls) {
    size_t b = tai_mapped_memory_bytes(ls->m->mm) + ls->m->ws.bytes + ls->held_bytes +
               (size_t)tinyaiSessionMemoryBytes(ls->s);
    if (b > ls->peak) ls->peak = b;
}

TinyAILayerScheduler *tinyaiCreateLayerScheduler(TinyAIModel *m, const TinyAILayerSchedulerConfig *c) {
    if (!m || !c) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiCreateLayerScheduler: NULL argument");
        return NULL;
    }
    if (!(c->memory_speed_tradeoff >= 0.0f && c->memory_speed_tradeoff <= 1.0f)) {
        tai_error(TINYAI_ERR_INVALID_ARG, "memory_speed_tradeoff %g is outside [0, 1]",
                  (double)c->memory_speed_tradeoff);
        return NULL;
    }
    if (m->n_sessions > 0) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiCreateLayerScheduler: the model has %d live "
                  "session(s); the scheduler needs it to itself", m->n_sessions);
        return NULL;
    }
    TinyAILayerScheduler *ls = calloc(1, sizeof *ls);
    if (!ls) {
        tai_error(TINYAI_ERR_NOMEM, "out of memory");
        return NULL;
    }
    ls->m = m;
    ls->cfg = *c;
    ls->n_layers = m->file->n_layers;
    ls->strategy = calloc((size_t)ls->n_layers, sizeof *ls->strategy);
    ls->held = calloc((size_t)ls->n_layers, sizeof *ls->held);
    /* the sequence (planning the model if it has a limit and no plan yet) */
    if (!ls->strategy || !ls->held || tinyaiCreateSession(m, 0, &ls->s) != TINYAI_OK) {
        if (ls->strategy && ls->held) tai_error_prefix("tinyaiCreateLayerScheduler");
        else tai_error(TINYAI_ERR_NOMEM, "out of memory");
        tinyaiFreeLayerScheduler(ls);
        return NULL;
    }
    ls->ctx = tinyaiSessionContextSize(ls->s);
    /* the default strategies */
    const float t = c->memory_speed_tradeoff;
    const int every = c->enable_checkpointing ? 1 + (int)((1.0f - t) * 7.0f + 0.5f) : 0;
    for (int l = 0; l < ls->n_layers; l++)
        ls->strategy[l] = every && l % every == 0 ? TINYAI_CHECKPOINT_STORE
                          : c->recompute_activations ? TINYAI_CHECKPOINT_RECOMPUTE
                                                     : TINYAI_CHECKPOINT_NONE;
    return ls;
}

void tinyaiFreeLayerScheduler(TinyAILayerScheduler *ls) {
    if (!ls) return;
    for (int l = 0; ls->held && l < ls->n_layers; l++) drop(ls, l);
    tinyaiFreeSession(ls->s);
    free(ls->strategy);
    free(ls->held);
    free(ls->ids);
    free(ls);
}

TinyAIExecutionPlan *tinyaiCreateExecutionPlan(TinyAILayerScheduler *ls) {
    if (!ls) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiCreateExecutionPlan: NULL scheduler");
        return NULL;
    }
    TinyAIModel *m = ls->m;
    /* under a memory limit the memory plan's batch is the most it allows */
    int chunk = m->planned && m->cfg.memoryLimit > 0 && m->ws.n_ubatch < MAX_CHUNK ? m->ws.n_ubatch
                                                                                 : MAX_CHUNK;
    if (chunk > ls->ctx) chunk = ls->ctx;
    const size_t bound = ls->cfg.max_activation_memory;
    while (chunk > 1 && bound > 0 && tai_workspace_bytes(m, chunk, ls->ctx, 1) > bound) chunk /= 2;
    const size_t ws = tai_workspace_bytes(m, chunk, ls->ctx, 1);
    if (bound > 0 && ws > bound) {
        tai_error(TINYAI_ERR_RANGE, "max_activation_memory %zu bytes is below one token's "
                  "activations (%zu bytes)", bound, ws);
        return NULL;
    }
    if (m->ws.n_ubatch != chunk || m->ws.att_ctx < ls->ctx) {
        TinyAIStatus st = tai_workspace_alloc(m, chunk, ls->ctx, 1);
        if (st != TINYAI_OK) return NULL;
    }
    ls->plan.nLayers = ls->n_layers;
    ls->plan.chunkTokens = chunk;
    ls->plan.activationBytes = m->ws.bytes;
    ls->plan.strategy = ls->strategy;
    ls->have_plan = 1;
    return &ls->plan;
}

bool tinyaiSetLayerCheckpointingStrategy(TinyAILayerScheduler *ls, int l,
                                         TinyAICheckpointStrategy strategy) {
    if (!ls || l < 0 || l >= ls->n_layers || (unsigned)strategy > TINYAI_CHECKPOINT_RECOMPUTE) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiSetLayerCheckpointingStrategy: layer %d, "
                  "strategy %d", l, (int)strategy);
        return false;
    }
    ls->strategy[l] = strategy;
    return true;
}

/* Runs layer l over the prompt from `in` (tokens x n_embd floats; the ids
 * for layer 0) into a new buffer *out (tokens x n_embd floats; for the head
 * the last token's logits go to the session). */
static TinyAIStatus run(TinyAILayerScheduler *ls, int l, const float *in, float **out) {
    TinyAIModel *m = ls->m;
    const int head = l == ls->n_layers - 1;
    const size_t rb = row_bytes(ls);
    const int64_t T = ls->tokens, chunk = ls->plan.chunkTokens;
    float *o = NULL;
    if (!head) { /* held from now on (the caller keeps or drops it) */
        o = tai_mem_alloc(TAI_MEM_ACT, (size_t)T * rb, 64, false);
        if (!o) return TINYAI_ERR_NOMEM;
        ls->held_bytes += (size_t)T * rb;
    }
    TinyAISession **seq = malloc((size_t)chunk * sizeof *seq);
    int *pos = malloc((size_t)chunk * sizeof *pos);
    if (!seq || !pos) {
        free(seq), free(pos), tai_mem_free(o);
        if (o) ls->held_bytes -= (size_t)T * rb;
        return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    }
    TinyAIStatus st = TINYAI_OK;
    /* the head needs the last token only */
    for (int64_t c0 = head ? T - 1 : 0; c0 < T && st == TINYAI_OK; c0 += chunk) {
        const int n = (int)(T - c0 < chunk ? T - c0 : chunk);
        for (int i = 0; i < n; i++) {
            seq[i] = ls->s;
            pos[i] = (int)(c0 + i);
        }
        const tai_batch b = {m, n, ls->ids + c0, seq, pos, T >= 2 ? 0 : n};
        if (l > 0) {
            memcpy(m->ws.x, in + c0 * m->hp.n_embd, (size_t)n * rb);
            tai_llama_angles(&b);
        }
        st = tai_sched_layer_cpu(&b, l);
        if (st == TINYAI_OK && !head) memcpy(o + c0 * m->hp.n_embd, m->ws.x, (size_t)n * rb);
        track(ls);
    }
    free(seq);
    free(pos);
    if (st != TINYAI_OK) {
        tai_mem_free(o);
        if (o) ls->held_bytes -= (size_t)T * rb;
        return st;
    }
    if (head) {
        /* as a pass ends: the session moves past the prompt, and the
         * logits are soft-capped where the model caps them */
        TinyAISession *s = ls->s;
        const int last = (int)(T - 1);
        const tai_batch b = {m, 1, ls->ids + last, &s, &last, T >= 2 ? 0 : 1};
        s->have_logits = 1;
        tai_llama_finish(&b);
    }
    *out = o;
    return TINYAI_OK;
}

/* Makes sure layer l's output is held: recomputed from the last stored
 * checkpoint before it if it was dropped with RECOMPUTE. */
static TinyAIStatus need_output(TinyAILayerScheduler *ls, int l) {
    if (ls->held[l]) return TINYAI_OK;
    if (ls->strategy[l] != TINYAI_CHECKPOINT_RECOMPUTE)
        return tai_error(TINYAI_ERR_INVALID_ARG, "layer %d's output was not kept (its checkpoint "
                         "strategy is NONE): run the layers in order, or set RECOMPUTE or "
                         "STORE", l);
    int k = l - 1;
    while (k >= 0 && !ls->held[k]) {
        if (ls->strategy[k] == TINYAI_CHECKPOINT_NONE)
            return tai_error(TINYAI_ERR_INVALID_ARG, "recomputing layer %d needs layer %d's "
                             "output, which was not kept (strategy NONE)", l, k);
        k--;
    }
    for (int j = k + 1; j <= l; j++) {
        float *o = NULL;
        TinyAIStatus st = run(ls, j, j > 0 ? ls->held[j - 1] : NULL, &o);
        if (st != TINYAI_OK) return st;
        ls->held[j] = o;
        ls->recomputed++;
        /* the chain's inner outputs go again once used */
        if (j - 1 > k && j - 1 >= 0 && ls->strategy[j - 1] != TINYAI_CHECKPOINT_STORE) drop(ls, j - 1);
        track(ls);
    }
    return TINYAI_OK;
}

bool tinyaiExecuteLayerWithMemoryOptimization(TinyAILayerScheduler *ls, int l, TinyAITensor *input,
                                              TinyAITensor *output) {
    if (!ls || l < 0 || l >= ls->n_layers) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiExecuteLayerWithMemoryOptimization: layer %d of "
                  "%d", l, ls ? ls->n_layers : 0);
        return false;
    }
    if (!ls->have_plan && !tinyaiCreateExecutionPlan(ls)) return false;
    TinyAIModel *m = ls->m;
    const int head = l == ls->n_layers - 1;
    const float *in = NULL;
    if (l == 0) {
        if (!input || input->type != TINYAI_TENSOR_I32 || !input->data || input->tokens < 1) {
            tai_error(TINYAI_ERR_INVALID_ARG, "layer 0 (the embedding) takes the prompt's token "
                      "ids: an I32 tensor of at least one token");
            return false;
        }
        if (input->tokens > ls->ctx) {
            tai_error(TINYAI_ERR_RANGE, "a prompt of %lld tokens is longer than the context (%d)",
                      (long long)input->tokens, ls->ctx);
            return false;
        }
        const int32_t *ids = input->data;
        for (int64_t i = 0; i < input->tokens; i++)
            if (ids[i] < 0 || ids[i] >= m->hp.n_vocab) {
                tai_error(TINYAI_ERR_INVALID_ARG, "token id %d at %lld is outside the vocabulary",
                          ids[i], (long long)i);
                return false;
            }
        /* a new prompt */
        for (int k = 0; k < ls->n_layers; k++) drop(ls, k);
        free(ls->ids);
        ls->ids = malloc((size_t)input->tokens * sizeof *ls->ids);
        if (!ls->ids) {
            tai_error(TINYAI_ERR_NOMEM, "out of memory");
            return false;
        }
        memcpy(ls->ids, ids, (size_t)input->tokens * sizeof *ls->ids);
        ls->tokens = input->tokens;
        tinyaiResetSession(ls->s);
    } else {
        if (ls->tokens == 0) {
            tai_error(TINYAI_ERR_INVALID_ARG, "layer %d before the embedding (layer 0) ran on a "
                      "prompt", l);
            return false;
        }
        if (input && input->data && input->type == TINYAI_TENSOR_F32 && input->data != ls->lent) {
            if (input->tokens != ls->tokens ||
                input->width != m->hp.n_embd) {
                tai_error(TINYAI_ERR_INVALID_ARG, "layer %d takes %lld x %d floats", l,
                          (long long)ls->tokens, m->hp.n_embd);
                return false;
            }
            in = input->data;
        } else {
            if (need_output(ls, l - 1) != TINYAI_OK) return false;
            in = ls->held[l - 1];
        }
    }
    float *o = NULL;
    if (run(ls, l, in, &o) != TINYAI_OK) return false;
    /* the input's layer has served its consumer */
    if (l > 0 && ls->strategy[l - 1] != TINYAI_CHECKPOINT_STORE && in == ls->held[l - 1])
        drop(ls, l - 1);
    drop(ls, l);
    ls->held[l] = o;
    track(ls);
    if (output) {
        const float *src = head ? tinyaiGetLogits(ls->s) : o;
        const int64_t rows = head ? 1 : ls->tokens, width = head ? m->hp.n_vocab : m->hp.n_embd;
        const size_t bytes = (size_t)rows * (size_t)width * sizeof(float);
        output->type = TINYAI_TENSOR_F32;
        output->tokens = rows;
        output->width = width;
        if (!output->data || output->data == ls->lent) { /* ours again: a new one */
            output->data = (void *)src;
            output->capacity = bytes;
            ls->lent = src;
        } else if (output->capacity < bytes) {
            tai_error(TINYAI_ERR_RANGE, "layer %d's output takes %zu bytes; the tensor holds %zu",
                      l, bytes, output->capacity);
            return false;
        } else {
            memcpy(output->data, src, bytes);
        }
    }
    return true;
}

TinyAIMemoryEstimate tinyaiEstimateMemoryUsage(TinyAILayerScheduler *ls) {
    TinyAIMemoryEstimate e;
    memset(&e, 0, sizeof e);
    if (!ls || (!ls->have_plan && !tinyaiCreateExecutionPlan(ls))) return e;
    TinyAIMemoryInfo mi;
    tinyaiGetMemoryInfo(ls->m, &mi);
    e.tokens = ls->tokens > 0 ? (int)ls->tokens : ls->ctx;
    e.weightBytes = mi.cacheBytes + mi.stagingBytes;
    e.kvCacheBytes = (size_t)tinyaiSessionMemoryBytes(ls->s);
    e.activationBytes = ls->m->ws.bytes;
    int stored = 0;
    for (int l = 0; l < ls->n_layers - 1; l++) stored += ls->strategy[l] == TINYAI_CHECKPOINT_STORE;
    /* the stored outputs, and at the last of them the layer's input and
     * output in flight besides: at most two more */
    const int in_flight = 2;
    e.checkpointBytes = (size_t)(stored + in_flight) * (size_t)e.tokens * row_bytes(ls);
    e.totalBytes = e.weightBytes + e.kvCacheBytes + e.activationBytes + e.checkpointBytes;
    return e;
}

TinyAILayerSchedulerStats tinyaiGetLayerSchedulerStats(const TinyAILayerScheduler *ls) {
    TinyAILayerSchedulerStats s = {0, 0};
    if (ls) {
        s.peakBytes = ls->peak;
        s.layersRecomputed = ls->recomputed;
    }
    return s;
}
