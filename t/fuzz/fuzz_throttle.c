/* fuzz_throttle.c — libFuzzer target: takes, waits, refunds, rate changes and clock jumps on a
 * chain of three token buckets, checked exactly against a 128-bit model. */
#include <stdint.h>
#include <stdlib.h>

#include "throttle.h"

typedef unsigned __int128 u128;
#define NANO ((u128)1000000000)

struct model {
    uint64_t rate, burst, last;
    u128 tokens;          /* nanobytes, no overflow possible */
};

enum { K = 3 };
static struct crow_throttle b[K];
static struct model m[K];
static int parent[K];     /* index of the parent, -1 for none */

static const uint8_t *ip, *iend;
static unsigned byte(void) { return ip < iend ? *ip++ : 0; }
static uint64_t u64(unsigned n)
{
    uint64_t x = 0;
    for (unsigned i = 0; i < n; i++)
        x = x << 8 | byte();
    return x;
}

static uint64_t pick_rate(void)
{
    switch (byte() % 5) {
    case 0: return 0;
    case 1: return 1 + byte();
    case 2: return u64(3);
    case 3: return CROW_THROTTLE_MAX_RATE - byte();
    default: return u64(6) % (CROW_THROTTLE_MAX_RATE + 1);
    }
}

static uint64_t pick_burst(void)
{
    switch (byte() % 4) {
    case 0: return 0;
    case 1: return 1 + byte();
    case 2: return u64(3);
    default: return CROW_THROTTLE_MAX_BURST - byte();
    }
}

static uint64_t pick_time(uint64_t now)
{
    switch (byte() % 6) {
    case 0: return now;
    case 1: return now + u64(2);
    case 2: return now + u64(4);
    case 3: return now + u64(8);                        /* anything, wrap included */
    case 4: return now - u64(4);                        /* small or large step back */
    default: return now + ((uint64_t)1 << (byte() % 64));
    }
}

static uint64_t def_burst(uint64_t rate, uint64_t burst)
{
    if (burst)
        return burst;
    uint64_t tenth = rate / 10;
    return tenth > CROW_THROTTLE_MAX_BURST ? CROW_THROTTLE_MAX_BURST : tenth ? tenth : 1;
}

static void m_refill(struct model *x, uint64_t now)
{
    if (now <= x->last) {
        if (x->last - now > CROW_THROTTLE_RESYNC_NS)
            x->last = now;
        return;
    }
    u128 t = x->tokens + (u128)(now - x->last) * x->rate;
    u128 cap = (u128)x->burst * NANO;
    x->tokens = t > cap ? cap : t;
    x->last = now;
}

static void m_init(struct model *x, uint64_t rate, uint64_t burst, uint64_t now)
{
    x->rate = rate;
    x->burst = def_burst(rate, burst);
    x->tokens = (u128)x->burst * NANO;
    x->last = now;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ip = data;
    iend = data + size;
    uint64_t now = u64(8);
    for (int i = 0; i < K; i++) {
        uint64_t r = pick_rate(), bu = pick_burst();
        if (crow_throttle_init(&b[i], r, bu, now) != 0)
            abort();
        m_init(&m[i], r, bu, now);
        parent[i] = -1;
    }
    while (ip < iend) {
        unsigned op = byte();
        int i = (int)((op >> 4) % K);
        now = pick_time(now);
        switch (op & 7) {
        case 0: case 1: {                                   /* take */
            size_t want = (size_t)u64(op & 8 ? 8 : 3);
            size_t got = crow_throttle_take(&b[i], now, want);
            u128 n = want;
            int limited = 0;
            for (int j = i; j >= 0; j = parent[j]) {
                if (!m[j].rate)
                    continue;
                limited = 1;
                m_refill(&m[j], now);
                if (m[j].tokens / NANO < n)
                    n = m[j].tokens / NANO;
            }
            if (got != (size_t)n)
                abort();
            if (limited)
                for (int j = i; j >= 0; j = parent[j])
                    if (m[j].rate)
                        m[j].tokens -= n * NANO;
            break;
        }
        case 2: {                                           /* wait */
            size_t want = (size_t)u64(op & 8 ? 8 : 2);
            uint64_t wt = crow_throttle_wait_ns(&b[i], now, want);
            u128 worst = 0;
            for (int j = i; j >= 0; j = parent[j]) {
                if (!m[j].rate)
                    continue;
                m_refill(&m[j], now);
                u128 half = m[j].burst / 2 ? m[j].burst / 2 : 1;
                u128 need = ((u128)want < half ? want : half) * NANO;
                if (m[j].tokens >= need)
                    continue;
                u128 ns = (need - m[j].tokens + m[j].rate - 1) / m[j].rate;
                if (ns > worst)
                    worst = ns;
            }
            if (wt != (uint64_t)worst)
                abort();
            break;
        }
        case 3: {                                           /* refund */
            size_t n = (size_t)u64(op & 8 ? 8 : 2);
            crow_throttle_refund(&b[i], n);
            for (int j = i; j >= 0; j = parent[j]) {
                if (!m[j].rate)
                    continue;
                u128 cap = (u128)m[j].burst * NANO;
                m[j].tokens += (u128)n * NANO;
                if (m[j].tokens > cap)
                    m[j].tokens = cap;
            }
            break;
        }
        case 4: {                                           /* rate change */
            uint64_t r = pick_rate(), bu = pick_burst();
            if (byte() == 0xff)
                r = CROW_THROTTLE_MAX_RATE + 1;
            int rc = crow_throttle_set_rate(&b[i], now, r, bu);
            if (r > CROW_THROTTLE_MAX_RATE) {
                if (rc != -1)
                    abort();
                break;
            }
            if (rc != 0)
                abort();
            struct model *x = &m[i];
            if (x->rate) {
                m_refill(x, now);
                x->burst = def_burst(r, bu);
                if (x->tokens > (u128)x->burst * NANO)
                    x->tokens = (u128)x->burst * NANO;
            } else {
                x->burst = def_burst(r, bu);
                x->tokens = (u128)x->burst * NANO;
            }
            x->rate = r;
            x->last = now;
            break;
        }
        case 5: {                                           /* re-parent */
            int p = (int)(byte() % (K + 1)) - 1;
            int loops = 0;
            for (int j = p; j >= 0; j = parent[j])
                loops |= j == i;
            int rc = crow_throttle_set_parent(&b[i], p < 0 ? NULL : &b[p]);
            if (rc != (loops ? -1 : 0))
                abort();
            if (!loops)
                parent[i] = p;
            break;
        }
        default: {                                          /* available */
            uint64_t a = crow_throttle_available(&b[i], now);
            if (!m[i].rate) {
                if (a != UINT64_MAX)
                    abort();
                break;
            }
            m_refill(&m[i], now);
            if (a != (uint64_t)(m[i].tokens / NANO))
                abort();
            break;
        }
        }
    }
    return 0;
}
