/*
 * runtime/model: a model's profile (<tinyai/profile.h>): per file layer
 * and per op kind, time, bytes and arithmetic; performance counters read
 * around each layer on every thread of the CPU pool; the trace. The
 * forward pass reports into it only while one runs (TinyAIModel.prof).
 */
#ifndef TAI_RUNTIME_MODEL_PROFILE_H
#define TAI_RUNTIME_MODEL_PROFILE_H

#include <stdint.h>

#include <tinyai/profile.h>

#include "core/perfctr.h"
#include "core/trace.h"
#include "offload/offload.h"

/* The op kinds, in the order a block runs them. */
typedef enum {
    TAI_PROF_EMBEDDING = 0,
    TAI_PROF_ATTN_NORM,
    TAI_PROF_Q,
    TAI_PROF_K,
    TAI_PROF_V,
    TAI_PROF_ROPE,
    TAI_PROF_KV_STORE,
    TAI_PROF_ATTENTION,
    TAI_PROF_O,
    TAI_PROF_RESIDUAL,
    TAI_PROF_FFN_NORM,
    TAI_PROF_GATE,
    TAI_PROF_UP,
    TAI_PROF_SWIGLU,
    TAI_PROF_DOWN,
    TAI_PROF_OUT_NORM,
    TAI_PROF_HEAD,
    TAI_PROF_TRANSFER, /* activations and KV between host and a device */
    TAI_PROF_COUNT,
} tai_op_id;

const char *tai_op_name(int op);

#define TAI_PROF_MAX_THREADS 256

typedef struct {
    uint64_t passes, ns, stall_ns;
    double bytes, flops;
    uint64_t ctr[TAI_PERFCTR_COUNT];
    int device;
} tai_layer_prof;

typedef struct {
    uint64_t calls, ns;
    double bytes, flops;
} tai_op_prof;

/* Counters on every thread of a CPU device's pool: one set per thread. */
typedef struct {
    int n_thr;
    tai_perfctr thr[TAI_PROF_MAX_THREADS];
    int opened;     /* bit k: counter k opened on some thread */
    char note[200]; /* "" or why the hardware counters are missing */
} tai_thread_counters;

/* Opens them on each of cpu's threads (from those threads). */
void tai_thread_counters_open(tai_thread_counters *c, tai_device *cpu);
/* Sums over the threads now. */
void tai_thread_counters_read(const tai_thread_counters *c, uint64_t out[TAI_PERFCTR_COUNT]);
void tai_thread_counters_close(tai_thread_counters *c);

typedef struct tai_profile {
    unsigned flags;
    int n_layers;
    tai_layer_prof *layers;
    tai_op_prof ops[TAI_PROF_COUNT];
    tai_thread_counters ctr; /* n_thr 0: no counters */
    uint64_t ctr_at[TAI_PERFCTR_COUNT]; /* summed, at the layer's start */
    double layer_flops, layer_bytes;    /* the layer under way */
    tai_trace *trace;                   /* NULL without TINYAI_PROFILE_TRACE */
} tai_profile;

/* Around one file layer of a pass. */
void tai_prof_layer_begin(tai_profile *p);
void tai_prof_layer_end(tai_profile *p, int layer, int device, uint64_t t0, uint64_t t1,
                        uint64_t stall_ns);
/* After an op that started at t0 on dev: waits for dev (so that the time
 * is the op's own), then records it: bytes are the weights it read for the
 * products and the embedding, the activations it read and wrote for the
 * others; the layer's bytes count the weights only. */
TinyAIStatus tai_prof_op(tai_profile *p, tai_device *dev, int op, uint64_t t0, double bytes,
                         double flops);

#endif
