// Priorities and pinning: a higher priority keeps an entry that Belady alone
// would evict, a lower one gives it up first, reset restores plain Belady;
// pinned entries are never evicted, and pinning more than fits fails with
// NOMEM and changes nothing.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/cache/cache_test_util.h"

namespace {

using tai_test::Cache;
using tai_test::Config;
using tai_test::Info;
using tai_test::Loader;
using tai_test::Stats;
using tai_test::Use;

constexpr size_t kSize = 8192;

// Three entries, room for two, cyclic schedule 0 1 2.
void MakeThree(Cache *c, Loader *l) {
    std::vector<size_t> sizes(3, kSize);
    const int order[] = {0, 1, 2};
    tai_cache_config cfg = Config(l, 2 * kSize, TAI_CACHE_BELADY, 0);
    ASSERT_EQ(tai_cache_create(&cfg, 3, sizes.data(), &c->c), TINYAI_OK);
    ASSERT_EQ(tai_cache_set_schedule(*c, order, 3, true), TINYAI_OK);
}

TEST(Priority, PlainBeladyEvictsFurthest) {
    Loader l;
    Cache c;
    MakeThree(&c, &l);
    Use(c, 0, kSize);
    Use(c, 1, kSize);
    Use(c, 2, kSize);  // at position 2: 0 is next, 1 after it
    EXPECT_EQ(Info(c, 0).state, TAI_ENTRY_RESIDENT);
    EXPECT_EQ(Info(c, 1).state, TAI_ENTRY_ABSENT);
}

TEST(Priority, HigherPriorityKeepsEntryAndResetRestores) {
    Loader l;
    Cache c;
    MakeThree(&c, &l);
    ASSERT_EQ(tai_cache_set_priority(c, 1, 2.0f), TINYAI_OK);
    EXPECT_FLOAT_EQ(Info(c, 1).priority, 2.0f);
    Use(c, 0, kSize);
    Use(c, 1, kSize);
    Use(c, 2, kSize);  // Belady would evict 1; its priority keeps it
    EXPECT_EQ(Info(c, 0).state, TAI_ENTRY_ABSENT);
    EXPECT_EQ(Info(c, 1).state, TAI_ENTRY_RESIDENT);

    tai_cache_reset_priorities(c);
    EXPECT_FLOAT_EQ(Info(c, 1).priority, 1.0f);
    Use(c, 0, kSize);  // evicts 2 (used after 1)
    Use(c, 1, kSize);
    Use(c, 2, kSize);  // the same decision as the first cycle: now 1 goes
    EXPECT_EQ(Info(c, 0).state, TAI_ENTRY_RESIDENT);
    EXPECT_EQ(Info(c, 1).state, TAI_ENTRY_ABSENT);
}

TEST(Priority, LowerPriorityGoesFirst) {
    Loader l;
    Cache c;
    MakeThree(&c, &l);
    ASSERT_EQ(tai_cache_set_priority(c, 0, 0.25f), TINYAI_OK);
    Use(c, 0, kSize);
    Use(c, 1, kSize);
    Use(c, 2, kSize);  // 0 is needed next, but its class goes first
    EXPECT_EQ(Info(c, 0).state, TAI_ENTRY_ABSENT);
    EXPECT_EQ(Info(c, 1).state, TAI_ENTRY_RESIDENT);
}

TEST(Priority, RejectsNonFinite) {
    Loader l;
    Cache c;
    MakeThree(&c, &l);
    EXPECT_EQ(tai_cache_set_priority(c, 0, NAN), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_cache_set_priority(c, 0, INFINITY), TINYAI_ERR_INVALID_ARG);
    EXPECT_FLOAT_EQ(Info(c, 0).priority, 1.0f);
}

TEST(Pin, PinnedEntryIsNeverEvicted) {
    Loader l;
    const int n = 6;
    std::vector<size_t> sizes(n, kSize);
    std::vector<int> order = {0, 1, 2, 3, 4, 5};
    Cache c;
    tai_cache_config cfg = Config(&l, 3 * kSize, TAI_CACHE_BELADY, 0);
    ASSERT_EQ(tai_cache_create(&cfg, n, sizes.data(), &c.c), TINYAI_OK);
    ASSERT_EQ(tai_cache_set_schedule(c, order.data(), n, true), TINYAI_OK);
    ASSERT_EQ(tai_cache_pin(c, 4, true), TINYAI_OK);
    tai_cache_entry_info info = Info(c, 4);
    EXPECT_TRUE(info.pinned);
    ASSERT_EQ(info.state, TAI_ENTRY_RESIDENT);  // pin loads it now
    ASSERT_TRUE(info.ptr != nullptr);
    EXPECT_TRUE(tai_test::HasPattern(4, info.ptr, kSize));
    for (int cycle = 0; cycle < 5; cycle++) {
        for (int e : order) {
            Use(c, e, kSize);
            ASSERT_EQ(Info(c, 4).state, TAI_ENTRY_RESIDENT);
        }
    }
    EXPECT_EQ(Info(c, 4).loads, 1u);
    EXPECT_EQ(tai_cache_evict(c, 4), TINYAI_ERR_RANGE);
    EXPECT_EQ(tai_cache_check(c), TINYAI_OK) << tinyaiLastErrorMessage();
    // Unpinned, it is an entry like the others again.
    ASSERT_EQ(tai_cache_pin(c, 4, false), TINYAI_OK);
    EXPECT_FALSE(Info(c, 4).pinned);
    EXPECT_EQ(tai_cache_evict(c, 4), TINYAI_OK);
    EXPECT_EQ(Info(c, 4).state, TAI_ENTRY_ABSENT);
}

TEST(Pin, BeyondCapacityFailsAndChangesNothing) {
    Loader l;
    const int n = 5;
    std::vector<size_t> sizes(n, kSize);
    Cache c;
    tai_cache_config cfg = Config(&l, 3 * kSize, TAI_CACHE_BELADY, 0);
    ASSERT_EQ(tai_cache_create(&cfg, n, sizes.data(), &c.c), TINYAI_OK);
    Use(c, 3, kSize);  // resident, unpinned: pinning may evict it
    for (int e = 0; e < 3; e++) ASSERT_EQ(tai_cache_pin(c, e, true), TINYAI_OK) << e;
    EXPECT_EQ(Info(c, 3).state, TAI_ENTRY_ABSENT);

    tai_cache_stats before = Stats(c);
    EXPECT_EQ(tai_cache_pin(c, 4, true), TINYAI_ERR_NOMEM);
    std::string msg = tinyaiLastErrorMessage();
    EXPECT_NE(msg.find("needs " + std::to_string(kSize) + " bytes"), std::string::npos) << msg;
    EXPECT_NE(msg.find("held by 3 entries"), std::string::npos) << msg;
    tai_cache_stats after = Stats(c);
    EXPECT_FALSE(Info(c, 4).pinned);
    EXPECT_EQ(Info(c, 4).state, TAI_ENTRY_ABSENT);
    for (int e = 0; e < 3; e++) {
        EXPECT_TRUE(Info(c, e).pinned);
        EXPECT_EQ(Info(c, e).state, TAI_ENTRY_RESIDENT);
    }
    EXPECT_EQ(after.used, before.used);
    EXPECT_EQ(after.evictions, before.evictions);
    EXPECT_EQ(after.loads, before.loads);
    // Acquiring fails the same way while everything is pinned ...
    void *p = nullptr;
    EXPECT_EQ(tai_cache_acquire(c, 4, &p), TINYAI_ERR_NOMEM);
    EXPECT_EQ(p, nullptr);
    // ... and works once a pin is dropped.
    ASSERT_EQ(tai_cache_pin(c, 1, false), TINYAI_OK);
    Use(c, 4, kSize);
    EXPECT_EQ(Info(c, 1).state, TAI_ENTRY_ABSENT);
    EXPECT_EQ(tai_cache_check(c), TINYAI_OK) << tinyaiLastErrorMessage();
}

// Pinning an entry larger than any free range evicts unpinned entries to
// make room, in policy order, and leaves pinned ones alone.
TEST(Pin, EvictsOnlyUnpinned) {
    Loader l;
    std::vector<size_t> sizes = {kSize, kSize, kSize, 2 * kSize};
    Cache c;
    tai_cache_config cfg = Config(&l, 3 * kSize, TAI_CACHE_LRU, 0);
    ASSERT_EQ(tai_cache_create(&cfg, 4, sizes.data(), &c.c), TINYAI_OK);
    Use(c, 0, kSize);                                 // first fit: the first third
    ASSERT_EQ(tai_cache_pin(c, 1, true), TINYAI_OK);  // the middle third
    Use(c, 2, kSize);
    void *base = nullptr;
    tai_cache_arena(c, &base, nullptr);
    ASSERT_EQ(Info(c, 1).ptr, static_cast<char *>(base) + kSize);
    // 3 needs two adjacent granule pairs: not possible with 1 pinned in the
    // middle, whatever is evicted.
    EXPECT_EQ(tai_cache_pin(c, 3, true), TINYAI_ERR_NOMEM);
    EXPECT_EQ(Info(c, 0).state, TAI_ENTRY_RESIDENT);  // nothing evicted in vain
    EXPECT_EQ(Info(c, 2).state, TAI_ENTRY_RESIDENT);
    ASSERT_EQ(tai_cache_pin(c, 1, false), TINYAI_OK);
    ASSERT_EQ(tai_cache_pin(c, 0, true), TINYAI_OK);
    // Now 1 and 2 (adjacent) can go for 3.
    ASSERT_EQ(tai_cache_pin(c, 3, true), TINYAI_OK) << tinyaiLastErrorMessage();
    EXPECT_EQ(Info(c, 0).state, TAI_ENTRY_RESIDENT);
    EXPECT_EQ(Info(c, 1).state, TAI_ENTRY_ABSENT);
    EXPECT_EQ(Info(c, 2).state, TAI_ENTRY_ABSENT);
    EXPECT_TRUE(tai_test::HasPattern(3, Info(c, 3).ptr, 2 * kSize));
    EXPECT_EQ(tai_cache_check(c), TINYAI_OK) << tinyaiLastErrorMessage();
}

}  // namespace
