// Eviction by policy, demand loads only: Belady with a schedule misses
// exactly as often as the best possible choice of victims (found by brute
// force), on random schedules and on the cyclic access of decoding, where
// LRU misses every access.
#include <gtest/gtest.h>

#include <random>
#include <utility>
#include <vector>

#include "tests/cache/cache_test_util.h"

namespace {

using tai_test::Cache;
using tai_test::Config;
using tai_test::Loader;
using tai_test::OptimalMisses;
using tai_test::Stats;
using tai_test::Use;

constexpr size_t kSize = 4096;

TEST(Belady, MatchesBruteForceOptimum) {
    std::mt19937 rng(12345);
    Loader loader;
    for (int iter = 0; iter < 150; iter++) {
        int n = 4 + (int)(rng() % 4);            // 4..7 entries
        int k = 2 + (int)(rng() % 3);            // 2..4 slots
        int len = 12 + (int)(rng() % 9);         // 12..20 accesses
        std::vector<int> seq((size_t)len);
        for (int &s : seq) s = (int)(rng() % (unsigned)n);
        std::vector<size_t> sizes((size_t)n, kSize);

        Cache c;
        tai_cache_config cfg = Config(&loader, (size_t)k * kSize, TAI_CACHE_BELADY, 0);
        ASSERT_EQ(tai_cache_create(&cfg, n, sizes.data(), &c.c), TINYAI_OK)
            << tinyaiLastErrorMessage();
        ASSERT_EQ(tai_cache_set_schedule(c, seq.data(), len, false), TINYAI_OK);
        for (int e : seq) Use(c, e, kSize);

        int best = OptimalMisses(seq, k).Solve();
        tai_cache_stats st = Stats(c);
        ASSERT_EQ(st.misses, (uint64_t)best) << "iteration " << iter << ": n " << n << " k " << k;
        EXPECT_EQ(st.loads, st.misses);
        EXPECT_EQ(st.hits + st.misses, (uint64_t)len);
        EXPECT_EQ(st.bytes_read, st.loads * kSize);
        EXPECT_LE(st.peak_used, (size_t)k * kSize);
    }
}

// The optimum differs from LRU on these, so the test above can tell the two
// apart; checks the brute force too.
TEST(Belady, BruteForceSeparatesPolicies) {
    std::vector<int> seq = {0, 1, 2, 0, 1, 2, 0, 1, 2};
    EXPECT_EQ(OptimalMisses(seq, 2).Solve(), 6);  // LRU would miss all 9

    Loader loader;
    std::vector<size_t> sizes(3, kSize);
    Cache c;
    tai_cache_config cfg = Config(&loader, 2 * kSize, TAI_CACHE_LRU, 0);
    ASSERT_EQ(tai_cache_create(&cfg, 3, sizes.data(), &c.c), TINYAI_OK);
    ASSERT_EQ(tai_cache_set_schedule(c, seq.data(), (int)seq.size(), false), TINYAI_OK);
    for (int e : seq) Use(c, e, kSize);
    EXPECT_EQ(Stats(c).misses, 9u);
}

struct CyclicResult {
    std::vector<uint64_t> misses_per_cycle;
    uint64_t bytes_read;
};

CyclicResult RunCyclic(tai_cache_policy policy, int n, int k, int cycles) {
    Loader loader;
    std::vector<size_t> sizes((size_t)n, 3 * kSize);
    std::vector<int> order((size_t)n);
    for (int i = 0; i < n; i++) order[(size_t)i] = i;
    Cache c;
    tai_cache_config cfg = Config(&loader, (size_t)k * 3 * kSize, policy, 0);
    CyclicResult r{};
    EXPECT_EQ(tai_cache_create(&cfg, n, sizes.data(), &c.c), TINYAI_OK);
    if (!c.c) return r;
    EXPECT_EQ(tai_cache_set_schedule(c, order.data(), n, true), TINYAI_OK);
    uint64_t before = 0;
    for (int cycle = 0; cycle < cycles; cycle++) {
        for (int e = 0; e < n; e++) Use(c, e, 3 * kSize);
        uint64_t m = Stats(c).misses;
        r.misses_per_cycle.push_back(m - before);
        before = m;
    }
    r.bytes_read = Stats(c).bytes_read;
    return r;
}

// Cyclic decode, n entries, room for k: Belady misses as few times as the
// optimum over the unrolled sequence, between n - k and n - k + 1 per cycle
// once warm (about n (n - k) / (n - 1) on average: it keeps most of the cache
// across cycles and rotates the rest); LRU evicts exactly the entry needed
// next and misses all n every cycle.
TEST(Belady, CyclicDecode) {
    const int cycles = 7;
    for (auto nk : {std::make_pair(9, 5), std::make_pair(8, 4), std::make_pair(6, 2)}) {
        const int n = nk.first, k = nk.second;
        CyclicResult belady = RunCyclic(TAI_CACHE_BELADY, n, k, cycles);
        ASSERT_EQ(belady.misses_per_cycle.size(), (size_t)cycles);
        std::vector<int> unrolled;
        for (int cycle = 0; cycle < cycles; cycle++)
            for (int e = 0; e < n; e++) unrolled.push_back(e);
        uint64_t total = 0;
        for (uint64_t m : belady.misses_per_cycle) total += m;
        EXPECT_EQ(total, (uint64_t)OptimalMisses(unrolled, k).Solve()) << n << "/" << k;
        EXPECT_EQ(belady.misses_per_cycle[0], (uint64_t)n);  // cold
        for (int cycle = 1; cycle < cycles; cycle++) {
            EXPECT_GE(belady.misses_per_cycle[(size_t)cycle], (uint64_t)(n - k)) << cycle;
            EXPECT_LE(belady.misses_per_cycle[(size_t)cycle], (uint64_t)(n - k + 1)) << cycle;
        }

        CyclicResult lru = RunCyclic(TAI_CACHE_LRU, n, k, cycles);
        for (int cycle = 0; cycle < cycles; cycle++)
            EXPECT_EQ(lru.misses_per_cycle[(size_t)cycle], (uint64_t)n) << "cycle " << cycle;
        EXPECT_LT(belady.bytes_read, lru.bytes_read);
    }
}

// Without a schedule Belady has no future to look at and acts as LRU.
TEST(Belady, NoScheduleIsLru) {
    Loader loader;
    const int n = 4;
    std::vector<size_t> sizes(n, kSize);
    Cache c;
    tai_cache_config cfg = Config(&loader, 3 * kSize, TAI_CACHE_BELADY, 0);
    ASSERT_EQ(tai_cache_create(&cfg, n, sizes.data(), &c.c), TINYAI_OK);
    for (int round = 0; round < 3; round++)
        for (int e = 0; e < n; e++) Use(c, e, kSize);
    EXPECT_EQ(Stats(c).misses, 12u);
}

// Among entries never used again, the larger goes first.
TEST(Belady, TieBreaksByLargerSize) {
    Loader loader;
    std::vector<size_t> sizes = {kSize, 2 * kSize, kSize, 2 * kSize};
    const int order[] = {0, 1, 2, 3};
    Cache c;
    tai_cache_config cfg = Config(&loader, 4 * kSize, TAI_CACHE_BELADY, 0);
    ASSERT_EQ(tai_cache_create(&cfg, 4, sizes.data(), &c.c), TINYAI_OK);
    ASSERT_EQ(tai_cache_set_schedule(c, order, 4, false), TINYAI_OK);
    Use(c, 0, sizes[0]);
    Use(c, 1, sizes[1]);
    Use(c, 2, sizes[2]);  // full now: 1 + 2 + 1 granules
    Use(c, 3, sizes[3]);  // 0 and 1 are both never used again: 1 (larger) goes
    EXPECT_EQ(tai_test::Info(c, 0).state, TAI_ENTRY_RESIDENT);
    EXPECT_EQ(tai_test::Info(c, 1).state, TAI_ENTRY_ABSENT);
    EXPECT_EQ(Stats(c).evictions, 1u);
}

}  // namespace
