/* runtime/llm: the public face of synthetic model writing
 * (tinyaiWriteSyntheticModel), over runtime/format/synth. */
#include <string.h>

#include <tinyai/llm.h>

#include "core/error.h"
#include "runtime/format/synth.h"
#include "runtime/model/arch.h"

TinyAISynthConfig tinyaiCreateDefaultSynthConfig(void) {
    tai_synth_config d = tai_synth_default_config();
    TinyAISynthConfig c;
    memset(&c, 0, sizeof c);
    c.nVocab = d.n_vocab;
    c.nEmbd = d.n_embd;
    c.nFF = d.n_ff;
    c.nHead = d.n_head;
    c.nHeadKV = d.n_head_kv;
    c.nLayer = d.n_layer;
    c.nCtx = d.n_ctx;
    c.ropeFreqBase = d.rope_freq_base;
    c.rmsEps = d.rms_eps;
    c.weightType = tai_type_name(d.matrix_type);
    c.embeddingType = tai_type_name(d.embd_type);
    c.tiedOutput = d.tied_output;
    c.seed = d.seed;
    c.architecture = "llama";
    c.slidingWindow = 4;
    return c;
}

static TinyAIStatus parse_type(const char *name, const char *what, tai_type *out) {
    for (int t = 0; t < TAI_TYPE_COUNT; t++)
        if (tai_type_valid(t) && name && strcmp(name, tai_type_name(t)) == 0) {
            *out = (tai_type)t;
            return TINYAI_OK;
        }
    return tai_error(TINYAI_ERR_INVALID_ARG, "unknown %s type '%s' (F32, F16, Q8_0, Q4_0, Q4_1)",
                     what, name ? name : "(null)");
}

TinyAIStatus tinyaiWriteSyntheticModel(const TinyAISynthConfig *config, const char *path) {
    if (!config || !path || !*path)
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiWriteSyntheticModel: missing config or path");
    tai_synth_config c = tai_synth_default_config();
    c.n_vocab = config->nVocab;
    c.n_embd = config->nEmbd;
    c.n_ff = config->nFF;
    c.n_head = config->nHead;
    c.n_head_kv = config->nHeadKV;
    c.n_layer = config->nLayer;
    c.n_ctx = config->nCtx;
    c.rope_freq_base = config->ropeFreqBase;
    c.rms_eps = config->rmsEps;
    c.tied_output = config->tiedOutput;
    c.seed = config->seed;
    c.head_dim = config->headDim;
    c.swa_window = config->slidingWindow;
    c.logit_softcap = config->logitSoftcap;
    if (config->architecture) {
        const tai_arch *a = tai_arch_find(config->architecture);
        if (!a)
            return tai_error(TINYAI_ERR_INVALID_ARG, "unknown architecture '%s' (%s)",
                             config->architecture, tai_arch_names());
        c.arch = a->name;
        c.arch_flags = a->flags;
    }
    TinyAIStatus st = parse_type(config->weightType, "weight", &c.matrix_type);
    if (st == TINYAI_OK) st = parse_type(config->embeddingType, "embedding", &c.embd_type);
    if (st == TINYAI_OK) st = tai_synth_validate(&c);
    if (st == TINYAI_OK) st = tai_synth_write(&c, path);
    return st;
}
