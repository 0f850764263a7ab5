// <tinyai/utils/cache_optimization.h>: the settings are the model's own and
// never change a result, bad ones are refused, the statistics are the
// deltas of what happened between calls, and the layout rewrite makes a
// row-major model read in place with the same logits.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include <tinyai/utils/cache_optimization.h>

#include "tests/model/memory_test_util.h"

namespace {
using namespace tai_test;

std::string Model(const char *type, uint64_t seed = 3) {
    TinyAISynthConfig c = tinyaiCreateDefaultSynthConfig();
    c.nVocab = 320;
    c.nEmbd = 256;
    c.nFF = 768;
    c.nHead = 4;
    c.nHeadKV = 2;
    c.nLayer = 2;
    c.nCtx = 128;
    c.weightType = type;
    c.embeddingType = type;
    c.seed = seed;
    return WriteSynthModel(c);
}

// A 24-token prompt (the blocked products) and 4 decoded tokens (the
// streaming ones).
GreedyRun Decode(TinyAIModel *m) {
    std::vector<int32_t> prompt;
    for (int i = 0; i < 24; i++) prompt.push_back(1 + (i * 37) % 300);
    return Greedy(m, prompt, 4, 64);
}

void ExpectBits(const GreedyRun &a, const GreedyRun &b, const std::string &what) {
    ASSERT_EQ(a.tokens, b.tokens) << what;
    for (size_t s = 0; s < a.logits.size(); s++)
        ASSERT_EQ(std::memcmp(a.logits[s].data(), b.logits[s].data(), a.logits[s].size() * 4), 0)
            << what << " step " << s;
}

struct RestoreTuning {
    TinyAIKernelTuning saved = tinyaiGetKernelTuning();
    ~RestoreTuning() { tinyaiSetKernelTuning(&saved); }
};

TEST(CacheOptimization, SettingsAreTheModelsOwnAndChangeNoResult) {
    RestoreTuning r;
    const TinyAIKernelTuning machine = {1024, 4096};
    ASSERT_EQ(tinyaiSetKernelTuning(&machine), TINYAI_OK);
    for (const char *type : {"Q4_0", "Q8_0", "F16"}) {
        const std::string path = Model(type);
        ModelPtr a = LoadModel(path, MemConfig(0, TINYAI_EXEC_NORMAL, 2));
        ModelPtr b = LoadModel(path, MemConfig(0, TINYAI_EXEC_NORMAL, 2));
        ASSERT_TRUE(a && b);
        // the machine's tuning, as a config
        TinyAICacheConfig c = tinyaiGetCacheConfig(a.get());
        EXPECT_EQ(c.block_size, 0);
        EXPECT_TRUE(c.enable_prefetch);
        EXPECT_EQ(c.prefetch_distance, 1024 / c.cache_line_size);
        const GreedyRun want = Decode(a.get());
        for (TinyAICacheConfig cfg : {TinyAICacheConfig{32, 0, true, 1}, TinyAICacheConfig{96, 0, false, 0},
                                      TinyAICacheConfig{1024, 0, true, 256}, TinyAICacheConfig{0, 0, true, 8}}) {
            ASSERT_TRUE(tinyaiConfigureCacheOptimization(a.get(), &cfg)) << tinyaiLastErrorMessage();
            const TinyAICacheConfig got = tinyaiGetCacheConfig(a.get());
            EXPECT_EQ(got.block_size, cfg.block_size);
            EXPECT_EQ(got.enable_prefetch, cfg.enable_prefetch);
            EXPECT_EQ(got.prefetch_distance, cfg.enable_prefetch ? cfg.prefetch_distance : 0);
            ExpectBits(want, Decode(a.get()), std::string(type) + " block " + std::to_string(cfg.block_size));
            // the other model keeps the machine's
            const TinyAICacheConfig other = tinyaiGetCacheConfig(b.get());
            EXPECT_EQ(other.block_size, 0);
            EXPECT_EQ(other.prefetch_distance, 1024 / other.cache_line_size);
        }
        // and the machine's tuning itself is untouched
        EXPECT_EQ(tinyaiGetKernelTuning().prefetchL1Bytes, 1024);
    }
}

TEST(CacheOptimization, BadSettingsAreRefused) {
    ModelPtr m = LoadModel(Model("Q4_0"), MemConfig(0, TINYAI_EXEC_NORMAL, 1));
    ASSERT_TRUE(m);
    const TinyAICacheConfig before = tinyaiGetCacheConfig(m.get());
    const int line = before.cache_line_size;
    for (TinyAICacheConfig bad : {TinyAICacheConfig{16, 0, true, 4}, TinyAICacheConfig{2048, 0, true, 4},
                                  TinyAICacheConfig{-32, 0, true, 4}, TinyAICacheConfig{0, line * 2, true, 4},
                                  TinyAICacheConfig{0, 0, true, 0}, TinyAICacheConfig{0, 0, true, 300}}) {
        EXPECT_FALSE(tinyaiConfigureCacheOptimization(m.get(), &bad))
            << bad.block_size << " " << bad.cache_line_size << " " << bad.prefetch_distance;
        EXPECT_NE(std::string(tinyaiLastErrorMessage()), "");
        const TinyAICacheConfig now = tinyaiGetCacheConfig(m.get());
        EXPECT_EQ(now.block_size, before.block_size);
        EXPECT_EQ(now.prefetch_distance, before.prefetch_distance);
    }
    const TinyAICacheConfig ok = {64, line, true, 4};
    EXPECT_TRUE(tinyaiConfigureCacheOptimization(m.get(), &ok)) << tinyaiLastErrorMessage();
    EXPECT_FALSE(tinyaiConfigureCacheOptimization(nullptr, &ok));
    EXPECT_FALSE(tinyaiConfigureCacheOptimization(m.get(), nullptr));
}

TEST(CacheOptimization, StatsAreWhatHappenedSinceTheLastCall) {
    ModelPtr m = LoadModel(Model("Q8_0"), MemConfig(0, TINYAI_EXEC_NORMAL, 2));
    ASSERT_TRUE(m);
    SessionPtr s = NewSession(m.get(), 32);
    ASSERT_TRUE(s);
    TinyAICacheStats first = tinyaiGetCacheStats(m.get());
    EXPECT_GT(first.seconds, 0);
    EXPECT_EQ(first.nCounters, TINYAI_CACHE_STATS_COUNTERS);
    for (int k = 0; k < first.nCounters; k++) EXPECT_EQ(first.counters[k], 0u) << first.counterNames[k];
    // three passes: every file layer acquired once each (a tied head also
    // holds the embedding), all resident
    for (int32_t t = 1; t <= 3; t++) ASSERT_EQ(tinyaiEval(s.get(), &t, 1), TINYAI_OK);
    TinyAICacheStats st = tinyaiGetCacheStats(m.get());
    TinyAIModelInfo in;
    ASSERT_EQ(tinyaiGetModelInfo(m.get(), &in), TINYAI_OK);
    EXPECT_EQ(st.hits + st.misses, 3u * (in.nFileLayers + (in.tiedOutput ? 1 : 0)));
    EXPECT_EQ(st.hitRate, 1.0);
    EXPECT_EQ(st.bytesRead, 0u);
    EXPECT_GT(st.seconds, 0);
    bool any_hw = false;
    for (int k = 0; k < st.nCounters; k++) {
        const std::string n = st.counterNames[k];
        if (st.counterAvailable[k] && (n == "task-clock-ns" || n == "cycles")) {
            EXPECT_GT(st.counters[k], 0u) << n;
        }
        if (!st.counterAvailable[k]) {
            EXPECT_EQ(st.counters[k], 0u) << n;
        }
        any_hw |= st.counterAvailable[k] && (n == "cycles");
    }
    if (!any_hw) {
        EXPECT_NE(std::string(st.note).find("hardware counters"), std::string::npos);
    }
    // nothing since: nothing counted
    TinyAICacheStats again = tinyaiGetCacheStats(m.get());
    EXPECT_EQ(again.hits + again.misses, 0u);
    // NULL: zeroed, with a note
    TinyAICacheStats none = tinyaiGetCacheStats(nullptr);
    EXPECT_EQ(none.hits, 0u);
    EXPECT_NE(std::string(none.note).find("NULL"), std::string::npos);
}

// Streaming: the reads, misses and evictions are counted between calls.
TEST(CacheOptimization, StatsOfAStreamedRun) {
    const std::string path = Model("Q8_0");
    ModelPtr probe = LoadModel(path, MemConfig(1024, TINYAI_EXEC_MEMORY_OPT, 1));
    ASSERT_TRUE(probe);
    TinyAISession *none = nullptr;
    ASSERT_NE(tinyaiCreateSession(probe.get(), 32, &none), TINYAI_OK);
    const size_t min = MinimumFromMessage(tinyaiLastErrorMessage());
    ASSERT_GT(min, 0u);
    ModelPtr m = LoadModel(path, MemConfig(min, TINYAI_EXEC_MEMORY_OPT, 1));
    ASSERT_TRUE(m);
    SessionPtr s = NewSession(m.get(), 32);
    ASSERT_TRUE(s);
    (void)tinyaiGetCacheStats(m.get());
    for (int32_t t = 1; t <= 3; t++) ASSERT_EQ(tinyaiEval(s.get(), &t, 1), TINYAI_OK);
    const TinyAICacheStats st = tinyaiGetCacheStats(m.get());
    EXPECT_GT(st.bytesRead, 0u);
    EXPECT_GT(st.misses, 0u);
    EXPECT_LT(st.hitRate, 1.0);
    EXPECT_GT(st.evictions, 0u);
}

// A GGUF model (row-major matrices) rewritten packed: the same bits out,
// and under a limit its layers load without staging buffers.
TEST(CacheOptimization, OptimizeMemoryLayoutPacksARowMajorModel) {
    const std::string path = Model("Q4_1", 5);
    ModelPtr plain = LoadModel(path, MemConfig(0, TINYAI_EXEC_NORMAL, 2));
    ModelPtr m = LoadModel(path, MemConfig(0, TINYAI_EXEC_NORMAL, 2));
    ASSERT_TRUE(plain && m);
    ASSERT_TRUE(tinyaiOptimizeMemoryLayout(m.get())) << tinyaiLastErrorMessage();
    TinyAIModelInfo in;
    ASSERT_EQ(tinyaiGetModelInfo(m.get(), &in), TINYAI_OK);
    EXPECT_STREQ(in.fileFormat, "tmai");
    ExpectBits(Decode(plain.get()), Decode(m.get()), "packed");
    // nothing left to do the second time
    EXPECT_TRUE(tinyaiOptimizeMemoryLayout(m.get())) << tinyaiLastErrorMessage();

    // under a limit: the row-major file needs staging, the packed one not
    ModelPtr lim_plain = LoadModel(path, MemConfig(64u << 20, TINYAI_EXEC_MEMORY_OPT, 1));
    ModelPtr lim = LoadModel(path, MemConfig(64u << 20, TINYAI_EXEC_MEMORY_OPT, 1));
    ASSERT_TRUE(lim_plain && lim);
    ASSERT_TRUE(tinyaiOptimizeMemoryLayout(lim.get())) << tinyaiLastErrorMessage();
    SessionPtr s1 = NewSession(lim_plain.get(), 32), s2 = NewSession(lim.get(), 32);
    ASSERT_TRUE(s1 && s2);
    EXPECT_GT(MemInfo(lim_plain.get()).stagingBytes, 0u);
    EXPECT_EQ(MemInfo(lim.get()).stagingBytes, 0u);
    // with a live session it cannot be done, and says so
    EXPECT_FALSE(tinyaiOptimizeMemoryLayout(lim_plain.get()));
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("live session"), std::string::npos);
    EXPECT_FALSE(tinyaiOptimizeMemoryLayout(nullptr));
}

}  // namespace
