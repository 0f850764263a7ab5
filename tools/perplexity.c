/*
 * tools/perplexity.c: `tinyai perplexity`, the quality yardstick: the
 * perplexity of a text file under a model, computed as llama.cpp's
 * perplexity tool does (tinyaiPerplexity), printing the running estimate
 * after each chunk and the final figure with its standard error and the
 * evaluation speed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tinyai/llm.h>

#include "tools/cli.h"

static void perplexity_help(void) {
    printf("usage: %s perplexity -m MODEL -f TEXT [--ctx N] [--batch N] [--threads N]\n"
           "                        [--mem-limit BYTES] [--device D] [--no-bos]\n"
           "\n"
           "Perplexity of a text file under the model, as llama.cpp's perplexity tool\n"
           "computes it: the text's tokens in whole chunks of --ctx tokens, each from an\n"
           "empty context with BOS first, scored on its second half. Prints the running\n"
           "estimate after each chunk, then PPL = X +/- standard error and tokens/s.\n"
           "\n"
           "  -m, --model PATH   model file (.gguf or .tmai)\n"
           "  -f, --file PATH    UTF-8 text\n"
           "  --ctx N            tokens per chunk (default 512, at most the model's context)\n"
           "  --batch N          chunks evaluated together (default 1; the figure is the\n"
           "                     same for any batch)\n"
           "  --no-bos           keep each chunk's first token instead of BOS\n"
           "  --threads N, --device D, --mem-limit BYTES, --mode M, --io E, ...\n"
           "                     as for generate\n",
           prog);
}

static void on_chunk(void *ctx, int chunk, int n, double ppl, double err) {
    (void)ctx;
    fprintf(stderr, "[%d/%d] %.4f +/- %.4f\n", chunk, n, ppl, err);
}

int cmd_perplexity(int argc, char **argv) {
    const char *model_path = NULL, *text_path = NULL;
    long ctx = 512, batch = 1;
    int bos = -1, mo;
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            perplexity_help();
            return 0;
        }
        if (!strcmp(a, "--no-bos")) {
            bos = 0;
            continue;
        }
        if (!(v = take(argc, argv, &i))) return usage_error("option %s needs a value or is unknown", a);
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            model_path = v;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            text_path = v;
        } else if (!strcmp(a, "--ctx")) {
            if (!parse_long(v, 4, 1 << 20, &ctx)) return usage_error("--ctx must be in 4..1048576, got '%s'", v);
        } else if (!strcmp(a, "--batch")) {
            if (!parse_long(v, 1, 256, &batch)) return usage_error("--batch must be in 1..256, got '%s'", v);
        } else if ((mo = model_option(a, v, &mc)) != 0) {
            if (mo == 2) return 2;
        } else {
            return usage_error("unknown option %s", a);
        }
    }
    if (!model_path || !text_path) return usage_error("%s", "perplexity needs -m MODEL and -f TEXT");
    if (access(model_path, R_OK) != 0) return usage_error("cannot read the model '%s'", model_path);
    FILE *f = fopen(text_path, "rb");
    if (!f) return usage_error("cannot read the text '%s'", text_path);
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    for (size_t got; text && (got = fread(text + len, 1, cap - len - 1, f)) > 0;) {
        len += got;
        if (len + 1 == cap) {
            char *t = cap < ((size_t)1 << 30) ? realloc(text, cap * 2) : NULL;
            if (!t) {
                free(text);
                text = NULL;
                break;
            }
            text = t;
            cap *= 2;
        }
    }
    const int read_err = ferror(f);
    fclose(f);
    if (!text || read_err) {
        free(text);
        fprintf(stderr, "%s: cannot read '%s' (or it is larger than 1 GiB)\n", prog, text_path);
        return 1;
    }
    text[len] = 0;
    if (strlen(text) != len) {
        free(text);
        fprintf(stderr, "%s: '%s' holds NUL bytes: not text\n", prog, text_path);
        return 1;
    }

    apply_tuning(1);
    mc.maxSessions = (int)batch;
    mc.contextSize = (int)ctx;
    char cdir[4000];
    cache_dir(cdir, sizeof cdir);
    if (make_dirs(cdir) == 0) {
        measure_devices_once(cdir, mc.device, mc.threads, 1);
        mc.cacheDir = cdir;
    }
    load_plugins(1);
    TinyAIModel *m = NULL;
    if (tinyaiLoadModel(model_path, &mc, &m) != TINYAI_OK) {
        free(text);
        return fail("cannot load the model");
    }
    TinyAIModelInfo info;
    tinyaiGetModelInfo(m, &info);
    size_t n = 0;
    TinyAIStatus st = tinyaiTokenize(m, text, false, false, NULL, 0, &n);
    int32_t *ids = (st == TINYAI_OK || st == TINYAI_ERR_RANGE) && n ? malloc(n * sizeof *ids) : NULL;
    if (ids) st = tinyaiTokenize(m, text, false, false, ids, n, &n);
    free(text);
    if (!ids || st != TINYAI_OK) {
        free(ids);
        tinyaiFreeModel(m);
        if (n == 0) {
            fprintf(stderr, "%s: '%s' holds no text\n", prog, text_path);
            return 1;
        }
        return fail("cannot tokenize the text");
    }
    if (n < (size_t)ctx) {
        free(ids);
        tinyaiFreeModel(m);
        fprintf(stderr, "%s: the text is %zu tokens, fewer than one chunk of %ld (--ctx)\n", prog, n,
                ctx);
        return 1;
    }
    TinyAIPerplexityConfig pc = tinyaiCreateDefaultPerplexityConfig();
    pc.contextSize = (int)ctx;
    pc.batch = (int)batch;
    pc.addBos = bos;
    pc.progress = on_chunk;
    fprintf(stderr, "%s: %zu tokens, %zu chunks of %ld (%zu tokens not scored)\n", prog, n,
            n / (size_t)ctx, ctx, n % (size_t)ctx);
    TinyAIPerplexityResult r;
    st = tinyaiPerplexity(m, ids, n, &pc, &r);
    free(ids);
    if (st != TINYAI_OK) {
        int rc = fail("perplexity");
        tinyaiFreeModel(m);
        return rc;
    }
    printf("PPL = %.4f +/- %.4f\n", r.perplexity, r.stdError);
    printf("%lld tokens scored in %d chunks of %ld; %.1f tokens/s evaluated | peak RSS %.1f MiB\n",
           (long long)r.tokensScored, r.chunks, ctx,
           r.seconds > 0 ? (double)r.chunks * (double)ctx / r.seconds : 0.0, peak_rss_mib());
    tinyaiFreeModel(m);
    return 0;
}
