/* bench_hash.c — crow_hash against khash and uthash: 64-bit and 16-byte keys, insert, lookup
 * hit/miss, and the slowest single insert while growing.  Prints a Markdown section.
 *
 *   bench_hash [N1 N2]     (default 1000000 10000000) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <htslib/khash.h>
#include <uthash.h>

#include "hash.h"

KHASH_MAP_INIT_INT64(k64, void *)
KHASH_MAP_INIT_STR(kstr, void *)

struct ut64 {
    uint64_t key;
    void *value;
    UT_hash_handle hh;
};

struct utstr {
    const char *key;
    void *value;
    UT_hash_handle hh;
};

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* The phases are timed in thread CPU time: on a shared machine the time the scheduler gives
 * to others is not the table's.  Per-operation times (the slowest insert) are wall time. */
static double cpu_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static uint64_t rng_state = 0x1234567887654321ull;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Results of one implementation at one size: ns/op for insert, hit, miss; max insert ns. */
struct res {
    double ins, hit, miss, worst;
};

static volatile uintptr_t sink;

static double lesser(double a, double b) { return a < b ? a : b; }
static struct res best(struct res a, struct res b)
{
    return (struct res){lesser(a.ins, b.ins), lesser(a.hit, b.hit), lesser(a.miss, b.miss), lesser(a.worst, b.worst)};
}

enum { REPS = 3 }; /* best of, each implementation in turn */

/* --------------------------------------------------------------------- 64-bit keys */

/* The slowest single inserts of the timed crow run, with what happened during each: the
 * thread's CPU time (CLOCK_THREAD_CPUTIME_ID) and context switches (getrusage), read after
 * every insert and compared with the previous reading, tell the table's own cost from the
 * machine taking the CPU away; the stats say which resize phase the insert was in. */
enum { TOP = 10 };
struct slow {
    double wall, cpu; /* ns */
    size_t index;
    long ctxsw, faults;
    struct crow_hash_stats st;
};
static struct slow top[TOP];
static double cpu_max;   /* the largest CPU time of any single insert */
static long preempted;   /* inserts during which the thread was switched out */

static void note_slow(struct crow_hash *h, size_t i, double wall, double cpu, const struct rusage *a,
                      const struct rusage *b)
{
    long sw = b->ru_nivcsw - a->ru_nivcsw + b->ru_nvcsw - a->ru_nvcsw;
    if (cpu > cpu_max)
        cpu_max = cpu;
    preempted += sw > 0;
    int k = TOP - 1;
    if (wall <= top[k].wall)
        return;
    for (; k > 0 && top[k - 1].wall < wall; k--)
        top[k] = top[k - 1];
    top[k] = (struct slow){wall, cpu, i, sw, b->ru_minflt - a->ru_minflt, {0}};
    crow_hash_stats(h, &top[k].st);
}

static struct res run_crow64(const uint64_t *keys, const uint64_t *order, const uint64_t *miss, size_t n,
                             int timed)
{
    struct res r = {0, 0, 0, 0};
    struct crow_hash_options o = {.kind = CROW_HASH_U64};
    struct crow_hash *h = crow_hash_new(&o);
    double t0 = cpu_ns();
    if (timed) {
        struct rusage ru[2];
        getrusage(RUSAGE_THREAD, &ru[0]);
        double c0 = cpu_ns();
        for (size_t i = 0; i < n; i++) {
            double a = now_ns();
            crow_hash_put_u64(h, keys[i], (void *)(uintptr_t)i, NULL);
            double d = now_ns() - a, c1 = cpu_ns();
            getrusage(RUSAGE_THREAD, &ru[(i + 1) & 1]);
            if (d > r.worst)
                r.worst = d;
            note_slow(h, i, d, c1 - c0, &ru[i & 1], &ru[(i + 1) & 1]);
            c0 = c1;
        }
        crow_hash_free(h);
        return r;
    }
    for (size_t i = 0; i < n; i++)
        crow_hash_put_u64(h, keys[i], (void *)(uintptr_t)i, NULL);
    double t1 = cpu_ns();
    uintptr_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        void *v;
        if (crow_hash_get_u64(h, keys[order[i]], &v))
            acc += (uintptr_t)v;
    }
    double t2 = cpu_ns();
    for (size_t i = 0; i < n; i++)
        acc += (uintptr_t)crow_hash_get_u64(h, miss[i], NULL);
    double t3 = cpu_ns();
    sink = acc;
    if (crow_hash_count(h) != n)
        fprintf(stderr, "crow: count %zu != %zu\n", crow_hash_count(h), n);
    crow_hash_free(h);
    r.ins = (t1 - t0) / n, r.hit = (t2 - t1) / n, r.miss = (t3 - t2) / n;
    return r;
}

static struct res run_kh64(const uint64_t *keys, const uint64_t *order, const uint64_t *miss, size_t n, int timed)
{
    struct res r = {0, 0, 0, 0};
    khash_t(k64) *h = kh_init(k64);
    int ret;
    double t0 = cpu_ns();
    if (timed) {
        for (size_t i = 0; i < n; i++) {
            double a = now_ns();
            khiter_t k = kh_put(k64, h, keys[i], &ret);
            kh_value(h, k) = (void *)(uintptr_t)i;
            double d = now_ns() - a;
            if (d > r.worst)
                r.worst = d;
        }
        kh_destroy(k64, h);
        return r;
    }
    for (size_t i = 0; i < n; i++) {
        khiter_t k = kh_put(k64, h, keys[i], &ret);
        kh_value(h, k) = (void *)(uintptr_t)i;
    }
    double t1 = cpu_ns();
    uintptr_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        khiter_t k = kh_get(k64, h, keys[order[i]]);
        if (k != kh_end(h))
            acc += (uintptr_t)kh_value(h, k);
    }
    double t2 = cpu_ns();
    for (size_t i = 0; i < n; i++)
        acc += kh_get(k64, h, miss[i]) != kh_end(h);
    double t3 = cpu_ns();
    sink = acc;
    kh_destroy(k64, h);
    r.ins = (t1 - t0) / n, r.hit = (t2 - t1) / n, r.miss = (t3 - t2) / n;
    return r;
}

static struct res run_ut64(const uint64_t *keys, const uint64_t *order, const uint64_t *miss, size_t n, int timed)
{
    struct res r = {0, 0, 0, 0};
    struct ut64 *items = malloc(n * sizeof *items), *head = NULL, *e, *tmp;
    double t0 = cpu_ns();
    for (size_t i = 0; i < n; i++) {
        double a = timed ? now_ns() : 0;
        items[i].key = keys[i];
        items[i].value = (void *)(uintptr_t)i;
        HASH_ADD(hh, head, key, sizeof(uint64_t), &items[i]);
        if (timed) {
            double d = now_ns() - a;
            if (d > r.worst)
                r.worst = d;
        }
    }
    double t1 = cpu_ns();
    uintptr_t acc = 0;
    if (!timed) {
        for (size_t i = 0; i < n; i++) {
            HASH_FIND(hh, head, &keys[order[i]], sizeof(uint64_t), e);
            if (e)
                acc += (uintptr_t)e->value;
        }
    }
    double t2 = cpu_ns();
    if (!timed) {
        for (size_t i = 0; i < n; i++) {
            HASH_FIND(hh, head, &miss[i], sizeof(uint64_t), e);
            acc += e != NULL;
        }
    }
    double t3 = cpu_ns();
    sink = acc;
    HASH_ITER(hh, head, e, tmp) { HASH_DELETE(hh, head, e); }
    free(items);
    r.ins = (t1 - t0) / n, r.hit = (t2 - t1) / n, r.miss = (t3 - t2) / n;
    return r;
}

/* --------------------------------------------------------------------- 16-byte keys */

#define SLEN 16
static struct res run_crowstr(const char *keys, const uint64_t *order, const char *miss, size_t n)
{
    struct res r = {0, 0, 0, 0};
    struct crow_hash *h = crow_hash_new(NULL);
    double t0 = cpu_ns();
    for (size_t i = 0; i < n; i++)
        crow_hash_put(h, keys + i * (SLEN + 1), SLEN, (void *)(uintptr_t)i, NULL);
    double t1 = cpu_ns();
    uintptr_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        void *v;
        if (crow_hash_get(h, keys + order[i] * (SLEN + 1), SLEN, &v))
            acc += (uintptr_t)v;
    }
    double t2 = cpu_ns();
    for (size_t i = 0; i < n; i++)
        acc += (uintptr_t)crow_hash_get(h, miss + i * (SLEN + 1), SLEN, NULL);
    double t3 = cpu_ns();
    sink = acc;
    crow_hash_free(h);
    r.ins = (t1 - t0) / n, r.hit = (t2 - t1) / n, r.miss = (t3 - t2) / n;
    return r;
}

static struct res run_khstr(const char *keys, const uint64_t *order, const char *miss, size_t n)
{
    struct res r = {0, 0, 0, 0};
    khash_t(kstr) *h = kh_init(kstr);
    int ret;
    double t0 = cpu_ns();
    for (size_t i = 0; i < n; i++) {
        khiter_t k = kh_put(kstr, h, keys + i * (SLEN + 1), &ret);
        kh_value(h, k) = (void *)(uintptr_t)i;
    }
    double t1 = cpu_ns();
    uintptr_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        khiter_t k = kh_get(kstr, h, keys + order[i] * (SLEN + 1));
        if (k != kh_end(h))
            acc += (uintptr_t)kh_value(h, k);
    }
    double t2 = cpu_ns();
    for (size_t i = 0; i < n; i++)
        acc += kh_get(kstr, h, miss + i * (SLEN + 1)) != kh_end(h);
    double t3 = cpu_ns();
    sink = acc;
    kh_destroy(kstr, h);
    r.ins = (t1 - t0) / n, r.hit = (t2 - t1) / n, r.miss = (t3 - t2) / n;
    return r;
}

static struct res run_utstr(const char *keys, const uint64_t *order, const char *miss, size_t n)
{
    struct res r = {0, 0, 0, 0};
    struct utstr *items = malloc(n * sizeof *items), *head = NULL, *e, *tmp;
    double t0 = cpu_ns();
    for (size_t i = 0; i < n; i++) {
        items[i].key = keys + i * (SLEN + 1);
        items[i].value = (void *)(uintptr_t)i;
        HASH_ADD_KEYPTR(hh, head, items[i].key, SLEN, &items[i]);
    }
    double t1 = cpu_ns();
    uintptr_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        HASH_FIND(hh, head, keys + order[i] * (SLEN + 1), SLEN, e);
        if (e)
            acc += (uintptr_t)e->value;
    }
    double t2 = cpu_ns();
    for (size_t i = 0; i < n; i++) {
        HASH_FIND(hh, head, miss + i * (SLEN + 1), SLEN, e);
        acc += e != NULL;
    }
    double t3 = cpu_ns();
    sink = acc;
    HASH_ITER(hh, head, e, tmp) { HASH_DELETE(hh, head, e); }
    free(items);
    r.ins = (t1 - t0) / n, r.hit = (t2 - t1) / n, r.miss = (t3 - t2) / n;
    return r;
}

/* --------------------------------------------------------------------- report */

static const char *met(int c) { return c ? "met" : "**not met**"; }

static void row(const char *what, size_t n, const char *impl, struct res r, struct res crow)
{
    printf("| %s | %zuM | %s | %.1f | %.1f | %.1f | %.2f | %.2f |\n", what, n / 1000000, impl, r.ins, r.hit,
           r.miss, r.ins / crow.ins, r.hit / crow.hit);
}

int main(int argc, char **argv)
{
    size_t sizes[2] = {1000000, 10000000};
    if (argc == 3) {
        sizes[0] = strtoul(argv[1], NULL, 10);
        sizes[1] = strtoul(argv[2], NULL, 10);
    }
    size_t nmax = sizes[1];
    uint64_t *keys = malloc(nmax * sizeof *keys), *miss = malloc(nmax * sizeof *miss);
    uint64_t *order = malloc(nmax * sizeof *order);
    for (size_t i = 0; i < nmax; i++)
        keys[i] = rnd(), miss[i] = rnd(); /* a collision among 2^64 is not worth handling */

    double load[3] = {0, 0, 0};
    if (getloadavg(load, 3) < 0)
        load[0] = -1;
    printf("## hash\n\n");
    printf("crow_hash (open addressing, incremental resize, default options: no presizing, max load "
           "0.75) against khash (htslib's khash.h, `void *` values) and uthash, same run.  Keys "
           "random; hits looked up in a different random order; misses are other random keys.  ns "
           "of thread CPU time per operation (time the scheduler gave to other processes not "
           "counted), mean over N, best of %d runs in turn; ratio = peer / crow (above 1: crow "
           "faster).  Load average when the run started: %.2f on %ld CPUs.\n\n",
           REPS, load[0], sysconf(_SC_NPROCESSORS_ONLN));
    printf("| keys | N | impl | insert | lookup hit | lookup miss | insert ratio | hit ratio |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    struct res c64[2], k64[2], u64r[2];
    for (int s = 0; s < 2; s++) {
        size_t n = sizes[s];
        for (size_t i = 0; i < n; i++)
            order[i] = i;
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = rnd() % (i + 1);
            uint64_t t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (int rep = 0; rep < REPS; rep++) {
            struct res c = run_crow64(keys, order, miss, n, 0), k = run_kh64(keys, order, miss, n, 0),
                       u = run_ut64(keys, order, miss, n, 0);
            c64[s] = rep ? best(c64[s], c) : c;
            k64[s] = rep ? best(k64[s], k) : k;
            u64r[s] = rep ? best(u64r[s], u) : u;
        }
        row("u64", n, "crow", c64[s], c64[s]);
        row("u64", n, "khash", k64[s], c64[s]);
        row("u64", n, "uthash", u64r[s], c64[s]);
        fflush(stdout);
    }
    /* 16-byte keys at the smaller size (the larger adds time, not information). */
    {
        size_t n = sizes[0];
        char *sk = malloc(n * (SLEN + 1)), *sm = malloc(n * (SLEN + 1));
        for (size_t i = 0; i < n; i++) {
            for (int j = 0; j < SLEN; j++) {
                sk[i * (SLEN + 1) + j] = (char)('a' + rnd() % 26);
                sm[i * (SLEN + 1) + j] = (char)('a' + rnd() % 26);
            }
            sk[i * (SLEN + 1) + SLEN] = sm[i * (SLEN + 1) + SLEN] = 0;
        }
        for (size_t i = 0; i < n; i++)
            order[i] = i;
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = rnd() % (i + 1);
            uint64_t t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        struct res c = {0, 0, 0, 0}, k = c, u = c;
        for (int rep = 0; rep < REPS; rep++) {
            struct res c1 = run_crowstr(sk, order, sm, n), k1 = run_khstr(sk, order, sm, n),
                       u1 = run_utstr(sk, order, sm, n);
            c = rep ? best(c, c1) : c1;
            k = rep ? best(k, k1) : k1;
            u = rep ? best(u, u1) : u1;
        }
        row("16-byte", n, "crow", c, c);
        row("16-byte", n, "khash", k, c);
        row("16-byte", n, "uthash", u, c);
        free(sk);
        free(sm);
    }
    /* Slowest single insert while growing to the larger size (each insert timed). */
    struct res wc = run_crow64(keys, order, miss, nmax, 1), wk = run_kh64(keys, order, miss, nmax, 1),
               wu = run_ut64(keys, order, miss, nmax, 1);
    printf("\nSlowest single insert while growing from empty to %zuM u64 keys (each insert timed with "
           "clock_gettime, wall time): crow %.3f ms, khash %.3f ms, uthash %.3f ms.\n\n",
           nmax / 1000000, wc.worst / 1e6, wk.worst / 1e6, wu.worst / 1e6);
    printf("crow's ten slowest inserts (wall), with the thread's CPU time and context switches "
           "since the previous insert ended (so a little bookkeeping besides the insert) and the resize phase; the largest CPU "
           "time of any single crow insert was %.3f ms, and %ld inserts were switched out.\n\n",
           cpu_max / 1e6, preempted);
    printf("| insert # | wall ms | CPU ms | switched out | page faults | phase | slots moved | slots cleared |\n");
    printf("|---:|---:|---:|---:|---:|---|---:|---:|\n");
    static const char *phase[3] = {"stable", "clearing new table", "moving entries"};
    for (int k = 0; k < TOP && top[k].wall > 0; k++)
        printf("| %zu | %.3f | %.3f | %ld | %ld | %s | %zu | %zu |\n", top[k].index, top[k].wall / 1e6,
               top[k].cpu / 1e6, top[k].ctxsw, top[k].faults, phase[top[k].st.state], top[k].st.last_moved,
               top[k].st.last_zeroed);
    printf("\n");

    int s = 1;
    printf("Targets (issue), at %zuM u64 keys: insert ≤ 110 ns: %.1f ns, %s; lookup hit ≤ 70 ns: "
           "%.1f ns, %s; faster than khash (insert %.2fx, hit %.2fx) and uthash (insert %.2fx, hit "
           "%.2fx): %s; worst single insert ≤ 1 ms: %.3f ms wall, %s; %.3f ms CPU (the table's own "
           "work), %s.\n",
           sizes[s] / 1000000, c64[s].ins, met(c64[s].ins <= 110), c64[s].hit, met(c64[s].hit <= 70),
           k64[s].ins / c64[s].ins, k64[s].hit / c64[s].hit, u64r[s].ins / c64[s].ins, u64r[s].hit / c64[s].hit,
           met(k64[s].ins > c64[s].ins && k64[s].hit > c64[s].hit && u64r[s].ins > c64[s].ins &&
              u64r[s].hit > c64[s].hit && k64[0].ins > c64[0].ins && k64[0].hit > c64[0].hit),
           wc.worst / 1e6, met(wc.worst <= 1e6), cpu_max / 1e6, met(cpu_max <= 1e6));
    free(keys);
    free(miss);
    free(order);
    return 0;
}
