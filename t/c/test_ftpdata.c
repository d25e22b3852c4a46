/* test_ftpdata.c — c-core/ftpdata: ASCII conversion both ways (CR at chunk boundaries), a
 * file sent by sendfile and in ASCII over a socket pair, a receive with CRLF conversion, a
 * byte limit, fsync, a readable control connection interrupting a stalled send, a timeout,
 * a binary receive over TCP (splice: whole, stopped at a limit mid-stream, and into an
 * O_APPEND file, which falls back to read + write), a receive stopped by the control
 * connection (at once, and resumed in ASCII with a CR held), sends stopped by a command and
 * resumed (every byte once), and a throttled send that never beats its rate. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ftpdata.h"
#include "tap.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int temp_file(const char *content, size_t n)
{
    char path[] = "/tmp/crow-ftpdata-XXXXXX";
    int fd = mkstemp(path);
    unlink(path);
    if (n && write(fd, content, n) != (ssize_t)n)
        return -1;
    return fd;
}

struct reader {
    int fd;
    size_t n;
    char *buf;
    size_t cap;
};

static void *read_all(void *arg)
{
    struct reader *r = arg;
    for (;;) {
        if (r->n == r->cap) {
            r->cap = r->cap ? 2 * r->cap : 65536;
            r->buf = realloc(r->buf, r->cap);
        }
        ssize_t k = read(r->fd, r->buf + r->n, r->cap - r->n);
        if (k <= 0)
            break;
        r->n += (size_t)k;
    }
    return NULL;
}

struct writer {
    int fd;
    const char *p;
    size_t n;
};

/* Writes all of W's bytes to its descriptor, then shuts it down for writing. */
static void *write_all(void *arg)
{
    struct writer *w = arg;
    size_t o = 0;
    while (o < w->n) {
        ssize_t k = write(w->fd, w->p + o, w->n - o);
        if (k <= 0)
            break;
        o += (size_t)k;
    }
    shutdown(w->fd, SHUT_WR);
    return NULL;
}

/* Writes W's bytes after 100 ms (without shutting the descriptor down). */
static void *delayed_write(void *arg)
{
    struct writer *w = arg;
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    if (write(w->fd, w->p, w->n) != (ssize_t)w->n)
        return NULL;
    return NULL;
}

/* A connected TCP pair on 127.0.0.1 (splice(2) from a TCP socket is the STOR path). */
static int tcp_pair(int sv[2])
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &len) < 0)
        return -1;
    sv[1] = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(sv[1], (struct sockaddr *)&a, sizeof a) < 0)
        return -1;
    sv[0] = accept(l, NULL, NULL);
    close(l);
    return sv[0] < 0 ? -1 : 0;
}

static char *read_fd_big(int fd, size_t cap, size_t *n)
{
    char *b = malloc(cap);
    *n = (size_t)pread(fd, b, cap, 0);
    return b;
}

static char *read_fd_all(int fd, size_t *n)
{
    char *b = malloc(1 << 20);
    *n = (size_t)pread(fd, b, 1 << 20, 0);
    return b;
}

int main(void)
{
    /* conversions */
    unsigned char out[64];
    int prev = 0;
    size_t m = crow_ftpdata_to_crlf((const unsigned char *)"a\nb\r\nc\n", 7, out, &prev);
    ok(m == 9 && memcmp(out, "a\r\nb\r\nc\r\n", 9) == 0, "to_crlf: bare LF -> CRLF, CRLF kept");
    prev = '\r';
    m = crow_ftpdata_to_crlf((const unsigned char *)"\nx", 2, out, &prev);
    ok(m == 2 && memcmp(out, "\nx", 2) == 0, "to_crlf: LF after a CR ending the last chunk kept");
    int held = 0;
    m = crow_ftpdata_from_crlf((const unsigned char *)"a\r\nb\rc\r", 7, out, &held);
    ok(m == 5 && memcmp(out, "a\nb\rc", 5) == 0 && held, "from_crlf: CRLF -> LF, bare CR kept, final CR held");
    m = crow_ftpdata_from_crlf((const unsigned char *)"\nd", 2, out, &held);
    ok(m == 2 && memcmp(out, "\nd", 2) == 0 && !held, "from_crlf: held CR + LF -> LF");
    held = 1;
    m = crow_ftpdata_from_crlf((const unsigned char *)"e", 1, out, &held);
    ok(m == 2 && memcmp(out, "\re", 2) == 0, "from_crlf: held CR + other -> CR kept");

    /* binary file by sendfile, from an offset */
    size_t big = 3 * 1024 * 1024 + 17;
    char *data = malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (char)(i * 7 + (i >> 9));
    int f = temp_file(data, big);
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    struct reader r = {.fd = sv[1]};
    pthread_t th;
    pthread_create(&th, NULL, read_all, &r);
    struct crow_ftpdata *d = crow_ftpdata_new(sv[0], -1, 5000);
    uint64_t sent = 0;
    int st = crow_ftpdata_send_file(d, f, 100, 0, &sent);
    crow_ftpdata_close(d, 0);
    pthread_join(th, NULL);
    ok(st == CROW_FTPDATA_OK && sent == big - 100 && r.n == big - 100 &&
       memcmp(r.buf, data + 100, big - 100) == 0, "binary send_file from offset 100: %zu bytes", r.n);
    free(r.buf);
    close(sv[1]);
    close(f);

    /* ASCII file */
    f = temp_file("one\ntwo\r\nthree\n", 15);
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    memset(&r, 0, sizeof r);
    r.fd = sv[1];
    pthread_create(&th, NULL, read_all, &r);
    d = crow_ftpdata_new(sv[0], -1, 5000);
    st = crow_ftpdata_send_file(d, f, 0, 1, &sent);
    crow_ftpdata_close(d, 0);
    pthread_join(th, NULL);
    ok(st == CROW_FTPDATA_OK && r.n == 17 && memcmp(r.buf, "one\r\ntwo\r\nthree\r\n", 17) == 0,
       "ASCII send_file converts LF to CRLF");
    free(r.buf);
    close(sv[1]);
    close(f);

    /* ASCII receive with fsync, CR split across writes */
    f = temp_file("", 0);
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    if (write(sv[1], "l1\r", 3) != 3 || write(sv[1], "\nl2\r\nbare\rcr\r", 12) != 12)
        diag("short write");
    shutdown(sv[1], SHUT_WR);
    d = crow_ftpdata_new(sv[0], -1, 5000);
    uint64_t got = 0;
    st = crow_ftpdata_recv_file(d, f, 1, UINT64_MAX, 1, &got);
    crow_ftpdata_close(d, 0);
    size_t n;
    char *b = read_fd_all(f, &n);
    ok(st == CROW_FTPDATA_OK && n == 13 && memcmp(b, "l1\nl2\nbare\rcr\r", 13) == 0 && got == 13,
       "ASCII recv: CRLF -> LF across chunks, bare and final CR kept");
    free(b);
    close(sv[1]);
    close(f);

    /* binary receive over a limit */
    f = temp_file("", 0);
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    if (write(sv[1], "0123456789", 10) != 10)
        diag("short write");
    shutdown(sv[1], SHUT_WR);
    d = crow_ftpdata_new(sv[0], -1, 5000);
    st = crow_ftpdata_recv_file(d, f, 0, 6, 0, &got);
    crow_ftpdata_close(d, 1);
    b = read_fd_all(f, &n);
    ok(st == CROW_FTPDATA_LIMIT && got == 6 && n == 6 && memcmp(b, "012345", 6) == 0,
       "recv stops at its limit with exactly the limit written");
    free(b);
    close(sv[1]);
    close(f);

    /* binary receive of 3 MiB over TCP (the splice path), whole and over a limit mid-stream */
    for (int lim = 0; lim < 2; lim++) {
        uint64_t limit = lim ? 2 * 1024 * 1024 + 5 : UINT64_MAX;
        f = temp_file("", 0);
        ok(tcp_pair(sv) == 0, "TCP pair");
        struct writer w = {.fd = sv[1], .p = data, .n = big};
        pthread_create(&th, NULL, write_all, &w);
        d = crow_ftpdata_new(sv[0], -1, 5000);
        got = 0;
        st = crow_ftpdata_recv_file(d, f, 0, limit, 0, &got);
        crow_ftpdata_close(d, 1);
        close(sv[1]);
        pthread_join(th, NULL);
        size_t want = lim ? (size_t)limit : big;
        b = read_fd_big(f, big + 1, &n);
        ok(st == (lim ? CROW_FTPDATA_LIMIT : CROW_FTPDATA_OK) && got == want && n == want &&
           memcmp(b, data, want) == 0, "binary recv over TCP%s: %zu bytes, all equal",
           lim ? " stops at its limit" : "", n);
        free(b);
        close(f);
    }

    /* APPE: a file opened O_APPEND refuses splice (EINVAL) after the first chunk is in the
     * pipe; that chunk and the rest still arrive, after the file's old bytes */
    f = temp_file("head", 4);
    fcntl(f, F_SETFL, fcntl(f, F_GETFL) | O_APPEND);
    ok(tcp_pair(sv) == 0, "TCP pair");
    {
        struct writer w = {.fd = sv[1], .p = data, .n = big};
        pthread_create(&th, NULL, write_all, &w);
        d = crow_ftpdata_new(sv[0], -1, 5000);
        got = 0;
        st = crow_ftpdata_recv_file(d, f, 0, UINT64_MAX, 0, &got);
        crow_ftpdata_close(d, 1);
        close(sv[1]);
        pthread_join(th, NULL);
        b = read_fd_big(f, big + 5, &n);
        ok(st == CROW_FTPDATA_OK && got == big && n == big + 4 && memcmp(b, "head", 4) == 0 &&
           memcmp(b + 4, data, big) == 0, "binary recv into an O_APPEND file: %zu bytes, all equal", n);
        free(b);
        close(f);
    }

    /* a file that cannot be written fails the spliced receive as FILE, with the file's errno */
    {
        int ro = open("/dev/null", O_RDONLY);
        ok(tcp_pair(sv) == 0, "TCP pair");
        if (write(sv[1], data, 4096) != 4096)
            diag("short write");
        d = crow_ftpdata_new(sv[0], -1, 5000);
        st = crow_ftpdata_recv_file(d, ro, 0, UINT64_MAX, 0, &got);
        int e = errno;
        ok(st == CROW_FTPDATA_FILE && e == EBADF && got == 0,
           "recv into a read-only descriptor: FILE, EBADF (st %d, errno %d)", st, e);
        crow_ftpdata_close(d, 1);
        close(sv[1]);
        close(ro);
    }

    /* a readable control connection stops a receive before the bytes already waiting */
    f = temp_file("", 0);
    ok(tcp_pair(sv) == 0, "TCP pair");
    {
        int cc[2];
        socketpair(AF_UNIX, SOCK_STREAM, 0, cc);
        if (write(sv[1], data, 65536) != 65536 || write(cc[1], "ABOR\r\n", 6) != 6)
            diag("short write");
        d = crow_ftpdata_new(sv[0], cc[0], 5000);
        got = 1;
        st = crow_ftpdata_recv_file(d, f, 0, UINT64_MAX, 0, &got);
        ok(st == CROW_FTPDATA_CONTROL && got == 0, "readable control stops a fed receive at once");
        crow_ftpdata_close(d, 1);
        close(sv[1]);
        close(cc[0]);
        close(cc[1]);
        close(f);
    }

    /* ASCII receive stopped by a command (NOOP) with a CR held, then resumed: the CR stays */
    f = temp_file("", 0);
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    {
        int cc[2];
        char junk[16];
        socketpair(AF_UNIX, SOCK_STREAM, 0, cc);
        if (write(sv[1], "a\r", 2) != 2)
            diag("short write");
        d = crow_ftpdata_new(sv[0], cc[0], 5000);
        struct writer w = {.fd = cc[1], .p = "NOOP\r\n", .n = 6};
        pthread_create(&th, NULL, delayed_write, &w);
        uint64_t got1 = 0, got2 = 0;
        int st1 = crow_ftpdata_recv_file(d, f, 1, UINT64_MAX, 0, &got1);
        pthread_join(th, NULL);
        if (read(cc[0], junk, sizeof junk) != 6 || write(sv[1], "xb", 2) != 2)
            diag("short read/write");
        shutdown(sv[1], SHUT_WR);
        st = crow_ftpdata_recv_file(d, f, 1, UINT64_MAX, 0, &got2);
        crow_ftpdata_close(d, 0);
        b = read_fd_all(f, &n);
        ok(st1 == CROW_FTPDATA_CONTROL && st == CROW_FTPDATA_OK && n == 4 &&
           memcmp(b, "a\rxb", 4) == 0 && got1 + got2 == 4,
           "ASCII recv resumed after a command keeps the CR it held");
        free(b);
        close(sv[1]);
        close(cc[0]);
        close(cc[1]);
        close(f);
    }

    /* sends stopped by a command while the peer is not reading, then resumed from what they
     * say they sent: the peer gets every byte once (ASCII send_file: converted bytes left
     * unsent wait in the connection; binary send: exact counts) */
    for (int mode = 0; mode < 2; mode++) {
        size_t lines = 65536, src_n = mode ? big : 16 * lines;
        char *src = mode ? data : malloc(src_n), *want = mode ? data : malloc(17 * lines);
        if (!mode)
            for (size_t i = 0; i < lines; i++) {
                memcpy(src + 16 * i, "0123456789abcde\n", 16);
                memcpy(want + 17 * i, "0123456789abcde\r\n", 17);
            }
        size_t want_n = mode ? big : 17 * lines;
        int sf = mode ? -1 : temp_file(src, src_n);
        int cc[2];
        char junk[16];
        socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
        socketpair(AF_UNIX, SOCK_STREAM, 0, cc);
        d = crow_ftpdata_new(sv[0], cc[0], 5000);
        struct writer w = {.fd = cc[1], .p = "STAT\r\n", .n = 6};
        pthread_create(&th, NULL, delayed_write, &w);
        uint64_t s1 = 0, s2 = 0;
        int st1 = mode ? crow_ftpdata_send(d, src, src_n, 0, &s1)
                       : crow_ftpdata_send_file(d, sf, 0, 1, &s1);
        pthread_join(th, NULL);
        if (read(cc[0], junk, sizeof junk) != 6)
            diag("short read");
        memset(&r, 0, sizeof r);
        r.fd = sv[1];
        pthread_create(&th, NULL, read_all, &r);
        st = mode ? crow_ftpdata_send(d, src + s1, src_n - s1, 0, &s2)
                  : crow_ftpdata_send_file(d, sf, s1, 1, &s2);
        crow_ftpdata_close(d, 0);
        pthread_join(th, NULL);
        ok(st1 == CROW_FTPDATA_CONTROL && s1 < src_n && st == CROW_FTPDATA_OK &&
           s1 + s2 == src_n && r.n == want_n && memcmp(r.buf, want, want_n) == 0,
           "%s stopped by a command after %llu bytes and resumed: %zu bytes, all equal",
           mode ? "binary send" : "ASCII send_file", (unsigned long long)s1, r.n);
        free(r.buf);
        close(sv[1]);
        close(cc[0]);
        close(cc[1]);
        if (!mode) {
            close(sf);
            free(src);
            free(want);
        }
    }

    /* a stalled send interrupted by the control connection */
    f = temp_file(data, big);
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    int cv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, cv);
    d = crow_ftpdata_new(sv[0], cv[0], 10000);
    double t0 = now_s();
    if (write(cv[1], "ABOR\r\n", 6) != 6)
        diag("short write");
    st = crow_ftpdata_send_file(d, f, 0, 0, &sent);
    ok(st == CROW_FTPDATA_CONTROL && now_s() - t0 < 2 && sent < big,
       "readable control ends a stalled send at once (%llu bytes sent)", (unsigned long long)sent);
    crow_ftpdata_close(d, 1);
    close(sv[1]);
    close(cv[0]);
    close(cv[1]);

    /* a timeout: nobody reads */
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    d = crow_ftpdata_new(sv[0], -1, 200);
    t0 = now_s();
    st = crow_ftpdata_send_file(d, f, 0, 0, &sent);
    ok(st == CROW_FTPDATA_TIMEOUT && errno == ETIMEDOUT && now_s() - t0 < 3, "stalled send times out");
    crow_ftpdata_close(d, 1);
    close(sv[1]);

    /* throttled: 400 KB at 1 MB/s out (and a shared 4 MB/s user bucket) takes >= 0.4 s */
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    memset(&r, 0, sizeof r);
    r.fd = sv[1];
    pthread_create(&th, NULL, read_all, &r);
    struct crow_ftpdata_share *sh = crow_ftpdata_share_new(4000000);
    d = crow_ftpdata_new(sv[0], -1, 5000);
    t0 = now_s(); /* before set_limits: its emptied bucket refills from then on */
    ok(crow_ftpdata_set_limits(d, 0, 1000000, NULL, sh) == 0, "set_limits");
    st = crow_ftpdata_send(d, data, 400000, 0, &sent);
    double dt = now_s() - t0;
    crow_ftpdata_close(d, 0);
    pthread_join(th, NULL);
    ok(st == CROW_FTPDATA_OK && r.n == 400000 && dt >= 0.399 && dt < 0.6,
       "throttled send at 1 MB/s: 400 KB in %.3f s", dt);
    free(r.buf);
    close(sv[1]);

    /* the shared bucket binds when it is the lower rate */
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    memset(&r, 0, sizeof r);
    r.fd = sv[1];
    pthread_create(&th, NULL, read_all, &r);
    struct crow_ftpdata_share *sh2 = crow_ftpdata_share_new(500000);
    d = crow_ftpdata_new(sv[0], -1, 5000);
    crow_ftpdata_set_limits(d, 0, 4000000, NULL, sh2);
    t0 = now_s();
    st = crow_ftpdata_send(d, data, 200000, 1, &sent);
    dt = now_s() - t0;
    crow_ftpdata_close(d, 0);
    pthread_join(th, NULL);
    ok(st == CROW_FTPDATA_OK && dt >= 0.399, "shared 500 KB/s bucket: 200 KB+ in %.3f s", dt);
    free(r.buf);
    close(sv[1]);
    crow_ftpdata_share_free(sh);
    crow_ftpdata_share_free(sh2);
    ok(crow_ftpdata_share_new((uint64_t)1 << 50) == NULL && errno == EINVAL, "absurd rate -> EINVAL");
    close(f);
    free(data);
    {   /* Telnet commands stripped from a control line */
        unsigned char line[] = {255, 244, 255, 242, 'A', 'B', 'O', 'R', 255, 255, '\r', '\n', 255};
        size_t len = crow_ftp_telnet_strip(line, sizeof line);
        ok(len == 7 && !memcmp(line, "ABOR\xff\r\n", 7), "telnet_strip: IAC IP, IAC DM dropped, IAC IAC kept once, a lone IAC at the end dropped");
    }
    return tap_done();
}
