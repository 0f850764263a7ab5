/*
 * bench/bench_batch: batched decoding on its own, without HTTP: what one
 * step of N sequences costs, for the server's continuous batching.
 *
 *   bench_batch [--model PATH] [--batches 1,4,16,64] [--fill P] [--steps S]
 *               [--reps R] [--threads T] [--profile]
 *
 * For each batch size N: N sessions each hold P positions (a prompt of P
 * tokens, evaluated first; default 192, a 128-token prompt well into its
 * answer), then S greedy decoding steps of all N together (tinyaiEvalBatch,
 * each token picked by the greedy sampler, as the server picks) are timed.
 * Reports ms per step, aggregate tok/s and its ratio to N = 1, medians over
 * R repetitions, all in one run on one loaded model (resident, no memory
 * limit), so the ratios compare like with like. The server's
 * figures (bench/serve_load.py) add HTTP, streaming the text and prefill
 * to this.
 * --profile: one more repetition per N under the profiler, untimed, with
 * the ops that took over 2% of it (ms per step and share).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tinyai/llm.h>
#include <tinyai/profile.h>

#include "bench/e2e.h"
#include "bench/membw.h"

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int fail(const char *what) {
    fprintf(stderr, "bench_batch: %s: %s\n", what, tinyaiLastErrorMessage());
    return 1;
}

/* Per op kind: ms per step and share of the step, from one profiled rep. */
static void print_ops(const TinyAIModel *m, int steps) {
    double total = 0;
    TinyAIOpProfile op;
    for (int k = 0; k < tinyaiOpProfileCount(); k++)
        if (tinyaiGetOpProfile(m, k, &op) == TINYAI_OK) total += op.seconds;
    printf("      profiled rep, per step:");
    for (int k = 0; k < tinyaiOpProfileCount(); k++)
        if (tinyaiGetOpProfile(m, k, &op) == TINYAI_OK && op.seconds > 0.02 * total)
            printf(" %s %.2f ms (%.0f%%)", op.name, op.seconds * 1e3 / steps, 100 * op.seconds / total);
    printf("\n");
}

int main(int argc, char **argv) {
    char def_model[4096], def_1b[4096];
    tai_e2e_default_paths(def_model, sizeof def_model, def_1b, sizeof def_1b);
    const char *model = def_model, *batches = "1,4,16,64";
    int fill = 192, steps = 32, reps = 3, threads = 0, profile = 0;
    TinyAIKVCacheType kv = TINYAI_KV_F32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--model") && v) model = argv[++i];
        else if (!strcmp(a, "--batches") && v) batches = argv[++i];
        else if (!strcmp(a, "--fill") && v) fill = atoi(argv[++i]);
        else if (!strcmp(a, "--steps") && v) steps = atoi(argv[++i]);
        else if (!strcmp(a, "--reps") && v) reps = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && v) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--profile")) profile = 1;
        else if (!strcmp(a, "--kv-type") && v &&
                 (!strcmp(v, "f16") || !strcmp(v, "f32") || !strcmp(v, "q8_0"))) {
            kv = !strcmp(v, "f16") ? TINYAI_KV_F16 : !strcmp(v, "q8_0") ? TINYAI_KV_Q8_0 : TINYAI_KV_F32;
            i++;
        }
        else {
            fprintf(stderr, "usage: bench_batch [--model PATH] [--batches 1,4,16,64] [--fill P] "
                            "[--steps S] [--reps R] [--threads T] [--kv-type f32|f16|q8_0] [--profile]\n");
            return 2;
        }
    }
    int ns[16], nn = 0, maxn = 0;
    for (const char *p = batches; *p && nn < 16;) {
        ns[nn] = atoi(p);
        if (ns[nn] < 1 || ns[nn] > 256) {
            fprintf(stderr, "bench_batch: batch sizes 1..256\n");
            return 2;
        }
        if (ns[nn] > maxn) maxn = ns[nn];
        nn++;
        const char *c = strchr(p, ',');
        if (!c) break;
        p = c + 1;
    }
    if (nn == 0 || fill < 1 || fill > 4000 || steps < 1 || steps > 1000 || reps < 1 || reps > 20) {
        fprintf(stderr, "bench_batch: --fill 1..4000, --steps 1..1000, --reps 1..20\n");
        return 2;
    }
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.maxSessions = maxn;
    mc.contextSize = fill + steps + 1;
    mc.kvCacheType = kv;
    if (threads > 0) mc.threads = threads;
    TinyAIModel *m = NULL;
    if (tinyaiLoadModel(model, &mc, &m) != TINYAI_OK) return fail(model);
    TinyAIModelInfo info;
    tinyaiGetModelInfo(m, &info);
    TinyAISession **s = calloc((size_t)maxn, sizeof *s);
    int32_t *tok = calloc((size_t)maxn, sizeof *tok), *prompt = calloc((size_t)fill, sizeof *prompt);
    double *t = calloc((size_t)reps, sizeof *t);
    if (!s || !tok || !prompt || !t) return 1;
    for (int i = 0; i < maxn; i++)
        if (tinyaiCreateSession(m, fill + steps + 1, &s[i]) != TINYAI_OK) return fail("session");
    /* greedy, as the server picks at temperature 0 (the kernels' argmax) */
    TinyAISamplerConfig sc = tinyaiCreateDefaultSamplerConfig();
    sc.temperature = 0.0f;
    TinyAISampler *greedy = NULL;
    if (tinyaiCreateSampler(&sc, &greedy) != TINYAI_OK) return fail("sampler");
    printf("model %s; %s KV cache; %d positions held per sequence, %d steps timed, medians of %d\n",
           model, info.kvCacheType, fill, steps, reps);
    printf("%5s %10s %10s %7s\n", "N", "ms/step", "tok/s", "x N=1");
    double base = 0;
    for (int k = 0; k < nn; k++) {
        const int n = ns[k];
        for (int r = 0; r < reps + profile; r++) {
            const int profiled = r == reps; /* one more, untimed, under the profiler */
            /* each sequence its own prompt, evaluated on its own (untimed) */
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < fill; j++) prompt[j] = 1 + (int32_t)((i * 7919 + j * 104729) % (info.nVocab - 1));
                tinyaiResetSession(s[i]);
                if (tinyaiEval(s[i], prompt, (size_t)fill) != TINYAI_OK) return fail("prompt");
                tok[i] = prompt[fill - 1];
            }
            if (profiled && tinyaiStartProfile(m, 0) != TINYAI_OK) return fail("profile");
            const double t0 = tai_bench_now();
            for (int st = 0; st < steps; st++) {
                if (tinyaiEvalBatch(s, tok, (size_t)n) != TINYAI_OK) return fail("step");
                for (int i = 0; i < n; i++)
                    if ((tok[i] = tinyaiSample(greedy, tinyaiGetLogits(s[i]), info.nVocab)) < 0)
                        return fail("sample");
            }
            if (profiled) {
                tinyaiStopProfile(m);
                print_ops(m, steps);
            } else {
                t[r] = (tai_bench_now() - t0) / steps;
            }
        }
        qsort(t, (size_t)reps, sizeof *t, cmp_double);
        const double step = t[reps / 2], tps = n / step;
        if (k == 0) base = tps;
        printf("%5d %10.2f %10.1f %6.2fx\n", n, step * 1e3, tps, tps / base);
        fflush(stdout);
    }
    tinyaiFreeSampler(greedy);
    for (int i = 0; i < maxn; i++) tinyaiFreeSession(s[i]);
    tinyaiFreeModel(m);
    free(s);
    free(tok);
    free(prompt);
    free(t);
    return 0;
}
