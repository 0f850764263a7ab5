/*
 * bench/bench_stream: decoding a model larger than the memory limit.
 *
 *   bench_stream [--model PATH] [--tokens N] [--reps N] [--batch-only]
 *
 * Default model: a synthetic Q8_0 Llama of about 2.1 GB (42 blocks of
 * 2048 x 5632), written once next to the default model as .tmai (packed:
 * every layer is one O_DIRECT read straight into the cache) and as the GGUF
 * it was converted from (each streamed layer read into staging and repacked
 * on every load), which is what users have: both are measured at every
 * limit (with --model, the GGUF rows need PATH.gguf beside PATH).
 *
 * In one run, with the page cache dropped before each measurement (as root):
 *   1. the storage ceiling: a plain O_DIRECT read loop over the model file
 *      (8 and 32 MiB blocks, the better) into huge-page memory, as the
 *      cache reads (storage.h);
 *   2. decoding at memory limits of 100%, 50%, 25% and 10% of the model's
 *      size (weights + everything else the run needs), memory-opt mode with
 *      Belady and with LRU, each in a fresh process: generation tok/s, bytes
 *      read per token, the process's peak resident memory (VmHWM), the
 *      runtime's tracked peak; and the compute-bound tok/s from the run with
 *      every layer resident;
 *   3. batched decoding at the 25% limit for batches of 1, 4, 16 and 64
 *      sequences (tinyaiEvalBatch: each layer read once per step for the
 *      whole batch), and the batch tinyaiCalculateOptimalBatchSize picks.
 * Targets checked: peak RSS <= limit + 5%; bytes per token within one layer
 * of the optimum (model - cache); tok/s >= 90% of min(compute-bound tok/s,
 * storage bandwidth / bytes per token); batched throughput rising with the
 * batch. Medians over --reps (default 3).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tinyai/llm.h>
#include <tinyai/utils/forward_scheduler.h>
#include <tinyai/utils/mmap_loader.h>

#include "bench/membw.h"
#include "bench/storage.h"

typedef struct {
    double tps;
    double bytes_per_token;
    double peak_rss;     /* bytes, VmHWM */
    double tracked_peak; /* bytes */
    double cache;        /* bytes */
    double model;        /* bytes of layer images */
    double largest;
    double hit;
    double stall;
    int mode;
    int ok;
} result;

static double vm_hwm(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    double kb = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = atof(line + 6);
    fclose(f);
    return kb * 1024.0;
}

/* ---- child: one decoding run ------------------------------------------------ */

static int child(const char *path, size_t limit, int mode, int policy, int batch, int tokens) {
    /* the machine's kernel tuning, where `tinyai` saved one */
    const char *home = getenv("HOME"), *cache = getenv("TINYAI_CACHE");
    TinyAICpuInfo ci;
    tinyaiGetCpuInfo(&ci);
    char tune[4300];
    if (cache && *cache) snprintf(tune, sizeof tune, "%s/kernels-%s.tune", cache, ci.signature);
    else snprintf(tune, sizeof tune, "%s/.cache/tinyai/kernels-%s.tune", home ? home : ".", ci.signature);
    TinyAIKernelTuning kt;
    if (tinyaiLoadKernelTuning(tune, &kt) == TINYAI_OK) tinyaiSetKernelTuning(&kt);
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.memoryLimit = limit;
    mc.mode = (TinyAIExecutionMode)mode;
    mc.cachePolicy = (TinyAICachePolicy)policy;
    mc.maxSessions = batch;
    TinyAIModel *m = NULL;
    if (tinyaiLoadModel(path, &mc, &m) != TINYAI_OK) {
        fprintf(stderr, "bench_stream: %s\n", tinyaiLastErrorMessage());
        return 1;
    }
    TinyAIModelInfo info;
    tinyaiGetModelInfo(m, &info);
    const int ctx = tokens + 8;
    TinyAISession **s = calloc((size_t)batch, sizeof *s);
    int32_t *tok = calloc((size_t)batch, sizeof *tok);
    for (int i = 0; i < batch; i++) {
        if (tinyaiCreateSession(m, ctx, &s[i]) != TINYAI_OK) {
            fprintf(stderr, "bench_stream: %s\n", tinyaiLastErrorMessage());
            return 1;
        }
        tok[i] = 1 + i % (info.nVocab - 1);
    }
    /* one warm-up step fills the cache as it will stay */
    double t0 = 0;
    for (int step = 0; step <= tokens; step++) {
        if (step == 1) {
            tinyaiResetMemoryStats(m);
            t0 = tai_bench_now();
        }
        if (tinyaiEvalBatch(s, tok, (size_t)batch) != TINYAI_OK) {
            fprintf(stderr, "bench_stream: %s\n", tinyaiLastErrorMessage());
            return 1;
        }
        for (int i = 0; i < batch; i++) {
            const float *lg = tinyaiGetLogits(s[i]);
            int best = 0;
            for (int v = 1; v < info.nVocab; v++)
                if (lg[v] > lg[best]) best = v;
            tok[i] = best;
        }
        if (step == tokens) {
            double t = tai_bench_now() - t0;
            TinyAIMemoryInfo mi;
            tinyaiGetMemoryInfo(m, &mi);
            const double acq = (double)(mi.hits + mi.misses);
            printf("RESULT %.6f %.1f %.0f %.0f %.0f %.0f %.0f %.4f %.4f %d\n",
                   (double)batch * tokens / t, (double)mi.bytesRead / tokens, vm_hwm(),
                   (double)mi.peakBytes, (double)mi.cacheBytes, (double)mi.modelBytes,
                   (double)mi.largestLayerBytes, acq > 0 ? mi.hits / acq : 0, mi.stallSeconds / t,
                   (int)mi.mode);
        }
    }
    for (int i = 0; i < batch; i++) tinyaiFreeSession(s[i]);
    free(s);
    free(tok);
    tinyaiFreeModel(m);
    return 0;
}

static result run(const char *self, const char *path, size_t limit, int mode, int policy,
                  int batch, int tokens) {
    result r;
    memset(&r, 0, sizeof r);
    tai_bench_drop_caches();
    char a[6][32];
    snprintf(a[0], 32, "%zu", limit);
    snprintf(a[1], 32, "%d", mode);
    snprintf(a[2], 32, "%d", policy);
    snprintf(a[3], 32, "%d", batch);
    snprintf(a[4], 32, "%d", tokens);
    int fds[2];
    if (pipe(fds) != 0) return r;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execl(self, self, "--child", path, a[0], a[1], a[2], a[3], a[4], (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "RESULT ", 7) &&
            sscanf(line + 7, "%lf %lf %lf %lf %lf %lf %lf %lf %lf %d", &r.tps, &r.bytes_per_token,
                   &r.peak_rss, &r.tracked_peak, &r.cache, &r.model, &r.largest, &r.hit, &r.stall,
                   &r.mode) == 10)
            r.ok = 1;
    if (f) fclose(f);
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) r.ok = 0;
    return r;
}

/* ---- storage ceiling ----------------------------------------------------------- */

/* The best of a plain O_DIRECT read loop with 8 and 32 MiB blocks, into
 * huge-page memory as the cache reads (storage.h). */
static double storage_ceiling(const char *path) {
    const size_t bytes = 64u << 20;
    void *buf = tai_bench_huge_alloc(bytes);
    if (!buf) return 0;
    double best = 0;
    for (size_t block = 8u << 20; block <= (32u << 20); block *= 4) {
        tai_bench_drop_caches();
        double bps = tai_bench_direct_read(path, block, buf, bytes, NULL, 0);
        if (bps > best) best = bps;
    }
    free(buf);
    return best;
}

/* ---- the model ------------------------------------------------------------------- */

/* PATH.tmai -> PATH.gguf (else PATH.gguf) */
static void gguf_of(const char *path, char *out, size_t cap) {
    const size_t n = strlen(path);
    if (n > 5 && !strcmp(path + n - 5, ".tmai"))
        snprintf(out, cap, "%.*s.gguf", (int)(n - 5), path);
    else
        snprintf(out, cap, "%s.gguf", path);
}

static int ensure_model(const char *path, int is_default) {
    struct stat st;
    char gguf[4200];
    gguf_of(path, gguf, sizeof gguf);
    if (stat(path, &st) == 0 && (!is_default || stat(gguf, &st) == 0)) return 0;
    TinyAISynthConfig c = tinyaiCreateDefaultSynthConfig();
    c.nVocab = 32000;
    c.nEmbd = 2048;
    c.nFF = 5632;
    c.nHead = 32;
    c.nHeadKV = 4;
    c.nLayer = 42;
    c.nCtx = 2048;
    c.weightType = "Q8_0";
    c.embeddingType = "Q8_0";
    c.tiedOutput = false;
    fprintf(stderr, "writing the synthetic model %s (about 2.1 GB)...\n", path);
    if (tinyaiWriteSyntheticModel(&c, gguf) != TINYAI_OK ||
        tinyaiConvertModel(gguf, path) != TINYAI_OK) {
        fprintf(stderr, "bench_stream: %s\n", tinyaiLastErrorMessage());
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 8 && !strcmp(argv[1], "--child"))
        return child(argv[2], (size_t)strtoull(argv[3], NULL, 10), atoi(argv[4]), atoi(argv[5]),
                     atoi(argv[6]), atoi(argv[7]));
    char path[4096];
    const char *home = getenv("HOME");
    snprintf(path, sizeof path, "%s/.cache/tinyai/synth-2g-q8_0.tmai", home ? home : ".");
    int reps = 3, tokens = 4, batch_only = 0, is_default = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) {
            snprintf(path, sizeof path, "%s", argv[++i]);
            is_default = 0;
        }
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch-only")) batch_only = 1;
        else {
            fprintf(stderr, "usage: bench_stream [--model PATH] [--tokens N] [--reps N] [--batch-only]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > 15 || tokens < 1) return 2;
    if (ensure_model(path, is_default) != 0) return 1;
    char gguf[4200];
    gguf_of(path, gguf, sizeof gguf);
    struct stat gst;
    const int have_gguf = stat(gguf, &gst) == 0;
    if (tai_bench_drop_caches() != 0) printf("note: not root, the page cache is not dropped between runs\n");
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) return 1;
    self[sl] = 0;
    struct stat st;
    stat(path, &st);
    const double file = (double)st.st_size;

    /* the size everything scales with: a run with every layer resident */
    result full = run(self, path, 0, TINYAI_EXEC_NORMAL, 0, 1, tokens);
    if (!full.ok) return 1;
    /* 100% = the model's layers plus what the run needs besides */
    const double total = full.tracked_peak;
    printf("model %s: %.2f GB file, %.2f GB of layer images, largest layer %.1f MB; a run with "
           "every layer resident tracks %.2f GB\n",
           path, file / 1e9, full.model / 1e9, full.largest / 1e6, total / 1e9);

    /* the batch the scheduler picks at the 25% limit for sequences of the
     * runs' context (before any run: its storage figure then comes from its
     * own probe) */
    TinyAIMmapConfig cfg = tinyaiCreateDefaultMmapConfig();
    cfg.maxCacheSize = (size_t)(full.largest * 2);
    TinyAIMappedModel *mm = tinyaiOpenMappedModel(path, &cfg);
    TinyAIForwardScheduler *sc =
        mm ? tinyaiCreateForwardScheduler(mm, TINYAI_EXEC_MEMORY_OPT, (size_t)(total * 0.25)) : NULL;
    /* each sequence's context as the runs below use it: tokens + 8 */
    const int pick = sc ? tinyaiCalculateOptimalBatchSize(sc, sizeof(int32_t) * (size_t)(tokens + 8),
                                                          0, 64)
                        : 0;
    if (!sc) printf("forward scheduler: %s\n", tinyaiLastErrorMessage());
    tinyaiDestroyForwardScheduler(sc);
    tinyaiCloseMappedModel(mm);

    double ceil_v[15], comp_v[15];
    const double fr[4] = {1.0, 0.5, 0.25, 0.10};
    double tps[4][2][15], bpt[4][2][15], rss[4][2][15], trk[4][2][15], cache[4][2][15];
    double btps[5][15];
    double gtps[4][15], gbpt[4][15], grss[4][15];
    /* the four batch sizes, and the pick when it is none of them */
    int batches[5] = {1, 4, 16, 64, pick};
    const int nb = pick > 0 && pick != 1 && pick != 4 && pick != 16 && pick != 64 ? 5 : 4;
    for (int rep = 0; rep < reps; rep++) {
        ceil_v[rep] = storage_ceiling(path);
        result c = run(self, path, 0, TINYAI_EXEC_NORMAL, 0, 1, tokens);
        comp_v[rep] = c.tps;
        for (int i = 0; !batch_only && i < 4; i++)
            for (int p = 0; p < 2; p++) {
                size_t limit = (size_t)(total * fr[i]);
                result r = run(self, path, limit, i == 0 ? TINYAI_EXEC_NORMAL : TINYAI_EXEC_MEMORY_OPT,
                               p, 1, tokens);
                tps[i][p][rep] = r.ok ? r.tps : 0;
                bpt[i][p][rep] = r.bytes_per_token;
                rss[i][p][rep] = r.peak_rss;
                trk[i][p][rep] = r.tracked_peak;
                cache[i][p][rep] = r.cache;
                if (!r.ok) printf("run failed: limit %.0f%% policy %s\n", fr[i] * 100, p ? "lru" : "belady");
            }
        for (int i = 1; !batch_only && have_gguf && i < 4; i++) {
            result r = run(self, gguf, (size_t)(total * fr[i]), TINYAI_EXEC_MEMORY_OPT, 0, 1, tokens);
            gtps[i][rep] = r.ok ? r.tps : 0;
            gbpt[i][rep] = r.bytes_per_token;
            grss[i][rep] = r.peak_rss;
            if (!r.ok) printf("run failed: GGUF, limit %.0f%%\n", fr[i] * 100);
        }
        for (int b = 0; b < nb; b++) {
            result r = run(self, path, (size_t)(total * 0.25), TINYAI_EXEC_MEMORY_OPT, 0,
                           batches[b], tokens);
            btps[b][rep] = r.ok ? r.tps : 0;
        }
    }
    const double ceiling = tai_bench_median(ceil_v, reps), compute = tai_bench_median(comp_v, reps);
    printf("storage ceiling (O_DIRECT read loop into huge pages): %.2f GB/s; compute-bound (all resident): "
           "%.2f tok/s\n\n",
           ceiling / 1e9, compute);
    if (!batch_only) {
        printf("%-6s %-7s %10s %10s %10s %9s %10s %10s %9s %7s %7s\n", "limit", "policy", "limit MB",
               "cache MB", "read MB/t", "opt MB/t", "tok/s", "bound", "of bound", "RSS MB", "<=+5%");
        for (int i = 0; i < 4; i++)
            for (int p = 0; p < 2; p++) {
                const double limit = total * fr[i];
                const double t = tai_bench_median(tps[i][p], reps), b = tai_bench_median(bpt[i][p], reps),
                             r = tai_bench_median(rss[i][p], reps), c = tai_bench_median(cache[i][p], reps);
                const double opt = full.model - c > 0 ? full.model - c : 0;
                const double io_bound = b > 0 ? ceiling / b : INFINITY;
                const double bound = io_bound < compute ? io_bound : compute;
                printf("%5.0f%% %-7s %10.1f %10.1f %10.1f %9.1f %10.3f %10.3f %8.0f%% %7.1f %7s%s\n",
                       fr[i] * 100, p ? "lru" : "belady", limit / 1e6, c / 1e6, b / 1e6, opt / 1e6,
                       t, bound, bound > 0 ? 100 * t / bound : 0, r / 1e6,
                       r <= limit * 1.05 ? "yes" : "NO",
                       p == 0 ? (b <= opt + full.largest + 1 ? "  (read within one layer of optimum)"
                                                             : "  (read MORE than one layer over)")
                              : "");
                (void)trk;
            }
        if (have_gguf) {
            printf("\nthe same model as GGUF (%s), memory-opt, Belady: each streamed layer read\n"
                   "into staging and repacked on load; bound as above\n", gguf);
            printf("%-6s %10s %10s %10s %10s %9s %9s %7s %7s\n", "limit", "read MB/t", "tok/s",
                   "bound", "of bound", ".tmai t/s", "gguf/tmai", "RSS MB", "<=+5%");
            for (int i = 1; i < 4; i++) {
                const double limit = total * fr[i];
                const double t = tai_bench_median(gtps[i], reps), b = tai_bench_median(gbpt[i], reps),
                             r = tai_bench_median(grss[i], reps);
                const double tm = tai_bench_median(tps[i][0], reps);
                const double io_bound = b > 0 ? ceiling / b : INFINITY;
                const double bound = io_bound < compute ? io_bound : compute;
                printf("%5.0f%% %10.1f %10.3f %10.3f %9.0f%% %9.3f %8.0f%% %7.1f %7s\n", fr[i] * 100,
                       b / 1e6, t, bound, bound > 0 ? 100 * t / bound : 0, tm,
                       tm > 0 ? 100 * t / tm : 0, r / 1e6, r <= limit * 1.05 ? "yes" : "NO");
            }
        } else {
            printf("\n(no GGUF beside the model: %s; the GGUF rows are skipped)\n", gguf);
        }
    }
    printf("\nbatched decoding at the 25%% limit (memory-opt, Belady):\n");
    double best = 0, at_pick = 0;
    int best_b = 0;
    for (int b = 0; b < nb; b++) {
        const double t = tai_bench_median(btps[b], reps);
        printf("  batch %2d: %8.3f tok/s%s\n", batches[b], t, b == 4 ? "  (the pick)" : "");
        if (t > best) {
            best = t;
            best_b = batches[b];
        }
        if (batches[b] == pick) at_pick = t;
    }
    printf("tinyaiCalculateOptimalBatchSize (max 64) picks %d: %.3f tok/s, %.0f%% of the best "
           "measured (batch %d, %.3f tok/s)\n",
           pick, at_pick, best > 0 ? 100 * at_pick / best : 0, best_b, best);

    return 0;
}
