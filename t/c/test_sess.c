/* test_sess.c — session I/O over socketpairs: lines (split, too long, bare CR/LF), exact reads,
 * SMTP DATA, writev, sendfile, timeouts, bandwidth lower bounds, shutdown from another thread,
 * and STARTTLS with real handshakes, including the discard of injected plaintext. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "sess.h"
#include "tap.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void pair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        perror("socketpair");
        exit(2);
    }
}

/* A thread writing pieces with pauses between them, then maybe closing. */
struct feed {
    int fd;
    const char *pieces[16];
    int pause_ms;
    int close_after;
};

static void *feeder(void *arg)
{
    struct feed *f = arg;
    for (int i = 0; i < 16 && f->pieces[i]; i++) {
        if (write(f->fd, f->pieces[i], strlen(f->pieces[i])) < 0)
            break;
        if (f->pause_ms)
            msleep(f->pause_ms);
    }
    if (f->close_after)
        shutdown(f->fd, SHUT_WR);
    return NULL;
}

/* A thread reading everything into a buffer until end of file. */
struct sink {
    int fd;
    unsigned char *buf;
    size_t cap, len;
    int delay_ms;
};

static void *sinker(void *arg)
{
    struct sink *k = arg;
    if (k->delay_ms)
        msleep(k->delay_ms);
    for (;;) {
        ssize_t n = read(k->fd, k->buf + k->len, k->cap - k->len);
        if (n <= 0)
            break;
        k->len += (size_t)n;
        if (k->len == k->cap)
            break;
    }
    return NULL;
}

static int line_is(struct crow_sess *s, const char *want, const char *what)
{
    const unsigned char *l;
    size_t n;
    int st = crow_sess_read_line(s, &l, &n, NULL);
    int good = st == CROW_SESS_OK && n == strlen(want) && memcmp(l, want, n) == 0;
    if (!ok(good, "%s", what)) {
        printf("#   status %d, line '%.*s'\n", st, st == CROW_SESS_OK ? (int)n : 0,
               st == CROW_SESS_OK ? (const char *)l : "");
    }
    return good;
}

static void test_lines(void)
{
    int sv[2];
    pair(sv);
    struct crow_sess *s = crow_sess_new(sv[0], 64);
    ok(s != NULL, "session over a socketpair");
    ok(fcntl(sv[0], F_GETFL) & O_NONBLOCK, "descriptor made non-blocking");
    crow_sess_set_timeouts(s, 3000, 3000);
    crow_sess_set_line(s, 20, CROW_FRAME_LINE_LF_OK);
    struct feed f = {sv[1], {"US", "ER al", "ice\r", "\nPASS x\nNOOP\r\n",
                             "0123456789012345678901234567890123456789\r\nQUIT\r\n",
                             "a\rb\r\n", "LAST\r\n", "unterminated", NULL},
                     20, 1};
    pthread_t th;
    pthread_create(&th, NULL, feeder, &f);
    const unsigned char *l;
    size_t n;
    unsigned flags = 0;
    int st = crow_sess_read_line(s, &l, &n, &flags);
    ok(st == CROW_SESS_OK && n == 10 && memcmp(l, "USER alice", 10) == 0 &&
           flags == CROW_FRAME_F_CRLF, "a line split over four writes, CRLF");
    st = crow_sess_read_line(s, &l, &n, &flags);
    ok(st == CROW_SESS_OK && n == 6 && flags == CROW_FRAME_F_LF, "a bare-LF line (allowed)");
    line_is(s, "NOOP", "next line from the same read");
    is_int(crow_sess_read_line(s, &l, &n, NULL), CROW_SESS_TOO_LONG, "40-byte line over 20: TOO_LONG");
    line_is(s, "QUIT", "the rest of the long line is skipped, the next one read");
    is_int(crow_sess_read_line(s, &l, &n, NULL), CROW_SESS_BAD, "bare CR: BAD");
    line_is(s, "LAST", "after BAD the session goes on");
    is_int(crow_sess_read_line(s, &l, &n, NULL), CROW_SESS_EOF, "unterminated last line then close: EOF");
    pthread_join(th, NULL);
    uint64_t in, out;
    crow_sess_counts(s, &in, &out);
    ok(in > 90 && out == 0, "byte counters (%llu in)", (unsigned long long)in);
    crow_sess_free(s);
    close(sv[0]);
    close(sv[1]);

    /* Bare LF refused when not allowed; limits checked. */
    pair(sv);
    s = crow_sess_new(sv[0], 0);
    ok(crow_sess_set_line(s, 0, 0) == -1 && errno == EINVAL, "line max 0: EINVAL");
    ok(crow_sess_set_line(s, 100000, 0) == 0, "line max 100000 grows the buffer");
    write(sv[1], "HELO x\nEHLO y\r\n", 15);
    is_int(crow_sess_read_line(s, &l, &n, NULL), CROW_SESS_BAD, "bare LF refused: BAD");
    line_is(s, "EHLO y", "then the next line");
    crow_sess_free(s);
    close(sv[0]);
    close(sv[1]);
}

static void test_exact_and_timeouts(void)
{
    int sv[2];
    pair(sv);
    struct crow_sess *s = crow_sess_new(sv[0], 0);
    crow_sess_set_timeouts(s, 200, 200);
    write(sv[1], "SIZE 10\r\n0123", 13);
    line_is(s, "SIZE 10", "command line");
    is_int(crow_sess_buffered(s), 4, "4 bytes of the body already buffered");
    struct feed f = {sv[1], {"456", "789", "rest", NULL}, 30, 0};
    pthread_t th;
    pthread_create(&th, NULL, feeder, &f);
    char body[16] = {0};
    size_t got = 99;
    int st = crow_sess_read_exact(s, body, 10, &got);
    ok(st == CROW_SESS_OK && got == 10 && memcmp(body, "0123456789", 10) == 0,
       "read_exact: 4 buffered + 6 read directly");
    pthread_join(th, NULL);
    st = crow_sess_read_some(s, body, sizeof body, &got);
    ok(st == CROW_SESS_OK && got == 4 && memcmp(body, "rest", 4) == 0, "read_some");

    double t0 = now_s();
    const unsigned char *l;
    size_t n;
    st = crow_sess_read_line(s, &l, &n, NULL);
    double dt = now_s() - t0;
    ok(st == CROW_SESS_TIMEOUT && errno == ETIMEDOUT, "silent peer: TIMEOUT, ETIMEDOUT");
    ok(dt >= 0.19 && dt < 2.0, "after the 200 ms idle timeout (%.3f s)", dt);

    /* The idle timeout restarts with every byte: 5 bytes 100 ms apart outlast a 200 ms idle. */
    struct feed slow = {sv[1], {"a", "b", "c", "d", "e\r\n", NULL}, 100, 0};
    pthread_create(&th, NULL, feeder, &slow);
    line_is(s, "abcde", "a slow but steady peer is not idle");
    pthread_join(th, NULL);

    /* A peer that never reads: the write-stall timeout. */
    static unsigned char big[1 << 22];
    t0 = now_s();
    st = crow_sess_write(s, big, sizeof big);
    dt = now_s() - t0;
    ok(st == CROW_SESS_TIMEOUT && dt >= 0.19 && dt < 3.0,
       "4 MiB to a peer that never reads: TIMEOUT (%.3f s)", dt);

    write(sv[1], "xy", 2);
    shutdown(sv[1], SHUT_WR);
    /* Drain what the session wrote so nothing blocks; not checked. */
    st = crow_sess_read_exact(s, body, 5, &got);
    ok(st == CROW_SESS_EOF && got == 2 && memcmp(body, "xy", 2) == 0,
       "read_exact short at end of file: EOF, got 2");
    crow_sess_free(s);
    close(sv[0]);
    close(sv[1]);
}

static void *shut_later(void *arg)
{
    msleep(150);
    shutdown(*(int *)arg, SHUT_RDWR);
    return NULL;
}

static void test_shutdown_wakes(void)
{
    int sv[2];
    pair(sv);
    struct crow_sess *s = crow_sess_new(sv[0], 0);
    crow_sess_set_timeouts(s, 10000, 0);
    pthread_t th;
    pthread_create(&th, NULL, shut_later, &sv[0]);
    double t0 = now_s();
    const unsigned char *l;
    size_t n;
    int st = crow_sess_read_line(s, &l, &n, NULL);
    double dt = now_s() - t0;
    pthread_join(th, NULL);
    ok(st == CROW_SESS_EOF && dt < 2.0, "shutdown from another thread ends a blocked read (%.3f s)", dt);
    crow_sess_free(s);
    close(sv[0]);
    close(sv[1]);
}

static void test_data(void)
{
    int sv[2];
    pair(sv);
    struct crow_sess *s = crow_sess_new(sv[0], 64);
    crow_sess_set_timeouts(s, 3000, 3000);
    /* Byte-split message: dot-stuffing, a bare LF, then the next command in the same read. */
    struct feed f = {sv[1], {"Subject: hi\r\n\r\n", "..leading dot\r", "\nbare\nlf\r\n.",
                             "\r", "\nQUIT\r\n", NULL}, 15, 0};
    pthread_t th;
    pthread_create(&th, NULL, feeder, &f);
    const unsigned char *d;
    size_t n;
    unsigned flags;
    int st = crow_sess_read_data(s, 1000, 0, &d, &n, &flags);
    const char want[] = "Subject: hi\r\n\r\n.leading dot\r\nbare\nlf\r\n";
    ok(st == CROW_SESS_OK && n == sizeof want - 1 && memcmp(d, want, n) == 0,
       "DATA: unstuffed, ends at CRLF.CRLF split over writes");
    ok(flags & CROW_FRAME_F_BARE_LF, "bare LF flagged");
    pthread_join(th, NULL);
    line_is(s, "QUIT", "the command after DATA is intact");

    /* Over the size limit: TOO_LONG, first MAX bytes kept, then the session goes on. */
    static char big[200000];
    memset(big, 'x', sizeof big);
    for (size_t i = 76; i < sizeof big; i += 78) {
        big[i] = '\r';
        big[i + 1] = '\n';
    }
    struct feed f2 = {sv[1], {big, ".\r\nRSET\r\n", NULL}, 0, 0};
    big[sizeof big - 1] = 0;
    big[sizeof big - 2] = '\n';
    big[sizeof big - 3] = '\r';
    pthread_create(&th, NULL, feeder, &f2);
    st = crow_sess_read_data(s, 50000, 0, &d, &n, &flags);
    ok(st == CROW_SESS_TOO_LONG && n == 50000 && (flags & CROW_FRAME_F_TOO_BIG),
       "200 KB message over a 50 KB limit: TOO_LONG, 50 KB kept");
    pthread_join(th, NULL);
    line_is(s, "RSET", "the session goes on after an oversized message");

    /* REJECT_BARE: BAD at a bare CR; a limit out of range: EINVAL. */
    write(sv[1], "a\rb\r\n.\r\n", 8);
    st = crow_sess_read_data(s, 1000, CROW_FRAME_SMTP_REJECT_BARE, &d, &n, &flags);
    is_int(st, CROW_SESS_BAD, "bare CR with REJECT_BARE: BAD");
    st = crow_sess_read_data(s, 0, 0, &d, &n, &flags);
    ok(st == CROW_SESS_ERROR && errno == EINVAL, "max size 0: EINVAL");
    shutdown(sv[1], SHUT_WR);
    crow_sess_free(s);
    s = crow_sess_new(sv[0], 0);
    st = crow_sess_read_data(s, 1000, 0, &d, &n, &flags);
    is_int(st, CROW_SESS_EOF, "end of file inside DATA: EOF");
    crow_sess_free(s);
    close(sv[0]);
    close(sv[1]);
}

static void test_writev_sendfile(void)
{
    int sv[2];
    pair(sv);
    struct crow_sess *s = crow_sess_new(sv[0], 0);
    crow_sess_set_timeouts(s, 3000, 3000);
    enum { BIG = 3 << 20 };
    unsigned char *src = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        src[i] = (unsigned char)(i * 13 + (i >> 11));
    struct sink k = {sv[1], malloc(BIG + 100), BIG + 100, 0, 50};
    pthread_t th;
    pthread_create(&th, NULL, sinker, &k);
    struct iovec iov[4] = {{"HEAD ", 5}, {src, BIG / 2}, {"", 0}, {src + BIG / 2, BIG - BIG / 2}};
    is_int(crow_sess_writev(s, iov, 4), CROW_SESS_OK, "writev of 3 MiB to a slow reader");
    ok(iov[1].iov_len == BIG / 2, "the caller's iovecs are not modified");
    shutdown(sv[0], SHUT_WR);
    pthread_join(th, NULL);
    ok(k.len == BIG + 5 && memcmp(k.buf, "HEAD ", 5) == 0 && memcmp(k.buf + 5, src, BIG) == 0,
       "every byte in order");
    crow_sess_free(s);
    close(sv[0]);
    close(sv[1]);

    char path[] = "/tmp/crow-test-sess-XXXXXX";
    int ffd = mkstemp(path);
    unlink(path);
    write(ffd, src, BIG);
    pair(sv);
    s = crow_sess_new(sv[0], 0);
    crow_sess_set_timeouts(s, 3000, 3000);
    k.fd = sv[1];
    k.len = 0;
    pthread_create(&th, NULL, sinker, &k);
    size_t sent = 0;
    int st = crow_sess_sendfile(s, ffd, 1000, BIG, &sent);
    ok(st == CROW_SESS_OK && sent == BIG - 1000, "sendfile past the end: OK, short by 1000");
    shutdown(sv[0], SHUT_WR);
    pthread_join(th, NULL);
    ok(k.len == BIG - 1000 && memcmp(k.buf, src + 1000, BIG - 1000) == 0, "sendfile bytes intact");
    st = crow_sess_sendfile(s, -1, 0, 10, &sent);
    ok(st == CROW_SESS_ERROR && sent == 0, "sendfile from a bad descriptor: ERROR");
    crow_sess_free(s);
    close(sv[0]);
    close(sv[1]);
    close(ffd);
    free(src);
    free(k.buf);
}

static void test_bandwidth(void)
{
    int sv[2];
    pair(sv);
    struct crow_sess *s = crow_sess_new(sv[0], 0);
    crow_sess_set_timeouts(s, 5000, 5000);
    ok(crow_sess_set_bandwidth(s, 0, ((uint64_t)1 << 40) + 1) == -1 && errno == EINVAL,
       "rate over the maximum: EINVAL");
    enum { N = 300000, RATE = 250000 };
    ok(crow_sess_set_bandwidth(s, RATE, RATE) == 0, "bandwidth 250 KB/s each way");
    unsigned char *src = calloc(1, N);
    struct sink k = {sv[1], malloc(N), N, 0, 0};
    pthread_t th;
    pthread_create(&th, NULL, sinker, &k);
    double t0 = now_s();
    crow_sess_set_bandwidth(s, RATE, RATE);
    int st = crow_sess_write(s, src, N);
    double dt = now_s() - t0;
    pthread_join(th, NULL);
    double floor = (double)N / RATE;
    ok(st == CROW_SESS_OK && k.len == N, "300 KB written");
    ok(dt >= floor * 0.999, "out: never faster than the rate (%.3f s >= %.3f s)", dt, floor);
    ok(dt < floor * 3, "out: not absurdly slower (%.3f s)", dt);

    /* In: the peer sends at full speed, the session reads at the rate.  Set again: a bucket
     * idle meanwhile has refilled up to its burst (a tenth of a second of the rate). */
    t0 = now_s();
    crow_sess_set_bandwidth(s, RATE, RATE);
    int wfd = sv[1];
    pid_t pid = fork();
    if (pid == 0) {
        for (size_t off = 0; off < N;) {
            ssize_t w = write(wfd, src + off, N - off);
            if (w <= 0)
                _exit(1);
            off += (size_t)w;
        }
        _exit(0);
    }
    size_t got = 0;
    st = crow_sess_read_exact(s, k.buf, N, &got);
    dt = now_s() - t0;
    ok(st == CROW_SESS_OK && got == N, "300 KB read");
    ok(dt >= floor * 0.999, "in: never faster than the rate (%.3f s >= %.3f s)", dt, floor);
    ok(dt < floor * 3, "in: not absurdly slower (%.3f s)", dt);
    int status;
    waitpid(pid, &status, 0);
    crow_sess_free(s);
    close(sv[0]);
    close(sv[1]);
    free(src);
    free(k.buf);
}

/* ------------------------------------------------------------------ STARTTLS */

static struct crow_tls_ctx *sctx, *cctx;

struct peer {
    int fd;
    int mode;        /* 0: inject plaintext with the command; 1: inject after the reply */
    int status;
    char got[128];
};

/* The client of an SMTP-like STARTTLS exchange, itself a crow_sess. */
static void *tls_client(void *arg)
{
    struct peer *p = arg;
    struct crow_sess *c = crow_sess_new(p->fd, 0);
    crow_sess_set_timeouts(c, 3000, 3000);
    const unsigned char *l;
    size_t n;
    if (p->mode == 0)
        crow_sess_write(c, "STARTTLS\r\nMAIL FROM:<evil@x>\r\n", 30);
    else
        crow_sess_write(c, "STARTTLS\r\n", 10);
    if (crow_sess_read_line(c, &l, &n, NULL) != CROW_SESS_OK) {
        p->status = -10;
        goto out;
    }
    if (p->mode == 1)
        crow_sess_write(c, "MAIL FROM:<evil@x>\r\n", 20);
    p->status = crow_sess_starttls(c, cctx, "localhost", NULL);
    if (p->status != CROW_SESS_OK)
        goto out;
    crow_sess_write(c, "EHLO tls\r\n", 10);
    if (crow_sess_read_line(c, &l, &n, NULL) == CROW_SESS_OK && n < sizeof p->got)
        memcpy(p->got, l, n);
    struct iovec v[3] = {{"DATA\r\n", 6}, {"body\r\n..x\r\n", 11}, {".\r\n", 3}};
    crow_sess_writev(c, v, 3);
    crow_sess_shutdown(c);
    while (crow_sess_read_line(c, &l, &n, NULL) == CROW_SESS_OK)
        ;
out:
    crow_sess_free(c);
    return NULL;
}

struct hs_arg {
    struct crow_sess *c;
    int st;
};

static void *client_handshake(void *arg)
{
    struct hs_arg *h = arg;
    h->st = crow_sess_starttls(h->c, cctx, NULL, NULL);
    return NULL;
}

struct rd_arg {
    struct crow_sess *c;
    unsigned char *dst;
    size_t got;
};

static void *client_read(void *arg)
{
    struct rd_arg *r = arg;
    crow_sess_read_exact(r->c, r->dst, 200000, &r->got);
    return NULL;
}

static void test_starttls(void)
{
    int sv[2];
    pair(sv);
    struct crow_sess *s = crow_sess_new(sv[0], 0);
    crow_sess_set_timeouts(s, 3000, 3000);
    struct peer p = {sv[1], 0, 0, {0}};
    pthread_t th;
    pthread_create(&th, NULL, tls_client, &p);
    line_is(s, "STARTTLS", "plaintext STARTTLS command");
    is_int(crow_sess_buffered(s), 20, "the injected command is buffered in plaintext");
    crow_sess_write(s, "220 go ahead\r\n", 14);
    size_t discarded = 0;
    is_int(crow_sess_starttls(s, sctx, NULL, &discarded), CROW_SESS_OK, "server STARTTLS handshake");
    is_int(discarded, 20, "the 20 plaintext bytes after STARTTLS are discarded");
    ok(crow_sess_tls(s) != NULL, "session is TLS now");
    line_is(s, "EHLO tls", "the first line after the upgrade came through TLS, not the injection");
    crow_sess_write(s, "250 ok\r\n", 8);
    line_is(s, "DATA", "DATA over TLS");
    const unsigned char *d;
    size_t n;
    unsigned flags;
    int st = crow_sess_read_data(s, 1000, 0, &d, &n, &flags);
    ok(st == CROW_SESS_OK && n == 10 && memcmp(d, "body\r\n.x\r\n", 10) == 0,
       "a message over TLS, unstuffed");
    const unsigned char *l;
    is_int(crow_sess_read_line(s, &l, &n, NULL), CROW_SESS_EOF, "close_notify: EOF");
    ok(crow_sess_starttls(s, sctx, NULL, NULL) == CROW_SESS_ERROR && errno == EALREADY,
       "STARTTLS twice: EALREADY");
    crow_sess_shutdown(s);
    pthread_join(th, NULL);
    ok(p.status == CROW_SESS_OK && strcmp(p.got, "250 ok") == 0, "client side: handshake, reply");
    crow_sess_free(s);
    close(sv[0]);
    close(sv[1]);

    /* Plaintext injected after the server's go-ahead arrives where the ClientHello should: the
     * handshake fails, the command is never executed. */
    pair(sv);
    s = crow_sess_new(sv[0], 0);
    crow_sess_set_timeouts(s, 3000, 3000);
    struct peer p2 = {sv[1], 1, 0, {0}};
    pthread_create(&th, NULL, tls_client, &p2);
    line_is(s, "STARTTLS", "STARTTLS command (2)");
    crow_sess_write(s, "220 go ahead\r\n", 14);
    st = crow_sess_starttls(s, sctx, NULL, &discarded);
    int e = errno;
    ok(st == CROW_SESS_ERROR && e == EPROTO, "plaintext instead of a ClientHello: ERROR, EPROTO");
    ok(strlen(crow_sess_tls_error(s)) > 0, "reason: %s", crow_sess_tls_error(s));
    shutdown(sv[0], SHUT_RDWR);
    pthread_join(th, NULL);
    ok(p2.status != CROW_SESS_OK, "client's handshake fails too");
    crow_sess_free(s);
    close(sv[0]);
    close(sv[1]);

    /* A handshake that never comes: the idle timeout bounds it. */
    pair(sv);
    s = crow_sess_new(sv[0], 0);
    crow_sess_set_timeouts(s, 200, 200);
    double t0 = now_s();
    st = crow_sess_starttls(s, sctx, NULL, NULL);
    double dt = now_s() - t0;
    ok(st == CROW_SESS_TIMEOUT && dt < 2.0, "silent client: handshake TIMEOUT (%.3f s)", dt);
    crow_sess_free(s);
    close(sv[0]);
    close(sv[1]);

    /* sendfile over TLS falls back to pread + TLS write. */
    pair(sv);
    s = crow_sess_new(sv[0], 0);
    struct crow_sess *c = crow_sess_new(sv[1], 0);
    crow_sess_set_timeouts(s, 3000, 3000);
    crow_sess_set_timeouts(c, 3000, 3000);
    /* Client handshake in a thread: the server's starttls blocks until it completes. */
    struct hs_arg h = {c, -5};
    pthread_t th2;
    pthread_create(&th2, NULL, client_handshake, &h);
    st = crow_sess_starttls(s, sctx, NULL, NULL);
    pthread_join(th2, NULL);
    ok(st == CROW_SESS_OK && h.st == CROW_SESS_OK, "TLS both sides");
    enum { SZ = 200000 };
    unsigned char *src = malloc(SZ), *dst = malloc(SZ);
    for (size_t i = 0; i < SZ; i++)
        src[i] = (unsigned char)(i * 7);
    char path[] = "/tmp/crow-test-sess-XXXXXX";
    int ffd = mkstemp(path);
    unlink(path);
    write(ffd, src, SZ);
    struct rd_arg r = {c, dst, 0};
    pthread_create(&th2, NULL, client_read, &r);
    size_t sent = 0;
    st = crow_sess_sendfile(s, ffd, 0, SZ, &sent);
    pthread_join(th2, NULL);
    ok(st == CROW_SESS_OK && sent == SZ && r.got == SZ && memcmp(src, dst, SZ) == 0,
       "200 KB sendfile over TLS intact");
    close(ffd);
    free(src);
    free(dst);
    crow_sess_free(s);
    crow_sess_free(c);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    test_lines();
    test_exact_and_timeouts();
    test_shutdown_wakes();
    test_data();
    test_writev_sendfile();
    test_bandwidth();

    char dir[128], cmd[400], cert[200], key[200], err[256];
    snprintf(dir, sizeof dir, "/tmp/crow-test-sess-%d", (int)getpid());
    const char *root = getenv("CROW_ROOT");
    snprintf(cmd, sizeof cmd, "%s/tools/mkcert %s", root ? root : ".", dir);
    ok(system(cmd) == 0, "test certificate");
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    sctx = crow_tls_server_ctx(cert, key, err, sizeof err);
    cctx = crow_tls_client_ctx(cert, err, sizeof err);
    ok(sctx && cctx, "TLS contexts");
    if (sctx && cctx)
        test_starttls();
    crow_tls_ctx_free(sctx);
    crow_tls_ctx_free(cctx);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    system(cmd);
    return tap_done();
}
