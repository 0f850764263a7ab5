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
    if (s->plan && tai_plan_is_prepared(s->plan) && s->started && s->step > 0)
        b += tai_plan_step_bytes(s->plan, s->step - 1);
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
    if (st == TINYAI_OK) st = tai_model_create(model, 0, &cfg, &s->model);
    if (st == TINYAI_OK) {
        int ctx = s->model->hp.n_ctx_train < SCHED_CTX ? s->model->hp.n_ctx_train : SCHED_CTX;
        /* the plan now, so that a limit too small fails at creation */
        st = tai_model_plan(s->model, ctx, 1);
    }
    if (st == TINYAI_OK) {
        s->n_order = s->model->hp.n_layer + 2;
        s->order = malloc((size_t)s->n_order * sizeof *s->order);
        if (!s->order) st = tai_error(TINYAI_ERR_NOMEM, "out of memory");
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
    /* a Llama pass runs its layers in their own order, each once */
    const int steps = tai_plan_step_count(s->plan);
    bool ok = steps == nl;
    for (int i = 0; ok && i < steps; i++) ok = tai_plan_step_layer(s->plan, i) == i;
    if (!ok) {
        char got[256];
        size_t off = 0;
        for (int i = 0; i < steps && off + 16 < sizeof got; i++)
            off += (size_t)snprintf(got + off, sizeof got - off, "%s%d", i ? " " : "",
                                    tai_plan_step_layer(s->plan, i));
        tai_error(TINYAI_ERR_INVALID_ARG,
                  "this model's forward pass runs its %d layers in order 0..%d, each once; the "
                  "schedule gives %d step(s): %s",
                  nl, nl - 1, steps, steps ? got : "(none)");
        return false;
    }
    /* The declared outputs live beside the weights and the runtime's
     * buffers (see track), so under a limit the model is planned in what
     * they leave of it. */
    const size_t outputs = tai_plan_peak_bytes(s->plan);
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
    tai_batch b = {s->model, s->pass_n, toks, s->seq, s->pos};
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
