/*
 * bench/: peak arithmetic loops. Each loop is one inline asm block whose
 * accumulators are register operands, so nothing is spilled (a C array of
 * vector accumulators is kept in memory by GCC) and the loop body is
 * exactly the instructions named: twelve independent multiply-adds per
 * iteration, enough to cover their latency on two pipes, plus a decrement
 * and a branch. Each function is compiled for its ISA through a target
 * attribute and only called after a CPUID check.
 */
#include "bench/peak.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

volatile float tai_peak_sink_f;
/* unsigned, and lanes combined by XOR: the sums overflow int by design */
volatile unsigned tai_peak_sink_i;

#define ACC_OPS(c)                                                                        \
    [a0] "+" c(a0), [a1] "+" c(a1), [a2] "+" c(a2), [a3] "+" c(a3), [a4] "+" c(a4),       \
        [a5] "+" c(a5), [a6] "+" c(a6), [a7] "+" c(a7), [a8] "+" c(a8), [a9] "+" c(a9), \
        [a10] "+" c(a10), [a11] "+" c(a11)

#define TWELVE(op)                                                                          \
    op " %[b], %[c], %[a0]\n\t" op " %[b], %[c], %[a1]\n\t" op " %[b], %[c], %[a2]\n\t" op \
       " %[b], %[c], %[a3]\n\t" op " %[b], %[c], %[a4]\n\t" op " %[b], %[c], %[a5]\n\t" op  \
       " %[b], %[c], %[a6]\n\t" op " %[b], %[c], %[a7]\n\t" op " %[b], %[c], %[a8]\n\t" op  \
       " %[b], %[c], %[a9]\n\t" op " %[b], %[c], %[a10]\n\t" op " %[b], %[c], %[a11]\n\t"

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static double fma_ymm(uint64_t iters) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
           a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    const __m256 b = _mm256_set1_ps(1e-3f), c = _mm256_set1_ps(1.0f);
    uint64_t n = iters;
    __asm__ volatile("1:\n\t" TWELVE("vfmadd231ps") "dec %[n]\n\t"
                     "jnz 1b\n\t"
                     : ACC_OPS("x"), [n] "+r"(n)
                     : [b] "x"(b), [c] "x"(c)
                     : "cc");
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    tai_peak_sink_f += _mm256_cvtss_f32(s);
    return (double)iters * 12 * 8 * 2;
}

__attribute__((target("avx512f"))) static double fma_zmm(uint64_t iters) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
           a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    const __m512 b = _mm512_set1_ps(1e-3f), c = _mm512_set1_ps(1.0f);
    uint64_t n = iters;
    __asm__ volatile("1:\n\t" TWELVE("vfmadd231ps") "dec %[n]\n\t"
                     "jnz 1b\n\t"
                     : ACC_OPS("v"), [n] "+r"(n)
                     : [b] "v"(b), [c] "v"(c)
                     : "cc");
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    tai_peak_sink_f += _mm512_reduce_add_ps(s);
    return (double)iters * 12 * 16 * 2;
}

__attribute__((target("avx512f,avx512vnni"))) static double dot_vnni(uint64_t iters) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
            a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    const __m512i b = _mm512_set1_epi8(3), c = _mm512_set1_epi8(-2);
    uint64_t n = iters;
    __asm__ volatile("1:\n\t" TWELVE("vpdpbusd") "dec %[n]\n\t"
                     "jnz 1b\n\t"
                     : ACC_OPS("v"), [n] "+r"(n)
                     : [b] "v"(b), [c] "v"(c)
                     : "cc");
    __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
                                 _mm512_add_epi32(_mm512_add_epi32(a4, a5), _mm512_add_epi32(a6, a7)));
    s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(a8, a9), _mm512_add_epi32(a10, a11)));
    unsigned lanes[16];
    _mm512_storeu_si512(lanes, s);
    for (int i = 0; i < 16; i++) tai_peak_sink_i ^= lanes[i];
    /* 16 lanes x 4 byte products each */
    return (double)iters * 12 * 64 * 2;
}

/* AVX2 has no int8 dot product: u8 x s8 pairs into int16 (vpmaddubsw),
 * int16 pairs into int32 against ones (vpmaddwd), then an add. Six
 * independent chains of three instructions fill the sixteen ymm registers
 * (six accumulators, six temporaries, three constants). */
__attribute__((target("avx2"))) static double dot_avx2(uint64_t iters) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
    __m256i t0, t1, t2, t3, t4, t5;
    const __m256i b = _mm256_set1_epi8(3), c = _mm256_set1_epi8(-2), one = _mm256_set1_epi16(1);
    uint64_t n = iters;
#define CHAIN(i)                                   \
    "vpmaddubsw %[c], %[b], %[t" #i "]\n\t"        \
    "vpmaddwd %[one], %[t" #i "], %[t" #i "]\n\t" \
    "vpaddd %[t" #i "], %[a" #i "], %[a" #i "]\n\t"
    __asm__ volatile("1:\n\t" CHAIN(0) CHAIN(1) CHAIN(2) CHAIN(3) CHAIN(4) CHAIN(5)
                     "dec %[n]\n\t"
                     "jnz 1b\n\t"
                     : [a0] "+x"(a0), [a1] "+x"(a1), [a2] "+x"(a2), [a3] "+x"(a3),
                       [a4] "+x"(a4), [a5] "+x"(a5), [t0] "=&x"(t0), [t1] "=&x"(t1),
                       [t2] "=&x"(t2), [t3] "=&x"(t3), [t4] "=&x"(t4), [t5] "=&x"(t5),
                       [n] "+r"(n)
                     : [b] "x"(b), [c] "x"(c), [one] "x"(one)
                     : "cc");
#undef CHAIN
    (void)t0, (void)t1, (void)t2, (void)t3, (void)t4, (void)t5;
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3)),
                                 _mm256_add_epi32(a4, a5));
    tai_peak_sink_i ^= (unsigned)_mm256_extract_epi32(s, 0);
    /* 32 byte products per chain */
    return (double)iters * 6 * 32 * 2;
}
#endif

const char *tai_peak_name(tai_peak_loop l) {
    switch (l) {
    case TAI_PEAK_FMA_YMM: return "fma ymm";
    case TAI_PEAK_FMA_ZMM: return "fma zmm";
    case TAI_PEAK_DOT_AVX2: return "int8 avx2";
    case TAI_PEAK_DOT_VNNI: return "vnni zmm";
    default: return "?";
    }
}

int tai_peak_supported(tai_peak_loop l) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    switch (l) {
    case TAI_PEAK_FMA_YMM: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case TAI_PEAK_FMA_ZMM: return __builtin_cpu_supports("avx512f");
    case TAI_PEAK_DOT_AVX2: return __builtin_cpu_supports("avx2");
    case TAI_PEAK_DOT_VNNI:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni");
    default: return 0;
    }
#else
    (void)l;
    return 0;
#endif
}

double tai_peak_run(tai_peak_loop l, uint64_t iters) {
    if (iters == 0 || !tai_peak_supported(l)) return 0.0;
#if defined(__x86_64__)
    switch (l) {
    case TAI_PEAK_FMA_YMM: return fma_ymm(iters);
    case TAI_PEAK_FMA_ZMM: return fma_zmm(iters);
    case TAI_PEAK_DOT_AVX2: return dot_avx2(iters);
    case TAI_PEAK_DOT_VNNI: return dot_vnni(iters);
    default: return 0.0;
    }
#else
    return 0.0;
#endif
}
