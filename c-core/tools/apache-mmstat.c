/* apache-mmstat.c — a piped-log feeder for mmstatd: reads access-log lines on stdin (Apache's
 * `CustomLog "|apache-mmstat -f CONF" FORMAT`, crow-httpd's `log-pipe`) and counts them in
 * mmstatd under key templates from its config, one transaction per line.
 *
 * It never blocks the pipe: sends are non-blocking; when mmstatd's queue is full the line waits
 * in a backlog (up to 100,000 lines, in order) sent as soon as the socket has room, while
 * stdin keeps being read.  While mmstatd is down lines are counted as dropped; it reconnects
 * at most once a second and reports what it dropped on stderr (the web server's error log)
 * and under apache-mmstat|dropped once back.
 * Malformed lines and lines over 8 KiB are skipped and counted (apache-mmstat|malformed,
 * apache-mmstat|overlong).
 *
 * Config (`key value`, # comments, "quoted" values):
 *   stat-dir DIR                  mmstatd's sockets (else -d DIR, $MMSTAT_DIR, /run/mmstatd)
 *   format combined | FIELD...    combined log format, or space-separated fields in order, of
 *                                 vhost status method path bytes - (ignored); the last field
 *                                 may hold spaces (Apache: LogFormat "%v %>s %m %B %U")
 *   vhost NAME                    {vhost} for formats without one (default "-")
 *   count TEMPLATE                +1 per line (repeatable)
 *   sum TEMPLATE FIELD            + the field's number per line (bytes or status)
 *   prefix-depth N                path segments in {prefix} (default 1)
 *   persistent yes|no             keys created persistent (default yes)
 * Templates hold {vhost} {status} {class} (2xx...) {method} {path} {prefix} {bytes}; a value's
 * control bytes become ? and its pattern characters * ? [ become _. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mmstat.h"

#define LINE_MAX_LEN 8192
#define MAX_RULES 64

enum field { F_IGNORE, F_VHOST, F_STATUS, F_METHOD, F_PATH, F_BYTES, F_NFIELDS };
static const char *field_names[] = {"-", "vhost", "status", "method", "path", "bytes"};

struct rule {
    char *tmpl;
    enum field sum;     /* F_IGNORE: count 1 */
};

static struct {
    char *stat_dir, *vhost;
    int combined, nfields, prefix_depth, persistent;
    enum field fields[16];
    struct rule rules[MAX_RULES];
    int nrules;
} cf = {NULL, "-", 1, 0, 1, 1, {0}, {{0}}, 0};

static unsigned long long lines, dropped, malformed, overlong, reported_dropped;
static mmstat_t *ms;
static time_t last_try, last_report;

static void die_config(const char *file, int line, const char *msg, const char *arg)
{
    fprintf(stderr, "%s:%d: %s%s%s\n", file, line, msg, arg ? " " : "", arg ? arg : "");
    exit(2);
}

static int field_of(const char *s)
{
    for (int i = 0; i < F_NFIELDS; i++)
        if (!strcmp(s, field_names[i]))
            return i;
    return -1;
}

/* Splits LINE into words (double quotes group, \" and \\ escape).  Returns the count. */
static int words(char *line, char **w, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p || *p == '#' || *p == '\n')
            return n;
        if (n == max)
            return -1;
        char *out = p;
        w[n++] = out;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
                    p++;
                *out++ = *p++;
            }
            if (*p != '"')
                return -2;
            p++;
        } else {
            while (*p && *p != ' ' && *p != '\t' && *p != '\n')
                *out++ = *p++;
        }
        int end = !*p || *p == '\n';
        if (!end)
            p++;
        *out = 0;
        if (end)
            return n;
    }
}

static void read_config(const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, "apache-mmstat: %s: %s\n", file, strerror(errno));
        exit(2);
    }
    char buf[4096];
    int ln = 0;
    while (fgets(buf, sizeof buf, f)) {
        ln++;
        char *w[20];
        int n = words(buf, w, 20);
        if (n == -1)
            die_config(file, ln, "too many words", NULL);
        if (n == -2)
            die_config(file, ln, "unterminated quote", NULL);
        if (n == 0)
            continue;
        if (!strcmp(w[0], "stat-dir") && n == 2)
            cf.stat_dir = strdup(w[1]);
        else if (!strcmp(w[0], "vhost") && n == 2)
            cf.vhost = strdup(w[1]);
        else if (!strcmp(w[0], "format") && n == 2 && !strcmp(w[1], "combined"))
            cf.combined = 1;
        else if (!strcmp(w[0], "format") && n >= 2) {
            char *fw[17];
            char tmp[4096];
            snprintf(tmp, sizeof tmp, "%s", w[1]);
            int k = n == 2 ? words(tmp, fw, 16) : n - 1;
            if (k < 1)
                die_config(file, ln, "format: too many fields", NULL);
            cf.combined = 0;
            cf.nfields = k;
            for (int i = 0; i < k; i++) {
                int fi = field_of(n == 2 ? fw[i] : w[i + 1]);
                if (fi < 0)
                    die_config(file, ln, "format: unknown field (vhost status method path bytes -):",
                               n == 2 ? fw[i] : w[i + 1]);
                cf.fields[i] = (enum field)fi;
            }
        } else if (!strcmp(w[0], "count") && n == 2) {
            if (cf.nrules == MAX_RULES)
                die_config(file, ln, "too many count/sum rules", NULL);
            cf.rules[cf.nrules++] = (struct rule){strdup(w[1]), F_IGNORE};
        } else if (!strcmp(w[0], "sum") && n == 3) {
            int fi = field_of(w[2]);
            if (fi != F_BYTES && fi != F_STATUS)
                die_config(file, ln, "sum: the field must be bytes or status, got", w[2]);
            if (cf.nrules == MAX_RULES)
                die_config(file, ln, "too many count/sum rules", NULL);
            cf.rules[cf.nrules++] = (struct rule){strdup(w[1]), (enum field)fi};
        } else if (!strcmp(w[0], "prefix-depth") && n == 2 && atoi(w[1]) >= 0)
            cf.prefix_depth = atoi(w[1]);
        else if (!strcmp(w[0], "persistent") && n == 2 &&
                 (!strcmp(w[1], "yes") || !strcmp(w[1], "no")))
            cf.persistent = !strcmp(w[1], "yes");
        else
            die_config(file, ln, "unknown key or wrong number of values:", w[0]);
    }
    fclose(f);
    if (cf.nrules == 0)
        die_config(file, ln, "no count or sum rule", NULL);
}

/* The fields of one line; pointers into the line (NUL-terminated in place). */
struct rec {
    const char *v[F_NFIELDS];
    long long status, bytes;
};

static int parse_number(const char *s, long long *out)
{
    if (!strcmp(s, "-")) {
        *out = 0;
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < 0)
        return -1;
    *out = v;
    return 0;
}

/* host ident user [date] "METHOD target PROTO" status bytes ... */
static int parse_combined(char *line, struct rec *r)
{
    char *q = strchr(line, '"');
    if (!q || !strchr(line, '['))
        return -1;
    char *req = q + 1, *e = req;
    while (*e && *e != '"') {
        if (*e == '\\' && e[1])
            e++;
        e++;
    }
    if (*e != '"')
        return -1;
    *e = 0;
    char *rest = e + 1;
    char *sp = strchr(req, ' ');
    if (!sp)
        return -1;
    *sp = 0;
    r->v[F_METHOD] = req;
    char *target = sp + 1;
    char *sp2 = strrchr(target, ' ');
    if (sp2)
        *sp2 = 0;
    char *qm = strchr(target, '?');
    if (qm)
        *qm = 0;
    r->v[F_PATH] = target;
    char *st = strtok(rest, " ");
    char *by = strtok(NULL, " ");
    if (!st || !by)
        return -1;
    r->v[F_STATUS] = st;
    r->v[F_BYTES] = by;
    r->v[F_VHOST] = cf.vhost;
    return 0;
}

static int parse_fields(char *line, struct rec *r)
{
    char *p = line;
    r->v[F_VHOST] = cf.vhost;
    for (int i = 0; i < cf.nfields; i++) {
        char *word = p;
        if (i < cf.nfields - 1) {
            char *sp = strchr(p, ' ');
            if (!sp)
                return -1;
            *sp = 0;
            p = sp + 1;
        } else if (!*p)
            return -1;
        if (cf.fields[i] != F_IGNORE)
            r->v[cf.fields[i]] = word;
    }
    return 0;
}

static int parse(char *line, struct rec *r)
{
    memset(r, 0, sizeof *r);
    if ((cf.combined ? parse_combined(line, r) : parse_fields(line, r)) < 0)
        return -1;
    if (!r->v[F_STATUS] || parse_number(r->v[F_STATUS], &r->status) < 0 || r->status < 100 ||
        r->status > 999)
        return -1;
    if (r->v[F_BYTES] && parse_number(r->v[F_BYTES], &r->bytes) < 0)
        return -1;
    return 0;
}

static size_t put_value(char *out, size_t room, const char *v, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k < room; i++) {
        unsigned char c = (unsigned char)v[i];
        out[k++] = c < 0x20 || c == 0x7f ? '?' : (c == '*' || c == '?' || c == '[') ? '_' : (char)c;
    }
    return k;
}

/* Expands TMPL for R into KEY (at most 255 bytes; longer keys are cut). */
static void expand(const char *tmpl, const struct rec *r, char *key)
{
    size_t k = 0, room = 255;
    char num[32];
    for (const char *p = tmpl; *p && k < room;) {
        const char *v = NULL;
        size_t n = 0, used = 0;
        if (*p == '{') {
            const char *close = strchr(p, '}');
            if (close) {
                size_t len = (size_t)(close - p - 1);
                used = len + 2;
                if (!strncmp(p + 1, "vhost", len) && len == 5)
                    v = r->v[F_VHOST];
                else if (!strncmp(p + 1, "status", len) && len == 6)
                    v = r->v[F_STATUS];
                else if (!strncmp(p + 1, "method", len) && len == 6)
                    v = r->v[F_METHOD];
                else if (!strncmp(p + 1, "path", len) && len == 4)
                    v = r->v[F_PATH];
                else if (!strncmp(p + 1, "bytes", len) && len == 5) {
                    snprintf(num, sizeof num, "%lld", r->bytes);
                    v = num;
                } else if (!strncmp(p + 1, "class", len) && len == 5) {
                    snprintf(num, sizeof num, "%lldxx", r->status / 100);
                    v = num;
                } else if (!strncmp(p + 1, "prefix", len) && len == 6 && r->v[F_PATH]) {
                    const char *s = r->v[F_PATH];
                    const char *e = s;
                    int seg = 0;
                    if (*e == '/')
                        e++;
                    while (*e) {
                        if (*e == '/' && ++seg >= cf.prefix_depth)
                            break;
                        e++;
                    }
                    if (cf.prefix_depth == 0)
                        e = *s == '/' ? s + 1 : s;
                    v = s;
                    n = (size_t)(e - s);
                    if (n == 0) {
                        v = "/";
                        n = 1;
                    }
                }
                if (v && !n)
                    n = strlen(v);
                if (!v) {
                    v = "-";
                    n = 1;
                }
            }
        }
        if (used) {
            k += put_value(key + k, room - k, v, n);
            p += used;
        } else
            key[k++] = *p++;
    }
    key[k] = 0;
}

static void try_connect(void)
{
    time_t now = time(NULL);
    if (ms || now == last_try)
        return;
    last_try = now;
    ms = mmstat_open(cf.stat_dir);
    if (ms)
        mmstat_nonblocking(ms, 1);
}

/* Sends one line's transaction.  Returns 0 when sent (or dropped: mmstatd down), 1 when
 * mmstatd's queue is full (EAGAIN: the caller keeps the line in the backlog). */
static int send_txn(const char *keys[], const long long *deltas, int n)
{
    try_connect();
    if (!ms) {
        dropped++;
        return 0;
    }
    mmstat_begin(ms);
    for (int i = 0; i < n; i++)
        if (mmstat_update(ms, keys[i], deltas[i], cf.persistent) < 0) {
            mmstat_rollback(ms);
            malformed++;
            return 0;
        }
    if (mmstat_commit(ms) == 0)
        return 0;
    if (errno == EAGAIN)
        return 1;
    dropped++;
    mmstat_close(ms);
    ms = NULL;
    return 0;
}

/* Lines waiting for room in mmstatd's queue, oldest first (bounded: beyond, lines drop). */
#define BACKLOG_MAX 100000
static char *backlog[BACKLOG_MAX];
static size_t bl_head, bl_count;

static void report(int force)
{
    time_t now = time(NULL);
    if (!force && now - last_report < 60)
        return;
    last_report = now;
    if (dropped != reported_dropped || force)
        fprintf(stderr, "apache-mmstat: %llu lines, %llu dropped (mmstatd down or busy), %llu malformed, %llu overlong\n",
                lines, dropped, malformed, overlong);
    if (ms && dropped != reported_dropped) {
        mmstat_begin(ms);
        mmstat_update(ms, "apache-mmstat|dropped", (int64_t)(dropped - reported_dropped), 1);
        if (mmstat_commit(ms) == 0)
            reported_dropped = dropped;
    }
}

static void count_self(const char *key)
{
    if (ms) {
        mmstat_begin(ms);
        mmstat_update(ms, key, 1, 1);
        mmstat_commit(ms);
    }
}

/* Counts LINE.  Returns 1 when mmstatd's queue was full (nothing sent), else 0. */
static int count_line(char *line)
{
    struct rec r;
    if (parse(line, &r) < 0) {
        malformed++;
        count_self("apache-mmstat|malformed");
        return 0;
    }
    char keys[MAX_RULES][256];
    const char *kp[MAX_RULES];
    long long d[MAX_RULES];
    for (int i = 0; i < cf.nrules; i++) {
        expand(cf.rules[i].tmpl, &r, keys[i]);
        kp[i] = keys[i];
        d[i] = cf.rules[i].sum == F_BYTES ? r.bytes : cf.rules[i].sum == F_STATUS ? r.status : 1;
    }
    return send_txn(kp, d, cf.nrules);
}

/* Sends backlogged lines while mmstatd takes them.  Returns how many are left. */
static size_t drain_backlog(void)
{
    while (bl_count) {
        char *l = backlog[bl_head];
        char copy[LINE_MAX_LEN + 1];
        snprintf(copy, sizeof copy, "%s", l);
        if (count_line(copy))
            break;
        free(l);
        bl_head = (bl_head + 1) % BACKLOG_MAX;
        bl_count--;
    }
    return bl_count;
}

static void handle(char *line)
{
    lines++;
    if (bl_count && drain_backlog()) {
        /* still full: keep order, queue this one too (or drop it when the backlog is full) */
        char *c = bl_count < BACKLOG_MAX ? strdup(line) : NULL;
        if (!c) {
            dropped++;
            return;
        }
        backlog[(bl_head + bl_count++) % BACKLOG_MAX] = c;
        return;
    }
    char copy[LINE_MAX_LEN + 1];
    snprintf(copy, sizeof copy, "%s", line);
    if (count_line(line)) {
        char *c = strdup(copy);
        if (!c) {
            dropped++;
            return;
        }
        backlog[(bl_head + bl_count++) % BACKLOG_MAX] = c;
    }
}

int main(int argc, char **argv)
{
    const char *conf = NULL, *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-f") && i + 1 < argc)
            conf = argv[++i];
        else if (!strcmp(argv[i], "-d") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--version")) {
            printf("apache-mmstat 0.1.0\n");
            return 0;
        } else {
            fprintf(strcmp(argv[i], "--help") ? stderr : stdout,
                    "usage: apache-mmstat -f CONFIG [-d STAT-DIR]\n"
                    "Counts access-log lines read on stdin in mmstatd (see man apache-mmstat).\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (!conf) {
        fprintf(stderr, "apache-mmstat: -f CONFIG is required\n");
        return 2;
    }
    read_config(conf);
    if (dir)
        cf.stat_dir = (char *)dir;
    signal(SIGPIPE, SIG_IGN);
    static char buf[LINE_MAX_LEN + 1];
    size_t len = 0;
    int skipping = 0;
    for (;;) {
        struct pollfd p[2] = {{0, POLLIN, 0}, {ms && bl_count ? mmstat_fd(ms) : -1, POLLOUT, 0}};
        int pr = poll(p, 2, 1000);
        if (pr < 0 && errno != EINTR)
            break;
        if (bl_count && (!ms || (p[1].revents & (POLLOUT | POLLERR | POLLHUP))))
            drain_backlog();
        report(0);
        if (pr <= 0 || !(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        ssize_t n = read(0, buf + len, LINE_MAX_LEN - len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        size_t start = 0;
        for (;;) {
            char *nl = memchr(buf + start, '\n', len - start);
            if (!nl)
                break;
            *nl = 0;
            if (skipping)
                skipping = 0;
            else {
                if (nl > buf + start && nl[-1] == '\r')
                    nl[-1] = 0;
                handle(buf + start);
            }
            start = (size_t)(nl - buf) + 1;
        }
        memmove(buf, buf + start, len - start);
        len -= start;
        if (len == LINE_MAX_LEN) {   /* a line longer than the buffer: skip to its end */
            if (!skipping) {
                overlong++;
                lines++;
                count_self("apache-mmstat|overlong");
            }
            skipping = 1;
            len = 0;
        }
    }
    if (len && !skipping) {
        buf[len] = 0;
        handle(buf);
    }
    /* end of input: nothing more to keep reading, so wait (up to 10 s) for the backlog */
    for (int i = 0; i < 1000 && bl_count && ms; i++) {
        struct pollfd p = {mmstat_fd(ms), POLLOUT, 0};
        poll(&p, 1, 10);
        drain_backlog();
    }
    dropped += bl_count;
    report(1);
    mmstat_close(ms);
    return 0;
}
