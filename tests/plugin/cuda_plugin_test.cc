// tests/plugin/cuda_plugin_test.cc: the CUDA plugin (plugins/cuda). It
// builds everywhere the CUDA toolkit is (CI included) and loads everywhere:
// without a driver or a GPU it is a valid plugin with no devices, saying
// why. Where a GPU is, the whole conformance suite runs on each device;
// otherwise that test skips itself with the plugin's reason.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "offload/plugin/plugin.h"
#include "tools/conformance/conformance.h"

namespace {

std::string Cuda() {
    const char *v = std::getenv("TINYAI_TEST_CUDA_PLUGIN");
    return v ? v : "";
}

TEST(CudaPlugin, LoadsWithOrWithoutAGpu) {
    ASSERT_FALSE(Cuda().empty()) << "TINYAI_TEST_CUDA_PLUGIN is not set (run through Bazel)";
    tai_plugin_unload_all();
    tai_plugin *p = nullptr;
    ASSERT_EQ(tai_plugin_load(Cuda().c_str(), nullptr, &p), TINYAI_OK) << tinyaiLastErrorMessage();
    EXPECT_STREQ(tai_plugin_name(p), "cuda");
    int major = 0, minor = 0;
    tai_plugin_abi(p, &major, &minor);
    EXPECT_EQ(major, TINYAI_PLUGIN_ABI_MAJOR);
    EXPECT_EQ(minor, TINYAI_PLUGIN_ABI_MINOR);
    if (tai_plugin_device_count(p) == 0) {
        EXPECT_NE(std::string(tai_plugin_last_log(p)).find("no CUDA device"), std::string::npos)
            << tai_plugin_last_log(p);
    }
    EXPECT_EQ(tai_plugin_unload(p), TINYAI_OK);
    // it takes no options: an option is refused, saying so
    EXPECT_EQ(tai_plugin_load(Cuda().c_str(), "devices=2", &p), TINYAI_ERR_INVALID_ARG);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("takes no options"), std::string::npos)
        << tinyaiLastErrorMessage();
}

TEST(CudaPlugin, PassesTheConformanceSuiteOnEveryGpu) {
    tai_plugin_unload_all();
    tai_plugin *p = nullptr;
    ASSERT_EQ(tai_plugin_load(Cuda().c_str(), nullptr, &p), TINYAI_OK) << tinyaiLastErrorMessage();
    const int n = tai_plugin_device_count(p);
    const std::string why = tai_plugin_last_log(p);
    EXPECT_EQ(tai_plugin_unload(p), TINYAI_OK);
    if (n == 0) GTEST_SKIP() << "no GPU here: " << why;
    for (int i = 0; i < n; i++) {
        tai_conf_report r;
        ASSERT_EQ(tai_conf_run(Cuda().c_str(), nullptr, i, &r), TINYAI_OK) << tinyaiLastErrorMessage();
        for (int k = 0; k < r.n; k++)
            EXPECT_NE(r.cases[k].result, TAI_CONF_FAIL)
                << r.device << ": " << r.cases[k].group << ": " << r.cases[k].name << " "
                << r.cases[k].type << ": " << r.cases[k].detail;
        // only "two devices of the plugin" may skip (a machine with one GPU)
        EXPECT_LE(tai_conf_count(&r, TAI_CONF_SKIP), n > 1 ? 0 : 1);
        tai_conf_free(&r);
    }
}

} // namespace
