/*
 * core: the trace recorder. A preallocated array and an atomic index: a
 * thread claims a slot, fills it, then marks it complete, so recording
 * never blocks and a writer skips slots still being filled.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "core/trace.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/error.h"

typedef struct {
    const char *name, *cat;
    int id;
    int tid;
    uint64_t t0, t1; /* t1 == UINT64_MAX: an instant */
    uint64_t bytes;
    atomic_bool done;
} event;

struct tai_trace {
    size_t cap;
    atomic_size_t next;
    atomic_size_t dropped;
    event *ev;
};

static _Thread_local int my_tid;

static int tid(void) {
    if (!my_tid) my_tid = (int)syscall(SYS_gettid);
    return my_tid;
}

tai_trace *tai_trace_create(size_t capacity) {
    tai_trace *t = calloc(1, sizeof *t);
    if (t) t->ev = calloc(capacity ? capacity : 1, sizeof *t->ev);
    if (!t || !t->ev) {
        free(t);
        tai_error(TINYAI_ERR_NOMEM, "trace: cannot hold %zu events", capacity);
        return NULL;
    }
    t->cap = capacity ? capacity : 1;
    return t;
}

void tai_trace_destroy(tai_trace *t) {
    if (!t) return;
    free(t->ev);
    free(t);
}

static void record(tai_trace *t, const char *name, const char *cat, int id, uint64_t t0,
                   uint64_t t1, uint64_t bytes) {
    if (!t) return;
    const size_t i = atomic_fetch_add_explicit(&t->next, 1, memory_order_relaxed);
    if (i >= t->cap) {
        atomic_fetch_add_explicit(&t->dropped, 1, memory_order_relaxed);
        return;
    }
    event *e = &t->ev[i];
    e->name = name;
    e->cat = cat;
    e->id = id;
    e->tid = tid();
    e->t0 = t0;
    e->t1 = t1;
    e->bytes = bytes;
    atomic_store_explicit(&e->done, true, memory_order_release);
}

void tai_trace_span(tai_trace *t, const char *name, const char *cat, int id, uint64_t t0,
                    uint64_t t1, uint64_t bytes) {
    record(t, name, cat, id, t0, t1 < t0 ? t0 : t1, bytes);
}

void tai_trace_instant(tai_trace *t, const char *name, const char *cat, int id, uint64_t ts,
                       uint64_t bytes) {
    record(t, name, cat, id, ts, UINT64_MAX, bytes);
}

size_t tai_trace_count(const tai_trace *t) {
    if (!t) return 0;
    const size_t n = atomic_load(&((tai_trace *)t)->next);
    return n < t->cap ? n : t->cap;
}

size_t tai_trace_dropped(const tai_trace *t) {
    return t ? atomic_load(&((tai_trace *)t)->dropped) : 0;
}

/* A JSON string's content: the names here are plain, but be safe. */
static void json_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        if ((unsigned char)*s >= 0x20) fputc(*s, f);
    }
}

TinyAIStatus tai_trace_write(const tai_trace *t, const char *path, const char *process_name) {
    if (!t || !path || !*path) return tai_error(TINYAI_ERR_INVALID_ARG, "trace: no trace or path");
    const size_t n = tai_trace_count(t);
    uint64_t base = UINT64_MAX;
    for (size_t i = 0; i < n; i++)
        if (atomic_load_explicit(&t->ev[i].done, memory_order_acquire) && t->ev[i].t0 < base)
            base = t->ev[i].t0;
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
        return tai_error(TINYAI_ERR_INVALID_ARG, "trace: path too long");
    FILE *f = fopen(tmp, "w");
    if (!f) return tai_error(TINYAI_ERR_IO, "trace: cannot write '%s': %s", path, strerror(errno));
    fprintf(f, "{\"displayTimeUnit\": \"ms\", \"otherData\": {\"dropped_events\": %zu},\n"
               "\"traceEvents\": [\n{\"ph\": \"M\", \"name\": \"process_name\", \"pid\": 1, "
               "\"args\": {\"name\": \"",
            tai_trace_dropped(t));
    json_text(f, process_name ? process_name : "tinyai");
    fprintf(f, "\"}}");
    /* each thread named after the first kind of work seen on it */
    int named[256];
    int n_named = 0;
    for (size_t i = 0; i < n; i++) {
        const event *e = &t->ev[i];
        if (!atomic_load_explicit(&e->done, memory_order_acquire)) continue;
        bool seen = false;
        for (int k = 0; k < n_named && !seen; k++) seen = named[k] == e->tid;
        if (seen || n_named == 256) continue;
        named[n_named++] = e->tid;
        const char *what = !strcmp(e->cat, "io")         ? "storage loader"
                           : !strcmp(e->cat, "cache")    ? "weight cache"
                                                         : "forward pass";
        fprintf(f, ",\n{\"ph\": \"M\", \"name\": \"thread_name\", \"pid\": 1, \"tid\": %d, "
                   "\"args\": {\"name\": \"%s %d\"}}",
                e->tid, what, e->tid);
    }
    for (size_t i = 0; i < n; i++) {
        const event *e = &t->ev[i];
        if (!atomic_load_explicit(&e->done, memory_order_acquire)) continue;
        fprintf(f, ",\n{\"name\": \"");
        json_text(f, e->name);
        if (e->id >= 0) fprintf(f, " %d", e->id);
        fprintf(f, "\", \"cat\": \"");
        json_text(f, e->cat);
        fprintf(f, "\", \"pid\": 1, \"tid\": %d, \"ts\": %.3f", e->tid, (double)(e->t0 - base) * 1e-3);
        if (e->t1 == UINT64_MAX)
            fprintf(f, ", \"ph\": \"i\", \"s\": \"t\"");
        else
            fprintf(f, ", \"ph\": \"X\", \"dur\": %.3f", (double)(e->t1 - e->t0) * 1e-3);
        if (e->bytes) fprintf(f, ", \"args\": {\"bytes\": %llu}", (unsigned long long)e->bytes);
        fprintf(f, "}");
    }
    fprintf(f, "\n]}\n");
    const bool ok = !ferror(f);
    if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
        const int e = errno;
        unlink(tmp);
        return tai_error(TINYAI_ERR_IO, "trace: cannot write '%s': %s", path, strerror(e));
    }
    return TINYAI_OK;
}
