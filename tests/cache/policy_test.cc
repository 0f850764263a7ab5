// The pure eviction helper (runtime/cache/policy.h): next use from the
// schedule index against a linear scan, on cyclic and non-cyclic schedules,
// and the victim order.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "runtime/cache/policy.h"

namespace {

// The first unwrapped position after `after` where entry e occurs, by walking
// the (unrolled) schedule: the oracle for tai_sched_next.
int64_t NextByScan(const std::vector<int> &order, bool cyclic, int e, int64_t after) {
    int64_t len = (int64_t)order.size();
    int64_t end = cyclic ? after + 1 + len : len;
    for (int64_t q = after + 1; q < end; q++)
        if (q >= 0 && order[(size_t)(q % len)] == e) return q;
    return TAI_SCHED_NEVER;
}

TEST(Sched, NextUseMatchesScan) {
    std::mt19937 rng(7);
    for (int iter = 0; iter < 300; iter++) {
        int n = 1 + (int)(rng() % 6);
        int len = 1 + (int)(rng() % 15);
        bool cyclic = rng() % 2;
        std::vector<int> order((size_t)len);
        for (int &o : order) o = (int)(rng() % (unsigned)n);
        tai_sched s;
        ASSERT_EQ(tai_sched_build(&s, n, order.data(), len, cyclic), TINYAI_OK);
        for (int e = 0; e < n; e++) {
            for (int64_t after = -1; after < 3 * len; after++) {
                int64_t want = cyclic || after < len ? NextByScan(order, cyclic, e, after)
                                                     : TAI_SCHED_NEVER;
                ASSERT_EQ(tai_sched_next(&s, e, after), want)
                    << "entry " << e << " after " << after << " cyclic " << cyclic;
            }
            EXPECT_EQ(tai_sched_next(&s, e, TAI_SCHED_NEVER), TAI_SCHED_NEVER);
        }
        tai_sched_free(&s);
    }
}

TEST(Sched, Examples) {
    const int order[] = {0, 1, 2, 1, 0};
    tai_sched s;
    ASSERT_EQ(tai_sched_build(&s, 4, order, 5, true), TINYAI_OK);
    EXPECT_EQ(tai_sched_next(&s, 1, -1), 1);
    EXPECT_EQ(tai_sched_next(&s, 1, 1), 3);
    EXPECT_EQ(tai_sched_next(&s, 1, 3), 6);  // next cycle
    EXPECT_EQ(tai_sched_next(&s, 0, 4), 5);
    EXPECT_EQ(tai_sched_next(&s, 3, -1), TAI_SCHED_NEVER);  // not in the schedule
    tai_sched_free(&s);
    ASSERT_EQ(tai_sched_build(&s, 4, order, 5, false), TINYAI_OK);
    EXPECT_EQ(tai_sched_next(&s, 1, 3), TAI_SCHED_NEVER);
    EXPECT_EQ(tai_sched_next(&s, 0, 0), 4);
    tai_sched_free(&s);
}

TEST(Sched, RejectsBadEntries) {
    const int order[] = {0, 5, 1};
    tai_sched s;
    EXPECT_EQ(tai_sched_build(&s, 3, order, 3, false), TINYAI_ERR_INVALID_ARG);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("position 1"), std::string::npos)
        << tinyaiLastErrorMessage();
    tai_sched_free(&s);  // left empty: freeing is safe
    EXPECT_EQ(tai_sched_build(&s, 3, nullptr, 3, false), TINYAI_ERR_INVALID_ARG);
    ASSERT_EQ(tai_sched_build(&s, 3, nullptr, 0, false), TINYAI_OK);  // no schedule
    EXPECT_EQ(tai_sched_next(&s, 0, -1), TAI_SCHED_NEVER);
    tai_sched_free(&s);
}

tai_victim_key Key(float prio, int64_t next, uint64_t tick, size_t size, int index) {
    tai_victim_key k;
    k.priority = prio;
    k.next = next;
    k.tick = tick;
    k.size = size;
    k.index = index;
    return k;
}

TEST(Victim, Order) {
    // Lower priority first, whatever the policy says.
    tai_victim_key lo = Key(0.5f, 1, 100, 1, 3), hi = Key(1.0f, 50, 1, 1, 0);
    EXPECT_TRUE(tai_victim_before(TAI_CACHE_BELADY, &lo, &hi));
    EXPECT_TRUE(tai_victim_before(TAI_CACHE_LRU, &lo, &hi));
    // Belady: further next use; then larger; then lower index.
    tai_victim_key far = Key(1, 9, 0, 1, 2), near = Key(1, 3, 0, 1, 1);
    EXPECT_TRUE(tai_victim_before(TAI_CACHE_BELADY, &far, &near));
    EXPECT_FALSE(tai_victim_before(TAI_CACHE_BELADY, &near, &far));
    tai_victim_key never_big = Key(1, TAI_SCHED_NEVER, 0, 4, 5);
    tai_victim_key never_small = Key(1, TAI_SCHED_NEVER, 0, 2, 1);
    EXPECT_TRUE(tai_victim_before(TAI_CACHE_BELADY, &never_big, &never_small));
    tai_victim_key never_small2 = Key(1, TAI_SCHED_NEVER, 0, 2, 4);
    EXPECT_TRUE(tai_victim_before(TAI_CACHE_BELADY, &never_small, &never_small2));
    // LRU: older tick first.
    tai_victim_key old = Key(1, 0, 3, 1, 9), young = Key(1, 0, 8, 1, 0);
    EXPECT_TRUE(tai_victim_before(TAI_CACHE_LRU, &old, &young));
    EXPECT_FALSE(tai_victim_before(TAI_CACHE_LRU, &young, &old));
}

}  // namespace
