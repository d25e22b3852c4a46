/* test_evloop_tls.c — the event loop's listen-tls listeners over loopback with real OpenSSL
 * handshakes: a greeting queued before the handshake ends, lines (split and pipelined),
 * queued output larger than the socket buffer, sendfile as pread + TLS write, HTTP, a
 * plaintext client dropped, timeouts without plaintext, no connection left behind, and one
 * still open when the loop is destroyed leaking nothing. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "evloop.h"
#include "tap.h"
#include "tls.h"

#define BIG (2u << 20)
#define FILE_LEN ((1u << 20) + 3)

static struct crow_ev *ev;
static atomic_int stop;
static char *big;
static int file_fd = -1;
static int line_port, http_port;

static void reply_str(const struct crow_ev_unit *u, const char *s, int flags)
{
    struct iovec iov = {(void *)s, strlen(s)};
    crow_ev_reply(ev, u->conn, &iov, 1, flags);
}

static void handle(const struct crow_ev_unit *u)
{
    char out[600];
    switch (u->kind) {
    case CROW_EV_OPEN:
        if (u->listener == 0)   /* the LINE listener greets; HTTP does not */
            reply_str(u, "hello\r\n", 0);
        else
            crow_ev_done(ev, u->conn, 0);
        break;
    case CROW_EV_LINE_UNIT:
        if (u->len == 3 && !memcmp(u->data, "big", 3)) {
            struct iovec iov[2] = {{big, BIG}, {"\r\nend\r\n", 7}};
            crow_ev_reply(ev, u->conn, iov, 2, 0);
        } else if (u->len == 4 && !memcmp(u->data, "file", 4)) {
            reply_str(u, "file:\r\n", CROW_EV_MORE);
            crow_ev_sendfile(ev, u->conn, file_fd, 0, FILE_LEN, 0);
        } else if (u->len == 4 && !memcmp(u->data, "quit", 4)) {
            reply_str(u, "bye\r\n", CROW_EV_CLOSE_AFTER);
        } else {
            int n = snprintf(out, sizeof out, "echo: %.*s\r\n", (int)u->len, u->data);
            struct iovec iov[2] = {{out, 6}, {out + 6, (size_t)n - 6}}; /* two iovecs, one reply */
            crow_ev_reply(ev, u->conn, iov, 2, 0);
        }
        break;
    case CROW_EV_REQUEST: {
        int n = snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Length: %u\r\n\r\n", FILE_LEN);
        struct iovec iov = {out, (size_t)n};
        crow_ev_reply(ev, u->conn, &iov, 1, CROW_EV_MORE);
        crow_ev_sendfile(ev, u->conn, file_fd, 0, FILE_LEN, 0);
        break;
    }
    default:
        crow_ev_done(ev, u->conn, CROW_EV_CLOSE_AFTER);
    }
}

static void *server_thread(void *arg)
{
    (void)arg;
    struct crow_ev_unit u;
    while (!atomic_load(&stop)) {
        int r = crow_ev_next(ev, &u, 200);
        if (r == 1)
            handle(&u);
        else if (r < 0)
            break;
    }
    return NULL;
}

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads exactly N bytes through T (bounded by the socket's 5 s timeout).  Returns 0 or -1. */
static int tls_read_n(struct crow_tls *t, char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = crow_tls_read(t, buf + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static int tls_write_s(struct crow_tls *t, const char *s)
{
    size_t n = strlen(s), off = 0;
    while (off < n) {
        ssize_t w = crow_tls_write(t, s + off, n - off);
        if (w <= 0)
            return -1;
        off += (size_t)w;
    }
    return 0;
}

static int expect(struct crow_tls *t, const char *want)
{
    char buf[256];
    size_t n = strlen(want);
    if (tls_read_n(t, buf, n) < 0)
        return 0;
    return memcmp(buf, want, n) == 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    char dir[128], cmd[400], cert[200], key[200], err[256];
    snprintf(dir, sizeof dir, "/tmp/crow-test-evtls-%d", (int)getpid());
    const char *root = getenv("CROW_ROOT");
    snprintf(cmd, sizeof cmd, "%s/tools/mkcert %s", root ? root : ".", dir);
    ok(system(cmd) == 0, "test certificate");
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    struct crow_tls_ctx *sctx = crow_tls_server_ctx(cert, key, err, sizeof err);
    struct crow_tls_ctx *cctx = crow_tls_client_ctx(cert, err, sizeof err);
    ok(sctx && cctx, "TLS contexts");
    if (!sctx || !cctx)
        return tap_done();

    big = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (char)('a' + i % 26);
    char fpath[] = "/tmp/crow-test-evtls-file-XXXXXX";
    file_fd = mkstemp(fpath);
    unlink(fpath);
    for (size_t off = 0; off < FILE_LEN;) {
        size_t n = FILE_LEN - off < BIG ? FILE_LEN - off : BIG;
        off += (size_t)write(file_fd, big + 7, n);
    }

    struct crow_ev_config cfg;
    crow_ev_config_init(&cfg);
    cfg.notify_open = 1;
    cfg.idle_ms = 1500;
    cfg.timeout_reply = "timeout\r\n";
    cfg.timeout_reply_len = 9;
    ev = crow_ev_new(&cfg);
    int lfd = crow_ev_tcp_listener("127.0.0.1", 0, 0, 64);
    int hfd = crow_ev_tcp_listener("127.0.0.1", 0, 0, 64);
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    line_port = ntohs(sa.sin_port);
    sl = sizeof sa;
    getsockname(hfd, (struct sockaddr *)&sa, &sl);
    http_port = ntohs(sa.sin_port);
    ok(crow_ev_listen_tls(ev, lfd, CROW_EV_LINE, 0, NULL) == -1 && errno == EINVAL,
       "listen_tls without a context: EINVAL");
    is_int(crow_ev_listen_tls(ev, lfd, CROW_EV_LINE, 0, sctx), 0, "TLS LINE listener");
    is_int(crow_ev_listen_tls(ev, hfd, CROW_EV_HTTP, 0, sctx), 1, "TLS HTTP listener");
    pthread_t th;
    pthread_create(&th, NULL, server_thread, NULL);

    /* Lines over TLS; the greeting was queued before the handshake finished. */
    int fd = tcp_connect(line_port);
    struct crow_tls *t = crow_tls_new(cctx, fd, "localhost");
    is_int(crow_tls_handshake(t), 0, "client handshake with a verified certificate");
    ok(expect(t, "hello\r\n"), "greeting (written at OPEN, before the handshake) arrives");
    tls_write_s(t, "one\r\n");
    ok(expect(t, "echo: one\r\n"), "a line echoed");
    tls_write_s(t, "tw");
    struct timespec pause = {0, 50000000};
    nanosleep(&pause, NULL);
    tls_write_s(t, "o\r\nthree\r\nfour\r\n");
    ok(expect(t, "echo: two\r\necho: three\r\necho: four\r\n"),
       "a split line and pipelined lines, in order");
    tls_write_s(t, "big\r\n");
    char *back = malloc(BIG + 7);
    ok(tls_read_n(t, back, BIG + 7) == 0 && memcmp(back, big, BIG) == 0 &&
           memcmp(back + BIG, "\r\nend\r\n", 7) == 0,
       "2 MiB reply, queued past the socket buffer, arrives intact");
    tls_write_s(t, "file\r\n");
    ok(expect(t, "file:\r\n"), "header before the file");
    ok(tls_read_n(t, back, FILE_LEN) == 0 && memcmp(back, big + 7, FILE_LEN) == 0,
       "1 MiB + 3 file through sendfile's TLS fallback, intact");
    tls_write_s(t, "after\r\n");
    ok(expect(t, "echo: after\r\n"), "the connection goes on after the file");
    tls_write_s(t, "quit\r\n");
    ok(expect(t, "bye\r\n"), "close-after reply");
    char c;
    ok(crow_tls_read(t, &c, 1) == 0, "then close_notify / end of file");
    crow_tls_free(t);
    close(fd);

    /* HTTP over TLS with a sendfile body. */
    fd = tcp_connect(http_port);
    t = crow_tls_new(cctx, fd, "localhost");
    crow_tls_handshake(t);
    tls_write_s(t, "GET /f HTTP/1.1\r\nHost: x\r\n\r\n");
    char head[128];
    const char want[] = "HTTP/1.1 200 OK\r\nContent-Length: 1048579\r\n\r\n";
    ok(tls_read_n(t, head, sizeof want - 1) == 0 && memcmp(head, want, sizeof want - 1) == 0,
       "HTTPS response head");
    ok(tls_read_n(t, back, FILE_LEN) == 0 && memcmp(back, big + 7, FILE_LEN) == 0,
       "HTTPS sendfile body intact");
    crow_tls_free(t);
    close(fd);

    /* Plaintext on the TLS port: dropped without a reply. */
    fd = tcp_connect(line_port);
    const char plain[] = "one\r\n";
    write(fd, plain, sizeof plain - 1);
    char buf[64];
    ssize_t n = read(fd, buf, sizeof buf);
    ok(n <= 0 || memmem(buf, (size_t)n, "echo", 4) == NULL, "plaintext client not served (%zd)", n);
    close(fd);

    /* A TLS client that goes silent: closed at the idle timeout, no plaintext inside TLS. */
    fd = tcp_connect(line_port);
    t = crow_tls_new(cctx, fd, "localhost");
    crow_tls_handshake(t);
    expect(t, "hello\r\n");
    n = crow_tls_read(t, buf, sizeof buf);
    ok(n == 0, "idle TLS connection closed cleanly after the timeout (%zd, %s)", n,
       crow_tls_error(t));
    crow_tls_free(t);
    close(fd);

    /* Twenty handshakes in a row; every connection is gone afterwards. */
    int good = 0;
    for (int i = 0; i < 20; i++) {
        fd = tcp_connect(line_port);
        t = crow_tls_new(cctx, fd, "localhost");
        if (crow_tls_handshake(t) == 0 && expect(t, "hello\r\n") && tls_write_s(t, "quit\r\n") == 0 &&
            expect(t, "bye\r\n"))
            good++;
        crow_tls_free(t);
        close(fd);
    }
    is_int(good, 20, "20 TLS connections served");
    /* One left open when the loop is destroyed: its TLS state must go with it (LeakSanitizer). */
    int held_fd = tcp_connect(line_port);
    struct crow_tls *held = crow_tls_new(cctx, held_fd, "localhost");
    ok(crow_tls_handshake(held) == 0 && expect(held, "hello\r\n"), "a connection held open");
    /* Let the loop see the last closes, then stop it and read its counters (no race). */
    struct timespec settle = {0, 300000000};
    nanosleep(&settle, NULL);
    atomic_store(&stop, 1);
    crow_ev_wake(ev);
    pthread_join(th, NULL);
    struct crow_ev_stats st;
    crow_ev_stats(ev, &st);
    is_int(st.open, 1, "no connection left open but the held one");
    ok(st.timeouts >= 1, "the idle timeout was counted");
    crow_ev_destroy(ev);
    crow_tls_free(held);
    close(held_fd);
    close(lfd);
    close(hfd);
    close(file_fd);
    crow_tls_ctx_free(sctx);
    crow_tls_ctx_free(cctx);
    free(big);
    free(back);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    system(cmd);
    return tap_done();
}
