/* mpart.c — a streaming multipart/form-data scanner (RFC 7578 over RFC 2046).
 *
 * Design: the body is searched for the delimiter D = CRLF "--" boundary, which counts only
 * when followed by CRLF (a part follows) or "--" (the close delimiter), so that a line that
 * merely starts like the boundary stays data.  The scanner never needs the whole body: bytes
 * that may be the beginning of a delimiter at the end of one piece are held back (at most
 * |D| + 1 bytes, in HOLD) and decided when the next piece comes, so a boundary cut anywhere
 * between two pieces is found and data is never written before it is known to be data.  The
 * body is treated as if a CRLF preceded it (HOLD starts with it), so a first delimiter at the
 * very start needs no special case; what precedes the first delimiter (the preamble) and what
 * follows the close delimiter (the epilogue) is dropped.  A part's head is collected into a
 * bounded buffer until its blank line; then its Content-Disposition decides where the contents
 * go: a part with a filename parameter into a fresh temporary file (mkostemp, through a 64 KiB
 * write buffer so that small pieces do not cost a write each), any other into the memory
 * buffer, which also keeps every part's head for the caller to interpret.  Limits (file size,
 * files, parts, memory, head size) are checked before bytes move, and the first failure is
 * sticky.  The scanner only moves bytes: names, types and what a field means are the caller's
 * business; it deletes no file unless asked (crow_mpart_free). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "crow.h"
#include "evloop.h"
#include "mpart.h"

enum { ST_PREAMBLE, ST_HEAD, ST_BODY, ST_EPILOGUE, ST_DONE, ST_ERROR };

#define WBUF_SIZE 65536
#define DELIM_MAX (4 + CROW_MPART_MAX_BOUNDARY)

struct part_rec {
    size_t head_off, head_len, data_off;
    uint64_t size;
    char *path;
};

struct crow_mpart {
    struct crow_ev_sink sink;
    struct crow_mpart_config cfg;
    char *dir, *prefix;
    uint8_t delim[DELIM_MAX];
    size_t dlen;
    int state, err;
    uint8_t hold[DELIM_MAX + 2];
    size_t hold_len;
    uint8_t *head;                /* "\r\n" + the head being collected */
    size_t head_len, head_cap;
    struct part_rec *parts;
    size_t nparts, parts_cap;
    unsigned nfiles;
    uint8_t *mem;
    size_t mem_len, mem_cap;
    int fd;                       /* the current file part's, or -1 */
    uint8_t *wbuf;
    size_t wlen;
    uint64_t fed;
};

void crow_mpart_config_init(struct crow_mpart_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->dir = "/tmp";
    cfg->prefix = "crow-upload-";
    cfg->max_files = 16;
    cfg->max_parts = 1000;
    cfg->max_memory = 1 << 20;
    cfg->max_part_head = 8192;
}

static int sink_write(void *arg, const char *data, size_t n)
{
    return crow_mpart_feed(arg, data, n);
}

static int sink_end(void *arg)
{
    return crow_mpart_finish(arg);
}

static void sink_drop(void *arg)
{
    crow_mpart_free(arg, 1);
}

struct crow_mpart *crow_mpart_new(const struct crow_mpart_config *cfg)
{
    if (!cfg || !cfg->boundary || cfg->boundary_len == 0 ||
        cfg->boundary_len > CROW_MPART_MAX_BOUNDARY || !cfg->dir || !cfg->prefix) {
        errno = EINVAL;
        return NULL;
    }
    struct crow_mpart *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->cfg = *cfg;
    m->fd = -1;
    m->dir = strdup(cfg->dir);
    m->prefix = strdup(cfg->prefix);
    m->head_cap = 2 + cfg->max_part_head + 4;
    m->head = malloc(m->head_cap);
    if (!m->dir || !m->prefix || !m->head) {
        crow_mpart_free(m, 0);
        errno = ENOMEM;
        return NULL;
    }
    m->cfg.dir = m->dir;
    m->cfg.prefix = m->prefix;
    m->cfg.boundary = NULL;
    memcpy(m->delim, "\r\n--", 4);
    memcpy(m->delim + 4, cfg->boundary, cfg->boundary_len);
    m->dlen = 4 + cfg->boundary_len;
    memcpy(m->hold, "\r\n", 2); /* the body is read as if a CRLF came first */
    m->hold_len = 2;
    m->state = ST_PREAMBLE;
    m->sink.write = sink_write;
    m->sink.end = sink_end;
    m->sink.drop = sink_drop;
    m->sink.arg = m;
    return m;
}

static int fail(struct crow_mpart *m, int e)
{
    if (m->state != ST_ERROR) {
        m->state = ST_ERROR;
        m->err = e;
        if (m->fd >= 0) {
            close(m->fd);
            m->fd = -1;
        }
    }
    errno = m->err;
    return -1;
}

/* ------------------------------------------------------------------ output */

static int mem_add(struct crow_mpart *m, const void *p, size_t n)
{
    if (n > m->cfg.max_memory - m->mem_len)
        return fail(m, E2BIG);
    if (m->mem_len + n > m->mem_cap) {
        size_t cap = m->mem_cap ? m->mem_cap : 4096;
        while (cap < m->mem_len + n)
            cap *= 2;
        if (cap > m->cfg.max_memory)
            cap = m->cfg.max_memory;
        uint8_t *b = realloc(m->mem, cap);
        if (!b)
            return fail(m, ENOMEM);
        m->mem = b;
        m->mem_cap = cap;
    }
    if (n)
        memcpy(m->mem + m->mem_len, p, n);
    m->mem_len += n;
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = CROW_RETRY(write(fd, p, n));
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int wflush(struct crow_mpart *m)
{
    if (m->wlen && write_all(m->fd, m->wbuf, m->wlen) < 0)
        return fail(m, errno);
    m->wlen = 0;
    return 0;
}

/* P[0,N) is contents of the current part (or preamble/epilogue, dropped). */
static int emit(struct crow_mpart *m, const uint8_t *p, size_t n)
{
    if (m->state != ST_BODY || n == 0)
        return 0;
    struct part_rec *r = &m->parts[m->nparts - 1];
    if (!r->path) {
        if (mem_add(m, p, n) < 0)
            return -1;
        r->size += n;
        return 0;
    }
    if (m->cfg.max_file && n > m->cfg.max_file - r->size)
        return fail(m, EFBIG);
    r->size += n;
    if (n >= WBUF_SIZE - m->wlen) {
        if (wflush(m) < 0)
            return -1;
        if (n >= WBUF_SIZE) {
            if (write_all(m->fd, p, n) < 0)
                return fail(m, errno);
            return 0;
        }
    }
    memcpy(m->wbuf + m->wlen, p, n);
    m->wlen += n;
    return 0;
}

/* ------------------------------------------------------------------ parts */

/* Returns non-zero when the header lines H[0,N) have a Content-Disposition with a filename
 * (or filename*) parameter.  Quoted strings are skipped whole, so a name="a; filename=b"
 * does not count. */
static int has_filename(const uint8_t *h, size_t n)
{
    static const char cd[] = "content-disposition";
    size_t i = 0;
    while (i < n) {
        size_t e = i;
        while (e < n && h[e] != '\n')
            e++;
        size_t le = e > i && h[e - 1] == '\r' ? e - 1 : e;
        const uint8_t *colon = memchr(h + i, ':', le - i);
        if (colon) {
            size_t ne = (size_t)(colon - h);
            while (ne > i && (h[ne - 1] == ' ' || h[ne - 1] == '\t'))
                ne--;
            if (ne - i == sizeof cd - 1 && !strncasecmp((const char *)h + i, cd, sizeof cd - 1)) {
                size_t k = (size_t)(colon - h) + 1;
                int quoted = 0;
                while (k < le) { /* each ';' outside quotes starts a parameter */
                    if (quoted) {
                        if (h[k] == '\\')
                            k++;
                        else if (h[k] == '"')
                            quoted = 0;
                        k++;
                        continue;
                    }
                    if (h[k] == '"') {
                        quoted = 1;
                        k++;
                        continue;
                    }
                    if (h[k++] != ';')
                        continue;
                    while (k < le && (h[k] == ' ' || h[k] == '\t'))
                        k++;
                    size_t s = k;
                    while (k < le && h[k] != '=' && h[k] != ';' && h[k] != ' ' && h[k] != '\t')
                        k++;
                    if ((k - s == 8 || (k - s == 9 && h[s + 8] == '*')) &&
                        !strncasecmp((const char *)h + s, "filename", 8))
                        return 1;
                }
            }
        }
        i = e + 1;
    }
    return 0;
}

static int open_temp(struct crow_mpart *m, char **path)
{
    size_t dl = strlen(m->dir), pl = strlen(m->prefix);
    int slash = dl > 0 && m->dir[dl - 1] != '/';
    char *p = malloc(dl + (size_t)slash + pl + 7);
    if (!p)
        return -1;
    memcpy(p, m->dir, dl);
    if (slash)
        p[dl] = '/';
    memcpy(p + dl + slash, m->prefix, pl);
    memcpy(p + dl + slash + pl, "XXXXXX", 7);
    int fd = mkostemp(p, O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        free(p);
        errno = e;
        return -1;
    }
    *path = p;
    return fd;
}

/* The head of a new part is H[0,N): record it and decide where its contents go. */
static int part_begin(struct crow_mpart *m, const uint8_t *h, size_t n)
{
    if (m->nparts >= m->cfg.max_parts)
        return fail(m, EMLINK);
    int file = has_filename(h, n);
    if (file && m->nfiles >= m->cfg.max_files)
        return fail(m, EMLINK);
    if (m->nparts == m->parts_cap) {
        size_t cap = m->parts_cap ? m->parts_cap * 2 : 8;
        struct part_rec *p = realloc(m->parts, cap * sizeof *p);
        if (!p)
            return fail(m, ENOMEM);
        m->parts = p;
        m->parts_cap = cap;
    }
    size_t off = m->mem_len;
    if (mem_add(m, h, n) < 0)
        return -1;
    struct part_rec *r = &m->parts[m->nparts];
    memset(r, 0, sizeof *r);
    r->head_off = off;
    r->head_len = n;
    r->data_off = m->mem_len;
    if (file) {
        if (!m->wbuf && !(m->wbuf = malloc(WBUF_SIZE)))
            return fail(m, ENOMEM);
        if ((m->fd = open_temp(m, &r->path)) < 0)
            return fail(m, errno);
        m->nfiles++;
    }
    m->nparts++;
    m->state = ST_BODY;
    return 0;
}

/* A delimiter was found (FINAL: the close delimiter): the current part, if any, ends. */
static int delimiter(struct crow_mpart *m, int final)
{
    if (m->state == ST_BODY && m->fd >= 0) {
        if (wflush(m) < 0)
            return -1;
        int fd = m->fd;
        m->fd = -1;
        if (close(fd) < 0 && errno != EINTR)
            return fail(m, errno);
    }
    if (final) {
        m->state = ST_EPILOGUE;
    } else {
        m->state = ST_HEAD;
        memcpy(m->head, "\r\n", 2);
        m->head_len = 2;
    }
    return 0;
}

/* ------------------------------------------------------------------ scanning */

/* How P[0,N) compares with a delimiter: 2 a whole one (dlen + 2 bytes: D, then CRLF or
 * "--"), 1 a proper prefix of one, 0 neither. */
static int delim_at(const struct crow_mpart *m, const uint8_t *p, size_t n)
{
    size_t k = n < m->dlen ? n : m->dlen;
    if (memcmp(p, m->delim, k) != 0)
        return 0;
    if (n <= m->dlen)
        return 1;
    uint8_t a = p[m->dlen];
    if (a != '\r' && a != '-')
        return 0;
    if (n == m->dlen + 1)
        return 1;
    uint8_t b = p[m->dlen + 1];
    return (a == '\r' && b == '\n') || (a == '-' && b == '-') ? 2 : 0;
}

/* PREAMBLE or BODY: contents up to the next delimiter.  Returns the bytes of P used, or
 * (size_t)-1 on failure. */
static size_t scan(struct crow_mpart *m, const uint8_t *p, size_t n)
{
    size_t need = m->dlen + 2;
    if (m->hold_len) {
        /* Could a delimiter start inside what was held back?  Look at it with the first
         * bytes of this piece (a delimiter starting later is found by the search below). */
        uint8_t tmp[2 * (DELIM_MAX + 2)];
        size_t take = n < need ? n : need, hl = m->hold_len, tn = hl + take;
        memcpy(tmp, m->hold, hl);
        memcpy(tmp + hl, p, take);
        for (size_t s = 0; s < hl; s++) {
            if (tmp[s] != '\r')
                continue;
            int r = delim_at(m, tmp + s, tn - s);
            if (r == 0)
                continue;
            if (emit(m, tmp, s) < 0)
                return (size_t)-1;
            if (r == 1) { /* still undecided: then all of P was taken (tn - s < need) */
                memmove(m->hold, tmp + s, tn - s);
                m->hold_len = tn - s;
                return n;
            }
            m->hold_len = 0;
            if (delimiter(m, tmp[s + m->dlen] == '-') < 0)
                return (size_t)-1;
            return s + need - hl;
        }
        m->hold_len = 0;
        if (emit(m, tmp, hl) < 0)
            return (size_t)-1;
    }
    size_t i = 0;
    while (i < n) {
        const uint8_t *cr = memchr(p + i, '\r', n - i);
        if (!cr)
            break;
        size_t s = (size_t)(cr - p);
        int r = delim_at(m, p + s, n - s);
        if (r == 2) {
            if (emit(m, p, s) < 0 || delimiter(m, p[s + m->dlen] == '-') < 0)
                return (size_t)-1;
            return s + need;
        }
        if (r == 1) {
            if (emit(m, p, s) < 0)
                return (size_t)-1;
            memcpy(m->hold, p + s, n - s);
            m->hold_len = n - s;
            return n;
        }
        i = s + 1;
    }
    if (emit(m, p, n) < 0)
        return (size_t)-1;
    return n;
}

/* HEAD: header lines up to the blank line.  Returns the bytes of P used, or (size_t)-1. */
static size_t head(struct crow_mpart *m, const uint8_t *p, size_t n)
{
    size_t old = m->head_len, room = m->head_cap - old;
#ifdef CROW_PLANTED_BUG
    room++; /* planted: one byte past the head buffer when a head fills it */
#endif
    size_t take = n < room ? n : room;
    memcpy(m->head + old, p, take);
    m->head_len = old + take;
    size_t from = old >= 3 ? old - 3 : 0;
    for (size_t k = from; k + 4 <= m->head_len; k++) {
        if (m->head[k] == '\r' && !memcmp(m->head + k, "\r\n\r\n", 4)) {
            size_t used = k + 4 - old;
            size_t hl = k >= 2 ? k - 2 : 0;
            if (part_begin(m, m->head + 2, hl) < 0)
                return (size_t)-1;
            return used;
        }
    }
    if (m->head_len == m->head_cap)
        return fail(m, E2BIG), (size_t)-1;
    return take;
}

int crow_mpart_feed(struct crow_mpart *m, const void *data, size_t n)
{
    if (m->state == ST_ERROR) {
        errno = m->err;
        return -1;
    }
    if (m->state == ST_DONE) {
        errno = EINVAL;
        return -1;
    }
    const uint8_t *p = data;
    m->fed += n;
    while (n > 0 && m->state != ST_EPILOGUE) {
        size_t used = m->state == ST_HEAD ? head(m, p, n) : scan(m, p, n);
        if (used == (size_t)-1)
            return -1;
        p += used;
        n -= used;
    }
    return 0;
}

int crow_mpart_finish(struct crow_mpart *m)
{
    if (m->state == ST_ERROR) {
        errno = m->err;
        return -1;
    }
    if (m->state == ST_DONE)
        return 0;
    if (m->state != ST_EPILOGUE)
        return fail(m, EBADMSG);
    m->state = ST_DONE;
    return 0;
}

int crow_mpart_error(const struct crow_mpart *m)
{
    return m->state == ST_ERROR ? m->err : 0;
}

size_t crow_mpart_count(const struct crow_mpart *m)
{
    return m->nparts;
}

int crow_mpart_get(const struct crow_mpart *m, size_t i, struct crow_mpart_part *out)
{
    if (i >= m->nparts) {
        errno = ERANGE;
        return -1;
    }
    const struct part_rec *r = &m->parts[i];
    out->head_off = r->head_off;
    out->head_len = r->head_len;
    out->data_off = r->data_off;
    out->size = r->size;
    out->path = r->path;
    return 0;
}

const uint8_t *crow_mpart_memory(const struct crow_mpart *m, size_t *len)
{
    *len = m->mem_len;
    return m->mem ? m->mem : (const uint8_t *)"";
}

uint64_t crow_mpart_fed(const struct crow_mpart *m)
{
    return m->fed;
}

void crow_mpart_free(struct crow_mpart *m, int unlink_files)
{
    if (!m)
        return;
    if (m->fd >= 0)
        close(m->fd);
    for (size_t i = 0; i < m->nparts; i++) {
        if (m->parts[i].path) {
            if (unlink_files)
                unlink(m->parts[i].path);
            free(m->parts[i].path);
        }
    }
    free(m->parts);
    free(m->mem);
    free(m->wbuf);
    free(m->head);
    free(m->dir);
    free(m->prefix);
    free(m);
}

const struct crow_ev_sink *crow_mpart_sink(struct crow_mpart *m)
{
    return &m->sink;
}
