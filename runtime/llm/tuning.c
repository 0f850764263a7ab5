/*
 * runtime/llm/tuning.c: the public kernel-tuning API (<tinyai/llm.h>) over
 * the CPU device's tuning (offload/cpu/cpu.h), and its file.
 *
 * The file is line-oriented text:
 *     # TinyAI kernel tuning
 *     cpu GenuineIntel-6-143-8 avx512
 *     prefetch_l1 1024
 *     prefetch_l2 4096
 * The cpu line must match this machine (signature and the kernel variant in
 * use), so a home folder shared between machines never applies one
 * machine's figures to another.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tinyai/llm.h>

#include "offload/cpu/cpu.h"
#include "core/error.h"

static bool distance_ok(long v) { return v >= 0 && v <= TAI_CPU_MAX_PREFETCH && v % 64 == 0; }

static const char *variant(void) { return tai_cpu_best_variant(); }

TinyAIKernelTuning tinyaiGetKernelTuning(void) {
    TinyAIKernelTuning out;
    tai_cpu_tuning(&out.prefetchL1Bytes, &out.prefetchL2Bytes);
    return out;
}

TinyAIStatus tinyaiSetKernelTuning(const TinyAIKernelTuning *tuning) {
    if (!tuning) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiSetKernelTuning: NULL tuning");
    if (tai_cpu_set_tuning(tuning->prefetchL1Bytes, tuning->prefetchL2Bytes) != 0)
        return tai_error(TINYAI_ERR_INVALID_ARG,
                         "kernel tuning: prefetch distances must be multiples of 64 in 0..%d, "
                         "got %d and %d",
                         TAI_CPU_MAX_PREFETCH, tuning->prefetchL1Bytes, tuning->prefetchL2Bytes);
    return TINYAI_OK;
}

TinyAIStatus tinyaiTuneKernels(TinyAIKernelTuning *out, double *gain) {
    if (!out) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiTuneKernels: out is NULL");
    if (tai_cpu_tune(&out->prefetchL1Bytes, &out->prefetchL2Bytes, gain) != 0)
        return tai_error(TINYAI_ERR_NOMEM, "kernel tuning: out of memory for its buffers");
    return TINYAI_OK;
}

TinyAIStatus tinyaiSaveKernelTuning(const char *path, const TinyAIKernelTuning *tuning) {
    if (!path || !*path || !tuning)
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiSaveKernelTuning: NULL argument");
    const int l1 = tuning->prefetchL1Bytes, l2 = tuning->prefetchL2Bytes;
    if (!distance_ok(l1) || !distance_ok(l2))
        return tai_error(TINYAI_ERR_INVALID_ARG, "kernel tuning: values out of range");
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp) return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    snprintf(tmp, n, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        TinyAIStatus st = tai_error(TINYAI_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    fprintf(f, "# TinyAI kernel tuning\ncpu %s %s\nprefetch_l1 %d\nprefetch_l2 %d\n",
            tai_cpu_id(), variant(), l1, l2);
    int bad = ferror(f);
    if (fclose(f) != 0) bad = 1;
    if (bad || rename(tmp, path) != 0) {
        TinyAIStatus st = tai_error(TINYAI_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return st;
    }
    free(tmp);
    return TINYAI_OK;
}

TinyAIStatus tinyaiLoadKernelTuning(const char *path, TinyAIKernelTuning *out) {
    if (!path || !*path || !out)
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiLoadKernelTuning: NULL argument");
    FILE *f = fopen(path, "r");
    if (!f) return tai_error(TINYAI_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    char line[256], want[160];
    snprintf(want, sizeof want, "%s %s", tai_cpu_id(), variant());
    int l1 = -1, l2 = -1, have_cpu = 0, lineno = 0;
    TinyAIStatus st = TINYAI_OK;
    while (st == TINYAI_OK && fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        if (line[0] == '#' || line[0] == 0) continue;
        char key[32];
        int used = 0;
        if (sscanf(line, "%31s %n", key, &used) != 1) {
            st = tai_error(TINYAI_ERR_FORMAT, "%s:%d: malformed line", path, lineno);
        } else if (strcmp(key, "cpu") == 0) {
            if (strcmp(line + used, want) != 0)
                st = tai_error(TINYAI_ERR_UNSUPPORTED,
                               "%s: measured on \"%s\", this machine is \"%s\"", path,
                               line + used, want);
            have_cpu = 1;
        } else if (strcmp(key, "prefetch_l1") == 0 || strcmp(key, "prefetch_l2") == 0) {
            char *end = NULL;
            errno = 0;
            long v = strtol(line + used, &end, 10);
            if (end == line + used || *end != 0 || errno || !distance_ok(v))
                st = tai_error(TINYAI_ERR_FORMAT,
                               "%s:%d: %s must be a multiple of 64 in 0..%d, got \"%s\"", path,
                               lineno, key, TAI_CPU_MAX_PREFETCH, line + used);
            else if (key[10] == '1')
                l1 = (int)v;
            else
                l2 = (int)v;
        } else {
            st = tai_error(TINYAI_ERR_FORMAT, "%s:%d: unknown key \"%s\"", path, lineno, key);
        }
    }
    if (st == TINYAI_OK && ferror(f))
        st = tai_error(TINYAI_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    fclose(f);
    if (st != TINYAI_OK) return st;
    if (!have_cpu || l1 < 0 || l2 < 0)
        return tai_error(TINYAI_ERR_FORMAT, "%s: incomplete (needs cpu, prefetch_l1, prefetch_l2)",
                         path);
    out->prefetchL1Bytes = l1;
    out->prefetchL2Bytes = l2;
    return TINYAI_OK;
}
