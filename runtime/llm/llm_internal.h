/*
 * runtime/llm: the public face of <tinyai/llm.h> (api.c). Internal: what
 * the forward scheduler shares with it.
 */
#ifndef TAI_RUNTIME_LLM_LLM_INTERNAL_H
#define TAI_RUNTIME_LLM_LLM_INTERNAL_H

#include "runtime/model/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Builds a model over an open mapped model (borrowed unless owns): binds
 * it, places its layers on devices and makes its memory plan. */
TinyAIStatus tai_model_create(TinyAIMappedModel *mm, int owns, const TinyAIModelConfig *cfg,
                              TinyAIModel **out);

#ifdef __cplusplus
}
#endif

#endif
