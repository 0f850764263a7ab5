/*
 * core/thread.c: helper threads on the process's CPUs (core/thread.h)
 * (layer: core).
 */
#include "core/thread.h"

#include <errno.h>
#include <sched.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static cpu_set_t original;
static int have_original;

void tai_thread_note_binding(void) {
    pthread_mutex_lock(&mu);
    if (!have_original && sched_getaffinity(0, sizeof original, &original) == 0)
        have_original = 1;
    pthread_mutex_unlock(&mu);
}

int tai_thread_create(pthread_t *th, void *(*fn)(void *), void *arg) {
    cpu_set_t set;
    pthread_mutex_lock(&mu);
    const int have = have_original;
    if (have) set = original;
    pthread_mutex_unlock(&mu);
    if (!have) return pthread_create(th, NULL, fn, arg);
    pthread_attr_t a;
    int rc = pthread_attr_init(&a);
    if (rc != 0) return rc;
    rc = pthread_attr_setaffinity_np(&a, sizeof set, &set);
    if (rc == 0) rc = pthread_create(th, &a, fn, arg);
    pthread_attr_destroy(&a);
    /* a set the kernel no longer accepts (its CPUs taken offline since):
     * the creator's */
    if (rc == EINVAL) rc = pthread_create(th, NULL, fn, arg);
    return rc;
}
