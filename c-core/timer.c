/* timer.c — hierarchical timer wheel for per-connection timeouts in one event-loop thread.
 *
 * Design: six levels of 64 slots.  A deadline D (ms) becomes the expiry tick
 * E = ceil((D - origin) / tick), so a timer can never fire before D.  A timer with E beyond
 * the current tick C is filed at the level of the highest bit in which E and C differ (six
 * bits per level) and in the slot given by E's digit at that level, so every filed timer sits
 * in a slot strictly ahead of C's digit, in C's block of the level above, and that slot is
 * reached no later than E.  When E and C differ beyond 36 bits the timer goes to a far list,
 * whose earliest block start is the one event it adds (re-filed into the wheel there).  One
 * 64-bit map per level says which slots are non-empty, so the next tick at which anything
 * happens is a count-trailing-zeros per level: advance jumps from event to event instead of
 * walking ticks (a clock gap of years costs a few steps per timer), and next_ms answers
 * epoll_wait without scanning.  At an event tick the slots entered at every level are
 * emptied; their timers either fire (E reached) or are re-filed lower (a cascade).
 * Timers are intrusive and doubly linked (next, pprev), so arming and cancelling are O(1).
 * The common reschedule, an idle timeout pushed later on every read, only stores the new
 * deadline: the timer stays where it was filed, and when that slot is reached (never after
 * the new deadline) it is re-filed by its real deadline — one move per slot visit instead of
 * an unlink and link per read; the price is that next_ms may wake the loop for nothing.
 * Callbacks run with the timer already idle, popped from a run list one at a time, so they may
 * arm, cancel, reschedule or free any timer; whatever they arm that is already due waits in
 * the due list for the next advance, so a callback re-arming itself with delay 0 cannot loop.
 */
#include <errno.h>
#include <limits.h>

#include "crow.h"
#include "timer.h"

#define NSLOT   (CROW_TIMER_LEVELS * CROW_TIMER_SLOTS)
#define BITS    CROW_TIMER_LEVEL_BITS
#define MASK    (CROW_TIMER_SLOTS - 1)
#define REACH   (CROW_TIMER_LEVELS * BITS) /* ticks E with (E ^ C) >> REACH go far */
#define AT_FAR  ((uint32_t)NSLOT)        /* in w->far; it and the slots allow lazy pushes */
#define AT_DUE  ((uint32_t)NSLOT + 1)    /* in w->due */
#define AT_RUN  ((uint32_t)NSLOT + 2)    /* in the run list of the advance in progress */
#define AT_IDLE UINT32_MAX

void crow_timer_init(struct crow_timer *t, crow_timer_fn *fn, void *arg)
{
    t->next = NULL;
    t->pprev = NULL;
    t->deadline = t->filed = 0;
    t->fn = fn;
    t->arg = arg;
    t->where = AT_IDLE;
}

int crow_timer_wheel_init(struct crow_timer_wheel *w, uint64_t now_ms, unsigned tick_ms)
{
    if (tick_ms == 0 || tick_ms > CROW_TIMER_MAX_TICK) {
        errno = EINVAL;
        return -1;
    }
    w->origin = w->now = now_ms;
    w->cur = w->goal = 0;
    w->goal_ms = now_ms;
    w->tick = tick_ms;
    w->running = 0;
    w->count = 0;
    w->due = w->far = NULL;
    w->far_min = UINT64_MAX;
    for (int i = 0; i < CROW_TIMER_LEVELS; i++)
        w->map[i] = 0;
    for (int i = 0; i < NSLOT; i++)
        w->slot[i] = NULL;
    return 0;
}

static inline void unlink_timer(struct crow_timer_wheel *w, struct crow_timer *t)
{
    *t->pprev = t->next;
    if (t->next)
        t->next->pprev = t->pprev;
    if (t->where < NSLOT && !w->slot[t->where])
        w->map[t->where / CROW_TIMER_SLOTS] &= ~((uint64_t)1 << (t->where & MASK));
}

static inline void push(struct crow_timer **head, struct crow_timer *t, uint32_t where)
{
    t->next = *head;
    if (*head)
        (*head)->pprev = &t->next;
    *head = t;
    t->pprev = head;
    t->where = where;
}

/* The first tick whose start is at or after MS. */
static inline uint64_t tick_ceil(const struct crow_timer_wheel *w, uint64_t ms)
{
    if (ms <= w->origin)
        return 0;
    return (ms - w->origin + w->tick - 1) / w->tick;
}

/* Files T, expiring at tick E > w->cur, in the slot reached first no later than E. */
static inline void file_at(struct crow_timer_wheel *w, struct crow_timer *t, uint64_t e)
{
    uint64_t x = e ^ w->cur;
    t->filed = t->deadline;
    if (CROW_UNLIKELY(x >> REACH)) {
        push(&w->far, t, AT_FAR);
        if (e < w->far_min)
            w->far_min = e;
        return;
    }
    int lvl = (63 - __builtin_clzll(x)) / BITS;
    unsigned s = (unsigned)(e >> (lvl * BITS)) & MASK;
    uint32_t idx = (uint32_t)(lvl * CROW_TIMER_SLOTS) + s;
    push(&w->slot[idx], t, idx);
    w->map[lvl] |= (uint64_t)1 << s;
}

/* Files the unlinked timer T by its deadline: due (fires at the next advance) when its tick
 * is already reached, else in the wheel. */
static void arm(struct crow_timer_wheel *w, struct crow_timer *t)
{
    if (t->deadline <= w->goal_ms) {
        t->filed = t->deadline;
        push(&w->due, t, AT_DUE);
    } else {
        file_at(w, t, tick_ceil(w, t->deadline));
    }
}

static inline uint64_t deadline_after(const struct crow_timer_wheel *w, uint64_t delay)
{
    return w->now + (delay > CROW_TIMER_MAX_DELAY ? CROW_TIMER_MAX_DELAY : delay);
}

int crow_timer_add(struct crow_timer_wheel *w, struct crow_timer *t, uint64_t delay_ms)
{
    if (t->where != AT_IDLE) {
        errno = EALREADY;
        return -1;
    }
    t->deadline = deadline_after(w, delay_ms);
    w->count++;
    arm(w, t);
    return 0;
}

void crow_timer_reschedule(struct crow_timer_wheel *w, struct crow_timer *t, uint64_t delay_ms)
{
    uint64_t d = deadline_after(w, delay_ms);
#ifdef CROW_PLANTED_BUG
    /* Planted: the lazy path also takes timers in the due and run lists, which are fired
     * without looking at their deadline again, so a pushed-back timer fires early. */
    if (t->where != AT_IDLE && d >= t->filed && d > w->goal_ms) {
#else
    if (t->where <= AT_FAR && d >= t->filed && d > w->goal_ms) {
#endif
        /* Its slot is reached by the old deadline and re-files it then; a deadline not past
         * the current tick would fire in the advance in progress, so that one is re-armed. */
        t->deadline = d;
        return;
    }
    if (t->where == AT_IDLE)
        w->count++;
    else
        unlink_timer(w, t);
    t->deadline = d;
    arm(w, t);
}

int crow_timer_cancel(struct crow_timer_wheel *w, struct crow_timer *t)
{
    if (t->where == AT_IDLE)
        return 0;
    unlink_timer(w, t);
    t->where = AT_IDLE;
    t->next = NULL;
    t->pprev = NULL;
    w->count--;
    return 1;
}

int crow_timer_pending(const struct crow_timer *t) { return t->where != AT_IDLE; }

uint64_t crow_timer_deadline(const struct crow_timer *t) { return t->deadline; }

uint64_t crow_timer_wheel_now(const struct crow_timer_wheel *w) { return w->now; }

size_t crow_timer_wheel_count(const struct crow_timer_wheel *w) { return w->count; }

/* The first tick after w->cur at which a non-empty slot is reached or the far list is due, or
 * UINT64_MAX.  Every level's non-empty slots lie ahead of the current tick's digit within its
 * block of the level above, so the first level with any holds the answer. */
static uint64_t next_event(const struct crow_timer_wheel *w)
{
    uint64_t c = w->cur;
    for (int lvl = 0; lvl < CROW_TIMER_LEVELS; lvl++) {
        uint64_t m = w->map[lvl];
        if (!m)
            continue;
        int sh = lvl * BITS;
        return ((c >> (sh + BITS)) << (sh + BITS)) | ((uint64_t)__builtin_ctzll(m) << sh);
    }
    return w->far ? (w->far_min >> REACH) << REACH : UINT64_MAX;
}

/* Runs every timer of the run list *RUN, popping each before its callback so the callback
 * may touch any timer (the list head stays valid: it lives in advance's frame). */
static long fire(struct crow_timer_wheel *w, struct crow_timer **run)
{
    long n = 0;
    struct crow_timer *t;
    while ((t = *run) != NULL) {
        unlink_timer(w, t);
        t->where = AT_IDLE;
        t->next = NULL;
        t->pprev = NULL;
        w->count--;
        n++;
        t->fn(t, t->arg);
    }
    return n;
}

/* Sorts the detached chain T at event tick AT: due timers go to the run list at *TAIL, the
 * others are re-filed lower.  Returns the new tail. */
static struct crow_timer **sort(struct crow_timer_wheel *w, struct crow_timer *t, uint64_t at,
                                struct crow_timer **tail)
{
    while (t) {
        struct crow_timer *next = t->next;
        uint64_t e = tick_ceil(w, t->deadline);
        if (e <= at) {
            t->next = NULL;
            t->pprev = tail;
            t->where = AT_RUN;
            *tail = t;
            tail = &t->next;
        } else {
            file_at(w, t, e);
        }
        t = next;
    }
    return tail;
}

long crow_timer_wheel_advance(struct crow_timer_wheel *w, uint64_t now_ms)
{
    if (w->running) {
        errno = EBUSY;
        return -1;
    }
    if (now_ms > w->now)
        w->now = now_ms;
    uint64_t goal = (w->now - w->origin) / w->tick;
    w->goal = goal;
    w->goal_ms = w->origin + goal * w->tick;
    w->running = 1;

    /* First what was already due when armed: its ticks are all at or before w->cur. */
    struct crow_timer *run = w->due;
    long fired = 0;
    if (run) {
        w->due = NULL;
        run->pprev = &run;
        for (struct crow_timer *t = run; t; t = t->next)
            t->where = AT_RUN;
        fired += fire(w, &run);
    }

    while (w->cur < goal) {
        uint64_t at = next_event(w);
        if (at > goal) {
            w->cur = goal;
            break;
        }
        w->cur = at;
        struct crow_timer **tail = &run;
        for (int lvl = 0; lvl < CROW_TIMER_LEVELS; lvl++) {
            int sh = lvl * BITS;
            if (sh && (at & (((uint64_t)1 << sh) - 1)))
                break;                       /* not at a block start of this level or above */
            unsigned s = (unsigned)(at >> sh) & MASK;
            if (!(w->map[lvl] & ((uint64_t)1 << s)))
                continue;
            uint32_t idx = (uint32_t)(lvl * CROW_TIMER_SLOTS) + s;
            struct crow_timer *t = w->slot[idx];
            w->slot[idx] = NULL;             /* detached first: re-filing may reuse the slot */
            w->map[lvl] &= ~((uint64_t)1 << s);
            tail = sort(w, t, at, tail);
        }
        if (w->far && at == (w->far_min >> REACH) << REACH) {
            struct crow_timer *t = w->far;
            w->far = NULL;
            w->far_min = UINT64_MAX;
            tail = sort(w, t, at, tail);
        }
        if (run)
            fired += fire(w, &run);
    }
    w->running = 0;
    return fired;
}

int crow_timer_wheel_next_ms(const struct crow_timer_wheel *w, int cap_ms)
{
    if (w->due)
        return 0;
    uint64_t at = w->count ? next_event(w) : UINT64_MAX;
    if (at == UINT64_MAX)
        return cap_ms < 0 ? -1 : cap_ms;
    uint64_t ms = w->origin + at * w->tick;
    if (ms <= w->now)
        return 0;
    uint64_t left = ms - w->now;
    if (cap_ms >= 0 && left > (uint64_t)cap_ms)
        return cap_ms;
    return left > INT_MAX ? INT_MAX : (int)left;
}
