/* html.c — HTML escaping into UTF-8 and form decoding for crow.web.
 *
 * Design: templates expand at compile time into constant octet chunks, so what is left at run
 * time is the dynamic text, which must be escaped and encoded in one pass straight into the
 * page's output buffer.  The escapers look up each ASCII unit in a 256-entry entity table and
 * copy the others as they are; runs of non-ASCII code points go to the UTF-8 codec
 * (crow_utf8_encode, REPLACE mode), so the codec stays the one place that knows UTF-8
 * (Latin-1 input only ever needs its two-byte form, written inline).  Form decoding is a
 * single forward pass that may work in place.  Nothing here allocates or fails: callers size
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
            if (CROW_UNLIKELY(entity_len[c]))
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
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
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

long crow_html_find(const uint8_t *hay, size_t n, size_t from, const uint8_t *needle,
                    size_t needle_n)
{
    const uint8_t *p;

    if (needle_n == 0 || from > n)
        return -1;
    p = memmem(hay + from, n - from, needle, needle_n);
    return p ? (long)(p - hay) : -1;
}
