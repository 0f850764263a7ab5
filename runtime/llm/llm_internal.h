/*
 * runtime/llm: the public face of <tinyai/llm.h> (api.c). Internal: what
 * the forward scheduler shares with it.
 */
#ifndef TAI_RUNTIME_LLM_LLM_INTERNAL_H
#define TAI_RUNTIME_LLM_LLM_INTERNAL_H

#include <stdbool.h>

#include <tinyai/utils/quantize_mixed.h>

#include "runtime/model/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Builds a model over an open mapped model (borrowed unless owns): binds
 * it, places its layers on devices and makes its memory plan. */
TinyAIStatus tai_model_create(TinyAIMappedModel *mm, int owns, const TinyAIModelConfig *cfg,
                              TinyAIModel **out);

/* Writes `mf` converted as `config` says to `out` (GGUF, or .tmai if its
 * name ends so): tinyaiQuantizeModelFile without the loading checks.
 * allow_raise lets a type go up (for benchmarks that need an unquantized
 * base from a quantized file; the public API refuses that). */
TinyAIStatus tai_quantize_file(const tai_model_file *mf, const char *out,
                               const TinyAIMixedPrecisionConfig *config, bool allow_raise,
                               TinyAIQuantizeProgress progress, void *user);

#ifdef __cplusplus
}
#endif

#endif
