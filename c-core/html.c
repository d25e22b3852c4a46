/* html.c — HTML escaping into UTF-8 and form decoding for crow.web.
 *
 * Design: templates expand at compile time into constant octet chunks, so what is left at run
 * time is the dynamic text, which must be escaped and encoded in one pass straight into the
 * page's output buffer.  The escapers store each ASCII unit's output (itself or its entity)
 * from a table of 8-byte entries without branching on it; runs of non-ASCII code points go to the UTF-8 codec
 * (crow_utf8_encode, REPLACE mode), so the codec stays the one place that knows UTF-8
 * (Latin-1 input only ever needs its two-byte form, written inline).  Form decoding is a
 * single forward pass that may work in place; percent-encoding (URL paths, cookie values) and
 * access-log quoting are single passes too, the kept bytes of each set a 256-bit table, so no
 * Lisp loop ever walks a value byte by byte.  Nothing here allocates or fails: callers size
 * OUT from the documented worst case. */
#include <string.h>

#include "crow.h"
#include "html.h"
#include "utf8.h"

/* Entity for each special byte (padded to 8 bytes), length 0 for the others. */
static const char entity[256][8] = {
    ['&'] = "&amp;", ['<'] = "&lt;", ['>'] = "&gt;", ['"'] = "&quot;", ['\''] = "&#39;",
};
static const uint8_t entity_len[256] = {
    ['&'] = 5, ['<'] = 4, ['>'] = 4, ['"'] = 6, ['\''] = 5,
};

/* What each ASCII character becomes (itself, or its entity), padded to 8 bytes, and its
 * length: the escapers store all 8 bytes and advance by the length, with no branch on the
 * character.  Safe within the documented room: before input unit I at most 6 * I bytes were
 * written, so an 8-byte store for any unit but the last ends by 6 * N - 4; the last unit is
 * written exactly. */
static const uint8_t ascii_out[128][8] = {
    {0x00}, {0x01}, {0x02}, {0x03},
    {0x04}, {0x05}, {0x06}, {0x07},
    {0x08}, {0x09}, {0x0a}, {0x0b},
    {0x0c}, {0x0d}, {0x0e}, {0x0f},
    {0x10}, {0x11}, {0x12}, {0x13},
    {0x14}, {0x15}, {0x16}, {0x17},
    {0x18}, {0x19}, {0x1a}, {0x1b},
    {0x1c}, {0x1d}, {0x1e}, {0x1f},
    {0x20}, {0x21}, {0x26, 0x71, 0x75, 0x6f, 0x74, 0x3b}, {0x23},
    {0x24}, {0x25}, {0x26, 0x61, 0x6d, 0x70, 0x3b}, {0x26, 0x23, 0x33, 0x39, 0x3b},
    {0x28}, {0x29}, {0x2a}, {0x2b},
    {0x2c}, {0x2d}, {0x2e}, {0x2f},
    {0x30}, {0x31}, {0x32}, {0x33},
    {0x34}, {0x35}, {0x36}, {0x37},
    {0x38}, {0x39}, {0x3a}, {0x3b},
    {0x26, 0x6c, 0x74, 0x3b}, {0x3d}, {0x26, 0x67, 0x74, 0x3b}, {0x3f},
    {0x40}, {0x41}, {0x42}, {0x43},
    {0x44}, {0x45}, {0x46}, {0x47},
    {0x48}, {0x49}, {0x4a}, {0x4b},
    {0x4c}, {0x4d}, {0x4e}, {0x4f},
    {0x50}, {0x51}, {0x52}, {0x53},
    {0x54}, {0x55}, {0x56}, {0x57},
    {0x58}, {0x59}, {0x5a}, {0x5b},
    {0x5c}, {0x5d}, {0x5e}, {0x5f},
    {0x60}, {0x61}, {0x62}, {0x63},
    {0x64}, {0x65}, {0x66}, {0x67},
    {0x68}, {0x69}, {0x6a}, {0x6b},
    {0x6c}, {0x6d}, {0x6e}, {0x6f},
    {0x70}, {0x71}, {0x72}, {0x73},
    {0x74}, {0x75}, {0x76}, {0x77},
    {0x78}, {0x79}, {0x7a}, {0x7b},
    {0x7c}, {0x7d}, {0x7e}, {0x7f},
};
static const uint8_t ascii_len[128] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 6, 1, 1, 1, 5, 5, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 4, 1, 4, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* Writes C's entity (4 to 6 bytes, never more) with two fixed-size copies, the second
 * overlapping the first, instead of a variable-length memcpy call. */
static inline size_t put_entity(uint8_t *out, unsigned c)
{
    size_t n = entity_len[c];
    memcpy(out, entity[c], 4);
    memcpy(out + n - 2, entity[c] + n - 2, 2);
    return n;
}

size_t crow_html_escape_utf32(const uint32_t *in, size_t n, uint8_t *out)
{
    size_t k = 0, i = 0;

    while (i < n) {
        uint32_t c = in[i];
        if (c < 0x80) {
            if (CROW_LIKELY(i + 1 < n)) {
                memcpy(out + k, ascii_out[c], 8);
                k += ascii_len[c];
            } else if (CROW_UNLIKELY(entity_len[c]))
                k += put_entity(out + k, c);
            else
                out[k++] = (uint8_t)c;
            i++;
        } else {
            size_t run = i;
            while (i < n && in[i] >= 0x80)
                i++;
            k += crow_utf8_encode(in + run, i - run, out + k, NULL, CROW_UTF8_REPLACE);
        }
    }
    return k;
}

size_t crow_html_escape_latin1(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t k = 0, i = 0;

    for (; i + 1 < n; i++) {
        uint8_t c = in[i];
        if (CROW_LIKELY(c < 0x80)) {
            memcpy(out + k, ascii_out[c], 8);
            k += ascii_len[c];
        } else {
            out[k++] = (uint8_t)(0xC0 | c >> 6);
            out[k++] = (uint8_t)(0x80 | (c & 0x3F));
        }
    }
    if (i < n) {
        uint8_t c = in[i];
        if (c < 0x80) {
            if (CROW_UNLIKELY(entity_len[c]))
                k += put_entity(out + k, c);
            else
                out[k++] = c;
        } else {
            out[k++] = (uint8_t)(0xC0 | c >> 6);
            out[k++] = (uint8_t)(0x80 | (c & 0x3F));
        }
    }
    return k;
}

size_t crow_html_escape_utf8(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t k = 0, run = 0;

    for (size_t i = 0; i < n; i++) {
        uint8_t c = in[i];
        if (CROW_UNLIKELY(entity_len[c])) {
            memcpy(out + k, in + run, i - run);
            k += i - run;
            k += put_entity(out + k, c);
            run = i + 1;
        }
    }
    memcpy(out + k, in + run, n - run);
    return k + (n - run);
}

static inline int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

size_t crow_html_form_decode(const uint8_t *in, size_t n, uint8_t *out, int plus)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        uint8_t c = in[i];
#ifdef CROW_PLANTED_BUG
        if (c == '%' && i + 2 <= n) { /* planted: reads one byte past a final "%X" */
#else
        if (c == '%' && i + 2 < n) {
#endif
            int h = hexval(in[i + 1]), l = hexval(in[i + 2]);
            if (h >= 0 && l >= 0) {
                out[k++] = (uint8_t)(h << 4 | l);
                i += 2;
                continue;
            }
        } else if (c == '+' && plus) {
            c = ' ';
        }
        out[k++] = c;
    }
    return k;
}

/* Bit I of KEEP[set][I >> 5] says byte I is kept by crow_html_percent_encode. */
static const uint32_t keep[2][8] = {
    /* PATH: - . / 0-9, A-Z, _, a-z, ~ */
    {0, 0x03ffe000u, 0x87fffffeu, 0x47fffffeu, 0, 0, 0, 0},
    /* COOKIE: 0x21-0x7e except 0x22 " 0x25 % 0x2c , 0x3b ; 0x5c \ */
    {0, 0xf7ffefdau, 0xefffffffu, 0x7fffffffu, 0, 0, 0, 0},
};

size_t crow_html_percent_encode(const uint8_t *in, size_t n, uint8_t *out, int set)
{
    static const char hex[] = "0123456789ABCDEF";
    if (set < 0 || set > CROW_HTML_PCT_COOKIE)
        return (size_t)-1;
    const uint32_t *k = keep[set];
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = in[i];
        if (k[c >> 5] >> (c & 31) & 1) {
            out[o++] = c;
        } else {
            out[o++] = '%';
            out[o++] = (uint8_t)hex[c >> 4];
            out[o++] = (uint8_t)hex[c & 15];
        }
    }
    return o;
}

size_t crow_html_log_quote(const uint8_t *in, size_t n, uint8_t *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = in[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = c;
        } else if (c < 0x20) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = (uint8_t)hex[c >> 4];
            out[o++] = (uint8_t)hex[c & 15];
        } else {
            out[o++] = c;
        }
    }
    return o;
}

long crow_html_find(const uint8_t *hay, size_t n, size_t from, const uint8_t *needle,
                    size_t needle_n)
{
    const uint8_t *p;

    if (needle_n == 0 || from > n)
        return -1;
    p = memmem(hay + from, n - from, needle, needle_n);
    return p ? (long)(p - hay) : -1;
}
