/* statlog.c — mmstatd's logger pump and recovery-log formats.
 *
 * Design: the logger thread calls crow_statlog_pump in a loop.  A pump waits for the datagram
 * socket, then drains it with recvmmsg (64 datagrams per call) until it is empty or about
 * 1 MiB of transactions are collected, so that every client that sent while the previous
 * batch was being written and synced lands in the same batch: one write(2) and (policy
 * `always`) one fdatasync(2) cover them all — group commit.  Each datagram is validated as a
 * whole (head, every op's sizes and bytes) and framed with the server's transaction number
 * and the time; a malformed one is dropped and counted.  Volatile operations never reach the
 * disk: each transaction is framed twice, whole into the batch (memory only, what Lisp
 * applies) and, with only its persistent operations (UPDATE/RESET/TEXT flagged persistent,
 * and every DELETE: a key or pattern may name keys of both kinds), into the disk buffer with a
 * CRC-32C under the same transaction number.  A transaction with no persistent operation
 * writes no frame, and a batch with none writes and syncs nothing.  The disk buffer goes out
 * in one write (and under `always` one fdatasync); the caller (Lisp) then walks the batch
 * with the iterator to apply it, and only then calls crow_statlog_ack, so an acknowledged
 * transaction is both durable (under the policy) and visible in reports.  After a crash only
 * the persistent part of a transaction comes back, whole: its volatile part died with the
 * server's memory, as volatile keys do (Lisp keeps an operation to keys of its own kind so
 * that replay and memory agree; see lisp/servers/stat/db.lisp).
 * An empty transaction asking for an ack is a barrier: acknowledged, never logged.
 * Recovery reads a log through crow_statlog_frame_check / _find: a frame that is cut short at
 * the end is a torn tail; a damaged frame followed by a valid one is a damaged middle.
 * CRC-32C uses the SSE4.2 instruction when the CPU has it, else a table. */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fdio.h"
#include "mmstat_wire.h"
#include "statlog.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "mmstat's formats are little-endian"
#endif

#define VLEN 64
#define BATCH_SOFT (1u << 20)
#define BATCH_CAP (BATCH_SOFT + VLEN * (MMSTAT_WIRE_MAX + sizeof(struct mmstat_log_frame)))

struct ack {
    struct sockaddr_un addr;
    socklen_t alen;
    uint32_t status;
    uint64_t seq;
};

struct crow_statlog {
    int dfd, lfd;
    uint64_t offset, next_txn, synced_offset;
    enum crow_statlog_policy policy;
    int every_ms;
    int64_t last_sync_ms;
    struct crow_statlog_stats st;
    unsigned char *batch;               /* whole transactions: applied, never written */
    size_t blen;
    unsigned char *disk;                /* their persistent parts: written to the log */
    size_t dlen;
    struct ack *acks;
    size_t nacks, acap;
    unsigned char *slots;                   /* VLEN receive buffers */
    struct mmsghdr msgs[VLEN];
    struct iovec iov[VLEN];
    struct sockaddr_un from[VLEN];
};

/* ---------------------------------------------------------------- CRC-32C */
static uint32_t crc_table[8][256];
static int crc_ready, crc_hw;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82f63b78U : c >> 1;
        crc_table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
#if defined(__x86_64__)
    __builtin_cpu_init();
    crc_hw = __builtin_cpu_supports("sse4.2");
#endif
    __atomic_store_n(&crc_ready, 1, __ATOMIC_RELEASE);
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t c, const unsigned char *p,
                                                             size_t n)
{
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = __builtin_ia32_crc32di(c64, v);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n--)
        c = __builtin_ia32_crc32qi(c, *p++);
    return c;
}
#endif

uint32_t crow_statlog_crc32c(uint32_t crc, const void *buf, size_t len)
{
    if (!__atomic_load_n(&crc_ready, __ATOMIC_ACQUIRE))
        crc_init();   /* idempotent: racing threads compute the same tables */
    const unsigned char *p = buf;
    uint32_t c = ~crc;
#if defined(__x86_64__)
    if (crc_hw)
        return ~crc_sse42(c, p, len);
#endif
    while (len >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo ^= c;
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
            crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
            crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
            crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
    return ~c;
}

/* ---------------------------------------------------------------- validation */
static int bytes_ok(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!mmstat_wire_byte_ok(p[i]))
            return 0;
    return 1;
}

/* Checks NOPS ops filling exactly LEN bytes at P; MAXTYPE bounds the op types allowed. */
static int ops_ok(const unsigned char *p, size_t len, uint32_t nops, unsigned maxtype)
{
    size_t pos = 0;
    for (uint32_t i = 0; i < nops; i++) {
        struct mmstat_wire_op op;
        if (len - pos < sizeof op)
            return 0;
        memcpy(&op, p + pos, sizeof op);
        if (op.type < MMSTAT_OP_UPDATE || op.type > maxtype || op.keylen == 0 ||
            op.keylen > MMSTAT_KEY_MAX || op.textlen > MMSTAT_TEXT_MAX ||
            (op.textlen && op.type < MMSTAT_OP_TEXT))
            return 0;
        size_t sz = mmstat_wire_op_size(op.type, op.keylen, op.textlen);
#ifndef CROW_PLANTED_BUG
        if (sz > len - pos)
            return 0;
#else
        if (sizeof op + op.keylen > len - pos)   /* planted: the text and padding unchecked */
            return 0;
#endif
        const unsigned char *k = p + pos + sizeof op;
        const unsigned char *t = k + op.keylen + (op.type >= MMSTAT_OP_RESTORE ? 16 : 0);
        if (!bytes_ok(k, op.keylen) || !bytes_ok(t, op.textlen))
            return 0;
        pos += sz;
    }
    return pos == len;
}

/* ---------------------------------------------------------------- the logger */
struct crow_statlog *crow_statlog_new(int dgram_fd, int log_fd, uint64_t offset,
                                      uint64_t next_txn)
{
    struct crow_statlog *lg = calloc(1, sizeof *lg);
    if (!lg)
        return NULL;
    lg->batch = malloc(BATCH_CAP);
    lg->disk = malloc(BATCH_CAP);
    lg->slots = malloc((size_t)VLEN * MMSTAT_WIRE_MAX);
    lg->acap = 256;
    lg->acks = malloc(lg->acap * sizeof *lg->acks);
    if (!lg->batch || !lg->disk || !lg->slots || !lg->acks) {
        crow_statlog_free(lg);
        errno = ENOMEM;
        return NULL;
    }
    lg->dfd = dgram_fd;
    lg->lfd = log_fd;
    lg->offset = lg->synced_offset = offset;
    lg->next_txn = next_txn;
    lg->policy = CROW_STATLOG_EVERY;
    lg->every_ms = 1000;
    return lg;
}

void crow_statlog_free(struct crow_statlog *lg)
{
    if (!lg)
        return;
    free(lg->batch);
    free(lg->disk);
    free(lg->slots);
    free(lg->acks);
    free(lg);
}

void crow_statlog_set_policy(struct crow_statlog *lg, enum crow_statlog_policy p, int every_ms)
{
    lg->policy = p;
    lg->every_ms = every_ms > 0 ? every_ms : 1;
}

void crow_statlog_set_log(struct crow_statlog *lg, int log_fd, uint64_t offset)
{
    lg->lfd = log_fd;
    lg->offset = lg->synced_offset = offset;
}

uint64_t crow_statlog_offset(const struct crow_statlog *lg) { return lg->offset; }
uint64_t crow_statlog_next_txn(const struct crow_statlog *lg) { return lg->next_txn; }
void crow_statlog_get_stats(const struct crow_statlog *lg, struct crow_statlog_stats *s)
{
    *s = lg->st;
}

void crow_statlog_batch(struct crow_statlog *lg, const unsigned char **buf, size_t *len)
{
    *buf = lg->batch;
    *len = lg->blen;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int crow_statlog_sync(struct crow_statlog *lg)
{
    lg->last_sync_ms = mono_ms();
    if (lg->synced_offset == lg->offset)
        return 0;
    int r;
    do
        r = fdatasync(lg->lfd);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -1;
    lg->synced_offset = lg->offset;
    lg->st.syncs++;
    return 0;
}

static int add_ack(struct crow_statlog *lg, const struct sockaddr_un *a, socklen_t alen,
                   uint64_t seq, uint32_t status)
{
    if (alen <= sizeof(sa_family_t))
        return 0;   /* an unbound sender cannot be answered */
    if (lg->nacks == lg->acap) {
        struct ack *n = realloc(lg->acks, 2 * lg->acap * sizeof *n);
        if (!n)
            return 0;   /* the client times out, as if the ack were lost */
        lg->acks = n;
        lg->acap *= 2;
    }
    struct ack *k = &lg->acks[lg->nacks++];
    memcpy(&k->addr, a, alen);
    k->alen = alen;
    k->seq = seq;
    k->status = status;
    return 0;
}

/* Copies to OUT the operations among the NOPS validated ones at P (LEN bytes) that go to disk:
 * every DELETE, and the others flagged persistent.  Sets *KEPT to their number and returns
 * their size. */
static size_t persistent_ops(unsigned char *out, const unsigned char *p, size_t len,
                             uint32_t nops, uint32_t *kept)
{
    size_t pos = 0, n = 0;
    *kept = 0;
    for (uint32_t i = 0; i < nops && pos < len; i++) {
        struct mmstat_wire_op op;
        memcpy(&op, p + pos, sizeof op);
        size_t sz = mmstat_wire_op_size(op.type, op.keylen, op.textlen);
        if (op.type == MMSTAT_OP_DELETE || (op.flags & MMSTAT_OPF_PERSISTENT)) {
            memcpy(out + n, p + pos, sz);
            n += sz;
            ++*kept;
        }
        pos += sz;
    }
    return n;
}

/* Validates one datagram and frames it into the batch, its persistent part into the disk
 * buffer. */
static void take(struct crow_statlog *lg, const unsigned char *d, size_t n,
                 const struct sockaddr_un *from, socklen_t alen, int64_t now)
{
    struct mmstat_wire_head h;
    lg->st.datagrams++;
    if (n < sizeof h) {
        lg->st.malformed++;
        return;
    }
    memcpy(&h, d, sizeof h);
    if (h.magic != MMSTAT_WIRE_MAGIC || h.version != 1 || h.len != n - sizeof h ||
        !ops_ok(d + sizeof h, h.len, h.nops, MMSTAT_OP_TEXT)) {
        lg->st.malformed++;
        if (h.magic == MMSTAT_WIRE_MAGIC && (h.flags & MMSTAT_WIRE_ACK))
            add_ack(lg, from, alen, h.seq, EINVAL);
        return;
    }
    if (h.nops > 0) {
        uint64_t txn = lg->next_txn++;
        struct mmstat_log_frame f = {MMSTAT_LOG_MAGIC, h.len, h.nops, 0, txn, now};
        unsigned char *out = lg->batch + lg->blen;   /* the batch is not checksummed */
        memcpy(out, &f, sizeof f);
        memcpy(out + sizeof f, d + sizeof h, h.len);
        lg->blen += sizeof f + h.len;
        size_t pn = persistent_ops(lg->disk + lg->dlen + sizeof f, d + sizeof h, h.len, h.nops,
                                   &f.nops);
        if (f.nops > 0) {
            f.len = (uint32_t)pn;
            unsigned char *w = lg->disk + lg->dlen;
            memcpy(w, &f, sizeof f);
            f.crc = crow_statlog_crc32c(0, w, sizeof f + pn);
            memcpy(w + offsetof(struct mmstat_log_frame, crc), &f.crc, sizeof f.crc);
            lg->dlen += sizeof f + pn;
        }
        lg->st.transactions++;
        lg->st.ops += h.nops;
    } else {
        lg->st.barriers++;
    }
    if (h.flags & MMSTAT_WIRE_ACK)
        add_ack(lg, from, alen, h.seq, 0);
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Group commit under `always`: the clients acknowledged after the last fsync send their
 * next transactions one after another, not at once; rather than fsync the first few alone
 * (making the rest wait a whole fsync more), keep draining while datagrams keep coming, until
 * a quiet gap of QUIET_US or GATHER_US in all.  Returns 1 to drain again. */
#define GATHER_US 500
#define QUIET_US 60
static int gather(struct crow_statlog *lg, int64_t *spent)
{
    if (lg->policy != CROW_STATLOG_ALWAYS || *spent >= GATHER_US)
        return 0;
    int64_t t0 = mono_us(), left = GATHER_US - *spent;
    struct pollfd p = {lg->dfd, POLLIN, 0};
    struct timespec ts = {0, (long)(left < QUIET_US ? left : QUIET_US) * 1000};
    int r = ppoll(&p, 1, &ts, NULL);
    *spent += mono_us() - t0;
    return r > 0;
}

int crow_statlog_pump(struct crow_statlog *lg, int timeout_ms)
{
    lg->blen = 0;
    lg->dlen = 0;
    lg->nacks = 0;
    if (lg->policy == CROW_STATLOG_EVERY && lg->offset != lg->synced_offset) {
        int64_t left = lg->last_sync_ms + lg->every_ms - mono_ms();
        if (left < 0)
            left = 0;
        if (timeout_ms < 0 || left < timeout_ms)
            timeout_ms = (int)left;
    }
    struct pollfd p = {lg->dfd, POLLIN, 0};
    int pr = poll(&p, 1, timeout_ms);
    if (pr < 0 && errno != EINTR)
        return -1;
    int64_t now = (int64_t)time(NULL);
    uint64_t before = lg->st.transactions;
    int64_t gathered = 0;
    while (pr > 0 && lg->blen < BATCH_SOFT) {
        for (int i = 0; i < VLEN; i++) {
            lg->iov[i].iov_base = lg->slots + (size_t)i * MMSTAT_WIRE_MAX;
            lg->iov[i].iov_len = MMSTAT_WIRE_MAX;
            memset(&lg->msgs[i].msg_hdr, 0, sizeof lg->msgs[i].msg_hdr);
            lg->msgs[i].msg_hdr.msg_iov = &lg->iov[i];
            lg->msgs[i].msg_hdr.msg_iovlen = 1;
            lg->msgs[i].msg_hdr.msg_name = &lg->from[i];
            lg->msgs[i].msg_hdr.msg_namelen = sizeof lg->from[i];
        }
        int n = recvmmsg(lg->dfd, lg->msgs, VLEN, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || lg->blen > 0 || lg->nacks > 0)
                break;
            return -1;
        }
        for (int i = 0; i < n; i++) {
            struct msghdr *m = &lg->msgs[i].msg_hdr;
            if (m->msg_flags & MSG_TRUNC) {
                lg->st.datagrams++;
                lg->st.malformed++;
                continue;
            }
            take(lg, lg->iov[i].iov_base, lg->msgs[i].msg_len, &lg->from[i], m->msg_namelen, now);
        }
        if (n < VLEN && !gather(lg, &gathered))
            break;
    }
    if (lg->dlen > 0) {
        if (crow_fd_write_all(lg->lfd, lg->disk, lg->dlen, NULL) < 0)
            return -1;
        lg->offset += lg->dlen;
        lg->st.bytes += lg->dlen;
    }
    if ((lg->policy == CROW_STATLOG_ALWAYS && lg->dlen > 0) ||
        (lg->policy == CROW_STATLOG_EVERY && lg->offset != lg->synced_offset &&
         mono_ms() - lg->last_sync_ms >= lg->every_ms)) {
        if (crow_statlog_sync(lg) < 0)
            return -1;
    }
    return (int)(lg->st.transactions - before);
}

int crow_statlog_ack(struct crow_statlog *lg)
{
    /* one sendmmsg per 64 acknowledgements: the ack of a batch costs a few system calls */
    int sent = 0;
    size_t i = 0;
    while (i < lg->nacks) {
        struct mmstat_wire_ack a[VLEN];
        struct iovec iov[VLEN];
        struct mmsghdr m[VLEN];
        unsigned n = 0;
        for (; n < VLEN && i + n < lg->nacks; n++) {
            struct ack *k = &lg->acks[i + n];
            a[n] = (struct mmstat_wire_ack){MMSTAT_WIRE_MAGIC, k->status, k->seq};
            iov[n] = (struct iovec){&a[n], sizeof a[n]};
            memset(&m[n], 0, sizeof m[n]);
            m[n].msg_hdr.msg_name = &k->addr;
            m[n].msg_hdr.msg_namelen = k->alen;
            m[n].msg_hdr.msg_iov = &iov[n];
            m[n].msg_hdr.msg_iovlen = 1;
        }
        int r;
        do
            r = sendmmsg(lg->dfd, m, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        while (r < 0 && errno == EINTR);
        if (r <= 0) {   /* the first one failed (a full or vanished client): drop it */
            lg->st.acks_lost++;
            i++;
            continue;
        }
        lg->st.acks += (uint64_t)r;
        sent += r;
        i += (size_t)r;
    }
    lg->nacks = 0;
    return sent;
}

/* ---------------------------------------------------------------- frames on disk */
ssize_t crow_statlog_frame_check(const unsigned char *buf, size_t len, size_t off)
{
    struct mmstat_log_frame f;
    if (off >= len || len - off < sizeof f)
        return 0;
    memcpy(&f, buf + off, sizeof f);
    if (f.magic != MMSTAT_LOG_MAGIC || f.len > MMSTAT_WIRE_MAX)
        return -1;
    if (len - off - sizeof f < f.len)
        return 0;
    struct mmstat_log_frame z = f;
    z.crc = 0;
    uint32_t c = crow_statlog_crc32c(0, &z, sizeof z);
    c = crow_statlog_crc32c(c, buf + off + sizeof f, f.len);
    if (c != f.crc || !ops_ok(buf + off + sizeof f, f.len, f.nops, MMSTAT_OP_META))
        return -1;
    return (ssize_t)(sizeof f + f.len);
}

ssize_t crow_statlog_frame_find(const unsigned char *buf, size_t len, size_t from)
{
    uint32_t magic = MMSTAT_LOG_MAGIC;
    for (size_t off = from; off + sizeof(struct mmstat_log_frame) <= len; off++) {
        const unsigned char *m = memmem(buf + off, len - off, &magic, sizeof magic);
        if (!m)
            return -1;
        off = (size_t)(m - buf);
        if (crow_statlog_frame_check(buf, len, off) > 0)
            return (ssize_t)off;
    }
    return -1;
}

void crow_statlog_iter_init(struct crow_statlog_iter *it, const unsigned char *buf, size_t len)
{
    memset(it, 0, sizeof *it);
    it->buf = buf;
    it->len = len;
}

int crow_statlog_iter_next(struct crow_statlog_iter *it)
{
    while (it->pos >= it->frame_end) {
        struct mmstat_log_frame f;
        if (it->frame_end >= it->len || it->len - it->frame_end < sizeof f)
            return 0;
        memcpy(&f, it->buf + it->frame_end, sizeof f);
        it->pos = it->frame_end + sizeof f;
        it->frame_end = it->pos + f.len;
        it->txn = f.txn;
        it->time = f.time;
    }
    struct mmstat_wire_op op;
    const unsigned char *p = it->buf + it->pos;
    memcpy(&op, p, sizeof op);
    it->type = op.type;
    it->flags = op.flags;
    it->value = op.value;
    it->keylen = op.keylen;
    it->key = (const char *)p + sizeof op;
    const unsigned char *t = p + sizeof op + op.keylen;
    if (op.type >= MMSTAT_OP_RESTORE) {
        memcpy(&it->created, t, 8);
        memcpy(&it->modified, t + 8, 8);
        t += 16;
    } else {
        it->created = it->modified = it->time;
    }
    it->text = (const char *)t;
    it->textlen = op.textlen;
    it->pos += mmstat_wire_op_size(op.type, op.keylen, op.textlen);
    return 1;
}

/* ---------------------------------------------------------------- snapshots */
#define SNAP_FRAME 60000u
struct crow_statlog_snap {
    int fd;
    int64_t time;
    uint64_t txn;
    size_t len;         /* bytes in buf, frame head included */
    uint32_t nops;
    unsigned char buf[sizeof(struct mmstat_log_frame) + MMSTAT_WIRE_MAX];
};

struct crow_statlog_snap *crow_statlog_snap_new(int fd, int64_t t)
{
    struct crow_statlog_snap *sw = malloc(sizeof *sw);
    if (!sw)
        return NULL;
    sw->fd = fd;
    sw->time = t;
    sw->txn = 0;
    sw->len = sizeof(struct mmstat_log_frame);
    sw->nops = 0;
    return sw;
}

static int snap_flush(struct crow_statlog_snap *sw)
{
    if (sw->nops == 0)
        return 0;
    size_t oplen = sw->len - sizeof(struct mmstat_log_frame);
    struct mmstat_log_frame f = {MMSTAT_LOG_MAGIC, (uint32_t)oplen, sw->nops, 0, sw->txn++,
                                 sw->time};
    memcpy(sw->buf, &f, sizeof f);
    f.crc = crow_statlog_crc32c(0, sw->buf, sw->len);
    memcpy(sw->buf + offsetof(struct mmstat_log_frame, crc), &f.crc, sizeof f.crc);
    if (crow_fd_write_all(sw->fd, sw->buf, sw->len, NULL) < 0)
        return -1;
    sw->len = sizeof f;
    sw->nops = 0;
    return 0;
}

int crow_statlog_snap_add(struct crow_statlog_snap *sw, unsigned type, unsigned flags,
                          const char *key, size_t keylen, int64_t value, int64_t created,
                          int64_t modified, const char *text, size_t textlen)
{
    if (keylen == 0 || keylen > MMSTAT_KEY_MAX || textlen > MMSTAT_TEXT_MAX ||
        (type != MMSTAT_OP_RESTORE && type != MMSTAT_OP_META)) {
        errno = EINVAL;
        return -1;
    }
    size_t sz = mmstat_wire_op_size(type, keylen, textlen);
    if (sw->len + sz - sizeof(struct mmstat_log_frame) > SNAP_FRAME && snap_flush(sw) < 0)
        return -1;
    unsigned char *d = sw->buf + sw->len;
    struct mmstat_wire_op op = {(uint8_t)type, (uint8_t)flags, (uint16_t)keylen,
                                (uint16_t)textlen, 0, value};
    memset(d, 0, sz);
    memcpy(d, &op, sizeof op);
    memcpy(d + sizeof op, key, keylen);
    memcpy(d + sizeof op + keylen, &created, 8);
    memcpy(d + sizeof op + keylen + 8, &modified, 8);
    if (textlen)
        memcpy(d + sizeof op + keylen + 16, text, textlen);
    sw->len += sz;
    sw->nops++;
    return 0;
}

int crow_statlog_snap_finish(struct crow_statlog_snap *sw)
{
    int rc = snap_flush(sw);
    int e = errno;
    if (rc == 0) {
        do
            rc = fsync(sw->fd);
        while (rc < 0 && errno == EINTR);
        e = errno;
    }
    free(sw);
    errno = e;
    return rc;
}
