/*
 * <tinyai/utils/checkpoint.h>: what happens to a layer's output once read,
 * for the layer scheduler (<tinyai/utils/layer_scheduler.h>) and the
 * forward scheduler's graphs (<tinyai/utils/forward_scheduler.h>); each
 * header says what the strategies mean there.
 */
#ifndef TINYAI_UTILS_CHECKPOINT_H
#define TINYAI_UTILS_CHECKPOINT_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TINYAI_CHECKPOINT_NONE = 0,
    TINYAI_CHECKPOINT_STORE = 1,
    TINYAI_CHECKPOINT_RECOMPUTE = 2,
} TinyAICheckpointStrategy;

#ifdef __cplusplus
}
#endif

#endif
