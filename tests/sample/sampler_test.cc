// runtime/sample: greedy, temperature, top-k, top-p, repetition penalty and
// seeding, on hand-made logits.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

#include <tinyai/llm.h>

namespace {

struct SamplerDeleter {
    void operator()(TinyAISampler *s) const { tinyaiFreeSampler(s); }
};
using SamplerPtr = std::unique_ptr<TinyAISampler, SamplerDeleter>;

SamplerPtr Make(TinyAISamplerConfig c) {
    TinyAISampler *s = nullptr;
    EXPECT_EQ(tinyaiCreateSampler(&c, &s), TINYAI_OK) << tinyaiLastErrorMessage();
    return SamplerPtr(s);
}

TinyAISamplerConfig Greedy() {
    TinyAISamplerConfig c = tinyaiCreateDefaultSamplerConfig();
    c.temperature = 0;
    c.repeatPenalty = 1.0f;
    return c;
}

TEST(Sampler, GreedyIsArgmaxAndLowestIdOnTies) {
    SamplerPtr s = Make(Greedy());
    std::vector<float> l = {0.1f, 3.0f, -2.0f, 3.0f, 2.9f};
    EXPECT_EQ(tinyaiSample(s.get(), l.data(), (int)l.size()), 1);
    l[4] = 3.5f;
    EXPECT_EQ(tinyaiSample(s.get(), l.data(), (int)l.size()), 4);
}

// Greedy equals the plain first-largest scan for every length (the lanes
// and the tail), with ties across lanes, NaNs anywhere and all -inf, with
// the repetition penalty off and on.
TEST(Sampler, GreedyEqualsTheScanForEveryLengthTiesAndNaNs) {
    auto scan = [](const std::vector<float> &l) {
        int pick = 0;
        for (int i = 1; i < (int)l.size(); i++)
            if (l[i] > l[pick]) pick = i;
        return pick;
    };
    uint32_t r = 12345;
    auto next = [&]() { return r = r * 1664525u + 1013904223u; };
    for (int n : {1, 2, 15, 16, 17, 31, 33, 100, 1000, 49152}) {
        for (int round = 0; round < 8; round++) {
            std::vector<float> l(n);
            for (float &x : l) x = (float)(next() >> 24) / 16.0f; /* many ties */
            if (round == 1) l[0] = NAN;
            if (round == 2) l[next() % n] = NAN;
            if (round == 3)
                for (float &x : l) x = -INFINITY;
            if (round == 4) l[n - 1] = 100.0f;
            if (round == 5)
                for (float &x : l) x = NAN;
            SamplerPtr s = Make(Greedy());
            EXPECT_EQ(tinyaiSample(s.get(), l.data(), n), scan(l)) << n << " " << round;
            /* with a penalty and history: the copy's path, same scan */
            TinyAISamplerConfig c = Greedy();
            c.repeatPenalty = 1.5f;
            SamplerPtr p = Make(c);
            const int32_t seen = (int32_t)(next() % n);
            tinyaiSamplerAccept(p.get(), &seen, 1);
            std::vector<float> pl = l;
            pl[seen] = pl[seen] > 0 ? pl[seen] / 1.5f : pl[seen] * 1.5f;
            EXPECT_EQ(tinyaiSample(p.get(), l.data(), n), scan(pl)) << n << " " << round;
        }
    }
}

// The defaults change nothing at temperature 0: a token just produced stays
// the argmax (a repetition penalty on by default would pick id 2 here).
TEST(Sampler, DefaultsAtTemperatureZeroAreTheArgmax) {
    TinyAISamplerConfig c = tinyaiCreateDefaultSamplerConfig();
    EXPECT_EQ(c.repeatPenalty, 1.0f);
    c.temperature = 0;
    SamplerPtr s = Make(c);
    const std::vector<float> l = {0.1f, 3.0f, 2.9f, -1.0f};
    for (int i = 0; i < 10; i++) EXPECT_EQ(tinyaiSample(s.get(), l.data(), (int)l.size()), 1) << i;
}

TEST(Sampler, SameSeedSameChoicesDifferentSeedDiffers) {
    TinyAISamplerConfig c = tinyaiCreateDefaultSamplerConfig();
    c.temperature = 1.0f;
    c.topK = 0;
    c.topP = 1.0f;
    c.repeatPenalty = 1.0f;
    std::vector<float> l(50);
    for (int i = 0; i < 50; i++) l[i] = std::sin(i * 0.7f);
    auto draw = [&](uint64_t seed) {
        c.seed = seed;
        SamplerPtr s = Make(c);
        std::vector<int32_t> out;
        for (int i = 0; i < 40; i++) out.push_back(tinyaiSample(s.get(), l.data(), 50));
        return out;
    };
    EXPECT_EQ(draw(1), draw(1));
    EXPECT_NE(draw(1), draw(2));
}

TEST(Sampler, TemperatureFollowsSoftmax) {
    TinyAISamplerConfig c = tinyaiCreateDefaultSamplerConfig();
    c.temperature = 1.0f;
    c.topK = 0;
    c.topP = 1.0f;
    c.repeatPenalty = 1.0f;
    c.seed = 9;
    SamplerPtr s = Make(c);
    std::vector<float> l = {0.0f, std::log(3.0f)};  // p = 1/4, 3/4
    int ones = 0;
    const int n = 20000;
    for (int i = 0; i < n; i++) ones += tinyaiSample(s.get(), l.data(), 2) == 1;
    EXPECT_NEAR(ones / double(n), 0.75, 0.02);
}

TEST(Sampler, TopKAndTopPKeepOnlyTheHead) {
    std::vector<float> l = {1.0f, 5.0f, 4.9f, 0.5f, 4.8f, -1.0f};
    TinyAISamplerConfig c = tinyaiCreateDefaultSamplerConfig();
    c.temperature = 5.0f;  // flat: without truncation every id would appear
    c.repeatPenalty = 1.0f;
    c.topP = 1.0f;
    c.topK = 2;
    SamplerPtr s = Make(c);
    std::map<int, int> seen;
    for (int i = 0; i < 2000; i++) seen[tinyaiSample(s.get(), l.data(), (int)l.size())]++;
    EXPECT_EQ(seen.size(), 2u);
    EXPECT_TRUE(seen.count(1) && seen.count(2));

    c.topK = 0;
    c.topP = 0.01f;  // the single most likely token
    SamplerPtr p = Make(c);
    for (int i = 0; i < 200; i++) EXPECT_EQ(tinyaiSample(p.get(), l.data(), (int)l.size()), 1);
}

TEST(Sampler, RepetitionPenaltyDemotesRecentTokens) {
    TinyAISamplerConfig c = Greedy();
    c.repeatPenalty = 2.0f;
    c.repeatLastN = 4;
    SamplerPtr s = Make(c);
    std::vector<float> l = {1.0f, 3.0f, 2.0f, -1.0f};
    int32_t hist[] = {1};
    tinyaiSamplerAccept(s.get(), hist, 1);
    // 3.0 / 2 = 1.5 < 2.0: token 2 wins now.
    EXPECT_EQ(tinyaiSample(s.get(), l.data(), 4), 2);
    // 2 was recorded: 2.0/2 = 1.0, 1.5 wins.
    EXPECT_EQ(tinyaiSample(s.get(), l.data(), 4), 1);
    // Negative logits are multiplied, never lifted.
    std::vector<float> neg = {-1.0f, -1.5f};
    SamplerPtr n = Make(c);
    int32_t h0[] = {0};
    tinyaiSamplerAccept(n.get(), h0, 1);
    EXPECT_EQ(tinyaiSample(n.get(), neg.data(), 2), 1);  // -2.0 < -1.5
}

TEST(Sampler, BadConfigAndArgumentsAreErrors) {
    TinyAISampler *s = nullptr;
    TinyAISamplerConfig c = tinyaiCreateDefaultSamplerConfig();
    c.topP = 0.0f;
    EXPECT_EQ(tinyaiCreateSampler(&c, &s), TINYAI_ERR_INVALID_ARG);
    c = tinyaiCreateDefaultSamplerConfig();
    c.temperature = NAN;
    EXPECT_EQ(tinyaiCreateSampler(&c, &s), TINYAI_ERR_INVALID_ARG);
    c = tinyaiCreateDefaultSamplerConfig();
    c.repeatPenalty = 0.0f;
    EXPECT_EQ(tinyaiCreateSampler(&c, &s), TINYAI_ERR_INVALID_ARG);
    c = tinyaiCreateDefaultSamplerConfig();
    c.repeatLastN = -1;
    EXPECT_EQ(tinyaiCreateSampler(&c, &s), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(s, nullptr);
    EXPECT_EQ(tinyaiCreateSampler(nullptr, nullptr), TINYAI_ERR_INVALID_ARG);
    SamplerPtr g = Make(Greedy());
    float l = 1.0f;
    EXPECT_EQ(tinyaiSample(g.get(), nullptr, 3), -1);
    EXPECT_EQ(tinyaiSample(g.get(), &l, 0), -1);
    EXPECT_EQ(tinyaiSample(nullptr, &l, 1), -1);
}

}  // namespace

namespace {

// log(sum(exp)) from the maximum, in double: exact for equal logits, no
// overflow for large ones, -inf for nothing.
TEST(LogSumExp, StableAndExact) {
    const float two[2] = {0.0f, 0.0f}, big[3] = {1000.0f, 1000.0f, -1000.0f};
    EXPECT_DOUBLE_EQ(tinyaiLogSumExp(two, 2), std::log(2.0));
    EXPECT_NEAR(tinyaiLogSumExp(big, 3), 1000.0 + std::log(2.0), 1e-9);
    EXPECT_TRUE(std::isinf(tinyaiLogSumExp(two, 0)));
    EXPECT_TRUE(std::isinf(tinyaiLogSumExp(nullptr, 2)));
}

}  // namespace
