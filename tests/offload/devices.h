// tests/offload/devices.h: every device this host can open, for the tests
// that run on each (the conformance suite, the end-to-end agreement tests).
// A case that cannot be opened here (an ISA the CPU lacks) is skipped with
// the reason. Test-only.
#ifndef TAI_TESTS_OFFLOAD_DEVICES_H
#define TAI_TESTS_OFFLOAD_DEVICES_H

#include <functional>
#include <string>
#include <vector>

#include <tinyai/status.h>

#include <cstdlib>

#include "offload/cpu/cpu.h"
#include "offload/offload.h"
#include "offload/opencl/opencl.h"
#include "offload/plugin/plugin.h"

namespace tai_test {

struct DeviceCase {
    std::string name; // a test-name-safe label
    // Opens the device, or returns nullptr with *why set.
    std::function<tai_device *(std::string *why)> open;
};

inline std::vector<DeviceCase> AllDevices() {
    std::vector<DeviceCase> out;
    for (const char *v : {"scalar", "avx2", "avx512"})
        for (int threads : {1, 3}) {
            const std::string variant = v;
            out.push_back({"cpu_" + variant + "_" + std::to_string(threads) + "t",
                           [variant, threads](std::string *why) -> tai_device * {
                               if (tai_cpu_variant_supported(variant.c_str()) != 1) {
                                   *why = "this CPU lacks " + variant;
                                   return nullptr;
                               }
                               tai_device *d = nullptr;
                               if (tai_cpu_device_open(variant.c_str(), threads, &d) != TINYAI_OK) {
                                   *why = tinyaiLastErrorMessage();
                                   return nullptr;
                               }
                               return d;
                           }});
        }
    // OpenCL: every device the ICD loader reports (PoCL on the CPU in CI),
    // the program cached in the test's temporary folder so that only the
    // first case compiles it
    // (each with both matrix-vector kernels: the one-item-per-row and the
    // K-split one, whichever the device would pick)
    const int n = tai_opencl_count();
    for (int i = 0; i < (n > 0 ? n : 1); i++)
        for (int mv : {0, 1})
            out.push_back({"opencl_" + std::to_string(i) + (mv ? "_ksplit" : "_rows"),
                           [i, n, mv](std::string *why) -> tai_device * {
                               if (n == 0) {
                                   *why = "no OpenCL device on this machine";
                                   return nullptr;
                               }
                               const char *tmp = std::getenv("TEST_TMPDIR");
                               tai_device *d = nullptr;
                               if (tai_opencl_device_open_source(i, tmp, nullptr, mv, &d) != TINYAI_OK) {
                                   *why = tinyaiLastErrorMessage();
                                   return nullptr;
                               }
                               return d;
                           }});
    // Plugins: the reference plugin as shipped (ABI 1.1), and built against
    // the previous minor version's header (1.0) and a newer one (1.2); the
    // paths come from the test's environment (Bazel runfiles)
    for (const char *var : {"TINYAI_TEST_PLUGIN", "TINYAI_TEST_PLUGIN_1_0", "TINYAI_TEST_PLUGIN_1_2"}) {
        const std::string label = std::string("plugin") + (var + 18);
        out.push_back({label, [var](std::string *why) -> tai_device * {
                           const char *path = std::getenv(var);
                           if (!path || !*path) {
                               *why = std::string(var) + " is not set (run through Bazel)";
                               return nullptr;
                           }
                           tai_plugin *p = nullptr;
                           for (int i = 0; i < tai_plugin_count(); i++)
                               if (std::string(tai_plugin_path(tai_plugin_at(i))) == path)
                                   p = tai_plugin_at(i);
                           if (!p && tai_plugin_load(path, nullptr, &p) != TINYAI_OK) {
                               *why = tinyaiLastErrorMessage();
                               return nullptr;
                           }
                           tai_device *d = nullptr;
                           if (tai_plugin_device_open(p, 0, &d) != TINYAI_OK) {
                               *why = tinyaiLastErrorMessage();
                               return nullptr;
                           }
                           return d;
                       }});
    }
    return out;
}

} // namespace tai_test

#endif
