// Test support for comparing the forward pass with references: loading on a
// named ISA and device, the logits after a prompt, the NumPy reference
// (tests/model/ref_llama.py) run in the test venv, and the error norms the
// comparisons use. Builds on memory_test_util.h (owning handles, greedy
// runs, synthetic model files).
#ifndef TAI_TESTS_MODEL_REFERENCE_TEST_UTIL_H
#define TAI_TESTS_MODEL_REFERENCE_TEST_UTIL_H

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <tinyai/llm.h>

#include "tests/model/memory_test_util.h"

namespace tai_test {

// Loads `path` on the CPU kernels `cpu` (NULL: the best), `threads`
// threads and `device` (NULL: auto). Tests that name a device keep its
// OpenCL program binaries under the test's folder; the others run without
// a cache folder, so auto is the CPU alone whatever this machine has (their
// comparisons assume one device's arithmetic).
inline ModelPtr LoadOn(const std::string &path, const char *cpu = nullptr, int threads = 1,
                       const char *device = nullptr) {
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.cpu = cpu;
    mc.threads = threads;
    mc.device = device;
    mc.cacheDir = device ? std::getenv("TEST_TMPDIR") : nullptr;
    TinyAIModel *m = nullptr;
    EXPECT_EQ(tinyaiLoadModel(path.c_str(), &mc, &m), TINYAI_OK) << tinyaiLastErrorMessage();
    return ModelPtr(m);
}

// The logits after `toks` in a new session: the first `first` in one
// batch, then one at a time.
inline std::vector<float> Logits(TinyAIModel *m, const std::vector<int32_t> &toks, size_t first) {
    TinyAISession *s = nullptr;
    EXPECT_EQ(tinyaiCreateSession(m, 0, &s), TINYAI_OK) << tinyaiLastErrorMessage();
    SessionPtr sp(s);
    EXPECT_EQ(tinyaiEval(s, toks.data(), first), TINYAI_OK) << tinyaiLastErrorMessage();
    for (size_t i = first; i < toks.size(); i++)
        EXPECT_EQ(tinyaiEval(s, &toks[i], 1), TINYAI_OK) << tinyaiLastErrorMessage();
    const float *l = tinyaiGetLogits(s);
    EXPECT_NE(l, nullptr);
    return l ? std::vector<float>(l, l + VocabSize(m)) : std::vector<float>();
}

// Greedy tokens: the one chosen after the prompt and after each of the next.
inline std::vector<int32_t> GreedyTokens(TinyAIModel *m, const std::vector<int32_t> &prompt, int n,
                                         int n_ctx = 0) {
    return Greedy(m, prompt, n, n_ctx).tokens;
}

// The test venv's Python (scripts/setup.sh: numpy and the gguf package,
// whose dequantizers the reference uses for the newer weight types).
inline std::string VenvPython() {
    const char *cache = std::getenv("TINYAI_CACHE");
    const char *home = std::getenv("HOME");
    return (cache && *cache ? std::string(cache) : std::string(home ? home : "") + "/.cache/tinyai") +
           "/pyenv/bin/python";
}

// The float64 NumPy reference's logits after `toks` (tests/model/ref_llama.py).
inline std::vector<double> RunReference(const std::string &model, const std::vector<int32_t> &toks,
                                        const std::string &python = VenvPython()) {
    std::string cmd = python + " tests/model/ref_llama.py " + model;
    for (int32_t t : toks) cmd += " " + std::to_string(t);
    std::vector<double> out;
    FILE *p = popen(cmd.c_str(), "r");
    if (!p) return out;
    double v;
    while (fscanf(p, "%lf", &v) == 1) out.push_back(v);
    EXPECT_EQ(pclose(p), 0) << "reference failed: " << cmd;
    return out;
}

// The largest difference over the largest reference value.
inline double MaxRelError(const std::vector<float> &a, const std::vector<double> &b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < b.size() && i < a.size(); i++) {
        num = std::max(num, std::fabs(a[i] - b[i]));
        den = std::max(den, std::fabs(b[i]));
    }
    return num / (den > 0 ? den : 1);
}

// The norm of the difference over the reference's norm.
inline double L2RelError(const std::vector<float> &a, const std::vector<double> &b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < b.size() && i < a.size(); i++) {
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
    }
    return std::sqrt(num / (den > 0 ? den : 1));
}

template <typename T>
inline size_t ArgMaxOf(const std::vector<T> &v) {
    return (size_t)(std::max_element(v.begin(), v.end()) - v.begin());
}

} // namespace tai_test

#endif
