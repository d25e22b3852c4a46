/* maildata.c — mail message bytes for mmsmtpd and mmpop3d: durable message files, a header
 * scan for the SMTP sanity checks and filters, and POP3 dot-stuffing for RETR and TOP.
 *
 * Design: reading DATA off the wire — dot-unstuffing, finding CRLF.CRLF, flagging every bare
 * CR, bare LF and end-of-data look-alike used for SMTP smuggling — is c-core/frame.c's SMTP
 * decoder, driven by c-core/sess.c (crow_sess_read_data), so the one state machine that the
 * fuzzers and unit tests cover decides where a message ends.  This module takes over once a
 * message is whole.  crow_maildata_store is the durability step: a message is written under
 * a temporary name, hard-linked under its final name(s) (one per recipient mailbox: the
 * bytes are stored once), fsynced (bytes and names in one journal commit), the temporary name
 * removed and the final directories fsynced; only after that does the caller commit the
 * database rows and answer 250, so a
 * crash at any point leaves either nothing acknowledged or a file whose row was never
 * committed (start-up recovery removes it).  crow_maildata_scan makes one pass over the
 * message measuring what RFC 5321/5322 limit (line and header field lengths, the
 * "Received:" hop count, 8-bit and NUL bytes, bare line ends), so Lisp decides policy
 * without touching each byte.  crow_maildata_pop3 does the reverse of the SMTP decoder for
 * POP3 (RFC 1939 3): byte-stuffs lines starting with "." into the caller's buffer, whole or
 * header plus N body lines; a size function lets the caller allocate exactly.  Nothing here
 * allocates (but for directory names on the stack), prints, or keeps state; system calls
 * retry EINTR. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crow.h"
#include "maildata.h"

#define CR '\r'
#define LF '\n'

/* ------------------------------------------------------------------ scan */

static int ci_prefix(const unsigned char *p, size_t n, const char *lit)
{
    size_t k = strlen(lit), i;
    if (n < k)
        return 0;
    for (i = 0; i < k; i++) {
        unsigned char c = p[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        if (c != (unsigned char)lit[i])
            return 0;
    }
    return 1;
}

/* A header line starts a field when it has a name of printable characters but ':' then ':'. */
static int field_start(const unsigned char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (p[i] == ':')
            return i > 0;
        if (p[i] < 33 || p[i] > 126)
            return 0;
    }
    return 0;
}

int crow_maildata_scan(const unsigned char *msg, size_t len, struct crow_maildata_info *info)
{
    size_t pos = 0, field = 0;
    int in_header = 1, have_field = 0;

    memset(info, 0, sizeof *info);
    info->header_len = len;
    if (len == 0) {
        info->flags |= CROW_MAILDATA_F_NO_BODY | CROW_MAILDATA_F_NO_CRLF;
        return 0;
    }
    if (len < 2 || msg[len - 2] != CR || msg[len - 1] != LF)
        info->flags |= CROW_MAILDATA_F_NO_CRLF;
    while (pos < len) {
        const unsigned char *line = msg + pos;
        const unsigned char *lf = memchr(line, LF, len - pos);
        size_t end = lf ? (size_t)(lf - msg) : len;    /* offset of LF, or len */
        size_t next = lf ? end + 1 : len;
        size_t n = end - pos;                          /* line bytes, LF excluded */
        size_t i;

        if (n > 0 && line[n - 1] == CR)
            n--;                                       /* CRLF: the CR is the terminator */
        else if (lf)
            info->flags |= CROW_MAILDATA_F_BARE;       /* LF without CR */
        for (i = 0; i < n; i++) {
            unsigned char c = line[i];
            if (c >= 0x80)
                info->flags |= CROW_MAILDATA_F_8BIT;
            else if (c == 0)
                info->flags |= CROW_MAILDATA_F_NUL;
            else if (c == CR)
                info->flags |= CROW_MAILDATA_F_BARE;
        }
        if (n > info->max_line)
            info->max_line = n;
        if (line[0] == '.' && (lf || n > 0))
            info->flags |= CROW_MAILDATA_F_DOT_LINE;
        if (in_header) {
            if (n == 0 && lf) {
                in_header = 0;
                info->header_len = next;
            } else if ((line[0] == ' ' || line[0] == '\t') && have_field) {
                field += n;                            /* folded: joins the field */
            } else if (field_start(line, n)) {
                have_field = 1;
                info->fields++;
                field = n;
                if (ci_prefix(line, n, "received:"))
                    info->received++;
            } else {
                info->flags |= CROW_MAILDATA_F_BAD_FIELD;
                field = n;
            }
            if (field > info->max_field)
                info->max_field = field;
        }
        pos = next;
    }
    if (in_header)
        info->flags |= CROW_MAILDATA_F_NO_BODY;
    return 0;
}

/* ------------------------------------------------------------------ store */

static int write_all(int fd, const struct iovec *iov, int iovcnt)
{
    int i;
    for (i = 0; i < iovcnt; i++) {
        const char *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left > 0) {
            ssize_t n = CROW_RETRY(write(fd, p, left));
            if (n < 0)
                return -1;
            p += n;
            left -= (size_t)n;
        }
    }
    return 0;
}

static int sync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t n;
    int fd, r, e;

    if (!slash) {
        dir[0] = '.';
        n = 1;
    } else {
        n = (size_t)(slash - path);
        if (n == 0)
            n = 1;                                     /* "/name" */
        if (n >= sizeof dir) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(dir, path, n);
    }
    dir[n] = '\0';
    fd = CROW_RETRY(open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd < 0)
        return -1;
    r = CROW_RETRY(fsync(fd));
    e = errno;
    close(fd);
    errno = e;
    return r;
}

static int same_dir(const char *a, const char *b)
{
    const char *sa = strrchr(a, '/'), *sb = strrchr(b, '/');
    size_t na = sa ? (size_t)(sa - a) : 0, nb = sb ? (size_t)(sb - b) : 0;
    return na == nb && memcmp(a, b, na) == 0;
}

int crow_maildata_store(const char *tmp, const char *const *finals, size_t nfinal,
                        const struct iovec *iov, int iovcnt, int nosync)
{
    size_t linked = 0, i, j;
    int fd, e;

    if (nfinal == 0 || iovcnt < 0) {
        errno = EINVAL;
        return -1;
    }
    fd = CROW_RETRY(open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (fd < 0)
        return -1;
    if (write_all(fd, iov, iovcnt) < 0)
        goto fail;
    /* The final names are linked before the fsync, so one journal commit makes the bytes and
     * every name durable (a name whose bytes never reached the disk has no row: recovery
     * removes it); the directory fsyncs below then find nothing left to do on ext4 and still
     * give the guarantee on file systems where they are needed. */
    for (linked = 0; linked < nfinal; linked++)
        if (link(tmp, finals[linked]) < 0)
            goto fail;
    if (!nosync && CROW_RETRY(fsync(fd)) < 0)
        goto fail;
    if (close(fd) < 0 && errno != EINTR) {
        fd = -1;                                       /* NFS-style late write error */
        goto fail;
    }
    fd = -1;
    unlink(tmp);
    if (!nosync) {
        for (i = 0; i < nfinal; i++) {
            for (j = 0; j < i; j++)
                if (same_dir(finals[i], finals[j]))
                    break;
            if (j == i && sync_dir_of(finals[i]) < 0)
                goto fail;
        }
    }
    return 0;
fail:
    e = errno;
    if (fd >= 0)
        close(fd);
    for (i = 0; i < linked; i++)
        unlink(finals[i]);
    unlink(tmp);
    errno = e;
    return -1;
}

/* ------------------------------------------------------------------ POP3 */

/* Calls the copy for MSG as crow_maildata_pop3 describes; OUT NULL only counts. */
static size_t pop3_emit(const unsigned char *msg, size_t len, long lines, unsigned char *out,
                        size_t cap, int *overflow)
{
    size_t pos = 0, o = 0;
    long body_lines = -1;                              /* -1: still in the header section */

#define PUT(ptr, n) do { size_t n_ = (n); if (out) { if (o + n_ > cap) { *overflow = 1; return o; } \
                         memcpy(out + o, (ptr), n_); } o += n_; } while (0)
    while (pos < len) {
        const unsigned char *line = msg + pos;
        const unsigned char *lf = memchr(line, LF, len - pos);
        size_t next = lf ? (size_t)(lf - msg) + 1 : len;
        size_t n = next - pos;

        if (lines >= 0 && body_lines >= lines)
            break;
#ifdef CROW_PLANTED_BUG
        if (line[0] == '.' && n > 3)               /* planted: a short dot line goes unstuffed */
#else
        if (line[0] == '.')
#endif
            PUT(".", 1);
        PUT(line, n);
        if (body_lines >= 0)
            body_lines++;
        else if ((n == 2 && line[0] == CR && line[1] == LF) || (n == 1 && line[0] == LF))
            body_lines = 0;                            /* the empty line ends the header */
        pos = next;
    }
    if (o > 0 && pos == len && msg[len - 1] != LF)
        PUT("\r\n", 2);
    PUT(".\r\n", 3);
#undef PUT
    return o;
}

size_t crow_maildata_pop3_size(const unsigned char *msg, size_t len, long lines)
{
    int overflow = 0;
    return pop3_emit(msg, len, lines, NULL, 0, &overflow);
}

size_t crow_maildata_pop3(const unsigned char *msg, size_t len, long lines,
                          unsigned char *out, size_t cap)
{
    int overflow = 0;
    size_t n = pop3_emit(msg, len, lines, out, cap, &overflow);
    if (overflow) {
        errno = ENOSPC;
        return (size_t)-1;
    }
    return n;
}
