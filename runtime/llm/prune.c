/*
 * runtime/llm/prune.c: block pruning (<tinyai/utils/prune.h>).
 *
 * The output is the source's .tmai with each pruned matrix replaced by its
 * block-sparse form, written by the .tmai writer, which asks for a pruned
 * tensor's bytes when its turn comes (tai_tmai_write_options.produce): one
 * matrix in memory at a time. A matrix is pruned panel by panel: its 16
 * rows are brought to row-major bytes (from GGUF rows, packed panels or an
 * earlier block-sparse form, where pruned blocks are zeros), each tile's
 * score computed from the dequantized weights, the best tiles kept (ties
 * to the lower column, so the result is deterministic) and the kept blocks'
 * bytes packed as they are.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tinyai/utils/prune.h>

#include "core/error.h"
#include "offload/host.h"
#include "runtime/llm/llm_internal.h"
#include "runtime/model/model.h"

#define MAX_SPARSITY 0.97f

void tinyaiInitPruneConfig(TinyAIPruneConfig *c) {
    if (!c) return;
    memset(c, 0, sizeof *c);
    c->method = TINYAI_PRUNE_MAGNITUDE;
    c->sparsity = 0.5f;
    c->blockSize = 32;
    for (int i = 0; i < TINYAI_PRUNE_MAX_LAYERS; i++) c->layerSparsity[i] = -1.0f;
}

static TinyAIStatus check_config(const TinyAIPruneConfig *c) {
    if (c->method != TINYAI_PRUNE_MAGNITUDE && c->method != TINYAI_PRUNE_BLOCK_L2 &&
        c->method != TINYAI_PRUNE_NORM_WEIGHTED)
        return tai_error(TINYAI_ERR_INVALID_ARG, "prune: unknown method %d", (int)c->method);
    if (!(c->sparsity >= 0.0f && c->sparsity <= MAX_SPARSITY))
        return tai_error(TINYAI_ERR_INVALID_ARG, "prune: sparsity %g is outside 0..%.2f",
                         (double)c->sparsity, (double)MAX_SPARSITY);
    for (int i = 0; i < TINYAI_PRUNE_MAX_LAYERS; i++)
        if (c->layerSparsity[i] > MAX_SPARSITY || isnan(c->layerSparsity[i]))
            return tai_error(TINYAI_ERR_INVALID_ARG,
                             "prune: layerSparsity[%d] = %g is above %.2f", i,
                             (double)c->layerSparsity[i], (double)MAX_SPARSITY);
    if (c->blockSize < 0)
        return tai_error(TINYAI_ERR_INVALID_ARG, "prune: blockSize %d is negative", c->blockSize);
    return TINYAI_OK;
}

/* The transformer block a matrix belongs to, or -1 if it is not one of the
 * matrices pruning applies to. */
static int pruned_block(const char *name) {
    int blk = -1, len = 0;
    if (sscanf(name, "blk.%d.%n", &blk, &len) != 1 || len == 0) return -1;
    static const char *const mats[] = {"attn_q.weight",  "attn_k.weight",   "attn_v.weight",
                                       "attn_output.weight", "ffn_gate.weight", "ffn_up.weight",
                                       "ffn_down.weight"};
    for (size_t i = 0; i < sizeof mats / sizeof *mats; i++)
        if (!strcmp(name + len, mats[i])) return blk;
    return -1;
}

typedef struct {
    const tai_model_file *src;
    tai_tensor *out;  /* the output's tensor table (pruned ones: data NULL) */
    int64_t *unit;    /* per tensor: 32-column blocks per tile */
    const float **gain; /* per tensor: its input columns' norm weights
                           (TINYAI_PRUNE_NORM_WEIGHTED), or NULL */
    TinyAIPruneMethod method;
    TinyAIPruneProgress progress;
    void *user;
    uint64_t done, total;
} prune_job;

/* Row r of a source tensor as row-major bytes of its type. */
static void source_row(const tai_tensor *t, int64_t r, uint8_t *dst) {
    const int64_t rows = t->ne[1], n = t->ne[0];
    const size_t rb = tai_type_row_bytes(t->type, n);
    if (t->layout == TAI_LAYOUT_ROWS) {
        memcpy(dst, (const uint8_t *)t->data + (size_t)r * rb, rb);
    } else if (t->layout == TAI_LAYOUT_PACKED) {
        tai_unpack_row(t->type, t->data, rows, n, r, dst);
    } else { /* block-sparse: the kept blocks, zeros elsewhere */
        tai_sparse_unpack_row(t->type, t->data, rows, n, t->keep, r, dst);
    }
}

typedef struct {
    double score;
    int64_t unit;
} scored;

static int by_score(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1; /* best first */
    return x->unit < y->unit ? -1 : x->unit > y->unit;             /* then by column */
}

static int by_index(const void *a, const void *b) {
    const uint16_t x = *(const uint16_t *)a, y = *(const uint16_t *)b;
    return (x > y) - (x < y);
}

static TinyAIStatus produce(void *ctx, int64_t ti, void *dst, uint64_t size) {
    prune_job *j = ctx;
    const tai_tensor *s = &j->src->tensors[ti], *o = &j->out[ti];
    const int64_t rows = s->ne[1], n = s->ne[0], nb = n / TAI_QK, k = j->unit[ti];
    const int64_t units = nb / k, keep_units = o->keep / k;
    const size_t rb = tai_type_row_bytes(s->type, n), pb = tai_sparse_panel_bytes(s->type, n, o->keep);
    if (pb * (size_t)((rows + TAI_PANEL - 1) / TAI_PANEL) != size)
        return tai_error(TINYAI_ERR_INTERNAL, "prune: %s: size mismatch", s->name);
    uint8_t *rowbuf = malloc(rb * TAI_PANEL);
    uint8_t *tmp = malloc(TAI_PANEL * tai_type_row_bytes(s->type, o->keep * TAI_QK));
    float *f = malloc((size_t)n * sizeof *f);
    scored *sc = malloc((size_t)units * sizeof *sc);
    uint16_t *idx = malloc((size_t)o->keep * sizeof *idx);
    if (!rowbuf || !tmp || !f || !sc || !idx) {
        free(rowbuf), free(tmp), free(f), free(sc), free(idx);
        return tai_error(TINYAI_ERR_NOMEM, "prune: out of memory for %s", s->name);
    }
    for (int64_t p = 0; p * TAI_PANEL < rows; p++) {
        const int64_t nrows = rows - p * TAI_PANEL < TAI_PANEL ? rows - p * TAI_PANEL : TAI_PANEL;
        for (int64_t u = 0; u < units; u++) sc[u] = (scored){0.0, u};
        for (int64_t r = 0; r < nrows; r++) {
            uint8_t *row = rowbuf + (size_t)r * rb;
            source_row(s, p * TAI_PANEL + r, row);
            tai_dequantize_row(s->type, row, f, n);
            const float *g = j->gain[ti];
            for (int64_t u = 0; u < units; u++) {
                double acc = 0;
                for (int64_t e = u * k * TAI_QK; e < (u + 1) * k * TAI_QK; e++)
                    acc += j->method == TINYAI_PRUNE_BLOCK_L2 ? (double)f[e] * f[e]
                           : g                                 ? fabs((double)f[e] * g[e])
                                                               : fabs(f[e]);
                sc[u].score += acc;
            }
        }
        qsort(sc, (size_t)units, sizeof *sc, by_score);
        int64_t m = 0;
        for (int64_t u = 0; u < keep_units; u++)
            for (int64_t b = 0; b < k; b++) idx[m++] = (uint16_t)(sc[u].unit * k + b);
        qsort(idx, (size_t)m, sizeof *idx, by_index);
        tai_host_pack_sparse_panel(s->type, rowbuf, nrows, n, o->keep, idx,
                                   (uint8_t *)dst + (size_t)p * pb, tmp);
    }
    free(rowbuf), free(tmp), free(f), free(sc), free(idx);
    j->done += s->size;
    if (j->progress) j->progress(j->user, j->done, j->total);
    return TINYAI_OK;
}

/* The F32 RMSNorm weight in front of block matrix `name` (attn_norm for
 * q/k/v, ffn_norm for gate/up), or NULL. */
static const float *norm_gain(const tai_model_file *mf, const char *name, int blk, int64_t n) {
    const char *which = NULL;
    if (strstr(name, ".attn_q.") || strstr(name, ".attn_k.") || strstr(name, ".attn_v."))
        which = "attn_norm";
    else if (strstr(name, ".ffn_gate.") || strstr(name, ".ffn_up."))
        which = "ffn_norm";
    if (!which) return NULL;
    char nm[96];
    snprintf(nm, sizeof nm, "blk.%d.%s.weight", blk, which);
    const tai_tensor *t = tai_model_file_find_tensor(mf, nm);
    return t && t->type == TAI_TYPE_F32 && t->layout == TAI_LAYOUT_ROWS && t->ne[0] == n
               ? (const float *)t->data
               : NULL;
}

/* The largest divisor of nb not above want (want >= 1). */
static int64_t unit_blocks(int64_t nb, int64_t want) {
    if (want > nb) want = nb;
    while (nb % want != 0) want--;
    return want;
}

static TinyAIStatus prune_file(const tai_model_file *mf, const char *out,
                               const TinyAIPruneConfig *c, TinyAIPruneProgress progress,
                               void *user) {
    prune_job j = {.src = mf, .method = c->method, .progress = progress, .user = user};
    j.out = malloc(sizeof *j.out * (size_t)(mf->n_tensors ? mf->n_tensors : 1));
    j.unit = calloc((size_t)(mf->n_tensors ? mf->n_tensors : 1), sizeof *j.unit);
    j.gain = calloc((size_t)(mf->n_tensors ? mf->n_tensors : 1), sizeof *j.gain);
    if (!j.out || !j.unit || !j.gain) {
        free(j.out), free(j.unit), free(j.gain);
        return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    }
    const int64_t want = c->blockSize <= TAI_QK ? 1 : (c->blockSize + TAI_QK - 1) / TAI_QK;
    TinyAIStatus st = TINYAI_OK;
    for (int64_t i = 0; i < mf->n_tensors; i++) {
        const tai_tensor *t = &mf->tensors[i];
        j.out[i] = *t;
        int64_t bad = 0;
        if (t->layout == TAI_LAYOUT_SPARSE &&
            !tai_sparse_check(t->type, t->data, t->ne[1], t->ne[0], t->keep, &bad)) {
            st = tai_error(TINYAI_ERR_FORMAT, "%s: block-sparse tensor '%s': panel %lld has a bad "
                           "kept-block index", mf->path, t->name, (long long)bad);
            break;
        }
        const int blk = pruned_block(t->name);
        if (blk < 0 || t->n_dims != 2 || t->ne[0] % TAI_QK != 0) continue;
        const float s = blk < TINYAI_PRUNE_MAX_LAYERS && c->layerSparsity[blk] >= 0.0f
                            ? c->layerSparsity[blk]
                            : c->sparsity;
        const int64_t nb = t->ne[0] / TAI_QK, k = unit_blocks(nb, want), units = nb / k;
        int64_t keep_units = (int64_t)llround((1.0 - (double)s) * (double)units);
        if (keep_units < 1) keep_units = 1;
        if (keep_units >= units && t->layout != TAI_LAYOUT_SPARSE) continue; /* stays dense */
        if (keep_units > units) keep_units = units;
        tai_tensor *o = &j.out[i];
        o->layout = TAI_LAYOUT_SPARSE;
        o->keep = keep_units * k;
        o->size = tai_sparse_bytes(t->type, t->ne[1], t->ne[0], o->keep);
        o->data = NULL;
        j.unit[i] = k;
        if (c->method == TINYAI_PRUNE_NORM_WEIGHTED) j.gain[i] = norm_gain(mf, t->name, blk, t->ne[0]);
        j.total += t->size;
        if (o->size == 0) {
            st = tai_error(TINYAI_ERR_UNSUPPORTED, "%s: too large to store block-sparse", t->name);
            break;
        }
    }
    if (st == TINYAI_OK) {
        tai_model_file view = *mf;
        view.tensors = j.out;
        tai_tmai_write_options o = tai_tmai_default_write_options();
        o.produce = produce;
        o.produce_ctx = &j;
        st = tai_tmai_write_with(&view, out, &o);
    }
    free(j.out);
    free(j.unit);
    free(j.gain);
    return st;
}

static TinyAIStatus write_pruned(const tai_model_file *mf, const char *path, const void *ctx) {
    return prune_file(mf, path, ctx, NULL, NULL);
}

TinyAIStatus tinyaiPruneModel(TinyAIModel *m, const TinyAIPruneConfig *c) {
    if (!m || !c) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiPruneModel: NULL argument");
    TinyAIStatus st = check_config(c);
    if (st) return st;
    return tai_model_rewrite(m, c->tempDir, "tinyaiPruneModel", write_pruned, c);
}

size_t tinyaiCalculatePruningSavings(const TinyAIModel *m) {
    if (!m) return 0;
    size_t saved = 0;
    for (int64_t i = 0; i < m->file->n_tensors; i++) {
        const tai_tensor *t = &m->file->tensors[i];
        if (t->layout == TAI_LAYOUT_SPARSE)
            saved += tai_pack_bytes(t->type, t->ne[1], t->ne[0]) - (size_t)t->size;
    }
    return saved;
}

TinyAIStatus tinyaiPruneModelFile(const char *in, const char *out, const TinyAIPruneConfig *c,
                                  TinyAIPruneProgress progress, void *user) {
    if (!in || !out || !*in || !*out || !c)
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiPruneModelFile: missing argument");
    TinyAIStatus st = check_config(c);
    if (st) return st;
    const size_t len = strlen(out);
    if (len < 5 || strcmp(out + len - 5, ".tmai") != 0)
        return tai_error(TINYAI_ERR_INVALID_ARG, "%s: a pruned model is a .tmai file (GGUF has "
                         "no block-sparse layout); name the output *.tmai", out);
    TinyAIModel *m = NULL;
    st = tai_model_open_source(in, out, &m);
    if (st == TINYAI_OK) st = prune_file(m->file, out, c, progress, user);
    tinyaiFreeModel(m);
    return st;
}
