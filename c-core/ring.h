/* ring.h — a bounded single-producer/single-consumer lock-free ring of pointers, for polling. */
#ifndef CROW_RING_H
#define CROW_RING_H

#include <stddef.h>

#include "alloc.h"

struct crow_ring;

/* Makes an empty ring holding at least CAPACITY pointers (rounded up to a power of two),
 * allocated from A (NULL: the default allocator).  One thread may push and one other thread
 * may pop, concurrently, without locks.  Returns NULL and sets errno: EINVAL when CAPACITY is
 * 0 or above 2^30, ENOMEM; nothing leaks. */
struct crow_ring *crow_ring_new(const struct crow_allocator *a, size_t capacity);

/* Frees the ring (the pointers in it are not touched).  NULL is ignored.  Can't fail. */
void crow_ring_free(struct crow_ring *r);

/* The number of slots (a power of two).  Can't fail. */
size_t crow_ring_capacity(const struct crow_ring *r);

/* Producer: appends ITEM.  Returns 0, or -1 with errno EAGAIN when the ring is full or EINVAL
 * when ITEM is NULL; the ring is unchanged on failure. */
int crow_ring_push(struct crow_ring *r, void *item);

/* Producer: appends as many of the N non-NULL ITEMS as fit, in order, publishing them at once.
 * Returns how many were appended (0 when full).  Can't fail. */
size_t crow_ring_push_n(struct crow_ring *r, void *const *items, size_t n);

/* Consumer: removes and returns the oldest pointer, or NULL when the ring is empty.
 * Can't fail. */
void *crow_ring_pop(struct crow_ring *r);

/* Consumer: removes up to MAX pointers into OUT, oldest first.  Returns how many (0 when
 * empty).  Can't fail. */
size_t crow_ring_pop_n(struct crow_ring *r, void **out, size_t max);

/* The number of pointers in the ring at some moment during the call; exact when neither end
 * is moving.  Can't fail. */
size_t crow_ring_count(const struct crow_ring *r);

#endif
