/* test_utf8.c — the UTF-8 codec under every implementation the CPU has: hand goldens,
 * every code point, an independent reference decoder, block-boundary errors, streaming. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "tap.h"

/* ------------------------------------------------------------ independent reference
 * Built from the definition, not from the library's tables: a byte string is a well-formed
 * sequence if it is exactly the encoding of a scalar value, and a maximal subpart is the
 * longest prefix of some such encoding.  Prefixes of length 1..3 are collected by encoding
 * every scalar value with the straightforward encoder below. */

static int ref_enc(uint32_t cp, uint8_t *b)
{
    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (uint8_t)(0xC0 | cp >> 6), b[1] = (uint8_t)(0x80 | (cp & 63));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (uint8_t)(0xE0 | cp >> 12), b[1] = (uint8_t)(0x80 | (cp >> 6 & 63));
        b[2] = (uint8_t)(0x80 | (cp & 63));
        return 3;
    }
    b[0] = (uint8_t)(0xF0 | cp >> 18), b[1] = (uint8_t)(0x80 | (cp >> 12 & 63));
    b[2] = (uint8_t)(0x80 | (cp >> 6 & 63)), b[3] = (uint8_t)(0x80 | (cp & 63));
    return 4;
}

static int is_scalar(uint32_t cp) { return cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF); }

static uint8_t pre1[256 / 8], pre2[65536 / 8], *pre3;

static void ref_init(void)
{
    pre3 = calloc(1, (1u << 24) / 8);
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        uint8_t b[4];
        if (!is_scalar(cp))
            continue;
        int len = ref_enc(cp, b);
        uint32_t k1 = b[0], k2 = k1 << 8 | b[1], k3 = k2 << 8 | b[2];
        pre1[k1 / 8] |= (uint8_t)(1 << k1 % 8);
        if (len >= 2)
            pre2[k2 / 8] |= (uint8_t)(1 << k2 % 8);
        if (len >= 3)
            pre3[k3 / 8] |= (uint8_t)(1 << k3 % 8);
    }
}

static int is_prefix(const uint8_t *p, int k)
{
    uint32_t key = 0;
    for (int j = 0; j < k; j++)
        key = key << 8 | p[j];
    const uint8_t *t = k == 1 ? pre1 : k == 2 ? pre2 : pre3;
    return t[key / 8] >> key % 8 & 1;
}

static int is_whole(const uint8_t *p, int len, uint32_t *cp)
{
    static const uint8_t mask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    uint32_t v = p[0] & mask[len];
    uint8_t b[4];
    for (int j = 1; j < len; j++)
        v = v << 6 | (p[j] & 63u);
    if (!is_scalar(v) || ref_enc(v, b) != len || memcmp(b, p, (size_t)len) != 0)
        return 0;
    *cp = v;
    return 1;
}

/* REPLACE-mode decode; *FIRST gets the offset of the first error (or N), *BEFORE the code
 * points before it. */
static size_t ref_decode(const uint8_t *in, size_t n, uint32_t *out, size_t *first, size_t *before)
{
    size_t i = 0, o = 0;
    *first = n, *before = 0;
    while (i < n) {
        uint32_t cp = 0;
        int len = 0;
        for (int l = 1; l <= 4 && (size_t)l <= n - i && !len; l++)
            if (is_whole(in + i, l, &cp))
                len = l;
        if (len) {
            out[o++] = cp;
            i += (size_t)len;
            continue;
        }
        int k = 1;
        for (int l = 3; l >= 1; l--)
            if ((size_t)l <= n - i && is_prefix(in + i, l)) {
                k = l;
                break;
            }
        if (*first == n)
            *first = i, *before = o;
        out[o++] = 0xFFFD;
        i += (size_t)k;
    }
    if (*first == n)
        *before = o;
    return o;
}

/* ------------------------------------------------------------ helpers */

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* Compares every entry point on IN against the reference; returns 1 if all agree.  Buffers
 * are allocated to the documented bounds exactly, so ASan sees any write past them. */
static int check_all(const uint8_t *in, size_t n, char *why, size_t whylen)
{
    uint32_t *want = malloc((n + 1) * sizeof *want), *got = malloc((n + 1) * sizeof *got);
    size_t first, before, e = 12345;
    size_t wn = ref_decode(in, n, want, &first, &before);
    int good = 1;
    size_t gn = crow_utf8_decode(in, n, got, &e, CROW_UTF8_REPLACE);
    if (gn != wn || memcmp(got, want, wn * sizeof *got) != 0 || e != first) {
        snprintf(why, whylen, "replace decode: %zu cps (want %zu), err_off %zu (want %zu)", gn, wn, e, first);
        good = 0;
    }
    errno = 0;
    gn = crow_utf8_decode(in, n, got, &e, CROW_UTF8_STOP);
    if (good && (gn != before || e != first || memcmp(got, want, before * sizeof *got) != 0
                 || errno != (first < n ? EILSEQ : 0))) {
        snprintf(why, whylen, "stop decode: %zu cps (want %zu), err_off %zu (want %zu)", gn, before, e, first);
        good = 0;
    }
    errno = 0;
    int v = crow_utf8_validate(in, n, &e);
    if (good && (v != (first < n ? -1 : 0) || e != first || errno != (first < n ? EILSEQ : 0))) {
        snprintf(why, whylen, "validate: %d err_off %zu (want %zu)", v, e, first);
        good = 0;
    }
    if (good && crow_utf8_count(in, n) != wn) {
        snprintf(why, whylen, "count: %zu (want %zu)", crow_utf8_count(in, n), wn);
        good = 0;
    }
    free(want);
    free(got);
    return good;
}

/* Decodes IN through a stream cut at CUTS (sorted offsets); returns the code points. */
static size_t stream_decode(const uint8_t *in, size_t n, const size_t *cuts, int ncuts,
                            uint32_t *out, int mode, size_t *err, int *failed)
{
    struct crow_utf8_stream s;
    size_t o = 0, prev = 0, e = n;
    crow_utf8_stream_init(&s, mode);
    *failed = 0;
    for (int c = 0; c <= ncuts; c++) {
        size_t end = c < ncuts ? cuts[c] : n;
        uint32_t *chunk = malloc((end - prev + 1) * sizeof *chunk);
        errno = 0;
        size_t got = crow_utf8_stream_feed(&s, in + prev, end - prev, chunk, &e);
        if (errno == EILSEQ)
            *failed = 1;
        if (crow_utf8_stream_feed(&s, in + prev, 0, NULL, &e) != 0) /* empty chunks are fine */
            *failed = 2;
        memcpy(out + o, chunk, got * sizeof *chunk);
        o += got;
        free(chunk);
        prev = end;
    }
    uint32_t last;
    errno = 0;
    size_t got = crow_utf8_stream_finish(&s, &last, &e);
    if (errno == EILSEQ)
        *failed = 1;
    if (got)
        out[o++] = last;
    *err = *failed ? e : n;
    return o;
}

static size_t random_input(uint8_t *buf, size_t max)
{
    size_t n = rnd() % max;
    static const uint8_t special[] = {0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0,
                                      0xF4, 0xF5, 0xFF, 0x80, 0xBF, 0x9F, 0xA0, 0x8F, 0x90};
    if (rnd() % 3 == 0) { /* words of one script each, as in real mixed text, then mutations */
        size_t i = 0;
        while (i + 4 * 9 <= n) {
            uint32_t cls = rnd() % 4, len = 1 + rnd() % 12;
            for (uint32_t k = 0; k < len; k++) {
                uint32_t cp = cls == 0 ? 'a' + rnd() % 26 : cls == 1 ? 0x430 + rnd() % 32
                            : cls == 2 ? 0x4E00 + rnd() % 0x5200 : 0x1F600 + rnd() % 64;
                i += (size_t)ref_enc(cp, buf + i);
            }
            buf[i++] = ' ';
        }
        n = i;
        for (int m = (int)(rnd() % 3); m > 0 && n; m--)
            buf[rnd() % n] = special[rnd() % sizeof special];
        return n;
    }
    if (rnd() % 2) { /* valid text of every length class, then a few mutations */
        size_t i = 0;
        while (i + 4 <= n) {
            uint32_t cls = rnd() % 4, cp;
            cp = cls == 0 ? rnd() % 0x80 : cls == 1 ? 0x80 + rnd() % 0x780
               : cls == 2 ? 0x800 + rnd() % 0xF800 : 0x10000 + rnd() % 0x100000;
            if (!is_scalar(cp))
                cp = 'x';
            i += (size_t)ref_enc(cp, buf + i);
        }
        n = i;
        for (int m = (int)(rnd() % 4); m > 0 && n; m--)
            buf[rnd() % n] = rnd() % 3 ? special[rnd() % sizeof special] : (uint8_t)rnd();
        return n;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t r = rnd() % 100;
        buf[i] = r < 35 ? (uint8_t)(rnd() % 0x80) : r < 60 ? (uint8_t)(0x80 + rnd() % 0x40)
               : r < 80 ? (uint8_t)(0xC0 + rnd() % 0x40) : special[rnd() % sizeof special];
    }
    return n;
}

/* ------------------------------------------------------------ the suite, per implementation */

static void suite(const char *impl)
{
    char why[200] = "";
    size_t e;

    /* Unicode 15 §3.9, Table 3-8: 61 F1 80 80 E1 80 C2 62 -> 0061 FFFD FFFD FFFD 0062. */
    {
        const uint8_t in[] = {0x61, 0xF1, 0x80, 0x80, 0xE1, 0x80, 0xC2, 0x62};
        const uint32_t want[] = {0x0061, 0xFFFD, 0xFFFD, 0xFFFD, 0x0062};
        uint32_t out[8];
        size_t n = crow_utf8_decode(in, 8, out, &e, CROW_UTF8_REPLACE);
        ok(n == 5 && memcmp(out, want, sizeof want) == 0 && e == 1,
           "%s: Unicode's worked example 61 F1 80 80 E1 80 C2 62 -> 0061 FFFD FFFD FFFD 0062", impl);
        errno = 0;
        n = crow_utf8_decode(in, 8, out, &e, CROW_UTF8_STOP);
        ok(n == 1 && out[0] == 0x61 && e == 1 && errno == EILSEQ,
           "%s: STOP mode stops at offset 1 with EILSEQ", impl);
        errno = 0;
        ok(crow_utf8_validate(in, 8, &e) == -1 && e == 1 && errno == EILSEQ,
           "%s: validate returns -1, offset 1, EILSEQ", impl);
        is_int(crow_utf8_count(in, 8), 5, "count is 5");
    }

    /* Hand-written goldens: byte strings and the code points they must decode to. */
    {
        static const struct { const char *what; uint8_t in[8]; int n; uint32_t out[8]; int m; } g[] = {
            {"ASCII", {'h', 'i'}, 2, {'h', 'i'}, 2},
            {"NUL", {0}, 1, {0}, 1},
            {"U+00E9", {0xC3, 0xA9}, 2, {0xE9}, 1},
            {"U+20AC", {0xE2, 0x82, 0xAC}, 3, {0x20AC}, 1},
            {"U+1F600", {0xF0, 0x9F, 0x98, 0x80}, 4, {0x1F600}, 1},
            {"last before surrogates U+D7FF", {0xED, 0x9F, 0xBF}, 3, {0xD7FF}, 1},
            {"first after surrogates U+E000", {0xEE, 0x80, 0x80}, 3, {0xE000}, 1},
            {"U+10FFFF", {0xF4, 0x8F, 0xBF, 0xBF}, 4, {0x10FFFF}, 1},
            {"overlong 2-byte C0 80", {0xC0, 0x80}, 2, {0xFFFD, 0xFFFD}, 2},
            {"overlong 2-byte C1 BF", {0xC1, 0xBF}, 2, {0xFFFD, 0xFFFD}, 2},
            {"overlong 3-byte E0 80 80", {0xE0, 0x80, 0x80}, 3, {0xFFFD, 0xFFFD, 0xFFFD}, 3},
            {"overlong 3-byte E0 9F BF", {0xE0, 0x9F, 0xBF}, 3, {0xFFFD, 0xFFFD, 0xFFFD}, 3},
            {"overlong 4-byte F0 8F BF BF", {0xF0, 0x8F, 0xBF, 0xBF}, 4, {0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}, 4},
            {"surrogate ED A0 80", {0xED, 0xA0, 0x80}, 3, {0xFFFD, 0xFFFD, 0xFFFD}, 3},
            {"surrogate ED BF BF", {0xED, 0xBF, 0xBF}, 3, {0xFFFD, 0xFFFD, 0xFFFD}, 3},
            {"above U+10FFFF F4 90 80 80", {0xF4, 0x90, 0x80, 0x80}, 4, {0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}, 4},
            {"F5 80", {0xF5, 0x80}, 2, {0xFFFD, 0xFFFD}, 2},
            {"FF FE", {0xFF, 0xFE}, 2, {0xFFFD, 0xFFFD}, 2},
            {"lone continuation", {'a', 0x80, 'b'}, 3, {'a', 0xFFFD, 'b'}, 3},
            {"cut 3-byte at end", {'a', 0xE2, 0x82}, 3, {'a', 0xFFFD}, 2},
            {"cut 4-byte at end", {0xF0, 0x9F, 0x98}, 3, {0xFFFD}, 1},
            {"cut 4-byte then ASCII", {0xF0, 0x9F, 'z'}, 3, {0xFFFD, 'z'}, 2},
            {"5-byte form", {0xF8, 0x88, 0x80, 0x80, 0x80}, 5, {0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}, 5},
            {"lead then lead", {0xC3, 0xC3, 0xA9}, 3, {0xFFFD, 0xE9}, 2},
        };
        int bad = 0;
        for (size_t k = 0; k < sizeof g / sizeof g[0]; k++) {
            uint32_t out[8];
            size_t m = crow_utf8_decode(g[k].in, (size_t)g[k].n, out, NULL, CROW_UTF8_REPLACE);
            if (m != (size_t)g[k].m || memcmp(out, g[k].out, m * sizeof *out) != 0) {
                printf("#   %s: golden '%s' decoded to %zu code points\n", impl, g[k].what, m);
                bad++;
            }
        }
        ok(!bad, "%s: %zu hand-written decode goldens", impl, sizeof g / sizeof g[0]);
    }

    /* Encoding goldens and errors. */
    {
        const uint32_t in[] = {'A', 0xE9, 0x20AC, 0x1F600, 0x10FFFF};
        const uint8_t want[] = {'A', 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80,
                                0xF4, 0x8F, 0xBF, 0xBF};
        uint8_t out[20];
        errno = 0;
        size_t n = crow_utf8_encode(in, 5, out, &e, CROW_UTF8_STOP);
        ok(n == sizeof want && memcmp(out, want, n) == 0 && e == 5 && errno == 0,
           "%s: encode goldens A é € 😀 U+10FFFF", impl);
        const uint32_t bad[] = {'a', 0xD800, 'b', 0x110000, 0xDFFF, 0xFFFFFFFFu};
        const uint8_t rep[] = {'a', 0xEF, 0xBF, 0xBD, 'b', 0xEF, 0xBF, 0xBD, 0xEF, 0xBF, 0xBD,
                               0xEF, 0xBF, 0xBD};
        uint8_t o2[24];
        n = crow_utf8_encode(bad, 6, o2, &e, CROW_UTF8_REPLACE);
        ok(n == sizeof rep && memcmp(o2, rep, n) == 0 && e == 1,
           "%s: encode REPLACE turns surrogates and > U+10FFFF into EF BF BD", impl);
        errno = 0;
        n = crow_utf8_encode(bad, 6, o2, &e, CROW_UTF8_STOP);
        ok(n == 1 && e == 1 && errno == EILSEQ, "%s: encode STOP stops at a surrogate with EILSEQ", impl);
        n = crow_utf8_encode(bad + 2, 2, o2, &e, CROW_UTF8_STOP);
        ok(n == 1 && e == 1, "%s: encode STOP stops at U+110000", impl);
    }

    /* Every scalar value: encode all, check each encoding against the reference encoder,
     * decode back, validate, count.  ASCII-free and ASCII-heavy stretches both occur. */
    {
        size_t ncp = 0x110000 - 0x800;
        uint32_t *cps = malloc(ncp * sizeof *cps), *back = malloc(ncp * 4 * sizeof *back);
        uint8_t *u8 = malloc(ncp * 4), *want = malloc(ncp * 4);
        size_t k = 0, wn = 0;
        for (uint32_t cp = 0; cp <= 0x10FFFF; cp++)
            if (is_scalar(cp)) {
                cps[k++] = cp;
                wn += (size_t)ref_enc(cp, want + wn);
            }
        size_t n = crow_utf8_encode(cps, k, u8, &e, CROW_UTF8_STOP);
        ok(k == 1112064 && n == wn && memcmp(u8, want, n) == 0 && e == k,
           "%s: every scalar value (%zu) encodes as the reference encoder says", impl, k);
        size_t m = crow_utf8_decode(u8, n, back, &e, CROW_UTF8_STOP);
        ok(m == k && memcmp(back, cps, k * sizeof *cps) == 0 && e == n,
           "%s: every scalar value round-trips through decode", impl);
        ok(crow_utf8_validate(u8, n, &e) == 0 && e == n, "%s: all of them validate", impl);
        is_int(crow_utf8_count(u8, n), k, "count of all scalar values");
        int bad = 0;
        for (uint32_t cp = 0xD800; cp <= 0xDFFF; cp++) {
            uint8_t b[4];
            if (crow_utf8_encode(&cp, 1, b, &e, CROW_UTF8_STOP) != 0 || e != 0)
                bad++;
        }
        ok(!bad, "%s: every surrogate is an encode error", impl);
        free(cps), free(back), free(u8), free(want);
    }

    /* Exhaustive 1- and 2-byte inputs, and 3/4-byte inputs over the interesting bytes. */
    {
        static const uint8_t sig[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                      0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE,
                                      0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
        const size_t S = sizeof sig;
        int good = 1;
        for (uint32_t v = 0; v < 65536 && good; v++) {
            uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
            good = check_all(b, 1, why, sizeof why) && check_all(b, 2, why, sizeof why);
        }
        for (size_t a = 0; a < S * S * S * S && good; a++) {
            uint8_t b[4] = {sig[a % S], sig[a / S % S], sig[a / S / S % S], sig[a / S / S / S]};
            good = check_all(b, 3, why, sizeof why) && check_all(b, 4, why, sizeof why);
        }
        ok(good, "%s: all 1/2-byte inputs, %zu 3/4-byte ones match the reference %s", impl,
           S * S * S * S, why);
    }

    /* One error at every offset of a 300-byte mixed text, so it lands at every place of a
     * SIMD block: start, end, straddling two blocks. */
    {
        uint8_t text[400];
        size_t n = 0;
        const char *words[] = {"plain ascii words ", "\xc3\xa9t\xc3\xa9 ", "\xd0\xbc\xd0\xb8\xd1\x80 ",
                               "\xe4\xb8\xad\xe6\x96\x87", "\xf0\x9f\x98\x80", "0123456789abcdef"};
        for (int w = 0; n < 300; w = (w + 1) % 6) {
            size_t l = strlen(words[w]);
            memcpy(text + n, words[w], l);
            n += l;
        }
        static const uint8_t hits[] = {0x80, 0xFF, 0xC0, 0xE0, 0xED, 0xF4, 0xF0, 0xC3, 0xE4};
        int good = check_all(text, n, why, sizeof why);
        for (size_t p = 0; p < n && good; p++)
            for (size_t h = 0; h < sizeof hits && good; h++) {
                uint8_t t2[400];
                memcpy(t2, text, n);
                t2[p] = hits[h];
                good = check_all(t2, n, why, sizeof why) && check_all(t2, p + 1, why, sizeof why);
            }
        ok(good, "%s: a bad byte at each of %zu offsets of mixed text matches the reference %s",
           impl, n, why);
        /* and in a long all-ASCII text: errors and cut sequences near 32/64-byte edges */
        uint8_t big[1024];
        memset(big, 'a', sizeof big);
        good = 1;
        for (size_t p = 0; p < 300 && good; p++) {
            big[p] = 0xE2, big[p + 1] = 0x82; /* cut € */
            good = check_all(big, sizeof big, why, sizeof why);
            big[p + 2] = 0xAC;
            good = good && check_all(big, sizeof big, why, sizeof why);
            memset(big + p, 'a', 3);
        }
        ok(good, "%s: cut and whole sequences at every offset of 1 KiB of ASCII %s", impl, why);
    }

    /* Random and mutated inputs against the reference. */
    {
        uint8_t buf[2048];
        int good = 1, cases = 0;
        for (; cases < 3000 && good; cases++) {
            size_t n = random_input(buf, cases % 10 == 0 ? sizeof buf : 200);
            good = check_all(buf, n, why, sizeof why);
        }
        ok(good, "%s: %d random and mutated inputs match the reference %s", impl, cases, why);
    }

    /* Streaming: every split into two, one byte at a time, random splits; both modes. */
    {
        uint8_t buf[600];
        int good = 1, cases = 0;
        rng = 42;
        for (; cases < 60 && good; cases++) {
            size_t n = random_input(buf, cases < 40 ? 80 : sizeof buf);
            uint32_t *want = malloc((n + 1) * 4), *got = malloc((n + 2) * 4);
            size_t first, before, err;
            int failed;
            size_t wn = ref_decode(buf, n, want, &first, &before);
            for (size_t cut = 0; cut <= n && good; cut++) {
                size_t gn = stream_decode(buf, n, &cut, 1, got, CROW_UTF8_REPLACE, &err, &failed);
                if (gn != wn || memcmp(got, want, wn * 4) != 0 || failed) {
                    snprintf(why, sizeof why, "(REPLACE, %zu bytes cut at %zu)", n, cut);
                    good = 0;
                }
                gn = stream_decode(buf, n, &cut, 1, got, CROW_UTF8_STOP, &err, &failed);
                if (good && (gn != before || memcmp(got, want, before * 4) != 0
                             || err != first || failed != (first < n))) {
                    snprintf(why, sizeof why, "(STOP, %zu bytes cut at %zu: %zu cps err %zu, want %zu err %zu)",
                             n, cut, gn, err, before, first);
                    good = 0;
                }
            }
            size_t cuts[600];
            int nc = 0;
            for (size_t c = 1; c < n; c++)
                cuts[nc++] = c;
            size_t gn = stream_decode(buf, n, cuts, nc, got, CROW_UTF8_REPLACE, &err, &failed);
            if (good && (gn != wn || memcmp(got, want, wn * 4) != 0)) {
                snprintf(why, sizeof why, "(byte at a time, %zu bytes)", n);
                good = 0;
            }
            nc = 0;
            for (size_t c = rnd() % 7; c < n; c += 1 + rnd() % 70)
                cuts[nc++] = c;
            gn = stream_decode(buf, n, cuts, nc, got, CROW_UTF8_REPLACE, &err, &failed);
            if (good && (gn != wn || memcmp(got, want, wn * 4) != 0)) {
                snprintf(why, sizeof why, "(random cuts, %zu bytes)", n);
                good = 0;
            }
            free(want), free(got);
        }
        ok(good, "%s: streaming at every split point, byte by byte and at random cuts == whole %s",
           impl, why);
    }
}

/* Failure contracts of the stream that do not depend on the implementation. */
static void stream_contracts(void)
{
    struct crow_utf8_stream s;
    uint32_t out[16];
    size_t e = 0;

    crow_utf8_stream_init(&s, CROW_UTF8_STOP);
    const uint8_t a[] = {'x', 'y', 0xE2, 0x82};
    errno = 0;
    ok(crow_utf8_stream_feed(&s, a, 4, out, &e) == 2 && errno == 0,
       "stream: a cut sequence at a chunk end is not an error yet");
    const uint8_t b[] = {'z'};
    errno = 0;
    size_t n = crow_utf8_stream_feed(&s, b, 1, out, &e);
    ok(n == 0 && errno == EILSEQ && e == 2, "stream STOP: the cut sequence fails at offset 2 with EILSEQ");
    errno = 0;
    e = 0;
    n = crow_utf8_stream_feed(&s, (const uint8_t *)"ok", 2, out, &e);
    ok(n == 0 && errno == EILSEQ && e == 2, "stream STOP: a failed stream stays failed");
    errno = 0;
    ok(crow_utf8_stream_finish(&s, out, &e) == 0 && errno == EILSEQ && e == 2,
       "stream STOP: finish reports the failure");
    n = crow_utf8_stream_feed(&s, (const uint8_t *)"ok", 2, out, &e);
    ok(n == 2 && out[0] == 'o', "stream: finish re-initialises the stream");

    crow_utf8_stream_init(&s, CROW_UTF8_STOP);
    crow_utf8_stream_feed(&s, a, 4, out, &e);
    errno = 0;
    ok(crow_utf8_stream_finish(&s, out, &e) == 0 && errno == EILSEQ && e == 2,
       "stream STOP: a sequence cut by the end is EILSEQ at its offset");
    crow_utf8_stream_init(&s, CROW_UTF8_REPLACE);
    crow_utf8_stream_feed(&s, a, 4, out, &e);
    ok(crow_utf8_stream_finish(&s, out, &e) == 1 && out[0] == 0xFFFD,
       "stream REPLACE: a sequence cut by the end is one U+FFFD");
    const uint8_t c[] = {0xF0}, d[] = {0x9F}, f[] = {0x98}, g[] = {0x80, 'q'};
    crow_utf8_stream_init(&s, CROW_UTF8_REPLACE);
    n = crow_utf8_stream_feed(&s, c, 1, out, &e);
    n += crow_utf8_stream_feed(&s, d, 1, out, &e);
    n += crow_utf8_stream_feed(&s, f, 1, out, &e);
    size_t m = crow_utf8_stream_feed(&s, g, 2, out, &e);
    ok(n == 0 && m == 2 && out[0] == 0x1F600 && out[1] == 'q', "stream: a 4-byte sequence fed one byte at a time");
    const uint8_t h[] = {0xF0, 0x9F};
    crow_utf8_stream_init(&s, CROW_UTF8_REPLACE);
    crow_utf8_stream_feed(&s, h, 2, out, &e);
    n = crow_utf8_stream_feed(&s, h, 2, out, &e); /* F0 9F | F0 9F: FFFD, then pending */
    ok(n == 1 && out[0] == 0xFFFD && crow_utf8_stream_finish(&s, out, &e) == 1,
       "stream REPLACE: a cut prefix broken by a new lead is one U+FFFD");
    n = crow_utf8_stream_feed(&s, (const uint8_t *)"\xc3", 1, NULL, &e);
    n += crow_utf8_stream_feed(&s, (const uint8_t *)"\xa9!", 2, NULL, &e);
    ok(n == 2, "stream: OUT NULL counts");
}

int main(void)
{
    static const char *names[] = {"scalar", "sse2", "avx2"};
    ref_init();
    printf("# implementation chosen automatically: %s\n", crow_utf8_impl());
    for (size_t k = 0; k < 3; k++) {
        if (!crow_utf8_impl_supported(names[k])) {
            skip("%s not supported by this CPU", names[k]);
            continue;
        }
        ok(crow_utf8_set_impl(names[k]) == 0 && strcmp(crow_utf8_impl(), names[k]) == 0,
           "forced implementation %s", names[k]);
        rng = 0x9E3779B97F4A7C15ull + k;
        suite(names[k]);
        stream_contracts();
    }

    errno = 0;
    const char *before = crow_utf8_impl();
    ok(crow_utf8_set_impl("neon") == -1 && errno == EINVAL && strcmp(crow_utf8_impl(), before) == 0,
       "set_impl of an unknown name: EINVAL, implementation unchanged");
    for (size_t k = 0; k < 3; k++)
        if (!crow_utf8_impl_supported(names[k])) {
            errno = 0;
            ok(crow_utf8_set_impl(names[k]) == -1 && errno == ENOTSUP, "set_impl(%s): ENOTSUP", names[k]);
        }
    setenv("CROW_UTF8_IMPL", "scalar", 1);
    ok(crow_utf8_set_impl(NULL) == 0 && strcmp(crow_utf8_impl(), "scalar") == 0,
       "CROW_UTF8_IMPL=scalar is honoured by the automatic choice");
    setenv("CROW_UTF8_IMPL", "bogus", 1);
    crow_utf8_set_impl(NULL);
    ok(crow_utf8_impl_supported(crow_utf8_impl()) && strcmp(crow_utf8_impl(), "bogus") != 0,
       "an unknown CROW_UTF8_IMPL falls back to the best supported (%s)", crow_utf8_impl());
    free(pre3);
    return tap_done();
}
