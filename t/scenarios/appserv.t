#!/usr/bin/env python3
# appserv.t — crow-appserv with its two example handlers (echo, kv) and test handlers, driven
# by real clients (socat, Python sockets) over TCP 127.0.0.1 and [::1], AF_UNIX and UDP: -n
# checks, the event and process models, a handler edited on disk answering differently after
# SIGHUP, SIGHUP under load losing no connection, a broken reload keeping the old code,
# 2,000 connections without zombies or leaked descriptors, SIGTERM draining a slow request,
# and, as root, the serving process really running as nobody inside its chroot (and the whole
# server unprivileged).
# timeout: 500
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import BIN, ROOT, Tap, free_port, stop, wait_port

t = Tap()
APPSERV = os.path.join(BIN, "crow-appserv")
EXAMPLES = os.path.join(ROOT, "etc", "appserv")
ROOTUSER = os.geteuid() == 0

SLOW = """
(defun on-line (conn text)
  (declare (ignore conn))
  (let ((n (parse-integer text :junk-allowed t)))
    (when n (sleep n))
    (line "DONE ~a" text)))
"""

ECHO_V2 = """
(defun on-data (conn data)
  (declare (ignore conn))
  (list "v2:" data))
"""


def children(pid):
    """PIDs whose parent is PID."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
                if int(st.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


def state(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("State:"):
                    return line.split()[1]
    except OSError:
        return None


def status_field(pid, name):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split()[1:]


def nfds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


def talk(family, addr, data, timeout=10, shut=True):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(addr)
    s.sendall(data)
    if shut:
        s.shutdown(socket.SHUT_WR)
    out = b""
    try:
        while True:
            c = s.recv(65536)
            if not c:
                break
            out += c
    except socket.timeout:
        pass
    s.close()
    return out


def echo_once(port, data=b"ping\n", timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        c = s.recv(4096)
        if not c:
            break
        got += c
    s.close()
    return got


def kv(port, lines, host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    out = talk(fam, (host, port), b"".join(l + b"\r\n" for l in lines) + b"QUIT\r\n")
    return out.split(b"\r\n")


def serving_child(parent, timeout=30):
    """The newest serving child of PARENT (skipping exiting ones)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        kids = [k for k in children(parent) if state(k) not in (None, "Z")]
        if kids:
            return max(kids)
        time.sleep(0.1)
    return None


tmp = tempfile.mkdtemp(prefix="crow-appserv-")
os.chmod(tmp, 0o755)
for f in ("echo.lisp", "kv.lisp"):
    shutil.copy(os.path.join(EXAMPLES, f), os.path.join(tmp, f))
with open(os.path.join(tmp, "slow.lisp"), "w") as f:
    f.write(SLOW)
pe, pk, pp, ps = free_port(), free_port(), free_port(), free_port()
pks, pes, pkl = free_port(), free_port(), free_port()
sock = os.path.join(tmp, "echo.sock")
conf = os.path.join(tmp, "appserv.conf")
with open(conf, "w") as f:
    f.write("""# test config
log stderr
shutdown-timeout 20s
service echo {
    listen 127.0.0.1:%(pe)d
    listen [::1]:%(pe)d
    listen unix:%(sock)s
    listen-udp 127.0.0.1:%(pe)d
    listen-udp [::1]:%(pe)d
    handler echo.lisp
    framing raw
    workers 2
}
service kv {
    listen 127.0.0.1:%(pk)d
    listen [::1]:%(pk)d
    handler kv.lisp
    max-line 1K
}
service kvp {
    listen 127.0.0.1:%(pp)d
    handler kv.lisp
    model process
    processes 2
    max-processes 4
    max-requests 50
}
service slow {
    listen 127.0.0.1:%(ps)d
    handler slow.lisp
    workers 2
}
service kvs {
    listen 127.0.0.1:%(pks)d
    listen [::1]:%(pks)d
    handler kv.lisp
    model session
    max-per-address 2
    refusal "-ERR too many connections from your address"
}
service kvl {
    listen 127.0.0.1:%(pkl)d
    handler kv.lisp
    max-per-address 2
    refusal "-ERR too many connections from your address"
}
service echos {
    listen 127.0.0.1:%(pes)d
    handler echo.lisp
    model session
    framing raw
    rate-per-address 3/30s
}
""" % dict(pe=pe, pk=pk, pp=pp, ps=ps, sock=sock, pks=pks, pes=pes, pkl=pkl))

# -n: a good config, a bad value (file:line), a handler that does not load (the config line).
r = subprocess.run([APPSERV, "-n", "-f", conf], capture_output=True, text=True, timeout=60)
t.ok(r.returncode == 0 and "configuration ok" in r.stdout, "-n accepts the test config", r.stdout + r.stderr)
bad = os.path.join(tmp, "bad.conf")
with open(bad, "w") as f:
    f.write("service x {\n  listen 127.0.0.1:99999\n  handler echo.lisp\n  model fast\n}\n")
r = subprocess.run([APPSERV, "-n", "-f", bad], capture_output=True, text=True, timeout=60)
t.ok(r.returncode == 1 and "bad.conf:2: " in r.stderr and "bad.conf:4: " in r.stderr,
     "-n: bad values are reported as file:line: message, status 1", r.stderr)
with open(os.path.join(tmp, "broken.lisp"), "w") as f:
    f.write("(defun on-line (c l) (oops\n")
with open(bad, "w") as f:
    f.write("service x {\n  listen 127.0.0.1:%d\n  handler broken.lisp\n}\n" % free_port())
r = subprocess.run([APPSERV, "-n", "-f", bad], capture_output=True, text=True, timeout=60)
t.ok(r.returncode == 1 and "bad.conf:3: handler " in r.stderr, "-n: a handler that fails to load is reported at its config line", r.stderr)

log = open(os.path.join(tmp, "log"), "w+")
p = subprocess.Popen([APPSERV, "--foreground", "-f", conf], stdout=log, stderr=subprocess.STDOUT)


def logtext():
    with open(os.path.join(tmp, "log")) as f:
        return f.read()


try:
    up = wait_port("127.0.0.1", pe, 60, p) and wait_port("127.0.0.1", ps, 30, p)
    t.ok(up, "crow-appserv listens", logtext())
    # echo over every transport
    t.eq(talk(socket.AF_INET, ("127.0.0.1", pe), b"hello v4\n"), b"hello v4\n", "echo over TCP 127.0.0.1")
    t.eq(talk(socket.AF_INET6, ("::1", pe), b"hello v6\n"), b"hello v6\n", "echo over TCP [::1]")
    t.eq(talk(socket.AF_UNIX, sock, b"hello unix\n"), b"hello unix\n", "echo over AF_UNIX")
    t.eq(oct(os.stat(sock).st_mode & 0o777), "0o666", "the AF_UNIX socket is mode 0666")
    r = subprocess.run(["socat", "-t", "2", "-", "TCP:127.0.0.1:%d" % pe], input=b"via socat\n",
                       capture_output=True, timeout=20)
    t.eq(r.stdout, b"via socat\n", "echo answers socat")
    for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        u = socket.socket(fam, socket.SOCK_DGRAM)
        u.settimeout(5)
        u.sendto(b"datagram " + host.encode(), (host, pe))
        try:
            data, _ = u.recvfrom(2048)
        except socket.timeout:
            data = None
        u.close()
        t.eq(data, b"datagram " + host.encode(), "echo over UDP %s" % host)
    big = os.urandom(300000)
    t.ok(talk(socket.AF_INET, ("127.0.0.1", pe), big) == big, "300 kB echoed intact")

    # kv: the protocol and its errors (event model), over v4 and v6
    out = kv(pk, [b"SET a hello world", b"GET a", b"SET b 2", b"KEYS", b"DEL a", b"GET a", b"DEL a",
                  b"get b", b"FROB x", b"SET onlykey", b"GET", b""])
    want = [b"+READY kv", b"+OK", b"$hello world", b"+OK", b"*2", b"a", b"b", b"+OK", b"-NOTFOUND",
            b"-NOTFOUND", b"$2", b'-ERR unknown command "FROB"', b"-ERR usage: SET KEY VALUE",
            b"-ERR usage: GET KEY", b"-ERR empty command", b"+BYE", b""]
    t.eq(out, want, "kv: SET/GET/DEL/KEYS and protocol errors")
    t.eq(kv(pk, [b"GET b"], host="::1")[1], b"$2", "kv over [::1] shares the store")
    out = talk(socket.AF_INET, ("127.0.0.1", pk), b"GET " + b"x" * 2000 + b"\r\n", shut=False)
    t.ok(out.endswith(b"-ERR line too long\r\n"), "kv: a line over max-line gets an error and a close", out[-80:])
    r = subprocess.run(["socat", "-t", "2", "-", "TCP:127.0.0.1:%d" % pk], input=b"SET s via-socat\nGET s\nQUIT\n",
                       capture_output=True, timeout=20)
    t.ok(b"$via-socat\r\n" in r.stdout, "kv answers socat (bare LF lines)", r.stdout)
    # process model
    out = kv(pp, [b"SET p 1", b"GET p", b"BAD"])
    t.eq(out, [b"+READY kv", b"+OK", b"$1", b'-ERR unknown command "BAD"', b"+BYE", b""], "kv in the process model")
    parent = p.pid
    child = serving_child(parent)
    pool = [k for k in children(child) if state(k) not in (None, "Z")] if child else []
    t.ok(len(pool) >= 2, "the process model runs a pool of processes", pool)
    ok = 0
    for i in range(120):
        if kv(pp, [b"GET p"])[1] in (b"$1", b"-NOTFOUND"):
            ok += 1
    t.eq(ok, 120, "120 connections to the process pool all answered (processes recycled after 50)")

    # session model, per-address limits: N+1 from 127.0.0.1 refused while 127.0.0.2 is served
    def conn_from(src, port, timeout=5):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))
        return s

    def first_line(s):
        got = b""
        try:
            while not got.endswith(b"\n"):
                c = s.recv(200)
                if not c:
                    break
                got += c
        except socket.timeout:
            pass
        return got

    def per_address(port, model):
        held = [conn_from("127.0.0.1", port) for _ in range(2)]
        t.eq([first_line(x) for x in held], [b"+READY kv\r\n"] * 2, "%s model: two connections from 127.0.0.1 served" % model)
        extra = conn_from("127.0.0.1", port)
        t.eq(first_line(extra), b"-ERR too many connections from your address\r\n",
             "%s model, max-per-address 2: the third from 127.0.0.1 gets the refusal" % model)
        extra.close()
        other = conn_from("127.0.0.2", port)
        t.eq(first_line(other), b"+READY kv\r\n", "%s model: meanwhile 127.0.0.2 is served" % model)
        other.sendall(b"SET z 26\r\nGET z\r\nQUIT\r\n")
        rest = b""
        try:
            while True:
                c = other.recv(1000)
                if not c:
                    break
                rest += c
        except socket.timeout:
            pass
        t.eq(rest, b"+OK\r\n$26\r\n+BYE\r\n", "kv in the %s model" % model)
        other.close()
        for x in held:
            x.close()
        time.sleep(0.3)
        again = conn_from("127.0.0.1", port)
        t.eq(first_line(again), b"+READY kv\r\n", "%s model: once they close, 127.0.0.1 is served again" % model)
        again.close()

    per_address(pks, "session")
    per_address(pkl, "event")
    # rate-per-address 3/30s: the 4th new connection from 127.0.0.1 is refused, 127.0.0.2 is not
    answers = []
    for i in range(4):
        x = conn_from("127.0.0.1", pes)
        x.sendall(b"r%d\n" % i)
        answers.append(first_line(x))
        x.close()
    t.eq(answers, [b"r0\n", b"r1\n", b"r2\n", b"-ERR busy, try later\r\n"],
         "rate-per-address 3/30s: three echoed, the fourth refused")
    x = conn_from("127.0.0.2", pes)
    x.sendall(b"other\n")
    t.eq(first_line(x), b"other\n", "the rate limit of 127.0.0.1 does not touch 127.0.0.2")
    x.close()

    # a handler edited on disk answers differently after SIGHUP
    old_child = child
    with open(os.path.join(tmp, "echo.lisp"), "w") as f:
        f.write(ECHO_V2)
    p.send_signal(signal.SIGHUP)
    got = None
    deadline = time.time() + 60
    while time.time() < deadline:
        got = echo_once(pe, b"again\n")
        if got.startswith(b"v2:"):
            break
        time.sleep(0.2)
    t.eq(got, b"v2:again\n", "after SIGHUP the edited handler answers")
    deadline = time.time() + 30
    while time.time() < deadline and state(old_child) not in (None,):
        time.sleep(0.1)
    t.ok(state(old_child) is None, "the old serving process finished and was reaped")

    # a broken handler on SIGHUP: logged as file:line, the running code keeps answering
    with open(os.path.join(tmp, "echo.lisp"), "w") as f:
        f.write("(defun on-data (conn data) (oops\n")
    p.send_signal(signal.SIGHUP)
    deadline = time.time() + 30
    while time.time() < deadline and "keeping the running configuration" not in logtext():
        time.sleep(0.1)
    text = logtext()
    hline = open(conf).read().split("\n").index("    handler echo.lisp") + 1
    t.ok("appserv.conf:%d: handler " % hline in text and "keeping the running configuration" in text,
         "a reload with a broken handler logs file:line and keeps running", text[-600:])
    t.eq(echo_once(pe, b"still\n"), b"v2:still\n", "the running handler still answers")
    with open(os.path.join(tmp, "echo.lisp"), "w") as f:
        f.write(ECHO_V2)

    # SIGHUP under load: a client loop runs across three reloads; no connection fails
    stats = {"ok": 0, "bad": 0, "err": []}
    stop_load = threading.Event()

    def load():
        while not stop_load.is_set():
            try:
                got = echo_once(pe, b"load\n", timeout=10)
                if got == b"v2:load\n":
                    stats["ok"] += 1
                else:
                    stats["bad"] += 1
                    stats["err"].append(got)
            except OSError as e:
                stats["bad"] += 1
                stats["err"].append(str(e))

    th = [threading.Thread(target=load) for _ in range(3)]
    for x in th:
        x.start()
    time.sleep(1)
    for i in range(3):
        p.send_signal(signal.SIGHUP)
        time.sleep(2.5)
    stop_load.set()
    for x in th:
        x.join(30)
    t.ok(stats["bad"] == 0 and stats["ok"] > 100, "SIGHUP x3 under load: %d connections, none lost" % stats["ok"],
         stats)
    time.sleep(1)

    # 2,000 sequential connections: no zombies, a flat descriptor count
    child = serving_child(parent)
    time.sleep(1)
    before = (nfds(parent), nfds(child))
    fails = 0
    for i in range(2000):
        try:
            if echo_once(pe, b"n\n") != b"v2:n\n":
                fails += 1
        except OSError:
            fails += 1
    time.sleep(1)
    after = (nfds(parent), nfds(child))
    t.eq(fails, 0, "2,000 sequential connections answered")
    t.ok(after[0] == before[0] and after[1] <= before[1] + 2, "descriptor counts flat (parent, child): %s -> %s" % (before, after))
    zombies = [k for k in children(parent) + children(child) if state(k) == "Z"]
    t.eq(zombies, [], "no zombie children")

    # SIGTERM drains: a slow request in flight completes
    s = socket.create_connection(("127.0.0.1", ps), timeout=20)
    s.sendall(b"3\r\n")
    time.sleep(0.5)
    t0 = time.time()
    p.send_signal(signal.SIGTERM)
    got = b""
    try:
        while not got.endswith(b"\n"):
            c = s.recv(100)
            if not c:
                break
            got += c
    except socket.timeout:
        pass
    s.close()
    t.eq(got, b"DONE 3\r\n", "SIGTERM: the slow in-flight request completes")
    try:
        rc = p.wait(40)
    except subprocess.TimeoutExpired:
        rc = None
    t.eq(rc, 0, "SIGTERM: the server exits 0 after draining (%.1fs)" % (time.time() - t0))
    t.ok(not os.path.exists(sock), "the AF_UNIX socket file is removed")
    t.eq([k for k in children(parent)], [], "no process left behind")
finally:
    stop(p)

# As root: the serving process runs as nobody in the chroot; and the whole server unprivileged.
if ROOTUSER and shutil.which("setpriv"):
    jail = tempfile.mkdtemp(prefix="crow-jail-")
    os.chmod(jail, 0o755)
    pr = free_port()
    rconf = os.path.join(tmp, "root.conf")
    with open(rconf, "w") as f:
        f.write("log stderr\nuser nobody\nchroot %s\nservice kv {\n  listen 127.0.0.1:%d\n  handler kv.lisp\n}\n"
                "service kvp {\n  listen 127.0.0.1:%d\n  handler kv.lisp\n  model process\n}\n" % (jail, pr, free_port()))
    q = subprocess.Popen([APPSERV, "--foreground", "-f", rconf], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        t.ok(wait_port("127.0.0.1", pr, 60, q), "root: crow-appserv with user nobody and a chroot listens")
        t.eq(kv(pr, [b"SET k v", b"GET k"])[2], b"$v", "root: it serves")
        c = serving_child(q.pid)
        t.eq(status_field(c, "Uid"), ["65534"] * 4, "root: the serving process's uids are all nobody's")
        t.eq(os.readlink("/proc/%d/root" % c), jail, "root: the serving process is chrooted")
        t.eq(status_field(q.pid, "Uid")[0], "0", "root: the parent keeps root (to bind on reload)")
        pool = [k for k in children(c) if state(k) not in (None, "Z")]
        t.ok(pool and all(status_field(k, "Uid") == ["65534"] * 4 for k in pool), "root: pool processes are nobody too", pool)
    finally:
        stop(q)
    # unprivileged: the whole server as nobody on high ports (binary and config must be readable)
    pu = free_port()
    uconf = os.path.join(tmp, "user.conf")
    with open(uconf, "w") as f:
        f.write("log stderr\nservice kv {\n  listen 127.0.0.1:%d\n  handler kv.lisp\n}\n" % pu)
    os.chmod(tmp, 0o755)
    for n in os.listdir(tmp):
        try:
            os.chmod(os.path.join(tmp, n), 0o644)
        except OSError:
            pass
    readable = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "test", "-x", APPSERV]).returncode == 0
    if readable:
        u = subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", APPSERV, "--foreground", "-f", uconf],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            t.ok(wait_port("127.0.0.1", pu, 60, u), "unprivileged: crow-appserv runs as nobody")
            t.eq(kv(pu, [b"SET k v", b"GET k"])[2], b"$v", "unprivileged: it serves")
            t.eq(status_field(u.pid, "Uid")[0], "65534", "unprivileged: the parent is nobody")
        finally:
            stop(u)
    else:
        t.skip("unprivileged run", "the build directory is not readable by nobody")
    shutil.rmtree(jail, ignore_errors=True)
elif not ROOTUSER:
    t.skip("privilege drop and chroot", "needs root")

shutil.rmtree(tmp, ignore_errors=True)
t.done()
