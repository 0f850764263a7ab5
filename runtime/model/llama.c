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
 * then logits = Woutput rmsnorm(x_last) * out_norm for the last token only.
 * The matrix products and attention run on the model's pool; so do the
 * per-token steps between them when the batch has several tokens.
 */
#include "runtime/model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

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

static TinyAIStatus bind_mat(const tai_model_file *mf, const char *name, int64_t rows,
                             int64_t n, tai_mat *out) {
    const tai_tensor *t = tai_model_file_find_tensor(mf, name);
    if (!t)
        return tai_error(TINYAI_ERR_FORMAT, "%s: missing tensor %s", mf->path, name);
    if (t->n_dims != 2 || t->ne[0] != n || t->ne[1] != rows)
        return tai_error(TINYAI_ERR_FORMAT,
                         "%s: tensor %s has shape [%lld, %lld] (%d dims), expected [%lld, %lld]",
                         mf->path, name, (long long)t->ne[0], (long long)t->ne[1], t->n_dims,
                         (long long)n, (long long)rows);
    out->data = t->data;
    /* Stored packed (.tmai version 2): the kernels read the file's bytes in
     * place and tai_llama_pack leaves it alone. */
    out->packed = t->layout == TAI_LAYOUT_PACKED ? t->data : NULL;
    out->type = t->type;
    out->rows = rows;
    out->n = n;
    return TINYAI_OK;
}

static TinyAIStatus bind_vec(const tai_model_file *mf, const char *name, int64_t n,
                             const float **out) {
    const tai_tensor *t = tai_model_file_find_tensor(mf, name);
    if (!t)
        return tai_error(TINYAI_ERR_FORMAT, "%s: missing tensor %s", mf->path, name);
    if (t->type != TAI_TYPE_F32 || t->ne[0] != n || t->ne[1] * t->ne[2] * t->ne[3] != 1)
        return tai_error(TINYAI_ERR_FORMAT, "%s: tensor %s must be F32 [%lld], is %s [%lld x %lld]",
                         mf->path, name, (long long)n, tai_type_name(t->type),
                         (long long)t->ne[0], (long long)t->ne[1]);
    *out = (const float *)t->data;
    return TINYAI_OK;
}

#define TRY(expr)                          \
    do {                                   \
        TinyAIStatus st_ = (expr);         \
        if (st_ != TINYAI_OK) return st_;  \
    } while (0)

TinyAIStatus tai_llama_bind(TinyAIModel *m) {
    const tai_model_file *mf = m->file;
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
    TRY(bind_mat(mf, "token_embd.weight", hp->n_vocab, E, &m->tok_embd));
    TRY(bind_vec(mf, "output_norm.weight", E, &m->out_norm));
    if (tai_model_file_find_tensor(mf, "output.weight")) {
        TRY(bind_mat(mf, "output.weight", hp->n_vocab, E, &m->output));
        m->tied = 0;
    } else {
        m->output = m->tok_embd;
        m->tied = 1;
    }
    if (mf->n_layers != hp->n_layer + 2)
        return tai_error(TINYAI_ERR_FORMAT, "%s: %d layers in the layer table, expected %d blocks + 2",
                         mf->path, mf->n_layers, hp->n_layer);
    m->layer_ok = calloc((size_t)mf->n_layers, 1);
    m->blocks = calloc((size_t)hp->n_layer, sizeof *m->blocks);
    if (!m->layer_ok) return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    if (!m->blocks) return tai_error(TINYAI_ERR_NOMEM, "out of memory binding %d blocks", hp->n_layer);
    for (int l = 0; l < hp->n_layer; l++) {
        tai_block *b = &m->blocks[l];
        char name[96];
#define NAME(suffix) (snprintf(name, sizeof name, "blk.%d." suffix, l), name)
        TRY(bind_vec(mf, NAME("attn_norm.weight"), E, &b->attn_norm));
        TRY(bind_mat(mf, NAME("attn_q.weight"), E, E, &b->wq));
        TRY(bind_mat(mf, NAME("attn_k.weight"), kvd, E, &b->wk));
        TRY(bind_mat(mf, NAME("attn_v.weight"), kvd, E, &b->wv));
        TRY(bind_mat(mf, NAME("attn_output.weight"), E, E, &b->wo));
        TRY(bind_vec(mf, NAME("ffn_norm.weight"), E, &b->ffn_norm));
        TRY(bind_mat(mf, NAME("ffn_gate.weight"), hp->n_ff, E, &b->w_gate));
        TRY(bind_mat(mf, NAME("ffn_up.weight"), hp->n_ff, E, &b->w_up));
        TRY(bind_mat(mf, NAME("ffn_down.weight"), E, hp->n_ff, &b->w_down));
#undef NAME
    }
    return TINYAI_OK;
}

/* ---- Repacking at load ------------------------------------------------- */

/* A .tmai layer's checksum is verified before its bytes are used, so a
 * corrupt file fails with TINYAI_ERR_CHECKSUM instead of producing text. */
static TinyAIStatus verify_layer(TinyAIModel *m, int layer) {
    if (m->layer_ok[layer]) return TINYAI_OK;
    TinyAIStatus st = tai_model_file_verify_layer(m->file, layer);
    if (st == TINYAI_OK) m->layer_ok[layer] = 1;
    return st;
}

/* Every matrix of the model, in file-layer order, with its layer index. */
static int list_mats(TinyAIModel *m, tai_mat **mats, int *layers) {
    int k = 0;
    for (int l = 0; l < m->hp.n_layer; l++) {
        tai_block *b = &m->blocks[l];
        tai_mat *bm[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
        for (size_t i = 0; i < sizeof bm / sizeof bm[0]; i++) {
            mats[k] = bm[i];
            layers[k++] = l + 1;
        }
    }
    mats[k] = &m->output;
    layers[k++] = m->tied ? 0 : m->hp.n_layer + 1;
    return k;
}

/* Drops the resident file pages of [p, p + size) (whole pages inside it):
 * they were only needed to repack. A private read-only file mapping just
 * re-reads them if they are ever touched again. */
static void release_pages(const void *p, size_t size) {
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + pg - 1) & ~(pg - 1);
    uintptr_t b = ((uintptr_t)p + size) & ~(pg - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

TinyAIStatus tai_llama_pack(TinyAIModel *m) {
    const double t0 = now_s();
    const int max = 7 * m->hp.n_layer + 1;
    tai_mat **mats = calloc((size_t)max, sizeof *mats);
    int *layers = calloc((size_t)max, sizeof *layers);
    if (!mats || !layers) {
        free(mats);
        free(layers);
        return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    }
    int nm = list_mats(m, mats, layers);
    /* Matrices the file stores packed are used in place: no arena space, no
     * repacking, and their pages stay mapped (they are what is read). */
    int k = 0;
    for (int i = 0; i < nm; i++) {
        if (mats[i]->packed) continue;
        mats[k] = mats[i];
        layers[k++] = layers[i];
    }
    nm = k;
    size_t total = 0;
    TinyAIStatus st = TINYAI_OK;
    for (int i = 0; i < nm && st == TINYAI_OK; i++) {
        size_t b = tai_pack_bytes(mats[i]->type, mats[i]->rows, mats[i]->n);
        if (b == 0 || total > SIZE_MAX - b)
            st = tai_error(TINYAI_ERR_FORMAT, "%s: a %s matrix of %lld x %lld cannot be packed",
                           m->file->path, tai_type_name(mats[i]->type),
                           (long long)mats[i]->rows, (long long)mats[i]->n);
        total += b;
    }
    /* every layer is verified before any byte of it is read */
    for (int l = 0; st == TINYAI_OK && l < m->file->n_layers; l++) st = verify_layer(m, l);
    if (st == TINYAI_OK && total > 0) {
        void *a = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (a == MAP_FAILED) {
            st = tai_error(TINYAI_ERR_NOMEM, "cannot allocate %zu bytes for the packed weights",
                           total);
        } else {
            /* streaming reads of gigabytes: fewer TLB misses with huge pages */
            madvise(a, total, MADV_HUGEPAGE);
            m->arena = a;
            m->arena_bytes = total;
        }
    }
    size_t off = 0;
    for (int i = 0; st == TINYAI_OK && i < nm; i++) {
        tai_mat *w = mats[i];
        void *dst = (char *)m->arena + off;
        tai_pack_matrix(m->pool, w->type, w->data, w->rows, w->n, dst);
        w->packed = dst;
        off += tai_pack_bytes(w->type, w->rows, w->n);
        /* the embedding table (layer 0) is still read row by row */
        if (layers[i] != 0)
            release_pages(w->data, tai_type_row_bytes(w->type, w->n) * (size_t)w->rows);
    }
    free(mats);
    free(layers);
    m->repack_seconds = now_s() - t0;
    return st;
}

void tai_llama_unpack(TinyAIModel *m) {
    if (m->arena) munmap(m->arena, m->arena_bytes);
    m->arena = NULL;
    m->arena_bytes = 0;
}

/* ---- Forward ------------------------------------------------------------ */

static void matmul(TinyAISession *s, const tai_mat *w, const float *x, float *y, int n) {
    TinyAIModel *m = s->model;
    tai_matmul(m->kern, m->pool, w->type, w->packed, w->rows, w->n, x, y, n, s->mm_scratch);
}

/* Attention work item = (token, kv head): the query heads of one group
 * against that group's K/V columns of the cache. */
typedef struct {
    TinyAISession *s;
    int layer, n;
} att_job;

static void att_worker(void *ctx, int ti, int nth) {
    const att_job *j = ctx;
    const TinyAISession *s = j->s;
    const tai_hparams *hp = &s->model->hp;
    const tai_attention_fn attention = s->model->kern->attention;
    const int hd = hp->head_dim, grp = hp->n_head / hp->n_head_kv;
    const int64_t E = hp->n_embd, kvd = (int64_t)hp->n_head_kv * hd;
    const float *kc = s->k_cache + (size_t)j->layer * s->n_ctx * kvd;
    const float *vc = s->v_cache + (size_t)j->layer * s->n_ctx * kvd;
    float *att = s->att_scratch + (size_t)ti * s->n_ctx;
    const int items = j->n * hp->n_head_kv;
    /* contiguous ranges: later tokens attend over more positions, so
     * interleave tokens across threads to even the work out */
    for (int it = ti; it < items; it += nth) {
        const int t = it / hp->n_head_kv, g = it % hp->n_head_kv;
        const int64_t n_pos = (int64_t)s->pos + t + 1;
        attention(s->att_out + t * E + (int64_t)g * grp * hd, s->q + t * E + (int64_t)g * grp * hd,
                  kc + (int64_t)g * hd, vc + (int64_t)g * hd, n_pos, kvd, grp, 1, hd, att);
    }
}

/* The per-token steps between the matrix products, run over the batch's
 * tokens split across the pool (inline for a single token, where a
 * dispatch would cost more than the work). */
typedef enum {
    TOK_ATTN_NORM,  /* x += ffn_out (after the first layer); xb = norm(x) */
    TOK_ROPE_STORE, /* rope q, k; append k, v to the cache */
    TOK_FFN_NORM,   /* x += xb (attention output); xb = norm(x) */
    TOK_SWIGLU,     /* gate = silu(gate) * up */
} tok_step;

typedef struct {
    TinyAISession *s;
    const tai_block *b;
    int layer, n;
    tok_step step;
} tok_job;

static void add_into(float *restrict x, const float *restrict d, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += d[i];
}

static void tok_worker(void *ctx, int ti, int nth) {
    const tok_job *j = ctx;
    TinyAISession *s = j->s;
    const TinyAIModel *m = s->model;
    const tai_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, F = hp->n_ff, kvd = (int64_t)hp->n_head_kv * hp->head_dim;
    const int t0 = (int)((int64_t)j->n * ti / nth), t1 = (int)((int64_t)j->n * (ti + 1) / nth);
    for (int t = t0; t < t1; t++) {
        float *x = s->x + t * E, *xb = s->xb + t * E;
        switch (j->step) {
        case TOK_ATTN_NORM:
            if (j->layer > 0) add_into(x, s->ffn_out + t * E, E);
            tai_rmsnorm(xb, x, j->b->attn_norm, E, hp->rms_eps);
            break;
        case TOK_ROPE_STORE: {
            const int64_t p = (int64_t)s->pos + t;
            const float *cs = s->rope_cs + (int64_t)t * hp->rot_dim;
            tai_rope_apply(s->q + t * E, hp->n_head, hp->head_dim, hp->rot_dim, cs);
            tai_rope_apply(s->k + t * kvd, hp->n_head_kv, hp->head_dim, hp->rot_dim, cs);
            float *kc = s->k_cache + ((size_t)j->layer * s->n_ctx + (size_t)p) * kvd;
            float *vc = s->v_cache + ((size_t)j->layer * s->n_ctx + (size_t)p) * kvd;
            memcpy(kc, s->k + t * kvd, (size_t)kvd * sizeof(float));
            memcpy(vc, s->v + t * kvd, (size_t)kvd * sizeof(float));
            break;
        }
        case TOK_FFN_NORM:
            add_into(x, xb, E);
            tai_rmsnorm(xb, x, j->b->ffn_norm, E, hp->rms_eps);
            break;
        case TOK_SWIGLU:
            m->kern->silu_mul(s->gate + t * F, s->up + t * F, F);
            break;
        }
    }
}

static void tok_run(TinyAISession *s, const tai_block *b, int layer, int n, tok_step step) {
    tok_job j = {s, b, layer, n, step};
    if (n >= 4)
        tai_pool_run(s->model->pool, tok_worker, &j);
    else
        tok_worker(&j, 0, 1);
}

TinyAIStatus tai_llama_forward(TinyAISession *s, const int32_t *tokens, int n) {
    TinyAIModel *m = s->model;
    const tai_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd;

    for (int t = 0; t < n; t++) {
        /* tok_embd.packed is set only when the file stores the table packed
         * (the arena never packs tok_embd itself, only its tied copy). */
        if (m->tok_embd.packed)
            tai_packed_row(m->tok_embd.type, m->tok_embd.packed, m->tok_embd.rows, E, tokens[t],
                           s->x + t * E);
        else
            tai_embedding_row(m->tok_embd.type, m->tok_embd.data, tokens[t], E, s->x + t * E);
        /* the rotation angles of each position, shared by every layer */
        tai_rope_angles(s->rope_cs + (int64_t)t * hp->rot_dim, hp->rot_dim, (int64_t)s->pos + t,
                        hp->rope_base);
    }

    for (int l = 0; l < hp->n_layer; l++) {
        const tai_block *b = &m->blocks[l];
        tok_run(s, b, l, n, TOK_ATTN_NORM);
        matmul(s, &b->wq, s->xb, s->q, n);
        matmul(s, &b->wk, s->xb, s->k, n);
        matmul(s, &b->wv, s->xb, s->v, n);
        tok_run(s, b, l, n, TOK_ROPE_STORE);

        att_job job = {s, l, n};
        tai_pool_run(m->pool, att_worker, &job);

        matmul(s, &b->wo, s->att_out, s->xb, n);
        tok_run(s, b, l, n, TOK_FFN_NORM);
        matmul(s, &b->w_gate, s->xb, s->gate, n);
        matmul(s, &b->w_up, s->xb, s->up, n);
        tok_run(s, b, l, n, TOK_SWIGLU);
        matmul(s, &b->w_down, s->gate, s->ffn_out, n);
    }

    float *last = s->x + (int64_t)(n - 1) * E;
    add_into(last, s->ffn_out + (int64_t)(n - 1) * E, E);
    tai_rmsnorm(s->xb, last, m->out_norm, E, hp->rms_eps);
    matmul(s, &m->output, s->xb, s->logits, 1);
    s->have_logits = 1;
    s->pos += n;
    return TINYAI_OK;
}
