/* test_aconn.c — connect/accept with timeouts on 127.0.0.1: success, ECONNREFUSED, accept
 * timeout, connect timeout against a full backlog, cancellation through a port. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "aconn.h"
#include "tap.h"

static int64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A listener on 127.0.0.1 with a kernel-chosen port, its address in *SA. */
static int listener(struct sockaddr_in *sa, int backlog, int nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    *sa = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof *sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)sa, len) < 0 || listen(fd, backlog) < 0
        || getsockname(fd, (struct sockaddr *)sa, &len) < 0)
        return -1;
    return fd;
}

struct delayed {
    struct crow_msgport *p;
    struct crow_msg m;
};

static void *put_later(void *arg)
{
    struct delayed *d = arg;
    struct timespec ts = {0, 50 * 1000000};
    nanosleep(&ts, NULL);
    crow_msgport_put(d->p, &d->m);
    return NULL;
}

int main(void)
{
    struct sockaddr_in sa;
    int lfd = listener(&sa, 16, 1);
    ok(lfd >= 0, "listener on 127.0.0.1:%d", ntohs(sa.sin_port));

    int c = crow_aconn_connect((struct sockaddr *)&sa, sizeof sa, SOCK_CLOEXEC, 2000, NULL);
    ok(c >= 0, "connect to a listening loopback socket");
    ok(c >= 0 && !(fcntl(c, F_GETFL) & O_NONBLOCK), "without SOCK_NONBLOCK it comes back blocking");
    ok(c >= 0 && (fcntl(c, F_GETFD) & FD_CLOEXEC), "SOCK_CLOEXEC honoured");
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    int s = crow_aconn_accept(lfd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC, 2000, NULL);
    ok(s >= 0 && plen == sizeof peer && peer.sin_addr.s_addr == htonl(INADDR_LOOPBACK),
       "accept returns the connection and the peer address");
    char buf[4] = {0};
    ok(write(c, "ping", 4) == 4 && read(s, buf, 4) == 4 && buf[0] == 'p' && buf[3] == 'g',
       "bytes flow over the pair");
    close(s);
    close(c);

    c = crow_aconn_connect((struct sockaddr *)&sa, sizeof sa, SOCK_NONBLOCK, 2000, NULL);
    ok(c >= 0 && (fcntl(c, F_GETFL) & O_NONBLOCK), "SOCK_NONBLOCK keeps it non-blocking");
    s = crow_aconn_accept(lfd, NULL, NULL, 0, 2000, NULL);
    ok(s >= 0, "accept with NULL address");
    close(s);
    close(c);

    /* a closed port: a listener's port, listener gone */
    struct sockaddr_in gone;
    int g = listener(&gone, 1, 0);
    close(g);
    int64_t t0 = ms_now();
    errno = 0;
    ok(crow_aconn_connect((struct sockaddr *)&gone, sizeof gone, 0, 2000, NULL) == -1
       && errno == ECONNREFUSED, "connect to a closed port: ECONNREFUSED");
    ok(ms_now() - t0 < 1500, "refused promptly");

    /* accept timeout: nobody connects */
    t0 = ms_now();
    errno = 0;
    ok(crow_aconn_accept(lfd, NULL, NULL, 0, 100, NULL) == -1 && errno == ETIMEDOUT,
       "accept with nobody connecting: ETIMEDOUT");
    ok(ms_now() - t0 >= 95, "accept waited its timeout (%lld ms)", (long long)(ms_now() - t0));
    /* the same on a blocking listener */
    struct sockaddr_in bsa;
    int blfd = listener(&bsa, 4, 0);
    errno = 0;
    ok(crow_aconn_accept(blfd, NULL, NULL, 0, 50, NULL) == -1 && errno == ETIMEDOUT,
       "blocking listener: accept times out too");
    c = crow_aconn_connect((struct sockaddr *)&bsa, sizeof bsa, 0, 2000, NULL);
    s = crow_aconn_accept(blfd, NULL, NULL, 0, 2000, NULL);
    ok(c >= 0 && s >= 0, "blocking listener: accept after poll");
    close(s);
    close(c);
    close(blfd);

    /* accept cancelled by a port */
    struct crow_msgport *port = crow_msgport_new(NULL);
    struct delayed d = {port, {NULL, NULL}};
    pthread_t th;
    pthread_create(&th, NULL, put_later, &d);
    t0 = ms_now();
    errno = 0;
    ok(crow_aconn_accept(lfd, NULL, NULL, 0, 10000, port) == -1 && errno == ECANCELED,
       "accept cancelled by a message: ECANCELED");
    ok(ms_now() - t0 < 5000, "cancelled early");
    pthread_join(th, NULL);
    is_int(crow_msgport_count(port), 1, "the cancelling message stays queued");

    /* connect timeout: a listener whose backlog is full and which never accepts (its SYNs
     * are dropped, so the handshake never completes). */
    struct sockaddr_in fsa;
    int flfd = listener(&fsa, 0, 1);
    int held[8], nheld = 0, timed_out = 0;
    for (int i = 0; i < 8 && !timed_out; i++) {
        errno = 0;
        int fd = crow_aconn_connect((struct sockaddr *)&fsa, sizeof fsa, 0, 300, NULL);
        if (fd >= 0)
            held[nheld++] = fd;
        else
            timed_out = errno == ETIMEDOUT;
    }
    ok(timed_out, "connect to a full backlog: ETIMEDOUT (after %d connections)", nheld);
    /* and the same wait cancelled through a non-empty port */
    t0 = ms_now();
    errno = 0;
    ok(crow_aconn_connect((struct sockaddr *)&fsa, sizeof fsa, 0, 10000, port) == -1
       && errno == ECANCELED, "connect with a non-empty cancel port: ECANCELED");
    crow_msgport_get(port);
    pthread_create(&th, NULL, put_later, &d);
    errno = 0;
    ok(crow_aconn_connect((struct sockaddr *)&fsa, sizeof fsa, 0, 10000, port) == -1
       && errno == ECANCELED && ms_now() - t0 < 5000, "connect cancelled while waiting");
    pthread_join(th, NULL);
    for (int i = 0; i < nheld; i++)
        close(held[i]);
    close(flfd);

    errno = 0;
    struct sockaddr bad = {.sa_family = 0xffff};
    ok(crow_aconn_connect(&bad, sizeof bad, 0, 100, NULL) == -1 && errno == EAFNOSUPPORT,
       "unknown family: socket's errno");
    errno = 0;
    ok(crow_aconn_accept(-1, NULL, NULL, 0, 10, NULL) == -1 && errno == EBADF,
       "accept on a bad descriptor: EBADF");

    crow_msgport_free(port);
    close(lfd);
    return tap_done();
}
