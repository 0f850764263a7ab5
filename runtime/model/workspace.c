/*
 * runtime/model: the model's memory outside the weight cache: the bytes of
 * a session (KV cache, logits) and of the shared workspace of activations
 * and scratch, their allocation on the host and on every device a layer
 * may run on, and the tracked total. The memory plan (runtime/sched) sizes
 * them against the limit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/liveplan.h"
#include "offload/plugin/plugin.h"
#include "runtime/mem/memory.h"
#include "runtime/model/model.h"


static size_t fbytes(size_t a, size_t b) {
    return a != 0 && b > SIZE_MAX / sizeof(float) / a ? SIZE_MAX : a * b * sizeof(float);
}

static size_t add_sat(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

size_t tai_session_bytes(const TinyAIModel *m, int n_ctx) {
    const size_t kv = tai_kv_cache_bytes(m, n_ctx); /* K's, the same for V */
    return add_sat(add_sat(kv, kv), fbytes((size_t)m->hp.n_vocab, 1));
}

/* Scratch a product with `w` (dense or block-sparse) needs on d; with
 * prompts on the device's prompt products (bf16Prompts), theirs too. */
static size_t mat_scratch(const TinyAIModel *m, tai_device *d, const tai_wref *w, int nub) {
    if (w->keep) return tai_dev_matmul_sparse_scratch(d, w->type, w->n, w->keep, nub);
    const size_t s = tai_dev_matmul_scratch(d, w->type, w->n, nub);
    const size_t p = m->cfg.bf16Prompts ? tai_dev_matmul_prompt_scratch(d, w->type, w->n, nub) : 0;
    return s > p ? s : p;
}

/* The most any product of the model needs on d. */
static size_t dev_scratch_bytes(const TinyAIModel *m, tai_device *d, int nub) {
    size_t best = mat_scratch(m, d, &m->output, nub);
    for (int l = 0; l < m->hp.n_layer; l++) {
        const tai_block *b = &m->blocks[l];
        const tai_wref *mats[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
        for (size_t i = 0; i < sizeof mats / sizeof *mats; i++) {
            size_t need = mat_scratch(m, d, mats[i], nub);
            if (need > best) best = need;
        }
    }
    return best;
}

static size_t scratch_bytes(const TinyAIModel *m, int nub) {
    return (dev_scratch_bytes(m, m->dev, nub) + 63) & ~(size_t)63;
}

/* ---- The workspace's buffers, placed by their lifetimes -----------------
 *
 * The forward pass (llama.c) uses its buffers at these steps:
 *   0 embed: x, emb_read          9 x += xb
 *   1 rmsnorm x -> xb            10 rmsnorm x -> xb
 *   2-4 xb -> q, k, v            11-12 xb -> gate, up
 *   5-6 rope q, k (rope_cs)      13 swiglu gate, up
 *   7 attention q, k, v ->       14 gate -> ffn_out (down)
 *     att_out (att_scratch,      15 x += ffn_out
 *     att_k, att_v, att_pos)     16 head: x -> xb -> logits (batch_logits)
 *   8 att_out -> xb (wo)
 * and every step again for each block, so a buffer's lifetime within one
 * block is what counts (x, xb, rope_cs and the products' scratch live
 * throughout). Placed with core/liveplan.h, the attention buffers (q, k, v,
 * att_out) share their bytes with the feed-forward ones (gate, up, ffn_out)
 * and the embedding and logits buffers with both: the activations take
 * about a third less than one buffer each (m->act_separate: one each, for
 * comparison and for the memory optimizer's off switch). */
enum {
    B_X, B_XB, B_Q, B_K, B_V, B_ATT_OUT, B_GATE, B_UP, B_FFN_OUT, B_ATT_SCRATCH, B_ATT_K,
    B_ATT_V, B_ATT_POS, B_ROPE, B_LOGITS, B_MM, B_EMB, B_COUNT
};

/* The RoPE angle sets a pass computes: one, or two with sliding-window
 * blocks of their own base. */
static int rope_sets(const TinyAIModel *m) { return (m->hp.flags & TAI_ARCH_SWA) ? 2 : 1; }

static void layout(const TinyAIModel *m, int n_ubatch, int att_ctx, int n_seq,
                   tai_live_buf b[B_COUNT]) {
    const tai_hparams *hp = &m->hp;
    const size_t E = (size_t)hp->n_embd, F = (size_t)hp->n_ff, U = (size_t)n_ubatch;
    const size_t kvd = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t cols = U > (size_t)n_seq ? U : (size_t)n_seq;
    const size_t er = tai_llama_emb_buffer_bytes(m);
#define BUF(i, sz, al, f, l) b[i] = (tai_live_buf){(sz), (al), (f), (l), 0}
    BUF(B_X, fbytes(U, E), 64, 0, 16);
    BUF(B_XB, fbytes(U, E), 64, 1, 16);
    const size_t Q = (size_t)hp->q_dim;
    BUF(B_Q, fbytes(U, Q), 64, 2, 7);
    BUF(B_K, fbytes(U, kvd), 64, 3, 7);
    BUF(B_V, fbytes(U, kvd), 64, 4, 7);
    BUF(B_ATT_OUT, fbytes(U, Q), 64, 7, 8);
    BUF(B_GATE, fbytes(U, F), 64, 11, 14);
    BUF(B_UP, fbytes(U, F), 64, 12, 13);
    BUF(B_FFN_OUT, fbytes(U, E), 64, 14, 15);
    BUF(B_ATT_SCRATCH,
        (tai_dev_attention_scratch_cols(m->dev, att_ctx, hp->n_head, U) + 63) / 64 * 64 + 64, 64, 7, 7);
    /* the caches, then (an 8-bit cache's) their scales */
    BUF(B_ATT_K, 2 * cols * sizeof(tai_dref), 64, 7, 7);
    BUF(B_ATT_V, 2 * cols * sizeof(tai_dref), 64, 7, 7);
    BUF(B_ATT_POS, cols * sizeof(int32_t), 64, 7, 7);
    BUF(B_ROPE, fbytes(U, (size_t)hp->rot_dim * (size_t)rope_sets(m)), 64, 0, 16);
    BUF(B_LOGITS, n_seq > 1 ? fbytes((size_t)n_seq, (size_t)hp->n_vocab) : 0, 64, 16, 16);
    BUF(B_MM, scratch_bytes(m, n_ubatch > n_seq ? n_ubatch : n_seq), 64, 1, 16);
    BUF(B_EMB, er, er ? tai_llama_emb_buffer_align(m) : 64, 0, 0);
#undef BUF
    for (int i = 0; i < B_COUNT; i++)
        if (b[i].size == SIZE_MAX) b[i].size = SIZE_MAX / 4; /* refused by the plan below */
}

/* Places the buffers (one after the other if separate) and returns the
 * arena's bytes, SIZE_MAX on overflow. */
static size_t place_buffers(tai_live_buf b[B_COUNT], int separate) {
    if (separate) { /* lifetimes all overlapping: nothing shared */
        for (int i = 0; i < B_COUNT; i++) {
            b[i].first = 0;
            b[i].last = 16;
        }
    }
    int tmp[2 * B_COUNT];
    size_t arena = 0;
    return tai_live_place(b, B_COUNT, 4096, &arena, tmp) == 0 ? arena : SIZE_MAX;
}

size_t tai_workspace_bytes(const TinyAIModel *m, int n_ubatch, int att_ctx, int n_seq) {
    tai_live_buf b[B_COUNT];
    layout(m, n_ubatch, att_ctx, n_seq, b);
    return place_buffers(b, m->act_separate);
}

int tai_workspace_plan(const TinyAIModel *m, int n_ubatch, int att_ctx, int n_seq,
                       tai_live_buf *out, int cap) {
    if (cap < B_COUNT) return -1;
    layout(m, n_ubatch, att_ctx, n_seq, out);
    return place_buffers(out, m->act_separate) == SIZE_MAX ? -1 : B_COUNT;
}

size_t tai_workspace_unplanned_bytes(const TinyAIModel *m, int n_ubatch, int att_ctx,
                                     int n_seq) {
    tai_live_buf b[B_COUNT];
    layout(m, n_ubatch, att_ctx, n_seq, b);
    return place_buffers(b, 1);
}

void tai_workspace_free(tai_workspace *ws) {
    tai_mem_free(ws->arena);
    memset(ws, 0, sizeof *ws);
}

TinyAIStatus tai_workspace_alloc(TinyAIModel *m, int n_ubatch, int att_ctx, int n_seq) {
    tai_workspace *ws = &m->ws;
    tai_workspace_free(ws);
    tai_live_buf b[B_COUNT];
    layout(m, n_ubatch, att_ctx, n_seq, b);
    const size_t bytes = place_buffers(b, m->act_separate);
    if (bytes == SIZE_MAX)
        return tai_error(TINYAI_ERR_NOMEM, "activations for %d columns do not fit in memory",
                         n_ubatch);
    /* TinyAI's activations memory (runtime/mem/memory.h), zeroed */
    uint8_t *a = tai_mem_alloc(TAI_MEM_ACT, bytes, 4096, true);
    if (!a) {
        tai_error_prefix("cannot allocate %zu bytes of activations", bytes);
        return TINYAI_ERR_NOMEM;
    }
    ws->arena = a;
    ws->n_ubatch = n_ubatch;
    ws->att_ctx = att_ctx;
    ws->n_seq = n_seq;
    ws->x = (float *)(a + b[B_X].offset);
    ws->xb = (float *)(a + b[B_XB].offset);
    ws->q = (float *)(a + b[B_Q].offset);
    ws->k = (float *)(a + b[B_K].offset);
    ws->v = (float *)(a + b[B_V].offset);
    ws->att_out = (float *)(a + b[B_ATT_OUT].offset);
    ws->gate = (float *)(a + b[B_GATE].offset);
    ws->up = (float *)(a + b[B_UP].offset);
    ws->ffn_out = (float *)(a + b[B_FFN_OUT].offset);
    ws->att_scratch = (float *)(a + b[B_ATT_SCRATCH].offset);
    ws->att_scratch_bytes = tai_dev_attention_scratch_cols(m->dev, att_ctx, m->hp.n_head, n_ubatch);
    ws->att_k = (tai_dref *)(a + b[B_ATT_K].offset);
    ws->att_v = (tai_dref *)(a + b[B_ATT_V].offset);
    {
        const int cols = n_ubatch > n_seq ? n_ubatch : n_seq;
        ws->att_ks = ws->att_k + cols;
        ws->att_vs = ws->att_v + cols;
    }
    ws->att_pos = (int32_t *)(a + b[B_ATT_POS].offset);
    ws->rope_cs = (float *)(a + b[B_ROPE].offset);
    ws->rope_swa = rope_sets(m) > 1 ? ws->rope_cs + (size_t)n_ubatch * (size_t)m->hp.rot_dim : NULL;
    ws->batch_logits = n_seq > 1 ? (float *)(a + b[B_LOGITS].offset) : NULL;
    ws->mm_scratch = a + b[B_MM].offset;
    ws->emb_read = b[B_EMB].size ? a + b[B_EMB].offset : NULL;
    ws->bytes = bytes;
    ws->unplanned_bytes = tai_workspace_unplanned_bytes(m, n_ubatch, att_ctx, n_seq);
    return tai_dev_workspaces_alloc(m);
}

/* ---- Device workspaces ------------------------------------------------- */

void tai_dev_workspaces_free(TinyAIModel *m) {
    for (int d = 1; d < m->n_devs; d++) {
        tai_dws *w = &m->dws[d];
        for (int i = 0; i < w->n_bufs; i++) w->dev->ops->buf_free(w->dev->ctx, w->bufs[i]);
        tai_device *dev = w->dev;
        memset(w, 0, sizeof *w);
        w->dev = dev;
    }
}

/* A buffer of `bytes` on w's device, named by its start. */
static TinyAIStatus dws_buf(tai_dws *w, size_t bytes, tai_dref *out) {
    if (w->n_bufs == (int)(sizeof w->bufs / sizeof *w->bufs))
        return tai_error(TINYAI_ERR_INTERNAL, "device workspace: too many buffers");
    tai_dbuf *b = NULL;
    const int rc = w->dev->ops->buf_alloc(w->dev->ctx, bytes ? bytes : 64, &b);
    if (rc != 0) return tai_dev_fail(w->dev, "buf_alloc (activations)", rc);
    w->bufs[w->n_bufs++] = b;
    out->buf = b;
    out->off = 0;
    return TINYAI_OK;
}

TinyAIStatus tai_dev_workspaces_alloc(TinyAIModel *m) {
    const tai_workspace *ws = &m->ws;
    /* the CPU's is the host workspace itself */
    tai_dws *c = &m->dws[0];
    c->dev = m->dev;
    c->x = tai_dref_host(ws->x);
    c->xb = tai_dref_host(ws->xb);
    c->q = tai_dref_host(ws->q);
    c->k = tai_dref_host(ws->k);
    c->v = tai_dref_host(ws->v);
    c->att_out = tai_dref_host(ws->att_out);
    c->gate = tai_dref_host(ws->gate);
    c->up = tai_dref_host(ws->up);
    c->ffn_out = tai_dref_host(ws->ffn_out);
    c->rope_cs = tai_dref_host(ws->rope_cs);
    c->rope_swa = tai_dref_host(ws->rope_swa);
    c->logits = tai_dref_host(ws->batch_logits);
    c->mm_scratch = tai_dref_host(ws->mm_scratch);
    c->att_scratch = tai_dref_host(ws->att_scratch);
    c->att_scratch_bytes = ws->att_scratch_bytes;
    tai_dev_workspaces_free(m);
    const tai_hparams *hp = &m->hp;
    const size_t E = (size_t)hp->n_embd, F = (size_t)hp->n_ff, U = (size_t)ws->n_ubatch;
    const size_t kvd = (size_t)hp->n_head_kv * hp->head_dim, f = sizeof(float);
    const size_t cols = U > (size_t)ws->n_seq ? U : (size_t)ws->n_seq;
    for (int d = 1; d < m->n_devs; d++) {
        tai_dws *w = &m->dws[d];
        TinyAIStatus st = TINYAI_OK;
#define B(field, bytes) \
    if (st == TINYAI_OK) st = dws_buf(w, (bytes), &w->field)
        B(x, U * E * f);
        B(xb, U * E * f);
        B(q, U * (size_t)hp->q_dim * f);
        B(k, U * kvd * f);
        B(v, U * kvd * f);
        B(att_out, U * (size_t)hp->q_dim * f);
        B(gate, U * F * f);
        B(up, U * F * f);
        B(ffn_out, U * E * f);
        B(rope_cs, U * (size_t)hp->rot_dim * f);
        if (ws->rope_swa) B(rope_swa, U * (size_t)hp->rot_dim * f);
        B(logits, cols * (size_t)hp->n_vocab * f);
        B(mm_scratch, dev_scratch_bytes(m, w->dev, (int)cols));
        w->att_scratch_bytes = tai_dev_attention_scratch_cols(w->dev, ws->att_ctx, hp->n_head, ws->n_ubatch);
        B(att_scratch, w->att_scratch_bytes);
#undef B
        if (st != TINYAI_OK) {
            tai_dev_workspaces_free(m);
            return st;
        }
    }
    return TINYAI_OK;
}

void tai_session_dev_free(TinyAISession *s) {
    const TinyAIModel *m = s->model;
    for (int d = 1; m && d < m->n_devs; d++) {
        tai_device *dev = m->devs[d];
        dev->ops->buf_free(dev->ctx, s->dev_k[d]);
        dev->ops->buf_free(dev->ctx, s->dev_v[d]);
        s->dev_k[d] = s->dev_v[d] = NULL;
        free(s->dev_valid[d]);
        s->dev_valid[d] = NULL;
    }
}

TinyAIStatus tai_session_dev_alloc(TinyAISession *s) {
    const TinyAIModel *m = s->model;
    const size_t kvd = (size_t)m->hp.n_head_kv * m->hp.head_dim;
    for (int d = 1; d < m->n_devs; d++) {
        if (m->kv_slots[d] == 0) continue;
        tai_device *dev = m->devs[d];
        const size_t bytes = (size_t)m->kv_slots[d] * (size_t)s->n_ctx * kvd * sizeof(float);
        s->dev_valid[d] = calloc((size_t)m->hp.n_layer, sizeof(int));
        if (!s->dev_valid[d]) {
            tai_session_dev_free(s);
            return tai_error(TINYAI_ERR_NOMEM, "out of memory");
        }
        int rc = dev->ops->buf_alloc(dev->ctx, bytes, &s->dev_k[d]);
        if (rc == 0) rc = dev->ops->buf_alloc(dev->ctx, bytes, &s->dev_v[d]);
        if (rc != 0) {
            TinyAIStatus st = tai_dev_fail(dev, "buf_alloc (KV cache)", rc);
            tai_session_dev_free(s);
            return st;
        }
    }
    return TINYAI_OK;
}

size_t tai_model_current_bytes(const TinyAIModel *m) {
    size_t b = tai_mapped_memory_bytes(m->mm);
    b = add_sat(b, m->fixed_bytes);
    b = add_sat(b, m->ws.bytes);
    b = add_sat(b, m->sessions_bytes);
    /* host memory the plugins of its devices hold through their host table
     * (staging, or device memory that is the host's), each plugin once; a
     * plugin shared by several models counts in each */
    for (int d = 1; d < m->n_devs; d++) {
        const tai_plugin *p = tai_plugin_of(m->devs[d]);
        int seen = 0;
        for (int e = 1; e < d; e++) seen |= p && tai_plugin_of(m->devs[e]) == p;
        if (p && !seen) b = add_sat(b, (size_t)tai_plugin_host_bytes(p));
    }
    TinyAIModel *mut = (TinyAIModel *)m; /* the peak is bookkeeping */
    if (b > mut->peak_bytes) mut->peak_bytes = b;
    return b;
}

