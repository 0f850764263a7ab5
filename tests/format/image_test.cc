// Layer images (runtime/format/image.h): the plan's placement, images built
// from GGUF, .tmai version 1 and version 2 layer bytes, and the version 2
// file's layer bytes, which must be the image byte for byte, for synthetic
// models of every type (shapes with odd block counts and row counts that are
// not multiples of 16) and the real default model. Bad arguments.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <tuple>
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

uint64_t Up64(uint64_t x) { return (x + 63) / 64 * 64; }

// A 64-byte aligned buffer, filled with junk so that a builder that leaves
// any byte unwritten is caught.
struct Image {
    explicit Image(uint64_t n)
        : size(n), p(static_cast<uint8_t *>(std::aligned_alloc(64, Up64(n) + 64)), &std::free) {
        memset(p.get(), 0xa5, Up64(n) + 64);
    }
    uint8_t *data() { return p.get(); }
    std::string str() const { return std::string(reinterpret_cast<const char *>(p.get()), size); }
    uint64_t size;
    std::unique_ptr<uint8_t, decltype(&std::free)> p;
};

const tai_tensor *LayerTensor(const tai_model_file *mf, int l, int j) {
    return &mf->tensors[mf->layer_tensors[mf->layers[l].first_tensor + j]];
}

uint64_t PlanSize(const tai_model_file *mf, int l) {
    uint64_t size = ~0ull;
    EXPECT_EQ(tai_layer_image_plan(mf, l, nullptr, &size), TINYAI_OK) << tinyaiLastErrorMessage();
    return size;
}

// Builds layer l's image from the file's own bytes of the layer.
std::string Build(const tai_model_file *mf, int l, tai_pool *pool = nullptr) {
    Image img(PlanSize(mf, l));
    EXPECT_EQ(tai_layer_image_build(mf, l, mf->map + mf->layers[l].offset, img.data(), img.size,
                                    pool),
              TINYAI_OK)
        << tinyaiLastErrorMessage();
    return img.str();
}

// Builds layer l's image in steps, as a loader does while the layer's bytes
// land: `avail` grows by `step` bytes a call (1: every byte boundary,
// including mid-row and mid-panel ones), starting from an image full of junk.
std::string BuildInSteps(const tai_model_file *mf, int l, uint64_t step) {
    Image img(PlanSize(mf, l));
    memset(img.data(), 0x5A, img.size);
    const uint64_t size = mf->layers[l].size;
    tai_image_progress prog = {0, 0, 0};
    const uint8_t *src = mf->map + mf->layers[l].offset;
    for (uint64_t avail = 0;; avail = avail + step < size ? avail + step : size) {
        EXPECT_EQ(tai_layer_image_build_part(mf, l, src, avail, img.data(), img.size, &prog),
                  TINYAI_OK)
            << tinyaiLastErrorMessage();
        if (avail == size) break;
    }
    EXPECT_TRUE(tai_layer_image_done(mf, l, &prog)) << "layer " << l;
    return img.str();
}

// Builds layer l's image through windows, as a loader's staging ring hands
// them over: each call sees only [next byte the build needs, + width) of the
// layer, copied to a buffer of its own (so that a read outside the window
// would see junk), the width cycling through `widths`; a window narrower than
// the next part makes no progress, a later wider one does.
std::string BuildThroughWindows(const tai_model_file *mf, int l,
                                const std::vector<uint64_t> &widths) {
    Image img(PlanSize(mf, l));
    memset(img.data(), 0x5A, img.size);
    const uint64_t size = mf->layers[l].size;
    uint64_t part = 0;
    EXPECT_TRUE(tai_layer_image_in_order(mf, l, &part));
    tai_image_progress prog = {0, 0, 0};
    const uint8_t *src = mf->map + mf->layers[l].offset;
    std::vector<uint8_t> win;
    for (size_t k = 0; k < 100000 && !tai_layer_image_done(mf, l, &prog); k++) {
        const uint64_t lo = tai_layer_image_next_byte(mf, l, &prog);
        const uint64_t hi = std::min(size, lo + widths[k % widths.size()]);
        win.assign(src + lo, src + hi);
        win.resize(win.size() + 64, 0xA5);
        EXPECT_EQ(tai_layer_image_build_window(mf, l, win.data(), lo, hi, img.data(), img.size,
                                               &prog),
                  TINYAI_OK)
            << tinyaiLastErrorMessage();
        EXPECT_GE(tai_layer_image_next_byte(mf, l, &prog), lo);
    }
    EXPECT_TRUE(tai_layer_image_done(mf, l, &prog)) << "layer " << l;
    EXPECT_EQ(tai_layer_image_next_byte(mf, l, &prog), size);
    return img.str();
}

// The bytes [layer offset, + image size) of a file.
std::string FileImage(const tai_model_file *mf, int l) {
    return std::string(reinterpret_cast<const char *>(mf->map + mf->layers[l].offset),
                       PlanSize(mf, l));
}

std::string Packed(const tai_tensor *t) {
    Image p(tai_pack_bytes(t->type, t->ne[1], t->ne[0]));
    tai_pack_matrix(nullptr, t->type, t->data, t->ne[1], t->ne[0], p.data());
    return p.str();
}

bool HasMatrix(const tai_model_file *mf, int l) {
    for (int j = 0; j < mf->layers[l].n_tensors; j++)
        if (LayerTensor(mf, l, j)->n_dims == 2) return true;
    return false;
}

std::string WriteTmai(const tai_model_file *src, uint32_t version) {
    std::string out = tai_test::TempPath(".tmai");
    tai_tmai_write_options o = tai_tmai_default_write_options();
    o.version = version;
    EXPECT_EQ(tai_tmai_write_with(src, out.c_str(), &o), TINYAI_OK) << tinyaiLastErrorMessage();
    return out;
}

// The plan of every layer of a row-major file, checked against the tensors:
// 64-byte aligned, in layer order, packed sizes for the matrices, raw sizes
// otherwise; and the image's contents, tensor by tensor, against packing
// each matrix directly.
void ExpectPlanAndContents(const tai_model_file *mf) {
    for (int l = 0; l < mf->n_layers; l++) {
        SCOPED_TRACE("layer " + std::to_string(l));
        const int n = mf->layers[l].n_tensors;
        std::vector<tai_image_tensor> plan(n);
        uint64_t size = 0;
        ASSERT_EQ(tai_layer_image_plan(mf, l, plan.data(), &size), TINYAI_OK);
        std::string img = Build(mf, l);
        ASSERT_EQ(img.size(), size);
        uint64_t pos = 0;
        for (int j = 0; j < n; j++) {
            const tai_tensor *t = LayerTensor(mf, l, j);
            SCOPED_TRACE(t->name);
            EXPECT_EQ(plan[j].offset, Up64(pos));
            // The padding before it is zero.
            EXPECT_EQ(img.substr(pos, plan[j].offset - pos), std::string(plan[j].offset - pos, '\0'));
            if (t->n_dims == 2) {
                EXPECT_EQ(plan[j].layout, TAI_LAYOUT_PACKED);
                EXPECT_EQ(plan[j].size, tai_pack_bytes(t->type, t->ne[1], t->ne[0]));
                EXPECT_EQ(img.substr(plan[j].offset, plan[j].size), Packed(t));
            } else {
                EXPECT_EQ(plan[j].layout, TAI_LAYOUT_ROWS);
                EXPECT_EQ(plan[j].size, t->size);
                EXPECT_EQ(img.substr(plan[j].offset, plan[j].size),
                          std::string(static_cast<const char *>(t->data), t->size));
            }
            pos = plan[j].offset + plan[j].size;
        }
        EXPECT_EQ(size, Up64(pos));
        EXPECT_EQ(img.substr(pos), std::string(size - pos, '\0'));
    }
}

// The images of every layer: built from the row-major file `src`, from a
// version 1 copy and from the version 2 file, all equal to the version 2
// file's layer bytes. v1 may be NULL (no version 1 copy).
void ExpectImagesEqualV2Bytes(const tai_model_file *src, const tai_model_file *v1,
                              const tai_model_file *v2) {
    ASSERT_EQ(v2->version, 2u);
    ASSERT_EQ(v2->n_layers, src->n_layers);
    for (int l = 0; l < src->n_layers; l++) {
        SCOPED_TRACE("layer " + std::to_string(l));
        std::string want = FileImage(v2, l);
        EXPECT_EQ(want.size(), Up64(v2->layers[l].size));
        ASSERT_EQ(PlanSize(src, l), want.size());
        ASSERT_TRUE(Build(src, l) == want);
        if (v1) {
            ASSERT_TRUE(Build(v1, l) == want);
        }
        ASSERT_TRUE(Build(v2, l) == want);  // packed tensors copied as they are
        EXPECT_TRUE(tai_layer_image_in_file(v2, l));
        // A row-major file stores a layer as its image only without matrices.
        EXPECT_EQ(tai_layer_image_in_file(src, l), !HasMatrix(src, l));
        if (v1) {
            EXPECT_EQ(tai_layer_image_in_file(v1, l), !HasMatrix(v1, l));
        }
    }
}

class ImageSynth : public ::testing::TestWithParam<std::tuple<tai_type, bool>> {};

TEST_P(ImageSynth, BuiltImagesAreTheVersion2LayerBytes) {
    tai_synth_config cfg = tai_synth_default_config();
    cfg.matrix_type = std::get<0>(GetParam());
    cfg.embd_type = std::get<0>(GetParam());
    cfg.tied_output = std::get<1>(GetParam());
    cfg.n_vocab = 300;  // token_embd: 18 whole panels and 12 rows
    cfg.n_embd = 96;    // 3 blocks per row: the last block pair is half zero
    cfg.n_ff = 160;     // 5 blocks
    cfg.n_head = 4;
    cfg.n_head_kv = 2;  // attn_k / attn_v: 48 rows, 3 panels
    cfg.n_layer = 3;
    std::string gguf = tai_test::TempPath(".gguf");
    ASSERT_EQ(tai_synth_write(&cfg, gguf.c_str()), TINYAI_OK) << tinyaiLastErrorMessage();
    Opened g;
    OpenInto(&g, gguf);
    ASSERT_EQ(g.st, TINYAI_OK) << g.msg;
    Opened v1, v2;
    OpenInto(&v1, WriteTmai(g.mf, 1), true);
    OpenInto(&v2, WriteTmai(g.mf, 2), true);
    ASSERT_EQ(v1.st, TINYAI_OK) << v1.msg;
    ASSERT_EQ(v2.st, TINYAI_OK) << v2.msg;
    ExpectPlanAndContents(g.mf);
    ExpectImagesEqualV2Bytes(g.mf, v1.mf, v2.mf);
    // Built in steps as the bytes land (odd steps: boundaries inside rows,
    // blocks and panels), and all at once at the end: the same image.
    for (int l = 0; l < g.mf->n_layers; l++)
        for (uint64_t step : {(uint64_t)1 << 40, (uint64_t)4096, (uint64_t)1000, (uint64_t)77}) {
            EXPECT_TRUE(BuildInSteps(g.mf, l, step) == Build(g.mf, l)) << l << " step " << step;
            EXPECT_TRUE(BuildInSteps(v1.mf, l, step) == Build(v1.mf, l)) << l << " step " << step;
        }
    // Built through windows of a loader's ring, as wide as the largest part
    // (a panel) or narrower or wider, the same image; a window that starts
    // after the byte the build needs next is refused.
    for (int l = 0; l < g.mf->n_layers; l++) {
        uint64_t part = 0;
        ASSERT_TRUE(tai_layer_image_in_order(g.mf, l, &part));
        const std::vector<uint64_t> widths = {part ? part : 1, 1, part + 77, 3 * part + 1, 4096};
        EXPECT_TRUE(BuildThroughWindows(g.mf, l, widths) == Build(g.mf, l)) << l;
        Image img(PlanSize(g.mf, l));
        tai_image_progress prog = {0, 0, 0};
        const uint8_t *src = g.mf->map + g.mf->layers[l].offset;
        if (g.mf->layers[l].size > 8) {
            EXPECT_EQ(tai_layer_image_build_window(g.mf, l, src + 8, 8, g.mf->layers[l].size,
                                                   img.data(), img.size, &prog),
                      TINYAI_ERR_INVALID_ARG);
            EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("before the bytes at hand"),
                      std::string::npos)
                << tinyaiLastErrorMessage();
        }
    }
    // Packing on a pool gives the same image.
    tai_pool *pool = nullptr;
    ASSERT_EQ(tai_pool_create(2, &pool), 0);
    for (int l = 0; l < g.mf->n_layers; l++) EXPECT_TRUE(Build(g.mf, l, pool) == Build(g.mf, l)) << l;
    tai_pool_destroy(pool);
}

INSTANTIATE_TEST_SUITE_P(
    AllTypes, ImageSynth,
    ::testing::Combine(::testing::Values(TAI_TYPE_F32, TAI_TYPE_F16, TAI_TYPE_Q4_0, TAI_TYPE_Q4_1,
                                         TAI_TYPE_Q8_0),
                       ::testing::Bool()),
    [](const ::testing::TestParamInfo<ImageSynth::ParamType> &i) {
        return std::string(tai_type_name(std::get<0>(i.param))) +
               (std::get<1>(i.param) ? "_tied" : "_untied");
    });

TEST(ImageReal, BuiltImagesAreTheVersion2LayerBytes) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    Opened g;
    OpenInto(&g, path);
    ASSERT_EQ(g.st, TINYAI_OK) << g.msg;
    std::string tmai = WriteTmai(g.mf, 2);
    Opened v2;
    OpenInto(&v2, tmai, true);
    ASSERT_EQ(v2.st, TINYAI_OK) << v2.msg;
    ExpectImagesEqualV2Bytes(g.mf, nullptr, v2.mf);
    std::remove(tmai.c_str());
}

TEST(ImageArgs, BadArgumentsAreErrors) {
    tai_synth_config cfg = tai_synth_default_config();
    std::string gguf = tai_test::TempPath(".gguf");
    ASSERT_EQ(tai_synth_write(&cfg, gguf.c_str()), TINYAI_OK) << tinyaiLastErrorMessage();
    Opened g;
    OpenInto(&g, gguf);
    ASSERT_EQ(g.st, TINYAI_OK) << g.msg;
    const tai_model_file *mf = g.mf;
    uint64_t size = 0;
    EXPECT_EQ(tai_layer_image_plan(mf, -1, nullptr, &size), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_layer_image_plan(mf, mf->n_layers, nullptr, &size), TINYAI_ERR_INVALID_ARG);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("out of range"), std::string::npos);
    EXPECT_EQ(tai_layer_image_plan(nullptr, 0, nullptr, &size), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_layer_image_plan(mf, 0, nullptr, nullptr), TINYAI_ERR_INVALID_ARG);
    EXPECT_FALSE(tai_layer_image_in_file(mf, -1));
    EXPECT_FALSE(tai_layer_image_in_file(nullptr, 0));

    size = PlanSize(mf, 1);
    ASSERT_GT(size, 64u);
    Image img(size + 64);
    const uint8_t *src = mf->map + mf->layers[1].offset;
    EXPECT_EQ(tai_layer_image_build(mf, 1, src, img.data(), size - 64, nullptr),
              TINYAI_ERR_INVALID_ARG);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("image takes"), std::string::npos)
        << tinyaiLastErrorMessage();
    EXPECT_EQ(tai_layer_image_build(mf, 1, src, img.data() + 32, size, nullptr),
              TINYAI_ERR_INVALID_ARG);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("aligned"), std::string::npos);
    EXPECT_EQ(tai_layer_image_build(mf, 1, nullptr, img.data(), size, nullptr),
              TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_layer_image_build(mf, 1, src, nullptr, size, nullptr), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_layer_image_build(mf, 9, src, img.data(), size, nullptr), TINYAI_ERR_INVALID_ARG);
    // Nothing was written by the refused calls.
    for (uint64_t i = 0; i < size; i++) ASSERT_EQ(img.data()[i], 0xa5) << i;
    // Control: the right call succeeds.
    EXPECT_EQ(tai_layer_image_build(mf, 1, src, img.data(), size, nullptr), TINYAI_OK);
}

}  // namespace
