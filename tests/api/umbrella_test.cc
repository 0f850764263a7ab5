// tests/api/umbrella_test.cc: <tinyai/tinyai.h> gathers the whole public
// API, usable from C++ here and from strict C11 (umbrella_c.c, built with
// -std=c11 -pedantic -Werror).
#include <gtest/gtest.h>

#include <tinyai/tinyai.h>

#include "tests/api/umbrella_c.h"

namespace {

TEST(Umbrella, EveryHeaderFromCAndCpp) {
    EXPECT_EQ(tai_umbrella_c_check(), 4);
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    TinyAIMmapConfig mm = tinyaiCreateDefaultMmapConfig();
    EXPECT_GT(mm.maxCacheSize, 0u);
    EXPECT_GE(mc.maxSessions, 0);
    EXPECT_EQ(tinyaiCreateForwardScheduler(nullptr, TINYAI_EXEC_NORMAL, 0), nullptr);
    EXPECT_STRNE(tinyaiLastErrorMessage(), "");
    EXPECT_GT(sizeof(TinyAIPluginDeviceOps), 0u);
    TinyAIMemoryStats ms{};
    EXPECT_EQ(ms.current_usage, 0u);
}

}  // namespace
