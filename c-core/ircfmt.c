/* ircfmt.c — mIRC formatting codes out of IRC text, for irclog's humanized logs.
 *
 * IRC clients colour and style text with in-band control bytes: ^C (0x03) followed by an
 * optional foreground colour of one or two digits and, after a comma, a background colour;
 * ^D (0x04) with six-digit hex colours the same way; and single-byte toggles (^B bold, ^]
 * italics, ^_ underline, ^^ strike-through, ^Q monospace, ^V reverse, ^O reset).  Every one
 * of them is ASCII, and no byte of a UTF-8 multi-byte sequence is below 0x80, so the bytes can
 * be removed from UTF-8 (or Latin-1) text without decoding it.  One pass, in place allowed. */
#include "ircfmt.h"

static int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
static int is_hex(uint8_t c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Skips a colour argument at IN[*I]: up to MAX bytes satisfying OK, then, when at least one
 * was skipped, a comma followed by at least one more such byte and up to MAX of them. */
static void skip_colour(const uint8_t *in, size_t n, size_t *i, size_t max, int (*ok)(uint8_t))
{
    size_t k = 0;
    while (k < max && *i < n && ok(in[*i])) { (*i)++; k++; }
#ifdef CROW_PLANTED_BUG
    if (k > 0 && *i < n && in[*i] == ',' && ok(in[*i + 1])) {   /* reads one past the end */
#else
    if (k > 0 && *i + 1 < n && in[*i] == ',' && ok(in[*i + 1])) {
#endif
        (*i)++;
        for (k = 0; k < max && *i < n && ok(in[*i]); k++)
            (*i)++;
    }
}

size_t crow_ircfmt_strip(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t i = 0, o = 0;
    while (i < n) {
        uint8_t c = in[i++];
        switch (c) {
        case 0x03: skip_colour(in, n, &i, 2, is_digit); break;
        case 0x04: skip_colour(in, n, &i, 6, is_hex); break;
        case 0x02: case 0x0f: case 0x11: case 0x16: case 0x1d: case 0x1e: case 0x1f: break;
        default: out[o++] = c;
        }
    }
    return o;
}
