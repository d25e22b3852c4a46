/* test_admit.c — admission control: global, per-address and rate limits, address
 * normalisation, bounded memory, threads hammering enter/leave, allocation failures, and the
 * per-address bandwidth buckets. */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>

#include "admit.h"
#include "failalloc.h"
#include "tap.h"

#define SEC ((uint64_t)1000000000)
#define MS  ((uint64_t)1000000)

struct addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

static struct addr ip(const char *s)
{
    struct addr a;
    memset(&a, 0, sizeof a);
    struct sockaddr_in *in = (struct sockaddr_in *)&a.ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a.ss;
    if (inet_pton(AF_INET, s, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(1234);
        a.len = sizeof *in;
    } else if (inet_pton(AF_INET6, s, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(4321);
        a.len = sizeof *in6;
    } else {
        struct sockaddr_un *un = (struct sockaddr_un *)&a.ss;
        un->sun_family = AF_UNIX;
        a.len = sizeof(sa_family_t);
    }
    return a;
}

static int enter(struct crow_admit *a, const char *s, uint64_t now)
{
    struct addr x = ip(s);
    return crow_admit_enter(a, (struct sockaddr *)&x.ss, x.len, now);
}

static int leave(struct crow_admit *a, const char *s)
{
    struct addr x = ip(s);
    return crow_admit_leave(a, (struct sockaddr *)&x.ss, x.len);
}

static struct crow_admit *make(size_t maxc, size_t per, uint32_t count, uint64_t period)
{
    struct crow_admit_config c;
    crow_admit_config_init(&c);
    c.max_connections = maxc;
    c.max_per_address = per;
    c.rate_count = count;
    c.rate_period_ns = period;
    return crow_admit_new(&c);
}

static void test_contracts(void)
{
    struct crow_admit_config c;
    crow_admit_config_init(&c);
    c.rate_count = 5;
    errno = 0;
    ok(!crow_admit_new(&c) && errno == EINVAL, "rate_count without a period: EINVAL");
    c.rate_period_ns = CROW_ADMIT_MAX_PERIOD + 1;
    errno = 0;
    ok(!crow_admit_new(&c) && errno == EINVAL, "period beyond the maximum: EINVAL");
    crow_admit_config_init(&c);
    c.ipv6_prefix = 129;
    errno = 0;
    ok(!crow_admit_new(&c) && errno == EINVAL, "ipv6_prefix 129: EINVAL");
    crow_admit_config_init(&c);
    c.bandwidth_out = CROW_THROTTLE_MAX_RATE + 1;
    errno = 0;
    ok(!crow_admit_new(&c) && errno == EINVAL, "bandwidth beyond the maximum: EINVAL");
    errno = 0;
    ok(!crow_admit_new(NULL) && errno == EINVAL, "NULL config: EINVAL");
    crow_admit_destroy(NULL);
    ok(!strcmp(crow_admit_result_name(CROW_ADMIT_RATE), "rate") &&
           !strcmp(crow_admit_result_name(CROW_ADMIT_PER_ADDRESS), "per-address") &&
           !strcmp(crow_admit_result_name(CROW_ADMIT_FULL), "full") &&
           !strcmp(crow_admit_result_name(99), "unknown"),
       "result names");
    struct crow_admit *a = make(0, 0, 0, 0);
    int all = 1;
    for (int i = 0; i < 1000; i++)
        all &= enter(a, "10.0.0.1", 0) == CROW_ADMIT_OK;
    struct crow_admit_stats st;
    crow_admit_stats(a, &st);
    ok(all && st.active == 1000 && st.admitted == 1000, "no limits: everything admitted");
    for (int i = 0; i < 1000; i++)
        leave(a, "10.0.0.1");
    errno = 0;
    ok(leave(a, "10.0.0.1") == -1 && errno == ENOENT, "leave with nothing in: ENOENT");
    errno = 0;
    ok(leave(a, "10.9.9.9") == -1 && errno == ENOENT, "leave of an unknown address: ENOENT");
    crow_admit_stats(a, &st);
    ok(st.active == 0, "active back to 0");
    crow_admit_destroy(a);
}

static void test_global(void)
{
    struct crow_admit *a = make(3, 0, 0, 0);
    ok(enter(a, "10.0.0.1", 0) == 0 && enter(a, "10.0.0.2", 0) == 0 &&
           enter(a, "::1", 0) == 0,
       "three sources in");
    is_int(enter(a, "10.0.0.4", 0), CROW_ADMIT_FULL, "the fourth: FULL");
    is_int(enter(a, "unix", 0), CROW_ADMIT_FULL, "an AF_UNIX peer counts against the global limit");
    ok(leave(a, "10.0.0.2") == 0, "one leaves");
    is_int(enter(a, "10.0.0.4", 0), CROW_ADMIT_OK, "then the fourth gets in");
    struct crow_admit_stats st;
    crow_admit_stats(a, &st);
    ok(st.refused_full == 2 && st.active == 3 && st.admitted == 4, "stats: %llu full, %llu active",
       (unsigned long long)st.refused_full, (unsigned long long)st.active);
    crow_admit_destroy(a);
}

static void test_per_address(void)
{
    struct crow_admit *a = make(100, 2, 0, 0);
    ok(enter(a, "127.0.0.1", 0) == 0 && enter(a, "127.0.0.1", 0) == 0, "two from 127.0.0.1");
    is_int(enter(a, "127.0.0.1", 0), CROW_ADMIT_PER_ADDRESS, "the third: PER_ADDRESS");
    is_int(enter(a, "::ffff:127.0.0.1", 0), CROW_ADMIT_PER_ADDRESS,
           "IPv4-mapped IPv6 counts as the IPv4 address");
    ok(enter(a, "127.0.0.2", 0) == 0 && enter(a, "127.0.0.2", 0) == 0, "127.0.0.2 is served meanwhile");
    ok(leave(a, "::ffff:127.0.0.1") == 0, "leave through the mapped form");
    is_int(enter(a, "127.0.0.1", 0), CROW_ADMIT_OK, "then 127.0.0.1 gets one more");
    ok(enter(a, "unix", 0) == 0 && enter(a, "unix", 0) == 0 && enter(a, "unix", 0) == 0,
       "AF_UNIX peers are exempt from max_per_address");
    ok(enter(a, "2001:db8::1", 0) == 0 && enter(a, "2001:db8::1", 0) == 0 &&
           enter(a, "2001:db8::2", 0) == 0,
       "IPv6 per address by default (prefix 128)");
    crow_admit_destroy(a);

    struct crow_admit_config c;
    crow_admit_config_init(&c);
    c.max_per_address = 2;
    c.ipv6_prefix = 64;
    a = crow_admit_new(&c);
    ok(enter(a, "2001:db8::1", 0) == 0 && enter(a, "2001:db8::ffff:2", 0) == 0, "two in one /64");
    is_int(enter(a, "2001:db8::3", 0), CROW_ADMIT_PER_ADDRESS, "ipv6_prefix 64: a /64 is one source");
    is_int(enter(a, "2001:db8:0:1::3", 0), CROW_ADMIT_OK, "the next /64 is another");
    crow_admit_destroy(a);
}

static void test_rate(void)
{
    struct crow_admit *a = make(0, 0, 3, SEC);
    uint64_t t0 = 5 * SEC;
    ok(enter(a, "192.0.2.1", t0) == 0 && enter(a, "192.0.2.1", t0) == 0 &&
           enter(a, "192.0.2.1", t0 + 1) == 0,
       "3/1s: a burst of three");
    is_int(enter(a, "192.0.2.1", t0 + 2), CROW_ADMIT_RATE, "the fourth at once: RATE");
    int refused = 0;
    for (int i = 0; i < 1000; i++)
        refused += enter(a, "192.0.2.1", t0 + 3 + (uint64_t)i * 100000) == CROW_ADMIT_RATE;
    is_int(refused, 1000, "a flood of 1000 within 0.1 s: all refused");
    is_int(enter(a, "192.0.2.2", t0 + 100 * MS), CROW_ADMIT_OK, "another source is served during the flood");
    is_int(enter(a, "192.0.2.1", t0 + 330 * MS), CROW_ADMIT_RATE, "a token after T = 333 ms, not before");
    is_int(enter(a, "192.0.2.1", t0 + 334 * MS), CROW_ADMIT_OK, "one token back after T (the flood cost nothing)");
    is_int(enter(a, "192.0.2.1", t0 + 335 * MS), CROW_ADMIT_RATE, "and only one");
    /* steady flood: accepted at exactly the rate */
    int okc = 0;
    for (uint64_t t = 2 * SEC; t < 12 * SEC; t += MS)
        okc += enter(a, "192.0.2.3", t0 + t) == CROW_ADMIT_OK;
    ok(okc >= 30 && okc <= 33, "a 10 s flood at 1000/s is admitted %d times (3 burst + 10 s x 3/s)", okc);
    struct crow_admit_stats st;
    crow_admit_stats(a, &st);
    ok(st.refused_rate >= 1000 && st.refused_per_address == 0, "stats count rate refusals (%llu)",
       (unsigned long long)st.refused_rate);
    crow_admit_destroy(a);

    /* a long period with a count above it in ns: T is at least 1 ns */
    a = make(0, 0, 1000, 10);
    int n = 0;
    for (int i = 0; i < 2000; i++)
        n += enter(a, "192.0.2.9", 100) == 0;
    is_int(n, 10, "rate 1000 per 10 ns: T rounds to 1 ns, 10 at once");
    crow_admit_destroy(a);
}

static void test_memory(void)
{
    struct crow_admit_config c;
    crow_admit_config_init(&c);
    c.rate_count = 1;
    c.rate_period_ns = SEC;
    c.max_addresses = 160;
    struct crow_admit *a = crow_admit_new(&c);
    char s[32];
    int all = 1;
    for (int i = 0; i < 10000; i++) {
        snprintf(s, sizeof s, "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        all &= enter(a, s, SEC) == 0;
        all &= leave(a, s) == 0;
    }
    struct crow_admit_stats st;
    crow_admit_stats(a, &st);
    ok(all, "10000 distinct addresses in and out: all admitted");
    ok(st.addresses <= 160 && st.evicted >= 10000 - 160,
       "the table stays within max_addresses (%llu entries, %llu evicted)",
       (unsigned long long)st.addresses, (unsigned long long)st.evicted);
    size_t n = crow_admit_expire(a, 2 * SEC + 1);
    crow_admit_stats(a, &st);
    ok(st.addresses == 0 && n > 0, "crow_admit_expire frees idle entries once their rate state recovered");
    /* idle entries are also dropped a little at a time by enters */
    for (int i = 0; i < 100; i++) {
        snprintf(s, sizeof s, "10.1.0.%d", i);
        enter(a, s, 10 * SEC);
        leave(a, s);
    }
    for (int i = 0; i < 64; i++) { /* each sweeps two idle entries of its own stripe */
        snprintf(s, sizeof s, "10.2.0.%d", i);
        enter(a, s, 20 * SEC);
    }
    crow_admit_stats(a, &st);
    ok(st.addresses < 64 + 30, "later enters sweep recovered idle entries (%llu left of 164)",
       (unsigned long long)st.addresses);
    crow_admit_destroy(a);

    /* a stripe full of addresses that all have connections in refuses newcomers (FULL) */
    crow_admit_config_init(&c);
    c.max_addresses = 32;
    a = crow_admit_new(&c);
    int full = 0, in = 0;
    for (int i = 0; i < 1000; i++) {
        snprintf(s, sizeof s, "10.3.%d.%d", i >> 8, i & 255);
        int r = enter(a, s, 0);
        in += r == CROW_ADMIT_OK;
        full += r == CROW_ADMIT_FULL;
    }
    crow_admit_stats(a, &st);
    ok(in <= 32 && in + full == 1000 && st.addresses == (uint64_t)in && st.active == (uint64_t)in,
       "bounded with every entry busy: %d in, %d refused FULL", in, full);
    crow_admit_destroy(a);
}

static void test_failalloc(void)
{
    int first_ok = 0;
    for (long n = 1; n < 100 && !first_ok; n++) {
        struct failalloc fa = {.fail_at = n};
        struct crow_allocator al = failalloc_make(&fa);
        struct crow_admit_config c;
        crow_admit_config_init(&c);
        c.allocator = &al;
        errno = 0;
        struct crow_admit *a = crow_admit_new(&c);
        if (a) {
            first_ok = 1;
            crow_admit_destroy(a);
            ok(fa.live == 0, "destroy frees everything");
        } else if (errno != ENOMEM || fa.live != 0) {
            first_ok = -1;
        }
    }
    ok(first_ok == 1, "crow_admit_new fails cleanly (ENOMEM, nothing leaked) at every allocation, then succeeds");

    /* enters failing to allocate: refused NOMEM, state unchanged, later ones fine */
    struct failalloc fa = {0};
    struct crow_allocator al = failalloc_make(&fa);
    struct crow_admit_config c;
    crow_admit_config_init(&c);
    c.max_per_address = 1;
    c.allocator = &al;
    struct crow_admit *a = crow_admit_new(&c);
    int good = 1, nomem = 0;
    char s[32];
    for (int i = 0; i < 400; i++) {
        fa.fail_at = fa.calls + 1 + (i % 3 == 0);
        fa.fail_after = 0;
        snprintf(s, sizeof s, "10.4.%d.%d", i >> 8, i & 255);
        int r = enter(a, s, 0);
        if (r == CROW_ADMIT_NOMEM) {
            nomem++;
            errno = 0;
            good &= leave(a, s) == -1 && errno == ENOENT;
        } else {
            good &= r == CROW_ADMIT_OK && enter(a, s, 0) == CROW_ADMIT_PER_ADDRESS;
        }
    }
    fa.fail_at = 0;
    struct crow_admit_stats st;
    crow_admit_stats(a, &st);
    ok(good && nomem > 0 && st.refused_nomem == (uint64_t)nomem &&
           st.active == 400 - (uint64_t)nomem && st.addresses == st.active,
       "enters that cannot allocate are refused NOMEM with nothing changed (%d of 400)", nomem);
    crow_admit_destroy(a);
    ok(fa.live == 0, "nothing leaked");
}

/* ------------------------------------------------------------------ threads */

#define NADDR 8
struct hammer {
    struct crow_admit *a;
    atomic_int held[NADDR];
    atomic_int over;
    atomic_int global_over;
    atomic_int total_in;
    int iters;
    int spread;          /* 1: each thread its own addresses; 0: all share */
    size_t per, maxc;
};

struct worker {
    struct hammer *h;
    int id;
    long ok, refused;
    double ns_per_op;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * SEC + (uint64_t)ts.tv_nsec;
}

static void *hammer_main(void *arg)
{
    struct worker *w = arg;
    struct hammer *h = w->h;
    struct addr addrs[NADDR];
    char s[32];
    for (int i = 0; i < NADDR; i++) {
        snprintf(s, sizeof s, "10.%d.0.%d", h->spread ? w->id + 10 : 9, i);
        addrs[i] = ip(s);
    }
    struct crow_admit_peer *held[4];
    int hi[4], nh = 0;
    uint64_t x = 88172645463325252ull ^ (uint64_t)w->id;
    uint64_t t0 = mono_ns();
    for (int k = 0; k < h->iters; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if (nh < 4 && (x & 1)) {
            int i = (int)((x >> 8) % NADDR);
            struct crow_admit_peer *p;
            int r = crow_admit_enter_peer(h->a, (struct sockaddr *)&addrs[i].ss, addrs[i].len,
                                          mono_ns(), &p);
            if (r == CROW_ADMIT_OK) {
                int slot = h->spread ? w->id * 0 + i : i; /* shared addresses share counters */
                if (!h->spread && atomic_fetch_add(&h->held[slot], 1) + 1 > (int)h->per)
                    atomic_fetch_add(&h->over, 1);
                if (h->maxc && atomic_fetch_add(&h->total_in, 1) + 1 > (int)h->maxc)
                    atomic_fetch_add(&h->global_over, 1);
                held[nh] = p;
                hi[nh++] = i;
                w->ok++;
            } else {
                w->refused++;
            }
        } else if (nh) {
            nh--;
            if (!h->spread)
                atomic_fetch_sub(&h->held[hi[nh]], 1);
            if (h->maxc)
                atomic_fetch_sub(&h->total_in, 1);
            crow_admit_leave_peer(h->a, held[nh]);
        }
    }
    while (nh) {
        nh--;
        if (!h->spread)
            atomic_fetch_sub(&h->held[hi[nh]], 1);
        if (h->maxc)
            atomic_fetch_sub(&h->total_in, 1);
        crow_admit_leave_peer(h->a, held[nh]);
    }
    w->ns_per_op = (double)(mono_ns() - t0) / h->iters;
    return NULL;
}

static double run_hammer(int nthreads, int spread, size_t per, size_t maxc, int iters,
                         struct crow_admit_stats *st, int *over, int *gover)
{
    struct crow_admit_config c;
    crow_admit_config_init(&c);
    c.max_per_address = per;
    c.max_connections = maxc;
    struct hammer h;
    memset(&h, 0, sizeof h);
    h.a = crow_admit_new(&c);
    h.iters = iters;
    h.spread = spread;
    h.per = per;
    h.maxc = maxc;
    pthread_t th[8];
    struct worker w[8];
    for (int i = 0; i < nthreads; i++) {
        w[i] = (struct worker){.h = &h, .id = i};
        pthread_create(&th[i], NULL, hammer_main, &w[i]);
    }
    double worst = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        if (w[i].ns_per_op > worst)
            worst = w[i].ns_per_op;
    }
    crow_admit_stats(h.a, st);
    *over = atomic_load(&h.over);
    *gover = atomic_load(&h.global_over);
    crow_admit_destroy(h.a);
    return worst;
}

static void test_threads(void)
{
    struct crow_admit_stats st;
    int over, gover;
    run_hammer(4, 0, 3, 0, 200000, &st, &over, &gover);
    ok(over == 0, "4 threads on 8 shared addresses, max_per_address 3: never more than 3 in (%d)", over);
    ok(st.active == 0 && st.refused_per_address > 0 && st.admitted > 0,
       "all left (active %llu); %llu admitted, %llu refused per-address",
       (unsigned long long)st.active, (unsigned long long)st.admitted,
       (unsigned long long)st.refused_per_address);
    run_hammer(4, 1, 0, 10, 200000, &st, &over, &gover);
    ok(gover == 0 && st.active == 0 && st.refused_full > 0,
       "4 threads, max_connections 10: never more than 10 in; %llu refused FULL",
       (unsigned long long)st.refused_full);

    /* contention: the cost of an enter+leave with 1 thread, and with 2 and 4 threads on
     * distinct and on shared addresses (2 cores here) */
    const int iters = 400000;
    double one = run_hammer(1, 1, 0, 0, iters, &st, &over, &gover);
    double two = run_hammer(2, 1, 0, 0, iters, &st, &over, &gover);
    double two_shared = run_hammer(2, 0, 1000, 0, iters, &st, &over, &gover);
    double four = run_hammer(4, 1, 0, 0, iters, &st, &over, &gover);
    char msg[200];
    snprintf(msg, sizeof msg,
             "ns per operation (half enters, half leaves): 1 thread %.0f, 2 threads %.0f "
             "(shared addresses %.0f), 4 threads %.0f", one, two, two_shared, four);
    diag(msg);
    ok(two < 10 * one + 1000 && two_shared < 20 * one + 2000,
       "two threads on two cores: per-op cost %.0f / %.0f ns vs %.0f alone", two, two_shared, one);
}

static void test_bandwidth(void)
{
    struct crow_admit_config c;
    crow_admit_config_init(&c);
    c.bandwidth_out = 1000; /* burst 100 bytes */
    struct crow_admit *a = crow_admit_new(&c);
    ok(crow_admit_bw_limited(a, CROW_ADMIT_OUT) && !crow_admit_bw_limited(a, CROW_ADMIT_IN) &&
           !crow_admit_bw_limited(NULL, CROW_ADMIT_OUT),
       "bw_limited says which directions have per-address buckets");
    struct addr x = ip("10.5.0.1"), y = ip("10.5.0.2");
    struct crow_admit_peer *p1, *p2, *q;
    crow_admit_enter_peer(a, (struct sockaddr *)&x.ss, x.len, SEC, &p1);
    crow_admit_enter_peer(a, (struct sockaddr *)&x.ss, x.len, SEC, &p2);
    crow_admit_enter_peer(a, (struct sockaddr *)&y.ss, y.len, SEC, &q);
    ok(p1 && p1 == p2 && q && q != p1, "enter_peer hands out the address's entry");
    struct crow_throttle b1, b2, b3;
    crow_throttle_init(&b1, 1000000, 0, SEC);
    crow_throttle_init(&b2, 1000000, 0, SEC);
    crow_throttle_init(&b3, 0, 0, SEC);
    size_t n1 = crow_admit_bw_take(a, p1, CROW_ADMIT_OUT, &b1, SEC, 80);
    size_t n2 = crow_admit_bw_take(a, p2, CROW_ADMIT_OUT, &b2, SEC, 80);
    size_t n3 = crow_admit_bw_take(a, q, CROW_ADMIT_OUT, &b3, SEC, 80);
    ok(n1 == 80 && n2 == 20 && n3 == 80,
       "two connections of one address share its 100-byte burst (%zu + %zu); another address has its own (%zu)",
       n1, n2, n3);
    uint64_t w = crow_admit_bw_wait_ns(a, p2, CROW_ADMIT_OUT, &b2, SEC, 50);
    ok(w == 50 * MS, "wait for 50 bytes at 1000 B/s from empty: 50 ms (%llu ns)", (unsigned long long)w);
    crow_admit_bw_refund(a, p1, CROW_ADMIT_OUT, &b1, 30);
    ok(crow_admit_bw_take(a, p2, CROW_ADMIT_OUT, &b2, SEC, 80) == 30, "a refund goes back to the shared bucket");
    ok(crow_admit_bw_take(a, p1, CROW_ADMIT_IN, &b1, SEC, 5000) == 5000 && b1.parent == NULL,
       "a direction without per-address bandwidth uses the connection's bucket alone");
    ok(crow_admit_bw_take(a, NULL, CROW_ADMIT_OUT, NULL, SEC, 77) == 77 &&
           crow_admit_bw_wait_ns(a, NULL, CROW_ADMIT_OUT, NULL, SEC, 77) == 0,
       "no bucket at all: everything, no wait");
    crow_admit_leave_peer(a, p1);
    crow_admit_leave_peer(a, p2);
    crow_admit_leave_peer(a, q);
    struct crow_admit_stats st;
    crow_admit_stats(a, &st);
    ok(st.active == 0, "leave_peer lets them out");
    crow_admit_destroy(a);
}

int main(void)
{
    test_contracts();
    test_global();
    test_per_address();
    test_rate();
    test_memory();
    test_failalloc();
    test_bandwidth();
    test_threads();
    return tap_done();
}
