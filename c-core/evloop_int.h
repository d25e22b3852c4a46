/* evloop_int.h — the event loop's private parts, shared by its files (not API: never installed).
 *
 * The loop is one module in five files: evloop.c (the connection table, the loop, set-up),
 * evloop_io.c (reading and writing a connection: TLS-aware, cut by the bandwidth buckets;
 * crow_ev_reply, crow_ev_sendfile), evloop_frame.c (units: lines, raw reads, HTTP heads and
 * bodies), evloop_sink.c (head-first bodies: crow_ev_continue, the body sink) and
 * evloop_limits.c (deadlines, admission at accept, bandwidth, lingering close).  Functions
 * shared between the files are declared here; the link namespace is shared with ECL and the
 * Boehm GC, so each is linked as crow_evi_NAME (and hidden from the shared library's dynamic
 * symbols) while the code calls it by its short name.  Small helpers on the per-request path
 * are static inline here so the split costs no calls. */
#ifndef CROW_EVLOOP_INT_H
#define CROW_EVLOOP_INT_H

#include <stdatomic.h>
#include <sys/epoll.h>
#include <time.h>

#include "admit.h"
#include "crow.h"
#include "evloop.h"
#include "list.h"
#include "pool.h"
#include "throttle.h"
#include "timer.h"
#include "tls.h"

enum { TC_NONE, TC_IDLE, TC_HEAD, TC_WRITE, TC_LINGER, TC_N };
enum { HS_HEAD, HS_LENGTH, HS_CHUNKED };
enum { CS_SIZE, CS_DATA, CS_DATA_END, CS_TRAILER };

#define TAG_EVENTFD  (1ULL << 62)
#define TAG_LISTENER (1ULL << 63)
#define GEN_MASK     0x3fffffffu
#define NO_SLOT      UINT32_MAX
#define CHUNK_LINE_MAX 1024
#define BATCH        64
#define SPARE_BUFS   16
#define SINK_SPAN    65536 /* a body going to a sink is read at most this far ahead */
#define LIMIT_IOV    64

struct outbuf {
    struct crow_list_node node;
    int fd;          /* -1: memory data[off..len); else a file: fleft bytes from foff */
    size_t off, len;
    off_t foff;
    size_t fleft;
    char data[];
};

struct conn {
    struct crow_list_node tnode;  /* in ev->tl[tclass] */
    struct crow_list_node rnode;  /* in ev->ready, or ev->closed for a zombie */
    struct crow_list outq;
    int64_t deadline;
    char *buf;
    size_t len, cap, capmax;
    size_t ulen;                  /* bytes of the unit out with the caller */
    size_t scan;                  /* where the terminator search resumes */
    size_t head_len, need, cdst, chunk_left;
    int fd, listener;
    uint32_t idx, gen;
    uint8_t mode, tclass, hstate, cstate;
    unsigned busy : 1, ready : 1, can_read : 1, can_write : 1, eof : 1, hup : 1,
        close_after : 1, zombie : 1, discarding : 1, open_pending : 1,
        expect : 1, sent_continue : 1, admitted : 1, rthr : 1, wthr : 1, head_unit : 1,
        tcp : 1, corked : 1,
        linger : 1, lingering : 1;
    size_t max_body;              /* this request's body limit (config, or crow_ev_continue) */
    const struct crow_ev_sink *sink; /* crow_ev_continue_sink: the body goes there */
    uint64_t sunk;                /* body bytes the sink has taken */
    uint64_t lingered;            /* lingering: input bytes read and discarded */
    char peer[CROW_EV_PEER_MAX];
    struct crow_admit_peer *apeer; /* its entry in cfg.admit while admitted */
    struct crow_throttle tin, tout; /* bandwidth_in/_out (parents: the address's buckets) */
    struct crow_timer tt;          /* throttled: when its buckets have refilled */
    struct crow_tls *tls;          /* a listen-tls connection; NULL when plain */
};

struct listener {
    int fd, mode, flags;
    struct crow_tls_ctx *tls;      /* crow_ev_listen_tls; NULL when plain */
};

struct slot {
    struct conn *c;
    uint32_t gen, next_free;
};

struct crow_ev {
    struct crow_ev_config cfg;
    struct crow_allocator alloc;
    char *refusal, *timeout_reply;
    int epfd, efd;
    struct listener *lst;
    int nlst, paused;
    int64_t pause_until;
    struct slot *slots;
    uint32_t nslots, free_head;
    struct crow_pool *pool;
    struct crow_list ready, closed, tl[TC_N];
    unsigned tms[TC_N];
    int64_t now;
    atomic_int wake;
    struct crow_ev_stats st;
    struct conn *last_zombie;
    struct crow_ev_http http;
    struct crow_ev_header hdrs[CROW_EV_MAX_HEADERS];
    int throttle_in, throttle_out; /* some connection may be limited in that direction */
    struct crow_timer_wheel wheel; /* throttle timers (1 ms ticks) */
    time_t date_sec;
    char date[40];
    int nspare;                    /* input buffers of read_size kept for reuse */
    char *spare[SPARE_BUFS];
    crow_ev_answer_fn answer;      /* crow_ev_set_answerer */
    void *answer_arg;
    void (*answer_free)(void *);
    unsigned busy_events;          /* events since the loop last slept (busy_poll_us) */
    struct epoll_event evs[BATCH];
};

/* ------------------------------------------------------------------ inline helpers */

static inline int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t conn_id(const struct conn *c)
{
    return (uint64_t)c->gen << 32 | c->idx;
}

/* The open connection named ID (lingering ones included), or NULL. */
static inline struct conn *conn_at(const struct crow_ev *ev, uint64_t id)
{
    uint32_t idx = (uint32_t)id, gen = (uint32_t)(id >> 32);
    if ((id & (TAG_EVENTFD | TAG_LISTENER)) || idx >= ev->nslots || ev->slots[idx].gen != gen)
        return NULL;
    struct conn *c = ev->slots[idx].c;
    return c && !c->zombie ? c : NULL;
}

/* The live connection named ID, or NULL: a lingering one is gone for the caller. */
static inline struct conn *lookup(const struct crow_ev *ev, uint64_t id)
{
    struct conn *c = conn_at(ev, id);
    return c && !c->lingering ? c : NULL;
}

static inline void make_ready(struct crow_ev *ev, struct conn *c)
{
    if (!c->ready && !c->busy) {
        c->ready = 1;
        crow_list_insert_tail(&ev->ready, &c->rnode);
    }
}

static inline void fill_unit(const struct conn *c, struct crow_ev_unit *u, int kind,
                             const char *data, size_t len)
{
    u->conn = conn_id(c);
    u->kind = kind;
    u->mode = c->mode;
    u->listener = c->listener;
    u->eol_len = 0;
    u->data = data;
    u->len = len;
    u->peer = c->peer;
}

static inline int limited(const struct crow_ev *ev, int dir)
{
    return dir == CROW_ADMIT_OUT ? ev->throttle_out : ev->throttle_in;
}

static inline struct crow_throttle *bucket(struct conn *c, int dir)
{
    return dir == CROW_ADMIT_OUT ? &c->tout : &c->tin;
}

/* Returns the bytes (up to WANT) C may move in direction DIR now: WANT when unlimited. */
static inline size_t bw_take(struct crow_ev *ev, struct conn *c, int dir, size_t want)
{
    if (!limited(ev, dir))
        return want;
    return crow_admit_bw_take(ev->cfg.admit, c->apeer, dir, bucket(c, dir), mono_ns(), want);
}

/* Gives back N bytes taken by bw_take and not moved. */
static inline void bw_refund(struct crow_ev *ev, struct conn *c, int dir, size_t n)
{
    if (n && limited(ev, dir))
        crow_admit_bw_refund(ev->cfg.admit, c->apeer, dir, bucket(c, dir), n);
}

/* Puts C in the timer list its state calls for (evloop_limits.c's deadlines); RESET restarts
 * the clock even when the class is unchanged (progress on a stalled write). */
static inline void conn_timer(struct crow_ev *ev, struct conn *c, int reset)
{
    int tc;
    if (c->lingering)
        tc = TC_LINGER;
    else if (!CROW_LIST_EMPTY(&c->outq) && !c->can_write)
        tc = TC_WRITE;
    else if (c->busy)
        tc = TC_NONE;
    else if (c->len > 0)
        tc = TC_HEAD;
    else
        tc = TC_IDLE;
    if (tc != TC_NONE && ev->tms[tc] == 0)
        tc = TC_NONE;
    if (tc == c->tclass && !reset)
        return;
    if (c->tclass != TC_NONE)
        crow_list_remove(&ev->tl[c->tclass], &c->tnode);
    c->tclass = (uint8_t)tc;
    if (tc != TC_NONE) {
        c->deadline = ev->now + ev->tms[tc];
        crow_list_insert_tail(&ev->tl[tc], &c->tnode);
    }
}

/* ------------------------------------------------------------------ shared functions */

#define EVI __attribute__((visibility("hidden")))

#define conn_close      crow_evi_conn_close
#define unit_finish     crow_evi_unit_finish
#define finish_flags    crow_evi_finish_flags
#define buf_release     crow_evi_buf_release
#define conn_read       crow_evi_conn_read
#define conn_flush      crow_evi_conn_flush
#define conn_send       crow_evi_conn_send
#define set_cork        crow_evi_set_cork
#define expire          crow_evi_expire
#define admit_accepted  crow_evi_admit_accepted
#define bw_block        crow_evi_bw_block
#define throttle_fire   crow_evi_throttle_fire
#define limit_iov       crow_evi_limit_iov
#define close_or_linger crow_evi_close_or_linger
#define linger_read     crow_evi_linger_read
#define frame           crow_evi_frame
#define body_error      crow_evi_body_error
#define parse_head      crow_evi_parse_head
#define dechunk         crow_evi_dechunk
#define send_continue   crow_evi_send_continue
#define sink_drop       crow_evi_sink_drop
#define frame_sink      crow_evi_frame_sink

/* evloop.c */
/* Closes C (every close path goes through here): its sink dropped, its admission entry left,
 * its slot freed or, with notify_close, kept as a zombie until its CLOSED unit is out. */
EVI void conn_close(struct crow_ev *ev, struct conn *c);
/* The caller is done with C's unit: drop its bytes and make C eligible for the next. */
EVI void unit_finish(struct crow_ev *ev, struct conn *c);
/* Applies a reply's FLAGS to C (closing after, finishing the unit).  Returns 0. */
EVI int finish_flags(struct crow_ev *ev, struct conn *c, int flags);
/* Gives C's input buffer back while it holds nothing (an idle connection keeps none). */
EVI void buf_release(struct crow_ev *ev, struct conn *c);

/* evloop_io.c */
/* Reads what fits (growing the buffer only while no unit is out).  Returns 0, or -1 when
 * the connection was closed (read error or no memory). */
EVI int conn_read(struct crow_ev *ev, struct conn *c);
/* Writes queued output until done or EAGAIN.  Returns 0, or -1 with errno set when the
 * connection was closed (write error). */
EVI int conn_flush(struct crow_ev *ev, struct conn *c);
/* Writes IOV now as far as the socket takes it and queues the rest.  Returns 0, or -1 with
 * errno set when the connection was closed. */
EVI int conn_send(struct crow_ev *ev, struct conn *c, const struct iovec *iov, int iovcnt);
/* TCP_CORK on or off (best effort: a failure only costs segment sizes). */
EVI void set_cork(struct conn *c, int on);

/* evloop_limits.c */
/* Closes the connections whose deadline has passed (a timeout reply first, as configured). */
EVI void expire(struct crow_ev *ev);

/* Some connection's deadline has passed: expire has work. */
static inline int expire_due(const struct crow_ev *ev)
{
    for (int tc = TC_IDLE; tc < TC_N; tc++)
        if (ev->tl[tc].first &&
            crow_list_entry(ev->tl[tc].first, struct conn, tnode)->deadline <= ev->now)
            return 1;
    return 0;
}
/* Admission of the connection FD just accepted on listener L from SA: returns 1 (admitted;
 * *PEER its admission entry, or NULL) or 0 (refused: answered as configured and closed). */
EVI int admit_accepted(struct crow_ev *ev, const struct listener *l, int fd,
                       const struct sockaddr *sa, socklen_t sl, struct crow_admit_peer **peer);
/* C may not move bytes in DIR now: stops it until its timer says WANT bytes can move. */
EVI void bw_block(struct crow_ev *ev, struct conn *c, int dir, size_t want);
/* C's throttle timer: its buckets may have refilled. */
EVI void throttle_fire(struct crow_timer *t, void *arg);
/* Copies IOV[0..CNT) into OUT (at most LIMIT_IOV entries) cut to MAX bytes.  Returns the
 * entries used; *ASKED gets their bytes. */
EVI int limit_iov(const struct iovec *iov, int cnt, size_t max, struct iovec *out,
                  size_t *asked);

/* C's output is all written and it is to close: closes it, or, when its client may still be
 * sending (C->linger, or an HTTP client with input unread), shuts its write side and lingers
 * (config linger_ms).  Returns 0 when C
 * lingers, -1 when it was closed. */
EVI int close_or_linger(struct crow_ev *ev, struct conn *c);
/* Reads and discards a lingering C's input until EAGAIN; closes it at EOF, on an error or
 * past linger_max bytes.  Returns 0, or -1 when it was closed. */
EVI int linger_read(struct crow_ev *ev, struct conn *c);

/* evloop_frame.c */
/* Frames C's next unit into *U.  Returns 1, 0 (incomplete), or -1 (C was closed). */
EVI int frame(struct crow_ev *ev, struct conn *c, struct crow_ev_unit *u);
/* An HTTP error unit KIND refusing C's body (C->head_len bytes of head parsed): shows the
 * head, with its facts in U->http (body_len 0); C closes after the reply.  Returns 1. */
EVI int body_error(struct crow_ev *ev, struct conn *c, struct crow_ev_unit *u, int kind);
/* Parses the head B[0..END) (END just past its blank line) into H and ev->hdrs.  Returns 0,
 * CROW_EV_BAD or CROW_EV_TOO_LONG (too many headers). */
EVI int parse_head(struct crow_ev *ev, const char *b, size_t end, struct crow_ev_http *h);
/* De-chunks C's body in place from c->cdst.  Returns 1 when the body is complete (the unit is
 * buf[0..cdst), what follows it moved down to cdst), 0 for more input, CROW_EV_BAD or
 * CROW_EV_TOO_LARGE. */
EVI int dechunk(struct conn *c);
/* Sends "100 Continue" once, when C's client asked for it.  Returns 0, or -1 (C closed). */
EVI int send_continue(struct crow_ev *ev, struct conn *c);

/* evloop_sink.c */
/* C's body sink (if any) is not handed back to the caller: free it. */
EVI void sink_drop(struct conn *c);
/* A body going to C's sink: returns as frame. */
EVI int frame_sink(struct crow_ev *ev, struct conn *c, struct crow_ev_unit *u);

#endif
