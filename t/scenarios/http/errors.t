#!/usr/bin/env python3
# errors.t — a Lisp handler that signals: before answering, the client gets a 500 and the
# connection closes; after a streamed answer began, it is cut off; either way the worker goes
# on serving (the handler-case is crow.server's, set up once per worker, with crow.http's
# handle-error answering for the unit), and the failure is logged.
# timeout: 120
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpd import Server, Tap, exchange, make_root, statuses  # noqa: E402

t = Tap()
d = make_root()
extra = "vhost err.test {\n  route /fail crow.http:fail exact\n  route /late crow.http:fail-late exact\n}"
srv = Server(os.path.join(d, "root"), extra=extra)
try:
    t.ok(srv.up, "crow-httpd listens")
    p = srv.port
    out, closed = exchange(p, b"GET /fail HTTP/1.1\r\nHost: err.test\r\n\r\n"
                              b"GET /hello HTTP/1.1\r\nHost: a.test\r\n\r\n")
    t.eq(statuses(out), [500], "a handler error before answering: 500, and nothing after it")
    t.ok(closed and b"Connection: close" in out and b"500 Internal Server Error" in out,
         "... with Connection: close, then closed", out)
    out, closed = exchange(p, b"GET /late HTTP/1.1\r\nHost: err.test\r\n\r\n")
    t.ok(out.startswith(b"HTTP/1.1 200") and b"first chunk" in out and not out.endswith(b"0\r\n\r\n") and closed,
         "an error after a streamed answer began: cut off, closed", out)
    for i in range(3):
        out, closed = exchange(p, b"GET /fail HTTP/1.1\r\nHost: err.test\r\nConnection: close\r\n\r\n")
        t.ok(out.startswith(b"HTTP/1.1 500"), "failure %d answered 500" % (i + 2), out[:60])
    out, closed = exchange(p, b"GET /hello HTTP/1.1\r\nHost: a.test\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: a.test\r\n"
                              b"Connection: close\r\n\r\n")
    t.eq(statuses(out), [200, 200], "the worker goes on serving (pipelined route and file)")
finally:
    status, log = srv.stop()
    t.ok(status == 0, "server stopped cleanly", log[-2000:])
    t.ok("GET /fail: crow.http:fail was asked to fail" in log and "fail-late was asked to fail" in log,
         "the failures are logged with method and target", log[-2000:])
shutil.rmtree(d, ignore_errors=True)
t.done()
