// io/ failure handling, the same in every engine, driven through the
// tai_io_faults hook: short reads complete correctly, EINTR and EAGAIN are
// retried up to TAI_IO_MAX_RETRIES times in a row and no more, EIO and end
// of file fail the request with the offset of the failing read, and the
// engine keeps working after a failed request.
#include <memory>

#include "tests/io/io_test_util.h"

namespace {

using tai_io_test::Buffer;
using tai_io_test::Faults;
using tai_io_test::FirstDiff;
using tai_io_test::TestFile;

constexpr size_t kChunk = 64 * 1024;
constexpr size_t kFileSize = tai_io_test::kMiB + 123; // 16 chunks, a partial one

struct Variant {
    tai_io_kind kind;
    bool buffered;
};

std::string VariantName(const testing::TestParamInfo<Variant> &info) {
    return std::string(tai_io_kind_name(info.param.kind)) +
           (info.param.buffered ? "_buffered" : "_direct");
}

class FaultTest : public testing::TestWithParam<Variant> {
  protected:
    void SetUp() override {
        file_.reset(new TestFile(kFileSize));
        tai_io_faults hook = faults_.hook();
        tai_io_config cfg = tai_io_default_config();
        cfg.kind = GetParam().kind;
        cfg.buffered = GetParam().buffered;
        cfg.chunk_bytes = kChunk;
        cfg.queue_depth = 4;
        cfg.threads = 3;
        cfg.faults = &hook; // copied by create
        TAI_CREATE_OR_SKIP(cfg, io_);
        ASSERT_EQ(tai_io_open(io_, file_->path.c_str(), &f_), 0);
    }
    void TearDown() override { tai_io_destroy(io_); }

    // Reads the whole file; returns the request's result, and checks the
    // bytes when it succeeded.
    int ReadAll(uint64_t *fail_offset = nullptr, size_t *bytes = nullptr) {
        Buffer buf(kFileSize);
        tai_io_req req = {f_, 0, kFileSize, buf.data(), 77};
        int rc = tai_io_submit(io_, &req);
        if (rc < 0) return rc;
        tai_io_done d;
        rc = tai_io_wait(io_, &d, 1, 1);
        if (rc != 1) return -1000;
        EXPECT_EQ(d.tag, 77u);
        if (fail_offset) *fail_offset = d.fail_offset;
        if (bytes) *bytes = d.bytes;
        if (d.res == 0) {
            EXPECT_EQ(d.bytes, kFileSize);
            EXPECT_EQ(FirstDiff(buf.data(), file_->bytes.data(), kFileSize), -1);
            EXPECT_TRUE(buf.GuardIntact(kFileSize));
        }
        return d.res;
    }

    // After a failure: no faults, and the same engine reads correctly.
    void ExpectUsable() {
        faults_.mode = Faults::kNone;
        EXPECT_EQ(ReadAll(), 0);
    }

    std::unique_ptr<TestFile> file_;
    Faults faults_;
    tai_io *io_ = nullptr;
    tai_io_file *f_ = nullptr;
};

TEST_P(FaultTest, HookSeesEveryRead) {
    EXPECT_EQ(ReadAll(), 0);
    // At least one raw read per chunk (16 full chunks and the last one).
    EXPECT_GE(faults_.calls.load(), 17u);
}

TEST_P(FaultTest, ShortReadsHalved) {
    faults_.mode = Faults::kHalve;
    EXPECT_EQ(ReadAll(), 0);
    EXPECT_GT(faults_.injected.load(), 17u);
}

TEST_P(FaultTest, ShortReadsOfFewerBytesThanABlock) {
    faults_.mode = Faults::kTiny;
    EXPECT_EQ(ReadAll(), 0);
    EXPECT_GT(faults_.injected.load(), 0u);
}

TEST_P(FaultTest, EintrAndEagainRetried) {
    for (long err : {-EINTR, -EAGAIN}) {
        SCOPED_TRACE(strerror(int(-err)));
        faults_.err = err;
        faults_.injected = 0;
        faults_.seen.clear();
        faults_.mode = Faults::kErrOncePerOffset;
        EXPECT_EQ(ReadAll(), 0);
        EXPECT_GT(faults_.injected.load(), 0u);
    }
}

// One chunk, so that the calls are consecutive reads of that chunk: exactly
// TAI_IO_MAX_RETRIES failures in a row are retried, one more is not.
TEST_P(FaultTest, RetryLimitIsExact) {
    for (long err : {-EINTR, -EAGAIN}) {
        SCOPED_TRACE(strerror(int(-err)));
        for (int extra : {0, 1}) {
            Faults f;
            tai_io_faults hook = f.hook();
            tai_io_config cfg = tai_io_default_config();
            cfg.kind = GetParam().kind;
            cfg.buffered = GetParam().buffered;
            cfg.chunk_bytes = kChunk;
            cfg.faults = &hook;
            tai_io *io = nullptr;
            ASSERT_EQ(tai_io_create(&cfg, &io), 0);
            tai_io_file *file = nullptr;
            ASSERT_EQ(tai_io_open(io, file_->path.c_str(), &file), 0);
            f.err = err;
            f.burst = TAI_IO_MAX_RETRIES + extra;
            f.mode = Faults::kErrBurst;
            Buffer buf(kChunk);
            uint64_t fail = 99;
            int rc = tai_io_read(io, file, 2 * kChunk, kChunk, buf.data(), &fail);
            if (extra == 0) {
                EXPECT_EQ(rc, 0);
                EXPECT_EQ(FirstDiff(buf.data(), file_->bytes.data() + 2 * kChunk, kChunk), -1);
                EXPECT_EQ(f.calls.load(), uint64_t(TAI_IO_MAX_RETRIES) + 1);
            } else {
                EXPECT_EQ(rc, int(err));
                EXPECT_EQ(fail, 2 * kChunk);
                EXPECT_EQ(f.calls.load(), uint64_t(TAI_IO_MAX_RETRIES) + 1);
            }
            tai_io_destroy(io);
        }
    }
}

TEST_P(FaultTest, EndlessEintrFails) {
    faults_.err = -EINTR;
    faults_.mode = Faults::kErrAlways;
    uint64_t fail = 99;
    EXPECT_EQ(ReadAll(&fail), -EINTR);
    EXPECT_EQ(fail, 0u); // the lowest failing chunk is reported
    ExpectUsable();
}

TEST_P(FaultTest, EioFailsAtItsOffset) {
    faults_.err = -EIO;
    faults_.at = 5 * kChunk;
    faults_.mode = Faults::kErrAtOffset;
    uint64_t fail = 0;
    size_t bytes = 0;
    EXPECT_EQ(ReadAll(&fail, &bytes), -EIO);
    EXPECT_EQ(fail, 5 * kChunk);
    EXPECT_EQ(faults_.injected.load(), 1u);
    EXPECT_LT(bytes, kFileSize);
    ExpectUsable();
}

// The last chunk, shorter than a block on an O_DIRECT file.
TEST_P(FaultTest, EioInTheTail) {
    size_t a = tai_io_file_alignment(f_);
    faults_.err = -EIO;
    faults_.at = kFileSize - kFileSize % (a > 1 ? a : kChunk);
    faults_.mode = Faults::kErrAtOffset;
    uint64_t fail = 0;
    EXPECT_EQ(ReadAll(&fail), -EIO);
    EXPECT_EQ(fail, faults_.at);
    ExpectUsable();
}

// A read that returns 0 before the range ends is end of file: -ENODATA.
TEST_P(FaultTest, ZeroBytesIsEndOfFile) {
    faults_.err = 0;
    faults_.at = 3 * kChunk;
    faults_.mode = Faults::kErrAtOffset;
    uint64_t fail = 0;
    EXPECT_EQ(ReadAll(&fail), -ENODATA);
    EXPECT_EQ(fail, 3 * kChunk);
    ExpectUsable();
}

// The file really shrinks after it was opened (not for mmap: a mapping
// raises SIGBUS there, see io/mmap.c).
TEST_P(FaultTest, FileTruncatedAfterOpen) {
    if (GetParam().kind == TAI_IO_MMAP) GTEST_SKIP() << "mmap: SIGBUS by design";
    for (off_t cut : {off_t(6 * kChunk), off_t(6 * kChunk + 1000)}) {
        SCOPED_TRACE(cut);
        TestFile victim(kFileSize);
        tai_io_file *f = nullptr;
        ASSERT_EQ(tai_io_open(io_, victim.path.c_str(), &f), 0);
        ASSERT_EQ(truncate(victim.path.c_str(), cut), 0);
        Buffer buf(kFileSize);
        uint64_t fail = 0;
        EXPECT_EQ(tai_io_read(io_, f, 0, kFileSize, buf.data(), &fail), -ENODATA);
        EXPECT_GE(fail, uint64_t(cut) - uint64_t(cut) % kChunk);
        EXPECT_LT(fail, uint64_t(cut) + kChunk);
        // What was before the cut still reads.
        EXPECT_EQ(tai_io_read(io_, f, 0, 6 * kChunk, buf.data(), nullptr), 0);
        EXPECT_EQ(FirstDiff(buf.data(), victim.bytes.data(), 6 * kChunk), -1);
        tai_io_close(io_, f);
    }
}

INSTANTIATE_TEST_SUITE_P(Engines, FaultTest,
                         testing::Values(Variant{TAI_IO_URING, false}, Variant{TAI_IO_URING, true},
                                         Variant{TAI_IO_PREAD, false}, Variant{TAI_IO_PREAD, true},
                                         Variant{TAI_IO_MMAP, false}),
                         VariantName);

}  // namespace
