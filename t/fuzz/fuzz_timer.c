/* fuzz_timer.c — libFuzzer target: random arm/reschedule/cancel/advance/next_ms on a timer
 * wheel, with callbacks that change the wheel, checked against a plain model of deadlines. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "timer.h"

enum { N = 16 };

struct ft {
    struct crow_timer t;
    int pending;          /* model */
    uint64_t D;           /* model deadline */
    int armed_in_cb;      /* armed by a callback of the advance in progress */
    uint8_t act, target;  /* what the callback does */
    uint64_t act_delay;
};

static struct crow_timer_wheel w;
static struct ft v[N];
static uint64_t origin, tick, adv_now, last_grid;
static int in_advance;

static const uint8_t *ip, *iend;
static unsigned byte(void) { return ip < iend ? *ip++ : 0; }

static uint64_t grid(uint64_t d)
{
    if (d <= origin)
        return origin;
    return origin + (d - origin + tick - 1) / tick * tick;
}

static uint64_t span(void)
{
    unsigned b = byte();
    uint64_t x = b & 31;
    switch (b >> 5) {
    case 0: return x;
    case 1: return byte();
    case 2: return byte() | (uint64_t)byte() << 8;
    case 3: return (byte() | (uint64_t)byte() << 8 | (uint64_t)byte() << 16);
    case 4: return ((uint64_t)1 << (6 * (1 + x % 6))) + byte() % 5 - 2;   /* level edges */
    case 5: return (uint64_t)(byte() | byte() << 8) << 22;
    case 6: return (uint64_t)(byte() | byte() << 8) << 34;
    default: return x == 31 ? UINT64_MAX : CROW_TIMER_MAX_DELAY - x;
    }
}

static void model_arm(struct ft *x, uint64_t delay)
{
    x->D = crow_timer_wheel_now(&w) + (delay > CROW_TIMER_MAX_DELAY ? CROW_TIMER_MAX_DELAY : delay);
    x->pending = 1;
    x->armed_in_cb = in_advance;
}

static void on_fire(struct crow_timer *t, void *arg)
{
    struct ft *x = arg;
    if (t != &x->t || !x->pending || x->armed_in_cb || crow_timer_pending(t))
        abort();
    uint64_t g = grid(x->D);
    if (adv_now < x->D || g > adv_now || g < last_grid)
        abort();
    last_grid = g;
    x->pending = 0;
    struct ft *y = &v[x->target % N];
    switch (x->act % 4) {
    case 1:
        crow_timer_reschedule(&w, &y->t, x->act_delay);
        model_arm(y, x->act_delay);
        break;
    case 2:
        if (crow_timer_cancel(&w, &y->t) != y->pending)
            abort();
        y->pending = 0;
        break;
    case 3:
        if (crow_timer_add(&w, &y->t, x->act_delay) == 0) {
            if (y->pending)
                abort();
            model_arm(y, x->act_delay);
        } else if (!y->pending) {
            abort();
        }
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ip = data;
    iend = data + size;
    unsigned tb = byte();
    tick = tb < 128 ? 1 : tb < 224 ? 1 + tb % 17 : 1000;
    origin = span() % ((uint64_t)1 << 62);   /* a clock below 2^63 ms (timer.h) */
    if (crow_timer_wheel_init(&w, origin, (unsigned)tick) != 0)
        abort();
    for (int i = 0; i < N; i++) {
        memset(&v[i], 0, sizeof v[i]);
        crow_timer_init(&v[i].t, on_fire, &v[i]);
    }
    while (ip < iend) {
        unsigned op = byte();
        struct ft *x = &v[(op >> 3) % N];
        switch (op & 7) {
        case 0: {
            uint64_t d = span();
            int rc = crow_timer_add(&w, &x->t, d);
            if ((rc == 0) == x->pending)
                abort();
            if (rc == 0)
                model_arm(x, d);
            break;
        }
        case 1: case 2: {
            uint64_t d = span();
            crow_timer_reschedule(&w, &x->t, d);
            model_arm(x, d);
            break;
        }
        case 3:
            if (crow_timer_cancel(&w, &x->t) != x->pending)
                abort();
            x->pending = 0;
            break;
        case 4:
            x->act = (uint8_t)byte();
            x->target = (uint8_t)byte();
            x->act_delay = span();
            break;
        case 5: {
            int cap = (int)(byte() * 100);
            int ms = crow_timer_wheel_next_ms(&w, cap);
            uint64_t first = UINT64_MAX;
            for (int i = 0; i < N; i++)
                if (v[i].pending && grid(v[i].D) < first)
                    first = grid(v[i].D);
            uint64_t now = crow_timer_wheel_now(&w);
            if (ms < 0 || ms > cap)
                abort();
            if (first == UINT64_MAX && ms != cap)
                abort();
            if (first != UINT64_MAX && now + (uint64_t)ms > (first > now ? first : now))
                abort();
            break;
        }
        default: {
            uint64_t now = crow_timer_wheel_now(&w);
            uint64_t to = (op & 7) == 6 && (op & 0x80) ? now - (now - origin) / 2 : now + span();
            if (to > ((uint64_t)1 << 63) || (to < now && (op & 7) != 6))
                to = (uint64_t)1 << 63;     /* clocks stay below 2^63 (timer.h) */
            adv_now = to > now ? to : now;
            last_grid = 0;
            for (int i = 0; i < N; i++)
                v[i].armed_in_cb = 0;
            in_advance = 1;
            long n = crow_timer_wheel_advance(&w, to);
            in_advance = 0;
            if (n < 0)
                abort();
            size_t pend = 0;
            for (int i = 0; i < N; i++) {
                pend += (size_t)v[i].pending;
                if (v[i].pending && !v[i].armed_in_cb && grid(v[i].D) <= adv_now)
                    abort();               /* due but did not fire */
                if (v[i].pending != crow_timer_pending(&v[i].t))
                    abort();
            }
            if (pend != crow_timer_wheel_count(&w))
                abort();
            break;
        }
        }
    }
    return 0;
}
