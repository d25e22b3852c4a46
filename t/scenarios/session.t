#!/usr/bin/env python3
# session.t — crow.server's session threads, through the ~100-line key/value demo
# (t/scenarios/fixtures/session-kv.lisp) driven by real clients: commands over IPv4, IPv6 and
# AF_UNIX, socat, a line too long and a bare CR answered, STARTTLS with python's ssl module
# where plaintext injected after STARTTLS is discarded (never executed), a listen-tls port,
# max-sessions and per-address refusals with the server's own reply, 100 connections without
# leaking threads or descriptors, and SIGTERM cutting a stuck session short after the drain.
# timeout: 300
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import ROOT, Tap, free_port, stop, wait_port

t = Tap()
tmp = tempfile.mkdtemp(prefix="crow-session-t-")
subprocess.run([os.path.join(ROOT, "tools", "mkcert"), tmp], check=True)
port, tport, v6port = free_port(), free_port(), free_port("::1")
sock_path = os.path.join(tmp, "kv.sock")
conf = os.path.join(tmp, "kv.conf")
with open(conf, "w") as f:
    f.write("listen 127.0.0.1:%d\nlisten-tls 127.0.0.1:%d\nlisten [::1]:%d\nlisten unix:%s\n"
            % (port, tport, v6port, sock_path))
MAX_SESSIONS, MAX_PER_ADDRESS = 4, 3
log = open(os.path.join(tmp, "server.log"), "w+")
p = subprocess.Popen(["ecl", "--norc", "--shell",
                      os.path.join(ROOT, "t", "scenarios", "fixtures", "run-session-kv.lisp"),
                      "--", conf, tmp, str(MAX_SESSIONS), str(MAX_PER_ADDRESS)],
                     stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
tls_ctx = ssl.create_default_context(cafile=os.path.join(tmp, "cert.pem"))


def server_log():
    log.flush()
    with open(log.name) as f:
        return f.read()


class Client:
    """A line client over a socket (plain, or TLS after wrap)."""

    def __init__(self, family=socket.AF_INET, addr=None, source=None, timeout=10):
        self.s = socket.socket(family, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        if source:
            self.s.bind((source, 0))
        self.s.connect(addr or ("127.0.0.1", port))
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(4096)
            if not chunk:
                rest, self.buf = self.buf, b""
                return rest if rest else None
            self.buf += chunk
        l, _, self.buf = self.buf.partition(b"\r\n")
        return l

    def cmd(self, text):
        self.s.sendall(text if isinstance(text, bytes) else text.encode() + b"\r\n")
        return self.line()

    def starttls(self, injected=b""):
        self.s.sendall(b"STARTTLS\r\n" + injected)
        reply = self.line()
        self.buf = b""
        self.s = tls_ctx.wrap_socket(self.s, server_hostname="localhost")
        return reply

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def proc_counts():
    """(threads, descriptors) of the server process."""
    return (len(os.listdir("/proc/%d/task" % p.pid)), len(os.listdir("/proc/%d/fd" % p.pid)))


def wait_for(pred, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


try:
    up = False
    for _ in range(1200):
        if "ready" in server_log() or p.poll() is not None:
            break
        time.sleep(0.1)
    up = t.ok("ready" in server_log(), "the demo server starts", server_log())
    if not up:
        raise SystemExit

    c = Client()
    t.eq(c.line(), b"+OK crow kv ready", "greeting")
    t.eq(c.cmd("SET colour blue"), b"+OK", "SET")
    t.eq(c.cmd("GET colour"), b"+VALUE blue", "GET")
    t.eq(c.cmd("get colour"), b"+VALUE blue", "verbs are case-insensitive")
    t.eq(c.cmd("SET shape round"), b"+OK", "SET another")
    t.eq(c.cmd("KEYS"), b"+OK 2", "KEYS count")
    t.eq([c.line(), c.line()], [b"colour", b"shape"], "KEYS: one writev, sorted")
    t.eq(c.cmd("NOPE"), b"-ERR unknown command", "unknown command")
    t.eq(c.cmd(b"X" * 5000 + b"\r\n"), b"-ERR line too long", "a 5000-byte line: answered, not fatal")
    t.eq(c.cmd("GET colour"), b"+VALUE blue", "the session goes on after the long line")
    t.eq(c.cmd(b"GET a\rb\r\n"), b"-ERR bare CR or LF", "a bare CR: answered")
    # Pipelined commands in one write, answered in order.
    c.s.sendall(b"DEL shape\r\nGET shape\r\nPEER\r\n")
    t.eq(c.line(), b"+OK", "pipelined DEL")
    t.eq(c.line(), b"-ERR no such key", "pipelined GET sees the DEL")
    peer = c.line()
    t.ok(peer.startswith(b"+OK 127.0.0.1 ") and peer.endswith(b" plain"), "PEER over plain TCP", peer)

    # STARTTLS with a command injected in the same packet: discarded, never executed.
    t.eq(c.starttls(b"SET injected yes\r\n"), b"+OK begin TLS", "STARTTLS go-ahead")
    t.eq(c.cmd("GET injected"), b"-ERR no such key", "plaintext injected after STARTTLS was not executed")
    peer = c.cmd("PEER")
    t.ok(peer.endswith(b" TLSv1.3"), "the session is TLS 1.3 now", peer)
    t.eq(c.cmd("GET colour"), b"+VALUE blue", "commands over TLS")
    t.eq(c.cmd("STARTTLS"), b"-ERR already TLS", "STARTTLS twice refused")
    t.ok(wait_for(lambda: "18 plaintext bytes after STARTTLS discarded" in server_log(), 5),
         "the server logs the discarded bytes", server_log()[-500:])
    t.eq(c.cmd("QUIT"), b"+OK bye", "QUIT over TLS")
    t.eq(c.line(), None, "closed after QUIT")
    c.close()

    # A client that starts a TLS handshake without a go-ahead: plaintext is not TLS.
    c = Client()
    c.line()
    c.s.sendall(b"\x16\x03\x01\x00\x05hello\r\n")
    t.eq(c.line(), b"-ERR unknown command", "a stray ClientHello on the plain port is just a bad command")
    c.close()

    # Implicit TLS port, verified against the test CA.
    raw = socket.create_connection(("127.0.0.1", tport), timeout=10)
    s = tls_ctx.wrap_socket(raw, server_hostname="localhost")
    f = s.makefile("rb")
    t.eq(f.readline(), b"+OK crow kv ready\r\n", "listen-tls: greeting over TLS")
    s.sendall(b"GET colour\r\n")
    t.eq(f.readline(), b"+VALUE blue\r\n", "listen-tls: commands")
    f.close()
    s.close()
    # A plaintext client on the TLS port is dropped, not served.
    raw = socket.create_connection(("127.0.0.1", tport), timeout=10)
    raw.sendall(b"GET colour\r\n")
    try:
        got = raw.recv(100)
    except OSError:
        got = b""
    t.ok(b"VALUE" not in got, "plaintext on the TLS port is not served", got)
    raw.close()

    # IPv6 and AF_UNIX listeners.
    c = Client(socket.AF_INET6, ("::1", v6port))
    c.line()
    t.ok(c.cmd("PEER").startswith(b"+OK ::1 "), "IPv6 listener")
    c.close()
    c = Client(socket.AF_UNIX, sock_path)
    t.eq(c.line(), b"+OK crow kv ready", "AF_UNIX listener")
    t.eq(c.cmd("GET colour"), b"+VALUE blue", "AF_UNIX commands share the store")
    c.close()

    # socat as a real line client.
    r = subprocess.run(["socat", "-t", "2", "-", "TCP:127.0.0.1:%d,crlf" % port], input=b"GET colour\nQUIT\n",
                       capture_output=True, timeout=20)
    t.eq(r.stdout.replace(b"\r", b""), b"+OK crow kv ready\n+VALUE blue\n+OK bye\n", "socat session")

    # Refusals: per address (3 from 127.0.0.1, the 4th refused) while 127.0.0.2 is served,
    # then max-sessions (4) refuses 127.0.0.3.
    time.sleep(0.5)      # the sessions above end in their threads
    held = []
    for i in range(MAX_PER_ADDRESS):
        c = Client()
        held.append(c)
        t.eq(c.line(), b"+OK crow kv ready", "127.0.0.1 session %d served" % (i + 1))
    c = Client()
    t.eq(c.line(), b"-ERR too many sessions from your address", "4th from 127.0.0.1: per-address refusal")
    t.eq(c.line(), None, "and closed")
    c.close()
    c = Client(source="127.0.0.2")
    held.append(c)
    t.eq(c.line(), b"+OK crow kv ready", "127.0.0.2 is served meanwhile")
    c = Client(source="127.0.0.3")
    t.eq(c.line(), b"-ERR too many sessions", "5th session overall: max-sessions refusal")
    c.close()
    for c in held:
        c.cmd("QUIT")
        c.close()

    # 100 connections (sequential and 20 at once), then no thread or descriptor left behind.
    time.sleep(0.5)
    base = proc_counts()
    for i in range(60):
        c = Client()
        c.line()
        c.cmd("SET k%d v" % i)
        c.close()
    results = []

    def one(i):
        try:
            for attempt in range(100):
                c = Client()
                g = c.line()
                if g == b"+OK crow kv ready":
                    results.append(c.cmd("GET colour"))
                    c.cmd("QUIT")
                    c.close()
                    return
                c.close()
                time.sleep(0.05)        # refused (max-sessions 4): try again
        except OSError as e:
            results.append(repr(e).encode())

    ths = [threading.Thread(target=one, args=(i,)) for i in range(40)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(60)
    t.eq(results.count(b"+VALUE blue"), 40, "40 concurrent clients served (retrying refusals)")
    t.ok(wait_for(lambda: proc_counts()[1] <= base[1], 10), "descriptors flat after 100 connections",
         "before %r after %r" % (base, proc_counts()))
    t.ok(wait_for(lambda: proc_counts()[0] <= base[0] + 2, 10), "threads bounded (spare threads only)",
         "before %r after %r" % (base, proc_counts()))

    # SIGTERM with a silent session open: drained for 3 s, then cut short; the process ends.
    stuck = Client()
    stuck.line()
    t0 = time.time()
    p.terminate()
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        pass
    dt = time.time() - t0
    t.ok(p.poll() == 0, "SIGTERM: the server exits 0", server_log()[-800:])
    t.ok(2.5 <= dt < 15, "after the 3 s drain deadline (%.1f s)" % dt)
    t.ok("1 cut short" in server_log(), "one session cut short", server_log()[-300:])
    stuck.s.settimeout(5)
    try:
        t.eq(stuck.s.recv(100), b"", "the stuck client sees the connection closed")
    except OSError as e:
        t.ok(False, "the stuck client sees the connection closed", e)
    stuck.close()
finally:
    stop(p)
    log.close()
    shutil.rmtree(tmp, ignore_errors=True)
t.done()
