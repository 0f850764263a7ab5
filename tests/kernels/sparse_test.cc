// tests/kernels/sparse_test.cc: products with block-sparse packed weights.
// For every weight type, ISA, thread count, batch width and sparsity, the
// sparse product equals bit for bit the dense product of the same matrix
// with the pruned 16x32 tiles zeroed (which itself matches the scalar
// reference), and the layout helpers reject what is not a valid matrix.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace {

using tai_test::AlignedBuf;
using tai_test::kIsas;
using tai_test::kTypes;

struct Sparse {
    AlignedBuf sparse{0};
    std::vector<uint8_t> dense_zeroed;  // row-major, pruned tiles zero
    int64_t keep = 0;
};

// Keeps `keep` random blocks per panel of row-major W (rows x n).
Sparse Build(tai_type t, const std::vector<uint8_t> &w, int64_t rows, int64_t n, int64_t keep,
             uint32_t seed) {
    Sparse s;
    s.keep = keep;
    const int64_t nb = n / TAI_QK, panels = (rows + TAI_PANEL - 1) / TAI_PANEL;
    const size_t row = tai_type_row_bytes(t, n), bb = row / (size_t)nb;
    const size_t pb = tai_sparse_panel_bytes(t, n, keep);
    s.sparse = AlignedBuf(pb * (size_t)panels);
    s.dense_zeroed.assign(w.size(), 0);
    std::vector<uint8_t> tmp(TAI_PANEL * tai_type_row_bytes(t, keep * TAI_QK) + 64);
    std::mt19937 rng(seed);
    for (int64_t p = 0; p < panels; p++) {
        std::vector<uint16_t> all(nb);
        std::iota(all.begin(), all.end(), 0);
        std::shuffle(all.begin(), all.end(), rng);
        std::vector<uint16_t> idx(all.begin(), all.begin() + keep);
        std::sort(idx.begin(), idx.end());
        const int64_t nrows = std::min<int64_t>(TAI_PANEL, rows - p * TAI_PANEL);
        tai_pack_sparse_panel(t, w.data() + (size_t)p * TAI_PANEL * row, nrows, n, keep, idx.data(),
                              s.sparse.data() + (size_t)p * pb, tmp.data());
        for (int64_t r = 0; r < nrows; r++)
            for (uint16_t b : idx) {
                const size_t off = (size_t)(p * TAI_PANEL + r) * row + b * bb;
                memcpy(&s.dense_zeroed[off], &w[off], bb);
            }
    }
    return s;
}

TEST(SparseMatmul, EqualsTheDenseProductWithPrunedTilesZero) {
    for (tai_type t : kTypes)
        for (tai_isa isa : kIsas) {
            if (!tai_isa_supported(isa)) continue;
            const tai_kernels *k = tai_kernels_get(isa);
            for (int nth : {1, 2, 3}) {
                tai_pool *pool = nullptr;
                ASSERT_EQ(tai_pool_create(nth, &pool), 0);
                for (int64_t ncols : {1, 3, 8, 13}) {
                    const int64_t rows = 37, n = 320;  // 3 panels (the last partial), 10 blocks
                    for (int64_t keep : {1, 3, 4, 10}) {
                        const uint32_t seed = (uint32_t)(t * 131 + keep * 7 + ncols);
                        std::vector<uint8_t> w =
                            tai_test::MakeWeights(t, rows, n, tai_type_row_bytes(t, n), seed);
                        Sparse s = Build(t, w, rows, n, keep, seed);
                        AlignedBuf dense = tai_test::Pack(t, s.dense_zeroed.data(), rows, n);
                        std::vector<float> x = tai_test::RandomFloats((size_t)(n * ncols), seed + 1);
                        std::vector<float> ys(rows * ncols, -1.0f), yd(rows * ncols, -2.0f);
                        AlignedBuf sc(tai_matmul_sparse_scratch_bytes(t, n, keep, ncols, nth));
                        AlignedBuf dc(tai_matmul_scratch_bytes(t, n, ncols));
                        tai_matmul_sparse(k, pool, t, s.sparse.data(), rows, n, keep, x.data(),
                                          ys.data(), ncols, sc.data());
                        tai_matmul(k, pool, t, dense.data(), rows, n, x.data(), yd.data(), ncols,
                                   dc.data());
                        ASSERT_EQ(memcmp(ys.data(), yd.data(), ys.size() * sizeof(float)), 0)
                            << tai_type_name(t) << " " << tai_isa_name(isa) << " threads " << nth
                            << " cols " << ncols << " keep " << keep;
                    }
                }
                tai_pool_destroy(pool);
            }
        }
}

// One column is the same whether computed alone or among others (the batch
// invariance every product keeps).
TEST(SparseMatmul, AColumnIsTheSameAloneOrInABatch) {
    const tai_isa isa = tai_isa_best(TAI_ISA_AVX512);
    const tai_kernels *k = tai_kernels_get(isa);
    for (tai_type t : kTypes) {
        const int64_t rows = 64, n = 512, keep = 5, ncols = 21;
        std::vector<uint8_t> w = tai_test::MakeWeights(t, rows, n, tai_type_row_bytes(t, n), 9);
        Sparse s = Build(t, w, rows, n, keep, 9);
        std::vector<float> x = tai_test::RandomFloats((size_t)(n * ncols), 10);
        std::vector<float> all(rows * ncols), one(rows);
        AlignedBuf sc(tai_matmul_sparse_scratch_bytes(t, n, keep, ncols, 1));
        tai_matmul_sparse(k, nullptr, t, s.sparse.data(), rows, n, keep, x.data(), all.data(), ncols,
                          sc.data());
        for (int64_t c = 0; c < ncols; c++) {
            tai_matmul_sparse(k, nullptr, t, s.sparse.data(), rows, n, keep, x.data() + c * n,
                              one.data(), 1, sc.data());
            ASSERT_EQ(memcmp(one.data(), all.data() + c * rows, rows * sizeof(float)), 0)
                << tai_type_name(t) << " column " << c;
        }
    }
}

// A row back out in GGUF's layout: the kept blocks bit for bit, zeros
// between.
TEST(SparseLayout, RowsUnpackToTheDenseRowsWithZeros) {
    for (tai_type t : kTypes) {
        const int64_t rows = 37, n = 320;
        for (int64_t keep : {1, 4, 10}) {
            std::vector<uint8_t> w = tai_test::MakeWeights(t, rows, n, tai_type_row_bytes(t, n), 21);
            Sparse s = Build(t, w, rows, n, keep, 22);
            const size_t rb = tai_type_row_bytes(t, n);
            std::vector<uint8_t> row(rb, 0xee);
            for (int64_t r = 0; r < rows; r++) {
                tai_sparse_unpack_row(t, s.sparse.data(), rows, n, keep, r, row.data());
                ASSERT_EQ(memcmp(row.data(), &s.dense_zeroed[r * rb], rb), 0)
                    << tai_type_name(t) << " keep " << keep << " row " << r;
            }
        }
    }
}

TEST(SparseLayout, SizesKeepAndChecks) {
    for (tai_type t : kTypes) {
        const int64_t rows = 40, n = 256;
        EXPECT_EQ(tai_sparse_panel_bytes(t, n, 0), 0u);
        EXPECT_EQ(tai_sparse_panel_bytes(t, n, 9), 0u);  // 8 blocks at most
        EXPECT_EQ(tai_sparse_panel_bytes(t, 100, 1), 0u);
        EXPECT_EQ(tai_sparse_panel_bytes(t, n, 3), 64 + tai_pack_panel_bytes(t, 96));
        EXPECT_LT(tai_sparse_bytes(t, rows, n, 2) * 2, tai_pack_bytes(t, rows, n));
        std::vector<uint8_t> w = tai_test::MakeWeights(t, rows, n, tai_type_row_bytes(t, n), 3);
        Sparse s = Build(t, w, rows, n, 3, 3);
        const uint64_t size = tai_sparse_bytes(t, rows, n, 3);
        EXPECT_EQ(tai_sparse_keep(t, s.sparse.data(), rows, n, size), 3);
        EXPECT_EQ(tai_sparse_keep(t, s.sparse.data(), rows, n, size - 64), 0);
        int64_t bad = -1;
        EXPECT_EQ(tai_sparse_check(t, s.sparse.data(), rows, n, 3, &bad), 1);
        const size_t pb = tai_sparse_panel_bytes(t, n, 3);
        uint8_t *p2 = s.sparse.data() + 2 * pb;  // the third panel
        uint16_t v = 8;                            // out of range (8 blocks)
        uint16_t saved;
        memcpy(&saved, p2 + 6, 2);
        memcpy(p2 + 6, &v, 2);
        EXPECT_EQ(tai_sparse_check(t, s.sparse.data(), rows, n, 3, &bad), 0);
        EXPECT_EQ(bad, 2);
        memcpy(p2 + 6, &saved, 2);
        memcpy(&v, p2 + 2, 2);  // not increasing: idx[1] = idx[0]
        memcpy(p2 + 4, &v, 2);
        EXPECT_EQ(tai_sparse_check(t, s.sparse.data(), rows, n, 3, &bad), 0);
        v = 2;  // a panel saying another keep
        memcpy(s.sparse.data() + pb, &v, 2);
        EXPECT_EQ(tai_sparse_check(t, s.sparse.data(), rows, n, 3, &bad), 0);
        EXPECT_EQ(bad, 1);
    }
}

}  // namespace
