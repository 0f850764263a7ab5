// runtime/model under a memory limit: every execution mode, cache policy and
// I/O engine, on the real default model (GGUF and its .tmai conversion),
// gives bit-identical logits, and so the same greedy tokens, as fully
// resident execution without a limit. Layers read on demand, evicted and
// read again must be the same bytes, repacked the same way.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include <tinyai/llm.h>

#include "tests/common/test_paths.h"
#include "tests/model/memory_test_util.h"

namespace {

using tai_test::GreedyRun;
using tai_test::MemConfig;
using tai_test::ModelPtr;

constexpr int kCtx = 64;
constexpr int kGen = 6;
const char *const kPrompt = "The capital of France is";

struct Case {
    std::string name;
    TinyAIExecutionMode mode;
    double fraction;  // of model + runtime; 0: a limit far above the model
    TinyAICachePolicy policy;
    TinyAIIOEngine io;
};

class ExecModes : public ::testing::TestWithParam<const char *> {
protected:
    static void SetUpTestSuite() {
        gguf_ = tai_test::DefaultModelPath();
        if (!gguf_.empty()) tmai_ = tai_test::ConvertToTmai(gguf_);
    }
    static void TearDownTestSuite() {
        if (!tmai_.empty()) std::remove(tmai_.c_str());
    }
    std::string Path() const { return std::string(GetParam()) == "gguf" ? gguf_ : tmai_; }
    static std::string gguf_, tmai_;
};
std::string ExecModes::gguf_, ExecModes::tmai_;

void ExpectSameRun(const GreedyRun &want, const GreedyRun &got) {
    ASSERT_EQ(got.tokens.size(), want.tokens.size());
    EXPECT_EQ(got.tokens, want.tokens);
    for (size_t i = 0; i < want.logits.size(); i++) {
        ASSERT_EQ(got.logits[i].size(), want.logits[i].size());
        size_t diff = 0;
        for (size_t j = 0; j < want.logits[i].size(); j++)
            diff += got.logits[i][j] != want.logits[i][j];
        EXPECT_EQ(diff, 0u) << "step " << i << ": logits differ from resident execution";
    }
}

TEST_P(ExecModes, EveryModeMatchesResidentExecution) {
    TAI_REQUIRE_DEFAULT_MODEL(model_path);
    const std::string path = Path();
    ASSERT_FALSE(path.empty());

    // The reference: no limit, every layer resident.
    TinyAIModelConfig rc = MemConfig(0, TINYAI_EXEC_ADAPTIVE);
    rc.contextSize = kCtx;
    ModelPtr ref = tai_test::LoadModel(path, rc);
    ASSERT_TRUE(ref) << tinyaiLastErrorMessage();
    const std::vector<int32_t> prompt = tai_test::Tokenize(ref.get(), kPrompt);
    ASSERT_FALSE(prompt.empty());
    const GreedyRun want = tai_test::Greedy(ref.get(), prompt, kGen, kCtx);
    ASSERT_EQ(want.tokens.size(), (size_t)kGen);
    TinyAIMemoryInfo rmi = tai_test::MemInfo(ref.get());
    EXPECT_EQ(rmi.mode, TINYAI_EXEC_NORMAL);
    EXPECT_TRUE(rmi.planned);
    ref.reset();

    // Model + runtime and the least limit, measured at a generous limit and
    // at one too small (whose message names the minimum).
    TinyAIModelConfig pc = MemConfig(1ull << 30, TINYAI_EXEC_MEMORY_OPT);
    pc.contextSize = kCtx;
    ModelPtr probe = tai_test::LoadModel(path, pc);
    ASSERT_TRUE(probe);
    {
        TinyAISession *s = nullptr;
        ASSERT_EQ(tinyaiCreateSession(probe.get(), kCtx, &s), TINYAI_OK) << tinyaiLastErrorMessage();
        tinyaiFreeSession(s);
    }
    TinyAIMemoryInfo pmi = tai_test::MemInfo(probe.get());
    probe.reset();
    const size_t whole = pmi.modelBytes + pmi.sessionBytes + pmi.stagingBytes;
    pc.memoryLimit = 1;
    probe = tai_test::LoadModel(path, pc);
    ASSERT_TRUE(probe);
    TinyAISession *none = nullptr;
    ASSERT_EQ(tinyaiCreateSession(probe.get(), kCtx, &none), TINYAI_ERR_RANGE);
    const size_t minimum = tai_test::MinimumFromMessage(tinyaiLastErrorMessage());
    ASSERT_GT(minimum, 0u) << tinyaiLastErrorMessage();
    probe.reset();
    printf("[ %s ] model %zu bytes of layer images, model + runtime %zu, minimum %zu\n",
           GetParam(), pmi.modelBytes, whole, minimum);

    const std::vector<Case> cases = {
        {"normal, big limit", TINYAI_EXEC_NORMAL, 0, TINYAI_CACHE_BELADY, TINYAI_IO_AUTO},
        {"memory-opt 50% belady", TINYAI_EXEC_MEMORY_OPT, 0.5, TINYAI_CACHE_BELADY, TINYAI_IO_AUTO},
        {"memory-opt 50% lru", TINYAI_EXEC_MEMORY_OPT, 0.5, TINYAI_CACHE_LRU, TINYAI_IO_AUTO},
        {"memory-opt 25% belady", TINYAI_EXEC_MEMORY_OPT, 0.25, TINYAI_CACHE_BELADY, TINYAI_IO_AUTO},
        {"memory-opt 25% lru", TINYAI_EXEC_MEMORY_OPT, 0.25, TINYAI_CACHE_LRU, TINYAI_IO_AUTO},
        {"streaming 50%", TINYAI_EXEC_STREAMING, 0.5, TINYAI_CACHE_BELADY, TINYAI_IO_AUTO},
        {"streaming 25% lru", TINYAI_EXEC_STREAMING, 0.25, TINYAI_CACHE_LRU, TINYAI_IO_AUTO},
        {"adaptive 50%", TINYAI_EXEC_ADAPTIVE, 0.5, TINYAI_CACHE_BELADY, TINYAI_IO_AUTO},
        {"adaptive big limit", TINYAI_EXEC_ADAPTIVE, 0, TINYAI_CACHE_BELADY, TINYAI_IO_AUTO},
        {"memory-opt 50% uring", TINYAI_EXEC_MEMORY_OPT, 0.5, TINYAI_CACHE_BELADY, TINYAI_IO_URING},
        {"memory-opt 50% pread", TINYAI_EXEC_MEMORY_OPT, 0.5, TINYAI_CACHE_BELADY, TINYAI_IO_PREAD},
        {"memory-opt 50% mmap", TINYAI_EXEC_MEMORY_OPT, 0.5, TINYAI_CACHE_BELADY, TINYAI_IO_MMAP},
        {"streaming 25% pread", TINYAI_EXEC_STREAMING, 0.25, TINYAI_CACHE_BELADY, TINYAI_IO_PREAD},
        {"streaming 25% mmap", TINYAI_EXEC_STREAMING, 0.25, TINYAI_CACHE_BELADY, TINYAI_IO_MMAP},
    };
    for (const Case &c : cases) {
        SCOPED_TRACE(c.name);
        // The model's embedding (tied to the head) is a third of it, so a
        // quarter is below what it can run in: those cases run at the
        // minimum instead.
        size_t limit = c.fraction > 0 ? (size_t)(c.fraction * (double)whole) : (size_t)2 << 30;
        if (limit < minimum) limit = minimum;
        TinyAIModelConfig mc = MemConfig(limit, c.mode);
        mc.contextSize = kCtx;
        mc.cachePolicy = c.policy;
        mc.ioEngine = c.io;
        TinyAIStatus st;
        ModelPtr m = tai_test::LoadModel(path, mc, &st);
        ASSERT_EQ(st, TINYAI_OK) << tinyaiLastErrorMessage();
        const GreedyRun got = tai_test::Greedy(m.get(), prompt, kGen, kCtx);
        ExpectSameRun(want, got);
        TinyAIMemoryInfo mi = tai_test::MemInfo(m.get());
        EXPECT_TRUE(mi.planned);
        EXPECT_EQ(mi.memoryLimit, limit);
        EXPECT_LE(mi.peakBytes, limit);
        EXPECT_STREQ(mi.cachePolicy, c.policy == TINYAI_CACHE_LRU ? "lru" : "belady");
        if (c.io == TINYAI_IO_PREAD) {
            EXPECT_STREQ(mi.ioEngine, "pread");
        }
        if (c.io == TINYAI_IO_MMAP) {
            EXPECT_STREQ(mi.ioEngine, "mmap");
        }
        if (c.io == TINYAI_IO_URING && !mi.ioFallback) {
            EXPECT_STREQ(mi.ioEngine, "uring");
        }
        if (c.mode == TINYAI_EXEC_ADAPTIVE) {
            EXPECT_NE(mi.mode, TINYAI_EXEC_ADAPTIVE);
            EXPECT_STRNE(mi.modeReason, "");
            if (c.fraction == 0) EXPECT_EQ(mi.mode, TINYAI_EXEC_NORMAL);
            else EXPECT_NE(mi.mode, TINYAI_EXEC_NORMAL);  // half the model does not fit
        } else {
            EXPECT_EQ(mi.mode, c.mode);
        }
        if (mi.mode != TINYAI_EXEC_NORMAL) {
            // layers really came and went: more was read than the model once
            EXPECT_LT(mi.cacheBytes, mi.modelBytes);
            EXPECT_GT(mi.bytesRead, (uint64_t)mi.modelBytes);
            EXPECT_GT(mi.evictions, 0u);
        } else {
            EXPECT_EQ(mi.evictions, 0u);
        }
        printf("[ %s ] %-24s limit %10zu: mode %-10s cache %10zu read %11llu peak %10zu io %s\n",
               GetParam(), c.name.c_str(), limit, tinyaiExecutionModeName(mi.mode), mi.cacheBytes,
               (unsigned long long)mi.bytesRead, mi.peakBytes, mi.ioEngine ? mi.ioEngine : "?");
    }
}

INSTANTIATE_TEST_SUITE_P(Formats, ExecModes, ::testing::Values("gguf", "tmai"),
                         [](const ::testing::TestParamInfo<const char *> &i) {
                             return std::string(i.param);
                         });

}  // namespace
