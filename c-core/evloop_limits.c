/* evloop_limits.c — what the event loop enforces: deadlines, admission, bandwidth.
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
 * crow_throttle_wait_ns names, so a throttled connection costs no polling. */
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

/* ------------------------------------------------------------------ deadlines */

void conn_timer(struct crow_ev *ev, struct conn *c, int reset)
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

void expire(struct crow_ev *ev)
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
