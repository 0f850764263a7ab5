// Errors and edge cases: budgets below the minimum, bad configurations,
// entries out of range, double release, NOMEM when everything is in use, a
// loader that fails (the acquire gets its status and message; a later one
// succeeds), destroy with prefetches in flight (nothing leaked or touched
// after free: run with --config=asan), the allocator and on_arena callbacks,
// empty entries, explicit eviction, large granules.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <atomic>
#include <string>
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

constexpr size_t kSize = 4096;

bool Contains(const std::string &s, const std::string &part) {
    return s.find(part) != std::string::npos;
}

TEST(Errors, MinBudget) {
    const size_t sizes[] = {5000, 10000, 0};
    EXPECT_EQ(tai_cache_min_budget(sizes, 3, 4096), 12288u);
    EXPECT_EQ(tai_cache_min_budget(sizes, 3, 0), 12288u);
    EXPECT_EQ(tai_cache_min_budget(sizes, 3, 65536), 65536u);
    const size_t empty[] = {0, 0};
    EXPECT_EQ(tai_cache_min_budget(empty, 2, 4096), 4096u);  // one granule at least
    EXPECT_EQ(tai_cache_min_budget(sizes, 3, 12288), SIZE_MAX);  // not a power of two
    const size_t huge[] = {SIZE_MAX - 5};
    EXPECT_EQ(tai_cache_min_budget(huge, 1, 4096), SIZE_MAX);
}

TEST(Errors, BudgetBelowMinimumStatesIt) {
    Loader l;
    const size_t sizes[] = {5000, 10000};
    tai_cache_config cfg = Config(&l, 12287, TAI_CACHE_BELADY, 0);
    tai_cache *c = reinterpret_cast<tai_cache *>(1);
    EXPECT_EQ(tai_cache_create(&cfg, 2, sizes, &c), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(c, nullptr);
    std::string msg = tinyaiLastErrorMessage();
    EXPECT_TRUE(Contains(msg, "minimum of 12288 bytes")) << msg;
    cfg.budget = 12288;
    ASSERT_EQ(tai_cache_create(&cfg, 2, sizes, &c), TINYAI_OK) << tinyaiLastErrorMessage();
    EXPECT_EQ(Stats(c).budget, 12288u);
    tai_cache_destroy(c);
    // The budget is rounded down to the granule first.
    cfg.budget = 12288 + 4095;
    ASSERT_EQ(tai_cache_create(&cfg, 2, sizes, &c), TINYAI_OK);
    EXPECT_EQ(Stats(c).budget, 12288u);
    tai_cache_destroy(c);
}

TEST(Errors, BadConfigurations) {
    Loader l;
    const size_t sizes[] = {kSize};
    tai_cache *c = nullptr;
    tai_cache_config cfg = Config(&l, 4 * kSize, TAI_CACHE_BELADY, 0);
    EXPECT_EQ(tai_cache_create(nullptr, 1, sizes, &c), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_cache_create(&cfg, 1, sizes, nullptr), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_cache_create(&cfg, 1, nullptr, &c), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_cache_create(&cfg, -1, sizes, &c), TINYAI_ERR_INVALID_ARG);
    tai_cache_config bad = cfg;
    bad.load = nullptr;
    EXPECT_EQ(tai_cache_create(&bad, 1, sizes, &c), TINYAI_ERR_INVALID_ARG);
    bad = cfg;
    bad.granule = 1000;
    EXPECT_EQ(tai_cache_create(&bad, 1, sizes, &c), TINYAI_ERR_INVALID_ARG);
    EXPECT_TRUE(Contains(tinyaiLastErrorMessage(), "granule 1000")) << tinyaiLastErrorMessage();
    bad.granule = 2048;  // a power of two, but too small for O_DIRECT
    EXPECT_EQ(tai_cache_create(&bad, 1, sizes, &c), TINYAI_ERR_INVALID_ARG);
    bad = cfg;
    bad.loader_threads = 17;
    EXPECT_EQ(tai_cache_create(&bad, 1, sizes, &c), TINYAI_ERR_INVALID_ARG);
    bad.loader_threads = -1;
    EXPECT_EQ(tai_cache_create(&bad, 1, sizes, &c), TINYAI_ERR_INVALID_ARG);
    bad = cfg;
    bad.prefetch_window = -1;
    EXPECT_EQ(tai_cache_create(&bad, 1, sizes, &c), TINYAI_ERR_INVALID_ARG);
    bad = cfg;
    bad.policy = static_cast<tai_cache_policy>(7);
    EXPECT_EQ(tai_cache_create(&bad, 1, sizes, &c), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(c, nullptr);
    tai_cache_destroy(nullptr);  // accepted
}

TEST(Errors, PolicyNames) {
    EXPECT_STREQ(tai_cache_policy_name(TAI_CACHE_BELADY), "belady");
    EXPECT_STREQ(tai_cache_policy_name(TAI_CACHE_LRU), "lru");
    EXPECT_EQ(tai_cache_policy_parse("belady"), TAI_CACHE_BELADY);
    EXPECT_EQ(tai_cache_policy_parse("lru"), TAI_CACHE_LRU);
    EXPECT_EQ(tai_cache_policy_parse("LRU"), -1);
    EXPECT_EQ(tai_cache_policy_parse("fifo"), -1);
    EXPECT_EQ(tai_cache_policy_parse(nullptr), -1);
}

TEST(Errors, EntryOutOfRange) {
    Loader l;
    const size_t sizes[] = {kSize, kSize};
    Cache c;
    tai_cache_config cfg = Config(&l, 2 * kSize, TAI_CACHE_BELADY, 0);
    ASSERT_EQ(tai_cache_create(&cfg, 2, sizes, &c.c), TINYAI_OK);
    for (int bad : {-1, 2, 1000}) {
        void *p = reinterpret_cast<void *>(1);
        EXPECT_EQ(tai_cache_acquire(c, bad, &p), TINYAI_ERR_INVALID_ARG);
        EXPECT_EQ(p, nullptr);
        EXPECT_TRUE(Contains(tinyaiLastErrorMessage(), std::to_string(bad)));
        EXPECT_EQ(tai_cache_release(c, bad), TINYAI_ERR_INVALID_ARG);
        EXPECT_EQ(tai_cache_prefetch(c, bad), TINYAI_ERR_INVALID_ARG);
        EXPECT_EQ(tai_cache_evict(c, bad), TINYAI_ERR_INVALID_ARG);
        EXPECT_EQ(tai_cache_pin(c, bad, true), TINYAI_ERR_INVALID_ARG);
        EXPECT_EQ(tai_cache_set_priority(c, bad, 2.0f), TINYAI_ERR_INVALID_ARG);
        tai_cache_entry_info info;
        EXPECT_EQ(tai_cache_entry(c, bad, &info), TINYAI_ERR_INVALID_ARG);
    }
    const int order[] = {0, 2, 1};
    EXPECT_EQ(tai_cache_set_schedule(c, order, 3, true), TINYAI_ERR_INVALID_ARG);
    EXPECT_TRUE(Contains(tinyaiLastErrorMessage(), "names entry 2")) << tinyaiLastErrorMessage();
    void *p = nullptr;
    EXPECT_EQ(tai_cache_acquire(nullptr, 0, &p), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_cache_acquire(c, 0, nullptr), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(Stats(c).misses, 0u);
}

TEST(Errors, ReleaseTwice) {
    Loader l;
    const size_t sizes[] = {kSize};
    Cache c;
    tai_cache_config cfg = Config(&l, kSize, TAI_CACHE_BELADY, 0);
    ASSERT_EQ(tai_cache_create(&cfg, 1, sizes, &c.c), TINYAI_OK);
    EXPECT_EQ(tai_cache_release(c, 0), TINYAI_ERR_INVALID_ARG);  // never acquired
    void *p = nullptr, *q = nullptr;
    ASSERT_EQ(tai_cache_acquire(c, 0, &p), TINYAI_OK);
    ASSERT_EQ(tai_cache_acquire(c, 0, &q), TINYAI_OK);  // nested: same buffer
    EXPECT_EQ(p, q);
    EXPECT_EQ(Info(c, 0).in_use, 2);
    EXPECT_EQ(tai_cache_release(c, 0), TINYAI_OK);
    EXPECT_EQ(tai_cache_release(c, 0), TINYAI_OK);
    EXPECT_EQ(tai_cache_release(c, 0), TINYAI_ERR_INVALID_ARG);
    EXPECT_TRUE(Contains(tinyaiLastErrorMessage(), "released but not acquired"));
    EXPECT_EQ(Info(c, 0).in_use, 0);
    EXPECT_EQ(Info(c, 0).access_count, 2u);
}

TEST(Errors, NomemWhenEverythingInUse) {
    Loader l;
    const size_t sizes[] = {kSize, 2 * kSize, kSize};
    Cache c;
    tai_cache_config cfg = Config(&l, 3 * kSize, TAI_CACHE_BELADY, 0);
    ASSERT_EQ(tai_cache_create(&cfg, 3, sizes, &c.c), TINYAI_OK);
    void *a = nullptr, *b = nullptr, *x = nullptr;
    ASSERT_EQ(tai_cache_acquire(c, 0, &a), TINYAI_OK);
    ASSERT_EQ(tai_cache_acquire(c, 1, &b), TINYAI_OK);
    EXPECT_EQ(tai_cache_acquire(c, 2, &x), TINYAI_ERR_NOMEM);
    EXPECT_EQ(x, nullptr);
    std::string msg = tinyaiLastErrorMessage();
    EXPECT_TRUE(Contains(msg, "needs 4096 bytes")) << msg;
    EXPECT_TRUE(Contains(msg, "12288 of the 12288-byte budget are held by 2 entries")) << msg;
    EXPECT_EQ(Info(c, 2).state, TAI_ENTRY_ABSENT);
    EXPECT_EQ(tai_cache_evict(c, 1), TINYAI_ERR_RANGE);  // in use
    ASSERT_EQ(tai_cache_release(c, 1), TINYAI_OK);
    ASSERT_EQ(tai_cache_acquire(c, 2, &x), TINYAI_OK) << tinyaiLastErrorMessage();
    EXPECT_TRUE(tai_test::HasPattern(2, x, kSize));
    EXPECT_TRUE(tai_test::HasPattern(0, a, kSize));  // untouched while in use
    EXPECT_EQ(tai_cache_release(c, 2), TINYAI_OK);
    EXPECT_EQ(tai_cache_release(c, 0), TINYAI_OK);
    EXPECT_EQ(tai_cache_check(c), TINYAI_OK) << tinyaiLastErrorMessage();
}

TEST(Errors, FailingLoaderReportsAndRecovers) {
    Loader l;
    const size_t sizes[] = {kSize, kSize, kSize};
    Cache c;
    tai_cache_config cfg = Config(&l, 3 * kSize, TAI_CACHE_BELADY, 0);
    ASSERT_EQ(tai_cache_create(&cfg, 3, sizes, &c.c), TINYAI_OK);
    Use(c, 0, kSize);
    l.fail_entry = 2;
    tinyaiClearError();
    void *p = reinterpret_cast<void *>(1);
    EXPECT_EQ(tai_cache_acquire(c, 2, &p), TINYAI_ERR_IO);
    EXPECT_EQ(p, nullptr);
    // The loader thread's message, copied to this thread.
    EXPECT_STREQ(tinyaiLastErrorMessage(), "test loader refuses entry 2");
    tai_cache_stats st = Stats(c);
    EXPECT_EQ(st.load_errors, 1u);
    EXPECT_EQ(st.used, kSize);  // its room was given back
    EXPECT_EQ(Info(c, 2).state, TAI_ENTRY_ABSENT);
    EXPECT_EQ(Info(c, 2).in_use, 0);
    EXPECT_EQ(tai_cache_release(c, 2), TINYAI_ERR_INVALID_ARG);
    // Fails again while the loader does; then works.
    EXPECT_EQ(tai_cache_acquire(c, 2, &p), TINYAI_ERR_IO);
    l.fail_entry = -1;
    EXPECT_FALSE(Use(c, 2, kSize));  // a miss that loads
    EXPECT_EQ(Stats(c).load_errors, 2u);
    EXPECT_EQ(Info(c, 2).loads, 1u);
    EXPECT_EQ(tai_cache_check(c), TINYAI_OK) << tinyaiLastErrorMessage();
}

// A prefetch that fails leaves the entry absent; an acquire waiting on a
// failing load in flight gets the error.
TEST(Errors, FailingPrefetch) {
    Loader l;
    const size_t sizes[] = {kSize, kSize};
    Cache c;
    tai_cache_config cfg = Config(&l, 2 * kSize, TAI_CACHE_BELADY, 0);
    ASSERT_EQ(tai_cache_create(&cfg, 2, sizes, &c.c), TINYAI_OK);
    l.fail_entry = 1;
    ASSERT_EQ(tai_cache_prefetch(c, 1), TINYAI_OK);
    WaitIdle(c, 2);
    EXPECT_EQ(Info(c, 1).state, TAI_ENTRY_ABSENT);
    EXPECT_EQ(Stats(c).load_errors, 1u);
    EXPECT_EQ(Stats(c).used, 0u);

    l.CloseGate();
    ASSERT_EQ(tai_cache_prefetch(c, 1), TINYAI_OK);
    std::atomic<TinyAIStatus> got{TINYAI_OK};
    std::string msg;
    std::thread t([&] {
        void *p = nullptr;
        got = tai_cache_acquire(c, 1, &p);
        msg = tinyaiLastErrorMessage();
    });
    while (Stats(c).misses < 1) usleep(100);  // waiting on the prefetch in flight
    l.OpenGate();
    t.join();
    EXPECT_EQ(got.load(), TINYAI_ERR_IO);
    EXPECT_EQ(msg, "test loader refuses entry 1");
    l.fail_entry = -1;
    EXPECT_FALSE(Use(c, 1, kSize));
    EXPECT_TRUE(Use(c, 1, kSize));
}

struct TrackingAllocator {
    std::atomic<int> allocs{0}, frees{0}, arenas{0};
    void *last = nullptr;
    size_t last_size = 0;
    void *arena = nullptr;
    size_t arena_size = 0;

    static void *Alloc(void *ctx, size_t size) {
        TrackingAllocator *a = static_cast<TrackingAllocator *>(ctx);
        a->allocs++;
        a->last = aligned_alloc(4096, (size + 4095) / 4096 * 4096);
        a->last_size = size;
        return a->last;
    }
    static void Free(void *ctx, void *p, size_t size) {
        TrackingAllocator *a = static_cast<TrackingAllocator *>(ctx);
        EXPECT_EQ(p, a->last);
        EXPECT_EQ(size, a->last_size);
        a->frees++;
        free(p);
    }
    static void OnArena(void *ctx, void *base, size_t size) {
        TrackingAllocator *a = static_cast<TrackingAllocator *>(ctx);
        a->arenas++;
        a->arena = base;
        a->arena_size = size;
    }
};

// The arena comes from malloc here, so ASan would report a loader writing
// into it after destroy returned, and any leak.
TEST(Errors, DestroyWithPrefetchesInFlight) {
    for (int threads : {1, 3}) {
        Loader l;
        l.sleep_us = 20000;
        TrackingAllocator alloc;
        const int n = 8;
        std::vector<size_t> sizes(n, 3 * kSize);
        std::vector<int> order = {0, 1, 2, 3, 4, 5, 6, 7};
        tai_cache_config cfg = Config(&l, n * 3 * kSize, TAI_CACHE_BELADY, 6);
        cfg.loader_threads = threads;
        cfg.allocator.alloc = TrackingAllocator::Alloc;
        cfg.allocator.free = TrackingAllocator::Free;
        cfg.allocator.ctx = &alloc;
        cfg.on_arena = TrackingAllocator::OnArena;
        cfg.on_arena_ctx = &alloc;
        tai_cache *c = nullptr;
        ASSERT_EQ(tai_cache_create(&cfg, n, sizes.data(), &c), TINYAI_OK);
        EXPECT_EQ(alloc.allocs, 1);
        EXPECT_EQ(alloc.arenas, 1);
        void *base = nullptr;
        size_t size = 0;
        tai_cache_arena(c, &base, &size);
        EXPECT_EQ(base, alloc.arena);
        EXPECT_EQ(size, alloc.arena_size);
        EXPECT_EQ(size, (size_t)n * 3 * kSize);
        ASSERT_EQ(tai_cache_set_schedule(c, order.data(), n, true), TINYAI_OK);
        Use(c, 0, 3 * kSize);  // starts 6 prefetches
        EXPECT_EQ(Stats(c).prefetches, 6u);
        tai_cache_destroy(c);  // while they sleep in the loader
        EXPECT_EQ(alloc.frees, 1);
        EXPECT_LE(l.calls.load(), 1 + 6);
    }
}

TEST(Errors, EmptyEntries) {
    Loader l;
    const size_t sizes[] = {0, kSize, 0};
    Cache c;
    tai_cache_config cfg = Config(&l, kSize, TAI_CACHE_BELADY, 0);
    ASSERT_EQ(tai_cache_create(&cfg, 3, sizes, &c.c), TINYAI_OK);
    void *base = nullptr;
    size_t bytes = 0;
    tai_cache_arena(c, &base, &bytes);
    for (int e : {0, 2}) {
        EXPECT_EQ(Info(c, e).state, TAI_ENTRY_RESIDENT);
        void *p = nullptr;
        ASSERT_EQ(tai_cache_acquire(c, e, &p), TINYAI_OK);
        EXPECT_NE(p, nullptr);
        EXPECT_GE(p, base);
        EXPECT_LE(p, static_cast<char *>(base) + bytes);
        EXPECT_EQ(tai_cache_evict(c, e), TINYAI_OK);  // nothing to drop
        EXPECT_EQ(tai_cache_release(c, e), TINYAI_OK);
    }
    Use(c, 1, kSize);
    Use(c, 0, 0);
    tai_cache_stats st = Stats(c);
    EXPECT_EQ(st.loads, 1u);
    EXPECT_EQ(st.hits, 3u);
    EXPECT_EQ(st.used, kSize);
    EXPECT_EQ(l.calls.load(), 1);
}

TEST(Errors, ExplicitEvict) {
    Loader l;
    const size_t sizes[] = {kSize, kSize};
    Cache c;
    tai_cache_config cfg = Config(&l, 2 * kSize, TAI_CACHE_BELADY, 0);
    ASSERT_EQ(tai_cache_create(&cfg, 2, sizes, &c.c), TINYAI_OK);
    EXPECT_EQ(tai_cache_evict(c, 0), TINYAI_OK);  // absent: nothing to do
    Use(c, 0, kSize);
    EXPECT_EQ(tai_cache_evict(c, 0), TINYAI_OK);
    EXPECT_EQ(Info(c, 0).state, TAI_ENTRY_ABSENT);
    EXPECT_EQ(Info(c, 0).ptr, nullptr);
    EXPECT_EQ(Stats(c).used, 0u);
    EXPECT_EQ(Stats(c).evictions, 1u);
    // A load in flight is waited for, then dropped.
    l.sleep_us = 20000;
    ASSERT_EQ(tai_cache_prefetch(c, 1), TINYAI_OK);
    EXPECT_EQ(tai_cache_evict(c, 1), TINYAI_OK);
    EXPECT_EQ(Info(c, 1).state, TAI_ENTRY_ABSENT);
    EXPECT_EQ(Info(c, 1).loads, 1u);
    ASSERT_EQ(tai_cache_pin(c, 1, true), TINYAI_OK);
    EXPECT_EQ(tai_cache_evict(c, 1), TINYAI_ERR_RANGE);
    EXPECT_TRUE(Contains(tinyaiLastErrorMessage(), "pinned"));
    tai_cache_reset_stats(c);
    tai_cache_stats st = Stats(c);
    EXPECT_EQ(st.loads, 0u);
    EXPECT_EQ(st.used, kSize);
    EXPECT_EQ(st.peak_used, kSize);
}

TEST(Errors, LargeGranuleAlignsBuffers) {
    Loader l;
    const size_t granule = 64 * 1024;
    const size_t sizes[] = {1000, 70000, 65536};
    Cache c;
    tai_cache_config cfg = Config(&l, 4 * granule, TAI_CACHE_BELADY, 0);
    cfg.granule = granule;
    ASSERT_EQ(tai_cache_create(&cfg, 3, sizes, &c.c), TINYAI_OK) << tinyaiLastErrorMessage();
    void *base = nullptr;
    tai_cache_arena(c, &base, nullptr);
    EXPECT_EQ((uintptr_t)base % granule, 0u);
    for (int e = 0; e < 3; e++) {
        void *p = nullptr;
        ASSERT_EQ(tai_cache_acquire(c, e, &p), TINYAI_OK);
        EXPECT_EQ((uintptr_t)p % granule, 0u);
        EXPECT_TRUE(tai_test::HasPattern(e, p, sizes[e]));
    }
    EXPECT_EQ(Stats(c).used, 4 * granule);  // 1 + 2 + 1 granules
    for (int e = 0; e < 3; e++) EXPECT_EQ(tai_cache_release(c, e), TINYAI_OK);
    EXPECT_EQ(tai_cache_check(c), TINYAI_OK) << tinyaiLastErrorMessage();
}

}  // namespace
