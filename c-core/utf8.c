/* utf8.c — strict UTF-8 <-> UTF-32 codec with scalar, SSE2 and AVX2 implementations.
 *
 * Design: every operation is a loop of two steps.  An implementation's fast routine returns
 * the longest well-formed prefix of what is left (decoding or counting it), always ending on a
 * sequence boundary; then seq_step() classifies the sequence it stopped at, byte by byte from
 * Unicode's Table 3-7, as ill-formed (with the length of its maximal subpart) or cut short by
 * the end of the input.  The error mode only matters in that slow step, so the fast routines
 * know nothing about modes, streams or offsets, and each can be checked against the scalar one
 * on its own.  The scalar routine is the reference: a table-free byte loop with an 8-byte ASCII
 * word test.  SSE2 adds 16/32-byte ASCII runs and hands back to scalar for at most 64 bytes
 * at a time.  AVX2 validates 32-byte blocks with the Keiser-Lemire lookup algorithm
 * (three nibble tables, "Validating UTF-8 in less than one instruction per byte", 2021),
 * widens all-ASCII blocks directly, and decodes other validated blocks without branches per
 * code point: eight byte positions at a time gather their 4-byte windows into 32-bit lanes,
 * decode every lane as if it held a lead, and keep the lanes that do (a 256-entry compress
 * table).  A sequence cut by a block's end waits for the next block's check.  When a block fails, the
 * scalar routine finds the exact offset.  The implementation is chosen once
 * (CPU, or CROW_UTF8_IMPL) and stored in an atomic pointer; tests force each in turn.
 * Streaming keeps up to 3 bytes of a cut sequence, which are always a well-formed prefix, so
 * completing them never needs more than one seq_step over at most 4 bytes. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crow.h"
#include "utf8.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define UTF8_X86 1
#endif

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* ------------------------------------------------------------------ scalar reference */

/* Classifies the sequence at P (AVAIL >= 1 bytes): returns its length (> 0) with the code
 * point in *CP if well-formed; 0 if the AVAIL bytes are a well-formed prefix cut short;
 * -K if ill-formed, K being the length of its maximal subpart (1..3). */
static int seq_step(const uint8_t *p, size_t avail, uint32_t *cp)
{
    uint8_t c = p[0], lo = 0x80, hi = 0xBF;
    int need;
    uint32_t v;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xC2)
        return -1;
    if (c < 0xE0) {
        need = 2, v = c & 0x1F;
    } else if (c < 0xF0) {
        need = 3, v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c < 0xF5) {
        need = 4, v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return -1;
    }
    for (int k = 1; k < need; k++) {
        if ((size_t)k >= avail)
            return 0;
        uint8_t b = p[k];
        if (b < lo || b > hi)
            return -k;
        lo = 0x80, hi = 0xBF;
        v = (v << 6) | (b & 0x3F);
    }
    *cp = v;
    return need;
}

static inline int is_cont(uint8_t b) { return (b & 0xC0) == 0x80; }

/* Decodes (STORE) or counts well-formed sequences starting at I while I < LIM, reading no
 * byte at or past N; stops before an ill-formed or cut sequence.  Returns the new I and adds
 * the code points to *PO (STORE: writes them to OUT[*PO...]). */
ALWAYS_INLINE size_t scalar_core(const uint8_t *in, size_t i, size_t lim, size_t n,
                                 uint32_t *out, size_t *po, int store)
{
    size_t o = *po;
    while (i < lim) {
        uint8_t c = in[i];
        if (c < 0x80) {
            uint64_t w;
            if (i + 8 <= n && (memcpy(&w, in + i, 8), !(w & 0x8080808080808080ull))) {
                if (store)
                    for (int k = 0; k < 8; k++)
                        out[o + k] = in[i + k];
                i += 8, o += 8;
                continue;
            }
            if (store)
                out[o] = c;
            i++, o++;
        } else if (c < 0xE0) {
            if (c < 0xC2 || i + 1 >= n || !is_cont(in[i + 1]))
                break;
            if (store)
                out[o] = ((uint32_t)(c & 0x1F) << 6) | (in[i + 1] & 0x3F);
            i += 2, o++;
        } else if (c < 0xF0) {
            if (i + 2 >= n)
                break;
            uint8_t c1 = in[i + 1], c2 = in[i + 2];
            uint8_t lo = (uint8_t)(0x80 + ((c == 0xE0) << 5)), hi = (uint8_t)(0xBF - ((c == 0xED) << 5));
#ifdef CROW_PLANTED_BUG
            lo = 0x80; /* planted: the overlong 3-byte forms E0 80..9F xx are accepted */
#endif
            if ((uint8_t)(c1 - lo) > (uint8_t)(hi - lo) || !is_cont(c2))
                break;
            if (store)
                out[o] = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(c1 & 0x3F) << 6) | (c2 & 0x3F);
            i += 3, o++;
        } else {
            if (c > 0xF4 || i + 3 >= n)
                break;
            uint8_t c1 = in[i + 1], c2 = in[i + 2], c3 = in[i + 3];
            uint8_t lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
            if ((uint8_t)(c1 - lo) > (uint8_t)(hi - lo) || !is_cont(c2) || !is_cont(c3))
                break;
            if (store)
                out[o] = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(c1 & 0x3F) << 12)
                         | ((uint32_t)(c2 & 0x3F) << 6) | (c3 & 0x3F);
            i += 4, o++;
        }
    }
    *po = o;
    return i;
}

/* Encodes units from I while I < LIM until a surrogate or a value above U+10FFFF. */
static size_t scalar_enc_core(const uint32_t *in, size_t i, size_t lim, uint8_t *out, size_t *po)
{
    size_t o = *po;
    for (; i < lim; i++) {
        uint32_t c = in[i];
        if (c < 0x80) {
            out[o++] = (uint8_t)c;
        } else if (c < 0x800) {
            out[o++] = (uint8_t)(0xC0 | (c >> 6));
            out[o++] = (uint8_t)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            if ((c & 0xF800) == 0xD800)
                break;
            out[o++] = (uint8_t)(0xE0 | (c >> 12));
            out[o++] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
            out[o++] = (uint8_t)(0x80 | (c & 0x3F));
        } else if (c <= 0x10FFFF) {
            out[o++] = (uint8_t)(0xF0 | (c >> 18));
            out[o++] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
            out[o++] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
            out[o++] = (uint8_t)(0x80 | (c & 0x3F));
        } else {
            break;
        }
    }
    *po = o;
    return i;
}

static size_t scalar_decode(const uint8_t *in, size_t n, uint32_t *out, size_t *po)
{
    return scalar_core(in, 0, n, n, out, po, 1);
}

static size_t scalar_scan(const uint8_t *in, size_t n, size_t *po)
{
    return scalar_core(in, 0, n, n, NULL, po, 0);
}

static size_t scalar_encode(const uint32_t *in, size_t n, uint8_t *out, size_t *po)
{
    return scalar_enc_core(in, 0, n, out, po);
}

static int always(void) { return 1; }

/* ------------------------------------------------------------------ SSE2 */
#ifdef UTF8_X86

/* The scalar routine gets at most this many bytes before SIMD is tried again. */
#define SCALAR_WINDOW 64

static size_t sse2_decode(const uint8_t *in, size_t n, uint32_t *out, size_t *po)
{
    const __m128i z = _mm_setzero_si128();
    size_t i = 0, o = 0;
    for (;;) {
        while (i + 16 <= n) {
            __m128i x = _mm_loadu_si128((const __m128i *)(in + i));
            if (_mm_movemask_epi8(x))
                break;
            __m128i lo = _mm_unpacklo_epi8(x, z), hi = _mm_unpackhi_epi8(x, z);
            _mm_storeu_si128((__m128i *)(out + o), _mm_unpacklo_epi16(lo, z));
            _mm_storeu_si128((__m128i *)(out + o + 4), _mm_unpackhi_epi16(lo, z));
            _mm_storeu_si128((__m128i *)(out + o + 8), _mm_unpacklo_epi16(hi, z));
            _mm_storeu_si128((__m128i *)(out + o + 12), _mm_unpackhi_epi16(hi, z));
            i += 16, o += 16;
        }
        size_t lim = n - i > SCALAR_WINDOW ? i + SCALAR_WINDOW : n;
        size_t j = scalar_core(in, i, lim, n, out, &o, 1);
        if (j < lim || j >= n) {
            *po = o;
            return j;
        }
        i = j;
    }
}

static size_t sse2_scan(const uint8_t *in, size_t n, size_t *po)
{
    size_t i = 0, o = 0;
    for (;;) {
        while (i + 32 <= n) {
            __m128i x = _mm_or_si128(_mm_loadu_si128((const __m128i *)(in + i)),
                                     _mm_loadu_si128((const __m128i *)(in + i + 16)));
            if (_mm_movemask_epi8(x))
                break;
            i += 32, o += 32;
        }
        size_t lim = n - i > SCALAR_WINDOW ? i + SCALAR_WINDOW : n;
        size_t j = scalar_core(in, i, lim, n, NULL, &o, 0);
        if (j < lim || j >= n) {
            *po = o;
            return j;
        }
        i = j;
    }
}

/* Packs runs of 16 ASCII units to bytes; the scalar routine does the rest in windows. */
static size_t sse2_encode(const uint32_t *in, size_t n, uint8_t *out, size_t *po)
{
    const __m128i hi_bits = _mm_set1_epi32(~0x7F), z = _mm_setzero_si128();
    size_t i = 0, o = 0;
    for (;;) {
        while (i + 16 <= n) {
            __m128i a = _mm_loadu_si128((const __m128i *)(in + i));
            __m128i b = _mm_loadu_si128((const __m128i *)(in + i + 4));
            __m128i c = _mm_loadu_si128((const __m128i *)(in + i + 8));
            __m128i d = _mm_loadu_si128((const __m128i *)(in + i + 12));
            __m128i all = _mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d));
            if (_mm_movemask_epi8(_mm_cmpeq_epi32(_mm_and_si128(all, hi_bits), z)) != 0xFFFF)
                break;
            __m128i p = _mm_packus_epi16(_mm_packs_epi32(a, b), _mm_packs_epi32(c, d));
            _mm_storeu_si128((__m128i *)(out + o), p);
            i += 16, o += 16;
        }
        size_t lim = n - i > SCALAR_WINDOW / 4 ? i + SCALAR_WINDOW / 4 : n;
        size_t j = scalar_enc_core(in, i, lim, out, &o);
        if (j < lim || j >= n) {
            *po = o;
            return j;
        }
        i = j;
    }
}

static int have_sse2(void) { return __builtin_cpu_supports("sse2"); }

/* ------------------------------------------------------------------ AVX2 */
#define AVX2 __attribute__((target("avx2,popcnt")))

/* Error bits of the Keiser-Lemire classification: a byte pair (previous, current) is wrong
 * when the three nibble lookups share a bit. */
enum {
    TOO_SHORT = 1 << 0,  /* 11______ then 0_______ or 11______ */
    TOO_LONG = 1 << 1,   /* 0_______ then 10______ */
    OVERLONG_3 = 1 << 2, /* 11100000 100_____ */
    TOO_LARGE = 1 << 3,  /* 11110100 1001____ .. 11111___ */
    SURROGATE = 1 << 4,  /* 11101101 101_____ */
    OVERLONG_2 = 1 << 5, /* 1100000_ 10______ */
    TOO_LARGE_1000 = 1 << 6, /* 11110101.. 1000____ */
    OVERLONG_4 = 1 << 6, /* 11110000 1000____ */
    TWO_CONTS = 1 << 7,  /* 10______ 10______ (right only where a 3rd/4th byte is due) */
    CARRY = TOO_SHORT | TOO_LONG | TWO_CONTS
};

static const uint8_t tab_prev_hi[16] = {
    TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG,
    TWO_CONTS, TWO_CONTS, TWO_CONTS, TWO_CONTS,
    TOO_SHORT | OVERLONG_2,
    TOO_SHORT,
    TOO_SHORT | OVERLONG_3 | SURROGATE,
    TOO_SHORT | TOO_LARGE | TOO_LARGE_1000 | OVERLONG_4,
};
static const uint8_t tab_prev_lo[16] = {
    CARRY | OVERLONG_3 | OVERLONG_2 | OVERLONG_4,
    CARRY | OVERLONG_2,
    CARRY,
    CARRY,
    CARRY | TOO_LARGE,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000 | SURROGATE,
    CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,
};
static const uint8_t tab_cur_hi[16] = {
    TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT,
    TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE_1000 | OVERLONG_4,
    TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE,
    TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE,
    TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE,
    TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT,
};

AVX2 static inline __m256i bcast16(const uint8_t *t)
{
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)t));
}

/* Non-zero where block X (preceded by block PREV) holds an ill-formed pair, a missing or an
 * extra continuation byte.  A sequence cut by the end of X is seen by the next block. */
AVX2 static inline __m256i avx2_check(__m256i x, __m256i prev, __m256i tph, __m256i tpl,
                                      __m256i tch)
{
    const __m256i nib = _mm256_set1_epi8(0x0F);
    __m256i sh = _mm256_permute2x128_si256(prev, x, 0x21);
    __m256i p1 = _mm256_alignr_epi8(x, sh, 15);
    __m256i p2 = _mm256_alignr_epi8(x, sh, 14);
    __m256i p3 = _mm256_alignr_epi8(x, sh, 13);
    __m256i a = _mm256_shuffle_epi8(tph, _mm256_and_si256(_mm256_srli_epi16(p1, 4), nib));
    __m256i b = _mm256_shuffle_epi8(tpl, _mm256_and_si256(p1, nib));
    __m256i c = _mm256_shuffle_epi8(tch, _mm256_and_si256(_mm256_srli_epi16(x, 4), nib));
    __m256i sc = _mm256_and_si256(_mm256_and_si256(a, b), c);
    /* Bytes 2 and 3 after a 3/4-byte lead must be continuations: exactly where TWO_CONTS is
     * set, so xor clears it there and flags it everywhere else. */
    __m256i m23 = _mm256_or_si256(_mm256_subs_epu8(p2, _mm256_set1_epi8(0x60)),
                                  _mm256_subs_epu8(p3, _mm256_set1_epi8(0x70)));
    m23 = _mm256_and_si256(m23, _mm256_set1_epi8((char)0x80));
    return _mm256_xor_si256(m23, sc);
}

/* Given that IN[0..B) is well-formed except maybe for a sequence cut by B, returns where that
 * cut sequence starts, or B. */
static size_t seq_boundary(const uint8_t *in, size_t b)
{
    for (size_t k = 1; k <= 3 && k <= b; k++) {
        uint8_t c = in[b - k];
        if (!is_cont(c)) {
            size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            return len > k ? b - k : b;
        }
    }
    return b;
}

/* Decodes the well-formed sequence at P, branch-free; 4 bytes must be readable. */
static inline uint32_t decode_at(const uint8_t *p)
{
    static const uint8_t len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    static const uint8_t mask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07}, shift[5] = {0, 18, 12, 6, 0};
    unsigned l = len[p[0] >> 4];
    return (((uint32_t)(p[0] & mask[l]) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6)
            | (p[3] & 0x3Fu)) >> shift[l];
}

/* For each 8-bit lead mask, the lanes of its set bits in order, 3 bits per lane. */
static const uint32_t compress8[256] = {
    0x000000, 0x000000, 0x000001, 0x000008, 0x000002, 0x000010, 0x000011, 0x000088,
    0x000003, 0x000018, 0x000019, 0x0000c8, 0x00001a, 0x0000d0, 0x0000d1, 0x000688,
    0x000004, 0x000020, 0x000021, 0x000108, 0x000022, 0x000110, 0x000111, 0x000888,
    0x000023, 0x000118, 0x000119, 0x0008c8, 0x00011a, 0x0008d0, 0x0008d1, 0x004688,
    0x000005, 0x000028, 0x000029, 0x000148, 0x00002a, 0x000150, 0x000151, 0x000a88,
    0x00002b, 0x000158, 0x000159, 0x000ac8, 0x00015a, 0x000ad0, 0x000ad1, 0x005688,
    0x00002c, 0x000160, 0x000161, 0x000b08, 0x000162, 0x000b10, 0x000b11, 0x005888,
    0x000163, 0x000b18, 0x000b19, 0x0058c8, 0x000b1a, 0x0058d0, 0x0058d1, 0x02c688,
    0x000006, 0x000030, 0x000031, 0x000188, 0x000032, 0x000190, 0x000191, 0x000c88,
    0x000033, 0x000198, 0x000199, 0x000cc8, 0x00019a, 0x000cd0, 0x000cd1, 0x006688,
    0x000034, 0x0001a0, 0x0001a1, 0x000d08, 0x0001a2, 0x000d10, 0x000d11, 0x006888,
    0x0001a3, 0x000d18, 0x000d19, 0x0068c8, 0x000d1a, 0x0068d0, 0x0068d1, 0x034688,
    0x000035, 0x0001a8, 0x0001a9, 0x000d48, 0x0001aa, 0x000d50, 0x000d51, 0x006a88,
    0x0001ab, 0x000d58, 0x000d59, 0x006ac8, 0x000d5a, 0x006ad0, 0x006ad1, 0x035688,
    0x0001ac, 0x000d60, 0x000d61, 0x006b08, 0x000d62, 0x006b10, 0x006b11, 0x035888,
    0x000d63, 0x006b18, 0x006b19, 0x0358c8, 0x006b1a, 0x0358d0, 0x0358d1, 0x1ac688,
    0x000007, 0x000038, 0x000039, 0x0001c8, 0x00003a, 0x0001d0, 0x0001d1, 0x000e88,
    0x00003b, 0x0001d8, 0x0001d9, 0x000ec8, 0x0001da, 0x000ed0, 0x000ed1, 0x007688,
    0x00003c, 0x0001e0, 0x0001e1, 0x000f08, 0x0001e2, 0x000f10, 0x000f11, 0x007888,
    0x0001e3, 0x000f18, 0x000f19, 0x0078c8, 0x000f1a, 0x0078d0, 0x0078d1, 0x03c688,
    0x00003d, 0x0001e8, 0x0001e9, 0x000f48, 0x0001ea, 0x000f50, 0x000f51, 0x007a88,
    0x0001eb, 0x000f58, 0x000f59, 0x007ac8, 0x000f5a, 0x007ad0, 0x007ad1, 0x03d688,
    0x0001ec, 0x000f60, 0x000f61, 0x007b08, 0x000f62, 0x007b10, 0x007b11, 0x03d888,
    0x000f63, 0x007b18, 0x007b19, 0x03d8c8, 0x007b1a, 0x03d8d0, 0x03d8d1, 0x1ec688,
    0x00003e, 0x0001f0, 0x0001f1, 0x000f88, 0x0001f2, 0x000f90, 0x000f91, 0x007c88,
    0x0001f3, 0x000f98, 0x000f99, 0x007cc8, 0x000f9a, 0x007cd0, 0x007cd1, 0x03e688,
    0x0001f4, 0x000fa0, 0x000fa1, 0x007d08, 0x000fa2, 0x007d10, 0x007d11, 0x03e888,
    0x000fa3, 0x007d18, 0x007d19, 0x03e8c8, 0x007d1a, 0x03e8d0, 0x03e8d1, 0x1f4688,
    0x0001f5, 0x000fa8, 0x000fa9, 0x007d48, 0x000faa, 0x007d50, 0x007d51, 0x03ea88,
    0x000fab, 0x007d58, 0x007d59, 0x03eac8, 0x007d5a, 0x03ead0, 0x03ead1, 0x1f5688,
    0x000fac, 0x007d60, 0x007d61, 0x03eb08, 0x007d62, 0x03eb10, 0x03eb11, 0x1f5888,
    0x007d63, 0x03eb18, 0x03eb19, 0x1f58c8, 0x03eb1a, 0x1f58d0, 0x1f58d1, 0xfac688,
};

/* Decodes the code points whose leads are the set bits of M8 among the 8 bytes at P (of a
 * validated block; P[0..16) readable) into OUT; returns how many.  Each 32-bit lane j gathers
 * bytes j..j+3 (lead first, most significant), the lead's class gives its payload mask and the
 * final shift, and the lanes holding leads are packed to the front. */
AVX2 static inline unsigned avx2_decode8(const uint8_t *p, uint32_t m8, uint32_t *out)
{
    const __m256i gather = _mm256_setr_epi8(3, 2, 1, 0, 4, 3, 2, 1, 5, 4, 3, 2, 6, 5, 4, 3,
                                            7, 6, 5, 4, 8, 7, 6, 5, 9, 8, 7, 6, 10, 9, 8, 7);
    /* by the lead's high nibble: its payload mask and the final shift (ASCII and, unused,
     * continuation bytes as 1-byte) */
    const __m256i masks = _mm256_setr_epi8(0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F,
                                           0x7F, 0x7F, 0x7F, 0x1F, 0x1F, 0x0F, 0x07,
                                           0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F,
                                           0x7F, 0x7F, 0x7F, 0x1F, 0x1F, 0x0F, 0x07);
    const __m256i shifts = _mm256_setr_epi8(18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 12, 12, 6, 0,
                                            18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 18, 12, 12, 6, 0);
    __m256i w = _mm256_shuffle_epi8(
        _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p)), gather);
    /* lane = [b3 b2 b1 b0] from low byte up; index bytes 1..3 at 0x80 select zero */
    __m256i nib = _mm256_or_si256(_mm256_srli_epi32(w, 28), _mm256_set1_epi32((int)0x80808000));
    /* payload of b1 b2 b3: maddubs joins b2:b3 (x64 + x1) and b1, madd joins those (x4096) */
    __m256i c = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_and_si256(w, _mm256_set1_epi32(0x3F3F3F)),
                                                       _mm256_set1_epi16(0x4001)),
                                  _mm256_set1_epi32(0x10000001));
    __m256i lead = _mm256_and_si256(_mm256_srli_epi32(w, 24), _mm256_shuffle_epi8(masks, nib));
    __m256i cp = _mm256_srlv_epi32(_mm256_or_si256(_mm256_slli_epi32(lead, 18), c),
                                   _mm256_shuffle_epi8(shifts, nib));
    __m256i idx = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)compress8[m8]),
                                                     _mm256_setr_epi32(0, 3, 6, 9, 12, 15, 18, 21)),
                                   _mm256_set1_epi32(7));
    _mm256_storeu_si256((__m256i *)out, _mm256_permutevar8x32_epi32(cp, idx));
    return (unsigned)_mm_popcnt_u32(m8);
}

/* Decodes block by block: validate, then widen (ASCII) or decode eight lanes at a time.  No
 * branch depends on the script or on where sequences start, and no byte-dependent sequence
 * length is carried from one code point to the next, so mixed scripts decode as fast as one. */
AVX2 static size_t avx2_decode(const uint8_t *in, size_t n, uint32_t *out, size_t *po)
{
    const __m256i tph = bcast16(tab_prev_hi), tpl = bcast16(tab_prev_lo), tch = bcast16(tab_cur_hi);
    const __m256i cont_max = _mm256_set1_epi8((char)0xBF);
    __m256i prev = _mm256_setzero_si256();
    size_t b = 0, o = 0, i = 0; /* I: next sequence to decode; B - 3 <= I <= B */
    while (b + 32 + 8 <= n) { /* the 16-byte loads below may read 8 bytes past the block */
        __m256i x = _mm256_loadu_si256((const __m256i *)(in + b));
        if (i == b && !_mm256_movemask_epi8(x)) {
            __m128i lo = _mm256_castsi256_si128(x), hi = _mm256_extracti128_si256(x, 1);
            _mm256_storeu_si256((__m256i *)(out + o), _mm256_cvtepu8_epi32(lo));
            _mm256_storeu_si256((__m256i *)(out + o + 8), _mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)));
            _mm256_storeu_si256((__m256i *)(out + o + 16), _mm256_cvtepu8_epi32(hi));
            _mm256_storeu_si256((__m256i *)(out + o + 24), _mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)));
            b += 32, o += 32, i = b;
            prev = x;
            continue;
        }
        __m256i e = avx2_check(x, prev, tph, tpl, tch);
        if (!_mm256_testz_si256(e, e))
            break;
        prev = x;
        /* The sequence cut by the end of the last block, now validated: decoded always,
         * kept only if there was one (no branch: that depends on the text). */
        out[o] = decode_at(in + i);
        o += i < b;
        /* Lead bytes are the signed bytes > (int8_t)0xBF; a valid block has one at least
         * every 4 bytes.  Only the last can start a sequence cut by the block's end. */
        uint32_t m = (uint32_t)_mm256_movemask_epi8(_mm256_cmpgt_epi8(x, cont_max));
        unsigned h = 31u - (unsigned)__builtin_clz(m | 1);
        uint8_t c = in[b + h];
        unsigned cut = h + (c >= 0xF0 ? 4u : c >= 0xE0 ? 3u : c >= 0xC0 ? 2u : 1u) > 32;
        m &= ~((uint32_t)cut << h);
        i = b + 32 - (cut ? 32 - h : 0);
        for (unsigned q = 0; q < 32; q += 8)
            o += avx2_decode8(in + b + q, (m >> q) & 0xFF, out + o);
        b += 32;
    }
    i = scalar_core(in, i, n, n, out, &o, 1);
    *po = o;
    return i;
}

AVX2 static size_t avx2_scan(const uint8_t *in, size_t n, size_t *po)
{
    const __m256i tph = bcast16(tab_prev_hi), tpl = bcast16(tab_prev_lo), tch = bcast16(tab_cur_hi);
    /* Saturating subtraction leaves a non-zero byte where the last three bytes of a block
     * start a sequence longer than what remains of the block. */
    const __m256i maxv = _mm256_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                          -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                          -1, (char)0xEF, (char)0xDF, (char)0xBF);
    const __m256i cont_max = _mm256_set1_epi8((char)0xBF);
    __m256i prev = _mm256_setzero_si256(), inc = _mm256_setzero_si256();
    size_t b = 0, conts = 0;
    while (b + 64 <= n) {
        __m256i x0 = _mm256_loadu_si256((const __m256i *)(in + b));
        __m256i x1 = _mm256_loadu_si256((const __m256i *)(in + b + 32));
        if (!_mm256_movemask_epi8(_mm256_or_si256(x0, x1))) {
            if (!_mm256_testz_si256(inc, inc))
                break;
            prev = x1;
            b += 64;
            continue;
        }
        __m256i e = _mm256_or_si256(avx2_check(x0, prev, tph, tpl, tch),
                                    avx2_check(x1, x0, tph, tpl, tch));
        if (!_mm256_testz_si256(e, e))
            break;
        /* Continuation bytes are the signed bytes <= (int8_t)0xBF. */
        conts += (size_t)_mm_popcnt_u32((unsigned)_mm256_movemask_epi8(_mm256_cmpgt_epi8(
                     _mm256_add_epi8(cont_max, _mm256_set1_epi8(1)), x0)));
        conts += (size_t)_mm_popcnt_u32((unsigned)_mm256_movemask_epi8(_mm256_cmpgt_epi8(
                     _mm256_add_epi8(cont_max, _mm256_set1_epi8(1)), x1)));
        inc = _mm256_subs_epu8(x1, maxv);
        prev = x1;
        b += 64;
    }
    size_t v = seq_boundary(in, b);
    /* Every non-continuation byte of [0, v) is one code point; a cut sequence in [v, b)
     * contributed its continuation bytes to CONTS. */
    size_t o = v - (conts - (v < b ? b - v - 1 : 0));
    size_t i = scalar_core(in, v, n, n, NULL, &o, 0);
    *po = o;
    return i;
}

AVX2 static size_t avx2_encode(const uint32_t *in, size_t n, uint8_t *out, size_t *po)
{
    return sse2_encode(in, n, out, po);
}

static int have_avx2(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
}
#endif /* UTF8_X86 */

/* ------------------------------------------------------------------ dispatch */

struct utf8_impl {
    const char *name;
    int (*supported)(void);
    size_t (*decode)(const uint8_t *in, size_t n, uint32_t *out, size_t *po);
    size_t (*scan)(const uint8_t *in, size_t n, size_t *po);
    size_t (*encode)(const uint32_t *in, size_t n, uint8_t *out, size_t *po);
};

static const struct utf8_impl impls[] = {
    {"scalar", always, scalar_decode, scalar_scan, scalar_encode},
#ifdef UTF8_X86
    {"sse2", have_sse2, sse2_decode, sse2_scan, sse2_encode},
    {"avx2", have_avx2, avx2_decode, avx2_scan, avx2_encode},
#endif
};
#define NIMPLS (sizeof impls / sizeof impls[0])

static const struct utf8_impl *utf8_current;

static const struct utf8_impl *find_impl(const char *name)
{
    for (size_t k = 0; k < NIMPLS; k++)
        if (strcmp(impls[k].name, name) == 0)
            return &impls[k];
    return NULL;
}

static const struct utf8_impl *impl(void)
{
    const struct utf8_impl *im = __atomic_load_n(&utf8_current, __ATOMIC_ACQUIRE);
    if (CROW_LIKELY(im != NULL))
        return im;
    for (size_t k = NIMPLS; k-- > 0;)
        if (impls[k].supported()) {
            im = &impls[k];
            break;
        }
    const char *env = getenv("CROW_UTF8_IMPL");
    const struct utf8_impl *want = env ? find_impl(env) : NULL;
    if (want && want->supported())
        im = want;
    __atomic_store_n(&utf8_current, im, __ATOMIC_RELEASE);
    return im;
}

const char *crow_utf8_impl(void) { return impl()->name; }

int crow_utf8_impl_supported(const char *name)
{
    const struct utf8_impl *im = name ? find_impl(name) : NULL;
    return im && im->supported();
}

int crow_utf8_set_impl(const char *name)
{
    const struct utf8_impl *im = NULL;
    if (name) {
        im = find_impl(name);
        if (!im) {
            errno = EINVAL;
            return -1;
        }
        if (!im->supported()) {
            errno = ENOTSUP;
            return -1;
        }
    }
    __atomic_store_n(&utf8_current, im, __ATOMIC_RELEASE);
    return 0;
}

/* ------------------------------------------------------------------ the driver */

/* Decodes (OUT) or counts (OUT NULL) IN[0..N) in MODE.  PARTIAL: a sequence cut by the end
 * is left unconsumed rather than an error.  Sets *CONSUMED to the bytes used, *ERR_OFF to the
 * first error's offset (or N), *FAILED when STOP mode stopped.  Returns code points. */
static size_t run(const uint8_t *in, size_t n, uint32_t *out, int mode, int partial,
                  size_t *consumed, size_t *err_off, int *failed)
{
    const struct utf8_impl *im = impl();
    size_t i = 0, o = 0;
    *err_off = n;
    *failed = 0;
    for (;;) {
        size_t w = 0;
        i += out ? im->decode(in + i, n - i, out + o, &w) : im->scan(in + i, n - i, &w);
        o += w;
        if (i >= n)
            break;
        uint32_t cp;
        size_t bad;
        int r = seq_step(in + i, n - i, &cp);
        if (r > 0) { /* a fast routine stopped early; not an error */
            if (out)
                out[o] = cp;
            o++, i += (size_t)r;
            continue;
        }
        if (r == 0) {
            if (partial)
                break;
            bad = n - i;
        } else {
            bad = (size_t)-r;
        }
        if (*err_off == n)
            *err_off = i;
        if (mode == CROW_UTF8_STOP) {
            *failed = 1;
            break;
        }
        if (out)
            out[o] = CROW_UTF8_REPLACEMENT;
        o++, i += bad;
    }
    *consumed = i;
    return o;
}

size_t crow_utf8_decode(const uint8_t *in, size_t n, uint32_t *out, size_t *err_off, int mode)
{
    size_t used, e;
    int failed;
    size_t o = run(in, n, out, mode, 0, &used, &e, &failed);
    if (err_off)
        *err_off = e;
    if (failed)
        errno = EILSEQ;
    return o;
}

int crow_utf8_validate(const uint8_t *in, size_t n, size_t *err_off)
{
    size_t used, e;
    int failed;
    run(in, n, NULL, CROW_UTF8_STOP, 0, &used, &e, &failed);
    if (err_off)
        *err_off = e;
    if (failed) {
        errno = EILSEQ;
        return -1;
    }
    return 0;
}

size_t crow_utf8_count(const uint8_t *in, size_t n)
{
    size_t used, e;
    int failed;
    return run(in, n, NULL, CROW_UTF8_REPLACE, 0, &used, &e, &failed);
}

size_t crow_utf8_encode(const uint32_t *in, size_t n, uint8_t *out, size_t *err_idx, int mode)
{
    const struct utf8_impl *im = impl();
    size_t i = 0, o = 0, first = n;
    for (;;) {
        size_t w = 0;
        i += im->encode(in + i, n - i, out + o, &w);
        o += w;
        if (i >= n)
            break;
        if (first == n)
            first = i;
        if (mode == CROW_UTF8_STOP) {
            errno = EILSEQ;
            break;
        }
        out[o++] = 0xEF, out[o++] = 0xBF, out[o++] = 0xBD;
        i++;
    }
    if (err_idx)
        *err_idx = first;
    return o;
}

/* ------------------------------------------------------------------ streaming */

void crow_utf8_stream_init(struct crow_utf8_stream *s, int mode)
{
    memset(s, 0, sizeof *s);
    s->mode = mode == CROW_UTF8_STOP ? CROW_UTF8_STOP : CROW_UTF8_REPLACE;
}

static size_t stream_fail(struct crow_utf8_stream *s, uint64_t at, size_t *err_off, size_t o)
{
    s->failed = 1;
    s->err = at;
    s->npend = 0;
    if (err_off)
        *err_off = (size_t)at;
    errno = EILSEQ;
    return o;
}

size_t crow_utf8_stream_feed(struct crow_utf8_stream *s, const uint8_t *in, size_t n,
                             uint32_t *out, size_t *err_off)
{
    size_t i = 0, o = 0;
    if (s->failed) {
        if (err_off)
            *err_off = (size_t)s->err;
        errno = EILSEQ;
        return 0;
    }
    uint64_t base = s->pos;
    s->pos += n;
    if (s->npend && n) {
        uint8_t tmp[4];
        size_t t = s->npend, m = n < 4 - t ? n : 4 - t;
        memcpy(tmp, s->pend, t);
        memcpy(tmp + t, in, m);
        uint32_t cp;
        int r = seq_step(tmp, t + m, &cp);
        if (r == 0) { /* still cut: then m == n, all of IN joined the pending bytes */
            memcpy(s->pend + t, in, m);
            s->npend = (uint8_t)(t + m);
            return 0;
        }
        if (r < 0) {
            if (s->mode == CROW_UTF8_STOP)
                return stream_fail(s, base - t, err_off, 0);
            cp = CROW_UTF8_REPLACEMENT;
            r = -r; /* the maximal subpart covers the pending bytes at least */
        }
        if (out)
            out[o] = cp;
        o++;
        i = (size_t)r - t;
        s->npend = 0;
    }
    size_t used, e;
    int failed;
    o += run(in + i, n - i, out ? out + o : NULL, s->mode, 1, &used, &e, &failed);
    if (failed)
        return stream_fail(s, base + i + e, err_off, o);
    i += used;
    memcpy(s->pend + s->npend, in + i, n - i);
    s->npend = (uint8_t)(s->npend + (n - i));
    return o;
}

size_t crow_utf8_stream_finish(struct crow_utf8_stream *s, uint32_t *out, size_t *err_off)
{
    size_t o = 0;
    int mode = s->mode;
    if (s->failed) {
        if (err_off)
            *err_off = (size_t)s->err;
        errno = EILSEQ;
    } else if (s->npend) {
        if (mode == CROW_UTF8_STOP) {
            if (err_off)
                *err_off = (size_t)(s->pos - s->npend);
            errno = EILSEQ;
        } else {
            if (out)
                out[0] = CROW_UTF8_REPLACEMENT;
            o = 1;
        }
    }
    crow_utf8_stream_init(s, mode);
    return o;
}
