// Q5_0, Q5_1, IQ4_NL, the K-quants and BF16: their dequantization against
// the gguf Python package's (an independent reference, run as a test-time
// tool), TinyAI's quantizers (ggml's byte for byte where the package has
// one, bounded error everywhere), packing (exactly invertible, rows and
// blocks of every shape), and every ISA variant's product against the
// row-major reference, for any thread count and batch.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <unistd.h>

#include "kernel_test_util.h"
#include "kernels/kernels.h"

namespace {

using tai_test::kIsas;

const tai_type kUnitTypes[] = {TAI_TYPE_Q5_0, TAI_TYPE_Q5_1, TAI_TYPE_IQ4_NL, TAI_TYPE_Q2_K,
                               TAI_TYPE_Q3_K, TAI_TYPE_Q4_K, TAI_TYPE_Q5_K,   TAI_TYPE_Q6_K,
                               TAI_TYPE_Q8_K, TAI_TYPE_BF16};

std::string Python() {
    const char *cache = std::getenv("TINYAI_CACHE");
    const char *home = std::getenv("HOME");
    return (cache && *cache ? std::string(cache) : std::string(home ? home : "") + "/.cache/tinyai") +
           "/pyenv/bin/python";
}

std::string tai_test_tmp(const char *suffix) {
    static int k = 0;
    const char *d = std::getenv("TEST_TMPDIR");
    return std::string(d && *d ? d : "/tmp") + "/unit_types_" + std::to_string(getpid()) + "_" +
           std::to_string(k++) + suffix;
}

std::vector<uint8_t> ReadAll(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void WriteAll(const std::string &path, const void *p, size_t n) {
    std::ofstream f(path, std::ios::binary);
    f.write(static_cast<const char *>(p), (std::streamsize)n);
}

// The package's output for `mode` (quantize / dequantize) of rows of bytes.
std::vector<uint8_t> Gguf(const char *mode, tai_type t, int64_t rows, const void *in, size_t bytes) {
    const std::string src = tai_test_tmp(".in"), dst = tai_test_tmp(".out");
    WriteAll(src, in, bytes);
    const std::string cmd = Python() + " tests/kernels/gguf_quants.py " + mode + " " +
                            tai_type_name(t) + " " + std::to_string(rows) + " " + src + " " + dst +
                            " 2>&1";
    const int st = std::system(cmd.c_str());
    std::vector<uint8_t> out = ReadAll(dst);
    std::remove(src.c_str());
    std::remove(dst.c_str());
    if (st != 0) ADD_FAILURE() << cmd << " failed (run scripts/setup.sh: the gguf package)";
    return out;
}

// Rows of valid blocks: quantized random values of different sizes, and
// for the block types some blocks of random bytes with a sane scale (every
// code, scale and minimum bit pattern shows up).
std::vector<uint8_t> RandomRows(tai_type t, int64_t rows, int64_t n, uint32_t seed) {
    const size_t rb = tai_type_row_bytes(t, n);
    std::vector<uint8_t> w = tai_test::MakeWeights(t, rows, n, rb, seed);
    const int64_t be = tai_type_block_elems(t);
    if (be == 1) return w;
    const size_t bb = tai_type_block_bytes(t);
    std::mt19937 rng(seed);
    for (int64_t r = 0; r < rows; r += 2)
        for (int64_t b = 1; b < n / be; b += 3) {
            uint8_t *blk = w.data() + r * rb + b * bb;
            for (size_t i = 0; i < bb; i++) blk[i] = (uint8_t)rng();
            // the fp16 scales finite and small: where they sit per type
            const uint16_t d = (uint16_t)(0x2000 + rng() % 0x1000);
            switch (t) {
            case TAI_TYPE_Q5_0:
            case TAI_TYPE_IQ4_NL: std::memcpy(blk, &d, 2); break;
            case TAI_TYPE_Q5_1:
            case TAI_TYPE_Q4_K:
            case TAI_TYPE_Q5_K:
                std::memcpy(blk, &d, 2);
                std::memcpy(blk + 2, &d, 2);
                break;
            case TAI_TYPE_Q2_K:
                std::memcpy(blk + 80, &d, 2);
                std::memcpy(blk + 82, &d, 2);
                break;
            case TAI_TYPE_Q3_K: std::memcpy(blk + 108, &d, 2); break;
            case TAI_TYPE_Q6_K: std::memcpy(blk + 208, &d, 2); break;
            case TAI_TYPE_Q8_K: {
                const float f = 0.01f;
                std::memcpy(blk, &f, 4);
                // bsums consistent with the codes (the packed form recomputes them)
                int16_t s[16] = {0};
                for (int e = 0; e < 256; e++) s[e / 16] = (int16_t)(s[e / 16] + (int8_t)blk[4 + e]);
                std::memcpy(blk + 260, s, 32);
                break;
            }
            default: break;
            }
        }
    return w;
}

int64_t NFor(tai_type t, int k) {  // a few row lengths per type
    const int64_t be = tai_type_block_elems(t);
    if (be == 256) return 256 * (k + 1) + (k == 2 ? 256 : 0);
    if (be == 32) return k == 0 ? 96 : k == 1 ? 256 : 1216;  // odd block counts included
    return k == 0 ? 48 : k == 1 ? 256 : 1216;
}

class UnitTypes : public ::testing::TestWithParam<tai_type> {};

TEST_P(UnitTypes, SizesAndNames) {
    const tai_type t = GetParam();
    EXPECT_TRUE(tai_type_valid(t));
    EXPECT_STRNE(tai_type_name(t), "?");
    const int64_t n = 768;
    EXPECT_GT(tai_type_row_bytes(t, n), 0u);
    const size_t pb = tai_pack_panel_bytes(t, n);
    ASSERT_GT(pb, 0u);
    EXPECT_EQ(pb % 64, 0u);
    // within 6% of the GGUF bytes it holds
    EXPECT_LE((double)pb, 1.06 * TAI_PANEL * (double)tai_type_row_bytes(t, n));
    if (tai_type_block_elems(t) == 256) {
        EXPECT_EQ(tai_type_row_bytes(t, 100 * 32), 0u);
    }
}

TEST_P(UnitTypes, DequantizeEqualsTheGgufPackage) {
    const tai_type t = GetParam();
    const int64_t rows = 6, n = 1024;
    std::vector<uint8_t> w = RandomRows(t, rows, n, 77);
    std::vector<float> mine(rows * n);
    const size_t rb = tai_type_row_bytes(t, n);
    for (int64_t r = 0; r < rows; r++) tai_dequantize_row(t, w.data() + r * rb, mine.data() + r * n, n);
    std::vector<uint8_t> ref;
    if (t == TAI_TYPE_Q8_K) {  // the package has no Q8_K dequantizer: d * q, here
        ref.resize(mine.size() * 4);
        for (int64_t b = 0; b < rows * n / 256; b++) {
            const uint8_t *blk = w.data() + b * 292;
            float d;
            std::memcpy(&d, blk, 4);
            for (int e = 0; e < 256; e++) {
                const float v = d * (float)(int8_t)blk[4 + e];
                std::memcpy(ref.data() + (b * 256 + e) * 4, &v, 4);
            }
        }
    } else {
        ref = Gguf("dequantize", t, rows, w.data(), w.size());
    }
    ASSERT_EQ(ref.size(), mine.size() * 4);
    const float *rf = reinterpret_cast<const float *>(ref.data());
    int bad = 0;
    for (size_t i = 0; i < mine.size() && bad < 5; i++)
        if (!(std::fabs(mine[i] - rf[i]) <= 1e-6f * std::fabs(rf[i]))) {
            ADD_FAILURE() << tai_type_name(t) << " element " << i << ": " << mine[i] << " vs " << rf[i];
            bad++;
        }
}

TEST_P(UnitTypes, QuantizeIsGgmlsWhereThePackageHasItAndCloseEverywhere) {
    const tai_type t = GetParam();
    const int64_t rows = 4, n = 512;
    std::vector<float> x = tai_test::RandomFloats(rows * n, 5, -2.0f, 2.0f);
    const size_t rb = tai_type_row_bytes(t, n);
    std::vector<uint8_t> q(rows * rb);
    for (int64_t r = 0; r < rows; r++) tai_quantize_row(t, x.data() + r * n, q.data() + r * rb, n);
    if (t == TAI_TYPE_Q5_0 || t == TAI_TYPE_Q5_1 || t == TAI_TYPE_BF16) {
        std::vector<uint8_t> ref = Gguf("quantize", t, rows, x.data(), x.size() * 4);
        ASSERT_EQ(ref.size(), q.size());
        EXPECT_EQ(std::memcmp(ref.data(), q.data(), q.size()), 0) << tai_type_name(t);
    }
    std::vector<float> back(rows * n);
    for (int64_t r = 0; r < rows; r++) tai_dequantize_row(t, q.data() + r * rb, back.data() + r * n, n);
    // relative RMS error of uniform values: about 2^-bits
    const double tol = t == TAI_TYPE_BF16 ? 0.005 : t == TAI_TYPE_Q8_K ? 0.01 : t == TAI_TYPE_Q2_K ? 0.35
                       : t == TAI_TYPE_Q3_K ? 0.2 : t == TAI_TYPE_Q6_K ? 0.03 : 0.1;
    EXPECT_LE(tai_test::Nrmse(back.data(), x.data(), x.size()), tol) << tai_type_name(t);
    // all zeros stay zeros
    std::vector<float> z(n, 0.0f), zb(n, 1.0f);
    std::vector<uint8_t> zq(rb);
    tai_quantize_row(t, z.data(), zq.data(), n);
    tai_dequantize_row(t, zq.data(), zb.data(), n);
    for (float v : zb) ASSERT_EQ(v, 0.0f) << tai_type_name(t);
}

TEST_P(UnitTypes, PackingIsExactlyInvertible) {
    const tai_type t = GetParam();
    for (int k = 0; k < 3; k++)
        for (int64_t rows : {1, 17, 35}) {
            const int64_t n = NFor(t, k);
            const size_t rb = tai_type_row_bytes(t, n);
            std::vector<uint8_t> w = RandomRows(t, rows, n, 9 + (uint32_t)rows);
            tai_test::AlignedBuf p = tai_test::Pack(t, w.data(), rows, n);
            std::vector<uint8_t> back(rb);
            std::vector<float> f(n), g(n);
            for (int64_t r = 0; r < rows; r++) {
                tai_unpack_row(t, p.data(), rows, n, r, back.data());
                ASSERT_EQ(std::memcmp(back.data(), w.data() + r * rb, rb), 0)
                    << tai_type_name(t) << " n " << n << " row " << r;
                tai_packed_row(t, p.data(), rows, n, r, f.data());
                tai_dequantize_row(t, w.data() + r * rb, g.data(), n);
                ASSERT_EQ(std::memcmp(f.data(), g.data(), n * 4), 0) << tai_type_name(t) << " row " << r;
            }
        }
}

// Every ISA's product against the row-major reference (prepared the same
// way), at several thread counts with the same bits.
TEST_P(UnitTypes, EveryVariantMatchesTheReference) {
    const tai_type t = GetParam();
    for (tai_isa isa : kIsas) {
        if (!tai_isa_supported(isa)) continue;
        const tai_kernels *kt = tai_kernels_get(isa);
        ASSERT_NE(kt->gemm[t], nullptr) << tai_isa_name(isa);
        for (int64_t ncols : {1, 3, 8, 13}) {
            const int64_t rows = 37, n = NFor(t, 2);
            const size_t rb = tai_type_row_bytes(t, n);
            std::vector<uint8_t> w = RandomRows(t, rows, n, 31);
            std::vector<float> x = tai_test::RandomFloats(n * ncols, 21);
            tai_test::AlignedBuf scratch(tai_matmul_scratch_bytes(t, n, ncols));
            tai_test::AlignedBuf wp(tai_pack_bytes(t, rows, n));
            tai_pack_matrix(nullptr, t, w.data(), rows, n, wp.data());
            std::vector<float> y1(rows * ncols, -7.0f);
            tai_matmul(kt, nullptr, t, wp.data(), rows, n, x.data(), y1.data(), ncols, scratch.data());
            tai_pool *pool = nullptr;
            ASSERT_EQ(tai_pool_create(3, &pool), 0);
            std::vector<float> y3(rows * ncols, -9.0f);
            tai_matmul(kt, pool, t, wp.data(), rows, n, x.data(), y3.data(), ncols, scratch.data());
            tai_pool_destroy(pool);
            ASSERT_EQ(std::memcmp(y1.data(), y3.data(), y1.size() * 4), 0) << tai_isa_name(isa);
            const tai_prep pp = tai_prep_for(t);
            const size_t cb = tai_prep_col_bytes(pp, n);
            std::vector<uint8_t> xp(cb * ncols);
            for (int64_t c = 0; c < ncols; c++) tai_prep_col(pp, x.data() + c * n, xp.data() + c * cb, n);
            std::vector<float> yr(rows * ncols);
            tai_rows_ref(t)(w.data(), rb, xp.data(), cb, yr.data(), rows, n, 0, rows, ncols);
            EXPECT_LE(tai_test::Nrmse(y1.data(), yr.data(), yr.size()), 2e-5)
                << tai_type_name(t) << " " << tai_isa_name(isa) << " " << ncols << " columns";
        }
    }
}

// A column's product is the same bits alone or among others (streaming
// and multi-column loops alike), with K long enough for several slices.
TEST_P(UnitTypes, EachColumnEqualsItsProductAlone) {
    const tai_type t = GetParam();
    for (tai_isa isa : kIsas) {
        if (!tai_isa_supported(isa)) continue;
        const tai_kernels *kt = tai_kernels_get(isa);
        const int64_t rows = 40, n = tai_type_block_elems(t) == 256 ? 4608 : 4160, max_cols = 21;
        std::vector<uint8_t> w = RandomRows(t, rows, n, 3);
        std::vector<float> x = tai_test::RandomFloats(n * max_cols, 17);
        tai_test::AlignedBuf wp(tai_pack_bytes(t, rows, n));
        tai_pack_matrix(nullptr, t, w.data(), rows, n, wp.data());
        tai_test::AlignedBuf scratch(tai_matmul_scratch_bytes(t, n, max_cols));
        std::vector<float> alone(rows * max_cols);
        for (int64_t c = 0; c < max_cols; c++)
            tai_matmul(kt, nullptr, t, wp.data(), rows, n, x.data() + c * n, alone.data() + c * rows, 1,
                       scratch.data());
        for (int64_t ncols : {2, 5, 8, 9, 21}) {
            std::vector<float> y(rows * ncols, -3.0f);
            tai_matmul(kt, nullptr, t, wp.data(), rows, n, x.data(), y.data(), ncols, scratch.data());
            ASSERT_EQ(std::memcmp(y.data(), alone.data(), y.size() * 4), 0)
                << tai_type_name(t) << " " << tai_isa_name(isa) << " " << ncols << " columns";
        }
    }
}

INSTANTIATE_TEST_SUITE_P(All, UnitTypes, ::testing::ValuesIn(kUnitTypes),
                         [](const auto &info) { return std::string(tai_type_name(info.param)); });

TEST(UnitTypes, TheOtherIdsStayUnknown) {
    for (int t : {4, 5, 9, 16, 17, 18, 19, 21, 29, 31, 39})
        EXPECT_FALSE(tai_type_valid(t)) << t;
    EXPECT_EQ(tai_pack_panel_bytes(TAI_TYPE_Q4_K, 300), 0u);
    EXPECT_EQ(tai_sparse_panel_bytes(TAI_TYPE_Q4_K, 512, 2), 0u);  // pruning: 32-column tiles only
}

}  // namespace
