/* fuzz_admit.c — libFuzzer target: enters, leaves (by address and by ticket), expiry and
 * clock moves on an admission table, checked exactly against a simple model (one counter and
 * one GCRA arrival time per normalised source, computed independently).  The clock never
 * steps back: the contract asks for a monotonic one. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "admit.h"

static const char *const names[] = {
    "10.0.0.1", "10.0.0.2", "::ffff:10.0.0.1", "::ffff:10.0.0.2", "2001:db8::1",
    "2001:db8::2", "2001:db8:0:1::1", "::1", "unix", "10.0.0.3", "::ffff:10.0.0.3",
    "2001:db8::1:0:0:7",
};
enum { NA = sizeof names / sizeof names[0], MAXT = 64 };

static struct sockaddr_storage ss[NA];
static socklen_t sl[NA];
static int setup_done;

static void setup(void)
{
    for (int i = 0; i < NA; i++) {
        memset(&ss[i], 0, sizeof ss[i]);
        struct sockaddr_in *in = (struct sockaddr_in *)&ss[i];
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss[i];
        if (inet_pton(AF_INET, names[i], &in->sin_addr) == 1) {
            in->sin_family = AF_INET;
            sl[i] = sizeof *in;
        } else if (inet_pton(AF_INET6, names[i], &in6->sin6_addr) == 1) {
            in6->sin6_family = AF_INET6;
            sl[i] = sizeof *in6;
        } else {
            ss[i].ss_family = AF_UNIX;
            sl[i] = sizeof(sa_family_t);
        }
    }
    setup_done = 1;
}

/* The model's source of address I: -1 for exempt, else the index of the first address with
 * the same source (IPv4 and its mapped form alike; IPv6 compared bit by bit up to PREFIX). */
static int bit(const uint8_t *p, unsigned i) { return p[i / 8] >> (7 - i % 8) & 1; }
static int v4(int i, uint8_t out[4])
{
    if (ss[i].ss_family == AF_INET) {
        memcpy(out, &((struct sockaddr_in *)&ss[i])->sin_addr, 4);
        return 1;
    }
    const uint8_t *b = (const uint8_t *)&((struct sockaddr_in6 *)&ss[i])->sin6_addr;
    static const uint8_t pre[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (ss[i].ss_family == AF_INET6 && !memcmp(b, pre, 12)) {
        memcpy(out, b + 12, 4);
        return 1;
    }
    return 0;
}
static int source(int i, unsigned prefix)
{
    if (ss[i].ss_family == AF_UNIX)
        return -1;
    for (int j = 0; j <= i; j++) {
        if (ss[j].ss_family == AF_UNIX)
            continue;
        uint8_t a[4], b[4];
        int ai = v4(i, a), bj = v4(j, b);
        if (ai || bj) {
            if (ai && bj && !memcmp(a, b, 4))
                return j;
            continue;
        }
        const uint8_t *x = (const uint8_t *)&((struct sockaddr_in6 *)&ss[i])->sin6_addr;
        const uint8_t *y = (const uint8_t *)&((struct sockaddr_in6 *)&ss[j])->sin6_addr;
        unsigned k = 0;
        while (k < prefix && bit(x, k) == bit(y, k))
            k++;
        if (k == prefix)
            return j;
    }
    abort(); /* i itself always matches */
}

static const uint8_t *ip, *iend;
static unsigned byte(void) { return ip < iend ? *ip++ : 0; }
static uint64_t u64(unsigned n)
{
    uint64_t x = 0;
    for (unsigned i = 0; i < n; i++)
        x = x << 8 | byte();
    return x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!setup_done)
        setup();
    ip = data;
    iend = data + size;
    struct crow_admit_config c;
    crow_admit_config_init(&c);
    c.max_connections = byte() % 10;
    c.max_per_address = byte() % 5;
    c.rate_count = byte() % 5;
    c.rate_period_ns = 1 + u64(3);
    unsigned pf = byte() % 4;
    c.ipv6_prefix = pf == 0 ? 0 : pf == 1 ? 64 : pf == 2 ? 1 + byte() % 128 : 128;
    c.max_addresses = 16 * CROW_ADMIT_STRIPES; /* room for every source: no eviction */
    struct crow_admit *a = crow_admit_new(&c);
    if (!a)
        abort();
    unsigned prefix = c.ipv6_prefix ? c.ipv6_prefix : 128;
    uint64_t T = 0, tol = 0;
    if (c.rate_count) {
        T = c.rate_period_ns / c.rate_count;
        if (!T)
            T = 1;
        tol = c.rate_period_ns > T ? c.rate_period_ns - T : 0;
    }
    long active[NA] = {0}, global = 0;
    uint64_t tat[NA] = {0};
    struct crow_admit_peer *tk[MAXT];
    int tka[MAXT], nt = 0;
    uint64_t now = u64(4);
    while (ip < iend) {
        unsigned op = byte();
        int i = (int)(byte() % NA);
        int s = source(i, prefix);
        switch (op % 8) {
        case 0: case 1: case 2: {                          /* enter */
            switch (byte() % 4) {
            case 0: break;
            case 1: now += byte(); break;
            case 2: now += u64(3); break;
            default: now += c.rate_period_ns / (1 + byte() % 8); break;
            }
            now &= ((uint64_t)1 << 62) - 1;
            int want;
            if (c.max_connections && global >= (long)c.max_connections)
                want = CROW_ADMIT_FULL;
            else if (s < 0)
                want = CROW_ADMIT_OK;
            else if (c.max_per_address && active[s] >= (long)c.max_per_address)
                want = CROW_ADMIT_PER_ADDRESS;
            else if (c.rate_count && (tat[s] > now ? tat[s] : now) - now > tol)
                want = CROW_ADMIT_RATE;
            else
                want = CROW_ADMIT_OK;
            struct crow_admit_peer *p = (void *)1;
            int r = crow_admit_enter_peer(a, (struct sockaddr *)&ss[i], sl[i], now, &p);
            if (r != want)
                abort();
            if (r != CROW_ADMIT_OK) {
                if (p != (void *)1)
                    abort();
                break;
            }
            if ((s < 0) != (p == NULL))
                abort();
            global++;
            if (s >= 0) {
                active[s]++;
                if (c.rate_count)
                    tat[s] = (tat[s] > now ? tat[s] : now) + T;
            }
            if (nt < MAXT) {
                tk[nt] = p;
                tka[nt++] = i;
            } else {                                       /* no room to remember it */
                crow_admit_leave_peer(a, p);
                global--;
                if (s >= 0)
                    active[s]--;
            }
            break;
        }
        case 3: case 4: {                                  /* leave a ticket, by peer or address */
            if (!nt)
                break;
            int k = (int)(byte() % (unsigned)nt);
            int j = tka[k], sj = source(j, prefix);
            if (op & 8) {
                crow_admit_leave_peer(a, tk[k]);
            } else {
                /* leave through another form of the same source when there is one */
                int alt = j;
                for (int m = 0; m < NA; m++)
                    if (sj >= 0 && source(m, prefix) == sj && (op & 16))
                        alt = m;
                if (crow_admit_leave(a, (struct sockaddr *)&ss[alt], sl[alt]) != 0)
                    abort();
            }
            global--;
            if (sj >= 0)
                active[sj]--;
            tk[k] = tk[nt - 1];
            tka[k] = tka[--nt];
            break;
        }
        case 5: {                                          /* leave with nothing in */
            if (s < 0 || active[s])
                break;
            errno = 0;
            if (crow_admit_leave(a, (struct sockaddr *)&ss[i], sl[i]) != -1 || errno != ENOENT)
                abort();
            break;
        }
        case 6:                                            /* expire */
            crow_admit_expire(a, now);
            break;
        default:                                           /* time passes */
            now = (now + u64(4)) & (((uint64_t)1 << 62) - 1);
            break;
        }
        struct crow_admit_stats st;
        crow_admit_stats(a, &st);
        if (st.active != (uint64_t)global || st.addresses > NA)
            abort();
    }
    while (nt)
        crow_admit_leave_peer(a, tk[--nt]);
    crow_admit_destroy(a);
    return 0;
}
