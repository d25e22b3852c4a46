/* ftpdata.c — FTP data connections: the byte work of RETR, STOR/APPE/STOU and listings.
 *
 * Design: one struct per data connection, used by the session thread that opened it, which
 * decided everything before (paths, permissions, offsets, quotas: Lisp).  A transfer is a loop
 * of (ask the buckets for a grant, move at most that many bytes, give back what was not
 * moved), blocking the thread but never the process: the data descriptor is non-blocking, and
 * every wait — for the socket, for a TLS record, for the buckets to refill — is one poll(2)
 * that also watches the control connection.  A readable control connection ends the transfer
 * at once with CROW_FTPDATA_CONTROL (the client sends ABOR while it stops reading, so a server
 * that only waited for the data socket would sit out its write timeout); the loop also polls
 * the control descriptor without waiting once per chunk, so ABOR stops a transfer the client
 * keeps reading (or, for uploads, feeding) too.  Binary files on a plain connection go by
 * sendfile(2) (chunks of at most 4 MiB, or what the buckets grant) under TCP_CORK, so every
 * segment leaves full where the end of each call would push a short one (as nginx's
 * tcp_nopush: RETR 256 MiB on loopback +5-8% in alternating rounds, the client's receive
 * being the bound); ASCII files and everything under TLS go through a 128 KiB buffer (pread,
 * LF -> CRLF, crow_tls_write).  A binary receive on a plain connection goes
 * socket -> pipe -> file by splice(2) (chunks of at most 1 MiB, the pipe grown to match): the
 * socket's pages move into the pipe and are copied once, into the file, where recv + write
 * copies twice (a quarter less server CPU per upload to tmpfs, measured on loopback).  A file
 * that refuses splice (O_APPEND for APPE, a filesystem without splice_write: EINVAL) gets the
 * bytes already in the pipe by read + write and the rest of the transfer by the buffer path.
 * That path reads into the buffer, drops the CR of
 * each CRLF in ASCII mode (a CR ending a chunk is held until the next one shows whether LF
 * follows), and write(2)s to the file, stopping at a byte limit (the quota); failures of the
 * file and of the connection are told apart (FILE vs NET) so the server can answer 451/552 vs
 * 426.  Throttling uses c-core/throttle token buckets, emptied at the start so no transfer ever
 * beats its rate; a user's bucket is shared by the connections of every session of that user
 * behind a mutex.  Time spent waiting for the buckets is not idle time. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "crow.h"
#include "ftpdata.h"
#include "throttle.h"

#define BUF_SIZE (128 * 1024)
#define SENDFILE_CHUNK ((size_t)4 << 20)
#define SPLICE_CHUNK ((size_t)1 << 20)

struct crow_ftpdata_share {
    pthread_mutex_t lock;
    struct crow_throttle bucket;
};

struct crow_ftpdata {
    int fd, control, timeout_ms;
    struct crow_tls *tls;
    struct crow_throttle in, out;
    struct crow_ftpdata_share *share_in, *share_out;
    unsigned char *buf;   /* BUF_SIZE */
    unsigned char *conv;  /* 2 * BUF_SIZE + 1 */
    int pipe[2];          /* splice receive, -1 until used */
    unsigned char *pend;  /* ASCII send: converted bytes not yet sent (in conv) */
    size_t pend_len;
    int send_prev;        /* ASCII crow_ftpdata_send: the last source byte */
    int cr_held;          /* ASCII receive: a CR ended the last chunk (kept across CONTROL) */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Empties bucket B (a transfer starts with no credit). */
static void drain(struct crow_throttle *b, uint64_t now)
{
    uint64_t have = crow_throttle_available(b, now);
    if (have != UINT64_MAX && have)
        crow_throttle_take(b, now, (size_t)have);
}

struct crow_ftpdata_share *crow_ftpdata_share_new(uint64_t rate)
{
    struct crow_ftpdata_share *sh = calloc(1, sizeof *sh);
    if (!sh) {
        errno = ENOMEM;
        return NULL;
    }
    uint64_t now = now_ns();
    if (crow_throttle_init(&sh->bucket, rate, 0, now) < 0) {
        free(sh);
        return NULL;
    }
    drain(&sh->bucket, now);
    pthread_mutex_init(&sh->lock, NULL);
    return sh;
}

void crow_ftpdata_share_free(struct crow_ftpdata_share *sh)
{
    if (!sh)
        return;
    pthread_mutex_destroy(&sh->lock);
    free(sh);
}

struct crow_ftpdata *crow_ftpdata_new(int fd, int control_fd, int timeout_ms)
{
    struct crow_ftpdata *d = calloc(1, sizeof *d);
    int fl = fcntl(fd, F_GETFL);
    if (!d || fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        int e = d ? errno : ENOMEM;
        free(d);
        close(fd);
        errno = e;
        return NULL;
    }
    d->fd = fd;
    d->pipe[0] = d->pipe[1] = -1;
    d->control = control_fd;
    d->timeout_ms = timeout_ms > 0 ? timeout_ms : -1;
    uint64_t now = now_ns();
    crow_throttle_init(&d->in, 0, 0, now);
    crow_throttle_init(&d->out, 0, 0, now);
    return d;
}

int crow_ftpdata_set_limits(struct crow_ftpdata *d, uint64_t rate_in, uint64_t rate_out,
                            struct crow_ftpdata_share *share_in,
                            struct crow_ftpdata_share *share_out)
{
    uint64_t now = now_ns();
    struct crow_throttle in, out;
    if (crow_throttle_init(&in, rate_in, 0, now) < 0 ||
        crow_throttle_init(&out, rate_out, 0, now) < 0)
        return -1;
    drain(&in, now);
    drain(&out, now);
    d->in = in;
    d->out = out;
    d->share_in = share_in;
    d->share_out = share_out;
    return 0;
}

/* ------------------------------------------------------------------ waits */

/* Polls the control descriptor without waiting: 1 when it is readable (or hung up). */
static int control_ready(const struct crow_ftpdata *d)
{
    if (d->control < 0)
        return 0;
    struct pollfd p = {.fd = d->control, .events = POLLIN};
    int r;
    do
        r = poll(&p, 1, 0);
    while (r < 0 && errno == EINTR);
    return r > 0;
}

/* Waits until the data descriptor has EVENTS, the control descriptor is readable, or the
 * timeout.  Returns OK, CONTROL, TIMEOUT or NET. */
static int wait_io(struct crow_ftpdata *d, short events, int watch_control)
{
    struct pollfd p[2] = {{.fd = d->fd, .events = events},
                          {.fd = d->control, .events = POLLIN}};
    int n = watch_control && d->control >= 0 ? 2 : 1;
    for (;;) {
        int r = poll(p, (nfds_t)n, d->timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return CROW_FTPDATA_NET;
        if (r == 0) {
            errno = ETIMEDOUT;
            return CROW_FTPDATA_TIMEOUT;
        }
        if (n == 2 && p[1].revents)
            return CROW_FTPDATA_CONTROL;
        return CROW_FTPDATA_OK;  /* ready, or an error the next call reports */
    }
}

/* Sleeps NS nanoseconds (a bucket refilling) unless the control descriptor becomes readable
 * first.  Returns OK or CONTROL. */
static int wait_refill(struct crow_ftpdata *d, uint64_t ns)
{
    int ms = (int)((ns + 999999) / 1000000);
    if (ms < 1)
        ms = 1;
    if (ms > 1000)
        ms = 1000;
    struct pollfd p = {.fd = d->control, .events = POLLIN};
    int r;
    do
        r = poll(&p, d->control >= 0 ? 1 : 0, ms);
    while (r < 0 && errno == EINTR);
    return r > 0 ? CROW_FTPDATA_CONTROL : CROW_FTPDATA_OK;
}

/* Grants up to WANT bytes from bucket B and share SH, waiting for them to refill.  Returns OK
 * with *GOT > 0, or CONTROL. */
static int grant(struct crow_ftpdata *d, struct crow_throttle *b, struct crow_ftpdata_share *sh,
                 size_t want, size_t *got)
{
    for (;;) {
        uint64_t now = now_ns();
        size_t n = crow_throttle_take(b, now, want);
        uint64_t wait = n ? 0 : crow_throttle_wait_ns(b, now, want);
        if (n && sh) {
            pthread_mutex_lock(&sh->lock);
            size_t m = crow_throttle_take(&sh->bucket, now, n);
            if (!m)
                wait = crow_throttle_wait_ns(&sh->bucket, now, n);
            pthread_mutex_unlock(&sh->lock);
            if (m < n)
                crow_throttle_refund(b, n - m);
            n = m;
        }
        if (n) {
            *got = n;
            return CROW_FTPDATA_OK;
        }
        if (wait_refill(d, wait ? wait : 1000000) == CROW_FTPDATA_CONTROL)
            return CROW_FTPDATA_CONTROL;
    }
}

static void refund(struct crow_throttle *b, struct crow_ftpdata_share *sh, size_t n)
{
    if (!n)
        return;
    crow_throttle_refund(b, n);
    if (sh) {
        pthread_mutex_lock(&sh->lock);
        crow_throttle_refund(&sh->bucket, n);
        pthread_mutex_unlock(&sh->lock);
    }
}

/* ------------------------------------------------------------------ TLS */

int crow_ftpdata_starttls(struct crow_ftpdata *d, struct crow_tls_ctx *ctx)
{
    if (d->tls) {
        errno = EALREADY;
        return CROW_FTPDATA_NET;
    }
    d->tls = crow_tls_new(ctx, d->fd, NULL);
    if (!d->tls)
        return CROW_FTPDATA_NET;
    /* an uploading client never reads: a ticket left unread makes its close a reset */
    crow_tls_no_tickets(d->tls);
    for (;;) {
        if (crow_tls_handshake(d->tls) == 0)
            return CROW_FTPDATA_OK;
        if (errno != EAGAIN)
            return CROW_FTPDATA_NET;
        int st = wait_io(d, (short)crow_tls_want(d->tls), 0);
        if (st != CROW_FTPDATA_OK)
            return st;
    }
}

const char *crow_ftpdata_tls_error(const struct crow_ftpdata *d)
{
    return d->tls ? crow_tls_error(d->tls) : "";
}

/* ------------------------------------------------------------------ sending */

/* Writes all N bytes at P, throttled.  Returns OK, TIMEOUT, CONTROL or NET; *PUT = the bytes
 * written (all N with OK, fewer otherwise). */
static int put(struct crow_ftpdata *d, const unsigned char *p, size_t n, size_t *put_n)
{
    *put_n = 0;
    while (n) {
        size_t allowed;
        int st = grant(d, &d->out, d->share_out, n, &allowed);
        if (st != CROW_FTPDATA_OK)
            return st;
        ssize_t w;
        if (d->tls)
            w = crow_tls_write(d->tls, p, allowed);
        else
            w = send(d->fd, p, allowed, MSG_NOSIGNAL);
        if (w < 0) {
            refund(&d->out, d->share_out, allowed);
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return CROW_FTPDATA_NET;
            st = wait_io(d, d->tls ? (short)crow_tls_want(d->tls) : POLLOUT, 1);
            if (st != CROW_FTPDATA_OK)
                return st;
            continue;
        }
        refund(&d->out, d->share_out, allowed - (size_t)w);
        p += w;
        n -= (size_t)w;
        *put_n += (size_t)w;
    }
    return CROW_FTPDATA_OK;
}

/* Sends what an ASCII send stopped by CONTROL (or a timeout) left converted but unsent: the
 * caller counted its source bytes as sent.  Returns OK when nothing is left, else put's
 * status. */
static int flush_pending(struct crow_ftpdata *d)
{
    size_t w;
    if (!d->pend_len)
        return CROW_FTPDATA_OK;
    int st = put(d, d->pend, d->pend_len, &w);
    d->pend += w;
    d->pend_len -= w;
    return st;
}

/* Sends the M converted bytes at d->conv for a chunk of source bytes: whatever put leaves
 * unsent stays pending in D (the chunk then counts as consumed).  Returns put's status. */
static int put_converted(struct crow_ftpdata *d, size_t m)
{
    size_t w;
    int st = put(d, d->conv, m, &w);
    if (st != CROW_FTPDATA_OK) {
        d->pend = d->conv + w;
        d->pend_len = m - w;
    }
    return st;
}

size_t crow_ftpdata_to_crlf(const unsigned char *in, size_t n, unsigned char *out, int *prev)
{
    size_t o = 0;
    int pv = *prev;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = in[i];
        if (c == '\n' && pv != '\r')
            out[o++] = '\r';
        out[o++] = c;
        pv = c;
    }
    *prev = pv;
    return o;
}

size_t crow_ftpdata_from_crlf(const unsigned char *in, size_t n, unsigned char *out,
                              int *cr_held)
{
    size_t o = 0, i = 0;
    if (n == 0)
        return 0;
    if (*cr_held) {
        if (in[0] != '\n')
            out[o++] = '\r';
        *cr_held = 0;
    }
    for (; i < n; i++) {
        unsigned char c = in[i];
        if (c == '\r') {
            if (i + 1 == n) {
                *cr_held = 1;
                break;
            }
            if (in[i + 1] == '\n')
                continue;
        }
        out[o++] = c;
    }
    return o;
}

static int ensure_buffers(struct crow_ftpdata *d)
{
    if (!d->buf)
        d->buf = malloc(BUF_SIZE);
    if (!d->conv)
        d->conv = malloc(2 * BUF_SIZE + 1);
    if (!d->buf || !d->conv) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

int crow_ftpdata_send(struct crow_ftpdata *d, const void *buf, size_t n, int ascii,
                      uint64_t *sent)
{
    const unsigned char *p = buf;
    size_t done = 0;
    int st = CROW_FTPDATA_OK;
    if (sent)
        *sent = 0;
    if (ascii && ensure_buffers(d) < 0)
        return CROW_FTPDATA_NET;
    st = flush_pending(d);
    while (st == CROW_FTPDATA_OK && done < n) {
        size_t chunk = n - done < BUF_SIZE ? n - done : BUF_SIZE, w;
        if (ascii) {
            size_t m = crow_ftpdata_to_crlf(p + done, chunk, d->conv, &d->send_prev);
            st = put_converted(d, m);
            w = chunk;   /* sent or pending */
        } else {
            st = put(d, p + done, chunk, &w);
        }
        done += w;
        if (sent)
            *sent = done;
    }
    return st;
}

static int net_errno(int e)
{
    return e == EPIPE || e == ECONNRESET || e == ENOTCONN || e == ECONNABORTED ||
           e == ETIMEDOUT || e == EHOSTUNREACH || e == ENETUNREACH;
}

/* The binary send of a plain connection: sendfile(2) from OFFSET to the end of FILE_FD. */
static int send_plain(struct crow_ftpdata *d, int file_fd, uint64_t offset, uint64_t *sent)
{
    uint64_t done = 0;
    int st;
    off_t off = (off_t)offset;
    for (;;) {
        if (control_ready(d))
            return CROW_FTPDATA_CONTROL;
        size_t allowed;
        st = grant(d, &d->out, d->share_out, SENDFILE_CHUNK, &allowed);
        if (st != CROW_FTPDATA_OK)
            return st;
        ssize_t w = sendfile(d->fd, file_fd, &off, allowed);
        if (w < 0) {
            int e = errno;
            refund(&d->out, d->share_out, allowed);
            if (e == EINTR)
                continue;
            if (e == EAGAIN) {
                st = wait_io(d, POLLOUT, 1);
                if (st != CROW_FTPDATA_OK)
                    return st;
                continue;
            }
            errno = e;
            return net_errno(e) ? CROW_FTPDATA_NET : CROW_FTPDATA_FILE;
        }
        refund(&d->out, d->share_out, allowed - (size_t)w);
        if (w == 0)
            return CROW_FTPDATA_OK;
        done += (uint64_t)w;
        if (sent)
            *sent = done;
    }
}

int crow_ftpdata_send_file(struct crow_ftpdata *d, int file_fd, uint64_t offset, int ascii,
                           uint64_t *sent)
{
    uint64_t done = 0;
    int st = CROW_FTPDATA_OK;
    if (sent)
        *sent = 0;
    st = flush_pending(d);   /* an ASCII send stopped by a command, resumed */
    if (st != CROW_FTPDATA_OK)
        return st;
    if (!ascii && !d->tls) {
        /* corked, every segment leaves full (the end of each sendfile call would otherwise
           push a short one); uncorking flushes the last */
        int one = 1, zero = 0;
        (void)setsockopt(d->fd, IPPROTO_TCP, TCP_CORK, &one, sizeof one);
        st = send_plain(d, file_fd, offset, sent);
        int e = errno; /* the caller reads why the send stopped */
        (void)setsockopt(d->fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof zero);
        errno = e;
        return st;
    }
    if (ensure_buffers(d) < 0)
        return CROW_FTPDATA_NET;
    int prev = 0;
    if (ascii && offset > 0) {
        unsigned char c;
        if (pread(file_fd, &c, 1, (off_t)offset - 1) == 1)
            prev = c;
    }
    for (;;) {
        if (control_ready(d))
            return CROW_FTPDATA_CONTROL;
        ssize_t r = pread(file_fd, d->buf, BUF_SIZE, (off_t)(offset + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return CROW_FTPDATA_FILE;
        }
        if (r == 0)
            return CROW_FTPDATA_OK;
        size_t w;
        if (ascii) {
            size_t m = crow_ftpdata_to_crlf(d->buf, (size_t)r, d->conv, &prev);
            st = put_converted(d, m);
            w = (size_t)r;   /* sent or pending */
        } else {
            st = put(d, d->buf, (size_t)r, &w);
        }
        done += (uint64_t)w;
        if (sent)
            *sent = done;
        if (st != CROW_FTPDATA_OK)
            return st;
    }
}

/* ------------------------------------------------------------------ receiving */

/* Writes N bytes at P to FILE_FD.  Returns 0, or -1 with errno. */
static int write_file(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void close_pipe(struct crow_ftpdata *d)
{
    if (d->pipe[0] >= 0) {
        close(d->pipe[0]);
        close(d->pipe[1]);
    }
    d->pipe[0] = d->pipe[1] = -1;
}

/* Moves the N bytes waiting in D's pipe into FILE_FD.  Returns 0; 1 when the file refuses
 * splice (EINVAL: O_APPEND, no splice_write), the bytes then moved by read + write; or -1 with
 * errno (the file's). */
static int drain_pipe(struct crow_ftpdata *d, int file_fd, size_t n)
{
    while (n) {
        ssize_t w = splice(d->pipe[0], NULL, file_fd, NULL, n, SPLICE_F_MOVE);
        if (w > 0) {
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w == 0 || errno != EINVAL)
            return w == 0 ? (errno = EIO, -1) : -1;
        if (ensure_buffers(d) < 0)
            return -1;
        while (n) {
            ssize_t r = read(d->pipe[0], d->buf, n < BUF_SIZE ? n : BUF_SIZE);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                return r == 0 ? (errno = EIO, -1) : -1;
            if (write_file(file_fd, d->buf, (size_t)r) < 0)
                return -1;
            n -= (size_t)r;
        }
        return 1;
    }
    return 0;
}

/* The binary receive of a plain connection by splice(2), *DONE bytes written so far.  Returns
 * a status like crow_ftpdata_recv_file's, or 1: go on with the buffer path (no pipe, or the
 * file refuses splice). */
static int recv_splice(struct crow_ftpdata *d, int file_fd, uint64_t limit, int do_fsync,
                       uint64_t *done, uint64_t *got)
{
    if (d->pipe[0] < 0) {
        if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) < 0)
            return 1;
        fcntl(d->pipe[1], F_SETPIPE_SZ, (int)SPLICE_CHUNK); /* the default 64 KiB works too */
    }
    for (;;) {
        if (control_ready(d))
            return CROW_FTPDATA_CONTROL;
        /* one byte past the limit tells "more than the limit" from "exactly the limit" */
        size_t want = SPLICE_CHUNK, allowed;
        if (limit != UINT64_MAX && limit - *done < want)
            want = (size_t)(limit - *done) + 1;
        int st = grant(d, &d->in, d->share_in, want, &allowed);
        if (st != CROW_FTPDATA_OK)
            return st;
        ssize_t r = splice(d->fd, NULL, d->pipe[1], NULL, allowed,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (r < 0) {
            int e = errno;
            refund(&d->in, d->share_in, allowed);
            if (e == EINTR)
                continue;
            if (e == EAGAIN) {
                st = wait_io(d, POLLIN, 1);
                if (st != CROW_FTPDATA_OK)
                    return st;
                continue;
            }
            if (e == EINVAL && *done == 0)
                return 1;   /* a socket splice cannot read */
            errno = e;
            return CROW_FTPDATA_NET;
        }
        refund(&d->in, d->share_in, allowed - (size_t)r);
        if (r == 0) {
            if (do_fsync && fsync(file_fd) < 0)
                return CROW_FTPDATA_FILE;
            return CROW_FTPDATA_OK;
        }
        size_t m = (size_t)r;
        int over = 0;
        if (limit != UINT64_MAX && m > limit - *done) {
            m = (size_t)(limit - *done);
            over = 1;
        }
        int fell_back = m ? drain_pipe(d, file_fd, m) : 0;
        if (fell_back < 0) {
            int e = errno;
            close_pipe(d);   /* bytes may be left in it */
            errno = e;
            return CROW_FTPDATA_FILE;
        }
        *done += m;
        if (got)
            *got = *done;
        if (over) {
            close_pipe(d);   /* the bytes past the limit */
            return CROW_FTPDATA_LIMIT;
        }
        if (fell_back)
            return 1;
    }
}

int crow_ftpdata_recv_file(struct crow_ftpdata *d, int file_fd, int ascii, uint64_t limit,
                           int do_fsync, uint64_t *got)
{
    uint64_t done = 0;
    if (got)
        *got = 0;
    if (!ascii && !d->tls) {
        int st = recv_splice(d, file_fd, limit, do_fsync, &done, got);
        if (st != 1)
            return st;
    }
    if (ensure_buffers(d) < 0)
        return CROW_FTPDATA_NET;
    for (;;) {
        if (control_ready(d))
            return CROW_FTPDATA_CONTROL;
        size_t allowed;
        int st = grant(d, &d->in, d->share_in, BUF_SIZE, &allowed);
        if (st != CROW_FTPDATA_OK)
            return st;
        ssize_t r;
        if (d->tls)
            r = crow_tls_read(d->tls, d->buf, allowed);
        else
            r = recv(d->fd, d->buf, allowed, 0);
        if (r < 0) {
            refund(&d->in, d->share_in, allowed);
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return CROW_FTPDATA_NET;
            st = wait_io(d, d->tls ? (short)crow_tls_want(d->tls) : POLLIN, 1);
            if (st != CROW_FTPDATA_OK)
                return st;
            continue;
        }
        refund(&d->in, d->share_in, allowed - (size_t)r);
        const unsigned char *p = d->buf;
        size_t m = (size_t)r;
        if (r == 0) {
            if (d->cr_held) {        /* a final CR stays data */
                d->conv[0] = '\r';
                p = d->conv;
                m = 1;
                d->cr_held = 0;
            } else {
                if (do_fsync && fsync(file_fd) < 0)
                    return CROW_FTPDATA_FILE;
                return CROW_FTPDATA_OK;
            }
        } else if (ascii) {
            m = crow_ftpdata_from_crlf(d->buf, (size_t)r, d->conv, &d->cr_held);
            p = d->conv;
        }
        int over = 0;
        if (limit != UINT64_MAX && m > limit - done) {
            m = (size_t)(limit - done);
            over = 1;
        }
        if (m && write_file(file_fd, p, m) < 0)
            return CROW_FTPDATA_FILE;
        done += m;
        if (got)
            *got = done;
        if (over)
            return CROW_FTPDATA_LIMIT;
        if (r == 0) {
            if (do_fsync && fsync(file_fd) < 0)
                return CROW_FTPDATA_FILE;
            return CROW_FTPDATA_OK;
        }
    }
}

/* ------------------------------------------------------------------ closing */

int crow_ftpdata_close(struct crow_ftpdata *d, int abortive)
{
    if (!d)
        return 0;
    int ret = 0, e = 0;
    if (d->tls && !abortive) {
        int saved = d->timeout_ms;
        if (d->timeout_ms < 0 || d->timeout_ms > 1000)
            d->timeout_ms = 1000;
        for (;;) {
            if (crow_tls_shutdown(d->tls) == 0)
                break;
            if (errno != EAGAIN || wait_io(d, (short)crow_tls_want(d->tls), 0) != CROW_FTPDATA_OK) {
                ret = -1;
                e = errno;
                break;
            }
        }
        d->timeout_ms = saved;
    }
    if (abortive) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(d->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    crow_tls_free(d->tls);
    close_pipe(d);
    close(d->fd);
    free(d->buf);
    free(d->conv);
    free(d);
    if (ret < 0)
        errno = e;
    return ret;
}

size_t crow_ftp_telnet_strip(unsigned char *buf, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != 255)
            buf[o++] = buf[i];
        else if (i + 1 < len && buf[i + 1] == 255)
            buf[o++] = buf[++i];
        else
            i++; /* IAC and the command byte after it */
    }
    return o;
}
