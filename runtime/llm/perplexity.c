/*
 * runtime/llm/perplexity.c: tinyaiPerplexity (layer: public API). The
 * chunks of a batch are evaluated together: each one's first half as a
 * prompt, then its second half a token per step for all of them
 * (tinyaiEvalBatch), every step scoring each chunk's next token from its
 * logits. Batch invariance makes the figure the same for any batch.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <tinyai/llm.h>

#include "core/clock.h"
#include "core/error.h"

TinyAIPerplexityConfig tinyaiCreateDefaultPerplexityConfig(void) {
    TinyAIPerplexityConfig c;
    memset(&c, 0, sizeof c);
    c.contextSize = 512;
    c.batch = 1;
    c.addBos = -1;
    return c;
}

static void figures(double nll, double nll2, int64_t count, double *ppl, double *err) {
    const double mean = count > 0 ? nll / (double)count : 0;
    *ppl = exp(mean);
    double var = count > 1 ? nll2 / (double)count - mean * mean : 0;
    if (var < 0) var = 0;
    *err = count > 1 ? *ppl * sqrt(var / (double)(count - 1)) : 0;
}

TinyAIStatus tinyaiPerplexity(TinyAIModel *model, const int32_t *tokens, size_t n,
                              const TinyAIPerplexityConfig *config, TinyAIPerplexityResult *out) {
    if (!model || (!tokens && n) || !out)
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiPerplexity: NULL argument");
    memset(out, 0, sizeof *out);
    TinyAIPerplexityConfig c = config ? *config : tinyaiCreateDefaultPerplexityConfig();
    TinyAIModelInfo info;
    TinyAIStatus st = tinyaiGetModelInfo(model, &info);
    if (st != TINYAI_OK) return st;
    if (!config && info.nCtxTrain > 0 && c.contextSize > info.nCtxTrain) c.contextSize = info.nCtxTrain;
    if (c.contextSize < 4 || (info.nCtxTrain > 0 && c.contextSize > info.nCtxTrain))
        return tai_error(TINYAI_ERR_INVALID_ARG,
                         "tinyaiPerplexity: contextSize %d outside 4..%d (the model's context)",
                         c.contextSize, info.nCtxTrain);
    if (c.addBos < -1 || c.addBos > 1)
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiPerplexity: addBos must be -1, 0 or 1");
    const int ctx = c.contextSize;
    const int n_chunks = (int)(n / (size_t)ctx);
    if (n_chunks < 1)
        return tai_error(TINYAI_ERR_RANGE,
                         "tinyaiPerplexity: %zu tokens do not fill one chunk of %d", n, ctx);
    for (size_t i = 0; i < (size_t)n_chunks * (size_t)ctx; i++)
        if (tokens[i] < 0 || tokens[i] >= info.nVocab)
            return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiPerplexity: token %d at %zu outside 0..%d",
                             tokens[i], i, info.nVocab - 1);
    const bool bos = c.addBos == 1 || (c.addBos == -1 && info.addBosToken);
    if (bos && info.bosToken < 0)
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiPerplexity: the model has no BOS token");
    int batch = c.batch;
    if (batch < 1) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiPerplexity: batch must be >= 1");
    if (batch > n_chunks) batch = n_chunks;

    TinyAISession **s = calloc((size_t)batch, sizeof *s);
    int32_t *buf = malloc((size_t)batch * (size_t)ctx * sizeof *buf), *tok = malloc((size_t)batch * sizeof *tok);
    double *part = calloc((size_t)batch * 2, sizeof *part); /* per chunk: nll, nll^2 */
    if (!s || !buf || !tok || !part) {
        free(s), free(buf), free(tok), free(part);
        return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < batch && st == TINYAI_OK; i++) {
        st = tinyaiCreateSession(model, ctx, &s[i]);
        if (st == TINYAI_ERR_RANGE)
            tai_error_prefix("tinyaiPerplexity: a batch of %d chunks needs %d sessions", batch, batch);
    }
    const int first = ctx / 2;
    double nll = 0, nll2 = 0, secs = 0;
    int64_t count = 0;
    for (int c0 = 0; st == TINYAI_OK && c0 < n_chunks; c0 += batch) {
        const int nb = n_chunks - c0 < batch ? n_chunks - c0 : batch;
        const double t0 = tai_now_s();
        memset(part, 0, (size_t)batch * 2 * sizeof *part);
        for (int i = 0; i < nb && st == TINYAI_OK; i++) {
            int32_t *b = buf + (size_t)i * ctx;
            memcpy(b, tokens + (size_t)(c0 + i) * ctx, (size_t)ctx * sizeof *b);
            if (bos) b[0] = info.bosToken;
            tinyaiResetSession(s[i]);
            st = tinyaiEval(s[i], b, (size_t)first + 1); /* logits at position first */
        }
        /* position j's logits score token j + 1, for j in [first, ctx - 1) */
        for (int j = first; st == TINYAI_OK && j < ctx - 1; j++) {
            for (int i = 0; i < nb; i++) {
                const int32_t *b = buf + (size_t)i * ctx;
                const float *l = tinyaiGetLogits(s[i]);
                const double v = tinyaiLogSumExp(l, info.nVocab) - (double)l[b[j + 1]];
                part[2 * i] += v;
                part[2 * i + 1] += v * v;
                tok[i] = b[j + 1];
            }
            if (j + 1 < ctx - 1) st = tinyaiEvalBatch(s, tok, (size_t)nb);
        }
        secs += tai_now_s() - t0;
        /* added in chunk order: the same sums for any batch */
        for (int i = 0; i < nb; i++) {
            nll += part[2 * i];
            nll2 += part[2 * i + 1];
            count += ctx - 1 - first;
        }
        if (st == TINYAI_OK && c.progress) {
            double ppl, err;
            figures(nll, nll2, count, &ppl, &err);
            c.progress(c.progressCtx, c0 + nb, n_chunks, ppl, err);
        }
    }
    for (int i = 0; i < batch; i++) tinyaiFreeSession(s[i]);
    free(s);
    free(buf);
    free(tok);
    free(part);
    if (st != TINYAI_OK) return st;
    figures(nll, nll2, count, &out->perplexity, &out->stdError);
    out->nll = nll;
    out->tokensScored = count;
    out->chunks = n_chunks;
    out->seconds = secs;
    return TINYAI_OK;
}
