/*
 * kernels/matmul_bf16.c: block-type products on AMX-BF16 tiles (layer:
 * kernels). Compiled alone with the AMX flags (see BUILD).
 *
 * The int8 products (matmul_avx512.c, matmul_amx.c) scale every block's
 * exact integer sums in floats: four vector operations per 16 sums, which
 * bound them at ~20 ns per 8,192 multiply-adds on a family 6 model 167
 * Xeon (bench/README.md). Here each weight is widened once per panel to
 * bfloat16 (d * q + m in one fmaf, rounded to nearest even), each
 * activation likewise, and the tile unit sums whole rows in floats with no
 * epilogue: a panel's widening is shared by all the columns, so this pays
 * from a few dozen columns on (a prompt) and loses for a handful (a
 * decoding step).
 *
 * Tiles (palette 1, all 16 rows x 64 bytes): C 0-3 the sums of two panels
 * x two groups of 16 columns, A 4-5 the groups' activations of one block
 * (16 columns x 32 values), B 6-7 the panels' weights of one block (16
 * pairs of values x 16 rows x 2). Per block the four products run in the
 * same order whatever the grouping, and a column's sums take nothing but
 * its own row of A, so a column's result does not depend on how many
 * columns share the call, on their order or on the thread count.
 */
#include "kernels/kernels.h"
#include "kernels/kernels_internal.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <pthread.h>

static int bf16_ok;
static pthread_once_t bf16_once = PTHREAD_ONCE_INIT;

static void bf16_probe(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
    bf16_ok = (d >> 22) & 1; /* AMX-BF16 */
}

int tai_bf16_ready(void) {
    pthread_once(&bf16_once, bf16_probe);
    return bf16_ok && tai_k_amx_ready(); /* the tile state granted, AMX not switched off */
}

static void tiles_begin(void) {
    tai_tilecfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) c.rows[t] = 16, c.colsb[t] = 64;
    __asm__ volatile("" : : "m"(c) : "memory"); /* see matmul_amx.c */
    _tile_loadconfig(&c);
}

/* Bytes of one group's activations (16 columns x nb blocks x 64 bytes)
 * and of one panel's widened weights (nb blocks x 1 KiB). */
static size_t group_bytes(int64_t nb) { return (size_t)nb * 1024; }

static int type_ok(tai_type t) {
    return t == TAI_TYPE_Q4_0 || t == TAI_TYPE_Q4_1 || t == TAI_TYPE_Q8_0;
}

size_t tai_matmul_bf16_scratch_bytes(int64_t n, int64_t ncols, int threads) {
    if (n <= 0 || n % TAI_QK != 0 || ncols <= 0 || threads < 1) return 0;
    const int64_t nb = n / TAI_QK, groups = (ncols + 15) / 16;
    /* the activations, then per thread two panels' weights and a 1 KiB
     * tile of sums for partial groups and panels */
    return (size_t)groups * group_bytes(nb) + (size_t)threads * (2 * group_bytes(nb) + 1024);
}

/* Panel p's weights, widened: out[b][kp][r][2] (bf16), kp the pair of
 * values 2 kp, 2 kp + 1 of block b, r the row. The packed layout's vector
 * g of a block holds values 4g..4g+3 of each row (core/types.h). */
static void widen_panel(tai_type t, const uint8_t *q, int64_t nb, uint16_t *out) {
    /* vpermw: bf16 lanes (v0 of rows 0-15, v1 of rows 0-15) -> (r, 2) pairs */
    const __m512i pairs =
        _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                         6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i m8 = _mm512_set1_epi32(0xff);
    for (int64_t b = 0; b < nb; b++) {
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(q + tai_qscales_at(t, b))));
        __m512 mw;
        if (t == TAI_TYPE_Q4_1)
            mw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(q + tai_qmins_at(t, b))));
        else /* codes stored with a bias of 8 (Q4_0) or 128 (Q8_0) */
            mw = _mm512_mul_ps(dw, _mm512_set1_ps(t == TAI_TYPE_Q4_0 ? -8.0f : -128.0f));
        const uint8_t *c = q + tai_qcodes_at(t, b);
        uint16_t *o = out + (size_t)b * 512;
        for (int g = 0; g < 8; g++) {
            __m512i w;
            if (t == TAI_TYPE_Q8_0) {
                w = _mm512_load_si512(c + 64 * g);
            } else { /* vector j's low nibbles are values of g = 2j, high of 2j + 1 */
                const __m512i v = _mm512_load_si512(c + 64 * (g >> 1));
                w = _mm512_and_si512(g & 1 ? _mm512_srli_epi32(v, 4) : v, _mm512_set1_epi8(0x0f));
            }
            __m512 f[4];
            for (int e = 0; e < 4; e++)
                f[e] = _mm512_fmadd_ps(
                    _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(w, 8 * e), m8)), dw, mw);
            _mm512_store_si512(o + (2 * g) * 32,
                               _mm512_permutexvar_epi16(pairs, (__m512i)_mm512_cvtne2ps_pbh(f[1], f[0])));
            _mm512_store_si512(o + (2 * g + 1) * 32,
                               _mm512_permutexvar_epi16(pairs, (__m512i)_mm512_cvtne2ps_pbh(f[3], f[2])));
        }
    }
}

typedef struct {
    tai_type t;
    const uint8_t *wp;
    size_t pb;
    const float *x;
    uint16_t *act; /* [group][b][16 columns][32] bf16 */
    uint8_t *thr;  /* per thread: two panels' weights, a tile of sums */
    size_t thr_bytes;
    float *y;
    int64_t rows, n, nb, ncols, groups, panels;
} bf16_job;

static void prep_worker(void *ctx, int i, int nth) {
    const bf16_job *j = ctx;
    const int64_t g0 = j->groups * i / nth, g1 = j->groups * (i + 1) / nth;
    for (int64_t g = g0; g < g1; g++)
        for (int64_t m = 0; m < 16; m++) {
            const int64_t col = g * 16 + m;
            for (int64_t b = 0; b < j->nb; b++) {
                uint16_t *d = j->act + ((size_t)(g * j->nb + b) * 16 + (size_t)m) * 32;
                if (col < j->ncols) {
                    const float *s = j->x + (size_t)col * (size_t)j->n + (size_t)b * 32;
                    _mm512_storeu_si512(d, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + 16),
                                                                        _mm512_loadu_ps(s)));
                } else {
                    _mm512_storeu_si512(d, _mm512_setzero_si512()); /* a column past the end */
                }
            }
        }
}

/* C tile `tile` (16 columns of group g x 16 rows of panel p) into y: whole
 * tiles straight, partial ones (the last group or panel) through `tmp`. */
#define STORE_TILE(tile, g, p)                                                                   \
    do {                                                                                         \
        const int64_t c0_ = (g) * 16, r0_ = (p) * 16;                                            \
        const int64_t nc_ = j->ncols - c0_ < 16 ? j->ncols - c0_ : 16;                           \
        const int64_t nr_ = j->rows - r0_ < 16 ? j->rows - r0_ : 16;                             \
        if (nc_ == 16 && nr_ == 16) {                                                            \
            _tile_stored(tile, j->y + c0_ * j->rows + r0_, (long)(j->rows * 4));                 \
        } else {                                                                                 \
            _tile_stored(tile, tmp, 64);                                                         \
            for (int64_t m_ = 0; m_ < nc_; m_++)                                                 \
                memcpy(j->y + (c0_ + m_) * j->rows + r0_, tmp + m_ * 16, (size_t)nr_ * 4);       \
        }                                                                                        \
    } while (0)

static void gemm_worker(void *ctx, int i, int nth) {
    const bf16_job *j = ctx;
    /* pairs of panels, split evenly */
    const int64_t pairs = (j->panels + 1) / 2;
    const int64_t q0 = pairs * i / nth, q1 = pairs * (i + 1) / nth;
    if (q1 <= q0) return;
    uint8_t *mine = j->thr + (size_t)i * j->thr_bytes;
    uint16_t *wa = (uint16_t *)mine, *wb = (uint16_t *)(mine + group_bytes(j->nb));
    float *tmp = (float *)(mine + 2 * group_bytes(j->nb));
    const size_t gb = group_bytes(j->nb) / 2; /* bf16 elements a group's (or panel's) block run */
    tiles_begin();
    for (int64_t q = q0; q < q1; q++) {
        const int64_t pa = 2 * q, pbn = pa + 1 < j->panels ? pa + 1 : -1;
        widen_panel(j->t, j->wp + (size_t)pa * j->pb, j->nb, wa);
        if (pbn >= 0) widen_panel(j->t, j->wp + (size_t)pbn * j->pb, j->nb, wb);
        else memset(wb, 0, group_bytes(j->nb)); /* no second panel: zeros, not stored */
        for (int64_t g = 0; g < j->groups; g += 2) {
            const int64_t g2 = g + 1 < j->groups ? g + 1 : g; /* a lone last group: itself twice */
            const uint16_t *a0 = j->act + (size_t)g * gb, *a1 = j->act + (size_t)g2 * gb;
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int64_t b = 0; b < j->nb; b++) {
                _tile_loadd(4, a0 + (size_t)b * 512, 64);
                _tile_loadd(5, a1 + (size_t)b * 512, 64);
                _tile_loadd(6, wa + (size_t)b * 512, 64);
                _tile_loadd(7, wb + (size_t)b * 512, 64);
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(1, 5, 6);
                _tile_dpbf16ps(2, 4, 7);
                _tile_dpbf16ps(3, 5, 7);
            }
            STORE_TILE(0, g, pa);
            if (g2 != g) STORE_TILE(1, g2, pa);
            if (pbn >= 0) {
                STORE_TILE(2, g, pbn);
                if (g2 != g) STORE_TILE(3, g2, pbn);
            }
        }
    }
    _tile_release();
}

int tai_matmul_bf16(tai_pool *pool, tai_type t, const void *wp, int64_t rows, int64_t n,
                    const float *x, float *y, int64_t ncols, void *scratch) {
    if (!tai_bf16_ready() || !type_ok(t) || !wp || !x || !y || !scratch || rows <= 0 || n <= 0 ||
        n % TAI_QK != 0 || ncols <= 0 || ((uintptr_t)scratch & 63) != 0)
        return 0;
    const int nth = tai_pool_size(pool);
    const int64_t nb = n / TAI_QK, groups = (ncols + 15) / 16;
    bf16_job j = {
        .t = t,
        .wp = wp,
        .pb = tai_pack_panel_bytes(t, n),
        .x = x,
        .act = scratch,
        .thr = (uint8_t *)scratch + (size_t)groups * group_bytes(nb),
        .thr_bytes = 2 * group_bytes(nb) + 1024,
        .y = y,
        .rows = rows,
        .n = n,
        .nb = nb,
        .ncols = ncols,
        .groups = groups,
        .panels = (rows + TAI_PANEL - 1) / TAI_PANEL,
    };
    if (nth > 1 && groups > 1) tai_pool_run(pool, prep_worker, &j);
    else prep_worker(&j, 0, 1);
    if (nth > 1 && j.panels > 2) tai_pool_run(pool, gemm_worker, &j);
    else gemm_worker(&j, 0, 1);
    return 1;
}

#else
int tai_bf16_ready(void) { return 0; }
size_t tai_matmul_bf16_scratch_bytes(int64_t n, int64_t ncols, int threads) {
    (void)n, (void)ncols, (void)threads;
    return 0;
}
int tai_matmul_bf16(tai_pool *pool, tai_type t, const void *wp, int64_t rows, int64_t n,
                    const float *x, float *y, int64_t ncols, void *scratch) {
    (void)pool, (void)t, (void)wp, (void)rows, (void)n, (void)x, (void)y, (void)ncols, (void)scratch;
    return 0;
}
#endif /* __x86_64__ */
