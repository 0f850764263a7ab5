// io/ registered buffers: reads into regions given to tai_io_register go
// through IORING_OP_READ_FIXED with the index of the piece they fall in; a
// wrong index or address would make the kernel fail the read (-EFAULT) or
// put the bytes elsewhere, so identical bytes are the test. Skips where the
// kernel refuses io_uring.
#include <sys/mman.h>
#include <sys/resource.h>

#include <memory>

#include "tests/io/io_test_util.h"

namespace {

using tai_io_test::Buffer;
using tai_io_test::FirstDiff;
using tai_io_test::kMiB;
using tai_io_test::TestFile;

// tai_io_register, retried for a while on ENOMEM: the pages of rings that
// earlier tests closed are unaccounted asynchronously by the kernel, and
// until then count against the locked-memory limit.
int Register(tai_io *io, void *base, size_t len) {
    int rc = tai_io_register(io, base, len);
    for (int i = 0; i < 40 && rc == -ENOMEM; i++) {
        usleep(50 * 1000);
        rc = tai_io_register(io, base, len);
    }
    return rc;
}

class RegisterTest : public testing::Test {
  protected:
    void SetUp() override {
        // Small enough for the usual 8 MiB locked-memory limit, which
        // applies where the process lacks CAP_IPC_LOCK (as in a sandbox).
        file_.reset(new TestFile(kMiB));
        tai_io_config cfg = tai_io_default_config();
        cfg.kind = TAI_IO_URING;
        cfg.chunk_bytes = 256 * 1024;
        TAI_CREATE_OR_SKIP(cfg, io_);
        ASSERT_EQ(tai_io_open(io_, file_->path.c_str(), &f_), 0);
    }
    void TearDown() override { tai_io_destroy(io_); }

    std::unique_ptr<TestFile> file_;
    tai_io *io_ = nullptr;
    tai_io_file *f_ = nullptr;
};

TEST_F(RegisterTest, ReadsIntoRegisteredRegions) {
    const size_t size = file_->bytes.size();
    // Two regions, so that the second read needs buf_index 1.
    Buffer r1(size), r2(size + kMiB);
    EXPECT_FALSE(tai_io_registered(io_));
    int rc = Register(io_, r1.data(), size);
    if (rc == -ENOMEM) GTEST_SKIP() << "locked-memory limit refuses registration";
    ASSERT_EQ(rc, 0) << strerror(-rc);
    ASSERT_EQ(Register(io_, r2.data(), size + kMiB), 0);
    EXPECT_TRUE(tai_io_registered(io_));

    ASSERT_EQ(tai_io_read(io_, f_, 0, size, r1.data(), nullptr), 0);
    EXPECT_EQ(FirstDiff(r1.data(), file_->bytes.data(), size), -1);
    EXPECT_TRUE(r1.GuardIntact(size));

    // Into the middle of the second region, with several requests in flight.
    const size_t part = size / 4;
    for (int i = 0; i < 4; i++) {
        tai_io_req req = {f_, i * part, part, r2.data() + kMiB + i * part, uint64_t(i)};
        ASSERT_EQ(tai_io_submit(io_, &req), 0);
    }
    tai_io_done d[4];
    ASSERT_EQ(tai_io_wait(io_, d, 4, 4), 4);
    for (auto &x : d) EXPECT_EQ(x.res, 0);
    EXPECT_EQ(FirstDiff(r2.data() + kMiB, file_->bytes.data(), size), -1);
    for (size_t i = 0; i < kMiB; i++) ASSERT_EQ(r2.data()[i], Buffer::kFill);
    EXPECT_TRUE(r2.GuardIntact(kMiB + size));
}

// Proof that READ_FIXED is what reads into a registered region: the kernel
// pinned its pages for writing at registration, so a fixed read still lands
// there after the mapping is made read-only, where a plain read gets EFAULT.
TEST_F(RegisterTest, ReadFixedPathIsUsed) {
    const size_t size = file_->bytes.size(); // a multiple of the page size
    Buffer reg(size), plain(size);
    int rc = Register(io_, reg.data(), size);
    if (rc == -ENOMEM) GTEST_SKIP() << "locked-memory limit refuses registration";
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(mprotect(reg.data(), size, PROT_READ), 0);
    ASSERT_EQ(mprotect(plain.data(), size, PROT_READ), 0);
    int fixed_rc = tai_io_read(io_, f_, 0, size, reg.data(), nullptr);
    int plain_rc = tai_io_read(io_, f_, 0, size, plain.data(), nullptr);
    ASSERT_EQ(mprotect(reg.data(), size, PROT_READ | PROT_WRITE), 0);
    ASSERT_EQ(mprotect(plain.data(), size, PROT_READ | PROT_WRITE), 0);
    EXPECT_EQ(plain_rc, -EFAULT);
    ASSERT_EQ(fixed_rc, 0) << strerror(-fixed_rc);
    EXPECT_EQ(FirstDiff(reg.data(), file_->bytes.data(), size), -1);
}

// A registration refused (here, where the locked-memory limit applies: a
// region larger than that limit) leaves the earlier regions registered.
TEST_F(RegisterTest, RefusedRegistrationKeepsEarlierOnes) {
    const size_t size = file_->bytes.size();
    Buffer reg(size);
    int rc = Register(io_, reg.data(), size);
    if (rc == -ENOMEM) GTEST_SKIP() << "locked-memory limit refuses registration";
    ASSERT_EQ(rc, 0);
    struct rlimit lim;
    ASSERT_EQ(getrlimit(RLIMIT_MEMLOCK, &lim), 0);
    if (lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur > 256 * kMiB)
        GTEST_SKIP() << "locked-memory limit too high to exceed here";
    size_t big_size = size_t(lim.rlim_cur) + 4 * kMiB;
    Buffer big(big_size);
    rc = tai_io_register(io_, big.data(), big_size);
    if (rc == 0) GTEST_SKIP() << "registration not limited (CAP_IPC_LOCK)";
    EXPECT_EQ(rc, -ENOMEM);
    EXPECT_TRUE(tai_io_registered(io_));
    // Still READ_FIXED (see ReadFixedPathIsUsed).
    ASSERT_EQ(mprotect(reg.data(), size, PROT_READ), 0);
    int fixed_rc = tai_io_read(io_, f_, 0, size, reg.data(), nullptr);
    ASSERT_EQ(mprotect(reg.data(), size, PROT_READ | PROT_WRITE), 0);
    ASSERT_EQ(fixed_rc, 0) << strerror(-fixed_rc);
    EXPECT_EQ(FirstDiff(reg.data(), file_->bytes.data(), size), -1);
    // And reads into the refused region work, unregistered.
    ASSERT_EQ(tai_io_read(io_, f_, 0, size, big.data(), nullptr), 0);
    EXPECT_EQ(FirstDiff(big.data(), file_->bytes.data(), size), -1);
}

// A destination that starts inside a registered region and runs past its
// end is read with plain READ for the chunks outside it.
TEST_F(RegisterTest, DestinationStraddlingARegion) {
    const size_t size = file_->bytes.size();
    Buffer buf(size);
    int rc = Register(io_, buf.data(), size / 2);
    if (rc == -ENOMEM) GTEST_SKIP() << "locked-memory limit refuses registration";
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(tai_io_read(io_, f_, 0, size, buf.data(), nullptr), 0);
    EXPECT_EQ(FirstDiff(buf.data(), file_->bytes.data(), size), -1);
}

// Other engines accept registration and ignore it.
TEST(RegisterOther, AcceptedAndIgnored) {
    TestFile tf(kMiB);
    for (tai_io_kind k : {TAI_IO_PREAD, TAI_IO_MMAP}) {
        tai_io_config cfg = tai_io_default_config();
        cfg.kind = k;
        tai_io *io = nullptr;
        ASSERT_EQ(tai_io_create(&cfg, &io), 0);
        Buffer buf(kMiB);
        EXPECT_EQ(tai_io_register(io, buf.data(), kMiB), 0);
        EXPECT_TRUE(tai_io_registered(io));
        EXPECT_EQ(tai_io_register(io, nullptr, kMiB), -EINVAL);
        tai_io_file *f = nullptr;
        ASSERT_EQ(tai_io_open(io, tf.path.c_str(), &f), 0);
        ASSERT_EQ(tai_io_read(io, f, 0, kMiB, buf.data(), nullptr), 0);
        EXPECT_EQ(FirstDiff(buf.data(), tf.bytes.data(), kMiB), -1);
        tai_io_unregister(io);
        EXPECT_FALSE(tai_io_registered(io));
        tai_io_destroy(io);
    }
}

// Unregistering drops the fixed buffers (their pages are unpinned) and the
// engine keeps reading into the same memory with plain reads.
TEST(RegisterUring, UnregisterThenReadStillWorks) {
    TestFile tf(kMiB);
    tai_io_config cfg = tai_io_default_config();
    cfg.kind = TAI_IO_URING;
    tai_io *io = nullptr;
    int rc = tai_io_create(&cfg, &io);
    if (rc == -ENOSYS || rc == -EPERM) GTEST_SKIP() << "io_uring unavailable: " << rc;
    ASSERT_EQ(rc, 0);
    Buffer buf(kMiB);
    if (tai_io_register(io, buf.data(), kMiB) != 0) {
        tai_io_destroy(io);
        GTEST_SKIP() << "the locked-memory limit refuses registration";
    }
    EXPECT_TRUE(tai_io_registered(io));
    tai_io_unregister(io);
    EXPECT_FALSE(tai_io_registered(io));
    tai_io_file *f = nullptr;
    ASSERT_EQ(tai_io_open(io, tf.path.c_str(), &f), 0);
    ASSERT_EQ(tai_io_read(io, f, 0, kMiB, buf.data(), nullptr), 0);
    EXPECT_EQ(FirstDiff(buf.data(), tf.bytes.data(), kMiB), -1);
    // registering again after an unregister works
    EXPECT_EQ(tai_io_register(io, buf.data(), kMiB), 0);
    ASSERT_EQ(tai_io_read(io, f, 0, kMiB, buf.data(), nullptr), 0);
    EXPECT_EQ(FirstDiff(buf.data(), tf.bytes.data(), kMiB), -1);
    tai_io_destroy(io);
}

}  // namespace
