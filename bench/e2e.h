/* bench/: end-to-end cases shared by the benchmark programs: load a model,
 * time prompt processing and generation, in a child process so that each
 * case's peak resident memory is its own. */
#ifndef TAI_BENCH_E2E_H
#define TAI_BENCH_E2E_H

#include <stddef.h>

#include <tinyai/llm.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    double prompt_tps, gen_tps; /* medians over the timed repetitions */
    double bytes_per_token;     /* weight bytes one generated token reads */
    int ok;
    char isa[16];
    char devices[320]; /* where the layers ran (TinyAIModelInfo.devices) */
    /* a pass's time summed over layers, the cost model's prediction and the
     * mean measured (tinyaiGetLayerPlacement): decoding (1 column) and the
     * prompt's batch; predictions are 0 where the device was named */
    double gen_pred_s, gen_meas_s, prompt_pred_s, prompt_meas_s;
    /* the median over layers of predicted / measured (0: no predictions),
     * measured after the warm-up */
    double gen_ratio, prompt_ratio;
} tai_e2e_result;

/* The device the following cases load their models on (TinyAIModelConfig
 * .device; NULL: the default) and the folder for its program binaries. */
void tai_e2e_set_device(const char *device, const char *cache_dir);

/* Plugins each case's process loads before the model (their devices can
 * then be the case's device); the array is borrowed. */
void tai_e2e_set_plugins(const char *const *paths, int n);
/* Default paths: $TINYAI_CACHE (or $HOME/.cache/tinyai) holding
 * SmolLM2-135M-Instruct.Q4_1.gguf and synth-1b-q4_0.gguf. */
void tai_e2e_default_paths(char *model, size_t model_cap, char *model_1b, size_t model_1b_cap);

/* Weight bytes one generated token reads: every block, the final norm and
 * the output head; the token embedding table only when it is the head. */
double tai_e2e_bytes_per_token(const TinyAIModel *m);

/* Loads `path` with `threads` threads, then, after `warmup` untimed rounds
 * (a 64-token prompt and 8 generated tokens each), runs `reps` timed
 * repetitions of: an n_prompt-token prompt, then n_gen greedy tokens after
 * an 8-token prompt. Errors are printed on stderr; ok = 0 on failure. */
tai_e2e_result tai_e2e_run_case(const char *path, int threads, int reps, int warmup,
                                int n_prompt, int n_gen);

/* tai_e2e_run_case in a forked child; *peak_mib receives the child's peak
 * resident memory (MiB). ok = 0 if the child failed. */
tai_e2e_result tai_e2e_fork_case(const char *path, int threads, int reps, int warmup,
                                 int n_prompt, int n_gen, double *peak_mib);

/* Applies this machine's kernel tuning, as `tinyai` does: the file saved in
 * the cache folder for this CPU (kernels-<signature>.tune), measured and
 * saved first if there is none or `force` is set. `desc` receives what was
 * applied and where it came from, for the benchmark's header. */
void tai_e2e_apply_tuning(int force, char *desc, size_t cap);

/* Writes the synthetic ~1.1B-parameter Q4_0 model (TinyLlama-1.1B's shape,
 * seed 1) to `path` unless a non-empty file is already there. 0 or -1 (the
 * error printed on stderr). */
int tai_e2e_ensure_1b(const char *path);

/* A whole text file, NUL-terminated (the caller frees it), or NULL. */
char *tai_e2e_read_text(const char *path);

#ifdef __cplusplus
}
#endif

#endif
