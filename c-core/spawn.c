/* spawn.c — pre-forked waiting children and the spawner that clones them.
 *
 * Design.  mmspawnd keeps a pool of children already set up (rlimits, chroot, ids, umask,
 * cwd) that exec the service program when handed a connection.  A child made by fork from a
 * large process (an ECL image) is expensive twice: fork copies the page tables, and every
 * page the parent writes afterwards takes a copy-on-write fault.  So children are cloned by a
 * spawner: a separate small process (crow-spawner, exec'd once) or, failing that, a forked
 * copy of the parent that stays in this file's C loop.  Clones use CLONE_PARENT, making them
 * children of the spawner's parent, which reaps them and counts them as its own.
 * Everything a child needs is prepared before the fork (struct crow_spawn_setup); in the
 * child only system calls run, so it is safe even when the parent has threads.  The child's
 * descriptors are 0 and 1 on /dev/null, 2 on stderr, 3 its control socket, nothing else
 * (close_range).  The control socket is SOCK_SEQPACKET: message boundaries, and end of stream
 * when the parent closes its end.  A set-up report is sent only when the parent will read it:
 * an unread message in the parent's end when the parent closes it would make the child's
 * receive fail with ECONNRESET instead of delivering the descriptor sent before the close.
 * These functions never print; those that run in the child end it with _exit. */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void close_from(int lowfd)
{
    if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0) == 0) return;
    for (int k = lowfd; k < 65536; k++) close(k);
}

void crow_spawn_reset_signals(void)
{
    struct sigaction dfl;
    sigset_t none;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int k = 1; k < NSIG; k++)
        if (k != SIGKILL && k != SIGSTOP) sigaction(k, &dfl, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static void report(int fd, int err, int step)
{
    int msg[2] = { err, step };
    ssize_t x = send(fd, msg, sizeof msg, MSG_NOSIGNAL);
    (void)x;
}

int crow_spawn_drop(const struct crow_spawn_setup *s, int *step)
{
    if (s->root && (chroot(s->root) < 0 || chdir("/") < 0)) { *step = CROW_SPAWN_CHROOT; return -1; }
    if (s->ngroups >= 0 && setgroups((size_t)s->ngroups, s->groups) < 0) {
        *step = CROW_SPAWN_SETGROUPS; return -1;
    }
    if (s->gid >= 0 && setresgid((gid_t)s->gid, (gid_t)s->gid, (gid_t)s->gid) < 0) {
        *step = CROW_SPAWN_SETGID; return -1;
    }
    if (s->uid >= 0 && setresuid((uid_t)s->uid, (uid_t)s->uid, (uid_t)s->uid) < 0) {
        *step = CROW_SPAWN_SETUID; return -1;
    }
    if (s->uid > 0 && (setuid(0) == 0 || geteuid() == 0)) {
        errno = EPERM; *step = CROW_SPAWN_SETUID; return -1;
    }
    return 0;
}

void crow_spawn_child(const struct crow_spawn_setup *s, int ctl)
{
    int err = s->err, step = CROW_SPAWN_DUP;
    if (!s->signals_clean) crow_spawn_reset_signals();
    /* The control socket to 3 (close-on-exec), /dev/null to 0 and 1, stderr to 2. */
    int c = fcntl(ctl, F_DUPFD_CLOEXEC, 3);
    if (c < 0) goto early;
    if (s->devnull >= 0 && (dup2(s->devnull, 0) < 0 || dup2(s->devnull, 1) < 0)) goto early;
    if (err < 0) err = s->devnull;
    if (err >= 0 && err != 2 && dup2(err, 2) < 0) goto early;
    if (err == 2) fcntl(2, F_SETFD, 0);
    if (c != 3 && dup3(c, 3, O_CLOEXEC) < 0) goto early;
    close_from(4);
    for (int k = 0; k < s->nrlimits; k++) {
        struct rlimit l;
        l.rlim_cur = s->rlimits[3 * k + 1] < 0 ? RLIM_INFINITY : (rlim_t)s->rlimits[3 * k + 1];
        l.rlim_max = s->rlimits[3 * k + 2] < 0 ? RLIM_INFINITY : (rlim_t)s->rlimits[3 * k + 2];
        if (setrlimit((int)s->rlimits[3 * k], &l) < 0) { step = CROW_SPAWN_RLIMIT; goto fail; }
    }
    if (crow_spawn_drop(s, &step) < 0) goto fail;
    if (s->umask >= 0) umask((mode_t)s->umask);
    if (s->dir && chdir(s->dir) < 0) { step = CROW_SPAWN_CHDIR; goto fail; }
    if (s->report) report(3, 0, 0);
    for (;;) {
        char buf[4096];
        struct msghdr mh;
        struct iovec v;
        union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } cm;
        int fd = -1;
        memset(&mh, 0, sizeof mh);
        v.iov_base = buf;
        v.iov_len = sizeof buf - 1;
        mh.msg_iov = &v;
        mh.msg_iovlen = 1;
        mh.msg_control = cm.b;
        mh.msg_controllen = sizeof cm.b;
        ssize_t r = recvmsg(3, &mh, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) _exit(0);
        struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
        if (h && h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS)
            memcpy(&fd, CMSG_DATA(h), sizeof fd);
        if (fd < 0) continue;
        if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0) _exit(127);
        if (fd > 2) close(fd);
        int fl = fcntl(0, F_GETFL);
        if (fl >= 0) fcntl(0, F_SETFL, fl & ~O_NONBLOCK);
        buf[r] = 0;
        {
            char *envp[s->nenv + 65];
            long n = 0;
            char *p = buf, *end = buf + r;
            for (long i = 0; i < s->nenv; i++) envp[n++] = s->env[i];
            while (p < end && n < s->nenv + 64) {
                if (*p) envp[n++] = p;
                p += strlen(p) + 1;
            }
            envp[n] = NULL;
            close(3);
            execve(s->prog, s->argv, envp);
        }
        _exit(127);
    }
fail:
    report(3, errno, step);
    _exit(127);
early:
    report(ctl, errno, step);
    _exit(127);
}

pid_t crow_spawn_waiting(const struct crow_spawn_setup *s, int *control, int *step)
{
    int sv[2];
    *step = CROW_SPAWN_FORK;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return -1;
    pid_t pid = fork();
    if (pid == 0) crow_spawn_child(s, sv[1]);
    int e = errno;
    close(sv[1]);
    if (pid < 0) { close(sv[0]); errno = e; return -1; }
    if (s->report) {
        int msg[2];
        ssize_t n;
        do n = recv(sv[0], msg, sizeof msg, 0); while (n < 0 && errno == EINTR);
        if (n != (ssize_t)sizeof msg || msg[0] != 0) {
            int st;
            if (n == (ssize_t)sizeof msg) { e = msg[0]; *step = msg[1]; }
            else { e = n < 0 ? errno : EPIPE; *step = CROW_SPAWN_FORK; }
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR) ;
            close(sv[0]);
            errno = e;
            return -1;
        }
    }
    *control = sv[0];
    return pid;
}

static int send_child(int sock, long pid, int err, int fd)
{
    int msg[2] = { (int)pid, err };
    struct msghdr m;
    struct iovec v;
    union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    ssize_t x;
    memset(&m, 0, sizeof m);
    memset(&u, 0, sizeof u);
    v.iov_base = msg;
    v.iov_len = sizeof msg;
    m.msg_iov = &v;
    m.msg_iovlen = 1;
    if (fd >= 0) {
        m.msg_control = u.b;
        m.msg_controllen = sizeof u.b;
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    do x = sendmsg(sock, &m, MSG_NOSIGNAL); while (x < 0 && errno == EINTR);
    return x < 0 ? -1 : 0;
}

int crow_spawn_serve(const struct crow_spawn_setup *s, int sock)
{
    for (;;) {
        int req;
        ssize_t r = recv(sock, &req, sizeof req, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r != (ssize_t)sizeof req || req <= 0) return 0;
        for (int k = 0; k < req; k++) {
            int sv[2];
            long child = -1;
            int err = 0;
            if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
                err = errno;
                sv[0] = sv[1] = -1;
            } else {
                child = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, NULL, NULL, 0);
                if (child == 0) {
                    close(sock);
                    close(sv[0]);
                    crow_spawn_child(s, sv[1]);
                }
                if (child < 0) err = errno;
                close(sv[1]);
            }
            int sent = send_child(sock, child, err, child > 0 ? sv[0] : -1);
            if (sv[0] >= 0) close(sv[0]);
            if (sent < 0) return -1;
        }
    }
}
