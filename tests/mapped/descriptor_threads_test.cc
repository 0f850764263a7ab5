// tests/mapped/descriptor_threads_test.cc: tinyaiGetLayerDescriptor from
// several threads at once while they load, release and prefetch layers of
// one mapped model (a synthetic model, a cache of a few layers, so layers
// are evicted all the time). Each thread reads its own copy of the
// descriptors, which no other thread writes: run under ThreadSanitizer
// (scripts/test.sh), any race is an error. Each thread also checks what
// holds under any timing: a layer it holds is active in its copy, at the
// image tinyaiGetLayerWeights returned.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <tinyai/llm.h>
#include <tinyai/utils/mmap_loader.h>

#include "tests/common/test_paths.h"

namespace {

TEST(LayerDescriptor, ThreadsReadTheirOwnCopiesWhileOthersLoadAndEvict) {
    TinyAISynthConfig sc = tinyaiCreateDefaultSynthConfig();
    sc.nVocab = 300;
    sc.nEmbd = 128;
    sc.nFF = 256;
    sc.nHead = 4;
    sc.nHeadKV = 2;
    sc.nLayer = 8;
    sc.nCtx = 64;
    sc.weightType = "Q8_0";
    sc.embeddingType = "Q8_0";
    sc.seed = 5;
    const std::string path = tai_test::TempPath(".gguf");
    ASSERT_EQ(tinyaiWriteSyntheticModel(&sc, path.c_str()), TINYAI_OK) << tinyaiLastErrorMessage();
    TinyAIMmapConfig mc = tinyaiCreateDefaultMmapConfig();
    mc.maxCacheSize = 1 << 20; // a few layers of the ten
    TinyAIMappedModel *m = tinyaiOpenMappedModel(path.c_str(), &mc);
    ASSERT_NE(m, nullptr) << tinyaiLastErrorMessage();
    const int n = tinyaiGetMappedLayerCount(m);
    ASSERT_EQ(n, 10);
    std::atomic<int> bad{0}, loads{0};
    std::vector<std::thread> th;
    for (int t = 0; t < 4; t++)
        th.emplace_back([&, t] {
            for (int i = 0; i < 200; i++) {
                const int l = (i * 3 + t) % n;
                const TinyAILayerDescriptor *d = tinyaiGetLayerDescriptor(m, l);
                if (!d || d->layerIndex != l || d->size == 0) bad++;
                // every field of every layer of this thread's copy, read
                // while other threads load and evict
                for (int k = 0; k < n; k++) {
                    const TinyAILayerDescriptor *e = tinyaiGetLayerDescriptor(m, k);
                    volatile uint64_t sink = e->accessCount + e->lastAccessed +
                                             (uintptr_t)e->cachedWeights + e->isActive +
                                             (uint64_t)e->priority;
                    (void)sink;
                }
                void *w = tinyaiGetLayerWeights(m, l);
                if (!w) continue; // the cache is full of other threads' layers now
                loads++;
                d = tinyaiGetLayerDescriptor(m, l);
                if (!d->isActive || d->cachedWeights != w) bad++;
                if (i % 5 == 0) (void)tinyaiPrefetchLayerWeights(m, (l + 1) % n);
                tinyaiReleaseLayerWeights(m, l);
            }
        });
    for (auto &x : th) x.join();
    EXPECT_EQ(bad.load(), 0);
    EXPECT_GT(loads.load(), 100);
    tinyaiCloseMappedModel(m);
    std::remove(path.c_str());
}

}  // namespace
