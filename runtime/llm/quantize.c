/*
 * runtime/llm/quantize.c: mixed-precision conversion of a model file
 * (<tinyai/utils/quantize_mixed.h>).
 *
 * A conversion is a streaming copy: the source's metadata, then its tensors
 * layer by layer, each either copied (same type, row-major) or converted a
 * chunk of rows at a time (each row dequantized to floats, from its
 * row-major bytes or out of packed panels, and quantized to the target
 * type, rows split across threads), written through the GGUF writer. A .tmai
 * output is that GGUF converted by the .tmai writer. Memory: a few MiB of
 * rows per chunk, whatever the model's size.
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tinyai/utils/quantize_mixed.h>

#include "core/error.h"
#include "core/thread.h"
#include "offload/host.h"
#include "runtime/format/gguf_write.h"
#include "runtime/llm/llm_internal.h"
#include "runtime/model/model.h"

enum { G_EMB, G_ATT, G_FFN, G_OUT, G_COUNT, G_NONE = -1 };
static const char *const group_name[G_COUNT] = {"embedding", "attention", "ffn", "output"};

/* The group of a tensor by its llama name: the matrices a precision
 * applies to; norms and anything else are G_NONE (kept as they are). */
static int tensor_group(const char *name) {
    if (!strcmp(name, "token_embd.weight")) return G_EMB;
    if (!strcmp(name, "output.weight")) return G_OUT;
    if (strncmp(name, "blk.", 4) != 0) return G_NONE;
    const char *p = strchr(name + 4, '.');
    if (!p) return G_NONE;
    p++;
    if (!strcmp(p, "attn_q.weight") || !strcmp(p, "attn_k.weight") ||
        !strcmp(p, "attn_v.weight") || !strcmp(p, "attn_output.weight"))
        return G_ATT;
    if (!strcmp(p, "ffn_gate.weight") || !strcmp(p, "ffn_up.weight") ||
        !strcmp(p, "ffn_down.weight"))
        return G_FFN;
    return G_NONE;
}

/* The type a precision means; `src` for TINYAI_PREC_SOURCE; -1 if unknown. */
static int prec_type(int prec, int int4, tai_type src) {
    switch (prec) {
    case TINYAI_PREC_FP32: return TAI_TYPE_F32;
    case TINYAI_PREC_FP16: return TAI_TYPE_F16;
    case TINYAI_PREC_INT8: return TAI_TYPE_Q8_0;
    case TINYAI_PREC_INT4:
        return int4 == TINYAI_INT4_Q4_1 ? TAI_TYPE_Q4_1
               : int4 == TINYAI_INT4_Q4_K ? TAI_TYPE_Q4_K
                                          : TAI_TYPE_Q4_0;
    case TINYAI_PREC_INT6: return TAI_TYPE_Q6_K;
    case TINYAI_PREC_INT5: return TAI_TYPE_Q5_K;
    case TINYAI_PREC_SOURCE: return (int)src;
    default: return -1;
    }
}

/* A K-quant for rows of n weights that are not whole super-blocks: the
 * type llama.cpp writes instead. */
static tai_type k_fallback(tai_type t, int64_t n) {
    if (n % TAI_QK_K == 0) return t;
    switch (t) {
    case TAI_TYPE_Q4_K: return TAI_TYPE_Q5_0;
    case TAI_TYPE_Q5_K: return TAI_TYPE_Q5_1;
    case TAI_TYPE_Q6_K: return TAI_TYPE_Q8_0;
    default: return t;
    }
}

/* llama.cpp's "more bits" blocks of n: the first and last eighth, and
 * every third between. */
static bool more_bits_block(int i, int n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* The block number of a "blk.N." name, or -1. */
static int block_of(const char *name) {
    if (strncmp(name, "blk.", 4) != 0) return -1;
    char *end = NULL;
    const long v = strtol(name + 4, &end, 10);
    return end && *end == '.' && v >= 0 && v < 1000000 ? (int)v : -1;
}

void tinyaiInitMixedPrecisionConfig(TinyAIMixedPrecisionConfig *c) {
    if (!c) return;
    memset(c, 0, sizeof *c);
    c->embeddingPrecision = c->attentionPrecision = c->ffnPrecision = c->outputPrecision =
        TINYAI_PREC_SOURCE;
    c->int4Format = TINYAI_INT4_Q4_0;
}

/* One tensor of the output: a source tensor (under its own name or, for an
 * untied head, as output.weight) and the type it is written as. */
typedef struct {
    const tai_tensor *src;
    const char *name;
    tai_type to;
} qtensor;

typedef struct {
    qtensor *t;
    int n;
    uint64_t total; /* source bytes to go through */
} qplan;

static TinyAIStatus plan_tensor(const tai_tensor *t, int group, const int *prec, int int4,
                                int more_bits, int n_blocks, bool allow_raise, tai_type *to) {
    *to = t->type;
    if (group == G_NONE) return TINYAI_OK;
    int ty = prec_type(prec[group], int4, t->type);
    if (ty < 0)
        return tai_error(TINYAI_ERR_INVALID_ARG, "%s precision: unknown value %d",
                         group_name[group], prec[group]);
    if (more_bits && (prec[group] == TINYAI_PREC_INT4 || prec[group] == TINYAI_PREC_INT5)) {
        const char *p = strchr(t->name + 4, '.');
        const int b = block_of(t->name);
        if (b >= 0 && p && (!strcmp(p, ".attn_v.weight") || !strcmp(p, ".ffn_down.weight")) &&
            more_bits_block(b, n_blocks))
            ty = TAI_TYPE_Q6_K;
    }
    if (prec[group] != TINYAI_PREC_SOURCE) ty = (int)k_fallback((tai_type)ty, t->ne[0]);
    if (ty == (int)t->type) return TINYAI_OK;
    if (t->n_dims != 2 || t->ne[0] % tai_type_block_elems((tai_type)ty) != 0)
        return tai_error(TINYAI_ERR_UNSUPPORTED,
                         "%s: rows of %lld elements cannot be stored as %s", t->name,
                         (long long)t->ne[0], tai_type_name(ty));
    if (!allow_raise && tai_type_bits((tai_type)ty) > tai_type_bits(t->type))
        return tai_error(TINYAI_ERR_INVALID_ARG,
                         "%s is %s: %s precision %s would raise it (precision only goes "
                         "down; use %s or lower, or TINYAI_PREC_SOURCE)",
                         t->name, tai_type_name(t->type), group_name[group],
                         tai_type_name(ty), tai_type_name(t->type));
    *to = (tai_type)ty;
    return TINYAI_OK;
}

/* Which tensors go out, in layer order, with their types. A tied head gets
 * its own output.weight when its type differs from the embedding's. */
static TinyAIStatus make_plan(const tai_model_file *mf, const TinyAIMixedPrecisionConfig *c,
                              bool allow_raise, qplan *p) {
    memset(p, 0, sizeof *p);
    if (c->int4Format != TINYAI_INT4_Q4_0 && c->int4Format != TINYAI_INT4_Q4_1 &&
        c->int4Format != TINYAI_INT4_Q4_K)
        return tai_error(TINYAI_ERR_INVALID_ARG, "int4Format: unknown value %d",
                         (int)c->int4Format);
    int n_blocks = 0;
    for (int64_t i = 0; i < mf->n_tensors; i++) {
        const int b = block_of(mf->tensors[i].name);
        if (b + 1 > n_blocks) n_blocks = b + 1;
    }
    const int prec[G_COUNT] = {c->embeddingPrecision, c->attentionPrecision, c->ffnPrecision,
                               c->outputPrecision};
    p->t = calloc((size_t)mf->n_tensors + 1, sizeof *p->t);
    if (!p->t) return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    const tai_tensor *emb = tai_model_file_find_tensor(mf, "token_embd.weight");
    const bool tied = tai_model_file_find_tensor(mf, "output.weight") == NULL;
    tai_type emb_to = emb ? emb->type : TAI_TYPE_F32;
    TinyAIStatus st = TINYAI_OK;
    for (int64_t i = 0; i < mf->n_tensors && st == TINYAI_OK; i++) {
        const tai_tensor *t = &mf->tensors[mf->layer_tensors[i]];
        qtensor *q = &p->t[p->n++];
        q->src = t;
        q->name = t->name;
        if (t->layout == TAI_LAYOUT_SPARSE) {
            st = tai_error(TINYAI_ERR_UNSUPPORTED, "%s is pruned (block-sparse): apply mixed "
                           "precision before pruning, to the unpruned model", t->name);
            break;
        }
        st = plan_tensor(t, tensor_group(t->name), prec, c->int4Format, c->useMoreBits, n_blocks,
                         allow_raise, &q->to);
        if (t == emb) emb_to = q->to;
        p->total += t->size;
    }
    if (st == TINYAI_OK && tied && emb && c->outputPrecision != TINYAI_PREC_SOURCE) {
        tai_type head_to;
        st = plan_tensor(emb, G_OUT, prec, c->int4Format, 0, n_blocks, allow_raise, &head_to);
        if (st == TINYAI_OK && head_to != emb_to) {
            /* after the head layer's tensors, i.e. last */
            p->t[p->n++] = (qtensor){emb, "output.weight", head_to};
            p->total += emb->size;
        }
    }
    if (st != TINYAI_OK) {
        free(p->t);
        p->t = NULL;
    }
    return st;
}

/* llama.cpp's general.file_type for a model mostly of type t (the K
 * types: their _M mixes with more bits, else _S). */
static uint32_t file_type_of(tai_type t, int more_bits) {
    switch (t) {
    case TAI_TYPE_F32: return 0;
    case TAI_TYPE_F16: return 1;
    case TAI_TYPE_Q4_0: return 2;
    case TAI_TYPE_Q4_1: return 3;
    case TAI_TYPE_Q8_0: return 7;
    case TAI_TYPE_Q5_0: return 8;
    case TAI_TYPE_Q5_1: return 9;
    case TAI_TYPE_Q4_K: return more_bits ? 15 : 14;
    case TAI_TYPE_Q5_K: return more_bits ? 17 : 16;
    case TAI_TYPE_Q6_K: return 18;
    case TAI_TYPE_BF16: return 32;
    default: return 0;
    }
}

/* ---- Converting rows ------------------------------------------------------ */

#define CHUNK_BYTES (4u << 20) /* output bytes converted between writes */

typedef struct {
    const tai_tensor *t;
    tai_type to;
    int64_t n, rows, r0, r1; /* rows [r0, r1) of this chunk */
    size_t src_row, dst_row;
    uint8_t *out;            /* chunk output, row r at (r - r0) * dst_row */
    int nthreads;
} conv_job;

typedef struct {
    const conv_job *job;
    int index;
    float *row;
} conv_worker;

static void convert_rows(const conv_job *j, int64_t a, int64_t b, float *row) {
    const tai_tensor *t = j->t;
    for (int64_t r = a; r < b; r++) {
        uint8_t *dst = j->out + (size_t)(r - j->r0) * j->dst_row;
        if (t->layout == TAI_LAYOUT_PACKED) {
            if (j->to == t->type) {
                tai_unpack_row(t->type, t->data, j->rows, j->n, r, dst);
                continue;
            }
            tai_host_packed_row(t->type, t->data, j->rows, j->n, r, row);
        } else {
            tai_dequantize_row(t->type, (const uint8_t *)t->data + (size_t)r * j->src_row, row,
                               j->n);
        }
        tai_quantize_row(j->to, row, dst, j->n);
    }
}

static void *conv_thread(void *arg) {
    conv_worker *w = arg;
    const conv_job *j = w->job;
    const int64_t span = j->r1 - j->r0;
    convert_rows(j, j->r0 + span * w->index / j->nthreads,
                 j->r0 + span * (w->index + 1) / j->nthreads, w->row);
    return NULL;
}

/* Converts the chunk's rows on up to j->nthreads threads (the calling one
 * among them); rows are independent. */
static void convert_chunk(conv_job *j, float **rowbufs) {
    int nt = j->nthreads;
    if (j->r1 - j->r0 < 2 * nt) nt = 1;
    conv_job jj = *j;
    jj.nthreads = nt;
    conv_worker w[8];
    pthread_t th[8];
    int started = 0;
    for (int i = 1; i < nt; i++) {
        w[i] = (conv_worker){&jj, i, rowbufs[i]};
        if (tai_thread_create(&th[i], conv_thread, &w[i]) != 0) break;
        started = i;
    }
    /* threads that could not start: their rows are done here */
    const int64_t span = jj.r1 - jj.r0;
    convert_rows(&jj, jj.r0, jj.r0 + span / nt, rowbufs[0]);
    if (started + 1 < nt)
        convert_rows(&jj, jj.r0 + span * (started + 1) / nt, jj.r1, rowbufs[0]);
    for (int i = 1; i <= started; i++) pthread_join(th[i], NULL);
}

typedef struct {
    const tai_model_file *mf;
    tai_gguf_writer *w;
    TinyAIQuantizeProgress progress;
    void *user;
    uint64_t done, total;
    int nthreads;
    float *rowbufs[8];
    uint8_t *chunk;
    size_t chunk_cap;
} qctx;

static TinyAIStatus write_tensor(qctx *q, const qtensor *qt) {
    const tai_tensor *t = qt->src;
    if (t->layout == TAI_LAYOUT_ROWS && qt->to == t->type) {
        for (uint64_t off = 0; off < t->size; off += CHUNK_BYTES) {
            const size_t k = t->size - off < CHUNK_BYTES ? (size_t)(t->size - off) : CHUNK_BYTES;
            TinyAIStatus st = tai_gguf_writer_write(q->w, (const uint8_t *)t->data + off, k);
            if (st) return st;
            tai_model_file_release(q->mf, (const uint8_t *)t->data + off, k);
            q->done += k;
            if (q->progress) q->progress(q->user, q->done, q->total);
        }
        return TINYAI_OK;
    }
    conv_job j = {.t = t, .to = qt->to, .n = t->ne[0], .rows = t->ne[1],
                  .src_row = tai_type_row_bytes(t->type, t->ne[0]),
                  .dst_row = tai_type_row_bytes(qt->to, t->ne[0]), .nthreads = q->nthreads};
    if (t->n_dims != 2 || j.dst_row == 0 || j.src_row == 0)
        return tai_error(TINYAI_ERR_UNSUPPORTED, "%s: cannot convert a %d-D tensor", t->name,
                         t->n_dims);
    int64_t per = (int64_t)(CHUNK_BYTES / j.dst_row);
    if (per < 1) per = 1;
    const size_t need = (size_t)per * j.dst_row;
    if (need > q->chunk_cap) {
        free(q->chunk);
        q->chunk = malloc(need);
        q->chunk_cap = q->chunk ? need : 0;
        if (!q->chunk) return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < q->nthreads; i++) {
        free(q->rowbufs[i]);
        q->rowbufs[i] = malloc((size_t)j.n * sizeof(float));
        if (!q->rowbufs[i]) return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    }
    j.out = q->chunk;
    const uint64_t base = q->done;
    for (int64_t r0 = 0; r0 < j.rows; r0 += per) {
        j.r0 = r0;
        j.r1 = r0 + per < j.rows ? r0 + per : j.rows;
        convert_chunk(&j, q->rowbufs);
        TinyAIStatus st = tai_gguf_writer_write(q->w, q->chunk, (size_t)(j.r1 - j.r0) * j.dst_row);
        if (st) return st;
        if (t->layout == TAI_LAYOUT_ROWS)
            tai_model_file_release(q->mf, (const uint8_t *)t->data + (size_t)j.r0 * j.src_row,
                        (uint64_t)(j.r1 - j.r0) * j.src_row);
        q->done += (uint64_t)((double)t->size * (double)(j.r1 - j.r0) / (double)j.rows);
        if (q->progress) q->progress(q->user, q->done, q->total);
    }
    q->done = base + t->size;
    if (t->layout == TAI_LAYOUT_PACKED) tai_model_file_release(q->mf, t->data, t->size);
    return TINYAI_OK;
}

static int default_threads(int asked) {
    if (asked > 0) return asked > 8 ? 8 : asked;
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c < 1 ? 1 : c > 8 ? 8 : (int)c;
}

static TinyAIStatus write_gguf(const tai_model_file *mf, const qplan *p, const char *path,
                               int threads, int more_bits, TinyAIQuantizeProgress progress,
                               void *user) {
    qctx q = {.mf = mf, .progress = progress, .user = user, .total = p->total,
              .nthreads = default_threads(threads)};
    TinyAIStatus st = tai_gguf_writer_open(path, 32, &q.w);
    if (st) return st;
    tai_type main_type = TAI_TYPE_F32;
    for (int i = 0; i < p->n; i++)
        if (tensor_group(p->t[i].name) == G_FFN && strstr(p->t[i].name, "ffn_gate")) main_type = p->t[i].to;
    for (int64_t i = 0; i < mf->n_kvs && st == TINYAI_OK; i++)
        if (strcmp(mf->kvs[i].key, "general.alignment") && strcmp(mf->kvs[i].key, "general.file_type"))
            st = tai_gguf_writer_add_kv(q.w, &mf->kvs[i]);
    if (st == TINYAI_OK) st = tai_gguf_writer_add_u32(q.w, "general.file_type", file_type_of(main_type, more_bits));
    for (int i = 0; i < p->n && st == TINYAI_OK; i++)
        st = tai_gguf_writer_add_tensor(q.w, p->t[i].name, p->t[i].to, p->t[i].src->n_dims,
                                        p->t[i].src->ne);
    if (st == TINYAI_OK) st = tai_gguf_writer_begin_data(q.w);
    for (int i = 0; i < p->n && st == TINYAI_OK; i++) st = write_tensor(&q, &p->t[i]);
    for (int i = 0; i < 8; i++) free(q.rowbufs[i]);
    free(q.chunk);
    if (st != TINYAI_OK) {
        tai_gguf_writer_abort(q.w);
        return st;
    }
    return tai_gguf_writer_finish(q.w);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

TinyAIStatus tai_quantize_file(const tai_model_file *mf, const char *out,
                               const TinyAIMixedPrecisionConfig *c, bool allow_raise,
                               TinyAIQuantizeProgress progress, void *user) {
    qplan p;
    TinyAIStatus st = make_plan(mf, c, allow_raise, &p);
    if (st) return st;
    if (!ends_with(out, ".tmai")) {
        st = write_gguf(mf, &p, out, c->threads, c->useMoreBits, progress, user);
        free(p.t);
        return st;
    }
    /* .tmai: the GGUF first, beside the output, then converted */
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.part.gguf", out) >= (int)sizeof tmp) {
        free(p.t);
        return tai_error(TINYAI_ERR_INVALID_ARG, "%s: path too long", out);
    }
    st = write_gguf(mf, &p, tmp, c->threads, c->useMoreBits, progress, user);
    free(p.t);
    if (st) return st;
    tai_model_file *g = NULL;
    st = tai_model_file_open(tmp, false, &g);
    if (st == TINYAI_OK) st = tai_tmai_write(g, out);
    tai_model_file_close(g);
    unlink(tmp);
    return st;
}

static TinyAIStatus check_config(const TinyAIMixedPrecisionConfig *c) {
    const int prec[G_COUNT] = {c->embeddingPrecision, c->attentionPrecision, c->ffnPrecision,
                               c->outputPrecision};
    for (int g = 0; g < G_COUNT; g++)
        if (prec_type(prec[g], 0, TAI_TYPE_F32) < 0)
            return tai_error(TINYAI_ERR_INVALID_ARG, "%s precision: unknown value %d",
                             group_name[g], prec[g]);
    if (c->threads < 0)
        return tai_error(TINYAI_ERR_INVALID_ARG, "threads: %d is negative", c->threads);
    return TINYAI_OK;
}

TinyAIStatus tinyaiQuantizeModelFile(const char *in, const char *out,
                                     const TinyAIMixedPrecisionConfig *config,
                                     TinyAIQuantizeProgress progress, void *user) {
    if (!in || !out || !*in || !*out || !config)
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiQuantizeModelFile: missing argument");
    TinyAIStatus st = check_config(config);
    if (st) return st;
    TinyAIModel *m = NULL;
    st = tai_model_open_source(in, out, &m);
    if (st == TINYAI_OK) st = tai_quantize_file(m->file, out, config, false, progress, user);
    tinyaiFreeModel(m);
    return st;
}

static TinyAIStatus write_mixed(const tai_model_file *mf, const char *path, const void *ctx) {
    return tai_quantize_file(mf, path, ctx, false, NULL, NULL);
}

TinyAIStatus tinyaiApplyMixedPrecision(TinyAIModel *m, const TinyAIMixedPrecisionConfig *c) {
    if (!m || !c)
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiApplyMixedPrecision: NULL argument");
    TinyAIStatus st = check_config(c);
    if (st) return st;
    /* the whole plan is checked before anything is written */
    qplan p;
    if (m->n_sessions == 0 && (st = make_plan(m->file, c, false, &p)) != TINYAI_OK) return st;
    if (m->n_sessions == 0) free(p.t);
    return tai_model_rewrite(m, c->tempDir, "tinyaiApplyMixedPrecision", write_mixed, c);
}
