/* fcache.h — per-loop table of whole-file answers that Lisp has decided, replayed by the C
 * event loop for the same plain GET/HEAD requests without calling Lisp. */
#ifndef CROW_FCACHE_H
#define CROW_FCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "evloop.h"

/* One struct crow_fcache per event loop (evloop.h), used by that loop's thread only, except
 * crow_fcache_invalidate, which any thread may call. */
struct crow_fcache;

/* The bytes and rules Lisp fixes once (all copied by crow_fcache_new).  A response is
 * PREFIX, the Date value (crow_ev_date), the entry's HEAD, the connection line (CLOSE_LINE
 * when the connection closes after it, KEEP_LINE when an HTTP/1.0 client keeps it, nothing
 * otherwise), END, then the file's bytes (none for HEAD). */
struct crow_fcache_config {
    const char *prefix;        /* "HTTP/1.1 200 OK\r\nServer: ...\r\nDate: " */
    const char *close_line;    /* "Connection: close\r\n" */
    const char *keep_line;     /* "Connection: keep-alive\r\n" */
    const char *end;           /* "\r\n" */
    const char *defer;         /* header names (any case) that send a request to Lisp,
                                  separated by '\n' (conditional requests, ranges) */
    unsigned max_headers;      /* a request with more header fields goes to Lisp */
    size_t max_entries;        /* the table is emptied when it would hold more */
    size_t max_bytes;          /* ... or when the in-memory file bytes would pass this */
    size_t max_fds;            /* descriptor entries held at most (further ones are refused:
                                  the loop's connections need descriptors too); 0 = none */
};

/* What Lisp decided for the request it just answered: the file whose bytes are the body. */
struct crow_fcache_file {
    const char *path;          /* revalidated with stat(2) at most once a second (identity
                                  INO, SIZE, MTIME seconds): NULL for bytes that never change */
    int fd;                    /* read with sendfile when DATA is NULL (duplicated) */
    uint64_t size, ino;
    int64_t mtime;
    const char *head;          /* the head's bytes after the Date value, up to the connection
                                  line: "\r\nContent-Type: ...\r\n...\r\n" */
    size_t head_len;
    const void *data;          /* the whole file in memory (copied), or NULL */
};

/* Makes an empty table.  Returns NULL and sets errno (EINVAL: a NULL string in CFG or a zero
 * limit; ENOMEM). */
struct crow_fcache *crow_fcache_new(const struct crow_fcache_config *cfg);

/* Frees FC, closing its descriptors.  NULL is ignored.  Can't fail. */
void crow_fcache_destroy(struct crow_fcache *fc);

/* Remembers that requests with the same Host value and path as the unit U (the REQUEST unit FC
 * last saw through crow_fcache_answer; the key was taken then, so U's bytes may already be
 * gone with the reply) are answered with the whole file F, status 200.
 * Returns 0, or -1 with errno: EINVAL (U's target is not a plain path — percent escapes,
 * bytes outside printable ASCII, `.` or `..` segments — or U has not exactly one Host field,
 * or the key is too long, or U is not the last unit FC saw), ENOSPC (a descriptor entry beyond max_fds), ESTALE (crow_fcache_invalidate was called since U was framed: the
 * decision may rest on what changed), EMFILE/ENFILE (dup), ENOMEM.  FC unchanged on error. */
int crow_fcache_put(struct crow_fcache *fc, const struct crow_ev_unit *u,
                    const struct crow_fcache_file *f);

/* The loop's answerer (crow_ev_set_answerer, ARG = the fcache): answers the REQUEST unit U of
 * loop EV itself when it is a GET or HEAD without body, with exactly one Host, no header named
 * in the config's defer list, at most max_headers fields, a plain path, and an entry for its
 * Host and path that is still valid (revalidated with stat(2) once a second; a changed file's
 * entry is dropped).  Returns 1 when it answered (the reply finished the unit, or the
 * connection has gone), 0 when Lisp must.  Can't fail otherwise. */
int crow_fcache_answer(void *arg, struct crow_ev *ev, const struct crow_ev_unit *u);

/* Makes FC the answerer of loop EV (crow_ev_set_answerer), which then owns it: it is
 * destroyed with EV or when another answerer replaces it.  Can't fail. */
void crow_fcache_attach(struct crow_fcache *fc, struct crow_ev *ev);

/* Empties every table at its next use, e.g. after routes or vhosts changed.  Callable from
 * any thread.  Can't fail. */
void crow_fcache_invalidate(void);

/* Counters: entries, bytes held, descriptors held, answers given, requests passed to Lisp.
 * Can't fail. */
struct crow_fcache_stats {
    uint64_t entries, bytes, fds, hits, misses;
};
void crow_fcache_stats(const struct crow_fcache *fc, struct crow_fcache_stats *st);

#endif
