/*
 * runtime/model: the Llama forward pass (llama2.c's run.c, batched over the
 * tokens of a prompt, over GGUF's tensor layout).
 *
 * Per transformer block, for a batch of n tokens at positions p..p+n-1:
 *   xb  = rmsnorm(x) * attn_norm
 *   q,k,v = Wq xb, Wk xb, Wv xb         (k, v: n_head_kv heads: grouped-query)
 *   rope(q), rope(k) at each token's position; k, v appended to the KV cache
 *   att = softmax(q k^T / sqrt(head_dim)) v over positions 0..own (causal)
 *   x  += Wo att
 *   xb  = rmsnorm(x) * ffn_norm
 *   x  += Wdown (silu(Wgate xb) * Wup xb)
 * then logits = Woutput rmsnorm(x_last) * out_norm for the last token only
 * (for every column when several sequences decode together).
 * The matrix products and attention run on the model's pool; so do the
 * per-token steps between them when the batch has several tokens.
 *
 * Weights come layer by layer from the weight cache (runtime/mapped): each
 * file layer's image is acquired while the layer runs and released after,
 * so under a memory limit only the cache's budget of weights is resident.
 * A batch's columns may belong to different sessions (tinyaiEvalBatch):
 * each column attends over its own session's KV cache at its own position.
 */
#include "runtime/model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/base/clock.h"
#include "runtime/base/error.h"

/* ---- Binding ----------------------------------------------------------- */

static TinyAIStatus get_u32_opt(const tai_model_file *mf, const char *key, uint32_t dflt,
                                uint32_t *out) {
    if (!tai_model_file_find_kv(mf, key)) {
        *out = dflt;
        return TINYAI_OK;
    }
    return tai_kv_get_u32(mf, key, out);
}

static TinyAIStatus get_f32_opt(const tai_model_file *mf, const char *key, float dflt,
                                float *out) {
    if (!tai_model_file_find_kv(mf, key)) {
        *out = dflt;
        return TINYAI_OK;
    }
    return tai_kv_get_f32(mf, key, out);
}

static TinyAIStatus bind_ref(const tai_model_file *mf, const TinyAIMappedModel *mm,
                             const char *name, int64_t rows, int64_t n, int is_vec,
                             tai_wref *out) {
    const tai_tensor *t = tai_model_file_find_tensor(mf, name);
    if (!t) return tai_error(TINYAI_ERR_FORMAT, "%s: missing tensor %s", mf->path, name);
    if (is_vec) {
        if (t->type != TAI_TYPE_F32 || t->ne[0] != n || t->ne[1] * t->ne[2] * t->ne[3] != 1)
            return tai_error(TINYAI_ERR_FORMAT, "%s: tensor %s must be F32 [%lld], is %s [%lld x %lld]",
                             mf->path, name, (long long)n, tai_type_name(t->type),
                             (long long)t->ne[0], (long long)t->ne[1]);
    } else if (t->n_dims != 2 || t->ne[0] != n || t->ne[1] != rows) {
        return tai_error(TINYAI_ERR_FORMAT,
                         "%s: tensor %s has shape [%lld, %lld] (%d dims), expected [%lld, %lld]",
                         mf->path, name, (long long)t->ne[0], (long long)t->ne[1], t->n_dims,
                         (long long)n, (long long)rows);
    }
    out->layer = t->layer;
    out->off = tai_mapped_tensor_offset(mm, (int)(t - mf->tensors));
    out->type = t->type;
    out->rows = rows;
    out->n = n;
    return TINYAI_OK;
}

#define TRY(expr)                          \
    do {                                   \
        TinyAIStatus st_ = (expr);         \
        if (st_ != TINYAI_OK) return st_;  \
    } while (0)

TinyAIStatus tai_llama_bind(TinyAIModel *m) {
    const tai_model_file *mf = m->file;
    const TinyAIMappedModel *mm = m->mm;
    tai_hparams *hp = &m->hp;
    const char *arch = NULL;
    if (!tai_model_file_find_kv(mf, "general.architecture"))
        return tai_error(TINYAI_ERR_FORMAT, "%s: no general.architecture in metadata", mf->path);
    TRY(tai_kv_get_str(mf, "general.architecture", &arch));
    if (strcmp(arch, "llama") != 0)
        return tai_error(TINYAI_ERR_UNSUPPORTED,
                         "%s: unsupported architecture '%s' (supported: llama)", mf->path, arch);

    uint32_t n_layer, n_embd, n_ff, n_head, n_head_kv, n_ctx, rot;
    TRY(tai_kv_get_u32(mf, "llama.block_count", &n_layer));
    TRY(tai_kv_get_u32(mf, "llama.embedding_length", &n_embd));
    TRY(tai_kv_get_u32(mf, "llama.feed_forward_length", &n_ff));
    TRY(tai_kv_get_u32(mf, "llama.attention.head_count", &n_head));
    TRY(get_u32_opt(mf, "llama.attention.head_count_kv", n_head, &n_head_kv));
    TRY(get_u32_opt(mf, "llama.context_length", 2048, &n_ctx));
    TRY(get_f32_opt(mf, "llama.rope.freq_base", 10000.0f, &hp->rope_base));
    TRY(get_f32_opt(mf, "llama.attention.layer_norm_rms_epsilon", 1e-5f, &hp->rms_eps));

    if (n_layer < 1 || n_layer > 1024 || n_embd < 32 || n_embd > 65536 || n_ff < 32 ||
        n_ff > 262144 || n_head < 1 || n_head > 1024 || n_head_kv < 1 || n_ctx < 1 ||
        n_ctx > (1u << 24))
        return tai_error(TINYAI_ERR_FORMAT,
                         "%s: hyperparameters out of range (blocks %u, embd %u, ff %u, heads "
                         "%u/%u, context %u)",
                         mf->path, n_layer, n_embd, n_ff, n_head, n_head_kv, n_ctx);
    if (n_embd % n_head != 0 || n_head % n_head_kv != 0 || (n_embd / n_head) % 2 != 0)
        return tai_error(TINYAI_ERR_FORMAT,
                         "%s: inconsistent heads: embd %u, heads %u, kv heads %u", mf->path,
                         n_embd, n_head, n_head_kv);
    TRY(get_u32_opt(mf, "llama.rope.dimension_count", n_embd / n_head, &rot));
    if (rot == 0 || rot > n_embd / n_head || rot % 2 != 0)
        return tai_error(TINYAI_ERR_FORMAT, "%s: rope dimension %u invalid for head size %u",
                         mf->path, rot, n_embd / n_head);
    if (!(hp->rms_eps > 0.0f && hp->rms_eps < 1.0f) || !(hp->rope_base > 1.0f) ||
        !isfinite(hp->rope_base))
        return tai_error(TINYAI_ERR_FORMAT, "%s: rms epsilon %g or rope base %g invalid",
                         mf->path, (double)hp->rms_eps, (double)hp->rope_base);

    hp->n_layer = (int)n_layer;
    hp->n_embd = (int)n_embd;
    hp->n_ff = (int)n_ff;
    hp->n_head = (int)n_head;
    hp->n_head_kv = (int)n_head_kv;
    hp->n_ctx_train = (int)n_ctx;
    hp->head_dim = (int)(n_embd / n_head);
    hp->rot_dim = (int)rot;
    hp->n_vocab = tai_tokenizer_n_vocab(m->tok);

    const int64_t E = hp->n_embd, kvd = (int64_t)hp->n_head_kv * hp->head_dim;
    if (mf->n_layers != hp->n_layer + 2)
        return tai_error(TINYAI_ERR_FORMAT, "%s: %d layers in the layer table, expected %d blocks + 2",
                         mf->path, mf->n_layers, hp->n_layer);
    TRY(bind_ref(mf, mm, "token_embd.weight", hp->n_vocab, E, 0, &m->tok_embd));
    m->emb_tensor = tai_model_file_find_tensor(mf, "token_embd.weight");
    TRY(bind_ref(mf, mm, "output_norm.weight", 1, E, 1, &m->out_norm));
    if (tai_model_file_find_tensor(mf, "output.weight")) {
        TRY(bind_ref(mf, mm, "output.weight", hp->n_vocab, E, 0, &m->output));
        m->tied = 0;
    } else {
        m->output = m->tok_embd;
        m->tied = 1;
    }
    m->blocks = calloc((size_t)hp->n_layer, sizeof *m->blocks);
    if (!m->blocks) return tai_error(TINYAI_ERR_NOMEM, "out of memory binding %d blocks", hp->n_layer);
    for (int l = 0; l < hp->n_layer; l++) {
        tai_block *b = &m->blocks[l];
        char name[96];
#define NAME(suffix) (snprintf(name, sizeof name, "blk.%d." suffix, l), name)
        TRY(bind_ref(mf, mm, NAME("attn_norm.weight"), 1, E, 1, &b->attn_norm));
        TRY(bind_ref(mf, mm, NAME("attn_q.weight"), E, E, 0, &b->wq));
        TRY(bind_ref(mf, mm, NAME("attn_k.weight"), kvd, E, 0, &b->wk));
        TRY(bind_ref(mf, mm, NAME("attn_v.weight"), kvd, E, 0, &b->wv));
        TRY(bind_ref(mf, mm, NAME("attn_output.weight"), E, E, 0, &b->wo));
        TRY(bind_ref(mf, mm, NAME("ffn_norm.weight"), 1, E, 1, &b->ffn_norm));
        TRY(bind_ref(mf, mm, NAME("ffn_gate.weight"), hp->n_ff, E, 0, &b->w_gate));
        TRY(bind_ref(mf, mm, NAME("ffn_up.weight"), hp->n_ff, E, 0, &b->w_up));
        TRY(bind_ref(mf, mm, NAME("ffn_down.weight"), E, hp->n_ff, 0, &b->w_down));
#undef NAME
        /* the forward pass reads a block from its own layer's image */
        const tai_wref *all[] = {&b->attn_norm, &b->wq, &b->wk, &b->wv, &b->wo,
                                 &b->ffn_norm, &b->w_gate, &b->w_up, &b->w_down};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++)
            if (all[i]->layer != l + 1)
                return tai_error(TINYAI_ERR_FORMAT, "%s: a tensor of block %d is in layer %d",
                                 mf->path, l, all[i]->layer);
    }
    if (m->tok_embd.layer != 0 || m->out_norm.layer != hp->n_layer + 1 ||
        m->output.layer != (m->tied ? 0 : hp->n_layer + 1))
        return tai_error(TINYAI_ERR_FORMAT, "%s: embedding or head tensors in unexpected layers",
                         mf->path);
    return TINYAI_OK;
}

int tai_llama_schedule(const TinyAIModel *m, int *order) {
    int k = 0;
    for (int l = m->emb_rows ? 1 : 0; l <= m->hp.n_layer; l++) order[k++] = l;
    if (m->tied) order[k++] = 0; /* the tied head takes the embedding first */
    order[k++] = m->hp.n_layer + 1;
    return k;
}

/* ---- Forward ------------------------------------------------------------ */

/* The embedding buffer: one lookup at least, and large enough that checking
 * the table's checksum through it takes few reads. */
#define EMB_BUFFER_MIN (256u << 10)

/* Acquires a layer image, counting the time spent waiting for it. */
static TinyAIStatus acquire(TinyAIModel *m, int layer, const unsigned char **img) {
    const uint64_t t0 = tai_now_ns();
    void *p = NULL;
    TinyAIStatus st = tai_mapped_acquire(m->mm, layer, &p);
    m->stall_ns += tai_now_ns() - t0;
    *img = p;
    return st;
}

static tai_mat resolve(const unsigned char *img, const tai_wref *r) {
    tai_mat w = {img + r->off, r->type, r->rows, r->n};
    return w;
}

static const float *vec(const unsigned char *img, const tai_wref *r) {
    return (const float *)(const void *)(img + r->off);
}

static void matmul(const tai_batch *b, const tai_mat *w, const float *x, float *y, int n) {
    TinyAIModel *m = b->m;
    tai_matmul(m->kern, m->pool, w->type, w->packed, w->rows, w->n, x, y, n, m->ws.mm_scratch);
}

/* Attention work item = (column, kv head): the query heads of one group
 * against that group's K/V columns of the column's session's cache. */
typedef struct {
    const tai_batch *b;
    int layer;
} att_job;

static void att_worker(void *ctx, int ti, int nth) {
    const att_job *j = ctx;
    const tai_batch *b = j->b;
    const tai_workspace *ws = &b->m->ws;
    const tai_hparams *hp = &b->m->hp;
    const tai_attention_fn attention = b->m->kern->attention;
    const int hd = hp->head_dim, grp = hp->n_head / hp->n_head_kv;
    const int64_t E = hp->n_embd, kvd = (int64_t)hp->n_head_kv * hd;
    float *att = ws->att_scratch + (size_t)ti * ws->att_ctx;
    const int items = b->n * hp->n_head_kv;
    /* interleaved: later tokens attend over more positions */
    for (int it = ti; it < items; it += nth) {
        const int t = it / hp->n_head_kv, g = it % hp->n_head_kv;
        const TinyAISession *s = b->seq[t];
        const float *kc = s->k_cache + (size_t)j->layer * s->n_ctx * kvd;
        const float *vc = s->v_cache + (size_t)j->layer * s->n_ctx * kvd;
        const int64_t n_pos = (int64_t)b->pos[t] + 1;
        attention(ws->att_out + t * E + (int64_t)g * grp * hd, ws->q + t * E + (int64_t)g * grp * hd,
                  kc + (int64_t)g * hd, vc + (int64_t)g * hd, n_pos, kvd, grp, 1, hd, att);
    }
}

/* The per-token steps between the matrix products, run over the batch's
 * columns split across the pool (inline for a few columns, where a
 * dispatch would cost more than the work). */
typedef enum {
    TOK_ATTN_NORM,  /* x += ffn_out (after the first block); xb = norm(x) */
    TOK_ROPE_STORE, /* rope q, k; append k, v to the column's cache */
    TOK_FFN_NORM,   /* x += xb (attention output); xb = norm(x) */
    TOK_SWIGLU,     /* gate = silu(gate) * up */
} tok_step;

typedef struct {
    const tai_batch *b;
    const float *norm;
    int block;
    tok_step step;
} tok_job;

static void add_into(float *restrict x, const float *restrict d, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += d[i];
}

static void tok_worker(void *ctx, int ti, int nth) {
    const tok_job *j = ctx;
    const tai_batch *b = j->b;
    const TinyAIModel *m = b->m;
    const tai_workspace *ws = &m->ws;
    const tai_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, F = hp->n_ff, kvd = (int64_t)hp->n_head_kv * hp->head_dim;
    const int t0 = (int)((int64_t)b->n * ti / nth), t1 = (int)((int64_t)b->n * (ti + 1) / nth);
    for (int t = t0; t < t1; t++) {
        float *x = ws->x + t * E, *xb = ws->xb + t * E;
        switch (j->step) {
        case TOK_ATTN_NORM:
            if (j->block > 0) add_into(x, ws->ffn_out + t * E, E);
            tai_rmsnorm(xb, x, j->norm, E, hp->rms_eps);
            break;
        case TOK_ROPE_STORE: {
            TinyAISession *s = b->seq[t];
            const int64_t p = b->pos[t];
            const float *cs = ws->rope_cs + (int64_t)t * hp->rot_dim;
            tai_rope_apply(ws->q + t * E, hp->n_head, hp->head_dim, hp->rot_dim, cs);
            tai_rope_apply(ws->k + t * kvd, hp->n_head_kv, hp->head_dim, hp->rot_dim, cs);
            float *kc = s->k_cache + ((size_t)j->block * s->n_ctx + (size_t)p) * kvd;
            float *vc = s->v_cache + ((size_t)j->block * s->n_ctx + (size_t)p) * kvd;
            memcpy(kc, ws->k + t * kvd, (size_t)kvd * sizeof(float));
            memcpy(vc, ws->v + t * kvd, (size_t)kvd * sizeof(float));
            break;
        }
        case TOK_FFN_NORM:
            add_into(x, xb, E);
            tai_rmsnorm(xb, x, j->norm, E, hp->rms_eps);
            break;
        case TOK_SWIGLU:
            m->kern->silu_mul(ws->gate + t * F, ws->up + t * F, F);
            break;
        }
    }
}

static void tok_run(const tai_batch *b, const float *norm, int block, tok_step step) {
    tok_job j = {b, norm, block, step};
    if (b->n >= 4)
        tai_pool_run(b->m->pool, tok_worker, &j);
    else
        tok_worker(&j, 0, 1);
}

static void run_block(const tai_batch *b, int l, const unsigned char *img) {
    TinyAIModel *m = b->m;
    tai_workspace *ws = &m->ws;
    const tai_block *blk = &m->blocks[l];
    const int n = b->n;
    const tai_mat wq = resolve(img, &blk->wq), wk = resolve(img, &blk->wk),
                  wv = resolve(img, &blk->wv), wo = resolve(img, &blk->wo),
                  wg = resolve(img, &blk->w_gate), wu = resolve(img, &blk->w_up),
                  wd = resolve(img, &blk->w_down);
    tok_run(b, vec(img, &blk->attn_norm), l, TOK_ATTN_NORM);
    matmul(b, &wq, ws->xb, ws->q, n);
    matmul(b, &wk, ws->xb, ws->k, n);
    matmul(b, &wv, ws->xb, ws->v, n);
    tok_run(b, NULL, l, TOK_ROPE_STORE);

    att_job job = {b, l};
    tai_pool_run(m->pool, att_worker, &job);

    matmul(b, &wo, ws->att_out, ws->xb, n);
    tok_run(b, vec(img, &blk->ffn_norm), l, TOK_FFN_NORM);
    matmul(b, &wg, ws->xb, ws->gate, n);
    matmul(b, &wu, ws->xb, ws->up, n);
    tok_run(b, NULL, l, TOK_SWIGLU);
    matmul(b, &wd, ws->gate, ws->ffn_out, n);
}

static void run_embedding(const tai_batch *b, const unsigned char *img) {
    const TinyAIModel *m = b->m;
    const tai_workspace *ws = &m->ws;
    const tai_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd;
    const tai_wref *e = &m->tok_embd;
    for (int t = 0; t < b->n; t++) {
        tai_packed_row(e->type, img + e->off, e->rows, e->n, b->tokens[t], ws->x + t * E);
        /* the rotation angles of each column's position, shared by every layer */
        tai_rope_angles(ws->rope_cs + (int64_t)t * hp->rot_dim, hp->rot_dim, b->pos[t],
                        hp->rope_base);
    }
}

/* Bytes of one lookup: a packed panel of TAI_PANEL rows, or one row. */
static size_t emb_unit(const TinyAIModel *m) {
    const tai_wref *e = &m->tok_embd;
    return m->emb_tensor->layout == TAI_LAYOUT_PACKED ? tai_pack_panel_bytes(e->type, e->n)
                                                      : tai_type_row_bytes(e->type, e->n);
}

size_t tai_llama_emb_buffer_align(const TinyAIModel *m) {
    const size_t a = tai_mapped_read_align(m->mm);
    return a > 4096 ? a : 4096;
}

size_t tai_llama_emb_buffer_bytes(const TinyAIModel *m) {
    if (m->tied || !m->emb_tensor) return 0;
    const size_t a = tai_llama_emb_buffer_align(m);
    size_t need = emb_unit(m) + 2 * tai_mapped_read_align(m->mm);
    if (need < EMB_BUFFER_MIN) need = EMB_BUFFER_MIN;
    return (need + a - 1) / a * a;
}

/* The embedding lookup without layer 0 in the cache: a decoding step needs
 * one row of the table per column, a few KiB of a table of many MiB, so
 * each column's row (in a packed file, the panel of TAI_PANEL rows holding
 * it) is read from the file. The table's checksum is checked once, on the
 * first lookup, by reading it through (tai_mapped_verify). */
static TinyAIStatus run_embedding_rows(const tai_batch *b) {
    TinyAIModel *m = b->m;
    const tai_workspace *ws = &m->ws;
    const tai_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd;
    const tai_wref *e = &m->tok_embd;
    const tai_tensor *t = m->emb_tensor;
    const size_t cap = tai_llama_emb_buffer_bytes(m);
    TinyAIStatus st = tai_mapped_verify(m->mm, 0, ws->emb_read, cap);
    if (st != TINYAI_OK) return st;
    const bool packed = t->layout == TAI_LAYOUT_PACKED;
    const size_t unit = emb_unit(m);
    int64_t held = -1; /* the panel or row at `src` */
    const unsigned char *src = NULL;
    for (int c = 0; c < b->n; c++) {
        const int64_t r = b->tokens[c];
        if (r < 0 || r >= e->rows)
            return tai_error(TINYAI_ERR_INVALID_ARG, "token id %lld out of range (0..%lld)",
                             (long long)r, (long long)e->rows - 1);
        const int64_t at = packed ? r / TAI_PANEL : r;
        if (at != held) {
            st = tai_mapped_read(m->mm, 0, t->offset + (uint64_t)at * unit, unit, ws->emb_read,
                                 cap, &src);
            if (st != TINYAI_OK) return st;
            held = at;
        }
        float *x = ws->x + c * E;
        if (packed)
            tai_packed_row(e->type, src, TAI_PANEL, e->n, r % TAI_PANEL, x);
        else
            tai_dequantize_row(e->type, src, x, e->n);
        tai_rope_angles(ws->rope_cs + (int64_t)c * hp->rot_dim, hp->rot_dim, b->pos[c],
                        hp->rope_base);
    }
    return TINYAI_OK;
}

/* Final norm and logits: of the last column, or of every column. */
static void run_head(const tai_batch *b, const unsigned char *head, const unsigned char *out_img) {
    const TinyAIModel *m = b->m;
    const tai_workspace *ws = &m->ws;
    const int64_t E = m->hp.n_embd, V = m->hp.n_vocab;
    const float *norm = vec(head, &m->out_norm);
    const tai_mat w = resolve(out_img, &m->output);
    const int first = b->logits_all ? 0 : b->n - 1;
    const int cols = b->n - first;
    for (int t = first; t < b->n; t++) {
        float *x = ws->x + (int64_t)t * E;
        add_into(x, ws->ffn_out + (int64_t)t * E, E);
        tai_rmsnorm(ws->xb + (int64_t)(t - first) * E, x, norm, E, m->hp.rms_eps);
    }
    if (!b->logits_all) {
        matmul(b, &w, ws->xb, b->seq[b->n - 1]->logits, 1);
        b->seq[b->n - 1]->have_logits = 1;
        return;
    }
    matmul(b, &w, ws->xb, ws->batch_logits, cols);
    for (int t = 0; t < b->n; t++) {
        memcpy(b->seq[t]->logits, ws->batch_logits + (int64_t)t * V, (size_t)V * sizeof(float));
        b->seq[t]->have_logits = 1;
    }
}

TinyAIStatus tai_llama_layer(const tai_batch *b, int layer) {
    TinyAIModel *m = b->m;
    const int nl = m->hp.n_layer;
    const unsigned char *img = NULL;
    if (layer == nl + 1 && m->tied) {
        /* The tied head reads the embedding table as its output matrix, so
         * both are held at once. The embedding (large) is acquired first,
         * while nothing is held and the cache can evict anything to place
         * it; the head (small) then fits in what is left. The other way
         * round, the head could sit where no range is left wide enough for
         * the embedding. The schedule (tai_llama_schedule) has this order. */
        const unsigned char *emb = NULL;
        TinyAIStatus st = acquire(m, 0, &emb);
        if (st != TINYAI_OK) return st;
        st = acquire(m, layer, &img);
        if (st == TINYAI_OK) {
            run_head(b, img, emb);
            st = tai_mapped_release(m->mm, layer);
        }
        TinyAIStatus st2 = tai_mapped_release(m->mm, 0);
        return st != TINYAI_OK ? st : st2;
    }
    if (layer == 0 && m->emb_rows) {
        const uint64_t t0 = tai_now_ns();
        TinyAIStatus st = run_embedding_rows(b);
        m->stall_ns += tai_now_ns() - t0;
        return st;
    }
    TinyAIStatus st = acquire(m, layer, &img);
    if (st != TINYAI_OK) return st;
    if (layer == 0)
        run_embedding(b, img);
    else if (layer <= nl)
        run_block(b, layer - 1, img);
    else
        run_head(b, img, img);
    return tai_mapped_release(m->mm, layer);
}

void tai_llama_finish(const tai_batch *b) {
    /* every column of one session advances it by one; a prompt batch has
     * all its columns in one session */
    for (int t = 0; t < b->n; t++)
        if (t == b->n - 1 || b->seq[t] != b->seq[t + 1]) b->seq[t]->pos = b->pos[t] + 1;
}

TinyAIStatus tai_llama_forward(const tai_batch *b) {
    const int nl = b->m->hp.n_layer;
    for (int l = 0; l <= nl + 1; l++) {
        TinyAIStatus st = tai_llama_layer(b, l);
        if (st != TINYAI_OK) return st;
    }
    tai_llama_finish(b);
    return TINYAI_OK;
}
