// Test support for runtime/mapped: the real default model converted to
// .tmai (once per test program), the file's bytes, and helpers to open a
// mapped model with a given cache or I/O engine.
#ifndef TAI_TESTS_MAPPED_MAPPED_TEST_UTIL_H
#define TAI_TESTS_MAPPED_MAPPED_TEST_UTIL_H

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include <tinyai/llm.h>
#include <tinyai/status.h>
#include <tinyai/utils/mmap_loader.h>

#include "tests/common/test_paths.h"

namespace tai_mapped_test {

// Removes a file when the program ends.
struct FileRemover {
    std::string path;
    ~FileRemover() {
        if (!path.empty()) std::remove(path.c_str());
    }
};

// The default model converted to .tmai (version 2, the default of
// tinyaiConvertModel); "" if the default model is missing or the conversion
// failed (the caller fails the test).
inline const std::string &SmolTmai() {
    static FileRemover file;
    static bool tried = false;
    if (!tried) {
        tried = true;
        std::string gguf = tai_test::DefaultModelPath();
        if (!gguf.empty()) {
            std::string out = tai_test::TempPath(".tmai");
            if (tinyaiConvertModel(gguf.c_str(), out.c_str()) == TINYAI_OK)
                file.path = out;
            else
                ADD_FAILURE() << "convert: " << tinyaiLastErrorMessage();
        }
    }
    return file.path;
}

#define TAI_REQUIRE_TMAI(var)                                                         \
    TAI_REQUIRE_DEFAULT_MODEL(var##_gguf);                                            \
    const std::string var = tai_mapped_test::SmolTmai();                              \
    ASSERT_FALSE(var.empty()) << "could not convert the default model to .tmai"

// [off, off + len) of the file.
inline std::string ReadRange(const std::string &path, uint64_t off, size_t len) {
    std::string s(len, '\0');
    int fd = open(path.c_str(), O_RDONLY);
    if (fd < 0) return std::string();
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, &s[got], len - got, (off_t)(off + got));
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    s.resize(got);
    return s;
}

inline void WriteFile(const std::string &path, const std::string &data) {
    FILE *f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(std::fwrite(data.data(), 1, data.size(), f), data.size());
    ASSERT_EQ(std::fclose(f), 0);
}

inline std::string ReadFile(const std::string &path) {
    std::string s;
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) return s;
    char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
    std::fclose(f);
    return s;
}

// A copy of `src` at a fresh temporary path with the byte at `at` flipped.
inline std::string CorruptCopy(const std::string &src, uint64_t at) {
    std::string data = ReadFile(src);
    std::string out = tai_test::TempPath(".tmai");
    if (at < data.size()) data[at] = (char)(data[at] ^ 0x5a);
    WriteFile(out, data);
    return out;
}

inline bool Contains(const std::string &hay, const std::string &needle) {
    return hay.find(needle) != std::string::npos;
}

inline std::string LastError() { return tinyaiLastErrorMessage(); }

// The layers' image sizes as the model reports them.
struct Sizes {
    int n = 0;
    size_t largest = 0;      // largest image
    size_t largest_block = 0;
    size_t total = 0;
};

inline Sizes LayerSizes(const TinyAIMappedModel *m) {
    Sizes s;
    s.n = tinyaiGetMappedLayerCount(m);
    for (int l = 0; l < s.n; l++) {
        size_t b = tinyaiGetLayerImageSize(m, l);
        s.total += b;
        if (b > s.largest) s.largest = b;
        if (l > 0 && l < s.n - 1 && b > s.largest_block) s.largest_block = b;
    }
    return s;
}

inline size_t RoundUp(size_t x, size_t a) { return (x + a - 1) / a * a; }

}  // namespace tai_mapped_test

#endif
