/* tpool.c — a fixed-size thread pool on a message port.
 *
 * Design: dispatch puts the task's embedded crow_msg on one port that every worker waits on
 * (crow_msgport_wait hands each message to exactly one waiter), so queueing costs one lock
 * and no allocation, and an idle pool is signalled only on the empty-to-non-empty edge.
 * Completion is either a reply (the task's msg goes to the caller's port, which may be
 * polled together with descriptors) or a futex on the task's own state word: the worker
 * exchanges it to done and calls FUTEX_WAKE only if a waiter announced itself, so an
 * unwaited task completes without a system call.  Shutdown queues one stop message per
 * worker behind all queued work (the port is FIFO), so every dispatched task runs before the
 * threads exit and are joined. */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "crow.h"
#include "tpool.h"

#define MAX_THREADS 1024

enum { PENDING = 0, DONE = 1, WAITED = 2 };

struct crow_tpool {
    struct crow_msgport *port;
    pthread_mutex_t lock;       /* orders dispatch against the start of shutdown */
    int closing;
    unsigned nthreads, started;
    pthread_t *threads;
    struct crow_msg *stops;     /* one per thread; identified by address */
    struct crow_allocator alloc;
};

static long futex(_Atomic int *addr, int op, int val, const struct timespec *ts)
{
    return syscall(SYS_futex, (int *)addr, op, val, ts, NULL, 0);
}

static void *worker(void *arg)
{
    struct crow_tpool *pool = arg;
    for (;;) {
        struct crow_msg *m = crow_msgport_wait(pool->port, -1);
        if (!m)
            continue; /* ENOMEM from poll: try again */
        if (m >= pool->stops && m < pool->stops + pool->nthreads)
            return NULL;
        struct crow_task *t = (struct crow_task *)((char *)m - offsetof(struct crow_task, msg));
        struct crow_msgport *reply = t->msg.reply_port;
        t->fn(t);
        /* After the reply or the state change the task belongs to its owner again: touch
         * nothing but the futex word's address below. */
        if (reply) {
            atomic_store_explicit(&t->state, DONE, memory_order_release);
            crow_msgport_put(reply, &t->msg);
        } else if (atomic_exchange_explicit(&t->state, DONE, memory_order_acq_rel) == WAITED) {
            futex(&t->state, FUTEX_WAKE_PRIVATE, 1, NULL);
        }
    }
}

struct crow_tpool *crow_tpool_new(const struct crow_allocator *a, unsigned nthreads)
{
    if (nthreads == 0 || nthreads > MAX_THREADS) {
        errno = EINVAL;
        return NULL;
    }
    if (!a)
        a = &crow_allocator_default;
    struct crow_tpool *pool = crow_alloc(a, sizeof *pool, 0);
    if (!pool)
        return NULL;
    pool->alloc = *a;
    pool->nthreads = nthreads;
    pool->started = 0;
    pool->closing = 0;
    pool->threads = crow_alloc(a, nthreads * sizeof *pool->threads, 0);
    pool->stops = pool->threads ? crow_alloc(a, nthreads * sizeof *pool->stops, 0) : NULL;
    pool->port = pool->stops ? crow_msgport_new(a) : NULL;
    int e = errno;
    if (!pool->port)
        goto fail;
    pthread_mutex_init(&pool->lock, NULL);
    for (; pool->started < nthreads; pool->started++) {
        e = pthread_create(&pool->threads[pool->started], NULL, worker, pool);
        if (e) {
            for (unsigned i = 0; i < pool->started; i++)
                crow_msgport_put(pool->port, &pool->stops[i]);
            for (unsigned i = 0; i < pool->started; i++)
                pthread_join(pool->threads[i], NULL);
            pthread_mutex_destroy(&pool->lock);
            goto fail;
        }
    }
    return pool;
fail:
    crow_msgport_free(pool->port);
    crow_free(a, pool->stops, nthreads * sizeof *pool->stops);
    crow_free(a, pool->threads, nthreads * sizeof *pool->threads);
    crow_free(a, pool, sizeof *pool);
    errno = e;
    return NULL;
}

unsigned crow_tpool_size(const struct crow_tpool *pool) { return pool->nthreads; }

int crow_tpool_dispatch(struct crow_tpool *pool, struct crow_task *t, crow_task_fn fn,
                        struct crow_msgport *reply)
{
    if (!fn) {
        errno = EINVAL;
        return -1;
    }
    t->fn = fn;
    t->msg.reply_port = reply;
    atomic_store_explicit(&t->state, PENDING, memory_order_relaxed);
    pthread_mutex_lock(&pool->lock);
    int closing = pool->closing;
    if (!closing)
        crow_msgport_put(pool->port, &t->msg);
    pthread_mutex_unlock(&pool->lock);
    if (closing) {
        errno = ECANCELED;
        return -1;
    }
    return 0;
}

int crow_tpool_done(const struct crow_task *t)
{
    return atomic_load_explicit(&((struct crow_task *)t)->state, memory_order_acquire) == DONE;
}

int crow_tpool_wait(struct crow_task *t, int timeout_ms)
{
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    if (timeout_ms >= 0) {
        end.tv_sec += timeout_ms / 1000;
        end.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
        if (end.tv_nsec >= 1000000000)
            end.tv_sec++, end.tv_nsec -= 1000000000;
    }
    for (;;) {
        int s = PENDING;
        if (!atomic_compare_exchange_strong_explicit(&t->state, &s, WAITED,
                                                     memory_order_acq_rel, memory_order_acquire)
            && s == DONE)
            return 0;
        struct timespec rel, *relp = NULL;
        if (timeout_ms >= 0) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            rel.tv_sec = end.tv_sec - now.tv_sec;
            rel.tv_nsec = end.tv_nsec - now.tv_nsec;
            if (rel.tv_nsec < 0)
                rel.tv_sec--, rel.tv_nsec += 1000000000;
            if (rel.tv_sec < 0) {
                errno = ETIMEDOUT;
                return -1;
            }
            relp = &rel;
        }
        /* Returns on a wake, on EAGAIN (state already changed), on EINTR, or on timeout;
         * each case goes round and re-reads the state. */
        futex(&t->state, FUTEX_WAIT_PRIVATE, WAITED, relp);
    }
}

void crow_tpool_shutdown(struct crow_tpool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->closing = 1;
    pthread_mutex_unlock(&pool->lock);
    for (unsigned i = 0; i < pool->nthreads; i++)
        crow_msgport_put(pool->port, &pool->stops[i]);
    for (unsigned i = 0; i < pool->nthreads; i++)
        pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->lock);
    crow_msgport_free(pool->port);
    struct crow_allocator a = pool->alloc;
    crow_free(&a, pool->stops, pool->nthreads * sizeof *pool->stops);
    crow_free(&a, pool->threads, pool->nthreads * sizeof *pool->threads);
    crow_free(&a, pool, sizeof *pool);
}
