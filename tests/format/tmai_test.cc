// The .tmai format: round trips (synthetic models of every type and the real
// default model; version 2 with packed matrices and version 1 row-major),
// layout (4096-aligned, contiguous layers), checksums, and corrupted,
// truncated or inconsistent files. Also write failures.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstring>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "runtime/format/image.h"
#include "runtime/format/model_file.h"
#include "runtime/format/synth.h"
#include "tests/common/test_paths.h"
#include "tests/format/format_test_util.h"

namespace {

using tai_test::Opened;
using tai_test::OpenInto;

constexpr uint64_t kAlign = 4096;

uint64_t Rd64(const std::string &b, size_t at) {
    uint64_t v;
    memcpy(&v, b.data() + at, 8);
    return v;
}
void Wr64(std::string *b, size_t at, uint64_t v) { memcpy(&(*b)[at], &v, 8); }
void Wr32(std::string *b, size_t at, uint32_t v) { memcpy(&(*b)[at], &v, 4); }

// End of the header and tables (layer table offset + size, header fields).
uint64_t MetaEnd(const std::string &b) { return Rd64(b, 96) + Rd64(b, 104); }

// Recomputes the header checksum after a deliberate edit (docs/FORMAT.md).
void Reseal(std::string *b) {
    XXH64_state_t *s = XXH64_createState();
    XXH64_reset(s, 0);
    XXH64_update(s, b->data(), 120);
    XXH64_update(s, b->data() + 128, MetaEnd(*b) - 128);
    Wr64(b, 120, XXH64_digest(s));
    XXH64_freeState(s);
}

bool KvEqual(const tai_kv &a, const tai_kv &b) {
    if (strcmp(a.key, b.key) != 0 || a.type != b.type) return false;
    switch (a.type) {
    case TAI_KV_STRING:
        return a.v.str.len == b.v.str.len && memcmp(a.v.str.str, b.v.str.str, a.v.str.len) == 0;
    case TAI_KV_ARRAY: {
        if (a.v.arr.type != b.v.arr.type || a.v.arr.n != b.v.arr.n) return false;
        if (a.v.arr.type == TAI_KV_STRING) {
            const tai_str *x = static_cast<const tai_str *>(a.v.arr.data);
            const tai_str *y = static_cast<const tai_str *>(b.v.arr.data);
            for (uint64_t i = 0; i < a.v.arr.n; i++)
                if (x[i].len != y[i].len || memcmp(x[i].str, y[i].str, x[i].len) != 0) return false;
            return true;
        }
        const int t = a.v.arr.type;
        size_t es = t == TAI_KV_U8 || t == TAI_KV_I8 || t == TAI_KV_BOOL ? 1
                    : t == TAI_KV_U16 || t == TAI_KV_I16                 ? 2
                    : t == TAI_KV_U64 || t == TAI_KV_I64 || t == TAI_KV_F64 ? 8
                                                                           : 4;
        return memcmp(a.v.arr.data, b.v.arr.data, es * a.v.arr.n) == 0;
    }
    case TAI_KV_F32:
    case TAI_KV_F64: return a.v.f64 == b.v.f64;
    default: return a.v.u64 == b.v.u64;  // same bits for the signed types
    }
}

// Offset of the fixed part (type, n_dims, ne, offset, size, layer, layout)
// of tensor table entry i: entries are a u64 name length, the name, 64 bytes.
uint64_t TensorEntry(const std::string &b, int i) {
    uint64_t at = Rd64(b, 80);
    for (int k = 0; k < i; k++) at += 8 + Rd64(b, at) + 64;
    return at + 8 + Rd64(b, at);
}

// Row-major W (rows x n of type t) packed whole, as a string of bytes.
std::string Packed(tai_type t, const void *w, int64_t rows, int64_t n) {
    size_t bytes = tai_pack_bytes(t, rows, n);
    void *p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    tai_pack_matrix(nullptr, t, w, rows, n, p);
    std::string s(static_cast<const char *>(p), bytes);
    std::free(p);
    return s;
}

// Checks that `t` (a .tmai of the given version) holds exactly the metadata
// and tensors of `src` (row-major) and that its layout and checksums are as
// docs/FORMAT.md says: in version 2 every 2-D tensor packed and every layer
// stored as its layer image.
void ExpectSameModel(const tai_model_file *src, const tai_model_file *t, uint32_t version = 2) {
    ASSERT_EQ(t->kind, TAI_FILE_TMAI);
    EXPECT_EQ(t->version, version);
    EXPECT_EQ(t->alignment, kAlign);
    ASSERT_EQ(t->n_kvs, src->n_kvs);
    for (int64_t i = 0; i < src->n_kvs; i++)
        EXPECT_TRUE(KvEqual(src->kvs[i], t->kvs[i])) << src->kvs[i].key;
    ASSERT_EQ(t->n_tensors, src->n_tensors);
    ASSERT_EQ(t->n_layers, src->n_layers);
    for (int64_t i = 0; i < src->n_tensors; i++) {
        const tai_tensor *a = &src->tensors[i];
        const tai_tensor *b = tai_model_file_find_tensor(t, a->name);
        ASSERT_NE(b, nullptr) << a->name;
        EXPECT_EQ(b->type, a->type);
        EXPECT_EQ(b->n_dims, a->n_dims);
        for (int d = 0; d < TAI_MAX_DIMS; d++) EXPECT_EQ(b->ne[d], a->ne[d]) << a->name;
        EXPECT_EQ(b->layer, a->layer);
        EXPECT_EQ(b->offset % 64, 0u) << a->name;
        EXPECT_EQ(b->data, t->map + b->offset);
        ASSERT_EQ(a->layout, TAI_LAYOUT_ROWS) << a->name;
        if (version == 2 && a->n_dims == 2) {
            EXPECT_EQ(b->layout, TAI_LAYOUT_PACKED) << a->name;
            ASSERT_EQ(b->size, tai_pack_bytes(a->type, a->ne[1], a->ne[0])) << a->name;
            ASSERT_EQ(std::string(static_cast<const char *>(b->data), b->size),
                      Packed(a->type, a->data, a->ne[1], a->ne[0]))
                << a->name;
        } else {
            EXPECT_EQ(b->layout, TAI_LAYOUT_ROWS) << a->name;
            EXPECT_EQ(b->size, a->size);
            ASSERT_EQ(memcmp(a->data, b->data, a->size), 0) << a->name;
        }
    }
    uint64_t prev_end = 0;
    int next_tensor = 0;
    for (int l = 0; l < t->n_layers; l++) {
        const tai_layer_entry &e = t->layers[l];
        EXPECT_EQ(e.index, l);
        EXPECT_EQ(e.offset % kAlign, 0u) << l;
        if (l > 0) {
            EXPECT_EQ(e.offset, (prev_end + kAlign - 1) / kAlign * kAlign) << l;
        }
        EXPECT_EQ(e.n_tensors, src->layers[l].n_tensors);
        EXPECT_EQ(e.precision, src->layers[l].precision);
        EXPECT_EQ(e.first_tensor, next_tensor);
        // Tensors of the layer are contiguous (64-byte padding only) and in layer order.
        uint64_t pos = e.offset;
        for (int j = 0; j < e.n_tensors; j++) {
            const tai_tensor *x = &t->tensors[t->layer_tensors[e.first_tensor + j]];
            EXPECT_EQ(x->layer, l);
            EXPECT_EQ(x->offset, (pos + 63) / 64 * 64);
            pos = x->offset + x->size;
        }
        EXPECT_EQ(e.offset + e.size, pos);
        EXPECT_NE(e.checksum, 0u);
        EXPECT_EQ(tai_model_file_verify_layer(t, l), TINYAI_OK) << tinyaiLastErrorMessage();
        if (version == 2) {
            EXPECT_TRUE(tai_layer_image_in_file(t, l)) << l;
        }
        next_tensor += e.n_tensors;
        prev_end = e.offset + e.size;
    }
    EXPECT_EQ(t->file_size % kAlign, 0u);
    EXPECT_EQ(t->file_size, (prev_end + kAlign - 1) / kAlign * kAlign);
}

std::string WriteSynth(tai_synth_config cfg) {
    std::string path = tai_test::TempPath(".gguf");
    EXPECT_EQ(tai_synth_write(&cfg, path.c_str()), TINYAI_OK) << tinyaiLastErrorMessage();
    return path;
}

// Converts a file to .tmai of the given version; returns the .tmai path.
std::string Convert(const std::string &src_path, uint32_t version = 2) {
    Opened src;
    OpenInto(&src, src_path);
    EXPECT_EQ(src.st, TINYAI_OK) << src.msg;
    if (src.st) return "";
    std::string out = tai_test::TempPath(".tmai");
    if (version == 2) {  // the default options
        EXPECT_EQ(tai_tmai_write(src.mf, out.c_str()), TINYAI_OK) << tinyaiLastErrorMessage();
    } else {
        tai_tmai_write_options o = tai_tmai_default_write_options();
        o.version = version;
        EXPECT_EQ(tai_tmai_write_with(src.mf, out.c_str(), &o), TINYAI_OK)
            << tinyaiLastErrorMessage();
    }
    EXPECT_FALSE(tai_test::FileExists(out + ".tmp"));
    return out;
}

class TmaiTypes : public ::testing::TestWithParam<tai_type> {};

// Widths that are whole blocks of every type (the K-quants': 256).
void WholeBlocks(tai_synth_config *cfg) {
    if (tai_type_block_elems(cfg->matrix_type) == 256 || tai_type_block_elems(cfg->embd_type) == 256) {
        cfg->n_embd = 256;
        cfg->n_ff = 512;
    }
}

TEST_P(TmaiTypes, RoundTripSynth) {
    tai_synth_config cfg = tai_synth_default_config();
    cfg.matrix_type = GetParam();
    cfg.tied_output = false;
    cfg.n_layer = 3;
    WholeBlocks(&cfg);
    std::string gguf = WriteSynth(cfg);
    std::string tmai = Convert(gguf);
    Opened a, b;
    OpenInto(&a, gguf);
    OpenInto(&b, tmai, /*verify=*/true);
    ASSERT_EQ(a.st, TINYAI_OK) << a.msg;
    ASSERT_EQ(b.st, TINYAI_OK) << b.msg;
    ExpectSameModel(a.mf, b.mf);
    // Converting the .tmai again gives the same bytes (packed tensors are
    // copied as they are).
    std::string again = Convert(tmai);
    EXPECT_EQ(tai_test::ReadFile(again), tai_test::ReadFile(tmai));
}

TEST_P(TmaiTypes, RoundTripVersion1) {
    tai_synth_config cfg = tai_synth_default_config();
    cfg.matrix_type = GetParam();
    cfg.embd_type = GetParam();
    cfg.n_layer = 2;
    WholeBlocks(&cfg);
    std::string gguf = WriteSynth(cfg);
    std::string v1 = Convert(gguf, 1);
    Opened a, b;
    OpenInto(&a, gguf);
    OpenInto(&b, v1, /*verify=*/true);
    ASSERT_EQ(a.st, TINYAI_OK) << a.msg;
    ASSERT_EQ(b.st, TINYAI_OK) << b.msg;
    ExpectSameModel(a.mf, b.mf, 1);
    EXPECT_EQ(tai_test::ReadFile(v1).substr(4, 4), std::string("\1\0\0\0", 4));
    // Version 1 -> 2 gives the bytes that GGUF -> 2 gives; version 1 -> 1
    // the same bytes again.
    EXPECT_EQ(tai_test::ReadFile(Convert(v1)), tai_test::ReadFile(Convert(gguf)));
    EXPECT_EQ(tai_test::ReadFile(Convert(v1, 1)), tai_test::ReadFile(v1));
}

INSTANTIATE_TEST_SUITE_P(AllTypes, TmaiTypes,
                         ::testing::Values(TAI_TYPE_F32, TAI_TYPE_F16, TAI_TYPE_Q4_0,
                                           TAI_TYPE_Q4_1, TAI_TYPE_Q8_0, TAI_TYPE_BF16,
                                           TAI_TYPE_Q5_0, TAI_TYPE_Q5_1, TAI_TYPE_IQ4_NL,
                                           TAI_TYPE_Q2_K, TAI_TYPE_Q3_K, TAI_TYPE_Q4_K,
                                           TAI_TYPE_Q5_K, TAI_TYPE_Q6_K, TAI_TYPE_Q8_K),
                         [](const ::testing::TestParamInfo<tai_type> &i) {
                             return std::string(tai_type_name(i.param));
                         });

TEST(Tmai, RoundTripRealModel) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    std::string tmai = Convert(path);
    Opened a, b;
    OpenInto(&a, path);
    OpenInto(&b, tmai, /*verify=*/true);
    ASSERT_EQ(a.st, TINYAI_OK) << a.msg;
    ASSERT_EQ(b.st, TINYAI_OK) << b.msg;
    ExpectSameModel(a.mf, b.mf);
    EXPECT_EQ(b.mf->n_layers, 32);
    // 49152 x 576 Q8_0: 3072 panels of 9 block pairs (1088 bytes each),
    // which happens to be the row-major size too.
    EXPECT_EQ(b.mf->layers[0].size, 30081024u);
    unlink(tmai.c_str());
}

TEST(TmaiWrite, Version1FromPackedTensorsIsRefused) {
    std::string v2 = Convert(WriteSynth(tai_synth_default_config()));
    Opened s;
    OpenInto(&s, v2);
    ASSERT_EQ(s.st, TINYAI_OK) << s.msg;
    tai_tmai_write_options o = tai_tmai_default_write_options();
    EXPECT_EQ(o.version, 2u);
    EXPECT_EQ(o.pool, nullptr);
    o.version = 1;
    std::string out = tai_test::TempPath(".tmai");
    EXPECT_EQ(tai_tmai_write_with(s.mf, out.c_str(), &o), TINYAI_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("is stored packed"), std::string::npos)
        << tinyaiLastErrorMessage();
    for (uint32_t v : {0u, 3u}) {
        o.version = v;
        EXPECT_EQ(tai_tmai_write_with(s.mf, out.c_str(), &o), TINYAI_ERR_INVALID_ARG) << v;
    }
    EXPECT_EQ(tai_tmai_write_with(s.mf, out.c_str(), nullptr), TINYAI_ERR_INVALID_ARG);
    EXPECT_FALSE(tai_test::FileExists(out));
    EXPECT_FALSE(tai_test::FileExists(out + ".tmp"));
}

// Packing on a pool gives the same file as packing on the calling thread.
TEST(TmaiWrite, PoolGivesTheSameBytes) {
    tai_synth_config cfg = tai_synth_default_config();
    cfg.matrix_type = TAI_TYPE_Q4_0;
    cfg.tied_output = false;
    std::string gguf = WriteSynth(cfg);
    Opened s;
    OpenInto(&s, gguf);
    ASSERT_EQ(s.st, TINYAI_OK) << s.msg;
    tai_pool *pool = nullptr;
    ASSERT_EQ(tai_pool_create(2, &pool), 0);
    tai_tmai_write_options o = tai_tmai_default_write_options();
    o.pool = pool;
    std::string out = tai_test::TempPath(".tmai");
    EXPECT_EQ(tai_tmai_write_with(s.mf, out.c_str(), &o), TINYAI_OK) << tinyaiLastErrorMessage();
    tai_pool_destroy(pool);
    EXPECT_EQ(tai_test::ReadFile(out), tai_test::ReadFile(Convert(gguf)));
}

class TmaiCorrupt : public ::testing::Test {
  protected:
    void SetUp() override {
        tai_synth_config cfg = tai_synth_default_config();
        cfg.n_layer = 3;
        tmai_ = Convert(WriteSynth(cfg));
        bytes_ = tai_test::ReadFile(tmai_);
        ASSERT_GT(bytes_.size(), 4 * kAlign);
        Opened o;
        OpenInto(&o, tmai_);
        ASSERT_EQ(o.st, TINYAI_OK) << o.msg;
        for (int l = 0; l < o.mf->n_layers; l++)
            layers_.push_back(o.mf->layers[l]);
    }
    // Writes the bytes to a new file and opens it.
    void OpenModified(Opened *o, const std::string &b, bool verify = false) {
        std::string p = tai_test::TempPath(".tmai");
        tai_test::WriteFile(p, b);
        OpenInto(o, p, verify);
    }
    std::string tmai_, bytes_;
    std::vector<tai_layer_entry> layers_;
};

TEST_F(TmaiCorrupt, FlippedByteInLayerData) {
    const tai_layer_entry &e = layers_[2];
    std::string b = bytes_;
    b[e.offset + e.size / 2] ^= 0x10;
    Opened o;
    OpenModified(&o, b);  // checksums not verified at open
    ASSERT_EQ(o.st, TINYAI_OK) << o.msg;
    for (int l = 0; l < o.mf->n_layers; l++) {
        TinyAIStatus st = tai_model_file_verify_layer(o.mf, l);
        if (l == 2) {
            EXPECT_EQ(st, TINYAI_ERR_CHECKSUM);
            std::string msg = tinyaiLastErrorMessage();
            EXPECT_NE(msg.find("checksum mismatch in layer 2"), std::string::npos) << msg;
            EXPECT_NE(msg.find(".tmai: "), std::string::npos) << msg;
        } else {
            EXPECT_EQ(st, TINYAI_OK) << l;
        }
    }
    Opened v;
    OpenModified(&v, b, /*verify=*/true);
    EXPECT_EQ(v.st, TINYAI_ERR_CHECKSUM);
    EXPECT_EQ(v.mf, nullptr);
    EXPECT_NE(v.msg.find("layer 2"), std::string::npos) << v.msg;
}

TEST_F(TmaiCorrupt, LastByteOfLayerCoveredPaddingAfterNot) {
    // The checksum covers the layer up to its last byte...
    const tai_layer_entry &e = layers_[1];
    std::string b = bytes_;
    b[e.offset + e.size - 1] ^= 1;
    Opened o;
    OpenModified(&o, b, true);
    EXPECT_EQ(o.st, TINYAI_ERR_CHECKSUM) << o.msg;
    // ...but not the alignment padding after it.
    std::string c = bytes_;
    uint64_t gap = e.offset + e.size;
    if (gap % kAlign != 0) {
        c[gap] ^= 1;
        Opened o2;
        OpenModified(&o2, c, true);
        EXPECT_EQ(o2.st, TINYAI_OK) << o2.msg;
    }
}

TEST_F(TmaiCorrupt, FlippedByteInHeaderOrTables) {
    uint64_t meta_end = MetaEnd(bytes_);
    // Every byte of the kv section and tables, flipped one at a time: always
    // a header checksum error (stride keeps the test fast under ASan).
    for (uint64_t at = 128; at < meta_end; at += (at < 1024 ? 1 : 37)) {
        std::string b = bytes_;
        b[at] ^= 0x04;
        Opened o;
        OpenModified(&o, b);
        ASSERT_EQ(o.st, TINYAI_ERR_CHECKSUM) << "byte " << at << ": " << o.msg;
        ASSERT_NE(o.msg.find("header checksum mismatch"), std::string::npos) << o.msg;
    }
    // Header fields: a checksum error, or a format error where the flipped
    // field already points outside the file; never a crash or success.
    for (uint64_t at = 8; at < 128; at++) {
        std::string b = bytes_;
        b[at] ^= 0x40;
        Opened o;
        OpenModified(&o, b);
        ASSERT_TRUE(o.st == TINYAI_ERR_CHECKSUM || o.st == TINYAI_ERR_FORMAT)
            << "byte " << at << ": " << o.st << " " << o.msg;
    }
    std::string b = bytes_;
    b[40] ^= 1;  // n_kv
    Opened o;
    OpenModified(&o, b);
    EXPECT_EQ(o.st, TINYAI_ERR_CHECKSUM);
    EXPECT_NE(o.msg.find("header checksum mismatch"), std::string::npos) << o.msg;
}

TEST_F(TmaiCorrupt, MagicAndVersion) {
    std::string b = bytes_;
    b[4] = 3;
    Opened o;
    OpenModified(&o, b);
    EXPECT_EQ(o.st, TINYAI_ERR_UNSUPPORTED);
    EXPECT_NE(o.msg.find(".tmai version 3 is not supported"), std::string::npos) << o.msg;
    b[4] = 0;
    Opened o0;
    OpenModified(&o0, b);
    EXPECT_EQ(o0.st, TINYAI_ERR_UNSUPPORTED) << o0.msg;
    // A version 2 file relabelled version 1: its layouts are reserved bytes
    // there, which must be zero.
    b = bytes_;
    b[4] = 1;
    Reseal(&b);
    Opened o1;
    OpenModified(&o1, b);
    EXPECT_EQ(o1.st, TINYAI_ERR_FORMAT);
    EXPECT_NE(o1.msg.find("nonzero reserved bytes"), std::string::npos) << o1.msg;
    b = bytes_;
    b[1] = 'X';
    Opened o2;
    OpenModified(&o2, b);
    EXPECT_EQ(o2.st, TINYAI_ERR_FORMAT);
}

TEST_F(TmaiCorrupt, Truncated) {
    uint64_t meta_end = MetaEnd(bytes_);
    std::vector<uint64_t> cuts;
    for (uint64_t c = 0; c < meta_end + 64; c += (c < 256 ? 1 : 13)) cuts.push_back(c);
    for (uint64_t c = meta_end; c < bytes_.size(); c += 1021) cuts.push_back(c);
    cuts.push_back(bytes_.size() - 1);
    std::string p = tai_test::TempPath(".tmai");
    for (uint64_t c : cuts) {
        tai_test::WriteFile(p, bytes_.substr(0, c));
        Opened o;
        OpenInto(&o, p);
        ASSERT_EQ(o.st, TINYAI_ERR_FORMAT) << "cut " << c << ": " << o.msg;
        ASSERT_NE(o.msg.find("truncated file"), std::string::npos) << "cut " << c << ": " << o.msg;
    }
    // Extra bytes at the end are an error too.
    tai_test::WriteFile(p, bytes_ + "x");
    Opened o;
    OpenInto(&o, p);
    EXPECT_EQ(o.st, TINYAI_ERR_FORMAT);
    EXPECT_NE(o.msg.find("the header says"), std::string::npos) << o.msg;
}

// Edits that keep the header checksum valid but break the structure: the
// reader's own validation must catch them.
TEST_F(TmaiCorrupt, ResealedInconsistencies) {
    const uint64_t tt = Rd64(bytes_, 80), lt = Rd64(bytes_, 96);
    // First tensor entry: u64 name length, name, then type at +0 after name.
    const uint64_t name_len = Rd64(bytes_, tt);
    const uint64_t fixed = tt + 8 + name_len;  // type, n_dims, ne[4], offset, size, layer
    struct Edit {
        const char *what;
        TinyAIStatus st;
        const char *needle;
        void (*apply)(std::string *, uint64_t fixed, uint64_t lt);
    };
    const Edit edits[] = {
        {"tensor type", TINYAI_ERR_UNSUPPORTED, "unsupported type id 23",
         [](std::string *b, uint64_t f, uint64_t) { Wr32(b, f, 23); }},
        {"tensor size", TINYAI_ERR_FORMAT, "its shape needs",
         [](std::string *b, uint64_t f, uint64_t) { Wr64(b, f + 48, Rd64(*b, f + 48) + 1); }},
        {"tensor layer", TINYAI_ERR_FORMAT, "but its name puts it in layer 0",
         [](std::string *b, uint64_t f, uint64_t) { Wr32(b, f + 56, 1); }},
        {"tensor offset", TINYAI_ERR_FORMAT, "outside the data section",
         [](std::string *b, uint64_t f, uint64_t) { Wr64(b, f + 40, 1ull << 62); }},
        {"tensor dims", TINYAI_ERR_FORMAT, "7 dimensions",
         [](std::string *b, uint64_t f, uint64_t) { Wr32(b, f + 4, 7); }},
        {"layer offset", TINYAI_ERR_FORMAT, "misaligned",
         [](std::string *b, uint64_t, uint64_t l) {
             Wr64(b, l + 64 + 8, Rd64(*b, l + 64 + 8) + 64);
         }},
        {"layer precision", TINYAI_ERR_FORMAT, "precision",
         [](std::string *b, uint64_t, uint64_t l) { Wr32(b, l + 4, 3); }},
        {"layer first tensor", TINYAI_ERR_FORMAT, "claims tensors",
         [](std::string *b, uint64_t, uint64_t l) { Wr64(b, l + 64 + 32, 0); }},
        {"layer count", TINYAI_ERR_FORMAT, "layer count",
         [](std::string *b, uint64_t, uint64_t) { Wr64(b, 56, Rd64(*b, 56) + 1); }},
        {"alignment", TINYAI_ERR_FORMAT, "alignment",
         [](std::string *b, uint64_t, uint64_t) { Wr64(b, 24, 512); }},
        {"kv size", TINYAI_ERR_FORMAT, "section offsets",
         [](std::string *b, uint64_t, uint64_t) { Wr64(b, 72, Rd64(*b, 72) - 1); }},
        {"absurd kv count", TINYAI_ERR_FORMAT, "absurd key/value count",
         [](std::string *b, uint64_t, uint64_t) { Wr64(b, 40, 1ull << 40); }},
        {"kv count", TINYAI_ERR_FORMAT, "stray bytes at the end of the metadata",
         [](std::string *b, uint64_t, uint64_t) { Wr64(b, 40, Rd64(*b, 40) - 1); }},
        {"tensor count", TINYAI_ERR_FORMAT, "stray bytes at the end of the tensor table",
         [](std::string *b, uint64_t, uint64_t) { Wr64(b, 48, Rd64(*b, 48) - 1); }},
        {"tensor layout", TINYAI_ERR_FORMAT, "unknown layout 3",
         [](std::string *b, uint64_t f, uint64_t) { Wr32(b, f + 60, 3); }},
        {"dense tensor said block-sparse", TINYAI_ERR_FORMAT,
         "is not the size its kept-block count gives",
         [](std::string *b, uint64_t f, uint64_t) { Wr32(b, f + 60, 2); }},
        {"packed size", TINYAI_ERR_FORMAT, "(packed)",
         [](std::string *b, uint64_t f, uint64_t) { Wr64(b, f + 48, Rd64(*b, f + 48) - 64); }},
        {"packed offset", TINYAI_ERR_FORMAT, "not 64-byte aligned",
         [](std::string *b, uint64_t f, uint64_t) { Wr64(b, f + 40, Rd64(*b, f + 40) + 16); }},
        {"packed vector", TINYAI_ERR_FORMAT, "only 2-D tensors are packed",
         [](std::string *b, uint64_t, uint64_t) {
             // blk.0.attn_norm.weight, the first tensor of layer 1
             Wr32(b, TensorEntry(*b, 1) + 60, 1);
         }},
    };
    for (const Edit &e : edits) {
        std::string b = bytes_;
        e.apply(&b, fixed, lt);
        Reseal(&b);
        Opened o;
        OpenModified(&o, b);
        EXPECT_EQ(o.st, e.st) << e.what << ": " << o.msg;
        EXPECT_NE(o.msg.find(e.needle), std::string::npos) << e.what << ": " << o.msg;
    }
    // Control: resealing an unmodified file keeps it valid.
    std::string b = bytes_;
    Reseal(&b);
    EXPECT_EQ(b, bytes_);
}

TEST(TmaiWrite, MissingDirectoryIsIoError) {
    std::string src = WriteSynth(tai_synth_default_config());
    Opened s;
    OpenInto(&s, src);
    ASSERT_EQ(s.st, TINYAI_OK) << s.msg;
    std::string out = tai_test::TempPath("_nodir/x.tmai");
    EXPECT_EQ(tai_tmai_write(s.mf, out.c_str()), TINYAI_ERR_IO);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("No such file or directory"),
              std::string::npos) << tinyaiLastErrorMessage();
    EXPECT_EQ(tai_tmai_write(nullptr, out.c_str()), TINYAI_ERR_INVALID_ARG);
}

// A write that runs out of space (here: RLIMIT_FSIZE, which fails write()
// with EFBIG like a full disk fails it with ENOSPC) reports an I/O error and
// leaves neither the temporary nor the target file. Runs in a child process
// so the limit does not touch the test process.
TEST(TmaiWrite, OutOfSpaceLeavesNoFile) {
    tai_synth_config cfg = tai_synth_default_config();
    std::string src = WriteSynth(cfg);
    std::string out = tai_test::TempPath(".tmai");
    tai_test::WriteFile(out, "previous contents");
    Opened s;
    OpenInto(&s, src);
    ASSERT_EQ(s.st, TINYAI_OK) << s.msg;
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {64 * 1024, 64 * 1024};
        setrlimit(RLIMIT_FSIZE, &rl);
        TinyAIStatus st = tai_tmai_write(s.mf, out.c_str());
        bool msg_ok = strstr(tinyaiLastErrorMessage(), "File too large") != nullptr;
        _exit(st == TINYAI_ERR_IO && msg_ok ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_FALSE(tai_test::FileExists(out + ".tmp"));
    EXPECT_EQ(tai_test::ReadFile(out), "previous contents");  // untouched
    // Without the limit it succeeds and replaces the file.
    ASSERT_EQ(tai_tmai_write(s.mf, out.c_str()), TINYAI_OK) << tinyaiLastErrorMessage();
    Opened t;
    OpenInto(&t, out, true);
    EXPECT_EQ(t.st, TINYAI_OK) << t.msg;
}

}  // namespace
