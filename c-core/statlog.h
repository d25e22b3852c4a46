/* statlog.h — mmstatd's byte work: the logger's receive/validate/frame/append/fsync pump with
 * group commit, acknowledgements, walking logged operations, checking and finding log frames
 * for recovery, and writing snapshots.  Formats in mmstat_wire.h. */
#ifndef CROW_STATLOG_H
#define CROW_STATLOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum crow_statlog_policy {
    CROW_STATLOG_NEVER = 0,     /* never fsync (the kernel writes back when it likes) */
    CROW_STATLOG_EVERY = 1,     /* fdatasync when EVERY_MS passed since the last one */
    CROW_STATLOG_ALWAYS = 2     /* fdatasync each batch before applying and acknowledging */
};

struct crow_statlog;

/* What a pump counts (totals since crow_statlog_new). */
struct crow_statlog_stats {
    uint64_t datagrams, transactions, ops, malformed, barriers, bytes, syncs, acks, acks_lost;
};

/* Returns a logger reading datagrams from DGRAM_FD (bound, non-blocking or not) and appending
 * frames to LOG_FD at its current end (OFFSET = that end), numbering transactions from
 * NEXT_TXN.  The descriptors stay the caller's.  Returns NULL with errno ENOMEM. */
struct crow_statlog *crow_statlog_new(int dgram_fd, int log_fd, uint64_t offset,
                                      uint64_t next_txn);

/* Frees LG (not its descriptors).  LG may be NULL.  Can't fail. */
void crow_statlog_free(struct crow_statlog *lg);

/* Sets the sync policy.  Can't fail. */
void crow_statlog_set_policy(struct crow_statlog *lg, enum crow_statlog_policy p, int every_ms);

/* Replaces the log descriptor by LOG_FD at OFFSET (after a rotation; the caller syncs and
 * closes the old one).  Can't fail. */
void crow_statlog_set_log(struct crow_statlog *lg, int log_fd, uint64_t offset);

/* Waits up to TIMEOUT_MS (-1: no limit) for datagrams, then takes every one queued (up to
 * about 1 MiB of transactions: one group commit), validates each, appends the persistent part
 * of the valid ones (every DELETE and the operations flagged persistent; volatile operations
 * are never written) to the log as frames in one write, and syncs as the policy says (only
 * when something was written; for EVERY also when nothing came and the interval passed).
 * The batch of whole transactions stays readable (crow_statlog_batch) until the next pump;
 * acknowledgements wait for crow_statlog_ack.  Returns the number of transactions taken,
 * volatile ones included (0 on timeout or only barriers/malformed), or -1 with errno: the
 * write or the sync failed (the log may end in a partial frame; the batch is not applied) or
 * recv failed. */
int crow_statlog_pump(struct crow_statlog *lg, int timeout_ms);

/* Sets *BUF and *LEN to the frames of the whole transactions (volatile operations included)
 * the last pump took, for crow_statlog_iter_init; unlike the log's, their CRC is not set.
 * Can't fail. */
void crow_statlog_batch(struct crow_statlog *lg, const unsigned char **buf, size_t *len);

/* Sends the acknowledgements the last pump's transactions asked for (non-blocking: one to a
 * client whose queue is full is dropped and counted).  Returns how many were sent.  Can't fail. */
int crow_statlog_ack(struct crow_statlog *lg);

/* fdatasync(2)s the log now if anything was written since the last sync.  Returns 0, or -1
 * with errno. */
int crow_statlog_sync(struct crow_statlog *lg);

/* The log's end offset, the next transaction number, the counters.  Can't fail. */
uint64_t crow_statlog_offset(const struct crow_statlog *lg);
uint64_t crow_statlog_next_txn(const struct crow_statlog *lg);
void crow_statlog_get_stats(const struct crow_statlog *lg, struct crow_statlog_stats *s);

/* CRC-32C (Castagnoli) of LEN bytes, continuing from CRC (0 to start).  Can't fail. */
uint32_t crow_statlog_crc32c(uint32_t crc, const void *buf, size_t len);

/* Checks the frame at BUF+OFF within LEN bytes.  Returns its whole size when it is a valid
 * frame (magic, sizes, every op well-formed, checksum), 0 when it runs past LEN (a torn
 * tail, or LEN reached), -1 when it is damaged.  Can't fail. */
ssize_t crow_statlog_frame_check(const unsigned char *buf, size_t len, size_t off);

/* Returns the offset of the first valid whole frame starting at or after FROM, or -1 if
 * there is none (what follows a bad frame is then a torn tail, not a damaged middle).
 * Can't fail. */
ssize_t crow_statlog_frame_find(const unsigned char *buf, size_t len, size_t from);

/* Walks the operations of checked frames. */
struct crow_statlog_iter {
    const unsigned char *buf;
    size_t len, pos, frame_end;
    uint64_t txn;
    int64_t time;
    /* the current operation */
    unsigned type, flags;
    const char *key, *text;
    size_t keylen, textlen;
    int64_t value, created, modified;   /* created/modified: RESTORE and META only */
};

/* Starts walking LEN bytes of frames at BUF (already validated: the pump's batch, or a range
 * crow_statlog_frame_check accepted).  Can't fail. */
void crow_statlog_iter_init(struct crow_statlog_iter *it, const unsigned char *buf, size_t len);

/* Loads the next operation into IT.  Returns 1, or 0 at the end.  Can't fail. */
int crow_statlog_iter_next(struct crow_statlog_iter *it);

/* Snapshot writer: frames of RESTORE (and META) operations appended to FD. */
struct crow_statlog_snap;

/* Returns a writer to FD (the caller's, positioned at the end), frames stamped with TIME.
 * Returns NULL with errno ENOMEM. */
struct crow_statlog_snap *crow_statlog_snap_new(int fd, int64_t time);

/* Adds one entry (TYPE MMSTAT_OP_RESTORE or MMSTAT_OP_META; TEXT may be NULL), writing a
 * frame out when the current one is full.  Returns 0, or -1 with errno (EINVAL: key or text
 * too long; a write error). */
int crow_statlog_snap_add(struct crow_statlog_snap *sw, unsigned type, unsigned flags,
                          const char *key, size_t keylen, int64_t value, int64_t created,
                          int64_t modified, const char *text, size_t textlen);

/* Writes the last frame, fsyncs FD and frees SW.  Returns 0, or -1 with errno (SW freed
 * either way). */
int crow_statlog_snap_finish(struct crow_statlog_snap *sw);

#endif
