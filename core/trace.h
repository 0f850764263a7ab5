/*
 * core: a trace of a run in time, written as Chrome/Perfetto trace-event
 * JSON: spans (a layer's compute, a storage read, a wait) and instants (a
 * prefetch issued, an eviction), each on the thread that did it. Any
 * thread may record; events past the capacity are counted, not kept.
 */
#ifndef TAI_CORE_TRACE_H
#define TAI_CORE_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include <tinyai/status.h>

typedef struct tai_trace tai_trace;

/* NULL when out of memory (the error set). */
tai_trace *tai_trace_create(size_t capacity);
void tai_trace_destroy(tai_trace *t); /* accepts NULL */

/* A span [t0, t1) (tai_now_ns times) on the calling thread. name and cat:
 * static strings; id: the layer or entry it is about (-1: none), written
 * after the name; bytes: an argument (0: none). t may be NULL. */
void tai_trace_span(tai_trace *t, const char *name, const char *cat, int id, uint64_t t0,
                    uint64_t t1, uint64_t bytes);
/* An instant at `ts`. */
void tai_trace_instant(tai_trace *t, const char *name, const char *cat, int id, uint64_t ts,
                       uint64_t bytes);
size_t tai_trace_count(const tai_trace *t);   /* events kept */
size_t tai_trace_dropped(const tai_trace *t); /* events past the capacity */

/* Writes the events (times from the first event, in microseconds), the
 * threads named after what they did ("forward pass", "storage loader").
 * The file appears whole: written beside `path` and renamed over it. */
TinyAIStatus tai_trace_write(const tai_trace *t, const char *path, const char *process_name);

#endif
