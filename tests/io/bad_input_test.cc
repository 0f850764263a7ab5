// io/ on bad input: every engine refuses ranges past the end of the file,
// misaligned requests on O_DIRECT files, missing files, directories, more
// than TAI_IO_MAX_REQS outstanding requests and bad configurations, with
// the documented -errno and without side effects.
#include <sys/stat.h>

#include <memory>
#include <set>

#include "tests/io/io_test_util.h"

namespace {

using tai_io_test::Buffer;
using tai_io_test::FirstDiff;
using tai_io_test::TestFile;

constexpr size_t kFileSize = 64 * 1024 + 100;

class BadInputTest : public testing::TestWithParam<tai_io_kind> {
  protected:
    void SetUp() override {
        file_.reset(new TestFile(kFileSize));
        tai_io_config cfg = tai_io_default_config();
        cfg.kind = GetParam();
        TAI_CREATE_OR_SKIP(cfg, io_);
        ASSERT_EQ(tai_io_open(io_, file_->path.c_str(), &f_), 0);
    }
    void TearDown() override { tai_io_destroy(io_); }

    int Submit(uint64_t off, size_t len, void *dst, uint64_t tag = 0) {
        tai_io_req r = {f_, off, len, dst, tag};
        return tai_io_submit(io_, &r);
    }

    std::unique_ptr<TestFile> file_;
    tai_io *io_ = nullptr;
    tai_io_file *f_ = nullptr;
};

TEST_P(BadInputTest, RangePastEndOfFile) {
    Buffer buf(2 * kFileSize);
    EXPECT_EQ(Submit(0, kFileSize + 1, buf.data()), -EINVAL);
    EXPECT_EQ(Submit(61440, 8192, buf.data()), -EINVAL);
    EXPECT_EQ(Submit(kFileSize + 4096 - kFileSize % 4096, 4096, buf.data()), -EINVAL);
    EXPECT_EQ(Submit(UINT64_MAX - 4095, 8192, buf.data()), -EINVAL); // wraps around
    EXPECT_EQ(tai_io_read(io_, f_, 4096, kFileSize, buf.data(), nullptr), -EINVAL);
    EXPECT_TRUE(buf.GuardIntact(0)); // nothing was written
    // Nothing is outstanding after refused submissions.
    tai_io_done d;
    EXPECT_EQ(tai_io_wait(io_, &d, 1, 0), 0);
    EXPECT_EQ(tai_io_wait(io_, &d, 1, 1), -EINVAL);
}

TEST_P(BadInputTest, EmptyRangesAreFine) {
    Buffer buf(16);
    EXPECT_EQ(tai_io_read(io_, f_, 0, 0, buf.data(), nullptr), 0);
    EXPECT_EQ(tai_io_read(io_, f_, 65536, 0, buf.data(), nullptr), 0);
    EXPECT_EQ(tai_io_read(io_, f_, kFileSize, 0, buf.data(), nullptr), 0); // at EOF
    EXPECT_EQ(tai_io_read(io_, f_, 0, 0, nullptr, nullptr), 0);
    EXPECT_TRUE(buf.GuardIntact(0));
}

TEST_P(BadInputTest, MisalignedOnDirectFile) {
    if (!tai_io_file_direct(f_)) GTEST_SKIP() << "no O_DIRECT here (mmap, or the filesystem)";
    size_t a = tai_io_file_alignment(f_);
    ASSERT_GE(a, 512u);
    Buffer buf(kFileSize + 4096);
    EXPECT_EQ(Submit(1, a, buf.data()), -EINVAL);
    EXPECT_EQ(Submit(a / 2, a, buf.data()), -EINVAL);
    EXPECT_EQ(Submit(0, a + 1, buf.data()), -EINVAL);
    EXPECT_EQ(Submit(0, 100, buf.data()), -EINVAL);
    EXPECT_EQ(Submit(0, a, buf.data() + 1), -EINVAL);
    EXPECT_EQ(Submit(0, a, buf.data() + a / 2), -EINVAL);
    // An unaligned length is fine when it ends exactly at end of file...
    uint64_t tail_start = kFileSize - kFileSize % a;
    EXPECT_EQ(tai_io_read(io_, f_, tail_start, kFileSize - tail_start, buf.data(), nullptr), 0);
    EXPECT_EQ(FirstDiff(buf.data(), file_->bytes.data() + tail_start, kFileSize - tail_start), -1);
    EXPECT_TRUE(buf.GuardIntact(kFileSize - tail_start));
    // ...but not one block short of it.
    EXPECT_EQ(Submit(tail_start - a, kFileSize - tail_start, buf.data()), -EINVAL);
}

TEST_P(BadInputTest, BufferedFileTakesAnyAlignment) {
    tai_io_config cfg = tai_io_default_config();
    cfg.kind = GetParam();
    cfg.buffered = true;
    tai_io *io = nullptr;
    ASSERT_EQ(tai_io_create(&cfg, &io), 0);
    tai_io_file *f = nullptr;
    ASSERT_EQ(tai_io_open(io, file_->path.c_str(), &f), 0);
    EXPECT_FALSE(tai_io_file_direct(f));
    EXPECT_EQ(tai_io_file_alignment(f), 1u);
    Buffer buf(kFileSize);
    EXPECT_EQ(tai_io_read(io, f, 333, 777, buf.data() + 1, nullptr), 0);
    EXPECT_EQ(FirstDiff(buf.data() + 1, file_->bytes.data() + 333, 777), -1);
    EXPECT_EQ(buf.data()[0], Buffer::kFill);
    EXPECT_TRUE(buf.GuardIntact(778));
    tai_io_destroy(io);
}

TEST_P(BadInputTest, MissingFileAndDirectory) {
    tai_io_file *f = reinterpret_cast<tai_io_file *>(1);
    std::string missing = tai_test::TempPath("_does_not_exist");
    EXPECT_EQ(tai_io_open(io_, missing.c_str(), &f), -ENOENT);
    EXPECT_EQ(f, nullptr);
    std::string dir = tai_test::TempPath("_dir");
    ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
    EXPECT_EQ(tai_io_open(io_, dir.c_str(), &f), -EISDIR);
    EXPECT_EQ(f, nullptr);
    rmdir(dir.c_str());
    EXPECT_EQ(tai_io_open(io_, nullptr, &f), -EINVAL);
}

TEST_P(BadInputTest, TooManyOutstanding) {
    std::vector<std::unique_ptr<Buffer>> bufs;
    for (int i = 0; i < TAI_IO_MAX_REQS; i++) {
        bufs.emplace_back(new Buffer(4096));
        ASSERT_EQ(Submit(uint64_t(i % 16) * 4096, 4096, bufs.back()->data(), 500 + i), 0) << i;
    }
    Buffer extra(4096);
    EXPECT_EQ(Submit(0, 4096, extra.data(), 9999), -EBUSY);
    EXPECT_EQ(tai_io_read(io_, f_, 0, 4096, extra.data(), nullptr), -EBUSY);
    EXPECT_TRUE(extra.GuardIntact(0));
    tai_io_done d[TAI_IO_MAX_REQS];
    tai_io_done bad;
    EXPECT_EQ(tai_io_wait(io_, &bad, 1, 2), -EINVAL); // min > max
    EXPECT_EQ(tai_io_wait(io_, &bad, 0, 0), -EINVAL);
    int n = tai_io_wait(io_, d, TAI_IO_MAX_REQS, TAI_IO_MAX_REQS);
    ASSERT_EQ(n, TAI_IO_MAX_REQS);
    std::set<uint64_t> tags;
    for (auto &x : d) {
        EXPECT_EQ(x.res, 0);
        tags.insert(x.tag);
        int i = int(x.tag - 500);
        ASSERT_TRUE(i >= 0 && i < TAI_IO_MAX_REQS);
        EXPECT_EQ(FirstDiff(bufs[size_t(i)]->data(), file_->bytes.data() + (i % 16) * 4096, 4096),
                  -1);
    }
    EXPECT_EQ(tags.size(), size_t(TAI_IO_MAX_REQS));
    // Room again.
    EXPECT_EQ(Submit(0, 4096, extra.data(), 1), 0);
    EXPECT_EQ(tai_io_wait(io_, d, 1, 1), 1);
}

// A file truncated after it was opened (a disk or a writer gone wrong under
// a running engine): reads within what is left still give its bytes; a read
// reaching past the new end fails with -ENODATA on every engine, mmap
// included (no SIGBUS, and no zeros from the rest of the last page taken
// for the file's bytes), and the engine goes on reading what is left.
TEST_P(BadInputTest, FileTruncatedAfterOpen) {
    constexpr size_t kLeft = 10000; // not a multiple of the page size
    ASSERT_EQ(truncate(file_->path.c_str(), kLeft), 0);
    Buffer buf(kFileSize);
    EXPECT_EQ(tai_io_read(io_, f_, 0, 8192, buf.data(), nullptr), 0);
    EXPECT_EQ(FirstDiff(buf.data(), file_->bytes.data(), 8192), -1);
    // the page holding the new end: its bytes past the end are not the file's
    EXPECT_EQ(tai_io_read(io_, f_, 8192, 4096, buf.data(), nullptr), -ENODATA);
    // wholly past the new end (a plain copy from the mapping faults here)
    EXPECT_EQ(tai_io_read(io_, f_, 16384, 8192, buf.data(), nullptr), -ENODATA);
    EXPECT_EQ(tai_io_read(io_, f_, 61440, kFileSize - 61440, buf.data(), nullptr), -ENODATA);
    EXPECT_EQ(tai_io_read(io_, f_, 0, kFileSize, buf.data(), nullptr), -ENODATA);
    EXPECT_TRUE(buf.GuardIntact(kFileSize));
    // what is left still reads
    Buffer again(4096);
    EXPECT_EQ(tai_io_read(io_, f_, 4096, 4096, again.data(), nullptr), 0);
    EXPECT_EQ(FirstDiff(again.data(), file_->bytes.data() + 4096, 4096), -1);
}

// Files are closed by tai_io_close or, if still open, by tai_io_destroy
// (ASan's leak check sees a file left behind).
TEST_P(BadInputTest, FilesClosedEitherWay) {
    tai_io_file *a = nullptr, *b = nullptr;
    ASSERT_EQ(tai_io_open(io_, file_->path.c_str(), &a), 0);
    ASSERT_EQ(tai_io_open(io_, file_->path.c_str(), &b), 0);
    tai_io_close(io_, a);
    tai_io_close(io_, nullptr);
    Buffer buf(4096);
    EXPECT_EQ(tai_io_read(io_, b, 0, 4096, buf.data(), nullptr), 0);
}

INSTANTIATE_TEST_SUITE_P(Engines, BadInputTest,
                         testing::Values(TAI_IO_URING, TAI_IO_PREAD, TAI_IO_MMAP),
                         [](const testing::TestParamInfo<tai_io_kind> &i) {
                             return std::string(tai_io_kind_name(i.param));
                         });

TEST(IoConfig, KindNames) {
    for (int k = TAI_IO_AUTO; k <= TAI_IO_MMAP; k++) {
        const char *name = tai_io_kind_name(tai_io_kind(k));
        ASSERT_NE(name, nullptr);
        EXPECT_EQ(tai_io_kind_parse(name), k);
    }
    EXPECT_EQ(tai_io_kind_parse("io_uring"), TAI_IO_URING);
    EXPECT_EQ(tai_io_kind_parse("junk"), -1);
    EXPECT_EQ(tai_io_kind_parse(""), -1);
    EXPECT_EQ(tai_io_kind_parse("URING"), -1);
    EXPECT_EQ(tai_io_kind_parse("uring "), -1);
    EXPECT_EQ(tai_io_kind_parse(nullptr), -1);
    EXPECT_EQ(tai_io_kind_name(tai_io_kind(42)), nullptr);
}

TEST(IoConfig, BadConfigRefused) {
    tai_io *io = reinterpret_cast<tai_io *>(1);
    tai_io_config cfg = tai_io_default_config();
    EXPECT_EQ(cfg.kind, TAI_IO_AUTO);
    EXPECT_EQ(cfg.faults, nullptr);
    cfg.kind = tai_io_kind(7);
    EXPECT_EQ(tai_io_create(&cfg, &io), -EINVAL);
    EXPECT_EQ(io, nullptr);
    cfg = tai_io_default_config();
    cfg.queue_depth = -1;
    EXPECT_EQ(tai_io_create(&cfg, &io), -EINVAL);
    cfg = tai_io_default_config();
    cfg.threads = -3;
    EXPECT_EQ(tai_io_create(&cfg, &io), -EINVAL);
    cfg = tai_io_default_config();
    cfg.chunk_bytes = size_t(4) << 30;
    EXPECT_EQ(tai_io_create(&cfg, &io), -EINVAL);
    EXPECT_EQ(tai_io_create(nullptr, nullptr), -EINVAL);
    tai_io_destroy(nullptr);
}

// A NULL config means the defaults; AUTO gives io_uring where the kernel
// allows it and pread otherwise, saying why.
TEST(IoConfig, DefaultEngine) {
    tai_io *io = nullptr;
    ASSERT_EQ(tai_io_create(nullptr, &io), 0);
    tai_io_kind k = tai_io_engine(io);
    if (k == TAI_IO_URING) {
        EXPECT_EQ(tai_io_fallback_reason(io), nullptr);
    } else {
        EXPECT_EQ(k, TAI_IO_PREAD);
        ASSERT_NE(tai_io_fallback_reason(io), nullptr);
        EXPECT_NE(std::string(tai_io_fallback_reason(io)).find("io_uring"), std::string::npos);
    }
    tai_io_destroy(io);
}

}  // namespace
