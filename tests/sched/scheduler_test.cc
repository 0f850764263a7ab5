// runtime/sched: the forward scheduler of <tinyai/utils/forward_scheduler.h>
// on the real default model. The sequential schedule runs the layers
// 0 .. n + 1 in order on every pass and generates exactly the text of greedy
// generation through tinyaiEval; memory usage and peak are reported and stay
// under the limit; malformed schedules (cycles, unknown layers, a wrong
// order) are refused at prepare, changes after the start are refused; batch
// sizing and mode names.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <tinyai/llm.h>
#include <tinyai/utils/forward_scheduler.h>
#include <tinyai/utils/mmap_loader.h>

#include "tests/common/test_paths.h"

namespace {

struct MappedDeleter {
    void operator()(TinyAIMappedModel *m) const { tinyaiCloseMappedModel(m); }
};
struct SchedDeleter {
    void operator()(TinyAIForwardScheduler *s) const { tinyaiDestroyForwardScheduler(s); }
};
using MappedPtr = std::unique_ptr<TinyAIMappedModel, MappedDeleter>;
using SchedPtr = std::unique_ptr<TinyAIForwardScheduler, SchedDeleter>;

const char *const kPrompt = "The capital of France is";
constexpr int kNewTokens = 8;
constexpr size_t kEmbdBytes = 576 * sizeof(float);  // SmolLM2's hidden state

MappedPtr Open(const std::string &path) {
    TinyAIMmapConfig c = tinyaiCreateDefaultMmapConfig();
    TinyAIMappedModel *m = tinyaiOpenMappedModel(path.c_str(), &c);
    EXPECT_NE(m, nullptr) << tinyaiLastErrorMessage();
    return MappedPtr(m);
}

// Layer i after layer i - 1, each with an output of the hidden state's size.
void AddSequential(TinyAIForwardScheduler *s, int layers) {
    for (int i = 0; i < layers; i++)
        ASSERT_TRUE(tinyaiAddLayerToSchedule(s, i, i > 0 ? i - 1 : -1,
                                             i > 0 ? TINYAI_DEP_SEQUENTIAL : TINYAI_DEP_NONE,
                                             kEmbdBytes))
            << i << ": " << tinyaiLastErrorMessage();
}

// The same generation through the model API: prompt, then greedy argmax.
std::string GreedyText(const std::string &path, int n) {
    TinyAIModelConfig c = tinyaiCreateDefaultModelConfig();
    c.threads = 2;
    TinyAIModel *m = nullptr;
    EXPECT_EQ(tinyaiLoadModel(path.c_str(), &c, &m), TINYAI_OK) << tinyaiLastErrorMessage();
    if (!m) return "";
    TinyAIModelInfo info;
    tinyaiGetModelInfo(m, &info);
    std::vector<int32_t> ids(64);
    size_t k = 0;
    EXPECT_EQ(tinyaiTokenize(m, kPrompt, info.addBosToken, false, ids.data(), ids.size(), &k),
              TINYAI_OK);
    TinyAISession *s = nullptr;
    EXPECT_EQ(tinyaiCreateSession(m, 256, &s), TINYAI_OK);
    EXPECT_EQ(tinyaiEval(s, ids.data(), k), TINYAI_OK);
    std::string text;
    for (int i = 0; i < n; i++) {
        const float *l = tinyaiGetLogits(s);
        int32_t id = (int32_t)(std::max_element(l, l + info.nVocab) - l);
        if (tinyaiTokenIsEndOfGeneration(m, id)) break;
        size_t len = 0;
        const char *p = tinyaiTokenPiece(m, id, &len);
        text.append(p, len);
        if (i + 1 < n) {
            EXPECT_EQ(tinyaiEval(s, &id, 1), TINYAI_OK);
        }
    }
    tinyaiFreeSession(s);
    tinyaiFreeModel(m);
    return text;
}

size_t MinimumFromMessage(const std::string &msg) {
    size_t at = msg.find("minimum of ");
    return at == std::string::npos ? 0 : (size_t)std::strtoull(msg.c_str() + at + 11, nullptr, 10);
}

struct RunResult {
    std::string text;
    std::vector<int> layers;
    size_t usage = 0, peak = 0;
    TinyAISchedulerInfo info{};
};

RunResult RunSchedule(TinyAIMappedModel *mm, TinyAIExecutionMode mode, size_t limit) {
    RunResult r;
    SchedPtr s(tinyaiCreateForwardScheduler(mm, mode, limit));
    EXPECT_TRUE(s) << tinyaiLastErrorMessage();
    if (!s) return r;
    const int n = tinyaiGetMappedLayerCount(mm);
    AddSequential(s.get(), n);
    const bool prepared = tinyaiPrepareForwardPass(s.get());
    EXPECT_TRUE(prepared) << tinyaiLastErrorMessage();
    if (!prepared) return r;
    TinyAISchedulerGeneration g = tinyaiCreateDefaultSchedulerGeneration();
    g.maxNewTokens = kNewTokens;
    EXPECT_TRUE(tinyaiSetSchedulerGeneration(s.get(), &g));
    std::vector<char> out(TINYAI_SCHEDULER_DEFAULT_OUTPUT, 'x');
    int layer = -1;
    while (tinyaiExecuteNextLayer(s.get(), kPrompt, out.data(), &layer)) {
        r.layers.push_back(layer);
        r.peak = std::max(r.peak, tinyaiGetSchedulerMemoryUsage(s.get()));
        if (r.layers.size() > 10000) break;  // a runaway loop is a failure
    }
    EXPECT_STREQ(tinyaiLastErrorMessage(), "");  // ended, not failed
    r.text = out.data();
    r.usage = tinyaiGetSchedulerMemoryUsage(s.get());
    EXPECT_GE(tinyaiGetSchedulerPeakMemoryUsage(s.get()), r.peak);
    r.peak = tinyaiGetSchedulerPeakMemoryUsage(s.get());
    EXPECT_TRUE(tinyaiGetSchedulerInfo(s.get(), &r.info));
    // after the end it stays ended
    EXPECT_FALSE(tinyaiExecuteNextLayer(s.get(), kPrompt, out.data(), &layer));
    return r;
}

TEST(Scheduler, SequentialScheduleGeneratesTheGreedyText) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    const std::string want = GreedyText(path, kNewTokens);
    ASSERT_FALSE(want.empty());
    MappedPtr mm = Open(path);
    ASSERT_TRUE(mm);
    const int n = tinyaiGetMappedLayerCount(mm.get());
    ASSERT_EQ(n, 32);

    // the least limit, from the message of one too small
    ASSERT_EQ(tinyaiCreateForwardScheduler(mm.get(), TINYAI_EXEC_MEMORY_OPT, 1 << 20), nullptr);
    const size_t minimum = MinimumFromMessage(tinyaiLastErrorMessage());
    ASSERT_GT(minimum, (size_t)(1 << 20)) << tinyaiLastErrorMessage();

    struct Case {
        TinyAIExecutionMode mode;
        size_t limit;
    };
    // the declared outputs (two hidden states live at once in a chain) are
    // part of the limit too
    const size_t outputs = 2 * kEmbdBytes;
    const std::vector<Case> cases = {
        {TINYAI_EXEC_NORMAL, 0},
        {TINYAI_EXEC_MEMORY_OPT, minimum + outputs},
        {TINYAI_EXEC_MEMORY_OPT, minimum + (24u << 20)},
        {TINYAI_EXEC_STREAMING, minimum + (8u << 20)},
        {TINYAI_EXEC_ADAPTIVE, minimum + (8u << 20)},
        {TINYAI_EXEC_ADAPTIVE, 0},
    };
    for (const Case &c : cases) {
        SCOPED_TRACE(std::string(tinyaiExecutionModeName(c.mode)) + " " + std::to_string(c.limit));
        RunResult r = RunSchedule(mm.get(), c.mode, c.limit);
        EXPECT_EQ(r.text, want);
        // every pass: 0 .. n - 1 in order; one pass per generated token
        ASSERT_EQ(r.layers.size(), (size_t)(n * kNewTokens));
        for (size_t i = 0; i < r.layers.size(); i++)
            ASSERT_EQ(r.layers[i], (int)(i % n)) << "step " << i;
        EXPECT_EQ(r.info.tokensGenerated, kNewTokens);
        EXPECT_EQ(r.info.passesCompleted, kNewTokens);
        EXPECT_EQ(r.info.memoryLimit, c.limit);
        EXPECT_GT(r.info.minimumBytes, 0u);
        EXPECT_GT(r.usage, 0u);
        EXPECT_GE(r.peak, r.usage);
        if (c.limit > 0) {
            EXPECT_LE(r.peak, c.limit) << "tracked peak above the limit";
            EXPECT_LE(r.info.cacheBytes + r.info.runtimeBytes, c.limit);
        }
        if (c.mode == TINYAI_EXEC_ADAPTIVE) {
            EXPECT_NE(r.info.mode, TINYAI_EXEC_ADAPTIVE);
            EXPECT_STRNE(r.info.reason, "");
            if (c.limit == 0) {
                EXPECT_EQ(r.info.mode, TINYAI_EXEC_NORMAL);
            }
        } else {
            EXPECT_EQ(r.info.mode, c.mode);
        }
        printf("[ %-10s ] limit %9zu: ran %-10s usage %9zu peak %9zu cache %9zu: \"%s\"\n",
               tinyaiExecutionModeName(c.mode), c.limit, tinyaiExecutionModeName(r.info.mode),
               r.usage, r.peak, r.info.cacheBytes, r.text.c_str());
    }
}

// The limit holds the declared outputs with the rest: at the least limit the
// model runs in, a schedule with outputs is refused at prepare (saying so),
// one without them runs.
TEST(Scheduler, DeclaredOutputsCountAgainstTheLimit) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    MappedPtr mm = Open(path);
    ASSERT_TRUE(mm);
    const int n = tinyaiGetMappedLayerCount(mm.get());
    ASSERT_EQ(tinyaiCreateForwardScheduler(mm.get(), TINYAI_EXEC_STREAMING, 4096), nullptr);
    const size_t minimum = MinimumFromMessage(tinyaiLastErrorMessage());
    ASSERT_GT(minimum, 4096u);
    {
        SchedPtr s(tinyaiCreateForwardScheduler(mm.get(), TINYAI_EXEC_STREAMING, minimum));
        ASSERT_TRUE(s) << tinyaiLastErrorMessage();
        AddSequential(s.get(), n);
        EXPECT_FALSE(tinyaiPrepareForwardPass(s.get()));
        std::string msg = tinyaiLastErrorMessage();
        EXPECT_NE(msg.find("outputs"), std::string::npos) << msg;
        char out[64];
        EXPECT_FALSE(tinyaiExecuteNextLayer(s.get(), kPrompt, out, nullptr));
    }
    {   // outputs larger than the whole limit
        SchedPtr s(tinyaiCreateForwardScheduler(mm.get(), TINYAI_EXEC_STREAMING, minimum));
        ASSERT_TRUE(s);
        for (int i = 0; i < n; i++)
            ASSERT_TRUE(tinyaiAddLayerToSchedule(s.get(), i, i - 1,
                                                 i ? TINYAI_DEP_SEQUENTIAL : TINYAI_DEP_NONE,
                                                 i == 3 ? minimum : 16));
        EXPECT_FALSE(tinyaiPrepareForwardPass(s.get()));
        EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("outputs"), std::string::npos)
            << tinyaiLastErrorMessage();
    }
    SchedPtr s(tinyaiCreateForwardScheduler(mm.get(), TINYAI_EXEC_STREAMING, minimum));
    ASSERT_TRUE(s);
    for (int i = 0; i < n; i++)
        ASSERT_TRUE(tinyaiAddLayerToSchedule(s.get(), i, i - 1,
                                             i ? TINYAI_DEP_SEQUENTIAL : TINYAI_DEP_NONE, 0));
    ASSERT_TRUE(tinyaiPrepareForwardPass(s.get())) << tinyaiLastErrorMessage();
    TinyAISchedulerGeneration g = tinyaiCreateDefaultSchedulerGeneration();
    g.maxNewTokens = 2;
    ASSERT_TRUE(tinyaiSetSchedulerGeneration(s.get(), &g));
    char out[256];
    int steps = 0;
    while (tinyaiExecuteNextLayer(s.get(), kPrompt, out, nullptr)) steps++;
    EXPECT_STREQ(tinyaiLastErrorMessage(), "");
    EXPECT_EQ(steps, 2 * n);
    EXPECT_LE(tinyaiGetSchedulerPeakMemoryUsage(s.get()), minimum);
}

TEST(Scheduler, CreationChecksItsArguments) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    MappedPtr mm = Open(path);
    ASSERT_TRUE(mm);
    EXPECT_EQ(tinyaiCreateForwardScheduler(nullptr, TINYAI_EXEC_NORMAL, 0), nullptr);
    EXPECT_EQ(tinyaiCreateForwardScheduler(mm.get(), (TinyAIExecutionMode)9, 0), nullptr);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("mode"), std::string::npos);
    EXPECT_EQ(tinyaiCreateForwardScheduler(mm.get(), TINYAI_EXEC_STREAMING, 4096), nullptr);
    std::string msg = tinyaiLastErrorMessage();
    const size_t minimum = MinimumFromMessage(msg);
    EXPECT_GT(minimum, 4096u) << msg;
    // one byte less fails, the minimum works
    EXPECT_EQ(tinyaiCreateForwardScheduler(mm.get(), TINYAI_EXEC_STREAMING, minimum - 1), nullptr);
    SchedPtr s(tinyaiCreateForwardScheduler(mm.get(), TINYAI_EXEC_STREAMING, minimum));
    EXPECT_TRUE(s) << tinyaiLastErrorMessage();
    // NORMAL under a limit that cannot hold the model
    EXPECT_EQ(tinyaiCreateForwardScheduler(mm.get(), TINYAI_EXEC_NORMAL, minimum), nullptr);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("normal"), std::string::npos)
        << tinyaiLastErrorMessage();
}

TEST(Scheduler, MalformedSchedulesAreRefusedAtPrepare) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    MappedPtr mm = Open(path);
    ASSERT_TRUE(mm);
    const int n = tinyaiGetMappedLayerCount(mm.get());
    auto fresh = [&] {
        SchedPtr s(tinyaiCreateForwardScheduler(mm.get(), TINYAI_EXEC_NORMAL, 0));
        EXPECT_TRUE(s) << tinyaiLastErrorMessage();
        return s;
    };
    auto refused = [&](TinyAIForwardScheduler *s, const char *needle) {
        SCOPED_TRACE(needle);
        EXPECT_FALSE(tinyaiPrepareForwardPass(s));
        std::string msg = tinyaiLastErrorMessage();
        EXPECT_NE(msg.find(needle), std::string::npos) << msg;
        // nothing runs from a refused schedule
        char out[64];
        EXPECT_FALSE(tinyaiExecuteNextLayer(s, kPrompt, out, nullptr));
    };
    {   // a cycle: 0 -> 2 -> 1 -> 0
        SchedPtr s = fresh();
        ASSERT_TRUE(tinyaiAddLayerToSchedule(s.get(), 0, 1, TINYAI_DEP_SEQUENTIAL, kEmbdBytes));
        ASSERT_TRUE(tinyaiAddLayerToSchedule(s.get(), 1, 2, TINYAI_DEP_SEQUENTIAL, kEmbdBytes));
        ASSERT_TRUE(tinyaiAddLayerToSchedule(s.get(), 2, 0, TINYAI_DEP_SEQUENTIAL, kEmbdBytes));
        refused(s.get(), "cycle");
    }
    {   // a dependency on a layer never added
        SchedPtr s = fresh();
        AddSequential(s.get(), 5);
        ASSERT_TRUE(tinyaiAddLayerToSchedule(s.get(), 5, 17, TINYAI_DEP_RESIDUAL, kEmbdBytes));
        refused(s.get(), "17");
    }
    {   // a layer the model does not have
        SchedPtr s = fresh();
        AddSequential(s.get(), n);
        if (tinyaiAddLayerToSchedule(s.get(), n, n - 1, TINYAI_DEP_SEQUENTIAL, kEmbdBytes))
            refused(s.get(), std::to_string(n).c_str());
    }
    {   // every layer, but 2 before 1
        SchedPtr s = fresh();
        ASSERT_TRUE(tinyaiAddLayerToSchedule(s.get(), 0, -1, TINYAI_DEP_NONE, kEmbdBytes));
        ASSERT_TRUE(tinyaiAddLayerToSchedule(s.get(), 2, 0, TINYAI_DEP_SEQUENTIAL, kEmbdBytes));
        ASSERT_TRUE(tinyaiAddLayerToSchedule(s.get(), 1, 2, TINYAI_DEP_SEQUENTIAL, kEmbdBytes));
        for (int i = 3; i < n; i++)
            ASSERT_TRUE(tinyaiAddLayerToSchedule(s.get(), i, i - 1, TINYAI_DEP_SEQUENTIAL, kEmbdBytes));
        refused(s.get(), "layer 1 depends on layer 2, which runs after it");
    }
    {   // a pass missing its head: the model's layers still all run
        SchedPtr s = fresh();
        AddSequential(s.get(), n - 1);
        EXPECT_TRUE(tinyaiPrepareForwardPass(s.get())) << tinyaiLastErrorMessage();
    }
    {   // an empty schedule
        SchedPtr s = fresh();
        EXPECT_FALSE(tinyaiPrepareForwardPass(s.get()));
        EXPECT_STRNE(tinyaiLastErrorMessage(), "");
    }
    {   // bad arguments to add
        SchedPtr s = fresh();
        EXPECT_FALSE(tinyaiAddLayerToSchedule(nullptr, 0, -1, TINYAI_DEP_NONE, 0));
        EXPECT_FALSE(tinyaiAddLayerToSchedule(s.get(), -1, -1, TINYAI_DEP_NONE, 0));
        EXPECT_FALSE(tinyaiAddLayerToSchedule(s.get(), 1, 1, TINYAI_DEP_SEQUENTIAL, 0));  // itself
        EXPECT_FALSE(tinyaiAddLayerToSchedule(s.get(), 1, -1, TINYAI_DEP_SEQUENTIAL, 0));
        EXPECT_FALSE(tinyaiPrepareForwardPass(nullptr));
    }
}

TEST(Scheduler, NothingChangesOnceExecutionStarted) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    MappedPtr mm = Open(path);
    ASSERT_TRUE(mm);
    const int n = tinyaiGetMappedLayerCount(mm.get());
    SchedPtr s(tinyaiCreateForwardScheduler(mm.get(), TINYAI_EXEC_NORMAL, 0));
    ASSERT_TRUE(s);
    char out[256];
    int layer = -1;
    // not prepared yet
    EXPECT_FALSE(tinyaiExecuteNextLayer(s.get(), kPrompt, out, &layer));
    EXPECT_STRNE(tinyaiLastErrorMessage(), "");
    AddSequential(s.get(), n);
    ASSERT_TRUE(tinyaiPrepareForwardPass(s.get()));
    EXPECT_FALSE(tinyaiExecuteNextLayer(s.get(), nullptr, out, &layer));
    EXPECT_FALSE(tinyaiExecuteNextLayer(s.get(), kPrompt, nullptr, &layer));
    TinyAISchedulerGeneration g = tinyaiCreateDefaultSchedulerGeneration();
    g.maxNewTokens = 2;
    g.outputCapacity = sizeof out;
    g.includePrompt = true;
    ASSERT_TRUE(tinyaiSetSchedulerGeneration(s.get(), &g));
    ASSERT_TRUE(tinyaiExecuteNextLayer(s.get(), kPrompt, out, &layer));
    EXPECT_EQ(layer, 0);
    EXPECT_FALSE(tinyaiAddLayerToSchedule(s.get(), 0, -1, TINYAI_DEP_NONE, kEmbdBytes));
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("started"), std::string::npos)
        << tinyaiLastErrorMessage();
    EXPECT_FALSE(tinyaiSetSchedulerGeneration(s.get(), &g));
    int steps = 1;
    while (tinyaiExecuteNextLayer(s.get(), kPrompt, out, &layer)) steps++;
    EXPECT_EQ(steps, 2 * n);
    EXPECT_EQ(std::string(out).rfind(kPrompt, 0), 0u) << out;  // includePrompt
    EXPECT_GT(strlen(out), strlen(kPrompt));
}

TEST(Scheduler, BadGenerationSettingsAreRefused) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    MappedPtr mm = Open(path);
    ASSERT_TRUE(mm);
    SchedPtr s(tinyaiCreateForwardScheduler(mm.get(), TINYAI_EXEC_NORMAL, 0));
    ASSERT_TRUE(s);
    TinyAISchedulerGeneration g = tinyaiCreateDefaultSchedulerGeneration();
    EXPECT_EQ(g.maxNewTokens, TINYAI_SCHEDULER_DEFAULT_NEW_TOKENS);
    EXPECT_EQ(g.outputCapacity, (size_t)TINYAI_SCHEDULER_DEFAULT_OUTPUT);
    TinyAISchedulerGeneration bad = g;
    bad.maxNewTokens = -1;
    EXPECT_FALSE(tinyaiSetSchedulerGeneration(s.get(), &bad));
    bad = g;
    bad.outputCapacity = 0;
    EXPECT_FALSE(tinyaiSetSchedulerGeneration(s.get(), &bad));
    bad = g;
    bad.temperature = -1;
    EXPECT_FALSE(tinyaiSetSchedulerGeneration(s.get(), &bad));
    EXPECT_FALSE(tinyaiSetSchedulerGeneration(s.get(), nullptr));
    EXPECT_FALSE(tinyaiSetSchedulerGeneration(nullptr, &g));
    EXPECT_TRUE(tinyaiSetSchedulerGeneration(s.get(), &g));
}

TEST(Scheduler, OptimalBatchSize) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    MappedPtr mm = Open(path);
    ASSERT_TRUE(mm);
    for (size_t limit : {(size_t)0, (size_t)200 << 20}) {
        SCOPED_TRACE(limit);
        SchedPtr s(tinyaiCreateForwardScheduler(mm.get(), TINYAI_EXEC_MEMORY_OPT, limit));
        ASSERT_TRUE(s) << tinyaiLastErrorMessage();
        for (int max : {1, 4, 16}) {
            int b = tinyaiCalculateOptimalBatchSize(s.get(), kEmbdBytes, kEmbdBytes, max);
            EXPECT_GE(b, 1) << tinyaiLastErrorMessage();
            EXPECT_LE(b, max);
            // from figures measured once (the CPU's calibration, the cost
            // model's predictions), not on every call: the same pick again
            EXPECT_EQ(tinyaiCalculateOptimalBatchSize(s.get(), kEmbdBytes, kEmbdBytes, max), b);
            printf("[ limit %zu ] best batch up to %d: %d\n", limit, max, b);
        }
        EXPECT_EQ(tinyaiCalculateOptimalBatchSize(s.get(), 0, 0, 0), 0);
        EXPECT_STRNE(tinyaiLastErrorMessage(), "");
        EXPECT_EQ(tinyaiCalculateOptimalBatchSize(s.get(), 0, 0, -3), 0);
    }
    EXPECT_EQ(tinyaiCalculateOptimalBatchSize(nullptr, 0, 0, 4), 0);
    {
        // inputSize and outputSize are a sequence's prompt and output as
        // token ids: a longer context leaves less room for the batch and
        // the cache, so never a larger pick; an absurd one fits nothing
        SchedPtr s(tinyaiCreateForwardScheduler(mm.get(), TINYAI_EXEC_MEMORY_OPT, (size_t)160 << 20));
        ASSERT_TRUE(s) << tinyaiLastErrorMessage();
        const int short_ctx = tinyaiCalculateOptimalBatchSize(s.get(), 4 * 16, 4 * 16, 64);
        const int long_ctx = tinyaiCalculateOptimalBatchSize(s.get(), 4 * 4096, 4 * 4096, 64);
        printf("[ limit 160 MiB ] best batch for 32-token sequences %d, 8192-token %d\n", short_ctx,
               long_ctx);
        EXPECT_GE(short_ctx, 1);
        EXPECT_GE(long_ctx, 1);
        EXPECT_LE(long_ctx, short_ctx);
        EXPECT_EQ(tinyaiCalculateOptimalBatchSize(s.get(), SIZE_MAX, SIZE_MAX, 64), 1);
        EXPECT_EQ(tinyaiCalculateOptimalBatchSize(s.get(), SIZE_MAX / 2, 0, 64), 1);
    }
    // a limit with room for one sequence only: the batch is 1
    ASSERT_EQ(tinyaiCreateForwardScheduler(mm.get(), TINYAI_EXEC_STREAMING, 4096), nullptr);
    const size_t minimum = MinimumFromMessage(tinyaiLastErrorMessage());
    SchedPtr tight(tinyaiCreateForwardScheduler(mm.get(), TINYAI_EXEC_STREAMING, minimum));
    ASSERT_TRUE(tight);
    EXPECT_EQ(tinyaiCalculateOptimalBatchSize(tight.get(), 0, 0, 64), 1);
}

TEST(Scheduler, ModeNames) {
    EXPECT_STREQ(tinyaiExecutionModeName(TINYAI_EXEC_NORMAL), "normal");
    EXPECT_STREQ(tinyaiExecutionModeName(TINYAI_EXEC_MEMORY_OPT), "memory-opt");
    EXPECT_STREQ(tinyaiExecutionModeName(TINYAI_EXEC_STREAMING), "streaming");
    EXPECT_STREQ(tinyaiExecutionModeName(TINYAI_EXEC_ADAPTIVE), "adaptive");
    EXPECT_EQ(tinyaiExecutionModeName((TinyAIExecutionMode)4), nullptr);
    EXPECT_EQ(tinyaiExecutionModeName((TinyAIExecutionMode)-1), nullptr);
    TinyAISchedulerInfo info;
    EXPECT_FALSE(tinyaiGetSchedulerInfo(nullptr, &info));
    EXPECT_EQ(tinyaiGetSchedulerMemoryUsage(nullptr), 0u);
    EXPECT_EQ(tinyaiGetSchedulerPeakMemoryUsage(nullptr), 0u);
    tinyaiDestroyForwardScheduler(nullptr);
}

}  // namespace
