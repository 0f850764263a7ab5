// runtime/model: the memory contract. No limit means every layer resident; a
// limit below the least the model runs in is refused at session creation
// with that least in the message, and exactly that least runs; NORMAL mode
// refuses a limit that cannot hold the model; sessions beyond the plan are
// refused; the tracked peak stays under the limit, and the process's real
// peak resident memory stays under the tracked peak.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
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

TinyAISynthConfig SmallSynth() {
    TinyAISynthConfig c = tinyaiCreateDefaultSynthConfig();
    c.nVocab = 512;
    c.nEmbd = 256;
    c.nFF = 768;
    c.nHead = 4;
    c.nHeadKV = 2;
    c.nLayer = 6;
    c.nCtx = 128;
    c.weightType = "Q8_0";
    c.embeddingType = "Q8_0";
    c.tiedOutput = false;
    c.seed = 11;
    return c;
}

// Creates a session, expecting `want`; returns it (null on failure).
SessionPtr Session(TinyAIModel *m, int ctx, TinyAIStatus want = TINYAI_OK) {
    TinyAISession *s = nullptr;
    EXPECT_EQ(tinyaiCreateSession(m, ctx, &s), want) << tinyaiLastErrorMessage();
    if (want != TINYAI_OK) {
        EXPECT_EQ(s, nullptr);
    }
    return SessionPtr(s);
}

// Without a limit the model is read once, at load: from a file the page cache
// holds, through the page cache (mmap engine); from one it does not, from the
// device (io_uring, or pread where io_uring is refused). Same logits.
TEST(MemoryContract, NoLimitReadsAFileInThePageCacheThroughIt) {
    TempFile f(tai_test::WriteSynthModel(SmallSynth()));  // just written: cached
    std::vector<float> logits[2];
    std::string engines[2];
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {  // drop the file from the page cache
            int fd = open(f.path.c_str(), O_RDONLY);
            ASSERT_GE(fd, 0);
            fdatasync(fd);
            ASSERT_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
            // a file system whose pages are the file itself (tmpfs) keeps
            // them: then there is no uncached case to test here
            struct stat sb;
            ASSERT_EQ(fstat(fd, &sb), 0);
            void *p = mmap(nullptr, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
            ASSERT_NE(p, MAP_FAILED);
            std::vector<unsigned char> vec(((size_t)sb.st_size + 4095) / 4096);
            ASSERT_EQ(mincore(p, (size_t)sb.st_size, vec.data()), 0);
            size_t in = 0;
            for (unsigned char v : vec) in += v & 1;
            munmap(p, (size_t)sb.st_size);
            close(fd);
            if (in * 10 >= vec.size() * 9) {
                EXPECT_EQ(engines[0], "mmap");
                GTEST_SKIP() << "the page cache keeps this file (tmpfs?): no uncached load";
            }
        }
        ModelPtr m = tai_test::LoadModel(f.path, MemConfig(0, TINYAI_EXEC_ADAPTIVE));
        ASSERT_TRUE(m) << tinyaiLastErrorMessage();
        engines[pass] = tai_test::MemInfo(m.get()).ioEngine;
        SessionPtr s = Session(m.get(), 32);
        ASSERT_TRUE(s);
        const int32_t prompt[3] = {1, 7, 300};
        ASSERT_EQ(tinyaiEval(s.get(), prompt, 3), TINYAI_OK);
        logits[pass].assign(tinyaiGetLogits(s.get()), tinyaiGetLogits(s.get()) + 512);
    }
    EXPECT_EQ(engines[0], "mmap");
    EXPECT_NE(engines[1], "mmap");
    EXPECT_NE(engines[1], "");
    EXPECT_EQ(logits[0], logits[1]);
    // an engine asked for is used as asked
    TinyAIModelConfig c = MemConfig(0, TINYAI_EXEC_ADAPTIVE);
    c.ioEngine = TINYAI_IO_PREAD;
    ModelPtr p = tai_test::LoadModel(f.path, c);
    ASSERT_TRUE(p);
    EXPECT_STREQ(tai_test::MemInfo(p.get()).ioEngine, "pread");
}

// Without a limit the weights are loaded in base pages and moved into huge
// pages by a background thread: it ends by itself, the logits do not change
// while or after it runs, and freeing the model while it runs is safe.
TEST(MemoryContract, NoLimitWeightsMoveToHugePagesInTheBackground) {
    TinyAISynthConfig sc = SmallSynth();
    sc.nLayer = 12;  // some MiB of arena, so the move takes a while
    TempFile f(tai_test::WriteSynthModel(sc));
    const int32_t prompt[3] = {1, 7, 300};
    std::vector<float> first;
    {
        ModelPtr m = tai_test::LoadModel(f.path, MemConfig(0, TINYAI_EXEC_ADAPTIVE));
        ASSERT_TRUE(m) << tinyaiLastErrorMessage();
        SessionPtr s = Session(m.get(), 32);
        ASSERT_TRUE(s);
        ASSERT_EQ(tinyaiEval(s.get(), prompt, 3), TINYAI_OK);
        first.assign(tinyaiGetLogits(s.get()), tinyaiGetLogits(s.get()) + 512);
        bool pending = true;
        for (int i = 0; i < 600 && pending; i++) {  // at most 60 s
            pending = tai_test::MemInfo(m.get()).hugePagesPending;
            if (pending) usleep(100000);
        }
        EXPECT_FALSE(pending) << "the move into huge pages never ended";
        tinyaiResetSession(s.get());
        ASSERT_EQ(tinyaiEval(s.get(), prompt, 3), TINYAI_OK);
        std::vector<float> after(tinyaiGetLogits(s.get()), tinyaiGetLogits(s.get()) + 512);
        EXPECT_EQ(after, first);
    }
    for (int i = 0; i < 3; i++) {  // freed at once, while it runs
        ModelPtr m = tai_test::LoadModel(f.path, MemConfig(0, TINYAI_EXEC_ADAPTIVE));
        ASSERT_TRUE(m) << tinyaiLastErrorMessage();
    }
    // a limit: streamed, nothing to move
    ModelPtr lim = tai_test::LoadModel(f.path, MemConfig(64u << 20, TINYAI_EXEC_MEMORY_OPT));
    ASSERT_TRUE(lim);
    SessionPtr s = Session(lim.get(), 32);
    ASSERT_TRUE(s);
    EXPECT_FALSE(tai_test::MemInfo(lim.get()).hugePagesPending);
}

TEST(MemoryContract, NoLimitIsNormalAndResidentFromLoad) {
    TempFile f(tai_test::WriteSynthModel(SmallSynth()));
    ModelPtr m = tai_test::LoadModel(f.path, MemConfig(0, TINYAI_EXEC_ADAPTIVE));
    ASSERT_TRUE(m) << tinyaiLastErrorMessage();
    TinyAIMemoryInfo mi = tai_test::MemInfo(m.get());
    EXPECT_TRUE(mi.planned);  // at load, before any session
    EXPECT_EQ(mi.mode, TINYAI_EXEC_NORMAL);
    EXPECT_EQ(mi.memoryLimit, 0u);
    EXPECT_EQ(mi.cacheBytes, mi.modelBytes);
    // the tokenizer and file tables count: at least the vocabulary's texts
    // and hash, at most a small share of the model
    EXPECT_GT(mi.fixedBytes, (size_t)tai_test::VocabSize(m.get()) * 8);
    EXPECT_LT(mi.fixedBytes, mi.modelBytes / 4);
    EXPECT_GE(mi.currentBytes, mi.cacheBytes + mi.sessionBytes + mi.fixedBytes);
    uint64_t file_bytes = 0;  // every layer read once
    for (int l = 0; l < 6 + 2; l++) {
        TinyAILayerInfo li;
        ASSERT_EQ(tinyaiGetModelLayerInfo(m.get(), l, &li), TINYAI_OK);
        file_bytes += li.size;
    }
    EXPECT_EQ(mi.bytesRead, file_bytes);
    tinyaiResetMemoryStats(m.get());
    std::vector<int32_t> prompt = {1, 40, 41, 42, 43};
    tai_test::GreedyRun r = tai_test::Greedy(m.get(), prompt, 8, 64);
    EXPECT_EQ(r.tokens.size(), 8u);
    mi = tai_test::MemInfo(m.get());
    EXPECT_EQ(mi.bytesRead, 0u);
    EXPECT_EQ(mi.misses, 0u);
    EXPECT_EQ(mi.evictions, 0u);
}

// The minimum in the message is exact: it runs (and gives the resident
// tokens), one byte less does not.
void CheckMinimum(const std::string &path, TinyAIExecutionMode mode, const char *what) {
    SCOPED_TRACE(std::string(what) + " " + tinyaiExecutionModeName(mode));
    const int ctx = 48;
    ModelPtr ref = tai_test::LoadModel(path, MemConfig(0, TINYAI_EXEC_NORMAL));
    ASSERT_TRUE(ref);
    const std::vector<int32_t> prompt = tai_test::Tokenize(ref.get(), "Once upon a time");
    const tai_test::GreedyRun want = tai_test::Greedy(ref.get(), prompt, 4, ctx);
    ref.reset();

    ModelPtr m = tai_test::LoadModel(path, MemConfig(4096, mode));
    ASSERT_TRUE(m) << tinyaiLastErrorMessage();  // the plan waits for a session
    EXPECT_FALSE(tai_test::MemInfo(m.get()).planned);
    Session(m.get(), ctx, TINYAI_ERR_RANGE);
    const std::string msg = tinyaiLastErrorMessage();
    const size_t minimum = tai_test::MinimumFromMessage(msg);
    ASSERT_GT(minimum, (size_t)4096) << msg;
    EXPECT_NE(msg.find("below the minimum"), std::string::npos) << msg;
    m.reset();

    m = tai_test::LoadModel(path, MemConfig(minimum - 1, mode));
    ASSERT_TRUE(m);
    Session(m.get(), ctx, TINYAI_ERR_RANGE);
    EXPECT_EQ(tai_test::MinimumFromMessage(tinyaiLastErrorMessage()), minimum)
        << tinyaiLastErrorMessage();
    m.reset();

    m = tai_test::LoadModel(path, MemConfig(minimum, mode));
    ASSERT_TRUE(m);
    const tai_test::GreedyRun got = tai_test::Greedy(m.get(), prompt, 4, ctx);
    EXPECT_EQ(got.tokens, want.tokens);
    TinyAIMemoryInfo mi = tai_test::MemInfo(m.get());
    EXPECT_EQ(mi.minimumBytes, minimum);
    EXPECT_LE(mi.peakBytes, minimum);
    EXPECT_NE(mi.mode, TINYAI_EXEC_NORMAL);
    EXPECT_NE(mi.mode, TINYAI_EXEC_ADAPTIVE);
    printf("[ %s %s ] minimum %zu: mode %s, cache %zu, peak %zu, read %llu\n", what,
           tinyaiExecutionModeName(mode), minimum, tinyaiExecutionModeName(mi.mode), mi.cacheBytes,
           mi.peakBytes, (unsigned long long)mi.bytesRead);
}

TEST(MemoryContract, BelowMinimumFailsAndTheMinimumRuns) {
    TempFile f(tai_test::WriteSynthModel(SmallSynth()));
    TempFile t(tai_test::ConvertToTmai(f.path));
    for (TinyAIExecutionMode mode :
         {TINYAI_EXEC_MEMORY_OPT, TINYAI_EXEC_STREAMING, TINYAI_EXEC_ADAPTIVE}) {
        CheckMinimum(f.path, mode, "synthetic gguf");
        CheckMinimum(t.path, mode, "synthetic tmai");
    }
}

// SmolLM2 ties its head to the embedding: both are held at once.
TEST(MemoryContract, RealModelMinimumRuns) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    TempFile t(tai_test::ConvertToTmai(path));
    for (TinyAIExecutionMode mode : {TINYAI_EXEC_MEMORY_OPT, TINYAI_EXEC_STREAMING}) {
        CheckMinimum(path, mode, "SmolLM2 gguf");
        CheckMinimum(t.path, mode, "SmolLM2 tmai");
    }
}

TEST(MemoryContract, NormalModeNeedsRoomForTheWholeModel) {
    TempFile f(tai_test::WriteSynthModel(SmallSynth()));
    ModelPtr big = tai_test::LoadModel(f.path, MemConfig(0, TINYAI_EXEC_NORMAL));
    ASSERT_TRUE(big);
    const size_t model_bytes = tai_test::MemInfo(big.get()).modelBytes;
    big.reset();
    ModelPtr m = tai_test::LoadModel(f.path, MemConfig(model_bytes * 3 / 4, TINYAI_EXEC_NORMAL));
    ASSERT_TRUE(m);
    Session(m.get(), 32, TINYAI_ERR_RANGE);
    const std::string msg = tinyaiLastErrorMessage();
    EXPECT_NE(msg.find("normal mode"), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::to_string(model_bytes)), std::string::npos) << msg;
    // with room for it, NORMAL runs and reads nothing after the load
    m = tai_test::LoadModel(f.path, MemConfig(model_bytes + (16 << 20), TINYAI_EXEC_NORMAL));
    ASSERT_TRUE(m);
    SessionPtr s = Session(m.get(), 32);
    ASSERT_TRUE(s);
    tinyaiResetMemoryStats(m.get());
    int32_t toks[3] = {1, 2, 3};
    ASSERT_EQ(tinyaiEval(s.get(), toks, 3), TINYAI_OK);
    EXPECT_EQ(tai_test::MemInfo(m.get()).bytesRead, 0u);
    EXPECT_EQ(tai_test::MemInfo(m.get()).mode, TINYAI_EXEC_NORMAL);
}

TEST(MemoryContract, SessionsAndContextsBeyondThePlanAreRefused) {
    TempFile f(tai_test::WriteSynthModel(SmallSynth()));
    TinyAIModelConfig c = MemConfig(64 << 20, TINYAI_EXEC_MEMORY_OPT);
    c.maxSessions = 2;
    c.contextSize = 32;
    ModelPtr m = tai_test::LoadModel(f.path, c);
    ASSERT_TRUE(m);
    SessionPtr a = Session(m.get(), 16);  // plans for 2 x 32 tokens
    ASSERT_TRUE(a);
    Session(m.get(), 33, TINYAI_ERR_RANGE);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("32 tokens"), std::string::npos)
        << tinyaiLastErrorMessage();
    SessionPtr b = Session(m.get(), 32);
    ASSERT_TRUE(b);
    Session(m.get(), 8, TINYAI_ERR_RANGE);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("maxSessions"), std::string::npos)
        << tinyaiLastErrorMessage();
    TinyAIMemoryInfo mi = tai_test::MemInfo(m.get());
    EXPECT_LE(mi.currentBytes, c.memoryLimit);
    EXPECT_LE(mi.peakBytes, c.memoryLimit);
    b.reset();  // a freed session makes room for another
    b = Session(m.get(), 32);
    EXPECT_TRUE(b);

    // contextSize 0: the first session's context is the plan's
    c.contextSize = 0;
    c.maxSessions = 1;
    a.reset();  // sessions go before their model
    b.reset();
    m = tai_test::LoadModel(f.path, c);
    a = Session(m.get(), 20);
    ASSERT_TRUE(a);
    a.reset();
    Session(m.get(), 21, TINYAI_ERR_RANGE);
    a = Session(m.get(), 20);
    EXPECT_TRUE(a);
}

// ---- Real resident memory against the runtime's figures ------------------

long StatusKiB(const char *field) {
    std::ifstream f("/proc/self/status");
    std::string line;
    const size_t n = strlen(field);
    while (std::getline(f, line))
        if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':')
            return std::stol(line.substr(n + 1));
    return -1;
}

struct RssReport {
    int ok;  // 1: ran; otherwise a failure code
    long baseline_kib, hwm_kib;
    size_t limit, peak, cache, model, minimum;
    int tokens;
    char mode[16];
    char error[256];
};

// In the child: load, plan, generate; report the figures. No gtest here.
RssReport RunInChild(const std::string &path, size_t limit) {
    RssReport r;
    memset(&r, 0, sizeof r);
    // Start the high-water mark at what the process holds now (inherited
    // pages included).
    int fd = open("/proc/self/clear_refs", O_WRONLY);
    if (fd >= 0) {
        (void)!write(fd, "5", 1);
        close(fd);
    }
    r.baseline_kib = StatusKiB("VmRSS");
    long hwm0 = StatusKiB("VmHWM");
    if (hwm0 > r.baseline_kib) r.baseline_kib = hwm0;  // clear_refs unavailable
    TinyAIModelConfig c = MemConfig(limit, TINYAI_EXEC_STREAMING, 2);
    c.contextSize = 64;
    c.ioEngine = TINYAI_IO_PREAD;  // reads land in the cache's arena only
    TinyAIModel *m = nullptr;
    TinyAISession *s = nullptr;
    if (tinyaiLoadModel(path.c_str(), &c, &m) != TINYAI_OK ||
        tinyaiCreateSession(m, 64, &s) != TINYAI_OK) {
        snprintf(r.error, sizeof r.error, "%s", tinyaiLastErrorMessage());
        tinyaiFreeModel(m);
        r.ok = 2;
        return r;
    }
    const int nv = tai_test::VocabSize(m);
    int32_t prompt[6] = {1, 300, 301, 302, 303, 304};
    TinyAIStatus st = tinyaiEval(s, prompt, 6);
    for (int i = 0; st == TINYAI_OK && i < 12; i++) {
        int32_t id = tai_test::ArgMax(tinyaiGetLogits(s), nv);
        st = tinyaiEval(s, &id, 1);
        r.tokens++;
    }
    if (st != TINYAI_OK) {
        snprintf(r.error, sizeof r.error, "%s", tinyaiLastErrorMessage());
        r.ok = 3;
    }
    r.hwm_kib = StatusKiB("VmHWM");
    TinyAIMemoryInfo mi;
    tinyaiGetMemoryInfo(m, &mi);
    r.limit = mi.memoryLimit;
    r.peak = mi.peakBytes;
    r.cache = mi.cacheBytes;
    r.model = mi.modelBytes;
    r.minimum = mi.minimumBytes;
    snprintf(r.mode, sizeof r.mode, "%s", tinyaiExecutionModeName(mi.mode));
    tinyaiFreeSession(s);
    tinyaiFreeModel(m);
    if (!r.ok) r.ok = 1;
    return r;
}

TEST(MemoryContract, ProcessPeakResidentMemoryStaysUnderTheTrackedPeak) {
    // ~57 MB: ten blocks of ~5.4 MB, untied, Q8_0.
    TinyAISynthConfig sc = tinyaiCreateDefaultSynthConfig();
    sc.nVocab = 2048;
    sc.nEmbd = 640;
    sc.nFF = 1792;
    sc.nHead = 10;
    sc.nHeadKV = 5;
    sc.nLayer = 10;
    sc.nCtx = 128;
    sc.weightType = "Q8_0";
    sc.embeddingType = "Q8_0";
    sc.tiedOutput = false;
    sc.seed = 5;
    TempFile f(tai_test::WriteSynthModel(sc));
    for (const char *fmt : {"gguf", "tmai"}) {
        SCOPED_TRACE(fmt);
        std::string path = f.path;
        std::unique_ptr<TempFile> tmai;
        if (std::string(fmt) == "tmai") {
            tmai.reset(new TempFile(tai_test::ConvertToTmai(f.path)));
            path = tmai->path;
        }
        ModelPtr probe = tai_test::LoadModel(path, MemConfig(0, TINYAI_EXEC_NORMAL));
        ASSERT_TRUE(probe);
        const size_t model_bytes = tai_test::MemInfo(probe.get()).modelBytes;
        probe.reset();
        ASSERT_GT(model_bytes, (size_t)40e6);
        ASSERT_LT(model_bytes, (size_t)80e6);
        const size_t limit = model_bytes / 4;

        int fds[2];
        ASSERT_EQ(pipe(fds), 0);
        fflush(stdout);
        pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            close(fds[0]);
            RssReport r = RunInChild(path, limit);
            (void)!write(fds[1], &r, sizeof r);
            _exit(0);
        }
        close(fds[1]);
        RssReport r;
        memset(&r, 0, sizeof r);
        ssize_t got = read(fds[0], &r, sizeof r);
        close(fds[0]);
        int status = 0;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
        ASSERT_EQ(got, (ssize_t)sizeof r);
        ASSERT_EQ(r.ok, 1) << r.error;
        const double mib = 1048576.0;
        const long grown = (r.hwm_kib - r.baseline_kib) * 1024;
        printf("[ %s ] model %.1f MiB, limit %.1f MiB (minimum %.1f), mode %s, cache %.1f MiB; "
               "tracked peak %.1f MiB; process: baseline %.1f MiB, peak %.1f MiB, grown %.1f MiB "
               "over %d tokens\n",
               fmt, r.model / mib, r.limit / mib, r.minimum / mib, r.mode, r.cache / mib,
               r.peak / mib, r.baseline_kib / 1024.0, r.hwm_kib / 1024.0, grown / mib, r.tokens);
        EXPECT_EQ(r.tokens, 12);
        EXPECT_STREQ(r.mode, "streaming");
        EXPECT_EQ(r.limit, limit);
        EXPECT_LE(r.peak, r.limit);
        EXPECT_LT(r.cache, r.model / 4);
        EXPECT_GT(r.baseline_kib, 0);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
        // The sanitizers' shadow memory, redzones and quarantine of freed
        // blocks grow the process beyond what the program allocates.
        printf("[ %s ] resident memory not compared under a sanitizer\n", fmt);
#else
        EXPECT_LE(grown, (long)r.peak + (4l << 20))
            << "the process grew by more than the runtime tracked";
#endif
    }
}

}  // namespace
