// tests/kernels/gemm_test.cc: the packed product kernels.
//  - GemmVsRef: every type x every ISA the host has x shapes (n not a
//    multiple of the vector widths, row counts that leave partial panels,
//    1..21 columns so that the streaming path, the blocked path and both
//    together run, split panel ranges) against the row-major scalar
//    reference, with guard values around and between the outputs that must
//    stay untouched. The portable scalar variant must match it exactly.
//  - RefVsDouble: the scalar reference against a plain double-precision dot
//    product of the dequantized weights and dequantized activations, so an
//    error in the reference itself is caught too.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace {

using tai_test::kIsas;
using tai_test::kTypes;

struct Shape {
    int64_t rows, n, ncols;
};

// How gtest prints a Shape in failure messages.
void PrintTo(const Shape &s, std::ostream *os) {
    *os << "rows=" << s.rows << " n=" << s.n << " ncols=" << s.ncols;
}

std::vector<Shape> Shapes() {
    std::vector<Shape> s;
    for (int64_t n : {32, 96, 576, 1536, 4128})
        for (int64_t ncols : {1, 3, 7, 8, 9, 21}) s.push_back({13, n, ncols});
    for (int64_t ncols : {2, 4, 5, 6, 10, 12, 14}) s.push_back({37, 96, ncols});
    for (int64_t rows : {1, 5, 16, 17, 67}) s.push_back({rows, 96, 3});
    for (int64_t rows : {16, 48, 67}) s.push_back({rows, 608, 16});
    s.push_back({31, 64, 5});
    return s;
}

// Normalised-error tolerance per type (NRMSE against the reference). All
// variants compute the same exact per-block integer sums (or the same float
// products) as the reference; only the float summation order differs, whose
// error grows like eps * sqrt(n): about 4e-6 at n = 4128 in the worst case.
double Tolerance(tai_type t) {
    switch (t) {
    case TAI_TYPE_F32: return 2e-5;
    case TAI_TYPE_F16: return 2e-5;
    case TAI_TYPE_Q4_0: return 1e-5;
    case TAI_TYPE_Q4_1: return 1e-5;
    case TAI_TYPE_Q8_0: return 1e-5;
    default: return 0;
    }
}

// Prepared activation columns, `col_bytes` apart (padded beyond the packed
// size so that a kernel assuming packed columns fails).
struct Activations {
    std::vector<float> raw;        // ncols x n
    std::vector<uint8_t> prepared; // ncols x col_bytes
    size_t col_bytes;
};

Activations MakeActivations(tai_type t, int64_t n, int64_t ncols, uint32_t seed) {
    Activations a;
    a.raw = tai_test::RandomFloats(n * ncols, seed, -2.0f, 2.0f);
    tai_prep p = tai_prep_for(t);
    size_t packed = tai_prep_col_bytes(p, n);
    a.col_bytes = packed + (p == TAI_PREP_F32 ? 12 : sizeof(tai_block_q8a));
    a.prepared.assign(a.col_bytes * ncols, 0xCD);
    for (int64_t c = 0; c < ncols; c++)
        tai_prep_col(p, a.raw.data() + c * n, a.prepared.data() + c * a.col_bytes, n);
    return a;
}

const uint32_t kGuardBits = 0x7fc0dead;  // a nan no kernel would write

using Param = std::tuple<tai_type, tai_isa, Shape>;

class GemmVsRef : public ::testing::TestWithParam<Param> {};

TEST_P(GemmVsRef, MatchesScalarReference) {
    auto [t, isa, shape] = GetParam();
    if (!tai_isa_supported(isa)) GTEST_SKIP() << tai_isa_name(isa) << " not supported here";
    const tai_kernels *k = tai_kernels_get(isa);
    ASSERT_EQ(k->isa, isa);
    tai_gemm_fn fn = k->gemm[t];
    tai_rows_fn ref = tai_rows_ref(t);
    ASSERT_NE(fn, nullptr);
    ASSERT_NE(ref, nullptr);

    const int64_t rows = shape.rows, n = shape.n, ncols = shape.ncols;
    const size_t w_row_bytes = tai_type_row_bytes(t, n);
    std::vector<uint8_t> w = tai_test::MakeWeights(t, rows, n, w_row_bytes, 1234 + (uint32_t)n);
    Activations a = MakeActivations(t, n, ncols, 99 + (uint32_t)ncols);
    tai_test::AlignedBuf wp = tai_test::Pack(t, w.data(), rows, n);
    tai_test::AlignedBuf xp = tai_test::PrepGroups(t, a.raw.data(), n, ncols);
    const size_t pb = tai_pack_panel_bytes(t, n);
    ASSERT_GT(pb, 0u);
    ASSERT_EQ(pb % 64, 0u);

    // y[c * y_stride + r]: a gap of 5 guards after each column, plus 16
    // guards before and after the whole output.
    const int64_t y_stride = rows + 5, guard = 16;
    const size_t total = (size_t)(guard + ncols * y_stride + guard);
    float guard_value;
    std::memcpy(&guard_value, &kGuardBits, 4);
    std::vector<float> y(total, guard_value), y_ref(ncols * rows);

    ref(w.data(), w_row_bytes, a.prepared.data(), a.col_bytes, y_ref.data(), rows, n, 0,
        rows, ncols);
    // two calls on split panel ranges, the later range first
    float *y0 = y.data() + guard;
    const int64_t panels = (rows + TAI_PANEL - 1) / TAI_PANEL, split = panels / 3;
    fn(wp.data(), pb, xp.data(), y0, y_stride, n, rows, split, panels, ncols);
    fn(wp.data(), pb, xp.data(), y0, y_stride, n, rows, 0, split, ncols);

    std::vector<float> got(ncols * rows);
    for (size_t i = 0; i < total; i++) {
        int64_t off = (int64_t)i - guard;
        bool is_output = off >= 0 && off < ncols * y_stride && off % y_stride < rows;
        uint32_t bits;
        std::memcpy(&bits, &y[i], 4);
        if (is_output) {
            ASSERT_NE(bits, kGuardBits) << "output not written at " << off;
            ASSERT_TRUE(std::isfinite(y[i])) << off;
            got[(off / y_stride) * rows + off % y_stride] = y[i];
        } else {
            ASSERT_EQ(bits, kGuardBits) << "guard overwritten at index " << i;
        }
    }
    if (isa == TAI_ISA_SCALAR) {
        // same sums in the same order as the reference: bit for bit
        for (size_t i = 0; i < got.size(); i++) ASSERT_EQ(got[i], y_ref[i]) << i;
    }
    double err = tai_test::Nrmse(got.data(), y_ref.data(), got.size());
    EXPECT_LE(err, Tolerance(t)) << tai_type_name(t) << " " << tai_isa_name(isa);
}

std::string ParamName(const ::testing::TestParamInfo<Param> &info) {
    auto [t, isa, s] = info.param;
    return tai_test::TypeName(t) + "_" + tai_isa_name(isa) + "_r" + std::to_string(s.rows) +
           "_n" + std::to_string(s.n) + "_c" + std::to_string(s.ncols);
}

INSTANTIATE_TEST_SUITE_P(All, GemmVsRef,
                         ::testing::Combine(::testing::ValuesIn(kTypes),
                                            ::testing::ValuesIn(kIsas),
                                            ::testing::ValuesIn(Shapes())),
                         ParamName);

// ---- The reference against double precision ----------------------------

class RefVsDouble : public ::testing::TestWithParam<std::tuple<tai_type, int64_t>> {};

TEST_P(RefVsDouble, MatchesDequantizedDoubleDot) {
    auto [t, n] = GetParam();
    const int64_t rows = 9, ncols = 3;
    const size_t w_row_bytes = tai_type_row_bytes(t, n);
    std::vector<uint8_t> w = tai_test::MakeWeights(t, rows, n, w_row_bytes, 77);
    Activations a = MakeActivations(t, n, ncols, 5);

    std::vector<float> y(ncols * rows);
    tai_rows_ref(t)(w.data(), w_row_bytes, a.prepared.data(), a.col_bytes, y.data(), rows, n,
                    0, rows, ncols);

    // What the kernel should compute: the dequantized weights times the
    // activations it was given (the q8a values d * q for block types).
    std::vector<float> expect(ncols * rows), wf(n), xf(n);
    for (int64_t c = 0; c < ncols; c++) {
        const uint8_t *col = a.prepared.data() + c * a.col_bytes;
        if (tai_prep_for(t) == TAI_PREP_F32) {
            std::memcpy(xf.data(), col, n * sizeof(float));
        } else {
            auto *b = reinterpret_cast<const tai_block_q8a *>(col);
            for (int64_t k = 0; k < n; k++) xf[k] = b[k / 32].d * b[k / 32].qs[k % 32];
        }
        for (int64_t r = 0; r < rows; r++) {
            tai_dequantize_row(t, w.data() + r * w_row_bytes, wf.data(), n);
            double sum = 0.0;
            for (int64_t k = 0; k < n; k++) sum += (double)wf[k] * xf[k];
            expect[c * rows + r] = (float)sum;
        }
    }
    double err = tai_test::Nrmse(y.data(), expect.data(), y.size());
    EXPECT_LE(err, 1e-5) << tai_type_name(t) << " n=" << n;
}

INSTANTIATE_TEST_SUITE_P(All, RefVsDouble,
                         ::testing::Combine(::testing::ValuesIn(kTypes),
                                            ::testing::Values(32, 96, 576, 4128)),
                         [](const auto &info) {
                             return tai_test::TypeName(std::get<0>(info.param)) + "_n" +
                                    std::to_string(std::get<1>(info.param));
                         });

// Weights of -128 (legal in a Q8_0 file, never written by the quantizer)
// and extreme activations: the sign tricks of the integer dot products must
// still give the exact sum.
TEST(GemmEdge, Q8_0ExtremeValues) {
    const int64_t n = 96, rows = 3, ncols = 5;
    std::vector<tai_block_q8_0> w(rows * n / 32);
    for (size_t b = 0; b < w.size(); b++) {
        w[b].d = tai_fp32_to_fp16(0.5f);
        for (int j = 0; j < 32; j++) w[b].qs[j] = (int8_t)((j + b) % 3 == 0 ? -128 : (j % 2 ? 127 : -127));
    }
    std::vector<float> x(n * ncols);
    for (size_t i = 0; i < x.size(); i++) x[i] = (i % 5 == 0) ? -1.0f : 1.0f;
    std::vector<tai_block_q8a> xp(ncols * n / 32);
    for (int64_t c = 0; c < ncols; c++)
        tai_prep_col(TAI_PREP_Q8A, x.data() + c * n, xp.data() + c * n / 32, n);
    tai_test::AlignedBuf wp = tai_test::Pack(TAI_TYPE_Q8_0, w.data(), rows, n);
    tai_test::AlignedBuf xg = tai_test::PrepGroups(TAI_TYPE_Q8_0, x.data(), n, ncols);

    std::vector<float> expect(rows * ncols);
    for (int64_t c = 0; c < ncols; c++)
        for (int64_t r = 0; r < rows; r++) {
            double s = 0;
            for (int64_t k = 0; k < n; k++) {
                const tai_block_q8a &a = xp[c * n / 32 + k / 32];
                s += 0.5 * w[r * n / 32 + k / 32].qs[k % 32] * (double)a.d * a.qs[k % 32];
            }
            expect[c * rows + r] = (float)s;
        }
    for (tai_isa isa : kIsas) {
        if (!tai_isa_supported(isa)) continue;
        std::vector<float> y(rows * ncols, -1.0f);
        tai_kernels_get(isa)->gemm[TAI_TYPE_Q8_0](wp.data(), tai_pack_panel_bytes(TAI_TYPE_Q8_0, n),
                                                  xg.data(), y.data(), rows, n, rows, 0, 1,
                                                  ncols);
        for (size_t i = 0; i < y.size(); i++)
            EXPECT_NEAR(y[i], expect[i], 1e-4 * std::fabs(expect[i]) + 1e-4)
                << tai_isa_name(isa) << " " << i;
    }
}

}  // namespace
