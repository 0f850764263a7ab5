/*
 * tools/: the `tinyai` command. The only place that prints, reads the
 * environment or exits; everything else goes through the public API.
 *
 *   tinyai generate -m MODEL -p PROMPT [options]   stream generated text
 *   tinyai inspect MODEL                           hyperparameters, layers
 *   tinyai convert IN.gguf OUT.tmai                native format
 *   tinyai synth -o OUT.gguf [shape options]       random-weight model
 *   tinyai tune [--force]                          per-machine kernel tuning
 *   tinyai quantize IN OUT [--ffn int4 ...]         mixed precision
 *   tinyai bench [-m MODEL] [-p N] [-n N] ...       benchmark (tools/bench.c)
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tinyai/llm.h>
#include <tinyai/profile.h>
#include <tinyai/utils/memory.h>

#include "core/cpuload.h"
#include "tools/cli.h"

#define MAX_PROMPT_TOKENS (1 << 20)

const char *prog = "tinyai";

int fail(const char *what) {
    fprintf(stderr, "%s: %s: %s\n", prog, what, tinyaiLastErrorMessage());
    return 1;
}

int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (try --help)\n");
    return 2;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double peak_rss_mib(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0.0;
    return (double)ru.ru_maxrss / 1024.0; /* ru_maxrss is in KiB on Linux */
}

/* Strict integer parsing: the whole string, within [lo, hi]. */
int parse_long(const char *s, long lo, long hi, long *out) {
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static int parse_u64(const char *s, uint64_t *out) {
    if (!s || !*s || *s == '-') return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return 0;
    *out = v;
    return 1;
}

static int parse_float(const char *s, float lo, float hi, float *out) {
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || *end || !isfinite(v) || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

/* Takes the value of option argv[*i] (the next argument). */
const char *take(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) return NULL;
    return argv[++*i];
}

/* ---- generate ---------------------------------------------------------- */

static void generate_help(void) {
    printf("usage: tinyai generate -m MODEL -p PROMPT [options]\n"
           "\n"
           "Streams the model's continuation of PROMPT, then one summary line on\n"
           "stderr: prompt tokens and tok/s, generated tokens and tok/s, peak memory.\n"
           "Without --mem-limit the prompt is evaluated while the weights are read,\n"
           "each layer as it comes in; its tok/s leaves out the waits for them.\n"
           "\n"
           "  -m, --model PATH     model file (.gguf or .tmai)\n"
           "  -p, --prompt TEXT    prompt text\n"
           "  -n, --n-predict N    tokens to generate, 0..1048576 (default 128)\n"
           "  --chat               wrap the prompt in the model's chat template\n"
           "  --system TEXT        system message for --chat\n"
           "  --threads N          CPU threads, 1..256 (default: all cores)\n"
           "  --cpu ISA            kernels: auto, scalar, avx2, avx512 (default auto)\n"
           "  --device D           where the layers run: auto (default: per layer, where\n"
           "                       the cost model predicts it runs fastest), cpu, opencl,\n"
           "                       opencl:N, or a plugin's NAME:N (see `tinyai devices`);\n"
           "                       on a named device the blocks and head run there, the\n"
           "                       embedding lookup on the CPU\n"
           "  --plugin PATH        load a device plugin (repeatable; also the files and\n"
           "                       folders of TINYAI_PLUGIN_PATH, colon-separated); its\n"
           "                       devices are NAME:N\n"
           "  --plugin-options O   options for the --plugin before it (\"key=value;...\")\n"
           "  --placement          print where each layer ran, for the prompt and for\n"
           "                       decoding: device, predicted and measured time\n"
           "  --ctx N              context size in tokens (default min(model, 4096))\n"
           "  --temp T             temperature, 0 = greedy (default 0.8)\n"
           "  --top-k K            keep the K most likely tokens, 0 = all (default 40)\n"
           "  --top-p P            nucleus sampling mass, (0, 1] (default 0.95)\n"
           "  --repeat-penalty R   penalty for recent tokens, 1 = off (default 1)\n"
           "  --repeat-last-n N    tokens the penalty looks back (default 64)\n"
           "  --seed S             random seed (default 42)\n"
           "  --verify             verify .tmai layer checksums on every load\n"
           "  --profile            after generating, print per layer and per op: time,\n"
           "                       GB/s, GFLOP/s and the CPU's performance counters\n"
           "                       (docs/PROFILING.md)\n"
           "  --trace FILE         write a Chrome/Perfetto trace of the run to FILE\n"
           "                       (layers, ops, storage reads, waits, prefetches)\n"
           "  --memory-report FILE after generating, write TinyAI's memory by kind beside\n"
           "                       the process's resident memory to FILE (tracking on)\n"
           "  --mem-limit BYTES    memory for weights, KV cache and activations: a byte\n"
           "                       count or with a K, M or G suffix (default: no limit)\n"
           "  --mode MODE          adaptive (default), normal, memory-opt, streaming\n"
           "  --io ENGINE          uring (default, falls back to pread), pread, mmap\n"
           "  --cache-policy P     belady (default: evict the layer needed last), lru\n"
           "  --numa POLICY        local (default), interleave, replicate\n"
           "  --kv-type T          KV cache values: f32 (default, exact), f16 (half the\n"
           "                       memory and attention reads) or q8_0 (8-bit, 0.28x;\n"
           "                       heads of a multiple of 32 values); f16, q8_0 run on the CPU\n"
           "  --prompt-products P  int8 (default: as generated tokens) or bf16 (prompts on\n"
           "                       AMX-BF16 tiles where the CPU has them: faster, within ~1%%)\n"
           "  --prefetch N         layers read ahead, 0..64 (default 1; 0: none)\n"
           "  --quiet              print only the generated text\n"
           "  --no-tune            do not measure the kernel tuning if this CPU has none\n"
           "                       saved yet (see tinyai tune)\n"
           "\n"
           "With --mem-limit, the summary adds the mode chosen, bytes read per\n"
           "generated token, the cache hit rate, the share of time spent waiting for\n"
           "storage and the tracked peak memory.\n");
}

/* A byte count: digits, optionally followed by K, M or G (powers of 1024). */
int parse_bytes(const char *s, size_t *out) {
    if (!s || !*s || *s == '-') return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return 0;
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k') shift = 10;
    else if (*end == 'M' || *end == 'm') shift = 20;
    else if (*end == 'G' || *end == 'g') shift = 30;
    else if (*end) return 0;
    if (shift && end[1]) return 0;
    if (v > (SIZE_MAX >> shift)) return 0;
    *out = (size_t)(v << shift);
    return *out > 0;
}

int parse_choice(const char *v, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (names[i] && !strcmp(v, names[i])) return i;
    return -1;
}

/* ---- devices ------------------------------------------------------------ */

void cache_dir(char *buf, size_t n);
int make_dirs(const char *dir);

/* Whether `name` is "auto", "opencl" (with one device) or a listed device. */
/* ---- plugins ------------------------------------------------------------ */

/* Plugins to load: each --plugin PATH (with the --plugin-options after
 * it), then the files of TINYAI_PLUGIN_PATH (files, or folders whose *.so
 * files are taken in name order). */
#define MAX_PLUGINS 16
static struct {
    char *path;
    const char *options;
    int explicit_; /* named on the command line */
} plugins[MAX_PLUGINS];
static int n_plugins;
static char plugin_skipped[MAX_PLUGINS][600];
static int n_skipped;

static int add_plugin(const char *path, int explicit_) {
    if (n_plugins == MAX_PLUGINS) return -1;
    plugins[n_plugins].path = strdup(path);
    plugins[n_plugins].explicit_ = explicit_;
    return plugins[n_plugins].path ? n_plugins++ : -1;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* TINYAI_PLUGIN_PATH: colon-separated files and folders. */
static void plugins_from_env(void) {
    const char *env = getenv("TINYAI_PLUGIN_PATH");
    if (!env || !*env) return;
    char *list = strdup(env);
    for (char *save = NULL, *e = list ? strtok_r(list, ":", &save) : NULL; e;
         e = strtok_r(NULL, ":", &save)) {
        struct stat sb;
        if (stat(e, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            add_plugin(e, 0);
            continue;
        }
        DIR *dir = opendir(e);
        char *names[64];
        int nn = 0;
        for (struct dirent *de; dir && (de = readdir(dir)) && nn < 64;) {
            const size_t len = strlen(de->d_name);
            if (len > 3 && !strcmp(de->d_name + len - 3, ".so")) {
                char full[4096];
                snprintf(full, sizeof full, "%s/%s", e, de->d_name);
                names[nn] = strdup(full);
                if (names[nn]) nn++;
            }
        }
        if (dir) closedir(dir);
        qsort(names, (size_t)nn, sizeof *names, by_name);
        for (int i = 0; i < nn; i++) {
            add_plugin(names[i], 0);
            free(names[i]);
        }
    }
    free(list);
}

/* Takes --plugin PATH and --plugin-options OPTS out of argv (every
 * command accepts them). 0, or 2 after a usage error. */
static int take_plugin_args(int *argc, char **argv) {
    int k = 1;
    for (int i = 1; i < *argc; i++) {
        if (!strcmp(argv[i], "--plugin") || !strcmp(argv[i], "--plugin-options")) {
            if (i + 1 >= *argc) return usage_error("%s needs a value", argv[i]);
            if (argv[i][8] == 0) {
                if (add_plugin(argv[i + 1], 1) < 0)
                    return usage_error("more than 16 plugins (at %s)", argv[i + 1]);
            } else if (n_plugins == 0) {
                return usage_error("%s", "--plugin-options follows the --plugin it is for");
            } else {
                plugins[n_plugins - 1].options = argv[i + 1];
            }
            i++;
            continue;
        }
        argv[k++] = argv[i];
    }
    argv[k] = NULL;
    *argc = k;
    /* a plugin named on the command line must be there: a typo is a usage
     * error, not a silent fallback to the CPU */
    for (int i = 0; i < n_plugins; i++)
        if (access(plugins[i].path, R_OK) != 0)
            return usage_error("--plugin: cannot read '%s'", plugins[i].path);
    plugins_from_env();
    return 0;
}

/* Loads them; one that fails is skipped with one line saying why (kept
 * for an error naming it, should --device ask for it). */
void load_plugins(int quiet) {
    for (int i = 0; i < n_plugins; i++) {
        if (tinyaiLoadPlugin(plugins[i].path, plugins[i].options) == TINYAI_OK) continue;
        if (!quiet) fprintf(stderr, "%s: plugin skipped: %s\n", prog, tinyaiLastErrorMessage());
        if (n_skipped < MAX_PLUGINS)
            snprintf(plugin_skipped[n_skipped++], sizeof plugin_skipped[0], "%s",
                     tinyaiLastErrorMessage());
    }
}

static int device_exists(const char *name) {
    if (!strcmp(name, "auto")) return 1;
    const int n = tinyaiDeviceCount();
    for (int i = 0; i < n; i++) {
        TinyAIDeviceInfo d;
        if (tinyaiGetDeviceInfo(i, &d) != TINYAI_OK) continue;
        if (!strcmp(d.name, name) || (!strcmp(name, "opencl") && !strcmp(d.name, "opencl:0")))
            return 1;
        /* a plugin's: NAME (device 0), NAME:N, plugin:NAME[:N] */
        const char *q = strncmp(name, "plugin:", 7) ? name : name + 7;
        const size_t len = strlen(q);
        if (!strncmp(d.name, q, len) && (!strcmp(d.name + len, ":0") || d.name[len] == 0))
            return 1;
    }
    return 0;
}

/* Measures every device for auto in a child process, so that the
 * measurement's buffers (about 1 GB on a CPU with a large last-level
 * cache) and an OpenCL compiler's memory never count in this process's
 * peak memory (a --mem-limit holds from the first run on), and so that
 * this process starts no OpenCL runtime it may not use. A failure only
 * leaves the measuring to the load. */
static void calibrate_devices(const char *dir, int threads, int cpu_only) {
    fflush(NULL);
    const pid_t pid = fork();
    if (pid < 0) return;
    if (pid == 0) {
        load_plugins(1);
        const int n = cpu_only ? 1 : tinyaiDeviceCount();
        for (int i = 0; i < n; i++) {
            TinyAIDeviceCalibration c;
            (void)tinyaiCalibrateDevice(dir, i, threads, &c);
        }
        _exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
}

int measure_devices_once(const char *dir, const char *device, int threads, int quiet) {
    /* a named device is not measured: its calibration, where one is kept,
     * gives --placement its predictions */
    if (device && strcmp(device, "auto") != 0) return 0;
    char cal[4100];
    snprintf(cal, sizeof cal, "%s/devices.json", dir);
    const int have_file = access(cal, F_OK) == 0;
    /* the CPU's calibration is per thread count: a file made with other
     * threads lacks it (the other devices' are there) */
    TinyAIDeviceCalibration c;
    if (have_file && tinyaiGetDeviceCalibration(dir, 0, threads, &c) == TINYAI_OK) return 0;
    tinyaiClearError();
    if (!quiet)
        fprintf(stderr, "%s: measuring this machine's devices for --device auto (once; "
                        "a few seconds)\n", prog);
    calibrate_devices(dir, threads, have_file);
    /* a measurement taken while the machine was busy is low, and stays
     * (saved) until measured again: said once, now */
    if (!quiet && tinyaiGetDeviceCalibration(dir, 0, threads, &c) == TINYAI_OK && c.measuredUnderLoad)
        fprintf(stderr, "%s: warning: other work kept %.1f cores busy while the CPU was measured; "
                        "--device auto decides with low figures until `tinyai devices --calibrate` "
                        "runs on a quiet machine\n", prog, c.otherLoadCores);
    tinyaiClearError();
    return 1;
}

/* Per layer, for the prompt's batch and for decoding: the device, the cost
 * model's prediction and the mean measured time. */
static void print_placement(const TinyAIModel *model, int layers, int prompt_cols) {
    const int cols[2] = {prompt_cols, 1};
    for (int k = 0; k < 2; k++) {
        TinyAILayerPlacement p;
        if (tinyaiGetLayerPlacement(model, cols[k], 0, &p) != TINYAI_OK) return;
        fprintf(stderr, "placement for %s (%d column%s; bucket of %d+): layer, device, "
                        "predicted ms, measured ms\n",
                k == 0 ? "the prompt" : "decoding", cols[k], cols[k] > 1 ? "s" : "",
                p.bucketColumns);
        double tp = 0, tm = 0, ratio[1100];
        int nr = 0;
        for (int l = 0; l < layers; l++) {
            if (tinyaiGetLayerPlacement(model, cols[k], l, &p) != TINYAI_OK) return;
            fprintf(stderr, "  %3d %-9s %9.3f %9.3f%s\n", l, p.device, p.predictedSeconds * 1e3,
                    p.measuredSeconds * 1e3, p.passes ? "" : " (not run)");
            tp += p.predictedSeconds;
            tm += p.measuredSeconds;
            if (p.passes && p.predictedSeconds > 0 && p.measuredSeconds > 0 && nr < 1100)
                ratio[nr++] = p.predictedSeconds / p.measuredSeconds;
        }
        fprintf(stderr, "  all       %9.3f %9.3f%s\n", tp * 1e3, tm * 1e3,
                tp > 0 ? ""
                       : " (no prediction: the device was named and has no calibration; "
                         "tinyai devices --calibrate makes one)");
        if (nr > 0) {
            for (int i = 1; i < nr; i++)
                for (int j = i; j > 0 && ratio[j] < ratio[j - 1]; j--) {
                    const double x = ratio[j];
                    ratio[j] = ratio[j - 1];
                    ratio[j - 1] = x;
                }
            fprintf(stderr, "  predicted / measured, median over %d layers: %.2f\n", nr,
                    nr % 2 ? ratio[nr / 2] : (ratio[nr / 2 - 1] + ratio[nr / 2]) / 2);
        }
    }
}

static int cmd_devices(int argc, char **argv) {
    int calibrate = 0;
    long threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: tinyai devices [--calibrate] [--threads N] [--plugin PATH ...]\n\n"
                   "Lists what the layers can run on: the CPU, every OpenCL device the\n"
                   "ICD loader reports and every loaded plugin's devices (--plugin PATH,\n"
                   "TINYAI_PLUGIN_PATH), with the names --device takes and the figures\n"
                   "--device auto decides with, where measured. --calibrate measures\n"
                   "each (what --device auto decides with; generate does it once by itself)\n"
                   "and saves it in the cache folder ($TINYAI_CACHE, else ~/.cache/tinyai),\n"
                   "the CPU at N threads (default: all cores).\n");
            return 0;
        } else if (!strcmp(argv[i], "--calibrate")) {
            calibrate = 1;
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            if (!parse_long(argv[++i], 1, 256, &threads))
                return usage_error("--threads must be an integer in 1..256, got '%s'", argv[i]);
        } else {
            return usage_error("devices: unknown argument %s", argv[i]);
        }
    }
    load_plugins(0);
    for (int i = 0; i < tinyaiPluginCount(); i++) {
        TinyAIPluginInfo pi;
        if (tinyaiGetPluginInfo(i, &pi) == TINYAI_OK && pi.devices == 0)
            printf("plugin %s (%s, ABI %d.%d): no devices%s%s\n", pi.name, pi.path, pi.abiMajor,
                   pi.abiMinor, pi.lastLog[0] ? ": " : "", pi.lastLog);
    }
    static const char *const kinds[] = {"CPU", "GPU", "accelerator", "other"};
    char dir[4000];
    cache_dir(dir, sizeof dir);
    if (calibrate && make_dirs(dir) != 0) return fail("cannot create the cache folder");
    const int n = tinyaiDeviceCount();
    for (int i = 0; i < n; i++) {
        TinyAIDeviceInfo d;
        if (tinyaiGetDeviceInfo(i, &d) != TINYAI_OK) continue;
        printf("%-12s %-11s %s | %s | %s | %.1f GiB\n", d.name,
               kinds[d.kind >= 0 && d.kind < 4 ? d.kind : 3], d.model, d.vendor, d.version,
               (double)d.memoryBytes / (1 << 30));
        TinyAIDeviceCalibration c;
        if (!calibrate) {
            /* the figures auto decides with, if measured */
            const TinyAIStatus st = tinyaiGetDeviceCalibration(dir, i, (int)threads, &c);
            if (st == TINYAI_ERR_IO) {
                printf("             not calibrated yet (tinyai devices --calibrate)\n");
                continue;
            }
            if (st != TINYAI_OK) {
                fprintf(stderr, "%s: warning: %s\n", prog, tinyaiLastErrorMessage());
                continue;
            }
        } else if (tinyaiCalibrateDevice(dir, i, (int)threads, &c) != TINYAI_OK) {
            fprintf(stderr, "%s: %s: calibration failed: %s\n", prog, d.name,
                    tinyaiLastErrorMessage());
            continue;
        }
        printf("             matrix-vector GB/s   F32 %.1f  F16 %.1f  Q8_0 %.1f  Q4_0 %.1f  Q4_1 %.1f\n",
               c.matvecGBs[0], c.matvecGBs[1], c.matvecGBs[2], c.matvecGBs[3], c.matvecGBs[4]);
        printf("             matrix-matrix GFLOP/s at 64 / 512 columns  F32 %.0f/%.0f  F16 %.0f/%.0f  "
               "Q8_0 %.0f/%.0f  Q4_0 %.0f/%.0f  Q4_1 %.0f/%.0f\n",
               c.matmulGFlops[0], c.matmulBigGFlops[0], c.matmulGFlops[1], c.matmulBigGFlops[1],
               c.matmulGFlops[2], c.matmulBigGFlops[2], c.matmulGFlops[3], c.matmulBigGFlops[3],
               c.matmulGFlops[4], c.matmulBigGFlops[4]);
        printf("             op %.1f us, product %.1f us, sync %.1f us, elementwise %.1f GB/s",
               c.opMicros, c.matmulOpMicros, c.syncMicros, c.elementwiseGBs);
        if (c.hostToDeviceGBs > 0)
            printf(", to device %.1f GB/s, from it %.1f GB/s, transfer %.1f us", c.hostToDeviceGBs,
                   c.deviceToHostGBs, c.transferMicros);
        printf("\n");
        if (c.measuredUnderLoad)
            printf("             measured while other work kept %.1f cores busy: these figures are "
                   "low (tinyai devices --calibrate on a quiet machine)\n",
                   c.otherLoadCores);
    }
    if (calibrate) printf("saved in %s/devices.json\n", dir);
    return 0;
}

/* ---- kernel tuning ------------------------------------------------------ */

/* The cache folder: $TINYAI_CACHE, else ~/.cache/tinyai. */
void cache_dir(char *buf, size_t n) {
    const char *c = getenv("TINYAI_CACHE"), *home = getenv("HOME");
    if (c && *c)
        snprintf(buf, n, "%s", c);
    else
        snprintf(buf, n, "%s/.cache/tinyai", home && *home ? home : ".");
}

/* mkdir -p for the cache folder (0 or -1). */
int make_dirs(const char *dir) {
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) return -1;
        *s = '/';
    }
    return mkdir(p, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static void tuning_path(char *buf, size_t n) {
    char dir[4000];
    TinyAICpuInfo ci;
    cache_dir(dir, sizeof dir);
    if (tinyaiGetCpuInfo(&ci) != TINYAI_OK) snprintf(ci.signature, sizeof ci.signature, "unknown");
    snprintf(buf, n, "%s/kernels-%s.tune", dir, ci.signature);
}

/* Measures and saves the tuning; 0, or 1 after printing why not. The
 * measurement runs in a child process, so that its buffers (about 1 GiB)
 * never count in this process's peak memory, which generate reports. */
/* Other work kept more cores than this busy while measuring: the result
 * is low, and the first-run measurement is not kept (measured again later). */
#define TUNE_BUSY_CORES 0.25

/* explicit: `tinyai tune` (the result is saved even when the machine was
 * busy, with a warning); otherwise the first run's own measurement. */
static int measure_tuning(const char *path, int say, int explicit_run) {
    if (say)
        fprintf(stderr, "%s: measuring this CPU's kernel prefetch distances (once; a few "
                        "seconds)\n", prog);
    TinyAIKernelTuning t;
    double gain = 1.0;
    int fds[2];
    if (pipe(fds) != 0) return fail("kernel tuning: pipe");
    fflush(NULL);
    const tai_cpu_mark m0 = tai_cpu_mark_now();
    pid_t pid = fork();
    if (pid < 0) return fail("kernel tuning: fork");
    if (pid == 0) {
        close(fds[0]);
        struct {
            TinyAIKernelTuning t;
            double gain;
            int ok;
        } r = {{0, 0}, 1.0, 0};
        r.ok = tinyaiTuneKernels(&r.t, &r.gain) == TINYAI_OK;
        _exit(write(fds[1], &r, sizeof r) == (ssize_t)sizeof r && r.ok ? 0 : 1);
    }
    close(fds[1]);
    struct {
        TinyAIKernelTuning t;
        double gain;
        int ok;
    } r = {{0, 0}, 1.0, 0};
    ssize_t got = read(fds[0], &r, sizeof r);
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (got != (ssize_t)sizeof r || !r.ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "%s: kernel tuning failed (the CPU's defaults are used)\n", prog);
        return 1;
    }
    t = r.t;
    gain = r.gain;
    tinyaiSetKernelTuning(&t);
    const double other = tai_cpu_other_cores(m0, tai_cpu_mark_now());
    if (other > TUNE_BUSY_CORES && !explicit_run) {
        fprintf(stderr, "%s: prefetch %d bytes into L1, %d into L2 for this run, not saved: other "
                        "work kept %.2f cores busy while measuring (measured again next time; "
                        "`tinyai tune --force` on an idle machine)\n",
                prog, t.prefetchL1Bytes, t.prefetchL2Bytes, other);
        return 0;
    }
    if (other > TUNE_BUSY_CORES)
        fprintf(stderr, "%s: warning: other work kept %.2f cores busy while measuring: the "
                        "distances may not be this CPU's best (measure again with --force on an "
                        "idle machine)\n",
                prog, other);
    char dir[4000];
    cache_dir(dir, sizeof dir);
    if (make_dirs(dir) != 0 || tinyaiSaveKernelTuning(path, &t) != TINYAI_OK) {
        fprintf(stderr, "%s: warning: cannot save the kernel tuning to %s: %s\n", prog, path,
                tinyaiLastErrorMessage());
        return 0;
    }
    if (say)
        fprintf(stderr, "%s: prefetch %d bytes into L1, %d into L2 (%.2fx the speed without); "
                        "saved to %s\n",
                prog, t.prefetchL1Bytes, t.prefetchL2Bytes, gain, path);
    return 0;
}

/* Applies this machine's saved tuning; without one (or with one for another
 * CPU), measures it first unless `measure` is 0. Never fails the command: a
 * problem leaves the CPU's defaults and is said on stderr. */
void apply_tuning(int measure) {
    char path[4096];
    tuning_path(path, sizeof path);
    TinyAIKernelTuning t;
    TinyAIStatus st = tinyaiLoadKernelTuning(path, &t);
    if (st == TINYAI_OK) {
        tinyaiSetKernelTuning(&t);
        return;
    }
    if (st != TINYAI_ERR_IO)
        fprintf(stderr, "%s: warning: ignoring the kernel tuning: %s\n", prog,
                tinyaiLastErrorMessage());
    if (measure) measure_tuning(path, 1, 0);
}

static int cmd_tune(int argc, char **argv) {
    int force = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: tinyai tune [--force]\n\n"
                   "Measures how far ahead this CPU's streaming kernels should prefetch\n"
                   "(a few seconds, about 1 GiB of memory; run it on an idle machine) and\n"
                   "saves it in the cache folder ($TINYAI_CACHE, else ~/.cache/tinyai), one\n"
                   "file per CPU signature. `generate` does this by itself the first time\n"
                   "it runs on a CPU; --force measures again.\n");
            return 0;
        } else if (!strcmp(argv[i], "--force")) {
            force = 1;
        } else {
            return usage_error("unknown option %s", argv[i]);
        }
    }
    char path[4096];
    tuning_path(path, sizeof path);
    TinyAIKernelTuning t;
    if (!force && tinyaiLoadKernelTuning(path, &t) == TINYAI_OK) {
        printf("prefetch %d bytes into L1, %d into L2 (measured before: %s; --force to "
               "measure again)\n",
               t.prefetchL1Bytes, t.prefetchL2Bytes, path);
        return 0;
    }
    return measure_tuning(path, 1, 1);
}

int model_option(const char *a, const char *v, TinyAIModelConfig *mc) {
    long threads = 0;
    if (!strcmp(a, "--threads")) {
        if (!parse_long(v, 1, 256, &threads)) return usage_error("--threads must be in 1..256, got '%s'", v);
        mc->threads = (int)threads;
        return 1;
    }
    if (!strcmp(a, "--device")) {
        mc->device = v;
        return 1;
    }
    return memory_option(a, v, mc);
}

int memory_option(const char *a, const char *v, TinyAIModelConfig *mc) {
    static const char *const modes[] = {"normal", "memory-opt", "streaming", "adaptive"};
    static const char *const ios[] = {"auto", "uring", "pread", "mmap"};
    static const char *const policies[] = {"belady", "lru"};
    static const char *const numas[] = {"local", "interleave", "replicate"};
    static const char *const kvs[] = {"f32", "f16", "q8_0"};
    int k;
    if (!strcmp(a, "--mem-limit")) {
        if (!parse_bytes(v, &mc->memoryLimit))
            return usage_error("--mem-limit must be a positive byte count (K, M, G suffixes), got '%s'", v);
    } else if (!strcmp(a, "--mode")) {
        if ((k = parse_choice(v, modes, 4)) < 0)
            return usage_error("--mode must be adaptive, normal, memory-opt or streaming, got '%s'", v);
        mc->mode = (TinyAIExecutionMode)k;
    } else if (!strcmp(a, "--io")) {
        if ((k = parse_choice(v, ios, 4)) < 0 && strcmp(v, "io_uring") != 0)
            return usage_error("--io must be uring, pread or mmap, got '%s'", v);
        mc->ioEngine = (TinyAIIOEngine)(k < 0 ? TINYAI_IO_URING : k);
    } else if (!strcmp(a, "--cache-policy")) {
        if ((k = parse_choice(v, policies, 2)) < 0)
            return usage_error("--cache-policy must be belady or lru, got '%s'", v);
        mc->cachePolicy = (TinyAICachePolicy)k;
    } else if (!strcmp(a, "--numa")) {
        if ((k = parse_choice(v, numas, 3)) < 0)
            return usage_error("--numa must be local, interleave or replicate, got '%s'", v);
        mc->numaPolicy = (TinyAINumaPolicy)k;
    } else if (!strcmp(a, "--kv-type")) {
        if ((k = parse_choice(v, kvs, 3)) < 0)
            return usage_error("--kv-type must be f32, f16 or q8_0, got '%s'", v);
        mc->kvCacheType = (TinyAIKVCacheType)k;
    } else if (!strcmp(a, "--prompt-products")) {
        static const char *const kinds[] = {"int8", "bf16"};
        if ((k = parse_choice(v, kinds, 2)) < 0)
            return usage_error("--prompt-products must be int8 or bf16, got '%s'", v);
        mc->bf16Prompts = k == 1;
    } else {
        return 0;
    }
    return 1;
}

/* Whether `path` can be written (a file there is left as it was): said on
 * stderr if not, so that nothing runs for an output that cannot be kept. */
int writable(const char *path) {
    const int existed = access(path, F_OK) == 0;
    FILE *f = fopen(path, "a");
    if (!f) {
        fprintf(stderr, "%s: %s: cannot write it: %s\n", prog, path, strerror(errno));
        return 0;
    }
    fclose(f);
    if (!existed) remove(path);
    return 1;
}

static int cmd_generate(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL, *system_msg = NULL, *cpu = NULL,
               *device = NULL, *report = NULL, *trace = NULL;
    int profile = 0;
    long n_predict = 128, threads = 0, ctx = 0, prefetch = 1;
    int chat = 0, quiet = 0, verify = 0, tune = 1, placement = 0;
    TinyAIModelConfig mem = tinyaiCreateDefaultModelConfig(); /* the memory options */
    int mo = 0;
    TinyAISamplerConfig sc = tinyaiCreateDefaultSamplerConfig();
    sc.seed = 42;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        long lv;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            generate_help();
            return 0;
        } else if (!strcmp(a, "--chat")) {
            chat = 1;
        } else if (!strcmp(a, "--profile")) {
            profile = 1;
        } else if (!strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (!strcmp(a, "--verify")) {
            verify = 1;
        } else if (!strcmp(a, "--no-tune")) {
            tune = 0;
        } else if (!strcmp(a, "--placement")) {
            placement = 1;
        } else if (!(v = take(argc, argv, &i))) {
            return usage_error("option %s needs a value or is unknown", a);
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            model_path = v;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            prompt = v;
        } else if (!strcmp(a, "--system")) {
            system_msg = v;
        } else if (!strcmp(a, "--trace")) {
            if (!writable(v)) return 1;
            trace = v;
        } else if (!strcmp(a, "--memory-report")) {
            /* a report that cannot be written is refused before any work */
            if (!writable(v)) return 1;
            report = v;
            tinyai_enable_memory_tracking(true);
        } else if (!strcmp(a, "--cpu")) {
            cpu = v;
        } else if (!strcmp(a, "--device")) {
            device = v; /* checked once the plugins are loaded */
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (!parse_long(v, 0, 1 << 20, &n_predict))
                return usage_error("-n must be an integer in 0..1048576, got '%s'", v);
        } else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            if (!parse_long(v, 1, 256, &threads))
                return usage_error("--threads must be an integer in 1..256, got '%s'", v);
        } else if (!strcmp(a, "--ctx")) {
            if (!parse_long(v, 1, INT_MAX, &ctx))
                return usage_error("--ctx must be a positive integer, got '%s'", v);
        } else if (!strcmp(a, "--temp")) {
            if (!parse_float(v, 0.0f, 100.0f, &sc.temperature))
                return usage_error("--temp must be a number in 0..100, got '%s'", v);
        } else if (!strcmp(a, "--top-k")) {
            if (!parse_long(v, 0, INT_MAX, &lv)) return usage_error("--top-k must be >= 0, got '%s'", v);
            sc.topK = (int)lv;
        } else if (!strcmp(a, "--top-p")) {
            if (!parse_float(v, 1e-6f, 1.0f, &sc.topP))
                return usage_error("--top-p must be in (0, 1], got '%s'", v);
        } else if (!strcmp(a, "--repeat-penalty")) {
            if (!parse_float(v, 1e-3f, 100.0f, &sc.repeatPenalty))
                return usage_error("--repeat-penalty must be in 0.001..100, got '%s'", v);
        } else if (!strcmp(a, "--repeat-last-n")) {
            if (!parse_long(v, 0, 1 << 20, &lv))
                return usage_error("--repeat-last-n must be in 0..1048576, got '%s'", v);
            sc.repeatLastN = (int)lv;
        } else if (!strcmp(a, "--seed")) {
            if (!parse_u64(v, &sc.seed)) return usage_error("--seed must be a non-negative integer, got '%s'", v);
        } else if ((mo = memory_option(a, v, &mem)) != 0) {
            if (mo == 2) return 2;
        } else if (!strcmp(a, "--prefetch")) {
            if (!parse_long(v, 0, 64, &prefetch))
                return usage_error("--prefetch must be an integer in 0..64, got '%s'", v);
        } else {
            return usage_error("unknown option %s", a);
        }
    }
    if (!model_path) return usage_error("%s", "generate needs -m MODEL");
    if (!prompt) return usage_error("%s", "generate needs -p PROMPT");
    /* the plugins load after the first run's measuring child (which loads
     * its own): a GPU runtime started before a fork is unusable in the
     * child */
    char cdir[4000];
    cache_dir(cdir, sizeof cdir);
    const int have_cache = make_dirs(cdir) == 0;
    if (have_cache) measure_devices_once(cdir, device, (int)threads, quiet);
    /* a plugin that fails to load is skipped with one line, unless --device
     * names a device that is not a built-in one: then it is the error */
    const int builtin = !device || !strcmp(device, "auto") || !strcmp(device, "cpu") ||
                        !strncmp(device, "opencl", 6);
    load_plugins(quiet || !builtin);
    if (device && strcmp(device, "auto") != 0 && !device_exists(device)) {
        for (int i = 0; i < n_skipped; i++) fprintf(stderr, "%s: %s\n", prog, plugin_skipped[i]);
        return usage_error("--device: no device '%s' here (auto, cpu, or one of "
                           "`tinyai devices`)", device);
    }

    int rc = 1;
    TinyAIModel *model = NULL;
    TinyAISession *sess = NULL;
    TinyAISampler *smp = NULL;
    int32_t *ids = NULL;
    apply_tuning(tune);
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.threads = (int)threads;
    mc.cpu = cpu;
    mc.verifyChecksums = verify;
    mc.memoryLimit = mem.memoryLimit;
    mc.mode = mem.mode;
    mc.ioEngine = mem.ioEngine;
    mc.cachePolicy = mem.cachePolicy;
    mc.numaPolicy = mem.numaPolicy;
    mc.kvCacheType = mem.kvCacheType;
    mc.prefetchWindow = prefetch == 0 ? -1 : (int)prefetch;
    /* the cache folder keeps the devices' calibrations (auto) and OpenCL
     * program binaries */
    if (have_cache) mc.cacheDir = cdir;
    mc.device = device;
    /* the first token need not wait for the last layer: the prompt's pass
     * runs each layer as its weights come in */
    mc.loadInBackground = true;
    if (tinyaiLoadModel(model_path, &mc, &model) != TINYAI_OK) {
        rc = fail("cannot load model");
        goto done;
    }
    if ((profile || trace) &&
        tinyaiStartProfile(model, (profile ? TINYAI_PROFILE_COUNTERS : 0) |
                                      (trace ? TINYAI_PROFILE_TRACE : 0)) != TINYAI_OK) {
        rc = fail("profile");
        goto done;
    }
    TinyAIModelInfo info;
    tinyaiGetModelInfo(model, &info);
    if (info.placementNote[0]) fprintf(stderr, "%s: warning: %s\n", prog, info.placementNote);
    if (ctx > info.nCtxTrain) {
        fprintf(stderr, "%s: --ctx %ld is larger than the model's context (%d)\n", prog, ctx, info.nCtxTrain);
        rc = 2;
        goto done;
    }
    /* with --chat, the conversation through the model's template: its
     * markers control tokens, the messages' texts text */
    TinyAIChatMessage msgs[2];
    size_t nm = 0;
    if (system_msg) msgs[nm++] = (TinyAIChatMessage){"system", system_msg};
    msgs[nm++] = (TinyAIChatMessage){"user", prompt};
#define ENCODE(IDS, CAP)                                                                     \
    (chat ? tinyaiTokenizeChat(model, msgs, nm, true, info.addBosToken, IDS, CAP, &n_ids)     \
          : tinyaiTokenize(model, prompt, info.addBosToken, false, IDS, CAP, &n_ids))
    size_t n_ids = 0;
    TinyAIStatus st = ENCODE(NULL, 0);
    if (st != TINYAI_OK && st != TINYAI_ERR_RANGE) {
        rc = fail(chat ? "chat template" : "tokenize");
        goto done;
    }
    if (n_ids > MAX_PROMPT_TOKENS) {
        fprintf(stderr, "%s: prompt is %zu tokens, more than %d\n", prog, n_ids, MAX_PROMPT_TOKENS);
        goto done;
    }
    ids = malloc((n_ids ? n_ids : 1) * sizeof *ids);
    if (!ids || ENCODE(ids, n_ids) != TINYAI_OK) {
        rc = fail("tokenize");
        goto done;
    }
#undef ENCODE
    if (n_ids == 0) {
        fprintf(stderr, "%s: the prompt is empty (no tokens)\n", prog);
        rc = 2;
        goto done;
    }
    /* under a limit the KV cache is part of it: no larger than needed */
    if (ctx == 0 && mem.memoryLimit > 0) {
        size_t want = n_ids + (size_t)n_predict + 1;
        ctx = want < (size_t)info.nCtxTrain ? (long)want : info.nCtxTrain;
    }
    if (tinyaiCreateSession(model, (int)ctx, &sess) != TINYAI_OK) {
        rc = fail("cannot create session");
        goto done;
    }
    int n_ctx = tinyaiSessionContextSize(sess);
    if (n_ids >= (size_t)n_ctx) {
        fprintf(stderr, "%s: prompt is %zu tokens, longer than the context (%d); use --ctx\n", prog,
                n_ids, n_ctx);
        goto done;
    }
    if (tinyaiCreateSampler(&sc, &smp) != TINYAI_OK) {
        rc = fail("sampler");
        goto done;
    }
    tinyaiSamplerAccept(smp, ids, n_ids);
    if (!quiet && !chat) {
        fputs(prompt, stdout);
        fflush(stdout);
    }

    double t0 = now_s();
    if (tinyaiEval(sess, ids, n_ids) != TINYAI_OK) {
        rc = fail("evaluating the prompt");
        goto done;
    }
    double t_prompt = now_s() - t0;
    TinyAIMemoryInfo mi0;
    tinyaiGetMemoryInfo(model, &mi0);
    /* the prompt's speed, not the load's: without a limit its waits were
     * for the layers still being read in */
    if (mem.memoryLimit == 0 && mi0.stallSeconds < t_prompt) t_prompt -= mi0.stallSeconds;
    tinyaiResetMemoryStats(model); /* the figures below are generation's */
    long n_gen = 0, n_evals = 0;
    double t1 = now_s();
    while (n_gen < n_predict) {
        int32_t id = tinyaiSample(smp, tinyaiGetLogits(sess), info.nVocab);
        if (id < 0) {
            rc = fail("sampling");
            goto done;
        }
        n_gen++;
        if (tinyaiTokenIsEndOfGeneration(model, id)) break;
        size_t len = 0;
        const char *piece = tinyaiTokenPiece(model, id, &len);
        if (piece && len) {
            fwrite(piece, 1, len, stdout);
            fflush(stdout);
        }
        if (n_gen == n_predict) break;
        if (tinyaiSessionPosition(sess) >= n_ctx) {
            fprintf(stderr, "\n%s: context full (%d tokens)\n", prog, n_ctx);
            break;
        }
        if (tinyaiEval(sess, &id, 1) != TINYAI_OK) {
            rc = fail("evaluating a token");
            goto done;
        }
        n_evals++;
    }
    double t_gen = now_s() - t1;
    fputc('\n', stdout);
    fflush(stdout);
    if (!quiet)
        fprintf(stderr,
                "prompt: %zu tokens, %.1f tok/s | generated: %ld tokens, %.1f tok/s | "
                "peak RSS %.1f MiB | %s, %d threads | devices: %s\n",
                n_ids, t_prompt > 0 ? (double)n_ids / t_prompt : 0.0, n_gen,
                t_gen > 0 ? (double)n_gen / t_gen : 0.0, peak_rss_mib(), info.isa, info.threads,
                info.devices);
    if (!quiet && mem.memoryLimit > 0) {
        TinyAIMemoryInfo mi;
        tinyaiGetMemoryInfo(model, &mi);
        const double acq = (double)(mi.hits + mi.misses);
        fprintf(stderr,
                "memory: mode %s (%s) | limit %.1f MiB, cache %.1f MiB of %.1f MiB model | "
                "read %.1f MiB/token | cache hits %.1f%% | I/O stall %.1f%% | peak %.1f MiB "
                "tracked | io %s%s%s | policy %s\n",
                tinyaiExecutionModeName(mi.mode), mi.modeReason[0] ? mi.modeReason : "as asked",
                (double)mi.memoryLimit / 1048576.0, (double)mi.cacheBytes / 1048576.0,
                (double)mi.modelBytes / 1048576.0,
                n_evals ? (double)mi.bytesRead / (double)n_evals / 1048576.0 : 0.0,
                acq > 0 ? 100.0 * (double)mi.hits / acq : 0.0,
                t_gen > 0 ? 100.0 * mi.stallSeconds / t_gen : 0.0,
                (double)mi.peakBytes / 1048576.0, mi.ioEngine ? mi.ioEngine : "?",
                mi.ioFallback ? ", fallback: " : "", mi.ioFallback ? mi.ioFallback : "",
                mi.cachePolicy ? mi.cachePolicy : "?");
    }
    {
        /* a device that failed while generating (its layers moved to the CPU) */
        TinyAIModelInfo after;
        if (tinyaiGetModelInfo(model, &after) == TINYAI_OK && after.placementNote[0] &&
            strcmp(after.placementNote, info.placementNote) != 0)
            fprintf(stderr, "%s: warning: %s\n", prog, after.placementNote);
    }
    if (placement) print_placement(model, info.nFileLayers, (int)n_ids);
    (void)mi0;
    if (profile || trace) tinyaiStopProfile(model);
    if (profile) print_profile(stderr, model, NULL);
    if (trace && tinyaiWriteTrace(model, trace) != TINYAI_OK) {
        rc = fail("trace");
        goto done;
    }
    if (report && tinyai_generate_memory_report(report) != TINYAI_OK) {
        rc = fail("memory report");
        goto done;
    }
    rc = 0;
done:
    free(ids);
    tinyaiFreeSampler(smp);
    tinyaiFreeSession(sess);
    tinyaiFreeModel(model);
    return rc;
}

/* ---- inspect ----------------------------------------------------------- */

static int print_cpu(void) {
    TinyAICpuInfo ci;
    if (tinyaiGetCpuInfo(&ci) != TINYAI_OK) return fail("cannot read the CPU");
    printf("cpu:           %s\n", ci.model[0] ? ci.model : "(unnamed)");
    printf("cores online:  %d\n", ci.onlineCores);
    printf("features:      %s\n", ci.features[0] ? ci.features : "(none the kernels use)");
    printf("kernel variants: %s\n", ci.variants);
    printf("chosen:        %s\n", ci.chosen);
    printf("signature:     %s\n", ci.signature);
    char path[4096];
    tuning_path(path, sizeof path);
    TinyAIKernelTuning t;
    if (tinyaiLoadKernelTuning(path, &t) == TINYAI_OK)
        printf("tuning:        prefetch %d bytes into L1, %d into L2 (%s)\n", t.prefetchL1Bytes,
               t.prefetchL2Bytes, path);
    else
        printf("tuning:        none measured yet (tinyai tune); defaults: prefetch %d bytes "
               "into L1, %d into L2\n",
               tinyaiGetKernelTuning().prefetchL1Bytes, tinyaiGetKernelTuning().prefetchL2Bytes);
    return 0;
}

static int cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    int cpu = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: tinyai inspect MODEL\n"
                   "       tinyai inspect --cpu\n\n"
                   "Prints the architecture, hyperparameters, tokenizer, the CPU kernel\n"
                   "variant chosen, the repacking time, and the layer table (index,\n"
                   "offset, size, precision). With --cpu (and no model): the CPU, the\n"
                   "features the kernels use, the kernel variants it supports and the\n"
                   "one chosen.\n");
            return 0;
        }
        if (!strcmp(argv[i], "--cpu")) {
            cpu = 1;
            continue;
        }
        if (argv[i][0] == '-') return usage_error("unknown option %s", argv[i]);
        if (path) return usage_error("inspect takes one model, got also '%s'", argv[i]);
        path = argv[i];
    }
    if (cpu && path) return usage_error("%s", "inspect --cpu takes no model");
    if (cpu) return print_cpu();
    if (!path) return usage_error("%s", "inspect needs a MODEL path (or --cpu)");
    TinyAIModel *model = NULL;
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.threads = 1;
    if (tinyaiLoadModel(path, &mc, &model) != TINYAI_OK) return fail("cannot load model");
    TinyAIModelInfo in;
    tinyaiGetModelInfo(model, &in);
    printf("file:          %s (%s)\n", path, in.fileFormat);
    printf("name:          %s\n", in.name);
    printf("architecture:  %s\n", in.architecture);
    printf("parameters:    %" PRIu64 " (%.1f MiB of weights)\n", in.nParams,
           (double)in.weightBytes / (1024.0 * 1024.0));
    printf("vocab:         %d\n", in.nVocab);
    printf("context:       %d\n", in.nCtxTrain);
    printf("embedding:     %d\n", in.nEmbd);
    printf("feed-forward:  %d\n", in.nFF);
    printf("heads:         %d (kv %d, head size %d)\n", in.nHead, in.nHeadKV, in.headDim);
    printf("blocks:        %d\n", in.nLayer);
    printf("rope base:     %g\n", (double)in.ropeFreqBase);
    if (in.slidingWindow > 0)
        printf("sliding window: %d positions on %d of %d blocks (rope base %g)\n",
               in.slidingWindow, in.slidingBlocks, in.nLayer, (double)in.slidingRopeFreqBase);
    printf("rms epsilon:   %g\n", (double)in.rmsEps);
    printf("output head:   %s\n", in.tiedOutput ? "tied to token embedding" : "separate");
    printf("tokenizer:     %s (bos %d, eos %d, add bos %s)\n", in.tokenizerModel, in.bosToken,
           in.eosToken, in.addBosToken ? "yes" : "no");
    printf("cpu kernels:   %s\n", in.isa);
    printf("repacked:      %.1f MiB in %.3f s (checksums included)\n",
           (double)in.packedBytes / (1024.0 * 1024.0), in.repackSeconds);
    printf("layers:        %d\n", in.nFileLayers);
    printf("%6s %14s %14s %5s %8s %18s\n", "index", "offset", "size", "bits", "tensors", "checksum");
    for (int i = 0; i < in.nFileLayers; i++) {
        TinyAILayerInfo li;
        if (tinyaiGetModelLayerInfo(model, i, &li) != TINYAI_OK) break;
        printf("%6d %14" PRIu64 " %14" PRIu64 " %5d %8d   %016" PRIx64 "\n", li.index, li.offset,
               li.size, li.precision, li.nTensors, li.checksum);
    }
    tinyaiFreeModel(model);
    return 0;
}

/* ---- convert ----------------------------------------------------------- */

static int cmd_convert(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: tinyai convert IN.gguf OUT.tmai\n\n"
                   "Writes the model in TinyAI's native format (.tmai version 2): each\n"
                   "layer's weights contiguous and 4096-byte aligned, the weight matrices\n"
                   "stored packed as the kernels read them (no repacking at load), an\n"
                   "XXH64 checksum per layer.\n");
            return 0;
        }
        if (argv[i][0] == '-') return usage_error("unknown option %s", argv[i]);
        if (!in) in = argv[i];
        else if (!out) out = argv[i];
        else return usage_error("convert takes two paths, got also '%s'", argv[i]);
    }
    if (!in || !out) return usage_error("%s", "convert needs IN and OUT paths");
    if (tinyaiConvertModel(in, out) != TINYAI_OK) return fail("convert");
    printf("wrote %s\n", out);
    return 0;
}

/* ---- synth ------------------------------------------------------------- */

static void synth_help(void) {
    printf("usage: tinyai synth -o OUT.gguf [options]\n\n"
           "Writes a random-weight GGUF, deterministic from the seed.\n\n"
           "  -o PATH            output file\n"
           "  --arch A           llama (default), qwen2, qwen3, gemma3\n"
           "  --head-dim N       heads of N (default: embd / heads)\n"
           "  --window N         gemma3: the sliding-window blocks' positions (default 4)\n"
           "  --softcap C        gemma3: cap the final logits at +-C (C tanh(l / C); default none)\n"
           "  --preset NAME      tiny, small, 1b (~1.1B parameters); without one:\n"
           "                     vocabulary 512, width 128, 2 layers\n"
           "  --vocab N --embd N --ff N --heads N --kv-heads N --layers N --ctx N\n"
           "  --type T           matrix type: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0,\n"
           "                     Q5_1, IQ4_NL, Q2_K..Q6_K, Q8_K (default Q4_1; the\n"
           "                     K-quants need widths that are multiples of 256)\n"
           "  --embd-type T      token embedding type (default: same as --type)\n"
           "  --untied           write a separate output.weight\n"
           "  --seed S           random seed (default 1)\n");
}

static int cmd_synth(int argc, char **argv) {
    TinyAISynthConfig c = tinyaiCreateDefaultSynthConfig();
    const char *out = NULL, *embd_type = NULL;
    c.seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        long lv;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            synth_help();
            return 0;
        } else if (!strcmp(a, "--untied")) {
            c.tiedOutput = false;
            continue;
        } else if (!(v = take(argc, argv, &i))) {
            return usage_error("option %s needs a value or is unknown", a);
        }
        int *dim = NULL;
        if (!strcmp(a, "-o")) out = v;
        else if (!strcmp(a, "--type")) c.weightType = v;
        else if (!strcmp(a, "--embd-type")) embd_type = v;
        else if (!strcmp(a, "--arch")) c.architecture = v;
        else if (!strcmp(a, "--head-dim")) dim = &c.headDim;
        else if (!strcmp(a, "--window")) dim = &c.slidingWindow;
        else if (!strcmp(a, "--softcap")) {
            if (!parse_float(v, 1e-3f, 1e5f, &c.logitSoftcap))
                return usage_error("--softcap must be a number in 0.001..100000, got '%s'", v);
        } else if (!strcmp(a, "--seed")) {
            if (!parse_u64(v, &c.seed)) return usage_error("--seed must be a non-negative integer, got '%s'", v);
        } else if (!strcmp(a, "--preset")) {
            if (!strcmp(v, "tiny")) {
                c.nEmbd = 64, c.nFF = 192, c.nHead = 4, c.nHeadKV = 2, c.nLayer = 2, c.nVocab = 512, c.nCtx = 256;
            } else if (!strcmp(v, "small")) {
                c.nEmbd = 256, c.nFF = 768, c.nHead = 8, c.nHeadKV = 4, c.nLayer = 4, c.nVocab = 2048, c.nCtx = 1024;
            } else if (!strcmp(v, "1b")) {
                /* TinyLlama-1.1B's shape */
                c.nEmbd = 2048, c.nFF = 5632, c.nHead = 32, c.nHeadKV = 4, c.nLayer = 22, c.nVocab = 32000, c.nCtx = 2048;
            } else {
                return usage_error("unknown preset '%s' (tiny, small, 1b)", v);
            }
        } else if (!strcmp(a, "--vocab")) dim = &c.nVocab;
        else if (!strcmp(a, "--embd")) dim = &c.nEmbd;
        else if (!strcmp(a, "--ff")) dim = &c.nFF;
        else if (!strcmp(a, "--heads")) dim = &c.nHead;
        else if (!strcmp(a, "--kv-heads")) dim = &c.nHeadKV;
        else if (!strcmp(a, "--layers")) dim = &c.nLayer;
        else if (!strcmp(a, "--ctx")) dim = &c.nCtx;
        else return usage_error("unknown option %s", a);
        if (dim) {
            if (!parse_long(v, 1, 1 << 24, &lv)) return usage_error("%s must be an integer in 1..16777216", a);
            *dim = (int)lv;
        }
    }
    if (!out) return usage_error("%s", "synth needs -o OUT");
    c.embeddingType = embd_type ? embd_type : c.weightType;
    if (tinyaiWriteSyntheticModel(&c, out) != TINYAI_OK) return fail("synth");
    printf("wrote %s\n", out);
    return 0;
}

/* ---- main -------------------------------------------------------------- */

static void main_help(void) {
    printf("usage: tinyai COMMAND [options]   (tinyai COMMAND --help for each)\n\n"
           "  generate   generate text with a model\n"
           "  inspect    show a model's hyperparameters and layer table\n"
           "  convert    convert a GGUF model to TinyAI's .tmai format\n"
           "  synth      write a synthetic random-weight model (llama, qwen2, qwen3, gemma3)\n"
           "  cpu        the CPU, its kernel variants and the one chosen (= inspect --cpu)\n"
           "  devices    what the layers can run on (the CPU, OpenCL devices, plugins)\n"
           "  tune       measure this CPU's kernel tuning (generate does it once by itself)\n"
           "  serve      an OpenAI-compatible HTTP server with continuous batching\n"
           "  perplexity the perplexity of a text file under the model\n"
           "  quantize   convert a model to other weight types, per group of matrices\n"
           "  prune      remove the least important weight tiles, stored sparsely\n"
           "  bench      prompt and generation speed per model and setting, beside\n"
           "             this machine's own limits (llama-bench's options and formats)\n");
}

static int cmd_cpu(void) { return print_cpu(); }

int main(int argc, char **argv) {
    if (argc < 2) {
        main_help();
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        main_help();
        return 0;
    }
    const int prc = take_plugin_args(&argc, argv);
    if (prc) return prc;
    if (!strcmp(cmd, "generate")) return cmd_generate(argc - 1, argv + 1);
    if (!strcmp(cmd, "inspect")) return cmd_inspect(argc - 1, argv + 1);
    if (!strcmp(cmd, "convert")) return cmd_convert(argc - 1, argv + 1);
    if (!strcmp(cmd, "synth")) return cmd_synth(argc - 1, argv + 1);
    if (!strcmp(cmd, "cpu")) return cmd_cpu();
    if (!strcmp(cmd, "devices")) return cmd_devices(argc - 1, argv + 1);
    if (!strcmp(cmd, "tune")) return cmd_tune(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve")) return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "perplexity")) return cmd_perplexity(argc - 1, argv + 1);
    if (!strcmp(cmd, "quantize")) return cmd_quantize(argc - 1, argv + 1);
    if (!strcmp(cmd, "prune")) return cmd_prune(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
    fprintf(stderr, "%s: unknown command '%s' (try --help)\n", prog, cmd);
    return 2;
}
