/* sess.c — blocking-style session I/O over a non-blocking descriptor, plain or TLS.
 *
 * Design: the session-thread model gives each connection a thread that reads a unit, decides,
 * and writes a reply; that code wants blocking calls, but blocking calls cannot time out or be
 * throttled.  So the descriptor is non-blocking and every call here is a loop of "try the
 * operation; on EAGAIN poll(2) for what it needs (TLS may need to write while reading) until
 * a deadline".  Input goes through one buffer: the frame.h framers (lines, SMTP DATA) scan it
 * in place and hand out pointers into it, so a unit is never copied in C; Lisp copies it once
 * into its own vector.  read_exact and read_some drain the buffer first, then read straight
 * into the caller's memory.  The deadline for input restarts whenever bytes arrive (idle
 * timeout), the one for output whenever the peer takes some (write-stall timeout).  Bandwidth
 * limits are throttle.h token buckets that start empty (so a transfer is never faster than the
 * rate, which the one-sided tests check): before each read or write the call takes what the
 * bucket allows, sleeps when it allows nothing, and refunds what the system call did not use.
 * STARTTLS empties the buffer before the handshake: those bytes came in plaintext after the
 * upgrade command and must never be taken as if they came through TLS (CVE-2011-0411).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "crow.h"
#include "frame.h"
#include "sess.h"
#include "throttle.h"

#define DEFAULT_BUF  16384
#define MAX_LINE     ((size_t)1 << 20)
#define MAX_DATA     ((uint64_t)1 << 30)
#define TLS_CHUNK    16384
#define MS           ((uint64_t)1000000)

struct crow_sess {
    int fd;
    int is_sock;                /* send(MSG_NOSIGNAL) instead of write */
    struct crow_tls *tls;
    unsigned char *buf;
    size_t cap, r, w;           /* valid bytes are buf[r, w) */
    struct crow_frame_line line;
    size_t line_max;
    unsigned line_opts;
    int idle_ms, write_ms;
    struct crow_throttle in, out;
    unsigned char *data;        /* the last SMTP message */
    size_t data_cap;
    uint64_t n_in, n_out;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Waits until FD is ready for EVENTS or DEADLINE (ns, 0 = none) passes.  Returns OK, TIMEOUT
 * or ERROR.  Hang-ups and errors count as ready: the next call reports them. */
static int wait_fd(int fd, int events, uint64_t deadline)
{
    for (;;) {
        int ms = -1;
        if (deadline) {
            uint64_t now = now_ns();
            if (now >= deadline) {
                errno = ETIMEDOUT;
                return CROW_SESS_TIMEOUT;
            }
            uint64_t left = (deadline - now + MS - 1) / MS;
            ms = left > 3600000 ? 3600000 : (int)left;
        }
        struct pollfd p = {fd, (short)events, 0};
        int r = poll(&p, 1, ms);
        if (r > 0)
            return CROW_SESS_OK;
        if (r < 0 && errno != EINTR)
            return CROW_SESS_ERROR;
    }
}

static uint64_t deadline_after(int ms) { return ms > 0 ? now_ns() + (uint64_t)ms * MS : 0; }

/* Returns how many of WANT bytes bucket B allows now (at least 1), sleeping until it allows
 * some. */
static size_t gate(struct crow_throttle *b, size_t want)
{
    if (!b->rate || !want)
        return want;
    for (int i = 0; i < 1000000; i++) {
        uint64_t now = now_ns();
        size_t got = crow_throttle_take(b, now, want);
        if (got)
            return got;
        uint64_t ns = crow_throttle_wait_ns(b, now, want);
        sleep_ns(ns ? ns : 1000);
    }
    return 1;
}

static void refund(struct crow_throttle *b, size_t taken, ssize_t used)
{
    if (b->rate && (size_t)(used > 0 ? used : 0) < taken)
        crow_throttle_refund(b, taken - (size_t)(used > 0 ? used : 0));
}

/* ------------------------------------------------------------------ raw transfer */

/* Reads 1 to N bytes into DST.  Returns OK with *GOT, EOF, TIMEOUT or ERROR. */
static int raw_read(struct crow_sess *s, void *dst, size_t n, size_t *got)
{
    uint64_t deadline = deadline_after(s->idle_ms);
    size_t allow = gate(&s->in, n);
    for (;;) {
        ssize_t k;
        if (s->tls)
            k = crow_tls_read(s->tls, dst, allow);
        else
            k = CROW_RETRY(read(s->fd, dst, allow));
        if (k > 0) {
            refund(&s->in, allow, k);
            s->n_in += (uint64_t)k;
            *got = (size_t)k;
            return CROW_SESS_OK;
        }
        if (k == 0 || errno != EAGAIN) {
            int e = errno;
            refund(&s->in, allow, 0);
            errno = e;
            return k == 0 ? CROW_SESS_EOF : CROW_SESS_ERROR;
        }
        int st = wait_fd(s->fd, s->tls ? crow_tls_want(s->tls) : POLLIN, deadline);
        if (st != CROW_SESS_OK) {
            int e = errno;
            refund(&s->in, allow, 0);
            errno = e;
            return st;
        }
    }
}

/* Writes 1 to N bytes of BUF (N > 0); the caller loops.  Returns OK with *DONE, TIMEOUT or
 * ERROR. */
static int raw_write(struct crow_sess *s, const void *buf, size_t n, size_t *done)
{
    uint64_t deadline = deadline_after(s->write_ms);
    size_t allow = gate(&s->out, n);
    for (;;) {
        ssize_t k;
        if (s->tls)
            k = crow_tls_write(s->tls, buf, allow);
        else if (s->is_sock)
            k = CROW_RETRY(send(s->fd, buf, allow, MSG_NOSIGNAL));
        else
            k = CROW_RETRY(write(s->fd, buf, allow));
        if (k > 0) {
            refund(&s->out, allow, k);
            s->n_out += (uint64_t)k;
            *done = (size_t)k;
            return CROW_SESS_OK;
        }
        if (k == 0 || errno != EAGAIN) {
            int e = k == 0 ? EPIPE : errno;
            refund(&s->out, allow, 0);
            errno = e;
            return CROW_SESS_ERROR;
        }
        int st = wait_fd(s->fd, s->tls ? crow_tls_want(s->tls) : POLLOUT, deadline);
        if (st != CROW_SESS_OK) {
            int e = errno;
            refund(&s->out, allow, 0);
            errno = e;
            return st;
        }
    }
}

static int write_all(struct crow_sess *s, const unsigned char *p, size_t n)
{
    while (n > 0) {
        size_t d = 0;
        int st = raw_write(s, p, n, &d);
        if (st != CROW_SESS_OK)
            return st;
        p += d;
        n -= d;
    }
    return CROW_SESS_OK;
}

/* Reads more bytes into the buffer, making room first (compacting, or growing to NEED bytes
 * of capacity).  Returns OK, EOF, TIMEOUT or ERROR. */
static int fill(struct crow_sess *s)
{
    if (s->w == s->cap) {
        if (s->r > 0) {
            memmove(s->buf, s->buf + s->r, s->w - s->r);
            s->w -= s->r;
            s->r = 0;
        } else {
            size_t ncap = s->cap * 2;
            unsigned char *nb = realloc(s->buf, ncap);
            if (!nb) {
                errno = ENOMEM;
                return CROW_SESS_ERROR;
            }
            s->buf = nb;
            s->cap = ncap;
        }
    }
    size_t got = 0;
    int st = raw_read(s, s->buf + s->w, s->cap - s->w, &got);
    if (st == CROW_SESS_OK)
        s->w += got;
    return st;
}

/* ------------------------------------------------------------------ public */

struct crow_sess *crow_sess_new(int fd, size_t bufsize)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
        return NULL;
    struct crow_sess *s = calloc(1, sizeof *s);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    s->cap = bufsize ? bufsize : DEFAULT_BUF;
    if (s->cap < 64)
        s->cap = 64;
    s->buf = malloc(s->cap);
    if (!s->buf) {
        free(s);
        errno = ENOMEM;
        return NULL;
    }
    s->fd = fd;
    int type;
    socklen_t tl = sizeof type;
    s->is_sock = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0;
    s->line_max = 1024;
    s->line_opts = CROW_FRAME_LINE_LF_OK;
    if (s->cap < s->line_max + 4) {
        free(s->buf);
        s->cap = s->line_max + 4;
        s->buf = malloc(s->cap);
        if (!s->buf) {
            free(s);
            errno = ENOMEM;
            return NULL;
        }
    }
    crow_frame_line_init(&s->line, s->line_max, s->line_opts);
    uint64_t now = now_ns();
    crow_throttle_init(&s->in, 0, 0, now);
    crow_throttle_init(&s->out, 0, 0, now);
    return s;
}

void crow_sess_free(struct crow_sess *s)
{
    if (!s)
        return;
    crow_tls_free(s->tls);
    free(s->buf);
    free(s->data);
    free(s);
}

int crow_sess_fd(const struct crow_sess *s) { return s->fd; }

void crow_sess_set_timeouts(struct crow_sess *s, int idle_ms, int write_ms)
{
    s->idle_ms = idle_ms > 0 ? idle_ms : 0;
    s->write_ms = write_ms > 0 ? write_ms : 0;
}

static int set_rate(struct crow_throttle *b, uint64_t rate, uint64_t now)
{
    struct crow_throttle nb;
    if (crow_throttle_init(&nb, rate, 0, now) < 0)
        return -1;
    /* Start empty: never faster than the rate, not even for the first burst. */
    crow_throttle_take(&nb, now, SIZE_MAX);
    *b = nb;
    return 0;
}

int crow_sess_set_bandwidth(struct crow_sess *s, uint64_t in_rate, uint64_t out_rate)
{
    if (in_rate > CROW_THROTTLE_MAX_RATE || out_rate > CROW_THROTTLE_MAX_RATE) {
        errno = EINVAL;
        return -1;
    }
    uint64_t now = now_ns();
    set_rate(&s->in, in_rate, now);
    set_rate(&s->out, out_rate, now);
    return 0;
}

int crow_sess_set_line(struct crow_sess *s, size_t max, unsigned opts)
{
    if (max < 1 || max > MAX_LINE) {
        errno = EINVAL;
        return -1;
    }
    if (s->cap < max + 4) {
        unsigned char *nb = realloc(s->buf, max + 4);
        if (!nb) {
            errno = ENOMEM;
            return -1;
        }
        s->buf = nb;
        s->cap = max + 4;
    }
    s->line_max = max;
    s->line_opts = opts;
    crow_frame_line_init(&s->line, max, opts);
    return 0;
}

int crow_sess_read_line(struct crow_sess *s, const unsigned char **line, size_t *len,
                        unsigned *flags)
{
    for (;;) {
        struct crow_frame_unit u;
        int st = crow_frame_line_scan(&s->line, s->buf + s->r, s->w - s->r, &u);
        size_t at = s->r;
        s->r += u.consumed;
        if (s->r == s->w)
            s->r = s->w = 0;       /* the unit's bytes stay in place until the next call */
        switch (st) {
        case CROW_FRAME_UNIT:
            *line = s->buf + at + u.start;
            *len = u.len;
            if (flags)
                *flags = u.flags;
            return CROW_SESS_OK;
        case CROW_FRAME_TOO_LONG:
            return CROW_SESS_TOO_LONG;
        case CROW_FRAME_BAD:
            return CROW_SESS_BAD;
        default:
            break;
        }
        int f = fill(s);
        if (f != CROW_SESS_OK)
            return f;
    }
}

int crow_sess_read_exact(struct crow_sess *s, void *dst, size_t n, size_t *got)
{
    unsigned char *d = dst;
    size_t have = s->w - s->r, off = have < n ? have : n;
    memcpy(d, s->buf + s->r, off);
    s->r += off;
    if (s->r == s->w)
        s->r = s->w = 0;
    while (off < n) {
        size_t k = 0;
        int st = raw_read(s, d + off, n - off, &k);
        if (st != CROW_SESS_OK) {
            if (got)
                *got = off;
            return st;
        }
        off += k;
    }
    if (got)
        *got = off;
    return CROW_SESS_OK;
}

int crow_sess_read_some(struct crow_sess *s, void *dst, size_t n, size_t *got)
{
    *got = 0;
    if (n == 0)
        return CROW_SESS_OK;
    size_t have = s->w - s->r;
    if (have) {
        size_t k = have < n ? have : n;
        memcpy(dst, s->buf + s->r, k);
        s->r += k;
        if (s->r == s->w)
            s->r = s->w = 0;
        *got = k;
        return CROW_SESS_OK;
    }
    return raw_read(s, dst, n, got);
}

int crow_sess_read_data(struct crow_sess *s, uint64_t max_size, unsigned opts,
                        const unsigned char **data, size_t *len, unsigned *flags)
{
    if (max_size < 1 || max_size > MAX_DATA) {
        errno = EINVAL;
        return CROW_SESS_ERROR;
    }
    struct crow_frame_smtp sm;
    crow_frame_smtp_init(&sm, max_size, opts);
    size_t n = 0;
    *data = s->data;
    *len = 0;
    if (flags)
        *flags = 0;
    for (;;) {
        struct crow_frame_unit u;
        int st = crow_frame_smtp_scan(&sm, s->buf + s->r, s->w - s->r, &u);
        if (u.len) {
            if (n + u.len > s->data_cap) {
                size_t ncap = s->data_cap ? s->data_cap : 4096;
                while (ncap < n + u.len)
                    ncap *= 2;
                unsigned char *nd = realloc(s->data, ncap);
                if (!nd) {
                    errno = ENOMEM;
                    return CROW_SESS_ERROR;
                }
                s->data = nd;
                s->data_cap = ncap;
            }
            memcpy(s->data + n, s->buf + s->r, u.len);
            n += u.len;
        }
        s->r += u.consumed;
        if (s->r == s->w)
            s->r = s->w = 0;
        crow_frame_smtp_drop(&sm);
        *data = s->data;
        *len = n;
        if (flags)
            *flags = u.flags;
        if (st == CROW_FRAME_UNIT)
            return CROW_SESS_OK;
        if (st == CROW_FRAME_TOO_LONG)
            return CROW_SESS_TOO_LONG;
        if (st == CROW_FRAME_BAD)
            return CROW_SESS_BAD;
        int f = fill(s);
        if (f != CROW_SESS_OK)
            return f;
    }
}

int crow_sess_write(struct crow_sess *s, const void *buf, size_t len)
{
    return write_all(s, buf, len);
}

int crow_sess_writev(struct crow_sess *s, const struct iovec *iov, int iovcnt)
{
    if (iovcnt < 0) {
        errno = EINVAL;
        return CROW_SESS_ERROR;
    }
    if (s->tls) {
        /* Coalesce into TLS-record-sized writes: one record per 16 KiB, not one per iovec. */
        unsigned char chunk[TLS_CHUNK];
        size_t fillp = 0;
        for (int i = 0; i < iovcnt; i++) {
            const unsigned char *p = iov[i].iov_base;
            size_t n = iov[i].iov_len;
            while (n > 0) {
                size_t k = TLS_CHUNK - fillp < n ? TLS_CHUNK - fillp : n;
                memcpy(chunk + fillp, p, k);
                fillp += k;
                p += k;
                n -= k;
                if (fillp == TLS_CHUNK) {
                    int st = write_all(s, chunk, fillp);
                    if (st != CROW_SESS_OK)
                        return st;
                    fillp = 0;
                }
            }
        }
        return fillp ? write_all(s, chunk, fillp) : CROW_SESS_OK;
    }
    if (s->out.rate || !s->is_sock) {
        for (int i = 0; i < iovcnt; i++) {
            int st = write_all(s, iov[i].iov_base, iov[i].iov_len);
            if (st != CROW_SESS_OK)
                return st;
        }
        return CROW_SESS_OK;
    }
    /* Plain socket: sendmsg (writev with MSG_NOSIGNAL) over a private copy of the iovecs. */
    struct iovec stackv[64], *v = stackv;
    if (iovcnt > 64) {
        v = malloc((size_t)iovcnt * sizeof *v);
        if (!v) {
            errno = ENOMEM;
            return CROW_SESS_ERROR;
        }
    }
    memcpy(v, iov, (size_t)iovcnt * sizeof *v);
    struct iovec *cur = v;
    int left = iovcnt, st = CROW_SESS_OK;
    uint64_t deadline = deadline_after(s->write_ms);
    while (left > 0) {
        if (cur->iov_len == 0) {
            cur++;
            left--;
            continue;
        }
        struct msghdr mh;
        memset(&mh, 0, sizeof mh);
        mh.msg_iov = cur;
        mh.msg_iovlen = (size_t)(left > 1024 ? 1024 : left);
        ssize_t k = CROW_RETRY(sendmsg(s->fd, &mh, MSG_NOSIGNAL));
        if (k < 0) {
            if (errno != EAGAIN) {
                st = CROW_SESS_ERROR;
                break;
            }
            st = wait_fd(s->fd, POLLOUT, deadline);
            if (st != CROW_SESS_OK)
                break;
            continue;
        }
        s->n_out += (uint64_t)k;
        deadline = deadline_after(s->write_ms);
        size_t done = (size_t)k;
        while (left > 0 && done >= cur->iov_len) {
            done -= cur->iov_len;
            cur++;
            left--;
        }
        if (left > 0) {
            cur->iov_base = (char *)cur->iov_base + done;
            cur->iov_len -= done;
        }
    }
    if (v != stackv) {
        int e = errno;
        free(v);
        errno = e;
    }
    return st;
}

int crow_sess_sendfile(struct crow_sess *s, int in_fd, off_t offset, size_t count,
                       size_t *sent)
{
    size_t done = 0;
    int st = CROW_SESS_OK;
    if (s->tls || !s->is_sock) {
        unsigned char chunk[TLS_CHUNK];
        while (done < count) {
            size_t want = count - done < TLS_CHUNK ? count - done : TLS_CHUNK;
            ssize_t k = CROW_RETRY(pread(in_fd, chunk, want, offset + (off_t)done));
            if (k <= 0) {
                st = k < 0 ? CROW_SESS_ERROR : CROW_SESS_OK;
                break;
            }
            size_t before = s->n_out;
            st = write_all(s, chunk, (size_t)k);
            done += (size_t)(s->n_out - before);
            if (st != CROW_SESS_OK)
                break;
        }
    } else {
        uint64_t deadline = deadline_after(s->write_ms);
        off_t off = offset;
        while (done < count) {
            size_t want = count - done;
            if (want > ((size_t)1 << 30))
                want = (size_t)1 << 30;
            size_t allow = gate(&s->out, want);
            ssize_t k = CROW_RETRY(sendfile(s->fd, in_fd, &off, allow));
            if (k > 0) {
                refund(&s->out, allow, k);
                done += (size_t)k;
                s->n_out += (uint64_t)k;
                deadline = deadline_after(s->write_ms);
                continue;
            }
            int e = errno;
            refund(&s->out, allow, 0);
            if (k == 0)
                break;                 /* the file ended */
            if (e != EAGAIN) {
                errno = e;
                st = CROW_SESS_ERROR;
                break;
            }
            st = wait_fd(s->fd, POLLOUT, deadline);
            if (st != CROW_SESS_OK)
                break;
        }
    }
    if (sent)
        *sent = done;
    return st;
}

int crow_sess_starttls(struct crow_sess *s, struct crow_tls_ctx *ctx, const char *host,
                       size_t *discarded)
{
    if (discarded)
        *discarded = 0;
    if (s->tls) {
        errno = EALREADY;
        return CROW_SESS_ERROR;
    }
    /* Whatever arrived in plaintext after the upgrade command is dropped, unread. */
    if (discarded)
        *discarded = s->w - s->r;
    s->r = s->w = 0;
    crow_frame_line_init(&s->line, s->line_max, s->line_opts);
    s->tls = crow_tls_new(ctx, s->fd, host);
    if (!s->tls)
        return CROW_SESS_ERROR;
    uint64_t deadline = deadline_after(s->idle_ms);
    for (;;) {
        if (crow_tls_handshake(s->tls) == 0)
            return CROW_SESS_OK;
        if (errno == ECONNRESET)
            return CROW_SESS_EOF;
        if (errno != EAGAIN)
            return CROW_SESS_ERROR;
        int st = wait_fd(s->fd, crow_tls_want(s->tls), deadline);
        if (st != CROW_SESS_OK)
            return st;
    }
}

struct crow_tls *crow_sess_tls(const struct crow_sess *s) { return s->tls; }

const char *crow_sess_tls_error(const struct crow_sess *s)
{
    return s->tls ? crow_tls_error(s->tls) : "";
}

int crow_sess_shutdown(struct crow_sess *s)
{
    int r = 0;
    if (s->tls) {
        int ms = s->write_ms > 0 && s->write_ms < 1000 ? s->write_ms : 1000;
        uint64_t deadline = deadline_after(ms);
        while ((r = crow_tls_shutdown(s->tls)) < 0 && errno == EAGAIN)
            if (wait_fd(s->fd, crow_tls_want(s->tls), deadline) != CROW_SESS_OK)
                break;
    }
    if (s->is_sock && shutdown(s->fd, SHUT_WR) < 0 && r == 0)
        r = -1;
    return r;
}

size_t crow_sess_buffered(const struct crow_sess *s) { return s->w - s->r; }

void crow_sess_counts(const struct crow_sess *s, uint64_t *in, uint64_t *out)
{
    if (in)
        *in = s->n_in;
    if (out)
        *out = s->n_out;
}
