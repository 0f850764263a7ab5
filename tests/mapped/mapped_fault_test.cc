// runtime/mapped under injected I/O faults (tai_io_faults through
// tai_mapped_open's options), for every engine: an EIO while reading a layer
// gives NULL and a message naming the file, the layer and the offset, and
// the layer loads once the fault is gone; EINTR and short reads are retried
// and give the file's bytes. Also for a GGUF file, whose layers are read
// into staging and repacked; and for the reads past the cache
// (tai_mapped_read, tai_mapped_verify) that look up embedding rows.
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <regex>
#include <set>
#include <string>

#include "runtime/mapped/mapped.h"
#include "tests/mapped/mapped_test_util.h"

namespace {

using tai_mapped_test::Contains;
using tai_mapped_test::LastError;
using tai_mapped_test::ReadRange;

// What happens to each raw read. Counters show that faults were injected,
// so that no test passes without testing anything.
struct Faults {
    enum Mode { kNone, kEioInRange, kEintrOncePerOffset, kHalve, kTinyOncePerOffset };
    std::atomic<int> mode{kNone};
    uint64_t lo = 0, hi = 0; // kEioInRange: reads overlapping [lo, hi)
    std::atomic<uint64_t> calls{0}, injected{0};
    std::mutex mu;
    std::set<uint64_t> seen;

    bool FirstAt(uint64_t off) {
        std::lock_guard<std::mutex> lock(mu);
        return seen.insert(off).second;
    }
    tai_io_faults hook() { return tai_io_faults{&Faults::Fn, this}; }

    static long Fn(void *ctx, uint64_t call, uint64_t off, size_t len, long res) {
        (void)call;
        Faults *f = static_cast<Faults *>(ctx);
        f->calls++;
        switch (f->mode.load()) {
        case kNone: return res;
        case kEioInRange:
            if (off < f->hi && off + len > f->lo) {
                f->injected++;
                return -EIO;
            }
            return res;
        case kEintrOncePerOffset:
            if (f->FirstAt(off)) {
                f->injected++;
                return -EINTR;
            }
            return res;
        case kHalve:
            if (res > 4096) {
                f->injected++;
                return res / 2;
            }
            return res;
        case kTinyOncePerOffset:
            if (res > 100 && f->FirstAt(off)) {
                f->injected++;
                return 100;
            }
            return res;
        }
        return res;
    }
};

std::string EngineName(TinyAIIOEngine e) {
    return e == TINYAI_IO_URING ? "uring" : e == TINYAI_IO_PREAD ? "pread" : "mmap";
}

class MappedFaults : public testing::TestWithParam<TinyAIIOEngine> {
  protected:
    // Opens `path` with the engine of the test and the fault hook; no
    // prefetch, so that every read is one the test asked for.
    void Open(const std::string &path, size_t piece = 0) {
        TinyAIMmapConfig cfg = tinyaiCreateDefaultMmapConfig();
        cfg.ioEngine = GetParam();
        cfg.prefetchEnabled = false;
        hook_ = faults_.hook();
        tai_mapped_options opt = {};
        opt.faults = &hook_;
        opt.piece_bytes = piece;
        TinyAIStatus st = tai_mapped_open(path.c_str(), &cfg, &opt, &m_);
        if (st != TINYAI_OK && GetParam() == TINYAI_IO_URING && Contains(LastError(), "I/O engine"))
            GTEST_SKIP() << "io_uring unavailable: " << LastError();
        ASSERT_EQ(st, TINYAI_OK) << LastError();
        TinyAIMappedModelStats st2;
        ASSERT_TRUE(tinyaiGetMappedModelStats(m_, &st2));
        ASSERT_EQ(std::string(st2.ioEngine), EngineName(GetParam()));
    }
    void TearDown() override { tai_mapped_close(m_); }

    // Layer l's image against the .tmai file's bytes of the layer.
    void ExpectLayer(const std::string &tmai, TinyAIMappedModel *tm, int l) {
        void *w = tinyaiGetLayerWeights(m_, l);
        ASSERT_NE(w, nullptr) << l << ": " << LastError();
        const TinyAILayerDescriptor *d = tinyaiGetLayerDescriptor(tm, l);
        const std::string want = ReadRange(tmai, d->offset, d->size);
        ASSERT_EQ(tinyaiGetLayerImageSize(m_, l), want.size());
        EXPECT_EQ(std::memcmp(w, want.data(), want.size()), 0) << "layer " << l;
        tinyaiReleaseLayerWeights(m_, l);
    }

    // EIO on the reads of layer 3: a clean failure naming file, layer and
    // offsets, other layers unaffected, and the layer loads afterwards.
    void EioOnLayer3(const std::string &path, const std::string &tmai) {
        TinyAIMappedModel *tm = tinyaiOpenMappedModel(tmai.c_str(), nullptr); // the reference
        ASSERT_NE(tm, nullptr) << LastError();
        Open(path);
        if (IsSkipped() || HasFatalFailure()) {
            tinyaiCloseMappedModel(tm);
            return;
        }
        const TinyAILayerDescriptor *d = tinyaiGetLayerDescriptor(m_, 3);
        faults_.lo = d->offset;
        faults_.hi = d->offset + d->size;
        faults_.mode = Faults::kEioInRange;
        tinyaiClearError();
        EXPECT_EQ(tinyaiGetLayerWeights(m_, 3), nullptr);
        const std::string msg = LastError();
        EXPECT_GT(faults_.injected.load(), 0u);
        EXPECT_TRUE(Contains(msg, path + ": layer 3 (block 2): read of ")) << msg;
        EXPECT_TRUE(Contains(msg, "Input/output error")) << msg;
        std::smatch mt;
        ASSERT_TRUE(std::regex_search(msg, mt, std::regex("bytes at offset ([0-9]+) failed at "
                                                          "offset ([0-9]+)")))
            << msg;
        const uint64_t start = std::stoull(mt[1]), fail = std::stoull(mt[2]);
        // the read starts at the layer (aligned down for O_DIRECT) and fails
        // at a read of it (a chunk that starts at most an alignment early)
        EXPECT_LE(start, d->offset) << msg;
        EXPECT_GT(start + 4096, d->offset) << msg;
        EXPECT_GE(fail, start) << msg;
        EXPECT_LT(fail, d->offset + d->size) << msg;
        EXPECT_FALSE(tinyaiGetLayerDescriptor(m_, 3)->isActive);
        TinyAIMappedModelStats st;
        ASSERT_TRUE(tinyaiGetMappedModelStats(m_, &st));
        EXPECT_EQ(st.loadErrors, 1u);
        ExpectLayer(tmai, tm, 2); // other layers read fine meanwhile
        ExpectLayer(tmai, tm, 4);
        faults_.mode = Faults::kNone;
        ExpectLayer(tmai, tm, 3);
        tinyaiCloseMappedModel(tm);
    }

    Faults faults_;
    tai_io_faults hook_;
    TinyAIMappedModel *m_ = nullptr;
};

TEST_P(MappedFaults, EioNamesFileLayerAndOffset) {
    TAI_REQUIRE_TMAI(tmai);
    EioOnLayer3(tmai, tmai);
}

TEST_P(MappedFaults, EioOnAGgufLayer) {
    TAI_REQUIRE_TMAI(tmai);
    EioOnLayer3(tmai_gguf, tmai);
}

// EINTR and short reads (halved, or 100 bytes at first) are retried: every
// layer's image is the file's, with no load error.
TEST_P(MappedFaults, InterruptedAndShortReadsAreRetried) {
    TAI_REQUIRE_TMAI(tmai);
    TinyAIMappedModel *tm = tinyaiOpenMappedModel(tmai.c_str(), nullptr);
    ASSERT_NE(tm, nullptr) << LastError();
    for (int mode : {Faults::kEintrOncePerOffset, Faults::kHalve, Faults::kTinyOncePerOffset}) {
        SCOPED_TRACE(mode);
        tai_mapped_close(m_);
        m_ = nullptr;
        faults_.seen.clear();
        faults_.injected = 0;
        faults_.mode = Faults::kNone;
        Open(tmai);
        if (IsSkipped() || HasFatalFailure()) break;
        faults_.mode = mode;
        const int n = tinyaiGetMappedLayerCount(m_);
        for (int l : {0, 1, 2, n / 2, n - 1}) ExpectLayer(tmai, tm, l);
        EXPECT_GT(faults_.injected.load(), 0u);
        TinyAIMappedModelStats st;
        ASSERT_TRUE(tinyaiGetMappedModelStats(m_, &st));
        EXPECT_EQ(st.loadErrors, 0u);
    }
    tinyaiCloseMappedModel(tm);
}

// A GGUF file's layers are read through a ring of pieces in staging, built
// as they land: with pieces small enough that every layer goes round the
// ring many times, each image equals the .tmai file's, also through EINTR
// and short reads; an EIO is a clean error and the layer loads afterwards.
// The staging is the ring, smaller than a layer.
TEST_P(MappedFaults, GgufLayersGoRoundTheStagingRing) {
    TAI_REQUIRE_TMAI(tmai);
    TinyAIMappedModel *tm = tinyaiOpenMappedModel(tmai.c_str(), nullptr);
    ASSERT_NE(tm, nullptr) << LastError();
    for (size_t piece : {(size_t)4096, (size_t)64 << 10}) {
        for (int mode : {Faults::kNone, Faults::kEintrOncePerOffset, Faults::kHalve}) {
            SCOPED_TRACE("piece " + std::to_string(piece) + " mode " + std::to_string(mode));
            tai_mapped_close(m_);
            m_ = nullptr;
            faults_.seen.clear();
            faults_.mode = Faults::kNone;
            Open(tmai_gguf, piece);
            if (IsSkipped() || HasFatalFailure()) break;
            const int n = tinyaiGetMappedLayerCount(m_);
            size_t largest = 0;
            for (int l = 0; l < n; l++)
                largest = std::max(largest, (size_t)tinyaiGetLayerDescriptor(m_, l)->size);
            EXPECT_LT(tai_mapped_staging_bytes(m_), largest / 4) << "staging is a ring";
            faults_.mode = mode;
            for (int l = 0; l < n; l++) ExpectLayer(tmai, tm, l);
            TinyAIMappedModelStats st;
            ASSERT_TRUE(tinyaiGetMappedModelStats(m_, &st));
            EXPECT_EQ(st.loadErrors, 0u);
        }
        if (IsSkipped() || HasFatalFailure()) break;
        // EIO half way through layer 3 (after the ring went round)
        tai_mapped_close(m_);
        m_ = nullptr;
        faults_.mode = Faults::kNone;
        Open(tmai_gguf, piece);
        const TinyAILayerDescriptor d = *tinyaiGetLayerDescriptor(m_, 3);
        faults_.lo = d.offset + d.size / 2;
        faults_.hi = faults_.lo + 1;
        faults_.mode = Faults::kEioInRange;
        tinyaiClearError();
        EXPECT_EQ(tinyaiGetLayerWeights(m_, 3), nullptr);
        EXPECT_TRUE(Contains(LastError(), tmai_gguf + ": layer 3 (block 2): read of "))
            << LastError();
        EXPECT_TRUE(Contains(LastError(), "Input/output error")) << LastError();
        faults_.mode = Faults::kNone;
        ExpectLayer(tmai, tm, 3);
    }
    tinyaiCloseMappedModel(tm);
}

struct FreeDeleter {
    void operator()(void *p) const { std::free(p); }
};

// Reads past the cache: the file's bytes for any span inside a layer, also
// through EINTR and short reads; EIO a clean error naming the file, layer
// and offset; spans outside the layer and unusable buffers refused. The
// checksum pass reads the whole layer through a small buffer.
TEST_P(MappedFaults, SmallReadsPastTheCache) {
    TAI_REQUIRE_TMAI(tmai);
    Open(tmai);
    if (IsSkipped() || HasFatalFailure()) return;
    const size_t align = tai_mapped_read_align(m_);
    ASSERT_GE(align, 1u);
    ASSERT_LE(align, 4096u);
    const size_t cap = 64 << 10;
    std::unique_ptr<unsigned char, FreeDeleter> buf(
        static_cast<unsigned char *>(std::aligned_alloc(4096, cap)));
    ASSERT_TRUE(buf);
    const TinyAILayerDescriptor d = *tinyaiGetLayerDescriptor(m_, 0);
    const uint64_t off = d.offset + 4096 + 100; // neither end aligned
    const size_t len = 5000;
    ASSERT_LT(off + len, d.offset + d.size);
    const std::string want = ReadRange(tmai, off, len);
    ASSERT_EQ(want.size(), len);
    for (int mode : {Faults::kNone, Faults::kEintrOncePerOffset, Faults::kHalve,
                     Faults::kTinyOncePerOffset}) {
        SCOPED_TRACE(mode);
        faults_.seen.clear();
        faults_.mode = mode;
        const unsigned char *at = nullptr;
        ASSERT_EQ(tai_mapped_read(m_, 0, off, len, buf.get(), cap, &at), TINYAI_OK) << LastError();
        ASSERT_NE(at, nullptr);
        EXPECT_EQ(std::memcmp(at, want.data(), len), 0);
    }
    EXPECT_GT(faults_.injected.load(), 0u);
    faults_.mode = Faults::kNone;
    TinyAIMappedModelStats st;
    ASSERT_TRUE(tinyaiGetMappedModelStats(m_, &st));
    EXPECT_GE(st.bytesRead, 4 * len) << "reads past the cache count in bytesRead";

    // EIO: an error naming file, layer and offset; the buffer is the
    // caller's, nothing to leak
    faults_.lo = off;
    faults_.hi = off + len;
    faults_.mode = Faults::kEioInRange;
    const unsigned char *at = nullptr;
    EXPECT_EQ(tai_mapped_read(m_, 0, off, len, buf.get(), cap, &at), TINYAI_ERR_IO);
    std::string msg = LastError();
    EXPECT_TRUE(Contains(msg, tmai + ": layer 0 (token embedding): read of ")) << msg;
    EXPECT_TRUE(Contains(msg, "Input/output error")) << msg;
    // ... and the checksum pass over the layer fails the same way, then
    // passes once the disk is well again
    faults_.lo = d.offset;
    faults_.hi = d.offset + d.size;
    EXPECT_EQ(tai_mapped_verify(m_, 0, buf.get(), cap), TINYAI_ERR_IO);
    EXPECT_TRUE(Contains(LastError(), "layer 0 (token embedding)")) << LastError();
    faults_.mode = Faults::kNone;
    EXPECT_EQ(tai_mapped_verify(m_, 0, buf.get(), cap), TINYAI_OK) << LastError();

    // bad arguments
    EXPECT_EQ(tai_mapped_read(m_, -1, off, len, buf.get(), cap, &at), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_mapped_read(m_, tinyaiGetMappedLayerCount(m_), off, len, buf.get(), cap, &at),
              TINYAI_ERR_INVALID_ARG);
    EXPECT_TRUE(Contains(LastError(), "out of range")) << LastError();
    EXPECT_EQ(tai_mapped_read(m_, 1, off, len, buf.get(), cap, &at), TINYAI_ERR_INVALID_ARG)
        << "a span of layer 0 is outside layer 1";
    EXPECT_TRUE(Contains(LastError(), "outside layer 1")) << LastError();
    EXPECT_EQ(tai_mapped_read(m_, 0, d.offset + d.size - 10, 100, buf.get(), cap, &at),
              TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_mapped_read(m_, 0, d.offset - 1, 10, buf.get(), cap, &at),
              TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_mapped_read(m_, 0, off, len, buf.get(), len, &at), TINYAI_ERR_INVALID_ARG)
        << "no room for the alignment";
    EXPECT_TRUE(Contains(LastError(), "buffer must be")) << LastError();
    if (align > 1) {
        EXPECT_EQ(tai_mapped_read(m_, 0, off, len, buf.get() + 1, cap - 1, &at),
                  TINYAI_ERR_INVALID_ARG)
            << "misaligned";
    }
    EXPECT_EQ(tai_mapped_read(m_, 0, off, len, nullptr, cap, &at), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_mapped_read(m_, 0, off, len, buf.get(), cap, nullptr), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_mapped_verify(m_, -1, buf.get(), cap), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_mapped_verify(m_, 1, buf.get(), 2 * align), TINYAI_ERR_INVALID_ARG);
}

INSTANTIATE_TEST_SUITE_P(AllEngines, MappedFaults,
                         testing::Values(TINYAI_IO_URING, TINYAI_IO_PREAD, TINYAI_IO_MMAP),
                         [](const testing::TestParamInfo<TinyAIIOEngine> &i) {
                             return EngineName(i.param);
                         });

} // namespace
