/* evhello.c — a C-only HTTP "hello world" server on crow_ev, to measure the loop's ceiling
 * against nginx with wrk.  evhello [-p PORT] [-t THREADS] [-a ADDR]: one crow_ev per thread,
 * each on its own SO_REUSEPORT listener; every request gets a 13-byte body in one writev,
 * with a Date header, keep-alive as the request asks.  Prints "listening ADDR:PORT" once
 * ready; runs until SIGINT/SIGTERM. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evloop.h"

static const char addr_default[] = "127.0.0.1";
static const char *addr = addr_default;
static int port = 8088;
static atomic_int stopping;
static struct crow_ev *evs[64];
static int nthreads = 1;

static const char hdr_ka[] = "HTTP/1.1 200 OK\r\nServer: evhello\r\nContent-Type: text/plain\r\n"
                             "Content-Length: 13\r\nDate: ";
static const char hdr_close[] = "HTTP/1.1 200 OK\r\nServer: evhello\r\nContent-Type: text/plain\r\n"
                                "Content-Length: 13\r\nConnection: close\r\nDate: ";
static const char tail[] = "\r\n\r\nHello, World!";
static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

static void *worker(void *arg)
{
    struct crow_ev *ev = arg;
    struct crow_ev_unit u;
    while (!atomic_load(&stopping)) {
        int r = crow_ev_next(ev, &u, -1);
        if (r < 0) {
            perror("evhello: crow_ev_next");
            break;
        }
        if (r == 0)
            continue;
        if (u.kind == CROW_EV_REQUEST) {
            const char *date = crow_ev_date(ev);
            int ka = u.http.keep_alive;
            struct iovec iov[3] = {
                {(void *)(ka ? hdr_ka : hdr_close), ka ? sizeof hdr_ka - 1 : sizeof hdr_close - 1},
                {(void *)date, 29},
                {(void *)tail, sizeof tail - 1}};
            crow_ev_reply(ev, u.conn, iov, 3, ka ? 0 : CROW_EV_CLOSE_AFTER);
        } else if (u.kind != CROW_EV_CLOSED && u.kind != CROW_EV_NONE) {
            struct iovec iov = {(void *)bad, sizeof bad - 1};
            crow_ev_reply(ev, u.conn, &iov, 1, CROW_EV_CLOSE_AFTER);
        }
    }
    return NULL;
}

static void on_stop(int sig)
{
    (void)sig;
    atomic_store(&stopping, 1);
    for (int i = 0; i < nthreads; i++)
        if (evs[i])
            crow_ev_wake(evs[i]);
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "p:t:a:h")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 't': nthreads = atoi(optarg); break;
        case 'a': addr = optarg; break;
        default:
            fprintf(stderr, "usage: evhello [-p PORT] [-t THREADS] [-a ADDR]\n");
            return 2;
        }
    }
    if (nthreads < 1 || nthreads > 64) {
        fprintf(stderr, "evhello: threads must be 1..64\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct crow_ev_config cfg;
    crow_ev_config_init(&cfg);
    cfg.max_connections = 10000;
    cfg.refusal = "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    cfg.refusal_len = strlen(cfg.refusal);
    int lfds[64];
    for (int i = 0; i < nthreads; i++) {
        lfds[i] = crow_ev_tcp_listener(addr, port, CROW_EV_REUSEPORT, 1024);
        if (lfds[i] < 0) {
            fprintf(stderr, "evhello: listen %s:%d: %s\n", addr, port, strerror(errno));
            return 1;
        }
        if (port == 0) { /* the other threads join the port the first one got */
            struct sockaddr_storage ss;
            socklen_t sl = sizeof ss;
            getsockname(lfds[i], (struct sockaddr *)&ss, &sl);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
        if (!(evs[i] = crow_ev_new(&cfg)) || crow_ev_listen(evs[i], lfds[i], CROW_EV_HTTP, 0) < 0) {
            fprintf(stderr, "evhello: crow_ev: %s\n", strerror(errno));
            return 1;
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    pthread_t th[64];
    for (int i = 0; i < nthreads; i++)
        pthread_create(&th[i], NULL, worker, evs[i]);
    printf("listening %s:%d threads %d\n", addr, port, nthreads);
    fflush(stdout);
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    uint64_t units = 0;
    for (int i = 0; i < nthreads; i++) {
        struct crow_ev_stats st;
        crow_ev_stats(evs[i], &st);
        units += st.units;
        crow_ev_destroy(evs[i]);
        close(lfds[i]);
    }
    fprintf(stderr, "evhello: %llu requests\n", (unsigned long long)units);
    return 0;
}
