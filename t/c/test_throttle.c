/* test_throttle.c — token buckets: exact integer refills, waits, refunds, parents, clocks that
 * jump, and simulated 10 s transfers through an event loop driven by the timer wheel. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tap.h"
#include "throttle.h"
#include "timer.h"

#define SEC ((uint64_t)1000000000)
#define MS  ((uint64_t)1000000)

static uint64_t rng = 0x2545f4914f6cdd1du;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int unchanged(const void *p, size_t n, unsigned char byte)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != byte)
            return 0;
    return 1;
}

static void test_contracts(void)
{
    struct crow_throttle b, p, q;
    memset(&b, 0x5a, sizeof b);
    errno = 0;
    ok(crow_throttle_init(&b, CROW_THROTTLE_MAX_RATE + 1, 0, 0) == -1 && errno == EINVAL,
       "init: rate above the maximum is EINVAL");
    errno = 0;
    ok(crow_throttle_init(&b, 1000, CROW_THROTTLE_MAX_BURST + 1, 0) == -1 && errno == EINVAL,
       "init: burst above the maximum is EINVAL");
    ok(unchanged(&b, sizeof b, 0x5a), "failed init leaves the bucket unchanged");

    ok(crow_throttle_init(&b, 1000, 100, 0) == 0, "init 1000 B/s burst 100");
    is_int(crow_throttle_available(&b, 0), 100, "starts full");
    is_int(crow_throttle_take(&b, 0, 150), 100, "take is cut to the content");
    is_int(crow_throttle_take(&b, 0, 10), 0, "then nothing");
    is_int(crow_throttle_available(&b, 50 * MS), 50, "50 ms at 1000 B/s refill 50 bytes");
    is_int(crow_throttle_available(&b, 50 * MS + 999999), 50, "not 51 a ns before the byte");
    is_int(crow_throttle_available(&b, 51 * MS), 51, "51 at 51 ms");
    is_int(crow_throttle_available(&b, 10 * SEC), 100, "capped at the burst");

    crow_throttle_init(&b, 1000, 0, 0);
    is_int(crow_throttle_available(&b, 0), 100, "burst 0: a tenth of a second of rate");
    crow_throttle_init(&b, 7, 0, 0);
    is_int(crow_throttle_available(&b, 0), 1, "burst 0 at 7 B/s: one byte");
    crow_throttle_init(&b, CROW_THROTTLE_MAX_RATE, 0, 0);
    is_int(crow_throttle_available(&b, 0), CROW_THROTTLE_MAX_BURST,
           "burst 0 at the largest rate: the largest burst");
    crow_throttle_init(&b, 0, 0, 0);
    is_int(crow_throttle_take(&b, 0, 123456789), 123456789, "rate 0: unlimited take");
    is_int(crow_throttle_wait_ns(&b, 0, 1 << 30), 0, "rate 0: no wait");
    ok(crow_throttle_available(&b, 0) == UINT64_MAX, "rate 0: available is UINT64_MAX");

    /* wait_ns is exact: at the returned time the bytes are there, a ns earlier they are not. */
    crow_throttle_init(&b, 333333, 4096, 0);
    crow_throttle_take(&b, 0, 4096);
    uint64_t w = crow_throttle_wait_ns(&b, 0, 1000);
    is_int(w, (1000 * SEC + 333332) / 333333, "wait_ns: ceil(1000 bytes / rate)");
    struct crow_throttle c = b;
    is_int(crow_throttle_take(&c, w - 1, 1000), 999, "a ns early: 999 bytes");
    is_int(crow_throttle_take(&b, w, 1000), 1000, "at the wait: 1000 bytes");
    uint64_t wbig = crow_throttle_wait_ns(&b, w, (size_t)1 << 40);
    uint64_t left = w * 333333 - 1000 * SEC;   /* the fraction of a byte the take left */
    is_int(wbig, (2048 * SEC - left + 333332) / 333333,
           "wait_ns for more than half the burst waits for half a bucket");
    is_int(crow_throttle_wait_ns(&b, w + wbig, (size_t)1 << 40), 0, "and then says go");

    /* Refund, capped at the burst. */
    crow_throttle_init(&b, 1000, 100, 0);
    crow_throttle_take(&b, 0, 80);
    crow_throttle_refund(&b, 30);
    is_int(crow_throttle_available(&b, 0), 50, "refund returns unused bytes");
    crow_throttle_refund(&b, (size_t)1 << 50);
    is_int(crow_throttle_available(&b, 0), 100, "refund is capped at the burst");

    /* Parents and loops. */
    crow_throttle_init(&b, 1000, 100, 0);
    crow_throttle_init(&p, 500, 40, 0);
    crow_throttle_init(&q, 0, 0, 0);
    errno = 0;
    ok(crow_throttle_set_parent(&b, &b) == -1 && errno == ELOOP, "parent of itself: ELOOP");
    ok(crow_throttle_set_parent(&b, &p) == 0, "b -> p");
    ok(crow_throttle_set_parent(&p, &q) == 0, "p -> q (unlimited)");
    errno = 0;
    ok(crow_throttle_set_parent(&q, &b) == -1 && errno == ELOOP, "q -> b would loop: ELOOP");
    ok(q.parent == NULL, "and q is unchanged");
    is_int(crow_throttle_take(&b, 0, 70), 40, "take from a chain: the minimum");
    is_int(crow_throttle_available(&b, 0), 60, "removed from the child");
    is_int(crow_throttle_available(&p, 0), 0, "and from the parent");
    crow_throttle_refund(&b, 15);
    is_int(crow_throttle_available(&p, 0), 15, "refund reaches the parent");
    is_int(crow_throttle_wait_ns(&b, 0, 35), 10 * MS,
           "wait is the chain's slowest (5 B to half of p's burst at 500 B/s)");
    is_int(crow_throttle_wait_ns(&b, 0, 17), 4 * MS, "(2 B for 17 at 500 B/s)");
    ok(crow_throttle_set_parent(&b, NULL) == 0, "unlink");
    is_int(crow_throttle_take(&b, 0, 1000), 75, "alone again");

    /* Rate changes at run time. */
    crow_throttle_init(&b, 1000, 1000, 0);
    crow_throttle_take(&b, 0, 1000);
    memset(&c, 0x77, sizeof c);
    c = b;
    errno = 0;
    ok(crow_throttle_set_rate(&b, 0, CROW_THROTTLE_MAX_RATE + 1, 0) == -1 && errno == EINVAL,
       "set_rate: EINVAL");
    ok(memcmp(&b, &c, sizeof b) == 0, "and the bucket is unchanged");
    ok(crow_throttle_set_rate(&b, 300 * MS, 10000, 200) == 0, "set_rate at 300 ms");
    is_int(crow_throttle_available(&b, 300 * MS), 200, "earned 300 bytes at the old rate, cut to the new burst");
    crow_throttle_take(&b, 300 * MS, 200);
    is_int(crow_throttle_available(&b, 310 * MS), 100, "then refills at the new rate");
    crow_throttle_init(&b, 0, 0, 0);
    crow_throttle_set_rate(&b, 5, 1000, 64);
    is_int(crow_throttle_available(&b, 5), 64, "unlimited to limited starts full");
    crow_throttle_set_rate(&b, 6, 0, 0);
    is_int(crow_throttle_take(&b, 6, 99999), 99999, "limited to unlimited");
}

static void test_clock(void)
{
    struct crow_throttle b;
    crow_throttle_init(&b, 1000, 1000, 10 * SEC);
    crow_throttle_take(&b, 10 * SEC, 1000);
    is_int(crow_throttle_available(&b, 10 * SEC - 500 * MS), 0, "a small step back: nothing");
    is_int(crow_throttle_available(&b, 10 * SEC + 100 * MS), 100,
           "and no double credit once the clock is back (100 ms: 100 bytes)");
    is_int(crow_throttle_take(&b, 10 * SEC + 100 * MS, 100), 100, "drain");
    is_int(crow_throttle_available(&b, 3 * SEC), 0, "a large step back (clock reset): nothing");
    is_int(crow_throttle_available(&b, 3 * SEC + 200 * MS), 200,
           "and the bucket runs on from the new clock (no freeze)");

    /* Huge gaps at the largest rate and burst: full, no overflow. */
    crow_throttle_init(&b, CROW_THROTTLE_MAX_RATE, CROW_THROTTLE_MAX_BURST, 0);
    crow_throttle_take(&b, 0, (size_t)CROW_THROTTLE_MAX_BURST);
    is_int(crow_throttle_available(&b, 0), 0, "max rate and burst: drained");
    uint64_t gaps[] = {1, 1000, SEC, 1000 * SEC, (uint64_t)1 << 50, (uint64_t)1 << 62, UINT64_MAX};
    uint64_t now = 0;
    int bad = 0;
    for (size_t i = 0; i < sizeof gaps / sizeof *gaps; i++) {
        crow_throttle_init(&b, CROW_THROTTLE_MAX_RATE, CROW_THROTTLE_MAX_BURST, 0);
        crow_throttle_take(&b, 0, (size_t)CROW_THROTTLE_MAX_BURST);
        now = gaps[i];
        unsigned __int128 want = (unsigned __int128)gaps[i] * CROW_THROTTLE_MAX_RATE / SEC;
        if (want > CROW_THROTTLE_MAX_BURST)
            want = CROW_THROTTLE_MAX_BURST;
        if (crow_throttle_available(&b, now) != (uint64_t)want)
            bad++;
    }
    is_int(bad, 0, "gaps from 1 ns to 2^64 ns at 1 TiB/s: exact, capped, no overflow");

    /* No drift: a take every odd number of ns for 100 s gets exactly burst + rate * t. */
    crow_throttle_init(&b, 333333, 1000, 0);
    uint64_t total = 0;
    for (now = 0; now <= 100 * SEC; now += 777777)
        total += crow_throttle_take(&b, now, 1 << 20);
    now -= 777777;
    uint64_t exact = 1000 + (uint64_t)((unsigned __int128)now * 333333 / SEC);
    is_int(total, exact, "128,572 takes over 100 s: exactly burst + floor(rate * t) bytes");
}

/* A simulated event loop: NCONN connections, each reading random amounts while its bucket
 * allows, then sleeping on a timer for what wait_ns says plus random epoll lateness. */
struct conn {
    struct crow_throttle b;
    struct crow_timer t;
    int ready;
    uint64_t bytes;
};

static void wake(struct crow_timer *t, void *arg)
{
    (void)t;
    ((struct conn *)arg)->ready = 1;
}

struct sim {
    int nconn;
    uint64_t rate;          /* per connection, 0 = unlimited */
    uint64_t addr_rate;     /* shared per address, 0 = none */
    uint64_t size;          /* stop when the total reaches this (0 = run for LIMIT_NS) */
    uint64_t limit_ns;
    uint64_t change_at;     /* ns: set every limited bucket to CHANGE_RATE then (0 = never) */
    uint64_t change_rate;
    /* results */
    uint64_t end_ns;        /* when SIZE was reached */
    uint64_t total, at_change;
    uint64_t bytes[4];
    long violations;        /* bytes beyond burst + rate * t at some instant */
    long wakeups;
};

static void simulate(struct sim *s)
{
    struct crow_timer_wheel w;
    struct conn c[4];
    struct crow_throttle addr;
    uint64_t now = 5 * SEC;           /* the ns clock; the wheel runs on now / MS */
    const uint64_t start = now;
    crow_timer_wheel_init(&w, now / MS, 1);
    crow_throttle_init(&addr, s->addr_rate, 0, now);
    for (int i = 0; i < s->nconn; i++) {
        crow_throttle_init(&c[i].b, s->rate, 0, now);
        if (s->addr_rate)
            crow_throttle_set_parent(&c[i].b, &addr);
        crow_timer_init(&c[i].t, wake, &c[i]);
        c[i].ready = 1;
        c[i].bytes = 0;
    }
    s->total = s->at_change = 0;
    s->violations = s->wakeups = 0;
    s->end_ns = 0;
    int changed = 0;
    uint64_t limit_rate = s->addr_rate ? s->addr_rate : s->rate * (uint64_t)s->nconn;
    uint64_t burst = s->addr_rate ? addr.burst : c[0].b.burst * (uint64_t)s->nconn;
    while (now - start < s->limit_ns) {
        if (s->change_at && !changed && now - start >= s->change_at) {
            changed = 1;
            s->at_change = s->total;
            for (int i = 0; i < s->nconn; i++)
                if (s->rate)
                    crow_throttle_set_rate(&c[i].b, now, s->change_rate, 0);
            if (s->addr_rate)
                crow_throttle_set_rate(&addr, now, s->change_rate, 0);
        }
        int any = 0;
        for (int k = 0; k < s->nconn; k++) {
            int i = (int)((k + rnd()) % (uint64_t)s->nconn);   /* random service order */
            if (!c[i].ready)
                continue;
            any = 1;
            size_t want = 1 + rnd() % 65536;
            size_t n = crow_throttle_take(&c[i].b, now, want);
            size_t got = n ? n - (size_t)(rnd() % 4 == 0 ? rnd() % (n + 1) : 0) : 0;
            crow_throttle_refund(&c[i].b, n - got);
            c[i].bytes += got;
            s->total += got;
            if (n < want) {
                uint64_t wait = crow_throttle_wait_ns(&c[i].b, now, 4096);
                uint64_t wake_ms = (now + wait + MS - 1) / MS;
                uint64_t wnow = crow_timer_wheel_now(&w);
                crow_timer_add(&w, &c[i].t, wake_ms > wnow ? wake_ms - wnow : 0);
                c[i].ready = 0;
            }
        }
        /* One-sided bound, checked over the whole run: never more than burst + rate * t. */
        if (!changed) {
            uint64_t allowed = burst + (uint64_t)((unsigned __int128)(now - start) * limit_rate / SEC);
            if (s->total > allowed)
                s->violations++;
        }
        if (s->size && !s->end_ns && s->total >= s->size) {
            s->end_ns = now - start;
            break;
        }
        if (any) {
            now += 1000 + rnd() % 50000;            /* the work of one pass */
        } else {
            int ms = crow_timer_wheel_next_ms(&w, 1000);
            uint64_t target = (crow_timer_wheel_now(&w) + (uint64_t)ms) * MS;
            now = target > now ? target : now;
            now += rnd() % (3 * MS);                /* epoll_wait wakes late */
            s->wakeups++;
        }
        crow_timer_wheel_advance(&w, now / MS);
    }
    for (int i = 0; i < s->nconn; i++)
        s->bytes[i] = c[i].bytes;
}

static void test_transfers(void)
{
    static const uint64_t rates[] = {20000, 1000000, 50000000};
    for (size_t k = 0; k < sizeof rates / sizeof *rates; k++) {
        struct sim s = {.nconn = 1, .rate = rates[k], .size = 10 * rates[k],
                        .limit_ns = 30 * SEC};
        simulate(&s);
        double ratio = (double)s.end_ns / (10.0 * (double)SEC);
        ok(ratio > 0.98 && ratio < 1.02,
           "10 s transfer at %llu B/s took %.4f of the ideal time (within 2%%)",
           (unsigned long long)rates[k], ratio);
        is_int(s.violations, 0, "and was never ahead of burst + rate * t");
    }

    struct sim s = {.nconn = 2, .rate = 1000000, .addr_rate = 1000000, .limit_ns = 10 * SEC};
    simulate(&s);
    double ratio = (double)s.total / (10.0 * 1000000);
    ok(ratio > 0.98 && ratio < 1.02,
       "two connections sharing a 1 MB/s address bucket moved %.4f of 10 MB in 10 s", ratio);
    is_int(s.violations, 0, "and together never beat the address rate");
    ok(s.bytes[0] > s.total / 4 && s.bytes[1] > s.total / 4,
       "neither starves (%llu / %llu bytes)", (unsigned long long)s.bytes[0],
       (unsigned long long)s.bytes[1]);

    struct sim u = {.nconn = 3, .rate = 400000, .addr_rate = 0, .limit_ns = 10 * SEC};
    simulate(&u);
    ratio = (double)u.total / (10.0 * 3 * 400000);
    ok(ratio > 0.98 && ratio < 1.02, "three unshared connections at 400 kB/s: %.4f of 12 MB",
       ratio);

    struct sim r = {.nconn = 1, .rate = 2000000, .limit_ns = 10 * SEC,
                    .change_at = 5 * SEC, .change_rate = 500000};
    simulate(&r);
    double first = (double)r.at_change / (5.0 * 2000000 + 200000);   /* with the burst */
    double second = (double)(r.total - r.at_change) / (5.0 * 500000);
    ok(first > 0.98 && first < 1.02 && second > 0.98 && second < 1.02,
       "rate changed from 2 MB/s to 500 kB/s at 5 s: %.4f and %.4f of burst + rate * t", first, second);
    is_int(r.violations, 0, "never ahead of the limit before the change");
}

int main(void)
{
    test_contracts();
    test_clock();
    test_transfers();
    return tap_done();
}
