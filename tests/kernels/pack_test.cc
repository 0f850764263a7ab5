// tests/kernels/pack_test.cc: packing writes exactly the layout kernels.h
// specifies (against a byte-by-byte transcription of it, padding included),
// and reading one row back out of a packed matrix (tai_packed_row) gives
// exactly the floats of the row-major row, for every type and shapes whose
// rows are not a multiple of the panel height.
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

// The layout of kernels.h "Packed weights", transcribed byte by byte: the
// oracle for the word-at-a-time packer.
size_t CodeBytes(tai_type t) { return t == TAI_TYPE_Q8_0 ? 512 : 256; }
size_t PairBytes(tai_type t) { return 2 * CodeBytes(t) + (t == TAI_TYPE_Q4_1 ? 128 : 64); }
size_t CodesAt(tai_type t, int64_t b) {
    return (size_t)(b / 2) * PairBytes(t) + (size_t)(b % 2) * CodeBytes(t);
}
size_t ScalesAt(tai_type t, int64_t b) {
    return (size_t)(b / 2) * PairBytes(t) + 2 * CodeBytes(t) + (size_t)(b % 2) * 32;
}

std::vector<uint8_t> ReferencePack(tai_type t, const uint8_t *w, int64_t rows, int64_t n) {
    const size_t pb = tai_pack_panel_bytes(t, n), rb = tai_type_row_bytes(t, n);
    const int64_t panels = (rows + 15) / 16, nb = n / 32;
    std::vector<uint8_t> out(pb * (size_t)panels, 0);
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *panel = out.data() + (size_t)(r / 16) * pb;
        const int rr = (int)(r % 16);
        const uint8_t *src = w + (size_t)r * rb;
        if (t == TAI_TYPE_F32 || t == TAI_TYPE_F16) {
            const size_t es = t == TAI_TYPE_F32 ? 4 : 2;
            for (int64_t k = 0; k < n; k++)
                memcpy(panel + ((size_t)k * 16 + rr) * es, src + (size_t)k * es, es);
            continue;
        }
        const size_t bb = tai_type_block_bytes(t), qoff = t == TAI_TYPE_Q4_1 ? 4 : 2;
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *blk = src + (size_t)b * bb;
            uint8_t *q = panel + CodesAt(t, b);
            memcpy(panel + ScalesAt(t, b) + 2 * rr, blk, 2);
            if (t == TAI_TYPE_Q4_1) memcpy(panel + ScalesAt(t, b) + 64 + 2 * rr, blk + 2, 2);
            const uint8_t *qs = blk + qoff;
            if (t == TAI_TYPE_Q8_0) {
                for (int g = 0; g < 8; g++)
                    for (int k = 0; k < 4; k++)
                        q[(g * 16 + rr) * 4 + k] = (uint8_t)(qs[4 * g + k] + 128);
            } else {
                auto code = [&](int j) { return j < 16 ? qs[j] & 15 : qs[j - 16] >> 4; };
                for (int j = 0; j < 4; j++)
                    for (int k = 0; k < 4; k++)
                        q[(j * 16 + rr) * 4 + k] =
                            (uint8_t)(code(8 * j + k) | code(8 * j + 4 + k) << 4);
            }
        }
    }
    return out;
}

class Packing : public ::testing::TestWithParam<std::tuple<tai_type, int64_t, int64_t>> {};

TEST_P(Packing, WritesTheSpecifiedLayoutByteForByte) {
    const tai_type t = std::get<0>(GetParam());
    const int64_t rows = std::get<1>(GetParam()), n = std::get<2>(GetParam());
    std::vector<uint8_t> w = RandomMatrix(t, rows, n, (uint32_t)(rows * 7 + n));
    const std::vector<uint8_t> want = ReferencePack(t, w.data(), rows, n);
    AlignedBuf packed(tai_pack_bytes(t, rows, n));
    ASSERT_EQ(packed.size, want.size());
    memset(packed.data(), 0xA5, packed.size);  // padding must be written as zeros
    tai_pack_matrix(nullptr, t, w.data(), rows, n, packed.data());
    ASSERT_EQ(memcmp(packed.data(), want.data(), want.size()), 0) << tai_type_name(t);
}

INSTANTIATE_TEST_SUITE_P(
    TypesAndShapes, Packing,
    ::testing::Combine(::testing::ValuesIn(tai_test::kTypes),
                       ::testing::Values<int64_t>(1, 15, 16, 17, 50),
                       ::testing::Values<int64_t>(32, 96, 128, 576)),
    [](const ::testing::TestParamInfo<Packing::ParamType> &i) {
        return tai_test::TypeName(std::get<0>(i.param)) + "_" +
               std::to_string(std::get<1>(i.param)) + "x" + std::to_string(std::get<2>(i.param));
    });

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
