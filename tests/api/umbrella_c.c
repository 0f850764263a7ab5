/*
 * tests/api/umbrella_c.c: <tinyai/tinyai.h> compiled as strict C11 (BUILD:
 * -std=c11 -pedantic -Werror), touching a name of every header it gathers.
 */
#include <tinyai/tinyai.h>

#include "tests/api/umbrella_c.h"

int tai_umbrella_c_check(void) {
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();      /* llm.h */
    TinyAIMmapConfig mm = tinyaiCreateDefaultMmapConfig();        /* mmap_loader.h */
    TinyAIPerplexityConfig pc = tinyaiCreateDefaultPerplexityConfig();
    TinyAIStatus st = TINYAI_OK;                                   /* status.h */
    TinyAIForwardScheduler *fs = tinyaiCreateForwardScheduler(NULL, TINYAI_EXEC_NORMAL, 0);
    tinyaiDestroyForwardScheduler(fs);                             /* forward_scheduler.h */
    TinyAIProgressiveLoader *pl = NULL;                            /* progressive_loader.h */
    TinyAIMemoryStats ms;                                          /* memory_stats.h */
    ms.current_usage = 0;
    tinyaiSetLayerPriority((TinyAIMappedModel *)NULL, 0, 1.0f);   /* layer_priority.h */
    const size_t abi = sizeof(TinyAIPluginDeviceOps);              /* plugin.h */
    (void)pl;
    return (int)st + (mm.maxCacheSize > 0) + (mc.maxSessions >= 0) + (pc.contextSize == 512) +
           (abi > 0) + (int)ms.current_usage;
}
