#!/usr/bin/env python3
# ftp-stat.t — mmftpd counts in mmstatd (stat-dir): after a failed login, a good one, a STOR
# and two RETRs, a private mmstatd holds mmftpd|logins|USER, mmftpd|failed-logins|ADDRESS,
# mmftpd|bytes-in|USER, mmftpd|bytes-out|USER (persistent) equal to what was done, and
# mmftpd|sessions|USER (volatile) 1 while logged in, 0 after QUIT.  When root, mmftpd runs
# under chroot(2) as nobody: the handle opened before the chroot still counts.  With mmstatd
# gone, logins and transfers answer as before, promptly.
# timeout: 60
import atexit
import ftplib
import io
import os
import pwd
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import BIN, ROOT, Tap, free_port, stop, wait_port
from stat_common import Stat

t = Tap()
IS_ROOT = os.getuid() == 0
tmp = tempfile.mkdtemp(prefix="crow-ftp-stat-t-")
os.chmod(tmp, 0o755)
st = Stat()
procs = []
atexit.register(lambda: [stop(p) for p in procs])
atexit.register(lambda: (st.cleanup(), subprocess.run(["rm", "-rf", tmp])))
t.ok(st.start(), "mmstatd started")

jail = os.path.join(tmp, "jail")
home = os.path.join(jail, "home", "demo")
os.makedirs(home)
if IS_ROOT:
    nobody = pwd.getpwnam("nobody")
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
accounts = os.path.join(tmp, "accounts")
r = subprocess.run([os.path.join(BIN, "mmftpasswd"), "-f", accounts, "add", "demo", "-d",
                    home if not IS_ROOT else home, "-p", "all", "--stdin"],
                   input="demo\n", capture_output=True, text=True)
t.ok(r.returncode == 0, "mmftpasswd add demo", r.stderr)
port = free_port()
conf = os.path.join(tmp, "mmftpd.conf")
with open(conf, "w") as f:
    f.write('listen 127.0.0.1:%d\naccounts accounts\nlogin-delay 100ms\nstat-dir "%s"\n'
            % (port, st.run))
    if IS_ROOT:
        f.write("chroot jail\nuser nobody\n")
log = open(os.path.join(tmp, "mmftpd.log"), "w")
p = subprocess.Popen([os.path.join(BIN, "mmftpd"), "-f", conf, "--foreground"],
                     stdout=log, stderr=subprocess.STDOUT)
procs.append(p)
t.ok(wait_port("127.0.0.1", port, 30, p), "mmftpd started%s" %
     (" (chroot(2), user nobody)" if IS_ROOT else ""))


def counts(want, timeout=5):
    deadline = time.time() + timeout
    got = None
    while time.time() < deadline:
        got = st.values("mmftpd|*")
        if got == want:
            break
        time.sleep(0.05)
    return got


def login(password="demo"):
    f = ftplib.FTP(timeout=10)
    f.connect("127.0.0.1", port)
    f.login("demo", password)
    return f


try:
    login("wrong")
    t.ok(False, "bad password refused")
except ftplib.error_perm as e:
    t.ok(str(e).startswith("530"), "bad password refused (%s)" % e)
data = os.urandom(12345)
f = login()
t.ok(f.storbinary("STOR up.bin", io.BytesIO(data)).startswith("226"), "STOR 12345 bytes")
out = io.BytesIO()
f.retrbinary("RETR up.bin", out.write)
f.retrbinary("RETR up.bin", out.write)
t.eq(out.getvalue(), data * 2, "RETR twice returns the bytes")
want = {"mmftpd|failed-logins|127.0.0.1": 1, "mmftpd|logins|demo": 1,
        "mmftpd|bytes-in|demo": len(data), "mmftpd|bytes-out|demo": 2 * len(data),
        "mmftpd|sessions|demo": 1}
t.eq(counts(want), want, "mmftpd counted the logins, bytes in and out, and the open session")
rep = st.report("mmftpd|*") or {}
t.ok(rep.get("mmftpd|sessions|demo", (0, ""))[1] == "v"
     and all(pv == "p" for k, (_, pv) in rep.items() if "sessions" not in k),
     "sessions volatile, the rest persistent", rep)
f.quit()
want["mmftpd|sessions|demo"] = 0
t.eq(counts(want), want, "after QUIT: mmftpd|sessions|demo is 0")

st.stop()
t0 = time.time()
f = login()
out = io.BytesIO()
f.retrbinary("RETR up.bin", out.write)
t.ok(f.storbinary("STOR up2.bin", io.BytesIO(b"x" * 1000)).startswith("226"),
     "mmstatd down: STOR still 226")
f.quit()
took = time.time() - t0
t.eq(out.getvalue(), data, "mmstatd down: login and RETR as before")
t.ok(took < 3, "mmstatd down: a session with 2 transfers took %.2f s (< 3 s)" % took)
t.ok(p.poll() is None, "mmftpd still running")
stop(p)
procs.remove(p)
t.done()
