/*
 * kernels/matmul_amx.c: the blocked loop of the block-type products on
 * AMX tiles (layer: kernels). Compiled alone with the AMX flags (see BUILD);
 * used by the AVX-512 kernels for their full column groups where the CPU
 * has AMX-INT8 and Linux grants the process its tile data
 * (tai_k_amx_ready).
 *
 * Per block of 32 weights of a 16-row panel and up to 16 columns (two
 * groups of 8), one TDPBSUD multiplies the columns' signed q8a activations
 * (A: 16 rows of 32 bytes, copied side by side for the tiles by
 * tai_k_q_pack_amx) by the panel's unsigned codes (B: 8 rows of 64 bytes,
 * the packed layout's 8 vectors of one block, Q4 nibbles split to 0..15):
 * 8192 products at once into 16 x 16 exact 32-bit sums. The float epilogue
 * is the VNNI loop's (q_float.h: sum + n8 / n128, to float, times d_x, FMA
 * with d_w into the column's accumulator, Q4_1's minimum term), so a
 * column's result is the same bits whichever loop computed it (batch
 * invariance: a step of 16 columns and one of 3 give each column the same
 * logits). A lone group of 8 runs on the same tiles with rows 8-15 zero.
 */
#include "kernels/kernels.h"
#include "kernels/kernels_internal.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

#include "kernels/q_float.h"
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static int amx_ok;
static int amx_disabled;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

static void amx_probe(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
    if (!((d >> 24) & 1) || !((d >> 25) & 1)) return; /* AMX-TILE, AMX-INT8 */
    /* Linux (5.16+) hands out the 8 KiB of tile state only on request */
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) return;
    amx_ok = 1;
}

int tai_k_amx_ready(void) {
    pthread_once(&amx_once, amx_probe);
    return amx_ok && !amx_disabled;
}

void tai_k_amx_set_disabled(int disabled) { amx_disabled = disabled != 0; }

int tai_amx_active(void) { return tai_k_amx_ready(); }
void tai_amx_set_enabled(int enabled) { tai_k_amx_set_disabled(!enabled); }

/* Palette 1: tiles 0-3 the sums of four blocks (16 columns x 16 rows,
 * 32-bit), tiles 4-5 activations (16 x 32 bytes), tiles 6-7 codes (8 x 64
 * bytes): four blocks in flight, so the tile unit's latency overlaps the
 * epilogues. */
void tai_k_amx_begin(void) {
    tai_tilecfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 4; t++) c.rows[t] = 16, c.colsb[t] = 64;
    for (int t = 4; t < 6; t++) c.rows[t] = 16, c.colsb[t] = 32;
    for (int t = 6; t < 8; t++) c.rows[t] = 8, c.colsb[t] = 64;
    /* the stores above made before the load: GCC 12 does not count
     * ldtilecfg as reading c, and with some flags (-march=native) drops
     * them, leaving a configuration the CPU faults on */
    __asm__ volatile("" : : "m"(c) : "memory");
    _tile_loadconfig(&c);
}

void tai_k_amx_end(void) { _tile_release(); }

void tai_k_q_pack_amx(int8_t *xq, const tai_block_q8a *x0, const tai_block_q8a *x1, int64_t bl) {
    for (int64_t b = 0; b < bl; b++) {
        int8_t *d = xq + b * 512;
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            _mm256_store_si256((__m256i *)(d + 32 * j), _mm256_loadu_si256((const __m256i *)x0[b * 8 + j].qs));
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            _mm256_store_si256((__m256i *)(d + 256 + 32 * j),
                               x1 ? _mm256_loadu_si256((const __m256i *)x1[b * 8 + j].qs)
                                  : _mm256_setzero_si256());
    }
}

/* The products of block b into tile C (A and B tiles by parity). */
#define TILE_BLOCK(C, AT, BT, b)                                                       \
    do {                                                                               \
        _tile_zero(C);                                                                 \
        _tile_loadd(AT, xq + (size_t)(b) * 512, 32);                                   \
        _tile_loadd(BT, CODES_AT(b), 64);                                              \
        _tile_dpbsud(C, AT, BT);                                                       \
    } while (0)
/* Block b's codes: the decoded slice's (512 bytes a block), or with
 * `panel` (Q8_0, whose packed codes already are the tile's layout) block
 * pb0 + b's place in the packed panel itself: no copy. */
#define CODES_AT(b)                                                                    \
    (panel ? panel + tai_qcodes_at(TAI_TYPE_Q8_0, pb0 + (b)) : codes + (size_t)(b) * 512)

/* The epilogue of block b from its sums: columns [0, 8) from x0, [8, 16)
 * from x1 (W 8: x0's only). */
static inline __attribute__((always_inline)) void epilogue(const int32_t *sums, const float *dwf,
                                                           const float *mwf, const tai_block_q8a *x0,
                                                           const tai_block_q8a *x1, int64_t b,
                                                           __m512 acc[16], int T, int W) {
    const __m512 dw = _mm512_load_ps(dwf + b * TAI_PANEL);
    const __m512 mw = T == 2 ? _mm512_load_ps(mwf + b * TAI_PANEL) : dw;
#pragma GCC unroll 16
    for (int j = 0; j < W; j++) {
        const tai_block_q8a *a = j < 8 ? &x0[b * 8 + j] : &x1[b * 8 + j - 8];
        __m512i si = _mm512_load_si512(sums + 16 * j);
        if (T == 0) si = _mm512_add_epi32(si, _mm512_set1_epi32(a->n128));
        else if (T == 1) si = _mm512_add_epi32(si, _mm512_set1_epi32(a->n8));
        acc[j] = tai_q_scale16(si, a, dw, mw, acc[j], T);
    }
}

static inline __attribute__((always_inline)) void
tile_loop(const uint8_t *codes, const uint8_t *panel, int64_t pb0, const float *dwf,
          const float *mwf, const int8_t *xq, const tai_block_q8a *x0, const tai_block_q8a *x1,
          int64_t bl, float *y, int64_t ys, int64_t row0, __mmask16 mk, int first, int T, int W,
          const char *pf, size_t pf_bytes, int PF) {
    /* PF: pf_bytes from pf prefetched a few lines a block, spread over the
     * loop (a separate instance: the loop without it stays as it was), into
     * L2 only: into L1 they held the fill buffers the tile and epilogue
     * loads need (SmolLM2's products at 16 columns, a step's worth timed
     * alone: 7.4-7.6 -> 7.0-7.2 ms, the head 1.8-2.3 -> 1.6-1.8) */
    const char *const pf_end = PF ? pf + pf_bytes : NULL;
    const size_t pf_step =
        PF ? ((pf_bytes + 63) / 64 + (size_t)bl - 1) / (size_t)(bl > 0 ? bl : 1) * 64 : 0;
    __m512 acc[16];
    tai_q_acc_load(acc, y, ys, row0, mk, first);
    if (W == 16) tai_q_acc_load(acc + 8, y + 8 * ys, ys, row0, mk, first);
    _Alignas(64) int32_t sums[4][16 * 16];
    int64_t b = 0;
    for (; b + 4 <= bl; b += 4) {
        TILE_BLOCK(0, 4, 6, b);
        TILE_BLOCK(1, 5, 7, b + 1);
        TILE_BLOCK(2, 4, 6, b + 2);
        TILE_BLOCK(3, 5, 7, b + 3);
        _tile_stored(0, sums[0], 64);
        _tile_stored(1, sums[1], 64);
        _tile_stored(2, sums[2], 64);
        _tile_stored(3, sums[3], 64);
        if (PF)
            for (const char *e = pf + 4 * pf_step; pf < pf_end && pf < e; pf += 64)
                _mm_prefetch(pf, _MM_HINT_T1);
        for (int u = 0; u < 4; u++) epilogue(sums[u], dwf, mwf, x0, x1, b + u, acc, T, W);
    }
    for (; b < bl; b++) {
        if (PF)
            for (const char *e = pf + pf_step; pf < pf_end && pf < e; pf += 64)
                _mm_prefetch(pf, _MM_HINT_T1);
        TILE_BLOCK(0, 4, 6, b);
        _tile_stored(0, sums[0], 64);
        epilogue(sums[0], dwf, mwf, x0, x1, b, acc, T, W);
    }
    tai_q_acc_store(acc, y, ys, row0, mk);
    if (W == 16) tai_q_acc_store(acc + 8, y + 8 * ys, ys, row0, mk);
}

/* As the VNNI loop's q_tile, for two groups (x1 not NULL) or one: blocks
 * [0, bl) of a decoded panel slice (codes 512 bytes per block, 0..15 for
 * Q4; scales dwf, minimums mwf, 16 floats per block) times the columns
 * (their codes packed by tai_k_q_pack_amx in xq; scales and sums read from
 * the blocks x0 and x1, [b][8] each), added to (or, when `first`, stored
 * into) y's columns from y on, ys apart. T: 0 Q8_0, 1 Q4_0, 2 Q4_1. With
 * `panel` (T 0 only: the callers pass NULL for the Q4 types, whose codes
 * must be decoded), the codes are read from the packed panel's block
 * pb0 + b instead of `codes` (CODES_AT). The epilogues run in block order,
 * so the sums are the VNNI loop's. */
void tai_k_q_tile_amx(const uint8_t *codes, const uint8_t *panel, int64_t pb0, const float *dwf,
                      const float *mwf, const int8_t *xq, const tai_block_q8a *x0,
                      const tai_block_q8a *x1, int64_t bl, float *y, int64_t ys, int64_t row0,
                      __mmask16 mk, int first, int T, const char *pf, size_t pf_bytes) {
#define LOOP(TT, WW)                                                                        \
    do {                                                                                    \
        if (pf && WW == 16)                                                                 \
            tile_loop(codes, panel, pb0, dwf, mwf, xq, x0, x1, bl, y, ys, row0, mk, first,  \
                      TT, WW, pf, pf_bytes, 1);                                             \
        else                                                                                \
            tile_loop(codes, panel, pb0, dwf, mwf, xq, x0, x1, bl, y, ys, row0, mk, first,  \
                      TT, WW, NULL, 0, 0);                                                  \
    } while (0)
    if (x1) {
        if (T == 0) LOOP(0, 16);
        else if (T == 1) LOOP(1, 16);
        else LOOP(2, 16);
    } else {
        if (T == 0) LOOP(0, 8);
        else if (T == 1) LOOP(1, 8);
        else LOOP(2, 8);
    }
#undef LOOP
}

#else
int tai_amx_active(void) { return 0; }
void tai_amx_set_enabled(int enabled) { (void)enabled; }
#endif /* __x86_64__ */
