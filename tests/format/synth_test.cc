// The synthetic model writer: config validation, every matrix type read back
// with the right shapes and exactly the data that was generated,
// determinism, metadata and the tokenizer vocabulary.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "runtime/format/gguf_write.h"
#include "runtime/format/model_file.h"
#include "runtime/format/synth.h"
#include "tests/common/test_paths.h"
#include "tests/format/format_test_util.h"

namespace {

using tai_test::Opened;
using tai_test::OpenInto;

tai_synth_config Small() {
    tai_synth_config c = tai_synth_default_config();
    c.n_vocab = 300;
    c.n_embd = 64;
    c.n_ff = 96;
    c.n_head = 4;
    c.n_head_kv = 2;
    c.n_layer = 2;
    return c;
}

TEST(SynthConfig, DefaultIsValid) {
    tai_synth_config c = tai_synth_default_config();
    EXPECT_EQ(tai_synth_validate(&c), TINYAI_OK);
    EXPECT_EQ(c.n_embd % 32, 0);
    EXPECT_TRUE(tai_type_valid(c.matrix_type));
}

TEST(SynthConfig, RejectsBadFields) {
    struct Case {
        const char *field;
        void (*mutate)(tai_synth_config *);
    };
    const Case cases[] = {
        {"n_vocab", [](tai_synth_config *c) { c->n_vocab = 100; }},
        {"n_vocab", [](tai_synth_config *c) { c->n_vocab = TAI_SYNTH_MAX_VOCAB + 1; }},
        {"n_embd", [](tai_synth_config *c) { c->n_embd = 100; }},
        {"n_ff", [](tai_synth_config *c) { c->n_ff = 33; }},
        {"n_head", [](tai_synth_config *c) { c->n_head = 3; }},
        {"n_head", [](tai_synth_config *c) { c->n_head = 0; }},
        {"n_head_kv", [](tai_synth_config *c) { c->n_head_kv = 3; }},
        {"n_layer", [](tai_synth_config *c) { c->n_layer = 0; }},
        {"n_ctx", [](tai_synth_config *c) { c->n_ctx = 0; }},
        {"rope_freq_base", [](tai_synth_config *c) { c->rope_freq_base = 0; }},
        {"rms_eps", [](tai_synth_config *c) { c->rms_eps = -1; }},
        {"matrix_type", [](tai_synth_config *c) { c->matrix_type = (tai_type)5; }},
        {"embd_type", [](tai_synth_config *c) { c->embd_type = (tai_type)23; }},
    };
    for (const Case &k : cases) {
        tai_synth_config c = tai_synth_default_config();
        k.mutate(&c);
        EXPECT_EQ(tai_synth_validate(&c), TINYAI_ERR_INVALID_ARG) << k.field;
        EXPECT_NE(std::string(tinyaiLastErrorMessage()).find(k.field), std::string::npos)
            << tinyaiLastErrorMessage();
        std::string path = tai_test::TempPath(".gguf");
        EXPECT_EQ(tai_synth_write(&c, path.c_str()), TINYAI_ERR_INVALID_ARG);
        EXPECT_FALSE(tai_test::FileExists(path));
    }
}

// Every tensor's bytes equal the generated rows converted to its type.
void ExpectDataMatches(const tai_synth_config &cfg, const tai_model_file *mf) {
    std::vector<float> row;
    std::vector<uint8_t> q;
    for (int64_t i = 0; i < mf->n_tensors; i++) {
        const tai_tensor *t = &mf->tensors[i];
        int64_t ne0 = t->ne[0], rows = t->ne[1];
        size_t rb = tai_type_row_bytes(t->type, ne0);
        ASSERT_EQ(t->size, rb * (uint64_t)rows) << t->name;
        row.resize((size_t)ne0);
        q.resize(rb);
        for (int64_t r = 0; r < rows; r++) {
            tai_synth_row(&cfg, t->name, r, ne0, row.data());
            if (t->type == TAI_TYPE_F32) {
                memcpy(q.data(), row.data(), rb);
            } else if (t->type == TAI_TYPE_F16) {
                uint16_t *h = reinterpret_cast<uint16_t *>(q.data());
                for (int64_t k = 0; k < ne0; k++) h[k] = tai_fp32_to_fp16(row[(size_t)k]);
            } else {
                tai_quantize_row(t->type, row.data(), q.data(), ne0);
            }
            ASSERT_EQ(memcmp(q.data(), static_cast<const uint8_t *>(t->data) + r * rb, rb), 0)
                << t->name << " row " << r;
        }
    }
}

class SynthTypes : public ::testing::TestWithParam<tai_type> {};

TEST_P(SynthTypes, ReadsBackShapesAndData) {
    tai_synth_config cfg = Small();
    cfg.matrix_type = GetParam();
    cfg.embd_type = GetParam();
    cfg.tied_output = GetParam() != TAI_TYPE_Q8_0;  // both variants covered
    cfg.seed = 99 + (uint64_t)GetParam();
    std::string path = tai_test::TempPath(".gguf");
    ASSERT_EQ(tai_synth_write(&cfg, path.c_str()), TINYAI_OK) << tinyaiLastErrorMessage();
    EXPECT_FALSE(tai_test::FileExists(path + ".tmp"));
    Opened f;
    OpenInto(&f, path);
    ASSERT_EQ(f.st, TINYAI_OK) << f.msg;
    const tai_model_file *mf = f.mf;
    EXPECT_EQ(mf->version, 3u);
    EXPECT_EQ(mf->n_tensors, 2 + 9 * cfg.n_layer + (cfg.tied_output ? 0 : 1));
    EXPECT_EQ(mf->n_layers, cfg.n_layer + 2);
    EXPECT_EQ(mf->layers[cfg.n_layer + 1].n_tensors, cfg.tied_output ? 1 : 2);

    const int64_t kv = cfg.n_head_kv * (cfg.n_embd / cfg.n_head);
    struct Shape {
        const char *name;
        tai_type type;
        int64_t ne0, ne1;
    };
    tai_type m = cfg.matrix_type;
    const Shape shapes[] = {
        {"token_embd.weight", cfg.embd_type, cfg.n_embd, cfg.n_vocab},
        {"blk.1.attn_norm.weight", TAI_TYPE_F32, cfg.n_embd, 1},
        {"blk.1.attn_q.weight", m, cfg.n_embd, cfg.n_embd},
        {"blk.1.attn_k.weight", m, cfg.n_embd, kv},
        {"blk.1.attn_v.weight", m, cfg.n_embd, kv},
        {"blk.1.attn_output.weight", m, cfg.n_embd, cfg.n_embd},
        {"blk.0.ffn_norm.weight", TAI_TYPE_F32, cfg.n_embd, 1},
        {"blk.0.ffn_gate.weight", m, cfg.n_embd, cfg.n_ff},
        {"blk.0.ffn_up.weight", m, cfg.n_embd, cfg.n_ff},
        {"blk.0.ffn_down.weight", m, cfg.n_ff, cfg.n_embd},
        {"output_norm.weight", TAI_TYPE_F32, cfg.n_embd, 1},
    };
    for (const Shape &s : shapes) {
        const tai_tensor *t = tai_model_file_find_tensor(mf, s.name);
        ASSERT_NE(t, nullptr) << s.name;
        EXPECT_EQ(t->type, s.type) << s.name;
        EXPECT_EQ(t->n_dims, s.ne1 == 1 ? 1 : 2) << s.name;
        EXPECT_EQ(t->ne[0], s.ne0) << s.name;
        EXPECT_EQ(t->ne[1], s.ne1) << s.name;
    }
    const tai_tensor *out = tai_model_file_find_tensor(mf, "output.weight");
    if (cfg.tied_output) {
        EXPECT_EQ(out, nullptr);
    } else {
        ASSERT_NE(out, nullptr);
        EXPECT_EQ(out->ne[0], cfg.n_embd);
        EXPECT_EQ(out->ne[1], cfg.n_vocab);
        EXPECT_EQ(out->layer, cfg.n_layer + 1);
    }
    ExpectDataMatches(cfg, mf);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, SynthTypes,
                         ::testing::Values(TAI_TYPE_F32, TAI_TYPE_F16, TAI_TYPE_Q4_0,
                                           TAI_TYPE_Q4_1, TAI_TYPE_Q8_0),
                         [](const ::testing::TestParamInfo<tai_type> &i) {
                             return std::string(tai_type_name(i.param));
                         });

TEST(Synth, Metadata) {
    tai_synth_config cfg = Small();
    cfg.name = "tiny-test";
    cfg.n_ctx = 777;
    cfg.rope_freq_base = 50000.0f;
    cfg.rms_eps = 1e-6f;
    std::string path = tai_test::TempPath(".gguf");
    ASSERT_EQ(tai_synth_write(&cfg, path.c_str()), TINYAI_OK) << tinyaiLastErrorMessage();
    Opened f;
    OpenInto(&f, path);
    ASSERT_EQ(f.st, TINYAI_OK) << f.msg;
    const char *s;
    ASSERT_EQ(tai_kv_get_str(f.mf, "general.architecture", &s), TINYAI_OK);
    EXPECT_STREQ(s, "llama");
    ASSERT_EQ(tai_kv_get_str(f.mf, "general.name", &s), TINYAI_OK);
    EXPECT_STREQ(s, "tiny-test");
    ASSERT_EQ(tai_kv_get_str(f.mf, "tokenizer.ggml.model", &s), TINYAI_OK);
    EXPECT_STREQ(s, "gpt2");
    ASSERT_EQ(tai_kv_get_str(f.mf, "tokenizer.ggml.pre", &s), TINYAI_OK);
    EXPECT_STREQ(s, "gpt-2");  // llama.cpp refuses "gpt2"
    const struct {
        const char *key;
        uint32_t v;
    } u32[] = {
        {"llama.vocab_size", 300},         {"llama.context_length", 777},
        {"llama.embedding_length", 64},    {"llama.feed_forward_length", 96},
        {"llama.block_count", 2},          {"llama.attention.head_count", 4},
        {"llama.attention.head_count_kv", 2}, {"llama.rope.dimension_count", 16},
        {"general.alignment", 32},         {"tokenizer.ggml.bos_token_id", 256},
        {"tokenizer.ggml.eos_token_id", 256},
    };
    for (const auto &k : u32) {
        uint32_t v = 0;
        ASSERT_EQ(tai_kv_get_u32(f.mf, k.key, &v), TINYAI_OK) << k.key;
        EXPECT_EQ(v, k.v) << k.key;
    }
    float x;
    ASSERT_EQ(tai_kv_get_f32(f.mf, "llama.rope.freq_base", &x), TINYAI_OK);
    EXPECT_EQ(x, 50000.0f);
    ASSERT_EQ(tai_kv_get_f32(f.mf, "llama.attention.layer_norm_rms_epsilon", &x), TINYAI_OK);
    EXPECT_EQ(x, 1e-6f);
}

TEST(Synth, TokenizerVocabulary) {
    tai_synth_config cfg = Small();
    cfg.n_vocab = 259 + 729 + 50;  // reaches the second merge level
    std::string path = tai_test::TempPath(".gguf");
    ASSERT_EQ(tai_synth_write(&cfg, path.c_str()), TINYAI_OK) << tinyaiLastErrorMessage();
    Opened f;
    OpenInto(&f, path);
    ASSERT_EQ(f.st, TINYAI_OK) << f.msg;
    const void *d;
    uint64_t n, n_merges, n_types;
    ASSERT_EQ(tai_kv_get_arr(f.mf, "tokenizer.ggml.tokens", TAI_KV_STRING, &d, &n), TINYAI_OK);
    ASSERT_EQ(n, (uint64_t)cfg.n_vocab);
    const tai_str *tok = static_cast<const tai_str *>(d);
    ASSERT_EQ(tai_kv_get_arr(f.mf, "tokenizer.ggml.merges", TAI_KV_STRING, &d, &n_merges),
              TINYAI_OK);
    const tai_str *merges = static_cast<const tai_str *>(d);
    ASSERT_EQ(tai_kv_get_arr(f.mf, "tokenizer.ggml.token_type", TAI_KV_I32, &d, &n_types),
              TINYAI_OK);
    const int32_t *types = static_cast<const int32_t *>(d);
    ASSERT_EQ(n_types, n);
    ASSERT_EQ(n_merges, n - 259);

    // GPT-2 byte-level symbols in bytes_to_unicode order.
    EXPECT_STREQ(tok[0].str, "!");
    EXPECT_STREQ(tok[93].str, "~");
    EXPECT_STREQ(tok[94].str, "\xC2\xA1");   // ¡ (byte 0xA1)
    EXPECT_STREQ(tok[187].str, "\xC3\xBF");  // ÿ (byte 0xFF)
    EXPECT_STREQ(tok[188].str, "\xC4\x80");  // Ā (byte 0x00)
    EXPECT_STREQ(tok[220].str, "\xC4\xA0");  // Ġ (byte 0x20, space)
    EXPECT_STREQ(tok[255].str, "\xC5\x83");  // Ń (byte 0xAD)
    EXPECT_STREQ(tok[256].str, "<|endoftext|>");
    EXPECT_STREQ(tok[257].str, "<|im_start|>");
    EXPECT_STREQ(tok[258].str, "<|im_end|>");
    EXPECT_STREQ(tok[259].str, "\xC4\xA0\xC4\xA0");
    EXPECT_STREQ(tok[260].str, "\xC4\xA0" "e");
    EXPECT_STREQ(merges[0].str, "\xC4\xA0 \xC4\xA0");
    EXPECT_STREQ(merges[1].str, "\xC4\xA0 e");
    EXPECT_STREQ(tok[259 + 729].str, "\xC4\xA0\xC4\xA0\xC4\xA0\xC4\xA0");
    std::set<std::string> seen;
    for (uint64_t i = 0; i < n; i++) {
        EXPECT_EQ(types[i], i >= 256 && i <= 258 ? 3 : 1) << i;
        EXPECT_TRUE(seen.insert(tok[i].str).second) << "duplicate token " << tok[i].str;
    }
    std::set<std::string> byte_syms(seen.begin(), seen.end());
    for (uint64_t k = 0; k < n_merges; k++) {
        // Each merge is "left right" of existing normal tokens, creating token 259 + k.
        std::string m = merges[k].str;
        size_t sp = m.find(' ', 1);
        ASSERT_NE(sp, std::string::npos) << m;
        std::string l = m.substr(0, sp), r = m.substr(sp + 1);
        EXPECT_EQ(l + r, std::string(tok[259 + k].str)) << k;
        EXPECT_TRUE(seen.count(l) && seen.count(r)) << m;
    }
    uint32_t id;
    ASSERT_EQ(tai_kv_get_u32(f.mf, "tokenizer.ggml.bos_token_id", &id), TINYAI_OK);
    EXPECT_STREQ(tok[id].str, "<|endoftext|>");
}

TEST(Synth, DeterministicFromSeed) {
    tai_synth_config cfg = Small();
    std::string a = tai_test::TempPath(".gguf"), b = tai_test::TempPath(".gguf"),
                c = tai_test::TempPath(".gguf");
    ASSERT_EQ(tai_synth_write(&cfg, a.c_str()), TINYAI_OK);
    ASSERT_EQ(tai_synth_write(&cfg, b.c_str()), TINYAI_OK);
    cfg.seed++;
    ASSERT_EQ(tai_synth_write(&cfg, c.c_str()), TINYAI_OK);
    std::string fa = tai_test::ReadFile(a), fb = tai_test::ReadFile(b), fc = tai_test::ReadFile(c);
    EXPECT_FALSE(fa.empty());
    EXPECT_EQ(fa, fb);
    EXPECT_EQ(fa.size(), fc.size());
    EXPECT_NE(fa, fc);
}

TEST(Synth, ValueScales) {
    tai_synth_config cfg = tai_synth_default_config();
    std::vector<float> row(2048);
    auto stats = [&](const char *name, int64_t ne0, double *mean, double *sd) {
        double s = 0, s2 = 0;
        int64_t n = 0;
        for (int64_t r = 0; r < 64; r++) {
            tai_synth_row(&cfg, name, r, ne0, row.data());
            for (int64_t i = 0; i < ne0; i++) {
                s += row[(size_t)i];
                s2 += (double)row[(size_t)i] * row[(size_t)i];
                n++;
            }
        }
        *mean = s / (double)n;
        *sd = std::sqrt(s2 / (double)n - *mean * *mean);
    };
    double mean, sd;
    stats("blk.0.attn_q.weight", 2048, &mean, &sd);
    EXPECT_NEAR(mean, 0.0, 0.002);
    EXPECT_NEAR(sd, 1.0 / std::sqrt(2048.0), 0.002);
    stats("blk.0.attn_norm.weight", 2048, &mean, &sd);
    EXPECT_NEAR(mean, 1.0, 0.01);
    EXPECT_NEAR(sd, 0.05, 0.005);
    stats("blk.0.ffn_down.weight", 512, &mean, &sd);
    EXPECT_NEAR(sd, 1.0 / std::sqrt(512.0) / std::sqrt(2.0 * cfg.n_layer), 0.003);
    // Rows differ from each other and between tensors.
    std::vector<float> a(64), b(64);
    tai_synth_row(&cfg, "blk.0.attn_q.weight", 0, 64, a.data());
    tai_synth_row(&cfg, "blk.0.attn_q.weight", 1, 64, b.data());
    EXPECT_NE(a, b);
    tai_synth_row(&cfg, "blk.0.attn_k.weight", 0, 64, b.data());
    EXPECT_NE(a, b);
}

TEST(Synth, UnwritableDirectoryIsIoError) {
    tai_synth_config cfg = Small();
    std::string path = tai_test::TempPath("_no_such_dir/model.gguf");
    EXPECT_EQ(tai_synth_write(&cfg, path.c_str()), TINYAI_ERR_IO);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("No such file"), std::string::npos)
        << tinyaiLastErrorMessage();
}

}  // namespace

namespace {

TEST(GgufWriter, CustomAlignmentAndKvs) {
    std::string path = tai_test::TempPath(".gguf");
    tai_gguf_writer *w = nullptr;
    ASSERT_EQ(tai_gguf_writer_open(path.c_str(), 64, &w), TINYAI_OK);
    const int16_t arr[3] = {-1, 0, 7};
    const char *strs[2] = {"a", "bc"};
    ASSERT_EQ(tai_gguf_writer_add_str(w, "general.architecture", "llama"), TINYAI_OK);
    ASSERT_EQ(tai_gguf_writer_add_arr(w, "x.arr", TAI_KV_I16, arr, 3), TINYAI_OK);
    ASSERT_EQ(tai_gguf_writer_add_arr_str(w, "x.strs", strs, 2), TINYAI_OK);
    ASSERT_EQ(tai_gguf_writer_add_bool(w, "x.flag", true), TINYAI_OK);
    const int64_t ne0[1] = {8}, ne1[2] = {32, 3};
    ASSERT_EQ(tai_gguf_writer_add_tensor(w, "output_norm.weight", TAI_TYPE_F32, 1, ne0),
              TINYAI_OK);
    ASSERT_EQ(tai_gguf_writer_add_tensor(w, "token_embd.weight", TAI_TYPE_Q8_0, 2, ne1),
              TINYAI_OK);
    ASSERT_EQ(tai_gguf_writer_begin_data(w), TINYAI_OK);
    std::vector<uint8_t> a(32, 0xAB), b(3 * 34, 0x11);
    ASSERT_EQ(tai_gguf_writer_write(w, a.data(), 16), TINYAI_OK);  // two writes, one tensor
    ASSERT_EQ(tai_gguf_writer_write(w, a.data() + 16, 16), TINYAI_OK);
    ASSERT_EQ(tai_gguf_writer_write(w, b.data(), b.size()), TINYAI_OK);
    ASSERT_EQ(tai_gguf_writer_finish(w), TINYAI_OK) << tinyaiLastErrorMessage();
    Opened f;
    OpenInto(&f, path);
    ASSERT_EQ(f.st, TINYAI_OK) << f.msg;
    EXPECT_EQ(f.mf->alignment, 64u);
    uint32_t al;
    ASSERT_EQ(tai_kv_get_u32(f.mf, "general.alignment", &al), TINYAI_OK);
    EXPECT_EQ(al, 64u);
    const tai_tensor *t = tai_model_file_find_tensor(f.mf, "token_embd.weight");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->offset % 64, 0u);
    EXPECT_EQ(memcmp(t->data, b.data(), b.size()), 0);
    EXPECT_EQ(memcmp(f.mf->tensors[0].data, a.data(), 32), 0);
    const void *d;
    uint64_t n;
    ASSERT_EQ(tai_kv_get_arr(f.mf, "x.arr", TAI_KV_I16, &d, &n), TINYAI_OK);
    EXPECT_EQ(n, 3u);
    EXPECT_EQ(static_cast<const int16_t *>(d)[0], -1);
    ASSERT_EQ(tai_kv_get_arr(f.mf, "x.strs", TAI_KV_STRING, &d, &n), TINYAI_OK);
    EXPECT_STREQ(static_cast<const tai_str *>(d)[1].str, "bc");
}

TEST(GgufWriter, MisuseIsReportedAndLeavesNoFile) {
    std::string path = tai_test::TempPath(".gguf");
    tai_gguf_writer *w = nullptr;
    ASSERT_EQ(tai_gguf_writer_open(path.c_str(), 32, &w), TINYAI_OK);
    ASSERT_EQ(tai_gguf_writer_add_u32(w, "k", 1), TINYAI_OK);
    const int64_t ne[1] = {8};
    ASSERT_EQ(tai_gguf_writer_add_tensor(w, "t", TAI_TYPE_F32, 1, ne), TINYAI_OK);
    ASSERT_EQ(tai_gguf_writer_begin_data(w), TINYAI_OK);
    std::vector<uint8_t> buf(64);
    ASSERT_EQ(tai_gguf_writer_write(w, buf.data(), 16), TINYAI_OK);
    EXPECT_EQ(tai_gguf_writer_finish(w), TINYAI_ERR_INVALID_ARG);  // tensor incomplete
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("incomplete"), std::string::npos);
    EXPECT_FALSE(tai_test::FileExists(path));
    EXPECT_FALSE(tai_test::FileExists(path + ".tmp"));

    ASSERT_EQ(tai_gguf_writer_open(path.c_str(), 32, &w), TINYAI_OK);
    ASSERT_EQ(tai_gguf_writer_add_u32(w, "k", 1), TINYAI_OK);
    EXPECT_EQ(tai_gguf_writer_add_u32(w, "k", 2), TINYAI_ERR_INVALID_ARG);  // duplicate key
    tai_gguf_writer_abort(w);

    ASSERT_EQ(tai_gguf_writer_open(path.c_str(), 32, &w), TINYAI_OK);
    ASSERT_EQ(tai_gguf_writer_add_tensor(w, "t", TAI_TYPE_F32, 1, ne), TINYAI_OK);
    ASSERT_EQ(tai_gguf_writer_begin_data(w), TINYAI_OK);
    EXPECT_EQ(tai_gguf_writer_write(w, buf.data(), 64), TINYAI_ERR_INVALID_ARG);  // past end
    tai_gguf_writer_abort(w);
    EXPECT_FALSE(tai_test::FileExists(path + ".tmp"));
    EXPECT_EQ(tai_gguf_writer_open(path.c_str(), 48, &w), TINYAI_ERR_INVALID_ARG);
    tai_gguf_writer_abort(nullptr);
}

}  // namespace
