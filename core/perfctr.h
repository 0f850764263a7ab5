/*
 * core: the CPU's performance counters for one thread, read with
 * perf_event_open(2). A fixed list (so that every thread's set lines up):
 * the hardware counters where the kernel (or the hypervisor) exposes them,
 * and the kernel's software counters, which exist everywhere.
 */
#ifndef TAI_CORE_PERFCTR_H
#define TAI_CORE_PERFCTR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TAI_PERFCTR_COUNT 9

/* The counters, in the order tai_perfctr_read gives them. */
const char *tai_perfctr_name(int i); /* "cycles", "instructions", ... */
bool tai_perfctr_is_hardware(int i);

typedef struct {
    int fd[TAI_PERFCTR_COUNT]; /* -1: not available here */
    int slot[TAI_PERFCTR_COUNT]; /* its place in the group's read */
    int leader;                  /* the group's first fd (-1: none) */
} tai_perfctr;

/* Opens every counter it can for the calling thread (user and kernel
 * space where allowed, else user space only), as one group read at once.
 * Returns how many opened;
 * `why` (may be NULL) gets why the hardware counters did not, or "". */
int tai_perfctr_open(tai_perfctr *c, char *why, size_t why_cap);
/* The counts since opening, scaled for the time each counter was
 * multiplexed off the CPU; 0 for one that did not open. */
void tai_perfctr_read(const tai_perfctr *c, uint64_t out[TAI_PERFCTR_COUNT]);
void tai_perfctr_close(tai_perfctr *c);

#endif
