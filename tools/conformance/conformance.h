/*
 * tools/conformance: the plugin conformance suite (layer: tools). Checks a
 * plugin's device against TinyAI's scalar reference (the CPU device's
 * portable kernels): every op and weight type it claims over awkward
 * shapes, with per-type tolerances and guard bytes around every output;
 * buffers (zero size, running out of memory and recovering, round trips
 * of every type); the lifecycle (two handles of one device, shutdown and
 * reload); concurrency (two streams, two threads); generation on a
 * synthetic model against the CPU; the ABI version. The `tinyai-conformance`
 * program prints its table; tests/plugin runs it on every plugin in the
 * tree.
 */
#ifndef TAI_TOOLS_CONFORMANCE_CONFORMANCE_H
#define TAI_TOOLS_CONFORMANCE_CONFORMANCE_H

#include <stdio.h>

#include <tinyai/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { TAI_CONF_PASS = 0, TAI_CONF_FAIL = 1, TAI_CONF_SKIP = 2 } tai_conf_result;

typedef struct {
    char group[16];   /* "op", "buffer", "lifecycle", "concurrency", "model", "abi" */
    char name[40];    /* "matmul", "zero-size buffer", ... */
    char type[8];     /* weight type, or "" */
    tai_conf_result result;
    char detail[240]; /* what was measured, or why it failed or was skipped */
} tai_conf_case;

typedef struct {
    char plugin[64], plugin_version[64], device[64], model[128];
    int abi_major, abi_minor;
    tai_conf_case *cases;
    int n, cap;
} tai_conf_report;

/* Loads the plugin (with its options), runs every check on its device
 * `device` and fills *out (freed with tai_conf_free, also on failure).
 * Fails only when the suite cannot run at all (the plugin does not load:
 * its status and message); every check's outcome is in the report. The
 * plugin is unloaded again before it returns. */
TinyAIStatus tai_conf_run(const char *plugin_path, const char *options, int device,
                          tai_conf_report *out);
void tai_conf_free(tai_conf_report *r);
int tai_conf_count(const tai_conf_report *r, tai_conf_result which);

/* The report as a table: Markdown (the pass/fail/skip table per op x type,
 * then the other checks) or JSON. 0, or -1 when writing failed. */
int tai_conf_write_markdown(const tai_conf_report *r, FILE *f);
int tai_conf_write_json(const tai_conf_report *r, FILE *f);

#ifdef __cplusplus
}
#endif

#endif
