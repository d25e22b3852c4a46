#!/usr/bin/env python3
# session-many.t — 1,000 concurrent sessions in one session-model process (crow.server's
# session threads, through the key/value demo t/scenarios/fixtures/session-kv.lisp): all
# 1,000 connected at once and idle, each greeted, then each answers a command while the
# others stay open; the server holds a thread per session (ECL 21's ~255-thread limit is
# worked around: crow.unix:reserve-lisp-threads); after QUIT the threads and descriptors
# go back down.  Prints the RSS per idle session as a diagnostic.
# timeout: 300
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import ROOT, Tap, free_port, stop

N = 1000
t = Tap()
tmp = tempfile.mkdtemp(prefix="crow-session-many-t-")
subprocess.run([os.path.join(ROOT, "tools", "mkcert"), tmp], check=True)
port = free_port()
conf = os.path.join(tmp, "kv.conf")
with open(conf, "w") as f:
    f.write("listen 127.0.0.1:%d\n" % port)
log = open(os.path.join(tmp, "server.log"), "w+")
p = subprocess.Popen(["ecl", "--norc", "--shell",
                      os.path.join(ROOT, "t", "scenarios", "fixtures", "run-session-kv.lisp"),
                      "--", conf, tmp, str(N + 100), str(N + 100)],
                     stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def server_log():
    log.flush()
    with open(log.name) as f:
        return f.read()


def proc_counts():
    """(threads, descriptors, RSS KiB) of the server process."""
    rss = 0
    with open("/proc/%d/status" % p.pid) as f:
        for line in f:
            if line.startswith("VmRSS"):
                rss = int(line.split()[1])
    return (len(os.listdir("/proc/%d/task" % p.pid)), len(os.listdir("/proc/%d/fd" % p.pid)), rss)


def read_line(s, buf):
    """Reads one CRLF line from S (BUF: a one-element list holding leftover bytes)."""
    while b"\r\n" not in buf[0]:
        chunk = s.recv(4096)
        if not chunk:
            return None
        buf[0] += chunk
    line, _, buf[0] = buf[0].partition(b"\r\n")
    return line


socks = []
try:
    for _ in range(1200):
        if "ready" in server_log() or p.poll() is not None:
            break
        time.sleep(0.1)
    if not t.ok("ready" in server_log(), "the demo server starts", server_log()):
        raise SystemExit
    c = socket.create_connection(("127.0.0.1", port), timeout=20)
    b = [b""]
    read_line(c, b)
    c.sendall(b"SET colour blue\r\n")
    t.eq(read_line(c, b), b"+OK", "SET before the crowd")
    c.sendall(b"QUIT\r\n")
    c.close()
    time.sleep(0.5)
    base = proc_counts()

    t0 = time.time()
    greeted = 0
    for i in range(N):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            buf = [b""]
            socks.append((s, buf))
            if read_line(s, buf) == b"+OK crow kv ready":
                greeted += 1
        except OSError as e:
            print("# connection %d: %r" % (i + 1, e))
            break
    t_connect = time.time() - t0
    if not t.eq(greeted, N, "%d sessions connected at once, every one greeted (%.1f s)" % (N, t_connect)):
        raise SystemExit
    held = proc_counts()
    t.ok(held[0] >= N, "one thread per session (%d threads)" % held[0], (base, held))
    print("# idle sessions: %d, RSS %d -> %d KiB: %.0f KiB per idle session"
          % (N, base[2], held[2], (held[2] - base[2]) / N))

    # Every session answers while all the others stay open.
    t0 = time.time()
    for s, buf in socks:
        s.sendall(b"GET colour\r\n")
    answers = [read_line(s, buf) for s, buf in socks]
    t.eq(answers.count(b"+VALUE blue"), N, "all %d sessions answered (%.1f s)" % (N, time.time() - t0))
    t.ok("STORAGE" not in server_log() and "cannot start a thread" not in server_log(),
         "no thread creation failure logged", server_log()[-800:])

    for s, buf in socks:
        s.sendall(b"QUIT\r\n")
    byes = [read_line(s, buf) for s, buf in socks]
    t.eq(byes.count(b"+OK bye"), N, "all sessions end with QUIT")
    for s, _ in socks:
        s.close()
    socks = []
    deadline = time.time() + 30
    while time.time() < deadline and proc_counts()[0] > base[0] + 2:
        time.sleep(0.2)
    after = proc_counts()
    t.ok(after[0] <= base[0] + 2, "threads back to the spares after QUIT", (base, after))
    t.ok(after[1] <= base[1], "descriptors flat", (base, after))

    p.terminate()
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        pass
    t.ok(p.poll() == 0, "SIGTERM: the server exits 0", server_log()[-800:])
finally:
    for s, _ in socks:
        try:
            s.close()
        except OSError:
            pass
    stop(p)
    log.close()
    shutil.rmtree(tmp, ignore_errors=True)
t.done()
