/*
 * TinyAI public API: tinyaiSetLayerPriority for both objects that have
 * layers with priorities.
 *
 * The specification gives the name two signatures: the memory-mapped loader's
 * (TinyAIMappedModel *, int, float) and the progressive loader's
 * (TinyAIProgressiveLoader *, int, int). C has no overloading, so
 * tinyaiSetLayerPriority is the exported function of the mapped model and,
 * in C11, also a type-generic macro that sends a TinyAIProgressiveLoader * to
 * tinyaiSetProgressiveLayerPriority; C++ gets an overload. Either way both
 * spellings of the specification compile and do the right thing.
 */
#ifndef TINYAI_UTILS_LAYER_PRIORITY_H
#define TINYAI_UTILS_LAYER_PRIORITY_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct TinyAIMappedModel TinyAIMappedModel;
typedef struct TinyAIProgressiveLoader TinyAIProgressiveLoader;

/* Mapped model: higher values are kept in the cache longer (default 1.0).
 * Does nothing for a NULL model or an index out of range (the error message
 * says why). */
void tinyaiSetLayerPriority(TinyAIMappedModel *model, int layerIndex, float priority);

/* Progressive loader: higher values are unloaded last (default 0). */
void tinyaiSetProgressiveLayerPriority(TinyAIProgressiveLoader *loader, int layer_index,
                                       int priority);

#ifdef __cplusplus
}
static inline void tinyaiSetLayerPriority(TinyAIProgressiveLoader *loader, int layer_index,
                                          int priority) {
    tinyaiSetProgressiveLayerPriority(loader, layer_index, priority);
}
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define tinyaiSetLayerPriority(obj, index, priority)                                     \
    _Generic((obj), TinyAIProgressiveLoader *: tinyaiSetProgressiveLayerPriority,        \
             default: (tinyaiSetLayerPriority))((obj), (index), (priority))
#endif

#endif
