// io/ fallback: where io_uring is forbidden (here by a seccomp filter that
// makes io_uring_setup fail with EPERM, as default container profiles do),
// TAI_IO_AUTO runs the pread engine and says why, reads still work, and an
// explicit TAI_IO_URING fails with -EPERM.
//
// Seccomp filters are inherited by every thread created later and cannot be
// removed, so the filter is installed in a forked child; the child reports
// through its exit status (0, or the number of the first check that failed).
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <iostream>

#include "tests/io/io_test_util.h"

namespace {

using tai_io_test::Buffer;
using tai_io_test::FirstDiff;
using tai_io_test::TestFile;

#if defined(__x86_64__)
#define TEST_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define TEST_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#ifdef TEST_AUDIT_ARCH
// io_uring_setup -> EPERM, everything else allowed.
int ForbidIoUring() {
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TEST_AUDIT_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog;
    prog.len = sizeof filter / sizeof filter[0];
    prog.filter = filter;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

// The child's checks; returns 0 or the number of the failed check.
int ChildChecks(const TestFile &tf) {
    if (ForbidIoUring() != 0) return 1;
    // The filter works: the raw system call is refused.
    if (syscall(__NR_io_uring_setup, 4, nullptr) != -1 || errno != EPERM) return 2;

    tai_io_config cfg = tai_io_default_config(); // AUTO
    tai_io *io = nullptr;
    if (tai_io_create(&cfg, &io) != 0) return 3;
    if (tai_io_engine(io) != TAI_IO_PREAD) return 4;
    const char *why = tai_io_fallback_reason(io);
    if (!why || !strstr(why, "Operation not permitted")) return 5;
    if (!strstr(why, "io_uring_queue_init")) return 6;
    tai_io_file *f = nullptr;
    if (tai_io_open(io, tf.path.c_str(), &f) != 0) return 7;
    Buffer buf(tf.bytes.size());
    if (tai_io_read(io, f, 0, tf.bytes.size(), buf.data(), nullptr) != 0) return 8;
    if (FirstDiff(buf.data(), tf.bytes.data(), tf.bytes.size()) != -1) return 9;
    tai_io_destroy(io);

    cfg.kind = TAI_IO_URING;
    io = reinterpret_cast<tai_io *>(1);
    if (tai_io_create(&cfg, &io) != -EPERM) return 10;
    if (io != nullptr) return 11;
    return 0;
}
#endif

TEST(Fallback, SeccompForbidsIoUring) {
#ifndef TEST_AUDIT_ARCH
    GTEST_SKIP() << "no seccomp architecture constant for this CPU";
#else
    TestFile tf(tai_io_test::kMiB + 123);
    fflush(nullptr);
    pid_t pid = fork();
    ASSERT_GE(pid, 0) << strerror(errno);
    if (pid == 0) _exit(ChildChecks(tf));
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "child died, status " << status;
    const char *what[] = {
        "ok",
        "installing the seccomp filter",
        "the filter did not make io_uring_setup fail with EPERM",
        "tai_io_create(AUTO) failed",
        "AUTO did not fall back to pread",
        "fallback reason does not mention 'Operation not permitted'",
        "fallback reason does not name io_uring_queue_init",
        "tai_io_open failed",
        "read through the fallback engine failed",
        "read through the fallback engine gave wrong bytes",
        "tai_io_create(URING) did not fail with -EPERM",
        "tai_io_create(URING) failed but set *out",
    };
    int code = WEXITSTATUS(status);
    EXPECT_EQ(code, 0) << "child check " << code << ": "
                       << (code < int(sizeof what / sizeof what[0]) ? what[code] : "?");
#endif
}

// Without the filter, AUTO gets io_uring here (or says why not).
TEST(Fallback, AutoWithoutFilter) {
    tai_io_config cfg = tai_io_default_config();
    tai_io *io = nullptr;
    ASSERT_EQ(tai_io_create(&cfg, &io), 0);
    if (tai_io_engine(io) == TAI_IO_PREAD)
        std::cout << "note: io_uring unavailable here: " << tai_io_fallback_reason(io) << "\n";
    else
        EXPECT_EQ(tai_io_engine(io), TAI_IO_URING);
    tai_io_destroy(io);
}

}  // namespace
