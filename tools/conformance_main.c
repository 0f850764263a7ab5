/*
 * tools/conformance_main.c: `tinyai-conformance`, the plugin conformance
 * suite as one program a vendor runs on their machine:
 *
 *   tinyai-conformance PLUGIN.so [--device N] [--options "k=v;..."]
 *                      [--report FILE.md|FILE.json]
 *
 * Prints the pass/fail/skip table (Markdown) on stdout, writes the report
 * file if asked, and exits 0 when nothing failed, 1 when a check failed or
 * the plugin does not load, 2 on a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tinyai/llm.h>

#include "tools/conformance/conformance.h"

static int usage(const char *why) {
    fprintf(stderr, "tinyai-conformance: %s\nusage: tinyai-conformance PLUGIN.so [--device N] "
                    "[--options \"key=value;...\"] [--report FILE.md|FILE.json]\n", why);
    return 2;
}

int main(int argc, char **argv) {
    const char *plugin = NULL, *options = NULL, *report = NULL;
    long device = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: tinyai-conformance PLUGIN.so [--device N] [--options \"key=value;...\"]\n"
                   "                          [--report FILE.md|FILE.json]\n\n"
                   "Checks device N (default 0) of a TinyAI plugin against TinyAI's scalar\n"
                   "reference: every op and weight type it claims, buffers, lifecycle,\n"
                   "concurrency, generation on a synthetic model, the ABI version. Exits 0\n"
                   "when nothing failed.\n");
            return 0;
        } else if (!strcmp(argv[i], "--device") && i + 1 < argc) {
            char *end = NULL;
            device = strtol(argv[++i], &end, 10);
            if (*end || device < 0 || device > 63) return usage("--device takes 0..63");
        } else if (!strcmp(argv[i], "--options") && i + 1 < argc) {
            options = argv[++i];
        } else if (!strcmp(argv[i], "--report") && i + 1 < argc) {
            report = argv[++i];
            const size_t n = strlen(report);
            if (!(n > 3 && !strcmp(report + n - 3, ".md")) &&
                !(n > 5 && !strcmp(report + n - 5, ".json")))
                return usage("--report takes a .md or .json file");
        } else if (argv[i][0] == '-' || plugin) {
            return usage("unknown or extra argument");
        } else {
            plugin = argv[i];
        }
    }
    if (!plugin) return usage("no plugin given");
    if (access(plugin, R_OK) != 0) {
        fprintf(stderr, "tinyai-conformance: cannot read %s\n", plugin);
        return 2;
    }
    tai_conf_report r;
    if (tai_conf_run(plugin, options, (int)device, &r) != TINYAI_OK) {
        fprintf(stderr, "tinyai-conformance: %s\n", tinyaiLastErrorMessage());
        tai_conf_free(&r);
        return 1;
    }
    tai_conf_write_markdown(&r, stdout);
    int rc = tai_conf_count(&r, TAI_CONF_FAIL) ? 1 : 0;
    if (report) {
        FILE *f = fopen(report, "w");
        const size_t n = strlen(report);
        const int bad = !f || (n > 5 && !strcmp(report + n - 5, ".json") ? tai_conf_write_json(&r, f)
                                                                         : tai_conf_write_markdown(&r, f));
        if (f && fclose(f) != 0) rc = 1;
        if (bad) {
            fprintf(stderr, "tinyai-conformance: cannot write %s\n", report);
            rc = 1;
        }
    }
    tai_conf_free(&r);
    return rc;
}
