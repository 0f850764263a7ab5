/*
 * tools/quantize.c: `tinyai quantize`, mixed-precision conversion of a model
 * file (tinyaiQuantizeModelFile): a weight type per group of matrices,
 * streamed layer by layer with a progress line; and `tinyai prune`, block
 * pruning into a block-sparse .tmai (tinyaiPruneModelFile).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tinyai/utils/prune.h>
#include <tinyai/utils/quantize_mixed.h>

#include "tools/cli.h"

static void quantize_help(void) {
    printf("usage: %s quantize IN OUT [--embedding P] [--attention P] [--ffn P]\n"
           "                      [--output P] [--int4 q4_0|q4_1|q4_k] [--more-bits]\n"
           "                      [--mix q4_k_m|q5_k_m] [--threads N]\n"
           "\n"
           "Writes IN (.gguf or .tmai) with a weight type per group of matrices to OUT:\n"
           ".tmai if OUT ends in .tmai, else GGUF. Streams layer by layer: a few MiB of\n"
           "memory whatever the model's size. OUT appears only when complete.\n"
           "\n"
           "  P: fp32, fp16, int8 (Q8_0), int6 (Q6_K), int5 (Q5_K), int4 (Q4_0, or\n"
           "     Q4_1 / Q4_K with --int4), or source (keep, the default). Precision\n"
           "     only goes down: raising a tensor above its source type is refused.\n"
           "     K-quants need rows of whole 256-weight blocks; other rows are written\n"
           "     as llama.cpp does (Q4_K as Q5_0, Q5_K as Q5_1, Q6_K as Q8_0).\n"
           "  --embedding P      the token embedding\n"
           "  --attention P      attn_q, attn_k, attn_v, attn_output of every block\n"
           "  --ffn P            ffn_gate, ffn_up, ffn_down of every block\n"
           "  --output P         the output head (a head tied to the embedding gets its\n"
           "                     own copy when the two types differ)\n"
           "  --int4 F           what int4 means: q4_0 (default), q4_1 or q4_k\n"
           "  --more-bits        attn_v and ffn_down of llama.cpp's \"more bits\" blocks\n"
           "                     in Q6_K where their group is int4 or int5\n"
           "  --mix M            llama.cpp's mixes: q4_k_m (int4 = Q4_K everywhere, the\n"
           "                     output int6, --more-bits) or q5_k_m (int5, output int6,\n"
           "                     --more-bits)\n"
           "  --threads N        threads converting rows (default: one per core, <= 8)\n",
           prog);
}

static const char *const prec_names[] = {"fp32", "fp16", "int8", "int4", "source", "int6", "int5"};

static void on_progress(void *user, uint64_t done, uint64_t total) {
    int *last = user;
    const int pct = total ? (int)(100.0 * (double)done / (double)total) : 100;
    if (pct == *last) return;
    *last = pct;
    if (isatty(STDERR_FILENO))
        fprintf(stderr, "\r%3d%% (%.1f of %.1f MiB)", pct, done / 1048576.0,
                total / 1048576.0);
    else if (pct / 10 != (pct - 1) / 10 || pct == 100)
        fprintf(stderr, "%3d%% (%.1f of %.1f MiB)\n", pct, done / 1048576.0,
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
        if (!strcmp(a, "--more-bits")) {
            c.useMoreBits = 1;
            continue;
        }
        if (!(v = take(argc, argv, &i))) return usage_error("option %s needs a value or is unknown", a);
        TinyAIPrecision *p = !strcmp(a, "--embedding") ? &c.embeddingPrecision
                             : !strcmp(a, "--attention") ? &c.attentionPrecision
                             : !strcmp(a, "--ffn")       ? &c.ffnPrecision
                             : !strcmp(a, "--output")    ? &c.outputPrecision
                                                         : NULL;
        if (p) {
            int k = parse_choice(v, prec_names, 7);
            if (k < 0)
                return usage_error("precision '%s': use fp32, fp16, int8, int6, int5, int4 or source", v);
            *p = (TinyAIPrecision)k;
        } else if (!strcmp(a, "--int4")) {
            static const char *const f[] = {"q4_0", "q4_1", "q4_k"};
            int k = parse_choice(v, f, 3);
            if (k < 0) return usage_error("--int4 '%s': use q4_0, q4_1 or q4_k", v);
            c.int4Format = (TinyAIInt4Format)k;
        } else if (!strcmp(a, "--mix")) {
            static const char *const mixes[] = {"q4_k_m", "q5_k_m"};
            int k = parse_choice(v, mixes, 2);
            if (k < 0) return usage_error("--mix '%s': use q4_k_m or q5_k_m", v);
            const TinyAIPrecision g = k == 0 ? TINYAI_PREC_INT4 : TINYAI_PREC_INT5;
            c.embeddingPrecision = c.attentionPrecision = c.ffnPrecision = g;
            c.outputPrecision = TINYAI_PREC_INT6;
            c.int4Format = TINYAI_INT4_Q4_K;
            c.useMoreBits = 1;
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

/* ---- prune ------------------------------------------------------------- */

static void prune_help(void) {
    printf("usage: %s prune IN OUT.tmai [--sparsity S] [--method magnitude|l2]\n"
           "                   [--block-size N] [--layer-sparsity B=S[,B=S...]]\n"
           "  (--method magnitude|l2|norm-weighted)\n"
           "\n"
           "Removes the least important 16 x N tiles of every block's weight matrices\n"
           "(attention and feed-forward; not the embedding, the head or the norms) and\n"
           "writes the rest block-sparse to OUT (a .tmai): the file, the weight cache\n"
           "and each decoding step then hold and read only the kept tiles.\n"
           "\n"
           "  --sparsity S       share of each matrix's tiles removed, 0 to 0.97 (default 0.5)\n"
           "  --method M         tile score: magnitude (sum of |w|, default), l2, or\n"
           "                     norm-weighted (|w| times the RMSNorm weight of its input)\n"
           "  --block-size N     tile width in columns, rounded up to a multiple of 32\n"
           "                     (default 32)\n"
           "  --layer-sparsity B=S,...  sparsity S for transformer block B (from 0)\n",
           prog);
}

int cmd_prune(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    static TinyAIPruneConfig c;
    tinyaiInitPruneConfig(&c);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            prune_help();
            return 0;
        }
        if (a[0] != '-') {
            if (!in) in = a;
            else if (!out) out = a;
            else return usage_error("prune takes two paths, got also '%s'", a);
            continue;
        }
        if (!(v = take(argc, argv, &i))) return usage_error("option %s needs a value or is unknown", a);
        char *end = NULL;
        if (!strcmp(a, "--sparsity")) {
            c.sparsity = strtof(v, &end);
            if (end == v || *end || !(c.sparsity >= 0.0f && c.sparsity <= 0.97f))
                return usage_error("--sparsity '%s': a number from 0 to 0.97", v);
        } else if (!strcmp(a, "--method")) {
            static const char *const m[] = {"magnitude", "l2", "norm-weighted"};
            int k = parse_choice(v, m, 3);
            if (k < 0) return usage_error("--method '%s': magnitude, l2 or norm-weighted", v);
            c.method = (TinyAIPruneMethod)k;
        } else if (!strcmp(a, "--block-size")) {
            long b;
            if (!parse_long(v, 1, 65536, &b)) return usage_error("--block-size '%s': 1 to 65536", v);
            c.blockSize = (int)b;
        } else if (!strcmp(a, "--layer-sparsity")) {
            for (const char *p = v; *p;) {
                char *eq = NULL;
                long b = strtol(p, &eq, 10);
                if (eq == p || *eq != '=' || b < 0 || b >= TINYAI_PRUNE_MAX_LAYERS)
                    return usage_error("--layer-sparsity '%s': B=S pairs, B a block index", v);
                float s = strtof(eq + 1, &end);
                if (end == eq + 1 || (*end && *end != ',') || !(s >= 0.0f && s <= 0.97f))
                    return usage_error("--layer-sparsity '%s': each S from 0 to 0.97", v);
                c.layerSparsity[b] = s;
                p = *end ? end + 1 : end;
            }
        } else {
            return usage_error("unknown option %s", a);
        }
    }
    if (!in || !out) return usage_error("%s", "prune needs IN and OUT paths");
    int last = -1;
    TinyAIStatus st = tinyaiPruneModelFile(in, out, &c, on_progress, &last);
    if (last >= 0 && isatty(STDERR_FILENO)) fputc('\n', stderr);
    if (st != TINYAI_OK) return fail("prune");
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.memoryLimit = 1;
    TinyAIModel *m = NULL;
    TinyAIModelInfo a, b;
    if (tinyaiLoadModel(in, &mc, &m) != TINYAI_OK) return fail("prune: reading the input back");
    tinyaiGetModelInfo(m, &a);
    tinyaiFreeModel(m);
    if (tinyaiLoadModel(out, &mc, &m) != TINYAI_OK) return fail("prune: reading the output back");
    tinyaiGetModelInfo(m, &b);
    const size_t saved = tinyaiCalculatePruningSavings(m);
    tinyaiFreeModel(m);
    printf("wrote %s: %.1f MiB of weights (was %.1f MiB); pruning saves %.1f MiB\n", out,
           b.weightBytes / 1048576.0, a.weightBytes / 1048576.0, saved / 1048576.0);
    return 0;
}
