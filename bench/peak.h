/* bench/: the machine's arithmetic ceilings per core, measured by loops of
 * independent multiply-add instructions (no memory operands). */
#ifndef TAI_BENCH_PEAK_H
#define TAI_BENCH_PEAK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TAI_PEAK_FMA_YMM = 0,  /* vfmadd231ps ymm (AVX2 + FMA): FP32 FLOPs */
    TAI_PEAK_FMA_ZMM = 1,  /* vfmadd231ps zmm (AVX-512F): FP32 FLOPs */
    TAI_PEAK_DOT_AVX2 = 2, /* vpmaddubsw + vpmaddwd + vpaddd ymm: int8 ops */
    TAI_PEAK_DOT_VNNI = 3, /* vpdpbusd zmm (AVX-512 VNNI): int8 ops */
    TAI_PEAK_COUNT = 4,
} tai_peak_loop;

/* "fma ymm", "fma zmm", "int8 avx2", "vnni zmm". */
const char *tai_peak_name(tai_peak_loop l);
/* Whether this CPU (and OS) can run loop l. */
int tai_peak_supported(tai_peak_loop l);
/* Runs `iters` iterations of loop l on the calling thread and returns the
 * operations done (one multiply-add = 2 operations); 0 if unsupported. */
double tai_peak_run(tai_peak_loop l, uint64_t iters);

#ifdef __cplusplus
}
#endif

#endif
