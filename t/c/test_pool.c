/* test_pool.c — the slab pool: layout, reuse, ctor/dtor, idle release, stats, failures. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "failalloc.h"
#include "pool.h"
#include "tap.h"

struct obj {
    uint32_t magic; /* set by the constructor */
    uint32_t user;  /* left alone by the pool */
    char pad[56];
};

#define MAGIC 0xC0FFEEu

static int ctors, dtors, ctor_fail_at; /* fail the Nth ctor call (1-based); 0 = never */

static int obj_ctor(void *o, void *arg)
{
    int *tag = arg;
    if (ctor_fail_at && ctors + 1 == ctor_fail_at) {
        errno = EMFILE;
        return -1;
    }
    ctors++;
    ((struct obj *)o)->magic = MAGIC;
    ((struct obj *)o)->user = 0;
    (*tag)++;
    return 0;
}

static void obj_dtor(void *o, void *arg)
{
    (void)arg;
    if (((struct obj *)o)->magic == MAGIC)
        dtors++;
    ((struct obj *)o)->magic = 0;
}

static struct crow_pool_stats stats(struct crow_pool *p)
{
    struct crow_pool_stats st;
    crow_pool_stats(p, &st);
    return st;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/* An allocator that hands out blocks 16 bytes past the alignment asked for. */
static void *skew_alloc(void *ctx, size_t size, size_t align)
{
    (void)ctx;
    char *p = crow_allocator_default.alloc(NULL, size + 16, align);
    return p ? p + 16 : NULL;
}
static void skew_free(void *ctx, void *ptr, size_t size)
{
    (void)ctx, (void)size;
    free((char *)ptr - 16);
}

/* Gets N objects of pool P (stride S bytes), writes each full of its own index, then checks
 * they are distinct, aligned to A, at least S apart and still hold their bytes. */
static void layout_check(struct crow_pool *p, size_t size, size_t a, size_t n, const char *what)
{
    uintptr_t *v = calloc(n, sizeof *v);
    int got = 1, aligned = 1, apart = 1, intact = 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char *o = crow_pool_get(p);
        if (!o) {
            got = 0;
            break;
        }
        memset(o, (int)(i & 0xff), size);
        v[i] = (uintptr_t)o;
        if (v[i] % a)
            aligned = 0;
    }
    for (size_t i = 0; got && i < n; i++)
        for (size_t j = 0; j < size; j++)
            if (((unsigned char *)v[i])[j] != (unsigned char)(i & 0xff))
                intact = 0;
    struct crow_pool_stats st = stats(p);
    for (size_t i = 0; got && i < n; i++)
        crow_pool_put(p, (void *)v[i]);
    qsort(v, n, sizeof *v, cmp_ptr);
    for (size_t i = 1; got && i < n; i++)
        if (v[i] - v[i - 1] < size)
            apart = 0;
    ok(got, "%s: %zu gets succeed", what, n);
    ok(aligned, "%s: every object aligned to %zu", what, a);
    ok(apart, "%s: no two objects overlap", what);
    ok(intact, "%s: every object keeps its bytes", what);
    ok(st.slabs > 1 && st.live == n, "%s: spans %zu slabs, %zu live", what, st.slabs, st.live);
    free(v);
}

int main(void)
{
    struct crow_pool_config c;
    struct crow_pool *p, *q;
    struct crow_pool_stats st, st2;
    int tag = 0;

    /* ---- configuration */
    crow_pool_config_init(&c, 64);
    ok(c.size == 64 && c.idle == 1 && !c.align && !c.slab_size && !c.ctor && !c.dtor &&
       !c.allocator, "config_init: size 64, one idle slab, the rest automatic");
    struct { size_t size, align, slab; const char *what; } bad[] = {
        {0, 0, 0, "size 0"},
        {64, 3, 0, "alignment 3"},
        {64, 0, 3000, "slab size 3000"},
        {100, 0, 128, "slab of 128 bytes for a 100-byte object"},
        {64, 8192, 4096, "alignment larger than the slab"},
        {(size_t)1 << 33, 0, 0, "object of 8 GiB"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        crow_pool_config_init(&c, bad[i].size);
        c.align = bad[i].align;
        c.slab_size = bad[i].slab;
        errno = 0;
        p = crow_pool_new(&c);
        ok(p == NULL && errno == EINVAL, "new refuses %s with EINVAL", bad[i].what);
        crow_pool_destroy(p);
    }
    crow_pool_destroy(NULL);
    ok(1, "destroy(NULL) is a no-op");

    struct failalloc fa = {0};
    struct crow_allocator fal = failalloc_make(&fa);
    crow_pool_config_init(&c, 64);
    c.allocator = &fal;
    fa.fail_at = 1;
    errno = 0;
    ok(crow_pool_new(&c) == NULL && errno == ENOMEM, "new: allocator failure gives ENOMEM");
    is_int(fa.live, 0, "new: nothing left allocated after the failure");
    fa.fail_at = 0;

    /* ---- automatic geometry */
    crow_pool_config_init(&c, 64);
    p = crow_pool_new(&c);
    ok(p != NULL, "new: 64-byte objects");
    st = stats(p);
    ok(st.slab_size >= 16384 && !(st.slab_size & (st.slab_size - 1)),
       "auto slab size %zu is a power of two >= 16 KiB", st.slab_size);
    ok(st.per_slab >= 64, "auto slab holds %zu >= 64 objects", st.per_slab);
    ok(st.per_slab * 64 <= st.slab_size && st.per_slab * 68 >= st.slab_size - 128,
       "slab is filled (%zu objects + offsets in %zu bytes)", st.per_slab, st.slab_size);
    is_int(st.object_size, 64, "object size 64");
    ok(st.slabs == 0 && st.live == 0 && st.bytes == 0 && st.free == 0, "a new pool holds nothing");
    void *o1 = crow_pool_get(p);
    st = stats(p);
    ok(o1 != NULL && st.live == 1 && st.slabs == 1 && st.free == st.per_slab - 1 &&
       st.bytes == st.slab_size && st.empty_slabs == 0 && st.slabs_created == 1,
       "first get makes one slab: live 1, free %zu", st.free);
    ok(((uintptr_t)o1 & 15) == 0, "64-byte objects are 16-aligned by default");
    is_int(crow_pool_put(p, o1), 0, "put returns 0");
    st = stats(p);
    ok(st.live == 0 && st.slabs == 1 && st.empty_slabs == 1 && st.slabs_released == 0,
       "with idle 1 the emptied slab is kept");
    ok(crow_pool_get(p) == o1, "the object just put is the next one got (LIFO)");
    is_int(crow_pool_put(p, NULL), 0, "put(NULL) returns 0");
    is_int(stats(p).live, 1, "put(NULL) changed nothing");
    crow_pool_destroy(p);

    crow_pool_config_init(&c, (size_t)1 << 20);
    p = crow_pool_new(&c);
    st = stats(p);
    ok(p && st.per_slab >= 1 && st.slab_size >= st.per_slab * ((size_t)1 << 20),
       "1 MiB objects: %zu per %zu-byte slab", st.per_slab, st.slab_size);
    crow_pool_destroy(p);

    crow_pool_config_init(&c, 24);
    p = crow_pool_new(&c);
    is_int(stats(p).object_size, 24, "24-byte objects get 8-byte alignment, stride 24");
    crow_pool_destroy(p);

    /* ---- layout: alignment and overlap, several sizes and alignments, several slabs */
    struct { size_t size, align, slab; } lay[] = {
        {1, 0, 4096}, {24, 0, 4096}, {64, 0, 0}, {100, 64, 8192}, {33, 4096, 65536}, {3000, 0, 0},
    };
    for (size_t i = 0; i < sizeof lay / sizeof *lay; i++) {
        char what[64];
        crow_pool_config_init(&c, lay[i].size);
        c.align = lay[i].align;
        c.slab_size = lay[i].slab;
        p = crow_pool_new(&c);
        st = stats(p);
        size_t a = lay[i].align ? lay[i].align : (lay[i].size & -lay[i].size) > 16 ? 16
                 : (lay[i].size & -lay[i].size);
        snprintf(what, sizeof what, "size %zu align %zu", lay[i].size, a);
        layout_check(p, lay[i].size, a, st.per_slab * 3 + 1, what);
        crow_pool_destroy(p);
    }

    /* ---- constructor and destructor */
    crow_pool_config_init(&c, sizeof(struct obj));
    c.ctor = obj_ctor;
    c.dtor = obj_dtor;
    c.arg = &tag;
    c.allocator = &fal;
    p = crow_pool_new(&c);
    struct obj *a = crow_pool_get(p);
    st = stats(p);
    is_int(ctors, st.per_slab, "ctor runs once per object when the slab is made");
    is_int(tag, st.per_slab, "ctor gets the configured arg");
    ok(a && a->magic == MAGIC, "a got object is constructed");
    a->user = 42;
    crow_pool_put(p, a);
    struct obj *b = crow_pool_get(p);
    ok(b == a && b->user == 42 && b->magic == MAGIC, "a reused object keeps its state");
    is_int(ctors, st.per_slab, "no ctor on reuse");
    is_int(dtors, 0, "no dtor on put");
    void **many = calloc(st.per_slab * 2, sizeof *many);
    many[0] = b;
    for (size_t i = 1; i < st.per_slab * 2; i++)
        many[i] = crow_pool_get(p);
    is_int(ctors, 2 * st.per_slab, "second slab constructed");
    for (size_t i = 0; i < st.per_slab * 2; i++)
        crow_pool_put(p, many[i]);
    st = stats(p);
    ok(st.slabs == 1 && st.slabs_released == 1, "idle 1: one of two empty slabs given back");
    is_int(dtors, st.per_slab, "dtor ran on each object of the released slab");
    /* A ctor failure in the middle of a slab: no slab, the ctor's errno, objects undone. */
    for (size_t i = 0; i < st.per_slab; i++)
        many[i] = crow_pool_get(p);
    st = stats(p);
    long live_blocks = fa.live;
    int c0 = ctors, d0 = dtors;
    ctor_fail_at = ctors + 5;
    errno = 0;
    ok(crow_pool_get(p) == NULL && errno == EMFILE, "get fails with the ctor's errno");
    is_int(dtors - d0, 4, "dtor undid the 4 objects constructed before the failure");
    is_int(ctors - c0, 4, "ctor stopped at the failure");
    st2 = stats(p);
    ok(memcmp(&st, &st2, sizeof st) == 0, "stats unchanged by the failed get");
    is_int(fa.live, live_blocks, "the abandoned slab was freed");
    ctor_fail_at = 0;
    ok((many[st.per_slab] = crow_pool_get(p)) != NULL, "a later get works");
    for (size_t i = 0; i <= st.per_slab; i++)
        crow_pool_put(p, many[i]);
    crow_pool_destroy(p);
    is_int(dtors, ctors, "destroy ran the dtor on every constructed object");
    is_int(fa.live, 0, "destroy freed every block");
    free(many);

    /* ---- idle count */
    for (size_t idle = 0; idle <= 3; idle++) {
        crow_pool_config_init(&c, 64);
        c.slab_size = 4096;
        c.idle = idle;
        p = crow_pool_new(&c);
        size_t per = stats(p).per_slab, n = per * 5;
        void **v = calloc(n, sizeof *v);
        for (size_t i = 0; i < n; i++)
            v[i] = crow_pool_get(p);
        is_int(stats(p).slabs, 5, "5 full slabs");
        for (size_t i = 0; i < n; i++)
            crow_pool_put(p, v[i]);
        st = stats(p);
        char what[80];
        snprintf(what, sizeof what, "idle %zu: %zu empty slabs kept, %zu given back",
                 idle, idle, 5 - idle);
        ok(st.slabs == idle && st.empty_slabs == idle && st.slabs_released == 5 - idle &&
           st.live == 0 && st.bytes == idle * 4096, "%s", what);
        free(v);
        crow_pool_destroy(p);
    }

    /* ---- the allocator failing the Nth allocation */
    memset(&fa, 0, sizeof fa);
    crow_pool_config_init(&c, 64);
    c.slab_size = 4096;
    c.allocator = &fal;
    p = crow_pool_new(&c);
    size_t per = stats(p).per_slab;
    void **v = calloc(per * 3, sizeof *v);
    for (size_t i = 0; i < per; i++)
        v[i] = crow_pool_get(p);
    st = stats(p);
    fa.fail_at = fa.calls + 1;
    fa.fail_after = 1;
    errno = 0;
    ok(crow_pool_get(p) == NULL && errno == ENOMEM, "get when a slab cannot be made: ENOMEM");
    errno = 0;
    ok(crow_pool_get(p) == NULL && errno == ENOMEM, "and again");
    st2 = stats(p);
    ok(memcmp(&st, &st2, sizeof st) == 0, "stats unchanged by failed gets");
    crow_pool_put(p, v[0]);
    ok((v[0] = crow_pool_get(p)) != NULL, "a freed object can still be got while failing");
    fa.fail_at = 0;
    int all = 1;
    for (size_t i = per; i < per * 3; i++)
        if (!(v[i] = crow_pool_get(p)))
            all = 0;
    ok(all && stats(p).live == per * 3, "later gets work once memory is back");
    for (size_t i = 0; i < per * 3; i++)
        crow_pool_put(p, v[i]);
    is_int(stats(p).live, 0, "everything put back");
    crow_pool_destroy(p);
    is_int(fa.live, 0, "no block leaked");
    free(v);

    /* ---- put of a foreign or already-free object */
    crow_pool_config_init(&c, 64);
    p = crow_pool_new(&c);
    q = crow_pool_new(&c);
    void *x = crow_pool_get(p), *y = crow_pool_get(q);
    st = stats(p);
    errno = 0;
    ok(crow_pool_put(p, y) == -1 && errno == EINVAL, "put of another pool's object: EINVAL");
    st2 = stats(p);
    ok(memcmp(&st, &st2, sizeof st) == 0, "stats unchanged by the refused put");
    crow_pool_put(p, x);
    errno = 0;
    ok(crow_pool_put(p, x) == -1 && errno == EINVAL, "second put into an empty slab: EINVAL");
    is_int(stats(p).live, 0, "live unchanged by the refused double put");
    crow_pool_put(q, y);
    crow_pool_destroy(q);

    /* ---- reserve and trim */
    st = stats(p);
    is_int(crow_pool_reserve(p, st.per_slab * 3 + 1), 0, "reserve returns 0");
    st = stats(p);
    ok(st.free >= st.per_slab * 3 + 1 && st.slabs == 4 && st.empty_slabs == 4,
       "reserve made slabs for the objects asked (%zu slabs)", st.slabs);
    is_int(crow_pool_reserve(p, 10), 0, "reserve of what is free makes nothing");
    is_int(stats(p).slabs, 4, "still 4 slabs");
    void *held = crow_pool_get(p);
    is_int(crow_pool_trim(p, 1), 2, "trim(1) with 3 empty slabs gives back 2");
    st = stats(p);
    ok(st.slabs == 2 && st.empty_slabs == 1 && st.live == 1, "one empty slab and the one in use kept");
    is_int(crow_pool_trim(p, 0), 1, "trim(0) gives back the other empty slab");
    st = stats(p);
    ok(st.slabs == 1 && st.live == 1 && st.slabs_released == 3, "trim never gives back a slab in use");
    crow_pool_put(p, held);
    is_int(crow_pool_trim(p, 0), 1, "trim(0) gives back the last empty slab");
    is_int(stats(p).slabs, 0, "no slab left");
    ok(crow_pool_get(p) != NULL, "get after trim makes a slab again");
    crow_pool_destroy(p);

    memset(&fa, 0, sizeof fa);
    crow_pool_config_init(&c, 64);
    c.allocator = &fal;
    c.slab_size = 4096;
    p = crow_pool_new(&c);
    per = stats(p).per_slab;
    fa.fail_at = fa.calls + 3;
    errno = 0;
    ok(crow_pool_reserve(p, per * 5) == -1 && errno == ENOMEM, "reserve: ENOMEM on 3rd slab");
    st = stats(p);
    ok(st.slabs == 2 && st.free == 2 * per && st.empty_slabs == 2,
       "reserve kept the 2 slabs made before the failure");
    fa.fail_at = 0;
    is_int(crow_pool_reserve(p, per * 5), 0, "reserve works once memory is back");
    is_int(stats(p).slabs, 5, "5 slabs");
    crow_pool_destroy(p);
    is_int(fa.live, 0, "destroy freed the reserved slabs");

    /* ---- an allocator that ignores the alignment asked for */
    struct crow_allocator skew = {skew_alloc, skew_free, NULL};
    crow_pool_config_init(&c, 64);
    c.allocator = &skew;
    p = crow_pool_new(&c);
    errno = 0;
    ok(p && crow_pool_get(p) == NULL && errno == EINVAL, "misaligned slab from the allocator: EINVAL");
    is_int(stats(p).slabs, 0, "and no slab kept");
    crow_pool_destroy(p);

    /* ---- destroy with objects still out frees everything */
    memset(&fa, 0, sizeof fa);
    crow_pool_config_init(&c, 200);
    c.allocator = &fal;
    p = crow_pool_new(&c);
    for (int i = 0; i < 1000; i++)
        crow_pool_get(p);
    ok(fa.live > 1, "%ld blocks live before destroy", fa.live);
    crow_pool_destroy(p);
    is_int(fa.live, 0, "destroy with live objects frees every block");

    /* ---- random gets and puts against a model: live count, free count, slab bound */
    crow_pool_config_init(&c, 48);
    c.slab_size = 4096;
    c.idle = 2;
    p = crow_pool_new(&c);
    per = stats(p).per_slab;
    enum { M = 3000 };
    void **live = calloc(M, sizeof *live);
    size_t nlive = 0, peak = 0;
    int good = 1;
    srand(11);
    for (int step = 0; step < 100000 && good; step++) {
        if (nlive < M && (nlive == 0 || rand() % 100 < (step % 20000 < 10000 ? 60 : 40))) {
            unsigned char *o = crow_pool_get(p);
            if (!o) {
                good = 0;
                break;
            }
            memset(o, (int)(nlive & 0xff), 48);
            live[nlive++] = o;
        } else {
            size_t k = (size_t)rand() % nlive;
            unsigned char *o = live[k];
            for (int j = 0; j < 48; j++)
                if (o[j] != (unsigned char)(k & 0xff))
                    good = 0;
            crow_pool_put(p, o);
            live[k] = live[--nlive];
            if (k < nlive)
                memset(live[k], (int)(k & 0xff), 48);
        }
        if (nlive > peak)
            peak = nlive;
        st = stats(p);
        if (st.live != nlive || st.free + st.live != st.slabs * per || st.empty_slabs > 2 ||
            st.bytes != st.slabs * 4096)
            good = 0;
    }
    ok(good, "100000 random gets/puts: contents intact, stats match the model");
    ok(stats(p).slabs_created > stats(p).slabs, "slabs were given back along the way");
    free(live);
    crow_pool_destroy(p);

    return tap_done();
}
