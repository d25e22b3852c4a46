/* ftplogins.c — N concurrent FTP logins against one server, timed per session (epoll, one
 * thread, non-blocking sockets).
 *
 *   build/bench/ftplogins HOST PORT N USER PASS [-w WINDOW] [-H HOLDFILE] [-t SECONDS]
 *   (built by `make build/bench/ftplogins` or bench/ftp.bench; or just
 *    cc -O2 -o ftplogins bench/c/ftplogins.c)
 *
 * Each session connects, reads the 220 greeting (multi-line replies are fine), sends USER and,
 * on 331, PASS, and waits for 230.  Every session stays logged in until all N have got their
 * 230 (or failed, or the -t deadline, default 60 s, passed); then, with -H, "ready" is written
 * to HOLDFILE and the sessions are held open until the caller removes it (to measure the
 * server's memory; at most 120 s); then every session sends QUIT and waits (at most 5 s) for
 * 221 or the close.
 *
 * Window (-w K, default 32): at most K sessions are between connect() and their greeting at
 * once; USER/PASS exchanges of greeted sessions all overlap.  FTP is server-speaks-first, and a
 * listener whose accept queue overflows answers with SYN cookies and then drops the client's
 * ACK, so the connection is established for the client and unknown to the server: it waits for
 * a 220 that never comes.  vsftpd listens with a backlog of 32, pure-ftpd with ~65; a window at
 * most that, the same for every server, keeps the run about the servers.  -w 0: no window.
 *
 * Output, one line on stdout:
 *   WALL OK FAILED login_p50_ms=.. login_p99_ms=.. login_max_ms=.. greet_p50_ms=.. greet_p99_ms=..
 * WALL is seconds from the first connect() to the last 230; "login" is greeting->230 per
 * session (what the server spends on USER/PASS), "greet" is connect()->220 (accept and
 * greeting, including the wait in the server's accept queue).  The first failure's reason
 * goes to stderr.  Exit status 0 when all N logged in, 1 otherwise, 2 on usage errors. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum state { S_IDLE, S_GREET, S_USER, S_PASS, S_IN, S_QUIT, S_DONE, S_FAILED };

struct sess {
    int fd;
    enum state st;
    int ml_code;              /* inside a multi-line reply with this code, else 0 */
    size_t len;
    double t_conn, t_greet, t_in;
    char buf[1024];
};

static struct sess *ss;
static int n_sess, epfd, greeting_now, started, logged, failed, closed;
static const char *user, *pass;
static struct addrinfo *ai;
static char first_err[256];

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fail(struct sess *s, const char *why, int code)
{
    if (!first_err[0])
        snprintf(first_err, sizeof first_err, "session %d: %s%s%.0d (%s)", (int)(s - ss), why,
                 code ? " " : "", code, errno ? strerror(errno) : "no errno");
    if (s->st == S_GREET)
        greeting_now--;
    if (s->st == S_IN)
        logged--;
    if (s->st != S_QUIT && s->st != S_DONE)
        failed++;
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    s->st = s->st == S_QUIT ? S_DONE : S_FAILED;
    closed++;
}

static int send_line(struct sess *s, const char *verb, const char *arg)
{
    char line[600];
    int n = snprintf(line, sizeof line, "%s%s%s\r\n", verb, arg ? " " : "", arg ? arg : "");
    ssize_t w;
    do w = write(s->fd, line, (size_t)n); while (w < 0 && errno == EINTR);
    if (w != n) {
        fail(s, "short write of", 0);
        return -1;
    }
    return 0;
}

static void start_one(void)
{
    struct sess *s = &ss[started++];
    struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
    s->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    s->t_conn = now();
    s->st = S_GREET;
    greeting_now++;
    if (s->fd < 0) {
        fail(s, "socket", 0);
        return;
    }
    if (connect(s->fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
        fail(s, "connect", 0);
        return;
    }
    ev.data.u32 = (uint32_t)(s - ss);
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0)
        fail(s, "epoll_ctl", 0);
}

/* One complete reply with CODE arrived on S: advance its login. */
static void on_reply(struct sess *s, int code)
{
    errno = 0;
    switch (s->st) {
    case S_GREET:
        if (code != 220) { fail(s, "greeting", code); return; }
        s->t_greet = now();
        greeting_now--;
        s->st = S_USER;
        send_line(s, "USER", user);
        return;
    case S_USER:
        if (code == 331) { s->st = S_PASS; send_line(s, "PASS", pass); return; }
        /* 230 straight after USER */
        __attribute__((fallthrough));
    case S_PASS:
        if (code != 230) { fail(s, s->st == S_USER ? "USER ->" : "PASS ->", code); return; }
        s->t_in = now();
        s->st = S_IN;
        logged++;
        return;
    case S_QUIT:
        close(s->fd);
        s->fd = -1;
        s->st = S_DONE;
        closed++;
        return;
    default:
        fail(s, "unexpected reply", code);
    }
}

static void on_readable(struct sess *s)
{
    for (;;) {
        ssize_t r;
        size_t off = 0;
        char *nl;
        if (s->len == sizeof s->buf) { errno = 0; fail(s, "reply line too long", 0); return; }
        do r = read(s->fd, s->buf + s->len, sizeof s->buf - s->len); while (r < 0 && errno == EINTR);
        if (r < 0 && errno == EAGAIN) return;
        if (r <= 0) {
            if (s->st == S_QUIT) { errno = 0; on_reply(s, 221); return; }
            if (r == 0) errno = 0;
            fail(s, "connection closed in state", (int)s->st);
            return;
        }
        s->len += (size_t)r;
        while ((nl = memchr(s->buf + off, '\n', s->len - off)) != NULL) {
            char *line = s->buf + off;
            size_t ll = (size_t)(nl - line) + 1;
            int code = ll >= 4 && line[0] >= '0' && line[0] <= '9' && line[1] >= '0'
                && line[1] <= '9' && line[2] >= '0' && line[2] <= '9'
                ? (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0') : 0;
            off += ll;
            if (s->ml_code) {
                if (code == s->ml_code && line[3] == ' ') { s->ml_code = 0; on_reply(s, code); }
            } else if (code && line[3] == '-') {
                s->ml_code = code;
            } else {
                on_reply(s, code);
            }
            if (s->fd < 0) return;
        }
        memmove(s->buf, s->buf + off, s->len - off);
        s->len -= off;
    }
}

/* Runs the event loop until DONE() or the monotonic DEADLINE; returns 0, or -1 on timeout. */
static int loop(int (*done)(void), double deadline, int window)
{
    struct epoll_event evs[256];
    while (!done()) {
        double left = deadline - now();
        int n, i;
        if (left <= 0) return -1;
        while (started < n_sess && (window <= 0 || greeting_now < window))
            start_one();
        if (done()) break;
        n = epoll_wait(epfd, evs, 256, left > 0.05 ? 50 : (int)(left * 1000) + 1);
        if (n < 0 && errno != EINTR) return -1;
        for (i = 0; i < n; i++) {
            struct sess *s = &ss[evs[i].data.u32];
            if (s->fd < 0) continue;
            on_readable(s);
        }
    }
    return 0;
}

static int all_logged(void) { return started == n_sess && logged + failed == n_sess; }
static int all_closed(void) { return closed == n_sess; }
static int hold_gone(const char *hold) { struct stat st; return stat(hold, &st) < 0; }

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
    int i;
    if (n == 0) return 0;
    i = (int)(p * n + 0.999999) - 1;   /* nearest rank */
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static const char *hold_path;
static int hold_done(void) { return hold_gone(hold_path); }

int main(int argc, char **argv)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
    int window = 32, opt, i, k, rc;
    double timeout = 60, t0, wall, t_last = 0, *lat, *gr;
    struct rlimit rl;
    while ((opt = getopt(argc, argv, "w:H:t:")) != -1) {
        switch (opt) {
        case 'w': window = atoi(optarg); break;
        case 'H': hold_path = optarg; break;
        case 't': timeout = atof(optarg); break;
        default: goto usage;
        }
    }
    if (argc - optind != 5) {
    usage:
        fprintf(stderr, "usage: ftplogins HOST PORT N USER PASS [-w WINDOW] [-H HOLDFILE] [-t SECONDS]\n");
        return 2;
    }
    n_sess = atoi(argv[optind + 2]);
    user = argv[optind + 3];
    pass = argv[optind + 4];
    if (n_sess <= 0 || getaddrinfo(argv[optind], argv[optind + 1], &hints, &ai) != 0) goto usage;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n_sess + 64) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)n_sess + 64 ? rl.rlim_max : (rlim_t)n_sess + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    ss = calloc((size_t)n_sess, sizeof *ss);
    lat = calloc((size_t)n_sess, sizeof *lat);
    gr = calloc((size_t)n_sess, sizeof *gr);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!ss || !lat || !gr || epfd < 0) { perror("ftplogins"); return 2; }
    for (i = 0; i < n_sess; i++) ss[i].fd = -1;

    t0 = now();
    if (loop(all_logged, t0 + timeout, window) < 0) {
        for (i = 0; i < n_sess; i++)
            if (ss[i].st != S_IN && ss[i].st != S_FAILED) { errno = ETIMEDOUT; fail(&ss[i], "timed out in state", (int)ss[i].st); }
    }
    started = n_sess;   /* the sessions never started failed above: start no more */
    for (i = k = 0; i < n_sess; i++)
        if (ss[i].st == S_IN) {
            lat[k] = (ss[i].t_in - ss[i].t_greet) * 1e3;
            gr[k++] = (ss[i].t_greet - ss[i].t_conn) * 1e3;
            if (ss[i].t_in > t_last) t_last = ss[i].t_in;
        }
    wall = (k ? t_last : now()) - t0;
    qsort(lat, (size_t)k, sizeof *lat, cmp_d);
    qsort(gr, (size_t)k, sizeof *gr, cmp_d);
    printf("%.3f %d %d login_p50_ms=%.2f login_p99_ms=%.2f login_max_ms=%.2f greet_p50_ms=%.2f greet_p99_ms=%.2f\n",
           wall, k, n_sess - k, pct(lat, k, 0.50), pct(lat, k, 0.99), pct(lat, k, 1.0),
           pct(gr, k, 0.50), pct(gr, k, 0.99));
    fflush(stdout);
    if (first_err[0]) fprintf(stderr, "ftplogins: %s\n", first_err);
    rc = k == n_sess ? 0 : 1;

    if (hold_path) {
        FILE *f = fopen(hold_path, "w");
        if (f) { fputs("ready\n", f); fclose(f); }
        loop(hold_done, now() + 120, 0);
    }
    for (i = 0; i < n_sess; i++)
        if (ss[i].st == S_IN) {
            ss[i].st = S_QUIT;
            if (send_line(&ss[i], "QUIT", NULL) < 0) { ss[i].st = S_DONE; }
        }
    loop(all_closed, now() + 5, 0);
    return rc;
}
