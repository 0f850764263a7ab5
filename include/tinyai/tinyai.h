/*
 * <tinyai/tinyai.h>: the whole public API of TinyAI in one include.
 *
 *   <tinyai/status.h>                    status codes and the last error
 *   <tinyai/llm.h>                       models, sessions, evaluation, sampling,
 *                                        devices, perplexity
 *   <tinyai/utils/mmap_loader.h>         the memory-mapped model loader
 *   <tinyai/utils/forward_scheduler.h>   the layer-by-layer forward scheduler
 *   <tinyai/utils/progressive_loader.h>  the progressive loader
 *   <tinyai/utils/layer_priority.h>      layer cache priorities
 *   <tinyai/utils/memory_stats.h>        memory statistics
 *   <tinyai/utils/memory.h>              allocation strategies, pools, memory
 *                                        tracking and reports
 *   <tinyai/utils/memory_optimizer.h>    activation planning, tensor reuse,
 *                                        fitting a model into a budget
 *   <tinyai/utils/layer_scheduler.h>     layer-major execution in chunks,
 *                                        checkpoints and recomputation
 *   <tinyai/utils/checkpoint.h>          checkpoint strategies (both schedulers)
 *   <tinyai/utils/quantize_mixed.h>      mixed-precision quantization
 *   <tinyai/utils/prune.h>               block pruning, stored and run sparsely
 *   <tinyai/plugin.h>                    the device plugin ABI (what a vendor's
 *                                        plugin implements)
 *
 * Each header also stands alone; C11 and C++.
 */
#ifndef TINYAI_TINYAI_H
#define TINYAI_TINYAI_H

#include <tinyai/status.h>
#include <tinyai/llm.h>
#include <tinyai/utils/cache_optimization.h>
#include <tinyai/utils/checkpoint.h>
#include <tinyai/plugin.h>
#include <tinyai/profile.h>
#include <tinyai/utils/forward_scheduler.h>
#include <tinyai/utils/layer_priority.h>
#include <tinyai/utils/layer_scheduler.h>
#include <tinyai/utils/memory.h>
#include <tinyai/utils/memory_optimizer.h>
#include <tinyai/utils/memory_stats.h>
#include <tinyai/utils/mmap_loader.h>
#include <tinyai/utils/progressive_loader.h>
#include <tinyai/utils/prune.h>
#include <tinyai/utils/quantize_mixed.h>
#include <tinyai/utils/simd.h>

#endif
