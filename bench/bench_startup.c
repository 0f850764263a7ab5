/*
 * bench/bench_startup: how long a user waits for the first token.
 *
 *   bench_startup [--model PATH] [--runs N] [--threads N] [--vs 'COMMAND ...']
 *
 * Times `tinyai generate -m MODEL -p "hello world" -n 1` as a whole process
 * (start to exit: loading, the prompt and one token), N runs (default 9),
 * medians, in two conditions:
 *   - warm: the model file in the page cache (read once before each run),
 *   - cold: the page cache dropped before each run (as root);
 * and the storage bound of a cold start: the file's size over the storage
 * ceiling (an O_DIRECT read loop into huge pages, as bench_stream), so the
 * cold figure reads as a multiple of the time the bytes take to arrive.
 * With --vs, a peer command (run through /bin/sh, with {model} replaced by
 * the model's path) is timed the same way, alternating with tinyai run by
 * run, so both see the same machine: e.g. a llama.cpp build's
 * `llama-completion -m {model} -p "hello world" -n 1 -t 2 -no-cnv`.
 * Each run is timed twice: to the last byte the command writes to stdout
 * (the token: the first token as the user sees it) and to its exit (after
 * the process has torn its memory down).
 * Also printed: the spread (min and max), so a bimodal start shows, and
 * the median of each round's cold token time over the ceiling read just
 * before it (a virtual disk's speed drifts within a run).
 * Default model: the synthetic 1.1B Q4_0 GGUF (written once, as
 * bench_kernels does). The tinyai binary is the one built beside this one
 * (bazel-bin/tools/tinyai) unless $TINYAI_BIN names another.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/e2e.h"
#include "bench/membw.h"
#include "bench/storage.h"

#define MAX_RUNS 51

static void warm(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    static char buf[1 << 20];
    while (read(fd, buf, sizeof buf) > 0) {
    }
    close(fd);
}

/* Wall seconds of `sh -c cmd` from start to exit, negative on failure;
 * *out (if given) gets the seconds until the last byte it wrote to stdout
 * arrived (its stdout is a pipe read here; stderr is discarded): the
 * generated token is that last byte, so this is the first token as the
 * user sees it, before the process tears its memory down. */
static double timed_out(const char *cmd, double *out) {
    int pfd[2];
    if (pipe(pfd) != 0) return -1;
    const double t0 = tai_bench_now();
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(pfd[1], 1);
        if (null >= 0) dup2(null, 2);
        close(pfd[0]);
        close(pfd[1]);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    double last = 0;
    char buf[4096];
    for (;;) {
        ssize_t n = read(pfd[0], buf, sizeof buf);
        if (n > 0) {
            last = tai_bench_now() - t0;
        } else if (n == 0 || errno != EINTR) {
            break;
        }
    }
    close(pfd[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    const double dt = tai_bench_now() - t0;
    if (out) *out = last > 0 ? last : dt;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? dt : -1;
}

static double timed(const char *cmd) { return timed_out(cmd, NULL); }

/* cmd with every {model} replaced by path */
static void expand(const char *tmpl, const char *path, char *out, size_t cap) {
    size_t n = 0;
    for (const char *p = tmpl; *p && n + 1 < cap;) {
        if (!strncmp(p, "{model}", 7)) {
            n += (size_t)snprintf(out + n, cap - n, "%s", path);
            if (n >= cap) n = cap - 1;
            p += 7;
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = 0;
}

typedef struct {
    double v[MAX_RUNS];
    int n;
} series;

static void row(const char *name, series *s, double unit, const char *what) {
    if (s->n == 0) {
        printf("%-28s failed\n", name);
        return;
    }
    double lo = s->v[0], hi = s->v[0];
    for (int i = 0; i < s->n; i++) {
        if (s->v[i] < lo) lo = s->v[i];
        if (s->v[i] > hi) hi = s->v[i];
    }
    const double med = tai_bench_median(s->v, s->n);
    printf("%-28s median %6.3f s  (min %6.3f, max %6.3f, %d runs)", name, med, lo, hi, s->n);
    if (unit > 0) printf("  %.2fx %s", med / unit, what);
    printf("\n");
}

int main(int argc, char **argv) {
    char model[4096], model_1b[4096];
    tai_e2e_default_paths(model, sizeof model, model_1b, sizeof model_1b);
    snprintf(model, sizeof model, "%s", model_1b);
    int runs = 9, threads = 2, is_default = 1;
    const char *vs = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) {
            snprintf(model, sizeof model, "%s", argv[++i]);
            is_default = 0;
        } else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--vs") && i + 1 < argc) {
            vs = argv[++i];
        } else {
            fprintf(stderr, "usage: bench_startup [--model PATH] [--runs N] [--threads N] "
                            "[--vs 'COMMAND with {model}']\n");
            return 2;
        }
    }
    if (runs < 1 || runs > MAX_RUNS || threads < 1) {
        fprintf(stderr, "bench_startup: --runs 1..%d, --threads >= 1\n", MAX_RUNS);
        return 2;
    }
    if (is_default && tai_e2e_ensure_1b(model) != 0) return 1;
    char bin[4096];
    const char *env_bin = getenv("TINYAI_BIN");
    if (env_bin && *env_bin) {
        snprintf(bin, sizeof bin, "%s", env_bin);
    } else {
        char self[3000];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0) return 1;
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) *slash = 0;
        snprintf(bin, sizeof bin, "%s/../tools/tinyai", self);
    }
    struct stat st;
    if (stat(model, &st) != 0 || stat(bin, &st) != 0 || stat(model, &st) != 0) {
        fprintf(stderr, "bench_startup: missing %s or %s\n", model, bin);
        return 1;
    }
    const double file = (double)st.st_size;
    char ours[8800], peer[8800];
    snprintf(ours, sizeof ours, "'%s' generate -m '%s' -p 'hello world' -n 1 --threads %d", bin,
             model, threads);
    if (vs) expand(vs, model, peer, sizeof peer);
    /* the kernel tuning is measured once outside the timed runs */
    char once[9000];
    snprintf(once, sizeof once, "%s --quiet", ours);
    if (timed(once) < 0) {
        fprintf(stderr, "bench_startup: %s failed\n", ours);
        return 1;
    }
    const int root = tai_bench_drop_caches() == 0;
    void *buf = tai_bench_huge_alloc((size_t)64 << 20);
    char err[256] = "";
    double ceil_v[MAX_RUNS], ratio_v[MAX_RUNS];
    int nceil = 0, nratio = 0;
    series w_ours = {{0}, 0}, w_peer = {{0}, 0}, c_ours = {{0}, 0}, c_peer = {{0}, 0};
    /* the same runs, to the last byte of output (the token) */
    series wo_ours = {{0}, 0}, wo_peer = {{0}, 0}, co_ours = {{0}, 0}, co_peer = {{0}, 0};
    double o = 0;
    for (int r = 0; r < runs; r++) {
        warm(model);
        double t = timed_out(ours, &o);
        if (t > 0) w_ours.v[w_ours.n++] = t, wo_ours.v[wo_ours.n++] = o;
        if (vs) {
            warm(model);
            t = timed_out(peer, &o);
            if (t > 0) w_peer.v[w_peer.n++] = t, wo_peer.v[wo_peer.n++] = o;
        }
        if (!root) continue;
        tai_bench_drop_caches();
        double bw = 0;
        if (buf) {
            bw = tai_bench_direct_read(model, (size_t)32 << 20, buf, (size_t)64 << 20, err,
                                       sizeof err);
            if (bw > 0) ceil_v[nceil++] = bw;
        }
        tai_bench_drop_caches();
        t = timed_out(ours, &o);
        if (t > 0) c_ours.v[c_ours.n++] = t, co_ours.v[co_ours.n++] = o;
        /* the same run against the ceiling read just before it: the
         * storage's speed drifts (a virtual disk's burst allowance runs
         * out and refills), and a ratio within one round follows it */
        if (t > 0 && bw > 0) ratio_v[nratio++] = o / (file / bw);
        if (vs) {
            tai_bench_drop_caches();
            t = timed_out(peer, &o);
            if (t > 0) c_peer.v[c_peer.n++] = t, co_peer.v[co_peer.n++] = o;
        }
    }
    free(buf);
    printf("model %s (%.2f GB); first token: `generate -n 1` on a 2-token prompt as a "
           "process, to its last output byte and to its exit, %d threads\n",
           model, file / 1e9, threads);
    if (vs) printf("peer: %s\n", peer);
    printf("\nwarm (file in the page cache):\n");
    row("  tinyai, token out", &wo_ours,
        vs && wo_peer.n ? tai_bench_median(wo_peer.v, wo_peer.n) : 0, "the peer's time");
    row("  tinyai, exit", &w_ours, vs && w_peer.n ? tai_bench_median(w_peer.v, w_peer.n) : 0,
        "the peer's time");
    if (vs) {
        row("  peer, token out", &wo_peer, 0, "");
        row("  peer, exit", &w_peer, 0, "");
    }
    if (!root) {
        printf("\ncold: not measured (dropping the page cache needs root)\n");
        return 0;
    }
    const double ceiling = nceil ? tai_bench_median(ceil_v, nceil) : 0;
    const double bound = ceiling > 0 ? file / ceiling : 0;
    printf("\ncold (page cache dropped before each run): storage ceiling %.2f GB/s, so the "
           "file takes %.3f s to arrive%s%s\n",
           ceiling / 1e9, bound, err[0] ? "; ceiling: " : "", err);
    row("  tinyai, token out", &co_ours, bound, "that time");
    row("  tinyai, exit", &c_ours, bound, "that time");
    if (nratio > 0) {
        double lo = ratio_v[0], hi = ratio_v[0];
        for (int i = 0; i < nratio; i++) {
            if (ratio_v[i] < lo) lo = ratio_v[i];
            if (ratio_v[i] > hi) hi = ratio_v[i];
        }
        printf("  tinyai, token out over the ceiling read just before it, per round: median "
               "%.2fx (min %.2fx, max %.2fx)\n",
               tai_bench_median(ratio_v, nratio), lo, hi);
    }
    if (vs) {
        row("  peer, token out", &co_peer, bound, "that time");
        row("  peer, exit", &c_peer, bound, "that time");
    }
    return 0;
}
