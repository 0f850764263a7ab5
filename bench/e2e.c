/*
 * bench/: end-to-end cases (see e2e.h). Each case runs in a child process
 * so that its peak RSS (from wait4) is its own and a crash or an allocation
 * failure in one case does not end the benchmark.
 */
#include "bench/e2e.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/membw.h"

void tai_e2e_default_paths(char *model, size_t model_cap, char *model_1b, size_t model_1b_cap) {
    const char *home = getenv("HOME");
    const char *cache = getenv("TINYAI_CACHE");
    if (cache && *cache) {
        snprintf(model, model_cap, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", cache);
        snprintf(model_1b, model_1b_cap, "%s/synth-1b-q4_0.gguf", cache);
    } else {
        snprintf(model, model_cap, "%s/.cache/tinyai/SmolLM2-135M-Instruct.Q4_1.gguf",
                 home ? home : ".");
        snprintf(model_1b, model_1b_cap, "%s/.cache/tinyai/synth-1b-q4_0.gguf", home ? home : ".");
    }
}

void tai_e2e_apply_tuning(int force, char *desc, size_t cap) {
    const char *home = getenv("HOME"), *cache = getenv("TINYAI_CACHE");
    char dir[3000], path[3200];
    if (cache && *cache) snprintf(dir, sizeof dir, "%s", cache);
    else snprintf(dir, sizeof dir, "%s/.cache/tinyai", home ? home : ".");
    TinyAICpuInfo ci;
    tinyaiGetCpuInfo(&ci);
    snprintf(path, sizeof path, "%s/kernels-%s.tune", dir, ci.signature);
    TinyAIKernelTuning t;
    const char *from = "saved";
    if (force || tinyaiLoadKernelTuning(path, &t) != TINYAI_OK) {
        double gain = 1.0;
        fprintf(stderr, "measuring the kernel tuning of this CPU (a few seconds)...\n");
        if (tinyaiTuneKernels(&t, &gain) != TINYAI_OK) {
            t = tinyaiGetKernelTuning();
            from = "defaults: the tuning run failed";
        } else {
            from = "measured now";
            char cmd[3300];
            snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
            if (system(cmd) != 0 || tinyaiSaveKernelTuning(path, &t) != TINYAI_OK)
                from = "measured now, not saved";
        }
    }
    tinyaiSetKernelTuning(&t);
    snprintf(desc, cap, "prefetch %d B into L1, %d B into L2 (%s: %s)", t.prefetchL1Bytes,
             t.prefetchL2Bytes, from, path);
}

double tai_e2e_bytes_per_token(const TinyAIModel *m) {
    TinyAIModelInfo info;
    TinyAILayerInfo emb;
    if (tinyaiGetModelInfo(m, &info) != TINYAI_OK || tinyaiGetModelLayerInfo(m, 0, &emb) != TINYAI_OK)
        return 0.0;
    return (double)info.weightBytes - (info.tiedOutput ? 0.0 : (double)emb.size);
}

/* Greedy generation of n tokens after whatever the session holds. */
static int generate(TinyAISession *s, int n_vocab, int n) {
    for (int i = 0; i < n; i++) {
        const float *l = tinyaiGetLogits(s);
        int32_t best = 0;
        for (int v = 1; v < n_vocab; v++)
            if (l[v] > l[best]) best = v;
        if (tinyaiEval(s, &best, 1) != TINYAI_OK) return -1;
    }
    return 0;
}

static const char *e2e_device, *e2e_cache_dir;

static const char *const *e2e_plugins;
static int e2e_n_plugins;

void tai_e2e_set_plugins(const char *const *paths, int n) {
    e2e_plugins = paths;
    e2e_n_plugins = n;
}

void tai_e2e_set_device(const char *device, const char *cache_dir) {
    e2e_device = device;
    e2e_cache_dir = cache_dir;
}

tai_e2e_result tai_e2e_run_case(const char *path, int threads, int reps, int warmup,
                                int n_prompt, int n_gen) {
    tai_e2e_result r = {0};
    if (tinyaiPluginCount() == 0)
        for (int i = 0; i < e2e_n_plugins; i++)
            if (tinyaiLoadPlugin(e2e_plugins[i], NULL) != TINYAI_OK)
                fprintf(stderr, "plugin skipped: %s\n", tinyaiLastErrorMessage());
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.threads = threads;
    mc.device = e2e_device;
    mc.cacheDir = e2e_cache_dir;
    TinyAIModel *m = NULL;
    TinyAISession *s = NULL;
    int32_t *prompt = NULL;
    double *pt = calloc((size_t)reps, sizeof *pt), *gt = calloc((size_t)reps, sizeof *gt);
    if (tinyaiLoadModel(path, &mc, &m) != TINYAI_OK) {
        fprintf(stderr, "bench: %s\n", tinyaiLastErrorMessage());
        goto done;
    }
    /* steady state: the weights in huge pages (moved there in the
     * background after a load without a limit) */
    for (int i = 0; i < 600; i++) {
        TinyAIMemoryInfo mi;
        if (tinyaiGetMemoryInfo(m, &mi) != TINYAI_OK || !mi.hugePagesPending) break;
        usleep(50000);
    }
    TinyAIModelInfo info;
    tinyaiGetModelInfo(m, &info);
    snprintf(r.isa, sizeof r.isa, "%s", info.isa);
    snprintf(r.devices, sizeof r.devices, "%s", info.devices);
    r.bytes_per_token = tai_e2e_bytes_per_token(m);
    int n_ctx = n_prompt + n_gen + 8;
    if (warmup > 0 && n_ctx < 64 + 8) n_ctx = 64 + 8;
    if (n_ctx > info.nCtxTrain) n_ctx = info.nCtxTrain;
    if (tinyaiCreateSession(m, n_ctx, &s) != TINYAI_OK || !pt || !gt) {
        fprintf(stderr, "bench: %s\n", tinyaiLastErrorMessage());
        goto done;
    }
    int n_ids = n_prompt > 64 ? n_prompt : 64;
    prompt = malloc((size_t)n_ids * sizeof *prompt);
    if (!prompt) goto done;
    for (int i = 0; i < n_ids; i++) prompt[i] = (int32_t)((i * 7919u + 13u) % (unsigned)info.nVocab);
    int n_warm = n_ctx - 8 < 64 ? n_ctx - 8 : 64;
    if (n_warm < 1) n_warm = 1;
    for (int w = 0; w < warmup; w++) {
        tinyaiResetSession(s);
        if (tinyaiEval(s, prompt, (size_t)n_warm) != TINYAI_OK) goto done;
        if (generate(s, info.nVocab, 8) != 0) goto done;
    }
    tinyaiResetLayerTimes(m);
    for (int rep = 0; rep < reps; rep++) {
        tinyaiResetSession(s);
        double t0 = tai_bench_now();
        if (tinyaiEval(s, prompt, (size_t)n_prompt) != TINYAI_OK) goto done;
        pt[rep] = (double)n_prompt / (tai_bench_now() - t0);
        /* generation continues after a short prompt, as a chat turn would */
        tinyaiResetSession(s);
        if (tinyaiEval(s, prompt, 8) != TINYAI_OK) goto done;
        double t1 = tai_bench_now();
        if (generate(s, info.nVocab, n_gen) != 0) goto done;
        gt[rep] = (double)n_gen / (tai_bench_now() - t1);
    }
    for (int k = 0; k < 2; k++) {
        const int cols = k == 0 ? 1 : n_prompt;
        double pred = 0, meas = 0, ratio[1100];
        int nr = 0;
        for (int l = 0; l < info.nFileLayers; l++) {
            TinyAILayerPlacement p;
            if (tinyaiGetLayerPlacement(m, cols, l, &p) != TINYAI_OK) break;
            pred += p.predictedSeconds;
            meas += p.measuredSeconds;
            /* the layers that compute (the embedding is a lookup) */
            if (l > 0 && p.passes && p.predictedSeconds > 0 && p.measuredSeconds > 0 && nr < 1100)
                ratio[nr++] = p.predictedSeconds / p.measuredSeconds;
        }
        const double med = nr ? tai_bench_median(ratio, nr) : 0;
        if (k == 0) r.gen_pred_s = pred, r.gen_meas_s = meas, r.gen_ratio = med;
        else r.prompt_pred_s = pred, r.prompt_meas_s = meas, r.prompt_ratio = med;
    }
    r.prompt_tps = tai_bench_median(pt, reps);
    r.gen_tps = tai_bench_median(gt, reps);
    r.ok = 1;
done:
    free(prompt);
    free(pt);
    free(gt);
    tinyaiFreeSession(s);
    tinyaiFreeModel(m);
    return r;
}

tai_e2e_result tai_e2e_fork_case(const char *path, int threads, int reps, int warmup,
                                 int n_prompt, int n_gen, double *peak_mib) {
    tai_e2e_result r = {0};
    int fd[2];
    *peak_mib = 0;
    if (pipe(fd) != 0) return r;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return r;
    }
    if (pid == 0) {
        close(fd[0]);
        tai_e2e_result cr = tai_e2e_run_case(path, threads, reps, warmup, n_prompt, n_gen);
        ssize_t w = write(fd[1], &cr, sizeof cr);
        _exit(w == (ssize_t)sizeof cr && cr.ok ? 0 : 1);
    }
    close(fd[1]);
    ssize_t got = read(fd[0], &r, sizeof r);
    close(fd[0]);
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) == pid) *peak_mib = (double)ru.ru_maxrss / 1024.0;
    else status = -1;
    if (got != (ssize_t)sizeof r || !WIFEXITED(status) || WEXITSTATUS(status) != 0) r.ok = 0;
    return r;
}

int tai_e2e_ensure_1b(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0 && st.st_size > 0) return 0;
    TinyAISynthConfig c = tinyaiCreateDefaultSynthConfig();
    /* TinyLlama-1.1B's shape */
    c.nEmbd = 2048, c.nFF = 5632, c.nHead = 32, c.nHeadKV = 4, c.nLayer = 22, c.nVocab = 32000;
    c.nCtx = 2048;
    c.weightType = "Q4_0";
    c.embeddingType = "Q4_0";
    c.tiedOutput = false;
    c.seed = 1;
    fprintf(stderr, "bench: writing synthetic 1.1B Q4_0 model to %s\n", path);
    if (tinyaiWriteSyntheticModel(&c, path) != TINYAI_OK) {
        fprintf(stderr, "bench: %s\n", tinyaiLastErrorMessage());
        return -1;
    }
    return 0;
}

char *tai_e2e_read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *s = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (s = malloc((size_t)n + 1)) != NULL && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s) s[n] = 0;
    fclose(f);
    return s;
}
