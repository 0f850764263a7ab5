/*
 * core: performance counters through perf_event_open(2). Each counter is
 * tried alone first (one the CPU lacks must not sink the others), then the
 * ones that opened are opened again as one group, so that reading them all
 * is one read(2): a profile reads them around every layer.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "core/perfctr.h"

#include <errno.h>
#include <linux/perf_event.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const struct {
    const char *name;
    uint32_t type;
    uint64_t config;
} counters[TAI_PERFCTR_COUNT] = {
    {"cycles", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES},
    {"instructions", PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS},
    {"llc-references", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CACHE_REFERENCES},
    {"llc-misses", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CACHE_MISSES},
    {"branch-misses", PERF_TYPE_HARDWARE, PERF_COUNT_HW_BRANCH_MISSES},
    {"stalled-cycles-backend", PERF_TYPE_HARDWARE, PERF_COUNT_HW_STALLED_CYCLES_BACKEND},
    {"task-clock-ns", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK},
    {"page-faults", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS},
    {"context-switches", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CONTEXT_SWITCHES},
};

const char *tai_perfctr_name(int i) {
    return i >= 0 && i < TAI_PERFCTR_COUNT ? counters[i].name : "?";
}

bool tai_perfctr_is_hardware(int i) {
    return i >= 0 && i < TAI_PERFCTR_COUNT && counters[i].type == PERF_TYPE_HARDWARE;
}

static int open_one(int i, int exclude_kernel, int group) {
    struct perf_event_attr a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.type = counters[i].type;
    a.config = counters[i].config;
    a.read_format =
        PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING | PERF_FORMAT_GROUP;
    a.exclude_kernel = (unsigned)exclude_kernel;
    a.exclude_hv = 1;
    return (int)syscall(SYS_perf_event_open, &a, 0 /* this thread */, -1, group,
                        PERF_FLAG_FD_CLOEXEC);
}

int tai_perfctr_open(tai_perfctr *c, char *why, size_t why_cap) {
    int hw_err = 0, exclude_kernel[TAI_PERFCTR_COUNT] = {0};
    bool ok[TAI_PERFCTR_COUNT] = {false};
    for (int i = 0; i < TAI_PERFCTR_COUNT; i++) {
        int fd = open_one(i, 0, -1);
        /* perf_event_paranoid 2 allows user space only */
        if (fd < 0 && (errno == EACCES || errno == EPERM)) {
            exclude_kernel[i] = 1;
            fd = open_one(i, 1, -1);
        }
        if (fd < 0 && counters[i].type == PERF_TYPE_HARDWARE && !hw_err) hw_err = errno;
        ok[i] = fd >= 0;
        if (fd >= 0) close(fd);
    }
    /* the group: the first that opened leads */
    int n = 0;
    c->leader = -1;
    for (int i = 0; i < TAI_PERFCTR_COUNT; i++) {
        c->fd[i] = -1;
        if (!ok[i]) continue;
        const int fd = open_one(i, exclude_kernel[i], c->leader);
        if (fd < 0) continue;
        if (c->leader < 0) c->leader = fd;
        c->fd[i] = fd;
        c->slot[i] = n++;
    }
    if (why && why_cap) {
        int hw = 0;
        for (int i = 0; i < TAI_PERFCTR_COUNT; i++) hw += tai_perfctr_is_hardware(i) && c->fd[i] >= 0;
        if (hw == 0)
            snprintf(why, why_cap,
                     "hardware counters are not exposed here (perf_event_open: %s%s)",
                     strerror(hw_err),
                     hw_err == ENOENT ? ": no CPU performance-monitoring unit, as in many VMs"
                     : hw_err == EACCES || hw_err == EPERM
                         ? ": see /proc/sys/kernel/perf_event_paranoid"
                         : "");
        else
            why[0] = 0;
    }
    return n;
}

void tai_perfctr_read(const tai_perfctr *c, uint64_t out[TAI_PERFCTR_COUNT]) {
    memset(out, 0, sizeof(uint64_t) * TAI_PERFCTR_COUNT);
    /* nr, time enabled, time running, then the values in opening order */
    uint64_t v[3 + TAI_PERFCTR_COUNT];
    if (c->leader < 0 || read(c->leader, v, sizeof v) < (ssize_t)(3 * sizeof(uint64_t))) return;
    /* value * enabled / running: the estimate while multiplexed */
    const double scale = v[2] && v[2] < v[1] ? (double)v[1] / (double)v[2] : 1.0;
    for (int i = 0; i < TAI_PERFCTR_COUNT; i++)
        if (c->fd[i] >= 0 && (uint64_t)c->slot[i] < v[0])
            out[i] = (uint64_t)((double)v[3 + c->slot[i]] * scale);
}

void tai_perfctr_close(tai_perfctr *c) {
    for (int i = 0; i < TAI_PERFCTR_COUNT; i++) {
        if (c->fd[i] >= 0) close(c->fd[i]);
        c->fd[i] = -1;
    }
    c->leader = -1;
}
