/* evloop.h — per-thread epoll event loop that frames input into protocol units for Lisp. */
#ifndef CROW_EVLOOP_H
#define CROW_EVLOOP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "alloc.h"

/* One struct crow_ev per worker thread.  Nothing here is thread-safe except crow_ev_wake. */
struct crow_ev;

/* Framing modes (per listener, changeable per connection with crow_ev_set_mode). */
enum crow_ev_mode {
    CROW_EV_RAW = 0,  /* every read is a unit */
    CROW_EV_LINE = 1, /* one LF- or CRLF-terminated line per unit */
    CROW_EV_HTTP = 2  /* one HTTP/1.x request (head, and its body de-chunked) per unit */
};

/* Unit kinds. */
enum crow_ev_kind {
    CROW_EV_NONE = 0,      /* crow_ev_next returned 0: timeout or wake, no unit */
    CROW_EV_DATA = 1,      /* RAW: the bytes of one read */
    CROW_EV_LINE_UNIT = 2, /* LINE: a line, DATA/LEN without the terminator (EOL_LEN bytes) */
    CROW_EV_REQUEST = 3,   /* HTTP: head + body; HTTP describes it */
    CROW_EV_TOO_LONG = 4,  /* line longer than max_line (DATA holds its first max_line bytes;
                              the rest of the line is discarded), or HTTP head beyond max_head
                              or with too many headers (answer 431) */
    CROW_EV_BAD = 5,       /* HTTP: malformed head or chunked body (answer 400) */
    CROW_EV_TOO_LARGE = 6, /* HTTP: body beyond max_body (answer 413) */
    CROW_EV_OPEN = 7,      /* a new connection (config notify_open), e.g. to send a greeting */
    CROW_EV_CLOSED = 8,    /* a connection has gone (config notify_close); its id is stale */
    CROW_EV_HEAD = 9       /* HTTP with config head_first: a request head whose body has not
                              been read (DATA is the head, HTTP describes it, body_len 0).  The
                              caller decides before any 100 Continue: crow_ev_continue lets the
                              body come under a limit (the REQUEST unit follows), or any reply
                              or crow_ev_done finishes it and the connection closes after. */
};

/* After an HTTP error unit (TOO_LONG, BAD, TOO_LARGE) the input can't be re-synchronised:
 * the connection is closed once the reply is written, whatever the flags. */

/* Reply flags. */
#define CROW_EV_CLOSE_AFTER 1 /* close once everything queued has been written */
#define CROW_EV_MORE        2 /* the unit is not finished: more replies follow */
#define CROW_EV_CORK        4 /* crow_ev_reply on a TCP connection: hold partial segments
                                 (TCP_CORK) until the queued output after it (typically a
                                 crow_ev_sendfile) has all been written, so a head and a
                                 file go out in full segments */

/* Listener flags (crow_ev_listen) and crow_ev_tcp_listener flags. */
#define CROW_EV_EXCLUSIVE   1 /* listener fd shared by several evs: EPOLLEXCLUSIVE */
#define CROW_EV_REUSEPORT   2 /* crow_ev_tcp_listener: set SO_REUSEPORT */

#define CROW_EV_MAX_HEADERS 64
#define CROW_EV_PEER_MAX    64

/* Offsets are from the unit's DATA. */
struct crow_ev_header {
    uint32_t name_off, name_len, value_off, value_len; /* value without surrounding blanks */
};

struct crow_ev_http {
    uint32_t method_off, method_len;
    uint32_t target_off, target_len;
    int version;                 /* 10 for HTTP/1.0, 11 for HTTP/1.1 */
    int keep_alive;              /* the version and Connection header allow keeping the
                                    connection after the reply */
    int chunked;                 /* the body came chunked (it is de-chunked in DATA) */
    int expect_continue;         /* Expect: 100-continue (already answered by the loop) */
    int64_t content_length;      /* -1 when absent */
    uint32_t head_len;           /* head bytes, blank line included; the body follows */
    uint32_t body_len;           /* body bytes (de-chunked) */
    uint32_t nheaders;
    const struct crow_ev_header *headers; /* NHEADERS entries */
    const struct crow_ev_sink *sink; /* the body went to this sink (crow_ev_continue_sink; it is
                                        the caller's again), else NULL */
    int sink_errno;              /* with SINK: 0 when the whole body went to it, else the errno
                                    of its failed write or end (the connection closes after the
                                    reply) */
};

/* Where crow_ev_continue_sink sends a request body while it arrives, instead of the unit.
 * WRITE gets the (de-chunked) body in pieces, END once it is complete; each returns 0, or -1
 * with errno, which stops the body.  DROP frees ARG when the connection goes (or the body is
 * refused: too large, bad chunking) before the REQUEST unit hands the sink back. */
struct crow_ev_sink {
    int (*write)(void *arg, const char *data, size_t len);
    int (*end)(void *arg);
    void (*drop)(void *arg);
    void *arg;
};

/* A unit handed out by crow_ev_next.  DATA, PEER and HTTP.HEADERS stay valid until the next
 * crow_ev_next call or the reply that finishes the unit (PEER: until the connection's CLOSED
 * unit has been handed out, or until it closes). */
struct crow_ev_unit {
    uint64_t conn;          /* connection id (generation-tagged; fits a 62-bit fixnum) */
    int kind;               /* enum crow_ev_kind */
    int mode;               /* the connection's framing mode */
    int listener;           /* index of the listener that accepted it (order of crow_ev_listen);
                               -1 for an adopted descriptor */
    int eol_len;            /* LINE: terminator bytes after DATA (1 or 2) */
    const char *data;
    size_t len;
    const char *peer;       /* "1.2.3.4:5", "[::1]:5" or "unix", computed at accept */
    struct crow_ev_http http; /* REQUEST and HEAD; a TOO_LARGE or BAD unit refusing a body
                                 (its head was well-formed): the head's (DATA is the head,
                                 body_len 0); other units: zero (head_len 0) */
};

struct crow_admit; /* admit.h */

struct crow_ev_config {
    size_t max_connections;   /* open connections beyond which new ones are refused; 0 = no
                                 limit */
    const char *refusal;      /* written (best effort) to a refused connection, except on a
                                 TLS listener (it closes without a byte); copied */
    size_t refusal_len;
    const char *timeout_reply; /* written (best effort) before an expired connection closes */
    size_t timeout_reply_len;
    int head_first;           /* HTTP: a head with Expect: 100-continue, a chunked body, or a
                                 Content-Length above head_first_over is handed out as a HEAD
                                 unit first (the caller picks the body limit) */
    size_t head_first_over;
    int timeout_started_only; /* write timeout_reply only when some bytes of a unit arrived
                                 (the head deadline); an idle connection that began no unit
                                 is closed silently (HTTP: RFC 9112 section 9.5) */
    unsigned idle_ms;         /* no input awaited for this long: close (0 = never) */
    unsigned head_ms;         /* a unit started arriving and is not complete after this */
    unsigned write_ms;        /* queued output made no progress for this long */
    size_t read_size;         /* initial input buffer (bytes) */
    size_t max_line;          /* LINE: longest line, terminator excluded */
    size_t max_head;          /* HTTP: largest head, blank line included */
    size_t max_body;          /* HTTP: largest body (after de-chunking) */
    size_t max_raw;           /* RAW: largest unit */
    int notify_open;          /* hand out an OPEN unit for each accepted connection */
    int notify_close;         /* hand out a CLOSED unit for each connection that goes */
    int nodelay;              /* set TCP_NODELAY on accepted TCP connections */
    struct crow_admit *admit; /* optional admission table (admit.h), shared by the loops of a
                                 process and outliving them: each accepted connection enters
                                 it (a refusal gets the refusal bytes) and leaves it when it
                                 closes, whichever way; its per-address bandwidth buckets are
                                 the parents of the connections' own.  Adopted descriptors do
                                 not enter it. */
    uint64_t bandwidth_in;    /* bytes/s read per connection; 0 = unlimited (token bucket with
                                 a burst of a tenth of a second: a throttled connection is not
                                 read until a timer says its bucket has refilled; a unit the
                                 throttle slows down gets its head_ms deadline refreshed) */
    uint64_t bandwidth_out;   /* bytes/s written per connection (writev and sendfile); 0 =
                                 unlimited */
    unsigned linger_ms;       /* HTTP: a connection that closes while its client may still be
                                 sending (after an error unit, a sink's failure, a HEAD unit
                                 answered without its body, the head deadline's timeout_reply,
                                 or with input unread, such as pipelined requests) lingers
                                 once its answer is written:
                                 its write side is shut and its input read and discarded until
                                 the client's EOF, for at most this long and linger_max bytes,
                                 so the client reads the answer instead of a reset (nginx's
                                 lingering_close).  0 = close at once.  The connection's id is
                                 stale meanwhile (EBADF); its CLOSED unit comes at the end. */
    size_t linger_max;
    unsigned busy_poll_us;    /* after a busy stretch (at least 8 events since the loop last
                                 slept), poll for new events without sleeping for up to this
                                 many microseconds before sleeping in epoll_wait: a client
                                 that sends its next request within that time finds the loop
                                 awake and pays no wake-up (the kernel's busy_poll, in user
                                 space, for loopback and fast links).  Costs at most this
                                 much CPU per busy stretch, nothing when the load is light
                                 (a wake-up with a few events sleeps at once).  0 = off */
    const struct crow_allocator *allocator; /* NULL = default; copied */
};

struct crow_ev_stats {
    uint64_t accepted, open, closed, refused, timeouts, units, bytes_in, bytes_out;
};

/* Fills CFG with defaults: 1024 connections, 60 s idle, 30 s head, 60 s write, 4 KiB read
 * buffer, max_line 8 KiB, max_head 8 KiB, max_body 1 MiB, max_raw 64 KiB, TCP_NODELAY, no
 * notifications, no refusal or timeout bytes, lingering 5 s / 64 MiB.  Can't fail. */
void crow_ev_config_init(struct crow_ev_config *cfg);

/* Makes a loop (an epoll instance and an eventfd).  Returns NULL and sets errno (EINVAL for a
 * zero limit or read_size, or a bandwidth above CROW_THROTTLE_MAX_RATE; ENOMEM, or
 * epoll_create1's/eventfd's errno). */
struct crow_ev *crow_ev_new(const struct crow_ev_config *cfg);

/* Closes every connection and frees EV.  Listener descriptors stay open (the caller owns
 * them).  A NULL EV is ignored.  Can't fail. */
void crow_ev_destroy(struct crow_ev *ev);

/* Makes a non-blocking, close-on-exec TCP socket listening on HOST:PORT (numeric IPv4 or IPv6
 * address; PORT 0 = any) with SO_REUSEADDR, and SO_REUSEPORT with CROW_EV_REUSEPORT.  Returns
 * the descriptor, or -1 with errno set (EINVAL for an unparsable address, or the socket
 * call's errno); nothing is left open on failure. */
int crow_ev_tcp_listener(const char *host, int port, int flags, int backlog);

/* Accepts connections from the listening descriptor FD (made non-blocking) into EV, framed in
 * MODE; FLAGS may hold CROW_EV_EXCLUSIVE.  Returns the listener's index, or -1 with errno
 * set (EINVAL for a bad mode, ENOMEM, or epoll_ctl's errno); EV unchanged. */
int crow_ev_listen(struct crow_ev *ev, int fd, int mode, int flags);

/* As crow_ev_listen, for a TLS listener: each connection it accepts runs a TLS handshake
 * (inside its first reads) with server context CTX, which must outlive EV, and its units and
 * replies are plaintext; sendfile is done as pread + TLS write.  Returns the listener's index,
 * or -1 with errno (EINVAL for a NULL CTX, or as crow_ev_listen). */
struct crow_tls_ctx;
int crow_ev_listen_tls(struct crow_ev *ev, int fd, int mode, int flags, struct crow_tls_ctx *ctx);

/* Adopts the connected descriptor FD (made non-blocking; EV closes it from now on) as a
 * connection framed in MODE.  Returns its id, or 0 with errno set (EINVAL, ENOMEM or
 * epoll_ctl's errno); then FD is left open and EV unchanged. */
uint64_t crow_ev_adopt(struct crow_ev *ev, int fd, int mode);

/* Runs the loop (accepting, reading, framing, writing queued output, expiring timeouts) until
 * a unit is ready, crow_ev_wake was called, or TIMEOUT_MS passed (-1 = no limit).  Returns 1
 * with *UNIT filled, 0 on timeout or wake (UNIT->kind NONE), or -1 with errno set (epoll's
 * errno; EINTR is retried).  A connection with a unit out gets no further unit until a reply
 * without CROW_EV_MORE (or crow_ev_done) finishes it. */
int crow_ev_next(struct crow_ev *ev, struct crow_ev_unit *unit, int timeout_ms);

/* Writes the IOVCNT buffers to connection CONN with one writev; what the socket does not take
 * is copied and written when it becomes writable.  Finishes the connection's unit unless FLAGS
 * has CROW_EV_MORE; CROW_EV_CLOSE_AFTER closes it once all is written.  Returns 0, or -1 with
 * errno: EBADF for a closed or unknown id (a stale id after close included; nothing
 * happens), EINVAL for a negative IOVCNT (nothing happens); or ENOMEM (no room to queue the
 * rest), EPIPE, ECONNRESET (the peer has gone): the connection is then closed. */
int crow_ev_reply(struct crow_ev *ev, uint64_t conn, const struct iovec *iov, int iovcnt,
                  int flags);

/* Queues LEN bytes of file FD from offset OFF behind what is queued (typically after a header
 * sent with CROW_EV_MORE) and sends them with sendfile.  FD is duplicated (the caller may
 * close its copy at once).  FLAGS as for crow_ev_reply.  Returns 0, or -1 with errno as for
 * crow_ev_reply; on dup's errno (EMFILE) or EIO (the file is shorter than LEN) the connection
 * is closed. */
int crow_ev_sendfile(struct crow_ev *ev, uint64_t conn, int fd, off_t off, size_t len,
                     int flags);

/* Finishes the connection's unit without output (FLAGS: CROW_EV_CLOSE_AFTER).  Returns 0, or
 * -1 with errno EBADF for a closed or unknown id. */
int crow_ev_done(struct crow_ev *ev, uint64_t conn, int flags);

/* Lets CONN's HEAD unit's body come, at most MAX_BODY bytes (capped at the config's max_body;
 * a larger Content-Length or de-chunked body gives a TOO_LARGE unit): the 100 Continue is sent
 * when the client asked for it, and the REQUEST unit (head + body) follows.  Returns 0, or -1
 * with errno EBADF (stale connection) or EINVAL (its unit is not a HEAD unit). */
int crow_ev_continue(struct crow_ev *ev, uint64_t conn, size_t max_body);

/* As crow_ev_continue, but the body goes to SINK while it arrives (the buffer keeps the head
 * only; the connection reads at most 64 KiB ahead; the head_ms deadline restarts whenever some
 * of the body arrives, so it bounds the pauses, not the whole upload): the REQUEST unit follows
 * with body_len 0 and http.sink / http.sink_errno set, or a TOO_LARGE / BAD unit after the
 * sink's DROP.  SINK (and ARG) must live until then.  Returns 0, or -1 with errno EBADF (stale
 * connection) or EINVAL (not a HEAD unit, or an incomplete SINK); the sink is not used then. */
int crow_ev_continue_sink(struct crow_ev *ev, uint64_t conn, size_t max_body,
                          const struct crow_ev_sink *sink);

/* Closes connection CONN now, dropping queued output.  Returns 0, or -1 with errno EBADF. */
int crow_ev_close(struct crow_ev *ev, uint64_t conn);

/* Switches connection CONN's framing to MODE for its next units (e.g. LINE to RAW for an
 * SMTP body).  Returns 0, or -1 with errno EBADF or EINVAL (bad mode). */
int crow_ev_set_mode(struct crow_ev *ev, uint64_t conn, int mode);

/* Makes EV's crow_ev_next return 0 promptly (now, or at its next call).  Callable from any
 * thread and from a signal handler.  Returns 0, or -1 with write's errno. */
int crow_ev_wake(struct crow_ev *ev);

/* The current time as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT", 29 characters),
 * refreshed at most once a second; valid until the next call.  Can't fail. */
const char *crow_ev_date(struct crow_ev *ev);

/* A C answerer: called by crow_ev_next with each REQUEST unit before it would be handed out.
 * Returning 1 means it finished the unit itself (crow_ev_reply, crow_ev_sendfile...) and
 * crow_ev_next goes on with other input; 0 hands the unit out as usual.  It may not call
 * crow_ev_next. */
typedef int (*crow_ev_answer_fn)(void *arg, struct crow_ev *ev, const struct crow_ev_unit *u);

/* Installs FN with ARG as EV's answerer (FN NULL: none), replacing the previous one, whose
 * FREE_ARG (when not NULL) is called with its ARG, as it is by crow_ev_destroy.  Can't
 * fail. */
void crow_ev_set_answerer(struct crow_ev *ev, crow_ev_answer_fn fn, void *arg,
                          void (*free_arg)(void *));

/* Returns the ARG of EV's answerer, or NULL.  Can't fail. */
void *crow_ev_answerer_arg(const struct crow_ev *ev);

/* Fills *ST with EV's counters.  Can't fail. */
void crow_ev_stats(const struct crow_ev *ev, struct crow_ev_stats *st);

/* Stops accepting: removes every listener from EV (the descriptors stay open: the caller owns
 * them), so a draining process serves its open connections while another accepts.  Units of
 * connections accepted earlier keep their listener index.  Can't fail. */
void crow_ev_unlisten(struct crow_ev *ev);

#endif
