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
 * This file is the architecture: what a layer computes. Each call issues
 * one file layer's ops (matrix products, norms, RoPE, attention, SwiGLU) to
 * the device the layer runs on, with the layer's weights already there;
 * the scheduler (runtime/sched/pass.c) acquires the images from the weight
 * cache, hands them to the device, synchronises it and releases them.
 * A batch's columns may belong to different sessions (tinyaiEvalBatch):
 * each column attends over its own session's KV cache at its own position.
 */
#include "runtime/model/model.h"
#include "runtime/model/profile.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/error.h"

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
    out->keep = t->layout == TAI_LAYOUT_SPARSE ? t->keep : 0;
    return TINYAI_OK;
}

#define TRY(expr)                          \
    do {                                   \
        TinyAIStatus st_ = (expr);         \
        if (st_ != TINYAI_OK) return st_;  \
    } while (0)

/* "<arch>.<key>" */
static const char *akey(char *buf, size_t cap, const tai_arch *arch, const char *key) {
    snprintf(buf, cap, "%s.%s", arch->name, key);
    return buf;
}

/* RoPE scaling: none, or linear (positions divided by the factor). */
static TinyAIStatus bind_rope_scaling(const tai_model_file *mf, const tai_arch *arch,
                                      tai_hparams *hp) {
    char k[128];
    hp->rope_scale = 1.0f;
    const char *type = NULL;
    if (!tai_model_file_find_kv(mf, akey(k, sizeof k, arch, "rope.scaling.type"))) return TINYAI_OK;
    TRY(tai_kv_get_str(mf, k, &type));
    if (strcmp(type, "none") == 0) return TINYAI_OK;
    float factor = 1.0f;
    TRY(get_f32_opt(mf, akey(k, sizeof k, arch, "rope.scaling.factor"), 1.0f, &factor));
    if (strcmp(type, "linear") != 0 || !(factor >= 1.0f && factor <= 1024.0f))
        return tai_error(TINYAI_ERR_UNSUPPORTED,
                         "%s: RoPE scaling '%s' (factor %g) is not supported (none, linear)",
                         mf->path, type, (double)factor);
    hp->rope_scale = 1.0f / factor;
    return TINYAI_OK;
}

/* The architecture's own tensors of block l. */
static TinyAIStatus bind_arch_tensors(TinyAIModel *m, int l, tai_block *b) {
    const tai_model_file *mf = m->file;
    const tai_hparams *hp = &m->hp;
    const int64_t kvd = (int64_t)hp->n_head_kv * hp->head_dim;
    char name[96];
#define NAME(suffix) (snprintf(name, sizeof name, "blk.%d." suffix, l), name)
    if (hp->flags & TAI_ARCH_QKV_BIAS) {
        TRY(bind_ref(mf, m->mm, NAME("attn_q.bias"), 1, hp->q_dim, 1, &b->bq));
        TRY(bind_ref(mf, m->mm, NAME("attn_k.bias"), 1, kvd, 1, &b->bk));
        TRY(bind_ref(mf, m->mm, NAME("attn_v.bias"), 1, kvd, 1, &b->bv));
    }
    if (hp->flags & TAI_ARCH_QK_NORM) {
        TRY(bind_ref(mf, m->mm, NAME("attn_q_norm.weight"), 1, hp->head_dim, 1, &b->q_norm));
        TRY(bind_ref(mf, m->mm, NAME("attn_k_norm.weight"), 1, hp->head_dim, 1, &b->k_norm));
    }
    if (hp->flags & TAI_ARCH_POST_NORMS) {
        TRY(bind_ref(mf, m->mm, NAME("post_attention_norm.weight"), 1, hp->n_embd, 1,
                     &b->post_attn_norm));
        TRY(bind_ref(mf, m->mm, NAME("post_ffw_norm.weight"), 1, hp->n_embd, 1, &b->post_ffn_norm));
    }
#undef NAME
    const tai_wref *all[] = {&b->bq, &b->bk, &b->bv, &b->q_norm, &b->k_norm,
                             &b->post_attn_norm, &b->post_ffn_norm};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (all[i]->n && all[i]->layer != l + 1)
            return tai_error(TINYAI_ERR_FORMAT, "%s: a tensor of block %d is in layer %d",
                             mf->path, l, all[i]->layer);
    return TINYAI_OK;
}

TinyAIStatus tai_llama_bind(TinyAIModel *m) {
    const tai_model_file *mf = m->file;
    const TinyAIMappedModel *mm = m->mm;
    tai_hparams *hp = &m->hp;
    const char *arch_name = NULL;
    if (!tai_model_file_find_kv(mf, "general.architecture"))
        return tai_error(TINYAI_ERR_FORMAT, "%s: no general.architecture in metadata", mf->path);
    TRY(tai_kv_get_str(mf, "general.architecture", &arch_name));
    const tai_arch *arch = tai_arch_find(arch_name);
    if (!arch)
        return tai_error(TINYAI_ERR_UNSUPPORTED, "%s: unsupported architecture '%s' (supported: %s)",
                         mf->path, arch_name, tai_arch_names());
    hp->arch = arch;
    hp->flags = arch->flags;

    char k[128];
#define KEY(s) akey(k, sizeof k, arch, s)
    uint32_t n_layer, n_embd, n_ff, n_head, n_head_kv, n_ctx, rot, hd, vd;
    TRY(tai_kv_get_u32(mf, KEY("block_count"), &n_layer));
    TRY(tai_kv_get_u32(mf, KEY("embedding_length"), &n_embd));
    TRY(tai_kv_get_u32(mf, KEY("feed_forward_length"), &n_ff));
    TRY(tai_kv_get_u32(mf, KEY("attention.head_count"), &n_head));
    TRY(get_u32_opt(mf, KEY("attention.head_count_kv"), n_head, &n_head_kv));
    TRY(get_u32_opt(mf, KEY("context_length"), 2048, &n_ctx));
    TRY(get_f32_opt(mf, KEY("rope.freq_base"), 10000.0f, &hp->rope_base));
    TRY(get_f32_opt(mf, KEY("attention.layer_norm_rms_epsilon"), 1e-5f, &hp->rms_eps));

    if (n_layer < 1 || n_layer > 1024 || n_embd < 32 || n_embd > 65536 || n_ff < 32 ||
        n_ff > 262144 || n_head < 1 || n_head > 1024 || n_head_kv < 1 || n_ctx < 1 ||
        n_ctx > (1u << 24))
        return tai_error(TINYAI_ERR_FORMAT,
                         "%s: hyperparameters out of range (blocks %u, embd %u, ff %u, heads "
                         "%u/%u, context %u)",
                         mf->path, n_layer, n_embd, n_ff, n_head, n_head_kv, n_ctx);
    TRY(get_u32_opt(mf, KEY("attention.key_length"), n_embd / n_head, &hd));
    TRY(get_u32_opt(mf, KEY("attention.value_length"), hd, &vd));
    if (vd != hd)
        return tai_error(TINYAI_ERR_UNSUPPORTED, "%s: key heads of %u and value heads of %u "
                         "(TinyAI needs them equal)", mf->path, hd, vd);
    if (hd < 2 || hd > 1024 || hd % 2 != 0 || n_head % n_head_kv != 0 ||
        (!tai_model_file_find_kv(mf, KEY("attention.key_length")) && n_embd % n_head != 0))
        return tai_error(TINYAI_ERR_FORMAT,
                         "%s: inconsistent heads: embd %u, heads %u of %u, kv heads %u", mf->path,
                         n_embd, n_head, hd, n_head_kv);
    TRY(get_u32_opt(mf, KEY("rope.dimension_count"), hd, &rot));
    if (rot == 0 || rot > hd || rot % 2 != 0)
        return tai_error(TINYAI_ERR_FORMAT, "%s: rope dimension %u invalid for head size %u",
                         mf->path, rot, hd);
    if (!(hp->rms_eps > 0.0f && hp->rms_eps < 1.0f) || !(hp->rope_base > 1.0f) ||
        !isfinite(hp->rope_base))
        return tai_error(TINYAI_ERR_FORMAT, "%s: rms epsilon %g or rope base %g invalid",
                         mf->path, (double)hp->rms_eps, (double)hp->rope_base);
#undef KEY
    TRY(bind_rope_scaling(mf, arch, hp));
    memset(&hp->ap, 0, sizeof hp->ap);
    if (arch->hparams) TRY(arch->hparams(mf, &hp->ap));
    if ((hp->flags & TAI_ARCH_SWA) &&
        !(hp->ap.swa_window >= 1 && hp->ap.swa_pattern >= 1 && hp->ap.swa_rope_base > 1.0f))
        return tai_error(TINYAI_ERR_INTERNAL, "%s: architecture %s without its window", mf->path,
                         arch->name);
    hp->ext_ops = ((hp->flags & TAI_ARCH_NEOX) ? TAI_OP_ROPE_NEOX : 0) |
                  ((hp->flags & TAI_ARCH_GEGLU) ? TAI_OP_GEGLU : 0) |
                  ((hp->flags & TAI_ARCH_QKV_BIAS) ? TAI_OP_ADD_BIAS : 0) |
                  ((hp->flags & TAI_ARCH_SWA) ? TAI_OP_ATTENTION_WINDOW : 0);

    hp->n_layer = (int)n_layer;
    hp->n_embd = (int)n_embd;
    hp->n_ff = (int)n_ff;
    hp->n_head = (int)n_head;
    hp->n_head_kv = (int)n_head_kv;
    hp->n_ctx_train = (int)n_ctx;
    hp->head_dim = (int)hd;
    hp->q_dim = (int)(n_head * hd);
    hp->rot_dim = (int)rot;
    /* the vocabulary's size from the file's token array (the tokenizer,
     * which may be built later, has one token per entry of it) */
    const tai_kv *tokens = tai_model_file_find_kv(mf, "tokenizer.ggml.tokens");
    if (!tokens || tokens->type != TAI_KV_ARRAY || tokens->v.arr.n == 0 ||
        tokens->v.arr.n > INT32_MAX / 2)
        return tai_error(TINYAI_ERR_FORMAT, "%s: tokenizer: no usable tokenizer.ggml.tokens",
                         mf->path);
    hp->n_vocab = (int)tokens->v.arr.n;

    const int64_t E = hp->n_embd, Q = hp->q_dim, kvd = (int64_t)hp->n_head_kv * hp->head_dim;
    if (mf->n_layers != hp->n_layer + 2)
        return tai_error(TINYAI_ERR_FORMAT, "%s: %d layers in the layer table, expected %d blocks + 2",
                         mf->path, mf->n_layers, hp->n_layer);
    TRY(bind_ref(mf, mm, "token_embd.weight", hp->n_vocab, E, 0, &m->tok_embd));
    if (m->tok_embd.keep)
        return tai_error(TINYAI_ERR_UNSUPPORTED, "%s: token_embd.weight is block-sparse (only the "
                         "blocks' matrices may be pruned)", mf->path);
    m->emb_tensor = tai_model_file_find_tensor(mf, "token_embd.weight");
    TRY(bind_ref(mf, mm, "output_norm.weight", 1, E, 1, &m->out_norm));
    if (tai_model_file_find_tensor(mf, "output.weight")) {
        TRY(bind_ref(mf, mm, "output.weight", hp->n_vocab, E, 0, &m->output));
        if (m->output.keep)
            return tai_error(TINYAI_ERR_UNSUPPORTED, "%s: output.weight is block-sparse (only "
                             "the blocks' matrices may be pruned)", mf->path);
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
        TRY(bind_ref(mf, mm, NAME("attn_q.weight"), Q, E, 0, &b->wq));
        TRY(bind_ref(mf, mm, NAME("attn_k.weight"), kvd, E, 0, &b->wk));
        TRY(bind_ref(mf, mm, NAME("attn_v.weight"), kvd, E, 0, &b->wv));
        TRY(bind_ref(mf, mm, NAME("attn_output.weight"), E, Q, 0, &b->wo));
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
        TRY(bind_arch_tensors(m, l, b));
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

/* A layer's weights on the device that runs it. */
typedef struct {
    tai_device *dev;
    tai_dref base;
} wimg;

static tai_dref at(const wimg *w, const tai_wref *r) { return tai_dref_at(w->base, r->off); }

/* y = W x on the device of w, with that device's scratch; columns [pf, n)
 * are prompt tokens (tai_batch's prompt_from) and go through the device's
 * prompt products where it has them (dense weights). Recorded as op `op`
 * in the model's profile when one runs. */
static TinyAIStatus matmul(const TinyAIModel *m, int op, const tai_dws *ws, const wimg *w,
                           const tai_wref *r, tai_dref x, tai_dref y, int n, int pf) {
    const uint64_t t0 = m->prof ? tai_now_ns() : 0;
    TinyAIStatus st = TINYAI_OK;
    if (r->keep) {
        st = tai_dev_matmul_sparse(w->dev, r->type, at(w, r), r->rows, r->n, r->keep, x, y, n,
                                   ws->mm_scratch);
    } else if (pf >= n || !m->cfg.bf16Prompts || !tai_dev_has_prompt(w->dev)) {
        st = tai_dev_matmul(w->dev, r->type, at(w, r), r->rows, r->n, x, y, n, ws->mm_scratch);
    } else {
        if (pf > 0)
            st = tai_dev_matmul(w->dev, r->type, at(w, r), r->rows, r->n, x, y, pf, ws->mm_scratch);
        if (st == TINYAI_OK)
            st = tai_dev_matmul_prompt(w->dev, r->type, at(w, r), r->rows, r->n,
                                       tai_dref_at(x, (size_t)pf * (size_t)r->n * sizeof(float)),
                                       tai_dref_at(y, (size_t)pf * (size_t)r->rows * sizeof(float)),
                                       n - pf, ws->mm_scratch);
    }
    if (st == TINYAI_OK && m->prof) {
        const int64_t k = r->keep ? r->keep * TAI_QK : r->n; /* elements read per row */
        st = tai_prof_op(m->prof, w->dev, op, t0, (double)tai_type_row_bytes(r->type, k) * (double)r->rows,
                         2.0 * (double)r->rows * (double)k * n);
    }
    return st;
}

/* Products of one input x (a block's q, k and v; its gate and up): on the
 * device together (x prepared once, one dispatch) when none is
 * block-sparse, or one by one when a profile times each (the same
 * results either way). */
static TinyAIStatus matmul_group(const TinyAIModel *m, const int *ops, const tai_dws *ws,
                                 const wimg *w, const tai_wref *const *r, int k, tai_dref x,
                                 const tai_dref *y, int n, int pf) {
    /* prompt columns: each product splits its columns (matmul) */
    int together = !m->prof && k <= TAI_DEV_MATMUL_MANY &&
                   (pf >= n || !m->cfg.bf16Prompts || !tai_dev_has_prompt(w->dev));
    for (int i = 0; i < k; i++) together &= !r[i]->keep && r[i]->n == r[0]->n;
    if (!together) {
        for (int i = 0; i < k; i++) {
            const TinyAIStatus st = matmul(m, ops[i], ws, w, r[i], x, y[i], n, pf);
            if (st != TINYAI_OK) return st;
        }
        return TINYAI_OK;
    }
    tai_type t[TAI_DEV_MATMUL_MANY];
    tai_dref wr[TAI_DEV_MATMUL_MANY];
    int64_t rows[TAI_DEV_MATMUL_MANY];
    for (int i = 0; i < k; i++) {
        t[i] = r[i]->type;
        wr[i] = at(w, r[i]);
        rows[i] = r[i]->rows;
    }
    return tai_dev_matmul_many(w->dev, k, t, wr, rows, r[0]->n, x, y, n, ws->mm_scratch);
}

/* An op of the pass (m and dev in scope): run, and recorded in the
 * model's profile when one runs. */
#define OP(id, bytes, flops, expr)                                                           \
    do {                                                                                     \
        const uint64_t t0_ = m->prof ? tai_now_ns() : 0;                                     \
        TinyAIStatus st_ = (expr);                                                           \
        if (st_ == TINYAI_OK && m->prof)                                                     \
            st_ = tai_prof_op(m->prof, dev, (id), t0_, (double)(bytes), (double)(flops));    \
        if (st_ != TINYAI_OK) return st_;                                                    \
    } while (0)

/* A block's K or V cache of a session on device d, at position pos. */
static tai_dref kv_at(const TinyAIModel *m, int d, const TinyAISession *s, int layer, int is_v,
                      int64_t pos) {
    const int64_t kvd = (int64_t)m->hp.n_head_kv * m->hp.head_dim;
    if (d == 0) {
        const char *base = is_v ? s->v_cache : s->k_cache;
        return tai_dref_host(base + ((size_t)layer * s->n_ctx + (size_t)pos) * (size_t)kvd *
                                        tai_kv_elem(m));
    }
    tai_dref r = {is_v ? s->dev_v[d] : s->dev_k[d],
                  (((size_t)m->kv_slot[layer] * s->n_ctx + (size_t)pos) * (size_t)kvd) *
                      sizeof(float)};
    return r;
}

/* An 8-bit cache's scales of a block of a session on the host, from
 * position pos (tai_kv_scale_offset). */
static tai_dref kv_scale_at(const TinyAIModel *m, const TinyAISession *s, int layer, int is_v,
                            int64_t pos) {
    const int64_t kvd = (int64_t)m->hp.n_head_kv * m->hp.head_dim;
    const char *base = is_v ? s->v_cache : s->k_cache;
    return tai_dref_host(base + tai_kv_scale_offset(m, s->n_ctx) +
                         ((size_t)layer * s->n_ctx + (size_t)pos) * (size_t)(kvd / 32) *
                             sizeof(float));
}

/* k and v of the batch's columns appended to their sessions' caches at
 * their positions: one copy per run of columns of one session at
 * consecutive positions (a prompt is one run). */
/* A block's cache on device d (not the CPU) made whole up to each
 * column's session's first new position, from the host's copy. */
static TinyAIStatus sync_kv(const tai_batch *b, int d, int layer) {
    TinyAIModel *m = b->m;
    const int64_t kvd = (int64_t)m->hp.n_head_kv * m->hp.head_dim;
    for (int t = 0; t < b->n; t++) {
        TinyAISession *s = b->seq[t];
        if (t > 0 && s == b->seq[t - 1]) continue;
        const int need = b->pos[t];
        int *valid = &s->dev_valid[d][layer];
        if (*valid >= need) continue;
        const size_t bytes = (size_t)(need - *valid) * (size_t)kvd * sizeof(float);
        for (int is_v = 0; is_v < 2; is_v++) {
            TinyAIStatus st = tai_dev_upload(m->devs[d], kv_at(m, d, s, layer, is_v, *valid),
                                             (const void *)(uintptr_t)kv_at(m, 0, s, layer, is_v, *valid).off,
                                             bytes);
            if (st != TINYAI_OK) return st;
        }
        *valid = need;
    }
    return TINYAI_OK;
}

/* The end of the batch's run of columns from t0: one session's
 * consecutive positions. */
static int run_end(const tai_batch *b, int t0) {
    int t1 = t0 + 1;
    while (t1 < b->n && b->seq[t1] == b->seq[t0] && b->pos[t1] == b->pos[t1 - 1] + 1) t1++;
    return t1;
}

/* A binary16 or 8-bit cache (the host's: every layer runs on the CPU):
 * each session's new positions converted into its K and V caches, the
 * runs of up to CONV_RUNS / 2 sessions converted by one call. */
enum { CONV_RUNS = 64 };
static TinyAIStatus store_kv_converted(const tai_batch *b, int d, int layer) {
    TinyAIModel *m = b->m;
    const tai_dws *ws = &m->dws[d];
    const int64_t kvd = (int64_t)m->hp.n_head_kv * m->hp.head_dim;
    const int kind = m->cfg.kvCacheType == TINYAI_KV_Q8_0 ? 2 : 1;
    const size_t col = (size_t)kvd * sizeof(float);
    tai_dref dst[CONV_RUNS], dsc[CONV_RUNS], src[CONV_RUNS];
    int64_t count[CONV_RUNS];
    int n = 0;
    for (int t0 = 0; t0 < b->n;) {
        TinyAISession *s = b->seq[t0];
        const int t1 = run_end(b, t0);
        for (int is_v = 0; is_v < 2; is_v++) {
            dst[n] = kv_at(m, d, s, layer, is_v, b->pos[t0]);
            dsc[n] = kind == 2 ? kv_scale_at(m, s, layer, is_v, b->pos[t0]) : dst[n];
            src[n] = tai_dref_at(is_v ? ws->v : ws->k, (size_t)t0 * col);
            count[n++] = (int64_t)(t1 - t0) * kvd;
        }
        t0 = t1;
        if (n == CONV_RUNS || t0 == b->n) {
            const TinyAIStatus st = tai_dev_to_cache_many(m->devs[d], kind, n, dst, dsc, src, count);
            if (st != TINYAI_OK) return st;
            n = 0;
        }
    }
    return TINYAI_OK;
}

static TinyAIStatus store_kv(const tai_batch *b, int d, int layer) {
    TinyAIModel *m = b->m;
    const tai_dws *ws = &m->dws[d];
    const int64_t kvd = (int64_t)m->hp.n_head_kv * m->hp.head_dim;
    if (m->cfg.kvCacheType != TINYAI_KV_F32) return store_kv_converted(b, d, layer);
    for (int t0 = 0; t0 < b->n;) {
        TinyAISession *s = b->seq[t0];
        const int t1 = run_end(b, t0);
        const size_t col = (size_t)kvd * sizeof(float), bytes = (size_t)(t1 - t0) * col;
        const int p0 = b->pos[t0], p1 = b->pos[t1 - 1] + 1;
        TinyAIStatus st = tai_dev_copy(m->devs[d], kv_at(m, d, s, layer, 0, p0),
                                       tai_dref_at(ws->k, (size_t)t0 * col), bytes);
        if (st == TINYAI_OK)
            st = tai_dev_copy(m->devs[d], kv_at(m, d, s, layer, 1, p0),
                              tai_dref_at(ws->v, (size_t)t0 * col), bytes);
        if (st == TINYAI_OK && d != 0) {
            /* the host keeps every position: a later pass of this block on
             * another device starts from it */
            st = tai_dev_download(m->devs[d], (void *)(uintptr_t)kv_at(m, 0, s, layer, 0, p0).off,
                                  tai_dref_at(ws->k, (size_t)t0 * col), bytes);
            if (st == TINYAI_OK)
                st = tai_dev_download(m->devs[d],
                                      (void *)(uintptr_t)kv_at(m, 0, s, layer, 1, p0).off,
                                      tai_dref_at(ws->v, (size_t)t0 * col), bytes);
            if (st == TINYAI_OK && s->dev_valid[d][layer] >= p0) s->dev_valid[d][layer] = p1;
        }
        if (st != TINYAI_OK) return st;
        /* what other devices hold from p0 on is stale now */
        for (int e = 1; e < m->n_devs; e++)
            if (e != d && s->dev_valid[e] && s->dev_valid[e][layer] > p0) s->dev_valid[e][layer] = p0;
        t0 = t1;
    }
    return TINYAI_OK;
}

/* Each column attends over its own session's cache of this layer. */
static TinyAIStatus attend(const tai_batch *b, int d, int layer) {
    TinyAIModel *m = b->m;
    const tai_workspace *hws = &m->ws;
    const tai_dws *ws = &m->dws[d];
    const tai_hparams *hp = &m->hp;
    for (int t = 0; t < b->n; t++) {
        hws->att_k[t] = kv_at(m, d, b->seq[t], layer, 0, 0);
        hws->att_v[t] = kv_at(m, d, b->seq[t], layer, 1, 0);
        hws->att_pos[t] = b->pos[t];
        if (m->cfg.kvCacheType == TINYAI_KV_Q8_0) {
            hws->att_ks[t] = kv_scale_at(m, b->seq[t], layer, 0, 0);
            hws->att_vs[t] = kv_scale_at(m, b->seq[t], layer, 1, 0);
        }
    }
    if (m->cfg.kvCacheType == TINYAI_KV_Q8_0)
        return tai_dev_attention_q8(m->devs[d], ws->att_out, ws->q, b->n, hws->att_k, hws->att_v,
                                    hws->att_ks, hws->att_vs, hws->att_pos, hp->n_head,
                                    hp->n_head_kv, hp->head_dim,
                                    tai_hp_swa(hp, layer) ? hp->ap.swa_window : 0,
                                    ws->att_scratch, ws->att_scratch_bytes);
    if (m->cfg.kvCacheType == TINYAI_KV_F16)
        return tai_dev_attention_f16(m->devs[d], ws->att_out, ws->q, b->n, hws->att_k, hws->att_v,
                                     hws->att_pos, hp->n_head, hp->n_head_kv, hp->head_dim,
                                     tai_hp_swa(hp, layer) ? hp->ap.swa_window : 0,
                                     ws->att_scratch, ws->att_scratch_bytes);
    if (tai_hp_swa(hp, layer))
        return tai_dev_attention_window(m->devs[d], ws->att_out, ws->q, b->n, hws->att_k,
                                        hws->att_v, hws->att_pos, hp->n_head, hp->n_head_kv,
                                        hp->head_dim, hp->ap.swa_window, ws->att_scratch,
                                        ws->att_scratch_bytes);
    return tai_dev_attention(m->devs[d], ws->att_out, ws->q, b->n, hws->att_k, hws->att_v,
                             hws->att_pos, hp->n_head, hp->n_head_kv, hp->head_dim,
                             ws->att_scratch, ws->att_scratch_bytes);
}

#define TRY_OP(expr)                         \
    do {                                     \
        TinyAIStatus st_ = (expr);           \
        if (st_ != TINYAI_OK) return st_;    \
    } while (0)

/* Makes the residual stream x (and this batch's rotation angles) of the
 * batch's columns present on device d: a layer placed on another device
 * than the previous one receives them, through the host. */
static TinyAIStatus enter(const tai_batch *b, int d) {
    TinyAIModel *m = b->m;
    const int64_t E = m->hp.n_embd;
    const size_t xb = (size_t)b->n * (size_t)E * sizeof(float);
    if (m->fw_cur != d) {
        if (m->fw_cur != 0) {
            tai_device *from = m->devs[m->fw_cur];
            TRY_OP(tai_dev_download(from, m->ws.x, m->dws[m->fw_cur].x, xb));
        }
        if (d != 0) TRY_OP(tai_dev_upload(m->devs[d], m->dws[d].x, m->ws.x, xb));
        m->fw_cur = d;
    }
    if (d != 0 && !(m->fw_rope & (1u << d))) {
        const size_t cb = (size_t)b->n * (size_t)m->hp.rot_dim * sizeof(float);
        TRY_OP(tai_dev_upload(m->devs[d], m->dws[d].rope_cs, m->ws.rope_cs, cb));
        if (m->ws.rope_swa)
            TRY_OP(tai_dev_upload(m->devs[d], m->dws[d].rope_swa, m->ws.rope_swa, cb));
        m->fw_rope |= 1u << d;
    }
    return TINYAI_OK;
}

/* q and k of the batch's columns rotated by their positions (block l's
 * angles: a sliding-window block's base may be its own). */
static TinyAIStatus rope_qk(const tai_batch *b, int d, int l) {
    const TinyAIModel *m = b->m;
    const tai_dws *ws = &m->dws[d];
    const tai_hparams *hp = &m->hp;
    const int64_t kvd = (int64_t)hp->n_head_kv * hp->head_dim;
    const tai_dref cs = m->ws.rope_swa && tai_hp_swa(hp, l) ? ws->rope_swa : ws->rope_cs;
    if (hp->flags & TAI_ARCH_NEOX) {
        TRY_OP(tai_dev_rope_neox(m->devs[d], ws->q, b->n, hp->q_dim, hp->n_head, hp->head_dim,
                                 hp->rot_dim, cs));
        return tai_dev_rope_neox(m->devs[d], ws->k, b->n, kvd, hp->n_head_kv, hp->head_dim,
                                 hp->rot_dim, cs);
    }
    TRY_OP(tai_dev_rope(m->devs[d], ws->q, b->n, hp->q_dim, hp->n_head, hp->head_dim, hp->rot_dim,
                        cs));
    return tai_dev_rope(m->devs[d], ws->k, b->n, kvd, hp->n_head_kv, hp->head_dim, hp->rot_dim, cs);
}

/* The architecture's steps between the q, k, v products and RoPE: biases,
 * per-head norms. */
static TinyAIStatus qkv_extras(const tai_batch *b, int d, const tai_block *blk, const wimg *w) {
    const TinyAIModel *m = b->m;
    tai_device *dev = m->devs[d];
    const tai_dws *ws = &m->dws[d];
    const tai_hparams *hp = &m->hp;
    const int64_t kvd = (int64_t)hp->n_head_kv * hp->head_dim, n = b->n;
    if (hp->flags & TAI_ARCH_QKV_BIAS) {
        TRY_OP(tai_dev_add_bias(dev, ws->q, at(w, &blk->bq), hp->q_dim, n));
        TRY_OP(tai_dev_add_bias(dev, ws->k, at(w, &blk->bk), kvd, n));
        TRY_OP(tai_dev_add_bias(dev, ws->v, at(w, &blk->bv), kvd, n));
    }
    if (hp->flags & TAI_ARCH_QK_NORM) {
        TRY_OP(tai_dev_rmsnorm(dev, ws->q, ws->q, at(w, &blk->q_norm), hp->head_dim,
                               n * hp->n_head, hp->rms_eps));
        TRY_OP(tai_dev_rmsnorm(dev, ws->k, ws->k, at(w, &blk->k_norm), hp->head_dim,
                               n * hp->n_head_kv, hp->rms_eps));
    }
    return TINYAI_OK;
}

static TinyAIStatus run_block(const tai_batch *b, int l, int d, const wimg *wp) {
    TinyAIModel *m = b->m;
    tai_device *dev = m->devs[d];
    const tai_dws *ws = &m->dws[d];
    const tai_hparams *hp = &m->hp;
    const tai_block *blk = &m->blocks[l];
    const int n = b->n;
    const int64_t E = hp->n_embd, F = hp->n_ff, Q = hp->q_dim,
                  kvd = (int64_t)hp->n_head_kv * hp->head_dim;
    const wimg w = *wp;
    const int post = (hp->flags & TAI_ARCH_POST_NORMS) != 0;
    /* what the ops other than the products move and compute, for the
     * profile: floats read and written, and the positions attended */
    const double en = (double)E * n * 4, fn = (double)F * n * 4, qn = (double)Q * n * 4;
    double ctx = 0;
    for (int t = 0; m->prof && t < n; t++) {
        const double span = b->pos[t] + 1;
        ctx += tai_hp_swa(hp, l) && span > hp->ap.swa_window ? hp->ap.swa_window : span;
    }
    OP(TAI_PROF_TRANSFER, 0, 0, enter(b, d));
    OP(TAI_PROF_ATTN_NORM, 2 * en, 3 * en / 4,
       tai_dev_rmsnorm(dev, ws->xb, ws->x, at(&w, &blk->attn_norm), E, n, hp->rms_eps));
    {
        const int ops[3] = {TAI_PROF_Q, TAI_PROF_K, TAI_PROF_V};
        const tai_wref *r[3] = {&blk->wq, &blk->wk, &blk->wv};
        const tai_dref y[3] = {ws->q, ws->k, ws->v};
        TRY_OP(matmul_group(m, ops, ws, &w, r, 3, ws->xb, y, n, b->prompt_from));
    }
    if (hp->flags & (TAI_ARCH_QKV_BIAS | TAI_ARCH_QK_NORM))
        OP(TAI_PROF_ROPE, 2 * (qn + (double)kvd * n * 4), 1.5 * (qn + (double)kvd * n * 4) / 4,
           qkv_extras(b, d, blk, &w));
    OP(TAI_PROF_ROPE, 2 * (qn + (double)kvd * n * 4), 1.5 * (qn + (double)kvd * n * 4) / 4,
       rope_qk(b, d, l));
    if (d != 0) OP(TAI_PROF_TRANSFER, 0, 0, sync_kv(b, d, l));
    /* K and V read as floats, written as the cache's values; the cache read */
    const double kve = (double)tai_kv_elem(m) + /* a value's bytes, with its share of a scale */
                       (m->cfg.kvCacheType == TINYAI_KV_Q8_0 ? 4.0 / 32 : 0.0);
    OP(TAI_PROF_KV_STORE, (8.0 + 2.0 * kve) * kvd * n, 0, store_kv(b, d, l));
    OP(TAI_PROF_ATTENTION, 2.0 * kvd * kve * ctx, 4.0 * hp->n_head * hp->head_dim * ctx,
       attend(b, d, l));
    TRY_OP(matmul(m, TAI_PROF_O, ws, &w, &blk->wo, ws->att_out, ws->xb, n, b->prompt_from));
    if (post)
        OP(TAI_PROF_ATTN_NORM, 2 * en, 3 * en / 4,
           tai_dev_rmsnorm(dev, ws->xb, ws->xb, at(&w, &blk->post_attn_norm), E, n, hp->rms_eps));
    OP(TAI_PROF_RESIDUAL, 3 * en, en / 4, tai_dev_add(dev, ws->x, ws->xb, E * n));
    OP(TAI_PROF_FFN_NORM, 2 * en, 3 * en / 4,
       tai_dev_rmsnorm(dev, ws->xb, ws->x, at(&w, &blk->ffn_norm), E, n, hp->rms_eps));
    {
        const int ops[2] = {TAI_PROF_GATE, TAI_PROF_UP};
        const tai_wref *r[2] = {&blk->w_gate, &blk->w_up};
        const tai_dref y[2] = {ws->gate, ws->up};
        TRY_OP(matmul_group(m, ops, ws, &w, r, 2, ws->xb, y, n, b->prompt_from));
    }
    OP(TAI_PROF_SWIGLU, 3 * fn, 5 * fn / 4,
       (hp->flags & TAI_ARCH_GEGLU) ? tai_dev_geglu(dev, ws->gate, ws->up, F * n)
                                    : tai_dev_swiglu(dev, ws->gate, ws->up, F * n));
    TRY_OP(matmul(m, TAI_PROF_DOWN, ws, &w, &blk->w_down, ws->gate, ws->ffn_out, n, b->prompt_from));
    if (post)
        OP(TAI_PROF_FFN_NORM, 2 * en, 3 * en / 4,
           tai_dev_rmsnorm(dev, ws->ffn_out, ws->ffn_out, at(&w, &blk->post_ffn_norm), E, n,
                           hp->rms_eps));
    OP(TAI_PROF_RESIDUAL, 3 * en, en / 4, tai_dev_add(dev, ws->x, ws->ffn_out, E * n));
    return TINYAI_OK;
}

/* (cos, sin) pairs of position pos scaled by `scale` (linear RoPE
 * scaling; 1: tai_host_rope_angles exactly). */
static void angles(float *cs, int rot, int64_t pos, float base, float scale) {
    if (scale == 1.0f) {
        tai_host_rope_angles(cs, rot, pos, base);
        return;
    }
    for (int i = 0; 2 * i + 1 < rot; i++) {
        const double a = (double)pos * (double)scale * pow((double)base, -2.0 * i / (double)rot);
        cs[2 * i] = (float)cos(a);
        cs[2 * i + 1] = (float)sin(a);
    }
}

/* The rotation angles of each column's position, shared by every layer
 * (and the sliding-window blocks' with their own base, unscaled). */
static void rope_angles(const tai_batch *b) {
    const tai_hparams *hp = &b->m->hp;
    for (int t = 0; t < b->n; t++) {
        angles(b->m->ws.rope_cs + (int64_t)t * hp->rot_dim, hp->rot_dim, b->pos[t], hp->rope_base,
               hp->rope_scale);
        if (b->m->ws.rope_swa)
            angles(b->m->ws.rope_swa + (int64_t)t * hp->rot_dim, hp->rot_dim, b->pos[t],
                   hp->ap.swa_rope_base, 1.0f);
    }
}

/* Gemma's embeddings times sqrt(n_embd) (in float, as trained). */
static void scale_embeddings(const tai_batch *b) {
    const TinyAIModel *m = b->m;
    if (!(m->hp.flags & TAI_ARCH_EMB_SCALE)) return;
    const float s = sqrtf((float)m->hp.n_embd);
    float *x = m->ws.x;
    for (int64_t i = 0, e = (int64_t)b->n * m->hp.n_embd; i < e; i++) x[i] *= s;
}

/* The embedding lookup runs on the CPU (layer 0's place): a few rows of
 * a large table. */
static TinyAIStatus run_embedding(const tai_batch *b, const wimg *w) {
    TinyAIModel *m = b->m;
    tai_device *dev = m->dev;
    const tai_wref *e = &m->tok_embd;
    rope_angles(b);
    OP(TAI_PROF_EMBEDDING, (double)tai_type_row_bytes(e->type, e->n) * b->n, 0,
       tai_dev_embed(dev, e->type, at(w, e), e->rows, e->n, b->tokens, b->n,
                     tai_dref_host(m->ws.x)));
    scale_embeddings(b);
    return TINYAI_OK;
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
            tai_host_packed_row(e->type, src, TAI_PANEL, e->n, r % TAI_PANEL, x);
        else
            tai_dequantize_row(e->type, src, x, e->n);
    }
    scale_embeddings(b);
    rope_angles(b);
    return TINYAI_OK;
}

/* Whether column t of the batch gets logits: the last of its session's
 * run, or any column of a session that wants them all (tinyaiEvalStepAll). */
static bool row_of(const tai_batch *b, int t) {
    return t == b->n - 1 || b->seq[t] != b->seq[t + 1] || b->seq[t]->want_all;
}

/* Final norm and logits, for the last column of each session in the batch
 * (the batch holds each session's columns together): a prompt's last
 * token, every sequence of a batched decoding step, both in a mixed step;
 * and every column of a session that wants them all, whose rows stay in
 * the workspace's batch_logits. */
static TinyAIStatus run_head(const tai_batch *b, int d, const wimg *head, const wimg *out_w) {
    TinyAIModel *m = b->m;
    tai_device *dev = m->devs[d];
    const tai_dws *ws = &m->dws[d];
    const int64_t E = m->hp.n_embd, V = m->hp.n_vocab;
    const size_t eb = (size_t)E * sizeof(float), vb = (size_t)V * sizeof(float);
    const wimg wh = *head, wo = *out_w;
    OP(TAI_PROF_TRANSFER, 0, 0, enter(b, d));
    TinyAISession *last = b->seq[b->n - 1];
    int rows = 0; /* columns that get logits */
    for (int t = 0; t < b->n; t++) rows += row_of(b, t);
    if (rows == 1) {
        OP(TAI_PROF_OUT_NORM, 2.0 * eb, 3.0 * E,
           tai_dev_rmsnorm(dev, ws->xb, tai_dref_at(ws->x, (size_t)(b->n - 1) * eb),
                           at(&wh, &m->out_norm), E, 1, m->hp.rms_eps));
        if (d == 0) { /* straight into the session */
            TRY_OP(matmul(m, TAI_PROF_HEAD, ws, &wo, &m->output, ws->xb, tai_dref_host(last->logits), 1,
                          b->prompt_from < b->n ? 0 : 1));
        } else {
            TRY_OP(matmul(m, TAI_PROF_HEAD, ws, &wo, &m->output, ws->xb, ws->logits, 1,
                          b->prompt_from < b->n ? 0 : 1));
            OP(TAI_PROF_TRANSFER, vb, 0, tai_dev_download(dev, last->logits, ws->logits, vb));
        }
        last->have_logits = 1;
        last->all_row = -1;
        last->all_n = 1;
        return TINYAI_OK;
    }
    if (rows == b->n) { /* every column: all at once */
        OP(TAI_PROF_OUT_NORM, 2.0 * eb * b->n, 3.0 * E * b->n,
           tai_dev_rmsnorm(dev, ws->xb, ws->x, at(&wh, &m->out_norm), E, b->n, m->hp.rms_eps));
    } else {
        for (int t = 0, k = 0; t < b->n; t++)
            if (row_of(b, t))
                OP(TAI_PROF_OUT_NORM, 2.0 * eb, 3.0 * E,
                   tai_dev_rmsnorm(dev, tai_dref_at(ws->xb, (size_t)k++ * eb),
                                   tai_dref_at(ws->x, (size_t)t * eb), at(&wh, &m->out_norm), E, 1,
                                   m->hp.rms_eps));
    }
    /* the generated tokens' columns are their sessions' only ones, ahead of
     * the prompts': the same count of rows before the prompts' */
    TRY_OP(matmul(m, TAI_PROF_HEAD, ws, &wo, &m->output, ws->xb, ws->logits, rows,
                  b->prompt_from < rows ? b->prompt_from : rows));
    if (d != 0)
        OP(TAI_PROF_TRANSFER, (double)rows * vb, 0,
           tai_dev_download(dev, m->ws.batch_logits, ws->logits, (size_t)rows * vb));
    for (int t = 0, k = 0; t < b->n; t++) {
        if (!row_of(b, t)) continue;
        TinyAISession *s = b->seq[t];
        if (s->want_all && (t == 0 || b->seq[t - 1] != s)) {
            s->all_row = k;
            s->all_n = 0;
        }
        if (s->want_all) s->all_n++;
        if (t == b->n - 1 || b->seq[t + 1] != s) {
            memcpy(s->logits, m->ws.batch_logits + (int64_t)k * V, vb);
            s->have_logits = 1;
        }
        k++;
    }
    return TINYAI_OK;
}

void tai_llama_angles(const tai_batch *b) { rope_angles(b); }

/* Columns a pass looks up by reading rows while the table loads: a read
 * each (at most), a few ms in all, where the table takes tens of ms to
 * arrive; a longer prompt waits for the table. */
#define EMB_ROWS_WHILE_LOADING 64

/* Whether layer l is not resident but on its way: its read queued or under
 * way, or a whole load (tai_mapped_pin_all_start) still to reach it. */
static bool still_loading(TinyAIModel *m, int l) {
    const tai_entry_state st = tai_mapped_layer_state(m->mm, l);
    return st == TAI_ENTRY_LOADING ||
           (st == TAI_ENTRY_ABSENT && tai_mapped_pin_pending(m->mm, NULL));
}

void tai_llama_begin(const tai_batch *b) {
    TinyAIModel *m = b->m;
    m->steps++; /* the workspace's rows of logits are this pass's from now */
    m->fw_cur = 0;
    m->fw_rope = 0;
    /* An untied table still on its way (loaded last, memplan.c): a short
     * pass reads its rows from the file instead of waiting for all of it,
     * as under a limit. Only bytes that need no checksum first (GGUF, or a
     * .tmai layer already checked): a row read before the table's check
     * could be one the check will refuse. */
    m->emb_rows_pass = m->emb_rows ||
                       (!m->tied && m->emb_tensor && m->ws.emb_read &&
                        b->n <= EMB_ROWS_WHILE_LOADING &&
                        still_loading(m, 0) &&
                        tai_mapped_layer_checked(m->mm, 0));
}

int tai_llama_layer_images(const TinyAIModel *m, int layer, int ids[2]) {
    if (layer == 0 && m->emb_rows_pass) return 0;
    if (layer == m->hp.n_layer + 1 && m->tied) {
        /* The tied head reads the embedding table as its output matrix, so
         * both are held at once. The embedding (large) is acquired first,
         * while nothing is held and the cache can evict anything to place
         * it; the head (small) then fits in what is left. The other way
         * round, the head could sit where no range is left wide enough for
         * the embedding. The schedule (tai_llama_schedule) has this order. */
        ids[0] = 0;
        ids[1] = layer;
        return 2;
    }
    ids[0] = layer;
    return 1;
}

TinyAIStatus tai_llama_run(const tai_batch *b, int layer, int d, const tai_dref *w) {
    TinyAIModel *m = b->m;
    const int nl = m->hp.n_layer;
    if (layer < 0 || layer > nl + 1)
        return tai_error(TINYAI_ERR_INVALID_ARG, "layer %d out of range (0..%d)", layer, nl + 1);
    if (layer == 0 && m->emb_rows_pass) return run_embedding_rows(b);
    wimg wi[2] = {{m->devs[d], w[0]}, {m->devs[d], w[0]}};
    if (layer == nl + 1 && m->tied) { /* w: the embedding, then the head */
        wi[1].base = w[1];
        return run_head(b, d, &wi[1], &wi[0]);
    }
    if (layer == 0) return run_embedding(b, &wi[0]);
    if (layer <= nl) return run_block(b, layer - 1, d, &wi[0]);
    return run_head(b, d, &wi[0], &wi[0]);
}

void tai_llama_finish(const tai_batch *b) {
    const float cap = b->m->hp.ap.logit_softcap;
    const int64_t V = b->m->hp.n_vocab;
    /* every column of one session advances it by one; a prompt batch has
     * all its columns in one session */
    for (int t = 0; t < b->n; t++)
        if (t == b->n - 1 || b->seq[t] != b->seq[t + 1]) {
            TinyAISession *s = b->seq[t];
            s->pos = b->pos[t] + 1;
            if (cap > 0 && s->have_logits) /* soft-capped logits */
                for (int64_t i = 0; i < V; i++) s->logits[i] = cap * tanhf(s->logits[i] / cap);
            if (cap > 0 && s->want_all && s->all_row >= 0) { /* and its rows */
                float *l = b->m->ws.batch_logits + (int64_t)s->all_row * V;
                for (int64_t i = 0; i < (int64_t)s->all_n * V; i++) l[i] = cap * tanhf(l[i] / cap);
            }
        }
}
