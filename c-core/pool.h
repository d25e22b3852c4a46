/* pool.h — fixed-size object pool carved from aligned slabs (the seed's mmpool). */
#ifndef CROW_POOL_H
#define CROW_POOL_H

#include <stddef.h>

#include "alloc.h"

/* A pool is NOT thread-safe: use one pool per thread (or lock around every call yourself). */
struct crow_pool;

/* Called on each object when its slab is created (CTOR) and destroyed (DTOR), never on get or
 * put, so an object comes back from crow_pool_get in the state it was put back in.  A CTOR
 * returns 0, or -1 with errno set to refuse (the slab is then abandoned, DTOR run on the
 * objects already constructed, and the get fails with that errno). */
typedef int (*crow_pool_ctor_fn)(void *obj, void *arg);
typedef void (*crow_pool_dtor_fn)(void *obj, void *arg);

struct crow_pool_config {
    size_t size;       /* object size in bytes, > 0 */
    size_t align;      /* object alignment, a power of two; 0 = the largest power of two
                          dividing SIZE, at most 16 (enough for any type of that size) */
    size_t slab_size;  /* bytes per slab, a power of two that holds at least one object;
                          0 = automatic (>= 16 KiB, >= 64 objects) */
    size_t idle;       /* empty slabs kept for reuse; one more is given back to the allocator */
    crow_pool_ctor_fn ctor; /* optional */
    crow_pool_dtor_fn dtor; /* optional */
    void *arg;              /* passed to ctor and dtor */
    const struct crow_allocator *allocator; /* NULL = crow_allocator_default; copied */
};

struct crow_pool_stats {
    size_t live;         /* objects handed out and not put back */
    size_t free;         /* objects available in slabs already held */
    size_t slabs;        /* slabs held */
    size_t empty_slabs;  /* slabs held with no live object */
    size_t bytes;        /* bytes held in slabs (slabs * slab_size) */
    size_t object_size;  /* bytes between consecutive objects (size rounded up to align) */
    size_t per_slab;     /* objects per slab */
    size_t slab_size;    /* bytes per slab */
    size_t slabs_created;  /* slabs allocated over the pool's life */
    size_t slabs_released; /* slabs given back over the pool's life */
};

/* Fills CFG with the defaults for objects of SIZE bytes: automatic alignment and slab size,
 * one idle slab kept, no callbacks, the default allocator.  (A zero-filled config with SIZE
 * set is also valid; it keeps no idle slab.)  Can't fail. */
void crow_pool_config_init(struct crow_pool_config *cfg, size_t size);

/* Makes an empty pool (no slab is allocated until the first get or reserve).  Returns NULL
 * and sets errno: EINVAL for a zero size, an alignment or slab size that is not a power of
 * two, or a slab too small for one object; ENOMEM (or the allocator's errno). */
struct crow_pool *crow_pool_new(const struct crow_pool_config *cfg);

/* Destroys POOL: runs the destructor on every object of every slab (live or not) and gives
 * every slab back.  Objects still out become invalid.  A NULL POOL is ignored.  Can't fail. */
void crow_pool_destroy(struct crow_pool *pool);

/* Returns an object of the pool's size and alignment, constructed (if the pool has a
 * constructor) and in whatever state it was last put back in.  Returns NULL and sets errno
 * (ENOMEM, the allocator's or the constructor's errno, or EINVAL if the allocator returned a
 * slab not aligned to its size) when a new slab was needed and could not be made; the pool is
 * then unchanged. */
void *crow_pool_get(struct crow_pool *pool);

/* Gives OBJ, which crow_pool_get returned, back to POOL.  When this empties its slab and more
 * than the configured number of idle slabs would be empty, the slab is destroyed.  A NULL OBJ
 * is ignored (returns 0).  Returns 0, or -1 with errno EINVAL (pool unchanged) when OBJ is
 * detectably not POOL's: it lies in another pool's slab, or its slab has no live object.
 * OBJ must still come from some pool's get (any other pointer is undefined behaviour). */
int crow_pool_put(struct crow_pool *pool, void *obj);

/* Makes sure at least N objects can be got without allocating, creating slabs as needed
 * (they stay as empty slabs, beyond the idle count, until used).  Returns 0, or -1 with errno
 * set (ENOMEM, the allocator's or the constructor's); the slabs made before the failure are
 * kept and the pool is consistent. */
int crow_pool_reserve(struct crow_pool *pool, size_t n);

/* Gives back empty slabs until at most KEEP empty slabs are held.  Returns the number given back.
 * Can't fail. */
size_t crow_pool_trim(struct crow_pool *pool, size_t keep);

/* Fills *ST with POOL's current figures.  Can't fail. */
void crow_pool_stats(const struct crow_pool *pool, struct crow_pool_stats *st);

#endif
