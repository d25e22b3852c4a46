/* hash.c — open-addressing hash table with incremental growth and shrink.
 *
 * Design: linear probing over one array of slots, the state kept in the slot itself.  U64
 * slots are {key, value} (16 bytes, four to a 64-byte line): key 0 marks an empty slot and
 * key 1 a tombstone, so the entries for keys 0 and 1 live in two side slots in the table
 * header.  BYTES slots are {hash, key pointer, length, value} (32 bytes): a NULL pointer is
 * empty, a pointer to a private static a tombstone; the stored 64-bit hash is compared before
 * the key bytes and spares rehashing on resize.  A caller's hash (32 or 64 bits) is
 * multiplied by 2^64/phi and the top bits pick the slot; U64 tables by default mix the key
 * with one folded 128-bit multiply.  Deletion shifts later entries of the run back (no
 * tombstones) except where entries must not move: in the old table while resizing, and
 * anywhere while an iterator is live.
 *
 * U64 lookups are shaped for memory latency, which dominates once a table outgrows the cache:
 * a loop of independent lookups runs at the rate the CPU can overlap their cache misses, and
 * a branch that waits on a missed slot (a mispredicted "is this the key?") stalls it for the
 * whole latency.  So a probe compares the whole line of four slots without branching (SSE2),
 * and a bitmap with one bit per slot (empty or not, 1/128 of the table, so it stays cached)
 * says where the probe run ends: the number of lines to look at is known before the slots
 * arrive.  The common cases (a stable plain U64 table, no tombstone, no iterator) take small
 * fast paths in put and get that keep few instructions in flight per operation.
 *
 * Resizing is incremental, as in Redis' dict.c, but for open addressing: a new table is
 * allocated and cleared a chunk per operation (clearing 100s of MB at once would take 100s of
 * ms of page faults), then each put/del moves old slots across in probe order, starting at an
 * empty slot, leaving tombstones behind only until the probe run in progress ends, whose
 * slots are then emptied: a lookup of a key already moved stops at an empty old slot at once
 * instead of crossing the part already moved.  Lookups search both tables.  The work per
 * operation is `step` slots, raised to remaining/room when the table would otherwise run out
 * of free slots before the phase ends ("room" counts the inserts left before a table passes
 * 15/16 full), so no operation does more than a small multiple of `step`; the destination
 * lines of the entries being moved are prefetched a few entries ahead.  The old block is
 * handed back to the kernel 256 KiB per operation (madvise) before free(), as unmapping a
 * large touched block at once costs tens of ms.  A failed allocation defers the resize;
 * inserts succeed until the table reaches 15/16, then fail with ENOMEM.
 *
 * Iterators pause all resize work, so entries never move under them and deleting any entry
 * is safe; while one is live, inserts take only empty slots so a slot emptied during the
 * iteration is never reused.  Lookups never modify the table.  BYTES keys are stored by
 * reference unless CROW_HASH_COPY_KEYS. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "crow.h"
#include "hash.h"

#define K_EMPTY   0 /* U64 slot keys with a meaning; the real keys 0 and 1 go to side slots */
#define K_TOMB    1
#define MIN_SLOTS 16
#define GOLDEN    0x9E3779B97F4A7C15ull
#define NOT_FOUND ((size_t)-1)
#define DEFAULT_STEP 1024
#define ZERO_FACTOR  8             /* slots cleared per slot of step */
#define ZERO_MAX     2048          /* but at most this many (a few fresh pages, each a fault) */
#define RETIRE_MIN   (1u << 20)    /* smaller blocks are freed at once */
#define RETIRE_CHUNK (1u << 18)    /* bytes handed back per operation */

enum { STABLE, PREPARING, MIGRATING };

struct slot64 {
    uint64_t key;
    void *value;
};

struct slotb {
    uint64_t hash;
    const void *key; /* NULL empty, tomb_key a tombstone */
    size_t len;
    void *value;
};

static const char tomb_key[1], empty_key[1];

struct table {
    char *slots;
    uint64_t *occ; /* U64: bit I set when slot I is not empty (full or a tombstone) */
    void *block;
    size_t block_size;
    size_t size, mask, count, tombs;
    unsigned shift;
};

struct crow_hash {
    struct table t[2]; /* t[0] main (old while resizing), t[1] new */
    int state, kind;
    int plain_u64; /* a U64 table with the default hash: the inline fast paths apply */
    size_t fast_cap; /* put's fast path applies while t[0].count < fast_cap (see fast_update) */
    size_t zeroed, moved, mig_from, run_from; /* old slots done, counted from slot MIG_FROM on */
    size_t min_size, step, grow_at, shrink_at;
    double max_load;
    crow_hash_fn hash;
    crow_hash_eq_fn eq;
    void *ctx;
    uint64_t seed;
    unsigned flags, iterators;
    int default_alloc;
    struct crow_allocator a;
    void *retire_p;
    size_t retire_size, retire_done;
    size_t last_zeroed, last_moved, max_zeroed, max_moved, resizes, deferred;
    int special_used[2]; /* U64 keys 0 and 1 */
    void *special_value[2];
};

/* ------------------------------------------------------------------ default hashes */

static const uint64_t wy0 = 0xa0761d6478bd642full, wy1 = 0xe7037ed1a0b428dbull,
                      wy2 = 0x8ebc6af09c88c6e3ull, wy3 = 0x589965cc75374cc3ull;

static inline uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline void mum(uint64_t *a, uint64_t *b)
{
    __uint128_t r = (__uint128_t)*a * *b;
    *a = (uint64_t)r;
    *b = (uint64_t)(r >> 64);
}

static inline uint64_t mix(uint64_t a, uint64_t b)
{
    mum(&a, &b);
    return a ^ b;
}

uint64_t crow_hash_bytes(const void *key, size_t len, uint64_t seed)
{
    const uint8_t *p = key;
    uint64_t a, b;
    seed ^= mix(seed ^ wy0, wy1);
    if (CROW_LIKELY(len <= 16)) {
        if (len >= 4) {
            size_t d = (len >> 3) << 2;
            a = (rd32(p) << 32) | rd32(p + d);
            b = (rd32(p + len - 4) << 32) | rd32(p + len - 4 - d);
        } else if (len > 0) {
            a = ((uint64_t)p[0] << 16) | ((uint64_t)p[len >> 1] << 8) | p[len - 1];
            b = 0;
        } else {
            a = b = 0;
        }
    } else {
        size_t i = len;
        if (i > 48) {
            uint64_t s1 = seed, s2 = seed;
            do {
                seed = mix(rd64(p) ^ wy1, rd64(p + 8) ^ seed);
                s1 = mix(rd64(p + 16) ^ wy2, rd64(p + 24) ^ s1);
                s2 = mix(rd64(p + 32) ^ wy3, rd64(p + 40) ^ s2);
                p += 48;
                i -= 48;
            } while (i > 48);
            seed ^= s1 ^ s2;
        }
        while (i > 16) {
            seed = mix(rd64(p) ^ wy1, rd64(p + 8) ^ seed);
            i -= 16;
            p += 16;
        }
        a = rd64(p + i - 16);
        b = rd64(p + i - 8);
    }
    a ^= wy1;
    b ^= seed;
    mum(&a, &b);
    return mix(a ^ wy0 ^ len, b ^ wy1);
}

static inline uint64_t splitmix(uint64_t key, uint64_t seed)
{
    uint64_t z = key ^ seed;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t crow_hash_u64(uint64_t key, uint64_t seed)
{
    return splitmix(key, seed);
}

/* What U64 tables use by default: one 128-bit multiply of the seeded key, folded (wyhash's
 * mixer).  Half the latency and instructions of splitmix, which matters when a caller's loop
 * overlaps many lookups' cache misses; every output bit depends on every key bit. */
static inline uint64_t mix_u64(uint64_t key, uint64_t seed)
{
    return mix(key ^ seed, wy1);
}

/* ------------------------------------------------------------------ helpers */

static inline uint64_t hash_u64(const struct crow_hash *h, uint64_t k)
{
    /* splitmix's output is already mixed through all 64 bits; a caller's hash may be 32
     * bits or weak, so it is spread by the multiply. */
    return h->hash ? h->hash(&k, 8, h->ctx) * GOLDEN : mix_u64(k, h->seed);
}

static inline uint64_t hash_bytes_raw(const struct crow_hash *h, const void *k, size_t len)
{
    return h->hash ? h->hash(k, len, h->ctx) : crow_hash_bytes(k, len, h->seed);
}

static inline size_t slot_stride(int kind)
{
    return kind == CROW_HASH_U64 ? sizeof(struct slot64) : sizeof(struct slotb);
}

static inline struct slot64 *s64(const struct table *t) { return (struct slot64 *)(void *)t->slots; }
static inline struct slotb *sb(const struct table *t) { return (struct slotb *)(void *)t->slots; }

static inline int slot_full(const struct crow_hash *h, const struct table *t, size_t i)
{
    if (h->kind == CROW_HASH_U64)
        return s64(t)[i].key > K_TOMB;
    const void *k = sb(t)[i].key;
    return k != NULL && k != tomb_key;
}

static inline int slot_empty(const struct crow_hash *h, const struct table *t, size_t i)
{
    return h->kind == CROW_HASH_U64 ? s64(t)[i].key == K_EMPTY : sb(t)[i].key == NULL;
}

static inline void slot_set_tomb(const struct crow_hash *h, struct table *t, size_t i)
{
    if (h->kind == CROW_HASH_U64)
        s64(t)[i].key = K_TOMB;
    else
        sb(t)[i].key = tomb_key;
}

static inline void occ_set(struct table *t, size_t i) { t->occ[i >> 6] |= (uint64_t)1 << (i & 63); }
static inline void occ_clear(struct table *t, size_t i) { t->occ[i >> 6] &= ~((uint64_t)1 << (i & 63)); }

static inline void slot_set_empty(const struct crow_hash *h, struct table *t, size_t i)
{
    if (h->kind == CROW_HASH_U64) {
        s64(t)[i].key = K_EMPTY;
        occ_clear(t, i);
    } else {
        sb(t)[i].key = NULL;
    }
}

/* The mixed hash of the full slot I (recomputed for integer keys). */
static inline uint64_t slot_mixed(const struct crow_hash *h, const struct table *t, size_t i)
{
    if (h->kind == CROW_HASH_U64)
        return hash_u64(h, s64(t)[i].key);
    return sb(t)[i].hash * GOLDEN;
}

static inline size_t table_cap(size_t size) { return size - size / 16; }

static size_t fit(size_t n, double load)
{
    size_t s = MIN_SLOTS;
    while ((double)s * load < (double)n && s < ((size_t)1 << 62))
        s <<= 1;
    return s;
}

static void set_limits(struct crow_hash *h)
{
    size_t s = h->t[0].size;
    h->grow_at = (size_t)((double)s * h->max_load);
    h->shrink_at = s > h->min_size ? (size_t)((double)s * h->max_load / 8) : 0;
}

/* Bytes of a U64 table's occupancy bitmap (whole words, at least one). */
static inline size_t occ_bytes(size_t size) { return size < 64 ? 8 : size / 8; }

static int table_alloc(struct crow_hash *h, struct table *t, size_t size)
{
    size_t stride = slot_stride(h->kind);
    if (size > SIZE_MAX / stride - 1) {
        errno = ENOMEM;
        return -1;
    }
    size_t bytes = size * stride + (h->kind == CROW_HASH_U64 ? occ_bytes(size) : 0);
    void *p = crow_alloc(&h->a, bytes, 64);
    if (!p)
        return -1;
    memset(t, 0, sizeof *t);
    t->block = p;
    t->block_size = bytes;
    t->slots = p;
    if (h->kind == CROW_HASH_U64)
        t->occ = (uint64_t *)(void *)(t->slots + size * stride);
    t->size = size;
    t->mask = size - 1;
    t->shift = 64 - (unsigned)__builtin_ctzll(size);
    return 0;
}

static void retire_finish(struct crow_hash *h)
{
    if (h->retire_p)
        crow_free(&h->a, h->retire_p, h->retire_size);
    h->retire_p = NULL;
}

/* Hands the old block back a chunk at a time; see the design note. */
static void retire_block(struct crow_hash *h, void *p, size_t size)
{
    retire_finish(h);
    if (!h->default_alloc || size < RETIRE_MIN) {
        crow_free(&h->a, p, size);
        return;
    }
    h->retire_p = p;
    h->retire_size = size;
    h->retire_done = 0;
}

static void retire_step(struct crow_hash *h)
{
    if (!h->retire_p)
        return;
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t base = ((uintptr_t)h->retire_p + pg - 1) & ~(uintptr_t)(pg - 1);
    uintptr_t end = ((uintptr_t)h->retire_p + h->retire_size) & ~(uintptr_t)(pg - 1);
    uintptr_t from = base + h->retire_done;
    if (from < end) {
        size_t n = end - from < RETIRE_CHUNK ? end - from : RETIRE_CHUNK;
        madvise((void *)from, n, MADV_DONTNEED);
        h->retire_done += n;
        if (from + n < end)
            return;
    }
    retire_finish(h);
}

/* Inserts left before the phase in progress must be finished (see the design note). */
static long room(const struct crow_hash *h)
{
    const struct table *a = &h->t[0], *b = &h->t[1];
    long ra = (long)table_cap(a->size) - (long)a->count - (long)a->tombs;
    if (h->state == STABLE)
        return ra;
    if (h->state == PREPARING) {
        long rb = (long)(table_cap(b->size) - b->size / 4) - (long)a->count;
        return ra < rb ? ra : rb;
    }
    return (long)table_cap(b->size) - (long)b->count - (long)b->tombs - (long)a->count;
}

static int start_resize(struct crow_hash *h, size_t size)
{
    if (table_alloc(h, &h->t[1], size) < 0) {
        h->deferred++;
        return -1;
    }
    h->state = PREPARING;
    h->zeroed = 0;
    return 0;
}

static void resize_to(struct crow_hash *h, size_t n)
{
    size_t size = h->t[0].size;
    if (n < size / 8)
        n = size / 8;
    if (n < h->min_size)
        n = h->min_size;
    int saved = errno;
    start_resize(h, n);
    errno = saved;
}

static void maybe_grow(struct crow_hash *h)
{
    struct table *a = &h->t[0];
    if (a->count + a->tombs + 1 > h->grow_at)
        resize_to(h, fit(a->count, h->max_load / 2));
}

static void maybe_shrink(struct crow_hash *h)
{
    struct table *a = &h->t[0];
    if (a->count < h->shrink_at && a->size > h->min_size) {
        size_t n = fit(a->count, h->max_load / 2);
        if (n < a->size)
            resize_to(h, n);
    }
}

/* Probing a U64 table looks at a line of 4 slots at once (one cache line when the table is
 * 64-byte aligned) without a branch per slot: a hit or miss in the home line then costs one
 * well-predicted branch, so the CPU runs on into the next operation while this one's cache
 * miss is outstanding (a mispredicted branch on the loaded key would stall it for the whole
 * memory latency).  The masks have bit 2J set for slot J; bit 2J+1 is clear. */
#if defined(__SSE2__)
static inline unsigned group_match(const struct slot64 *q, uint64_t k, uint64_t ignore)
{
    __m128i kk = _mm_set1_epi64x((long long)k), ig = _mm_set1_epi64x((long long)~ignore);
    __m128i a = _mm_unpacklo_epi64(_mm_loadu_si128((const __m128i *)(const void *)&q[0]),
                                   _mm_loadu_si128((const __m128i *)(const void *)&q[1]));
    __m128i b = _mm_unpacklo_epi64(_mm_loadu_si128((const __m128i *)(const void *)&q[2]),
                                   _mm_loadu_si128((const __m128i *)(const void *)&q[3]));
    a = _mm_and_si128(a, ig);
    b = _mm_and_si128(b, ig);
    unsigned m = (unsigned)_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(a, kk))) |
                 (unsigned)_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(b, kk))) << 4;
    return m & (m >> 1) & 0x55u;
}
#else
static inline unsigned group_match(const struct slot64 *q, uint64_t k, uint64_t ignore)
{
    unsigned m = 0;
    for (int j = 0; j < 4; j++)
        m |= (unsigned)((q[j].key & ~ignore) == k) << (2 * j);
    return m;
}
#endif

/* Slot J of the line holds K. */
static inline unsigned group_eq(const struct slot64 *q, uint64_t k) { return group_match(q, k, 0); }

/* Slot J is empty, or (REUSE) a tombstone. */
static inline unsigned group_free(const struct slot64 *q, int reuse)
{
    return group_match(q, K_EMPTY, reuse ? K_TOMB : 0); /* K_TOMB == 1: key & ~1 == 0 */
}

/* First slot from M's home that is empty (or a tombstone, when REUSE).  One always exists:
 * tables stay below 15/16 full counting tombstones. */
static inline __attribute__((always_inline)) size_t free_slot(const struct crow_hash *h, const struct table *t, uint64_t m, int reuse)
{
    size_t i = (size_t)(m >> t->shift);
    if (h->kind == CROW_HASH_U64) {
        /* Tables have at least MIN_SLOTS (a multiple of 4) slots, aligned to 64 bytes. */
        const struct slot64 *s = s64(t);
        size_t g = i & ~(size_t)3;
        unsigned c = group_free(s + g, reuse) & (~0u << 2 * (i & 3));
        while (CROW_UNLIKELY(!c)) {
            g = (g + 4) & t->mask;
            c = group_free(s + g, reuse);
        }
        return g + (size_t)(__builtin_ctz(c) >> 1);
    }
    for (;;) {
        if (slot_empty(h, t, i) || (reuse && !slot_full(h, t, i)))
            return i;
        i = (i + 1) & t->mask;
    }
}

static inline void move_slot(const struct crow_hash *h, struct table *dst, size_t j, const struct table *src,
                             size_t i)
{
    size_t st = slot_stride(h->kind);
    memcpy(dst->slots + j * st, src->slots + i * st, st);
    if (h->kind == CROW_HASH_U64)
        occ_set(dst, j);
}

/* The old slot N places on from MIG_FROM. */
static inline size_t old_slot(const struct crow_hash *h, size_t n) { return (h->mig_from + n) & h->t[0].mask; }

/* Moves WORK old slots across in probe order from MIG_FROM (an empty slot), leaving
 * tombstones so the probe run in progress stays intact, and empties each run's slots once
 * the run's end is reached: the old table then holds only tombstones of the current run, so
 * a lookup there for a key already moved stops at an empty slot rather than crossing a
 * stretch of tombstones as long as the part already moved. */
/* migrate for U64 tables, written out: slots [START, END) of the walk.  The destination
 * lines are random, so each is asked for AHEAD entries before it is needed, and its hash kept
 * in a ring meanwhile rather than computed twice. */
static void migrate64(struct crow_hash *h, size_t start, size_t end)
{
    enum { AHEAD = 16 };
    struct table *a = &h->t[0], *b = &h->t[1];
    struct slot64 *as = s64(a), *bs = s64(b);
    size_t amask = a->mask, from = h->mig_from, moved = 0, freed = 0;
    unsigned bshift = b->shift;
    uint64_t ring[AHEAD] = {0};
    for (size_t n = start; n < end && n < start + AHEAD; n++) {
        uint64_t k = as[(from + n) & amask].key;
        if (k > K_TOMB) {
            ring[n % AHEAD] = hash_u64(h, k);
            __builtin_prefetch(&bs[ring[n % AHEAD] >> bshift], 1);
        }
    }
    for (size_t n = start; n < end; n++) {
        size_t i = (from + n) & amask;
        uint64_t k = as[i].key;
        uint64_t m = ring[n % AHEAD]; /* set when slot N is full */
        if (n + AHEAD < end) {
            uint64_t k2 = as[(from + n + AHEAD) & amask].key;
            if (k2 > K_TOMB) {
                uint64_t m2 = hash_u64(h, k2);
                ring[(n + AHEAD) % AHEAD] = m2;
                __builtin_prefetch(&bs[m2 >> bshift], 1);
            }
        }
        if (k > K_TOMB) {
            size_t j = free_slot(h, b, m, 1);
            b->tombs -= bs[j].key == K_TOMB;
            bs[j] = as[i];
            occ_set(b, j);
            as[i].key = K_TOMB;
            moved++;
        } else if (k == K_EMPTY) {
            for (size_t r = h->run_from; r < n; r++) {
                size_t q = (from + r) & amask;
                if (as[q].key != K_EMPTY) {
                    as[q].key = K_EMPTY;
                    occ_clear(a, q);
                    freed++;
                }
            }
            h->run_from = n + 1;
        }
    }
    b->count += moved;
    a->count -= moved;
    a->tombs = a->tombs + moved - freed;
}

static void migrate(struct crow_hash *h, size_t work)
{
    struct table *a = &h->t[0], *b = &h->t[1];
    size_t start = h->moved, end = a->size - start > work ? start + work : a->size;
    if (h->kind == CROW_HASH_U64) {
        migrate64(h, start, end);
    } else {
        for (size_t n = start; n < end; n++) {
            size_t i = old_slot(h, n);
            if (slot_full(h, a, i)) {
                size_t j = free_slot(h, b, slot_mixed(h, a, i), 1);
                if (!slot_empty(h, b, j))
                    b->tombs--;
                move_slot(h, b, j, a, i);
                b->count++;
                slot_set_tomb(h, a, i);
                a->count--;
                a->tombs++;
            } else if (slot_empty(h, a, i)) {
                for (size_t r = h->run_from; r < n; r++) {
                    size_t k = old_slot(h, r);
                    if (!slot_empty(h, a, k)) {
                        slot_set_empty(h, a, k);
                        a->tombs--;
                    }
                }
                h->run_from = n + 1;
            }
        }
    }
    h->moved = end;
    h->last_moved += end - start;
    if (end == a->size) {
        retire_block(h, a->block, a->block_size);
        *a = *b;
        memset(b, 0, sizeof *b);
        h->state = STABLE;
        h->resizes++;
        set_limits(h);
    }
}

/* One operation's share of resize work (all of it when room has run out). */
static void resize_step(struct crow_hash *h, size_t step)
{
    long r = room(h);
    if (h->state == PREPARING) {
        struct table *b = &h->t[1];
        size_t rem = b->size - h->zeroed;
        size_t w = r < 1 ? rem : (rem + (size_t)r - 1) / (size_t)r;
        size_t least = step * ZERO_FACTOR < ZERO_MAX ? step * ZERO_FACTOR : ZERO_MAX;
        if (w < least)
            w = least;
        if (w > rem)
            w = rem;
        size_t st = slot_stride(h->kind);
        memset(b->slots + h->zeroed * st, 0, w * st);
        if (b->occ) { /* and the bitmap's bytes for these slots */
            size_t from = h->zeroed / 8, to = (h->zeroed + w + 7) / 8;
            if (to > occ_bytes(b->size) || h->zeroed + w == b->size)
                to = occ_bytes(b->size);
            memset((char *)b->occ + from, 0, to - from);
        }
        h->zeroed += w;
        h->last_zeroed += w;
        if (h->zeroed == b->size) {
            h->state = MIGRATING;
            h->moved = 0;
            h->mig_from = h->run_from = 0;
            while (!slot_empty(h, &h->t[0], h->mig_from))
                h->mig_from++; /* one exists: tables stay below 15/16 full */
        }
    } else if (h->state == MIGRATING) {
        size_t rem = h->t[0].size - h->moved;
        size_t w = r < 1 ? rem : (rem + (size_t)r - 1) / (size_t)r;
        migrate(h, w > step ? w : step);
    }
}

static void note_work(struct crow_hash *h)
{
    if (h->last_zeroed > h->max_zeroed)
        h->max_zeroed = h->last_zeroed;
    if (h->last_moved > h->max_moved)
        h->max_moved = h->last_moved;
}

/* The work a put (INSERTING) or del does before its own job. */
static void prework(struct crow_hash *h, int inserting)
{
    h->last_zeroed = h->last_moved = 0;
    if (CROW_UNLIKELY(h->retire_p != NULL))
        retire_step(h);
    if (h->iterators)
        return;
    if (CROW_LIKELY(h->state == STABLE)) {
        if (!inserting || h->t[0].count + h->t[0].tombs + 1 <= h->grow_at)
            return;
        maybe_grow(h);
    }
    if (h->state != STABLE)
        resize_step(h, h->step);
    /* Room runs out only if inserts went on while an iterator held resizing back. */
    for (int n = 0; inserting && n < 4 && room(h) < 1; n++) {
        if (h->state == STABLE) {
            maybe_grow(h);
            if (h->state == STABLE)
                break;
        }
        resize_step(h, h->step);
    }
    note_work(h);
}

/* ------------------------------------------------------------------ lookup */

static inline size_t run_end(const struct table *t, size_t i);

static inline __attribute__((always_inline)) size_t find64(const struct table *t, uint64_t m, uint64_t k)
{
    size_t i = (size_t)(m >> t->shift), g = i & ~(size_t)3;
    const struct slot64 *s = s64(t);
    /* A key sits at most once in a table, so a match anywhere in the line is the entry; an
     * empty slot at or after the home slot ends the probe run. */
    unsigned eq = group_eq(s + g, k);
    if (CROW_LIKELY(eq))
        return g + (size_t)(__builtin_ctz(eq) >> 1);
    size_t end = t->size >= 64 ? run_end(t, i) : NOT_FOUND;
    if (CROW_LIKELY(end != NOT_FOUND)) {
        for (g += 4; g < end; g += 4)
            if ((eq = group_eq(s + g, k)))
                return g + (size_t)(__builtin_ctz(eq) >> 1);
        return NOT_FOUND;
    }
    if (group_eq(s + g, K_EMPTY) & (~0u << 2 * (i & 3)))
        return NOT_FOUND;
    for (;;) {
        g = (g + 4) & t->mask;
        eq = group_eq(s + g, k);
        if (eq)
            return g + (size_t)(__builtin_ctz(eq) >> 1);
        if (group_eq(s + g, K_EMPTY))
            return NOT_FOUND;
    }
}

static inline size_t findb(const struct crow_hash *h, const struct table *t, uint64_t hv, const void *k,
                           size_t len)
{
    size_t i = (size_t)((hv * GOLDEN) >> t->shift);
    const struct slotb *s = sb(t);
    for (;;) {
        const void *sk = s[i].key;
        if (s[i].hash == hv && sk != tomb_key && sk != NULL) {
            if (h->eq ? h->eq(k, len, sk, s[i].len, h->ctx)
                      : s[i].len == len && (len == 0 || memcmp(sk, k, len) == 0))
                return i;
        } else if (sk == NULL) {
            return NOT_FOUND;
        }
        i = (i + 1) & t->mask;
    }
}

/* Finds a key (U64: above K_TOMB) in either table: returns the slot and sets *TAB, or
 * NOT_FOUND. */
static inline size_t locate64(const struct crow_hash *h, uint64_t m, uint64_t k, int *tab)
{
    size_t i = NOT_FOUND;
    if (CROW_LIKELY(h->t[0].count))
        i = find64(&h->t[0], m, k);
    *tab = 0;
    if (i == NOT_FOUND && h->state == MIGRATING) {
        i = find64(&h->t[1], m, k);
        *tab = 1;
    }
    return i;
}

static inline size_t locateb(const struct crow_hash *h, uint64_t hv, const void *k, size_t len, int *tab)
{
    size_t i = NOT_FOUND;
    if (CROW_LIKELY(h->t[0].count))
        i = findb(h, &h->t[0], hv, k, len);
    *tab = 0;
    if (i == NOT_FOUND && h->state == MIGRATING) {
        i = findb(h, &h->t[1], hv, k, len);
        *tab = 1;
    }
    return i;
}

/* ------------------------------------------------------------------ delete */

static void free_key(struct crow_hash *h, const struct table *t, size_t i)
{
    if (h->flags & CROW_HASH_COPY_KEYS) {
        struct slotb *s = &sb(t)[i];
        crow_free(&h->a, (void *)s->key, s->len ? s->len : 1);
    }
}

/* Empties slot I, moving back later entries of its run that would become unreachable. */
static void backshift(struct crow_hash *h, struct table *t, size_t i)
{
    size_t hole = i, j = i;
    for (;;) {
        j = (j + 1) & t->mask;
        if (slot_empty(h, t, j))
            break;
        if (!slot_full(h, t, j))
            continue;
        size_t home = (size_t)(slot_mixed(h, t, j) >> t->shift);
        if (((j - home) & t->mask) >= ((j - hole) & t->mask)) {
            move_slot(h, t, hole, t, j);
            hole = j;
        }
    }
    slot_set_empty(h, t, hole);
}

static void remove_at(struct crow_hash *h, int tab, size_t i)
{
    struct table *t = &h->t[tab];
    free_key(h, t, i);
    t->count--;
#ifdef CROW_PLANTED_BUG
    /* Planted: "the old table is being drained anyway", so its slot is simply cleared,
     * cutting the probe runs of entries after it that have not moved yet. */
    if (tab == 0 && h->state == MIGRATING && !h->iterators) {
        slot_set_empty(h, t, i);
        return;
    }
#endif
    if (h->iterators || (tab == 0 && h->state == MIGRATING)) {
        slot_set_tomb(h, t, i);
        t->tombs++;
    } else {
        backshift(h, t, i);
    }
}

/* ------------------------------------------------------------------ insert */

/* Picks the slot a new key goes to; returns NOT_FOUND with errno when there is no room. */
static size_t insert_slot(struct crow_hash *h, uint64_t m, struct table **tp)
{
    struct table *t = h->state == MIGRATING ? &h->t[1] : &h->t[0];
    size_t i = free_slot(h, t, m, h->iterators == 0);
    int tomb = !slot_empty(h, t, i);
    if ((!tomb || h->state == PREPARING) && CROW_UNLIKELY(room(h) < 1)) {
        errno = h->iterators ? EBUSY : ENOMEM;
        return NOT_FOUND;
    }
    if (tomb)
        t->tombs--; /* the caller fills it */
    t->count++;
    *tp = t;
    return i;
}

/* Sets FAST_CAP: the count below which crow_hash_put_u64's fast path may insert, 0 when it
 * must not (not a plain U64 table, resizing, retiring, iterators live, tombstones, or a table
 * too small for the bitmap test).  Called after every operation that may change any of these. */
static void fast_update(struct crow_hash *h)
{
    const struct table *t = &h->t[0];
    int ok = h->plain_u64 && h->state == STABLE && !h->retire_p && !h->iterators && !t->tombs && t->size >= 64;
    h->fast_cap = ok ? h->grow_at : 0;
}

static int put_u64_general(struct crow_hash *h, uint64_t key, void *value, void **old)
{
    if (CROW_UNLIKELY(h->kind != CROW_HASH_U64)) {
        errno = EINVAL;
        return -1;
    }
    if (CROW_UNLIKELY(key <= K_TOMB)) {
        int had = h->special_used[key];
        if (had && old)
            *old = h->special_value[key];
        h->special_used[key] = 1;
        h->special_value[key] = value;
        return !had;
    }
    prework(h, 1);
    uint64_t m = hash_u64(h, key);
    int tab;
    size_t i = locate64(h, m, key, &tab);
    if (i != NOT_FOUND) {
        struct slot64 *s = &s64(&h->t[tab])[i];
        if (old)
            *old = s->value;
        s->value = value;
        return 0;
    }
    struct table *t;
    i = insert_slot(h, m, &t);
    if (i == NOT_FOUND)
        return -1;
    s64(t)[i].key = key;
    s64(t)[i].value = value;
    occ_set(t, i);
    return 1;
}

static int get_u64_slow(const struct crow_hash *h, uint64_t key, void **value);

/* The common case of a U64 table with the default hash, kept small so a caller's loop of
 * independent operations overlaps their cache misses: a stable table with no resize,
 * retirement or iterator pending and room below the growth limit.  Everything else takes
 * the general path, which does the same plus the resize work. */
static __attribute__((noinline)) int put_u64_slow(struct crow_hash *h, uint64_t key, void *value, void **old)
{
    int r = put_u64_general(h, key, value, old);
    fast_update(h);
    return r;
}

/* The end of the probe run from slot I, from the occupancy bitmap alone (which stays in
 * cache when the slots do not): the first empty slot at or after I, or NOT_FOUND when it is
 * not within I's 64-slot word.  Deciding from the bitmap how many lines to look at means no
 * branch waits for a slot's cache miss.  Needs a table of at least 64 slots. */
static inline size_t run_end(const struct table *t, size_t i)
{
    uint64_t empty = ~(t->occ[i >> 6] >> (i & 63));
    size_t d = empty ? (size_t)__builtin_ctzll(empty) : 64;
    return d < 64 - (i & 63) ? i + d : NOT_FOUND;
}

/* The common case of a U64 table with the default hash, kept small so a caller's loop of
 * independent operations overlaps their cache misses: a stable table of 64 slots or more
 * with no tombstone, and no resize, retirement or iterator pending, and room below the growth
 * limit.  Everything else takes the general path, which does the same plus the resize work. */
int crow_hash_put_u64(struct crow_hash *h, uint64_t key, void *value, void **old)
{
    struct table *t = &h->t[0];
    if (CROW_LIKELY(key > K_TOMB && t->count < h->fast_cap)) {
        size_t i = (size_t)(mix_u64(key, h->seed) >> t->shift), g = i & ~(size_t)3;
        size_t end = run_end(t, i);
        struct slot64 *s = s64(t);
        unsigned eq = group_eq(s + g, key);
        if (CROW_LIKELY(end != NOT_FOUND)) {
            for (size_t l = g + 4; !eq && l < end; l += 4) {
                eq = group_eq(s + l, key);
                g = l;
            }
            h->last_zeroed = h->last_moved = 0;
            if (eq) {
                struct slot64 *q = s + g + (__builtin_ctz(eq) >> 1);
                if (old)
                    *old = q->value;
                q->value = value;
                return 0;
            }
            /* No tombstones: the run's end is the first free slot. */
            s[end].key = key;
            s[end].value = value;
            occ_set(t, end);
            t->count++;
            return 1;
        }
    }
    return put_u64_slow(h, key, value, old);
}

/* crow_hash_get_u64 when the key is not in its home line: the rest of the probe run, ended by
 * the bitmap, in a stable (or preparing) table; everything else goes the general way. */
static __attribute__((noinline)) int get_u64_rest(const struct crow_hash *h, uint64_t key, void **value)
{
    const struct table *t = &h->t[0];
    size_t i = (size_t)(mix_u64(key, h->seed) >> t->shift), g = i & ~(size_t)3, end;
    if (h->plain_u64 && key > K_TOMB && h->state != MIGRATING && t->size >= 64 &&
        (end = run_end(t, i)) != NOT_FOUND) {
        const struct slot64 *s = s64(t);
        for (size_t l = g + 4; l < end; l += 4) {
            unsigned eq = group_eq(s + l, key);
            if (eq) {
                if (value)
                    *value = s[l + (__builtin_ctz(eq) >> 1)].value;
                return 1;
            }
        }
        return 0;
    }
    return get_u64_slow(h, key, value);
}

int crow_hash_get_u64(const struct crow_hash *h, uint64_t key, void **value)
{
    /* Only the home line here, so a hit runs few instructions; a key 0 or 1 (side slots)
     * would match empty or deleted slots, so it never counts as found here. */
    const struct table *t = &h->t[0];
    size_t g = (size_t)(mix_u64(key, h->seed) >> t->shift) & ~(size_t)3;
    const struct slot64 *q = s64(t) + g;
    unsigned eq = group_eq(q, key);
    if (CROW_LIKELY(eq && h->plain_u64 && key > K_TOMB)) {
        if (value)
            *value = q[__builtin_ctz(eq) >> 1].value;
        return 1;
    }
    return get_u64_rest(h, key, value);
}

int crow_hash_put(struct crow_hash *h, const void *key, size_t len, void *value, void **old)
{
    if (CROW_UNLIKELY(h->kind != CROW_HASH_BYTES)) {
        errno = EINVAL;
        return -1;
    }
    prework(h, 1);
    uint64_t hv = hash_bytes_raw(h, key, len);
    int tab;
    size_t i = locateb(h, hv, key, len, &tab);
    if (i != NOT_FOUND) {
        struct slotb *s = &sb(&h->t[tab])[i];
        if (old)
            *old = s->value;
        s->value = value;
        return 0;
    }
    const void *stored = key;
    if (h->flags & CROW_HASH_COPY_KEYS) {
        void *copy = crow_alloc(&h->a, len ? len : 1, 1);
        if (!copy)
            return -1;
        if (len)
            memcpy(copy, key, len);
        stored = copy;
    } else if (!key || key == tomb_key) {
        stored = empty_key; /* only possible for LEN 0: NULL and tomb_key mark free slots */
    }
    struct table *t;
    i = insert_slot(h, hv * GOLDEN, &t);
    if (i == NOT_FOUND) {
        if (stored != key && stored != empty_key)
            crow_free(&h->a, (void *)stored, len ? len : 1);
        return -1;
    }
    struct slotb *s = &sb(t)[i];
    s->hash = hv;
    s->key = stored;
    s->len = len;
    s->value = value;
    return 1;
}

static __attribute__((noinline)) int get_u64_slow(const struct crow_hash *h, uint64_t key, void **value)
{
    if (CROW_UNLIKELY(h->kind != CROW_HASH_U64)) {
        errno = EINVAL;
        return -1;
    }
    if (CROW_UNLIKELY(key <= K_TOMB)) {
        if (h->special_used[key] && value)
            *value = h->special_value[key];
        return h->special_used[key];
    }
    int tab;
    size_t i = locate64(h, hash_u64(h, key), key, &tab);
    if (i == NOT_FOUND)
        return 0;
    if (value)
        *value = s64(&h->t[tab])[i].value;
    return 1;
}

int crow_hash_get(const struct crow_hash *h, const void *key, size_t len, void **value)
{
    if (CROW_UNLIKELY(h->kind != CROW_HASH_BYTES)) {
        errno = EINVAL;
        return -1;
    }
    int tab;
    size_t i = locateb(h, hash_bytes_raw(h, key, len), key, len, &tab);
    if (i == NOT_FOUND)
        return 0;
    if (value)
        *value = sb(&h->t[tab])[i].value;
    return 1;
}

static void after_delete(struct crow_hash *h)
{
    if (!h->iterators && h->state == STABLE) {
        maybe_shrink(h);
        if (h->state == STABLE)
            maybe_grow(h); /* tombstones left by an iterator */
    }
    note_work(h);
}

static int del_u64_general(struct crow_hash *h, uint64_t key, void **value)
{
    if (CROW_UNLIKELY(h->kind != CROW_HASH_U64)) {
        errno = EINVAL;
        return -1;
    }
    if (CROW_UNLIKELY(key <= K_TOMB)) {
        int had = h->special_used[key];
        if (had && value)
            *value = h->special_value[key];
        h->special_used[key] = 0;
        return had;
    }
    prework(h, 0);
    int tab;
    size_t i = locate64(h, hash_u64(h, key), key, &tab);
    if (i == NOT_FOUND)
        return 0;
    if (value)
        *value = s64(&h->t[tab])[i].value;
    remove_at(h, tab, i);
    after_delete(h);
    return 1;
}

static int del_bytes_general(struct crow_hash *h, const void *key, size_t len, void **value)
{
    if (CROW_UNLIKELY(h->kind != CROW_HASH_BYTES)) {
        errno = EINVAL;
        return -1;
    }
    prework(h, 0);
    int tab;
    size_t i = locateb(h, hash_bytes_raw(h, key, len), key, len, &tab);
    if (i == NOT_FOUND)
        return 0;
    if (value)
        *value = sb(&h->t[tab])[i].value;
    remove_at(h, tab, i);
    after_delete(h);
    return 1;
}

int crow_hash_del_u64(struct crow_hash *h, uint64_t key, void **value)
{
    int r = del_u64_general(h, key, value);
    fast_update(h);
    return r;
}

int crow_hash_del(struct crow_hash *h, const void *key, size_t len, void **value)
{
    int r = del_bytes_general(h, key, len, value);
    fast_update(h);
    return r;
}

/* ------------------------------------------------------------------ table */

static uint64_t random_seed(void)
{
    uint64_t s = 0;
    ssize_t n;
    do
        n = getrandom(&s, sizeof s, GRND_NONBLOCK);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof s) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = crow_hash_u64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32), (uint64_t)(uintptr_t)&s);
    }
    return s;
}

struct crow_hash *crow_hash_new(const struct crow_hash_options *opt)
{
    static const struct crow_hash_options defaults;
    if (!opt)
        opt = &defaults;
    double load = opt->max_load == 0 ? 0.75 : opt->max_load;
    if ((opt->kind != CROW_HASH_BYTES && opt->kind != CROW_HASH_U64) || !(load >= 0.25 && load <= 0.875) ||
        (opt->eq && !opt->hash) || (opt->kind == CROW_HASH_U64 && (opt->eq || (opt->flags & CROW_HASH_COPY_KEYS))) ||
        (opt->flags & ~(CROW_HASH_COPY_KEYS | CROW_HASH_FIXED_SEED))) {
        errno = EINVAL;
        return NULL;
    }
    struct crow_allocator a = opt->allocator ? *opt->allocator : crow_allocator_default;
    struct crow_hash *h = crow_alloc(&a, sizeof *h, 0);
    if (!h)
        return NULL;
    memset(h, 0, sizeof *h);
    h->a = a;
    h->default_alloc = a.alloc == crow_allocator_default.alloc;
    h->kind = opt->kind;
    h->max_load = load;
    h->hash = opt->hash;
    h->plain_u64 = opt->kind == CROW_HASH_U64 && !opt->hash;
    h->eq = opt->eq;
    h->ctx = opt->ctx;
    h->flags = opt->flags;
    h->step = opt->step ? opt->step : DEFAULT_STEP;
    h->seed = (opt->flags & CROW_HASH_FIXED_SEED) ? opt->seed : random_seed();
    h->min_size = fit(opt->initial_size, load);
    if (table_alloc(h, &h->t[0], h->min_size) < 0) {
        crow_free(&a, h, sizeof *h);
        return NULL;
    }
    memset(h->t[0].slots, 0, h->t[0].block_size);
    set_limits(h);
    fast_update(h);
    return h;
}

static void free_keys(struct crow_hash *h, struct table *t)
{
    if (!(h->flags & CROW_HASH_COPY_KEYS) || !t->block)
        return;
    for (size_t i = 0; i < t->size; i++)
        if (slot_full(h, t, i))
            free_key(h, t, i);
}

void crow_hash_free(struct crow_hash *h)
{
    if (!h)
        return;
    free_keys(h, &h->t[0]);
    if (h->state == MIGRATING)
        free_keys(h, &h->t[1]);
    crow_free(&h->a, h->t[0].block, h->t[0].block_size);
    if (h->t[1].block)
        crow_free(&h->a, h->t[1].block, h->t[1].block_size);
    retire_finish(h);
    struct crow_allocator a = h->a;
    crow_free(&a, h, sizeof *h);
}

size_t crow_hash_count(const struct crow_hash *h)
{
    return h->t[0].count + (h->state == MIGRATING ? h->t[1].count : 0) + (size_t)h->special_used[0] +
           (size_t)h->special_used[1];
}

int crow_hash_rehash(struct crow_hash *h, size_t work)
{
    if (h->iterators) {
        errno = EBUSY;
        return -1;
    }
    h->last_zeroed = h->last_moved = 0;
    retire_step(h);
    if (h->state != STABLE && work)
        resize_step(h, work);
    note_work(h);
    fast_update(h);
    return h->state != STABLE || h->retire_p != NULL;
}

void crow_hash_stats(const struct crow_hash *h, struct crow_hash_stats *st)
{
    memset(st, 0, sizeof *st);
    st->count = crow_hash_count(h);
    st->size = h->t[0].size;
    st->new_size = h->state == STABLE ? 0 : h->t[1].size;
    st->tombstones = h->t[0].tombs + (h->state == MIGRATING ? h->t[1].tombs : 0);
    st->state = h->state;
    st->iterators = h->iterators;
    st->last_zeroed = h->last_zeroed;
    st->last_moved = h->last_moved;
    st->max_zeroed = h->max_zeroed;
    st->max_moved = h->max_moved;
    st->resizes = h->resizes;
    st->deferred = h->deferred;
}

/* ------------------------------------------------------------------ iteration */

void crow_hash_iter_init(struct crow_hash *h, struct crow_hash_iter *it)
{
    it->h = h;
    it->pos = 0;
    it->cur = 0;
    it->tab = 0;
    it->cur_tab = -1;
    it->live = 1;
    h->iterators++;
    fast_update(h);
}

void crow_hash_iter_end(struct crow_hash_iter *it)
{
    if (!it->live)
        return;
    it->live = 0;
    it->cur_tab = -1;
    it->tab = 4;
    it->h->iterators--;
    fast_update(it->h);
}

int crow_hash_iter_next(struct crow_hash_iter *it, struct crow_hash_entry *e)
{
    if (!it->live)
        return 0;
    struct crow_hash *h = it->h;
    it->cur_tab = -1;
    while (it->tab < 2) {
        const struct table *t = &h->t[it->tab];
        size_t limit = it->tab == 0 || h->state == MIGRATING ? t->size : 0;
        while (it->pos < limit) {
            size_t i = it->pos++;
            if (!slot_full(h, t, i))
                continue;
            if (h->kind == CROW_HASH_U64) {
                e->key = NULL;
                e->len = 0;
                e->u64 = s64(t)[i].key;
                e->value = s64(t)[i].value;
            } else {
                e->key = sb(t)[i].key;
                e->len = sb(t)[i].len;
                e->u64 = 0;
                e->value = sb(t)[i].value;
            }
            it->cur = i;
            it->cur_tab = it->tab;
            return 1;
        }
        it->tab++;
        it->pos = 0;
    }
    /* Then the side slots of U64 keys 0 and 1 (tab 2 and 3). */
    while (it->tab < 4) {
        int k = it->tab++ - 2;
        if (h->special_used[k]) {
            e->key = NULL;
            e->len = 0;
            e->u64 = (uint64_t)k;
            e->value = h->special_value[k];
            it->cur_tab = k + 2;
            return 1;
        }
    }
    crow_hash_iter_end(it);
    return 0;
}

int crow_hash_iter_del(struct crow_hash_iter *it)
{
    if (!it->live || it->cur_tab < 0)
        return 0;
    struct crow_hash *h = it->h;
    int tab = it->cur_tab;
    it->cur_tab = -1;
    if (tab >= 2) {
        int had = h->special_used[tab - 2];
        h->special_used[tab - 2] = 0;
        return had;
    }
    if (!slot_full(h, &h->t[tab], it->cur))
        return 0;
    remove_at(h, tab, it->cur);
    return 1;
}
