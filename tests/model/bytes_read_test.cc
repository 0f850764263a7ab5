// runtime/model: what a memory limit costs in reads. Decoding walks the
// layers cyclically; with a cache of C bytes for M bytes of layers, Belady
// eviction (the schedule is known) keeps most of the cache across tokens and
// reads at most M - C + one layer per token, while LRU evicts exactly the
// layer needed next and reads the whole model every token.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include <tinyai/llm.h>

#include "tests/common/test_paths.h"
#include "tests/model/memory_test_util.h"

namespace {

using tai_test::MemConfig;
using tai_test::ModelPtr;
using tai_test::SessionPtr;
using tai_test::TempFile;

constexpr int kLayers = 16;
constexpr int kCtx = 64;

// Sixteen equal blocks of ~0.8 MB; the embedding and head are small.
TinyAISynthConfig ManyLayers() {
    TinyAISynthConfig c = tinyaiCreateDefaultSynthConfig();
    c.nVocab = 300;
    c.nEmbd = 256;
    c.nFF = 768;
    c.nHead = 4;
    c.nHeadKV = 4;
    c.nLayer = kLayers;
    c.nCtx = 128;
    c.weightType = "Q8_0";
    c.embeddingType = "Q8_0";
    c.tiedOutput = false;
    c.seed = 21;
    return c;
}

struct Measured {
    double per_token;     // bytes read per generated token after warm-up
    double loads_per_token;
    size_t cache, model_file, largest;
    size_t small;         // embedding and head, in cache granules (4 KiB)
};

size_t Granules(size_t b) { return (b + 4095) / 4096 * 4096; }

// Decodes `warm` tokens, resets the counters, decodes `n` more and reports
// bytes read per token. model_file: the bytes of all layers in the file (what
// reading each once costs).
Measured Decode(const std::string &path, size_t limit, TinyAIExecutionMode mode,
                TinyAICachePolicy policy, int warm, int n) {
    Measured r{};
    TinyAIModelConfig c = MemConfig(limit, mode);
    c.cachePolicy = policy;
    c.contextSize = kCtx;
    c.prefetchWindow = -1;  // reads on demand only: what is read cannot depend on timing
    ModelPtr m = tai_test::LoadModel(path, c);
    EXPECT_TRUE(m) << tinyaiLastErrorMessage();
    if (!m) return r;
    SessionPtr s = tai_test::NewSession(m.get(), kCtx);
    if (!s) return r;
    const int nv = tai_test::VocabSize(m.get());
    int32_t prompt[4] = {1, 260, 270, 280};
    EXPECT_EQ(tinyaiEval(s.get(), prompt, 4), TINYAI_OK);
    for (int i = 0; i < warm + n; i++) {
        if (i == warm) tinyaiResetMemoryStats(m.get());
        int32_t id = tai_test::ArgMax(tinyaiGetLogits(s.get()), nv);
        EXPECT_EQ(tinyaiEval(s.get(), &id, 1), TINYAI_OK) << tinyaiLastErrorMessage();
    }
    TinyAIMemoryInfo mi = tai_test::MemInfo(m.get());
    r.per_token = (double)mi.bytesRead / n;
    r.loads_per_token = (double)mi.loads / n;
    r.cache = mi.cacheBytes;
    for (int l = 0; l < kLayers + 2; l++) {
        TinyAILayerInfo li;
        EXPECT_EQ(tinyaiGetModelLayerInfo(m.get(), l, &li), TINYAI_OK);
        r.model_file += li.size;
        if (li.size > r.largest) r.largest = li.size;
        if (l == 0 || l == kLayers + 1) r.small += Granules(li.size);
    }
    EXPECT_LE(mi.peakBytes, limit);
    return r;
}

size_t Minimum(const std::string &path) {
    TinyAIModelConfig c = MemConfig(4096, TINYAI_EXEC_MEMORY_OPT);
    c.contextSize = kCtx;
    ModelPtr m = tai_test::LoadModel(path, c);
    EXPECT_TRUE(m);
    TinyAISession *s = nullptr;
    EXPECT_EQ(tinyaiCreateSession(m.get(), kCtx, &s), TINYAI_ERR_RANGE);
    return tai_test::MinimumFromMessage(tinyaiLastErrorMessage());
}

TEST(BytesRead, BeladyReadsOnlyWhatTheCacheCannotHoldLruReadsEverything) {
    TempFile g(tai_test::WriteSynthModel(ManyLayers()));
    TempFile t(tai_test::ConvertToTmai(g.path));
    for (const std::string &path : {t.path, g.path}) {
        SCOPED_TRACE(path);
        const size_t minimum = Minimum(path);
        ASSERT_GT(minimum, 0u);
        // probe the model's size once, without a limit worth the name
        Measured all = Decode(path, 1u << 30, TINYAI_EXEC_MEMORY_OPT, TINYAI_CACHE_BELADY, 1, 2);
        ASSERT_GT(all.model_file, 10u << 20);
        EXPECT_EQ(all.per_token, 0.0);  // everything fits: nothing read after warm-up
        for (double frac : {0.25, 0.5, 0.75}) {
            const size_t limit = minimum + (size_t)(frac * (double)all.model_file);
            Measured b = Decode(path, limit, TINYAI_EXEC_MEMORY_OPT, TINYAI_CACHE_BELADY, 3, 10);
            Measured l = Decode(path, limit, TINYAI_EXEC_MEMORY_OPT, TINYAI_CACHE_LRU, 3, 10);
            // M - C + L, with C what the cache can use: whole blocks (equal,
            // granule-rounded) next to the small embedding and head. The
            // rest of C, less than a block, holds no block, so a bound with
            // the raw C fails whenever C is not a multiple of a block
            // (reported, not asserted).
            const size_t blocks = (b.cache - b.small) / Granules(b.largest);
            const double usable = (double)(blocks * b.largest);
            const double bound = (double)all.model_file - usable + (double)b.largest;
            const double raw = (double)all.model_file - (double)b.cache + (double)b.largest;
            printf("[ %s ] M %zu, cache %zu (%.0f%%, %zu blocks of %zu): belady %.0f bytes/token "
                   "(bound %.0f; with the raw cache %.0f%s), %.1f loads; lru %.0f bytes/token, "
                   "%.1f loads\n",
                   path.substr(path.size() - 4).c_str(), all.model_file, b.cache,
                   100.0 * b.cache / all.model_file, blocks, b.largest, b.per_token, bound, raw,
                   b.per_token > raw ? " exceeded" : "", b.loads_per_token, l.per_token,
                   l.loads_per_token);
            EXPECT_LT(b.cache, all.model_file);
            EXPECT_GE(blocks, 1u);
            EXPECT_LE(b.per_token, bound) << frac;
            // LRU evicts what is needed next: the whole model every token
            EXPECT_GE(l.per_token, 0.95 * (double)all.model_file) << frac;
            EXPECT_LE(l.per_token, (double)all.model_file + (double)l.largest) << frac;
            // and Belady saves at least most of what the cache holds
            EXPECT_LT(b.per_token, l.per_token - 0.5 * (double)b.cache) << frac;
        }
    }
}

}  // namespace
