/* msgport.c — message ports between threads, after AmigaOS Exec's PutMsg/GetMsg/WaitPort.
 *
 * Design: a port is a mutex-protected intrusive FIFO (head/tail through crow_msg.next, so
 * putting never allocates) plus an eventfd as its signal.  The eventfd is written only when
 * the queue goes from empty to non-empty: a consumer that is behind costs producers nothing
 * but the lock, and get_all takes the whole backlog under one lock.  Waiting is poll(2) on
 * the eventfd, then a non-blocking read to clear it, then a fresh look at the queue: the
 * signal is a hint, the queue under the lock is the truth, so a stale count (messages taken
 * with get without waiting) costs one extra loop and never a lost wake-up, because a message
 * is always queued before its signal is written and the queue is always re-read after the
 * signal is cleared.  The same eventfd lets an epoll loop (or crow_msgport_poll) wait on
 * descriptors and ports together.  Several waiters on one port are allowed (the thread pool
 * uses that): a waiter registers itself under the lock when it finds the queue empty, and a
 * waiter that takes a message and leaves others queued while someone is registered writes
 * the eventfd again, since the signal it consumed may have been the only one.  COUNT is an
 * atomic mirror of the queue length so poll can test emptiness without the lock. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "crow.h"
#include "msgport.h"

/* Above this many fds + ports, crow_msgport_poll refuses (EINVAL) rather than allocate
 * without bound; up to STACK_POLL entries it needs no allocation at all. */
#define MAX_POLL 4096
#define STACK_POLL 32

struct crow_msgport {
    pthread_mutex_t lock;
    struct crow_msg *head, *tail;
    _Atomic size_t count;
    unsigned nwaiters; /* threads inside crow_msgport_wait that found the queue empty */
    int efd;
    struct crow_msgport_stats st;
    struct crow_allocator alloc;
};

struct crow_msgport *crow_msgport_new(const struct crow_allocator *a)
{
    if (!a)
        a = &crow_allocator_default;
    struct crow_msgport *p = crow_alloc(a, sizeof *p, 0);
    if (!p)
        return NULL;
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->efd < 0) {
        int e = errno;
        crow_free(a, p, sizeof *p);
        errno = e;
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    p->head = p->tail = NULL;
    atomic_init(&p->count, 0);
    p->nwaiters = 0;
    p->st = (struct crow_msgport_stats){0, 0, 0, 0};
    p->alloc = *a;
    return p;
}

void crow_msgport_free(struct crow_msgport *p)
{
    if (!p)
        return;
    close(p->efd);
    pthread_mutex_destroy(&p->lock);
    struct crow_allocator a = p->alloc;
    crow_free(&a, p, sizeof *p);
}

int crow_msgport_fd(const struct crow_msgport *p) { return p->efd; }

size_t crow_msgport_count(const struct crow_msgport *p)
{
    return atomic_load_explicit(&((struct crow_msgport *)p)->count, memory_order_acquire);
}

void crow_msgport_stats(struct crow_msgport *p, struct crow_msgport_stats *out)
{
    pthread_mutex_lock(&p->lock);
    *out = p->st;
    pthread_mutex_unlock(&p->lock);
}

/* The eventfd counter cannot overflow in practice (2^64-2 signals without a read), so the
 * only failure left is EINTR. */
static void signal_port(struct crow_msgport *p)
{
    uint64_t one = 1;
    CROW_UNUSED ssize_t r = CROW_RETRY(write(p->efd, &one, sizeof one));
}

static void clear_signal(struct crow_msgport *p)
{
    uint64_t v;
    CROW_UNUSED ssize_t r = CROW_RETRY(read(p->efd, &v, sizeof v));
}

void crow_msgport_put(struct crow_msgport *p, struct crow_msg *m)
{
    m->next = NULL;
    pthread_mutex_lock(&p->lock);
    int was_empty = p->head == NULL;
    if (was_empty)
        p->head = m;
    else
        p->tail->next = m;
    p->tail = m;
    atomic_store_explicit(&p->count, atomic_load_explicit(&p->count, memory_order_relaxed) + 1,
                          memory_order_release);
    p->st.puts++;
    p->st.wakeups += was_empty;
    pthread_mutex_unlock(&p->lock);
    if (was_empty)
        signal_port(p);
}

size_t crow_msgport_put_all(struct crow_msgport *p, struct crow_msg *list)
{
    if (!list)
        return 0;
    size_t n = 1;
    struct crow_msg *last = list;
    while (last->next)
        last = last->next, n++;
    pthread_mutex_lock(&p->lock);
    int was_empty = p->head == NULL;
    if (was_empty)
        p->head = list;
    else
        p->tail->next = list;
    p->tail = last;
    atomic_store_explicit(&p->count, atomic_load_explicit(&p->count, memory_order_relaxed) + n,
                          memory_order_release);
    p->st.puts += n;
    p->st.wakeups += was_empty;
    pthread_mutex_unlock(&p->lock);
    if (was_empty)
        signal_port(p);
    return n;
}

int crow_msgport_reply(struct crow_msg *m)
{
    if (!m->reply_port) {
        errno = EINVAL;
        return -1;
    }
    crow_msgport_put(m->reply_port, m);
    return 0;
}

/* Takes the head; the caller holds the lock. */
static struct crow_msg *pop_locked(struct crow_msgport *p)
{
    struct crow_msg *m = p->head;
    if (m) {
        p->head = m->next;
        if (!p->head)
            p->tail = NULL;
        m->next = NULL;
        atomic_store_explicit(&p->count,
                              atomic_load_explicit(&p->count, memory_order_relaxed) - 1,
                              memory_order_release);
        p->st.gets++;
    }
    return m;
}

struct crow_msg *crow_msgport_get(struct crow_msgport *p)
{
    pthread_mutex_lock(&p->lock);
    struct crow_msg *m = pop_locked(p);
    pthread_mutex_unlock(&p->lock);
    return m;
}

struct crow_msg *crow_msgport_get_all(struct crow_msgport *p, size_t *n)
{
    pthread_mutex_lock(&p->lock);
    struct crow_msg *m = p->head;
    size_t k = atomic_load_explicit(&p->count, memory_order_relaxed);
    p->head = p->tail = NULL;
    atomic_store_explicit(&p->count, 0, memory_order_release);
    p->st.gets += k;
    p->st.drains += m != NULL;
    pthread_mutex_unlock(&p->lock);
    if (n)
        *n = k;
    return m;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until DEADLINE (-1 means none: returns -1). */
static int left_ms(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t d = deadline - now_ms();
    return d > 0 ? (int)(d > INT32_MAX ? INT32_MAX : d) : 0;
}

struct crow_msg *crow_msgport_wait(struct crow_msgport *p, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    int registered = 0;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        struct crow_msg *m = pop_locked(p);
        if (m) {
            p->nwaiters -= registered;
            int pass_on = p->head && p->nwaiters;
            p->st.wakeups += pass_on;
            pthread_mutex_unlock(&p->lock);
            if (pass_on)
                signal_port(p);
            return m;
        }
        if (!registered)
            p->nwaiters++, registered = 1;
        pthread_mutex_unlock(&p->lock);

        struct pollfd pfd = {p->efd, POLLIN, 0};
        int left = left_ms(deadline);
        int r = left == 0 ? 0 : poll(&pfd, 1, left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = r == 0 ? ETIMEDOUT : errno;
            pthread_mutex_lock(&p->lock);
            p->nwaiters--;
            pthread_mutex_unlock(&p->lock);
            errno = e;
            return NULL;
        }
        clear_signal(p);
    }
}

int crow_msgport_poll(struct pollfd *fds, nfds_t nfds, struct crow_msgport *const *ports,
                      size_t nports, int timeout_ms)
{
    if (nfds > MAX_POLL || nports > MAX_POLL - nfds) {
        errno = EINVAL;
        return -1;
    }
    size_t total = nfds + nports;
    struct pollfd stack[STACK_POLL], *all = stack;
    if (total > STACK_POLL && !(all = malloc(total * sizeof *all))) {
        errno = ENOMEM;
        return -1;
    }
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    int result;
    for (;;) {
        /* Ports are level-triggered: a non-empty port is ready whatever its eventfd says. */
        int ready_ports = 0;
        for (size_t i = 0; i < nports; i++)
            ready_ports += crow_msgport_count(ports[i]) > 0;
        for (size_t i = 0; i < nfds; i++)
            all[i] = fds[i], all[i].revents = 0;
        for (size_t i = 0; i < nports; i++)
            all[nfds + i] = (struct pollfd){ports[i]->efd, POLLIN, 0};
        int left = ready_ports ? 0 : left_ms(deadline);
        int r = poll(all, total, left);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            result = -1;
            break;
        }
        int ready_fds = 0;
        for (size_t i = 0; i < nfds; i++) {
            fds[i].revents = all[i].revents;
            ready_fds += all[i].revents != 0;
        }
        ready_ports = 0;
        for (size_t i = 0; i < nports; i++) {
            struct crow_msgport *p = ports[i];
            if (all[nfds + i].revents)
                clear_signal(p);
            if (crow_msgport_count(p) > 0) {
                ready_ports++;
                /* The signal just cleared may have been meant for a thread in wait. */
                pthread_mutex_lock(&p->lock);
                int pass_on = all[nfds + i].revents && p->head && p->nwaiters;
                p->st.wakeups += pass_on;
                pthread_mutex_unlock(&p->lock);
                if (pass_on)
                    signal_port(p);
            }
        }
        result = ready_fds + ready_ports;
        if (result > 0 || left_ms(deadline) == 0)
            break;
    }
    if (all != stack) {
        int e = errno;
        free(all);
        errno = e;
    }
    return result;
}

int crow_msgport_sleep(struct crow_msgport *p, int ms)
{
    if (ms < 0) {
        errno = EINVAL;
        return -1;
    }
    int r = crow_msgport_poll(NULL, 0, p ? &p : NULL, p ? 1 : 0, ms);
    return r < 0 ? -1 : r > 0;
}
