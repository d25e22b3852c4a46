/* bench_mmstat.c — mmstatd's load generator: CLIENTS threads, each with its own libmmstat
 * handle, send TXNS transactions of UPDATES updates each (commit, or commit_sync: wait for
 * the server's acknowledgement), then one barrier; the rate counts only updates a final report
 * shows (the sum of the bench keys must equal what was sent, else it exits 1).
 * usage: bench_mmstat DIR CLIENTS TXNS UPDATES async|sync PREFIX */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
            mmstat_update(ms, keys[j % 64], 1, 0);
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
        fprintf(stderr, "usage: bench_mmstat DIR CLIENTS TXNS UPDATES async|sync PREFIX\n");
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
    pthread_barrier_init(&start, NULL, (unsigned)clients + 1);
    for (long i = 0; i < clients; i++)
        pthread_create(&th[i], NULL, client, (void *)i);
    pthread_barrier_wait(&start);
    double t0 = now();
    for (long i = 0; i < clients; i++)
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
