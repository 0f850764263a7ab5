/*
 * runtime/sample: turning logits into a token, as <tinyai/llm.h> documents.
 *
 * Order of the steps (llama.cpp's classic chain): repetition penalty over the
 * last repeatLastN tokens (positive logits divided by the penalty, negative
 * ones multiplied), then greedy if temperature <= 0; otherwise top-k,
 * softmax at the temperature, top-p (nucleus), and a draw from the rest with
 * xoshiro256** seeded by splitmix64(seed), so a seed reproduces a run.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <tinyai/llm.h>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/kernels.h"

struct TinyAISampler {
    TinyAISamplerConfig cfg;
    tai_rng rng;
    int32_t *hist; /* ring of the last cfg.repeatLastN ids */
    size_t hist_len, hist_pos;
    /* per-call scratch, grown as needed */
    float *logit;
    int32_t *idx;
    int cap;
    tai_argmax_fn argmax; /* greedy's scan: the best ISA's, chosen once */
};

TinyAISamplerConfig tinyaiCreateDefaultSamplerConfig(void) {
    TinyAISamplerConfig c = {0.8f, 40, 0.95f, 1.0f, 64, 0};
    return c;
}

TinyAIStatus tinyaiCreateSampler(const TinyAISamplerConfig *config, TinyAISampler **out) {
    if (!out) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiCreateSampler: out is NULL");
    *out = NULL;
    TinyAISamplerConfig c = config ? *config : tinyaiCreateDefaultSamplerConfig();
    if (!isfinite(c.temperature))
        return tai_error(TINYAI_ERR_INVALID_ARG, "temperature must be finite");
    if (!(c.topP > 0.0f && c.topP <= 1.0f))
        return tai_error(TINYAI_ERR_INVALID_ARG, "top-p must be in (0, 1], got %g", (double)c.topP);
    if (!(c.repeatPenalty > 0.0f) || !isfinite(c.repeatPenalty))
        return tai_error(TINYAI_ERR_INVALID_ARG, "repeat penalty must be > 0, got %g",
                         (double)c.repeatPenalty);
    if (c.repeatLastN < 0 || c.repeatLastN > (1 << 20))
        return tai_error(TINYAI_ERR_INVALID_ARG, "repeat-last-n must be 0..%d, got %d", 1 << 20,
                         c.repeatLastN);
    TinyAISampler *s = calloc(1, sizeof *s);
    if (!s) return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    s->cfg = c;
    s->argmax = tai_kernels_get(tai_isa_best(TAI_ISA_COUNT - 1))->argmax;
    tai_rng_seed(&s->rng, c.seed);
    if (c.repeatLastN > 0) {
        s->hist = malloc((size_t)c.repeatLastN * sizeof *s->hist);
        if (!s->hist) {
            free(s);
            return tai_error(TINYAI_ERR_NOMEM, "out of memory");
        }
    }
    *out = s;
    return TINYAI_OK;
}

void tinyaiFreeSampler(TinyAISampler *s) {
    if (!s) return;
    free(s->hist);
    free(s->logit);
    free(s->idx);
    free(s);
}

void tinyaiSamplerAccept(TinyAISampler *s, const int32_t *ids, size_t n) {
    if (!s || !ids || s->cfg.repeatLastN == 0) return;
    const size_t cap = (size_t)s->cfg.repeatLastN;
    for (size_t i = 0; i < n; i++) {
        s->hist[s->hist_pos] = ids[i];
        s->hist_pos = (s->hist_pos + 1) % cap;
        if (s->hist_len < cap) s->hist_len++;
    }
}

/* "a ranks before b": higher logit first, lower id on ties. */
static int before(const float *l, int32_t a, int32_t b) {
    return l[a] > l[b] || (l[a] == l[b] && a < b);
}

static void sift_down(const float *l, int32_t *h, int n, int i) {
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) return;
        /* min-heap on rank: the root is the worst of the kept k */
        if (c + 1 < n && before(l, h[c], h[c + 1])) c++;
        if (!before(l, h[i], h[c])) return;
        int32_t t = h[i];
        h[i] = h[c];
        h[c] = t;
        i = c;
    }
}

/* Puts the k best ids, best first, in idx[0..k): a heap of size k over all
 * n ids (O(n log k)), then heap-sorted. */
static void top_k(const float *l, int32_t *idx, int n, int k) {
    for (int i = 0; i < k; i++) idx[i] = i;
    for (int i = k / 2 - 1; i >= 0; i--) sift_down(l, idx, k, i);
    for (int32_t i = k; i < n; i++)
        if (before(l, i, idx[0])) {
            idx[0] = i;
            sift_down(l, idx, k, 0);
        }
    for (int m = k - 1; m > 0; m--) {
        int32_t t = idx[0];
        idx[0] = idx[m];
        idx[m] = t;
        sift_down(l, idx, m, 0);
    }
}

static int ensure(TinyAISampler *s, int n) {
    if (n <= s->cap) return 1;
    float *l = realloc(s->logit, (size_t)n * sizeof *l);
    if (!l) return 0;
    s->logit = l;
    int32_t *x = realloc(s->idx, (size_t)n * sizeof *x);
    if (!x) return 0;
    s->idx = x;
    s->cap = n;
    return 1;
}

double tinyaiLogSumExp(const float *logits, int n) {
    if (!logits || n < 1) return -INFINITY;
    float mx = logits[0];
    for (int i = 1; i < n; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
    return (double)mx + log(sum);
}

int32_t tinyaiSample(TinyAISampler *s, const float *logits, int nVocab) {
    if (!s || !logits || nVocab < 1) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiSample: bad argument");
        return -1;
    }
    const float pen = s->cfg.repeatPenalty;
    if (s->cfg.temperature <= 0.0f && (pen == 1.0f || s->hist_len == 0)) {
        /* greedy with nothing to penalise: no copy */
        const int32_t pick = (int32_t)s->argmax(logits, nVocab);
        tinyaiSamplerAccept(s, &pick, 1);
        return pick;
    }
    if (!ensure(s, nVocab)) {
        tai_error(TINYAI_ERR_NOMEM, "out of memory");
        return -1;
    }
    float *l = s->logit;
    memcpy(l, logits, (size_t)nVocab * sizeof *l);
    if (pen != 1.0f)
        for (size_t i = 0; i < s->hist_len; i++) {
            int32_t id = s->hist[i];
            if (id < 0 || id >= nVocab) continue;
            /* A token seen twice is penalised once, as in llama.cpp: mark by
             * checking earlier entries. */
            int seen = 0;
            for (size_t j = 0; j < i; j++) seen |= s->hist[j] == id;
            if (seen) continue;
            l[id] = l[id] > 0 ? l[id] / pen : l[id] * pen;
        }

    int32_t pick = 0;
    if (s->cfg.temperature <= 0.0f) {
        pick = (int32_t)s->argmax(l, nVocab);
    } else {
        int32_t *idx = s->idx;
        int k = s->cfg.topK > 0 && s->cfg.topK < nVocab ? s->cfg.topK : nVocab;
        top_k(l, idx, nVocab, k);
        /* softmax over the top k at the temperature */
        const double t = s->cfg.temperature;
        double sum = 0.0;
        const double mx = l[idx[0]];
        for (int i = 0; i < k; i++) {
            double p = exp((l[idx[i]] - mx) / t);
            l[idx[i]] = (float)p;
            sum += p;
        }
        /* nucleus: keep the smallest prefix with mass >= topP */
        int keep = k;
        if (s->cfg.topP < 1.0f) {
            double cum = 0.0;
            for (int i = 0; i < k; i++) {
                cum += l[idx[i]] / sum;
                if (cum >= s->cfg.topP) {
                    keep = i + 1;
                    break;
                }
            }
        }
        double kept = 0.0;
        for (int i = 0; i < keep; i++) kept += l[idx[i]];
        double r = tai_rng_uniform(&s->rng) * kept;
        pick = idx[keep - 1];
        for (int i = 0; i < keep; i++) {
            r -= l[idx[i]];
            if (r < 0.0) {
                pick = idx[i];
                break;
            }
        }
    }
    tinyaiSamplerAccept(s, &pick, 1);
    return pick;
}
