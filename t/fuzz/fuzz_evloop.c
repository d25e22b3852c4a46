/* fuzz_evloop.c — the loop's framing must not depend on how input is segmented: a stream is
 * fed once whole (large read buffer) and once in random small writes (16-byte read buffer)
 * through a socketpair, and the units must match; LINE units are also checked against a
 * one-shot reference splitter, HTTP units against invariants.  Aborts on a mismatch. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evloop.h"

enum { MAXIN = 3000, MAXU = MAXIN + 8, MAX_LINE = 32, MAX_HEAD = 128, MAX_BODY = 256 };

struct rec {
    int kind;
    size_t len;
    uint64_t hash;
    uint32_t head_len, body_len, nheaders;
    int chunked, eol;
};

struct run {
    struct rec u[MAXU];
    int n;
};

static void check(int cond)
{
    if (!cond)
        abort();
}

static uint64_t fnv(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

/* Takes every unit now available, recording it; returns 1 once the connection's CLOSED unit
 * was seen. */
static int drain(struct crow_ev *ev, struct run *r, int reply_sometimes)
{
    struct crow_ev_unit u;
    while (crow_ev_next(ev, &u, 0) == 1) {
        if (u.kind == CROW_EV_CLOSED)
            return 1;
        check(r->n < MAXU);
        struct rec *x = &r->u[r->n++];
        memset(x, 0, sizeof *x);
        x->kind = u.kind;
        x->len = u.len;
        x->hash = fnv(u.data, u.len);
        x->eol = u.eol_len;
        if (u.kind == CROW_EV_REQUEST) {
            const struct crow_ev_http *h = &u.http;
            check(h->head_len + h->body_len == u.len && h->head_len <= MAX_HEAD);
            check(h->body_len <= MAX_BODY);
            check(h->method_len > 0 && h->method_off + h->method_len < h->head_len);
            check(h->target_off + h->target_len < h->head_len);
            check(h->version == 10 || h->version == 11);
            for (uint32_t i = 0; i < h->nheaders; i++)
                check(h->headers[i].value_off + h->headers[i].value_len < h->head_len &&
                      h->headers[i].name_len > 0);
            check(h->chunked ? h->content_length == -1
                             : h->body_len == (h->content_length < 0 ? 0 : h->content_length));
            check(!memcmp(u.data + h->head_len - 1, "\n", 1));
            x->head_len = h->head_len;
            x->body_len = h->body_len;
            x->nheaders = h->nheaders;
            x->chunked = h->chunked;
        }
        if (reply_sometimes && (r->n & 3) == 0) {
            struct iovec iov = {"ok\r\n", 4};
            check(crow_ev_reply(ev, u.conn, &iov, 1, 0) == 0);
        } else {
            check(crow_ev_done(ev, u.conn, 0) == 0);
        }
    }
    return 0;
}

static void feed(int mode, const uint8_t *s, size_t n, unsigned seed, int split, struct run *r)
{
    struct crow_ev_config cfg;
    crow_ev_config_init(&cfg);
    cfg.max_line = MAX_LINE;
    cfg.max_head = MAX_HEAD;
    cfg.max_body = MAX_BODY;
    cfg.read_size = split ? 16 : 8192;
    cfg.notify_close = 1;
    struct crow_ev *ev = crow_ev_new(&cfg);
    check(ev != NULL);
    int sp[2];
    check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
    check(crow_ev_adopt(ev, sp[0], mode) != 0);
    r->n = 0;
    int closed = 0;
    size_t at = 0;
    uint32_t x = seed * 2654435761u + 1;
    while (at < n && !closed) {
        size_t k = n - at;
        if (split) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            size_t c = 1 + x % 17;
            if (c < k)
                k = c;
        }
        ssize_t w = send(sp[1], s + at, k, MSG_NOSIGNAL);
        if (w < 0 && errno == EPIPE)
            break; /* the loop closed after an error unit */
        check(w == (ssize_t)k);
        at += k;
        closed = drain(ev, r, split);
    }
    shutdown(sp[1], SHUT_WR);
    for (int i = 0; i < 4 && !closed; i++)
        closed = drain(ev, r, split);
    check(closed); /* after EOF the connection must go */
    close(sp[1]);
    crow_ev_destroy(ev);
}

/* One-shot reference for LINE mode. */
static void ref_lines(const uint8_t *s, size_t n, struct run *r)
{
    r->n = 0;
    size_t i = 0;
    while (i < n) {
        const uint8_t *nl = memchr(s + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - s) : n;
        size_t l = end - i;
        int eol = 0;
        if (nl) {
            eol = 1;
            if (l && s[end - 1] == '\r')
                l--, eol = 2;
        }
        struct rec *x = &r->u[r->n];
        memset(x, 0, sizeof *x);
        if (nl && l <= MAX_LINE) {
            x->kind = CROW_EV_LINE_UNIT;
            x->len = l;
            x->eol = eol;
            x->hash = fnv((const char *)s + i, l);
            r->n++;
        } else if (nl || end - i >= MAX_LINE + 2) {
            x->kind = CROW_EV_TOO_LONG;
            x->len = MAX_LINE;
            x->hash = fnv((const char *)s + i, MAX_LINE);
            r->n++;
        }
        i = nl ? end + 1 : n;
    }
}

static void same(const struct run *a, const struct run *b)
{
    check(a->n == b->n);
    for (int i = 0; i < a->n; i++) {
        const struct rec *x = &a->u[i], *y = &b->u[i];
        check(x->kind == y->kind && x->len == y->len && x->hash == y->hash && x->eol == y->eol);
        check(x->head_len == y->head_len && x->body_len == y->body_len &&
              x->nheaders == y->nheaders && x->chunked == y->chunked);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    static struct run whole, split, ref;
    if (len < 1 || len > MAXIN + 1)
        return 0;
    int mode = data[0] & 1 ? CROW_EV_HTTP : CROW_EV_LINE;
    feed(mode, data + 1, len - 1, data[0] >> 1, 0, &whole);
    feed(mode, data + 1, len - 1, data[0] >> 1, 1, &split);
    same(&whole, &split);
    if (mode == CROW_EV_LINE) {
        ref_lines(data + 1, len - 1, &ref);
        same(&ref, &whole);
    }
    return 0;
}
