/*
 * core/cpuload.h: how much CPU time other work took over an interval. A
 * mark records every CPU's busy time (/proc/stat: user, nice, system, irq,
 * softirq and the hypervisor's steal) and this process's own (getrusage,
 * waited-for children included); between two marks, the busy time that was
 * not this process's, per second of wall time, is how many cores other
 * work kept busy. Measurements taken while that is well above zero (a
 * calibration, a benchmark) are low.
 */
#ifndef TAI_CORE_CPULOAD_H
#define TAI_CORE_CPULOAD_H

typedef struct {
    double wall;   /* seconds, monotonic */
    double busy_s; /* all CPUs' busy seconds */
    double own_s;  /* this process's (and its waited-for children's) CPU seconds */
    int ok;        /* /proc/stat was read */
} tai_cpu_mark;

tai_cpu_mark tai_cpu_mark_now(void);
/* Cores other work kept busy between a and b (>= 0); -1 where either mark
 * could not read /proc/stat or no time passed. */
double tai_cpu_other_cores(tai_cpu_mark a, tai_cpu_mark b);

#endif
