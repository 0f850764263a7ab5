// io/ reads: every engine, with and without O_DIRECT, with the default and
// with tiny chunks and queue depth, returns exactly the file's bytes for whole
// files and many random ranges, with several requests in flight, and never
// writes outside the requested destination range.
#include <algorithm>
#include <map>
#include <memory>
#include <tuple>

#include "tests/io/io_test_util.h"

namespace {

using tai_io_test::Buffer;
using tai_io_test::FileSizes;
using tai_io_test::FirstDiff;
using tai_io_test::TestFile;

struct Variant {
    tai_io_kind kind;
    bool buffered;
    bool small; // 8 KiB chunks, queue depth 3, 2 threads: many chunks per request
};

std::string VariantName(const testing::TestParamInfo<Variant> &info) {
    const Variant &v = info.param;
    return std::string(tai_io_kind_name(v.kind)) + (v.buffered ? "_buffered" : "_direct") +
           (v.small ? "_small" : "_default");
}

class ReadTest : public testing::TestWithParam<Variant> {
  protected:
    static void SetUpTestSuite() {
        files_ = new std::vector<std::unique_ptr<TestFile>>;
        for (size_t s : FileSizes()) files_->emplace_back(new TestFile(s));
    }
    static void TearDownTestSuite() {
        delete files_;
        files_ = nullptr;
    }

    void SetUp() override {
        cfg_ = tai_io_default_config();
        cfg_.kind = GetParam().kind;
        cfg_.buffered = GetParam().buffered;
        if (GetParam().small) {
            cfg_.chunk_bytes = 8192;
            cfg_.queue_depth = 3;
            cfg_.threads = 2;
        }
        TAI_CREATE_OR_SKIP(cfg_, io_);
        ASSERT_EQ(tai_io_engine(io_), GetParam().kind);
    }
    void TearDown() override { tai_io_destroy(io_); }

    tai_io_file *Open(const TestFile &tf) {
        tai_io_file *f = nullptr;
        int rc = tai_io_open(io_, tf.path.c_str(), &f);
        EXPECT_EQ(rc, 0) << tf.path << ": " << strerror(-rc);
        if (f) {
            EXPECT_EQ(tai_io_file_size(f), tf.bytes.size());
            size_t a = tai_io_file_alignment(f);
            if (tai_io_file_direct(f)) {
                EXPECT_TRUE(a >= 512 && (a & (a - 1)) == 0) << a;
            } else {
                EXPECT_EQ(a, 1u);
            }
            // Buffered requests and the mmap engine never use O_DIRECT.
            if (GetParam().buffered || GetParam().kind == TAI_IO_MMAP) {
                EXPECT_FALSE(tai_io_file_direct(f));
            }
        }
        return f;
    }

    static std::vector<std::unique_ptr<TestFile>> *files_;
    tai_io_config cfg_;
    tai_io *io_ = nullptr;
};

std::vector<std::unique_ptr<TestFile>> *ReadTest::files_ = nullptr;

TEST_P(ReadTest, WholeFile) {
    for (auto &tf : *files_) {
        size_t size = tf->bytes.size();
        SCOPED_TRACE("file size " + std::to_string(size));
        tai_io_file *f = Open(*tf);
        ASSERT_NE(f, nullptr);
        Buffer buf(size);
        ASSERT_NE(buf.data(), nullptr);
        uint64_t fail = 1;
        ASSERT_EQ(tai_io_read(io_, f, 0, size, buf.data(), &fail), 0);
        EXPECT_EQ(fail, 0u);
        EXPECT_EQ(FirstDiff(buf.data(), tf->bytes.data(), size), -1);
        // The unaligned tail of an O_DIRECT file is read as a whole block,
        // but only the file's bytes may reach the destination.
        EXPECT_TRUE(buf.GuardIntact(size));
        tai_io_close(io_, f);
    }
}

// Random ranges of every file, up to 8 requests in flight, collected with
// blocking waits, partial waits and polls; each completion is matched to its
// request by tag.
TEST_P(ReadTest, RandomRangesInFlight) {
    std::mt19937_64 rng(42 + GetParam().kind * 2 + GetParam().buffered);
    for (auto &tf : *files_) {
        const uint64_t size = tf->bytes.size();
        SCOPED_TRACE("file size " + std::to_string(size));
        tai_io_file *f = Open(*tf);
        ASSERT_NE(f, nullptr);
        const uint64_t a = tai_io_file_alignment(f);
        const int kRequests = size > 0 ? 96 : 4;
        struct Pending {
            uint64_t off;
            size_t len;
            std::unique_ptr<Buffer> buf;
            size_t skew; // dst = buf + skew (unaligned for buffered files)
        };
        std::map<uint64_t, Pending> pending;
        int collected = 0, submitted = 0;
        uint64_t next_tag = 1000;

        auto check = [&](const tai_io_done &d) {
            auto it = pending.find(d.tag);
            ASSERT_NE(it, pending.end()) << "unknown tag " << d.tag;
            Pending &p = it->second;
            ASSERT_EQ(d.res, 0) << strerror(-d.res) << " at " << d.fail_offset;
            EXPECT_EQ(d.bytes, p.len);
            EXPECT_EQ(FirstDiff(p.buf->data() + p.skew, tf->bytes.data() + p.off, p.len), -1)
                << "offset " << p.off << " len " << p.len;
            for (size_t i = 0; i < p.skew; i++) ASSERT_EQ(p.buf->data()[i], Buffer::kFill);
            EXPECT_TRUE(p.buf->GuardIntact(p.skew + p.len));
            pending.erase(it);
            collected++;
        };

        while (collected < kRequests) {
            // Top up to 8 in flight.
            while (submitted < kRequests && pending.size() < 8) {
                uint64_t off = size ? rng() % size : 0;
                uint64_t max_len = size - off;
                uint64_t len = max_len ? rng() % std::min<uint64_t>(max_len + 1, 3 * tai_io_test::kMiB) : 0;
                if (rng() % 8 == 0) { // sometimes to the end of the file
                    len = max_len;
                }
                if (a > 1) {
                    off -= off % a;
                    max_len = size - off;
                    len = std::min<uint64_t>(len - len % a, max_len);
                    if (rng() % 4 == 0) len = max_len; // an unaligned end at EOF
                }
                size_t skew = a > 1 ? 0 : size_t(rng() % 64);
                Pending p{off, size_t(len), std::unique_ptr<Buffer>(new Buffer(skew + len)), skew};
                tai_io_req req;
                req.file = f;
                req.offset = off;
                req.len = size_t(len);
                req.dst = p.buf->data() + skew;
                req.tag = next_tag;
                ASSERT_EQ(tai_io_submit(io_, &req), 0) << "offset " << off << " len " << len;
                pending.emplace(next_tag++, std::move(p));
                submitted++;
            }
            tai_io_done done[8];
            int mode = int(rng() % 3);
            int n;
            if (mode == 0) {
                n = tai_io_wait(io_, done, 8, int(pending.size()));
                ASSERT_EQ(n, int(pending.size())); // min = every outstanding request
            } else if (mode == 1) {
                n = tai_io_wait(io_, done, 3, 1);
                ASSERT_GE(n, 1);
                ASSERT_LE(n, 3);
            } else {
                n = tai_io_wait(io_, done, 8, 0);
                ASSERT_GE(n, 0);
            }
            for (int i = 0; i < n; i++) check(done[i]);
        }
        EXPECT_TRUE(pending.empty());
        tai_io_close(io_, f);
    }
}

// Requests on two files interleaved, and a file closed while a request on it
// is still outstanding (it stays usable until the completion is returned).
TEST_P(ReadTest, TwoFilesAndEarlyClose) {
    TestFile &big = *(*files_)[5];
    TestFile &mid = *(*files_)[4];
    tai_io_file *f1 = Open(big), *f2 = Open(mid);
    ASSERT_TRUE(f1 && f2);
    Buffer b1(big.bytes.size()), b2(mid.bytes.size());
    tai_io_req r1 = {f1, 0, big.bytes.size(), b1.data(), 1};
    tai_io_req r2 = {f2, 0, mid.bytes.size(), b2.data(), 2};
    ASSERT_EQ(tai_io_submit(io_, &r1), 0);
    ASSERT_EQ(tai_io_submit(io_, &r2), 0);
    tai_io_close(io_, f1);
    tai_io_close(io_, f2);
    tai_io_done d[2];
    int got = 0;
    while (got < 2) {
        int n = tai_io_wait(io_, d + got, 2 - got, 1);
        ASSERT_GE(n, 1);
        got += n;
    }
    for (auto &x : d) {
        ASSERT_EQ(x.res, 0);
        if (x.tag == 1)
            EXPECT_EQ(FirstDiff(b1.data(), big.bytes.data(), big.bytes.size()), -1);
        else
            EXPECT_EQ(FirstDiff(b2.data(), mid.bytes.data(), mid.bytes.size()), -1);
    }
}

// Destroying an engine with requests still in flight waits for them (ASan
// would see the reads land in freed memory otherwise) and leaks nothing.
TEST_P(ReadTest, DestroyWithRequestsInFlight) {
    TestFile &big = *(*files_)[5];
    tai_io_file *f = Open(big);
    ASSERT_NE(f, nullptr);
    std::vector<std::unique_ptr<Buffer>> bufs;
    for (int i = 0; i < 4; i++) {
        bufs.emplace_back(new Buffer(big.bytes.size()));
        tai_io_req r = {f, 0, big.bytes.size(), bufs.back()->data(), uint64_t(i)};
        ASSERT_EQ(tai_io_submit(io_, &r), 0);
    }
    tai_io_destroy(io_);
    io_ = nullptr;
    for (auto &b : bufs) EXPECT_TRUE(b->GuardIntact(big.bytes.size()));
}

std::vector<Variant> AllVariants() {
    std::vector<Variant> v;
    for (tai_io_kind k : {TAI_IO_URING, TAI_IO_PREAD, TAI_IO_MMAP})
        for (bool buffered : {false, true})
            for (bool small : {false, true}) v.push_back({k, buffered, small});
    return v;
}

INSTANTIATE_TEST_SUITE_P(Engines, ReadTest, testing::ValuesIn(AllVariants()), VariantName);

// The three engines agree with each other byte for byte on the same ranges.
TEST(ReadAgreement, EnginesGiveIdenticalBytes) {
    TestFile tf(7 * tai_io_test::kMiB);
    std::vector<std::vector<uint8_t>> results;
    for (tai_io_kind k : {TAI_IO_URING, TAI_IO_PREAD, TAI_IO_MMAP}) {
        tai_io_config cfg = tai_io_default_config();
        cfg.kind = k;
        tai_io *io = nullptr;
        if (tai_io_create(&cfg, &io) != 0) {
            ASSERT_EQ(k, TAI_IO_URING); // only io_uring may be refused
            continue;
        }
        tai_io_file *f = nullptr;
        ASSERT_EQ(tai_io_open(io, tf.path.c_str(), &f), 0);
        std::mt19937_64 rng(7);
        std::vector<uint8_t> all;
        for (int i = 0; i < 32; i++) {
            uint64_t off = (rng() % tf.bytes.size()) & ~uint64_t(4095);
            size_t len = std::min<size_t>((rng() % (2 * tai_io_test::kMiB)) & ~size_t(4095),
                                          tf.bytes.size() - off);
            Buffer b(len);
            ASSERT_EQ(tai_io_read(io, f, off, len, b.data(), nullptr), 0);
            all.insert(all.end(), b.data(), b.data() + len);
        }
        results.push_back(all);
        tai_io_destroy(io);
    }
    ASSERT_GE(results.size(), 2u);
    for (size_t i = 1; i < results.size(); i++) EXPECT_TRUE(results[i] == results[0]);
}

}  // namespace
