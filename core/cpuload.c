/* core/cpuload.c: other work's CPU time over an interval; see cpuload.h. */
#include "core/cpuload.h"

#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/clock.h"

tai_cpu_mark tai_cpu_mark_now(void) {
    tai_cpu_mark m = {.wall = tai_now_s()};
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (f) {
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]) == 8) {
            const long hz = sysconf(_SC_CLK_TCK);
            /* user nice system [idle iowait] irq softirq steal */
            m.busy_s = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)(hz > 0 ? hz : 100);
            m.ok = 1;
        }
        fclose(f);
    }
    struct rusage self, kids;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    m.own_s = (double)(self.ru_utime.tv_sec + self.ru_stime.tv_sec + kids.ru_utime.tv_sec +
                       kids.ru_stime.tv_sec) +
              1e-6 * (double)(self.ru_utime.tv_usec + self.ru_stime.tv_usec + kids.ru_utime.tv_usec +
                              kids.ru_stime.tv_usec);
    return m;
}

double tai_cpu_other_cores(tai_cpu_mark a, tai_cpu_mark b) {
    const double wall = b.wall - a.wall;
    if (!a.ok || !b.ok || wall <= 0) return -1;
    const double other = (b.busy_s - a.busy_s - (b.own_s - a.own_s)) / wall;
    return other > 0 ? other : 0;
}
