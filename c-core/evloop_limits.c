/* evloop_limits.c — what the event loop enforces: deadlines, admission, bandwidth, lingering.
 *
 * Design: timeouts use one FIFO list per class (idle, head deadline, write stall): every
 * connection in a class has the same duration, so (re)scheduling is a move to the tail and
 * expiry looks only at the heads.  Admission (admit.h) happens at accept, before the
 * connection costs anything: a refusal gets the configured bytes, best effort, and the close;
 * an admitted connection leaves the table in conn_close, the one place every close path goes
 * through (and in crow_ev_destroy).  Bandwidth: each connection has a token bucket per
 * direction, under its address's shared bucket when the admission table has one; every read,
 * writev and sendfile is cut to what the buckets allow, and a connection whose bucket is empty
 * stops reading (or writing) and arms its timer on the loop's timer wheel for the moment
 * crow_throttle_wait_ns names, so a throttled connection costs no polling.  A connection
 * that closes while its client may still be sending lingers first (below). */
#include <errno.h>
#include <stddef.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evloop_int.h"

static void best_effort_send(int fd, const char *s, size_t n)
{
    if (s && n)
        (void)CROW_RETRY(send(fd, s, n, MSG_DONTWAIT | MSG_NOSIGNAL));
}

/* ------------------------------------------------------------------ deadlines
 * (conn_timer, which puts a connection in its class's list, runs several times per request:
 * it is inline in evloop_int.h) */

void expire(struct crow_ev *ev)
{
    for (int tc = TC_IDLE; tc < TC_N; tc++) {
        while (ev->tl[tc].first) {
            struct conn *c = crow_list_entry(ev->tl[tc].first, struct conn, tnode);
            if (c->deadline > ev->now)
                break;
            if (tc == TC_LINGER) { /* the bound, not the client's fault */
                conn_close(ev, c);
                continue;
            }
            int replied = tc != TC_WRITE && !c->tls && /* plaintext inside TLS: garbage */
                          (tc == TC_HEAD || !ev->cfg.timeout_started_only) &&
                          ev->cfg.timeout_reply_len;
            if (replied)
                best_effort_send(c->fd, ev->timeout_reply, ev->cfg.timeout_reply_len);
            ev->st.timeouts++;
            if (replied && tc == TC_HEAD && c->mode == CROW_EV_HTTP &&
                CROW_LIST_EMPTY(&c->outq)) {
                /* the 408: its client is still sending the head (or a body), and a close
                   with input unread would reset the answer away */
                c->linger = 1;
                close_or_linger(ev, c);
                continue;
            }
            conn_close(ev, c);
        }
    }
}

/* ------------------------------------------------------------------ admission */

int admit_accepted(struct crow_ev *ev, const struct listener *l, int fd,
                   const struct sockaddr *sa, socklen_t sl, struct crow_admit_peer **peer)
{
    int refuse = ev->cfg.max_connections && ev->st.open >= ev->cfg.max_connections;
    if (!refuse && ev->cfg.admit)
        refuse = crow_admit_enter_peer(ev->cfg.admit, sa, sl, mono_ns(), peer) != CROW_ADMIT_OK;
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
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------ bandwidth */

/* Nothing is polled while C is throttled: no epoll_ctl is needed either, since an edge that
 * comes meanwhile only re-queues the connection once (the peer's sending stops when the
 * unread socket buffer fills). */
void bw_block(struct crow_ev *ev, struct conn *c, int dir, size_t want)
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

void throttle_fire(struct crow_timer *t, void *arg)
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

int limit_iov(const struct iovec *iov, int cnt, size_t max, struct iovec *out,
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

/* ------------------------------------------------------------------ lingering close
 * Closing a socket with unread input makes the kernel answer with a reset, and a reset that
 * reaches the client before it has read our answer (a 413 while it is still uploading)
 * destroys it: the client sees ECONNRESET on its send or its read, never the status.  So a
 * connection whose client may still be sending sends its answer, then FIN (shutdown of the
 * write side; a TLS connection sends close_notify first and is plain bytes from then on),
 * and reads and discards until the client's EOF, bounded in time (linger_ms, the TC_LINGER
 * timer class) and bytes (linger_max), as nginx's lingering_close does.  Meanwhile it holds
 * no input buffer and its id is stale for the caller.  The HTTP head deadline's answer (the
 * configured timeout reply, a 408) lingers the same way (expire). */

int close_or_linger(struct crow_ev *ev, struct conn *c)
{
    /* an HTTP client may also have pipelined requests behind the one answered with a close:
       input in the buffer, or input not read to EAGAIN yet (nginx lingers then too) */
    int sending = c->linger || (c->mode == CROW_EV_HTTP && (c->len > 0 || c->can_read));
    if (!sending || !ev->tms[TC_LINGER] || !ev->cfg.linger_max) {
        conn_close(ev, c);
        return -1;
    }
    if (c->tls) {
        (void)crow_tls_shutdown(c->tls); /* close_notify, best effort */
        crow_tls_free(c->tls);
        c->tls = NULL;
    }
    if (shutdown(c->fd, SHUT_WR) < 0) {
        conn_close(ev, c);
        return -1;
    }
    sink_drop(c);
    crow_timer_cancel(&ev->wheel, &c->tt);
    c->rthr = c->wthr = 0;
    if (c->ready)
        crow_list_remove(&ev->ready, &c->rnode);
    c->ready = 0;
    c->len = c->ulen = 0;
    buf_release(ev, c);
    c->lingering = 1;
    c->lingered = 0;
    conn_timer(ev, c, 1);
    return linger_read(ev, c);
}

int linger_read(struct crow_ev *ev, struct conn *c)
{
    char junk[16384];
    for (;;) {
        ssize_t n = CROW_RETRY(read(c->fd, junk, sizeof junk));
        if (n > 0) {
            ev->st.bytes_in += (uint64_t)n;
            c->lingered += (uint64_t)n;
            if (c->lingered < ev->cfg.linger_max)
                continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        }
        conn_close(ev, c); /* EOF, an error, or the byte bound (then a reset: so be it) */
        return -1;
    }
}
