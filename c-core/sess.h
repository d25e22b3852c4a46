/* sess.h — blocking-style session I/O for conversational protocols (FTP, SMTP, POP3, IRC). */
#ifndef CROW_SESS_H
#define CROW_SESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "tls.h"

/* How a session is used.
 *
 * One thread owns one connection and talks with it in turns: read a command line, write a
 * reply, maybe read a message or a fixed count of bytes, maybe upgrade to TLS.  A session
 * (struct crow_sess) holds an input buffer over the connected descriptor (which the caller
 * owns and closes, after crow_sess_free), optionally a TLS connection, and a timeout and a
 * bandwidth limit for each direction.  Each call blocks its thread until it is done, the
 * peer goes away, or a timeout expires: the descriptor is made non-blocking and every wait is
 * a poll(2) with a timeout.  Another thread may end every wait at once with shutdown(2) on the
 * descriptor (a server stopping): the waits then see end of file or an error.
 *
 * Timeouts: IDLE (ms) bounds each wait for input — no byte for that long is a timeout; WRITE
 * (ms) bounds each wait for the peer to take output — no progress for that long is a timeout.
 * 0 means no limit.  Bandwidth: bytes per second in and out (0 unlimited); a limited direction
 * starts with an empty bucket, so a transfer is never faster than its rate.  Time spent waiting
 * for the bandwidth limit is not idle time.
 *
 * Every reading and writing function returns one of the statuses below (and sets errno
 * ETIMEDOUT for CROW_SESS_TIMEOUT).  EINTR is retried inside. */

enum crow_sess_status {
    CROW_SESS_OK = 0,         /* done */
    CROW_SESS_EOF = 1,        /* the peer closed (before the unit was complete) */
    CROW_SESS_TIMEOUT = 2,    /* idle or write timeout; errno ETIMEDOUT */
    CROW_SESS_TOO_LONG = 3,   /* a line over its maximum, or a message over its size */
    CROW_SESS_BAD = 4,        /* input breaking the framing policy (bare CR or LF) */
    CROW_SESS_ERROR = -1,     /* errno says why (ECONNRESET, EPIPE, EPROTO for TLS, ...) */
};

struct crow_sess;

/* Returns a session over connected descriptor FD, which it makes non-blocking, with an input
 * buffer of BUFSIZE bytes (0: 16 KiB; it grows for long lines), lines of at most 1,024 bytes
 * ending in CRLF or LF, no timeouts and no bandwidth limits.  Returns NULL with errno ENOMEM,
 * or fcntl's errno (EBADF). */
struct crow_sess *crow_sess_new(int fd, size_t bufsize);

/* Frees S and its TLS connection without any I/O; FD stays open.  NULL is ignored.  Can't
 * fail. */
void crow_sess_free(struct crow_sess *s);

/* Returns the descriptor.  Can't fail. */
int crow_sess_fd(const struct crow_sess *s);

/* Sets the idle and write timeouts in ms (0: none; negative taken as 0).  Can't fail. */
void crow_sess_set_timeouts(struct crow_sess *s, int idle_ms, int write_ms);

/* Sets the bandwidth limits in bytes per second (0: unlimited).  Returns 0, or -1 with errno
 * EINVAL (over CROW_THROTTLE_MAX_RATE); S unchanged then. */
int crow_sess_set_bandwidth(struct crow_sess *s, uint64_t in_rate, uint64_t out_rate);

/* Sets the line policy for crow_sess_read_line: lines of at most MAX bytes (1 to 1 MiB,
 * terminator excluded), OPTS from frame.h (CROW_FRAME_LINE_LF_OK: a bare LF ends a line;
 * CROW_FRAME_LINE_CR_DATA: a bare CR is data).  Resets the line framer (a line being skipped
 * is forgotten).  Returns 0, or -1 with errno EINVAL (MAX out of range) or ENOMEM; S unchanged
 * then. */
int crow_sess_set_line(struct crow_sess *s, size_t max, unsigned opts);

/* Reads the next line.  OK: *LINE and *LEN are the line without its terminator, valid until the
 * next call on S; *FLAGS (if not NULL) CROW_FRAME_F_CRLF or _LF.  TOO_LONG: the line is over
 * the maximum; BAD: a bare CR, or a bare LF when not allowed; in both cases the rest of that
 * line is skipped by the next call, so the server may answer (500) and go on.  EOF (a final
 * unterminated line is dropped), TIMEOUT, ERROR. */
int crow_sess_read_line(struct crow_sess *s, const unsigned char **line, size_t *len,
                        unsigned *flags);

/* Reads exactly N bytes into DST (buffered bytes first).  OK; EOF with *GOT (if not NULL) the
 * bytes that did arrive; TIMEOUT; ERROR.  *GOT is always set to the bytes stored in DST. */
int crow_sess_read_exact(struct crow_sess *s, void *dst, size_t n, size_t *got);

/* Reads between 1 and N bytes into DST (raw streams).  OK with *GOT; EOF; TIMEOUT; ERROR. */
int crow_sess_read_some(struct crow_sess *s, void *dst, size_t n, size_t *got);

/* Reads an SMTP message (the bytes after "354", RFC 5321 4.5.2) up to CRLF "." CRLF,
 * dot-unstuffed, keeping at most MAX_SIZE bytes (1 to 1 GiB; more is read and dropped).  OPTS
 * is 0 or CROW_FRAME_SMTP_REJECT_BARE.  *DATA and *LEN are the message (its last line's CRLF
 * included), valid until the next crow_sess_read_data or crow_sess_free; *FLAGS (if not NULL)
 * says CROW_FRAME_F_BARE_CR, _BARE_LF, _SMUGGLE, _TOO_BIG.  OK; TOO_LONG (the message was over
 * MAX_SIZE: *DATA holds its first MAX_SIZE bytes; the session can go on); BAD (a bare CR or
 * LF with REJECT_BARE: the rest cannot be resynchronised, close); EOF; TIMEOUT; ERROR (EINVAL
 * for MAX_SIZE out of range, ENOMEM). */
int crow_sess_read_data(struct crow_sess *s, uint64_t max_size, unsigned opts,
                        const unsigned char **data, size_t *len, unsigned *flags);

/* Writes all LEN bytes of BUF.  OK; TIMEOUT (some bytes may have gone); ERROR (EPIPE,
 * ECONNRESET, EPROTO). */
int crow_sess_write(struct crow_sess *s, const void *buf, size_t len);

/* Writes all bytes of the IOVCNT buffers of IOV (not modified), with one writev(2) when the
 * kernel takes it all.  Statuses as crow_sess_write; ERROR EINVAL when IOVCNT < 0. */
int crow_sess_writev(struct crow_sess *s, const struct iovec *iov, int iovcnt);

/* Copies COUNT bytes of file IN_FD from OFFSET to the peer: sendfile(2) on a plain
 * connection, pread + TLS write on a TLS one.  OK with *SENT (if not NULL) = bytes sent,
 * fewer than COUNT only when the file ended; TIMEOUT; ERROR (the file's read errno too).
 * *SENT is always set to what was sent. */
int crow_sess_sendfile(struct crow_sess *s, int in_fd, off_t offset, size_t count,
                       size_t *sent);

/* Upgrades the session to TLS with CTX (the server side for a server context; HOST is the
 * client side's SNI/verified name, NULL on a server).  Every byte already buffered — plaintext
 * the peer sent after the upgrade command — is DISCARDED, never read as if it came over TLS
 * (the STARTTLS command-injection attack, CVE-2011-0411); *DISCARDED (if not NULL) says how
 * many, for the log.  Then the handshake runs, each wait bounded by the idle timeout.  OK;
 * EOF (closed during the handshake); TIMEOUT; ERROR (EALREADY if TLS is already on; EPROTO:
 * crow_sess_tls_error says why; ENOMEM).  After a failure the session must be closed. */
int crow_sess_starttls(struct crow_sess *s, struct crow_tls_ctx *ctx, const char *host,
                       size_t *discarded);

/* Returns S's TLS connection, NULL when plain.  Can't fail. */
struct crow_tls *crow_sess_tls(const struct crow_sess *s);

/* Returns the reason for the last TLS failure, "" when none or plain.  Can't fail. */
const char *crow_sess_tls_error(const struct crow_sess *s);

/* Sends TLS close_notify if TLS is on (waiting at most the write timeout, and at most 1 s),
 * then shuts down the sending side of the descriptor.  Returns 0, or -1 with errno (the
 * connection is going away regardless). */
int crow_sess_shutdown(struct crow_sess *s);

/* Returns the bytes read but not yet handed out.  Can't fail. */
size_t crow_sess_buffered(const struct crow_sess *s);

/* Stores the plaintext bytes received and sent so far.  Can't fail. */
void crow_sess_counts(const struct crow_sess *s, uint64_t *in, uint64_t *out);

#endif
