// <tinyai/utils/simd.h>: the level and the per-family switches choose the
// kernels a loaded model runs (the state says which, and the model's
// variant follows the products'), every choice gives the same greedy
// tokens and logits equal to rounding, and misuse is an error value.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <tinyai/utils/simd.h>

#include "tests/model/memory_test_util.h"

namespace {
using namespace tai_test;

std::string Model(const char *type) {
    TinyAISynthConfig c = tinyaiCreateDefaultSynthConfig();
    c.nVocab = 384;
    c.nEmbd = 256;
    c.nFF = 512;
    c.nHead = 8;
    c.nHeadKV = 4;
    c.nLayer = 2;
    c.nCtx = 128;
    c.weightType = type;
    c.embeddingType = type;
    c.seed = 11;
    return WriteSynthModel(c);
}

// Greedy decoding from a fixed prompt: the tokens and the last logits.
GreedyRun Decode(TinyAIModel *m) {
    return Greedy(m, {1, 5, 9, 13, 17, 21}, 6, 64);
}

// The same tokens, and logits equal to rounding: float weights to 1e-4 of
// their scale; block-quantized ones to 5%, since their activations are
// quantized to 8 bits too and a float difference in the last bit at a
// rounding boundary moves one code by one step (measured on the default
// model: up to 3% between the portable and the SIMD kernels, the tokens
// the same).
void ExpectSame(const GreedyRun &a, const GreedyRun &b, const std::string &what, float tol) {
    ASSERT_EQ(a.tokens, b.tokens) << what;
    ASSERT_EQ(a.logits.size(), b.logits.size());
    for (size_t s = 0; s < a.logits.size(); s++) {
        float scale = 0, diff = 0;
        for (size_t i = 0; i < a.logits[s].size(); i++) {
            scale = std::max(scale, std::fabs(a.logits[s][i]));
            diff = std::max(diff, std::fabs(a.logits[s][i] - b.logits[s][i]));
        }
        EXPECT_LE(diff, tol * scale) << what << " step " << s;
    }
}

TEST(Simd, CapabilitiesDescribeThisCpu) {
    const TinyAISIMDCapabilities c = tinyaiGetSIMDCapabilities();
    const std::string variants = tinyaiCpuVariants();
    EXPECT_EQ(c.maxLevel, variants.find("avx512") != std::string::npos ? 2
                          : variants.find("avx2") != std::string::npos ? 1
                                                                        : 0);
    EXPECT_STREQ(c.levelNames[0], "scalar");
    EXPECT_STREQ(c.levelNames[1], "avx2");
    EXPECT_STREQ(c.levelNames[2], "avx512");
    EXPECT_EQ(c.levelVectorBits[2], 512);
    if (c.maxLevel >= 1) {
        EXPECT_TRUE(c.avx2 && c.fma && c.f16c && c.avx);
    }
    if (c.maxLevel == 2) {
        EXPECT_TRUE(c.avx512f && c.avx512bw && c.avx512vl && c.avx512dq && c.avx512vnni);
    }
    if (c.amxInt8) {
        EXPECT_TRUE(c.avx512f);
    }
}

// Every level the CPU runs, on every weight type: the state names the
// level's kernels and the model's output is the best level's.
TEST(Simd, EachLevelRunsItsKernelsWithTheSameOutput) {
    const int max = tinyaiGetSIMDCapabilities().maxLevel;
    static const char *const names[3] = {"scalar", "avx2", "avx512"};
    for (const char *type : {"Q4_0", "Q4_1", "Q8_0", "F16", "F32"}) {
        const std::string path = Model(type);
        ModelPtr m = LoadModel(path, MemConfig(0, TINYAI_EXEC_NORMAL, 2));
        ASSERT_TRUE(m);
        const GreedyRun best = Decode(m.get());
        ASSERT_FALSE(best.tokens.empty());
        for (int level = 0; level <= max + 1; level++) {
            tinyaiSetSIMDOptimizationLevel(m.get(), level);
            TinyAISIMDState st;
            ASSERT_EQ(tinyaiGetSIMDState(m.get(), &st), TINYAI_OK);
            const int eff = level > max ? max : level;
            EXPECT_EQ(st.level, eff);
            for (int op : {TINYAI_SIMD_OP_MATRIX_MUL, TINYAI_SIMD_OP_ACTIVATION, TINYAI_SIMD_OP_ATTENTION}) {
                EXPECT_TRUE(st.enabled[op]);
                EXPECT_STREQ(st.kernel[op], names[eff]) << type << " level " << level;
            }
            EXPECT_EQ(st.kernel[TINYAI_SIMD_OP_CONV], nullptr);
            TinyAIModelInfo in;
            ASSERT_EQ(tinyaiGetModelInfo(m.get(), &in), TINYAI_OK);
            EXPECT_STREQ(in.isa, names[eff]);
            const bool fl = !strcmp(type, "F32") || !strcmp(type, "F16");
            ExpectSame(best, Decode(m.get()), std::string(type) + " level " + std::to_string(level),
                       fl ? 1e-4f : 0.05f);
        }
    }
}

// A disabled family runs the portable kernels, the others keep theirs.
TEST(Simd, DisablingAFamilyGivesItThePortableKernel) {
    const int max = tinyaiGetSIMDCapabilities().maxLevel;
    if (max == 0) GTEST_SKIP() << "this CPU runs the portable kernels only";
    static const char *const names[3] = {"scalar", "avx2", "avx512"};
    ModelPtr m = LoadModel(Model("Q8_0"), MemConfig(0, TINYAI_EXEC_NORMAL, 2));
    ASSERT_TRUE(m);
    const GreedyRun best = Decode(m.get());
    for (int op : {TINYAI_SIMD_OP_MATRIX_MUL, TINYAI_SIMD_OP_ACTIVATION, TINYAI_SIMD_OP_ATTENTION}) {
        ASSERT_TRUE(tinyaiEnableSIMD(m.get(), (TinyAISIMDOpType)op, false)) << tinyaiLastErrorMessage();
        TinyAISIMDState st;
        ASSERT_EQ(tinyaiGetSIMDState(m.get(), &st), TINYAI_OK);
        for (int o : {TINYAI_SIMD_OP_MATRIX_MUL, TINYAI_SIMD_OP_ACTIVATION, TINYAI_SIMD_OP_ATTENTION}) {
            EXPECT_EQ(st.enabled[o], o != op);
            EXPECT_STREQ(st.kernel[o], o == op ? "scalar" : names[max]) << op << " " << o;
        }
        ExpectSame(best, Decode(m.get()), "family " + std::to_string(op) + " off", 0.05f);
        ASSERT_TRUE(tinyaiEnableSIMD(m.get(), (TinyAISIMDOpType)op, true));
    }
    TinyAISIMDState st;
    ASSERT_EQ(tinyaiGetSIMDState(m.get(), &st), TINYAI_OK);
    EXPECT_STREQ(st.kernel[TINYAI_SIMD_OP_MATRIX_MUL], names[max]);
}

TEST(Simd, MisuseIsAnErrorValue) {
    ModelPtr m = LoadModel(Model("Q4_0"), MemConfig(0, TINYAI_EXEC_NORMAL, 1));
    ASSERT_TRUE(m);
    EXPECT_FALSE(tinyaiEnableSIMD(m.get(), TINYAI_SIMD_OP_CONV, true));
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("no convolutions"), std::string::npos);
    EXPECT_FALSE(tinyaiEnableSIMD(m.get(), (TinyAISIMDOpType)7, true));
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("unknown op type"), std::string::npos);
    EXPECT_FALSE(tinyaiEnableSIMD(nullptr, TINYAI_SIMD_OP_ATTENTION, false));
    TinyAISIMDState before, after;
    ASSERT_EQ(tinyaiGetSIMDState(m.get(), &before), TINYAI_OK);
    tinyaiSetSIMDOptimizationLevel(m.get(), -1);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("SIMD level -1"), std::string::npos);
    ASSERT_EQ(tinyaiGetSIMDState(m.get(), &after), TINYAI_OK);
    EXPECT_EQ(after.level, before.level);
    tinyaiSetSIMDOptimizationLevel(nullptr, 1);
    EXPECT_EQ(tinyaiGetSIMDState(nullptr, &after), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tinyaiGetSIMDState(m.get(), nullptr), TINYAI_ERR_INVALID_ARG);
}

}  // namespace
