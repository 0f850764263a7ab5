/*
 * offload/cpu/cpu.h: the CPU as a device (layer: offload): the kernels of
 * kernels/ (the best SIMD variant this CPU has, or the one asked for) on a
 * thread pool, behind the device vtable; plus what the runtime asks of this
 * CPU as a machine (its identity and the kernels' per-machine tuning).
 */
#ifndef TAI_OFFLOAD_CPU_CPU_H
#define TAI_OFFLOAD_CPU_CPU_H

#include <stdbool.h>

#include <tinyai/status.h>

#include "offload/host.h"
#include "offload/offload.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opens the CPU device: kernel variant `variant` (NULL or "auto": the best
 * this CPU has; "scalar", "avx2", "avx512": that one, TINYAI_ERR_UNSUPPORTED
 * if the CPU lacks it, TINYAI_ERR_INVALID_ARG for another name) on `threads`
 * threads (1..256; the caller's thread is one of them). Freed with
 * tai_device_close. */
TinyAIStatus tai_cpu_device_open(const char *variant, int threads, tai_device **out);

/* Of a device tai_cpu_device_open made (NULL / 0 for any other device): its
 * kernel variant's name, its thread count, and its pool (for host work that
 * should run on the same threads, such as binding them to cores). */
const char *tai_cpu_device_variant(const tai_device *d);
int tai_cpu_device_threads(const tai_device *d);
tai_pool *tai_cpu_device_pool(const tai_device *d);
/* The op families whose kernels can be chosen (<tinyai/utils/simd.h>):
 * the products with their activations' quantization, SwiGLU, attention.
 * A family runs the best kernel variant the CPU has up to the device's
 * level (initially the variant it was opened with), or the portable one
 * when disabled. Takes effect on the next op; not while ops run. */
enum { TAI_CPU_MATMUL = 0, TAI_CPU_ACTIVATION = 1, TAI_CPU_ATTENTION = 2, TAI_CPU_FAMILIES = 3 };
TinyAIStatus tai_cpu_device_set_family(tai_device *d, int family, bool enabled);
/* 0 scalar, 1 AVX2, 2 AVX-512 (above: the best); negative: an error. */
TinyAIStatus tai_cpu_device_set_level(tai_device *d, int level);
int tai_cpu_device_level(const tai_device *d);
/* The device's own kernel tuning for its matrix products (kernels.h
 * tai_kernel_tuning: prefetch bytes into L1 and L2, K elements per slice of
 * the blocked products, 0 = the kernels' default), or with own false the
 * process-wide one again. Out-of-range values: TINYAI_ERR_INVALID_ARG,
 * nothing changed. The getter gives what the products use. */
TinyAIStatus tai_cpu_device_set_tuning(tai_device *d, bool own, int prefetch_l1, int prefetch_l2,
                                       int k_slice);
void tai_cpu_device_tuning(const tai_device *d, bool *own, int *prefetch_l1, int *prefetch_l2,
                           int *k_slice);
const char *tai_cpu_device_family_variant(const tai_device *d, int family);
bool tai_cpu_device_family_enabled(const tai_device *d, int family);

/* Runs fn(ctx, i, n) on each of the device's n threads (i = 0 on the
 * caller's) and returns when all are done. */
void tai_cpu_device_each_thread(const tai_device *d, void (*fn)(void *ctx, int i, int n),
                                void *ctx);

/* ---- This CPU ---- */

/* The kernel variants this CPU runs, best last, space separated; the best;
 * whether `name` is one it runs (1), one it does not (0) or no variant
 * (-1). Static text. */
const char *tai_cpu_variants(void);
const char *tai_cpu_best_variant(void);
int tai_cpu_variant_supported(const char *name);
/* Its name ("" if it gives none), the features the kernels use, and its
 * signature (vendor-family-model-stepping). Static text. */
const char *tai_cpu_name(void);
const char *tai_cpu_feature_list(void);
const char *tai_cpu_id(void);

/* The kernels' per-machine tuning (kernels/kernels.h "Per-machine tuning"):
 * software prefetch distances in bytes, each 0 or a multiple of 64 up to
 * TAI_CPU_MAX_PREFETCH. set returns 0 or -1 (out of range,
 * nothing changed); tune measures the best for the best variant (0, or
 * -ENOMEM), *gain its speed-up over none (may be NULL). */
#define TAI_CPU_MAX_PREFETCH 65536
void tai_cpu_tuning(int *prefetch_l1, int *prefetch_l2);
int tai_cpu_set_tuning(int prefetch_l1, int prefetch_l2);
int tai_cpu_tune(int *prefetch_l1, int *prefetch_l2, double *gain);

#ifdef __cplusplus
}
#endif

#endif
