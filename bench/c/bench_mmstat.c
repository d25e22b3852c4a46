/* bench_mmstat.c — mmstatd's load generator: CLIENTS threads, each with its own libmmstat
 * handle, send TXNS transactions of UPDATES updates each (commit, or commit_sync: wait for
 * the server's acknowledgement), then one barrier; the rate counts only updates a final report
 * shows (the sum of the bench keys must equal what was sent, else it exits 1).
 * MODE evloop: one thread drives all CLIENTS handles from an epoll loop with commit_async,
 * one transaction in flight per handle (as redis-benchmark drives its connections).
 * The keys are persistent: only persistent operations are logged, as Redis AOF logs INCR.
 * usage: bench_mmstat DIR CLIENTS TXNS UPDATES async|sync|evloop PREFIX */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "mmstat.h"

static const char *dir, *prefix;
static long txns, updates;
static int sync_mode;
static pthread_barrier_t start;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* evloop mode: this thread drives handles [first, first+count) from one epoll loop, as
 * redis-benchmark drives its connections: each keeps one transaction in flight. */
struct ev { long first, count; };
static void *evclient(void *arg)
{
    struct ev *ev = arg;
    int ep = epoll_create1(0);
    mmstat_t *h[1024];
    long done[1024];
    static char keys[1024][16][64];
    for (long c = 0; c < ev->count; c++) {
        h[c] = mmstat_open(dir);
        if (!h[c]) {
            fprintf(stderr, "bench_mmstat: open %s: %s\n", dir, strerror(errno));
            exit(1);
        }
        for (int j = 0; j < 16; j++)
            snprintf(keys[c][j], sizeof keys[c][j], "%s|c%ld|%d", prefix, ev->first + c, j);
        done[c] = 0;
        struct epoll_event e = {EPOLLIN, {.u64 = (uint64_t)c}};
        epoll_ctl(ep, EPOLL_CTL_ADD, mmstat_fd(h[c]), &e);
    }
    pthread_barrier_wait(&start);
    long active = 0;
    for (long c = 0; c < ev->count; c++) {
        mmstat_begin(h[c]);
        for (long j = 0; j < updates; j++)
            mmstat_update(h[c], keys[c][j % 16], 1, 1);
        if (mmstat_commit_async(h[c]) < 0) {
            fprintf(stderr, "bench_mmstat: commit: %s\n", strerror(errno));
            exit(1);
        }
        active++;
    }
    struct epoll_event evs[64];
    while (active > 0) {
        int n = epoll_wait(ep, evs, 64, 10000);
        if (n <= 0) {
            fprintf(stderr, "bench_mmstat: no acknowledgement in 10 s\n");
            exit(1);
        }
        for (int i = 0; i < n; i++) {
            long c = (long)evs[i].data.u64;
            int r = mmstat_ack_check(h[c]);
            if (r < 0) {
                fprintf(stderr, "bench_mmstat: ack: %s\n", strerror(errno));
                exit(1);
            }
            if (r == 0)
                continue;
            if (++done[c] == txns) {
                active--;
                continue;
            }
            mmstat_begin(h[c]);
            for (long j = 0; j < updates; j++)
                mmstat_update(h[c], keys[c][j % 16], 1, 1);
            if (mmstat_commit_async(h[c]) < 0) {
                fprintf(stderr, "bench_mmstat: commit: %s\n", strerror(errno));
                exit(1);
            }
        }
    }
    for (long c = 0; c < ev->count; c++)
        mmstat_close(h[c]);
    close(ep);
    return NULL;
}

static void *client(void *arg)
{
    long id = (long)arg;
    mmstat_t *ms = mmstat_open(dir);
    if (!ms) {
        fprintf(stderr, "bench_mmstat: open %s: %s\n", dir, strerror(errno));
        exit(1);
    }
    char keys[64][64];
    for (long j = 0; j < updates && j < 64; j++)
        snprintf(keys[j], sizeof keys[j], "%s|c%ld|%ld", prefix, id, j);
    pthread_barrier_wait(&start);
    for (long t = 0; t < txns; t++) {
        mmstat_begin(ms);
        for (long j = 0; j < updates; j++)
            mmstat_update(ms, keys[j % 64], 1, 1);
        if ((sync_mode ? mmstat_commit_sync(ms) : mmstat_commit(ms)) < 0) {
            fprintf(stderr, "bench_mmstat: commit: %s\n", strerror(errno));
            exit(1);
        }
    }
    if (mmstat_commit_sync(ms) < 0) {
        fprintf(stderr, "bench_mmstat: barrier: %s\n", strerror(errno));
        exit(1);
    }
    mmstat_close(ms);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: bench_mmstat DIR CLIENTS TXNS UPDATES async|sync|evloop PREFIX\n");
        return 2;
    }
    dir = argv[1];
    long clients = atol(argv[2]);
    txns = atol(argv[3]);
    updates = atol(argv[4]);
    sync_mode = !strcmp(argv[5], "sync");
    prefix = argv[6];
    pthread_t th[1024];
    if (clients < 1 || clients > 1024 || updates < 1)
        return 2;
    int evloop = !strcmp(argv[5], "evloop");
    long nth = evloop ? 1 : clients;
    struct ev ev = {0, clients};
    pthread_barrier_init(&start, NULL, (unsigned)nth + 1);
    for (long i = 0; i < nth; i++)
        pthread_create(&th[i], NULL, evloop ? evclient : client, evloop ? (void *)&ev : (void *)i);
    pthread_barrier_wait(&start);
    double t0 = now();
    for (long i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    double el = now() - t0;
    mmstat_t *ms = mmstat_open(dir);
    char pat[128];
    snprintf(pat, sizeof pat, "%s|*", prefix);
    mmstat_report_t *r = ms ? mmstat_report(ms, pat) : NULL;
    if (!r) {
        fprintf(stderr, "bench_mmstat: report: %s\n", strerror(errno));
        return 1;
    }
    struct mmstat_entry e;
    long long sum = 0;
    while (mmstat_report_next(r, &e))
        sum += e.value;
    mmstat_report_close(r);
    mmstat_close(ms);
    long long want = (long long)clients * txns * updates;
    printf("clients %ld txns/client %ld updates/txn %ld mode %s: %.3f s, %.0f updates/s, %.0f txn/s, sum %lld/%lld %s\n",
           clients, txns, updates, argv[5], el, sum / el, clients * txns / el, sum, want,
           sum == want ? "ok" : "MISMATCH");
    return sum == want ? 0 : 1;
}
