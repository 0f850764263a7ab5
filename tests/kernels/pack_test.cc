// tests/kernels/pack_test.cc: reading one row back out of a packed matrix
// (tai_packed_row) gives exactly the floats of the row-major row, for every
// type and shapes whose rows are not a multiple of the panel height.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace {

using tai_test::AlignedBuf;

// Row-major rows x n matrix of type t made of random bytes: every code
// (Q8_0's -128 included, which the quantizer never writes), every fp16
// scale, NaNs and infinities among the F16/F32 values. The comparison is
// by bits, so those are checked as well.
std::vector<uint8_t> RandomMatrix(tai_type t, int64_t rows, int64_t n, uint32_t seed) {
    std::vector<uint8_t> w(tai_type_row_bytes(t, n) * (size_t)rows);
    std::mt19937 rng(seed);
    for (auto &b : w) b = (uint8_t)rng();
    return w;
}

class PackedRow : public ::testing::TestWithParam<std::tuple<tai_type, int64_t, int64_t>> {};

TEST_P(PackedRow, EqualsRowMajorDequantization) {
    const tai_type t = std::get<0>(GetParam());
    const int64_t rows = std::get<1>(GetParam()), n = std::get<2>(GetParam());
    const size_t rb = tai_type_row_bytes(t, n);
    std::vector<uint8_t> w = RandomMatrix(t, rows, n, (uint32_t)(rows * 131 + n));
    AlignedBuf packed(tai_pack_bytes(t, rows, n));
    ASSERT_GT(packed.size, 0u);
    tai_pack_matrix(nullptr, t, w.data(), rows, n, packed.data());

    const float kGuard = -12345.0f;
    std::vector<float> want(n), got(n + 1);
    for (int64_t r = 0; r < rows; r++) {
        tai_dequantize_row(t, w.data() + r * rb, want.data(), n);
        std::fill(got.begin(), got.end(), kGuard);
        tai_packed_row(t, packed.data(), rows, n, r, got.data());
        ASSERT_EQ(memcmp(got.data(), want.data(), n * sizeof(float)), 0)
            << tai_type_name(t) << " row " << r << " of " << rows << ", n " << n;
        ASSERT_EQ(got[n], kGuard) << "wrote past the row";
    }
}

INSTANTIATE_TEST_SUITE_P(
    TypesAndShapes, PackedRow,
    ::testing::Combine(::testing::ValuesIn(tai_test::kTypes),
                       ::testing::Values<int64_t>(1, 15, 16, 17, 50),
                       // odd and even block counts (a lone last block is
                       // paired with a zero block in the packed layout)
                       ::testing::Values<int64_t>(32, 96, 128, 576)),
    [](const ::testing::TestParamInfo<PackedRow::ParamType> &i) {
        return tai_test::TypeName(std::get<0>(i.param)) + "_" +
               std::to_string(std::get<1>(i.param)) + "x" + std::to_string(std::get<2>(i.param));
    });

// Rows out of range and sizes that are not whole blocks leave out alone.
TEST(PackedRowArgs, InvalidArgumentsWriteNothing) {
    const int64_t rows = 20, n = 64;
    std::vector<uint8_t> w = RandomMatrix(TAI_TYPE_Q4_1, rows, n, 9);
    AlignedBuf packed(tai_pack_bytes(TAI_TYPE_Q4_1, rows, n));
    tai_pack_matrix(nullptr, TAI_TYPE_Q4_1, w.data(), rows, n, packed.data());
    std::vector<float> out(n, 7.0f);
    tai_packed_row(TAI_TYPE_Q4_1, packed.data(), rows, n, rows, out.data());
    tai_packed_row(TAI_TYPE_Q4_1, packed.data(), rows, n, -1, out.data());
    tai_packed_row(TAI_TYPE_Q4_1, packed.data(), rows, 48, 0, out.data());
    tai_packed_row(TAI_TYPE_Q4_1, nullptr, rows, n, 0, out.data());
    tai_packed_row((tai_type)5, packed.data(), rows, n, 0, out.data());
    for (float v : out) EXPECT_EQ(v, 7.0f);
    // Control: a valid row is written.
    tai_packed_row(TAI_TYPE_Q4_1, packed.data(), rows, n, rows - 1, out.data());
    std::vector<float> want(n);
    tai_dequantize_row(TAI_TYPE_Q4_1, w.data() + (rows - 1) * tai_type_row_bytes(TAI_TYPE_Q4_1, n),
                       want.data(), n);
    EXPECT_EQ(memcmp(out.data(), want.data(), n * sizeof(float)), 0);
}

}  // namespace
