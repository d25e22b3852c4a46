/* test_evloop_sink.c — crow_ev_continue_sink over loopback: an 8 MiB body (Content-Length, then
 * chunked) reaches the sink in order while the loop's own memory stays small, a pipelined
 * request after it, a sink that fails (write and end), a body over the limit, a client that
 * goes away mid-body, and the head deadline restarting with each piece of a slow body but
 * closing a stalled one; the sink is dropped exactly when it is not handed back. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "evloop.h"
#include "tap.h"

#define BODY (8u << 20)

/* ------------------------------------------------------------------ a checking sink */

struct csink {
    struct crow_ev_sink s;
    uint64_t got;
    int bad_order;
    uint64_t fail_after; /* write fails (EFBIG) once this many bytes came; 0 = never */
    int fail_end;        /* end fails with EBADMSG */
};

static atomic_int drops, ends;

static int cs_write(void *arg, const char *p, size_t n)
{
    struct csink *c = arg;
    if (c->fail_after && c->got + n > c->fail_after) {
        errno = EFBIG;
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] != (unsigned char)('a' + (c->got + i) % 26))
            c->bad_order = 1;
    c->got += n;
    return 0;
}

static int cs_end(void *arg)
{
    struct csink *c = arg;
    atomic_fetch_add(&ends, 1);
    if (c->fail_end) {
        errno = EBADMSG;
        return -1;
    }
    return 0;
}

static void cs_drop(void *arg)
{
    atomic_fetch_add(&drops, 1);
    free(arg);
}

/* ------------------------------------------------------------------ counting allocator */

static atomic_long live, peak;

static void *count_alloc(void *ctx, size_t size, size_t align)
{
    (void)ctx;
    void *p = align ? aligned_alloc(align, (size + align - 1) / align * align) : malloc(size);
    if (p) {
        long l = atomic_fetch_add(&live, (long)size) + (long)size;
        long pk = atomic_load(&peak);
        while (l > pk && !atomic_compare_exchange_weak(&peak, &pk, l))
            ;
    }
    return p;
}

static void count_free(void *ctx, void *p, size_t size)
{
    (void)ctx;
    if (p)
        atomic_fetch_sub(&live, (long)size);
    free(p);
}

static const struct crow_allocator counting = {count_alloc, count_free, NULL};

/* ------------------------------------------------------------------ server */

struct server {
    struct crow_ev *ev;
    pthread_t th;
    atomic_int stop;
    int lfd, port;
    char last[256]; /* what the last sunk REQUEST looked like */
};

static void reply(struct crow_ev *ev, uint64_t conn, int status, const char *body, int flags)
{
    char head[512];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n\r\n%s", status,
                     strlen(body), body);
    struct iovec iov = {head, (size_t)n};
    crow_ev_reply(ev, conn, &iov, 1, flags);
}

static void handle(struct server *s, const struct crow_ev_unit *u)
{
    const struct crow_ev_http *h = &u->http;
    const char *t = u->data + h->target_off;
    char out[256];
    switch (u->kind) {
    case CROW_EV_HEAD: {
        struct csink *c = calloc(1, sizeof *c);
        c->s = (struct crow_ev_sink){cs_write, cs_end, cs_drop, c};
        if (h->target_len >= 5 && !memcmp(t, "/fail", 5))
            c->fail_after = 1000;
        if (h->target_len >= 7 && !memcmp(t, "/badend", 7))
            c->fail_end = 1;
        size_t limit = h->target_len >= 6 && !memcmp(t, "/small", 6) ? 100 : BODY + 1000;
        if (crow_ev_continue_sink(s->ev, u->conn, limit, &c->s) != 0) {
            free(c);
            reply(s->ev, u->conn, 500, "", CROW_EV_CLOSE_AFTER);
        }
        return;
    }
    case CROW_EV_REQUEST:
        if (h->sink) {
            struct csink *c = h->sink->arg;
            snprintf(s->last, sizeof s->last, "got=%llu order=%s errno=%d body_len=%u",
                     (unsigned long long)c->got, c->bad_order ? "bad" : "ok", h->sink_errno,
                     h->body_len);
            reply(s->ev, u->conn, h->sink_errno ? 413 : 200, s->last, 0);
            free(c); /* handed back: the caller frees it */
        } else {
            snprintf(out, sizeof out, "plain %.*s body=%u", (int)h->target_len, t, h->body_len);
            reply(s->ev, u->conn, 200, out, 0);
        }
        return;
    case CROW_EV_TOO_LARGE:
        reply(s->ev, u->conn, 413, "too large", 0);
        return;
    case CROW_EV_BAD:
        reply(s->ev, u->conn, 400, "bad", 0);
        return;
    default:
        return;
    }
}

static void *server_main(void *arg)
{
    struct server *s = arg;
    struct crow_ev_unit u;
    while (!atomic_load(&s->stop)) {
        int r = crow_ev_next(s->ev, &u, -1);
        if (r == 1)
            handle(s, &u);
        else if (r < 0)
            break;
    }
    return NULL;
}

static struct server *server_start(unsigned head_ms)
{
    struct crow_ev_config cfg;
    crow_ev_config_init(&cfg);
    cfg.head_first = 1;
    cfg.head_first_over = 1024;
    cfg.max_body = 64u << 20;
    cfg.head_ms = head_ms;
    cfg.allocator = &counting;
    struct server *s = calloc(1, sizeof *s);
    if (!(s->ev = crow_ev_new(&cfg)))
        return NULL;
    s->lfd = crow_ev_tcp_listener("127.0.0.1", 0, 0, 128);
    if (s->lfd < 0 || crow_ev_listen(s->ev, s->lfd, CROW_EV_HTTP, 0) != 0)
        return NULL;
    struct sockaddr_in in;
    socklen_t sl = sizeof in;
    getsockname(s->lfd, (struct sockaddr *)&in, &sl);
    s->port = ntohs(in.sin_port);
    pthread_create(&s->th, NULL, server_main, s);
    return s;
}

static void server_stop(struct server *s)
{
    atomic_store(&s->stop, 1);
    crow_ev_wake(s->ev);
    pthread_join(s->th, NULL);
    crow_ev_destroy(s->ev);
    close(s->lfd);
    free(s);
}

/* ------------------------------------------------------------------ client */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&in, sizeof in) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int put(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w, n -= (size_t)w;
    }
    return 0;
}

static int puts_(int fd, const char *s) { return put(fd, s, strlen(s)); }

/* Reads one response; its body (NUL-terminated) into OUT.  Returns the status or -1. */
static int response(int fd, char *out, size_t max)
{
    char buf[2048];
    size_t n = 0;
    char *end = NULL;
    while (!end && n < sizeof buf - 1) {
        ssize_t r = recv(fd, buf + n, 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        n++;
        buf[n] = 0;
        end = strstr(buf, "\r\n\r\n");
    }
    int status = -1;
    size_t clen = 0;
    if (!end || sscanf(buf, "HTTP/1.1 %d", &status) != 1)
        return -1;
    char *cl = strcasestr(buf, "Content-Length:");
    if (cl)
        clen = strtoul(cl + 15, NULL, 10);
    size_t got = 0;
    while (got < clen && got < max - 1) {
        ssize_t r = recv(fd, out + got, clen - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    out[got] = 0;
    return got == clen ? status : -1;
}

static int at_eof(int fd)
{
    char c;
    ssize_t r;
    do
        r = recv(fd, &c, 1, 0);
    while (r < 0 && errno == EINTR);
    return r <= 0;
}

static char *pattern(size_t from, size_t n)
{
    char *p = malloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)('a' + (from + i) % 26);
    return p;
}

/* ------------------------------------------------------------------ tests */

static void test_stream(void)
{
    struct server *s = server_start(30000);
    char out[512], head[256];
    int fd = dial(s->port);
    char *body = pattern(0, BODY);
    long before = atomic_load(&live);
    atomic_store(&peak, before);
    snprintf(head, sizeof head, "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: %u\r\n\r\n", BODY);
    puts_(fd, head);
    put(fd, body, BODY);
    int st = response(fd, out, sizeof out);
    char want[128];
    snprintf(want, sizeof want, "got=%u order=ok errno=0 body_len=0", BODY);
    ok(st == 200 && !strcmp(out, want), "8 MiB Content-Length body: all of it to the sink, in order (%d %s)", st, out);
    long grew = atomic_load(&peak) - before;
    ok(grew < (1 << 20), "the loop's memory grew by %ld bytes only (< 1 MiB)", grew);
    puts_(fd, "GET /next HTTP/1.1\r\nHost: h\r\n\r\n");
    st = response(fd, out, sizeof out);
    ok(st == 200 && !strcmp(out, "plain /next body=0"), "the connection goes on (%d %s)", st, out);

    /* chunked, chunk sizes varying, sent in odd pieces */
    puts_(fd, "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    size_t sent = 0, k = 1;
    while (sent < BODY) {
        size_t c = (k * 7919) % 70000 + 1;
        if (c > BODY - sent)
            c = BODY - sent;
        char line[32];
        snprintf(line, sizeof line, "%zx\r\n", c);
        puts_(fd, line);
        put(fd, body + sent, c);
        puts_(fd, "\r\n");
        sent += c;
        k++;
    }
    /* a pipelined request right behind the last chunk */
    puts_(fd, "0\r\n\r\nGET /behind HTTP/1.1\r\nHost: h\r\n\r\n");
    st = response(fd, out, sizeof out);
    ok(st == 200 && !strcmp(out, want), "8 MiB chunked body (%zu chunks): to the sink in order (%d %s)", k - 1, st, out);
    st = response(fd, out, sizeof out);
    ok(st == 200 && !strcmp(out, "plain /behind body=0"), "the request pipelined behind it (%d %s)", st, out);
    close(fd);
    free(body);
    ok(atomic_load(&drops) == 0, "no sink dropped when handed back");
    server_stop(s);
}

static void test_failures(void)
{
    struct server *s = server_start(30000);
    char out[512], head[256];
    char *body = pattern(0, 100000);
    atomic_store(&drops, 0);

    int fd = dial(s->port);
    snprintf(head, sizeof head, "POST /fail HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n");
    puts_(fd, head);
    put(fd, body, 100000);
    int st = response(fd, out, sizeof out);
    ok(st == 413 && strstr(out, "errno=27") != NULL, "a failing sink write: REQUEST with sink_errno EFBIG (%d %s)", st, out);
    ok(at_eof(fd), "... and the connection closes after the reply");
    close(fd);

    fd = dial(s->port);
    puts_(fd, "POST /badend HTTP/1.1\r\nHost: h\r\nContent-Length: 2000\r\n\r\n");
    put(fd, body, 2000);
    st = response(fd, out, sizeof out);
    ok(st == 413 && strstr(out, "got=2000") && strstr(out, "errno=74"), "a failing end: sink_errno EBADMSG (%d %s)", st, out);
    close(fd);

    fd = dial(s->port);
    puts_(fd, "POST /small HTTP/1.1\r\nHost: h\r\nContent-Length: 2000\r\n\r\n");
    st = response(fd, out, sizeof out);
    ok(st == 413 && !strcmp(out, "too large"), "Content-Length over the sink's limit: TOO_LARGE (%d)", st);
    close(fd);
    fd = dial(s->port);
    puts_(fd, "POST /small HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n50\r\n");
    put(fd, body, 80);
    puts_(fd, "\r\n50\r\n");
    put(fd, body, 80);
    st = response(fd, out, sizeof out);
    ok(st == 413 && !strcmp(out, "too large"), "chunked past the sink's limit: TOO_LARGE (%d)", st);
    close(fd);
    fd = dial(s->port);
    puts_(fd, "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\nzz\r\n");
    st = response(fd, out, sizeof out);
    ok(st == 400, "bad chunking: BAD (%d)", st);
    close(fd);
    sleep_ms(100);
    is_int(atomic_load(&drops), 3, "the refused bodies' sinks (too large twice, bad chunking) dropped");

    atomic_store(&drops, 0);
    fd = dial(s->port);
    puts_(fd, "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n");
    put(fd, body, 50000);
    sleep_ms(100);
    close(fd);
    for (int i = 0; i < 100 && atomic_load(&drops) == 0; i++)
        sleep_ms(20);
    is_int(atomic_load(&drops), 1, "a client gone mid-body: its sink dropped");
    free(body);
    server_stop(s);
}

static void test_timeouts(void)
{
    struct server *s = server_start(400);
    char out[512];
    atomic_store(&drops, 0);
    char *body = pattern(0, 4000);
    int fd = dial(s->port);
    puts_(fd, "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 4000\r\n\r\n");
    for (int i = 0; i < 8; i++) { /* 8 pieces, 200 ms apart: 1.6 s in all, 4 x head_ms */
        put(fd, body + i * 500, 500);
        sleep_ms(200);
    }
    int st = response(fd, out, sizeof out);
    ok(st == 200 && strstr(out, "got=4000 order=ok"), "a slow body whose pauses stay under head_ms is taken (%d %s)", st, out);
    close(fd);
    fd = dial(s->port);
    puts_(fd, "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 4000\r\n\r\n");
    put(fd, body, 1000);
    sleep_ms(1200);
    ok(at_eof(fd), "a body that stalls beyond head_ms: the connection closes");
    close(fd);
    for (int i = 0; i < 50 && atomic_load(&drops) == 0; i++)
        sleep_ms(20);
    is_int(atomic_load(&drops), 1, "... and its sink is dropped");
    free(body);
    server_stop(s);
}

int main(void)
{
    test_stream();
    test_failures();
    test_timeouts();
    return tap_done();
}
