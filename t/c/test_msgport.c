/* test_msgport.c — message ports: ordering, reply round trips, waits, wake-up counting,
 * batch drains, poll over a pipe and ports, sleep, threaded stress, allocation failure. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "failalloc.h"
#include "msgport.h"
#include "tap.h"

struct item {
    struct crow_msg msg;
    int value;
    int from;
};

#define ITEM(m) ((struct item *)(void *)(m))

static int64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ---- a server thread that adds one and replies, until it gets value -1 */
static void *adder(void *arg)
{
    struct crow_msgport *p = arg;
    for (;;) {
        struct crow_msg *m = crow_msgport_wait(p, 10000);
        if (!m)
            return (void *)1;
        int stop = ITEM(m)->value == -1;
        ITEM(m)->value++;
        if (crow_msgport_reply(m) < 0)
            return (void *)2;
        if (stop)
            return NULL;
    }
}

/* ---- put something on a port after a delay */
struct delayed {
    struct crow_msgport *p;
    struct item it;
    int ms;
};

static void *put_later(void *arg)
{
    struct delayed *d = arg;
    nap_ms(d->ms);
    crow_msgport_put(d->p, &d->it.msg);
    return NULL;
}

/* ---- stress: several producers, one draining consumer */
enum { PRODUCERS = 4, PER_PRODUCER = 20000 };
struct producer {
    struct crow_msgport *p;
    struct item *items;
    int id;
};

static void *produce(void *arg)
{
    struct producer *pr = arg;
    for (int i = 0; i < PER_PRODUCER; i++) {
        pr->items[i].value = i;
        pr->items[i].from = pr->id;
        crow_msgport_put(pr->p, &pr->items[i].msg);
    }
    return NULL;
}

/* ---- stress: several waiters on one port */
enum { WAITERS = 3, MC_MESSAGES = 30000 };
struct waiter {
    struct crow_msgport *p;
    atomic_int *seen;
    int taken;
    int failed;
};

static void *take(void *arg)
{
    struct waiter *w = arg;
    for (;;) {
        struct crow_msg *m = crow_msgport_wait(w->p, 10000);
        if (!m) {
            w->failed = 1; /* a lost wake-up shows up as this timeout */
            return NULL;
        }
        if (ITEM(m)->value < 0)
            return NULL;
        atomic_fetch_add(&w->seen[ITEM(m)->value], 1);
        w->taken++;
    }
}

/* ---- one message each: a waiter that got its message does not come back for more */
struct one_shot {
    struct crow_msgport *p;
    struct crow_msg *got;
};

static void *take_one(void *arg)
{
    struct one_shot *o = arg;
    o->got = crow_msgport_wait(o->p, 3000);
    return NULL;
}

int main(void)
{
    struct crow_msgport_stats st;
    struct item it[8];
    size_t n;

    /* ---- basics */
    struct crow_msgport *p = crow_msgport_new(NULL);
    ok(p != NULL, "new port");
    ok(crow_msgport_fd(p) >= 0, "port has an eventfd");
    ok(crow_msgport_get(p) == NULL, "get on an empty port is NULL");
    n = 99;
    ok(crow_msgport_get_all(p, &n) == NULL && n == 0, "get_all on an empty port: NULL, 0");

    for (int i = 0; i < 5; i++) {
        it[i].value = i * 10;
        it[i].msg.reply_port = NULL;
        crow_msgport_put(p, &it[i].msg);
    }
    is_int(crow_msgport_count(p), 5, "count after 5 puts");
    crow_msgport_stats(p, &st);
    is_int(st.puts, 5, "stat puts");
    is_int(st.wakeups, 1, "5 puts on an empty port wake once");
    int order = 1;
    for (int i = 0; i < 5; i++) {
        struct crow_msg *m = crow_msgport_get(p);
        order &= m == &it[i].msg && ITEM(m)->value == i * 10;
    }
    ok(order, "get returns messages in put order");
    ok(crow_msgport_get(p) == NULL, "empty after taking all");

    /* ---- wake only on empty -> non-empty */
    crow_msgport_put(p, &it[0].msg);
    crow_msgport_put(p, &it[1].msg);
    crow_msgport_get(p);
    crow_msgport_put(p, &it[2].msg); /* queue still held it[1]: no signal */
    crow_msgport_stats(p, &st);
    is_int(st.wakeups, 2, "put on a non-empty port does not signal");
    crow_msgport_get(p);
    crow_msgport_get(p);
    crow_msgport_put(p, &it[3].msg);
    crow_msgport_stats(p, &st);
    is_int(st.wakeups, 3, "put after draining signals again");
    struct pollfd pf = {crow_msgport_fd(p), POLLIN, 0};
    ok(poll(&pf, 1, 0) == 1, "the exported eventfd is readable after a put");
    uint64_t ev;
    ok(read(pf.fd, &ev, sizeof ev) == sizeof ev, "read the eventfd");
    crow_msgport_put(p, &it[4].msg);
    ok(poll(&pf, 1, 0) == 0, "a put on a non-empty port does not write the eventfd");
    crow_msgport_get(p);
    crow_msgport_get(p);

    /* ---- batch drain and batch put */
    for (int i = 0; i < 6; i++)
        crow_msgport_put(p, &it[i].msg);
    struct crow_msg *list = crow_msgport_get_all(p, &n);
    is_int(n, 6, "get_all count");
    int k = 0;
    order = 1;
    for (struct crow_msg *m = list; m; m = m->next, k++)
        order &= m == &it[k].msg;
    ok(order && k == 6, "get_all list in order, NULL-terminated");
    is_int(crow_msgport_count(p), 0, "port empty after get_all");
    crow_msgport_stats(p, &st);
    is_int(st.drains, 1, "one drain counted");
    is_int(st.gets, 5 + 3 + 2 + 6, "gets counted across get and get_all");
    /* list is still linked in order: put it back in one go */
    is_int(crow_msgport_put_all(p, list), 6, "put_all puts the whole list");
    crow_msgport_stats(p, &st);
    is_int(st.wakeups, 5, "put_all signals once");
    is_int(crow_msgport_put_all(p, NULL), 0, "put_all of NULL is 0");
    order = 1;
    for (int i = 0; i < 6; i++)
        order &= crow_msgport_get(p) == &it[i].msg;
    ok(order, "put_all keeps the order");

    /* ---- reply contract */
    it[0].msg.reply_port = NULL;
    errno = 0;
    ok(crow_msgport_reply(&it[0].msg) == -1 && errno == EINVAL, "reply without a port: EINVAL");
    is_int(crow_msgport_count(p), 0, "failed reply put nothing");

    /* ---- wait with timeout */
    int64_t t0 = ms_now();
    errno = 0;
    ok(crow_msgport_wait(p, 80) == NULL && errno == ETIMEDOUT, "wait times out: ETIMEDOUT");
    ok(ms_now() - t0 >= 75, "wait waited its timeout (%lld ms)", (long long)(ms_now() - t0));
    errno = 0;
    ok(crow_msgport_wait(p, 0) == NULL && errno == ETIMEDOUT, "wait 0 on empty: ETIMEDOUT");
    crow_msgport_put(p, &it[0].msg);
    ok(crow_msgport_wait(p, 0) == &it[0].msg, "wait 0 on non-empty returns the message");
    /* a stale signal (put + get without wait) must not make wait return early or NULL */
    crow_msgport_put(p, &it[0].msg);
    crow_msgport_get(p);
    t0 = ms_now();
    ok(crow_msgport_wait(p, 60) == NULL && ms_now() - t0 >= 55,
       "a stale signal does not end a wait early");

    /* ---- wait woken by another thread */
    pthread_t th;
    struct delayed d = {p, {{NULL, NULL}, 7, 0}, 50};
    pthread_create(&th, NULL, put_later, &d);
    t0 = ms_now();
    struct crow_msg *m = crow_msgport_wait(p, 10000);
    ok(m == &d.it.msg && ms_now() - t0 < 5000, "wait wakes when another thread puts");
    pthread_join(th, NULL);

    /* ---- reply round trip between threads */
    struct crow_msgport *server = crow_msgport_new(NULL), *mine = crow_msgport_new(NULL);
    pthread_create(&th, NULL, adder, server);
    int good = 1;
    for (int i = 0; i < 2000; i++) {
        struct item x = {{NULL, mine}, i, 0};
        crow_msgport_put(server, &x.msg);
        struct crow_msg *r = crow_msgport_wait(mine, 10000);
        good &= r == &x.msg && x.value == i + 1;
    }
    ok(good, "2000 request/reply round trips through two ports");
    struct item stop = {{NULL, mine}, -1, 0};
    crow_msgport_put(server, &stop.msg);
    ok(crow_msgport_wait(mine, 10000) == &stop.msg, "server replied to the stop message");
    void *rv;
    pthread_join(th, &rv);
    ok(rv == NULL, "server thread exited cleanly");
    crow_msgport_stats(mine, &st);
    ok(st.wakeups == 2001 && st.puts == 2001, "each reply to an empty port signalled once");

    /* ---- one blocked consumer, a burst of puts: one wake-up */
    struct crow_msgport *q = crow_msgport_new(NULL);
    struct item burst[100];
    for (int i = 0; i < 100; i++)
        burst[i].msg.next = i < 99 ? &burst[i + 1].msg : NULL, burst[i].value = i;
    crow_msgport_put_all(q, &burst[0].msg);
    crow_msgport_stats(q, &st);
    is_int(st.wakeups, 1, "100 messages in one put_all: one wake-up");
    size_t got = 0;
    while (got < 100 && (m = crow_msgport_wait(q, 1000)))
        got++;
    is_int(got, 100, "waiter took all 100");
    crow_msgport_free(q);

    /* ---- stress: 4 producers, one consumer draining in batches */
    q = crow_msgport_new(NULL);
    struct producer prs[PRODUCERS];
    pthread_t pth[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        prs[i] = (struct producer){q, calloc(PER_PRODUCER, sizeof(struct item)), i};
        pthread_create(&pth[i], NULL, produce, &prs[i]);
    }
    int next[PRODUCERS] = {0};
    int in_order = 1, total = 0, batches = 0;
    t0 = ms_now();
    while (total < PRODUCERS * PER_PRODUCER && ms_now() - t0 < 30000) {
        m = crow_msgport_wait(q, 1000);
        if (!m)
            continue;
        struct crow_msg *rest = crow_msgport_get_all(q, NULL);
        m->next = rest;
        batches++;
        for (; m; m = m->next, total++) {
            struct item *x = ITEM(m);
            in_order &= x->value == next[x->from]++;
        }
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(pth[i], NULL);
    is_int(total, PRODUCERS * PER_PRODUCER, "every message of 4 producers arrived once");
    ok(in_order, "each producer's messages arrived in its order");
    crow_msgport_stats(q, &st);
    ok(st.wakeups <= st.puts && st.gets == st.puts, "stats consistent (%llu wakes, %d batches)",
       (unsigned long long)st.wakeups, batches);
    for (int i = 0; i < PRODUCERS; i++)
        free(prs[i].items);
    crow_msgport_free(q);

    /* ---- stress: 3 waiters on one port, each message to exactly one of them */
    q = crow_msgport_new(NULL);
    struct item *mc = calloc(MC_MESSAGES + WAITERS, sizeof *mc);
    atomic_int *seen = calloc(MC_MESSAGES, sizeof *seen);
    struct waiter ws[WAITERS];
    pthread_t wth[WAITERS];
    for (int i = 0; i < WAITERS; i++) {
        ws[i] = (struct waiter){q, seen, 0, 0};
        pthread_create(&wth[i], NULL, take, &ws[i]);
    }
    for (int i = 0; i < MC_MESSAGES; i++) {
        mc[i].value = i;
        crow_msgport_put(q, &mc[i].msg);
        if (i % 1000 == 999)
            nap_ms(1); /* let the queue run dry now and then, so waiters block */
    }
    for (int i = 0; i < WAITERS; i++) {
        mc[MC_MESSAGES + i].value = -1;
        crow_msgport_put(q, &mc[MC_MESSAGES + i].msg);
    }
    int failed = 0, taken = 0;
    for (int i = 0; i < WAITERS; i++) {
        pthread_join(wth[i], NULL);
        failed |= ws[i].failed;
        taken += ws[i].taken;
    }
    int once = 1;
    for (int i = 0; i < MC_MESSAGES; i++)
        once &= seen[i] == 1;
    ok(!failed, "no waiter timed out (no lost wake-up)");
    ok(once && taken == MC_MESSAGES, "3 waiters: each of %d messages taken exactly once",
       MC_MESSAGES);
    free(mc);
    free(seen);
    crow_msgport_free(q);

    /* ---- two blocked waiters, two messages in one put (one edge): both must wake, so the
     * first passes the wake-up on */
    q = crow_msgport_new(NULL);
    struct one_shot os[2] = {{q, NULL}, {q, NULL}};
    pthread_t oth[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&oth[i], NULL, take_one, &os[i]);
    nap_ms(100); /* both are blocked by now */
    it[0].msg.next = &it[1].msg;
    it[1].msg.next = NULL;
    crow_msgport_put_all(q, &it[0].msg);
    t0 = ms_now();
    for (int i = 0; i < 2; i++)
        pthread_join(oth[i], NULL);
    ok(os[0].got && os[1].got && os[0].got != os[1].got && ms_now() - t0 < 2000,
       "one edge, two messages, two blocked waiters: both woken");
    crow_msgport_free(q);

    /* ---- poll over a pipe and a port */
    int pp[2];
    ok(pipe(pp) == 0, "pipe");
    q = crow_msgport_new(NULL);
    struct pollfd fds[1] = {{pp[0], POLLIN, 0}};
    struct crow_msgport *ports[2] = {q, p};
    is_int(crow_msgport_poll(fds, 1, ports, 2, 0), 0, "poll: nothing ready -> 0");
    t0 = ms_now();
    is_int(crow_msgport_poll(fds, 1, ports, 2, 60), 0, "poll times out -> 0");
    ok(ms_now() - t0 >= 55, "poll waited its timeout");
    ok(write(pp[1], "x", 1) == 1, "write to the pipe");
    ok(crow_msgport_poll(fds, 1, ports, 2, 1000) == 1 && fds[0].revents == POLLIN,
       "poll: pipe ready -> 1, POLLIN");
    crow_msgport_put(q, &it[0].msg);
    is_int(crow_msgport_poll(fds, 1, ports, 2, 1000), 2, "poll: pipe and port ready -> 2");
    char c;
    ok(read(pp[0], &c, 1) == 1, "drain the pipe");
    ok(crow_msgport_poll(fds, 1, ports, 2, 1000) == 1 && fds[0].revents == 0,
       "poll: only the port ready -> 1, pipe revents 0");
    is_int(crow_msgport_count(q), 1, "poll leaves the message queued");
    ok(crow_msgport_poll(fds, 1, ports, 2, 1000) == 1, "a port stays ready until drained");
    crow_msgport_get(q);
    is_int(crow_msgport_poll(fds, 1, ports, 2, 0), 0, "drained port no longer ready");
    d = (struct delayed){p, {{NULL, NULL}, 1, 0}, 50};
    pthread_create(&th, NULL, put_later, &d);
    t0 = ms_now();
    int r = crow_msgport_poll(fds, 1, ports, 2, 10000);
    ok(r == 1 && crow_msgport_count(p) == 1 && ms_now() - t0 < 5000,
       "poll blocked on fds and ports wakes on a put from another thread");
    pthread_join(th, NULL);
    crow_msgport_get(p);
    /* more entries than fit on the stack: the heap path */
    enum { MANY = 40 };
    struct crow_msgport *many[MANY];
    for (int i = 0; i < MANY; i++)
        many[i] = crow_msgport_new(NULL);
    crow_msgport_put(many[MANY - 1], &it[1].msg);
    is_int(crow_msgport_poll(fds, 1, many, MANY, 1000), 1, "poll over 40 ports finds the one");
    for (int i = 0; i < MANY; i++)
        crow_msgport_free(many[i]);
    errno = 0;
    ok(crow_msgport_poll(fds, 1, ports, 5000, 0) == -1 && errno == EINVAL,
       "poll over too many entries: EINVAL");
    struct pollfd bad = {-1, POLLIN, 0};
    is_int(crow_msgport_poll(&bad, 1, NULL, 0, 0), 0, "poll ignores a negative fd like poll(2)");
    close(pp[0]);
    close(pp[1]);

    /* ---- sleep */
    t0 = ms_now();
    is_int(crow_msgport_sleep(q, 60), 0, "sleep on an empty port: 0");
    ok(ms_now() - t0 >= 55, "sleep slept its time");
    t0 = ms_now();
    is_int(crow_msgport_sleep(NULL, 30), 0, "sleep without a port: 0");
    ok(ms_now() - t0 >= 25, "portless sleep slept its time");
    d = (struct delayed){q, {{NULL, NULL}, 1, 0}, 50};
    pthread_create(&th, NULL, put_later, &d);
    t0 = ms_now();
    is_int(crow_msgport_sleep(q, 10000), 1, "sleep woken by a put: 1");
    ok(ms_now() - t0 < 5000, "woke early (%lld ms of 10000)", (long long)(ms_now() - t0));
    pthread_join(th, NULL);
    is_int(crow_msgport_count(q), 1, "sleep leaves the message queued");
    is_int(crow_msgport_sleep(q, 10000), 1, "sleep on a non-empty port returns at once");
    errno = 0;
    ok(crow_msgport_sleep(q, -1) == -1 && errno == EINVAL, "sleep -1: EINVAL");
    crow_msgport_free(q);

    /* ---- failure contracts of new */
    struct failalloc fa = {0, 1, 0, 0, 0};
    struct crow_allocator a = failalloc_make(&fa);
    errno = 0;
    ok(crow_msgport_new(&a) == NULL && errno == ENOMEM, "new: allocation failure -> ENOMEM");
    is_int(fa.live, 0, "nothing leaked");
    struct rlimit rl, low;
    getrlimit(RLIMIT_NOFILE, &rl);
    int probe = dup(0);
    low = rl;
    low.rlim_cur = (rlim_t)probe; /* every lower descriptor is taken, so eventfd must fail */
    close(probe);
    fa = (struct failalloc){0, 0, 0, 0, 0};
    setrlimit(RLIMIT_NOFILE, &low);
    errno = 0;
    struct crow_msgport *none = crow_msgport_new(&a);
    int e = errno;
    setrlimit(RLIMIT_NOFILE, &rl);
    ok(none == NULL && e == EMFILE, "new: out of descriptors -> EMFILE");
    is_int(fa.live, 0, "nothing leaked when eventfd fails");
    fa = (struct failalloc){0, 0, 0, 0, 0};
    q = crow_msgport_new(&a);
    is_int(fa.live, 1, "port allocated through the given allocator");
    crow_msgport_free(q);
    is_int(fa.live, 0, "free returned it");
    crow_msgport_free(NULL);

    crow_msgport_free(server);
    crow_msgport_free(mine);
    crow_msgport_free(p);
    return tap_done();
}
