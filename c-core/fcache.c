/* fcache.c — per-loop table of whole-file answers that Lisp has decided, replayed by the C
 * event loop for the same plain GET/HEAD requests without calling Lisp.
 *
 * Design: C moves bytes, Lisp makes decisions.  Lisp answers a static file request the
 * first time (vhost lookup, routes, root confinement with realpath, media type, validators)
 * and, when its answer was the whole file with status 200, records it here under the
 * request's raw Host value and path ("host\npath").  The loop's answerer hook
 * (crow_ev_set_answerer) then replays that answer for later requests with the same key:
 * only requests whose outcome cannot differ qualify — GET or HEAD, no body, exactly one
 * Host, a plain path (the same test as the Lisp side's: no escapes, printable ASCII, no dot
 * segment), no conditional or range header (the defer list), not too many fields; anything
 * else goes to Lisp.  What could change the decision is covered two ways: the file itself is
 * re-stat'ed at most once a second (the Lisp open-file cache's own interval) and its entry
 * dropped when its identity (inode, size, mtime) moved; everything else (routes, vhosts)
 * bumps a process-wide generation with crow_fcache_invalidate, which empties each table at
 * its next use and makes a put for a request framed before the bump fail (ESTALE).  The
 * table holds copies only (head bytes, small files' bytes, a dup of the descriptor), never
 * Lisp objects, and is bounded in entries and bytes: past a bound it is emptied, as the Lisp
 * cache is.  One table per loop, used by its thread only: no locks on the hot path. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "crow.h"
#include "fcache.h"
#include "hash.h"

#define KEY_MAX 1024

struct fentry {
    char *path;          /* NULL: never revalidated */
    int fd;              /* -1 when DATA holds the bytes */
    uint64_t size, ino;
    int64_t mtime;
    time_t checked;      /* the second of the last stat */
    char *head;
    size_t head_len;
    char *data;          /* NULL: sendfile from FD */
};

struct crow_fcache {
    struct crow_hash *h;
    char *prefix, *close_line, *keep_line, *end, *defer;
    size_t prefix_len, close_len, keep_len, end_len;
    unsigned max_headers;
    size_t max_entries, max_bytes, bytes, max_fds, fds;
    unsigned gen;        /* the generation the table's entries belong to */
    unsigned unit_gen;   /* the generation current when the last unit was seen */
    uint64_t key_conn;   /* the connection of the last unit seen, 0 when it had no key */
    size_t key_len;
    char key[KEY_MAX];   /* its key: the unit's bytes are gone once Lisp has replied */
    uint64_t hits, misses;
};

static atomic_uint generation;

void crow_fcache_invalidate(void)
{
    atomic_fetch_add(&generation, 1);
}

static char *dup_str(const char *s, size_t *len)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d)
        memcpy(d, s, n + 1);
    if (len)
        *len = n;
    return d;
}

static void entry_free(struct crow_fcache *fc, struct fentry *e)
{
    if (!e)
        return;
    if (e->fd >= 0) {
        close(e->fd);
        fc->fds--;
    }
    free(e->path);
    free(e->head);
    free(e->data);
    free(e);
}

static void flush(struct crow_fcache *fc)
{
    struct crow_hash_iter it;
    struct crow_hash_entry he;
    crow_hash_iter_init(fc->h, &it);
    while (crow_hash_iter_next(&it, &he)) {
        entry_free(fc, he.value);
        crow_hash_iter_del(&it);
    }
    fc->bytes = 0;
}

struct crow_fcache *crow_fcache_new(const struct crow_fcache_config *cfg)
{
    if (!cfg || !cfg->prefix || !cfg->close_line || !cfg->keep_line || !cfg->end ||
        !cfg->defer || !cfg->max_entries || !cfg->max_bytes) {
        errno = EINVAL;
        return NULL;
    }
    struct crow_fcache *fc = calloc(1, sizeof *fc);
    if (!fc)
        return NULL;
    struct crow_hash_options o = {.kind = CROW_HASH_BYTES, .flags = CROW_HASH_COPY_KEYS};
    if (!(fc->h = crow_hash_new(&o)) || !(fc->prefix = dup_str(cfg->prefix, &fc->prefix_len)) ||
        !(fc->close_line = dup_str(cfg->close_line, &fc->close_len)) ||
        !(fc->keep_line = dup_str(cfg->keep_line, &fc->keep_len)) ||
        !(fc->end = dup_str(cfg->end, &fc->end_len)) || !(fc->defer = dup_str(cfg->defer, NULL))) {
        crow_fcache_destroy(fc);
        errno = ENOMEM;
        return NULL;
    }
    fc->max_headers = cfg->max_headers;
    fc->max_entries = cfg->max_entries;
    fc->max_bytes = cfg->max_bytes;
    fc->max_fds = cfg->max_fds;
    fc->gen = fc->unit_gen = atomic_load(&generation);
    return fc;
}

void crow_fcache_destroy(struct crow_fcache *fc)
{
    if (!fc)
        return;
    if (fc->h) {
        flush(fc);
        crow_hash_free(fc->h);
    }
    free(fc->prefix);
    free(fc->close_line);
    free(fc->keep_line);
    free(fc->end);
    free(fc->defer);
    free(fc);
}

/* True when NAME (LEN bytes) is one of the '\n'-separated names of LIST, ASCII case
 * ignored. */
static int listed(const char *list, const char *name, size_t len)
{
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == len && !strncasecmp(p, name, len))
            return 1;
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

/* Writes U's key "host\npath" into BUF.  Returns its length, or 0 when U does not qualify
 * (not exactly one Host; target not a plain path; too long).  *DEFERRED tells whether a
 * header named in DEFER is present. */
static size_t make_key(const struct crow_ev_unit *u, const char *defer, char *buf, int *deferred)
{
    const struct crow_ev_http *h = &u->http;
    const char *host = NULL;
    size_t hlen = 0;
    int hosts = 0;
    for (uint32_t i = 0; i < h->nheaders; i++) {
        const struct crow_ev_header *f = &h->headers[i];
        const char *name = u->data + f->name_off;
        if (f->name_len == 4 && !strncasecmp(name, "host", 4)) {
            hosts++;
            host = u->data + f->value_off;
            hlen = f->value_len;
        } else if (!*deferred && listed(defer, name, f->name_len)) {
            *deferred = 1;
        }
    }
    if (hosts != 1)
        return 0;
    const unsigned char *t = (const unsigned char *)u->data + h->target_off;
    uint32_t tl = h->target_len, pl;
    if (tl == 0 || t[0] != '/')
        return 0;
    for (pl = 0; pl < tl && t[pl] != '?'; pl++) {
        unsigned char ch = t[pl];
        if (ch == '%' || ch < 0x21 || ch > 0x7e)
            return 0;
        if (ch == '.' && t[pl - 1] == '/') {
            uint32_t k = pl + 1;
            if (k < tl && t[k] == '.')
                k++;
            if (k == tl || t[k] == '/' || t[k] == '?')
                return 0;
        }
    }
    if (hlen + 1 + pl > KEY_MAX)
        return 0;
    memcpy(buf, host, hlen);
    buf[hlen] = '\n';
    memcpy(buf + hlen + 1, t, pl);
    return hlen + 1 + pl;
}

int crow_fcache_put(struct crow_fcache *fc, const struct crow_ev_unit *u,
                    const struct crow_fcache_file *f)
{
    if (!fc || !u || !f || u->kind != CROW_EV_REQUEST || !f->head ||
        (!f->data && f->fd < 0) || u->conn != fc->key_conn || !fc->key_len) {
        errno = EINVAL;
        return -1;
    }
    const char *key = fc->key;
    size_t klen = fc->key_len;
    if (fc->unit_gen != atomic_load(&generation)) {
        errno = ESTALE;
        return -1;
    }
    if (fc->gen != fc->unit_gen) {
        flush(fc);
        fc->gen = fc->unit_gen;
    }
    size_t dbytes = f->data ? (size_t)f->size : 0;
    if (dbytes > fc->max_bytes) {
        errno = ENOMEM;
        return -1;
    }
    void *prev = NULL;
    if (!f->data && fc->fds >= fc->max_fds &&
        !(crow_hash_get(fc->h, key, klen, &prev) == 1 && ((struct fentry *)prev)->fd >= 0)) {
        errno = ENOSPC; /* (replacing a descriptor entry is fine) */
        return -1;
    }
    struct fentry *e = calloc(1, sizeof *e);
    if (!e)
        return -1;
    e->fd = -1;
    e->size = f->size;
    e->ino = f->ino;
    e->mtime = f->mtime;
    e->head_len = f->head_len;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    e->checked = ts.tv_sec;
    int err = ENOMEM;
    if ((f->path && !(e->path = dup_str(f->path, NULL))) || !(e->head = malloc(f->head_len + 1)))
        goto fail;
    memcpy(e->head, f->head, f->head_len);
    if (f->data) {
        if (!(e->data = malloc(dbytes + 1)))
            goto fail;
        memcpy(e->data, f->data, dbytes);
    } else if ((e->fd = fcntl(f->fd, F_DUPFD_CLOEXEC, 0)) < 0) {
        err = errno;
        goto fail;
    } else {
        fc->fds++;
    }
    if (crow_hash_count(fc->h) >= fc->max_entries || fc->bytes + dbytes > fc->max_bytes)
        flush(fc);
    void *old = NULL;
    if (crow_hash_put(fc->h, key, klen, e, &old) < 0) {
        err = errno;
        goto fail;
    }
    if (old) {
        struct fentry *o = old;
        fc->bytes -= o->data ? o->size : 0;
        entry_free(fc, o);
    }
    fc->bytes += dbytes;
    return 0;
fail:
    entry_free(fc, e);
    errno = err;
    return -1;
}

/* A request that may be replayed: GET or HEAD (method in *HEAD), no body, few fields. */
static int qualifies(const struct crow_fcache *fc, const struct crow_ev_unit *u, int *head)
{
    const struct crow_ev_http *h = &u->http;
    const char *m = u->data + h->method_off;
    if (h->method_len == 3 && !memcmp(m, "GET", 3))
        *head = 0;
    else if (h->method_len == 4 && !memcmp(m, "HEAD", 4))
        *head = 1;
    else
        return 0;
    return h->body_len == 0 && !h->chunked && h->content_length < 0 &&
           h->nheaders <= fc->max_headers;
}

int crow_fcache_answer(void *arg, struct crow_ev *ev, const struct crow_ev_unit *u)
{
    struct crow_fcache *fc = arg;
    unsigned g = atomic_load(&generation);
    fc->unit_gen = g;
    if (g != fc->gen) {
        flush(fc);
        fc->gen = g;
    }
    int head, deferred = 0;
    fc->key_conn = u->conn;
    fc->key_len = u->kind == CROW_EV_REQUEST ? make_key(u, fc->defer, fc->key, &deferred) : 0;
    const char *key = fc->key;
    size_t klen = fc->key_len;
    void *v;
    if (!klen || deferred || !crow_hash_count(fc->h) || !qualifies(fc, u, &head) ||
        crow_hash_get(fc->h, key, klen, &v) != 1) {
        fc->misses++;
        return 0;
    }
    struct fentry *e = v;
    if (e->path) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME_COARSE, &ts);
        if (ts.tv_sec != e->checked) {
            struct stat st;
            if (CROW_RETRY(stat(e->path, &st)) < 0 || (uint64_t)st.st_ino != e->ino ||
                (uint64_t)st.st_size != e->size || (int64_t)st.st_mtime != e->mtime) {
                crow_hash_del(fc->h, key, klen, NULL);
                fc->bytes -= e->data ? e->size : 0;
                entry_free(fc, e);
                fc->misses++;
                return 0;
            }
            e->checked = ts.tv_sec;
        }
    }
    int close_after = !u->http.keep_alive;
    struct iovec iov[6];
    iov[0].iov_base = fc->prefix;
    iov[0].iov_len = fc->prefix_len;
    iov[1].iov_base = (void *)crow_ev_date(ev);
    iov[1].iov_len = strlen(iov[1].iov_base);
    iov[2].iov_base = e->head;
    iov[2].iov_len = e->head_len;
    iov[3].iov_base = close_after ? fc->close_line : u->http.version == 10 ? fc->keep_line : "";
    iov[3].iov_len = close_after ? fc->close_len : u->http.version == 10 ? fc->keep_len : 0;
    iov[4].iov_base = fc->end;
    iov[4].iov_len = fc->end_len;
    int n = 5, flags = close_after ? CROW_EV_CLOSE_AFTER : 0;
    fc->hits++;
    if (head || e->size == 0) {
        crow_ev_reply(ev, u->conn, iov, n, flags);
    } else if (e->data) {
        iov[n].iov_base = e->data;
        iov[n++].iov_len = e->size;
        crow_ev_reply(ev, u->conn, iov, n, flags);
    } else if (crow_ev_reply(ev, u->conn, iov, n, CROW_EV_MORE | CROW_EV_CORK) == 0) {
        crow_ev_sendfile(ev, u->conn, e->fd, 0, e->size, flags);
    }
    return 1;
}

static void destroy_arg(void *fc)
{
    crow_fcache_destroy(fc);
}

void crow_fcache_attach(struct crow_fcache *fc, struct crow_ev *ev)
{
    crow_ev_set_answerer(ev, crow_fcache_answer, fc, destroy_arg);
}

void crow_fcache_stats(const struct crow_fcache *fc, struct crow_fcache_stats *st)
{
    st->entries = crow_hash_count(fc->h);
    st->bytes = fc->bytes;
    st->fds = fc->fds;
    st->hits = fc->hits;
    st->misses = fc->misses;
}
