/* aconn.h — connect and accept with timeouts, cancellable through a message port. */
#ifndef CROW_ACONN_H
#define CROW_ACONN_H

#include <sys/socket.h>

#include "msgport.h"

/* Connects a new stream socket to SA (any family) with a non-blocking connect and poll, at
 * most TIMEOUT_MS (-1: the kernel's own timeout), giving up early when CANCEL (may be NULL)
 * is or becomes non-empty (its message stays queued).  FLAGS may hold SOCK_NONBLOCK (the
 * returned socket stays non-blocking; otherwise it is made blocking) and SOCK_CLOEXEC.
 * Returns the connected descriptor, or -1 with errno: ETIMEDOUT, ECANCELED, the connect
 * error (ECONNREFUSED, ENETUNREACH, ...), or socket/poll's; no descriptor leaks. */
int crow_aconn_connect(const struct sockaddr *sa, socklen_t salen, int flags, int timeout_ms,
                       struct crow_msgport *cancel);

/* Accepts one connection on listening socket LFD (blocking or not), waiting at most
 * TIMEOUT_MS (-1: for ever) or until CANCEL (may be NULL) is non-empty.  SA/SALEN as for
 * accept(2) (both may be NULL); FLAGS as for accept4(2).  Returns the new descriptor, or -1
 * with errno: ETIMEDOUT, ECANCELED, or accept4/poll's.  Retries EINTR and the transient
 * ECONNABORTED/EAGAIN of a connection that went away before it was accepted.  A listener
 * several threads accept on must be non-blocking, or one of them may block past its timeout. */
int crow_aconn_accept(int lfd, struct sockaddr *sa, socklen_t *salen, int flags,
                      int timeout_ms, struct crow_msgport *cancel);

#endif
