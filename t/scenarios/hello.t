#!/usr/bin/env python3
# hello.t — crow-hello (Lisp handler on crow.server's C event workers) answers real HTTP
# clients: curl, keep-alive, HEAD, HTTP/1.0, pipelining in order, 400/431 on bad heads, two
# workers, a handler redefined through swank answering the very next request, SIGTERM.
# timeout: 400
import os
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import BIN, ROOT, Tap, free_port, stop, swank_eval, wait_port

t = Tap()
hello = os.path.join(BIN, "crow-hello")
port = free_port()
sport = free_port()
env = dict(os.environ, CROW_CACHE=os.path.join(ROOT, "build", "swank-cache"))
p = subprocess.Popen([hello, "--foreground", "-l", "127.0.0.1:%d" % port, "-t", "2", "--swank", str(sport)],
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def raw(data, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        pass
    s.close()
    return out


try:
    t.ok(wait_port("127.0.0.1", port, 60, p), "crow-hello listens")
    r = subprocess.run(["curl", "-si", "http://127.0.0.1:%d/index" % port], capture_output=True, timeout=20)
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    t.ok(head.startswith(b"HTTP/1.1 200 OK"), "curl gets 200", head)
    t.ok(b"\r\nServer: Crow/0.1.0" in head, "Server: Crow/VERSION")
    t.ok(b"\r\nDate: " in head and head.count(b"GMT") == 1, "a Date header")
    t.eq(body, b"Hello from crow!\n", "the body")
    t.ok(b"Content-Length: 17" in head, "Content-Length matches the body")
    r = subprocess.run(["curl", "-sI", "http://127.0.0.1:%d/" % port], capture_output=True, timeout=20)
    t.ok(r.stdout.startswith(b"HTTP/1.1 200") and r.stdout.endswith(b"\r\n\r\n"), "HEAD: headers, no body", r.stdout)
    # curl reusing one connection for three URLs.
    r = subprocess.run(["curl", "-sv", "http://127.0.0.1:%d/a" % port, "http://127.0.0.1:%d/b" % port,
                        "http://127.0.0.1:%d/c" % port], capture_output=True, timeout=20)
    t.ok(r.stdout == b"Hello from crow!\n" * 3 and b"Re-using existing connection" in r.stderr,
         "keep-alive: three requests on one connection", r.stderr[-500:])
    # Pipelining: three requests in one write, answered in order, the last closes.
    out = raw(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    t.eq(out.count(b"HTTP/1.1 200 OK"), 3, "three pipelined requests get three responses")
    t.eq(out.count(b"Hello from crow!"), 2, "in order: GET, HEAD (no body), GET")
    t.ok(b"Connection: close" in out.split(b"HTTP/1.1 200 OK")[3], "the last response says it closes")
    out = raw(b"GET / HTTP/1.0\r\n\r\n")
    t.ok(out.startswith(b"HTTP/1.1 200") and b"Connection: close" in out, "HTTP/1.0 gets an answer and a close", out)
    out = raw(b"GARBAGE\r\n\r\n")
    t.ok(out.startswith(b"HTTP/1.1 400"), "a malformed request line gets 400", out)
    out = raw(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    t.ok(out.startswith(b"HTTP/1.1 431"), "a 20 kB header gets 431", out[:100])
    out = raw(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
    t.ok(out.startswith(b"HTTP/1.1 400"), "whitespace in a field name gets 400", out[:100])
    # 200 requests over 20 connections spread on the two workers.
    ok = 0
    for i in range(20):
        out = raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 9 + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        ok += out.count(b"Hello from crow!")
    t.eq(ok, 200, "200 requests over 20 pipelined connections all answered")

    # Live: redefine the handler through swank; the next request gets the new answer.
    up = wait_port("127.0.0.1", sport, 240, p)
    t.ok(up, "swank is up")
    if up:
        form = ('(setf crow.hello::*body* (coerce (format nil "patched live~%") (quote base-string)))')
        rep = swank_eval(sport, form, "CROW.HELLO")
        t.ok(rep is not None and ":ok" in rep, "swank evaluates in the running server", rep)
        r = subprocess.run(["curl", "-s", "http://127.0.0.1:%d/" % port], capture_output=True, timeout=20)
        t.eq(r.stdout, b"patched live\n", "the next request sees the redefinition (no restart)")
        form = ('(defun crow.hello:handle (ev unit kind) (declare (ignore kind))'
                ' (crow.unix:ev-reply ev (crow.unix:ev-unit-conn unit)'
                ' (vector (coerce (format nil "HTTP/1.1 203 Live~c~cContent-Length: 3~c~c~c~cnew" #\\Return #\\Linefeed'
                ' #\\Return #\\Linefeed #\\Return #\\Linefeed) (quote base-string)))))')
        rep = swank_eval(sport, form, "CROW.HELLO")
        t.ok(rep is not None and ":ok" in rep, "swank redefines crow.hello:handle", rep)
        r = subprocess.run(["curl", "-si", "http://127.0.0.1:%d/" % port], capture_output=True, timeout=20)
        t.ok(r.stdout.startswith(b"HTTP/1.1 203 Live") and r.stdout.endswith(b"new"),
             "a handler redefined from a swank client answers the next request", r.stdout)
finally:
    p.send_signal(signal.SIGTERM)
    try:
        out, _ = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate(timeout=10)
t.eq(p.returncode, 0, "SIGTERM stops crow-hello with status 0")
t.ok("stopped after" in out, "it reports the requests served", out[-300:])
t.done()
