// The forward scheduler's graphs of the caller's own: functions per layer
// run in the schedule's order on their dependencies' outputs (the
// specification's residual example computes what its arithmetic says);
// RECOMPUTE drops an output after each reader and makes it again for a
// later one, lowering the peak of held outputs by what it trades in
// compute; the estimate is the measured peak; mixing functions and model
// layers, and failing functions, are clear errors.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include <tinyai/llm.h>
#include <tinyai/utils/forward_scheduler.h>
#include <tinyai/utils/mmap_loader.h>

#include "tests/common/test_paths.h"

namespace {

struct Graph {
    TinyAIMappedModel *mm = nullptr;
    TinyAIForwardScheduler *s = nullptr;
    std::string path;
    Graph() {
        TinyAISynthConfig c = tinyaiCreateDefaultSynthConfig();
        c.nLayer = 6;  // 8 layers to name
        path = tai_test::TempPath(".gguf");
        EXPECT_EQ(tinyaiWriteSyntheticModel(&c, path.c_str()), TINYAI_OK);
        mm = tinyaiOpenMappedModel(path.c_str(), nullptr);
        EXPECT_NE(mm, nullptr) << tinyaiLastErrorMessage();
        s = tinyaiCreateForwardScheduler(mm, TINYAI_EXEC_NORMAL, 0);
        EXPECT_NE(s, nullptr) << tinyaiLastErrorMessage();
    }
    ~Graph() {
        tinyaiDestroyForwardScheduler(s);
        tinyaiCloseMappedModel(mm);
        std::remove(path.c_str());
    }
};

// Each layer's output: n floats, from its inputs as the layer's op says.
struct Op {
    int kind;  // 0: copy the pass input, 1: first input + 1, 2: first input * 2, 3: sum of inputs
    int calls = 0;
};

bool ApplyOp(const TinyAILayerCall *c, void *user) {
    Op *op = static_cast<Op *>(user);
    op->calls++;
    float *out = static_cast<float *>(c->output);
    const size_t n = c->outputSize / sizeof(float);
    for (size_t i = 0; i < n; i++) {
        const float a = c->nInputs > 0 ? static_cast<const float *>(c->inputs[0])[i % (c->inputSizes[0] / 4)] : 0.0f;
        switch (op->kind) {
        case 0: out[i] = static_cast<const float *>(c->passInput)[i % 4]; break;
        case 1: out[i] = a + 1.0f; break;
        case 2: out[i] = a * 2.0f; break;
        default: {
            float sum = 0;
            for (int k = 0; k < c->nInputs; k++)
                sum += static_cast<const float *>(c->inputs[k])[i % (c->inputSizes[k] / 4)];
            out[i] = sum;
        }
        }
    }
    return true;
}

TEST(ScheduleGraph, TheResidualExampleComputesItsArithmetic) {
    Graph g;
    ASSERT_TRUE(g.s);
    const size_t sz = 4 * sizeof(float);
    // the specification's residual example, with functions
    ASSERT_TRUE(tinyaiAddLayerToSchedule(g.s, 0, -1, TINYAI_DEP_NONE, sz));
    ASSERT_TRUE(tinyaiAddLayerToSchedule(g.s, 1, 0, TINYAI_DEP_SEQUENTIAL, sz));
    ASSERT_TRUE(tinyaiAddLayerToSchedule(g.s, 2, 0, TINYAI_DEP_RESIDUAL, sz));
    ASSERT_TRUE(tinyaiAddLayerToSchedule(g.s, 3, 1, TINYAI_DEP_SEQUENTIAL, sz));
    ASSERT_TRUE(tinyaiAddLayerToSchedule(g.s, 3, 2, TINYAI_DEP_SEQUENTIAL, sz));
    Op ops[4] = {{0}, {1}, {2}, {3}};
    for (int l = 0; l < 4; l++) ASSERT_TRUE(tinyaiSetLayerFunction(g.s, l, ApplyOp, &ops[l]));
    ASSERT_TRUE(tinyaiPrepareForwardPass(g.s)) << tinyaiLastErrorMessage();
    const float in[4] = {1, 2, 3, 4};
    float out[4];
    std::vector<int> order;
    int layer = -1;
    while (tinyaiExecuteNextLayer(g.s, in, out, &layer)) order.push_back(layer);
    EXPECT_STREQ(tinyaiLastErrorMessage(), "");
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
    // layer 3 = (x + 1) + 2x
    for (int i = 0; i < 4; i++) EXPECT_EQ(out[i], in[i] + 1 + 2 * in[i]) << i;
    for (auto &op : ops) EXPECT_EQ(op.calls, 1);
}

// 0 (small) -> 1 (1 MiB, also read by 6) -> 2..5 (2 MiB each) -> 6 (small,
// reads 5 and 1). Held to its last reader, layer 1's output sits through
// the big middle; recomputed instead, it does not.
size_t PeakWith(bool recompute, int *recomputed, size_t *estimate, float *result) {
    Graph g;
    const size_t small = 1024, mid = 1u << 20, big = 2u << 20;
    EXPECT_TRUE(tinyaiAddLayerToSchedule(g.s, 0, -1, TINYAI_DEP_NONE, small));
    EXPECT_TRUE(tinyaiAddLayerToSchedule(g.s, 1, 0, TINYAI_DEP_SEQUENTIAL, mid));
    for (int l = 2; l <= 5; l++)
        EXPECT_TRUE(tinyaiAddLayerToSchedule(g.s, l, l - 1, TINYAI_DEP_SEQUENTIAL, big));
    EXPECT_TRUE(tinyaiAddLayerToSchedule(g.s, 6, 5, TINYAI_DEP_SEQUENTIAL, small));
    EXPECT_TRUE(tinyaiAddLayerToSchedule(g.s, 6, 1, TINYAI_DEP_RESIDUAL, small));
    static Op ops[7];
    ops[0] = {0};
    for (int l = 1; l <= 5; l++) ops[l] = {1};
    ops[6] = {3};
    for (int l = 0; l <= 6; l++) EXPECT_TRUE(tinyaiSetLayerFunction(g.s, l, ApplyOp, &ops[l]));
    if (recompute) {
        EXPECT_TRUE(tinyaiSetScheduleCheckpointing(g.s, 1, TINYAI_CHECKPOINT_RECOMPUTE));
    }
    EXPECT_TRUE(tinyaiPrepareForwardPass(g.s)) << tinyaiLastErrorMessage();
    *estimate = tinyaiEstimateScheduleMemory(g.s);
    const float in[4] = {1, 2, 3, 4};
    std::vector<float> out(big / 4);
    while (tinyaiExecuteNextLayer(g.s, in, out.data(), nullptr)) {}
    EXPECT_STREQ(tinyaiLastErrorMessage(), "");
    *recomputed = tinyaiGetScheduleRecomputations(g.s);
    memcpy(result, out.data(), 4 * sizeof(float));
    return tinyaiGetScheduleOutputsPeak(g.s);
}

TEST(ScheduleGraph, RecomputingAHeldOutputLowersThePeak) {
    int rc_keep = -1, rc_re = -1;
    size_t est_keep = 0, est_re = 0;
    float r_keep[4], r_re[4];
    const size_t keep = PeakWith(false, &rc_keep, &est_keep, r_keep);
    const size_t re = PeakWith(true, &rc_re, &est_re, r_re);
    EXPECT_EQ(rc_keep, 0);
    EXPECT_EQ(rc_re, 2);  // layer 1 again, and layer 0 it reads (gone after its last reader)
    EXPECT_EQ(est_keep, keep);
    EXPECT_EQ(est_re, re);
    EXPECT_LE(re + (1u << 20), keep) << re << " vs " << keep;
    // the same result either way: (x + 5) + (x + 1)
    for (int i = 0; i < 4; i++) {
        EXPECT_EQ(r_keep[i], r_re[i]);
        EXPECT_EQ(r_keep[i], 2 * (float)(i + 1) + 6) << i;
    }
}

bool Fails(const TinyAILayerCall *, void *) { return false; }

TEST(ScheduleGraph, MisuseIsAClearError) {
    {   // functions for some layers only
        Graph g;
        ASSERT_TRUE(tinyaiAddLayerToSchedule(g.s, 0, -1, TINYAI_DEP_NONE, 16));
        ASSERT_TRUE(tinyaiAddLayerToSchedule(g.s, 1, 0, TINYAI_DEP_SEQUENTIAL, 16));
        Op op{0};
        ASSERT_TRUE(tinyaiSetLayerFunction(g.s, 0, ApplyOp, &op));
        EXPECT_FALSE(tinyaiPrepareForwardPass(g.s));
        EXPECT_NE(strstr(tinyaiLastErrorMessage(), "1 of the schedule's 2 layers"), nullptr)
            << tinyaiLastErrorMessage();
    }
    {   // a failing function stops the pass with a message
        Graph g;
        ASSERT_TRUE(tinyaiAddLayerToSchedule(g.s, 0, -1, TINYAI_DEP_NONE, 16));
        ASSERT_TRUE(tinyaiSetLayerFunction(g.s, 0, Fails, nullptr));
        ASSERT_TRUE(tinyaiPrepareForwardPass(g.s));
        float out[4];
        EXPECT_FALSE(tinyaiExecuteNextLayer(g.s, out, out, nullptr));
        EXPECT_NE(strstr(tinyaiLastErrorMessage(), "layer 0's function failed"), nullptr);
        EXPECT_FALSE(tinyaiExecuteNextLayer(g.s, out, out, nullptr));  // over
    }
    Graph g;
    EXPECT_FALSE(tinyaiSetLayerFunction(g.s, 99, ApplyOp, nullptr));
    EXPECT_FALSE(tinyaiSetLayerFunction(nullptr, 0, ApplyOp, nullptr));
    EXPECT_FALSE(tinyaiSetScheduleCheckpointing(g.s, 0, (TinyAICheckpointStrategy)9));
    EXPECT_FALSE(tinyaiSetScheduleCheckpointing(g.s, -1, TINYAI_CHECKPOINT_RECOMPUTE));
    EXPECT_EQ(tinyaiEstimateScheduleMemory(g.s), 0u);  // not prepared
}

}  // namespace
