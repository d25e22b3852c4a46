/* ring.c — a bounded single-producer/single-consumer ring of pointers.
 *
 * Design: the classic Lamport ring with free-running indices (TAIL written only by the
 * producer, HEAD only by the consumer, slot = index & MASK, so full is tail - head == size and
 * no slot is wasted).  Each side keeps a private cached copy of the other side's index and
 * re-reads the shared one only when the cache says full (producer) or empty (consumer); the
 * two sides' fields live on separate cache lines, so in steady state a push or pop touches no
 * line the other thread writes except the slot itself.  Publication is a release store of
 * the index after the slot write, acquired by the other side before the slot read.  The ring
 * does not signal: its consumer polls it (or pairs it with a crow_msgport for sleeping). */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>

#include "crow.h"
#include "ring.h"

#define LINE 64

struct crow_ring {
    _Alignas(LINE) _Atomic size_t tail; /* producer's line */
    size_t head_cache;
    _Alignas(LINE) _Atomic size_t head; /* consumer's line */
    size_t tail_cache;
    _Alignas(LINE) size_t mask;         /* read-only after creation */
    void **slots;
    struct crow_allocator alloc;
};

struct crow_ring *crow_ring_new(const struct crow_allocator *a, size_t capacity)
{
    if (capacity == 0 || capacity > ((size_t)1 << 30)) {
        errno = EINVAL;
        return NULL;
    }
    if (!a)
        a = &crow_allocator_default;
    size_t size = 1;
    while (size < capacity)
        size <<= 1;
    struct crow_ring *r = crow_alloc(a, sizeof *r, LINE);
    if (!r)
        return NULL;
    r->slots = crow_alloc(a, size * sizeof(void *), LINE);
    if (!r->slots) {
        crow_free(a, r, sizeof *r);
        errno = ENOMEM;
        return NULL;
    }
    atomic_init(&r->tail, 0);
    atomic_init(&r->head, 0);
    r->head_cache = r->tail_cache = 0;
    r->mask = size - 1;
    r->alloc = *a;
    return r;
}

void crow_ring_free(struct crow_ring *r)
{
    if (!r)
        return;
    struct crow_allocator a = r->alloc;
    crow_free(&a, r->slots, (r->mask + 1) * sizeof(void *));
    crow_free(&a, r, sizeof *r);
}

size_t crow_ring_capacity(const struct crow_ring *r) { return r->mask + 1; }

/* Producer: free slots, refreshing the cached head only when the cache shows fewer than
 * WANT. */
static size_t room(struct crow_ring *r, size_t tail, size_t want)
{
    size_t size = r->mask + 1;
#ifdef CROW_PLANTED_BUG
    /* Planted: off by one in the cached-room test, so a ring one short of full looks as if it
     * had one more slot and the push overwrites the oldest unread pointer. */
    size_t free_ = size - (tail - r->head_cache) + 1;
#else
    size_t free_ = size - (tail - r->head_cache);
#endif
    if (free_ < want) {
        r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
        free_ = size - (tail - r->head_cache);
    }
    return free_;
}

int crow_ring_push(struct crow_ring *r, void *item)
{
    if (CROW_UNLIKELY(!item)) {
        errno = EINVAL;
        return -1;
    }
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (CROW_UNLIKELY(room(r, tail, 1) == 0)) {
        errno = EAGAIN;
        return -1;
    }
    r->slots[tail & r->mask] = item;
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    return 0;
}

size_t crow_ring_push_n(struct crow_ring *r, void *const *items, size_t n)
{
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t k = room(r, tail, n);
    if (k > n)
        k = n;
    for (size_t i = 0; i < k; i++)
        r->slots[(tail + i) & r->mask] = items[i];
    if (k)
        atomic_store_explicit(&r->tail, tail + k, memory_order_release);
    return k;
}

/* Consumer: filled slots, refreshing the cached tail only when the cache shows fewer than
 * WANT. */
static size_t avail(struct crow_ring *r, size_t head, size_t want)
{
    size_t have = r->tail_cache - head;
    if (have < want) {
        r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
        have = r->tail_cache - head;
    }
    return have;
}

void *crow_ring_pop(struct crow_ring *r)
{
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (avail(r, head, 1) == 0)
        return NULL;
    void *item = r->slots[head & r->mask];
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
    return item;
}

size_t crow_ring_pop_n(struct crow_ring *r, void **out, size_t max)
{
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t k = avail(r, head, max);
    if (k > max)
        k = max;
    for (size_t i = 0; i < k; i++)
        out[i] = r->slots[(head + i) & r->mask];
    if (k)
        atomic_store_explicit(&r->head, head + k, memory_order_release);
    return k;
}

size_t crow_ring_count(const struct crow_ring *r)
{
    struct crow_ring *w = (struct crow_ring *)r;
    size_t head = atomic_load_explicit(&w->head, memory_order_acquire);
    size_t tail = atomic_load_explicit(&w->tail, memory_order_acquire);
    return tail - head;
}
