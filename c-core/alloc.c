/* alloc.c — the default allocator behind struct crow_allocator.
 *
 * Design: containers in c-core never call malloc directly; they go through a copy of a
 * struct crow_allocator so tests can inject failures (t/c/failalloc.h) and embedders can
 * supply arenas.  The default forwards to libc; aligned requests use aligned_alloc with the
 * size rounded up to the alignment, as C11 requires. */
#include <errno.h>
#include <stdlib.h>

#include "alloc.h"

static void *default_alloc(void *ctx, size_t size, size_t align)
{
    (void)ctx;
    void *p;
    if (align <= sizeof(max_align_t))
        p = malloc(size ? size : 1);
    else
        p = aligned_alloc(align, (size + align - 1) & ~(align - 1));
    if (!p)
        errno = ENOMEM;
    return p;
}

static void default_free(void *ctx, void *ptr, size_t size)
{
    (void)ctx, (void)size;
    free(ptr);
}

const struct crow_allocator crow_allocator_default = {default_alloc, default_free, NULL};

void *crow_alloc(const struct crow_allocator *a, size_t size, size_t align)
{
    if (!a)
        a = &crow_allocator_default;
    return a->alloc(a->ctx, size, align);
}

void crow_free(const struct crow_allocator *a, void *ptr, size_t size)
{
    if (!ptr)
        return;
    if (!a)
        a = &crow_allocator_default;
    a->free(a->ctx, ptr, size);
}
