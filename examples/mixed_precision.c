/*
 * examples/: the memory guide's "Mixed Precision Quantization" example: a
 * weight type per group of matrices, applied to a loaded model. The four
 * settings and the two calls are the specification's; lines marked "glue"
 * load the model (EXAMPLE_MODEL_PATH, example_model.h), print the apply's
 * result and the weight bytes before and after, and continue the prompt
 * given as the first argument greedily for 8 tokens with the converted
 * model, to show that it runs.
 */
#include "examples/example_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tinyai/llm.h>
#include <tinyai/utils/quantize_mixed.h>

/* glue: greedy continuation of `prompt` */
static int continue_prompt(TinyAIModel *model, const char *prompt) {
    int32_t toks[256];
    size_t n = 0;
    TinyAISession *s = NULL;
    if (tinyaiTokenize(model, prompt, true, false, toks, 256, &n) != TINYAI_OK ||
        tinyaiCreateSession(model, 0, &s) != TINYAI_OK || tinyaiEval(s, toks, n) != TINYAI_OK) {
        printf("Failed to run: %s\n", tinyaiLastErrorMessage());
        tinyaiFreeSession(s);
        return 1;
    }
    TinyAIModelInfo info;
    tinyaiGetModelInfo(model, &info);
    printf("Continuation: %s", prompt);
    for (int i = 0; i < 8; i++) {
        const float *l = tinyaiGetLogits(s);
        int32_t best = 0;
        for (int32_t v = 1; v < info.nVocab; v++)
            if (l[v] > l[best]) best = v;
        size_t len = 0;
        const char *piece = tinyaiTokenPiece(model, best, &len);
        printf("%.*s", (int)len, piece ? piece : "");
        if (tinyaiEval(s, &best, 1) != TINYAI_OK) break;
    }
    printf("\n");
    tinyaiFreeSession(s);
    return 0;
}

int main(int argc, char **argv) {
    /* glue: the model */
    TinyAIModel *model = NULL;
    if (tinyaiLoadModel(EXAMPLE_MODEL_PATH("model.tmai"), NULL, &model) != TINYAI_OK) {
        printf("Failed to load model: %s\n", tinyaiLastErrorMessage());
        return 1;
    }
    TinyAIModelInfo before, after;
    tinyaiGetModelInfo(model, &before);

// Create mixed precision configuration
TinyAIMixedPrecisionConfig mpConfig;
tinyaiInitMixedPrecisionConfig(&mpConfig);

// Set precision for different layer types
mpConfig.embeddingPrecision = TINYAI_PREC_INT8;   // 8-bit for embeddings
mpConfig.attentionPrecision = TINYAI_PREC_INT4;   // 4-bit for attention
mpConfig.ffnPrecision = TINYAI_PREC_INT4;         // 4-bit for feed-forward
mpConfig.outputPrecision = TINYAI_PREC_FP16;      // FP16 for output layer

// Apply mixed precision configuration to model
    TinyAIStatus st = /* glue: the result */
tinyaiApplyMixedPrecision(model, &mpConfig);

    /* glue: what happened */
    if (st != TINYAI_OK) {
        printf("Not applied: %s\n", tinyaiLastErrorMessage());
        tinyaiFreeModel(model);
        return 2;
    }
    tinyaiGetModelInfo(model, &after);
    printf("Weights: %.1f MiB -> %.1f MiB\n", before.weightBytes / 1048576.0,
           after.weightBytes / 1048576.0);
    int rc = continue_prompt(model, argc > 1 ? argv[1] : "The capital of France is");
    tinyaiFreeModel(model);
    return rc;
}
