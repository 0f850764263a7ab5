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
#include "offload/plugin/plugin.h"
#include "runtime/mem/memory.h"
#include "runtime/model/model.h"


static size_t fbytes(size_t a, size_t b) {
    return a != 0 && b > SIZE_MAX / sizeof(float) / a ? SIZE_MAX : a * b * sizeof(float);
}

static size_t add_sat(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

size_t tai_session_bytes(const TinyAIModel *m, int n_ctx) {
    const tai_hparams *hp = &m->hp;
    const size_t kvd = (size_t)hp->n_head_kv * hp->head_dim;
    size_t kv = fbytes((size_t)hp->n_layer * (size_t)n_ctx, kvd);
    return add_sat(add_sat(kv, kv), fbytes((size_t)hp->n_vocab, 1));
}

/* Scratch a product with `w` (dense or block-sparse) needs on d. */
static size_t mat_scratch(tai_device *d, const tai_wref *w, int nub) {
    return w->keep ? tai_dev_matmul_sparse_scratch(d, w->type, w->n, w->keep, nub)
                   : tai_dev_matmul_scratch(d, w->type, w->n, nub);
}

/* The most any product of the model needs on d. */
static size_t dev_scratch_bytes(const TinyAIModel *m, tai_device *d, int nub) {
    size_t best = mat_scratch(d, &m->output, nub);
    for (int l = 0; l < m->hp.n_layer; l++) {
        const tai_block *b = &m->blocks[l];
        const tai_wref *mats[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
        for (size_t i = 0; i < sizeof mats / sizeof *mats; i++) {
            size_t need = mat_scratch(d, mats[i], nub);
            if (need > best) best = need;
        }
    }
    return best;
}

static size_t scratch_bytes(const TinyAIModel *m, int nub) {
    return (dev_scratch_bytes(m, m->dev, nub) + 63) & ~(size_t)63;
}

size_t tai_workspace_bytes(const TinyAIModel *m, int n_ubatch, int att_ctx, int n_seq) {
    const tai_hparams *hp = &m->hp;
    const size_t E = (size_t)hp->n_embd, F = (size_t)hp->n_ff, U = (size_t)n_ubatch;
    const size_t kvd = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t cols = U > (size_t)n_seq ? U : (size_t)n_seq;
    size_t b = 0;
    b = add_sat(b, fbytes(U, 6 * E));      /* x, xb, q, att_out, ffn_out + slack for xb */
    b = add_sat(b, fbytes(U, 2 * kvd));    /* k, v */
    b = add_sat(b, fbytes(U, 2 * F));      /* gate, up */
    b = add_sat(b, tai_dev_attention_scratch(m->dev, att_ctx, hp->n_head));
    b = add_sat(b, cols * (2 * sizeof(tai_dref) + sizeof(int32_t))); /* attention's columns */
    b = add_sat(b, fbytes(U, (size_t)hp->rot_dim));
    if (n_seq > 1) b = add_sat(b, fbytes((size_t)n_seq, (size_t)hp->n_vocab));
    b = add_sat(b, tai_llama_emb_buffer_bytes(m));
    return add_sat(b, scratch_bytes(m, n_ubatch > n_seq ? n_ubatch : n_seq));
}

void tai_workspace_free(tai_workspace *ws) {
    void *const bufs[] = {ws->x,         ws->xb,          ws->q,          ws->k,
                          ws->v,         ws->att_out,     ws->gate,       ws->up,
                          ws->ffn_out,   ws->att_scratch, ws->att_k,      ws->att_v,
                          ws->att_pos,   ws->rope_cs,     ws->batch_logits, ws->mm_scratch,
                          ws->emb_read};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) tai_mem_free(bufs[i]);
    memset(ws, 0, sizeof *ws);
}

/* The workspace's buffers are TinyAI's activations memory
 * (runtime/mem/memory.h): zeroed, 64-byte aligned. */
static void *act(size_t bytes, size_t align) {
    return tai_mem_alloc(TAI_MEM_ACT, bytes ? bytes : 1, align, true);
}

static float *falloc(size_t a, size_t b) {
    size_t n = fbytes(a, b);
    if (n == SIZE_MAX) return NULL;
    return act(n ? n : sizeof(float), 64);
}

TinyAIStatus tai_workspace_alloc(TinyAIModel *m, int n_ubatch, int att_ctx, int n_seq) {
    tai_workspace *ws = &m->ws;
    tai_workspace_free(ws);
    const tai_hparams *hp = &m->hp;
    const size_t E = (size_t)hp->n_embd, F = (size_t)hp->n_ff, U = (size_t)n_ubatch;
    const size_t kvd = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t cols = U > (size_t)n_seq ? U : (size_t)n_seq;
    ws->n_ubatch = n_ubatch;
    ws->att_ctx = att_ctx;
    ws->n_seq = n_seq;
    ws->x = falloc(U, E);
    ws->xb = falloc(U, E);
    ws->q = falloc(U, E);
    ws->k = falloc(U, kvd);
    ws->v = falloc(U, kvd);
    ws->att_out = falloc(U, E);
    ws->gate = falloc(U, F);
    ws->up = falloc(U, F);
    ws->ffn_out = falloc(U, E);
    ws->att_scratch_bytes = tai_dev_attention_scratch(m->dev, att_ctx, hp->n_head);
    ws->att_scratch = act((ws->att_scratch_bytes + 63) / 64 * 64 + 64, 64);
    ws->att_k = act(cols * sizeof *ws->att_k, 64);
    ws->att_v = act(cols * sizeof *ws->att_v, 64);
    ws->att_pos = act(cols * sizeof *ws->att_pos, 64);
    ws->rope_cs = falloc(U, (size_t)hp->rot_dim);
    if (n_seq > 1) ws->batch_logits = falloc((size_t)n_seq, (size_t)hp->n_vocab);
    const size_t scratch = scratch_bytes(m, n_ubatch > n_seq ? n_ubatch : n_seq);
    ws->mm_scratch = act(scratch ? scratch : 64, 64);
    const size_t er = tai_llama_emb_buffer_bytes(m);
    if (er > 0) ws->emb_read = act(er, tai_llama_emb_buffer_align(m));
    ws->bytes = tai_workspace_bytes(m, n_ubatch, att_ctx, n_seq);
    if ((er > 0 && !ws->emb_read) || !ws->x || !ws->xb || !ws->q || !ws->k || !ws->v || !ws->att_out || !ws->gate || !ws->up ||
        !ws->ffn_out || !ws->att_scratch || !ws->att_k || !ws->att_v || !ws->att_pos ||
        !ws->rope_cs || !ws->mm_scratch ||
        (n_seq > 1 && !ws->batch_logits)) {
        size_t bytes = ws->bytes;
        tai_workspace_free(ws);
        /* the allocator's message says why (a full static arena, ...) */
        tai_error_prefix("cannot allocate %zu bytes of activations", bytes);
        return TINYAI_ERR_NOMEM;
    }
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
        B(q, U * E * f);
        B(k, U * kvd * f);
        B(v, U * kvd * f);
        B(att_out, U * E * f);
        B(gate, U * F * f);
        B(up, U * F * f);
        B(ffn_out, U * E * f);
        B(rope_cs, U * (size_t)hp->rot_dim * f);
        B(logits, cols * (size_t)hp->n_vocab * f);
        B(mm_scratch, dev_scratch_bytes(m, w->dev, (int)cols));
        w->att_scratch_bytes = tai_dev_attention_scratch(w->dev, ws->att_ctx, hp->n_head);
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

