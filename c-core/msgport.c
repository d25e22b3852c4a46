/* msgport.c — message ports between threads, after AmigaOS Exec's PutMsg/GetMsg/WaitPort.
 *
 * Design: a port is a mutex-protected intrusive FIFO (head/tail through crow_msg.next, so
 * putting never allocates) with two ways to be woken, used only on the queue's empty to
 * non-empty edge: a consumer that is behind costs producers nothing but the lock, and
 * get_all takes the whole backlog under one lock.  Threads blocked in crow_msgport_wait sleep
 * on a futex word (SEQ) and register under the lock (NWAITERS), so a put wakes them with one
 * FUTEX_WAKE and a put nobody waits for makes no system call at all.  Descriptor loops watch
 * the port's eventfd instead: it is written on the edge only while someone can be watching it
 * (a crow_msgport_poll in progress, counted in NPOLLERS, or for good once crow_msgport_fd has
 * handed it out).  Either way a waiter registers and reads SEQ (or the queue length) before
 * it sleeps and a producer queues before it signals, so no wake-up is lost; signals are hints
 * and the queue under the lock is the truth, so a stale eventfd count costs one extra loop.
 * Several waiters on one port are allowed (the thread pool uses that): FUTEX_WAKE wakes one,
 * and a waiter that takes a message and leaves others queued while someone else waits passes
 * the wake-up on.  COUNT is an atomic mirror of the queue length, so get/get_all on an empty
 * port and poll's readiness test never touch the lock. */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
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
    unsigned npollers; /* threads inside crow_msgport_poll on this port */
    int fd_exported;   /* crow_msgport_fd was called: write the eventfd on every edge */
    _Atomic uint32_t seq; /* futex word: bumped whenever waiters are to be woken */
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
    p->nwaiters = p->npollers = 0;
    p->fd_exported = 0;
    atomic_init(&p->seq, 0);
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

int crow_msgport_fd(struct crow_msgport *p)
{
    pthread_mutex_lock(&p->lock);
    p->fd_exported = 1;
    pthread_mutex_unlock(&p->lock);
    return p->efd;
}

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
static void signal_fd(struct crow_msgport *p)
{
    uint64_t one = 1;
    CROW_UNUSED ssize_t r = CROW_RETRY(write(p->efd, &one, sizeof one));
}

static void clear_signal(struct crow_msgport *p)
{
    uint64_t v;
    CROW_UNUSED ssize_t r = CROW_RETRY(read(p->efd, &v, sizeof v));
}

static void wake_one(struct crow_msgport *p)
{
    syscall(SYS_futex, (uint32_t *)&p->seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* What a put must signal after unlocking; decided under the lock. */
enum { SIG_FD = 1, SIG_WAITER = 2 };

/* Appends FIRST..LAST (N messages, linked); the caller holds the lock. */
static int append_locked(struct crow_msgport *p, struct crow_msg *first, struct crow_msg *last,
                         size_t n)
{
    int was_empty = p->head == NULL;
    if (was_empty)
        p->head = first;
    else
        p->tail->next = first;
    p->tail = last;
    atomic_store_explicit(&p->count, atomic_load_explicit(&p->count, memory_order_relaxed) + n,
                          memory_order_release);
    p->st.puts += n;
    if (!was_empty)
        return 0;
    p->st.wakeups++;
    int sig = (p->fd_exported || p->npollers) ? SIG_FD : 0;
    if (p->nwaiters) {
        atomic_fetch_add_explicit(&p->seq, 1, memory_order_relaxed);
        sig |= SIG_WAITER;
    }
    return sig;
}

static void send_signals(struct crow_msgport *p, int sig)
{
    if (sig & SIG_WAITER)
        wake_one(p);
    if (sig & SIG_FD)
        signal_fd(p);
}

void crow_msgport_put(struct crow_msgport *p, struct crow_msg *m)
{
    m->next = NULL;
    pthread_mutex_lock(&p->lock);
    int sig = append_locked(p, m, m, 1);
    pthread_mutex_unlock(&p->lock);
    if (CROW_UNLIKELY(sig))
        send_signals(p, sig);
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
    int sig = append_locked(p, list, last, n);
    pthread_mutex_unlock(&p->lock);
    if (sig)
        send_signals(p, sig);
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
    if (atomic_load_explicit(&p->count, memory_order_acquire) == 0)
        return NULL;
    pthread_mutex_lock(&p->lock);
    struct crow_msg *m = pop_locked(p);
    pthread_mutex_unlock(&p->lock);
    return m;
}

struct crow_msg *crow_msgport_get_all(struct crow_msgport *p, size_t *n)
{
    if (atomic_load_explicit(&p->count, memory_order_acquire) == 0) {
        if (n)
            *n = 0;
        return NULL;
    }
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

/* Takes the head for a waiter and passes the wake-up on when others wait for what is left;
 * the caller holds the lock and unlocks after. */
static struct crow_msg *take_locked(struct crow_msgport *p, int registered, int *pass_on)
{
    struct crow_msg *m = pop_locked(p);
    if (m) {
        p->nwaiters -= registered;
        *pass_on = p->head && p->nwaiters;
        if (*pass_on)
            atomic_fetch_add_explicit(&p->seq, 1, memory_order_relaxed);
    }
    return m;
}

struct crow_msg *crow_msgport_wait(struct crow_msgport *p, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    int registered = 0, pass_on = 0;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        struct crow_msg *m = take_locked(p, registered, &pass_on);
        if (m) {
            pthread_mutex_unlock(&p->lock);
            if (pass_on)
                wake_one(p);
            return m;
        }
        if (!registered)
            p->nwaiters++, registered = 1;
        uint32_t seen = atomic_load_explicit(&p->seq, memory_order_relaxed);
        pthread_mutex_unlock(&p->lock);

        int left = left_ms(deadline);
        long r = -1;
        errno = ETIMEDOUT;
        if (left != 0) {
            struct timespec ts = {left / 1000, (long)(left % 1000) * 1000000};
            /* Returns at a wake-up, at once when SEQ moved since we looked (EAGAIN), on
             * EINTR or at the timeout: every case re-reads the queue. */
            r = syscall(SYS_futex, (uint32_t *)&p->seq, FUTEX_WAIT_PRIVATE, seen,
                        left < 0 ? NULL : &ts, NULL, 0);
        }
        if (r < 0 && errno != EAGAIN && errno != EINTR) {
            /* Time is up (or the futex failed): a message that arrived meanwhile still wins. */
            int e = errno == ETIMEDOUT ? ETIMEDOUT : errno;
            pthread_mutex_lock(&p->lock);
            m = take_locked(p, registered, &pass_on);
            if (!m)
                p->nwaiters--;
            pthread_mutex_unlock(&p->lock);
            if (pass_on)
                wake_one(p);
            if (!m)
                errno = e;
            return m;
        }
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
    for (size_t i = 0; i < nports; i++) {
        pthread_mutex_lock(&ports[i]->lock);
        ports[i]->npollers++;
        pthread_mutex_unlock(&ports[i]->lock);
    }
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
            ready_ports += crow_msgport_count(p) > 0;
        }
        result = ready_fds + ready_ports;
        if (result > 0 || left_ms(deadline) == 0)
            break;
    }
    int e = errno;
    for (size_t i = 0; i < nports; i++) {
        pthread_mutex_lock(&ports[i]->lock);
        ports[i]->npollers--;
        pthread_mutex_unlock(&ports[i]->lock);
    }
    if (all != stack)
        free(all);
    errno = e;
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
