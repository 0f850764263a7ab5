/*
 * runtime/llm: <tinyai/utils/simd.h>, the SIMD kernels of a model's CPU
 * device per op family (offload/cpu: tai_cpu_device_set_family, _level).
 */
#include <stdio.h>
#include <string.h>

#include <tinyai/utils/simd.h>

#include "core/error.h"
#include "offload/cpu/cpu.h"
#include "runtime/llm/llm_internal.h"

/* The device's family for an op type; -1 for none. */
static int family_of(TinyAISIMDOpType op) {
    switch (op) {
    case TINYAI_SIMD_OP_MATRIX_MUL: return TAI_CPU_MATMUL;
    case TINYAI_SIMD_OP_ACTIVATION: return TAI_CPU_ACTIVATION;
    case TINYAI_SIMD_OP_ATTENTION: return TAI_CPU_ATTENTION;
    default: return -1;
    }
}

/* Whether the space-separated feature list names `f`. */
static bool has(const char *list, const char *f) {
    const size_t n = strlen(f);
    for (const char *p = list; (p = strstr(p, f)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == 0 || p[n] == ' ')) return true;
    return false;
}

TinyAISIMDCapabilities tinyaiGetSIMDCapabilities(void) {
    TinyAISIMDCapabilities c;
    memset(&c, 0, sizeof c);
    const char *f = tai_cpu_feature_list();
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    c.sse42 = __builtin_cpu_supports("sse4.2");
    c.avx = __builtin_cpu_supports("avx");
#endif
    c.avx2 = has(f, "avx2");
    c.fma = has(f, "fma");
    c.f16c = has(f, "f16c");
    c.avx512f = has(f, "avx512f");
    c.avx512bw = has(f, "avx512bw");
    c.avx512vl = has(f, "avx512vl");
    c.avx512dq = has(f, "avx512dq");
    c.avx512vnni = has(f, "avx512vnni");
    c.amxInt8 = has(f, "amx-int8");
    c.maxLevel = tai_cpu_variant_supported("avx512") == 1 ? 2
                 : tai_cpu_variant_supported("avx2") == 1 ? 1
                                                           : 0;
    c.levelNames[0] = "scalar";
    c.levelNames[1] = "avx2";
    c.levelNames[2] = "avx512";
    c.levelVectorBits[0] = 0;
    c.levelVectorBits[1] = 256;
    c.levelVectorBits[2] = 512;
    snprintf(c.cpu, sizeof c.cpu, "%s", tai_cpu_name());
    return c;
}

bool tinyaiEnableSIMD(TinyAIModel *m, TinyAISIMDOpType op, bool enable) {
    if (!m) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiEnableSIMD: NULL model");
        return false;
    }
    if (op == TINYAI_SIMD_OP_CONV) {
        tai_error(TINYAI_ERR_UNSUPPORTED,
                  "tinyaiEnableSIMD: TinyAI runs no convolutions (Llama-family models have none)");
        return false;
    }
    const int f = family_of(op);
    if (f < 0) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiEnableSIMD: unknown op type %d", (int)op);
        return false;
    }
    return tai_cpu_device_set_family(m->dev, f, enable) == TINYAI_OK;
}

void tinyaiSetSIMDOptimizationLevel(TinyAIModel *m, int level) {
    if (!m) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiSetSIMDOptimizationLevel: NULL model");
        return;
    }
    (void)tai_cpu_device_set_level(m->dev, level);
}

TinyAIStatus tinyaiGetSIMDState(const TinyAIModel *m, TinyAISIMDState *out) {
    if (!m || !out) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiGetSIMDState: NULL argument");
    memset(out, 0, sizeof *out);
    out->level = tai_cpu_device_level(m->dev);
    for (int op = 0; op < 4; op++) {
        const int f = family_of((TinyAISIMDOpType)op);
        if (f < 0) continue;
        out->enabled[op] = tai_cpu_device_family_enabled(m->dev, f);
        out->kernel[op] = tai_cpu_device_family_variant(m->dev, f);
    }
    return TINYAI_OK;
}
