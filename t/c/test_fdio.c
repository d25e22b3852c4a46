/* test_fdio.c — whole-buffer write/writev/sendfile/read over pipes and a temporary file. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crow.h"
#include "fdio.h"
#include "tap.h"

int main(void)
{
    int p[2];
    char buf[256];

    ok(strcmp(crow_version(), CROW_VERSION) == 0, "crow_version is %s", CROW_VERSION);

    ok(pipe(p) == 0, "pipe");
    is_int(crow_fd_write_all(p[1], "hello", 5, NULL), 5, "write_all returns length");
    is_int(crow_fd_read_full(p[0], buf, 5), 5, "read_full reads 5");
    ok(memcmp(buf, "hello", 5) == 0, "bytes arrive intact");

    struct iovec iov[3] = {{"ab", 2}, {"", 0}, {"cdef", 4}};
    is_int(crow_fd_writev_all(p[1], iov, 3, NULL), 6, "writev_all skips empty iovecs");
    close(p[1]);
    is_int(crow_fd_read_full(p[0], buf, sizeof buf), 6, "read_full stops at EOF");
    ok(memcmp(buf, "abcdef", 6) == 0, "writev bytes in order");
    close(p[0]);

    /* A writev larger than the pipe buffer forces short writes; a child drains the pipe. */
    enum { BIG = 1 << 20 };
    char *big = malloc(BIG), *back = malloc(BIG);
    for (int i = 0; i < BIG; i++)
        big[i] = (char)(i * 7 + 3);
    ok(pipe(p) == 0, "pipe 2");
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        struct iovec v[2] = {{big, BIG / 2}, {big + BIG / 2, BIG / 2}};
        _exit(crow_fd_writev_all(p[1], v, 2, NULL) == BIG ? 0 : 1);
    }
    close(p[1]);
    is_int(crow_fd_read_full(p[0], back, BIG), BIG, "1 MiB through a pipe with short writes");
    ok(memcmp(big, back, BIG) == 0, "1 MiB identical");
    int st;
    waitpid(pid, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer saw every byte written");
    close(p[0]);

    char path[] = "/tmp/crow-fdio-XXXXXX";
    int fd = mkstemp(path);
    ok(fd >= 0, "mkstemp");
    crow_fd_write_all(fd, big, BIG, NULL);
    ok(pipe(p) == 0, "pipe 3");
    pid = fork();
    if (pid == 0) {
        close(p[0]);
        off_t off = 100;
        _exit(crow_fd_sendfile_all(p[1], fd, &off, BIG) == BIG - 100 && off == BIG ? 0 : 1);
    }
    close(p[1]);
    is_int(crow_fd_read_full(p[0], back, BIG), BIG - 100, "sendfile_all stops at end of file");
    ok(memcmp(big + 100, back, BIG - 100) == 0, "sendfile bytes identical from offset 100");
    waitpid(pid, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "sendfile advanced the offset to EOF");
    close(p[0]);
    close(fd);
    unlink(path);

    errno = 0;
    ok(crow_fd_write_all(-1, "x", 1, NULL) == -1 && errno == EBADF, "bad fd: -1 and EBADF");
    free(big);
    free(back);
    return tap_done();
}
