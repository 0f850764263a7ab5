// Test support for the tests of model rewrites and the optimisation APIs
// (mixed precision, pruning, memory optimizer, layer scheduler), on top of
// memory_test_util.h: synthetic models by shape, loading with a 64-token
// context, model files, logits.
#ifndef TAI_TESTS_MODEL_REWRITE_TEST_UTIL_H
#define TAI_TESTS_MODEL_REWRITE_TEST_UTIL_H

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include <tinyai/llm.h>

#include "runtime/format/model_file.h"
#include "tests/model/memory_test_util.h"

namespace tai_test {

struct FileDeleter {
    void operator()(tai_model_file *f) const { tai_model_file_close(f); }
};
using FilePtr = std::unique_ptr<tai_model_file, FileDeleter>;

// A synthetic model of `type` (matrices and embedding) in a fresh temporary
// GGUF.
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
    return WriteSynthModel(c);
}

// Loaded with 2 threads, a 64-token context and the given limit; a failure
// fails the test.
inline ModelPtr LoadModel(const std::string &path, size_t limit = 0) {
    TinyAIModelConfig mc = MemConfig(limit, TINYAI_EXEC_ADAPTIVE);
    mc.contextSize = 64;
    TinyAIStatus st = TINYAI_OK;
    ModelPtr m = LoadModel(path, mc, &st);
    EXPECT_EQ(st, TINYAI_OK) << tinyaiLastErrorMessage();
    return m;
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
    SessionPtr s = NewSession(m, 64);
    if (!s) return {};
    EXPECT_EQ(tinyaiEval(s.get(), toks.data(), (size_t)n - 2), TINYAI_OK) << tinyaiLastErrorMessage();
    EXPECT_EQ(tinyaiEval(s.get(), &toks[n - 2], 1), TINYAI_OK) << tinyaiLastErrorMessage();
    EXPECT_EQ(tinyaiEval(s.get(), &toks[n - 1], 1), TINYAI_OK) << tinyaiLastErrorMessage();
    const float *l = tinyaiGetLogits(s.get());
    return std::vector<float>(l, l + VocabSize(m));
}

}  // namespace tai_test

#endif
