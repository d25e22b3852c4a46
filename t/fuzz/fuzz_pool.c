/* fuzz_pool.c — random get/put/reserve/trim sequences on a slab pool, checked against a model
 * (contents intact, no overlap, alignment, stats, ctor/dtor balance); aborts on a mismatch. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

enum { MAXLIVE = 512 };

struct live {
    unsigned char *p;
    unsigned char tag;
};

static long constructed;

static int fz_ctor(void *o, void *arg)
{
    memset(o, 0xA5, *(size_t *)arg);
    constructed++;
    return 0;
}

static void fz_dtor(void *o, void *arg)
{
    (void)o, (void)arg;
    constructed--;
}

static void check(int cond)
{
    if (!cond)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (len < 4)
        return 0;
    static const size_t slabs[] = {4096, 8192, 16384, 0};
    static const size_t aligns[] = {0, 8, 16, 64};
    struct crow_pool_config c;
    size_t size = 1 + ((size_t)data[0] | (size_t)(data[1] & 1) << 8); /* 1..512 */
    crow_pool_config_init(&c, size);
    c.slab_size = slabs[data[1] >> 1 & 3];
    c.align = aligns[data[1] >> 3 & 3];
    c.idle = data[2] & 3;
    if (data[2] & 4) {
        c.ctor = fz_ctor;
        c.dtor = fz_dtor;
        c.arg = &size;
    }
    constructed = 0;
    struct crow_pool *p = crow_pool_new(&c);
    check(p != NULL);
    struct crow_pool_stats st;
    crow_pool_stats(p, &st);
    size_t align = c.align ? c.align : (size & -size) > 16 ? 16 : (size & -size);
    size_t per = st.per_slab;
    check(per >= 1 && st.object_size >= size && st.object_size % align == 0);

    struct live live[MAXLIVE];
    size_t nlive = 0;
    int reserved = 0;
    unsigned char tag = 0;
    for (size_t i = 3; i < len; i++) {
        uint8_t op = data[i];
        if (op < 150) { /* get */
            if (nlive == MAXLIVE)
                continue;
            unsigned char *o = crow_pool_get(p);
            check(o != NULL);
            check((uintptr_t)o % align == 0);
            for (size_t k = 0; k < nlive; k++)
                check(o + size <= live[k].p || live[k].p + size <= o);
            tag++;
            memset(o, tag, size);
            live[nlive].p = o;
            live[nlive].tag = tag;
            nlive++;
        } else if (op < 240) { /* put the one the byte picks */
            if (!nlive)
                continue;
            size_t k = (op * 7u + i) % nlive;
            for (size_t j = 0; j < size; j++)
                check(live[k].p[j] == live[k].tag);
            check(crow_pool_put(p, live[k].p) == 0);
            live[k] = live[--nlive];
        } else if (op < 248) {
            check(crow_pool_reserve(p, (size_t)(op - 240) * per / 2) == 0);
            reserved = 1;
        } else if (op < 252) {
            size_t keep = op - 248u;
            crow_pool_trim(p, keep);
            crow_pool_stats(p, &st);
            check(st.empty_slabs <= keep);
            if (keep <= c.idle)
                reserved = 0;
        }
        crow_pool_stats(p, &st);
        check(st.live == nlive);
        check(st.free + st.live == st.slabs * per);
        check(st.bytes == st.slabs * st.slab_size);
        check(st.empty_slabs <= st.slabs);
        if (!reserved)
            check(st.empty_slabs <= c.idle);
        check(st.slabs_created - st.slabs_released == st.slabs);
        if (c.ctor)
            check(constructed == (long)(st.slabs * per));
    }
    for (size_t k = 0; k < nlive; k++)
        for (size_t j = 0; j < size; j++)
            check(live[k].p[j] == live[k].tag);
    if (nlive && (data[2] & 8)) {
        for (size_t k = 0; k < nlive; k++)
            check(crow_pool_put(p, live[k].p) == 0);
        crow_pool_stats(p, &st);
        check(st.live == 0 && st.slabs == st.empty_slabs);
    }
    crow_pool_destroy(p);
    check(constructed == 0);
    return 0;
}
