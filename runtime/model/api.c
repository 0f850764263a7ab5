/*
 * runtime/model: the public model, token and session API of <tinyai/llm.h>.
 * Validates arguments, owns allocation and cleanup; the math lives in
 * llama.c and kernels/.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/base/error.h"
#include "runtime/model/model.h"

#define MAX_THREADS 256
#define DEFAULT_CTX 4096
#define UBATCH 512

TinyAIModelConfig tinyaiCreateDefaultModelConfig(void) {
    TinyAIModelConfig c = {0, NULL, false};
    return c;
}

void tinyaiFree(void *p) { free(p); }

void tinyaiFreeModel(TinyAIModel *m) {
    if (!m) return;
    tai_pool_destroy(m->pool);
    tai_llama_unpack(m);
    tai_tokenizer_free(m->tok);
    tai_model_file_close(m->file);
    free(m->blocks);
    free(m->layer_ok);
    free(m);
}

static TinyAIStatus pick_isa(const char *cpu, tai_isa *out) {
    if (!cpu || !*cpu || strcmp(cpu, "auto") == 0) {
        *out = tai_isa_best(TAI_ISA_COUNT - 1);
        return TINYAI_OK;
    }
    int isa = tai_isa_parse(cpu);
    if (isa < 0)
        return tai_error(TINYAI_ERR_INVALID_ARG,
                         "unknown CPU kernel variant '%s' (auto, scalar, avx2, avx512)", cpu);
    if (!tai_isa_supported((tai_isa)isa))
        return tai_error(TINYAI_ERR_UNSUPPORTED, "this CPU does not support the %s kernels", cpu);
    *out = (tai_isa)isa;
    return TINYAI_OK;
}

TinyAIStatus tinyaiLoadModel(const char *path, const TinyAIModelConfig *config,
                             TinyAIModel **out) {
    if (!out) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiLoadModel: out is NULL");
    *out = NULL;
    if (!path || !*path) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiLoadModel: no path");
    TinyAIModelConfig cfg = config ? *config : tinyaiCreateDefaultModelConfig();
    int threads = cfg.threads;
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
    }
    if (threads < 1 || threads > MAX_THREADS)
        return tai_error(TINYAI_ERR_INVALID_ARG, "threads must be 1..%d (0 = all cores), got %d",
                         MAX_THREADS, cfg.threads);
    tai_isa isa = TAI_ISA_SCALAR;
    TinyAIStatus st = pick_isa(cfg.cpu, &isa);
    if (st != TINYAI_OK) return st;

    TinyAIModel *m = calloc(1, sizeof *m);
    if (!m) return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    st = tai_model_file_open(path, cfg.verifyChecksums, &m->file);
    if (st != TINYAI_OK) goto fail;
    st = tai_tokenizer_load(m->file, &m->tok);
    if (st != TINYAI_OK) {
        tai_error_prefix("%s", path);
        goto fail;
    }
    st = tai_llama_bind(m);
    if (st != TINYAI_OK) goto fail;
    m->kern = tai_kernels_get(isa);
    int rc = tai_pool_create(threads, &m->pool);
    if (rc != 0) {
        st = tai_error(TINYAI_ERR_NOMEM, "cannot start %d threads (errno %d)", threads, -rc);
        goto fail;
    }
    st = tai_llama_pack(m);
    if (st != TINYAI_OK) goto fail;
    const char *name = NULL;
    if (tai_model_file_find_kv(m->file, "general.name") &&
        tai_kv_get_str(m->file, "general.name", &name) == TINYAI_OK)
        snprintf(m->name, sizeof m->name, "%s", name);
    *out = m;
    return TINYAI_OK;
fail:
    tinyaiFreeModel(m);
    return st;
}

TinyAIStatus tinyaiGetModelInfo(const TinyAIModel *m, TinyAIModelInfo *out) {
    if (!m || !out) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiGetModelInfo: NULL argument");
    memset(out, 0, sizeof *out);
    snprintf(out->architecture, sizeof out->architecture, "llama");
    snprintf(out->name, sizeof out->name, "%s", m->name);
    const tai_hparams *hp = &m->hp;
    out->nVocab = hp->n_vocab;
    out->nCtxTrain = hp->n_ctx_train;
    out->nEmbd = hp->n_embd;
    out->nFF = hp->n_ff;
    out->nHead = hp->n_head;
    out->nHeadKV = hp->n_head_kv;
    out->nLayer = hp->n_layer;
    out->headDim = hp->head_dim;
    out->ropeFreqBase = hp->rope_base;
    out->rmsEps = hp->rms_eps;
    out->tiedOutput = m->tied != 0;
    for (int64_t i = 0; i < m->file->n_tensors; i++) {
        const tai_tensor *t = &m->file->tensors[i];
        out->weightBytes += t->size;
        out->nParams += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
    }
    out->isa = tai_isa_name(m->kern->isa);
    out->threads = tai_pool_size(m->pool);
    out->packedBytes = m->arena_bytes;
    out->repackSeconds = m->repack_seconds;
    snprintf(out->fileFormat, sizeof out->fileFormat, "%s",
             m->file->kind == TAI_FILE_TMAI ? "tmai" : "gguf");
    const char *tm = NULL;
    if (tai_model_file_find_kv(m->file, "tokenizer.ggml.model") &&
        tai_kv_get_str(m->file, "tokenizer.ggml.model", &tm) == TINYAI_OK)
        snprintf(out->tokenizerModel, sizeof out->tokenizerModel, "%s", tm);
    out->bosToken = tai_tokenizer_bos(m->tok);
    out->eosToken = tai_tokenizer_eos(m->tok);
    out->addBosToken = tai_tokenizer_add_bos(m->tok);
    out->nFileLayers = m->file->n_layers;
    return TINYAI_OK;
}

/* ---- Tokens ------------------------------------------------------------ */

TinyAIStatus tinyaiTokenize(const TinyAIModel *m, const char *text, bool addBos,
                            bool parseSpecial, int32_t *ids, size_t cap, size_t *nOut) {
    if (!m || !text || !nOut || (cap > 0 && !ids))
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiTokenize: NULL argument");
    size_t pre = 0;
    int32_t bos = tai_tokenizer_bos(m->tok);
    if (addBos && bos >= 0) {
        if (cap > 0) ids[0] = bos;
        pre = 1;
    }
    size_t n = 0;
    TinyAIStatus st = tai_tokenize(m->tok, text, strlen(text), parseSpecial,
                                   cap > pre ? ids + pre : NULL, cap > pre ? cap - pre : 0, &n);
    *nOut = n + pre;
    if (st == TINYAI_OK && n + pre > cap)
        st = tai_error(TINYAI_ERR_RANGE, "tokenize: %zu tokens do not fit in %zu", n + pre, cap);
    return st;
}

const char *tinyaiTokenPiece(const TinyAIModel *m, int32_t id, size_t *len) {
    if (!m || !len) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiTokenPiece: NULL argument");
        return NULL;
    }
    const char *p = tai_token_piece(m->tok, id, false, len);
    if (!p) tai_error(TINYAI_ERR_INVALID_ARG, "token id %d out of range", (int)id);
    return p;
}

bool tinyaiTokenIsEndOfGeneration(const TinyAIModel *m, int32_t id) {
    return m && tai_tokenizer_is_eog(m->tok, id);
}

TinyAIStatus tinyaiApplyChatTemplate(const TinyAIModel *m, const TinyAIChatMessage *msgs,
                                     size_t n, bool addAssistant, char **out) {
    if (!m || !out || (n > 0 && !msgs))
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiApplyChatTemplate: NULL argument");
    for (size_t i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content)
            return tai_error(TINYAI_ERR_INVALID_ARG, "chat message %zu has no role or content", i);
    /* TinyAIChatMessage and tai_chat_message have the same layout. */
    _Static_assert(sizeof(TinyAIChatMessage) == sizeof(tai_chat_message), "chat message layout");
    return tai_chat_apply(m->file, m->tok, (const tai_chat_message *)msgs, n, addAssistant, out);
}

/* ---- Sessions ---------------------------------------------------------- */

void tinyaiFreeSession(TinyAISession *s) {
    if (!s) return;
    free(s->k_cache);
    free(s->v_cache);
    free(s->x);
    free(s->xb);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->att_out);
    free(s->gate);
    free(s->up);
    free(s->ffn_out);
    free(s->att_scratch);
    free(s->rope_cs);
    free(s->logits);
    free(s->mm_scratch);
    free(s);
}

/* calloc of a*b floats, counting the bytes; NULL on overflow or failure. */
static float *falloc(TinyAISession *s, size_t a, size_t b) {
    if (b != 0 && a > SIZE_MAX / sizeof(float) / b) return NULL;
    s->bytes += a * b * sizeof(float);
    return calloc((a * b) != 0 ? a * b : 1, sizeof(float));
}

static size_t max_scratch(const TinyAIModel *m, int nub) {
    size_t best = tai_matmul_scratch_bytes(m->output.type, m->hp.n_embd, 1);
    for (int l = 0; l < m->hp.n_layer; l++) {
        const tai_block *b = &m->blocks[l];
        const tai_mat *mats[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
        for (size_t i = 0; i < sizeof mats / sizeof *mats; i++) {
            size_t need = tai_matmul_scratch_bytes(mats[i]->type, mats[i]->n, nub);
            if (need > best) best = need;
        }
    }
    return best;
}

TinyAIStatus tinyaiCreateSession(TinyAIModel *m, int nCtx, TinyAISession **out) {
    if (!out) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiCreateSession: out is NULL");
    *out = NULL;
    if (!m) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiCreateSession: model is NULL");
    const tai_hparams *hp = &m->hp;
    if (nCtx == 0) nCtx = hp->n_ctx_train < DEFAULT_CTX ? hp->n_ctx_train : DEFAULT_CTX;
    if (nCtx < 1 || nCtx > hp->n_ctx_train)
        return tai_error(TINYAI_ERR_INVALID_ARG, "context size must be 1..%d, got %d",
                         hp->n_ctx_train, nCtx);
    TinyAISession *s = calloc(1, sizeof *s);
    if (!s) return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    s->model = m;
    s->n_ctx = nCtx;
    s->n_ubatch = nCtx < UBATCH ? nCtx : UBATCH;
    const size_t E = (size_t)hp->n_embd, F = (size_t)hp->n_ff, U = (size_t)s->n_ubatch;
    const size_t kvd = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t nth = (size_t)tai_pool_size(m->pool);
    s->k_cache = falloc(s, (size_t)hp->n_layer * (size_t)nCtx, kvd);
    s->v_cache = falloc(s, (size_t)hp->n_layer * (size_t)nCtx, kvd);
    s->x = falloc(s, U, E);
    s->xb = falloc(s, U, E);
    s->q = falloc(s, U, E);
    s->k = falloc(s, U, kvd);
    s->v = falloc(s, U, kvd);
    s->att_out = falloc(s, U, E);
    s->gate = falloc(s, U, F);
    s->up = falloc(s, U, F);
    s->ffn_out = falloc(s, U, E);
    s->att_scratch = falloc(s, nth, (size_t)nCtx);
    s->rope_cs = falloc(s, U, (size_t)hp->rot_dim);
    s->logits = falloc(s, (size_t)hp->n_vocab, 1);
    size_t scratch = max_scratch(m, s->n_ubatch);
    s->mm_scratch = aligned_alloc(64, (scratch + 63) & ~(size_t)63);
    s->bytes += scratch;
    if (!s->k_cache || !s->v_cache || !s->x || !s->xb || !s->q || !s->k || !s->v ||
        !s->att_out || !s->gate || !s->up || !s->ffn_out || !s->att_scratch || !s->logits ||
        !s->mm_scratch || !s->rope_cs) {
        uint64_t bytes = s->bytes;
        tinyaiFreeSession(s);
        return tai_error(TINYAI_ERR_NOMEM, "cannot allocate %llu bytes for a %d-token session",
                         (unsigned long long)bytes, nCtx);
    }
    *out = s;
    return TINYAI_OK;
}

TinyAIStatus tinyaiEval(TinyAISession *s, const int32_t *tokens, size_t n) {
    if (!s || (n > 0 && !tokens)) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiEval: NULL argument");
    if (n == 0) return TINYAI_OK;
    if (n > (size_t)(s->n_ctx - s->pos))
        return tai_error(TINYAI_ERR_RANGE,
                         "%zu tokens do not fit in the context: %d of %d positions used", n,
                         s->pos, s->n_ctx);
    const int32_t nv = s->model->hp.n_vocab;
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= nv)
            return tai_error(TINYAI_ERR_INVALID_ARG, "token id %d at %zu outside the vocabulary (0..%d)",
                             (int)tokens[i], i, nv - 1);
    for (size_t done = 0; done < n;) {
        int chunk = (int)(n - done < (size_t)s->n_ubatch ? n - done : (size_t)s->n_ubatch);
        TinyAIStatus st = tai_llama_forward(s, tokens + done, chunk);
        if (st != TINYAI_OK) {
            s->have_logits = 0;
            return st;
        }
        done += (size_t)chunk;
    }
    return TINYAI_OK;
}

const float *tinyaiGetLogits(const TinyAISession *s) {
    return s && s->have_logits ? s->logits : NULL;
}

int tinyaiSessionPosition(const TinyAISession *s) { return s ? s->pos : 0; }
int tinyaiSessionContextSize(const TinyAISession *s) { return s ? s->n_ctx : 0; }
uint64_t tinyaiSessionMemoryBytes(const TinyAISession *s) { return s ? s->bytes : 0; }

void tinyaiResetSession(TinyAISession *s) {
    if (!s) return;
    s->pos = 0;
    s->have_logits = 0;
}

/* ---- Layer table, conversion, synthetic models ------------------------- */

static char variants_buf[64];
static pthread_once_t variants_once = PTHREAD_ONCE_INIT;

static void list_variants(void) {
    size_t off = 0;
    for (int i = 0; i < TAI_ISA_COUNT; i++)
        if (tai_isa_supported((tai_isa)i))
            off += (size_t)snprintf(variants_buf + off, sizeof variants_buf - off, "%s%s",
                                    off ? " " : "", tai_isa_name((tai_isa)i));
}

const char *tinyaiCpuVariants(void) {
    pthread_once(&variants_once, list_variants);
    return variants_buf;
}

TinyAIStatus tinyaiGetCpuInfo(TinyAICpuInfo *out) {
    if (!out) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiGetCpuInfo: out is NULL");
    memset(out, 0, sizeof *out);
    snprintf(out->model, sizeof out->model, "%s", tai_cpu_brand());
    snprintf(out->features, sizeof out->features, "%s", tai_cpu_features());
    snprintf(out->variants, sizeof out->variants, "%s", tinyaiCpuVariants());
    out->chosen = tai_isa_name(tai_isa_best(TAI_ISA_COUNT - 1));
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    out->onlineCores = n < 1 ? 1 : (int)n;
    return TINYAI_OK;
}

TinyAIStatus tinyaiGetModelLayerInfo(const TinyAIModel *m, int index, TinyAILayerInfo *out) {
    if (!m || !out) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiGetModelLayerInfo: NULL argument");
    if (index < 0 || index >= m->file->n_layers)
        return tai_error(TINYAI_ERR_INVALID_ARG, "layer %d out of range (0..%d)", index,
                         m->file->n_layers - 1);
    const tai_layer_entry *e = &m->file->layers[index];
    out->index = e->index;
    out->offset = e->offset;
    out->size = e->size;
    out->precision = e->precision;
    out->nTensors = e->n_tensors;
    out->checksum = e->checksum;
    return TINYAI_OK;
}

TinyAIStatus tinyaiConvertModel(const char *inPath, const char *outPath) {
    if (!inPath || !outPath || !*inPath || !*outPath)
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiConvertModel: missing path");
    /* Load it as a model first, so that only files TinyAI can run are
     * converted and every problem is reported against the input. */
    TinyAIModelConfig cfg = tinyaiCreateDefaultModelConfig();
    cfg.threads = 1;
    cfg.verifyChecksums = true;
    TinyAIModel *m = NULL;
    TinyAIStatus st = tinyaiLoadModel(inPath, &cfg, &m);
    if (st != TINYAI_OK) return st;
    st = tai_tmai_write(m->file, outPath);
    tinyaiFreeModel(m);
    return st;
}
