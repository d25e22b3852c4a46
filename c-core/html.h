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

/* Returns the offset of the first occurrence of the NEEDLE_N bytes at NEEDLE in the N bytes at
 * HAY, searching from offset FROM; or -1 when there is none (or NEEDLE_N is 0).  Can't fail. */
long crow_html_find(const uint8_t *hay, size_t n, size_t from, const uint8_t *needle,
                    size_t needle_n);

#endif
