// tests/offload/conformance_test.cc: the device conformance suite. Every op
// of the device vtable, every weight type, shapes that are not multiples of
// a panel, a block or a work-group, on every device this host has, against
// a double-precision reference written here from the definitions (never
// through a device). A device is done when this passes on it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/types.h"
#include "offload/cpu/cpu.h"
#include "offload/host.h"
#include "offload/offload.h"
#include "tests/offload/devices.h"

namespace {

using tai_test::DeviceCase;

std::vector<float> Random(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (auto &x : v) x = dist(rng);
    return v;
}

// sqrt(sum (a - ref)^2 / sum ref^2)
double Nrmse(const std::vector<float> &a, const std::vector<double> &ref) {
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); i++) {
        const double d = a[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    return den == 0 ? (num == 0 ? 0 : INFINITY) : std::sqrt(num / den);
}

// A buffer on the device under test, freed with it.
class Buf {
  public:
    Buf(tai_device *d, size_t bytes) : d_(d), bytes_(bytes) {
        EXPECT_EQ(d->ops->buf_alloc(d->ctx, bytes, &b_), 0) << bytes;
    }
    ~Buf() { d_->ops->buf_free(d_->ctx, b_); }
    Buf(const Buf &) = delete;
    Buf &operator=(const Buf &) = delete;
    tai_dref ref(size_t off = 0) const {
        return d_->info.unified ? tai_dref_host((const char *)(void *)b_ + off) : tai_dref{b_, off};
    }
    void Put(const void *src, size_t n, size_t off = 0) {
        ASSERT_LE(off + n, bytes_);
        ASSERT_EQ(tai_dev_upload(d_, ref(off), src, n), TINYAI_OK) << tinyaiLastErrorMessage();
    }
    template <typename T> void Put(const std::vector<T> &v) { Put(v.data(), v.size() * sizeof(T)); }
    template <typename T> std::vector<T> Get(size_t count, size_t off = 0) {
        std::vector<T> v(count);
        EXPECT_EQ(tai_dev_sync(d_), TINYAI_OK) << tinyaiLastErrorMessage();
        EXPECT_EQ(tai_dev_download(d_, v.data(), ref(off), count * sizeof(T)), TINYAI_OK)
            << tinyaiLastErrorMessage();
        return v;
    }

  private:
    tai_device *d_;
    size_t bytes_;
    tai_dbuf *b_ = nullptr;
};

class Conformance : public ::testing::TestWithParam<DeviceCase> {
  protected:
    void SetUp() override {
        std::string why;
        dev_ = GetParam().open(&why);
        if (!dev_) GTEST_SKIP() << GetParam().name << ": " << why;
    }
    void TearDown() override { tai_device_close(dev_); }
    tai_device *dev_ = nullptr;
};

// Weights of `type` as GGUF stores them (row-major blocks), their exact
// values as floats, and the packed image every device reads.
struct Weights {
    std::vector<uint8_t> rowmajor;
    std::vector<float> values; // rows x n, what the blocks decode to
    std::vector<uint8_t> packed_store;
    uint8_t *packed = nullptr; // 64-byte aligned, as packing needs
    size_t packed_size = 0;
};

Weights MakeWeights(tai_type t, int64_t rows, int64_t n, uint32_t seed) {
    Weights w;
    const size_t rb = tai_type_row_bytes(t, n);
    w.rowmajor.resize(rb * (size_t)rows);
    w.values.resize((size_t)(rows * n));
    for (int64_t r = 0; r < rows; r++) {
        // rows of different magnitudes and offsets, so block scales differ
        const float s = 0.25f + (float)(r % 5), o = r % 3 == 0 ? 0.3f : 0.0f;
        std::vector<float> f = Random((size_t)n, seed + (uint32_t)r, -s + o, s + o);
        tai_quantize_row(t, f.data(), w.rowmajor.data() + (size_t)r * rb, n);
        tai_dequantize_row(t, w.rowmajor.data() + (size_t)r * rb, w.values.data() + r * n, n);
    }
    w.packed_size = tai_pack_bytes(t, rows, n);
    w.packed_store.resize(w.packed_size + 64);
    w.packed = w.packed_store.data() + (64 - (uintptr_t)w.packed_store.data() % 64) % 64;
    tai_host_pack_matrix(nullptr, t, w.rowmajor.data(), rows, n, w.packed);
    return w;
}

// Tolerance of a product's normalised error: exact weights; activations
// quantized to 8-bit blocks for the block types (as ggml's CPU backend).
double MatmulTolerance(tai_type t) {
    return t == TAI_TYPE_F32 || t == TAI_TYPE_F16 ? 1e-5 : 1e-2;
}

TEST_P(Conformance, InfoIsComplete) {
    EXPECT_STRNE(dev_->info.name, "");
    EXPECT_NE(dev_->info.ops & TAI_OP_MATMUL, 0u);
    EXPECT_GT(dev_->info.mem_total, 0u);
    for (int t : {TAI_TYPE_F32, TAI_TYPE_F16, TAI_TYPE_Q4_0, TAI_TYPE_Q4_1, TAI_TYPE_Q8_0})
        EXPECT_NE(dev_->info.types & (1u << t), 0u) << tai_type_name(t);
}

TEST_P(Conformance, MatmulEveryTypeAndShape) {
    const tai_type types[] = {TAI_TYPE_F32, TAI_TYPE_F16, TAI_TYPE_Q8_0, TAI_TYPE_Q4_0,
                              TAI_TYPE_Q4_1};
    struct Shape {
        int64_t rows, n, ncols;
    };
    // rows not a multiple of the 16-row panel; odd block counts; batch 1,
    // a partial column group and more than one group
    const Shape shapes[] = {{1, 32, 1}, {17, 96, 1}, {33, 160, 3}, {64, 256, 9}, {100, 64, 17}};
    for (tai_type t : types) {
        for (const Shape &s : shapes) {
            SCOPED_TRACE(std::string(tai_type_name(t)) + " " + std::to_string(s.rows) + "x" +
                         std::to_string(s.n) + "x" + std::to_string(s.ncols));
            Weights w = MakeWeights(t, s.rows, s.n, 7u + (uint32_t)s.rows);
            std::vector<float> x = Random((size_t)(s.n * s.ncols), 11u + (uint32_t)s.n);
            std::vector<double> ref((size_t)(s.rows * s.ncols));
            for (int64_t c = 0; c < s.ncols; c++)
                for (int64_t r = 0; r < s.rows; r++) {
                    double acc = 0;
                    for (int64_t k = 0; k < s.n; k++)
                        acc += (double)w.values[(size_t)(r * s.n + k)] * x[(size_t)(c * s.n + k)];
                    ref[(size_t)(c * s.rows + r)] = acc;
                }
            Buf bw(dev_, w.packed_size), bx(dev_, x.size() * 4), by(dev_, ref.size() * 4);
            const size_t sb = tai_dev_matmul_scratch(dev_, t, s.n, s.ncols);
            Buf scratch(dev_, sb ? sb : 64);
            bw.Put(w.packed, w.packed_size);
            bx.Put(x);
            ASSERT_EQ(tai_dev_matmul(dev_, t, bw.ref(), s.rows, s.n, bx.ref(), by.ref(), s.ncols,
                                     scratch.ref()),
                      TINYAI_OK)
                << tinyaiLastErrorMessage();
            std::vector<float> y = by.Get<float>(ref.size());
            EXPECT_LE(Nrmse(y, ref), MatmulTolerance(t));
        }
    }
}

TEST_P(Conformance, RmsNorm) {
    for (int64_t n : {32, 100, 576}) {
        for (int64_t ncols : {1, 5}) {
            std::vector<float> x = Random((size_t)(n * ncols), 3u), w = Random((size_t)n, 4u, 0.5f, 1.5f);
            const float eps = 1e-5f;
            std::vector<double> ref(x.size());
            for (int64_t c = 0; c < ncols; c++) {
                double ss = 0;
                for (int64_t i = 0; i < n; i++) ss += (double)x[c * n + i] * x[c * n + i];
                const double inv = 1.0 / std::sqrt(ss / n + eps);
                for (int64_t i = 0; i < n; i++) ref[c * n + i] = x[c * n + i] * inv * w[i];
            }
            Buf bx(dev_, x.size() * 4), bw(dev_, w.size() * 4), bo(dev_, x.size() * 4);
            bx.Put(x);
            bw.Put(w);
            ASSERT_EQ(tai_dev_rmsnorm(dev_, bo.ref(), bx.ref(), bw.ref(), n, ncols, eps), TINYAI_OK);
            EXPECT_LE(Nrmse(bo.Get<float>(x.size()), ref), 1e-6) << n << " " << ncols;
            // in place
            ASSERT_EQ(tai_dev_rmsnorm(dev_, bx.ref(), bx.ref(), bw.ref(), n, ncols, eps), TINYAI_OK);
            EXPECT_LE(Nrmse(bx.Get<float>(x.size()), ref), 1e-6);
        }
    }
}

TEST_P(Conformance, AddAndSwiglu) {
    for (int64_t n : {1, 77, 40000}) {
        std::vector<float> a = Random((size_t)n, 5u, -4, 4), b = Random((size_t)n, 6u, -4, 4);
        std::vector<double> sum(a.size()), sw(a.size());
        for (int64_t i = 0; i < n; i++) {
            sum[i] = (double)a[i] + b[i];
            sw[i] = a[i] / (1.0 + std::exp(-(double)a[i])) * b[i];
        }
        Buf ba(dev_, a.size() * 4), bb(dev_, b.size() * 4);
        ba.Put(a);
        bb.Put(b);
        ASSERT_EQ(tai_dev_add(dev_, ba.ref(), bb.ref(), n), TINYAI_OK);
        EXPECT_LE(Nrmse(ba.Get<float>(a.size()), sum), 1e-7) << n;
        ba.Put(a);
        ASSERT_EQ(tai_dev_swiglu(dev_, ba.ref(), bb.ref(), n), TINYAI_OK);
        EXPECT_LE(Nrmse(ba.Get<float>(a.size()), sw), 1e-5) << n;
    }
}

TEST_P(Conformance, Rope) {
    const int n_heads = 3, head_dim = 64;
    for (int rot : {64, 32}) {
        const int64_t ncols = 4, stride = n_heads * head_dim + 8; // columns with a gap
        std::vector<float> x = Random((size_t)(stride * ncols), 8u);
        std::vector<float> cs((size_t)(ncols * rot));
        const int32_t pos[ncols] = {0, 1, 17, 4095};
        for (int64_t c = 0; c < ncols; c++) tai_host_rope_angles(&cs[c * rot], rot, pos[c], 10000.0f);
        std::vector<double> ref(x.begin(), x.end());
        for (int64_t c = 0; c < ncols; c++)
            for (int h = 0; h < n_heads; h++)
                for (int i = 0; i < rot / 2; i++) {
                    const double th = pos[c] * std::pow(10000.0, -2.0 * i / rot);
                    const size_t at = (size_t)(c * stride + h * head_dim + 2 * i);
                    const double a = x[at], b = x[at + 1];
                    ref[at] = a * std::cos(th) - b * std::sin(th);
                    ref[at + 1] = a * std::sin(th) + b * std::cos(th);
                }
        Buf bx(dev_, x.size() * 4), bc(dev_, cs.size() * 4);
        bx.Put(x);
        bc.Put(cs);
        ASSERT_EQ(tai_dev_rope(dev_, bx.ref(), ncols, stride, n_heads, head_dim, rot, bc.ref()),
                  TINYAI_OK);
        EXPECT_LE(Nrmse(bx.Get<float>(x.size()), ref), 1e-5) << rot;
    }
}

TEST_P(Conformance, AttentionPerColumnCaches) {
    const int n_head = 6, n_kv = 2, hd = 32;
    const int64_t kvd = n_kv * hd, qd = n_head * hd;
    // three columns: two of one sequence, one of another with its own cache
    const int32_t pos[3] = {4, 5, 12};
    const int64_t ctx = 16;
    std::vector<float> k0 = Random((size_t)(ctx * kvd), 20u), v0 = Random((size_t)(ctx * kvd), 21u);
    std::vector<float> k1 = Random((size_t)(ctx * kvd), 22u), v1 = Random((size_t)(ctx * kvd), 23u);
    std::vector<float> q = Random((size_t)(3 * qd), 24u, -2, 2);
    const std::vector<float> *ks[3] = {&k0, &k0, &k1}, *vs[3] = {&v0, &v0, &v1};
    std::vector<double> ref((size_t)(3 * qd));
    for (int c = 0; c < 3; c++)
        for (int h = 0; h < n_head; h++) {
            const int g = h / (n_head / n_kv);
            std::vector<double> s((size_t)pos[c] + 1);
            double mx = -INFINITY;
            for (int p = 0; p <= pos[c]; p++) {
                double d = 0;
                for (int i = 0; i < hd; i++)
                    d += (double)q[(size_t)(c * qd + h * hd + i)] * (*ks[c])[(size_t)(p * kvd + g * hd + i)];
                s[(size_t)p] = d / std::sqrt((double)hd);
                mx = std::max(mx, s[(size_t)p]);
            }
            double z = 0;
            for (auto &e : s) z += (e = std::exp(e - mx));
            for (int i = 0; i < hd; i++) {
                double o = 0;
                for (int p = 0; p <= pos[c]; p++) o += s[(size_t)p] / z * (*vs[c])[(size_t)(p * kvd + g * hd + i)];
                ref[(size_t)(c * qd + h * hd + i)] = o;
            }
        }
    Buf bk0(dev_, k0.size() * 4), bv0(dev_, v0.size() * 4), bk1(dev_, k1.size() * 4),
        bv1(dev_, v1.size() * 4), bq(dev_, q.size() * 4), bo(dev_, q.size() * 4);
    bk0.Put(k0);
    bv0.Put(v0);
    bk1.Put(k1);
    bv1.Put(v1);
    bq.Put(q);
    const size_t sb = tai_dev_attention_scratch(dev_, ctx, n_head);
    Buf scratch(dev_, sb ? sb : 64);
    const tai_dref k[3] = {bk0.ref(), bk0.ref(), bk1.ref()}, v[3] = {bv0.ref(), bv0.ref(), bv1.ref()};
    ASSERT_EQ(tai_dev_attention(dev_, bo.ref(), bq.ref(), 3, k, v, pos, n_head, n_kv, hd,
                                scratch.ref(), sb),
              TINYAI_OK)
        << tinyaiLastErrorMessage();
    EXPECT_LE(Nrmse(bo.Get<float>(q.size()), ref), 1e-5);
}

TEST_P(Conformance, EmbedIsExact) {
    for (tai_type t : {TAI_TYPE_F32, TAI_TYPE_F16, TAI_TYPE_Q8_0, TAI_TYPE_Q4_0, TAI_TYPE_Q4_1}) {
        const int64_t rows = 37, n = 64;
        Weights w = MakeWeights(t, rows, n, 30u);
        const int32_t tokens[4] = {0, 36, 17, 17};
        Buf bt(dev_, w.packed_size), bo(dev_, 4 * n * 4);
        bt.Put(w.packed, w.packed_size);
        ASSERT_EQ(tai_dev_embed(dev_, t, bt.ref(), rows, n, tokens, 4, bo.ref()), TINYAI_OK);
        std::vector<float> out = bo.Get<float>((size_t)(4 * n));
        for (int c = 0; c < 4; c++)
            EXPECT_EQ(0, std::memcmp(&out[(size_t)(c * n)], &w.values[(size_t)(tokens[c] * n)], n * 4))
                << tai_type_name(t) << " column " << c;
    }
}

TEST_P(Conformance, CopyWithinTheDevice) {
    std::vector<float> a = Random(1000, 40u);
    Buf src(dev_, 4000), dst(dev_, 8000);
    src.Put(a);
    ASSERT_EQ(tai_dev_copy(dev_, dst.ref(4000), src.ref(), 4000), TINYAI_OK);
    std::vector<float> back = dst.Get<float>(1000, 4000);
    EXPECT_EQ(0, std::memcmp(back.data(), a.data(), 4000));
}

TEST_P(Conformance, BadArgumentsAreErrorsNamingTheDeviceAndOp) {
    Buf b(dev_, 4096);
    const int32_t bad[1] = {1000};
    EXPECT_EQ(tai_dev_embed(dev_, TAI_TYPE_F32, b.ref(), 4, 32, bad, 1, b.ref(2048)),
              TINYAI_ERR_INVALID_ARG);
    const std::string msg = tinyaiLastErrorMessage();
    EXPECT_NE(msg.find(std::string("device ") + dev_->info.name), std::string::npos) << msg;
    EXPECT_NE(msg.find("embed"), std::string::npos) << msg;
    // an unknown weight type
    EXPECT_NE(tai_dev_matmul(dev_, (tai_type)5, b.ref(), 16, 32, b.ref(), b.ref(), 1, b.ref()),
              TINYAI_OK);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("matmul"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Devices, Conformance, ::testing::ValuesIn(tai_test::AllDevices()),
                         [](const ::testing::TestParamInfo<DeviceCase> &i) { return i.param.name; });

} // namespace
