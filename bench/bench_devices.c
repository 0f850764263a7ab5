/*
 * bench/bench_devices: every device this machine has, op by op and end to
 * end, in one run.
 *
 *   bench_devices [--reps N] [--threads N] [--quick] [--no-e2e] [--only 1|2|3]
 *                 [--cache DIR] [--plugin PATH ...]
 *
 * 1. Ops, per device (the CPU device at --threads, default all cores; every
 *    OpenCL device) and weight type:
 *    - matrix-vector, K x M = 4096 x 14336: GB/s of packed weights read per
 *      call (enough copies, called in turn, to exceed 1 GiB, so that no
 *      cache holds them), and the ratio to the CPU device;
 *    - matrix-matrix, 1024 x 1024 x 512 columns: GFLOP/s;
 *    - RMSNorm and SwiGLU over 4096 x 512 floats (GB/s of floats read and
 *      written) and attention of 32 heads over 1024 positions (us).
 *    Every figure: the median of --reps timed calls after one untimed one,
 *    each ended by the device's sync.
 * 2. End to end (each case in its own process): prompt (128 tokens) and
 *    generation (32 tokens) tok/s of SmolLM2-135M (when present) and the
 *    synthetic 1B Q4_0 model, with --device cpu, opencl (each OpenCL
 *    device) and auto.
 *    With --plugin, each plugin's devices are measured too (loaded in the
 *    children that run cases, never in this process). Beside the
 *    matrix-vector rates, each device's memory bandwidth as a copy within
 *    it measures it, and the rates as a share of it.
 * 3. The cost model: every device (the CPU and each OpenCL device)
 *    calibrated afresh in this run, then each model run on each device with
 *    that calibration, its per-layer prediction against the measured time
 *    (median over layers of the ratio).
 * --cache names the folder for OpenCL program binaries (default: none, so
 * the first open of each device compiles). Prints the CPU's name and every
 * device's; results on stdout, errors on stderr.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/e2e.h"
#include "bench/membw.h"
#include "core/types.h"
#include "offload/cpu/cpu.h"
#include "offload/host.h"
#include "offload/offload.h"
#include "offload/opencl/opencl.h"
#include "offload/plugin/plugin.h"

#define MAX_REPS 51
#define MAX_DEVS 8

static int reps = 5;
/* --plugin PATH: loaded by each child that runs a case, never by this
 * process (a GPU runtime started before a fork is unusable in the child) */
static const char *plugin_paths[8];
static int n_plugin_paths;

typedef struct {
    tai_device *d;
    tai_dbuf *bufs[256];
    int n;
} pool;

static tai_dref ref_of(tai_device *d, tai_dbuf *b) {
    if (d->info.unified) return tai_dref_host(b);
    tai_dref r = {b, 0};
    return r;
}

static int alloc(pool *p, size_t bytes, tai_dref *out) {
    if (p->n == 256) return -1;
    tai_dbuf *b = NULL;
    if (p->d->ops->buf_alloc(p->d->ctx, bytes ? bytes : 64, &b) != 0) return -1;
    p->bufs[p->n++] = b;
    *out = ref_of(p->d, b);
    return 0;
}

static void release(pool *p) {
    for (int i = 0; i < p->n; i++) p->d->ops->buf_free(p->d->ctx, p->bufs[i]);
    p->n = 0;
}

static int fill(tai_device *d, tai_dref r, size_t bytes, unsigned seed) {
    unsigned char *h = malloc(bytes);
    if (!h) return -1;
    for (size_t i = 0; i < bytes; i += 4) {
        seed = seed * 1103515245u + 12345u;
        const float f = (float)((seed >> 9) & 0xffff) / 65536.0f - 0.5f;
        memcpy(h + i, &f, bytes - i < 4 ? bytes - i : 4);
    }
    TinyAIStatus st = tai_dev_upload(d, r, h, bytes);
    if (st == TINYAI_OK) st = tai_dev_sync(d);
    free(h);
    return st == TINYAI_OK ? 0 : -1;
}

/* Packed weights of type t (random valid blocks) uploaded to `copies`
 * buffers. */
static int weights(pool *p, tai_type t, int64_t rows, int64_t n, int copies, tai_dref *out) {
    const size_t rb = tai_type_row_bytes(t, n), pb = tai_pack_bytes(t, rows, n);
    unsigned char *rm = malloc(rb * (size_t)rows), *pk = aligned_alloc(64, (pb + 63) / 64 * 64);
    float *row = malloc((size_t)n * sizeof *row);
    int rc = rm && pk && row ? 0 : -1;
    for (int64_t r = 0; rc == 0 && r < rows; r++) {
        for (int64_t k = 0; k < n; k++) row[k] = (float)((r * 31 + k * 17) % 97) / 97.0f - 0.5f;
        tai_quantize_row(t, row, rm + (size_t)r * rb, n);
    }
    if (rc == 0) tai_host_pack_matrix(NULL, t, rm, rows, n, pk);
    for (int c = 0; rc == 0 && c < copies; c++) {
        rc = alloc(p, pb, &out[c]);
        if (rc == 0 && (tai_dev_upload(p->d, out[c], pk, pb) != TINYAI_OK ||
                        tai_dev_sync(p->d) != TINYAI_OK))
            rc = -1;
    }
    free(rm);
    free(pk);
    free(row);
    return rc;
}

/* Median seconds of one matmul (calls rotate over the copies). */
static double time_matmul(pool *p, tai_type t, const tai_dref *w, int copies, int64_t rows,
                          int64_t n, int64_t ncols) {
    tai_dref x, y, s;
    const size_t sb = tai_dev_matmul_scratch(p->d, t, n, ncols);
    if (alloc(p, (size_t)(n * ncols) * 4, &x) || alloc(p, (size_t)(rows * ncols) * 4, &y) ||
        alloc(p, sb, &s) || fill(p->d, x, (size_t)(n * ncols) * 4, 7))
        return -1;
    double v[MAX_REPS];
    int k = 0;
    for (int r = -1; r < reps; r++) {
        const double t0 = tai_bench_now();
        for (int c = 0; c < copies; c++)
            if (tai_dev_matmul(p->d, t, w[c], rows, n, x, y, ncols, s) != TINYAI_OK) return -1;
        if (tai_dev_sync(p->d) != TINYAI_OK) return -1;
        if (r >= 0) v[k++] = (tai_bench_now() - t0) / copies;
    }
    return tai_bench_median(v, k);
}

static const tai_type types[] = {TAI_TYPE_F32, TAI_TYPE_F16, TAI_TYPE_Q8_0, TAI_TYPE_Q4_0,
                                 TAI_TYPE_Q4_1};
#define NT 5

typedef struct {
    char name[64], model[128];
    double mv_gbs[NT], mm_gflops[NT], norm_gbs, swiglu_gbs, att_us;
    double copy_gbs; /* device-to-device copy: bytes read + written per second */
} dev_figs;

static void ops_of(tai_device *d, int quick, dev_figs *f) {
    snprintf(f->name, sizeof f->name, "%s", d->info.name);
    snprintf(f->model, sizeof f->model, "%s", d->info.model);
    pool p = {d, {0}, 0};
    const int64_t K = quick ? 2048 : 4096, M = quick ? 4096 : 14336;
    for (int i = 0; i < NT; i++) {
        const size_t pb = tai_pack_bytes(types[i], M, K);
        int copies = (int)((((size_t)1 << 30) + pb - 1) / pb);
        if (quick) copies = 2;
        if (copies > 64) copies = 64;
        tai_dref w[64];
        f->mv_gbs[i] = f->mm_gflops[i] = -1;
        if (weights(&p, types[i], M, K, copies, w) == 0) {
            const double t = time_matmul(&p, types[i], w, copies, M, K, 1);
            if (t > 0) f->mv_gbs[i] = (double)pb / t / 1e9;
        }
        release(&p);
        const int64_t S = quick ? 512 : 1024, C = quick ? 64 : 512;
        if (weights(&p, types[i], S, S, 1, w) == 0) {
            const double t = time_matmul(&p, types[i], w, 1, S, S, C);
            if (t > 0) f->mm_gflops[i] = 2.0 * (double)S * S * C / t / 1e9;
        }
        release(&p);
    }
    /* the device's memory bandwidth, as a copy within it measures it */
    f->copy_gbs = -1;
    {
        const size_t cb = quick ? (size_t)64 << 20 : (size_t)512 << 20;
        tai_dref a, b;
        if (!alloc(&p, cb, &a) && !alloc(&p, cb, &b) && !fill(d, a, cb, 9)) {
            double v[MAX_REPS];
            int k = 0;
            for (int r = -1; r < reps; r++) {
                const double t0 = tai_bench_now();
                if (tai_dev_copy(d, b, a, cb) != TINYAI_OK || tai_dev_sync(d) != TINYAI_OK) break;
                if (r >= 0) v[k++] = tai_bench_now() - t0;
            }
            if (k == reps) f->copy_gbs = 2.0 * (double)cb / tai_bench_median(v, k) / 1e9;
        }
        release(&p);
    }
    /* RMSNorm, SwiGLU, attention */
    const int64_t E = 4096, C = 512;
    tai_dref x, o, w;
    f->norm_gbs = f->swiglu_gbs = f->att_us = -1;
    if (!alloc(&p, (size_t)(E * C) * 4, &x) && !alloc(&p, (size_t)(E * C) * 4, &o) &&
        !alloc(&p, (size_t)E * 4, &w) && !fill(d, x, (size_t)(E * C) * 4, 1) &&
        !fill(d, w, (size_t)E * 4, 2)) {
        double v[MAX_REPS], u[MAX_REPS];
        int k = 0;
        for (int r = -1; r < reps; r++) {
            double t0 = tai_bench_now();
            if (tai_dev_rmsnorm(d, o, x, w, E, C, 1e-5f) != TINYAI_OK || tai_dev_sync(d)) break;
            double t1 = tai_bench_now();
            if (tai_dev_swiglu(d, o, x, E * C) != TINYAI_OK || tai_dev_sync(d)) break;
            double t2 = tai_bench_now();
            if (r >= 0) v[k] = t1 - t0, u[k] = t2 - t1, k++;
        }
        if (k == reps) {
            f->norm_gbs = 2.0 * E * C * 4 / tai_bench_median(v, k) / 1e9;
            f->swiglu_gbs = 3.0 * E * C * 4 / tai_bench_median(u, k) / 1e9;
        }
    }
    const int H = 32, KV = 8, HD = 128, P = 1024;
    tai_dref q, ao, kc, vc, sc;
    const size_t sb = tai_dev_attention_scratch(d, P, H);
    if (!alloc(&p, (size_t)H * HD * 4, &q) && !alloc(&p, (size_t)H * HD * 4, &ao) &&
        !alloc(&p, (size_t)P * KV * HD * 4, &kc) && !alloc(&p, (size_t)P * KV * HD * 4, &vc) &&
        !alloc(&p, sb, &sc) && !fill(d, q, (size_t)H * HD * 4, 3) &&
        !fill(d, kc, (size_t)P * KV * HD * 4, 4) && !fill(d, vc, (size_t)P * KV * HD * 4, 5)) {
        double v[MAX_REPS];
        int k = 0;
        const int32_t pos[1] = {P - 1};
        for (int r = -1; r < reps; r++) {
            double t0 = tai_bench_now();
            if (tai_dev_attention(d, ao, q, 1, &kc, &vc, pos, H, KV, HD, sc, sb) != TINYAI_OK ||
                tai_dev_sync(d) != TINYAI_OK)
                break;
            if (r >= 0) v[k++] = tai_bench_now() - t0;
        }
        if (k == reps) f->att_us = tai_bench_median(v, k) * 1e6;
    }
    release(&p);
}

static void cell(double v, const char *fmt) {
    if (v < 0)
        printf("%9s", "-");
    else
        printf(fmt, v);
}

/* Loads the --plugin files (in a child); one that fails is said and skipped. */
static void load_plugins(void) {
    for (int i = 0; i < n_plugin_paths; i++)
        if (tinyaiLoadPlugin(plugin_paths[i], NULL) != TINYAI_OK)
            fprintf(stderr, "bench_devices: plugin skipped: %s\n", tinyaiLastErrorMessage());
}

/* What section 1's child tells main: the OpenCL device count and the
 * plugins' device names. */
typedef struct {
    int ncl, nplug;
    char plug[MAX_DEVS][64];
} dev_list;

static int send_list(int fd, int ncl) {
    dev_list l;
    memset(&l, 0, sizeof l);
    l.ncl = ncl;
    for (int i = 0; i < tai_plugin_devices() && l.nplug < MAX_DEVS; i++) {
        tai_plugin *p = NULL;
        int idx = 0;
        if (tai_plugin_device_at(i, &p, &idx) == TINYAI_OK)
            snprintf(l.plug[l.nplug++], sizeof l.plug[0], "%s:%d", tai_plugin_name(p), idx);
    }
    return write(fd, &l, sizeof l) == (ssize_t)sizeof l ? 0 : 1;
}

/* Section 1 (in a child: see main); writes the device list to fd. */
static int ops_section(long threads, int quick, const char *cache, int fd, int run) {
    load_plugins();
    if (!run) return send_list(fd, tai_opencl_count());
    tai_device *devs[MAX_DEVS];
    int nd = 0;
    if (tai_cpu_device_open(NULL, (int)threads, &devs[nd]) != TINYAI_OK) {
        fprintf(stderr, "bench_devices: %s\n", tinyaiLastErrorMessage());
        return 1;
    }
    nd++;
    const int ncl = tai_opencl_count();
    for (int i = 0; i < ncl && nd < MAX_DEVS; i++) {
        const double t0 = tai_bench_now();
        if (tai_opencl_device_open(i, cache, &devs[nd]) != TINYAI_OK) {
            fprintf(stderr, "bench_devices: opencl:%d: %s\n", i, tinyaiLastErrorMessage());
            continue;
        }
        printf("opencl:%d  %s | %s (opened in %.2f s)\n", i, devs[nd]->info.model,
               devs[nd]->info.version, tai_bench_now() - t0);
        nd++;
    }
    if (ncl == 0) printf("opencl:   no OpenCL device on this machine\n");
    for (int i = 0; i < tai_plugin_devices() && nd < MAX_DEVS; i++) {
        tai_plugin *pl = NULL;
        int idx = 0;
        if (tai_plugin_device_at(i, &pl, &idx) != TINYAI_OK ||
            tai_plugin_device_open(pl, idx, &devs[nd]) != TINYAI_OK) {
            fprintf(stderr, "bench_devices: %s\n", tinyaiLastErrorMessage());
            continue;
        }
        printf("%-9s %s | %s (plugin %s)\n", devs[nd]->info.name, devs[nd]->info.model,
               devs[nd]->info.version, tai_plugin_path(pl));
        nd++;
    }
    for (int i = 0; i < tai_plugin_count(); i++)
        if (tai_plugin_device_count(tai_plugin_at(i)) == 0)
            printf("plugin %s: no devices: %s\n", tai_plugin_name(tai_plugin_at(i)),
                   tai_plugin_last_log(tai_plugin_at(i)));
    printf("repetitions: %d timed after one untimed (medians)%s\n\n", reps, quick ? ", --quick shapes" : "");

    dev_figs f[MAX_DEVS];
    for (int i = 0; i < nd; i++) ops_of(devs[i], quick, &f[i]);
    printf("== 1. Ops\n\nmatrix-vector %s: GB/s of packed weights read (x: of the CPU device's)\n",
           quick ? "2048 x 4096" : "4096 x 14336");
    printf("%-12s", "device");
    for (int t = 0; t < NT; t++) printf("%9s %6s", tai_type_name(types[t]), "x");
    printf("\n");
    for (int i = 0; i < nd; i++) {
        printf("%-12s", f[i].name);
        for (int t = 0; t < NT; t++) {
            cell(f[i].mv_gbs[t], "%9.2f");
            if (f[i].mv_gbs[t] > 0 && f[0].mv_gbs[t] > 0)
                printf(" %5.2fx", f[i].mv_gbs[t] / f[0].mv_gbs[t]);
            else
                printf(" %6s", "-");
        }
        printf("\n");
    }
    printf("\nthe same as a share of the device's memory bandwidth, measured as a copy within "
           "it (%s MiB, GB/s read + written)\n%-12s %9s", quick ? "64" : "512", "device", "copy");
    for (int t = 0; t < NT; t++) printf("%9s", tai_type_name(types[t]));
    printf("\n");
    for (int i = 0; i < nd; i++) {
        printf("%-12s", f[i].name);
        cell(f[i].copy_gbs, " %8.1f");
        for (int t = 0; t < NT; t++)
            if (f[i].copy_gbs > 0 && f[i].mv_gbs[t] > 0)
                printf(" %7.1f%%", 100.0 * f[i].mv_gbs[t] / f[i].copy_gbs);
            else
                printf(" %8s", "-");
        printf("\n");
    }
    printf("\nmatrix-matrix %s: GFLOP/s\n%-12s", quick ? "512 x 512 x 64" : "1024 x 1024 x 512",
           "device");
    for (int t = 0; t < NT; t++) printf("%9s %6s", tai_type_name(types[t]), "x");
    printf("\n");
    for (int i = 0; i < nd; i++) {
        printf("%-12s", f[i].name);
        for (int t = 0; t < NT; t++) {
            cell(f[i].mm_gflops[t], "%9.1f");
            if (f[i].mm_gflops[t] > 0 && f[0].mm_gflops[t] > 0)
                printf(" %5.2fx", f[i].mm_gflops[t] / f[0].mm_gflops[t]);
            else
                printf(" %6s", "-");
        }
        printf("\n");
    }
    printf("\nother ops: RMSNorm and SwiGLU over 4096 x 512 floats (GB/s moved), attention of "
           "32 heads (8 KV) of 128 over 1024 positions (us)\n%-12s %9s %9s %9s\n",
           "device", "rmsnorm", "swiglu", "attn us");
    for (int i = 0; i < nd; i++) {
        printf("%-12s", f[i].name);
        cell(f[i].norm_gbs, " %8.2f");
        cell(f[i].swiglu_gbs, " %8.2f");
        cell(f[i].att_us, " %8.0f");
        printf("\n");
    }
    for (int i = 0; i < nd; i++) tai_device_close(devs[i]);
    return send_list(fd, ncl);
}

int main(int argc, char **argv) {
    int quick = 0, e2e = 1, only = 0;
    long threads = sysconf(_SC_NPROCESSORS_ONLN);
    const char *cache = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            threads = atol(argv[++i]);
        } else if (!strcmp(argv[i], "--quick")) {
            quick = 1;
        } else if (!strcmp(argv[i], "--no-e2e")) {
            e2e = 0;
        } else if (!strcmp(argv[i], "--plugin") && i + 1 < argc) {
            if (n_plugin_paths == 8) {
                fprintf(stderr, "bench_devices: at most 8 --plugin\n");
                return 2;
            }
            plugin_paths[n_plugin_paths++] = argv[++i];
            if (access(argv[i], R_OK) != 0) {
                fprintf(stderr, "bench_devices: --plugin: cannot read %s\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            only = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--cache") && i + 1 < argc) {
            cache = argv[++i];
        } else {
            fprintf(stderr, "usage: bench_devices [--reps N] [--threads N] [--quick] [--no-e2e] [--only 1|2|3] "
                            "[--plugin PATH] "
                            "[--cache DIR]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > MAX_REPS || threads < 1 || threads > 256 || only < 0 || only > 3) {
        fprintf(stderr, "bench_devices: --reps 1..%d, --threads 1..256, --only 1..3\n", MAX_REPS);
        return 2;
    }
    char tuning[512];
    tai_e2e_apply_tuning(0, tuning, sizeof tuning);
    printf("TinyAI device benchmark\ncpu:      %s (%s), %ld threads; kernel tuning %s\n",
           *tai_cpu_name() ? tai_cpu_name() : "?", tai_cpu_id(), threads, tuning);
    /* OpenCL runtimes start threads of their own, which a forked child
     * does not have (PoCL's queue then never finishes in the child): the
     * ops run in a child of their own, and this process, which forks the
     * end-to-end cases, never touches OpenCL. The child reports how many
     * OpenCL devices there are. */
    fflush(stdout);
    int fds[2];
    if (pipe(fds) != 0) return 1;
    const pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        close(fds[0]);
        const int rc = ops_section(threads, quick, cache, fds[1], !only || only == 1);
        fflush(stdout);
        _exit(rc);
    }
    close(fds[1]);
    dev_list list;
    memset(&list, 0, sizeof list);
    if (read(fds[0], &list, sizeof list) != (ssize_t)sizeof list) memset(&list, 0, sizeof list);
    const int ncl = list.ncl;
    close(fds[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "bench_devices: the ops section failed\n");
        return 1;
    }
    if (!e2e || only == 1) return 0;
    char small[4096], big[4096];
    tai_e2e_default_paths(small, sizeof small, big, sizeof big);
    if (tai_e2e_ensure_1b(big) != 0) return 1;
    tai_e2e_set_plugins(plugin_paths, n_plugin_paths);
    const char *models[2] = {small, big};
    if (!only || only == 2) {
        printf("\n== 2. End to end (prompt 128 tokens, generation 32 after 8; %d reps; each case "
               "in its own process); a pass's time predicted by the cost model / measured (ms; "
               "prediction - where the device was named)\n\n%-34s %-9s %12s %10s %17s %17s  %s\n",
               quick ? 1 : 3, "model", "--device", "prompt tok/s", "gen tok/s", "prompt pass ms",
               "decode pass ms", "layers ran on");
        char names[2 * MAX_DEVS + 2][64];
        int nn = 0;
        snprintf(names[nn++], sizeof names[0], "cpu");
        for (int i = 0; i < ncl && i < MAX_DEVS; i++)
            snprintf(names[nn++], sizeof names[0], "opencl:%d", i);
        for (int i = 0; i < list.nplug && nn < MAX_DEVS + 1; i++)
            snprintf(names[nn++], sizeof names[0], "%s", list.plug[i]);
        snprintf(names[nn++], sizeof names[0], "auto");
        for (int mi = 0; mi < 2; mi++) {
            if (access(models[mi], R_OK) != 0) {
                printf("%-34s (not present)\n", strrchr(models[mi], '/') + 1);
                continue;
            }
            for (int k = 0; k < nn; k++) {
                tai_e2e_set_device(names[k], cache);
                double peak = 0;
                tai_e2e_result r = tai_e2e_fork_case(models[mi], (int)threads, quick ? 1 : 3, 1,
                                                     128, quick ? 8 : 32, &peak);
                printf("%-34s %-9s ", strrchr(models[mi], '/') + 1, names[k]);
                if (!r.ok) {
                    printf("failed\n");
                } else {
                    char pp[32], gp[32];
                    snprintf(pp, sizeof pp, r.prompt_pred_s > 0 ? "%.2f" : "-",
                             r.prompt_pred_s * 1e3);
                    snprintf(gp, sizeof gp, r.gen_pred_s > 0 ? "%.3f" : "-", r.gen_pred_s * 1e3);
                    printf("%12.1f %10.2f %8s/%8.2f %8s/%8.3f  %s\n", r.prompt_tps, r.gen_tps, pp,
                           r.prompt_meas_s * 1e3, gp, r.gen_meas_s * 1e3, r.devices);
                }
                fflush(stdout);
            }
        }
    }
    if (only == 2) return 0;

    /* Section 3: every device calibrated now (in a child: the calibration
     * runs the devices' kernels, and OpenCL must not start in this
     * process), then each model on each device with that calibration, the
     * prediction per layer against the measurement. An OpenCL device runs
     * one repetition of 8 generated tokens: PoCL is slow. */
    printf("\n== 3. The cost model: each device calibrated in this run, then each model's "
           "layers on it predicted and measured (after the warm-up; median over the "
           "computing layers of predicted / measured)\n\n");
    fflush(stdout);
    char caldir[] = "/tmp/tinyai-bench-cal-XXXXXX";
    if (!mkdtemp(caldir)) {
        perror("bench_devices: mkdtemp");
        return 1;
    }
    const int ndev3 = 1 + (ncl < MAX_DEVS ? ncl : MAX_DEVS);
    const pid_t cp = fork();
    if (cp == 0) {
        int bad = 0;
        for (int i = 0; i < ndev3; i++) {
            TinyAIDeviceCalibration c;
            const double t0 = tai_bench_now();
            const TinyAIStatus cs = tinyaiCalibrateDevice(caldir, i, (int)threads, &c);
            if (cs != TINYAI_OK) {
                fprintf(stderr, "calibration of device %d: %s\n", i, tinyaiLastErrorMessage());
                bad |= i == 0;
                continue;
            }
            char name[32];
            if (i == 0) snprintf(name, sizeof name, "the CPU device");
            else snprintf(name, sizeof name, "opencl:%d", i - 1);
            printf("calibration of %s: %.2f s; matrix-vector Q4_0 %.1f GB/s; other load %.2f "
                   "cores%s\n",
                   name, tai_bench_now() - t0, c.matvecGBs[3],
                   c.otherLoadCores, c.measuredUnderLoad ? " (figures low: rerun when quiet)" : "");
        }
        fflush(stdout);
        _exit(bad ? 1 : 0);
    }
    int cst = -1;
    while (cp > 0 && waitpid(cp, &cst, 0) < 0 && errno == EINTR) {
    }
    if (cp > 0 && WIFEXITED(cst) && WEXITSTATUS(cst) == 0) {
        printf("%-34s %-9s %12s %12s %17s %17s\n", "model", "device", "prompt ratio", "decode ratio",
               "prompt pass ms", "decode pass ms");
        for (int di = 0; di < ndev3; di++) {
            char dev[32];
            if (di == 0) snprintf(dev, sizeof dev, "cpu");
            else snprintf(dev, sizeof dev, "opencl:%d", di - 1);
            tai_e2e_set_device(dev, caldir);
            for (int mi = 0; mi < 2; mi++) {
                if (access(models[mi], R_OK) != 0) continue;
                double peak = 0;
                const int reps = quick || di > 0 ? 1 : 3, gen = quick || di > 0 ? 8 : 32;
                tai_e2e_result r = tai_e2e_fork_case(models[mi], (int)threads, reps, 1, 128, gen, &peak);
                if (!r.ok) {
                    printf("%-34s %-9s failed\n", strrchr(models[mi], '/') + 1, dev);
                    continue;
                }
                printf("%-34s %-9s %12.3f %12.3f %8.2f/%8.2f %8.3f/%8.3f\n",
                       strrchr(models[mi], '/') + 1, dev, r.prompt_ratio, r.gen_ratio,
                       r.prompt_pred_s * 1e3, r.prompt_meas_s * 1e3, r.gen_pred_s * 1e3,
                       r.gen_meas_s * 1e3);
                fflush(stdout);
            }
        }
    } else {
        printf("calibration failed\n");
    }
    /* the calibration and the OpenCL program binaries made there */
    DIR *dir = opendir(caldir);
    for (struct dirent *de; dir && (de = readdir(dir));) {
        if (de->d_name[0] == '.') continue;
        char f[sizeof caldir + 300];
        snprintf(f, sizeof f, "%s/%s", caldir, de->d_name);
        unlink(f);
    }
    if (dir) closedir(dir);
    rmdir(caldir);
    return 0;
}
