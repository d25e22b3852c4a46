/* fuzz_utf8.c — differential fuzzing of the UTF-8 codec: every implementation the CPU has and
 * the streaming API (cut where the fuzzer says) against a naive decoder written from the
 * definition, in both modes, plus encode round trips.  abort() on any mismatch.
 * Input: byte 0 picks a cut offset, byte 1 a chunk size; the rest is the text. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

static const char *const impls[] = {"scalar", "sse2", "avx2"};

/* Can P[0..K) start a well-formed L-byte sequence?  The code points it may lead to form the
 * interval [lo, hi]; it must meet the L-byte range and not lie inside the surrogates. */
static int naive_ok(const uint8_t *p, int k, int l, uint32_t *cp)
{
    static const uint8_t lead_mask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    static const uint32_t lmin[5] = {0, 0, 0x80, 0x800, 0x10000};
    static const uint32_t lmax[5] = {0, 0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
    uint32_t lo = p[0] & lead_mask[l], hi = lo;
    for (int j = 1; j < l; j++) {
        if (j < k) {
            if ((p[j] & 0xC0) != 0x80)
                return 0;
            lo = lo << 6 | (p[j] & 63u), hi = hi << 6 | (p[j] & 63u);
        } else {
            lo <<= 6, hi = hi << 6 | 63;
        }
    }
    if (lo < lmin[l])
        lo = lmin[l];
    if (hi > lmax[l])
        hi = lmax[l];
    if (lo > hi || (lo >= 0xD800 && hi <= 0xDFFF))
        return 0;
    *cp = lo;
    return 1;
}

static size_t naive_decode(const uint8_t *in, size_t n, uint32_t *out, size_t *first, size_t *before)
{
    size_t i = 0, o = 0;
    *first = n;
    while (i < n) {
        uint8_t c = in[i];
        int l = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        uint32_t cp;
        if (l && (size_t)l <= n - i && naive_ok(in + i, l, l, &cp)) {
            out[o++] = cp;
            i += (size_t)l;
            continue;
        }
        size_t k = 1;
        for (int j = l - 1; j >= 1; j--)
            if ((size_t)j <= n - i && naive_ok(in + i, j, l, &cp)) {
                k = (size_t)j;
                break;
            }
        if (*first == n)
            *first = i, *before = o;
        out[o++] = 0xFFFD;
        i += k;
    }
    if (*first == n)
        *before = o;
    return o;
}

static void check(int cond)
{
    if (!cond)
        abort();
}

static size_t stream_run(const uint8_t *in, size_t n, size_t cut, size_t chunk, uint32_t *out,
                         int mode, size_t *err, int *failed)
{
    struct crow_utf8_stream s;
    size_t o = 0, i = 0, e = 0;
    crow_utf8_stream_init(&s, mode);
    *failed = 0;
    uint32_t *tmp = malloc((n + 2) * sizeof *tmp);
    while (i < n) {
        size_t end = i < cut ? cut : i + chunk;
        if (end > n)
            end = n;
        size_t got = crow_utf8_stream_feed(&s, in + i, end - i, tmp, &e);
        if (s.failed && !*failed)
            *failed = 1, *err = e;
        memcpy(out + o, tmp, got * sizeof *tmp);
        o += got;
        i = end;
    }
    errno = 0;
    size_t got = crow_utf8_stream_finish(&s, tmp, &e);
    if (!*failed && errno == EILSEQ) /* a sequence cut by the very end */
        *failed = 1, *err = e;
    if (got)
        out[o++] = tmp[0];
    free(tmp);
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t n = size - 2;
    const uint8_t *in = data + 2;
    uint32_t *want = malloc((n + 1) * 4), *got = malloc((n + 1) * 4), *sgot = malloc((n + 2) * 4);
    uint8_t *enc = malloc(4 * n + 4), *enc2 = malloc(4 * n + 4);
    size_t first, before;
    size_t wn = naive_decode(in, n, want, &first, &before);
    size_t cut = data[0] % (n + 1), chunk = 1 + data[1] % 16;

    for (size_t k = 0; k < sizeof impls / sizeof impls[0]; k++) {
        if (!crow_utf8_impl_supported(impls[k]))
            continue;
        check(crow_utf8_set_impl(impls[k]) == 0);
        size_t e, gn = crow_utf8_decode(in, n, got, &e, CROW_UTF8_REPLACE);
        check(gn == wn && memcmp(got, want, wn * 4) == 0 && e == first);
        gn = crow_utf8_decode(in, n, got, &e, CROW_UTF8_STOP);
        check(gn == before && e == first && memcmp(got, want, before * 4) == 0);
        check(crow_utf8_validate(in, n, &e) == (first < n ? -1 : 0) && e == first);
        check(crow_utf8_count(in, n) == wn);

        int failed;
        size_t serr = n;
        gn = stream_run(in, n, cut, chunk, sgot, CROW_UTF8_REPLACE, &serr, &failed);
        check(gn == wn && memcmp(sgot, want, wn * 4) == 0 && !failed);
        gn = stream_run(in, n, cut, chunk, sgot, CROW_UTF8_STOP, &serr, &failed);
        check(gn == before && memcmp(sgot, want, before * 4) == 0);
        check(failed == (first < n) && (!failed || serr == first));

        /* encode round trip: the decoded text re-encodes to the input where it was valid */
        size_t en = crow_utf8_encode(want, wn, enc, &e, CROW_UTF8_STOP);
        check(e == wn);
        if (first == n)
            check(en == n && memcmp(enc, in, n) == 0);
        uint32_t *back = malloc((en + 1) * 4); /* decode needs room for EN code points */
        check(crow_utf8_decode(enc, en, back, &e, CROW_UTF8_STOP) == wn && e == en
              && memcmp(back, want, wn * 4) == 0);
        free(back);
        /* raw words as UTF-32: REPLACE equals STOP piecewise */
        size_t nu = n / 4;
        uint32_t *units = malloc(nu * 4 + 4);
        memcpy(units, in, nu * 4);
        size_t rn = crow_utf8_encode(units, nu, enc2, &e, CROW_UTF8_REPLACE);
        size_t pos = 0, u = 0;
        while (u < nu) {
            size_t stop_at, part = crow_utf8_encode(units + u, nu - u, enc, &stop_at, CROW_UTF8_STOP);
            check(pos + part <= rn && memcmp(enc2 + pos, enc, part) == 0);
            pos += part, u += stop_at;
            if (u < nu) {
                uint32_t c = units[u];
                check(c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF));
                check(pos + 3 <= rn && memcmp(enc2 + pos, "\xef\xbf\xbd", 3) == 0);
                pos += 3, u++;
            }
        }
        check(pos == rn);
        free(units);
    }
    free(want), free(got), free(sgot), free(enc), free(enc2);
    return 0;
}
