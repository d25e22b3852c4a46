/* evloop.c — per-thread epoll event loop that frames input into protocol units for Lisp.
 *
 * Design: the loop never calls back.  The worker thread calls crow_ev_next, which runs epoll
 * (edge-triggered, every connection registered once for IN|OUT|RDHUP so no epoll_ctl is ever
 * needed on the hot path) until some connection holds a complete unit — a line, an HTTP
 * request with its body, or a read — and returns it; the caller answers with crow_ev_reply
 * (one writev; what the socket refuses is copied into the connection's output queue and
 * flushed on EPOLLOUT) and calls crow_ev_next again.  Readiness is remembered per connection
 * (can_read / can_write, cleared on EAGAIN or a short read, set by epoll edges), so a request
 * costs one epoll_wait, one read and one writev.  Connections live in a slab pool and are named
 * by an id = generation << 32 | slot: epoll carries the id, not a pointer, so an event queued
 * for a connection closed earlier in the same batch, or a reply from Lisp to a connection that
 * has gone, finds a newer generation and is ignored / gets EBADF.  A connection whose unit is
 * out with the caller gets no further unit (pipelined responses stay in order) but its input
 * is still read into the buffer space it already has (the unit's bytes, at the front of that
 * buffer, must not move).  Framing is incremental: the head search resumes a few bytes before
 * the old end, and chunked bodies are de-chunked in place as they arrive, so the buffer holds
 * head + decoded body + at most one partial chunk line, and the unit is contiguous.  Timeouts
 * use one FIFO list per class (idle, head deadline, write stall): every connection in a class
 * has the same duration, so (re)scheduling is a move to the tail and expiry looks only at the
 * heads.  crow_ev_wake sets an atomic flag and writes an eventfd, so it works from any thread
 * (and from signal handlers); every system call retries EINTR, epoll_wait against the caller's
 * overall deadline.  Admission (admit.h) happens at accept, before the connection costs
 * anything: a refusal gets the configured bytes, best effort, and the close; an admitted
 * connection leaves the table in conn_close, the one place every close path goes through
 * (and in crow_ev_destroy).  Bandwidth: each connection has a token bucket per direction,
 * under its address's shared bucket when the admission table has one; every read, writev and
 * sendfile is cut to what the buckets allow, and a connection whose bucket is empty stops
 * reading (or writing) and arms its timer on the loop's timer wheel for the moment
 * crow_throttle_wait_ns names, so a throttled connection costs no polling.  Memory: a
 * connection holds an input buffer only while it has input (a unit being read, out with the
 * caller, or pipelined bytes); an idle keep-alive connection gives it back, as nginx does, to
 * a small per-loop stack of spare buffers the next read takes from, so 10,000 idle
 * connections cost their struct conn only and the busy path does no malloc.  A large body
 * (an upload) need not be held at all: crow_ev_continue_sink names a sink (c-core/mpart is one)
 * that takes the de-chunked body piece by piece as it is read, so the buffer holds the head and
 * at most SINK_SPAN bytes ahead, and the head deadline restarts with each piece (it bounds the
 * pauses of a slow upload, not its length); the sink goes back to the caller with the REQUEST
 * unit, and is dropped (its DROP frees it) if the connection goes or the body is refused first.
 * An answerer (crow_ev_set_answerer; c-core/fcache is one) may finish a REQUEST unit in C
 * before it would be handed out — a static file Lisp has already decided on: the loop then
 * goes on with the next, returning to epoll after a batch of such answers so wakes, timeouts
 * and new events are never starved. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "admit.h"
#include "crow.h"
#include "evloop.h"
#include "list.h"
#include "pool.h"
#include "throttle.h"
#include "timer.h"
#include "tls.h"

enum { TC_NONE, TC_IDLE, TC_HEAD, TC_WRITE, TC_N };
enum { HS_HEAD, HS_LENGTH, HS_CHUNKED };
enum { CS_SIZE, CS_DATA, CS_DATA_END, CS_TRAILER };

#define TAG_EVENTFD  (1ULL << 62)
#define TAG_LISTENER (1ULL << 63)
#define GEN_MASK     0x3fffffffu
#define NO_SLOT      UINT32_MAX
#define CHUNK_LINE_MAX 1024
#define BATCH        64
#define SPARE_BUFS   16
#define SINK_SPAN    65536 /* a body going to a sink is read at most this far ahead */

struct outbuf {
    struct crow_list_node node;
    int fd;          /* -1: memory data[off..len); else a file: fleft bytes from foff */
    size_t off, len;
    off_t foff;
    size_t fleft;
    char data[];
};

struct conn {
    struct crow_list_node tnode;  /* in ev->tl[tclass] */
    struct crow_list_node rnode;  /* in ev->ready, or ev->closed for a zombie */
    struct crow_list outq;
    int64_t deadline;
    char *buf;
    size_t len, cap, capmax;
    size_t ulen;                  /* bytes of the unit out with the caller */
    size_t scan;                  /* where the terminator search resumes */
    size_t head_len, need, cdst, chunk_left;
    int64_t clen;
    int fd, listener;
    uint32_t idx, gen;
    uint8_t mode, tclass, hstate, cstate;
    unsigned busy : 1, ready : 1, can_read : 1, can_write : 1, eof : 1, hup : 1,
        close_after : 1, zombie : 1, discarding : 1, open_pending : 1, chunked : 1,
        expect : 1, sent_continue : 1, admitted : 1, rthr : 1, wthr : 1, head_unit : 1,
        tcp : 1, corked : 1;
    size_t max_body;              /* this request's body limit (config, or crow_ev_continue) */
    const struct crow_ev_sink *sink; /* crow_ev_continue_sink: the body goes there */
    uint64_t sunk;                /* body bytes the sink has taken */
    char peer[CROW_EV_PEER_MAX];
    struct crow_admit_peer *apeer; /* its entry in cfg.admit while admitted */
    struct crow_throttle tin, tout; /* bandwidth_in/_out (parents: the address's buckets) */
    struct crow_timer tt;          /* throttled: when its buckets have refilled */
    struct crow_tls *tls;          /* a listen-tls connection; NULL when plain */
};

struct listener {
    int fd, mode, flags;
    struct crow_tls_ctx *tls;      /* crow_ev_listen_tls; NULL when plain */
};

struct slot {
    struct conn *c;
    uint32_t gen, next_free;
};

struct crow_ev {
    struct crow_ev_config cfg;
    struct crow_allocator alloc;
    char *refusal, *timeout_reply;
    int epfd, efd;
    struct listener *lst;
    int nlst, paused;
    int64_t pause_until;
    struct slot *slots;
    uint32_t nslots, free_head;
    struct crow_pool *pool;
    struct crow_list ready, closed, tl[TC_N];
    unsigned tms[TC_N];
    int64_t now;
    atomic_int wake;
    struct crow_ev_stats st;
    struct conn *last_zombie;
    struct crow_ev_http http;
    struct crow_ev_header hdrs[CROW_EV_MAX_HEADERS];
    int throttle_in, throttle_out; /* some connection may be limited in that direction */
    struct crow_timer_wheel wheel; /* throttle timers (1 ms ticks) */
    time_t date_sec;
    char date[40];
    int nspare;                    /* input buffers of read_size kept for reuse */
    char *spare[SPARE_BUFS];
    crow_ev_answer_fn answer;      /* crow_ev_set_answerer */
    void *answer_arg;
    void (*answer_free)(void *);
    struct epoll_event evs[BATCH];
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void crow_ev_config_init(struct crow_ev_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_connections = 1024;
    cfg->idle_ms = 60000;
    cfg->head_ms = 30000;
    cfg->write_ms = 60000;
    cfg->read_size = 4096;
    cfg->max_line = 8192;
    cfg->max_head = 8192;
    cfg->max_body = 1 << 20;
    cfg->max_raw = 65536;
    cfg->nodelay = 1;
}

/* ------------------------------------------------------------------ small helpers */

static char *dup_bytes(const struct crow_allocator *a, const char *s, size_t n)
{
    char *p = crow_alloc(a, n ? n : 1, 0);
    if (p && n)
        memcpy(p, s, n);
    return p;
}

static size_t capmax_for(const struct crow_ev *ev, int mode)
{
    switch (mode) {
    case CROW_EV_LINE: return ev->cfg.max_line + 2;
    case CROW_EV_HTTP: return ev->cfg.max_head + ev->cfg.max_body + 2 * CHUNK_LINE_MAX;
    default:           return ev->cfg.max_raw;
    }
}

static uint64_t conn_id(const struct conn *c)
{
    return (uint64_t)c->gen << 32 | c->idx;
}

/* The live (not closed) connection named ID, or NULL. */
static struct conn *lookup(const struct crow_ev *ev, uint64_t id)
{
    uint32_t idx = (uint32_t)id, gen = (uint32_t)(id >> 32);
    if ((id & (TAG_EVENTFD | TAG_LISTENER)) || idx >= ev->nslots || ev->slots[idx].gen != gen)
        return NULL;
    struct conn *c = ev->slots[idx].c;
    return c && !c->zombie ? c : NULL;
}

static void best_effort_send(int fd, const char *s, size_t n)
{
    if (s && n)
        (void)CROW_RETRY(send(fd, s, n, MSG_DONTWAIT | MSG_NOSIGNAL));
}

static void format_peer(char *out, const struct sockaddr *sa, socklen_t sl)
{
    char host[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET && sl >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(out, CROW_EV_PEER_MAX, "%s:%u", host, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6 && sl >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(out, CROW_EV_PEER_MAX, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        snprintf(out, CROW_EV_PEER_MAX, "unix");
    }
}

/* ------------------------------------------------------------------ timers */

/* Puts C in the timer list its state calls for; RESET restarts the clock even when the
 * class is unchanged (progress on a stalled write). */
static void conn_timer(struct crow_ev *ev, struct conn *c, int reset)
{
    int tc;
    if (!CROW_LIST_EMPTY(&c->outq) && !c->can_write)
        tc = TC_WRITE;
    else if (c->busy)
        tc = TC_NONE;
    else if (c->len > 0)
        tc = TC_HEAD;
    else
        tc = TC_IDLE;
    if (tc != TC_NONE && ev->tms[tc] == 0)
        tc = TC_NONE;
    if (tc == c->tclass && !reset)
        return;
    if (c->tclass != TC_NONE)
        crow_list_remove(&ev->tl[c->tclass], &c->tnode);
    c->tclass = (uint8_t)tc;
    if (tc != TC_NONE) {
        c->deadline = ev->now + ev->tms[tc];
        crow_list_insert_tail(&ev->tl[tc], &c->tnode);
    }
}

/* ------------------------------------------------------------------ bandwidth */

#define LIMIT_IOV 64

static int conn_flush(struct crow_ev *ev, struct conn *c);
static int conn_read(struct crow_ev *ev, struct conn *c);
static void make_ready(struct crow_ev *ev, struct conn *c);
static struct conn *lookup(const struct crow_ev *ev, uint64_t id);

static struct crow_throttle *bucket(struct conn *c, int dir)
{
    return dir == CROW_ADMIT_OUT ? &c->tout : &c->tin;
}

static int limited(const struct crow_ev *ev, int dir)
{
    return dir == CROW_ADMIT_OUT ? ev->throttle_out : ev->throttle_in;
}

/* Returns the bytes (up to WANT) C may move in direction DIR now: WANT when unlimited. */
static size_t bw_take(struct crow_ev *ev, struct conn *c, int dir, size_t want)
{
    if (!limited(ev, dir))
        return want;
    return crow_admit_bw_take(ev->cfg.admit, c->apeer, dir, bucket(c, dir), mono_ns(), want);
}

/* Gives back N bytes taken by bw_take and not moved. */
static void bw_refund(struct crow_ev *ev, struct conn *c, int dir, size_t n)
{
    if (n && limited(ev, dir))
        crow_admit_bw_refund(ev->cfg.admit, c->apeer, dir, bucket(c, dir), n);
}

/* C may not move bytes in DIR now: it stops reading (or writing) until its timer says WANT
 * bytes can move.  Nothing is polled meanwhile: no epoll_ctl is needed either, since an edge
 * that comes while throttled only re-queues the connection once (the peer's sending stops
 * when the unread socket buffer fills). */
static void bw_block(struct crow_ev *ev, struct conn *c, int dir, size_t want)
{
    uint64_t ns = crow_admit_bw_wait_ns(ev->cfg.admit, c->apeer, dir, bucket(c, dir), mono_ns(),
                                        want);
    uint64_t ms = (ns + 999999) / 1000000;
    if (ms == 0)
        ms = 1;
    if (dir == CROW_ADMIT_OUT)
        c->wthr = 1;
    else
        c->rthr = 1;
    if (crow_timer_pending(&c->tt) &&
        crow_timer_deadline(&c->tt) <= crow_timer_wheel_now(&ev->wheel) + ms)
        return;
    crow_timer_reschedule(&ev->wheel, &c->tt, ms);
}

/* C's buckets may have refilled: resume what was throttled. */
static void throttle_fire(struct crow_timer *t, void *arg)
{
    struct crow_ev *ev = arg;
    struct conn *c = (struct conn *)(void *)((char *)t - offsetof(struct conn, tt));
    uint64_t id = conn_id(c);
    int r = c->rthr, w = c->wthr;
    c->rthr = c->wthr = 0;
    if (w && !CROW_LIST_EMPTY(&c->outq) && (conn_flush(ev, c) < 0 || !(c = lookup(ev, id))))
        return;
    if (r) {
        if (c->busy)
            conn_read(ev, c); /* into the space it has: the unit must not move */
        else
            make_ready(ev, c);
    }
}

/* Copies IOV[0..CNT) into OUT (at most LIMIT_IOV entries) cut to MAX bytes.  Returns the
 * entries used; *ASKED gets their bytes. */
static int limit_iov(const struct iovec *iov, int cnt, size_t max, struct iovec *out,
                     size_t *asked)
{
    int k = 0;
    size_t sum = 0;
    for (int i = 0; i < cnt && k < LIMIT_IOV && sum < max; i++) {
        size_t l = iov[i].iov_len < max - sum ? iov[i].iov_len : max - sum;
        if (!l)
            continue;
        out[k].iov_base = iov[i].iov_base;
        out[k++].iov_len = l;
        sum += l;
    }
    *asked = sum;
    return k;
}

/* ------------------------------------------------------------------ connections */

static void free_outq(struct crow_ev *ev, struct conn *c)
{
    struct crow_list_node *n;
    while ((n = crow_list_pop_head(&c->outq))) {
        struct outbuf *ob = crow_list_entry(n, struct outbuf, node);
        if (ob->fd >= 0) {
            close(ob->fd);
            crow_free(&ev->alloc, ob, sizeof *ob);
        } else {
            crow_free(&ev->alloc, ob, sizeof *ob + ob->len);
        }
    }
}

static void release_slot(struct crow_ev *ev, struct conn *c)
{
    struct slot *s = &ev->slots[c->idx];
    s->c = NULL;
    s->gen = (s->gen + 1) & GEN_MASK;
    if (s->gen == 0)
        s->gen = 1;
    s->next_free = ev->free_head;
    ev->free_head = c->idx;
    crow_pool_put(ev->pool, c);
}

static void listeners_resume(struct crow_ev *ev)
{
    for (int i = 0; i < ev->nlst; i++) {
        struct epoll_event e = {.events = EPOLLIN, .data.u64 = TAG_LISTENER | (uint64_t)i};
        if (ev->lst[i].flags & CROW_EV_EXCLUSIVE)
            e.events |= EPOLLEXCLUSIVE;
        epoll_ctl(ev->epfd, EPOLL_CTL_ADD, ev->lst[i].fd, &e);
    }
    ev->paused = 0;
}

static void listeners_pause(struct crow_ev *ev)
{
    for (int i = 0; i < ev->nlst; i++)
        epoll_ctl(ev->epfd, EPOLL_CTL_DEL, ev->lst[i].fd, NULL);
    ev->paused = 1;
    ev->pause_until = ev->now + 100;
}

/* ------------------------------------------------------------------ TLS-aware I/O
 * A TLS connection reads and writes through c-core/tls, which reports EAGAIN like a socket
 * (its handshake runs inside the first reads).  Edge-triggered readiness needs two
 * adjustments, made where the flags are set: a short TLS read does not mean the socket is
 * drained (a record may still sit decrypted inside OpenSSL), and any event on a TLS
 * connection re-arms both directions, since a read may wait for writability and a write for
 * readability.  sendfile becomes pread + TLS write, 16 KiB (one record) at a time; a retried
 * write after EAGAIN presents the same bytes again, as OpenSSL requires. */
#define TLS_CHUNK 16384

static ssize_t io_read(struct conn *c, void *buf, size_t n)
{
    return c->tls ? crow_tls_read(c->tls, buf, n) : CROW_RETRY(read(c->fd, buf, n));
}

static ssize_t io_writev(struct conn *c, const struct iovec *iov, int cnt)
{
    if (!c->tls)
        return CROW_RETRY(writev(c->fd, iov, cnt));
    size_t total = 0;
    for (int i = 0; i < cnt; i++) {
        const char *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left > 0) {
            ssize_t n = crow_tls_write(c->tls, p, left);
            if (n < 0)
                return total > 0 && errno == EAGAIN ? (ssize_t)total : -1;
            p += n;
            left -= (size_t)n;
            total += (size_t)n;
        }
    }
    return (ssize_t)total;
}

static ssize_t io_sendfile(struct conn *c, int fd, off_t *off, size_t n)
{
    if (!c->tls)
        return CROW_RETRY(sendfile(c->fd, fd, off, n));
    char chunk[TLS_CHUNK];
    ssize_t r = CROW_RETRY(pread(fd, chunk, n < sizeof chunk ? n : sizeof chunk, *off));
    if (r <= 0)
        return r;
    ssize_t w = crow_tls_write(c->tls, chunk, (size_t)r);
    if (w > 0)
        *off += w;
    return w;
}

/* C's body sink (if any) is not handed back to the caller: free it. */
static void sink_drop(struct conn *c)
{
    const struct crow_ev_sink *s = c->sink;
    if (s) {
        c->sink = NULL;
        s->drop(s->arg);
    }
}

static void conn_close(struct crow_ev *ev, struct conn *c)
{
    sink_drop(c);
    if (c->tls) {
        (void)crow_tls_shutdown(c->tls); /* close_notify, best effort */
        crow_tls_free(c->tls);
        c->tls = NULL;
    }
    close(c->fd);
    c->fd = -1;
    crow_timer_cancel(&ev->wheel, &c->tt);
    c->rthr = c->wthr = 0;
    if (c->admitted) {
        crow_admit_leave_peer(ev->cfg.admit, c->apeer);
        c->admitted = 0;
        c->apeer = NULL;
    }
    if (c->tclass != TC_NONE)
        crow_list_remove(&ev->tl[c->tclass], &c->tnode);
    c->tclass = TC_NONE;
    if (c->ready)
        crow_list_remove(&ev->ready, &c->rnode);
    c->ready = 0;
    free_outq(ev, c);
    crow_free(&ev->alloc, c->buf, c->cap);
    c->buf = NULL;
    c->len = c->cap = 0;
    ev->st.open--;
    ev->st.closed++;
    if (ev->paused)
        listeners_resume(ev);
    if (ev->cfg.notify_close) {
        c->zombie = 1;
        crow_list_insert_tail(&ev->closed, &c->rnode);
    } else {
        release_slot(ev, c);
    }
}

static void make_ready(struct crow_ev *ev, struct conn *c)
{
    if (!c->ready && !c->busy) {
        c->ready = 1;
        crow_list_insert_tail(&ev->ready, &c->rnode);
    }
}

/* Gives C's input buffer back while it holds nothing (an idle connection keeps none). */
static void buf_release(struct crow_ev *ev, struct conn *c)
{
    if (!c->buf || c->len || c->busy)
        return;
    if (c->cap == ev->cfg.read_size && ev->nspare < SPARE_BUFS)
        ev->spare[ev->nspare++] = c->buf;
    else
        crow_free(&ev->alloc, c->buf, c->cap);
    c->buf = NULL;
    c->cap = 0;
    c->scan = 0;
}

/* Gives C an input buffer of read_size.  Returns 0, or -1 (ENOMEM). */
static int buf_acquire(struct crow_ev *ev, struct conn *c)
{
    char *b = ev->nspare ? ev->spare[--ev->nspare] : crow_alloc(&ev->alloc, ev->cfg.read_size, 0);
    if (!b)
        return -1;
    c->buf = b;
    c->cap = ev->cfg.read_size;
    return 0;
}

static struct conn *conn_new(struct crow_ev *ev, int fd, int mode, int li,
                             const struct sockaddr *sa, socklen_t sl)
{
    struct conn *c = crow_pool_get(ev->pool);
    if (!c)
        return NULL;
    memset(c, 0, sizeof *c); /* no input buffer until input arrives */
    if (ev->free_head == NO_SLOT) {
        uint32_t n = ev->nslots ? ev->nslots * 2 : 64;
        struct slot *s = crow_alloc(&ev->alloc, n * sizeof *s, 0);
        if (!s)
            goto fail;
        if (ev->nslots)
            memcpy(s, ev->slots, ev->nslots * sizeof *s);
        for (uint32_t i = ev->nslots; i < n; i++) {
            s[i].c = NULL;
            s[i].gen = 1;
            s[i].next_free = i + 1 < n ? i + 1 : NO_SLOT;
        }
        crow_free(&ev->alloc, ev->slots, ev->nslots * sizeof *s);
        ev->free_head = ev->nslots;
        ev->slots = s;
        ev->nslots = n;
    }
    c->idx = ev->free_head;
    c->gen = ev->slots[c->idx].gen;
    if (li >= 0 && ev->lst[li].tls && !(c->tls = crow_tls_new(ev->lst[li].tls, fd, NULL)))
        goto fail;
    struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                            .data.u64 = conn_id(c)};
    if (epoll_ctl(ev->epfd, EPOLL_CTL_ADD, fd, &e) < 0)
        goto fail;
    ev->free_head = ev->slots[c->idx].next_free;
    ev->slots[c->idx].c = c;
    c->fd = fd;
    c->listener = li;
    c->mode = (uint8_t)mode;
    c->capmax = capmax_for(ev, mode);
    c->can_write = 1;
    c->clen = -1;
    crow_timer_init(&c->tt, throttle_fire, ev);
    if (ev->throttle_in || ev->throttle_out) { /* rates checked by crow_ev_new: can't fail */
        uint64_t t = mono_ns();
        crow_throttle_init(&c->tin, ev->cfg.bandwidth_in, 0, t);
        crow_throttle_init(&c->tout, ev->cfg.bandwidth_out, 0, t);
    }
    format_peer(c->peer, sa, sl);
    c->tcp = sa->sa_family == AF_INET || sa->sa_family == AF_INET6;
    if (ev->cfg.nodelay && c->tcp) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    ev->st.open++;
    if (ev->cfg.notify_open) {
        c->open_pending = 1;
        make_ready(ev, c);
    }
    conn_timer(ev, c, 0);
    return c;
fail:
    crow_tls_free(c->tls);
    c->tls = NULL;
    {
        int e2 = errno;
        crow_pool_put(ev->pool, c);
        errno = e2;
    }
    return NULL;
}

/* Reads what fits (growing the buffer only while no unit is out).  Returns 0, or -1 when
 * the connection was closed (read error or no memory). */
static int conn_read(struct crow_ev *ev, struct conn *c)
{
    while (c->can_read && !c->eof && !c->rthr) {
        if (!c->cap && buf_acquire(ev, c) < 0) {
            conn_close(ev, c);
            return -1;
        }
        if (c->len == c->cap) {
            if (c->busy || c->cap >= c->capmax || (c->sink && c->cap >= c->head_len + SINK_SPAN))
                break;
            size_t ncap = c->cap * 2 < c->capmax ? c->cap * 2 : c->capmax;
            char *nb = crow_alloc(&ev->alloc, ncap, 0);
            if (!nb) {
                conn_close(ev, c);
                return -1;
            }
            memcpy(nb, c->buf, c->len);
            crow_free(&ev->alloc, c->buf, c->cap);
            c->buf = nb;
            c->cap = ncap;
        }
        size_t space = c->cap - c->len;
        size_t allow = bw_take(ev, c, CROW_ADMIT_IN, space);
        if (!allow) {
            bw_block(ev, c, CROW_ADMIT_IN, space);
            break;
        }
        ssize_t n = io_read(c, c->buf + c->len, allow);
        bw_refund(ev, c, CROW_ADMIT_IN, n > 0 ? allow - (size_t)n : allow);
        if (n > 0) {
            c->len += (size_t)n;
            ev->st.bytes_in += (uint64_t)n;
            if (allow < space && (size_t)n == allow && c->tclass == TC_HEAD)
                conn_timer(ev, c, 1); /* the throttle, not the peer, makes this unit slow */
            if ((size_t)n < allow && !c->hup && !c->tls) {
                c->can_read = 0; /* a short read drained the socket; the next edge resets */
                break;
            }
        } else if (n == 0) {
            c->eof = 1;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->can_read = 0;
        } else {
            conn_close(ev, c);
            return -1;
        }
    }
    return 0;
}

/* TCP_CORK on or off (best effort: a failure only costs segment sizes). */
static void set_cork(struct conn *c, int on)
{
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
    c->corked = on ? 1 : 0;
}

/* Writes queued output until done or EAGAIN.  Returns 0, or -1 with errno set when the
 * connection was closed (write error). */
static int conn_flush(struct crow_ev *ev, struct conn *c)
{
    int progress = 0;
    while (c->can_write && !c->wthr && !CROW_LIST_EMPTY(&c->outq)) {
        struct outbuf *ob = crow_list_entry(c->outq.first, struct outbuf, node);
        ssize_t n;
        size_t allow;
        if (ob->fd < 0) {
            struct iovec iov[16], lim[LIMIT_IOV];
            int cnt = 0;
            size_t want = 0, asked;
            for (struct crow_list_node *p = c->outq.first; p && cnt < 16; p = p->next) {
                struct outbuf *b = crow_list_entry(p, struct outbuf, node);
                if (b->fd >= 0)
                    break;
                iov[cnt].iov_base = b->data + b->off;
                iov[cnt++].iov_len = b->len - b->off;
                want += b->len - b->off;
            }
            if (!(allow = bw_take(ev, c, CROW_ADMIT_OUT, want))) {
                bw_block(ev, c, CROW_ADMIT_OUT, want);
                break;
            }
            int k = limit_iov(iov, cnt, allow, lim, &asked);
            n = io_writev(c, lim, k);
            bw_refund(ev, c, CROW_ADMIT_OUT, n > 0 ? allow - (size_t)n : allow);
            if (n < 0)
                goto fail;
            ev->st.bytes_out += (uint64_t)n;
            size_t left = (size_t)n;
            while (left) {
                struct outbuf *b = crow_list_entry(c->outq.first, struct outbuf, node);
                size_t have = b->len - b->off;
                if (left < have) {
                    b->off += left;
                    break;
                }
                left -= have;
                crow_list_remove(&c->outq, &b->node);
                crow_free(&ev->alloc, b, sizeof *b + b->len);
            }
        } else {
            size_t chunk = ob->fleft < (1u << 30) ? ob->fleft : (1u << 30);
            if (!(allow = bw_take(ev, c, CROW_ADMIT_OUT, chunk))) {
                bw_block(ev, c, CROW_ADMIT_OUT, chunk);
                break;
            }
            n = io_sendfile(c, ob->fd, &ob->foff, allow);
            bw_refund(ev, c, CROW_ADMIT_OUT, n > 0 ? allow - (size_t)n : allow);
            if (n < 0)
                goto fail;
            if (n == 0) { /* the file is shorter than promised: the framing is broken */
                errno = EIO;
                conn_close(ev, c);
                return -1;
            }
            ev->st.bytes_out += (uint64_t)n;
            ob->fleft -= (size_t)n;
            if (ob->fleft == 0) {
                crow_list_remove(&c->outq, &ob->node);
                close(ob->fd);
                crow_free(&ev->alloc, ob, sizeof *ob);
            }
        }
        progress = 1;
        continue;
    fail:
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->can_write = 0;
            break;
        }
        {
            int e = errno;
            conn_close(ev, c);
            errno = e;
        }
        return -1;
    }
    if (c->corked && CROW_LIST_EMPTY(&c->outq) && !c->busy)
        set_cork(c, 0); /* the corked output is all out: push its last partial segment */
    if (CROW_LIST_EMPTY(&c->outq) && c->close_after && !c->busy) {
        conn_close(ev, c);
        return 0;
    }
    conn_timer(ev, c, progress);
    return 0;
}

/* Writes IOV now as far as the socket takes it and queues the rest.  Returns 0, or -1 with
 * errno set when the connection was closed. */
static int conn_send(struct crow_ev *ev, struct conn *c, const struct iovec *iov, int iovcnt)
{
    size_t total = 0, done = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
    size_t allow = 0;
    if (CROW_LIST_EMPTY(&c->outq) && c->can_write && !c->wthr &&
        !(allow = bw_take(ev, c, CROW_ADMIT_OUT, total)))
        bw_block(ev, c, CROW_ADMIT_OUT, total);
    if (allow) {
        struct iovec lim[LIMIT_IOV];
        const struct iovec *v = iov;
        int cnt = iovcnt < IOV_MAX ? iovcnt : IOV_MAX;
        size_t asked = total;
        if (allow < total) {
            cnt = limit_iov(iov, iovcnt, allow, lim, &asked);
            v = lim;
        }
        ssize_t n = io_writev(c, v, cnt);
        bw_refund(ev, c, CROW_ADMIT_OUT, n > 0 ? allow - (size_t)n : allow);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                int e = errno;
                conn_close(ev, c);
                errno = e;
                return -1;
            }
            c->can_write = 0;
        } else {
            done = (size_t)n;
            ev->st.bytes_out += (uint64_t)n;
            if (done < asked)
                c->can_write = 0; /* a short write: the send buffer is full, wait for the edge */
            else if (done < total)
                bw_block(ev, c, CROW_ADMIT_OUT, total - done);
        }
    } else if (!c->wthr) {
        c->can_write = 0; /* output already queued (or not writable): it goes first */
    }
    if (done == total)
        return 0;
    size_t rest = total - done;
    struct outbuf *ob = crow_alloc(&ev->alloc, sizeof *ob + rest, 0);
    if (!ob) {
        conn_close(ev, c);
        errno = ENOMEM;
        return -1;
    }
    ob->fd = -1;
    ob->off = 0;
    ob->len = rest;
    size_t skip = done, at = 0;
    for (int i = 0; i < iovcnt; i++) {
        size_t l = iov[i].iov_len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        memcpy(ob->data + at, (const char *)iov[i].iov_base + skip, l - skip);
        at += l - skip;
        skip = 0;
    }
    crow_list_insert_tail(&c->outq, &ob->node);
    conn_timer(ev, c, 0);
    return 0;
}

/* The caller is done with C's unit: drop its bytes and make C eligible for the next. */
static void unit_finish(struct crow_ev *ev, struct conn *c)
{
    c->busy = 0;
    if (c->head_unit) { /* answered without its body: the input can't be re-synchronised */
        c->head_unit = 0;
        c->close_after = 1;
        c->eof = 1;
    }
    if (c->ulen) {
        memmove(c->buf, c->buf + c->ulen, c->len - c->ulen);
        c->len -= c->ulen;
        c->ulen = 0;
    }
    c->scan = 0;
    if (c->close_after) {
        if (CROW_LIST_EMPTY(&c->outq))
            conn_close(ev, c);
        else
            conn_timer(ev, c, 0);
        return;
    }
    if (c->len > 0 || c->can_read || c->eof)
        make_ready(ev, c);
    else
        buf_release(ev, c);
    conn_timer(ev, c, 0);
}

/* ------------------------------------------------------------------ HTTP framing */

static int is_tchar(unsigned char ch)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    return (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') ||
           (ch && strchr(extra, ch));
}

static int name_is(const char *b, const struct crow_ev_header *h, const char *name)
{
    size_t n = strlen(name);
    return h->name_len == n && strncasecmp(b + h->name_off, name, n) == 0;
}

static int has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && strncasecmp(v + s, tok, tl) == 0)
            return 1;
    }
    return 0;
}

/* Parses the head B[0..END) (END just past its blank line) into H and ev->hdrs.  Returns 0,
 * CROW_EV_BAD or CROW_EV_TOO_LONG (too many headers). */
static int parse_head(struct crow_ev *ev, const char *b, size_t end, struct crow_ev_http *h)
{
    memset(h, 0, sizeof *h);
    h->content_length = -1;
    h->headers = ev->hdrs;
    size_t i = 0;
    while (i < end && is_tchar((unsigned char)b[i]))
        i++;
    if (i == 0 || i >= end || b[i] != ' ')
        return CROW_EV_BAD;
    h->method_len = (uint32_t)i;
    size_t t = ++i;
    while (i < end && (unsigned char)b[i] > ' ' && b[i] != 0x7f)
        i++;
    if (i == t || i >= end || b[i] != ' ')
        return CROW_EV_BAD;
    h->target_off = (uint32_t)t;
    h->target_len = (uint32_t)(i - t);
    i++;
    if (end - i < 9 || memcmp(b + i, "HTTP/1.", 7) != 0 || (b[i + 7] != '0' && b[i + 7] != '1'))
        return CROW_EV_BAD;
    h->version = 10 + (b[i + 7] - '0');
    i += 8;
    if (b[i] == '\r')
        i++;
    if (b[i] != '\n')
        return CROW_EV_BAD;
    i++;
    int conn_close = 0, conn_keep = 0, te = 0;
    for (;;) {
        if (i >= end)
            return CROW_EV_BAD;
        if (b[i] == '\n') {
            i++;
            break;
        }
        if (b[i] == '\r' && i + 1 < end && b[i + 1] == '\n') {
            i += 2;
            break;
        }
        size_t ns = i;
        while (i < end && is_tchar((unsigned char)b[i]))
            i++;
        if (i == ns || i >= end || b[i] != ':')
            return CROW_EV_BAD;
        size_t nl = i - ns;
        i++;
        while (i < end && (b[i] == ' ' || b[i] == '\t'))
            i++;
        size_t vs = i;
        while (i < end && b[i] != '\n' && b[i] != '\r') {
            unsigned char ch = (unsigned char)b[i];
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                return CROW_EV_BAD;
            i++;
        }
        size_t ve = i;
        while (ve > vs && (b[ve - 1] == ' ' || b[ve - 1] == '\t'))
            ve--;
        if (i >= end)
            return CROW_EV_BAD;
        if (b[i] == '\r') {
            if (i + 1 >= end || b[i + 1] != '\n')
                return CROW_EV_BAD;
            i++;
        }
        i++;
        if (h->nheaders == CROW_EV_MAX_HEADERS)
            return CROW_EV_TOO_LONG;
        struct crow_ev_header *hd = &ev->hdrs[h->nheaders++];
        hd->name_off = (uint32_t)ns;
        hd->name_len = (uint32_t)nl;
        hd->value_off = (uint32_t)vs;
        hd->value_len = (uint32_t)(ve - vs);
        const char *v = b + vs;
        size_t vl = ve - vs;
        if (name_is(b, hd, "content-length")) {
            int64_t n = 0;
            if (vl == 0 || vl > 15)
                return CROW_EV_BAD;
            for (size_t k = 0; k < vl; k++) {
                if (v[k] < '0' || v[k] > '9')
                    return CROW_EV_BAD;
                n = n * 10 + (v[k] - '0');
            }
            if (h->content_length >= 0 && h->content_length != n)
                return CROW_EV_BAD;
            h->content_length = n;
        } else if (name_is(b, hd, "transfer-encoding")) {
            if (te || vl != 7 || strncasecmp(v, "chunked", 7) != 0)
                return CROW_EV_BAD;
            te = 1;
            h->chunked = 1;
        } else if (name_is(b, hd, "connection")) {
            conn_close |= has_token(v, vl, "close");
            conn_keep |= has_token(v, vl, "keep-alive");
        } else if (name_is(b, hd, "expect")) {
            if (vl == 12 && strncasecmp(v, "100-continue", 12) == 0)
                h->expect_continue = 1;
        }
    }
    if (i != end || (h->chunked && h->content_length >= 0))
        return CROW_EV_BAD;
    h->keep_alive = h->version == 11 ? !conn_close : conn_keep && !conn_close;
    h->head_len = (uint32_t)end;
    return 0;
}

/* Finds the end of the head in C's buffer (just past "\n\n" or "\n\r\n").  Returns it, or 0
 * (C->scan then says where to resume). */
static size_t find_head_end(struct conn *c)
{
    const char *b = c->buf;
    size_t i = c->scan;
    while (i < c->len) {
        const char *p = memchr(b + i, '\n', c->len - i);
        if (!p)
            break;
        size_t k = (size_t)(p - b);
        if (k + 1 < c->len && b[k + 1] == '\n')
            return k + 2;
        if (k + 2 < c->len && b[k + 1] == '\r' && b[k + 2] == '\n')
            return k + 3;
        i = k + 1;
    }
#ifdef CROW_PLANTED_BUG
    c->scan = c->len; /* forgets a terminator split across reads */
#else
    c->scan = c->len >= 3 ? c->len - 3 : 0;
#endif
    return 0;
}

/* De-chunks C's body in place from c->cdst.  Returns 1 when the body is complete (the unit is
 * buf[0..cdst), what follows it moved down to cdst), 0 for more input, CROW_EV_BAD or
 * CROW_EV_TOO_LARGE. */
static int dechunk(struct conn *c)
{
    char *b = c->buf;
    size_t src = c->cdst, dst = c->cdst, len = c->len;
    int done = 0;
    for (;;) {
        if (c->cstate == CS_DATA) {
            size_t n = len - src < c->chunk_left ? len - src : c->chunk_left;
            memmove(b + dst, b + src, n);
            dst += n, src += n;
            c->chunk_left -= n;
            if (c->chunk_left)
                break;
            c->cstate = CS_DATA_END;
        }
        if (c->cstate == CS_DATA_END) {
            if (src >= len)
                break;
            if (b[src] == '\r') {
                if (src + 1 >= len)
                    break;
                if (b[src + 1] != '\n')
                    return CROW_EV_BAD;
                src++;
            } else if (b[src] != '\n') {
                return CROW_EV_BAD;
            }
            src++;
            c->cstate = CS_SIZE;
        }
        const char *p = memchr(b + src, '\n', len - src);
        if (!p) {
            if (len - src > CHUNK_LINE_MAX)
                return CROW_EV_BAD;
            break;
        }
        size_t nl = (size_t)(p - b), e = nl;
        if (e > src && b[e - 1] == '\r')
            e--;
        if (c->cstate == CS_TRAILER) {
            int blank = e == src; /* the blank line ends the trailers and the body */
            src = nl + 1;
            if (blank) {
                done = 1;
                break;
            }
            continue;
        }
        size_t k = src;
        uint64_t size = 0;
        while (k < e && ((b[k] >= '0' && b[k] <= '9') || ((b[k] | 0x20) >= 'a' && (b[k] | 0x20) <= 'f'))) {
            if (k - src >= 15)
                return CROW_EV_BAD;
            size = size * 16 + (uint64_t)(b[k] <= '9' ? b[k] - '0' : (b[k] | 0x20) - 'a' + 10);
            k++;
        }
        if (k == src || (k < e && b[k] != ';' && b[k] != ' ' && b[k] != '\t'))
            return CROW_EV_BAD;
        src = nl + 1;
        if (size > c->max_body - c->sunk - (dst - c->head_len))
            return CROW_EV_TOO_LARGE;
        if (size == 0) {
            c->cstate = CS_TRAILER;
            continue;
        }
        c->chunk_left = (size_t)size;
        c->cstate = CS_DATA;
    }
    memmove(b + dst, b + src, len - src);
    c->len = len - (src - dst);
    c->cdst = dst;
    return done;
}

/* ------------------------------------------------------------------ framing */

static void fill_unit(const struct conn *c, struct crow_ev_unit *u, int kind, const char *data,
                      size_t len)
{
    u->conn = conn_id(c);
    u->kind = kind;
    u->mode = c->mode;
    u->listener = c->listener;
    u->eol_len = 0;
    u->data = data;
    u->len = len;
    u->peer = c->peer;
}

/* An HTTP error unit: the input can't be re-synchronised, so C closes after the reply. */
static int frame_error(struct conn *c, struct crow_ev_unit *u, int kind, size_t shown)
{
    sink_drop(c);
    fill_unit(c, u, kind, c->buf, c->len < shown ? c->len : shown);
    c->ulen = c->len;
    c->close_after = 1;
    c->eof = 1; /* read no more */
    c->hstate = HS_HEAD;
    return 1;
}

static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* The REQUEST unit of a body that went to C's sink (ERR: the sink's failure, or 0). */
static int sink_unit(struct crow_ev *ev, struct conn *c, struct crow_ev_unit *u, int err)
{
    (void)parse_head(ev, c->buf, c->head_len, &ev->http); /* can't fail: parsed before */
    ev->http.body_len = 0;
    ev->http.sink = c->sink;
    ev->http.sink_errno = err;
    c->sink = NULL;
    c->hstate = HS_HEAD;
    fill_unit(c, u, CROW_EV_REQUEST, c->buf, c->head_len);
    u->http = ev->http;
    if (err) { /* the rest of the body is unread: the input can't be re-synchronised */
        c->ulen = c->len;
        c->close_after = 1;
        c->eof = 1;
    } else {
        c->ulen = c->head_len;
    }
    return 1;
}

/* A body going to C's sink (crow_ev_continue_sink): what has arrived (de-chunked) goes to the
 * sink and leaves the buffer, which keeps the head only.  Returns as frame_http. */
static int frame_sink(struct crow_ev *ev, struct conn *c, struct crow_ev_unit *u)
{
    const struct crow_ev_sink *s = c->sink;
    size_t h = c->head_len, n;
    int done;
    if (c->hstate == HS_LENGTH) {
        if (c->need > c->max_body - c->sunk)
            return frame_error(c, u, CROW_EV_TOO_LARGE, h);
        n = c->len - h < c->need ? c->len - h : c->need;
        if (n && s->write(s->arg, c->buf + h, n) < 0)
            return sink_unit(ev, c, u, errno);
        memmove(c->buf + h, c->buf + h + n, c->len - h - n);
        c->need -= n;
        done = c->need == 0;
    } else {
        int r = dechunk(c);
        if (r > 1)
            return frame_error(c, u, r, h);
        n = c->cdst - h;
        if (n && s->write(s->arg, c->buf + h, n) < 0)
            return sink_unit(ev, c, u, errno);
        memmove(c->buf + h, c->buf + c->cdst, c->len - c->cdst);
        c->cdst = h;
        done = r == 1;
    }
    c->len -= n;
    c->sunk += n;
    if (n)
        conn_timer(ev, c, 1); /* the deadline bounds the pauses of a streamed body */
    if (!done) {
        if (c->expect && !c->sent_continue) {
            struct iovec iov = {(void *)cont, sizeof cont - 1};
            c->sent_continue = 1;
            if (conn_send(ev, c, &iov, 1) < 0)
                return -1;
        }
        return 0;
    }
    return sink_unit(ev, c, u, s->end(s->arg) < 0 ? errno : 0);
}

static int frame_http(struct crow_ev *ev, struct conn *c, struct crow_ev_unit *u)
{
    size_t ulen;
    if (c->hstate == HS_HEAD) {
        if (c->scan == 0) { /* blank lines before a request line are ignored (RFC 9112) */
            size_t k = 0;
            while (k < c->len && (c->buf[k] == '\r' || c->buf[k] == '\n'))
                k++;
            if (k) {
                memmove(c->buf, c->buf + k, c->len - k);
                c->len -= k;
            }
        }
        size_t end = find_head_end(c);
        if (!end)
            return c->len > ev->cfg.max_head ? frame_error(c, u, CROW_EV_TOO_LONG, ev->cfg.max_head)
                                             : 0;
        c->scan = 0;
        if (end > ev->cfg.max_head)
            return frame_error(c, u, CROW_EV_TOO_LONG, ev->cfg.max_head);
        int r = parse_head(ev, c->buf, end, &ev->http);
        if (r)
            return frame_error(c, u, r, end);
        c->head_len = end;
        c->sunk = 0;
        c->expect = ev->http.expect_continue && ev->http.version == 11;
        c->sent_continue = 0;
        c->max_body = ev->cfg.max_body;
        if (ev->cfg.head_first && (ev->http.chunked || ev->http.content_length > 0) &&
            (c->expect || ev->http.chunked ||
             (uint64_t)ev->http.content_length > ev->cfg.head_first_over)) {
            /* the caller picks the limit first; nothing of the body is framed yet */
            c->head_unit = 1;
            c->hstate = ev->http.chunked ? HS_CHUNKED : HS_LENGTH;
            c->cdst = end;
            c->cstate = CS_SIZE;
            c->chunk_left = 0;
            c->need = ev->http.chunked ? 0 : end + (size_t)ev->http.content_length;
            fill_unit(c, u, CROW_EV_HEAD, c->buf, end);
            u->http = ev->http;
            u->http.body_len = 0;
            c->ulen = 0; /* the head stays in the buffer: the REQUEST unit starts with it */
            return 1;
        }
        if (ev->http.chunked) {
            c->hstate = HS_CHUNKED;
            c->cdst = end;
            c->cstate = CS_SIZE;
            c->chunk_left = 0;
        } else if (ev->http.content_length > 0) {
            if ((uint64_t)ev->http.content_length > c->max_body)
                return frame_error(c, u, CROW_EV_TOO_LARGE, end);
            c->hstate = HS_LENGTH;
            c->need = end + (size_t)ev->http.content_length;
        } else {
            fill_unit(c, u, CROW_EV_REQUEST, c->buf, end);
            u->http = ev->http;
            c->ulen = end;
            return 1;
        }
    }
    if (c->sink)
        return frame_sink(ev, c, u);
    int r;
    if (c->hstate == HS_LENGTH) {
        if (c->need - c->head_len > c->max_body) /* beyond crow_ev_continue's limit */
            return frame_error(c, u, CROW_EV_TOO_LARGE, c->head_len);
        r = c->len >= c->need;
        ulen = c->need;
    } else {
        r = dechunk(c);
        ulen = c->cdst;
        if (r > 1)
            return frame_error(c, u, r, c->head_len);
    }
    if (!r) {
        if (c->expect && !c->sent_continue) {
            struct iovec iov = {(void *)cont, sizeof cont - 1};
            c->sent_continue = 1;
            if (conn_send(ev, c, &iov, 1) < 0)
                return -1;
        }
        return 0;
    }
    c->hstate = HS_HEAD;
    if (parse_head(ev, c->buf, c->head_len, &ev->http) != 0) /* can't fail: parsed before */
        return frame_error(c, u, CROW_EV_BAD, c->head_len);
    ev->http.body_len = (uint32_t)(ulen - c->head_len);
    fill_unit(c, u, CROW_EV_REQUEST, c->buf, ulen);
    u->http = ev->http;
    c->ulen = ulen;
    return 1;
}

static int frame_line(struct crow_ev *ev, struct conn *c, struct crow_ev_unit *u)
{
    size_t max = ev->cfg.max_line;
    if (c->discarding) {
        const char *p = memchr(c->buf, '\n', c->len);
        size_t drop = p ? (size_t)(p - c->buf) + 1 : c->len;
        memmove(c->buf, c->buf + drop, c->len - drop);
        c->len -= drop;
        c->scan = 0;
        if (!p)
            return 0;
        c->discarding = 0;
    }
    const char *p = memchr(c->buf + c->scan, '\n', c->len - c->scan);
    if (p) {
        size_t i = (size_t)(p - c->buf);
        int eol = i > 0 && c->buf[i - 1] == '\r' ? 2 : 1;
        size_t l = i + 1 - (size_t)eol;
        c->ulen = i + 1;
        c->scan = 0;
        if (l > max) {
            fill_unit(c, u, CROW_EV_TOO_LONG, c->buf, max);
        } else {
            fill_unit(c, u, CROW_EV_LINE_UNIT, c->buf, l);
            u->eol_len = eol;
        }
        return 1;
    }
    c->scan = c->len;
    if (c->len >= max + 2) {
        fill_unit(c, u, CROW_EV_TOO_LONG, c->buf, max);
        c->ulen = c->len;
        c->discarding = 1;
        return 1;
    }
    return 0;
}

/* Frames C's next unit into *U.  Returns 1, 0 (incomplete), or -1 (C was closed). */
static int frame(struct crow_ev *ev, struct conn *c, struct crow_ev_unit *u)
{
    if (c->open_pending) {
        c->open_pending = 0;
        fill_unit(c, u, CROW_EV_OPEN, c->buf, 0);
        c->ulen = 0;
        return 1;
    }
    if (!c->buf)
        return 0; /* nothing buffered */
    switch (c->mode) {
    case CROW_EV_LINE:
        return frame_line(ev, c, u);
    case CROW_EV_HTTP:
        return frame_http(ev, c, u);
    default:
        if (!c->len)
            return 0;
        fill_unit(c, u, CROW_EV_DATA, c->buf, c->len);
        c->ulen = c->len;
        return 1;
    }
}

/* ------------------------------------------------------------------ the loop */

static void accept_all(struct crow_ev *ev, int li)
{
    struct listener *l = &ev->lst[li];
    for (int k = 0; k < BATCH; k++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                listeners_pause(ev);
            return;
        }
        ev->st.accepted++;
        struct crow_admit_peer *peer = NULL;
        int refuse = ev->cfg.max_connections && ev->st.open >= ev->cfg.max_connections;
        if (!refuse && ev->cfg.admit)
            refuse = crow_admit_enter_peer(ev->cfg.admit, (struct sockaddr *)&ss, sl, mono_ns(),
                                           &peer) != CROW_ADMIT_OK;
        if (refuse) {
            char junk[512];
            ev->st.refused++;
            /* plaintext inside TLS would be garbage: a TLS connection just closes (a refusal
               answered in TLS would cost the handshake the limit is there to avoid) */
            if (!l->tls)
                best_effort_send(fd, ev->refusal, ev->cfg.refusal_len);
            /* unread input would turn the close into a reset that may destroy the refusal */
            (void)CROW_RETRY(recv(fd, junk, sizeof junk, MSG_DONTWAIT));
            close(fd);
            continue;
        }
        struct conn *c = conn_new(ev, fd, l->mode, li, (struct sockaddr *)&ss, sl);
        if (!c) {
            close(fd);
            if (ev->cfg.admit)
                crow_admit_leave_peer(ev->cfg.admit, peer);
        } else if (ev->cfg.admit) {
            c->admitted = 1;
            c->apeer = peer;
        }
    }
}

static void expire(struct crow_ev *ev)
{
    for (int tc = TC_IDLE; tc < TC_N; tc++) {
        while (ev->tl[tc].first) {
            struct conn *c = crow_list_entry(ev->tl[tc].first, struct conn, tnode);
            if (c->deadline > ev->now)
                break;
            if (tc != TC_WRITE && !c->tls && /* plaintext inside TLS would be garbage */
                (tc == TC_HEAD || !ev->cfg.timeout_started_only))
                best_effort_send(c->fd, ev->timeout_reply, ev->cfg.timeout_reply_len);
            ev->st.timeouts++;
            conn_close(ev, c);
        }
    }
}

static void handle_event(struct crow_ev *ev, const struct epoll_event *e)
{
    uint64_t tag = e->data.u64;
    if (tag == TAG_EVENTFD) {
        uint64_t v;
        (void)CROW_RETRY(read(ev->efd, &v, sizeof v));
        return;
    }
    if (tag & TAG_LISTENER) {
        accept_all(ev, (int)(tag & 0xffff));
        return;
    }
    struct conn *c = lookup(ev, tag);
    if (!c)
        return; /* closed earlier in this batch */
    uint32_t m = e->events;
    if (c->tls)
        m |= EPOLLIN | EPOLLOUT;
    if (m & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
        c->can_write = 1;
        if (!CROW_LIST_EMPTY(&c->outq) && (conn_flush(ev, c) < 0 || !(c = lookup(ev, tag))))
            return;
    }
    if (m & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        c->can_read = 1;
        if (m & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            c->hup = 1;
        if (c->busy)
            conn_read(ev, c); /* into the space it has: the unit must not move */
        else
            make_ready(ev, c);
    }
}

int crow_ev_next(struct crow_ev *ev, struct crow_ev_unit *u, int timeout_ms)
{
    memset(u, 0, sizeof *u);
    u->listener = -1;
    if (ev->last_zombie) {
        release_slot(ev, ev->last_zombie);
        ev->last_zombie = NULL;
    }
    ev->now = mono_ms();
    int64_t deadline = timeout_ms < 0 ? -1 : ev->now + timeout_ms;
    int polled = 0, answered = 0;
    for (;;) {
        if (atomic_exchange(&ev->wake, 0))
            return 0;
        if (ev->paused && ev->now >= ev->pause_until)
            listeners_resume(ev);
        expire(ev);
        if (crow_timer_wheel_count(&ev->wheel))
            crow_timer_wheel_advance(&ev->wheel, (uint64_t)ev->now);
        if (ev->closed.first) {
            struct conn *c = crow_list_entry(crow_list_pop_head(&ev->closed), struct conn, rnode);
            fill_unit(c, u, CROW_EV_CLOSED, NULL, 0);
            ev->last_zombie = c;
            return 1;
        }
        while (ev->ready.first) {
            struct conn *c = crow_list_entry(crow_list_pop_head(&ev->ready), struct conn, rnode);
            c->ready = 0;
            if (c->busy)
                continue;
            int r = frame(ev, c, u);
            if (r == 0) {
                if (conn_read(ev, c) < 0)
                    continue;
                r = frame(ev, c, u);
            }
            if (r < 0)
                continue;
            if (r == 0 && c->sink && c->can_read && !c->eof && !c->rthr) {
                make_ready(ev, c); /* the sink made room: read on, after the others */
                conn_timer(ev, c, 0);
                continue;
            }
            if (r == 1) {
                c->busy = 1;
                ev->st.units++;
                conn_timer(ev, c, 0);
                if (ev->answer && u->kind == CROW_EV_REQUEST && ev->answer(ev->answer_arg, ev, u)) {
                    memset(u, 0, sizeof *u); /* finished in C: nothing is handed out */
                    u->listener = -1;
                    if (++answered >= BATCH) /* let wakes, timeouts and new events in */
                        break;
                    continue;
                }
                return 1;
            }
            if (c->eof) { /* what is left can never make a unit */
                if (CROW_LIST_EMPTY(&c->outq))
                    conn_close(ev, c);
                else
                    c->close_after = 1;
                continue;
            }
            buf_release(ev, c);
            conn_timer(ev, c, 0);
        }
        if (polled && deadline >= 0 && ev->now >= deadline)
            return 0;
        int64_t wait = deadline < 0 ? -1 : deadline - ev->now;
        if (wait < -1)
            wait = 0;
        for (int tc = TC_IDLE; tc < TC_N; tc++) {
            if (!ev->tl[tc].first)
                continue;
            int64_t d = crow_list_entry(ev->tl[tc].first, struct conn, tnode)->deadline - ev->now;
            if (d < 0)
                d = 0;
            if (wait < 0 || d < wait)
                wait = d;
        }
        if (crow_timer_wheel_count(&ev->wheel)) {
            int d = crow_timer_wheel_next_ms(&ev->wheel, -1);
            if (d >= 0 && (wait < 0 || d < wait))
                wait = d;
        }
        if (ev->paused && (wait < 0 || wait > 100))
            wait = 100;
        if (ev->ready.first) /* the answerer stopped a batch short: only look for events */
            wait = 0;
        answered = 0;
        if (wait > INT_MAX)
            wait = INT_MAX;
        int n = epoll_wait(ev->epfd, ev->evs, BATCH, (int)wait);
        ev->now = mono_ms();
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        polled = 1;
        for (int i = 0; i < n; i++)
            handle_event(ev, &ev->evs[i]);
    }
}

/* ------------------------------------------------------------------ replies */

static int finish_flags(struct crow_ev *ev, struct conn *c, int flags)
{
    if (flags & CROW_EV_CLOSE_AFTER)
        c->close_after = 1;
    if (!(flags & CROW_EV_MORE) && c->busy)
        unit_finish(ev, c);
    else if (c->close_after && !c->busy && CROW_LIST_EMPTY(&c->outq))
        conn_close(ev, c);
    return 0;
}

int crow_ev_reply(struct crow_ev *ev, uint64_t id, const struct iovec *iov, int iovcnt,
                  int flags)
{
    struct conn *c = lookup(ev, id);
    if (!c) {
        errno = EBADF;
        return -1;
    }
    if (iovcnt < 0 || (iovcnt > 0 && !iov)) {
        errno = EINVAL;
        return -1;
    }
    if ((flags & CROW_EV_CORK) && c->tcp && !c->tls && !c->corked)
        set_cork(c, 1);
    if (conn_send(ev, c, iov, iovcnt) < 0)
        return -1;
    if (c->corked && !(flags & (CROW_EV_MORE | CROW_EV_CORK)) && CROW_LIST_EMPTY(&c->outq))
        set_cork(c, 0);
    return finish_flags(ev, c, flags);
}

int crow_ev_sendfile(struct crow_ev *ev, uint64_t id, int fd, off_t off, size_t len, int flags)
{
    struct conn *c = lookup(ev, id);
    if (!c) {
        errno = EBADF;
        return -1;
    }
    if (fd < 0 || off < 0) {
        errno = EINVAL;
        return -1;
    }
    if (CROW_LIST_EMPTY(&c->outq) && c->can_write && !c->wthr) {
        while (len > 0) {
            size_t want = len < (1u << 30) ? len : (1u << 30);
            size_t allow = bw_take(ev, c, CROW_ADMIT_OUT, want);
            if (!allow) {
                bw_block(ev, c, CROW_ADMIT_OUT, want);
                break;
            }
            ssize_t n = io_sendfile(c, fd, &off, allow);
            bw_refund(ev, c, CROW_ADMIT_OUT, n > 0 ? allow - (size_t)n : allow);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                c->can_write = 0;
                break;
            }
            if (n <= 0) {
                int e = n < 0 ? errno : EIO;
                conn_close(ev, c);
                errno = e;
                return -1;
            }
            ev->st.bytes_out += (uint64_t)n;
            len -= (size_t)n;
        }
    }
    if (len > 0) {
        struct outbuf *ob = NULL;
        int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (dfd < 0 || !(ob = crow_alloc(&ev->alloc, sizeof *ob, 0))) {
            int e = dfd < 0 ? errno : ENOMEM;
            if (dfd >= 0)
                close(dfd);
            conn_close(ev, c);
            errno = e;
            return -1;
        }
        ob->fd = dfd;
        ob->off = ob->len = 0;
        ob->foff = off;
        ob->fleft = len;
        crow_list_insert_tail(&c->outq, &ob->node);
        conn_timer(ev, c, 0);
    }
    if (c->corked && !(flags & CROW_EV_MORE) && CROW_LIST_EMPTY(&c->outq))
        set_cork(c, 0);
    return finish_flags(ev, c, flags);
}

int crow_ev_done(struct crow_ev *ev, uint64_t id, int flags)
{
    struct conn *c = lookup(ev, id);
    if (!c) {
        errno = EBADF;
        return -1;
    }
    return finish_flags(ev, c, flags);
}

int crow_ev_close(struct crow_ev *ev, uint64_t id)
{
    struct conn *c = lookup(ev, id);
    if (!c) {
        errno = EBADF;
        return -1;
    }
    conn_close(ev, c);
    return 0;
}

int crow_ev_continue(struct crow_ev *ev, uint64_t id, size_t max_body)
{
    struct conn *c = lookup(ev, id);
    if (!c) {
        errno = EBADF;
        return -1;
    }
    if (!c->busy || !c->head_unit) {
        errno = EINVAL;
        return -1;
    }
    c->head_unit = 0;
    c->busy = 0;
    c->max_body = max_body < ev->cfg.max_body ? max_body : ev->cfg.max_body;
    make_ready(ev, c);
    conn_timer(ev, c, 0);
    return 0;
}

int crow_ev_continue_sink(struct crow_ev *ev, uint64_t id, size_t max_body,
                          const struct crow_ev_sink *sink)
{
    struct conn *c = lookup(ev, id);
    if (!c) {
        errno = EBADF;
        return -1;
    }
    if (!sink || !sink->write || !sink->end || !sink->drop || !c->busy || !c->head_unit) {
        errno = EINVAL;
        return -1;
    }
    if (crow_ev_continue(ev, id, max_body) < 0)
        return -1;
    c->sink = sink;
    c->sunk = 0;
    if (c->hstate == HS_LENGTH)
        c->need -= c->head_len; /* from here: body bytes still to come */
    return 0;
}

int crow_ev_set_mode(struct crow_ev *ev, uint64_t id, int mode)
{
    struct conn *c = lookup(ev, id);
    if (!c) {
        errno = EBADF;
        return -1;
    }
    if (mode < CROW_EV_RAW || mode > CROW_EV_HTTP) {
        errno = EINVAL;
        return -1;
    }
    c->mode = (uint8_t)mode;
    c->capmax = capmax_for(ev, mode);
    c->hstate = HS_HEAD;
    c->scan = 0;
    c->discarding = 0;
    if (c->len > c->ulen)
        make_ready(ev, c);
    return 0;
}

/* ------------------------------------------------------------------ set-up */

struct crow_ev *crow_ev_new(const struct crow_ev_config *cfg)
{
    if (!cfg || !cfg->read_size || !cfg->max_line || !cfg->max_head || !cfg->max_raw ||
        cfg->bandwidth_in > CROW_THROTTLE_MAX_RATE || cfg->bandwidth_out > CROW_THROTTLE_MAX_RATE) {
        errno = EINVAL;
        return NULL;
    }
    struct crow_allocator a = cfg->allocator ? *cfg->allocator : crow_allocator_default;
    struct crow_ev *ev = crow_alloc(&a, sizeof *ev, 0);
    if (!ev)
        return NULL;
    memset(ev, 0, sizeof *ev);
    ev->cfg = *cfg;
    ev->alloc = a;
    ev->cfg.allocator = &ev->alloc;
    ev->epfd = ev->efd = -1;
    ev->free_head = NO_SLOT;
    ev->now = mono_ms();
    atomic_init(&ev->wake, 0);
    ev->tms[TC_IDLE] = cfg->idle_ms;
    ev->tms[TC_HEAD] = cfg->head_ms;
    ev->tms[TC_WRITE] = cfg->write_ms;
    ev->throttle_in = cfg->bandwidth_in || crow_admit_bw_limited(cfg->admit, CROW_ADMIT_IN);
    ev->throttle_out = cfg->bandwidth_out || crow_admit_bw_limited(cfg->admit, CROW_ADMIT_OUT);
    crow_timer_wheel_init(&ev->wheel, (uint64_t)ev->now, 1);
    ev->cfg.refusal = ev->cfg.timeout_reply = NULL;
    if (cfg->refusal_len && !(ev->refusal = dup_bytes(&a, cfg->refusal, cfg->refusal_len)))
        goto fail;
    if (cfg->timeout_reply_len &&
        !(ev->timeout_reply = dup_bytes(&a, cfg->timeout_reply, cfg->timeout_reply_len)))
        goto fail;
    struct crow_pool_config pc;
    crow_pool_config_init(&pc, sizeof(struct conn));
    pc.allocator = &ev->alloc;
    if (!(ev->pool = crow_pool_new(&pc)))
        goto fail;
    if ((ev->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
        (ev->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
        goto fail;
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = TAG_EVENTFD};
    if (epoll_ctl(ev->epfd, EPOLL_CTL_ADD, ev->efd, &e) < 0)
        goto fail;
    return ev;
fail:
    {
        int err = errno;
        crow_ev_destroy(ev);
        errno = err;
    }
    return NULL;
}

void crow_ev_destroy(struct crow_ev *ev)
{
    if (!ev)
        return;
    for (uint32_t i = 0; i < ev->nslots; i++) {
        struct conn *c = ev->slots[i].c;
        if (!c || c->zombie)
            continue;
        if (c->admitted)
            crow_admit_leave_peer(ev->cfg.admit, c->apeer);
        sink_drop(c);
        close(c->fd);
        free_outq(ev, c);
        crow_free(&ev->alloc, c->buf, c->cap);
    }
    while (ev->nspare > 0)
        crow_free(&ev->alloc, ev->spare[--ev->nspare], ev->cfg.read_size);
    crow_ev_set_answerer(ev, NULL, NULL, NULL);
    crow_pool_destroy(ev->pool);
    crow_free(&ev->alloc, ev->slots, ev->nslots * sizeof *ev->slots);
    crow_free(&ev->alloc, ev->lst, (size_t)ev->nlst * sizeof *ev->lst);
    crow_free(&ev->alloc, ev->refusal, ev->cfg.refusal_len);
    crow_free(&ev->alloc, ev->timeout_reply, ev->cfg.timeout_reply_len);
    if (ev->epfd >= 0)
        close(ev->epfd);
    if (ev->efd >= 0)
        close(ev->efd);
    struct crow_allocator a = ev->alloc;
    crow_free(&a, ev, sizeof *ev);
}

int crow_ev_tcp_listener(const char *host, int port, int flags, int backlog)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (!host || port < 0 || port > 65535) {
        errno = EINVAL;
        return -1;
    }
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        sl = sizeof *in;
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        sl = sizeof *in6;
    } else {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        ((flags & CROW_EV_REUSEPORT) &&
         setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
        bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, backlog > 0 ? backlog : 511) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
        return -1;
    return 0;
}

int crow_ev_listen(struct crow_ev *ev, int fd, int mode, int flags)
{
    if (fd < 0 || mode < CROW_EV_RAW || mode > CROW_EV_HTTP || ev->nlst >= 0xffff) {
        errno = EINVAL;
        return -1;
    }
    if (set_nonblock(fd) < 0)
        return -1;
    int n = ev->nlst;
    struct listener *l = crow_alloc(&ev->alloc, (size_t)(n + 1) * sizeof *l, 0);
    if (!l)
        return -1;
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = TAG_LISTENER | (uint64_t)n};
    if (flags & CROW_EV_EXCLUSIVE)
        e.events |= EPOLLEXCLUSIVE;
    if (!ev->paused && epoll_ctl(ev->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
        int err = errno;
        crow_free(&ev->alloc, l, (size_t)(n + 1) * sizeof *l);
        errno = err;
        return -1;
    }
    if (n)
        memcpy(l, ev->lst, (size_t)n * sizeof *l);
    crow_free(&ev->alloc, ev->lst, (size_t)n * sizeof *l);
    l[n].fd = fd;
    l[n].mode = mode;
    l[n].flags = flags;
    l[n].tls = NULL;
    ev->lst = l;
    ev->nlst = n + 1;
    return n;
}

uint64_t crow_ev_adopt(struct crow_ev *ev, int fd, int mode)
{
    if (fd < 0 || mode < CROW_EV_RAW || mode > CROW_EV_HTTP) {
        errno = EINVAL;
        return 0;
    }
    if (set_nonblock(fd) < 0)
        return 0;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) {
        ss.ss_family = AF_UNIX;
        sl = sizeof(sa_family_t);
    }
    ev->now = mono_ms(); /* the caller may have been away since crow_ev_next */
    struct conn *c = conn_new(ev, fd, mode, -1, (struct sockaddr *)&ss, sl);
    return c ? conn_id(c) : 0;
}

int crow_ev_wake(struct crow_ev *ev)
{
    uint64_t one = 1;
    atomic_store(&ev->wake, 1);
    if (CROW_RETRY(write(ev->efd, &one, sizeof one)) < 0 && errno != EAGAIN)
        return -1;
    return 0;
}

const char *crow_ev_date(struct crow_ev *ev)
{
    static const char wday[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char mon[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != ev->date_sec || !ev->date[0]) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(ev->date, sizeof ev->date, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                 wday[tm.tm_wday % 7], tm.tm_mday, mon[tm.tm_mon % 12], tm.tm_year + 1900,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
        ev->date_sec = ts.tv_sec;
    }
    return ev->date;
}

void crow_ev_set_answerer(struct crow_ev *ev, crow_ev_answer_fn fn, void *arg,
                          void (*free_arg)(void *))
{
    if (ev->answer_free)
        ev->answer_free(ev->answer_arg);
    ev->answer = fn;
    ev->answer_arg = fn ? arg : NULL;
    ev->answer_free = fn ? free_arg : NULL;
}

void *crow_ev_answerer_arg(const struct crow_ev *ev)
{
    return ev->answer_arg;
}

void crow_ev_stats(const struct crow_ev *ev, struct crow_ev_stats *st)
{
    *st = ev->st;
}

/* Listeners are only ever dropped all at once (a draining process): connections keep their
 * listener index for unit->listener, and nothing re-adds a dropped listener. */
void crow_ev_unlisten(struct crow_ev *ev)
{
    for (int i = 0; i < ev->nlst; i++)
        epoll_ctl(ev->epfd, EPOLL_CTL_DEL, ev->lst[i].fd, NULL);
    crow_free(&ev->alloc, ev->lst, (size_t)ev->nlst * sizeof *ev->lst);
    ev->lst = NULL;
    ev->nlst = 0;
    ev->paused = 0;
}

int crow_ev_listen_tls(struct crow_ev *ev, int fd, int mode, int flags, struct crow_tls_ctx *ctx)
{
    if (!ctx) {
        errno = EINVAL;
        return -1;
    }
    int n = crow_ev_listen(ev, fd, mode, flags);
    if (n >= 0)
        ev->lst[n].tls = ctx;
    return n;
}
