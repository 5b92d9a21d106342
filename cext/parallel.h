/*
 * Fan-out of independent jobs over threads, shared by the integer networks.
 *
 * Job 0 runs on the calling thread, jobs 1..n-1 on threads of their own; a
 * job whose thread fails to start runs on the caller instead, so every job
 * always runs.  Each job writes only its own outputs, so the results do not
 * depend on the thread count.  Without pthreads every job runs in turn.
 */
#ifndef BLOCKCODEC_PARALLEL_H
#define BLOCKCODEC_PARALLEL_H

#include <stddef.h>

#if defined(__unix__) || defined(__APPLE__)
#define PARALLEL_PTHREADS 1
#include <pthread.h>
#endif

#define PARALLEL_MAX_JOBS 16

/* Runs fn(jobs + i * size) for i in 0..n-1 (n <= PARALLEL_MAX_JOBS). */
static inline void parallel_run(void *(*fn)(void *), void *jobs, size_t size, int n)
{
    char *base = jobs;
#ifdef PARALLEL_PTHREADS
    pthread_t tid[PARALLEL_MAX_JOBS];
    int started[PARALLEL_MAX_JOBS] = {0};
    for (int t = 1; t < n; t++)
        started[t] = pthread_create(&tid[t], NULL, fn, base + size * (size_t)t) == 0;
    for (int t = 1; t < n; t++)
        if (!started[t])
            fn(base + size * (size_t)t);
    fn(base);
    for (int t = 1; t < n; t++)
        if (started[t])
            pthread_join(tid[t], NULL);
#else
    for (int t = 0; t < n; t++)
        fn(base + size * (size_t)t);
#endif
}

#endif
