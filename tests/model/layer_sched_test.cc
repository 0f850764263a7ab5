// The layer scheduler (<tinyai/utils/layer_scheduler.h>): a prompt run one
// layer at a time in chunks gives the logits tinyaiEval gives, bit for bit,
// at any chunk size (the activation bound shrinks the chunks and the
// workspace stays under it); checkpoints are kept, dropped or recomputed as
// set; the estimate predicts the measured peak within 10%; bad arguments
// are refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <tinyai/llm.h>
#include <tinyai/utils/layer_scheduler.h>

#include "tests/model/rewrite_test_util.h"

namespace {

using tai_test::ModelPtr;

std::vector<int32_t> Prompt(int n) {
    std::vector<int32_t> t;
    for (int i = 0; i < n; i++) t.push_back((i * 53 + 7) % 500 + 1);
    return t;
}

std::vector<float> EvalLogits(TinyAIModel *m, const std::vector<int32_t> &toks) {
    TinyAISession *s = nullptr;
    EXPECT_EQ(tinyaiCreateSession(m, 0, &s), TINYAI_OK) << tinyaiLastErrorMessage();
    EXPECT_EQ(tinyaiEval(s, toks.data(), toks.size()), TINYAI_OK);
    TinyAIModelInfo info;
    tinyaiGetModelInfo(m, &info);
    std::vector<float> v(tinyaiGetLogits(s), tinyaiGetLogits(s) + info.nVocab);
    tinyaiFreeSession(s);
    return v;
}

// Runs every layer in order, each from the scheduler's own copy of the
// previous output; returns the logits.
std::vector<float> LayerMajor(TinyAILayerScheduler *ls, int n_layers, std::vector<int32_t> toks) {
    TinyAITensor ids = {TINYAI_TENSOR_I32, toks.data(), (int64_t)toks.size(), 1,
                        toks.size() * sizeof(int32_t)};
    TinyAITensor out = {TINYAI_TENSOR_F32, nullptr, 0, 0, 0};
    for (int l = 0; l < n_layers; l++) {
        out.data = nullptr;
        EXPECT_TRUE(tinyaiExecuteLayerWithMemoryOptimization(ls, l, l == 0 ? &ids : nullptr, &out))
            << l << ": " << tinyaiLastErrorMessage();
    }
    const float *l = static_cast<const float *>(out.data);
    return l ? std::vector<float>(l, l + out.width) : std::vector<float>();
}

TEST(LayerScheduler, LayerMajorChunksGiveTheSameLogitsAsEval) {
    const std::string src = tai_test::SynthModel("Q8_0", false, 256, 768, 3, 512, 8);
    ModelPtr m = tai_test::LoadModel(src);
    ASSERT_TRUE(m);
    const std::vector<int32_t> toks = Prompt(100);
    const std::vector<float> want = EvalLogits(m.get(), toks);
    int last_chunk = 1 << 30;
    for (size_t bound : {(size_t)0, (size_t)4 << 20, (size_t)1 << 20, (size_t)400 << 10}) {
        TinyAILayerSchedulerConfig c = {false, 0.5f, false, bound};
        TinyAILayerScheduler *ls = tinyaiCreateLayerScheduler(m.get(), &c);
        ASSERT_NE(ls, nullptr) << tinyaiLastErrorMessage();
        TinyAIExecutionPlan *p = tinyaiCreateExecutionPlan(ls);
        ASSERT_NE(p, nullptr) << tinyaiLastErrorMessage();
        EXPECT_EQ(p->nLayers, 5);
        if (bound) {
            EXPECT_LE(p->activationBytes, bound);
        }
        EXPECT_LE(p->chunkTokens, last_chunk);
        last_chunk = p->chunkTokens;
        const std::vector<float> got = LayerMajor(ls, p->nLayers, toks);
        ASSERT_EQ(got.size(), want.size());
        EXPECT_EQ(memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
            << "chunks of " << p->chunkTokens;
        tinyaiFreeLayerScheduler(ls);
    }
    EXPECT_LT(last_chunk, 100) << "the smallest bound should split the prompt";
    TinyAILayerSchedulerConfig tiny = {false, 0.5f, false, 1000};
    TinyAILayerScheduler *ls = tinyaiCreateLayerScheduler(m.get(), &tiny);
    ASSERT_NE(ls, nullptr);
    EXPECT_EQ(tinyaiCreateExecutionPlan(ls), nullptr);
    EXPECT_NE(strstr(tinyaiLastErrorMessage(), "below one token"), nullptr);
    tinyaiFreeLayerScheduler(ls);
}

// A model that soft-caps its final logits (gemma3's final_logit_softcapping):
// the layer scheduler's logits are capped as tinyaiEval's are, bit for bit.
TEST(LayerScheduler, SoftCappedLogitsAreThoseOfEval) {
    TinyAISynthConfig c = tinyaiCreateDefaultSynthConfig();
    c.architecture = "gemma3";
    c.nVocab = 320;
    c.nEmbd = 128;
    c.nFF = 256;
    c.nHead = 2;
    c.nHeadKV = 1;
    c.nLayer = 2;
    c.nCtx = 128;
    c.weightType = "Q8_0";
    c.embeddingType = "Q8_0";
    c.slidingWindow = 8;
    c.logitSoftcap = 0.25f; // well inside the logits' range: capping changes them
    c.seed = 5;
    const std::string src = tai_test::WriteSynthModel(c);
    ModelPtr m = tai_test::LoadModel(src);
    ASSERT_TRUE(m);
    std::vector<int32_t> toks = Prompt(40);
    for (int32_t &t : toks) t %= 320;
    const std::vector<float> want = EvalLogits(m.get(), toks);
    float top = 0;
    for (float v : want) top = std::max(top, std::fabs(v));
    EXPECT_LE(top, 0.25f);
    EXPECT_GT(top, 0.2f); // capped, not small to begin with
    TinyAILayerSchedulerConfig lc = {false, 0.5f, false, 0};
    TinyAILayerScheduler *ls = tinyaiCreateLayerScheduler(m.get(), &lc);
    ASSERT_NE(ls, nullptr) << tinyaiLastErrorMessage();
    TinyAIExecutionPlan *p = tinyaiCreateExecutionPlan(ls);
    ASSERT_NE(p, nullptr) << tinyaiLastErrorMessage();
    const std::vector<float> got = LayerMajor(ls, p->nLayers, toks);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0);
    tinyaiFreeLayerScheduler(ls);
    std::remove(src.c_str());
}

TEST(LayerScheduler, CheckpointsAreKeptDroppedOrRecomputed) {
    const std::string src = tai_test::SynthModel("F16", false, 128, 384, 4, 512, 9);
    ModelPtr m = tai_test::LoadModel(src);
    std::vector<int32_t> toks = Prompt(40);
    TinyAITensor ids = {TINYAI_TENSOR_I32, toks.data(), 40, 1, 40 * sizeof(int32_t)};
    for (TinyAICheckpointStrategy st :
         {TINYAI_CHECKPOINT_NONE, TINYAI_CHECKPOINT_RECOMPUTE, TINYAI_CHECKPOINT_STORE}) {
        TinyAILayerSchedulerConfig c = {false, 0.5f, false, 0};
        TinyAILayerScheduler *ls = tinyaiCreateLayerScheduler(m.get(), &c);
        ASSERT_NE(ls, nullptr);
        for (int l = 0; l < 6; l++) ASSERT_TRUE(tinyaiSetLayerCheckpointingStrategy(ls, l, st));
        ASSERT_TRUE(tinyaiSetLayerCheckpointingStrategy(ls, 0, TINYAI_CHECKPOINT_STORE));
        std::vector<float> first(40 * 128), again(40 * 128);
        TinyAITensor out = {TINYAI_TENSOR_F32, first.data(), 0, 0, first.size() * sizeof(float)};
        for (int l = 0; l <= 3; l++)
            ASSERT_TRUE(tinyaiExecuteLayerWithMemoryOptimization(ls, l, l ? nullptr : &ids, &out))
                << l;
        // layer 3 again: it needs layer 2's output, consumed already
        TinyAITensor out2 = {TINYAI_TENSOR_F32, again.data(), 0, 0, again.size() * sizeof(float)};
        const bool ok = tinyaiExecuteLayerWithMemoryOptimization(ls, 3, nullptr, &out2);
        const TinyAILayerSchedulerStats s = tinyaiGetLayerSchedulerStats(ls);
        if (st == TINYAI_CHECKPOINT_NONE) {
            EXPECT_FALSE(ok);
            EXPECT_NE(strstr(tinyaiLastErrorMessage(), "not kept"), nullptr);
        } else {
            ASSERT_TRUE(ok) << tinyaiLastErrorMessage();
            EXPECT_EQ(first, again);
            // recomputed from layer 0 (stored): layers 1 and 2
            EXPECT_EQ(s.layersRecomputed, st == TINYAI_CHECKPOINT_RECOMPUTE ? 2 : 0);
        }
        tinyaiFreeLayerScheduler(ls);
    }
}

// The estimate before running against the measured peak after, for a
// memory-saving and a speed-first configuration on the real model.
TEST(LayerScheduler, TheEstimatePredictsThePeakWithinTenPercent) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.threads = 2;
    mc.contextSize = 512;
    TinyAIModel *mp = nullptr;
    ASSERT_EQ(tinyaiLoadModel(path.c_str(), &mc, &mp), TINYAI_OK) << tinyaiLastErrorMessage();
    ModelPtr m(mp);
    TinyAIModelInfo info;
    tinyaiGetModelInfo(m.get(), &info);
    const std::vector<int32_t> toks = Prompt(300);
    for (float t : {0.0f, 1.0f}) {
        TinyAILayerSchedulerConfig c = {true, t, true, 2u << 20};
        TinyAILayerScheduler *ls = tinyaiCreateLayerScheduler(m.get(), &c);
        ASSERT_NE(ls, nullptr) << tinyaiLastErrorMessage();
        TinyAITensor ids = {TINYAI_TENSOR_I32, (void *)toks.data(), 300, 1, 300 * sizeof(int32_t)};
        ASSERT_TRUE(tinyaiExecuteLayerWithMemoryOptimization(ls, 0, &ids, nullptr)) << tinyaiLastErrorMessage();
        const TinyAIMemoryEstimate e = tinyaiEstimateMemoryUsage(ls);
        EXPECT_EQ(e.tokens, 300);
        EXPECT_LE(e.activationBytes, 2u << 20);
        for (int l = 1; l < info.nFileLayers; l++)
            ASSERT_TRUE(tinyaiExecuteLayerWithMemoryOptimization(ls, l, nullptr, nullptr)) << l;
        const TinyAILayerSchedulerStats s = tinyaiGetLayerSchedulerStats(ls);
        const double ratio = (double)e.totalBytes / (double)s.peakBytes;
        EXPECT_GT(ratio, 0.9) << "tradeoff " << t << ": " << e.totalBytes << " vs " << s.peakBytes;
        EXPECT_LT(ratio, 1.1) << "tradeoff " << t << ": " << e.totalBytes << " vs " << s.peakBytes;
        tinyaiFreeLayerScheduler(ls);
    }
}

TEST(LayerScheduler, BadArgumentsAreRefused) {
    const std::string src = tai_test::SynthModel("Q4_0", false, 128, 384, 2, 512, 10);
    ModelPtr m = tai_test::LoadModel(src);
    TinyAILayerSchedulerConfig c = {false, 0.5f, false, 0};
    EXPECT_EQ(tinyaiCreateLayerScheduler(nullptr, &c), nullptr);
    EXPECT_EQ(tinyaiCreateLayerScheduler(m.get(), nullptr), nullptr);
    TinyAILayerSchedulerConfig bad = {false, 2.0f, false, 0};
    EXPECT_EQ(tinyaiCreateLayerScheduler(m.get(), &bad), nullptr);
    TinyAISession *s = nullptr;
    ASSERT_EQ(tinyaiCreateSession(m.get(), 64, &s), TINYAI_OK);
    EXPECT_EQ(tinyaiCreateLayerScheduler(m.get(), &c), nullptr);
    EXPECT_NE(strstr(tinyaiLastErrorMessage(), "live session"), nullptr);
    tinyaiFreeSession(s);
    TinyAILayerScheduler *ls = tinyaiCreateLayerScheduler(m.get(), &c);
    ASSERT_NE(ls, nullptr);
    EXPECT_FALSE(tinyaiExecuteLayerWithMemoryOptimization(ls, 9, nullptr, nullptr));
    EXPECT_FALSE(tinyaiExecuteLayerWithMemoryOptimization(ls, 2, nullptr, nullptr));  // before 0
    EXPECT_FALSE(tinyaiExecuteLayerWithMemoryOptimization(ls, 0, nullptr, nullptr));  // no ids
    std::vector<int32_t> toks = {1, 2, 9999};
    TinyAITensor ids = {TINYAI_TENSOR_I32, toks.data(), 3, 1, sizeof toks};
    EXPECT_FALSE(tinyaiExecuteLayerWithMemoryOptimization(ls, 0, &ids, nullptr));
    EXPECT_NE(strstr(tinyaiLastErrorMessage(), "outside the vocabulary"), nullptr);
    std::vector<int32_t> longp(100000, 1);
    TinyAITensor big = {TINYAI_TENSOR_I32, longp.data(), 100000, 1, longp.size() * 4};
    EXPECT_FALSE(tinyaiExecuteLayerWithMemoryOptimization(ls, 0, &big, nullptr));
    toks[2] = 3;
    ASSERT_TRUE(tinyaiExecuteLayerWithMemoryOptimization(ls, 0, &ids, nullptr));
    float wrong[4];
    TinyAITensor w = {TINYAI_TENSOR_F32, wrong, 1, 4, sizeof wrong};
    EXPECT_FALSE(tinyaiExecuteLayerWithMemoryOptimization(ls, 1, &w, nullptr));  // shape
    TinyAITensor small = {TINYAI_TENSOR_F32, wrong, 0, 0, sizeof wrong};
    EXPECT_FALSE(tinyaiExecuteLayerWithMemoryOptimization(ls, 1, nullptr, &small));  // capacity
    EXPECT_FALSE(tinyaiSetLayerCheckpointingStrategy(ls, 99, TINYAI_CHECKPOINT_STORE));
    EXPECT_FALSE(tinyaiSetLayerCheckpointingStrategy(ls, 1, (TinyAICheckpointStrategy)7));
    tinyaiFreeLayerScheduler(ls);
    tinyaiFreeLayerScheduler(nullptr);
    EXPECT_EQ(tinyaiEstimateMemoryUsage(nullptr).totalBytes, 0u);
}

}  // namespace
