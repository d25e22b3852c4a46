/* fdio.c — whole-buffer descriptor I/O for the Lisp layer and the servers.
 *
 * Design: the kernel may return short counts from write/writev/sendfile and every call may be
 * interrupted by the signals ECL and the GC use, so each loop here retries EINTR and continues
 * after partial progress.  Nothing is buffered: these are thin loops over the system calls,
 * and a non-blocking descriptor's EAGAIN is returned to the caller with the progress made. */
#include <errno.h>
#include <limits.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "crow.h"
#include "fdio.h"

const char *crow_version(void) { return CROW_VERSION; }

ssize_t crow_fd_write_all(int fd, const void *buf, size_t len, size_t *done)
{
    const char *p = buf;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, p + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (done)
                *done = off;
            return -1;
        }
        off += (size_t)n;
    }
    if (done)
        *done = off;
    return (ssize_t)off;
}

ssize_t crow_fd_writev_all(int fd, struct iovec *iov, int iovcnt, size_t *done)
{
    size_t total = 0;
    while (iovcnt > 0) {
        if (iov->iov_len == 0) {
            iov++, iovcnt--;
            continue;
        }
        ssize_t n = writev(fd, iov, iovcnt > IOV_MAX ? IOV_MAX : iovcnt);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (done)
                *done = total;
            return -1;
        }
        total += (size_t)n;
        size_t left = (size_t)n;
        while (iovcnt > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++, iovcnt--;
        }
        if (iovcnt > 0 && left) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    if (done)
        *done = total;
    return (ssize_t)total;
}

ssize_t crow_fd_sendfile_all(int out_fd, int in_fd, off_t *offset, size_t count)
{
    size_t sent = 0;
    while (sent < count) {
        size_t chunk = count - sent;
        if (chunk > 0x7ffff000)
            chunk = 0x7ffff000;
        ssize_t n = sendfile(out_fd, in_fd, offset, chunk);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            break;
        sent += (size_t)n;
    }
    return (ssize_t)sent;
}

ssize_t crow_fd_read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    size_t off = 0;
    while (off < len) {
        ssize_t n = read(fd, p + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            break;
        off += (size_t)n;
    }
    return (ssize_t)off;
}
