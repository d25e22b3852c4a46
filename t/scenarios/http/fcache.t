#!/usr/bin/env python3
# fcache.t — files the C loop answers itself once Lisp has answered them (c-core/fcache):
# without an access log a repeated plain GET/HEAD is replayed from the worker's table, so
# every answer is checked twice or more — byte for byte the same as Lisp's first one (Date
# aside) — and every request the table must not answer still gets Lisp's: ranges and
# conditionals, other vhosts, changed, deleted and replaced files, a symlink turned to point
# outside the root, pipelining and HTTP/1.0 connection rules.  With an access log every
# request is logged (the table is off).
# timeout: 300
import hashlib
import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpd import Server, Tap, exchange, make_root, statuses  # noqa: E402


def get(port, path, host="a.test", extra="", version="1.1", method="GET", close=True, data=""):
    req = "%s %s HTTP/%s\r\nHost: %s\r\n%s%s\r\n%s" % (
        method, path, version, host, extra, "Connection: close\r\n" if close else "", data)
    out, _ = exchange(port, req.encode(), timeout=10)
    return out


def undated(resp):
    return re.sub(rb"Date: [^\r]*\r\n", b"Date: -\r\n", resp)


def head(resp):
    return resp.partition(b"\r\n\r\n")[0].decode("latin-1")


def body(resp):
    return resp.partition(b"\r\n\r\n")[2]


t = Tap()
d = make_root()
root = os.path.join(d, "root")
with open(os.path.join(root, "big.bin"), "wb") as f:
    f.write(os.urandom(1 << 20))
big_sha = hashlib.sha256(open(os.path.join(root, "big.bin"), "rb").read()).hexdigest()
srv = Server(root)
try:
    t.ok(srv.up, "crow-httpd listens (no access log: the C table is on)")
    p = srv.port
    first = get(p, "/a.txt")
    t.ok(first.startswith(b"HTTP/1.1 200") and body(first) == b"hello file\n", "first answer (Lisp)", first)
    again = [get(p, "/a.txt") for _ in range(5)]
    t.ok(all(undated(r) == undated(first) for r in again), "repeated answers are byte for byte Lisp's",
         again[0])
    t.ok(b"\r\nConnection: close\r\n" in again[0], "Connection: close when the client asked", again[0])
    etag = re.search(r"ETag: (\S+)", head(first)).group(1)
    lm = re.search(r"Last-Modified: ([^\r]+)", head(first)).group(1)
    h1 = get(p, "/a.txt", method="HEAD")
    h2 = get(p, "/a.txt", method="HEAD")
    t.ok(undated(h1) == undated(h2) == undated(first)[:-len(b"hello file\n")], "HEAD: the same head, no body", h2)
    t.eq(undated(get(p, "/a.txt?x=1&y=2")), undated(first), "a query string: the same file")
    t.eq(undated(get(p, "/a.txt", host="B.TEST")), undated(first), "an alias in capitals: the same file")
    t.eq(undated(get(p, "/a.txt", host="a.test:%d" % p)), undated(first), "Host with a port: the same file")
    r = get(p, "/a.txt", extra="Range: bytes=6-9\r\n")
    t.ok(r.startswith(b"HTTP/1.1 206") and body(r) == b"file", "Range after caching: 206 from Lisp", r)
    r = get(p, "/a.txt", extra="If-None-Match: %s\r\n" % etag)
    t.ok(r.startswith(b"HTTP/1.1 304") and body(r) == b"", "If-None-Match after caching: 304", r)
    r = get(p, "/a.txt", extra="If-Modified-Since: %s\r\n" % lm)
    t.ok(r.startswith(b"HTTP/1.1 304"), "If-Modified-Since after caching: 304", r)
    r = get(p, "/a.txt", method="POST", extra="Content-Length: 1\r\n", data="x")
    t.ok(r.startswith(b"HTTP/1.1 405"), "POST to a cached file: 405 from Lisp", r[:60])
    r = get(p, "/a.txt", method="OPTIONS")
    t.ok(r.startswith(b"HTTP/1.1 204") and b"Allow: GET, HEAD, OPTIONS" in r, "OPTIONS: 204 from Lisp", r[:200])
    r = get(p, "/a.txt", host="other.test")
    r2 = get(p, "/a.txt", host="other.test")
    t.ok(r.startswith(b"HTTP/1.1 404") and r2.startswith(b"HTTP/1.1 404"),
         "a dynamic-only vhost never gets the file", r2[:60])
    r = get(p, "/a%2etxt")
    t.ok(r.startswith(b"HTTP/1.1 200") and body(r) == b"hello file\n", "an escaped path: Lisp decodes it", r[:60])
    r = get(p, "/a.txt", version="1.0", close=False)
    t.ok(b"\r\nConnection: close\r\n" in r and body(r) == b"hello file\n", "HTTP/1.0: close line", r)
    r = get(p, "/a.txt", version="1.0", close=False, extra="Connection: keep-alive\r\n")
    t.ok(b"\r\nConnection: keep-alive\r\n" in r and body(r) == b"hello file\n", "HTTP/1.0 keep-alive line", r)
    pipe = (b"GET /a.txt HTTP/1.1\r\nHost: a.test\r\n\r\n" * 3 + b"GET /hello HTTP/1.1\r\nHost: a.test\r\n\r\n" +
            b"GET /style.css HTTP/1.1\r\nHost: a.test\r\n\r\n" +
            b"HEAD /a.txt HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
    out, closed = exchange(p, pipe, timeout=10)
    t.eq(statuses(out), [200] * 6, "pipelined file, route, file and HEAD answers in order")
    t.ok(out.count(b"hello file\n") == 3 and b"\r\n\r\nhello\n" in out and b"\r\n\r\nbody{}\n" in out and
         out.endswith(b"Content-Length: 11\r\n" + head(first).partition("Content-Length: 11\r\n")[2].encode() +
                      b"\r\n\r\n") and closed,
         "pipelined bodies in order, the HEAD last, closed after it", out[-300:])
    # A 1 MiB file with sendfile, twice.
    for i in range(2):
        r = get(p, "/big.bin")
        t.eq(hashlib.sha256(body(r)).hexdigest(), big_sha, "1 MiB file intact (%s)" % ("Lisp", "C")[i])
    # Changes to the file system are seen within a second.
    path = os.path.join(root, "a.txt")
    with open(path, "w") as f:
        f.write("changed, longer content\n")
    time.sleep(1.2)
    t.eq(body(get(p, "/a.txt")), b"changed, longer content\n", "a changed file is served anew")
    t.eq(body(get(p, "/a.txt")), b"changed, longer content\n", "... and again")
    os.unlink(path)
    time.sleep(1.2)
    t.ok(get(p, "/a.txt").startswith(b"HTTP/1.1 404"), "a deleted file: 404")
    with open(path + ".new", "w") as f:
        f.write("replaced\n")
    os.rename(path + ".new", path)
    t.eq(body(get(p, "/a.txt")), b"replaced\n", "a file put back by rename: served")
    r = get(p, "/inside.txt")
    r = get(p, "/inside.txt")
    t.eq(body(r), b"replaced\n", "a symlink inside the root, answered twice")
    os.unlink(os.path.join(root, "inside.txt"))
    os.symlink(os.path.join(d, "secret.txt"), os.path.join(root, "inside.txt"))
    time.sleep(1.2)
    r = get(p, "/inside.txt")
    t.ok(not r.startswith(b"HTTP/1.1 200") and b"outside the root" not in r,
         "the symlink turned to point outside the root: refused", r[:80])
finally:
    status, log = srv.stop()
    t.ok(status == 0, "server stopped cleanly", log[-2000:])

# With an access log, every request reaches Lisp and is logged.
logfile = os.path.join(d, "access.log")
srv = Server(root, extra="access-log %s" % logfile)
try:
    t.ok(srv.up, "crow-httpd with an access log listens")
    for _ in range(6):
        get(srv.port, "/style.css")
    deadline = time.time() + 5
    n = 0
    while time.time() < deadline:
        n = sum(1 for line in open(logfile) if "/style.css" in line) if os.path.exists(logfile) else 0
        if n >= 6:
            break
        time.sleep(0.1)
    t.eq(n, 6, "with an access log every repeated request is logged")
finally:
    srv.stop()
shutil.rmtree(d, ignore_errors=True)
t.done()
