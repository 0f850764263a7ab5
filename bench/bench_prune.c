/*
 * bench/bench_prune: what block-sparse pruning buys.
 *
 *   bench_prune [--kernels-only] [--model PATH] [--text PATH] [--reps R]
 *
 * 1. Kernels: matrix-vector products (one thread, one column) of dense
 *    packed matrices against the same matrices at 70% block sparsity (each
 *    16-row panel keeping 30% of its 32-column blocks), for F16, Q8_0 and
 *    Q4_0, on a working set of matrices much larger than the last-level
 *    cache (so the product is bound by memory bandwidth, as decoding is):
 *    bytes read and time per pass, medians of R passes, and the ratios.
 * 2. (unless --kernels-only) The model: tinyaiPruneModel at 30%, 50% and
 *    70% on the default model, with weight bytes, perplexity of the text,
 *    decode tok/s, and bytes read from storage per generated token when
 *    streaming under a memory limit of half the dense model.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tinyai/llm.h>
#include <tinyai/utils/prune.h>

#include "bench/e2e.h"
#include "bench/membw.h"
#include "kernels/kernels.h"

static void *alloc64(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) return NULL;
    memset(p, 0, n);
    return p;
}

static uint32_t rng_state = 12345;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* One type: `count` rows x n matrices, dense and sparse. */
static int kernel_case(tai_type t, int64_t rows, int64_t n, int count, int reps) {
    const int64_t nb = n / TAI_QK, keep = (nb * 3 + 5) / 10; /* 30% kept */
    const int64_t panels = (rows + TAI_PANEL - 1) / TAI_PANEL;
    const size_t row = tai_type_row_bytes(t, n), dense_b = tai_pack_bytes(t, rows, n);
    const size_t sparse_b = tai_sparse_bytes(t, rows, n, keep);
    void **dense = calloc((size_t)count, sizeof *dense), **sparse = calloc((size_t)count, sizeof *sparse);
    uint8_t *w = malloc(row * (size_t)TAI_PANEL * 64);
    float *f = malloc((size_t)n * sizeof(float));
    uint8_t *tmp = malloc(TAI_PANEL * row + 64);
    if (!dense || !sparse || !w || !f || !tmp) return 1;
    /* a few distinct row blocks, reused: the values do not matter for speed */
    for (int64_t r = 0; r < TAI_PANEL * 64; r++) {
        for (int64_t k = 0; k < n; k++) f[k] = (float)((int)(rnd() % 2001) - 1000) / 1000.0f;
        tai_quantize_row(t, f, w + (size_t)r * row, n);
    }
    uint16_t *idx = malloc((size_t)keep * 2);
    for (int i = 0; i < count; i++) {
        dense[i] = alloc64(dense_b);
        sparse[i] = alloc64(sparse_b);
        if (!dense[i] || !sparse[i]) {
            fprintf(stderr, "bench_prune: out of memory\n");
            return 1;
        }
        const size_t pb = tai_pack_panel_bytes(t, n), spb = tai_sparse_panel_bytes(t, n, keep);
        for (int64_t p = 0; p < panels; p++) {
            const uint8_t *src = w + (size_t)(p % 64) * TAI_PANEL * row;
            tai_pack_panels(t, src, TAI_PANEL, n, (uint8_t *)dense[i] + (size_t)p * pb, 0, 1);
            /* keep a random 30% of the blocks */
            int64_t got = 0;
            for (int64_t b = 0; b < nb && got < keep; b++)
                if ((int64_t)(rnd() % (uint32_t)(nb - b)) < keep - got) idx[got++] = (uint16_t)b;
            tai_pack_sparse_panel(t, src, TAI_PANEL, n, keep, idx,
                                  (uint8_t *)sparse[i] + (size_t)p * spb, tmp);
        }
    }
    const tai_kernels *k = tai_kernels_get(tai_isa_best(TAI_ISA_AVX512));
    float *x = malloc((size_t)n * sizeof(float)), *y = malloc((size_t)rows * sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = (float)((int)(rnd() % 2001) - 1000) / 1000.0f;
    void *sd = alloc64(tai_matmul_scratch_bytes(t, n, 1));
    void *ss = alloc64(tai_matmul_sparse_scratch_bytes(t, n, keep, 1, 1));
    double *td = malloc(sizeof(double) * (size_t)reps), *ts = malloc(sizeof(double) * (size_t)reps);
    for (int r = -1; r < reps; r++) { /* r = -1: untimed */
        double t0 = tai_bench_now();
        for (int i = 0; i < count; i++) tai_matmul(k, NULL, t, dense[i], rows, n, x, y, 1, sd);
        double t1 = tai_bench_now();
        for (int i = 0; i < count; i++)
            tai_matmul_sparse(k, NULL, t, sparse[i], rows, n, keep, x, y, 1, ss);
        double t2 = tai_bench_now();
        if (r >= 0) {
            td[r] = t1 - t0;
            ts[r] = t2 - t1;
        }
    }
    const double md = tai_bench_median(td, reps), ms = tai_bench_median(ts, reps);
    const double gd = (double)dense_b * count / md / 1e9, gs = (double)sparse_b * count / ms / 1e9;
    printf("%-5s %5lldx%-5lld x%-3d  keep %3lld/%-3lld  dense %7.1f MiB %7.2f ms %5.1f GB/s | "
           "sparse %7.1f MiB %7.2f ms %5.1f GB/s | bytes /%.2f  time /%.2f\n",
           tai_type_name(t), (long long)rows, (long long)n, count, (long long)keep, (long long)nb,
           dense_b * (double)count / 1048576.0, md * 1e3, gd, sparse_b * (double)count / 1048576.0,
           ms * 1e3, gs, (double)dense_b / (double)sparse_b, md / ms);
    for (int i = 0; i < count; i++) {
        free(dense[i]);
        free(sparse[i]);
    }
    free(dense), free(sparse), free(w), free(f), free(tmp), free(idx), free(x), free(y);
    free(sd), free(ss), free(td), free(ts);
    return 0;
}

static int failed(const char *what) {
    fprintf(stderr, "bench_prune: %s: %s\n", what, tinyaiLastErrorMessage());
    return 1;
}

/* Bytes read from storage per generated token when every layer streams
 * (TINYAI_EXEC_STREAMING under `limit`). */
static double stream_bytes_per_token(const char *path, size_t limit) {
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.memoryLimit = limit;
    mc.mode = TINYAI_EXEC_STREAMING;
    mc.contextSize = 64;
    TinyAIModel *m = NULL;
    TinyAISession *s = NULL;
    if (tinyaiLoadModel(path, &mc, &m) != TINYAI_OK || tinyaiCreateSession(m, 64, &s) != TINYAI_OK) {
        failed(path);
        tinyaiFreeModel(m);
        return -1;
    }
    int32_t t = 1;
    double r = -1;
    if (tinyaiEval(s, &t, 1) == TINYAI_OK) {
        tinyaiResetMemoryStats(m);
        int k = 0;
        for (; k < 16 && tinyaiEval(s, &t, 1) == TINYAI_OK; k++) {}
        TinyAIMemoryInfo mi;
        tinyaiGetMemoryInfo(m, &mi);
        if (k == 16) r = (double)mi.bytesRead / 16;
    }
    tinyaiFreeSession(s);
    tinyaiFreeModel(m);
    return r;
}

/* One row of the model table: the file's bytes, the saving, perplexity,
 * decode speed, streamed bytes per token. */
static int model_case(const char *name, const char *path, const char *text, int reps) {
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    TinyAIModel *m = NULL;
    if (tinyaiLoadModel(path, &mc, &m) != TINYAI_OK) return failed(path);
    TinyAIModelInfo info;
    tinyaiGetModelInfo(m, &info);
    const size_t saved = tinyaiCalculatePruningSavings(m);
    size_t n = 0, cap = strlen(text) + 16;
    int32_t *toks = malloc(cap * sizeof *toks);
    TinyAIPerplexityConfig pc = tinyaiCreateDefaultPerplexityConfig();
    pc.contextSize = 128;
    TinyAIPerplexityResult pr;
    TinyAIStatus st = toks ? tinyaiTokenize(m, text, false, false, toks, cap, &n) : TINYAI_ERR_NOMEM;
    if (st == TINYAI_OK) st = tinyaiPerplexity(m, toks, n, &pc, &pr);
    free(toks);
    tinyaiFreeModel(m);
    if (st != TINYAI_OK) return failed("perplexity");
    double peak = 0;
    tai_e2e_result r = tai_e2e_fork_case(path, 0, reps, 1, 64, 64, &peak);
    const double bpt = stream_bytes_per_token(path, 128u << 20);
    if (!r.ok || bpt < 0) return 1;
    printf("%-24s %8.1f %8.1f %11.2f %8.4f %8.1f %10.2f\n", name, info.weightBytes / 1048576.0,
           saved / 1048576.0, pr.perplexity, pr.stdError, r.gen_tps, bpt / 1048576.0);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    char def_model[4096], def_1b[4096];
    tai_e2e_default_paths(def_model, sizeof def_model, def_1b, sizeof def_1b);
    const char *model = def_model, *text_path = "tests/data/public_domain_en.txt", *dir = "/tmp";
    int reps = 9, kernels_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--kernels-only")) kernels_only = 1;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--text") && i + 1 < argc) text_path = argv[++i];
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else {
            fprintf(stderr, "usage: bench_prune [--kernels-only] [--reps R] [--model PATH] "
                            "[--text PATH] [--dir DIR]\n");
            return 2;
        }
    }
    char tuning[256];
    tai_e2e_apply_tuning(0, tuning, sizeof tuning);
    printf("bench_prune: %s (%s); kernel tuning: %s\n", tai_cpu_brand(), tai_cpu_signature(),
           tuning);
    printf("\nkernels (%s, 1 thread, 1 column, median of %d passes over the working set):\n",
           tai_isa_name(tai_isa_best(TAI_ISA_AVX512)), reps);
    int rc = 0;
    rc |= kernel_case(TAI_TYPE_F16, 4096, 4096, 24, reps);
    rc |= kernel_case(TAI_TYPE_Q8_0, 4096, 4096, 48, reps);
    rc |= kernel_case(TAI_TYPE_Q4_0, 4096, 4096, 96, reps);
    if (kernels_only || rc) return rc;

    char *text = tai_e2e_read_text(text_path);
    if (!text) {
        fprintf(stderr, "bench_prune: cannot read %s\n", text_path);
        return 1;
    }
    printf("\nmodel %s: perplexity of %s (chunks of 128), decode 64 tokens (median of %d),\n"
           "bytes read per token streaming every layer (TINYAI_EXEC_STREAMING, 128 MiB limit)\n",
           model, text_path, reps);
    printf("%-24s %8s %8s %11s %8s %8s %10s\n", "case", "MiB", "savedMiB", "PPL", "+/-", "tok/s",
           "MiB/token");
    rc |= model_case("unpruned", model, text, reps);
    static const struct {
        const char *name;
        TinyAIPruneMethod method;
    } methods[] = {{"magnitude", TINYAI_PRUNE_MAGNITUDE}, {"norm-weighted", TINYAI_PRUNE_NORM_WEIGHTED}};
    for (size_t mi = 0; mi < 2; mi++)
        for (int pct = 30; pct <= 70; pct += 20) {
            TinyAIPruneConfig c;
            tinyaiInitPruneConfig(&c);
            c.method = methods[mi].method;
            c.sparsity = (float)pct / 100.0f;
            char out[4096], name[64];
            snprintf(out, sizeof out, "%s/bench-prune-%d.tmai", dir, pct);
            snprintf(name, sizeof name, "%s %d%%", methods[mi].name, pct);
            if (tinyaiPruneModelFile(model, out, &c, NULL, NULL) != TINYAI_OK) {
                rc |= failed(name);
                continue;
            }
            rc |= model_case(name, out, text, reps);
            remove(out);
        }
    free(text);
    return rc;
}
