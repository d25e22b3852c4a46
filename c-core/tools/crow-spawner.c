/* crow-spawner — mmspawnd's spawner: a small process that clones pre-set-up waiting children
 * on request (c-core/spawn.h, crow_spawn_serve), so that each clone copies this small
 * address space rather than mmspawnd's Lisp image.  Started by mmspawnd (crow.unix
 * make-spawner), never by hand:
 *
 *   crow-spawner [-r ROOT] [-u UID] [-g GID] [-G GID,...] [-m UMASK] [-d DIR]
 *                [-l RESOURCE:SOFT:HARD]... [-E NAME=VALUE]... -- PROGRAM ARGV0 [ARG...]
 *
 * Descriptor 0 is its SOCK_SEQPACKET socket to mmspawnd, 1 is /dev/null, 2 the children's
 * stderr.  -r/-u/-g/-G (chroot, user, group, groups) apply to the spawner itself at start, so
 * every child inherits them; -l (RLIMIT_ numbers, -1 for infinity), -m, -d and -E apply to
 * each child.  Exits 0 when mmspawnd closes the socket, 1 on a failure (reported on stderr),
 * 2 on a usage error. */
#include "spawn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ITEMS 256

static int usage(void)
{
    fprintf(stderr, "usage: crow-spawner [-r ROOT] [-u UID] [-g GID] [-G GID,...] [-m UMASK] "
                    "[-d DIR] [-l RES:SOFT:HARD]... [-E NAME=VALUE]... -- PROGRAM ARGV0 [ARG...]\n");
    return 2;
}

int main(int argc, char **argv)
{
    static int64_t rl[3 * MAX_ITEMS];
    static char *env[MAX_ITEMS + 1];
    static gid_t groups[MAX_ITEMS];
    struct crow_spawn_setup s;
    int i, nrl = 0, nenv = 0;
    memset(&s, 0, sizeof s);
    s.ngroups = -1; s.gid = -1; s.uid = -1; s.umask = -1;
    s.devnull = 1; s.err = 2;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) { i++; break; }
        if (i + 1 >= argc) return usage();
        const char *v = argv[++i];
        if (!strcmp(a, "-r")) s.root = v;
        else if (!strcmp(a, "-u")) s.uid = strtol(v, NULL, 10);
        else if (!strcmp(a, "-g")) s.gid = strtol(v, NULL, 10);
        else if (!strcmp(a, "-m")) s.umask = strtol(v, NULL, 10);
        else if (!strcmp(a, "-d")) s.dir = v;
        else if (!strcmp(a, "-G")) {
            char *end;
            s.ngroups = 0;
            for (const char *p = v; *p && s.ngroups < MAX_ITEMS; p = *end ? end + 1 : end) {
                groups[s.ngroups++] = (gid_t)strtoul(p, &end, 10);
                if (end == p) return usage();
            }
            s.groups = groups;
        } else if (!strcmp(a, "-l")) {
            long long r, so, h;
            if (nrl >= MAX_ITEMS || sscanf(v, "%lld:%lld:%lld", &r, &so, &h) != 3) return usage();
            rl[3 * nrl] = r; rl[3 * nrl + 1] = so; rl[3 * nrl + 2] = h;
            nrl++;
        } else if (!strcmp(a, "-E")) {
            if (nenv >= MAX_ITEMS) return usage();
            env[nenv++] = (char *)v;
        } else return usage();
    }
    if (i + 1 >= argc) return usage();
    s.prog = argv[i];
    s.argv = argv + i + 1;
    env[nenv] = NULL;
    s.env = env;
    s.nenv = nenv;
    s.rlimits = rl;
    s.nrlimits = nrl;
    int step;
    if (crow_spawn_drop(&s, &step) < 0) {
        fprintf(stderr, "crow-spawner: set-up step %d: %s\n", step, strerror(errno));
        return 1;
    }
    s.root = NULL; s.ngroups = -1; s.gid = -1; s.uid = -1;
    /* Once here rather than in every child (SIGPIPE, for one, arrives ignored). */
    crow_spawn_reset_signals();
    s.signals_clean = 1;
    if (crow_spawn_serve(&s, 0) < 0) {
        fprintf(stderr, "crow-spawner: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}
