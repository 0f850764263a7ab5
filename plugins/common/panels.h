/*
 * plugins/common/panels.h: the geometry of TinyAI's packed panel layout
 * (docs/PLUGINS.md, "Weights") for the plugins in this tree, written from
 * that page and <tinyai/plugin.h> alone. C and CUDA.
 */
#ifndef TAI_PLUGINS_COMMON_PANELS_H
#define TAI_PLUGINS_COMMON_PANELS_H

#include <stdbool.h>
#include <stdint.h>

#include <tinyai/plugin.h>

#ifdef __CUDACC__
#define PANELS_FN __host__ __device__ static inline
#else
#define PANELS_FN static inline
#endif

#define PANEL 16 /* rows per panel */
#define QK 32    /* weights per block */

PANELS_FN bool block_type(int32_t t) {
    return t == TINYAI_PLUGIN_Q8_0 || t == TINYAI_PLUGIN_Q4_0 || t == TINYAI_PLUGIN_Q4_1;
}
/* Bytes of one block's codes, and of a pair of blocks with their scales
 * (and minimums, Q4_1). */
PANELS_FN int code_bytes(int32_t t) { return t == TINYAI_PLUGIN_Q8_0 ? 512 : 256; }
PANELS_FN int pair_bytes(int32_t t) {
    return 2 * code_bytes(t) + (t == TINYAI_PLUGIN_Q4_1 ? 128 : 64);
}

/* Bytes of one 16-row panel of n elements per row; 0 for a bad type or n. */
PANELS_FN uint64_t panel_bytes(int32_t t, int64_t n) {
    if (n <= 0 || n > (1ll << 40)) return 0;
    uint64_t raw;
    if (t == TINYAI_PLUGIN_F32) raw = (uint64_t)n * PANEL * 4;
    else if (t == TINYAI_PLUGIN_F16) raw = (uint64_t)n * PANEL * 2;
    else if (block_type(t) && n % QK == 0) raw = (uint64_t)(n / QK + 1) / 2 * (uint64_t)pair_bytes(t);
    else return 0;
    return (raw + 63) / 64 * 64;
}

/* Bytes of a packed rows x n matrix (whole panels). */
PANELS_FN uint64_t matrix_bytes(int32_t t, int64_t rows, int64_t n) {
    return (uint64_t)((rows + PANEL - 1) / PANEL) * panel_bytes(t, n);
}

#endif
