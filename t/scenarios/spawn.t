#!/usr/bin/env python3
# spawn.t — mmspawnd with real processes on loopback: a probe program (t/scenarios/fixtures/
# spawn-probe.c, static) reports the ids, groups, rlimits, umask, cwd, chroot, descriptors and
# environment it was run with, all as configured; privileges really dropped and chroot really
# entered when run as root (CI), and a wholly unprivileged instance; per-address, rate and
# global limits with the refusal line; a world-writable or foreign-owned target refused at
# start (and by -n); 2,000 connections leave no zombie and no descriptor behind; IPv6 and a
# UDP `wait' service; SIGTERM.
# timeout: 300
import os
import pwd
import grp
import re
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
MMSPAWND = os.path.join(BIN, "mmspawnd")
PROBE = os.path.join(ROOT, "build", "t", "spawn", "spawn-probe")
ROOT_USER = os.geteuid() == 0
if not (os.path.exists(MMSPAWND) and os.path.exists(PROBE)):
    t.ok(False, "mmspawnd and spawn-probe are built (make all)", MMSPAWND)
    t.done()

work = tempfile.mkdtemp(prefix="crow-spawn.", dir="/tmp")
os.chmod(work, 0o755)
procs = []


def install(src, dst, mode=0o755, uid=None):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copyfile(src, dst)
    os.chmod(dst, mode)
    if uid is not None:
        os.chown(dst, uid, -1)
    return dst


probe = install(PROBE, os.path.join(work, "bin", "probe"))
chroot = os.path.join(work, "root")
install(PROBE, os.path.join(chroot, "bin", "probe"))
os.makedirs(os.path.join(chroot, "data"))
os.chmod(chroot, 0o755)
os.chmod(os.path.join(chroot, "data"), 0o755)

RLIMITS = {"nofile": 64, "as": 256 << 20, "cpu": 10, "core": 0, "fsize": 1 << 20, "nproc": 4000,
           "stack": 8 << 20, "data": 512 << 20, "memlock": 64 << 10, "msgqueue": 100 << 10,
           "locks": 100, "sigpending": 100, "rttime": 1000000, "rss": 128 << 20, "nice": 0,
           "rtprio": 0}


def conf(name, text):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


def start(path, port=None, host="127.0.0.1", prefix=(), wait=True):
    log = open(path + ".log", "w")
    p = subprocess.Popen(list(prefix) + [MMSPAWND, "-f", path], stdout=log, stderr=subprocess.STDOUT)
    procs.append(p)
    if wait and port:
        t.ok(wait_port(host, port, 30, p), "mmspawnd %s listens on %s:%d" % (os.path.basename(path), host, port))
    return p


def logtext(path):
    with open(path + ".log") as f:
        return f.read()


def fetch(port, host="127.0.0.1", send=None, source=None, timeout=10):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if source:
        s.bind((source, 0))
    s.connect((host, port))
    local = s.getsockname()
    if send:
        try:  # a refused connection may be closed before we are done sending
            s.sendall(send)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    out = b""
    try:
        while True:
            c = s.recv(65536)
            if not c:
                break
            out += c
    except socket.timeout:
        out += b"<timeout>"
    except ConnectionResetError:
        out += b"<reset>"
    s.close()
    return out.decode("utf-8", "replace"), local


def parse_report(text):
    r = {"env": {}, "rlimit": {}}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if k == "env":
            n, _, val = v.partition("=")
            r["env"][n] = val
        elif k.startswith("rlimit-"):
            r["rlimit"][k[7:]] = v
        else:
            r[k] = v
    return r


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
                fields = st[st.rindex(")") + 2:].split()
                if int(fields[1]) == pid:
                    out.append((int(d), fields[0]))
            except (OSError, ValueError):
                pass
    return out


def serving(p, timeout=30):
    """The pid of mmspawnd P's serving process (its newest child: the supervising parent
    keeps the config and listeners, the serving process runs the pool)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        kids = [c[0] for c in children(p.pid) if c[1] != "Z"]
        if kids:
            return max(kids, key=lambda k: os.stat("/proc/%d" % k).st_ctime if os.path.exists("/proc/%d" % k) else 0)
        time.sleep(0.05)
    return p.pid


def nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split()[1:]
    return None


try:
    # ---------------------------------------------------------------- the probe's report
    port = free_port()
    port6 = free_port("::1")
    limits = "".join("rlimit-%s %d\n" % (k, v) for k, v in RLIMITS.items())
    nogroup = grp.getgrnam("nogroup").gr_gid
    nobody = pwd.getpwnam("nobody").pw_uid
    if ROOT_USER:
        ids = "user nobody\ngroup nogroup\nchroot %s\nprogram /bin/probe\ncwd /data\n" % chroot
    else:
        ids = "program %s\ncwd %s\n" % (probe, work)
    report_conf = conf("report.conf", """# the probe reports what it was run with
listen 127.0.0.1:%d
listen [::1]:%d
log stderr
args report
env FOO=bar "GREETING=hello world"
umask 027
stderr null
spare 2
%s%s""" % (port, port6, ids, limits))
    r = subprocess.run([MMSPAWND, "-f", report_conf, "-n"], capture_output=True, text=True, timeout=60)
    t.ok(r.returncode == 0 and "configuration ok" in r.stdout, "-n accepts the report config", r.stdout + r.stderr)
    p = start(report_conf, port)
    text, local = fetch(port)
    rep = parse_report(text)
    t.ok(text.endswith("end\n"), "the probe ran and reported", text[-500:])
    if ROOT_USER:
        t.eq(rep.get("uid"), "%d %d" % (nobody, nobody), "uid dropped to nobody (real and effective)")
        t.eq(rep.get("gid"), "%d %d" % (nogroup, nogroup), "gid nogroup (real and effective)")
        t.eq(rep.get("groups"), str(nogroup), "supplementary groups: only nogroup")
        t.eq(sorted(rep.get("root", "").split()), ["bin", "data"], "/ is the chroot (bin, data)")
        t.eq(rep.get("cwd"), "/data", "cwd inside the chroot")
        spid = serving(p)
        t.eq(proc_status(spid, "Uid"), [str(nobody)] * 4, "mmspawnd's serving process runs as nobody")
        t.eq(os.readlink("/proc/%d/root" % spid), chroot, "mmspawnd's serving process is chrooted")
        t.eq(len([c for c in children(p.pid) if c[1] != "Z"]), 1,
             "the supervising parent has one child: the serving process")
    else:
        t.eq(rep.get("uid"), "%d %d" % (os.getuid(), os.geteuid()), "uid unchanged when unprivileged")
        t.eq(rep.get("cwd"), work, "cwd as configured")
    t.eq(rep.get("umask"), "027", "umask as configured")
    bad = [k for k, v in RLIMITS.items() if rep["rlimit"].get(k) != "%d %d" % (v, v)]
    t.ok(not bad, "every rlimit as configured (soft and hard)", "\n".join("%s: %s want %s" % (k, rep["rlimit"].get(k), RLIMITS[k]) for k in bad))
    t.eq(rep.get("fds"), "0 1 2", "only descriptors 0, 1, 2 are open in the program")
    t.eq(rep["env"], {"FOO": "bar", "GREETING": "hello world", "PROTO": "TCP",
                      "TCPREMOTEIP": "127.0.0.1", "TCPREMOTEPORT": str(local[1]),
                      "TCPLOCALIP": "127.0.0.1", "TCPLOCALPORT": str(port)},
         "environment: the configured entries and UCSPI's, nothing else")
    text6, local6 = fetch(port6, "::1")
    rep6 = parse_report(text6)
    t.eq((rep6["env"].get("PROTO"), rep6["env"].get("TCPREMOTEIP"), rep6["env"].get("TCPREMOTEPORT"),
          rep6["env"].get("TCPLOCALPORT")), ("TCP6", "::1", str(local6[1]), str(port6)),
         "IPv6: PROTO=TCP6 and the [::1] addresses")
    time.sleep(0.5)
    lg = logtext(report_conf)
    t.ok(re.search(r"127\.0\.0\.1 port %d: pid (\d+)" % local[1], lg) and
         re.search(r"pid \d+ \(127\.0\.0\.1 port %d\): exited 0" % local[1], lg),
         "the connection and its exit status are logged", lg[-800:])
    stop(p)
    t.eq(p.returncode, 0, "SIGTERM stops mmspawnd with status 0")
    t.ok("stopped: " in logtext(report_conf), "it logs what it served")

    # The same through the builtin spawner (a copy of mmspawnd instead of crow-spawner).
    bport = free_port()
    with open(report_conf) as f:
        btext = f.read()
    btext = re.sub(r"listen 127\.0\.0\.1:\d+\nlisten \[::1\]:\d+\n", "listen 127.0.0.1:%d\n" % bport, btext)
    bconf = conf("builtin.conf", btext + "spawner builtin\n")
    p = start(bconf, bport)
    text, local = fetch(bport)
    rep2 = parse_report(text)
    t.ok(text.endswith("end\n") and rep2.get("uid") == rep.get("uid") and rep2.get("root") == rep.get("root")
         and rep2.get("fds") == "0 1 2" and rep2["rlimit"] == rep["rlimit"],
         "spawner builtin: the same ids, chroot, descriptors and rlimits", text[-400:])
    kids = [c[0] for c in children(serving(p))]
    exes = set()
    for k in kids:
        try:
            exes.add(os.path.basename(os.readlink("/proc/%d/exe" % k)))
        except OSError:
            pass
    t.ok("crow-spawner" not in exes, "no crow-spawner with spawner builtin", exes)
    stop(p)

    # A privileged port, bound as root before the drop to nobody.
    if ROOT_USER:
        low = None
        for cand in range(940, 1000):
            try:
                probe_s = socket.socket()
                probe_s.bind(("127.0.0.1", cand))
                probe_s.close()
                low = cand
                break
            except OSError:
                probe_s.close()
        if low:
            pconf = conf("low.conf", "listen 127.0.0.1:%d\nprogram %s\nargs banner\nlog stderr\n"
                         "user nobody\n" % (low, probe))
            p = start(pconf, low)
            t.eq(fetch(low)[0], "220 crow banner\r\n", "a privileged port (%d) is served" % low)
            t.eq(proc_status(serving(p), "Uid"), [str(nobody)] * 4, "by an mmspawnd that serves as nobody")
            stop(p)
        else:
            t.ok(False, "a free privileged port in 940-999 for the test")

    # stderr to a file (opened by mmspawnd before it drops privileges).
    eport = free_port()
    errlog = os.path.join(work, "stderr.log")
    econf = conf("stderr.conf", "listen 127.0.0.1:%d\nprogram %s\nargs report\nlog stderr\n%s"
                 "stderr %s\n" % (eport, probe, "user nobody\n" if ROOT_USER else "", errlog))
    p = start(econf, eport)
    fetch(eport)
    stop(p)
    with open(errlog) as f:
        etext = f.read()
    t.ok("probe-stderr pid=" in etext, "stderr PATH: the program's stderr goes to the file", etext)
    t.ok("probe-stderr" not in logtext(report_conf), "stderr null: nothing reaches mmspawnd's log")

    # ---------------------------------------------------------------- wholly unprivileged
    if ROOT_USER:
        uport = free_port()
        uconf = conf("unpriv.conf", "listen 127.0.0.1:%d\nprogram %s\nargs report\nlog stderr\n"
                     "rlimit-nofile 32\n" % (uport, probe))
        p = start(uconf, uport, prefix=["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        text, _ = fetch(uport)
        rep = parse_report(text)
        t.eq((rep.get("uid"), rep.get("gid"), rep.get("groups")),
             ("%d %d" % (nobody, nobody), "%d %d" % (nogroup, nogroup), ""),
             "started unprivileged (setpriv nobody): the program runs as nobody, no groups")
        t.eq(rep["rlimit"].get("nofile"), "32 32", "rlimits applied unprivileged")
        stop(p)
        rconf = conf("root-user.conf", "listen 127.0.0.1:%d\nprogram %s\nlog stderr\n"
                     "user nobody\nchroot %s\n" % (uport, probe, chroot))
        r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                            MMSPAWND, "-f", rconf, "-n"], capture_output=True, text=True, timeout=60)
        t.ok(r.returncode == 1 and "root-user.conf:5: chroot: needs root" in r.stderr,
             "unprivileged, a chroot is refused with file:line", r.stderr)
        r = subprocess.run([MMSPAWND, "-f", uconf, "-n"], capture_output=True, text=True, timeout=60)
        t.ok(r.returncode == 1 and "user: required when started as root" in r.stderr,
             "as root, a config without a user is refused", r.stderr)
    else:
        t.skip("started unprivileged via setpriv", "not root")

    # ---------------------------------------------------------------- unfit targets
    ww = install(PROBE, os.path.join(work, "ww", "probe"), mode=0o757)
    wconf = conf("ww.conf", "listen 127.0.0.1:%d\nlog stderr\n%sprogram %s\n" %
                 (free_port(), "user nobody\n" if ROOT_USER else "", ww))
    line = 4 if ROOT_USER else 3
    for args, what in ((["-n"], "-n"), ([], "start")):
        r = subprocess.run([MMSPAWND, "-f", wconf] + args, capture_output=True, text=True, timeout=60)
        t.ok(r.returncode == 1 and ("ww.conf:%d: program: " % line) in r.stderr
             and "writable by group or other (mode 0757)" in r.stderr,
             "a world-writable target is refused (%s), with file:line" % what, r.stderr)
    os.chmod(ww, 0o644)
    r = subprocess.run([MMSPAWND, "-f", wconf, "-n"], capture_output=True, text=True, timeout=60)
    t.ok(r.returncode == 1 and "is not executable" in r.stderr, "a non-executable target is refused", r.stderr)
    if ROOT_USER:
        os.chmod(ww, 0o755)
        os.chown(ww, 12345, -1)
        r = subprocess.run([MMSPAWND, "-f", wconf, "-n"], capture_output=True, text=True, timeout=60)
        t.ok(r.returncode == 1 and "owned by uid 12345, not by root or the service user" in r.stderr,
             "a target owned by another user is refused", r.stderr)
    r = subprocess.run([MMSPAWND, "-f", conf("dir.conf", "listen 127.0.0.1:1\nlog stderr\nprogram %s\n%s" %
                                             (work, "user nobody\n" if ROOT_USER else "")), "-n"],
                       capture_output=True, text=True, timeout=60)
    t.ok(r.returncode == 1 and "dir.conf:3: program:" in r.stderr and "not a regular file" in r.stderr,
         "a directory as target is refused", r.stderr)

    # ---------------------------------------------------------------- limits
    user = "user nobody\n" if ROOT_USER else ""
    lport = free_port()
    lconf = conf("limits.conf", "listen 127.0.0.1:%d\nprogram %s\nargs echo\nlog stderr\n%s"
                 "max-per-address 3\nmax-connections 5\nrefusal \"421 busy test\"\n" % (lport, probe, user))
    p = start(lconf, lport)
    for _ in range(100):  # the readiness probe's connection counts until its child is reaped
        if "exited" in logtext(lconf):
            break
        time.sleep(0.05)
    held = []

    def hold(source):
        s = socket.socket()
        s.settimeout(10)
        s.bind((source, 0))
        s.connect(("127.0.0.1", lport))
        s.sendall(b"ping\n")
        got = s.recv(100)
        return s, got

    for i in range(3):
        s, got = hold("127.0.0.1")
        held.append(s)
        t.eq(got, b"ping\n", "connection %d from 127.0.0.1 is served (echo)" % (i + 1))
    out, _ = fetch(lport, send=b"x\n", source="127.0.0.1")
    t.eq(out, "421 busy test\r\n", "the 4th from 127.0.0.1 gets the refusal line (max-per-address 3)")
    out, _ = fetch(lport, send=b"other\n", source="127.0.0.2")
    t.eq(out, "other\n", "127.0.0.2 is still served meanwhile")
    s, got = hold("127.0.0.2")
    held.append(s)
    s, got = hold("127.0.0.3")
    held.append(s)
    t.eq(got, b"ping\n", "5 connections open at once (3 from .1, one from .2, one from .3)")
    out, _ = fetch(lport, send=b"x\n", source="127.0.0.4")
    t.eq(out, "421 busy test\r\n", "a 6th from a fresh address is refused (max-connections 5)")
    held.pop(0).close()
    ok = False
    for _ in range(50):
        time.sleep(0.1)
        out, _ = fetch(lport, send=b"again\n", source="127.0.0.1")
        if out == "again\n":
            ok = True
            break
    t.ok(ok, "once one ends, 127.0.0.1 is served again (its count released when the child is reaped)", out)
    for s in held:
        s.close()
    lg = logtext(lconf)
    t.ok("refused 127.0.0.1 port" in lg and "max-per-address" in lg and "max-connections" in lg,
         "refusals are logged with the limit", lg[-600:])
    stop(p)

    rport = free_port()
    rconf = conf("rate.conf", "listen 127.0.0.1:%d\nprogram %s\nargs banner\nlog stderr\n%s"
                 "rate-per-address 5/10s\nrefusal \"421 slow down\"\n" % (rport, probe, user))
    p = start(rconf, rport)
    # The readiness probe (wait_port, from 127.0.0.1) used the first of the 5.
    outs = [fetch(rport, source="127.0.0.1")[0] for _ in range(6)]
    t.eq(outs[:4], ["220 crow banner\r\n"] * 4, "rate-per-address 5/10s: the first connections are served")
    t.ok(outs[4:] == ["421 slow down\r\n"] * 2, "the 6th and 7th within the period are refused", outs)
    t.eq(fetch(rport, source="127.0.0.2")[0], "220 crow banner\r\n", "another address is not limited by the first's rate")
    stop(p)

    # ---------------------------------------------------------------- 2,000 connections
    bport = free_port()
    bconf = conf("banner.conf", "listen 127.0.0.1:%d\nprogram %s\nargs banner\nlog stderr\n%s"
                 "log-connections no\nspare 4\n" % (bport, probe, user))
    p = start(bconf, bport)
    fetch(bport)
    time.sleep(1.0)
    spid = serving(p)
    fd0 = nfds(spid)
    counts = {"ok": 0, "bad": 0}
    lock = threading.Lock()

    def client(n):
        for _ in range(n):
            try:
                out = fetch(bport)[0]
            except OSError as e:
                out = str(e)
            with lock:
                counts["ok" if out == "220 crow banner\r\n" else "bad"] += 1

    t0 = time.time()
    th = [threading.Thread(target=client, args=(500,)) for _ in range(4)]
    for x in th:
        x.start()
    for x in th:
        x.join(240)
    el = time.time() - t0
    t.eq(counts, {"ok": 2000, "bad": 0}, "2,000 connections (4 clients) all get the banner (%.0f/s)" % (2000 / el))
    zombies = None
    for _ in range(50):
        time.sleep(0.1)
        zombies = [c for c in children(spid) + children(p.pid) if c[1] == "Z"]
        if not zombies:
            break
    t.eq(zombies, [], "no zombie children afterwards")
    fd1 = None
    for _ in range(100):  # the idle pool grew under load: its surplus goes within seconds
        fd1 = nfds(spid)
        if fd1 <= fd0:
            break
        time.sleep(0.1)
    t.ok(fd1 <= fd0, "the descriptor count is flat (%d before, %d after)" % (fd0, fd1))
    kids = children(spid)
    t.ok(len(kids) <= 6, "the idle pool is back to its spare count (%d children, spare 4)" % len(kids), kids)

    def spawners():
        out = []
        for k, _ in children(spid):
            try:
                with open("/proc/%d/cmdline" % k, "rb") as f:
                    argv0 = f.read().split(b"\0")[0]
                # Its clones share its command line; only the spawner has its socket as stdin.
                if argv0.endswith(b"crow-spawner") and os.readlink("/proc/%d/fd/0" % k).startswith("socket:"):
                    out.append(k)
            except OSError:
                pass
        return out

    first = spawners()
    t.eq(len(first), 1, "one crow-spawner runs beside mmspawnd")
    if first:
        os.kill(first[0], signal.SIGKILL)  # the spawner our mmspawnd started
    outs = [fetch(bport)[0] for _ in range(20)]
    t.eq(outs, ["220 crow banner\r\n"] * 20, "with its spawner killed, mmspawnd still serves")
    again = []
    for _ in range(50):
        again = [k for k in spawners() if k not in first]
        if again:
            break
        time.sleep(0.1)
    # A new crow-spawner, or (when this unprivileged process cannot reach crow-spawner's path,
    # e.g. a checkout under a 0700 home) the builtin one, as the log says.
    log = ""
    for _ in range(50):
        log = logtext(bconf)
        if again or "spawner restarted (pid" in log:
            break
        time.sleep(0.1)
    t.ok(again or "spawner restarted (pid" in log, "and starts a new spawner", log[-400:])
    stop(p)

    # ---------------------------------------------------------------- SIGHUP
    # A connection in progress (echo) is finished by the old generation while new
    # connections see the edited config; a broken config is logged with file:line and the
    # running one goes on.
    hport = free_port()
    htext = "listen 127.0.0.1:%d\nprogram %s\nargs echo\nlog stderr\n%s" % (hport, probe, user)
    hconf = conf("hup.conf", htext)
    p = start(hconf, hport)
    gen1 = serving(p)
    held = socket.create_connection(("127.0.0.1", hport), timeout=10)
    held.sendall(b"before\n")
    t.eq(held.recv(100), b"before\n", "hup: a connection in progress (echo)")
    conf("hup.conf", htext.replace("args echo", "args report") + "env VERSION=2\n")
    os.kill(p.pid, signal.SIGHUP)
    rep = {}
    for _ in range(100):
        time.sleep(0.1)
        text, _ = fetch(hport)
        rep = parse_report(text)
        if rep["env"].get("VERSION") == "2":
            break
    t.eq(rep["env"].get("VERSION"), "2", "hup: new connections run the edited config (args, env)")
    held.sendall(b"after\n")
    t.eq(held.recv(100), b"after\n", "hup: the connection in progress is still served by the old program")
    t.ok(os.path.exists("/proc/%d" % gen1) and serving(p) != gen1,
         "hup: the old serving process waits for its connection, beside the new one")
    held.close()
    gone = False
    for _ in range(100):
        time.sleep(0.1)
        if "generation 1 (pid %d) finished" % gen1 in logtext(hconf):
            gone = True
            break
    t.ok(gone, "hup: once its connection ends, the old serving process exits (reaped)", logtext(hconf)[-800:])
    broken = htext.replace("args echo", "args report") + "env VERSION=3\nno-such-key 1\n"
    conf("hup.conf", broken)
    where = "hup.conf:%d: unknown key" % broken.count("\n")
    os.kill(p.pid, signal.SIGHUP)
    for _ in range(100):
        time.sleep(0.1)
        if where in logtext(hconf):
            break
    t.ok(where in logtext(hconf) and "old configuration goes on" in logtext(hconf),
         "hup: a broken config is logged as file:line", logtext(hconf)[-800:])
    rep = parse_report(fetch(hport)[0])
    t.eq(rep["env"].get("VERSION"), "2", "hup: and the running config goes on serving")
    t.eq([c for c in children(p.pid) if c[1] == "Z"], [], "hup: no zombie generation")
    # SIGHUP under load: 3 reloads while 4 clients connect in a loop; no connection is lost.
    conf("hup.conf", htext.replace("args echo", "args banner"))
    os.kill(p.pid, signal.SIGHUP)
    for _ in range(100):
        time.sleep(0.1)
        if fetch(hport)[0] == "220 crow banner\r\n":
            break
    load = {"ok": 0, "bad": []}
    busy = [True]
    hlock = threading.Lock()

    def loader():
        while busy[0]:
            try:
                out = fetch(hport)[0]
            except OSError as e:
                out = repr(e)
            with hlock:
                if out == "220 crow banner\r\n":
                    load["ok"] += 1
                else:
                    load["bad"].append(out)

    ths = [threading.Thread(target=loader) for _ in range(4)]
    for x in ths:
        x.start()
    for i in range(3):
        time.sleep(1.0)
        conf("hup.conf", htext.replace("args echo", "args banner") + "env RELOAD=%d\n" % i)
        os.kill(p.pid, signal.SIGHUP)
    time.sleep(1.5)
    busy[0] = False
    for x in ths:
        x.join(60)
    t.ok(load["ok"] > 50 and not load["bad"],
         "hup x3 under load: %d connections, none lost" % load["ok"], load["bad"][:5])
    stop(p)
    t.eq(p.returncode, 0, "hup: SIGTERM afterwards stops mmspawnd with status 0")

    # ---------------------------------------------------------------- UDP wait service
    uport = free_port()
    uconf = conf("udp.conf", "listen 127.0.0.1:%d\nprotocol udp\nprogram %s\nargs udp\nlog stderr\n%s" %
                 (uport, probe, user))
    p = start(uconf, wait=False)
    for _ in range(300):  # no TCP port to probe: wait for its "listening" line
        if "listening on" in logtext(uconf) or p.poll() is not None:
            break
        time.sleep(0.1)
    t.ok("listening on 127.0.0.1:%d (udp)" % uport in logtext(uconf), "the UDP service is bound", logtext(uconf))
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(10)
    pids = []
    for i in range(5):
        u.sendto(b"d%d" % i, ("127.0.0.1", uport))
        try:
            data, _ = u.recvfrom(4096)
        except socket.timeout:
            data = b""
        m = re.match(rb"udp:d%d pid=(\d+)$" % i, data)
        pids.append(int(m.group(1)) if m else None)
    t.ok(None not in pids, "a UDP service answers every datagram", pids)
    t.eq(len(set(pids)), 1, "one child serves the burst (inetd wait: the server does not watch the socket meanwhile)")
    time.sleep(2.0)
    u.sendto(b"later", ("127.0.0.1", uport))
    try:
        data, _ = u.recvfrom(4096)
    except socket.timeout:
        data = b""
    m = re.match(rb"udp:later pid=(\d+)$", data)
    t.ok(m and int(m.group(1)) != pids[0], "after that child exits, the next datagram gets a new child", data)
    t.ok(pids[0] and re.search(r"pid %d \(127\.0\.0\.1 port %d\): exited 0" % (pids[0], uport), logtext(uconf)),
         "the UDP child's exit is reaped and logged", logtext(uconf)[-500:])
    u.close()
    stop(p)

    # A UDP `wait' program that exits without reading: the datagram stays queued, so it would
    # be respawned in a loop; after udp-respawn-limit quick exits in a row the service pauses.
    lport = free_port()
    lconf = conf("udploop.conf", "listen 127.0.0.1:%d\nprotocol udp\nprogram /bin/true\nlog stderr\n%s"
                 "udp-respawn-limit 5\n" % (lport, user))
    p = start(lconf, wait=False)
    for _ in range(300):
        if "listening on" in logtext(lconf) or p.poll() is not None:
            break
        time.sleep(0.1)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(b"never read", ("127.0.0.1", lport))
    time.sleep(3.0)
    runs = len(re.findall(r"udp 127\.0\.0\.1 port %d: pid" % lport, logtext(lconf)))
    t.ok(5 <= runs <= 20, "a UDP program that never reads is not respawned in a loop (%d runs in 3 s)" % runs,
         logtext(lconf)[-600:])
    t.ok("5 programs in a row ended within a second: pausing 1 s" in logtext(lconf)
         and "pausing 2 s" in logtext(lconf),
         "the pause is logged and doubles while it goes on", logtext(lconf)[-600:])
    u.close()
    stop(p)
    t.eq(p.returncode, 0, "and it still stops cleanly")
finally:
    for p in procs:
        stop(p)
    shutil.rmtree(work, ignore_errors=True)
t.done()
