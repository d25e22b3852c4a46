/* connrate.c — connections per second against a banner service: THREADS threads each
 * connect, read until the server closes, check the first bytes, close, and start again, for
 * SECONDS.  Prints "conns/s N ok N bad N".  The same client measures every server in a bench.
 *
 *   connrate HOST PORT SECONDS THREADS [EXPECT]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in addr;
static double stop_at;
static const char *expect = "220";
static atomic_long ok_count, bad_count;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void *worker(void *arg)
{
    char buf[512];
    (void)arg;
    while (now() < stop_at) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        size_t got = 0;
        ssize_t r;
        struct timeval tv = { 5, 0 };
        if (fd < 0) { atomic_fetch_add(&bad_count, 1); continue; }
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
            close(fd); atomic_fetch_add(&bad_count, 1); usleep(1000); continue;
        }
        while ((r = read(fd, buf + got, sizeof buf - 1 - got)) > 0) {
            got += (size_t)r;
            if (got >= sizeof buf - 1) break;
        }
        buf[got] = 0;
        close(fd);
        if (r == 0 && strncmp(buf, expect, strlen(expect)) == 0) atomic_fetch_add(&ok_count, 1);
        else atomic_fetch_add(&bad_count, 1);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: connrate HOST PORT SECONDS THREADS [EXPECT]\n");
        return 2;
    }
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) { fprintf(stderr, "bad host\n"); return 2; }
    double secs = atof(argv[3]);
    int n = atoi(argv[4]);
    if (argc > 5) expect = argv[5];
    if (n < 1 || n > 256 || secs <= 0) { fprintf(stderr, "bad arguments\n"); return 2; }
    pthread_t th[256];
    double t0 = now();
    stop_at = t0 + secs;
    for (int i = 0; i < n; i++) pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    double el = now() - t0;
    printf("conns/s %.0f ok %ld bad %ld\n", (double)atomic_load(&ok_count) / el,
           atomic_load(&ok_count), atomic_load(&bad_count));
    return 0;
}
