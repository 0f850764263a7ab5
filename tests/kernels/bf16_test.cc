// tests/kernels/bf16_test.cc: tai_matmul_bf16, the block types' products on
// AMX-BF16 tiles. Against the widened weights and activations summed in
// double; a column's bits the same whatever else shares the call (its
// position, the column count) and whatever the thread count; within ~1%
// of the int8 product; bad arguments refused. Skipped where the CPU has
// no AMX-BF16 (the function then does nothing and says so).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace {

using tai_test::AlignedBuf;

// float -> bfloat16 -> float, nearest even (the kernel's conversion; the
// inputs here are finite).
float Bf16(float v) {
    uint32_t u;
    std::memcpy(&u, &v, 4);
    u += 0x7fff + ((u >> 16) & 1);
    u &= 0xffff0000u;
    std::memcpy(&v, &u, 4);
    return v;
}

struct Case {
    tai_type t;
    int64_t rows, n;
};

const Case kCases[] = {
    {TAI_TYPE_Q4_1, 40, 96},   // 3 panels, the last half full; 3 blocks
    {TAI_TYPE_Q4_0, 64, 576},  // SmolLM2's width
    {TAI_TYPE_Q8_0, 48, 160},
    {TAI_TYPE_Q4_1, 17, 1536},  // an odd panel count, a long row
};

// The case's weights, quantized from random rows and packed.
AlignedBuf PackedCase(const Case &c, uint32_t seed) {
    std::vector<uint8_t> w = tai_test::MakeWeights(c.t, c.rows, c.n, tai_type_row_bytes(c.t, c.n), seed);
    return tai_test::Pack(c.t, w.data(), c.rows, c.n);
}

struct Product {
    std::vector<float> y;
    int ok = 0;
};

Product RunBf16(tai_pool *pool, tai_type t, const void *wp, int64_t rows, int64_t n, const float *x,
            int64_t ncols) {
    const int threads = tai_pool_size(pool);
    AlignedBuf scratch(tai_matmul_bf16_scratch_bytes(n, ncols, threads));
    Product p;
    p.y.assign((size_t)(rows * ncols), NAN);
    p.ok = tai_matmul_bf16(pool, t, wp, rows, n, x, p.y.data(), ncols, scratch.data());
    return p;
}

TEST(MatmulBf16, MatchesWidenedInputsSummedInDouble) {
    if (!tai_bf16_ready()) GTEST_SKIP() << "no AMX-BF16 here";
    for (const Case &c : kCases) {
        SCOPED_TRACE(tai_type_name(c.t) + std::string(" ") + std::to_string(c.rows) + "x" +
                     std::to_string(c.n));
        AlignedBuf wp = PackedCase(c, 11);
        const int64_t ncols = 37;  // two whole groups and a partial one
        std::vector<float> x = tai_test::RandomFloats((size_t)(c.n * ncols), 5, -2.0f, 2.0f);
        Product p = RunBf16(nullptr, c.t, wp.data(), c.rows, c.n, x.data(), ncols);
        ASSERT_EQ(p.ok, 1);
        std::vector<float> row((size_t)c.n);
        for (int64_t r = 0; r < c.rows; r++) {
            tai_packed_row(c.t, wp.data(), c.rows, c.n, r, row.data());
            for (int64_t col = 0; col < ncols; col++) {
                double sum = 0, mag = 0;
                for (int64_t k = 0; k < c.n; k++) {
                    const double v = (double)Bf16(row[(size_t)k]) * Bf16(x[(size_t)(col * c.n + k)]);
                    sum += v;
                    mag += std::fabs(v);
                }
                // float sums of exact products, and a weight whose d * q + m
                // rounds to bfloat16 one step apart from the reference's
                const float got = p.y[(size_t)(col * c.rows + r)];
                ASSERT_NEAR(got, sum, 3e-5 * mag + 0x1p-8 * 4.6 * 2.0 * 2.0) << "row " << r << " col " << col;
            }
        }
    }
}

TEST(MatmulBf16, AColumnsBitsDoNotDependOnTheCallOrThreads) {
    if (!tai_bf16_ready()) GTEST_SKIP() << "no AMX-BF16 here";
    tai_pool *pool = nullptr;
    ASSERT_EQ(tai_pool_create(3, &pool), 0);
    for (const Case &c : kCases) {
        SCOPED_TRACE(tai_type_name(c.t));
        AlignedBuf wp = PackedCase(c, 23);
        const int64_t wide = 40;
        std::vector<float> x = tai_test::RandomFloats((size_t)(c.n * wide), 9, -3.0f, 3.0f);
        Product all = RunBf16(nullptr, c.t, wp.data(), c.rows, c.n, x.data(), wide);
        Product threaded = RunBf16(pool, c.t, wp.data(), c.rows, c.n, x.data(), wide);
        ASSERT_EQ(all.ok, 1);
        ASSERT_EQ(threaded.ok, 1);
        EXPECT_EQ(std::memcmp(all.y.data(), threaded.y.data(), all.y.size() * 4), 0);
        // column `col` alone, and at the end of a call of `col + 1` columns
        for (int64_t col : {0, 15, 16, 33, 39}) {
            Product one = RunBf16(nullptr, c.t, wp.data(), c.rows, c.n, x.data() + col * c.n, 1);
            Product head = RunBf16(pool, c.t, wp.data(), c.rows, c.n, x.data(), col + 1);
            ASSERT_EQ(one.ok, 1);
            ASSERT_EQ(head.ok, 1);
            EXPECT_EQ(std::memcmp(one.y.data(), all.y.data() + col * c.rows, (size_t)c.rows * 4), 0)
                << "column " << col << " alone";
            EXPECT_EQ(std::memcmp(head.y.data(), all.y.data(), head.y.size() * 4), 0)
                << "the first " << col + 1 << " columns";
        }
    }
    tai_pool_destroy(pool);
}

TEST(MatmulBf16, WithinAPercentOfTheInt8Product) {
    if (!tai_bf16_ready()) GTEST_SKIP() << "no AMX-BF16 here";
    const tai_kernels *k = tai_kernels_get(tai_isa_best(TAI_ISA_AVX512));
    for (const Case &c : kCases) {
        SCOPED_TRACE(tai_type_name(c.t));
        AlignedBuf wp = PackedCase(c, 31);
        const int64_t ncols = 24;
        std::vector<float> x = tai_test::RandomFloats((size_t)(c.n * ncols), 3, -1.0f, 1.0f);
        Product p = RunBf16(nullptr, c.t, wp.data(), c.rows, c.n, x.data(), ncols);
        ASSERT_EQ(p.ok, 1);
        std::vector<float> y8((size_t)(c.rows * ncols));
        AlignedBuf scratch(tai_matmul_scratch_bytes(c.t, c.n, ncols));
        tai_matmul(k, nullptr, c.t, wp.data(), c.rows, c.n, x.data(), y8.data(), ncols, scratch.data());
        EXPECT_LT(tai_test::Nrmse(p.y.data(), y8.data(), y8.size()), 0.01);
    }
}

TEST(MatmulBf16, RefusesWhatItCannotDo) {
    const int64_t rows = 16, n = 64, ncols = 4;
    std::vector<uint8_t> w = tai_test::MakeWeights(TAI_TYPE_Q4_1, rows, n, tai_type_row_bytes(TAI_TYPE_Q4_1, n), 1);
    AlignedBuf wp = tai_test::Pack(TAI_TYPE_Q4_1, w.data(), rows, n);
    std::vector<float> x((size_t)(n * ncols), 1.0f), y((size_t)(rows * ncols), 7.0f);
    AlignedBuf scratch(tai_matmul_bf16_scratch_bytes(n, ncols, 1) + 64);
    // a type without a widening, a row that is not whole blocks, no rows,
    // an unaligned scratch, missing buffers
    EXPECT_EQ(tai_matmul_bf16(nullptr, TAI_TYPE_F32, wp.data(), rows, n, x.data(), y.data(), ncols, scratch.data()), 0);
    EXPECT_EQ(tai_matmul_bf16(nullptr, TAI_TYPE_Q4_1, wp.data(), rows, 48, x.data(), y.data(), ncols, scratch.data()), 0);
    EXPECT_EQ(tai_matmul_bf16(nullptr, TAI_TYPE_Q4_1, wp.data(), 0, n, x.data(), y.data(), ncols, scratch.data()), 0);
    EXPECT_EQ(tai_matmul_bf16(nullptr, TAI_TYPE_Q4_1, wp.data(), rows, n, x.data(), y.data(), ncols, scratch.data() + 8), 0);
    EXPECT_EQ(tai_matmul_bf16(nullptr, TAI_TYPE_Q4_1, nullptr, rows, n, x.data(), y.data(), ncols, scratch.data()), 0);
    for (float v : y) ASSERT_EQ(v, 7.0f);  // nothing written
    EXPECT_EQ(tai_matmul_bf16_scratch_bytes(48, ncols, 1), 0u);
    EXPECT_EQ(tai_matmul_bf16_scratch_bytes(n, 0, 1), 0u);
    EXPECT_EQ(tai_matmul_bf16_scratch_bytes(n, ncols, 0), 0u);
    if (!tai_bf16_ready()) {  // the CPU cannot: refused, however good the arguments
        EXPECT_EQ(tai_matmul_bf16(nullptr, TAI_TYPE_Q4_1, wp.data(), rows, n, x.data(), y.data(), ncols, scratch.data()), 0);
    } else {
        EXPECT_EQ(tai_matmul_bf16(nullptr, TAI_TYPE_Q4_1, wp.data(), rows, n, x.data(), y.data(), ncols, scratch.data()), 1);
    }
}

}  // namespace
