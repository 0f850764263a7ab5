// tests/kernels/kernel_test_util.h: helpers shared by the kernels/ tests:
// deterministic random data, normalised error, the ISA list, and building
// a quantized weight matrix. Test-only.
#ifndef TAI_TESTS_KERNELS_KERNEL_TEST_UTIL_H
#define TAI_TESTS_KERNELS_KERNEL_TEST_UTIL_H

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.h"

namespace tai_test {

inline const tai_isa kIsas[] = {TAI_ISA_SCALAR, TAI_ISA_AVX2, TAI_ISA_AVX512};
inline const tai_type kTypes[] = {TAI_TYPE_F32, TAI_TYPE_F16, TAI_TYPE_Q4_0,
                                  TAI_TYPE_Q4_1, TAI_TYPE_Q8_0};

// Uniform floats in [lo, hi), reproducible from the seed.
inline std::vector<float> RandomFloats(size_t n, uint32_t seed, float lo = -1.0f,
                                       float hi = 1.0f) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (auto &x : v) x = dist(rng);
    return v;
}

// sqrt(sum (a - ref)^2 / sum ref^2): the error relative to the size of the
// reference output as a whole (as ggml's test-backend-ops does, unsquared).
inline double Nrmse(const float *a, const float *ref, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    if (den == 0.0) return num == 0.0 ? 0.0 : INFINITY;
    return std::sqrt(num / den);
}

inline std::string TypeName(tai_type t) { return tai_type_name(t); }

// rows x n weights of type t, rows `row_bytes` apart (row_bytes may exceed
// the packed size: the gap is filled with junk that must never be read).
inline std::vector<uint8_t> MakeWeights(tai_type t, int64_t rows, int64_t n,
                                        size_t row_bytes, uint32_t seed) {
    std::vector<uint8_t> w(row_bytes * rows);
    std::mt19937 junk(seed ^ 0x9e3779b9u);
    for (auto &b : w) b = (uint8_t)junk();
    for (int64_t r = 0; r < rows; r++) {
        // rows of different magnitudes and offsets so scales differ per block
        float scale = 0.25f + (float)(r % 5);
        float offset = (r % 3 == 0) ? 0.3f : 0.0f;
        std::vector<float> f = RandomFloats(n, seed + (uint32_t)r, -scale + offset, scale + offset);
        tai_quantize_row(t, f.data(), w.data() + r * row_bytes, n);
    }
    return w;
}

// A zero-filled 64-byte aligned buffer (packed weights and prepared
// activations must be aligned).
struct AlignedBuf {
    explicit AlignedBuf(size_t n) : size(n), p(static_cast<uint8_t *>(std::aligned_alloc(64, (n + 63) / 64 * 64 + 64)), &std::free) {
        std::memset(p.get(), 0, (n + 63) / 64 * 64 + 64);
    }
    uint8_t *data() { return p.get(); }
    size_t size;
    std::unique_ptr<uint8_t, decltype(&std::free)> p;
};

// W (rows x n of type t, row-major) packed whole.
inline AlignedBuf Pack(tai_type t, const void *w, int64_t rows, int64_t n) {
    AlignedBuf b(tai_pack_bytes(t, rows, n));
    tai_pack_panels(t, w, rows, n, b.data(), 0, (rows + TAI_PANEL - 1) / TAI_PANEL);
    return b;
}

// ncols columns of n floats prepared for weight type t in column groups.
inline AlignedBuf PrepGroups(tai_type t, const float *x, int64_t n, int64_t ncols) {
    tai_prep p = tai_prep_for(t);
    AlignedBuf b(tai_prep_bytes(p, n, ncols));
    tai_prep_groups(p, x, n, ncols, b.data(), 0, (ncols + TAI_NR - 1) / TAI_NR);
    return b;
}

}  // namespace tai_test

#endif  // TAI_TESTS_KERNELS_KERNEL_TEST_UTIL_H
