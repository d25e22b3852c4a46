/* test_evloop_linger.c — lingering close: a client still sending a body when the loop answers
 * with an error and closes (413 from the head, 413 as a chunked body crosses its limit, a
 * sink that fails mid-body, a HEAD unit refused without its body), or sending pipelined
 * requests behind one answered with a close, reads the whole answer and a
 * clean EOF, never a reset, whether it sends everything first or watches for the answer while
 * sending; repeated, since a reset is a race.  And the bounds: linger_max bytes and linger_ms
 * (a connection that keeps sending, or stays open silent, is closed all the same), linger_ms 0
 * closes at once, and a lingering connection's id is stale for the caller.  The head
 * deadline's 408 lingers the same way (the client's later head bytes are taken, no reset).  A unit refusing a
 * body carries its head's facts (the caller can log the request); one refusing a head none.
 * The head deadline's 408 lingers the same way: the client's later head bytes are taken, no
 * reset, and the close comes at its EOF. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evnet.h"
#include "tap.h"

#define ANSWER "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large"
#define REPEAT 8

struct srv {
    struct evnet net;
    atomic_int closed;      /* CLOSED units */
    atomic_int stale_reply; /* a reply to the last refused id, made after it was finished */
    atomic_int facts;       /* error units whose http describes their head (POST /x) */
    atomic_int no_facts;    /* error units with http.head_len 0 */
    uint64_t refused;       /* the connection last answered 413 */
};

static int fail_write(void *arg, const char *p, size_t n)
{
    size_t *got = arg;
    (void)p;
    if ((*got += n) > (256u << 10)) {
        errno = EFBIG;
        return -1;
    }
    return 0;
}

static int sink_end(void *arg)
{
    (void)arg;
    return 0;
}

static void sink_free(void *arg)
{
    free(arg);
}

static const struct crow_ev_sink sink_proto = {fail_write, sink_end, sink_free, NULL};

static void answer(struct srv *s, uint64_t conn)
{
    struct iovec iov = {(void *)ANSWER, sizeof ANSWER - 1};
    crow_ev_reply(s->net.ev, conn, &iov, 1, CROW_EV_CLOSE_AFTER);
    s->refused = conn;
}

static void handle(void *ctx, const struct crow_ev_unit *u)
{
    struct srv *s = ctx;
    const char *t = u->data ? u->data + u->http.target_off : "";
    size_t tl = u->http.target_len;
    switch (u->kind) {
    case CROW_EV_HEAD:
        if (tl == 5 && !memcmp(t, "/sink", 5)) {
            struct crow_ev_sink *k = malloc(sizeof *k);
            *k = sink_proto;
            k->arg = calloc(1, sizeof(size_t));
            if (crow_ev_continue_sink(s->net.ev, u->conn, 64u << 20, k) < 0) {
                free(k->arg);
                free(k);
            }
        } else if (tl == 7 && !memcmp(t, "/refuse", 7)) {
            answer(s, u->conn); /* without its body */
        } else {
            crow_ev_continue(s->net.ev, u->conn, 64u << 10);
        }
        return;
    case CROW_EV_REQUEST:
        if (u->http.sink) {
            free(u->http.sink->arg);
            free((void *)u->http.sink);
        }
        if (u->http.sink_errno || (tl == 6 && !memcmp(t, "/close", 6))) {
            answer(s, u->conn);
        } else {
            static const char okr[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            struct iovec iov = {(void *)okr, sizeof okr - 1};
            crow_ev_reply(s->net.ev, u->conn, &iov, 1, 0);
        }
        return;
    case CROW_EV_TOO_LARGE:
    case CROW_EV_BAD:
    case CROW_EV_TOO_LONG:
        if (u->http.head_len == 0)
            atomic_fetch_add(&s->no_facts, 1);
        else if (u->http.head_len == u->len && u->http.method_len == 4 &&
                 !memcmp(u->data, "POST", 4) && tl == 2 && !memcmp(t, "/x", 2) &&
                 u->http.nheaders == 2 && u->http.body_len == 0)
            atomic_fetch_add(&s->facts, 1);
        answer(s, u->conn);
        /* the unit is finished and the answer written: the id must be stale now */
        if (crow_ev_done(s->net.ev, u->conn, 0) < 0 && errno == EBADF)
            atomic_fetch_add(&s->stale_reply, 1);
        return;
    case CROW_EV_CLOSED:
        atomic_fetch_add(&s->closed, 1);
        return;
    default:
        return;
    }
}

static struct srv *start(unsigned linger_ms, size_t linger_max)
{
    struct crow_ev_config cfg;
    crow_ev_config_init(&cfg);
    cfg.head_first = 1;
    cfg.head_first_over = 0;
    cfg.max_body = 64u << 20;
    cfg.notify_close = 1;
    cfg.linger_ms = linger_ms;
    cfg.linger_max = linger_max;
    int mode = CROW_EV_HTTP;
    return evnet_spawn(sizeof(struct srv), &cfg, &mode, 1, handle);
}

#define T408 "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

/* A loop with a 200 ms head deadline answered with T408 (as crow-httpd's request-timeout). */
static struct srv *start_head(unsigned linger_ms)
{
    struct crow_ev_config cfg;
    crow_ev_config_init(&cfg);
    cfg.head_ms = 200;
    cfg.timeout_reply = T408;
    cfg.timeout_reply_len = sizeof T408 - 1;
    cfg.timeout_started_only = 1;
    cfg.notify_close = 1;
    cfg.linger_ms = linger_ms;
    int mode = CROW_EV_HTTP;
    return evnet_spawn(sizeof(struct srv), &cfg, &mode, 1, handle);
}

/* Waits (at most MS) until S has seen N CLOSED units.  Returns 1 when it has. */
static int wait_closed(struct srv *s, int n, int ms)
{
    int64_t end = now_ms() + ms;
    while (atomic_load(&s->closed) < n && now_ms() < end)
        sleep_ms(5);
    return atomic_load(&s->closed) >= n;
}

struct outcome {
    size_t sent;      /* body bytes the client got out */
    int send_errno;   /* why it stopped sending early, else 0 */
    char resp[512];
    size_t rlen;
    int read_errno;   /* 0: the answer ended in a clean EOF */
};

static const char *chunk_of(size_t n)
{
    static char block[65536];
    if (!block[0])
        memset(block, 'x', sizeof block);
    return n <= sizeof block ? block : NULL;
}

/* Reads the rest of FD until EOF into O (RESP keeps the first bytes). */
static void read_rest(int fd, struct outcome *o)
{
    char buf[4096];
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            o->read_errno = r < 0 ? errno : 0;
            return;
        }
        size_t k = (size_t)r < sizeof o->resp - 1 - o->rlen ? (size_t)r : sizeof o->resp - 1 - o->rlen;
        memcpy(o->resp + o->rlen, buf, k);
        o->rlen += k;
        o->resp[o->rlen] = 0;
    }
}

/* Sends HEAD then BODY bytes of 'x' (as chunks of 64 KiB when CHUNKED), all of it before
 * reading anything (WATCH 0, as http.client does) or stopping to read as soon as an answer
 * comes (WATCH 1, as curl does). */
static void upload(int port, const char *head, size_t body, int chunked, int watch,
                   struct outcome *o)
{
    memset(o, 0, sizeof *o);
    int fd = dial(port);
    if (fd < 0) {
        o->send_errno = errno;
        return;
    }
    put(fd, head, strlen(head));
    if (watch)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    char line[32];
    int64_t end = now_ms() + 20000;
    while (o->sent < body && now_ms() < end) {
        size_t n = body - o->sent < 65536 ? body - o->sent : 65536;
        if (watch) {
            struct pollfd p = {fd, POLLIN | POLLOUT, 0};
            if (poll(&p, 1, 1000) <= 0)
                continue;
            if (p.revents & POLLIN)
                break; /* the answer is here: read it */
        }
        if (chunked) {
            int l = snprintf(line, sizeof line, "%zx\r\n", n);
            put(fd, line, (size_t)l);
        }
        ssize_t w = send(fd, chunk_of(n), n, MSG_NOSIGNAL);
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (w <= 0) {
            o->send_errno = w < 0 ? errno : EIO;
            break;
        }
        if (chunked && (size_t)w < n) { /* keep the chunk framing whole */
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
            put(fd, chunk_of(n) + w, n - (size_t)w);
            w = (ssize_t)n;
            if (watch)
                fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        }
        if (chunked)
            put(fd, "\r\n", 2);
        o->sent += (size_t)w;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    read_rest(fd, o);
    close(fd);
}

static int clean_answer(const struct outcome *o)
{
    return o->rlen == sizeof ANSWER - 1 && !memcmp(o->resp, ANSWER, o->rlen) && o->read_errno == 0;
}

static void case_repeat(struct srv *s, const char *what, const char *head, size_t body,
                        int chunked, int watch)
{
    int good = 0, whole = 0;
    struct outcome o, cut = {0};
    int64_t cut_ms = 0;
    for (int i = 0; i < REPEAT; i++) {
        int64_t t0 = now_ms();
        upload(s->net.port[0], head, body, chunked, watch, &o);
        good += clean_answer(&o);
        if (o.sent == body && o.send_errno == 0)
            whole++;
        else
            cut = o, cut_ms = now_ms() - t0;
    }
    if (!ok(good == REPEAT, "%s, %s: the whole 413 and a clean EOF, %d/%d times", what,
            watch ? "answer watched while sending" : "body sent first", good, REPEAT))
        printf("#   last: sent %zu of %zu (send errno %d), read %zu bytes (read errno %d): %.40s\n",
               o.sent, body, o.send_errno, o.rlen, o.read_errno, o.resp);
    if (!watch && !ok(whole == REPEAT, "%s: the client sent its whole body every time (%d/%d)",
                      what, whole, REPEAT))
        printf("#   cut off: sent %zu of %zu (send errno %d) after %lld ms\n", cut.sent, body,
               cut.send_errno, (long long)cut_ms);
}

int main(void)
{
    struct srv *s = start(5000, 64u << 20);
    if (!ok(s != NULL, "loop started"))
        return tap_done();
    const size_t big = 8u << 20;
    char head[256];

    snprintf(head, sizeof head, "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", big);
    case_repeat(s, "Content-Length over the limit (413 from the head)", head, big, 0, 0);
    case_repeat(s, "Content-Length over the limit (413 from the head)", head, big, 0, 1);

    const char *chead = "POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    case_repeat(s, "chunked body crossing the limit mid-stream", chead, big, 1, 0);
    case_repeat(s, "chunked body crossing the limit mid-stream", chead, big, 1, 1);

    snprintf(head, sizeof head, "POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", big);
    case_repeat(s, "a sink failing mid-body", head, big, 0, 0);

    snprintf(head, sizeof head, "POST /refuse HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", big);
    case_repeat(s, "a HEAD unit refused without its body", head, big, 0, 0);

    /* The pipelined bytes start in the request's own segment, so they are there when the loop
       decides how to close: a client whose bytes arrive only after that decision (input
       neither buffered nor readable then) gets the plain close, and its later bytes a reset —
       nginx's lingering_close "on" heuristic has the same window. */
    static char piped[4096 + 64];
    int hl = snprintf(piped, sizeof piped, "GET /close HTTP/1.1\r\nHost: t\r\n\r\n");
    memset(piped + hl, 'x', 4096);
    piped[hl + 4096] = 0;
    case_repeat(s, "8 MiB pipelined behind a request answered with a close", piped, big - 4096,
                0, 0);

    int total = 7 * REPEAT, fd;
    struct outcome o;
    ok(wait_closed(s, total, 10000), "every lingering connection closed in the end (%d of %d)",
       atomic_load(&s->closed), total);
    is_int(atomic_load(&s->stale_reply), 4 * REPEAT,
           "a lingering connection's id is stale for the caller (EBADF)");
    is_int(atomic_load(&s->facts), 4 * REPEAT,
           "a TOO_LARGE unit refusing a body carries its head's facts");
    fd = dial(s->net.port[0]);
    puts_(fd, "GARBAGE\r\n\r\n");
    memset(&o, 0, sizeof o);
    read_rest(fd, &o);
    close(fd);
    ok(clean_answer(&o) && atomic_load(&s->no_facts) == 1,
       "a BAD head: answered, with no head facts (head_len 0)");
    total++;

    /* a silent client that keeps its side open: the answer and EOF at once, the close at
       linger_ms (5 s here) — still open a little later, which without lingering it is not */
    snprintf(head, sizeof head, "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", big);
    fd = dial(s->net.port[0]);
    put(fd, head, strlen(head));
    memset(&o, 0, sizeof o);
    read_rest(fd, &o);
    ok(clean_answer(&o), "a silent client gets the answer and EOF at once");
    sleep_ms(200);
    ok(atomic_load(&s->closed) == total, "... and its connection lingers (not closed after 200 ms)");
    ok(wait_closed(s, total + 1, 5000 + 3000), "... until linger_ms (closed within 8 s)");
    close(fd);
    evnet_free(&s->net);

    /* the byte bound: a client that never stops is cut off after linger_max */
    s = start(5000, 1u << 20);
    upload(s->net.port[0], head, 64u << 20, 0, 0, &o);
    ok(o.sent < (64u << 20) && o.send_errno != 0,
       "linger_max 1 MiB: a client sending 64 MiB is cut off (sent %zu, errno %d)", o.sent,
       o.send_errno);
    ok(wait_closed(s, 1, 5000), "... and its connection closed");
    evnet_free(&s->net);

    /* linger_ms 0: the old close at once (the id goes stale all the same) */
    s = start(0, 1u << 20);
    fd = dial(s->net.port[0]);
    put(fd, head, strlen(head));
    memset(&o, 0, sizeof o);
    read_rest(fd, &o);
    ok(o.rlen == sizeof ANSWER - 1 && wait_closed(s, 1, 2000),
       "linger_ms 0: the answer, then the close at once");
    close(fd);
    evnet_free(&s->net);

    /* the head deadline's 408 lingers too: a client still sending its head reads the whole
       408 and EOF, its later bytes are taken (no reset), and the connection closes at the
       client's EOF, not at the deadline */
    s = start_head(5000);
    fd = dial(s->net.port[0]);
    puts_(fd, "GET / HTTP/1.1\r\nHost: t\r\n");
    memset(&o, 0, sizeof o);
    read_rest(fd, &o);
    ok(o.rlen == sizeof T408 - 1 && !memcmp(o.resp, T408, o.rlen) && o.read_errno == 0,
       "head deadline: the whole 408 and a clean EOF (read %zu bytes, errno %d)", o.rlen,
       o.read_errno);
    int taken = 0;
    for (int i = 0; i < 4; i++) {
        sleep_ms(50);
        taken += send(fd, "X-A: b\r\n", 8, MSG_NOSIGNAL) == 8;
    }
    sleep_ms(50);
    ok(taken == 4 && atomic_load(&s->closed) == 0,
       "... the head bytes sent after it are taken without a reset (%d/4), the connection "
       "lingers (%d closed)", taken, atomic_load(&s->closed));
    close(fd);
    ok(wait_closed(s, 1, 2000), "... and closes at the client's EOF (within 2 s; linger_ms 5 s)");
    evnet_free(&s->net);

    s = start_head(0);
    fd = dial(s->net.port[0]);
    puts_(fd, "GET / HTTP/1.1\r\nHost: t\r\n");
    memset(&o, 0, sizeof o);
    read_rest(fd, &o);
    ok(o.rlen == sizeof T408 - 1 && wait_closed(s, 1, 1000),
       "linger_ms 0: the 408, then the close at once");
    close(fd);
    evnet_free(&s->net);
    return tap_done();
}
