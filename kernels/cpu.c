/*
 * kernels/cpu.c: which instruction sets this CPU and OS can run (layer:
 * kernels). This is the one piece of global state of kernels/: the features
 * are detected once (pthread_once) and never change afterwards.
 *
 * An ISA needs both the CPU feature bits (CPUID) and the OS saving the
 * matching register state on context switches (XCR0 via XGETBV, which is
 * only legal once CPUID reports OSXSAVE).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "kernels/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

static pthread_once_t detect_once = PTHREAD_ONCE_INIT;
static int have[TAI_ISA_COUNT]; /* written once under detect_once */
static char brand[49];          /* likewise: CPUID brand string */
static char features[160];      /* likewise: the features the kernels use */
static char signature[64];      /* likewise: vendor, family, model, stepping */

#if defined(__x86_64__) || defined(__i386__)
static void add_feature(int on, const char *name) {
    size_t off = strlen(features);
    if (on) snprintf(features + off, sizeof features - off, "%s%s", off ? " " : "", name);
}

/* XGETBV(0) by its opcode so this file needs no -mxsave. */
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void detect_brand(void) {
    unsigned r[12];
    if (__get_cpuid_max(0x80000000u, NULL) < 0x80000004u) return;
    for (unsigned i = 0; i < 3; i++)
        __get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
    memcpy(brand, r, 48);
    brand[48] = 0;
    /* trim the padding some vendors put around the name */
    char *p = brand;
    while (*p == ' ') p++;
    memmove(brand, p, strlen(p) + 1);
    for (size_t n = strlen(brand); n > 0 && brand[n - 1] == ' '; n--) brand[n - 1] = 0;
}

static void detect(void) {
    unsigned a, b, c, d;
    have[TAI_ISA_SCALAR] = 1;
    detect_brand();
    unsigned v[4] = {0, 0, 0, 0};
    char vendor[13] = "";
    if (__get_cpuid(0, &v[0], &v[1], &v[2], &v[3])) {
        memcpy(vendor, &v[1], 4); /* EBX, EDX, ECX */
        memcpy(vendor + 4, &v[3], 4);
        memcpy(vendor + 8, &v[2], 4);
        vendor[12] = 0;
    }
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    {
        /* display family and model, with the extended fields as the SDM says */
        unsigned fam = (a >> 8) & 0xf, model = (a >> 4) & 0xf, step = a & 0xf;
        if (fam == 0xf) fam += (a >> 20) & 0xff;
        if (fam == 0x6 || fam >= 0xf) model += ((a >> 16) & 0xf) << 4;
        snprintf(signature, sizeof signature, "%s-%u-%u-%u", vendor[0] ? vendor : "x86", fam,
                 model, step);
    }
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    int fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return;
    uint64_t xcr0 = xgetbv0();
    int os_ymm = (xcr0 & 0x6) == 0x6;    /* SSE + AVX (YMM upper halves) */
    int os_zmm = (xcr0 & 0xe0) == 0xe0;  /* opmask, ZMM0-15 upper, ZMM16-31 */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
    int avx2 = (b >> 5) & 1;
    int avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1;
    int avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
    int vnni = (c >> 11) & 1;
    add_feature(avx2 && os_ymm, "avx2");
    add_feature(fma && os_ymm, "fma");
    add_feature(f16c && os_ymm, "f16c");
    add_feature(avx512f && os_zmm, "avx512f");
    add_feature(avx512bw && os_zmm, "avx512bw");
    add_feature(avx512vl && os_zmm, "avx512vl");
    add_feature(avx512dq && os_zmm, "avx512dq");
    add_feature(vnni && os_zmm, "avx512vnni");
    /* AMX-INT8 as the CPU reports it (the tile state is granted on first
     * use: tai_amx_active says whether the kernels run on it) */
    add_feature(((d >> 24) & 1) && ((d >> 25) & 1) && os_zmm, "amx-int8");
    have[TAI_ISA_AVX2] = os_ymm && avx2 && fma && f16c;
    have[TAI_ISA_AVX512] = have[TAI_ISA_AVX2] && os_zmm && avx512f && avx512bw &&
                           avx512vl && avx512dq && vnni;
}
#else
static void detect(void) { have[TAI_ISA_SCALAR] = 1; }
#endif

const char *tai_cpu_brand(void) {
    pthread_once(&detect_once, detect);
    return brand;
}

const char *tai_cpu_signature(void) {
    pthread_once(&detect_once, detect);
    return signature[0] ? signature : "unknown";
}

const char *tai_cpu_features(void) {
    pthread_once(&detect_once, detect);
    return features;
}

const char *tai_isa_name(tai_isa isa) {
    switch (isa) {
    case TAI_ISA_SCALAR: return "scalar";
    case TAI_ISA_AVX2: return "avx2";
    case TAI_ISA_AVX512: return "avx512";
    default: return "?";
    }
}

int tai_isa_parse(const char *name) {
    if (name == NULL) return -1;
    for (int i = 0; i < TAI_ISA_COUNT; i++)
        if (strcmp(name, tai_isa_name((tai_isa)i)) == 0) return i;
    return -1;
}

int tai_isa_supported(tai_isa isa) {
    if ((int)isa < 0 || isa >= TAI_ISA_COUNT) return 0;
    /* pthread_once makes the writes in detect() visible to every caller. */
    pthread_once(&detect_once, detect);
    return have[isa];
}

tai_isa tai_isa_best(tai_isa cap) {
    int top = (int)cap;
    if (top >= TAI_ISA_COUNT) top = TAI_ISA_COUNT - 1;
    for (int i = top; i > 0; i--)
        if (tai_isa_supported((tai_isa)i)) return (tai_isa)i;
    return TAI_ISA_SCALAR;
}
