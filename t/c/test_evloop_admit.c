/* test_evloop_admit.c — the event loop with an admission table (refusal bytes per limit, every
 * close path leaving the table, two loops sharing one table) and bandwidth throttling (writev,
 * sendfile and reads, per connection and per address; one-sided time bounds, no busy loop).
 * # timeout: 300 */
#include <errno.h>
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "admit.h"
#include "evloop.h"
#include "evnet.h"
#include "tap.h"

#define MIB (1u << 20)
#define KIB 1024u

struct server {
    struct evnet net; /* net.port[]: LINE, HTTP, RAW */
    atomic_long raw_in;   /* RAW bytes received (all connections) */
    long raw_goal;        /* reply "done" once raw_in reaches it */
};

static char *big;
static int file_fd = -1;

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void reply_str(struct crow_ev *ev, uint64_t conn, const char *s, int flags)
{
    struct iovec iov = {(void *)s, strlen(s)};
    crow_ev_reply(ev, conn, &iov, 1, flags);
}

/* LINE: "close" -> crow_ev_close; "bye" -> reply and CLOSE_AFTER; "big N" -> N bytes by writev
 * (in two iovecs); "file N" -> N bytes of the file by sendfile; anything else is echoed.
 * HTTP: 200 with no body.  RAW: counted; "done\n" once raw_goal bytes came. */
static void handle(struct server *s, const struct crow_ev_unit *u)
{
    struct crow_ev *ev = s->net.ev;
    char out[256];
    if (u->kind == CROW_EV_DATA) {
        long n = atomic_fetch_add(&s->raw_in, (long)u->len) + (long)u->len;
        if (s->raw_goal && n >= s->raw_goal)
            reply_str(ev, u->conn, "done\n", 0);
        else
            crow_ev_done(ev, u->conn, 0);
        return;
    }
    if (u->kind == CROW_EV_REQUEST) {
        reply_str(ev, u->conn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0);
        return;
    }
    if (u->kind != CROW_EV_LINE_UNIT) {
        if (u->kind != CROW_EV_CLOSED && u->kind != CROW_EV_OPEN)
            crow_ev_done(ev, u->conn, CROW_EV_CLOSE_AFTER);
        return;
    }
    if (u->len == 5 && !memcmp(u->data, "close", 5)) {
        crow_ev_close(ev, u->conn);
        return;
    }
    if (u->len == 3 && !memcmp(u->data, "bye", 3)) {
        reply_str(ev, u->conn, "bye\n", CROW_EV_CLOSE_AFTER);
        return;
    }
    if (u->len > 4 && !memcmp(u->data, "big ", 4)) {
        size_t n = strtoul(u->data + 4, NULL, 10);
        struct iovec iov[2] = {{big, n / 2}, {big + n / 2, n - n / 2}};
        crow_ev_reply(ev, u->conn, iov, 2, 0);
        return;
    }
    if (u->len > 5 && !memcmp(u->data, "file ", 5)) {
        size_t n = strtoul(u->data + 5, NULL, 10);
        crow_ev_sendfile(ev, u->conn, file_fd, 0, n, 0);
        return;
    }
    snprintf(out, sizeof out, "%.*s\n", (int)u->len, u->data);
    reply_str(ev, u->conn, out, 0);
}

static void handle_unit(void *ctx, const struct crow_ev_unit *u) { handle(ctx, u); }

static struct server *server_start(const struct crow_ev_config *cfg)
{
    static const int modes[3] = {CROW_EV_LINE, CROW_EV_HTTP, CROW_EV_RAW};
    return evnet_spawn(sizeof(struct server), cfg, modes, 3, handle_unit);
}

static void server_stop(struct server *s) { evnet_free(&s->net); }

/* A line round trip: served (the echo came back) or not. */
static int served(int fd)
{
    char line[64];
    puts_(fd, "ping\n");
    return get_line(fd, line, sizeof line) && !strcmp(line, "ping\n");
}

/* Waits (bounded) until A's active count is WANT.  Returns the count seen last. */
static uint64_t wait_active(struct crow_admit *a, uint64_t want)
{
    struct crow_admit_stats st;
    int64_t t0 = now_ms();
    do {
        crow_admit_stats(a, &st);
        if (st.active == want)
            break;
        sleep_ms(5);
    } while (now_ms() - t0 < 5000);
    return st.active;
}

static const char refusal[] = "421 too many connections\r\n";

static struct crow_admit *admit_new(size_t maxc, size_t per, uint32_t rate, uint64_t period_ms)
{
    struct crow_admit_config ac;
    crow_admit_config_init(&ac);
    ac.max_connections = maxc;
    ac.max_per_address = per;
    ac.rate_count = rate;
    ac.rate_period_ns = period_ms * 1000000u;
    return crow_admit_new(&ac);
}

static void test_admission(void)
{
    struct crow_admit *a = admit_new(100, 2, 0, 0);
    struct crow_ev_config cfg;
    crow_ev_config_init(&cfg);
    cfg.admit = a;
    cfg.refusal = refusal;
    cfg.refusal_len = sizeof refusal - 1;
    cfg.idle_ms = 400;
    struct server *s = server_start(&cfg);
    ok(s != NULL, "a loop with an admission table");
    int p = s->net.port[0];
    char line[128];
    int c1 = dial_from("127.0.0.1", p), c2 = dial_from("127.0.0.1", p);
    ok(served(c1) && served(c2), "two connections from 127.0.0.1 served");
    int c3 = dial_from("127.0.0.1", p);
    ok(get_line(c3, line, sizeof line) && !strcmp(line, refusal) && at_eof(c3),
       "the third from 127.0.0.1 gets the protocol's refusal, then the close");
    close(c3);
    int d1 = dial_from("127.0.0.2", p);
    ok(served(d1), "127.0.0.2 is served meanwhile");
    is_int(wait_active(a, 3), 3, "three connections in the table");

    /* every close path lets the connection out */
    close(c1); /* the peer closes: EOF */
    is_int(wait_active(a, 2), 2, "peer close leaves the table");
    c3 = dial_from("127.0.0.1", p);
    ok(served(c3), "so 127.0.0.1 gets in again");
    puts_(c3, "close\n"); /* crow_ev_close */
    ok(at_eof(c3), "crow_ev_close closes");
    close(c3);
    is_int(wait_active(a, 2), 2, "crow_ev_close leaves the table");
    c3 = dial_from("127.0.0.1", p);
    puts_(c3, "bye\n"); /* CLOSE_AFTER */
    ok(get_line(c3, line, sizeof line) && !strcmp(line, "bye\n") && at_eof(c3), "CLOSE_AFTER closes");
    close(c3);
    is_int(wait_active(a, 2), 2, "a CLOSE_AFTER reply leaves the table");
    int h = dial_from("127.0.0.3", s->net.port[1]);
    puts_(h, "BAD REQUEST\r\n\r\n"); /* an HTTP error unit: closed after the reply */
    ok(at_eof(h), "an HTTP error closes");
    close(h);
    is_int(wait_active(a, 2), 2, "an HTTP error close leaves the table");
    int r = dial_from("127.0.0.3", p);
    struct linger lg = {1, 0};
    setsockopt(r, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    served(r);
    close(r); /* a reset */
    is_int(wait_active(a, 2), 2, "a reset leaves the table");
    /* c2 and d1 are idle since; the idle timeout closes them */
    ok(at_eof(c2) && at_eof(d1), "idle connections time out");
    is_int(wait_active(a, 0), 0, "timeouts leave the table");
    close(c2);
    close(d1);
    c1 = dial_from("127.0.0.1", p);
    c2 = dial_from("127.0.0.1", p);
    ok(served(c1) && served(c2), "two more in");
    server_stop(s); /* crow_ev_destroy with connections open */
    struct crow_admit_stats st;
    crow_admit_stats(a, &st);
    ok(st.active == 0 && st.refused_per_address == 1,
       "crow_ev_destroy lets its connections out (active %llu, %llu refused per-address)",
       (unsigned long long)st.active, (unsigned long long)st.refused_per_address);
    close(c1);
    close(c2);
    crow_admit_destroy(a);

    /* the rate limit, and two loops sharing one table's global limit */
    a = admit_new(3, 0, 2, 60000);
    cfg.admit = a;
    cfg.idle_ms = 60000;
    struct server *s1 = server_start(&cfg), *s2 = server_start(&cfg);
    int x1 = dial_from("127.0.0.4", s1->net.port[0]), x2 = dial_from("127.0.0.4", s2->net.port[0]);
    ok(served(x1) && served(x2), "2 per minute from 127.0.0.4, through two loops");
    int x3 = dial_from("127.0.0.4", s1->net.port[0]); /* only now: the loops accept in any order */
    ok(get_line(x3, line, sizeof line) && !strcmp(line, refusal) && at_eof(x3),
       "the third within the minute is refused (rate)");
    int y1 = dial_from("127.0.0.5", s2->net.port[0]);
    ok(served(y1), "another source is served");
    int y2 = dial_from("127.0.0.6", s1->net.port[0]); /* only once y1 is in */
    ok(get_line(y2, line, sizeof line) && !strcmp(line, refusal),
       "the fourth connection over both loops is refused (max_connections 3)");
    crow_admit_stats(a, &st);
    ok(st.refused_rate == 1 && st.refused_full == 1, "the table says which limit refused");
    server_stop(s1);
    server_stop(s2);
    crow_admit_stats(a, &st);
    ok(st.active == 0, "both loops let theirs out");
    close(x1), close(x2), close(x3), close(y1), close(y2);
    crow_admit_destroy(a);
}

/* Downloads N bytes after sending CMD on a LINE connection from SOURCE.  Returns ms taken, or
 * -1 when the bytes were not all there or differ. */
static int64_t download(const char *source, int port, const char *cmd, size_t n, const char *want)
{
    int fd = dial_from(source, port);
    char *buf = malloc(n);
    int64_t t0 = now_ms();
    puts_(fd, cmd);
    size_t got = get(fd, buf, n);
    int64_t dt = now_ms() - t0;
    int same = got == n && !memcmp(buf, want, n);
    free(buf);
    close(fd);
    return same ? dt : -1;
}

struct dl {
    const char *source, *cmd;
    int port;
    size_t n;
    int64_t ms;
};

static void *dl_main(void *arg)
{
    struct dl *d = arg;
    d->ms = download(d->source, d->port, d->cmd, d->n, big);
    return NULL;
}

static void test_throttle(void)
{
    struct crow_ev_config cfg;
    crow_ev_config_init(&cfg);
    cfg.bandwidth_out = 256 * KIB;
    cfg.bandwidth_in = 256 * KIB;
    struct server *s = server_start(&cfg);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "big %u\n", MIB);
    double cpu0 = cpu_seconds();
    int64_t ms = download("127.0.0.1", s->net.port[0], cmd, MIB, big);
    double cpu = cpu_seconds() - cpu0;
    ok(ms >= 3500, "writev: 1 MiB at 256 KiB/s takes %lld ms (>= 3500)", (long long)ms);
    ok(cpu < 0.5 * (double)ms / 1000, "no busy loop while throttled: %.2f s CPU in %.2f s",
       cpu, (double)ms / 1000);
    snprintf(cmd, sizeof cmd, "file %u\n", MIB / 2);
    ms = download("127.0.0.1", s->net.port[0], cmd, MIB / 2, big);
    ok(ms >= 1700, "sendfile: 512 KiB at 256 KiB/s takes %lld ms (>= 1700)", (long long)ms);

    /* in: the server reads 1 MiB at 256 KiB/s, the client's send is throttled by TCP */
    s->raw_goal = MIB;
    int fd = dial_from("127.0.0.1", s->net.port[2]);
    int64_t t0 = now_ms();
    cpu0 = cpu_seconds();
    put(fd, big, MIB);
    char line[32];
    get_line(fd, line, sizeof line);
    ms = now_ms() - t0;
    cpu = cpu_seconds() - cpu0;
    ok(!strcmp(line, "done\n") && atomic_load(&s->raw_in) == MIB,
       "the server read all 1 MiB (%ld)", atomic_load(&s->raw_in));
    ok(ms >= 3500, "read: 1 MiB at 256 KiB/s takes %lld ms (>= 3500)", (long long)ms);
    ok(cpu < 0.5 * (double)ms / 1000, "no busy loop while reads are throttled: %.2f s CPU", cpu);
    close(fd);
    server_stop(s);

    /* a unit slowed by the throttle is not cut off by the head deadline */
    crow_ev_config_init(&cfg);
    cfg.bandwidth_in = 64 * KIB;
    cfg.head_ms = 1000;
    s = server_start(&cfg);
    fd = dial_from("127.0.0.1", s->net.port[1]);
    char head[128];
    snprintf(head, sizeof head, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %u\r\n\r\n", 192 * KIB);
    t0 = now_ms();
    puts_(fd, head);
    put(fd, big, 192 * KIB);
    get_line(fd, line, sizeof line);
    ms = now_ms() - t0;
    ok(!strncmp(line, "HTTP/1.1 200", 12) && ms >= 2500,
       "a 192 KiB body at 64 KiB/s (%lld ms) outlives head_ms 1000: answered 200", (long long)ms);
    close(fd);
    int sl = dial_from("127.0.0.1", s->net.port[1]);
    puts_(sl, "POST /up HTTP/1.1\r\n");
    t0 = now_ms();
    int eof = at_eof(sl);
    ms = now_ms() - t0;
    ok(eof && ms >= 900 && ms < 5000, "but a peer that stalls still times out (%lld ms)", (long long)ms);
    close(sl);
    server_stop(s);

    /* per-address totals: two connections from one address share 256 KiB/s */
    struct crow_admit_config ac;
    crow_admit_config_init(&ac);
    ac.bandwidth_out = 256 * KIB;
    struct crow_admit *a = crow_admit_new(&ac);
    crow_ev_config_init(&cfg);
    cfg.admit = a;
    s = server_start(&cfg);
    snprintf(cmd, sizeof cmd, "big %u\n", MIB / 2);
    struct dl d[3] = {{"127.0.0.7", cmd, s->net.port[0], MIB / 2, 0},
                      {"127.0.0.7", cmd, s->net.port[0], MIB / 2, 0},
                      {"127.0.0.8", cmd, s->net.port[0], MIB / 2, 0}};
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, dl_main, &d[i]);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    int64_t slow = d[0].ms > d[1].ms ? d[0].ms : d[1].ms;
    ok(d[0].ms > 0 && d[1].ms > 0 && slow >= 3500,
       "two 512 KiB downloads from one address under a 256 KiB/s total: %lld and %lld ms (the later >= 3500)",
       (long long)d[0].ms, (long long)d[1].ms);
    ok(d[2].ms > 0 && d[2].ms < slow, "another address has its own total (%lld ms)", (long long)d[2].ms);
    server_stop(s);
    struct crow_admit_stats st;
    crow_admit_stats(a, &st);
    ok(st.active == 0, "all out");
    crow_admit_destroy(a);

    crow_ev_config_init(&cfg);
    cfg.bandwidth_out = CROW_THROTTLE_MAX_RATE + 1;
    errno = 0;
    ok(crow_ev_new(&cfg) == NULL && errno == EINVAL, "a bandwidth above the maximum is EINVAL");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    alarm(280);
    big = malloc(MIB);
    for (size_t i = 0; i < MIB; i++)
        big[i] = (char)(i * 7 + (i >> 13));
    char path[] = "/tmp/crow-evadmit-XXXXXX";
    file_fd = mkstemp(path);
    unlink(path);
    write(file_fd, big, MIB);
    test_admission();
    test_throttle();
    close(file_fd);
    free(big);
    return tap_done();
}
