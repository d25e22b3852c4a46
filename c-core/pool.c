/* pool.c — fixed-size object pool carved from aligned slabs (the seed's mmpool).
 *
 * Design: a slab is one block of slab_size bytes (a power of two) allocated at an address
 * aligned to its own size, so the slab owning an object is found by masking the object's
 * address — put needs no lookup.  The slab starts with its header, then a stack of the
 * 32-bit offsets of its free objects (this is the slab's own free list), then the objects.
 * The free list is kept beside the objects rather than threaded through them so that an
 * object's bytes are never touched by the pool: constructors run once per object when the slab
 * is made, destructors once when it is given back, and a reused object keeps the state it was
 * put back in.  Slabs with a free object sit on the pool's AVAIL list, the others on FULL;
 * get takes from the first AVAIL slab (LIFO, so the hottest object is reused), a slab that
 * comes back from FULL goes to the front, and a slab that becomes empty goes to the back, so
 * partly used slabs fill first and empty ones stay empty.  When a put empties a slab and more
 * than IDLE slabs would then be empty, that slab is given back at once.
 *
 * The fast path is one free object, HOT, held back from its slab: a put stores it there when
 * the slot is free and the put would not have to give the slab back, and a get returns it.
 * An object freed and taken again at once (a request object, a buffer per call) then costs no
 * slab bookkeeping at all, and the get/put pair carries no read-modify-write of a counter
 * from one call to the next, only the one pointer (the CPU predicts the branch on it).  Every
 * other call first puts HOT back on its slab, which is exactly what the deferred put would
 * have done then: nothing else changed in between, and a put took the fast path only if
 * emptying the slab would have kept it anyway.  The counters seen by crow_pool_stats count HOT
 * as free.  One pool per thread: there is no locking anywhere. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "crow.h"
#include "list.h"
#include "pool.h"

struct slab {
    struct crow_list_node node; /* first: a node pointer is the slab pointer */
    struct crow_pool *pool;
    uint32_t nfree;             /* entries on the stack below */
    uint32_t nobj;
    uint32_t stack[];           /* offsets (from the slab) of the free objects; top = next */
};

struct crow_pool {
    void *hot;                  /* one free object held outside its slab (see the design note) */
    struct crow_list avail;     /* slabs with at least one free object */
    size_t live;                /* objects out of their slabs, HOT included */
    size_t nempty;              /* slabs (all on avail) with no live object */
    uintptr_t mask;             /* ~(slab_size - 1) */
    size_t idle;
    struct crow_list full;      /* slabs with no free object */
    size_t size, align, stride, slab_size, first;
    uint32_t per_slab;
    crow_pool_ctor_fn ctor;
    crow_pool_dtor_fn dtor;
    void *arg;
    struct crow_allocator alloc;
    size_t created, released;
};

#define SLAB(n) ((struct slab *)(void *)(n))

static size_t round_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }
static int pow2(size_t n) { return n && !(n & (n - 1)); }

/* Offset of the first object when a slab holds N objects. */
static size_t first_offset(size_t n, size_t align)
{
#ifdef CROW_PLANTED_BUG
    /* Planted: forgets the free-offset stack, so the first objects overlap it. */
    (void)n;
    return round_up(sizeof(struct slab), align);
#else
    return round_up(sizeof(struct slab) + n * sizeof(uint32_t), align);
#endif
}

/* How many objects of STRIDE bytes aligned to ALIGN fit in a slab of SS bytes. */
static size_t fit(size_t ss, size_t stride, size_t align)
{
    size_t hdr = round_up(sizeof(struct slab), align);
    if (hdr >= ss)
        return 0;
    size_t n = (ss - hdr) / (stride + sizeof(uint32_t));
    while (n && round_up(sizeof(struct slab) + n * sizeof(uint32_t), align) + n * stride > ss)
        n--;
    return n > UINT32_MAX ? UINT32_MAX : n;
}

void crow_pool_config_init(struct crow_pool_config *cfg, size_t size)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->size = size;
    cfg->idle = 1;
}

struct crow_pool *crow_pool_new(const struct crow_pool_config *cfg)
{
    const size_t max_slab = (size_t)1 << 32; /* offsets are 32-bit */
    size_t size = cfg->size, align = cfg->align, ss = cfg->slab_size, n = 0;

    if (align == 0) {
        align = size & -size;
        if (align > 16)
            align = 16;
    }
    if (size == 0 || !pow2(align) || size > max_slab || align > max_slab ||
        (ss && (!pow2(ss) || ss > max_slab))) {
        errno = EINVAL;
        return NULL;
    }
    size_t stride = round_up(size, align);
    if (ss) {
        n = fit(ss, stride, align);
    } else {
        /* Small objects get >= 64 per slab; big ones accept fewer rather than huge slabs. */
        size_t want = stride <= 4096 ? 64 : stride <= (512u << 10) ? 8 : 1;
        for (ss = 16384; ss <= max_slab; ss <<= 1)
            if ((n = fit(ss, stride, align)) >= want)
                break;
    }
    if (n == 0 || ss > max_slab) {
        errno = EINVAL;
        return NULL;
    }

    const struct crow_allocator *a = cfg->allocator ? cfg->allocator : &crow_allocator_default;
    struct crow_pool *p = a->alloc(a->ctx, sizeof *p, 0);
    if (!p) {
        if (!errno)
            errno = ENOMEM;
        return NULL;
    }
    memset(p, 0, sizeof *p);
    crow_list_init(&p->avail);
    crow_list_init(&p->full);
    p->mask = ~(uintptr_t)(ss - 1);
    p->idle = cfg->idle;
    p->size = size;
    p->align = align;
    p->stride = stride;
    p->slab_size = ss;
    p->per_slab = (uint32_t)n;
    p->first = first_offset(n, align);
    p->ctor = cfg->ctor;
    p->dtor = cfg->dtor;
    p->arg = cfg->arg;
    p->alloc = *a;
    return p;
}

static void slab_destroy(struct crow_pool *p, struct slab *s, uint32_t constructed)
{
    if (p->dtor)
        for (uint32_t i = 0; i < constructed; i++)
            p->dtor((char *)s + p->first + (size_t)i * p->stride, p->arg);
    p->alloc.free(p->alloc.ctx, s, p->slab_size);
}

/* Makes a slab of free, constructed objects and links it empty into AVAIL (at the head when
 * HEAD, else at the tail).  Returns NULL with errno set; the pool is then unchanged. */
static struct slab *slab_new(struct crow_pool *p, int head)
{
    int saved = errno;
    errno = 0;
    struct slab *s = p->alloc.alloc(p->alloc.ctx, p->slab_size, p->slab_size);
    if (!s) {
        if (!errno)
            errno = ENOMEM;
        return NULL;
    }
    if ((uintptr_t)s & ~p->mask) { /* an allocator that ignored the alignment */
        p->alloc.free(p->alloc.ctx, s, p->slab_size);
        errno = EINVAL;
        return NULL;
    }
    errno = saved;
    uint32_t n = p->per_slab;
    s->pool = p;
    s->nobj = n;
    s->nfree = n;
    for (uint32_t i = 0; i < n; i++)
        s->stack[i] = (uint32_t)(p->first + (size_t)(n - 1 - i) * p->stride);
    if (p->ctor) {
        for (uint32_t i = 0; i < n; i++) {
            if (p->ctor((char *)s + p->first + (size_t)i * p->stride, p->arg) != 0) {
                int e = errno ? errno : ENOMEM;
                slab_destroy(p, s, i);
                errno = e;
                return NULL;
            }
        }
    }
    if (head)
        crow_list_insert_head(&p->avail, &s->node);
    else
        crow_list_insert_tail(&p->avail, &s->node);
    p->nempty++;
    p->created++;
    return s;
}

static __attribute__((noinline)) void *get_slow(struct crow_pool *p)
{
    struct slab *s = SLAB(p->avail.first);
    if (CROW_UNLIKELY(!s) && !(s = slab_new(p, 1)))
        return NULL;
    uint32_t nf = s->nfree;
    if (nf == s->nobj)
        p->nempty--;
    s->nfree = --nf;
    if (CROW_UNLIKELY(nf == 0)) {
        crow_list_remove(&p->avail, &s->node);
        crow_list_insert_head(&p->full, &s->node);
    }
    p->live++;
    return (char *)s + s->stack[nf];
}

/* S has just become empty: give it back if that makes too many empty slabs, else move it
 * behind the partly used ones. */
static void slab_emptied(struct crow_pool *p, struct slab *s)
{
    if (++p->nempty > p->idle) {
        crow_list_remove(&p->avail, &s->node);
        p->nempty--;
        p->released++;
        slab_destroy(p, s, s->nobj);
    } else if (s->node.next) {
        crow_list_remove(&p->avail, &s->node);
        crow_list_insert_tail(&p->avail, &s->node);
    }
}

/* Puts OBJ back on its slab (the whole contract of crow_pool_put but for HOT). */
static int put_core(struct crow_pool *p, void *obj)
{
    struct slab *s = (struct slab *)((uintptr_t)obj & p->mask);
    uint32_t nf = s->nfree;
    if (CROW_UNLIKELY(s->pool != p || nf >= s->nobj)) {
        errno = EINVAL;
        return -1;
    }
    s->stack[nf] = (uint32_t)((uintptr_t)obj & ~p->mask);
    s->nfree = ++nf;
    p->live--;
    if (CROW_UNLIKELY(nf == 1)) {
        crow_list_remove(&p->full, &s->node);
        crow_list_insert_head(&p->avail, &s->node);
    }
    if (CROW_UNLIKELY(nf == s->nobj))
        slab_emptied(p, s);
    return 0;
}

/* Puts HOT back on its slab: the put it stands for, deferred. */
static void flush_hot(struct crow_pool *p)
{
    void *o = p->hot;
    if (o) {
        p->hot = NULL;
        CROW_UNUSED int r = put_core(p, o); /* checked when it was put: can't fail */
    }
}

void *crow_pool_get(struct crow_pool *p)
{
    void *o = p->hot;
    if (CROW_LIKELY(o)) {
        p->hot = NULL;
        return o;
    }
    return get_slow(p);
}

static __attribute__((noinline)) int put_slow(struct crow_pool *p, void *obj)
{
    if (!obj)
        return 0;
    flush_hot(p);
    return put_core(p, obj);
}

int crow_pool_put(struct crow_pool *p, void *obj)
{
    /* Conditions combined with & rather than &&: one branch to predict, not five. */
    if (CROW_LIKELY((obj != NULL) & (p->hot == NULL))) {
        const struct slab *s = (const struct slab *)((uintptr_t)obj & p->mask);
        uint32_t nf = s->nfree, n = s->nobj;
        /* A valid put that leaves the slab in use, or empties it when it would be kept. */
        if (CROW_LIKELY((s->pool == p) & (nf < n) & ((n - nf > 1) | (p->nempty < p->idle)))) {
            p->hot = obj;
            return 0;
        }
    }
    return put_slow(p, obj);
}

int crow_pool_reserve(struct crow_pool *p, size_t n)
{
    flush_hot(p);
    for (;;) {
        size_t slabs = p->avail.count + p->full.count;
        if (slabs * p->per_slab - p->live >= n)
            return 0;
        if (!slab_new(p, 0))
            return -1;
    }
}

size_t crow_pool_trim(struct crow_pool *p, size_t keep)
{
    struct crow_list_node *n, *prev;
    size_t given = 0;
    flush_hot(p);
    CROW_LIST_FOREACH_REVERSE_SAFE(n, prev, &p->avail) {
        if (p->nempty <= keep)
            break;
        struct slab *s = SLAB(n);
        if (s->nfree == s->nobj) {
            crow_list_remove(&p->avail, n);
            p->nempty--;
            p->released++;
            given++;
            slab_destroy(p, s, s->nobj);
        }
    }
    return given;
}

void crow_pool_stats(const struct crow_pool *p, struct crow_pool_stats *st)
{
    size_t slabs = p->avail.count + p->full.count, live = p->live, nempty = p->nempty;
    if (p->hot) { /* counted as the deferred put will leave things */
        const struct slab *s = (const struct slab *)((uintptr_t)p->hot & p->mask);
        live--;
        nempty += s->nobj - s->nfree == 1;
    }
    st->live = live;
    st->free = slabs * p->per_slab - live;
    st->slabs = slabs;
    st->empty_slabs = nempty;
    st->bytes = slabs * p->slab_size;
    st->object_size = p->stride;
    st->per_slab = p->per_slab;
    st->slab_size = p->slab_size;
    st->slabs_created = p->created;
    st->slabs_released = p->released;
}

void crow_pool_destroy(struct crow_pool *p)
{
    if (!p)
        return;
    struct crow_list_node *n, *next;
    CROW_LIST_FOREACH_SAFE(n, next, &p->avail)
        slab_destroy(p, SLAB(n), SLAB(n)->nobj);
    CROW_LIST_FOREACH_SAFE(n, next, &p->full)
        slab_destroy(p, SLAB(n), SLAB(n)->nobj);
    struct crow_allocator a = p->alloc;
    a.free(a.ctx, p, sizeof *p);
}
