/* msgport.h — Exec-style message ports between threads: put, get, wait, reply, poll, sleep. */
#ifndef CROW_MSGPORT_H
#define CROW_MSGPORT_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "alloc.h"

struct crow_msgport;

/* A message header.  Embed it in your own struct (container_of it back); the port links
 * messages through NEXT, so a message sits in at most one port at a time and must not be
 * freed or re-put while queued.  REPLY_PORT is where crow_msgport_reply sends it back. */
struct crow_msg {
    struct crow_msg *next;
    struct crow_msgport *reply_port;
};

/* Counters since the port was made; read with crow_msgport_stats. */
struct crow_msgport_stats {
    uint64_t puts;    /* messages put (put, put_all, reply) */
    uint64_t gets;    /* messages taken (get, get_all, wait) */
    uint64_t wakeups; /* times the queue went from empty to non-empty: the only puts that
                         signal (a waiting thread by futex, a watched eventfd by write) */
    uint64_t drains;  /* get_all calls that took at least one message */
};

/* Makes an empty port with its own eventfd, allocated from A (NULL: the default allocator).
 * Returns NULL and sets errno (ENOMEM, or EMFILE/ENFILE from eventfd); nothing leaks. */
struct crow_msgport *crow_msgport_new(const struct crow_allocator *a);

/* Closes the eventfd and frees the port.  Messages still queued are dropped, not touched
 * (they belong to their senders).  No thread may be using the port.  NULL is ignored.
 * Can't fail. */
void crow_msgport_free(struct crow_msgport *p);

/* The port's eventfd, for your own poll/epoll loop: from this call on, every put that finds
 * the queue empty writes it.  When it is readable, read its 8 bytes and then
 * crow_msgport_get/get_all until they return NULL (it may be readable with the queue already
 * drained: that is harmless).  Do not close it.  Can't fail. */
int crow_msgport_fd(struct crow_msgport *p);

/* Appends M to P (any thread; lock-free: one compare-and-swap).  Wakes a waiting thread /
 * writes a watched eventfd only when the queue goes from empty to non-empty; otherwise makes
 * no system call.  Can't fail. */
void crow_msgport_put(struct crow_msgport *p, struct crow_msg *m);

/* Appends the NULL-terminated list LIST (linked through next, in order) in one atomic step
 * and with at most one signal.  Returns the number of messages put (0 for NULL).  Can't
 * fail. */
size_t crow_msgport_put_all(struct crow_msgport *p, struct crow_msg *list);

/* Sends M back to its reply_port.  Returns 0, or -1 with errno EINVAL when M has no reply
 * port (M untouched). */
int crow_msgport_reply(struct crow_msg *m);

/* Removes and returns the oldest message, or NULL when the port is empty.  Can't fail. */
struct crow_msg *crow_msgport_get(struct crow_msgport *p);

/* Takes the whole queue under one lock: returns the oldest message, the rest linked in order
 * through next, the last one's next NULL; stores the count in *N when N is not NULL.
 * Returns NULL (and *N = 0) when the port is empty.  Can't fail. */
struct crow_msg *crow_msgport_get_all(struct crow_msgport *p, size_t *n);

/* Like crow_msgport_get, but blocks until a message arrives or TIMEOUT_MS passes (-1: for
 * ever; 0: don't block).  Several threads may wait on one port; each message goes to one.
 * Returns the message, or NULL with errno ETIMEDOUT (time is up).  Retries EINTR. */
struct crow_msg *crow_msgport_wait(struct crow_msgport *p, int timeout_ms);

/* Waits until one of FDS (as poll(2)) is ready or one of PORTS is non-empty, or TIMEOUT_MS
 * passes (-1: for ever).  Messages stay queued: take them with get/get_all afterwards.
 * FDS may be NULL when NFDS is 0, PORTS when NPORTS is 0.  Returns the number of ready
 * descriptors plus non-empty ports (0 on timeout), each fd's revents set; or -1 with errno
 * (EINVAL for more than 4096 entries, ENOMEM, or poll(2)'s).  Retries EINTR. */
int crow_msgport_poll(struct pollfd *fds, nfds_t nfds, struct crow_msgport *const *ports,
                      size_t nports, int timeout_ms);

/* Sleeps MS milliseconds, or less when P (which may be NULL) is or becomes non-empty; the
 * message stays queued.  Returns 1 when woken by the port, 0 when the full time passed, or -1
 * with errno (EINVAL for MS < 0, or poll(2)'s).  Retries EINTR. */
int crow_msgport_sleep(struct crow_msgport *p, int ms);

/* The number of queued messages at the moment of the call (0 without locking when the port
 * is empty; otherwise counted under the consumers' lock, in time proportional to the count
 * of messages put since the last get).  Can't fail. */
size_t crow_msgport_count(const struct crow_msgport *p);

/* Copies P's counters into *OUT.  Can't fail. */
void crow_msgport_stats(struct crow_msgport *p, struct crow_msgport_stats *out);

#endif
