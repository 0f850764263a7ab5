// The real Gemma 3 270M (Q4_K_M: Q5_0, Q8_0, Q4_K and Q6_K tensors; 18
// blocks, 15 of them sliding-window; tied 262144-token head) generates
// sensible text at temperature 0, and its greedy tokens agree with
// llama.cpp's (commit 0c1e570, CPU, built from source outside TinyAI; the
// ids below are what it generated for the same prompts).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <tinyai/llm.h>

#include "tests/common/test_paths.h"
#include "tests/model/reference_test_util.h"

namespace {

using tai_test::ModelPtr;
using tai_test::SessionPtr;

ModelPtr Load(const std::string &path, int threads = 2) { return tai_test::LoadOn(path, nullptr, threads); }

std::vector<int32_t> Tokenize(TinyAIModel *m, const char *text) {
    std::vector<int32_t> ids(256);
    size_t n = 0;
    EXPECT_EQ(tinyaiTokenize(m, text, true, false, ids.data(), ids.size(), &n), TINYAI_OK);
    ids.resize(n);
    return ids;
}

std::vector<int32_t> Greedy(TinyAIModel *m, const std::vector<int32_t> &prompt, int n) {
    return tai_test::GreedyTokens(m, prompt, n, 256);
}

std::string Text(TinyAIModel *m, const std::vector<int32_t> &ids) {
    std::string s;
    for (int32_t t : ids) {
        size_t len = 0;
        const char *p = tinyaiTokenPiece(m, t, &len);
        if (p) s.append(p, len);
    }
    return s;
}

struct Reference {
    const char *prompt;
    std::vector<int32_t> prompt_ids;    // llama.cpp's, with BOS
    std::vector<int32_t> generated;     // llama.cpp's greedy continuation
    std::vector<float> logit;           // llama.cpp's logit of each of them
    size_t agree;                       // how many of them TinyAI must match
    const char *answer;                 // what the continuation must say
};

// Two implementations quantize activations differently (each to its own
// 8-bit blocks), so where two tokens are nearly tied they may pick
// differently; the first prompt's step 10 is such a tie: llama.cpp has "."
// 26.108 against "," 25.952, the exact computation (NumPy in float64 over
// the dequantized weights, ExactReferenceAtTheTie below) "," 25.839 against
// "." 25.665, and TinyAI is within a few tenths of both, on either side of the
// tie depending on float rounding. Greedy ids must agree up to `agree`,
// and fed llama.cpp's tokens (teacher forcing), TinyAI's logit of each
// token llama.cpp chose must be within kLogitTol of llama.cpp's (llama.cpp
// is itself up to 0.5 from the exact logits there).
constexpr float kLogitTol = 1.0f;

TEST(GemmaModel, LoadsAsGemma3) {
    TAI_REQUIRE_GEMMA_MODEL(path);
    ModelPtr m = Load(path);
    ASSERT_TRUE(m);
    TinyAIModelInfo info;
    ASSERT_EQ(tinyaiGetModelInfo(m.get(), &info), TINYAI_OK);
    EXPECT_EQ(info.nVocab, 262144);
    EXPECT_EQ(info.nEmbd, 640);
    EXPECT_EQ(info.headDim, 256);
    EXPECT_TRUE(info.tiedOutput);
    EXPECT_STREQ(info.architecture, "gemma3");
    EXPECT_EQ(info.slidingWindow, 512);
    EXPECT_EQ(info.slidingBlocks, 15);  // all but blocks 5, 11, 17
    EXPECT_EQ(info.slidingRopeFreqBase, 10000.0f);
}

// Prompts whose answers a 270M base model gets right, and llama.cpp's ids.
TEST(GemmaModel, GreedyAgreesWithLlamaCpp) {
    TAI_REQUIRE_GEMMA_MODEL(path);
    const Reference refs[] = {
        {"The capital of France is Paris. The capital of Germany is",
         {2, 818, 5279, 529, 7001, 563, 9079, 236761, 669, 5279, 529, 9405, 563},
         {15687, 236761, 669, 5279, 529, 506, 3640, 4184, 563, 7693, 236761, 669, 5279, 529, 506,
          3640, 15305, 563, 5860, 236761, 108, 818, 5279, 529},
         {22.783f, 22.646f, 23.329f, 21.193f, 27.049f, 21.880f, 22.984f, 32.208f, 26.492f, 26.531f,
          26.108f, 23.369f, 22.450f, 27.255f, 23.301f, 21.890f, 33.647f, 26.510f, 27.277f, 27.698f,
          23.756f, 18.773f, 20.195f, 24.880f},
         10, " Berlin. The capital of the United States is Washington"},
        {"1, 2, 3, 4, 5,",
         {2, 236770, 236764, 236743, 236778, 236764, 236743, 236800, 236764, 236743, 236812, 236764,
          236743, 236810, 236764},
         {236743, 236825, 236764, 236743, 236832, 236764, 236743, 236828, 236764, 236743, 236819,
          236764, 236743, 236770, 236771, 236764, 236743, 236770, 236770, 236764, 236743, 236770,
          236778, 236764},
         {18.553f, 20.611f, 18.748f, 18.440f, 18.943f, 19.496f, 18.618f, 20.789f, 19.331f, 18.711f,
          20.216f, 18.165f, 16.383f, 14.312f, 20.792f, 18.092f, 16.993f, 16.890f, 21.696f, 19.420f,
          18.118f, 19.982f, 24.496f, 18.171f},
         24, " 6, 7, 8, 9, 10, 11, 12,"},
    };
    ModelPtr m = Load(path);
    ASSERT_TRUE(m);
    for (const Reference &r : refs) {
        SCOPED_TRACE(r.prompt);
        const std::vector<int32_t> prompt = Tokenize(m.get(), r.prompt);
        EXPECT_EQ(prompt, r.prompt_ids);
        const std::vector<int32_t> got = Greedy(m.get(), prompt, (int)r.generated.size());
        const std::string text = Text(m.get(), got);
        EXPECT_EQ(std::vector<int32_t>(got.begin(), got.begin() + r.agree),
                  std::vector<int32_t>(r.generated.begin(), r.generated.begin() + r.agree))
            << "TinyAI: " << text << "\nllama.cpp: " << Text(m.get(), r.generated);
        EXPECT_EQ(text.rfind(r.answer, 0), 0u) << text;
        // teacher forcing: llama.cpp's tokens in, its logits out
        TinyAISession *s = nullptr;
        ASSERT_EQ(tinyaiCreateSession(m.get(), 256, &s), TINYAI_OK);
        SessionPtr sp(s);
        ASSERT_EQ(tinyaiEval(s, prompt.data(), prompt.size()), TINYAI_OK);
        float worst = 0;
        for (size_t i = 0; i < r.generated.size(); i++) {
            const float d = std::fabs(tinyaiGetLogits(s)[r.generated[i]] - r.logit[i]);
            worst = std::max(worst, d);
            EXPECT_LT(d, kLogitTol) << "step " << i;
            ASSERT_EQ(tinyaiEval(s, &r.generated[i], 1), TINYAI_OK);
        }
        std::printf("gemma vs llama.cpp: %s: largest logit difference %.3f\n", r.prompt, worst);
    }
}

std::string VenvPython() {
    const char *cache = std::getenv("TINYAI_CACHE");
    const char *home = std::getenv("HOME");
    return (cache && *cache ? std::string(cache) : std::string(home ? home : "") + "/.cache/tinyai") +
           "/pyenv/bin/python";
}

// At the near-tie, TinyAI's logits against the independent NumPy reference
// (tests/model/ref_llama.py: float64, the gguf package's dequantizers).
TEST(GemmaModel, ExactReferenceAtTheTie) {
    TAI_REQUIRE_GEMMA_MODEL(path);
    const std::vector<int32_t> toks = {2,    818,   5279, 529,  7001, 563,  9079, 236761,
                                       669,  5279,  529,  9405, 563,  15687, 236761, 669,
                                       5279, 529,   506,  3640, 4184, 563,  7693};
    std::string cmd = VenvPython() + " tests/model/ref_llama.py " + path;
    for (int32_t t : toks) cmd += " " + std::to_string(t);
    std::vector<double> ref;
    FILE *p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    double v;
    while (fscanf(p, "%lf", &v) == 1) ref.push_back(v);
    ASSERT_EQ(pclose(p), 0) << cmd;
    ASSERT_EQ(ref.size(), 262144u);
    ModelPtr m = Load(path);
    ASSERT_TRUE(m);
    TinyAISession *s = nullptr;
    ASSERT_EQ(tinyaiCreateSession(m.get(), 256, &s), TINYAI_OK);
    SessionPtr sp(s);
    ASSERT_EQ(tinyaiEval(s, toks.data(), toks.size()), TINYAI_OK);
    const float *l = tinyaiGetLogits(s);
    double num = 0, den = 0, worst = 0;
    for (size_t i = 0; i < ref.size(); i++) {
        num += (l[i] - ref[i]) * (l[i] - ref[i]);
        den += ref[i] * ref[i];
        worst = std::max(worst, std::fabs(l[i] - ref[i]));
    }
    const double rel = std::sqrt(num / den);
    std::printf("gemma vs float64 reference: relative error %.4f, largest difference %.3f; "
                "',' %.3f (reference %.3f), '.' %.3f (reference %.3f)\n",
                rel, worst, l[236764], ref[236764], l[236761], ref[236761]);
    // over all 262144 logits, most of them far below the top (5.4% measured:
    // Gemma's residual stream has large outliers, which 8-bit activation
    // blocks round coarsely); the top ones within a few tenths
    EXPECT_LT(rel, 0.08);
    EXPECT_NEAR(l[236764], ref[236764], 0.5);
    EXPECT_NEAR(l[236761], ref[236761], 0.5);
    // Which of the two TinyAI ranks first is not asserted: the exact gap
    // (0.17) is below the 8-bit activations' error here, and GELUs that are
    // all correct to float precision land on either side of it (",", minus
    // ".": +0.06 with glibc's tanhf, -0.015 with the vector exponential,
    // +0.15 with the GELU evaluated in double and rounded once), through
    // rounding flips in the activation blocks that follow.
}

// Batched prompt, token-by-token prompt and one thread give the same tokens.
TEST(GemmaModel, GreedyIsIndependentOfBatchingAndThreads) {
    TAI_REQUIRE_GEMMA_MODEL(path);
    ModelPtr m2 = Load(path, 2), m1 = Load(path, 1);
    ASSERT_TRUE(m1 && m2);
    const std::vector<int32_t> prompt = Tokenize(m2.get(), "The capital of France is");
    const std::vector<int32_t> a = Greedy(m2.get(), prompt, 12);
    EXPECT_EQ(a, Greedy(m1.get(), prompt, 12));
    // token by token
    TinyAISession *s = nullptr;
    ASSERT_EQ(tinyaiCreateSession(m2.get(), 256, &s), TINYAI_OK);
    SessionPtr sp(s);
    for (int32_t t : prompt) ASSERT_EQ(tinyaiEval(s, &t, 1), TINYAI_OK);
    TinyAIModelInfo info;
    tinyaiGetModelInfo(m2.get(), &info);
    const float *l = tinyaiGetLogits(s);
    EXPECT_EQ((int32_t)(std::max_element(l, l + info.nVocab) - l), a[0]);
}

}  // namespace
