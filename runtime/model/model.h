/*
 * runtime/model: the Llama-family model (hyperparameters, weight tensors
 * bound to the model file) and the forward pass over a session's KV cache.
 * Internal; the public face is <tinyai/llm.h>.
 */
#ifndef TAI_RUNTIME_MODEL_MODEL_H
#define TAI_RUNTIME_MODEL_MODEL_H

#include <stdint.h>

#include <tinyai/llm.h>

#include "core/liveplan.h"

#include "offload/cpu/cpu.h"
#include "offload/host.h"
#include "offload/offload.h"
#include "runtime/format/model_file.h"
#include "runtime/mapped/mapped.h"
#include "runtime/model/arch.h"
#include "runtime/tokenizer/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int n_vocab, n_ctx_train, n_embd, n_ff, n_head, n_head_kv, n_layer;
    int head_dim, rot_dim;
    int q_dim;          /* n_head * head_dim (n_embd unless the metadata's
                           attention.key_length says otherwise) */
    float rope_base, rms_eps;
    float rope_scale;   /* positions times this in the angles (linear RoPE
                           scaling: 1 / factor; 1: none) */
    const tai_arch *arch;
    uint32_t flags;     /* arch->flags */
    tai_arch_params ap; /* what its hook read */
    uint32_t ext_ops;   /* the TAI_OP_* beyond a Llama block's its blocks run */
} tai_hparams;

/* Whether block l (0-based) attends over a sliding window. */
static inline int tai_hp_swa(const tai_hparams *hp, int l) {
    return (hp->flags & TAI_ARCH_SWA) && hp->ap.swa_pattern > 0 &&
           (l + 1) % hp->ap.swa_pattern != 0;
}

/* Where a tensor lives: layer `layer`'s image, `off` bytes in. Matrices are
 * packed there (core/types.h "Packed weights"), vectors are F32. */
typedef struct {
    int layer;
    size_t off;
    tai_type type;
    int64_t rows, n;
    int64_t keep; /* > 0: block-sparse (a pruned matrix), that many column
                     blocks kept per panel; 0: dense */
} tai_wref;

/* A matrix resolved against an acquired layer image. */
typedef struct {
    const void *packed;
    tai_type type;
    int64_t rows, n;
} tai_mat;

typedef struct {
    tai_wref attn_norm; /* [n_embd] F32 */
    tai_wref wq;        /* [n_embd rows][n_embd]: query projection */
    tai_wref wk;        /* [n_head_kv * head_dim][n_embd] */
    tai_wref wv;        /* [n_head_kv * head_dim][n_embd] */
    tai_wref wo;        /* [n_embd][n_embd]: attention output */
    tai_wref ffn_norm;  /* [n_embd] F32 */
    tai_wref w_gate;    /* [n_ff][n_embd] */
    tai_wref w_up;      /* [n_ff][n_embd] */
    tai_wref w_down;    /* [n_embd][n_ff] */
    /* the architecture's (arch.h; unset otherwise) */
    tai_wref bq, bk, bv;          /* TAI_ARCH_QKV_BIAS: [q_dim], [kvd], [kvd] */
    tai_wref q_norm, k_norm;      /* TAI_ARCH_QK_NORM: [head_dim] */
    tai_wref post_attn_norm, post_ffn_norm; /* TAI_ARCH_POST_NORMS: [n_embd] */
} tai_block;

/* Activations and scratch for one forward batch of up to n_ubatch columns.
 * Owned by the model and shared by its sessions (which therefore do not
 * evaluate at the same time): sessions hold only their KV cache and
 * logits, so many sequences cost their KV caches and nothing more. */
typedef struct {
    int n_ubatch;
    int att_ctx;        /* positions att_scratch holds per thread */
    float *x, *xb, *q, *k, *v, *att_out, *gate, *up, *ffn_out;
    float *att_scratch; /* the device's attention scratch for att_ctx positions */
    size_t att_scratch_bytes;
    tai_dref *att_k, *att_v; /* per column: its session's K and V cache of a layer */
    tai_dref *att_ks, *att_vs; /* per column: an 8-bit cache's scales of that layer */
    int32_t *att_pos;        /* per column: its position */
    float *rope_cs;     /* [n_ubatch][rot_dim]: (cos, sin) of each column's position;
                           with sliding-window blocks of their own RoPE base,
                           theirs follow (rope_swa) */
    float *rope_swa;
    float *batch_logits;/* [n_seq][n_vocab] for tinyaiEvalBatch (n_seq > 1) */
    int n_seq;
    void *mm_scratch;   /* prepared activations for tai_matmul */
    void *emb_read;     /* embedding panels (or rows) read past the cache
                           (untied models; NULL otherwise) */
    size_t bytes;       /* the arena holding all of the above */
    size_t unplanned_bytes; /* what one buffer each would take */
    void *arena;
} tai_workspace;

/* The devices a model runs on: [0] is always the CPU (the embedding lookup
 * and every layer not placed elsewhere). */
#define TAI_MAX_DEVICES 8
#define TAI_PLANS 10 /* placement buckets: batches of 1, 2, 4 .. 512+ columns */

/* A device's copy of the workspace: where a layer placed on it finds its
 * activations. For the CPU, host pointers into tai_workspace; for another
 * device, buffers of the same sizes in its memory. */
typedef struct {
    tai_device *dev; /* borrowed: the model's */
    tai_dbuf *bufs[16];
    int n_bufs;
    tai_dref x, xb, q, k, v, att_out, gate, up, ffn_out, rope_cs, rope_swa, logits, mm_scratch,
        att_scratch;
    size_t att_scratch_bytes;
} tai_dws;

struct TinyAIModel {
    TinyAIMappedModel *mm;  /* layers come from its cache */
    /* the profile being recorded (NULL: none, the passes skip every
     * measurement) and the last one's data (profile.h) */
    struct tai_profile *prof;
    struct tai_profile *prof_data;
    /* tinyaiGetCacheStats: counters and figures at the previous call */
    struct tai_cache_stats_state *cstats;
    int owns_mm;
    int threads_bound;      /* the CPU device's threads bound to cores */
    const tai_model_file *file;
    tai_tokenizer *tok;
    tai_hparams hp;
    tai_wref tok_embd;      /* [n_vocab][n_embd], layer 0 */
    const tai_tensor *emb_tensor; /* its entry in the file's tensor table */
    int emb_rows;           /* look embeddings up by reading their rows from
                               the file, not layer 0 through the cache */
    int emb_rows_pass;      /* this pass does so (emb_rows, or the table is
                               still being loaded: tai_llama_begin) */
    tai_wref out_norm;      /* [n_embd], the head layer */
    tai_wref output;        /* [n_vocab][n_embd]; tok_embd when tied */
    int tied;
    tai_block *blocks;      /* n_layer */
    tai_device *dev;        /* the CPU device (devs[0]) */
    int n_devs;
    tai_device *devs[TAI_MAX_DEVICES];
    tai_dws dws[TAI_MAX_DEVICES];
    unsigned char *layer_dev; /* [file layers]: the device each runs on in the
                                 pass under way (one of the plans below) */
    /* Placement per batch size: plans[b] for passes of at least
     * tai_plan_cols[b] columns (and fewer than the next bucket's); the cost
     * model's predicted seconds per layer beside each, measured ones
     * accumulated as passes run (for --placement). */
    int n_plans;
    unsigned char *plans[TAI_PLANS];
    double *plan_pred[TAI_PLANS];
    double *plan_meas[TAI_PLANS];
    int *plan_runs[TAI_PLANS];
    int cur_plan;
    char placement_note[320]; /* what happened to a bad calibration file or a
                                 device that failed */
    int auto_placed;        /* the cost model chose the devices */
    /* the calibration of each device (devs[d]) the placement used or, for
     * a named device, found kept; have_cal: all of them are known */
    struct tai_calib_s *dev_cal;
    int have_cal;
    /* measured once, on the first tinyaiCalculateOptimalBatchSize that
     * needs them (no calibration, no loads yet): matrix-product rates at 1
     * and 64 columns, storage read bandwidth */
    double probe_r1, probe_r64, probe_sbw;
    tai_dbuf **dev_w;       /* [file layers]: a layer's image on a non-CPU
                               device, uploaded on first use and kept */
    unsigned char *dev_w_on;/* [file layers]: that device (a tied head's
                               device holds the embedding's image too) */
    int *kv_slot;           /* [n_layer]: a block's KV slot on its device */
    int kv_slots[TAI_MAX_DEVICES];
    int fw_cur;             /* forward pass: the device holding x now */
    unsigned fw_rope;       /* forward pass: devices given this batch's angles */
    TinyAIModelConfig cfg;
    tai_workspace ws;
    int act_separate;       /* the workspace's buffers one each, not placed
                               by lifetime (memory optimizer's reuse off) */

    /* memory plan (runtime/sched/memplan.c) */
    int planned;
    TinyAIExecutionMode mode;
    char mode_reason[320];
    int plan_ctx, plan_seqs;
    size_t cache_budget;
    size_t min_bytes;
    int n_sessions;         /* live sessions */
    size_t sessions_bytes;  /* their KV caches and logits */
    size_t peak_bytes;
    size_t fixed_bytes;     /* tokenizer and file tables */
    double load_seconds;
    uint64_t loaded_ns;     /* tai_now_ns when tinyaiLoadModel returned */
    uint64_t stall_ns;      /* forward passes waiting on acquires */
    uint64_t steps;         /* forward passes begun: what a session's
                               all_step is compared with */
    char name[128];
};

struct TinyAISession {
    TinyAIModel *model;
    int n_ctx;
    int pos;
    void *k_cache;     /* [n_layer][n_ctx][kv_dim] of tai_kv_elem bytes */
    void *v_cache;     /* [n_layer][n_ctx][kv_dim] */
    float *logits;     /* [n_vocab] */
    int have_logits;
    /* tinyaiEvalStepAll: set for the pass, the session wants the logits
     * of each of its columns; after it, its rows of the workspace's
     * batch_logits (all_n from all_row; all_row -1: its one row is
     * logits) and the model's step they belong to */
    int want_all, all_row, all_n;
    uint64_t all_step;
    uint64_t bytes;
    /* on each non-CPU device: the K and V caches of the blocks placed there,
     * [slot][n_ctx][kv_dim] */
    tai_dbuf *dev_k[TAI_MAX_DEVICES], *dev_v[TAI_MAX_DEVICES];
    /* per block: positions [0, n) of its cache on that device equal the
     * host's (the host's copy is always whole: a device's new K and V are
     * copied back as they are made) */
    int *dev_valid[TAI_MAX_DEVICES];
};

/* A forward batch: n columns, column t is token tokens[t] of session seq[t]
 * at position pos[t]; a session's columns are consecutive, at consecutive
 * positions. The logits of each session's last column go to that session
 * (a prompt: its last token; batched decoding: every sequence; a mixed
 * step: both). Columns [prompt_from, n) are prompt tokens (their request
 * gave the pass two tokens or more) and go through the devices' prompt
 * products (device.h's matmul_prompt); the columns before them are
 * generated tokens (one a session), each its session's only column. */
typedef struct {
    TinyAIModel *m;
    int n;
    const int32_t *tokens;
    TinyAISession *const *seq;
    const int *pos;
    int prompt_from;
} tai_batch;

/* Binds hyperparameters and tensors (as image references) of the mapped
 * model's file (one of arch.h's architectures). Checks every tensor's
 * presence, type and shape. */
TinyAIStatus tai_llama_bind(TinyAIModel *m);

/* Resets a pass's state: its residual stream and angles start on the
 * host. Called before layer 0. */
void tai_llama_begin(const tai_batch *b);
/* The rotary angles of the batch's positions (the embedding step computes
 * them; a pass that starts at a block, the layer scheduler's, asks here). */
void tai_llama_angles(const tai_batch *b);
/* The file layers whose images layer `layer` (0 = embedding lookup,
 * 1..n_layer = blocks, n_layer + 1 = final norm and logits) reads, in the
 * order to acquire them: none (an embedding looked up by reading rows from
 * the file), the layer itself, or for a tied head the embedding and then
 * the head. Returns how many. */
int tai_llama_layer_images(const TinyAIModel *m, int layer, int ids[2]);
/* Issues file layer `layer`'s ops for the batch to device d, whose copies
 * of the images tai_llama_layer_images names are w[] (in that order; NULL
 * when there are none). The caller synchronises the device before it lets
 * the images go. */
TinyAIStatus tai_llama_run(const tai_batch *b, int layer, int d, const tai_dref *w);
/* Advances each column's session position after the last layer. */
void tai_llama_finish(const tai_batch *b);

/* The order in which a forward pass acquires layers (cyclic): 0, 1 ..
 * n_layer + 1, with 0 again just before the head when the head is tied,
 * and without 0 when embeddings are read by rows (m->emb_rows). Returns its
 * length (at most n_layer + 3) and fills order. */
int tai_llama_schedule(const TinyAIModel *m, int *order);
/* The workspace's buffer for reading embedding rows (ws.emb_read): its
 * bytes, 0 for a tied model, which never reads so (its head needs the
 * whole table resident anyway), and its alignment. */
size_t tai_llama_emb_buffer_bytes(const TinyAIModel *m);
size_t tai_llama_emb_buffer_align(const TinyAIModel *m);

/* ---- Memory outside the weight cache (workspace.c) ----------------------- */

/* Bytes per value of the host's KV caches: 4 (float), 2 (binary16,
 * TINYAI_KV_F16) or 1 (an 8-bit code, TINYAI_KV_Q8_0, whose scales follow
 * the codes: tai_kv_scale_offset). Other devices' caches are floats (an F16
 * or 8-bit cache keeps every layer on the CPU). */
static inline size_t tai_kv_elem(const TinyAIModel *m) {
    return m->cfg.kvCacheType == TINYAI_KV_F16 ? 2 : m->cfg.kvCacheType == TINYAI_KV_Q8_0 ? 1 : 4;
}
/* An 8-bit cache's layout: a session's K (or V) cache holds the codes of
 * every layer, [n_layer][n_ctx][kv_dim], then from this offset (64-byte
 * aligned) their float scales, [n_layer][n_ctx][kv_dim / 32]: the scale of
 * the code at index i of the codes is at index i / 32 of the scales. */
static inline size_t tai_kv_scale_offset(const TinyAIModel *m, int n_ctx) {
    const size_t codes = (size_t)m->hp.n_layer * (size_t)n_ctx * (size_t)m->hp.n_head_kv *
                         (size_t)m->hp.head_dim * tai_kv_elem(m);
    return (codes + 63) / 64 * 64;
}
/* Bytes of one session's K (or V) cache of n_ctx positions, all layers. */
static inline size_t tai_kv_cache_bytes(const TinyAIModel *m, int n_ctx) {
    const size_t vals = (size_t)m->hp.n_layer * (size_t)n_ctx * (size_t)m->hp.n_head_kv *
                        (size_t)m->hp.head_dim;
    if (m->cfg.kvCacheType != TINYAI_KV_Q8_0) return vals * tai_kv_elem(m);
    return tai_kv_scale_offset(m, n_ctx) + vals / 32 * sizeof(float);
}

/* Bytes of a session of n_ctx tokens (KV cache, logits), and of the
 * workspace for n_ubatch columns, contexts up to att_ctx and batches of
 * n_seq sessions. */
size_t tai_session_bytes(const TinyAIModel *m, int n_ctx);
size_t tai_workspace_bytes(const TinyAIModel *m, int n_ubatch, int att_ctx, int n_seq);
/* The workspace's buffers as placed (core/liveplan.h: sizes, lifetimes in
 * the forward pass's steps, offsets) into out[0..cap): their count, or -1.
 * For tests (the overlap check). */
int tai_workspace_plan(const TinyAIModel *m, int n_ubatch, int att_ctx, int n_seq,
                       tai_live_buf *out, int cap);
/* The same with one buffer each (no sharing by lifetime). */
size_t tai_workspace_unplanned_bytes(const TinyAIModel *m, int n_ubatch, int att_ctx, int n_seq);
/* (Re)allocates the model's workspace (freeing the old one). */
TinyAIStatus tai_workspace_alloc(TinyAIModel *m, int n_ubatch, int att_ctx, int n_seq);
void tai_workspace_free(tai_workspace *ws);

/* The profile's end with the model's (profile.c), and the cache
 * statistics' (runtime/llm/cache_opt.c). */
void tai_profile_free(TinyAIModel *m);
void tai_cache_stats_free(TinyAIModel *m);
/* Allocates (frees first) every non-CPU device's workspace for the host
 * workspace's sizes; frees them all. */
TinyAIStatus tai_dev_workspaces_alloc(TinyAIModel *m);
void tai_dev_workspaces_free(TinyAIModel *m);
/* Allocates a session's KV caches on the non-CPU devices; frees them. */
TinyAIStatus tai_session_dev_alloc(TinyAISession *s);
void tai_session_dev_free(TinyAISession *s);
/* Tracked bytes now: cache budget + staging + workspace + live sessions;
 * updates the peak. */
size_t tai_model_current_bytes(const TinyAIModel *m);

#ifdef __cplusplus
}
#endif

#endif
