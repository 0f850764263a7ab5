// runtime: TinyAIModelConfig.loadInBackground. tinyaiLoadModel returns
// once the reads have started; a forward pass meanwhile runs each layer as
// its weights come in and computes what a waited load computes, bit for
// bit; tinyaiWaitModelLoaded gives the load's outcome; a layer that cannot
// be read fails the pass and the wait with the reason (and the next pass
// fails the same way, never with other weights); freeing the model while
// the load runs is safe.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <tinyai/llm.h>
#include <tinyai/utils/memory_optimizer.h>

#include "tests/common/test_paths.h"
#include "tests/model/memory_test_util.h"

namespace {

using tai_test::MemConfig;
using tai_test::ModelPtr;
using tai_test::TempFile;

TinyAISynthConfig Synth() {
    TinyAISynthConfig c = tinyaiCreateDefaultSynthConfig();
    c.nVocab = 512;
    c.nEmbd = 256;
    c.nFF = 768;
    c.nHead = 4;
    c.nHeadKV = 2;
    c.nLayer = 12;
    c.nCtx = 128;
    c.weightType = "Q4_0";
    c.embeddingType = "Q8_0";
    c.tiedOutput = false;
    c.seed = 5;
    return c;
}

TinyAIModelConfig Background(bool on) {
    TinyAIModelConfig c = MemConfig(0, TINYAI_EXEC_ADAPTIVE);
    c.loadInBackground = on;
    return c;
}

const std::vector<int32_t> kPrompt = {1, 7, 300, 42, 9};

TEST(BackgroundLoad, SameTokensAndLogitsAsAWaitedLoad) {
    TempFile f(tai_test::WriteSynthModel(Synth()));
    ModelPtr waited = tai_test::LoadModel(f.path, Background(false));
    ASSERT_TRUE(waited) << tinyaiLastErrorMessage();
    const tai_test::GreedyRun want = tai_test::Greedy(waited.get(), kPrompt, 6, 64);
    ASSERT_EQ(want.tokens.size(), 6u);
    for (int round = 0; round < 3; round++) {
        ModelPtr m = tai_test::LoadModel(f.path, Background(true));
        ASSERT_TRUE(m) << tinyaiLastErrorMessage();
        const tai_test::GreedyRun got = tai_test::Greedy(m.get(), kPrompt, 6, 64);
        EXPECT_EQ(got.tokens, want.tokens);
        EXPECT_EQ(got.logits, want.logits);
        // the first pass needed every layer: the load is over, and as whole
        // as a waited one
        ASSERT_EQ(tinyaiWaitModelLoaded(m.get()), TINYAI_OK) << tinyaiLastErrorMessage();
        TinyAIModelInfo info;
        ASSERT_EQ(tinyaiGetModelInfo(m.get(), &info), TINYAI_OK);
        EXPECT_GT(info.repackSeconds, 0.0);
        const TinyAIMemoryInfo mi = tai_test::MemInfo(m.get());
        EXPECT_EQ(mi.mode, TINYAI_EXEC_NORMAL);
        EXPECT_EQ(mi.cacheBytes, mi.modelBytes);
    }
    // a waited load: the wait returns at once
    EXPECT_EQ(tinyaiWaitModelLoaded(waited.get()), TINYAI_OK);
    EXPECT_EQ(tinyaiWaitModelLoaded(nullptr), TINYAI_ERR_INVALID_ARG);
}

// A large untied embedding table is read last (after the head, which is
// read first): a pass that starts while it loads looks its rows up in the
// file, and computes what a waited load computes, bit for bit, whichever
// way the timing falls (rows read, or the table already in).
TEST(BackgroundLoad, ATableStillLoadingIsLookedUpByRows) {
    TinyAISynthConfig sc = Synth();
    sc.nVocab = 32000; // an 8.7 MB Q8_0 table against blocks of 0.5 MB
    sc.nLayer = 4;
    TempFile f(tai_test::WriteSynthModel(sc));
    ModelPtr waited = tai_test::LoadModel(f.path, Background(false));
    ASSERT_TRUE(waited) << tinyaiLastErrorMessage();
    const tai_test::GreedyRun want = tai_test::Greedy(waited.get(), kPrompt, 4, 64);
    ASSERT_EQ(want.tokens.size(), 4u);
    for (int round = 0; round < 3; round++) {
        ModelPtr m = tai_test::LoadModel(f.path, Background(true));
        ASSERT_TRUE(m) << tinyaiLastErrorMessage();
        const tai_test::GreedyRun got = tai_test::Greedy(m.get(), kPrompt, 4, 64);
        EXPECT_EQ(got.tokens, want.tokens);
        EXPECT_EQ(got.logits, want.logits);
        ASSERT_EQ(tinyaiWaitModelLoaded(m.get()), TINYAI_OK) << tinyaiLastErrorMessage();
        // a pass after the load reads the table from memory: the same again
        tai_test::SessionPtr s = tai_test::NewSession(m.get(), 64);
        ASSERT_TRUE(s);
        ASSERT_EQ(tinyaiEval(s.get(), kPrompt.data(), kPrompt.size()), TINYAI_OK);
        const float *lg = tinyaiGetLogits(s.get());
        ASSERT_NE(lg, nullptr);
        ASSERT_FALSE(want.logits.empty());
        EXPECT_TRUE(std::equal(lg, lg + sc.nVocab, want.logits[0].begin()));
    }
}

TEST(BackgroundLoad, WaitThenDecodeEqualsAWaitedLoad) {
    TempFile f(tai_test::WriteSynthModel(Synth()));
    ModelPtr waited = tai_test::LoadModel(f.path, Background(false));
    ASSERT_TRUE(waited);
    const tai_test::GreedyRun want = tai_test::Greedy(waited.get(), kPrompt, 4, 64);
    ModelPtr m = tai_test::LoadModel(f.path, Background(true));
    ASSERT_TRUE(m) << tinyaiLastErrorMessage();
    ASSERT_EQ(tinyaiWaitModelLoaded(m.get()), TINYAI_OK) << tinyaiLastErrorMessage();
    ASSERT_EQ(tinyaiWaitModelLoaded(m.get()), TINYAI_OK);  // again: the same outcome
    const tai_test::GreedyRun got = tai_test::Greedy(m.get(), kPrompt, 4, 64);
    EXPECT_EQ(got.logits, want.logits);
}

TEST(BackgroundLoad, FreedWhileLoading) {
    TinyAISynthConfig sc = Synth();
    sc.nLayer = 24;
    TempFile f(tai_test::WriteSynthModel(sc));
    for (int i = 0; i < 5; i++) {
        ModelPtr m = tai_test::LoadModel(f.path, Background(true));
        ASSERT_TRUE(m) << tinyaiLastErrorMessage();
    }
    // and with a session created, before any pass
    ModelPtr m = tai_test::LoadModel(f.path, Background(true));
    ASSERT_TRUE(m);
    tai_test::SessionPtr s = tai_test::NewSession(m.get(), 32);
    ASSERT_TRUE(s);
}

// Re-planned while the load runs (the memory optimizer fits the model into
// a budget, streaming or resident): the background load is stopped first,
// and the re-planned model computes what a waited load computes.
TEST(BackgroundLoad, RePlannedWhileLoading) {
    TinyAISynthConfig sc = Synth();
    sc.nLayer = 24;
    TempFile f(tai_test::WriteSynthModel(sc));
    ModelPtr waited = tai_test::LoadModel(f.path, Background(false));
    ASSERT_TRUE(waited);
    const tai_test::GreedyRun want = tai_test::Greedy(waited.get(), kPrompt, 3, 64);
    const float tradeoffs[2] = {0.0f, 1.0f};  // streaming, then resident
    for (float t : tradeoffs) {
        TinyAIMemoryOptimizerConfig oc = {true, true, t, 0};
        TinyAIMemoryOptimizer *o = tinyaiCreateMemoryOptimizer(&oc);
        ASSERT_NE(o, nullptr);
        ModelPtr m = tai_test::LoadModel(f.path, Background(true));
        ASSERT_TRUE(m) << tinyaiLastErrorMessage();
        EXPECT_TRUE(tinyaiOptimizeMemoryUsage(o, m.get(), 64u << 20)) << tinyaiLastErrorMessage();
        const tai_test::GreedyRun got = tai_test::Greedy(m.get(), kPrompt, 3, 64);
        EXPECT_EQ(got.logits, want.logits);
        EXPECT_EQ(tinyaiWaitModelLoaded(m.get()), TINYAI_OK) << tinyaiLastErrorMessage();
        tinyaiFreeMemoryOptimizer(o);
    }
}

std::string ReadAll(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteAll(const std::string &path, const std::string &bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), (std::streamsize)bytes.size());
}

// A .tmai whose layer bytes no longer match their checksum: the load
// starts, the pass that needs the layer fails with the reason, so does the
// wait, and so does the next pass (the layer is read again, and fails
// again: no pass ever runs on bytes that failed their check).
TEST(BackgroundLoad, ALayerThatFailsItsCheckFailsThePassAndTheWait) {
    TempFile gguf(tai_test::WriteSynthModel(Synth()));
    TempFile tmai(tai_test::TempPath(".tmai"));
    ASSERT_EQ(tinyaiConvertModel(gguf.path.c_str(), tmai.path.c_str()), TINYAI_OK)
        << tinyaiLastErrorMessage();
    std::string bytes = ReadAll(tmai.path);
    ASSERT_GT(bytes.size(), 4096u);
    bytes[bytes.size() / 2] ^= 0x40;  // the middle of the file: a block's weights
    WriteAll(tmai.path, bytes);

    ModelPtr m = tai_test::LoadModel(tmai.path, Background(true));
    ASSERT_TRUE(m) << tinyaiLastErrorMessage();
    tai_test::SessionPtr s = tai_test::NewSession(m.get(), 32);
    ASSERT_TRUE(s);
    for (int pass = 0; pass < 2; pass++) {
        EXPECT_NE(tinyaiEval(s.get(), kPrompt.data(), kPrompt.size()), TINYAI_OK);
        EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("checksum"), std::string::npos)
            << tinyaiLastErrorMessage();
        tinyaiResetSession(s.get());
    }
    EXPECT_NE(tinyaiWaitModelLoaded(m.get()), TINYAI_OK);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("checksum"), std::string::npos)
        << tinyaiLastErrorMessage();

    // a waited load of the same file fails in tinyaiLoadModel itself
    TinyAIStatus st = TINYAI_OK;
    ModelPtr w = tai_test::LoadModel(tmai.path, Background(false), &st);
    EXPECT_FALSE(w);
    EXPECT_NE(st, TINYAI_OK);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("checksum"), std::string::npos);
}

}  // namespace
