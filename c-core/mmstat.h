/* mmstat.h — client library of mmstatd, the counter database server (libmmstat).
 *
 * A handle talks to one mmstatd through the two sockets in its stat directory: transactions go
 * to the logger as one datagram each (applied entirely or not at all), reports and rotation go
 * to the librarian over a stream connection.  Keys are 1..255 printable bytes, like
 * "mmftpd|logins|alice"; a key holding *, ? or [ is a shell pattern (update, reset and delete
 * then act on the existing keys it matches).  Values are signed 64-bit integers or short texts
 * (up to 1024 printable bytes).  Persistent keys survive restarts; volatile ones live in memory.
 *
 * Modes: inside mmstat_begin .. mmstat_commit every operation is buffered and sent as one
 * transaction.  Outside, an operation is its own transaction: sent at once in autoflush mode
 * (the default), or buffered until mmstat_flush (or until the buffer is full) in batched mode.
 *
 * No function exits, prints, or raises a signal (sends use MSG_NOSIGNAL); every one that can
 * fail returns -1 (or NULL) with errno set.  A handle is not thread-safe: one per thread. */
#ifndef MMSTAT_H
#define MMSTAT_H

#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MMSTAT_DEFAULT_DIR "/run/mmstatd"

typedef struct mmstat mmstat_t;
typedef struct mmstat_report mmstat_report_t;

/* One entry of a report.  Strings belong to the report and stay valid until the next
 * mmstat_report_next or mmstat_report_close. */
struct mmstat_entry {
    const char *key;
    int64_t value;          /* 0 for a text entry */
    const char *text;       /* NULL for a counter */
    time_t created, modified;
    int persistent;
};

/* Returns the stat directory a client uses: DIR when not NULL, else $MMSTAT_DIR when set and
 * non-empty, else MMSTAT_DEFAULT_DIR.  Can't fail. */
const char *mmstat_dir(const char *dir);

/* Opens a handle on the mmstatd whose sockets are in mmstat_dir(DIR), in autoflush mode.
 * Connects the datagram socket at once (so a chrooted caller may open before its chroot).
 * Returns the handle, or NULL with errno set (ENAMETOOLONG: path too long; ENOENT or
 * ECONNREFUSED: no server there; ENOMEM). */
mmstat_t *mmstat_open(const char *dir);

/* Sends what is buffered outside a transaction (mmstat_flush), then frees MS.  An open
 * transaction is discarded.  MS may be NULL.  Can't fail. */
void mmstat_close(mmstat_t *ms);

/* Autoflush on (nonzero: each operation outside a transaction is sent at once) or off
 * (batched).  Turning it on flushes.  Returns 0, or -1 with errno as mmstat_flush. */
int mmstat_autoflush(mmstat_t *ms, int on);

/* Non-blocking sends (nonzero): when the server's queue is full a send fails with EAGAIN
 * instead of waiting (a feeder that must never block uses this).  Returns 0.  Can't fail. */
int mmstat_nonblocking(mmstat_t *ms, int on);

/* Blocking sends wait at most MSEC milliseconds for room in the server's queue, then fail with
 * EAGAIN (0: wait as long as it takes, the default).  Returns 0, or -1 with errno from
 * setsockopt(2). */
int mmstat_send_timeout(mmstat_t *ms, int msec);

/* How long mmstat_commit_sync and reports wait for the server, in milliseconds (default
 * 10000).  Returns 0.  Can't fail. */
int mmstat_timeout(mmstat_t *ms, int ms_timeout);

/* Starts a transaction (flushing what batched mode holds).  Returns 0, or -1 with errno:
 * EALREADY if one is open, or as mmstat_flush. */
int mmstat_begin(mmstat_t *ms);

/* Sends the open transaction as one datagram.  An empty transaction sends nothing.  Returns 0,
 * or -1 with errno: EINVAL if none is open; EAGAIN (non-blocking, queue full), ECONNREFUSED
 * (server gone and not back) — the transaction is then discarded either way. */
int mmstat_commit(mmstat_t *ms);

/* As mmstat_commit, then waits until the server acknowledges that the transaction is logged
 * under its sync policy (fsynced with `sync always`) and applied, so a report made next sees
 * it.  Outside a transaction, flushes and waits for what was pending (a barrier).  Returns 0,
 * or -1 with errno: as mmstat_commit; ETIMEDOUT (no answer in time: the transaction may or
 * may not be durable); EINVAL if the server refused it as malformed. */
int mmstat_commit_sync(mmstat_t *ms);

/* For event-driven clients (one thread, many handles): sends the open transaction as
 * mmstat_commit does, asking for an acknowledgement without waiting for it; poll
 * mmstat_fd(MS) for input and call mmstat_ack_check.  Returns 0, or -1 with errno as
 * mmstat_commit. */
int mmstat_commit_async(mmstat_t *ms);

/* The descriptor acknowledgements arrive on (readable when one may be there), or -1 when the
 * handle is not connected.  Can't fail. */
int mmstat_fd(mmstat_t *ms);

/* Reads waiting acknowledgements without blocking.  Returns 1 when the last transaction sent
 * with mmstat_commit_async is acknowledged, 0 when not yet, or -1 with errno (EINVAL: the
 * server refused it as malformed; a receive error). */
int mmstat_ack_check(mmstat_t *ms);

/* Discards the open transaction.  Returns 0, or -1 with EINVAL if none is open. */
int mmstat_rollback(mmstat_t *ms);

/* Sends what batched mode holds outside a transaction: one datagram per operation.  Returns 0,
 * or -1 with errno as mmstat_commit (what was not sent is discarded). */
int mmstat_flush(mmstat_t *ms);

/* The operations.  Each returns 0, or -1 with errno: EINVAL (empty or overlong key or text, a
 * control byte in it; nothing recorded), EMSGSIZE (the transaction would exceed one datagram,
 * 64 KiB: the operation is not added, the transaction stays open), or as mmstat_commit when
 * sent at once.  PERSISTENT is nonzero for a key kept across restarts; it applies to keys the
 * operation creates, and the operation acts on keys of its kind only (mmstatd logs only
 * persistent operations and deletes): a volatile one leaves a persistent key alone, a
 * persistent one replaces a volatile key, a pattern skips keys of the other kind.  A delete
 * removes keys of both kinds. */
int mmstat_update(mmstat_t *ms, const char *key, int64_t delta, int persistent);
int mmstat_reset(mmstat_t *ms, const char *key, int64_t value, int persistent);
int mmstat_set_text(mmstat_t *ms, const char *key, const char *text, int persistent);
int mmstat_delete(mmstat_t *ms, const char *key_or_pattern);

/* Asks for every entry whose key matches PATTERN (NULL or "" = "*"), sorted by key.  Makes a
 * barrier first: every transaction sent before (by any client) is in the report.  Returns the
 * report to walk with mmstat_report_next, or NULL with errno (ECONNREFUSED/ENOENT: no server;
 * ETIMEDOUT; EPROTO: a malformed answer; ENOMEM). */
mmstat_report_t *mmstat_report(mmstat_t *ms, const char *pattern);

/* Fills *E with the next entry.  Returns 1, or 0 at the end.  Can't fail. */
int mmstat_report_next(mmstat_report_t *r, struct mmstat_entry *e);

/* Frees R (may be NULL).  Can't fail. */
void mmstat_report_close(mmstat_report_t *r);

/* Asks the server to write a snapshot and start a new recovery log.  Returns 0 once done, or
 * -1 with errno (as mmstat_report; EIO: the server could not write the snapshot). */
int mmstat_rotate(mmstat_t *ms);

/* Returns 1 if STRING matches the shell pattern PATTERN (*, ?, [...] as fnmatch(3) without
 * flags), else 0.  Can't fail. */
int mmstat_match(const char *pattern, const char *string);

#ifdef __cplusplus
}
#endif
#endif
