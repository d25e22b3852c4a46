/* fuzz_hash.c — random put/get/del/iterate-with-delete sequences on a U64 and a BYTES table
 * (small resize steps, so growth and shrink are usually in progress) against a direct-mapped
 * model of 256 keys; abort() on any mismatch. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

#define NK 256

struct model {
    unsigned char present[NK];
    uintptr_t value[NK];
    size_t count;
};

static size_t key_bytes(unsigned k, unsigned char *buf)
{
    size_t len = 1 + k % 3;
    buf[0] = (unsigned char)k;
    buf[1] = (unsigned char)(k ^ 0x55);
    buf[2] = (unsigned char)(k * 7);
    return len;
}

static uint64_t key_u64(unsigned k, int spread)
{
    /* keys 0 and 1 exercise the side slots; SPREAD puts the rest far apart */
    return k < 2 || !spread ? k : (uint64_t)k * 0x100000001ull;
}

static void check_all(struct crow_hash *hu, struct crow_hash *hb, const struct model *m, int spread)
{
    unsigned char kb[4];
    for (unsigned k = 0; k < NK; k++) {
        void *v = NULL;
        int r = crow_hash_get_u64(hu, key_u64(k, spread), &v);
        if (r != m->present[k] || (r && (uintptr_t)v != m->value[k]))
            abort();
        v = NULL;
        r = crow_hash_get(hb, kb, key_bytes(k, kb), &v);
        if (r != m->present[k] || (r && (uintptr_t)v != m->value[k]))
            abort();
    }
    if (crow_hash_count(hu) != m->count || crow_hash_count(hb) != m->count)
        abort();
}

/* Iterate one table, checking every entry against the model exactly once, deleting those
 * chosen by SEL (through iter_del or del, alternately). */
static void iterate(struct crow_hash *h, int is_u64, struct model *m, unsigned sel, int spread, unsigned char *del)
{
    unsigned char seen[NK] = {0};
    struct crow_hash_iter it;
    struct crow_hash_entry e;
    size_t n = 0;
    crow_hash_iter_init(h, &it);
    while (crow_hash_iter_next(&it, &e)) {
        unsigned k;
        if (is_u64) {
            uint64_t u = e.u64;
            k = (unsigned)(u < 2 || !spread ? u : u / 0x100000001ull);
            if (k >= NK || key_u64(k, spread) != u)
                abort();
        } else {
            unsigned char kb[4];
            if (e.len < 1 || e.len > 3)
                abort();
            k = ((const unsigned char *)e.key)[0];
            if (key_bytes(k, kb) != e.len || memcmp(kb, e.key, e.len) != 0)
                abort();
        }
        if (!m->present[k] || seen[k]++ || (uintptr_t)e.value != m->value[k])
            abort();
        n++;
        if ((k + sel) % 3 == 0) {
            if (k & 1) {
                if (crow_hash_iter_del(&it) != 1)
                    abort();
            } else if (is_u64) {
                if (crow_hash_del_u64(h, e.u64, NULL) != 1)
                    abort();
            } else {
                if (crow_hash_del(h, e.key, e.len, NULL) != 1)
                    abort();
            }
            del[k] = 1;
        }
    }
    if (n != m->count)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const double loads[4] = {0.25, 0.5, 0.75, 0.875};
    int spread = data[0] >> 7;
    struct crow_hash_options ou = {.kind = CROW_HASH_U64, .step = 1 + (data[0] & 3), .max_load = loads[(data[0] >> 2) & 3],
                                   .initial_size = (data[0] >> 4) & 1 ? 40 : 0};
    struct crow_hash_options ob = ou;
    ob.kind = CROW_HASH_BYTES;
    ob.flags = CROW_HASH_COPY_KEYS;
    struct crow_hash *hu = crow_hash_new(&ou), *hb = crow_hash_new(&ob);
    if (!hu || !hb)
        abort();
    struct model m;
    memset(&m, 0, sizeof m);
    uintptr_t counter = 1;
    for (size_t p = 1; p + 1 < size; p += 2) {
        unsigned op = data[p] % 10, k = data[p + 1];
        unsigned char kb[4];
        size_t len = key_bytes(k, kb);
        uint64_t uk = key_u64(k, spread);
        void *old = NULL;
        int r;
        switch (op) {
        case 0: case 1: case 2: case 3: {
            uintptr_t v = counter++;
            r = crow_hash_put_u64(hu, uk, (void *)v, &old);
            if (r != !m.present[k] || (r == 0 && (uintptr_t)old != m.value[k]))
                abort();
            old = NULL;
            r = crow_hash_put(hb, kb, len, (void *)v, &old);
            if (r != !m.present[k] || (r == 0 && (uintptr_t)old != m.value[k]))
                abort();
            if (!m.present[k])
                m.count++;
            m.present[k] = 1;
            m.value[k] = v;
            break;
        }
        case 4: {
            void *v = NULL;
            r = crow_hash_get_u64(hu, uk, &v);
            if (r != m.present[k] || (r && (uintptr_t)v != m.value[k]))
                abort();
            r = crow_hash_get(hb, kb, len, &v);
            if (r != m.present[k] || (r && (uintptr_t)v != m.value[k]))
                abort();
            break;
        }
        case 5: case 6: case 7:
            r = crow_hash_del_u64(hu, uk, &old);
            if (r != m.present[k] || (r && (uintptr_t)old != m.value[k]))
                abort();
            r = crow_hash_del(hb, kb, len, &old);
            if (r != m.present[k] || (r && (uintptr_t)old != m.value[k]))
                abort();
            if (m.present[k])
                m.count--;
            m.present[k] = 0;
            break;
        case 8: {
            unsigned char du[NK] = {0}, db[NK] = {0};
            iterate(hu, 1, &m, k, spread, du);
            iterate(hb, 0, &m, k, spread, db);
            if (memcmp(du, db, NK) != 0)
                abort();
            for (unsigned j = 0; j < NK; j++)
                if (du[j]) {
                    m.present[j] = 0;
                    m.count--;
                }
            check_all(hu, hb, &m, spread);
            break;
        }
        default:
            if (k & 1) {
                if (crow_hash_rehash(hu, k) < 0 || crow_hash_rehash(hb, k) < 0)
                    abort();
            } else {
                check_all(hu, hb, &m, spread);
            }
            break;
        }
    }
    check_all(hu, hb, &m, spread);
    crow_hash_free(hu);
    crow_hash_free(hb);
    return 0;
}
