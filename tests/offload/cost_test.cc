// tests/offload/cost_test.cc: the cost model's placement against a
// brute-force optimum on small random problems (per-layer costs, transfer
// costs and memory caps, up to 3 devices), its infeasible and degenerate
// cases, and the calibration file: a real calibration of the CPU device
// saved and read back, other devices' entries kept, and corrupt, foreign
// or incomplete files refused.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "offload/cost.h"
#include "offload/cpu/cpu.h"

namespace {

struct Problem {
    int L, D;
    std::vector<double> cost, trans, tail;
    std::vector<uint64_t> mem, cap;
    tai_place_problem view() const {
        return {L, D, cost.data(), trans.data(), tail.data(), mem.data(), cap.data()};
    }
};

Problem Random(std::mt19937 &rng, int L, int D) {
    std::uniform_real_distribution<double> c(0.1, 10.0), t(0.0, 3.0);
    std::uniform_int_distribution<int> m(1, 5), capd(0, 3);
    Problem p{L, D, {}, {}, {}, {}, {}};
    for (int l = 0; l < L; l++)
        for (int d = 0; d < D; d++) {
            // now and then a layer a device cannot run
            p.cost.push_back(rng() % 11 == 0 && d > 0 ? INFINITY : c(rng));
            p.mem.push_back(d == 0 ? 0 : (uint64_t)m(rng));
        }
    for (int l = 0; l < L; l++)
        for (int f = 0; f < D; f++)
            for (int d = 0; d < D; d++) p.trans.push_back(f == d ? 0.0 : t(rng));
    for (int d = 0; d < D; d++) p.tail.push_back(d == 0 ? 0.0 : t(rng));
    p.cap.push_back(UINT64_MAX);
    for (int d = 1; d < D; d++) p.cap.push_back(capd(rng) == 0 ? UINT64_MAX : (uint64_t)(rng() % 12));
    return p;
}

// Every assignment; INFINITY if none fits.
double Brute(const Problem &p, std::vector<int> *best) {
    double bestc = INFINITY;
    std::vector<int> a(p.L, 0);
    for (;;) {
        double c = 0;
        std::vector<uint64_t> used(p.D, 0);
        int prev = 0;
        bool ok = true;
        for (int l = 0; l < p.L && ok; l++) {
            const int d = a[l];
            c += p.cost[l * p.D + d] + p.trans[(l * p.D + prev) * p.D + d];
            used[d] += p.mem[l * p.D + d];
            if (used[d] > p.cap[d] || !(c < INFINITY)) ok = false;
            prev = d;
        }
        if (ok) {
            c += p.tail[prev];
            if (c < bestc) bestc = c, *best = a;
        }
        int i = 0;
        while (i < p.L && ++a[i] == p.D) a[i++] = 0;
        if (i == p.L) break;
    }
    return bestc;
}

double CostOf(const Problem &p, const std::vector<int> &a) {
    double c = 0;
    int prev = 0;
    for (int l = 0; l < p.L; l++) {
        c += p.cost[l * p.D + a[l]] + p.trans[(l * p.D + prev) * p.D + a[l]];
        prev = a[l];
    }
    return c + p.tail[prev];
}

TEST(Placement, EqualsTheBruteForceOptimum) {
    std::mt19937 rng(2026);
    int feasible = 0, capped_away = 0;
    for (int trial = 0; trial < 600; trial++) {
        const int D = 1 + trial % 3, L = 1 + (int)(rng() % 7);
        Problem p = Random(rng, L, D);
        std::vector<int> want;
        const double bc = Brute(p, &want);
        std::vector<int> got(L, -1);
        double total = -1;
        tai_place_problem v = p.view();
        const int rc = tai_place_solve(&v, got.data(), &total);
        if (!(bc < INFINITY)) {
            EXPECT_EQ(rc, -1) << "trial " << trial;
            continue;
        }
        ASSERT_EQ(rc, 0) << "trial " << trial;
        feasible++;
        EXPECT_NEAR(total, bc, 1e-9) << "trial " << trial;
        EXPECT_NEAR(CostOf(p, got), bc, 1e-9) << "trial " << trial; // the placement is that cost
        std::vector<uint64_t> used(D, 0);
        for (int l = 0; l < L; l++) used[got[l]] += p.mem[l * D + got[l]];
        for (int d = 0; d < D; d++) EXPECT_LE(used[d], p.cap[d]) << "trial " << trial;
        // a cap that binds: the unconstrained optimum would exceed it
        Problem q = p;
        for (int d = 1; d < D; d++) q.cap[d] = UINT64_MAX;
        std::vector<int> free_best;
        if (Brute(q, &free_best) < bc - 1e-9) capped_away++;
    }
    EXPECT_GT(feasible, 300);
    EXPECT_GT(capped_away, 20); // the caps mattered in many problems
}

TEST(Placement, DegenerateAndInfeasibleProblems) {
    // one layer that runs nowhere
    Problem p{1, 2, {INFINITY, INFINITY}, {0, 0, 0, 0}, {0, 0}, {0, 0}, {UINT64_MAX, UINT64_MAX}};
    int dev = -1;
    double t = 0;
    tai_place_problem v = p.view();
    EXPECT_EQ(tai_place_solve(&v, &dev, &t), -1);
    // a layer larger than the only device that runs it
    Problem q{1, 2, {INFINITY, 1.0}, {0, 0, 0, 0}, {0, 0}, {0, 9}, {UINT64_MAX, 8}};
    v = q.view();
    EXPECT_EQ(tai_place_solve(&v, &dev, &t), -1);
    q.cap[1] = 9;
    v = q.view();
    ASSERT_EQ(tai_place_solve(&v, &dev, &t), 0);
    EXPECT_EQ(dev, 1);
    tai_place_problem bad = {0, 1, nullptr, nullptr, nullptr, nullptr, nullptr};
    EXPECT_EQ(tai_place_solve(&bad, &dev, &t), -1);
}

// Forty identical layers on two devices whose memory holds half: the
// search stays small (Pareto labels) and fills the fast device exactly.
TEST(Placement, ManyEqualLayersFillTheFastDevice) {
    const int L = 40, D = 2;
    Problem p{L, D, {}, {}, {}, {}, {UINT64_MAX, 20}};
    for (int l = 0; l < L; l++) {
        p.cost.push_back(2.0);
        p.cost.push_back(1.0);
        p.mem.push_back(0);
        p.mem.push_back(1);
        for (int i = 0; i < D * D; i++) p.trans.push_back(i == 0 || i == 3 ? 0.0 : 0.5);
    }
    p.tail = {0.0, 0.5};
    std::vector<int> dev(L);
    double t = 0;
    tai_place_problem v = p.view();
    ASSERT_EQ(tai_place_solve(&v, dev.data(), &t), 0);
    int on1 = 0;
    for (int d : dev) on1 += d == 1;
    EXPECT_EQ(on1, 20);
    EXPECT_NEAR(t, 20 * 1.0 + 20 * 2.0 + 0.5 + 0.5, 1e-9); // one run on the device: in and out
}

std::string Tmp(const char *name) {
    const char *t = std::getenv("TEST_TMPDIR");
    return std::string(t ? t : "/tmp") + "/" + name;
}

TEST(Calibration, MeasuredSavedAndReadBack) {
    tai_device *d = nullptr;
    ASSERT_EQ(tai_cpu_device_open(nullptr, 2, &d), TINYAI_OK);
    tai_calib c;
    ASSERT_EQ(tai_calibrate(d, &c), TINYAI_OK) << tinyaiLastErrorMessage();
    for (int t : {TAI_TYPE_F32, TAI_TYPE_F16, TAI_TYPE_Q8_0, TAI_TYPE_Q4_0, TAI_TYPE_Q4_1,
                  TAI_TYPE_Q4_K, TAI_TYPE_Q6_K}) {
        EXPECT_GT(c.mv_gbs[t], 0.1) << t;
        EXPECT_GT(c.mm_gflops[t], 0.1) << t;
        EXPECT_GT(c.mm_big_gflops[t], 0.1) << t;
        EXPECT_GT(c.mv_llc_gbs[t], 0.1) << t;
    }
    EXPECT_GT(c.elem_gbs, 0.1);
    EXPECT_GT(c.mm_op_us, 0.0);
    EXPECT_TRUE(c.unified);
    // the other work on the machine while it measured, in cores (Linux has
    // /proc/stat: known, never negative)
    EXPECT_GE(c.other_cores, 0.0);
    const std::string path = Tmp("devices.json");
    std::remove(path.c_str());
    ASSERT_EQ(tai_calib_save(path.c_str(), &c), TINYAI_OK) << tinyaiLastErrorMessage();
    // another device's entry beside it survives a save of this one
    tai_calib other = c;
    std::snprintf(other.key, sizeof other.key, "opencl:9|Imaginary|1.0");
    other.unified = 0;
    other.h2d_gbs = other.d2h_gbs = 12.5;
    other.mem_bytes = 1ull << 34;
    other.other_cores = -1; // not recorded (a file from before it was): loads as -1
    ASSERT_EQ(tai_calib_save(path.c_str(), &other), TINYAI_OK);
    ASSERT_EQ(tai_calib_save(path.c_str(), &c), TINYAI_OK);
    tai_calib back, back2;
    ASSERT_EQ(tai_calib_load(path.c_str(), c.key, &back), TINYAI_OK) << tinyaiLastErrorMessage();
    EXPECT_NEAR(back.mv_gbs[TAI_TYPE_Q4_0], c.mv_gbs[TAI_TYPE_Q4_0], 1e-9);
    EXPECT_NEAR(back.op_us, c.op_us, 1e-9);
    EXPECT_NEAR(back.mm_op_us, c.mm_op_us, 1e-9);
    EXPECT_NEAR(back.other_cores, c.other_cores, 1e-9);
    ASSERT_EQ(tai_calib_load(path.c_str(), other.key, &back2), TINYAI_OK);
    EXPECT_EQ(back2.other_cores, -1.0);
    EXPECT_EQ(back2.mem_bytes, other.mem_bytes);
    EXPECT_FALSE(back2.unified);
    EXPECT_EQ(tai_calib_load(path.c_str(), "cpu|nothing|here", &back), TINYAI_ERR_IO);
    EXPECT_EQ(back2.types, c.types);
    EXPECT_TRUE(c.types & (1u << TAI_TYPE_Q5_K));
    tai_device_close(d);
}

// A calibration taken while other work kept the CPU busy is told apart
// (its figures are low: the placement says so); one with the load unknown
// (an older file) is not.
TEST(Calibration, OneTakenUnderLoadIsToldApart) {
    tai_calib c{};
    c.other_cores = 0.0;
    EXPECT_FALSE(tai_calib_busy(&c, 2));
    c.other_cores = -1;
    EXPECT_FALSE(tai_calib_busy(&c, 2));
    c.other_cores = 0.45;
    EXPECT_FALSE(tai_calib_busy(&c, 2));
    c.other_cores = 0.6;
    EXPECT_TRUE(tai_calib_busy(&c, 2));
    EXPECT_FALSE(tai_calib_busy(&c, 16)); // 0.6 of 16 cores is little
    c.other_cores = 3.0;
    EXPECT_TRUE(tai_calib_busy(&c, 16));
}

// A type the device claims but the calibration did not measure costs what
// its nearest measured kind would (a K-quant's; BF16: F16's); a type the
// device does not claim cannot run there at all.
TEST(Calibration, UnmeasuredTypesTakeAMeasuredOnesRates) {
    tai_calib c{};
    c.mv_gbs[TAI_TYPE_Q4_K] = c.mv_llc_gbs[TAI_TYPE_Q4_K] = 10;
    c.mm_gflops[TAI_TYPE_Q4_K] = c.mm_big_gflops[TAI_TYPE_Q4_K] = 100;
    c.mv_gbs[TAI_TYPE_F16] = c.mv_llc_gbs[TAI_TYPE_F16] = 20;
    c.mm_gflops[TAI_TYPE_F16] = c.mm_big_gflops[TAI_TYPE_F16] = 200;
    c.elem_gbs = 10;
    c.unified = 1;
    c.types = (1u << TAI_TYPE_Q4_K) | (1u << TAI_TYPE_Q5_K) | (1u << TAI_TYPE_F16) | (1u << TAI_TYPE_BF16);
    tai_layer_cost l{};
    l.n_mats = 1;
    l.rows[0] = 4096;
    l.n[0] = 4096;
    l.type[0] = TAI_TYPE_Q5_K;
    const double q5 = tai_cost_compute(&c, &l, 1, 1, 0);
    ASSERT_TRUE(std::isfinite(q5));
    // the Q5_K bytes at Q4_K's rate
    EXPECT_NEAR(q5, (double)tai_pack_bytes(TAI_TYPE_Q5_K, 4096, 4096) / 10e9, 1e-6);
    l.type[0] = TAI_TYPE_BF16;
    EXPECT_NEAR(tai_cost_compute(&c, &l, 1, 1, 0), (double)tai_pack_bytes(TAI_TYPE_BF16, 4096, 4096) / 20e9,
                1e-6);
    l.type[0] = TAI_TYPE_Q6_K;  // not claimed
    EXPECT_TRUE(std::isinf(tai_cost_compute(&c, &l, 1, 1, 0)));
    l.type[0] = TAI_TYPE_Q4_0;  // not claimed either
    EXPECT_TRUE(std::isinf(tai_cost_compute(&c, &l, 1, 1, 0)));
}

TEST(Calibration, CorruptForeignOrIncompleteFilesAreRefused) {
    const std::string path = Tmp("bad.json");
    tai_calib c;
    const char *cases[] = {
        "not json at all {",
        "{\"something_else\": 1, \"devices\": {}}",
        "{\"tinyai_device_calibration\": 99, \"devices\": {}}",
        "{\"tinyai_device_calibration\": 1, \"devices\": {\"k\": {\"mv_gbs\": {}, "
        "\"mm_gflops\": {}, \"op_us\": 1}}}",
        "{\"tinyai_device_calibration\": 1, \"devices\": {\"k\": {\"mv_gbs\": {\"F32\": -5}, "
        "\"mm_gflops\": {\"F32\": 1}, \"mm_512_gflops\": {\"F32\": 2}, \"mv_llc_gbs\": {\"F32\": 9}, \"op_us\": 1, \"sync_us\": 1, \"elem_gbs\": 1, \"h2d_gbs\": 0,"
        " \"d2h_gbs\": 0, \"xfer_us\": 0, \"mem_bytes\": 0, \"llc_bytes\": 0, \"unified\": 1}}}",
        "{\"tinyai_device_calibration\": 1, \"devices\": {\"k\": {\"mv_gbs\": {\"F32\": 5}, "
        "\"mm_gflops\": {\"F32\": 1}, \"mm_512_gflops\": {\"F32\": 2}, \"mv_llc_gbs\": {\"F32\": 9}, \"op_us\": 1, \"sync_us\": 1, \"elem_gbs\": 1, \"h2d_gbs\": 0,"
        " \"d2h_gbs\": 0, \"xfer_us\": 0, \"mem_bytes\": 0, \"llc_bytes\": 0, \"unified\": 0}}}",
        // a product's cost that is present but impossible
        "{\"tinyai_device_calibration\": 1, \"devices\": {\"k\": {\"mv_gbs\": {\"F32\": 5}, "
        "\"mm_gflops\": {\"F32\": 1}, \"mm_512_gflops\": {\"F32\": 2}, \"mv_llc_gbs\": {\"F32\": 9}, \"op_us\": 1, \"mm_op_us\": -3, \"sync_us\": 1, \"elem_gbs\": 1, \"h2d_gbs\": 0,"
        " \"d2h_gbs\": 0, \"xfer_us\": 0, \"mem_bytes\": 0, \"llc_bytes\": 0, \"unified\": 1}}}",
    };
    for (const char *text : cases) {
        std::ofstream(path, std::ios::trunc) << text;
        EXPECT_EQ(tai_calib_load(path.c_str(), "k", &c), TINYAI_ERR_FORMAT) << text;
        EXPECT_NE(std::string(tinyaiLastErrorMessage()).find(path), std::string::npos);
    }
    // a valid entry is read
    std::ofstream(path, std::ios::trunc)
        << "{\"tinyai_device_calibration\": 1, \"devices\": {\"k\": {\"mv_gbs\": {\"F32\": 5}, "
           "\"mm_gflops\": {\"F32\": 1}, \"mm_512_gflops\": {\"F32\": 2}, \"mv_llc_gbs\": {\"F32\": 9}, \"op_us\": 1, \"sync_us\": 1, \"elem_gbs\": 1, "
           "\"h2d_gbs\": 0, \"d2h_gbs\": 0, \"xfer_us\": 0, \"mem_bytes\": 0, \"llc_bytes\": 0, \"unified\": 1}}}";
    EXPECT_EQ(tai_calib_load(path.c_str(), "k", &c), TINYAI_OK) << tinyaiLastErrorMessage();
    // written before the product's cost was measured: the small op's stands in
    EXPECT_DOUBLE_EQ(c.mm_op_us, 1.0);
    // a corrupt file is replaced by a save
    std::ofstream(path, std::ios::trunc) << "garbage";
    c.mv_gbs[TAI_TYPE_F32] = 7;
    EXPECT_EQ(tai_calib_save(path.c_str(), &c), TINYAI_OK);
    EXPECT_EQ(tai_calib_load(path.c_str(), "k", &c), TINYAI_OK);
    EXPECT_EQ(tai_calib_load("/nonexistent/devices.json", "k", &c), TINYAI_ERR_IO);
}

} // namespace
