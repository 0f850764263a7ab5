/*
 * tools/plot.c: the benchmark's pictures, a gnuplot script written to
 * gnuplot's standard input with the data inline (datablocks), so that
 * nothing is left behind but the picture.
 */
#include "tools/plot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* A title gnuplot takes as it is: no double quotes, no backslashes. */
static void title(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) fputc(*s == '"' || *s == '\\' ? '\'' : *s, f);
    fputc('"', f);
}

/* The distinct series names of pts (by the field at `off`), in order. */
static int series_of(const plot_point *pts, int n, size_t off, const char **out) {
    int k = 0;
    for (int i = 0; i < n; i++) {
        const char *s = (const char *)&pts[i] + off;
        int seen = 0;
        for (int j = 0; j < k && !seen; j++) seen = !strcmp(out[j], s);
        if (!seen) out[k++] = s;
    }
    return k;
}

/* Whether a series has points at two values or more of the axis. */
static int spans(const plot_point *pts, int n, size_t off, const char *s, int by_batch) {
    double first = -1;
    for (int i = 0; i < n; i++) {
        if (strcmp((const char *)&pts[i] + off, s)) continue;
        const double x = by_batch ? pts[i].batch : pts[i].limit_bytes;
        if (!by_batch && x <= 0) continue;
        if (first < 0) first = x;
        else if (x != first) return 1;
    }
    return 0;
}

int plot_write(const char *path, const plot_point *pts, int n, const plot_layers *layers,
               int n_layers, char *err, size_t err_cap) {
    if (strchr(path, '\'') || strchr(path, '\n')) {
        snprintf(err, err_cap, "the file name may not hold a quote or a newline");
        return -1;
    }
    const size_t len = strlen(path);
    const int png = len > 4 && !strcmp(path + len - 4, ".png");
    const char **sl = calloc((size_t)n + 1, sizeof *sl), **sb = calloc((size_t)n + 1, sizeof *sb);
    if (!sl || !sb) {
        free(sl);
        free(sb);
        snprintf(err, err_cap, "out of memory");
        return -1;
    }
    const size_t off_l = offsetof(plot_point, series_limit), off_b = offsetof(plot_point, series_batch);
    int nsl = series_of(pts, n, off_l, sl), nsb = series_of(pts, n, off_b, sb);
    int k = 0;
    for (int i = 0; i < nsl; i++)
        if (spans(pts, n, off_l, sl[i], 0)) sl[k++] = sl[i];
    nsl = k;
    k = 0;
    for (int i = 0; i < nsb; i++)
        if (spans(pts, n, off_b, sb[i], 1)) sb[k++] = sb[i];
    nsb = k;
    const int panels = (nsl > 0) + (nsb > 0) + (n_layers > 0) + (nsl == 0 && nsb == 0 && n_layers == 0);

    FILE *f = popen("gnuplot", "w");
    if (!f) {
        snprintf(err, err_cap, "cannot run gnuplot: %s", strerror(errno));
        free(sl);
        free(sb);
        return -1;
    }
    if (png) fprintf(f, "set terminal pngcairo size 1100,%d noenhanced font 'sans,10'\n", 420 * panels);
    else fprintf(f, "set terminal svg size 1100,%d noenhanced font 'sans,11' background '#ffffff'\n", 420 * panels);
    fprintf(f, "set output '%s'\nset grid\nset key outside below\n", path);
    /* the data first: one block per series */
    for (int s = 0; s < nsl; s++) {
        fprintf(f, "$L%d << EOD\n", s);
        for (int i = 0; i < n; i++)
            if (!strcmp(pts[i].series_limit, sl[s]) && pts[i].limit_bytes > 0)
                fprintf(f, "%.6f %.6f %.6f %.6f\n", pts[i].limit_bytes / 1048576.0, pts[i].tps,
                        pts[i].tps_std, pts[i].storage_bound);
        fprintf(f, "EOD\n");
    }
    for (int s = 0; s < nsb; s++) {
        fprintf(f, "$B%d << EOD\n", s);
        for (int i = 0; i < n; i++)
            if (!strcmp(pts[i].series_batch, sb[s]))
                fprintf(f, "%d %.6f %.6f\n", pts[i].batch, pts[i].tps, pts[i].tps_std);
        fprintf(f, "EOD\n");
    }
    for (int s = 0; s < n_layers; s++) {
        fprintf(f, "$P%d << EOD\n", s);
        for (int i = 0; i < layers[s].n; i++) fprintf(f, "%d %.6f\n", i, layers[s].seconds[i] * 1e3);
        fprintf(f, "EOD\n");
    }
    fprintf(f, "set multiplot layout %d,1\n", panels);
    if (nsl) {
        fprintf(f, "set title 'tok/s against memory limit (dashed: what storage bandwidth allows at "
                   "the bytes read per token)'\nset xlabel 'memory limit (MiB)'\nset ylabel 'tok/s'\n"
                   "set yrange [0:*]\nset xrange [0:*]\nplot ");
        for (int s = 0; s < nsl; s++) {
            fprintf(f, "%s$L%d using 1:2:3 with yerrorlines lw 2 lc %d title ", s ? ", " : "", s, s + 1);
            title(f, sl[s]);
            fprintf(f, ", $L%d using 1:($4 > 0 ? $4 : 1/0) with linespoints dt 2 lc %d title ", s, s + 1);
            char t[200];
            snprintf(t, sizeof t, "storage bound, %s", sl[s]);
            title(f, t);
        }
        fprintf(f, "\n");
    }
    if (nsb) {
        fprintf(f, "set title 'tok/s (all sequences) against batch'\nset xlabel 'sequences decoded "
                   "together'\nset ylabel 'tok/s'\nset yrange [0:*]\nset xrange [*:*]\n"
                   "set logscale x 2\nplot ");
        for (int s = 0; s < nsb; s++) {
            fprintf(f, "%s$B%d using 1:2:3 with yerrorlines lw 2 title ", s ? ", " : "", s);
            title(f, sb[s]);
        }
        fprintf(f, "\nunset logscale x\n");
    }
    if (n_layers) {
        fprintf(f, "set title 'time per layer and pass (0: embedding, last: head)'\nset xlabel "
                   "'layer'\nset ylabel 'ms'\nset yrange [0:*]\nset xrange [-1:*]\nset style fill "
                   "solid 0.6\nset boxwidth %.2f\nplot ", 0.8 / n_layers);
        for (int s = 0; s < n_layers; s++) {
            fprintf(f, "%s$P%d using ($1 + %.3f):2 with boxes title ", s ? ", " : "", s,
                    (s - (n_layers - 1) / 2.0) * 0.8 / n_layers);
            title(f, layers[s].label);
        }
        fprintf(f, "\n");
    }
    if (panels == 1 && !nsl && !nsb && !n_layers) {
        fprintf(f, "$R << EOD\n");
        for (int i = 0; i < n; i++) {
            fprintf(f, "%d %.6f %.6f ", i, pts[i].tps, pts[i].tps_std);
            title(f, pts[i].label);
            fprintf(f, "\n");
        }
        fprintf(f, "EOD\nset title 'tok/s per row'\nset ylabel 'tok/s'\nset yrange [0:*]\n"
                   "set xrange [-1:%d]\nset style fill solid 0.6\nset boxwidth 0.6\n"
                   "set xtics rotate by -30\nplot $R using 1:2:xtic(4) with boxes notitle, $R "
                   "using 1:2:3 with yerrorbars notitle\n", n);
    }
    fprintf(f, "unset multiplot\nset output\n");
    free(sl);
    free(sb);
    const int st = pclose(f);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(err, err_cap, "gnuplot failed (status %d%s)", WIFEXITED(st) ? WEXITSTATUS(st) : -1,
                 WIFEXITED(st) && WEXITSTATUS(st) == 127 ? ": not installed? scripts/setup.sh installs it" : "");
        return -1;
    }
    return 0;
}
