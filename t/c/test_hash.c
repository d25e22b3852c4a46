/* test_hash.c — crow_hash: API, failure contracts, incremental resizing, iteration with
 * deletion, allocation failures (failalloc.h), default and custom hash functions. */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "failalloc.h"
#include "hash.h"
#include "tap.h"

static uint64_t rs = 42;
static uint64_t rnd(void)
{
    uint64_t z = (rs += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static struct crow_hash *new_u64(size_t step, struct crow_allocator *a)
{
    struct crow_hash_options o = {.kind = CROW_HASH_U64, .step = step, .allocator = a};
    return crow_hash_new(&o);
}

/* Every key in KEYS[0..N) maps to its index (as value) and COUNT is N. */
static int all_present(struct crow_hash *h, const uint64_t *keys, size_t n)
{
    if (crow_hash_count(h) != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        void *v = NULL;
        if (crow_hash_get_u64(h, keys[i], &v) != 1 || (uintptr_t)v != i)
            return 0;
    }
    return 1;
}

static int ci_eq(const void *a, size_t alen, const void *b, size_t blen, void *ctx);

static void test_basic_bytes(void)
{
    struct crow_hash *h = crow_hash_new(NULL);
    ok(h != NULL, "new(NULL) makes a bytes table");
    void *v = NULL, *old = NULL;
    is_int(crow_hash_put(h, "alpha", 5, (void *)1, NULL), 1, "put new key returns 1");
    is_int(crow_hash_put(h, "beta", 4, (void *)2, NULL), 1, "put second key returns 1");
    is_int(crow_hash_put(h, "alpha", 5, (void *)3, &old), 0, "put existing key returns 0");
    ok(old == (void *)1, "replace reports the old value");
    is_int(crow_hash_get(h, "alpha", 5, &v), 1, "get finds key");
    ok(v == (void *)3, "get returns the replaced value");
    is_int(crow_hash_get(h, "alph", 4, &v), 0, "get of a prefix misses");
    is_int(crow_hash_get(h, "alphaX", 6, NULL), 0, "get of a longer key misses");
    is_int(crow_hash_count(h), 2, "count is 2");
    is_int(crow_hash_put(h, NULL, 0, (void *)9, NULL), 1, "empty key (NULL, 0) inserts");
    is_int(crow_hash_get(h, "", 0, &v), 1, "empty key found through another pointer");
    ok(v == (void *)9, "empty key value");
    is_int(crow_hash_del(h, "beta", 4, &v), 1, "del existing returns 1");
    ok(v == (void *)2, "del reports the value");
    is_int(crow_hash_del(h, "beta", 4, NULL), 0, "del again returns 0");
    is_int(crow_hash_get(h, "beta", 4, NULL), 0, "deleted key is gone");
    is_int(crow_hash_count(h), 2, "count after delete");
    /* wrong kind */
    errno = 0;
    is_int(crow_hash_put_u64(h, 5, NULL, NULL), -1, "put_u64 on a bytes table fails");
    is_int(errno, EINVAL, "... with EINVAL");
    errno = 0;
    is_int(crow_hash_get_u64(h, 5, NULL), -1, "get_u64 on a bytes table fails EINVAL");
    is_int(errno, EINVAL, "... errno EINVAL");
    errno = 0;
    is_int(crow_hash_del_u64(h, 5, NULL), -1, "del_u64 on a bytes table fails");
    is_int(errno, EINVAL, "... errno EINVAL");
    crow_hash_free(h);
    crow_hash_free(NULL);
    ok(1, "free(NULL) is a no-op");
}

static void test_options(void)
{
    struct crow_hash_options o;
    struct {
        const char *what;
        struct crow_hash_options o;
    } bad[] = {
        {"bad kind", {.kind = (enum crow_hash_kind)7}},
        {"max_load 0.1", {.max_load = 0.1}},
        {"max_load 0.95", {.max_load = 0.95}},
        {"eq without hash", {.eq = ci_eq}},
        {"COPY_KEYS on U64", {.kind = CROW_HASH_U64, .flags = CROW_HASH_COPY_KEYS}},
        {"unknown flag", {.flags = 0x100}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        ok(crow_hash_new(&bad[i].o) == NULL && errno == EINVAL, "new rejects %s with EINVAL", bad[i].what);
    }
    memset(&o, 0, sizeof o);
    o.kind = CROW_HASH_U64;
    o.hash = (crow_hash_fn)(uintptr_t)1; /* never called: creation fails first */
    o.eq = (crow_hash_eq_fn)(uintptr_t)1;
    errno = 0;
    ok(crow_hash_new(&o) == NULL && errno == EINVAL, "new rejects eq on a U64 table");

    /* initial_size presizes and is a floor for shrinking */
    memset(&o, 0, sizeof o);
    o.kind = CROW_HASH_U64;
    o.initial_size = 1000;
    o.max_load = 0.5;
    struct crow_hash *h = crow_hash_new(&o);
    struct crow_hash_stats st;
    crow_hash_stats(h, &st);
    ok(st.size >= 2000 && st.size <= 4096, "initial_size 1000 at load 0.5 gives %zu slots", st.size);
    for (uint64_t k = 2; k < 1002; k++)
        crow_hash_put_u64(h, k, NULL, NULL);
    crow_hash_stats(h, &st);
    is_int(st.resizes, 0, "1000 entries fit without resizing");
    is_int(st.state, 0, "and no resize started");
    size_t presized = st.size;
    for (uint64_t k = 2; k < 1002; k++)
        crow_hash_del_u64(h, k, NULL);
    crow_hash_stats(h, &st);
    ok(st.size == presized && st.new_size == 0, "emptying does not shrink below initial_size");
    crow_hash_free(h);

    /* seeds */
    o = (struct crow_hash_options){.flags = CROW_HASH_FIXED_SEED, .seed = 7};
    h = crow_hash_new(&o);
    ok(h != NULL, "FIXED_SEED accepted");
    crow_hash_free(h);
}

static void test_u64_grow_shrink(void)
{
    enum { N = 200000 };
    uint64_t *keys = malloc(N * sizeof *keys);
    for (size_t i = 0; i < N; i++)
        keys[i] = rnd() | 2; /* avoid 0/1 here; tested separately */
    struct crow_hash *h = new_u64(0, NULL);
    int fails = 0;
    for (size_t i = 0; i < N; i++)
        fails += crow_hash_put_u64(h, keys[i], (void *)(uintptr_t)i, NULL) != 1;
    is_int(fails, 0, "200k random u64 inserts all return 1");
    ok(all_present(h, keys, N), "all 200k present with their values");
    struct crow_hash_stats st;
    crow_hash_stats(h, &st);
    ok(st.resizes >= 10, "table grew through %zu resizes", st.resizes);
    ok(st.size >= N, "size %zu holds N", st.size);
    int misses = 0;
    for (int i = 0; i < 10000; i++)
        misses += crow_hash_get_u64(h, rnd() | 2, NULL) == 0;
    is_int(misses, 10000, "10k random absent keys miss");

    /* specials 0 and 1 */
    void *v;
    is_int(crow_hash_put_u64(h, 0, (void *)10, NULL), 1, "key 0 inserts");
    is_int(crow_hash_put_u64(h, 1, (void *)11, NULL), 1, "key 1 inserts");
    is_int(crow_hash_put_u64(h, 0, (void *)12, &v), 0, "key 0 replaces");
    ok(v == (void *)10, "key 0 old value");
    is_int(crow_hash_get_u64(h, 1, &v), 1, "key 1 found");
    ok(v == (void *)11, "key 1 value");
    is_int(crow_hash_count(h), N + 2, "count includes keys 0 and 1");
    is_int(crow_hash_del_u64(h, 0, &v), 1, "key 0 deletes");
    is_int(crow_hash_del_u64(h, 1, NULL), 1, "key 1 deletes");
    is_int(crow_hash_get_u64(h, 0, NULL), 0, "key 0 gone");

    /* shrink: delete all but 100 */
    size_t big = st.size;
    fails = 0;
    for (size_t i = 100; i < N; i++)
        fails += crow_hash_del_u64(h, keys[i], NULL) != 1;
    is_int(fails, 0, "deleting 199,900 keys all return 1");
    ok(all_present(h, keys, 100), "the 100 left are intact");
    while (crow_hash_rehash(h, 1 << 20) == 1)
        ;
    crow_hash_stats(h, &st);
    ok(st.size < big / 64, "table shrank from %zu to %zu slots", big, st.size);
    ok(st.size >= 128, "but still holds the rest (%zu slots)", st.size);
    crow_hash_free(h);
    free(keys);
}

/* Small work per operation: watch the phases and bound the work any single op does. */
static void test_incremental(void)
{
    enum { N = 100000 };
    uint64_t *keys = malloc(N * sizeof *keys);
    for (size_t i = 0; i < N; i++)
        keys[i] = rnd() | 2;
    for (int pass = 0; pass < 2; pass++) {
        size_t step = pass ? 0 : 2;
        struct crow_hash *h = new_u64(step, NULL);
        size_t seen[3] = {0, 0, 0}, max_moved = 0, max_zeroed = 0, checks_bad = 0, mid_checks = 0;
        int prev_state = 0;
        for (size_t i = 0; i < N; i++) {
            crow_hash_put_u64(h, keys[i], (void *)(uintptr_t)i, NULL);
            struct crow_hash_stats st;
            crow_hash_stats(h, &st);
            seen[st.state]++;
            if (st.last_moved > max_moved)
                max_moved = st.last_moved;
            if (st.last_zeroed > max_zeroed)
                max_zeroed = st.last_zeroed;
            /* at the first op of each move and every so often mid-move: all earlier keys
             * still reachable */
            int first = st.state == 2 && prev_state != 2;
            prev_state = st.state;
            if (st.state == 2 && (i % 997 == 0 || first)) {
                mid_checks++;
                for (size_t j = 0; j <= i; j++) {
                    void *v;
                    if (crow_hash_get_u64(h, keys[j], &v) != 1 || (uintptr_t)v != j) {
                        checks_bad++;
                        break;
                    }
                }
            }
        }
        size_t s = step ? step : 1024; /* the default */
        ok(seen[1] > 0 && seen[2] > 0, "step %zu: preparing seen %zu ops, moving %zu ops", s, seen[1], seen[2]);
        ok(max_moved <= 4 * s, "step %zu: no put moved more than 4x step slots (max %zu)", s, max_moved);
        ok(max_zeroed <= 4 * 8 * s, "step %zu: no put cleared more than 4x8x step slots (max %zu)", s, max_zeroed);
        ok(mid_checks > 0 && checks_bad == 0, "step %zu: lookups mid-move find everything (%zu checks)", s,
           mid_checks);
        /* deletes while moving */
        size_t dels_bad = 0;
        max_moved = 0;
        for (size_t i = 0; i < N; i += 2) {
            if (crow_hash_del_u64(h, keys[i], NULL) != 1)
                dels_bad++;
            struct crow_hash_stats st;
            crow_hash_stats(h, &st);
            if (st.last_moved > max_moved)
                max_moved = st.last_moved;
        }
        is_int(dels_bad, 0, "deleting every other key succeeds");
        ok(max_moved <= 4 * s, "deletes move at most 4x step slots (max %zu)", max_moved);
        size_t bad = 0;
        for (size_t i = 0; i < N; i++)
            bad += crow_hash_get_u64(h, keys[i], NULL) != (int)(i & 1);
        is_int(bad, 0, "odd keys remain, even keys gone");
        is_int(crow_hash_count(h), N / 2, "count is N/2");
        crow_hash_free(h);
    }
    free(keys);
}

static void test_iteration(void)
{
    enum { N = 5000 };
    /* Build a table mid-move so iteration covers both tables. */
    struct crow_hash *h = new_u64(1, NULL);
    uint64_t *keys = malloc(N * sizeof *keys);
    size_t n = 0;
    struct crow_hash_stats st;
    for (;;) {
        keys[n] = rnd() | 2;
        crow_hash_put_u64(h, keys[n], (void *)(uintptr_t)n, NULL);
        n++;
        crow_hash_stats(h, &st);
        if ((st.state == 2 && n > 1000) || n == N)
            break;
    }
    is_int(st.state, 2, "iteration test starts mid-move");
    unsigned char *seen = calloc(n, 1);
    struct crow_hash_iter it;
    struct crow_hash_entry e;
    crow_hash_iter_init(h, &it);
    crow_hash_stats(h, &st);
    is_int(st.iterators, 1, "one live iterator");
    errno = 0;
    ok(crow_hash_rehash(h, 100) == -1 && errno == EBUSY, "rehash refuses with EBUSY while iterating");
    size_t returned = 0, deleted = 0, dup = 0, wrong = 0, moved_during = 0;
    while (crow_hash_iter_next(&it, &e)) {
        size_t idx = (uintptr_t)e.value;
        if (idx >= n || keys[idx] != e.u64)
            wrong++;
        else if (seen[idx]++)
            dup++;
        returned++;
        if (idx % 3 == 0) {
            if (crow_hash_iter_del(&it) != 1)
                wrong++;
            if (crow_hash_iter_del(&it) != 0) /* twice: no current entry */
                wrong++;
            deleted++;
        } else if (idx % 3 == 1) {
            if (crow_hash_del_u64(h, e.u64, NULL) != 1) /* delete current through the API */
                wrong++;
            crow_hash_stats(h, &st);
            moved_during += st.last_moved + st.last_zeroed;
            if (crow_hash_iter_del(&it) != 0)
                wrong++;
            deleted++;
        }
    }
    is_int(returned, n, "iteration mid-move returns every entry");
    is_int(dup, 0, "no entry twice");
    is_int(wrong, 0, "keys and values match, deletes behave");
    is_int(moved_during, 0, "deletes do no resize work while iterating");
    is_int(crow_hash_count(h), n - deleted, "count after deleting 2/3 during iteration");
    crow_hash_stats(h, &st);
    is_int(st.iterators, 0, "iterator released at the end");
    is_int(crow_hash_iter_next(&it, &e), 0, "next after the end stays 0");
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += crow_hash_get_u64(h, keys[i], NULL) != (i % 3 == 2);
    is_int(bad, 0, "exactly the untouched third remains");
    /* resizing resumes afterwards */
    while (crow_hash_rehash(h, 64) == 1)
        ;
    crow_hash_stats(h, &st);
    is_int(st.state, 0, "resize completes after iteration");
    bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += crow_hash_get_u64(h, keys[i], NULL) != (i % 3 == 2);
    is_int(bad, 0, "and the survivors are all reachable");

    /* early end, empty iteration */
    crow_hash_iter_init(h, &it);
    ok(crow_hash_iter_next(&it, &e) == 1, "new iterator returns an entry");
    crow_hash_iter_end(&it);
    crow_hash_iter_end(&it);
    crow_hash_stats(h, &st);
    is_int(st.iterators, 0, "iter_end releases (twice is harmless)");
    is_int(crow_hash_iter_del(&it), 0, "iter_del on an ended iterator returns 0");
    crow_hash_free(h);

    h = crow_hash_new(NULL);
    crow_hash_iter_init(h, &it);
    is_int(crow_hash_iter_del(&it), 0, "iter_del before any next returns 0");
    is_int(crow_hash_iter_next(&it, &e), 0, "empty table iterates nothing");
    crow_hash_free(h);

    /* U64 keys 0 and 1 are iterated too */
    h = new_u64(0, NULL);
    crow_hash_put_u64(h, 0, (void *)100, NULL);
    crow_hash_put_u64(h, 1, (void *)101, NULL);
    crow_hash_put_u64(h, 77, (void *)177, NULL);
    int got = 0;
    crow_hash_iter_init(h, &it);
    while (crow_hash_iter_next(&it, &e)) {
        got += (uintptr_t)e.value == e.u64 + 100;
        if (e.u64 == 0)
            crow_hash_iter_del(&it);
    }
    is_int(got, 3, "keys 0, 1 and 77 iterated with their values");
    is_int(crow_hash_get_u64(h, 0, NULL), 0, "iter_del removes key 0");
    crow_hash_free(h);

    /* inserts while iterating: allowed until the table is full, then EBUSY, unchanged */
    h = new_u64(0, NULL); /* 16 slots */
    crow_hash_put_u64(h, 1000, NULL, NULL);
    crow_hash_iter_init(h, &it);
    crow_hash_iter_next(&it, &e);
    int r = 0;
    uint64_t k = 2000;
    size_t before = 0;
    for (; k < 2100; k++) {
        before = crow_hash_count(h);
        errno = 0;
        if ((r = crow_hash_put_u64(h, k, NULL, NULL)) != 1)
            break;
    }
    ok(r == -1 && errno == EBUSY, "insert into a full table during iteration fails with EBUSY");
    ok(crow_hash_count(h) == before && crow_hash_get_u64(h, k, NULL) == 0, "and leaves the table unchanged");
    is_int(crow_hash_put_u64(h, 1000, (void *)5, NULL), 0, "replacing still works");
    crow_hash_iter_end(&it);
    is_int(crow_hash_put_u64(h, k, NULL, NULL), 1, "after iter_end the insert succeeds (table grows)");
    crow_hash_free(h);
    free(seen);
    free(keys);
}

static void test_failalloc(void)
{
    struct failalloc f = {0};
    struct crow_allocator a = failalloc_make(&f);
    struct crow_hash_options o = {.kind = CROW_HASH_BYTES, .allocator = &a, .flags = CROW_HASH_COPY_KEYS};

    f.fail_at = 1;
    errno = 0;
    ok(crow_hash_new(&o) == NULL && errno == ENOMEM, "new fails ENOMEM when the header allocation fails");
    f = (struct failalloc){.fail_at = 2};
    errno = 0;
    ok(crow_hash_new(&o) == NULL && errno == ENOMEM, "new fails ENOMEM when the table allocation fails");
    is_int(f.live, 0, "... and frees what it had");

    /* key copy fails: -1 ENOMEM, unchanged */
    f = (struct failalloc){0};
    struct crow_hash *h = crow_hash_new(&o);
    char kb[32];
    for (int i = 0; i < 5; i++) {
        int n = snprintf(kb, sizeof kb, "key%d", i);
        crow_hash_put(h, kb, (size_t)n, (void *)(uintptr_t)i, NULL);
    }
    f.fail_at = f.calls + 1;
    errno = 0;
    is_int(crow_hash_put(h, "new", 3, NULL, NULL), -1, "put fails when the key copy cannot be allocated");
    is_int(errno, ENOMEM, "... errno ENOMEM");
    ok(crow_hash_count(h) == 5 && crow_hash_get(h, "new", 3, NULL) == 0, "... table unchanged");
    is_int(crow_hash_put(h, "new", 3, NULL, NULL), 1, "the next put succeeds");
    /* copied keys: the caller's buffer may change */
    strcpy(kb, "mutable");
    crow_hash_put(h, kb, 7, (void *)42, NULL);
    strcpy(kb, "XXXXXXX");
    void *v = NULL;
    ok(crow_hash_get(h, "mutable", 7, &v) == 1 && v == (void *)42, "copied key survives the caller's buffer");
    crow_hash_free(h);
    ok(f.live == 0 && f.bytes == 0, "free releases every block (copies included)");

    /* growth that cannot allocate defers; inserts go on until the table is full */
    f = (struct failalloc){0};
    struct crow_hash_options ou = {.kind = CROW_HASH_U64, .allocator = &a};
    h = crow_hash_new(&ou);
    f.fail_at = f.calls + 1;
    f.fail_after = 1;
    uint64_t k = 2;
    int r;
    size_t before;
    do {
        before = crow_hash_count(h);
        errno = 0;
        r = crow_hash_put_u64(h, k, (void *)(uintptr_t)k, NULL);
        k++;
    } while (r == 1 && k < 100000);
    k--;
    struct crow_hash_stats st;
    crow_hash_stats(h, &st);
    ok(r == -1 && errno == ENOMEM, "put fails ENOMEM once the table is full and cannot grow");
    ok(st.deferred > 0 && st.resizes == 0, "growth was deferred (%zu times), not done", st.deferred);
    ok(crow_hash_count(h) == before && crow_hash_get_u64(h, k, NULL) == 0, "failed put left the table unchanged");
    size_t bad = 0;
    for (uint64_t j = 2; j < k; j++) {
        void *got;
        bad += crow_hash_get_u64(h, j, &got) != 1 || (uintptr_t)got != j;
    }
    is_int(bad, 0, "every key inserted before is intact");
    f.fail_at = 0;
    is_int(crow_hash_put_u64(h, k, (void *)(uintptr_t)k, NULL), 1, "with memory back, the put succeeds");
    for (uint64_t j = k + 1; j < 5000; j++)
        crow_hash_put_u64(h, j, (void *)(uintptr_t)j, NULL);
    crow_hash_stats(h, &st);
    ok(st.resizes > 0 && crow_hash_count(h) == 4998, "and the table grows (%zu resizes)", st.resizes);
    crow_hash_free(h);
    is_int(f.live, 0, "no block leaked");

    /* fail the Nth allocation of a mixed workload, for every N: contents always match a model */
    int consistent = 1, leaks = 0;
    for (long nth = 1; nth <= 40; nth++) {
        f = (struct failalloc){0};
        h = crow_hash_new(&o);
        if (!h) {
            consistent = 0;
            break;
        }
        f.fail_at = nth;
        unsigned char present[64] = {0};
        for (int i = 0; i < 3000; i++) {
            int key = (int)(rnd() % 64), op = (int)(rnd() % 3);
            int n = snprintf(kb, sizeof kb, "k%d", key);
            if (op < 2) {
                r = crow_hash_put(h, kb, (size_t)n, (void *)(uintptr_t)key, NULL);
                if (r == 1)
                    present[key] = 1;
                else if (r == 0 && !present[key])
                    consistent = 0;
                else if (r == -1 && errno != ENOMEM)
                    consistent = 0;
            } else {
                r = crow_hash_del(h, kb, (size_t)n, NULL);
                if (r != present[key])
                    consistent = 0;
                present[key] = 0;
            }
        }
        size_t cnt = 0;
        for (int key = 0; key < 64; key++) {
            int n = snprintf(kb, sizeof kb, "k%d", key);
            if (crow_hash_get(h, kb, (size_t)n, NULL) != present[key])
                consistent = 0;
            cnt += present[key];
        }
        if (crow_hash_count(h) != cnt)
            consistent = 0;
        crow_hash_free(h);
        leaks += f.live != 0;
    }
    ok(consistent, "failing allocation N=1..40 in a put/del workload: table always matches the model");
    is_int(leaks, 0, "... and nothing leaks");
}

static uint64_t ci_hash(const void *k, size_t len, void *ctx)
{
    (void)ctx;
    uint32_t h = 2166136261u; /* FNV-1a over lowercased bytes: a 32-bit custom hash */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint32_t)tolower(((const unsigned char *)k)[i])) * 16777619u;
    return h;
}

static int ci_eq(const void *a, size_t alen, const void *b, size_t blen, void *ctx)
{
    (void)ctx;
    return alen == blen && strncasecmp(a, b, alen) == 0;
}

static uint64_t len_hash(const void *k, size_t len, void *ctx)
{
    (void)k;
    (*(int *)ctx)++;
    return len; /* dreadful on purpose: everything of one length collides */
}

static uint64_t ident64(const void *k, size_t len, void *ctx)
{
    (void)len, (void)ctx;
    uint64_t v;
    memcpy(&v, k, 8);
    return v;
}

static void test_custom(void)
{
    struct crow_hash_options o = {.hash = ci_hash, .eq = ci_eq};
    struct crow_hash *h = crow_hash_new(&o);
    crow_hash_put(h, "Hello", 5, (void *)1, NULL);
    void *v = NULL;
    ok(crow_hash_get(h, "HELLO", 5, &v) == 1 && v == (void *)1, "custom 32-bit hash + eq: case-insensitive hit");
    is_int(crow_hash_put(h, "hello", 5, (void *)2, NULL), 0, "custom eq: differently-cased key replaces");
    crow_hash_free(h);

    int calls = 0;
    o = (struct crow_hash_options){.hash = len_hash, .ctx = &calls, .flags = CROW_HASH_COPY_KEYS};
    h = crow_hash_new(&o);
    char kb[16];
    size_t bad = 0;
    for (int i = 0; i < 300; i++) {
        int n = snprintf(kb, sizeof kb, "%05d", i);
        bad += crow_hash_put(h, kb, (size_t)n, (void *)(uintptr_t)i, NULL) != 1;
    }
    for (int i = 0; i < 300; i++) {
        int n = snprintf(kb, sizeof kb, "%05d", i);
        v = NULL;
        bad += crow_hash_get(h, kb, (size_t)n, &v) != 1 || (uintptr_t)v != (uintptr_t)i;
    }
    for (int i = 0; i < 300; i += 2) {
        int n = snprintf(kb, sizeof kb, "%05d", i);
        bad += crow_hash_del(h, kb, (size_t)n, NULL) != 1;
    }
    for (int i = 0; i < 300; i++) {
        int n = snprintf(kb, sizeof kb, "%05d", i);
        bad += crow_hash_get(h, kb, (size_t)n, NULL) != (i & 1);
    }
    is_int(bad, 0, "all-colliding custom hash: 300 keys insert, find, delete correctly");
    ok(calls >= 900, "the custom hash was used (%d calls)", calls);
    crow_hash_free(h);

    /* a 64-bit custom hash on a U64 table: identity (sequential keys, top bits zero) */
    o = (struct crow_hash_options){.kind = CROW_HASH_U64, .hash = ident64};
    h = crow_hash_new(&o);
    bad = 0;
    for (uint64_t k = 0; k < 50000; k++)
        bad += crow_hash_put_u64(h, k << 20, (void *)(uintptr_t)k, NULL) != 1;
    for (uint64_t k = 0; k < 50000; k++) {
        v = NULL;
        bad += crow_hash_get_u64(h, k << 20, &v) != 1 || (uintptr_t)v != k;
    }
    bad += crow_hash_get_u64(h, 3, NULL) != 0;
    is_int(bad, 0, "identity 64-bit hash on a U64 table works for 50k strided keys");
    crow_hash_free(h);
}

static int cmp(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static int popcount64(uint64_t x) { return __builtin_popcountll(x); }

static void test_default_hashes(void)
{
    /* bytes: seed matters, deterministic, every length distinct */
    const char *s = "the quick brown fox jumps over the lazy dog, again and again and again!";
    size_t L = strlen(s);
    ok(crow_hash_bytes(s, L, 1) == crow_hash_bytes(s, L, 1), "crow_hash_bytes is deterministic");
    ok(crow_hash_bytes(s, L, 1) != crow_hash_bytes(s, L, 2), "crow_hash_bytes depends on the seed");
    int distinct = 1;
    for (size_t a = 0; a <= L; a++)
        for (size_t b = a + 1; b <= L; b++)
            if (crow_hash_bytes(s, a, 0) == crow_hash_bytes(s, b, 0))
                distinct = 0;
    ok(distinct, "every prefix length 0..%zu hashes differently", L);
    /* avalanche: flipping any input bit flips about half the output bits */
    unsigned char buf[80];
    double total = 0;
    int nsamp = 0, worst_lo = 64, worst_hi = 0;
    size_t lens[] = {1, 3, 4, 7, 8, 15, 16, 17, 33, 49, 80};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        size_t len = lens[li];
        for (int trial = 0; trial < 20; trial++) {
            for (size_t i = 0; i < len; i++)
                buf[i] = (unsigned char)rnd();
            uint64_t h0 = crow_hash_bytes(buf, len, 99);
            for (size_t bit = 0; bit < len * 8; bit++) {
                buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
                int d = popcount64(h0 ^ crow_hash_bytes(buf, len, 99));
                buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
                total += d;
                nsamp++;
                if (d < worst_lo)
                    worst_lo = d;
                if (d > worst_hi)
                    worst_hi = d;
            }
        }
    }
    double mean = total / nsamp;
    ok(mean > 31 && mean < 33, "crow_hash_bytes avalanche: mean %.2f bits of 64 flip (range %d..%d)", mean,
       worst_lo, worst_hi);
    ok(worst_lo > 8, "no single-bit change flips fewer than 9 output bits");

    /* u64: a bijection (no collisions among 1M sequential keys), good avalanche */
    enum { M = 1 << 20 };
    uint64_t *v = malloc(M * sizeof *v);
    for (uint64_t i = 0; i < M; i++)
        v[i] = crow_hash_u64(i, 5);
    qsort(v, M, sizeof *v, cmp);
    size_t coll = 0;
    for (size_t i = 1; i < M; i++)
        coll += v[i] == v[i - 1];
    is_int(coll, 0, "crow_hash_u64: 1M sequential keys, no collisions");
    free(v);
    ok(crow_hash_u64(12345, 1) != crow_hash_u64(12345, 2), "crow_hash_u64 depends on the seed");
    total = 0;
    nsamp = 0;
    for (int trial = 0; trial < 2000; trial++) {
        uint64_t k = rnd(), h0 = crow_hash_u64(k, 3);
        for (int bit = 0; bit < 64; bit++, nsamp++)
            total += popcount64(h0 ^ crow_hash_u64(k ^ (1ull << bit), 3));
    }
    mean = total / nsamp;
    ok(mean > 31.5 && mean < 32.5, "crow_hash_u64 avalanche: mean %.2f bits flip", mean);
    /* bucket spread of sequential keys through the table's own use: top 10 bits */
    unsigned counts[1024] = {0};
    for (uint64_t i = 0; i < 1024 * 64; i++)
        counts[(crow_hash_u64(i, 0) * 0x9E3779B97F4A7C15ull) >> 54]++;
    double chi = 0;
    for (int i = 0; i < 1024; i++)
        chi += (counts[i] - 64.0) * (counts[i] - 64.0) / 64.0;
    ok(chi < 1200, "sequential u64 keys spread over 1024 buckets (chi-square %.0f, df 1023)", chi);
}

static void test_rehash_api(void)
{
    struct crow_hash *h = new_u64(1, NULL);
    for (uint64_t k = 2; k < 15; k++)
        crow_hash_put_u64(h, k, NULL, NULL);
    struct crow_hash_stats st;
    crow_hash_stats(h, &st);
    ok(st.state != 0, "a 16-slot table with 13 entries and step 1 is resizing (state %d)", st.state);
    is_int(crow_hash_rehash(h, 0), 1, "rehash(0) does nothing and reports work left");
    int rounds = 0;
    while (crow_hash_rehash(h, 4) == 1 && rounds < 10000)
        rounds++;
    crow_hash_stats(h, &st);
    ok(st.state == 0 && st.size > 16 && st.resizes == 1 && crow_hash_count(h) == 13, "rehash finishes the resize (%d rounds, %zu slots)",
       rounds, st.size);
    is_int(crow_hash_rehash(h, 4), 0, "rehash on a stable table returns 0");
    crow_hash_free(h);
}

int main(void)
{
    test_basic_bytes();
    test_options();
    test_u64_grow_shrink();
    test_incremental();
    test_iteration();
    test_failalloc();
    test_custom();
    test_default_hashes();
    test_rehash_api();
    return tap_done();
}
