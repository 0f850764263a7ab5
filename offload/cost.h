/*
 * offload/cost.h: the per-device cost model and the placement of layers on
 * devices (layer: offload). Devices report measured properties; placement
 * decisions live here alone.
 *
 * Calibration measures a device once (about a second per device): the rate
 * of its matrix products per weight type at batch 1 (bytes of packed
 * weights per second: decoding reads every weight once) and at a batch of
 * 64 columns (multiply-adds per second), the cost of one op and of one
 * synchronisation, the bandwidth of its elementwise ops, host-to-device and
 * device-to-host transfers, and its memory. The figures are kept in a JSON
 * file (devices.json in the caller's cache folder), one entry per device
 * keyed by its name, model, driver and (for the CPU) thread count.
 *
 * The model predicts a layer's time on a device at a batch of n columns:
 * each matrix product takes the longer of its weight bytes at the batch-1
 * rate and its multiply-adds at the rate for n columns (measured at 64 and
 * 512 columns, interpolated in log n between them: a GPU's kernels gain
 * far more from 64 to 512 columns than a CPU's); the layer's other ops,
 * one op's cost each plus their bytes at the elementwise rate; attention,
 * its KV bytes at that rate; one synchronisation per layer. A layer whose
 * previous layer ran elsewhere adds the transfer of its activations, and
 * one whose weights are not on the device adds their upload.
 *
 * Placement is exact: the chain of layers with a transfer cost between
 * consecutive layers on different devices is a shortest path over (layer,
 * device), constrained by each device's memory; it is solved by a
 * label-setting search that keeps, per (layer, device), every placement
 * of the layers so far that no other beats in both time and memory used
 * (Pareto labels), so the optimum under the memory caps is never pruned.
 */
#ifndef TAI_OFFLOAD_COST_H
#define TAI_OFFLOAD_COST_H

#include <stdbool.h>
#include <stdint.h>

#include <tinyai/status.h>

#include "core/types.h"
#include "offload/offload.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tai_calib_s {
    char key[384];                    /* which device these are of */
    double mv_gbs[TAI_TYPE_COUNT];    /* batch 1: GB/s of packed weights (0: no kernel),
                                         weights streamed from memory */
    double mv_llc_gbs[TAI_TYPE_COUNT];/* the same with weights that fit a quarter
                                         of the last-level cache (unified devices) */
    uint64_t llc_bytes;               /* that cache (0: not known / not used) */
    double mm_gflops[TAI_TYPE_COUNT]; /* 64 columns: GFLOP/s (2 per multiply-add) */
    double mm_big_gflops[TAI_TYPE_COUNT]; /* 512 columns: a prompt's batch */
    double op_us;                     /* one small op, enqueued (launch cost) */
    double mm_op_us;                  /* the fixed cost of one matrix product (a
                                         launch; on the CPU, the dispatch to the
                                         thread pool and the join) */
    double sync_us;                   /* one synchronisation of an idle device */
    double elem_gbs;                  /* elementwise ops: GB/s moved */
    double h2d_gbs, d2h_gbs;          /* transfers from and to the host (0 on the CPU) */
    double xfer_us;                   /* latency of a small transfer */
    uint64_t mem_bytes;               /* memory for weights (0: the host's, unbounded here) */
    int unified;
    uint32_t types;                   /* bit t: the device multiplies weights of type t
                                         (those measured, and the others it claims,
                                         whose rates are a measured type's) */
    double other_cores;               /* cores other work kept busy while it was
                                         measured (-1: not known); figures taken
                                         under load are low */
} tai_calib;

/* Whether a calibration was measured under load: other work kept more
 * than 0.3 + 0.1 x ncpu cores busy meanwhile (ncpu: the online CPUs), so
 * its figures are low. Not where the load is not known (an older file). */
bool tai_calib_busy(const tai_calib *c, long ncpu);

/* The key of a device's entry: "name|model|version". */
void tai_calib_key(const tai_device *d, char *buf, size_t cap);

/* Measures the device (a second or so; allocates a few tens of MB on it). */
TinyAIStatus tai_calibrate(tai_device *d, tai_calib *out);

/* The entry for `key` in the JSON file at path: TINYAI_ERR_IO (no file or
 * no entry for this key), TINYAI_ERR_FORMAT (not TinyAI's calibration
 * JSON, or an entry with missing or out-of-range figures). */
TinyAIStatus tai_calib_load(const char *path, const char *key, tai_calib *out);
/* Adds or replaces c's entry in the file (written to a temporary file and
 * renamed over it; a corrupt or foreign file is replaced). */
TinyAIStatus tai_calib_save(const char *path, const tai_calib *c);

/* The OpenCL devices the file says this machine has (keys as
 * tai_calib_key), recorded when they were last enumerated: 0 and *n, or
 * TINYAI_ERR_IO (none recorded) / TINYAI_ERR_FORMAT. Setting replaces it. */
TinyAIStatus tai_calib_opencl_list(const char *path, char (*keys)[384], int max, int *n);
TinyAIStatus tai_calib_set_opencl_list(const char *path, char (*keys)[384], int n);

/* What a layer computes, for the cost model. */
typedef struct {
    int n_mats;
    tai_type type[8];
    int64_t rows[8], n[8]; /* each matrix rows x n */
    uint64_t weight_bytes; /* the layer's image */
    int n_ops;             /* other ops (norms, RoPE, adds, SwiGLU, copies) */
    int64_t elem_floats;   /* floats they read and write per column */
    int64_t kv_floats;     /* per position attended: K and V floats read */
    int64_t act_floats;    /* per column: what enters it from another device */
    int64_t out_floats;    /* per column: what leaves it for the host (logits) */
} tai_layer_cost;

/* Seconds the layer takes on the calibrated device for n columns attending
 * over ctx positions on average (transfers not included); `working_set`:
 * the weight bytes the device reads per pass (a model whose weights stay
 * in the last-level cache reads them at the cached rate). */
double tai_cost_compute(const tai_calib *c, const tai_layer_cost *l, int n, int ctx,
                        uint64_t working_set);
/* Seconds to move n columns of act_floats between a (calibrated) device and
 * the host, one way (0 for a unified device). */
double tai_cost_transfer(const tai_calib *c, int64_t floats, int n, int to_device);

/* The placement problem: n_layers layers in a chain on n_devs devices
 * (device 0 is where the chain starts and ends: the host). */
typedef struct {
    int n_layers, n_devs;
    const double *cost;    /* [layer][dev]: seconds (INFINITY: cannot run there) */
    const double *trans;   /* [layer][from][to]: seconds to move the activations
                              into layer `layer` on `to` when the previous layer
                              (the host for layer 0) ran on `from`; 0 on the diagonal */
    const double *tail;    /* [dev]: seconds to bring the last layer's output to
                              the host from that device */
    const uint64_t *mem;   /* [layer][dev]: bytes the layer holds on the device */
    const uint64_t *cap;   /* [dev]: bytes available (UINT64_MAX: no limit) */
} tai_place_problem;

/* The optimal device of each layer into dev[] and its total time into
 * *total. 0, -1 if no placement fits the caps, -ENOMEM. */
int tai_place_solve(const tai_place_problem *p, int *dev, double *total);

#ifdef __cplusplus
}
#endif

#endif
