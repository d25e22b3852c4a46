/* mmstat.c — the mmstat command: reports, updates, resets, deletes and rotation against
 * mmstatd through libmmstat, with the original mmstat's grammar.  Every operation on one
 * command line forms one transaction (unless the a flag asks for autoflush), committed with
 * commit_sync: the exit status says whether the server has it. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mmstat.h"

static const char *prog = "mmstat";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s [-d DIR] [h]report [PATTERN]\n"
            "       %s [-d DIR] update p|v[a] KEY%%DELTA ...\n"
            "       %s [-d DIR] reset p|v[a] KEY%%VALUE ...\n"
            "       %s [-d DIR] set p|v[a] KEY%%TEXT ...\n"
            "       %s [-d DIR] delete PATTERN ...\n"
            "       %s [-d DIR] rotate\n"
            "       %s --help | --version\n"
            "Several commands may follow each other on one line (update p a%%1 reset v b%%0 ...):\n"
            "all their operations form one transaction, applied entirely or not at all, unless\n"
            "a command's flags include a (autoflush: each operation sent alone).  p: keys\n"
            "created are persistent, v: volatile (gone when mmstatd restarts).  Keys may be shell\n"
            "patterns (*, ?, [...]) acting on existing keys.  report prints one line per key:\n"
            "KEY TAB VALUE TAB p|v TAB CREATED TAB MODIFIED (Unix times; hreport: local times),\n"
            "a text VALUE as =TEXT.  The server's sockets are in DIR, else $MMSTAT_DIR, else\n"
            "%s.  Exit status: 0 done, 1 the server failed or refused, 2 usage error.\n",
            prog, prog, prog, prog, prog, prog, prog, MMSTAT_DEFAULT_DIR);
}

static void htime(char *buf, size_t n, time_t t)
{
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm);
}

static int do_report(mmstat_t *ms, const char *pattern, int human)
{
    mmstat_report_t *r = mmstat_report(ms, pattern);
    if (!r) {
        fprintf(stderr, "%s: report: %s\n", prog, strerror(errno));
        return 1;
    }
    struct mmstat_entry e;
    while (mmstat_report_next(r, &e)) {
        char c[32], m[32];
        if (human) {
            htime(c, sizeof c, e.created);
            htime(m, sizeof m, e.modified);
        } else {
            snprintf(c, sizeof c, "%lld", (long long)e.created);
            snprintf(m, sizeof m, "%lld", (long long)e.modified);
        }
        if (e.text)
            printf("%s\t=%s\t%c\t%s\t%s\n", e.key, e.text, e.persistent ? 'p' : 'v', c, m);
        else
            printf("%s\t%lld\t%c\t%s\t%s\n", e.key, (long long)e.value, e.persistent ? 'p' : 'v',
                   c, m);
    }
    mmstat_report_close(r);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int is_command(const char *s)
{
    return !strcmp(s, "update") || !strcmp(s, "reset") || !strcmp(s, "set") ||
           !strcmp(s, "delete");
}

/* Checks the whole command line before anything is sent.  Returns 0 or 2. */
static int parse_ops(int argc, char **argv, int run, mmstat_t *ms)
{
    int i = 0;
    while (i < argc) {
        const char *cmd = argv[i++];
        if (!is_command(cmd)) {
            fprintf(stderr, "%s: unknown command %s (try --help)\n", prog, cmd);
            return 2;
        }
        int persistent = 0, autoflush = 0;
        if (strcmp(cmd, "delete") != 0) {
            const char *fl = i < argc ? argv[i++] : "";
            if ((fl[0] != 'p' && fl[0] != 'v') || (fl[1] && (fl[1] != 'a' || fl[2]))) {
                fprintf(stderr, "%s: %s: expected flags p, v, pa or va, got \"%s\"\n", prog, cmd, fl);
                return 2;
            }
            persistent = fl[0] == 'p';
            autoflush = fl[1] == 'a';
        }
        int n = 0;
        for (; i < argc && !is_command(argv[i]); i++, n++) {
            char *arg = argv[i];
            if (run && autoflush)
                mmstat_commit(ms), mmstat_autoflush(ms, 1);
            if (!strcmp(cmd, "delete")) {
                if (run && mmstat_delete(ms, arg) < 0)
                    goto fail;
                if (!run && !*arg) {
                    fprintf(stderr, "%s: delete: empty pattern\n", prog);
                    return 2;
                }
                continue;
            }
            char *pct = strrchr(arg, '%');
            if (!pct || pct == arg) {
                fprintf(stderr, "%s: %s: expected KEY%%%s, got \"%s\"\n", prog, cmd,
                        strcmp(cmd, "set") ? "NUMBER" : "TEXT", arg);
                return 2;
            }
            *pct = 0;
            const char *val = pct + 1;
            long long v = 0;
            if (strcmp(cmd, "set") != 0) {
                char *end;
                errno = 0;
                v = strtoll(val, &end, 10);
                if (!*val || *end || errno == ERANGE) {
                    fprintf(stderr, "%s: %s: \"%s\" is not a 64-bit integer (key %s)\n", prog,
                            cmd, val, arg);
                    *pct = '%';
                    return 2;
                }
            }
            int rc = 0;
            if (run) {
                if (!strcmp(cmd, "update"))
                    rc = mmstat_update(ms, arg, v, persistent);
                else if (!strcmp(cmd, "reset"))
                    rc = mmstat_reset(ms, arg, v, persistent);
                else
                    rc = mmstat_set_text(ms, arg, val, persistent);
            }
            *pct = '%';
            if (rc < 0)
                goto fail;
            continue;
        fail:
            fprintf(stderr, "%s: %s %s: %s\n", prog, cmd, arg,
                    errno == EINVAL ? "malformed key or value (1-255 printable bytes; text up to 1024)"
                                    : strerror(errno));
            return errno == EINVAL ? 2 : 1;
        }
        if (n == 0) {
            fprintf(stderr, "%s: %s: nothing to do\n", prog, cmd);
            return 2;
        }
        if (run && autoflush)
            mmstat_autoflush(ms, 0), mmstat_begin(ms);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    int i = 1;
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "--version")) {
        printf("mmstat 0.1.0\n");
        return 0;
    }
    if (argc > 2 && !strcmp(argv[1], "-d")) {
        dir = argv[2];
        i = 3;
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[i];
    if (!strcmp(cmd, "report") || !strcmp(cmd, "hreport")) {
        if (argc - i > 2) {
            fprintf(stderr, "%s: %s takes one pattern at most\n", prog, cmd);
            return 2;
        }
        mmstat_t *ms = mmstat_open(dir);
        if (!ms) {
            fprintf(stderr, "%s: no mmstatd in %s: %s\n", prog, mmstat_dir(dir), strerror(errno));
            return 1;
        }
        int rc = do_report(ms, i + 1 < argc ? argv[i + 1] : "*", cmd[0] == 'h');
        mmstat_close(ms);
        return rc;
    }
    if (!strcmp(cmd, "rotate")) {
        if (argc - i > 1) {
            fprintf(stderr, "%s: rotate takes no arguments\n", prog);
            return 2;
        }
        mmstat_t *ms = mmstat_open(dir);
        if (!ms || mmstat_rotate(ms) < 0) {
            fprintf(stderr, "%s: rotate: %s\n", prog, strerror(errno));
            mmstat_close(ms);
            return 1;
        }
        mmstat_close(ms);
        return 0;
    }
    int rc = parse_ops(argc - i, argv + i, 0, NULL);
    if (rc)
        return rc;
    mmstat_t *ms = mmstat_open(dir);
    if (!ms) {
        fprintf(stderr, "%s: no mmstatd in %s: %s\n", prog, mmstat_dir(dir), strerror(errno));
        return 1;
    }
    mmstat_autoflush(ms, 0);
    mmstat_begin(ms);
    rc = parse_ops(argc - i, argv + i, 1, ms);
    if (rc) {
        mmstat_rollback(ms);
        mmstat_close(ms);
        return rc;
    }
    if (mmstat_commit_sync(ms) < 0) {
        fprintf(stderr, "%s: commit: %s\n", prog, strerror(errno));
        mmstat_close(ms);
        return 1;
    }
    mmstat_close(ms);
    return 0;
}
