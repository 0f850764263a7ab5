// runtime/mapped with bad input: NULL models, layer indices out of range,
// releases without a hold, bad configurations (each refused with a message
// saying what and, for the cache size, the minimum), closing with work in
// flight, and damaged files (a flipped byte inside a layer is a checksum
// error naming the layer; truncated or foreign files are refused at open).
// Run under --config=asan as well: none of this may crash or leak.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <string>
#include <vector>

#include "tests/mapped/mapped_test_util.h"

namespace {

using tai_mapped_test::Contains;
using tai_mapped_test::CorruptCopy;
using tai_mapped_test::LastError;
using tai_mapped_test::LayerSizes;
using tai_mapped_test::ReadFile;
using tai_mapped_test::ReadRange;
using tai_mapped_test::RoundUp;
using tai_mapped_test::Sizes;
using tai_mapped_test::WriteFile;

TEST(MappedBadInput, NullModelEverywhere) {
    tinyaiClearError();
    EXPECT_EQ(tinyaiGetMappedLayerCount(nullptr), -1);
    EXPECT_TRUE(Contains(LastError(), "NULL")) << LastError();
    tinyaiClearError();
    EXPECT_EQ(tinyaiGetLayerDescriptor(nullptr, 0), nullptr);
    EXPECT_TRUE(Contains(LastError(), "model is NULL")) << LastError();
    tinyaiClearError();
    EXPECT_EQ(tinyaiGetLayerWeights(nullptr, 0), nullptr);
    EXPECT_TRUE(Contains(LastError(), "model is NULL")) << LastError();
    tinyaiClearError();
    EXPECT_FALSE(tinyaiPrefetchLayerWeights(nullptr, 0));
    EXPECT_TRUE(Contains(LastError(), "model is NULL")) << LastError();
    tinyaiClearError();
    tinyaiReleaseLayerWeights(nullptr, 0);
    EXPECT_TRUE(Contains(LastError(), "model is NULL")) << LastError();
    tinyaiClearError();
    tinyaiSetLayerPriority((TinyAIMappedModel *)nullptr, 0, 2.0f);
    EXPECT_TRUE(Contains(LastError(), "model is NULL")) << LastError();
    EXPECT_EQ(tinyaiGetMappedModelMemoryUsage(nullptr), 0u);
    EXPECT_EQ(tinyaiGetLayerImageSize(nullptr, 0), 0u);
    TinyAIMappedModelStats st;
    EXPECT_FALSE(tinyaiGetMappedModelStats(nullptr, &st));
    tinyaiResetLayerPriorities(nullptr);
    tinyaiResetMappedModelStats(nullptr);
    tinyaiCloseMappedModel(nullptr);
}

TEST(MappedBadInput, OpenWithoutAFile) {
    EXPECT_EQ(tinyaiOpenMappedModel(nullptr, nullptr), nullptr);
    EXPECT_TRUE(Contains(LastError(), "no path")) << LastError();
    EXPECT_EQ(tinyaiOpenMappedModel("", nullptr), nullptr);
    EXPECT_TRUE(Contains(LastError(), "no path")) << LastError();
    const std::string missing = tai_test::TempPath(".tmai");
    EXPECT_EQ(tinyaiOpenMappedModel(missing.c_str(), nullptr), nullptr);
    EXPECT_TRUE(Contains(LastError(), missing)) << LastError();
    const std::string dir = tai_test::TempPath(".dir");
    ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
    EXPECT_EQ(tinyaiOpenMappedModel(dir.c_str(), nullptr), nullptr);
    EXPECT_TRUE(Contains(LastError(), dir)) << LastError();
    rmdir(dir.c_str());
    const std::string junk = tai_test::TempPath(".tmai");
    WriteFile(junk, std::string(100000, 'x'));
    EXPECT_EQ(tinyaiOpenMappedModel(junk.c_str(), nullptr), nullptr);
    EXPECT_TRUE(Contains(LastError(), junk)) << LastError();
    std::remove(junk.c_str());
}

class MappedModelTest : public testing::Test {
  protected:
    void SetUp() override {
        TAI_REQUIRE_TMAI(tmai);
        path_ = tmai;
        m_ = tinyaiOpenMappedModel(path_.c_str(), nullptr);
        ASSERT_NE(m_, nullptr) << LastError();
        sizes_ = LayerSizes(m_);
    }
    void TearDown() override { tinyaiCloseMappedModel(m_); }
    std::string path_;
    TinyAIMappedModel *m_ = nullptr;
    Sizes sizes_;
};

TEST_F(MappedModelTest, LayerIndexOutOfRange) {
    const int n = sizes_.n;
    ASSERT_EQ(n, 32);
    const std::string range = "out of range (0..31)";
    for (int bad : {-1, n, 1 << 30, -(1 << 30)}) {
        SCOPED_TRACE(bad);
        tinyaiClearError();
        EXPECT_EQ(tinyaiGetLayerDescriptor(m_, bad), nullptr);
        EXPECT_TRUE(Contains(LastError(), range)) << LastError();
        tinyaiClearError();
        EXPECT_EQ(tinyaiGetLayerWeights(m_, bad), nullptr);
        EXPECT_TRUE(Contains(LastError(), "tinyaiGetLayerWeights: layer " + std::to_string(bad) +
                                              " " + range))
            << LastError();
        tinyaiClearError();
        EXPECT_FALSE(tinyaiPrefetchLayerWeights(m_, bad));
        EXPECT_TRUE(Contains(LastError(), range)) << LastError();
        tinyaiClearError();
        tinyaiReleaseLayerWeights(m_, bad);
        EXPECT_TRUE(Contains(LastError(), range)) << LastError();
        tinyaiClearError();
        tinyaiSetLayerPriority(m_, bad, 3.0f);
        EXPECT_TRUE(Contains(LastError(), range)) << LastError();
        EXPECT_EQ(tinyaiGetLayerImageSize(m_, bad), 0u);
    }
    EXPECT_EQ(tinyaiGetMappedModelMemoryUsage(m_), 0u);
    for (int l = 0; l < n; l++) EXPECT_EQ(tinyaiGetLayerDescriptor(m_, l)->priority, 1.0f);
}

TEST_F(MappedModelTest, ReleaseWithoutHold) {
    tinyaiClearError();
    tinyaiReleaseLayerWeights(m_, 4); // never got
    EXPECT_TRUE(Contains(LastError(), "layer 4 is not held")) << LastError();
    void *w = tinyaiGetLayerWeights(m_, 4);
    ASSERT_NE(w, nullptr) << LastError();
    tinyaiReleaseLayerWeights(m_, 4);
    const size_t used = tinyaiGetMappedModelMemoryUsage(m_);
    tinyaiClearError();
    tinyaiReleaseLayerWeights(m_, 4); // twice
    EXPECT_TRUE(Contains(LastError(), "layer 4 is not held")) << LastError();
    EXPECT_EQ(tinyaiGetMappedModelMemoryUsage(m_), used);
    const TinyAILayerDescriptor *d = tinyaiGetLayerDescriptor(m_, 4);
    EXPECT_TRUE(d->isActive);
    EXPECT_EQ(d->accessCount, 1u);
    // and holding works as before
    EXPECT_EQ(tinyaiGetLayerWeights(m_, 4), w);
    tinyaiReleaseLayerWeights(m_, 4);
}

// maxCacheSize 0, one byte below the largest layer image (refused, the
// message stating the minimum), exactly the minimum (every layer loads, one
// at a time), the same with an 8 KiB allocation unit.
TEST_F(MappedModelTest, CacheSizeLimits) {
    TinyAIMmapConfig cfg = tinyaiCreateDefaultMmapConfig();
    cfg.maxCacheSize = 0;
    EXPECT_EQ(tinyaiOpenMappedModel(path_.c_str(), &cfg), nullptr);
    EXPECT_TRUE(Contains(LastError(), "maxCacheSize must be > 0")) << LastError();
    for (size_t unit : {(size_t)4096, (size_t)8192}) {
        SCOPED_TRACE(unit);
        cfg = tinyaiCreateDefaultMmapConfig();
        cfg.minLayerCacheSize = unit;
        const size_t need = RoundUp(sizes_.largest, unit);
        cfg.maxCacheSize = need - 1;
        EXPECT_EQ(tinyaiOpenMappedModel(path_.c_str(), &cfg), nullptr);
        EXPECT_TRUE(Contains(LastError(), "at least " + std::to_string(need) + " bytes"))
            << LastError();
        EXPECT_TRUE(Contains(LastError(), std::to_string(need - 1))) << LastError();
        cfg.maxCacheSize = need;
        TinyAIMappedModel *m = tinyaiOpenMappedModel(path_.c_str(), &cfg);
        ASSERT_NE(m, nullptr) << LastError();
        for (int l = sizes_.n - 1; l >= 0; l--) { // the embedding last, as a miss
            void *w = tinyaiGetLayerWeights(m, l);
            ASSERT_NE(w, nullptr) << l << ": " << LastError();
            const TinyAILayerDescriptor *d = tinyaiGetLayerDescriptor(m, l);
            const std::string want = ReadRange(path_, d->offset, d->size);
            EXPECT_EQ(std::memcmp(w, want.data(), d->size), 0) << l;
            EXPECT_LE(tinyaiGetMappedModelMemoryUsage(m), need);
            tinyaiReleaseLayerWeights(m, l);
        }
        tinyaiCloseMappedModel(m);
    }
}

TEST_F(MappedModelTest, BadConfigurations) {
    struct Case {
        void (*set)(TinyAIMmapConfig *);
        const char *message;
    } cases[] = {
        {[](TinyAIMmapConfig *c) { c->prefetchThreads = 0; }, "prefetchThreads must be 1..16, got 0"},
        {[](TinyAIMmapConfig *c) { c->prefetchThreads = 17; }, "prefetchThreads must be 1..16, got 17"},
        {[](TinyAIMmapConfig *c) { c->prefetchThreads = -3; }, "prefetchThreads must be 1..16, got -3"},
        {[](TinyAIMmapConfig *c) { c->prefetchWindow = -1; }, "prefetchWindow must be 0..64, got -1"},
        {[](TinyAIMmapConfig *c) { c->prefetchWindow = 65; }, "prefetchWindow must be 0..64, got 65"},
        {[](TinyAIMmapConfig *c) { c->ioEngine = (TinyAIIOEngine)7; }, "unknown ioEngine 7"},
        {[](TinyAIMmapConfig *c) { c->cachePolicy = (TinyAICachePolicy)-1; }, "unknown cachePolicy -1"},
        {[](TinyAIMmapConfig *c) { c->numaPolicy = (TinyAINumaPolicy)9; }, "unknown numaPolicy 9"},
        {[](TinyAIMmapConfig *c) { c->minLayerCacheSize = (size_t)2 << 30; }, "minLayerCacheSize"},
    };
    for (const Case &k : cases) {
        TinyAIMmapConfig cfg = tinyaiCreateDefaultMmapConfig();
        k.set(&cfg);
        TinyAIMappedModel *m = tinyaiOpenMappedModel(path_.c_str(), &cfg);
        EXPECT_EQ(m, nullptr) << k.message;
        tinyaiCloseMappedModel(m);
        EXPECT_TRUE(Contains(LastError(), k.message)) << LastError();
    }
    // the edges that are allowed
    for (int threads : {1, 16}) {
        TinyAIMmapConfig cfg = tinyaiCreateDefaultMmapConfig();
        cfg.prefetchThreads = threads;
        cfg.prefetchWindow = threads == 16 ? 64 : 0;
        TinyAIMappedModel *m = tinyaiOpenMappedModel(path_.c_str(), &cfg);
        ASSERT_NE(m, nullptr) << LastError();
        EXPECT_NE(tinyaiGetLayerWeights(m, 2), nullptr) << LastError();
        tinyaiReleaseLayerWeights(m, 2);
        tinyaiCloseMappedModel(m);
    }
}

// Closing with prefetches in flight (several loader threads busy) and with
// layers still held: the close waits for the loads and frees everything.
TEST_F(MappedModelTest, CloseWithWorkInFlight) {
    for (int round = 0; round < 4; round++) {
        TinyAIMmapConfig cfg = tinyaiCreateDefaultMmapConfig();
        cfg.prefetchThreads = 4;
        cfg.prefetchWindow = 8;
        TinyAIMappedModel *m = tinyaiOpenMappedModel(path_.c_str(), &cfg);
        ASSERT_NE(m, nullptr) << LastError();
        if (round % 2) {
            ASSERT_NE(tinyaiGetLayerWeights(m, 1), nullptr) << LastError(); // starts the window
        }
        for (int l = sizes_.n - 1; l >= 0; l--) (void)tinyaiPrefetchLayerWeights(m, l);
        tinyaiCloseMappedModel(m);
    }
}

// A byte flipped inside layer 5 of the file: loading it fails with a
// checksum error naming the file and the layer, on demand and when the
// failed load was a prefetch; it is tried again (and fails again) on the
// next get; every other layer is unaffected.
TEST_F(MappedModelTest, CorruptLayerIsAChecksumError) {
    const TinyAILayerDescriptor *d5 = tinyaiGetLayerDescriptor(m_, 5);
    const std::string bad = CorruptCopy(path_, d5->offset + d5->size / 2);
    for (bool prefetch : {false, true}) {
        SCOPED_TRACE(prefetch);
        TinyAIMmapConfig cfg = tinyaiCreateDefaultMmapConfig();
        cfg.prefetchEnabled = prefetch;
        TinyAIMappedModel *m = tinyaiOpenMappedModel(bad.c_str(), &cfg);
        ASSERT_NE(m, nullptr) << LastError(); // layers are verified when loaded
        if (prefetch) {
            // layer 4's get starts reading layer 5 in the background
            ASSERT_NE(tinyaiGetLayerWeights(m, 4), nullptr) << LastError();
            tinyaiReleaseLayerWeights(m, 4);
        }
        for (int attempt = 0; attempt < 2; attempt++) {
            tinyaiClearError();
            EXPECT_EQ(tinyaiGetLayerWeights(m, 5), nullptr);
            const std::string msg = LastError();
            EXPECT_TRUE(Contains(msg, "checksum mismatch")) << msg;
            EXPECT_TRUE(Contains(msg, "layer 5 (block 4)")) << msg;
            EXPECT_TRUE(Contains(msg, bad)) << msg;
            EXPECT_TRUE(Contains(msg, "offset " + std::to_string(d5->offset))) << msg;
            const TinyAILayerDescriptor *d = tinyaiGetLayerDescriptor(m, 5);
            EXPECT_FALSE(d->isActive);
            EXPECT_EQ(d->cachedWeights, nullptr);
        }
        TinyAIMappedModelStats st;
        ASSERT_TRUE(tinyaiGetMappedModelStats(m, &st));
        EXPECT_GE(st.loadErrors, 2u);
        for (int l : {0, 4, 6, sizes_.n - 1}) {
            void *w = tinyaiGetLayerWeights(m, l);
            EXPECT_NE(w, nullptr) << l << ": " << LastError();
            if (w) tinyaiReleaseLayerWeights(m, l);
        }
        tinyaiCloseMappedModel(m);
    }
    std::remove(bad.c_str());
}

// verifyEveryLoad: a layer damaged on disk after its first (verified) load
// is caught when it is loaded again; without it the second load is trusted.
// The damage is one the file system does not see (the file keeps its size
// and modification time, as when the medium returns other bytes): a write
// that it sees is a changed file, refused whatever the setting
// (tests/model/file_changed_test.cc).
TEST_F(MappedModelTest, VerifyEveryLoadCatchesLaterDamage) {
    for (bool every : {true, false}) {
        SCOPED_TRACE(every);
        const std::string copy = CorruptCopy(path_, (uint64_t)-1); // an intact copy
        TinyAIMmapConfig cfg = tinyaiCreateDefaultMmapConfig();
        cfg.maxCacheSize = RoundUp(sizes_.largest, 4096); // room for one embedding
        cfg.prefetchEnabled = false;
        cfg.verifyEveryLoad = every;
        TinyAIMappedModel *m = tinyaiOpenMappedModel(copy.c_str(), &cfg);
        ASSERT_NE(m, nullptr) << LastError();
        const TinyAILayerDescriptor *d = tinyaiGetLayerDescriptor(m, 3);
        ASSERT_NE(tinyaiGetLayerWeights(m, 3), nullptr) << LastError();
        tinyaiReleaseLayerWeights(m, 3);
        // damage the file in place, keeping its modification time, then
        // push layer 3 out with the embedding
        {
            struct stat before;
            ASSERT_EQ(stat(copy.c_str(), &before), 0);
            std::string data = ReadFile(copy);
            data[d->offset + 100] ^= 0x01;
            FILE *f = std::fopen(copy.c_str(), "r+b");
            ASSERT_NE(f, nullptr);
            std::fseek(f, (long)(d->offset + 100), SEEK_SET);
            std::fputc((unsigned char)data[d->offset + 100], f);
            std::fclose(f);
            const struct timespec t[2] = {before.st_atim, before.st_mtim};
            ASSERT_EQ(utimensat(AT_FDCWD, copy.c_str(), t, 0), 0);
        }
        ASSERT_NE(tinyaiGetLayerWeights(m, 0), nullptr) << LastError();
        tinyaiReleaseLayerWeights(m, 0);
        ASSERT_FALSE(tinyaiGetLayerDescriptor(m, 3)->isActive);
        void *w = tinyaiGetLayerWeights(m, 3);
        if (every) {
            EXPECT_EQ(w, nullptr);
            EXPECT_TRUE(Contains(LastError(), "layer 3 (block 2)")) << LastError();
            EXPECT_TRUE(Contains(LastError(), "checksum")) << LastError();
        } else {
            EXPECT_NE(w, nullptr) << LastError();
            tinyaiReleaseLayerWeights(m, 3);
        }
        tinyaiCloseMappedModel(m);
        std::remove(copy.c_str());
    }
}

// Truncated files are refused at open, whether the cut is in the middle of
// the layers, a few bytes before the end, or in the header.
TEST_F(MappedModelTest, TruncatedFileIsRefusedAtOpen) {
    const std::string data = ReadFile(path_);
    const TinyAILayerDescriptor *last = tinyaiGetLayerDescriptor(m_, sizes_.n - 1);
    for (size_t keep : {data.size() / 2, (size_t)(last->offset + last->size - 10), (size_t)100,
                        (size_t)0}) {
        SCOPED_TRACE(keep);
        const std::string cut = tai_test::TempPath(".tmai");
        WriteFile(cut, data.substr(0, keep));
        TinyAIMappedModel *m = tinyaiOpenMappedModel(cut.c_str(), nullptr);
        EXPECT_EQ(m, nullptr);
        tinyaiCloseMappedModel(m);
        EXPECT_TRUE(Contains(LastError(), cut)) << LastError();
        std::remove(cut.c_str());
    }
}

} // namespace
