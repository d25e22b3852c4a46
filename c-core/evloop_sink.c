/* evloop_sink.c — request bodies after their head: head-first units and body sinks.
 *
 * Design: with config head_first, a request whose body is large, chunked or awaited with
 * Expect: 100-continue is handed out as a HEAD unit before any of the body is framed, so the
 * caller picks the limit (or refuses) before the 100 Continue goes out; crow_ev_continue lets
 * the body come into the buffer as usual.  A large body (an upload) need not be held at all:
 * crow_ev_continue_sink names a sink (c-core/mpart is one) that takes the de-chunked body
 * piece by piece as it is read, so the buffer holds the head and at most SINK_SPAN bytes
 * ahead, and the head deadline restarts with each piece (it bounds the pauses of a slow
 * upload, not its length); the sink goes back to the caller with the REQUEST unit, and is
 * dropped (its DROP frees it) if the connection goes or the body is refused first. */
#include <errno.h>
#include <string.h>

#include "evloop_int.h"

void sink_drop(struct conn *c)
{
    const struct crow_ev_sink *s = c->sink;
    if (s) {
        c->sink = NULL;
        s->drop(s->arg);
    }
}

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
        c->linger = 1;
    } else {
        c->ulen = c->head_len;
    }
    return 1;
}

int frame_sink(struct crow_ev *ev, struct conn *c, struct crow_ev_unit *u)
{
    const struct crow_ev_sink *s = c->sink;
    size_t h = c->head_len, n;
    int done;
    if (c->hstate == HS_LENGTH) {
        if (c->need > c->max_body - c->sunk)
            return body_error(ev, c, u, CROW_EV_TOO_LARGE);
        n = c->len - h < c->need ? c->len - h : c->need;
        if (n && s->write(s->arg, c->buf + h, n) < 0)
            return sink_unit(ev, c, u, errno);
        memmove(c->buf + h, c->buf + h + n, c->len - h - n);
        c->need -= n;
        done = c->need == 0;
    } else {
        int r = dechunk(c);
        if (r > 1)
            return body_error(ev, c, u, r);
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
    if (!done)
        return send_continue(ev, c);
    return sink_unit(ev, c, u, s->end(s->arg) < 0 ? errno : 0);
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
