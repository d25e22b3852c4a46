/* failalloc.h — a test allocator that fails the Nth allocation (and counts live blocks), for
 * checking that containers stay consistent when memory runs out. */
#ifndef CROW_FAILALLOC_H
#define CROW_FAILALLOC_H
#include <errno.h>
#include <stdlib.h>

#include "alloc.h"

struct failalloc {
    long calls;      /* allocations attempted so far */
    long fail_at;    /* fail the allocation whose 1-based number is this; 0 = never */
    int fail_after;  /* when set, every allocation from fail_at on fails */
    long live;       /* blocks allocated and not yet freed */
    long long bytes; /* bytes allocated and not yet freed */
};

static void *failalloc_alloc(void *ctx, size_t size, size_t align)
{
    struct failalloc *f = ctx;
    long n = ++f->calls;
    if (f->fail_at && (n == f->fail_at || (f->fail_after && n > f->fail_at))) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = crow_allocator_default.alloc(NULL, size, align);
    if (p) {
        f->live++;
        f->bytes += (long long)size;
    }
    return p;
}

static void failalloc_free(void *ctx, void *ptr, size_t size)
{
    struct failalloc *f = ctx;
    if (ptr) {
        f->live--;
        f->bytes -= (long long)size;
    }
    crow_allocator_default.free(NULL, ptr, size);
}

static inline struct crow_allocator failalloc_make(struct failalloc *f)
{
    struct crow_allocator a = {failalloc_alloc, failalloc_free, f};
    return a;
}
#endif
