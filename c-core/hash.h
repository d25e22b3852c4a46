/* hash.h — open-addressing hash table (byte-string or 64-bit keys → void *) with incremental resizing. */
#ifndef CROW_HASH_H
#define CROW_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "alloc.h"

/* What a table's keys are.  BYTES: a pointer and a length (stored by reference unless
 * CROW_HASH_COPY_KEYS); U64: a 64-bit integer stored in the entry. */
enum crow_hash_kind { CROW_HASH_BYTES = 0, CROW_HASH_U64 = 1 };

/* Option flags. */
#define CROW_HASH_COPY_KEYS  1u /* BYTES: the table keeps its own copy of each key */
#define CROW_HASH_FIXED_SEED 2u /* use options.seed instead of a random per-table seed */

/* A caller-supplied hash: returns 32 or 64 bits (a 32-bit hash just returns it widened; the
 * table mixes it before use).  For U64 tables KEY points at the uint64_t and LEN is 8. */
typedef uint64_t (*crow_hash_fn)(const void *key, size_t len, void *ctx);
/* A caller-supplied equality: nonzero when the keys are equal.  Keys that are equal must
 * hash alike. */
typedef int (*crow_hash_eq_fn)(const void *a, size_t alen, const void *b, size_t blen, void *ctx);

struct crow_hash_options {
    enum crow_hash_kind kind;
    size_t initial_size;   /* entries to hold without resizing; the table never shrinks below
                            * this.  0 = small. */
    double max_load;       /* grow when (entries + tombstones) / slots passes this; 0 = 0.75;
                            * otherwise within [0.25, 0.875] */
    const struct crow_allocator *allocator; /* NULL = crow_allocator_default (copied) */
    crow_hash_fn hash;     /* NULL = crow_hash_bytes (BYTES) or wyhash's mixer (U64), with
                            * the table's seed */
    crow_hash_eq_fn eq;    /* NULL = byte equality; BYTES only, and needs a custom hash */
    void *ctx;             /* passed to hash and eq */
    uint64_t seed;         /* with CROW_HASH_FIXED_SEED */
    unsigned flags;
    size_t step;           /* resize work per put/del: slots moved (and 8x as many cleared);
                            * 0 = 1024.  Raised automatically when needed to finish in time. */
};

struct crow_hash;

/* Returned by the iterator. */
struct crow_hash_entry {
    const void *key; /* BYTES tables (NULL for U64) */
    size_t len;
    uint64_t u64;    /* U64 tables */
    void *value;
};

/* An iterator lives on the caller's stack.  While any iterator is live the table does no
 * resizing work, so entries never move: every entry present when iteration began and not
 * deleted before it is reached is returned exactly once, and deleting the current entry (or
 * any other) is safe.  Entries inserted meanwhile may or may not be returned.  Iterating to
 * the end releases the iterator; stopping early needs crow_hash_iter_end. */
struct crow_hash_iter {
    struct crow_hash *h;
    size_t pos;   /* next slot to look at in table TAB */
    size_t cur;   /* slot of the entry last returned */
    int tab;      /* 0, 1 tables; 2, 3 side slots; 4 exhausted */
    int cur_tab;  /* where the current entry is; -1 when none */
    int live;
};

/* Progress counters, for tests and tuning. */
struct crow_hash_stats {
    size_t count;       /* entries */
    size_t size;        /* slots of the main table (the old one while resizing) */
    size_t new_size;    /* slots of the table being filled, 0 when not resizing */
    size_t tombstones;  /* in both tables */
    int state;          /* 0 stable, 1 preparing the new table, 2 moving entries */
    unsigned iterators; /* live iterators */
    size_t last_zeroed, last_moved;   /* slots cleared / scanned by the last operation */
    size_t max_zeroed, max_moved;     /* the most of each any single operation did */
    size_t resizes;     /* resizes completed */
    size_t deferred;    /* resizes that could not allocate and were put off */
};

/* Creates a table; OPT NULL means a BYTES table with defaults.  Returns NULL and sets errno
 * (EINVAL: bad kind or flags, max_load out of range, eq without hash, eq or COPY_KEYS on a
 * U64 table; ENOMEM). */
struct crow_hash *crow_hash_new(const struct crow_hash_options *opt);

/* Frees the table (and its key copies); values are the caller's.  NULL is a no-op.  Can't
 * fail. */
void crow_hash_free(struct crow_hash *h);

/* Returns the number of entries.  Can't fail. */
size_t crow_hash_count(const struct crow_hash *h);

/* Inserts or replaces KEY → VALUE.  Returns 1 when inserted, 0 when an existing entry's
 * value was replaced (its old value stored in *OLD when OLD is not NULL; the stored key is
 * kept).  Returns -1 and sets errno, table unchanged: EINVAL (wrong key kind), ENOMEM (no
 * memory to copy the key, or the table is full and could not allocate a larger one), EBUSY
 * (the table is full and a live iterator stops it from growing). */
int crow_hash_put(struct crow_hash *h, const void *key, size_t len, void *value, void **old);
int crow_hash_put_u64(struct crow_hash *h, uint64_t key, void *value, void **old);

/* Looks KEY up.  Returns 1 and stores the value in *VALUE (when not NULL), or 0 when absent.
 * Never changes the table, so concurrent lookups without writers are safe.  Returns -1 with
 * errno EINVAL on the wrong key kind. */
int crow_hash_get(const struct crow_hash *h, const void *key, size_t len, void **value);
int crow_hash_get_u64(const struct crow_hash *h, uint64_t key, void **value);

/* Deletes KEY.  Returns 1 and stores the old value in *VALUE (when not NULL), or 0 when
 * absent; -1 with errno EINVAL on the wrong key kind.  May start a shrink (deferred when it
 * cannot allocate). */
int crow_hash_del(struct crow_hash *h, const void *key, size_t len, void **value);
int crow_hash_del_u64(struct crow_hash *h, uint64_t key, void **value);

/* Does up to WORK slots of pending resize work (the same work put/del do a little of each
 * time), e.g. from an idle loop.  Returns 1 when work remains, 0 when none; -1 with errno
 * EBUSY while an iterator is live. */
int crow_hash_rehash(struct crow_hash *h, size_t work);

/* Fills *ST.  Can't fail. */
void crow_hash_stats(const struct crow_hash *h, struct crow_hash_stats *st);

/* Starts iterating H.  Can't fail. */
void crow_hash_iter_init(struct crow_hash *h, struct crow_hash_iter *it);
/* Stores the next entry in *E and returns 1, or returns 0 at the end (the iterator is then
 * released).  Can't fail. */
int crow_hash_iter_next(struct crow_hash_iter *it, struct crow_hash_entry *e);
/* Deletes the entry last returned.  Returns 1, or 0 when there is none (already deleted, or
 * nothing returned yet).  A copied key returned by iter_next is freed.  Can't fail. */
int crow_hash_iter_del(struct crow_hash_iter *it);
/* Releases an iterator early; harmless when already released.  Can't fail. */
void crow_hash_iter_end(struct crow_hash_iter *it);

/* Seeded 64-bit hashes.  crow_hash_bytes follows wyhash (a 128-bit multiply mix) and is the
 * BYTES tables' default; crow_hash_u64 is the splitmix64 finalizer of KEY ^ SEED (a
 * bijection), for callers' own use (U64 tables default to wyhash's one-multiply mixer of
 * KEY ^ seed, which costs half as much).  Can't fail. */
uint64_t crow_hash_bytes(const void *key, size_t len, uint64_t seed);
uint64_t crow_hash_u64(uint64_t key, uint64_t seed);

#endif
