/*
 * runtime/sched: the scheduler between the weight cache and the devices.
 * It owns the two plans a model runs under, the memory plan (mode, cache
 * budget, the order layers are needed in, the fixed set: memplan.c) and
 * the placement (which device runs each layer, per batch size:
 * placement.c), and drives a forward pass layer by layer (pass.c): it
 * acquires a layer's images from the cache, hands them to the layer's
 * device, has the architecture (runtime/model) issue the layer's ops there,
 * synchronises, and releases the images. Internal.
 */
#ifndef TAI_RUNTIME_SCHED_SCHED_H
#define TAI_RUNTIME_SCHED_SCHED_H

#include "runtime/model/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Makes the memory plan for n_seq sessions of n_ctx tokens: chooses the mode
 * and the cache budget under cfg.memoryLimit, (re)creates the cache, sets the
 * schedule and, in NORMAL mode, loads and pins every layer. */
TinyAIStatus tai_model_plan(TinyAIModel *m, int n_ctx, int n_seq);

/* The smallest batch of each placement bucket: powers of two, 1 to 512. */
extern const int tai_plan_cols[TAI_PLANS];
/* The bucket of a pass of n columns. */
int tai_plan_bucket(const TinyAIModel *m, int n);
/* Opens the devices and decides where each layer runs: "cpu",
 * "opencl[:N]" (the blocks and head there) or auto (the cost model, per
 * batch bucket, from the calibrations in cache_dir/devices.json, measured
 * there first if missing; without a cache_dir, the CPU). */
TinyAIStatus tai_model_place(TinyAIModel *m, const char *device, const char *cache_dir);
void tai_model_place_free(TinyAIModel *m);
/* Seconds the cost model predicts for one pass of n columns attending over
 * ctx positions, each layer on the device the plan for n gives it, from
 * the devices' kept calibrations; -1 when the model has none (no cache
 * folder, or a named device never calibrated). */
double tai_sched_predict_pass(const TinyAIModel *m, int n, int ctx);

/* Runs file layer `layer` of the pass for the batch on its device (layer
 * 0 starts a pass and chooses its placement by the batch's width); the
 * time it takes is added to the layer's measured time. */
TinyAIStatus tai_sched_layer(const tai_batch *b, int layer);
/* One layer of a pass on the CPU, whatever the placement, with the
 * activations (ws.x) on the host before and after: the layer scheduler's
 * step (its passes start at any layer). */
TinyAIStatus tai_sched_layer_cpu(const tai_batch *b, int layer);
/* Every layer, then advances each column's session position. With auto
 * placement, a device that fails hands its layers to the CPU (for good,
 * said once in the model's placement note) and the pass runs again. */
TinyAIStatus tai_sched_forward(const tai_batch *b);

#ifdef __cplusplus
}
#endif

#endif
