#!/usr/bin/env python3
# linger.t — crow-httpd's lingering-close bounds are its config keys.  A client refused
# mid-upload (413: Content-Length over post-max) reads the answer and EOF; what happens to the
# bytes it sends after that shows the keys: with linger-timeout 0s the connection is gone at
# once (a reset comes back within a second); with linger-timeout 2s they are taken (no reset)
# for a while, and the reset comes once the 2 s are over (between 1.5 s and 4.5 s after the
# answer, well before the 5 s default); with linger-max 16K a client that keeps sending is
# cut off after about 16 KiB, long before the timeout.  And --help lists both keys.
# timeout: 180
import os
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpd import HTTPD, Server, Tap, make_root  # noqa: E402

t = Tap()
d = make_root()
root = os.path.join(d, "root")
HEAD = (b"POST /echo HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10000000\r\n\r\n" + b"x" * 1024)


def refused(port):
    """Sends a head announcing 10 MB (over post-max) and 1 KiB of body, reads the answer until
    EOF.  Returns (socket, answer bytes, error or None)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(HEAD)
    out = b""
    try:
        while True:
            c = s.recv(65536)
            if not c:
                return s, out, None
            out += c
    except OSError as e:
        return s, out, e


def reset_after(s, limit, piece=b"y" * 64, every=0.1):
    """Sends PIECE every EVERY seconds until the connection is reset (a send or a read fails)
    or LIMIT seconds pass.  Returns (seconds until the reset or None, bytes taken before)."""
    start = time.time()
    taken = 0
    while time.time() - start < limit:
        try:
            s.sendall(piece)
            taken += len(piece)
            s.settimeout(every)
            try:
                if s.recv(1) == b"":
                    time.sleep(every)  # EOF (our answer's): the connection may still linger
            except socket.timeout:
                pass
        except OSError:
            return time.time() - start, taken
    return None, taken


srv = None
try:
    # linger-timeout 0s: closed at once
    srv = Server(root, extra="linger-timeout 0s")
    t.ok(srv.up, "crow-httpd listens (linger-timeout 0s)")
    s, out, err = refused(srv.port)
    t.ok(out.startswith(b"HTTP/1.1 413") or err is not None, "refused upload: the 413 (or a reset)", out[:60])
    after, _ = reset_after(s, 3)
    s.close()
    t.ok(after is not None and after < 1.0,
         "linger-timeout 0s: the client's later bytes are reset at once (%s s)"
         % (None if after is None else round(after, 2)))
    status, log = srv.stop()
    srv = None
    t.ok(status == 0, "server stopped cleanly", log[-1500:])

    # linger-timeout 2s, linger-max 16K
    srv = Server(root, extra="linger-timeout 2s\nlinger-max 16K")
    t.ok(srv.up, "crow-httpd listens (linger-timeout 2s, linger-max 16K)")
    s, out, err = refused(srv.port)
    t.ok(out.startswith(b"HTTP/1.1 413") and err is None,
         "refused upload: the whole 413 and a clean EOF", (out[:60], err))
    t0 = time.time()
    after, taken = reset_after(s, 8, piece=b"y" * 32, every=0.1)
    s.close()
    t.ok(after is not None and 1.5 <= after <= 4.5,
         "linger-timeout 2s: the later bytes are taken (%d bytes), and reset once the 2 s are "
         "over (after %s s)" % (taken, None if after is None else round(after, 2)))
    s, out, err = refused(srv.port)
    t.ok(out.startswith(b"HTTP/1.1 413") and err is None, "refused again: the whole 413", out[:60])
    after, taken = reset_after(s, 3, piece=b"z" * 4096, every=0.02)
    s.close()
    t.ok(after is not None and after < 1.0 and taken < 64 * 1024,
         "linger-max 16K: a client that keeps sending is cut off early (%s s, %d bytes taken)"
         % (None if after is None else round(after, 2), taken))
    status, log = srv.stop()
    srv = None
    t.ok(status == 0, "server stopped cleanly", log[-1500:])

    # the keys are documented
    r = subprocess.run([HTTPD, "--help"], capture_output=True, timeout=60)
    text = r.stdout.decode("utf-8", "replace")
    t.ok("linger-timeout" in text and "linger-max" in text, "--help lists linger-timeout and linger-max")
    conf = os.path.join(d, "bad.conf")
    with open(conf, "w") as f:
        f.write("listen 127.0.0.1:1\nlinger-timeout soon\n")
    r = subprocess.run([HTTPD, "-n", "-f", conf], capture_output=True, timeout=60)
    msg = (r.stdout + r.stderr).decode("utf-8", "replace")
    t.ok(r.returncode != 0 and "bad.conf:2:" in msg, "a bad linger-timeout is a config error at its line", msg[-300:])
finally:
    if srv:
        srv.stop()
    shutil.rmtree(d, ignore_errors=True)
t.done()
