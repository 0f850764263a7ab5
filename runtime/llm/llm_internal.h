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
 * it, places its layers on devices and makes its memory plan. With `later`
 * (a load that starts its reads at once), the tokenizer is not built yet
 * and the compute threads not bound to cores: tai_model_finish does both,
 * while the reads run. */
TinyAIStatus tai_model_create(TinyAIMappedModel *mm, int owns, const TinyAIModelConfig *cfg,
                              bool later, TinyAIModel **out);
TinyAIStatus tai_model_finish(TinyAIModel *m);

/* Writes `mf` converted as `config` says to `out` (GGUF, or .tmai if its
 * name ends so): tinyaiQuantizeModelFile without the loading checks.
 * allow_raise lets a type go up (for benchmarks that need an unquantized
 * base from a quantized file; the public API refuses that). */
TinyAIStatus tai_quantize_file(const tai_model_file *mf, const char *out,
                               const TinyAIMixedPrecisionConfig *config, bool allow_raise,
                               TinyAIQuantizeProgress progress, void *user);

/* The model file `in` opened to be converted to `out`: refused if `out` is
 * `in`; loaded as a model (only the tables: no layer cached) and every
 * .tmai layer's checksum verified, so that problems are reported against
 * the input. The caller frees *m. */
TinyAIStatus tai_model_open_source(const char *in, const char *out, TinyAIModel **m);

/* Rewrites the model's weights: write(m->file, path, ctx) makes a new
 * model file at a temporary path in temp_dir (NULL: beside the model's
 * file), the model reloads from it with its own config (the file unlinked
 * once open) and takes the new weights; on failure it is unchanged.
 * Refuses a model with live sessions or on a caller's mapped model (`what`
 * names the caller in messages). */
TinyAIStatus tai_model_rewrite(TinyAIModel *m, const char *temp_dir, const char *what,
                               TinyAIStatus (*write)(const tai_model_file *mf, const char *path,
                                                     const void *ctx),
                               const void *ctx);

#ifdef __cplusplus
}
#endif

#endif
