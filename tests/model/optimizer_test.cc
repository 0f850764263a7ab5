// The memory optimizer (<tinyai/utils/memory_optimizer.h>) and the
// lifetime planner under it (core/liveplan.h): placements never overlap
// two buffers live at once (checked on random lifetimes and on the forward
// pass's own buffers); the planned activations are smaller and compute the
// same logits bit for bit; a budget is fitted as the tradeoff prefers and
// the planned model runs within it; the caller's functions get reused
// tensors; bad arguments are refused.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <tinyai/llm.h>
#include <tinyai/utils/memory_optimizer.h>

#include "core/liveplan.h"
#include "runtime/model/model.h"
#include "tests/model/rewrite_test_util.h"

namespace {

using tai_test::ModelPtr;

TEST(LivePlan, RandomLifetimesNeverShareBytesWhileLive) {
    std::mt19937 rng(7);
    for (int round = 0; round < 300; round++) {
        const int n = 1 + (int)(rng() % 40);
        std::vector<tai_live_buf> b(n);
        size_t sum = 0;
        for (auto &x : b) {
            x.size = rng() % 5 == 0 ? 0 : 1 + rng() % 5000;
            x.align = (size_t)1 << (rng() % 8);
            x.first = (int)(rng() % 30);
            x.last = x.first + (int)(rng() % 10);
            sum += (x.size + x.align - 1) / x.align * x.align + x.align;
        }
        std::vector<int> tmp(2 * n);
        size_t arena = 0;
        ASSERT_EQ(tai_live_place(b.data(), n, 64, &arena, tmp.data()), 0);
        int i = -1, j = -1;
        ASSERT_EQ(tai_live_overlap(b.data(), n, &i, &j), 0) << "round " << round << ": " << i << " "
                                                            << j;
        size_t busiest = 0;
        for (int t = 0; t < 40; t++) {
            size_t live = 0;
            for (auto &x : b)
                if (x.first <= t && t <= x.last) live += x.size;
            busiest = std::max(busiest, live);
        }
        for (auto &x : b) {
            if (x.size) {
                EXPECT_EQ(x.offset % x.align, 0u);
            }
            EXPECT_LE(x.offset + x.size, arena);
        }
        EXPECT_GE(arena, busiest);
        EXPECT_LE(arena, sum + 64);
    }
    // the checker finds an overlap when there is one
    tai_live_buf two[2] = {{100, 1, 0, 5, 0}, {100, 1, 3, 8, 50}};
    EXPECT_EQ(tai_live_overlap(two, 2, nullptr, nullptr), 1);
    two[1].first = 6;
    EXPECT_EQ(tai_live_overlap(two, 2, nullptr, nullptr), 0);
}

// The forward pass's buffers as the workspace places them: disjoint while
// live, and the attention and feed-forward intermediates sharing bytes.
TEST(ActivationPlan, TheWorkspaceIsPlannedAndComputesTheSameLogits) {
    const std::string src = tai_test::SynthModel("Q8_0", false, 256, 768, 2, 512, 3);
    ModelPtr planned = tai_test::LoadModel(src), separate = tai_test::LoadModel(src);
    ASSERT_TRUE(planned && separate);
    tai_live_buf b[32];
    const int n = tai_workspace_plan(planned.get(), 512, 1024, 4, b, 32);
    ASSERT_GT(n, 10);
    int i = -1, j = -1;
    EXPECT_EQ(tai_live_overlap(b, n, &i, &j), 0) << i << " " << j;
    const size_t a = tai_workspace_bytes(planned.get(), 512, 1024, 4);
    const size_t u = tai_workspace_unplanned_bytes(planned.get(), 512, 1024, 4);
    EXPECT_LT(a * 10, u * 8) << a << " vs " << u << ": less than 20% saved";

    // the optimizer's reuse off: one buffer each, the same logits
    TinyAIMemoryOptimizerConfig off = {false, false, 1.0f, 0};
    TinyAIMemoryOptimizer *o = tinyaiCreateMemoryOptimizer(&off);
    ASSERT_NE(o, nullptr);
    ASSERT_TRUE(tinyaiOptimizeMemoryUsage(o, separate.get(), 256u << 20)) << tinyaiLastErrorMessage();
    TinyAIMemoryOptimizerChoice c;
    ASSERT_TRUE(tinyaiGetMemoryOptimizerChoice(o, &c));
    EXPECT_EQ(c.activationBytes, c.activationBytesUnplanned);
    tinyaiFreeMemoryOptimizer(o);
    TinyAIMemoryOptimizerConfig on = {true, false, 1.0f, 0};
    o = tinyaiCreateMemoryOptimizer(&on);
    ASSERT_TRUE(tinyaiOptimizeMemoryUsage(o, planned.get(), 256u << 20));
    ASSERT_TRUE(tinyaiGetMemoryOptimizerChoice(o, &c));
    EXPECT_LT(c.activationBytes, c.activationBytesUnplanned);
    tinyaiFreeMemoryOptimizer(o);
    const std::vector<float> la = tai_test::LogitsAfter(planned.get(), 40),
                             lb = tai_test::LogitsAfter(separate.get(), 40);
    ASSERT_EQ(la.size(), lb.size());
    EXPECT_EQ(memcmp(la.data(), lb.data(), la.size() * sizeof(float)), 0);
}

// A budget fitted as the tradeoff prefers: speed keeps the model resident
// with several sessions, memory streams it with one; a small budget still
// fits by streaming; the planned model runs within its budget.
TEST(MemoryOptimizer, FitsABudgetAsTheTradeoffPrefers) {
    const std::string src = tai_test::SynthModel("F32", false, 256, 768, 4, 2048, 4);  // ~18 MiB
    TinyAIMemoryOptimizerConfig cfg = {true, true, 1.0f, 0};
    TinyAIMemoryOptimizer *o = tinyaiCreateMemoryOptimizer(&cfg);
    ASSERT_NE(o, nullptr);
    TinyAIMemoryOptimizerChoice c;
    {
        ModelPtr m = tai_test::LoadModel(src);
        ASSERT_TRUE(tinyaiOptimizeMemoryUsage(o, m.get(), 256u << 20)) << tinyaiLastErrorMessage();
        ASSERT_TRUE(tinyaiGetMemoryOptimizerChoice(o, &c));
        EXPECT_EQ(c.mode, TINYAI_EXEC_NORMAL) << c.reason;
        EXPECT_EQ(c.sessions, 4);
    }
    tinyaiSetMemorySpeedTradeoff(o, 0.0f);
    {
        ModelPtr m = tai_test::LoadModel(src);
        ASSERT_TRUE(tinyaiOptimizeMemoryUsage(o, m.get(), 256u << 20));
        ASSERT_TRUE(tinyaiGetMemoryOptimizerChoice(o, &c));
        EXPECT_EQ(c.mode, TINYAI_EXEC_STREAMING) << c.reason;
        EXPECT_EQ(c.sessions, 1);
        EXPECT_LT(c.cacheBytes, 18u << 20);
    }
    // a budget below the model: speed gets what is cached, the rest read
    tinyaiSetMemorySpeedTradeoff(o, 1.0f);
    {
        ModelPtr m = tai_test::LoadModel(src);
        const size_t budget = 16u << 20;
        ASSERT_TRUE(tinyaiOptimizeMemoryUsage(o, m.get(), budget)) << tinyaiLastErrorMessage();
        ASSERT_TRUE(tinyaiGetMemoryOptimizerChoice(o, &c));
        EXPECT_NE(c.mode, TINYAI_EXEC_NORMAL) << c.reason;
        TinyAISession *s = nullptr;
        ASSERT_EQ(tinyaiCreateSession(m.get(), c.contextSize, &s), TINYAI_OK) << tinyaiLastErrorMessage();
        std::vector<int32_t> toks(64, 9);
        ASSERT_EQ(tinyaiEval(s, toks.data(), toks.size()), TINYAI_OK);
        TinyAIMemoryInfo mi;
        tinyaiGetMemoryInfo(m.get(), &mi);
        EXPECT_LE(mi.peakBytes, budget);
        EXPECT_EQ(mi.memoryLimit, budget);
        // a live session: refused
        EXPECT_FALSE(tinyaiOptimizeMemoryUsage(o, m.get(), budget));
        EXPECT_NE(strstr(tinyaiLastErrorMessage(), "live session"), nullptr);
        tinyaiFreeSession(s);
    }
    {
        ModelPtr m = tai_test::LoadModel(src);
        const std::vector<float> before = tai_test::LogitsAfter(m.get(), 10);
        TinyAIMemoryInfo a, b;
        tinyaiGetMemoryInfo(m.get(), &a);
        EXPECT_FALSE(tinyaiOptimizeMemoryUsage(o, m.get(), 64 * 1024));  // nothing fits
        EXPECT_NE(strstr(tinyaiLastErrorMessage(), "nothing fits"), nullptr);
        // the model keeps the plan it had, and runs as before
        tinyaiGetMemoryInfo(m.get(), &b);
        EXPECT_EQ(b.mode, a.mode);
        EXPECT_EQ(b.memoryLimit, a.memoryLimit);
        EXPECT_EQ(b.cacheBytes, a.cacheBytes);
        EXPECT_EQ(tai_test::LogitsAfter(m.get(), 10), before);
        EXPECT_FALSE(tinyaiOptimizeMemoryUsage(o, m.get(), 0));  // no budget at all
        EXPECT_FALSE(tinyaiOptimizeMemoryUsage(o, nullptr, 1u << 20));
        EXPECT_FALSE(tinyaiOptimizeMemoryUsage(nullptr, m.get(), 1u << 20));
    }
    tinyaiFreeMemoryOptimizer(o);
}

struct Steps {
    std::vector<void *> got;
    bool ok = true;
};

// Three tensors live at once, then one released and a fourth taken: with
// reuse the fourth takes the released bytes.
bool ThreeThenOne(TinyAIMemoryOptimizer *o, void *user) {
    Steps *s = static_cast<Steps *>(user);
    for (int i = 0; i < 3; i++) s->got.push_back(tinyaiOptimizerAcquire(o, 1000));
    for (void *p : s->got) s->ok = s->ok && p != nullptr;
    if (!s->ok) return false;
    memset(s->got[0], 1, 1000);
    s->ok = tinyaiOptimizerRelease(o, s->got[1]) && !tinyaiOptimizerRelease(o, s->got[1]);
    s->got.push_back(tinyaiOptimizerAcquire(o, 900));
    return s->got.back() != nullptr;
}

TEST(MemoryOptimizer, TensorReuseGivesReleasedBytesToTheNextTensor) {
    for (bool reuse : {true, false}) {
        TinyAIMemoryOptimizerConfig cfg = {reuse, false, 0.5f, 1u << 20};
        TinyAIMemoryOptimizer *o = tinyaiCreateMemoryOptimizer(&cfg);
        ASSERT_NE(o, nullptr);
        Steps s;
        ASSERT_TRUE(tinyaiExecuteWithTensorReuse(o, ThreeThenOne, &s)) << tinyaiLastErrorMessage();
        ASSERT_TRUE(s.ok);
        ASSERT_EQ(s.got.size(), 4u);
        const TinyAIMemoryStats st = tinyaiGetMemoryOptimizerStats(o);
        EXPECT_EQ(st.allocation_count, 4u);
        EXPECT_EQ(st.total_allocated, 3 * 1024u + 960u);
        EXPECT_EQ(st.current_usage, 0u) << "released when the function returned";
        if (reuse) {
            EXPECT_EQ(s.got[3], s.got[1]);
            EXPECT_EQ(st.peak_usage, 3 * 1024u);
        } else {
            EXPECT_NE(s.got[3], s.got[1]);
            EXPECT_EQ(st.peak_usage, 3 * 1024u);  // live at once: the same; but fresh bytes
        }
        tinyaiFreeMemoryOptimizer(o);
    }
    // with reuse off the arena fills with what was released: 3 x 1024 + 960
    // bytes do not fit in 3584, with reuse they do (the fourth takes the
    // second's place)
    TinyAIMemoryOptimizerConfig small = {false, false, 0.5f, 3584};
    TinyAIMemoryOptimizer *o = tinyaiCreateMemoryOptimizer(&small);
    Steps s;
    EXPECT_FALSE(tinyaiExecuteWithTensorReuse(o, ThreeThenOne, &s));
    EXPECT_EQ(tinyaiGetMemoryOptimizerStats(o).current_usage, 0u);
    tinyaiFreeMemoryOptimizer(o);
    small.enable_tensor_reuse = true;
    o = tinyaiCreateMemoryOptimizer(&small);
    Steps s2;
    EXPECT_TRUE(tinyaiExecuteWithTensorReuse(o, ThreeThenOne, &s2));  // reuse: fits
    EXPECT_EQ(tinyaiOptimizerAcquire(o, 64), nullptr);                // outside a function
    tinyaiFreeMemoryOptimizer(o);
}

// An operation's output in its input's bytes with in-place on (the peak
// stays at one tensor), a new tensor with it off.
bool Chain(TinyAIMemoryOptimizer *o, void *user) {
    std::vector<void *> *got = static_cast<std::vector<void *> *>(user);
    void *x = tinyaiOptimizerAcquire(o, 4096);
    got->push_back(x);
    for (int i = 0; x && i < 3; i++) got->push_back(x = tinyaiOptimizerAcquireInPlace(o, x, 4096));
    return x != nullptr;
}

TEST(MemoryOptimizer, InPlaceOutputsTakeTheirInputsBytes) {
    for (bool in_place : {true, false}) {
        TinyAIMemoryOptimizerConfig cfg = {true, in_place, 0.5f, 1u << 20};
        TinyAIMemoryOptimizer *o = tinyaiCreateMemoryOptimizer(&cfg);
        std::vector<void *> got;
        ASSERT_TRUE(tinyaiExecuteWithTensorReuse(o, Chain, &got)) << tinyaiLastErrorMessage();
        ASSERT_EQ(got.size(), 4u);
        EXPECT_EQ(got[3] == got[0], in_place);
        EXPECT_EQ(tinyaiGetMemoryOptimizerStats(o).peak_usage, in_place ? 4096u : 4 * 4096u);
        tinyaiFreeMemoryOptimizer(o);
    }
}

TEST(MemoryOptimizer, BadArgumentsAreRefused) {
    EXPECT_EQ(tinyaiCreateMemoryOptimizer(nullptr), nullptr);
    TinyAIMemoryOptimizerConfig bad = {true, true, 1.5f, 0};
    EXPECT_EQ(tinyaiCreateMemoryOptimizer(&bad), nullptr);
    bad.memory_speed_tradeoff = -0.1f;
    EXPECT_EQ(tinyaiCreateMemoryOptimizer(&bad), nullptr);
    tinyaiFreeMemoryOptimizer(nullptr);
    EXPECT_FALSE(tinyaiExecuteWithTensorReuse(nullptr, ThreeThenOne, nullptr));
    TinyAIMemoryOptimizerConfig ok = {true, true, 0.3f, 0};
    TinyAIMemoryOptimizer *o = tinyaiCreateMemoryOptimizer(&ok);
    ASSERT_NE(o, nullptr);
    EXPECT_FALSE(tinyaiExecuteWithTensorReuse(o, nullptr, nullptr));
    Steps s;
    EXPECT_FALSE(tinyaiExecuteWithTensorReuse(o, ThreeThenOne, &s));  // no arena
    TinyAIMemoryOptimizerChoice c;
    EXPECT_FALSE(tinyaiGetMemoryOptimizerChoice(o, &c));  // nothing chosen yet
    tinyaiSetMemorySpeedTradeoff(o, 7.0f);                // clamped
    tinyaiEnableInPlaceOperations(o, false);
    EXPECT_EQ(tinyaiGetMemoryOptimizerStats(nullptr).peak_usage, 0u);
    tinyaiFreeMemoryOptimizer(o);
}

}  // namespace
