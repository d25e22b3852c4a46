/* test_spawn.c — waiting children (crow_spawn_waiting) handed a descriptor with environment
 * strings, set-up failures reported with their step, and the spawner (crow_spawn_serve)
 * cloning children that the test process itself reaps (CLONE_PARENT). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fdio.h"
#include "spawn.h"
#include "tap.h"

static int hand(int control, int fd, const char *env, size_t len)
{
    struct msghdr m;
    struct iovec v;
    union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    memset(&m, 0, sizeof m);
    memset(&u, 0, sizeof u);
    v.iov_base = (void *)env;
    v.iov_len = len;
    m.msg_iov = &v;
    m.msg_iovlen = 1;
    m.msg_control = u.b;
    m.msg_controllen = sizeof u.b;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    return (int)sendmsg(control, &m, MSG_NOSIGNAL);
}

/* Hands a fresh socket pair's end to the child behind CONTROL; returns what it wrote. */
static ssize_t run_child(int control, const char *env, size_t len, char *out, size_t cap)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) return -1;
    int r = hand(control, sv[0], env, len);
    close(control);
    close(sv[0]);
    if (r < 0) { close(sv[1]); return -1; }
    ssize_t n = crow_fd_read_full(sv[1], out, cap - 1);
    close(sv[1]);
    if (n >= 0) out[n] = 0;
    if (n > 0 && out[n - 1] == '\n') out[n - 1] = 0;
    return n;
}

static char *const sh_argv[] = {
    "sh", "-c", "echo conn=$CONN base=$BASE nofile=$(ulimit -n) fds=$(ls /proc/self/fd | wc -l)", NULL
};
static char *const base_env[] = { "BASE=b", "PATH=/usr/bin:/bin", NULL };

int main(void)
{
    int64_t rl[3] = { RLIMIT_NOFILE, 40, 40 };
    struct crow_spawn_setup s;
    char out[512];
    int control = -1, step = -1, st = 0;

    memset(&s, 0, sizeof s);
    s.prog = "/bin/sh"; s.argv = sh_argv; s.env = base_env; s.nenv = 2;
    s.rlimits = rl; s.nrlimits = 1;
    s.ngroups = -1; s.gid = -1; s.uid = -1; s.umask = -1;
    s.devnull = -1; s.err = -1; s.report = 1;

    pid_t pid = crow_spawn_waiting(&s, &control, &step);
    ok(pid > 0 && control >= 0, "crow_spawn_waiting forks a child that reports ready");
    static const char env[] = "CONN=c1\0";
    ssize_t n = run_child(control, env, sizeof env - 1, out, sizeof out);
    ok(n > 0 && strstr(out, "conn=c1 base=b nofile=40") != NULL,
       "the handed descriptor is stdout; environment and rlimit as set up: %s", out);
    /* ls /proc/self/fd lists 0 1 2 and its own directory descriptor: nothing leaked. */
    ok(strstr(out, "fds=4") != NULL, "only 0, 1, 2 are open in the program");
    ok(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child exits 0");

    s.dir = "/nonexistent/dir";
    pid = crow_spawn_waiting(&s, &control, &step);
    ok(pid == -1 && errno == ENOENT && step == CROW_SPAWN_CHDIR,
       "a set-up failure is reported with its errno and step (chdir)");
    s.dir = NULL;

    s.report = 0;
    pid = crow_spawn_waiting(&s, &control, &step);
    ok(pid > 0, "a child without a report");
    close(control);
    ok(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
       "end of stream on its control socket: it exits 0 without running the program");

    s.prog = "/nonexistent/program";
    pid = crow_spawn_waiting(&s, &control, &step);
    n = run_child(control, env, sizeof env - 1, out, sizeof out);
    ok(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 127,
       "a failed execve exits 127");
    s.prog = "/bin/sh";

    /* The spawner, in a forked process of its own. */
    int z[2];
    ok(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, z) == 0, "spawner socket pair");
    pid_t zpid = fork();
    if (zpid == 0) { close(z[0]); _exit(crow_spawn_serve(&s, z[1]) == 0 ? 0 : 1); }
    close(z[1]);
    int req = 2;
    ok(send(z[0], &req, sizeof req, 0) == (ssize_t)sizeof req, "ask the spawner for 2 children");
    int got = 0;
    for (int k = 0; k < 2; k++) {
        int msg[2] = { 0, 0 }, fd = -1;
        struct msghdr m;
        struct iovec v = { msg, sizeof msg };
        union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
        memset(&m, 0, sizeof m);
        m.msg_iov = &v; m.msg_iovlen = 1; m.msg_control = u.b; m.msg_controllen = sizeof u.b;
        if (recvmsg(z[0], &m, 0) == (ssize_t)sizeof msg && CMSG_FIRSTHDR(&m))
            memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof fd);
        if (msg[0] <= 0 || fd < 0) continue;
        char e2[32];
        int len = snprintf(e2, sizeof e2, "CONN=z%d", k) + 1;
        n = run_child(fd, e2, (size_t)len, out, sizeof out);
        char want[32];
        snprintf(want, sizeof want, "conn=z%d base=b", k);
        if (n > 0 && strstr(out, want) && waitpid(msg[0], &st, 0) == msg[0] && WIFEXITED(st)
            && WEXITSTATUS(st) == 0)
            got++;
    }
    is_int(got, 2, "two cloned children ran and were reaped by this process (CLONE_PARENT)");
    close(z[0]);
    ok(waitpid(zpid, &st, 0) == zpid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
       "the spawner returns 0 at end of stream");
    return tap_done();
}
