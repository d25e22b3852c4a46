/* admit.c — admission control shared by every thread of a process.
 *
 * Design: the connections in are one atomic counter (a compare-and-swap against
 * max_connections, so the global check takes no lock).  Per-address state lives in a table
 * split into CROW_ADMIT_STRIPES stripes, each a c-core hash table (16-byte keys stored by
 * reference in the entry) under its own mutex; the stripe is picked by a randomly seeded hash
 * of the address, so one hot source contends with 1/16 of the others at most and the critical
 * section is a lookup and a few stores.  Addresses are normalised to 16 bytes: IPv4 as the
 * IPv4-mapped IPv6 address (so ::ffff:1.2.3.4 and 1.2.3.4 are one source), IPv6 masked to the
 * configured prefix.  AF_UNIX (and any non-IP) peers are exempt from the per-address limits:
 * they all look alike, and they are local.
 *
 * The rate limit is a token bucket of rate_count tokens refilled continuously at rate_count
 * per period, kept in GCRA form: one "theoretical arrival time" per address, TAT.  With
 * T = period / rate_count, a connection at NOW is allowed when max(TAT, NOW) - NOW <= period -
 * T, and then TAT = max(TAT, NOW) + T.  So a quiet address may open rate_count connections at
 * once, then one every T; a refused attempt does not move TAT, so a flooding source is still
 * let in at exactly its rate and never locks itself (or anybody else) out for longer.
 *
 * Memory is bounded: each stripe holds at most max_addresses / STRIPES entries.  An entry
 * whose last connection left goes to the tail of its stripe's idle list; entries at the head
 * whose TAT has passed (their rate state equals a fresh entry's) are freed a couple at a time
 * by each enter into that stripe, and all at once by crow_admit_expire.  A new address in a
 * full stripe evicts the oldest idle entry (forgetting its rate state: a flood of many
 * addresses can only make the rate limit more lenient, never lock out an address), and only
 * when every entry of the stripe has connections in is the newcomer refused (FULL).
 *
 * Per-address bandwidth buckets live in the entries; a connection's own bucket (owned by its
 * loop's thread) gets the entry's as its parent, and every take/refund/wait on that chain
 * runs under the stripe's lock, since several threads' connections share the parent. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "admit.h"
#include "hash.h"
#include "list.h"

#define KEYLEN 16
#define SWEEP_PER_ENTER 2
#define DEFAULT_ADDRESSES 65536

struct crow_admit_peer {
    uint8_t key[KEYLEN];
    struct crow_list_node idle;  /* in the stripe's idle list while active == 0 */
    uint32_t active;             /* connections in */
    uint32_t stripe;
    uint64_t tat;                /* GCRA: when the bucket is full again */
    struct crow_throttle bw[2];  /* per-address bandwidth, CROW_ADMIT_IN / _OUT */
};

struct stripe {
    pthread_mutex_t mu;
    struct crow_hash *h;
    struct crow_list idle;
    size_t count;
} __attribute__((aligned(64)));

struct crow_admit {
    struct crow_admit_config cfg;
    struct crow_allocator alloc;
    uint64_t seed;
    uint64_t emission;           /* T = period / rate_count (ns), at least 1 */
    uint64_t tolerance;          /* period - T */
    size_t stripe_cap;
    int bw_on[2];
    _Atomic uint64_t active, admitted, refused[5], addresses, expired, evicted;
    struct stripe s[CROW_ADMIT_STRIPES];
};

void crow_admit_config_init(struct crow_admit_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
}

const char *crow_admit_result_name(int r)
{
    switch (r) {
    case CROW_ADMIT_OK: return "ok";
    case CROW_ADMIT_FULL: return "full";
    case CROW_ADMIT_PER_ADDRESS: return "per-address";
    case CROW_ADMIT_RATE: return "rate";
    case CROW_ADMIT_NOMEM: return "nomem";
    default: return "unknown";
    }
}

/* Normalises SA into KEY.  Returns 1 for an IP source, 0 for an exempt one. */
static int make_key(const struct crow_admit *a, const struct sockaddr *sa, socklen_t sl,
                    uint8_t key[KEYLEN])
{
    if (!sa)
        return 0;
    if (sa->sa_family == AF_INET && sl >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const void *)sa;
        memset(key, 0, 10);
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &in->sin_addr, 4);
        return 1;
    }
    if (sa->sa_family == AF_INET6 && sl >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        memcpy(key, &in6->sin6_addr, KEYLEN);
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            return 1;
        unsigned bits = a->cfg.ipv6_prefix ? a->cfg.ipv6_prefix : 128;
        for (unsigned i = 0; i < KEYLEN; i++) {
            unsigned keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * i : 0;
            key[i] &= (uint8_t)(0xff00u >> keep);
        }
        return 1;
    }
    return 0;
}

static int global_enter(struct crow_admit *a)
{
    size_t max = a->cfg.max_connections;
    if (!max) {
        atomic_fetch_add(&a->active, 1);
        return 1;
    }
    uint64_t cur = atomic_load(&a->active);
    do {
        if (cur >= max)
            return 0;
    } while (!atomic_compare_exchange_weak(&a->active, &cur, cur + 1));
    return 1;
}

static void drop_entry(struct crow_admit *a, struct stripe *s, struct crow_admit_peer *e)
{
    crow_list_remove(&s->idle, &e->idle);
    crow_hash_del(s->h, e->key, KEYLEN, NULL);
    s->count--;
    atomic_fetch_sub(&a->addresses, 1);
    crow_free(&a->alloc, e, sizeof *e);
}

/* Frees up to BUDGET idle entries at the head of S whose rate state has recovered by NOW
 * (all of them for BUDGET 0).  Returns the number freed. */
static size_t sweep(struct crow_admit *a, struct stripe *s, uint64_t now, size_t budget)
{
    size_t n = 0;
    while (s->idle.first && (!budget || n < budget)) {
        struct crow_admit_peer *e = crow_list_entry(s->idle.first, struct crow_admit_peer, idle);
#ifndef CROW_PLANTED_BUG
        if (e->tat > now)
            break;
#endif
        /* Planted: frees idle entries whatever their rate state, forgetting recent arrivals. */
        drop_entry(a, s, e);
        n++;
    }
    if (n)
        atomic_fetch_add(&a->expired, n);
    return n;
}

static struct crow_admit_peer *new_entry(struct crow_admit *a, struct stripe *s,
                                         const uint8_t key[KEYLEN], uint64_t now, int *why)
{
    if (s->count >= a->stripe_cap) {
        if (!s->idle.first) {
            *why = CROW_ADMIT_FULL;
            return NULL;
        }
        drop_entry(a, s, crow_list_entry(s->idle.first, struct crow_admit_peer, idle));
        atomic_fetch_add(&a->evicted, 1);
    }
    struct crow_admit_peer *e = crow_alloc(&a->alloc, sizeof *e, 0);
    if (!e) {
        *why = CROW_ADMIT_NOMEM;
        return NULL;
    }
    memset(e, 0, sizeof *e);
    memcpy(e->key, key, KEYLEN);
    e->stripe = (uint32_t)(s - a->s);
    /* rates were checked by crow_admit_new: these can't fail */
    crow_throttle_init(&e->bw[0], a->cfg.bandwidth_in, 0, now);
    crow_throttle_init(&e->bw[1], a->cfg.bandwidth_out, 0, now);
    if (crow_hash_put(s->h, e->key, KEYLEN, e, NULL) < 0) {
        crow_free(&a->alloc, e, sizeof *e);
        *why = CROW_ADMIT_NOMEM;
        return NULL;
    }
    s->count++;
    atomic_fetch_add(&a->addresses, 1);
    crow_list_insert_tail(&s->idle, &e->idle);
    return e;
}

static struct stripe *stripe_of(struct crow_admit *a, const uint8_t key[KEYLEN])
{
    return &a->s[crow_hash_bytes(key, KEYLEN, a->seed) % CROW_ADMIT_STRIPES];
}

static int refuse(struct crow_admit *a, int why)
{
    atomic_fetch_add(&a->refused[why], 1);
    return why;
}

int crow_admit_enter_peer(struct crow_admit *a, const struct sockaddr *sa, socklen_t sl,
                          uint64_t now, struct crow_admit_peer **peer)
{
    uint8_t key[KEYLEN];
    int ip = make_key(a, sa, sl, key);
    if (!global_enter(a))
        return refuse(a, CROW_ADMIT_FULL);
    if (!ip) {
        atomic_fetch_add(&a->admitted, 1);
        if (peer)
            *peer = NULL;
        return CROW_ADMIT_OK;
    }
    struct stripe *s = stripe_of(a, key);
    int why = CROW_ADMIT_OK;
    pthread_mutex_lock(&s->mu);
    sweep(a, s, now, SWEEP_PER_ENTER);
    void *v;
    struct crow_admit_peer *e = crow_hash_get(s->h, key, KEYLEN, &v) == 1 ? v : NULL;
    if (!e)
        e = new_entry(a, s, key, now, &why);
    if (e && a->cfg.max_per_address && e->active >= a->cfg.max_per_address)
        why = CROW_ADMIT_PER_ADDRESS;
    if (e && why == CROW_ADMIT_OK && a->cfg.rate_count) {
        uint64_t tat = e->tat > now ? e->tat : now;
        if (tat - now > a->tolerance)
            why = CROW_ADMIT_RATE;
        else
            e->tat = tat + a->emission;
    }
    if (why == CROW_ADMIT_OK) {
        if (e->active++ == 0)
            crow_list_remove(&s->idle, &e->idle);
    }
    pthread_mutex_unlock(&s->mu);
    if (why != CROW_ADMIT_OK) {
        atomic_fetch_sub(&a->active, 1);
        return refuse(a, why);
    }
    atomic_fetch_add(&a->admitted, 1);
    if (peer)
        *peer = e;
    return CROW_ADMIT_OK;
}

int crow_admit_enter(struct crow_admit *a, const struct sockaddr *sa, socklen_t sl,
                     uint64_t now)
{
    return crow_admit_enter_peer(a, sa, sl, now, NULL);
}

/* Lets one connection of E out; S locked. */
static void entry_leave(struct stripe *s, struct crow_admit_peer *e)
{
    if (--e->active == 0)
        crow_list_insert_tail(&s->idle, &e->idle);
}

void crow_admit_leave_peer(struct crow_admit *a, struct crow_admit_peer *e)
{
    if (e) {
        struct stripe *s = &a->s[e->stripe];
        pthread_mutex_lock(&s->mu);
        entry_leave(s, e);
        pthread_mutex_unlock(&s->mu);
    }
    atomic_fetch_sub(&a->active, 1);
}

int crow_admit_leave(struct crow_admit *a, const struct sockaddr *sa, socklen_t sl)
{
    uint8_t key[KEYLEN];
    if (!make_key(a, sa, sl, key)) {
        /* exempt sources are only counted globally */
        uint64_t cur = atomic_load(&a->active);
        do {
            if (cur == 0) {
                errno = ENOENT;
                return -1;
            }
        } while (!atomic_compare_exchange_weak(&a->active, &cur, cur - 1));
        return 0;
    }
    struct stripe *s = stripe_of(a, key);
    void *v;
    pthread_mutex_lock(&s->mu);
    struct crow_admit_peer *e = crow_hash_get(s->h, key, KEYLEN, &v) == 1 ? v : NULL;
    if (!e || e->active == 0) {
        pthread_mutex_unlock(&s->mu);
        errno = ENOENT;
        return -1;
    }
    entry_leave(s, e);
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_sub(&a->active, 1);
    return 0;
}

/* ------------------------------------------------------------------ bandwidth */

int crow_admit_bw_limited(const struct crow_admit *a, int dir)
{
    return a && (dir == CROW_ADMIT_IN || dir == CROW_ADMIT_OUT) && a->bw_on[dir];
}

/* The stripe to lock and the chain's head for PEER/DIR/B, or NULL when no lock is needed. */
static struct stripe *chain(struct crow_admit *a, struct crow_admit_peer *e, int dir,
                            struct crow_throttle **b)
{
    if (!e || !crow_admit_bw_limited(a, dir)) {
        if (*b)
            (*b)->parent = NULL;
        return NULL;
    }
    if (*b)
        (*b)->parent = &e->bw[dir];
    else
        *b = &e->bw[dir];
    return &a->s[e->stripe];
}

size_t crow_admit_bw_take(struct crow_admit *a, struct crow_admit_peer *e, int dir,
                          struct crow_throttle *b, uint64_t now, size_t want)
{
    struct stripe *s = chain(a, e, dir, &b);
    if (!b)
        return want;
    if (!s)
        return crow_throttle_take(b, now, want);
    pthread_mutex_lock(&s->mu);
    size_t n = crow_throttle_take(b, now, want);
    pthread_mutex_unlock(&s->mu);
    return n;
}

void crow_admit_bw_refund(struct crow_admit *a, struct crow_admit_peer *e, int dir,
                          struct crow_throttle *b, size_t n)
{
    struct stripe *s = chain(a, e, dir, &b);
    if (!b || !n)
        return;
    if (!s) {
        crow_throttle_refund(b, n);
        return;
    }
    pthread_mutex_lock(&s->mu);
    crow_throttle_refund(b, n);
    pthread_mutex_unlock(&s->mu);
}

uint64_t crow_admit_bw_wait_ns(struct crow_admit *a, struct crow_admit_peer *e, int dir,
                               struct crow_throttle *b, uint64_t now, size_t want)
{
    struct stripe *s = chain(a, e, dir, &b);
    if (!b)
        return 0;
    if (!s)
        return crow_throttle_wait_ns(b, now, want);
    pthread_mutex_lock(&s->mu);
    uint64_t ns = crow_throttle_wait_ns(b, now, want);
    pthread_mutex_unlock(&s->mu);
    return ns;
}

/* ------------------------------------------------------------------ set-up */

size_t crow_admit_expire(struct crow_admit *a, uint64_t now)
{
    size_t n = 0;
    for (int i = 0; i < CROW_ADMIT_STRIPES; i++) {
        pthread_mutex_lock(&a->s[i].mu);
        n += sweep(a, &a->s[i], now, 0);
        pthread_mutex_unlock(&a->s[i].mu);
    }
    return n;
}

void crow_admit_stats(struct crow_admit *a, struct crow_admit_stats *st)
{
    st->active = atomic_load(&a->active);
    st->admitted = atomic_load(&a->admitted);
    st->refused_full = atomic_load(&a->refused[CROW_ADMIT_FULL]);
    st->refused_per_address = atomic_load(&a->refused[CROW_ADMIT_PER_ADDRESS]);
    st->refused_rate = atomic_load(&a->refused[CROW_ADMIT_RATE]);
    st->refused_nomem = atomic_load(&a->refused[CROW_ADMIT_NOMEM]);
    st->addresses = atomic_load(&a->addresses);
    st->expired = atomic_load(&a->expired);
    st->evicted = atomic_load(&a->evicted);
}

static uint64_t random_seed(const void *salt)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 32 ^ (uint64_t)(uintptr_t)salt;
    }
    return seed;
}

void crow_admit_destroy(struct crow_admit *a)
{
    if (!a)
        return;
    for (int i = 0; i < CROW_ADMIT_STRIPES; i++) {
        struct stripe *s = &a->s[i];
        if (!s->h)
            continue;
        struct crow_hash_iter it;
        struct crow_hash_entry he;
        crow_hash_iter_init(s->h, &it);
        while (crow_hash_iter_next(&it, &he))
            crow_free(&a->alloc, he.value, sizeof(struct crow_admit_peer));
        crow_hash_free(s->h);
        pthread_mutex_destroy(&s->mu);
    }
    struct crow_allocator al = a->alloc;
    crow_free(&al, a, sizeof *a);
}

struct crow_admit *crow_admit_new(const struct crow_admit_config *cfg)
{
    if (!cfg || (cfg->rate_count && (!cfg->rate_period_ns ||
                                     cfg->rate_period_ns > CROW_ADMIT_MAX_PERIOD)) ||
        cfg->ipv6_prefix > 128 || cfg->bandwidth_in > CROW_THROTTLE_MAX_RATE ||
        cfg->bandwidth_out > CROW_THROTTLE_MAX_RATE) {
        errno = EINVAL;
        return NULL;
    }
    struct crow_allocator al = cfg->allocator ? *cfg->allocator : crow_allocator_default;
    struct crow_admit *a = crow_alloc(&al, sizeof *a, 64);
    if (!a)
        return NULL;
    memset(a, 0, sizeof *a);
    a->cfg = *cfg;
    a->alloc = al;
    a->cfg.allocator = &a->alloc;
    a->seed = random_seed(a);
    if (cfg->rate_count) {
        a->emission = cfg->rate_period_ns / cfg->rate_count;
        if (!a->emission)
            a->emission = 1;
        a->tolerance = cfg->rate_period_ns > a->emission ? cfg->rate_period_ns - a->emission : 0;
    }
    size_t max = cfg->max_addresses ? cfg->max_addresses : DEFAULT_ADDRESSES;
    a->stripe_cap = (max + CROW_ADMIT_STRIPES - 1) / CROW_ADMIT_STRIPES;
    a->bw_on[CROW_ADMIT_IN] = cfg->bandwidth_in != 0;
    a->bw_on[CROW_ADMIT_OUT] = cfg->bandwidth_out != 0;
    struct crow_hash_options ho;
    memset(&ho, 0, sizeof ho);
    ho.kind = CROW_HASH_BYTES;
    ho.allocator = &a->alloc;
    for (int i = 0; i < CROW_ADMIT_STRIPES; i++) {
        struct stripe *s = &a->s[i];
        crow_list_init(&s->idle);
        if (!(s->h = crow_hash_new(&ho)))
            goto fail;
        int r = pthread_mutex_init(&s->mu, NULL);
        if (r) {
            crow_hash_free(s->h);
            s->h = NULL;
            errno = r;
            goto fail;
        }
    }
    return a;
fail: {
    int e = errno;
    crow_admit_destroy(a);
    errno = e;
    return NULL;
}
}
