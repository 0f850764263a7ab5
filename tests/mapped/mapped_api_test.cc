// runtime/mapped through <tinyai/utils/mmap_loader.h> on the real default
// model (.tmai version 2 and the GGUF it came from): descriptors against the
// model's layer table, layer images against the file's bytes, descriptors
// following loads, holds and evictions, nested holds, prefetch, the cache
// budget, priorities, statistics, and every I/O engine giving the same bytes.
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "tests/mapped/mapped_test_util.h"

namespace {

using tai_mapped_test::Contains;
using tai_mapped_test::LastError;
using tai_mapped_test::LayerSizes;
using tai_mapped_test::ReadRange;
using tai_mapped_test::RoundUp;
using tai_mapped_test::Sizes;

struct Closer {
    void operator()(TinyAIMappedModel *m) const { tinyaiCloseMappedModel(m); }
};
using Model = std::unique_ptr<TinyAIMappedModel, Closer>;

Model Open(const std::string &path, const TinyAIMmapConfig *cfg = nullptr) {
    return Model(tinyaiOpenMappedModel(path.c_str(), cfg));
}

// Sizes of the model at `path` (opened with the defaults).
Sizes SizesOf(const std::string &path) {
    Model m = Open(path);
    EXPECT_NE(m, nullptr) << LastError();
    return m ? LayerSizes(m.get()) : Sizes();
}

// Waits (at most 20 s) until layer l is cached.
bool WaitCached(TinyAIMappedModel *m, int l) {
    for (int i = 0; i < 2000; i++) {
        if (tinyaiGetLayerDescriptor(m, l)->isActive) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

// The layer image equals the file's bytes [offset, offset + size).
void ExpectFileBytes(const std::string &path, const TinyAILayerDescriptor *d, const void *w) {
    ASSERT_NE(w, nullptr);
    std::string want = ReadRange(path, d->offset, d->size);
    ASSERT_EQ(want.size(), d->size);
    EXPECT_EQ(std::memcmp(w, want.data(), d->size), 0) << "layer " << d->layerIndex;
}

TEST(MappedApi, DescriptorsMatchTheModelsLayerTable) {
    TAI_REQUIRE_TMAI(tmai);
    Model m = Open(tmai);
    ASSERT_NE(m, nullptr) << LastError();
    TinyAIModel *model = nullptr;
    ASSERT_EQ(tinyaiLoadModel(tmai.c_str(), nullptr, &model), TINYAI_OK) << LastError();
    TinyAIModelInfo info;
    ASSERT_EQ(tinyaiGetModelInfo(model, &info), TINYAI_OK);
    const int n = tinyaiGetMappedLayerCount(m.get());
    EXPECT_EQ(n, info.nLayer + 2);
    EXPECT_EQ(n, info.nFileLayers);
    for (int l = 0; l < n; l++) {
        TinyAILayerInfo li;
        ASSERT_EQ(tinyaiGetModelLayerInfo(model, l, &li), TINYAI_OK);
        const TinyAILayerDescriptor *d = tinyaiGetLayerDescriptor(m.get(), l);
        ASSERT_NE(d, nullptr) << l;
        EXPECT_EQ(d->layerIndex, l);
        EXPECT_EQ(d->offset, li.offset) << l;
        EXPECT_EQ(d->size, li.size) << l;
        EXPECT_EQ(d->precision, li.precision) << l;
        EXPECT_GT(d->size, 0u) << l;
        // nothing loaded, accessed or prioritised yet
        EXPECT_EQ(d->cachedWeights, nullptr) << l;
        EXPECT_FALSE(d->isActive) << l;
        EXPECT_EQ(d->priority, 1.0f) << l;
        EXPECT_EQ(d->lastAccessed, 0u) << l;
        EXPECT_EQ(d->accessCount, 0u) << l;
        // the same descriptor every time (borrowed from the model)
        EXPECT_EQ(tinyaiGetLayerDescriptor(m.get(), l), d);
    }
    tinyaiFreeModel(model);
}

// A version-2 .tmai holds every layer as its image: what GetLayerWeights
// returns is the file's bytes of the layer. The GGUF's layers, repacked on
// load, give the same images.
TEST(MappedApi, LayerImagesAreTheFileBytesAndTheGgufsRepacking) {
    TAI_REQUIRE_TMAI(tmai);
    Model m = Open(tmai);
    ASSERT_NE(m, nullptr) << LastError();
    Model g = Open(tmai_gguf);
    ASSERT_NE(g, nullptr) << LastError();
    const int n = tinyaiGetMappedLayerCount(m.get());
    ASSERT_EQ(tinyaiGetMappedLayerCount(g.get()), n);
    for (int l = 0; l < n; l++) {
        const TinyAILayerDescriptor *d = tinyaiGetLayerDescriptor(m.get(), l);
        EXPECT_EQ(tinyaiGetLayerImageSize(m.get(), l), d->size) << l;
        EXPECT_EQ(tinyaiGetLayerImageSize(g.get(), l), d->size) << l;
        void *w = tinyaiGetLayerWeights(m.get(), l);
        ASSERT_NE(w, nullptr) << l << ": " << LastError();
        EXPECT_EQ((uintptr_t)w % 4096, 0u) << l;
        ExpectFileBytes(tmai, d, w);
        void *gw = tinyaiGetLayerWeights(g.get(), l);
        ASSERT_NE(gw, nullptr) << l << ": " << LastError();
        EXPECT_EQ(std::memcmp(gw, w, d->size), 0) << "GGUF image of layer " << l;
        tinyaiReleaseLayerWeights(m.get(), l);
        tinyaiReleaseLayerWeights(g.get(), l);
    }
}

// A cache with room for the embedding and a few blocks: the descriptors
// follow gets, releases and evictions, read through the pointer returned
// once (the header: "kept current by it").
TEST(MappedApi, DescriptorsFollowLoadsHoldsAndEvictions) {
    TAI_REQUIRE_TMAI(tmai);
    const Sizes s = SizesOf(tmai);
    TinyAIMmapConfig cfg = tinyaiCreateDefaultMmapConfig();
    cfg.maxCacheSize = RoundUp(s.largest, 4096) + 3 * RoundUp(s.largest_block, 4096);
    cfg.prefetchEnabled = false;
    Model m = Open(tmai, &cfg);
    ASSERT_NE(m, nullptr) << LastError();
    std::vector<const TinyAILayerDescriptor *> d(s.n);
    for (int l = 0; l < s.n; l++) d[l] = tinyaiGetLayerDescriptor(m.get(), l);

    void *w = tinyaiGetLayerWeights(m.get(), 1);
    ASSERT_NE(w, nullptr) << LastError();
    EXPECT_TRUE(d[1]->isActive);
    EXPECT_EQ(d[1]->cachedWeights, w);
    EXPECT_EQ(d[1]->accessCount, 1u);
    const uint64_t t1 = d[1]->lastAccessed;
    EXPECT_GT(t1, 0u);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    EXPECT_EQ(tinyaiGetLayerWeights(m.get(), 1), w); // nested hold, same image
    EXPECT_EQ(d[1]->accessCount, 2u);
    EXPECT_GT(d[1]->lastAccessed, t1);
    tinyaiReleaseLayerWeights(m.get(), 1);
    tinyaiReleaseLayerWeights(m.get(), 1);
    // released, still cached until room is needed
    EXPECT_TRUE(d[1]->isActive);
    EXPECT_EQ(d[1]->cachedWeights, w);
    EXPECT_EQ(d[1]->accessCount, 2u);
    for (int l = 2; l < s.n; l++) EXPECT_FALSE(d[l]->isActive) << l;

    // Walk the model twice: layers get evicted; the descriptors, read
    // without asking again, say which are cached.
    int evicted_seen = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int l = 0; l < s.n; l++) {
            void *p = tinyaiGetLayerWeights(m.get(), l);
            ASSERT_NE(p, nullptr) << l << ": " << LastError();
            tinyaiReleaseLayerWeights(m.get(), l);
            size_t active_bytes = 0;
            for (int k = 0; k < s.n; k++) {
                if (d[k]->isActive) {
                    EXPECT_NE(d[k]->cachedWeights, nullptr) << k;
                    active_bytes += RoundUp(tinyaiGetLayerImageSize(m.get(), k), 4096);
                } else {
                    EXPECT_EQ(d[k]->cachedWeights, nullptr) << k;
                    if (k < l || pass > 0) evicted_seen++;
                }
            }
            EXPECT_TRUE(d[l]->isActive) << l;
            EXPECT_EQ(d[l]->cachedWeights, p) << l;
            EXPECT_LE(active_bytes, cfg.maxCacheSize) << "after layer " << l;
            EXPECT_EQ(active_bytes, tinyaiGetMappedModelMemoryUsage(m.get())) << "after layer " << l;
        }
    }
    EXPECT_GT(evicted_seen, 0);
    for (int l = 0; l < s.n; l++) EXPECT_EQ(d[l]->accessCount, l == 1 ? 4u : 2u) << l;
    TinyAIMappedModelStats st;
    ASSERT_TRUE(tinyaiGetMappedModelStats(m.get(), &st));
    EXPECT_GT(st.evictions, 0u);
    EXPECT_EQ(st.cacheBytes, cfg.maxCacheSize);
    EXPECT_LE(st.peakUsedBytes, cfg.maxCacheSize);
}

// Holds nest: a layer got twice and released once stays in place through
// walks that evict everything else; after the last release it may go; one
// release more is an error that changes nothing.
TEST(MappedApi, HoldsNestAndHeldLayersStayPut) {
    TAI_REQUIRE_TMAI(tmai);
    const Sizes s = SizesOf(tmai);
    TinyAIMmapConfig cfg = tinyaiCreateDefaultMmapConfig();
    cfg.maxCacheSize = RoundUp(s.largest, 4096) + 3 * RoundUp(s.largest_block, 4096);
    Model m = Open(tmai, &cfg);
    ASSERT_NE(m, nullptr) << LastError();
    const TinyAILayerDescriptor *d5 = tinyaiGetLayerDescriptor(m.get(), 5);
    void *w = tinyaiGetLayerWeights(m.get(), 5);
    ASSERT_NE(w, nullptr) << LastError();
    ASSERT_EQ(tinyaiGetLayerWeights(m.get(), 5), w);
    tinyaiReleaseLayerWeights(m.get(), 5);
    for (int pass = 0; pass < 2; pass++)
        for (int l = 0; l < s.n; l++) {
            if (l == 5) continue;
            ASSERT_NE(tinyaiGetLayerWeights(m.get(), l), nullptr) << l << ": " << LastError();
            tinyaiReleaseLayerWeights(m.get(), l);
            ASSERT_TRUE(d5->isActive);
            ASSERT_EQ(d5->cachedWeights, w);
        }
    ExpectFileBytes(tmai, d5, w); // never overwritten while held
    tinyaiReleaseLayerWeights(m.get(), 5);
    bool gone = false;
    for (int pass = 0; pass < 2 && !gone; pass++)
        for (int l = 0; l < s.n && !gone; l++) {
            if (l == 5) continue;
            ASSERT_NE(tinyaiGetLayerWeights(m.get(), l), nullptr) << l << ": " << LastError();
            tinyaiReleaseLayerWeights(m.get(), l);
            gone = !tinyaiGetLayerDescriptor(m.get(), 5)->isActive;
        }
    EXPECT_TRUE(gone) << "a released layer is evicted when room is needed";
    tinyaiClearError();
    tinyaiReleaseLayerWeights(m.get(), 5);
    EXPECT_TRUE(Contains(LastError(), "layer 5")) << LastError();
    EXPECT_TRUE(Contains(LastError(), "not held")) << LastError();
    // the model still works
    void *again = tinyaiGetLayerWeights(m.get(), 5);
    ASSERT_NE(again, nullptr) << LastError();
    ExpectFileBytes(tmai, d5, again);
    tinyaiReleaseLayerWeights(m.get(), 5);
}

// The cache never holds more than maxCacheSize: sequential walks with
// prefetch (two loader threads), then random gets and releases from two
// threads, then holding layers until no more fit.
TEST(MappedApi, MemoryUsageNeverAboveMaxCacheSize) {
    TAI_REQUIRE_TMAI(tmai);
    const Sizes s = SizesOf(tmai);
    TinyAIMmapConfig cfg = tinyaiCreateDefaultMmapConfig();
    cfg.maxCacheSize = RoundUp(s.largest, 4096) + 2 * RoundUp(s.largest_block, 4096) + 12345;
    cfg.prefetchThreads = 2;
    cfg.prefetchWindow = 2;
    Model m = Open(tmai, &cfg);
    ASSERT_NE(m, nullptr) << LastError();
    for (int pass = 0; pass < 2; pass++)
        for (int l = 0; l < s.n; l++) {
            void *p = tinyaiGetLayerWeights(m.get(), l);
            ASSERT_NE(p, nullptr) << l << ": " << LastError();
            EXPECT_LE(tinyaiGetMappedModelMemoryUsage(m.get()), cfg.maxCacheSize);
            tinyaiReleaseLayerWeights(m.get(), l);
            EXPECT_LE(tinyaiGetMappedModelMemoryUsage(m.get()), cfg.maxCacheSize);
        }

    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int t = 0; t < 2; t++)
        threads.emplace_back([&, t] {
            std::mt19937 rng(1234 + t);
            for (int i = 0; i < 60; i++) {
                int l = 1 + (int)(rng() % (unsigned)(s.n - 2)); // blocks: two fit at once
                void *p = tinyaiGetLayerWeights(m.get(), l);
                if (!p) failures++;
                if (tinyaiGetMappedModelMemoryUsage(m.get()) > cfg.maxCacheSize) failures++;
                if (p) tinyaiReleaseLayerWeights(m.get(), l);
            }
        });
    for (auto &th : threads) th.join();
    EXPECT_EQ(failures.load(), 0);

    // Holding without releasing: once the cache is full, this thread's
    // oldest held layers are given up for the newcomers, so every block
    // loads, and usage stays within the budget.
    std::vector<int> held;
    for (int l = 1; l < s.n - 1; l++) {
        EXPECT_NE(tinyaiGetLayerWeights(m.get(), l), nullptr) << l << ": " << LastError();
        held.push_back(l);
        EXPECT_LE(tinyaiGetMappedModelMemoryUsage(m.get()), cfg.maxCacheSize);
    }
    // releasing them all, the given-up ones included, is no error
    tinyaiClearError();
    for (int l : held) tinyaiReleaseLayerWeights(m.get(), l);
    EXPECT_EQ(LastError(), "");
    held.clear();
    // Another thread's holds are never given up: with the room held by
    // another thread, a get that needs more is refused, with a message.
    const size_t before = tinyaiGetMappedModelMemoryUsage(m.get());
    std::vector<int> theirs;
    std::thread other([&] {
        size_t used = tinyaiGetMappedModelMemoryUsage(m.get()), step = 0;
        for (int l = 1; l < s.n - 1; l++) {
            if (step && used + step > cfg.maxCacheSize) break; // the next one would not fit
            if (!tinyaiGetLayerWeights(m.get(), l)) break;
            theirs.push_back(l);
            const size_t now = tinyaiGetMappedModelMemoryUsage(m.get());
            if (!step && now > used) step = now - used;
            used = now;
        }
    });
    other.join();
    (void)before;
    ASSERT_GE(theirs.size(), 10u); // the embedding's room holds many blocks
    const int extra = theirs.back() + 1 < s.n - 1 ? theirs.back() + 1 : 0;
    EXPECT_EQ(tinyaiGetLayerWeights(m.get(), extra), nullptr);
    EXPECT_TRUE(Contains(LastError(), "needs")) << LastError();
    EXPECT_LE(tinyaiGetMappedModelMemoryUsage(m.get()), cfg.maxCacheSize);
    std::thread release_theirs([&] {
        for (int l : theirs) tinyaiReleaseLayerWeights(m.get(), l);
    });
    release_theirs.join();
    for (int l : held) tinyaiReleaseLayerWeights(m.get(), l);
    TinyAIMappedModelStats st;
    ASSERT_TRUE(tinyaiGetMappedModelStats(m.get(), &st));
    EXPECT_LE(st.peakUsedBytes, cfg.maxCacheSize);
    EXPECT_GT(st.prefetches, 0u);
}

// Prefetch loads in the background without counting as an access; the get
// that follows is a hit and gives the file's bytes.
TEST(MappedApi, PrefetchLoadsAheadOfUse) {
    TAI_REQUIRE_TMAI(tmai);
    Model m = Open(tmai);
    ASSERT_NE(m, nullptr) << LastError();
    const TinyAILayerDescriptor *d = tinyaiGetLayerDescriptor(m.get(), 7);
    ASSERT_TRUE(tinyaiPrefetchLayerWeights(m.get(), 7)) << LastError();
    ASSERT_TRUE(WaitCached(m.get(), 7));
    EXPECT_EQ(d->accessCount, 0u);
    EXPECT_EQ(d->lastAccessed, 0u);
    EXPECT_TRUE(tinyaiPrefetchLayerWeights(m.get(), 7)); // cached already: nothing to do
    TinyAIMappedModelStats st;
    ASSERT_TRUE(tinyaiGetMappedModelStats(m.get(), &st));
    EXPECT_EQ(st.prefetches, 1u);
    EXPECT_EQ(st.hits, 0u);
    void *w = tinyaiGetLayerWeights(m.get(), 7);
    ExpectFileBytes(tmai, d, w);
    ASSERT_TRUE(tinyaiGetMappedModelStats(m.get(), &st));
    EXPECT_EQ(st.hits, 1u);
    EXPECT_EQ(st.misses, 0u);
    EXPECT_EQ(d->accessCount, 1u);
    tinyaiReleaseLayerWeights(m.get(), 7);

    tinyaiResetMappedModelStats(m.get());
    ASSERT_TRUE(tinyaiGetMappedModelStats(m.get(), &st));
    EXPECT_EQ(st.hits + st.misses + st.prefetches + st.loads, 0u);
    EXPECT_GT(st.usedBytes, 0u); // resets counters, not contents

    TinyAIMmapConfig off = tinyaiCreateDefaultMmapConfig();
    off.prefetchEnabled = false;
    Model n = Open(tmai, &off);
    ASSERT_NE(n, nullptr) << LastError();
    EXPECT_FALSE(tinyaiPrefetchLayerWeights(n.get(), 7));
    EXPECT_TRUE(Contains(LastError(), "prefetch")) << LastError();
    EXPECT_FALSE(tinyaiGetLayerDescriptor(n.get(), 7)->isActive);
}

// A higher priority keeps a layer cached through walks that evict it at the
// default priority; the reset brings every priority back to 1.0.
TEST(MappedApi, PrioritiesKeepLayersAndResetRestoresThem) {
    TAI_REQUIRE_TMAI(tmai);
    const Sizes s = SizesOf(tmai);
    TinyAIMmapConfig cfg = tinyaiCreateDefaultMmapConfig();
    cfg.maxCacheSize = RoundUp(s.largest, 4096) + 3 * RoundUp(s.largest_block, 4096);
    cfg.prefetchEnabled = false;
    // Walks the model twice; counts the steps after which layer 3 is not
    // cached (once it has been loaded).
    auto walk = [&](TinyAIMappedModel *m) {
        int absent = 0;
        for (int pass = 0; pass < 2; pass++)
            for (int l = 0; l < s.n; l++) {
                EXPECT_NE(tinyaiGetLayerWeights(m, l), nullptr) << LastError();
                tinyaiReleaseLayerWeights(m, l);
                if ((pass > 0 || l >= 3) && !tinyaiGetLayerDescriptor(m, 3)->isActive) absent++;
            }
        return absent;
    };
    {
        Model m = Open(tmai, &cfg);
        ASSERT_NE(m, nullptr) << LastError();
        EXPECT_GT(walk(m.get()), 0) << "at the default priority layer 3 is evicted";
    }
    Model m = Open(tmai, &cfg);
    ASSERT_NE(m, nullptr) << LastError();
    tinyaiSetLayerPriority(m.get(), 3, 5.0f);
    tinyaiSetLayerPriority(m.get(), 9, 0.5f);
    EXPECT_EQ(tinyaiGetLayerDescriptor(m.get(), 3)->priority, 5.0f);
    EXPECT_EQ(tinyaiGetLayerDescriptor(m.get(), 9)->priority, 0.5f);
    EXPECT_EQ(walk(m.get()), 0);
    // not finite: refused, the priority unchanged
    tinyaiClearError();
    tinyaiSetLayerPriority(m.get(), 3, NAN);
    EXPECT_TRUE(Contains(LastError(), "finite")) << LastError();
    EXPECT_EQ(tinyaiGetLayerDescriptor(m.get(), 3)->priority, 5.0f);
    tinyaiResetLayerPriorities(m.get());
    for (int l = 0; l < s.n; l++) EXPECT_EQ(tinyaiGetLayerDescriptor(m.get(), l)->priority, 1.0f) << l;
}

// Every engine reads the same bytes: the embedding, a block, the head.
class Engines : public testing::TestWithParam<TinyAIIOEngine> {};

TEST_P(Engines, SameLayerBytes) {
    TAI_REQUIRE_TMAI(tmai);
    TinyAIMmapConfig cfg = tinyaiCreateDefaultMmapConfig();
    cfg.ioEngine = GetParam();
    Model m = Open(tmai, &cfg);
    if (!m && GetParam() == TINYAI_IO_URING && Contains(LastError(), "I/O engine"))
        GTEST_SKIP() << "io_uring unavailable: " << LastError();
    ASSERT_NE(m, nullptr) << LastError();
    TinyAIMappedModelStats st;
    ASSERT_TRUE(tinyaiGetMappedModelStats(m.get(), &st));
    const char *want = GetParam() == TINYAI_IO_URING ? "uring"
                       : GetParam() == TINYAI_IO_PREAD ? "pread"
                                                       : "mmap";
    EXPECT_STREQ(st.ioEngine, want);
    const int n = tinyaiGetMappedLayerCount(m.get());
    for (int l : {0, 1, n / 2, n - 1}) {
        const TinyAILayerDescriptor *d = tinyaiGetLayerDescriptor(m.get(), l);
        ExpectFileBytes(tmai, d, tinyaiGetLayerWeights(m.get(), l));
        tinyaiReleaseLayerWeights(m.get(), l);
    }
    ASSERT_TRUE(tinyaiGetMappedModelStats(m.get(), &st));
    EXPECT_EQ(st.loadErrors, 0u);
    EXPECT_GT(st.bytesRead, 0u);
}

INSTANTIATE_TEST_SUITE_P(AllEngines, Engines,
                         testing::Values(TINYAI_IO_URING, TINYAI_IO_PREAD, TINYAI_IO_MMAP),
                         [](const testing::TestParamInfo<TinyAIIOEngine> &i) {
                             return std::string(i.param == TINYAI_IO_URING   ? "uring"
                                                : i.param == TINYAI_IO_PREAD ? "pread"
                                                                             : "mmap");
                         });

} // namespace
