#!/usr/bin/env python3
# make-run.t — `make run` starts the suite under the supervisor: the echo service answers real
# clients (socat over IPv4 and IPv6, many Python clients at once, 4 MiB streamed through), and
# SIGTERM stops everything.  Also crow-echo's -n / config errors.   # timeout: 300
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import BIN, ROOT, Tap, wait_port

t = Tap()
echo = os.path.join(BIN, "crow-echo")

# Config checking first (no ports needed).
with tempfile.TemporaryDirectory(prefix="crow-echo-t.") as d:
    good = os.path.join(d, "good.conf")
    with open(good, "w") as f:
        f.write("# comment\nlisten 127.0.0.1:7999\n\nlisten [::1]:7999  # v6\n")
    r = subprocess.run([echo, "-f", good, "-n"], capture_output=True, text=True, timeout=30)
    t.ok(r.returncode == 0 and "ok" in r.stdout, "crow-echo -n accepts a good config", r.stdout + r.stderr)
    bad = os.path.join(d, "bad.conf")
    with open(bad, "w") as f:
        f.write("listen 127.0.0.1:7999\nlisten nowhere\n")
    r = subprocess.run([echo, "-f", bad, "-n"], capture_output=True, text=True, timeout=30)
    t.ok(r.returncode == 1 and ("%s:2:" % bad) in r.stderr, "a bad line is reported as file:line", r.stderr)
    with open(bad, "w") as f:
        f.write("listne 127.0.0.1:7999\n")
    r = subprocess.run([echo, "-f", bad, "-n"], capture_output=True, text=True, timeout=30)
    t.ok(r.returncode == 1 and ("%s:1: unknown key" % bad) in r.stderr, "an unknown key is refused", r.stderr)
    r = subprocess.run([echo, "--help"], capture_output=True, text=True, timeout=30)
    t.ok(r.returncode == 0 and "usage: crow-echo" in r.stdout, "crow-echo --help")

proc = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, text=True, start_new_session=True)
lines = []


def reader():
    for line in proc.stdout:
        lines.append(line)


th = threading.Thread(target=reader, daemon=True)
th.start()
try:
    deadline = time.time() + 240
    while time.time() < deadline and not any("all ready" in l for l in lines) and proc.poll() is None:
        time.sleep(0.1)
    t.ok(any("all ready" in l for l in lines), "make run reports every program ready", "".join(lines[-20:]))
    t.ok(any("127.0.0.1:7007" in l for l in lines), "make run prints where echo listens")

    for addr in ("TCP:127.0.0.1:7007", "TCP:[::1]:7007"):
        r = subprocess.run(["socat", "-t2", "-", addr], input=b"hello crow\n", capture_output=True, timeout=20)
        t.eq(r.stdout, b"hello crow\n", "socat gets its line echoed over %s" % addr)

    r = subprocess.run(["curl", "-si", "http://127.0.0.1:8080/"], capture_output=True, timeout=20)
    t.ok(r.stdout.startswith(b"HTTP/1.1 200") and b"Server: Crow/" in r.stdout,
         "make run serves HTTP on 127.0.0.1:8080 (crow-httpd)", r.stdout[:300])
    r = subprocess.run(["curl", "-s", "http://127.0.0.1:8080/hello"], capture_output=True, timeout=20)
    t.ok(r.stdout.startswith(b"hello"), "/hello answers from the Lisp handler", r.stdout[:200])
    t.ok(wait_port("127.0.0.1", 4005, 5), "make run's swank listens on 127.0.0.1:4005")

    # 4 MiB through one connection, sent and read concurrently.
    blob = bytes((i * 131 + (i >> 9)) & 0xff for i in range(4 << 20))
    s = socket.create_connection(("127.0.0.1", 7007), timeout=30)
    got = bytearray()

    def drain():
        while len(got) < len(blob):
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            got.extend(chunk)

    dr = threading.Thread(target=drain)
    dr.start()
    s.sendall(blob)
    dr.join(60)
    s.close()
    t.ok(bytes(got) == blob, "4 MiB echoed byte-identical (%d bytes back)" % len(got))

    # 50 clients at once, each with its own message.
    socks = [socket.create_connection(("127.0.0.1", 7007), timeout=20) for _ in range(50)]
    for i, c in enumerate(socks):
        c.sendall(b"client %d\n" % i)
    okc = 0
    for i, c in enumerate(socks):
        want = b"client %d\n" % i
        buf = b""
        while len(buf) < len(want):
            chunk = c.recv(100)
            if not chunk:
                break
            buf += chunk
        okc += buf == want
        c.close()
    t.eq(okc, 50, "50 concurrent clients each get their own bytes back")
finally:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    th.join(30)

t.ok(any("all stopped" in l for l in lines), "SIGTERM stops everything make run started", "".join(lines[-10:]))
t.ok(any("term: stopping" in l for l in lines), "the echo service saw SIGTERM and shut down cleanly")
try:
    socket.create_connection(("127.0.0.1", 7007), timeout=2).close()
    t.ok(False, "nothing listens on 7007 afterwards")
except OSError:
    t.ok(True, "nothing listens on 7007 afterwards")
t.done()
