// The budget as a contract under concurrency: four threads acquire, release,
// prefetch, evict, pin and reprioritise at random while loaders sleep for
// random short times and sometimes fail. After every step: `used` stays
// within the budget, every resident buffer lies inside the arena, aligned to
// the granule, and no two overlap (checked here from a snapshot, and by
// tai_cache_check over loading entries and the free list too); every buffer
// a thread holds keeps its entry's pattern until it is released. Also run
// with --config=tsan.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/cache/cache_test_util.h"

namespace {

using tai_test::Cache;
using tai_test::Config;
using tai_test::HasPattern;
using tai_test::Loader;
using tai_test::Stats;

constexpr size_t kGranule = 4096;

size_t RoundUp(size_t v) { return (v + kGranule - 1) / kGranule * kGranule; }

// Returns an empty string when the state is sound, else what is wrong.
std::string CheckState(const tai_cache *c, const std::vector<size_t> &sizes) {
    const int n = (int)sizes.size();
    std::vector<tai_cache_entry_info> infos((size_t)n);
    tai_cache_stats st;
    tai_cache_snapshot(c, infos.data(), &st);
    void *base_v = nullptr;
    size_t bytes = 0;
    tai_cache_arena(c, &base_v, &bytes);
    const char *base = static_cast<const char *>(base_v);
    if (st.budget != bytes) return "budget differs from the arena";
    if (st.used > st.budget) return "used " + std::to_string(st.used) + " over budget";
    if (st.peak_used > st.budget) return "peak over budget";
    std::vector<std::pair<const char *, size_t>> bufs;
    size_t resident = 0;
    for (int i = 0; i < n; i++) {
        const tai_cache_entry_info &in = infos[(size_t)i];
        if (in.state != TAI_ENTRY_RESIDENT) {
            if (in.ptr) return "entry " + std::to_string(i) + " not resident but has a buffer";
            if (in.in_use > 0 || in.pinned)
                return "entry " + std::to_string(i) + " in use or pinned but not resident";
            continue;
        }
        const char *p = static_cast<const char *>(in.ptr);
        size_t len = RoundUp(sizes[(size_t)i]);
        if (!p || p < base || p + len > base + bytes)
            return "entry " + std::to_string(i) + " outside the arena";
        if ((uintptr_t)p % kGranule != 0) return "entry " + std::to_string(i) + " misaligned";
        if (len) bufs.emplace_back(p, len);
        resident += len;
    }
    std::sort(bufs.begin(), bufs.end());
    for (size_t k = 1; k < bufs.size(); k++)
        if (bufs[k - 1].first + bufs[k - 1].second > bufs[k].first) return "buffers overlap";
    if (resident > st.used) return "resident buffers exceed used";
    if (tai_cache_check(c) != TINYAI_OK) return tinyaiLastErrorMessage();
    return "";
}

struct Mode {
    tai_cache_policy policy;
    bool aggressive;
    int window;
};

class Stress : public ::testing::TestWithParam<Mode> {};

TEST_P(Stress, BudgetAndBuffersHold) {
    const Mode mode = GetParam();
    Loader loader;
    loader.max_random_sleep_us = 150;
    loader.fail_per_mille = 20;
    const std::vector<size_t> sizes = {4096,  3 * 4096, 5000, 2 * 4096 + 1, 0,    4 * 4096,
                                       4096,  100,      7000, 3 * 4096,     4096, 2 * 4096};
    const int n = (int)sizes.size();
    Cache c;
    tai_cache_config cfg = Config(&loader, 14 * kGranule + 123, mode.policy, mode.window);
    cfg.aggressive_prefetch = mode.aggressive;
    cfg.loader_threads = 3;
    ASSERT_EQ(tai_cache_create(&cfg, n, sizes.data(), &c.c), TINYAI_OK)
        << tinyaiLastErrorMessage();
    std::vector<int> order;
    for (int rep = 0; rep < 2; rep++)
        for (int i = 0; i < n; i++) order.push_back((i * 5 + rep) % n);
    ASSERT_EQ(tai_cache_set_schedule(c, order.data(), (int)order.size(), true), TINYAI_OK);

    const int kThreads = 4, kOps = 3000;
    std::atomic<uint64_t> acquires{0};
    std::atomic<bool> failed{false};
    auto fail = [&](const std::string &what) {
        if (!failed.exchange(true)) ADD_FAILURE() << what;
    };
    auto worker = [&](int t) {
        std::mt19937 rng(1000u + (unsigned)t);
        int held = -1, pinned = -1;
        void *held_ptr = nullptr;
        for (int op = 0; op < kOps && !failed; op++) {
            int r = (int)(rng() % 100);
            int e = (int)(rng() % (unsigned)n);
            if (r < 45) {
                if (held >= 0) {
                    if (!HasPattern(held, held_ptr, sizes[(size_t)held]))
                        fail("entry " + std::to_string(held) + " changed while held");
                    if (tai_cache_release(c, held) != TINYAI_OK) fail("release failed");
                    held = -1;
                    continue;
                }
                // Mostly follow the schedule from a thread-local position.
                if (r < 30) e = order[(size_t)(op + t) % order.size()];
                void *p = nullptr;
                acquires++;
                TinyAIStatus st = tai_cache_acquire(c, e, &p);
                if (st == TINYAI_OK) {
                    if (!p || !HasPattern(e, p, sizes[(size_t)e]))
                        fail("entry " + std::to_string(e) + " acquired with wrong bytes");
                    held = e;
                    held_ptr = p;
                } else if (st != TINYAI_ERR_NOMEM && st != TINYAI_ERR_IO) {
                    fail(std::string("acquire: ") + tinyaiLastErrorMessage());
                } else if (p) {
                    fail("failed acquire returned a buffer");
                }
            } else if (r < 60) {
                TinyAIStatus st = tai_cache_prefetch(c, e);
                if (st != TINYAI_OK && st != TINYAI_ERR_NOMEM)
                    fail(std::string("prefetch: ") + tinyaiLastErrorMessage());
            } else if (r < 72) {
                TinyAIStatus st = tai_cache_evict(c, e);
                if (st != TINYAI_OK && st != TINYAI_ERR_RANGE)
                    fail(std::string("evict: ") + tinyaiLastErrorMessage());
                if (held == e && st != TINYAI_ERR_RANGE && sizes[(size_t)e] > 0)
                    fail("evicted an entry in use");
            } else if (r < 82) {
                const float prio[] = {0.5f, 1.0f, 2.0f};
                if (tai_cache_set_priority(c, e, prio[rng() % 3]) != TINYAI_OK)
                    fail("set_priority failed");
            } else if (r < 84) {
                tai_cache_reset_priorities(c);
            } else if (r < 92 && t == 0) {
                // One pinned entry at most, so that pins cannot starve all.
                if (pinned >= 0) {
                    if (tai_cache_pin(c, pinned, false) != TINYAI_OK) fail("unpin failed");
                    pinned = -1;
                } else {
                    TinyAIStatus st = tai_cache_pin(c, e, true);
                    if (st == TINYAI_OK)
                        pinned = e;
                    else if (st != TINYAI_ERR_NOMEM && st != TINYAI_ERR_IO)
                        fail(std::string("pin: ") + tinyaiLastErrorMessage());
                }
            } else if (r < 94 && t == 1) {
                std::vector<int> o = order;
                std::shuffle(o.begin(), o.end(), rng);
                if (tai_cache_set_schedule(c, o.data(), (int)o.size(), rng() % 2) != TINYAI_OK)
                    fail("set_schedule failed");
            }
            std::string bad = CheckState(c, sizes);
            if (!bad.empty()) fail("after op " + std::to_string(op) + ": " + bad);
        }
        if (held >= 0 && tai_cache_release(c, held) != TINYAI_OK) fail("final release");
        if (pinned >= 0 && tai_cache_pin(c, pinned, false) != TINYAI_OK) fail("final unpin");
    };
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; t++) threads.emplace_back(worker, t);
    for (auto &th : threads) th.join();
    tai_test::WaitIdle(c, n);

    EXPECT_EQ(CheckState(c, sizes), "");
    tai_cache_stats st = Stats(c);
    EXPECT_EQ(st.hits + st.misses, acquires.load());
    EXPECT_GT(st.evictions, 0u);
    EXPECT_GT(st.load_errors, 0u);
    EXPECT_LE(st.peak_used, st.budget);
    // Quiet now: every resident buffer still holds exactly its entry.
    size_t resident = 0;
    for (int i = 0; i < n; i++) {
        tai_cache_entry_info in = tai_test::Info(c, i);
        EXPECT_EQ(in.in_use, 0);
        EXPECT_FALSE(in.pinned);
        if (in.state != TAI_ENTRY_RESIDENT) continue;
        EXPECT_TRUE(HasPattern(i, in.ptr, sizes[(size_t)i])) << "entry " << i;
        resident += RoundUp(sizes[(size_t)i]);
    }
    EXPECT_EQ(st.used, resident);
}

INSTANTIATE_TEST_SUITE_P(Modes, Stress,
                         ::testing::Values(Mode{TAI_CACHE_BELADY, false, 2},
                                           Mode{TAI_CACHE_BELADY, true, 3},
                                           Mode{TAI_CACHE_LRU, false, 0}));

}  // namespace
