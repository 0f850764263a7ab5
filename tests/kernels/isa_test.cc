// tests/kernels/isa_test.cc: ISA names, parsing, detection and capping, and
// the shape of the kernel table.
#include <gtest/gtest.h>

#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace {

TEST(Isa, NamesAndParse) {
    EXPECT_STREQ(tai_isa_name(TAI_ISA_SCALAR), "scalar");
    EXPECT_STREQ(tai_isa_name(TAI_ISA_AVX2), "avx2");
    EXPECT_STREQ(tai_isa_name(TAI_ISA_AVX512), "avx512");
    for (tai_isa isa : tai_test::kIsas) EXPECT_EQ(tai_isa_parse(tai_isa_name(isa)), (int)isa);
    EXPECT_EQ(tai_isa_parse("AVX2"), -1);
    EXPECT_EQ(tai_isa_parse("avx"), -1);
    EXPECT_EQ(tai_isa_parse("avx512f"), -1);
    EXPECT_EQ(tai_isa_parse(""), -1);
    EXPECT_EQ(tai_isa_parse(nullptr), -1);
}

TEST(Isa, SupportIsConsistent) {
    EXPECT_TRUE(tai_isa_supported(TAI_ISA_SCALAR));
    EXPECT_FALSE(tai_isa_supported(TAI_ISA_COUNT));
    EXPECT_FALSE(tai_isa_supported((tai_isa)-1));
    // AVX-512 as defined here includes everything AVX2 needs
    if (tai_isa_supported(TAI_ISA_AVX512)) {
        EXPECT_TRUE(tai_isa_supported(TAI_ISA_AVX2));
    }
#if defined(__x86_64__)
    // cross-check with the compiler's own CPUID reading
    __builtin_cpu_init();
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    EXPECT_EQ(tai_isa_supported(TAI_ISA_AVX2) != 0, avx2);
    if (tai_isa_supported(TAI_ISA_AVX512)) {
        EXPECT_TRUE(__builtin_cpu_supports("avx512f"));
        EXPECT_TRUE(__builtin_cpu_supports("avx512bw"));
        EXPECT_TRUE(__builtin_cpu_supports("avx512vl"));
        EXPECT_TRUE(__builtin_cpu_supports("avx512dq"));
        EXPECT_TRUE(__builtin_cpu_supports("avx512vnni"));
    }
#else
    EXPECT_FALSE(tai_isa_supported(TAI_ISA_AVX2));
    EXPECT_FALSE(tai_isa_supported(TAI_ISA_AVX512));
#endif
}

TEST(Isa, BestIsCapped) {
    EXPECT_EQ(tai_isa_best(TAI_ISA_SCALAR), TAI_ISA_SCALAR);
    for (tai_isa cap : tai_test::kIsas) {
        tai_isa b = tai_isa_best(cap);
        EXPECT_LE((int)b, (int)cap);
        EXPECT_TRUE(tai_isa_supported(b));
        // nothing better below the cap is supported
        for (int i = (int)b + 1; i <= (int)cap; i++) EXPECT_FALSE(tai_isa_supported((tai_isa)i));
    }
    EXPECT_EQ(tai_isa_best(TAI_ISA_COUNT), tai_isa_best(TAI_ISA_AVX512));
}

TEST(Kernels, TableShape) {
    for (tai_isa isa : tai_test::kIsas) {
        const tai_kernels *k = tai_kernels_get(isa);
        ASSERT_NE(k, nullptr);
        EXPECT_EQ(k->isa, tai_isa_supported(isa) ? isa : TAI_ISA_SCALAR);
        for (int t = 0; t < TAI_TYPE_COUNT; t++)
            EXPECT_EQ(k->gemm[t] != nullptr, tai_type_valid(t) != 0) << tai_isa_name(isa) << t;
    }
    // different variants really are different functions
    if (tai_isa_supported(TAI_ISA_AVX2)) {
        EXPECT_NE(tai_kernels_get(TAI_ISA_AVX2)->gemm[TAI_TYPE_Q4_0],
                  tai_kernels_get(TAI_ISA_SCALAR)->gemm[TAI_TYPE_Q4_0]);
    }
    EXPECT_EQ(tai_kernels_get((tai_isa)7)->isa, TAI_ISA_SCALAR);
}

}  // namespace
