// tests/offload/opencl_test.cc: the OpenCL device's own behaviour beyond the
// conformance suite: the program binary cache (written on the first open,
// loaded on the next, a corrupt file rebuilt and replaced), a failing build
// reported with the device's build log, and a device index that does not
// exist. Skips where the machine has no OpenCL device.
#include <gtest/gtest.h>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "offload/opencl/opencl.h"

namespace {

std::string TempDir(const char *name) {
    const char *t = std::getenv("TEST_TMPDIR");
    std::string d = std::string(t ? t : "/tmp") + "/" + name;
    mkdir(d.c_str(), 0700);
    return d;
}

std::vector<std::string> Files(const std::string &dir) {
    std::vector<std::string> out;
    if (DIR *d = opendir(dir.c_str())) {
        while (dirent *e = readdir(d))
            if (e->d_name[0] != '.') out.push_back(dir + "/" + e->d_name);
        closedir(d);
    }
    return out;
}

class OpenCL : public ::testing::Test {
  protected:
    void SetUp() override {
        if (tai_opencl_count() == 0) GTEST_SKIP() << "no OpenCL device on this machine";
    }
};

TEST_F(OpenCL, TheProgramBinaryIsCachedAndACorruptCacheIsRebuilt) {
    const std::string dir = TempDir("clcache");
    tai_device *d = nullptr;
    ASSERT_EQ(tai_opencl_device_open(0, dir.c_str(), &d), TINYAI_OK) << tinyaiLastErrorMessage();
    tai_device_close(d);
    std::vector<std::string> files = Files(dir);
    ASSERT_EQ(files.size(), 1u);
    EXPECT_NE(files[0].find("/opencl-"), std::string::npos);
    struct stat st1;
    ASSERT_EQ(stat(files[0].c_str(), &st1), 0);
    EXPECT_GT(st1.st_size, 0);
    // the second open loads it (and works)
    ASSERT_EQ(tai_opencl_device_open(0, dir.c_str(), &d), TINYAI_OK) << tinyaiLastErrorMessage();
    tai_device_close(d);
    // junk in place of the binary: rebuilt from source, the file replaced
    {
        std::ofstream f(files[0], std::ios::binary | std::ios::trunc);
        f << "not a program binary";
    }
    ASSERT_EQ(tai_opencl_device_open(0, dir.c_str(), &d), TINYAI_OK) << tinyaiLastErrorMessage();
    tai_device_close(d);
    // replaced by a program binary again (its size may differ from the
    // first one's: a runtime may embed build details in it)
    struct stat st2;
    ASSERT_EQ(stat(files[0].c_str(), &st2), 0);
    EXPECT_GT(st2.st_size, 1000);
    EXPECT_EQ(Files(dir).size(), 1u);
    ASSERT_EQ(tai_opencl_device_open(0, dir.c_str(), &d), TINYAI_OK) << tinyaiLastErrorMessage();
    tai_device_close(d);
}

TEST_F(OpenCL, ABuildFailureShowsTheBuildLog) {
    tai_device *d = nullptr;
    const char *broken = "__kernel void k(__global float *x) { x[0] = undeclared_thing; }\n";
    EXPECT_EQ(tai_opencl_device_open_source(0, nullptr, broken, -1, &d), TINYAI_ERR_DEVICE);
    EXPECT_EQ(d, nullptr);
    const std::string m = tinyaiLastErrorMessage();
    EXPECT_NE(m.find("opencl:0"), std::string::npos) << m;
    EXPECT_NE(m.find("building the kernels failed"), std::string::npos) << m;
    EXPECT_NE(m.find("undeclared_thing"), std::string::npos) << m; // the compiler's own words
}

TEST(OpenCLIndex, ADeviceThatDoesNotExistIsAnError) {
    tai_device *d = nullptr;
    EXPECT_EQ(tai_opencl_device_open(tai_opencl_count() + 3, nullptr, &d), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(d, nullptr);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("no OpenCL device"), std::string::npos);
    char buf[64];
    EXPECT_EQ(tai_opencl_describe(-1, buf, sizeof buf), -1);
}

} // namespace
