/* tpool.h — a fixed-size thread pool running dispatched tasks, built on message ports. */
#ifndef CROW_TPOOL_H
#define CROW_TPOOL_H

#include "alloc.h"
#include "msgport.h"

struct crow_tpool;
struct crow_task;

typedef void (*crow_task_fn)(struct crow_task *t);

/* A task.  Embed it in your own struct (container_of it back in FN); the pool never
 * allocates per task.  Fields are the pool's between dispatch and completion. */
struct crow_task {
    struct crow_msg msg;  /* msg.reply_port: where the finished task is replied, or NULL */
    crow_task_fn fn;
    _Atomic int state;    /* 0 queued/running, 1 done, 2 queued/running with a waiter */
};

/* Starts NTHREADS worker threads (1..1024) waiting on one shared port; allocates from A
 * (NULL: the default allocator).  Returns NULL and sets errno: EINVAL for a bad count,
 * ENOMEM, EAGAIN (pthread_create) or eventfd's errors; threads already started are stopped
 * and joined, nothing leaks. */
struct crow_tpool *crow_tpool_new(const struct crow_allocator *a, unsigned nthreads);

/* Queues T to run FN(T) once on some worker.  When REPLY is not NULL the finished task is put
 * on REPLY (as its crow_msg, with crow_msgport_reply); otherwise wait for it with
 * crow_tpool_wait.  T must not be queued already.  Returns 0, or -1 with errno EINVAL (FN
 * NULL) or ECANCELED (the pool is shutting down); T is not queued on failure. */
int crow_tpool_dispatch(struct crow_tpool *pool, struct crow_task *t, crow_task_fn fn,
                        struct crow_msgport *reply);

/* Blocks until T (dispatched without a reply port) has finished, at most TIMEOUT_MS (-1:
 * for ever).  One waiter per task.  Returns 0 when done, or -1 with errno ETIMEDOUT (T still
 * pending, wait again later).  Retries EINTR. */
int crow_tpool_wait(struct crow_task *t, int timeout_ms);

/* Non-zero when T has finished.  Can't fail. */
int crow_tpool_done(const struct crow_task *t);

/* The number of worker threads.  Can't fail. */
unsigned crow_tpool_size(const struct crow_tpool *pool);

/* Stops taking new tasks, lets the workers run every task already queued, joins every thread
 * and frees the pool.  Must not be called from a task.  NULL is ignored.  Can't fail. */
void crow_tpool_shutdown(struct crow_tpool *pool);

#endif
