#!/usr/bin/env python3
# slowloris.t — with max-per-address >= 1,000, 1,000 connections trickle a request head a byte at a time; while all of them
# are still open, a normal request is answered within a few seconds (one-sided bound; the
# latency figure belongs in the benchmark).  Then max-per-address 3: the 4th gets 503.
# timeout: 300
import os
import shutil
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpd import Server, Tap, exchange, make_root  # noqa: E402

N = 1000
t = Tap()
d = make_root()
# request-timeout is long enough for the trickle; max-connections leaves room for the probe.
srv = Server(os.path.join(d, "root"), maxconn=N + 100, reqto="60s", kato="60s",
             extra="max-per-address %d" % (N + 10))
socks = []
try:
    t.ok(srv.up, "crow-httpd listens")
    head = b"GET /hello HTTP/1.1\r\nHost: a.test\r\nX-Slow: " + b"a" * 200
    for i in range(N):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.setblocking(False)
        socks.append(s)
    t.eq(len(socks), N, "%d connections opened" % N)
    t0 = time.time()
    worst = 0.0
    for step in range(5):               # five rounds of one byte per connection
        for s in socks:
            try:
                s.send(head[step:step + 1])
            except OSError:
                pass
        p0 = time.time()
        out, _ = exchange(srv.port, b"GET /hello HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n", timeout=10)
        lat = time.time() - p0
        worst = max(worst, lat)
        if not out.endswith(b"hello\n"):
            break
        time.sleep(0.5)
    t.ok(out.endswith(b"hello\n"), "a normal request is answered while %d trickle" % N, out[:200])
    t.ok(worst < 3.0, "within 3 s each time (worst %.3f s)" % worst)
    alive = 0
    for s in socks:
        try:
            s.recv(1)               # nothing to read yet: EAGAIN means still open
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    t.eq(alive, N, "all %d slow connections are still open" % N)
    print("# probe latency worst %.1f ms with %d slow connections" % (worst * 1000, N))
finally:
    for s in socks:
        s.close()
    status, log = srv.stop()
t.eq(status, 0, "crow-httpd stops with status 0")

# max-per-address: beyond it, a connection gets 503 and is closed; the others are served.
srv = Server(os.path.join(d, "root"), reqto="60s", kato="60s", extra="max-per-address 3")
held = []
try:
    t.ok(srv.up, "crow-httpd with max-per-address 3 listens")
    # Each held connection is answered once (keep-alive), so the server has surely accepted
    # and admitted it before the 4th connects, however loaded the machine is.
    for i in range(3):
        c = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        c.sendall(b"GET /hello HTTP/1.1\r\nHost: a.test\r\n\r\n")
        got = b""
        deadline = time.time() + 10
        while not got.endswith(b"hello\n") and time.time() < deadline:
            chunk = c.recv(4096)
            if not chunk:
                break
            got += chunk
        held.append(c)
    out, closed = exchange(srv.port, b"GET /hello HTTP/1.1\r\nHost: a.test\r\n\r\n", timeout=5)
    t.ok(out.startswith(b"HTTP/1.1 503") and closed, "a 4th connection from the address gets 503 and a close", out[:200])
    held[0].sendall(b"GET /hello HTTP/1.1\r\nHost: a.test\r\n\r\n")
    got = b""
    while not got.endswith(b"hello\n"):
        c = held[0].recv(4096)
        if not c:
            break
        got += c
    t.ok(got.startswith(b"HTTP/1.1 200") and got.endswith(b"hello\n"), "the admitted connections are served", got)
    held.pop(0).close()
    time.sleep(0.3)
    out, closed = exchange(srv.port, b"GET /hello HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n", timeout=5)
    t.ok(out.endswith(b"hello\n"), "after one closes, a new connection is admitted", out[:200])
finally:
    for s in held:
        s.close()
    status, log = srv.stop()
    shutil.rmtree(d, ignore_errors=True)
t.eq(status, 0, "crow-httpd stops with status 0")
t.done()
