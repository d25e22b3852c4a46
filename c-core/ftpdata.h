/* ftpdata.h — FTP data connections (RFC 959 stream mode): files and listings sent and received
 * with ASCII conversion, throttling, TLS (PROT P), timeouts, and the control connection
 * watched so ABOR is answered at once. */
#ifndef CROW_FTPDATA_H
#define CROW_FTPDATA_H

#include <stddef.h>
#include <stdint.h>

#include "tls.h"

/* How a data connection is used.
 *
 * mmftpd's session thread decides everything (which file, which offset, which mode, whether
 * the peer may connect) and hands the connected data descriptor to crow_ftpdata_new, which
 * owns it from then on.  Each transfer call blocks the thread until the transfer is done, the
 * peer goes away, no progress is made for the timeout, or the CONTROL descriptor becomes
 * readable (the client sent ABOR, or anything else, during the transfer): the call then
 * returns CROW_FTPDATA_CONTROL at once, with the bytes moved so far, and the caller reads the
 * command.  The data descriptor is made non-blocking; every wait is a poll(2) of it and of the
 * control descriptor.  Bandwidth: bytes per second per connection and direction, plus an
 * optional bucket shared by every connection of one user (struct crow_ftpdata_share, locked);
 * a transfer starts with empty buckets, so it never beats its rate.
 *
 * Statuses (every transfer function; EINTR is retried inside): */
enum crow_ftpdata_status {
    CROW_FTPDATA_OK = 0,       /* done (a file sent to its end, or the peer's end of file) */
    CROW_FTPDATA_TIMEOUT = 2,  /* no progress for the timeout; errno ETIMEDOUT */
    CROW_FTPDATA_CONTROL = 3,  /* the control connection became readable: stopped */
    CROW_FTPDATA_LIMIT = 4,    /* a receive reached its byte limit (quota): stopped */
    CROW_FTPDATA_NET = -1,     /* the data connection failed: errno (ECONNRESET, EPIPE, EPROTO) */
    CROW_FTPDATA_FILE = -2,    /* the local file failed: errno (EIO, ENOSPC, EDQUOT, ...) */
};

/* A bandwidth bucket shared by the data connections of one user, in any threads. */
struct crow_ftpdata_share;

/* Returns a shared bucket of RATE bytes/s (0: unlimited), or NULL with errno ENOMEM or EINVAL
 * (RATE over CROW_THROTTLE_MAX_RATE). */
struct crow_ftpdata_share *crow_ftpdata_share_new(uint64_t rate);
/* Frees SH; no data connection may use it any more.  NULL is ignored.  Can't fail. */
void crow_ftpdata_share_free(struct crow_ftpdata_share *sh);

struct crow_ftpdata;

/* Returns a data connection over connected descriptor FD (owned from now on: closed by
 * crow_ftpdata_close, even when this fails), watching CONTROL_FD (-1: none), with TIMEOUT_MS
 * for each wait (0: none).  Returns NULL with errno ENOMEM or fcntl's. */
struct crow_ftpdata *crow_ftpdata_new(int fd, int control_fd, int timeout_ms);

/* Limits D to RATE_IN / RATE_OUT bytes/s (0: unlimited) and, when SHARE_IN / SHARE_OUT are not
 * NULL, to those shared buckets too.  Buckets start empty.  Returns 0, or -1 with errno EINVAL
 * (a rate over CROW_THROTTLE_MAX_RATE). */
int crow_ftpdata_set_limits(struct crow_ftpdata *d, uint64_t rate_in, uint64_t rate_out,
                            struct crow_ftpdata_share *share_in,
                            struct crow_ftpdata_share *share_out);

/* Runs the server side of a TLS handshake over D with CTX (PROT P).  The control connection is
 * not watched during it.  Returns OK, TIMEOUT, or NET (EPROTO: crow_ftpdata_tls_error says
 * why; ECONNRESET; ENOMEM). */
int crow_ftpdata_starttls(struct crow_ftpdata *d, struct crow_tls_ctx *ctx);

/* Returns the reason for D's last TLS failure, "" when none.  Can't fail. */
const char *crow_ftpdata_tls_error(const struct crow_ftpdata *d);

/* Sends the N bytes at BUF (a listing), each LF not preceded by CR as CRLF when ASCII.
 * Returns OK, TIMEOUT, CONTROL or NET; *SENT (if not NULL) = bytes of BUF consumed: after
 * CONTROL, call again with the rest (BUF + *SENT); converted bytes not yet sent wait in D and
 * go first. */
int crow_ftpdata_send(struct crow_ftpdata *d, const void *buf, size_t n, int ascii,
                      uint64_t *sent);

/* Sends the file FILE_FD from OFFSET to its end: sendfile(2) for binary on a plain connection,
 * pread and convert/encrypt otherwise (ASCII: each LF not preceded by CR sent as CRLF).
 * Returns OK (the file's end reached), TIMEOUT, CONTROL, NET or FILE; *SENT (if not NULL) =
 * file bytes consumed: after CONTROL, call again from OFFSET + *SENT (as for
 * crow_ftpdata_send, converted bytes not yet sent wait in D). */
int crow_ftpdata_send_file(struct crow_ftpdata *d, int file_fd, uint64_t offset, int ascii,
                           uint64_t *sent);

/* Receives until the peer's end of file into FILE_FD at its current position (ASCII: CRLF
 * stored as LF; binary on a plain connection by splice(2), else through a buffer).  At most
 * LIMIT bytes are written (UINT64_MAX: no limit): reaching it returns LIMIT with those bytes
 * written.  With FSYNC the file is fsync'ed before OK is returned.  After CONTROL, calling it
 * again goes on where it stopped (an ASCII CR held back at a chunk's end included).
 * Returns OK, TIMEOUT, CONTROL, LIMIT, NET or FILE; *GOT (if not NULL) = bytes written to the
 * file. */
int crow_ftpdata_recv_file(struct crow_ftpdata *d, int file_fd, int ascii, uint64_t limit,
                           int fsync, uint64_t *got);

/* Ends D: TLS close_notify (when ABORTIVE is 0 and TLS is on, waiting at most the timeout and
 * 1 s), then close(2) (with ABORTIVE, a reset: SO_LINGER 0).  Frees D.  NULL is ignored.
 * Returns 0, or -1 with errno from the close_notify (the descriptor is closed anyway). */
int crow_ftpdata_close(struct crow_ftpdata *d, int abortive);

/* Converts ASCII for the wire: copies the N bytes at IN into OUT (room for 2 * N), each LF
 * not preceded by CR (*PREV, the byte before IN, updated) as CRLF.  Returns the bytes
 * written.  Can't fail. */
size_t crow_ftpdata_to_crlf(const unsigned char *in, size_t n, unsigned char *out, int *prev);

/* Converts ASCII from the wire in place: each CR directly followed by LF is dropped.  *CR_HELD
 * says a CR ended the previous chunk (it is emitted first unless this chunk starts with LF);
 * a CR ending this chunk is held back and *CR_HELD set.  OUT has room for N + 1 bytes.
 * Returns the bytes written to OUT.  Can't fail. */
size_t crow_ftpdata_from_crlf(const unsigned char *in, size_t n, unsigned char *out,
                              int *cr_held);

/* Removes Telnet commands from the control line BUF[0..LEN) in place (RFC 959 4.1.3: clients
 * send IAC IP, IAC DM before ABOR): IAC IAC becomes one 255 byte, IAC and the byte after it
 * are dropped.  Returns the new length.  Can't fail. */
size_t crow_ftp_telnet_strip(unsigned char *buf, size_t len);

#endif
