/* maildata.h — mail message bytes: durable message files, header scan, POP3 dot-stuffing. */
#ifndef CROW_MAILDATA_H
#define CROW_MAILDATA_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* What crow_maildata_scan learns about a message (RFC 5322 section 2.1: a header section, an
 * empty line, a body; lines end in CRLF). */
struct crow_maildata_info {
    size_t header_len;   /* bytes of the header section, its empty line included (the whole
                          * message when it has no empty line) */
    size_t max_line;     /* longest line anywhere, terminator excluded */
    size_t max_field;    /* longest header field, folded lines joined, terminators excluded */
    unsigned fields;     /* header fields */
    unsigned received;   /* "Received:" fields (the hop count, RFC 5321 6.3) */
    unsigned flags;      /* CROW_MAILDATA_F_* */
};

#define CROW_MAILDATA_F_8BIT      0x01u  /* a byte >= 0x80 somewhere */
#define CROW_MAILDATA_F_NUL       0x02u  /* a NUL byte somewhere */
#define CROW_MAILDATA_F_NO_BODY   0x04u  /* the header section never ended with an empty line */
#define CROW_MAILDATA_F_BAD_FIELD 0x08u  /* a header line that is neither "name:" nor folded */
#define CROW_MAILDATA_F_BARE      0x10u  /* a CR or LF not part of a CRLF pair */
#define CROW_MAILDATA_F_DOT_LINE  0x20u  /* a line starts with "." (POP3 must stuff it) */
#define CROW_MAILDATA_F_NO_CRLF   0x40u  /* the message does not end with CRLF (or is empty) */

/* Scans MSG (LEN bytes) and fills *INFO.  Returns 0.  Can't fail (MSG may be NULL when LEN
 * is 0). */
int crow_maildata_scan(const unsigned char *msg, size_t len, struct crow_maildata_info *info);

/* Writes the IOVCNT buffers of IOV (not modified) to a new file TMP (created exclusively, mode
 * 0600), makes it appear under each of the NFINAL names FINALS (hard links, so one copy of the
 * bytes serves every recipient; all on TMP's file system, in existing directories), fsyncs
 * it, removes TMP, and fsyncs each distinct directory of FINALS, so when it returns 0 the
 * bytes and every final name survive a crash.  With NOSYNC non-zero the two fsync steps are skipped
 * (tests, benchmarks of the rest).  Returns 0, or -1 with errno (EEXIST when TMP or a final
 * name exists, ENOSPC, EIO, EINVAL when NFINAL is 0 or IOVCNT < 0): then every name this call
 * created is removed again, best effort. */
int crow_maildata_store(const char *tmp, const char *const *finals, size_t nfinal,
                        const struct iovec *iov, int iovcnt, int nosync);

/* Returns the bytes crow_maildata_pop3 writes for MSG (LEN bytes) with LINES (see there).
 * Can't fail. */
size_t crow_maildata_pop3_size(const unsigned char *msg, size_t len, long lines);

/* Writes MSG (LEN bytes) to OUT (CAP bytes) as a POP3 multi-line response body (RFC 1939
 * 3): every line starting with "." gets one more "." in front, the last line is ended with
 * CRLF if it was not, and the terminating ".\r\n" follows.  LINES < 0 copies the whole
 * message (RETR); LINES >= 0 copies the header section, the empty line and at most LINES body
 * lines (TOP).  Line ends are copied as they are (a stored message has CRLF).  Returns the
 * bytes written, or (size_t)-1 with errno ENOSPC when CAP is smaller than
 * crow_maildata_pop3_size (OUT's contents are unspecified then). */
size_t crow_maildata_pop3(const unsigned char *msg, size_t len, long lines,
                          unsigned char *out, size_t cap);

#endif
