/*
 * core: the monotonic clock the runtime times itself with (cache
 * stall and load times, memory-plan probes, scheduler calibration).
 */
#ifndef TAI_CORE_CLOCK_H
#define TAI_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t tai_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline double tai_now_s(void) { return (double)tai_now_ns() * 1e-9; }

#endif
