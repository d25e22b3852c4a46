/* alloc.h — the allocator interface c-core containers take (pool pages, hash tables). */
#ifndef CROW_ALLOC_H
#define CROW_ALLOC_H

#include <stddef.h>

/* An allocator: ALLOC returns SIZE bytes aligned to ALIGN (a power of two; 0 means malloc's
 * alignment), or NULL; FREE releases a block with the SIZE it was allocated with.  CTX is
 * passed back to both.  Containers keep a copy of the struct. */
struct crow_allocator {
    void *(*alloc)(void *ctx, size_t size, size_t align);
    void (*free)(void *ctx, void *ptr, size_t size);
    void *ctx;
};

/* The default allocator: malloc/aligned_alloc/free.  Returns NULL with errno ENOMEM on
 * failure. */
extern const struct crow_allocator crow_allocator_default;

/* Convenience wrappers; a NULL allocator means crow_allocator_default. */
void *crow_alloc(const struct crow_allocator *a, size_t size, size_t align);
void crow_free(const struct crow_allocator *a, void *ptr, size_t size);

#endif
