/* msgport.c — message ports between threads, after AmigaOS Exec's PutMsg/GetMsg/WaitPort.
 *
 * Design: a port is an intrusive FIFO (linked through crow_msg.next, so putting never
 * allocates) in two parts.  Producers never lock: a put pushes the message with one
 * compare-and-swap on IN, a LIFO stack of the newest messages alone on its cache line.
 * Consumers take messages under LOCK: when the outbox (HEAD..TAIL, the oldest messages in
 * order) runs dry they swap the whole stack out and append it reversed, and get_all swaps it
 * to NULL and returns outbox and stack together, so a consumer that is behind costs producers
 * nothing but their one atomic operation.  IN also says whether the port is empty: NULL when
 * both parts are, MARK (a stack of nothing) while only the outbox holds messages, so the put
 * that replaces NULL is exactly the queue's empty to non-empty edge, the only put that
 * signals.  There are two ways to be woken.  Threads blocked in crow_msgport_wait sleep on a
 * futex word (SEQ) and count themselves in NWAITERS, so an edge wakes them with one FUTEX_WAKE
 * and a put nobody waits for makes no system call at all.  Descriptor loops watch the port's
 * eventfd instead: it is written on the edge only while someone can be watching it (a
 * crow_msgport_poll in progress, counted in NPOLLERS, or for good once crow_msgport_fd has
 * handed it out).  A waiter registers, then reads SEQ, then looks at IN; a producer pushes,
 * then reads the registrations and bumps SEQ (all sequentially consistent): either the
 * waiter sees the message or the producer sees the waiter, and a bump after the read makes
 * the futex wait return at once, so no wake-up is lost.  Signals are hints and the queue is
 * the truth, so a stale eventfd count costs one extra loop.  Several waiters on one port are
 * allowed (the thread pool uses that): FUTEX_WAKE wakes one, and a waiter that takes a
 * message and leaves others queued while someone else waits passes the wake-up on.  get and
 * get_all on an empty port and poll's readiness test read IN and never touch the lock; the
 * counters consumers keep are under the lock, and puts are counted as gets plus the queue. */
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
    /* Producers' side, alone on its cache line: the newest message (the inbox is a LIFO
     * stack linked through next), MARK when only the outbox holds messages, NULL when the
     * port is empty. */
    _Atomic(struct crow_msg *) in; /* the port is allocated 64-byte aligned */
    char pad_[64 - sizeof(struct crow_msg *)];
    /* Consumers' side, under LOCK: the oldest messages, in order. */
    pthread_mutex_t lock;
    struct crow_msg *head, *tail;
    size_t nout;                /* messages in head..tail */
    _Atomic unsigned nwaiters;  /* threads inside crow_msgport_wait that found the port empty */
    _Atomic unsigned npollers;  /* threads inside crow_msgport_poll on this port */
    _Atomic int fd_exported;    /* crow_msgport_fd was called: write the eventfd on every edge */
    _Atomic uint32_t seq;       /* futex word: bumped whenever waiters are to be woken */
    _Atomic uint64_t wakeups;   /* edges, counted by the producers that saw them */
    uint64_t gets, drains;      /* under LOCK */
    int efd;
    struct crow_allocator alloc;
};

/* The inbox value meaning "empty, but the outbox is not" (never dereferenced). */
static struct crow_msg mark_msg;
#define MARK (&mark_msg)

struct crow_msgport *crow_msgport_new(const struct crow_allocator *a)
{
    if (!a)
        a = &crow_allocator_default;
    struct crow_msgport *p = crow_alloc(a, sizeof *p, 64);
    if (!p)
        return NULL;
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->efd < 0) {
        int e = errno;
        crow_free(a, p, sizeof *p);
        errno = e;
        return NULL;
    }
    atomic_init(&p->in, NULL);
    pthread_mutex_init(&p->lock, NULL);
    p->head = p->tail = NULL;
    p->nout = 0;
    atomic_init(&p->nwaiters, 0);
    atomic_init(&p->npollers, 0);
    atomic_init(&p->fd_exported, 0);
    atomic_init(&p->seq, 0);
    atomic_init(&p->wakeups, 0);
    p->gets = p->drains = 0;
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
    atomic_store(&p->fd_exported, 1);
    return p->efd;
}

/* Whether P holds a message (the inbox is MARK whenever only the outbox does). */
static int nonempty(const struct crow_msgport *p)
{
    return atomic_load(&((struct crow_msgport *)p)->in) != NULL;
}

/* Messages in the inbox stack from X down; the caller holds the lock, so none is taken
 * meanwhile (producers only push above X). */
static size_t inbox_len(struct crow_msg *x)
{
    size_t n = 0;
    for (; x && x != MARK; x = x->next)
        n++;
    return n;
}

size_t crow_msgport_count(const struct crow_msgport *p)
{
    struct crow_msgport *q = (struct crow_msgport *)p;
    if (!nonempty(q))
        return 0;
    pthread_mutex_lock(&q->lock);
    size_t n = q->nout + inbox_len(atomic_load(&q->in));
    pthread_mutex_unlock(&q->lock);
    return n;
}

void crow_msgport_stats(struct crow_msgport *p, struct crow_msgport_stats *out)
{
    pthread_mutex_lock(&p->lock);
    out->gets = p->gets;
    out->drains = p->drains;
    /* Every message put was either taken or is queued. */
    out->puts = p->gets + p->nout + inbox_len(atomic_load(&p->in));
    out->wakeups = atomic_load(&p->wakeups);
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

/* The put that made the port non-empty signals.  The push was a sequentially consistent
 * read-modify-write, and waiters and pollers register (seq_cst) before they look at the
 * inbox, so either they see the message or this sees them. */
static __attribute__((noinline)) void edge(struct crow_msgport *p)
{
    atomic_fetch_add_explicit(&p->wakeups, 1, memory_order_relaxed);
    if (atomic_load(&p->nwaiters)) {
        atomic_fetch_add(&p->seq, 1);
        wake_one(p);
    }
    if (atomic_load(&p->fd_exported) || atomic_load(&p->npollers))
        signal_fd(p);
}

/* Pushes NEWEST..OLDEST (linked newest to oldest through next) on the inbox; returns whether
 * the port was empty. */
static inline int push(struct crow_msgport *p, struct crow_msg *newest, struct crow_msg *oldest)
{
    struct crow_msg *old = atomic_load_explicit(&p->in, memory_order_relaxed);
    do
        oldest->next = old == MARK ? NULL : old;
    while (!atomic_compare_exchange_weak_explicit(&p->in, &old, newest, memory_order_seq_cst,
                                                  memory_order_relaxed));
    return old == NULL;
}

void crow_msgport_put(struct crow_msgport *p, struct crow_msg *m)
{
    if (CROW_UNLIKELY(push(p, m, m)))
        edge(p);
}

size_t crow_msgport_put_all(struct crow_msgport *p, struct crow_msg *list)
{
    if (!list)
        return 0;
    /* The inbox holds the newest first: reverse the list before pushing it whole. */
    size_t n = 0;
    struct crow_msg *rev = NULL, *oldest = list;
    while (list) {
        struct crow_msg *next = list->next;
        list->next = rev;
        rev = list;
        list = next;
        n++;
    }
    if (push(p, rev, oldest))
        edge(p);
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

/* Appends the inbox stack X (newest first, ending at NULL) to the outbox, oldest first; the
 * caller holds the lock. */
static void append_inbox(struct crow_msgport *p, struct crow_msg *x)
{
    struct crow_msg *first = NULL, *last = x;
    size_t n = 0;
    while (x) {
        struct crow_msg *next = x->next;
        x->next = first;
        first = x;
        x = next;
        n++;
    }
    if (!n)
        return;
    if (p->tail)
        p->tail->next = first;
    else
        p->head = first;
    p->tail = last;
    p->nout += n;
}

/* Takes the oldest message; the caller holds the lock. */
static struct crow_msg *pop_locked(struct crow_msgport *p)
{
    if (!p->head) {
        /* Move the inbox across, leaving MARK: the outbox is about to be non-empty. */
        if (atomic_load_explicit(&p->in, memory_order_acquire) == NULL)
            return NULL;
        struct crow_msg *x = atomic_exchange(&p->in, MARK);
        append_inbox(p, x == MARK ? NULL : x);
    }
    struct crow_msg *m = p->head;
    p->head = m->next;
    m->next = NULL;
    p->nout--;
    p->gets++;
    if (!p->head) {
        p->tail = NULL;
        /* The outbox is empty: the port is empty unless producers pushed since. */
        struct crow_msg *expect = MARK;
        atomic_compare_exchange_strong(&p->in, &expect, NULL);
    }
    return m;
}

struct crow_msg *crow_msgport_get(struct crow_msgport *p)
{
    if (!nonempty(p))
        return NULL;
    pthread_mutex_lock(&p->lock);
    struct crow_msg *m = pop_locked(p);
    pthread_mutex_unlock(&p->lock);
    return m;
}

struct crow_msg *crow_msgport_get_all(struct crow_msgport *p, size_t *n)
{
    if (!nonempty(p)) {
        if (n)
            *n = 0;
        return NULL;
    }
    pthread_mutex_lock(&p->lock);
    struct crow_msg *x = atomic_exchange(&p->in, NULL);
    append_inbox(p, x == MARK ? NULL : x);
    struct crow_msg *m = p->head;
    size_t k = p->nout;
    p->head = p->tail = NULL;
    p->nout = 0;
    p->gets += k;
    p->drains += m != NULL;
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
        if (registered)
            atomic_fetch_sub(&p->nwaiters, 1);
        *pass_on = nonempty(p) && atomic_load(&p->nwaiters);
        if (*pass_on)
            atomic_fetch_add(&p->seq, 1);
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
            atomic_fetch_add(&p->nwaiters, 1), registered = 1;
        /* Registered, then SEQ read, then the inbox looked at again (all seq_cst): a put
         * that the look missed sees us and bumps SEQ after we read it. */
        uint32_t seen = atomic_load(&p->seq);
        int again = nonempty(p);
        pthread_mutex_unlock(&p->lock);
        if (again)
            continue;

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
                atomic_fetch_sub(&p->nwaiters, 1);
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
    for (size_t i = 0; i < nports; i++)
        atomic_fetch_add(&ports[i]->npollers, 1); /* before any look at the inbox */
    for (;;) {
        /* Ports are level-triggered: a non-empty port is ready whatever its eventfd says. */
        int ready_ports = 0;
        for (size_t i = 0; i < nports; i++)
            ready_ports += nonempty(ports[i]);
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
            ready_ports += nonempty(p);
        }
        result = ready_fds + ready_ports;
        if (result > 0 || left_ms(deadline) == 0)
            break;
    }
    int e = errno;
    for (size_t i = 0; i < nports; i++)
        atomic_fetch_sub(&ports[i]->npollers, 1);
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
