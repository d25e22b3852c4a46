/* mmstat_wire.h — the byte formats shared by the mmstat client (mmstat.c) and mmstatd's
 * logger (statlog.c): update datagrams, their acknowledgements, and the recovery log's frames.
 * Internal: not installed; the public API is mmstat.h.  All integers are little-endian (the
 * host order on every platform crow targets; statlog checks it at build time). */
#ifndef CROW_MMSTAT_WIRE_H
#define CROW_MMSTAT_WIRE_H

#include <stdint.h>
#include <string.h>

/* Socket names inside the stat directory. */
#define MMSTAT_LOGGER_SOCK "logger.sock"       /* AF_UNIX datagram: transactions in */
#define MMSTAT_LIBRARIAN_SOCK "librarian.sock" /* AF_UNIX stream: reports, rotation */

/* One update datagram = one transaction: a head, then NOPS ops, LEN bytes in all. */
#define MMSTAT_WIRE_MAGIC 0x314d534dU   /* "MSM1" */
#define MMSTAT_WIRE_ACK 1U              /* flags: acknowledge once logged (policy) and applied */
#define MMSTAT_WIRE_MAX 65536U          /* largest datagram (head + ops) */
struct mmstat_wire_head {
    uint32_t magic;
    uint16_t version;   /* 1 */
    uint16_t flags;     /* MMSTAT_WIRE_ACK */
    uint32_t nops;
    uint32_t len;       /* bytes of ops after the head */
    uint64_t seq;       /* the client's number, echoed in the ack */
};

/* The acknowledgement the logger sends back to the sender's (autobound) address. */
struct mmstat_wire_ack {
    uint32_t magic;
    uint32_t status;    /* 0, or an errno (EINVAL: malformed, dropped) */
    uint64_t seq;
};

/* An op: this fixed part, KEYLEN key bytes, for RESTORE 16 bytes (created, modified as
 * int64), TEXTLEN text bytes, zero padding to a multiple of 8. */
enum mmstat_op_type {
    MMSTAT_OP_UPDATE = 1,   /* value += delta (creates at delta); pattern: matching keys */
    MMSTAT_OP_RESET = 2,    /* value = value */
    MMSTAT_OP_DELETE = 3,   /* delete key or pattern */
    MMSTAT_OP_TEXT = 4,     /* value = text */
    MMSTAT_OP_RESTORE = 5,  /* snapshot files only: a whole entry with its times */
    MMSTAT_OP_META = 6      /* snapshot files only: key "log", value = the log number the
                               snapshot covers up to, created = offset in it, modified = the
                               next transaction number; laid out as RESTORE */
};
#define MMSTAT_OPF_PERSISTENT 1U
struct mmstat_wire_op {
    uint8_t type;
    uint8_t flags;
    uint16_t keylen;    /* 1..MMSTAT_KEY_MAX */
    uint16_t textlen;   /* 0..MMSTAT_TEXT_MAX (TEXT, RESTORE) */
    uint16_t pad;
    int64_t value;
};
#define MMSTAT_KEY_MAX 255U
#define MMSTAT_TEXT_MAX 1024U

static inline size_t mmstat_wire_op_size(unsigned type, size_t keylen, size_t textlen)
{
    size_t n = sizeof(struct mmstat_wire_op) + keylen + textlen +
               (type >= MMSTAT_OP_RESTORE ? 16 : 0);
    return (n + 7) & ~(size_t)7;
}

/* A key or text byte is printable: no control characters (reports are tab-separated lines). */
static inline int mmstat_wire_byte_ok(unsigned char c) { return c >= 0x20 && c != 0x7f; }

/* The recovery log and the snapshot: a sequence of frames, one per transaction. */
#define MMSTAT_LOG_MAGIC 0x474c534dU    /* "MSLG" */
struct mmstat_log_frame {
    uint32_t magic;
    uint32_t len;       /* bytes of ops after this head */
    uint32_t nops;
    uint32_t crc;       /* CRC-32C of this head (crc = 0) and the ops */
    uint64_t txn;       /* the server's transaction number */
    int64_t time;       /* when the logger received it (Unix seconds) */
};

#endif
