/* test_tpool.c — the thread pool: every task runs exactly once, replies on a port, waits with
 * timeouts, shutdown runs the queue and joins, ECANCELED while closing, allocation failure. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "failalloc.h"
#include "tpool.h"
#include "tap.h"

struct job {
    struct crow_task task; /* first, so a crow_task* is a job* */
    int index;
    atomic_int *runs;
    struct crow_msgport *gate; /* when set, the job waits for a message here first */
};

static atomic_int concurrent, peak;

static void run_job(struct crow_task *t)
{
    struct job *j = (struct job *)t;
    int c = atomic_fetch_add(&concurrent, 1) + 1;
    int pk = atomic_load(&peak);
    while (c > pk && !atomic_compare_exchange_weak(&peak, &pk, c))
        ;
    if (j->gate)
        crow_msgport_wait(j->gate, 10000);
    atomic_fetch_add(&j->runs[j->index], 1);
    atomic_fetch_sub(&concurrent, 1);
}

struct closer {
    struct crow_tpool *pool;
};

static void *do_shutdown(void *arg)
{
    crow_tpool_shutdown(((struct closer *)arg)->pool);
    return NULL;
}

static void nap_ms(int ms)
{
    struct timespec ts = {0, (long)ms * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int main(void)
{
    errno = 0;
    ok(crow_tpool_new(NULL, 0) == NULL && errno == EINVAL, "0 threads: EINVAL");
    errno = 0;
    ok(crow_tpool_new(NULL, 5000) == NULL && errno == EINVAL, "5000 threads: EINVAL");

    enum { N = 20000 };
    struct crow_tpool *pool = crow_tpool_new(NULL, 4);
    ok(pool != NULL, "pool of 4");
    is_int(crow_tpool_size(pool), 4, "size 4");
    struct job *jobs = calloc(N, sizeof *jobs);
    atomic_int *runs = calloc(N, sizeof *runs);
    int dispatched = 0;
    for (int i = 0; i < N; i++) {
        jobs[i].index = i;
        jobs[i].runs = runs;
        dispatched += crow_tpool_dispatch(pool, &jobs[i].task, run_job, NULL) == 0;
    }
    is_int(dispatched, N, "20000 dispatches accepted");
    int waited = 0;
    for (int i = 0; i < N; i++)
        waited += crow_tpool_wait(&jobs[i].task, 10000) == 0;
    is_int(waited, N, "every task waited for");
    int once = 1;
    for (int i = 0; i < N; i++)
        once &= runs[i] == 1 && crow_tpool_done(&jobs[i].task);
    ok(once, "every task ran exactly once");
    ok(atomic_load(&peak) >= 1 && atomic_load(&peak) <= 4, "at most 4 ran at once (peak %d)",
       atomic_load(&peak));

    errno = 0;
    ok(crow_tpool_dispatch(pool, &jobs[0].task, NULL, NULL) == -1 && errno == EINVAL,
       "dispatch without a function: EINVAL");

    /* completion by reply */
    struct crow_msgport *reply = crow_msgport_new(NULL);
    for (int i = 0; i < 1000; i++) {
        runs[i] = 0;
        crow_tpool_dispatch(pool, &jobs[i].task, run_job, reply);
    }
    int got = 0, right = 1;
    for (int spins = 0; got < 1000 && spins < 2000; spins++) {
        size_t n;
        struct crow_msg *m = crow_msgport_wait(reply, 1000);
        if (!m)
            continue;
        m->next = crow_msgport_get_all(reply, &n);
        for (; m; m = m->next, got++) {
            struct job *j = (struct job *)(void *)m;
            right &= runs[j->index] == 1 && crow_tpool_done(&j->task);
        }
    }
    ok(got == 1000 && right, "1000 tasks each replied once to the reply port, finished");

    /* wait with a timeout on a task held at a gate */
    struct crow_msgport *gate = crow_msgport_new(NULL);
    struct job held = {.index = 0, .runs = runs, .gate = gate};
    runs[0] = 0;
    crow_tpool_dispatch(pool, &held.task, run_job, NULL);
    errno = 0;
    ok(crow_tpool_wait(&held.task, 50) == -1 && errno == ETIMEDOUT, "wait on a held task: ETIMEDOUT");
    ok(!crow_tpool_done(&held.task), "not done yet");
    struct crow_msg open = {NULL, NULL};
    crow_msgport_put(gate, &open);
    ok(crow_tpool_wait(&held.task, 10000) == 0 && runs[0] == 1, "released task completes");
    crow_tpool_shutdown(pool);
    ok(1, "shutdown of an idle pool returned");

    /* shutdown with queued work: everything queued runs; dispatch while closing fails */
    pool = crow_tpool_new(NULL, 2);
    for (int i = 0; i < 2000; i++)
        runs[i] = 0;
    held = (struct job){.index = 0, .runs = runs, .gate = gate};
    crow_tpool_dispatch(pool, &held.task, run_job, NULL);
    for (int i = 1; i < 1999; i++)
        crow_tpool_dispatch(pool, &jobs[i].task, run_job, NULL);
    struct closer cl = {pool};
    pthread_t th;
    pthread_create(&th, NULL, do_shutdown, &cl);
    int rc = 0, tries = 0;
    struct job late = {.index = 1999, .runs = runs};
    for (; tries < 5000; tries++) {
        /* before the closer sets its flag these are accepted and must run too */
        rc = crow_tpool_dispatch(pool, &late.task, run_job, NULL);
        if (rc < 0)
            break;
        crow_tpool_wait(&late.task, -1);
        nap_ms(1);
    }
    int e = errno;
    ok(rc == -1 && e == ECANCELED, "dispatch while shutting down: ECANCELED");
    crow_msgport_put(gate, &open);
    pthread_join(th, NULL);
    once = 1;
    for (int i = 0; i < 1999; i++)
        once &= runs[i] == 1;
    ok(once, "shutdown ran all 1999 queued tasks before joining");
    is_int(runs[1999], tries, "each accepted late dispatch ran once");

    /* allocation failure at each step of new */
    for (long at = 1; at <= 4; at++) {
        struct failalloc fa = {0, at, 0, 0, 0};
        struct crow_allocator a = failalloc_make(&fa);
        errno = 0;
        ok(crow_tpool_new(&a, 3) == NULL && errno == ENOMEM, "allocation %ld fails: ENOMEM", at);
        is_int(fa.live, 0, "nothing leaked");
    }
    struct failalloc fa = {0, 0, 0, 0, 0};
    struct crow_allocator a = failalloc_make(&fa);
    pool = crow_tpool_new(&a, 3);
    ok(pool && fa.live == 4, "pool made through the given allocator (4 blocks)");
    crow_tpool_shutdown(pool);
    is_int(fa.live, 0, "shutdown freed everything");
    crow_tpool_shutdown(NULL);

    crow_msgport_free(gate);
    crow_msgport_free(reply);
    free(jobs);
    free(runs);
    return tap_done();
}
