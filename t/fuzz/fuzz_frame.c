/* fuzz_frame.c — libFuzzer target: every framer split at fuzzer-chosen points equals whole,
 * and lines and SMTP DATA equal naive references written straight from the RFCs.
 *
 * Input: byte 0 picks the framer (low 2 bits) and its options, byte 1 a size limit, byte 2
 * seeds the split points, the rest is the stream. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

#define MAXIN 4096

struct log {
    unsigned char b[4 * MAXIN + 1024];
    size_t n;
};

static void lg_bytes(struct log *l, const void *p, size_t n)
{
    if (l->n + n > sizeof l->b)
        abort();
    memcpy(l->b + l->n, p, n);
    l->n += n;
}

static void lg_num(struct log *l, uint64_t v) { lg_bytes(l, &v, sizeof v); }

static void lg_event(struct log *l, int kind, int reason)
{
    lg_num(l, (uint64_t)kind << 8 | (uint64_t)reason);
}

static void lg_same(const struct log *a, const struct log *b)
{
    if (a->n != b->n || memcmp(a->b, b->b, a->n) != 0)
        abort();
}

/* Piece boundaries: up to MAXIN cut positions from a small generator the fuzzer seeds. */
static size_t make_cuts(unsigned seed, size_t n, size_t *cuts)
{
    if (seed == 0)
        return 0;
    uint32_t x = seed * 2654435761u | 1;
    size_t span = (seed & 1) ? 4 : (seed & 2) ? 16 : 64, k = 0, at = 0;
    for (;;) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        at += 1 + x % span;
        if (at >= n)
            return k;
        cuts[k++] = at;
    }
}

struct conn {
    unsigned char acc[MAXIN];
    size_t have;
};

/* Appends the next piece.  Returns 0 when the input is exhausted. */
static int feed(struct conn *c, const unsigned char *in, size_t n, const size_t *cuts,
                size_t ncuts, size_t *piece, size_t *from)
{
    if (*from >= n && *piece > ncuts)
        return 0;
    size_t to = *piece < ncuts ? cuts[*piece] : n;
    memcpy(c->acc + c->have, in + *from, to - *from);
    c->have += to - *from;
    *from = to;
    (*piece)++;
    return 1;
}

static void drop(struct conn *c, size_t k)
{
    if (k > c->have)
        abort();
    memmove(c->acc, c->acc + k, c->have - k);
    c->have -= k;
}

/* Scans on an exactly sized heap copy so ASan sees reads past LEN. */
#define SCAN_EXACT(call, c, bufname)                                                        \
    ({                                                                                      \
        unsigned char *bufname = malloc((c)->have ? (c)->have : 1);                         \
        memcpy(bufname, (c)->acc, (c)->have);                                               \
        int r_ = (call);                                                                    \
        memcpy((c)->acc, bufname, (c)->have);                                               \
        free(bufname);                                                                      \
        r_;                                                                                 \
    })

/* ------------------------------------------------------------------ lines */
static void run_lines(size_t max, unsigned opts, const unsigned char *in, size_t n,
                      const size_t *cuts, size_t ncuts, struct log *ev)
{
    struct crow_frame_line st;
    struct crow_frame_unit u;
    static struct conn c;
    size_t piece = 0, from = 0;
    c.have = 0;
    crow_frame_line_init(&st, max, opts);
    while (feed(&c, in, n, cuts, ncuts, &piece, &from)) {
        for (int guard = 0;; guard++) {
            if (guard > MAXIN + 2)
                abort();
            int r = SCAN_EXACT(crow_frame_line_scan(&st, t, c.have, &u), &c, t);
            if (u.consumed > c.have)
                abort();
            if (r == CROW_FRAME_UNIT) {
                if (u.start + u.len + 1 > u.consumed)
                    abort();
                lg_event(ev, r, (int)u.flags);
                lg_num(ev, u.len);
                lg_bytes(ev, c.acc + u.start, u.len);
            } else if (r != CROW_FRAME_NEED_MORE) {
                lg_event(ev, r, u.reason);
            }
            drop(&c, u.consumed);
            if (r == CROW_FRAME_NEED_MORE)
                break;
        }
    }
}

/* The naive reference: the stream cut at every LF, each line judged on its own. */
static void ref_lines(size_t max, unsigned opts, const unsigned char *in, size_t n,
                      struct log *ev)
{
    if (max == 0)
        max = SIZE_MAX - 2;
    size_t pos = 0;
    while (pos < n) {
        size_t L = pos;
        while (L < n && in[L] != '\n')
            L++;
        int complete = L < n;
        size_t ce = (complete && L > pos && in[L - 1] == '\r') ? L - 1 : L;
        size_t bad_cr = SIZE_MAX;
        if (!(opts & CROW_FRAME_LINE_CR_DATA))
            for (size_t k = pos; k < ce; k++)
                if (in[k] == '\r' && k + 1 < n) {
                    bad_cr = k - pos;
                    break;
                }
        size_t known = ce - pos;
        if (!complete && known > 0 && in[n - 1] == '\r')
            known--;
        int too_long = known > max;
        if (bad_cr != SIZE_MAX && (!too_long || bad_cr <= max)) {
            lg_event(ev, CROW_FRAME_BAD, CROW_FRAME_E_BARE_CR);
        } else if (too_long) {
            lg_event(ev, CROW_FRAME_TOO_LONG, CROW_FRAME_E_LINE_TOO_LONG);
        } else if (!complete) {
            return;
        } else if (ce == L && !(opts & CROW_FRAME_LINE_LF_OK)) {
            lg_event(ev, CROW_FRAME_BAD, CROW_FRAME_E_BARE_LF);
        } else {
            lg_event(ev, CROW_FRAME_UNIT, ce == L ? CROW_FRAME_F_LF : CROW_FRAME_F_CRLF);
            lg_num(ev, ce - pos);
            lg_bytes(ev, in + pos, ce - pos);
        }
        pos = L + 1;
    }
}

/* ------------------------------------------------------------------ HTTP */
static int tchar(unsigned char c)
{
    return c > 0x20 && c < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", c);
}

static void run_http(size_t max_fields, size_t max_head, unsigned opts,
                     const unsigned char *in, size_t n, const size_t *cuts, size_t ncuts,
                     struct log *ev)
{
    struct crow_frame_http st;
    struct crow_frame_http_field f[16];
    struct crow_frame_unit u;
    static struct conn c;
    size_t piece = 0, from = 0;
    c.have = 0;
    crow_frame_http_init(&st, f, max_fields, max_head, opts);
    while (feed(&c, in, n, cuts, ncuts, &piece, &from)) {
        int r = SCAN_EXACT(crow_frame_http_scan(&st, t, c.have, &u), &c, t);
        if (r == CROW_FRAME_NEED_MORE) {
            if (u.consumed)
                abort();
            continue;
        }
        lg_event(ev, r, u.reason);
        if (r != CROW_FRAME_UNIT)
            return;
        if (u.consumed != u.start + u.len || u.consumed > c.have || (max_head && u.consumed > max_head) ||
            st.nfields > max_fields)
            abort();
        for (size_t i = 0; i < u.start; i++)
            if (c.acc[i] != '\r' && c.acc[i] != '\n')
                abort();
        lg_num(ev, u.start);
        lg_num(ev, u.len);
        lg_num(ev, (uint64_t)st.version);
        lg_bytes(ev, c.acc + st.method, st.method_len);
        lg_bytes(ev, c.acc + st.target, st.target_len);
        for (size_t k = 0; k < st.nfields; k++) {
            const struct crow_frame_http_field *g = &f[k];
            if (g->name_len == 0 || g->value + g->value_len > u.consumed)
                abort();
            for (size_t i = 0; i < g->name_len; i++)
                if (!tchar(c.acc[g->name + i]))
                    abort();
            for (size_t i = 0; i < g->value_len; i++) {
                unsigned char v = c.acc[g->value + i];
                if (v == 0 || v == '\r' || v == '\n')
                    abort();
            }
            if (g->value_len && (c.acc[g->value] == ' ' || c.acc[g->value] == '\t' ||
                                 c.acc[g->value + g->value_len - 1] == ' ' ||
                                 c.acc[g->value + g->value_len - 1] == '\t'))
                abort();
            if (crow_frame_http_find(&st, c.acc, (const char *)c.acc + g->name, g->name_len) >
                (long)k)
                abort();
            lg_num(ev, g->name_len);
            lg_bytes(ev, c.acc + g->name, g->name_len);
            lg_num(ev, g->value_len);
            lg_bytes(ev, c.acc + g->value, g->value_len);
        }
        return;
    }
}

/* ------------------------------------------------------------------ in-place decoders */
static void run_dec(int smtp, int stream, uint64_t max, unsigned opts,
                    const unsigned char *in, size_t n, const size_t *cuts, size_t ncuts,
                    struct log *ev)
{
    struct crow_frame_chunked ck;
    struct crow_frame_smtp sm;
    struct crow_frame_unit u;
    static struct conn c;
    static unsigned char body[MAXIN];
    size_t blen = 0, piece = 0, from = 0;
    c.have = 0;
    if (smtp)
        crow_frame_smtp_init(&sm, max, opts);
    else
        crow_frame_chunked_init(&ck, max, 8, 64);
    while (feed(&c, in, n, cuts, ncuts, &piece, &from)) {
        int r = smtp ? SCAN_EXACT(crow_frame_smtp_scan(&sm, t, c.have, &u), &c, t)
                     : SCAN_EXACT(crow_frame_chunked_scan(&ck, t, c.have, &u), &c, t);
        if (r == CROW_FRAME_BAD || (r == CROW_FRAME_TOO_LONG && !smtp)) {
            lg_event(ev, r, u.reason);
            return;
        }
        if (u.len > u.consumed || u.consumed > c.have)
            abort();
        if (r == CROW_FRAME_NEED_MORE) {
            if (stream) {
                memcpy(body + blen, c.acc, u.len);
                blen += u.len;
                drop(&c, u.consumed);
                if (smtp)
                    crow_frame_smtp_drop(&sm);
                else
                    crow_frame_chunked_drop(&ck);
            }
            continue;
        }
        memcpy(body + blen, c.acc, u.len);
        blen += u.len;
        lg_event(ev, r, u.reason);
        lg_num(ev, u.flags);
        lg_num(ev, blen);
        lg_bytes(ev, body, blen);
        lg_num(ev, (from - (c.have - u.consumed)));   /* raw bytes the message took */
        return;
    }
    lg_event(ev, CROW_FRAME_NEED_MORE, 0);
}

/* The naive SMTP reference (RFC 5321 4.5.2), over the whole input at once. */
static int crlf_before(const unsigned char *in, size_t p)
{
    return p == 0 || (p >= 2 && in[p - 2] == '\r' && in[p - 1] == '\n');
}

static void ref_smtp(uint64_t max, unsigned opts, const unsigned char *in, size_t n,
                     struct log *ev)
{
    static unsigned char msg[MAXIN];
    size_t end = SIZE_MAX;
    for (size_t p = 0; p + 3 <= n; p++)
        if (crlf_before(in, p) && in[p] == '.' && in[p + 1] == '\r' && in[p + 2] == '\n') {
            end = p;
            break;
        }
    size_t lim = end == SIZE_MAX ? n : end;
    /* Bare CR: a CR whose successor is known and is not LF; bare LF: an LF not after CR. */
    size_t first_cr = SIZE_MAX, first_lf = SIZE_MAX;
    unsigned flags = 0;
    for (size_t k = 0; k < lim; k++) {
        if (in[k] == '\r' && k + 1 < n && in[k + 1] != '\n' && first_cr == SIZE_MAX)
            first_cr = k, flags |= CROW_FRAME_F_BARE_CR;
        if (in[k] == '\n' && (k == 0 || in[k - 1] != '\r') && first_lf == SIZE_MAX)
            first_lf = k, flags |= CROW_FRAME_F_BARE_LF;
        if (in[k] == '.' && (k == 0 || in[k - 1] == '\r' || in[k - 1] == '\n') && k + 1 < n &&
            (in[k + 1] == '\r' || in[k + 1] == '\n'))
            flags |= CROW_FRAME_F_SMUGGLE;
    }
    if (opts & CROW_FRAME_SMTP_REJECT_BARE) {
        /* Reported in stream order: a bare CR once its successor is read. */
        size_t at_cr = first_cr == SIZE_MAX ? SIZE_MAX : first_cr + 1;
        if (at_cr != SIZE_MAX || first_lf != SIZE_MAX) {
            lg_event(ev, CROW_FRAME_BAD, at_cr < first_lf ? CROW_FRAME_E_BARE_CR
                                                          : CROW_FRAME_E_BARE_LF);
            return;
        }
    }
    if (end == SIZE_MAX) {
        lg_event(ev, CROW_FRAME_NEED_MORE, 0);
        return;
    }
    size_t m = 0;
    for (size_t k = 0; k < end; k++)
        if (!(in[k] == '.' && crlf_before(in, k)))
            msg[m++] = in[k];
    if (max == 0)
        max = UINT64_MAX;
    int big = m > max;
    if (big)
        flags |= CROW_FRAME_F_TOO_BIG;
    lg_event(ev, big ? CROW_FRAME_TOO_LONG : CROW_FRAME_UNIT,
             big ? CROW_FRAME_E_BODY_TOO_LARGE : CROW_FRAME_OK);
    lg_num(ev, flags);
    size_t kept = big ? (size_t)max : m;
    lg_num(ev, kept);
    lg_bytes(ev, msg, kept);
    lg_num(ev, end + 3);
}

/* ------------------------------------------------------------------ entry point */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct log whole, split, other;
    static size_t cuts[MAXIN];
    if (size < 3 || size - 3 > MAXIN)
        return 0;
    unsigned sel = data[0], lim = data[1], seed = data[2];
    const unsigned char *in = data + 3;
    size_t n = size - 3;
    size_t ncuts = make_cuts(seed ? seed : 1, n, cuts);
    whole.n = split.n = other.n = 0;

    switch (sel & 3) {
    case 0: {
        unsigned opts = (sel >> 2) & 3;
        size_t max = (sel & 16) ? 0 : lim;
        run_lines(max, opts, in, n, NULL, 0, &whole);
        run_lines(max, opts, in, n, cuts, ncuts, &split);
        lg_same(&whole, &split);
        ref_lines(max, opts, in, n, &other);
        lg_same(&whole, &other);
        break;
    }
    case 1: {
        unsigned opts = (sel >> 2) & 1;
        size_t max_fields = (sel >> 3) & 15, max_head = (sel & 128) ? 0 : 16 + lim * 4;
        run_http(max_fields, max_head, opts, in, n, NULL, 0, &whole);
        run_http(max_fields, max_head, opts, in, n, cuts, ncuts, &split);
        lg_same(&whole, &split);
        break;
    }
    case 2: {
        uint64_t max = (sel & 4) ? UINT64_MAX : lim;
        run_dec(0, 0, max, 0, in, n, NULL, 0, &whole);
        run_dec(0, 0, max, 0, in, n, cuts, ncuts, &split);
        lg_same(&whole, &split);
        run_dec(0, 1, max, 0, in, n, cuts, ncuts, &other);
        lg_same(&whole, &other);
        break;
    }
    case 3: {
        unsigned opts = (sel >> 2) & 1;
        uint64_t max = (sel & 8) ? 0 : lim;
        run_dec(1, 0, max, opts, in, n, NULL, 0, &whole);
        run_dec(1, 0, max, opts, in, n, cuts, ncuts, &split);
        lg_same(&whole, &split);
        run_dec(1, 1, max, opts, in, n, cuts, ncuts, &other);
        lg_same(&whole, &other);
        other.n = 0;
        ref_smtp(max, opts, in, n, &other);
        lg_same(&whole, &other);
        break;
    }
    }
    return 0;
}
