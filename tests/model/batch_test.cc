// runtime/model: tinyaiEvalBatch. Several sessions decoding together get
// exactly the logits each would get alone; under a memory limit each layer
// is read once per step for the whole batch; bad batches are refused before
// anything runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
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

constexpr int kSeqs = 4;

TinyAISynthConfig Synth(const char *type, bool tied) {
    TinyAISynthConfig c = tinyaiCreateDefaultSynthConfig();
    c.nVocab = 400;
    c.nEmbd = 128;
    c.nFF = 320;
    c.nHead = 4;
    c.nHeadKV = 2;
    c.nLayer = 6;
    c.nCtx = 128;
    c.weightType = type;
    c.embeddingType = type;
    c.tiedOutput = tied;
    c.seed = 31;
    return c;
}

SessionPtr NewSession(TinyAIModel *m, int ctx) {
    TinyAISession *s = nullptr;
    EXPECT_EQ(tinyaiCreateSession(m, ctx, &s), TINYAI_OK) << tinyaiLastErrorMessage();
    return SessionPtr(s);
}

std::vector<float> Logits(const TinyAISession *s, int nv) {
    const float *l = tinyaiGetLogits(s);
    EXPECT_NE(l, nullptr);
    return l ? std::vector<float>(l, l + nv) : std::vector<float>();
}

// Four prompts of different lengths, evaluated per session; then `steps`
// greedy steps decoded as one batch. Each session is replayed alone (its
// prompt, then its tokens one at a time) on a model without batching, and
// every step's logits must be equal bit for bit.
void CheckBatchEqualsAlone(const std::string &path, const std::vector<std::vector<int32_t>> &prompts,
                           int steps, size_t limit, TinyAIExecutionMode mode,
                           double tolerance = 0) {
    double max_rel = 0;
    const int ctx = 64;
    TinyAIModelConfig c = MemConfig(limit, mode);
    c.maxSessions = kSeqs;
    c.contextSize = ctx;
    ModelPtr m = tai_test::LoadModel(path, c);
    ASSERT_TRUE(m) << tinyaiLastErrorMessage();
    const int nv = tai_test::VocabSize(m.get());
    std::vector<SessionPtr> owned;
    std::vector<TinyAISession *> seqs;
    for (int i = 0; i < kSeqs; i++) {
        owned.push_back(NewSession(m.get(), ctx));
        ASSERT_TRUE(owned.back());
        seqs.push_back(owned.back().get());
        ASSERT_EQ(tinyaiEval(seqs[i], prompts[i].data(), prompts[i].size()), TINYAI_OK);
    }
    // batched: logits[step][seq]
    std::vector<std::vector<int32_t>> fed(kSeqs);
    std::vector<std::vector<std::vector<float>>> batched;
    for (int st = 0; st < steps; st++) {
        std::vector<int32_t> toks(kSeqs);
        for (int i = 0; i < kSeqs; i++) {
            toks[i] = tai_test::ArgMax(tinyaiGetLogits(seqs[i]), nv);
            fed[i].push_back(toks[i]);
        }
        ASSERT_EQ(tinyaiEvalBatch(seqs.data(), toks.data(), kSeqs), TINYAI_OK)
            << tinyaiLastErrorMessage();
        batched.emplace_back();
        for (int i = 0; i < kSeqs; i++) {
            EXPECT_EQ(tinyaiSessionPosition(seqs[i]), (int)prompts[i].size() + st + 1);
            batched.back().push_back(Logits(seqs[i], nv));
        }
    }
    EXPECT_LE(tai_test::MemInfo(m.get()).peakBytes, limit ? limit : SIZE_MAX);
    owned.clear();
    m.reset();

    // alone, on a model planned for one session
    TinyAIModelConfig c1 = MemConfig(limit, mode);
    c1.contextSize = ctx;
    ModelPtr one = tai_test::LoadModel(path, c1);
    ASSERT_TRUE(one);
    for (int i = 0; i < kSeqs; i++) {
        SCOPED_TRACE("session " + std::to_string(i));
        SessionPtr s = NewSession(one.get(), ctx);
        ASSERT_TRUE(s);
        ASSERT_EQ(tinyaiEval(s.get(), prompts[i].data(), prompts[i].size()), TINYAI_OK);
        for (int st = 0; st < steps; st++) {
            ASSERT_EQ(tinyaiEval(s.get(), &fed[i][st], 1), TINYAI_OK);
            std::vector<float> alone = Logits(s.get(), nv);
            ASSERT_EQ(alone.size(), batched[st][i].size());
            size_t diff = 0;
            double worst = 0;
            for (size_t j = 0; j < alone.size(); j++) {
                diff += alone[j] != batched[st][i][j];
                worst = std::max(worst, (double)std::fabs(alone[j] - batched[st][i][j]) /
                                            (1.0 + std::fabs(alone[j])));
            }
            if (tolerance == 0)
                EXPECT_EQ(diff, 0u) << "step " << st << ": " << diff << " logits differ, by "
                                    << worst << " at most";
            else
                EXPECT_LE(worst, tolerance) << "step " << st;
            max_rel = std::max(max_rel, worst);
        }
    }
    printf("[ %s ] batch of %d against each alone: largest relative difference %g\n",
           tinyaiExecutionModeName(mode), kSeqs, max_rel);
}

const std::vector<std::vector<int32_t>> kPrompts = {
    {1, 270, 271, 272, 273, 274, 275},
    {1, 300},
    {1, 310, 311, 312},
    {1, 390, 5, 6, 7, 8, 9, 10, 11, 12, 13},
};

// Bit for bit, every weight type (batch invariance: activations are
// quantized per column, and every kernel sums a column's products in one
// order whatever the number of columns).
TEST(EvalBatch, FourSessionsTogetherEqualEachAlone) {
    for (const char *type : {"Q8_0", "Q4_0", "Q4_1", "F32", "F16"}) {
        for (bool tied : {false, true}) {
            SCOPED_TRACE(std::string(type) + (tied ? " tied" : " untied"));
            TempFile f(tai_test::WriteSynthModel(Synth(type, tied)));
            CheckBatchEqualsAlone(f.path, kPrompts, 6, 0, TINYAI_EXEC_NORMAL);
        }
    }
}

TEST(EvalBatch, UnderALimitEqualEachAlone) {
    TempFile f(tai_test::WriteSynthModel(Synth("Q8_0", false)));
    TempFile t(tai_test::ConvertToTmai(f.path));
    for (TinyAIExecutionMode mode : {TINYAI_EXEC_MEMORY_OPT, TINYAI_EXEC_STREAMING}) {
        SCOPED_TRACE(tinyaiExecutionModeName(mode));
        CheckBatchEqualsAlone(t.path, kPrompts, 5, 2 << 20, mode);
    }
}

TEST(EvalBatch, RealModelFourSessionsEqualEachAlone) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    TinyAIModelConfig c = MemConfig(0, TINYAI_EXEC_NORMAL);
    ModelPtr m = tai_test::LoadModel(path, c);
    ASSERT_TRUE(m);
    std::vector<std::vector<int32_t>> prompts = {
        tai_test::Tokenize(m.get(), "The capital of France is"),
        tai_test::Tokenize(m.get(), "Once upon a time"),
        tai_test::Tokenize(m.get(), "def fibonacci(n):"),
        tai_test::Tokenize(m.get(), "The three primary colors are red,"),
    };
    m.reset();
    CheckBatchEqualsAlone(path, prompts, 4, 0, TINYAI_EXEC_NORMAL);
}

// Under a limit the batch shares the weights streamed per step: one step of
// four sequences reads what one step of one reads, layer by layer once. Read
// on demand only (no read-ahead), so that what is read does not depend on
// how the loader threads and the compute happen to interleave: the same
// layers are loaded for one sequence and for four, exactly; the bytes differ
// only by the embedding rows the three more sequences look up.
TEST(EvalBatch, EachLayerIsReadOncePerStepForTheWholeBatch) {
    TempFile g(tai_test::WriteSynthModel(Synth("Q8_0", false)));
    TempFile t(tai_test::ConvertToTmai(g.path));
    const int ctx = 64, layers = 6 + 2, steps = 4;
    for (TinyAICachePolicy policy : {TINYAI_CACHE_LRU, TINYAI_CACHE_BELADY}) {
        SCOPED_TRACE(policy == TINYAI_CACHE_LRU ? "lru" : "belady");
        TinyAIModelConfig c = MemConfig(2 << 20, TINYAI_EXEC_MEMORY_OPT);
        c.maxSessions = kSeqs;
        c.contextSize = ctx;
        c.cachePolicy = policy;
        c.prefetchWindow = -1;
        ModelPtr m = tai_test::LoadModel(t.path, c);
        ASSERT_TRUE(m);
        const int nv = tai_test::VocabSize(m.get());
        std::vector<SessionPtr> owned;
        std::vector<TinyAISession *> seqs;
        for (int i = 0; i < kSeqs; i++) {
            owned.push_back(NewSession(m.get(), ctx));
            ASSERT_TRUE(owned.back());
            seqs.push_back(owned.back().get());
            ASSERT_EQ(tinyaiEval(seqs[i], kPrompts[i].data(), kPrompts[i].size()), TINYAI_OK);
        }
        TinyAIMemoryInfo mi = tai_test::MemInfo(m.get());
        ASSERT_LT(mi.cacheBytes, mi.modelBytes);  // layers must come and go
        // one sequence alone, a few steps
        tinyaiResetMemoryStats(m.get());
        for (int st = 0; st < steps; st++) {
            int32_t id = tai_test::ArgMax(tinyaiGetLogits(seqs[0]), nv);
            ASSERT_EQ(tinyaiEvalBatch(seqs.data(), &id, 1), TINYAI_OK) << tinyaiLastErrorMessage();
        }
        const TinyAIMemoryInfo one = tai_test::MemInfo(m.get());
        // all four together, as many steps
        tinyaiResetMemoryStats(m.get());
        for (int st = 0; st < steps; st++) {
            std::vector<int32_t> toks(kSeqs);
            for (int i = 0; i < kSeqs; i++) toks[i] = tai_test::ArgMax(tinyaiGetLogits(seqs[i]), nv);
            ASSERT_EQ(tinyaiEvalBatch(seqs.data(), toks.data(), kSeqs), TINYAI_OK)
                << tinyaiLastErrorMessage();
        }
        const TinyAIMemoryInfo four = tai_test::MemInfo(m.get());
        printf("[ %s ] per step: 1 sequence %.0f bytes, %.1f loads; %d sequences %.0f bytes, "
               "%.1f loads (cache %zu of %zu)\n",
               one.cachePolicy, (double)one.bytesRead / steps, (double)one.loads / steps, kSeqs,
               (double)four.bytesRead / steps, (double)four.loads / steps, mi.cacheBytes,
               mi.modelBytes);
        EXPECT_GT(four.bytesRead, 0u);
        EXPECT_EQ(four.prefetches, 0u);
        EXPECT_LE(four.loads, (uint64_t)(layers * steps));  // never a layer twice a step
        EXPECT_EQ(four.loads, one.loads);
        EXPECT_GE(four.bytesRead, one.bytesRead);
        // embedding rows: at most one aligned read of a few KiB per sequence
        EXPECT_LE(four.bytesRead, one.bytesRead + (uint64_t)(kSeqs * steps) * (256u << 10));
        EXPECT_LE(four.peakBytes, c.memoryLimit);
    }
}

// The largest difference between two logit vectors, relative to 1 + |x|.
double MaxRel(const std::vector<float> &a, const std::vector<float> &b) {
    double w = a.size() == b.size() ? 0 : INFINITY;
    for (size_t j = 0; j < a.size() && j < b.size(); j++)
        w = std::max(w, (double)std::fabs(a[j] - b[j]) / (1.0 + std::fabs(a[j])));
    return w;
}

// Continuous batching (tinyaiEvalStep): one session decodes a token per
// step while others prefill their prompts in chunks in the same steps;
// each gets the logits it gets alone, bit for bit, for float and quantized
// weights: a prompt evaluated whole or in chunks beside other sessions'
// columns goes through the same sums (batch invariance).
// A long prompt in one pass (its columns through attention in groups that
// read the cache once, from 1024 positions of context on) gives the logits
// of the same prompt fed token by token (one column a call), bit for bit,
// with float and binary16 caches: the grouping changes no query's
// arithmetic. Prompt chunks of 512 and of 100 (groups across chunk ends).
TEST(EvalStep, ALongPromptInOnePassEqualsTokenByToken) {
    TinyAISynthConfig sc = Synth("Q4_1", false);
    sc.nCtx = 1200;
    sc.nLayer = 2;
    TempFile f(tai_test::WriteSynthModel(sc));
    std::vector<int32_t> prompt(1100);
    for (size_t i = 0; i < prompt.size(); i++) prompt[i] = (int32_t)(1 + (i * 37) % 399);
    for (TinyAIKVCacheType kv : {TINYAI_KV_F32, TINYAI_KV_F16}) {
        SCOPED_TRACE(kv == TINYAI_KV_F32 ? "f32 cache" : "f16 cache");
        TinyAIModelConfig c = MemConfig(0, TINYAI_EXEC_NORMAL);
        c.contextSize = 1200;
        c.kvCacheType = kv;
        ModelPtr m = tai_test::LoadModel(f.path, c);
        ASSERT_TRUE(m) << tinyaiLastErrorMessage();
        const int nv = tai_test::VocabSize(m.get());
        SessionPtr one = NewSession(m.get(), 1200), byt = NewSession(m.get(), 1200),
                   hundreds = NewSession(m.get(), 1200);
        ASSERT_TRUE(one && byt && hundreds);
        ASSERT_EQ(tinyaiEval(one.get(), prompt.data(), prompt.size()), TINYAI_OK) << tinyaiLastErrorMessage();
        for (size_t i = 0; i < prompt.size(); i += 100)
            ASSERT_EQ(tinyaiEval(hundreds.get(), prompt.data() + i, std::min<size_t>(100, prompt.size() - i)),
                      TINYAI_OK);
        for (size_t i = 0; i < prompt.size(); i++) ASSERT_EQ(tinyaiEval(byt.get(), &prompt[i], 1), TINYAI_OK);
        const std::vector<float> want = Logits(byt.get(), nv);
        EXPECT_EQ(Logits(one.get(), nv), want);
        EXPECT_EQ(Logits(hundreds.get(), nv), want);
    }
}

// A resident model planned for steps of `sessions` sessions of 64 tokens.
ModelPtr StepModel(const std::string &path, int sessions) {
    TinyAIModelConfig c = MemConfig(0, TINYAI_EXEC_NORMAL);
    c.maxSessions = sessions;
    c.contextSize = 64;
    return tai_test::LoadModel(path, c);
}

TEST(EvalStep, PromptChunksAndDecodingMixedEqualEachAlone) {
    for (const char *type : {"F32", "F16", "Q8_0", "Q4_1"}) {
        SCOPED_TRACE(type);
        TempFile f(tai_test::WriteSynthModel(Synth(type, false)));
        ModelPtr m = StepModel(f.path, 3);
        ASSERT_TRUE(m);
        const int nv = tai_test::VocabSize(m.get());
        SessionPtr a = NewSession(m.get(), 64), b = NewSession(m.get(), 64), d = NewSession(m.get(), 64);
        ASSERT_TRUE(a && b && d);
        int cap_tokens = 0, cap_sessions = 0;
        ASSERT_EQ(tinyaiStepCapacity(m.get(), &cap_tokens, &cap_sessions), TINYAI_OK);
        EXPECT_EQ(cap_sessions, 3);
        EXPECT_GE(cap_tokens, 16);
        const std::vector<int32_t> pa = {1, 270, 271, 272, 273, 274, 275, 276}, pb = {1, 300},
                                   pd = {1, 310, 311, 312, 313};
        ASSERT_EQ(tinyaiEval(b.get(), pb.data(), pb.size()), TINYAI_OK);
        // step 1: b decodes, a's first 3 prompt tokens, d's whole prompt;
        // step 2: a's next 3, b decodes; step 3: b and d decode, a's last 2
        std::vector<int32_t> fb, fd;
        std::vector<std::vector<float>> lb, ld;
        auto step = [&](std::vector<TinyAISession *> ss, std::vector<std::vector<int32_t>> toks) {
            std::vector<const int32_t *> tp;
            std::vector<size_t> cn;
            for (auto &t : toks) {
                tp.push_back(t.data());
                cn.push_back(t.size());
            }
            ASSERT_EQ(tinyaiEvalStep(ss.data(), tp.data(), cn.data(), ss.size()), TINYAI_OK)
                << tinyaiLastErrorMessage();
        };
        auto next = [&](TinyAISession *s) { return tai_test::ArgMax(tinyaiGetLogits(s), nv); };
        fb.push_back(next(b.get()));
        step({b.get(), a.get(), d.get()}, {{fb[0]}, {pa[0], pa[1], pa[2]}, pd});
        lb.push_back(Logits(b.get(), nv));
        ld.push_back(Logits(d.get(), nv));
        fb.push_back(next(b.get()));
        step({a.get(), b.get()}, {{pa[3], pa[4], pa[5]}, {fb[1]}});
        lb.push_back(Logits(b.get(), nv));
        fb.push_back(next(b.get()));
        fd.push_back(next(d.get()));
        step({b.get(), d.get(), a.get()}, {{fb[2]}, {fd[0]}, {pa[6], pa[7]}});
        lb.push_back(Logits(b.get(), nv));
        ld.push_back(Logits(d.get(), nv));
        const std::vector<float> la = Logits(a.get(), nv);
        EXPECT_EQ(tinyaiSessionPosition(a.get()), 8);
        EXPECT_EQ(tinyaiSessionPosition(b.get()), 5);
        EXPECT_EQ(tinyaiSessionPosition(d.get()), 6);
        // each alone
        const double tol = 0; // bit for bit: batch invariance
        SessionPtr x = NewSession(m.get(), 64);
        ASSERT_EQ(tinyaiEval(x.get(), pa.data(), pa.size()), TINYAI_OK);
        EXPECT_LE(MaxRel(Logits(x.get(), nv), la), tol);
        tinyaiResetSession(x.get());
        ASSERT_EQ(tinyaiEval(x.get(), pb.data(), pb.size()), TINYAI_OK);
        for (size_t i = 0; i < fb.size(); i++) {
            ASSERT_EQ(tinyaiEval(x.get(), &fb[i], 1), TINYAI_OK);
            EXPECT_LE(MaxRel(Logits(x.get(), nv), lb[i]), tol) << "b, step " << i;
        }
        tinyaiResetSession(x.get());
        ASSERT_EQ(tinyaiEval(x.get(), pd.data(), pd.size()), TINYAI_OK);
        EXPECT_LE(MaxRel(Logits(x.get(), nv), ld[0]), tol);
        ASSERT_EQ(tinyaiEval(x.get(), &fd[0], 1), TINYAI_OK);
        EXPECT_LE(MaxRel(Logits(x.get(), nv), ld[1]), tol);
        // refused before anything runs: over the step's token capacity, a
        // session twice, no tokens, past the context
        const int before = tinyaiSessionPosition(a.get());
        std::vector<int32_t> many(cap_tokens + 1, 5);
        const int32_t *tp[2] = {many.data(), many.data()};
        size_t cn[2] = {many.size(), 1};
        TinyAISession *two[2] = {a.get(), b.get()};
        EXPECT_EQ(tinyaiEvalStep(two, tp, cn, 2), TINYAI_ERR_RANGE);
        TinyAISession *twice[2] = {a.get(), a.get()};
        cn[0] = 1;
        EXPECT_EQ(tinyaiEvalStep(twice, tp, cn, 2), TINYAI_ERR_INVALID_ARG);
        cn[0] = 0;
        EXPECT_EQ(tinyaiEvalStep(two, tp, cn, 2), TINYAI_ERR_INVALID_ARG);
        std::vector<int32_t> past(64, 5);
        const int32_t *pp[1] = {past.data()};
        size_t pc[1] = {past.size()};
        EXPECT_EQ(tinyaiEvalStep(two, pp, pc, 1), TINYAI_ERR_RANGE);
        EXPECT_EQ(tinyaiSessionPosition(a.get()), before);
        EXPECT_EQ(tinyaiEvalStep(nullptr, tp, cn, 1), TINYAI_ERR_INVALID_ARG);
    }
}

// A text scored at prompt speed (tinyaiEvalStepAll): a session's chunk
// keeps the logits after each of its tokens, each equal bit for bit to the
// logits of the prefix evaluated alone, beside a decoding session and a
// prompt that keep only their last; with the float and quantized weights,
// and a soft cap (Gemma 3's) applied to every row. The rows are gone once
// the model evaluates again; a step asking for more rows than the plan's
// sessions is refused before anything runs.
TEST(EvalStep, AScoredChunkKeepsTheLogitsOfEveryToken) {
    for (const char *type : {"F32", "Q4_1", "gemma3"}) {
        SCOPED_TRACE(type);
        const bool gemma = std::string(type) == "gemma3";
        TinyAISynthConfig sc = Synth(gemma ? "F32" : type, gemma);
        if (gemma) {
            sc.architecture = "gemma3";
            sc.nHeadKV = 1;
            sc.slidingWindow = 4;
            sc.logitSoftcap = 0.5f; // inside the logits' range: the cap changes them
        }
        TempFile f(tai_test::WriteSynthModel(sc));
        ModelPtr m = StepModel(f.path, 8);
        ASSERT_TRUE(m);
        const int nv = tai_test::VocabSize(m.get());
        SessionPtr a = NewSession(m.get(), 64), b = NewSession(m.get(), 64), d = NewSession(m.get(), 64);
        ASSERT_TRUE(a && b && d);
        const std::vector<int32_t> pa = {1, 270, 271, 272, 273, 274}, pb = {1, 300}, pd = {1, 310, 311};
        ASSERT_EQ(tinyaiEval(b.get(), pb.data(), pb.size()), TINYAI_OK);
        ASSERT_EQ(tinyaiEval(a.get(), pa.data(), 1), TINYAI_OK);
        const int32_t gb = tai_test::ArgMax(tinyaiGetLogits(b.get()), nv);
        // a scores its next 5 tokens, b decodes, d's prompt: 5 + 1 + 1 rows
        TinyAISession *ss[3] = {b.get(), a.get(), d.get()};
        const int32_t *tp[3] = {&gb, pa.data() + 1, pd.data()};
        size_t cn[3] = {1, pa.size() - 1, pd.size()};
        const int all[3] = {0, 1, 0};
        ASSERT_EQ(tinyaiEvalStepAll(ss, tp, cn, all, 3), TINYAI_OK) << tinyaiLastErrorMessage();
        std::vector<std::vector<float>> rows;
        for (int k = 0; k < (int)cn[1]; k++) {
            const float *l = tinyaiGetStepLogits(a.get(), k);
            ASSERT_NE(l, nullptr) << k;
            rows.emplace_back(l, l + nv);
        }
        EXPECT_EQ(tinyaiGetStepLogits(a.get(), (int)cn[1]), nullptr);
        EXPECT_EQ(tinyaiGetStepLogits(a.get(), -1), nullptr);
        EXPECT_EQ(tinyaiGetStepLogits(b.get(), 0), nullptr); // b did not ask
        EXPECT_EQ(rows.back(), Logits(a.get(), nv));
        const std::vector<float> lb = Logits(b.get(), nv), ld = Logits(d.get(), nv);
        SessionPtr x = NewSession(m.get(), 64);
        for (size_t k = 0; k < rows.size(); k++) {
            tinyaiResetSession(x.get());
            ASSERT_EQ(tinyaiEval(x.get(), pa.data(), k + 2), TINYAI_OK);
            EXPECT_EQ(Logits(x.get(), nv), rows[k]) << "token " << k;
        }
        EXPECT_EQ(tinyaiGetStepLogits(a.get(), 0), nullptr); // the model evaluated again
        tinyaiResetSession(x.get());
        ASSERT_EQ(tinyaiEval(x.get(), pb.data(), pb.size()), TINYAI_OK);
        ASSERT_EQ(tinyaiEval(x.get(), &gb, 1), TINYAI_OK);
        EXPECT_EQ(Logits(x.get(), nv), lb);
        tinyaiResetSession(x.get());
        ASSERT_EQ(tinyaiEval(x.get(), pd.data(), pd.size()), TINYAI_OK);
        EXPECT_EQ(Logits(x.get(), nv), ld);
        // more rows than the plan's 8 sessions: refused, nothing run
        std::vector<int32_t> nine(9, 5);
        const int32_t *np[1] = {nine.data()};
        size_t nc[1] = {nine.size()};
        TinyAISession *one[1] = {x.get()};
        const int pos = tinyaiSessionPosition(x.get());
        EXPECT_EQ(tinyaiEvalStepAll(one, np, nc, all + 1, 1), TINYAI_ERR_RANGE);
        EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("9 rows of logits"), std::string::npos)
            << tinyaiLastErrorMessage();
        EXPECT_EQ(tinyaiSessionPosition(x.get()), pos);
        nc[0] = 8; // exactly the plan's
        EXPECT_EQ(tinyaiEvalStepAll(one, np, nc, all + 1, 1), TINYAI_OK) << tinyaiLastErrorMessage();
        EXPECT_NE(tinyaiGetStepLogits(x.get(), 7), nullptr);
    }
}

// Rewinding a session keeps the KV cache before the position: continuing
// from there equals evaluating the shortened sequence from scratch.
TEST(SessionRewind, ContinuesFromTheKeptPrefix) {
    TempFile f(tai_test::WriteSynthModel(Synth("Q8_0", false)));
    ModelPtr m = tai_test::LoadModel(f.path, MemConfig(0, TINYAI_EXEC_NORMAL));
    ASSERT_TRUE(m);
    const int nv = tai_test::VocabSize(m.get());
    const std::vector<int32_t> a = {1, 270, 271, 272, 273, 274, 275}, b = {300, 301, 302};
    SessionPtr s = NewSession(m.get(), 64);
    ASSERT_EQ(tinyaiEval(s.get(), a.data(), a.size()), TINYAI_OK);
    ASSERT_EQ(tinyaiSessionRewind(s.get(), 4), TINYAI_OK);
    EXPECT_EQ(tinyaiSessionPosition(s.get()), 4);
    EXPECT_EQ(tinyaiGetLogits(s.get()), nullptr); // until the next evaluation
    ASSERT_EQ(tinyaiEval(s.get(), b.data(), b.size()), TINYAI_OK);
    SessionPtr fresh = NewSession(m.get(), 64);
    std::vector<int32_t> ab(a.begin(), a.begin() + 4);
    ab.insert(ab.end(), b.begin(), b.end());
    ASSERT_EQ(tinyaiEval(fresh.get(), ab.data(), ab.size()), TINYAI_OK);
    EXPECT_EQ(Logits(s.get(), nv), Logits(fresh.get(), nv));
    EXPECT_EQ(tinyaiSessionRewind(s.get(), 8), TINYAI_ERR_RANGE); // past its position
    EXPECT_EQ(tinyaiSessionRewind(s.get(), -1), TINYAI_ERR_RANGE);
    EXPECT_EQ(tinyaiSessionRewind(nullptr, 0), TINYAI_ERR_INVALID_ARG);
    ASSERT_EQ(tinyaiSessionRewind(s.get(), 0), TINYAI_OK);
    EXPECT_EQ(tinyaiSessionPosition(s.get()), 0);
}

// A session given another's prefix (tinyaiSessionCopyPrefix) continues as
// if it had evaluated that prefix itself: bit for bit, on the CPU and with
// every layer on the OpenCL device (whose copy of the cache is made again
// from the host's); bad arguments are refused and change nothing.
TEST(SessionCopyPrefix, ContinuesAsIfItHadEvaluatedThePrefix) {
    TempFile f(tai_test::WriteSynthModel(Synth("Q8_0", false)));
    for (const char *device : {"cpu", "opencl"}) {
        SCOPED_TRACE(device);
        TinyAIModelConfig c = MemConfig(0, TINYAI_EXEC_NORMAL);
        c.maxSessions = 3;
        c.device = device;
        ModelPtr m = tai_test::LoadModel(f.path, c);
        ASSERT_TRUE(m) << tinyaiLastErrorMessage();
        const int nv = tai_test::VocabSize(m.get());
        const std::vector<int32_t> a = {1, 270, 271, 272, 273, 274, 275}, b = {300, 301, 302};
        SessionPtr src = NewSession(m.get(), 64), dst = NewSession(m.get(), 32);
        ASSERT_TRUE(src && dst);
        ASSERT_EQ(tinyaiEval(dst.get(), b.data(), b.size()), TINYAI_OK); // something to replace
        ASSERT_EQ(tinyaiEval(src.get(), a.data(), a.size()), TINYAI_OK);
        ASSERT_EQ(tinyaiSessionCopyPrefix(dst.get(), src.get(), 5), TINYAI_OK);
        EXPECT_EQ(tinyaiSessionPosition(dst.get()), 5);
        EXPECT_EQ(tinyaiSessionPosition(src.get()), 7); // the source is unchanged
        EXPECT_EQ(tinyaiGetLogits(dst.get()), nullptr);
        ASSERT_EQ(tinyaiEval(dst.get(), b.data(), b.size()), TINYAI_OK);
        std::vector<int32_t> ab(a.begin(), a.begin() + 5);
        ab.insert(ab.end(), b.begin(), b.end());
        {
            SessionPtr fresh = NewSession(m.get(), 64);
            ASSERT_EQ(tinyaiEval(fresh.get(), ab.data(), ab.size()), TINYAI_OK);
            EXPECT_EQ(Logits(dst.get(), nv), Logits(fresh.get(), nv));
        }
        // the source goes on as before
        ASSERT_EQ(tinyaiEval(src.get(), b.data(), 1), TINYAI_OK);
        EXPECT_EQ(tinyaiSessionPosition(src.get()), 8);
        // refused: past what the source holds, past the destination's
        // context, negative, NULL, another model's session
        EXPECT_EQ(tinyaiSessionCopyPrefix(dst.get(), src.get(), 9), TINYAI_ERR_RANGE);
        EXPECT_EQ(tinyaiSessionCopyPrefix(dst.get(), src.get(), -1), TINYAI_ERR_RANGE);
        EXPECT_EQ(tinyaiSessionCopyPrefix(nullptr, src.get(), 1), TINYAI_ERR_INVALID_ARG);
        EXPECT_EQ(tinyaiSessionCopyPrefix(dst.get(), nullptr, 1), TINYAI_ERR_INVALID_ARG);
        std::vector<int32_t> longer(40, 280);
        SessionPtr big = NewSession(m.get(), 64);
        ASSERT_EQ(tinyaiEval(big.get(), longer.data(), longer.size()), TINYAI_OK);
        EXPECT_EQ(tinyaiSessionCopyPrefix(dst.get(), big.get(), 40), TINYAI_ERR_RANGE);
        ModelPtr other = tai_test::LoadModel(f.path, MemConfig(0, TINYAI_EXEC_NORMAL));
        ASSERT_TRUE(other);
        SessionPtr foreign = NewSession(other.get(), 64);
        EXPECT_EQ(tinyaiSessionCopyPrefix(dst.get(), foreign.get(), 0), TINYAI_ERR_INVALID_ARG);
        EXPECT_EQ(tinyaiSessionPosition(dst.get()), 8); // nothing changed
    }
}

TEST(EvalBatch, BadBatchesAreRefusedBeforeAnythingRuns) {
    TempFile f(tai_test::WriteSynthModel(Synth("Q8_0", false)));
    TinyAIModelConfig c = MemConfig(0, TINYAI_EXEC_NORMAL);
    c.maxSessions = kSeqs;
    c.contextSize = 32;
    ModelPtr m = tai_test::LoadModel(f.path, c);
    ModelPtr other = tai_test::LoadModel(f.path, c);
    ASSERT_TRUE(m && other);
    std::vector<SessionPtr> owned;
    for (int i = 0; i < kSeqs + 1; i++) owned.push_back(NewSession(m.get(), 32));
    SessionPtr foreign = NewSession(other.get(), 32);
    SessionPtr tiny = NewSession(m.get(), 4);
    ASSERT_TRUE(foreign && tiny);
    int32_t one = 1;
    for (auto &s : owned) ASSERT_EQ(tinyaiEval(s.get(), &one, 1), TINYAI_OK);
    int32_t four[4] = {1, 2, 3, 4};
    ASSERT_EQ(tinyaiEval(tiny.get(), four, 4), TINYAI_OK);  // full
    const int32_t toks[8] = {5, 6, 7, 8, 9, 10, 11, 12};

    auto positions = [&] {
        std::vector<int> p;
        for (auto &s : owned) p.push_back(tinyaiSessionPosition(s.get()));
        return p;
    };
    const std::vector<int> before = positions();
    auto expect_refused = [&](std::vector<TinyAISession *> b, const int32_t *t, size_t n,
                              TinyAIStatus want, const char *needle) {
        SCOPED_TRACE(needle);
        EXPECT_EQ(tinyaiEvalBatch(b.empty() ? nullptr : b.data(), t, n), want);
        std::string msg = tinyaiLastErrorMessage();
        EXPECT_NE(msg.find(needle), std::string::npos) << msg;
        EXPECT_EQ(positions(), before);
        EXPECT_EQ(tinyaiSessionPosition(foreign.get()), 0);
    };
    TinyAISession *a = owned[0].get(), *b = owned[1].get(), *c2 = owned[2].get();
    expect_refused({a, b, a}, toks, 3, TINYAI_ERR_INVALID_ARG, "twice");
    expect_refused({a, foreign.get()}, toks, 2, TINYAI_ERR_INVALID_ARG, "another model");
    expect_refused({foreign.get(), a}, toks, 2, TINYAI_ERR_INVALID_ARG, "another model");
    expect_refused({}, toks, 2, TINYAI_ERR_INVALID_ARG, "NULL");
    expect_refused({a, b}, nullptr, 2, TINYAI_ERR_INVALID_ARG, "NULL");
    expect_refused({nullptr, a}, toks, 2, TINYAI_ERR_INVALID_ARG, "NULL");
    expect_refused({a, nullptr}, toks, 2, TINYAI_ERR_INVALID_ARG, "NULL");
    expect_refused({a, tiny.get()}, toks, 2, TINYAI_ERR_RANGE, "full");
    const int32_t bad[2] = {5, 400};
    expect_refused({a, b}, bad, 2, TINYAI_ERR_INVALID_ARG, "vocabulary");
    std::vector<TinyAISession *> five;
    for (auto &s : owned) five.push_back(s.get());
    expect_refused(five, toks, 5, TINYAI_ERR_RANGE, "maxSessions");
    EXPECT_EQ(tinyaiSessionPosition(tiny.get()), 4);

    // an empty batch does nothing; a valid one still runs afterwards
    EXPECT_EQ(tinyaiEvalBatch(five.data(), toks, 0), TINYAI_OK);
    EXPECT_EQ(positions(), before);
    TinyAISession *ok[3] = {c2, a, b};
    EXPECT_EQ(tinyaiEvalBatch(ok, toks, 3), TINYAI_OK) << tinyaiLastErrorMessage();
    EXPECT_EQ(tinyaiSessionPosition(a), 2);
    EXPECT_NE(tinyaiGetLogits(c2), nullptr);
}

}  // namespace
