/*
 * <tinyai/profile.h>: where a model's time goes. While a profile runs,
 * every forward pass records per file layer (0 = embedding, 1..nLayer =
 * blocks, nLayer + 1 = head) its time, the time it waited on storage, the
 * weight bytes it read and the arithmetic it did, and per op kind (the q
 * product, attention, ...) the same; optionally the CPU's performance
 * counters per layer (perf_event_open on every thread of the model's CPU
 * pool: cycles, instructions, LLC references and misses ... where the
 * kernel exposes them, the kernel's software counters everywhere) and a
 * trace of the run in time (each layer's compute and each op on the
 * thread that ran it, every storage read on its loader thread, waits for
 * layers, prefetches, evictions, device transfers) for Chrome's or
 * Perfetto's trace viewer.
 *
 * Profiling costs time: ops on a device with its own queue are waited
 * for one by one, and counters are read around every layer. It measures
 * what ran, not a faster or slower version of it.
 */
#ifndef TINYAI_PROFILE_H
#define TINYAI_PROFILE_H

#include <stdbool.h>
#include <stdint.h>

#include <tinyai/llm.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    TINYAI_PROFILE_COUNTERS = 1, /* performance counters per layer */
    TINYAI_PROFILE_TRACE = 2,    /* a trace in time (tinyaiWriteTrace) */
};

/* Starts (or restarts, forgetting what was recorded) a profile of the
 * model's passes; flags: TINYAI_PROFILE_* or 0 for times only. A counter
 * this machine lacks is left out (tinyaiGetProfileCounters says why). */
TinyAIStatus tinyaiStartProfile(TinyAIModel *model, unsigned flags);
/* Stops recording; what was recorded stays readable until the next start
 * or the model's end. */
void tinyaiStopProfile(TinyAIModel *model);

#define TINYAI_PROFILE_MAX_COUNTERS 9

typedef struct {
    int n;                                         /* counters listed */
    const char *names[TINYAI_PROFILE_MAX_COUNTERS];/* "cycles", "instructions" ... */
    bool available[TINYAI_PROFILE_MAX_COUNTERS];   /* opened on this machine */
    bool hardware[TINYAI_PROFILE_MAX_COUNTERS];    /* a CPU counter, not the
                                                      kernel's software one */
    int threads;                                   /* threads counted */
    char note[200];                                /* "" or why the hardware
                                                      counters are missing */
} TinyAIProfileCounters;

/* TINYAI_ERR_INVALID_ARG if no profile with counters was started. */
TinyAIStatus tinyaiGetProfileCounters(const TinyAIModel *model, TinyAIProfileCounters *out);

typedef struct {
    int layer;
    const char *device;   /* where it ran last ("cpu", "opencl:0") */
    uint64_t passes;
    double seconds;       /* all its passes, the wait for its weights included */
    double stallSeconds;  /* of which waiting for storage */
    double bytes;         /* weight bytes its products read */
    double flops;         /* arithmetic of its ops */
    uint64_t counters[TINYAI_PROFILE_MAX_COUNTERS]; /* summed over the threads */
} TinyAILayerProfile;

/* TINYAI_ERR_INVALID_ARG without a profile; TINYAI_ERR_RANGE for a layer
 * outside 0..nLayer+1. */
TinyAIStatus tinyaiGetLayerProfile(const TinyAIModel *model, int layer, TinyAILayerProfile *out);

typedef struct {
    const char *name;     /* "attn_norm", "q", "attention", "down", "head" ... */
    uint64_t calls;
    double seconds, bytes, flops;
} TinyAIOpProfile;

/* The op kinds, 0..count-1, in the order a block runs them. */
int tinyaiOpProfileCount(void);
TinyAIStatus tinyaiGetOpProfile(const TinyAIModel *model, int op, TinyAIOpProfile *out);

/* Writes the trace (Chrome/Perfetto trace-event JSON; open it in
 * ui.perfetto.dev or chrome://tracing). TINYAI_ERR_INVALID_ARG if no
 * profile with TINYAI_PROFILE_TRACE was started; TINYAI_ERR_IO if the file
 * cannot be written (nothing is left at path then). */
TinyAIStatus tinyaiWriteTrace(const TinyAIModel *model, const char *path);

#ifdef __cplusplus
}
#endif

#endif /* TINYAI_PROFILE_H */
