// runtime/mapped: a model file that changes on disk after it was opened is
// never read as the model. Under a limit, where every pass reads layers
// again, the first pass after the file was rewritten in place or truncated
// fails with TINYAI_ERR_IO naming the file and saying that it changed, and
// so does every pass after it (no output from other bytes), with each I/O
// engine (the mmap engine included, which would fault on a shorter file).
// A file replaced under its name (written beside it, then renamed over it,
// as downloads and converters do) is not a change: the open file is still
// the model and the answers stay the same. GGUF and .tmai files alike. A
// resident model read its layers once and keeps answering.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <tinyai/llm.h>

#include "tests/common/test_paths.h"
#include "tests/model/memory_test_util.h"

namespace {

using tai_test::GreedyRun;
using tai_test::MemConfig;
using tai_test::ModelPtr;
using tai_test::TempFile;

constexpr int kCtx = 32;
constexpr int kGen = 4;
const std::vector<int32_t> kPrompt = {1, 17, 99, 250};

TinyAISynthConfig Synth() { return tai_test::SmallSynth(6, 11); }

// Sets the file's modification time `secs` after the one it has: an
// in-place write shows as one whatever the file system's clock step.
void MoveModificationTime(const std::string &path, int secs) {
    struct stat sb;
    ASSERT_EQ(stat(path.c_str(), &sb), 0);
    struct timespec t[2] = {sb.st_atim, sb.st_mtim};
    t[1].tv_sec += secs;
    ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), t, 0), 0);
}

// Overwrites `n` bytes in the middle of the file with other values.
void Scribble(const std::string &path, size_t n) {
    int fd = open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    struct stat sb;
    ASSERT_EQ(fstat(fd, &sb), 0);
    std::vector<unsigned char> b(n);
    const off_t at = sb.st_size / 2;
    ASSERT_EQ(pread(fd, b.data(), n, at), (ssize_t)n);
    for (unsigned char &x : b) x ^= 0x5a;
    ASSERT_EQ(pwrite(fd, b.data(), n, at), (ssize_t)n);
    close(fd);
}

void CopyFile(const std::string &from, const std::string &to) {
    FILE *in = fopen(from.c_str(), "rb");
    ASSERT_NE(in, nullptr);
    FILE *out = fopen(to.c_str(), "wb");
    ASSERT_NE(out, nullptr);
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) ASSERT_EQ(fwrite(buf, 1, n, out), n);
    fclose(in);
    ASSERT_EQ(fclose(out), 0);
}

void ExpectChanged(TinyAISession *s, const std::string &path) {
    const int32_t tok = 5;
    for (int i = 0; i < 2; i++) {
        EXPECT_EQ(tinyaiEval(s, &tok, 1), TINYAI_ERR_IO);
        const std::string msg = tinyaiLastErrorMessage();
        EXPECT_NE(msg.find(path), std::string::npos) << msg;
        EXPECT_NE(msg.find("changed on disk"), std::string::npos) << msg;
    }
}

// Each I/O engine, on a GGUF file and on a .tmai one (whose aligned
// layers are read straight into the cache).
class FileChanged : public ::testing::TestWithParam<std::tuple<TinyAIIOEngine, bool>> {
  protected:
    void SetUp() override {
        path_ = tai_test::WriteSynthModel(Synth());
        if (std::get<1>(GetParam())) {
            const std::string gguf = path_;
            path_ = tai_test::ConvertToTmai(gguf);
            std::remove(gguf.c_str());
        }
        minimum_ = tai_test::LeastLimit(path_, kCtx);
        ASSERT_GT(minimum_, 0u);
        TinyAIModelConfig rc = MemConfig(0, TINYAI_EXEC_NORMAL);
        rc.contextSize = kCtx;
        ModelPtr ref = tai_test::LoadModel(path_, rc);
        ASSERT_TRUE(ref) << tinyaiLastErrorMessage();
        want_ = tai_test::Greedy(ref.get(), kPrompt, kGen, kCtx);
        ASSERT_EQ(want_.tokens.size(), (size_t)kGen);
    }
    void TearDown() override { std::remove(path_.c_str()); }

    // The model under the least limit, read through the engine of the
    // test; its answers checked against the resident model's.
    ModelPtr Streaming() {
        TinyAIModelConfig c = MemConfig(minimum_, TINYAI_EXEC_STREAMING);
        c.contextSize = kCtx;
        c.ioEngine = std::get<0>(GetParam());
        ModelPtr m = tai_test::LoadModel(path_, c);
        EXPECT_TRUE(m) << tinyaiLastErrorMessage();
        if (m) ExpectAnswers(m.get());
        return m;
    }
    void ExpectAnswers(TinyAIModel *m) {
        const GreedyRun got = tai_test::Greedy(m, kPrompt, kGen, kCtx);
        EXPECT_EQ(got.tokens, want_.tokens);
        EXPECT_EQ(got.logits, want_.logits);
    }

    std::string path_;
    size_t minimum_ = 0;
    GreedyRun want_;
};

TEST_P(FileChanged, RewrittenInPlaceEveryPassFails) {
    ModelPtr m = Streaming();
    ASSERT_TRUE(m);
    ASSERT_EQ(tai_test::MemInfo(m.get()).mode, TINYAI_EXEC_STREAMING);
    TinyAISession *s = nullptr;
    ASSERT_EQ(tinyaiCreateSession(m.get(), kCtx, &s), TINYAI_OK);
    ASSERT_EQ(tinyaiEval(s, kPrompt.data(), kPrompt.size()), TINYAI_OK) << tinyaiLastErrorMessage();
    Scribble(path_, 4096);
    MoveModificationTime(path_, 10);
    ExpectChanged(s, path_);
    tinyaiFreeSession(s);
}

TEST_P(FileChanged, TruncatedEveryPassFails) {
    ModelPtr m = Streaming();
    ASSERT_TRUE(m);
    TinyAISession *s = nullptr;
    ASSERT_EQ(tinyaiCreateSession(m.get(), kCtx, &s), TINYAI_OK);
    ASSERT_EQ(tinyaiEval(s, kPrompt.data(), kPrompt.size()), TINYAI_OK) << tinyaiLastErrorMessage();
    struct stat sb;
    ASSERT_EQ(stat(path_.c_str(), &sb), 0);
    ASSERT_EQ(truncate(path_.c_str(), sb.st_size / 3), 0);
    ExpectChanged(s, path_);
    tinyaiFreeSession(s);
}

TEST_P(FileChanged, ReplacedUnderItsNameIsStillTheModel) {
    ModelPtr m = Streaming();
    ASSERT_TRUE(m);
    // another file (the same model, a byte changed) written beside it and
    // renamed over it: the open file is the old one, whole
    TempFile other(tai_test::TempPath(".model"));
    CopyFile(path_, other.path);
    Scribble(other.path, 4096);
    ASSERT_EQ(rename(other.path.c_str(), path_.c_str()), 0);
    ExpectAnswers(m.get());
}

INSTANTIATE_TEST_SUITE_P(
    Engines, FileChanged,
    ::testing::Combine(::testing::Values(TINYAI_IO_URING, TINYAI_IO_PREAD, TINYAI_IO_MMAP),
                       ::testing::Bool()),
    [](const ::testing::TestParamInfo<std::tuple<TinyAIIOEngine, bool>> &i) {
        const TinyAIIOEngine e = std::get<0>(i.param);
        return std::string(e == TINYAI_IO_URING ? "uring" : e == TINYAI_IO_PREAD ? "pread" : "mmap") +
               (std::get<1>(i.param) ? "_tmai" : "_gguf");
    });

// A file truncated at any moment of a streaming pass, while a layer is
// being read or built from the file's mapping included (the mmap engine
// builds layers from the mapping, where a page past the new end would
// raise SIGBUS): the pass answers or fails with TINYAI_ERR_IO, and the
// process goes on. The truncation lands at a different moment of the
// passes in each trial.
TEST(FileChangedMidPass, ATruncationDuringAPassIsAnErrorNeverAFault) {
    const std::string master = tai_test::WriteSynthModel(Synth());
    int failed = 0;
    for (int trial = 0; trial < 24; trial++) {
        TempFile f(tai_test::TempPath(".gguf"));
        CopyFile(master, f.path);
        const size_t minimum = tai_test::LeastLimit(f.path, kCtx); /* its path's bytes count */
        ASSERT_GT(minimum, 0u);
        TinyAIModelConfig c = MemConfig(minimum, TINYAI_EXEC_STREAMING);
        c.contextSize = kCtx;
        c.ioEngine = TINYAI_IO_MMAP;
        ModelPtr m = tai_test::LoadModel(f.path, c);
        ASSERT_TRUE(m) << tinyaiLastErrorMessage();
        TinyAISession *s = nullptr;
        ASSERT_EQ(tinyaiCreateSession(m.get(), kCtx, &s), TINYAI_OK) << tinyaiLastErrorMessage();
        struct stat sb;
        ASSERT_EQ(stat(f.path.c_str(), &sb), 0);
        std::atomic<bool> go{false};
        std::thread cut([&] {
            while (!go.load()) std::this_thread::yield();
            std::this_thread::sleep_for(std::chrono::microseconds(97 * trial));
            EXPECT_EQ(truncate(f.path.c_str(), sb.st_size / 3), 0);
        });
        go = true;
        TinyAIStatus st = TINYAI_OK;
        for (int i = 0; i < kCtx - 1 && st == TINYAI_OK; i++) {
            const int32_t tok = kPrompt[i % kPrompt.size()];
            st = tinyaiEval(s, &tok, 1);
        }
        cut.join();
        EXPECT_EQ(st, TINYAI_ERR_IO) << tinyaiLastErrorMessage();
        failed += st == TINYAI_ERR_IO;
        tinyaiFreeSession(s);
    }
    EXPECT_EQ(failed, 24);
    std::remove(master.c_str());
}

TEST(FileChangedResident, AResidentModelKeepsAnswering) {
    TempFile f(tai_test::WriteSynthModel(Synth()));
    TinyAIModelConfig c = MemConfig(0, TINYAI_EXEC_NORMAL);
    c.contextSize = kCtx;
    ModelPtr m = tai_test::LoadModel(f.path, c);
    ASSERT_TRUE(m) << tinyaiLastErrorMessage();
    const GreedyRun want = tai_test::Greedy(m.get(), kPrompt, kGen, kCtx);
    ASSERT_EQ(want.tokens.size(), (size_t)kGen);
    Scribble(f.path, 4096);
    MoveModificationTime(f.path, 10);
    const GreedyRun got = tai_test::Greedy(m.get(), kPrompt, kGen, kCtx);
    EXPECT_EQ(got.tokens, want.tokens);
    EXPECT_EQ(got.logits, want.logits);
}

}  // namespace
