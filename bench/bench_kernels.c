/*
 * bench/bench_kernels: the CPU kernels' speed as ratios to ceilings measured
 * in the same run.
 *
 *   1. ceilings: streaming read bandwidth, peak FP32 FMA and int8 dot-product
 *      throughput, for 1..N threads;
 *   2. kernels, for every weight type and ISA variant the host supports:
 *      matrix-vector GB/s of packed weights as a fraction of the read
 *      bandwidth, matrix-matrix (512 columns) GFLOP/s as a fraction of the
 *      FP32 peak and, for F32, against OpenBLAS sgemm; weight repacking time;
 *   3. end to end: prompt and generation tok/s of the default model and of a
 *      synthetic 1.1B Q4_0 model, generation as a fraction of the bandwidth
 *      ceiling;
 *   4. the performance targets, met or not.
 *
 * Every figure is the median of --reps timed repetitions after an untimed
 * warm-up. Only the public kernel API is used (kernels/kernels.h). See
 * bench/README.md for what each figure means.
 */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tinyai/llm.h>

#include "bench/e2e.h"
#include "bench/membw.h"
#include "bench/peak.h"
#include "core/cpuload.h"
#include "kernels/kernels.h"

#define MAX_THREADS 256
#define GiB ((size_t)1 << 30)
#define MiB ((size_t)1 << 20)
#define MM_COLS 512

/* ---- Errors and allocation ----------------------------------------------- */

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_kernels: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* 64-byte aligned, never NULL (exits on failure). */
static void *xalloc(size_t bytes) {
    size_t sz = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, sz ? sz : 64);
    if (!p) die("out of memory (%zu MiB)", bytes / MiB + 1);
    return p;
}

/* Weights: in huge pages, as the runtime keeps a model's weights, so the
 * kernels meet the same TLB as when decoding. Never NULL (exits). */
static void *walloc(size_t bytes) {
    void *p = tai_bench_huge_alloc(bytes);
    if (!p) die("out of memory (%zu MiB)", bytes / MiB + 1);
    return p;
}

/* Appends one element to a growable array. */
#define PUSH(arr, n, cap, val)                                            \
    do {                                                                  \
        if ((n) == (cap)) {                                               \
            size_t nc_ = (cap) ? 2 * (cap) : 64;                          \
            void *p_ = realloc((arr), nc_ * sizeof *(arr));               \
            if (!p_) die("out of memory");                                \
            (arr) = p_;                                                   \
            (cap) = nc_;                                                  \
        }                                                                 \
        (arr)[(n)++] = (val);                                             \
    } while (0)

/* ---- Options --------------------------------------------------------------- */

typedef struct {
    int reps, reps_given, threads, quick, no_e2e, retune, untuned;
    const char *json;
    const char *types; /* --types: comma-separated names, NULL: all */
    const char *isas;  /* --isa: comma-separated variants, NULL: every one the CPU has */
} options;

static const char *USAGE =
    "usage: bench_kernels [--reps N] [--threads N] [--quick] [--no-e2e] [--json FILE|-]\n"
    "  --reps N      timed repetitions per figure, median reported (default 5; 1 with --quick)\n"
    "  --threads N   measure 1..N threads (default: all online cores)\n"
    "  --quick       a smoke run: fewer shapes and repetitions, small end-to-end case\n"
    "  --no-e2e      skip the end-to-end model runs\n"
    "  --retune      measure this CPU's kernel tuning again (else the saved one is used,\n"
    "                measured once if there is none, as tinyai does)\n"
    "  --untuned     run with the CPU's default tuning (no software prefetch)\n"
    "  --isa LIST    only these kernel variants (scalar, avx2, avx512; default: all the\n"
    "                CPU has)\n"
    "  --types LIST  only these weight types (e.g. Q4_K,Q5_K,Q6_K,Q8_0; default: all;\n"
    "                a shape whose rows are not whole blocks of a type skips it)\n"
    "  --json FILE   also write every figure as JSON to FILE ('-': stdout; the table\n"
    "                then goes to stderr)\n"
    "environment: TINYAI_MODEL (default model), TINYAI_CACHE (model cache folder)\n";

static int parse_int(const char *opt, const char *s, int lo, int hi) {
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "bench_kernels: %s needs a whole number in %d..%d, got '%s'\n", opt, lo,
                hi, s ? s : "");
        exit(2);
    }
    return (int)v;
}

static options parse_args(int argc, char **argv) {
    options o = {.reps = 5, .threads = 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            exit(0);
        } else if (!strcmp(a, "--quick")) {
            o.quick = 1;
        } else if (!strcmp(a, "--no-e2e")) {
            o.no_e2e = 1;
        } else if (!strcmp(a, "--retune")) {
            o.retune = 1;
        } else if (!strcmp(a, "--untuned")) {
            o.untuned = 1;
        } else if (!strcmp(a, "--reps")) {
            o.reps = parse_int(a, v, 1, 100);
            o.reps_given = 1;
            i++;
        } else if (!strcmp(a, "--threads")) {
            o.threads = parse_int(a, v, 1, MAX_THREADS);
            i++;
        } else if (!strcmp(a, "--isa")) {
            if (!v || !*v) {
                fprintf(stderr, "bench_kernels: --isa needs a list of variants\n");
                exit(2);
            }
            o.isas = v;
            i++;
        } else if (!strcmp(a, "--types")) {
            if (!v || !*v) {
                fprintf(stderr, "bench_kernels: --types needs a list of type names\n");
                exit(2);
            }
            o.types = v;
            i++;
        } else if (!strcmp(a, "--json")) {
            if (!v || !*v) {
                fprintf(stderr, "bench_kernels: --json needs a file name or '-'\n");
                exit(2);
            }
            o.json = v;
            i++;
        } else {
            fprintf(stderr, "bench_kernels: unknown option '%s' (see --help)\n", a);
            exit(2);
        }
    }
    if (o.quick && !o.reps_given) o.reps = 1;
    if (o.threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o.threads = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
    }
    return o;
}

/* ---- Machine ----------------------------------------------------------------- */

static void cpu_model(char *out, size_t cap) {
    snprintf(out, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char *c = strchr(line, ':');
        if (!c) continue;
        c++;
        while (*c == ' ' || *c == '\t') c++;
        snprintf(out, cap, "%s", c);
        out[strcspn(out, "\n")] = 0;
        break;
    }
    fclose(f);
}

static int read_small_file(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
    return 0;
}

/* Size of cpu0's level-3 cache (or of its highest level if it has no L3)
 * from sysfs; 0 if unknown. */
static size_t llc_bytes(int *level_out) {
    size_t best = 0;
    int best_level = 0;
    for (int i = 0; i < 16; i++) {
        char path[128], buf[64];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
        if (read_small_file(path, buf, sizeof buf) != 0) continue;
        int level = atoi(buf);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        if (read_small_file(path, buf, sizeof buf) != 0) continue;
        char *end;
        unsigned long long v = strtoull(buf, &end, 10);
        if (*end == 'K') v <<= 10;
        else if (*end == 'M') v <<= 20;
        else if (*end == 'G') v <<= 30;
        if (level > best_level || (level == best_level && v > best)) {
            best_level = level;
            best = (size_t)v;
        }
    }
    *level_out = best_level;
    return best;
}

/* The first three fields of /proc/loadavg ("?" if unreadable): other work
 * on the same cores shows up in every figure, most at the top thread count. */
static void load_average(char *out, size_t cap) {
    char buf[128];
    snprintf(out, cap, "?");
    if (read_small_file("/proc/loadavg", buf, sizeof buf) != 0) return;
    double a, b, c;
    if (sscanf(buf, "%lf %lf %lf", &a, &b, &c) == 3) snprintf(out, cap, "%.2f %.2f %.2f", a, b, c);
}

/* ---- Timing -------------------------------------------------------------------- */

/* Per-figure time budget: a figure whose warm-up shows that `reps`
 * repetitions would take longer gets fewer (at least one), and says so. */
static double g_budget_s = 4.0;

/* Runs fn once untimed, then up to `reps` timed times; median seconds per
 * call. *used receives the repetitions actually timed. */
static double timed_median(int reps, int *used, void (*fn)(void *), void *ctx) {
    double t0 = tai_bench_now();
    fn(ctx);
    double warm = tai_bench_now() - t0;
    int r = reps;
    if (warm * reps > g_budget_s) {
        r = (int)(g_budget_s / warm);
        if (r < 1) r = 1;
    }
    double ts[100];
    for (int i = 0; i < r; i++) {
        t0 = tai_bench_now();
        fn(ctx);
        ts[i] = tai_bench_now() - t0;
    }
    *used = r;
    return tai_bench_median(ts, r);
}

/* ---- Test data ------------------------------------------------------------------- */

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static inline float rnd(void) { /* uniform in [-1, 1) */
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)(int64_t)(g_rng >> 40) / (float)(1 << 23) - 1.0f;
}

static float *random_floats(size_t n) {
    float *p = xalloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = rnd();
    return p;
}

/* W (m rows of k floats) quantized row by row to type t, GGUF row-major. */
static void *quantize_matrix(tai_type t, const float *w, int64_t m, int64_t k, size_t *bytes) {
    size_t rb = tai_type_row_bytes(t, k);
    if (rb == 0) die("bad row length %lld for %s", (long long)k, tai_type_name(t));
    *bytes = rb * (size_t)m;
    uint8_t *q = xalloc(*bytes);
    for (int64_t r = 0; r < m; r++) tai_quantize_row(t, w + (size_t)r * (size_t)k, q + (size_t)r * rb, k);
    return q;
}

/* ---- Results ------------------------------------------------------------------------ */

static const tai_type ALL_TYPES[] = {TAI_TYPE_F32,  TAI_TYPE_F16,  TAI_TYPE_Q8_0, TAI_TYPE_Q4_0,
                                     TAI_TYPE_Q4_1, TAI_TYPE_Q4_K, TAI_TYPE_Q5_K, TAI_TYPE_Q6_K,
                                     TAI_TYPE_Q5_0, TAI_TYPE_Q5_1, TAI_TYPE_IQ4_NL, TAI_TYPE_Q2_K,
                                     TAI_TYPE_Q3_K, TAI_TYPE_Q8_K, TAI_TYPE_BF16};
#define MAX_TYPES 15
/* the types measured (--types, else all of them) */
static tai_type TYPES[MAX_TYPES];
static int NTYPES;

typedef struct {
    int64_t k, m; /* K x M: input x output, i.e. n x rows */
} shape;

typedef struct {
    tai_type type;
    tai_isa isa;
    shape s;
    int threads, reps, copies;
    size_t packed, gguf;
    double sec, gbs, of_bw;
    double paired; /* median of (kernel GB/s / bandwidth measured just before it); NaN if not run */
} mv_res;

typedef struct {
    tai_type type;
    shape s;
    int threads, reps;
    size_t packed, gguf;
    double sec;
} pack_res;

typedef struct {
    tai_type type;
    int isa; /* -1: OpenBLAS */
    shape s;
    int threads, reps;
    double sec, gflops, of_peak;
    double vs_blas;   /* ours F32: OpenBLAS time / ours; NAN otherwise */
    const char *form; /* OpenBLAS: the faster call form */
} mm_res;

typedef struct {
    const char *label, *path;
    int threads, ok;
    tai_e2e_result r;
    double peak_mib, ceiling, of_ceiling;
} e2e_res;

typedef struct {
    char name[96];
    char measured[64];
    char goal[32];
    double value, threshold; /* the figure compared, and its goal */
    int met;                 /* 1 met, 0 not met, -1 not measured */
} target_res;

/* CPU time of other processes while a section ran (see core/cpuload.h). */
typedef struct {
    const char *name;
    double wall, other_cores;
} load_res;

static struct {
    options o;
    FILE *T; /* the table */
    char cpu[256];
    size_t llc;
    int llc_level;
    const char *isa_best;
    size_t bw_bytes;
    int n_isas;
    tai_isa isas[TAI_ISA_COUNT];
    double quant_ns[TAI_ISA_COUNT + 1]; /* q8a: ns an element per table, then the portable one */
    double bf16_us[2][4][2];            /* prompt products: [shape][columns][int8, bf16] us */
    int bf16_done;
    tai_pool *pool[MAX_THREADS + 1];
    /* ceilings: two passes (before and after the kernels); the larger is used */
    double bw_pass[2][MAX_THREADS + 1];
    tai_bench_read_loops bw_loops[2][MAX_THREADS + 1];
    double peak_pass[2][TAI_PEAK_COUNT][MAX_THREADS + 1]; /* ops/s, all threads */
    double bw[MAX_THREADS + 1];
    double peak[TAI_PEAK_COUNT][MAX_THREADS + 1];
    double fp32[MAX_THREADS + 1], int8[MAX_THREADS + 1];
    double peak_run_s;
    mv_res *mv;
    size_t n_mv, cap_mv;
    pack_res *pk;
    size_t n_pk, cap_pk;
    mm_res *mm;
    size_t n_mm, cap_mm;
    e2e_res *e2e;
    size_t n_e2e, cap_e2e;
    target_res *tg;
    size_t n_tg, cap_tg;
    load_res load[8];
    int n_load;
    int sanity_ok, sanity_done;
    double sanity_rel[2];
    char sanity_shape[32];
    char load_start[64], load_end[64];
    int reduced; /* some figure got fewer repetitions */
    int failed;
} G;

#define T_ (G.T)

/* ---- Other load ------------------------------------------------------------------------ */

/* The machine is shared: other processes (or the hypervisor, as steal time)
 * take CPU time that shows up in every figure, most at the top thread
 * count: each section records how many cores other work kept busy
 * (core/cpuload.h). */
static void cpu_section(const char *name, tai_cpu_mark a) {
    tai_cpu_mark b = tai_cpu_mark_now();
    if (G.n_load >= 8) return;
    load_res *l = &G.load[G.n_load++];
    l->name = name;
    l->wall = b.wall - a.wall;
    const double o = tai_cpu_other_cores(a, b);
    l->other_cores = o >= 0 ? o : NAN;
}

/* A one-line progress note on a terminal's stderr (nothing otherwise). */
static void progress(const char *fmt, ...) {
    if (!isatty(STDERR_FILENO) || G.T == stderr) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("\r\033[K", stderr);
    if (fmt) vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
}

/* ---- 1. Ceilings ---------------------------------------------------------------- */

typedef struct {
    tai_peak_loop loop;
    uint64_t iters;
    double ops[MAX_THREADS];
} peak_job;

static void peak_worker(void *ctx, int i, int n) {
    (void)n;
    peak_job *j = ctx;
    j->ops[i] = tai_peak_run(j->loop, j->iters);
}

static void measure_ceilings(int pass) {
    const int N = G.o.threads;
    for (int t = 1; t <= N; t++) {
        progress("ceilings: read bandwidth, %d thr", t);
        G.bw_pass[pass][t] =
            tai_bench_read_bandwidth_loops(G.bw_bytes, t, G.o.reps, &G.bw_loops[pass][t]);
        if (G.bw_pass[pass][t] <= 0) die("bandwidth measurement failed (out of memory or threads)");
    }
    G.peak_run_s = G.o.quick ? 0.02 : 0.05; /* per run and thread */
    for (int l = 0; l < TAI_PEAK_COUNT; l++) {
        if (!tai_peak_supported((tai_peak_loop)l)) continue;
        /* iterations for peak_run_s, calibrated on one thread */
        double t0 = tai_bench_now();
        tai_peak_run((tai_peak_loop)l, 1000000);
        double dt = tai_bench_now() - t0;
        uint64_t iters = (uint64_t)(1e6 * G.peak_run_s / (dt > 1e-6 ? dt : 1e-6));
        if (iters < 1000) iters = 1000;
        for (int t = 1; t <= N; t++) {
            progress("ceilings: %s, %d thr", tai_peak_name((tai_peak_loop)l), t);
            peak_job j = {.loop = (tai_peak_loop)l, .iters = iters};
            double ts[100];
            tai_pool_run(G.pool[t], peak_worker, &j); /* warm-up */
            for (int r = 0; r < G.o.reps; r++) {
                double s = tai_bench_now();
                tai_pool_run(G.pool[t], peak_worker, &j);
                ts[r] = tai_bench_now() - s;
            }
            double total_ops = 0;
            for (int i = 0; i < t; i++) total_ops += j.ops[i];
            G.peak_pass[pass][l][t] = total_ops / tai_bench_median(ts, G.o.reps);
        }
    }
    progress(NULL);
}

static void finish_ceilings(void) {
    for (int t = 1; t <= G.o.threads; t++) {
        G.bw[t] = fmax(G.bw_pass[0][t], G.bw_pass[1][t]);
        for (int l = 0; l < TAI_PEAK_COUNT; l++)
            G.peak[l][t] = fmax(G.peak_pass[0][l][t], G.peak_pass[1][l][t]);
        G.fp32[t] = fmax(G.peak[TAI_PEAK_FMA_YMM][t], G.peak[TAI_PEAK_FMA_ZMM][t]);
        G.int8[t] = fmax(G.peak[TAI_PEAK_DOT_AVX2][t], G.peak[TAI_PEAK_DOT_VNNI][t]);
    }
}

static void print_ceilings(void) {
    const int N = G.o.threads;
    fprintf(T_, "== 1. Ceilings of this machine\n\n"
                "Measured twice, before and after the kernels (medians of %d reps each); the\n"
                "larger is the ceiling every fraction below is taken of.\n\n",
            G.o.reps);
    fprintf(T_, "read bandwidth (%zu MiB buffer; several read loops, the best counts):\n",
            G.bw_bytes / MiB);
    fprintf(T_, "  %4s %10s %10s %10s  %s\n", "thr", "before", "after", "ceiling", "best loop");
    for (int t = 1; t <= N; t++) {
        const tai_bench_read_loops *l = &G.bw_loops[G.bw_pass[1][t] > G.bw_pass[0][t]][t];
        fprintf(T_, "  %4d %10.2f %10.2f %10.2f  %s (GB/s)\n", t, G.bw_pass[0][t] / 1e9,
                G.bw_pass[1][t] / 1e9, G.bw[t] / 1e9, l->n ? l->name[l->best] : "?");
    }
    fprintf(T_, "  every loop, in the pass that set the ceiling (load width x streams per thread):\n");
    fprintf(T_, "  %4s", "thr");
    const tai_bench_read_loops *l1 = &G.bw_loops[0][1];
    for (int i = 0; i < l1->n; i++) fprintf(T_, " %7s", l1->name[i]);
    fputc('\n', T_);
    for (int t = 1; t <= N; t++) {
        const tai_bench_read_loops *l = &G.bw_loops[G.bw_pass[1][t] > G.bw_pass[0][t]][t];
        fprintf(T_, "  %4d", t);
        for (int i = 0; i < l->n; i++) fprintf(T_, " %7.2f", l->bytes_per_s[i] / 1e9);
        fputc('\n', T_);
    }
    fprintf(T_, "\narithmetic peaks (inline-asm loops of 12 independent multiply-adds on registers,\n"
                "%.0f ms per run and thread; one multiply-add = 2 ops; G/s of all threads):\n",
            G.peak_run_s * 1e3);
    fprintf(T_, "  %-10s %4s %10s %10s %10s %10s\n", "loop", "thr", "before", "after", "ceiling",
            "per core");
    for (int l = 0; l < TAI_PEAK_COUNT; l++) {
        if (!tai_peak_supported((tai_peak_loop)l)) {
            fprintf(T_, "  %-10s  not supported by this CPU\n", tai_peak_name((tai_peak_loop)l));
            continue;
        }
        for (int t = 1; t <= N; t++)
            fprintf(T_, "  %-10s %4d %10.1f %10.1f %10.1f %10.1f\n", tai_peak_name((tai_peak_loop)l),
                    t, G.peak_pass[0][l][t] / 1e9, G.peak_pass[1][l][t] / 1e9, G.peak[l][t] / 1e9,
                    G.peak[l][t] / 1e9 / t);
    }
    fprintf(T_, "\n  %4s %14s %14s %14s %14s\n", "thr", "FP32 GFLOP/s", "per core", "int8 GOP/s",
            "per core");
    for (int t = 1; t <= N; t++)
        fprintf(T_, "  %4d %14.1f %14.1f %14.1f %14.1f\n", t, G.fp32[t] / 1e9, G.fp32[t] / 1e9 / t,
                G.int8[t] / 1e9, G.int8[t] / 1e9 / t);
    fprintf(T_, "  (best loop per thread count)\n\n");
    fflush(T_);
}

/* ---- 2. Kernels ------------------------------------------------------------------ */

static const shape MV_SHAPES[] = {{4096, 4096}, {4096, 14336}, {14336, 4096},
                                  {576, 1536},  {1536, 576},   {576, 49152}};
static const shape MV_QUICK[] = {{4096, 14336}, {576, 1536}};
static const shape MM_SHAPES[] = {{4096, 4096}, {576, 1536}};
static const shape MM_QUICK[] = {{576, 1536}};
/* the shape of the reference figures: best ISA, REF_THREADS threads only */
static const shape MM_REF = {4096, 14336};
#define REF_THREADS 2

/* The scalar variant is measured on these only (it is 10-50x slower). */
static int small_shape(shape s) { return s.k * s.m <= ((int64_t)1 << 20); }

static int ref_threads(void) { return G.o.threads < REF_THREADS ? G.o.threads : REF_THREADS; }

static int same_shape(shape a, shape b) { return a.k == b.k && a.m == b.m; }

static char *shape_str(shape s, char *buf, size_t cap) {
    snprintf(buf, cap, "%lldx%lld", (long long)s.k, (long long)s.m);
    return buf;
}

static char flag(int reps) {
    if (reps < G.o.reps) {
        G.reduced = 1;
        return '*';
    }
    return ' ';
}

typedef struct {
    const tai_kernels *k;
    tai_pool *pool;
    tai_type t;
    void **copies;
    int ncopies;
    int64_t rows, n, ncols;
    const float *x;
    float *y;
    void *scratch;
} mm_job;

/* One call per copy (matrix-vector: the rotation defeats the caches). */
static void mm_batch(void *ctx) {
    mm_job *j = ctx;
    for (int c = 0; c < j->ncopies; c++)
        tai_matmul(j->k, j->pool, j->t, j->copies[c], j->rows, j->n, j->x, j->y, j->ncols,
                   j->scratch);
}

typedef struct {
    tai_pool *pool;
    tai_type t;
    const void *w;
    int64_t rows, n;
    void *dst;
} pack_job;

static void pack_once(void *ctx) {
    pack_job *j = ctx;
    tai_pack_matrix(j->pool, j->t, j->w, j->rows, j->n, j->dst);
}

/* Copies of a packed matrix that together exceed 4x the LLC, at most 2 GiB
 * (at least one). */
static int copies_for(size_t packed) {
    size_t want = 4 * G.llc;
    size_t n = (want + packed) / packed;
    size_t cap = 2 * GiB / packed;
    if (n > cap) n = cap;
    return n < 1 ? 1 : (int)n;
}

/* The matrix-vector targets are judged on matrices larger than the LLC. */
static int is_target_shape(shape s) {
    return (s.k == 4096 && s.m == 14336) || (s.k == 14336 && s.m == 4096);
}

/* The machine's bandwidth drifts by tens of percent from one minute to the
 * next (shared memory system), so a kernel figure is also compared with a
 * bandwidth measured right beside it: pairs of (one pass of the read loop
 * that set this thread count's ceiling, kernel calls for at least 50 ms),
 * in alternating order so a trend cancels; the median of the ratios. One
 * loop, not the best of all of them: the best of several noisy readings
 * would be biased high. */
static double paired_ratio(mm_job *j, size_t bytes, int th) {
    double r[64];
    int n = 3 * G.o.reps;
    if (n < 15) n = 15;
    if (n > 63) n = 63;
    const int pass = G.bw_pass[1][th] > G.bw_pass[0][th] ? 1 : 0;
    const int loop = G.bw_loops[pass][th].best;
    for (int i = 0; i < n; i++) {
        double bw = 0.0;
        if (i % 2 == 0) bw = tai_bench_read_bandwidth_loop(G.bw_bytes, th, 1, loop);
        int calls = 0;
        double t0 = tai_bench_now(), dt;
        do {
            mm_batch(j);
            calls++;
            dt = tai_bench_now() - t0;
        } while (dt < 0.05);
        if (i % 2 == 1) bw = tai_bench_read_bandwidth_loop(G.bw_bytes, th, 1, loop);
        r[i] = bw > 0 ? (double)bytes * calls / dt / bw : NAN;
    }
    return tai_bench_median(r, n);
}

static void measure_matvec(void) {
    const int N = G.o.threads;
    const shape *shapes = G.o.quick ? MV_QUICK : MV_SHAPES;
    const int ns = G.o.quick ? 2 : 6;
    char sb[32];
    for (int si = 0; si < ns; si++) {
        const shape s = shapes[si];
        float *w = random_floats((size_t)(s.k * s.m));
        float *x = random_floats((size_t)s.k);
        float *y = xalloc((size_t)s.m * sizeof(float));
        for (int ti = 0; ti < NTYPES; ti++) {
            const tai_type t = TYPES[ti];
            if (s.k % tai_type_block_elems(t) != 0) continue;
            progress("matrix-vector %s %s: quantizing, packing", shape_str(s, sb, sizeof sb),
                     tai_type_name(t));
            size_t gguf;
            void *q = quantize_matrix(t, w, s.m, s.k, &gguf);
            const size_t pb = tai_pack_bytes(t, s.m, s.k);
            if (pb == 0) die("tai_pack_bytes failed for %s %s", tai_type_name(t), sb);
            const int nc = copies_for(pb);
            void **copies = calloc((size_t)nc, sizeof *copies);
            if (!copies) die("out of memory");
            copies[0] = walloc(pb);
            /* load-time cost: packing, timed into copy 0 (already faulted in) */
            for (int th = 1; th <= N; th++) {
                pack_job pj = {G.pool[th], t, q, s.m, s.k, copies[0]};
                pack_res pr = {.type = t, .s = s, .threads = th, .packed = pb, .gguf = gguf};
                pr.sec = timed_median(G.o.reps, &pr.reps, pack_once, &pj);
                PUSH(G.pk, G.n_pk, G.cap_pk, pr);
            }
            for (int c = 1; c < nc; c++) {
                copies[c] = walloc(pb);
                memcpy(copies[c], copies[0], pb);
            }
            free(q);
            void *scratch = xalloc(tai_matmul_scratch_bytes(t, s.k, 1));
            for (int ii = 0; ii < G.n_isas; ii++) {
                const tai_isa isa = G.isas[ii];
                if (isa == TAI_ISA_SCALAR && !small_shape(s)) continue;
                for (int th = 1; th <= N; th++) {
                    progress("matrix-vector %s %s %s, %d thr", sb, tai_type_name(t),
                             tai_isa_name(isa), th);
                    mm_job j = {tai_kernels_get(isa), G.pool[th], t, copies, nc, s.m, s.k, 1, x, y, scratch};
                    mv_res r = {.type = t, .isa = isa, .s = s, .threads = th, .copies = nc,
                                .packed = pb, .gguf = gguf};
                    r.sec = timed_median(G.o.reps, &r.reps, mm_batch, &j) / nc;
                    r.paired = NAN;
                    if (isa == tai_isa_best(TAI_ISA_AVX512) && is_target_shape(s))
                        r.paired = paired_ratio(&j, pb * (size_t)nc, th);
                    PUSH(G.mv, G.n_mv, G.cap_mv, r);
                }
            }
            for (int c = 0; c < nc; c++) free(copies[c]);
            free(copies);
            free(scratch);
        }
        free(w);
        free(x);
        free(y);
    }
    progress(NULL);
}

typedef struct {
    int form; /* 0: row-major X * W^T, 1: column-major W^T' * X */
    int64_t rows, n, ncols;
    const float *w, *x;
    float *y;
} sgemm_job;

static void sgemm_once(void *ctx) {
    sgemm_job *j = ctx;
    if (j->form == 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->ncols, (int)j->rows, (int)j->n,
                    1.0f, j->x, (int)j->n, j->w, (int)j->n, 0.0f, j->y, (int)j->rows);
    else
        cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)j->rows, (int)j->ncols, (int)j->n,
                    1.0f, j->w, (int)j->n, j->x, (int)j->n, 0.0f, j->y, (int)j->rows);
}

static const char *FORM_NAME[2] = {"RowMajor,NoTrans,Trans(X,W)", "ColMajor,Trans,NoTrans(W,X)"};

/* max |a - b| / max |b| */
static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - (double)b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return m > 0 ? d / m : d;
}

/* OpenBLAS's idle threads spin for a while after a call; let them sleep
 * before timing anything else. */
static void blas_settle(void) { usleep(300 * 1000); }

/* Both sgemm forms against tai_matmul (best ISA, all threads), once. */
static void sanity_check(shape s, const float *w, const float *x, const void *wp) {
    const size_t ny = (size_t)MM_COLS * (size_t)s.m;
    float *ref = xalloc(ny * sizeof(float)), *y = xalloc(ny * sizeof(float));
    void *scratch = xalloc(tai_matmul_scratch_bytes(TAI_TYPE_F32, s.k, MM_COLS));
    tai_matmul(tai_kernels_get(tai_isa_best(TAI_ISA_AVX512)), G.pool[G.o.threads], TAI_TYPE_F32,
               wp, s.m, s.k, x, ref, MM_COLS, scratch);
    openblas_set_num_threads(G.o.threads);
    G.sanity_ok = 1;
    for (int f = 0; f < 2; f++) {
        memset(y, 0, ny * sizeof(float));
        sgemm_job j = {f, s.m, s.k, MM_COLS, w, x, y};
        sgemm_once(&j);
        G.sanity_rel[f] = rel_diff(y, ref, ny);
        if (!(G.sanity_rel[f] <= 1e-5)) G.sanity_ok = 0;
    }
    G.sanity_done = 1;
    shape_str(s, G.sanity_shape, sizeof G.sanity_shape);
    if (!G.sanity_ok) G.failed = 1;
    free(ref);
    free(y);
    free(scratch);
    blas_settle();
}

static void measure_matmul(void) {
    const int N = G.o.threads;
    const tai_isa best = tai_isa_best(TAI_ISA_AVX512);
    const shape *shapes = G.o.quick ? MM_QUICK : MM_SHAPES;
    const int ns = G.o.quick ? 1 : 3; /* the last: the reference shape */
    char sb[32];
    for (int si = 0; si < ns; si++) {
        const int is_ref = !G.o.quick && si == ns - 1;
        const shape s = is_ref ? MM_REF : shapes[si];
        shape_str(s, sb, sizeof sb);
        float *w = random_floats((size_t)(s.k * s.m));
        float *x = random_floats((size_t)(s.k * MM_COLS));
        float *y = xalloc((size_t)MM_COLS * (size_t)s.m * sizeof(float));
        const double flops = 2.0 * (double)s.k * (double)s.m * MM_COLS;
        for (int ti = 0; ti < NTYPES; ti++) {
            const tai_type t = TYPES[ti];
            if (s.k % tai_type_block_elems(t) != 0) continue;
            progress("matrix-matrix %s %s: quantizing, packing", sb, tai_type_name(t));
            size_t gguf;
            void *q = quantize_matrix(t, w, s.m, s.k, &gguf);
            void *wp = xalloc(tai_pack_bytes(t, s.m, s.k));
            tai_pack_matrix(G.pool[N], t, q, s.m, s.k, wp);
            free(q);
            void *scratch = xalloc(tai_matmul_scratch_bytes(t, s.k, MM_COLS));
            for (int ii = 0; ii < G.n_isas; ii++) {
                const tai_isa isa = G.isas[ii];
                if (is_ref && isa != best) continue;
                if (isa == TAI_ISA_SCALAR && !small_shape(s)) continue;
                const int t0 = is_ref ? ref_threads() : 1, t1 = is_ref ? ref_threads() : N;
                for (int th = t0; th <= t1; th++) {
                    progress("matrix-matrix %s %s %s, %d thr", sb, tai_type_name(t),
                             tai_isa_name(isa), th);
                    mm_job j = {tai_kernels_get(isa), G.pool[th], t, &wp, 1, s.m, s.k, MM_COLS, x, y, scratch};
                    mm_res r = {.type = t, .isa = isa, .s = s, .threads = th, .vs_blas = NAN};
                    r.sec = timed_median(G.o.reps, &r.reps, mm_batch, &j);
                    r.gflops = flops / r.sec / 1e9;
                    PUSH(G.mm, G.n_mm, G.cap_mm, r);
                }
            }
            if (t == TAI_TYPE_F32 && !G.sanity_done && !is_ref) sanity_check(s, w, x, wp);
            free(wp);
            free(scratch);
        }
        if (!is_ref) {
            /* OpenBLAS on the same float matrix, both call forms; the faster counts */
            for (int th = 1; th <= N; th++) {
                progress("matrix-matrix %s OpenBLAS sgemm, %d thr", sb, th);
                openblas_set_num_threads(th);
                mm_res r = {.type = TAI_TYPE_F32, .isa = -1, .s = s, .threads = th, .vs_blas = NAN};
                double sec[2];
                int reps[2];
                for (int f = 0; f < 2; f++) {
                    sgemm_job j = {f, s.m, s.k, MM_COLS, w, x, y};
                    sec[f] = timed_median(G.o.reps, &reps[f], sgemm_once, &j);
                }
                const int f = sec[1] < sec[0];
                r.sec = sec[f];
                r.reps = reps[f];
                r.form = FORM_NAME[f];
                r.gflops = flops / r.sec / 1e9;
                PUSH(G.mm, G.n_mm, G.cap_mm, r);
            }
            blas_settle();
        }
        free(w);
        free(x);
        free(y);
    }
    /* ours F32 against OpenBLAS at the same shape and thread count */
    for (size_t i = 0; i < G.n_mm; i++) {
        mm_res *r = &G.mm[i];
        if (r->isa < 0 || r->type != TAI_TYPE_F32) continue;
        for (size_t b = 0; b < G.n_mm; b++)
            if (G.mm[b].isa < 0 && same_shape(G.mm[b].s, r->s) && G.mm[b].threads == r->threads)
                r->vs_blas = G.mm[b].sec / r->sec;
    }
    progress(NULL);
}

/* The fractions of the ceilings, once both ceiling passes are in. */
static void finish_fractions(void) {
    for (size_t i = 0; i < G.n_mv; i++) {
        mv_res *r = &G.mv[i];
        r->gbs = r->packed / r->sec / 1e9;
        r->of_bw = r->packed / r->sec / G.bw[r->threads];
    }
    for (size_t i = 0; i < G.n_mm; i++) {
        mm_res *r = &G.mm[i];
        r->of_peak = r->gflops * 1e9 / G.fp32[r->threads];
    }
}

static void thread_header(const char *unit, const char *frac, int with_blas, int only) {
    for (int t = 1; t <= G.o.threads; t++) {
        if (only && t != only) continue;
        char u[24];
        snprintf(u, sizeof u, "%s@%d", unit, t);
        fprintf(T_, " %9s %5s ", u, frac);
        if (with_blas) fprintf(T_, "%6s", "xBLAS");
    }
    fputc('\n', T_);
}

static void print_matvec(void) {
    const int N = G.o.threads;
    char sb[32];
    fprintf(T_, "== 2. Kernels\n\n");
    fprintf(T_,
            "matrix-vector (ncols = 1), K x M = input x output: GB/s of packed weights read per\n"
            "call and %% of the read bandwidth at the same thread count. A timed repetition\n"
            "is one call on each packed copy in turn (copies together > 4x LLC), / copies.\n\n");
    fprintf(T_, "%-12s %-5s %9s %8s %6s %-7s", "K x M", "type", "packed MB", "GGUF MB", "copies",
            "isa");
    thread_header("GB/s", "%bw", 0, 0);
    for (size_t i = 0; i + (size_t)N <= G.n_mv; i += (size_t)N) {
        const mv_res *r = &G.mv[i];
        fprintf(T_, "%-12s %-5s %9.1f %8.1f %6d %-7s", shape_str(r->s, sb, sizeof sb),
                tai_type_name(r->type), r->packed / 1e6, r->gguf / 1e6, r->copies,
                tai_isa_name(r->isa));
        for (int th = 0; th < N; th++)
            fprintf(T_, " %9.1f %4.0f%%%c", r[th].gbs, 100 * r[th].of_bw, flag(r[th].reps));
        fputc('\n', T_);
    }
    fprintf(T_, "(scalar: only shapes of at most 1M weights)\n\n");

    fprintf(T_, "weight repacking (tai_pack_matrix, a load-time cost): ms and GB/s of GGUF bytes\n\n");
    fprintf(T_, "%-12s %-5s %8s %9s", "K x M", "type", "GGUF MB", "packed MB");
    for (int th = 1; th <= N; th++) {
        char u[24], v[24];
        snprintf(u, sizeof u, "ms@%d", th);
        snprintf(v, sizeof v, "GB/s@%d", th);
        fprintf(T_, " %9s %7s ", u, v);
    }
    fputc('\n', T_);
    for (size_t i = 0; i + (size_t)N <= G.n_pk; i += (size_t)N) {
        const pack_res *p = &G.pk[i];
        fprintf(T_, "%-12s %-5s %8.1f %9.1f", shape_str(p->s, sb, sizeof sb), tai_type_name(p->type),
                p->gguf / 1e6, p->packed / 1e6);
        for (int th = 0; th < N; th++)
            fprintf(T_, " %9.2f %7.2f%c", p[th].sec * 1e3, p[th].gguf / p[th].sec / 1e9,
                    flag(p[th].reps));
        fputc('\n', T_);
    }
    fputc('\n', T_);
    fflush(T_);
}

/* One table row: results [i0, i1) of one (shape, type, isa), by thread count. */
static void print_mm_row(size_t i0, size_t i1, int only) {
    char sb[32];
    const mm_res *r = &G.mm[i0];
    fprintf(T_, "%-12s %-5s %-9s", shape_str(r->s, sb, sizeof sb), tai_type_name(r->type),
            r->isa < 0 ? "openblas" : tai_isa_name((tai_isa)r->isa));
    for (size_t i = i0; i < i1; i++) {
        if (only && G.mm[i].threads != only) continue;
        fprintf(T_, " %9.1f %4.0f%%%c", G.mm[i].gflops, 100 * G.mm[i].of_peak, flag(G.mm[i].reps));
        if (!isnan(G.mm[i].vs_blas)) fprintf(T_, "%5.2fx", G.mm[i].vs_blas);
        else fprintf(T_, "%6s", "");
    }
    fputc('\n', T_);
}

/* ---- Activation quantization ------------------------------------------------ */

/* The integer products' activations, quantized to q8a before every product
 * (kernels.h): a 16-column step's input of SmolLM2's widest product (16 x
 * 1536), 200 times a repetition. */
typedef struct {
    tai_quantize_q8a_fn fn;
    const float *x;
    tai_block_q8a *q;
    int64_t n;
} quant_job;

enum { QUANT_N = 16 * 1536, QUANT_ITERS = 200 };

static void quant_once(void *ctx) {
    quant_job *j = ctx;
    for (int i = 0; i < QUANT_ITERS; i++) j->fn(j->x, j->q, j->n);
}

static void measure_quant(void) {
    float *x = random_floats(QUANT_N);
    tai_block_q8a *q = xalloc(QUANT_N / TAI_QK * sizeof *q);
    for (int i = 0; i <= G.n_isas; i++) {
        quant_job j = {i < G.n_isas ? tai_kernels_get(G.isas[i])->quantize_q8a : tai_quantize_row_q8a, x,
                       q, QUANT_N};
        int used;
        G.quant_ns[i] = timed_median(G.o.reps, &used, quant_once, &j) / ((double)QUANT_N * QUANT_ITERS) * 1e9;
    }
    free(x);
    free(q);
}

static void print_quant(void) {
    fprintf(T_, "\nactivation quantization (q8a, %d floats, one thread): ns an element\n", QUANT_N);
    for (int i = 0; i <= G.n_isas; i++)
        fprintf(T_, "  %-9s %6.3f\n", i < G.n_isas ? tai_isa_name(G.isas[i]) : "portable", G.quant_ns[i]);
    fputc('\n', T_);
}

/* ---- Prompt products on AMX-BF16 ------------------------------------------------ */

/* tai_matmul_bf16 beside tai_matmul (int8 with per-block scales) on
 * SmolLM2's two product shapes, Q4_1, all threads, by column count: what a
 * prompt of that many tokens would gain (kernels.h). */
static const int BF16_COLS[4] = {16, 64, 128, 320};
static const shape BF16_SHAPES[2] = {{576, 1536}, {1536, 576}}; /* K x M */

typedef struct {
    int bf16;
    tai_type t;
    const void *wp;
    int64_t rows, n, ncols;
    const float *x;
    float *y;
    void *scratch;
} bf16_job;

static void bf16_once(void *ctx) {
    bf16_job *j = ctx;
    for (int i = 0; i < 10; i++) {
        if (j->bf16)
            tai_matmul_bf16(G.pool[G.o.threads], j->t, j->wp, j->rows, j->n, j->x, j->y, j->ncols, j->scratch);
        else
            tai_matmul(tai_kernels_get(tai_isa_best(TAI_ISA_AVX512)), G.pool[G.o.threads], j->t, j->wp,
                       j->rows, j->n, j->x, j->y, j->ncols, j->scratch);
    }
}

static void measure_bf16(void) {
    if (!tai_bf16_ready()) return;
    const tai_type t = TAI_TYPE_Q4_1;
    for (int si = 0; si < 2; si++) {
        const int64_t n = BF16_SHAPES[si].k, rows = BF16_SHAPES[si].m;
        float *w = random_floats((size_t)(rows * n));
        size_t gguf;
        void *q = quantize_matrix(t, w, rows, n, &gguf);
        void *wp = walloc(tai_pack_bytes(t, rows, n));
        tai_pack_matrix(G.pool[G.o.threads], t, q, rows, n, wp);
        for (int ci = 0; ci < 4; ci++) {
            const int64_t nc = BF16_COLS[ci];
            float *x = random_floats((size_t)(n * nc));
            float *y = xalloc((size_t)(rows * nc) * sizeof *y);
            size_t sb = tai_matmul_scratch_bytes(t, n, nc), sb16 = tai_matmul_bf16_scratch_bytes(n, nc, G.o.threads);
            void *scratch = walloc(sb > sb16 ? sb : sb16);
            for (int b = 0; b < 2; b++) {
                bf16_job j = {b, t, wp, rows, n, nc, x, y, scratch};
                int used;
                G.bf16_us[si][ci][b] = timed_median(G.o.reps, &used, bf16_once, &j) / 10 * 1e6;
            }
            free(scratch);
            free(y);
            free(x);
        }
        free(wp);
        free(q);
        free(w);
    }
    G.bf16_done = 1;
}

static void print_bf16(void) {
    if (!G.bf16_done) {
        fprintf(T_, "prompt products on AMX-BF16: not measured (no AMX-BF16 here)\n\n");
        return;
    }
    fprintf(T_, "prompt products on AMX-BF16 (tai_matmul_bf16) against int8 (tai_matmul), Q4_1,\n"
                "%d threads: us a product, and int8 / bf16\n", G.o.threads);
    for (int si = 0; si < 2; si++) {
        fprintf(T_, "  K %lld x M %lld:", (long long)BF16_SHAPES[si].k, (long long)BF16_SHAPES[si].m);
        for (int ci = 0; ci < 4; ci++)
            fprintf(T_, "  %d col %.0f / %.0f (%.2fx)", BF16_COLS[ci], G.bf16_us[si][ci][0],
                    G.bf16_us[si][ci][1], G.bf16_us[si][ci][0] / G.bf16_us[si][ci][1]);
        fputc('\n', T_);
    }
    fputc('\n', T_);
}

static void print_matmul(void) {
    fprintf(T_,
            "matrix-matrix, %d activation columns: GFLOP/s = 2 * K * M * %d / time, %% of the\n"
            "FP32 peak at that thread count (int8 kernels can exceed 100%%), and for F32\n"
            "xBLAS = OpenBLAS cblas_sgemm time / ours, same thread count (OpenBLAS %s kernels).\n",
            MM_COLS, MM_COLS, openblas_get_corename());
    /* rows: runs of equal (shape, type, isa); F32 rows last, next to OpenBLAS */
    const shape *shapes = G.o.quick ? MM_QUICK : MM_SHAPES;
    const int ns = G.o.quick ? 1 : 3;
    for (int si = 0; si < ns; si++) {
        const int is_ref = !G.o.quick && si == ns - 1;
        const shape s = is_ref ? MM_REF : shapes[si];
        if (is_ref) fprintf(T_, "\nreference shape (best ISA, %d threads only):", ref_threads());
        fputc('\n', T_);
        fprintf(T_, "%-12s %-5s %-9s", "K x M", "type", "isa");
        thread_header("GFLOP/s", "%peak", 1, is_ref ? ref_threads() : 0);
        for (int pass = 0; pass < 3; pass++) /* other types, ours F32, OpenBLAS */
            for (size_t i = 0; i < G.n_mm;) {
                size_t e = i + 1;
                while (e < G.n_mm && G.mm[e].type == G.mm[i].type && G.mm[e].isa == G.mm[i].isa &&
                       same_shape(G.mm[e].s, G.mm[i].s))
                    e++;
                const mm_res *r = &G.mm[i];
                const int kind = r->isa < 0 ? 2 : r->type == TAI_TYPE_F32 ? 1 : 0;
                if (same_shape(r->s, s) && kind == pass) print_mm_row(i, e, is_ref ? ref_threads() : 0);
                i = e;
            }
    }
    if (G.sanity_done)
        fprintf(T_,
                "\nsanity (%s F32, %d columns): cblas_sgemm vs tai_matmul (%s, %d thr),\n"
                "max|diff| / max|y|: %s %.2g, %s %.2g: %s\n",
                G.sanity_shape, MM_COLS, G.isa_best, G.o.threads, FORM_NAME[0], G.sanity_rel[0],
                FORM_NAME[1], G.sanity_rel[1], G.sanity_ok ? "OK (<= 1e-5)" : "MISMATCH");
    fprintf(T_, "(scalar: only shapes of at most 1M weights)\n\n");
    fflush(T_);
}

/* ---- 3. End to end ------------------------------------------------------------ */

typedef struct {
    char model[4096], model_1b[4096];
} model_paths;

static void measure_e2e(const model_paths *mp) {
    const int N = G.o.threads;
    const int n_prompt = G.o.quick ? 128 : 512, n_gen = G.o.quick ? 32 : 128;
    fprintf(T_, "== 3. End to end (batch 1; prompt: %d tokens; generation: %d tokens after an\n"
                "8-token prompt, greedy; one untimed warm-up round per case; %d reps; each case\n"
                "in its own process)\n\n",
            n_prompt, n_gen, G.o.reps);
    fprintf(T_, "%-34s %3s %7s %12s %10s %9s %9s %10s %8s %9s\n", "model", "thr", "isa",
            "prompt tok/s", "gen tok/s", "MB/token", "bw GB/s", "ceil tok/s", "of ceil", "peak MiB");
    fflush(T_);
    const char *paths[2] = {mp->model, mp->model_1b};
    const char *labels[2] = {"default", "synth-1b-q4_0"};
    for (int mi = 0; mi < (G.o.quick ? 1 : 2); mi++) {
        const char *base = strrchr(paths[mi], '/');
        base = base ? base + 1 : paths[mi];
        for (int th = 1; th <= N; th++) {
            e2e_res e = {.label = labels[mi], .path = paths[mi], .threads = th};
            e.r = tai_e2e_fork_case(paths[mi], th, G.o.reps, 1, n_prompt, n_gen, &e.peak_mib);
            e.ok = e.r.ok;
            if (!e.ok) {
                fprintf(T_, "%-34.34s %3d  failed\n", base, th);
                G.failed = 1;
            } else {
                e.ceiling = G.bw[th] / e.r.bytes_per_token;
                e.of_ceiling = e.r.gen_tps / e.ceiling;
                fprintf(T_, "%-34.34s %3d %7s %12.1f %10.2f %9.1f %9.2f %10.2f %7.0f%% %9.1f\n", base,
                        th, e.r.isa, e.r.prompt_tps, e.r.gen_tps, e.r.bytes_per_token / 1e6,
                        G.bw[th] / 1e9, e.ceiling, 100 * e.of_ceiling, e.peak_mib);
            }
            PUSH(G.e2e, G.n_e2e, G.cap_e2e, e);
            fflush(T_);
        }
    }
    fprintf(T_, "ceiling = read bandwidth at that thread count / weight bytes read per token\n\n");
    fflush(T_);
}

/* ---- 4. Targets -------------------------------------------------------------------- */

/* One target line: `value` (NAN if not measured) against `threshold`. */
static void target(const char *name, const char *goal, double value, double threshold,
                   const char *fmt, ...) {
    const int met = isnan(value) ? -1 : value >= threshold;
    target_res t = {.met = met, .value = value, .threshold = threshold};
    snprintf(t.name, sizeof t.name, "%s", name);
    snprintf(t.goal, sizeof t.goal, "%s", goal);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t.measured, sizeof t.measured, fmt, ap);
    va_end(ap);
    PUSH(G.tg, G.n_tg, G.cap_tg, t);
    fprintf(T_, "%-44s %-36s %-8s %s\n", t.name, t.measured, t.goal,
            met < 0 ? "not measured" : met ? "met" : "NOT met");
}

static const mv_res *find_mv(tai_type t, tai_isa isa, shape s, int th) {
    for (size_t i = 0; i < G.n_mv; i++) {
        const mv_res *r = &G.mv[i];
        if (r->type == t && r->isa == isa && r->s.k == s.k && r->s.m == s.m && r->threads == th)
            return r;
    }
    return NULL;
}

static const mm_res *find_mm(tai_type t, int isa, shape s, int th) {
    for (size_t i = 0; i < G.n_mm; i++) {
        const mm_res *r = &G.mm[i];
        if (r->type == t && r->isa == isa && r->s.k == s.k && r->s.m == s.m && r->threads == th)
            return r;
    }
    return NULL;
}

static const e2e_res *find_e2e(int model, int th) {
    const char *label = model == 0 ? "default" : "synth-1b-q4_0";
    for (size_t i = 0; i < G.n_e2e; i++)
        if (!strcmp(G.e2e[i].label, label) && G.e2e[i].threads == th && G.e2e[i].ok) return &G.e2e[i];
    return NULL;
}

static void report_targets(void) {
    const int N = G.o.threads;
    const tai_isa best = tai_isa_best(TAI_ISA_AVX512);
    char name[96], sb[32];
    fprintf(T_, "== 4. Targets (best ISA: %s)\n\n", G.isa_best);
    fprintf(T_, "%-44s %-36s %-8s %s\n", "target", "measured", "goal", "result");
    const shape big[2] = {{4096, 14336}, {14336, 4096}};
    for (int ti = 0; ti < NTYPES; ti++)
        for (int b = 0; b < 2; b++) {
            /* the goals: 90% for the first five types, 85% for Q4_K, Q5_K,
             * Q6_K; the other types are listed in the tables only */
            const tai_type tt = TYPES[ti];
            const bool k = tt == TAI_TYPE_Q4_K || tt == TAI_TYPE_Q5_K || tt == TAI_TYPE_Q6_K;
            if (!k && !(tai_type_is_q32(tt) || tt == TAI_TYPE_F32 || tt == TAI_TYPE_F16)) continue;
            const double goal = k ? 0.85 : 0.90;
            const char *gs = k ? ">= 85%" : ">= 90%";
            snprintf(name, sizeof name, "matvec %s %s, of read bandwidth", tai_type_name(TYPES[ti]),
                     shape_str(big[b], sb, sizeof sb));
            /* the thread count that does best: by the paired ratio where
             * there is one (the bandwidth drifts), else by GB/s */
            const mv_res *top = NULL;
            for (int th = 1; th <= N; th++) {
                const mv_res *r = find_mv(TYPES[ti], best, big[b], th);
                if (!r) continue;
                if (!top) top = r;
                else if (!isnan(r->paired) && !isnan(top->paired) ? r->paired > top->paired
                                                                   : r->gbs > top->gbs)
                    top = r;
            }
            if (!top) target(name, gs, NAN, goal, "-");
            else if (!isnan(top->paired))
                target(name, gs, top->paired, goal, "%.0f%% paired (%.0f%% of ceiling; %.1f GB/s, %d thr)",
                       100 * top->paired, 100 * top->of_bw, top->gbs, top->threads);
            else
                target(name, gs, top->of_bw, goal, "%.0f%% (%.1f GB/s, %d thr)",
                       100 * top->of_bw, top->gbs, top->threads);
        }
    const shape *mms = G.o.quick ? MM_QUICK : MM_SHAPES;
    const int nmms = G.o.quick ? 1 : 2;
    for (int si = 0; si < nmms; si++)
        for (int th = 1; th <= N; th++) {
            snprintf(name, sizeof name, "matmul F32 %s vs OpenBLAS, %d thr", shape_str(mms[si], sb, sizeof sb), th);
            const mm_res *r = find_mm(TAI_TYPE_F32, best, mms[si], th);
            if (!r || isnan(r->vs_blas)) target(name, ">= 1.0x", NAN, 1.0, "-");
            else
                target(name, ">= 1.0x", r->vs_blas, 1.0, "%.2fx (%.1f GFLOP/s)", r->vs_blas,
                       r->gflops);
        }
    const tai_type qt[3] = {TAI_TYPE_Q8_0, TAI_TYPE_Q4_0, TAI_TYPE_Q4_1};
    for (int qi = 0; qi < 3; qi++)
        for (int si = 0; si < nmms; si++)
            for (int th = 1; th <= N; th++) {
                snprintf(name, sizeof name, "matmul %s %s, of FP32 peak, %d thr", tai_type_name(qt[qi]),
                         shape_str(mms[si], sb, sizeof sb), th);
                const mm_res *r = find_mm(qt[qi], best, mms[si], th);
                if (!r) target(name, ">= 60%", NAN, 0.60, "-");
                else
                    target(name, ">= 60%", r->of_peak, 0.60, "%.0f%% (%.1f GFLOP/s)",
                           100 * r->of_peak, r->gflops);
            }
    {
        const e2e_res *top = NULL;
        for (int th = 1; th <= N; th++) {
            const e2e_res *e = find_e2e(1, th);
            if (e && (!top || e->of_ceiling > top->of_ceiling)) top = e;
        }
        if (!top) target("generation 1B Q4_0, of bandwidth ceiling", ">= 85%", NAN, 0.85, "-");
        else
            target("generation 1B Q4_0, of bandwidth ceiling", ">= 85%", top->of_ceiling, 0.85,
                   "%.0f%% (%.2f of %.2f tok/s, %d thr)", 100 * top->of_ceiling, top->r.gen_tps,
                   top->ceiling, top->threads);
    }
    for (int mi = 1; mi >= 0; mi--) {
        snprintf(name, sizeof name, "prompt %s, 2 thr / 1 thr", mi ? "1B Q4_0" : "default model");
        const e2e_res *a = find_e2e(mi, 1), *b = find_e2e(mi, 2);
        if (!a || !b) target(name, ">= 1.8x", NAN, 1.8, "-");
        else
            target(name, ">= 1.8x", b->r.prompt_tps / a->r.prompt_tps, 1.8, "%.2fx (%.1f / %.1f tok/s)",
                   b->r.prompt_tps / a->r.prompt_tps, b->r.prompt_tps, a->r.prompt_tps);
    }

    /* best-known figures from the issue: 4096x14336, 2 threads */
    static const struct {
        tai_type t;
        double mv, mm;
    } issue[5] = {{TAI_TYPE_F32, 0.97, 0.35},
                       {TAI_TYPE_F16, 0.85, 0.54},
                       {TAI_TYPE_Q8_0, 0.70, 0.35},
                       {TAI_TYPE_Q4_0, 0.42, 0.29},
                       {TAI_TYPE_Q4_1, 0.44, 0.14}};
    const int rt = ref_threads();
    fprintf(T_, "\nreference: best-known figures from the issue vs ours, 4096x14336, %d threads, %s\n",
            rt, G.isa_best);
    fprintf(T_, "%-6s %16s %16s %18s %18s\n", "type", "matvec %bw issue", "matvec %bw ours",
            "matmul %peak issue", "matmul %peak ours");
    for (int i = 0; i < 5; i++) {
        const mv_res *v = find_mv(issue[i].t, best, MM_REF, rt);
        const mm_res *m = find_mm(issue[i].t, best, MM_REF, rt);
        char a[16] = "-", b[16] = "-";
        if (v) snprintf(a, sizeof a, "%.0f%%", 100 * v->of_bw);
        if (m) snprintf(b, sizeof b, "%.0f%%", 100 * m->of_peak);
        fprintf(T_, "%-6s %15.0f%% %16s %17.0f%% %18s\n", tai_type_name(issue[i].t), 100 * issue[i].mv, a,
                100 * issue[i].mm, b);
    }
    if (rt != REF_THREADS) fprintf(T_, "(this run has fewer than %d threads)\n", REF_THREADS);
    fputc('\n', T_);
    if (G.reduced)
        fprintf(T_, "* fewer than %d timed repetitions: the warm-up showed they would exceed %.0f s\n",
                G.o.reps, g_budget_s);
    fflush(T_);
}

/* ---- JSON -------------------------------------------------------------------------- */

typedef struct {
    FILE *f;
    int depth;
    int first[16];
} jw;

static void j_sep(jw *j, const char *key) {
    if (!j->first[j->depth]) fputc(',', j->f);
    j->first[j->depth] = 0;
    fputc('\n', j->f);
    for (int i = 0; i < j->depth; i++) fputs("  ", j->f);
    if (key) fprintf(j->f, "\"%s\": ", key);
}

static void j_open(jw *j, const char *key, char c) {
    if (j->depth >= 0) j_sep(j, key);
    fputc(c, j->f);
    j->first[++j->depth] = 1;
}

static void j_close(jw *j, char c) {
    j->depth--;
    fputc('\n', j->f);
    for (int i = 0; i <= j->depth; i++) fputs("  ", j->f);
    fputc(c, j->f);
}

static void j_num(jw *j, const char *key, double v) {
    j_sep(j, key);
    if (isfinite(v)) fprintf(j->f, "%.6g", v);
    else fputs("null", j->f);
}

static void j_int(jw *j, const char *key, long long v) {
    j_sep(j, key);
    fprintf(j->f, "%lld", v);
}

static void j_str(jw *j, const char *key, const char *s) {
    j_sep(j, key);
    if (!s) {
        fputs("null", j->f);
        return;
    }
    fputc('"', j->f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(j->f, "\\%c", c);
        else if (c < 0x20) fprintf(j->f, "\\u%04x", c);
        else fputc(c, j->f);
    }
    fputc('"', j->f);
}

static void j_shape(jw *j, shape s) {
    j_int(j, "k", s.k);
    j_int(j, "m", s.m);
}

static void write_json(FILE *f, const model_paths *mp) {
    jw j = {.f = f, .depth = -1};
    const int N = G.o.threads;
    j_open(&j, NULL, '{');
    j_open(&j, "machine", '{');
    j_str(&j, "cpu", G.cpu);
    j_str(&j, "isa", G.isa_best);
    j_str(&j, "variants", tinyaiCpuVariants());
    j_int(&j, "llc_bytes", (long long)G.llc);
    j_int(&j, "llc_level", G.llc_level);
    j_int(&j, "threads", N);
    j_int(&j, "reps", G.o.reps);
    j_int(&j, "quick", G.o.quick);
    j_num(&j, "rep_budget_s", g_budget_s);
    j_str(&j, "openblas", openblas_get_config());
    j_str(&j, "load_average_start", G.load_start);
    j_str(&j, "load_average_end", G.load_end);
    j_close(&j, '}');

    j_open(&j, "bandwidth", '{');
    j_int(&j, "buffer_bytes", (long long)G.bw_bytes);
    j_open(&j, "by_threads", '[');
    for (int t = 1; t <= N; t++) {
        j_open(&j, NULL, '{');
        j_int(&j, "threads", t);
        j_num(&j, "bytes_per_s_before", G.bw_pass[0][t]);
        j_num(&j, "bytes_per_s_after", G.bw_pass[1][t]);
        j_num(&j, "bytes_per_s", G.bw[t]);
        for (int pass = 0; pass < 2; pass++) {
            const tai_bench_read_loops *l = &G.bw_loops[pass][t];
            j_open(&j, pass ? "loops_after" : "loops_before", '{');
            for (int i = 0; i < l->n; i++) j_num(&j, l->name[i], l->bytes_per_s[i]);
            j_close(&j, '}');
        }
        j_close(&j, '}');
    }
    j_close(&j, ']');
    j_close(&j, '}');

    j_open(&j, "peaks", '[');
    for (int l = 0; l < TAI_PEAK_COUNT; l++)
        for (int t = 1; t <= N; t++) {
            if (!tai_peak_supported((tai_peak_loop)l)) continue;
            j_open(&j, NULL, '{');
            j_str(&j, "loop", tai_peak_name((tai_peak_loop)l));
            j_int(&j, "threads", t);
            j_num(&j, "ops_per_s_before", G.peak_pass[0][l][t]);
            j_num(&j, "ops_per_s_after", G.peak_pass[1][l][t]);
            j_num(&j, "ops_per_s", G.peak[l][t]);
            j_num(&j, "ops_per_s_per_core", G.peak[l][t] / t);
            j_close(&j, '}');
        }
    j_close(&j, ']');
    j_open(&j, "ceilings", '[');
    for (int t = 1; t <= N; t++) {
        j_open(&j, NULL, '{');
        j_int(&j, "threads", t);
        j_num(&j, "read_bytes_per_s", G.bw[t]);
        j_num(&j, "fp32_flops_per_s", G.fp32[t]);
        j_num(&j, "fp32_flops_per_s_per_core", G.fp32[t] / t);
        j_num(&j, "int8_ops_per_s", G.int8[t]);
        j_num(&j, "int8_ops_per_s_per_core", G.int8[t] / t);
        j_close(&j, '}');
    }
    j_close(&j, ']');

    j_open(&j, "matvec", '[');
    for (size_t i = 0; i < G.n_mv; i++) {
        const mv_res *r = &G.mv[i];
        j_open(&j, NULL, '{');
        j_str(&j, "type", tai_type_name(r->type));
        j_str(&j, "isa", tai_isa_name(r->isa));
        j_shape(&j, r->s);
        j_int(&j, "threads", r->threads);
        j_int(&j, "reps", r->reps);
        j_int(&j, "copies", r->copies);
        j_int(&j, "packed_bytes", (long long)r->packed);
        j_int(&j, "gguf_bytes", (long long)r->gguf);
        j_num(&j, "seconds_per_call", r->sec);
        j_num(&j, "gb_per_s", r->gbs);
        j_num(&j, "of_bandwidth", r->of_bw);
        if (!isnan(r->paired)) j_num(&j, "of_bandwidth_paired", r->paired);
        j_close(&j, '}');
    }
    j_close(&j, ']');

    j_open(&j, "pack", '[');
    for (size_t i = 0; i < G.n_pk; i++) {
        const pack_res *r = &G.pk[i];
        j_open(&j, NULL, '{');
        j_str(&j, "type", tai_type_name(r->type));
        j_shape(&j, r->s);
        j_int(&j, "threads", r->threads);
        j_int(&j, "reps", r->reps);
        j_int(&j, "gguf_bytes", (long long)r->gguf);
        j_int(&j, "packed_bytes", (long long)r->packed);
        j_num(&j, "ms", r->sec * 1e3);
        j_num(&j, "gguf_gb_per_s", r->gguf / r->sec / 1e9);
        j_close(&j, '}');
    }
    j_close(&j, ']');

    j_open(&j, "matmul", '[');
    for (size_t i = 0; i < G.n_mm; i++) {
        const mm_res *r = &G.mm[i];
        j_open(&j, NULL, '{');
        j_str(&j, "type", tai_type_name(r->type));
        j_str(&j, "isa", r->isa < 0 ? "openblas" : tai_isa_name((tai_isa)r->isa));
        j_shape(&j, r->s);
        j_int(&j, "ncols", MM_COLS);
        j_int(&j, "threads", r->threads);
        j_int(&j, "reps", r->reps);
        j_num(&j, "seconds", r->sec);
        j_num(&j, "gflops", r->gflops);
        j_num(&j, "of_fp32_peak", r->of_peak);
        if (r->isa >= 0 && r->type == TAI_TYPE_F32) j_num(&j, "vs_openblas", r->vs_blas);
        if (r->form) j_str(&j, "sgemm_form", r->form);
        j_close(&j, '}');
    }
    j_close(&j, ']');

    j_open(&j, "sanity", '{');
    j_int(&j, "done", G.sanity_done);
    j_int(&j, "ok", G.sanity_ok);
    j_num(&j, "rel_diff_rowmajor", G.sanity_done ? G.sanity_rel[0] : NAN);
    j_num(&j, "rel_diff_colmajor", G.sanity_done ? G.sanity_rel[1] : NAN);
    j_close(&j, '}');

    j_open(&j, "e2e", '[');
    for (size_t i = 0; i < G.n_e2e; i++) {
        const e2e_res *e = &G.e2e[i];
        j_open(&j, NULL, '{');
        j_str(&j, "model", e->label);
        j_str(&j, "path", e->path);
        j_int(&j, "threads", e->threads);
        j_int(&j, "ok", e->ok);
        j_str(&j, "isa", e->ok ? e->r.isa : NULL);
        j_num(&j, "prompt_tok_per_s", e->ok ? e->r.prompt_tps : NAN);
        j_num(&j, "gen_tok_per_s", e->ok ? e->r.gen_tps : NAN);
        j_num(&j, "bytes_per_token", e->ok ? e->r.bytes_per_token : NAN);
        j_num(&j, "ceiling_tok_per_s", e->ok ? e->ceiling : NAN);
        j_num(&j, "of_ceiling", e->ok ? e->of_ceiling : NAN);
        j_num(&j, "peak_rss_mib", e->peak_mib);
        j_close(&j, '}');
    }
    j_close(&j, ']');
    (void)mp;

    j_open(&j, "other_load", '[');
    for (int i = 0; i < G.n_load; i++) {
        j_open(&j, NULL, '{');
        j_str(&j, "section", G.load[i].name);
        j_num(&j, "seconds", G.load[i].wall);
        j_num(&j, "other_cores", G.load[i].other_cores);
        j_close(&j, '}');
    }
    j_close(&j, ']');

    j_open(&j, "targets", '[');
    for (size_t i = 0; i < G.n_tg; i++) {
        j_open(&j, NULL, '{');
        j_str(&j, "name", G.tg[i].name);
        j_str(&j, "measured", G.tg[i].measured);
        j_str(&j, "goal", G.tg[i].goal);
        j_num(&j, "value", G.tg[i].value);
        j_num(&j, "threshold", G.tg[i].threshold);
        j_str(&j, "result", G.tg[i].met < 0 ? "not measured" : G.tg[i].met ? "met" : "not met");
        j_close(&j, '}');
    }
    j_close(&j, ']');
    j_close(&j, '}');
    fputc('\n', f);
}

/* ---- main ------------------------------------------------------------------------------ */

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

int main(int argc, char **argv) {
    G.o = parse_args(argc, argv);
    /* the types: --types, else every one */
    if (!G.o.types) {
        for (int i = 0; i < MAX_TYPES; i++) TYPES[NTYPES++] = ALL_TYPES[i];
    } else {
        char list[256];
        snprintf(list, sizeof list, "%s", G.o.types);
        for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            int found = -1;
            for (int i = 0; i < MAX_TYPES; i++)
                if (!strcasecmp(tok, tai_type_name(ALL_TYPES[i]))) found = i;
            if (found < 0) {
                fprintf(stderr, "bench_kernels: --types: unknown type '%s'\n", tok);
                return 2;
            }
            if (NTYPES < MAX_TYPES) TYPES[NTYPES++] = ALL_TYPES[found];
        }
    }
    const int N = G.o.threads;
    const int json_stdout = G.o.json && !strcmp(G.o.json, "-");
    G.T = json_stdout ? stderr : stdout;
    if (G.o.quick) g_budget_s = 1.0;

    /* paths and files first, so a missing model fails before minutes of work */
    model_paths mp;
    tai_e2e_default_paths(mp.model, sizeof mp.model, mp.model_1b, sizeof mp.model_1b);
    const char *env_model = getenv("TINYAI_MODEL");
    if (env_model && *env_model) snprintf(mp.model, sizeof mp.model, "%s", env_model);
    if (!G.o.no_e2e) {
        if (!file_exists(mp.model))
            die("model not found: %s (set TINYAI_MODEL, run scripts/run.sh to fetch it, or pass --no-e2e)",
                mp.model);
        if (!G.o.quick && tai_e2e_ensure_1b(mp.model_1b) != 0) die("cannot create %s", mp.model_1b);
    }
    FILE *jf = NULL;
    if (G.o.json && !json_stdout) {
        jf = fopen(G.o.json, "w");
        if (!jf) die("cannot write %s: %s", G.o.json, strerror(errno));
    }

    cpu_model(G.cpu, sizeof G.cpu);
    G.llc = llc_bytes(&G.llc_level);
    const int llc_known = G.llc > 0;
    if (!llc_known) G.llc = 32 * MiB;
    G.bw_bytes = 8 * G.llc < 256 * MiB ? 256 * MiB : 8 * G.llc;
    G.isa_best = tai_isa_name(tai_isa_best(TAI_ISA_AVX512));
    for (int i = 0; i < TAI_ISA_COUNT; i++) {
        if (!tai_isa_supported((tai_isa)i)) continue;
        if (G.o.isas) { /* --isa: whole names in the list */
            char list[128];
            snprintf(list, sizeof list, ",%s,", G.o.isas);
            char want[32];
            snprintf(want, sizeof want, ",%s,", tai_isa_name((tai_isa)i));
            if (!strstr(list, want)) continue;
        }
        G.isas[G.n_isas++] = (tai_isa)i;
    }
    if (G.n_isas == 0) die("--isa: none of '%s' runs on this CPU (scalar, avx2, avx512)", G.o.isas);
    for (int t = 1; t <= N; t++)
        if (tai_pool_create(t, &G.pool[t]) != 0) die("cannot start a pool of %d threads", t);

    char tuning[4096];
    if (G.o.untuned) snprintf(tuning, sizeof tuning, "none (--untuned): no software prefetch");
    else tai_e2e_apply_tuning(G.o.retune, tuning, sizeof tuning);
    fprintf(T_, "TinyAI kernel benchmark\n");
    fprintf(T_, "cpu:          %s (%ld online cores; %s)\n", G.cpu, sysconf(_SC_NPROCESSORS_ONLN),
            tai_cpu_signature());
    fprintf(T_, "tuning:       %s\n", tuning);
    fprintf(T_, "kernel isa:   %s (variants: %s)\n", G.isa_best, tinyaiCpuVariants());
    if (llc_known) fprintf(T_, "llc:          %zu MiB (L%d)\n", G.llc / MiB, G.llc_level);
    else fprintf(T_, "llc:          unknown, 32 MiB assumed\n");
    fprintf(T_, "threads:      1..%d\n", N);
    fprintf(T_, "repetitions:  %d timed after one warm-up, median reported%s\n", G.o.reps,
            G.o.quick ? " (--quick)" : "");
    fprintf(T_, "openblas:     %s\n", openblas_get_config());
    load_average(G.load_start, sizeof G.load_start);
    fprintf(T_, "load average: %s (1, 5, 15 min; before this run)\n\n", G.load_start);
    fflush(T_);

    tai_cpu_mark m = tai_cpu_mark_now();
    measure_ceilings(0);
    cpu_section("ceilings (before)", m);
    m = tai_cpu_mark_now();
    measure_matvec();
    cpu_section("matrix-vector + packing", m);
    m = tai_cpu_mark_now();
    measure_matmul();
    cpu_section("matrix-matrix", m);
    m = tai_cpu_mark_now();
    measure_quant();
    cpu_section("activation quantization", m);
    m = tai_cpu_mark_now();
    measure_bf16();
    cpu_section("prompt products (bf16)", m);
    m = tai_cpu_mark_now();
    measure_ceilings(1);
    cpu_section("ceilings (after)", m);
    for (int t = 1; t <= N; t++) tai_pool_destroy(G.pool[t]);
    finish_ceilings();
    finish_fractions();
    print_ceilings();
    print_matvec();
    print_matmul();
    print_quant();
    print_bf16();
    if (!G.o.no_e2e) {
        m = tai_cpu_mark_now();
        measure_e2e(&mp);
        cpu_section("end to end", m);
    }
    report_targets();
    load_average(G.load_end, sizeof G.load_end);
    fprintf(T_, "other load: CPU time of other processes (and hypervisor steal) per second, in\n"
                "cores, while each section ran; it lowers the figures, most at %d threads:\n", N);
    for (int i = 0; i < G.n_load; i++)
        fprintf(T_, "  %-26s %7.1f s  %5.2f cores\n", G.load[i].name, G.load[i].wall,
                G.load[i].other_cores);
    fprintf(T_, "load average at the end: %s\n", G.load_end);
    fflush(T_);

    if (G.o.json) {
        write_json(json_stdout ? stdout : jf, &mp);
        if (jf && fclose(jf) != 0) die("cannot write %s", G.o.json);
        if (json_stdout) fflush(stdout);
    }
    free(G.mv);
    free(G.pk);
    free(G.mm);
    free(G.e2e);
    free(G.tg);
    return G.failed;
}
