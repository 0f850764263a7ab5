// Malformed and unusual GGUF input: each case expects a status and a message
// naming the file and the problem, never a crash (run under ASan/UBSan too).
// Also the layer table rules and the kv getters on hand-built files.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstring>
#include <string>
#include <vector>

#include "runtime/format/model_file.h"
#include "runtime/format/synth.h"
#include "tests/common/test_paths.h"
#include "tests/format/format_test_util.h"

namespace {

using tai_test::Bytes;
using tai_test::BuildGguf;
using tai_test::GgufSpec;
using tai_test::Opened;
using tai_test::OpenInto;
using tai_test::TInfo;

// Writes `bytes` to a fresh file, opens it, and returns the result.
void OpenBytes(Opened *o, const std::string &bytes, std::string *path_out = nullptr) {
    std::string path = tai_test::TempPath(".gguf");
    tai_test::WriteFile(path, bytes);
    OpenInto(o, path);
    if (path_out) *path_out = path;
}

#define EXPECT_FAILS(o, status, needle)                                        \
    do {                                                                       \
        EXPECT_EQ((o).st, (status)) << (o).msg;                                \
        EXPECT_EQ((o).mf, nullptr);                                            \
        EXPECT_NE((o).msg.find(needle), std::string::npos) << (o).msg;         \
        EXPECT_NE((o).msg.find(".gguf: "), std::string::npos) << (o).msg;      \
        EXPECT_EQ((o).msg.find('\n'), std::string::npos) << (o).msg;           \
    } while (0)

TEST(GgufBad, ValidBaselineOpens) {
    Opened o;
    OpenBytes(&o, BuildGguf(GgufSpec()));
    ASSERT_EQ(o.st, TINYAI_OK) << o.msg;
    EXPECT_EQ(o.mf->n_tensors, 2);
    EXPECT_EQ(o.mf->n_layers, 2);  // no blocks: embedding + head
    EXPECT_EQ(o.mf->layers[0].n_tensors, 1);
    EXPECT_EQ(o.mf->layers[1].n_tensors, 1);
    EXPECT_EQ(o.mf->tensors[1].size, 128u);
}

TEST(GgufBad, NonexistentPath) {
    Opened o;
    std::string path = tai_test::TempPath("_missing.gguf");
    OpenInto(&o, path);
    EXPECT_FAILS(o, TINYAI_ERR_IO, "No such file or directory");
    EXPECT_NE(o.msg.find(path), std::string::npos);
}

TEST(GgufBad, DirectoryIsNotAModel) {
    Opened o;
    std::string dir = tai_test::TempPath(".gguf");
    ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
    OpenInto(&o, dir);
    EXPECT_FAILS(o, TINYAI_ERR_IO, "not a regular file");
}

TEST(GgufBad, NullArguments) {
    tai_model_file *mf = reinterpret_cast<tai_model_file *>(1);
    EXPECT_EQ(tai_model_file_open(nullptr, false, &mf), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(mf, nullptr);
    EXPECT_EQ(tai_model_file_open("x", false, nullptr), TINYAI_ERR_INVALID_ARG);
    tai_model_file_close(nullptr);
}

TEST(GgufBad, WrongMagic) {
    std::string b = BuildGguf(GgufSpec());
    b[0] = 'X';
    Opened o;
    OpenBytes(&o, b);
    EXPECT_FAILS(o, TINYAI_ERR_FORMAT, "not a GGUF or .tmai file");
}

TEST(GgufBad, TinyFile) {
    Opened o;
    OpenBytes(&o, "GGU");
    EXPECT_FAILS(o, TINYAI_ERR_FORMAT, "truncated file");
}

TEST(GgufBad, Version1Rejected) {
    GgufSpec s;
    s.version = 1;
    Opened o;
    OpenBytes(&o, BuildGguf(s));
    EXPECT_FAILS(o, TINYAI_ERR_UNSUPPORTED, "GGUF version 1 is not supported");
}

TEST(GgufBad, FutureVersionAndBigEndian) {
    GgufSpec s;
    s.version = 4;
    Opened o;
    OpenBytes(&o, BuildGguf(s));
    EXPECT_FAILS(o, TINYAI_ERR_UNSUPPORTED, "version 4");
    s.version = 0x03000000;
    Opened o2;
    OpenBytes(&o2, BuildGguf(s));
    EXPECT_FAILS(o2, TINYAI_ERR_UNSUPPORTED, "big-endian");
}

TEST(GgufBad, Version2Accepted) {
    GgufSpec s;
    s.version = 2;
    Opened o;
    OpenBytes(&o, BuildGguf(s));
    ASSERT_EQ(o.st, TINYAI_OK) << o.msg;
    EXPECT_EQ(o.mf->version, 2u);
}

// A small synthetic model cut at every byte up to the end of its header and
// tables and at many points in the data: always a "truncated file" error.
TEST(GgufBad, TruncatedAtEveryBoundary) {
    tai_synth_config cfg = tai_synth_default_config();
    cfg.n_vocab = 262;
    cfg.n_embd = 32;
    cfg.n_ff = 32;
    cfg.n_head = 2;
    cfg.n_head_kv = 1;
    cfg.n_layer = 1;
    std::string path = tai_test::TempPath(".gguf");
    ASSERT_EQ(tai_synth_write(&cfg, path.c_str()), TINYAI_OK) << tinyaiLastErrorMessage();
    std::string full = tai_test::ReadFile(path);
    uint64_t data_start, data_end = 0;
    std::vector<uint64_t> boundaries;
    {
        Opened o;
        OpenInto(&o, path);
        ASSERT_EQ(o.st, TINYAI_OK) << o.msg;
        data_start = o.mf->tensors[0].offset;
        for (int64_t i = 0; i < o.mf->n_tensors; i++) {
            const tai_tensor *t = &o.mf->tensors[i];
            boundaries.push_back(t->offset);
            boundaries.push_back(t->offset + t->size - 1);
            if (t->offset + t->size > data_end) data_end = t->offset + t->size;
        }
    }
    std::vector<uint64_t> cuts;
    for (uint64_t c = 0; c < data_start; c++) cuts.push_back(c);
    for (uint64_t c = data_start; c < data_end; c += 97) cuts.push_back(c);
    for (uint64_t b : boundaries) cuts.push_back(b);
    std::string cut_path = tai_test::TempPath(".gguf");
    for (uint64_t c : cuts) {
        tai_test::WriteFile(cut_path, full.substr(0, c));
        Opened o;
        OpenInto(&o, cut_path);
        ASSERT_EQ(o.st, TINYAI_ERR_FORMAT) << "cut at " << c << ": " << o.msg;
        ASSERT_NE(o.msg.find("truncated file"), std::string::npos)
            << "cut at " << c << ": " << o.msg;
    }
    // Cut in the final padding after the last tensor: still a valid file.
    if (data_end < full.size()) {
        tai_test::WriteFile(cut_path, full.substr(0, data_end));
        Opened o;
        OpenInto(&o, cut_path);
        EXPECT_EQ(o.st, TINYAI_OK) << o.msg;
    }
}

TEST(GgufBad, TruncationMessageNamesWhat) {
    GgufSpec s;
    std::string b = BuildGguf(s);
    // Cut inside the second tensor info's name: after the header (24), the
    // kv, the first info (8 + 17 + 4 + 2 * 8 + 4 + 8 = 57) and the name length.
    size_t cut = 24 + s.kvs.size() + 57 + 8 + 5;
    Opened o;
    OpenBytes(&o, b.substr(0, cut));
    EXPECT_FAILS(o, TINYAI_ERR_FORMAT, "truncated file: tensor info 1 name ends at byte " +
                                           std::to_string(cut + 13) + " past end of file (" +
                                           std::to_string(cut) + " bytes)");
    // Cut right after the kvs: not even room for the tensor infos' minimum size.
    Opened o2;
    OpenBytes(&o2, b.substr(0, 24 + s.kvs.size() + 10));
    EXPECT_FAILS(o2, TINYAI_ERR_FORMAT, "truncated file: tensor infos (2 of them)");
}

TEST(GgufBad, TensorDataPastEof) {
    GgufSpec s;
    s.tensors[1].offset = 4096;
    Opened o;
    OpenBytes(&o, BuildGguf(s), nullptr);
    ASSERT_EQ(o.st, TINYAI_OK) << o.msg;  // the builder sized the data for it
    s.data_bytes = 600;
    Opened o2;
    OpenBytes(&o2, BuildGguf(s));
    EXPECT_FAILS(o2, TINYAI_ERR_FORMAT, "tensor 'output_norm.weight' data ends at byte");
    s.tensors[1].offset = (int64_t)(UINT64_MAX / 2 & ~31ull);  // offset + size overflow-safe
    Opened o3;
    OpenBytes(&o3, BuildGguf(s));
    EXPECT_FAILS(o3, TINYAI_ERR_FORMAT, "past end of file");
}

TEST(GgufBad, HugeOffsetDoesNotWrap) {
    GgufSpec s;
    s.data_bytes = 1024;
    s.tensors[1].offset = (int64_t)0x7FFFFFFFFFFFFFE0;
    std::string b = BuildGguf(s);
    // Patch the offset to the top of the 64-bit range (the builder takes int64).
    size_t pos = b.find("output_norm.weight") + 18 + 4 + 8 + 4;
    uint64_t off = 0xFFFFFFFFFFFFFFE0ull;
    memcpy(&b[pos], &off, 8);
    Opened o;
    OpenBytes(&o, b);
    EXPECT_FAILS(o, TINYAI_ERR_FORMAT, "past end of file");
}

TEST(GgufBad, MisalignedOffset) {
    GgufSpec s;
    s.tensors[1].offset = 132;
    Opened o;
    OpenBytes(&o, BuildGguf(s));
    EXPECT_FAILS(o, TINYAI_ERR_FORMAT, "offset 132 is not a multiple of the alignment 32");
}

TEST(GgufBad, AlignmentKvRespected) {
    GgufSpec s;
    s.n_kv = 2;
    s.kvs += Bytes().kv_u32("general.alignment", 64).b;
    s.align = 64;
    Opened o;
    OpenBytes(&o, BuildGguf(s));
    ASSERT_EQ(o.st, TINYAI_OK) << o.msg;
    EXPECT_EQ(o.mf->alignment, 64u);
    EXPECT_EQ(o.mf->tensors[0].offset % 64, 0u);
    EXPECT_EQ(o.mf->tensors[1].offset - o.mf->tensors[0].offset, 512u);
    // 32-aligned offset in a 64-aligned file is misaligned.
    s.tensors[1].offset = 544;
    Opened o2;
    OpenBytes(&o2, BuildGguf(s));
    EXPECT_FAILS(o2, TINYAI_ERR_FORMAT, "not a multiple of the alignment 64");
}

TEST(GgufBad, BadAlignmentValue) {
    for (uint32_t a : {0u, 3u, 48u}) {
        GgufSpec s;
        s.n_kv = 2;
        s.kvs += Bytes().kv_u32("general.alignment", a).b;
        Opened o;
        OpenBytes(&o, BuildGguf(s));
        EXPECT_FAILS(o, TINYAI_ERR_FORMAT, "general.alignment");
    }
    GgufSpec s;
    s.n_kv = 2;
    s.kvs += Bytes().kv_str("general.alignment", "32").b;
    Opened o;
    OpenBytes(&o, BuildGguf(s));
    EXPECT_FAILS(o, TINYAI_ERR_FORMAT, "general.alignment has type string");
}

TEST(GgufBad, AbsurdTensorCount) {
    GgufSpec s;
    s.n_tensors_override = 1ll << 40;
    Opened o;
    OpenBytes(&o, BuildGguf(s));
    EXPECT_FAILS(o, TINYAI_ERR_FORMAT, "absurd tensor count 1099511627776");
    // A merely too large count is found truncated, before allocating for it.
    s.n_tensors_override = 100000;
    Opened o2;
    OpenBytes(&o2, BuildGguf(s));
    EXPECT_FAILS(o2, TINYAI_ERR_FORMAT, "truncated file: tensor infos (100000 of them)");
}

TEST(GgufBad, AbsurdKvCount) {
    GgufSpec s;
    s.n_kv = ~0ull;
    Opened o;
    OpenBytes(&o, BuildGguf(s));
    EXPECT_FAILS(o, TINYAI_ERR_FORMAT, "absurd key/value count");
    s.n_kv = 5000;
    Opened o2;
    OpenBytes(&o2, BuildGguf(s));
    EXPECT_FAILS(o2, TINYAI_ERR_FORMAT, "truncated file");
}

TEST(GgufBad, HugeStringLengths) {
    GgufSpec s;
    s.kvs = Bytes().u64(0xFFFFFFFFFFFF0000ull).raw("general.architecture").b;
    Opened o;
    OpenBytes(&o, BuildGguf(s));
    EXPECT_FAILS(o, TINYAI_ERR_FORMAT, "kv 0 key has absurd length 18446744073709486080");
    s.kvs = Bytes().str("general.architecture").u32(8).u64(1ull << 50).raw("llama").b;
    Opened o2;
    OpenBytes(&o2, BuildGguf(s));
    EXPECT_FAILS(o2, TINYAI_ERR_FORMAT, "kv 0 value has absurd length");
    // A tensor name.
    GgufSpec t;
    std::string b = BuildGguf(t);
    size_t pos = b.find("token_embd.weight") - 8;
    uint64_t len = ~0ull;
    memcpy(&b[pos], &len, 8);
    Opened o3;
    OpenBytes(&o3, b);
    EXPECT_FAILS(o3, TINYAI_ERR_FORMAT, "tensor info 0 name has absurd length");
}

TEST(GgufBad, ArraysOfEveryTypeAndBadArrays) {
    Bytes kv;
    kv.str("a.u8").u32(9).u32(0).u64(3).u8(1).u8(2).u8(3);
    kv.str("a.i16").u32(9).u32(3).u64(2).raw(std::string("\xff\xff\x02\x00", 4));
    kv.str("a.f64").u32(9).u32(12).u64(1).raw(std::string("\0\0\0\0\0\0\xf0\x3f", 8));
    kv.str("a.str").u32(9).u32(8).u64(3).str("x").str("").str("hello");
    kv.str("a.empty").u32(9).u32(4).u64(0);
    kv.str("s.i8").u32(1).u8(0xFE);
    kv.str("s.u64").u32(10).u64(1ull << 40);
    kv.str("s.i64").u32(11).u64((uint64_t)-5);
    kv.str("s.f64").u32(12).raw(std::string("\0\0\0\0\0\0\x04\x40", 8));  // 2.5
    kv.str("s.bool").u32(7).u8(1);
    kv.str("s.u16").u32(2).raw(std::string("\x34\x12", 2));
    GgufSpec s;
    s.n_kv = 11;
    s.kvs = kv.b;
    Opened o;
    OpenBytes(&o, BuildGguf(s));
    ASSERT_EQ(o.st, TINYAI_OK) << o.msg;
    const void *d;
    uint64_t n;
    ASSERT_EQ(tai_kv_get_arr(o.mf, "a.u8", TAI_KV_U8, &d, &n), TINYAI_OK);
    EXPECT_EQ(n, 3u);
    EXPECT_EQ(static_cast<const uint8_t *>(d)[2], 3);
    ASSERT_EQ(tai_kv_get_arr(o.mf, "a.i16", TAI_KV_I16, &d, &n), TINYAI_OK);
    EXPECT_EQ(static_cast<const int16_t *>(d)[0], -1);
    EXPECT_EQ(static_cast<const int16_t *>(d)[1], 2);
    ASSERT_EQ(tai_kv_get_arr(o.mf, "a.f64", TAI_KV_F64, &d, &n), TINYAI_OK);
    EXPECT_EQ(static_cast<const double *>(d)[0], 1.0);
    ASSERT_EQ(tai_kv_get_arr(o.mf, "a.str", TAI_KV_STRING, &d, &n), TINYAI_OK);
    ASSERT_EQ(n, 3u);
    EXPECT_STREQ(static_cast<const tai_str *>(d)[0].str, "x");
    EXPECT_EQ(static_cast<const tai_str *>(d)[1].len, 0u);
    EXPECT_STREQ(static_cast<const tai_str *>(d)[2].str, "hello");
    ASSERT_EQ(tai_kv_get_arr(o.mf, "a.empty", TAI_KV_U32, &d, &n), TINYAI_OK);
    EXPECT_EQ(n, 0u);
    const tai_kv *kv_i8 = tai_model_file_find_kv(o.mf, "s.i8");
    ASSERT_NE(kv_i8, nullptr);
    EXPECT_EQ(kv_i8->v.i64, -2);
    uint32_t u;
    EXPECT_EQ(tai_kv_get_u32(o.mf, "s.u16", &u), TINYAI_OK);
    EXPECT_EQ(u, 0x1234u);
    EXPECT_EQ(tai_kv_get_u32(o.mf, "s.u64", &u), TINYAI_ERR_FORMAT);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("does not fit in u32"), std::string::npos);
    EXPECT_EQ(tai_kv_get_u32(o.mf, "s.i64", &u), TINYAI_ERR_FORMAT);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("-5"), std::string::npos)
        << tinyaiLastErrorMessage();
    float f;
    EXPECT_EQ(tai_kv_get_f32(o.mf, "s.f64", &f), TINYAI_OK);
    EXPECT_EQ(f, 2.5f);
    EXPECT_EQ(tai_kv_get_f32(o.mf, "s.u16", &f), TINYAI_ERR_FORMAT);
    bool bv = false;
    EXPECT_EQ(tai_kv_get_bool(o.mf, "s.bool", &bv), TINYAI_OK);
    EXPECT_TRUE(bv);
    const char *str;
    EXPECT_EQ(tai_kv_get_str(o.mf, "no.such.key", &str), TINYAI_ERR_FORMAT);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("key 'no.such.key' not found"),
              std::string::npos);
    EXPECT_EQ(tai_kv_get_str(o.mf, "a.str", &str), TINYAI_ERR_FORMAT);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("'a.str' is an array of string"),
              std::string::npos) << tinyaiLastErrorMessage();
    EXPECT_EQ(tai_model_file_find_kv(o.mf, "general.architecture"), nullptr);
}

TEST(GgufBad, NestedArrayRejected) {
    GgufSpec s;
    s.kvs = Bytes().str("nested").u32(9).u32(9).u64(1).u32(4).u64(1).u32(7).b;
    Opened o;
    OpenBytes(&o, BuildGguf(s));
    EXPECT_FAILS(o, TINYAI_ERR_UNSUPPORTED, "kv 0 ('nested') is a nested array");
}

TEST(GgufBad, InvalidValueTypes) {
    GgufSpec s;
    s.kvs = Bytes().str("weird").u32(13).u32(0).b;
    Opened o;
    OpenBytes(&o, BuildGguf(s));
    EXPECT_FAILS(o, TINYAI_ERR_FORMAT, "kv 0 ('weird') has invalid value type 13");
    s.kvs = Bytes().str("weird").u32(9).u32(77).u64(0).b;
    Opened o2;
    OpenBytes(&o2, BuildGguf(s));
    EXPECT_FAILS(o2, TINYAI_ERR_FORMAT, "invalid element type 77");
}

TEST(GgufBad, DuplicateKey) {
    GgufSpec s;
    s.n_kv = 3;
    s.kvs += Bytes().kv_u32("x.y", 1).kv_str("general.architecture", "again").b;
    Opened o;
    OpenBytes(&o, BuildGguf(s));
    EXPECT_FAILS(o, TINYAI_ERR_FORMAT, "duplicate key 'general.architecture' (keys 0 and 2)");
}

TEST(GgufBad, EmptyOrNulKey) {
    GgufSpec s;
    s.kvs = Bytes().kv_u32("", 1).b;
    Opened o;
    OpenBytes(&o, BuildGguf(s));
    EXPECT_FAILS(o, TINYAI_ERR_FORMAT, "empty key");
    s.kvs = Bytes().kv_u32(std::string("a\0b", 3), 1).b;
    Opened o2;
    OpenBytes(&o2, BuildGguf(s));
    EXPECT_FAILS(o2, TINYAI_ERR_FORMAT, "NUL byte");
}

TEST(GgufBad, DuplicateTensorName) {
    GgufSpec s;
    s.tensors.push_back({"token_embd.weight", {32, 4}});
    Opened o;
    OpenBytes(&o, BuildGguf(s));
    EXPECT_FAILS(o, TINYAI_ERR_FORMAT,
                 "duplicate tensor name 'token_embd.weight' (tensor names 0 and 2)");
}

TEST(GgufBad, TensorNameWithNul) {
    GgufSpec s;
    s.tensors[0].name = std::string("tok\0en", 6);
    Opened o;
    OpenBytes(&o, BuildGguf(s));
    EXPECT_FAILS(o, TINYAI_ERR_FORMAT, "tensor info 0 name contains a NUL byte");
}

TEST(GgufBad, DimsProductOverflows) {
    GgufSpec s;
    s.tensors[0].ne = {1ll << 32, 1ll << 32};
    s.data_bytes = 1024;
    Opened o;
    OpenBytes(&o, BuildGguf(s));
    EXPECT_FAILS(o, TINYAI_ERR_FORMAT, "tensor 'token_embd.weight': the product of its "
                                       "dimensions overflows 64 bits");
    // Elements fit but bytes (x4 for F32) do not.
    s.tensors[0].ne = {1ll << 31, 1ll << 31};
    Opened o2;
    OpenBytes(&o2, BuildGguf(s));
    EXPECT_FAILS(o2, TINYAI_ERR_FORMAT, "overflows 64 bits");
}

TEST(GgufBad, BadDims) {
    GgufSpec s;
    s.tensors[0].ne = {32, 1, 1, 1, 1};
    Opened o;
    OpenBytes(&o, BuildGguf(s));
    EXPECT_FAILS(o, TINYAI_ERR_FORMAT, "tensor 'token_embd.weight' has 5 dimensions");
    s.tensors[0].ne = {};
    Opened o2;
    OpenBytes(&o2, BuildGguf(s));
    EXPECT_FAILS(o2, TINYAI_ERR_FORMAT, "has 0 dimensions");
    s.tensors[0].ne = {32, 0};
    Opened o3;
    OpenBytes(&o3, BuildGguf(s));
    EXPECT_FAILS(o3, TINYAI_ERR_FORMAT, "dimension 1 = 0 (must be positive)");
    s.tensors[0].ne = {-32, 2};
    s.data_bytes = 1024;
    Opened o4;
    OpenBytes(&o4, BuildGguf(s));
    EXPECT_FAILS(o4, TINYAI_ERR_FORMAT, "dimension 0 = -32");
}

TEST(GgufBad, UnsupportedTensorType) {
    GgufSpec s;
    s.tensors[0].type = 23;  // IQ4_XS
    s.data_bytes = 4096;
    Opened o;
    OpenBytes(&o, BuildGguf(s));
    EXPECT_FAILS(o, TINYAI_ERR_UNSUPPORTED, "tensor 'token_embd.weight' has type IQ4_XS (id 23)");
    s.tensors[0].type = 16;  // IQ2_XXS
    Opened o2;
    OpenBytes(&o2, BuildGguf(s));
    EXPECT_FAILS(o2, TINYAI_ERR_UNSUPPORTED, "IQ2_XXS");
    s.tensors[0].type = 4000;
    Opened o3;
    OpenBytes(&o3, BuildGguf(s));
    EXPECT_FAILS(o3, TINYAI_ERR_FORMAT, "invalid type id 4000");
}

TEST(GgufBad, RowNotMultipleOfBlock) {
    GgufSpec s;
    s.tensors[0].type = 8;  // Q8_0
    s.tensors[0].ne = {48, 2};
    s.data_bytes = 4096;
    Opened o;
    OpenBytes(&o, BuildGguf(s));
    EXPECT_FAILS(o, TINYAI_ERR_FORMAT, "row length 48, not a multiple of its block size 32");
}

TEST(GgufLayers, BlocksAndHead) {
    GgufSpec s;
    s.tensors = {
        {"token_embd.weight", {32, 4}},   {"blk.1.attn_norm.weight", {32}},
        {"blk.0.attn_norm.weight", {32}}, {"blk.0.attn_q.weight", {32, 32}},
        {"output_norm.weight", {32}},     {"rope_freqs.weight", {32}},
        {"blk.1.attn_q.weight", {32, 32}}, {"output.weight", {32, 4}},
    };
    Opened o;
    OpenBytes(&o, BuildGguf(s));
    ASSERT_EQ(o.st, TINYAI_OK) << o.msg;
    const tai_model_file *mf = o.mf;
    ASSERT_EQ(mf->n_layers, 4);
    int expect_layer[] = {0, 2, 1, 1, 3, 3, 2, 3};
    for (int i = 0; i < 8; i++) EXPECT_EQ(mf->tensors[i].layer, expect_layer[i]) << i;
    EXPECT_EQ(mf->layers[1].n_tensors, 2);
    EXPECT_EQ(mf->layers[2].n_tensors, 2);
    EXPECT_EQ(mf->layers[3].n_tensors, 3);
    // Layer 2 = blk.1: tensors 1 and 6, in file order; its span covers both
    // (and what lies between, since this file interleaves layers).
    EXPECT_EQ(mf->layer_tensors[mf->layers[2].first_tensor], 1);
    EXPECT_EQ(mf->layer_tensors[mf->layers[2].first_tensor + 1], 6);
    EXPECT_EQ(mf->layers[2].offset, mf->tensors[1].offset);
    EXPECT_EQ(mf->layers[2].size,
              mf->tensors[6].offset + mf->tensors[6].size - mf->tensors[1].offset);
    EXPECT_EQ(mf->layers[2].precision, 32);
}

TEST(GgufLayers, NonContiguousBlocks) {
    GgufSpec s;
    s.tensors = {{"blk.0.attn_norm.weight", {32}}, {"blk.2.attn_norm.weight", {32}},
                 {"blk.3.attn_norm.weight", {32}}, {"output_norm.weight", {32}}};
    Opened o;
    OpenBytes(&o, BuildGguf(s));
    EXPECT_FAILS(o, TINYAI_ERR_FORMAT, "no tensor for blk.1");
    s.tensors = {{"blk.999999.attn_norm.weight", {32}}};
    Opened o2;
    OpenBytes(&o2, BuildGguf(s));
    EXPECT_FAILS(o2, TINYAI_ERR_FORMAT, "not contiguous");
}

TEST(GgufLayers, NoTensors) {
    GgufSpec s;
    s.tensors = {};
    Opened o;
    OpenBytes(&o, BuildGguf(s));
    ASSERT_EQ(o.st, TINYAI_OK) << o.msg;
    EXPECT_EQ(o.mf->n_tensors, 0);
    ASSERT_EQ(o.mf->n_layers, 2);
    EXPECT_EQ(o.mf->layers[0].n_tensors, 0);
    EXPECT_EQ(o.mf->layers[0].size, 0u);
    EXPECT_EQ(o.mf->layers[1].precision, 0);
}

}  // namespace
