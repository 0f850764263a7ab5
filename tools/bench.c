/*
 * tools/bench.c: `tinyai bench`, the benchmark a person runs on their
 * hardware and models. Options and output follow llama-bench where they
 * overlap (-m -p -n -pg -t -r -o --progress; md, csv, json, jsonl; one row
 * per combination with mean +- stddev tok/s and the samples in json), plus
 * TinyAI's own axes (--mem-limit, --device, --io, --cache-policy, --batch),
 * and for every row what bounds it: peak RSS, bytes read from storage per
 * token, weight-cache hit rate, I/O stall share and the fraction of the
 * binding ceiling (memory bandwidth, storage bandwidth or arithmetic peak)
 * measured on this machine in the same run.
 *
 * Each row runs in its own child process, so that its peak resident memory
 * is its own and a model that fails to load ends only its row.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <tinyai/llm.h>
#include <tinyai/profile.h>
#include <tinyai/utils/cache_optimization.h>
#include <tinyai/utils/simd.h>

#include "bench/membw.h"
#include "bench/peak.h"
#include "bench/storage.h"
#include "tools/cli.h"
#include "tools/plot.h"

#define MAX_LIST 32
#define MAX_REPS 1000

typedef struct {
    int n;
    long v[MAX_LIST];
} int_list;

typedef struct {
    int n;
    const char *v[MAX_LIST];
} str_list;

/* A memory limit as asked: none, bytes, or a share of the model. */
typedef struct {
    const char *text;
    size_t bytes; /* 0 with share 0: no limit */
    double share; /* (0, 1]: of what the model needs with every layer resident */
} mem_limit;

/* One row: a model and a point on every axis, and the test. */
typedef struct {
    int model, threads, limit, device, io, policy, batch, simd, kslice, prefetch;
    int n_prompt, n_gen;
    int index; /* its place among the rows */
} row_spec;

/* What a row's child measured. */
typedef struct {
    int ok;
    char error[400];
    int reps;
    double samples_ns[MAX_REPS];
    double peak_rss;          /* bytes */
    double bytes_read;        /* from storage, all timed repetitions */
    double hits, misses;      /* weight cache acquisitions */
    double stall_s;           /* forward pass waiting for layers */
    double step_bytes;        /* weight bytes one decoding step reads */
    double flops;             /* one repetition's arithmetic */
    double steps;             /* one repetition's passes over the weights */
    double tokens;            /* one repetition's tokens */
    size_t limit_bytes;       /* the limit applied */
    int block_size, prefetch_distance; /* the cache settings the row ran with */
    int n_layers;             /* with --profile: seconds per pass of each */
    double layer_s[1026];
    /* the model */
    char type_desc[64], weight_type[8], isa[16], devices[320], io[16], policy[16];
    double model_bytes, n_params;
    int n_vocab;
} row_result;

static struct {
    str_list models;
    int_list prompts, gens, threads, batches, simd, kslices, prefetches;
    int pg_n;
    long pg_p[MAX_LIST], pg_g[MAX_LIST];
    mem_limit limits[MAX_LIST];
    int n_limits;
    str_list devices, ios, policies;
    long reps;
    int format; /* 0 md, 1 csv, 2 json, 3 jsonl */
    bool progress;
    const char *plot;
    const char *trace;
    bool profile;
    bool no_warmup;
    int n_rows;
    char cache[4096];
    bool root;
} O;

static const char *const io_names[] = {"auto", "uring", "pread", "mmap"};
static const char *const policy_names[] = {"belady", "lru"};

static void bench_help(void) {
    printf(
        "usage: tinyai bench [options]\n\n"
        "Measures prompt processing (ppN), generation (tgN) and both (ppN+tgM) for\n"
        "every combination of the options' values, one row each, as llama-bench\n"
        "does, and beside each figure what bounds it on this machine.\n\n"
        "Options (LIST: comma-separated values; -m and the lists may repeat):\n"
        "  -m, --model FILE         model (.gguf or .tmai); default: SmolLM2-135M\n"
        "                           in the cache folder (scripts/setup.sh gets it)\n"
        "  -p, --n-prompt LIST      prompt sizes (default 512; 0 = none)\n"
        "  -n, --n-gen LIST         generation sizes (default 128; 0 = none)\n"
        "  -pg LIST                 prompt,generation pairs: -pg 512,128\n"
        "  -t, --threads LIST       CPU threads (default: every online core)\n"
        "  -r, --repetitions N      timed repetitions per row (default 5)\n"
        "  -o, --output FORMAT      md (default), csv, json or jsonl\n"
        "  --progress               say on stderr what runs\n"
        "  --no-warmup              no untimed warm-up run before each row\n"
        "  --mem-limit LIST         memory limits: bytes (K, M, G), a share of what\n"
        "                           the model needs with every layer resident\n"
        "                           (25%%), or none (default)\n"
        "  --device LIST            cpu, opencl[:N], a plugin's device, auto\n"
        "  --io LIST                auto, uring, pread, mmap\n"
        "  --cache-policy LIST      belady, lru\n"
        "  --batch LIST             sequences processed together (default 1)\n"
        "  --simd-level LIST        the CPU kernels' instruction set: 0 portable C,\n"
        "                           1 AVX2, 2 AVX-512 (default: the best this CPU has)\n"
        "  --block-size LIST        K elements per slice of the matrix-matrix products\n"
        "                           (0: the kernels' defaults; multiples of 32 to 1024)\n"
        "  --prefetch-distance LIST cache lines the matrix-vector products prefetch\n"
        "                           ahead into L1 (4x into L2); 0: none (default: the\n"
        "                           machine's tuning)\n"
        "  --plot FILE.svg|.png     draw tok/s against memory limit (with the\n"
        "                           storage bound), against batch and, with\n"
        "                           --profile, time per layer (gnuplot)\n"
        "  --profile                each row's time, GB/s, GFLOP/s and CPU counters per\n"
        "                           layer and per op, on stderr (docs/PROFILING.md);\n"
        "                           the row's figures are then those of a profiled run\n"
        "  --trace FILE.json        a Chrome/Perfetto trace of each row's timed runs\n"
        "                           (FILE-N.json for row N when there are several)\n\n"
        "Every row also reports peak resident memory, bytes read from storage\n"
        "per token, the weight cache's hit rate, the share of time the forward\n"
        "pass waited on storage, and the fraction of the ceiling that bounds it:\n"
        "memory bandwidth (resident decoding), storage bandwidth (streamed\n"
        "decoding) or the CPU's int8/FP32 peak (prompts), each measured in the\n"
        "same run. The page cache is dropped before each row under a memory\n"
        "limit when running as root (said when not).\n");
}

/* ---- option parsing ------------------------------------------------------ */

static int add_ints(int_list *l, const char *v, long lo, long hi, const char *opt) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", v);
    char *save = NULL;
    int any = 0;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        long x;
        if (!parse_long(t, lo, hi, &x)) {
            fprintf(stderr, "%s: bench: %s takes integers in %ld..%ld, got '%s' (try --help)\n",
                    prog, opt, lo, hi, t);
            return 2;
        }
        if (l->n == MAX_LIST) return usage_error("more than 32 values for %s", opt);
        l->v[l->n++] = x;
        any = 1;
    }
    return any ? 0 : usage_error("%s needs a value", opt);
}

static int add_strs(str_list *l, const char *v, const char *opt) {
    char *copy = strdup(v); /* kept for the process's life: the list points into it */
    if (!copy) return usage_error("%s: out of memory", opt);
    char *save = NULL;
    int any = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (l->n == MAX_LIST) return usage_error("more than 32 values for %s", opt);
        l->v[l->n++] = t;
        any = 1;
    }
    return any ? 0 : usage_error("%s needs a value", opt);
}

static int add_limits(const char *v) {
    str_list l = {0};
    int rc = add_strs(&l, v, "--mem-limit");
    if (rc) return rc;
    for (int i = 0; i < l.n; i++) {
        if (O.n_limits == MAX_LIST) return usage_error("%s", "more than 32 memory limits");
        mem_limit *m = &O.limits[O.n_limits];
        memset(m, 0, sizeof *m);
        m->text = l.v[i];
        const size_t len = strlen(l.v[i]);
        if (!strcmp(l.v[i], "none") || !strcmp(l.v[i], "0")) {
            /* no limit */
        } else if (len > 1 && l.v[i][len - 1] == '%') {
            char num[64];
            snprintf(num, sizeof num, "%.*s", (int)(len - 1), l.v[i]);
            char *end;
            errno = 0;
            const double pct = strtod(num, &end);
            if (errno || *end || end == num || !(pct > 0 && pct <= 100))
                return usage_error("--mem-limit: a share must be in (0%%, 100%%], got '%s'",
                                   l.v[i]);
            m->share = pct / 100.0;
        } else if (!parse_bytes(l.v[i], &m->bytes) || m->bytes == 0) {
            return usage_error("--mem-limit takes bytes (K, M, G), a share (25%%) or none, got '%s'",
                               l.v[i]);
        }
        O.n_limits++;
    }
    return 0;
}

static int add_pairs(const char *v) {
    int_list l = {0};
    int rc = add_ints(&l, v, 0, 1 << 20, "-pg");
    if (rc) return rc;
    if (l.n % 2) return usage_error("-pg takes prompt,generation pairs, got '%s'", v);
    for (int i = 0; i < l.n; i += 2) {
        if (O.pg_n == MAX_LIST) return usage_error("%s", "more than 32 -pg pairs");
        if (l.v[i] == 0 || l.v[i + 1] == 0)
            return usage_error("-pg needs both sizes above 0, got '%s'", v);
        O.pg_p[O.pg_n] = l.v[i];
        O.pg_g[O.pg_n++] = l.v[i + 1];
    }
    return 0;
}

/* ---- what each row needs besides its figures ----------------------------- */

static double now_s(void) { return tai_bench_now(); }

static uint64_t rng_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* "135M", "1.1B": the size as model listings write it. */
static void size_label(double params, char *out, size_t cap) {
    if (params < 1e7) snprintf(out, cap, "%.1fM", params / 1e6);
    else if (params < 1e9) snprintf(out, cap, "%.0fM", params / 1e6);
    else if (fabs(params / 1e9 - round(params / 1e9)) < 0.05) snprintf(out, cap, "%.0fB", params / 1e9);
    else snprintf(out, cap, "%.1fB", params / 1e9);
}

/* Weight bytes one decoding step reads: every block and the head; the
 * embedding table only when it is the head. */
static double step_bytes(const TinyAIModel *m, const TinyAIModelInfo *in) {
    double b = 0;
    for (int i = 0; i < in->nFileLayers; i++) {
        TinyAILayerInfo li;
        if (tinyaiGetModelLayerInfo(m, i, &li) != TINYAI_OK) continue;
        if (i > 0 || in->tiedOutput) b += (double)li.size;
    }
    return b;
}

/* Arithmetic of one token at position pos: the matrix products (2 per
 * weight; the embedding is a lookup unless it is also the head) and
 * attention over pos + 1 positions. */
static double token_flops(const TinyAIModelInfo *in, int pos) {
    const double emb = (double)in->nVocab * in->nEmbd;
    const double mm = 2.0 * ((double)in->nParams - (in->tiedOutput ? 0 : emb));
    const double att = 4.0 * (pos + 1) * (double)in->nHead * in->headDim * in->nLayer;
    return mm + att;
}

/* Evaluates n_prompt tokens in each of the sessions (together, in steps
 * within the plan's capacity). */
static TinyAIStatus run_prompts(TinyAIModel *m, TinyAISession **s, int batch, const int32_t *tok,
                                int n_prompt) {
    if (batch == 1) return tinyaiEval(s[0], tok, (size_t)n_prompt);
    int cap_tokens = 0, cap_sessions = 0;
    TinyAIStatus st = tinyaiStepCapacity(m, &cap_tokens, &cap_sessions);
    if (st != TINYAI_OK) return st;
    int chunk = cap_tokens / batch;
    if (chunk < 1) chunk = 1;
    const int32_t *ptr[512];
    size_t counts[512];
    for (int p0 = 0; p0 < n_prompt; p0 += chunk) {
        const int c = n_prompt - p0 < chunk ? n_prompt - p0 : chunk;
        for (int i = 0; i < batch; i++) {
            ptr[i] = tok + (size_t)i * (size_t)n_prompt + p0;
            counts[i] = (size_t)c;
        }
        st = tinyaiEvalStep(s, ptr, counts, (size_t)batch);
        if (st != TINYAI_OK) return st;
    }
    return TINYAI_OK;
}

static void test_name(const row_spec *s, char *out, size_t cap);
static const char *base_name(const char *p);

/* --trace FILE: the file itself for one row, else FILE-N.json for row N
 * (counted from 1). */
static void trace_path(const row_spec *r, char *out, size_t cap) {
    if (O.n_rows <= 1) {
        snprintf(out, cap, "%s", O.trace);
        return;
    }
    const size_t len = strlen(O.trace);
    const int ext = len > 5 && !strcmp(O.trace + len - 5, ".json");
    snprintf(out, cap, "%.*s-%d%s", (int)(ext ? len - 5 : len), O.trace, r->index + 1,
             ext ? ".json" : "");
}

/* The row, in this (child) process. */
static void run_row(const row_spec *r, row_result *out) {
    memset(out, 0, sizeof *out);
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.threads = (int)O.threads.v[r->threads];
    mc.maxSessions = (int)O.batches.v[r->batch];
    mc.contextSize = r->n_prompt + r->n_gen + 1;
    if (mc.contextSize < 16) mc.contextSize = 16;
    mc.device = O.devices.n ? O.devices.v[r->device] : NULL;
    mc.cacheDir = O.cache;
    if (O.ios.n) mc.ioEngine = (TinyAIIOEngine)parse_choice(O.ios.v[r->io], io_names, 4);
    if (O.policies.n)
        mc.cachePolicy = (TinyAICachePolicy)parse_choice(O.policies.v[r->policy], policy_names, 2);
    mc.memoryLimit = out->limit_bytes = r->limit >= 0 ? O.limits[r->limit].bytes : 0;
    TinyAIModel *m = NULL;
    if (tinyaiLoadModel(O.models.v[r->model], &mc, &m) != TINYAI_OK) {
        snprintf(out->error, sizeof out->error, "%s", tinyaiLastErrorMessage());
        return;
    }
    TinyAIModelInfo in;
    tinyaiGetModelInfo(m, &in);
    char sz[16];
    size_label((double)in.nParams, sz, sizeof sz);
    snprintf(out->type_desc, sizeof out->type_desc, "%s %s %s", in.architecture, sz, in.weightType);
    snprintf(out->weight_type, sizeof out->weight_type, "%s", in.weightType);
    snprintf(out->isa, sizeof out->isa, "%s", in.isa);
    snprintf(out->devices, sizeof out->devices, "%s", in.devices);
    out->model_bytes = (double)in.weightBytes;
    out->n_params = (double)in.nParams;
    out->n_vocab = in.nVocab;
    out->step_bytes = step_bytes(m, &in);
    if (O.kslices.n || O.prefetches.n) {
        /* the model's cache settings: the machine's, but for the axes */
        TinyAICacheConfig cc = tinyaiGetCacheConfig(m);
        if (O.kslices.n) cc.block_size = (int)O.kslices.v[r->kslice];
        if (O.prefetches.n) {
            cc.prefetch_distance = (int)O.prefetches.v[r->prefetch];
            cc.enable_prefetch = cc.prefetch_distance > 0;
        }
        if (!tinyaiConfigureCacheOptimization(m, &cc)) {
            snprintf(out->error, sizeof out->error, "%s", tinyaiLastErrorMessage());
            tinyaiFreeModel(m);
            return;
        }
    }
    if (O.simd.n) {
        tinyaiSetSIMDOptimizationLevel(m, (int)O.simd.v[r->simd]);
        tinyaiGetModelInfo(m, &in);
        snprintf(out->isa, sizeof out->isa, "%s", in.isa);
    }
    {
        const TinyAICacheConfig cc = tinyaiGetCacheConfig(m);
        out->block_size = cc.block_size;
        out->prefetch_distance = cc.enable_prefetch ? cc.prefetch_distance : 0;
    }
    const int batch = (int)O.batches.v[r->batch];
    TinyAISession *s[512] = {0};
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)batch * (size_t)(r->n_prompt + 1));
    TinyAIStatus st = tok ? TINYAI_OK : TINYAI_ERR_NOMEM;
    for (int i = 0; i < batch && st == TINYAI_OK; i++)
        st = tinyaiCreateSession(m, mc.contextSize, &s[i]);
    uint64_t seed = 0x9E3779B97F4A7C15ull ^ (uint64_t)r->n_prompt * 31 ^ (uint64_t)r->n_gen;
    /* the arithmetic and the passes of one repetition */
    for (int p = 0; p < r->n_prompt; p++) out->flops += batch * token_flops(&in, p);
    for (int g = 0; g < r->n_gen; g++) out->flops += batch * token_flops(&in, r->n_prompt + g);
    out->steps = (r->n_prompt ? 1 : 0) + r->n_gen;
    out->tokens = (double)batch * (r->n_prompt + r->n_gen);

    const int warm = O.no_warmup ? 0 : 1;
    for (int rep = -warm; rep < O.reps && st == TINYAI_OK; rep++) {
        if (rep == 0) {
            /* resident weights move into huge pages in the background once
             * they are loaded (at the load, or under a limit when the first
             * session plans the memory): timing starts when that is done
             * (waiting at most a minute) */
            for (int waited = 0; waited < 6000; waited++) {
                TinyAIMemoryInfo mi;
                if (tinyaiGetMemoryInfo(m, &mi) != TINYAI_OK || !mi.hugePagesPending) break;
                nanosleep(&(struct timespec){0, 10000000}, NULL);
            }
            tinyaiResetMemoryStats(m);
            if (O.profile || O.trace)
                st = tinyaiStartProfile(m, (O.profile ? TINYAI_PROFILE_COUNTERS : 0) |
                                               (O.trace ? TINYAI_PROFILE_TRACE : 0));
        }
        for (int i = 0; i < batch; i++) tinyaiResetSession(s[i]);
        /* random tokens, as llama-bench uses: the work does not depend on them */
        for (size_t k = 0; k < (size_t)batch * (size_t)r->n_prompt; k++)
            tok[k] = (int32_t)(rng_next(&seed) % (uint64_t)in.nVocab);
        /* the warm-up is short: a few prompt tokens and one generated */
        const int np = rep < 0 ? (r->n_prompt < 32 ? r->n_prompt : 32) : r->n_prompt;
        const int ng = rep < 0 ? (r->n_gen ? 1 : 0) : r->n_gen;
        const double t0 = now_s();
        if (np) st = run_prompts(m, s, batch, tok, np);
        int32_t next[512];
        for (int g = 0; g < ng && st == TINYAI_OK; g++) {
            for (int i = 0; i < batch; i++)
                next[i] = (int32_t)(rng_next(&seed) % (uint64_t)in.nVocab);
            st = batch == 1 ? tinyaiEval(s[0], next, 1) : tinyaiEvalBatch(s, next, (size_t)batch);
        }
        const double t1 = now_s();
        if (rep >= 0 && st == TINYAI_OK) out->samples_ns[out->reps++] = (t1 - t0) * 1e9;
        if (O.progress && rep >= 0)
            fprintf(stderr, "  repetition %d/%ld: %.3f s\n", rep + 1, O.reps, t1 - t0);
    }
    tinyaiStopProfile(m);
    if (st == TINYAI_OK && O.profile) {
        char title[200];
        char test[48];
        test_name(r, test, sizeof test);
        snprintf(title, sizeof title, "%s, %s, %ld threads%s%s", base_name(O.models.v[r->model]),
                 test, O.threads.v[r->threads], r->limit >= 0 ? ", mem limit " : "",
                 r->limit >= 0 ? O.limits[r->limit].text : "");
        print_profile(stderr, m, title);
        for (int l = 0; l < in.nFileLayers && l < 1026; l++) {
            TinyAILayerProfile lp;
            if (tinyaiGetLayerProfile(m, l, &lp) == TINYAI_OK && lp.passes)
                out->layer_s[l] = lp.seconds / (double)lp.passes;
            out->n_layers = l + 1;
        }
    }
    if (st == TINYAI_OK && O.trace) {
        char path[4200];
        trace_path(r, path, sizeof path);
        st = tinyaiWriteTrace(m, path);
    }
    if (st == TINYAI_OK) {
        TinyAIMemoryInfo mi;
        tinyaiGetMemoryInfo(m, &mi);
        out->bytes_read = (double)mi.bytesRead;
        out->hits = (double)mi.hits;
        out->misses = (double)mi.misses;
        out->stall_s = mi.stallSeconds;
        snprintf(out->io, sizeof out->io, "%s", mi.ioEngine ? mi.ioEngine : "?");
        snprintf(out->policy, sizeof out->policy, "%s", mi.cachePolicy ? mi.cachePolicy : "?");
        out->ok = 1;
    } else {
        snprintf(out->error, sizeof out->error, "%s", tinyaiLastErrorMessage());
    }
    for (int i = 0; i < batch; i++) tinyaiFreeSession(s[i]);
    free(tok);
    tinyaiFreeModel(m);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) out->peak_rss = (double)ru.ru_maxrss * 1024.0;
}

/* Runs fn in a child process that sends back *out. 0, or -1 with out->error. */
static int in_child(void (*fn)(const row_spec *, row_result *), const row_spec *r,
                    row_result *out) {
    int fd[2];
    if (pipe(fd) != 0) {
        snprintf(out->error, sizeof out->error, "pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    const pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        snprintf(out->error, sizeof out->error, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        close(fd[0]);
        static row_result res;
        fn(r, &res);
        const char *p = (const char *)&res;
        size_t left = sizeof res;
        while (left > 0) {
            const ssize_t w = write(fd[1], p, left);
            if (w <= 0) _exit(3);
            p += w;
            left -= (size_t)w;
        }
        _exit(0);
    }
    close(fd[1]);
    char *p = (char *)out;
    size_t got = 0;
    while (got < sizeof *out) {
        const ssize_t k = read(fd[0], p + got, sizeof *out - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(fd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (got != sizeof *out) {
        memset(out, 0, sizeof *out);
        if (WIFSIGNALED(status))
            snprintf(out->error, sizeof out->error, "the run ended with signal %d",
                     WTERMSIG(status));
        else
            snprintf(out->error, sizeof out->error, "the run ended without a result (status %d)",
                     WEXITSTATUS(status));
        return -1;
    }
    return out->ok ? 0 : -1;
}

/* What the model needs with every layer resident, for a row's sessions:
 * what a share of the model is a share of. */
static void probe_need(const row_spec *r, row_result *out) {
    memset(out, 0, sizeof *out);
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.threads = 1;
    mc.maxSessions = (int)O.batches.v[r->batch];
    mc.contextSize = r->n_prompt + r->n_gen + 1;
    if (mc.contextSize < 16) mc.contextSize = 16;
    /* a limit far above the model: nothing is read, the plan is made */
    mc.memoryLimit = (size_t)1 << 50;
    mc.mode = TINYAI_EXEC_MEMORY_OPT;
    TinyAIModel *m = NULL;
    TinyAISession *s = NULL;
    if (tinyaiLoadModel(O.models.v[r->model], &mc, &m) != TINYAI_OK ||
        tinyaiCreateSession(m, mc.contextSize, &s) != TINYAI_OK) {
        snprintf(out->error, sizeof out->error, "%s", tinyaiLastErrorMessage());
        tinyaiFreeModel(m);
        return;
    }
    TinyAIMemoryInfo mi;
    tinyaiGetMemoryInfo(m, &mi);
    /* the layers, the sessions planned, the read buffers and the tables */
    out->limit_bytes = mi.modelBytes + mi.sessionBytes + mi.stagingBytes + mi.fixedBytes;
    out->ok = 1;
    tinyaiFreeSession(s);
    tinyaiFreeModel(m);
}

/* ---- the machine's ceilings: memory and arithmetic measured once each,
 * storage after each streamed row ------------------------------------------ */

static double membw_at[257];      /* bytes/s, per thread count */
static double peak_at[2][2][257]; /* ops/s: [256-bit, 512-bit][fp32 FMA, int8] */
static struct {
    const char *path;
    double lo, hi; /* the range measured */
} storage_at[MAX_LIST];

static double memory_bandwidth(int threads) {
    if (membw_at[threads] <= 0) {
        if (O.progress) fprintf(stderr, "tinyai bench: measuring memory bandwidth, %d threads\n", threads);
        membw_at[threads] = tai_bench_read_bandwidth((size_t)1 << 30, threads, 3);
    }
    return membw_at[threads];
}

typedef struct {
    tai_peak_loop loop;
    uint64_t iters;
    double ops;
} peak_job;

static void *peak_thread(void *p) {
    peak_job *j = p;
    j->ops = tai_peak_run(j->loop, j->iters);
    return NULL;
}

/* The arithmetic peak on `threads` threads at once: FP32 multiply-adds
 * (int8 = 0) or int8 dot products (int8 = 1), with the vectors of the
 * kernels the row ran: AVX-512 (zmm, VNNI) where they are AVX-512 and the
 * CPU has it, else AVX2 (ymm; the portable kernels' ceiling too). */
static double arithmetic_peak(int threads, int int8, const char *isa) {
    int wide = !strcmp(isa, "avx512");
    tai_peak_loop l = wide ? (int8 ? TAI_PEAK_DOT_VNNI : TAI_PEAK_FMA_ZMM)
                           : (int8 ? TAI_PEAK_DOT_AVX2 : TAI_PEAK_FMA_YMM);
    if (!tai_peak_supported(l)) {
        wide = 0;
        l = int8 ? TAI_PEAK_DOT_AVX2 : TAI_PEAK_FMA_YMM;
    }
    if (peak_at[wide][int8][threads] > 0) return peak_at[wide][int8][threads];
    if (!tai_peak_supported(l)) return 0;
    if (O.progress)
        fprintf(stderr, "tinyai bench: measuring the %s peak, %d threads\n", tai_peak_name(l), threads);
    double t0 = now_s();
    tai_peak_run(l, 1000000);
    const double dt = now_s() - t0;
    uint64_t iters = (uint64_t)(1e6 * 0.2 / (dt > 1e-6 ? dt : 1e-6));
    if (iters < 1000) iters = 1000;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        peak_job jobs[256];
        pthread_t th[256];
        int started = 0;
        t0 = now_s();
        for (int t = 0; t < threads; t++) {
            jobs[t] = (peak_job){.loop = l, .iters = iters};
            if (pthread_create(&th[t], NULL, peak_thread, &jobs[t]) == 0) started++;
            else break;
        }
        double ops = 0;
        for (int t = 0; t < started; t++) {
            pthread_join(th[t], NULL);
            ops += jobs[t].ops;
        }
        const double rate = ops / (now_s() - t0);
        if (started == threads && rate > best) best = rate;
    }
    return peak_at[wide][int8][threads] = best;
}

/* The best of O_DIRECT reads of the whole model file into huge-page memory,
 * as the cache reads: a plain loop of one 32 MiB read at a time, and 4
 * readers in parallel (4 MiB each); the page cache dropped first where
 * allowed. Measured right after each streamed row: a virtual disk's speed
 * drifts over minutes, and a row is compared with the disk of its time. */
static double storage_bandwidth(const char *path) {
    int i = 0;
    while (i < MAX_LIST && storage_at[i].path && strcmp(storage_at[i].path, path)) i++;
    if (O.progress) fprintf(stderr, "tinyai bench: measuring storage bandwidth on %s\n", path);
    const size_t bytes = 64u << 20;
    void *buf = tai_bench_huge_alloc(bytes);
    double best = 0;
    if (O.root) tai_bench_drop_caches();
    if (buf) best = tai_bench_direct_read(path, 32u << 20, buf, bytes, NULL, 0);
    free(buf);
    /* and with several reads in flight, as the io_uring engine keeps them */
    if (O.root) tai_bench_drop_caches();
    const double par = tai_bench_direct_read_parallel(path, 4u << 20, 4, NULL, 0);
    if (par > best) best = par;
    if (i < MAX_LIST) {
        if (!storage_at[i].path) storage_at[i].lo = storage_at[i].hi = best;
        storage_at[i].path = path;
        if (best < storage_at[i].lo) storage_at[i].lo = best;
        if (best > storage_at[i].hi) storage_at[i].hi = best;
    }
    return best;
}

/* ---- rows and their figures ------------------------------------------------ */

typedef struct {
    row_spec spec;
    row_result res;
    double avg_ts, std_ts, avg_ns, std_ns;
    double read_per_token, hit_rate, stall_share;
    const char *ceiling;   /* "memory", "storage", "int8", "fp32", or NULL */
    double ceiling_value;  /* bytes/s or ops/s */
    double ceiling_frac;
    bool streamed, dropped;
    char test[48];
} row;

static void figures(row *w) {
    const row_result *r = &w->res;
    const row_spec *s = &w->spec;
    double ts[MAX_REPS], sum = 0, sum_ns = 0;
    for (int i = 0; i < r->reps; i++) {
        ts[i] = r->tokens / (r->samples_ns[i] * 1e-9);
        sum += ts[i];
        sum_ns += r->samples_ns[i];
    }
    const int n = r->reps;
    w->avg_ts = n ? sum / n : 0;
    w->avg_ns = n ? sum_ns / n : 0;
    double v = 0, vn = 0;
    for (int i = 0; i < n; i++) {
        v += (ts[i] - w->avg_ts) * (ts[i] - w->avg_ts);
        vn += (r->samples_ns[i] - w->avg_ns) * (r->samples_ns[i] - w->avg_ns);
    }
    w->std_ts = n > 1 ? sqrt(v / (n - 1)) : 0;
    w->std_ns = n > 1 ? sqrt(vn / (n - 1)) : 0;
    const double tokens = r->tokens * n, secs = sum_ns * 1e-9;
    w->read_per_token = tokens > 0 ? r->bytes_read / tokens : 0;
    w->hit_rate = r->hits + r->misses > 0 ? r->hits / (r->hits + r->misses) : 1;
    w->stall_share = secs > 0 ? r->stall_s / secs : 0;
    w->streamed = r->bytes_read > 0.01 * r->step_bytes * r->steps * n;
    /* the binding ceiling: the one whose bound on the time is longest */
    const int threads = (int)O.threads.v[s->threads];
    const bool device_cpu = !O.devices.n || !strcmp(O.devices.v[s->device], "cpu");
    double best = 0;
    if (r->flops > 0 && device_cpu) {
        const int int8 = strcmp(r->weight_type, "F32") && strcmp(r->weight_type, "F16");
        const double peak = arithmetic_peak(threads, int8, r->isa);
        if (peak > 0 && r->flops * n / peak > best) {
            best = r->flops * n / peak;
            w->ceiling = int8 ? "int8" : "fp32";
            w->ceiling_value = peak;
        }
    }
    if (device_cpu && r->steps > 0) {
        const double bw = memory_bandwidth(threads);
        const double bytes = r->step_bytes * r->steps * n - r->bytes_read;
        if (bw > 0 && bytes / bw > best) {
            best = bytes / bw;
            w->ceiling = "memory";
            w->ceiling_value = bw;
        }
    }
    if (w->streamed) {
        const double bw = storage_bandwidth(O.models.v[s->model]);
        if (bw > 0 && r->bytes_read / bw > best) {
            best = r->bytes_read / bw;
            w->ceiling = "storage";
            w->ceiling_value = bw;
        }
    }
    w->ceiling_frac = secs > 0 && w->ceiling ? best / secs : 0;
}

static void test_name(const row_spec *s, char *out, size_t cap) {
    if (s->n_prompt && s->n_gen) snprintf(out, cap, "pp%d+tg%d", s->n_prompt, s->n_gen);
    else if (s->n_prompt) snprintf(out, cap, "pp%d", s->n_prompt);
    else snprintf(out, cap, "tg%d", s->n_gen);
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* ---- output -------------------------------------------------------------- */

static void mib(double b, char *out, size_t cap) { snprintf(out, cap, "%.2f MiB", b / 1048576.0); }

static void params_text(double p, char *out, size_t cap) {
    if (p >= 1e9) snprintf(out, cap, "%.2f B", p / 1e9);
    else snprintf(out, cap, "%.2f M", p / 1e6);
}

static const char *limit_text(const row *w) {
    return w->spec.limit >= 0 ? O.limits[w->spec.limit].text : "none";
}

static const char *backend_text(const row *w, char *buf, size_t cap) {
    if (O.devices.n && strcmp(O.devices.v[w->spec.device], "cpu"))
        snprintf(buf, cap, "%s", w->res.devices);
    else
        snprintf(buf, cap, "CPU (%s)", w->res.isa);
    return buf;
}

static void print_md(const row *rows, int n) {
    const bool show_limit = O.n_limits > 1 || (O.n_limits == 1 && (O.limits[0].bytes || O.limits[0].share));
    const bool show_batch = O.batches.n > 1 || O.batches.v[0] != 1;
    const bool show_io = O.ios.n > 0, show_policy = O.policies.n > 0;
    printf("| model | size | params | backend | threads |%s%s%s%s test | t/s | peak RSS | read/token | "
           "cache hits | I/O stall | ceiling |\n",
           show_limit ? " mem limit |" : "", show_batch ? " batch |" : "", show_io ? " io |" : "",
           show_policy ? " policy |" : "");
    printf("| --- | ---: | ---: | --- | ---: |%s%s%s%s ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
           show_limit ? " ---: |" : "", show_batch ? " ---: |" : "", show_io ? " --- |" : "",
           show_policy ? " --- |" : "");
    for (int i = 0; i < n; i++) {
        const row *w = &rows[i];
        if (!w->res.ok) {
            printf("| %s | | | | %ld |%s%s%s%s %s | failed: %s | | | | | |\n",
                   base_name(O.models.v[w->spec.model]), O.threads.v[w->spec.threads],
                   show_limit ? " |" : "", show_batch ? " |" : "", show_io ? " |" : "",
                   show_policy ? " |" : "", w->test, w->res.error);
            continue;
        }
        char size[32], params[32], backend[200], extra[256] = "";
        mib(w->res.model_bytes, size, sizeof size);
        params_text(w->res.n_params, params, sizeof params);
        size_t off = 0;
        if (show_limit)
            off += (size_t)snprintf(extra + off, sizeof extra - off, " %s |", limit_text(w));
        if (show_batch)
            off += (size_t)snprintf(extra + off, sizeof extra - off, " %ld |",
                                    O.batches.v[w->spec.batch]);
        if (show_io) off += (size_t)snprintf(extra + off, sizeof extra - off, " %s |", w->res.io);
        if (show_policy)
            off += (size_t)snprintf(extra + off, sizeof extra - off, " %s |", w->res.policy);
        char ceil[64] = "-";
        if (w->ceiling) snprintf(ceil, sizeof ceil, "%.0f%% of %s", 100 * w->ceiling_frac, w->ceiling);
        printf("| %s | %s | %s | %s | %ld |%s %s | %.2f ± %.2f | %.1f MiB | %.2f MiB | %.1f%% | "
               "%.1f%% | %s |\n",
               w->res.type_desc, size, params, backend_text(w, backend, sizeof backend),
               O.threads.v[w->spec.threads], extra, w->test, w->avg_ts, w->std_ts,
               w->res.peak_rss / 1048576.0, w->read_per_token / 1048576.0, 100 * w->hit_rate,
               100 * w->stall_share, ceil);
    }
}

static const char *csv_fields =
    "model_filename,model_type,model_size,model_n_params,backend,n_threads,mem_limit,"
    "mem_limit_bytes,device,io_engine,cache_policy,n_batch_sequences,n_prompt,n_gen,test,avg_ns,"
    "stddev_ns,avg_ts,stddev_ts,peak_rss_bytes,read_bytes_per_token,cache_hit_rate,"
    "io_stall_share,ceiling,ceiling_value,ceiling_fraction,page_cache_dropped,error";

static void print_csv(const row *rows, int n) {
    printf("%s\n", csv_fields);
    for (int i = 0; i < n; i++) {
        const row *w = &rows[i];
        char backend[400];
        /* the error text without the quotes csv would need doubled */
        char err[400];
        snprintf(err, sizeof err, "%s", w->res.ok ? "" : w->res.error);
        for (char *c = err; *c; c++)
            if (*c == '"') *c = '\'';
        printf("\"%s\",\"%s\",%.0f,%.0f,\"%s\",%ld,\"%s\",%zu,\"%s\",\"%s\",\"%s\",%ld,%d,%d,\"%s\","
               "%.0f,%.0f,%.6f,%.6f,%.0f,%.1f,%.6f,%.6f,\"%s\",%.6g,%.6f,%d,\"%s\"\n",
               O.models.v[w->spec.model], w->res.type_desc, w->res.model_bytes, w->res.n_params,
               w->res.ok ? backend_text(w, backend, sizeof backend) : "", O.threads.v[w->spec.threads],
               limit_text(w), w->res.limit_bytes, O.devices.n ? O.devices.v[w->spec.device] : "cpu",
               w->res.io, w->res.policy, O.batches.v[w->spec.batch], w->spec.n_prompt,
               w->spec.n_gen, w->test, w->avg_ns, w->std_ns, w->avg_ts, w->std_ts,
               w->res.peak_rss, w->read_per_token, w->hit_rate, w->stall_share,
               w->ceiling ? w->ceiling : "", w->ceiling_value, w->ceiling_frac, w->dropped, err);
    }
}

static cJSON *row_json(const row *w, const char *cpu, const char *time_text) {
    cJSON *o = cJSON_CreateObject();
    char backend[400];
    cJSON_AddStringToObject(o, "build_commit", "tinyai");
    cJSON_AddStringToObject(o, "cpu_info", cpu);
    cJSON_AddStringToObject(o, "backends", w->res.ok ? backend_text(w, backend, sizeof backend) : "");
    cJSON_AddStringToObject(o, "model_filename", O.models.v[w->spec.model]);
    cJSON_AddStringToObject(o, "model_type", w->res.type_desc);
    cJSON_AddNumberToObject(o, "model_size", w->res.model_bytes);
    cJSON_AddNumberToObject(o, "model_n_params", w->res.n_params);
    cJSON_AddNumberToObject(o, "n_threads", (double)O.threads.v[w->spec.threads]);
    cJSON_AddNumberToObject(o, "n_prompt", w->spec.n_prompt);
    cJSON_AddNumberToObject(o, "n_gen", w->spec.n_gen);
    cJSON_AddStringToObject(o, "test_time", time_text);
    cJSON_AddNumberToObject(o, "avg_ns", round(w->avg_ns));
    cJSON_AddNumberToObject(o, "stddev_ns", round(w->std_ns));
    cJSON_AddNumberToObject(o, "avg_ts", w->avg_ts);
    cJSON_AddNumberToObject(o, "stddev_ts", w->std_ts);
    cJSON *sn = cJSON_AddArrayToObject(o, "samples_ns");
    cJSON *st = cJSON_AddArrayToObject(o, "samples_ts");
    for (int i = 0; i < w->res.reps; i++) {
        cJSON_AddItemToArray(sn, cJSON_CreateNumber(round(w->res.samples_ns[i])));
        cJSON_AddItemToArray(st, cJSON_CreateNumber(w->res.tokens / (w->res.samples_ns[i] * 1e-9)));
    }
    /* TinyAI's axes and what bounds the row */
    cJSON_AddStringToObject(o, "mem_limit", limit_text(w));
    cJSON_AddNumberToObject(o, "mem_limit_bytes", (double)w->res.limit_bytes);
    cJSON_AddStringToObject(o, "device", O.devices.n ? O.devices.v[w->spec.device] : "cpu");
    cJSON_AddStringToObject(o, "io_engine", w->res.io);
    cJSON_AddStringToObject(o, "cache_policy", w->res.policy);
    cJSON_AddNumberToObject(o, "n_batch_sequences", (double)O.batches.v[w->spec.batch]);
    cJSON_AddStringToObject(o, "cpu_kernels", w->res.isa);
    cJSON_AddNumberToObject(o, "block_size", w->res.block_size);
    cJSON_AddNumberToObject(o, "prefetch_distance", w->res.prefetch_distance);
    cJSON_AddNumberToObject(o, "peak_rss_bytes", w->res.peak_rss);
    cJSON_AddNumberToObject(o, "read_bytes_per_token", w->read_per_token);
    cJSON_AddNumberToObject(o, "cache_hit_rate", w->hit_rate);
    cJSON_AddNumberToObject(o, "io_stall_share", w->stall_share);
    if (w->ceiling) cJSON_AddStringToObject(o, "ceiling", w->ceiling);
    else cJSON_AddNullToObject(o, "ceiling");
    cJSON_AddNumberToObject(o, "ceiling_value", w->ceiling_value);
    cJSON_AddNumberToObject(o, "ceiling_fraction", w->ceiling_frac);
    cJSON_AddBoolToObject(o, "streamed", w->streamed);
    cJSON_AddBoolToObject(o, "page_cache_dropped", w->dropped);
    if (!w->res.ok) cJSON_AddStringToObject(o, "error", w->res.error);
    return o;
}

static void print_json(const row *rows, int n, int lines) {
    TinyAICpuInfo ci;
    tinyaiGetCpuInfo(&ci);
    char cpu[200];
    snprintf(cpu, sizeof cpu, "%s (%s)", ci.model[0] ? ci.model : "unknown CPU", ci.signature);
    char tt[32];
    const time_t t = time(NULL);
    struct tm tmv;
    strftime(tt, sizeof tt, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tmv));
    cJSON *arr = lines ? NULL : cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *o = row_json(&rows[i], cpu, tt);
        if (lines) {
            char *s = cJSON_PrintUnformatted(o);
            if (s) printf("%s\n", s);
            free(s);
            cJSON_Delete(o);
        } else {
            cJSON_AddItemToArray(arr, o);
        }
    }
    if (!lines) {
        char *s = cJSON_Print(arr);
        if (s) printf("%s\n", s);
        free(s);
        cJSON_Delete(arr);
    }
}

/* ---- the command ----------------------------------------------------------- */

int cmd_bench(int argc, char **argv) {
    memset(&O, 0, sizeof O);
    O.reps = 5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int rc = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            bench_help();
            return 0;
        } else if (!strcmp(a, "--progress")) {
            O.progress = true;
            continue;
        } else if (!strcmp(a, "--no-warmup")) {
            O.no_warmup = true;
            continue;
        } else if (!strcmp(a, "--profile")) {
            O.profile = true;
            continue;
        }
        const char *v = take(argc, argv, &i);
        if (!v) {
            if (a[0] != '-') return usage_error("bench takes options only, got '%s'", a);
            if (!strcmp(a, "-m") || !strcmp(a, "--model") || !strcmp(a, "-p") ||
                !strcmp(a, "--n-prompt") || !strcmp(a, "-n") || !strcmp(a, "--n-gen") ||
                !strcmp(a, "-pg") || !strcmp(a, "-t") || !strcmp(a, "--threads") ||
                !strcmp(a, "-r") || !strcmp(a, "--repetitions") || !strcmp(a, "-o") ||
                !strcmp(a, "--output") || !strcmp(a, "--mem-limit") || !strcmp(a, "--device") ||
                !strcmp(a, "--io") || !strcmp(a, "--cache-policy") || !strcmp(a, "--batch") ||
                !strcmp(a, "--simd-level") || !strcmp(a, "--block-size") ||
                !strcmp(a, "--prefetch-distance") ||
                !strcmp(a, "--plot") || !strcmp(a, "--trace"))
                return usage_error("%s needs a value", a);
            return usage_error("bench: unknown option %s", a);
        }
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) rc = add_strs(&O.models, v, a);
        else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) rc = add_ints(&O.prompts, v, 0, 1 << 20, a);
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) rc = add_ints(&O.gens, v, 0, 1 << 20, a);
        else if (!strcmp(a, "-pg")) rc = add_pairs(v);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) rc = add_ints(&O.threads, v, 1, 256, a);
        else if (!strcmp(a, "--batch")) rc = add_ints(&O.batches, v, 1, 512, a);
        else if (!strcmp(a, "--simd-level")) rc = add_ints(&O.simd, v, 0, 2, a);
        else if (!strcmp(a, "--block-size")) {
            rc = add_ints(&O.kslices, v, 0, 1024, a);
            for (int k = 0; !rc && k < O.kslices.n; k++)
                if (O.kslices.v[k] % 32)
                    rc = usage_error("--block-size takes 0 or multiples of 32 up to 1024, got '%s'", v);
        } else if (!strcmp(a, "--prefetch-distance")) rc = add_ints(&O.prefetches, v, 0, 256, a);
        else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions")) {
            if (!parse_long(v, 1, MAX_REPS, &O.reps))
                return usage_error("-r takes a count in 1..1000, got '%s'", v);
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            static const char *const fmts[] = {"md", "csv", "json", "jsonl"};
            if ((O.format = parse_choice(v, fmts, 4)) < 0)
                return usage_error("-o takes md, csv, json or jsonl, got '%s'", v);
        } else if (!strcmp(a, "--mem-limit")) rc = add_limits(v);
        else if (!strcmp(a, "--device")) rc = add_strs(&O.devices, v, a);
        else if (!strcmp(a, "--io")) {
            rc = add_strs(&O.ios, v, a);
            for (int k = 0; !rc && k < O.ios.n; k++)
                if (parse_choice(O.ios.v[k], io_names, 4) < 0)
                    rc = usage_error("--io takes auto, uring, pread or mmap, got '%s'", O.ios.v[k]);
        } else if (!strcmp(a, "--cache-policy")) {
            rc = add_strs(&O.policies, v, a);
            for (int k = 0; !rc && k < O.policies.n; k++)
                if (parse_choice(O.policies.v[k], policy_names, 2) < 0)
                    rc = usage_error("--cache-policy takes belady or lru, got '%s'", O.policies.v[k]);
        } else if (!strcmp(a, "--trace")) {
            if (!writable(v)) return 1;
            O.trace = v;
        } else if (!strcmp(a, "--plot")) {
            const size_t len = strlen(v);
            if (len < 5 || (strcmp(v + len - 4, ".svg") && strcmp(v + len - 4, ".png")))
                return usage_error("--plot takes a FILE.svg or FILE.png, got '%s'", v);
            O.plot = v;
        } else return usage_error("bench: unknown option %s", a);
        if (rc) return rc;
    }
    cache_dir(O.cache, sizeof O.cache);
    static char default_model[4200];
    if (!O.models.n) {
        snprintf(default_model, sizeof default_model, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", O.cache);
        O.models.v[O.models.n++] = default_model;
    }
    for (int i = 0; i < O.models.n; i++)
        if (access(O.models.v[i], R_OK) != 0) {
            fprintf(stderr, "%s: bench: cannot read model '%s': %s\n", prog, O.models.v[i],
                    strerror(errno));
            return 1;
        }
    if (!O.prompts.n && !O.gens.n && !O.pg_n) {
        O.prompts.v[O.prompts.n++] = 512;
        O.gens.v[O.gens.n++] = 128;
    }
    if (!O.threads.n) {
        const long c = sysconf(_SC_NPROCESSORS_ONLN);
        O.threads.v[O.threads.n++] = c > 0 && c <= 256 ? c : 1;
    }
    if (!O.batches.n) O.batches.v[O.batches.n++] = 1;
    O.root = geteuid() == 0;
    /* the devices' calibrations for auto, measured in a child before any
     * row: the measuring never counts in a row's peak memory */
    bool auto_dev = !O.devices.n;
    for (int i = 0; i < O.devices.n; i++) auto_dev |= !strcmp(O.devices.v[i], "auto");
    if (auto_dev && make_dirs(O.cache) == 0)
        for (int i = 0; i < O.threads.n; i++)
            measure_devices_once(O.cache, NULL, (int)O.threads.v[i], !O.progress);
    load_plugins(1);
    apply_tuning(1);

    /* the rows: models x threads x limits x devices x io x policies x
     * batches x tests, in llama-bench's order (model outermost, test
     * innermost) */
    int n_tests = 0;
    int tp[3 * MAX_LIST], tg[3 * MAX_LIST];
    for (int i = 0; i < O.prompts.n; i++)
        if (O.prompts.v[i] > 0) tp[n_tests] = (int)O.prompts.v[i], tg[n_tests++] = 0;
    for (int i = 0; i < O.gens.n; i++)
        if (O.gens.v[i] > 0) tp[n_tests] = 0, tg[n_tests++] = (int)O.gens.v[i];
    for (int i = 0; i < O.pg_n; i++) tp[n_tests] = (int)O.pg_p[i], tg[n_tests++] = (int)O.pg_g[i];
    if (!n_tests) return usage_error("%s", "nothing to measure: every -p and -n is 0");
    const int nl = O.n_limits ? O.n_limits : 1, nd = O.devices.n ? O.devices.n : 1,
              ni = O.ios.n ? O.ios.n : 1, np = O.policies.n ? O.policies.n : 1,
              ns = O.simd.n ? O.simd.n : 1, nk = O.kslices.n ? O.kslices.n : 1,
              nf = O.prefetches.n ? O.prefetches.n : 1;
    const long total = (long)O.models.n * O.threads.n * nl * nd * ni * np * O.batches.n * ns * nk *
                       nf * n_tests;
    if (total > 100000) return usage_error("%s", "more than 100000 combinations");
    row *rows = calloc((size_t)total, sizeof *rows);
    if (!rows) return fail("bench: out of memory");
    /* each row's place on every axis: a mixed-radix count, the model the
     * most significant digit and the test the least */
    int n = 0;
    for (long idx = 0; idx < total; idx++, n++) {
        long q = idx;
        int d[11];
        const int radix[11] = {O.models.n, O.threads.n, nl, nd, ni, np, O.batches.n, ns, nk, nf,
                               n_tests};
        for (int a = 10; a >= 0; a--) {
            d[a] = (int)(q % radix[a]);
            q /= radix[a];
        }
        row_spec *s = &rows[n].spec;
        *s = (row_spec){.model = d[0], .threads = d[1], .limit = O.n_limits ? d[2] : -1,
                        .device = d[3], .io = d[4], .policy = d[5], .batch = d[6], .simd = d[7],
                        .kslice = d[8], .prefetch = d[9], .n_prompt = tp[d[10]],
                        .n_gen = tg[d[10]], .index = n};
        test_name(s, rows[n].test, sizeof rows[n].test);
    }

    O.n_rows = n;
    int failed = 0;
    bool said_root = false;
    for (int i = 0; i < n; i++) {
        row *w = &rows[i];
        row_spec *s = &w->spec;
        if (O.progress)
            fprintf(stderr, "tinyai bench: %d/%d: %s, %s, %ld threads%s%s\n", i + 1, n,
                    base_name(O.models.v[s->model]), w->test, O.threads.v[s->threads],
                    s->limit >= 0 ? ", mem limit " : "", s->limit >= 0 ? limit_text(w) : "");
        /* a share of the model: of what it needs with every layer resident */
        if (s->limit >= 0 && O.limits[s->limit].share > 0) {
            row_result need;
            if (in_child(probe_need, s, &need) != 0) {
                w->res = need;
                snprintf(w->res.error, sizeof w->res.error, "%s", need.error);
                failed++;
                continue;
            }
            O.limits[s->limit].bytes = (size_t)(O.limits[s->limit].share * (double)need.limit_bytes);
        }
        if (s->limit >= 0 && O.limits[s->limit].bytes) {
            w->dropped = O.root && tai_bench_drop_caches() == 0;
            if (!w->dropped && !said_root) {
                fprintf(stderr, "%s: bench: not root: the page cache is not dropped before the "
                        "rows under a memory limit\n", prog);
                said_root = true;
            }
        }
        if (in_child(run_row, s, &w->res) != 0) {
            fprintf(stderr, "%s: bench: %s %s: %s\n", prog, base_name(O.models.v[s->model]), w->test,
                    w->res.error);
            failed++;
            continue;
        }
        /* a share is re-measured for the next row: it depends on the row */
        if (s->limit >= 0 && O.limits[s->limit].share > 0) w->res.limit_bytes = O.limits[s->limit].bytes;
        figures(w);
        if (O.progress)
            fprintf(stderr, "tinyai bench: %d/%d: %.2f ± %.2f t/s\n", i + 1, n, w->avg_ts, w->std_ts);
    }
    if (O.format == 0) {
        TinyAICpuInfo ci;
        tinyaiGetCpuInfo(&ci);
        printf("CPU: %s (%s), %d cores online\n\n", ci.model[0] ? ci.model : "unknown", ci.signature,
               ci.onlineCores);
        print_md(rows, n);
        /* the ceilings the table is measured against */
        printf("\nceilings measured in this run:");
        int any = 0;
        for (int t = 1; t <= 256; t++) {
            if (membw_at[t] > 0) printf("%s memory %.1f GB/s (%d thr)", any++ ? ";" : "", membw_at[t] / 1e9, t);
            for (int wide = 1; wide >= 0; wide--) {
                const char *v = wide ? "zmm" : "ymm";
                if (peak_at[wide][1][t] > 0)
                    printf("%s int8 %s %.0f GOPS (%d thr)", any++ ? ";" : "", v, peak_at[wide][1][t] / 1e9, t);
                if (peak_at[wide][0][t] > 0)
                    printf("%s fp32 %s %.0f GFLOPS (%d thr)", any++ ? ";" : "", v, peak_at[wide][0][t] / 1e9, t);
            }
        }
        for (int k = 0; k < MAX_LIST && storage_at[k].path; k++)
            printf("%s storage %.2f-%.2f GB/s (%s, after each streamed row)", any++ ? ";" : "",
                   storage_at[k].lo / 1e9, storage_at[k].hi / 1e9, base_name(storage_at[k].path));
        printf("%s\n", any ? "" : " none");
    } else if (O.format == 1) {
        print_csv(rows, n);
    } else {
        print_json(rows, n, O.format == 3);
    }
    if (O.plot && n > 0) {
        plot_point *pts = calloc((size_t)n, sizeof *pts);
        int np_ = 0;
        for (int i = 0; pts && i < n; i++) {
            const row *w = &rows[i];
            if (!w->res.ok) continue;
            plot_point *p = &pts[np_++];
            const char *mname = base_name(O.models.v[w->spec.model]);
            char axes[120];
            snprintf(axes, sizeof axes, "%ld thr%s%s%s%s%s%s", O.threads.v[w->spec.threads],
                     O.devices.n ? ", " : "", O.devices.n ? O.devices.v[w->spec.device] : "",
                     O.ios.n ? ", " : "", O.ios.n ? w->res.io : "", O.policies.n ? ", " : "",
                     O.policies.n ? w->res.policy : "");
            snprintf(p->series_limit, sizeof p->series_limit, "%s %s, %s, batch %ld", mname,
                     w->test, axes, O.batches.v[w->spec.batch]);
            snprintf(p->series_batch, sizeof p->series_batch, "%s %s, %s, limit %s", mname,
                     w->test, axes, limit_text(w));
            snprintf(p->label, sizeof p->label, "%s %s, %s, limit %s, batch %ld", mname, w->test,
                     axes, limit_text(w), O.batches.v[w->spec.batch]);
            p->limit_bytes = (double)w->res.limit_bytes;
            p->batch = (int)O.batches.v[w->spec.batch];
            p->tps = w->avg_ts;
            p->tps_std = w->std_ts;
            /* tok/s the storage ceiling allows at the bytes each token read */
            p->storage_bound = w->streamed && w->read_per_token > 0 && w->ceiling &&
                                       !strcmp(w->ceiling, "storage")
                                   ? w->ceiling_value / w->read_per_token
                                   : 0;
        }
        /* time per layer: each profiled row */
        plot_layers *pl = calloc((size_t)n, sizeof *pl);
        int npl = 0;
        for (int i = 0; pl && i < n; i++) {
            const row *w = &rows[i];
            if (!w->res.ok || !w->res.n_layers) continue;
            snprintf(pl[npl].label, sizeof pl[npl].label, "%s %s, %ld thr, limit %s, batch %ld",
                     base_name(O.models.v[w->spec.model]), w->test, O.threads.v[w->spec.threads],
                     limit_text(w), O.batches.v[w->spec.batch]);
            pl[npl].n = w->res.n_layers;
            pl[npl].seconds = w->res.layer_s;
            npl++;
        }
        char err[300];
        if (!pts || plot_write(O.plot, pts, np_, pl, npl, err, sizeof err) != 0) {
            fprintf(stderr, "%s: bench: --plot %s: %s\n", prog, O.plot, pts ? err : "out of memory");
            failed++;
        } else if (O.progress) {
            fprintf(stderr, "tinyai bench: wrote %s\n", O.plot);
        }
        free(pts);
        free(pl);
    }
    free(rows);
    return failed ? 1 : 0;
}
