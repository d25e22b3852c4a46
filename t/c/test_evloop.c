/* test_evloop.c — the event loop driven over real loopback sockets: line, HTTP and raw units,
 * split and pipelined input, bodies, limits, timeouts, slow readers, sendfile, admission,
 * stale ids, wake, EINTR, and allocation failures. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "evloop.h"
#include "evnet.h"
#include "failalloc.h"
#include "tap.h"

#define BIG (8u << 20)
#define FILE_LEN ((1u << 20) + 3)

struct server {
    struct evnet net; /* net.port[]: LINE, HTTP, RAW */
    atomic_int closed_notices, opens, heads;
    /* stale-id probes */
    uint64_t stale_id;
    int stale_r, stale_errno;
};

static char *big;
static char file_path[64];
static int file_fd = -1;

static void reply_str(struct crow_ev *ev, const struct crow_ev_unit *u, const char *s, int flags)
{
    struct iovec iov = {(void *)s, strlen(s)};
    crow_ev_reply(ev, u->conn, &iov, 1, flags);
}

static void http_reply(struct crow_ev *ev, const struct crow_ev_unit *u, int status,
                       const char *body, size_t blen, int flags)
{
    char head[256];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d X\r\nDate: %s\r\nContent-Length: %zu\r\n%s\r\n",
                     status, crow_ev_date(ev), blen,
                     flags & CROW_EV_CLOSE_AFTER ? "Connection: close\r\n" : "");
    struct iovec iov[2] = {{head, (size_t)n}, {(void *)body, blen}};
    crow_ev_reply(ev, u->conn, iov, 2, flags);
}

static void handle(struct server *s, const struct crow_ev_unit *u)
{
    struct crow_ev *ev = s->net.ev;
    char out[512];
    switch (u->kind) {
    case CROW_EV_OPEN:
        atomic_fetch_add(&s->opens, 1);
        reply_str(ev, u, "HELLO\r\n", 0);
        return;
    case CROW_EV_CLOSED:
        atomic_fetch_add(&s->closed_notices, 1);
        return;
    case CROW_EV_DATA:
        snprintf(out, sizeof out, "R%zu:%.*s", u->len, (int)u->len, u->data);
        reply_str(ev, u, out, 0);
        return;
    case CROW_EV_LINE_UNIT:
        if (u->len == 5 && !memcmp(u->data, "stale", 5)) {
            s->stale_id = u->conn;
            crow_ev_close(ev, u->conn);
            struct iovec iov = {"x", 1};
            int r = crow_ev_reply(ev, u->conn, &iov, 1, 0);
            int e = errno;
            s->stale_r = r;
            __atomic_store_n(&s->stale_errno, e, __ATOMIC_RELEASE); /* published last */
            return;
        }
        if (u->len == 3 && !memcmp(u->data, "old", 3)) {
            struct iovec iov = {"x", 1};
            errno = 0;
            int r = crow_ev_reply(ev, s->stale_id, &iov, 1, 0);
            snprintf(out, sizeof out, "old=%d/%d same_slot=%d\n", r, errno,
                     (uint32_t)s->stale_id == (uint32_t)u->conn);
            reply_str(ev, u, out, 0);
            return;
        }
        if (u->len == 3 && !memcmp(u->data, "raw", 3)) {
            crow_ev_set_mode(ev, u->conn, CROW_EV_RAW);
            reply_str(ev, u, "ok raw\n", 0);
            return;
        }
        snprintf(out, sizeof out, "L%zue%d:%.*s\n", u->len, u->eol_len, (int)u->len, u->data);
        reply_str(ev, u, out, 0);
        return;
    case CROW_EV_TOO_LONG:
        if (u->mode == CROW_EV_LINE) {
            snprintf(out, sizeof out, "TOOLONG %zu\n", u->len);
            reply_str(ev, u, out, 0);
        } else {
            http_reply(ev, u, 431, "", 0, CROW_EV_CLOSE_AFTER);
        }
        return;
    case CROW_EV_BAD:
        http_reply(ev, u, 400, "", 0, 0); /* the loop closes anyway */
        return;
    case CROW_EV_TOO_LARGE:
        http_reply(ev, u, 413, "", 0, 0);
        return;
    case CROW_EV_HEAD: /* head_first: /small refuses any body, others take up to 64 bytes */
        atomic_fetch_add(&s->heads, 1);
        if (u->http.target_len >= 6 && !memcmp(u->data + u->http.target_off, "/small", 6))
            http_reply(ev, u, 413, "", 0, CROW_EV_CLOSE_AFTER);
        else if (crow_ev_continue(ev, u->conn, 64) != 0)
            http_reply(ev, u, 500, "", 0, CROW_EV_CLOSE_AFTER);
        return;
    case CROW_EV_REQUEST:
        break;
    default:
        return;
    }
    const struct crow_ev_http *h = &u->http;
    const char *t = u->data + h->target_off;
    if (h->target_len == 4 && !memcmp(t, "/big", 4)) {
        http_reply(ev, u, 200, big, BIG, 0);
        return;
    }
    if (h->target_len == 5 && !memcmp(t, "/file", 5)) {
        char head[128];
        int n = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %u\r\n\r\n", FILE_LEN);
        struct iovec iov = {head, (size_t)n};
        crow_ev_reply(ev, u->conn, &iov, 1, CROW_EV_MORE);
        crow_ev_sendfile(ev, u->conn, file_fd, 0, FILE_LEN, 0);
        return;
    }
    const struct crow_ev_header *last = h->nheaders ? &h->headers[h->nheaders - 1] : NULL;
    int n = snprintf(out, sizeof out, "%.*s %.*s body=%u chunked=%d ka=%d v=%d h=%u last=%.*s:%.*s|",
                     (int)h->method_len, u->data + h->method_off, (int)h->target_len, t,
                     h->body_len, h->chunked, h->keep_alive, h->version, h->nheaders,
                     last ? (int)last->name_len : 0, last ? u->data + last->name_off : "",
                     last ? (int)last->value_len : 0, last ? u->data + last->value_off : "");
    size_t blen = (size_t)n + h->body_len;
    char *body = malloc(blen);
    memcpy(body, out, (size_t)n);
    memcpy(body + n, u->data + h->head_len, h->body_len);
    int close_after = h->target_len == 6 && !memcmp(t, "/close", 6);
    http_reply(ev, u, 200, body, blen, close_after ? CROW_EV_CLOSE_AFTER : 0);
    free(body);
}

static void handle_unit(void *ctx, const struct crow_ev_unit *u) { handle(ctx, u); }

static struct server *server_start(const struct crow_ev_config *cfg)
{
    static const int modes[3] = {CROW_EV_LINE, CROW_EV_HTTP, CROW_EV_RAW};
    return evnet_spawn(sizeof(struct server), cfg, modes, 3, handle_unit);
}

static void server_stop(struct server *s) { evnet_free(&s->net); }

/* Reads an HTTP response; the body goes to *BODY (malloc'ed, NUL-terminated).  Returns the
 * status, or -1. */
static int get_response(int fd, char **body, size_t *blen)
{
    char line[1024];
    int status = -1;
    size_t clen = 0;
    *body = NULL;
    *blen = 0;
    if (!get_line(fd, line, sizeof line) || sscanf(line, "HTTP/1.1 %d", &status) != 1)
        return -1;
    while (get_line(fd, line, sizeof line) && strcmp(line, "\r\n") != 0)
        if (!strncasecmp(line, "Content-Length:", 15))
            clen = strtoul(line + 15, NULL, 10);
    *body = malloc(clen + 1);
    *blen = get(fd, *body, clen);
    (*body)[*blen] = 0;
    return *blen == clen ? status : -1;
}

/* One request/response round trip; returns the status and leaves the body in BODY. */
static int roundtrip(int fd, const char *req, char *body_out, size_t max)
{
    char *b;
    size_t bl;
    puts_(fd, req);
    int st = get_response(fd, &b, &bl);
    snprintf(body_out, max, "%s", b ? b : "");
    free(b);
    return st;
}

/* ------------------------------------------------------------------ tests */

static void test_lines(struct server *s)
{
    char line[256];
    int fd = dial(s->net.port[0]);
    puts_(fd, "hello\r\nwor");
    sleep_ms(20);
    puts_(fd, "ld\n\n");
    get_line(fd, line, sizeof line);
    ok(!strcmp(line, "L5e2:hello\n"), "line with CRLF");
    get_line(fd, line, sizeof line);
    ok(!strcmp(line, "L5e1:world\n"), "line split across writes, LF only");
    get_line(fd, line, sizeof line);
    ok(!strcmp(line, "L0e1:\n"), "empty line");
    char longl[100];
    memset(longl, 'x', 40);
    memcpy(longl + 40, "\nnext\n", 7);
    puts_(fd, longl);
    get_line(fd, line, sizeof line);
    ok(!strcmp(line, "TOOLONG 16\n"), "a complete line over max_line is TOO_LONG");
    get_line(fd, line, sizeof line);
    ok(!strcmp(line, "L4e1:next\n"), "the next line is intact");
    memset(longl, 'y', 30);
    put(fd, longl, 30);
    get_line(fd, line, sizeof line);
    ok(!strcmp(line, "TOOLONG 16\n"), "an unterminated line over max_line is TOO_LONG at once");
    put(fd, longl, 30);
    sleep_ms(20);
    puts_(fd, "yy\r\nafter\r\n");
    get_line(fd, line, sizeof line);
    ok(!strcmp(line, "L5e2:after\n"), "the rest of the long line is discarded");
    /* exactly max_line with CRLF is fine */
    memset(longl, 'z', 16);
    memcpy(longl + 16, "\r\n", 3);
    puts_(fd, longl);
    get_line(fd, line, sizeof line);
    ok(!strncmp(line, "L16e2:zzzz", 10), "a line of exactly max_line bytes is a line");
    /* switch to RAW */
    puts_(fd, "raw\n");
    get_line(fd, line, sizeof line);
    ok(!strcmp(line, "ok raw\n"), "set_mode acknowledged");
    puts_(fd, "abc");
    size_t n = get(fd, line, 5);
    line[n] = 0;
    ok(!strcmp(line, "R3:ab") , "after set_mode RAW a read is a unit (%s)", line);
    get(fd, line, 1);
    close(fd);

    fd = dial(s->net.port[2]);
    puts_(fd, "xyz");
    n = get(fd, line, 6);
    line[n] = 0;
    ok(!strcmp(line, "R3:xyz"), "RAW listener hands out reads");
    close(fd);
}

static void test_http_split(struct server *s)
{
    static const char req[] = "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Y:  z z \r\n\r\n";
    const char *want = "GET /a?b=1 body=0 chunked=0 ka=1 v=11 h=2 last=X-Y:z z|";
    size_t len = sizeof req - 1;
    int fd = dial(s->net.port[1]);
    int good = 0;
    for (size_t k = 1; k < len; k++) {
        char body[512], *b;
        size_t bl;
        put(fd, req, k);
        sleep_ms(2);
        put(fd, req + k, len - k);
        int st = get_response(fd, &b, &bl);
        snprintf(body, sizeof body, "%s", b ? b : "");
        free(b);
        if (st == 200 && !strcmp(body, want))
            good++;
        else
            printf("# split at %zu: %d %s\n", k, st, body);
    }
    is_int(good, len - 1, "a request split at every byte position is framed and parsed");
    /* byte by byte, CRLFs before the request line skipped, HTTP/1.0 */
    static const char r10[] = "\r\nHEAD / HTTP/1.0\nA: 1\n\n";
    for (size_t k = 0; k < sizeof r10 - 1; k++) {
        put(fd, r10 + k, 1);
        sleep_ms(1);
    }
    char body[512];
    char *b;
    size_t bl;
    int st = get_response(fd, &b, &bl);
    snprintf(body, sizeof body, "%s", b ? b : "");
    free(b);
    ok(st == 200 && !strcmp(body, "HEAD / body=0 chunked=0 ka=0 v=10 h=1 last=A:1|"),
       "byte-at-a-time HTTP/1.0 with bare LFs (%s)", body);
    close(fd);
}

static void test_http_bodies(struct server *s)
{
    char body[512];
    int fd = dial(s->net.port[1]);
    /* pipelined: three requests in one write, answered in order */
    puts_(fd, "GET /1 HTTP/1.1\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
              "GET /3 HTTP/1.1\r\nConnection: close\r\n\r\n");
    char *b;
    size_t bl;
    int ok1 = get_response(fd, &b, &bl) == 200 && strstr(b, "GET /1 ");
    free(b);
    int ok2 = get_response(fd, &b, &bl) == 200 && strstr(b, "POST /2 body=3") && strstr(b, "|abc");
    free(b);
    int ok3 = get_response(fd, &b, &bl) == 200 && strstr(b, "GET /3 body=0 chunked=0 ka=0");
    free(b);
    ok(ok1 && ok2 && ok3, "three pipelined requests answered in order");

    /* a Content-Length body larger than the read buffer */
    size_t blen = 100000;
    char *req = malloc(blen + 128);
    int hl = sprintf(req, "PUT /big-body HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", blen);
    for (size_t i = 0; i < blen; i++)
        req[hl + i] = (char)('a' + i % 26);
    put(fd, req, (size_t)hl + blen);
    int st = get_response(fd, &b, &bl);
    char *bar = b ? strchr(b, '|') : NULL;
    ok(st == 200 && bar && bl - (size_t)(bar + 1 - b) == blen && !memcmp(bar + 1, req + hl, blen),
       "a 100000-byte Content-Length body arrives whole");
    free(b);
    free(req);

    /* chunked, in one write and byte by byte */
    static const char ch[] = "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "5\r\nhello\r\n6;ext=1\r\n world\r\nA\r\n0123456789\r\n0\r\nT: x\r\n\r\n";
    st = roundtrip(fd, ch, body, sizeof body);
    ok(st == 200 && strstr(body, "body=21 chunked=1") && strstr(body, "|hello world0123456789"),
       "chunked body de-chunked (%s)", body);
    for (size_t k = 0; k < sizeof ch - 1; k++) {
        put(fd, ch + k, 1);
        if (k % 4 == 0)
            sleep_ms(1);
    }
    st = get_response(fd, &b, &bl);
    ok(st == 200 && strstr(b, "|hello world0123456789"), "chunked body sent byte by byte");
    free(b);
    /* Expect: 100-continue gets its interim answer before the body is sent */
    puts_(fd, "POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    char line[128];
    get_line(fd, line, sizeof line);
    ok(!strcmp(line, "HTTP/1.1 100 Continue\r\n"), "Expect: 100-continue answered by the loop");
    get_line(fd, line, sizeof line);
    st = roundtrip(fd, "ok", body, sizeof body);
    ok(st == 200 && strstr(body, "|ok"), "then the body is framed");
    /* /close: CLOSE_AFTER */
    st = roundtrip(fd, "GET /close HTTP/1.1\r\n\r\n", body, sizeof body);
    ok(st == 200 && at_eof(fd), "CLOSE_AFTER closes once the reply is written");
    close(fd);
}

static void expect_error(struct server *s, const char *what, const char *req, size_t len,
                         int status)
{
    int fd = dial(s->net.port[1]);
    put(fd, req, len);
    char *b;
    size_t bl;
    int st = get_response(fd, &b, &bl);
    free(b);
    ok(st == status && at_eof(fd), "%s: %d and closed (got %d)", what, status, st);
    close(fd);
}

static void test_http_errors(struct server *s)
{
    char req[4096];
    int n = sprintf(req, "GET / HTTP/1.1\r\nX: ");
    memset(req + n, 'a', 2000);
    expect_error(s, "head over max_head, unterminated", req, (size_t)n + 2000, 431);
    memcpy(req + n + 1500, "\r\n\r\n", 4);
    expect_error(s, "head over max_head, terminated", req, (size_t)n + 1504, 431);
    n = sprintf(req, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 70; i++)
        n += sprintf(req + n, "H%d: v\r\n", i);
    n += sprintf(req + n, "\r\n");
    expect_error(s, "more than 64 headers", req, (size_t)n, 431);
    expect_error(s, "no version", "BLAH /\r\n\r\n", 10, 400);
    expect_error(s, "folded header", "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 28, 400);
    expect_error(s, "bad Content-Length", "GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 39, 400);
    static const char both[] = "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
    expect_error(s, "Content-Length with chunked", both, sizeof both - 1, 400);
    static const char huge[] = "POST / HTTP/1.1\r\nContent-Length: 1000000000\r\n\r\n";
    expect_error(s, "Content-Length over max_body", huge, sizeof huge - 1, 413);
    static const char bc[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    expect_error(s, "bad chunk size", bc, sizeof bc - 1, 400);
    static const char lc[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFF\r\n";
    expect_error(s, "chunk over max_body", lc, sizeof lc - 1, 413);
}

/* Sends REQ (LEN bytes) on a fresh connection; returns the status of the answer and, in
 * *BODY_OUT (MAX bytes), its body. */
static int status_of(struct server *s, const char *req, size_t len, char *body_out, size_t max)
{
    int fd = dial(s->net.port[1]);
    put(fd, req, len);
    char *b;
    size_t bl;
    int st = get_response(fd, &b, &bl);
    if (body_out)
        snprintf(body_out, max, "%s", b ? b : "");
    free(b);
    close(fd);
    return st;
}

/* The head's bytes (parse_head checks targets and values eight bytes at a time, token runs
 * four at a time): every byte position of a value and a target, each kind of byte. */
static void test_http_head_bytes(struct server *s)
{
    char req[256], body[512];
    int bad_ctl = 0, bad_del = 0, good_tab = 0, good_high = 0, bad_target = 0, bad_name = 0;
    for (int p = 0; p < 19; p++) {
        char v[20];
        memset(v, 'v', 19);
        v[19] = 0;
        static const struct { char c; int want; } kinds[4] = {
            {0x01, 400}, {0x7f, 400}, {'\t', 200}, {(char)0xe9, 200}};
        int *counts[4] = {&bad_ctl, &bad_del, &good_tab, &good_high};
        for (int k = 0; k < 4; k++) {
            v[p] = kinds[k].c;
            int n = snprintf(req, sizeof req, "GET /v HTTP/1.1\r\nA: b\r\nX-Long-Name: %s\r\n\r\n", v);
            int st = status_of(s, req, (size_t)n, body, sizeof body);
            *counts[k] += st == kinds[k].want;
            v[p] = 'v';
        }
        char t[20];
        memset(t, 'a', 19);
        t[0] = '/';
        t[19] = 0;
        if (p > 0) {
            t[p] = 0x7f;
            int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\n\r\n", t);
            bad_target += status_of(s, req, (size_t)n, NULL, 0) == 400;
        }
        char nm[20];
        memset(nm, 'N', 19);
        nm[19] = 0;
        nm[p] = p % 2 ? '@' : '"'; /* not token characters */
        int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\n%s: v\r\n\r\n", nm);
        bad_name += status_of(s, req, (size_t)n, NULL, 0) == 400;
    }
    ok(bad_ctl == 19 && bad_del == 19, "a control or DEL at any place of a value: 400 (%d, %d of 19)",
       bad_ctl, bad_del);
    ok(good_tab == 19 && good_high == 19,
       "an HTAB or a byte above 0x7f at any place of a value: taken (%d, %d of 19)", good_tab,
       good_high);
    ok(bad_target == 18, "DEL at any place of a target: 400 (%d of 18)", bad_target);
    ok(bad_name == 19, "a non-token byte at any place of a field name: 400 (%d of 19)", bad_name);
    static const char ci[] = "POST /ci HTTP/1.1\r\ntRANSFER-eNCODING: ChUnKeD\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    ok(status_of(s, ci, sizeof ci - 1, body, sizeof body) == 200 && strstr(body, "chunked=1") &&
           strstr(body, "|abc"),
       "Transfer-Encoding matched in any case: %s", body);
    static const char cl[] = "POST /cl HTTP/1.1\r\nCONTENT-length: 2\r\ncontent-LENGTH: 2\r\n\r\nxy";
    ok(status_of(s, cl, sizeof cl - 1, body, sizeof body) == 200 && strstr(body, "body=2") &&
           strstr(body, "|xy"),
       "Content-Length matched in any case, twice the same: %s", body);
    static const char cn[] = "GET /cn HTTP/1.1\r\nConnection: Keep-Alive , \tCLOSE\t,\r\n\r\n";
    ok(status_of(s, cn, sizeof cn - 1, body, sizeof body) == 200 && strstr(body, "ka=0"),
       "Connection: close found among other tokens, any case: %s", body);
    static const char k10[] = "GET /k HTTP/1.0\r\nconnection: x,KEEP-ALIVE\r\n\r\n";
    ok(status_of(s, k10, sizeof k10 - 1, body, sizeof body) == 200 && strstr(body, "ka=1"),
       "HTTP/1.0 with keep-alive in any case keeps the connection: %s", body);
    static const char nk[] = "GET /k HTTP/1.0\r\nconnection: keep-alivex, close-\r\n\r\n";
    ok(status_of(s, nk, sizeof nk - 1, body, sizeof body) == 200 && strstr(body, "ka=0"),
       "... but not with look-alike tokens: %s", body);
    int fd = dial(s->net.port[1]);
    puts_(fd, "POST /e HTTP/1.1\r\nExpecT: 100-Continue\r\nContent-Length: 2\r\n\r\n");
    char line[128] = "";
    int got100 = get_line(fd, line, sizeof line) && !strncmp(line, "HTTP/1.1 100 ", 13) &&
                 get_line(fd, line, sizeof line) && !strcmp(line, "\r\n");
    char *b = NULL;
    size_t bl;
    puts_(fd, "xy");
    int st = get_response(fd, &b, &bl);
    ok(got100 && st == 200 && b && strstr(b, "|xy"), "Expect: 100-continue matched in any case");
    free(b);
    close(fd);
}

struct reader {
    int fd;
    size_t got;
    int good;
};

static void test_big_reply(struct server *s)
{
    int fd = dial(s->net.port[1]);
    puts_(fd, "GET /big HTTP/1.1\r\n\r\n");
    sleep_ms(200); /* let the send buffer fill: the rest waits for EPOLLOUT */
    /* the loop still serves others meanwhile */
    int64_t t0 = now_ms();
    int other = dial(s->net.port[1]);
    char body[256];
    int st = roundtrip(other, "GET /other HTTP/1.1\r\n\r\n", body, sizeof body);
    ok(st == 200 && now_ms() - t0 < 5000, "another client is served while 8 MiB wait for a slow reader");
    close(other);
    char line[256];
    size_t clen = 0;
    while (get_line(fd, line, sizeof line) && strcmp(line, "\r\n"))
        if (!strncasecmp(line, "Content-Length:", 15))
            clen = strtoul(line + 15, NULL, 10);
    char *buf = malloc(BIG);
    size_t got = 0;
    while (got < clen) {
        size_t want = clen - got < 65536 ? clen - got : 65536;
        size_t r = get(fd, buf + got, want);
        if (!r)
            break;
        got += r;
        if (got % (1 << 20) < 65536)
            sleep_ms(5);
    }
    ok(clen == BIG && got == BIG && !memcmp(buf, big, BIG), "8 MiB reply to a slow reader arrives intact");
    free(buf);
    close(fd);
}

static void test_sendfile(struct server *s)
{
    int fd = dial(s->net.port[1]);
    char *b;
    size_t bl;
    puts_(fd, "GET /file HTTP/1.1\r\n\r\n");
    int st = get_response(fd, &b, &bl);
    char *want = malloc(FILE_LEN);
    pread(file_fd, want, FILE_LEN, 0);
    ok(st == 200 && bl == FILE_LEN && !memcmp(b, want, FILE_LEN), "header + sendfile reply intact");
    free(b);
    free(want);
    /* and the connection goes on */
    char body[256];
    st = roundtrip(fd, "GET /after HTTP/1.1\r\n\r\n", body, sizeof body);
    ok(st == 200 && strstr(body, "GET /after"), "keep-alive after a sendfile reply");
    close(fd);
}

static void test_stale(struct server *s)
{
    char line[128];
    int fd = dial(s->net.port[0]);
    puts_(fd, "stale\n");
    ok(at_eof(fd), "crow_ev_close closes the connection");
    close(fd);
    /* The client may see EOF before the server thread has stored the reply's result. */
    for (int i = 0; i < 2000 && !__atomic_load_n(&s->stale_errno, __ATOMIC_ACQUIRE); i++)
        usleep(1000);
    ok(s->stale_r == -1 && s->stale_errno == EBADF, "reply to a closed id fails with EBADF");
    fd = dial(s->net.port[0]);
    puts_(fd, "old\n");
    get_line(fd, line, sizeof line);
    char want[64];
    snprintf(want, sizeof want, "old=-1/%d same_slot=1\n", EBADF);
    ok(!strcmp(line, want), "a stale id whose slot was reused gets EBADF");
    close(fd);
}

static void test_many(struct server *s)
{
    enum { N = 500 };
    static int fds[N];
    int good = 0;
    for (int i = 0; i < N; i++) {
        fds[i] = dial(s->net.port[1]);
        char req[64];
        snprintf(req, sizeof req, "GET /n%d HTTP/1.1\r\n\r\n", i);
        puts_(fds[i], req);
    }
    for (int i = 0; i < N; i++) {
        char *b;
        size_t bl;
        char want[32];
        snprintf(want, sizeof want, "GET /n%d ", i);
        if (get_response(fds[i], &b, &bl) == 200 && !strncmp(b, want, strlen(want)))
            good++;
        free(b);
    }
    is_int(good, N, "500 concurrent connections each answered");
    struct crow_ev_stats st;
    crow_ev_stats(s->net.ev, &st); /* racy read of counters, only for a lower bound */
    ok(st.open >= 1 && st.accepted >= N, "stats count the connections");
    for (int i = 0; i < N; i++)
        close(fds[i]);
}

static void test_wake(struct server *s)
{
    int before = atomic_load(&s->net.wakes);
    int64_t t0 = now_ms();
    crow_ev_wake(s->net.ev);
    while (atomic_load(&s->net.wakes) == before && now_ms() - t0 < 5000)
        sleep_ms(1);
    ok(atomic_load(&s->net.wakes) > before, "crow_ev_wake from another thread returns crow_ev_next 0 (%lld ms)",
       (long long)(now_ms() - t0));
}

static void test_limits(void)
{
    struct crow_ev_config cfg;
    crow_ev_config_init(&cfg);
    cfg.max_connections = 2;
    cfg.refusal = "HTTP/1.1 503 Busy\r\n\r\n";
    cfg.refusal_len = strlen(cfg.refusal);
    cfg.idle_ms = 300;
    cfg.head_ms = 500;
    cfg.timeout_reply = "TIMEOUT\n";
    cfg.timeout_reply_len = 8;
    cfg.notify_open = cfg.notify_close = 1;
    struct server *s = server_start(&cfg);
    char line[128];
    int a = dial(s->net.port[0]), b = dial(s->net.port[0]);
    get_line(a, line, sizeof line);
    ok(!strcmp(line, "HELLO\r\n"), "OPEN unit: the greeting is sent");
    get_line(b, line, sizeof line);
    int c = dial(s->net.port[0]);
    get_line(c, line, sizeof line);
    ok(!strcmp(line, "HTTP/1.1 503 Busy\r\n") && (get_line(c, line, sizeof line), at_eof(c)),
       "beyond max_connections: refusal bytes, then closed");
    close(c);
    /* idle timeout: a and b expire; the timeout bytes come first */
    int64_t t0 = now_ms();
    puts_(a, "ping\n");
    get_line(a, line, sizeof line);
    ok(!strcmp(line, "L4e1:ping\n"), "a line is answered");
    get_line(a, line, sizeof line);
    int64_t dt = now_ms() - t0;
    ok(!strcmp(line, "TIMEOUT\n") && at_eof(a), "idle connection gets the timeout bytes and is closed");
    ok(dt >= 250 && dt < 5000, "after the idle time (%lld ms)", (long long)dt);
    get_line(b, line, sizeof line);
    ok(!strcmp(line, "TIMEOUT\n") && at_eof(b), "the other idle connection too");
    close(a);
    close(b);
    /* a partial unit is not kept past the head deadline either */
    int d = dial(s->net.port[1]);
    get_line(d, line, sizeof line);
    puts_(d, "GET / HTTP/1.1\r\n");
    t0 = now_ms();
    get_line(d, line, sizeof line);
    ok(!strcmp(line, "TIMEOUT\n") && at_eof(d) && now_ms() - t0 < 5000, "an unfinished head times out");
    close(d);
    t0 = now_ms();
    while (atomic_load(&s->closed_notices) < 3 && now_ms() - t0 < 5000)
        sleep_ms(5);
    is_int(atomic_load(&s->closed_notices), 3, "a CLOSED unit per connection that went (refused ones excluded)");
    is_int(atomic_load(&s->opens), 3, "an OPEN unit per accepted connection");
    struct crow_ev_stats st;
    crow_ev_stats(s->net.ev, &st);
    ok(st.refused == 1 && st.timeouts == 3 && st.accepted == 4 && st.open == 0,
       "stats: refused %llu, timeouts %llu, accepted %llu, open %llu",
       (unsigned long long)st.refused, (unsigned long long)st.timeouts,
       (unsigned long long)st.accepted, (unsigned long long)st.open);
    server_stop(s);
}

/* CPU time of the loop thread of S, microseconds */
static int64_t loop_cpu_us(struct server *s)
{
    clockid_t cid;
    struct timespec ts;
    if (pthread_getcpuclockid(s->net.th, &cid) != 0 || clock_gettime(cid, &ts) != 0)
        return -1;
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* N connections, one request each, all written before any answer is read; returns how many
 * were answered 200 with their own path */
static int burst(struct server *s, int n)
{
    int fds[64], good = 0;
    for (int i = 0; i < n; i++) {
        char req[64];
        fds[i] = dial(s->net.port[1]);
        snprintf(req, sizeof req, "GET /b%d HTTP/1.1\r\n\r\n", i);
        puts_(fds[i], req);
    }
    for (int i = 0; i < n; i++) {
        char *b, want[32];
        size_t bl;
        snprintf(want, sizeof want, "GET /b%d ", i);
        good += get_response(fds[i], &b, &bl) == 200 && !strncmp(b, want, strlen(want));
        free(b);
    }
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return good;
}

/* busy_poll_us: after a busy stretch the loop polls (CPU time spent awake) for at most that
 * long, then sleeps; a light load never polls; answers are the same */
static void test_busy_poll(void)
{
    struct crow_ev_config cfg;
    crow_ev_config_init(&cfg);
    cfg.busy_poll_us = 20000; /* 20 ms: far above the loop's own work in these checks */
    struct server *s = server_start(&cfg);
    is_int(burst(s, 40), 40, "busy_poll_us: a burst of 40 connections, each answered");
    int64_t c0 = loop_cpu_us(s);
    sleep_ms(150);
    int64_t c1 = loop_cpu_us(s);
    sleep_ms(300);
    int64_t c2 = loop_cpu_us(s);
    ok(c1 - c0 >= 2000 && c1 - c0 <= 60000,
       "after the burst the loop polls awake, bounded (%lld us of CPU in the next 150 ms)",
       (long long)(c1 - c0));
    ok(c2 - c1 < 5000, "then it sleeps: %lld us of CPU in 300 ms idle", (long long)(c2 - c1));
    /* a light load: single requests 20 ms apart never make a busy stretch */
    int fd = dial(s->net.port[1]), good = 0;
    sleep_ms(100);
    int64_t l0 = loop_cpu_us(s);
    for (int i = 0; i < 10; i++) {
        char body[64];
        good += roundtrip(fd, "GET /light HTTP/1.1\r\n\r\n", body, sizeof body) == 200 &&
                !strncmp(body, "GET /light ", 11);
        sleep_ms(20);
    }
    int64_t l1 = loop_cpu_us(s);
    close(fd);
    is_int(good, 10, "light load: every request answered");
    ok(l1 - l0 < 20000, "light load: no polling (%lld us of CPU for 10 requests 20 ms apart; "
       "polling each time would be >= 200000)", (long long)(l1 - l0));
    server_stop(s);
}

/* timeout_started_only: an idle keep-alive connection (or one that never sent a byte) closes
 * without the timeout reply; a stalled unit still gets it */
static void test_idle_silent(void)
{
    struct crow_ev_config cfg;
    crow_ev_config_init(&cfg);
    cfg.idle_ms = 200;
    cfg.head_ms = 300;
    cfg.timeout_reply = "TIMEOUT\n";
    cfg.timeout_reply_len = 8;
    cfg.timeout_started_only = 1;
    struct server *s = server_start(&cfg);
    char line[128], body[64];
    int a = dial(s->net.port[1]), b = dial(s->net.port[1]), d = dial(s->net.port[1]);
    int st = roundtrip(a, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n", body, sizeof body);
    ok(st == 200, "a request is answered before the idle time (%d)", st);
    puts_(d, "GET / HTTP/1.1\r\n");
    int64_t t0 = now_ms();
    size_t n = get_line(a, line, sizeof line);
    int64_t dt = now_ms() - t0;
    ok(n == 0 && dt >= 150 && dt < 5000,
       "idle keep-alive connection closed silently after the idle time (%zu bytes, %lld ms)", n,
       (long long)dt);
    n = get_line(b, line, sizeof line);
    ok(n == 0, "a connection that never sent a byte is closed silently (%zu bytes)", n);
    get_line(d, line, sizeof line);
    ok(!strcmp(line, "TIMEOUT\n") && at_eof(d), "a begun, stalled request still gets the timeout reply");
    close(a);
    close(b);
    close(d);
    struct crow_ev_stats st2;
    crow_ev_stats(s->net.ev, &st2);
    ok(st2.timeouts == 3, "three timeouts counted (%llu)", (unsigned long long)st2.timeouts);
    server_stop(s);
}

/* head_first: the caller sees the head before the body and picks its limit, so a small
 * limit refuses without a 100 Continue and a larger one lets the body come */
static void test_head_first(void)
{
    struct crow_ev_config cfg;
    crow_ev_config_init(&cfg);
    cfg.head_first = 1;
    cfg.head_first_over = 16;
    struct server *s = server_start(&cfg);
    char buf[512], body[256];
    int fd = dial(s->net.port[1]);
    puts_(fd, "POST /small HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n");
    size_t n = get(fd, buf, sizeof buf - 1);
    buf[n] = 0;
    ok(!strncmp(buf, "HTTP/1.1 413", 12) && !strstr(buf, "100 Continue"),
       "a refused head gets 413 and no 100 Continue: %.20s", buf);
    close(fd);
    fd = dial(s->net.port[1]);
    puts_(fd, "POST /ok HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n");
    get_line(fd, buf, sizeof buf);
    ok(!strcmp(buf, "HTTP/1.1 100 Continue\r\n") && get_line(fd, buf, sizeof buf) == 2,
       "crow_ev_continue sends the 100 Continue");
    int st = roundtrip(fd, "0123456789", body, sizeof body);
    ok(st == 200 && strstr(body, "body=10") && strstr(body, "|0123456789"),
       "then the body comes in the REQUEST unit (%d %s)", st, body);
    st = roundtrip(fd, "POST /ok HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nabcde", body, sizeof body);
    ok(st == 200 && strstr(body, "|abcde"), "a small body (<= head_first_over) comes directly (%d)", st);
    is_int(atomic_load(&s->heads), 2, "HEAD units only for Expect/large bodies");
    st = roundtrip(fd, "POST /ok HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5\r\nhello\r\n0\r\n\r\n", body, sizeof body);
    ok(st == 200 && strstr(body, "|hello"), "a chunked body within the limit (%d)", st);
    st = roundtrip(fd, "POST /ok HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n", body, sizeof body);
    ok(st == 413 && at_eof(fd), "a Content-Length beyond the continue limit: 413 and close (%d)", st);
    close(fd);
    fd = dial(s->net.port[1]);
    char chunked[600];
    snprintf(chunked, sizeof chunked, "POST /ok HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
             "50\r\n%080d\r\n0\r\n\r\n", 0);
    st = roundtrip(fd, chunked, body, sizeof body);
    ok(st == 413, "a chunked body beyond the continue limit: 413 (%d)", st);
    close(fd);
    fd = dial(s->net.port[1]);
    st = roundtrip(fd, "GET /after HTTP/1.1\r\nHost: h\r\n\r\n", body, sizeof body);
    ok(st == 200, "the loop goes on (%d)", st);
    close(fd);
    server_stop(s);
}

static void on_usr1(int sig) { (void)sig; }

struct killer {
    pthread_t target;
    atomic_int stop;
    int sent;
};

static void *killer_main(void *arg)
{
    struct killer *k = arg;
    while (!atomic_load(&k->stop)) {
        pthread_kill(k->target, SIGUSR1);
        k->sent++;
        sleep_ms(10);
    }
    return NULL;
}

static void test_local(void)
{
    struct crow_ev_config cfg;
    crow_ev_config_init(&cfg);
    cfg.read_size = 0;
    errno = 0;
    ok(crow_ev_new(&cfg) == NULL && errno == EINVAL, "crow_ev_new: zero read_size is EINVAL");
    crow_ev_config_init(&cfg);
    struct crow_ev *ev = crow_ev_new(&cfg);
    errno = 0;
    ok(crow_ev_listen(ev, 0, 7, 0) == -1 && errno == EINVAL, "crow_ev_listen: bad mode is EINVAL");
    errno = 0;
    ok(crow_ev_tcp_listener("no.such", 0, 0, 0) == -1 && errno == EINVAL,
       "crow_ev_tcp_listener: bad address is EINVAL");
    errno = 0;
    ok(crow_ev_adopt(ev, -1, CROW_EV_RAW) == 0 && errno == EINVAL, "crow_ev_adopt: bad fd is EINVAL");
    struct iovec iov = {"x", 1};
    errno = 0;
    ok(crow_ev_reply(ev, 12345, &iov, 1, 0) == -1 && errno == EBADF, "reply to an unknown id: EBADF");
    ok(crow_ev_done(ev, 0, 0) == -1 && errno == EBADF, "done on id 0: EBADF");
    int sp[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
    uint64_t id = crow_ev_adopt(ev, sp[0], CROW_EV_RAW);
    ok(id != 0, "adopt a connected socket");
    struct crow_ev_unit u;
    write(sp[1], "abc", 3);
    int r = crow_ev_next(ev, &u, 2000);
    ok(r == 1 && u.kind == CROW_EV_DATA && u.len == 3 && !memcmp(u.data, "abc", 3) && u.conn == id &&
       !strcmp(u.peer, "unix") && u.listener == -1, "adopted connection: a RAW unit");
    errno = 0;
    ok(crow_ev_reply(ev, id, &iov, -1, 0) == -1 && errno == EINVAL, "negative iovcnt: EINVAL");
    ok(crow_ev_set_mode(ev, id, 9) == -1 && errno == EINVAL, "set_mode: bad mode is EINVAL");
    ok(crow_ev_set_mode(ev, id, CROW_EV_LINE) == 0, "set_mode LINE");
    ok(crow_ev_reply(ev, id, &iov, 1, 0) == 0, "reply finishes the unit");
    char c4[4];
    ok(read(sp[1], c4, 1) == 1 && c4[0] == 'x', "the reply arrived");
    write(sp[1], "l1\nl2\n", 6);
    r = crow_ev_next(ev, &u, 2000);
    ok(r == 1 && u.kind == CROW_EV_LINE_UNIT && u.len == 2, "first line");
    r = crow_ev_next(ev, &u, 50);
    ok(r == 0 && u.kind == CROW_EV_NONE, "no second unit while the first is out");
    crow_ev_done(ev, id, 0);
    r = crow_ev_next(ev, &u, 2000);
    ok(r == 1 && u.len == 2 && !memcmp(u.data, "l2", 2), "the second line after done");
    /* EINTR: signals during epoll_wait neither end the wait early nor fail it */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1; /* no SA_RESTART */
    sigaction(SIGUSR1, &sa, NULL);
    struct killer k = {.target = pthread_self()};
    pthread_t kt;
    pthread_create(&kt, NULL, killer_main, &k);
    int64_t t0 = now_ms();
    r = crow_ev_next(ev, &u, 300);
    int64_t dt = now_ms() - t0;
    atomic_store(&k.stop, 1);
    pthread_join(kt, NULL);
    ok(r == 0 && dt >= 290 && k.sent >= 5, "EINTR is retried within the overall timeout (%lld ms, %d signals)",
       (long long)dt, k.sent);
    ok(crow_ev_close(ev, id) == 0, "close");
    ok(crow_ev_reply(ev, id, &iov, 1, 0) == -1 && errno == EBADF, "reply after close: EBADF");
    ok(read(sp[1], c4, 1) == 0, "the peer sees the close");
    close(sp[1]);
    /* date */
    const char *d = crow_ev_date(ev);
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(d, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    time_t t = timegm(&tm);
    ok(strlen(d) == 29 && end && !*end && llabs((long long)(t - time(NULL))) <= 2,
       "crow_ev_date is an IMF-fixdate of now (%s)", d);
    crow_ev_destroy(ev);
    crow_ev_destroy(NULL);

    /* allocation failures */
    int first_ok = 0;
    for (long n = 1; n < 20 && !first_ok; n++) {
        struct failalloc fa = {.fail_at = n};
        struct crow_allocator a = failalloc_make(&fa);
        crow_ev_config_init(&cfg);
        cfg.allocator = &a;
        cfg.refusal = "no";
        cfg.refusal_len = 2;
        errno = 0;
        ev = crow_ev_new(&cfg);
        if (ev) {
            first_ok = 1;
            crow_ev_destroy(ev);
        } else if (errno != ENOMEM || fa.live != 0) {
            ok(0, "crow_ev_new failing at allocation %ld: ENOMEM, nothing leaked", n);
            first_ok = -1;
        }
    }
    ok(first_ok == 1, "crow_ev_new fails cleanly at every allocation, then succeeds");
    /* a connection that can't get memory is closed; the loop goes on */
    struct failalloc fa = {0};
    struct crow_allocator a = failalloc_make(&fa);
    crow_ev_config_init(&cfg);
    cfg.allocator = &a;
    ev = crow_ev_new(&cfg);
    int lfd = crow_ev_tcp_listener("127.0.0.1", 0, CROW_EV_REUSEPORT, 0);
    crow_ev_listen(ev, lfd, CROW_EV_LINE, 0);
    fa.fail_at = fa.calls + 1;
    fa.fail_after = 1;
    int cfd = dial(local_port(lfd));
    crow_ev_next(ev, &u, 200);
    ok(at_eof(cfd), "accept without memory: the connection is closed");
    close(cfd);
    fa.fail_at = 0;
    fa.fail_after = 0;
    cfd = dial(local_port(lfd));
    puts_(cfd, "hi\n");
    r = crow_ev_next(ev, &u, 2000);
    ok(r == 1 && u.kind == CROW_EV_LINE_UNIT && u.len == 2, "then the next connection works");
    close(cfd);
    /* idle connections hold no input buffer: 40 answered, now idle, cost their struct only */
    crow_ev_done(ev, u.conn, 0);
    crow_ev_next(ev, &u, 50);
    long long before = fa.bytes;
    enum { NIDLE = 40 };
    int idle[NIDLE], served = 0;
    for (int i = 0; i < NIDLE; i++) {
        idle[i] = dial(local_port(lfd));
        puts_(idle[i], "hi\n");
    }
    int64_t t1 = now_ms();
    while (served < NIDLE && now_ms() - t1 < 5000)
        if (crow_ev_next(ev, &u, 100) == 1 && u.kind == CROW_EV_LINE_UNIT) {
            crow_ev_done(ev, u.conn, 0);
            served++;
        }
    crow_ev_next(ev, &u, 20);
    long long grew = fa.bytes - before;
    ok(served == NIDLE && grew < (long long)NIDLE * (long long)cfg.read_size / 2,
       "%d idle keep-alive connections hold no input buffers (%lld bytes for all, read_size %zu)",
       served, grew, cfg.read_size);
    for (int i = 0; i < NIDLE; i++)
        puts_(idle[i], "again\n");
    served = 0;
    t1 = now_ms();
    while (served < NIDLE && now_ms() - t1 < 5000)
        if (crow_ev_next(ev, &u, 100) == 1 && u.kind == CROW_EV_LINE_UNIT && u.len == 5) {
            crow_ev_done(ev, u.conn, 0);
            served++;
        }
    is_int(served, NIDLE, "and each of them frames its next line (a buffer taken again)");
    for (int i = 0; i < NIDLE; i++)
        close(idle[i]);
    crow_ev_destroy(ev);
    close(lfd);
    ok(fa.live == 0, "everything given back (%ld blocks live)", fa.live);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    alarm(240); /* a hang fails the test instead of blocking the run */
    big = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (char)(i * 7 + (i >> 13));
    snprintf(file_path, sizeof file_path, "/tmp/crow-evloop-XXXXXX");
    file_fd = mkstemp(file_path);
    unlink(file_path);
    for (size_t i = 0; i < FILE_LEN; i += 4096) {
        size_t n = FILE_LEN - i < 4096 ? FILE_LEN - i : 4096;
        pwrite(file_fd, big + i, n, (off_t)i);
    }

    test_local();

    struct crow_ev_config cfg;
    crow_ev_config_init(&cfg);
    cfg.max_line = 16;
    cfg.max_head = 1024;
    cfg.max_body = 1 << 20;
    cfg.read_size = 512;
    struct server *s = server_start(&cfg);
    ok(s != NULL, "server with LINE, HTTP and RAW listeners on 127.0.0.1:0");
    test_lines(s);
    test_http_split(s);
    test_http_bodies(s);
    test_http_errors(s);
    test_http_head_bytes(s);
    test_big_reply(s);
    test_sendfile(s);
    test_stale(s);
    test_many(s);
    test_wake(s);
    server_stop(s);

    test_limits();
    test_idle_silent();
    test_head_first();
    test_busy_poll();
    close(file_fd);
    free(big);
    return tap_done();
}
