// Mixed precision (<tinyai/utils/quantize_mixed.h>): the converted file holds
// exactly the reference quantization of each source row in the type its group
// asks for; a packed (.tmai) source converts to its own types without a bit
// changed; tinyaiApplyMixedPrecision gives the model the file's weights (the
// same logits bit for bit) and its memory plan the new sizes; a tied head is
// untied only when the two types differ; raising precision and every bad
// argument are refused with the model unchanged and no file left behind.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include <tinyai/llm.h>
#include <tinyai/utils/quantize_mixed.h>

#include "core/types.h"
#include "runtime/format/model_file.h"
#include "tests/common/test_paths.h"
#include "tests/model/rewrite_test_util.h"

namespace {

using tai_test::FilePtr;
using tai_test::ModelPtr;

std::string Synth(const char *type, bool tied, int embd = 128, int ff = 384, int layers = 2,
                  int vocab = 512) {
    return tai_test::SynthModel(type, tied, embd, ff, layers, vocab, 11);
}
ModelPtr Load(const std::string &path, size_t limit = 0) { return tai_test::LoadModel(path, limit); }
FilePtr Open(const std::string &path) { return tai_test::OpenFile(path); }
std::vector<float> Logits(TinyAIModel *m) { return tai_test::LogitsAfter(m, 8); }

bool SameBits(const std::vector<float> &a, const std::vector<float> &b) {
    return a.size() == b.size() && !a.empty() &&
           memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

double RelRms(const std::vector<float> &a, const std::vector<float> &ref) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); i++) {
        num += (a[i] - ref[i]) * (a[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return std::sqrt(num / den);
}

TinyAIMixedPrecisionConfig SpecExample() {
    TinyAIMixedPrecisionConfig c;
    tinyaiInitMixedPrecisionConfig(&c);
    c.embeddingPrecision = TINYAI_PREC_INT8;
    c.attentionPrecision = TINYAI_PREC_INT4;
    c.ffnPrecision = TINYAI_PREC_INT4;
    c.outputPrecision = TINYAI_PREC_FP16;
    return c;
}

tai_type Expected(const std::string &name, const TinyAIMixedPrecisionConfig &c, tai_type src) {
    auto ty = [&](TinyAIPrecision p) {
        switch (p) {
        case TINYAI_PREC_FP32: return TAI_TYPE_F32;
        case TINYAI_PREC_FP16: return TAI_TYPE_F16;
        case TINYAI_PREC_INT8: return TAI_TYPE_Q8_0;
        case TINYAI_PREC_INT4:
            return c.int4Format == TINYAI_INT4_Q4_1 ? TAI_TYPE_Q4_1 : TAI_TYPE_Q4_0;
        default: return src;
        }
    };
    if (name == "token_embd.weight") return ty(c.embeddingPrecision);
    if (name == "output.weight") return ty(c.outputPrecision);
    for (const char *a : {"attn_q.", "attn_k.", "attn_v.", "attn_output."})
        if (name.find(a) != std::string::npos) return ty(c.attentionPrecision);
    for (const char *f : {"ffn_gate.", "ffn_up.", "ffn_down."})
        if (name.find(f) != std::string::npos) return ty(c.ffnPrecision);
    return src;
}

bool Exists(const std::string &p) {
    struct stat sb;
    return stat(p.c_str(), &sb) == 0;
}

TEST(QuantizeMixed, EachTensorIsTheReferenceQuantizationOfItsSourceRows) {
    for (int int4 : {0, 1}) {
        const std::string src = Synth("F32", false);
        TinyAIMixedPrecisionConfig c = SpecExample();
        c.int4Format = (TinyAIInt4Format)int4;
        const std::string out = tai_test::TempPath(".gguf");
        ASSERT_EQ(tinyaiQuantizeModelFile(src.c_str(), out.c_str(), &c, nullptr, nullptr),
                  TINYAI_OK)
            << tinyaiLastErrorMessage();
        FilePtr a = Open(src), b = Open(out);
        ASSERT_TRUE(a && b);
        ASSERT_EQ(a->n_tensors, b->n_tensors);
        for (int64_t i = 0; i < a->n_tensors; i++) {
            const tai_tensor *s = &a->tensors[i];
            const tai_tensor *d = tai_model_file_find_tensor(b.get(), s->name);
            ASSERT_NE(d, nullptr) << s->name;
            const tai_type want = Expected(s->name, c, s->type);
            ASSERT_EQ(d->type, want) << s->name;
            ASSERT_EQ(d->n_dims, s->n_dims);
            const size_t drow = tai_type_row_bytes(want, s->ne[0]);
            std::vector<uint8_t> ref(drow);
            const int64_t rows = s->size / tai_type_row_bytes(s->type, s->ne[0]);
            ASSERT_EQ(d->size, drow * rows) << s->name;
            for (int64_t r = 0; r < rows; r++) {
                tai_quantize_row(want, (const float *)s->data + r * s->ne[0], ref.data(), s->ne[0]);
                ASSERT_EQ(memcmp(ref.data(), (const uint8_t *)d->data + r * drow, drow), 0)
                    << s->name << " row " << r;
            }
        }
    }
}

// llama.cpp's Q4_K_M mix from an F32 source: Q4_K where rows are whole
// super-blocks (else Q5_0), Q6_K for the output and for attn_v / ffn_down
// of the "more bits" blocks (else Q8_0), each tensor the reference
// quantization of its rows; the model runs and stays close to its source.
TEST(QuantizeMixed, TheQ4KMMixIsLlamaCppsAndRuns) {
    const int layers = 8;
    const std::string src = Synth("F32", false, 256, 384, layers, 512);
    TinyAIMixedPrecisionConfig c;
    tinyaiInitMixedPrecisionConfig(&c);
    c.embeddingPrecision = c.attentionPrecision = c.ffnPrecision = TINYAI_PREC_INT4;
    c.outputPrecision = TINYAI_PREC_INT6;
    c.int4Format = TINYAI_INT4_Q4_K;
    c.useMoreBits = 1;
    const std::string out = tai_test::TempPath(".gguf");
    ASSERT_EQ(tinyaiQuantizeModelFile(src.c_str(), out.c_str(), &c, nullptr, nullptr), TINYAI_OK)
        << tinyaiLastErrorMessage();
    FilePtr a = Open(src), b = Open(out);
    ASSERT_TRUE(a && b);
    int q6 = 0;
    for (int64_t i = 0; i < a->n_tensors; i++) {
        const tai_tensor *s = &a->tensors[i];
        const tai_tensor *d = tai_model_file_find_tensor(b.get(), s->name);
        ASSERT_NE(d, nullptr) << s->name;
        const std::string name = s->name;
        tai_type want = s->type;
        if (s->n_dims == 2) {
            int blk = -1;
            if (name.rfind("blk.", 0) == 0) blk = std::atoi(name.c_str() + 4);
            const bool more = blk >= 0 && (blk < layers / 8 || blk >= 7 * layers / 8 ||
                                           (blk - layers / 8) % 3 == 2) &&
                              (name.find(".attn_v.") != std::string::npos ||
                               name.find(".ffn_down.") != std::string::npos);
            want = name == "output.weight" || more ? TAI_TYPE_Q6_K : TAI_TYPE_Q4_K;
            if (s->ne[0] % 256) want = want == TAI_TYPE_Q6_K ? TAI_TYPE_Q8_0 : TAI_TYPE_Q5_0;
        }
        ASSERT_EQ(d->type, want) << s->name;
        q6 += d->type == TAI_TYPE_Q6_K;
        const size_t drow = tai_type_row_bytes(want, s->ne[0]);
        std::vector<uint8_t> ref(drow);
        const int64_t rows = s->size / tai_type_row_bytes(s->type, s->ne[0]);
        for (int64_t r = 0; r < rows; r++) {
            tai_quantize_row(want, (const float *)s->data + r * s->ne[0], ref.data(), s->ne[0]);
            ASSERT_EQ(memcmp(ref.data(), (const uint8_t *)d->data + r * drow, drow), 0)
                << s->name << " row " << r;
        }
    }
    EXPECT_GE(q6, 2);  // the output and the attn_v of the more-bits blocks
    // closer to the F32 model than Q4_0 everywhere, at about the same size
    TinyAIMixedPrecisionConfig c0;
    tinyaiInitMixedPrecisionConfig(&c0);
    c0.embeddingPrecision = c0.attentionPrecision = c0.ffnPrecision = c0.outputPrecision =
        TINYAI_PREC_INT4;
    const std::string out0 = tai_test::TempPath(".gguf");
    ASSERT_EQ(tinyaiQuantizeModelFile(src.c_str(), out0.c_str(), &c0, nullptr, nullptr), TINYAI_OK);
    ModelPtr ms = Load(src), mq = Load(out), m0 = Load(out0);
    ASSERT_TRUE(ms && mq && m0);
    const std::vector<float> ref = Logits(ms.get());
    const double ek = RelRms(Logits(mq.get()), ref), e0 = RelRms(Logits(m0.get()), ref);
    EXPECT_GT(ek, 0.0);
    EXPECT_LT(ek, e0) << "Q4_K_M " << ek << " vs Q4_0 " << e0;
    std::remove(out.c_str());
    std::remove(out0.c_str());
}

TEST(QuantizeMixed, APackedSourceKeepsEveryBitOfItsOwnTypes) {
    for (const char *type : {"F32", "F16", "Q8_0", "Q4_0", "Q4_1"}) {
        const std::string gguf = Synth(type, true), tmai = tai_test::TempPath(".tmai");
        ASSERT_EQ(tinyaiConvertModel(gguf.c_str(), tmai.c_str()), TINYAI_OK);
        TinyAIMixedPrecisionConfig c;
        tinyaiInitMixedPrecisionConfig(&c);
        const std::string back = tai_test::TempPath(".gguf");
        ASSERT_EQ(tinyaiQuantizeModelFile(tmai.c_str(), back.c_str(), &c, nullptr, nullptr),
                  TINYAI_OK)
            << tinyaiLastErrorMessage();
        FilePtr a = Open(gguf), b = Open(back), t = Open(tmai);
        ASSERT_TRUE(a && b && t);
        int packed = 0;
        for (int64_t i = 0; i < t->n_tensors; i++) packed += t->tensors[i].layout == TAI_LAYOUT_PACKED;
        ASSERT_GT(packed, 0) << type << ": the .tmai should store its matrices packed";
        ASSERT_EQ(a->n_tensors, b->n_tensors);
        for (int64_t i = 0; i < a->n_tensors; i++) {
            const tai_tensor *s = &a->tensors[i];
            const tai_tensor *d = tai_model_file_find_tensor(b.get(), s->name);
            ASSERT_NE(d, nullptr);
            ASSERT_EQ(d->type, s->type);
            ASSERT_EQ(d->size, s->size);
            ASSERT_EQ(memcmp(d->data, s->data, s->size), 0) << type << " " << s->name;
        }
    }
}

TEST(QuantizeMixed, ApplyGivesTheModelTheFilesWeightsAndSizes) {
    const std::string src = Synth("F32", false);
    const TinyAIMixedPrecisionConfig c = SpecExample();
    const std::string gguf = tai_test::TempPath(".gguf"), tmai = tai_test::TempPath(".tmai");
    ASSERT_EQ(tinyaiQuantizeModelFile(src.c_str(), gguf.c_str(), &c, nullptr, nullptr), TINYAI_OK);
    ASSERT_EQ(tinyaiQuantizeModelFile(src.c_str(), tmai.c_str(), &c, nullptr, nullptr), TINYAI_OK)
        << tinyaiLastErrorMessage();
    EXPECT_FALSE(Exists(tmai + ".part.gguf"));

    ModelPtr m = Load(src);
    ASSERT_TRUE(m);
    const std::vector<float> before = Logits(m.get());
    TinyAIModelInfo i0, i1;
    tinyaiGetModelInfo(m.get(), &i0);
    ASSERT_EQ(tinyaiApplyMixedPrecision(m.get(), &c), TINYAI_OK) << tinyaiLastErrorMessage();
    tinyaiGetModelInfo(m.get(), &i1);
    const std::vector<float> after = Logits(m.get());

    ModelPtr g = Load(gguf), t = Load(tmai);
    ASSERT_TRUE(g && t);
    TinyAIModelInfo ig;
    tinyaiGetModelInfo(g.get(), &ig);
    EXPECT_EQ(i1.weightBytes, ig.weightBytes);
    EXPECT_LT(i1.weightBytes * 3, i0.weightBytes) << "F32 to mostly 4-bit";
    EXPECT_TRUE(SameBits(after, Logits(g.get())));
    EXPECT_TRUE(SameBits(after, Logits(t.get())));
    EXPECT_FALSE(SameBits(after, before));
    // 4-bit matrices of random weights: close to the F32 model, not equal
    const double err4 = RelRms(after, before);
    EXPECT_LT(err4, 0.5);

    // the whole model at 8 bits is closer still
    ModelPtr m8 = Load(src);
    TinyAIMixedPrecisionConfig c8;
    tinyaiInitMixedPrecisionConfig(&c8);
    c8.embeddingPrecision = c8.attentionPrecision = c8.ffnPrecision = c8.outputPrecision =
        TINYAI_PREC_INT8;
    ASSERT_EQ(tinyaiApplyMixedPrecision(m8.get(), &c8), TINYAI_OK) << tinyaiLastErrorMessage();
    // (8-bit steps are 16 times finer than 4-bit ones)
    const double err8 = RelRms(Logits(m8.get()), before);
    EXPECT_GT(err8, 0.0);
    EXPECT_LT(err8 * 4, err4) << err8 << " vs " << err4;
}

TEST(QuantizeMixed, TheMemoryPlanSeesTheNewSizes) {
    // F32: ~18 MiB of weights; the limit holds the 4-bit model whole but not
    // the F32 one
    const std::string src = Synth("F32", false, 256, 768, 4, 2048);
    const size_t limit = 12u << 20;
    ModelPtr m = Load(src, limit);
    ASSERT_TRUE(m);
    std::vector<float> l = Logits(m.get());
    ASSERT_FALSE(l.empty());
    TinyAIMemoryInfo a, b;
    tinyaiGetMemoryInfo(m.get(), &a);
    EXPECT_NE(a.mode, TINYAI_EXEC_NORMAL);
    TinyAIMixedPrecisionConfig c;
    tinyaiInitMixedPrecisionConfig(&c);
    c.attentionPrecision = c.ffnPrecision = c.embeddingPrecision = c.outputPrecision =
        TINYAI_PREC_INT4;
    ASSERT_EQ(tinyaiApplyMixedPrecision(m.get(), &c), TINYAI_OK) << tinyaiLastErrorMessage();
    ASSERT_FALSE(Logits(m.get()).empty());
    tinyaiGetMemoryInfo(m.get(), &b);
    EXPECT_EQ(b.memoryLimit, limit);
    EXPECT_EQ(b.mode, TINYAI_EXEC_NORMAL) << b.modeReason;
    EXPECT_LT(b.modelBytes * 5, a.modelBytes);
    EXPECT_LE(b.peakBytes, limit);
}

TEST(QuantizeMixed, ATiedHeadIsUntiedOnlyWhenTheTypesDiffer) {
    const std::string src = Synth("F32", true);
    TinyAIMixedPrecisionConfig c = SpecExample();  // embedding Q8_0, head F16
    const std::string out = tai_test::TempPath(".gguf");
    ASSERT_EQ(tinyaiQuantizeModelFile(src.c_str(), out.c_str(), &c, nullptr, nullptr), TINYAI_OK);
    FilePtr f = Open(out);
    ASSERT_TRUE(f);
    const tai_tensor *head = tai_model_file_find_tensor(f.get(), "output.weight");
    ASSERT_NE(head, nullptr);
    EXPECT_EQ(head->type, TAI_TYPE_F16);
    EXPECT_EQ(tai_model_file_find_tensor(f.get(), "token_embd.weight")->type, TAI_TYPE_Q8_0);
    ModelPtr m = Load(out);
    TinyAIModelInfo info;
    tinyaiGetModelInfo(m.get(), &info);
    EXPECT_FALSE(info.tiedOutput);

    c.outputPrecision = TINYAI_PREC_INT8;
    const std::string same = tai_test::TempPath(".gguf");
    ASSERT_EQ(tinyaiQuantizeModelFile(src.c_str(), same.c_str(), &c, nullptr, nullptr), TINYAI_OK);
    FilePtr g = Open(same);
    EXPECT_EQ(tai_model_file_find_tensor(g.get(), "output.weight"), nullptr);
    ModelPtr n = Load(same);
    tinyaiGetModelInfo(n.get(), &info);
    EXPECT_TRUE(info.tiedOutput);
}

TEST(QuantizeMixed, RaisingPrecisionIsRefusedAndChangesNothing) {
    const std::string src = Synth("Q4_0", false);
    ModelPtr m = Load(src);
    const std::vector<float> before = Logits(m.get());
    TinyAIMixedPrecisionConfig c;
    tinyaiInitMixedPrecisionConfig(&c);
    for (TinyAIPrecision p : {TINYAI_PREC_INT8, TINYAI_PREC_FP16, TINYAI_PREC_FP32}) {
        c.ffnPrecision = p;
        EXPECT_EQ(tinyaiApplyMixedPrecision(m.get(), &c), TINYAI_ERR_INVALID_ARG);
        EXPECT_NE(strstr(tinyaiLastErrorMessage(), "ffn_gate.weight is Q4_0"), nullptr)
            << tinyaiLastErrorMessage();
        const std::string out = tai_test::TempPath(".gguf");
        EXPECT_EQ(tinyaiQuantizeModelFile(src.c_str(), out.c_str(), &c, nullptr, nullptr),
                  TINYAI_ERR_INVALID_ARG);
        EXPECT_FALSE(Exists(out));
    }
    c.ffnPrecision = TINYAI_PREC_INT4;  // Q4_0 to Q4_1 raises too (5 bits)
    c.int4Format = TINYAI_INT4_Q4_1;
    EXPECT_EQ(tinyaiApplyMixedPrecision(m.get(), &c), TINYAI_ERR_INVALID_ARG);
    EXPECT_TRUE(SameBits(Logits(m.get()), before));
    c.int4Format = TINYAI_INT4_Q4_0;  // its own type: a copy
    EXPECT_EQ(tinyaiApplyMixedPrecision(m.get(), &c), TINYAI_OK) << tinyaiLastErrorMessage();
    EXPECT_TRUE(SameBits(Logits(m.get()), before));
}

TEST(QuantizeMixed, BadArgumentsAreRefusedWithTheModelUnchanged) {
    const std::string src = Synth("F32", false);
    ModelPtr m = Load(src);
    const std::vector<float> before = Logits(m.get());
    TinyAIMixedPrecisionConfig c = SpecExample();
    EXPECT_EQ(tinyaiApplyMixedPrecision(nullptr, &c), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tinyaiApplyMixedPrecision(m.get(), nullptr), TINYAI_ERR_INVALID_ARG);
    tinyaiInitMixedPrecisionConfig(nullptr);  // no crash

    TinyAIMixedPrecisionConfig bad = c;
    bad.attentionPrecision = (TinyAIPrecision)99;
    EXPECT_EQ(tinyaiApplyMixedPrecision(m.get(), &bad), TINYAI_ERR_INVALID_ARG);
    EXPECT_NE(strstr(tinyaiLastErrorMessage(), "attention precision"), nullptr);
    bad = c;
    bad.int4Format = (TinyAIInt4Format)7;
    EXPECT_EQ(tinyaiApplyMixedPrecision(m.get(), &bad), TINYAI_ERR_INVALID_ARG);
    bad = c;
    bad.threads = -1;
    EXPECT_EQ(tinyaiApplyMixedPrecision(m.get(), &bad), TINYAI_ERR_INVALID_ARG);
    bad = c;
    bad.tempDir = "/nonexistent-dir/for/tinyai";
    EXPECT_EQ(tinyaiApplyMixedPrecision(m.get(), &bad), TINYAI_ERR_IO);
    EXPECT_NE(strstr(tinyaiLastErrorMessage(), "/nonexistent-dir/for/tinyai"), nullptr);

    TinyAISession *s = nullptr;
    ASSERT_EQ(tinyaiCreateSession(m.get(), 64, &s), TINYAI_OK);
    EXPECT_EQ(tinyaiApplyMixedPrecision(m.get(), &c), TINYAI_ERR_INVALID_ARG);
    EXPECT_NE(strstr(tinyaiLastErrorMessage(), "live session"), nullptr);
    tinyaiFreeSession(s);
    EXPECT_TRUE(SameBits(Logits(m.get()), before));

    // files: missing arguments, the input as output, a corrupt input, an
    // output folder that does not exist
    EXPECT_EQ(tinyaiQuantizeModelFile(nullptr, "x.gguf", &c, nullptr, nullptr),
              TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tinyaiQuantizeModelFile(src.c_str(), "", &c, nullptr, nullptr),
              TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tinyaiQuantizeModelFile(src.c_str(), "x.gguf", nullptr, nullptr, nullptr),
              TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tinyaiQuantizeModelFile(src.c_str(), src.c_str(), &c, nullptr, nullptr),
              TINYAI_ERR_INVALID_ARG);
    const std::string cut = tai_test::TempPath(".gguf");
    {
        std::ifstream in(src, std::ios::binary);
        std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
        std::ofstream o(cut, std::ios::binary);
        o.write(bytes.data(), (std::streamsize)(bytes.size() * 2 / 3));
    }
    const std::string out = tai_test::TempPath(".gguf");
    EXPECT_EQ(tinyaiQuantizeModelFile(cut.c_str(), out.c_str(), &c, nullptr, nullptr),
              TINYAI_ERR_FORMAT);
    EXPECT_FALSE(Exists(out));
    EXPECT_EQ(tinyaiQuantizeModelFile(src.c_str(), "/nonexistent-dir/q.gguf", &c, nullptr,
                                      nullptr),
              TINYAI_ERR_IO);
    EXPECT_EQ(tinyaiQuantizeModelFile(src.c_str(), "/nonexistent-dir/q.tmai", &c, nullptr,
                                      nullptr),
              TINYAI_ERR_IO);
}

TEST(QuantizeMixed, ProgressCountsUpToTheTotal) {
    const std::string src = Synth("F32", true);
    TinyAIMixedPrecisionConfig c = SpecExample();
    struct P {
        uint64_t last = 0, total = 0;
        int calls = 0;
        bool monotonic = true;
    } p;
    const std::string out = tai_test::TempPath(".gguf");
    ASSERT_EQ(tinyaiQuantizeModelFile(
                  src.c_str(), out.c_str(), &c,
                  [](void *u, uint64_t done, uint64_t total) {
                      P *q = static_cast<P *>(u);
                      q->monotonic = q->monotonic && done >= q->last && done <= total;
                      q->last = done;
                      q->total = total;
                      q->calls++;
                  },
                  &p),
              TINYAI_OK);
    EXPECT_GT(p.calls, 2);
    EXPECT_TRUE(p.monotonic);
    EXPECT_EQ(p.last, p.total);
}

}  // namespace
