// Reading the real default model (SmolLM2-135M-Instruct Q4_1 GGUF). The
// expected values were taken from the `gguf` Python package's GGUFReader on
// the same file and are committed here as constants.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <string>

#include "runtime/format/model_file.h"
#include "tests/common/test_paths.h"
#include "tests/format/format_test_util.h"

namespace {

using tai_test::Opened;
using tai_test::OpenInto;

constexpr uint64_t kFileSize = 98362432;
constexpr int64_t kTensors = 272;
constexpr int64_t kKvs = 33;
constexpr uint64_t kDataOffset = 1785664;
constexpr uint64_t kSumOffsets = 17705856512ull;  // absolute offsets
constexpr uint64_t kSumBytes = 96576768;

struct Expected {
    const char *name;
    tai_type type;
    int n_dims;
    int64_t ne0, ne1;
    uint64_t offset, size;
};

const Expected kTensorsExpected[] = {
    {"token_embd.weight", TAI_TYPE_Q8_0, 2, 576, 49152, 1785664, 30081024},
    {"blk.0.attn_q.weight", TAI_TYPE_Q4_1, 2, 576, 576, 33806656, 207360},
    {"blk.0.attn_k.weight", TAI_TYPE_Q4_1, 2, 576, 192, 33530176, 69120},
    {"blk.29.ffn_down.weight", TAI_TYPE_Q4_1, 2, 1536, 576, 80630848, 552960},
    {"blk.17.ffn_norm.weight", TAI_TYPE_F32, 1, 576, 1, 53475904, 2304},
    {"output_norm.weight", TAI_TYPE_F32, 1, 576, 1, 98360128, 2304},
};

class RealModel : public ::testing::Test {
  protected:
    void SetUp() override {
        TAI_REQUIRE_DEFAULT_MODEL(path);
        OpenInto(&f_, path);
        ASSERT_EQ(f_.st, TINYAI_OK) << f_.msg;
        mf_ = f_.mf;
    }
    Opened f_;
    tai_model_file *mf_ = nullptr;
};

TEST_F(RealModel, HeaderAndCounts) {
    EXPECT_EQ(mf_->kind, TAI_FILE_GGUF);
    EXPECT_EQ(mf_->version, 3u);
    EXPECT_EQ(mf_->file_size, kFileSize);
    EXPECT_EQ(mf_->alignment, 32u);
    EXPECT_EQ(mf_->n_tensors, kTensors);
    EXPECT_EQ(mf_->n_kvs, kKvs);
}

TEST_F(RealModel, Hyperparameters) {
    const char *s = nullptr;
    ASSERT_EQ(tai_kv_get_str(mf_, "general.architecture", &s), TINYAI_OK);
    EXPECT_STREQ(s, "llama");
    ASSERT_EQ(tai_kv_get_str(mf_, "tokenizer.ggml.pre", &s), TINYAI_OK);
    EXPECT_STREQ(s, "smollm");
    std::map<std::string, uint32_t> u32 = {
        {"llama.block_count", 30},          {"llama.context_length", 8192},
        {"llama.embedding_length", 576},    {"llama.feed_forward_length", 1536},
        {"llama.attention.head_count", 9},  {"llama.attention.head_count_kv", 3},
        {"llama.vocab_size", 49152},        {"llama.rope.dimension_count", 64},
        {"general.file_type", 3},           {"tokenizer.ggml.bos_token_id", 1},
        {"tokenizer.ggml.eos_token_id", 2}, {"general.quantization_version", 2},
    };
    for (const auto &kv : u32) {
        uint32_t v = 0;
        ASSERT_EQ(tai_kv_get_u32(mf_, kv.first.c_str(), &v), TINYAI_OK) << kv.first;
        EXPECT_EQ(v, kv.second) << kv.first;
    }
    float f = 0;
    ASSERT_EQ(tai_kv_get_f32(mf_, "llama.rope.freq_base", &f), TINYAI_OK);
    EXPECT_EQ(f, 100000.0f);
    ASSERT_EQ(tai_kv_get_f32(mf_, "llama.attention.layer_norm_rms_epsilon", &f), TINYAI_OK);
    EXPECT_EQ(f, 9.999999747378752e-06f);
    bool b = true;
    ASSERT_EQ(tai_kv_get_bool(mf_, "tokenizer.ggml.add_bos_token", &b), TINYAI_OK);
    EXPECT_FALSE(b);
}

TEST_F(RealModel, TokenizerArrays) {
    const void *data;
    uint64_t n;
    ASSERT_EQ(tai_kv_get_arr(mf_, "tokenizer.ggml.tokens", TAI_KV_STRING, &data, &n), TINYAI_OK);
    ASSERT_EQ(n, 49152u);
    const tai_str *toks = static_cast<const tai_str *>(data);
    EXPECT_STREQ(toks[0].str, "<|endoftext|>");
    EXPECT_STREQ(toks[1].str, "<|im_start|>");
    EXPECT_STREQ(toks[256].str, "\xC4\xA0\xC4\xA0");  // "ĠĠ"
    EXPECT_STREQ(toks[257].str, "re");
    EXPECT_STREQ(toks[49151].str, "ectable");
    EXPECT_EQ(toks[257].len, 2u);
    ASSERT_EQ(tai_kv_get_arr(mf_, "tokenizer.ggml.merges", TAI_KV_STRING, &data, &n), TINYAI_OK);
    ASSERT_EQ(n, 48900u);
    const tai_str *merges = static_cast<const tai_str *>(data);
    EXPECT_STREQ(merges[0].str, "\xC4\xA0 t");
    EXPECT_STREQ(merges[48899].str, "ect able");
    ASSERT_EQ(tai_kv_get_arr(mf_, "tokenizer.ggml.token_type", TAI_KV_I32, &data, &n), TINYAI_OK);
    ASSERT_EQ(n, 49152u);
    const int32_t *types = static_cast<const int32_t *>(data);
    EXPECT_EQ(types[0], 3);
    EXPECT_EQ(types[16], 3);
    EXPECT_EQ(types[17], 1);
    // Wrong element type asked for: a format error naming the key.
    EXPECT_EQ(tai_kv_get_arr(mf_, "tokenizer.ggml.tokens", TAI_KV_I32, &data, &n),
              TINYAI_ERR_FORMAT);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("tokenizer.ggml.tokens"),
              std::string::npos);
}

TEST_F(RealModel, Tensors) {
    uint64_t sum_off = 0, sum_bytes = 0;
    std::map<int, int> by_type;
    for (int64_t i = 0; i < mf_->n_tensors; i++) {
        const tai_tensor *t = &mf_->tensors[i];
        sum_off += t->offset;
        sum_bytes += t->size;
        by_type[t->type]++;
        EXPECT_EQ(t->data, mf_->map + t->offset);
        EXPECT_EQ(t->offset % 32, 0u);
        EXPECT_LE(t->offset + t->size, mf_->file_size);
        EXPECT_EQ(tai_model_file_find_tensor(mf_, t->name), t);
    }
    EXPECT_EQ(sum_off, kSumOffsets);
    EXPECT_EQ(sum_bytes, kSumBytes);
    EXPECT_EQ(by_type[TAI_TYPE_Q4_1], 210);
    EXPECT_EQ(by_type[TAI_TYPE_F32], 61);
    EXPECT_EQ(by_type[TAI_TYPE_Q8_0], 1);
    EXPECT_EQ(mf_->tensors[0].offset, kDataOffset);
    EXPECT_STREQ(mf_->tensors[1].name, "blk.0.attn_norm.weight");
    EXPECT_STREQ(mf_->tensors[2].name, "blk.0.ffn_down.weight");
    for (const Expected &e : kTensorsExpected) {
        const tai_tensor *t = tai_model_file_find_tensor(mf_, e.name);
        ASSERT_NE(t, nullptr) << e.name;
        EXPECT_EQ(t->type, e.type) << e.name;
        EXPECT_EQ(t->n_dims, e.n_dims) << e.name;
        EXPECT_EQ(t->ne[0], e.ne0) << e.name;
        EXPECT_EQ(t->ne[1], e.ne1) << e.name;
        EXPECT_EQ(t->ne[2], 1) << e.name;
        EXPECT_EQ(t->ne[3], 1) << e.name;
        EXPECT_EQ(t->offset, e.offset) << e.name;
        EXPECT_EQ(t->size, e.size) << e.name;
    }
    EXPECT_EQ(tai_model_file_find_tensor(mf_, "output.weight"), nullptr);
    EXPECT_EQ(tai_model_file_find_tensor(mf_, "blk.30.attn_q.weight"), nullptr);
}

TEST_F(RealModel, LayerTable) {
    ASSERT_EQ(mf_->n_layers, 32);
    const tai_layer_entry *L = mf_->layers;
    EXPECT_EQ(L[0].offset, 1785664u);
    EXPECT_EQ(L[0].size, 30081024u);
    EXPECT_EQ(L[0].n_tensors, 1);
    EXPECT_EQ(L[0].precision, 8);
    EXPECT_EQ(L[1].offset, 31866688u);
    EXPECT_EQ(L[1].size, 2216448u);
    EXPECT_EQ(L[2].offset, 34083136u);
    EXPECT_EQ(L[30].offset, 80628544u);
    EXPECT_EQ(L[31].offset, 98360128u);
    EXPECT_EQ(L[31].size, 2304u);
    EXPECT_EQ(L[31].n_tensors, 1);
    EXPECT_EQ(L[31].precision, 32);
    int total = 0;
    for (int l = 0; l < mf_->n_layers; l++) {
        EXPECT_EQ(L[l].index, l);
        EXPECT_EQ(L[l].checksum, 0u);
        EXPECT_EQ(L[l].first_tensor, total);
        total += L[l].n_tensors;
        if (l >= 1 && l <= 30) {
            EXPECT_EQ(L[l].n_tensors, 9) << l;
            EXPECT_EQ(L[l].precision, 5) << l;  // Q4_1: 20 bytes per 32 weights
        }
        uint64_t prev = 0;
        for (int j = 0; j < L[l].n_tensors; j++) {
            const tai_tensor *t = &mf_->tensors[mf_->layer_tensors[L[l].first_tensor + j]];
            EXPECT_EQ(t->layer, l);
            EXPECT_GE(t->offset, prev);  // in file order within the layer
            EXPECT_GE(t->offset, L[l].offset);
            EXPECT_LE(t->offset + t->size, L[l].offset + L[l].size);
            prev = t->offset;
        }
        EXPECT_EQ(tai_model_file_verify_layer(mf_, l), TINYAI_OK);
    }
    EXPECT_EQ(total, kTensors);
    EXPECT_EQ(tai_model_file_verify_layer(mf_, 32), TINYAI_ERR_INVALID_ARG);
}

}  // namespace
