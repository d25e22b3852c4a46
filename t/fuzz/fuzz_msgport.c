/* fuzz_msgport.c — drives a message port and an SPSC ring with a byte-coded operation
 * sequence and checks every result against a plain array model; abort() on any mismatch. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "msgport.h"
#include "ring.h"

enum { NMSG = 64, MODEL = 4096 };

struct fmsg {
    struct crow_msg msg;
    int id;
    int queued;
};

static void check(int cond)
{
    if (!cond)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t cap = (size_t)1 << (data[0] % 5);
    struct crow_ring *r = crow_ring_new(NULL, cap);
    struct crow_msgport *p = crow_msgport_new(NULL);
    check(r && p && crow_ring_capacity(r) == cap);

    /* ring model: values in [rhead, rtail) are queued; value v is the pointer v + 1 */
    uintptr_t rhead = 0, rtail = 0;
    /* port model: ids in order */
    static struct fmsg msgs[NMSG];
    int q[MODEL];
    size_t qh = 0, qt = 0;
    uint64_t wakeups = 0, puts = 0;
    for (int i = 0; i < NMSG; i++)
        msgs[i] = (struct fmsg){{NULL, NULL}, i, 0};

    for (size_t i = 1; i < size && qt < MODEL - NMSG; i++) {
        uint8_t op = data[i] % 11, arg = (uint8_t)(data[i] / 11);
        void *buf[32];
        switch (op) {
        case 0: { /* ring push */
            int rc = crow_ring_push(r, (void *)(rtail + 1));
            if (rtail - rhead < cap) {
                check(rc == 0);
                rtail++;
            } else {
                check(rc == -1 && errno == EAGAIN);
            }
            break;
        }
        case 1: { /* ring pop */
            void *x = crow_ring_pop(r);
            if (rhead == rtail)
                check(x == NULL);
            else
                check((uintptr_t)x == ++rhead);
            break;
        }
        case 2: { /* ring push_n */
            size_t k = arg % 20;
            for (size_t j = 0; j < k; j++)
                buf[j] = (void *)(rtail + 1 + j);
            size_t room = cap - (rtail - rhead), want = k < room ? k : room;
            check(crow_ring_push_n(r, buf, k) == want);
            rtail += want;
            break;
        }
        case 3: { /* ring pop_n */
            size_t k = arg % 20;
            size_t have = rtail - rhead, want = k < have ? k : have;
            check(crow_ring_pop_n(r, buf, k) == want);
            for (size_t j = 0; j < want; j++)
                check((uintptr_t)buf[j] == ++rhead);
            break;
        }
        case 4: { /* port put */
            struct fmsg *m = &msgs[arg % NMSG];
            if (m->queued)
                break;
            wakeups += qh == qt;
            puts++;
            crow_msgport_put(p, &m->msg);
            m->queued = 1;
            q[qt++] = m->id;
            break;
        }
        case 5: { /* port get */
            struct crow_msg *m = crow_msgport_get(p);
            if (qh == qt) {
                check(m == NULL);
            } else {
                struct fmsg *f = (struct fmsg *)(void *)m;
                check(m && f->id == q[qh++]);
                f->queued = 0;
            }
            break;
        }
        case 6: { /* port get_all */
            size_t n = 12345;
            struct crow_msg *m = crow_msgport_get_all(p, &n);
            check(n == qt - qh);
            for (; m; m = m->next) {
                struct fmsg *f = (struct fmsg *)(void *)m;
                check(qh < qt && f->id == q[qh++] && f->queued);
                f->queued = 0;
            }
            check(qh == qt);
            break;
        }
        case 7: { /* port put_all of up to 8 free messages */
            struct crow_msg *head = NULL, **link = &head;
            size_t k = 0;
            for (int j = 0; j < NMSG && k < (size_t)(arg % 9); j++) {
                struct fmsg *m = &msgs[(arg + j * 7) % NMSG];
                if (m->queued)
                    continue;
                m->queued = 1;
                *link = &m->msg;
                link = &m->msg.next;
                m->msg.next = NULL;
                q[qt + k++] = m->id;
            }
            if (k)
                wakeups += qh == qt;
            qt += k;
            puts += k;
            check(crow_msgport_put_all(p, head) == k);
            break;
        }
        case 8: { /* wait without blocking */
            errno = 0;
            struct crow_msg *m = crow_msgport_wait(p, 0);
            if (qh == qt) {
                check(m == NULL && errno == ETIMEDOUT);
            } else {
                struct fmsg *f = (struct fmsg *)(void *)m;
                check(m && f->id == q[qh++]);
                f->queued = 0;
            }
            break;
        }
        case 9: /* poll without blocking */
            check(crow_msgport_poll(NULL, 0, &p, 1, 0) == (qh != qt));
            break;
        default: { /* counters */
            struct crow_msgport_stats st;
            crow_msgport_stats(p, &st);
            check(st.puts == puts && st.wakeups == wakeups && st.gets == qh);
            check(crow_msgport_count(p) == qt - qh);
            check(crow_ring_count(r) == rtail - rhead);
            break;
        }
        }
    }
    crow_msgport_free(p);
    crow_ring_free(r);
    return 0;
}
