#!/usr/bin/env python3
# static.t — crow-httpd's files driven by curl: content, media types, HEAD, ranges (single,
# multiple, unsatisfiable), conditional requests, index files, listings with escaped names,
# the root's boundary (.., encoded forms, symlinks out), chunked upload, keep-alive, an access
# log piped to a command.
# timeout: 300
import hashlib
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpd import Server, Tap, exchange, make_root  # noqa: E402


def curl(*args, timeout=20):
    r = subprocess.run(["curl", "-s", "-H", "Host: a.test"] + list(args), capture_output=True, timeout=timeout)
    return r


def head_body(out):
    head, _, body = out.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


def header(head, name):
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


t = Tap()
d = make_root()
root = os.path.join(d, "root")
logfile = os.path.join(d, "access.log")
srv = Server(root, listing="yes", extra='access-log "|cat >> %s"' % logfile)
try:
    t.ok(srv.up, "crow-httpd listens")
    u = srv.url
    r = curl("-i", u("/a.txt"))
    h, b = head_body(r.stdout)
    t.ok(h.startswith("HTTP/1.1 200") and b == b"hello file\n", "a file's bytes", r.stdout)
    t.eq(header(h, "Content-Type"), "text/plain; charset=utf-8", "text/plain with the vhost's charset")
    t.eq(header(h, "Content-Length"), "11", "Content-Length")
    lm, etag = header(h, "Last-Modified"), header(h, "ETag")
    t.ok(lm and lm.endswith("GMT") and etag and etag.startswith('"'), "Last-Modified and ETag", h)
    r = curl("-i", u("/style.css"))
    t.eq(header(head_body(r.stdout)[0], "Content-Type"), "text/css; charset=utf-8", "text/css for .css")
    r = curl("-i", u("/bin4k"))
    h, b = head_body(r.stdout)
    t.ok(b == bytes(range(256)) * 16, "a 4 KiB binary file arrives intact")
    t.eq(header(h, "Content-Type"), "application/octet-stream", "unknown extension: octet-stream")
    r = curl("-sI", u("/a.txt"))
    t.ok(r.stdout.startswith(b"HTTP/1.1 200") and b"Content-Length: 11" in r.stdout and r.stdout.endswith(b"\r\n\r\n"),
         "HEAD: headers only", r.stdout)
    # Ranges.
    r = curl("-i", "-r", "6-9", u("/a.txt"))
    h, b = head_body(r.stdout)
    t.ok(h.startswith("HTTP/1.1 206") and b == b"file" and header(h, "Content-Range") == "bytes 6-9/11",
         "single range: 206 with the slice", r.stdout)
    r = curl("-i", "-r", "-5", u("/a.txt"))
    t.eq(head_body(r.stdout)[1], b"file\n", "suffix range: the last 5 bytes")
    r = curl("-i", "-r", "250-", u("/bin4k"))
    t.eq(head_body(r.stdout)[1], (bytes(range(256)) * 16)[250:], "open range: to the end")
    r = curl("-i", "-r", "0-1,6-9", u("/a.txt"))
    h, b = head_body(r.stdout)
    ct = header(h, "Content-Type") or ""
    t.ok(h.startswith("HTTP/1.1 206") and ct.startswith("multipart/byteranges; boundary="), "two ranges: multipart/byteranges", h)
    boundary = ct.partition("boundary=")[2].encode()
    parts = [p for p in b.split(b"--" + boundary) if p.strip(b"\r\n-")]
    got = [p.partition(b"\r\n\r\n")[2].rstrip(b"\r\n") for p in parts]
    t.eq(got, [b"he", b"file"], "the parts hold the ranges")
    t.eq(int(header(h, "Content-Length")), len(b), "multipart Content-Length is exact")
    t.ok(b"Content-Range: bytes 6-9/11" in b, "each part has its Content-Range")
    r = curl("-i", "-r", "100-200", u("/a.txt"))
    h, _ = head_body(r.stdout)
    t.ok(h.startswith("HTTP/1.1 416") and header(h, "Content-Range") == "bytes */11", "unsatisfiable: 416", h)
    r = curl("-i", "-r", "0-3", "-H", 'If-Range: "other"', u("/a.txt"))
    t.ok(r.stdout.startswith(b"HTTP/1.1 200"), "If-Range with another ETag: the whole file", r.stdout[:100])
    r = curl("-i", "-r", "0-3", "-H", "If-Range: %s" % etag, u("/a.txt"))
    t.ok(r.stdout.startswith(b"HTTP/1.1 206"), "If-Range with the ETag: the range", r.stdout[:100])
    # Conditional requests.
    r = curl("-i", "-H", "If-None-Match: %s" % etag, u("/a.txt"))
    h, b = head_body(r.stdout)
    t.ok(h.startswith("HTTP/1.1 304") and b == b"", "If-None-Match with the ETag: 304, no body", r.stdout)
    r = curl("-i", "-H", 'If-None-Match: "x", %s' % etag, u("/a.txt"))
    t.ok(r.stdout.startswith(b"HTTP/1.1 304"), "If-None-Match list", r.stdout[:100])
    r = curl("-i", "-H", 'If-None-Match: "x"', u("/a.txt"))
    t.ok(r.stdout.startswith(b"HTTP/1.1 200"), "If-None-Match with another ETag: 200", r.stdout[:100])
    r = curl("-i", "-H", "If-Modified-Since: %s" % lm, u("/a.txt"))
    t.ok(r.stdout.startswith(b"HTTP/1.1 304"), "If-Modified-Since = Last-Modified: 304", r.stdout[:100])
    r = curl("-i", "-H", "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT", u("/a.txt"))
    t.ok(r.stdout.startswith(b"HTTP/1.1 200"), "If-Modified-Since long ago: 200", r.stdout[:100])
    r = curl("-i", "-z", "Sat, 01 Jan 2000 00:00:00 GMT", u("/a.txt"))
    t.ok(r.stdout.startswith(b"HTTP/1.1 200"), "curl -z: 200", r.stdout[:100])
    # A changed file is seen within the cache's second.
    with open(os.path.join(root, "a.txt"), "w") as f:
        f.write("changed content\n")
    time.sleep(1.2)
    r = curl(u("/a.txt"))
    t.eq(r.stdout, b"changed content\n", "a changed file is served anew (cache revalidated)")
    # Index files, redirects, listings.
    r = curl("-i", u("/"))
    t.eq(head_body(r.stdout)[1], b"<h1>index</h1>\n", "/ serves index.html")
    r = curl("-i", u("/sub"))
    h, _ = head_body(r.stdout)
    t.ok(h.startswith("HTTP/1.1 301") and header(h, "Location") == "/sub/", "a directory without its slash: 301", h)
    r = curl("-i", u("/sub/"))
    t.eq(head_body(r.stdout)[1], b"sub index\n", "/sub/ serves its index")
    r = curl("-i", u("/bare/"))
    h, b = head_body(r.stdout)
    t.ok(h.startswith("HTTP/1.1 200") and b"&lt;b&gt;&amp;x.txt" in b and b"<b>&x" not in b,
         "listing with HTML-escaped names", b)
    t.ok(b'href="%3Cb%3E%26x.txt"' in b, "listing links percent-encoded", b)
    r = curl(u("/bare/%3Cb%3E%26x.txt"))
    t.eq(r.stdout, b"x\n", "the listed file is reachable by its encoded name")
    # The root's boundary.
    r = curl("-i", u("/inside.txt"))
    t.ok(r.stdout.startswith(b"HTTP/1.1 200"), "a symlink inside the root is served", r.stdout[:100])
    r = curl("-i", u("/escape.txt"))
    t.ok(r.stdout.startswith(b"HTTP/1.1 404") and b"outside the root" not in r.stdout, "a symlink leading outside: refused", r.stdout[:200])
    r = curl("-i", u("/escdir/secret.txt"))
    t.ok(r.stdout.startswith(b"HTTP/1.1 404") and b"outside the root" not in r.stdout, "a directory symlink leading outside: refused", r.stdout[:200])
    for path in ["/../secret.txt", "/%2e%2e/secret.txt", "/sub/..%2fsecret.txt", "/sub/%2E%2E/%2e%2e/secret.txt", "/a.txt%00.html"]:
        out, closed = exchange(srv.port, b"GET " + path.encode() + b" HTTP/1.1\r\nHost: a.test\r\n\r\n")
        t.ok(out.startswith(b"HTTP/1.1 400") and b"outside the root" not in out, "refused: %s" % path, out[:200])
    r = curl("-i", "--path-as-is", u("/../secret.txt"))
    t.ok(b"outside the root" not in r.stdout and r.stdout.startswith(b"HTTP/1.1 400"), "curl --path-as-is /../: refused", r.stdout[:100])
    # Chunked upload, keep-alive, pipelining with curl.
    data = os.urandom(30000)
    path = os.path.join(d, "up.bin")
    with open(path, "wb") as f:
        f.write(data)
    r = curl("-H", "Transfer-Encoding: chunked", "--data-binary", "@" + path, u("/echo"))
    t.ok(r.stdout.endswith(data) and b"length: 30000\n" in r.stdout, "chunked upload of 30000 bytes arrives intact",
         r.stdout[:200])
    r = curl("-H", "Expect: 100-continue", "--data-binary", "@" + path, u("/echo"))
    t.ok(r.stdout.endswith(data), "upload with Expect: 100-continue", r.stdout[:200])
    r = subprocess.run(["curl", "-sv", "-H", "Host: a.test", u("/a.txt"), u("/hello"), u("/bin4k")],
                       capture_output=True, timeout=20)
    t.ok(r.stdout.startswith(b"changed content\nhello\n") and b"Re-using existing connection" in r.stderr,
         "keep-alive: three requests on one connection", r.stderr[-400:])
    r = subprocess.run(["curl", "-s", "--http1.1", "-H", "Host: a.test", u("/hello")] * 1, capture_output=True, timeout=20)
    t.eq(r.stdout, b"hello\n", "/hello from the Lisp handler")
    # Access log through a pipe.
    time.sleep(0.5)
    log = open(logfile).read() if os.path.exists(logfile) else ""
    lines = [l for l in log.splitlines() if '"GET /a.txt HTTP/1.1" 200 11' in l]
    t.ok(lines and lines[0].startswith("127.0.0.1 - - [") and lines[0].endswith('"curl/' + lines[0].rsplit('"curl/', 1)[-1]),
         "combined-format access lines reach the piped command", log[:600])
finally:
    status, out = srv.stop()
    shutil.rmtree(d, ignore_errors=True)
t.eq(status, 0, "crow-httpd stops with status 0")
t.done()
