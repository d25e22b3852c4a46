/* spawn.h — pre-forked children that exec later on a descriptor they are handed (mmspawnd's
 * pool), and the spawner that clones them.
 *
 * A waiting child is forked with everything it needs prepared by its parent in a
 * crow_spawn_setup: it resets its signals, keeps only its control socket (an AF_UNIX
 * SOCK_SEQPACKET end, moved to descriptor 3), /dev/null and stderr, applies rlimits, chroot,
 * groups/gid/uid, umask and working directory, then waits on its control socket for one
 * message carrying a descriptor (SCM_RIGHTS) and NUL-separated NAME=VALUE strings: the
 * descriptor becomes 0 and 1 and the strings join the environment, and the program is
 * executed.  A spawner is a process that only clones waiting children on request, with
 * CLONE_PARENT so that they are its parent's children; a small one (crow-spawner, a separate
 * executable) makes each clone cheap, whatever the size of the process that asks. */
#ifndef CROW_SPAWN_H
#define CROW_SPAWN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct crow_spawn_setup {
    const char *prog;          /* path to execve */
    char *const *argv;         /* NULL-terminated, argv[0] included */
    char *const *env;          /* NULL-terminated base environment */
    long nenv;                 /* entries in env */
    const int64_t *rlimits;    /* nrlimits triples: RLIMIT_x, soft, hard (-1: infinity) */
    int nrlimits;
    const char *root;          /* chroot, or NULL */
    const gid_t *groups;       /* ngroups supplementary groups (ngroups < 0: unchanged) */
    long ngroups;
    long gid, uid;             /* -1: unchanged */
    long umask;                /* -1: unchanged */
    const char *dir;           /* working directory, or NULL */
    int devnull;               /* descriptor on /dev/null for 0 and 1 while waiting, or -1 */
    int err;                   /* descriptor for 2 (-1: devnull; 2: keep) */
    int report;                /* send an 8-byte report when set up (see crow_spawn_waiting) */
    int signals_clean;         /* dispositions already default, mask empty: skip resetting */
};

/* Set-up steps, as reported in *STEP by the calls below. */
enum {
    CROW_SPAWN_FORK = 0, CROW_SPAWN_DUP = 1, CROW_SPAWN_CHDIR = 2, CROW_SPAWN_EXEC = 3,
    CROW_SPAWN_RLIMIT = 4, CROW_SPAWN_CHROOT = 5, CROW_SPAWN_SETGROUPS = 6,
    CROW_SPAWN_SETGID = 7, CROW_SPAWN_SETUID = 8
};

/* Restores every signal's default disposition and unblocks all signals.  Can't fail. */
void crow_spawn_reset_signals(void);

/* Applies S's chroot (then chdir "/"), groups, gid and uid to the calling process, and checks
 * that root cannot be regained when uid > 0.  Returns 0, or -1 with errno set and *STEP the
 * step that failed (the process may be left half-changed: callers stop on failure). */
int crow_spawn_drop(const struct crow_spawn_setup *s, int *step);

/* Runs a waiting child's whole life in a process just forked (never in the caller of fork):
 * CTL is its control socket.  Never returns: it execs, or _exits with 0 (end of stream on
 * CTL before any descriptor came) or 127 (a failure, reported on CTL as errno and step when
 * the set-up itself failed). */
void crow_spawn_child(const struct crow_spawn_setup *s, int ctl) __attribute__((noreturn));

/* Forks a waiting child for S.  Returns its pid and stores the parent's end of its control
 * socket (close-on-exec) in *CONTROL; with S->report, waits for the child's report first and,
 * when its set-up failed, reaps it and returns -1 with errno and *STEP.  Returns -1 with
 * errno (and *STEP = CROW_SPAWN_FORK) when the socket pair or the fork fails. */
pid_t crow_spawn_waiting(const struct crow_spawn_setup *s, int *control, int *step);

/* The spawner's loop, run in a process of its own (a forked child or crow-spawner) on SOCK,
 * a SOCK_SEQPACKET end: each request is a 4-byte count N; for each of the N it clones a
 * waiting child for S with CLONE_PARENT and sends back an 8-byte message (the child's pid, 0;
 * or -1, errno) carrying the parent's end of the child's control socket.  Returns 0 at end of
 * stream on SOCK (or a request of 0), -1 with errno when SOCK fails. */
int crow_spawn_serve(const struct crow_spawn_setup *s, int sock);

#endif
