/* mmstat.c — libmmstat, the client of mmstatd (see mmstat.h for the API).
 *
 * Design: a transaction is one AF_UNIX datagram to the logger's socket, so the kernel delivers
 * it whole or not at all and the server never sees half a transaction.  The handle keeps two
 * 64 KiB buffers: the open transaction, and (batched mode) single operations waiting for a
 * flush.  The datagram socket is autobound to an abstract address so the logger can answer
 * commit_sync with an acknowledgement naming the transaction's sequence number; it is connected
 * once at open (a chrooted caller opens before its chroot) and reconnected once if the server
 * was restarted.  Reports and rotation are text requests on a fresh stream connection to the
 * librarian; its answer is read whole into memory and parsed line by line.  This file depends
 * on nothing else in c-core, so it is also shipped alone as libmmstat.a. */
#include <errno.h>
#include <fnmatch.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "mmstat.h"
#include "mmstat_wire.h"

struct mmstat {
    struct sockaddr_un logger, librarian;
    int fd;                 /* datagram socket, or -1 (reconnect on next send) */
    int autoflush, nonblock, timeout_ms, in_txn;
    int64_t rcv_timeout_ms; /* SO_RCVTIMEO currently set on fd (0: none) */
    int snd_timeout_ms;     /* SO_SNDTIMEO wanted on fd (0: none) */
    uint64_t seq, async_seq;
    size_t tlen;            /* bytes in txn, head included */
    uint32_t tops;
    size_t plen;            /* bytes of single ops in pend (batched mode) */
    unsigned char txn[MMSTAT_WIRE_MAX];
    unsigned char pend[MMSTAT_WIRE_MAX];
};

struct mmstat_report {
    char *buf;              /* the whole answer, NUL-terminated, lines split in place */
    size_t len, pos;
};

const char *mmstat_dir(const char *dir)
{
    if (dir && *dir)
        return dir;
    const char *e = getenv("MMSTAT_DIR");
    return e && *e ? e : MMSTAT_DEFAULT_DIR;
}

static int make_addr(struct sockaddr_un *a, const char *dir, const char *name)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    int n = snprintf(a->sun_path, sizeof a->sun_path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof a->sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

static int dgram_connect(mmstat_t *ms)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    sa_family_t fam = AF_UNIX;   /* autobind: an abstract address of the kernel's choosing */
    struct timeval stv = {ms->snd_timeout_ms / 1000, (ms->snd_timeout_ms % 1000) * 1000};
    if (bind(fd, (struct sockaddr *)&fam, sizeof fam) < 0 ||
        connect(fd, (struct sockaddr *)&ms->logger, sizeof ms->logger) < 0 ||
        (ms->snd_timeout_ms > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &stv, sizeof stv) < 0)) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    ms->fd = fd;
    ms->rcv_timeout_ms = 0;
    return 0;
}

static void dgram_drop(mmstat_t *ms)
{
    if (ms->fd >= 0) {
        int e = errno;
        close(ms->fd);
        errno = e;
        ms->fd = -1;
    }
}

mmstat_t *mmstat_open(const char *dir)
{
    const char *d = mmstat_dir(dir);
    mmstat_t *ms = malloc(sizeof *ms);
    if (!ms)
        return NULL;
    memset(ms, 0, offsetof(struct mmstat, txn));
    ms->fd = -1;
    ms->autoflush = 1;
    ms->timeout_ms = 10000;
    ms->seq = (uint64_t)getpid() << 32;
    if (make_addr(&ms->logger, d, MMSTAT_LOGGER_SOCK) < 0 ||
        make_addr(&ms->librarian, d, MMSTAT_LIBRARIAN_SOCK) < 0 || dgram_connect(ms) < 0) {
        int e = errno;
        free(ms);
        errno = e;
        return NULL;
    }
    return ms;
}

void mmstat_close(mmstat_t *ms)
{
    if (!ms)
        return;
    (void)mmstat_flush(ms);
    dgram_drop(ms);
    free(ms);
}

int mmstat_nonblocking(mmstat_t *ms, int on) { ms->nonblock = on != 0; return 0; }

int mmstat_send_timeout(mmstat_t *ms, int msec)
{
    ms->snd_timeout_ms = msec > 0 ? msec : 0;
    struct timeval tv = {ms->snd_timeout_ms / 1000, (ms->snd_timeout_ms % 1000) * 1000};
    if (ms->fd >= 0 && setsockopt(ms->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
        return -1;
    return 0;
}
int mmstat_timeout(mmstat_t *ms, int t) { ms->timeout_ms = t > 0 ? t : 1; return 0; }

/* Sends one datagram, reconnecting once when the server went away and came back. */
static int send_dgram(mmstat_t *ms, const void *buf, size_t len)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (ms->fd < 0 && dgram_connect(ms) < 0)
            return -1;
        ssize_t n;
        do
            n = send(ms->fd, buf, len, MSG_NOSIGNAL | (ms->nonblock ? MSG_DONTWAIT : 0));
        while (n < 0 && errno == EINTR);
        if (n >= 0)
            return 0;
        if (errno != ECONNREFUSED && errno != ENOTCONN && errno != ECONNRESET &&
            errno != ENOENT)
            return -1;
        dgram_drop(ms);
    }
    return -1;
}

static void head_init(unsigned char *buf, uint16_t flags, uint32_t nops, size_t oplen,
                      uint64_t seq)
{
    struct mmstat_wire_head h = {MMSTAT_WIRE_MAGIC, 1, flags, nops, (uint32_t)oplen, seq};
    memcpy(buf, &h, sizeof h);
}

int mmstat_flush(mmstat_t *ms)
{
    size_t pos = 0;
    int rc = 0, err = 0;
    unsigned char one[sizeof(struct mmstat_wire_head) + sizeof(struct mmstat_wire_op) +
                      MMSTAT_KEY_MAX + MMSTAT_TEXT_MAX + 16 + 8];
    while (pos < ms->plen) {
        struct mmstat_wire_op op;
        memcpy(&op, ms->pend + pos, sizeof op);
        size_t sz = mmstat_wire_op_size(op.type, op.keylen, op.textlen);
        head_init(one, 0, 1, sz, ++ms->seq);
        memcpy(one + sizeof(struct mmstat_wire_head), ms->pend + pos, sz);
        if (rc == 0 && send_dgram(ms, one, sizeof(struct mmstat_wire_head) + sz) < 0) {
            rc = -1;
            err = errno;
        }
        pos += sz;
    }
    ms->plen = 0;
    if (rc < 0)
        errno = err;
    return rc;
}

int mmstat_autoflush(mmstat_t *ms, int on)
{
    ms->autoflush = on != 0;
    return on ? mmstat_flush(ms) : 0;
}

int mmstat_begin(mmstat_t *ms)
{
    if (ms->in_txn) {
        errno = EALREADY;
        return -1;
    }
    if (mmstat_flush(ms) < 0)
        return -1;
    ms->in_txn = 1;
    ms->tlen = sizeof(struct mmstat_wire_head);
    ms->tops = 0;
    return 0;
}

int mmstat_rollback(mmstat_t *ms)
{
    if (!ms->in_txn) {
        errno = EINVAL;
        return -1;
    }
    ms->in_txn = 0;
    ms->tlen = 0;
    ms->tops = 0;
    return 0;
}

static int send_txn(mmstat_t *ms, uint16_t flags)
{
    head_init(ms->txn, flags, ms->tops, ms->tlen - sizeof(struct mmstat_wire_head), ++ms->seq);
    int rc = send_dgram(ms, ms->txn, ms->tlen);
    ms->in_txn = 0;
    ms->tlen = 0;
    ms->tops = 0;
    return rc;
}

int mmstat_commit(mmstat_t *ms)
{
    if (!ms->in_txn) {
        errno = EINVAL;
        return -1;
    }
    if (ms->tops == 0) {
        ms->in_txn = 0;
        return 0;
    }
    return send_txn(ms, 0);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for the ack of sequence SEQ with blocking recv calls bounded by SO_RCVTIMEO (one
 * system call per ack instead of poll + recv).  Older acks (of transactions that timed out)
 * are skipped. */
static int wait_ack(mmstat_t *ms, uint64_t seq)
{
    int64_t deadline = now_ms() + ms->timeout_ms;
    int64_t left = ms->timeout_ms;
    for (;;) {
        struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
        if (left != ms->rcv_timeout_ms) {
            if (setsockopt(ms->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
                return -1;
            ms->rcv_timeout_ms = left;
        }
        struct mmstat_wire_ack ack;
        ssize_t r = recv(ms->fd, &ack, sizeof ack, 0);
        if (r < 0 && errno != EINTR && errno != EAGAIN)
            return -1;
        if (r == (ssize_t)sizeof ack && ack.magic == MMSTAT_WIRE_MAGIC && ack.seq == seq) {
            if (ack.status) {
                errno = (int)ack.status;
                return -1;
            }
            return 0;
        }
        left = deadline - now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (r >= 0)
            left = ms->rcv_timeout_ms;   /* a stale ack: keep the timeout set (coarse) */
    }
}

int mmstat_commit_async(mmstat_t *ms)
{
    if (!ms->in_txn) {
        errno = EINVAL;
        return -1;
    }
    if (send_txn(ms, MMSTAT_WIRE_ACK) < 0)
        return -1;
    ms->async_seq = ms->seq;
    return 0;
}

int mmstat_fd(mmstat_t *ms) { return ms->fd; }

int mmstat_ack_check(mmstat_t *ms)
{
    if (ms->fd < 0) {
        errno = ENOTCONN;
        return -1;
    }
    for (;;) {
        struct mmstat_wire_ack ack;
        ssize_t r = recv(ms->fd, &ack, sizeof ack, MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 0 : -1;
        }
        if (r == (ssize_t)sizeof ack && ack.magic == MMSTAT_WIRE_MAGIC && ack.seq == ms->async_seq) {
            if (ack.status) {
                errno = (int)ack.status;
                return -1;
            }
            return 1;
        }
    }
}

int mmstat_commit_sync(mmstat_t *ms)
{
    if (!ms->in_txn) {
        /* a barrier: flush what is pending, then an empty transaction with an ack */
        if (mmstat_flush(ms) < 0 || mmstat_begin(ms) < 0)
            return -1;
    }
    if (send_txn(ms, MMSTAT_WIRE_ACK) < 0)
        return -1;
    return wait_ack(ms, ms->seq);
}

static int check_bytes(const char *s, size_t max, size_t *len)
{
    size_t n = 0;
    if (!s) {
        errno = EINVAL;
        return -1;
    }
    for (; s[n]; n++)
        if (n >= max || !mmstat_wire_byte_ok((unsigned char)s[n])) {
            errno = EINVAL;
            return -1;
        }
    *len = n;
    return 0;
}

static int add_op(mmstat_t *ms, unsigned type, const char *key, int64_t value,
                  const char *text, int persistent)
{
    size_t klen, tlen = 0;
    if (check_bytes(key, MMSTAT_KEY_MAX, &klen) < 0 || klen == 0 ||
        (text && check_bytes(text, MMSTAT_TEXT_MAX, &tlen) < 0)) {
        errno = EINVAL;
        return -1;
    }
    size_t sz = mmstat_wire_op_size(type, klen, tlen);
    unsigned char *dst;
    if (ms->in_txn) {
        if (ms->tlen + sz > MMSTAT_WIRE_MAX) {
            errno = EMSGSIZE;
            return -1;
        }
        dst = ms->txn + ms->tlen;
    } else {
        if (ms->plen + sz > MMSTAT_WIRE_MAX && mmstat_flush(ms) < 0)
            return -1;
        dst = ms->pend + ms->plen;
    }
    struct mmstat_wire_op op = {(uint8_t)type, persistent ? MMSTAT_OPF_PERSISTENT : 0,
                                (uint16_t)klen, (uint16_t)tlen, 0, value};
    memset(dst, 0, sz);
    memcpy(dst, &op, sizeof op);
    memcpy(dst + sizeof op, key, klen);
    if (tlen)
        memcpy(dst + sizeof op + klen, text, tlen);
    if (ms->in_txn) {
        ms->tlen += sz;
        ms->tops++;
        return 0;
    }
    ms->plen += sz;
    return ms->autoflush ? mmstat_flush(ms) : 0;
}

int mmstat_update(mmstat_t *ms, const char *key, int64_t delta, int persistent)
{
    return add_op(ms, MMSTAT_OP_UPDATE, key, delta, NULL, persistent);
}

int mmstat_reset(mmstat_t *ms, const char *key, int64_t value, int persistent)
{
    return add_op(ms, MMSTAT_OP_RESET, key, value, NULL, persistent);
}

int mmstat_set_text(mmstat_t *ms, const char *key, const char *text, int persistent)
{
    if (!text) {
        errno = EINVAL;
        return -1;
    }
    return add_op(ms, MMSTAT_OP_TEXT, key, 0, text, persistent);
}

int mmstat_delete(mmstat_t *ms, const char *key)
{
    return add_op(ms, MMSTAT_OP_DELETE, key, 0, NULL, 0);
}

int mmstat_match(const char *pattern, const char *string)
{
    return fnmatch(pattern, string, 0) == 0;
}

/* ---------------------------------------------------------------- librarian requests */

/* Sends REQUEST on a fresh connection and reads the answer until a line "." or a line
 * starting with + or -.  Returns the malloc'ed, NUL-terminated answer, or NULL with errno. */
static char *ask(mmstat_t *ms, const char *request, size_t *lenp)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int64_t deadline = now_ms() + ms->timeout_ms;
    int e = 0;
    if (connect(fd, (struct sockaddr *)&ms->librarian, sizeof ms->librarian) < 0) {
        e = errno;
        goto fail;
    }
    size_t rl = strlen(request), off = 0;
    while (off < rl) {
        ssize_t n = send(fd, request + off, rl - off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            e = errno;
            goto fail;
        }
        off += (size_t)n;
    }
    for (;;) {
        if (cap - len < 4097) {
            size_t ncap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                e = ENOMEM;
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            e = ETIMEDOUT;
            goto fail;
        }
        struct pollfd p = {fd, POLLIN, 0};
        int pn = poll(&p, 1, (int)left);
        if (pn < 0 && errno == EINTR)
            continue;
        if (pn < 0) {
            e = errno;
            goto fail;
        }
        if (pn == 0)
            continue;
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            e = errno;
            goto fail;
        }
        if (n == 0) {
            e = EPROTO;   /* closed before the end of the answer */
            goto fail;
        }
        len += (size_t)n;
        buf[len] = 0;
        /* complete when the last line is "." or the first line is a status */
        if (len >= 2 && buf[len - 1] == '\n') {
            if ((buf[0] == '+' || buf[0] == '-') && memchr(buf, '\n', len) == buf + len - 1)
                break;
            if ((len == 2 && buf[0] == '.') || (len >= 3 && !memcmp(buf + len - 3, "\n.\n", 3)))
                break;
        }
    }
    close(fd);
    *lenp = len;
    return buf;
fail:
    close(fd);
    free(buf);
    errno = e;
    return NULL;
}

static int request_ok(const char *verb, const char *arg, char *out, size_t outsz)
{
    size_t n;
    if (arg && check_bytes(arg, MMSTAT_KEY_MAX, &n) < 0)
        return -1;
    int w = snprintf(out, outsz, "%s%s%s\n", verb, arg ? " " : "", arg ? arg : "");
    if (w < 0 || (size_t)w >= outsz) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

mmstat_report_t *mmstat_report(mmstat_t *ms, const char *pattern)
{
    char req[MMSTAT_KEY_MAX + 16];
    if (request_ok("REPORT", pattern && *pattern ? pattern : "*", req, sizeof req) < 0)
        return NULL;
    mmstat_report_t *r = malloc(sizeof *r);
    if (!r)
        return NULL;
    r->buf = ask(ms, req, &r->len);
    if (!r->buf) {
        int e = errno;
        free(r);
        errno = e;
        return NULL;
    }
    r->pos = 0;
    if (r->buf[0] == '-' || r->buf[0] == '+') {
        free(r->buf);
        free(r);
        errno = EPROTO;
        return NULL;
    }
    return r;
}

/* A line: P\tCREATED\tMODIFIED\tVALUE\tKEY, P = p|v, VALUE = decimal or =TEXT. */
int mmstat_report_next(mmstat_report_t *r, struct mmstat_entry *e)
{
    while (r->pos < r->len) {
        char *line = r->buf + r->pos;
        char *nl = memchr(line, '\n', r->len - r->pos);
        if (!nl)
            return 0;
        *nl = 0;
        r->pos = (size_t)(nl - r->buf) + 1;
        if (line[0] == '.' && line[1] == 0)
            return 0;
        char *f[5];
        int nf = 0;
        char *p = line;
        while (nf < 4) {
            char *t = strchr(p, '\t');
            if (!t)
                break;
            *t = 0;
            f[nf++] = p;
            p = t + 1;
        }
        if (nf < 4)
            continue;   /* malformed: skipped */
        f[4] = p;
        e->persistent = f[0][0] == 'p';
        e->created = (time_t)strtoll(f[1], NULL, 10);
        e->modified = (time_t)strtoll(f[2], NULL, 10);
        if (f[3][0] == '=') {
            e->text = f[3] + 1;
            e->value = 0;
        } else {
            e->text = NULL;
            e->value = strtoll(f[3], NULL, 10);
        }
        e->key = f[4];
        return 1;
    }
    return 0;
}

void mmstat_report_close(mmstat_report_t *r)
{
    if (!r)
        return;
    free(r->buf);
    free(r);
}

int mmstat_rotate(mmstat_t *ms)
{
    size_t len;
    char *a = ask(ms, "ROTATE\n", &len);
    if (!a)
        return -1;
    int ok = a[0] == '+';
    free(a);
    if (!ok) {
        errno = EIO;
        return -1;
    }
    return 0;
}
