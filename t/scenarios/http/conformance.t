#!/usr/bin/env python3
# conformance.t — crow-httpd against a raw-socket corpus of good, malformed and edge requests
# (cases written for crow, after the kinds of case in the h1spec and llhttp request corpora):
# each gets the right status, or a clean close, within a bounded time; never a hang or crash.
# timeout: 300
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpd import Server, Tap, body_of, exchange, make_root, statuses  # noqa: E402

H = b"Host: a.test\r\n"
G = b"GET /hello HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"

# (name, request bytes, expected first status or None for "a clean close without a
# response is fine too" along with a status in ALT, must-close)
CASES = [
    # request line
    ("good request", G, 200, False),
    ("garbage request line", b"GARBAGE\r\n\r\n", 400, True),
    ("two spaces after the method", b"GET  /hello HTTP/1.1\r\n" + H + b"\r\n", 400, True),
    ("space after the version", b"GET /hello HTTP/1.1 \r\n" + H + b"\r\n", 400, True),
    ("HTTP/0.9 simple request", b"GET /hello\r\n\r\n", 400, True),
    ("HTTP/2.0 in a 1.x request line", b"GET /hello HTTP/2.0\r\n" + H + b"\r\n", 505, True),
    ("HTTP/1.2", b"GET /hello HTTP/1.2\r\n" + H + b"\r\n", 505, True),
    ("HTTP/3.0", b"GET /hello HTTP/3.0\r\n" + H + b"\r\n", 505, True),
    ("HTTP/1.10", b"GET /hello HTTP/1.10\r\n" + H + b"\r\n", 400, True),
    ("lower-case http/1.1", b"GET /hello http/1.1\r\n" + H + b"\r\n", 400, True),
    ("HTTP/1 without minor", b"GET /hello HTTP/1\r\n" + H + b"\r\n", 400, True),
    ("non-token method", b"G@T /hello HTTP/1.1\r\n" + H + b"\r\n", 400, True),
    ("unknown method", b"BREW /hello HTTP/1.1\r\n" + H + b"\r\n", 501, False),
    ("TRACE", b"TRACE /hello HTTP/1.1\r\n" + H + b"\r\n", 501, False),
    ("CONNECT", b"CONNECT a.test:443 HTTP/1.1\r\n" + H + b"\r\n", 501, False),
    ("NUL in the target", b"GET /a\x00b HTTP/1.1\r\n" + H + b"\r\n", 400, True),
    ("DEL in the target", b"GET /a\x7fb HTTP/1.1\r\n" + H + b"\r\n", 400, True),
    ("tab in the target", b"GET /a\tb HTTP/1.1\r\n" + H + b"\r\n", 400, True),
    ("%00 in the path", b"GET /a%00b HTTP/1.1\r\n" + H + b"\r\n", 400, True),
    ("bad percent escape", b"GET /a%zzb HTTP/1.1\r\n" + H + b"\r\n", 400, True),
    ("truncated percent escape", b"GET /a% HTTP/1.1\r\n" + H + b"\r\n", 400, True),
    ("invalid UTF-8 in the path", b"GET /%ff%fe HTTP/1.1\r\n" + H + b"\r\n", 400, True),
    ("dot-dot segment", b"GET /../etc/passwd HTTP/1.1\r\n" + H + b"\r\n", 400, True),
    ("encoded dot-dot", b"GET /%2e%2e/etc/passwd HTTP/1.1\r\n" + H + b"\r\n", 400, True),
    ("mixed-case encoded dot-dot", b"GET /sub/%2E./%2e%2E/x HTTP/1.1\r\n" + H + b"\r\n", 400, True),
    ("encoded slash", b"GET /sub%2findex.html HTTP/1.1\r\n" + H + b"\r\n", 400, True),
    ("target not starting with /", b"GET hello HTTP/1.1\r\n" + H + b"\r\n", 400, True),
    ("absolute-form target", b"GET http://a.test/hello HTTP/1.1\r\nHost: nowhere\r\nConnection: close\r\n\r\n", 200, False),
    ("asterisk-form OPTIONS", b"OPTIONS * HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n", 204, False),
    ("URI of 9000 bytes", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414, True),
    ("leading CRLFs before the request", b"\r\n\r\n" + G, 200, False),
    ("bare LF line ends", b"GET /hello HTTP/1.1\nHost: a.test\nConnection: close\n\n", 200, False),
    # header fields
    ("HTTP/1.1 without Host", b"GET /hello HTTP/1.1\r\n\r\n", 400, True),
    ("two Host fields", b"GET /hello HTTP/1.1\r\n" + H + H + b"\r\n", 400, True),
    ("HTTP/1.0 without Host", b"GET /hello HTTP/1.0\r\n\r\n", 200, True),
    ("space in a field name", b"GET /hello HTTP/1.1\r\n" + H + b"Bad Header: y\r\n\r\n", 400, True),
    ("space before the colon", b"GET /hello HTTP/1.1\r\n" + H + b"X-A : y\r\n\r\n", 400, True),
    ("obs-fold continuation line", b"GET /hello HTTP/1.1\r\n" + H + b"X-A: y\r\n  z\r\n\r\n", 400, True),
    ("field line without colon", b"GET /hello HTTP/1.1\r\n" + H + b"NoColon\r\n\r\n", 400, True),
    ("empty field name", b"GET /hello HTTP/1.1\r\n" + H + b": v\r\n\r\n", 400, True),
    ("NUL in a field value", b"GET /hello HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400, True),
    ("bare CR in a field value", b"GET /hello HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", 400, True),
    ("20 kB field", b"GET /hello HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 20000 + b"\r\n\r\n", 431, True),
    ("65 header fields", b"GET /hello HTTP/1.1\r\n" + H + b"".join(b"X-%d: v\r\n" % i for i in range(64)) + b"\r\n", 431, True),
    ("64 header fields", b"GET /hello HTTP/1.1\r\n" + H + b"".join(b"X-%d: v\r\n" % i for i in range(62)) + b"Connection: close\r\n\r\n", 200, False),
    ("Host with a port, any case", b"GET /hello HTTP/1.1\r\nHost: A.Test:8080\r\nConnection: close\r\n\r\n", 200, False),
    # bodies: Content-Length and Transfer-Encoding
    ("non-numeric Content-Length", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\n", 400, True),
    ("negative Content-Length", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400, True),
    ("Content-Length list", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 3, 3\r\n\r\nabc", 400, True),
    ("duplicate equal Content-Length", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400, True),
    ("conflicting Content-Length", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, True),
    ("Content-Length with Transfer-Encoding", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400, True),
    ("Transfer-Encoding with Content-Length", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400, True),
    ("unknown transfer coding", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n", 400, True),
    ("chunked twice", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, True),
    ("gzip, chunked", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400, True),
    ("huge Content-Length", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 99999999999\r\n\r\n", 413, True),
    ("body over the vhost's post-max", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 70000\r\n\r\n" + b"x" * 70000, 413, True),
    ("chunked body", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 200, False),
    ("chunk extension and trailer", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\n", 200, False),
    ("bad chunk size", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400, True),
    ("0x chunk size", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", 400, True),
    ("negative chunk size", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n", 400, True),
    ("chunk size overflow", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\nabc\r\n0\r\n\r\n", 400, True),
    ("chunk data without CRLF", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n", 400, True),
    ("chunked body over post-max", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + (b"4000\r\n" + b"x" * 0x4000 + b"\r\n") * 5 + b"0\r\n\r\n", 413, True),
    # methods and routes
    ("405 with Allow", b"POST /hello HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n", 405, False),
    ("POST to a file: 405", b"POST /a.txt HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n", 405, False),
    ("missing file: 404", b"GET /nope HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n", 404, False),
    ("dynamic-only vhost has no files", b"GET /a.txt HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n", 404, False),
]

t = Tap()
d = make_root()
srv = Server(os.path.join(d, "root"), reqto="2s", kato="2s")
try:
    t.ok(srv.up, "crow-httpd listens")
    for name, req, want, must_close in CASES:
        t0 = time.time()
        out, closed = exchange(srv.port, req, timeout=6)
        st = statuses(out)
        got = st[0] if st else None
        t.ok(got == want, "%s -> %d" % (name, want), "got %r\n%r" % (got, out[:300]))
        if must_close:
            t.ok(closed and time.time() - t0 < 6, "%s: the connection closes" % name)
        if want == 405:
            t.ok(b"\r\nAllow: " in out, "%s: Allow header" % name, out[:300])

    # Bodies come through de-chunked.
    out, _ = exchange(srv.port, b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    t.ok(b"length: 5\n" in out and out.endswith(b"abcde"), "a chunked body reaches the handler de-chunked", out[-200:])
    # Expect: 100-continue: the interim response first, then the answer.
    out, _ = exchange(srv.port, None, chunks=[b"POST /echo HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: 4\r\nConnection: close\r\n\r\n", b"wxyz"])
    t.eq(statuses(out), [100, 200], "Expect: 100-continue gets 100 then 200")
    t.ok(out.endswith(b"wxyz"), "the body sent after 100 arrives", out[-100:])
    # The request's own vhost limit decides before any 100 Continue: a.test (post-max 64K)
    # refuses 70000 bytes at once; other.test (4M) asks for them and takes them.
    out, closed = exchange(srv.port, b"POST /echo HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: 70000\r\n\r\n", timeout=6)
    t.ok(statuses(out) == [413] and closed, "a small vhost refuses a large Expect body with 413, no 100 Continue", out[:300])
    out, closed = exchange(srv.port, None, chunks=[b"POST /echo HTTP/1.1\r\nHost: other.test\r\nExpect: 100-continue\r\nContent-Length: 70000\r\nConnection: close\r\n\r\n", b"y" * 70000], timeout=10)
    t.ok(statuses(out) == [100, 200] and b"length: 70000\n" in out, "a large vhost sends 100 Continue and takes the body", out[:300])
    out, closed = exchange(srv.port, b"POST /echo HTTP/1.1\r\nHost: other.test\r\nContent-Length: 70000\r\nConnection: close\r\n\r\n" + b"z" * 70000, timeout=10)
    t.ok(statuses(out) == [200] and b"length: 70000\n" in out, "a body over the small vhost's limit is fine for the large one", out[:300])
    # HEAD: the length of the GET, no body.
    out, closed = exchange(srv.port, b"HEAD /hello HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    t.ok(out.startswith(b"HTTP/1.1 200") and b"Content-Length: 6\r\n" in out and out.endswith(b"\r\n\r\n"),
         "HEAD: Content-Length of the GET, no body", out)
    # Pipelining: five requests in one write, answered in order.
    reqs = b"".join(b"GET /echo/%d HTTP/1.1\r\n" % i + H + b"\r\n" for i in range(4))
    out, closed = exchange(srv.port, reqs + b"GET /echo/4 HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    order = [int(x.split(b"\n")[0]) for x in out.split(b"GET /echo/")[1:]]
    t.eq(order, [0, 1, 2, 3, 4], "five pipelined requests answered in order")
    t.ok(closed, "the last one's Connection: close closes")
    out, closed = exchange(srv.port, b"GET /hello HTTP/1.1\r\n" + H + b"\r\nHEAD /hello HTTP/1.1\r\n" + H + b"\r\nGET /hello HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    t.ok(out.count(b"HTTP/1.1 200 OK") == 3 and out.count(b"hello\n") == 2, "GET, HEAD, GET pipelined: HEAD has no body", out)
    # HTTP/1.0 keep-alive.
    out, closed = exchange(srv.port, b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /hello HTTP/1.0\r\n\r\n")
    t.ok(out.count(b"hello\n") == 2 and b"Connection: keep-alive" in out and closed,
         "HTTP/1.0 keep-alive: two answers, the second closes", out)
    # Every response says Server: Crow/VERSION and has a Date.
    out, _ = exchange(srv.port, G)
    t.ok(b"\r\nServer: Crow/" in out and b"\r\nDate: " in out, "Server and Date headers", out[:200])
    # Chunked response.
    out, _ = exchange(srv.port, b"GET /stream?n=3 HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    t.ok(b"Transfer-Encoding: chunked" in out and out.endswith(b"0\r\n\r\n") and b"line 2\n" in out,
         "a streamed (chunked) response", out)
    out, _ = exchange(srv.port, b"GET /stream?n=2 HTTP/1.0\r\n" + H + b"\r\n")
    t.ok(b"Transfer-Encoding" not in out and body_of(out) == b"line 0\nline 1\n",
         "HTTP/1.0 gets the stream unframed, ended by the close", out)
    # Timeouts: an incomplete head gets 408 and a close; an idle connection is closed.
    t0 = time.time()
    out, closed = exchange(srv.port, b"GET /hello HTTP/1.1\r\nHost: a", timeout=10)
    t.ok(closed and out.startswith(b"HTTP/1.1 408") and time.time() - t0 < 8,
         "an unfinished head gets 408 and a close (request-timeout 2s)", out)
    t0 = time.time()
    out, closed = exchange(srv.port, b"", timeout=10)
    t.ok(closed and out == b"" and time.time() - t0 < 8,
         "an idle connection is closed silently, no 408 (keepalive-timeout 2s)", out)
    t0 = time.time()
    out, closed = exchange(srv.port, b"GET /hello HTTP/1.1\r\n" + H + b"\r\n", timeout=10)
    t.ok(closed and out.startswith(b"HTTP/1.1 200") and out.count(b"HTTP/1.1") == 1
         and b"408" not in out and time.time() - t0 < 8,
         "an idle keep-alive connection after a request closes without a 408 (RFC 9112 9.5)", out)
    out, closed = exchange(srv.port, b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 10\r\n\r\nabc", timeout=10)
    t.ok(closed and out.startswith(b"HTTP/1.1 408"), "a body that stops arriving gets 408", out)
    # After all that, it still answers.
    out, _ = exchange(srv.port, G)
    t.ok(out.startswith(b"HTTP/1.1 200"), "still answering after the corpus", out[:100])
finally:
    status, log = srv.stop()
    shutil.rmtree(d, ignore_errors=True)
t.eq(status, 0, "SIGTERM stops crow-httpd with status 0")
t.ok("stopped after" in log, "it logs its stop", log[-500:])
t.done()
