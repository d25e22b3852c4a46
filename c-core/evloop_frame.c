/* evloop_frame.c — the event loop's framing: input bytes into units (lines, reads, requests).
 *
 * Design: framing works on the connection's input buffer in place and is incremental: the
 * head search resumes a few bytes before the old end, and chunked bodies are de-chunked in
 * place as they arrive, so the buffer holds head + decoded body + at most one partial chunk
 * line, and the unit is contiguous.  The HTTP head is tokenised here (request line, header
 * offsets, the framing headers: Content-Length, Transfer-Encoding, Connection, Expect), and
 * what cannot be framed safely (a malformed head, conflicting lengths, a body too large)
 * becomes an error unit after which the connection closes: its input can't be
 * re-synchronised.  A line too long is a TOO_LONG unit and the rest of it is discarded.  A
 * head_first head or a body going to a sink is evloop_sink.c's.  The head is tokenised with a
 * byte-class table (one lookup per byte, token runs four bytes a step), targets and field
 * values are checked eight bytes at a time (an exact word test for controls and DEL), and the
 * framing headers are told apart by length and first letter before one case-folded compare:
 * parsing runs once or twice per request, so it is on the hot path. */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "evloop_int.h"

/* ------------------------------------------------------------------ HTTP heads */

/* Byte classes for the head, one table lookup per byte instead of a chain of tests:
 * C_TCHAR a token character (RFC 9110 5.6.2: method, field name), C_TARGET a request-target
 * byte (anything above SP but DEL), C_VALUE a field-value byte (HTAB, SP and above, but DEL;
 * CR and LF end the value, anything else is refused). */
enum { C_TCHAR = 1, C_TARGET = 2, C_VALUE = 4 };
static const unsigned char cls[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0,  /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 0x10 */
    4, 7, 6, 7, 7, 7, 7, 7, 6, 6, 7, 7, 6, 7, 7, 6,  /* 0x20 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 6, 6, 6,  /* 0x30 */
    6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,  /* 0x40 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 7, 7,  /* 0x50 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,  /* 0x60 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 7, 6, 7, 0,  /* 0x70 */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,  /* 0x80 */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,  /* 0x90 */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,  /* 0xa0 */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,  /* 0xb0 */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,  /* 0xc0 */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,  /* 0xd0 */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,  /* 0xe0 */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,  /* 0xf0 */
};

#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Eight bytes at P as one little-endian word (memcpy: no alignment needed). */
static inline uint64_t load8(const unsigned char *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    x = __builtin_bswap64(x);
#endif
    return x;
}

/* The high bit of each byte of X that is below LIM (1..128) or is DEL, exactly (no carry
 * crosses a byte: each sum stays below 0x100). */
static inline uint64_t below_or_del(uint64_t x, unsigned lim)
{
    uint64_t low = x & ~HIGHS;
    uint64_t lt = ~((low + (0x80 - lim) * ONES) | x) & HIGHS;
    uint64_t y = x ^ (0x7f * ONES);
    uint64_t del = ~(((y & ~HIGHS) + ~HIGHS) | y) & HIGHS;
    return lt | del;
}

/* The first index in B[I, END) whose byte lacks class K; END if none.  Eight bytes at a time
 * while eight remain, K being C_TARGET (stops: SP and below, DEL) or C_VALUE (stops: controls
 * but HTAB, DEL; an HTAB is stepped over). */
static inline size_t span(const unsigned char *b, size_t i, size_t end, unsigned k)
{
    unsigned lim = k == C_TARGET ? 0x21 : 0x20;
    while (end - i >= 8) {
        uint64_t m = below_or_del(load8(b + i), lim);
        if (!m) {
            i += 8;
            continue;
        }
        i += (size_t)__builtin_ctzll(m) >> 3;
        if (cls[b[i]] & k)
            i++; /* an HTAB in a value */
        else
            return i;
    }
    while (i < end && (cls[b[i]] & k))
        i++;
    return i;
}

/* The first index in B[I, END) that is not a token character; END if none.  Four bytes a
 * step while four remain (names are short: one branch per four bytes, not per byte). */
static inline size_t tspan(const unsigned char *b, size_t i, size_t end)
{
    while (end - i >= 4 && (cls[b[i]] & cls[b[i + 1]] & cls[b[i + 2]] & cls[b[i + 3]] & C_TCHAR))
        i += 4;
    while (i < end && (cls[b[i]] & C_TCHAR))
        i++;
    return i;
}

/* Whether the N bytes at S equal LOWER, ASCII case-insensitively.  LOWER holds only lower-case
 * letters and '-', and S only token characters: setting bit 0x20 maps exactly the upper-case
 * letters onto the lower-case ones and leaves '-' alone (the only other byte it maps onto a
 * letter or '-' is CR, never in a token or a field value). */
static inline int name_eq(const unsigned char *s, const char *lower, size_t n)
{
    size_t j = 0;
    for (; n - j >= 8; j += 8) {
        uint64_t a, c;
        memcpy(&a, s + j, 8);
        memcpy(&c, lower + j, 8);
        if ((a | 0x2020202020202020ULL) != c)
            return 0;
    }
    for (; j < n; j++)
        if ((s[j] | 0x20) != (unsigned char)lower[j])
            return 0;
    return 1;
}

/* Whether byte C, case folded, is LOWER (a lower-case letter). */
static inline int lc_is(unsigned char c, char lower)
{
    return (c | 0x20) == (unsigned char)lower;
}

/* Sets *CLOSE / *KEEP when the comma-separated list V[0, N) (a Connection value) has the
 * element "close" / "keep-alive", elements trimmed of SP/HTAB, ASCII case ignored (name_eq is
 * exact here too: a value holds no CR, the only other byte bit 0x20 would map onto '-'). */
static void connection_tokens(const unsigned char *v, size_t n, int *close, int *keep)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == 5 && name_eq(v + s, "close", 5))
            *close = 1;
        else if (e - s == 10 && name_eq(v + s, "keep-alive", 10))
            *keep = 1;
    }
}

/* The framing headers the loop acts on, told apart by length and first letter before one
 * compare. */
enum { H_OTHER, H_CONTENT_LENGTH, H_TRANSFER_ENCODING, H_CONNECTION, H_EXPECT };

static inline int header_kind(const unsigned char *s, size_t n)
{
    switch (n) {
    case 6:
        return lc_is(s[0], 'e') && name_eq(s, "expect", 6) ? H_EXPECT : H_OTHER;
    case 10:
        return lc_is(s[0], 'c') && name_eq(s, "connection", 10) ? H_CONNECTION : H_OTHER;
    case 14:
        return lc_is(s[0], 'c') && name_eq(s, "content-length", 14) ? H_CONTENT_LENGTH : H_OTHER;
    case 17:
        return lc_is(s[0], 't') && name_eq(s, "transfer-encoding", 17) ? H_TRANSFER_ENCODING
                                                                        : H_OTHER;
    default:
        return H_OTHER;
    }
}

int parse_head(struct crow_ev *ev, const char *head, size_t end, struct crow_ev_http *h)
{
    const unsigned char *b = (const unsigned char *)head;
    memset(h, 0, sizeof *h);
    h->content_length = -1;
    h->headers = ev->hdrs;
    size_t i = tspan(b, 0, end);
    if (i == 0 || i >= end || b[i] != ' ')
        return CROW_EV_BAD;
    h->method_len = (uint32_t)i;
    size_t t = ++i;
    i = span(b, i, end, C_TARGET);
    if (i == t || i >= end || b[i] != ' ')
        return CROW_EV_BAD;
    h->target_off = (uint32_t)t;
    h->target_len = (uint32_t)(i - t);
    i++;
    if (end - i < 9 || memcmp(b + i, "HTTP/1.", 7) != 0 || (b[i + 7] != '0' && b[i + 7] != '1'))
        return CROW_EV_BAD;
    h->version = 10 + (b[i + 7] - '0');
    i += 8;
    if (b[i] == '\r')
        i++;
    if (i >= end || b[i] != '\n')
        return CROW_EV_BAD;
    i++;
    int conn_close = 0, conn_keep = 0, te = 0;
    for (;;) {
        if (i >= end)
            return CROW_EV_BAD;
        if (b[i] == '\n') {
            i++;
            break;
        }
        if (b[i] == '\r' && i + 1 < end && b[i + 1] == '\n') {
            i += 2;
            break;
        }
        size_t ns = i;
        i = tspan(b, i, end);
        if (i == ns || i >= end || b[i] != ':')
            return CROW_EV_BAD;
        size_t nl = i - ns;
        i++;
        while (i < end && (b[i] == ' ' || b[i] == '\t'))
            i++;
        size_t vs = i;
        i = span(b, i, end, C_VALUE);
        if (i >= end || (b[i] != '\n' && b[i] != '\r'))
            return CROW_EV_BAD; /* a control in the value, or no line end */
        size_t ve = i;
        while (ve > vs && (b[ve - 1] == ' ' || b[ve - 1] == '\t'))
            ve--;
        if (b[i] == '\r') {
            if (i + 1 >= end || b[i + 1] != '\n')
                return CROW_EV_BAD;
            i++;
        }
        i++;
        if (h->nheaders == CROW_EV_MAX_HEADERS)
            return CROW_EV_TOO_LONG;
        struct crow_ev_header *hd = &ev->hdrs[h->nheaders++];
        hd->name_off = (uint32_t)ns;
        hd->name_len = (uint32_t)nl;
        hd->value_off = (uint32_t)vs;
        hd->value_len = (uint32_t)(ve - vs);
        const unsigned char *v = b + vs;
        size_t vl = ve - vs;
        switch (header_kind(b + ns, nl)) {
        case H_CONTENT_LENGTH: {
            int64_t n = 0;
            if (vl == 0 || vl > 15)
                return CROW_EV_BAD;
            for (size_t k = 0; k < vl; k++) {
                if (v[k] < '0' || v[k] > '9')
                    return CROW_EV_BAD;
                n = n * 10 + (v[k] - '0');
            }
            if (h->content_length >= 0 && h->content_length != n)
                return CROW_EV_BAD;
            h->content_length = n;
            break;
        }
        case H_TRANSFER_ENCODING:
            if (te || vl != 7 || strncasecmp((const char *)v, "chunked", 7) != 0)
                return CROW_EV_BAD;
            te = 1;
            h->chunked = 1;
            break;
        case H_CONNECTION:
            connection_tokens(v, vl, &conn_close, &conn_keep);
            break;
        case H_EXPECT:
            if (vl == 12 && strncasecmp((const char *)v, "100-continue", 12) == 0)
                h->expect_continue = 1;
            break;
        }
    }
    if (i != end || (h->chunked && h->content_length >= 0))
        return CROW_EV_BAD;
    h->keep_alive = h->version == 11 ? !conn_close : conn_keep && !conn_close;
    h->head_len = (uint32_t)end;
    return 0;
}

/* Finds the end of the head in C's buffer (just past "\n\n" or "\n\r\n").  Returns it, or 0
 * (C->scan then says where to resume). */
static size_t find_head_end(struct conn *c)
{
    const char *b = c->buf;
    size_t i = c->scan;
    while (i < c->len) {
        const char *p = memchr(b + i, '\n', c->len - i);
        if (!p)
            break;
        size_t k = (size_t)(p - b);
        if (k + 1 < c->len && b[k + 1] == '\n')
            return k + 2;
        if (k + 2 < c->len && b[k + 1] == '\r' && b[k + 2] == '\n')
            return k + 3;
        i = k + 1;
    }
#ifdef CROW_PLANTED_BUG
    c->scan = c->len; /* forgets a terminator split across reads */
#else
    c->scan = c->len >= 3 ? c->len - 3 : 0;
#endif
    return 0;
}

int dechunk(struct conn *c)
{
    char *b = c->buf;
    size_t src = c->cdst, dst = c->cdst, len = c->len;
    int done = 0;
    for (;;) {
        if (c->cstate == CS_DATA) {
            size_t n = len - src < c->chunk_left ? len - src : c->chunk_left;
            memmove(b + dst, b + src, n);
            dst += n, src += n;
            c->chunk_left -= n;
            if (c->chunk_left)
                break;
            c->cstate = CS_DATA_END;
        }
        if (c->cstate == CS_DATA_END) {
            if (src >= len)
                break;
            if (b[src] == '\r') {
                if (src + 1 >= len)
                    break;
                if (b[src + 1] != '\n')
                    return CROW_EV_BAD;
                src++;
            } else if (b[src] != '\n') {
                return CROW_EV_BAD;
            }
            src++;
            c->cstate = CS_SIZE;
        }
        const char *p = memchr(b + src, '\n', len - src);
        if (!p) {
            if (len - src > CHUNK_LINE_MAX)
                return CROW_EV_BAD;
            break;
        }
        size_t nl = (size_t)(p - b), e = nl;
        if (e > src && b[e - 1] == '\r')
            e--;
        if (c->cstate == CS_TRAILER) {
            int blank = e == src; /* the blank line ends the trailers and the body */
            src = nl + 1;
            if (blank) {
                done = 1;
                break;
            }
            continue;
        }
        size_t k = src;
        uint64_t size = 0;
        while (k < e && ((b[k] >= '0' && b[k] <= '9') || ((b[k] | 0x20) >= 'a' && (b[k] | 0x20) <= 'f'))) {
            if (k - src >= 15)
                return CROW_EV_BAD;
            size = size * 16 + (uint64_t)(b[k] <= '9' ? b[k] - '0' : (b[k] | 0x20) - 'a' + 10);
            k++;
        }
        if (k == src || (k < e && b[k] != ';' && b[k] != ' ' && b[k] != '\t'))
            return CROW_EV_BAD;
        src = nl + 1;
        if (size > c->max_body - c->sunk - (dst - c->head_len))
            return CROW_EV_TOO_LARGE;
        if (size == 0) {
            c->cstate = CS_TRAILER;
            continue;
        }
        c->chunk_left = (size_t)size;
        c->cstate = CS_DATA;
    }
    memmove(b + dst, b + src, len - src);
    c->len = len - (src - dst);
    c->cdst = dst;
    return done;
}

/* ------------------------------------------------------------------ units */

/* An HTTP error unit KIND showing SHOWN bytes: the input can't be re-synchronised, so C
 * closes after the reply.  Returns 1. */
static int frame_error(struct conn *c, struct crow_ev_unit *u, int kind, size_t shown)
{
    sink_drop(c);
    fill_unit(c, u, kind, c->buf, c->len < shown ? c->len : shown);
    c->ulen = c->len;
    c->close_after = 1;
    c->eof = 1; /* read no more */
    c->linger = 1; /* but the client may still be sending */
    c->hstate = HS_HEAD;
    return 1;
}

int body_error(struct crow_ev *ev, struct conn *c, struct crow_ev_unit *u, int kind)
{
    frame_error(c, u, kind, c->head_len);
    if (parse_head(ev, c->buf, c->head_len, &ev->http) == 0) { /* can't fail: parsed before */
        u->http = ev->http;
        u->http.body_len = 0;
    }
    return 1;
}

static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

int send_continue(struct crow_ev *ev, struct conn *c)
{
    if (!c->expect || c->sent_continue)
        return 0;
    struct iovec iov = {(void *)cont, sizeof cont - 1};
    c->sent_continue = 1;
    return conn_send(ev, c, &iov, 1);
}

static int frame_http(struct crow_ev *ev, struct conn *c, struct crow_ev_unit *u)
{
    size_t ulen;
    if (c->hstate == HS_HEAD) {
        if (c->scan == 0) { /* blank lines before a request line are ignored (RFC 9112) */
            size_t k = 0;
            while (k < c->len && (c->buf[k] == '\r' || c->buf[k] == '\n'))
                k++;
            if (k) {
                memmove(c->buf, c->buf + k, c->len - k);
                c->len -= k;
            }
        }
        size_t end = find_head_end(c);
        if (!end)
            return c->len > ev->cfg.max_head ? frame_error(c, u, CROW_EV_TOO_LONG, ev->cfg.max_head)
                                             : 0;
        c->scan = 0;
        if (end > ev->cfg.max_head)
            return frame_error(c, u, CROW_EV_TOO_LONG, ev->cfg.max_head);
        int r = parse_head(ev, c->buf, end, &ev->http);
        if (r)
            return frame_error(c, u, r, end);
        c->head_len = end;
        c->sunk = 0;
        c->expect = ev->http.expect_continue && ev->http.version == 11;
        c->sent_continue = 0;
        c->max_body = ev->cfg.max_body;
        if (ev->cfg.head_first && (ev->http.chunked || ev->http.content_length > 0) &&
            (c->expect || ev->http.chunked ||
             (uint64_t)ev->http.content_length > ev->cfg.head_first_over)) {
            /* the caller picks the limit first; nothing of the body is framed yet */
            c->head_unit = 1;
            c->hstate = ev->http.chunked ? HS_CHUNKED : HS_LENGTH;
            c->cdst = end;
            c->cstate = CS_SIZE;
            c->chunk_left = 0;
            c->need = ev->http.chunked ? 0 : end + (size_t)ev->http.content_length;
            fill_unit(c, u, CROW_EV_HEAD, c->buf, end);
            u->http = ev->http;
            u->http.body_len = 0;
            c->ulen = 0; /* the head stays in the buffer: the REQUEST unit starts with it */
            return 1;
        }
        if (ev->http.chunked) {
            c->hstate = HS_CHUNKED;
            c->cdst = end;
            c->cstate = CS_SIZE;
            c->chunk_left = 0;
        } else if (ev->http.content_length > 0) {
            if ((uint64_t)ev->http.content_length > c->max_body)
                return body_error(ev, c, u, CROW_EV_TOO_LARGE);
            c->hstate = HS_LENGTH;
            c->need = end + (size_t)ev->http.content_length;
        } else {
            fill_unit(c, u, CROW_EV_REQUEST, c->buf, end);
            u->http = ev->http;
            c->ulen = end;
            return 1;
        }
    }
    if (c->sink)
        return frame_sink(ev, c, u);
    int r;
    if (c->hstate == HS_LENGTH) {
        if (c->need - c->head_len > c->max_body) /* beyond crow_ev_continue's limit */
            return body_error(ev, c, u, CROW_EV_TOO_LARGE);
        r = c->len >= c->need;
        ulen = c->need;
    } else {
        r = dechunk(c);
        ulen = c->cdst;
        if (r > 1)
            return body_error(ev, c, u, r);
    }
    if (!r)
        return send_continue(ev, c);
    c->hstate = HS_HEAD;
    if (parse_head(ev, c->buf, c->head_len, &ev->http) != 0) /* can't fail: parsed before */
        return frame_error(c, u, CROW_EV_BAD, c->head_len);
    ev->http.body_len = (uint32_t)(ulen - c->head_len);
    fill_unit(c, u, CROW_EV_REQUEST, c->buf, ulen);
    u->http = ev->http;
    c->ulen = ulen;
    return 1;
}

static int frame_line(struct crow_ev *ev, struct conn *c, struct crow_ev_unit *u)
{
    size_t max = ev->cfg.max_line;
    if (c->discarding) {
        const char *p = memchr(c->buf, '\n', c->len);
        size_t drop = p ? (size_t)(p - c->buf) + 1 : c->len;
        memmove(c->buf, c->buf + drop, c->len - drop);
        c->len -= drop;
        c->scan = 0;
        if (!p)
            return 0;
        c->discarding = 0;
    }
    const char *p = memchr(c->buf + c->scan, '\n', c->len - c->scan);
    if (p) {
        size_t i = (size_t)(p - c->buf);
        int eol = i > 0 && c->buf[i - 1] == '\r' ? 2 : 1;
        size_t l = i + 1 - (size_t)eol;
        c->ulen = i + 1;
        c->scan = 0;
        if (l > max) {
            fill_unit(c, u, CROW_EV_TOO_LONG, c->buf, max);
        } else {
            fill_unit(c, u, CROW_EV_LINE_UNIT, c->buf, l);
            u->eol_len = eol;
        }
        return 1;
    }
    c->scan = c->len;
    if (c->len >= max + 2) {
        fill_unit(c, u, CROW_EV_TOO_LONG, c->buf, max);
        c->ulen = c->len;
        c->discarding = 1;
        return 1;
    }
    return 0;
}

int frame(struct crow_ev *ev, struct conn *c, struct crow_ev_unit *u)
{
    if (c->open_pending) {
        c->open_pending = 0;
        fill_unit(c, u, CROW_EV_OPEN, c->buf, 0);
        c->ulen = 0;
        return 1;
    }
    if (!c->buf)
        return 0; /* nothing buffered */
    switch (c->mode) {
    case CROW_EV_LINE:
        return frame_line(ev, c, u);
    case CROW_EV_HTTP:
        return frame_http(ev, c, u);
    default:
        if (!c->len)
            return 0;
        fill_unit(c, u, CROW_EV_DATA, c->buf, c->len);
        c->ulen = c->len;
        return 1;
    }
}
