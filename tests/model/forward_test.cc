// runtime/model: the forward pass against an independent NumPy reference
// (tests/model/ref_llama.py, its own GGUF reader, float64), on synthetic
// models of every weight type, every CPU kernel variant the host has, and
// the real default model.
#include <gtest/gtest.h>

#include <fstream>
#include <sys/stat.h>
#include <unistd.h>
#include <cstdlib>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <tinyai/llm.h>

#include "runtime/model/model.h"
#include "tests/common/test_paths.h"
#include "tests/model/reference_test_util.h"

namespace {

using tai_test::ArgMaxOf;
using tai_test::GreedyTokens;
using tai_test::LoadOn;
using tai_test::Logits;
using tai_test::MaxRelError;
using tai_test::ModelPtr;
using tai_test::RunReference;
using tai_test::SessionPtr;
using tai_test::VenvPython;
using tai_test::WriteSynthModel;

// The float64 reference of the original types runs on the system's Python
// (numpy from Debian); the newer types' needs the venv's gguf package.
const char *const kSystemPython = "/usr/bin/python3";

TinyAISynthConfig SmallConfig(const char *type) {
    TinyAISynthConfig c = tinyaiCreateDefaultSynthConfig();
    c.nVocab = 320;
    c.nEmbd = 64;
    c.nFF = 160;
    c.nHead = 4;
    c.nHeadKV = 2;
    c.nLayer = 3;
    c.nCtx = 64;
    c.weightType = type;
    c.embeddingType = type;
    c.tiedOutput = false;
    c.seed = 7;
    return c;
}

bool HaveOpenCL() { return tinyaiDeviceCount() > 1; }

const std::vector<int32_t> kTokens = {1, 17, 300, 42, 5, 99, 256, 3, 77, 150, 12, 200};

class ForwardByType : public ::testing::TestWithParam<const char *> {};

// F32/F16: within 1e-4 relative of the float64 reference. Quantized types
// quantize activations to 8 bits, so only the greedy token must agree (and
// the logits stay close).
TEST_P(ForwardByType, MatchesNumpyReference) {
    const char *type = GetParam();
    std::string path = WriteSynthModel(SmallConfig(type));
    std::vector<double> ref = RunReference(path, kTokens, kSystemPython);
    ASSERT_EQ(ref.size(), 320u);
    const bool exact = std::string(type) == "F32" || std::string(type) == "F16";
    // every CPU variant, and the blocks and head on OpenCL
    for (const char *cpu : {"scalar", "avx2", "avx512", "opencl"}) {
        const bool cl = std::string(cpu) == "opencl";
        if (cl ? !HaveOpenCL() : std::string(tinyaiCpuVariants()).find(cpu) == std::string::npos)
            continue;
        SCOPED_TRACE(cpu);
        ModelPtr m = cl ? LoadOn(path, nullptr, 2, "opencl") : LoadOn(path, cpu, 2);
        ASSERT_TRUE(m);
        std::vector<float> got = Logits(m.get(), kTokens, kTokens.size());
        ASSERT_EQ(got.size(), ref.size());
        double err = MaxRelError(got, ref);
        if (exact) {
            EXPECT_LT(err, 1e-4) << type;
        } else {
            EXPECT_LT(err, 0.1) << type;
        }
        EXPECT_EQ(ArgMaxOf(got), ArgMaxOf(ref)) << type;
    }
    std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(AllTypes, ForwardByType,
                         ::testing::Values("F32", "F16", "Q8_0", "Q4_0", "Q4_1"));

// The newer types (K-quants: widths of 256), every CPU variant, against the
// reference dequantized by the gguf package. BF16 is a float type: within
// 1e-4; the block types quantize activations to 8 bits.
class ForwardByNewType : public ::testing::TestWithParam<const char *> {};

TEST_P(ForwardByNewType, MatchesNumpyReference) {
    const char *type = GetParam();
    TinyAISynthConfig c = SmallConfig(type);
    c.nEmbd = 256;
    c.nFF = 512;
    c.nHead = 8;
    c.nHeadKV = 4;
    std::string path = WriteSynthModel(c);
    std::vector<double> ref = RunReference(path, kTokens, VenvPython());
    ASSERT_EQ(ref.size(), 320u) << "run scripts/setup.sh (the gguf package)";
    for (const char *cpu : {"scalar", "avx2", "avx512"}) {
        if (std::string(tinyaiCpuVariants()).find(cpu) == std::string::npos) continue;
        SCOPED_TRACE(cpu);
        ModelPtr m = LoadOn(path, cpu, 2);
        ASSERT_TRUE(m);
        std::vector<float> got = Logits(m.get(), kTokens, kTokens.size());
        ASSERT_EQ(got.size(), ref.size());
        const double err = MaxRelError(got, ref);
        EXPECT_LT(err, std::string(type) == "BF16" ? 1e-4 : 0.1) << type;
        EXPECT_EQ(ArgMaxOf(got), ArgMaxOf(ref)) << type;
    }
    std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(NewTypes, ForwardByNewType,
                         ::testing::Values("BF16", "Q5_0", "Q5_1", "IQ4_NL", "Q2_K", "Q3_K", "Q4_K",
                                           "Q5_K", "Q6_K"));

TEST(Forward, TiedOutputMatchesReference) {
    TinyAISynthConfig c = SmallConfig("F32");
    c.tiedOutput = true;
    c.nHeadKV = 4;  // plain multi-head attention
    std::string path = WriteSynthModel(c);
    std::vector<double> ref = RunReference(path, kTokens, kSystemPython);
    ModelPtr m = LoadOn(path);
    ASSERT_TRUE(m);
    TinyAIModelInfo info;
    tinyaiGetModelInfo(m.get(), &info);
    EXPECT_TRUE(info.tiedOutput);
    EXPECT_LT(MaxRelError(Logits(m.get(), kTokens, kTokens.size()), ref), 1e-4);
    std::remove(path.c_str());
}

// The prompt in one batch, then token by token, gives the same logits as
// everything token by token: the KV cache and batching agree.
TEST(Forward, BatchedEqualsIncremental) {
    std::string path = WriteSynthModel(SmallConfig("Q4_1"));
    ModelPtr m = LoadOn(path, nullptr, 2);
    ASSERT_TRUE(m);
    std::vector<float> a = Logits(m.get(), kTokens, kTokens.size());
    std::vector<float> b = Logits(m.get(), kTokens, 1);
    std::vector<float> c = Logits(m.get(), kTokens, 5);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); i++) {
        EXPECT_NEAR(a[i], b[i], 1e-4 * (1 + std::fabs(b[i])));
        EXPECT_NEAR(a[i], c[i], 1e-4 * (1 + std::fabs(c[i])));
    }
    std::remove(path.c_str());
}

TEST(Forward, ThreadCountDoesNotChangeResult) {
    std::string path = WriteSynthModel(SmallConfig("Q8_0"));
    ModelPtr m1 = LoadOn(path, nullptr, 1), m3 = LoadOn(path, nullptr, 3);
    ASSERT_TRUE(m1 && m3);
    std::vector<float> a = Logits(m1.get(), kTokens, kTokens.size());
    std::vector<float> b = Logits(m3.get(), kTokens, kTokens.size());
    EXPECT_EQ(a, b);
    std::remove(path.c_str());
}

TEST(Forward, ContextOverflowAndBadTokensAreErrors) {
    std::string path = WriteSynthModel(SmallConfig("F32"));
    ModelPtr m = LoadOn(path);
    ASSERT_TRUE(m);
    TinyAISession *s = nullptr;
    ASSERT_EQ(tinyaiCreateSession(m.get(), 8, &s), TINYAI_OK);
    SessionPtr sp(s);
    std::vector<int32_t> nine(9, 5);
    EXPECT_EQ(tinyaiEval(s, nine.data(), nine.size()), TINYAI_ERR_RANGE);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("context"), std::string::npos);
    EXPECT_EQ(tinyaiSessionPosition(s), 0);  // nothing evaluated
    int32_t bad[2] = {5, 320};
    EXPECT_EQ(tinyaiEval(s, bad, 2), TINYAI_ERR_INVALID_ARG);
    int32_t neg = -1;
    EXPECT_EQ(tinyaiEval(s, &neg, 1), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tinyaiGetLogits(s), nullptr);
    TinyAISession *s2 = nullptr;
    EXPECT_EQ(tinyaiCreateSession(m.get(), 65, &s2), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tinyaiCreateSession(m.get(), -1, &s2), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(s2, nullptr);
    std::remove(path.c_str());
}

TEST(Forward, BadConfigIsRejected) {
    std::string path = WriteSynthModel(SmallConfig("F32"));
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    TinyAIModel *m = nullptr;
    mc.threads = 257;
    EXPECT_EQ(tinyaiLoadModel(path.c_str(), &mc, &m), TINYAI_ERR_INVALID_ARG);
    mc.threads = -1;
    EXPECT_EQ(tinyaiLoadModel(path.c_str(), &mc, &m), TINYAI_ERR_INVALID_ARG);
    mc.threads = 1;
    mc.cpu = "sse9";
    EXPECT_EQ(tinyaiLoadModel(path.c_str(), &mc, &m), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(m, nullptr);
    EXPECT_EQ(tinyaiLoadModel("/nonexistent/model.gguf", nullptr, &m), TINYAI_ERR_IO);
    std::remove(path.c_str());
}

// An F32 model on OpenCL: logits within 1e-4 relative of the CPU's, on a
// prompt batch and on decoding steps, and the same greedy tokens.
TEST(OpenCLDevice, AgreesWithTheCpu) {
    if (!HaveOpenCL()) GTEST_SKIP() << "no OpenCL device on this machine";
    // the block types too: both devices multiply 8-bit activation codes
    // made by the same quantizer, so only the order of float sums differs
    for (const char *type : {"F32", "F16", "Q8_0", "Q4_0", "Q4_1"}) {
        SCOPED_TRACE(type);
        std::string path = WriteSynthModel(SmallConfig(type));
        ModelPtr cpu = LoadOn(path, nullptr, 2, "cpu"), cl = LoadOn(path, nullptr, 2, "opencl");
        ASSERT_TRUE(cpu && cl);
        TinyAIModelInfo info;
        tinyaiGetModelInfo(cl.get(), &info);
        EXPECT_NE(std::string(info.devices).find("opencl:0"), std::string::npos) << info.devices;
        EXPECT_STREQ(tinyaiLayerDevice(cl.get(), 0), "cpu");
        EXPECT_STREQ(tinyaiLayerDevice(cl.get(), 1), "opencl:0");
        std::vector<float> a = Logits(cpu.get(), kTokens, 5), b = Logits(cl.get(), kTokens, 5);
        ASSERT_EQ(a.size(), b.size());
        const double err = MaxRelError(b, std::vector<double>(a.begin(), a.end()));
        std::printf("%s: OpenCL against the CPU, relative error %.3g\n", type, err);
        EXPECT_LT(err, 1e-4);
        EXPECT_EQ(GreedyTokens(cpu.get(), kTokens, 24), GreedyTokens(cl.get(), kTokens, 24));
        std::remove(path.c_str());
    }
}

// --device auto with a calibration file describing the OpenCL device as far
// faster than the CPU but with room for about a quarter of the model: the
// device gets the layers that fit, the rest stay on the CPU, and the
// results are the CPU's.
TEST(OpenCLDevice, AutoGivesAFastSmallDeviceWhatFits) {
    if (!HaveOpenCL()) GTEST_SKIP() << "no OpenCL device on this machine";
    TinyAISynthConfig sc = SmallConfig("F32");
    sc.nLayer = 6;
    std::string path = WriteSynthModel(sc);
    ModelPtr cpu = LoadOn(path, nullptr, 2, "cpu");
    ASSERT_TRUE(cpu);
    TinyAIModelInfo ci;
    tinyaiGetModelInfo(cpu.get(), &ci);
    TinyAIDeviceInfo cl;
    ASSERT_EQ(tinyaiGetDeviceInfo(1, &cl), TINYAI_OK);
    const std::string dir = tai_test::TempPath("-cal");
    mkdir(dir.c_str(), 0755);
    const std::string key = std::string(cl.name) + "|" + cl.model + "|" + cl.version;
    const uint64_t mem = ci.packedBytes / 3; // 80% of it is room for weights
    std::ofstream(dir + "/devices.json")
        << "{\"tinyai_device_calibration\": 1, \"opencl_devices\": [\"" << key
        << "\"], \"devices\": {\"" << key
        << "\": {\"mv_gbs\": {\"F32\": 5000, \"F16\": 5000, \"Q8_0\": 5000, \"Q4_0\": 5000, "
           "\"Q4_1\": 5000}, \"mm_gflops\": {\"F32\": 9e5, \"F16\": 9e5, \"Q8_0\": 9e5, "
           "\"Q4_0\": 9e5, \"Q4_1\": 9e5}, \"mm_512_gflops\": {\"F32\": 9e5, \"F16\": 9e5, "
           "\"Q8_0\": 9e5, \"Q4_0\": 9e5, \"Q4_1\": 9e5}, \"mv_llc_gbs\": {\"F32\": 5000, "
           "\"F16\": 5000, \"Q8_0\": 5000, \"Q4_0\": 5000, \"Q4_1\": 5000}, \"op_us\": 0.01, \"sync_us\": 0.01, "
           "\"elem_gbs\": 5000, \"h2d_gbs\": 500, \"d2h_gbs\": 500, \"xfer_us\": 0.01, "
           "\"mem_bytes\": "
        << mem << ", \"llc_bytes\": 0, \"unified\": 0}}}\n";
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.threads = 2;
    mc.cacheDir = dir.c_str(); // the CPU's own calibration is measured and added
    TinyAIModel *raw = nullptr;
    ASSERT_EQ(tinyaiLoadModel(path.c_str(), &mc, &raw), TINYAI_OK) << tinyaiLastErrorMessage();
    ModelPtr aut(raw);
    TinyAIModelInfo ai;
    tinyaiGetModelInfo(aut.get(), &ai);
    EXPECT_STREQ(ai.placementNote, "");
    int on_cl = 0;
    for (int l = 0; l < ai.nFileLayers; l++) on_cl += std::string(tinyaiLayerDevice(aut.get(), l)) != "cpu";
    EXPECT_GE(on_cl, 1) << ai.devices;
    EXPECT_LT(on_cl, ai.nFileLayers - 2) << ai.devices; // not all: they do not fit
    EXPECT_STREQ(tinyaiLayerDevice(aut.get(), 0), "cpu"); // the embedding lookup
    EXPECT_NE(std::string(ai.devices).find("opencl:0"), std::string::npos) << ai.devices;
    TinyAILayerPlacement p;
    ASSERT_EQ(tinyaiGetLayerPlacement(aut.get(), 1, 1, &p), TINYAI_OK);
    EXPECT_GT(p.predictedSeconds, 0.0);
    std::vector<float> a = Logits(cpu.get(), kTokens, 5), b = Logits(aut.get(), kTokens, 5);
    EXPECT_LT(MaxRelError(b, std::vector<double>(a.begin(), a.end())), 1e-4);
    EXPECT_EQ(GreedyTokens(cpu.get(), kTokens, 16), GreedyTokens(aut.get(), kTokens, 16));
    // the device fails in the middle of a layer: its layers move to the CPU
    // (said once in the model's info) and the results are still the CPU's
    aut->devs[1]->fail_after = 7;
    std::vector<float> c = Logits(aut.get(), kTokens, 5);
    EXPECT_LT(MaxRelError(c, std::vector<double>(a.begin(), a.end())), 1e-4);
    tinyaiGetModelInfo(aut.get(), &ai);
    EXPECT_NE(std::string(ai.placementNote).find("injected failure"), std::string::npos)
        << ai.placementNote;
    EXPECT_NE(std::string(ai.placementNote).find("run on the CPU"), std::string::npos);
    for (int l = 0; l < ai.nFileLayers; l++) EXPECT_STREQ(tinyaiLayerDevice(aut.get(), l), "cpu");
    EXPECT_EQ(GreedyTokens(cpu.get(), kTokens, 8), GreedyTokens(aut.get(), kTokens, 8));
    std::remove(path.c_str());
}

// A device named by the caller (not chosen by auto) that fails is an error
// naming it and the op, not a silent move.
TEST(OpenCLDevice, ANamedDeviceThatFailsIsAnError) {
    if (!HaveOpenCL()) GTEST_SKIP() << "no OpenCL device on this machine";
    std::string path = WriteSynthModel(SmallConfig("F32"));
    ModelPtr cl = LoadOn(path, nullptr, 2, "opencl");
    ASSERT_TRUE(cl);
    cl->devs[1]->fail_after = 4;
    TinyAISession *s = nullptr;
    ASSERT_EQ(tinyaiCreateSession(cl.get(), 0, &s), TINYAI_OK);
    SessionPtr sp(s);
    EXPECT_EQ(tinyaiEval(s, kTokens.data(), kTokens.size()), TINYAI_ERR_DEVICE);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("device opencl:0"), std::string::npos)
        << tinyaiLastErrorMessage();
    std::remove(path.c_str());
}

// A named device is not measured at load, but where the cache folder holds
// its calibration the layers carry the cost model's predictions; measured
// times accumulate per pass and are forgotten on request.
TEST(Placement, ANamedDeviceIsPredictedFromAKeptCalibration) {
    std::string path = WriteSynthModel(SmallConfig("Q8_0"));
    const std::string dir = tai_test::TempPath("-named");
    ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.device = "cpu";
    mc.threads = 2;
    mc.cacheDir = dir.c_str();
    TinyAIModel *m = nullptr;
    TinyAILayerPlacement p;
    ASSERT_EQ(tinyaiLoadModel(path.c_str(), &mc, &m), TINYAI_OK) << tinyaiLastErrorMessage();
    ASSERT_EQ(tinyaiGetLayerPlacement(m, 1, 1, &p), TINYAI_OK);
    EXPECT_EQ(p.predictedSeconds, 0.0); // nothing kept yet, nothing measured at load
    tinyaiFreeModel(m);
    const std::string cal = dir + "/devices.json";
    struct stat sb;
    EXPECT_NE(stat(cal.c_str(), &sb), 0);
    TinyAIDeviceCalibration c;
    ASSERT_EQ(tinyaiCalibrateDevice(dir.c_str(), 0, 2, &c), TINYAI_OK) << tinyaiLastErrorMessage();
    EXPECT_GT(c.matmulOpMicros, 0.0);
    ASSERT_EQ(tinyaiLoadModel(path.c_str(), &mc, &m), TINYAI_OK) << tinyaiLastErrorMessage();
    ModelPtr mp(m);
    TinyAIModelInfo info;
    ASSERT_EQ(tinyaiGetModelInfo(m, &info), TINYAI_OK);
    for (int l = 1; l < info.nFileLayers; l++) {
        ASSERT_EQ(tinyaiGetLayerPlacement(m, 1, l, &p), TINYAI_OK);
        EXPECT_GT(p.predictedSeconds, 0.0) << l;
        EXPECT_STREQ(p.device, "cpu");
    }
    TinyAISession *s = nullptr;
    ASSERT_EQ(tinyaiCreateSession(m, 0, &s), TINYAI_OK);
    SessionPtr sp(s);
    ASSERT_EQ(tinyaiEval(s, kTokens.data(), 1), TINYAI_OK);
    ASSERT_EQ(tinyaiEval(s, kTokens.data() + 1, 1), TINYAI_OK);
    ASSERT_EQ(tinyaiGetLayerPlacement(m, 1, 1, &p), TINYAI_OK);
    EXPECT_EQ(p.passes, 2);
    EXPECT_GT(p.measuredSeconds, 0.0);
    tinyaiResetLayerTimes(m);
    ASSERT_EQ(tinyaiGetLayerPlacement(m, 1, 1, &p), TINYAI_OK);
    EXPECT_EQ(p.passes, 0);
    EXPECT_EQ(p.measuredSeconds, 0.0);
    EXPECT_GT(p.predictedSeconds, 0.0);
    tinyaiResetLayerTimes(nullptr); // accepted
    std::remove(cal.c_str());
    rmdir(dir.c_str());
    std::remove(path.c_str());
}

// A named device whose memory cannot hold the model's layers and the KV
// caches the config plans for fails the load, naming the device, instead of
// failing in the middle of a pass.
TEST(OpenCLDevice, ANamedDeviceTooSmallForTheModelIsAnErrorAtLoad) {
    if (!HaveOpenCL()) GTEST_SKIP() << "no OpenCL device on this machine";
    TinyAIDeviceInfo di;
    ASSERT_EQ(tinyaiGetDeviceInfo(1, &di), TINYAI_OK);
    if (di.memoryBytes == 0) GTEST_SKIP() << di.name << " reports no memory size";
    const TinyAISynthConfig sc = SmallConfig("F32");
    std::string path = WriteSynthModel(sc);
    // KV bytes per token of one session: K and V, every layer
    const uint64_t per_tok = 2ull * sc.nLayer * sc.nHeadKV * (sc.nEmbd / sc.nHead) * 4;
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.device = "opencl";
    mc.cacheDir = std::getenv("TEST_TMPDIR");
    mc.maxSessions = 1024;
    mc.contextSize = (int)(di.memoryBytes / per_tok / 1024 + 1024);
    TinyAIModel *m = nullptr;
    EXPECT_EQ(tinyaiLoadModel(path.c_str(), &mc, &m), TINYAI_ERR_NOMEM);
    EXPECT_EQ(m, nullptr);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("device opencl:0 has"), std::string::npos)
        << tinyaiLastErrorMessage();
    // the same plan on the CPU (the host's memory; checked when sessions are
    // made) and a modest one on the device load
    mc.device = "cpu";
    ASSERT_EQ(tinyaiLoadModel(path.c_str(), &mc, &m), TINYAI_OK) << tinyaiLastErrorMessage();
    tinyaiFreeModel(m);
    mc.device = "opencl";
    mc.maxSessions = 1;
    mc.contextSize = 64;
    ASSERT_EQ(tinyaiLoadModel(path.c_str(), &mc, &m), TINYAI_OK) << tinyaiLastErrorMessage();
    tinyaiFreeModel(m);
    std::remove(path.c_str());
}

// With real calibrations on a machine whose only OpenCL devices run on its
// CPU (PoCL: the portable kernels, far slower than the native ones), auto
// places every layer on the CPU, for every batch size, and opens nothing.
TEST(OpenCLDevice, AutoKeepsEverythingOnTheCpuWhenOpenCLIsTheCpuToo) {
    if (!HaveOpenCL()) GTEST_SKIP() << "no OpenCL device on this machine";
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    // instrumented CPU kernels run slower than PoCL's uninstrumented ones,
    // so the premise (the native kernels are faster) does not hold
    GTEST_SKIP() << "built with a sanitizer";
#endif
    for (int i = 1; i < tinyaiDeviceCount(); i++) {
        TinyAIDeviceInfo d;
        ASSERT_EQ(tinyaiGetDeviceInfo(i, &d), TINYAI_OK);
        if (d.kind != 0) GTEST_SKIP() << d.name << " is not a CPU device: " << d.model;
    }
    std::string path = WriteSynthModel(SmallConfig("Q4_0"));
    const std::string dir = tai_test::TempPath("-realcal");
    mkdir(dir.c_str(), 0755);
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.threads = 2;
    mc.cacheDir = dir.c_str();
    TinyAIModel *raw = nullptr;
    ASSERT_EQ(tinyaiLoadModel(path.c_str(), &mc, &raw), TINYAI_OK) << tinyaiLastErrorMessage();
    ModelPtr m(raw);
    TinyAIModelInfo info;
    tinyaiGetModelInfo(m.get(), &info);
    EXPECT_STREQ(info.devices, "cpu");
    for (int cols : {1, 2, 7, 64, 300, 512})
        for (int l = 0; l < info.nFileLayers; l++) {
            TinyAILayerPlacement p;
            ASSERT_EQ(tinyaiGetLayerPlacement(m.get(), cols, l, &p), TINYAI_OK);
            EXPECT_STREQ(p.device, "cpu") << cols << " columns, layer " << l;
        }
    EXPECT_EQ(m->n_devs, 1); // the OpenCL device was measured, not kept open
    std::remove(path.c_str());
}

// A corrupt calibration file: auto measures again, says so once in the
// model's info, and replaces the file.
TEST(OpenCLDevice, ACorruptCalibrationFileIsMeasuredAgain) {
    std::string path = WriteSynthModel(SmallConfig("F32"));
    const std::string dir = tai_test::TempPath("-badcal");
    mkdir(dir.c_str(), 0755);
    std::ofstream(dir + "/devices.json") << "{ this is not json";
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.threads = 2;
    mc.cacheDir = dir.c_str();
    TinyAIModel *raw = nullptr;
    ASSERT_EQ(tinyaiLoadModel(path.c_str(), &mc, &raw), TINYAI_OK) << tinyaiLastErrorMessage();
    ModelPtr m(raw);
    TinyAIModelInfo info;
    tinyaiGetModelInfo(m.get(), &info);
    EXPECT_NE(std::string(info.placementNote).find("devices.json"), std::string::npos)
        << info.placementNote;
    EXPECT_NE(std::string(info.placementNote).find("measured again"), std::string::npos);
    // the next load finds a good file and says nothing
    ModelPtr again;
    ASSERT_EQ(tinyaiLoadModel(path.c_str(), &mc, &raw), TINYAI_OK);
    again.reset(raw);
    tinyaiGetModelInfo(again.get(), &info);
    EXPECT_STREQ(info.placementNote, "");
    std::remove(path.c_str());
}

TEST(OpenCLDevice, AnUnknownDeviceIsAnError) {
    std::string path = WriteSynthModel(SmallConfig("F32"));
    for (const char *bad : {"gpu", "opencl:999", "opencl:x", "cpu:1"}) {
        TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
        mc.device = bad;
        TinyAIModel *m = nullptr;
        EXPECT_EQ(tinyaiLoadModel(path.c_str(), &mc, &m), TINYAI_ERR_INVALID_ARG) << bad;
        EXPECT_EQ(m, nullptr);
        EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("device"), std::string::npos)
            << tinyaiLastErrorMessage();
    }
    std::remove(path.c_str());
}

// The real model at temperature 0 names Paris, on the CPU and on OpenCL.
TEST(RealModel, CapitalOfFranceIsParisOnOpenCL) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    if (!HaveOpenCL()) GTEST_SKIP() << "no OpenCL device on this machine";
    ModelPtr m = LoadOn(path, nullptr, 2, "opencl");
    ASSERT_TRUE(m);
    int32_t ids[64];
    size_t n = 0;
    ASSERT_EQ(tinyaiTokenize(m.get(), "The capital of France is", false, false, ids, 64, &n), TINYAI_OK);
    std::string text;
    for (int32_t t : GreedyTokens(m.get(), std::vector<int32_t>(ids, ids + n), 6)) {
        size_t len = 0;
        const char *p = tinyaiTokenPiece(m.get(), t, &len);
        text.append(p, len);
    }
    EXPECT_NE(text.find("Paris"), std::string::npos) << "generated: " << text;
}

// The real model at temperature 0 names Paris.
TEST(RealModel, CapitalOfFranceIsParis) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    ModelPtr m = LoadOn(path, nullptr, 2);
    ASSERT_TRUE(m);
    int32_t ids[64];
    size_t n = 0;
    ASSERT_EQ(tinyaiTokenize(m.get(), "The capital of France is", false, false, ids, 64, &n), TINYAI_OK);
    TinyAISession *s = nullptr;
    ASSERT_EQ(tinyaiCreateSession(m.get(), 256, &s), TINYAI_OK);
    SessionPtr sp(s);
    ASSERT_EQ(tinyaiEval(s, ids, n), TINYAI_OK) << tinyaiLastErrorMessage();
    TinyAIModelInfo info;
    tinyaiGetModelInfo(m.get(), &info);
    std::string text;
    for (int i = 0; i < 12; i++) {
        const float *l = tinyaiGetLogits(s);
        int32_t best = (int32_t)(std::max_element(l, l + info.nVocab) - l);
        if (tinyaiTokenIsEndOfGeneration(m.get(), best)) break;
        size_t len = 0;
        const char *p = tinyaiTokenPiece(m.get(), best, &len);
        text.append(p, len);
        ASSERT_EQ(tinyaiEval(s, &best, 1), TINYAI_OK);
    }
    EXPECT_NE(text.find("Paris"), std::string::npos) << "generated: " << text;
}

}  // namespace
