/* timer.h — a hierarchical timer wheel for one event-loop thread: O(1) arm/cancel/reschedule. */
#ifndef CROW_TIMER_H
#define CROW_TIMER_H

#include <stddef.h>
#include <stdint.h>

#define CROW_TIMER_LEVEL_BITS 6
#define CROW_TIMER_SLOTS      (1 << CROW_TIMER_LEVEL_BITS)   /* slots per level */
#define CROW_TIMER_LEVELS     6                              /* 2^36 ticks; beyond: a list */
/* Delays are clamped to this (about 146 million years) so deadlines never overflow, given a
 * clock below 2^63 ms. */
#define CROW_TIMER_MAX_DELAY  ((uint64_t)1 << 62)
/* The largest tick accepted by crow_timer_wheel_init (one hour). */
#define CROW_TIMER_MAX_TICK   3600000u

struct crow_timer;
struct crow_timer_wheel;

/* Called when T expires, with T already idle.  It may arm, cancel or reschedule any timer of
 * the wheel, T included, and may free T (or the object embedding it); it must not call
 * crow_timer_wheel_advance. */
typedef void crow_timer_fn(struct crow_timer *t, void *arg);

/* A timer, embedded by the caller in whatever it times out (a connection).  The fields are
 * private to timer.c; initialise with crow_timer_init before first use. */
struct crow_timer {
    struct crow_timer *next, **pprev; /* list links while pending */
    uint64_t deadline;                /* ms, on the caller's clock */
    uint64_t filed;                   /* deadline it was last filed under (lazy reschedule) */
    crow_timer_fn *fn;
    void *arg;
    uint32_t where;                   /* slot index, or one of timer.c's list markers */
};

/* A wheel: one per event-loop thread, no locking.  Embed or allocate it; fields private. */
struct crow_timer_wheel {
    uint64_t origin;      /* ms at tick 0 */
    uint64_t now;         /* ms passed to the last advance (or init) */
    uint64_t cur;         /* the tick the wheel has stepped to: everything filed is after it */
    uint64_t goal;        /* the tick of NOW: arming at or before it means due */
    uint64_t goal_ms;     /* the ms at which tick GOAL starts */
    uint32_t tick;        /* ms per tick */
    int running;          /* inside advance (callbacks arm into the due list) */
    size_t count;         /* pending timers */
    struct crow_timer *due;                   /* expired, to fire on the next advance */
    struct crow_timer *far;                   /* beyond the wheel's reach */
    uint64_t far_min;                         /* lower bound of the far timers' ticks */
    uint64_t map[CROW_TIMER_LEVELS];          /* bit s set <=> slot s of that level non-empty */
    struct crow_timer *slot[CROW_TIMER_LEVELS * CROW_TIMER_SLOTS];
};

/* Makes T an idle timer that will call FN(T, ARG) when it expires.  Must not be used on a
 * pending timer.  Can't fail. */
void crow_timer_init(struct crow_timer *t, crow_timer_fn *fn, void *arg);

/* Makes W an empty wheel whose clock reads NOW_MS (any monotonic millisecond clock) and whose
 * resolution is TICK_MS.  Returns 0, or -1 with errno EINVAL when TICK_MS is 0 or above
 * CROW_TIMER_MAX_TICK; W unchanged then. */
int crow_timer_wheel_init(struct crow_timer_wheel *w, uint64_t now_ms, unsigned tick_ms);

/* Arms the idle timer T to expire DELAY_MS after the wheel's clock (the NOW_MS of the last
 * advance).  Timing contract, with D = that clock + DELAY_MS: T never fires in an advance
 * whose NOW_MS is below D; it fires in the first advance whose NOW_MS reaches D rounded up
 * to the tick grid (origin + k * TICK_MS), which is less than one tick after D.  A timer armed
 * from a callback fires no earlier than the next advance.  Returns 0, or -1 with errno
 * EALREADY when T is already pending (use crow_timer_reschedule); T unchanged then. */
int crow_timer_add(struct crow_timer_wheel *w, struct crow_timer *t, uint64_t delay_ms);

/* Re-arms T, pending or idle, to expire DELAY_MS after the wheel's clock, with the contract of
 * crow_timer_add.  Pushing a pending timer's deadline later (an idle timeout refreshed on
 * every read) only stores the new deadline; the timer is re-filed when its old slot comes
 * due.  Can't fail. */
void crow_timer_reschedule(struct crow_timer_wheel *w, struct crow_timer *t, uint64_t delay_ms);

/* Disarms T: it will not fire, even if already expired and waiting in the current advance.
 * Returns 1 when T was pending, 0 when it was idle.  Can't fail. */
int crow_timer_cancel(struct crow_timer_wheel *w, struct crow_timer *t);

/* Returns 1 when T is armed and has not fired yet, else 0.  Can't fail. */
int crow_timer_pending(const struct crow_timer *t);

/* Returns T's deadline in ms on the wheel's clock (meaningful while pending).  Can't fail. */
uint64_t crow_timer_deadline(const struct crow_timer *t);

/* Moves the wheel's clock to NOW_MS and runs the callback of every timer due by then, in
 * order of deadline tick (ties in unspecified order).  A NOW_MS below the wheel's clock (a
 * clock that stepped back) counts as no time passing.  Returns the number of callbacks run,
 * or -1 with errno EBUSY when called from a callback (nothing done). */
long crow_timer_wheel_advance(struct crow_timer_wheel *w, uint64_t now_ms);

/* Returns the milliseconds from the wheel's clock until the wheel next needs an advance, for
 * epoll_wait: never later than the earliest deadline's tick, sometimes earlier (a cascade or a
 * lazily rescheduled timer makes the advance fire nothing), 0 when something is already due,
 * and at most CAP_MS.  With nothing pending it returns CAP_MS; a negative CAP_MS means no cap
 * and then -1 is returned when nothing is pending.  Can't fail. */
int crow_timer_wheel_next_ms(const struct crow_timer_wheel *w, int cap_ms);

/* Returns the wheel's clock (ms).  Can't fail. */
uint64_t crow_timer_wheel_now(const struct crow_timer_wheel *w);

/* Returns the number of pending timers.  Can't fail. */
size_t crow_timer_wheel_count(const struct crow_timer_wheel *w);

#endif
