/* admit.h — admission control shared by every thread of a process: global and per-address
 * connection limits, a per-address rate of new connections, per-address bandwidth buckets. */
#ifndef CROW_ADMIT_H
#define CROW_ADMIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "alloc.h"
#include "throttle.h"

/* What crow_admit_enter returns: OK, or the limit that refused. */
enum crow_admit_result {
    CROW_ADMIT_OK = 0,
    CROW_ADMIT_FULL = 1,        /* max_connections reached (or the address table is full of
                                   addresses that all have connections in) */
    CROW_ADMIT_PER_ADDRESS = 2, /* the address has max_per_address connections in */
    CROW_ADMIT_RATE = 3,        /* the address opened rate_count connections within the last
                                   rate_period_ns */
    CROW_ADMIT_NOMEM = 4        /* no memory for a new address's entry: refused */
};

/* The address table is split into this many independently locked stripes. */
#define CROW_ADMIT_STRIPES 16

struct crow_admit_config {
    size_t max_connections;  /* connections in at once, all addresses; 0 = no limit */
    size_t max_per_address;  /* connections in at once from one address; 0 = no limit */
    uint32_t rate_count;     /* new connections allowed per address per rate_period_ns (a
                                token bucket of rate_count tokens refilled continuously at
                                rate_count per period); 0 = no limit */
    uint64_t rate_period_ns; /* with rate_count; at most CROW_ADMIT_MAX_PERIOD */
    uint64_t bandwidth_in;   /* bytes/s shared by all connections of one address; 0 = none */
    uint64_t bandwidth_out;
    size_t max_addresses;    /* address entries kept (split evenly among the stripes); 0 =
                                65536.  An idle entry is dropped once its rate state has
                                recovered; when a stripe is full the oldest idle entry is
                                evicted (forgetting its rate state). */
    unsigned ipv6_prefix;    /* IPv6 sources are counted per prefix of this many bits (1..128);
                                0 = 128 (each address on its own) */
    const struct crow_allocator *allocator; /* NULL = default; copied */
};

/* Periods beyond this (about 11.6 days) are refused with EINVAL. */
#define CROW_ADMIT_MAX_PERIOD ((uint64_t)1000000000 * 1000000)

struct crow_admit_stats {
    uint64_t active;             /* connections in now */
    uint64_t admitted;           /* enters that returned OK */
    uint64_t refused_full, refused_per_address, refused_rate, refused_nomem;
    uint64_t addresses;          /* entries in the table now */
    uint64_t expired;            /* idle entries dropped after their rate state recovered */
    uint64_t evicted;            /* idle entries dropped early because a stripe was full */
};

struct crow_admit;
/* An address's entry, as returned by crow_admit_enter_peer: valid until the matching
 * crow_admit_leave_peer.  NULL stands for an exempt source (see crow_admit_enter). */
struct crow_admit_peer;

/* Fills CFG with "no limits" (every field 0).  Can't fail. */
void crow_admit_config_init(struct crow_admit_config *cfg);

/* Makes an admission table.  Returns NULL and sets errno: EINVAL (rate_count without a
 * period, a period above CROW_ADMIT_MAX_PERIOD, ipv6_prefix above 128, a bandwidth above
 * CROW_THROTTLE_MAX_RATE), ENOMEM, or pthread_mutex_init's errno. */
struct crow_admit *crow_admit_new(const struct crow_admit_config *cfg);

/* Frees A.  Tickets (peers) still out become invalid.  NULL is ignored.  Can't fail. */
void crow_admit_destroy(struct crow_admit *a);

/* Asks to let one connection from SA in at NOW_NS (a monotonic clock below 2^63 ns, e.g.
 * CLOCK_MONOTONIC; threads may pass slightly different times).  IPv4-mapped IPv6 addresses
 * count as the IPv4 address.  AF_UNIX and other non-IP sources (and a NULL SA) are exempt
 * from the per-address limits: they count only against max_connections.  Checks, in order:
 * max_connections, max_per_address, the rate.  A refused attempt uses up nothing (a flood
 * from one source keeps its own rate at the limit and takes no room from other sources).
 * Returns CROW_ADMIT_OK (the connection is in: call crow_admit_leave when it closes) or the
 * refusal code (nothing changed but the counters).  Thread-safe. */
int crow_admit_enter(struct crow_admit *a, const struct sockaddr *sa, socklen_t salen,
                     uint64_t now_ns);

/* As crow_admit_enter, and on OK stores the address's entry in *PEER (NULL for an exempt
 * source) for crow_admit_leave_peer and the bandwidth functions; *PEER untouched otherwise. */
int crow_admit_enter_peer(struct crow_admit *a, const struct sockaddr *sa, socklen_t salen,
                          uint64_t now_ns, struct crow_admit_peer **peer);

/* Lets out a connection from SA that crow_admit_enter let in.  Returns 0, or -1 with errno
 * ENOENT when no connection from that address is in (nothing changed).  Thread-safe. */
int crow_admit_leave(struct crow_admit *a, const struct sockaddr *sa, socklen_t salen);

/* Lets out the connection crow_admit_enter_peer let in with PEER (NULL: an exempt one).
 * Call it exactly once per OK.  Can't fail.  Thread-safe. */
void crow_admit_leave_peer(struct crow_admit *a, struct crow_admit_peer *peer);

/* Directions for the bandwidth functions. */
#define CROW_ADMIT_IN  0
#define CROW_ADMIT_OUT 1

/* Per-connection bandwidth under the address's shared bucket: these run crow_throttle_take /
 * _refund / _wait_ns on B (the connection's own bucket, owned by the calling thread; NULL =
 * none) with PEER's bucket for direction DIR as its parent, under PEER's stripe lock.  With
 * PEER NULL or no per-address bandwidth they act on B alone (and with B NULL too, take returns
 * WANT and wait 0).  B's parent pointer is set by these calls; do not set it yourself.  Can't
 * fail.  Thread-safe for distinct B. */
size_t crow_admit_bw_take(struct crow_admit *a, struct crow_admit_peer *peer, int dir,
                          struct crow_throttle *b, uint64_t now_ns, size_t want);
void crow_admit_bw_refund(struct crow_admit *a, struct crow_admit_peer *peer, int dir,
                          struct crow_throttle *b, size_t n);
uint64_t crow_admit_bw_wait_ns(struct crow_admit *a, struct crow_admit_peer *peer, int dir,
                               struct crow_throttle *b, uint64_t now_ns, size_t want);

/* Returns 1 when A has per-address buckets for DIR, else 0 (A NULL: 0).  Can't fail. */
int crow_admit_bw_limited(const struct crow_admit *a, int dir);

/* Drops every idle entry whose rate state has recovered by NOW_NS (enter does this a little
 * at a time anyway).  Returns the number dropped.  Thread-safe.  Can't fail. */
size_t crow_admit_expire(struct crow_admit *a, uint64_t now_ns);

/* Fills *ST (counters read without a global lock: each is exact, their sum may be a moment
 * apart).  Can't fail. */
void crow_admit_stats(struct crow_admit *a, struct crow_admit_stats *st);

/* Returns a static name for a result code ("ok", "full", "per-address", "rate", "nomem",
 * "unknown").  Can't fail. */
const char *crow_admit_result_name(int result);

#endif
