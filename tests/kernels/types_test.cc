// tests/kernels/types_test.cc: element type information, fp16 conversions
// (special values, exhaustive round trip and rounding of every midpoint), and
// the reference quantization against blocks computed by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace {

// ---- Type information -----------------------------------------------------

TEST(TypeInfo, ValidAndNames) {
    EXPECT_TRUE(tai_type_valid(TAI_TYPE_F32));
    EXPECT_TRUE(tai_type_valid(TAI_TYPE_Q8_0));
    for (int t = 4; t <= 5; t++) EXPECT_FALSE(tai_type_valid(t)) << t;
    EXPECT_FALSE(tai_type_valid(9)); /* Q8_1: an activation type, never in files */
    EXPECT_FALSE(tai_type_valid(23)); /* IQ4_XS */
    EXPECT_FALSE(tai_type_valid(-1));
    EXPECT_FALSE(tai_type_valid(TAI_TYPE_COUNT));
    EXPECT_STREQ(tai_type_name(TAI_TYPE_F32), "F32");
    EXPECT_STREQ(tai_type_name(TAI_TYPE_F16), "F16");
    EXPECT_STREQ(tai_type_name(TAI_TYPE_Q4_0), "Q4_0");
    EXPECT_STREQ(tai_type_name(TAI_TYPE_Q4_1), "Q4_1");
    EXPECT_STREQ(tai_type_name(TAI_TYPE_Q8_0), "Q8_0");
    EXPECT_STREQ(tai_type_name(5), "?");
}

TEST(TypeInfo, SizesAndBits) {
    EXPECT_EQ(tai_type_block_elems(TAI_TYPE_F32), 1);
    EXPECT_EQ(tai_type_block_elems(TAI_TYPE_F16), 1);
    EXPECT_EQ(tai_type_block_elems(TAI_TYPE_Q4_1), 32);
    EXPECT_EQ(tai_type_block_bytes(TAI_TYPE_F32), 4u);
    EXPECT_EQ(tai_type_block_bytes(TAI_TYPE_F16), 2u);
    EXPECT_EQ(tai_type_block_bytes(TAI_TYPE_Q4_0), 18u);
    EXPECT_EQ(tai_type_block_bytes(TAI_TYPE_Q4_1), 20u);
    EXPECT_EQ(tai_type_block_bytes(TAI_TYPE_Q8_0), 34u);
    EXPECT_EQ(tai_type_bits(TAI_TYPE_F32), 32);
    EXPECT_EQ(tai_type_bits(TAI_TYPE_F16), 16);
    EXPECT_EQ(tai_type_bits(TAI_TYPE_Q8_0), 8);
    EXPECT_EQ(tai_type_bits(TAI_TYPE_Q4_0), 4);
    EXPECT_EQ(tai_type_bits(TAI_TYPE_Q4_1), 5);
}

TEST(TypeInfo, RowBytes) {
    EXPECT_EQ(tai_type_row_bytes(TAI_TYPE_F32, 7), 28u);
    EXPECT_EQ(tai_type_row_bytes(TAI_TYPE_F16, 7), 14u);
    EXPECT_EQ(tai_type_row_bytes(TAI_TYPE_Q4_0, 96), 3u * 18);
    EXPECT_EQ(tai_type_row_bytes(TAI_TYPE_Q4_1, 4128), 129u * 20);
    EXPECT_EQ(tai_type_row_bytes(TAI_TYPE_Q8_0, 64), 68u);
    EXPECT_EQ(tai_type_row_bytes(TAI_TYPE_Q8_0, 33), 0u);  // not whole blocks
    EXPECT_EQ(tai_type_row_bytes(TAI_TYPE_F32, -4), 0u);
    EXPECT_EQ(tai_type_row_bytes(TAI_TYPE_F32, INT64_MAX), 0u);  // overflow
    EXPECT_EQ(tai_type_row_bytes((tai_type)5, 32), 0u);
}

// ---- fp16 ---------------------------------------------------------------

float Bits(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

TEST(Fp16, SpecialValuesToHalf) {
    EXPECT_EQ(tai_fp32_to_fp16(0.0f), 0x0000);
    EXPECT_EQ(tai_fp32_to_fp16(-0.0f), 0x8000);
    EXPECT_EQ(tai_fp32_to_fp16(1.0f), 0x3c00);
    EXPECT_EQ(tai_fp32_to_fp16(-2.0f), 0xc000);
    EXPECT_EQ(tai_fp32_to_fp16(0.1f), 0x2e66);
    EXPECT_EQ(tai_fp32_to_fp16(65504.0f), 0x7bff);       // largest half
    EXPECT_EQ(tai_fp32_to_fp16(65519.996f), 0x7bff);     // just below the midpoint
    EXPECT_EQ(tai_fp32_to_fp16(65520.0f), 0x7c00);       // midpoint: ties to even = inf
    EXPECT_EQ(tai_fp32_to_fp16(1e10f), 0x7c00);
    EXPECT_EQ(tai_fp32_to_fp16(-1e10f), 0xfc00);
    EXPECT_EQ(tai_fp32_to_fp16(INFINITY), 0x7c00);
    EXPECT_EQ(tai_fp32_to_fp16(-INFINITY), 0xfc00);
    uint16_t nan = tai_fp32_to_fp16(NAN);
    EXPECT_EQ(nan & 0x7c00, 0x7c00);
    EXPECT_NE(nan & 0x03ff, 0);
    // a nan whose payload sits only in the low bits must stay a nan
    uint16_t nan_low = tai_fp32_to_fp16(Bits(0x7f800001u));
    EXPECT_EQ(nan_low & 0x7c00, 0x7c00);
    EXPECT_NE(nan_low & 0x03ff, 0);
    EXPECT_EQ(tai_fp32_to_fp16(0x1p-14f), 0x0400);           // smallest normal
    EXPECT_EQ(tai_fp32_to_fp16(0x1p-24f), 0x0001);           // smallest subnormal
    EXPECT_EQ(tai_fp32_to_fp16(0x1p-25f), 0x0000);           // tie -> even 0
    EXPECT_EQ(tai_fp32_to_fp16(nextafterf(0x1p-25f, 1.0f)), 0x0001);
    EXPECT_EQ(tai_fp32_to_fp16(3 * 0x1p-25f), 0x0002);       // 1.5 ulp: tie -> 2
    EXPECT_EQ(tai_fp32_to_fp16(5 * 0x1p-25f), 0x0002);       // 2.5 ulp: tie -> 2
    EXPECT_EQ(tai_fp32_to_fp16(-5 * 0x1p-25f), 0x8002);
    EXPECT_EQ(tai_fp32_to_fp16(1023.5f * 0x1p-24f), 0x0400); // subnormal rounds to normal
    EXPECT_EQ(tai_fp32_to_fp16(1e-8f), 0x0000);
    EXPECT_EQ(tai_fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00);    // tie -> even
    EXPECT_EQ(tai_fp32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02); // tie -> even
    EXPECT_EQ(tai_fp32_to_fp16(2047.0f / 1024.0f + 0x1p-11f), 0x4000); // carry into exponent
}

TEST(Fp16, SpecialValuesToFloat) {
    EXPECT_EQ(tai_fp16_to_fp32(0x0000), 0.0f);
    EXPECT_TRUE(std::signbit(tai_fp16_to_fp32(0x8000)));
    EXPECT_EQ(tai_fp16_to_fp32(0x3c00), 1.0f);
    EXPECT_EQ(tai_fp16_to_fp32(0xc000), -2.0f);
    EXPECT_EQ(tai_fp16_to_fp32(0x7bff), 65504.0f);
    EXPECT_EQ(tai_fp16_to_fp32(0x0001), 0x1p-24f);
    EXPECT_EQ(tai_fp16_to_fp32(0x03ff), 1023.0f * 0x1p-24f);
    EXPECT_EQ(tai_fp16_to_fp32(0x8001), -0x1p-24f);
    EXPECT_EQ(tai_fp16_to_fp32(0x0400), 0x1p-14f);
    EXPECT_EQ(tai_fp16_to_fp32(0x7c00), INFINITY);
    EXPECT_EQ(tai_fp16_to_fp32(0xfc00), -INFINITY);
    EXPECT_TRUE(std::isnan(tai_fp16_to_fp32(0x7e00)));
    EXPECT_TRUE(std::isnan(tai_fp16_to_fp32(0x7c01)));
}

TEST(Fp16, ExhaustiveRoundTrip) {
    for (uint32_t h = 0; h <= 0xffff; h++) {
        float f = tai_fp16_to_fp32((uint16_t)h);
        uint16_t back = tai_fp32_to_fp16(f);
        bool is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
        if (is_nan) {
            ASSERT_TRUE(std::isnan(f)) << std::hex << h;
            ASSERT_EQ(back & 0x7c00, 0x7c00) << std::hex << h;
            ASSERT_NE(back & 0x3ff, 0) << std::hex << h;
        } else {
            ASSERT_EQ(back, h) << std::hex << h;
        }
    }
}

// Every midpoint between two adjacent finite halves rounds to the even one,
// and the floats just around it round to the nearer one.
TEST(Fp16, ExhaustiveMidpointsRoundToEven) {
    for (uint32_t h = 0; h < 0x7bff; h++) {
        float lo = tai_fp16_to_fp32((uint16_t)h);
        float hi = tai_fp16_to_fp32((uint16_t)(h + 1));
        float mid = (lo + hi) / 2;  // exact: needs 12 significant bits
        ASSERT_EQ((double)mid, ((double)lo + hi) / 2);
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        ASSERT_EQ(tai_fp32_to_fp16(mid), even) << std::hex << h;
        ASSERT_EQ(tai_fp32_to_fp16(-mid), even | 0x8000) << std::hex << h;
        ASSERT_EQ(tai_fp32_to_fp16(nextafterf(mid, INFINITY)), h + 1) << std::hex << h;
        ASSERT_EQ(tai_fp32_to_fp16(nextafterf(mid, 0.0f)), h) << std::hex << h;
    }
}

// ---- Quantization: hand-computed blocks ----------------------------------

TEST(Quantize, Q8_0HandBlocks) {
    float x[64] = {0};
    // block 0: amax 127 -> d = 1, q = x
    x[0] = -127.0f;
    for (int j = 1; j < 32; j++) x[j] = (float)(j - 16);
    // block 1: amax 63.5 -> d = 0.5, q = roundf(2x), halves away from zero
    const float b1[8] = {63.5f, -63.5f, 1.25f, -1.25f, 0.2f, 0.3f, -0.75f, 10.0f};
    const int8_t q1[8] = {127, -127, 3, -3, 0, 1, -2, 20};
    for (int j = 0; j < 8; j++) x[32 + j] = b1[j];

    tai_block_q8_0 b[2];
    std::memset(b, 0xAA, sizeof b);
    tai_quantize_row(TAI_TYPE_Q8_0, x, b, 64);
    EXPECT_EQ(b[0].d, 0x3c00);
    EXPECT_EQ(b[0].qs[0], -127);
    for (int j = 1; j < 32; j++) EXPECT_EQ(b[0].qs[j], j - 16) << j;
    EXPECT_EQ(b[1].d, 0x3800);
    for (int j = 0; j < 8; j++) EXPECT_EQ(b[1].qs[j], q1[j]) << j;
    for (int j = 8; j < 32; j++) EXPECT_EQ(b[1].qs[j], 0) << j;

    float y[64];
    tai_dequantize_row(TAI_TYPE_Q8_0, b, y, 64);
    EXPECT_EQ(y[0], -127.0f);
    EXPECT_EQ(y[17], 1.0f);
    EXPECT_EQ(y[32 + 2], 1.5f);  // 3 * 0.5
    EXPECT_EQ(y[32 + 6], -1.0f);
}

TEST(Quantize, Q4_0HandBlocks) {
    float x[96] = {0};
    // block 0: max magnitude is -8 -> d = -8 / -8 = 1, q = min(15, trunc(x + 8.5))
    const float a[8] = {-8.0f, 7.0f, 3.0f, -0.6f, 0.6f, -0.4f, 7.4f, -7.6f};
    const float a_hi[4] = {1.0f, -1.0f, 2.5f, -2.5f};  // elements 16..19
    for (int j = 0; j < 8; j++) x[j] = a[j];
    for (int j = 0; j < 4; j++) x[16 + j] = a_hi[j];
    // block 1: first max magnitude is +8 -> d = -1; -8 maps to 16.5 -> clamped 15
    x[32 + 0] = 8.0f;
    x[32 + 1] = -8.0f;
    x[32 + 2] = 2.0f;
    x[32 + 16] = -3.0f;
    // block 2: all zeros -> d = 0 / -8 = -0.0, every q = 8

    tai_block_q4_0 b[3];
    std::memset(b, 0xAA, sizeof b);
    tai_quantize_row(TAI_TYPE_Q4_0, x, b, 96);

    // q (lo) 0 15 11 7 9 8 15 0, 8...; q (hi, elements 16..) 9 7 11 6, 8...
    const uint8_t e0[16] = {0x90, 0x7f, 0xbb, 0x67, 0x89, 0x88, 0x8f, 0x80,
                            0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88};
    EXPECT_EQ(b[0].d, 0x3c00);
    for (int j = 0; j < 16; j++) EXPECT_EQ(b[0].qs[j], e0[j]) << j;
    // q (lo) 0 15 6 8...; q (hi) 11 8...
    const uint8_t e1[16] = {0xb0, 0x8f, 0x86, 0x88, 0x88, 0x88, 0x88, 0x88,
                            0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88};
    EXPECT_EQ(b[1].d, 0xbc00);
    for (int j = 0; j < 16; j++) EXPECT_EQ(b[1].qs[j], e1[j]) << j;
    EXPECT_EQ(b[2].d, 0x8000);
    for (int j = 0; j < 16; j++) EXPECT_EQ(b[2].qs[j], 0x88) << j;

    float y[96];
    tai_dequantize_row(TAI_TYPE_Q4_0, b, y, 96);
    const float d0[8] = {-8, 7, 3, -1, 1, 0, 7, -8};  // (q - 8) * 1
    for (int j = 0; j < 8; j++) EXPECT_EQ(y[j], d0[j]) << j;
    EXPECT_EQ(y[16], 1.0f);
    EXPECT_EQ(y[19], -2.0f);
    EXPECT_EQ(y[32 + 0], 8.0f);   // (0 - 8) * -1
    EXPECT_EQ(y[32 + 1], -7.0f);  // clamped: (15 - 8) * -1
    EXPECT_EQ(y[32 + 16], -3.0f); // (11 - 8) * -1
    for (int j = 64; j < 96; j++) EXPECT_EQ(y[j], 0.0f) << j;
}

TEST(Quantize, Q4_1HandBlocks) {
    float x[64] = {0};
    // block 0: min -1, max 14 -> d = 1, m = -1, q = min(15, trunc(x + 1 + 0.5))
    x[0] = -1.0f;
    x[1] = 14.0f;
    x[2] = 2.4f;
    x[3] = 2.5f;
    x[16] = 13.6f;
    x[17] = -0.6f;
    // block 1: constant 3 -> d = 0, m = 3, every q = 0
    for (int j = 32; j < 64; j++) x[j] = 3.0f;

    tai_block_q4_1 b[2];
    std::memset(b, 0xAA, sizeof b);
    tai_quantize_row(TAI_TYPE_Q4_1, x, b, 64);
    // q (lo) 0 15 3 4 1...; q (hi) 15 0 1...
    const uint8_t e0[16] = {0xf0, 0x0f, 0x13, 0x14, 0x11, 0x11, 0x11, 0x11,
                            0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11};
    EXPECT_EQ(b[0].d, 0x3c00);
    EXPECT_EQ(b[0].m, 0xbc00);
    for (int j = 0; j < 16; j++) EXPECT_EQ(b[0].qs[j], e0[j]) << j;
    EXPECT_EQ(b[1].d, 0x0000);
    EXPECT_EQ(b[1].m, 0x4200);
    for (int j = 0; j < 16; j++) EXPECT_EQ(b[1].qs[j], 0x00) << j;

    float y[64];
    tai_dequantize_row(TAI_TYPE_Q4_1, b, y, 64);
    EXPECT_EQ(y[0], -1.0f);
    EXPECT_EQ(y[1], 14.0f);
    EXPECT_EQ(y[2], 2.0f);
    EXPECT_EQ(y[3], 3.0f);
    EXPECT_EQ(y[4], 0.0f);
    EXPECT_EQ(y[16], 14.0f);
    EXPECT_EQ(y[17], -1.0f);
    for (int j = 32; j < 64; j++) EXPECT_EQ(y[j], 3.0f) << j;
}

TEST(Quantize, Q8aHandBlocks) {
    float x[64] = {0};
    // block 0: amax 127 -> d = 1; to the nearest, ties to even: -63.5 ->
    // -64, 0.5 -> 0, -0.5 -> 0, 2.5 -> 2, 2.4 -> 2
    x[0] = 127.0f;
    x[1] = -63.5f;
    x[2] = 0.5f;
    x[3] = -0.5f;
    x[4] = 2.4f;
    x[5] = 2.5f;
    x[6] = -3.5f;
    // block 1: zeros -> d = 0, s = 0
    tai_block_q8a b[2];
    std::memset(b, 0xAA, sizeof b);
    tai_quantize_row_q8a(x, b, 64);
    EXPECT_EQ(b[0].d, 1.0f);
    const int8_t e[7] = {127, -64, 0, 0, 2, 2, -4};
    for (int j = 0; j < 7; j++) EXPECT_EQ(b[0].qs[j], e[j]) << j;
    for (int j = 7; j < 32; j++) EXPECT_EQ(b[0].qs[j], 0) << j;
    EXPECT_EQ(b[0].s, 127.0f - 64 + 2 + 2 - 4);
    EXPECT_EQ(b[1].d, 0.0f);
    EXPECT_EQ(b[1].s, 0.0f);
    for (int j = 0; j < 32; j++) EXPECT_EQ(b[1].qs[j], 0) << j;
}

TEST(Quantize, F16AndF32Rows) {
    const float x[4] = {1.0f, -2.0f, 0.1f, 65504.0f};
    uint16_t h[4];
    tai_quantize_row(TAI_TYPE_F16, x, h, 4);
    EXPECT_EQ(h[0], 0x3c00);
    EXPECT_EQ(h[1], 0xc000);
    EXPECT_EQ(h[2], 0x2e66);
    EXPECT_EQ(h[3], 0x7bff);
    float y[4];
    tai_dequantize_row(TAI_TYPE_F16, h, y, 4);
    EXPECT_EQ(y[1], -2.0f);
    EXPECT_EQ(y[2], tai_fp16_to_fp32(0x2e66));
    float z[4];
    tai_quantize_row(TAI_TYPE_F32, x, z, 4);
    EXPECT_EQ(std::memcmp(x, z, sizeof x), 0);
}

// Random rows: every element comes back within the block's error bound.
TEST(Quantize, RandomRoundTripBounds) {
    const int64_t n = 4128;
    std::vector<float> x = tai_test::RandomFloats(n, 7, -3.0f, 5.0f);
    std::vector<float> y(n);
    std::vector<uint8_t> buf(tai_type_row_bytes(TAI_TYPE_Q8_0, n));  // the largest of the three

    tai_quantize_row(TAI_TYPE_Q8_0, x.data(), buf.data(), n);
    tai_dequantize_row(TAI_TYPE_Q8_0, buf.data(), y.data(), n);
    auto *q8 = reinterpret_cast<const tai_block_q8_0 *>(buf.data());
    for (int64_t i = 0; i < n; i++) {
        float d = tai_fp16_to_fp32(q8[i / 32].d);
        ASSERT_LE(std::fabs(x[i] - y[i]), 0.5f * d + 127 * d * 0x1p-11f) << i;
    }

    tai_quantize_row(TAI_TYPE_Q4_0, x.data(), buf.data(), n);
    tai_dequantize_row(TAI_TYPE_Q4_0, buf.data(), y.data(), n);
    auto *q40 = reinterpret_cast<const tai_block_q4_0 *>(buf.data());
    for (int64_t i = 0; i < n; i++) {
        float d = std::fabs(tai_fp16_to_fp32(q40[i / 32].d));
        // +8|d| clamps to q = 15: an error of up to one step there
        ASSERT_LE(std::fabs(x[i] - y[i]), 1.0f * d + 8 * d * 0x1p-11f) << i;
    }

    tai_quantize_row(TAI_TYPE_Q4_1, x.data(), buf.data(), n);
    tai_dequantize_row(TAI_TYPE_Q4_1, buf.data(), y.data(), n);
    auto *q41 = reinterpret_cast<const tai_block_q4_1 *>(buf.data());
    for (int64_t i = 0; i < n; i++) {
        float d = tai_fp16_to_fp32(q41[i / 32].d);
        float m = std::fabs(tai_fp16_to_fp32(q41[i / 32].m));
        ASSERT_LE(std::fabs(x[i] - y[i]), 0.5f * d + 16 * d * 0x1p-11f + m * 0x1p-10f) << i;
    }

    std::vector<tai_block_q8a> a(n / 32);
    tai_quantize_row_q8a(x.data(), a.data(), n);
    for (int64_t i = 0; i < n; i++) {
        const tai_block_q8a &b = a[i / 32];
        ASSERT_LE(std::fabs(x[i] - b.d * b.qs[i % 32]), 0.5f * b.d * 1.0001f) << i;
    }
    for (const auto &b : a) {
        int sum = 0;
        for (int j = 0; j < 32; j++) sum += b.qs[j];
        ASSERT_EQ(b.s, b.d * (float)sum);
    }
}

}  // namespace
