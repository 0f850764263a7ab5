// tests/kernels/ops_test.cc: rmsnorm, softmax, silu_mul, gelu_mul, rope (against small
// cases computed by hand), attention (against a naive double implementation
// with grouped-query heads) and embedding rows.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace {

TEST(RmsNorm, SmallCaseAndAliasing) {
    // mean(x^2) = (1 + 4 + 9 + 16) / 4 = 7.5
    const float x[4] = {1, 2, 3, 4}, w[4] = {1, 1, 2, 0.5f};
    float out[4];
    tai_rmsnorm(out, x, w, 4, 0.0f);
    const double s = 1.0 / std::sqrt(7.5);
    EXPECT_NEAR(out[0], 1 * s * 1, 1e-6);
    EXPECT_NEAR(out[1], 2 * s * 1, 1e-6);
    EXPECT_NEAR(out[2], 3 * s * 2, 1e-6);
    EXPECT_NEAR(out[3], 4 * s * 0.5, 1e-6);
    // eps enters inside the square root
    tai_rmsnorm(out, x, w, 4, 2.5f);
    EXPECT_NEAR(out[0], 1 / std::sqrt(10.0), 1e-6);
    // in place
    float y[4] = {1, 2, 3, 4};
    tai_rmsnorm(y, y, w, 4, 0.0f);
    EXPECT_NEAR(y[3], 4 * s * 0.5, 1e-6);
}

TEST(Softmax, KnownValuesAndLargeInputs) {
    float x[3] = {1, 2, 3};
    tai_softmax(x, 3);
    const double e = std::exp(1.0), den = 1 + e + e * e;
    EXPECT_NEAR(x[0], 1 / den, 1e-7);
    EXPECT_NEAR(x[1], e / den, 1e-7);
    EXPECT_NEAR(x[2], e * e / den, 1e-7);
    // logits that would overflow expf without the max subtraction
    float big[3] = {1000, 1001, -INFINITY};
    tai_softmax(big, 3);
    EXPECT_NEAR(big[0], 1 / (1 + e), 1e-6);
    EXPECT_NEAR(big[1], e / (1 + e), 1e-6);
    EXPECT_EQ(big[2], 0.0f);
    float one[1] = {-5};
    tai_softmax(one, 1);
    EXPECT_EQ(one[0], 1.0f);
}

TEST(SiluMul, KnownValues) {
    float g[5] = {0, 1, -1, -200, 30};
    const float up[5] = {3, 2, 2, 1, 0.5f};
    tai_silu_mul(g, up, 5);
    EXPECT_EQ(g[0], 0.0f);
    EXPECT_NEAR(g[1], 2 * 0.7310585786300049, 1e-6);   // 1 * sigmoid(1) * 2
    EXPECT_NEAR(g[2], 2 * -0.2689414213699951, 1e-6);  // -1 * sigmoid(-1) * 2
    EXPECT_EQ(g[3], 0.0f);                              // limit, not nan
    EXPECT_NEAR(g[4], 15.0f, 1e-5);
}

TEST(Rope, HandComputed) {
    // head_dim 6, rot_dim 4, theta 10000, pos 1: pair 0 turns by 1 rad,
    // pair 1 by 10000^(-2/4) = 0.01 rad, pair 2 (dims 4, 5) is not rotated.
    float x[12] = {1, 0, 0, 1, 5, 6,   // head 0
                   2, 3, 1, 1, 7, 8};  // head 1
    tai_rope(x, 2, 6, 4, 1, 10000.0f);
    const double c1 = 0.5403023058681398, s1 = 0.8414709848078965;
    const double c2 = 0.9999500004166653, s2 = 0.009999833334166664;
    EXPECT_NEAR(x[0], c1, 1e-7);
    EXPECT_NEAR(x[1], s1, 1e-7);
    EXPECT_NEAR(x[2], -s2, 1e-7);
    EXPECT_NEAR(x[3], c2, 1e-7);
    EXPECT_EQ(x[4], 5.0f);
    EXPECT_EQ(x[5], 6.0f);
    EXPECT_NEAR(x[6], 2 * c1 - 3 * s1, 1e-6);
    EXPECT_NEAR(x[7], 2 * s1 + 3 * c1, 1e-6);
    EXPECT_NEAR(x[8], c2 - s2, 1e-6);
    EXPECT_NEAR(x[9], s2 + c2, 1e-6);
    EXPECT_EQ(x[10], 7.0f);
    EXPECT_EQ(x[11], 8.0f);
}

TEST(Rope, PositionZeroIsIdentityAndLargePositions) {
    std::vector<float> x = tai_test::RandomFloats(64, 4), y = x;
    tai_rope(y.data(), 2, 32, 32, 0, 10000.0f);
    EXPECT_EQ(x, y);
    // pos 5000, pair 0 turns by exactly 5000 rad; norms are kept
    float p[4] = {1, 0, 3, 4};
    tai_rope(p, 1, 4, 4, 5000, 500000.0f);
    EXPECT_NEAR(p[0], std::cos(5000.0), 1e-6);
    EXPECT_NEAR(p[1], std::sin(5000.0), 1e-6);
    EXPECT_NEAR(std::hypot(p[2], p[3]), 5.0, 1e-5);
    const double a = 5000.0 * std::pow(500000.0, -0.5);
    EXPECT_NEAR(p[2], 3 * std::cos(a) - 4 * std::sin(a), 1e-5);
}

// Naive attention in double: scores, softmax, weighted sum, per query head
// with kv head h / (n_head / n_kv_head).
std::vector<double> NaiveAttention(const std::vector<float> &q, const std::vector<float> &k,
                                   const std::vector<float> &v, int64_t n_pos,
                                   int64_t stride, int n_head, int n_kv, int hd) {
    std::vector<double> out(n_head * hd, 0.0);
    for (int h = 0; h < n_head; h++) {
        int g = h / (n_head / n_kv);
        std::vector<double> s(n_pos);
        double mx = -INFINITY;
        for (int64_t p = 0; p < n_pos; p++) {
            double d = 0;
            for (int i = 0; i < hd; i++) d += (double)q[h * hd + i] * k[p * stride + g * hd + i];
            s[p] = d / std::sqrt((double)hd);
            mx = std::max(mx, s[p]);
        }
        double sum = 0;
        for (auto &e : s) sum += (e = std::exp(e - mx));
        for (int64_t p = 0; p < n_pos; p++)
            for (int i = 0; i < hd; i++)
                out[h * hd + i] += s[p] / sum * v[p * stride + g * hd + i];
    }
    return out;
}

// A shape of attention: query heads, kv heads, head size, positions.
struct AttCase {
    int n_head, n_kv, hd;
    int64_t n_pos;
};

// Random queries of a shape and K and V rows `stride` floats apart, in
// [-2, 2), from seeds seed, seed + 1 and seed + 2.
void RandomQkv(const AttCase &cs, int64_t stride, uint32_t seed, std::vector<float> *q,
               std::vector<float> *k, std::vector<float> *v) {
    *q = tai_test::RandomFloats(cs.n_head * cs.hd, seed, -2, 2);
    *k = tai_test::RandomFloats(cs.n_pos * stride, seed + 1, -2, 2);
    *v = tai_test::RandomFloats(cs.n_pos * stride, seed + 2, -2, 2);
}

// K and V as an 8-bit cache holds them (tai_f32_to_q8_row): codes, and a
// scale per 32 of them.
struct Q8Kv {
    std::vector<int8_t> kc, vc;
    std::vector<float> ks, vs;
};
Q8Kv ToQ8Cache(const std::vector<float> &k, const std::vector<float> &v) {
    Q8Kv c{std::vector<int8_t>(k.size()), std::vector<int8_t>(v.size()),
           std::vector<float>(k.size() / 32), std::vector<float>(v.size() / 32)};
    tai_f32_to_q8_row(nullptr, k.data(), c.kc.data(), c.ks.data(), (int64_t)k.size());
    tai_f32_to_q8_row(nullptr, v.data(), c.vc.data(), c.vs.data(), (int64_t)v.size());
    return c;
}

// "avx512 9/3 hd 64 positions 192": a case in failure messages.
std::string CaseName(tai_isa isa, const AttCase &cs) {
    return std::string(tai_isa_name(isa)) + " " + std::to_string(cs.n_head) + "/" +
           std::to_string(cs.n_kv) + " hd " + std::to_string(cs.hd) + " positions " +
           std::to_string(cs.n_pos);
}

// Every ISA's attention (the kernel table's entry) against the naive one:
// head sizes with and without a partial vector, wider than the registers the
// AVX-512 version keeps the query in, and many positions.
TEST(Attention, MatchesNaiveWithGroupedHeads) {
    const AttCase cases[] = {{4, 2, 8, 5},    {8, 8, 16, 1},   {6, 1, 4, 33},  {8, 2, 64, 17},
                             {9, 3, 64, 300}, {4, 4, 80, 19},  {2, 1, 160, 7}, {3, 3, 128, 64}};
    for (tai_isa isa : tai_test::kIsas) {
    if (!tai_isa_supported(isa)) continue;
    const tai_kernels *kern = tai_kernels_get(isa);
    for (const auto &cs : cases) {
        const int64_t stride = cs.n_kv * cs.hd + 3;  // padded positions
        std::vector<float> q = tai_test::RandomFloats(cs.n_head * cs.hd, 1, -2, 2);
        std::vector<float> k = tai_test::RandomFloats(cs.n_pos * stride, 2, -2, 2);
        std::vector<float> v = tai_test::RandomFloats(cs.n_pos * stride, 3, -2, 2);
        std::vector<float> out(cs.n_head * cs.hd, 123.0f), att(cs.n_pos);
        kern->attention(out.data(), q.data(), k.data(), v.data(), cs.n_pos, stride, cs.n_head,
                        cs.n_kv, cs.hd, att.data());
        std::vector<double> want = NaiveAttention(q, k, v, cs.n_pos, stride, cs.n_head,
                                                  cs.n_kv, cs.hd);
        for (size_t i = 0; i < out.size(); i++)
            ASSERT_NEAR(out[i], want[i], 2e-5) << tai_isa_name(isa) << " " << cs.n_head << "/"
                                               << cs.n_kv << " hd " << cs.hd << " at " << i;
    }
    }
}

// The F16 KV cache's attention: on values a binary16 holds exactly, every
// ISA's F16 entry gives its F32 entry's result bit for bit (the widening is
// exact and the sums are the same), and that result is the naive one's.
TEST(Attention, F16CacheEqualsF32OnRepresentableValues) {
    const AttCase cases[] = {{4, 2, 8, 5},   {8, 8, 16, 1},  {6, 1, 4, 33},  {9, 3, 64, 300},
                             {4, 4, 80, 19}, {2, 1, 160, 7}, {3, 3, 128, 64}, {3, 1, 12, 18}};
    for (tai_isa isa : tai_test::kIsas) {
        if (!tai_isa_supported(isa)) continue;
        const tai_kernels *kern = tai_kernels_get(isa);
        ASSERT_NE(kern->attention_f16, nullptr) << tai_isa_name(isa);
        for (const auto &cs : cases) {
            const int64_t stride = cs.n_kv * cs.hd + 5;
            std::vector<float> q, k, v;
            RandomQkv(cs, stride, 4, &q, &k, &v);
            std::vector<uint16_t> kh(k.size()), vh(v.size());
            for (size_t i = 0; i < k.size(); i++) {  // rounded to binary16 and back
                kh[i] = tai_fp32_to_fp16(k[i]);
                k[i] = tai_fp16_to_fp32(kh[i]);
                vh[i] = tai_fp32_to_fp16(v[i]);
                v[i] = tai_fp16_to_fp32(vh[i]);
            }
            std::vector<float> o32(cs.n_head * cs.hd, 1.0f), o16(cs.n_head * cs.hd, 2.0f),
                att(cs.n_pos);
            kern->attention(o32.data(), q.data(), k.data(), v.data(), cs.n_pos, stride,
                            cs.n_head, cs.n_kv, cs.hd, att.data());
            kern->attention_f16(o16.data(), q.data(), kh.data(), vh.data(), cs.n_pos, stride,
                                cs.n_head, cs.n_kv, cs.hd, att.data());
            ASSERT_EQ(0, std::memcmp(o32.data(), o16.data(), o32.size() * sizeof(float)))
                << tai_isa_name(isa) << " " << cs.n_head << "/" << cs.n_kv << " hd " << cs.hd
                << " positions " << cs.n_pos;
            std::vector<double> want =
                NaiveAttention(q, k, v, cs.n_pos, stride, cs.n_head, cs.n_kv, cs.hd);
            for (size_t i = 0; i < o16.size(); i++)
                ASSERT_NEAR(o16[i], want[i], 2e-5) << tai_isa_name(isa) << " at " << i;
        }
    }
}

// An 8-bit cache: its codes and scales hold x to within half a scale, and
// every table's quantizer gives the portable one's bits.
TEST(F32ToQ8, WithinHalfAScaleAndTheSameBitsForEveryTable) {
    std::vector<float> x = tai_test::RandomFloats(32 * 70, 12, -3, 3);
    for (int i = 0; i < 32; i++) x[32 + i] = 0.0f;             // a block of zeros
    x[64] = 1e30f;                                              // a block with a huge value
    for (int i = 0; i < 32; i++) x[96 + i] = i % 2 ? 1e-30f : -1e-30f;  // tiny values
    std::vector<int8_t> c0(x.size()), c1(x.size());
    std::vector<float> s0(x.size() / 32), s1(x.size() / 32);
    tai_f32_to_q8_row(nullptr, x.data(), c0.data(), s0.data(), (int64_t)x.size());
    for (size_t i = 0; i < x.size(); i++) {
        const float d = s0[i / 32];
        ASSERT_GE(c0[i], -127) << i;
        ASSERT_LE(std::fabs((float)c0[i] * d - x[i]), 0.5f * d * 1.0001f + 1e-37f) << i;
    }
    EXPECT_EQ(s0[1], 0.0f);
    for (int i = 0; i < 32; i++) EXPECT_EQ(c0[32 + i], 0);
    for (tai_isa isa : tai_test::kIsas) {
        if (!tai_isa_supported(isa)) continue;
        const tai_kernels *kern = tai_kernels_get(isa);
        tai_f32_to_q8_row(kern->quantize_q8a, x.data(), c1.data(), s1.data(), (int64_t)x.size());
        ASSERT_EQ(0, std::memcmp(c0.data(), c1.data(), c0.size())) << tai_isa_name(isa);
        ASSERT_EQ(0, std::memcmp(s0.data(), s1.data(), s0.size() * sizeof(float)))
            << tai_isa_name(isa);
    }
}

// The activations' quantizers (q8a per 32, q8k per 256) of every table give
// the portable ones' bits where rounding is hardest: values that are a
// half-integer multiple of their block's scale (and one float either side
// of it), so that x / d lands on or next to k + 1/2, at scales from
// subnormal to 1e30, with zeros, infinities and NaNs; and on random blocks.
TEST(QuantizeActivations, EveryTableGivesThePortableBitsAtTheHalves) {
    std::vector<float> x;
    uint32_t seed = 7;
    auto rnd = [&seed]() {
        seed = seed * 1664525u + 1013904223u;
        return seed >> 8;
    };
    for (float amax : {1e-40f, 1e-30f, 3e-7f, 0.37f, 1.0f, 5.5f, 127.0f, 1000.3f, 6e29f}) {
        for (int rep = 0; rep < 256; rep++) {  // 8 blocks of 256 per scale
            const float d = amax / 127.0f;
            for (int j = 0; j < 32; j++) {
                float v;
                if (j == 0) {
                    v = rep % 2 ? -amax : amax;
                } else {
                    const int k = (int)(rnd() % 254) - 127;
                    v = ((float)k + 0.5f) * d;
                    const int w = (int)(rnd() % 3);
                    if (w == 1) v = std::nextafter(v, 1e38f);
                    if (w == 2) v = std::nextafter(v, -1e38f);
                    if (std::fabs(v) > amax) v = amax;
                }
                x.push_back(v);
            }
        }
    }
    for (int b = 0; b < 512; b++) {  // random blocks at random scales
        const float sc = std::ldexp(1.0f, (int)(rnd() % 120) - 60);
        for (int j = 0; j < 32; j++) x.push_back(((float)(rnd() % 20001) - 10000.0f) / 10000.0f * sc);
    }
    const size_t special = x.size();
    x.resize(special + 256, 0.0f);  // a block of zeros, then inf, NaN, a lone subnormal
    x[special + 32] = INFINITY;
    x[special + 33] = 2.0f;
    x[special + 64] = NAN;
    x[special + 65] = -3.0f;
    x[special + 96] = 1e-44f;
    ASSERT_EQ(x.size() % 256, 0u);
    const int64_t n = (int64_t)x.size();
    std::vector<tai_block_q8a> want(n / 32), got(n / 32);
    std::vector<tai_block_q8_k> wantk(n / 256), gotk(n / 256);
    tai_quantize_row_q8a(x.data(), want.data(), n);
    tai_quantize_row_q8k(x.data(), wantk.data(), n);
    for (tai_isa isa : tai_test::kIsas) {
        if (!tai_isa_supported(isa)) continue;
        const tai_kernels *kern = tai_kernels_get(isa);
        std::memset(got.data(), 0x55, got.size() * sizeof got[0]);
        kern->quantize_q8a(x.data(), got.data(), n);
        for (int64_t b = 0; b < n / 32; b++)
            ASSERT_EQ(0, std::memcmp(&want[b], &got[b], sizeof got[b])) << tai_isa_name(isa) << " block " << b;
        std::memset(gotk.data(), 0x55, gotk.size() * sizeof gotk[0]);
        kern->quantize_q8k(x.data(), gotk.data(), n);
        for (int64_t b = 0; b < n / 256; b++)
            ASSERT_EQ(0, std::memcmp(&wantk[b], &gotk[b], sizeof gotk[b])) << tai_isa_name(isa) << " q8k block " << b;
    }
}

// The 8-bit cache's attention (tai_attention_q8's contract): scores on the
// query's codes, integer dot products per block of 32. Every table's Q8
// entries against the portable one (the same scores; the softmax and the
// V sums within float rounding), all heads at once and one kv head from
// offset pointers the same bits as head by head (batch invariance), and
// within the query's quantization of float attention on the cache's
// values; a head size or stride that is not a multiple of 32, or a head
// past TAI_ATT_Q8_MAX_HEAD, computes nothing.
TEST(Attention, Q8CacheScoresOnTheQueryCodes) {
    const AttCase cases[] = {{9, 3, 64, 192}, {9, 3, 64, 1}, {4, 2, 32, 33}, {8, 8, 32, 64},
                             {6, 1, 64, 65},  {8, 1, 96, 97}, {12, 3, 128, 70}, {14, 2, 64, 300},
                             {2, 1, 256, 17}, {3, 1, 160, 15}};
    for (tai_isa isa : tai_test::kIsas) {
        if (!tai_isa_supported(isa)) continue;
        const tai_kernels *kern = tai_kernels_get(isa);
        ASSERT_NE(kern->attention_q8, nullptr) << tai_isa_name(isa);
        ASSERT_NE(kern->attention_q8_all, nullptr) << tai_isa_name(isa);
        for (const auto &cs : cases) {
            const int64_t stride = cs.n_kv * cs.hd + 32;
            std::vector<float> q, k, v;
            RandomQkv(cs, stride, 13, &q, &k, &v);
            const auto [kc, vc, ks, vs] = ToQ8Cache(k, v);
            for (size_t i = 0; i < k.size(); i++) {  // the values the cache holds
                k[i] = (float)kc[i] * ks[i / 32];
                v[i] = (float)vc[i] * vs[i / 32];
            }
            const size_t n_out = (size_t)cs.n_head * cs.hd;
            std::vector<float> ref(n_out, 1.0f), f32(n_out, 1.5f), got(n_out, 2.0f), att(cs.n_pos),
                all(tai_attention_all_scratch(cs.n_pos, cs.n_head, cs.hd) + 16, 7.0f);
            tai_attention_q8(ref.data(), q.data(), kc.data(), ks.data(), vc.data(), vs.data(),
                             cs.n_pos, stride, cs.n_head, cs.n_kv, cs.hd, att.data());
            tai_attention(f32.data(), q.data(), k.data(), v.data(), cs.n_pos, stride, cs.n_head,
                          cs.n_kv, cs.hd, att.data());
            kern->attention_q8(got.data(), q.data(), kc.data(), ks.data(), vc.data(), vs.data(),
                               cs.n_pos, stride, cs.n_head, cs.n_kv, cs.hd, att.data());
            const std::string what = CaseName(isa, cs);
            for (size_t i = 0; i < n_out; i++) {
                // the exps within float rounding, and so a weight's 16-bit
                // value now and then one step apart: each such step moves
                // the output by at most max |v| / 32767 (|v| <= 2 here)
                ASSERT_NEAR(got[i], ref[i], 2e-6f * (1.0f + std::fabs(ref[i])) + 3.0f * 2.0f / 32767.0f)
                    << what << " " << i;
                // the query's codes move each score by about 1% of its size
                ASSERT_NEAR(ref[i], f32[i], 0.03f) << what << " " << i;
            }
            // all heads at once, head by head: the same bits
            std::vector<float> one = got;
            std::fill(got.begin(), got.end(), 3.0f);
            kern->attention_q8_all(got.data(), q.data(), kc.data(), ks.data(), vc.data(),
                                   vs.data(), cs.n_pos, stride, cs.n_head, cs.n_kv, cs.hd,
                                   all.data() + 1);
            ASSERT_EQ(0, std::memcmp(one.data(), got.data(), n_out * sizeof(float))) << "all heads " << what;
            // one kv head's columns from offset pointers (the scales by e / 32)
            const int grp = cs.n_head / cs.n_kv, g = cs.n_kv - 1;
            std::fill(got.begin(), got.end(), 4.0f);
            kern->attention_q8(got.data() + g * grp * cs.hd, q.data() + g * grp * cs.hd,
                               kc.data() + g * cs.hd, ks.data() + g * cs.hd / 32,
                               vc.data() + g * cs.hd, vs.data() + g * cs.hd / 32, cs.n_pos,
                               stride, grp, 1, cs.hd, att.data());
            ASSERT_EQ(0, std::memcmp(one.data() + g * grp * cs.hd, got.data() + g * grp * cs.hd,
                                     (size_t)grp * cs.hd * sizeof(float)))
                << "kv head " << g << " " << what;
        }
        // not multiples of 32, or a head too large: nothing computed, nothing read past
        std::vector<float> out(8, 5.0f), q(8, 1.0f), att(4), sc(64, 1.0f);
        std::vector<int8_t> c(256, 1);
        kern->attention_q8(out.data(), q.data(), c.data(), sc.data(), c.data(), sc.data(), 4, 16,
                           1, 1, 8, att.data());
        kern->attention_q8_all(out.data(), q.data(), c.data(), sc.data(), c.data(), sc.data(), 4,
                               40, 1, 1, 8, att.data());
        kern->attention_q8(out.data(), q.data(), c.data(), sc.data(), c.data(), sc.data(), 0,
                           TAI_ATT_Q8_MAX_HEAD + 32, 1, 1, TAI_ATT_Q8_MAX_HEAD + 32, att.data());
        for (float o : out) EXPECT_EQ(o, 5.0f) << tai_isa_name(isa);
    }
}

// The 8-bit cache's V sums (tai_attention_q8's contract: per chunk of
// TAI_ATT_Q8_VCHUNK positions and block of 32 values, the weights to 16
// bits against their maximum, integer sums, one scaling): with a zero
// query every score is 0 and every exp exactly 1 on every table, so each
// table's result is the portable one's bit for bit, chunk boundaries, odd
// position counts, one-block heads and V scales spanning 2^10 included;
// and it is the mean of the cache's values within the weights' rounding.
TEST(Attention, Q8ValueSumsOnIntegersBitForBit) {
    const AttCase cases[] = {{9, 3, 64, 192}, {9, 3, 64, 1},   {4, 2, 32, 129}, {6, 1, 64, 257},
                             {8, 1, 96, 97},  {3, 3, 128, 300}, {2, 1, 160, 128}, {5, 5, 32, 2}};
    for (tai_isa isa : tai_test::kIsas) {
        if (!tai_isa_supported(isa)) continue;
        const tai_kernels *kern = tai_kernels_get(isa);
        for (const auto &cs : cases) {
            const int64_t stride = cs.n_kv * cs.hd + 32;
            std::vector<float> q, k, v;
            RandomQkv(cs, stride, 29, &q, &k, &v);
            std::fill(q.begin(), q.end(), 0.0f);
            for (size_t i = 0; i < v.size(); i++) v[i] *= std::ldexp(1.0f, (int)((i / 32) % 11) - 5);
            const auto [kc, vc, ks, vs] = ToQ8Cache(k, v);
            const size_t n_out = (size_t)cs.n_head * cs.hd;
            std::vector<float> ref(n_out, 1.0f), got(n_out, 2.0f), att(cs.n_pos),
                all(tai_attention_all_scratch(cs.n_pos, cs.n_head, cs.hd) + 16, 7.0f);
            tai_attention_q8(ref.data(), q.data(), kc.data(), ks.data(), vc.data(), vs.data(),
                             cs.n_pos, stride, cs.n_head, cs.n_kv, cs.hd, att.data());
            const std::string what = CaseName(isa, cs);
            kern->attention_q8(got.data(), q.data(), kc.data(), ks.data(), vc.data(), vs.data(),
                               cs.n_pos, stride, cs.n_head, cs.n_kv, cs.hd, att.data());
            ASSERT_EQ(0, std::memcmp(ref.data(), got.data(), n_out * sizeof(float))) << what;
            std::fill(got.begin(), got.end(), 3.0f);
            kern->attention_q8_all(got.data(), q.data(), kc.data(), ks.data(), vc.data(), vs.data(),
                                   cs.n_pos, stride, cs.n_head, cs.n_kv, cs.hd, all.data() + 1);
            ASSERT_EQ(0, std::memcmp(ref.data(), got.data(), n_out * sizeof(float))) << "all heads " << what;
            const int grp = cs.n_head / cs.n_kv;
            for (int h = 0; h < cs.n_head; h++)
                for (int d = 0; d < cs.hd; d++) {
                    // each weight (a scale, the exps being 1) within half a
                    // step of the largest scale / 32767
                    double mean = 0.0, smax = 0.0, codes = 0.0;
                    for (int64_t p = 0; p < cs.n_pos; p++) {
                        const int64_t i = p * stride + (h / grp) * cs.hd + d;
                        mean += (double)vc[i] * vs[i / 32];
                        smax = std::max(smax, (double)vs[i / 32]);
                        codes += std::abs((int)vc[i]);
                    }
                    mean /= (double)cs.n_pos;
                    ASSERT_NEAR(ref[(size_t)h * cs.hd + d], mean,
                                1e-6 + 0.5 * smax / 32767.0 * codes / (double)cs.n_pos)
                        << what << " head " << h << " " << d;
                }
        }
    }
}

// A query whose score decides the softmax: one position whose key is the
// query's own codes gets (almost) all the weight on every table, so the
// output is that position's V row; the scores use each position's own
// scale (a transposed or misplaced lane would pick another row).
TEST(Attention, Q8ScoresPickTheMatchingPosition) {
    const int hd = 64, n_pos = 37;
    for (tai_isa isa : tai_test::kIsas) {
        if (!tai_isa_supported(isa)) continue;
        const tai_kernels *kern = tai_kernels_get(isa);
        for (int64_t hit : {0, 5, 16, 31, 36}) {
            std::vector<float> q(hd), k((size_t)n_pos * hd), v((size_t)n_pos * hd);
            for (int i = 0; i < hd; i++) q[i] = (i % 7 - 3) * 4.0f;
            for (int64_t p = 0; p < n_pos; p++)
                for (int i = 0; i < hd; i++) {
                    k[p * hd + i] = p == hit ? q[i] : ((i + p) % 5 - 2) * 0.01f;
                    v[p * hd + i] = (float)p + (float)i / 128.0f;
                }
            const auto [kc, vc, ks, vs] = ToQ8Cache(k, v);
            std::vector<float> out(hd), att(n_pos), all(tai_attention_all_scratch(n_pos, 1, hd) + 16);
            for (int both = 0; both < 2; both++) {
                (both ? kern->attention_q8_all : kern->attention_q8)(
                    out.data(), q.data(), kc.data(), ks.data(), vc.data(), vs.data(), n_pos, hd, 1, 1,
                    hd, both ? all.data() : att.data());
                for (int i = 0; i < hd; i++)
                    ASSERT_NEAR(out[i], (float)vc[hit * hd + i] * vs[(hit * hd + i) / 32], 1e-3f)
                        << tai_isa_name(isa) << " hit " << hit << " " << i;
            }
        }
    }
}

// All heads of a column in one call (attention_all and attention_f16_all,
// the AVX-512 ones a sweep over the rows) equal the head-by-head kernels
// bit for bit: group
// sizes 1 to 8 (the sweep takes 3 query heads at a time), head sizes with
// partial vectors and more than 4 of them, odd position counts and ones past
// its 32-position chunks.
TEST(Attention, AllHeadsAtOnceEqualsHeadByHead) {
    const AttCase cases[] = {{9, 3, 64, 192}, {9, 3, 64, 1},   {9, 3, 64, 33},  {4, 2, 8, 5},
                             {8, 8, 16, 64},  {6, 1, 4, 65},   {8, 1, 80, 97},  {4, 4, 80, 19},
                             {2, 1, 160, 7},  {12, 3, 128, 70}, {5, 5, 12, 31}, {14, 2, 64, 300}};
    for (tai_isa isa : tai_test::kIsas) {
        if (!tai_isa_supported(isa)) continue;
        const tai_kernels *kern = tai_kernels_get(isa);
        ASSERT_NE(kern->attention_f16_all, nullptr) << tai_isa_name(isa);
        ASSERT_NE(kern->attention_all, nullptr) << tai_isa_name(isa);
        for (const auto &cs : cases) {
            const int64_t stride = cs.n_kv * cs.hd + 2;
            std::vector<float> q, k, v;
            RandomQkv(cs, stride, 9, &q, &k, &v);
            std::vector<uint16_t> kh(k.size()), vh(v.size());
            for (size_t i = 0; i < k.size(); i++) kh[i] = tai_fp32_to_fp16(k[i]);
            for (size_t i = 0; i < v.size(); i++) vh[i] = tai_fp32_to_fp16(v[i]);
            std::vector<float> want(cs.n_head * cs.hd, 1.0f), got(cs.n_head * cs.hd, 2.0f),
                att(cs.n_pos),
                all(tai_attention_all_scratch(cs.n_pos, cs.n_head, cs.hd) + 16, 7.0f);
            // head by head, as the device runs one (column, kv head) at a time
            const int grp = cs.n_head / cs.n_kv;
            for (int g = 0; g < cs.n_kv; g++)
                kern->attention_f16(want.data() + g * grp * cs.hd, q.data() + g * grp * cs.hd,
                                    kh.data() + g * cs.hd, vh.data() + g * cs.hd, cs.n_pos, stride,
                                    grp, 1, cs.hd, att.data());
            kern->attention_f16_all(got.data(), q.data(), kh.data(), vh.data(), cs.n_pos, stride,
                                    cs.n_head, cs.n_kv, cs.hd, all.data() + 1);  // unaligned
            ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)))
                << tai_isa_name(isa) << " " << cs.n_head << "/" << cs.n_kv << " hd " << cs.hd
                << " positions " << cs.n_pos;
            // and the float cache's pair
            for (int g = 0; g < cs.n_kv; g++)
                kern->attention(want.data() + g * grp * cs.hd, q.data() + g * grp * cs.hd,
                                k.data() + g * cs.hd, v.data() + g * cs.hd, cs.n_pos, stride, grp,
                                1, cs.hd, att.data());
            kern->attention_all(got.data(), q.data(), k.data(), v.data(), cs.n_pos, stride,
                                cs.n_head, cs.n_kv, cs.hd, all.data() + 3);
            ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)))
                << "F32 " << tai_isa_name(isa) << " " << cs.n_head << "/" << cs.n_kv << " hd "
                << cs.hd << " positions " << cs.n_pos;
        }
    }
}

// Consecutive queries of one sequence at once (attention_multi, where a
// table has it: a prompt's columns reading the cache once) equal each query
// alone through attention_all / attention_f16_all bit for bit: 1 to
// TAI_ATT_MULTI_MAX queries, first query positions around the 16-position
// score blocks and 32-position V chunks (so queries end in different
// chunks, odd and even), the head shapes above.
TEST(Attention, ConsecutiveQueriesAtOnceEqualOneByOne) {
    const AttCase shapes[] = {{9, 3, 64, 0}, {4, 2, 8, 0},  {8, 8, 16, 0}, {6, 1, 4, 0},
                              {8, 1, 80, 0}, {2, 1, 160, 0}, {5, 5, 12, 0}, {14, 2, 64, 0}};
    int tables = 0;
    for (tai_isa isa : tai_test::kIsas) {
        if (!tai_isa_supported(isa)) continue;
        const tai_kernels *kern = tai_kernels_get(isa);
        if (!kern->attention_multi) continue;
        tables++;
        for (const auto &shape : shapes)
            for (int64_t n0 : {1, 2, 15, 16, 17, 30, 31, 32, 33, 63, 100, 250})
                for (int nq : {1, 2, 3, 5, 8}) {
                    AttCase cs = shape;
                    cs.n_pos = n0 + nq - 1;
                    const int64_t stride = cs.n_kv * cs.hd + 2, qd = (int64_t)cs.n_head * cs.hd;
                    std::vector<float> q1, k, v;
                    RandomQkv(cs, stride, (uint32_t)(n0 * 31 + nq), &q1, &k, &v);
                    const std::vector<float> q = tai_test::RandomFloats(qd * nq, (uint32_t)n0 + 99, -2, 2);
                    std::vector<uint16_t> kh(k.size()), vh(v.size());
                    for (size_t i = 0; i < k.size(); i++) kh[i] = tai_fp32_to_fp16(k[i]);
                    for (size_t i = 0; i < v.size(); i++) vh[i] = tai_fp32_to_fp16(v[i]);
                    const int64_t per = (tai_attention_all_scratch(cs.n_pos, cs.n_head, cs.hd) + 15) / 16 * 16;
                    for (int kind = 0; kind < 2; kind++) {
                        std::vector<float> want(qd * nq, 1.0f), got(qd * nq, 2.0f),
                            one(tai_attention_all_scratch(cs.n_pos, cs.n_head, cs.hd) + 16, 7.0f),
                            all(per * nq + 16, 7.0f);
                        for (int i = 0; i < nq; i++) {
                            if (kind)
                                kern->attention_f16_all(want.data() + i * qd, q.data() + i * qd, kh.data(),
                                                        vh.data(), n0 + i, stride, cs.n_head, cs.n_kv, cs.hd,
                                                        one.data());
                            else
                                kern->attention_all(want.data() + i * qd, q.data() + i * qd, k.data(), v.data(),
                                                    n0 + i, stride, cs.n_head, cs.n_kv, cs.hd, one.data());
                        }
                        kern->attention_multi(got.data(), q.data(), qd,
                                              kind ? (const void *)kh.data() : (const void *)k.data(),
                                              kind ? (const void *)vh.data() : (const void *)v.data(), kind, n0,
                                              nq, stride, cs.n_head, cs.n_kv, cs.hd, all.data() + 1, per);
                        ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)))
                            << tai_isa_name(isa) << (kind ? " F16 " : " F32 ") << cs.n_head << "/" << cs.n_kv
                            << " hd " << cs.hd << " first query's positions " << n0 << ", " << nq
                            << " queries";
                    }
                }
    }
    if (tai_isa_supported(TAI_ISA_AVX512)) {
        EXPECT_GT(tables, 0) << "the AVX-512 table has attention_multi";
    }
}

// Floats into an F16 cache: every ISA's conversion is the portable one bit
// for bit, over normal values, ties, halves' subnormals, values past 65504,
// infinities, NaNs and odd lengths.
TEST(F32ToF16, EveryIsaMatchesThePortableConversion) {
    std::vector<float> src = tai_test::RandomFloats(1000, 7, -70000, 70000);
    const float special[] = {0.0f,     -0.0f,     1.0f,       65504.0f, 65520.0f,  65519.99f,
                             1e-8f,    -3e-8f,    6.1e-5f,    5.96e-8f, 2.98e-8f,  1.0009765625f,
                             INFINITY, -INFINITY, NAN,        -NAN,     1e30f,     -1e-30f,
                             0.33333f, 2049.0f,   2051.0f,    -4097.0f, 1.00048828125f};
    src.insert(src.begin(), std::begin(special), std::end(special));
    for (float &f : tai_test::RandomFloats(500, 8, -1e-3f, 1e-3f)) src.push_back(f);
    for (tai_isa isa : tai_test::kIsas) {
        if (!tai_isa_supported(isa)) continue;
        const tai_kernels *kern = tai_kernels_get(isa);
        ASSERT_NE(kern->f32_to_f16, nullptr);
        for (int64_t n : {(int64_t)src.size(), (int64_t)17, (int64_t)7, (int64_t)1, (int64_t)0}) {
            std::vector<uint16_t> want(n + 1, 0xabcd), got(n + 1, 0xabcd);
            tai_f32_to_f16_row(src.data(), want.data(), n);
            kern->f32_to_f16(src.data(), got.data(), n);
            for (int64_t i = 0; i < n; i++)
                ASSERT_EQ(got[i], want[i]) << tai_isa_name(isa) << " at " << i << " of " << n
                                           << ": " << src[i];
            EXPECT_EQ(got[n], 0xabcd) << "wrote past the end";
            for (int64_t i = 0; i < n; i++) {
                if (std::isnan(src[i]) || std::fabs(src[i]) > 65504.0f) continue;
                ASSERT_LE(std::fabs(tai_fp16_to_fp32(want[i]) - src[i]),
                          std::max(std::fabs(src[i]) / 2048.0f, 3e-8f))
                    << src[i];
            }
        }
    }
}

// A gated unit's kernel (the table entry `glu`) of one ISA against double
// precision: gates from seed and special values first (n >= 7), then each
// output finite and within tol(g, want) of act(g) * up.
static void ExpectGluMatchesDouble(tai_isa isa, tai_silu_mul_fn tai_kernels::*glu,
                                   std::initializer_list<int64_t> lengths, uint32_t seed,
                                   const std::vector<float> &special, double (*act)(double),
                                   double (*tol)(double g, double want)) {
    for (int64_t n : lengths) {
        std::vector<float> g = tai_test::RandomFloats(n, seed + (uint32_t)n, -12, 12);
        std::vector<float> up = tai_test::RandomFloats(n, seed + 10 + (uint32_t)n, -3, 3);
        if (n >= 7) std::copy(special.begin(), special.end(), g.begin());
        std::vector<float> out = g;
        (tai_kernels_get(isa)->*glu)(out.data(), up.data(), n);
        for (int64_t i = 0; i < n; i++) {
            const double want = act(g[i]) * up[i];
            ASSERT_TRUE(std::isfinite(out[i])) << tai_isa_name(isa) << " " << g[i];
            ASSERT_NEAR(out[i], want, tol(g[i], want)) << tai_isa_name(isa) << " g=" << g[i];
        }
    }
}

// Every ISA's silu_mul against double precision, over lengths with partial
// vectors and inputs where e^-g overflows or underflows.
TEST(SiluMul, EveryIsaMatchesDouble) {
    for (tai_isa isa : tai_test::kIsas) {
        if (!tai_isa_supported(isa)) continue;
        ExpectGluMatchesDouble(
            isa, &tai_kernels::silu_mul, {1, 7, 16, 37, 1536}, 10, {-120.0f, 120.0f, 0.0f, -88.0f, 1e-30f},
            [](double x) { return x / (1.0 + std::exp(-x)); },
            [](double, double want) { return 2e-6 * std::fabs(want) + 1e-30; });
    }
}

// Every ISA's gelu_mul (GELU's tanh form) against double precision, over
// lengths with partial vectors and inputs where e^-2z overflows, underflows
// or g^3 overflows; NaN stays NaN. The error allowed grows with |2z|, the
// exponent's argument, whose float rounding e^x amplifies.
static double GeluZ(double x) { return 0.7978845608028654 * (x + 0.044715 * x * x * x); }
TEST(GeluMul, EveryIsaMatchesDouble) {
    for (tai_isa isa : tai_test::kIsas) {
        if (!tai_isa_supported(isa)) continue;
        ExpectGluMatchesDouble(
            isa, &tai_kernels::gelu_mul, {1, 7, 16, 37, 2048}, 50,
            {-120.0f, 120.0f, 0.0f, 1e20f, 1e-30f, -1e20f, -4.5f},
            // 0.5 x (1 + tanh z), without the cancellation of 1 + tanh z
            // (in double too: tanh z is -1 below z ~ -19, gelu is not 0)
            [](double x) { return x / (1.0 + std::exp(-2 * GeluZ(x))); },
            // past |2z| = 100 e^-2z is 0 or inf in float: exact g or -0
            [](double x, double want) {
                return (2e-6 + 2e-7 * std::min(std::fabs(2 * GeluZ(x)), 100.0)) * std::fabs(want) + 1e-30;
            });
        float nan[3] = {NAN, 1.0f, -2.0f}, one[3] = {1.0f, 1.0f, 1.0f};
        tai_kernels_get(isa)->gelu_mul(nan, one, 3);
        EXPECT_TRUE(std::isnan(nan[0])) << tai_isa_name(isa);
        EXPECT_NEAR(nan[1], 0.8411920, 1e-6) << tai_isa_name(isa);  // gelu(1)
        EXPECT_NEAR(nan[2], -0.0454023, 1e-6) << tai_isa_name(isa); // gelu(-2)
    }
}

// Every ISA's residual addition gives each element's float sum exactly,
// over lengths with partial vectors, and adds an array to itself.
TEST(Add, EveryIsaIsTheElementwiseSum) {
    for (tai_isa isa : tai_test::kIsas) {
        if (!tai_isa_supported(isa)) continue;
        for (int64_t n : {1, 7, 8, 15, 16, 63, 64, 65, 576, 9216 + 13}) {
            std::vector<float> x = tai_test::RandomFloats(n, 30 + (uint32_t)n, -50, 50);
            std::vector<float> d = tai_test::RandomFloats(n, 40 + (uint32_t)n, -50, 50);
            std::vector<float> out = x;
            out.push_back(7.0f); // past the end: must stay
            tai_kernels_get(isa)->add(out.data(), d.data(), n);
            for (int64_t i = 0; i < n; i++)
                ASSERT_EQ(out[i], x[i] + d[i]) << tai_isa_name(isa) << " n=" << n << " i=" << i;
            ASSERT_EQ(out[n], 7.0f) << tai_isa_name(isa) << " n=" << n;
            std::vector<float> twice = x;
            tai_kernels_get(isa)->add(twice.data(), twice.data(), n);
            for (int64_t i = 0; i < n; i++) ASSERT_EQ(twice[i], x[i] + x[i]);
        }
    }
}

TEST(Rope, AnglesThenApplyEqualsRope) {
    for (int64_t pos : {0, 1, 77, 100000}) {
        std::vector<float> x = tai_test::RandomFloats(3 * 64, 5), y = x;
        tai_rope(x.data(), 3, 64, 48, pos, 10000.0f);
        std::vector<float> cs(48);
        tai_rope_angles(cs.data(), 48, pos, 10000.0f);
        tai_rope_apply(y.data(), 3, 64, 48, cs.data());
        EXPECT_EQ(x, y) << pos;
    }
}

// With one position the output is exactly that position's value vector of
// the mapped kv head, which pins the GQA mapping down.
TEST(Attention, SinglePositionCopiesMappedValueHead) {
    const int n_head = 4, n_kv = 2, hd = 2;
    const float q[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const float k[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    const float v[4] = {10, 11, 20, 21};  // kv head 0: (10, 11), kv head 1: (20, 21)
    float out[8], att[1];
    tai_attention(out, q, k, v, 1, 4, n_head, n_kv, hd, att);
    const float want[8] = {10, 11, 10, 11, 20, 21, 20, 21};
    for (int i = 0; i < 8; i++) EXPECT_FLOAT_EQ(out[i], want[i]) << i;
}

TEST(Embedding, RowsOfEveryType) {
    const int64_t n = 64, rows = 5;
    std::vector<float> f = tai_test::RandomFloats(n * rows, 8);
    for (tai_type t : tai_test::kTypes) {
        size_t rb = tai_type_row_bytes(t, n);
        std::vector<uint8_t> table(rb * rows);
        for (int64_t r = 0; r < rows; r++)
            tai_quantize_row(t, f.data() + r * n, table.data() + r * rb, n);
        for (int64_t r : {0, 3, 4}) {
            std::vector<float> got(n), want(n);
            tai_embedding_row(t, table.data(), r, n, got.data());
            tai_dequantize_row(t, table.data() + r * rb, want.data(), n);
            EXPECT_EQ(got, want) << tai_type_name(t) << " row " << r;
            // and it is close to the original row
            EXPECT_LE(tai_test::Nrmse(got.data(), f.data() + r * n, n), 0.2) << tai_type_name(t);
        }
    }
}

}  // namespace

// Every ISA's argmax (the kernel table's entry) equals the reference scan
// for every length around the 64-value steps, with ties across lanes, the
// largest in the tail, NaNs at 0 / anywhere / everywhere, all -inf.
TEST(Argmax, EveryIsaEqualsTheScan) {
    uint32_t r = 99;
    auto next = [&]() { return r = r * 1664525u + 1013904223u; };
    for (tai_isa isa : tai_test::kIsas) {
        if (!tai_isa_supported(isa)) continue;
        const tai_kernels *kern = tai_kernels_get(isa);
        ASSERT_NE(kern->argmax, nullptr) << tai_isa_name(isa);
        for (int64_t n : {1, 2, 15, 63, 64, 65, 127, 128, 129, 1000, 49152}) {
            for (int round = 0; round < 7; round++) {
                std::vector<float> x(n);
                for (float &v : x) v = (float)(next() >> 26); /* 64 values: many ties */
                if (round == 1) x[0] = NAN;
                if (round == 2) x[next() % n] = NAN;
                if (round == 3)
                    for (float &v : x) v = -INFINITY;
                if (round == 4) x[n - 1] = 1000.0f;
                if (round == 5)
                    for (float &v : x) v = NAN;
                if (round == 6 && n > 1) x[0] = 1000.0f, x[n / 2] = 1000.0f;
                EXPECT_EQ(kern->argmax(x.data(), n), tai_argmax(x.data(), n))
                    << tai_isa_name(isa) << " n " << n << " round " << round;
            }
        }
    }
}
