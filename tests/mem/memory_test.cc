// <tinyai/utils/memory.h>: the caller's pools (blocks distinct, exhaustion,
// double frees and foreign pointers refused, threads), the strategies the
// runtime's own buffers go through (a static arena that caps them and
// fails cleanly, pooled reuse, hybrid overflow), and tracking that shows
// TinyAI's memory by kind and accounts for the process's resident memory.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <tinyai/llm.h>
#include <tinyai/utils/memory.h>

#include "runtime/mem/memory.h"
#include "tests/common/test_paths.h"

namespace {

// Every test leaves the process with the default strategy.
class Memory : public testing::Test {
  protected:
    void TearDown() override {
        TinyAIMemoryConfig c = {TINYAI_MEMORY_STRATEGY_DYNAMIC, 0, 0, false, false};
        EXPECT_EQ(tinyai_configure_memory(&c), TINYAI_OK) << tinyaiLastErrorMessage();
        tinyai_enable_memory_tracking(false);
    }
};

TEST_F(Memory, PoolBlocksAreDistinctAndReturnable) {
    TinyAIMemoryPool *pool = tinyai_create_pool(1024 * 1024, 4096);
    ASSERT_NE(pool, nullptr);
    std::vector<void *> got;
    for (int i = 0; i < 256; i++) {
        void *p = tinyai_pool_alloc(pool, 100 + i);
        ASSERT_NE(p, nullptr) << i;
        EXPECT_EQ((uintptr_t)p % 16, 0u);
        memset(p, i, 4096);  // the whole block is the caller's
        got.push_back(p);
    }
    EXPECT_EQ(std::set<void *>(got.begin(), got.end()).size(), got.size());
    for (int i = 0; i < 256; i++)
        EXPECT_EQ(((unsigned char *)got[i])[4095], (unsigned char)i) << "blocks overlap";
    EXPECT_EQ(tinyai_pool_alloc(pool, 1), nullptr);  // 1 MiB / 4 KiB = 256 blocks
    EXPECT_NE(strstr(tinyaiLastErrorMessage(), "all 256 blocks"), nullptr);
    TinyAIPoolStats s = tinyai_get_pool_stats(pool);
    EXPECT_EQ(s.blocks_used, 256u);
    EXPECT_EQ(s.blocks_total, 256u);
    EXPECT_EQ(tinyai_pool_free(pool, got[7]), TINYAI_OK);
    EXPECT_EQ(tinyai_pool_alloc(pool, 4096), got[7]);  // the freed block comes back
    for (void *p : got) EXPECT_EQ(tinyai_pool_free(pool, p), TINYAI_OK);
    EXPECT_EQ(tinyai_get_pool_stats(pool).blocks_used, 0u);
    EXPECT_EQ(tinyai_get_pool_stats(pool).bytes_requested, 0u);
    tinyai_destroy_pool(pool);
    tinyai_destroy_pool(nullptr);
}

TEST_F(Memory, PoolMisuseIsAClearErrorNotACrash) {
    EXPECT_EQ(tinyai_create_pool(1024, 0), nullptr);
    EXPECT_EQ(tinyai_create_pool(1024, 4096), nullptr);
    TinyAIMemoryPool *pool = tinyai_create_pool(64 * 1024, 1024);
    ASSERT_NE(pool, nullptr);
    EXPECT_EQ(tinyai_pool_alloc(pool, 0), nullptr);
    EXPECT_EQ(tinyai_pool_alloc(pool, 1025), nullptr);
    EXPECT_NE(strstr(tinyaiLastErrorMessage(), "1025 bytes"), nullptr);
    EXPECT_EQ(tinyai_pool_alloc(nullptr, 8), nullptr);
    void *p = tinyai_pool_alloc(pool, 10);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(tinyai_pool_free(pool, p), TINYAI_OK);
    EXPECT_EQ(tinyai_pool_free(pool, p), TINYAI_ERR_INVALID_ARG);  // twice
    EXPECT_NE(strstr(tinyaiLastErrorMessage(), "already free"), nullptr);
    int local = 0;
    EXPECT_EQ(tinyai_pool_free(pool, &local), TINYAI_ERR_INVALID_ARG);  // foreign
    EXPECT_NE(strstr(tinyaiLastErrorMessage(), "not a block of this pool"), nullptr);
    void *q = tinyai_pool_alloc(pool, 10);
    EXPECT_EQ(tinyai_pool_free(pool, (char *)q + 8), TINYAI_ERR_INVALID_ARG);  // inside a block
    EXPECT_EQ(tinyai_pool_free(nullptr, q), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tinyai_pool_free(pool, nullptr), TINYAI_OK);
    EXPECT_EQ(tinyai_get_pool_stats(pool).blocks_used, 1u);  // q is still held
    tinyai_destroy_pool(pool);
}

// Threads allocating and freeing at once never get the same block (each
// writes its id into its blocks and finds it there); run under TSan too.
TEST_F(Memory, PoolIsThreadSafe) {
    TinyAIMemoryPool *pool = tinyai_create_pool(64 * 256, 256);
    ASSERT_NE(pool, nullptr);
    std::vector<std::thread> th;
    std::vector<int> bad(4, 0);
    for (int t = 0; t < 4; t++)
        th.emplace_back([&, t] {
            for (int round = 0; round < 2000; round++) {
                void *mine[8] = {};
                for (auto &m : mine)
                    if ((m = tinyai_pool_alloc(pool, 64)) != nullptr) memset(m, t + 1, 64);
                for (auto &m : mine)
                    if (m) {
                        for (int i = 0; i < 64; i++) bad[t] += ((unsigned char *)m)[i] != t + 1;
                        if (tinyai_pool_free(pool, m) != TINYAI_OK) bad[t]++;
                    }
            }
        });
    for (auto &x : th) x.join();
    for (int t = 0; t < 4; t++) EXPECT_EQ(bad[t], 0) << t;
    EXPECT_EQ(tinyai_get_pool_stats(pool).blocks_used, 0u);
    tinyai_destroy_pool(pool);
}

TEST_F(Memory, ConfigurationIsChecked) {
    EXPECT_EQ(tinyai_configure_memory(nullptr), TINYAI_ERR_INVALID_ARG);
    TinyAIMemoryConfig c = {(TinyAIMemoryStrategy)7, 0, 0, false, false};
    EXPECT_EQ(tinyai_configure_memory(&c), TINYAI_ERR_INVALID_ARG);
    c = {TINYAI_MEMORY_STRATEGY_STATIC, 1024, 4096, false, false};
    EXPECT_EQ(tinyai_configure_memory(&c), TINYAI_ERR_INVALID_ARG);  // smaller than a block
    c = {TINYAI_MEMORY_STRATEGY_POOLED, 1 << 20, 3000, false, false};
    EXPECT_EQ(tinyai_configure_memory(&c), TINYAI_ERR_INVALID_ARG);  // not a power of two
    // not while TinyAI's buffers are in use
    void *p = tai_mem_alloc(TAI_MEM_ACT, 1000, 64, true);
    ASSERT_NE(p, nullptr);
    c = {TINYAI_MEMORY_STRATEGY_POOLED, 1 << 20, 0, false, false};
    EXPECT_EQ(tinyai_configure_memory(&c), TINYAI_ERR_INVALID_ARG);
    EXPECT_NE(strstr(tinyaiLastErrorMessage(), "in use"), nullptr);
    tai_mem_free(p);
    EXPECT_EQ(tinyai_configure_memory(&c), TINYAI_OK);
    EXPECT_EQ(tinyai_get_memory_config().strategy, TINYAI_MEMORY_STRATEGY_POOLED);
    EXPECT_EQ(tinyai_get_memory_config().block_size, 4096u);
}

// The static arena caps the runtime's buffers: a model and sessions run
// from it, the session that does not fit fails cleanly naming the arena,
// and everything returns to it (no fragmentation left) when freed.
TEST_F(Memory, StaticArenaCapsTheRuntimesBuffers) {
    TinyAISynthConfig sc = tinyaiCreateDefaultSynthConfig();
    sc.nCtx = 1024;
    const std::string path = tai_test::TempPath(".gguf");
    ASSERT_EQ(tinyaiWriteSyntheticModel(&sc, path.c_str()), TINYAI_OK);
    TinyAIMemoryConfig c = {TINYAI_MEMORY_STRATEGY_STATIC, 8u << 20, 4096, true, false};
    ASSERT_EQ(tinyai_configure_memory(&c), TINYAI_OK) << tinyaiLastErrorMessage();
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.threads = 1;
    TinyAIModel *m = nullptr;
    ASSERT_EQ(tinyaiLoadModel(path.c_str(), &mc, &m), TINYAI_OK) << tinyaiLastErrorMessage();
    std::vector<TinyAISession *> ss;
    TinyAIStatus st = TINYAI_OK;
    while (ss.size() < 64) {
        TinyAISession *s = nullptr;
        st = tinyaiCreateSession(m, 512, &s);  // K and V, 2 layers x 512 x 64 floats
        if (st != TINYAI_OK) break;
        int32_t t = 3;
        EXPECT_EQ(tinyaiEval(s, &t, 1), TINYAI_OK);
        ss.push_back(s);
    }
    EXPECT_EQ(st, TINYAI_ERR_NOMEM) << tinyaiLastErrorMessage();
    EXPECT_NE(strstr(tinyaiLastErrorMessage(), "static memory arena"), nullptr)
        << tinyaiLastErrorMessage();
    EXPECT_GE(ss.size(), 3u);
    EXPECT_LT(ss.size(), 20u);  // about 0.5 MiB each: the arena, not the loop, ended it
    TinyAIMemoryStats s = tinyai_get_memory_stats();
    EXPECT_LE(s.kind_usage[TINYAI_MEMORY_KIND_KV] + s.kind_usage[TINYAI_MEMORY_KIND_ACTIVATIONS] +
                  s.kind_usage[TINYAI_MEMORY_KIND_IO],
              8u << 20);
    EXPECT_EQ(s.budget, 8u << 20);
    // free every other session: the arena has holes...
    for (size_t i = 0; i < ss.size(); i += 2) tinyaiFreeSession(ss[i]);
    if (ss.size() >= 4) {
        EXPECT_GT(tinyai_get_memory_stats().fragmentation_ratio, 0.0);
    }
    for (size_t i = 1; i < ss.size(); i += 2) tinyaiFreeSession(ss[i]);
    tinyaiFreeModel(m);
    // ...which close when everything is back
    s = tinyai_get_memory_stats();
    EXPECT_EQ(s.fragmentation_ratio, 0.0);
    EXPECT_EQ(s.kind_usage[TINYAI_MEMORY_KIND_KV], 0u);
    EXPECT_EQ(s.kind_usage[TINYAI_MEMORY_KIND_ACTIVATIONS], 0u);
    std::remove(path.c_str());
}

TEST_F(Memory, PooledReusesAndHybridOverflows) {
    TinyAIMemoryConfig c = {TINYAI_MEMORY_STRATEGY_POOLED, 16u << 20, 0, false, false};
    ASSERT_EQ(tinyai_configure_memory(&c), TINYAI_OK);
    void *a = tai_mem_alloc(TAI_MEM_KV, 3u << 20, 64, true);
    ASSERT_NE(a, nullptr);
    memset(a, 7, 3u << 20);
    tai_mem_free(a);
    EXPECT_GT(tinyai_get_memory_stats().fragmentation_ratio, 0.99);  // all kept, none live
    void *b = tai_mem_alloc(TAI_MEM_KV, 3u << 20, 64, true);
    EXPECT_EQ(b, a);                                 // the kept buffer again...
    EXPECT_EQ(((unsigned char *)b)[12345], 0);       // ...zeroed as asked
    void *other = tai_mem_alloc(TAI_MEM_KV, 2u << 20, 64, false);  // another size: new
    EXPECT_NE(other, a);
    tai_mem_free(b);
    tai_mem_free(other);

    c = {TINYAI_MEMORY_STRATEGY_HYBRID, 1u << 20, 4096, false, false};
    ASSERT_EQ(tinyai_configure_memory(&c), TINYAI_OK);
    void *small = tai_mem_alloc(TAI_MEM_ACT, 512 * 1024, 64, true);  // the arena
    void *big = tai_mem_alloc(TAI_MEM_ACT, 2u << 20, 64, true);      // beyond it: the system
    ASSERT_TRUE(small && big);
    EXPECT_EQ(((unsigned char *)big)[(2u << 20) - 1], 0);
    tai_mem_free(small);
    tai_mem_free(big);
}

// Tracking by kind on the real model: the weights are the model's images,
// the KV memory its session's, the tables its fixed bytes; TinyAI's
// resident memory is most of the process's, and all of it is returned.
TEST_F(Memory, TrackingAccountsForTheProcesssResidentMemory) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    tinyai_enable_memory_tracking(true);
    const TinyAIMemoryStats before = tinyai_get_memory_stats();
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.threads = 2;
    mc.contextSize = 256;
    TinyAIModel *m = nullptr;
    ASSERT_EQ(tinyaiLoadModel(path.c_str(), &mc, &m), TINYAI_OK) << tinyaiLastErrorMessage();
    TinyAISession *s = nullptr;
    ASSERT_EQ(tinyaiCreateSession(m, 256, &s), TINYAI_OK);
    std::vector<int32_t> toks(200, 42);
    ASSERT_EQ(tinyaiEval(s, toks.data(), toks.size()), TINYAI_OK);
    const TinyAIMemoryStats st = tinyai_get_memory_stats();
    TinyAIMemoryInfo mi;
    tinyaiGetMemoryInfo(m, &mi);
    const size_t w = st.kind_usage[TINYAI_MEMORY_KIND_WEIGHTS] - before.kind_usage[0];
    EXPECT_GE(w, mi.modelBytes);
    EXPECT_LT(w, mi.modelBytes + (8u << 20));  // the arena's alignment slack
    EXPECT_EQ(st.kind_usage[TINYAI_MEMORY_KIND_KV], tinyaiSessionMemoryBytes(s));
    EXPECT_EQ(st.kind_usage[TINYAI_MEMORY_KIND_TABLES], mi.fixedBytes);
    EXPECT_GT(st.kind_usage[TINYAI_MEMORY_KIND_ACTIVATIONS], 0u);
    EXPECT_GT(st.allocation_count, 5u);
    // resident: the weights whole, the KV cache as far as 200 of 256 positions
    EXPECT_GE(st.kind_resident[TINYAI_MEMORY_KIND_WEIGHTS], mi.modelBytes * 9 / 10);
    EXPECT_GT(st.kind_resident[TINYAI_MEMORY_KIND_KV], tinyaiSessionMemoryBytes(s) / 2);
    const std::string report = tai_test::TempPath(".txt");
    ASSERT_EQ(tinyai_generate_memory_report(report.c_str()), TINYAI_OK);
    std::ifstream in(report);
    const std::string text((std::istreambuf_iterator<char>(in)), {});
    for (const char *needle : {"weights (cache arenas)", "KV caches and logits", "VmRSS",
                               "TinyAI's share of VmRSS", "largest live buffers"})
        EXPECT_NE(text.find(needle), std::string::npos) << needle << "\n" << text;
    // the stated margin: what is resident beyond TinyAI's own memory (code,
    // libraries, the test framework, the C heap) is under 48 MiB
    size_t rss = 0;
    {
        std::ifstream status("/proc/self/status");
        std::string line;
        while (std::getline(status, line))
            if (line.rfind("VmRSS:", 0) == 0) rss = std::stoul(line.substr(6)) * 1024;
    }
    ASSERT_GT(rss, 0u);
    EXPECT_LE(st.resident_usage, rss + (4u << 20));
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    // (a sanitizer's shadow memory is resident too, and not TinyAI's)
    EXPECT_LT(rss - std::min(rss, st.resident_usage), 48u << 20) << text;
#endif
    tinyaiFreeSession(s);
    tinyaiFreeModel(m);
    const TinyAIMemoryStats after = tinyai_get_memory_stats();
    for (int k = 0; k < TINYAI_MEMORY_KIND_COUNT; k++)
        EXPECT_EQ(after.kind_usage[k], before.kind_usage[k]) << "kind " << k;
    EXPECT_EQ(tinyai_generate_memory_report("/nonexistent-dir/r.txt"), TINYAI_ERR_IO);
}

}  // namespace
