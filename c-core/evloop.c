/* evloop.c — per-thread epoll event loop that frames input into protocol units for Lisp.
 *
 * Design: the loop never calls back.  The worker thread calls crow_ev_next, which runs epoll
 * (edge-triggered, every connection registered once for IN|OUT|RDHUP so no epoll_ctl is ever
 * needed on the hot path) until some connection holds a complete unit — a line, an HTTP
 * request with its body, or a read — and returns it; the caller answers with crow_ev_reply
 * (one writev; what the socket refuses is copied into the connection's output queue and
 * flushed on EPOLLOUT) and calls crow_ev_next again.  Connections live in a slab pool and are
 * named by an id = generation << 32 | slot: epoll carries the id, not a pointer, so an event
 * queued for a connection closed earlier in the same batch, or a reply from Lisp to a
 * connection that has gone, finds a newer generation and is ignored / gets EBADF.  A
 * connection whose unit is out with the caller gets no further unit (pipelined responses stay
 * in order) but its input is still read into the buffer space it already has (the unit's
 * bytes, at the front of that buffer, must not move).  Every close path goes through
 * conn_close, which also takes the connection out of the admission table.  crow_ev_wake sets
 * an atomic flag and writes an eventfd, so it works from any thread (and from signal
 * handlers); every system call retries EINTR, epoll_wait against the caller's overall
 * deadline.  An answerer (crow_ev_set_answerer; c-core/fcache is one) may finish a REQUEST
 * unit in C before it would be handed out — a static file Lisp has already decided on: the
 * loop then goes on with the next, returning to epoll after a batch of such answers so wakes,
 * timeouts and new events are never starved.
 *
 * The module's other files (evloop_int.h shares their structs): evloop_io.c reads and writes
 * a connection (TLS-aware, cut by the bandwidth buckets, input buffers), evloop_frame.c turns
 * input into units, evloop_sink.c lets a request body come after its head (crow_ev_continue)
 * or go to a sink while it arrives, and evloop_limits.c holds what the loop enforces:
 * deadlines, admission at accept, bandwidth, lingering close. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "evloop_int.h"

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
    cfg->linger_ms = 5000;
    cfg->linger_max = 64u << 20;
}

/* ------------------------------------------------------------------ connections */

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

void conn_close(struct crow_ev *ev, struct conn *c)
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

void unit_finish(struct crow_ev *ev, struct conn *c)
{
    c->busy = 0;
    if (c->head_unit) { /* answered without its body: the input can't be re-synchronised */
        c->head_unit = 0;
        c->close_after = 1;
        c->eof = 1;
        c->linger = 1; /* the client may be sending it all the same */
    }
    if (c->ulen) {
        memmove(c->buf, c->buf + c->ulen, c->len - c->ulen);
        c->len -= c->ulen;
        c->ulen = 0;
    }
    c->scan = 0;
    if (c->close_after) {
        if (CROW_LIST_EMPTY(&c->outq))
            close_or_linger(ev, c);
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
        if (!admit_accepted(ev, l, fd, (struct sockaddr *)&ss, sl, &peer))
            continue;
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
    struct conn *c = conn_at(ev, tag);
    if (!c)
        return; /* closed earlier in this batch */
    if (c->lingering) {
        if (e->events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            linger_read(ev, c);
        return;
    }
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

/* Polls for events without sleeping for up to busy_poll_us (and at most WAIT ms when that is
 * not -1).  Returns epoll_wait's count (0: none came, sleep now). */
#define BUSY_MIN_EVENTS 8

static int busy_poll(struct crow_ev *ev, int64_t wait)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t limit = ev->cfg.busy_poll_us;
    if (wait > 0 && wait * 1000 < limit)
        limit = wait * 1000;
    for (;;) {
        int n = epoll_wait(ev->epfd, ev->evs, BATCH, 0);
        if (n != 0)
            return n;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000000 + (t.tv_nsec - t0.tv_nsec) / 1000 >= limit)
            return 0;
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
        if (expire_due(ev))
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
        int n = wait != 0 && ev->cfg.busy_poll_us && ev->busy_events >= BUSY_MIN_EVENTS
                    ? busy_poll(ev, wait) : 0;
        if (n == 0) {
            n = epoll_wait(ev->epfd, ev->evs, BATCH, (int)wait);
            if (wait != 0)
                ev->busy_events = 0; /* it may have slept */
        }
        ev->now = mono_ms();
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        ev->busy_events += (unsigned)n;
        polled = 1;
        for (int i = 0; i < n; i++)
            handle_event(ev, &ev->evs[i]);
    }
}

/* ------------------------------------------------------------------ finishing units */

int finish_flags(struct crow_ev *ev, struct conn *c, int flags)
{
    if (flags & CROW_EV_CLOSE_AFTER)
        c->close_after = 1;
    if (!(flags & CROW_EV_MORE) && c->busy)
        unit_finish(ev, c);
    else if (c->close_after && !c->busy && CROW_LIST_EMPTY(&c->outq))
        close_or_linger(ev, c);
    return 0;
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
    ev->tms[TC_LINGER] = cfg->linger_ms;
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
        crow_tls_free(c->tls);
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
