/* aconn.c — connect and accept with timeouts, for threads that must not block for ever.
 *
 * Design: both calls are "try, then poll, then try again": connect on a non-blocking socket
 * returns EINPROGRESS, completion is POLLOUT and the verdict is SO_ERROR; accept4 on a
 * listener is attempted first (no poll when a connection is already queued) and after each
 * POLLIN, since another thread may win the race for the connection.  The waiting goes
 * through crow_msgport_poll, so a port (e.g. a server's control port) cancels the wait
 * without signals or extra descriptors.  The deadline is absolute, so EINTR and spurious
 * wake-ups never stretch it. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "aconn.h"
#include "crow.h"

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for EVENTS on FD or for CANCEL.  Returns 1 when FD is ready, or -1 with errno
 * ETIMEDOUT, ECANCELED or poll's. */
static int wait_fd(int fd, short events, int64_t deadline, struct crow_msgport *cancel)
{
    struct pollfd pfd = {fd, events, 0};
    int left = -1;
    if (deadline >= 0) {
        int64_t d = deadline - mono_ms();
        left = d > 0 ? (int)(d > INT32_MAX ? INT32_MAX : d) : 0;
    }
    int r = crow_msgport_poll(&pfd, 1, cancel ? &cancel : NULL, cancel ? 1 : 0, left);
    if (r < 0)
        return -1;
    if (pfd.revents)
        return 1;
    errno = r > 0 ? ECANCELED : ETIMEDOUT;
    return -1;
}

int crow_aconn_connect(const struct sockaddr *sa, socklen_t salen, int flags, int timeout_ms,
                       struct crow_msgport *cancel)
{
    int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | (flags & SOCK_CLOEXEC), 0);
    if (fd < 0)
        return -1;
    int e;
    if (connect(fd, sa, salen) < 0) {
        if (errno != EINPROGRESS && errno != EINTR)
            goto fail;
        /* EINTR on a non-blocking connect: the attempt continues in the background, exactly
         * like EINPROGRESS. */
        if (cancel && crow_msgport_count(cancel) > 0) {
            errno = ECANCELED;
            goto fail;
        }
        if (wait_fd(fd, POLLOUT, deadline, cancel) < 0)
            goto fail;
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
            goto fail;
        if (soerr) {
            errno = soerr;
            goto fail;
        }
    }
    if (!(flags & SOCK_NONBLOCK)) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
            goto fail;
    }
    return fd;
fail:
    e = errno;
    close(fd);
    errno = e;
    return -1;
}

int crow_aconn_accept(int lfd, struct sockaddr *sa, socklen_t *salen, int flags,
                      int timeout_ms, struct crow_msgport *cancel)
{
    int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
    socklen_t want = salen ? *salen : 0;
    for (;;) {
        if (cancel && crow_msgport_count(cancel) > 0) {
            errno = ECANCELED;
            return -1;
        }
        /* Only try accept4 directly on a listener known to be non-blocking; a blocking one
         * would block here, so it gets polled first. */
        int fl = fcntl(lfd, F_GETFL);
        if (fl < 0)
            return -1;
        if (fl & O_NONBLOCK) {
            if (salen)
                *salen = want;
            int fd = accept4(lfd, sa, salen, flags);
            if (fd >= 0)
                return fd;
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR
                && errno != ECONNABORTED)
                return -1;
        }
        if (wait_fd(lfd, POLLIN, deadline, cancel) < 0)
            return -1;
        if (!(fl & O_NONBLOCK)) {
            /* A blocking listener shared with another thread could still block here if
             * that thread takes the connection first; the header asks sharers to make it
             * non-blocking. */
            if (salen)
                *salen = want;
            int fd = CROW_RETRY(accept4(lfd, sa, salen, flags));
            if (fd >= 0 || errno != ECONNABORTED)
                return fd;
        }
    }
}
