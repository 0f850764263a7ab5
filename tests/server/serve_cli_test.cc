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

// Ends a server a test gave up on.
void Kill(pid_t pid) {
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
}

// curl's body and status ("-w" after it), as one string: "BODY STATUS".
std::string CurlText(int port, const std::string &path, const std::string &extra) {
    const std::string cmd = "curl -s -N -m 60 -w ' %{http_code}' " + extra + " http://127.0.0.1:" +
                            std::to_string(port) + path;
    std::string out;
    FILE *p = popen(cmd.c_str(), "r");
    char buf[4096];
    size_t n;
    while (p && (n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    if (p) pclose(p);
    return out;
}

// `tinyai serve ARGS --port 0` started with its stderr in a log, and the
// port it listens on once it says it is ready (deadlines, not sleeps);
// /health answers 503 or 200 while it loads.
struct Served {
    pid_t pid = -1;
    int port = 0;
    std::string log, text;
};

void StartServe(const std::vector<std::string> &args, Served *out) {
    out->log = tai_test::TempPath(".log");
    const std::string bin = Tinyai();
    std::vector<char *> argv = {const_cast<char *>("tinyai"), const_cast<char *>("serve"),
                                const_cast<char *>("--port"), const_cast<char *>("0")};
    for (const std::string &a : args) argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        if (!freopen(out->log.c_str(), "w", stderr)) _exit(126);
        execv(bin.c_str(), argv.data());
        _exit(127);
    }
    out->pid = pid;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (std::chrono::steady_clock::now() < deadline && out->text.find("ready:") == std::string::npos) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        out->text = Slurp(out->log);
        const size_t at = out->text.find("http://127.0.0.1:");
        if (at != std::string::npos && !out->port) {
            out->port = std::atoi(out->text.c_str() + at + 17);
            const int h = CurlStatus(out->port, "/health");
            EXPECT_TRUE(h == 503 || h == 200) << h; // loading, or already ready
        }
    }
    ASSERT_NE(out->text.find("ready:"), std::string::npos) << out->text;
    ASSERT_GT(out->port, 0);
}

// Runs `tinyai serve --slots auto` under 200 MB with `kv_type`, checks it
// serves (every slot busy within the limit) and stops cleanly; *slots gets
// the slots it picked.
void ServeAuto(const std::string &model, const char *kv_type, int *slots_out) {
    Served sv;
    StartServe({"-m", model, "--slots", "auto", "--ctx", "1024", "--mem-limit", "200M", "--threads", "2",
                "--kv-type", kv_type},
               &sv);
    if (testing::Test::HasFatalFailure()) {
        Kill(sv.pid);
        return;
    }
    const pid_t pid = sv.pid;
    const int port = sv.port;
    const std::string &log = sv.log, &text = sv.text;
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

// A device that stops answering in the middle of a step (the reference
// plugin with stall_after=0: its first op never returns) does not hold the
// server: past --step-timeout the requests waiting on the step, streaming
// or not, get an error naming the cause, /health and new requests get 503,
// /metrics shows the stall, and SIGTERM ends the process (status 1: the
// stuck thread cannot be joined) rather than waiting for ever.
TEST(ServeCommand, ADeviceThatStopsAnsweringFailsRequestsNotTheServer) {
    TAI_REQUIRE_DEFAULT_MODEL(model);
    const char *plugin = std::getenv("TINYAI_TEST_PLUGIN");
    ASSERT_TRUE(plugin && *plugin) << "TINYAI_TEST_PLUGIN is not set (run through Bazel)";
    Served sv;
    StartServe({"-m", model, "--slots", "2", "--ctx", "256", "--threads", "1", "--plugin", plugin,
                "--plugin-options", "stall_after=0", "--device", "reference:0", "--step-timeout", "2"},
               &sv);
    if (HasFatalFailure()) return Kill(sv.pid);
    EXPECT_EQ(CurlStatus(sv.port, "/health"), 200); // nothing has run yet
    const std::string ask = "-X POST --data '{\"prompt\":\"Hello\",\"max_tokens\":4";
    std::string plain, streamed;
    std::thread a([&] { plain = CurlText(sv.port, "/v1/completions", ask + "}'"); });
    std::thread b([&] { streamed = CurlText(sv.port, "/v1/completions", ask + ",\"stream\":true}'"); });
    a.join();
    b.join();
    const std::string cause = "a device or the storage is not answering";
    EXPECT_NE(plain.find(cause), std::string::npos) << plain;
    EXPECT_EQ(plain.substr(plain.size() - 4), " 503") << plain;
    // the stream had begun (200): its error comes as an event, then [DONE]
    EXPECT_NE(streamed.find(cause), std::string::npos) << streamed;
    EXPECT_NE(streamed.find("data: [DONE]"), std::string::npos) << streamed;
    EXPECT_EQ(streamed.substr(streamed.size() - 4), " 200") << streamed;
    const std::string health = CurlText(sv.port, "/health", "");
    EXPECT_NE(health.find(cause), std::string::npos) << health;
    EXPECT_EQ(health.substr(health.size() - 4), " 503") << health;
    EXPECT_EQ(CurlStatus(sv.port, "/v1/completions", ask + "}'"), 503);
    const std::string metrics = CurlText(sv.port, "/metrics", "");
    const size_t at = metrics.find("\ntinyai_engine_stalled_seconds ");
    ASSERT_NE(at, std::string::npos) << metrics;
    EXPECT_GE(std::atof(metrics.c_str() + at + 31), 2.0) << metrics;
    // SIGTERM: it exits (within the grace and a join attempt), status 1
    ASSERT_EQ(kill(sv.pid, SIGTERM), 0);
    int st = 0;
    pid_t got = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while ((got = waitpid(sv.pid, &st, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (got != sv.pid) {
        Kill(sv.pid);
        FAIL() << "still running 60 s after SIGTERM:\n" << Slurp(sv.log);
    }
    EXPECT_TRUE(WIFEXITED(st)) << "killed by signal " << (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    EXPECT_EQ(WEXITSTATUS(st), 1) << Slurp(sv.log);
    EXPECT_NE(Slurp(sv.log).find("stuck in a step"), std::string::npos) << Slurp(sv.log);
    std::remove(sv.log.c_str());
}

TEST(ServeCommand, BadArgumentsAreUsageErrors) {
    for (const std::string args : {"serve", "serve -m /nonexistent.gguf", "serve -m x --slots 0",
                                   "serve -m x --port 70000", "serve -m x --bogus 1",
                                   "serve -m x --step-timeout -1", "serve -m x --step-timeout soon"}) {
        const std::string cmd = Tinyai() + " " + args + " > /dev/null 2>&1";
        const int st = std::system(cmd.c_str());
        EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 2) << args;
    }
}

}  // namespace
