// tests/offload/device_test.cc: what tai_device_wrap accepts and refuses
// (another ABI version, a table shorter than the slots the runtime calls, a
// missing slot, a device whose info fails), that a refused device is always
// destroyed once, and how a failing op is reported.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "offload/cpu/cpu.h"
#include "offload/offload.h"

namespace {

int g_destroyed = 0;
const char *g_err = "";

void Destroy(void *) { g_destroyed++; }
int Info(void *, tai_device_info *out) {
    std::memset(out, 0, sizeof *out);
    std::snprintf(out->name, sizeof out->name, "fake");
    std::snprintf(out->model, sizeof out->model, "Fake 9000");
    out->ops = TAI_OP_ALL;
    return 0;
}
int InfoFails(void *, tai_device_info *) { return -EIO; }
const char *LastError(void *) { return g_err; }
int BufAlloc(void *, size_t, tai_dbuf **) { return -ENOMEM; }
void BufFree(void *, tai_dbuf *) {}
int Upload(void *, tai_dref, const void *, size_t) { return 0; }
int Download(void *, void *, tai_dref, size_t) { return 0; }
int Sync(void *) { return -EIO; }
size_t MatmulScratch(void *, int, int64_t, int64_t) { return 0; }
int Matmul(void *, int, tai_dref, int64_t, int64_t, tai_dref, tai_dref, int64_t, tai_dref) {
    return -ENOTSUP;
}
int RmsNorm(void *, tai_dref, tai_dref, tai_dref, int64_t, int64_t, float) { return 0; }
int Add(void *, tai_dref, tai_dref, int64_t) { return 0; }
int Rope(void *, tai_dref, int64_t, int64_t, int, int, int, tai_dref) { return 0; }
int Swiglu(void *, tai_dref, tai_dref, int64_t) { return 0; }
int Attention(void *, tai_dref, tai_dref, int64_t, const tai_dref *, const tai_dref *,
              const int32_t *, int, int, int, tai_dref, size_t) {
    return 0;
}
size_t AttentionScratch(void *, int64_t, int) { return 0; }
int Embed(void *, int, tai_dref, int64_t, int64_t, const int32_t *, int64_t, tai_dref) { return 0; }
int Copy(void *, tai_dref, tai_dref, size_t) { return 0; }

tai_device_ops Complete() {
    tai_device_ops o = {};
    o.abi = TAI_DEVICE_ABI;
    o.size = sizeof o;
    o.destroy = Destroy;
    o.info = Info;
    o.last_error = LastError;
    o.buf_alloc = BufAlloc;
    o.buf_free = BufFree;
    o.upload = Upload;
    o.download = Download;
    o.sync = Sync;
    o.matmul_scratch = MatmulScratch;
    o.matmul = Matmul;
    o.rmsnorm = RmsNorm;
    o.add = Add;
    o.rope = Rope;
    o.swiglu = Swiglu;
    o.attention = Attention;
    o.attention_scratch = AttentionScratch;
    o.embed = Embed;
    o.copy = Copy;
    return o;
}

class DeviceWrap : public ::testing::Test {
  protected:
    void SetUp() override { g_destroyed = 0; }
};

TEST_F(DeviceWrap, AcceptsACompleteTable) {
    const tai_device_ops o = Complete();
    tai_device *d = nullptr;
    ASSERT_EQ(tai_device_wrap(&o, nullptr, &d), TINYAI_OK) << tinyaiLastErrorMessage();
    EXPECT_STREQ(d->info.name, "fake");
    tai_device_close(d);
    EXPECT_EQ(g_destroyed, 1);
}

TEST_F(DeviceWrap, RefusesAnotherAbiVersion) {
    tai_device_ops o = Complete();
    o.abi = TAI_DEVICE_ABI + 1;
    tai_device *d = reinterpret_cast<tai_device *>(1);
    EXPECT_EQ(tai_device_wrap(&o, nullptr, &d), TINYAI_ERR_UNSUPPORTED);
    EXPECT_EQ(d, nullptr);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("ABI version"), std::string::npos);
    EXPECT_EQ(g_destroyed, 1);
}

TEST_F(DeviceWrap, RefusesATableWithoutARequiredSlot) {
    tai_device_ops o = Complete();
    o.attention = nullptr;
    tai_device *d = nullptr;
    EXPECT_EQ(tai_device_wrap(&o, nullptr, &d), TINYAI_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("'attention'"), std::string::npos)
        << tinyaiLastErrorMessage();
    EXPECT_EQ(g_destroyed, 1);
}

TEST_F(DeviceWrap, RefusesATableShorterThanTheSlotsTheRuntimeCalls) {
    // an older device's table: it ends before `copy`; the slot's bytes past
    // its size are not read even though this struct holds a pointer there
    tai_device_ops o = Complete();
    o.size = (uint32_t)offsetof(tai_device_ops, copy);
    tai_device *d = nullptr;
    EXPECT_EQ(tai_device_wrap(&o, nullptr, &d), TINYAI_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("'copy'"), std::string::npos);
    EXPECT_EQ(g_destroyed, 1);
}

TEST_F(DeviceWrap, AFailingInfoIsAnErrorAndTheDeviceIsDestroyed) {
    tai_device_ops o = Complete();
    o.info = InfoFails;
    g_err = "driver gone";
    tai_device *d = nullptr;
    EXPECT_EQ(tai_device_wrap(&o, nullptr, &d), TINYAI_ERR_DEVICE);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("driver gone"), std::string::npos);
    EXPECT_EQ(g_destroyed, 1);
}

TEST_F(DeviceWrap, OpFailuresMapToStatusesAndNameDeviceOpAndText) {
    const tai_device_ops o = Complete();
    tai_device *d = nullptr;
    ASSERT_EQ(tai_device_wrap(&o, nullptr, &d), TINYAI_OK);
    g_err = "kernel build failed: line 3";
    tai_dref r = {};
    EXPECT_EQ(tai_dev_matmul(d, TAI_TYPE_Q4_0, r, 16, 32, r, r, 1, r), TINYAI_ERR_UNSUPPORTED);
    const std::string m = tinyaiLastErrorMessage();
    EXPECT_NE(m.find("device fake (Fake 9000): matmul: kernel build failed: line 3"),
              std::string::npos)
        << m;
    EXPECT_EQ(tai_dev_sync(d), TINYAI_ERR_DEVICE);
    g_err = ""; // no text of its own: the errno's
    EXPECT_EQ(tai_dev_sync(d), TINYAI_ERR_DEVICE);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("sync: "), std::string::npos);
    tai_device_close(d);
}

TEST(CpuDevice, RefusesUnknownVariantsAndThreadCounts) {
    tai_device *d = nullptr;
    EXPECT_EQ(tai_cpu_device_open("avx9000", 1, &d), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(d, nullptr);
    EXPECT_EQ(tai_cpu_device_open(nullptr, 0, &d), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_cpu_device_open(nullptr, 257, &d), TINYAI_ERR_INVALID_ARG);
    ASSERT_EQ(tai_cpu_device_open("scalar", 2, &d), TINYAI_OK);
    EXPECT_STREQ(tai_cpu_device_variant(d), "scalar");
    EXPECT_EQ(tai_cpu_device_threads(d), 2);
    EXPECT_TRUE(d->info.unified);
    tai_device_close(d);
}

TEST(CpuDevice, RefusesDeviceBufferReferences) {
    tai_device *d = nullptr;
    ASSERT_EQ(tai_cpu_device_open(nullptr, 1, &d), TINYAI_OK);
    float x[32] = {0};
    tai_dref bad = {reinterpret_cast<tai_dbuf *>(x), 0};
    EXPECT_EQ(tai_dev_add(d, bad, tai_dref_host(x), 32), TINYAI_ERR_INVALID_ARG);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("not a host address"), std::string::npos);
    tai_device_close(d);
}

// The bias add (qwen2's q/k/v biases) adds bias element i % n to element i
// of n x ncols, alone and split across threads at any boundary (columns of
// odd width, a total past the parallel threshold); a bad width is refused.
TEST(CpuDevice, AddBiasAddsTheBiasToEveryColumn) {
    for (int threads : {1, 2, 3}) {
        tai_device *d = nullptr;
        ASSERT_EQ(tai_cpu_device_open(nullptr, threads, &d), TINYAI_OK);
        for (int64_t n : {1, 7, 64, 1000}) {
            for (int64_t ncols : {1, 3, 37}) {
                std::vector<float> x(n * ncols), bias(n), want(n * ncols);
                for (int64_t i = 0; i < n * ncols; i++) x[i] = 0.25f * (float)(i % 17) - 2.0f;
                for (int64_t i = 0; i < n; i++) bias[i] = 1.0f + 0.5f * (float)(i % 5);
                for (int64_t i = 0; i < n * ncols; i++) want[i] = x[i] + bias[i % n];
                ASSERT_EQ(tai_dev_add_bias(d, tai_dref_host(x.data()), tai_dref_host(bias.data()), n, ncols),
                          TINYAI_OK);
                EXPECT_EQ(x, want) << threads << " threads, n " << n << ", " << ncols << " columns";
            }
        }
        float x[4] = {0}, b[4] = {0};
        EXPECT_EQ(tai_dev_add_bias(d, tai_dref_host(x), tai_dref_host(b), 0, 1), TINYAI_ERR_INVALID_ARG);
        tai_device_close(d);
    }
}

// The CPU device's attention over a batch of columns at different
// positions: by whole columns (a column per thread or more, the scratch it
// plans), head by head (one column, or a scratch too small for the
// sweep: long contexts; few columns spread their query heads over the
// threads) and over a sliding window, float, binary16 and 8-bit caches,
// SmolLM2's heads (9 over 3 kv heads of 64) and Gemma 3's (4 over one of
// 256), every kernel variant the CPU has: every column's output the same
// bits as the column alone.
TEST(CpuDevice, AttentionByColumnsEqualsEachColumnAlone) {
    struct Shape {
        int n_head, n_kv, hd;
    };
    for (Shape sh : {Shape{9, 3, 64}, Shape{4, 1, 256}}) {
        const int n_head = sh.n_head, n_kv = sh.n_kv, hd = sh.hd, ncols = 5, ctx = 120;
        const int64_t kvd = n_kv * hd, qd = n_head * hd;
        const int32_t pos[ncols] = {0, 17, 63, 64, 119};
        std::vector<float> q(qd * ncols);
        for (size_t i = 0; i < q.size(); i++) q[i] = 0.01f * (float)((i * 37) % 201) - 1.0f;
        std::vector<float> k32((size_t)ncols * ctx * kvd), v32(k32.size());
        for (size_t i = 0; i < k32.size(); i++) {
            k32[i] = 0.02f * (float)((i * 13) % 97) - 0.9f;
            v32[i] = 0.03f * (float)((i * 7) % 89) - 1.2f;
        }
        std::vector<uint16_t> k16(k32.size()), v16(v32.size());
        for (size_t i = 0; i < k32.size(); i++) {
            k16[i] = tai_fp32_to_fp16(k32[i]);
            v16[i] = tai_fp32_to_fp16(v32[i]);
        }
        std::vector<int8_t> k8(k32.size()), v8(v32.size());
        std::vector<float> ks(k32.size() / 32), vs(v32.size() / 32);
        for (int vt = 0; vt < 9; vt++) {
            static const char *const kVariants[] = {"scalar", "avx2", "avx512"};
            const char *variant = kVariants[vt / 3];
            const int threads = 1 + vt % 3;
            tai_device *d = nullptr;
            const TinyAIStatus opened = tai_cpu_device_open(variant, threads, &d);
            if (opened == TINYAI_ERR_UNSUPPORTED) continue;  // not on this CPU
            ASSERT_EQ(opened, TINYAI_OK) << variant;
            if (vt == 0) {
                ASSERT_EQ(tai_dev_to_q8(d, tai_dref_host(k8.data()), tai_dref_host(ks.data()),
                                        tai_dref_host(k32.data()), (int64_t)k32.size()),
                          TINYAI_OK);
                ASSERT_EQ(tai_dev_to_q8(d, tai_dref_host(v8.data()), tai_dref_host(vs.data()),
                                        tai_dref_host(v32.data()), (int64_t)v32.size()),
                          TINYAI_OK);
            }
            const size_t full = tai_dev_attention_scratch(d, ctx, n_head);
            const size_t small = (size_t)threads * ctx * sizeof(float);  // head by head only
            ASSERT_GE(full, small);
            std::vector<float> scratch(full / sizeof(float) + 16);
            for (int kind : {0, 1, 2})
                for (int window : {0, 40}) {
                    tai_dref kr[ncols], vr[ncols], ksr[ncols], vsr[ncols];
                    for (int c = 0; c < ncols; c++) {
                        const size_t at = (size_t)c * ctx * kvd;
                        kr[c] = kind == 2   ? tai_dref_host(k8.data() + at)
                                : kind == 1 ? tai_dref_host(k16.data() + at)
                                            : tai_dref_host(k32.data() + at);
                        vr[c] = kind == 2   ? tai_dref_host(v8.data() + at)
                                : kind == 1 ? tai_dref_host(v16.data() + at)
                                            : tai_dref_host(v32.data() + at);
                        ksr[c] = tai_dref_host(ks.data() + at / 32);
                        vsr[c] = tai_dref_host(vs.data() + at / 32);
                    }
                    auto run = [&](int64_t first, int64_t n, size_t sbytes, float *out) {
                        const tai_dref o = tai_dref_host(out), qq = tai_dref_host(q.data() + first * qd),
                                       sc = tai_dref_host(scratch.data());
                        if (kind == 2)
                            return tai_dev_attention_q8(d, o, qq, n, kr + first, vr + first, ksr + first,
                                                        vsr + first, pos + first, n_head, n_kv, hd, window,
                                                        sc, sbytes);
                        if (kind == 1)
                            return tai_dev_attention_f16(d, o, qq, n, kr + first, vr + first, pos + first,
                                                         n_head, n_kv, hd, window, sc, sbytes);
                        if (window)
                            return tai_dev_attention_window(d, o, qq, n, kr + first, vr + first, pos + first,
                                                            n_head, n_kv, hd, window, sc, sbytes);
                        return tai_dev_attention(d, o, qq, n, kr + first, vr + first, pos + first, n_head,
                                                 n_kv, hd, sc, sbytes);
                    };
                    std::vector<float> alone(qd * ncols), batch(qd * ncols, 5.0f), narrow(qd * ncols, 6.0f);
                    for (int c = 0; c < ncols; c++)
                        ASSERT_EQ(run(c, 1, full, alone.data() + c * qd), TINYAI_OK) << tinyaiLastErrorMessage();
                    ASSERT_EQ(run(0, ncols, full, batch.data()), TINYAI_OK) << tinyaiLastErrorMessage();
                    ASSERT_EQ(run(0, ncols, small, narrow.data()), TINYAI_OK) << tinyaiLastErrorMessage();
                    const std::string what = std::string(variant) + ", " + std::to_string(n_head) +
                                             " heads, " + std::to_string(threads) +
                                             " threads, kind " + std::to_string(kind) + ", window " +
                                             std::to_string(window);
                    EXPECT_EQ(0, std::memcmp(alone.data(), batch.data(), alone.size() * sizeof(float))) << what;
                    EXPECT_EQ(0, std::memcmp(alone.data(), narrow.data(), alone.size() * sizeof(float)))
                        << what << ", small scratch";
                }
            tai_device_close(d);
        }
    }
}

// Conversions into binary16 and 8-bit caches, many runs at once (a
// step's K and V of each sequence): every run's values the same bits as a
// call of to_f16 / to_q8 for it alone, with 1-3 threads and runs of
// different lengths (the split between threads falls inside runs); bad
// kinds and lengths are refused.
TEST(CpuDevice, CacheConversionsTogetherEqualEachAlone) {
    const int64_t counts[] = {192, 32, 960, 64, 6 * 192, 96, 192};
    const int nr = 7;
    int64_t total = 0;
    for (int64_t c : counts) total += c;
    std::vector<float> src(total);
    for (int64_t i = 0; i < total; i++) src[i] = 0.37f * (float)((i * 29) % 113) - 20.0f;
    src[5] = 0.0f;
    for (int threads : {1, 2, 3}) {
        tai_device *d = nullptr;
        ASSERT_EQ(tai_cpu_device_open(nullptr, threads, &d), TINYAI_OK);
        for (int kind : {1, 2}) {
            std::vector<int8_t> c_one(total, 1), c_many(total, 2);
            std::vector<uint16_t> h_one(total, 1), h_many(total, 2);
            std::vector<float> s_one(total / 32, 1.0f), s_many(total / 32, 2.0f);
            tai_dref dst[nr], dsc[nr], sr[nr];
            int64_t off = 0;
            for (int r = 0; r < nr; r++) {
                sr[r] = tai_dref_host(src.data() + off);
                dst[r] = kind == 2 ? tai_dref_host(c_many.data() + off) : tai_dref_host(h_many.data() + off);
                dsc[r] = tai_dref_host(s_many.data() + off / 32);
                if (kind == 2)
                    ASSERT_EQ(tai_dev_to_q8(d, tai_dref_host(c_one.data() + off), tai_dref_host(s_one.data() + off / 32),
                                            sr[r], counts[r]),
                              TINYAI_OK);
                else
                    ASSERT_EQ(tai_dev_to_f16(d, tai_dref_host(h_one.data() + off), sr[r], counts[r]), TINYAI_OK);
                off += counts[r];
            }
            ASSERT_EQ(tai_dev_to_cache_many(d, kind, nr, dst, dsc, sr, counts), TINYAI_OK)
                << tinyaiLastErrorMessage();
            if (kind == 2) {
                EXPECT_EQ(c_one, c_many) << threads << " threads";
                EXPECT_EQ(0, std::memcmp(s_one.data(), s_many.data(), s_one.size() * sizeof(float)));
            } else {
                EXPECT_EQ(h_one, h_many) << threads << " threads";
            }
        }
        const int64_t odd[1] = {48};
        tai_dref dst[1] = {tai_dref_host(src.data())}, sr[1] = {tai_dref_host(src.data() + 64)};
        EXPECT_EQ(tai_dev_to_cache_many(d, 2, 1, dst, dst, sr, odd), TINYAI_ERR_INVALID_ARG);
        EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("8-bit conversion of 48"), std::string::npos);
        EXPECT_EQ(tai_dev_to_cache_many(d, 3, 1, dst, dst, sr, counts), TINYAI_ERR_INVALID_ARG);
        tai_dref bad[1] = {{reinterpret_cast<tai_dbuf *>(src.data()), 0}};
        EXPECT_EQ(tai_dev_to_cache_many(d, 1, 1, bad, bad, sr, counts), TINYAI_ERR_INVALID_ARG);
        tai_device_close(d);
    }
}

} // namespace
