/* test_fcache.c — whole-file answers replayed by the loop: a handler standing in for Lisp
 * answers a request and records the file; the same request then gets the recorded bytes
 * without reaching the handler, and every request that must go to Lisp (other Host, escapes,
 * conditional headers, bodies, methods, a changed file, an invalidation) still does. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "evnet.h"
#include "fcache.h"
#include "tap.h"

#define BIGLEN 300000

static const char HEAD[] = "\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nETag: \"x\"\r\n";

struct srv {
    struct evnet net;
    struct crow_fcache *fc;
    atomic_int calls;        /* units that reached the handler */
    int invalidate_first;    /* the handler invalidates before its put (expects ESTALE) */
    atomic_int put_r, put_errno;
    char big_path[64];
    int big_fd;
    char big_head[128];
};

static void handler(void *ctx, const struct crow_ev_unit *u)
{
    struct srv *s = ctx;
    atomic_fetch_add(&s->calls, 1);
    static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nLISP";
    struct iovec iov = {(void *)r, sizeof r - 1};
    struct crow_ev_unit held = *u; /* the bytes go with the reply; the put comes after it */
    const char *t = u->data + u->http.target_off;
    int is_f = u->http.target_len >= 2 && !memcmp(t, "/f", 2) &&
               (u->http.target_len == 2 || t[2] == '?');
    int is_big = (u->http.target_len == 4 && !memcmp(t, "/big", 4)) ||
                 (u->http.target_len == 5 && !memcmp(t, "/big2", 5));
    atomic_store(&s->put_r, 1);
    crow_ev_reply(s->net.ev, u->conn, &iov, 1, u->http.keep_alive ? 0 : CROW_EV_CLOSE_AFTER);
    u = &held;
    if (u->kind != CROW_EV_REQUEST)
        return;
    struct crow_fcache_file f = {0};
    if (is_f) {
        f.fd = -1;
        f.size = 6;
        f.head = HEAD;
        f.head_len = sizeof HEAD - 1;
        f.data = "CACHED";
    } else if (is_big) {
        struct stat st;
        fstat(s->big_fd, &st);
        f.path = s->big_path;
        f.fd = s->big_fd;
        f.size = (uint64_t)st.st_size;
        f.ino = (uint64_t)st.st_ino;
        f.mtime = (int64_t)st.st_mtime;
        f.head = s->big_head;
        f.head_len = strlen(s->big_head);
    } else {
        return;
    }
    if (s->invalidate_first)
        crow_fcache_invalidate();
    int r2 = crow_fcache_put(s->fc, u, &f);
    atomic_store(&s->put_r, r2);
    atomic_store(&s->put_errno, r2 < 0 ? errno : 0);
}

/* Sends REQ on a fresh connection and reads the answer until EOF or N bytes. */
static size_t ask(int port, const char *req, char *buf, size_t n)
{
    int fd = dial(port);
    if (fd < 0)
        return 0;
    puts_(fd, req);
    shutdown(fd, SHUT_WR);
    size_t got = get(fd, buf, n - 1);
    buf[got] = 0;
    close(fd);
    return got;
}

/* Waits (bounded) until the handler's put after its reply is done. */
static int put_result(struct srv *s)
{
    for (int i = 0; i < 200 && atomic_load(&s->put_r) == 1; i++)
        sleep_ms(10);
    return atomic_load(&s->put_r);
}

static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? b + 4 : "";
}

int main(void)
{
    struct crow_fcache_config fcfg = {
        .prefix = "HTTP/1.1 200 OK\r\nServer: T\r\nDate: ", .close_line = "Connection: close\r\n",
        .keep_line = "Connection: keep-alive\r\n", .end = "\r\n",
        .defer = "if-none-match\nrange", .max_headers = 8, .max_entries = 16, .max_bytes = 1 << 20,
        .max_fds = 1};
    errno = 0;
    ok(crow_fcache_new(NULL) == NULL && errno == EINVAL, "new: NULL config is EINVAL");
    struct crow_fcache_config bad = fcfg;
    bad.max_entries = 0;
    errno = 0;
    ok(crow_fcache_new(&bad) == NULL && errno == EINVAL, "new: zero max_entries is EINVAL");

    struct crow_ev_config cfg;
    crow_ev_config_init(&cfg);
    int modes[1] = {CROW_EV_HTTP};
    struct srv *s = calloc(1, sizeof *s);
    snprintf(s->big_path, sizeof s->big_path, "/tmp/crow-fcache-%d", (int)getpid());
    s->big_fd = open(s->big_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    char *big = malloc(BIGLEN);
    for (int i = 0; i < BIGLEN; i++)
        big[i] = (char)('a' + i % 23);
    ok(s->big_fd >= 0 && write(s->big_fd, big, BIGLEN) == BIGLEN, "big file written");
    snprintf(s->big_head, sizeof s->big_head, "\r\nContent-Length: %d\r\n", BIGLEN);
    s->fc = crow_fcache_new(&fcfg);
    ok(s->fc != NULL, "new");
    if (evnet_start(&s->net, &cfg, modes, 1, handler, s) < 0) {
        ok(0, "loop started");
        return tap_done();
    }
    int port = s->net.port[0];
    /* the fcache belongs to the loop's thread; the loop reads its answerer only once a unit
     * is ready, and none can be before the first connection below */
    crow_fcache_attach(s->fc, s->net.ev);

    static char buf[BIGLEN + 4096];
    ask(port, "GET /f HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", buf, sizeof buf);
    ok(!strcmp(body_of(buf), "LISP") && atomic_load(&s->calls) == 1 && put_result(s) == 0,
       "first request reaches the handler, which records the file");
    ask(port, "GET /f HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", buf, sizeof buf);
    ok(atomic_load(&s->calls) == 1, "the same request is answered by the loop");
    char date[40] = "";
    const char *d = strstr(buf, "Date: ");
    if (d)
        snprintf(date, sizeof date, "%.29s", d + 6);
    char want[512];
    snprintf(want, sizeof want,
             "HTTP/1.1 200 OK\r\nServer: T\r\nDate: %s%sConnection: close\r\n\r\nCACHED", date, HEAD);
    ok(!strcmp(buf, want), "replayed bytes: prefix, date, head, close line, end, data");

    ask(port, "HEAD /f HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", buf, sizeof buf);
    ok(atomic_load(&s->calls) == 1 && !strcmp(body_of(buf), "") && strstr(buf, "Content-Length: 6"),
       "HEAD: the head only, from the loop");
    ask(port, "GET /f?q=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", buf, sizeof buf);
    ok(atomic_load(&s->calls) == 1 && !strcmp(body_of(buf), "CACHED"), "a query does not change the key");
    ask(port, "GET /f HTTP/1.0\r\nHost: a\r\n\r\n", buf, sizeof buf);
    ok(atomic_load(&s->calls) == 1 && strstr(buf, "\r\nConnection: close\r\n") &&
           !strcmp(body_of(buf), "CACHED"),
       "HTTP/1.0 without keep-alive: the close line, closed after");
    {
        int fd = dial(port);
        puts_(fd, "GET /f HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n"
                  "GET /f HTTP/1.1\r\nHost: a\r\n\r\n");
        size_t n1 = strlen(want) - strlen("Connection: close\r\n") + strlen("Connection: keep-alive\r\n");
        size_t n2 = strlen(want) - strlen("Connection: close\r\n");
        size_t got = get(fd, buf, n1 + n2);
        buf[got] = 0;
        ok(got == n1 + n2 && strstr(buf, "Connection: keep-alive\r\n") &&
               atomic_load(&s->calls) == 1,
           "pipelined 1.0 keep-alive and 1.1 requests: both from the loop, in order");
        close(fd);
    }

    struct {
        const char *req, *what;
    } lisp[] = {
        {"GET /f HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n", "another Host"},
        {"GET /f HTTP/1.1\r\nHost: A\r\nConnection: close\r\n\r\n", "the Host in another case"},
        {"GET /f HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"x\"\r\nConnection: close\r\n\r\n",
         "a deferred header (If-None-Match)"},
        {"GET /f HTTP/1.1\r\nHost: a\r\nRANGE: bytes=0-1\r\nConnection: close\r\n\r\n",
         "a deferred header in capitals (Range)"},
        {"GET /%66 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "a percent escape"},
        {"GET /./f HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "a dot segment"},
        {"POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx", "POST"},
        {"GET /f HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
         "a Content-Length"},
        {"GET /f HTTP/1.1\r\nHost: a\r\nHost: a\r\nConnection: close\r\n\r\n", "two Hosts"},
        {"GET /f HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\n"
         "G: 1\r\nConnection: close\r\n\r\n", "more fields than max_headers"},
        {"GET /f HTTP/1.0\r\n\r\n", "no Host"}, /* last: its put fails */
    };
    for (size_t i = 0; i < sizeof lisp / sizeof lisp[0]; i++) {
        int before = atomic_load(&s->calls);
        ask(port, lisp[i].req, buf, sizeof buf);
        ok(atomic_load(&s->calls) == before + 1 && !strcmp(body_of(buf), "LISP"), "to the handler: %s",
           lisp[i].what);
    }
    is_int(put_result(s), -1, "a put for a request without Host fails");
    is_int(atomic_load(&s->put_errno), EINVAL, "... with EINVAL");

    /* invalidation empties the table; a put racing an invalidation is refused */
    crow_fcache_invalidate();
    int before = atomic_load(&s->calls);
    ask(port, "GET /f HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", buf, sizeof buf);
    ok(atomic_load(&s->calls) == before + 1, "after crow_fcache_invalidate the handler answers again");
    ask(port, "GET /f HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", buf, sizeof buf);
    ok(atomic_load(&s->calls) == before + 1 && !strcmp(body_of(buf), "CACHED"), "... and records anew");
    s->invalidate_first = 1;
    ask(port, "GET /f HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n", buf, sizeof buf);
    ok(put_result(s) == -1 && atomic_load(&s->put_errno) == ESTALE,
       "a put after an invalidation since the unit was framed: ESTALE");
    s->invalidate_first = 0;

    /* a descriptor entry: sendfile behind the head; a changed file goes back to the handler */
    before = atomic_load(&s->calls);
    ask(port, "GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", buf, sizeof buf);
    size_t got = ask(port, "GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", buf, sizeof buf);
    const char *b = body_of(buf);
    ok(atomic_load(&s->calls) == before + 1 && got - (size_t)(b - buf) == BIGLEN &&
           !memcmp(b, big, BIGLEN),
       "a descriptor entry: the whole file with sendfile");
    {
        int fd = dial(port);
        puts_(fd, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n");
        sleep_ms(300); /* a slow reader: most of the file waits in the queue */
        puts_(fd, "HEAD /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        size_t n = get(fd, buf, sizeof buf - 1);
        buf[n] = 0;
        const char *second = strstr(body_of(buf) + BIGLEN, "HTTP/1.1 200");
        ok(atomic_load(&s->calls) == before + 1 && second && !strcmp(body_of(second), ""),
           "a sendfile answer to a slow reader, then a pipelined HEAD, from the loop");
        close(fd);
    }
    ask(port, "GET /big2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", buf, sizeof buf);
    ok(put_result(s) == -1 && atomic_load(&s->put_errno) == ENOSPC,
       "a second descriptor entry beyond max_fds 1: ENOSPC");
    before = atomic_load(&s->calls);
    ask(port, "GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", buf, sizeof buf);
    ok(atomic_load(&s->calls) == before, "... the first one still answered by the loop");
    ok(ftruncate(s->big_fd, 1000) == 0, "big file truncated");
    sleep_ms(1100); /* revalidation happens at most once a second */
    ask(port, "GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", buf, sizeof buf);
    ok(atomic_load(&s->calls) == before + 1 && !strcmp(body_of(buf), "LISP") && put_result(s) == 0,
       "a file whose size changed goes back to the handler (whose put replaces the entry)");

    put_result(s); /* the loop is idle once the handler's last put is done */
    struct crow_fcache_stats st;
    crow_fcache_stats(s->fc, &st);
    ok(st.hits >= 8 && st.misses >= 11 && st.entries >= 1 && st.fds == 1,
       "stats count hits, misses, entries, descriptors");
    printf("# hits %llu misses %llu entries %llu bytes %llu\n", (unsigned long long)st.hits,
           (unsigned long long)st.misses, (unsigned long long)st.entries, (unsigned long long)st.bytes);

    evnet_stop(&s->net); /* destroys the fcache with the loop */
    close(s->big_fd);
    unlink(s->big_path);
    free(big);
    free(s);
    return tap_done();
}
