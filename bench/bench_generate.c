/*
 * bench/bench_generate: end-to-end speed of the forward pass.
 *
 * For the default model and a synthetic ~1.1B-parameter Q4_0 model, with 1
 * and 2 threads: prompt processing tok/s (a 512-token prompt), generation
 * tok/s (128 tokens, greedy) and the peak resident memory; and, measured in
 * the same run, the machine's memory read bandwidth, with generation tok/s
 * expressed as a fraction of the bandwidth ceiling
 * (bandwidth / weight bytes read per token).
 *
 * Each (model, threads) case runs in a child process so that its peak RSS
 * (from wait4) is its own. Every figure is the median of --reps runs.
 *
 *   bench_generate [--model PATH] [--model-1b PATH] [--reps N] [--skip-1b]
 *                  [--prompt N] [--gen N]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tinyai/llm.h>

#include "bench/membw.h"

typedef struct {
    double prompt_tps, gen_tps;
    double bytes_per_token;
    int ok;
    char isa[16];
} result;

/* Runs in the child: load, then reps x (prompt, generation). */
static result run_case(const char *path, int threads, int reps, int n_prompt, int n_gen) {
    result r = {0};
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.threads = threads;
    TinyAIModel *m = NULL;
    TinyAISession *s = NULL;
    int32_t *prompt = NULL;
    double *pt = calloc((size_t)reps, sizeof *pt), *gt = calloc((size_t)reps, sizeof *gt);
    if (tinyaiLoadModel(path, &mc, &m) != TINYAI_OK) {
        fprintf(stderr, "bench: %s\n", tinyaiLastErrorMessage());
        goto done;
    }
    TinyAIModelInfo info;
    tinyaiGetModelInfo(m, &info);
    snprintf(r.isa, sizeof r.isa, "%s", info.isa);
    /* Weight bytes one generated token reads: every block, the final norm
     * and the output head; the embedding table only if it is the head. */
    TinyAILayerInfo emb;
    tinyaiGetModelLayerInfo(m, 0, &emb);
    r.bytes_per_token = (double)info.weightBytes - (info.tiedOutput ? 0.0 : (double)emb.size);
    int n_ctx = n_prompt + n_gen + 8;
    if (n_ctx > info.nCtxTrain) n_ctx = info.nCtxTrain;
    if (tinyaiCreateSession(m, n_ctx, &s) != TINYAI_OK || !pt || !gt) {
        fprintf(stderr, "bench: %s\n", tinyaiLastErrorMessage());
        goto done;
    }
    prompt = malloc((size_t)n_prompt * sizeof *prompt);
    if (!prompt) goto done;
    for (int i = 0; i < n_prompt; i++) prompt[i] = (int32_t)((i * 7919u + 13u) % (unsigned)info.nVocab);
    for (int rep = 0; rep < reps; rep++) {
        tinyaiResetSession(s);
        double t0 = tai_bench_now();
        if (tinyaiEval(s, prompt, (size_t)n_prompt) != TINYAI_OK) goto done;
        pt[rep] = (double)n_prompt / (tai_bench_now() - t0);
        /* generation continues after a short prompt, as a chat turn would */
        tinyaiResetSession(s);
        if (tinyaiEval(s, prompt, 8) != TINYAI_OK) goto done;
        double t1 = tai_bench_now();
        for (int i = 0; i < n_gen; i++) {
            const float *l = tinyaiGetLogits(s);
            int32_t best = 0;
            for (int v = 1; v < info.nVocab; v++)
                if (l[v] > l[best]) best = v;
            if (tinyaiEval(s, &best, 1) != TINYAI_OK) goto done;
        }
        gt[rep] = (double)n_gen / (tai_bench_now() - t1);
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

/* Forks, runs the case in the child, returns its result and peak RSS. */
static result fork_case(const char *path, int threads, int reps, int n_prompt, int n_gen,
                        double *peak_mib) {
    result r = {0};
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
        result cr = run_case(path, threads, reps, n_prompt, n_gen);
        ssize_t w = write(fd[1], &cr, sizeof cr);
        _exit(w == (ssize_t)sizeof cr && cr.ok ? 0 : 1);
    }
    close(fd[1]);
    ssize_t got = read(fd[0], &r, sizeof r);
    close(fd[0]);
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) == pid) *peak_mib = (double)ru.ru_maxrss / 1024.0;
    if (got != (ssize_t)sizeof r || !WIFEXITED(status) || WEXITSTATUS(status) != 0) r.ok = 0;
    return r;
}

static int ensure_1b(const char *path) {
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

int main(int argc, char **argv) {
    const char *home = getenv("HOME");
    char def_model[4096], def_1b[4096];
    const char *cache = getenv("TINYAI_CACHE");
    if (cache && *cache) {
        snprintf(def_model, sizeof def_model, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", cache);
        snprintf(def_1b, sizeof def_1b, "%s/synth-1b-q4_0.gguf", cache);
    } else {
        snprintf(def_model, sizeof def_model, "%s/.cache/tinyai/SmolLM2-135M-Instruct.Q4_1.gguf", home ? home : ".");
        snprintf(def_1b, sizeof def_1b, "%s/.cache/tinyai/synth-1b-q4_0.gguf", home ? home : ".");
    }
    const char *model = def_model, *model_1b = def_1b;
    int reps = 3, skip_1b = 0, n_prompt = 512, n_gen = 128;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--skip-1b")) skip_1b = 1;
        else if (!strcmp(a, "--model") && v) model = argv[++i];
        else if (!strcmp(a, "--model-1b") && v) model_1b = argv[++i];
        else if (!strcmp(a, "--reps") && v) reps = atoi(argv[++i]);
        else if (!strcmp(a, "--prompt") && v) n_prompt = atoi(argv[++i]);
        else if (!strcmp(a, "--gen") && v) n_gen = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_generate [--model PATH] [--model-1b PATH] [--reps N] "
                            "[--skip-1b] [--prompt N] [--gen N]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > 50 || n_prompt < 8 || n_prompt > 8192 || n_gen < 1 || n_gen > 8192) {
        fprintf(stderr, "bench_generate: --reps 1..50, --prompt 8..8192, --gen 1..8192\n");
        return 2;
    }
    if (!skip_1b && ensure_1b(model_1b) != 0) return 1;

    const size_t bw_bytes = (size_t)1 << 30;
    double bw1 = tai_bench_read_bandwidth(bw_bytes, 1, 7);
    double bw2 = tai_bench_read_bandwidth(bw_bytes, 2, 7);
    printf("memory read bandwidth: %.2f GB/s (1 thread), %.2f GB/s (2 threads)\n", bw1 / 1e9, bw2 / 1e9);
    printf("kernel variants: %s\n\n", tinyaiCpuVariants());
    printf("%-34s %3s %7s %12s %12s %10s %10s %9s %9s\n", "model", "thr", "isa", "prompt tok/s",
           "gen tok/s", "MB/token", "ceiling", "of ceil", "peak MiB");
    const char *models[2] = {model, model_1b};
    int failed = 0;
    for (int mi = 0; mi < (skip_1b ? 1 : 2); mi++) {
        for (int threads = 1; threads <= 2; threads++) {
            double peak;
            result r = fork_case(models[mi], threads, reps, n_prompt, n_gen, &peak);
            const char *base = strrchr(models[mi], '/');
            base = base ? base + 1 : models[mi];
            if (!r.ok) {
                printf("%-34.34s %3d  failed\n", base, threads);
                failed = 1;
                continue;
            }
            double bw = threads == 1 ? bw1 : bw2;
            double ceiling = bw / r.bytes_per_token;
            printf("%-34.34s %3d %7s %12.1f %12.2f %10.1f %10.2f %8.0f%% %9.1f\n", base, threads, r.isa,
                   r.prompt_tps, r.gen_tps, r.bytes_per_token / 1e6, ceiling,
                   100.0 * r.gen_tps / ceiling, peak);
            fflush(stdout);
        }
    }
    printf("\nprompt: %d tokens; generation: %d tokens after an 8-token prompt; medians of %d runs.\n"
           "ceiling = read bandwidth at that thread count / weight bytes read per token.\n",
           n_prompt, n_gen, reps);
    return failed;
}
