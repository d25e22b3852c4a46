/* test_frame.c — every framer on hand-written RFC inputs, whole and split at every byte. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "tap.h"

/* ------------------------------------------------------------------ event log */
struct sbuf {
    char s[8192];
    size_t n;
};

static void sb_putc(struct sbuf *b, char c)
{
    if (b->n + 1 < sizeof b->s)
        b->s[b->n++] = c;
    b->s[b->n] = 0;
}

static void sb_puts(struct sbuf *b, const char *s)
{
    while (*s)
        sb_putc(b, *s++);
}

/* Appends BYTES escaped: CR as \r, LF as \n, other controls as \xNN. */
static void sb_esc(struct sbuf *b, const unsigned char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (c == '\r') {
            sb_puts(b, "\\r");
        } else if (c == '\n') {
            sb_puts(b, "\\n");
        } else if (c < 0x20 || c >= 0x7f || c == '\\') {
            sb_puts(b, "\\x");
            sb_putc(b, hex[c >> 4]);
            sb_putc(b, hex[c & 15]);
        } else {
            sb_putc(b, (char)c);
        }
    }
}

static void sb_num(struct sbuf *b, unsigned long long v)
{
    char t[32];
    snprintf(t, sizeof t, "%llu", v);
    sb_puts(b, t);
}

static void sb_status(struct sbuf *b, int r, const struct crow_frame_unit *u)
{
    sb_puts(b, r == CROW_FRAME_TOO_LONG ? "TOOLONG(" : "BAD(");
    sb_puts(b, crow_frame_reason_name(u->reason));
    sb_putc(b, ')');
}

/* A simulated connection buffer: pieces of the input are appended one at a time and every
 * scan sees an exactly-sized heap copy, so ASan catches any read past LEN. */
struct conn {
    unsigned char acc[4096];
    size_t have;
};

typedef int (*scan_fn)(void *st, void *buf, size_t len, struct crow_frame_unit *u);

static int scan_exact(scan_fn fn, void *st, struct conn *c, struct crow_frame_unit *u)
{
    unsigned char *tmp = malloc(c->have ? c->have : 1);
    memcpy(tmp, c->acc, c->have);
    int r = fn(st, tmp, c->have, u);
    memcpy(c->acc, tmp, c->have);
    free(tmp);
    return r;
}

static void conn_drop(struct conn *c, size_t n)
{
    memmove(c->acc, c->acc + n, c->have - n);
    c->have -= n;
}

/* A framer run over IN cut into pieces: CUTS[0..NCUTS) are increasing cut positions. */
typedef void (*runner)(const void *cfg, const unsigned char *in, size_t n, const size_t *cuts,
                       int ncuts, struct sbuf *ev);

/* Runs R whole, cut in two at every position, cut in three around every position, and one
 * byte at a time; all must give EXPECT. */
static void check(const char *what, runner r, const void *cfg, const char *in, size_t n,
                  const char *expect)
{
    const unsigned char *p = (const unsigned char *)in;
    struct sbuf ev;
    ev.n = 0;
    ev.s[0] = 0;
    r(cfg, p, n, NULL, 0, &ev);
    if (!ok(strcmp(ev.s, expect) == 0, "%s: whole", what))
        printf("#   got  %s\n#   want %s\n", ev.s, expect);

    int bad = 0;
    size_t cuts[1024];
    for (size_t k = 1; k < n && !bad; k++) {
        ev.n = 0;
        ev.s[0] = 0;
        cuts[0] = k;
        r(cfg, p, n, cuts, 1, &ev);
        if (strcmp(ev.s, expect) != 0) {
            printf("#   split at %zu: got %s\n", k, ev.s);
            bad = 1;
        }
        if (k + 1 < n) {
            ev.n = 0;
            ev.s[0] = 0;
            cuts[0] = k;
            cuts[1] = k + 1;
            r(cfg, p, n, cuts, 2, &ev);
            if (strcmp(ev.s, expect) != 0) {
                printf("#   split at %zu,%zu: got %s\n", k, k + 1, ev.s);
                bad = 1;
            }
        }
    }
    ok(!bad, "%s: every split equals whole", what);
    if (n > 1 && n <= 1024) {
        for (size_t k = 1; k < n; k++)
            cuts[k - 1] = k;
        ev.n = 0;
        ev.s[0] = 0;
        r(cfg, p, n, cuts, (int)n - 1, &ev);
        if (!ok(strcmp(ev.s, expect) == 0, "%s: byte at a time", what))
            printf("#   got  %s\n", ev.s);
    }
}

/* ------------------------------------------------------------------ lines */
struct line_cfg {
    size_t max;
    unsigned opts;
};

static int line_scan_fn(void *st, void *buf, size_t len, struct crow_frame_unit *u)
{
    return crow_frame_line_scan(st, buf, len, u);
}

static void line_run(const void *cfgv, const unsigned char *in, size_t n, const size_t *cuts,
                     int ncuts, struct sbuf *ev)
{
    const struct line_cfg *cfg = cfgv;
    struct crow_frame_line st;
    struct conn c = {.have = 0};
    struct crow_frame_unit u;
    crow_frame_line_init(&st, cfg->max, cfg->opts);
    size_t from = 0;
    for (int piece = 0; piece <= ncuts; piece++) {
        size_t to = piece < ncuts ? cuts[piece] : n;
        memcpy(c.acc + c.have, in + from, to - from);
        c.have += to - from;
        from = to;
        for (int guard = 0; guard < 1000; guard++) {
            int r = scan_exact(line_scan_fn, &st, &c, &u);
            if (u.consumed > c.have) {
                sb_puts(ev, "OVERRUN");
                return;
            }
            if (r == CROW_FRAME_UNIT) {
                sb_puts(ev, "U(");
                sb_esc(ev, c.acc + u.start, u.len);
                sb_puts(ev, u.flags == CROW_FRAME_F_CRLF ? ")" : u.flags == CROW_FRAME_F_LF ? ",lf)" : ",?)");
            } else if (r != CROW_FRAME_NEED_MORE) {
                sb_status(ev, r, &u);
            }
            conn_drop(&c, u.consumed);
            if (r == CROW_FRAME_NEED_MORE)
                break;
        }
    }
    if (c.have) {
        sb_puts(ev, " rest=");
        sb_esc(ev, c.acc, c.have);
    }
}

#define S(lit) lit, sizeof(lit) - 1

static void test_lines(void)
{
    struct line_cfg strict = {0, 0}, lf_ok = {0, CROW_FRAME_LINE_LF_OK},
                    cr_data = {0, CROW_FRAME_LINE_CR_DATA};
    check("line: CRLF lines (RFC 5321 2.3.8)", line_run, &strict,
          S("USER bob\r\nPASS x\r\n\r\nQUIT"), "U(USER bob)U(PASS x)U() rest=QUIT");
    check("line: bare LF rejected, next line fine", line_run, &strict,
          S("a\nb\r\n"), "BAD(bare-lf)U(b)");
    check("line: bare LF accepted by option", line_run, &lf_ok,
          S("a\nb\r\n\n"), "U(a,lf)U(b)U(,lf)");
    check("line: bare CR rejected, rest of line skipped", line_run, &strict,
          S("a\rb\r\nc\r\n"), "BAD(bare-cr)U(c)");
    check("line: bare CR as data", line_run, &cr_data,
          S("a\rb\r\nc\r\r\n"), "U(a\\rb)U(c\\r)");
    check("line: CR CR LF is a bare CR then CRLF", line_run, &strict,
          S("x\r\r\ny\r\n"), "BAD(bare-cr)U(y)");
    check("line: a pending CR at the end waits", line_run, &strict,
          S("abc\r"), " rest=abc\\r");

    struct line_cfg m4 = {4, 0}, m4cr = {4, CROW_FRAME_LINE_CR_DATA}, m3lf = {3, CROW_FRAME_LINE_LF_OK};
    check("line: max 4: exactly 4 fits, 5 is too long and skipped", line_run, &m4,
          S("abcd\r\nabcde\r\nxy\r\n"), "U(abcd)TOOLONG(line-too-long)U(xy)");
    check("line: too long without terminator yet", line_run, &m4,
          S("abcdefghijklmnopqrstuvwxyz"), "TOOLONG(line-too-long)");
    check("line: too long, skipped across reads, then a line", line_run, &m4,
          S("0123456789abcdef\r\nok\r\n"), "TOOLONG(line-too-long)U(ok)");
    check("line: bare CR at the limit is bad", line_run, &m4,
          S("abcd\rx\r\nok\r\n"), "BAD(bare-cr)U(ok)");
    check("line: CR-as-data at the limit is too long", line_run, &m4cr,
          S("abcd\rx\r\nok\r\n"), "TOOLONG(line-too-long)U(ok)");
    check("line: bare CR before the limit wins over too long", line_run, &m4,
          S("ab\rcdefgh\r\nok\r\n"), "BAD(bare-cr)U(ok)");
    check("line: bare CR after the limit: too long", line_run, &m4,
          S("abcdef\rgh\r\nok\r\n"), "TOOLONG(line-too-long)U(ok)");
    check("line: bare LF at max+1 with LF_OK", line_run, &m3lf,
          S("abc\nabcd\nz\n"), "U(abc,lf)TOOLONG(line-too-long)U(z,lf)");
    check("line: too long and bare LF: too long", line_run, &m4,
          S("abcdefg\nok\r\n"), "TOOLONG(line-too-long)U(ok)");

    /* Direct contract checks. */
    struct crow_frame_line st;
    struct crow_frame_unit u;
    crow_frame_line_init(&st, 0, 0);
    is_int(crow_frame_line_scan(&st, "", 0, &u), CROW_FRAME_NEED_MORE, "line: empty buffer needs more");
    is_int(u.consumed, 0, "line: empty buffer consumes nothing");
    is_int(crow_frame_line_scan(&st, "ab\r\ncd", 6, &u), CROW_FRAME_UNIT, "line: unit");
    ok(u.start == 0 && u.len == 2 && u.consumed == 4 && u.flags == CROW_FRAME_F_CRLF &&
       u.reason == CROW_FRAME_OK, "line: unit offsets, consumed and flags");
    crow_frame_line_init(&st, 2, 0);
    is_int(crow_frame_line_scan(&st, "abcdef", 6, &u), CROW_FRAME_TOO_LONG, "line: too long");
    is_int(u.consumed, 4, "line: too long consumes what it looked at (max + 2)");
    is_int(crow_frame_line_scan(&st, "gh", 2, &u), CROW_FRAME_NEED_MORE, "line: skipping");
    is_int(u.consumed, 2, "line: skipping consumes everything");
    is_int(crow_frame_line_scan(&st, "i\r\nok\r\n", 7, &u), CROW_FRAME_UNIT, "line: after skip");
    ok(u.start == 3 && u.len == 2 && u.consumed == 7, "line: unit after the skipped tail");
}

/* ------------------------------------------------------------------ HTTP */
struct http_cfg {
    size_t max_fields, max_head;
    unsigned opts;
};

static int http_scan_fn(void *st, void *buf, size_t len, struct crow_frame_unit *u)
{
    return crow_frame_http_scan(st, buf, len, u);
}

static void http_run(const void *cfgv, const unsigned char *in, size_t n, const size_t *cuts,
                     int ncuts, struct sbuf *ev)
{
    const struct http_cfg *cfg = cfgv;
    struct crow_frame_http st;
    struct crow_frame_http_field fields[64];
    struct conn c = {.have = 0};
    struct crow_frame_unit u;
    crow_frame_http_init(&st, fields, cfg->max_fields, cfg->max_head, cfg->opts);
    size_t from = 0;
    for (int piece = 0; piece <= ncuts; piece++) {
        size_t to = piece < ncuts ? cuts[piece] : n;
        memcpy(c.acc + c.have, in + from, to - from);
        c.have += to - from;
        from = to;
        int r = scan_exact(http_scan_fn, &st, &c, &u);
        if (r == CROW_FRAME_NEED_MORE) {
            if (u.consumed != 0)
                sb_puts(ev, "CONSUMED-EARLY");
            continue;
        }
        if (r != CROW_FRAME_UNIT) {
            sb_status(ev, r, &u);
            return;
        }
        sb_esc(ev, c.acc + st.method, st.method_len);
        sb_putc(ev, ' ');
        sb_esc(ev, c.acc + st.target, st.target_len);
        sb_putc(ev, ' ');
        sb_num(ev, (unsigned)st.version);
        for (size_t k = 0; k < st.nfields; k++) {
            sb_putc(ev, '[');
            sb_esc(ev, c.acc + fields[k].name, fields[k].name_len);
            sb_putc(ev, '=');
            sb_esc(ev, c.acc + fields[k].value, fields[k].value_len);
            sb_putc(ev, ']');
        }
        sb_puts(ev, " start=");
        sb_num(ev, u.start);
        sb_puts(ev, " len=");
        sb_num(ev, u.len);
        if (u.flags & CROW_FRAME_F_BARE_LF)
            sb_puts(ev, " lf");
        if (u.consumed != u.start + u.len)
            sb_puts(ev, " CONSUMED-WRONG");
        return;
    }
    sb_puts(ev, "MORE");
}

static void test_http(void)
{
    struct http_cfg d = {64, 8192, 0}, lf = {64, 8192, CROW_FRAME_HTTP_LF_OK};
    static const char browser[] =
        "GET /index.html?q=1 HTTP/1.1\r\n"
        "Host: www.example.com\r\n"
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
        "Accept:text/html, */*;q=0.8 \t\r\n"
        "Accept-Language:   \r\n"
        "X-Empty:\r\n"
        "\r\n"
        "BODY";
    check("http: browser request", http_run, &d, S(browser),
          "GET /index.html?q=1 11[Host=www.example.com]"
          "[User-Agent=Mozilla/5.0 (X11; Linux x86_64)][Accept=text/html, */*;q=0.8]"
          "[Accept-Language=][X-Empty=] start=0 len=162");
    check("http: leading empty lines ignored (RFC 9112 2.2)", http_run, &d,
          S("\r\n\r\nPOST * HTTP/1.0\r\nA: b\r\n\r\n"), "POST * 10[A=b] start=4 len=25");
    check("http: HTTP/1.2 is reported as 12", http_run, &d,
          S("GET / HTTP/1.2\r\n\r\n"), "GET / 12 start=0 len=18");
    check("http: bare LF rejected by default", http_run, &d,
          S("GET / HTTP/1.1\nHost: a\r\n\r\n"), "BAD(bare-lf)");
    check("http: bare LF lines with LF_OK", http_run, &lf,
          S("GET / HTTP/1.1\nHost: a\r\n\n"), "GET / 11[Host=a] start=0 len=25 lf");
    check("http: bare CR in the request line", http_run, &lf,
          S("GET /\r HTTP/1.1\r\n\r\n"), "BAD(bare-cr)");
    check("http: bare CR in a value", http_run, &d,
          S("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n"), "BAD(bare-cr)");
    check("http: CR CR LF ending", http_run, &d,
          S("GET / HTTP/1.1\r\nA: b\r\r\n\r\n"), "BAD(bare-cr)");
    check("http: obs-fold rejected", http_run, &d,
          S("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n"), "BAD(obs-fold)");
    check("http: whitespace before colon", http_run, &d,
          S("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), "BAD(whitespace-before-colon)");
    check("http: non-token in name", http_run, &d,
          S("GET / HTTP/1.1\r\nHo(st: a\r\n\r\n"), "BAD(bad-field-name)");
    check("http: empty name", http_run, &d,
          S("GET / HTTP/1.1\r\n: a\r\n\r\n"), "BAD(bad-field-name)");
    check("http: no colon", http_run, &d,
          S("GET / HTTP/1.1\r\nHost\r\n\r\n"), "BAD(no-colon)");
    check("http: NUL in value", http_run, &d,
          S("GET / HTTP/1.1\r\nA: b\0c\r\n\r\n"), "BAD(bad-field-value)");
    check("http: HTTP/2.0 unsupported", http_run, &d,
          S("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), "BAD(unsupported-version)");
    check("http: version garbage", http_run, &d,
          S("GET / HTTP/1.1x\r\n\r\n"), "BAD(bad-request-line)");
    check("http: lower-case version", http_run, &d,
          S("GET / http/1.1\r\n\r\n"), "BAD(bad-request-line)");
    check("http: two spaces", http_run, &d,
          S("GET  / HTTP/1.1\r\n\r\n"), "BAD(bad-request-line)");
    check("http: no target", http_run, &d,
          S("GET HTTP/1.1\r\n\r\n"), "BAD(bad-request-line)");
    check("http: HTTP/0.9 style", http_run, &d, S("GET /\r\n\r\n"), "BAD(bad-request-line)");
    check("http: control byte in target", http_run, &d,
          S("GET /a\x01 HTTP/1.1\r\n\r\n"), "BAD(bad-request-line)");
    check("http: incomplete head", http_run, &d, S("GET / HTTP/1.1\r\nHost: a\r\n"), "MORE");

    struct http_cfg small = {64, 32, 0}, two = {2, 8192, 0};
    check("http: request line over the limit is 414", http_run, &small,
          S("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n"), "TOOLONG(uri-too-long)");
    check("http: fields over the limit are 431", http_run, &small,
          S("GET / HTTP/1.1\r\nA: 0123456789abcdef\r\n\r\n"), "TOOLONG(head-too-large)");
    check("http: head of exactly the limit fits", http_run, &small,
          S("GET / HTTP/1.1\r\nA: 012345678\r\n\r\n"), "GET / 11[A=012345678] start=0 len=32");
    check("http: too many fields", http_run, &two,
          S("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"), "TOOLONG(too-many-fields)");
    check("http: as many fields as slots", http_run, &two,
          S("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n"), "GET / 11[A=1][B=2] start=0 len=30");

    /* find, status codes, sticky results. */
    struct crow_frame_http st;
    struct crow_frame_http_field f[8];
    struct crow_frame_unit u;
    static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n~x: 1\r\n^X: 2\r\n\r\n";
    crow_frame_http_init(&st, f, 8, 0, 0);
    is_int(crow_frame_http_scan(&st, req, sizeof req - 1, &u), CROW_FRAME_UNIT, "http: parsed");
    is_int(crow_frame_http_find(&st, req, "content-length", 14), 1, "find: case-insensitive");
    is_int(crow_frame_http_find(&st, req, "HOST", 4), 0, "find: upper case");
    is_int(crow_frame_http_find(&st, req, "Hos", 3), -1, "find: prefix is not a match");
    is_int(crow_frame_http_find(&st, req, "Content-Lengtj", 14), -1, "find: last byte differs");
    is_int(crow_frame_http_find(&st, req, "^x", 2), 3, "find: ^ and ~ are not case pairs");
    is_int(crow_frame_http_scan(&st, req, sizeof req - 1, &u), CROW_FRAME_UNIT, "http: UNIT again");
    is_int(u.consumed, sizeof req - 1, "http: UNIT again, same consumed");
    crow_frame_http_init(&st, NULL, 8, 0, 0);
    is_int(crow_frame_http_scan(&st, req, sizeof req - 1, &u), CROW_FRAME_TOO_LONG, "http: NULL array holds no field");
    is_int(crow_frame_http_scan(&st, req, sizeof req - 1, &u), CROW_FRAME_TOO_LONG, "http: error is sticky");
    is_int(u.reason, CROW_FRAME_E_TOO_MANY_FIELDS, "http: sticky reason");
    is_int(crow_frame_http_status(CROW_FRAME_E_URI_TOO_LONG), 414, "status 414");
    is_int(crow_frame_http_status(CROW_FRAME_E_HEAD_TOO_LARGE), 431, "status 431");
    is_int(crow_frame_http_status(CROW_FRAME_E_TOO_MANY_FIELDS), 431, "status 431 (count)");
    is_int(crow_frame_http_status(CROW_FRAME_E_VERSION), 505, "status 505");
    is_int(crow_frame_http_status(CROW_FRAME_E_BODY_TOO_LARGE), 413, "status 413");
    is_int(crow_frame_http_status(CROW_FRAME_E_OBS_FOLD), 400, "status 400");
    ok(strcmp(crow_frame_reason_name(-1), "unknown") == 0 &&
       strcmp(crow_frame_reason_name(CROW_FRAME_E_COUNT), "unknown") == 0, "reason name out of range");
    int named = 1;
    for (int r = 0; r < CROW_FRAME_E_COUNT; r++)
        named &= crow_frame_reason_name(r) != NULL && strcmp(crow_frame_reason_name(r), "unknown") != 0;
    ok(named, "every reason has a name");
}

/* ------------------------------------------------------------------ fixed */
static void test_fixed(void)
{
    struct crow_frame_fixed st;
    struct crow_frame_unit u;
    crow_frame_fixed_init(&st, 10);
    is_int(crow_frame_fixed_scan(&st, "abcd", 4, &u), CROW_FRAME_NEED_MORE, "fixed: 4 of 10");
    ok(u.start == 0 && u.len == 4 && u.consumed == 4 && st.remaining == 6, "fixed: took 4");
    is_int(crow_frame_fixed_scan(&st, "", 0, &u), CROW_FRAME_NEED_MORE, "fixed: nothing new");
    is_int(crow_frame_fixed_scan(&st, "efghijNEXT", 10, &u), CROW_FRAME_UNIT, "fixed: complete");
    ok(u.len == 6 && u.consumed == 6 && st.remaining == 0, "fixed: took only the body");
    crow_frame_fixed_init(&st, 0);
    is_int(crow_frame_fixed_scan(&st, "x", 1, &u), CROW_FRAME_UNIT, "fixed: empty body is complete");
    is_int(u.consumed, 0, "fixed: empty body consumes nothing");
}

/* ------------------------------------------------------------------ in-place decoders */
struct dec_cfg {
    int smtp;           /* else chunked */
    int stream;         /* take output and drop after every call */
    uint64_t max;
    size_t max_ext, max_trailer;
    unsigned opts;
};

static int chunked_scan_fn(void *st, void *buf, size_t len, struct crow_frame_unit *u)
{
    return crow_frame_chunked_scan(st, buf, len, u);
}

static int smtp_scan_fn(void *st, void *buf, size_t len, struct crow_frame_unit *u)
{
    return crow_frame_smtp_scan(st, buf, len, u);
}

static void dec_run(const void *cfgv, const unsigned char *in, size_t n, const size_t *cuts,
                    int ncuts, struct sbuf *ev)
{
    const struct dec_cfg *cfg = cfgv;
    struct crow_frame_chunked ck;
    struct crow_frame_smtp sm;
    void *st = cfg->smtp ? (void *)&sm : (void *)&ck;
    scan_fn fn = cfg->smtp ? smtp_scan_fn : chunked_scan_fn;
    struct conn c = {.have = 0};
    struct crow_frame_unit u;
    struct sbuf body = {.n = 0};
    if (cfg->smtp)
        crow_frame_smtp_init(&sm, cfg->max, cfg->opts);
    else
        crow_frame_chunked_init(&ck, cfg->max, cfg->max_ext, cfg->max_trailer);
    size_t from = 0;
    for (int piece = 0; piece <= ncuts; piece++) {
        size_t to = piece < ncuts ? cuts[piece] : n;
        memcpy(c.acc + c.have, in + from, to - from);
        c.have += to - from;
        from = to;
        int r = scan_exact(fn, st, &c, &u);
        if (r == CROW_FRAME_BAD || (r == CROW_FRAME_TOO_LONG && !cfg->smtp)) {
            sb_status(ev, r, &u);
            return;
        }
        if (u.len > u.consumed || u.consumed > c.have) {
            sb_puts(ev, "OVERRUN");
            return;
        }
        if (r == CROW_FRAME_NEED_MORE) {
            if (cfg->stream) {
                sb_esc(&body, c.acc, u.len);
                conn_drop(&c, u.consumed);
                if (cfg->smtp)
                    crow_frame_smtp_drop(&sm);
                else
                    crow_frame_chunked_drop(&ck);
            }
            continue;
        }
        sb_esc(&body, c.acc, u.len);
        memcpy(c.acc + c.have, in + from, n - from);     /* what follows, for rest= */
        c.have += n - from;
        if (r == CROW_FRAME_TOO_LONG)
            sb_status(ev, r, &u);
        sb_puts(ev, "BODY(");
        sb_puts(ev, body.s);
        sb_putc(ev, ')');
        if (u.flags & CROW_FRAME_F_BARE_CR)
            sb_puts(ev, " bare-cr");
        if (u.flags & CROW_FRAME_F_BARE_LF)
            sb_puts(ev, " bare-lf");
        if (u.flags & CROW_FRAME_F_SMUGGLE)
            sb_puts(ev, " smuggle");
        if (u.flags & CROW_FRAME_F_TOO_BIG)
            sb_puts(ev, " too-big");
        sb_puts(ev, " rest=");
        sb_esc(ev, c.acc + u.consumed, c.have - u.consumed);
        return;
    }
    sb_puts(ev, "MORE");
}

/* Checks IN with the decoder both accumulating and streaming. */
static void check_dec(const char *what, struct dec_cfg cfg, const char *in, size_t n,
                      const char *expect)
{
    char name[200];
    cfg.stream = 0;
    snprintf(name, sizeof name, "%s (in place)", what);
    check(name, dec_run, &cfg, in, n, expect);
    cfg.stream = 1;
    snprintf(name, sizeof name, "%s (streaming)", what);
    check(name, dec_run, &cfg, in, n, expect);
}

static void test_chunked(void)
{
    struct dec_cfg d = {0, 0, UINT64_MAX, 64, 256, 0};
    check_dec("chunked: RFC example", d,
              S("4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\nGET"),
              "BODY(Wikipedia in\\r\\n\\r\\nchunks.) rest=GET");
    check_dec("chunked: extensions and trailers skipped, hex case", d,
              S("a;name=\"v\";x\r\n0123456789\r\nA ; y\r\nABCDEFGHIJ\r\n000;last\r\n"
                "Expires: never\r\nX: y\r\n\r\n"),
              "BODY(0123456789ABCDEFGHIJ) rest=");
    check_dec("chunked: empty body", d, S("0\r\n\r\n"), "BODY() rest=");
    check_dec("chunked: bad hex", d, S("4\r\nWiki\r\ng\r\n"), "BAD(bad-chunk-size)");
    check_dec("chunked: missing size", d, S("\r\n"), "BAD(bad-chunk-size)");
    check_dec("chunked: size then junk", d, S("4x\r\n"), "BAD(bad-chunk-size)");
    check_dec("chunked: 16 hex digits fit the limit check", d,
              S("ffffffffffffffff\r\n"), "MORE");
    check_dec("chunked: 17 hex digits overflow", d,
              S("00000000000000001\r\n"), "BAD(chunk-size-overflow)");
    check_dec("chunked: data not followed by CRLF", d, S("4\r\nWikiX\r\n"), "BAD(chunk-missing-crlf)");
    check_dec("chunked: bare LF after size", d, S("4\nWiki\r\n"), "BAD(chunk-missing-crlf)");
    check_dec("chunked: bare LF in extension", d, S("4;a\nWiki\r\n"), "BAD(chunk-missing-crlf)");
    check_dec("chunked: CR without LF after data", d, S("1\r\nx\rX"), "BAD(chunk-missing-crlf)");
    check_dec("chunked: bare LF in trailer", d, S("0\r\nA: b\n\r\n"), "BAD(chunk-missing-crlf)");
    check_dec("chunked: final CR without LF", d, S("0\r\n\rx"), "BAD(chunk-missing-crlf)");
    check_dec("chunked: incomplete", d, S("4\r\nWi"), "MORE");

    struct dec_cfg lim = {0, 0, 9, 4, 8, 0};
    check_dec("chunked: total at the limit", lim, S("4;abc\r\nWiki\r\n5\r\npedia\r\n0\r\nA: b\r\n\r\n"),
              "BODY(Wikipedia) rest=");
    check_dec("chunked: over the limit before storing", lim, S("4\r\nWiki\r\n6\r\npedias\r\n0\r\n\r\n"),
              "TOOLONG(body-too-large)");
    check_dec("chunked: extension too long", lim, S("4;abcd\r\nWiki\r\n0\r\n\r\n"),
              "TOOLONG(chunk-ext-too-long)");
    check_dec("chunked: trailers too long", lim, S("0\r\nA: bcdef\r\n\r\n"),
              "TOOLONG(trailer-too-long)");
    struct dec_cfg noext = {0, 0, 100, 0, 0, 0};
    check_dec("chunked: no extension allowed", noext, S("4;\r\nWiki\r\n0\r\n\r\n"),
              "TOOLONG(chunk-ext-too-long)");
    check_dec("chunked: no trailer allowed, none sent", noext, S("4\r\nWiki\r\n0\r\n\r\n"),
              "BODY(Wiki) rest=");
    check_dec("chunked: no trailer allowed, one sent", noext, S("0\r\nA\r\n\r\n"),
              "TOOLONG(trailer-too-long)");

    struct crow_frame_chunked st;
    struct crow_frame_unit u;
    char b[] = "3\r\nabc\r\n0\r\n\r\n";
    crow_frame_chunked_init(&st, 100, 0, 0);
    is_int(crow_frame_chunked_scan(&st, b, sizeof b - 1, &u), CROW_FRAME_UNIT, "chunked: unit");
    ok(u.start == 0 && u.len == 3 && memcmp(b, "abc", 3) == 0 && u.consumed == sizeof b - 1,
       "chunked: decoded in place at the front");
    is_int(crow_frame_chunked_scan(&st, b, sizeof b - 1, &u), CROW_FRAME_UNIT, "chunked: UNIT again");
    char e[] = "z\r\n";
    crow_frame_chunked_init(&st, 100, 0, 0);
    is_int(crow_frame_chunked_scan(&st, e, 3, &u), CROW_FRAME_BAD, "chunked: bad");
    is_int(crow_frame_chunked_scan(&st, e, 3, &u), CROW_FRAME_BAD, "chunked: bad is sticky");
    is_int(u.reason, CROW_FRAME_E_CHUNK_SIZE, "chunked: sticky reason");
}

static void test_smtp(void)
{
    struct dec_cfg d = {1, 0, 0, 0, 0, 0};
    check_dec("smtp: empty message right after DATA", d, S(".\r\nQUIT\r\n"), "BODY() rest=QUIT\\r\\n");
    check_dec("smtp: one line", d, S("Hello\r\n.\r\n"), "BODY(Hello\\r\\n) rest=");
    check_dec("smtp: empty line then end", d, S("\r\n.\r\n"), "BODY(\\r\\n) rest=");
    check_dec("smtp: dot-unstuffing (RFC 5321 4.5.2)", d,
              S("..dot\r\n.x\r\n...\r\nmid.dle.\r\n.\r\nRSET\r\n"),
              "BODY(.dot\\r\\nx\\r\\n..\\r\\nmid.dle.\\r\\n) rest=RSET\\r\\n");
    check_dec("smtp: first line stuffed", d, S("..\r\n.\r\n"), "BODY(.\\r\\n) rest=");
    check_dec("smtp: bare LF flagged, kept", d, S("a\nb\r\n.\r\n"), "BODY(a\\nb\\r\\n) bare-lf rest=");
    check_dec("smtp: bare CR flagged, kept", d, S("a\rb\r\n.\r\n"), "BODY(a\\rb\\r\\n) bare-cr rest=");
    check_dec("smtp: LF.LF is not the end", d, S("a\n.\nb\r\n.\r\n"),
              "BODY(a\\n.\\nb\\r\\n) bare-lf smuggle rest=");
    check_dec("smtp: CR.CR is not the end", d, S("a\r.\rb\r\n.\r\n"),
              "BODY(a\\r.\\rb\\r\\n) bare-cr smuggle rest=");
    check_dec("smtp: CRLF.LF is not the end", d, S("a\r\n.\nb\r\n.\r\n"),
              "BODY(a\\r\\n\\nb\\r\\n) bare-lf smuggle rest=");
    check_dec("smtp: LF.CRLF is not the end", d, S("a\n.\r\nb\r\n.\r\n"),
              "BODY(a\\n.\\r\\nb\\r\\n) bare-lf smuggle rest=");
    check_dec("smtp: CRLF.CR is not the end", d, S("a\r\n.\rb\r\n.\r\n"),
              "BODY(a\\r\\n\\rb\\r\\n) bare-cr smuggle rest=");
    check_dec("smtp: CR.LF is not the end", d, S("a\r.\nb\r\n.\r\n"),
              "BODY(a\\r.\\nb\\r\\n) bare-cr bare-lf smuggle rest=");
    check_dec("smtp: CR.CRLF is not the end", d, S("a\r.\r\nb\r\n.\r\n"),
              "BODY(a\\r.\\r\\nb\\r\\n) bare-cr smuggle rest=");
    check_dec("smtp: .LF right after DATA", d, S(".\n\r\n.\r\n"), "BODY(\\n\\r\\n) bare-lf smuggle rest=");
    check_dec("smtp: CRLF.CR CRLF", d, S("a\r\n.\r\r\n.\r\n"),
              "BODY(a\\r\\n\\r\\r\\n) bare-cr smuggle rest=");
    check_dec("smtp: dot inside a line is data", d, S("a.\r\nb .\r\n.\r\n"),
              "BODY(a.\\r\\nb .\\r\\n) rest=");
    check_dec("smtp: incomplete", d, S("Hello\r\n.\r"), "MORE");

    struct dec_cfg four = {1, 0, 4, 0, 0, 0};
    check_dec("smtp: over the limit: scanned to the end, 4 bytes kept", four,
              S("abcdef\r\n..gh\r\n.\r\nNEXT"), "TOOLONG(body-too-large)BODY(abcd) too-big rest=NEXT");
    struct dec_cfg exact = {1, 0, 5, 0, 0, 0};
    check_dec("smtp: exactly the limit", exact, S("abc\r\n.\r\n"), "BODY(abc\\r\\n) rest=");
    struct dec_cfg rej = {1, 0, 0, 0, 0, CROW_FRAME_SMTP_REJECT_BARE};
    check_dec("smtp: reject bare LF", rej, S("a\nb\r\n.\r\n"), "BAD(bare-lf)");
    check_dec("smtp: reject bare CR", rej, S("ab\rc\r\n.\r\n"), "BAD(bare-cr)");
    check_dec("smtp: reject CRLF.LF", rej, S("a\r\n.\n.\r\n"), "BAD(bare-lf)");
    check_dec("smtp: reject CRLF.CR x", rej, S("a\r\n.\rx\r\n.\r\n"), "BAD(bare-cr)");
    check_dec("smtp: reject mode, clean message", rej, S("..a\r\n.\r\n"), "BODY(.a\\r\\n) rest=");

    struct crow_frame_smtp st;
    struct crow_frame_unit u;
    char b[] = "x\r\n.\r\nMAIL";
    crow_frame_smtp_init(&st, 0, 0);
    is_int(crow_frame_smtp_scan(&st, b, sizeof b - 1, &u), CROW_FRAME_UNIT, "smtp: unit");
    ok(u.start == 0 && u.len == 3 && u.consumed == 6 && memcmp(b + 6, "MAIL", 4) == 0,
       "smtp: offsets; bytes after the end untouched");
    is_int(crow_frame_smtp_scan(&st, b, sizeof b - 1, &u), CROW_FRAME_UNIT, "smtp: UNIT again");
    crow_frame_smtp_init(&st, 0, CROW_FRAME_SMTP_REJECT_BARE);
    char c[] = "\n";
    is_int(crow_frame_smtp_scan(&st, c, 1, &u), CROW_FRAME_BAD, "smtp: reject");
    is_int(crow_frame_smtp_scan(&st, c, 1, &u), CROW_FRAME_BAD, "smtp: reject is sticky");
}

int main(void)
{
    test_lines();
    test_http();
    test_fixed();
    test_chunked();
    test_smtp();
    return tap_done();
}
