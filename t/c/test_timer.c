/* test_timer.c — the timer wheel in simulated time: exact tick bounds, order, cancellation,
 * callbacks that change the wheel, level wrap-around, huge gaps, next_ms, reschedule storms. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tap.h"
#include "timer.h"

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* A timer with the test's own record of what it should do. */
struct tt {
    struct crow_timer t;
    int id;
    uint64_t D;        /* model deadline, ms */
    int pending;       /* model: armed and not fired */
    int fires;
    uint64_t fired_now;
};

static struct crow_timer_wheel W;
static uint64_t origin_, tick_;
static long errors;              /* callback-side contract violations */
static uint64_t adv_now;         /* the NOW of the advance in progress */
static uint64_t last_grid;       /* order check inside one advance */
static char errbuf[200];

static uint64_t grid(uint64_t d)
{
    if (d <= origin_)
        return origin_;
    return origin_ + (d - origin_ + tick_ - 1) / tick_ * tick_;
}

static void note(const char *msg, const struct tt *x)
{
    if (errors++ < 5) {
        snprintf(errbuf, sizeof errbuf, "%s: timer %d D=%llu now=%llu", msg, x->id,
                 (unsigned long long)x->D, (unsigned long long)adv_now);
        diag(errbuf);
    }
}

/* The checking callback: fired only when the model says it is due, in grid order. */
static void on_fire(struct crow_timer *t, void *arg)
{
    struct tt *x = arg;
    (void)t;
    if (!x->pending)
        note("fired while cancelled or idle", x);
    if (adv_now < x->D)
        note("fired early", x);
    if (grid(x->D) > adv_now)
        note("fired before its tick", x);
    if (grid(x->D) < last_grid)
        note("fired out of order", x);
    if (crow_timer_pending(t))
        note("pending inside its callback", x);
    last_grid = grid(x->D);
    x->pending = 0;
    x->fires++;
    x->fired_now = adv_now;
}

static void setup(uint64_t now, unsigned tick)
{
    origin_ = now;
    tick_ = tick;
    crow_timer_wheel_init(&W, now, tick);
}

static long advance(uint64_t now)
{
    adv_now = now > crow_timer_wheel_now(&W) ? now : crow_timer_wheel_now(&W);
    last_grid = 0;
    return crow_timer_wheel_advance(&W, now);
}

/* After an advance to NOW, nothing the model holds pending may be due. */
static long overdue(struct tt *v, int n, uint64_t now)
{
    long bad = 0;
    for (int i = 0; i < n; i++)
        if (v[i].pending && grid(v[i].D) <= now)
            bad++;
    return bad;
}

static void arm(struct tt *x, uint64_t delay, int use_add)
{
    if (use_add && !x->pending)
        crow_timer_add(&W, &x->t, delay);
    else
        crow_timer_reschedule(&W, &x->t, delay);
    uint64_t cap = delay > CROW_TIMER_MAX_DELAY ? CROW_TIMER_MAX_DELAY : delay;
    x->D = crow_timer_wheel_now(&W) + cap;
    x->pending = 1;
}

static uint64_t rnd_span(void)
{
    switch (rnd() % 16) {
    case 0: return 0;
    case 1: case 2: case 3: case 4: case 5: return rnd() % 8;
    case 6: case 7: case 8: return rnd() % 100;
    case 9: case 10: return rnd() % 5000;
    case 11: return rnd() % (1u << 20);
    case 12: return rnd() % ((uint64_t)1 << 30);
    case 13: return rnd() % ((uint64_t)1 << 38);
    case 14: return ((uint64_t)1 << (6 * (1 + rnd() % 6))) + rnd() % 3 - 1;  /* level edges */
    default: return rnd() % ((uint64_t)1 << 44);
    }
}

static void test_contracts(void)
{
    long e0 = errors;
    struct crow_timer_wheel w;
    memset(&w, 0xab, sizeof w);
    errno = 0;
    ok(crow_timer_wheel_init(&w, 5, 0) == -1 && errno == EINVAL, "init: tick 0 is EINVAL");
    errno = 0;
    ok(crow_timer_wheel_init(&w, 5, CROW_TIMER_MAX_TICK + 1) == -1 && errno == EINVAL,
       "init: tick above CROW_TIMER_MAX_TICK is EINVAL");
    unsigned char *p = (unsigned char *)&w;
    size_t bad = 0;
    for (size_t i = 0; i < sizeof w; i++)
        bad += p[i] != 0xab;
    is_int(bad, 0, "init failure leaves the wheel unchanged");
    ok(crow_timer_wheel_init(&w, 5, CROW_TIMER_MAX_TICK) == 0, "init: the largest tick is fine");

    setup(1000, 1);
    struct tt a = {.id = 1};
    crow_timer_init(&a.t, on_fire, &a);
    is_int(crow_timer_pending(&a.t), 0, "a new timer is idle");
    is_int(crow_timer_wheel_next_ms(&W, 500), 500, "next_ms: empty wheel returns the cap");
    is_int(crow_timer_wheel_next_ms(&W, -1), -1, "next_ms: empty wheel, no cap: -1");
    arm(&a, 30, 1);
    is_int(crow_timer_pending(&a.t), 1, "add makes it pending");
    is_int(crow_timer_deadline(&a.t), 1030, "deadline is the wheel clock plus the delay");
    errno = 0;
    ok(crow_timer_add(&W, &a.t, 5) == -1 && errno == EALREADY, "add on a pending timer: EALREADY");
    is_int(crow_timer_deadline(&a.t), 1030, "failed add leaves the deadline alone");
    is_int(crow_timer_wheel_count(&W), 1, "count 1");
    is_int(crow_timer_wheel_next_ms(&W, 1000), 30, "next_ms is exact for a level-0 timer");
    is_int(crow_timer_wheel_next_ms(&W, 10), 10, "next_ms respects the cap");
    is_int(advance(1029), 0, "nothing fires 1 ms early");
    is_int(advance(1000), 0, "a clock step back fires nothing");
    is_int(crow_timer_wheel_now(&W), 1029, "and does not move the clock back");
    is_int(advance(1030), 1, "fires at its deadline");
    is_int(a.fires, 1, "callback ran once");
    is_int(crow_timer_pending(&a.t), 0, "idle after firing");
    is_int(crow_timer_wheel_count(&W), 0, "count 0");
    is_int(crow_timer_cancel(&W, &a.t), 0, "cancel of an idle timer returns 0");
    arm(&a, 10, 1);
    is_int(crow_timer_cancel(&W, &a.t), 1, "cancel of a pending timer returns 1");
    a.pending = 0;
    is_int(advance(2000), 0, "a cancelled timer never fires");
    is_int(a.fires, 1, "still one firing");
    arm(&a, 0, 1);
    is_int(crow_timer_wheel_next_ms(&W, 100), 0, "delay 0: next_ms is 0");
    is_int(advance(2000), 1, "delay 0 fires on the next advance, same clock");
    is_int(errors - e0, 0, "no callback saw a contract broken");
}

/* Every tick size, every deadline offset: fires exactly at the first grid point >= D. */
static void test_tick_bounds(void)
{
    static const unsigned ticks[] = {1, 3, 10, 64, 1000};
    for (size_t k = 0; k < sizeof ticks / sizeof *ticks; k++) {
        enum { N = 300 };
        static struct tt v[N];
        uint64_t start = 7777 + rnd() % 1000;
        long e0 = errors;
        setup(start, ticks[k]);
        for (int i = 0; i < N; i++) {
            v[i] = (struct tt){.id = i};
            crow_timer_init(&v[i].t, on_fire, &v[i]);
        }
        uint64_t now = start;
        int armed = 0;
        long late_max = 0, early = 0, not_first = 0;
        static uint64_t armed_now[N];
        for (int step = 0; step < 20000; step++) {
            if (armed < N && step % 7 == 0) {
                armed_now[armed] = now;
                arm(&v[armed], rnd() % (ticks[k] * 15 + 50), 1);
                armed++;
            }
            now += 1;
            advance(now);
            for (int i = 0; i < armed; i++)
                if (v[i].fires == 1 && v[i].fired_now == now) {
                    /* The first advance after arming whose clock reaches the grid point:
                     * the next one when the grid point had already passed. */
                    uint64_t g = grid(v[i].D);
                    uint64_t want = g > armed_now[i] ? g : armed_now[i] + 1;
                    if (now < v[i].D)
                        early++;
                    if (now != want)
                        not_first++;
                    if (g > armed_now[i] && (long)(now - v[i].D) > late_max)
                        late_max = (long)(now - v[i].D);
                }
        }
        int fired = 0;
        for (int i = 0; i < N; i++)
            fired += v[i].fires == 1;
        char msg[120];
        snprintf(msg, sizeof msg, "tick %u: all %d timers fired once", ticks[k], N);
        is_int(fired, N, msg);
        snprintf(msg, sizeof msg, "tick %u: none early, none out of order (callback checks)",
                 ticks[k]);
        is_int(errors - e0 + early, 0, msg);
        snprintf(msg, sizeof msg, "tick %u: each fired at the first grid point >= deadline",
                 ticks[k]);
        is_int(not_first, 0, msg);
        snprintf(msg, sizeof msg, "tick %u: at most tick-1 ms late when not due at arming (max %ld)", ticks[k], late_max);
        ok(late_max <= (long)ticks[k] - 1, "%s", msg);
    }
}

/* Random arm/reschedule/cancel/advance against the model, with jumps of every magnitude so
 * every level cascades and the top level wraps. */
static void test_random_model(void)
{
    long e0 = errors;
    enum { N = 2000 };
    static struct tt v[N];
    static const unsigned ticks[] = {1, 7, 1000};
    long late_errors = 0, count_errors = 0;
    long fired_total = 0;
    for (size_t k = 0; k < sizeof ticks / sizeof *ticks; k++) {
        uint64_t now = rnd() % ((uint64_t)1 << 40);
        setup(now, ticks[k]);
        for (int i = 0; i < N; i++) {
            v[i] = (struct tt){.id = i};
            crow_timer_init(&v[i].t, on_fire, &v[i]);
        }
        for (int op = 0; op < 60000; op++) {
            struct tt *x = &v[rnd() % N];
            switch (rnd() % 8) {
            case 0: case 1: case 2:
                arm(x, rnd_span(), rnd() & 1);
                break;
            case 3:
                if (crow_timer_cancel(&W, &x->t) != x->pending)
                    count_errors++;
                x->pending = 0;
                break;
            case 4:   /* an idle timeout pushed later, the lazy path */
                if (x->pending && x->D > crow_timer_wheel_now(&W))
                    arm(x, x->D - crow_timer_wheel_now(&W) + rnd() % 100, 0);
                break;
            default: {
                now += rnd_span() / (rnd() % 4 ? 1000 : 1);
                long n = advance(now);
                fired_total += n;
                late_errors += overdue(v, N, now);
                size_t pend = 0;
                for (int i = 0; i < N; i++)
                    pend += (size_t)v[i].pending;
                if (pend != crow_timer_wheel_count(&W))
                    count_errors++;
                break;
            }
            }
        }
        now += (uint64_t)1 << 46;
        fired_total += advance(now);
        late_errors += overdue(v, N, now);
    }
    is_int(errors - e0, 0, "random model: nothing early, cancelled or out of order");
    is_int(late_errors, 0, "random model: nothing due left unfired after an advance");
    is_int(count_errors, 0, "random model: cancel results and count agree with the model");
    ok(fired_total > 10000, "random model: %ld firings checked", fired_total);
}

/* Callbacks that change the wheel. */
static struct crow_timer_wheel *cbw;
static struct crow_timer cb_self, cb_victim, cb_new, cb_periodic, cb_nest;
static struct crow_timer *cb_freed;
static int n_self, n_victim, n_new, n_periodic, n_freed, nest_rc, nest_errno;
static uint64_t periodic_at[8];

static void f_count(struct crow_timer *t, void *arg)
{
    (void)t;
    ++*(int *)arg;
}
static void f_self(struct crow_timer *t, void *arg)
{
    (void)arg;
    n_self++;
    crow_timer_cancel(cbw, &cb_victim);          /* due in the same tick: must not fire */
    crow_timer_add(cbw, &cb_new, 0);             /* due now: must wait for the next advance */
    if (n_self == 1)
        crow_timer_reschedule(cbw, t, 0);        /* itself, delay 0: no loop */
}
static void f_periodic(struct crow_timer *t, void *arg)
{
    (void)arg;
    if (n_periodic < 8)
        periodic_at[n_periodic] = crow_timer_wheel_now(cbw);
    if (++n_periodic < 5)
        crow_timer_add(cbw, t, 10);
}
static void f_free(struct crow_timer *t, void *arg)
{
    (void)arg;
    n_freed++;
    if (t == cb_freed)
        cb_freed = NULL;
    free(t);
}
static struct crow_timer cb_later;
static int n_later;
static void f_push_later(struct crow_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    crow_timer_reschedule(cbw, &cb_later, 0);    /* pending, filed further on: now due */
}
static void f_nest(struct crow_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    errno = 0;
    nest_rc = (int)crow_timer_wheel_advance(cbw, 1 << 30);
    nest_errno = errno;
}

static void test_callbacks(void)
{
    struct crow_timer_wheel w;
    cbw = &w;
    crow_timer_wheel_init(&w, 0, 1);
    crow_timer_init(&cb_self, f_self, NULL);
    crow_timer_init(&cb_victim, f_count, &n_victim);
    crow_timer_init(&cb_new, f_count, &n_new);
    crow_timer_init(&cb_periodic, f_periodic, NULL);
    crow_timer_init(&cb_nest, f_nest, NULL);
    /* Same deadline; the victim is armed first so LIFO or FIFO, one order has it after. */
    crow_timer_add(&w, &cb_victim, 50);
    crow_timer_add(&w, &cb_self, 50);
    struct crow_timer victim2;
    crow_timer_init(&victim2, f_count, &n_victim);
    crow_timer_add(&w, &victim2, 50);
    crow_timer_cancel(&w, &victim2);
    long n = crow_timer_wheel_advance(&w, 50);
    is_int(n_self, 1, "callback ran");
    is_int(n_victim, 0, "a timer cancelled by a callback in the same tick never fires");
    is_int(n_new, 0, "a timer armed due from a callback waits for the next advance");
    is_int(n, 1, "advance counted one callback");
    is_int(crow_timer_wheel_next_ms(&w, 100), 0, "next_ms 0 while something is due");
    n = crow_timer_wheel_advance(&w, 50);
    is_int(n_new, 1, "it fires on the next advance");
    is_int(n_self, 2, "the self re-armed timer fires once more, not in a loop");
    is_int(n, 2, "two callbacks");

    crow_timer_add(&w, &cb_periodic, 10);
    for (uint64_t t = 51; t <= 200; t++)
        crow_timer_wheel_advance(&w, t);
    is_int(n_periodic, 5, "periodic re-arming from its own callback: 5 firings");
    ok(periodic_at[0] == 60 && periodic_at[1] == 70 && periodic_at[4] == 100,
       "periodic firings at 60, 70 .. 100");

    /* Callbacks free their own timers; ASan checks nothing touches them afterwards. */
    for (int i = 0; i < 100; i++) {
        struct crow_timer *t = malloc(sizeof *t);
        crow_timer_init(t, f_free, NULL);
        crow_timer_add(&w, t, 1 + (uint64_t)i % 3);
    }
    crow_timer_wheel_advance(&w, 210);
    is_int(n_freed, 100, "100 callbacks freed their own timers");

    /* A callback moves a pending timer, filed in a higher level, to "now": the lazy path must
     * not leave it where this same advance would fire it. */
    struct crow_timer pusher;
    crow_timer_init(&pusher, f_push_later, NULL);
    crow_timer_init(&cb_later, f_count, &n_later);
    crow_timer_add(&w, &pusher, 10);
    crow_timer_add(&w, &cb_later, 100);
    crow_timer_wheel_advance(&w, 210 + 200);
    is_int(n_later, 0, "a pending timer moved to now by a callback does not fire in that advance");
    crow_timer_wheel_advance(&w, 410);
    is_int(n_later, 1, "it fires on the next one");

    crow_timer_add(&w, &cb_nest, 1);
    crow_timer_wheel_advance(&w, 411);
    ok(nest_rc == -1 && nest_errno == EBUSY, "advance from a callback: -1 EBUSY");
    is_int(crow_timer_wheel_now(&w), 411, "and the nested call changed nothing");
    is_int(crow_timer_wheel_count(&w), 0, "wheel empty");
}

/* Level boundaries and beyond the wheel's reach: not a ms early at D-1, fired at D. */
static void test_wrap(void)
{
    long e0 = errors;
    static const uint64_t delays[] = {63, 64, 65, 4095, 4096, 4097, 262143, 262144,
                                      ((uint64_t)1 << 24) + 1, ((uint64_t)1 << 30) - 1,
                                      ((uint64_t)1 << 36) - 1, (uint64_t)1 << 36,
                                      ((uint64_t)1 << 36) + 12345, (uint64_t)1 << 41,
                                      ((uint64_t)1 << 55) + 3, CROW_TIMER_MAX_DELAY};
    enum { N = sizeof delays / sizeof *delays };
    static const uint64_t origins[] = {0, 63, 4095, ((uint64_t)1 << 36) - 2, 123456789};
    long early = 0, missed = 0;
    for (size_t o = 0; o < sizeof origins / sizeof *origins; o++) {
        struct tt v[N];
        setup(origins[o], 1);
        advance(origins[o] + rnd() % 3);
        for (int i = 0; i < N; i++) {
            v[i] = (struct tt){.id = i};
            crow_timer_init(&v[i].t, on_fire, &v[i]);
            arm(&v[i], delays[i], 1);
        }
        for (int i = 0; i < N; i++) {
            advance(v[i].D - 1);
            early += v[i].fires;
            advance(v[i].D);
            missed += v[i].fires != 1;
        }
    }
    is_int(early, 0, "level edges, wrap, far timers: none fires at D-1");
    is_int(missed, 0, "level edges, wrap, far timers: each fires at D");
    is_int(errors - e0, 0, "and in order");

    /* A huge gap with many timers: everything fires, in grid order, in few steps. */
    enum { M = 10000 };
    static struct tt v[M];
    setup(5, 1);
    for (int i = 0; i < M; i++) {
        v[i] = (struct tt){.id = i};
        crow_timer_init(&v[i].t, on_fire, &v[i]);
        arm(&v[i], rnd_span(), 1);
    }
    clock_t c0 = clock();
    long n = advance((uint64_t)1 << 50);
    double secs = (double)(clock() - c0) / CLOCKS_PER_SEC;
    is_int(n, M, "a 2^50 ms gap fires all 10000 timers");
    is_int(errors - e0, 0, "in grid order, none early");
    ok(secs < 1.0, "and takes %.3f s (< 1 s)", secs);
}

/* An event loop that sleeps exactly next_ms: every timer fires at its grid point, with few
 * wake-ups, and next_ms never overshoots the earliest deadline. */
static void test_next_ms(void)
{
    long e0 = errors;
    enum { N = 3000 };
    static struct tt v[N];
    setup(1000, 10);
    for (int i = 0; i < N; i++) {
        v[i] = (struct tt){.id = i};
        crow_timer_init(&v[i].t, on_fire, &v[i]);
        arm(&v[i], rnd() % 3000000, 1);
    }
    uint64_t now = 1000;
    long wakeups = 0, overshoot = 0, late = 0;
    while (crow_timer_wheel_count(&W) && wakeups < 1000000) {
        int ms = crow_timer_wheel_next_ms(&W, 60000);
        uint64_t first = UINT64_MAX;
        for (int i = 0; i < N; i++)
            if (v[i].pending && grid(v[i].D) < first)
                first = grid(v[i].D);
        if (now + (uint64_t)ms > first)
            overshoot++;
        now += (uint64_t)ms;
        advance(now);
        wakeups++;
        for (int i = 0; i < N; i++)
            if (v[i].fires && v[i].fired_now == now && now != grid(v[i].D))
                late++;
    }
    is_int(crow_timer_wheel_count(&W), 0, "next_ms-driven loop fired every timer");
    is_int(overshoot, 0, "next_ms never sleeps past the earliest deadline's tick");
    is_int(late, 0, "each timer fired exactly at its grid point");
    is_int(errors - e0, 0, "none early");
    ok(wakeups <= 2 * N, "%ld wake-ups for %d timers (<= 2 per timer)", wakeups, N);
}

/* 1M reschedules over 10k timers while the clock moves, pushing later (lazy) and earlier. */
static void test_storm(void)
{
    long e0 = errors;
    enum { N = 10000 };
    static struct tt v[N];
    setup(0, 1);
    for (int i = 0; i < N; i++) {
        v[i] = (struct tt){.id = i};
        crow_timer_init(&v[i].t, on_fire, &v[i]);
        arm(&v[i], 30000 + rnd() % 1000, 1);
    }
    uint64_t now = 0;
    clock_t c0 = clock();
    for (long op = 0; op < 1000000; op++) {
        struct tt *x = &v[rnd() % N];
        if (op % 10 == 9)
            arm(x, 1 + rnd() % 30000, 0);     /* any direction */
        else
            arm(x, 30000, 0);                 /* idle timeout refreshed */
        if (op % 100 == 99)
            advance(++now);
    }
    double secs = (double)(clock() - c0) / CLOCKS_PER_SEC;
    ok(secs < 5.0, "1M reschedules of 10k timers with 10k advances: %.3f s (< 5 s)", secs);
    is_int(errors - e0, 0, "storm: nothing fired early or out of order");
    is_int(overdue(v, N, now), 0, "storm: nothing left overdue");
    long before = 0;
    for (int i = 0; i < N; i++)
        before += v[i].fires;
    while (crow_timer_wheel_count(&W) && now < 100000)
        advance(++now);
    long once = 0;
    for (int i = 0; i < N; i++)
        once += v[i].fires >= 1 && !v[i].pending;
    is_int(once, N, "storm: every timer fired by its last deadline");
    is_int(errors - e0, 0, "storm: the final firings were exact");
    ok(before < N, "storm: %ld timers fired during the storm, the rest after", before);
}

int main(void)
{
    test_contracts();
    test_tick_bounds();
    test_random_model();
    test_callbacks();
    test_wrap();
    test_next_ms();
    test_storm();
    return tap_done();
}
