#include "tests/common/test_paths.h"

#include <dirent.h>
#include <sys/wait.h>

#include <cstdio>

#include <atomic>
#include <cstdlib>
#include <string>
#include <unistd.h>

namespace tai_test {

static bool Exists(const std::string &p) { return !p.empty() && access(p.c_str(), R_OK) == 0; }

std::string DefaultModelPath() {
    const char *env = std::getenv("TINYAI_MODEL");
    if (env && *env) return Exists(env) ? std::string(env) : std::string();
    const char *home = std::getenv("HOME");
    if (!home) return std::string();
    std::string p = std::string(home) + "/.cache/tinyai/SmolLM2-135M-Instruct.Q4_1.gguf";
    return Exists(p) ? p : std::string();
}

std::string GemmaModelPath() {
    const char *cache = std::getenv("TINYAI_CACHE");
    const char *home = std::getenv("HOME");
    std::string dir = cache && *cache ? std::string(cache)
                      : home          ? std::string(home) + "/.cache/tinyai"
                                      : std::string();
    if (dir.empty()) return std::string();
    std::string p = dir + "/gemma-3-270m-q4_k_m.gguf";
    return Exists(p) ? p : std::string();
}

std::string TempPath(const std::string &suffix) {
    static std::atomic<int> counter{0};
    const char *dir = std::getenv("TEST_TMPDIR");
    std::string base = dir && *dir ? dir : "/tmp";
    return base + "/tai_" + std::to_string(getpid()) + "_" + std::to_string(counter++) + suffix;
}

CommandResult RunCommand(const std::string &cmd) {
    CommandResult r;
    FILE *p = popen(cmd.c_str(), "r");
    if (!p) return r;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
    const int st = pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

std::vector<std::string> OpenFds() {
    std::vector<std::string> fds;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return fds;
    const std::string self = std::to_string(dirfd(d));
    while (const dirent *e = readdir(d)) {
        const std::string n = e->d_name;
        if (n != "." && n != ".." && n != self) fds.push_back(n);
    }
    closedir(d);
    return fds;
}

}  // namespace tai_test
