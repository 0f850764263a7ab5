/*
 * kernels/pool.c: a small persistent thread pool for the kernels (layer:
 * kernels). Kernels never see threads; callers hand each index a range.
 *
 * Protocol. The caller publishes a job (fn, ctx, pending = n - 1) and bumps a
 * generation counter; each worker waits for the generation to change, runs
 * its index, and decrements `pending`; the one that brings it to zero wakes
 * the caller. Waiting spins briefly first (a job often follows the last one
 * within microseconds during decoding) and then sleeps on a condition
 * variable, so an idle pool costs no CPU.
 *
 * Memory ordering, in one place:
 *  - fn, ctx and pending are written before the release increment of `gen`
 *    (made under `mu`); a worker reads `gen` with acquire (spinning) or under
 *    `mu` (sleeping), so it sees the job that goes with the generation.
 *  - each worker's writes made by fn happen before its acq_rel decrement of
 *    `pending`; the caller reads pending == 0 with acquire (spinning) or under
 *    `mu`, so after tai_pool_run returns the caller sees all results.
 *  - the job fields are rewritten only by the next tai_pool_run, which starts
 *    after pending reached 0, i.e. after every worker stopped reading them.
 *  - no wake-up is lost: a sleeper re-checks its condition under `mu`, and
 *    every change it waits for is followed by a broadcast/signal made while
 *    holding `mu` (the last worker takes `mu` before signalling `done`).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/thread.h"
#include "kernels/kernels.h"

#define SPIN_ITERS 4096 /* a few microseconds of pause before sleeping */

typedef struct {
    tai_pool *pool;
    int index;
} worker_arg;

struct tai_pool {
    int n;                     /* threads in total, the caller included */
    int started;               /* worker threads actually running */
    pthread_t *threads;        /* n - 1 */
    worker_arg *args;          /* n - 1 */
    pthread_mutex_t mu;
    pthread_cond_t wake;       /* gen changed or stop */
    pthread_cond_t done;       /* pending reached 0 */
    atomic_uint_fast64_t gen;  /* job generation */
    atomic_int pending;        /* workers still running the current job */
    atomic_int stop;
    void (*fn)(void *ctx, int i, int n);
    void *ctx;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __asm__ volatile("pause");
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static void *worker_main(void *p) {
    worker_arg *a = p;
    tai_pool *pool = a->pool;
    /* The generation this worker has served. Not read from `gen`: a job may
     * already have been posted before this thread first runs, and it must
     * not be mistaken for an old one. gen is 0 at creation. */
    uint_fast64_t seen = 0;
    for (;;) {
        uint_fast64_t g = seen;
        for (int s = 0; s < SPIN_ITERS; s++) {
            /* acquire pairs with the release increment in tai_pool_run */
            g = atomic_load_explicit(&pool->gen, memory_order_acquire);
            if (g != seen || atomic_load_explicit(&pool->stop, memory_order_relaxed)) break;
            cpu_relax();
        }
        if (g == seen) {
            pthread_mutex_lock(&pool->mu);
            while ((g = atomic_load_explicit(&pool->gen, memory_order_relaxed)) == seen &&
                   !atomic_load_explicit(&pool->stop, memory_order_relaxed))
                pthread_cond_wait(&pool->wake, &pool->mu);
            pthread_mutex_unlock(&pool->mu); /* the mutex orders the job fields */
        }
        if (g == seen) return NULL; /* stop with no new job */
        seen = g;

        pool->fn(pool->ctx, a->index, pool->n);

        /* acq_rel: releases this worker's results to the caller; the last
         * decrement also acquires the others' (release sequence). */
        if (atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool->mu);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->mu);
        }
    }
}

static void stop_and_join(tai_pool *pool) {
    pthread_mutex_lock(&pool->mu);
    atomic_store_explicit(&pool->stop, 1, memory_order_relaxed);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < pool->started; i++) pthread_join(pool->threads[i], NULL);
}

static void free_pool(tai_pool *pool) {
    pthread_cond_destroy(&pool->done);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->mu);
    free(pool->args);
    free(pool->threads);
    free(pool);
}

int tai_pool_create(int n_threads, tai_pool **out) {
    if (out == NULL || n_threads < 1) return -EINVAL;
    *out = NULL;
    tai_pool *pool = calloc(1, sizeof *pool);
    if (pool == NULL) return -ENOMEM;
    pool->n = n_threads;
    atomic_init(&pool->gen, 0);
    atomic_init(&pool->pending, 0);
    atomic_init(&pool->stop, 0);
    int rc = pthread_mutex_init(&pool->mu, NULL);
    if (rc != 0) {
        free(pool);
        return -rc;
    }
    if ((rc = pthread_cond_init(&pool->wake, NULL)) != 0) {
        pthread_mutex_destroy(&pool->mu);
        free(pool);
        return -rc;
    }
    if ((rc = pthread_cond_init(&pool->done, NULL)) != 0) {
        pthread_cond_destroy(&pool->wake);
        pthread_mutex_destroy(&pool->mu);
        free(pool);
        return -rc;
    }
    if (n_threads > 1) {
        pool->threads = calloc((size_t)n_threads - 1, sizeof *pool->threads);
        pool->args = calloc((size_t)n_threads - 1, sizeof *pool->args);
        if (pool->threads == NULL || pool->args == NULL) {
            rc = ENOMEM;
            goto fail;
        }
    }
    for (int i = 0; i < n_threads - 1; i++) {
        pool->args[i].pool = pool;
        pool->args[i].index = i + 1;
        rc = tai_thread_create(&pool->threads[i], worker_main, &pool->args[i]);
        if (rc != 0) goto fail;
        pool->started++;
    }
    *out = pool;
    return 0;

fail:
    stop_and_join(pool); /* the workers already started */
    free_pool(pool);
    return -rc;
}

void tai_pool_destroy(tai_pool *pool) {
    if (pool == NULL) return;
    stop_and_join(pool);
    free_pool(pool);
}

int tai_pool_size(const tai_pool *pool) { return pool ? pool->n : 1; }

void tai_pool_run(tai_pool *pool, void (*fn)(void *ctx, int i, int n), void *ctx) {
    if (pool == NULL || pool->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->ctx = ctx;
    /* relaxed is enough: the release increment below publishes it */
    atomic_store_explicit(&pool->pending, pool->n - 1, memory_order_relaxed);
    pthread_mutex_lock(&pool->mu);
    /* release: pairs with the workers' acquire loads of gen */
    atomic_fetch_add_explicit(&pool->gen, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mu);

    fn(ctx, 0, pool->n);

    for (int s = 0; s < SPIN_ITERS; s++) {
        /* acquire pairs with the workers' acq_rel decrements */
        if (atomic_load_explicit(&pool->pending, memory_order_acquire) == 0) return;
        cpu_relax();
    }
    pthread_mutex_lock(&pool->mu);
    while (atomic_load_explicit(&pool->pending, memory_order_acquire) != 0)
        pthread_cond_wait(&pool->done, &pool->mu);
    pthread_mutex_unlock(&pool->mu);
}
