// Test support for io/: files of random content in the test's temporary
// directory, aligned buffers with guard bytes, and a thread-safe fault
// injector for tai_io_faults.
#ifndef TAI_TESTS_IO_IO_TEST_UTIL_H
#define TAI_TESTS_IO_IO_TEST_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "io/io.h"
#include "tests/common/test_paths.h"

namespace tai_io_test {

constexpr size_t kMiB = size_t(1) << 20;

// The sizes every read test covers: empty, one byte, around one page, more
// than a chunk with an unaligned end, several chunks.
inline const std::vector<size_t> &FileSizes() {
    static const std::vector<size_t> sizes = {0, 1, 4095, 4096, kMiB + 123, 7 * kMiB};
    return sizes;
}

// A file of `size` random bytes (seeded by size) under $TEST_TMPDIR; its
// contents are kept in `bytes`. Removed when destroyed.
struct TestFile {
    std::string path;
    std::vector<uint8_t> bytes;

    explicit TestFile(size_t size) {
        path = tai_test::TempPath("_io_" + std::to_string(size) + ".bin");
        bytes.resize(size);
        std::mt19937_64 rng(0x5eed0000u + size);
        for (size_t i = 0; i < size; i += 8) {
            uint64_t v = rng();
            memcpy(&bytes[i], &v, size - i < 8 ? size - i : 8);
        }
        int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        EXPECT_GE(fd, 0) << path << ": " << strerror(errno);
        size_t off = 0;
        while (fd >= 0 && off < size) {
            ssize_t n = write(fd, bytes.data() + off, size - off);
            if (n <= 0) break;
            off += size_t(n);
        }
        EXPECT_EQ(off, size);
        if (fd >= 0) close(fd);
    }
    ~TestFile() { unlink(path.c_str()); }
    TestFile(const TestFile &) = delete;
    TestFile &operator=(const TestFile &) = delete;
};

// A 4096-aligned buffer of `size` bytes followed by kGuard guard bytes; all
// bytes start as kFill so that unwritten and overwritten bytes both show.
class Buffer {
  public:
    static constexpr size_t kGuard = 8192;
    static constexpr uint8_t kFill = 0xA5;

    explicit Buffer(size_t size) : size_(size) {
        if (posix_memalign(reinterpret_cast<void **>(&p_), 4096, size + kGuard) != 0) p_ = nullptr;
        if (p_) memset(p_, kFill, size + kGuard);
    }
    ~Buffer() { free(p_); }
    Buffer(const Buffer &) = delete;
    Buffer &operator=(const Buffer &) = delete;

    uint8_t *data() { return p_; }
    size_t size() const { return size_; }
    // Whether the guard bytes after `end` (bytes of data) are intact.
    bool GuardIntact(size_t end) const {
        for (size_t i = end; i < size_ + kGuard; i++)
            if (p_[i] != kFill) return false;
        return true;
    }

  private:
    uint8_t *p_ = nullptr;
    size_t size_;
};

// Index of the first differing byte, or -1 when equal.
inline long FirstDiff(const uint8_t *a, const uint8_t *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return long(i);
    return -1;
}

// Fault injection: `mode` says what happens to each raw read result. The
// counters record what was done, so a test can check that faults really
// were injected (otherwise it could pass without testing anything).
struct Faults {
    enum Mode {
        kNone,
        kHalve,        // results over 4096 bytes are halved (short reads)
        // The first read at each file offset gives at most 100 bytes (a
        // short read, under one block), later ones are left alone.
        kTiny,
        // The first read at each file offset fails with `err`, later ones
        // are left alone (per offset, so that no chunk can be unlucky
        // however the engine interleaves its chunks).
        kErrOncePerOffset,
        kErrBurst,     // the first `burst` calls fail with `err`, then none
        kErrAlways,    // every call fails with `err`
        kErrAtOffset,  // calls reading at file offset `at` fail with `err`
    };
    std::atomic<int> mode{kNone};
    long err = -EINTR;
    uint64_t burst = 0;
    uint64_t at = 0;
    std::atomic<uint64_t> calls{0}, injected{0};
    std::mutex mu;
    std::set<uint64_t> seen; // offsets read at least once (kTiny, kErrOncePerOffset)

    bool FirstAt(uint64_t offset) {
        std::lock_guard<std::mutex> lock(mu);
        return seen.insert(offset).second;
    }

    tai_io_faults hook() {
        tai_io_faults f;
        f.fn = &Faults::Fn;
        f.ctx = this;
        return f;
    }

    static long Fn(void *ctx, uint64_t call, uint64_t offset, size_t len, long res) {
        Faults *self = static_cast<Faults *>(ctx);
        self->calls++;
        (void)len;
        switch (self->mode.load()) {
        case kNone: return res;
        case kHalve:
            if (res > 4096) {
                self->injected++;
                return res / 2;
            }
            return res;
        case kTiny:
            if (self->FirstAt(offset) && res > 100) {
                self->injected++;
                return 100;
            }
            return res;
        case kErrOncePerOffset:
            if (self->FirstAt(offset)) {
                self->injected++;
                return self->err;
            }
            return res;
        case kErrBurst:
            if (call < self->burst) {
                self->injected++;
                return self->err;
            }
            return res;
        case kErrAlways: self->injected++; return self->err;
        case kErrAtOffset:
            if (offset == self->at) {
                self->injected++;
                return self->err;
            }
            return res;
        }
        return res;
    }
};

// Creates an engine of `kind` with `cfg`'s other settings; io_uring engines
// that the kernel refuses make the test skip (the AUTO fallback has its own
// test).
#define TAI_CREATE_OR_SKIP(cfg, io)                                                      \
    do {                                                                                 \
        int rc_ = tai_io_create(&(cfg), &(io));                                          \
        if (rc_ < 0 && (cfg).kind == TAI_IO_URING)                                       \
            GTEST_SKIP() << "io_uring unavailable: " << strerror(-rc_);                  \
        ASSERT_EQ(rc_, 0) << strerror(-rc_);                                             \
    } while (0)

}  // namespace tai_io_test

#endif
