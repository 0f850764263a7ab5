// tests/plugin/loader_test.cc: loading device plugins. The reference plugin
// as shipped and built against the previous and a newer minor version of
// <tinyai/plugin.h>; plugins that misbehave one way each (bad_plugin.c):
// each is a clear error naming the file, never a crash; a model on a
// plugin device against the CPU; auto placement dropping a failing plugin.
#include <gtest/gtest.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <tinyai/llm.h>
#include <tinyai/plugin.h>

#include "core/types.h"
#include "offload/cost.h"
#include "offload/offload.h"
#include "offload/plugin/plugin.h"
#include "tests/common/test_paths.h"

namespace {

std::string Env(const char *name) {
    const char *v = std::getenv(name);
    return v ? v : "";
}

std::string Reference() { return Env("TINYAI_TEST_PLUGIN"); }

// The folder of the bad plugins (libbad_<mode>.so).
std::string Bad(const std::string &mode) {
    std::string one = Env("TINYAI_TEST_BAD_PLUGINS");
    return one.substr(0, one.rfind('/') + 1) + "libbad_" + mode + ".so";
}

// Loads a plugin into a registry emptied first (each test starts clean).
tai_plugin *Fresh(const std::string &path, const char *options = nullptr) {
    tai_plugin_unload_all();
    EXPECT_EQ(tai_plugin_count(), 0);
    tai_plugin *p = nullptr;
    EXPECT_EQ(tai_plugin_load(path.c_str(), options, &p), TINYAI_OK) << tinyaiLastErrorMessage();
    return p;
}

// y = W x through the device, for an F32 matrix packed here.
std::vector<float> Matvec(tai_device *d, int64_t rows, int64_t n, const std::vector<float> &w,
                          const std::vector<float> &x) {
    const size_t pb = tai_pack_bytes(TAI_TYPE_F32, rows, n);
    std::vector<unsigned char> packed(pb, 0);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < n; k++)
            std::memcpy(&packed[((r / 16) * 16 * n + k * 16 + r % 16) * 4], &w[r * n + k], 4);
    tai_dbuf *bw = nullptr, *bx = nullptr, *by = nullptr;
    EXPECT_EQ(d->ops->buf_alloc(d->ctx, pb, &bw), 0);
    EXPECT_EQ(d->ops->buf_alloc(d->ctx, n * 4, &bx), 0);
    EXPECT_EQ(d->ops->buf_alloc(d->ctx, rows * 4, &by), 0);
    std::vector<float> y(rows, -1);
    EXPECT_EQ(tai_dev_upload(d, {bw, 0}, packed.data(), pb), TINYAI_OK);
    EXPECT_EQ(tai_dev_upload(d, {bx, 0}, x.data(), n * 4), TINYAI_OK);
    EXPECT_EQ(tai_dev_matmul(d, TAI_TYPE_F32, {bw, 0}, rows, n, {bx, 0}, {by, 0}, 1, {nullptr, 0}),
              TINYAI_OK)
        << tinyaiLastErrorMessage();
    EXPECT_EQ(tai_dev_sync(d), TINYAI_OK);
    EXPECT_EQ(tai_dev_download(d, y.data(), {by, 0}, rows * 4), TINYAI_OK);
    d->ops->buf_free(d->ctx, bw);
    d->ops->buf_free(d->ctx, bx);
    d->ops->buf_free(d->ctx, by);
    return y;
}

void ExpectMatvecWorks(tai_device *d) {
    const int64_t rows = 21, n = 7;
    std::vector<float> w(rows * n), x(n);
    for (size_t i = 0; i < w.size(); i++) w[i] = 0.01f * (float)((i * 37) % 23) - 0.1f;
    for (size_t i = 0; i < x.size(); i++) x[i] = 0.5f - 0.1f * (float)i;
    const std::vector<float> y = Matvec(d, rows, n, w, x);
    for (int64_t r = 0; r < rows; r++) {
        double ref = 0;
        for (int64_t k = 0; k < n; k++) ref += (double)w[r * n + k] * x[k];
        EXPECT_NEAR(y[r], ref, 1e-5) << r;
    }
}

TEST(PluginLoader, TheReferencePluginLoadsAndRuns) {
    ASSERT_FALSE(Reference().empty()) << "TINYAI_TEST_PLUGIN is not set (run through Bazel)";
    tai_plugin *p = Fresh(Reference());
    ASSERT_TRUE(p);
    EXPECT_STREQ(tai_plugin_name(p), "reference");
    int major = 0, minor = 0;
    tai_plugin_abi(p, &major, &minor);
    EXPECT_EQ(major, TINYAI_PLUGIN_ABI_MAJOR);
    EXPECT_EQ(minor, TINYAI_PLUGIN_ABI_MINOR);
    EXPECT_EQ(tai_plugin_device_count(p), 1);
    tai_device *d = nullptr;
    ASSERT_EQ(tai_plugin_device_open(p, 0, &d), TINYAI_OK) << tinyaiLastErrorMessage();
    EXPECT_STREQ(d->info.name, "reference:0");
    EXPECT_EQ(d->info.ops, (uint32_t)TAI_OP_ALL);
    EXPECT_FALSE(d->info.unified);
    EXPECT_EQ(d->info.mem_total, 1ull << 30);
    ExpectMatvecWorks(d);
    // its device memory is host memory counted through the host table
    const uint64_t before = tai_plugin_host_bytes(p);
    tai_dbuf *b = nullptr;
    ASSERT_EQ(d->ops->buf_alloc(d->ctx, 1 << 20, &b), 0);
    EXPECT_GE(tai_plugin_host_bytes(p), before + (1 << 20));
    d->ops->buf_free(d->ctx, b);
    EXPECT_EQ(tai_plugin_host_bytes(p), before);
    // a plugin with an open device is not unloaded
    EXPECT_EQ(tai_plugin_unload(p), TINYAI_ERR_INVALID_ARG);
    // closing a device frees the buffers it still has
    ASSERT_EQ(d->ops->buf_alloc(d->ctx, 4096, &b), 0);
    EXPECT_GT(tai_plugin_host_bytes(p), before);
    tai_device_close(d);
    EXPECT_EQ(tai_plugin_host_bytes(p), 0u);
    EXPECT_EQ(tai_plugin_unload(p), TINYAI_OK);
    EXPECT_EQ(tai_plugin_count(), 0);
    // and loads again (init, shutdown, reload)
    p = Fresh(Reference());
    ASSERT_TRUE(p);
    ASSERT_EQ(tai_plugin_device_open(p, 0, &d), TINYAI_OK);
    ExpectMatvecWorks(d);
    tai_device_close(d);
    tai_plugin_unload_all();
}

// Minor versions both ways: a plugin built against ABI 1.0 (no stream
// slots) and one built against a newer 1.2 (a slot this TinyAI does not
// know) load and run the common part.
TEST(PluginLoader, OlderAndNewerMinorVersionsWork) {
    for (const char *var : {"TINYAI_TEST_PLUGIN_1_0", "TINYAI_TEST_PLUGIN_1_2"}) {
        SCOPED_TRACE(var);
        const std::string path = Env(var);
        ASSERT_FALSE(path.empty()) << var << " is not set";
        tai_plugin *p = Fresh(path);
        ASSERT_TRUE(p);
        int major = 0, minor = 0;
        tai_plugin_abi(p, &major, &minor);
        EXPECT_EQ(major, 1);
        EXPECT_EQ(minor, std::string(var).back() == '0' ? 0 : 2);
        tai_device *d = nullptr;
        ASSERT_EQ(tai_plugin_device_open(p, 0, &d), TINYAI_OK) << tinyaiLastErrorMessage();
        ExpectMatvecWorks(d);
        tai_device_close(d);
        tai_plugin_unload_all();
    }
}

struct BadCase {
    const char *mode;
    TinyAIStatus load;      // tai_plugin_load's status
    TinyAIStatus open;      // then tai_plugin_device_open's (if it loaded)
    const char *message;    // in the error's text
};

// Each misbehaviour is an error with a message naming the file or the
// device, and nothing is left loaded; none crashes.
TEST(PluginLoader, PluginsThatMisbehaveAreRefusedClearly) {
    const BadCase cases[] = {
        {"no_entry", TINYAI_ERR_FORMAT, TINYAI_OK, "no entry point 'tinyai_plugin_entry'"},
        {"major2", TINYAI_ERR_UNSUPPORTED, TINYAI_OK, "built for plugin ABI 2.1, this TinyAI speaks 1.1"},
        {"entry_fails", TINYAI_ERR_DEVICE, TINYAI_OK, "bad plugin: no hardware here"},
        {"null_slots", TINYAI_ERR_FORMAT, TINYAI_OK, "lacks device_count"},
        {"tiny_table", TINYAI_ERR_FORMAT, TINYAI_OK, "impossible size (8 bytes)"},
        {"bad_name", TINYAI_ERR_FORMAT, TINYAI_OK, "its name is missing or not"},
        {"negative_devices", TINYAI_ERR_FORMAT, TINYAI_OK, "reports -5 devices"},
        {"null_ops", TINYAI_OK, TINYAI_ERR_FORMAT, "returned no operation table"},
        {"short_ops", TINYAI_OK, TINYAI_ERR_FORMAT, "impossible size (16 bytes)"},
        {"missing_slot", TINYAI_OK, TINYAI_ERR_FORMAT, "slot 'matmul' is missing"},
    };
    for (const BadCase &c : cases) {
        SCOPED_TRACE(c.mode);
        tai_plugin_unload_all();
        const std::string path = Bad(c.mode);
        tai_plugin *p = nullptr;
        const TinyAIStatus st = tai_plugin_load(path.c_str(), nullptr, &p);
        ASSERT_EQ(st, c.load) << tinyaiLastErrorMessage();
        if (st != TINYAI_OK) {
            const std::string msg = tinyaiLastErrorMessage();
            EXPECT_NE(msg.find(path), std::string::npos) << msg;
            EXPECT_NE(msg.find(c.message), std::string::npos) << msg;
            EXPECT_EQ(p, nullptr);
            EXPECT_EQ(tai_plugin_count(), 0);
            continue;
        }
        tai_device *d = nullptr;
        EXPECT_EQ(tai_plugin_device_open(p, 0, &d), c.open);
        const std::string msg = tinyaiLastErrorMessage();
        EXPECT_NE(msg.find("device bad:0"), std::string::npos) << msg;
        EXPECT_NE(msg.find(c.message), std::string::npos) << msg;
        EXPECT_EQ(d, nullptr);
        EXPECT_EQ(tai_plugin_unload(p), TINYAI_OK); // nothing left open
    }
    tai_plugin_unload_all();
}

// A status that is not 0 or -errno is a device failure, named.
TEST(PluginLoader, AnImpossibleStatusIsADeviceFailure) {
    tai_plugin *p = Fresh(Bad("positive_status"));
    ASSERT_TRUE(p);
    tai_device *d = nullptr;
    ASSERT_EQ(tai_plugin_device_open(p, 0, &d), TINYAI_OK) << tinyaiLastErrorMessage();
    tai_dbuf *b = nullptr;
    ASSERT_EQ(d->ops->buf_alloc(d->ctx, 4096, &b), 0);
    EXPECT_EQ(tai_dev_matmul(d, TAI_TYPE_F32, {b, 0}, 16, 4, {b, 1024}, {b, 2048}, 1, {nullptr, 0}),
              TINYAI_ERR_DEVICE);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("device bad:0 (a misbehaving test device): "
                                                         "matmul: returned a positive status"),
              std::string::npos)
        << tinyaiLastErrorMessage();
    d->ops->buf_free(d->ctx, b);
    tai_device_close(d);
    tai_plugin_unload_all();
}

// A garbage scratch size is what it is: the allocation it asks for fails
// as an error of the device, and the device goes on working.
TEST(PluginLoader, AGarbageScratchSizeFailsItsAllocationCleanly) {
    tai_plugin *p = Fresh(Bad("huge_scratch"));
    ASSERT_TRUE(p);
    tai_device *d = nullptr;
    ASSERT_EQ(tai_plugin_device_open(p, 0, &d), TINYAI_OK) << tinyaiLastErrorMessage();
    const size_t sb = tai_dev_matmul_scratch(d, TAI_TYPE_F32, 64, 1);
    EXPECT_GT(sb, (size_t)1 << 50);
    tai_dbuf *b = nullptr;
    const int rc = d->ops->buf_alloc(d->ctx, sb, &b);
    EXPECT_EQ(rc, -ENOMEM);
    EXPECT_EQ(tai_dev_fail(d, "buf_alloc", rc), TINYAI_ERR_NOMEM);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("device bad:0"), std::string::npos);
    ExpectMatvecWorks(d);
    tai_device_close(d);
    tai_plugin_unload_all();
}

TEST(PluginLoader, MissingUnreadableOrForeignFilesAreIoErrors) {
    tai_plugin_unload_all();
    EXPECT_EQ(tai_plugin_load("/nonexistent/libnothing.so", nullptr, nullptr), TINYAI_ERR_IO);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("/nonexistent/libnothing.so"),
              std::string::npos);
    EXPECT_EQ(tai_plugin_load("/tmp", nullptr, nullptr), TINYAI_ERR_IO); // a folder
    const std::string junk = tai_test::TempPath(".so");
    std::ofstream(junk) << "not an ELF file";
    EXPECT_EQ(tai_plugin_load(junk.c_str(), nullptr, nullptr), TINYAI_ERR_IO);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("cannot load it"), std::string::npos);
    std::remove(junk.c_str());
    EXPECT_EQ(tai_plugin_load(nullptr, nullptr, nullptr), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_plugin_count(), 0);
}

TEST(PluginLoader, TwoPluginsOfOneNameAreRefused) {
    tai_plugin *p = Fresh(Reference());
    ASSERT_TRUE(p);
    EXPECT_EQ(tai_plugin_load(Reference().c_str(), nullptr, nullptr), TINYAI_ERR_INVALID_ARG);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("a plugin named reference (from"),
              std::string::npos)
        << tinyaiLastErrorMessage();
    EXPECT_EQ(tai_plugin_count(), 1);
    tai_plugin_unload_all();
}

// The plugin's options reach it: two devices, a small memory that runs out
// (an error, after which the device still works), a subset of ops (the
// others are errors naming the op), bad options (the load fails, saying
// why).
TEST(PluginLoader, OptionsReachThePlugin) {
    tai_plugin *p = Fresh(Reference(), "devices=2;memory=65536;ops=matmul,copy");
    ASSERT_TRUE(p);
    ASSERT_EQ(tai_plugin_device_count(p), 2);
    tai_device *a = nullptr, *b = nullptr;
    ASSERT_EQ(tai_plugin_device_open(p, 0, &a), TINYAI_OK);
    ASSERT_EQ(tai_plugin_device_open(p, 1, &b), TINYAI_OK);
    EXPECT_STREQ(b->info.name, "reference:1");
    EXPECT_EQ(a->info.ops, (uint32_t)(TAI_OP_MATMUL | TAI_OP_COPY));
    tai_dbuf *big = nullptr;
    EXPECT_EQ(a->ops->buf_alloc(a->ctx, 1 << 20, &big), -ENOMEM);
    EXPECT_EQ(tai_dev_fail(a, "buf_alloc", -ENOMEM), TINYAI_ERR_NOMEM);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("of 65536 free"), std::string::npos)
        << tinyaiLastErrorMessage();
    ExpectMatvecWorks(a); // recovered
    ExpectMatvecWorks(b); // the other device is its own
    tai_dbuf *buf = nullptr;
    ASSERT_EQ(a->ops->buf_alloc(a->ctx, 256, &buf), 0);
    EXPECT_EQ(tai_dev_add(a, {buf, 0}, {buf, 128}, 8), TINYAI_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("add is not among the ops"),
              std::string::npos)
        << tinyaiLastErrorMessage();
    a->ops->buf_free(a->ctx, buf);
    tai_device_close(a);
    tai_device_close(b);
    tai_plugin_unload_all();
    EXPECT_EQ(tai_plugin_load(Reference().c_str(), "devices=99", nullptr), TINYAI_ERR_INVALID_ARG);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("bad option near 'devices'"),
              std::string::npos)
        << tinyaiLastErrorMessage();
    EXPECT_EQ(tai_plugin_count(), 0);
}

// ---- models on plugin devices (the public API) ------------------------------

std::string Synth(const char *type) {
    TinyAISynthConfig c = tinyaiCreateDefaultSynthConfig();
    c.nVocab = 320;
    c.nEmbd = 64;
    c.nFF = 160;
    c.nHead = 4;
    c.nHeadKV = 2;
    c.nLayer = 3;
    c.nCtx = 64;
    c.weightType = type;
    c.embeddingType = type;
    c.seed = 11;
    std::string path = tai_test::TempPath(".gguf");
    EXPECT_EQ(tinyaiWriteSyntheticModel(&c, path.c_str()), TINYAI_OK) << tinyaiLastErrorMessage();
    return path;
}

TinyAIModel *Load(const std::string &path, const char *device, const char *cache = nullptr) {
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.threads = 2;
    mc.device = device;
    mc.cacheDir = cache;
    TinyAIModel *m = nullptr;
    EXPECT_EQ(tinyaiLoadModel(path.c_str(), &mc, &m), TINYAI_OK) << tinyaiLastErrorMessage();
    return m;
}

const std::vector<int32_t> kTokens = {1, 17, 42, 99, 5, 250, 3, 77};

std::vector<float> Logits(TinyAIModel *m) {
    TinyAISession *s = nullptr;
    EXPECT_EQ(tinyaiCreateSession(m, 0, &s), TINYAI_OK) << tinyaiLastErrorMessage();
    if (!s) return {};
    EXPECT_EQ(tinyaiEval(s, kTokens.data(), 5), TINYAI_OK) << tinyaiLastErrorMessage();
    for (size_t i = 5; i < kTokens.size(); i++)
        EXPECT_EQ(tinyaiEval(s, &kTokens[i], 1), TINYAI_OK) << tinyaiLastErrorMessage();
    const float *l = tinyaiGetLogits(s);
    std::vector<float> out(l, l + 320);
    tinyaiFreeSession(s);
    return out;
}

double RelError(const std::vector<float> &a, const std::vector<float> &b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return std::sqrt(num / den);
}

// Every weight type: the blocks and head on the reference plugin's device
// give the CPU's logits (both quantize activations the same way).
TEST(PluginModel, TheReferenceDeviceAgreesWithTheCpu) {
    tai_plugin_unload_all();
    ASSERT_EQ(tinyaiLoadPlugin(Reference().c_str(), nullptr), TINYAI_OK) << tinyaiLastErrorMessage();
    for (const char *type : {"F32", "F16", "Q8_0", "Q4_0", "Q4_1"}) {
        SCOPED_TRACE(type);
        const std::string path = Synth(type);
        TinyAIModel *cpu = Load(path, "cpu"), *ref = Load(path, "reference:0");
        ASSERT_TRUE(cpu && ref);
        EXPECT_STREQ(tinyaiLayerDevice(ref, 1), "reference:0");
        const std::vector<float> a = Logits(cpu), b = Logits(ref);
        ASSERT_EQ(a.size(), b.size());
        EXPECT_LT(RelError(b, a), 1e-4);
        // the plugin's copies of the weights (host memory through the host
        // table) count in the model's memory
        TinyAIMemoryInfo mc, mr;
        ASSERT_EQ(tinyaiGetMemoryInfo(cpu, &mc), TINYAI_OK);
        ASSERT_EQ(tinyaiGetMemoryInfo(ref, &mr), TINYAI_OK);
        TinyAIModelInfo info;
        ASSERT_EQ(tinyaiGetModelInfo(cpu, &info), TINYAI_OK);
        EXPECT_GE(mr.currentBytes, mc.currentBytes + info.packedBytes / 2)
            << mr.currentBytes << " " << mc.currentBytes;
        tinyaiFreeModel(cpu);
        tinyaiFreeModel(ref);
        std::remove(path.c_str());
    }
    // named other ways
    const std::string path = Synth("F32");
    for (const char *name : {"reference", "plugin:reference", "plugin:reference:0"}) {
        TinyAIModel *m = Load(path, name);
        EXPECT_TRUE(m) << name;
        if (m) {
            EXPECT_STREQ(tinyaiLayerDevice(m, 1), "reference:0");
        }
        tinyaiFreeModel(m);
    }
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.device = "reference:1";
    TinyAIModel *m = nullptr;
    EXPECT_EQ(tinyaiLoadModel(path.c_str(), &mc, &m), TINYAI_ERR_INVALID_ARG);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("plugin reference has 1"),
              std::string::npos)
        << tinyaiLastErrorMessage();
    std::remove(path.c_str());
    tinyaiUnloadPlugins();
}

// A device that runs only some ops is valid, but cannot be named for a
// model whose blocks need the rest; auto gives it nothing.
TEST(PluginModel, APartialDeviceIsRefusedByNameAndSkippedByAuto) {
    tai_plugin_unload_all();
    ASSERT_EQ(tinyaiLoadPlugin(Reference().c_str(), "ops=matmul"), TINYAI_OK);
    const std::string path = Synth("F32");
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.device = "reference:0";
    TinyAIModel *m = nullptr;
    EXPECT_EQ(tinyaiLoadModel(path.c_str(), &mc, &m), TINYAI_ERR_UNSUPPORTED);
    const std::string msg = tinyaiLastErrorMessage();
    EXPECT_NE(msg.find("device reference:0 does not run rmsnorm, add, rope, attention, swiglu, copy"),
              std::string::npos)
        << msg;
    // auto, with a calibration kept for it (however fast) gives it nothing
    const std::string dir = tai_test::TempPath("-partial");
    ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
    TinyAIDeviceCalibration c;
    const int idx = tinyaiDeviceCount() - 1;
    ASSERT_EQ(tinyaiCalibrateDevice(dir.c_str(), 0, 2, &c), TINYAI_OK) << tinyaiLastErrorMessage();
    ASSERT_EQ(tinyaiCalibrateDevice(dir.c_str(), idx, 2, &c), TINYAI_OK) << tinyaiLastErrorMessage();
    // this machine's OpenCL devices are not candidates here
    ASSERT_EQ(tai_calib_set_opencl_list((dir + "/devices.json").c_str(), nullptr, 0), TINYAI_OK);
    m = Load(path, nullptr, dir.c_str());
    ASSERT_TRUE(m);
    TinyAIModelInfo info;
    ASSERT_EQ(tinyaiGetModelInfo(m, &info), TINYAI_OK);
    EXPECT_EQ(std::string(info.devices).find("reference"), std::string::npos) << info.devices;
    tinyaiFreeModel(m);
    std::remove((dir + "/devices.json").c_str());
    rmdir(dir.c_str());
    std::remove(path.c_str());
    tinyaiUnloadPlugins();
}

// Under auto, a plugin device that the cost model prefers gets the layers;
// when it fails in the middle of a pass (its own failure: fail_after), its
// layers move to the CPU, said once, and the results are the CPU's.
TEST(PluginModel, AutoDropsAPluginThatFails) {
    tai_plugin_unload_all();
    ASSERT_EQ(tinyaiLoadPlugin(Reference().c_str(), "fail_after=60"), TINYAI_OK);
    const std::string path = Synth("Q8_0");
    const std::string dir = tai_test::TempPath("-fast");
    ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
    // the reference device described as far faster than the CPU
    const std::string key = "reference:0|scalar C on the host|reference plugin, ABI 1.1";
    std::ofstream(dir + "/devices.json")
        << "{\"tinyai_device_calibration\": 1, \"opencl_devices\": [], \"devices\": {\"" << key
        << "\": {\"mv_gbs\": {\"F32\": 5000, \"F16\": 5000, \"Q8_0\": 5000, \"Q4_0\": 5000, "
           "\"Q4_1\": 5000}, \"mm_gflops\": {\"F32\": 9e5, \"F16\": 9e5, \"Q8_0\": 9e5, "
           "\"Q4_0\": 9e5, \"Q4_1\": 9e5}, \"mm_512_gflops\": {\"F32\": 9e5, \"F16\": 9e5, "
           "\"Q8_0\": 9e5, \"Q4_0\": 9e5, \"Q4_1\": 9e5}, \"mv_llc_gbs\": {\"F32\": 5000, "
           "\"F16\": 5000, \"Q8_0\": 5000, \"Q4_0\": 5000, \"Q4_1\": 5000}, \"op_us\": 0.01, "
           "\"sync_us\": 0.01, \"elem_gbs\": 5000, \"h2d_gbs\": 500, \"d2h_gbs\": 500, "
           "\"xfer_us\": 0.01, \"mem_bytes\": 1073741824, \"llc_bytes\": 0, \"unified\": 0}}}\n";
    TinyAIModel *cpu = Load(path, "cpu"), *aut = Load(path, nullptr, dir.c_str());
    ASSERT_TRUE(cpu && aut);
    TinyAIModelInfo info;
    ASSERT_EQ(tinyaiGetModelInfo(aut, &info), TINYAI_OK);
    EXPECT_NE(std::string(info.devices).find("reference:0"), std::string::npos) << info.devices;
    EXPECT_STREQ(tinyaiLayerDevice(aut, 1), "reference:0");
    const std::vector<float> a = Logits(cpu), b = Logits(aut);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_LT(RelError(b, a), 1e-4);
    ASSERT_EQ(tinyaiGetModelInfo(aut, &info), TINYAI_OK);
    EXPECT_NE(std::string(info.placementNote).find("device reference:0"), std::string::npos)
        << info.placementNote;
    EXPECT_NE(std::string(info.placementNote).find("injected failure"), std::string::npos)
        << info.placementNote;
    EXPECT_NE(std::string(info.placementNote).find("run on the CPU"), std::string::npos);
    for (int l = 0; l < info.nFileLayers; l++) EXPECT_STREQ(tinyaiLayerDevice(aut, l), "cpu");
    tinyaiFreeModel(cpu);
    tinyaiFreeModel(aut);
    std::remove((dir + "/devices.json").c_str());
    rmdir(dir.c_str());
    std::remove(path.c_str());
    tinyaiUnloadPlugins();
}

} // namespace
