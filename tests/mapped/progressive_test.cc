// The progressive loader (<tinyai/utils/progressive_loader.h>) over a mapped
// model of the real default model: load / unload / status / priorities /
// statistics, max_memory_usage kept by unloading the lowest priority and then
// the oldest layers, a limit above what the model's cache can hold, the
// prefetch window and its adaptation, the LOADING state of a slow read, and
// clean errors without a model or with bad arguments.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include <tinyai/utils/progressive_loader.h>

#include "runtime/mapped/mapped.h"
#include "tests/mapped/mapped_test_util.h"

namespace {

using tai_mapped_test::Contains;
using tai_mapped_test::LastError;
using tai_mapped_test::LayerSizes;
using tai_mapped_test::RoundUp;
using tai_mapped_test::Sizes;

TinyAIProgressiveLoaderConfig Config(TinyAIMappedModel *m, bool prefetch, int window,
                                     bool adaptive, size_t max) {
    TinyAIProgressiveLoaderConfig c;
    std::memset(&c, 0, sizeof c);
    c.enable_prefetch = prefetch;
    c.prefetch_window = window;
    c.enable_adaptive_window = adaptive;
    c.max_memory_usage = max;
    c.model = m;
    return c;
}

// Waits (at most 20 s) for the layer's status to become `want`.
bool WaitStatus(TinyAIProgressiveLoader *pl, int l, TinyAILayerStatus want) {
    for (int i = 0; i < 2000; i++) {
        if (tinyaiGetLayerStatus(pl, l) == want) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

// Layers with status LOADED.
std::vector<int> Loaded(TinyAIProgressiveLoader *pl, int n) {
    std::vector<int> v;
    for (int l = 0; l < n; l++)
        if (tinyaiGetLayerStatus(pl, l) == TINYAI_LAYER_LOADED) v.push_back(l);
    return v;
}

TEST(Progressive, WithoutAModelEveryCallSaysSo) {
    TinyAIProgressiveLoaderConfig c = Config(nullptr, true, 3, true, 256u << 20);
    TinyAIProgressiveLoader *pl = tinyaiCreateProgressiveLoader(&c);
    ASSERT_NE(pl, nullptr) << LastError();
    const std::string why = "the loader has no model (set TinyAIProgressiveLoaderConfig.model)";
    EXPECT_FALSE(tinyaiLoadLayer(pl, 0));
    EXPECT_EQ(LastError(), "tinyaiLoadLayer: " + why);
    EXPECT_FALSE(tinyaiUnloadLayer(pl, 0));
    EXPECT_EQ(LastError(), "tinyaiUnloadLayer: " + why);
    EXPECT_EQ(tinyaiGetLayerStatus(pl, 0), TINYAI_LAYER_INVALID);
    EXPECT_EQ(LastError(), "tinyaiGetLayerStatus: " + why);
    tinyaiSetLayerPriority(pl, 0, 3);
    EXPECT_TRUE(Contains(LastError(), why)) << LastError();
    TinyAIMemoryStats s = tinyaiGetProgressiveLoaderStats(pl);
    EXPECT_EQ(s.current_usage, 0u);
    EXPECT_EQ(s.loads, 0u);
    EXPECT_EQ(s.budget, 256u << 20);
    tinyaiFreeProgressiveLoader(pl);
}

TEST(Progressive, BadArguments) {
    EXPECT_EQ(tinyaiCreateProgressiveLoader(nullptr), nullptr);
    EXPECT_TRUE(Contains(LastError(), "config is NULL")) << LastError();
    for (int w : {0, -1, 65}) {
        TinyAIProgressiveLoaderConfig c = Config(nullptr, true, w, false, 0);
        EXPECT_EQ(tinyaiCreateProgressiveLoader(&c), nullptr) << w;
        EXPECT_TRUE(Contains(LastError(), "prefetch_window must be 1..64 with prefetching, got " +
                                              std::to_string(w)))
            << LastError();
    }
    TinyAIProgressiveLoaderConfig c = Config(nullptr, false, 0, false, 0); // no prefetch: any window
    TinyAIProgressiveLoader *pl = tinyaiCreateProgressiveLoader(&c);
    EXPECT_NE(pl, nullptr) << LastError();
    tinyaiFreeProgressiveLoader(pl);
    tinyaiFreeProgressiveLoader(nullptr);
    EXPECT_FALSE(tinyaiLoadLayer(nullptr, 0));
    EXPECT_TRUE(Contains(LastError(), "loader is NULL")) << LastError();
    EXPECT_EQ(tinyaiGetLayerStatus(nullptr, 0), TINYAI_LAYER_INVALID);
    TinyAIMemoryStats s = tinyaiGetProgressiveLoaderStats(nullptr);
    EXPECT_EQ(s.budget + s.current_usage + s.peak_usage + s.loads, 0u);
    EXPECT_EQ(tinyaiGetProgressiveLoaderWindow(nullptr), 0);
}

class ProgressiveTest : public testing::Test {
  protected:
    void SetUp() override {
        TAI_REQUIRE_TMAI(tmai);
        path_ = tmai;
        Reopen(nullptr);
    }
    void Reopen(const TinyAIMmapConfig *cfg) {
        tinyaiCloseMappedModel(m_);
        m_ = tinyaiOpenMappedModel(path_.c_str(), cfg);
        ASSERT_NE(m_, nullptr) << LastError();
        sizes_ = LayerSizes(m_);
    }
    void TearDown() override { tinyaiCloseMappedModel(m_); }
    std::string path_;
    TinyAIMappedModel *m_ = nullptr;
    Sizes sizes_;
};

TEST_F(ProgressiveTest, LoadUnloadStatusAndStats) {
    // the model's own read-ahead off: a layer it loads ahead on its loader
    // thread would count in `loads` if it landed before the stats are read
    TinyAIMmapConfig mc = tinyaiCreateDefaultMmapConfig();
    mc.prefetchEnabled = false;
    Reopen(&mc);
    TinyAIProgressiveLoaderConfig c = Config(m_, false, 0, false, 0);
    TinyAIProgressiveLoader *pl = tinyaiCreateProgressiveLoader(&c);
    ASSERT_NE(pl, nullptr) << LastError();
    const size_t img3 = tinyaiGetLayerImageSize(m_, 3);
    TinyAIMemoryStats s = tinyaiGetProgressiveLoaderStats(pl);
    TinyAIMappedModelStats ms;
    ASSERT_TRUE(tinyaiGetMappedModelStats(m_, &ms));
    EXPECT_EQ(s.budget, ms.cacheBytes); // 0: the cache's size

    EXPECT_EQ(tinyaiGetLayerStatus(pl, 3), TINYAI_LAYER_UNLOADED);
    ASSERT_TRUE(tinyaiLoadLayer(pl, 3)) << LastError();
    EXPECT_EQ(tinyaiGetLayerStatus(pl, 3), TINYAI_LAYER_LOADED);
    EXPECT_TRUE(tinyaiLoadLayer(pl, 3)); // already: still one hold
    s = tinyaiGetProgressiveLoaderStats(pl);
    EXPECT_EQ(s.current_usage, img3);
    EXPECT_EQ(s.misses, 1u);
    EXPECT_EQ(s.loads, 1u);
    EXPECT_GE(s.bytes_read, img3);

    ASSERT_TRUE(tinyaiUnloadLayer(pl, 3)) << LastError();
    EXPECT_EQ(tinyaiGetLayerStatus(pl, 3), TINYAI_LAYER_CACHED); // in the cache, not held
    EXPECT_FALSE(tinyaiUnloadLayer(pl, 3));
    EXPECT_TRUE(Contains(LastError(), "layer 3 is not loaded")) << LastError();
    // the loader's hold was the only one: releasing through the model is an error
    tinyaiClearError();
    tinyaiReleaseLayerWeights(m_, 3);
    EXPECT_TRUE(Contains(LastError(), "not held")) << LastError();

    ASSERT_TRUE(tinyaiLoadLayer(pl, 3)); // from the cache
    s = tinyaiGetProgressiveLoaderStats(pl);
    EXPECT_EQ(s.hits, 1u);
    EXPECT_EQ(s.loads, 1u);
    EXPECT_EQ(s.peak_usage, img3);

    for (int bad : {-1, sizes_.n}) {
        EXPECT_EQ(tinyaiGetLayerStatus(pl, bad), TINYAI_LAYER_INVALID);
        EXPECT_TRUE(Contains(LastError(), "out of range (0..31)")) << LastError();
        EXPECT_FALSE(tinyaiLoadLayer(pl, bad));
        EXPECT_FALSE(tinyaiUnloadLayer(pl, bad));
    }
    tinyaiFreeProgressiveLoader(pl); // releases layer 3
    tinyaiClearError();
    tinyaiReleaseLayerWeights(m_, 3);
    EXPECT_TRUE(Contains(LastError(), "not held")) << LastError();
}

// A loaded layer is held in the model's cache: walks of the model that evict
// everything else leave it in place.
TEST_F(ProgressiveTest, LoadedLayersAreNeverEvicted) {
    TinyAIMmapConfig cfg = tinyaiCreateDefaultMmapConfig();
    cfg.maxCacheSize = RoundUp(sizes_.largest, 4096) + 3 * RoundUp(sizes_.largest_block, 4096);
    Reopen(&cfg);
    TinyAIProgressiveLoaderConfig c = Config(m_, false, 0, false, 0);
    TinyAIProgressiveLoader *pl = tinyaiCreateProgressiveLoader(&c);
    ASSERT_NE(pl, nullptr) << LastError();
    ASSERT_TRUE(tinyaiLoadLayer(pl, 7)) << LastError();
    for (int pass = 0; pass < 2; pass++)
        for (int l = 0; l < sizes_.n; l++) {
            if (l == 7) continue;
            ASSERT_NE(tinyaiGetLayerWeights(m_, l), nullptr) << LastError();
            tinyaiReleaseLayerWeights(m_, l);
            ASSERT_EQ(tinyaiGetLayerStatus(pl, 7), TINYAI_LAYER_LOADED);
            ASSERT_TRUE(tinyaiGetLayerDescriptor(m_, 7)->isActive);
        }
    tinyaiFreeProgressiveLoader(pl);
}

// max_memory_usage of three blocks: loading a fourth unloads the one loaded
// longest ago; a higher priority keeps a layer, a lower one makes it go
// first; the held bytes never exceed the limit.
TEST_F(ProgressiveTest, MaxMemoryUsageUnloadsLowestPriorityThenOldest) {
    const size_t block = tinyaiGetLayerImageSize(m_, 1);
    for (int l = 1; l < sizes_.n - 1; l++) ASSERT_EQ(tinyaiGetLayerImageSize(m_, l), block);
    TinyAIProgressiveLoaderConfig c = Config(m_, false, 0, false, 3 * block + 100);
    TinyAIProgressiveLoader *pl = tinyaiCreateProgressiveLoader(&c);
    ASSERT_NE(pl, nullptr) << LastError();
    for (int l = 1; l <= 6; l++) {
        ASSERT_TRUE(tinyaiLoadLayer(pl, l)) << LastError();
        EXPECT_LE(tinyaiGetProgressiveLoaderStats(pl).current_usage, c.max_memory_usage);
    }
    EXPECT_EQ(Loaded(pl, sizes_.n), (std::vector<int>{4, 5, 6}));
    EXPECT_EQ(tinyaiGetLayerStatus(pl, 1), TINYAI_LAYER_CACHED); // unloaded, still cached

    tinyaiSetLayerPriority(pl, 4, 5); // kept
    tinyaiSetLayerPriority(pl, 6, -1); // goes first
    ASSERT_TRUE(tinyaiLoadLayer(pl, 7));
    EXPECT_EQ(Loaded(pl, sizes_.n), (std::vector<int>{4, 5, 7}));
    ASSERT_TRUE(tinyaiLoadLayer(pl, 8));
    EXPECT_EQ(Loaded(pl, sizes_.n), (std::vector<int>{4, 7, 8}));
    ASSERT_TRUE(tinyaiLoadLayer(pl, 9));
    EXPECT_EQ(Loaded(pl, sizes_.n), (std::vector<int>{4, 8, 9}));
    TinyAIMemoryStats s = tinyaiGetProgressiveLoaderStats(pl);
    EXPECT_EQ(s.current_usage, 3 * block);
    EXPECT_EQ(s.peak_usage, 3 * block);
    EXPECT_EQ(s.budget, c.max_memory_usage);

    // a layer larger than the limit is refused and nothing is unloaded
    EXPECT_FALSE(tinyaiLoadLayer(pl, 0));
    EXPECT_TRUE(Contains(LastError(), "more than max_memory_usage")) << LastError();
    EXPECT_EQ(Loaded(pl, sizes_.n), (std::vector<int>{4, 8, 9}));
    tinyaiFreeProgressiveLoader(pl);
}

// A limit above what the model's cache holds: loads that do not fit in the
// cache next to the held layers unload held layers (in the same order)
// instead of failing while under the limit.
TEST_F(ProgressiveTest, LimitAboveTheCacheSize) {
    TinyAIMmapConfig cfg = tinyaiCreateDefaultMmapConfig();
    cfg.maxCacheSize = RoundUp(sizes_.largest, 4096) + 2 * RoundUp(sizes_.largest_block, 4096);
    Reopen(&cfg);
    TinyAIProgressiveLoaderConfig c = Config(m_, true, 3, true, 256u << 20);
    TinyAIProgressiveLoader *pl = tinyaiCreateProgressiveLoader(&c);
    ASSERT_NE(pl, nullptr) << LastError();
    tinyaiSetLayerPriority(pl, 1, 9);
    for (int pass = 0; pass < 2; pass++)
        for (int l = 0; l < sizes_.n; l++) {
            ASSERT_TRUE(tinyaiLoadLayer(pl, l)) << "layer " << l << ": " << LastError();
            EXPECT_LE(tinyaiGetMappedModelMemoryUsage(m_), cfg.maxCacheSize);
            if (pass > 0 || l >= 1) {
                EXPECT_EQ(tinyaiGetLayerStatus(pl, 1), TINYAI_LAYER_LOADED) << l;
            }
        }
    EXPECT_LE(tinyaiGetProgressiveLoaderStats(pl).peak_usage, cfg.maxCacheSize);
    tinyaiFreeProgressiveLoader(pl);
}

// The next prefetch_window layers are read into the cache after a load, not
// held.
TEST_F(ProgressiveTest, PrefetchWindowReadsAhead) {
    TinyAIProgressiveLoaderConfig c = Config(m_, true, 3, false, 0);
    TinyAIProgressiveLoader *pl = tinyaiCreateProgressiveLoader(&c);
    ASSERT_NE(pl, nullptr) << LastError();
    ASSERT_TRUE(tinyaiLoadLayer(pl, 10)) << LastError();
    for (int l = 11; l <= 13; l++) EXPECT_TRUE(WaitStatus(pl, l, TINYAI_LAYER_CACHED)) << l;
    EXPECT_EQ(tinyaiGetLayerStatus(pl, 15), TINYAI_LAYER_UNLOADED);
    EXPECT_EQ(tinyaiGetLayerStatus(pl, 9), TINYAI_LAYER_UNLOADED);
    EXPECT_EQ(tinyaiGetProgressiveLoaderWindow(pl), 3);
    ASSERT_TRUE(tinyaiLoadLayer(pl, 11));
    TinyAIMemoryStats s = tinyaiGetProgressiveLoaderStats(pl);
    EXPECT_EQ(s.hits, 1u);
    EXPECT_EQ(s.misses, 1u);
    tinyaiFreeProgressiveLoader(pl);
}

// The adaptive window widens after each load that had to wait for storage
// (up to 8) and narrows after each load served from the cache (down to 1).
TEST_F(ProgressiveTest, AdaptiveWindowMoves) {
    TinyAIProgressiveLoaderConfig c = Config(m_, true, 2, true, 0);
    TinyAIProgressiveLoader *pl = tinyaiCreateProgressiveLoader(&c);
    ASSERT_NE(pl, nullptr) << LastError();
    EXPECT_EQ(tinyaiGetProgressiveLoaderWindow(pl), 2);
    // misses: layers no earlier load read ahead
    int want = 2;
    for (int l : {1, 10, 20, 30, 5, 15, 26}) {
        ASSERT_EQ(tinyaiGetLayerStatus(pl, l), TINYAI_LAYER_UNLOADED) << l;
        ASSERT_TRUE(tinyaiLoadLayer(pl, l)) << LastError();
        want = want < 8 ? want + 1 : 8;
        EXPECT_EQ(tinyaiGetProgressiveLoaderWindow(pl), want) << "after " << l;
    }
    EXPECT_EQ(want, 8);
    // hits: layers already read ahead
    for (int l : {27, 28, 29, 31, 2, 3, 4, 6, 7, 8}) {
        ASSERT_TRUE(WaitStatus(pl, l, TINYAI_LAYER_CACHED)) << l;
        ASSERT_TRUE(tinyaiLoadLayer(pl, l)) << LastError();
        want = want > 1 ? want - 1 : 1;
        EXPECT_EQ(tinyaiGetProgressiveLoaderWindow(pl), want) << "after " << l;
    }
    EXPECT_EQ(want, 1);
    tinyaiFreeProgressiveLoader(pl);
}

// A slow read (a fault hook that sleeps on one layer's reads) shows as
// LOADING while the prefetch is in flight.
TEST_F(ProgressiveTest, SlowPrefetchIsLoading) {
    struct Slow {
        uint64_t lo, hi;
        static long Fn(void *ctx, uint64_t, uint64_t off, size_t len, long res) {
            const Slow *s = static_cast<const Slow *>(ctx);
            if (off < s->hi && off + len > s->lo) usleep(100 * 1000);
            return res;
        }
    };
    const TinyAILayerDescriptor *d = tinyaiGetLayerDescriptor(m_, 12);
    Slow slow{d->offset, d->offset + d->size};
    tai_io_faults hook{&Slow::Fn, &slow};
    tai_mapped_options opt = {};
    opt.faults = &hook;
    TinyAIMmapConfig cfg = tinyaiCreateDefaultMmapConfig();
    cfg.ioEngine = TINYAI_IO_PREAD;
    TinyAIMappedModel *m = nullptr;
    ASSERT_EQ(tai_mapped_open(path_.c_str(), &cfg, &opt, &m), TINYAI_OK) << LastError();
    TinyAIProgressiveLoaderConfig c = Config(m, true, 1, false, 0);
    TinyAIProgressiveLoader *pl = tinyaiCreateProgressiveLoader(&c);
    ASSERT_NE(pl, nullptr) << LastError();
    ASSERT_TRUE(tinyaiLoadLayer(pl, 11)) << LastError();
    EXPECT_EQ(tinyaiGetLayerStatus(pl, 12), TINYAI_LAYER_LOADING);
    EXPECT_TRUE(WaitStatus(pl, 12, TINYAI_LAYER_CACHED));
    tinyaiFreeProgressiveLoader(pl);
    tai_mapped_close(m);
}

} // namespace
