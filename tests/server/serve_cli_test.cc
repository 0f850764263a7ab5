// tests/server/serve_cli_test.cc: the `tinyai serve` command as a user runs
// it: it listens, answers /health 503 or 200 while loading and when ready,
// picks its slots from the memory limit with --slots auto and says how
// many, serves a request, and stops cleanly on SIGTERM (exit 0); bad
// arguments are usage errors (exit 2).
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "tests/common/test_paths.h"

namespace {

std::string Tinyai() {
    const char *v = std::getenv("TINYAI_BIN");
    return v ? v : "";
}

std::string Slurp(const std::string &path) {
    std::ifstream f(path);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

int CurlStatus(int port, const std::string &path, const std::string &extra = "") {
    const std::string cmd = "curl -s -m 60 -o /dev/null -w '%{http_code}' " + extra +
                            " http://127.0.0.1:" + std::to_string(port) + path;
    FILE *p = popen(cmd.c_str(), "r");
    char code[16] = "";
    if (p && !fgets(code, sizeof code, p)) code[0] = 0;
    if (p) pclose(p);
    return std::atoi(code);
}

// Runs `tinyai serve --slots auto` under 200 MB with `kv_type`, checks it
// serves (every slot busy within the limit) and stops cleanly; *slots gets
// the slots it picked.
void ServeAuto(const std::string &model, const char *kv_type, int *slots_out) {
    const std::string log = tai_test::TempPath(".log");
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        if (!freopen(log.c_str(), "w", stderr)) _exit(126);
        execl(Tinyai().c_str(), "tinyai", "serve", "-m", model.c_str(), "--port", "0", "--slots",
              "auto", "--ctx", "1024", "--mem-limit", "200M", "--threads", "2", "--kv-type",
              kv_type, (char *)nullptr);
        _exit(127);
    }
    // the port from the first line, then ready (deadlines, not sleeps)
    int port = 0;
    std::string text;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (std::chrono::steady_clock::now() < deadline && text.find("ready:") == std::string::npos) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        text = Slurp(log);
        const size_t at = text.find("http://127.0.0.1:");
        if (at != std::string::npos && !port) {
            port = std::atoi(text.c_str() + at + 17);
            const int h = CurlStatus(port, "/health");
            EXPECT_TRUE(h == 503 || h == 200) << h; // loading, or already ready
        }
    }
    ASSERT_NE(text.find("ready:"), std::string::npos) << text;
    ASSERT_GT(port, 0);
    // 200 MB leave room for some slots of 1024 tokens, not 64
    const size_t at = text.find("ready: ");
    const size_t comma = text.find(", ", at);
    const int slots = std::atoi(text.c_str() + comma + 2);
    EXPECT_GE(slots, 1) << text;
    EXPECT_LT(slots, 64) << text;
    EXPECT_EQ(CurlStatus(port, "/health"), 200);
    EXPECT_EQ(CurlStatus(port, "/v1/completions", "-X POST --data '{\"prompt\":\"Hi\",\"max_tokens\":3}'"),
              200);
    // every slot busy at once: the process's peak resident memory stays
    // within the limit plus the margin generate has (5%: code, libraries)
    std::vector<std::thread> th;
    for (int i = 0; i < slots + 1; i++)
        th.emplace_back([port, i] {
            EXPECT_EQ(CurlStatus(port, "/v1/completions",
                                 "-X POST --data '{\"prompt\":\"Topic " + std::to_string(i) +
                                     " in detail:\",\"max_tokens\":8}'"),
                      200);
        });
    for (auto &t : th) t.join();
    const std::string status = Slurp("/proc/" + std::to_string(pid) + "/status");
    const size_t hwm = status.find("VmHWM:");
    ASSERT_NE(hwm, std::string::npos);
    const double peak_kib = std::atof(status.c_str() + hwm + 6);
    EXPECT_LE(peak_kib * 1024, 200.0 * 1024 * 1024 * 1.05) << "peak RSS " << peak_kib / 1024 << " MiB";
    ASSERT_EQ(kill(pid, SIGTERM), 0);
    int st = 0;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    EXPECT_TRUE(WIFEXITED(st)) << "killed by signal " << (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    EXPECT_EQ(WEXITSTATUS(st), 0) << Slurp(log);
    EXPECT_NE(Slurp(log).find("stopping"), std::string::npos);
    std::remove(log.c_str());
    *slots_out = slots;
}

TEST(ServeCommand, ListensPicksSlotsServesAndStopsCleanly) {
    TAI_REQUIRE_DEFAULT_MODEL(model);
    int slots = 0;
    ServeAuto(model, "f32", &slots);
}

// The F16 KV cache halves each slot's cache and the 8-bit one takes 0.28x:
// under the same limit --slots auto picks more slots with each, and every
// one of them busy stays within it.
TEST(ServeCommand, F16And8BitKvCachesFitMoreSlots) {
    TAI_REQUIRE_DEFAULT_MODEL(model);
    int s32 = 0, s16 = 0, s8 = 0;
    ServeAuto(model, "f32", &s32);
    ServeAuto(model, "f16", &s16);
    ServeAuto(model, "q8_0", &s8);
    EXPECT_GT(s16, s32);
    EXPECT_GT(s8, s16);
}

TEST(ServeCommand, BadArgumentsAreUsageErrors) {
    for (const std::string args : {"serve", "serve -m /nonexistent.gguf", "serve -m x --slots 0",
                                   "serve -m x --port 70000", "serve -m x --bogus 1"}) {
        const std::string cmd = Tinyai() + " " + args + " > /dev/null 2>&1";
        const int st = std::system(cmd.c_str());
        EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 2) << args;
    }
}

}  // namespace
