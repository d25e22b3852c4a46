/* evnet.h — what the event-loop tests and the throttling benchmark share: a loop served by
 * its own thread on loopback listeners (one per mode, ephemeral ports), and the client side
 * (dial, exact reads and writes, line reads, EOF probe).  Client sockets get a receive timeout
 * so a broken loop fails a test instead of hanging it.  Header-only (static inline) so each
 * test stays one file the Makefile builds alone. */
#ifndef CROW_T_EVNET_H
#define CROW_T_EVNET_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "evloop.h"

#define EVNET_MAX 4

struct evnet {
    struct crow_ev *ev;
    pthread_t th;
    atomic_int stop;
    atomic_int wakes;        /* crow_ev_next returned 0 (a wake-up) */
    int n;                   /* listeners */
    int lfd[EVNET_MAX];
    int port[EVNET_MAX];     /* port[i] serves modes[i] */
    void (*handle)(void *ctx, const struct crow_ev_unit *u);
    void *ctx;
};

static inline int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static inline int local_port(int fd)
{
    struct sockaddr_in in;
    socklen_t sl = sizeof in;
    getsockname(fd, (struct sockaddr *)&in, &sl);
    return ntohs(in.sin_port);
}

static inline void *evnet_main(void *arg)
{
    struct evnet *s = arg;
    struct crow_ev_unit u;
    while (!atomic_load(&s->stop)) {
        int r = crow_ev_next(s->ev, &u, -1);
        if (r == 1)
            s->handle(s->ctx, &u);
        else if (r == 0)
            atomic_fetch_add(&s->wakes, 1);
        else
            break;
    }
    return NULL;
}

/* Makes S's loop from CFG with one 127.0.0.1 listener per mode in MODES (N of them, listener i
 * gets id i) and starts its thread, which passes every unit to HANDLE(CTX, unit).  Returns 0,
 * or -1 with nothing left running. */
static inline int evnet_start(struct evnet *s, const struct crow_ev_config *cfg, const int *modes,
                              int n, void (*handle)(void *, const struct crow_ev_unit *), void *ctx)
{
    s->n = 0;
    s->handle = handle;
    s->ctx = ctx;
    atomic_store(&s->stop, 0);
    atomic_store(&s->wakes, 0);
    if (n > EVNET_MAX || !(s->ev = crow_ev_new(cfg)))
        return -1;
    for (; s->n < n; s->n++) {
        int i = s->n;
        s->lfd[i] = crow_ev_tcp_listener("127.0.0.1", 0, 0, 1024);
        if (s->lfd[i] < 0 || crow_ev_listen(s->ev, s->lfd[i], modes[i], 0) != i) {
            if (s->lfd[i] >= 0)
                close(s->lfd[i]);
            break;
        }
        s->port[i] = local_port(s->lfd[i]);
    }
    if (s->n < n || pthread_create(&s->th, NULL, evnet_main, s) != 0) {
        crow_ev_destroy(s->ev);
        for (int i = 0; i < s->n; i++)
            close(s->lfd[i]);
        return -1;
    }
    return 0;
}

/* Stops S's thread (through crow_ev_wake), destroys the loop and closes the listeners. */
static inline void evnet_stop(struct evnet *s)
{
    atomic_store(&s->stop, 1);
    crow_ev_wake(s->ev);
    pthread_join(s->th, NULL);
    crow_ev_destroy(s->ev);
    for (int i = 0; i < s->n; i++)
        close(s->lfd[i]);
}

/* evnet_start on a fresh zeroed allocation of SIZE bytes whose first member is the struct
 * evnet, which is also the handler's CTX.  Returns it, or NULL.  evnet_free undoes it. */
static inline void *evnet_spawn(size_t size, const struct crow_ev_config *cfg, const int *modes,
                                int n, void (*handle)(void *, const struct crow_ev_unit *))
{
    struct evnet *s = calloc(1, size);
    if (s && evnet_start(s, cfg, modes, n, handle, s) < 0) {
        free(s);
        s = NULL;
    }
    return s;
}

static inline void evnet_free(struct evnet *s)
{
    evnet_stop(s);
    free(s);
}

/* Connects to 127.0.0.1:PORT, from SOURCE (an IPv4 loopback address) unless it is NULL, with
 * TCP_NODELAY and a 20 s receive timeout.  Returns the fd or -1. */
static inline int dial_from(const char *source, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {20, 0};
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (source) {
        struct sockaddr_in src = {.sin_family = AF_INET};
        if (inet_pton(AF_INET, source, &src.sin_addr) != 1 ||
            bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
            close(fd);
            return -1;
        }
    }
    if (connect(fd, (struct sockaddr *)&in, sizeof in) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static inline int dial(int port) { return dial_from(NULL, port); }

/* Writes all N bytes (stops early only on an error). */
static inline void put(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            return;
        }
        c += w, n -= (size_t)w;
    }
}

static inline void puts_(int fd, const char *s) { put(fd, s, strlen(s)); }

/* Reads exactly N bytes (or until EOF/timeout).  Returns the count. */
static inline size_t get(int fd, char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, buf + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

/* Reads one LF-terminated line into BUF (terminator kept, NUL-terminated).  Returns its length
 * (0 on EOF). */
static inline size_t get_line(int fd, char *buf, size_t max)
{
    size_t n = 0;
    while (n + 1 < max) {
        ssize_t r = recv(fd, buf + n, 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (buf[n++] == '\n')
            break;
    }
    buf[n] = 0;
    return n;
}

/* 1 when the peer closed (the next read is EOF), 0 on data, an error or the timeout. */
static inline int at_eof(int fd)
{
    char c;
    ssize_t r;
    do
        r = recv(fd, &c, 1, 0);
    while (r < 0 && errno == EINTR);
    return r == 0;
}

#endif
