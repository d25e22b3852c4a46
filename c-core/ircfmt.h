/* ircfmt.h — the byte work of irclog: removing mIRC formatting (colours, bold, italics, ...)
 * from IRC text.  A pure function over caller-owned buffers: no allocation, no errno. */
#ifndef CROW_IRCFMT_H
#define CROW_IRCFMT_H

#include <stddef.h>
#include <stdint.h>

/* Copies the N bytes at IN to OUT (room for N bytes; OUT may equal IN) without mIRC
 * formatting: colour codes ^C[FG[,BG]] (one or two digits each; the comma stays when no digit
 * follows it), hex colours ^D[RRGGBB[,RRGGBB]] (one to six hex digits each), and the toggles
 * bold ^B, italics ^], underline ^_, strike-through ^^, monospace ^Q, reverse ^V and reset ^O.
 * Every other byte is kept, so UTF-8 text stays UTF-8 (the codes are ASCII).  Returns the
 * number of bytes written.  Can't fail. */
size_t crow_ircfmt_strip(const uint8_t *in, size_t n, uint8_t *out);

#endif
