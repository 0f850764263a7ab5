// Test support for the tests of model rewrites (mixed precision, pruning):
// synthetic models, loading, opening model files, logits.
#ifndef TAI_TESTS_MODEL_REWRITE_TEST_UTIL_H
#define TAI_TESTS_MODEL_REWRITE_TEST_UTIL_H

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include <tinyai/llm.h>

#include "runtime/format/model_file.h"
#include "tests/common/test_paths.h"

namespace tai_test {

struct ModelDeleter {
    void operator()(TinyAIModel *m) const { tinyaiFreeModel(m); }
};
struct FileDeleter {
    void operator()(tai_model_file *f) const { tai_model_file_close(f); }
};
using ModelPtr = std::unique_ptr<TinyAIModel, ModelDeleter>;
using FilePtr = std::unique_ptr<tai_model_file, FileDeleter>;

// A synthetic model of `type` (matrices and embedding) written to a fresh
// temporary GGUF.
inline std::string SynthModel(const char *type, bool tied, int embd, int ff, int layers, int vocab,
                              uint64_t seed) {
    TinyAISynthConfig c = tinyaiCreateDefaultSynthConfig();
    c.weightType = type;
    c.embeddingType = type;
    c.tiedOutput = tied;
    c.nEmbd = embd;
    c.nFF = ff;
    c.nLayer = layers;
    c.nVocab = vocab;
    c.seed = seed;
    std::string p = TempPath(".gguf");
    EXPECT_EQ(tinyaiWriteSyntheticModel(&c, p.c_str()), TINYAI_OK) << tinyaiLastErrorMessage();
    return p;
}

// Loaded with 2 threads, a 64-token context and the given limit.
inline ModelPtr LoadModel(const std::string &path, size_t limit = 0) {
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.threads = 2;
    mc.memoryLimit = limit;
    mc.contextSize = 64;
    TinyAIModel *m = nullptr;
    EXPECT_EQ(tinyaiLoadModel(path.c_str(), &mc, &m), TINYAI_OK) << tinyaiLastErrorMessage();
    return ModelPtr(m);
}

inline FilePtr OpenFile(const std::string &path) {
    tai_model_file *f = nullptr;
    EXPECT_EQ(tai_model_file_open(path.c_str(), false, &f), TINYAI_OK) << tinyaiLastErrorMessage();
    return FilePtr(f);
}

// The logits after `n` tokens: all but the last two evaluated at once (a
// many-column product), then two single tokens (one column each).
inline std::vector<float> LogitsAfter(TinyAIModel *m, int n) {
    std::vector<int32_t> toks;
    for (int i = 0; i < n; i++) toks.push_back((i * 37 + 11) % 500 + 1);
    TinyAISession *s = nullptr;
    EXPECT_EQ(tinyaiCreateSession(m, 64, &s), TINYAI_OK) << tinyaiLastErrorMessage();
    if (!s) return {};
    EXPECT_EQ(tinyaiEval(s, toks.data(), (size_t)n - 2), TINYAI_OK) << tinyaiLastErrorMessage();
    EXPECT_EQ(tinyaiEval(s, &toks[n - 2], 1), TINYAI_OK) << tinyaiLastErrorMessage();
    EXPECT_EQ(tinyaiEval(s, &toks[n - 1], 1), TINYAI_OK) << tinyaiLastErrorMessage();
    TinyAIModelInfo info;
    tinyaiGetModelInfo(m, &info);
    const float *l = tinyaiGetLogits(s);
    std::vector<float> v(l, l + info.nVocab);
    tinyaiFreeSession(s);
    return v;
}

}  // namespace tai_test

#endif
