/* evloop_io.c — the event loop's reads and writes: input buffers, the output queue, replies.
 *
 * Design: readiness is remembered per connection (can_read / can_write, cleared on EAGAIN or
 * a short read, set by epoll edges), so a request costs one epoll_wait, one read and one
 * writev.  A reply is written at once as far as the socket takes it; the rest is copied into
 * the connection's output queue (memory pieces, or a file range for sendfile) and flushed when
 * the socket becomes writable.  Every read, writev and sendfile is cut to what the
 * connection's bandwidth buckets allow (evloop_limits.c); a connection whose bucket is empty
 * stops until its timer fires.  Memory: a connection holds an input buffer only while it has
 * input (a unit being read, out with the caller, or pipelined bytes); an idle keep-alive
 * connection gives it back, as nginx does, to a small per-loop stack of spare buffers the
 * next read takes from, so 10,000 idle connections cost their struct conn only and the busy
 * path does no malloc.  A buffer grows (doubling, up to the mode's limit) only while no unit
 * is out, since the unit's bytes must not move. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evloop_int.h"

/* ------------------------------------------------------------------ TLS-aware I/O
 * A TLS connection reads and writes through c-core/tls, which reports EAGAIN like a socket
 * (its handshake runs inside the first reads).  Edge-triggered readiness needs two
 * adjustments, made where the flags are set: a short TLS read does not mean the socket is
 * drained (a record may still sit decrypted inside OpenSSL), and any event on a TLS
 * connection re-arms both directions, since a read may wait for writability and a write for
 * readability.  sendfile becomes pread + TLS write, 16 KiB (one record) at a time; a retried
 * write after EAGAIN presents the same bytes again, as OpenSSL requires. */
#define TLS_CHUNK 16384

/* Plain TCP goes through recv/send, not read/writev: the socket calls skip the VFS layer
 * (nginx does the same).  A small reply in several pieces (head, cached Date, body) is
 * gathered into one buffer first: one contiguous copy into the socket is cheaper in the
 * kernel than walking an iovec array.  Adopted descriptors may be pipes: read/writev. */
#define GATHER_MAX 2048

static ssize_t io_read(struct conn *c, void *buf, size_t n)
{
    if (c->tls)
        return crow_tls_read(c->tls, buf, n);
    return c->tcp ? CROW_RETRY(recv(c->fd, buf, n, 0)) : CROW_RETRY(read(c->fd, buf, n));
}

static ssize_t io_writev(struct conn *c, const struct iovec *iov, int cnt)
{
    if (!c->tls && c->tcp) {
        if (cnt == 1)
            return CROW_RETRY(send(c->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL));
        char buf[GATHER_MAX];
        size_t at = 0;
        for (int i = 0; i < cnt; i++) {
            if (iov[i].iov_len > sizeof buf - at)
                return CROW_RETRY(writev(c->fd, iov, cnt));
            memcpy(buf + at, iov[i].iov_base, iov[i].iov_len);
            at += iov[i].iov_len;
        }
        return CROW_RETRY(send(c->fd, buf, at, MSG_NOSIGNAL));
    }
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

/* ------------------------------------------------------------------ input buffers */

void buf_release(struct crow_ev *ev, struct conn *c)
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

int conn_read(struct crow_ev *ev, struct conn *c)
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

/* ------------------------------------------------------------------ output */

void set_cork(struct conn *c, int on)
{
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
    c->corked = on ? 1 : 0;
}

int conn_flush(struct crow_ev *ev, struct conn *c)
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
        close_or_linger(ev, c);
        return 0;
    }
    conn_timer(ev, c, progress);
    return 0;
}

int conn_send(struct crow_ev *ev, struct conn *c, const struct iovec *iov, int iovcnt)
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
