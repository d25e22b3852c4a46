/* test_evloop_unlisten.c — crow_ev_unlisten: a draining loop stops accepting (connections stay
 * queued on the shared listener for another process) while its open connections are served. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "evloop.h"
#include "evnet.h"
#include "tap.h"

int main(void)
{
    struct crow_ev_config cfg;
    crow_ev_config_init(&cfg);
    cfg.notify_open = 1;
    struct crow_ev *ev = crow_ev_new(&cfg);
    int lfd = crow_ev_tcp_listener("127.0.0.1", 0, 0, 16);
    ok(ev && lfd >= 0, "a loop and a listener");
    int port = local_port(lfd);
    ok(crow_ev_listen(ev, lfd, CROW_EV_LINE, CROW_EV_EXCLUSIVE) == 0, "listen (exclusive)");

    struct crow_ev_unit u;
    int c1 = dial(port);
    int r = crow_ev_next(ev, &u, 2000);
    ok(r == 1 && u.kind == CROW_EV_OPEN && u.listener == 0, "the first connection is accepted");
    uint64_t id = u.conn;
    crow_ev_done(ev, id, 0);

    crow_ev_unlisten(ev);
    int c2 = dial(port); /* completes: the kernel queues it on the listener */
    ok(c2 >= 0, "a second client connects (queued)");
    r = crow_ev_next(ev, &u, 300);
    ok(r == 0, "after unlisten the loop accepts nothing");

    ssize_t w = write(c1, "hi\n", 3);
    r = crow_ev_next(ev, &u, 2000);
    ok(w == 3 && r == 1 && u.kind == CROW_EV_LINE_UNIT && u.conn == id && u.len == 2 &&
           !memcmp(u.data, "hi", 2),
       "the open connection is still served");
    struct iovec iov = {.iov_base = "ok\n", .iov_len = 3};
    crow_ev_reply(ev, id, &iov, 1, 0);
    r = crow_ev_next(ev, &u, 100);
    char buf[8];
    ssize_t n = read(c1, buf, sizeof buf);
    ok(n == 3 && !memcmp(buf, "ok\n", 3), "and its reply written");

    int a2 = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    ok(a2 >= 0, "the queued connection is still there for another accepter");
    crow_ev_unlisten(ev); /* twice: harmless */
    ok(1, "a second unlisten is harmless");

    if (a2 >= 0)
        close(a2);
    close(c1);
    if (c2 >= 0)
        close(c2);
    crow_ev_destroy(ev);
    close(lfd);
    return tap_done();
}
