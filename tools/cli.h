/*
 * tools/cli.h: what the commands of `tinyai` share (tinyai.c): messages,
 * argument parsing, the cache folder, plugins, kernel tuning.
 */
#ifndef TAI_TOOLS_CLI_H
#define TAI_TOOLS_CLI_H

#include <stddef.h>

#include <tinyai/llm.h>

extern const char *prog;

/* "prog: what: <last error>" on stderr; returns 1. */
int fail(const char *what);
/* A usage error (fmt with one %s) on stderr; returns 2. */
int usage_error(const char *fmt, const char *arg);
/* Peak resident memory of this process, MiB. */
double peak_rss_mib(void);
/* An integer in [lo, hi]: 1 and *out, or 0. */
int parse_long(const char *s, long lo, long hi, long *out);
/* A byte count with an optional K, M or G suffix: 1 and *out, or 0. */
int parse_bytes(const char *s, size_t *out);
/* The index of v among names[0 .. n), or -1. */
int parse_choice(const char *v, const char *const *names, int n);
/* The value after argv[*i] (advancing *i), or NULL. */
const char *take(int argc, char **argv, int *i);
/* Whether path can be written (a file there is kept as it was); says why
 * on stderr if not. */
int writable(const char *path);
/* $TINYAI_CACHE, else ~/.cache/tinyai; creating it: 0 or -1. */
void cache_dir(char *buf, size_t n);
int make_dirs(const char *dir);
/* Where dir holds no devices.json and device is auto (or NULL): measures
 * every device for the cost model in a child process, so the measuring
 * never counts in this process's memory; says so unless quiet. Call it
 * before load_plugins (a GPU runtime does not survive a fork). 1 if it
 * measured. */
int measure_devices_once(const char *dir, const char *device, int threads, int quiet);
/* Loads the --plugin files and TINYAI_PLUGIN_PATH (see tinyai.c). */
void load_plugins(int quiet);
/* Applies this CPU's saved kernel tuning, measuring it first if measure
 * and none is saved. */
void apply_tuning(int measure);

/* --mem-limit, --mode, --io, --cache-policy, --numa into *mc: 1 taken, 0
 * not one of them, 2 after a usage error. */
int memory_option(const char *a, const char *v, TinyAIModelConfig *mc);
/* The same, and --threads and --device. */
int model_option(const char *a, const char *v, TinyAIModelConfig *mc);

int cmd_serve(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* The model's profile (<tinyai/profile.h>) as tables: per layer and per
 * op (profile_table.c). */
#include <stdio.h>
void print_profile(FILE *f, const TinyAIModel *m, const char *title);

#endif
