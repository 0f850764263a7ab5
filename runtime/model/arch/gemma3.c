/*
 * Gemma 3 (text): embeddings scaled by sqrt(n_embd); per-head RMS norm of
 * q and k; each branch's output RMS-normed before the residual add
 * (post_attention_norm, post_ffw_norm); GeGLU feed-forward; NeoX RoPE.
 * Five of every six blocks attend over a sliding window
 * (gemma3.attention.sliding_window positions) with RoPE base 10000; every
 * sixth is global, with gemma3.rope.freq_base (10^6). The GGUF converter
 * stores the norms' weights as 1 + w already, so they are plain RMS norms
 * here. Soft-capping of the final logits (Gemma 2's) applies where the
 * metadata has gemma3.final_logit_softcapping.
 */
#include "runtime/model/arch.h"

#include "core/error.h"

static TinyAIStatus gemma3_hparams(const tai_model_file *mf, tai_arch_params *p) {
    uint32_t window = 0;
    TinyAIStatus st = tai_kv_get_u32(mf, "gemma3.attention.sliding_window", &window);
    if (st != TINYAI_OK) return st;
    if (window < 1 || window > (1u << 24))
        return tai_error(TINYAI_ERR_FORMAT, "%s: sliding window of %u positions", mf->path,
                         window);
    p->swa_window = (int)window;
    p->swa_pattern = 6;        /* as Gemma 3's configuration has it */
    p->swa_rope_base = 10000.0f;
    if (tai_model_file_find_kv(mf, "gemma3.final_logit_softcapping")) {
        st = tai_kv_get_f32(mf, "gemma3.final_logit_softcapping", &p->logit_softcap);
        if (st != TINYAI_OK) return st;
        if (!(p->logit_softcap >= 0.0f && p->logit_softcap < 1e6f))
            return tai_error(TINYAI_ERR_FORMAT, "%s: final logit soft-cap %g", mf->path,
                             (double)p->logit_softcap);
    }
    return TINYAI_OK;
}

const tai_arch tai_arch_gemma3 = {
    "gemma3",
    TAI_ARCH_QK_NORM | TAI_ARCH_POST_NORMS | TAI_ARCH_GEGLU | TAI_ARCH_NEOX | TAI_ARCH_EMB_SCALE |
        TAI_ARCH_SWA,
    gemma3_hparams,
};
