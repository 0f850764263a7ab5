// runtime/model: under a limit that does not hold the whole model, an untied
// embedding table is not streamed through the weight cache: each step reads
// the rows its columns need (a packed panel of 16 rows from a .tmai file, a
// row-major row from a GGUF file). The logits equal resident execution bit
// for bit, for every embedding type and a token in the last, partial panel;
// a decoding step reads a small part of the table; a corrupt table is caught
// by its checksum at the first lookup and every one after.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <tuple>
#include <vector>

#include <tinyai/llm.h>

#include "tests/common/test_paths.h"
#include "tests/model/memory_test_util.h"

namespace {

using tai_test::MemConfig;
using tai_test::ModelPtr;
using tai_test::SessionPtr;
using tai_test::TempFile;

constexpr int kCtx = 32;
constexpr int kVocab = 8001; // 500 panels of 16 rows and one of a single row

// A table far larger than a block, so that streaming it would show.
TinyAISynthConfig BigTable(const char *emb_type) {
    TinyAISynthConfig c = tinyaiCreateDefaultSynthConfig();
    c.nVocab = kVocab;
    c.nEmbd = 128;
    c.nFF = 256;
    c.nHead = 4;
    c.nHeadKV = 2;
    c.nLayer = 4;
    c.nCtx = 64;
    c.weightType = "Q8_0";
    c.embeddingType = emb_type;
    c.tiedOutput = false;
    c.seed = 5;
    return c;
}

struct Decoded {
    std::vector<std::vector<float>> logits;
    double read_per_token = 0;
    TinyAIExecutionMode mode = TINYAI_EXEC_ADAPTIVE;
    size_t cache = 0;
};

// Evaluates a prompt (the last token in the table's last panel), then
// decodes `gen` tokens; the bytes read per decoded token are counted after
// the prompt.
Decoded Decode(const std::string &path, size_t limit, TinyAIExecutionMode mode, int gen) {
    Decoded r;
    TinyAIModelConfig c = MemConfig(limit, mode);
    c.contextSize = kCtx;
    // Reads on demand only: a read-ahead that a later one evicts before its
    // use would be read twice, depending on timing, and the bytes per token
    // checked below must not depend on timing.
    c.prefetchWindow = -1;
    ModelPtr m = tai_test::LoadModel(path, c);
    EXPECT_TRUE(m) << tinyaiLastErrorMessage();
    if (!m) return r;
    SessionPtr s = tai_test::NewSession(m.get(), kCtx);
    if (!s) return r;
    const int32_t prompt[4] = {1, 17, 1999, kVocab - 1};
    EXPECT_EQ(tinyaiEval(s.get(), prompt, 4), TINYAI_OK) << tinyaiLastErrorMessage();
    tinyaiResetMemoryStats(m.get());
    for (int i = 0; i < gen; i++) {
        const float *l = tinyaiGetLogits(s.get());
        r.logits.emplace_back(l, l + kVocab);
        int32_t id = tai_test::ArgMax(l, kVocab);
        EXPECT_EQ(tinyaiEval(s.get(), &id, 1), TINYAI_OK) << tinyaiLastErrorMessage();
    }
    const TinyAIMemoryInfo mi = tai_test::MemInfo(m.get());
    r.read_per_token = (double)mi.bytesRead / gen;
    r.mode = mi.mode;
    r.cache = mi.cacheBytes;
    EXPECT_LE(mi.peakBytes, limit ? limit : mi.peakBytes);
    return r;
}

TinyAILayerInfo LayerInfo(const std::string &path, int l) {
    TinyAILayerInfo li{};
    TinyAIModelConfig c = MemConfig(1, TINYAI_EXEC_STREAMING); // no plan: nothing read
    ModelPtr m = tai_test::LoadModel(path, c);
    EXPECT_TRUE(m) << tinyaiLastErrorMessage();
    if (m) {
        EXPECT_EQ(tinyaiGetModelLayerInfo(m.get(), l, &li), TINYAI_OK);
    }
    return li;
}

class EmbeddingRows : public ::testing::TestWithParam<std::tuple<const char *, bool>> {};

TEST_P(EmbeddingRows, LogitsEqualResidentExecution) {
    const char *type = std::get<0>(GetParam());
    TempFile g(tai_test::WriteSynthModel(BigTable(type)));
    TempFile t(tai_test::ConvertToTmai(g.path));
    const std::string &path = std::get<1>(GetParam()) ? t.path : g.path;
    const int gen = 4;
    const Decoded want = Decode(path, 0, TINYAI_EXEC_NORMAL, gen);
    ASSERT_EQ(want.logits.size(), (size_t)gen);
    EXPECT_EQ(want.read_per_token, 0.0);

    const TinyAILayerInfo emb = LayerInfo(path, 0);
    ASSERT_GT(emb.size, 0u);
    size_t model = 0;
    for (int l = 0; l < 6; l++) model += LayerInfo(path, l).size;
    ASSERT_GT(emb.size, (model - emb.size) / 4) << "the table should be a large share";

    // streaming (the fewest layers resident), and memory-opt with a quarter
    // of the model beyond the least limit
    TinyAIModelConfig probe = MemConfig(4096, TINYAI_EXEC_MEMORY_OPT);
    probe.contextSize = kCtx;
    ModelPtr pm = tai_test::LoadModel(path, probe);
    ASSERT_TRUE(pm) << tinyaiLastErrorMessage();
    TinyAISession *none = nullptr;
    ASSERT_EQ(tinyaiCreateSession(pm.get(), kCtx, &none), TINYAI_ERR_RANGE);
    const size_t minimum = tai_test::MinimumFromMessage(tinyaiLastErrorMessage());
    ASSERT_GT(minimum, 0u) << tinyaiLastErrorMessage();
    pm.reset();
    for (auto [mode, limit] : {std::make_pair(TINYAI_EXEC_STREAMING, 2 * minimum),
                               std::make_pair(TINYAI_EXEC_MEMORY_OPT, minimum + model / 4)}) {
        SCOPED_TRACE(mode);
        const Decoded got = Decode(path, limit, mode, gen);
        ASSERT_EQ(got.logits.size(), want.logits.size());
        EXPECT_EQ(got.mode, mode);
        for (int i = 0; i < gen; i++) {
            size_t diff = 0;
            for (int v = 0; v < kVocab; v++) diff += got.logits[i][v] != want.logits[i][v];
            EXPECT_EQ(diff, 0u) << "step " << i;
        }
        // every layer but the table may be read each step; of the table,
        // one panel (or row) and its alignment
        EXPECT_GT(got.read_per_token, 0.0);
        EXPECT_LT(got.read_per_token, (double)(model - emb.size) + 64 * 1024)
            << "the embedding table was streamed";
    }
}

INSTANTIATE_TEST_SUITE_P(
    AllTypes, EmbeddingRows,
    ::testing::Combine(::testing::Values("F32", "F16", "Q8_0", "Q4_0", "Q4_1"),
                       ::testing::Bool()),
    [](const ::testing::TestParamInfo<std::tuple<const char *, bool>> &i) {
        return std::string(std::get<0>(i.param)) + (std::get<1>(i.param) ? "_tmai" : "_gguf");
    });

// One byte of the table flipped in a .tmai file: the first lookup fails with
// the checksum error naming the layer, and so does every later one; nothing
// is computed from the corrupt table.
TEST(EmbeddingRowsCorrupt, ChecksumCaughtAtTheFirstLookup) {
    TempFile g(tai_test::WriteSynthModel(BigTable("Q8_0")));
    TempFile t(tai_test::ConvertToTmai(g.path));
    const TinyAILayerInfo emb = LayerInfo(t.path, 0);
    ASSERT_GT(emb.size, 0u);
    {
        int fd = open(t.path.c_str(), O_RDWR);
        ASSERT_GE(fd, 0);
        unsigned char b = 0;
        const off_t at = (off_t)(emb.offset + emb.size / 2);
        ASSERT_EQ(pread(fd, &b, 1, at), 1);
        b ^= 0x40;
        ASSERT_EQ(pwrite(fd, &b, 1, at), 1);
        close(fd);
    }
    TinyAIModelConfig c = MemConfig(0, TINYAI_EXEC_STREAMING);
    c.memoryLimit = 64u << 20;
    c.contextSize = kCtx;
    ModelPtr m = tai_test::LoadModel(t.path, c);
    ASSERT_TRUE(m) << tinyaiLastErrorMessage();
    TinyAISession *raw = nullptr;
    ASSERT_EQ(tinyaiCreateSession(m.get(), kCtx, &raw), TINYAI_OK) << tinyaiLastErrorMessage();
    SessionPtr s(raw);
    const int32_t tok = 3;
    for (int i = 0; i < 2; i++) {
        EXPECT_EQ(tinyaiEval(s.get(), &tok, 1), TINYAI_ERR_CHECKSUM);
        const std::string msg = tinyaiLastErrorMessage();
        EXPECT_NE(msg.find("layer 0 (token embedding)"), std::string::npos) << msg;
        EXPECT_NE(msg.find("checksum mismatch"), std::string::npos) << msg;
    }
    EXPECT_EQ(tai_test::MemInfo(m.get()).mode, TINYAI_EXEC_STREAMING);
}

}  // namespace
