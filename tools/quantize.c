/*
 * tools/quantize.c: `tinyai quantize`, mixed-precision conversion of a model
 * file (tinyaiQuantizeModelFile): a weight type per group of matrices,
 * streamed layer by layer with a progress line.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <tinyai/utils/quantize_mixed.h>

#include "tools/cli.h"

static void quantize_help(void) {
    printf("usage: %s quantize IN OUT [--embedding P] [--attention P] [--ffn P]\n"
           "                      [--output P] [--int4 q4_0|q4_1] [--threads N]\n"
           "\n"
           "Writes IN (.gguf or .tmai) with a weight type per group of matrices to OUT:\n"
           ".tmai if OUT ends in .tmai, else GGUF. Streams layer by layer: a few MiB of\n"
           "memory whatever the model's size. OUT appears only when complete.\n"
           "\n"
           "  P: fp32, fp16, int8 (Q8_0), int4 (Q4_0, or Q4_1 with --int4 q4_1), or\n"
           "     source (keep, the default). Precision only goes down: raising a\n"
           "     tensor above its source type is refused.\n"
           "  --embedding P      the token embedding\n"
           "  --attention P      attn_q, attn_k, attn_v, attn_output of every block\n"
           "  --ffn P            ffn_gate, ffn_up, ffn_down of every block\n"
           "  --output P         the output head (a head tied to the embedding gets its\n"
           "                     own copy when the two types differ)\n"
           "  --int4 F           what int4 means: q4_0 (default) or q4_1\n"
           "  --threads N        threads converting rows (default: one per core, <= 8)\n",
           prog);
}

static const char *const prec_names[] = {"fp32", "fp16", "int8", "int4", "source"};

static void on_progress(void *user, uint64_t done, uint64_t total) {
    int *last = user;
    const int pct = total ? (int)(100.0 * (double)done / (double)total) : 100;
    if (pct == *last) return;
    *last = pct;
    if (isatty(STDERR_FILENO))
        fprintf(stderr, "\rquantize: %3d%% (%.1f of %.1f MiB)", pct, done / 1048576.0,
                total / 1048576.0);
    else if (pct % 10 == 0)
        fprintf(stderr, "quantize: %3d%% (%.1f of %.1f MiB)\n", pct, done / 1048576.0,
                total / 1048576.0);
}

int cmd_quantize(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    TinyAIMixedPrecisionConfig c;
    tinyaiInitMixedPrecisionConfig(&c);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            quantize_help();
            return 0;
        }
        if (a[0] != '-') {
            if (!in) in = a;
            else if (!out) out = a;
            else return usage_error("quantize takes two paths, got also '%s'", a);
            continue;
        }
        if (!(v = take(argc, argv, &i))) return usage_error("option %s needs a value or is unknown", a);
        TinyAIPrecision *p = !strcmp(a, "--embedding") ? &c.embeddingPrecision
                             : !strcmp(a, "--attention") ? &c.attentionPrecision
                             : !strcmp(a, "--ffn")       ? &c.ffnPrecision
                             : !strcmp(a, "--output")    ? &c.outputPrecision
                                                         : NULL;
        if (p) {
            int k = parse_choice(v, prec_names, 5);
            if (k < 0) return usage_error("precision '%s': use fp32, fp16, int8, int4 or source", v);
            *p = (TinyAIPrecision)k;
        } else if (!strcmp(a, "--int4")) {
            static const char *const f[] = {"q4_0", "q4_1"};
            int k = parse_choice(v, f, 2);
            if (k < 0) return usage_error("--int4 '%s': use q4_0 or q4_1", v);
            c.int4Format = (TinyAIInt4Format)k;
        } else if (!strcmp(a, "--threads")) {
            long t;
            if (!parse_long(v, 1, 8, &t)) return usage_error("--threads '%s': 1 to 8", v);
            c.threads = (int)t;
        } else {
            return usage_error("unknown option %s", a);
        }
    }
    if (!in || !out) return usage_error("%s", "quantize needs IN and OUT paths");
    int last = -1;
    TinyAIStatus st = tinyaiQuantizeModelFile(in, out, &c, on_progress, &last);
    if (last >= 0 && isatty(STDERR_FILENO)) fputc('\n', stderr);
    if (st != TINYAI_OK) return fail("quantize");
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.memoryLimit = 1; /* only the tables: no layer is read */
    TinyAIModel *m = NULL;
    TinyAIModelInfo a, b;
    if (tinyaiLoadModel(in, &mc, &m) != TINYAI_OK) return fail("quantize: reading the input back");
    tinyaiGetModelInfo(m, &a);
    tinyaiFreeModel(m);
    if (tinyaiLoadModel(out, &mc, &m) != TINYAI_OK) return fail("quantize: reading the output back");
    tinyaiGetModelInfo(m, &b);
    tinyaiFreeModel(m);
    printf("wrote %s: %.1f MiB of weights (was %.1f MiB, x%.2f)\n", out,
           b.weightBytes / 1048576.0, a.weightBytes / 1048576.0,
           a.weightBytes ? (double)b.weightBytes / (double)a.weightBytes : 0.0);
    return 0;
}
