// runtime: nothing a model opens outlives it. The process's open file
// descriptors (/proc/self/fd) are the same before a model is loaded and
// after it is freed: with each I/O engine, resident and streaming, after
// sessions and passes, after a pass that failed because the file changed,
// and after loads that failed (no file, not a model, a truncated one, a
// limit below the minimum).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <tinyai/llm.h>

#include "tests/common/test_paths.h"
#include "tests/model/memory_test_util.h"

namespace {

using tai_test::MemConfig;
using tai_test::ModelPtr;
using tai_test::TempFile;

constexpr int kCtx = 32;


TinyAISynthConfig Synth() { return tai_test::SmallSynth(4, 3); }

// Loads `path` under `limit` (0: resident) through `io`, evaluates a few
// tokens in two sessions, frees everything.
void LoadRunFree(const std::string &path, size_t limit, TinyAIIOEngine io) {
    TinyAIModelConfig c = MemConfig(limit, limit ? TINYAI_EXEC_STREAMING : TINYAI_EXEC_NORMAL);
    c.contextSize = kCtx;
    c.ioEngine = io;
    c.maxSessions = 2;
    ModelPtr m = tai_test::LoadModel(path, c);
    ASSERT_TRUE(m) << tinyaiLastErrorMessage();
    const std::vector<int32_t> prompt = {1, 7, 42};
    for (int i = 0; i < 2; i++) {
        tai_test::SessionPtr s = tai_test::NewSession(m.get(), kCtx);
        ASSERT_TRUE(s);
        ASSERT_EQ(tinyaiEval(s.get(), prompt.data(), prompt.size()), TINYAI_OK) << tinyaiLastErrorMessage();
    }
}

TEST(FdLeak, EveryEngineResidentAndStreaming) {
    TempFile f(tai_test::WriteSynthModel(Synth()));
    const size_t minimum = tai_test::LeastLimit(f.path, kCtx, 2);
    ASSERT_GT(minimum, 0u);
    const std::vector<std::string> before = tai_test::OpenFds();
    ASSERT_FALSE(before.empty());
    for (TinyAIIOEngine io : {TINYAI_IO_URING, TINYAI_IO_PREAD, TINYAI_IO_MMAP, TINYAI_IO_AUTO})
        for (size_t limit : {(size_t)0, minimum}) {
            SCOPED_TRACE(std::to_string((int)io) + " limit " + std::to_string(limit));
            LoadRunFree(f.path, limit, io);
            EXPECT_EQ(tai_test::OpenFds(), before);
        }
}

TEST(FdLeak, FailedLoadsAndAChangedFile) {
    const std::vector<std::string> before = tai_test::OpenFds();
    TinyAIModel *m = nullptr;
    EXPECT_NE(tinyaiLoadModel("/nonexistent/model.gguf", nullptr, &m), TINYAI_OK);
    EXPECT_EQ(m, nullptr);
    EXPECT_EQ(tai_test::OpenFds(), before);
    // not a model; a model cut short
    TempFile junk(tai_test::TempPath(".gguf"));
    std::ofstream(junk.path, std::ios::binary) << std::string(4096, 'x');
    EXPECT_NE(tinyaiLoadModel(junk.path.c_str(), nullptr, &m), TINYAI_OK);
    EXPECT_EQ(tai_test::OpenFds(), before);
    TempFile f(tai_test::WriteSynthModel(Synth()));
    TempFile cut(tai_test::TempPath(".gguf"));
    {
        std::ifstream in(f.path, std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::ofstream(cut.path, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
    }
    EXPECT_NE(tinyaiLoadModel(cut.path.c_str(), nullptr, &m), TINYAI_OK);
    EXPECT_EQ(m, nullptr);
    EXPECT_EQ(tai_test::OpenFds(), before);
    // a limit below the minimum: the model loads, its first session fails
    const size_t least = tai_test::LeastLimit(f.path, kCtx);
    ASSERT_GT(least, 0u);
    EXPECT_EQ(tai_test::OpenFds(), before);
    // a streaming model whose file is cut while it runs
    {
        TinyAIModelConfig c = MemConfig(least, TINYAI_EXEC_STREAMING);
        c.contextSize = kCtx;
        ModelPtr sm = tai_test::LoadModel(f.path, c);
        ASSERT_TRUE(sm) << tinyaiLastErrorMessage();
        tai_test::SessionPtr s = tai_test::NewSession(sm.get(), kCtx);
        ASSERT_TRUE(s);
        const int32_t tok = 9;
        ASSERT_EQ(tinyaiEval(s.get(), &tok, 1), TINYAI_OK) << tinyaiLastErrorMessage();
        ASSERT_EQ(truncate(f.path.c_str(), 1000), 0);
        EXPECT_EQ(tinyaiEval(s.get(), &tok, 1), TINYAI_ERR_IO);
    }
    EXPECT_EQ(tai_test::OpenFds(), before);
}

}  // namespace
