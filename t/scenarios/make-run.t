#!/usr/bin/env python3
# make-run.t — `make run` starts the suite under the supervisor: the echo service answers real
# clients (socat over IPv4 and IPv6, many Python clients at once, 4 MiB streamed through), and
# SIGTERM stops everything.  Also crow-echo's -n / config errors.   # timeout: 300
import ftplib
import os
import poplib
import signal
import smtplib
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
    r = subprocess.run(["curl", "-s", "--cacert", os.path.join(ROOT, "var", "tls", "cert.pem"),
                        "--resolve", "localhost:8443:127.0.0.1", "https://localhost:8443/hello"],
                       capture_output=True, timeout=20)
    t.ok(r.stdout.startswith(b"hello"), "make run serves HTTPS on 8443 with its self-signed certificate",
         r.stdout[:200] + r.stderr[:300])
    t.ok(wait_port("127.0.0.1", 4005, 5), "make run's swank listens on 127.0.0.1:4005")

    # The other services make run starts, each through a real client.
    var = os.environ.get("CROW_VAR") or os.path.join(ROOT, "var")
    env = dict(os.environ, MMSTAT_DIR=os.environ.get("MMSTAT_DIR") or os.path.join(var, "run", "mmstatd"))
    mark = "mr%d" % os.getpid()
    mmstat = os.path.join(BIN, "mmstat")
    r = subprocess.run([mmstat, "update", "v", "makerun|%s%%3" % mark], capture_output=True,
                       text=True, timeout=20, env=env)
    r2 = subprocess.run([mmstat, "report", "makerun|%s" % mark], capture_output=True, text=True,
                        timeout=20, env=env)
    t.ok(r.returncode == 0 and ("makerun|%s\t3\t" % mark) in r2.stdout,
         "mmstatd counts an mmstat update and reports it", r.stderr + r2.stdout + r2.stderr)

    def counters():
        r = subprocess.run([mmstat, "report", "mm*"], capture_output=True, text=True, timeout=20,
                           env=env)
        return {l.split("\t")[0]: int(l.split("\t")[1]) for l in r.stdout.splitlines()
                if l.count("\t") >= 2 and l.split("\t")[1].lstrip("-").isdigit()}
    served = ("mmftpd|logins|demo", "mmsmtpd|messages|crow.test", "mmpop3d|logins|demo@crow.test")
    before = counters()
    try:
        ftp = ftplib.FTP()
        ftp.connect("127.0.0.1", 2121, timeout=20)
        ftp.login("demo", "demo")
        names = ftp.nlst()
        ftp.quit()
        t.ok("README.txt" in names, "mmftpd on 2121: demo/demo logs in and lists its home", names)
    except (OSError, ftplib.Error) as e:
        t.ok(False, "mmftpd on 2121: demo/demo logs in and lists its home", e)
    subject = "make run %s" % mark
    try:
        with smtplib.SMTP("127.0.0.1", 2525, timeout=20) as smtp:
            smtp.sendmail("someone@example.org", ["demo@crow.test"],
                          "From: someone@example.org\r\nTo: demo@crow.test\r\nSubject: %s\r\n\r\nhi\r\n"
                          % subject)
        t.ok(True, "mmsmtpd on 2525 accepts a message for demo@crow.test")
    except (OSError, smtplib.SMTPException) as e:
        t.ok(False, "mmsmtpd on 2525 accepts a message for demo@crow.test", e)
    try:
        pop = poplib.POP3("127.0.0.1", 1110, timeout=20)
        pop.user("demo")
        pop.pass_("demo")
        n = len(pop.list()[1])
        found = any(("Subject: %s" % subject).encode() in b"\n".join(pop.retr(i)[1])
                    for i in range(max(1, n - 4), n + 1)) if n else False
        pop.quit()
        t.ok(found, "mmpop3d on 1110 hands the message back to demo (%d messages)" % n)
    except (OSError, poplib.error_proto) as e:
        t.ok(False, "mmpop3d on 1110 hands the message back to demo", e)
    deadline = time.time() + 5          # the servers' counts are datagrams, not acknowledged
    while time.time() < deadline:
        after = counters()
        if all(after.get(k, 0) > before.get(k, 0) for k in served):
            break
        time.sleep(0.1)
    t.ok(all(after.get(k, 0) > before.get(k, 0) for k in served),
         "mmftpd, mmsmtpd and mmpop3d counted the login, the message and the login in mmstatd",
         {k: (before.get(k), after.get(k)) for k in served})
    try:
        irc = socket.create_connection(("127.0.0.1", 16667), timeout=20)
        irc.sendall(b"NICK mr%d\r\nUSER mr 0 * :make-run.t\r\nJOIN #crow\r\n" % (os.getpid() % 100000))
        buf = b""
        deadline = time.time() + 20
        while b" 366 " not in buf and time.time() < deadline:
            chunk = irc.recv(4096)
            if not chunk:
                break
            buf += chunk
        irc.sendall(b"PRIVMSG #crow :%s\r\nQUIT\r\n" % mark.encode())
        day = time.strftime("%Y-%m-%d", time.gmtime())
        logs = [os.path.join(var, "irclog", "local", "#crow", d + ".log") for d in
                (day, time.strftime("%Y-%m-%d"))]
        seen = False
        deadline = time.time() + 20
        while not seen and time.time() < deadline:
            seen = any(os.path.exists(f) and mark in open(f, errors="replace").read() for f in logs)
            time.sleep(0.2)
        irc.close()
        t.ok(seen, "ngircd on 16667 and irclog: a line said in #crow is logged", logs)
    except OSError as e:
        t.ok(False, "ngircd on 16667 and irclog: a line said in #crow is logged", e)
    for path, what in (("/stats", "mmstatd's live page"), ("/mail/", "the mail interface"),
                       ("/irc/", "irclog's web view")):
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-L",
                            "http://127.0.0.1:8080" + path], capture_output=True, text=True, timeout=20)
        t.eq(r.stdout, "200", "crow-httpd serves %s at %s" % (what, path))

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
