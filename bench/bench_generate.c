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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tinyai/llm.h>

#include "bench/e2e.h"
#include "bench/membw.h"

int main(int argc, char **argv) {
    char def_model[4096], def_1b[4096];
    tai_e2e_default_paths(def_model, sizeof def_model, def_1b, sizeof def_1b);
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
    if (!skip_1b && tai_e2e_ensure_1b(model_1b) != 0) return 1;

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
            tai_e2e_result r = tai_e2e_fork_case(models[mi], threads, reps, 0, n_prompt, n_gen, &peak);
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
