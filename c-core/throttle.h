/* throttle.h — token buckets for bandwidth-in/-out per connection and per address (integer, exact). */
#ifndef CROW_THROTTLE_H
#define CROW_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

#define CROW_THROTTLE_MAX_RATE  ((uint64_t)1 << 40)   /* bytes/s (1 TiB/s) */
#define CROW_THROTTLE_MAX_BURST ((uint64_t)1 << 32)   /* bytes (4 GiB) */
/* A clock step back by more than this (ns) is taken as a clock reset: the bucket restarts
 * from the new time.  Smaller steps back (timestamps taken a little apart) are ignored. */
#define CROW_THROTTLE_RESYNC_NS ((uint64_t)1000000000)

/* A token bucket, embedded by the caller (one per connection and direction, one per address).
 * Fields are private to throttle.c. */
struct crow_throttle {
    uint64_t rate;                 /* bytes per second; 0 = unlimited */
    uint64_t burst;                /* capacity in bytes */
    uint64_t tokens;               /* content in nanobytes (1e9 per byte): refills are exact */
    uint64_t last;                 /* ns of the last refill */
    struct crow_throttle *parent;  /* a bucket shared with others (per address), or NULL */
};

/* Makes B a full bucket refilling at RATE bytes/s up to BURST bytes, its clock at NOW_NS (any
 * monotonic ns clock).  RATE 0 means unlimited; BURST 0 means a tenth of a second of RATE
 * (at least one byte, at most CROW_THROTTLE_MAX_BURST).  Returns 0, or -1 with errno EINVAL when RATE is above
 * CROW_THROTTLE_MAX_RATE or BURST above CROW_THROTTLE_MAX_BURST; B unchanged then. */
int crow_throttle_init(struct crow_throttle *b, uint64_t rate, uint64_t burst, uint64_t now_ns);

/* Changes B's rate and burst at NOW_NS: what it earned at the old rate until then is kept
 * (cut to the new burst); a bucket that was unlimited starts full.  Arguments as for
 * crow_throttle_init.  Returns 0, or -1 with errno EINVAL; B unchanged then. */
int crow_throttle_set_rate(struct crow_throttle *b, uint64_t now_ns, uint64_t rate,
                           uint64_t burst);

/* Makes every take from B also take from PARENT (and PARENT's parents): the bytes allowed are
 * the minimum over the chain.  PARENT NULL unlinks.  Returns 0, or -1 with errno ELOOP when
 * PARENT is B or has B among its parents; B unchanged then. */
int crow_throttle_set_parent(struct crow_throttle *b, struct crow_throttle *parent);

/* Takes up to WANT bytes at NOW_NS from B and its parents.  Returns the bytes allowed now, 0
 * to WANT (WANT when nothing in the chain is limited), removed from every bucket of the chain.
 * Give back what the transfer did not use with crow_throttle_refund.  Can't fail. */
size_t crow_throttle_take(struct crow_throttle *b, uint64_t now_ns, size_t want);

/* Returns the ns from NOW_NS until WANT bytes can be taken from B and its parents, 0 when they
 * can now.  WANT is cut to half of each bucket's burst (at least one byte), so the wait is
 * finite and a late wake-up loses no refill.  A shared parent may be drained by others
 * meanwhile: take again then.  Can't fail. */
uint64_t crow_throttle_wait_ns(struct crow_throttle *b, uint64_t now_ns, size_t want);

/* Returns N bytes taken but not used to B and its parents (each bucket capped at its burst).
 * Can't fail. */
void crow_throttle_refund(struct crow_throttle *b, size_t n);

/* Returns the whole bytes B alone (not its parents) holds at NOW_NS, UINT64_MAX when B is
 * unlimited.  Can't fail. */
uint64_t crow_throttle_available(struct crow_throttle *b, uint64_t now_ns);

#endif
