// Test support for runtime/model under a memory limit: owning handles,
// loading with a config, greedy decoding that records every step's logits,
// synthetic and converted model files.
#ifndef TAI_TESTS_MODEL_MEMORY_TEST_UTIL_H
#define TAI_TESTS_MODEL_MEMORY_TEST_UTIL_H

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <tinyai/llm.h>

#include "tests/common/test_paths.h"

namespace tai_test {

struct ModelDeleter {
    void operator()(TinyAIModel *m) const { tinyaiFreeModel(m); }
};
struct SessionDeleter {
    void operator()(TinyAISession *s) const { tinyaiFreeSession(s); }
};
using ModelPtr = std::unique_ptr<TinyAIModel, ModelDeleter>;
using SessionPtr = std::unique_ptr<TinyAISession, SessionDeleter>;

inline TinyAIModelConfig MemConfig(size_t limit, TinyAIExecutionMode mode, int threads = 2) {
    TinyAIModelConfig c = tinyaiCreateDefaultModelConfig();
    c.threads = threads;
    c.memoryLimit = limit;
    c.mode = mode;
    return c;
}

// Loads `path`; on failure returns null with the status in *st (if given).
inline ModelPtr LoadModel(const std::string &path, const TinyAIModelConfig &c,
                          TinyAIStatus *st = nullptr) {
    TinyAIModel *m = nullptr;
    TinyAIStatus s = tinyaiLoadModel(path.c_str(), &c, &m);
    if (st) *st = s;
    return ModelPtr(m);
}

// A session of n_ctx tokens of m; null (with a test failure) if it cannot
// be created.
inline SessionPtr NewSession(TinyAIModel *m, int n_ctx) {
    TinyAISession *raw = nullptr;
    EXPECT_EQ(tinyaiCreateSession(m, n_ctx, &raw), TINYAI_OK) << tinyaiLastErrorMessage();
    return SessionPtr(raw);
}

inline TinyAIMemoryInfo MemInfo(const TinyAIModel *m) {
    TinyAIMemoryInfo mi;
    EXPECT_EQ(tinyaiGetMemoryInfo(m, &mi), TINYAI_OK);
    return mi;
}

inline int VocabSize(const TinyAIModel *m) {
    TinyAIModelInfo info;
    EXPECT_EQ(tinyaiGetModelInfo(m, &info), TINYAI_OK);
    return info.nVocab;
}

inline int32_t ArgMax(const float *v, int n) {
    return (int32_t)(std::max_element(v, v + n) - v);
}

// A greedy run: the token chosen after the prompt and after each generated
// token, and the logits each choice was made from.
struct GreedyRun {
    std::vector<int32_t> tokens;
    std::vector<std::vector<float>> logits;
};

// Evaluates `prompt` in one call, then n_gen greedy tokens one at a time, in
// a new session of n_ctx tokens. Empty on error (with a test failure).
inline GreedyRun Greedy(TinyAIModel *m, const std::vector<int32_t> &prompt, int n_gen,
                        int n_ctx) {
    GreedyRun r;
    TinyAISession *s = nullptr;
    TinyAIStatus st = tinyaiCreateSession(m, n_ctx, &s);
    EXPECT_EQ(st, TINYAI_OK) << tinyaiLastErrorMessage();
    if (st != TINYAI_OK) return r;
    SessionPtr sp(s);
    const int nv = VocabSize(m);
    st = tinyaiEval(s, prompt.data(), prompt.size());
    EXPECT_EQ(st, TINYAI_OK) << tinyaiLastErrorMessage();
    for (int i = 0; st == TINYAI_OK && i < n_gen; i++) {
        const float *l = tinyaiGetLogits(s);
        EXPECT_NE(l, nullptr);
        if (!l) break;
        r.logits.emplace_back(l, l + nv);
        r.tokens.push_back(ArgMax(l, nv));
        if (i + 1 < n_gen) {
            st = tinyaiEval(s, &r.tokens.back(), 1);
            EXPECT_EQ(st, TINYAI_OK) << tinyaiLastErrorMessage();
        }
    }
    return r;
}

inline std::vector<int32_t> Tokenize(const TinyAIModel *m, const char *text) {
    TinyAIModelInfo info;
    tinyaiGetModelInfo(m, &info);
    std::vector<int32_t> ids(256);
    size_t n = 0;
    EXPECT_EQ(tinyaiTokenize(m, text, info.addBosToken, false, ids.data(), ids.size(), &n),
              TINYAI_OK)
        << tinyaiLastErrorMessage();
    ids.resize(n);
    return ids;
}

// A small synthetic Llama (Q8_0 blocks, a vocabulary of 512): a model
// whose every layer loads in well under a millisecond.
inline TinyAISynthConfig SmallSynth(int n_layer, int seed) {
    TinyAISynthConfig c = tinyaiCreateDefaultSynthConfig();
    c.nVocab = 512;
    c.nEmbd = 128;
    c.nFF = 256;
    c.nHead = 4;
    c.nHeadKV = 2;
    c.nLayer = n_layer;
    c.nCtx = 64;
    c.weightType = "Q8_0";
    c.seed = seed;
    return c;
}

inline std::string WriteSynthModel(const TinyAISynthConfig &c) {
    std::string path = TempPath(".gguf");
    EXPECT_EQ(tinyaiWriteSyntheticModel(&c, path.c_str()), TINYAI_OK) << tinyaiLastErrorMessage();
    return path;
}

inline std::string ConvertToTmai(const std::string &in) {
    std::string out = TempPath(".tmai");
    EXPECT_EQ(tinyaiConvertModel(in.c_str(), out.c_str()), TINYAI_OK) << tinyaiLastErrorMessage();
    return out;
}

// The minimum a failed plan names: "... below the minimum of N bytes ...";
// 0 if the message does not say.
inline size_t MinimumFromMessage(const std::string &msg) {
    const std::string key = "minimum of ";
    size_t at = msg.find(key);
    if (at == std::string::npos) return 0;
    return (size_t)std::strtoull(msg.c_str() + at + key.size(), nullptr, 10);
}

// The least limit `path` runs in with n_seq sessions of n_ctx tokens, as a
// plan below it names it (a streaming model under that limit reads its
// blocks again every pass); 0, with a test failure, if it cannot be told.
inline size_t LeastLimit(const std::string &path, int n_ctx, int n_seq = 1) {
    TinyAIModelConfig c = MemConfig(1, TINYAI_EXEC_STREAMING);
    c.contextSize = n_ctx;
    c.maxSessions = n_seq;
    ModelPtr m = LoadModel(path, c);
    EXPECT_TRUE(m) << tinyaiLastErrorMessage();
    if (!m) return 0;
    TinyAISession *s = nullptr;
    EXPECT_EQ(tinyaiCreateSession(m.get(), n_ctx, &s), TINYAI_ERR_RANGE);
    tinyaiFreeSession(s);
    const size_t least = MinimumFromMessage(tinyaiLastErrorMessage());
    EXPECT_GT(least, 0u) << tinyaiLastErrorMessage();
    return least;
}

// Removes a file when the test ends.
struct TempFile {
    std::string path;
    explicit TempFile(std::string p) : path(std::move(p)) {}
    ~TempFile() { std::remove(path.c_str()); }
    TempFile(const TempFile &) = delete;
    TempFile &operator=(const TempFile &) = delete;
};

}  // namespace tai_test

#endif
