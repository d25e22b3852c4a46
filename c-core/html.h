/* html.h — the byte work of the web layer: HTML escaping into UTF-8 and form (percent)
 * decoding.  Pure functions over caller-owned buffers: no allocation, no errno. */
#ifndef CROW_HTML_H
#define CROW_HTML_H

#include <stddef.h>
#include <stdint.h>

/* Worst case growth: one input unit may become "&quot;" (6 bytes), one code point at most
 * 4 UTF-8 bytes, so OUT needs room for CROW_HTML_ESCAPE_MAX * N bytes. */
#define CROW_HTML_ESCAPE_MAX 6

/* Escapes N code points at IN for HTML text and attribute values (& < > " ' become &amp;
 * &lt; &gt; &quot; &#39;) and encodes the result as UTF-8 into OUT, which must have room for
 * 6 * N bytes.  Surrogates and values above U+10FFFF become U+FFFD (through the UTF-8 codec's
 * REPLACE mode).  Returns the number of bytes written; bytes of OUT past them (within the
 * 6 * N) may have been overwritten too.  Can't fail. */
size_t crow_html_escape_utf32(const uint32_t *in, size_t n, uint8_t *out);

/* The same for N Latin-1 bytes at IN (each byte is the code point of the same value); OUT
 * must have room for 6 * N bytes.  Returns the number of bytes written (bytes past them within
 * the room may have been overwritten).  Can't fail. */
size_t crow_html_escape_latin1(const uint8_t *in, size_t n, uint8_t *out);

/* Escapes N bytes of UTF-8 at IN (copied as they are, whatever their form, except the five
 * special ASCII characters) into OUT, which must have room for 6 * N bytes.  Returns the
 * number of bytes written.  Can't fail. */
size_t crow_html_escape_utf8(const uint8_t *in, size_t n, uint8_t *out);

/* Decodes N bytes of application/x-www-form-urlencoded text at IN into OUT (room for N
 * bytes; OUT may equal IN): "+" becomes a space when PLUS is non-zero, "%XX" (two hex digits,
 * either case) the byte XX; a "%" not followed by two hex digits is kept as it is.  Returns
 * the number of bytes written.  Can't fail. */
size_t crow_html_form_decode(const uint8_t *in, size_t n, uint8_t *out, int plus);

/* Byte sets for crow_html_percent_encode: the bytes kept as they are. */
enum crow_html_pct_set {
    CROW_HTML_PCT_PATH = 0,   /* RFC 3986 unreserved (A-Z a-z 0-9 - . _ ~) and "/" */
    CROW_HTML_PCT_COOKIE = 1  /* RFC 6265 cookie-octet less "%": visible ASCII except
                                 " , ; \ % */
};

/* Percent-encodes N bytes at IN into OUT, which must have room for 3 * N bytes: every byte
 * outside SET (enum crow_html_pct_set) becomes "%XX" (upper-case hex).  Returns the number of
 * bytes written (N exactly when nothing needed encoding), or (size_t)-1 for an unknown SET
 * (nothing written).  Can't otherwise fail. */
size_t crow_html_percent_encode(const uint8_t *in, size_t n, uint8_t *out, int set);

/* Quotes N bytes at IN for a double-quoted access-log field into OUT, which must have room for
 * 4 * N bytes: `"` and `\` get a backslash before them, bytes below 0x20 become "\xhh"
 * (lower-case hex), every other byte is copied.  Returns the number of bytes written (N
 * exactly when nothing needed quoting).  Can't fail. */
size_t crow_html_log_quote(const uint8_t *in, size_t n, uint8_t *out);

/* Returns the offset of the first occurrence of the NEEDLE_N bytes at NEEDLE in the N bytes at
 * HAY, searching from offset FROM; or -1 when there is none (or NEEDLE_N is 0).  Can't fail. */
long crow_html_find(const uint8_t *hay, size_t n, size_t from, const uint8_t *needle,
                    size_t needle_n);

#endif
