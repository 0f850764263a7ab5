// tests/model/perplexity_test.cc: tinyaiPerplexity against an independent
// reference (tests/model/ref_llama.py --ppl: its own GGUF reader, float64
// NumPy, llama.cpp's chunking and scoring), the same figure for any batch
// of chunks, and bad arguments refused.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <tinyai/llm.h>

#include "tests/common/test_paths.h"

namespace {

struct Ref {
    double ppl = 0, nll = 0;
    long count = 0;
};

Ref Reference(const std::string &model, int ctx, int bos, const std::vector<int32_t> &toks) {
    std::string cmd = "/usr/bin/python3 tests/model/ref_llama.py " + model + " --ppl " +
                      std::to_string(ctx) + " " + std::to_string(bos);
    for (int32_t t : toks) cmd += " " + std::to_string(t);
    Ref r;
    FILE *p = popen(cmd.c_str(), "r");
    if (!p) return r;
    if (fscanf(p, "%lf %lf %ld", &r.ppl, &r.nll, &r.count) != 3) r.count = -1;
    EXPECT_EQ(pclose(p), 0) << "reference failed: " << cmd;
    return r;
}

TEST(Perplexity, EqualsTheReferenceForAnyBatch) {
    TinyAISynthConfig c = tinyaiCreateDefaultSynthConfig();
    c.nVocab = 300;
    c.nEmbd = 64;
    c.nFF = 128;
    c.nHead = 4;
    c.nHeadKV = 2;
    c.nLayer = 2;
    c.nCtx = 64;
    c.weightType = "F32";
    c.embeddingType = "F32";
    c.seed = 11;
    const std::string path = tai_test::TempPath(".gguf");
    ASSERT_EQ(tinyaiWriteSyntheticModel(&c, path.c_str()), TINYAI_OK) << tinyaiLastErrorMessage();
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.maxSessions = 3;
    mc.threads = 2;
    TinyAIModel *m = nullptr;
    ASSERT_EQ(tinyaiLoadModel(path.c_str(), &mc, &m), TINYAI_OK) << tinyaiLastErrorMessage();
    TinyAIModelInfo info;
    tinyaiGetModelInfo(m, &info);
    // five chunks of 16 and a rest of 3 that is not scored
    std::vector<int32_t> toks;
    for (int i = 0; i < 83; i++) toks.push_back(3 + (i * 37 + i * i * 11) % 290);
    const int ctx = 16;
    TinyAIPerplexityConfig pc = tinyaiCreateDefaultPerplexityConfig();
    pc.contextSize = ctx;
    pc.addBos = 1;
    int calls = 0;
    pc.progress = [](void *n, int, int, double, double) { ++*(int *)n; };
    pc.progressCtx = &calls;
    TinyAIPerplexityResult one, three;
    ASSERT_EQ(tinyaiPerplexity(m, toks.data(), toks.size(), &pc, &one), TINYAI_OK)
        << tinyaiLastErrorMessage();
    EXPECT_EQ(one.chunks, 5);
    EXPECT_EQ(one.tokensScored, 5 * (ctx - 1 - ctx / 2));
    EXPECT_EQ(calls, 5); // one batch of one chunk at a time
    EXPECT_GT(one.stdError, 0);
    const Ref ref = Reference(path, ctx, info.bosToken, toks);
    ASSERT_EQ(ref.count, one.tokensScored);
    EXPECT_NEAR(one.perplexity, ref.ppl, 1e-4 * ref.ppl);
    EXPECT_NEAR(one.nll, ref.nll, 1e-4 * std::fabs(ref.nll));
    printf("[ perplexity ] TinyAI %.6f, reference %.6f over %lld tokens\n", one.perplexity, ref.ppl,
           (long long)one.tokensScored);
    // three chunks at a time (two groups): the same sums, bit for bit
    pc.batch = 3;
    ASSERT_EQ(tinyaiPerplexity(m, toks.data(), toks.size(), &pc, &three), TINYAI_OK)
        << tinyaiLastErrorMessage();
    EXPECT_EQ(three.perplexity, one.perplexity);
    EXPECT_EQ(three.nll, one.nll);

    // refused: too few tokens, a tiny or too long context, a bad token, a
    // batch beyond the model's sessions, a bad BOS setting, NULLs
    TinyAIPerplexityResult r;
    pc.batch = 1;
    EXPECT_EQ(tinyaiPerplexity(m, toks.data(), 15, &pc, &r), TINYAI_ERR_RANGE);
    pc.contextSize = 2;
    EXPECT_EQ(tinyaiPerplexity(m, toks.data(), toks.size(), &pc, &r), TINYAI_ERR_INVALID_ARG);
    pc.contextSize = 65;
    EXPECT_EQ(tinyaiPerplexity(m, toks.data(), toks.size(), &pc, &r), TINYAI_ERR_INVALID_ARG);
    pc.contextSize = ctx;
    std::vector<int32_t> bad = toks;
    bad[20] = 300;
    EXPECT_EQ(tinyaiPerplexity(m, bad.data(), bad.size(), &pc, &r), TINYAI_ERR_INVALID_ARG);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("token 300"), std::string::npos)
        << tinyaiLastErrorMessage();
    pc.batch = 5;
    EXPECT_NE(tinyaiPerplexity(m, toks.data(), toks.size(), &pc, &r), TINYAI_OK);
    EXPECT_STRNE(tinyaiLastErrorMessage(), "");
    pc.batch = 0;
    EXPECT_EQ(tinyaiPerplexity(m, toks.data(), toks.size(), &pc, &r), TINYAI_ERR_INVALID_ARG);
    pc.batch = 1;
    pc.addBos = 7;
    EXPECT_EQ(tinyaiPerplexity(m, toks.data(), toks.size(), &pc, &r), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tinyaiPerplexity(nullptr, toks.data(), toks.size(), nullptr, &r), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tinyaiPerplexity(m, toks.data(), toks.size(), nullptr, nullptr), TINYAI_ERR_INVALID_ARG);
    tinyaiFreeModel(m);
    std::remove(path.c_str());
}

}  // namespace
