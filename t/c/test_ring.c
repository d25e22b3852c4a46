/* test_ring.c — the SPSC ring: capacity, order, full/empty, batches, wrap-around, a
 * producer/consumer thread pair, and allocation failure. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "failalloc.h"
#include "ring.h"
#include "tap.h"

#define P(i) ((void *)(uintptr_t)(i))
#define I(p) ((uintptr_t)(p))

enum { STRESS = 2000000 };

static void *producer(void *arg)
{
    struct crow_ring *r = arg;
    uintptr_t next = 1;
    void *batch[7];
    while (next <= STRESS) {
        if (next % 3 == 0) {
            size_t k = 0;
            while (k < 7 && next + k <= STRESS)
                batch[k] = P(next + k), k++;
            next += crow_ring_push_n(r, batch, k);
        } else if (crow_ring_push(r, P(next)) == 0) {
            next++;
        }
    }
    return NULL;
}

int main(void)
{
    errno = 0;
    ok(crow_ring_new(NULL, 0) == NULL && errno == EINVAL, "capacity 0: EINVAL");
    errno = 0;
    ok(crow_ring_new(NULL, ((size_t)1 << 30) + 1) == NULL && errno == EINVAL,
       "capacity above 2^30: EINVAL");

    struct crow_ring *r = crow_ring_new(NULL, 5);
    ok(r != NULL, "new ring");
    is_int(crow_ring_capacity(r), 8, "capacity 5 rounds up to 8");
    ok(crow_ring_pop(r) == NULL, "pop on empty: NULL");
    errno = 0;
    ok(crow_ring_push(r, NULL) == -1 && errno == EINVAL, "push NULL: EINVAL");
    is_int(crow_ring_count(r), 0, "rejected push left it empty");

    int pushed = 0;
    for (uintptr_t i = 1; i <= 8; i++)
        pushed += crow_ring_push(r, P(i)) == 0;
    is_int(pushed, 8, "8 pushes fit in 8 slots");
    is_int(crow_ring_count(r), 8, "count 8");
    errno = 0;
    ok(crow_ring_push(r, P(9)) == -1 && errno == EAGAIN, "push on full: EAGAIN");
    is_int(crow_ring_count(r), 8, "full ring unchanged");
    void *one[1] = {P(9)};
    is_int(crow_ring_push_n(r, one, 1), 0, "push_n on full: 0");
    int order = 1;
    for (uintptr_t i = 1; i <= 8; i++)
        order &= I(crow_ring_pop(r)) == i;
    ok(order, "pops come out in push order");
    ok(crow_ring_pop(r) == NULL, "empty again");

    /* wrap-around: many laps with a varying fill level */
    uintptr_t in = 1, out = 1;
    int good = 1;
    for (int lap = 0; lap < 1000; lap++) {
        int want = lap % 9;
        for (int j = 0; j < want; j++)
            if (crow_ring_push(r, P(in)) == 0)
                in++;
        int take = (lap * 7) % 9;
        for (int j = 0; j < take; j++) {
            void *x = crow_ring_pop(r);
            if (!x)
                break;
            good &= I(x) == out++;
        }
        good &= crow_ring_count(r) == in - out && in - out <= 8;
    }
    ok(good, "1000 laps of mixed push/pop keep order and count");
    while (crow_ring_pop(r))
        ;

    void *batch[12], *got[12];
    for (int i = 0; i < 12; i++)
        batch[i] = P(100 + i);
    is_int(crow_ring_push_n(r, batch, 12), 8, "push_n of 12 into 8 free slots: 8");
    is_int(crow_ring_pop_n(r, got, 3), 3, "pop_n 3");
    ok(I(got[0]) == 100 && I(got[2]) == 102, "pop_n oldest first");
    is_int(crow_ring_push_n(r, batch + 8, 4), 3, "push_n of 4 into 3 free slots: 3");
    is_int(crow_ring_pop_n(r, got, 12), 8, "pop_n takes the remaining 8");
    ok(I(got[0]) == 103 && I(got[4]) == 107 && I(got[5]) == 108 && I(got[7]) == 110,
       "batches wrapped around in order");
    is_int(crow_ring_pop_n(r, got, 12), 0, "pop_n on empty: 0");
    crow_ring_free(r);
    crow_ring_free(NULL);

    /* one producer thread, one consumer: every value once, in order */
    r = crow_ring_new(NULL, 64);
    pthread_t th;
    pthread_create(&th, NULL, producer, r);
    uintptr_t expect = 1;
    good = 1;
    time_t start = time(NULL);
    while (expect <= STRESS && time(NULL) - start < 60) {
        size_t k = crow_ring_pop_n(r, got, expect % 5 + 1);
        for (size_t j = 0; j < k; j++)
            good &= I(got[j]) == expect++;
    }
    pthread_join(th, NULL);
    ok(good && expect == STRESS + 1, "%d values through a 64-slot ring across threads, in order",
       STRESS);
    crow_ring_free(r);

    /* allocation failure: the ring struct, then the slot array */
    for (long at = 1; at <= 2; at++) {
        struct failalloc fa = {0, at, 0, 0, 0};
        struct crow_allocator a = failalloc_make(&fa);
        errno = 0;
        ok(crow_ring_new(&a, 16) == NULL && errno == ENOMEM, "allocation %ld fails: ENOMEM", at);
        is_int(fa.live, 0, "nothing leaked");
    }
    struct failalloc fa = {0, 0, 0, 0, 0};
    struct crow_allocator a = failalloc_make(&fa);
    r = crow_ring_new(&a, 16);
    is_int(fa.live, 2, "ring uses the given allocator");
    crow_ring_free(r);
    is_int(fa.live, 0, "free returns both blocks");
    return tap_done();
}
