// Prefetch: on the cyclic schedule of decoding, conservative prefetch reads
// exactly what demand-only Belady reads while turning misses into hits;
// aggressive prefetch overlaps loads with use (more hits when the next entry
// is acquired right after the release) at the price of extra reads; the
// rules keep entries needed sooner; the window limits loads ahead; demand
// loads go before queued prefetches.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "tests/cache/cache_test_util.h"

namespace {

using tai_test::Cache;
using tai_test::Config;
using tai_test::Info;
using tai_test::Loader;
using tai_test::Stats;
using tai_test::Use;
using tai_test::WaitIdle;

constexpr size_t kSize = 2 * 4096;

enum class Flow {
    kSettle,   // loads land after the acquire and after the release
    kOverlap,  // loads land during use; the next acquire follows the release
};

struct Params {
    int n, k, window, cycles;
};

tai_cache_stats RunCyclic(const Params &p, int window, bool aggressive, Flow flow,
                          int sleep_us) {
    Loader loader;
    loader.sleep_us = sleep_us;
    std::vector<size_t> sizes((size_t)p.n, kSize);
    std::vector<int> order((size_t)p.n);
    for (int i = 0; i < p.n; i++) order[(size_t)i] = i;
    Cache c;
    tai_cache_config cfg = Config(&loader, (size_t)p.k * kSize, TAI_CACHE_BELADY, window);
    cfg.aggressive_prefetch = aggressive;
    cfg.loader_threads = 2;
    tai_cache_stats none{};
    EXPECT_EQ(tai_cache_create(&cfg, p.n, sizes.data(), &c.c), TINYAI_OK);
    if (!c.c) return none;
    EXPECT_EQ(tai_cache_set_schedule(c, order.data(), p.n, true), TINYAI_OK);
    for (int cycle = 0; cycle < p.cycles; cycle++) {
        for (int e = 0; e < p.n; e++) {
            void *ptr = nullptr;
            EXPECT_EQ(tai_cache_acquire(c, e, &ptr), TINYAI_OK) << tinyaiLastErrorMessage();
            if (!ptr) return none;
            WaitIdle(c, p.n);  // "compute" while prefetched loads land
            EXPECT_TRUE(tai_test::HasPattern(e, ptr, kSize));
            EXPECT_EQ(tai_cache_release(c, e), TINYAI_OK);
            if (flow == Flow::kSettle) WaitIdle(c, p.n);
            EXPECT_EQ(tai_cache_check(c), TINYAI_OK) << tinyaiLastErrorMessage();
        }
    }
    // Prefetch after the last release loaded the next cycle's first entry,
    // which demand loads only when it is acquired: acquire it in both runs.
    void *ptr = nullptr;
    EXPECT_EQ(tai_cache_acquire(c, 0, &ptr), TINYAI_OK);
    WaitIdle(c, p.n);
    tai_cache_stats st = Stats(c);
    EXPECT_EQ(tai_cache_release(c, 0), TINYAI_OK);
    return st;
}

class Conservative : public ::testing::TestWithParam<Params> {};

TEST_P(Conservative, ReadsWhatDemandReadsButHits) {
    const Params p = GetParam();
    const uint64_t accesses = (uint64_t)p.n * (uint64_t)p.cycles + 1;
    tai_cache_stats demand = RunCyclic(p, 0, false, Flow::kSettle, 0);
    EXPECT_EQ(demand.prefetches, 0u);
    std::vector<int> unrolled;
    for (int a = 0; a < (int)accesses; a++) unrolled.push_back(a % p.n);
    EXPECT_EQ(demand.misses, (uint64_t)tai_test::OptimalMisses(unrolled, p.k).Solve());

    tai_cache_stats pre = RunCyclic(p, p.window, false, Flow::kSettle, 300);
    EXPECT_EQ(pre.bytes_read, demand.bytes_read);
    EXPECT_EQ(pre.loads, demand.loads);
    EXPECT_EQ(pre.evictions, demand.evictions);
    EXPECT_GT(pre.prefetches, 0u);
    EXPECT_EQ(pre.hits + pre.misses, accesses);
    // Every load happened ahead of its acquire but the very first one.
    EXPECT_EQ(pre.misses, 1u);
    EXPECT_LE(pre.peak_used, (size_t)p.k * kSize);
}

INSTANTIATE_TEST_SUITE_P(Cyclic, Conservative,
                         ::testing::Values(Params{8, 4, 1, 5}, Params{8, 4, 2, 5},
                                           Params{7, 3, 3, 4}, Params{10, 6, 2, 4},
                                           Params{5, 4, 4, 6}));

TEST(Aggressive, OverlapsMoreAndReadsMore) {
    const Params p{8, 4, 2, 4};
    const uint64_t accesses = (uint64_t)p.n * (uint64_t)p.cycles + 1;
    tai_cache_stats demand = RunCyclic(p, 0, false, Flow::kSettle, 0);
    // The next entry is acquired right after the release: only what was
    // loaded during use can be a hit.
    tai_cache_stats cons = RunCyclic(p, p.window, false, Flow::kOverlap, 3000);
    tai_cache_stats aggr = RunCyclic(p, p.window, true, Flow::kOverlap, 3000);
    EXPECT_EQ(cons.bytes_read, demand.bytes_read);
    // Loads overlapped with use: every acquire after the first one hits.
    EXPECT_EQ(aggr.misses, 1u);
    EXPECT_GT(aggr.hits, cons.hits);
    EXPECT_GT(aggr.bytes_read, demand.bytes_read);
    EXPECT_EQ(aggr.hits + aggr.misses, accesses);
    EXPECT_LE(aggr.peak_used, (size_t)p.k * kSize);
}

// Non-cyclic: four entries, room for two; 3 is not in the schedule.
TEST(Prefetch, NeverEvictsWhatIsNeededSooner) {
    Loader l;
    std::vector<size_t> sizes(4, kSize);
    const int order[] = {0, 1, 2, 0, 1};
    for (bool aggressive : {false, true}) {
        Cache c;
        tai_cache_config cfg = Config(&l, 2 * kSize, TAI_CACHE_BELADY, 0);
        cfg.aggressive_prefetch = aggressive;
        ASSERT_EQ(tai_cache_create(&cfg, 4, sizes.data(), &c.c), TINYAI_OK);
        ASSERT_EQ(tai_cache_set_schedule(c, order, 5, false), TINYAI_OK);
        Use(c, 0, kSize);
        Use(c, 1, kSize);
        // 3 is never needed: evicting 0 or 1 for it would cost a read.
        EXPECT_EQ(tai_cache_prefetch(c, 3), TINYAI_ERR_NOMEM);
        EXPECT_EQ(Info(c, 0).state, TAI_ENTRY_RESIDENT);
        EXPECT_EQ(Info(c, 1).state, TAI_ENTRY_RESIDENT);
        EXPECT_EQ(Info(c, 3).state, TAI_ENTRY_ABSENT);
        // 2 is needed first: evicting 1 (needed last) is what demand does.
        EXPECT_EQ(tai_cache_prefetch(c, 2), TINYAI_OK) << tinyaiLastErrorMessage();
        WaitIdle(c, 4);
        EXPECT_EQ(Info(c, 2).state, TAI_ENTRY_RESIDENT);
        EXPECT_EQ(Info(c, 1).state, TAI_ENTRY_ABSENT);
        EXPECT_EQ(tai_cache_prefetch(c, 2), TINYAI_OK);  // resident: nothing to do
        EXPECT_EQ(Stats(c).prefetches, 1u);
        EXPECT_TRUE(Use(c, 2, kSize));  // a hit
    }
}

// Cyclic 0 1 2 3, room for three; 0, 1 and 2 resident, cursor at 1.
// Prefetching 3 could evict 1 (its next use comes after 3's), but at 3's turn
// a demand load would evict 2, just used, and keep 1: conservative prefetch
// refuses, aggressive prefetch evicts 1.
TEST(Prefetch, ConservativeKeepsWhatDemandWouldKeep) {
    Loader l;
    std::vector<size_t> sizes(4, kSize);
    const int order[] = {0, 1, 2, 3};
    for (bool aggressive : {false, true}) {
        Cache c;
        tai_cache_config cfg = Config(&l, 3 * kSize, TAI_CACHE_BELADY, 0);
        cfg.aggressive_prefetch = aggressive;
        ASSERT_EQ(tai_cache_create(&cfg, 4, sizes.data(), &c.c), TINYAI_OK);
        ASSERT_EQ(tai_cache_set_schedule(c, order, 4, true), TINYAI_OK);
        Use(c, 0, kSize);
        Use(c, 1, kSize);
        ASSERT_EQ(tai_cache_prefetch(c, 2), TINYAI_OK);  // free space
        WaitIdle(c, 4);
        TinyAIStatus st = tai_cache_prefetch(c, 3);
        WaitIdle(c, 4);
        if (aggressive) {
            EXPECT_EQ(st, TINYAI_OK);
            EXPECT_EQ(Info(c, 3).state, TAI_ENTRY_RESIDENT);
            EXPECT_EQ(Info(c, 1).state, TAI_ENTRY_ABSENT);  // furthest from the cursor
        } else {
            EXPECT_EQ(st, TINYAI_ERR_NOMEM);
            EXPECT_EQ(Info(c, 3).state, TAI_ENTRY_ABSENT);
            EXPECT_EQ(Info(c, 1).state, TAI_ENTRY_RESIDENT);
        }
        EXPECT_EQ(Info(c, 0).state, TAI_ENTRY_RESIDENT);
        EXPECT_EQ(Info(c, 2).state, TAI_ENTRY_RESIDENT);
    }
}

// The same cycle with 0 and 1 of a higher priority (what the model's
// memory-opt plan does for the layers it keeps): no prefetch of 3 evicts
// them, aggressive or not, though both are needed after it. At 3's own
// priority aggressive prefetch may again. A demand load, which must make
// room, still evicts the lowest priority there is.
TEST(Prefetch, NeverEvictsAHigherPriority) {
    Loader l;
    std::vector<size_t> sizes(4, kSize);
    const int order[] = {0, 1, 2, 3};
    for (bool aggressive : {false, true}) {
        SCOPED_TRACE(aggressive);
        Cache c;
        tai_cache_config cfg = Config(&l, 3 * kSize, TAI_CACHE_BELADY, 0);
        cfg.aggressive_prefetch = aggressive;
        ASSERT_EQ(tai_cache_create(&cfg, 4, sizes.data(), &c.c), TINYAI_OK);
        ASSERT_EQ(tai_cache_set_schedule(c, order, 4, true), TINYAI_OK);
        ASSERT_EQ(tai_cache_set_priority(c, 0, 2.0f), TINYAI_OK);
        ASSERT_EQ(tai_cache_set_priority(c, 1, 2.0f), TINYAI_OK);
        Use(c, 0, kSize);
        Use(c, 1, kSize);
        ASSERT_EQ(tai_cache_prefetch(c, 2), TINYAI_OK);
        WaitIdle(c, 4);
        EXPECT_EQ(tai_cache_prefetch(c, 3), TINYAI_ERR_NOMEM);
        WaitIdle(c, 4);
        EXPECT_EQ(Info(c, 0).state, TAI_ENTRY_RESIDENT);
        EXPECT_EQ(Info(c, 1).state, TAI_ENTRY_RESIDENT);
        EXPECT_EQ(Info(c, 3).state, TAI_ENTRY_ABSENT);
        // 3 at their priority: aggressive prefetch evicts 1, the furthest
        ASSERT_EQ(tai_cache_set_priority(c, 3, 2.0f), TINYAI_OK);
        const TinyAIStatus st = tai_cache_prefetch(c, 3);
        WaitIdle(c, 4);
        EXPECT_EQ(st, aggressive ? TINYAI_OK : TINYAI_ERR_NOMEM);
        EXPECT_EQ(Info(c, 1).state, aggressive ? TAI_ENTRY_ABSENT : TAI_ENTRY_RESIDENT);
        if (!aggressive) {
            // demand: 2, needed next, ranks lowest now, and goes
            ASSERT_EQ(tai_cache_set_priority(c, 3, 1.0f), TINYAI_OK);
            EXPECT_FALSE(Use(c, 3, kSize)) << "a miss";
            EXPECT_EQ(Info(c, 2).state, TAI_ENTRY_ABSENT);
            EXPECT_EQ(Info(c, 0).state, TAI_ENTRY_RESIDENT);
            EXPECT_EQ(Info(c, 1).state, TAI_ENTRY_RESIDENT);
        }
        EXPECT_EQ(tai_cache_check(c), TINYAI_OK) << tinyaiLastErrorMessage();
    }
}

TEST(Prefetch, WindowLimitsLoadsAhead) {
    Loader l;
    const int n = 8;
    std::vector<size_t> sizes(n, kSize);
    std::vector<int> order = {0, 1, 2, 3, 4, 5, 6, 7};
    Cache c;
    tai_cache_config cfg = Config(&l, n * kSize, TAI_CACHE_BELADY, 2);
    ASSERT_EQ(tai_cache_create(&cfg, n, sizes.data(), &c.c), TINYAI_OK);
    ASSERT_EQ(tai_cache_set_schedule(c, order.data(), n, true), TINYAI_OK);
    void *p = nullptr;
    ASSERT_EQ(tai_cache_acquire(c, 0, &p), TINYAI_OK);
    WaitIdle(c, n);
    EXPECT_EQ(Stats(c).prefetches, 2u);
    EXPECT_EQ(Info(c, 1).state, TAI_ENTRY_RESIDENT);
    EXPECT_EQ(Info(c, 2).state, TAI_ENTRY_RESIDENT);
    EXPECT_EQ(Info(c, 3).state, TAI_ENTRY_ABSENT);
    ASSERT_EQ(tai_cache_release(c, 0), TINYAI_OK);
    WaitIdle(c, n);
    // Resident entries do not count: the next two absent ones are loaded.
    EXPECT_EQ(Stats(c).prefetches, 4u);
    EXPECT_EQ(Info(c, 4).state, TAI_ENTRY_RESIDENT);
    EXPECT_EQ(Info(c, 5).state, TAI_ENTRY_ABSENT);
}

TEST(Prefetch, DemandGoesBeforeQueuedPrefetch) {
    Loader l;
    const int n = 6;
    std::vector<size_t> sizes(n, kSize);
    Cache c;
    tai_cache_config cfg = Config(&l, n * kSize, TAI_CACHE_BELADY, 0);
    ASSERT_EQ(tai_cache_create(&cfg, n, sizes.data(), &c.c), TINYAI_OK);
    l.CloseGate();
    ASSERT_EQ(tai_cache_prefetch(c, 0), TINYAI_OK);
    while (l.Order().empty()) usleep(100);  // the only loader holds 0 at the gate
    ASSERT_EQ(tai_cache_prefetch(c, 1), TINYAI_OK);
    ASSERT_EQ(tai_cache_prefetch(c, 2), TINYAI_OK);
    ASSERT_EQ(tai_cache_prefetch(c, 3), TINYAI_OK);
    std::thread a([&] { Use(c, 4, kSize); });  // demand: goes first
    while (Stats(c).misses < 1) usleep(100);
    std::thread b([&] { Use(c, 3, kSize); });  // waited for: promoted behind 4
    while (Stats(c).misses < 2) usleep(100);
    l.OpenGate();
    a.join();
    b.join();
    WaitIdle(c, n);
    EXPECT_EQ(l.Order(), (std::vector<int>{0, 4, 3, 1, 2}));
    EXPECT_EQ(Stats(c).prefetches, 4u);
    EXPECT_EQ(Stats(c).loads, 5u);
}

}  // namespace
