// tests/tools: running the tinyai command from a test: its own cache
// folder, a timeout, the output and status, and what a clean error is.
#ifndef TAI_TESTS_TOOLS_CLI_TEST_UTIL_H
#define TAI_TESTS_TOOLS_CLI_TEST_UTIL_H

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>

#include <tinyai/llm.h>

#include "tests/common/test_paths.h"

namespace tai_cli {

inline std::string Signature() {
    TinyAICpuInfo ci;
    EXPECT_EQ(tinyaiGetCpuInfo(&ci), TINYAI_OK);
    return ci.signature;
}

using Result = tai_test::CommandResult;

// The cache folder the command sees: a folder of this test's own, holding a
// kernel tuning for this machine, so that no test depends on whether an
// earlier run measured one (the first `generate` on a CPU would otherwise
// measure it and say so on stderr).
inline const std::string &TestCache() {
    static const std::string dir = [] {
        std::string d = tai_test::TempPath("-cache");
        mkdir(d.c_str(), 0755);
        TinyAIKernelTuning t = {0, 0};
        tinyaiSaveKernelTuning((d + "/kernels-" + Signature() + ".tune").c_str(), &t);
        // and a device list with no OpenCL device: auto places everything on
        // the CPU (measured on first use), so that no test's output depends
        // on how fast this machine's OpenCL is (-device opencl still works)
        std::ofstream(d + "/devices.json")
            << "{\"tinyai_device_calibration\": 1, \"devices\": {}, \"opencl_devices\": []}\n";
        return d;
    }();
    return dir;
}

inline Result RunWith(const std::string &env, const std::string &args, const char *stdout_only) {
    // `timeout` turns a hang into a failure instead of a stuck suite.
    std::string cmd = env + " timeout 120 tools/tinyai " + args +
                      (stdout_only ? " 2>/dev/null" : " 2>&1");
    return tai_test::RunCommand(cmd);
}

inline Result Tinyai(const std::string &args, const char *stdout_only = nullptr) {
    return RunWith("TINYAI_CACHE='" + TestCache() + "'", args, stdout_only);
}

inline std::string Synth(const std::string &extra) {
    std::string path = tai_test::TempPath(".gguf");
    Result r = Tinyai("synth -o " + path + " --preset tiny " + extra);
    EXPECT_EQ(r.status, 0) << r.output;
    return path;
}

// An error is exactly one line naming the problem, and a non-zero status
// that is not a crash (124 = timeout, 128+ = signal).
inline void ExpectCleanError(const Result &r, const std::string &needle) {
    EXPECT_NE(r.status, 0) << r.output;
    EXPECT_GT(r.status, 0) << "crashed: " << r.output;
    EXPECT_LT(r.status, 124) << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
}

inline std::string ReadFile(const std::string &p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

inline void WriteFile(const std::string &p, const std::string &data) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(data.data(), (std::streamsize)data.size());
}

}  // namespace tai_cli

#endif
