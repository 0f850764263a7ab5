// runtime/model/arch: each architecture's block (qwen2's biases, qwen3's
// per-head q/k norms and wider heads, gemma3's scaled embeddings, post
// norms, GeGLU, sliding-window blocks with their own RoPE base) against the
// independent NumPy reference (tests/model/ref_llama.py restates each from
// its published definition), on synthetic models: F32 within 1e-4, the
// K-quants to their rounding; batched, incremental and at any thread
// count alike; and the bad files each architecture can meet.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <tinyai/llm.h>

#include "runtime/format/arch_flags.h"
#include "runtime/format/synth.h"
#include "tests/common/test_paths.h"
#include "tests/model/reference_test_util.h"

namespace {

using tai_test::ArgMaxOf;
using tai_test::L2RelError;
using tai_test::LoadOn;
using tai_test::Logits;
using tai_test::ModelPtr;
using tai_test::RunReference;
using tai_test::WriteSynthModel;

// 14 tokens: past gemma3's test window of 4, so the sliding blocks differ
// from global ones.
const std::vector<int32_t> kTokens = {1, 17, 300, 42, 5, 99, 256, 3, 77, 150, 12, 200, 9, 64};

TinyAISynthConfig Config(const char *arch, const char *type) {
    TinyAISynthConfig c = tinyaiCreateDefaultSynthConfig();
    c.architecture = arch;
    c.nVocab = 320;
    c.nEmbd = 256;
    c.nFF = 512;
    c.nHead = 4;
    c.nHeadKV = 2;
    c.nLayer = 3;
    c.nCtx = 64;
    c.weightType = type;
    c.embeddingType = type;
    c.tiedOutput = false;
    c.seed = 21;
    const std::string a = arch;
    if (a == "qwen3") c.headDim = 128; // q is 512 wide: 2x n_embd
    if (a == "gemma3") {
        c.headDim = 128;
        c.nHeadKV = 1;
        c.nLayer = 7;  // blocks 0-4 and 6 slide, block 5 is global
        c.slidingWindow = 4;
        c.ropeFreqBase = 1000000.0f;
        c.tiedOutput = true;
    }
    return c;
}

struct Case {
    const char *arch, *type;
};

class ArchForward : public ::testing::TestWithParam<Case> {};

TEST_P(ArchForward, MatchesNumpyReference) {
    const Case k = GetParam();
    const std::string path = WriteSynthModel(Config(k.arch, k.type));
    const std::vector<double> ref = RunReference(path, kTokens);
    ASSERT_EQ(ref.size(), 320u) << "run scripts/setup.sh (the test venv)";
    const bool exact = std::string(k.type) == "F32";
    for (const char *cpu : {"scalar", "avx2", "avx512"}) {
        if (std::string(tinyaiCpuVariants()).find(cpu) == std::string::npos) continue;
        SCOPED_TRACE(cpu);
        ModelPtr m = LoadOn(path, cpu, 2);
        ASSERT_TRUE(m);
        const std::vector<float> batched = Logits(m.get(), kTokens, kTokens.size());
        const double err = L2RelError(batched, ref);
        EXPECT_LT(err, exact ? 1e-4 : std::string(k.type) == "Q2_K" ? 0.2 : 0.1)
            << k.arch << " " << k.type;
        std::printf("arch-type %s %s %s rel-error %.3g argmax %s\n", k.arch, k.type, cpu, err,
                    ArgMaxOf(batched) == ArgMaxOf(ref) ? "same" : "differs");
        EXPECT_EQ(ArgMaxOf(batched), ArgMaxOf(ref)) << k.arch << " " << k.type;
        // the KV cache and the window agree token by token and in pieces
        const std::vector<float> one = Logits(m.get(), kTokens, 1), five = Logits(m.get(), kTokens, 5);
        ASSERT_EQ(one.size(), batched.size());
        for (size_t i = 0; i < one.size(); i++) {
            EXPECT_NEAR(batched[i], one[i], 1e-4 * (1 + std::fabs(one[i])));
            EXPECT_NEAR(five[i], one[i], 1e-4 * (1 + std::fabs(one[i])));
        }
    }
    std::remove(path.c_str());
}

std::vector<Case> AllCases() {
    std::vector<Case> v;
    for (const char *a : {"qwen2", "qwen3", "gemma3"})
        for (const char *t : {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "IQ4_NL",
                              "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"})
            v.push_back({a, t});
    return v;
}

INSTANTIATE_TEST_SUITE_P(Archs, ArchForward, ::testing::ValuesIn(AllCases()),
                         [](const ::testing::TestParamInfo<Case> &i) {
                             return std::string(i.param.arch) + "_" + i.param.type;
                         });

TEST(Arch, ThreadCountDoesNotChangeResult) {
    for (const char *arch : {"qwen2", "qwen3", "gemma3"}) {
        SCOPED_TRACE(arch);
        const std::string path = WriteSynthModel(Config(arch, "Q8_0"));
        ModelPtr m1 = LoadOn(path, nullptr, 1), m3 = LoadOn(path, nullptr, 3);
        ASSERT_TRUE(m1 && m3);
        EXPECT_EQ(Logits(m1.get(), kTokens, kTokens.size()), Logits(m3.get(), kTokens, kTokens.size()));
        std::remove(path.c_str());
    }
}

// Every architecture's block on an OpenCL device (PoCL here: its NeoX
// RoPE, GeGLU, bias and sliding-window attention kernels) gives the CPU's
// logits within 1e-4 relative, batched and token by token.
TEST(Arch, OpenCLAgreesWithTheCpu) {
    if (tinyaiDeviceCount() <= 1) GTEST_SKIP() << "no OpenCL device on this machine";
    for (const char *arch : {"qwen2", "qwen3", "gemma3"}) {
        SCOPED_TRACE(arch);
        const std::string path = WriteSynthModel(Config(arch, "F32"));
        ModelPtr cpu = LoadOn(path, nullptr, 2), cl = LoadOn(path, nullptr, 2, "opencl");
        ASSERT_TRUE(cpu && cl);
        const std::vector<float> a = Logits(cpu.get(), kTokens, kTokens.size());
        const std::vector<double> b = [&] {
            std::vector<float> f = Logits(cl.get(), kTokens, kTokens.size());
            return std::vector<double>(f.begin(), f.end());
        }();
        EXPECT_LT(L2RelError(a, b), 1e-4);
        const std::vector<double> c = [&] {
            std::vector<float> f = Logits(cl.get(), kTokens, 1);
            return std::vector<double>(f.begin(), f.end());
        }();
        EXPECT_LT(L2RelError(a, c), 1e-4);
        std::remove(path.c_str());
    }
}

// Final-logit soft-capping (gemma3's final_logit_softcapping): logits c
// tanh(l / c), as the reference computes them, and never past c.
TEST(Arch, GemmaSoftCapMatchesReference) {
    TinyAISynthConfig c = Config("gemma3", "F32");
    c.logitSoftcap = 0.5f;
    const std::string path = WriteSynthModel(c);
    const std::vector<double> ref = RunReference(path, kTokens);
    ASSERT_EQ(ref.size(), 320u);
    ModelPtr m = LoadOn(path, nullptr, 2);
    ASSERT_TRUE(m);
    const std::vector<float> got = Logits(m.get(), kTokens, 3);
    EXPECT_LT(L2RelError(got, ref), 1e-4);
    for (float v : got) EXPECT_LE(std::fabs(v), 0.5f);
    // a cap the synthetic writer refuses: negative, and on an architecture
    // that does not read it
    c.logitSoftcap = -1.0f;
    EXPECT_EQ(tinyaiWriteSyntheticModel(&c, tai_test::TempPath(".gguf").c_str()), TINYAI_ERR_INVALID_ARG);
    TinyAISynthConfig l = Config("llama", "F32");
    l.logitSoftcap = 30.0f;
    EXPECT_EQ(tinyaiWriteSyntheticModel(&l, tai_test::TempPath(".gguf").c_str()), TINYAI_ERR_INVALID_ARG);
    std::remove(path.c_str());
}

// The sliding window is what the reference's is: a model with the window
// as long as the prompt gives other logits (the window is not ignored).
TEST(Arch, GemmaWindowMatters) {
    TinyAISynthConfig c = Config("gemma3", "F32");
    const std::string narrow = WriteSynthModel(c);
    c.slidingWindow = 64;
    const std::string wide = WriteSynthModel(c);
    ModelPtr a = LoadOn(narrow), b = LoadOn(wide);
    ASSERT_TRUE(a && b);
    EXPECT_GT(L2RelError(Logits(a.get(), kTokens, kTokens.size()),
                       [&] {
                           std::vector<float> f = Logits(b.get(), kTokens, kTokens.size());
                           return std::vector<double>(f.begin(), f.end());
                       }()),
              1e-3);
    std::remove(narrow.c_str());
    std::remove(wide.c_str());
}

TEST(Arch, ModelInfoNamesTheArchitecture) {
    const std::string path = WriteSynthModel(Config("qwen3", "F32"));
    ModelPtr m = LoadOn(path);
    ASSERT_TRUE(m);
    TinyAIModelInfo info;
    ASSERT_EQ(tinyaiGetModelInfo(m.get(), &info), TINYAI_OK);
    EXPECT_EQ(info.headDim, 128);
    EXPECT_EQ(info.nEmbd, 256);
    EXPECT_STREQ(info.architecture, "qwen3");
    std::remove(path.c_str());
}

// ---- bad files ----

TinyAIStatus LoadStatus(const std::string &path, std::string *msg) {
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    TinyAIModel *m = nullptr;
    const TinyAIStatus st = tinyaiLoadModel(path.c_str(), &mc, &m);
    *msg = st == TINYAI_OK ? "" : tinyaiLastErrorMessage();
    tinyaiFreeModel(m);
    return st;
}

// A file of architecture `arch` written with the block variations `flags`
// (not the architecture's own).
std::string WriteMismatched(const char *arch, uint32_t flags, int head_dim = 0) {
    tai_synth_config c = tai_synth_default_config();
    c.n_vocab = 320;
    c.n_embd = 64;
    c.n_ff = 128;
    c.n_layer = 2;
    c.matrix_type = TAI_TYPE_F32;
    c.embd_type = TAI_TYPE_F32;
    c.arch = arch;
    c.arch_flags = flags;
    c.head_dim = head_dim;
    c.swa_window = 4;
    std::string path = tai_test::TempPath(".gguf");
    EXPECT_EQ(tai_synth_write(&c, path.c_str()), TINYAI_OK) << tinyaiLastErrorMessage();
    return path;
}

TEST(Arch, MissingArchitectureTensorsAreCleanErrors) {
    struct {
        const char *arch;
        uint32_t flags;
        const char *missing;
    } cases[] = {
        {"qwen2", TAI_ARCH_NEOX, "blk.0.attn_q.bias"},
        {"qwen3", TAI_ARCH_NEOX, "blk.0.attn_q_norm.weight"},
        {"gemma3", TAI_ARCH_QK_NORM | TAI_ARCH_SWA, "blk.0.post_attention_norm.weight"},
    };
    for (const auto &k : cases) {
        SCOPED_TRACE(k.arch);
        const std::string path = WriteMismatched(k.arch, k.flags);
        std::string msg;
        EXPECT_EQ(LoadStatus(path, &msg), TINYAI_ERR_FORMAT);
        EXPECT_NE(msg.find(k.missing), std::string::npos) << msg;
        std::remove(path.c_str());
    }
}

TEST(Arch, GemmaWithoutItsWindowIsAnError) {
    const std::string path = WriteMismatched(
        "gemma3", TAI_ARCH_QK_NORM | TAI_ARCH_POST_NORMS);  // no sliding_window key
    std::string msg;
    EXPECT_NE(LoadStatus(path, &msg), TINYAI_OK);
    EXPECT_NE(msg.find("gemma3.attention.sliding_window"), std::string::npos) << msg;
    std::remove(path.c_str());
}

TEST(Arch, UnknownArchitectureNamesTheSupportedOnes) {
    const std::string path = WriteMismatched("mamba", 0);
    std::string msg;
    EXPECT_EQ(LoadStatus(path, &msg), TINYAI_ERR_UNSUPPORTED);
    EXPECT_NE(msg.find("'mamba'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("qwen3"), std::string::npos) << msg;
    std::remove(path.c_str());
}

TEST(Arch, QNormOfTheWrongWidthIsAnError) {
    // heads of 32 in the tensors, but key_length says 16 in the metadata:
    // written as qwen3 with head_dim 16 against n_embd 64 / 4 heads
    const std::string path = WriteMismatched("qwen3", TAI_ARCH_QK_NORM | TAI_ARCH_NEOX, 16);
    std::string msg;
    // consistent on its own (q is 4 x 16 = 64 wide): loads
    EXPECT_EQ(LoadStatus(path, &msg), TINYAI_OK) << msg;
    std::remove(path.c_str());
}

TEST(Arch, SynthRefusesUnknownArchitecture) {
    TinyAISynthConfig c = Config("qwen2", "F32");
    c.architecture = "nope";
    EXPECT_EQ(tinyaiWriteSyntheticModel(&c, tai_test::TempPath(".gguf").c_str()),
              TINYAI_ERR_INVALID_ARG);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("nope"), std::string::npos);
}

}  // namespace
