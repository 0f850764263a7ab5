// tests/kernels/tuning_test.cc: the per-machine tuning (kernels.h "Per-machine
// tuning"): it never changes a result, bad values are refused, and the
// tuning run measures and returns one of its candidates without changing the
// current setting.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace {

struct Restore {  // puts the tuning back whatever a test does
    tai_kernel_tuning saved = tai_kernels_tuning();
    ~Restore() { tai_kernels_set_tuning(&saved); }
};

// Every type, every ISA, matrix-vector (the streaming loops that prefetch)
// and a few columns (9: one blocked group, sliced along K): bit-identical
// outputs with and without prefetch, also with distances that run far past
// the end of the matrix, and at every K slice from one block to the most.
TEST(KernelTuning, NeverChangesAResult) {
    Restore r;
    const tai_kernel_tuning settings[] = {{0, 0, 0},      {1024, 4096, 0}, {64, 0, 32},
                                          {0, 65536, 96}, {65536, 65536, 1024}};
    for (tai_type t : tai_test::kTypes) {
        for (int isa = 0; isa < TAI_ISA_COUNT; isa++) {
            if (!tai_isa_supported((tai_isa)isa)) continue;
            const tai_kernels *k = tai_kernels_get((tai_isa)isa);
            for (int64_t ncols : {1, 3, 9}) {
                const int64_t rows = 37, n = 576;
                const size_t rb = tai_type_row_bytes(t, n);
                std::vector<uint8_t> w = tai_test::MakeWeights(t, rows, n, rb, 5);
                std::vector<float> x = tai_test::RandomFloats(n * ncols, 6);
                tai_test::AlignedBuf scratch(tai_matmul_scratch_bytes(t, n, ncols));
                tai_test::AlignedBuf wp(tai_pack_bytes(t, rows, n));
                tai_pack_matrix(nullptr, t, w.data(), rows, n, wp.data());
                std::vector<float> want;
                for (const tai_kernel_tuning &s : settings) {
                    ASSERT_EQ(tai_kernels_set_tuning(&s), 0);
                    std::vector<float> y(rows * ncols, -3.0f);
                    tai_matmul(k, nullptr, t, wp.data(), rows, n, x.data(), y.data(), ncols,
                               scratch.data());
                    if (want.empty()) want = y;
                    ASSERT_EQ(std::memcmp(y.data(), want.data(), y.size() * sizeof(float)), 0)
                        << tai_type_name(t) << " " << tai_isa_name((tai_isa)isa) << " ncols "
                        << ncols << " prefetch " << s.prefetch_l1 << "/" << s.prefetch_l2
                        << " K slice " << s.k_slice;
                }
            }
        }
    }
}

TEST(KernelTuning, BadValuesAreRefusedAndChangeNothing) {
    Restore r;
    const tai_kernel_tuning good = {512, 2048, 128};
    ASSERT_EQ(tai_kernels_set_tuning(&good), 0);
    const tai_kernel_tuning bad[] = {{-64, 0, 0}, {0, -1, 0},  {100, 0, 0},   {0, 65600, 0},
                                     {65536 + 64, 0, 0}, {0, 0, -32}, {0, 0, 16}, {0, 0, 1056}};
    for (const tai_kernel_tuning &b : bad) {
        EXPECT_EQ(tai_kernels_set_tuning(&b), -1) << b.prefetch_l1 << "/" << b.prefetch_l2 << "/" << b.k_slice;
        EXPECT_EQ(tai_kernels_tuning().prefetch_l1, 512);
        EXPECT_EQ(tai_kernels_tuning().prefetch_l2, 2048);
        EXPECT_EQ(tai_kernels_tuning().k_slice, 128);
    }
    EXPECT_EQ(tai_kernels_set_tuning(nullptr), -1);
    const tai_kernel_tuning d = tai_kernel_tuning_default();
    EXPECT_EQ(d.prefetch_l1, 0);
    EXPECT_EQ(d.prefetch_l2, 0);
}

// A short run (small buffers, one round): the answer is a valid setting, the
// gain is that of the winner over no prefetch (>= 1 by construction: no
// prefetch is a candidate), and the current tuning is left as it was.
TEST(KernelTuning, TuningRunReturnsAValidSettingAndRestoresTheCurrentOne) {
    Restore r;
    const tai_kernel_tuning cur = {128, 256, 0};
    ASSERT_EQ(tai_kernels_set_tuning(&cur), 0);
    tai_kernel_tuning got = {-1, -1, -1};
    double gain = 0.0;
    ASSERT_EQ(tai_kernels_tune(tai_isa_best(TAI_ISA_AVX512), 8u << 20, 1, &got, &gain), 0);
    EXPECT_EQ(tai_kernels_set_tuning(&got), 0) << got.prefetch_l1 << "/" << got.prefetch_l2;
    EXPECT_GE(gain, 1.0);
    EXPECT_EQ(tai_kernels_set_tuning(&cur), 0);
    ASSERT_EQ(tai_kernels_tune(TAI_ISA_SCALAR, 1u << 20, 1, nullptr, nullptr), 0);
    EXPECT_EQ(tai_kernels_tuning().prefetch_l1, 128);
    EXPECT_EQ(tai_kernels_tuning().prefetch_l2, 256);
}

// A table's own tuning (a model's CPU device) holds for its products only:
// on the threads that run them while they run, then the process-wide one
// again; the results are the same bits.
TEST(KernelTuning, ATablesOwnTuningIsScopedToItsProducts) {
    Restore r;
    const tai_kernel_tuning global = {0, 0, 0}, own = {2048, 8192, 64};
    ASSERT_EQ(tai_kernels_set_tuning(&global), 0);
    tai_kernels k = *tai_kernels_get(tai_isa_best(TAI_ISA_AVX512));
    const int64_t rows = 64, n = 1024, ncols = 16;
    const tai_type t = TAI_TYPE_Q8_0;
    std::vector<uint8_t> w = tai_test::MakeWeights(t, rows, n, tai_type_row_bytes(t, n), 9);
    std::vector<float> x = tai_test::RandomFloats(n * ncols, 10);
    tai_test::AlignedBuf scratch(tai_matmul_scratch_bytes(t, n, ncols));
    tai_test::AlignedBuf wp(tai_pack_bytes(t, rows, n));
    tai_pack_matrix(nullptr, t, w.data(), rows, n, wp.data());
    std::vector<float> a(rows * ncols), b(rows * ncols);
    tai_matmul(&k, nullptr, t, wp.data(), rows, n, x.data(), a.data(), ncols, scratch.data());
    k.tuning = &own;
    tai_matmul(&k, nullptr, t, wp.data(), rows, n, x.data(), b.data(), ncols, scratch.data());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
    // after the product this thread sees the process-wide tuning again
    EXPECT_EQ(tai_kernels_tuning().prefetch_l1, 0);
    EXPECT_EQ(tai_kernels_tuning().k_slice, 0);
    // inside a scope, the scoped one
    tai_kernels_tuning_scope(&own);
    EXPECT_EQ(tai_kernels_tuning().k_slice, 64);
    tai_kernels_tuning_scope(nullptr);
    EXPECT_EQ(tai_kernels_tuning().k_slice, 0);
}

}  // namespace
