/* throttle.c — token buckets for bandwidth limits, per connection and per address.
 *
 * Design: a bucket holds tokens in nanobytes (10^9 per byte), so a refill of DT ns at RATE
 * bytes/s adds exactly DT * RATE: no rounding, hence no drift however long a transfer runs,
 * and a byte is spent as 10^9 units.  The content is capped at BURST bytes; the refill first
 * computes how many ns would fill the bucket and only multiplies when the gap is shorter, so
 * huge gaps (a connection idle for days, a clock jump) cannot overflow (DT * RATE stays below
 * BURST * 10^9 + RATE < 2^63 with the limits in throttle.h).  A clock that steps back a little
 * (two timestamps taken in a different order) is ignored; a large step back resynchronises
 * without credit, so a reset clock neither freezes the bucket nor grants a second burst.
 * Hierarchy is a parent pointer: a connection's bucket points to its address's bucket, and a
 * take is the minimum over the chain, removed from each; the caller refunds what the read or
 * write did not use.  wait_ns gives the event loop a deadline for a timer instead of polling;
 * it waits for at most half a burst, so a wake-up that comes late (epoll, timer ticks) still
 * finds room in the bucket and loses none of the refill.
 * Rate 0 means unlimited: the bucket is skipped.
 */
#include <errno.h>

#include "throttle.h"

#define NANO ((uint64_t)1000000000)

static inline uint64_t full(const struct crow_throttle *b) { return b->burst * NANO; }

static inline uint64_t default_burst(uint64_t rate, uint64_t burst)
{
    if (burst)
        return burst;
    if (rate / 10 > CROW_THROTTLE_MAX_BURST)
        return CROW_THROTTLE_MAX_BURST;
    return rate / 10 ? rate / 10 : 1;
}

static void refill(struct crow_throttle *b, uint64_t now)
{
    if (now <= b->last) {
        if (b->last - now > CROW_THROTTLE_RESYNC_NS)
            b->last = now;
        return;
    }
    uint64_t dt = now - b->last;
    b->last = now;
    uint64_t cap = full(b);
    if (b->tokens >= cap)
        return;
#ifdef CROW_PLANTED_BUG
    /* Planted: multiplies before comparing with the time to fill, overflowing on long gaps. */
    b->tokens += dt * b->rate;
    if (b->tokens > cap)
        b->tokens = cap;
#else
    uint64_t deficit = cap - b->tokens;
    uint64_t fill_ns = deficit / b->rate + (deficit % b->rate != 0);
    if (dt >= fill_ns)
        b->tokens = cap;
    else
        b->tokens += dt * b->rate;   /* < deficit + rate: no overflow */
#endif
}

int crow_throttle_init(struct crow_throttle *b, uint64_t rate, uint64_t burst, uint64_t now_ns)
{
    if (rate > CROW_THROTTLE_MAX_RATE || burst > CROW_THROTTLE_MAX_BURST) {
        errno = EINVAL;
        return -1;
    }
    b->rate = rate;
    b->burst = default_burst(rate, burst);
    b->tokens = full(b);
    b->last = now_ns;
    b->parent = NULL;
    return 0;
}

int crow_throttle_set_rate(struct crow_throttle *b, uint64_t now_ns, uint64_t rate,
                           uint64_t burst)
{
    if (rate > CROW_THROTTLE_MAX_RATE || burst > CROW_THROTTLE_MAX_BURST) {
        errno = EINVAL;
        return -1;
    }
    if (b->rate) {
        refill(b, now_ns);
        b->burst = default_burst(rate, burst);
        if (b->tokens > full(b))
            b->tokens = full(b);
    } else {
        b->burst = default_burst(rate, burst);
        b->tokens = full(b);
    }
    b->rate = rate;
    b->last = now_ns;
    return 0;
}

int crow_throttle_set_parent(struct crow_throttle *b, struct crow_throttle *parent)
{
    for (struct crow_throttle *p = parent; p; p = p->parent)
        if (p == b) {
            errno = ELOOP;
            return -1;
        }
    b->parent = parent;
    return 0;
}

size_t crow_throttle_take(struct crow_throttle *b, uint64_t now_ns, size_t want)
{
    uint64_t n = want;
    int limited = 0;
    for (struct crow_throttle *p = b; p; p = p->parent) {
        if (!p->rate)
            continue;
        refill(p, now_ns);
        uint64_t have = p->tokens / NANO;
        if (have < n)
            n = have;
        limited = 1;
    }
    if (limited && n)
        for (struct crow_throttle *p = b; p; p = p->parent)
            if (p->rate)
                p->tokens -= n * NANO;
    return (size_t)n;
}

uint64_t crow_throttle_wait_ns(struct crow_throttle *b, uint64_t now_ns, size_t want)
{
    uint64_t worst = 0;
    for (struct crow_throttle *p = b; p; p = p->parent) {
        if (!p->rate)
            continue;
        refill(p, now_ns);
        uint64_t half = p->burst / 2 ? p->burst / 2 : 1;
        uint64_t need = ((uint64_t)want < half ? (uint64_t)want : half) * NANO;
        if (p->tokens >= need)
            continue;
        uint64_t lack = need - p->tokens;
        uint64_t ns = lack / p->rate + (lack % p->rate != 0);
        if (ns > worst)
            worst = ns;
    }
    return worst;
}

void crow_throttle_refund(struct crow_throttle *b, size_t n)
{
    for (struct crow_throttle *p = b; p; p = p->parent) {
        if (!p->rate)
            continue;
        uint64_t cap = full(p);
        uint64_t add = ((uint64_t)n < p->burst ? (uint64_t)n : p->burst) * NANO;
        p->tokens = cap - p->tokens <= add ? cap : p->tokens + add;
    }
}

uint64_t crow_throttle_available(struct crow_throttle *b, uint64_t now_ns)
{
    if (!b->rate)
        return UINT64_MAX;
    refill(b, now_ns);
    return b->tokens / NANO;
}
