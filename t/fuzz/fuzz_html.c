/* fuzz_html.c — differential fuzzing of c-core/html against naive references written from the
 * definitions: the three escapers (UTF-8, Latin-1, UTF-32 input, the last with surrogates and
 * out-of-range values), form decoding (out of place and in place, with and without `+`), and
 * the byte search.  abort() on any mismatch; buffers are sized exactly, so ASan catches a
 * read or write past either end.
 * Input: byte 0 picks a needle length for the search; the rest is the data. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "html.h"

static size_t ref_entity(unsigned c, uint8_t *o)
{
    const char *e = c == '&' ? "&amp;" : c == '<' ? "&lt;" : c == '>' ? "&gt;"
                  : c == '"' ? "&quot;" : c == '\'' ? "&#39;" : NULL;
    if (!e)
        return 0;
    memcpy(o, e, strlen(e));
    return strlen(e);
}

static size_t ref_utf8(uint32_t c, uint8_t *o)
{
    if ((c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF)
        c = 0xFFFD;
    if (c < 0x80) {
        o[0] = (uint8_t)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (uint8_t)(0xC0 | c >> 6), o[1] = (uint8_t)(0x80 | (c & 63));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (uint8_t)(0xE0 | c >> 12), o[1] = (uint8_t)(0x80 | (c >> 6 & 63));
        o[2] = (uint8_t)(0x80 | (c & 63));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | c >> 18), o[1] = (uint8_t)(0x80 | (c >> 12 & 63));
    o[2] = (uint8_t)(0x80 | (c >> 6 & 63)), o[3] = (uint8_t)(0x80 | (c & 63));
    return 4;
}

static int hex(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void check(const uint8_t *got, size_t ng, const uint8_t *want, size_t nw)
{
    if (ng != nw || (nw && memcmp(got, want, nw)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t needle_n = data[0] % 8;
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    uint8_t *out = malloc(6 * n + 1), *ref = malloc(6 * n + 1);
    size_t k, r, i;

    /* UTF-8 and Latin-1 escaping */
    k = crow_html_escape_utf8(in, n, out);
    for (r = 0, i = 0; i < n; i++) {
        size_t e = ref_entity(in[i], ref + r);
        if (e)
            r += e;
        else
            ref[r++] = in[i];
    }
    check(out, k, ref, r);
    k = crow_html_escape_latin1(in, n, out);
    for (r = 0, i = 0; i < n; i++) {
        size_t e = ref_entity(in[i], ref + r);
        r += e ? e : ref_utf8(in[i], ref + r);
    }
    check(out, k, ref, r);

    /* UTF-32 escaping: the data as code points, some of them surrogates or beyond U+10FFFF */
    {
        size_t m = n / 3;
        uint32_t *cp = malloc((m ? m : 1) * sizeof *cp);
        uint8_t *o32 = malloc(6 * m + 1), *r32 = malloc(6 * m + 1);
        for (i = 0; i < m; i++)
            cp[i] = (uint32_t)in[3 * i] << 16 | (uint32_t)in[3 * i + 1] << 8 | in[3 * i + 2];
        k = crow_html_escape_utf32(cp, m, o32);
        for (r = 0, i = 0; i < m; i++) {
            size_t e = cp[i] < 256 ? ref_entity(cp[i], r32 + r) : 0;
            r += e ? e : ref_utf8(cp[i], r32 + r);
        }
        if (k > 6 * m)
            abort();
        check(o32, k, r32, r);
        free(cp), free(o32), free(r32);
    }

    /* form decoding, out of place and in place */
    for (int plus = 0; plus < 2; plus++) {
        uint8_t *exact = malloc(n ? n : 1), *copy = malloc(n ? n : 1);
        for (r = 0, i = 0; i < n; i++) {
            if (in[i] == '%' && i + 2 < n && hex(in[i + 1]) >= 0 && hex(in[i + 2]) >= 0) {
                ref[r++] = (uint8_t)(hex(in[i + 1]) << 4 | hex(in[i + 2]));
                i += 2;
            } else {
                ref[r++] = in[i] == '+' && plus ? ' ' : in[i];
            }
        }
        memcpy(copy, in, n);
        k = crow_html_form_decode(copy, n, exact, plus);
        check(exact, k, ref, r);
        k = crow_html_form_decode(copy, n, copy, plus);
        check(copy, k, ref, r);
        free(exact), free(copy);
    }

    /* byte search against a naive scan, from every fourth offset */
    if (needle_n && needle_n <= n) {
        const uint8_t *needle = in + n - needle_n;
        for (size_t from = 0; from <= n; from += 4) {
            long want = -1;
            for (i = from; i + needle_n <= n; i++)
                if (!memcmp(in + i, needle, needle_n)) {
                    want = (long)i;
                    break;
                }
            if (crow_html_find(in, n, from, needle, needle_n) != want)
                abort();
        }
    }
    free(out), free(ref);
    return 0;
}
