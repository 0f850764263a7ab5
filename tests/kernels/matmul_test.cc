// tests/kernels/matmul_test.cc: the thread pool and the matmul driver.
// The driver must give bit-identical results for 1, 2 and 3 threads (every
// output is computed by one call of the same kernel whatever the split) and
// match the scalar reference; the pool must run each index exactly once per
// job and publish the workers' writes to the caller.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace {

using tai_test::kIsas;
using tai_test::kTypes;

// ---- Pool -------------------------------------------------------------

TEST(Pool, CreateRejectsBadArguments) {
    tai_pool *p = reinterpret_cast<tai_pool *>(0x1);
    EXPECT_EQ(tai_pool_create(0, &p), -EINVAL);
    EXPECT_EQ(tai_pool_create(-3, &p), -EINVAL);
    EXPECT_EQ(tai_pool_create(2, nullptr), -EINVAL);
    tai_pool_destroy(nullptr);  // accepted
}

struct Counts {
    std::vector<int> per_index;  // plain ints: written by one thread each
    std::atomic<int> calls{0};
    int expect_n = 0;
    std::atomic<int> bad_n{0};
};

void CountFn(void *ctx, int i, int n) {
    auto *c = static_cast<Counts *>(ctx);
    if (n != c->expect_n) c->bad_n++;
    c->per_index[i]++;
    c->calls++;
}

TEST(Pool, EveryIndexRunsOncePerJob) {
    for (int nth : {1, 2, 3, 5}) {
        tai_pool *pool = nullptr;
        ASSERT_EQ(tai_pool_create(nth, &pool), 0);
        ASSERT_EQ(tai_pool_size(pool), nth);
        Counts c;
        c.per_index.assign(nth, 0);
        c.expect_n = nth;
        const int jobs = 2000;
        for (int j = 0; j < jobs; j++) {
            tai_pool_run(pool, CountFn, &c);
            // all of this job's calls are done when run returns
            ASSERT_EQ(c.calls.load(), (j + 1) * nth);
        }
        for (int i = 0; i < nth; i++) EXPECT_EQ(c.per_index[i], jobs) << nth << " " << i;
        EXPECT_EQ(c.bad_n.load(), 0);
        tai_pool_destroy(pool);
    }
}

// Workers sleep between jobs (long pauses) and wake correctly.
void SlowFill(void *ctx, int i, int n) {
    auto *v = static_cast<std::vector<int> *>(ctx);
    for (size_t k = i; k < v->size(); k += n) (*v)[k] = (int)k * 3;
}

TEST(Pool, WakesAfterIdleAndPublishesWrites) {
    tai_pool *pool = nullptr;
    ASSERT_EQ(tai_pool_create(3, &pool), 0);
    for (int round = 0; round < 3; round++) {
        std::vector<int> v(10001, -1);
        tai_pool_run(pool, SlowFill, &v);
        for (size_t k = 0; k < v.size(); k++) ASSERT_EQ(v[k], (int)k * 3) << k;
        struct timespec ts = {0, 20 * 1000 * 1000};  // let the workers go to sleep
        nanosleep(&ts, nullptr);
    }
    tai_pool_destroy(pool);
}

TEST(Pool, CreateDestroyRepeatedly) {
    for (int i = 0; i < 50; i++) {
        tai_pool *pool = nullptr;
        ASSERT_EQ(tai_pool_create(1 + i % 4, &pool), 0);
        if (i % 2) {
            Counts c;
            c.per_index.assign(1 + i % 4, 0);
            c.expect_n = 1 + i % 4;
            tai_pool_run(pool, CountFn, &c);
            EXPECT_EQ(c.calls.load(), 1 + i % 4);
        }
        tai_pool_destroy(pool);
    }
}

// ---- Scratch size -------------------------------------------------------

TEST(Matmul, ScratchBytes) {
    EXPECT_EQ(tai_prep_for(TAI_TYPE_F32), TAI_PREP_F32);
    EXPECT_EQ(tai_prep_for(TAI_TYPE_F16), TAI_PREP_F32);
    EXPECT_EQ(tai_prep_for(TAI_TYPE_Q4_0), TAI_PREP_Q8A);
    EXPECT_EQ(tai_prep_for(TAI_TYPE_Q4_1), TAI_PREP_Q8A);
    EXPECT_EQ(tai_prep_for(TAI_TYPE_Q8_0), TAI_PREP_Q8A);
    EXPECT_EQ(tai_prep_col_bytes(TAI_PREP_F32, 96), 96u * 4);
    EXPECT_EQ(tai_prep_col_bytes(TAI_PREP_Q8A, 96), 3u * 48);
    EXPECT_EQ(tai_prep_col_bytes(TAI_PREP_Q8A, 100), 0u);
    EXPECT_EQ(tai_matmul_scratch_bytes(TAI_TYPE_Q4_0, 4128, 7), 7u * 129 * 48);
    EXPECT_EQ(tai_matmul_scratch_bytes(TAI_TYPE_F16, 64, 3), 3u * 64 * 4);
}

TEST(Matmul, PrepColMatchesQuantizer) {
    std::vector<float> x = tai_test::RandomFloats(96, 3);
    std::vector<tai_block_q8a> a(3), b(3);
    tai_prep_col(TAI_PREP_Q8A, x.data(), a.data(), 96);
    tai_quantize_row_q8a(x.data(), b.data(), 96);
    EXPECT_EQ(std::memcmp(a.data(), b.data(), sizeof(tai_block_q8a) * 3), 0);
    std::vector<float> f(96);
    tai_prep_col(TAI_PREP_F32, x.data(), f.data(), 96);
    EXPECT_EQ(f, x);
}

// Every ISA's activation quantizer is the scalar one bit for bit: random
// blocks of several magnitudes, exact .5 ties, zero blocks, NaN and inf.
TEST(Matmul, QuantizerOfEveryIsaIsExact) {
    const int64_t n = 32 * 40;
    std::vector<float> x = tai_test::RandomFloats(n, 17, -3, 3);
    for (int64_t i = 0; i < n; i++) x[i] *= std::pow(10.0f, (float)((i / 32) % 7) - 3.0f);
    for (int j = 0; j < 32; j++) {
        x[32 * 1 + j] = 0.0f;                      // all-zero block: d = 0
        x[32 * 2 + j] = (float)(j - 16) * 0.5f;    // ties after scaling by 127/8
        x[32 * 3 + j] = (float)(j - 16) * 127.0f;  // exact integers
    }
    x[32 * 4 + 3] = NAN;
    x[32 * 5 + 7] = INFINITY;
    x[32 * 6 + 1] = -INFINITY;
    x[32 * 7 + 0] = 1e-40f;  // subnormal
    std::vector<tai_block_q8a> want(n / 32), got(n / 32);
    tai_quantize_row_q8a(x.data(), want.data(), n);
    for (tai_isa isa : tai_test::kIsas) {
        if (!tai_isa_supported(isa)) continue;
        std::memset(got.data(), 0x5A, got.size() * sizeof got[0]);
        tai_kernels_get(isa)->quantize_q8a(x.data(), got.data(), n);
        for (size_t b = 0; b < want.size(); b++) {
            EXPECT_EQ(std::memcmp(want[b].qs, got[b].qs, 32), 0) << tai_isa_name(isa) << " block " << b;
            EXPECT_EQ(std::memcmp(&want[b].d, &got[b].d, 4), 0) << tai_isa_name(isa) << " block " << b;
            EXPECT_EQ(std::memcmp(&want[b].s, &got[b].s, 4), 0) << tai_isa_name(isa) << " block " << b;
            EXPECT_EQ(want[b].n8, got[b].n8) << tai_isa_name(isa) << " block " << b;
            EXPECT_EQ(want[b].n128, got[b].n128) << tai_isa_name(isa) << " block " << b;
        }
    }
}

// ---- Driver: threads and reference -------------------------------------

using Param = std::tuple<tai_type, tai_isa, int64_t /*ncols*/>;
class MatmulThreads : public ::testing::TestWithParam<Param> {};

TEST_P(MatmulThreads, SameResultForAnyThreadCountAndMatchesRef) {
    auto [t, isa, ncols] = GetParam();
    if (!tai_isa_supported(isa)) GTEST_SKIP() << tai_isa_name(isa) << " not supported here";
    const tai_kernels *k = tai_kernels_get(isa);
    for (int64_t rows : {2, 37, 130}) {
        const int64_t n = 576;
        const size_t rb = tai_type_row_bytes(t, n);
        std::vector<uint8_t> w = tai_test::MakeWeights(t, rows, n, rb, 11 + (uint32_t)rows);
        std::vector<float> x = tai_test::RandomFloats(n * ncols, 21);
        tai_test::AlignedBuf scratch(tai_matmul_scratch_bytes(t, n, ncols));
        tai_test::AlignedBuf wp(tai_pack_bytes(t, rows, n));
        tai_pack_matrix(nullptr, t, w.data(), rows, n, wp.data());

        std::vector<float> y1(rows * ncols, -7.0f);
        tai_matmul(k, nullptr, t, wp.data(), rows, n, x.data(), y1.data(), ncols, scratch.data());
        for (int nth : {2, 3}) {
            tai_pool *pool = nullptr;
            ASSERT_EQ(tai_pool_create(nth, &pool), 0);
            std::vector<float> yn(rows * ncols, -9.0f);
            std::memset(scratch.data(), 0xEE, scratch.size);
            tai_matmul(k, pool, t, wp.data(), rows, n, x.data(), yn.data(), ncols,
                       scratch.data());
            tai_pool_destroy(pool);
            ASSERT_EQ(std::memcmp(y1.data(), yn.data(), y1.size() * sizeof(float)), 0)
                << nth << " threads, rows " << rows;
        }

        // Y[c][r] = reference kernel on the prepared columns
        tai_prep p = tai_prep_for(t);
        size_t cb = tai_prep_col_bytes(p, n);
        std::vector<uint8_t> xp(cb * ncols);
        for (int64_t c = 0; c < ncols; c++) tai_prep_col(p, x.data() + c * n, xp.data() + c * cb, n);
        std::vector<float> yr(rows * ncols);
        tai_rows_ref(t)(w.data(), rb, xp.data(), cb, yr.data(), rows, n, 0, rows, ncols);
        EXPECT_LE(tai_test::Nrmse(y1.data(), yr.data(), yr.size()), 2e-5) << "rows " << rows;
    }
}

INSTANTIATE_TEST_SUITE_P(All, MatmulThreads,
                         ::testing::Combine(::testing::ValuesIn(kTypes),
                                            ::testing::ValuesIn(kIsas),
                                            ::testing::Values(1, 3, 8, 13)),
                         [](const auto &info) {
                             return tai_test::TypeName(std::get<0>(info.param)) + "_" +
                                    tai_isa_name(std::get<1>(info.param)) + "_c" +
                                    std::to_string(std::get<2>(info.param));
                         });

// ---- Several products of one input ---------------------------------------

// tai_matmul_many (a block's q, k and v together): each output the bits of
// tai_matmul's product alone, for every type with types that prepare the
// input alike (each type three times, of different row counts, and Q4_1
// beside Q8_0), 1 to 3 threads, matrix-vector and blocked widths; types
// that prepare it differently are refused, with nothing written.
TEST(Matmul, ManyOfOneInputEqualEachAlone) {
    const int64_t n = 576;
    for (tai_isa isa : kIsas) {
        if (!tai_isa_supported(isa)) continue;
        const tai_kernels *k = tai_kernels_get(isa);
        std::vector<std::vector<tai_type>> sets;
        for (tai_type t : kTypes) sets.push_back({t, t, t});
        sets.push_back({TAI_TYPE_Q4_1, TAI_TYPE_Q8_0});
        for (const auto &types : sets) {
            const int nm = (int)types.size();
            const int64_t rows[3] = {130, 37, 64};
            std::vector<tai_test::AlignedBuf> wp;
            for (int m = 0; m < nm; m++) {
                const size_t rb = tai_type_row_bytes(types[m], n);
                std::vector<uint8_t> w = tai_test::MakeWeights(types[m], rows[m], n, rb, 31 + m);
                wp.emplace_back(tai_pack_bytes(types[m], rows[m], n));
                tai_pack_matrix(nullptr, types[m], w.data(), rows[m], n, wp.back().data());
            }
            for (int64_t ncols : {1, 5, 16, 19}) {
                std::vector<float> x = tai_test::RandomFloats(n * ncols, 41);
                tai_test::AlignedBuf scratch(tai_matmul_scratch_bytes(types[0], n, ncols));
                for (int nth : {1, 2, 3}) {
                    tai_pool *pool = nullptr;
                    if (nth > 1) {
                        ASSERT_EQ(tai_pool_create(nth, &pool), 0);
                    }
                    std::vector<std::vector<float>> want(nm), got(nm);
                    const void *w[3];
                    float *y[3];
                    for (int m = 0; m < nm; m++) {
                        want[m].assign(rows[m] * ncols, -7.0f);
                        got[m].assign(rows[m] * ncols, -9.0f);
                        tai_matmul(k, pool, types[m], wp[m].data(), rows[m], n, x.data(),
                                   want[m].data(), ncols, scratch.data());
                        w[m] = wp[m].data();
                        y[m] = got[m].data();
                    }
                    std::memset(scratch.data(), 0xEE, scratch.size);
                    ASSERT_EQ(tai_matmul_many(k, pool, nm, types.data(), w, rows, n, x.data(), y,
                                              ncols, scratch.data()),
                              1);
                    if (pool) tai_pool_destroy(pool);
                    for (int m = 0; m < nm; m++)
                        ASSERT_EQ(std::memcmp(want[m].data(), got[m].data(),
                                              want[m].size() * sizeof(float)),
                                  0)
                            << tai_isa_name(isa) << " " << tai_test::TypeName(types[m])
                            << " product " << m << ", " << ncols << " columns, " << nth
                            << " threads";
                }
            }
        }
        // F32 (columns copied) and Q4_0 (quantized) prepare x differently
        const tai_type mixed[2] = {TAI_TYPE_F32, TAI_TYPE_Q4_0};
        std::vector<float> x = tai_test::RandomFloats(n, 5), y0(8, 3.0f), y1(8, 3.0f);
        const void *w[2] = {x.data(), x.data()};
        float *y[2] = {y0.data(), y1.data()};
        const int64_t r[2] = {8, 8};
        tai_test::AlignedBuf scratch(1 << 16);
        EXPECT_EQ(tai_matmul_many(k, nullptr, 2, mixed, w, r, n, x.data(), y, 1, scratch.data()), 0);
        EXPECT_EQ(tai_matmul_many(k, nullptr, 5, mixed, w, r, n, x.data(), y, 1, scratch.data()), 0);
        for (float v : y0) EXPECT_EQ(v, 3.0f);
        for (float v : y1) EXPECT_EQ(v, 3.0f);
    }
}

// ---- Batch invariance ---------------------------------------------------

// A column's product is the same, bit for bit, whatever other columns share
// the call: alone, in a streaming group of 2..7, in a blocked group of 8, or
// in a blocked group beside a streaming tail, on any thread count. A server
// batching sequences relies on it (a request's text at temperature 0 does
// not depend on what else is running). K spans several of the blocked
// loop's slices so that its store-and-reload between slices is covered, and
// the row counts leave partial panels and panel groups of every size. On a
// CPU with AMX the blocked loop runs on tiles, and also with them off.
class MatmulBatchInvariance : public ::testing::TestWithParam<std::tuple<tai_type, tai_isa>> {};

TEST_P(MatmulBatchInvariance, EachColumnEqualsItsProductAlone) {
    auto [t, isa] = GetParam();
    if (!tai_isa_supported(isa)) GTEST_SKIP() << tai_isa_name(isa) << " not supported here";
    const tai_kernels *k = tai_kernels_get(isa);
    tai_pool *pool = nullptr;
    ASSERT_EQ(tai_pool_create(2, &pool), 0);
    for (int64_t rows : {5, 67, 200}) {
        const int64_t n = 1216, max_cols = 80;
        const size_t rb = tai_type_row_bytes(t, n);
        std::vector<uint8_t> w = tai_test::MakeWeights(t, rows, n, rb, 3 + (uint32_t)rows);
        std::vector<float> x = tai_test::RandomFloats(n * max_cols, 17);
        tai_test::AlignedBuf wp(tai_pack_bytes(t, rows, n));
        tai_pack_matrix(nullptr, t, w.data(), rows, n, wp.data());
        tai_test::AlignedBuf scratch(tai_matmul_scratch_bytes(t, n, max_cols));
        // every column alone, single-threaded
        std::vector<float> alone(rows * max_cols);
        for (int64_t c = 0; c < max_cols; c++)
            tai_matmul(k, nullptr, t, wp.data(), rows, n, x.data() + c * n,
                       alone.data() + c * rows, 1, scratch.data());
        // AMX tiles (where the CPU has them) and the VNNI loop alike
        for (int amx : {1, 0}) {
            tai_amx_set_enabled(amx);
            // 16 columns: one pair of groups on the tiles; 24 and 40: pairs
            // and a lone group; 72 and 80: a second chunk of groups
            for (int64_t ncols : {2, 3, 4, 7, 8, 9, 15, 16, 21, 24, 40, 72, 80}) {
                for (tai_pool *pl : {(tai_pool *)nullptr, pool}) {
                    std::vector<float> y(rows * ncols, -3.0f);
                    tai_matmul(k, pl, t, wp.data(), rows, n, x.data(), y.data(), ncols,
                               scratch.data());
                    ASSERT_EQ(std::memcmp(y.data(), alone.data(), y.size() * sizeof(float)), 0)
                        << "rows " << rows << ", " << ncols << " columns, "
                        << (pl ? "2 threads" : "1 thread") << (tai_amx_active() ? ", AMX" : "");
                }
            }
        }
        tai_amx_set_enabled(1);
    }
    tai_pool_destroy(pool);
}

INSTANTIATE_TEST_SUITE_P(All, MatmulBatchInvariance,
                         ::testing::Combine(::testing::ValuesIn(kTypes),
                                            ::testing::ValuesIn(kIsas)),
                         [](const auto &info) {
                             return tai_test::TypeName(std::get<0>(info.param)) + "_" +
                                    tai_isa_name(std::get<1>(info.param));
                         });

// Against the unquantized float product: the driver's total error (weight
// and activation quantization included) is of the expected size per type.
TEST(Matmul, CloseToFloatProduct) {
    const int64_t rows = 16, n = 1536, ncols = 2;
    std::vector<float> wf = tai_test::RandomFloats(rows * n, 5);
    std::vector<float> x = tai_test::RandomFloats(n * ncols, 6);
    std::vector<float> exact(rows * ncols);
    for (int64_t c = 0; c < ncols; c++)
        for (int64_t r = 0; r < rows; r++) {
            double s = 0;
            for (int64_t k = 0; k < n; k++) s += (double)wf[r * n + k] * x[c * n + k];
            exact[c * rows + r] = (float)s;
        }
    const struct {
        tai_type t;
        double tol;
    } cases[] = {{TAI_TYPE_F32, 1e-5}, {TAI_TYPE_F16, 2e-3}, {TAI_TYPE_Q8_0, 1e-2},
                 {TAI_TYPE_Q4_1, 0.15}, {TAI_TYPE_Q4_0, 0.15}};
    const tai_kernels *k = tai_kernels_get(tai_isa_best(TAI_ISA_AVX512));
    for (const auto &cs : cases) {
        size_t rb = tai_type_row_bytes(cs.t, n);
        std::vector<uint8_t> w(rb * rows);
        for (int64_t r = 0; r < rows; r++)
            tai_quantize_row(cs.t, wf.data() + r * n, w.data() + r * rb, n);
        tai_test::AlignedBuf scratch(tai_matmul_scratch_bytes(cs.t, n, ncols));
        tai_test::AlignedBuf wp = tai_test::Pack(cs.t, w.data(), rows, n);
        std::vector<float> y(rows * ncols);
        tai_matmul(k, nullptr, cs.t, wp.data(), rows, n, x.data(), y.data(), ncols,
                   scratch.data());
        EXPECT_LE(tai_test::Nrmse(y.data(), exact.data(), y.size()), cs.tol)
            << tai_type_name(cs.t);
    }
}

}  // namespace
