// Test support for runtime/cache: a loader that fills each buffer with a
// pattern derived from (entry, byte index), so that a test holding a buffer
// can tell whether it got the right bytes; optional random sleeps, failures
// and a gate that holds loads back; and helpers to make and drive caches.
#ifndef TAI_TESTS_CACHE_CACHE_TEST_UTIL_H
#define TAI_TESTS_CACHE_CACHE_TEST_UTIL_H

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "core/error.h"
#include "runtime/cache/cache.h"

namespace tai_test {

// splitmix64: every 8-byte word of an entry's buffer differs between entries
// and between positions.
inline uint64_t PatternWord(int entry, size_t word) {
    uint64_t z = (uint64_t)entry * 0x9e3779b97f4a7c15ull + word * 0xbf58476d1ce4e5b9ull + 1;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

inline void FillPattern(int entry, void *dst, size_t size) {
    unsigned char *p = static_cast<unsigned char *>(dst);
    size_t w = 0;
    for (; (w + 1) * 8 <= size; w++) {
        uint64_t v = PatternWord(entry, w);
        memcpy(p + w * 8, &v, 8);
    }
    uint64_t v = PatternWord(entry, w);
    memcpy(p + w * 8, &v, size - w * 8);
}

// True if the buffer holds exactly entry's pattern.
inline bool HasPattern(int entry, const void *src, size_t size) {
    const unsigned char *p = static_cast<const unsigned char *>(src);
    size_t w = 0;
    for (; (w + 1) * 8 <= size; w++) {
        uint64_t v = PatternWord(entry, w);
        if (memcmp(p + w * 8, &v, 8) != 0) return false;
    }
    uint64_t v = PatternWord(entry, w);
    return memcmp(p + w * 8, &v, size - w * 8) == 0;
}

struct Loader {
    std::atomic<int> fail_entry{-1};     // loads of this entry fail with IO
    std::atomic<int> fail_per_mille{0};  // and this share of all loads
    std::atomic<int> sleep_us{0};        // each load sleeps this long
    std::atomic<int> max_random_sleep_us{0};
    std::atomic<int> calls{0};

    // Loads wait while the gate is closed.
    std::mutex mu;
    std::condition_variable cv;
    bool gate_open = true;
    std::vector<int> order;  // entries in the order their loads started

    void CloseGate() {
        std::lock_guard<std::mutex> l(mu);
        gate_open = false;
    }
    void OpenGate() {
        {
            std::lock_guard<std::mutex> l(mu);
            gate_open = true;
        }
        cv.notify_all();
    }
    std::vector<int> Order() {
        std::lock_guard<std::mutex> l(mu);
        return order;
    }

    static TinyAIStatus Load(void *ctx, int entry, void *dst, size_t size) {
        Loader *l = static_cast<Loader *>(ctx);
        l->calls++;
        {
            std::unique_lock<std::mutex> g(l->mu);
            l->order.push_back(entry);
            l->cv.wait(g, [l] { return l->gate_open; });
        }
        if (l->sleep_us > 0) usleep((useconds_t)l->sleep_us);
        thread_local std::mt19937 rng(std::random_device{}());
        if (l->max_random_sleep_us > 0)
            usleep((useconds_t)(rng() % (unsigned)(l->max_random_sleep_us + 1)));
        // Scribble first: a failed load must not leave a usable buffer.
        memset(dst, 0xA5, size);
        if (entry == l->fail_entry)
            return tai_error(TINYAI_ERR_IO, "test loader refuses entry %d", entry);
        if (l->fail_per_mille > 0 && (int)(rng() % 1000) < l->fail_per_mille)
            return tai_error(TINYAI_ERR_IO, "test loader: random failure of entry %d", entry);
        FillPattern(entry, dst, size);
        return TINYAI_OK;
    }
};

// Fewest misses serving `seq` (entries 0..31) with room for k equal
// entries: dynamic programming over (position, resident set), trying every
// victim on every miss. The oracle for Belady.
class OptimalMisses {
  public:
    OptimalMisses(const std::vector<int> &seq, int k) : seq_(seq), k_(k) {}
    int Solve() { return Solve(0, 0); }

  private:
    int Solve(size_t t, uint32_t set) {
        if (t == seq_.size()) return 0;
        auto key = std::make_pair(t, set);
        auto it = memo_.find(key);
        if (it != memo_.end()) return it->second;
        uint32_t bit = 1u << seq_[t];
        int best;
        if (set & bit) {
            best = Solve(t + 1, set);
        } else if (__builtin_popcount(set) < k_) {
            best = 1 + Solve(t + 1, set | bit);
        } else {
            best = 1 << 30;
            for (uint32_t v = set; v; v &= v - 1) {
                uint32_t victim = v & (~v + 1);
                best = std::min(best, 1 + Solve(t + 1, (set & ~victim) | bit));
            }
        }
        memo_[key] = best;
        return best;
    }
    const std::vector<int> &seq_;
    int k_;
    std::map<std::pair<size_t, uint32_t>, int> memo_;
};

inline tai_cache_config Config(Loader *l, size_t budget, tai_cache_policy policy,
                               int prefetch_window) {
    tai_cache_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.budget = budget;
    cfg.policy = policy;
    cfg.loader_threads = 1;
    cfg.prefetch_window = prefetch_window;
    cfg.load = Loader::Load;
    cfg.load_ctx = l;
    return cfg;
}

// Owns a cache for the length of a test.
struct Cache {
    tai_cache *c = nullptr;
    Cache() = default;
    Cache(const Cache &) = delete;
    Cache &operator=(const Cache &) = delete;
    ~Cache() { tai_cache_destroy(c); }
    operator tai_cache *() const { return c; }
};

inline tai_cache_stats Stats(const tai_cache *c) {
    tai_cache_stats s;
    tai_cache_get_stats(c, &s);
    return s;
}

inline tai_cache_entry_info Info(const tai_cache *c, int entry) {
    tai_cache_entry_info info;
    memset(&info, 0, sizeof info);
    EXPECT_EQ(tai_cache_entry(c, entry, &info), TINYAI_OK);
    return info;
}

// Waits until no entry is LOADING (loads started by prefetch have landed).
inline void WaitIdle(const tai_cache *c, int n) {
    std::vector<tai_cache_entry_info> infos((size_t)n);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (;;) {
        tai_cache_snapshot(c, infos.data(), nullptr);
        bool loading = false;
        for (const auto &i : infos) loading |= i.state == TAI_ENTRY_LOADING;
        if (!loading) return;
        ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "loads never finished";
        usleep(100);
    }
}

// Acquires, checks the bytes, releases. Returns whether the acquire was a hit.
inline bool Use(tai_cache *c, int entry, size_t size) {
    tai_cache_stats before = Stats(c);
    void *p = nullptr;
    TinyAIStatus st = tai_cache_acquire(c, entry, &p);
    EXPECT_EQ(st, TINYAI_OK) << tinyaiLastErrorMessage();
    if (st != TINYAI_OK) return false;
    EXPECT_TRUE(HasPattern(entry, p, size)) << "entry " << entry;
    tai_cache_stats after = Stats(c);
    EXPECT_EQ(tai_cache_release(c, entry), TINYAI_OK);
    return after.hits > before.hits;
}

}  // namespace tai_test

#endif
