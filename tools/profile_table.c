/*
 * tools/profile_table.c: a model's profile (<tinyai/profile.h>) as the
 * tables `tinyai generate --profile` and `tinyai bench --profile` print.
 */
#include <stdio.h>
#include <string.h>

#include <tinyai/profile.h>

#include "tools/cli.h"

static const char *layer_label(int l, int n_layers, char *buf, size_t cap) {
    if (l == 0) return "embedding";
    if (l == n_layers - 1) return "head";
    snprintf(buf, cap, "block %d", l - 1);
    return buf;
}

void print_profile(FILE *f, const TinyAIModel *m, const char *title) {
    TinyAIModelInfo in;
    if (tinyaiGetModelInfo(m, &in) != TINYAI_OK) return;
    TinyAIProfileCounters pc;
    const int have_ctr = tinyaiGetProfileCounters(m, &pc) == TINYAI_OK;
    /* the counters worth a column: cycles and instructions (IPC), LLC
     * misses per reference, and the software ones that exist everywhere */
    int cyc = -1, ins = -1, llr = -1, llm = -1, clk = -1, flt = -1;
    for (int k = 0; have_ctr && k < pc.n; k++) {
        if (!pc.available[k]) continue;
        if (!strcmp(pc.names[k], "cycles")) cyc = k;
        if (!strcmp(pc.names[k], "instructions")) ins = k;
        if (!strcmp(pc.names[k], "llc-references")) llr = k;
        if (!strcmp(pc.names[k], "llc-misses")) llm = k;
        if (!strcmp(pc.names[k], "task-clock-ns")) clk = k;
        if (!strcmp(pc.names[k], "page-faults")) flt = k;
    }
    fprintf(f, "\nprofile%s%s: %s, %d threads\n", title ? " of " : "", title ? title : "",
            in.name[0] ? in.name : "model", in.threads);
    if (have_ctr && pc.note[0]) fprintf(f, "counters: %s; the kernel's software counters are shown\n", pc.note);
    fprintf(f, "%-10s %-9s %6s %9s %6s %8s %8s", "layer", "device", "passes", "ms/pass", "stall",
            "GB/s", "GFLOP/s");
    if (cyc >= 0) fprintf(f, " %10s", "Mcycles");
    if (cyc >= 0 && ins >= 0) fprintf(f, " %5s", "IPC");
    if (llr >= 0 && llm >= 0) fprintf(f, " %8s", "LLC miss");
    if (clk >= 0) fprintf(f, " %7s", "CPU ms");
    if (flt >= 0) fprintf(f, " %6s", "faults");
    fprintf(f, "\n");
    double tot_s = 0, tot_stall = 0, tot_b = 0, tot_f = 0;
    for (int l = 0; l < in.nFileLayers; l++) {
        TinyAILayerProfile lp;
        if (tinyaiGetLayerProfile(m, l, &lp) != TINYAI_OK || lp.passes == 0) continue;
        char buf[32];
        const double p = (double)lp.passes;
        fprintf(f, "%-10s %-9s %6llu %9.3f %5.1f%% %8.2f %8.2f", layer_label(l, in.nFileLayers, buf, sizeof buf),
                lp.device, (unsigned long long)lp.passes, lp.seconds / p * 1e3,
                lp.seconds > 0 ? 100 * lp.stallSeconds / lp.seconds : 0.0,
                lp.seconds > 0 ? lp.bytes / lp.seconds / 1e9 : 0.0,
                lp.seconds > 0 ? lp.flops / lp.seconds / 1e9 : 0.0);
        if (cyc >= 0) fprintf(f, " %10.2f", (double)lp.counters[cyc] / p / 1e6);
        if (cyc >= 0 && ins >= 0)
            fprintf(f, " %5.2f", lp.counters[cyc] ? (double)lp.counters[ins] / (double)lp.counters[cyc] : 0.0);
        if (llr >= 0 && llm >= 0)
            fprintf(f, " %7.1f%%", lp.counters[llr] ? 100.0 * (double)lp.counters[llm] / (double)lp.counters[llr] : 0.0);
        if (clk >= 0) fprintf(f, " %7.3f", (double)lp.counters[clk] / p / 1e6);
        if (flt >= 0) fprintf(f, " %6.1f", (double)lp.counters[flt] / p);
        fprintf(f, "\n");
        tot_s += lp.seconds;
        tot_stall += lp.stallSeconds;
        tot_b += lp.bytes;
        tot_f += lp.flops;
    }
    fprintf(f, "%-10s %-9s %6s %9s %5.1f%% %8.2f %8.2f\n", "all", "", "", "",
            tot_s > 0 ? 100 * tot_stall / tot_s : 0.0, tot_s > 0 ? tot_b / tot_s / 1e9 : 0.0,
            tot_s > 0 ? tot_f / tot_s / 1e9 : 0.0);
    fprintf(f, "\n%-10s %8s %10s %6s %8s %8s\n", "op", "calls", "ms", "share", "GB/s", "GFLOP/s");
    for (int o = 0; o < tinyaiOpProfileCount(); o++) {
        TinyAIOpProfile op;
        if (tinyaiGetOpProfile(m, o, &op) != TINYAI_OK || op.calls == 0) continue;
        fprintf(f, "%-10s %8llu %10.3f %5.1f%% %8.2f %8.2f\n", op.name, (unsigned long long)op.calls,
                op.seconds * 1e3, tot_s > 0 ? 100 * op.seconds / tot_s : 0.0,
                op.seconds > 0 ? op.bytes / op.seconds / 1e9 : 0.0,
                op.seconds > 0 ? op.flops / op.seconds / 1e9 : 0.0);
    }
    fprintf(f, "(GB/s: weight bytes for the products and the embedding, activations for the "
               "others; the layers' time includes waiting for their weights)\n");
}
