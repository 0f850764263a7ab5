// The public kernel-tuning API (<tinyai/llm.h>): set/get with validation,
// and the tuning file: round trip, and every bad file a clear status naming
// the file (and the line where there is one).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include <tinyai/llm.h>

#include "tests/common/test_paths.h"

namespace {

struct Restore {
    TinyAIKernelTuning saved = tinyaiGetKernelTuning();
    ~Restore() { tinyaiSetKernelTuning(&saved); }
};

std::string Signature() {
    TinyAICpuInfo ci;
    EXPECT_EQ(tinyaiGetCpuInfo(&ci), TINYAI_OK);
    return ci.signature;
}

void Write(const std::string &p, const std::string &s) { std::ofstream(p) << s; }

TEST(KernelTuningApi, SetGetAndValidation) {
    Restore r;
    TinyAIKernelTuning t = {1024, 4096};
    ASSERT_EQ(tinyaiSetKernelTuning(&t), TINYAI_OK);
    EXPECT_EQ(tinyaiGetKernelTuning().prefetchL1Bytes, 1024);
    EXPECT_EQ(tinyaiGetKernelTuning().prefetchL2Bytes, 4096);
    TinyAIKernelTuning bad = {100, 0};
    EXPECT_EQ(tinyaiSetKernelTuning(&bad), TINYAI_ERR_INVALID_ARG);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("100"), std::string::npos);
    EXPECT_EQ(tinyaiSetKernelTuning(nullptr), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tinyaiGetKernelTuning().prefetchL1Bytes, 1024);
}

TEST(KernelTuningApi, FileRoundTripAndBadFiles) {
    const std::string p = tai_test::TempPath(".tune");
    TinyAIKernelTuning t = {512, 8192}, got = {-1, -1};
    ASSERT_EQ(tinyaiSaveKernelTuning(p.c_str(), &t), TINYAI_OK) << tinyaiLastErrorMessage();
    ASSERT_EQ(tinyaiLoadKernelTuning(p.c_str(), &got), TINYAI_OK) << tinyaiLastErrorMessage();
    EXPECT_EQ(got.prefetchL1Bytes, 512);
    EXPECT_EQ(got.prefetchL2Bytes, 8192);

    TinyAIKernelTuning bad = {0, 70000};
    EXPECT_EQ(tinyaiSaveKernelTuning(p.c_str(), &bad), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tinyaiSaveKernelTuning("/nonexistent-dir/x.tune", &t), TINYAI_ERR_IO);

    EXPECT_EQ(tinyaiLoadKernelTuning((p + ".missing").c_str(), &got), TINYAI_ERR_IO);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find(p + ".missing"), std::string::npos);

    std::string cpu;
    {
        std::ifstream f(p);
        std::getline(f, cpu);  // comment
        std::getline(f, cpu);  // "cpu <signature> <variant>"
    }
    ASSERT_NE(cpu.find(Signature()), std::string::npos) << cpu;
    const struct {
        std::string body;
        TinyAIStatus st;
        std::string needle;
    } cases[] = {
        {cpu + "\nprefetch_l1 64\n", TINYAI_ERR_FORMAT, "incomplete"},
        {"prefetch_l1 64\nprefetch_l2 64\n", TINYAI_ERR_FORMAT, "incomplete"},
        {cpu + "\nprefetch_l1 65\nprefetch_l2 64\n", TINYAI_ERR_FORMAT, ":2:"},
        {cpu + "\nprefetch_l1 -64\nprefetch_l2 64\n", TINYAI_ERR_FORMAT, ":2:"},
        {cpu + "\nprefetch_l1 64x\nprefetch_l2 64\n", TINYAI_ERR_FORMAT, ":2:"},
        {cpu + "\nprefetch_l1 64\nbogus 1\n", TINYAI_ERR_FORMAT, "bogus"},
        {"cpu AuthenticAMD-25-17-1 avx2\nprefetch_l1 0\nprefetch_l2 0\n", TINYAI_ERR_UNSUPPORTED,
         "AuthenticAMD-25-17-1"},
        {std::string("\x7f" "ELF\x01\x02", 6), TINYAI_ERR_FORMAT, p},
    };
    for (const auto &c : cases) {
        Write(p, c.body);
        got = {-1, -1};
        EXPECT_EQ(tinyaiLoadKernelTuning(p.c_str(), &got), c.st) << c.body;
        const std::string msg = tinyaiLastErrorMessage();
        EXPECT_NE(msg.find(c.needle), std::string::npos) << msg;
        EXPECT_NE(msg.find(p), std::string::npos) << msg;
        EXPECT_EQ(got.prefetchL1Bytes, -1) << "a failed load wrote its output";
    }
    std::remove(p.c_str());
}

}  // namespace
