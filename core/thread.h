/*
 * core/thread.h: helper threads that do not inherit a compute thread's core
 * binding (layer: core).
 *
 * A thread starts with its creator's CPU affinity. Once the CPU device has
 * bound its threads one to a core each (the caller's thread among them),
 * every thread started later from that thread would be held to the same
 * core: storage loaders, the huge-page collapse, the server's threads
 * would all queue behind one compute thread while the other cores idle.
 * Threads that are not compute threads are started with tai_thread_create
 * instead: on the CPUs the process had before the first binding.
 */
#ifndef TAI_CORE_THREAD_H
#define TAI_CORE_THREAD_H

#include <pthread.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Called by a thread before it binds itself to a core: the first call
 * remembers the calling thread's CPUs (the process's, as the user allowed
 * them) for tai_thread_create. Thread-safe. */
void tai_thread_note_binding(void);

/* pthread_create(th, NULL, fn, arg), except that after a binding the new
 * thread runs on the remembered CPUs, not its creator's. Returns 0 or
 * pthread_create's error number. */
int tai_thread_create(pthread_t *th, void *(*fn)(void *), void *arg);

#ifdef __cplusplus
}
#endif

#endif
