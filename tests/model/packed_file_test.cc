// runtime/model on a .tmai version 2 file, whose matrices are stored packed
// and used in place (token embedding looked up in the packed table): its
// logits must equal those of the GGUF it was converted from bit for bit,
// for synthetic models of every weight type (tied and untied head), every
// CPU kernel variant the host has, and the real default model. A version 1
// (row-major) .tmai must give the same logits as well.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include <tinyai/llm.h>

#include "runtime/format/model_file.h"
#include "tests/common/test_paths.h"

namespace {

struct ModelDeleter {
    void operator()(TinyAIModel *m) const { tinyaiFreeModel(m); }
};
struct SessionDeleter {
    void operator()(TinyAISession *s) const { tinyaiFreeSession(s); }
};
using ModelPtr = std::unique_ptr<TinyAIModel, ModelDeleter>;
using SessionPtr = std::unique_ptr<TinyAISession, SessionDeleter>;

ModelPtr Load(const std::string &path, const char *cpu, int threads) {
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.cpu = cpu;
    mc.threads = threads;
    TinyAIModel *m = nullptr;
    EXPECT_EQ(tinyaiLoadModel(path.c_str(), &mc, &m), TINYAI_OK) << tinyaiLastErrorMessage();
    return ModelPtr(m);
}

// Logits after the first `batch` tokens in one evaluation and the rest one
// by one (both the batched and the single-token paths read the weights).
std::vector<float> Logits(TinyAIModel *m, const std::vector<int32_t> &toks, size_t batch) {
    TinyAISession *s = nullptr;
    EXPECT_EQ(tinyaiCreateSession(m, 0, &s), TINYAI_OK) << tinyaiLastErrorMessage();
    SessionPtr sp(s);
    if (!s) return {};
    EXPECT_EQ(tinyaiEval(s, toks.data(), batch), TINYAI_OK) << tinyaiLastErrorMessage();
    for (size_t i = batch; i < toks.size(); i++)
        EXPECT_EQ(tinyaiEval(s, &toks[i], 1), TINYAI_OK) << tinyaiLastErrorMessage();
    TinyAIModelInfo info;
    tinyaiGetModelInfo(m, &info);
    const float *l = tinyaiGetLogits(s);
    EXPECT_NE(l, nullptr);
    return l ? std::vector<float>(l, l + info.nVocab) : std::vector<float>();
}

// Bit-for-bit equality (NaNs included), reporting the first difference.
void ExpectSameBits(const std::vector<float> &a, const std::vector<float> &b) {
    ASSERT_EQ(a.size(), b.size());
    ASSERT_FALSE(a.empty());
    for (size_t i = 0; i < a.size(); i++)
        ASSERT_EQ(memcmp(&a[i], &b[i], sizeof(float)), 0)
            << "logit " << i << ": " << a[i] << " vs " << b[i];
}

std::string ConvertV1(const std::string &in) {
    tai_model_file *mf = nullptr;
    EXPECT_EQ(tai_model_file_open(in.c_str(), false, &mf), TINYAI_OK) << tinyaiLastErrorMessage();
    std::string out = tai_test::TempPath(".tmai");
    tai_tmai_write_options o = tai_tmai_default_write_options();
    o.version = 1;
    EXPECT_EQ(tai_tmai_write_with(mf, out.c_str(), &o), TINYAI_OK) << tinyaiLastErrorMessage();
    tai_model_file_close(mf);
    return out;
}

uint32_t FileVersion(const std::string &path) {
    tai_model_file *mf = nullptr;
    EXPECT_EQ(tai_model_file_open(path.c_str(), false, &mf), TINYAI_OK) << tinyaiLastErrorMessage();
    uint32_t v = mf ? mf->version : 0;
    tai_model_file_close(mf);
    return v;
}

const std::vector<int32_t> kTokens = {1, 17, 299, 42, 5, 99, 256, 3, 77, 150, 12};

class PackedFile : public ::testing::TestWithParam<std::tuple<const char *, bool>> {};

TEST_P(PackedFile, LogitsEqualTheGgufBitForBit) {
    const char *type = std::get<0>(GetParam());
    TinyAISynthConfig c = tinyaiCreateDefaultSynthConfig();
    c.nVocab = 300;  // not a multiple of the 16-row panels
    c.nEmbd = 96;    // 3 blocks per row: an odd block count
    c.nFF = 160;
    c.nHead = 4;
    c.nHeadKV = 2;
    c.nLayer = 2;
    c.nCtx = 64;
    c.weightType = type;
    c.embeddingType = type;  // the packed lookup of every type
    c.tiedOutput = std::get<1>(GetParam());
    c.seed = 11;
    std::string gguf = tai_test::TempPath(".gguf");
    ASSERT_EQ(tinyaiWriteSyntheticModel(&c, gguf.c_str()), TINYAI_OK) << tinyaiLastErrorMessage();
    std::string v2 = tai_test::TempPath(".tmai");
    ASSERT_EQ(tinyaiConvertModel(gguf.c_str(), v2.c_str()), TINYAI_OK) << tinyaiLastErrorMessage();
    ASSERT_EQ(FileVersion(v2), 2u);
    std::string v1 = ConvertV1(gguf);
    ASSERT_EQ(FileVersion(v1), 1u);

    for (const char *cpu : {"scalar", "avx2", "avx512"}) {
        if (std::string(tinyaiCpuVariants()).find(cpu) == std::string::npos) continue;
        SCOPED_TRACE(cpu);
        ModelPtr g = Load(gguf, cpu, 2), p = Load(v2, cpu, 2), r = Load(v1, cpu, 2);
        ASSERT_TRUE(g && p && r);
        TinyAIModelInfo gi, pi, ri;
        tinyaiGetModelInfo(g.get(), &gi);
        tinyaiGetModelInfo(p.get(), &pi);
        tinyaiGetModelInfo(r.get(), &ri);
        // Row-major files are read into staging buffers and repacked; the
        // packed file's layers are read straight into the cache.
        EXPECT_EQ(gi.packedBytes, pi.packedBytes);
        TinyAIMemoryInfo gm, pm, rm;
        tinyaiGetMemoryInfo(g.get(), &gm);
        tinyaiGetMemoryInfo(p.get(), &pm);
        tinyaiGetMemoryInfo(r.get(), &rm);
        EXPECT_GT(gm.stagingBytes, 0u);
        EXPECT_GT(rm.stagingBytes, 0u);
        EXPECT_EQ(pm.stagingBytes, 0u);
        EXPECT_STREQ(pi.fileFormat, "tmai");
        std::vector<float> want = Logits(g.get(), kTokens, 8);
        ExpectSameBits(Logits(p.get(), kTokens, 8), want);
        ExpectSameBits(Logits(r.get(), kTokens, 8), want);
    }
    std::remove(gguf.c_str());
    std::remove(v1.c_str());
    std::remove(v2.c_str());
}

INSTANTIATE_TEST_SUITE_P(AllTypes, PackedFile,
                         ::testing::Combine(::testing::Values("F32", "F16", "Q8_0", "Q4_0", "Q4_1"),
                                            ::testing::Bool()),
                         [](const ::testing::TestParamInfo<PackedFile::ParamType> &i) {
                             return std::string(std::get<0>(i.param)) +
                                    (std::get<1>(i.param) ? "_tied" : "_untied");
                         });

TEST(PackedFileReal, LogitsEqualTheGgufBitForBit) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    std::string v2 = tai_test::TempPath(".tmai");
    ASSERT_EQ(tinyaiConvertModel(path.c_str(), v2.c_str()), TINYAI_OK) << tinyaiLastErrorMessage();
    ModelPtr g = Load(path, nullptr, 2), p = Load(v2, nullptr, 2);
    ASSERT_TRUE(g && p);
    TinyAIMemoryInfo pm;
    tinyaiGetMemoryInfo(p.get(), &pm);
    EXPECT_EQ(pm.stagingBytes, 0u);
    int32_t ids[64];
    size_t n = 0;
    ASSERT_EQ(tinyaiTokenize(g.get(), "The capital of France is", false, false, ids, 64, &n),
              TINYAI_OK);
    ASSERT_GE(n, 3u);
    std::vector<int32_t> toks(ids, ids + n);
    toks.push_back(12);
    toks.push_back(4000);
    ExpectSameBits(Logits(p.get(), toks, n), Logits(g.get(), toks, n));
    std::remove(v2.c_str());
}

}  // namespace
